//! The sampling kernels against the engine's host sampler (`engine/src/sampling.rs`; its
//! `argmax`, `log_softmax`, `top_n` and `sample_filtered` are copied below with the Rng draw
//! replaced by the given uniform, since this crate does not depend on the engine).
//! Logits are drawn on a coarse grid so that ties (and ±0) are frequent.
//!
//! Expectations: argmax and top-n ids exact; lse within 1 f32 ulp (f64 sum order); sampled
//! tokens exact for both sampling kernels (radix and bisect; a mismatch is allowed only when
//! top_p or the drawn u·total lies within 1e-12 of a cumulative boundary, which the test detects
//! and skips; the random draws never came that close).

use dsv4_kernels::ops::sampling::{argmax, log_softmax_into, logprobs, sample, sample_with, top_n_into, RowSampling, SampleKernel};
use dsv4_kernels::Gpu;
use proptest::prelude::*;

mod common;
use common::Rng;

// ---- host sampler (copied from engine/src/sampling.rs) ----

fn host_log_softmax(logits: &[f32]) -> Vec<f32> {
    let m = logits.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
    let lse = (logits.iter().map(|&l| ((l - m) as f64).exp()).sum::<f64>()).ln() as f32 + m;
    logits.iter().map(|&l| l - lse).collect()
}

fn host_argmax(v: &[f32]) -> usize {
    let mut best = 0;
    for (i, &x) in v.iter().enumerate() {
        if x > v[best] {
            best = i;
        }
    }
    best
}

fn host_top_n(v: &[f32], n: usize) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..v.len()).collect();
    let n = n.min(v.len());
    idx.select_nth_unstable_by(n.saturating_sub(1).min(v.len() - 1), |&a, &b| v[b].total_cmp(&v[a]).then(a.cmp(&b)));
    idx.truncate(n);
    idx.sort_by(|&a, &b| v[b].total_cmp(&v[a]).then(a.cmp(&b)));
    idx
}

/// `sample_filtered` with `rng.next_f64()` = `u`; also returns the distance of `u·total` to the
/// nearest cumulative boundary (relative), to recognise rounding-sensitive draws.
fn host_sample(logits: &[f32], p: &RowSampling, u: f64) -> (usize, f64) {
    if p.temperature == 0.0 {
        return (host_argmax(logits), 1.0);
    }
    let k = if p.top_k == 0 { logits.len() } else { (p.top_k as usize).min(logits.len()) };
    let cand = host_top_n(logits, k);
    let m = logits[cand[0]];
    let mut probs: Vec<f64> = cand.iter().map(|&i| (((logits[i] - m) / p.temperature) as f64).exp()).collect();
    let total: f64 = probs.iter().sum();
    probs.iter_mut().for_each(|q| *q /= total);
    let mut margin = 1.0f64;
    if p.top_p < 1.0 {
        let mut acc = 0.0;
        let mut keep = probs.len();
        for (i, q) in probs.iter().enumerate() {
            acc += q;
            margin = margin.min((acc - p.top_p as f64).abs());
            if acc >= p.top_p as f64 {
                keep = i + 1;
                break;
            }
        }
        probs.truncate(keep);
    }
    let total: f64 = probs.iter().sum();
    let r0 = u * total;
    let mut acc = 0.0;
    for q in &probs {
        acc += q;
        margin = margin.min((acc - r0).abs());
    }
    let mut r = r0;
    for (i, q) in probs.iter().enumerate() {
        if r < *q {
            return (cand[i], margin);
        }
        r -= q;
    }
    (cand[probs.len() - 1], margin)
}

// ---- tests ----

