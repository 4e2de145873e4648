//! Property tests of the reference ops against brute-force or textbook definitions:
//! number formats (e4m3, e2m1, e8m0, ceil_pow2), activation quantisation, Sinkhorn (mHC),
//! Hadamard, sparse attention, RoPE / YaRN and RMSNorm.

use dsv4_reference::formats::{ceil_pow2, e2m1_to_f32, e4m3_to_f32, e8m0_to_f32, f32_to_e2m1, f32_to_e4m3, round_e4m3};
use dsv4_reference::ops::attention::sparse_attn;
use dsv4_reference::ops::hadamard::{hadamard_inplace, hadamard_matrix};
use dsv4_reference::ops::mhc::hc_split_sinkhorn;
use dsv4_reference::ops::norm::{rms_norm, rms_norm_unweighted_inplace};
use dsv4_reference::ops::rope::Rope;
use dsv4_reference::quant::{act_quant_fp4_inplace, act_quant_fp8, act_quant_fp8_inplace};
use proptest::prelude::*;

/// `cases` random cases, no regression files written next to the sources.
fn config(cases: u32) -> ProptestConfig {
    ProptestConfig { cases, failure_persistence: None, ..ProptestConfig::default() }
}

// ---------------------------------------------------------------------------------------------
// Brute-force rounding references.

/// The 254 finite e4m3 codes (all but 0x7F / 0xFF) with their values.
fn e4m3_codes() -> Vec<(u8, f32)> {
    (0..=255u8).filter(|b| b & 0x7F != 0x7F).map(|b| (b, e4m3_to_f32(b))).collect()
}

/// The finite non-negative e4m3 values, increasing (0 once).
fn e4m3_positive_values() -> Vec<f32> {
    let mut v: Vec<f32> = (0..0x7Fu8).map(e4m3_to_f32).collect();
    v.dedup();
    v
}

/// Nearest of `codes` to `x` (clamped to ±`max`), ties to the code whose mantissa LSB (bit 0)
/// is 0. Returns the value.
fn nearest(x: f32, max: f32, codes: &[(u8, f32)]) -> f32 {
    let x = x.clamp(-max, max) as f64;
    let mut best: Option<(f64, u8, f32)> = None;
    for &(c, v) in codes {
        let d = (x - v as f64).abs();
        best = match best {
            None => Some((d, c, v)),
            Some((bd, bc, bv)) => {
                if d < bd || (d == bd && v != bv && c & 1 == 0 && bc & 1 == 1) {
                    Some((d, c, v))
                } else {
                    Some((bd, bc, bv))
                }
            }
        };
    }
    best.map(|b| b.2).unwrap_or(f32::NAN)
}

fn e2m1_codes() -> Vec<(u8, f32)> {
    (0..16u8).map(|c| (c, e2m1_to_f32(c))).collect()
}

/// Half the gap between the two values of `sorted_abs` (increasing, non-negative) around |v|,
/// the largest rounding error at that magnitude.
fn half_step(v: f32, sorted_abs: &[f32]) -> f32 {
    let a = v.abs();
    match sorted_abs.iter().position(|&s| s >= a) {
        Some(0) => (sorted_abs[1] - sorted_abs[0]) / 2.0,
        Some(i) if i < sorted_abs.len() => {
            let lo = (sorted_abs[i] - sorted_abs[i - 1]) / 2.0;
            let hi = sorted_abs.get(i + 1).map(|n| (n - sorted_abs[i]) / 2.0).unwrap_or(lo);
            lo.max(hi)
        }
        _ => f32::INFINITY,
    }
}

fn is_pow2(s: f32) -> bool {
    s.is_normal() && s > 0.0 && s.to_bits() & 0x7F_FFFF == 0
}

/// Values spanning many magnitudes: `m · 2^e` with m in [-1, 1], e in [-20, 20].
fn scaled_vec(len: impl Into<proptest::collection::SizeRange>) -> impl Strategy<Value = Vec<f32>> {
    (proptest::collection::vec(-1.0f32..1.0, len), -20i32..20).prop_map(|(v, e)| v.iter().map(|x| x * 2f32.powi(e)).collect())
}

// ---------------------------------------------------------------------------------------------
// e4m3

