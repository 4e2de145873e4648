//! Fast CPU GEMV/GEMM kernels for the decode path: `y[b, n] = Σ_k x[b, k] · W[n, k]` with the
//! checkpoint's weight formats read in place (`&[u8]` slices of the memory map, no repack):
//!
//! - [`fp4`]: e2m1 codes `[out, in/2]` (low nibble = even input), e8m0 scales `[out, in/32]`;
//! - [`fp8`]: e4m3 `[out, in]`, e8m0 scales per 128x128 block;
//! - [`bf16`]: plain BF16 `[out, in]` (head, compressors).
//!
//! Every kernel computes the same numbers as `reference::linear::Linear::forward` up to the f32
//! summation order: the weights are decoded exactly (e2m1, e4m3 and bf16 are exact in f32; the
//! e8m0 scales are powers of two, applied exactly to the decoded weights or to per-block partial
//! sums). The activation
//! quantisation (`ActQuant::On`) is the reference's own `act_quant_fp8`, applied before the GEMV.
//!
//! Dispatch ([`dispatch::Level`]) is explicit: every entry point takes the level, and
//! `Level::detect()` returns the best one the CPU has. Rows are split across the threads of
//! [`pool`]; batches of 1..=8 rows of `x` are specialised at compile time, and larger ones run 8
//! at a time over tiles of weight rows ([`batched`]), so the weights stream from memory once.
//! With AVX-512 BF16 and activations that are exactly bf16 (always so after the FP8 activation
//! quantisation) FP4 and FP8 multiply with `vdpbf16ps`; see `fp4` and `fp8`. There, batches of 8
//! and more (FP8) or 32 and more with at most 2048 inputs (FP4) decode each weight panel once into
//! bf16 and multiply it against all the tokens (`panel`). On AVX2, FP8 and BF16 batches of 8 and
//! more, FP4 above 8, do the same with an f32 panel (`panel_avx2`); smaller FP4 batches run the
//! integer row kernel (`fp4_int`). With AMX (`Level::Amx`, Sapphire Rapids and later), FP4, FP8
//! and BF16 batches of 6 and more multiply on BF16 tiles (`amx`, driven from `panel`), x that is
//! not exactly bf16 (unquantised: wo_a, the head) as three exact bf16 parts.
//!
//! A row's bits do not depend on how the rows are cut: splits and tiles fall on
//! `ROW_GROUP` rows from the call's first row, and `forward_many`'s shares on [`ROW_ALIGN`].

// Kernels index several same-length arrays by batch row and take the same 8 arguments.
#![allow(clippy::needless_range_loop, clippy::too_many_arguments)]

pub mod act_quant;
pub mod attention;
pub mod bf16;
pub mod compute;
pub mod dispatch;
pub mod fp4;
#[cfg(target_arch = "x86_64")]
mod fp4_int;
#[cfg(target_arch = "x86_64")]
mod fp4_int512;
pub mod fp8;
#[cfg(target_arch = "x86_64")]
mod fp8_lanes;
pub mod int8;
#[cfg(target_arch = "x86_64")]
mod amx;
#[cfg(target_arch = "x86_64")]
mod amx_weights_a;
#[cfg(target_arch = "x86_64")]
mod panel;
#[cfg(target_arch = "x86_64")]
mod panel_avx2;
pub mod pool;

use std::ops::Range;
use std::sync::LazyLock;

use dsv4_reference::linear::{Linear, Weight, ACT_BLOCK, FP4_WEIGHT_BLOCK};
use dsv4_reference::quant::ActQuant;

pub use compute::Kernels;
pub use dispatch::Level;

/// Largest batch a kernel specialises; bigger batches run in chunks of this many rows.
pub const MAX_BATCH: usize = 8;

/// Rows the row kernels take together (pairs, with one accumulator each; a lone row sums in a
/// different order): splits and tiles of them fall on multiples of this from the call's first row.
pub(crate) const ROW_GROUP: usize = 2;

/// Row cuts at multiples of this from row 0 leave every row's bits as in an uncut call, whatever
/// path the call takes (row kernels: `ROW_GROUP`; the AVX2 panel: 12 rows from the first; the
/// AVX-512 panel: 32 from row 0). `forward_many` cuts its shares here, so a result does not
/// depend on the thread count or on the other jobs of a phase.
pub const ROW_ALIGN: usize = 96;

#[cfg(target_arch = "x86_64")]
const _: () = assert!(ROW_ALIGN.is_multiple_of(ROW_GROUP) && ROW_ALIGN.is_multiple_of(panel::ROWS) && ROW_ALIGN.is_multiple_of(panel_avx2::RP));

/// Software prefetch distance in bytes ahead of the weight pointer.
pub(crate) const PREFETCH_BYTES: usize = 2048;

