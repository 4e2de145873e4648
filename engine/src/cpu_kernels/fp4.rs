//! FP4 GEMV: e2m1 codes `[out, in/2]` (low nibble = even input) with one e8m0 scale per 32
//! inputs of a row (`[out, in/32]`), read in place.
//!
//! The decoded weights are multiplied by their block's e8m0 scale (a power of two: exact, the
//! same `w` the reference dequantises) and accumulated as `x · w` in f32, so the result is
//! `Linear::forward`'s up to the f32 summation order.
//!
//! AVX2, batches of 1-8 whose activations split into small integers (FP8-quantised ones: what
//! the model feeds every FP4 GEMV): the exact integer kernel of `fp4_int`. Batches of 9 and
//! more: the f32 panel of `panel_avx2` (each weight decoded once, a register-blocked
//! micro-kernel). The f32 decode kernels below take the rest (e.g. activations that skipped
//! the quantisation).
//!
//! AVX2 f32 decode: 4 code bytes are broadcast to 8 lanes, `vpsrlvd` puts nibble i in lane i, `vpermps`
//! looks up the magnitude (3 low bits) in an 8-entry table whose entries are pre-XORed with
//! `m << 28`, and XOR with `idx << 28` then cancels that and sets the sign bit (bit 3 of the
//! nibble lands in bit 31): 4 integer/shuffle ops + 1 scale multiply per 8 weights, then one
//! FMA per batch row; used for batches of 3..=8. Batches of 1-2 use `rows_shuf` (shuffles only,
//! see there), about 1.4x faster per weight on the AVX2 dev box (AMD EPYC), where `vpermps` and
//! `vcvtph2ps` (an F16C variant was tried and dropped) are the bottleneck.
//!
//! AVX-512: a 16-entry `vpermps` is the whole e2m1 table (sign included), so per 32-input block:
//! zero-extend the 16 code bytes to dwords, scale the table by the block's e8m0 (exact), look up
//! the low nibbles (even inputs) and, after a 4-bit shift, the high ones (odd inputs): 5 ops,
//! then 2 FMAs per batch row against `x` split even/odd.
//!
//! AVX-512 VNNI, batches of 1-3 whose activations split into small integers (FP8-quantised
//! ones): `fp4_int`'s exact integer kernel on 512-bit vectors with `vpdpbusd` (`fp4_int512`),
//! 1.3-1.6x the BF16 kernel below per core at these batches.
//!
//! AVX-512 BF16, when `x` is exactly bf16 (true after the FP8 activation quantisation: e4m3
//! values times a power of two) and free of bf16 subnormals: e2m1 values times a power of two are
//! exact bf16 too, so `vdpbf16ps` (exact products, f32 accumulation) does 32 multiply-adds per
//! instruction. Two blocks (64 weights, 32 code bytes) at a time: `vpmovzxbw` puts byte j in
//! word j; the low nibbles (even weights) and, after a 4-bit shift, the high ones (odd weights)
//! index a 32-entry `vpermw` table of bf16 `e2m1` whose two halves are the two blocks' e8m0
//! scales applied (an exponent added to the non-zero entries: exact while the results stay
//! normal, codes 2..=252, read from a per-code table; other codes scale the partial sums
//! instead), bit 4 of the index picking the half. That is 8 ops per 64 weights (4 of them
//! shuffles), then 2 `vdpbf16ps` per batch row against `x` split even/odd per 64 inputs, two
//! weight rows at a time. `vdpbf16ps` flushes subnormal products and sums to zero: an error
//! below 2^-126 per product. Batches of 32 and more with at most 2048 inputs (where it measured
//! faster) take the panel kernel instead (`panel`: decode once, reuse across tokens).

use std::ops::Range;

#[cfg(target_arch = "x86_64")]
use super::fp4_int::{rows as fp4_int_rows, DigitX};
#[cfg(target_arch = "x86_64")]
use super::fp4_int512::rows as fp4_int512_rows;
use super::{batched, with_batch, Level, OutPtr, E2M1, E8M0, MAX_BATCH};

