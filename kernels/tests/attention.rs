//! The sparse-attention kernels against `dsv4_reference::ops::attention::sparse_attn` with the
//! index rows `Model::attn_core` builds (ring rows for positions before the chunk, chunk rows,
//! compressed rows), over whole sequences fed in random chunks (prefill pieces, single-token
//! decode steps), two sequences sharing one step's buffers, all three selection kinds; the
//! window ring against the reference's update after every chunk.
//!
//! Tolerance: 1e-5·max(1, |ref|) + 1e-6 per output: the kernel's online softmax rescales as it
//! goes (the reference takes the max first) and expf differs from the host exp by <= 2 ulp; the
//! dot products run in another order. The ring is a copy: compared exactly.

use dsv4_kernels::ops::attention::{attn_core_chunk, copy_f32, Selection};
use dsv4_kernels::ops::attn_state::DevLayerState;
use dsv4_kernels::Gpu;
use dsv4_reference::ops::attention::sparse_attn;
use dsv4_reference::Config;
use proptest::prelude::*;

mod common;
use common::Rng;

fn assert_close(got: &[f32], want: &[f32], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(!g.is_nan(), "{what}[{i}] is NaN (want {w})");
        let tol = 1e-5 * w.abs().max(1.0) + 1e-6;
        assert!((g - w).abs() <= tol, "{what}[{i}]: got {g}, want {w} (|diff| {} > {tol})", (g - w).abs());
    }
}

/// Which entries the tokens select.
#[derive(Clone, Copy, Debug)]
enum SelKind {
    None,
    All(usize),
    /// Random subsets of the complete entries (ratio), lists of `width` with -1 padding.
    Random(usize, usize),
}

/// One sequence's host state as the reference keeps it.
struct HostSeq {
    pos: usize,
    window: Vec<f32>,
    comp: Vec<f32>,
    dev: DevLayerState,
}

/// `Model::attn_core`'s index construction + `sparse_attn` (no inverse RoPE), then the ring
/// update: the reference for one chunk.
#[allow(clippy::too_many_arguments)]
fn reference_chunk(q: &[f32], kv: &[f32], selected: &[Vec<usize>], sink: &[f32], hd: usize, win: usize, pos0: usize, seq: &mut HostSeq) -> Vec<f32> {
    let t_len = kv.len() / hd;
    let kv_all = [&seq.window[..], kv, &seq.comp[..]].concat();
    let width = win + selected.iter().map(Vec::len).max().unwrap_or(0);
    let mut idx = vec![-1i32; t_len * width];
    for (t, slots) in idx.chunks_mut(width).enumerate() {
        let p = pos0 + t;
        let window = (p + 1).saturating_sub(win)..=p;
        let rows = window.map(|pos| if pos >= pos0 { win + pos - pos0 } else { pos % win });
        let comp = selected[t].iter().map(|e| win + t_len + e);
        for (s, r) in slots.iter_mut().zip(rows.chain(comp)) {
            *s = r as i32;
        }
    }
    let scale = (hd as f64).powf(-0.5) as f32;
    let o = sparse_attn(q, &kv_all, &idx, sink, scale, hd);
    for t in t_len.saturating_sub(win)..t_len {
        let slot = (pos0 + t) % win;
        seq.window[slot * hd..(slot + 1) * hd].copy_from_slice(&kv[t * hd..(t + 1) * hd]);
    }
    o
}

fn cfg_for(hd: usize, win: usize) -> Config {
    let mut cfg = dsv4_reference::synthetic::small_config();
    cfg.head_dim = hd;
    cfg.window_size = win;
    cfg
}

