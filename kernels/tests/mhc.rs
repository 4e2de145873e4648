//! The mHC kernels against `dsv4_reference::ops::mhc::{hc_pre, hc_post, hc_head}` followed by
//! `rms_norm_inplace`, as `Model::sublayer` and `Model::head_logits` chain them: random streams,
//! parameters, nc 1..4, odd d, several tokens, Sinkhorn iterations 1..20.
//!
//! Tolerances: the mix (post, comb) within 2e-5 absolute (the (fn·v) dot products and the sum of
//! squares are reduced in a tree; expf within 2 ulp of the host's exp), the normed outputs
//! within 2e-5·(|ref| + rms(ref row)) (the mix's error propagated through Σ pre_j·X_j, plus the
//! norm's tree sum). hc_post is compared bit for bit with the reference fed the device's mix.

use dsv4_kernels::ops::mhc::{hc_head_norm, hc_post, hc_post_into, hc_pre_norm, hc_pre_norm_into, mix_cols, scratch_len, DevHc};
use dsv4_kernels::ops::norm::DevNorm;
use dsv4_kernels::Gpu;
use dsv4_reference::ops::mhc::{hc_head, hc_post as ref_hc_post, hc_pre, HcMix, HcParams};
use dsv4_reference::ops::norm::rms_norm_inplace;
use proptest::prelude::*;

const NORM_EPS: f32 = 1e-6;
const HC_EPS: f32 = 1e-6;

mod common;
use common::Rng;

fn params(rng: &mut Rng, n_mix: usize, nc: usize, d: usize, n_scale: usize) -> HcParams {
    HcParams { fn_: rng.vec(n_mix * nc * d, -0.5, 0.5), base: rng.vec(n_mix, -1.0, 1.0), scale: rng.vec(n_scale, 0.2, 2.0) }
}

fn assert_rows_close(got: &[f32], want: &[f32], d: usize, what: &str) {
    assert_eq!(got.len(), want.len());
    for (r, (g, w)) in got.chunks(d).zip(want.chunks(d)).enumerate() {
        let rms = (w.iter().map(|v| v * v).sum::<f32>() / d as f32).sqrt();
        for (i, (a, b)) in g.iter().zip(w).enumerate() {
            assert!(!a.is_nan(), "{what} row {r}[{i}] is NaN");
            assert!((a - b).abs() <= 2e-5 * (b.abs() + rms), "{what} row {r}[{i}]: gpu {a} ref {b}");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(10))]

    #[test]
    fn pre_norm_and_post_match_reference(t in 1usize..4, nc in 1usize..9, d in 1usize..150, iters in prop::sample::select(vec![1usize, 2, 7, 20]), seed in 1u64..u64::MAX) {
        let gpu = Gpu::for_tests();
        let mut rng = Rng(seed);
        let n_mix = (2 + nc) * nc;
        let p = params(&mut rng, n_mix, nc, d, 3);
        let norm = rng.vec(d, 0.5, 1.5);
        let x = rng.vec(t * nc * d, -2.0, 2.0);
        // Reference: hc_pre then the sublayer's RMSNorm.
        let mut want_y = Vec::new();
        let mut want_mix = Vec::new();
        for xt in x.chunks(nc * d) {
            let (mut y, m) = hc_pre(xt, &p, nc, iters, NORM_EPS, HC_EPS);
            rms_norm_inplace(&mut y, &norm, NORM_EPS);
            want_y.extend(y);
            want_mix.extend(m.post.iter().chain(&m.comb).copied());
        }
        let hc = DevHc::upload(&gpu, &p, nc).unwrap();
        let dn = DevNorm::upload(&gpu, &norm).unwrap();
        let dx = gpu.upload_f32(&x).unwrap();
        let dy = gpu.alloc_poisoned(t * d * 4).unwrap();
        let dmix = gpu.alloc_poisoned(t * mix_cols(nc) * 4).unwrap();
        let scratch = gpu.alloc_poisoned(scratch_len(&hc, t) * 4).unwrap();
        hc_pre_norm_into(&gpu, &dx, &hc, &dn, t, iters, NORM_EPS, HC_EPS, &dy, &dmix, &scratch).unwrap();
        let got_mix = dmix.download_f32().unwrap();
        prop_assert_eq!(got_mix.len(), t * mix_cols(nc));
        for (i, (a, b)) in got_mix.iter().zip(&want_mix).enumerate() {
            prop_assert!(!a.is_nan() && (a - b).abs() <= 2e-5, "mix[{}]: gpu {} ref {}", i, a, b);
        }
        assert_rows_close(&dy.download_f32().unwrap(), &want_y, d, "hc_pre_norm y");

        // hc_post on the device's mix, bit for bit; out of place and in place.
        let f = rng.vec(t * d, -3.0, 3.0);
        let want_post: Vec<f32> = (0..t)
            .flat_map(|i| {
                let m = &got_mix[i * mix_cols(nc)..(i + 1) * mix_cols(nc)];
                let mix = HcMix { post: m[..nc].to_vec(), comb: m[nc..].to_vec() };
                ref_hc_post(&f[i * d..(i + 1) * d], &x[i * nc * d..(i + 1) * nc * d], &mix)
            })
            .collect();
        let df = gpu.upload_f32(&f).unwrap();
        let out = gpu.alloc_poisoned(t * nc * d * 4).unwrap();
        hc_post_into(&gpu, &df, &dx, &dmix, t, nc, d, &out).unwrap();
        let got = out.download_f32().unwrap();
        prop_assert!(got.iter().zip(&want_post).all(|(a, b)| a.to_bits() == b.to_bits()), "hc_post differs");
        hc_post_into(&gpu, &df, &dx, &dmix, t, nc, d, &dx).unwrap();
        let got = dx.download_f32().unwrap();
        prop_assert!(got.iter().zip(&want_post).all(|(a, b)| a.to_bits() == b.to_bits()), "hc_post in place differs");
    }

    #[test]
    fn head_norm_matches_reference(t in 1usize..5, nc in 1usize..9, d in 1usize..150, seed in 1u64..u64::MAX) {
        let gpu = Gpu::for_tests();
        let mut rng = Rng(seed);
        let p = params(&mut rng, nc, nc, d, 1);
        let norm = rng.vec(d, 0.5, 1.5);
        let x = rng.vec(t * nc * d, -2.0, 2.0);
        // A few rows, in any order, possibly repeated (e.g. the last row of each sequence).
        let rows: Vec<u32> = (0..1 + rng.below(4)).map(|_| rng.below(t) as u32).collect();
        let mut want = Vec::new();
        for &r in &rows {
            let mut y = hc_head(&x[r as usize * nc * d..(r as usize + 1) * nc * d], &p, NORM_EPS, HC_EPS);
            rms_norm_inplace(&mut y, &norm, NORM_EPS);
            want.extend(y);
        }
        let hc = DevHc::upload(&gpu, &p, nc).unwrap();
        let dn = DevNorm::upload(&gpu, &norm).unwrap();
        let dx = gpu.upload_f32(&x).unwrap();
        let dy = hc_head_norm(&gpu, &dx, &hc, &dn, &rows, NORM_EPS, HC_EPS).unwrap();
        assert_rows_close(&dy.download_f32().unwrap(), &want, d, "hc_head_norm");
    }
}