/// `y[m, rows.len()] = x[m, inp] · W[rows]ᵀ`.
pub fn gemv(level: Level, w: &[u8], scale: &[u8], out: usize, inp: usize, x: &[f32], rows: Range<usize>) -> Vec<f32> {
    check_shape(w, scale, out, inp, x, &rows);
    // AMX, batches of 6 and more with x exactly bf16: the tile path
    #[cfg(target_arch = "x86_64")]
    if level == Level::Amx && super::panel::applies_amx(x.len() / inp, inp, false) {
        if let Some(xb) = super::bf16_exact(x, inp, super::Bf16Layout::Natural) {
            return super::panel::fp4_amx(w, scale, inp, &xb, rows);
        }
    }
    let level = level.kernel();
    let (m, n, row0) = (x.len() / inp, rows.len(), rows.start);
    // AVX-512 VNNI, batches of 1-3 whose activations split into small integers (FP8-quantised
    // ones): the exact integer kernel on 512-bit vectors
    #[cfg(target_arch = "x86_64")]
    if level == Level::Avx512 && m <= super::fp4_int512::MAX_BATCH && super::fp4_int512::supported() {
        if let Some(dx) = DigitX::new(x, inp) {
            let qx = super::fp4_int512::QuadX::new(&dx);
            return batched(m, rows, inp / 2, |b, r, yp| unsafe { with_batch!(b.len(), fp4_int512_rows(w, scale, inp, &qx, r, yp, n, row0)) });
        }
    }
    // AVX-512 with BF16 and x exactly bf16 (what FP8 act quant leaves): bf16 dot products
    #[cfg(target_arch = "x86_64")]
    if level == Level::Avx512 && Level::has_avx512_bf16() {
        // batches of 8 and more: decode once into a bf16 panel, outer-product micro-kernel
        if super::panel::applies(m, inp, false) {
            if let Some(xb) = super::bf16_exact(x, inp, super::Bf16Layout::Natural) {
                return super::panel::fp4(w, scale, inp, &xb, rows);
            }
        }
        if let Some(xb) = super::bf16_exact(x, inp, super::Bf16Layout::EvenOdd) {
            return batched(m, rows, inp / 2, |b, r, yp| unsafe {
                let xc = &xb[b.start * inp..b.end * inp];
                with_batch!(b.len(), rows_avx512_bf16(w, scale, inp, xc, r, yp, n, row0))
            });
        }
    }
    match level {
        // AVX-512: one kernel for every batch, on the even/odd split of x
        #[cfg(target_arch = "x86_64")]
        Level::Avx512 => {
            let xs = split_even_odd(x);
            batched(m, rows, inp / 2, |b, r, yp| unsafe {
                with_batch!(b.len(), rows_avx512(w, scale, inp, &xs[b.start * inp..b.end * inp], r, yp, n, row0))
            })
        }
        // AVX2: batches above 8 the f32 panel; 1-8 the integer kernel where x splits into
        // integer digits, otherwise batch 1-2 the shuffle-only decode (cheapest per weight) on
        // the even/odd split, 3-8 the `vpermps` decode with the scale folded into the weights
        // (fewest ops per row)
        #[cfg(target_arch = "x86_64")]
        Level::Avx2 => {
            if super::panel_avx2::applies_fp4(m, inp) {
                return super::panel_avx2::fp4(w, scale, inp, x, rows);
            }
            // at most MAX_BATCH tokens here (the panel takes more): `batched` makes one chunk
            debug_assert!(m <= MAX_BATCH);
            if let Some(dx) = DigitX::new(x, inp) {
                return batched(m, rows, inp / 2, |b, r, yp| unsafe { with_batch!(b.len(), fp4_int_rows(w, scale, inp, &dx, r, yp, n, row0)) });
            }
            let xs = split_even_odd(x);
            batched(m, rows, inp / 2, |b, r, yp| unsafe {
                let (xs, xc) = (&xs[b.start * inp..b.end * inp], &x[b.start * inp..b.end * inp]);
                if b.len() <= 2 {
                    with_batch!(b.len(), rows_shuf(w, scale, inp, xs, r, yp, n, row0))
                } else {
                    with_batch!(b.len(), rows_avx2(w, scale, inp, xc, r, yp, n, row0))
                }
            })
        }
        _ => batched(m, rows, inp / 2, |b, r, yp| {
            with_batch!(b.len(), rows_scalar(w, scale, inp, &x[b.start * inp..b.end * inp], r, yp, n, row0))
        }),
    }
}

