//! The indexer kernels against the reference: scores and top-k exactly as
//! `Model::indexer` computes them (`Σ_h w_h·relu(dot(q_h, k))`, `ops::moe::topk_indices` over
//! the complete entries), and `ops::hadamard::hadamard_inplace`.
//!
//! Tolerance: none. The kernel evaluates the scores in the reference's order without FMA
//! contraction, so they are bit-identical and the selections (ties to the lower entry, exact
//! zero scores of either sign included: f32::total_cmp orders -0.0 below +0.0) must match
//! exactly. (One exception, kept out of the inputs: a dot product of exactly -0.0, where the
//! reference's `f32::max(-0.0, 0.0)` may return either zero; the kernel returns +0.0.) The
//! Hadamard butterflies are the reference's additions in the same order: bit-identical.

use dsv4_kernels::ops::attn_state::DevRows;
use dsv4_kernels::ops::indexer::{hadamard, indexer_select, IndexShape};
use dsv4_kernels::Gpu;
use dsv4_reference::linear::dot;
use dsv4_reference::ops::hadamard::hadamard_inplace;
use dsv4_reference::ops::moe::topk_indices;
use proptest::prelude::*;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn uniform(&mut self, lo: f32, hi: f32) -> f32 {
        lo + (hi - lo) * ((self.next() >> 40) as f32 / (1u64 << 24) as f32)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    /// Values from the grid ±0.25, ±0.75 when `coarse` (exact ties and exact zero dots become
    /// common), else uniform. No exact zeros: a dot of only -0.0 products is -0.0, and
    /// `f32::max(-0.0, 0.0)` (the reference's relu) may return either zero depending on how
    /// rustc compiled it, which total_cmp would then order differently.
    fn vec(&mut self, n: usize, coarse: bool) -> Vec<f32> {
        (0..n).map(|_| if coarse { (self.below(4) as f32 - 1.5) * 0.5 } else { self.uniform(-1.0, 1.0) }).collect()
    }
}

/// The reference's selection for one token (from `Model::indexer`).
fn reference_select(q: &[f32], w: &[f32], keys: &[f32], sh: IndexShape, p: usize) -> Vec<usize> {
    let (nh, ihd) = (sh.nh, sh.ihd);
    let w: Vec<f32> = w.iter().map(|v| v * sh.w_scale).collect();
    let n = (p + 1) / sh.ratio;
    let scores: Vec<f32> =
        keys[..n * ihd].chunks(ihd).map(|k| (0..nh).map(|hh| w[hh] * dot(&q[hh * ihd..][..ihd], k).max(0.0)).sum()).collect();
    topk_indices(&scores, sh.topk.min(n))
}

