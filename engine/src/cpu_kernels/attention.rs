//! Sparse attention and the indexer's key scores for the CPU backend: the reference's math
//! (`dsv4_reference::ops::attention`), threaded (over query heads; over keys) with the dot
//! products vectorised (4 chains of 8 lanes: a different f32 summation order than the
//! reference's sequential dot, nothing else). At the real geometry these are ~2 GMAC per decoded
//! token for attention (64 heads x 640 entries x 512 x 2 x 43 layers) and 2 GMAC more per token
//! at 64K context for the indexer — more time than the weights take if left scalar.

use dsv4_reference::ops::attention::KvRows;

use super::{pool, Level};

/// `Σ a·b` at `level` (unsupported levels panic).
pub fn dot(level: Level, a: &[f32], b: &[f32]) -> f32 {
    dot_at(level.kernel(), a, b)
}

/// `dot` at a level already checked by `Level::kernel` (the hot loops check once per call).
fn dot_at(level: Level, a: &[f32], b: &[f32]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    match level {
        #[cfg(target_arch = "x86_64")]
        Level::Avx2 | Level::Avx512 => unsafe { dot_avx2(a, b) },
        _ => dot_lanes(a, b),
    }
}

/// Portable: 8 independent partial sums (vectorises on any SIMD width), then the tail.
fn dot_lanes(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ta, tb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    acc.iter().sum::<f32>() + ta.iter().zip(tb).map(|(x, y)| x * y).sum::<f32>()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn dot_avx2(a: &[f32], b: &[f32]) -> f32 {
    use std::arch::x86_64::*;
    let n = a.len().min(b.len());
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    let mut acc = [_mm256_setzero_ps(); 4];
    let mut i = 0;
    while i + 32 <= n {
        for (c, a) in acc.iter_mut().enumerate() {
            // SAFETY: i + 8c + 8 <= n, in bounds of both slices.
            let (x, y) = unsafe { (_mm256_loadu_ps(pa.add(i + 8 * c)), _mm256_loadu_ps(pb.add(i + 8 * c))) };
            *a = _mm256_fmadd_ps(x, y, *a);
        }
        i += 32;
    }
    let s = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
    super::hsum256(s) + a[i..n].iter().zip(&b[i..n]).map(|(x, y)| x * y).sum::<f32>()
}

/// Query heads one AVX-512 attention task handles together (each selected KV row is loaded once
/// for all of them).
const HEADS_PER_TASK: usize = 4;

/// `ops::attention::sparse_attn_rows` (same arguments, same result up to the scores' summation
/// order and the value sums' FMA rounding). AVX-512 with `d` a multiple of 16, AVX2 with `d` a
/// multiple of 8: one task per (query, group of [`HEADS_PER_TASK`] heads), scores by a 4-head x
/// 2-row register tile and the weighted sum over column strips (AVX-512: 64 wide; AVX2: 16 wide
/// over blocks of [`VALUE_ROWS`] rows), so every selected row is read once per group instead of
/// twice per head (at the real geometry, 64 heads x 640 rows x 2 KB: 168 MB of cache traffic per
/// token and layer otherwise). Scalar: one task per (query, head).
pub fn sparse_attn(level: Level, q: &[f32], kv: &KvRows, idx: &[i32], sink: &[f32], scale: f32, d: usize) -> Vec<f32> {
    let level = level.kernel();
    let h = sink.len();
    let s = q.len() / (h * d);
    let k = idx.len() / s.max(1);
    let mut out = vec![0.0; q.len()];
    let sel: Vec<Vec<&[f32]>> =
        (0..s).map(|t| idx[t * k..(t + 1) * k].iter().filter(|&&j| j >= 0).map(|&j| kv.row(j as usize)).collect()).collect();
    #[cfg(target_arch = "x86_64")]
    let grouped = d > 0 && match level {
        Level::Avx512 => d.is_multiple_of(16),
        Level::Avx2 => d.is_multiple_of(8),
        _ => false,
    };
    #[cfg(target_arch = "x86_64")]
    if grouped {
        let groups = h.div_ceil(HEADS_PER_TASK);
        let tasks = pool::map(s * groups, |task| {
            let (t, g) = (task / groups, task % groups);
            let heads = g * HEADS_PER_TASK..((g + 1) * HEADS_PER_TASK).min(h);
            let qg = &q[(t * h + heads.start) * d..(t * h + heads.end) * d];
            // SAFETY: the level checked by `Level::kernel`, d a multiple of its vector width; q
            // holds these heads' rows.
            unsafe {
                if level == Level::Avx512 {
                    attn_heads_avx512(qg, &sel[t], &sink[heads], scale, d)
                } else {
                    attn_heads_avx2(qg, &sel[t], &sink[heads], scale, d)
                }
            }
        });
        for (task, o) in tasks.into_iter().enumerate() {
            let (t, g) = (task / groups, task % groups);
            let h0 = g * HEADS_PER_TASK;
            out[(t * h + h0) * d..][..o.len()].copy_from_slice(&o);
        }
        return out;
    }
    pool::for_chunks_mut(&mut out, d, |th, o| {
        let (t, head) = (th / h, th % h);
        let qh = &q[th * d..][..d];
        let scores: Vec<f32> = sel[t].iter().map(|kv| dot_at(level, qh, kv) * scale).collect();
        let (m, den) = softmax_stats(&scores, sink[head]);
        for (sc, kv) in scores.iter().zip(&sel[t]) {
            let p = (sc - m).exp() / den;
            // element-wise (mul, then add, as the reference): vectorises, same rounding
            o.iter_mut().zip(kv.iter()).for_each(|(o, v)| *o += p * v);
        }
    });
    out
}

/// The running max (the sink included) and the softmax denominator, as the reference.
fn softmax_stats(scores: &[f32], sink: f32) -> (f32, f32) {
    let m = scores.iter().fold(sink, |a, &b| a.max(b));
    (m, (sink - m).exp() + scores.iter().map(|s| (s - m).exp()).sum::<f32>())
}

/// The scores of both widths' attention: `[HEADS_PER_TASK, n]` (`sel.len() = n`), each
/// `q_head · row · scale`, by tiles of 4 heads x 2 rows (8 accumulators; each row vector loaded
/// once for 4 FMAs). `$lanes`-wide vectors: zero, unaligned load, FMA, horizontal sum. Missing
/// heads of a short last group repeat head 0 (computed, never stored).
#[cfg(target_arch = "x86_64")]
macro_rules! score_tiles {
    ($q:expr, $sel:expr, $scale:expr, $d:expr, $nh:expr, $lanes:literal, $zero:path, $load:path, $fma:path, $sum:path) => {{
        const H: usize = HEADS_PER_TASK;
        let (q, sel, scale, d, nh): (&[f32], &[&[f32]], f32, usize, usize) = ($q, $sel, $scale, $d, $nh);
        let n = sel.len();
        let qp: [*const f32; H] = std::array::from_fn(|i| q[(if i < nh { i } else { 0 }) * d..].as_ptr());
        let mut sc = vec![0.0f32; H * n];
        let mut j = 0;
        while j < n {
            let two = j + 1 < n;
            let (r0, r1) = (sel[j].as_ptr(), sel[if two { j + 1 } else { j }].as_ptr());
            let mut a0 = [$zero(); H];
            let mut a1 = [$zero(); H];
            for c in (0..d).step_by($lanes) {
                // SAFETY: c + $lanes <= d (d a multiple of the width) and every row and query
                // head has d values.
                let (v0, v1) = unsafe { ($load(r0.add(c)), $load(r1.add(c))) };
                for i in 0..H {
                    let qv = unsafe { $load(qp[i].add(c)) };
                    a0[i] = $fma(qv, v0, a0[i]);
                    a1[i] = $fma(qv, v1, a1[i]);
                }
            }
            for i in 0..H {
                sc[i * n + j] = $sum(a0[i]) * scale;
                if two {
                    sc[i * n + j + 1] = $sum(a1[i]) * scale;
                }
            }
            j += 2;
        }
        sc
    }};
}

/// Attention of `q.len() / d` (<= 4) heads of one query over the rows `sel`: `[heads, d]`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn attn_heads_avx512(q: &[f32], sel: &[&[f32]], sink: &[f32], scale: f32, d: usize) -> Vec<f32> {
    use std::arch::x86_64::*;
    const H: usize = HEADS_PER_TASK;
    let nh = q.len() / d;
    debug_assert!(nh <= H && nh == sink.len() && d.is_multiple_of(16));
    let n = sel.len();
    let mut sc = score_tiles!(q, sel, scale, d, nh, 16, _mm512_setzero_ps, _mm512_loadu_ps, _mm512_fmadd_ps, _mm512_reduce_add_ps);
    probabilities(&mut sc, n, sink);
    let mut o = vec![0.0f32; nh * d];
    for c in (0..d).step_by(64) {
        let w = (d - c).min(64) / 16; // 16-lane vectors in this strip
        let mut acc = [[_mm512_setzero_ps(); 4]; H];
        for (j, row) in sel.iter().enumerate() {
            let rp = row.as_ptr();
            let v: [__m512; 4] = std::array::from_fn(|u| if u < w { unsafe { _mm512_loadu_ps(rp.add(c + 16 * u)) } } else { _mm512_setzero_ps() });
            for i in 0..H {
                let p = _mm512_set1_ps(sc[i * n + j]);
                for u in 0..4 {
                    acc[i][u] = _mm512_fmadd_ps(p, v[u], acc[i][u]);
                }
            }
        }
        for i in 0..nh {
            for u in 0..w {
                // SAFETY: c + 16u + 16 <= d.
                unsafe { _mm512_storeu_ps(o.as_mut_ptr().add(i * d + c + 16 * u), acc[i][u]) };
            }
        }
    }
    o
}