/// The shape contract of [`gemv`] (shared with the int8 path).
pub(crate) fn check_shape(w: &[u8], scale: &[u8], out: usize, inp: usize, x: &[f32], rows: &Range<usize>) {
    assert!(inp.is_multiple_of(32) && inp > 0, "FP4 input dim {inp} is not a multiple of 32");
    assert!(w.len() >= out * inp / 2, "FP4 weight has {} bytes, needs {}", w.len(), out * inp / 2);
    assert!(scale.len() >= out * inp / 32, "FP4 scale has {} bytes, needs {}", scale.len(), out * inp / 32);
    assert!(rows.start <= rows.end && rows.end <= out, "rows {rows:?} out of 0..{out}");
    assert_eq!(x.len() % inp, 0);
}

/// Portable kernel: rows `r`, output `y[b * ldy + (row - row0)]`.
fn rows_scalar<const B: usize>(
    w: &[u8],
    scale: &[u8],
    k: usize,
    x: &[f32],
    r: Range<usize>,
    y: OutPtr,
    ldy: usize,
    row0: usize,
) {
    let (e2m1, e8m0) = (&*E2M1, &*E8M0);
    let kb = k / 32;
    for n in r {
        let wr = &w[n * k / 2..(n + 1) * k / 2];
        let sr = &scale[n * kb..(n + 1) * kb];
        let mut acc = [0.0f32; B];
        for (blk, (wb, &s)) in wr.chunks_exact(16).zip(sr).enumerate() {
            let mut p = [0.0f32; B];
            for (j, &byte) in wb.iter().enumerate() {
                let (w0, w1) = (e2m1[(byte & 15) as usize], e2m1[(byte >> 4) as usize]);
                for (b, pb) in p.iter_mut().enumerate() {
                    let xi = b * k + blk * 32 + 2 * j;
                    *pb += x[xi] * w0 + x[xi + 1] * w1;
                }
            }
            let s = e8m0[s as usize];
            for b in 0..B {
                acc[b] += p[b] * s;
            }
        }
        for (b, a) in acc.iter().enumerate() {
            unsafe { y.write(b * ldy + n - row0, *a) };
        }
    }
}

/// The magnitude table for `vpermps`, entry m pre-XORed with `m << 28` (see the module docs).
#[cfg(target_arch = "x86_64")]
const fn perm_table() -> [i32; 8] {
    let v = [0.0f32, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0];
    let mut t = [0i32; 8];
    let mut m = 0;
    while m < 8 {
        t[m] = (v[m].to_bits() ^ ((m as u32) << 28)) as i32;
        m += 1;
    }
    t
}

/// The constants of [`decode8`]: the `vpermps` table and the per-lane nibble shifts.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
pub(crate) fn decode8_consts() -> (std::arch::x86_64::__m256, std::arch::x86_64::__m256i) {
    use std::arch::x86_64::*;
    let t = perm_table();
    let table = _mm256_castsi256_ps(_mm256_setr_epi32(t[0], t[1], t[2], t[3], t[4], t[5], t[6], t[7]));
    (table, _mm256_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28))
}

