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
//! int32 (4 per block), exact sums `Σ q·(2·e2m1 + 12)`, converted exactly to f32 and scaled. The
//! offset's `12·Σq` per block is removed in f32: the activations carry `−12·Σq·sx·0.5` per block
//! and one FMA by the row's 8 decoded weight scales takes 4 pairs' worth. (The offset saves the
//! `vpsignb` per batch row that `|q| · sign(w, q)` would need; removing it in f32 saves an
//! integer subtract and a load per pair and batch row. The f32 sums then carry terms a few times
//! the size of the products, so their rounding grows as much: still ~1e-7 relative, far under
//! the int8 rounding.)
//!
//! Batch rows share each decoded weight vector; a long row is cut into passes whose activations
//! fit in L1, each pass run over a group of 8 rows (batch 8 at 4096 inputs: 1.2x in cache).

use std::ops::Range;

use super::fp4::{check_shape, INT2X};
use super::{batched, with_batch, Level, OutPtr, E8M0, MAX_BATCH};

/// Inputs per activation scale (equal to the FP4 weight block).
const QBLOCK: usize = 32;

/// `QuantX` bytes per block pair and batch row (`q`, `half`, a quarter of `corr`).
const X_PAIR_BYTES: usize = 64 + 32 + 8;

/// The AVX2 kernel's budget of activation bytes per pass over a group of rows (half of a 32 KiB
/// L1d: the weights stream through the other half).
const L1_X_BYTES: usize = 16 * 1024;

/// Weight rows per group in the AVX2 kernel (their accumulators wait on the stack between
/// passes).
const GROUP: usize = 8;

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
    quantize_each(x, quantize_block)
}

/// [`quantize_int8_blocks`], bit for bit, with AVX2 where the CPU has it (the scalar `round`
/// is a libm call per value: a tenth of the kernel's time at batch 32 in cache, and serial).
fn quantize_blocks_fast(x: &[f32]) -> (Vec<i8>, Vec<f32>) {
    #[cfg(target_arch = "x86_64")]
    if is_x86_feature_detected!("avx2") {
        // SAFETY: AVX2 was just detected. `None`: the scale underflowed to 0, and the scalar
        // path's saturating casts decide.
        return quantize_each(x, |xb, qb| unsafe { quantize_block_avx2(xb, qb) }.unwrap_or_else(|| quantize_block(xb, qb)));
    }
    quantize_int8_blocks(x)
}

/// `q` and the scales of `x`, block by block through `block` (which writes a zeroed block's
/// `q` and returns its scale).
fn quantize_each(x: &[f32], block: impl Fn(&[f32; QBLOCK], &mut [i8; QBLOCK]) -> f32) -> (Vec<i8>, Vec<f32>) {
    assert!(x.len().is_multiple_of(QBLOCK), "length {} is not a multiple of {QBLOCK}", x.len());
    let mut q = vec![0i8; x.len()];
    let s = x.chunks_exact(QBLOCK).zip(q.chunks_exact_mut(QBLOCK)).map(|(xb, qb)| block(xb.try_into().unwrap(), qb.try_into().unwrap())).collect();
    (q, s)
}

/// One block of [`quantize_int8_blocks`] (`q` zeroed on entry).
fn quantize_block(xb: &[f32; QBLOCK], qb: &mut [i8; QBLOCK]) -> f32 {
    if xb.iter().any(|v| !v.is_finite()) {
        return f32::NAN; // q stays 0; the NaN scale poisons the output
    }
    let amax = xb.iter().fold(0.0f32, |a, v| a.max(v.abs()));
    if amax == 0.0 {
        return 0.0;
    }
    let sc = amax / 127.0;
    for (qi, &v) in qb.iter_mut().zip(xb) {
        // `as` saturates (and maps a NaN from a denormal-underflowed scale to 0)
        *qi = (v / sc).round().clamp(-127.0, 127.0) as i8;
    }
    sc
}

