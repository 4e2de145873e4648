//! `ops::linear` (cuda/gemm.cu) against `dsv4_reference::linear::Linear::{forward, forward_rows}`
//! on the test device (the PTX emulator unless DSV4_TEST_DEVICE=cuda).
//!
//! Tolerance: the products are the reference's exact f32 products (power-of-two scales, the same
//! bit-identical FP8 act quant of x), only the f32 summation order differs (per-lane strided
//! partials + a warp tree + FMA vs per-128 sequential sums), so each output must be within
//! 1e-5 · Σ_k |x_k·w_k| of the reference (expected error ~sqrt(K)·2^-24 of that sum).

use std::ops::Range;

use dsv4_kernels::ops::linear::{linear, linear_rows, DevLinear};
use dsv4_kernels::Gpu;
use dsv4_reference::checkpoint::Bytes;
use dsv4_reference::formats::{ceil_pow2, f32_to_e2m1, f32_to_e4m3, E2M1_MAX, E4M3_MAX};
use dsv4_reference::linear::{Linear, Weight};
use dsv4_reference::quant::act_quant_fp8;
use dsv4_reference::ActQuant;
use proptest::prelude::*;

mod common;
use common::SplitMix as Rng;

fn e8m0_code(s: f32) -> u8 {
    (((s.to_bits() >> 23) & 0xFF) as i32).clamp(0, 254) as u8
}

#[derive(Clone, Copy, Debug)]
enum Kind {
    F32,
    Bf16,
    Fp8,
    Fp4,
}

/// A random weight `[out, inp]` stored like the checkpoint stores it (FP8 per 128x128 block, FP4
/// per 32 inputs, amax-based power-of-two scales, round-to-nearest-even codes), with a random
/// per-row magnitude so the scales vary.
fn random_linear(kind: Kind, out: usize, inp: usize, seed: u64) -> Linear {
    let mut r = Rng(seed);
    let w: Vec<f32> = (0..out * inp)
        .map(|i| {
            let row_mag = 2f32.powi(((i / inp) % 7) as i32 - 3);
            r.normal() * row_mag / (inp as f32).sqrt()
        })
        .collect();
    match kind {
        Kind::F32 => Linear::f32(out, inp, w),
        Kind::Bf16 => Linear { out, inp, weight: Weight::Bf16(Bytes::from_vec(w.iter().flat_map(|&v| half::bf16::from_f32(v).to_le_bytes()).collect())) },
        Kind::Fp8 => {
            let (bo, bi) = (out.div_ceil(128), inp.div_ceil(128));
            let mut codes = vec![0u8; out * inp];
            let mut scales = vec![0u8; bo * bi];
            for br in 0..bo {
                for bc in 0..bi {
                    let (rows, cols) = (br * 128..((br + 1) * 128).min(out), bc * 128..((bc + 1) * 128).min(inp));
                    let amax = rows.clone().flat_map(|rr| w[rr * inp + cols.start..rr * inp + cols.end].iter()).fold(1e-30f32, |m, v| m.max(v.abs()));
                    let s = ceil_pow2(amax / E4M3_MAX);
                    scales[br * bi + bc] = e8m0_code(s);
                    for rr in rows {
                        for c in cols.clone() {
                            codes[rr * inp + c] = f32_to_e4m3(w[rr * inp + c] / s);
                        }
                    }
                }
            }
            Linear { out, inp, weight: Weight::Fp8 { w: Bytes::from_vec(codes), scale: Bytes::from_vec(scales) } }
        }
        Kind::Fp4 => {
            assert_eq!(inp % 32, 0);
            let mut packed = vec![0u8; out * inp / 2];
            let mut scales = vec![0u8; out * inp / 32];
            for (b, blk) in w.chunks(32).enumerate() {
                let amax = blk.iter().fold(1e-30f32, |m, v| m.max(v.abs()));
                let s = ceil_pow2(amax / E2M1_MAX);
                scales[b] = e8m0_code(s);
                for (i, pair) in blk.chunks(2).enumerate() {
                    packed[b * 16 + i] = f32_to_e2m1(pair[0] / s) | (f32_to_e2m1(pair[1] / s) << 4);
                }
            }
            Linear { out, inp, weight: Weight::Fp4 { w: Bytes::from_vec(packed), scale: Bytes::from_vec(scales) } }
        }
    }
}