/// The 8 e2m1 values of 4 code bytes (`word`, little-endian: lane i = nibble i), unscaled.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
pub(crate) fn decode8(word: i32, table: std::arch::x86_64::__m256, shifts: std::arch::x86_64::__m256i) -> std::arch::x86_64::__m256 {
    use std::arch::x86_64::*;
    let idx = _mm256_srlv_epi32(_mm256_set1_epi32(word), shifts);
    let mag = _mm256_permutevar8x32_ps(table, idx);
    let sgn = _mm256_castsi256_ps(_mm256_slli_epi32::<28>(idx));
    _mm256_xor_ps(mag, sgn)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn rows_avx2<const B: usize>(
    w: &[u8],
    scale: &[u8],
    k: usize,
    x: &[f32],
    r: Range<usize>,
    y: OutPtr,
    ldy: usize,
    row0: usize,
) {
    use std::arch::x86_64::*;
    debug_assert!(r.end * k / 2 <= w.len() && r.end * (k / 32) <= scale.len() && x.len() >= B * k);
    let e8m0 = &*E8M0;
    let (table, shifts) = decode8_consts();
    let kb = k / 32;
    let rb = k / 2;
    let xp = x.as_ptr();
    for n in r {
        let wp = unsafe { w.as_ptr().add(n * rb) };
        let sp = unsafe { scale.as_ptr().add(n * kb) };
        // The block scale is folded into the decoded weights (exact: a power of two), and each
        // batch row keeps up to 4 independent accumulators (short dependency chains: the
        // decode latency is long and the FP scheduler is small on some cores).
        let mut acc = [[_mm256_setzero_ps(); 4]; B];
        for blk in 0..kb {
            let bp = unsafe { wp.add(blk * 16) };
            if blk % 4 == 0 {
                // one 64-byte line per 4 blocks, PREFETCH_BYTES ahead (may point past the end:
                // prefetches never fault)
                _mm_prefetch::<_MM_HINT_T0>(bp.wrapping_add(super::PREFETCH_BYTES) as *const i8);
            }
            let s = _mm256_set1_ps(unsafe { *e8m0.get_unchecked(*sp.add(blk) as usize) });
            for g in 0..4 {
                let word = unsafe { (bp.add(g * 4) as *const i32).read_unaligned() };
                let ws = _mm256_mul_ps(decode8(word, table, shifts), s);
                let u = if B == 1 { g } else if B == 2 { g % 2 } else { 0 };
                for b in 0..B {
                    let xv = unsafe { _mm256_loadu_ps(xp.add(b * k + blk * 32 + g * 8)) };
                    acc[b][u] = _mm256_fmadd_ps(xv, ws, acc[b][u]);
                }
            }
        }
        let acc: [__m256; B] =
            std::array::from_fn(|b| _mm256_add_ps(_mm256_add_ps(acc[b][0], acc[b][1]), _mm256_add_ps(acc[b][2], acc[b][3])));
        for b in 0..B {
            unsafe { y.write(b * ldy + n - row0, super::hsum256(acc[b])) };
        }
    }
}

/// 2·e2m1 as int8 (exact integers in -12..=12), for `vpshufb` (and the int8 path).
pub(crate) const INT2X: [i8; 16] = [0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12];

/// [`INT2X`] + 12 (0..=24: unsigned, the `vpmaddubsw` operand) in both 128-bit lanes: the
/// `vpshufb` table of the integer FP4 kernels (`fp4_int`, `int8`), which subtract 12·Σx after.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
pub(crate) fn int2x_plus12_table() -> std::arch::x86_64::__m256i {
    let t: [i8; 16] = std::array::from_fn(|i| INT2X[i] + 12);
    let lane = unsafe { std::arch::x86_64::_mm_loadu_si128(t.as_ptr() as *const std::arch::x86_64::__m128i) };
    std::arch::x86_64::_mm256_broadcastsi128_si256(lane)
}

/// Each 32-input block of each row of `x` as [even 16 | odd 16] (the order the shuffle kernel
/// decodes the low and high nibbles in).
pub(crate) fn split_even_odd(x: &[f32]) -> Vec<f32> {
    let mut o = vec![0.0; x.len()];
    for (b, ob) in x.chunks_exact(32).zip(o.chunks_exact_mut(32)) {
        for j in 0..16 {
            ob[j] = b[2 * j];
            ob[16 + j] = b[2 * j + 1];
        }
    }
    o
}

/// Shuffle-only variant (no `vpermps`, no `vcvtph2ps`, which are slow on some AVX2 cores):
/// 16 code bytes are broadcast to both 128-bit lanes, split into low / high nibbles, looked up
/// as int8 `2·e2m1` by `vpshufb`, spread by a second `vpshufb` into the top byte of each dword
/// (lane 0 takes bytes 0-3, lane 1 bytes 4-7) and converted by `vcvtdq2ps`, which gives
/// `2·e2m1·2^24` exactly; the `2^-25` goes on the per-block partial sum. `x` comes from
/// [`split_even_odd`].
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn rows_shuf<const B: usize>(
    w: &[u8],
    scale: &[u8],
    k: usize,
    x: &[f32],
    r: Range<usize>,
    y: OutPtr,
    ldy: usize,
    row0: usize,
) {
    use std::arch::x86_64::*;
    let e8m0 = &*E8M0;
    let t = INT2X;
    let table = _mm256_setr_epi8(
        t[0], t[1], t[2], t[3], t[4], t[5], t[6], t[7], t[8], t[9], t[10], t[11], t[12], t[13], t[14], t[15], t[0],
        t[1], t[2], t[3], t[4], t[5], t[6], t[7], t[8], t[9], t[10], t[11], t[12], t[13], t[14], t[15],
    );
    const Z: i8 = -128; // 0x80: pshufb writes zero
    // dword j of lane 0 <- byte j (+off), dword j of lane 1 <- byte 4+j (+off), in the top byte
    let spread = |off: i8| {
        _mm256_setr_epi8(
            Z, Z, Z, off, Z, Z, Z, off + 1, Z, Z, Z, off + 2, Z, Z, Z, off + 3, Z, Z, Z, off + 4, Z, Z, Z, off + 5, Z,
            Z, Z, off + 6, Z, Z, Z, off + 7,
        )
    };
    let (c0, c1) = (spread(0), spread(8));
    let m0f = _mm256_set1_epi8(0x0F);
    let inv = _mm256_set1_ps(1.0 / 33554432.0); // 2^-25
    let kb = k / 32;
    let rb = k / 2;
    let xp = x.as_ptr();
    for n in r {
        let wp = unsafe { w.as_ptr().add(n * rb) };
        let sp = unsafe { scale.as_ptr().add(n * kb) };
        let mut acc = [_mm256_setzero_ps(); B];
        for blk in 0..kb {
            let bp = unsafe { wp.add(blk * 16) };
            if blk % 4 == 0 {
                _mm_prefetch::<_MM_HINT_T0>(bp.wrapping_add(super::PREFETCH_BYTES) as *const i8);
            }
            let s = _mm256_set1_ps(unsafe { *e8m0.get_unchecked(*sp.add(blk) as usize) });
            let v = _mm256_broadcastsi128_si256(unsafe { _mm_loadu_si128(bp as *const __m128i) });
            let lo = _mm256_shuffle_epi8(table, _mm256_and_si256(v, m0f));
            let hi = _mm256_shuffle_epi8(table, _mm256_and_si256(_mm256_srli_epi16::<4>(v), m0f));
            let w0 = _mm256_cvtepi32_ps(_mm256_shuffle_epi8(lo, c0));
            let w1 = _mm256_cvtepi32_ps(_mm256_shuffle_epi8(lo, c1));
            let w2 = _mm256_cvtepi32_ps(_mm256_shuffle_epi8(hi, c0));
            let w3 = _mm256_cvtepi32_ps(_mm256_shuffle_epi8(hi, c1));
            for b in 0..B {
                let xb = unsafe { xp.add(b * k + blk * 32) };
                let mut p = _mm256_mul_ps(unsafe { _mm256_loadu_ps(xb) }, w0);
                p = _mm256_fmadd_ps(unsafe { _mm256_loadu_ps(xb.add(8)) }, w1, p);
                p = _mm256_fmadd_ps(unsafe { _mm256_loadu_ps(xb.add(16)) }, w2, p);
                p = _mm256_fmadd_ps(unsafe { _mm256_loadu_ps(xb.add(24)) }, w3, p);
                acc[b] = _mm256_fmadd_ps(_mm256_mul_ps(p, inv), s, acc[b]);
            }
        }
        for b in 0..B {
            unsafe { y.write(b * ldy + n - row0, super::hsum256(acc[b])) };
        }
    }
}

/// AVX-512 kernel, every batch size: `x` from [`split_even_odd`]. Two accumulators per batch row
/// (even / odd inputs); batch 1 alternates two pairs by block so the FMA chains stay short.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn rows_avx512<const B: usize>(
    w: &[u8],
    scale: &[u8],
    k: usize,
    x: &[f32],
    r: Range<usize>,
    y: OutPtr,
    ldy: usize,
    row0: usize,
) {
    use std::arch::x86_64::*;
    debug_assert!(r.end * k / 2 <= w.len() && r.end * (k / 32) <= scale.len() && x.len() >= B * k);
    let e8m0 = &*E8M0;
    let table = unsafe { _mm512_loadu_ps(E2M1.as_ptr()) };
    let kb = k / 32;
    let rb = k / 2;
    let xp = x.as_ptr();
    // one block: scaled table, decode, 2 FMAs per batch row into `acc[b][0..2]` (same target
    // features as the caller, so it inlines)
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma")]
    #[inline]
    unsafe fn block<const B: usize>(
        bp: *const u8,
        s: f32,
        table: __m512,
        xp: *const f32,
        k: usize,
        col: usize,
        acc: &mut [[__m512; 2]; B],
    ) {
        let ts = _mm512_mul_ps(table, _mm512_set1_ps(s));
        let v = _mm512_cvtepu8_epi32(unsafe { _mm_loadu_si128(bp as *const __m128i) });
        let wl = _mm512_permutexvar_ps(v, ts);
        let wh = _mm512_permutexvar_ps(_mm512_srli_epi32::<4>(v), ts);
        for b in 0..B {
            let xb = unsafe { xp.add(b * k + col) };
            acc[b][0] = _mm512_fmadd_ps(unsafe { _mm512_loadu_ps(xb) }, wl, acc[b][0]);
            acc[b][1] = _mm512_fmadd_ps(unsafe { _mm512_loadu_ps(xb.add(16)) }, wh, acc[b][1]);
        }
    }
    for n in r {
        let wp = unsafe { w.as_ptr().add(n * rb) };
        let sp = unsafe { scale.as_ptr().add(n * kb) };
        let mut acc = [[_mm512_setzero_ps(); 2]; B];
        let mut acc1 = [[_mm512_setzero_ps(); 2]; 1]; // batch 1's second pair
        let mut blk = 0;
        while blk + 2 <= kb {
            let bp = unsafe { wp.add(blk * 16) };
            if blk % 4 == 0 {
                _mm_prefetch::<_MM_HINT_T0>(bp.wrapping_add(super::PREFETCH_BYTES) as *const i8);
            }
            let s0 = unsafe { *e8m0.get_unchecked(*sp.add(blk) as usize) };
            let s1 = unsafe { *e8m0.get_unchecked(*sp.add(blk + 1) as usize) };
            unsafe { block::<B>(bp, s0, table, xp, k, blk * 32, &mut acc) };
            if B == 1 {
                unsafe { block::<1>(bp.add(16), s1, table, xp, k, blk * 32 + 32, &mut acc1) };
            } else {
                unsafe { block::<B>(bp.add(16), s1, table, xp, k, blk * 32 + 32, &mut acc) };
            }
            blk += 2;
        }
        if blk < kb {
            let s0 = unsafe { *e8m0.get_unchecked(*sp.add(blk) as usize) };
            unsafe { block::<B>(wp.add(blk * 16), s0, table, xp, k, blk * 32, &mut acc) };
        }
        for b in 0..B {
            let mut t = _mm512_add_ps(acc[b][0], acc[b][1]);
            if B == 1 {
                t = _mm512_add_ps(t, _mm512_add_ps(acc1[0][0], acc1[0][1]));
            }
            unsafe { y.write(b * ldy + n - row0, _mm512_reduce_add_ps(t)) };
        }
    }
}

