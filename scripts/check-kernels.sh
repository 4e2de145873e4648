#!/usr/bin/env bash
# Kernel CI without a GPU:
#   1. installs the pinned CUDA 13.0 compiler wheels (scripts/cuda-tools.sh) if needed;
#   2. scripts/gen-ptx.sh --check: the committed PTX is what its CUDA C++ source compiles to;
#   3. every .ptx under kernels/ptx/ and kernels/emu/tests/ptx/ says `.version` <= 8.4 and
#      `.target sm_90a`;
#   4. assembles each with `ptxas -arch=sm_90a -v --warn-on-spills --warn-on-local-memory-usage
#      -Werror` (files under kernels/emu/tests/ptx/ may use local memory, e.g. the dynamically
#      indexed local-array kernel, so they drop --warn-on-local-memory-usage; spills still fail);
#   5. prints any C75xx advisory and "Potential Performance Loss" line, and a resource table
#      FILE ENTRY REGS SMEM SPILL_S SPILL_L STACK parsed from ptxas -v (which writes to stderr).
# Exits non-zero on any failure. Needs python3 + pip (PyPI) on a fresh machine; no GPU.
set -uo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"

fail=0
err() { echo "check-kernels: $*" >&2; fail=1; }

BIN="$("$ROOT/scripts/cuda-tools.sh")" || { echo "check-kernels: installing the CUDA tools failed" >&2; exit 1; }
PTXAS="$BIN/ptxas"
[[ -x "$PTXAS" ]] || { echo "check-kernels: no ptxas at $PTXAS" >&2; exit 1; }

echo "== gen-ptx --check"
"$ROOT/scripts/gen-ptx.sh" --check || err "committed PTX is stale (run scripts/gen-ptx.sh)"

mapfile -t FILES < <(find kernels/ptx kernels/emu/tests/ptx -name '*.ptx' -type f 2>/dev/null | LC_ALL=C sort)
[[ ${#FILES[@]} -gt 0 ]] || err "no .ptx files found"

echo "== header policy (.version <= 8.4, .target sm_90a)"
for f in "${FILES[@]}"; do
  ver="$(grep -m1 -E '^[[:space:]]*\.version[[:space:]]' "$f" | awk '{print $2}')"
  if [[ -z "$ver" ]]; then
    err "$f: no .version directive"
  elif ! awk -v v="$ver" 'BEGIN { split(v, p, "."); exit !((p[1] + 0) < 8 || ((p[1] + 0) == 8 && (p[2] + 0) <= 4)) }'; then
    err "$f: .version $ver is above the 8.4 policy (driver floor R550 / CUDA 12.4)"
  fi
  tgt="$(grep -m1 -E '^[[:space:]]*\.target[[:space:]]' "$f" | sed -E 's/^[[:space:]]*\.target[[:space:]]+//; s/[[:space:]]*(\/\/.*)?$//')"
  [[ "$tgt" == "sm_90a" ]] || err "$f: .target is '${tgt:-missing}', want sm_90a"
done

echo "== ptxas -arch=sm_90a"
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
TABLE="$TMP/table"
printf '%-44s %-28s %5s %7s %7s %7s %6s\n' FILE ENTRY REGS SMEM SPILL_S SPILL_L STACK >"$TABLE"
for f in "${FILES[@]}"; do
  flags=(-arch=sm_90a -v --warn-on-spills -Werror)
  case "$f" in
    kernels/emu/tests/ptx/*) ;;                       # test kernels: local memory allowed
    *) flags+=(--warn-on-local-memory-usage) ;;       # shipped kernels: no local memory
  esac
  log="$TMP/$(basename "$f").log"
  if ! "$PTXAS" "${flags[@]}" -o "$TMP/out.cubin" "$f" >"$log" 2>&1; then
    err "$f: ptxas failed:"
    grep -vE '^ptxas info|^[[:space:]]+[0-9]+ bytes stack frame' "$log" | sed 's/^/    /' >&2
  fi
  # Advisories go both to the console and above their kernel's row in the table.
  awk -v file="$f" '
    /C75[0-9][0-9]|Potential Performance Loss/ { print "  " file ": " $0 > "/dev/stderr"; pending = pending "  " $0 "\n"; next }
    /Compiling entry function/ { match($0, /\x27[^\x27]+\x27/); entry = substr($0, RSTART + 1, RLENGTH - 2);
                                 regs = 0; smem = 0; ss = 0; sl = 0; st = 0; inentry = 0; next }
    /Function properties for/ { n = $0; sub(/.*Function properties for /, "", n); inentry = (n == entry); next }
    inentry && /bytes stack frame/ { st = $1; ss = $5; sl = $9; next }
    /Used [0-9]+ registers/ && entry != "" {
      regs = $0; sub(/.*Used /, "", regs); sub(/ registers.*/, "", regs)
      smem = 0; if ($0 ~ /bytes smem/) { smem = $0; sub(/ bytes smem.*/, "", smem); sub(/.*, /, "", smem) }
      if (pending != "") { printf "%s", pending; pending = "" }
      printf "%-44s %-28s %5s %7s %7s %7s %6s\n", file, entry, regs, smem, ss, sl, st
      entry = ""; inentry = 0; next }
    END { if (pending != "") printf "%s", pending }
  ' "$log" >>"$TABLE"
done
echo
cat "$TABLE"
echo
if [[ $fail != 0 ]]; then
  echo "check-kernels: FAILED" >&2
  exit 1
fi
echo "check-kernels: OK (${#FILES[@]} files)"