#[test]
fn e4m3_all_codes() {
    let mut positives = Vec::new();
    for b in 0..=255u8 {
        let v = e4m3_to_f32(b);
        if b & 0x7F == 0x7F {
            assert!(v.is_nan(), "code {b:#04x} must be NaN, decodes to {v}");
            continue;
        }
        assert!(v.is_finite(), "code {b:#04x} decodes to {v}");
        assert!(v.abs() <= 448.0);
        assert_eq!(v.is_sign_negative(), b & 0x80 != 0, "code {b:#04x}: sign of {v}");
        assert_eq!(f32_to_e4m3(v), b, "code {b:#04x} value {v} does not round-trip");
        if b < 0x80 {
            positives.push(v);
        }
    }
    // Codes 0x00..0x7E are strictly increasing from 0 to 448, the smallest step 2^-9.
    assert!(positives.windows(2).all(|w| w[0] < w[1]), "positive codes not increasing");
    assert_eq!(positives.len(), 127);
    assert_eq!(positives[0], 0.0);
    assert_eq!(positives[1], 2f32.powi(-9));
    assert_eq!(positives[126], 448.0);
    // Every value has at most 4 significant bits (1 implicit + 3 mantissa).
    for v in &positives[1..] {
        let m = v.to_bits() & 0x7F_FFFF;
        assert_eq!(m & 0x0F_FFFF, 0, "{v} has more than 3 mantissa bits");
    }
    assert!(f32_to_e4m3(f32::NAN) & 0x7F == 0x7F);
}

/// Random finite f32 of several kinds: ordinary, e4m3-subnormal range, around ±448 and beyond,
/// exact midpoints and other points between neighbouring e4m3 values, any finite bit pattern.
fn e4m3_input() -> impl Strategy<Value = f32> {
    let vals = e4m3_positive_values();
    let n = vals.len();
    let between = (0..n - 1, 0.0f32..1.0, any::<bool>()).prop_map(move |(i, t, neg)| {
        let (a, b) = (vals[i], vals[i + 1]);
        // t < 0.25: the exact midpoint (a tie).
        let x = if t < 0.25 { (a + b) / 2.0 } else { a + (b - a) * t };
        if neg {
            -x
        } else {
            x
        }
    });
    prop_oneof![
        -500.0f32..500.0,
        -0.02f32..0.02,
        400.0f32..600.0,
        -600.0f32..-400.0,
        prop_oneof![Just(448.0f32), Just(-448.0), Just(464.0), Just(-464.0), Just(480.0), Just(1e30), Just(-1e30), Just(f32::MAX), Just(f32::MIN)],
        between,
        (prop::num::f32::POSITIVE | prop::num::f32::NEGATIVE | prop::num::f32::NORMAL | prop::num::f32::SUBNORMAL | prop::num::f32::ZERO),
    ]
}

proptest! {
    #![proptest_config(config(2048))]

    #[test]
    fn e4m3_rounds_to_nearest_even_saturating(x in e4m3_input()) {
        let codes = e4m3_codes();
        let want = nearest(x, 448.0, &codes);
        let code = f32_to_e4m3(x);
        prop_assert!(code & 0x7F != 0x7F, "finite {x:e} encodes to the NaN code {code:#04x}");
        let got = round_e4m3(x);
        prop_assert_eq!(got, want, "round_e4m3({:e}) (bits {:#010x})", x, x.to_bits());
    }

    #[test]
    fn e2m1_rounds_to_nearest_even(x in prop_oneof![
        -6.0f32..6.0,
        (0usize..7, any::<bool>()).prop_map(|(i, neg)| {
            // exact midpoints between neighbouring e2m1 magnitudes
            let v = [0.0f32, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0];
            let m = (v[i] + v[i + 1]) / 2.0;
            if neg { -m } else { m }
        }),
    ]) {
        let want = nearest(x, 6.0, &e2m1_codes());
        let code = f32_to_e2m1(x);
        prop_assert!(code < 16);
        prop_assert_eq!(e2m1_to_f32(code), want, "f32_to_e2m1({}) = code {}", x, code);
    }
}

#[test]
fn e8m0_all_codes() {
    for b in 0..=254u8 {
        let v = e8m0_to_f32(b);
        let want = 2f64.powi(b as i32 - 127);
        assert_eq!(v as f64, want, "e8m0 code {b}");
        if b > 0 {
            assert!(is_pow2(v), "e8m0 code {b}: {v} is not a normal power of two");
        }
    }
    assert!(e8m0_to_f32(0xFF).is_nan());
}

