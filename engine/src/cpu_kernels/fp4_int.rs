//! Exact FP4 GEMV in integers for AVX2, batches of 1-8 (larger ones take `panel_avx2`): on a
//! Zen 3 host about 1.7x the f32 decode kernels of `fp4` at batch 1 and 1.3x at batch 8 (one
//! core, weights in cache); from DRAM at batch 1 (`dsv4 bench cpu`, 2 threads) expert w1 / w2
//! went 7.2 / 8.8 (f32 decode) -> 17.4 / 13.9 (this kernel, remainders per block) -> 23.7 /
//! 23.1 GB/s (remainders per input, results/cpu-2026-12-07 at 0b10924).
//!
//! Each group of 8 inputs of `x` (what one `vpmaddwd` lane sums) is split as `x = V·u + R`:
//! `u = 2^k` chosen so that `|x| / u < 32640`, `V = trunc(x / u)` an integer and `R` the exact
//! f32 remainder. After the FP8 activation quantisation (4 significant bits per value) `R` is
//! zero unless the group holds a value about 2^11 times smaller than its largest, so for most
//! blocks of 32 `Σ x·(2·e2m1) = Σ_groups u · Σ V·(2·e2m1)`: exact integer dot products. (A `u`
//! per block of 32 left ~2.5x as many blocks with a remainder on the synthetic model's expert
//! inputs: 9 of 64 blocks per w2 input on average against 3.7 now, 4.5 of 128 against 3.1 for
//! w1; `op_profile`'s w2 phase 17 -> 19 GB/s.) `V` is stored as two signed
//! digits `X0 + 256·X1` (both in -128..=127), and per 64 weights (two blocks) the kernel runs:
//! AND / shift+AND and two `vpshufb` (the weights as `2·e2m1 + 12`, unsigned for
//! `vpmaddubsw`, as in `int8`), then per batch row four `vpmaddubsw` + two adds (a lane is at
//! most 4·24·128 = 12288: no saturation), two `vpmaddwd` (ones and 256) + add, minus the
//! precomputed `12·ΣV` per lane: 8 int32 lanes of exact `Σ V·(2·e2m1)` (at most 8·12·32639 <
//! 2^24, so the conversion to f32 is exact), times each lane's `u/2` (exact), then one FMA with
//! the block's e8m0 scale into the f32 accumulator. The inputs with a non-zero remainder
//! ("exceptions", listed per row of `x`) add `R·w·scale` in f32 after the row, one scalar
//! multiply-add each (exact products again). The result is `Linear::forward`'s up to the f32
//! summation order, like every kernel here.
//!
//! (A one-plane variant, `V` as i16 against the weights widened by `vpunpck*bw`, measured the
//! same on Zen 3; it needs four more shuffles per 64 weights, the scarce port on Intel cores.)
//!
//! [`DigitX::new`] declines (the caller takes the f32 kernels) when `x` holds a NaN or an
//! infinity, a value of 2^100 or more, or a row has more exceptions than half its blocks
//! (activations that skipped the FP8 quantisation).

use std::ops::Range;

use super::{OutPtr, E2M1, E8M0};

/// Inputs per block (one e8m0 weight scale; one `u` here).
const BLOCK: usize = 32;

/// `|V| <= 32639` keeps the high digit `(V - X0) / 256` in -127..=127.
const V_LIMIT: f32 = 32640.0;

/// Groups of 8 whose largest |x| is below this are all remainder (`u/2` would leave the f32
/// normal range); 2^100 and above, `DigitX::new` declines.
const TINY: f32 = 1.0 / (1u128 << 100) as f32;
const HUGE: f32 = (1u128 << 100) as f32;

/// One input of one row of `x` whose remainder is not zero: its index in the row and `R`. (On
/// the synthetic model's expert inputs 97% of the blocks with a remainder have exactly one such
/// input, the rest two, so they are listed one by one: a few scalar ops each, beside the
/// vector loop, where a block in f32 took ~35 vector ops; `op_profile`'s w2 phase 17.8-18.4
/// -> 20.0-21.9 GB/s, one Zen 3 core in cache 8.6 -> 12.4 GB/s on `batch_cache`'s x.)
struct Exception {
    pos: u32,
    r: f32,
}