/// Scores `sc` (`[HEADS_PER_TASK, n]`, the first `sink.len()` heads real) -> probabilities, per
/// head as the reference; the padding heads' rows -> 0 (their sums are never stored).
#[cfg(target_arch = "x86_64")]
fn probabilities(sc: &mut [f32], n: usize, sink: &[f32]) {
    for (i, &s) in sink.iter().enumerate() {
        let row = &mut sc[i * n..(i + 1) * n];
        let (m, den) = softmax_stats(row, s);
        row.iter_mut().for_each(|v| *v = (*v - m).exp() / den);
    }
    sc[sink.len() * n..].fill(0.0);
}

/// Selected rows per block of the AVX2 value pass: 64 rows of 512 f32 (128 KiB) stay in L2 while
/// each 16-wide column strip passes over them (the whole selection, 1.3 MB at the real shape,
/// does not).
#[cfg(target_arch = "x86_64")]
const VALUE_ROWS: usize = 64;

/// [`attn_heads_avx512`] with 8-lane vectors: scores by the same 4-head x 2-row tile (8
/// accumulators), the weighted sum by 16-wide strips (4 heads x 2 vectors of accumulators) over
/// row blocks of [`VALUE_ROWS`], each block's strip sums added into the output.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn attn_heads_avx2(q: &[f32], sel: &[&[f32]], sink: &[f32], scale: f32, d: usize) -> Vec<f32> {
    use std::arch::x86_64::*;
    const H: usize = HEADS_PER_TASK;
    let nh = q.len() / d;
    debug_assert!(nh <= H && nh == sink.len() && d.is_multiple_of(8));
    let n = sel.len();
    let mut sc = score_tiles!(q, sel, scale, d, nh, 8, _mm256_setzero_ps, _mm256_loadu_ps, _mm256_fmadd_ps, super::hsum256);
    probabilities(&mut sc, n, sink);
    let mut o = vec![0.0f32; nh * d];
    for b0 in (0..n).step_by(VALUE_ROWS) {
        let rows = &sel[b0..(b0 + VALUE_ROWS).min(n)];
        for c in (0..d).step_by(16) {
            let w = (d - c).min(16) / 8; // 8-lane vectors in this strip
            let mut acc = [[_mm256_setzero_ps(); 2]; H];
            for (jj, row) in rows.iter().enumerate() {
                let rp = row.as_ptr();
                // SAFETY: c + 8u + 8 <= d for u < w.
                let v: [__m256; 2] = std::array::from_fn(|u| if u < w { unsafe { _mm256_loadu_ps(rp.add(c + 8 * u)) } } else { _mm256_setzero_ps() });
                for i in 0..H {
                    let p = _mm256_set1_ps(sc[i * n + b0 + jj]);
                    for u in 0..2 {
                        acc[i][u] = _mm256_fmadd_ps(p, v[u], acc[i][u]);
                    }
                }
            }
            for i in 0..nh {
                for u in 0..w {
                    // SAFETY: c + 8u + 8 <= d.
                    unsafe {
                        let op = o.as_mut_ptr().add(i * d + c + 8 * u);
                        _mm256_storeu_ps(op, _mm256_add_ps(_mm256_loadu_ps(op), acc[i][u]));
                    }
                }
            }
        }
    }
    o
}

