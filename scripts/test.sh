#!/usr/bin/env bash
# The project's full test command: the kernels assembled for sm_90a by the pinned ptxas (and
# their committed PTX up to date with the sources), the Rust workspace tests (the kernels'
# property tests run on the PTX emulator), then the end-to-end SDK and load tests against a
# real server (scripts/test-sdk.sh).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
"$ROOT/scripts/check-kernels.sh"
cargo test --workspace
"$ROOT/scripts/test-sdk.sh"