/// [`quantize_block`] with AVX2 (`q` zeroed on entry): the scale, or `None` (and nothing
/// written) when `amax / 127` underflows to 0 but `amax` is not 0.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn quantize_block_avx2(x: &[f32; QBLOCK], q: &mut [i8; QBLOCK]) -> Option<f32> {
    use std::arch::x86_64::*;
    let v: [__m256; 4] = std::array::from_fn(|i| unsafe { _mm256_loadu_ps(x.as_ptr().add(8 * i)) });
    let sign = _mm256_set1_ps(-0.0);
    let a = v.map(|v| _mm256_andnot_ps(sign, v));
    // NaN (unordered) or infinity: not less than +inf
    let inf = _mm256_set1_ps(f32::INFINITY);
    let bad = a.iter().fold(_mm256_setzero_ps(), |m, &a| _mm256_or_ps(m, _mm256_cmp_ps::<_CMP_NLT_UQ>(a, inf)));
    if _mm256_movemask_ps(bad) != 0 {
        return Some(f32::NAN);
    }
    let m = _mm256_max_ps(_mm256_max_ps(a[0], a[1]), _mm256_max_ps(a[2], a[3]));
    let m = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps::<1>(m));
    let m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    let amax = _mm_cvtss_f32(_mm_max_ss(m, _mm_shuffle_ps::<1>(m, m)));
    if amax == 0.0 {
        return Some(0.0);
    }
    let sc = amax / 127.0;
    if sc == 0.0 {
        return None;
    }
    let (scv, half, one, lim) = (_mm256_set1_ps(sc), _mm256_set1_ps(0.5), _mm256_set1_ps(1.0), _mm256_set1_ps(127.0));
    let i = v.map(|v| {
        // `f32::round`: half away from zero (`vroundps` has no such mode): truncate, then step
        // one away from zero where the dropped fraction is at least a half
        let y = _mm256_div_ps(v, scv);
        let t = _mm256_round_ps::<{ _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC }>(y);
        let up = _mm256_cmp_ps::<_CMP_GE_OQ>(_mm256_andnot_ps(sign, _mm256_sub_ps(y, t)), half);
        let t = _mm256_add_ps(t, _mm256_and_ps(up, _mm256_or_ps(_mm256_and_ps(y, sign), one)));
        let t = _mm256_min_ps(_mm256_max_ps(t, _mm256_sub_ps(_mm256_setzero_ps(), lim)), lim);
        _mm256_cvttps_epi32(t)
    });
    // int32 -> int8 (no saturation: |q| <= 127); the packs interleave 128-bit lanes, the
    // permute restores input order
    let b = _mm256_packs_epi16(_mm256_packs_epi32(i[0], i[1]), _mm256_packs_epi32(i[2], i[3]));
    let b = _mm256_permutevar8x32_epi32(b, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    unsafe { _mm256_storeu_si256(q.as_mut_ptr() as *mut __m256i, b) };
    Some(sc)
}

/// A batch chunk of activations in the kernels' layout, block-pair-major: one pair of blocks of
/// every batch row is one contiguous stretch (batch rows `inp` bytes apart would fall in the
/// same L1 sets for power-of-two `inp` and evict each other). An odd last block is paired with
/// zeros (`q = 0`, scale 0).
struct QuantX {
    /// Per pair and batch row (`[pairs, mb]`), 64 bytes: `q` as [A even 16 | B even 16],
    /// then [A odd 16 | B odd 16] (i8 bits).
    q: Vec<u8>,
    /// Per group of 8 blocks and batch row (`[groups, mb]`), 8 lanes: `−12 · Σq · scale · 0.5`
    /// of each block (0 past the last block): the offset of the `+12` weights, removed in f32
    /// once per 4 pairs (an FMA by the 8 weight scales) instead of once per pair in integers.
    corr: Vec<f32>,
    /// Per pair and batch row, 8 lanes: `scale · 0.5` of block A (lanes 0..4) and B (4..8);
    /// the 0.5 undoes the 2 of the integer weights.
    half: Vec<f32>,
}

