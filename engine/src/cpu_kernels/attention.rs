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

/// `ops::attention::sparse_attn_rows` (same arguments, same result up to the scores' summation
/// order): one task per (query, head).
pub fn sparse_attn(level: Level, q: &[f32], kv: &KvRows, idx: &[i32], sink: &[f32], scale: f32, d: usize) -> Vec<f32> {
    let level = level.kernel();
    let h = sink.len();
    let s = q.len() / (h * d);
    let k = idx.len() / s.max(1);
    let mut out = vec![0.0; q.len()];
    let sel: Vec<Vec<&[f32]>> =
        (0..s).map(|t| idx[t * k..(t + 1) * k].iter().filter(|&&j| j >= 0).map(|&j| kv.row(j as usize)).collect()).collect();
    pool::for_chunks_mut(&mut out, d, |th, o| {
        let (t, head) = (th / h, th % h);
        let qh = &q[th * d..][..d];
        let scores: Vec<f32> = sel[t].iter().map(|kv| dot_at(level, qh, kv) * scale).collect();
        let m = scores.iter().fold(sink[head], |a, &b| a.max(b));
        let den = (sink[head] - m).exp() + scores.iter().map(|s| (s - m).exp()).sum::<f32>();
        for (sc, kv) in scores.iter().zip(&sel[t]) {
            let p = (sc - m).exp() / den;
            // element-wise (mul, then add, as the reference): vectorises, same rounding
            o.iter_mut().zip(kv.iter()).for_each(|(o, v)| *o += p * v);
        }
    });
    out
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
