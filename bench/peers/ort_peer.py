"""onnxruntime peer: y[b, out] = x[b, inp] . W[out, inp]^T with com.microsoft.MatMulNBits
(uniform int4 / int8 codes, one fp32 scale per block, symmetric: no zero-point input).

One ONNX model holds `copies` MatMulNBits nodes, each with its own weight initializer (distinct
memory, >= --mb MB in all, so weights come from DRAM), all reading the same input. One warm-up
run, then the median of --sweeps timed runs. Prints one JSON line per batch size; median_ms and
weight_bytes are per matrix (weight_bytes = codes + fp32 scales, the stored format).
Caveats: uniform int4/int8 is a stand-in for e2m1/e4m3, not the same arithmetic; MLAS prepacks
the weights at session creation (an in-RAM copy in its own layout).
"""
import argparse
import json
import math
import time

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper


def build(out, inp, bits, block, acc, copies):
    # Every copy gets its own random codes and scales: onnxruntime shares identical initializers
    # (the copies would collapse into one cache-resident matrix, measured at 2-3x DRAM speed).
    rng = np.random.default_rng(0)
    kb = inp // block
    blob = block * bits // 8
    nodes, inits, outs = [], [], []
    for c in range(copies):
        codes = rng.integers(0, 256, size=(out, kb, blob), dtype=np.uint8)
        scales = (rng.random(out * kb, dtype=np.float32) * 0.01 + 0.001).astype(np.float32)
        inits.append(helper.make_tensor(f"B{c}", TensorProto.UINT8, codes.shape, codes.tobytes(), raw=True))
        inits.append(helper.make_tensor(f"S{c}", TensorProto.FLOAT, scales.shape, scales.tobytes(), raw=True))
        nodes.append(helper.make_node(
            "MatMulNBits", ["X", f"B{c}", f"S{c}"], [f"Y{c}"], domain="com.microsoft",
            K=inp, N=out, bits=bits, block_size=block, accuracy_level=acc))
        outs.append(helper.make_tensor_value_info(f"Y{c}", TensorProto.FLOAT, ["B", out]))
    graph = helper.make_graph(nodes, "peer", [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["B", inp])],
                              outs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)])
    model.ir_version = 9
    return model.SerializeToString(), codes.nbytes + scales.nbytes


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bits", type=int, default=4)
    ap.add_argument("--block", type=int, default=32)
    ap.add_argument("--acc", type=int, default=4)
    ap.add_argument("--out", type=int, default=2048)
    ap.add_argument("--inp", type=int, default=4096)
    ap.add_argument("--batch", default="1,8,32")
    ap.add_argument("--mb", type=float, default=512)
    ap.add_argument("--sweeps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--impl", default=None)
    a = ap.parse_args()
    wbytes = a.out * a.inp * a.bits // 8 + a.out * (a.inp // a.block) * 4
    copies = max(2, math.ceil(a.mb * 1e6 / wbytes))
    impl = a.impl or f"onnxruntime-matmulnbits{a.bits}"
    model, wbytes = build(a.out, a.inp, a.bits, a.block, a.acc, copies)
    so = ort.SessionOptions()
    so.intra_op_num_threads = a.threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    sess = ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
    del model
    for b in [int(s) for s in a.batch.split(",")]:
        x = np.random.default_rng(1).standard_normal((b, a.inp), dtype=np.float32)
        sess.run(None, {"X": x})  # warm-up
        ts = []
        for _ in range(a.sweeps):
            t = time.perf_counter()
            sess.run(None, {"X": x})
            ts.append((time.perf_counter() - t) * 1e3 / copies)
        ts.sort()
        print(json.dumps({"impl": impl, "format": f"int{a.bits}-b{a.block}", "out": a.out, "inp": a.inp,
                          "batch": b, "weight_bytes": wbytes, "median_ms": ts[len(ts) // 2],
                          "runs": a.sweeps, "copies": copies, "accuracy_level": a.acc,
                          "version": ort.__version__}), flush=True)


if __name__ == "__main__":
    main()