/// bf16 bits of e2m1 code `i & 15`, for `vpermw` (32 entries: the table twice).
#[cfg(target_arch = "x86_64")]
fn bf16_e2m1_table() -> [i16; 32] {
    std::array::from_fn(|i| (E2M1[i & 15].to_bits() >> 16) as i16)
}

/// For each e8m0 code `e` in 2..=252, the 16 bf16 `e2m1` values times `2^(e-127)` (the exponent
/// added to the non-zero entries: exact, and normal for these codes); other codes unscaled (their
/// blocks are scaled after the dot). Two of them side by side make a block pair's `vpermw` table.
#[cfg(target_arch = "x86_64")]
static BF16_TABLES: std::sync::LazyLock<Box<[[i16; 16]; 256]>> = std::sync::LazyLock::new(|| {
    let base = bf16_e2m1_table();
    let mut t = Box::new([[0i16; 16]; 256]);
    for (e, row) in t.iter_mut().enumerate() {
        for (i, v) in row.iter_mut().enumerate() {
            let scaled = (2..=252).contains(&e) && base[i] & 0x7FFF != 0;
            *v = if scaled { base[i].wrapping_add(((e as i16) - 127) << 7) } else { base[i] };
        }
    }
    t
});

/// AVX-512 BF16 kernel (see the module docs): `x` from `bf16_exact(.., split64: true)`. Two rows at a time:
/// two independent dot chains at batch 1 (the dot's latency), and every load of `x` (which at
/// batch 8 no longer fits in L1) feeds both rows. An odd last row runs alone with two
/// accumulator sets alternating by block pair.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512bf16,avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn rows_avx512_bf16<const B: usize>(
    w: &[u8],
    scale: &[u8],
    k: usize,
    x: &[u16],
    r: Range<usize>,
    y: OutPtr,
    ldy: usize,
    row0: usize,
) {
    use std::arch::x86_64::*;
    debug_assert!(r.end * k / 2 <= w.len() && r.end * (k / 32) <= scale.len() && x.len() >= B * k);
    let cx = Bf16Ctx {
        tables: &BF16_TABLES,
        e8m0: &E8M0,
        table: unsafe { _mm512_loadu_si512(bf16_e2m1_table().as_ptr() as *const __m512i) },
        xp: x.as_ptr(),
        k,
    };
    let kb = k / 32;
    let rb = k / 2;
    let row = |n: usize| unsafe { (w.as_ptr().add(n * rb), scale.as_ptr().add(n * kb)) };
    let mut n = r.start;
    while n + 2 <= r.end {
        let ((w0, s0), (w1, s1)) = (row(n), row(n + 1));
        let mut a = [[_mm512_setzero_ps(); B]; 2];
        let mut blk = 0;
        while blk + 2 <= kb {
            if blk % 4 == 0 {
                _mm_prefetch::<_MM_HINT_T0>(w0.wrapping_add(blk * 16 + super::PREFETCH_BYTES) as *const i8);
                _mm_prefetch::<_MM_HINT_T0>(w1.wrapping_add(blk * 16 + super::PREFETCH_BYTES) as *const i8);
            }
            let c = unsafe { [[*s0.add(blk), *s0.add(blk + 1)], [*s1.add(blk), *s1.add(blk + 1)]] };
            unsafe { cx.pairs::<B, 2>([w0.add(blk * 16), w1.add(blk * 16)], c, blk * 32, &mut a) };
            blk += 2;
        }
        for (i, ai) in a.iter().enumerate() {
            let (wp, sp) = row(n + i);
            let tail = unsafe { cx.odd_tail::<B>(wp, sp, kb) };
            for b in 0..B {
                unsafe { y.write(b * ldy + n + i - row0, _mm512_reduce_add_ps(ai[b]) + tail[b]) };
            }
        }
        n += 2;
    }
    for n in n..r.end {
        let (wp, sp) = row(n);
        let mut a = [[[_mm512_setzero_ps(); B]; 1]; 2];
        let mut blk = 0;
        while blk + 4 <= kb {
            let bp = unsafe { wp.add(blk * 16) };
            _mm_prefetch::<_MM_HINT_T0>(bp.wrapping_add(super::PREFETCH_BYTES) as *const i8);
            let c = unsafe { [*sp.add(blk), *sp.add(blk + 1), *sp.add(blk + 2), *sp.add(blk + 3)] };
            unsafe { cx.pairs::<B, 1>([bp], [[c[0], c[1]]], blk * 32, &mut a[0]) };
            unsafe { cx.pairs::<B, 1>([bp.add(32)], [[c[2], c[3]]], blk * 32 + 64, &mut a[1]) };
            blk += 4;
        }
        if blk + 2 <= kb {
            unsafe { cx.pairs::<B, 1>([wp.add(blk * 16)], [[*sp.add(blk), *sp.add(blk + 1)]], blk * 32, &mut a[0]) };
        }
        let tail = unsafe { cx.odd_tail::<B>(wp, sp, kb) };
        for b in 0..B {
            unsafe { y.write(b * ldy + n - row0, _mm512_reduce_add_ps(_mm512_add_ps(a[0][0][b], a[1][0][b])) + tail[b]) };
        }
    }
}

