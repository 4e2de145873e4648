//! AVX2 FP8 GEMV for batches of 1-2: the e4m3 bytes decoded in place in their 32-bit lanes,
//! the block scale folded into x.
//!
//! Decode (exact, 9 ops per 32 weights, no widening shuffle): a 32-byte load holds 8 dwords
//! of 4 codes `[b0 b1 b2 b3]`. `srai_epi16(v, 4)` leaves b3 in bits 20-27 of each dword with its
//! sign copied into 28-31 (and b1 the same in the low word); masked with `0x87F0_0000` that is
//! the f32 `b3 · 2^-120` (sign, 4 exponent bits at the bottom of the f32 exponent, 3 mantissa
//! bits; e4m3 subnormals become f32 subnormals, which Zen 3's FMA takes at full speed). A left
//! shift of that by 16 gives b1 the same way; `slli_epi16(v, 8)` first does it for b2 and b0.
//! The four vectors hold the weights at byte positions 4i + t, t = 0..3, so x is laid out to
//! match: per 32 inputs `[x[4i] | x[4i + 1] | x[4i + 2] | x[4i + 3]]`, i = 0..8 (once per call).
//!
//! The scale: per 128-row block each 128-input block of that x is multiplied by `2^120 · s`
//! (`2^(code - 7)`), so one FMA forms `(x · 2^120 · s) · (w · 2^-120)` = `x · w · s`, rounded
//! once, and a row sums into 8 chains with no per-block reduction. Exact under the same
//! condition as the panel kernel's copy ([`super::panel_avx2::scale_fold_exact`], which the
//! caller checks): every nonzero `|x| · 2^(code - 7)` a normal f32. NaN codes (finite after
//! this decode) are caught on the bytes and make their row's outputs NaN, as in the reference.
//!
//! Per 64 weights at batch 1: 2 loads, 18 decode ops, 4 for the NaN check and 8 FMAs (the
//! widening decode it replaces took 24 decode ops, `vpmovsxbd` + shift + mask per 8 weights,
//! and a reduction per 128-input block). Cache-resident on one Zen 3 core (`batch_cache`,
//! FP8 256x4096): 18.1-18.5 GB/s at batch 1 against 11.8-12.1, 9.7-11.4 against 8.4-9.4 at
//! batch 2. At batches 3-4 (12-16 accumulators, x of every token per FMA) it measured no faster
//! than `fp8::rows_avx2`, which keeps them.

use std::arch::x86_64::*;
use std::ops::Range;

use super::OutPtr;

const BLOCK: usize = 128;

/// The most tokens per call (2 tokens x 4 lanes fill 8 accumulators; more would spill).
pub(crate) const MAX_TOKENS: usize = 2;

/// Whether a call of `m` tokens and `inp` inputs can take this kernel (the fold's exactness is
/// checked apart, by [`super::panel_avx2::scale_fold_exact`]).
pub(crate) fn applies(m: usize, inp: usize) -> bool {
    (1..=MAX_TOKENS).contains(&m) && inp.is_multiple_of(32)
}

/// x (`m` rows of `k`) in the lane order of the decode: per 32 inputs, `[x[4i + t]]` for t = 0..4,
/// i = 0..8.
fn lane_order(x: &[f32], k: usize) -> Vec<f32> {
    let mut out = vec![0.0f32; x.len()];
    for (o, c) in out.chunks_exact_mut(32).zip(x.chunks_exact(32)) {
        for t in 0..4 {
            for i in 0..8 {
                o[8 * t + i] = c[4 * i + t];
            }
        }
    }
    debug_assert!(k.is_multiple_of(32));
    out
}

/// `y[m, rows.len()]` for `x[m, k]`, m <= [`MAX_TOKENS`], through the pool.
pub(crate) fn gemv(w: &[u8], scale: &[u8], k: usize, x: &[f32], rows: Range<usize>) -> Vec<f32> {
    let m = x.len() / k;
    assert!(applies(m, k));
    let xl = lane_order(x, k);
    super::batched(m, rows.clone(), k, |_, r, yp| unsafe { share(w, scale, k, &xl, m, r, yp, rows.len(), rows.start) })
}

/// One thread's rows `r`.
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn share(w: &[u8], scale: &[u8], k: usize, xl: &[f32], m: usize, r: Range<usize>, y: OutPtr, ldy: usize, row0: usize) {
    let kbn = k.div_ceil(BLOCK);
    let mut xs = vec![0.0f32; m * k];
    let mut block = usize::MAX;
    for n in r {
        if n / BLOCK != block {
            block = n / BLOCK;
            // this row block's x: each 128-input block times 2^(code - 7)
            for (o, xr) in xs.chunks_exact_mut(k).zip(xl.chunks_exact(k)) {
                for (kb, (ob, xb)) in o.chunks_mut(BLOCK).zip(xr.chunks(BLOCK)).enumerate() {
                    let f = f32::from_bits((u32::from(scale[block * kbn + kb]) + 120) << 23);
                    for (a, b) in ob.iter_mut().zip(xb) {
                        *a = b * f;
                    }
                }
            }
        }
        let wr = &w[n * k..(n + 1) * k];
        // (no Vec per row: this runs for every weight row)
        let mut out = [0.0f32; MAX_TOKENS];
        match m {
            1 => out[..1].copy_from_slice(&row::<1, 2>(wr, &xs)),
            2 => out.copy_from_slice(&row::<2, 1>(wr, &xs)),
            _ => unreachable!("batch {m}"),
        }
        for (b, &v) in out[..m].iter().enumerate() {
            y.write(b * ldy + n - row0, v);
        }
    }
}