impl QuantX {
    fn new(x: &[f32], inp: usize) -> QuantX {
        debug_assert!(x.len().is_multiple_of(inp));
        let (mb, kb) = (x.len() / inp, inp / QBLOCK);
        let np = kb.div_ceil(2);
        let (qn, s) = quantize_blocks_fast(x);
        let mut q = vec![0u8; np * mb * 64];
        let mut corr = vec![0.0f32; np.div_ceil(4) * mb * 8];
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
                let hs = s[b * kb + blk] * 0.5;
                half[o * 8 + 4 * h..][..4].fill(hs);
                let sum: i32 = src.iter().map(|&v| i32::from(v)).sum();
                corr[((blk / 8) * mb + b) * 8 + blk % 8] = -12.0 * sum as f32 * hs;
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
    let ng = np.div_ceil(4); // groups of 4 pairs: one vector of 8 weight scales each
    // Groups of 4 pairs per pass over a group of rows: the pass's activations stay in L1
    // while the group's rows read them (a whole row's at batch 8, 4096 inputs, is 52 KiB: from
    // L2 every row, the kernel waited on it). Within a row the groups still run in order.
    let pass = (L1_X_BYTES / (B * X_PAIR_BYTES * 4)).clamp(1, ng);
    // one pass per row: prefetch along the row; several: the same stretch two rows on
    let pf = if pass < ng { k } else { super::PREFETCH_BYTES };
    let (nan, tiny) = (_mm256_set1_ps(f32::NAN), _mm256_set1_ps(e8m0[0]));
    let (b00, bff) = (_mm256_setzero_si256(), _mm256_set1_epi32(0xFF));
    // 8 e8m0 bytes -> 2^(e-127) (the exponent field as is; 0 -> 2^-127 and 0xFF -> NaN fixed)
    let scales8 = |bytes: u64| {
        let e = _mm256_cvtepu8_epi32(_mm_cvtsi64_si128(bytes as i64));
        let f = _mm256_castsi256_ps(_mm256_slli_epi32::<23>(e));
        let f = _mm256_blendv_ps(f, tiny, _mm256_castsi256_ps(_mm256_cmpeq_epi32(e, b00)));
        _mm256_blendv_ps(f, nan, _mm256_castsi256_ps(_mm256_cmpeq_epi32(e, bff)))
    };
    // lane j of the 4 pairs' scale vectors: block 2j (lanes 0..4) or 2j + 1 (4..8)
    let sel: [__m256i; 4] = std::array::from_fn(|j| {
        let (a, b) = (2 * j as i32, 2 * j as i32 + 1);
        _mm256_setr_epi32(a, a, a, a, b, b, b, b)
    });
    macro_rules! step {
        ($acc:ident, $p:expr, $v:expr, $ws:expr) => {{
            let (p, v, ws) = ($p, $v, $ws);
            let lo = _mm256_shuffle_epi8(table, _mm256_and_si256(v, m0f));
            let hi = _mm256_shuffle_epi8(table, _mm256_and_si256(_mm256_srli_epi16::<4>(v), m0f));
            let u = if B <= 2 { p % 2 } else { 0 };
            for b in 0..B {
                let o = p * B + b;
                let q0 = unsafe { _mm256_loadu_si256(qp.add(o * 64) as *const __m256i) };
                let q1 = unsafe { _mm256_loadu_si256(qp.add(o * 64 + 32) as *const __m256i) };
                let d = _mm256_add_epi16(_mm256_maddubs_epi16(lo, q0), _mm256_maddubs_epi16(hi, q1));
                let dot = _mm256_madd_epi16(d, ones);
                let s = _mm256_mul_ps(unsafe { _mm256_loadu_ps(hp.add(o * 8)) }, ws);
                $acc[b][u] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot), s, $acc[b][u]);
            }
        }};
    }
    let mut n0 = r.start;
    while n0 < r.end {
        let g = (r.end - n0).min(GROUP);
        // two accumulator chains per batch row when B <= 2 (FMA latency > one step's work)
        let mut accs = [[[_mm256_setzero_ps(); 2]; B]; GROUP];
        let mut g0 = 0;
        while g0 < ng {
            let g1 = (g0 + pass).min(ng);
            for (i, slot) in accs.iter_mut().enumerate().take(g) {
                let n = n0 + i;
                // SAFETY (all pointer reads below): row `n < r.end` lies inside `w` / `scale`
                // and pair `p < np`, group `gi < ng`, batch row `b < B` inside `x` (the
                // debug_assert above; `check_shape` and `QuantX::new`). The odd last block
                // loads only its own 16 bytes, the last group only the row's scale bytes.
                let wp = unsafe { w.as_ptr().add(n * k / 2) };
                let sp = unsafe { scale.as_ptr().add(n * kb) };
                let mut acc = *slot;
                for gi in g0..g1 {
                    let nb = (kb - 8 * gi).min(8);
                    let bytes = if nb == 8 {
                        unsafe { (sp.add(8 * gi) as *const u64).read_unaligned() }
                    } else {
                        // padding blocks read scale 0: their q and corr are 0, so they add 0
                        (0..nb).fold(0u64, |a, j| a | u64::from(unsafe { *sp.add(8 * gi + j) }) << (8 * j))
                    };
                    let w8 = scales8(bytes);
                    for (b, a) in acc.iter_mut().enumerate() {
                        let c = unsafe { _mm256_loadu_ps(cp.add((gi * B + b) * 8)) };
                        a[0] = _mm256_fmadd_ps(w8, c, a[0]);
                    }
                    for (j, sj) in sel.iter().enumerate() {
                        let p = 4 * gi + j;
                        let ws = _mm256_permutevar8x32_ps(w8, *sj);
                        if p < full {
                            let bp = unsafe { wp.add(p * 32) };
                            // prefetches never fault, so pointing past the end is fine
                            _mm_prefetch::<_MM_HINT_T0>(bp.wrapping_add(pf) as *const i8);
                            step!(acc, p, unsafe { _mm256_loadu_si256(bp as *const __m256i) }, ws);
                        } else if p < np {
                            // block B is padding (q = 0, half = 0)
                            step!(acc, p, _mm256_zextsi128_si256(unsafe { _mm_loadu_si128(wp.add(p * 32) as *const __m128i) }), ws);
                        }
                    }
                }
                *slot = acc;
            }
            g0 = g1;
        }
        for (i, acc) in accs.iter().enumerate().take(g) {
            for b in 0..B {
                let v = super::hsum256(_mm256_add_ps(acc[b][0], acc[b][1]));
                // SAFETY: each row is written by the one thread that owns it; `y` has `B * ldy`.
                unsafe { y.write(b * ldy + n0 + i - row0, v) };
            }
        }
        n0 += g;
    }
}

