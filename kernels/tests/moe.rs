//! `ops::moe` (cuda/moe.cu + the grouped GEMMs of cuda/gemm.cu) against
//! `dsv4_reference::model::Model::{moe_route, moe_experts}` on the test device.
//!
//! Tolerances:
//! - Routing: the gate logits are an f32 GEMM summed in another order (~1e-7 relative), the
//!   scores use f64 exp/log1p rounded once (= libm's f32 results in practice). Experts must be
//!   identical wherever the biased score of the k-th choice beats the (k+1)-th by more than 1e-5
//!   (relative; the float noise is ~1e-6), compared as (expert, weight) sets because the order
//!   inside the top-k only follows the scores; weights within 1e-5 relative + 1e-6 absolute.
//!   Exact ties (identical gate rows give identical logits on both sides) must go to the lower
//!   index, in order.
//! - Experts: f32 sums in another order in w1/w3/w2 give ≲ 1e-6 of Σ|h·w2| (+ the shared expert's);
//!   we allow 1e-5 of it. With ActQuant::On, h = swiglu(g, u) differs from the reference by that
//!   noise too, and an h value within ~1e-6 of an e4m3 rounding midpoint may round the other way
//!   (probability ~1e-5 per value): we additionally allow one e4m3 step of one h value per pair,
//!   max_i step(h_i)·|w2[c, i]|, step(v) ≤ max(|v|/8, 2^-9·s_block).

use dsv4_kernels::ops::moe::{moe, moe_experts, moe_route, DevMoe, MoeParams, Routes};
use dsv4_kernels::Gpu;
use dsv4_reference::checkpoint::Bytes;
use dsv4_reference::config::Config;
use dsv4_reference::formats::{ceil_pow2, f32_to_e2m1, f32_to_e4m3, E2M1_MAX, E4M3_MAX};
use dsv4_reference::linear::{Linear, Weight};
use dsv4_reference::model::weights::{Moe, Router, Weights};
use dsv4_reference::ops::mhc::HcParams;
use dsv4_reference::ops::moe::{gate_scores, Expert};
use dsv4_reference::quant::fp8_block_scale;
use dsv4_reference::{ActQuant, Model};
use proptest::prelude::*;

mod common;
use common::SplitMix as Rng;

fn e8m0_code(s: f32) -> u8 {
    (((s.to_bits() >> 23) & 0xFF) as i32).clamp(0, 254) as u8
}

fn gaussian(r: &mut Rng, n: usize, std: f32) -> Vec<f32> {
    (0..n).map(|_| r.normal() * std).collect()
}

