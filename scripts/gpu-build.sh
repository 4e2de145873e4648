#!/usr/bin/env bash
# Builds, on a machine without a GPU, everything scripts/gpu-check.sh runs on a GPU machine
# that may have no Rust toolchain: the release binary and the kernel test binaries, stripped,
# into gpu-build/ (ignored; well under 64 MiB so it can travel with a device run's `carry`).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
OUT=gpu-build
rm -rf "$OUT" && mkdir -p "$OUT/tests"
cargo build --release --bin dsv4
cp target/release/dsv4 "$OUT/dsv4"
# Test binaries: the kernels' property tests (device vs emulator) and the end-to-end checks.
cargo test --release -p dsv4-kernels --no-run --message-format=json 2>/dev/null \
  | python3 -c '
import json, sys, shutil, os
for line in sys.stdin:
    try: m = json.loads(line)
    except ValueError: continue
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["profile"]["test"]:
        name = m["target"]["name"] + ("-lib" if m["target"]["kind"] == ["lib"] else "")
        shutil.copy(m["executable"], os.path.join(sys.argv[1], name))
        print("test binary:", name)
' "$OUT/tests"
strip "$OUT/dsv4" "$OUT"/tests/* 2>/dev/null || true
git rev-parse HEAD > "$OUT/COMMIT"
du -sh "$OUT"