#[cfg(test)]
mod tests {
    use super::{quantize_blocks_fast, quantize_int8_blocks};
    use proptest::prelude::*;

    proptest! {
        /// The vector quantiser against the scalar one, bit for bit: random magnitudes, exact
        /// half-way quotients, zeros, subnormals, and a non-finite value now and then.
        #[test]
        fn fast_quantiser_matches_scalar(blocks in 1usize..6, seed in any::<u64>(), special in prop::option::of((any::<usize>(), 0usize..6))) {
            let mut r = seed | 1;
            let mut next = || { r ^= r << 13; r ^= r >> 7; r ^= r << 17; r };
            let mut x: Vec<f32> = (0..blocks * 32)
                .map(|i| {
                    let u = next();
                    let mag = [1e-40f32, 1e-3, 1.0, 3e4, 1e30][(u % 5) as usize];
                    match u % 7 {
                        // halves: in a block whose largest is the special 127.0 (scale 1)
                        // their quotients are exact ties
                        0 => (i as f32 - 16.0) * 0.5,
                        1 => 0.0,
                        _ => ((u >> 11) as f32 / (1u64 << 53) as f32 - 0.5) * mag,
                    }
                })
                .collect();
            if let Some((pos, kind)) = special {
                let v = [f32::NAN, f32::INFINITY, f32::NEG_INFINITY, f32::from_bits(1), -f32::from_bits(3), 127.0][kind];
                let i = pos % x.len();
                x[i] = v;
            }
            let (qf, sf) = quantize_blocks_fast(&x);
            let (qs, ss) = quantize_int8_blocks(&x);
            prop_assert_eq!(qf, qs);
            prop_assert_eq!(sf.iter().map(|v| v.to_bits()).collect::<Vec<_>>(), ss.iter().map(|v| v.to_bits()).collect::<Vec<_>>());
        }
    }

    /// Exact half-way quotients (amax 127 · 2^j makes the scale 2^j): rounded away from zero.
    #[test]
    fn ties_round_away_from_zero() {
        for j in [-3i32, 0, 5] {
            let sc = 2f32.powi(j);
            let x: Vec<f32> = (0..32).map(|i| if i == 0 { 127.0 * sc } else { (i as f32 - 15.5) * sc }).collect();
            let (q, s) = quantize_blocks_fast(&x);
            assert_eq!(s[0], sc);
            assert_eq!((q[1], q[15], q[16], q[31]), (-15, -1, 1, 16));
            assert_eq!((q, s), quantize_int8_blocks(&x));
        }
    }

    /// A block of subnormals only: `amax / 127` underflows to 0 and the scalar path decides.
    #[test]
    fn underflowing_scale_takes_the_scalar_path() {
        let mut x = vec![0.0f32; 32];
        x[3] = f32::from_bits(5);
        x[7] = -f32::from_bits(2);
        assert_eq!(quantize_blocks_fast(&x), quantize_int8_blocks(&x));
        assert_eq!(quantize_int8_blocks(&x).1[0], 0.0);
    }
}