fn logits(rng: &mut Rng, rows: usize, vocab: usize, grid: f32) -> Vec<f32> {
    (0..rows * vocab)
        .map(|_| {
            let v = (rng.below(41) as f32 - 30.0) * grid;
            if v == 0.0 && rng.below(2) == 0 {
                -0.0
            } else {
                v
            }
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(10))]

    #[test]
    fn argmax_log_softmax_top_n_match_host(rows in 1usize..4, vocab in 1usize..200, grid in prop::sample::select(vec![0.25f32, 0.37, 3.0]), n in 1usize..8, seed in 1u64..u64::MAX) {
        let gpu = Gpu::for_tests();
        let mut rng = Rng(seed);
        let l = logits(&mut rng, rows, vocab, grid);
        let dl = gpu.upload_f32(&l).unwrap();
        let ids = argmax(&gpu, &dl, rows, vocab).unwrap();
        for (r, row) in l.chunks(vocab).enumerate() {
            prop_assert_eq!(ids[r] as usize, host_argmax(row), "argmax row {}", r);
        }
        let logp = gpu.alloc_poisoned(rows * vocab * 4).unwrap();
        let lse = gpu.alloc_poisoned(rows * 4).unwrap();
        log_softmax_into(&gpu, &dl, rows, vocab, Some(&logp), &lse).unwrap();
        let got_lp = logp.download_f32().unwrap();
        let got_lse = lse.download_f32().unwrap();
        let n = n.min(vocab);
        let top = gpu.alloc_poisoned(rows * n * 4).unwrap();
        top_n_into(&gpu, &logp, rows, vocab, n, &top).unwrap();
        let got_top = top.download_u32().unwrap();
        for (r, row) in l.chunks(vocab).enumerate() {
            let want = host_log_softmax(row);
            // lse = logit - logp for any element; compare the ulps of lse.
            let m = row.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
            let want_lse = (row.iter().map(|&v| ((v - m) as f64).exp()).sum::<f64>()).ln() as f32 + m;
            let ulps = (got_lse[r].to_bits() as i64 - want_lse.to_bits() as i64).abs();
            prop_assert!(ulps <= 1, "lse row {}: gpu {} host {}", r, got_lse[r], want_lse);
            for (i, (g, w)) in got_lp[r * vocab..(r + 1) * vocab].iter().zip(&want).enumerate() {
                if ulps == 0 {
                    prop_assert_eq!(g.to_bits(), w.to_bits(), "logp row {} [{}]", r, i);
                } else {
                    prop_assert!((g - w).abs() <= 2.0 * f32::EPSILON * w.abs().max(1.0), "logp row {} [{}]", r, i);
                }
            }
            if ulps == 0 {
                let want_top: Vec<u32> = host_top_n(&want, n).into_iter().map(|i| i as u32).collect();
                prop_assert_eq!(&got_top[r * n..(r + 1) * n], &want_top[..], "top_n row {}", r);
            }
        }
    }

    #[test]
    fn sample_matches_host(rows in 1usize..4, vocab in 1usize..160, grid in prop::sample::select(vec![0.25f32, 0.37, 3.0]), seed in 1u64..u64::MAX) {
        let gpu = Gpu::for_tests();
        let mut rng = Rng(seed);
        let l = logits(&mut rng, rows, vocab, grid);
        let params: Vec<RowSampling> = (0..rows)
            .map(|_| RowSampling {
                temperature: [0.0f32, 0.3, 1.0, 1.7][rng.below(4)],
                top_p: [1.0f32, 0.95, 0.6, 0.1][rng.below(4)],
                top_k: [0u32, 1, 3, 50, 1000][rng.below(5)],
                uniform: rng.f64(),
            })
            .collect();
        let dl = gpu.upload_f32(&l).unwrap();
        for kernel in [SampleKernel::Radix, SampleKernel::Bisect] {
            let got = sample_with(&gpu, &dl, rows, vocab, &params, kernel).unwrap();
            for (r, row) in l.chunks(vocab).enumerate() {
                let (want, margin) = host_sample(row, &params[r], params[r].uniform);
                if margin < 1e-12 {
                    continue;
                }
                prop_assert_eq!(got[r] as usize, want, "{:?} row {} params {:?}", kernel, r, params[r]);
            }
        }
    }
}

/// `logprobs` gives the host's `Sampled::logprob` and `Sampled::top` for chosen tokens.
#[test]
fn logprobs_match_host() {
    let gpu = Gpu::for_tests();
    let mut rng = Rng(1234);
    for (rows, vocab, n) in [(3usize, 37usize, 5usize), (2, 300, 20), (1, 4, 4), (2, 50, 0)] {
        let l = logits(&mut rng, rows, vocab, 0.25);
        let chosen: Vec<u32> = (0..rows).map(|_| rng.below(vocab) as u32).collect();
        let dl = gpu.upload_f32(&l).unwrap();
        let got = logprobs(&gpu, &dl, rows, vocab, &chosen, n).unwrap();
        for (r, row) in l.chunks(vocab).enumerate() {
            let lp = host_log_softmax(row);
            let (g, w) = (got[r].logprob, lp[chosen[r] as usize]);
            assert!((g - w).abs() <= 2.0 * f32::EPSILON * w.abs().max(1.0), "row {r}: logprob {g} vs {w}");
            let want_top: Vec<(u32, f32)> = host_top_n(&lp, n).into_iter().map(|i| (i as u32, lp[i])).collect();
            assert_eq!(got[r].top.len(), want_top.len());
            for ((gi, gv), (wi, wv)) in got[r].top.iter().zip(&want_top) {
                assert_eq!(gi, wi, "row {r}: top ids");
                assert!((gv - wv).abs() <= 2.0 * f32::EPSILON * wv.abs().max(1.0));
            }
        }
    }
}

