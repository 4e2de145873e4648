//! The compressor kernels against `dsv4_reference::model::compressor::Compressor::feed` (+ the
//! entry RMSNorm) on the same projections, for random chunkings of a sequence (prefill chunks
//! at any position, single-token decode steps), with and without overlap; and the device state
//! against the reference's `CompressorState` after every chunk.
//!
//! Tolerance: entries agree to 1e-5·max(1, |ref|) + 1e-6: the pooled value uses expf (<= 2 ulp
//! from the host's exp) and the RMS sum of squares is reduced in a tree; the division by the
//! softmax denominator and the pooling order are the reference's. The state rings hold the
//! same raw numbers (score + ape is one f32 add on both sides): compared exactly.

use dsv4_kernels::ops::attn_state::{DevLayerState, DevRows};
use dsv4_kernels::ops::compressor::{compress_chunk, compress_into, completed_blocks, DevCompressor, DevCompressorState};
use dsv4_kernels::Gpu;
use dsv4_reference::linear::Linear;
use dsv4_reference::model::compressor::{Compressor, CompressorState};
use dsv4_reference::ops::norm::rms_norm_inplace;
use dsv4_reference::ActQuant;
use proptest::prelude::*;

const EPS: f32 = 1e-6;

mod common;
use common::Rng;

fn make_compressor(rng: &mut Rng, ratio: usize, hd: usize, dim: usize) -> Compressor {
    let overlap = ratio == 4;
    let w = if overlap { 2 * hd } else { hd };
    Compressor {
        ratio,
        hd,
        overlap,
        wkv: Linear::f32(w, dim, rng.vec(w * dim, -0.5, 0.5)),
        wgate: Linear::f32(w, dim, rng.vec(w * dim, -0.5, 0.5)),
        ape: rng.vec(ratio * w, -1.0, 1.0),
        norm: rng.vec(hd, 0.5, 1.5),
    }
}

/// Random split of `len` into chunks; `decode_tail` tokens at the end are single steps.
fn chunking(rng: &mut Rng, len: usize, max_chunk: usize) -> Vec<usize> {
    let mut out = Vec::new();
    let mut left = len;
    while left > 0 {
        let c = if rng.below(3) == 0 { 1 } else { 1 + rng.below(max_chunk.min(left)) };
        let c = c.min(left);
        out.push(c);
        left -= c;
    }
    out
}

fn assert_close(got: &[f32], want: &[f32], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(!g.is_nan(), "{what}[{i}] is NaN (want {w})");
        let tol = 1e-5 * w.abs().max(1.0) + 1e-6;
        assert!((g - w).abs() <= tol, "{what}[{i}]: got {g}, want {w} (|diff| {} > {tol})", (g - w).abs());
    }
}

fn same_state(got: &CompressorState, want: &CompressorState, what: &str) {
    let eq = |a: &Vec<Vec<f32>>, b: &Vec<Vec<f32>>, f: &str| {
        assert_eq!(a.len(), b.len(), "{what}: {f} rows");
        for (i, (x, y)) in a.iter().zip(b).enumerate() {
            assert!(x.iter().zip(y).all(|(p, q)| p.to_bits() == q.to_bits()), "{what}: {f} row {i} differs");
        }
    };
    eq(&got.kv, &want.kv, "kv");
    eq(&got.score, &want.score, "score");
    eq(&got.prev_kv, &want.prev_kv, "prev_kv");
    eq(&got.prev_score, &want.prev_score, "prev_score");
}

