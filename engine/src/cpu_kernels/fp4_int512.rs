//! Exact FP4 GEMV in integers for AVX-512 VNNI, batches of 1-4: `fp4_int`'s split of x
//! (`x = V·u + R` per group of 8 inputs, `V` as two signed digits `X0 + 256·X1`, the rare
//! remainders `R` added in f32 after the row) on 512-bit vectors, with `vpdpbusd` for the
//! `vpmaddubsw` + `vpmaddwd` pairs.
//!
//! Per 4 blocks (128 weights, one 64-byte line of codes) and batch row: AND / shift+AND and two
//! `vpshufb` give the weights as `2·e2m1 + 12` (unsigned bytes, even inputs then odd, shared by
//! the batch rows); four `vpdpbusd` against the digit planes (even and odd inputs of `X0`, then
//! of `X1`) leave per int32 lane `Σ X0·w'` (started from `-12·ΣV`) and `Σ X1·w'` over one group
//! of 8 inputs; `a0 + (a1 << 8)` is the exact `Σ V·(2·e2m1)` (below 2^24), converted to f32
//! (exact), times the group's `u/2` (exact), then one FMA with the lane's block scale
//! `2^(code - 127)`, built by shuffle and shift from the 4 scale bytes. So about 16 vector ops per
//! 128 weights at batch 1, against 20 for the BF16 kernel of `fp4` and 26 for `fp4_int` on
//! 256-bit vectors. Rows with an e8m0 code of 0 (2^-127, a subnormal f32) or 255 (NaN) take
//! `fp4_int`'s kernel, whose table holds them.
//!
//! Cache-resident (`batch_cache`, Xeon with AVX-512 VNNI, 2 threads, GB/s): batch 1 32.7-35.6
//! against the BF16 kernel's 21.5, batch 2 19.6-21.3 against 15.6, batch 3 13.6-15.6 against
//! 11.1. From DRAM (`dsv4 bench cpu --quick`, alternating with the previous build, three runs):
//! expert w1 / w2 batch 1 19.5-20.1 / 18.8-20.9 against 18.3-19.3 / 14.2-16.0, batch 2
//! 15.4-16.4 / 16.3-16.8 against 12.1-13.4 / 10.9-11.8, batch 3 13.8-14.3 / 12.6-13.6 against
//! 6.6-7.0 / 10.3-10.6.
//!
//! The result is `Linear::forward`'s up to the f32 summation order, like every kernel here.

use std::arch::x86_64::*;
use std::ops::Range;

use super::fp4_int::DigitX;
use super::OutPtr;

/// Inputs per block (one e8m0 weight scale).
const BLOCK: usize = 32;

/// Prefetch distance along the codes, into L2. `dsv4 bench cpu --quick`, Xeon (2 threads,
/// three alternating runs, batch 1, GB/s): 2 KiB into L1 (the other FP4 kernels') expert w1
/// 15.2-18.1, w2 14.2-17.3; 8 KiB into L2 19.4-21.1 and 20.0-21.2 (4 KiB into L2 the same).
const AHEAD: usize = 8192;

/// Largest batch this kernel takes: each batch row adds 9 vector ops per 128 weights, the BF16
/// kernel's 4 `vdpbf16ps`. `batch_cache`, Xeon, 2 threads, 1024x4096 (GB/s, this kernel ->
/// BF16): b3 13.6-15.1 -> 11.1, b4 8.5-9.4 -> 9.5-9.7.
pub(crate) const MAX_BATCH: usize = 3;

/// Whether this CPU has what the kernel needs (AVX-512 F/BW and VNNI).
pub(crate) fn supported() -> bool {
    super::Level::Avx512.is_supported() && super::Level::has_vnni()
}

/// [`DigitX`] regrouped for 512-bit steps: per quad of blocks `q` (two of `DigitX`'s pairs) and
/// batch row `b` (index `o = q · mb + b`): 256 digit bytes `[X0 even | X0 odd | X1 even | X1
/// odd]`, each 64 = the two pairs' 32; 16 lanes of `-12·ΣV` and 16 of `u/2` (lanes 4j..4j+4 =
/// block 4q + j). A missing second pair (an odd number of pairs) is zeros: digits 0 and units 0
/// make its lanes 0 whatever its weights.
pub(crate) struct QuadX<'a> {
    d: Vec<u8>,
    negcorr: Vec<i32>,
    unit: Vec<f32>,
    /// The split it came from: the remainders, and the fallback rows' layout.
    pub(crate) src: &'a DigitX,
}