/// One weight row against `G` tokens of scaled, lane-ordered x; `U` 32-byte groups per step
/// (4·U accumulator chains per token).
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn row<const G: usize, const U: usize>(wr: &[u8], xs: &[f32]) -> [f32; G] {
    let k = wr.len();
    let (wp, xp) = (wr.as_ptr(), xs.as_ptr());
    let mask = _mm256_set1_epi32(0x87F0_0000u32 as i32);
    let m80 = _mm256_set1_epi8(0x80u8 as i8);
    let mut acc = [[_mm256_setzero_ps(); 8]; G];
    let mut nan = _mm256_setzero_si256();
    // 32 weights at `at` into chain set `u`
    let group = |at: usize, u: usize, acc: &mut [[__m256; 8]; G], nan: &mut __m256i| {
        let v = _mm256_loadu_si256(wp.add(at) as *const __m256i);
        // a NaN code is 0x7F / 0xFF: 0xFF once the sign bit is set; max over the row
        *nan = _mm256_max_epu8(*nan, _mm256_or_si256(v, m80));
        let odd = _mm256_srai_epi16::<4>(v);
        let even = _mm256_srai_epi16::<4>(_mm256_slli_epi16::<8>(v));
        let lanes = [
            _mm256_and_si256(_mm256_slli_epi32::<16>(even), mask),
            _mm256_and_si256(_mm256_slli_epi32::<16>(odd), mask),
            _mm256_and_si256(even, mask),
            _mm256_and_si256(odd, mask),
        ];
        for (t, l) in lanes.into_iter().enumerate() {
            let wv = _mm256_castsi256_ps(l);
            for (b, a) in acc.iter_mut().enumerate() {
                let xv = _mm256_loadu_ps(xp.add(b * k + at + 8 * t));
                a[4 * u + t] = _mm256_fmadd_ps(xv, wv, a[4 * u + t]);
            }
        }
    };
    let mut at = 0;
    while at + 32 * U <= k {
        if at.is_multiple_of(64) {
            // one line per 64 bytes, PREFETCH_BYTES ahead (a prefetch never faults)
            _mm_prefetch::<_MM_HINT_T0>(wp.wrapping_add(at + super::PREFETCH_BYTES) as *const i8);
        }
        for u in 0..U {
            group(at + 32 * u, u, &mut acc, &mut nan);
        }
        at += 32 * U;
    }
    while at < k {
        group(at, 0, &mut acc, &mut nan);
        at += 32;
    }
    let any_nan = _mm256_movemask_epi8(_mm256_cmpeq_epi8(nan, _mm256_set1_epi8(-1))) != 0;
    std::array::from_fn(|b| {
        let a = &acc[b];
        let s = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(a[0], a[1]), _mm256_add_ps(a[2], a[3])), _mm256_add_ps(_mm256_add_ps(a[4], a[5]), _mm256_add_ps(a[6], a[7])));
        if any_nan { f32::NAN } else { super::hsum256(s) }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every e4m3 code at every byte position of a dword (the four decode lanes), signs and
    /// subnormals included, at batches 1 and 2 and across two row blocks of different scales:
    /// each product `x · w · s` is exact here (x small integers, s a power of two), so the
    /// kernel must give the table's sum exactly. NaN codes give NaN rows.
    #[test]
    fn every_code_in_every_lane() {
        if !(is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")) {
            return;
        }
        let (k, out) = (64usize, 256usize);
        // row c: code c at inputs 4j + (c % 4) and (j + c) % 64, code 0 elsewhere
        let mut w = vec![0u8; out * k];
        for c in 0..out {
            for j in 0..16 {
                w[c * k + 4 * j + c % 4] = c as u8;
            }
            w[c * k + (c * 7) % k] = c as u8;
        }
        let scale = [127u8, 131]; // row blocks 0 and 1: 2^0 and 2^4
        for m in 1..=MAX_TOKENS {
            let x: Vec<f32> = (0..m * k).map(|i| (i % 13) as f32 - 6.0).collect();
            let y = gemv(&w, &scale, k, &x, 0..out);
            for b in 0..m {
                for c in 0..out {
                    let s = super::super::E8M0[scale[c / BLOCK] as usize];
                    let want: f32 = (0..k).map(|i| x[b * k + i] * super::super::E4M3[w[c * k + i] as usize] * s).sum();
                    let got = y[b * out + c];
                    if c & 0x7F == 0x7F {
                        assert!(got.is_nan(), "code {c:#x} b {b}: {got}");
                    } else {
                        assert_eq!(got, want, "code {c:#x} b {b}");
                    }
                }
            }
        }
    }

    #[test]
    fn lane_order_is_a_permutation_within_32() {
        let x: Vec<f32> = (0..64).map(|i| i as f32).collect();
        let l = lane_order(&x, 64);
        for c in 0..2 {
            for t in 0..4 {
                for i in 0..8 {
                    assert_eq!(l[32 * c + 8 * t + i], (32 * c + 4 * i + t) as f32);
                }
            }
        }
    }
}