/// A batch chunk of activations in the kernel's layout, block-pair-major like `int8::QuantX`
/// (an odd last block is paired with zeros).
pub(crate) struct DigitX {
    /// Per pair and batch row (`[pairs, mb]`), 128 bytes: `X0` as [A even 16 | B even 16],
    /// [A odd 16 | B odd 16], then `X1` in the same order (i8 bits).
    pub(super) d: Vec<u8>,
    /// Per pair and batch row, 8 lanes: `12 · Σ V` over the inputs of `vpmaddwd` lane `l`
    /// (lanes 0..4 block A, inputs 8l..8l+8; lanes 4..8 block B).
    pub(super) corr: Vec<i32>,
    /// Per pair and batch row, 8 lanes: `u / 2` of block A's groups (lanes 0..4) and B's (4..8);
    /// the 1/2 undoes the 2 of the integer weights.
    pub(super) unit: Vec<f32>,
    /// The exceptions, batch row by batch row: row `b`'s are `exc[starts[b]..starts[b + 1]]`.
    exc: Vec<Exception>,
    starts: Vec<usize>,
}

impl DigitX {
    /// The layout of `x` (`mb` rows of `inp`), or `None` where the f32 kernel should run.
    pub(crate) fn new(x: &[f32], inp: usize) -> Option<DigitX> {
        debug_assert!(inp.is_multiple_of(BLOCK) && x.len().is_multiple_of(inp));
        let (mb, kb) = (x.len() / inp, inp / BLOCK);
        let np = kb.div_ceil(2);
        let mut d = vec![0u8; np * mb * 128];
        let mut corr = vec![0i32; np * mb * 8];
        let mut unit = vec![0.0f32; np * mb * 8];
        let (mut exc, mut starts) = (Vec::new(), vec![0]);
        for b in 0..mb {
            for blk in 0..kb {
                let src: &[f32; BLOCK] = x[b * inp + blk * BLOCK..][..BLOCK].try_into().unwrap();
                let (p, h) = (blk / 2, blk % 2);
                let o = p * mb + b;
                // SAFETY: `new` runs only where `fp4::gemv` dispatched AVX2 or AVX-512 (which
                // includes it).
                let (u, r) = unsafe { split_block(src, &mut d[o * 128..][..128], h, &mut corr[o * 8 + 4 * h..][..4]) }?;
                for (dst, u) in unit[o * 8 + 4 * h..][..4].iter_mut().zip(u) {
                    *dst = u * 0.5;
                }
                if let Some(r) = r {
                    let at = blk * BLOCK;
                    exc.extend(r.iter().enumerate().filter(|(_, v)| **v != 0.0).map(|(i, &r)| Exception { pos: (at + i) as u32, r }));
                }
            }
            starts.push(exc.len());
            if starts[b + 1] - starts[b] > kb / 2 {
                return None;
            }
        }
        Some(DigitX { d, corr, unit, exc, starts })
    }

    /// Rows of `x` it holds.
    pub(super) fn rows(&self) -> usize {
        self.starts.len() - 1
    }

    /// `s` plus batch row `b`'s exceptions against one weight row (codes at `wp`, scales at
    /// `sp`): `R·w·scale` in f32, one input at a time, in the order listed (exact for
    /// FP8-quantised x: R has at most 4 significant bits, e2m1 2, the scale is a power of two;
    /// otherwise one rounding, as the reference's product).
    ///
    /// # Safety
    /// `wp` / `sp` hold a whole row of the `k` inputs this `x` was built for.
    #[inline]
    pub(super) unsafe fn remainders(&self, b: usize, mut s: f32, wp: *const u8, sp: *const u8) -> f32 {
        let (e8m0, e2m1) = (&*E8M0, &*E2M1);
        for e in &self.exc[self.starts[b]..self.starts[b + 1]] {
            // `pos < k` (`DigitX::new`); `get_unchecked`: a code / e8m0 byte indexes its table
            let pos = e.pos as usize;
            let code = (unsafe { *wp.add(pos / 2) } >> (4 * (pos & 1))) & 0xF;
            let sc = unsafe { *e8m0.get_unchecked(*sp.add(pos / BLOCK) as usize) };
            s += e.r * unsafe { *e2m1.get_unchecked(code as usize) } * sc;
        }
        s
    }
}

