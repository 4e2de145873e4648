//! FAST (not exact) FP4 GEMV: the activations are quantised to int8 per 32 inputs and the dot
//! products run in integers. Opt-in only: the result differs from `Linear::forward` by the
//! activation rounding (at most `0.5/127 · amax_block` per input; see
//! `engine/tests/cpu_kernels_int8.rs` for the bound and the measured error).
//!
//! Per 32-input block: `x ≈ q · sx` with `q` in -127..=127 and `sx = amax / 127`; the weights
//! are exact integers `2·e2m1` in -12..=12, so `Σ q·(2·e2m1)` is an exact int32 and the block
//! adds `dot · (sx · 0.5 · e8m0)` to an f32 accumulator.
//!
//! AVX2, two blocks (32 code bytes) per step: AND / shift+AND split the even-input and odd-input
//! nibbles of both blocks (block A in the low 128-bit lane, B in the high one) and `vpshufb`
//! looks up `2·e2m1 + 12` (0..=24, unsigned: `vpmaddubsw` wants one u8 operand; the other is
//! `q`). `x` is stored to match ([A even | B even], [A odd | B odd]). A product pair is at most
//! 2·24·127 and the even + odd sum 12192 < 32767 (no saturation); `vpmaddwd` with ones gives 8
//! int32 (4 per block), from which the precomputed `12·Σq` of each lane is subtracted, so each
//! lane is an exact `Σ q·(2·e2m1)`, converted exactly to f32 and scaled. (The offset saves the
//! `vpsignb` per batch row that `|q| · sign(w, q)` would need.)

use std::ops::Range;

use super::fp4::{check_shape, INT2X};
use super::{batched, with_batch, Level, OutPtr, E8M0, MAX_BATCH};

/// Inputs per activation scale (equal to the FP4 weight block).
const QBLOCK: usize = 32;

/// `y[m, rows.len()] ≈ x[m, inp] · W[rows]ᵀ` for FP4 weights (same shape contract as
/// `fp4::gemv`), with `x` quantised to int8 per 32 inputs. NaN in a block of `x` or a NaN
/// e8m0 scale (0xFF) makes the output NaN; infinities in `x` also give NaN.
pub fn fp4_gemv_int8(level: Level, w: &[u8], scale: &[u8], out: usize, inp: usize, x: &[f32], rows: Range<usize>) -> Vec<f32> {
    check_shape(w, scale, out, inp, x, &rows);
    let level = level.kernel();
    let (m, n, row0) = (x.len() / inp, rows.len(), rows.start);
    // one quantised layout per batch chunk (`QuantX` interleaves the chunk's rows)
    let qs: Vec<QuantX> = x.chunks(MAX_BATCH * inp).map(|xc| QuantX::new(xc, inp)).collect();
    batched(m, rows, inp / 2, |b, r, yp| {
        let q = &qs[b.start / MAX_BATCH];
        match level {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `kernel()` checked AVX2/FMA; `check_shape` bounds every row of `r`, and
            // `QuantX` holds `b.len()` rows of `inp` values.
            Level::Avx2 | Level::Avx512 => unsafe { with_batch!(b.len(), rows_avx2(w, scale, inp, q, r, yp, n, row0)) },
            _ => with_batch!(b.len(), rows_scalar(w, scale, inp, q, r, yp, n, row0)),
        }
    })
}

/// Quantises `x` to int8 per 32 values (`x.len()` a multiple of 32): returns `q` (-127..=127,
/// round to nearest) and one scale per block, `amax / 127` (0 for an all-zero block, NaN when
/// the block holds a NaN or an infinity), so that `x ≈ q · scale`.
pub fn quantize_int8_blocks(x: &[f32]) -> (Vec<i8>, Vec<f32>) {
    assert!(x.len().is_multiple_of(QBLOCK), "length {} is not a multiple of {QBLOCK}", x.len());
    let mut q = vec![0i8; x.len()];
    let mut s = vec![0.0f32; x.len() / QBLOCK];
    for ((xb, qb), sb) in x.chunks_exact(QBLOCK).zip(q.chunks_exact_mut(QBLOCK)).zip(&mut s) {
        if xb.iter().any(|v| !v.is_finite()) {
            *sb = f32::NAN; // q stays 0; the NaN scale poisons the output
            continue;
        }
        let amax = xb.iter().fold(0.0f32, |a, v| a.max(v.abs()));
        if amax == 0.0 {
            continue;
        }
        let sc = amax / 127.0;
        *sb = sc;
        for (qi, &v) in qb.iter_mut().zip(xb) {
            // `as` saturates (and maps a NaN from a denormal-underflowed scale to 0)
            *qi = (v / sc).round().clamp(-127.0, 127.0) as i8;
        }
    }
    (q, s)
}

