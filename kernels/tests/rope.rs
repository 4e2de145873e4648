//! The RoPE kernel against `dsv4_reference::ops::rope::Rope::apply` (plain rope_theta 10000 and
//! YaRN with the model's compress_rope_theta 160000, original_seq_len 65536, factor 16, betas
//! 32/1), forward and inverse, positions from a start or per row (several sequences, large
//! positions up to 2^20), several heads, rd < hd and rd = hd, strided rows.
//!
//! Tolerance: 1e-6·(|a| + |b|) per rotated pair value (the f32 angle and the f64 cos/sin are
//! formed as in the reference, so the expected difference is exactly 0 except with probability
//! ~2^-28 per value); the non-RoPE dims and the row padding must be unchanged bit for bit.

use dsv4_kernels::ops::norm::{rms_norm_strided, DevNorm};
use dsv4_kernels::ops::rope::{norm_rope_strided, positions_for_chunks, rope_apply, rope_apply_strided, DevRope, Positions};
use dsv4_kernels::Gpu;
use dsv4_reference::ops::norm::{rms_norm_inplace, rms_norm_unweighted_inplace};
use dsv4_reference::ops::rope::Rope;
use proptest::prelude::*;

mod common;
use common::Rng;

fn rope(yarn: bool, rd: usize) -> Rope {
    if yarn {
        Rope::new(rd, 160000.0, 65536, 16.0, 32.0, 1.0)
    } else {
        Rope::new(rd, 10000.0, 0, 1.0, 32.0, 1.0)
    }
}

/// Compare a `[rows, stride]` buffer: rotated tails close, everything else exact.
fn check(got: &[f32], want: &[f32], orig: &[f32], stride: usize, heads: usize, hd: usize, rd: usize) -> usize {
    let mut inexact = 0;
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let c = i % stride;
        let in_rope = c < heads * hd && c % hd >= hd - rd;
        assert!(!g.is_nan(), "element {i} is NaN");
        if in_rope {
            let pair = i - ((c % hd) - (hd - rd)) % 2;
            let mag = orig[pair].abs() + orig[pair + 1].abs();
            assert!((g - w).abs() <= 1e-6 * mag, "element {i}: gpu {g} ref {w}");
            inexact += (g != w) as usize;
        } else {
            assert_eq!(g.to_bits(), w.to_bits(), "element {i} outside the RoPE dims changed");
        }
    }
    inexact
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]

    #[test]
    fn start_positions_match_reference(yarn in any::<bool>(), inverse in any::<bool>(), t in 1usize..5, heads in 1usize..4, half in 1usize..9, nope in 0usize..7, pos0 in prop::sample::select(vec![0u32, 7, 4093, 65535, 1_000_000]), seed in 1u64..u64::MAX) {
        let gpu = Gpu::for_tests();
        let mut rng = Rng(seed);
        let (rd, hd) = (2 * half, 2 * half + nope);
        let r = rope(yarn, rd);
        let x = rng.vec(t * heads * hd, -2.0, 2.0);
        let mut want = x.clone();
        for (i, row) in want.chunks_mut(heads * hd).enumerate() {
            r.apply(row, hd, pos0 as usize + i, inverse);
        }
        let dr = DevRope::upload(&gpu, &r).unwrap();
        let dx = gpu.upload_f32(&x).unwrap();
        rope_apply(&gpu, &dr, &dx, t, heads, hd, Positions::Start(pos0), inverse).unwrap();
        let inexact = check(&dx.download_f32().unwrap(), &want, &x, heads * hd, heads, hd, rd);
        prop_assert_eq!(inexact, 0, "values not bit-exact (allowed by the tolerance, but unexpected)");
    }

    #[test]
    fn per_row_positions_match_reference(yarn in any::<bool>(), inverse in any::<bool>(), n_chunks in 1usize..4, heads in 1usize..3, half in 1usize..6, nope in 0usize..4, pad in 0usize..3, seed in 1u64..u64::MAX) {
        let gpu = Gpu::for_tests();
        let mut rng = Rng(seed);
        let (rd, hd) = (2 * half, 2 * half + nope);
        let stride = heads * hd + pad;
        let chunks: Vec<(usize, usize)> = (0..n_chunks).map(|_| (rng.below(1 << 20), 1 + rng.below(3))).collect();
        let pos = positions_for_chunks(&chunks);
        let rows = pos.len();
        let r = rope(yarn, rd);
        let x = rng.vec(rows * stride, -2.0, 2.0);
        let mut want = x.clone();
        for (row, &p) in want.chunks_mut(stride).zip(&pos) {
            r.apply(&mut row[..heads * hd], hd, p as usize, inverse);
        }
        let dr = DevRope::upload(&gpu, &r).unwrap();
        let dx = gpu.upload_f32(&x).unwrap();
        let dp = gpu.upload_u32(&pos).unwrap();
        rope_apply_strided(&gpu, &dr, &dx, rows, heads, hd, stride, Positions::PerRow(&dp), inverse).unwrap();
        let inexact = check(&dx.download_f32().unwrap(), &want, &x, stride, heads, hd, rd);
        prop_assert_eq!(inexact, 0, "values not bit-exact (allowed by the tolerance, but unexpected)");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(10))]

    /// norm + RoPE fused: the reference chain (RMSNorm, then `apply`) within the norm's tolerance,
    /// and bit-identical to the two unfused kernels.
    #[test]
    fn fused_norm_rope_matches(weighted in any::<bool>(), yarn in any::<bool>(), inverse in any::<bool>(), rows in 1usize..4, heads in 1usize..4, half in 1usize..8, nope in 0usize..40, pad in 0usize..3, per_row in any::<bool>(), seed in 1u64..u64::MAX) {
        let gpu = Gpu::for_tests();
        let mut rng = Rng(seed);
        let (rd, hd) = (2 * half, 2 * half + nope);
        let stride = heads * hd + pad;
        let r = rope(yarn, rd);
        let w = rng.vec(hd, 0.5, 1.5);
        let x = rng.vec(rows * stride, -3.0, 3.0);
        let pos: Vec<u32> = (0..rows).map(|i| if per_row { rng.below(1 << 20) as u32 } else { 4000 + i as u32 }).collect();
        let mut want = x.clone();
        for (row, &p) in want.chunks_mut(stride).zip(&pos) {
            let heads_part = &mut row[..heads * hd];
            if weighted {
                rms_norm_inplace(heads_part, &w, 1e-6);
            } else {
                rms_norm_unweighted_inplace(heads_part, hd, 1e-6);
            }
            r.apply(heads_part, hd, p as usize, inverse);
        }
        let dr = DevRope::upload(&gpu, &r).unwrap();
        let dw = DevNorm::upload(&gpu, &w).unwrap();
        let dp = gpu.upload_u32(&pos).unwrap();
        let positions = if per_row { Positions::PerRow(&dp) } else { Positions::Start(4000) };
        let norm = if weighted { Some(&dw) } else { None };
        let dx = gpu.upload_f32(&x).unwrap();
        norm_rope_strided(&gpu, &dr, &dx, norm, rows, heads, hd, stride, 1e-6, positions, inverse).unwrap();
        let got = dx.download_f32().unwrap();
        for (i, (g, wv)) in got.iter().zip(&want).enumerate() {
            prop_assert!(!g.is_nan(), "element {} NaN", i);
            if i % stride >= heads * hd {
                prop_assert_eq!(g.to_bits(), wv.to_bits(), "padding {} changed", i);
            } else {
                prop_assert!((g - wv).abs() <= 4e-6 * (wv.abs() + 1.0), "element {}: gpu {} ref {}", i, g, wv);
            }
        }
        // The unfused kernels give the same bits.
        let dd = gpu.upload_f32(&x).unwrap();
        // heads of one row are `hd` apart and rows `stride` apart: normalise per row of heads.
        for row in 0..rows {
            let one = gpu.upload_f32(&x[row * stride..row * stride + heads * hd]).unwrap();
            rms_norm_strided(&gpu, &one, hd, norm, &one, hd, heads, hd, 1e-6).unwrap();
            let normed = one.download_f32().unwrap();
            let mut whole = dd.download_f32().unwrap();
            whole[row * stride..row * stride + heads * hd].copy_from_slice(&normed);
            dd.write_bytes(&whole.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>()).unwrap();
        }
        rope_apply_strided(&gpu, &dr, &dd, rows, heads, hd, stride, positions, inverse).unwrap();
        prop_assert!(dd.download_f32().unwrap().iter().zip(&got).all(|(a, b)| a.to_bits() == b.to_bits()), "fused differs from unfused");
    }
}

