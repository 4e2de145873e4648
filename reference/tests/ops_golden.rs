//! Every op-level vector of `../shared/golden/tiny/ops.safetensors`: quantisers bit for bit,
//! GEMMs / attention / Sinkhorn / Hadamard / RoPE within 1e-5.

use dsv4_reference::checkpoint::Bytes;
use dsv4_reference::golden::{rel_err, shared_path, GoldenFile};
use dsv4_reference::linear::{Linear, Weight};
use dsv4_reference::ops::{attention::sparse_attn, hadamard::hadamard_inplace, mhc::hc_split_sinkhorn, rope::Rope};
use dsv4_reference::quant::{act_quant_fp4_inplace, act_quant_fp8, act_quant_fp8_inplace, ActQuant};

fn ops() -> GoldenFile {
    GoldenFile::open(shared_path(env!("CARGO_MANIFEST_DIR"), "golden/tiny/ops.safetensors")).expect("ops.safetensors")
}

fn assert_bits_eq(got: &[f32], want: &[f32], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let bad = got.iter().zip(want).filter(|(a, b)| a.to_bits() != b.to_bits()).count();
    let first = got.iter().zip(want).position(|(a, b)| a.to_bits() != b.to_bits());
    assert_eq!(bad, 0, "{what}: {bad} of {} values differ, first at {first:?}: {:?}", got.len(), first.map(|i| (got[i], want[i])));
}

fn close(got: &[f32], want: &[f32], tol: f64, what: &str) {
    let e = rel_err(got, want);
    println!("{what}: relative error {e:.3e}");
    assert!(e < tol, "{what}: relative error {e:.3e} >= {tol:e}");
}

#[test]
fn act_quant_block128_is_bit_exact() {
    let g = ops();
    let x = g.f32s("act_quant.x");
    let cols = g.shape("act_quant.x")[1];
    let (q, s) = act_quant_fp8(&x, cols, 128);
    assert_bits_eq(&q, &g.f32s("act_quant.y_fp8_as_f32"), "act_quant q");
    assert_bits_eq(&s, &g.f32s("act_quant.scale"), "act_quant scale");
}

#[test]
fn act_quant_block64_inplace_is_bit_exact() {
    let g = ops();
    let mut x = g.f32s("act_quant_b64_inplace.x");
    act_quant_fp8_inplace(&mut x, 64);
    assert_bits_eq(&x, &g.f32s("act_quant_b64_inplace.y"), "act_quant_b64_inplace");
}

#[test]
fn fp4_act_quant_inplace_is_bit_exact() {
    let g = ops();
    let mut x = g.f32s("fp4_act_quant_inplace.x");
    act_quant_fp4_inplace(&mut x, 32);
    assert_bits_eq(&x, &g.f32s("fp4_act_quant_inplace.y"), "fp4_act_quant_inplace");
}

#[test]
fn hadamard128_matches() {
    let g = ops();
    let mut x = g.f32s("hadamard128.x");
    hadamard_inplace(&mut x, 128);
    close(&x, &g.f32s("hadamard128.y"), 1e-5, "hadamard128");
}

#[test]
fn fp8_gemm_matches() {
    let g = ops();
    let a = g.f32s("fp8_gemm.a");
    let [n, k] = g.shape("fp8_gemm.w_e4m3_bits")[..] else { panic!() };
    let lin = Linear { out: n, inp: k, weight: Weight::Fp8 { w: Bytes::from_vec(g.bytes("fp8_gemm.w_e4m3_bits")), scale: Bytes::from_vec(g.bytes("fp8_gemm.w_scale_e8m0_bits")) } };
    close(&lin.forward(&a, ActQuant::On), &g.f32s("fp8_gemm.out"), 1e-5, "fp8_gemm");
}

#[test]
fn fp4_gemm_matches() {
    let g = ops();
    let a = g.f32s("fp4_gemm.a");
    let n = g.shape("fp4_gemm.w_packed")[0];
    let k = g.shape("fp4_gemm.a")[1];
    let lin = Linear { out: n, inp: k, weight: Weight::Fp4 { w: Bytes::from_vec(g.bytes("fp4_gemm.w_packed")), scale: Bytes::from_vec(g.bytes("fp4_gemm.w_scale_e8m0_bits")) } };
    close(&lin.forward(&a, ActQuant::On), &g.f32s("fp4_gemm.out"), 1e-5, "fp4_gemm");
}

#[test]
fn sparse_attn_matches() {
    let g = ops();
    let q = g.f32s("sparse_attn.q");
    let kv = g.f32s("sparse_attn.kv");
    let [b, s, h, d] = g.shape("sparse_attn.q")[..] else { panic!() };
    let n = g.shape("sparse_attn.kv")[1];
    let k = g.shape("sparse_attn.idx")[2];
    let idx: Vec<i32> = g.ints("sparse_attn.idx").iter().map(|&v| v as i32).collect();
    let sink = g.f32s("sparse_attn.sink");
    let scale = g.f32s("sparse_attn.scale")[0];
    let mut out = Vec::new();
    for bi in 0..b {
        out.extend(sparse_attn(&q[bi * s * h * d..(bi + 1) * s * h * d], &kv[bi * n * d..(bi + 1) * n * d], &idx[bi * s * k..(bi + 1) * s * k], &sink, scale, d));
    }
    close(&out, &g.f32s("sparse_attn.out"), 1e-5, "sparse_attn");
}

#[test]
fn hc_sinkhorn_matches() {
    let g = ops();
    let mixes = g.f32s("hc_sinkhorn.mixes");
    let (scale, base) = (g.f32s("hc_sinkhorn.scale"), g.f32s("hc_sinkhorn.base"));
    let (mut pre, mut post, mut comb) = (Vec::new(), Vec::new(), Vec::new());
    for m in mixes.chunks(24) {
        let (p, q, c) = hc_split_sinkhorn(m, &scale, &base, 4, 20, 1e-6);
        pre.extend(p);
        post.extend(q);
        comb.extend(c);
    }
    close(&pre, &g.f32s("hc_sinkhorn.pre"), 1e-5, "sinkhorn pre");
    close(&post, &g.f32s("hc_sinkhorn.post"), 1e-5, "sinkhorn post");
    close(&comb, &g.f32s("hc_sinkhorn.comb"), 1e-5, "sinkhorn comb");
}

fn check_rope(g: &GoldenFile, name: &str, rope: &Rope) {
    let cos = g.f32s(&format!("rope.{name}.cos"));
    let sin = g.f32s(&format!("rope.{name}.sin"));
    let half = rope.freqs.len();
    let (mut c, mut s) = (Vec::new(), Vec::new());
    for pos in 0..cos.len() / half {
        let (cp, sp) = rope.cos_sin(pos);
        c.extend(cp);
        s.extend(sp);
    }
    let max_abs = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0f32, f32::max);
    let (ec, es) = (max_abs(&c, &cos), max_abs(&s, &sin));
    println!("rope {name}: max abs error cos {ec:.2e} sin {es:.2e}");
    assert!(ec < 1e-5 && es < 1e-5, "rope {name}: max abs error cos {ec:e} sin {es:e}");
}

#[test]
fn rope_tables_match() {
    let g = ops();
    check_rope(&g, "plain_theta1e4", &Rope::new(64, 1e4, 0, 1.0, 32.0, 1.0));
    check_rope(&g, "yarn_theta1.6e5_orig64_factor4", &Rope::new(64, 1.6e5, 64, 4.0, 32.0, 1.0));
    check_rope(&g, "flash_compressed", &Rope::new(64, 1.6e5, 65536, 16.0, 32.0, 1.0));
}