/// A sequence scored in random chunks: the keys grow as the compressor would add them.
#[allow(clippy::too_many_arguments)]
fn run(seed: u64, ratio: usize, nh: usize, ihd: usize, topk: usize, len: usize, max_chunk: usize, coarse: bool) {
    let gpu = Gpu::for_tests();
    let mut rng = Rng(seed | 1);
    let sh = IndexShape::new(ratio, nh, ihd, topk);
    let all_keys = rng.vec((len / ratio + 1) * ihd, coarse);
    let mut keys = DevRows::new(&gpu, ihd, 2).unwrap();
    let mut pos = 0;
    while pos < len {
        let t = (if rng.below(3) == 0 { 1 } else { 1 + rng.below(max_chunk) }).min(len - pos);
        let n = (pos + t) / ratio;
        if keys.len() < n {
            let src = gpu.upload_f32(&all_keys[keys.len() * ihd..n * ihd]).unwrap();
            let k = n - keys.len();
            keys.append(&gpu, &src, 0, k).unwrap();
        }
        let row0 = rng.below(3);
        let rows = row0 + t + rng.below(2);
        let q = rng.vec(rows * nh * ihd, coarse);
        let w = rng.vec(rows * nh, coarse);
        let q_b = gpu.upload_f32(&q).unwrap();
        let w_b = gpu.upload_f32(&w).unwrap();
        let out = gpu.upload_i32(&vec![-7; rows * topk]).unwrap();
        indexer_select(&gpu, sh, &q_b, &w_b, &keys, row0, t, pos, &out).unwrap();
        let got = out.download_i32().unwrap();
        for i in 0..t {
            let r = row0 + i;
            let want = reference_select(&q[r * nh * ihd..][..nh * ihd], &w[r * nh..][..nh], &all_keys, sh, pos + i);
            let mut want_row: Vec<i32> = want.iter().map(|&e| e as i32).collect();
            want_row.resize(topk, -1);
            assert_eq!(&got[r * topk..(r + 1) * topk], &want_row[..], "token at position {} (chunk {pos}+{t}, ratio {ratio}, nh {nh}, ihd {ihd}, topk {topk})", pos + i);
        }
        // Rows outside the chunk are untouched.
        for r in (0..row0).chain(row0 + t..rows) {
            assert!(got[r * topk..(r + 1) * topk].iter().all(|&v| v == -7), "row {r} outside the chunk was written");
        }
        pos += t;
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]

    #[test]
    fn topk_matches_reference(seed in any::<u64>(), nh in 1usize..5, ihd in 1usize..24, topk in 1usize..12, len in 1usize..60, mc in 1usize..20, coarse in any::<bool>()) {
        run(seed, 4, nh, ihd, topk, len, mc, coarse);
    }

    #[test]
    fn hadamard_matches_reference(seed in any::<u64>(), log_n in 0usize..9, rows in 1usize..6, row0 in 0usize..3) {
        let gpu = Gpu::for_tests();
        let mut rng = Rng(seed | 1);
        let n = 1 << log_n;
        let x = rng.vec((row0 + rows + 1) * n, false);
        let b = gpu.upload_f32(&x).unwrap();
        hadamard(&gpu, &b, row0, rows, n).unwrap();
        let mut want = x.clone();
        hadamard_inplace(&mut want[row0 * n..(row0 + rows) * n], n);
        let got = b.download_f32().unwrap();
        prop_assert!(got.iter().zip(&want).all(|(a, b)| a.to_bits() == b.to_bits()), "hadamard n {} rows {}", n, rows);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(6))]

    /// Many entries per token (radix passes with many candidates per bin, several 256-entry
    /// tiles of ties), other ratios.
    #[test]
    fn long_lists(seed in any::<u64>(), nh in 1usize..3, r in 0usize..2, topk in 1usize..40, coarse in any::<bool>()) {
        run(seed, [1, 2][r], nh, 4, topk, 260 + (seed % 100) as usize, 150, coarse);
    }
}

/// The real shape: 64 heads × 128, topk 512 of 700 entries (every tie rule path), one token.
#[test]
fn flash_shape_one_token() {
    let gpu = Gpu::for_tests();
    let mut rng = Rng(3);
    let (nh, ihd, topk, ratio) = (64, 128, 512, 4);
    let sh = IndexShape::new(ratio, nh, ihd, topk);
    let n = 700;
    let p = n * ratio + 2;
    let all_keys = rng.vec(n * ihd, true);
    let mut keys = DevRows::new(&gpu, ihd, 16).unwrap();
    keys.upload(&gpu, &all_keys).unwrap();
    let q = rng.vec(nh * ihd, true);
    let w = rng.vec(nh, false);
    let out = gpu.alloc_poisoned(topk * 4).unwrap();
    indexer_select(&gpu, sh, &gpu.upload_f32(&q).unwrap(), &gpu.upload_f32(&w).unwrap(), &keys, 0, 1, p, &out).unwrap();
    let want: Vec<i32> = reference_select(&q, &w, &all_keys, sh, p).iter().map(|&e| e as i32).collect();
    assert_eq!(out.download_i32().unwrap(), want);
}