/// How FP4 weights meet their activations.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Fp4Math {
    /// The model's arithmetic (f32 products of the exact weights): the default.
    #[default]
    Exact,
    /// Activations re-quantised to int8 per 32 inputs, integer dot products ([`int8`]): on
    /// AVX2 about the exact kernel's speed at batch 1 (that one is integer too, `fp4_int.rs`) and
    /// 1.35-1.9x at batch 8, 1.4-1.5x at batch 32 on a Zen 3 host (results/cpu-2026-12-07); about
    /// the same as exact on AVX-512 BF16 (that host's run of 2026-12-06, before the int8 kernel's
    /// passes); 3e-4 median relative error per dot (`engine/tests/cpu_kernels_int8.rs`).
    Int8,
}

/// `y[m, rows.len()] = x[m, inp] · W[rows]ᵀ` with the kernel for `lin`'s weight format at `level`,
/// the activation quantised first exactly like `Linear::forward_rows`. Formats without a fast
/// kernel here (F32, FP4 with `inp` not a multiple of 32) run the reference.
pub fn fast_linear(level: Level, lin: &Linear, x: &[f32], rows: Range<usize>, aq: ActQuant) -> Vec<f32> {
    fast_linear_with(level, Fp4Math::Exact, lin, x, rows, aq)
}

/// [`fast_linear`] with the FP4 arithmetic chosen.
pub fn fast_linear_with(level: Level, fp4: Fp4Math, lin: &Linear, x: &[f32], rows: Range<usize>, aq: ActQuant) -> Vec<f32> {
    let k = lin.inp;
    assert_eq!(x.len() % k.max(1), 0, "input length {} is not a multiple of {k}", x.len());
    assert!(rows.start <= rows.end && rows.end <= lin.out, "rows {rows:?} out of 0..{}", lin.out);
    let quantized;
    let xs: &[f32] = if lin.is_quantized() && aq.is_on() {
        quantized = quantize_activations(x, k);
        &quantized
    } else {
        x
    };
    match &lin.weight {
        Weight::Fp4 { w, scale } if k.is_multiple_of(FP4_WEIGHT_BLOCK) => match fp4 {
            Fp4Math::Exact => fp4::gemv(level, w, scale, lin.out, k, xs, rows),
            Fp4Math::Int8 => int8::fp4_gemv_int8(level, w, scale, lin.out, k, xs, rows),
        },
        Weight::Fp8 { w, scale } => fp8::gemv(level, w, scale, lin.out, k, xs, rows),
        Weight::Bf16(w) => bf16::gemv(level, w, lin.out, k, xs, rows),
        _ => lin.forward_rows(x, rows, aq),
    }
}

/// The activations as `Linear::forward_rows` feeds them to its GEMM: FP8 per 128 values with
/// power-of-two scales, multiplied back (`q · s`, exact; [`act_quant`], bit-identical to the
/// reference's `act_quant_fp8_dequant`).
pub fn quantize_activations(x: &[f32], k: usize) -> Vec<f32> {
    act_quant::act_quant_fp8_dequant_fast(x, k, ACT_BLOCK)
}

/// e8m0 byte -> f32 (2^(b-127); 0xFF is NaN), as `formats::e8m0_to_f32`.
pub(crate) static E8M0: LazyLock<[f32; 256]> =
    LazyLock::new(|| std::array::from_fn(|b| dsv4_reference::formats::e8m0_to_f32(b as u8)));

/// e4m3 byte -> f32 (0x7F / 0xFF are NaN), as `formats::e4m3_to_f32`.
pub(crate) static E4M3: LazyLock<[f32; 256]> =
    LazyLock::new(|| std::array::from_fn(|b| dsv4_reference::formats::e4m3_to_f32(b as u8)));

/// e2m1 nibble -> f32, as `formats::e2m1_to_f32`.
pub(crate) static E2M1: LazyLock<[f32; 16]> =
    LazyLock::new(|| std::array::from_fn(|c| dsv4_reference::formats::e2m1_to_f32(c as u8)));

/// `y[m, rows.len()]` filled by `kern(batch_rows, weight_rows, y_chunk)` for each chunk of at
/// most [`MAX_BATCH`] of the `m` rows of `x` and each range of weight rows, through
/// [`pool::tiled`]: the weights of a tile stay hot while every chunk passes over them.
/// `y_chunk` points at output row `batch_rows.start` (rows of `rows.len()`); the kernel slices
/// its own layout of `x`.
pub(crate) fn batched(m: usize, rows: Range<usize>, bytes_per_row: usize, kern: impl Fn(Range<usize>, Range<usize>, OutPtr) + Sync) -> Vec<f32> {
    let n = rows.len();
    let mut y = vec![0.0f32; m * n];
    let yp = OutPtr(y.as_mut_ptr());
    pool::tiled(m.div_ceil(MAX_BATCH), rows, ROW_GROUP, bytes_per_row, |c, r| {
        let b0 = c * MAX_BATCH;
        kern(b0..(b0 + MAX_BATCH).min(m), r, yp.offset(b0 * n))
    });
    y
}

