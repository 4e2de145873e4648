#!/usr/bin/env bash
# Installs the pinned CUDA 13.0 compiler wheels from PyPI into .cuda-tools/ (ignored) once and
# prints the folder holding nvcc and ptxas. No GPU, no CUDA install needed. Pin every component:
# unpinned nvvm/crt drift to newer releases whose cicc emits PTX ptxas 13.0 rejects.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
TOOLS="${DSV4_CUDA_TOOLS:-$ROOT/.cuda-tools}"
BIN="$TOOLS/nvidia/cu13/bin"
STAMP="$TOOLS/.pinned-13.0.88"
if [[ ! -f "$STAMP" ]]; then
  rm -rf "$TOOLS"
  python3 -m pip install -q --root-user-action=ignore --disable-pip-version-check --no-deps --target "$TOOLS" \
    nvidia-cuda-nvcc==13.0.88 nvidia-nvvm==13.0.88 nvidia-cuda-crt==13.0.88 \
    nvidia-cuda-runtime==13.0.96 nvidia-cuda-cccl==13.0.85 >&2
  touch "$STAMP"
fi
echo "$BIN"