/// Keys per indexer task.
const KEYS_PER_TASK: usize = 64;

/// `ops::attention::index_scores` (same result up to each dot's summation order): keys in
/// parallel chunks; with AVX2, 8 keys at a time against each head's query (the query chunk is
/// loaded once for 8 FMAs, and the 8 dots are reduced together).
pub fn index_scores(level: Level, q: &[f32], w: &[f32], keys: &[f32], d: usize) -> Vec<f32> {
    let level = level.kernel();
    let mut out = vec![0.0; keys.len() / d.max(1)];
    pool::for_chunks_mut(&mut out, KEYS_PER_TASK, |c, o| {
        let ks = &keys[c * KEYS_PER_TASK * d..][..o.len() * d];
        let mut done = 0;
        #[cfg(target_arch = "x86_64")]
        if level != Level::Scalar && d.is_multiple_of(8) {
            for (o8, k8) in o.chunks_exact_mut(8).zip(ks.chunks_exact(8 * d)) {
                // SAFETY: AVX2+FMA checked by `Level::kernel`; q is [w.len(), d], k8 is [8, d].
                unsafe { scores8_avx2(q, w, k8, d, o8) };
                done += 8;
            }
        }
        for (o, k) in o[done..].iter_mut().zip(ks[done * d..].chunks(d)) {
            *o = w.iter().enumerate().map(|(h, wh)| wh * dot_at(level, &q[h * d..][..d], k).max(0.0)).sum();
        }
    });
    out
}