/// A batch chunk of activations in the kernels' layout, block-pair-major: one pair of blocks of
/// every batch row is one contiguous stretch (batch rows `inp` bytes apart would fall in the
/// same L1 sets for power-of-two `inp` and evict each other). An odd last block is paired with
/// zeros (`q = 0`, scale 0).
struct QuantX {
    /// Per pair and batch row (`[pairs, mb]`), 64 bytes: `q` as [A even 16 | B even 16],
    /// then [A odd 16 | B odd 16] (i8 bits).
    q: Vec<u8>,
    /// Per pair and batch row, 8 lanes: `12 · Σ q` over the inputs of `vpmaddwd` lane `l`.
    corr: Vec<i32>,
    /// Per pair and batch row, 8 lanes: `scale · 0.5` of block A (lanes 0..4) and B (4..8);
    /// the 0.5 undoes the 2 of the integer weights.
    half: Vec<f32>,
}

impl QuantX {
    fn new(x: &[f32], inp: usize) -> QuantX {
        debug_assert!(x.len().is_multiple_of(inp));
        let (mb, kb) = (x.len() / inp, inp / QBLOCK);
        let np = kb.div_ceil(2);
        let (qn, s) = quantize_int8_blocks(x);
        let mut q = vec![0u8; np * mb * 64];
        let mut corr = vec![0i32; np * mb * 8];
        let mut half = vec![0.0f32; np * mb * 8];
        for b in 0..mb {
            for blk in 0..kb {
                let (p, h) = (blk / 2, blk % 2);
                let o = p * mb + b;
                let src = &qn[b * inp + blk * QBLOCK..][..QBLOCK];
                let dst = &mut q[o * 64..][..64];
                for j in 0..16 {
                    dst[16 * h + j] = src[2 * j] as u8;
                    dst[32 + 16 * h + j] = src[2 * j + 1] as u8;
                }
                // lane 4h + i covers inputs 4i..4i+4 of the even and of the odd half
                for i in 0..4 {
                    let sum: i32 = (8 * i..8 * i + 8).map(|j| i32::from(src[j])).sum();
                    corr[o * 8 + 4 * h + i] = 12 * sum;
                    half[o * 8 + 4 * h + i] = s[b * kb + blk] * 0.5;
                }
            }
        }
        QuantX { q, corr, half }
    }
}