/// One block: writes its digits (half `h` of the pair's 128 bytes) and 4 lanes of `12·ΣV`;
/// returns the unit `u` of each group of 8 inputs (one `vpmaddwd` lane each) and the remainder
/// when it is not all zero, or `None` for a non-finite or huge value.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn split_block(src: &[f32; BLOCK], dst: &mut [u8], h: usize, corr: &mut [i32]) -> Option<([f32; 4], Option<[f32; BLOCK]>)> {
    use std::arch::x86_64::*;
    debug_assert!(dst.len() == 128 && corr.len() == 4 && h < 2);
    let absm = _mm256_castsi256_ps(_mm256_set1_epi32(0x7FFF_FFFF));
    // SAFETY: `src` holds 32 values, read as 4 vectors of 8 (the 4 groups).
    let xs: [__m256; 4] = std::array::from_fn(|g| unsafe { _mm256_loadu_ps(src.as_ptr().add(8 * g)) });
    let a: [__m256; 4] = std::array::from_fn(|g| _mm256_and_ps(xs[g], absm));
    // NaN fails `< HUGE` (and `max` would skip it)
    let huge = _mm256_set1_ps(HUGE);
    let ok = (0..4).fold(-1i32, |m, g| m & _mm256_movemask_ps(_mm256_cmp_ps::<_CMP_LT_OQ>(a[g], huge)));
    if ok & 0xFF != 0xFF {
        return None;
    }
    // per group: u = 2^k with amax / u in [2^14, 2^15), doubled if that reaches 32640; 0 for a
    // group below TINY (zero, or too small for u: all remainder, its digits zero)
    let u: [f32; 4] = std::array::from_fn(|g| {
        let m = _mm_max_ps(_mm256_castps256_ps128(a[g]), _mm256_extractf128_ps::<1>(a[g]));
        let m = _mm_max_ps(m, _mm_movehl_ps(m, m));
        let amax = _mm_cvtss_f32(_mm_max_ss(m, _mm_shuffle_ps::<1>(m, m)));
        if amax < TINY {
            return 0.0;
        }
        let e = ((amax.to_bits() >> 23) & 0xFF) as i32 - 127;
        let u = f32::from_bits(((e - 14 + 127) as u32) << 23);
        if amax / u >= V_LIMIT {
            u * 2.0
        } else {
            u
        }
    });
    // V = trunc(x / u) (|x / u| < 32640); R = x - V·u, exact (V·u is x with low bits cleared);
    // a group with u = 0: V = 0, R = x
    let v: [__m256i; 4] = std::array::from_fn(|g| {
        let inv = if u[g] == 0.0 { 0.0 } else { 1.0 / u[g] }; // powers of two: exact
        _mm256_cvttps_epi32(_mm256_mul_ps(xs[g], _mm256_set1_ps(inv)))
    });
    let r: [__m256; 4] = std::array::from_fn(|g| _mm256_fnmadd_ps(_mm256_cvtepi32_ps(v[g]), _mm256_set1_ps(u[g]), xs[g]));
    let nz = (0..4).fold(0i32, |m, g| m | _mm256_movemask_ps(_mm256_cmp_ps::<_CMP_NEQ_UQ>(r[g], _mm256_setzero_ps())));
    // digits: X0 = the low byte (signed), X1 = (V - X0) >> 8, each packed to 32 bytes in input
    // order (`vpackssdw` / `vpacksswb` interleave the 128-bit lanes: `vpermd` undoes it), then
    // split [even 16 | odd 16]
    let x0: [__m256i; 4] = std::array::from_fn(|g| _mm256_srai_epi32::<24>(_mm256_slli_epi32::<24>(v[g])));
    let x1: [__m256i; 4] = std::array::from_fn(|g| _mm256_srai_epi32::<8>(_mm256_sub_epi32(v[g], x0[g])));
    let order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    let eo = _mm256_setr_epi8(0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15, 0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15);
    for (plane, q) in [x0, x1].iter().enumerate() {
        let p8 = _mm256_packs_epi16(_mm256_packs_epi32(q[0], q[1]), _mm256_packs_epi32(q[2], q[3]));
        let nat = _mm256_permutevar8x32_epi32(p8, order);
        // per lane [even 8 | odd 8], then qwords (E0, E1, O0, O1)
        let split = _mm256_permute4x64_epi64::<0b11_01_10_00>(_mm256_shuffle_epi8(nat, eo));
        // SAFETY: `dst` has 128 bytes; each store writes 16 inside it.
        unsafe {
            let base = dst.as_mut_ptr().add(64 * plane + 16 * h);
            _mm_storeu_si128(base as *mut __m128i, _mm256_castsi256_si128(split));
            _mm_storeu_si128(base.add(32) as *mut __m128i, _mm256_extracti128_si256::<1>(split));
        }
    }
    // 12·ΣV over inputs 8l..8l+8: the sums of v[l]
    let s = _mm256_hadd_epi32(_mm256_hadd_epi32(v[0], v[1]), _mm256_hadd_epi32(v[2], v[3]));
    let s = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256::<1>(s));
    let s = _mm_mullo_epi32(s, _mm_set1_epi32(12));
    // SAFETY: `corr` has 4 lanes.
    unsafe { _mm_storeu_si128(corr.as_mut_ptr() as *mut __m128i, s) };
    let rem = (nz != 0).then(|| {
        let mut o = [0.0f32; BLOCK];
        for g in 0..4 {
            // SAFETY: 8 values at 8g of 32.
            unsafe { _mm256_storeu_ps(o.as_mut_ptr().add(8 * g), r[g]) };
        }
        o
    });
    Some((u, rem))
}

