#!/usr/bin/env bash
# The project's full test command: the Rust workspace tests, then the end-to-end SDK and load
# tests against a real server (scripts/test-sdk.sh).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
cargo test --workspace
"$ROOT/scripts/test-sdk.sh"
