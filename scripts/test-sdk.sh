#!/usr/bin/env bash
# End-to-end API test with the official client SDKs and a load test.
#
# - makes (or reuses) a virtual environment in target/sdk-venv with pinned `openai`,
#   `anthropic` and `pytest` from PyPI;
# - builds target/debug/dsv4 (cargo; a no-op when it is up to date) unless DSV4_BIN names a
#   binary to use as it is;
# - starts `dsv4 serve --test-hooks --api-key test-key` on a free loopback port with the tiny
#   random model in a temporary DSV4_CACHE, waits for /health;
# - runs `pytest -q scripts/sdk_tests/` (env DSV4_BASE_URL, DSV4_API_KEY), then
#   `scripts/load_test.py` (summary in target/load-test.json);
# - always stops the server. Exits non-zero when anything failed.
#
# Env: DSV4_BIN (binary to test), DSV4_SDK_PYTHON (python for the venv, default python3),
# LOAD_CLIENTS / LOAD_DURATION (load-test size, default 64 clients for 30 s),
# PYTEST_ARGS (extra pytest arguments, e.g. "-k anthropic").
# Needs network access to PyPI the first time only; no GPU.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

VENV="$ROOT/target/sdk-venv"
PY_REQS=(openai==3.54.0 anthropic==2.12.0 pytest==9.2.0)
API_KEY="test-key"

log() { printf '[test-sdk] %s\n' "$*" >&2; }

# ---------------------------------------------------------------- Python environment
if [[ ! -x "$VENV/bin/python" ]]; then
    log "creating $VENV"
    mkdir -p "$ROOT/target"
    "${DSV4_SDK_PYTHON:-python3}" -m venv "$VENV"
fi
# Pinned: a no-op (no network) when already installed.
"$VENV/bin/python" -m pip install -q --disable-pip-version-check "${PY_REQS[@]}"

# ---------------------------------------------------------------- server binary
if [[ -n "${DSV4_BIN:-}" ]]; then
    BIN="$DSV4_BIN"
else
    BIN="${CARGO_TARGET_DIR:-$ROOT/target}/debug/dsv4"
    if [[ ! -x "$BIN" ]] || command -v cargo >/dev/null 2>&1; then
        log "cargo build -p dsv4"
        cargo build -q -p dsv4
    fi
fi
[[ -x "$BIN" ]] || { log "no server binary at $BIN"; exit 1; }

# ---------------------------------------------------------------- start the server
WORK="$(mktemp -d "${TMPDIR:-/tmp}/dsv4-sdk.XXXXXX")"
SERVER_LOG="$WORK/server.log"
SERVER_PID=""

cleanup() {
    local rc=$?
    if [[ -n "$SERVER_PID" ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        # The server gives running streams a grace period; do not wait forever.
        for _ in $(seq 1 100); do
            kill -0 "$SERVER_PID" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$SERVER_PID" 2>/dev/null; then
            kill -KILL "$SERVER_PID" 2>/dev/null || true
        fi
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    if [[ $rc -ne 0 && -f "$SERVER_LOG" ]]; then
        log "server log (last 40 lines):"
        tail -n 40 "$SERVER_LOG" >&2 || true
    fi
    rm -rf "$WORK"
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

PORT="$("$VENV/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')"
BASE="http://127.0.0.1:$PORT"
log "starting $BIN serve on $BASE"
DSV4_CACHE="$WORK/cache" "$BIN" serve --test-hooks --host 127.0.0.1 --port "$PORT" --api-key "$API_KEY" >"$SERVER_LOG" 2>&1 &
SERVER_PID=$!

ready=""
for _ in $(seq 1 600); do
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
        log "the server exited before it was ready"
        exit 1
    fi
    if "$VENV/bin/python" - "$BASE/health" <<'EOF' 2>/dev/null
import sys, urllib.request
with urllib.request.urlopen(sys.argv[1], timeout=2) as r:
    sys.exit(0 if r.status == 200 else 1)
EOF
    then
        ready=1
        break
    fi
    sleep 0.2
done
[[ -n "$ready" ]] || { log "the server did not answer /health within 120 s"; exit 1; }
log "server ready"

# ---------------------------------------------------------------- tests
export DSV4_BASE_URL="$BASE" DSV4_API_KEY="$API_KEY" PYTHONDONTWRITEBYTECODE=1
failed=0

log "pytest scripts/sdk_tests/"
# shellcheck disable=SC2086
if ! "$VENV/bin/python" -m pytest -q -p no:cacheprovider ${PYTEST_ARGS:-} "$ROOT/scripts/sdk_tests/"; then
    log "SDK tests FAILED"
    failed=1
fi

log "load test"
if ! "$VENV/bin/python" "$ROOT/scripts/load_test.py" --base-url "$BASE" --api-key "$API_KEY" \
        --clients "${LOAD_CLIENTS:-64}" --duration "${LOAD_DURATION:-30}" --json "$ROOT/target/load-test.json"; then
    log "load test FAILED"
    failed=1
fi

if ! kill -0 "$SERVER_PID" 2>/dev/null; then
    log "the server died during the tests"
    failed=1
fi

if [[ $failed -ne 0 ]]; then
    log "FAILED"
    exit 1
fi
log "all SDK and load tests passed"