/// The model's shapes: q of 64 heads of 512 with rd 64 (YaRN), per-row positions of two
/// sequences; the fused unweighted norm + RoPE on it.
#[test]
fn model_shapes() {
    let gpu = Gpu::for_tests();
    let mut rng = Rng(2024);
    let (heads, hd, rd) = (64usize, 512usize, 64usize);
    let pos = positions_for_chunks(&[(70_000, 2), (5, 1)]);
    let rows = pos.len();
    let r = rope(true, rd);
    let x = rng.vec(rows * heads * hd, -2.0, 2.0);
    let mut want = x.clone();
    for (row, &p) in want.chunks_mut(heads * hd).zip(&pos) {
        rms_norm_unweighted_inplace(row, hd, 1e-6);
        r.apply(row, hd, p as usize, false);
    }
    let dr = DevRope::upload(&gpu, &r).unwrap();
    let dp = gpu.upload_u32(&pos).unwrap();
    let dx = gpu.upload_f32(&x).unwrap();
    norm_rope_strided(&gpu, &dr, &dx, None, rows, heads, hd, heads * hd, 1e-6, Positions::PerRow(&dp), false).unwrap();
    for (i, (g, w)) in dx.download_f32().unwrap().iter().zip(&want).enumerate() {
        assert!((g - w).abs() <= 4e-6 * (w.abs() + 1.0), "element {i}: gpu {g} ref {w}");
    }
}

/// Forward then inverse returns (nearly) the input, and a full-width rope (rd = hd) works.
#[test]
fn forward_then_inverse_is_identity() {
    let gpu = Gpu::for_tests();
    let mut rng = Rng(99);
    let (rows, heads, hd) = (3, 2, 8);
    let r = rope(true, hd);
    let x = rng.vec(rows * heads * hd, -1.0, 1.0);
    let dr = DevRope::upload(&gpu, &r).unwrap();
    let dx = gpu.upload_f32(&x).unwrap();
    rope_apply(&gpu, &dr, &dx, rows, heads, hd, Positions::Start(123_457), false).unwrap();
    rope_apply(&gpu, &dr, &dx, rows, heads, hd, Positions::Start(123_457), true).unwrap();
    for (g, w) in dx.download_f32().unwrap().iter().zip(&x) {
        assert!((g - w).abs() < 1e-6, "{g} vs {w}");
    }
}