/// What the BF16 kernel's pieces share.
#[cfg(target_arch = "x86_64")]
struct Bf16Ctx<'a> {
    tables: &'a [[i16; 16]; 256],
    e8m0: &'a [f32; 256],
    /// The unscaled 32-entry table (codes outside 2..=252).
    table: std::arch::x86_64::__m512i,
    xp: *const u16,
    k: usize,
}

#[cfg(target_arch = "x86_64")]
impl Bf16Ctx<'_> {
    /// One block pair (32 code bytes at `bp[i]`, e8m0 codes `c[i]`) of each of `R` rows against
    /// the x group at `col`, into `acc[i][b]`; every x load feeds all `R` rows.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512bf16,avx2,fma")]
    #[inline]
    unsafe fn pairs<const B: usize, const R: usize>(&self, bp: [*const u8; R], c: [[u8; 2]; R], col: usize, acc: &mut [[std::arch::x86_64::__m512; B]; R]) {
        use std::arch::x86_64::*;
        let foldable = |c: [u8; 2]| (2..=252).contains(&c[0]) && (2..=252).contains(&c[1]);
        if R > 1 && !c.iter().all(|&ci| foldable(ci)) {
            // rare (no checkpoint scale is this extreme): each row on its own
            for i in 0..R {
                let mut a = [acc[i]];
                unsafe { self.pairs::<B, 1>([bp[i]], [c[i]], col, &mut a) };
                acc[i] = a[0];
            }
            return;
        }
        let m0f = _mm512_set1_epi16(0x0F);
        let half = _mm512_mask_set1_epi16(_mm512_setzero_si512(), 0xFFFF_0000, 0x10); // bit 4 in words 16..31
        let mut wl = [_mm512_setzero_si512(); R];
        let mut wh = [_mm512_setzero_si512(); R];
        for i in 0..R {
            let v = _mm512_cvtepu8_epi16(unsafe { _mm256_loadu_si256(bp[i] as *const __m256i) });
            let il = _mm512_ternarylogic_epi32::<0xEA>(v, m0f, half); // (v & 15) | half
            let ih = _mm512_or_si512(_mm512_srli_epi16::<4>(v), half);
            let t = if foldable(c[i]) {
                let t0 = unsafe { _mm256_loadu_si256(self.tables[c[i][0] as usize].as_ptr() as *const __m256i) };
                let t1 = unsafe { _mm256_loadu_si256(self.tables[c[i][1] as usize].as_ptr() as *const __m256i) };
                _mm512_inserti64x4::<1>(_mm512_castsi256_si512(t0), t1)
            } else {
                self.table
            };
            wl[i] = _mm512_permutexvar_epi16(il, t);
            wh[i] = _mm512_permutexvar_epi16(ih, t);
        }
        let bh = |v: __m512i| -> __m512bh { std::mem::transmute(v) };
        if R > 1 || foldable(c[0]) {
            for b in 0..B {
                let xb = unsafe { self.xp.add(b * self.k + col) };
                let xl = bh(unsafe { _mm512_loadu_si512(xb as *const __m512i) });
                let xh = bh(unsafe { _mm512_loadu_si512(xb.add(32) as *const __m512i) });
                for i in 0..R {
                    acc[i][b] = _mm512_dpbf16_ps(_mm512_dpbf16_ps(acc[i][b], bh(wl[i]), xl), bh(wh[i]), xh);
                }
            }
        } else {
            // lanes 0-7 hold block c[0]'s products, 8-15 block c[1]'s
            let (s0, s1) = (self.e8m0[c[0][0] as usize], self.e8m0[c[0][1] as usize]);
            let sv = _mm512_mask_mov_ps(_mm512_set1_ps(s0), 0xFF00, _mm512_set1_ps(s1));
            for b in 0..B {
                let xb = unsafe { self.xp.add(b * self.k + col) };
                let xl = bh(unsafe { _mm512_loadu_si512(xb as *const __m512i) });
                let xh = bh(unsafe { _mm512_loadu_si512(xb.add(32) as *const __m512i) });
                let p = _mm512_dpbf16_ps(_mm512_dpbf16_ps(_mm512_setzero_ps(), bh(wl[0]), xl), bh(wh[0]), xh);
                acc[0][b] = _mm512_fmadd_ps(p, sv, acc[0][b]);
            }
        }
    }

    /// The last block of a row when the block count is odd (its x in natural order), scalar;
    /// zeros otherwise.
    unsafe fn odd_tail<const B: usize>(&self, wp: *const u8, sp: *const u8, kb: usize) -> [f32; B] {
        let mut tail = [0.0f32; B];
        if kb % 2 == 1 {
            let blk = kb - 1;
            let s = self.e8m0[unsafe { *sp.add(blk) } as usize];
            for (b, t) in tail.iter_mut().enumerate() {
                let xv = |i: usize| f32::from_bits((unsafe { *self.xp.add(b * self.k + blk * 32 + i) } as u32) << 16);
                let mut p = 0.0f32;
                for j in 0..16 {
                    let byte = unsafe { *wp.add(blk * 16 + j) };
                    p += xv(2 * j) * E2M1[(byte & 15) as usize] + xv(2 * j + 1) * E2M1[(byte >> 4) as usize];
                }
                *t = p * s;
            }
        }
        tail
    }
}
