//! The int8 FP4 path (`cpu_kernels::int8`): (a) every level against a model of the int8 math
//! (tight: the levels differ only in f32 summation order), (b) against the exact reference
//! `Linear::forward_rows` (FP4 weights, `ActQuant::Off`) within the bound of the activation
//! rounding, and a printed measurement of the typical error.
//!
//! The bound (b): per 32-input block with weight scale `s_w` (e8m0) and values `w_i = e2m1_i`,
//! the kernel uses `x̂_i = q_i · sx` with `sx = amax/127` and `q_i = round(x_i / sx)`, so
//! `|x_i − x̂_i| <= 0.5 · sx = 0.5/127 · amax` (the clamp to ±127 never cuts: |x_i| <= amax).
//! Hence `|y − ŷ| <= Σ_blocks 0.5/127 · amax_blk · Σ_{i∈blk} |s_w · w_i|`. On top: f32 slack for
//! the rounding of `sx` itself and of both f32 sums, `1e-5 · (bound + Σ|w·x|)`.

use dsv4_engine::cpu_kernels::int8::{fp4_gemv_int8, quantize_int8_blocks};
use dsv4_engine::cpu_kernels::Level;
use dsv4_engine::reference::checkpoint::Bytes;
use dsv4_engine::reference::formats::{e2m1_to_f32, e8m0_to_f32};
use dsv4_engine::reference::linear::{Linear, Weight};
use dsv4_engine::reference::ActQuant;
use proptest::prelude::*;

/// splitmix64 for test data.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// N(0,1) (Box-Muller).
    fn normal(&mut self) -> f32 {
        let (u, v) = (self.unit().max(1e-300), self.unit());
        ((-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()) as f32
    }
}

/// Random FP4 weights: all 16 nibbles, e8m0 scales in 110..140.
fn random_fp4(out: usize, inp: usize, seed: u64) -> (Vec<u8>, Vec<u8>) {
    let mut r = Rng(seed);
    let w = (0..out * inp / 2).map(|_| r.next() as u8).collect();
    let s = (0..out * inp / 32).map(|_| 110 + (r.next() % 30) as u8).collect();
    (w, s)
}

fn random_x(n: usize, seed: u64) -> Vec<f32> {
    let mut r = Rng(seed ^ 0x5EED);
    let mag = [1e-3f32, 0.1, 1.0, 30.0][(r.next() % 4) as usize];
    (0..n)
        .map(|i| if i % 97 == 5 { 0.0 } else { r.normal() * mag * if i % 13 == 0 { 8.0 } else { 1.0 } })
        .collect()
}

fn weight(w: &[u8], s: &[u8], inp: usize, row: usize, i: usize) -> f64 {
    let c = w[(row * inp + i) / 2];
    let c = if i.is_multiple_of(2) { c & 15 } else { c >> 4 };
    f64::from(e2m1_to_f32(c)) * f64::from(e8m0_to_f32(s[(row * inp + i) / 32]))
}

/// The int8 math in f64: `Σ_blk (Σ q · 2·e2m1) · sx · 0.5 · e8m0`, and `Σ |w · x|`.
fn int8_model(w: &[u8], s: &[u8], inp: usize, x: &[f32], row: usize) -> (f64, f64) {
    let (q, sx) = quantize_int8_blocks(x);
    let (mut y, mut mag) = (0.0f64, 0.0f64);
    for blk in 0..inp / 32 {
        let mut dot = 0i64;
        for i in blk * 32..blk * 32 + 32 {
            let c = w[(row * inp + i) / 2];
            let c = if i.is_multiple_of(2) { c & 15 } else { c >> 4 };
            dot += (2.0 * e2m1_to_f32(c)) as i64 * i64::from(q[i]);
            mag += (weight(w, s, inp, row, i) * f64::from(x[i])).abs();
        }
        y += dot as f64 * f64::from(sx[blk]) * 0.5 * f64::from(e8m0_to_f32(s[row * inp / 32 + blk]));
    }
    (y, mag)
}

/// The bound (b) of the module docs for one row and one batch row.
fn quant_bound(w: &[u8], s: &[u8], inp: usize, x: &[f32], row: usize) -> f64 {
    (0..inp / 32)
        .map(|blk| {
            let r = blk * 32..blk * 32 + 32;
            let amax = x[r.clone()].iter().fold(0.0f64, |a, v| a.max(f64::from(v.abs())));
            let sw: f64 = r.map(|i| weight(w, s, inp, row, i).abs()).sum();
            0.5 / 127.0 * amax * sw
        })
        .sum()
}