/// A pair's block scales: block A's in lanes 0..4 and B's in 4..8 of `.0` (blended), or with
/// `split` each broadcast alone (`.0` A, `.1` B).
type Scales = (std::arch::x86_64::__m256, std::arch::x86_64::__m256);

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline]
fn scales(split: bool, sa: &f32, sb: &f32) -> Scales {
    use std::arch::x86_64::*;
    let (a, b) = (_mm256_broadcast_ss(sa), _mm256_broadcast_ss(sb));
    if split {
        (a, b)
    } else {
        (_mm256_blend_ps::<0xF0>(a, b), b)
    }
}

/// Rows `r` of `y[b * ldy + (row - row0)]` for the `B` rows of `x` laid out in `x`.
///
/// # Safety
/// AVX2 and FMA; `w` / `scale` hold every row of `r` (`fp4::check_shape`), `x` was built from
/// `B` rows of `k` inputs, and `y` has `B * ldy` values, the rows of `r` written only here.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn rows<const B: usize>(
    w: &[u8],
    scale: &[u8],
    k: usize,
    x: &DigitX,
    r: Range<usize>,
    y: OutPtr,
    ldy: usize,
    row0: usize,
) {
    use std::arch::x86_64::*;
    let kb = k / BLOCK;
    let np = kb.div_ceil(2);
    debug_assert!(r.end * k / 2 <= w.len() && r.end * kb <= scale.len() && x.d.len() >= np * B * 128);
    debug_assert_eq!(x.starts.len(), B + 1, "x holds {} rows, the kernel takes {B}", x.starts.len() - 1);
    let e8m0 = &*E8M0;
    let table = super::fp4::int2x_plus12_table();
    let m0f = _mm256_set1_epi8(0x0F);
    let (ones, c256) = (_mm256_set1_epi16(1), _mm256_set1_epi16(256));
    let (dp, cp, up) = (x.d.as_ptr(), x.corr.as_ptr(), x.unit.as_ptr());
    let full = kb / 2; // pairs with two real blocks
    // batch 1: each block's scale broadcast apart and two FMAs (block A's lanes into `acc`,
    // B's into `acc_b`) instead of one FMA on a blended vector: the blend's two shuffles per
    // pair are on the ports `vpshufb` needs (one Zen 3 core in cache, 512x2048: 11.7-12.1 ->
    // 12.4-13.1 GB/s); at batch 2 the blend, shared by two rows, measured faster (7.5 against
    // 6.9-7.3 GB/s)
    let split = B == 1;
    for n in r {
        // SAFETY (all pointer reads below): row `n < r.end` lies inside `w` / `scale`, pair
        // `p < np` and batch row `b < B` inside `x` (the debug_asserts; `check_shape` and
        // `DigitX::new`). The odd last block loads only its own 16 bytes and 1 scale.
        let wp = unsafe { w.as_ptr().add(n * k / 2) };
        let sp = unsafe { scale.as_ptr().add(n * kb) };
        // two accumulator chains per batch row (the FMA latency exceeds a step's work at B = 1);
        // with `split`, a second pair of chains for block B's lanes (below)
        let mut acc = [[_mm256_setzero_ps(); 2]; B];
        let mut acc_b = [[_mm256_setzero_ps(); 2]; B];
        macro_rules! step {
            ($p:expr, $v:expr, $ws:expr, $c:literal) => {{
                let (p, v, ws): (usize, __m256i, Scales) = ($p, $v, $ws);
                let lo = _mm256_shuffle_epi8(table, _mm256_and_si256(v, m0f));
                let hi = _mm256_shuffle_epi8(table, _mm256_and_si256(_mm256_srli_epi16::<4>(v), m0f));
                for b in 0..B {
                    let o = p * B + b;
                    let q = unsafe { dp.add(o * 128) } as *const __m256i;
                    let (x0e, x0o, x1e, x1o) = unsafe {
                        (_mm256_loadu_si256(q), _mm256_loadu_si256(q.add(1)), _mm256_loadu_si256(q.add(2)), _mm256_loadu_si256(q.add(3)))
                    };
                    let d0 = _mm256_add_epi16(_mm256_maddubs_epi16(lo, x0e), _mm256_maddubs_epi16(hi, x0o));
                    let d1 = _mm256_add_epi16(_mm256_maddubs_epi16(lo, x1e), _mm256_maddubs_epi16(hi, x1o));
                    let c = unsafe { _mm256_loadu_si256(cp.add(o * 8) as *const __m256i) };
                    let dot = _mm256_sub_epi32(_mm256_add_epi32(_mm256_madd_epi16(d0, ones), _mm256_madd_epi16(d1, c256)), c);
                    let f = _mm256_mul_ps(_mm256_cvtepi32_ps(dot), unsafe { _mm256_loadu_ps(up.add(o * 8)) });
                    if split {
                        // lanes 0..4 of `acc` and 4..8 of `acc_b` count; the others are dropped
                        acc[b][$c] = _mm256_fmadd_ps(f, ws.0, acc[b][$c]);
                        acc_b[b][$c] = _mm256_fmadd_ps(f, ws.1, acc_b[b][$c]);
                    } else {
                        acc[b][$c] = _mm256_fmadd_ps(f, ws.0, acc[b][$c]);
                    }
                }
            }};
        }
        // two pairs (one 64-byte line) per iteration into two accumulators: constant indices
        // keep them in registers (an index computed per pair put them on the stack)
        let pair = |p: usize| {
            // SAFETY: as above; `get_unchecked`: an e8m0 byte indexes the 256-entry table
            let v = unsafe { _mm256_loadu_si256(wp.add(p * 32) as *const __m256i) };
            let (sa, sb) = unsafe { (e8m0.get_unchecked(*sp.add(2 * p) as usize), e8m0.get_unchecked(*sp.add(2 * p + 1) as usize)) };
            (v, scales(split, sa, sb))
        };
        let mut p = 0;
        while p + 2 <= full {
            // prefetches never fault, so pointing past the end is fine
            _mm_prefetch::<_MM_HINT_T0>(unsafe { wp.add(p * 32) }.wrapping_add(super::PREFETCH_BYTES) as *const i8);
            let (v, ws) = pair(p);
            step!(p, v, ws, 0);
            let (v, ws) = pair(p + 1);
            step!(p + 1, v, ws, 1);
            p += 2;
        }
        if p < full {
            let (v, ws) = pair(p);
            step!(p, v, ws, 0);
        }
        if full < np {
            let v = _mm256_zextsi128_si256(unsafe { _mm_loadu_si128(wp.add(full * 32) as *const __m128i) });
            // block B is padding (digits 0, u 0): any finite scale gives 0
            let ws = scales(split, unsafe { e8m0.get_unchecked(*sp.add(2 * full) as usize) }, &1.0);
            step!(full, v, ws, 1);
        }
        for b in 0..B {
            let a = _mm256_add_ps(acc[b][0], acc[b][1]);
            let a = if split { _mm256_blend_ps::<0xF0>(a, _mm256_add_ps(acc_b[b][0], acc_b[b][1])) } else { a };
            // SAFETY: `wp` / `sp` are row `n`'s codes and scales (above)
            let s = unsafe { x.remainders(b, super::hsum256(a), wp, sp) };
            // SAFETY: each row is written by the one thread that owns it; `y` has `B * ldy`.
            unsafe { y.write(b * ldy + n - row0, s) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{DigitX, BLOCK, HUGE, TINY, V_LIMIT};
    use proptest::prelude::*;

    /// One block's `(u per input, V, R)`.
    type Split = (Vec<f32>, Vec<i32>, Vec<f32>);

    /// The split of one block as the module docs define it, in plain scalar code, one `u` per
    /// group of 8 inputs: `None` for a non-finite or huge value, else `(u, V, R)`.
    fn split_scalar(src: &[f32]) -> Option<Split> {
        if src.iter().any(|v| !v.is_finite() || v.abs() >= HUGE) {
            return None;
        }
        let mut us = Vec::new();
        for g in src.chunks(8) {
            let amax = g.iter().fold(0.0f32, |a, v| a.max(v.abs()));
            let mut u = if amax < TINY { 0.0 } else { 2f32.powi(amax.log2().floor() as i32 - 14) };
            if u > 0.0 && amax / u >= V_LIMIT {
                u *= 2.0;
            }
            us.extend([u; 8]);
        }
        let v: Vec<i32> = src.iter().zip(&us).map(|(x, &u)| if u == 0.0 { 0 } else { (x / u).trunc() as i32 }).collect();
        let r = src.iter().zip(&v).zip(&us).map(|((x, &v), &u)| x - v as f32 * u).collect();
        Some((us, v, r))
    }

    /// FP8-quantised-like values (e4m3 magnitudes times a power of two per block), zeros, and
    /// now and then a planted value: tiny (an exception), at the `V` limit, NaN, inf, huge.
    fn make_x(m: usize, kb: usize, seed: u64, plants: &[(usize, usize)]) -> Vec<f32> {
        let mut s = seed | 1;
        let mut next = move || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s
        };
        let mut x = vec![0.0f32; m * kb * BLOCK];
        for blk in x.chunks_mut(BLOCK) {
            let scale = 2f32.powi((next() % 40) as i32 - 20);
            for v in blk.iter_mut() {
                let r = next();
                let code = (r & 0x7E) as u8; // no NaN code
                let e4m3 = dsv4_reference::formats::e4m3_to_f32(code);
                let signed = if r & 0x100 != 0 { -e4m3 } else { e4m3 };
                *v = if r % 9 == 0 { 0.0 } else { signed * scale };
            }
        }
        let n = x.len();
        for &(pos, kind) in plants {
            let i = pos % n;
            let top = x[i / BLOCK * BLOCK..][..BLOCK].iter().fold(0.0f32, |a, v| a.max(v.abs()));
            x[i] = match kind {
                0 => top * 2f32.powi(-17), // below u: a remainder
                1 => 32639.0 * 2f32.powi(-10), // V = 32639 (the limit) when it is the largest
                2 => -32640.0 * 2f32.powi(-10), // u doubles: V = -16320
                3 => 1e-35,
                4 => f32::NAN,
                5 => f32::INFINITY,
                _ => 2f32.powi(101),
            };
        }
        x
    }

    proptest! {
        /// `DigitX::new` against the scalar split: the digits rebuild `V`, the corrections are
        /// `12·ΣV`, the units `u/2`, the exceptions are the inputs with a remainder (holding it),
        /// and it declines exactly for a non-finite or huge value or too many exceptions.
        #[test]
        fn digits_match_the_scalar_split(
            m in 1usize..=2,
            kb in 1usize..12,
            seed in any::<u64>(),
            plants in prop::collection::vec((any::<usize>(), 0usize..7), 0..6),
        ) {
            if !is_x86_feature_detected!("avx2") || !is_x86_feature_detected!("fma") {
                return Ok(());
            }
            let inp = kb * BLOCK;
            let x = make_x(m, kb, seed, &plants);
            let want: Vec<Option<Split>> = x.chunks(BLOCK).map(split_scalar).collect();
            let too_many = (0..m).any(|b| {
                want[b * kb..(b + 1) * kb].iter().flatten().map(|(_, _, r)| r.iter().filter(|&&v| v != 0.0).count()).sum::<usize>() > kb / 2
            });
            let got = DigitX::new(&x, inp);
            let declined = want.iter().any(|w| w.is_none()) || too_many;
            prop_assert_eq!(got.is_none(), declined);
            let Some(dx) = got else { return Ok(()) };
            for b in 0..m {
                let exc = &dx.exc[dx.starts[b]..dx.starts[b + 1]];
                for blk in 0..kb {
                    let (u, v, r) = want[b * kb + blk].clone().unwrap();
                    let (p, h) = (blk / 2, blk % 2);
                    let o = p * m + b;
                    for i in 0..BLOCK {
                        let at = 32 * (i % 2) + 16 * h + i / 2;
                        let rebuilt = i32::from(dx.d[o * 128 + at] as i8) + 256 * i32::from(dx.d[o * 128 + 64 + at] as i8);
                        prop_assert_eq!(rebuilt, v[i], "V at b={} blk={} i={}", b, blk, i);
                        prop_assert!(v[i].abs() <= 32639);
                    }
                    for l in 0..4 {
                        prop_assert_eq!(dx.corr[o * 8 + 4 * h + l], 12 * v[8 * l..8 * l + 8].iter().sum::<i32>());
                        prop_assert_eq!(dx.unit[o * 8 + 4 * h + l].to_bits(), (u[8 * l] * 0.5).to_bits());
                    }
                    for i in 0..BLOCK {
                        let pos = (blk * BLOCK + i) as u32;
                        let listed: Vec<f32> = exc.iter().filter(|e| e.pos == pos).map(|e| e.r).collect();
                        if r[i] != 0.0 {
                            prop_assert_eq!(listed.len(), 1, "input {} of row {} has a remainder: listed once", pos, b);
                            prop_assert_eq!(listed[0].to_bits(), r[i].to_bits());
                        } else {
                            prop_assert!(listed.is_empty(), "input {} of row {} has no remainder but is listed", pos, b);
                        }
                    }
                    // x = V·u + R, exactly (-0.0 comes back as +0.0)
                    for i in 0..BLOCK {
                        prop_assert_eq!(v[i] as f32 * u[i] + r[i], x[(b * kb + blk) * BLOCK + i]);
                    }
                }
            }
        }
    }
}