/// Activations with a spread of magnitudes per 128-block, some all-zero blocks.
fn random_x(rows: usize, inp: usize, seed: u64) -> Vec<f32> {
    let mut r = Rng(seed ^ 0x5151);
    let mut x = vec![0.0; rows * inp];
    for (i, v) in x.iter_mut().enumerate() {
        let blk = (i / 128) as u64 ^ seed;
        let mag = 2f32.powi((blk % 9) as i32 - 4);
        *v = if blk % 11 == 5 { 0.0 } else { r.normal() * mag };
    }
    x
}

/// Σ_k |x_k·w_k| per output, with x quantised as the reference does.
fn magnitudes(l: &Linear, x: &[f32], range: Range<usize>, aq: ActQuant) -> Vec<f32> {
    let k = l.inp;
    let xs: Vec<f32> = if l.is_quantized() && aq.is_on() {
        let (q, s) = act_quant_fp8(x, k, 128);
        let nb = k.div_ceil(128);
        q.iter().enumerate().map(|(i, v)| v * s[(i / k) * nb + (i % k) / 128]).collect()
    } else {
        x.to_vec()
    };
    let w = l.dequantized();
    let mut m = Vec::new();
    for row in xs.chunks(k) {
        for n in range.clone() {
            m.push(row.iter().zip(&w[n * k..(n + 1) * k]).map(|(a, b)| (a * b).abs()).sum());
        }
    }
    m
}

fn check(gpu: &Gpu, l: &Linear, rows: usize, range: Range<usize>, aq: ActQuant, seed: u64) -> Result<(), TestCaseError> {
    let x = random_x(rows, l.inp, seed);
    let want = l.forward_rows(&x, range.clone(), aq);
    let dl = DevLinear::upload(gpu, l).unwrap();
    let xb = gpu.upload_f32(&x).unwrap();
    let got = if range == (0..l.out) { linear(gpu, &dl, &xb, rows, aq) } else { linear_rows(gpu, &dl, &xb, rows, range.clone(), aq) }
        .unwrap()
        .download_f32()
        .unwrap();
    prop_assert_eq!(got.len(), want.len());
    let mag = magnitudes(l, &x, range, aq);
    for (i, ((g, w), m)) in got.iter().zip(&want).zip(&mag).enumerate() {
        prop_assert!(g.is_finite(), "output {i} is {g}");
        prop_assert!((g - w).abs() <= 1e-5 * m, "output {i}: got {g}, want {w} (Σ|x·w| = {m})");
    }
    Ok(())
}

fn kind() -> impl Strategy<Value = Kind> {
    prop_oneof![Just(Kind::F32), Just(Kind::Bf16), Just(Kind::Fp8), Just(Kind::Fp4)]
}