impl<'a> QuadX<'a> {
    pub(crate) fn new(src: &'a DigitX) -> QuadX<'a> {
        let mb = src.rows();
        let np = src.unit.len() / (8 * mb);
        let nq = np.div_ceil(2);
        let mut d = vec![0u8; nq * mb * 256];
        let mut negcorr = vec![0i32; nq * mb * 16];
        let mut unit = vec![0.0f32; nq * mb * 16];
        for p in 0..np {
            let (q, h) = (p / 2, p % 2);
            for b in 0..mb {
                let (o, o4) = (p * mb + b, q * mb + b);
                for plane in 0..4 {
                    d[o4 * 256 + 64 * plane + 32 * h..][..32].copy_from_slice(&src.d[o * 128 + 32 * plane..][..32]);
                }
                for l in 0..8 {
                    negcorr[o4 * 16 + 8 * h + l] = -src.corr[o * 8 + l];
                    unit[o4 * 16 + 8 * h + l] = src.unit[o * 8 + l];
                }
            }
        }
        QuadX { d, negcorr, unit, src }
    }
}

/// Whether every e8m0 code of a row is a normal f32 power of two (1..=254).
#[inline]
fn normal_scales(s: &[u8]) -> bool {
    // a min / max fold vectorises (an early-exit `all` ran byte by byte: ~7% of a batch-4 call)
    let (lo, hi) = s.iter().fold((255u8, 0u8), |(lo, hi), &c| (lo.min(c), hi.max(c)));
    s.is_empty() || (lo >= 1 && hi <= 254)
}

/// Rows `r` of `y[b * ldy + (row - row0)]` for the `B` rows of `x`.
///
/// # Safety
/// AVX-512 F/BW and VNNI ([`supported`]); `w` / `scale` hold every row of `r`
/// (`fp4::check_shape`), `x` was built from `B` rows of `k` inputs, and `y` has `B * ldy`
/// values, the rows of `r` written only here.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni,avx2,fma")]
pub(crate) unsafe fn rows<const B: usize>(
    w: &[u8],
    scale: &[u8],
    k: usize,
    x: &QuadX,
    r: Range<usize>,
    y: OutPtr,
    ldy: usize,
    row0: usize,
) {
    let kb = k / BLOCK;
    let nq = kb.div_ceil(4);
    debug_assert!(r.end * k / 2 <= w.len() && r.end * kb <= scale.len() && x.d.len() >= nq * B * 256);
    debug_assert_eq!(x.src.rows(), B, "x holds {} rows, the kernel takes {B}", x.src.rows());
    let table = _mm512_broadcast_i32x4(_mm256_castsi256_si128(super::fp4::int2x_plus12_table()));
    let m0f = _mm512_set1_epi8(0x0F);
    // dword lane i of 128-bit lane L: byte L of the broadcast scale word, zero-extended
    let spread: [u32; 16] = std::array::from_fn(|i| 0x8080_8000 | (i / 4) as u32);
    let spread = unsafe { _mm512_loadu_si512(spread.as_ptr() as *const __m512i) };
    let (dp, cp, up) = (x.d.as_ptr(), x.negcorr.as_ptr(), x.unit.as_ptr());
    let full = kb / 4; // quads with four real blocks
    let rem = kb % 4;
    for n in r {
        // SAFETY (all pointer reads below): row `n < r.end` lies inside `w` / `scale`, quad
        // `q < nq` and batch row `b < B` inside `x` (the debug_asserts; `check_shape` and
        // `QuadX::new`); the partial last quad is read through masks.
        let wp = unsafe { w.as_ptr().add(n * k / 2) };
        let sp = unsafe { scale.as_ptr().add(n * kb) };
        if !normal_scales(unsafe { std::slice::from_raw_parts(sp, kb) }) {
            let mut yb = [0.0f32; B];
            unsafe { super::fp4_int::rows::<B>(w, scale, k, x.src, n..n + 1, OutPtr(yb.as_mut_ptr()), 1, n) };
            for b in 0..B {
                unsafe { y.write(b * ldy + n - row0, yb[b]) };
            }
            continue;
        }
        // two accumulator chains per batch row, alternating by quad
        let mut acc = [[_mm512_setzero_ps(); 2]; B];
        macro_rules! step {
            ($q:expr, $v:expr, $sw:expr, $c:literal) => {{
                let (q, v, sw): (usize, __m512i, u32) = ($q, $v, $sw);
                let lo = _mm512_shuffle_epi8(table, _mm512_and_si512(v, m0f));
                let hi = _mm512_shuffle_epi8(table, _mm512_and_si512(_mm512_srli_epi16::<4>(v), m0f));
                // 2^(code - 127) per lane: the code in the exponent field
                let ws = _mm512_castsi512_ps(_mm512_slli_epi32::<23>(_mm512_shuffle_epi8(_mm512_set1_epi32(sw as i32), spread)));
                for b in 0..B {
                    let o = q * B + b;
                    let pd = unsafe { dp.add(o * 256) } as *const __m512i;
                    let (x0e, x0o, x1e, x1o) = unsafe {
                        (_mm512_loadu_si512(pd), _mm512_loadu_si512(pd.add(1)), _mm512_loadu_si512(pd.add(2)), _mm512_loadu_si512(pd.add(3)))
                    };
                    let a0 = _mm512_dpbusd_epi32(unsafe { _mm512_loadu_si512(cp.add(o * 16) as *const __m512i) }, lo, x0e);
                    let a0 = _mm512_dpbusd_epi32(a0, hi, x0o);
                    let a1 = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(_mm512_setzero_si512(), lo, x1e), hi, x1o);
                    let dot = _mm512_add_epi32(a0, _mm512_slli_epi32::<8>(a1));
                    let f = _mm512_mul_ps(_mm512_cvtepi32_ps(dot), unsafe { _mm512_loadu_ps(up.add(o * 16)) });
                    acc[b][$c] = _mm512_fmadd_ps(f, ws, acc[b][$c]);
                }
            }};
        }
        let quad = |q: usize| unsafe { (_mm512_loadu_si512(wp.add(q * 64) as *const __m512i), (sp.add(4 * q) as *const u32).read_unaligned()) };
        let mut q = 0;
        while q + 2 <= full {
            // prefetches never fault, so pointing past the end is fine
            _mm_prefetch::<_MM_HINT_T1>(unsafe { wp.add(q * 64) }.wrapping_add(AHEAD) as *const i8);
            _mm_prefetch::<_MM_HINT_T1>(unsafe { wp.add(q * 64 + 64) }.wrapping_add(AHEAD) as *const i8);
            let (v, sw) = quad(q);
            step!(q, v, sw, 0);
            let (v, sw) = quad(q + 1);
            step!(q + 1, v, sw, 1);
            q += 2;
        }
        if q < full {
            let (v, sw) = quad(q);
            step!(q, v, sw, 0);
        }
        if rem > 0 {
            // the last 1-3 blocks: their 16 code bytes each, the missing scales 127 (any normal
            // code: those lanes' digits and units are 0)
            let v = unsafe { _mm512_maskz_loadu_epi8((1u64 << (16 * rem)) - 1, wp.add(full * 64) as *const i8) };
            let mut sb = [127u8; 4];
            for (j, c) in sb.iter_mut().enumerate().take(rem) {
                *c = unsafe { *sp.add(4 * full + j) };
            }
            step!(full, v, u32::from_le_bytes(sb), 1);
        }
        for b in 0..B {
            let s = _mm512_reduce_add_ps(_mm512_add_ps(acc[b][0], acc[b][1]));
            // SAFETY: `wp` / `sp` are row `n`'s codes and scales
            let s = unsafe { x.src.remainders(b, s, wp, sp) };
            // SAFETY: each row is written by the one thread that owns it; `y` has `B * ldy`.
            unsafe { y.write(b * ldy + n - row0, s) };
        }
    }
}