/// How [`bf16_exact`] lays out each full 64-input group of a row (a trailing part stays in
/// natural order).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Bf16Layout {
    Natural,
    /// [even 32 | odd 32]: the FP4 kernel's low / high nibbles.
    EvenOdd,
    /// [the 8-input runs 0, 2, 4, 6 | 1, 3, 5, 7]: what `vpunpcklbw` / `vpunpckhbw` make of 64
    /// weight bytes (per 16-byte lane: the low 8, then the high 8); the FP8 byte-table decode.
    Unpack,
}

/// `x` (rows of `k`) as bf16 words when every value is exactly a bf16 that is zero or normal (no
/// subnormal, infinity or NaN: what `vdpbf16ps` multiplies exactly), else None. FP8 activation
/// quantisation leaves exactly such values (e4m3 times a power of two).
/// AVX-512 BW does it 64 values at a time (a scalar pass cost ~15% of a batch-8 FP4 GEMV).
#[cfg(target_arch = "x86_64")]
pub(crate) fn bf16_exact(x: &[f32], k: usize, layout: Bf16Layout) -> Option<Vec<u16>> {
    if Level::Avx512.is_supported() {
        // SAFETY: AVX-512 F/BW checked just above
        return unsafe { bf16_exact_avx512(x, k, layout) };
    }
    bf16_exact_scalar(x, k, layout)
}

/// The word order [`bf16_exact`] gives a full 64-input group: `perm[j]` = the input in word `j`.
#[cfg(target_arch = "x86_64")]
fn bf16_layout_perm(layout: Bf16Layout) -> [u16; 64] {
    let mut perm = [0u16; 64];
    for i in 0..64 {
        let j = match layout {
            Bf16Layout::Natural => i,
            Bf16Layout::EvenOdd => i / 2 + (i % 2) * 32,
            Bf16Layout::Unpack => (i / 8 % 2) * 32 + (i / 16) * 8 + i % 8,
        };
        perm[j] = i as u16;
    }
    perm
}

/// [`bf16_exact`] 64 values at a time: the checks on 16 lanes, the high halves narrowed to
/// words and put in the layout's order by one `vpermw`; a row's last part (under 64) scalar.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2")]
unsafe fn bf16_exact_avx512(x: &[f32], k: usize, layout: Bf16Layout) -> Option<Vec<u16>> {
    use std::arch::x86_64::*;
    let mut out = vec![0u16; x.len()];
    let perm = bf16_layout_perm(layout);
    let pv = [0, 32].map(|h| unsafe { _mm512_loadu_si512(perm.as_ptr().add(h) as *const __m512i) });
    let (low, expo, abs) = (_mm512_set1_epi32(0xFFFF), _mm512_set1_epi32(0x7F80_0000), _mm512_set1_epi32(0x7FFF_FFFF));
    let mut bad: __mmask16 = 0;
    for (row, orow) in x.chunks_exact(k).zip(out.chunks_exact_mut(k)) {
        let full = k / 64 * 64;
        for g in (0..full).step_by(64) {
            let mut words = [_mm256_setzero_si256(); 4];
            for (q, wq) in words.iter_mut().enumerate() {
                let v = unsafe { _mm512_loadu_si512(row.as_ptr().add(g + 16 * q) as *const __m512i) };
                let e = _mm512_and_si512(v, expo);
                let sub = _mm512_cmpeq_epi32_mask(e, _mm512_setzero_si512()) & _mm512_test_epi32_mask(v, abs);
                bad |= _mm512_test_epi32_mask(v, low) | _mm512_cmpeq_epi32_mask(e, expo) | sub;
                *wq = _mm512_cvtepi32_epi16(_mm512_srli_epi32::<16>(v));
            }
            let lo = _mm512_inserti64x4::<1>(_mm512_castsi256_si512(words[0]), words[1]);
            let hi = _mm512_inserti64x4::<1>(_mm512_castsi256_si512(words[2]), words[3]);
            // inputs 0..31 in `lo`, 32..63 in `hi`: one two-source permute per half of the output
            for (h, p) in pv.iter().enumerate() {
                let o = _mm512_permutex2var_epi16(lo, *p, hi);
                unsafe { _mm512_storeu_si512(orow.as_mut_ptr().add(g + 32 * h) as *mut __m512i, o) };
            }
        }
        if full < k {
            let tail = bf16_exact_scalar(&row[full..], k - full, Bf16Layout::Natural)?;
            orow[full..].copy_from_slice(&tail);
        }
    }
    (bad == 0).then_some(out)
}