/// (kind, out, inp): FP4 needs inp % 32 == 0; others take any inp (odd ones use the scalar path).
fn shape() -> impl Strategy<Value = (Kind, usize, usize)> {
    (kind(), 1usize..150, 1usize..300).prop_map(|(k, o, i)| match k {
        Kind::Fp4 => (k, o, 32 * i.div_ceil(32)),
        _ => (k, o, i),
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]

    #[test]
    fn linear_matches_reference((k, out, inp) in shape(), rows in 1usize..5, aq_on in any::<bool>(), seed in any::<u64>()) {
        let gpu = Gpu::for_tests();
        let l = random_linear(k, out, inp, seed);
        check(&gpu, &l, rows, 0..out, if aq_on { ActQuant::On } else { ActQuant::Off }, seed)?;
    }

    #[test]
    fn linear_rows_matches_reference((k, out, inp) in shape(), rows in 1usize..4, a in 0usize..150, b in 0usize..150, aq_on in any::<bool>(), seed in any::<u64>()) {
        // ActQuant::Off on an FP8 weight is the grouped wo_a (plain matmul, no act quant).
        let gpu = Gpu::for_tests();
        let l = random_linear(k, out, inp, seed);
        let (lo, hi) = (a.min(b) % out, (a.max(b) % out) + 1);
        check(&gpu, &l, rows, lo.min(hi - 1)..hi, if aq_on { ActQuant::On } else { ActQuant::Off }, seed)?;
    }
}

#[test]
fn zero_rows_is_an_empty_result() {
    let gpu = Gpu::for_tests();
    for k in [Kind::F32, Kind::Bf16, Kind::Fp8, Kind::Fp4] {
        let l = random_linear(k, 40, 64, 1);
        let dl = DevLinear::upload(&gpu, &l).unwrap();
        let x = gpu.alloc(0).unwrap();
        assert_eq!(linear(&gpu, &dl, &x, 0, ActQuant::On).unwrap().bytes(), 0);
        assert_eq!(linear_rows(&gpu, &dl, &x, 0, 3..9, ActQuant::On).unwrap().bytes(), 0);
    }
}

#[test]
fn all_zero_input_gives_zero_output() {
    // Every act-quant block hits the 1e-4 amax floor: q = 0, y = 0.
    let gpu = Gpu::for_tests();
    for k in [Kind::Fp8, Kind::Fp4] {
        let l = random_linear(k, 33, 160, 7);
        let dl = DevLinear::upload(&gpu, &l).unwrap();
        let x = gpu.upload_f32(&vec![0.0; 2 * 160]).unwrap();
        let y = linear(&gpu, &dl, &x, 2, ActQuant::On).unwrap().download_f32().unwrap();
        assert!(y.iter().all(|&v| v == 0.0), "{y:?}");
    }
}

#[test]
fn directed_shapes_match_reference() {
    // Multi-block K with a short last block, more rows than one 4-row chunk, N % 4 != 0, and the
    // grouped wo_a slicing (a row range starting mid-block of the FP8 scale grid).
    let gpu = Gpu::for_tests();
    check(&gpu, &random_linear(Kind::Fp8, 130, 300, 3), 6, 0..130, ActQuant::On, 3).unwrap();
    check(&gpu, &random_linear(Kind::Fp8, 260, 256, 4), 2, 100..230, ActQuant::On, 4).unwrap();
    check(&gpu, &random_linear(Kind::Fp8, 260, 200, 8), 3, 128..256, ActQuant::Off, 8).unwrap();
    check(&gpu, &random_linear(Kind::Fp4, 7, 320, 5), 5, 0..7, ActQuant::On, 5).unwrap();
    check(&gpu, &random_linear(Kind::Bf16, 9, 131, 6), 3, 0..9, ActQuant::On, 6).unwrap();
}

#[test]
fn bad_weights_are_errors() {
    let gpu = Gpu::for_tests();
    let l = Linear { out: 4, inp: 30, weight: Weight::Fp4 { w: Bytes::from_vec(vec![0; 60]), scale: Bytes::from_vec(vec![127; 4]) } };
    assert!(DevLinear::upload(&gpu, &l).is_err());
    let l = Linear { out: 4, inp: 64, weight: Weight::Fp8 { w: Bytes::from_vec(vec![0; 256]), scale: Bytes::from_vec(vec![]) } };
    assert!(DevLinear::upload(&gpu, &l).is_err());
    let dl = DevLinear::upload(&gpu, &random_linear(Kind::F32, 4, 8, 1)).unwrap();
    let x = gpu.upload_f32(&[0.0; 8]).unwrap();
    assert!(linear_rows(&gpu, &dl, &x, 1, 2..5, ActQuant::Off).is_err());
}
