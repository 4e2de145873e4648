#!/usr/bin/env bash
# CPU peers on the DeepSeek-V4-Flash GEMV shapes (issue 11): ggml (llama.cpp's, from the PyPI
# llama-cpp-python sdist) MXFP4 / Q4_0 / Q8_0 / F16 / BF16 with and without CPU_REPACK,
# onnxruntime MatMulNBits int4/int8, candle-core QMatMul q4_0/q4k/q8_0 and BF16/F16 matmul.
# torch is not installed (its PyPI wheel pulls ~4 GB of CUDA packages): see bench/peers/README.md.
#
#   scripts/cpu-peers.sh [--quick] [--roofline GBPS] --json OUT
#
# --roofline GBPS: the bandwidth for pct_of_roofline; when absent the script measures it
# (bench/peers/stream_read.c: read-only sum of 1.07 GB on 2 threads, median of 9 passes, before
# and after the runs, the larger kept). PEERS_WAIT_IDLE=S: wait at most S s for an idle host
# before each run (default 45, 10 with --quick).
#
# Installs into .peers/ (gitignored): a venv with cmake, ninja, numpy, onnx, onnxruntime; the
# llama-cpp-python sdist and its ggml build; the candle peer's cargo target dir. Builds run under
# `nice -n 19`; the timed runs do not (a niced 2-thread run on a busy box measures the scheduler).
# A peer that fails to build or run is skipped with a message; the others still run.
#
# Method: random weights; distinct weight copies totalling >= 512 MB per case (>= 128 MB with
# --quick) so weights stream from DRAM; one warm-up sweep; median of 5 sweeps (3 with --quick);
# 2 threads. GB/s = bytes of the peer's stored weight format / time per matrix.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
P="${PEERS_DIR:-$ROOT/.peers}"  # PEERS_DIR: install/build elsewhere (default .peers/, gitignored)
QUICK=0
ROOFLINE=""
OUT=""
while [[ $# -gt 0 ]]; do
    case "$1" in
        --quick) QUICK=1; shift ;;
        --roofline) ROOFLINE="$2"; shift 2 ;;
        --json) OUT="$2"; shift 2 ;;
        -h|--help) sed -n '2,/^set /p' "$0" | grep '^#'; exit 0 ;;
        *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