/// The portable [`bf16_exact`] (and the test's reference).
#[cfg(target_arch = "x86_64")]
pub(crate) fn bf16_exact_scalar(x: &[f32], k: usize, layout: Bf16Layout) -> Option<Vec<u16>> {
    let mut out = vec![0u16; x.len()];
    for (row, orow) in x.chunks_exact(k).zip(out.chunks_exact_mut(k)) {
        for (g, og) in row.chunks(64).zip(orow.chunks_mut(64)) {
            for (i, v) in g.iter().enumerate() {
                let b = v.to_bits();
                let e = b & 0x7F80_0000;
                if b & 0xFFFF != 0 || e == 0x7F80_0000 || (e == 0 && b & 0x7FFF_FFFF != 0) {
                    return None;
                }
                let j = match layout {
                    _ if g.len() < 64 => i,
                    Bf16Layout::Natural => i,
                    Bf16Layout::EvenOdd => i / 2 + (i % 2) * 32,
                    // input i = 16·lane + 8·half + r -> word 32·half + 8·lane + r
                    Bf16Layout::Unpack => (i / 8 % 2) * 32 + (i / 16) * 8 + i % 8,
                };
                og[j] = (b >> 16) as u16;
            }
        }
    }
    Some(out)
}

/// A raw output pointer shared by the row-splitting threads; each writes disjoint elements.
#[derive(Clone, Copy)]
pub(crate) struct OutPtr(pub *mut f32);
unsafe impl Send for OutPtr {}
unsafe impl Sync for OutPtr {}

impl OutPtr {
    /// The pointer `i` elements on (the output rows of a later batch chunk).
    pub fn offset(self, i: usize) -> OutPtr {
        OutPtr(self.0.wrapping_add(i))
    }

    /// # Safety
    /// `i` in bounds of the output and written by one thread only.
    #[inline(always)]
    pub unsafe fn write(self, i: usize, v: f32) {
        unsafe { *self.0.add(i) = v }
    }
}

/// Calls `$f::<B>($args)` for the runtime batch size `$m` in 1..=8.
macro_rules! with_batch {
    ($m:expr, $f:ident ( $($arg:expr),* $(,)? )) => {
        match $m {
            1 => $f::<1>($($arg),*),
            2 => $f::<2>($($arg),*),
            3 => $f::<3>($($arg),*),
            4 => $f::<4>($($arg),*),
            5 => $f::<5>($($arg),*),
            6 => $f::<6>($($arg),*),
            7 => $f::<7>($($arg),*),
            8 => $f::<8>($($arg),*),
            m => unreachable!("batch {m} is not in 1..=8"),
        }
    };
}
pub(crate) use with_batch;

/// Horizontal sum of 8 lanes.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
pub(crate) fn hsum256(v: std::arch::x86_64::__m256) -> f32 {
    use std::arch::x86_64::*;
    let lo = _mm256_castps256_ps128(v);
    let hi = _mm256_extractf128_ps(v, 1);
    let s = _mm_add_ps(lo, hi);
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    let s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
    _mm_cvtss_f32(s)
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::{bf16_exact, bf16_exact_scalar, Bf16Layout};
    use proptest::prelude::*;

    proptest! {
        /// The vector `bf16_exact` against the scalar one: same words in every layout, and the
        /// same refusal when one value is not an exact normal bf16 (low bits, subnormal, inf, NaN).
        #[test]
        fn bf16_exact_vector_matches_scalar(
            k in 1usize..300,
            m in 1usize..4,
            seed in any::<u64>(),
            poison in prop::option::of((any::<usize>(), 0usize..5)),
        ) {
            let mut s = seed | 1;
            let mut x: Vec<f32> = (0..m * k)
                .map(|_| {
                    s ^= s << 13;
                    s ^= s >> 7;
                    s ^= s << 17;
                    // a bf16 value: random sign, exponent and 7 mantissa bits, zero now and then
                    let b = (s >> 16) as u32 & 0xFFFF;
                    let e = (b >> 7) & 0xFF;
                    if s % 11 == 0 { 0.0 } else if e == 0 || e == 0xFF { 1.5 } else { f32::from_bits(b << 16) }
                })
                .collect();
            if let Some((pos, kind)) = poison {
                let bad = [f32::from_bits(0x3F80_0001), f32::from_bits(0x0040_0000), f32::INFINITY, f32::NAN, f32::from_bits(0x8001_0000)];
                let i = pos % x.len();
                x[i] = bad[kind];
            }
            for layout in [Bf16Layout::Natural, Bf16Layout::EvenOdd, Bf16Layout::Unpack] {
                prop_assert_eq!(bf16_exact(&x, k, layout), bf16_exact_scalar(&x, k, layout));
            }
            prop_assert_eq!(bf16_exact(&x, k, Bf16Layout::Natural).is_none(), poison.is_some());
        }
    }
}