/// Portable kernel, the same integer math: rows `r`, output `y[b * ldy + (row - row0)]`.
fn rows_scalar<const B: usize>(
    w: &[u8],
    scale: &[u8],
    k: usize,
    x: &QuantX,
    r: Range<usize>,
    y: OutPtr,
    ldy: usize,
    row0: usize,
) {
    let e8m0 = &*E8M0;
    let kb = k / QBLOCK;
    for n in r {
        let wr = &w[n * k / 2..(n + 1) * k / 2];
        let sr = &scale[n * kb..(n + 1) * kb];
        let mut acc = [0.0f32; B];
        for (blk, (wb, &sc)) in wr.chunks_exact(16).zip(sr).enumerate() {
            let ws = e8m0[sc as usize];
            let (p, h) = (blk / 2, blk % 2);
            for b in 0..B {
                let o = p * B + b;
                let qb = &x.q[o * 64..][..64];
                let dot: i32 = wb
                    .iter()
                    .enumerate()
                    .map(|(j, &c)| {
                        i32::from(INT2X[(c & 15) as usize]) * i32::from(qb[16 * h + j] as i8)
                            + i32::from(INT2X[(c >> 4) as usize]) * i32::from(qb[32 + 16 * h + j] as i8)
                    })
                    .sum();
                acc[b] += dot as f32 * (x.half[o * 8 + 4 * h] * ws);
            }
        }
        for (b, a) in acc.iter().enumerate() {
            // SAFETY: each row is written by the one thread that owns it; `y` has `B * ldy`.
            unsafe { y.write(b * ldy + n - row0, *a) };
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn rows_avx2<const B: usize>(
    w: &[u8],
    scale: &[u8],
    k: usize,
    x: &QuantX,
    r: Range<usize>,
    y: OutPtr,
    ldy: usize,
    row0: usize,
) {
    use std::arch::x86_64::*;
    let kb = k / QBLOCK;
    let np = kb.div_ceil(2);
    debug_assert!(r.end * k / 2 <= w.len() && r.end * kb <= scale.len() && x.q.len() >= np * B * 64);
    let e8m0 = &*E8M0;
    let table = super::fp4::int2x_plus12_table();
    let m0f = _mm256_set1_epi8(0x0F);
    let ones = _mm256_set1_epi16(1);
    let (qp, cp, hp) = (x.q.as_ptr(), x.corr.as_ptr(), x.half.as_ptr());
    let full = kb / 2; // pairs with two real blocks
    for n in r {
        // SAFETY (all pointer reads below): row `n < r.end` lies inside `w` / `scale` and pair
        // `p < np`, batch row `b < B` inside `x` (the debug_assert above; `check_shape` and
        // `QuantX::new`). The odd last block loads only its own 16 bytes and 1 scale.
        let wp = unsafe { w.as_ptr().add(n * k / 2) };
        let sp = unsafe { scale.as_ptr().add(n * kb) };
        // two accumulator chains per batch row when B <= 2 (FMA latency > one step's work)
        let mut acc = [[_mm256_setzero_ps(); 2]; B];
        macro_rules! step {
            ($p:expr, $v:expr, $ws:expr) => {{
                let (p, v, ws) = ($p, $v, $ws);
                let lo = _mm256_shuffle_epi8(table, _mm256_and_si256(v, m0f));
                let hi = _mm256_shuffle_epi8(table, _mm256_and_si256(_mm256_srli_epi16::<4>(v), m0f));
                let u = if B <= 2 { p % 2 } else { 0 };
                for b in 0..B {
                    let o = p * B + b;
                    let q0 = unsafe { _mm256_loadu_si256(qp.add(o * 64) as *const __m256i) };
                    let q1 = unsafe { _mm256_loadu_si256(qp.add(o * 64 + 32) as *const __m256i) };
                    let d = _mm256_add_epi16(_mm256_maddubs_epi16(lo, q0), _mm256_maddubs_epi16(hi, q1));
                    let c = unsafe { _mm256_loadu_si256(cp.add(o * 8) as *const __m256i) };
                    let dot = _mm256_sub_epi32(_mm256_madd_epi16(d, ones), c);
                    let s = _mm256_mul_ps(unsafe { _mm256_loadu_ps(hp.add(o * 8)) }, ws);
                    acc[b][u] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot), s, acc[b][u]);
                }
            }};
        }
        for p in 0..full {
            let bp = unsafe { wp.add(p * 32) };
            // prefetches never fault, so pointing past the end is fine
            _mm_prefetch::<_MM_HINT_T0>(bp.wrapping_add(super::PREFETCH_BYTES) as *const i8);
            let v = unsafe { _mm256_loadu_si256(bp as *const __m256i) };
            let (sa, sb) = unsafe { (*sp.add(2 * p), *sp.add(2 * p + 1)) };
            let ws = unsafe {
                _mm256_set_m128(_mm_set1_ps(*e8m0.get_unchecked(sb as usize)), _mm_set1_ps(*e8m0.get_unchecked(sa as usize)))
            };
            step!(p, v, ws);
        }
        if full < np {
            let v = _mm256_zextsi128_si256(unsafe { _mm_loadu_si128(wp.add(full * 32) as *const __m128i) });
            // block B is padding (q = 0, half = 0): any finite scale gives 0
            let ws = _mm256_set_m128(_mm_set1_ps(1.0), _mm_set1_ps(unsafe { *e8m0.get_unchecked(*sp.add(2 * full) as usize) }));
            step!(full, v, ws);
        }
        for b in 0..B {
            let v = super::hsum256(_mm256_add_ps(acc[b][0], acc[b][1]));
            // SAFETY: each row is written by the one thread that owns it; `y` has `B * ldy`.
            unsafe { y.write(b * ldy + n - row0, v) };
        }
    }
}