done
[[ -n "$OUT" ]] || { echo "usage: $0 [--quick] [--roofline GBPS] --json OUT" >&2; exit 2; }
case "$OUT" in /*) ;; *) OUT="$PWD/$OUT" ;; esac

if [[ $QUICK == 1 ]]; then MB=128; SWEEPS=3; else MB=512; SWEEPS=5; fi
THREADS=2
BATCHES=1,8,32
LCP_VER=0.3.36          # llama-cpp-python sdist (vendors llama.cpp + ggml)
ORT_VER=1.32.0
ONNX_VER=1.23.2
export RAYON_NUM_THREADS=$THREADS
mkdir -p "$P"
RAW="$P/raw.jsonl"
: > "$RAW"
log() { echo "[cpu-peers $(date -u +%H:%M:%S)] $*" >&2; }
declare -A NOTE BUILT

# ---------------------------------------------------------------- python venv (cmake, ninja, ort)
PY="$P/venv/bin/python"
if [[ ! -x "$PY" ]]; then
    log "creating venv $P/venv"
    python3 -m venv "$P/venv" || { log "venv failed"; }
fi
PIP_CMD="$P/venv/bin/pip install cmake ninja numpy onnx==$ONNX_VER onnxruntime==$ORT_VER"
if ! "$PY" -c 'import onnxruntime, onnx, numpy, cmake, ninja' 2>/dev/null; then
    log "$PIP_CMD"
    $PIP_CMD > "$P/pip.log" 2>&1 || log "pip install failed (see $P/pip.log)"
fi
export PATH="$P/venv/bin:$PATH"

# ---------------------------------------------------------------- ggml (llama-cpp-python sdist)
L="$P/src/llama_cpp_python-$LCP_VER/vendor/llama.cpp"
GB="$P/ggml-build"
GGML_CMAKE="cmake -S $L -B $GB -G Ninja -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON -DBUILD_SHARED_LIBS=OFF -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_SERVER=OFF"
GGML_BUILD="nice -n 19 cmake --build $GB -j2 --target ggml-cpu ggml-base ggml"
GGML_LINK="g++ -O2 -march=native -x c $ROOT/bench/peers/ggml_peer.c -x none -I$L/ggml/include -o $P/ggml_peer $GB/ggml/src/libggml.a $GB/ggml/src/libggml-cpu.a $GB/ggml/src/libggml-base.a -fopenmp -lpthread -lm"
build_ggml() {
    local t0=$SECONDS
    if [[ ! -f "$L/ggml/CMakeLists.txt" ]]; then
        mkdir -p "$P/src"
        log "pip download --no-deps --no-binary llama-cpp-python llama-cpp-python==$LCP_VER"
        (cd "$P/src" && "$P/venv/bin/pip" download --no-deps --no-binary llama-cpp-python \
            "llama-cpp-python==$LCP_VER" -d . > "$P/ggml-download.log" 2>&1) || return 1
        tar xzf "$P/src/llama_cpp_python-$LCP_VER.tar.gz" -C "$P/src" \
            "llama_cpp_python-$LCP_VER/vendor/llama.cpp" || return 1
    fi
    if [[ ! -f "$GB/ggml/src/libggml-cpu.a" ]]; then
        log "building ggml: $GGML_CMAKE && $GGML_BUILD"
        # GIT_CEILING_DIRECTORIES: the sdist has no .git; keep cmake from reading this repo's commit
        GIT_CEILING_DIRECTORIES="$P/src" $GGML_CMAKE > "$P/ggml-build.log" 2>&1 || return 1
        $GGML_BUILD >> "$P/ggml-build.log" 2>&1 || return 1
    fi
    $GGML_LINK > "$P/ggml-link.log" 2>&1 || return 1
    log "ggml ready ($((SECONDS - t0)) s)"
}
if build_ggml; then BUILT[ggml]=1; else log "SKIP ggml: build failed (logs in $P/ggml-*.log)"; fi
GGML_VER="$(sed -n 's/^set(GGML_VERSION_\(MAJOR\|MINOR\|PATCH\) \([0-9]*\))/\2/p' "$L/ggml/CMakeLists.txt" 2>/dev/null | paste -sd.)"
NOTE[ggml]="ggml $GGML_VER vendored in llama-cpp-python $LCP_VER sdist (pip download --no-deps --no-binary llama-cpp-python llama-cpp-python==$LCP_VER); built: $GGML_CMAKE && $GGML_BUILD; driver: g++ -O2 -march=native bench/peers/ggml_peer.c + libggml/libggml-cpu/libggml-base (OpenMP); ggml_backend_cpu n_threads=$THREADS, F32 activations"

# ---------------------------------------------------------------- onnxruntime
if "$PY" -c 'import onnxruntime, onnx' 2>/dev/null; then BUILT[ort]=1; else log "SKIP onnxruntime: not installed"; fi
ORT_HAVE="$("$PY" -c 'import onnxruntime as o, onnx; print(o.__version__, onnx.__version__)' 2>/dev/null)"
NOTE[ort]="onnxruntime/onnx ${ORT_HAVE:-?} ($PIP_CMD); driver: bench/peers/ort_peer.py, com.microsoft.MatMulNBits symmetric, fp32 scales, intra_op_num_threads=$THREADS"

# ---------------------------------------------------------------- candle
CT="$P/candle-target"
CANDLE_BUILD="cd bench/peers/candle && CARGO_TARGET_DIR=.peers/candle-target RUSTFLAGS='-C target-cpu=native' nice -n 19 cargo build --release"
t0=$SECONDS
if (cd "$ROOT/bench/peers/candle" && CARGO_TARGET_DIR="$CT" RUSTFLAGS="-C target-cpu=native" \
        nice -n 19 cargo build --release > "$P/candle-build.log" 2>&1); then
    BUILT[candle]=1; log "candle ready ($((SECONDS - t0)) s)"
else
    log "SKIP candle: build failed (see $P/candle-build.log)"
fi
CANDLE_VER="$(grep -A1 'name = "candle-core"' "$ROOT/bench/peers/candle/Cargo.lock" 2>/dev/null | sed -n 's/version = "\(.*\)"/\1/p')"
NOTE[candle]="candle-core ${CANDLE_VER:-?} ($CANDLE_BUILD); driver: bench/peers/candle, RAYON_NUM_THREADS=$THREADS"

# ---------------------------------------------------------------- roofline
# The box may be shared: before each run wait (at most WAIT_MAX s) for a 1 s window with >= 85%
# idle CPU, and record the idle share seen, so a contended number can be told from a clean one.
WAIT_MAX="${PEERS_WAIT_IDLE:-$([[ $QUICK == 1 ]] && echo 10 || echo 45)}"
idle_pct() {
    local a b; a=($(head -1 /proc/stat)); sleep 1; b=($(head -1 /proc/stat))
    local tot=0 i
    for i in 1 2 3 4 5 6 7 8; do tot=$((tot + b[i] - a[i])); done
    echo $(( tot > 0 ? 100 * (b[4] - a[4] + b[5] - a[5]) / tot : 0 ))
}
wait_quiet() {
    local t0=$SECONDS idle
    idle="$(idle_pct)"
    while (( idle < 85 && SECONDS - t0 < WAIT_MAX )); do idle="$(idle_pct)"; done
    echo "$idle"
}
if [[ -z "$ROOFLINE" ]]; then
    if gcc -O3 -march=native -ffast-math -fopenmp "$ROOT/bench/peers/stream_read.c" -o "$P/stream_read" 2> "$P/stream-build.log"; then
        log "roofline: waiting for an idle host (host idle $(wait_quiet)%)"
        ROOFLINE="$(OMP_NUM_THREADS=$THREADS OMP_PROC_BIND=close "$P/stream_read" 2>/dev/null)"
        log "roofline (read-only sum, 1.07 GB, $THREADS threads, median of 9): $ROOFLINE GB/s"
    fi
    [[ -n "$ROOFLINE" ]] || { log "roofline measurement failed; using 0"; ROOFLINE=0; }
    MEASURE_ROOF_AGAIN=1
fi

# ---------------------------------------------------------------- runs
# case name, out, inp, role (fp4 = routed expert, fp8 = dense FP8 projection, bf16 = head)
CASES=(
    "expert_w1 2048 4096 fp4"
    "expert_w2 4096 2048 fp4"
    "shared_w1 2048 4096 fp8"
    "dense_wq_b 32768 1024 fp8"
    "dense_wo_b 4096 8192 fp8"
    "head 129280 4096 bf16"
)
run_peer() {  # case peer-key cmd...
    local cs="$1" key="$2"; shift 2
    local tmp="$P/run.out" idle
    idle="$(wait_quiet)"
    if timeout 900 "$@" > "$tmp" 2> "$P/run.err"; then
        local load; load="$(cut -d' ' -f1 /proc/loadavg)"
        sed "s/^{/{\"case\":\"$cs\",\"key\":\"$key\",\"load1\":$load,\"idle\":$idle,/" "$tmp" | grep '^{' >> "$RAW"
        grep '^{' "$tmp" | sed 's/^/    /' >&2
    else
        log "FAILED ($key, $cs): $* ; stderr tail:"; tail -3 "$P/run.err" >&2
        grep '^{' "$tmp" 2>/dev/null | sed "s/^{/{\"case\":\"$cs\",\"key\":\"$key\",\"load1\":0,/" >> "$RAW"
    fi
}
G="$P/ggml_peer"; O=("$PY" "$ROOT/bench/peers/ort_peer.py"); C="$CT/release/candle-peer"
for c in "${CASES[@]}"; do
    read -r cs out inp role <<< "$c"
    A=(--out "$out" --inp "$inp" --batch "$BATCHES" --mb "$MB" --sweeps "$SWEEPS")
    log "case $cs (out=$out inp=$inp, $role)"
    case "$role" in
    fp4)
        if [[ -n "${BUILT[ggml]:-}" ]]; then
            for t in mxfp4 q4_0; do for r in 0 1; do
                run_peer "$cs" ggml "$G" --type $t --repack $r --threads $THREADS "${A[@]}"
            done; done
        fi
        if [[ -n "${BUILT[ort]:-}" ]]; then
            run_peer "$cs" ort "${O[@]}" --bits 4 --block 32 --acc 4 --threads $THREADS "${A[@]}"
            run_peer "$cs" ort "${O[@]}" --bits 4 --block 32 --acc 0 --threads $THREADS --impl onnxruntime-matmulnbits4-fp32 "${A[@]}"
        fi
        if [[ -n "${BUILT[candle]:-}" ]]; then
            for f in q4_0 q4k; do run_peer "$cs" candle "$C" --format $f "${A[@]}"; done
        fi ;;
    fp8)
        [[ -n "${BUILT[ggml]:-}" ]] && run_peer "$cs" ggml "$G" --type q8_0 --repack 0 --threads $THREADS "${A[@]}"
        [[ -n "${BUILT[ort]:-}" ]] && run_peer "$cs" ort "${O[@]}" --bits 8 --block 32 --acc 4 --threads $THREADS "${A[@]}"
        [[ -n "${BUILT[candle]:-}" ]] && run_peer "$cs" candle "$C" --format q8_0 "${A[@]}"
        ;;
    bf16)
        if [[ -n "${BUILT[ggml]:-}" ]]; then
            for t in bf16 f16; do run_peer "$cs" ggml "$G" --type $t --repack 0 --threads $THREADS "${A[@]}"; done
        fi
        if [[ -n "${BUILT[candle]:-}" ]]; then
            for f in bf16 f16; do run_peer "$cs" candle "$C" --format $f "${A[@]}"; done
        fi
        log "onnxruntime has no fast CPU fp16/bf16 MatMul for the head: skipped" ;;
    esac
done

# On a shared box one roofline reading can land in someone else's build: measure again after the
# runs and keep the larger of the two medians.
if [[ -n "${MEASURE_ROOF_AGAIN:-}" ]]; then
    log "roofline again: waiting for an idle host (host idle $(wait_quiet)%)"
    R2="$(OMP_NUM_THREADS=$THREADS OMP_PROC_BIND=close "$P/stream_read" 2>/dev/null)"
    log "roofline second reading: ${R2:-failed} GB/s (first $ROOFLINE)"
    if [[ -n "$R2" ]] && python3 -c "import sys; sys.exit(0 if float('$R2') > float('$ROOFLINE') else 1)"; then ROOFLINE="$R2"; fi
fi

# ---------------------------------------------------------------- assemble OUT
export ROOFLINE RAW OUT ROOT
export NOTE_GGML="${NOTE[ggml]}" NOTE_ORT="${NOTE[ort]}" NOTE_CANDLE="${NOTE[candle]}"
export DEVICE="$(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //')"
export COMMIT="$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)"
python3 - <<'EOF'
import json, os, datetime
roof = float(os.environ["ROOFLINE"])
notes = {"ggml": os.environ["NOTE_GGML"], "ort": os.environ["NOTE_ORT"], "candle": os.environ["NOTE_CANDLE"]}
recs = []
for line in open(os.environ["RAW"]):
    r = json.loads(line)
    s = r["median_ms"] / 1e3
    gbps = r["weight_bytes"] / s / 1e9
    extra = f"; {r['copies']} weight copies swept; host idle {r['idle']}% just before the run, load1 {r['load1']} after"
    if "accuracy_level" in r:
        extra += f"; accuracy_level {r['accuracy_level']}"
    if r["impl"].endswith("-repack"):
        extra += "; CPU_REPACK buffer (interleaved in-RAM copy made at load)"
    recs.append({
        "case": f"{r['case']}_b{r['batch']}", "impl": r["impl"], "batch": r["batch"], "format": r["format"],
        "out": r["out"], "inp": r["inp"], "gb_per_s": round(gbps, 3), "roofline_gb_per_s": roof,
        "pct_of_roofline": round(100 * gbps / roof, 1) if roof > 0 else None,
        "gflop_per_s": round(2 * r["out"] * r["inp"] * r["batch"] / s / 1e9, 2),
        "median_ms": round(r["median_ms"], 4), "runs": r["runs"], "device": os.environ["DEVICE"],
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d"),
        "commit": os.environ["COMMIT"], "note": (notes[r["key"]] + extra).replace(os.environ["ROOT"] + "/", ""),
    })
json.dump(recs, open(os.environ["OUT"], "w"), indent=1)
print(f"wrote {len(recs)} records to {os.environ['OUT']}")
print(f"{'case':<18} {'impl':<32} {'format':<9} {'GB/s':>7} {'%roof':>6} {'GFLOP/s':>8} {'ms':>9}")
for r in recs:
    print(f"{r['case']:<18} {r['impl']:<32} {r['format']:<9} {r['gb_per_s']:>7.2f} {r['pct_of_roofline'] or 0:>6.1f} {r['gflop_per_s']:>8.1f} {r['median_ms']:>9.3f}")
EOF