/// Near the model's shape (nc 4; d 1000 so that nc·d spans two 2048-input chunks, the second
/// ragged) for 6 tokens (two groups of 4 in the partial-product kernel, the second partial),
/// hc_pre_norm, hc_post and hc_head_norm; the model has d 4096, slow on the emulator.
#[test]
fn model_like_shape() {
    let gpu = Gpu::for_tests();
    let mut rng = Rng(7);
    let (nc, d, iters, t) = (4, 1000, 20, 6);
    let p = params(&mut rng, (2 + nc) * nc, nc, d, 3);
    let norm = rng.vec(d, 0.5, 1.5);
    let x = rng.vec(t * nc * d, -2.0, 2.0);
    let mut want = Vec::new();
    let mut want_mix = Vec::new();
    for xt in x.chunks(nc * d) {
        let (mut y, m) = hc_pre(xt, &p, nc, iters, NORM_EPS, HC_EPS);
        rms_norm_inplace(&mut y, &norm, NORM_EPS);
        want.extend(y);
        want_mix.extend(m.post.iter().chain(&m.comb).copied());
    }
    let hc = DevHc::upload(&gpu, &p, nc).unwrap();
    let dn = DevNorm::upload(&gpu, &norm).unwrap();
    let dx = gpu.upload_f32(&x).unwrap();
    let dy = gpu.alloc_poisoned(t * d * 4).unwrap();
    let dmix = gpu.alloc_poisoned(t * mix_cols(nc) * 4).unwrap();
    let scratch = gpu.alloc_poisoned(scratch_len(&hc, t) * 4).unwrap();
    hc_pre_norm_into(&gpu, &dx, &hc, &dn, t, iters, NORM_EPS, HC_EPS, &dy, &dmix, &scratch).unwrap();
    let got_mix = dmix.download_f32().unwrap();
    for (a, b) in got_mix.iter().zip(&want_mix) {
        assert!((a - b).abs() <= 2e-5, "mix: gpu {a} ref {b}");
    }
    assert_rows_close(&dy.download_f32().unwrap(), &want, d, "y");
    // The allocating forms give the same numbers.
    let (dy2, dmix2) = hc_pre_norm(&gpu, &dx, &hc, &dn, t, iters, NORM_EPS, HC_EPS).unwrap();
    assert_eq!(dy2.download_f32().unwrap(), dy.download_f32().unwrap());
    assert_eq!(dmix2.download_f32().unwrap(), got_mix);
    let f = rng.vec(t * d, -1.0, 1.0);
    let df = gpu.upload_f32(&f).unwrap();
    let out = hc_post(&gpu, &df, &dx, &dmix, t, nc, d).unwrap().download_f32().unwrap();
    for i in 0..t {
        let m = &got_mix[i * mix_cols(nc)..(i + 1) * mix_cols(nc)];
        let want_post =
            ref_hc_post(&f[i * d..(i + 1) * d], &x[i * nc * d..(i + 1) * nc * d], &HcMix { post: m[..nc].to_vec(), comb: m[nc..].to_vec() });
        assert!(out[i * nc * d..(i + 1) * nc * d].iter().zip(&want_post).all(|(a, b)| a.to_bits() == b.to_bits()));
    }
    // The head on rows 5, 0, 5 (rows past a group of 4, repeated).
    let ph = params(&mut rng, nc, nc, d, 1);
    let hh = DevHc::upload(&gpu, &ph, nc).unwrap();
    let rows = [5u32, 0, 5];
    let got = hc_head_norm(&gpu, &dx, &hh, &dn, &rows, NORM_EPS, HC_EPS).unwrap().download_f32().unwrap();
    let mut want_h = Vec::new();
    for &r in &rows {
        let mut y = hc_head(&x[r as usize * nc * d..(r as usize + 1) * nc * d], &ph, NORM_EPS, HC_EPS);
        rms_norm_inplace(&mut y, &norm, NORM_EPS);
        want_h.extend(y);
    }
    assert_rows_close(&got, &want_h, d, "hc_head_norm");
}
