#!/usr/bin/env bash
# Regenerates the committed PTX from its CUDA C++ source with the pinned nvcc:
#   kernels/cuda/*.cu           -> kernels/ptx/*.ptx            (the kernels the binary embeds)
#   kernels/emu/tests/cuda/*.cu -> kernels/emu/tests/ptx/*.ptx  (the emulator's test kernels)
# nvcc 13 stamps `.version 9.0`; we ship 8.4 (every driver from CUDA 12.4 JITs it; the text is
# otherwise identical and ptxas accepts it, which check-kernels.sh verifies).
# --check: regenerate into a temporary folder and fail if any committed file differs.
# Files compile in parallel, one nvcc per core (GEN_PTX_JOBS overrides).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BIN="$("$ROOT/scripts/cuda-tools.sh")"
CHECK=0
[[ "${1:-}" == "--check" ]] && CHECK=1
status=0
JOBS="${GEN_PTX_JOBS:-$(nproc 2>/dev/null || echo 2)}"
for pair in "kernels/cuda:kernels/ptx" "kernels/emu/tests/cuda:kernels/emu/tests/ptx"; do
  src="$ROOT/${pair%%:*}"; dst="$ROOT/${pair##*:}"
  [[ -d "$src" ]] || continue
  mkdir -p "$dst"
  tmp="$(mktemp -d)"
  # compile in parallel (one nvcc per core), then compare or copy in order
  running=0; cfail=0
  for cu in "$src"/*.cu; do
    [[ -e "$cu" ]] || continue
    name="$(basename "$cu" .cu)"
    ( "$BIN/nvcc" -arch=sm_90a -ptx -O3 -std=c++17 -I"$src" -o "$tmp/$name.ptx" "$cu" &&
        sed -i 's/^\.version 9\.0$/.version 8.4/' "$tmp/$name.ptx" ) || { echo "gen-ptx: nvcc failed on ${pair%%:*}/$name.cu" >&2; exit 1; } &
    running=$((running + 1))
    if (( running >= JOBS )); then wait -n || cfail=1; running=$((running - 1)); fi
  done
  while (( running > 0 )); do wait -n || cfail=1; running=$((running - 1)); done
  [[ $cfail == 0 ]] || { rm -rf "$tmp"; exit 1; }
  for cu in "$src"/*.cu; do
    [[ -e "$cu" ]] || continue
    name="$(basename "$cu" .cu)"
    if [[ $CHECK == 1 ]]; then
      if ! cmp -s "$tmp/$name.ptx" "$dst/$name.ptx"; then
        echo "gen-ptx: ${pair##*:}/$name.ptx is not what ${pair%%:*}/$name.cu compiles to: run scripts/gen-ptx.sh and commit" >&2
        status=1
      fi
    else
      cp "$tmp/$name.ptx" "$dst/$name.ptx"
    fi
  done
  if [[ $CHECK == 1 ]]; then
    for ptx in "$dst"/*.ptx; do
      [[ -e "$ptx" ]] || continue
      name="$(basename "$ptx" .ptx)"
      [[ -e "$src/$name.cu" ]] || { echo "gen-ptx: ${pair##*:}/$name.ptx has no source $name.cu" >&2; status=1; }
    done
  fi
  rm -rf "$tmp"
done
exit $status