fn check(w: &[u8], s: &[u8], out: usize, inp: usize, x: &[f32], rows: std::ops::Range<usize>) -> Result<(), TestCaseError> {
    let m = x.len() / inp;
    let n = rows.len();
    let lin = Linear { out, inp, weight: Weight::Fp4 { w: Bytes::from_vec(w.to_vec()), scale: Bytes::from_vec(s.to_vec()) } };
    let exact = lin.forward_rows(x, rows.clone(), ActQuant::Off);
    for level in Level::available() {
        let got = fp4_gemv_int8(level, w, s, out, inp, x, rows.clone());
        prop_assert_eq!(got.len(), m * n);
        for b in 0..m {
            let xb = &x[b * inp..(b + 1) * inp];
            for (j, row) in rows.clone().enumerate() {
                let g = got[b * n + j];
                let (want, mag) = int8_model(w, s, inp, xb, row);
                prop_assert!(g.is_nan() == want.is_nan(), "{level:?} b={b} row={row}: NaN mismatch {g} vs {want}");
                if want.is_nan() {
                    continue;
                }
                prop_assert!(g.is_finite(), "{level:?} b={b} row={row}: {g}");
                // (a) the int8 math, up to f32 summation order
                let tol = 1e-5 * mag + 1e-30;
                prop_assert!((f64::from(g) - want).abs() <= tol, "{level:?} b={b} row={row}: {g} vs int8 {want}");
                // (b) the exact product, within the activation rounding
                let e = f64::from(exact[b * n + j]);
                let bound = quant_bound(w, s, inp, xb, row);
                let tol = bound + 1e-5 * (bound + mag) + 1e-30;
                prop_assert!((f64::from(g) - e).abs() <= tol, "{level:?} b={b} row={row}: {g} vs exact {e}, bound {tol}");
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn int8_matches_model_and_reference(
        out in 1usize..70,
        inp_units in 1usize..=16,
        m in 1usize..=9,
        seed in any::<u64>(),
        sub in any::<(u16, u16)>(),
    ) {
        let inp = inp_units * 32;
        let (w, s) = random_fp4(out, inp, seed);
        let x = random_x(m * inp, seed);
        check(&w, &s, out, inp, &x, 0..out)?;
        let (a, b) = ((sub.0 as usize) % out, (sub.1 as usize) % out);
        check(&w, &s, out, inp, &x, a.min(b)..a.max(b) + 1)?;
    }

    /// Rows long enough that the AVX2 kernel splits them into several passes over its row
    /// groups (at batch 5-8 a pass holds 16-28 block pairs): odd block counts, partial groups.
    #[test]
    fn int8_multi_pass_rows(out in 1usize..20, inp_units in 57usize..=90, m in 5usize..=9, seed in any::<u64>(), sub in any::<(u16, u16)>()) {
        let inp = inp_units * 32;
        let (w, s) = random_fp4(out, inp, seed);
        let x = random_x(m * inp, seed);
        let (a, b) = ((sub.0 as usize) % out, (sub.1 as usize) % out);
        check(&w, &s, out, inp, &x, a.min(b)..a.max(b) + 1)?;
    }

    #[test]
    fn int8_nan_scale_gives_nan(out in 1usize..40, inp_units in 1usize..8, m in 1usize..=9, seed in any::<u64>(), pos in any::<usize>()) {
        let inp = inp_units * 32;
        let (w, mut s) = random_fp4(out, inp, seed);
        let i = pos % s.len();
        s[i] = 0xFF;
        let x = random_x(m * inp, seed);
        let bad_row = i / (inp / 32);
        for level in Level::available() {
            let y = fp4_gemv_int8(level, &w, &s, out, inp, &x, 0..out);
            for b in 0..m {
                for row in 0..out {
                    prop_assert_eq!(y[b * out + row].is_nan(), row == bad_row, "{:?} b={} row={}", level, b, row);
                }
            }
        }
        check(&w, &s, out, inp, &x, 0..out)?;
    }
}

#[test]
fn quantize_blocks() {
    let mut x: Vec<f32> = (0..96).map(|i| i as f32 - 40.0).collect();
    x[32..64].iter_mut().for_each(|v| *v = 0.0);
    x[70] = f32::NAN;
    let (q, s) = quantize_int8_blocks(&x);
    assert_eq!(s[0], 40.0 / 127.0);
    assert_eq!(q[0], -127);
    assert_eq!((s[1], q[32..64].iter().all(|&v| v == 0)), (0.0, true));
    assert!(s[2].is_nan());
    for i in 0..32 {
        assert!((x[i] - f32::from(q[i]) * s[0]).abs() <= 0.5 * s[0] * 1.0001);
    }
}

#[test]
fn nan_activation_gives_nan() {
    let (out, inp) = (5, 64);
    let (w, s) = random_fp4(out, inp, 3);
    let mut x = random_x(2 * inp, 3);
    x[inp + 40] = f32::NAN;
    for level in Level::available() {
        let y = fp4_gemv_int8(level, &w, &s, out, inp, &x, 0..out);
        assert!(y[..out].iter().all(|v| v.is_finite()), "{level:?}");
        assert!(y[out..].iter().all(|v| v.is_nan()), "{level:?}");
    }
}

/// Prints the typical error vs exact at 4096->2048 on N(0,1) activations (run with
/// `--nocapture`): `rel = |y − y_exact| / Σ|w·x|` and `|y − y_exact| / rms(y_exact)`.
#[test]
fn int8_error_vs_exact_4096x2048() {
    let (out, inp) = (2048, 4096);
    let (w, s) = random_fp4(out, inp, 42);
    let mut r = Rng(7);
    let x: Vec<f32> = (0..inp).map(|_| r.normal()).collect();
    let lin = Linear { out, inp, weight: Weight::Fp4 { w: Bytes::from_vec(w.clone()), scale: Bytes::from_vec(s.clone()) } };
    let exact = lin.forward(&x, ActQuant::Off);
    let fp8 = lin.forward(&x, ActQuant::On);
    let got = fp4_gemv_int8(Level::detect(), &w, &s, out, inp, &x, 0..out);
    let deq = lin.dequantized();
    let rms = (exact.iter().map(|v| f64::from(*v).powi(2)).sum::<f64>() / out as f64).sqrt();
    let stats = |y: &[f32]| {
        let mut rel: Vec<f64> = (0..out)
            .map(|n| {
                let mag: f64 = (0..inp).map(|i| f64::from((deq[n * inp + i] * x[i]).abs())).sum();
                f64::from((y[n] - exact[n]).abs()) / mag
            })
            .collect();
        rel.sort_by(f64::total_cmp);
        let mut abs: Vec<f64> = (0..out).map(|n| f64::from((y[n] - exact[n]).abs()) / rms).collect();
        abs.sort_by(f64::total_cmp);
        (rel[out / 2], rel[out - 1], abs[out / 2], abs[out - 1])
    };
    let (a, b, c, d) = stats(&got);
    eprintln!("int8 vs exact, 4096->2048, x ~ N(0,1): |err|/Σ|w·x| median {a:.2e} max {b:.2e}; |err|/rms(y) median {c:.2e} max {d:.2e}");
    let (a2, b2, c2, d2) = stats(&fp8);
    eprintln!("(for scale) FP8 act-quant (ActQuant::On) vs exact: |err|/Σ|w·x| median {a2:.2e} max {b2:.2e}; |err|/rms(y) median {c2:.2e} max {d2:.2e}");
    assert!(b < 0.5 / 127.0 * 4.0, "max relative error {b}");
}

/// Decode speed with the weights in L2 (compute-bound), int8 vs the exact FP4 kernel: run with
/// `cargo test --release -p dsv4-engine --test cpu_kernels_int8 -- --ignored --nocapture`.
#[test]
#[ignore]
fn int8_speed_in_cache() {
    use dsv4_engine::cpu_kernels::{fp4, fp8};
    use std::time::Instant;
    let (out, inp) = (512, 1024); // 278 KB of codes + scales
    let (w, s) = random_fp4(out, inp, 1);
    let level = Level::detect();
    for m in [1usize, 8] {
        let x = random_x(m * inp, 2);
        // GB/s of `bytes` stored weight bytes per call
        let time = |bytes: usize, f: &dyn Fn() -> Vec<f32>| {
            let mut best = f64::MAX;
            for _ in 0..50 {
                let t = Instant::now();
                for _ in 0..20 {
                    std::hint::black_box(f());
                }
                best = best.min(t.elapsed().as_secs_f64() / 20.0);
            }
            bytes as f64 / best / 1e9
        };
        let exact = time(w.len() + s.len(), &|| fp4::gemv(level, &w, &s, out, inp, &x, 0..out));
        let int8 = time(w.len() + s.len(), &|| fp4_gemv_int8(level, &w, &s, out, inp, &x, 0..out));
        // FP8 on the same codes, as e4m3 bytes [out/2, inp] (NaN codes avoided)
        let w8: Vec<u8> = w.iter().chain(&w).take(out / 2 * inp).map(|b| if b & 0x7F == 0x7F { b - 1 } else { *b }).collect();
        let s8 = vec![120u8; (out / 2).div_ceil(128) * inp.div_ceil(128)];
        let fp8 = time(w8.len() + s8.len(), &|| fp8::gemv(level, &w8, &s8, out / 2, inp, &x, 0..out / 2));
        eprintln!("in-cache GB/s, batch {m}: fp4 exact {exact:.2}, int8 {int8:.2}, fp8 {fp8:.2}");
    }
}