/// Two sequences advance through random chunkings; each step packs one chunk of each (when
/// left) into shared q/kv/out buffers.
fn run(seed: u64, heads: usize, hd: usize, win: usize, lens: [usize; 2], max_chunk: usize, kind: SelKind) {
    let gpu = Gpu::for_tests();
    let mut rng = Rng(seed | 1);
    let cfg = cfg_for(hd, win);
    let ratio = match kind {
        SelKind::None => 0,
        SelKind::All(r) | SelKind::Random(r, _) => r,
    };
    let sink = rng.vec(heads, -1.5, 1.5);
    let sink_b = gpu.upload_f32(&sink).unwrap();
    let mut seqs: Vec<HostSeq> = (0..2)
        .map(|_| HostSeq { pos: 0, window: vec![f32::NAN; win * hd], comp: Vec::new(), dev: DevLayerState::new(&gpu, &cfg, ratio).unwrap() })
        .collect();
    let qw = heads * hd;
    loop {
        // This step's chunks.
        let mut plan = Vec::new();
        let mut rows = rng.below(2); // a leading unrelated row sometimes
        for (s, seq) in seqs.iter().enumerate() {
            let left = lens[s] - seq.pos;
            if left == 0 {
                continue;
            }
            let t = (if rng.below(3) == 0 { 1 } else { 1 + rng.below(max_chunk) }).min(left);
            plan.push((s, rows, t));
            rows += t;
        }
        if plan.is_empty() {
            break;
        }
        let q = rng.vec(rows * qw, -1.0, 1.0);
        let kv = rng.vec(rows * hd, -1.0, 1.0);
        let q_b = gpu.upload_f32(&q).unwrap();
        let kv_b = gpu.upload_f32(&kv).unwrap();
        let out_b = gpu.alloc_poisoned(rows * qw * 4).unwrap();
        let mut want_rows = Vec::new();
        for &(s, row0, t) in &plan {
            let seq = &mut seqs[s];
            let pos0 = seq.pos;
            // Compressed entries complete by the chunk's end exist (as after attn_compress).
            if let Some(n) = (pos0 + t).checked_div(ratio) {
                while seq.comp.len() < n * hd {
                    let e = rng.vec(hd, -1.0, 1.0);
                    let src = gpu.upload_f32(&e).unwrap();
                    seq.dev.comp.append(&gpu, &src, 0, 1).unwrap();
                    seq.comp.extend(e);
                }
            }
            let selected: Vec<Vec<usize>> = (0..t)
                .map(|i| {
                    let n = (pos0 + i + 1).checked_div(ratio).unwrap_or(0);
                    match kind {
                        SelKind::None => Vec::new(),
                        SelKind::All(_) => (0..n).collect(),
                        SelKind::Random(_, width) => {
                            let mut all: Vec<usize> = (0..n).collect();
                            let k = rng.below(width.min(n) + 1);
                            (0..k).map(|_| all.remove(rng.below(all.len()))).collect()
                        }
                    }
                })
                .collect();
            let want = reference_chunk(&q[row0 * qw..(row0 + t) * qw], &kv[row0 * hd..(row0 + t) * hd], &selected, &sink, hd, win, pos0, seq);
            let sel_buf;
            let sel = match kind {
                SelKind::None => Selection::None,
                SelKind::All(r) => Selection::All { ratio: r },
                SelKind::Random(_, width) => {
                    // Step-row lists: this chunk's rows filled, -1 padding (also interleaved);
                    // other rows hold indices far out of range, which a misplaced read would hit.
                    let mut lists = vec![1 << 30; rows * width];
                    lists[row0 * width..(row0 + t) * width].fill(-1);
                    for (i, sl) in selected.iter().enumerate() {
                        let mut slots: Vec<usize> = (0..width).collect();
                        let mut chosen: Vec<usize> = (0..sl.len()).map(|_| slots.remove(rng.below(slots.len()))).collect();
                        chosen.sort();
                        for (&slot, &e) in chosen.iter().zip(sl) {
                            lists[(row0 + i) * width + slot] = e as i32;
                        }
                    }
                    sel_buf = gpu.upload_i32(&lists).unwrap();
                    Selection::Indices { buf: &sel_buf, width }
                }
            };
            attn_core_chunk(&gpu, &mut seq.dev, heads, &q_b, &kv_b, sel, &sink_b, row0, t, pos0, &out_b).unwrap();
            seq.pos += t;
            want_rows.push((row0, t, want, s, pos0));
        }
        let got = out_b.download_f32().unwrap();
        for (row0, t, want, s, pos0) in want_rows {
            assert_close(&got[row0 * qw..(row0 + t) * qw], &want, &format!("seq {s} chunk at {pos0}+{t} (heads {heads}, hd {hd}, win {win}, {kind:?})"));
        }
        for (s, seq) in seqs.iter().enumerate() {
            let ring = seq.dev.window.download_f32().unwrap();
            // Slots never written are NaN on both sides (the device's poison has other NaN bits).
            let same = |a: &f32, b: &f32| a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan());
            assert!(ring.iter().zip(&seq.window).all(|(a, b)| same(a, b)), "seq {s}: window ring after position {}", seq.pos);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(10))]

    #[test]
    fn window_only(seed in any::<u64>(), heads in 1usize..5, hd in 16usize..64, win in 4usize..16, l0 in 1usize..30, l1 in 0usize..20, mc in 1usize..20) {
        run(seed, heads, hd, win, [l0, l1], mc, SelKind::None);
    }

    #[test]
    fn all_complete_entries(seed in any::<u64>(), heads in 1usize..5, hd in 16usize..64, win in 4usize..16, r in 0usize..2, l0 in 1usize..30, l1 in 0usize..20, mc in 1usize..20) {
        run(seed, heads, hd, win, [l0, l1], mc, SelKind::All([2, 8][r]));
    }

    #[test]
    fn selected_entries(seed in any::<u64>(), heads in 1usize..5, hd in 16usize..64, win in 4usize..16, width in 1usize..7, l0 in 1usize..30, l1 in 0usize..20, mc in 1usize..20) {
        run(seed, heads, hd, win, [l0, l1], mc, SelKind::Random(4, width));
    }
}

/// The full head dim of the model (512: 16 values per lane) and more heads than one CTA holds.
#[test]
fn wide_heads() {
    run(11, 6, 512, 5, [9, 3], 6, SelKind::Random(4, 3));
}

/// The device copy the caches grow with.
#[test]
fn copy_rows() {
    let gpu = Gpu::for_tests();
    let src: Vec<f32> = (0..1000).map(|i| i as f32).collect();
    let s = gpu.upload_f32(&src).unwrap();
    let d = gpu.alloc_poisoned(600 * 4).unwrap();
    copy_f32(&gpu, &d, 10, &s, 333, 590).unwrap();
    let got = d.download_f32().unwrap();
    assert!(got[..10].iter().all(|v| v.is_nan()));
    assert_eq!(&got[10..], &src[333..923]);
    assert!(copy_f32(&gpu, &d, 11, &s, 0, 590).is_err(), "out of bounds is refused");
}

/// Ratio 128 with every complete entry, a prefill longer than the window, then decode.
#[test]
fn ratio_128_all_entries() {
    run(128, 3, 40, 16, [300, 131], 120, SelKind::All(128));
}