/// Feed a whole sequence in the given chunks to both; every chunk sits at a random row offset
/// of a larger step buffer (as in a multi-sequence step).
fn run_sequence(seed: u64, ratio: usize, hd: usize, dim: usize, len: usize, max_chunk: usize) {
    let gpu = Gpu::for_tests();
    let mut rng = Rng(seed | 1);
    let c = make_compressor(&mut rng, ratio, hd, dim);
    let dc = DevCompressor::from_reference(&gpu, &c, EPS).unwrap();
    let mut dst = DevCompressorState::new(&gpu, ratio, hd, c.overlap).unwrap();
    let mut rst = CompressorState::default();
    let w = c.coff() * hd;
    let mut pos = 0;
    for t in chunking(&mut rng, len, max_chunk) {
        let x = rng.vec(t * dim, -1.0, 1.0);
        // Reference.
        let want: Vec<(usize, Vec<f32>)> = c
            .feed(&x, pos, &mut rst)
            .into_iter()
            .map(|(b, mut e)| {
                rms_norm_inplace(&mut e, &c.norm, EPS);
                (b, e)
            })
            .collect();
        // Device: the projections as step rows at offset row0.
        let kv = c.wkv.forward(&x, ActQuant::Off);
        let sc = c.wgate.forward(&x, ActQuant::Off);
        let row0 = rng.below(3);
        let rows = row0 + t + rng.below(2);
        let mut kv_step = rng.vec(rows * w, -9.0, 9.0);
        let mut sc_step = rng.vec(rows * w, -9.0, 9.0);
        kv_step[row0 * w..(row0 + t) * w].copy_from_slice(&kv);
        sc_step[row0 * w..(row0 + t) * w].copy_from_slice(&sc);
        let kv_b = gpu.upload_f32(&kv_step).unwrap();
        let sc_b = gpu.upload_f32(&sc_step).unwrap();
        let out_row0 = rng.below(2);
        let n_new = completed_blocks(ratio, pos, t).len();
        let out = gpu.alloc_poisoned((out_row0 + n_new.max(1)) * hd * 4).unwrap();
        let blocks = compress_chunk(&gpu, &dc, &mut dst, &kv_b, &sc_b, row0, t, pos, &out, out_row0).unwrap();
        assert_eq!(blocks.clone().collect::<Vec<_>>(), want.iter().map(|(b, _)| *b).collect::<Vec<_>>(), "completed blocks at pos {pos}+{t}");
        let got = out.download_f32().unwrap();
        for (i, (b, e)) in want.iter().enumerate() {
            assert_close(&got[(out_row0 + i) * hd..][..hd], e, &format!("entry {b} (chunk at {pos}+{t}, ratio {ratio}, hd {hd})"));
        }
        pos += t;
        assert_eq!(dst.pos, pos);
        same_state(&dst.to_reference().unwrap(), &rst, &format!("state after {pos}"));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]

    /// Ratio 4 with overlap: the candidates of a block span the previous block.
    #[test]
    fn overlap_ratio4_any_chunking(seed in any::<u64>(), hd in 3usize..40, dim in 4usize..20, len in 1usize..30, max_chunk in 1usize..12) {
        run_sequence(seed, 4, hd, dim, len, max_chunk);
    }

    /// Ratios without overlap (8, 16; 128-like in structure).
    #[test]
    fn no_overlap_any_chunking(seed in any::<u64>(), r in 0usize..2, hd in 3usize..40, dim in 4usize..20, len in 1usize..40, max_chunk in 1usize..20) {
        run_sequence(seed, [8, 16][r], hd, dim, len, max_chunk);
    }
}

/// Large hd (the kernel strides channels over 128 threads) and a long prefill chunk followed by
/// decode steps.
#[test]
fn wide_entries_prefill_then_decode() {
    let gpu = Gpu::for_tests();
    let mut rng = Rng(77);
    let (ratio, hd, dim) = (4, 300, 8);
    let c = make_compressor(&mut rng, ratio, hd, dim);
    let dc = DevCompressor::from_reference(&gpu, &c, EPS).unwrap();
    let mut dst = DevCompressorState::new(&gpu, ratio, hd, true).unwrap();
    let mut rst = CompressorState::default();
    let mut cache = DevRows::new(&gpu, hd, 1).unwrap();
    let mut want_cache = Vec::new();
    let mut pos = 0;
    for t in [13, 1, 1, 1, 5, 1] {
        let x = rng.vec(t * dim, -1.0, 1.0);
        for (_, mut e) in c.feed(&x, pos, &mut rst) {
            rms_norm_inplace(&mut e, &c.norm, EPS);
            want_cache.extend(e);
        }
        let kv = gpu.upload_f32(&c.wkv.forward(&x, ActQuant::Off)).unwrap();
        let sc = gpu.upload_f32(&c.wgate.forward(&x, ActQuant::Off)).unwrap();
        let rows = compress_into(&gpu, &dc, &mut dst, &kv, &sc, 0, t, pos, &mut cache).unwrap();
        assert_eq!(rows, completed_blocks(ratio, pos, t));
        pos += t;
        assert_close(&cache.download().unwrap(), &want_cache, &format!("cache after {pos}"));
    }
    assert!(cache.capacity() >= cache.len() && cache.len() == 5);
    same_state(&dst.to_reference().unwrap(), &rst, "final state");
    // A chunk at the wrong position is refused.
    let kv = gpu.upload_f32(&vec![0.0; 2 * hd]).unwrap();
    assert!(compress_chunk(&gpu, &dc, &mut dst, &kv, &kv, 0, 1, pos + 1, cache.buf(), 0).is_err());
}

