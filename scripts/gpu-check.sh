#!/usr/bin/env bash
# Runs on the GPU machine (no Rust needed), from the repository root, after
# scripts/gpu-build.sh filled gpu-build/ here and it was carried over:
#  1. every kernel test binary twice: on the device (DSV4_TEST_DEVICE=cuda) and on the
#     emulator (DSV4_TEST_DEVICE=emu), pass/fail per test compared;
#  2. the model end to end on the device against the golden tiny checkpoint;
# and writes results/gpu-check-<date>.{json,md} (device, driver, commit, per-test results,
# time per test binary). Output also goes under $OUT when set (the device tool's return folder).
set -uo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
B=gpu-build
[[ -x $B/dsv4 ]] || { echo "gpu-check: $B/dsv4 missing: run scripts/gpu-build.sh first and carry $B" >&2; exit 2; }
DATE=$(date -u +%Y-%m-%d)
COMMIT=$(cat $B/COMMIT 2>/dev/null || echo unknown)
DEVICE=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1)
DRIVER=$(nvidia-smi --query-gpu=driver_version --format=csv,noheader 2>/dev/null | head -1)
LOG=$(mktemp -d)
echo "device: ${DEVICE:-none}  driver: ${DRIVER:-none}  commit: $COMMIT"

python3 - "$B" "$LOG" "$DATE" "$COMMIT" "${DEVICE:-none}" "${DRIVER:-none}" <<'PY'
import json, os, re, subprocess, sys, time
b, log, date, commit, device, driver = sys.argv[1:7]
tests = sorted(os.listdir(os.path.join(b, "tests")))
rows, per_bin = [], []
def run(binary, dev):
    env = dict(os.environ, DSV4_TEST_DEVICE=dev)
    t0 = time.time()
    p = subprocess.run([binary, "--test-threads=1"], env=env, capture_output=True, text=True)
    dt = time.time() - t0
    open(os.path.join(log, f"{os.path.basename(binary)}.{dev}.log"), "w").write(p.stdout + p.stderr)
    res = dict(re.findall(r"^test (\S+) \.\.\. (ok|FAILED|ignored)", p.stdout, re.M))
    return res, dt, p.returncode
for t in tests:
    path = os.path.join(b, "tests", t)
    cuda, dt_cuda, rc_cuda = run(path, "cuda")
    emu, dt_emu, rc_emu = run(path, "emu")
    per_bin.append({"binary": t, "cuda_s": round(dt_cuda, 3), "emu_s": round(dt_emu, 3), "cuda_rc": rc_cuda, "emu_rc": rc_emu})
    for name in sorted(set(cuda) | set(emu)):
        rows.append({"binary": t, "test": name, "cuda": cuda.get(name, "missing"), "emu": emu.get(name, "missing")})
e2e = {}
golden = "../shared/golden/tiny"
if os.path.isdir(golden):
    t0 = time.time()
    out = os.path.join(log, "logits.safetensors")
    p = subprocess.run([os.path.join(b, "dsv4"), "logits", "--device", "cuda", "--model", golden, "--input", f"{golden}/golden_smooth.safetensors",
                        "--prefill", "37", "--no-act-quant", "--out", out], capture_output=True, text=True)
    c = subprocess.run([os.path.join(b, "dsv4"), "compare", "--out", out, "--golden", f"{golden}/golden_smooth.safetensors"], capture_output=True, text=True)
    e2e = {"cmd": "dsv4 logits --device cuda (golden tiny, smooth) + dsv4 compare", "rc": p.returncode or c.returncode, "seconds": round(time.time() - t0, 2),
           "tail": (p.stdout + p.stderr)[-1000:] + (c.stdout + c.stderr)[-2000:]}
res = {"date": date, "commit": commit, "device": device, "driver": driver, "binaries": per_bin, "tests": rows, "end_to_end": e2e}
os.makedirs("results", exist_ok=True)
base = f"results/gpu-check-{date}"
json.dump(res, open(base + ".json", "w"), indent=1)
agree = sum(r["cuda"] == r["emu"] == "ok" for r in rows)
with open(base + ".md", "w") as f:
    f.write(f"# gpu-check {date}\n\ndevice: {device}, driver {driver}, commit {commit}\n\n")
    f.write(f"{agree}/{len(rows)} tests pass on both the device and the emulator.\n\n| binary | device s | emulator s |\n|---|---|---|\n")
    for p in per_bin:
        f.write(f"| {p['binary']} | {p['cuda_s']} | {p['emu_s']} |\n")
    f.write("\n| test | device | emulator |\n|---|---|---|\n")
    for r in rows:
        if r["cuda"] != "ok" or r["emu"] != "ok":
            f.write(f"| {r['binary']}::{r['test']} | {r['cuda']} | {r['emu']} |\n")
    if e2e:
        f.write(f"\nend to end: `{e2e['cmd']}` rc {e2e['rc']} in {e2e['seconds']} s\n")
print(open(base + ".md").read())
PY
if [[ -n "${OUT:-}" ]]; then cp -r results "$OUT/" && cp -r "$LOG" "$OUT/logs"; fi