/// Vocabularies wider than the CTA (1024 threads, several logits per thread).
#[test]
fn wide_vocab_matches_host() {
    let gpu = Gpu::for_tests();
    let mut rng = Rng(4242);
    for vocab in [1500usize, 2049, 4100] {
        let rows = 3;
        let l = logits(&mut rng, rows, vocab, 0.37);
        let dl = gpu.upload_f32(&l).unwrap();
        let ids = argmax(&gpu, &dl, rows, vocab).unwrap();
        let logp = gpu.alloc_poisoned(rows * vocab * 4).unwrap();
        let lse = gpu.alloc_poisoned(rows * 4).unwrap();
        log_softmax_into(&gpu, &dl, rows, vocab, Some(&logp), &lse).unwrap();
        let got_lp = logp.download_f32().unwrap();
        let n = 20;
        let top = gpu.alloc_poisoned(rows * n * 4).unwrap();
        top_n_into(&gpu, &logp, rows, vocab, n, &top).unwrap();
        let got_top = top.download_u32().unwrap();
        let params: Vec<RowSampling> =
            (0..rows).map(|i| RowSampling { temperature: 0.8, top_p: [1.0, 0.9, 0.5][i], top_k: [0, 40, 0][i], uniform: rng.f64() }).collect();
        let got = sample(&gpu, &dl, rows, vocab, &params).unwrap();
        let got_bisect = sample_with(&gpu, &dl, rows, vocab, &params, SampleKernel::Bisect).unwrap();
        for (r, row) in l.chunks(vocab).enumerate() {
            assert_eq!(ids[r] as usize, host_argmax(row));
            let want = host_log_softmax(row);
            for (g, w) in got_lp[r * vocab..(r + 1) * vocab].iter().zip(&want) {
                assert!((g - w).abs() <= 2.0 * f32::EPSILON * w.abs().max(1.0), "logp {g} vs {w}");
            }
            let gl = &got_lp[r * vocab..(r + 1) * vocab];
            let want_top: Vec<u32> = host_top_n(gl, n).into_iter().map(|i| i as u32).collect();
            assert_eq!(&got_top[r * n..(r + 1) * n], &want_top[..]);
            let (want_tok, margin) = host_sample(row, &params[r], params[r].uniform);
            if margin >= 1e-12 {
                assert_eq!(got[r] as usize, want_tok, "sample row {r}");
                assert_eq!(got_bisect[r] as usize, want_tok, "bisect sample row {r}");
            }
        }
    }
}

/// Many draws on one small row follow the host exactly (u sweeps [0, 1)).
#[test]
fn sweep_of_uniforms_matches_host() {
    let gpu = Gpu::for_tests();
    let l = [5.0f32, 4.0, 3.0, 0.0, -1.0, -2.0, 4.0, -0.0, 0.0];
    let rows = 24;
    let mut rng = Rng(77);
    let params: Vec<RowSampling> = (0..rows)
        .map(|i| RowSampling {
            temperature: if i % 3 == 0 { 1.0 } else { 0.7 },
            top_p: if i % 2 == 0 { 1.0 } else { 0.8 },
            top_k: (i % 4) as u32 * 2,
            uniform: if i == 0 {
                0.0
            } else if i == 1 {
                1.0 - f64::EPSILON / 2.0
            } else {
                rng.f64()
            },
        })
        .collect();
    let all: Vec<f32> = (0..rows).flat_map(|_| l).collect();
    let dl = gpu.upload_f32(&all).unwrap();
    for kernel in [SampleKernel::Radix, SampleKernel::Bisect] {
        let got = sample_with(&gpu, &dl, rows, l.len(), &params, kernel).unwrap();
        for (r, p) in params.iter().enumerate() {
            let (want, _) = host_sample(&l, p, p.uniform);
            assert_eq!(got[r] as usize, want, "{kernel:?} row {r} {p:?}");
        }
    }
}