/// Scores of 8 keys `k8` `[8, d]` (`d` a multiple of 8) into `out`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn scores8_avx2(q: &[f32], w: &[f32], k8: &[f32], d: usize, out: &mut [f32]) {
    use std::arch::x86_64::*;
    assert!(k8.len() >= 8 * d && q.len() >= w.len() * d && out.len() >= 8 && d.is_multiple_of(8));
    let (qp, kp) = (q.as_ptr(), k8.as_ptr());
    let mut sc = _mm256_setzero_ps();
    for (h, &wh) in w.iter().enumerate() {
        let mut acc = [_mm256_setzero_ps(); 8];
        for c in (0..d).step_by(8) {
            // SAFETY: h < w.len(), c + 8 <= d; key j < 8: in bounds (asserted above).
            let qv = unsafe { _mm256_loadu_ps(qp.add(h * d + c)) };
            for (j, a) in acc.iter_mut().enumerate() {
                *a = _mm256_fmadd_ps(qv, unsafe { _mm256_loadu_ps(kp.add(j * d + c)) }, *a);
            }
        }
        // lane j <- Σ acc[j]
        let t0 = _mm256_hadd_ps(acc[0], acc[1]);
        let t1 = _mm256_hadd_ps(acc[2], acc[3]);
        let t2 = _mm256_hadd_ps(acc[4], acc[5]);
        let t3 = _mm256_hadd_ps(acc[6], acc[7]);
        let (u0, u1) = (_mm256_hadd_ps(t0, t1), _mm256_hadd_ps(t2, t3));
        let dots = _mm256_add_ps(_mm256_permute2f128_ps::<0x20>(u0, u1), _mm256_permute2f128_ps::<0x31>(u0, u1));
        // relu as the reference's `max(0)`: a NaN dot gives 0 (maxps returns its second operand)
        let r = _mm256_max_ps(dots, _mm256_setzero_ps());
        sc = _mm256_add_ps(sc, _mm256_mul_ps(r, _mm256_set1_ps(wh)));
    }
    // SAFETY: out has >= 8 elements.
    unsafe { _mm256_storeu_ps(out.as_mut_ptr(), sc) };
}