/// Snapshot / restore and the reference round trip of a whole layer state.
#[test]
fn layer_state_snapshot_and_reference_round_trip() {
    let gpu = Gpu::for_tests();
    let mut rng = Rng(5);
    let mut cfg = dsv4_reference::synthetic::small_config();
    cfg.head_dim = 12;
    cfg.index_head_dim = 8;
    cfg.window_size = 4;
    for ratio in [0, 4, 8] {
        let mut ls = dsv4_reference::model::LayerState::new(&cfg);
        ls.window = rng.vec(cfg.window_size * cfg.head_dim, -1.0, 1.0);
        if ratio > 0 {
            // 3 complete blocks and a partial one of 2 rows.
            let coff = if ratio == 4 { 2 } else { 1 };
            let row = |rng: &mut Rng, hd: usize| rng.vec(coff * hd, -1.0, 1.0);
            ls.comp = rng.vec(3 * cfg.head_dim, -1.0, 1.0);
            ls.compressor.kv = (0..2).map(|_| row(&mut rng, cfg.head_dim)).collect();
            ls.compressor.score = (0..2).map(|_| row(&mut rng, cfg.head_dim)).collect();
            if ratio == 4 {
                ls.compressor.prev_kv = (0..4).map(|_| row(&mut rng, cfg.head_dim)).collect();
                ls.compressor.prev_score = (0..4).map(|_| row(&mut rng, cfg.head_dim)).collect();
                ls.index_keys = rng.vec(3 * cfg.index_head_dim, -1.0, 1.0);
                ls.index_compressor.kv = (0..2).map(|_| row(&mut rng, cfg.index_head_dim)).collect();
                ls.index_compressor.score = (0..2).map(|_| row(&mut rng, cfg.index_head_dim)).collect();
                ls.index_compressor.prev_kv = (0..4).map(|_| row(&mut rng, cfg.index_head_dim)).collect();
                ls.index_compressor.prev_score = (0..4).map(|_| row(&mut rng, cfg.index_head_dim)).collect();
            }
        }
        let mut st = DevLayerState::from_reference(&gpu, &cfg, ratio, &ls).unwrap();
        let back = st.to_reference().unwrap();
        assert_eq!(back.window, ls.window);
        assert_eq!(back.comp, ls.comp);
        assert_eq!(back.index_keys, ls.index_keys);
        same_state(&back.compressor, &ls.compressor, "compressor");
        same_state(&back.index_compressor, &ls.index_compressor, "index compressor");
        let snap = st.snapshot().unwrap();
        assert!(snap.bytes() > 0 && st.bytes() >= snap.bytes());
        let mut fresh = DevLayerState::new(&gpu, &cfg, ratio).unwrap();
        assert!(fresh.window.download_f32().unwrap().iter().all(|v| v.is_nan()), "a fresh window ring is NaN");
        fresh.restore(&gpu, &snap).unwrap();
        assert_eq!(snap_bits(&fresh.snapshot().unwrap()), snap_bits(&snap));
        // Growing the cache keeps the rows.
        if ratio > 0 {
            st.comp.reserve(&gpu, 100).unwrap();
            assert_eq!(st.comp.download().unwrap(), ls.comp);
        }
        // Reset is a fresh state.
        st.reset(&gpu).unwrap();
        let new = DevLayerState::new(&gpu, &cfg, ratio).unwrap();
        let (a, b) = (st.snapshot().unwrap(), new.snapshot().unwrap());
        assert_eq!(snap_bits(&a), snap_bits(&b), "reset state (ratio {ratio})");
    }
}

/// Snapshots hold NaN-poisoned slots (NaN != NaN): compare bits.
fn snap_bits(s: &dsv4_kernels::ops::attn_state::DevLayerSnapshot) -> Vec<Vec<u32>> {
    let b = |v: &Vec<f32>| v.iter().map(|x| x.to_bits()).collect::<Vec<u32>>();
    let mut out = vec![b(&s.window), b(&s.comp), b(&s.index_keys)];
    for c in [&s.compressor, &s.index_compressor].into_iter().flatten() {
        out.extend([vec![c.pos as u32], b(&c.kv_ring), b(&c.sc_ring)]);
    }
    out
}

/// Ratio 128 (the real non-overlap ratio): three blocks over random chunks with decode steps.
#[test]
fn ratio_128_chunked() {
    run_sequence(128, 128, 24, 6, 3 * 128 + 5, 90);
}