fn fp8_linear(r: &mut Rng, out: usize, inp: usize, gain: f32) -> Linear {
    let w = gaussian(r, out * inp, gain / (inp as f32).sqrt());
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

fn fp4_linear(r: &mut Rng, out: usize, inp: usize, gain: f32) -> Linear {
    let w = gaussian(r, out * inp, gain / (inp as f32).sqrt());
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

fn bf16_linear(r: &mut Rng, out: usize, inp: usize, gain: f32) -> Linear {
    let w = gaussian(r, out * inp, gain / (inp as f32).sqrt());
    Linear { out, inp, weight: Weight::Bf16(Bytes::from_vec(w.iter().flat_map(|&v| half::bf16::from_f32(v).to_le_bytes()).collect())) }
}

struct Case {
    model: Model,
    moe: Moe,
}

/// A model shell (only the config matters to `moe_route` / `moe_experts`) and one MoE layer:
/// FP4 (or FP8) routed experts, FP8 shared expert, BF16 gate (gain 3 so the scores spread).
fn case(d: usize, inter: usize, n_experts: usize, k: usize, hash_vocab: Option<usize>, routed_fp8: bool, seed: u64) -> Case {
    let mut cfg = Config::flash();
    cfg.dim = d;
    cfg.moe_inter_dim = inter;
    cfg.n_routed_experts = n_experts;
    cfg.n_activated_experts = k;
    let mut r = Rng(seed);
    let router = match hash_vocab {
        Some(v) => {
            let mut t = Vec::new();
            for _ in 0..v {
                let mut p: Vec<i32> = (0..n_experts as i32).collect();
                for j in 0..k {
                    let pick = j + r.below(n_experts - j);
                    p.swap(j, pick);
                }
                t.extend_from_slice(&p[..k]);
            }
            Router::Hash(t)
        }
        None => Router::Score(gaussian(&mut r, n_experts, 0.1)),
    };
    let experts = (0..n_experts)
        .map(|_| {
            let mut q = |out, inp| if routed_fp8 { fp8_linear(&mut r, out, inp, 1.0) } else { fp4_linear(&mut r, out, inp, 1.0) };
            Expert { w1: q(inter, d), w2: q(d, inter), w3: q(inter, d) }
        })
        .collect();
    let shared = Expert { w1: fp8_linear(&mut r, inter, d, 1.0), w2: fp8_linear(&mut r, d, inter, 1.0), w3: fp8_linear(&mut r, inter, d, 1.0) };
    let moe = Moe { gate: bf16_linear(&mut r, n_experts, d, 3.0), router, experts, shared };
    let dummy = Linear::f32(1, 1, vec![0.0]);
    let hc = HcParams { fn_: vec![], base: vec![], scale: vec![] };
    let w = Weights { embed: dummy.clone(), head: dummy, norm: vec![], hc_head: hc, layers: vec![], mtp: vec![] };
    Case { model: Model::new(cfg, w), moe }
}

fn params(c: &Case) -> MoeParams {
    MoeParams::from_config(&c.model.cfg)
}

fn random_x(rows: usize, d: usize, seed: u64) -> Vec<f32> {
    let mut r = Rng(seed ^ 0xabcdef);
    gaussian(&mut r, rows * d, 1.0)
}

/// Device routing for `x`, downloaded.
fn device_route(gpu: &Gpu, c: &Case, x: &[f32], tokens: &[u32]) -> (Vec<i32>, Vec<f32>) {
    let dm = DevMoe::upload(gpu, &c.moe).unwrap();
    let xb = gpu.upload_f32(x).unwrap();
    let tb = gpu.upload_u32(tokens).unwrap();
    let r = moe_route(gpu, &dm, &params(c), &xb, tokens.len(), &tb).unwrap();
    (r.experts.download_i32().unwrap(), r.weights.download_f32().unwrap())
}

fn close_w(got: f32, want: f32) -> bool {
    (got - want).abs() <= 1e-5 * want.abs() + 1e-6
}

/// Compares routing per token (see the module doc); returns how many tokens were decidable.
fn check_route(c: &Case, x: &[f32], tokens: &[u32], got: &(Vec<i32>, Vec<f32>)) -> Result<usize, TestCaseError> {
    let (k, ne) = (c.model.cfg.n_activated_experts, c.model.cfg.n_routed_experts);
    let (re, rw) = c.model.moe_route(&c.moe, x, tokens);
    prop_assert_eq!(got.0.len(), re.len());
    prop_assert!(got.1.iter().all(|w| w.is_finite()), "weights {:?}", got.1);
    let logits = c.moe.gate.forward(x, ActQuant::Off);
    let mut decided = 0;
    for t in 0..tokens.len() {
        if let Router::Score(bias) = &c.moe.router {
            let s = gate_scores(&logits[t * ne..(t + 1) * ne], c.model.cfg.score_func);
            let mut b: Vec<f32> = s.iter().zip(bias).map(|(s, b)| s + b).collect();
            b.sort_by(|p, q| q.total_cmp(p));
            if k < ne && b[k - 1] - b[k] <= 1e-5 * b[k - 1].abs().max(1.0) {
                continue; // a near tie at the boundary: either choice is within the float noise
            }
        }
        decided += 1;
        let mut want: Vec<(i32, f32)> = (0..k).map(|j| (re[t * k + j] as i32, rw[t * k + j])).collect();
        let mut have: Vec<(i32, f32)> = (0..k).map(|j| (got.0[t * k + j], got.1[t * k + j])).collect();
        if matches!(c.moe.router, Router::Hash(_)) {
            let (we, he): (Vec<i32>, Vec<i32>) = (want.iter().map(|p| p.0).collect(), have.iter().map(|p| p.0).collect());
            prop_assert_eq!(he, we, "token {}: hash experts in table order", t);
        }
        want.sort_by_key(|p| p.0);
        have.sort_by_key(|p| p.0);
        for (h, w) in have.iter().zip(&want) {
            prop_assert_eq!(h.0, w.0, "token {}: experts {:?} vs reference {:?}", t, have, want);
            prop_assert!(close_w(h.1, w.1), "token {}: weight of expert {}: {} vs {}", t, h.0, h.1, w.1);
        }
    }
    Ok(decided)
}

fn silu_gate(g: f32, u: f32, w: f32, limit: Option<f32>) -> f32 {
    let (mut gg, mut uu) = (g, u);
    if let Some(l) = limit {
        gg = gg.min(l);
        uu = uu.clamp(-l, l);
    }
    gg / (1.0 + (-gg).exp()) * uu * w
}

/// Per output: (Σ|h·w2| over all contributions, one-flip allowance), from the reference's own ops.
fn bounds(c: &Case, x: &[f32], routes: &[usize], weights: &[f32], aq: ActQuant) -> (Vec<f32>, Vec<f32>) {
    let (d, k) = (c.model.cfg.dim, c.model.cfg.n_activated_experts);
    let rows = x.len() / d;
    let limit = (c.model.cfg.swiglu_limit > 0.0).then_some(c.model.cfg.swiglu_limit);
    let mut mag = vec![0.0f32; rows * d];
    let mut flip = vec![0.0f32; rows * d];
    for t in 0..rows {
        let xr = &x[t * d..(t + 1) * d];
        let mut contrib: Vec<(&Expert, f32, Option<f32>)> = (0..k).map(|j| (&c.moe.experts[routes[t * k + j]], weights[t * k + j], limit)).collect();
        contrib.push((&c.moe.shared, 1.0, None));
        for (e, w, lim) in contrib {
            let g = e.w1.forward(xr, aq);
            let u = e.w3.forward(xr, aq);
            let h: Vec<f32> = g.iter().zip(&u).map(|(&g, &u)| silu_gate(g, u, w, lim)).collect();
            let step: Vec<f32> = h
                .chunks(128)
                .flat_map(|blk| {
                    let s = fp8_block_scale(blk);
                    blk.iter().map(move |v| (v.abs() / 8.0).max(2f32.powi(-9) * s))
                })
                .collect();
            let w2 = e.w2.dequantized();
            let inter = h.len();
            for cc in 0..d {
                let row = &w2[cc * inter..(cc + 1) * inter];
                mag[t * d + cc] += h.iter().zip(row).map(|(a, b)| (a * b).abs()).sum::<f32>();
                if aq.is_on() {
                    flip[t * d + cc] += step.iter().zip(row).map(|(a, b)| (a * b).abs()).fold(0.0, f32::max);
                }
            }
        }
    }
    (mag, flip)
}

fn check_experts(gpu: &Gpu, c: &Case, tokens: &[u32], aq: ActQuant, seed: u64) -> Result<(), TestCaseError> {
    let d = c.model.cfg.dim;
    let k = c.model.cfg.n_activated_experts;
    let rows = tokens.len();
    let x = random_x(rows, d, seed);
    let (routes, weights) = c.model.moe_route(&c.moe, &x, tokens);
    let want = c.model.moe_experts(&c.moe, &x, &routes, &weights, aq);
    let dm = DevMoe::upload(gpu, &c.moe).unwrap();
    let r =
        Routes { experts: gpu.upload_i32(&routes.iter().map(|&e| e as i32).collect::<Vec<_>>()).unwrap(), weights: gpu.upload_f32(&weights).unwrap(), rows, k };
    let got = moe_experts(gpu, &dm, &params(c), &gpu.upload_f32(&x).unwrap(), rows, &r, aq).unwrap().download_f32().unwrap();
    prop_assert_eq!(got.len(), want.len());
    let (mag, flip) = bounds(c, &x, &routes, &weights, aq);
    for i in 0..got.len() {
        prop_assert!(got[i].is_finite(), "output {} is {}", i, got[i]);
        let tol = 1e-5 * mag[i] + flip[i];
        prop_assert!((got[i] - want[i]).abs() <= tol, "output {} (token {}, col {}): got {}, want {}, tol {}", i, i / d, i % d, got[i], want[i], tol);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(10))]

    #[test]
    fn score_routing_matches_reference(d in 1usize..100, ne in 2usize..14, kk in 1usize..14, rows in 1usize..6, seed in any::<u64>()) {
        let k = 1 + (kk - 1) % ne;
        let c = case(d, 32, ne, k, None, true, seed);
        let x = random_x(rows, d, seed);
        let tokens: Vec<u32> = (0..rows as u32).collect();
        let gpu = Gpu::for_tests();
        let got = device_route(&gpu, &c, &x, &tokens);
        check_route(&c, &x, &tokens, &got)?;
    }

    #[test]
    fn hash_routing_matches_reference(ne in 2usize..10, kk in 1usize..10, rows in 1usize..6, seed in any::<u64>()) {
        let k = 1 + (kk - 1) % ne;
        let vocab = 11;
        let c = case(32, 32, ne, k, Some(vocab), false, seed);
        let x = random_x(rows, 32, seed);
        let tokens: Vec<u32> = (0..rows).map(|i| ((seed >> (4 * i)) % vocab as u64) as u32).collect();
        let gpu = Gpu::for_tests();
        let got = device_route(&gpu, &c, &x, &tokens);
        prop_assert_eq!(check_route(&c, &x, &tokens, &got)?, rows);
    }

    #[test]
    fn experts_match_reference(d32 in 1usize..6, inter32 in 1usize..6, odd in 0usize..32, routed_fp8 in prop::bool::weighted(0.25),
                               ne in 2usize..7, kk in 1usize..7, rows in 1usize..5, aq_on in any::<bool>(), seed in any::<u64>()) {
        // FP4 experts need d and inter divisible by 32; FP8 ones take any size.
        let (d, inter) = if routed_fp8 { (32 * d32 - odd, 32 * inter32 - odd / 2) } else { (32 * d32, 32 * inter32) };
        let k = 1 + (kk - 1) % ne;
        let c = case(d, inter, ne, k, None, routed_fp8, seed);
        let gpu = Gpu::for_tests();
        let tokens: Vec<u32> = (0..rows as u32).collect();
        check_experts(&gpu, &c, &tokens, if aq_on { ActQuant::On } else { ActQuant::Off }, seed)?;
    }
}

#[test]
fn k_equal_to_the_number_of_experts() {
    let gpu = Gpu::for_tests();
    let c = case(64, 32, 5, 5, None, false, 9);
    let x = random_x(3, 64, 9);
    let tokens = [0u32, 1, 2];
    let got = device_route(&gpu, &c, &x, &tokens);
    assert_eq!(check_route(&c, &x, &tokens, &got).unwrap(), 3);
    check_experts(&gpu, &c, &tokens, ActQuant::On, 9).unwrap();
}

#[test]
fn exact_ties_go_to_the_lower_index() {
    // Experts 1, 3 and 4 share one gate row and a zero bias: identical scores on both sides.
    let gpu = Gpu::for_tests();
    let c = case(48, 32, 6, 2, None, true, 5);
    let d = 48;
    let mut g = bf16_linear(&mut Rng(77), 6, d, 3.0);
    if let Weight::Bf16(b) = &g.weight {
        let mut v = b.to_vec();
        let row1 = v[2 * d..4 * d].to_vec();
        // Make the shared row large so the tied experts are the top choices.
        let big: Vec<u8> = row1.chunks(2).flat_map(|h| half::bf16::from_f32(half::bf16::from_le_bytes([h[0], h[1]]).to_f32() * 4.0).to_le_bytes()).collect();
        for e in [1, 3, 4] {
            v[e * 2 * d..(e + 1) * 2 * d].copy_from_slice(&big);
        }
        g.weight = Weight::Bf16(Bytes::from_vec(v));
    }
    let c = Case { moe: Moe { gate: g, router: Router::Score(vec![0.0; 6]), ..c.moe }, model: c.model };
    // x aligned with the shared row so its logit is clearly positive and the largest.
    let xrow: Vec<f32> = c.moe.gate.dequantized()[d..2 * d].to_vec();
    let x: Vec<f32> = xrow.iter().chain(xrow.iter()).copied().collect();
    let tokens = [0u32, 1];
    let got = device_route(&gpu, &c, &x, &tokens);
    let (re, _) = c.model.moe_route(&c.moe, &x, &tokens);
    assert_eq!(re, vec![1, 3, 1, 3]);
    assert_eq!(got.0, vec![1, 3, 1, 3]);
    check_route(&c, &x, &tokens, &got).unwrap();
}

#[test]
fn zero_rows_is_an_empty_result() {
    let gpu = Gpu::for_tests();
    let c = case(32, 32, 4, 2, None, false, 1);
    let dm = DevMoe::upload(&gpu, &c.moe).unwrap();
    let x = gpu.alloc(0).unwrap();
    let r = moe_route(&gpu, &dm, &params(&c), &x, 0, &x).unwrap();
    assert_eq!((r.experts.bytes(), r.weights.bytes()), (0, 0));
    assert_eq!(moe_experts(&gpu, &dm, &params(&c), &x, 0, &r, ActQuant::On).unwrap().bytes(), 0);
}

#[test]
fn hash_routing_with_duplicate_tokens_and_more_rows() {
    // Several tokens with the same id (identical routes) and rows > one 4-row GEMM chunk.
    let gpu = Gpu::for_tests();
    let c = case(64, 64, 4, 3, Some(3), false, 21);
    let x = random_x(6, 64, 21);
    let tokens = [2u32, 0, 2, 1, 2, 0];
    let got = device_route(&gpu, &c, &x, &tokens);
    assert_eq!(check_route(&c, &x, &tokens, &got).unwrap(), 6);
    check_experts(&gpu, &c, &tokens, ActQuant::On, 21).unwrap();

    // The whole layer (`moe`): hash routes are exact, so the output matches `moe_experts` of the
    // reference's routes within the experts' tolerance.
    let dm = DevMoe::upload(&gpu, &c.moe).unwrap();
    let (out, routes) = moe(&gpu, &dm, &params(&c), &gpu.upload_f32(&x).unwrap(), 6, &gpu.upload_u32(&tokens).unwrap(), ActQuant::Off).unwrap();
    let (re, rw) = c.model.moe_route(&c.moe, &x, &tokens);
    assert_eq!(routes.experts.download_i32().unwrap(), re.iter().map(|&e| e as i32).collect::<Vec<_>>());
    let want = c.model.moe_experts(&c.moe, &x, &re, &rw, ActQuant::Off);
    let (mag, _) = bounds(&c, &x, &re, &rw, ActQuant::Off);
    for (i, g) in out.download_f32().unwrap().iter().enumerate() {
        assert!((g - want[i]).abs() <= 1e-5 * mag[i], "output {i}: {g} vs {}", want[i]);
    }
}