#[test]
fn e2m1_all_codes() {
    let want = [0.0f32, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0];
    for c in 0..16u8 {
        let v = e2m1_to_f32(c);
        let mag = want[(c & 7) as usize];
        assert_eq!(v, if c & 8 != 0 { -mag } else { mag }, "e2m1 code {c}");
        if v != 0.0 {
            assert_eq!(f32_to_e2m1(v), c, "e2m1 value {v}");
        }
    }
}

proptest! {
    #![proptest_config(config(2048))]

    /// Positive normal v below 2^127 (so that 2v and the result stay finite).
    #[test]
    fn ceil_pow2_is_the_next_power_of_two(exp in 1u32..254, man in 0u32..0x80_0000) {
        let v = f32::from_bits((exp << 23) | man);
        let r = ceil_pow2(v);
        prop_assert!(is_pow2(r), "ceil_pow2({v:e}) = {r:e} is not a power of two");
        prop_assert!(r >= v, "ceil_pow2({v:e}) = {r:e} < v");
        prop_assert!((r as f64) < 2.0 * v as f64, "ceil_pow2({v:e}) = {r:e} >= 2v");
    }
}

// ---------------------------------------------------------------------------------------------
// Activation quantisation

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn act_quant_fp8_properties(
        block in prop_oneof![Just(128usize), Just(64usize)],
        cols in 1usize..400,
        rows in 1usize..4,
        seed_vals in scaled_vec(1200),
        zero_block in any::<bool>(),
    ) {
        let mut x: Vec<f32> = seed_vals[..rows * cols].to_vec();
        if zero_block {
            // an all-zero block: the amax floor 1e-4 sets its scale
            x[..cols.min(block)].iter_mut().for_each(|v| *v = 0.0);
        }
        let (q, s) = act_quant_fp8(&x, cols, block);
        let nb = cols.div_ceil(block);
        prop_assert_eq!(q.len(), x.len());
        prop_assert_eq!(s.len(), rows * nb);
        let vals = e4m3_positive_values();
        let codes = e4m3_codes();
        for r in 0..rows {
            for b in 0..nb {
                let range = r * cols + b * block..r * cols + ((b + 1) * block).min(cols);
                let sc = s[r * nb + b];
                prop_assert!(is_pow2(sc), "row {r} block {b}: scale {sc:e} is not a power of two");
                let amax = x[range.clone()].iter().fold(0f32, |m, v| m.max(v.abs()));
                // amax/s <= 448 up to the f32 rounding of amax·f32(1/448), and > 224: the scale
                // is the smallest power of two that fits (unless the 1e-4 floor decides it).
                let ratio = amax / sc;
                prop_assert!(ratio <= 448.0 * (1.0 + 2f32.powi(-21)), "block amax {amax:e} / scale {sc:e} = {ratio}");
                if amax >= 1e-4 {
                    prop_assert!(ratio > 224.0 * (1.0 - 2f32.powi(-21)), "scale {sc:e} is not tight for amax {amax:e}");
                } else {
                    prop_assert_eq!(sc, ceil_pow2(1e-4f32 * (1.0f32 / 448.0)));
                }
                for i in range {
                    let (xi, qi) = (x[i], q[i]);
                    prop_assert!(qi.is_finite() && qi.abs() <= 448.0, "q = {qi}");
                    prop_assert!(vals.contains(&qi.abs()), "q = {qi} is not an e4m3 value");
                    // x/s is exact (s a power of two), so q must be its round-to-nearest-even.
                    let want = nearest(xi / sc, 448.0, &codes);
                    prop_assert_eq!(qi, want, "x = {:e}, s = {:e}, x/s = {}", xi, sc, xi / sc);
                    let err = (xi - qi * sc).abs();
                    let bound = half_step(xi / sc, &vals) * sc;
                    prop_assert!(err <= bound, "x = {xi:e}: |x - q·s| = {err:e} > half step {bound:e}");
                }
            }
        }
        // The in-place form writes q·s (one row: its blocks are the row's blocks).
        let mut y = x[..cols].to_vec();
        act_quant_fp8_inplace(&mut y, block);
        for i in 0..cols {
            prop_assert_eq!(y[i], q[i] * s[i / block], "in place, index {}", i);
        }
    }

    #[test]
    fn act_quant_fp4_properties(len in 1usize..300, seed_vals in scaled_vec(300)) {
        let x = seed_vals[..len].to_vec();
        let mut y = x.clone();
        act_quant_fp4_inplace(&mut y, 32);
        let mags = [0.0f32, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0];
        let codes = e2m1_codes();
        for (b, (xb, yb)) in x.chunks(32).zip(y.chunks(32)).enumerate() {
            let amax = xb.iter().fold(0f32, |m, v| m.max(v.abs()));
            let s = ceil_pow2(amax.max(6.0 * 2f32.powi(-126)) * (1.0f32 / 6.0));
            prop_assert!(is_pow2(s), "block {b}: scale {s:e}");
            prop_assert!(amax / s <= 6.0 * (1.0 + 2f32.powi(-21)), "block {b}: amax {amax:e} / s {s:e} > 6");
            for (&xi, &yi) in xb.iter().zip(yb) {
                prop_assert!(yi.is_finite());
                let c = yi / s;
                prop_assert!(mags.contains(&c.abs()), "block {b}: y = {yi:e} is not an e2m1 value times s = {s:e}");
                let want = nearest(xi / s, 6.0, &codes);
                prop_assert_eq!(c, want, "x = {:e}, s = {:e}", xi, s);
                let err = (xi - yi).abs();
                let bound = half_step(xi / s, &mags) * s;
                prop_assert!(err <= bound, "x = {xi:e}: |x - y| = {err:e} > half step {bound:e}");
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Sinkhorn (mHC)

proptest! {
    #![proptest_config(config(256))]

    /// Mixes of moderate size: logits `mix·scale + base` within ±2.5.
    ///
    /// The comb ends with a column normalisation, so its column sums are `s/(s+eps)`: 1 within
    /// ~1e-6. The row sums only converge: 20 rounds of alternating normalisation (Sinkhorn–Knopp)
    /// on a positive 4x4 matrix shrink the row-sum error geometrically, at a rate that degrades
    /// with the spread of the entries (Birkhoff: contraction tanh(Δ/4), Δ the matrix's projective
    /// diameter, up to 4·(logit range)). Simulating this exact iteration on 20 000 samples of these
    /// ranges, the worst row-sum error after 20 iterations was 8e-5 (median 1e-6, the eps), so
    /// 1e-3 holds with margin. It is not a bound for any input: logits uniform in ±3 already give
    /// errors up to ~1e-2 and ±6 up to ~6e-2 after 20 iterations, in the official kernel as here.
    #[test]
    fn sinkhorn_is_doubly_stochastic(
        mixes in proptest::collection::vec(-1.0f32..1.0, 24),
        scale in proptest::collection::vec(0.5f32..1.5, 3),
        base in proptest::collection::vec(-1.0f32..1.0, 24),
    ) {
        let (nc, eps) = (4, 1e-6f32);
        let (pre, post, comb) = hc_split_sinkhorn(&mixes, &scale, &base, nc, 20, eps);
        prop_assert_eq!((pre.len(), post.len(), comb.len()), (nc, nc, nc * nc));
        for &p in &pre {
            prop_assert!(p > eps && p <= 1.0 + eps, "pre {p}");
        }
        for &p in &post {
            prop_assert!(p > 0.0 && p < 2.0, "post {p}");
        }
        prop_assert!(comb.iter().all(|&c| c.is_finite() && c >= 0.0), "comb {comb:?}");
        for j in 0..nc {
            let row: f32 = comb[j * nc..(j + 1) * nc].iter().sum();
            let col: f32 = (0..nc).map(|i| comb[i * nc + j]).sum();
            prop_assert!((row - 1.0).abs() < 1e-3, "row {j} sums to {row}: {comb:?}");
            prop_assert!((col - 1.0).abs() < 1e-5, "column {j} sums to {col}: {comb:?}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Hadamard

fn rel_l2(a: &[f32], b: &[f64]) -> f64 {
    let num: f64 = a.iter().zip(b).map(|(x, y)| (*x as f64 - y).powi(2)).sum();
    let den: f64 = b.iter().map(|y| y * y).sum();
    (num / den.max(1e-300)).sqrt()
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn hadamard_properties(log_n in 1u32..8, rows in 1usize..4, vals in proptest::collection::vec(-10.0f32..10.0, 3 * 128)) {
        let n = 1usize << log_n;
        let x = vals[..rows * n].to_vec();
        let mut y = x.clone();
        hadamard_inplace(&mut y, n);
        prop_assert!(y.iter().all(|v| v.is_finite()));
        let h = hadamard_matrix(n);
        for r in 0..rows {
            let (xr, yr) = (&x[r * n..(r + 1) * n], &y[r * n..(r + 1) * n]);
            // y = H x with the explicit matrix (f64).
            let want: Vec<f64> = (0..n).map(|i| (0..n).map(|j| h[i * n + j] as f64 * xr[j] as f64).sum()).collect();
            let e = rel_l2(yr, &want);
            prop_assert!(e < 1e-5, "n = {n}: H x differs from the matrix product by {e:e}");
            // orthonormal: the L2 norm is kept
            let (nx, ny) = (xr.iter().map(|v| (*v as f64).powi(2)).sum::<f64>().sqrt(), yr.iter().map(|v| (*v as f64).powi(2)).sum::<f64>().sqrt());
            prop_assert!((nx - ny).abs() <= 1e-5 * nx.max(1e-30), "n = {n}: |x| = {nx}, |Hx| = {ny}");
        }
        // H is symmetric and orthonormal: H H = I.
        let mut z = y.clone();
        hadamard_inplace(&mut z, n);
        let x64: Vec<f64> = x.iter().map(|&v| v as f64).collect();
        let e = rel_l2(&z, &x64);
        prop_assert!(e < 1e-5, "n = {n}: H H x differs from x by {e:e}");
    }
}

// ---------------------------------------------------------------------------------------------
// Sparse attention

/// Dense attention with a sink (f64): for each query and head, softmax over all `n` positions
/// plus the sink logit (zero value), value = key.
fn dense_attn(q: &[f32], kv: &[f32], sink: &[f32], scale: f32, d: usize) -> Vec<f64> {
    let h = sink.len();
    let n = kv.len() / d;
    let mut out = vec![0.0f64; q.len()];
    for row in 0..q.len() / d {
        let head = row % h;
        let qh = &q[row * d..(row + 1) * d];
        let scores: Vec<f64> = (0..n)
            .map(|j| qh.iter().zip(&kv[j * d..(j + 1) * d]).map(|(a, b)| *a as f64 * *b as f64).sum::<f64>() * scale as f64)
            .collect();
        let m = scores.iter().fold(sink[head] as f64, |a, &b| a.max(b));
        let den = (sink[head] as f64 - m).exp() + scores.iter().map(|s| (s - m).exp()).sum::<f64>();
        let o = &mut out[row * d..(row + 1) * d];
        for (j, s) in scores.iter().enumerate() {
            let p = (s - m).exp() / den;
            for (oi, v) in o.iter_mut().zip(&kv[j * d..(j + 1) * d]) {
                *oi += p * *v as f64;
            }
        }
    }
    out
}

/// A random permutation of `0..n` with `pads` -1 slots interleaved, from a list of random keys.
fn shuffled_idx(n: usize, pads: usize, keys: &[u32]) -> Vec<i32> {
    let mut items: Vec<(u32, i32)> = (0..n as i32).chain(std::iter::repeat_n(-1, pads)).enumerate().map(|(i, v)| (keys[i], v)).collect();
    items.sort_by_key(|&(k, v)| (k, v));
    items.into_iter().map(|(_, v)| v).collect()
}

proptest! {
    #![proptest_config(config(192))]

    #[test]
    fn sparse_attn_matches_dense(
        d in prop_oneof![Just(8usize), Just(16), Just(64)],
        h in 1usize..4,
        s in 1usize..3,
        n in 1usize..24,
        pads in 0usize..6,
        qmag in 0.5f32..3.0,
        vals in proptest::collection::vec(-1.0f32..1.0, 3 * 3 * 64 + 24 * 64),
        sink in proptest::collection::vec(-3.0f32..3.0, 3),
        keys in proptest::collection::vec(any::<u32>(), 2 * 30),
        keys2 in proptest::collection::vec(any::<u32>(), 2 * 30),
    ) {
        let sink = &sink[..h];
        let q: Vec<f32> = vals[..s * h * d].iter().map(|v| v * qmag).collect();
        let kv = &vals[s * h * d..s * h * d + n * d];
        let scale = 1.0 / (d as f32).sqrt();
        let k = n + pads;
        let idx: Vec<i32> = (0..s).flat_map(|t| shuffled_idx(n, pads, &keys[t * 30..])).collect();
        let got = sparse_attn(&q, kv, &idx, sink, scale, d);
        prop_assert_eq!(got.len(), q.len());
        prop_assert!(got.iter().all(|v| v.is_finite()), "NaN / inf in the output");
        let want = dense_attn(&q, kv, sink, scale, d);
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            prop_assert!((*g as f64 - w).abs() <= 1e-5 * (1.0 + w.abs()), "element {i}: sparse {g}, dense {w}");
        }
        // Another order of the same entries (and of the padding): the same result.
        let idx2: Vec<i32> = (0..s).flat_map(|t| shuffled_idx(n, pads, &keys2[t * 30..])).collect();
        let got2 = sparse_attn(&q, kv, &idx2, sink, scale, d);
        let norm = got.iter().map(|v| (*v as f64).powi(2)).sum::<f64>().sqrt();
        let diff = got.iter().zip(&got2).map(|(a, b)| ((a - b) as f64).powi(2)).sum::<f64>().sqrt();
        prop_assert!(diff <= 1e-6 * norm.max(1e-30), "permuting idx changed the output by {diff:e} (norm {norm:e})");
        // Every slot -1: nothing attended, the sink takes all the weight, the output is exactly 0.
        let none = vec![-1i32; s * k];
        let zero = sparse_attn(&q, kv, &none, sink, scale, d);
        prop_assert!(zero.iter().all(|&v| v == 0.0), "all-padding output is not 0");
    }
}

// ---------------------------------------------------------------------------------------------
// RoPE / YaRN

/// YaRN's correction range `[low, high]` in pair indices (f64, like Python's math).
fn yarn_range(rd: usize, theta: f64, original: usize, beta_fast: f64, beta_slow: f64) -> (f64, f64) {
    let dim = |rot: f64| rd as f64 * (original as f64 / (rot * 2.0 * std::f64::consts::PI)).ln() / (2.0 * theta.ln());
    (dim(beta_fast).floor().max(0.0), dim(beta_slow).ceil().min(rd as f64 - 1.0))
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn rope_rotation_properties(
        half in 1usize..33,
        extra in prop_oneof![Just(0usize), Just(8), Just(48)],
        rows in 1usize..4,
        pos in 0usize..1_000_000,
        theta in prop_oneof![Just(10000.0f64), Just(160000.0)],
        yarn in any::<bool>(),
        vals in proptest::collection::vec(-4.0f32..4.0, 3 * 112),
    ) {
        let rd = 2 * half;
        let n = rd + extra;
        let rope = if yarn { Rope::new(rd, theta, 65536, 16.0, 32.0, 1.0) } else { Rope::new(rd, theta, 0, 1.0, 32.0, 1.0) };
        let x = vals[..rows * n].to_vec();
        let mut y = x.clone();
        rope.apply(&mut y, n, pos, false);
        prop_assert!(y.iter().all(|v| v.is_finite()));
        for r in 0..rows {
            let (xr, yr) = (&x[r * n..(r + 1) * n], &y[r * n..(r + 1) * n]);
            // the first n - rd dims are untouched
            for i in 0..n - rd {
                prop_assert_eq!(xr[i].to_bits(), yr[i].to_bits(), "dim {} changed", i);
            }
            // each pair keeps its length
            for p in 0..half {
                let (a, b) = (xr[n - rd + 2 * p], xr[n - rd + 2 * p + 1]);
                let (c, e) = (yr[n - rd + 2 * p], yr[n - rd + 2 * p + 1]);
                let (l0, l1) = ((a as f64).hypot(b as f64), (c as f64).hypot(e as f64));
                prop_assert!((l0 - l1).abs() <= 1e-5 * l0.max(1e-6), "pair {p}: length {l0} -> {l1}");
            }
        }
        // the inverse rotation undoes it
        rope.apply(&mut y, n, pos, true);
        let x64: Vec<f64> = x.iter().map(|&v| v as f64).collect();
        let e = rel_l2(&y, &x64);
        prop_assert!(e < 1e-5, "apply then inverse: relative error {e:e}");
    }

    #[test]
    fn yarn_frequencies(
        rd in prop_oneof![Just(16usize), Just(32), Just(64), Just(128)],
        theta in 1000.0f64..1e6,
        original in prop_oneof![Just(64usize), Just(4096), Just(65536)],
        factor in prop_oneof![Just(2.0f64), Just(4.0), Just(16.0), Just(40.0)],
    ) {
        let plain = Rope::new(rd, theta, 0, factor, 32.0, 1.0);
        let yarn = Rope::new(rd, theta, original, factor, 32.0, 1.0);
        prop_assert_eq!(plain.freqs.len(), rd / 2);
        for (i, f) in plain.freqs.iter().enumerate() {
            let want = theta.powf(-(2.0 * i as f64) / rd as f64);
            prop_assert!((*f as f64 - want).abs() <= 1e-6 * want, "plain freq {i}: {f} vs {want}");
        }
        let (low, high) = yarn_range(rd, theta, original, 32.0, 1.0);
        for (i, (&p, &y)) in plain.freqs.iter().zip(&yarn.freqs).enumerate() {
            let fi = i as f64;
            if fi <= low {
                // high-frequency dims (many rotations over the original context): unchanged
                prop_assert_eq!(y, p, "freq {} (<= low {}) must equal the plain one", i, low);
            } else if fi >= high && high > low {
                // low-frequency dims: fully interpolated
                prop_assert_eq!(y, p / factor as f32, "freq {} (>= high {}) must be plain / factor", i, high);
            } else {
                let lo = p / factor as f32;
                prop_assert!(y >= lo * (1.0 - 1e-6) && y <= p * (1.0 + 1e-6), "freq {i} = {y} outside [{lo}, {p}]");
            }
        }
        // monotone ramp: the interpolated frequencies still decrease
        prop_assert!(yarn.freqs.windows(2).all(|w| w[1] <= w[0]), "YaRN freqs not decreasing: {:?}", yarn.freqs);
    }
}

// ---------------------------------------------------------------------------------------------
// RMSNorm

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn rms_norm_properties(
        n in 1usize..300,
        rows in 1usize..4,
        vals in proptest::collection::vec(-1.0f32..1.0, 900),
        e in -6i32..10,
        wvals in proptest::collection::vec(0.5f32..1.5, 300),
        c in 0.01f32..100.0,
    ) {
        let x: Vec<f32> = vals[..rows * n].iter().map(|v| v * 2f32.powi(e)).collect();
        let eps = 1e-12f32;
        let ones = vec![1.0f32; n];
        let y = rms_norm(&x, &ones, eps);
        prop_assert!(y.iter().all(|v| v.is_finite()));
        for r in 0..rows {
            let xr = &x[r * n..(r + 1) * n];
            let ms_in = xr.iter().map(|v| (*v as f64).powi(2)).sum::<f64>() / n as f64;
            if ms_in < 1e-6 {
                continue; // eps is not negligible for an (almost) all-zero row
            }
            let ms = y[r * n..(r + 1) * n].iter().map(|v| (*v as f64).powi(2)).sum::<f64>() / n as f64;
            prop_assert!((ms - 1.0).abs() < 1e-3, "row {r}: mean square {ms}");
        }
        // the weight multiplies elementwise; the unweighted form is the weight-1 case
        let w = &wvals[..n];
        let yw = rms_norm(&x, w, eps);
        for (i, (a, b)) in yw.iter().zip(&y).enumerate() {
            prop_assert!((a - b * w[i % n]).abs() <= 1e-6 * a.abs().max(1e-30), "weight at {i}: {a} vs {}", b * w[i % n]);
        }
        let mut yu = x.clone();
        rms_norm_unweighted_inplace(&mut yu, n, eps);
        prop_assert_eq!(&yu, &y);
        // scale invariance
        let xc: Vec<f32> = x.iter().map(|v| v * c).collect();
        let yc = rms_norm(&xc, &ones, eps);
        for r in 0..rows {
            let ms_in = x[r * n..(r + 1) * n].iter().map(|v| (*v as f64).powi(2)).sum::<f64>() / n as f64;
            if ms_in < 1e-6 {
                continue;
            }
            let y64: Vec<f64> = y[r * n..(r + 1) * n].iter().map(|&v| v as f64).collect();
            let err = rel_l2(&yc[r * n..(r + 1) * n], &y64);
            prop_assert!(err < 1e-5, "row {r}: rms_norm(c·x) differs from rms_norm(x) by {err:e}");
        }
    }
}
