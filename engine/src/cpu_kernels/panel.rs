//! Batched FP4 / FP8 GEMM for `m >= MIN_BATCH` tokens on AVX-512 BF16: the weights are decoded
//! once per call into a small bf16 panel, then an outer-product micro-kernel multiplies it
//! against every token.
//!
//! Why: the row kernels (`fp4`, `fp8`) are dot products, one accumulator per (row, token) with x
//! read as vectors. At batch 8 that reads 64 bytes of x from L2 per `vdpbf16ps` pair — about
//! L2's bandwidth — and batches above 8 decode the same weights again for every chunk of 8
//! tokens: ~200 GFLOP/s of the ~470 the core's `vdpbf16ps` can do (`dsv4 bench cpu`, Zen 4).
//!
//! Here the panel holds 32 weight rows x up to 256 inputs as bf16 pairs laid out `[pair][row]`
//! (two zmm per input pair). The micro-kernel keeps one accumulator per (16 rows, token), up to
//! [`TOKENS`] tokens at a time: per input pair two panel loads and, per token, one broadcast of the
//! token's x pair and two `vdpbf16ps`. Both operands come from L1; the decode is shared by all
//! tokens. The sums of each scale block are multiplied by the block's scale (per row: a vector of
//! per-lane f32) and added to the accumulators, so every e8m0 code, 0 and 255 included, is applied
//! as `Linear::forward` applies it.
//!
//! The decode reads 16 rows x 64 bytes, transposes the 16x16 dwords in registers (64 shuffles)
//! so that one vector holds the same 4 bytes of 16 rows, then:
//! - FP4: byte t of each dword is input pair 4d+t; `vpshufb` copies it into both words, a
//!   per-word shift leaves the low nibble (and bit 4, which a doubled 32-entry table ignores)
//!   and the high nibble, and `vpermw` looks up the bf16 e2m1 values. Scale blocks are 32 inputs
//!   (16 pairs); the e8m0 codes are gathered per row.
//! - FP8: the VBMI byte tables of `fp8` give each weight's bf16 high and low byte, and two
//!   `vpermt2b` interleave them into the two pair vectors; a chunk is one 128x128 scale block (one
//!   scale for all 32 rows: panels start at multiples of 32).
//!
//! The results equal `Linear::forward`'s up to the f32 summation order (products are exact,
//! `vdpbf16ps` flushes subnormal products, as in the row kernels).
//!
//! With AMX (`Level::Amx`) the same decodes, with each scale folded into the bf16 values instead
//! (`fp4_decode` / `fp8_decode` with no scale vectors; BF16 weights only transposed), feed the
//! tiles of `amx` one L1-sized chunk at a time (`amx_rows`): `fp4_amx`, `fp8_amx`, `bf16_amx`.
//! FP8 and BF16 batches of 6-16 take `amx_weights_a` instead (the weights as the A tile: no
//! transpose), so `fp8_amx` and `bf16_amx` run from 17 tokens on.

use std::arch::x86_64::*;
use std::ops::Range;

use super::{OutPtr, E2M1, E8M0};

/// Smallest batch that takes the FP8 panel path (below it the row kernels' decode per token is
/// cheap and the weights stream at the memory's speed).
pub(crate) const MIN_BATCH: usize = 8;

/// The FP4 panel path's batches and input sizes: where it measured faster than the row kernel
/// (`dsv4 bench cpu`, Zen 4, 2 threads, weights from DRAM): w2 (4096x2048) at batch 32/64
/// ~300-340 GFLOP/s against ~200-235, but batch 16 ~180 against ~210; w1 (2048x4096) ~205-210
/// against ~240 at 8-64 although cache-resident it reaches ~300 (why it loses from DRAM at
/// 4096 inputs is not found).
const MIN_BATCH_FP4: usize = 32;
const MAX_INP_FP4: usize = 2048;

/// Weight rows per panel (two 16-lane vectors).
pub(crate) const ROWS: usize = 32;

/// Inputs per FP4 panel chunk: 32 rows x 256 inputs of bf16 = 16 KiB, half of L1.
const KC_FP4: usize = 256;

/// Inputs per FP8 panel chunk: the scale block.
const KC_FP8: usize = 128;

/// The panel: `KC_FP4 / 2` input pairs x [`ROWS`] dwords (two bf16 each).
#[repr(C, align(64))]
struct Panel([u32; KC_FP4 / 2 * ROWS]);

/// Whether the panel path takes this call: AVX-512 BF16 (and VBMI for FP8), enough tokens, and
/// `inp` a multiple of 128 (whole 64-byte groups per row).
pub(crate) fn applies(m: usize, inp: usize, fp8: bool) -> bool {
    use super::Level;
    let wins = if fp8 { m >= MIN_BATCH } else { m >= MIN_BATCH_FP4 && inp <= MAX_INP_FP4 };
    wins && inp.is_multiple_of(128)
        && if fp8 { Level::has_avx512_bf16_vbmi() } else { Level::has_avx512_bf16() }
}

/// FP4 `y[m, rows.len()]`, `xb` the activations as bf16 (natural order).
pub(crate) fn fp4(w: &[u8], scale: &[u8], k: usize, xb: &[u16], rows: Range<usize>) -> Vec<f32> {
    run(xb.len() / k, rows, k / 2, |r, y, ldy, row0| unsafe { fp4_rows(w, scale, k, xb, r, y, ldy, row0) })
}

/// FP8 `y[m, rows.len()]`, `xb` the activations as bf16 (natural order).
pub(crate) fn fp8(w: &[u8], scale: &[u8], k: usize, xb: &[u16], rows: Range<usize>) -> Vec<f32> {
    run(xb.len() / k, rows, k, |r, y, ldy, row0| unsafe { fp8_rows(w, scale, k, xb, r, y, ldy, row0) })
}

/// `y[m, rows.len()]`, zeroed, filled by `f(rows, y, ldy, row0)` on ranges of whole 32-row
/// panels across the pool.
pub(super) fn run(m: usize, rows: Range<usize>, bytes_per_row: usize, f: impl Fn(Range<usize>, OutPtr, usize, usize) + Sync) -> Vec<f32> {
    let n = rows.len();
    let mut y = vec![0.0f32; m * n];
    let yp = OutPtr(y.as_mut_ptr());
    let row0 = rows.start;
    super::pool::split_rows(rows, ROWS, bytes_per_row.saturating_mul(m), |r| f(r, yp, n, row0));
    y
}

/// The 32-row panels (at multiples of 32 rows) that meet `r`, each with the mask of its rows in `r`.
pub(super) fn panels(r: Range<usize>) -> impl Iterator<Item = (usize, u32)> {
    (r.start / ROWS * ROWS..r.end).step_by(ROWS).map(move |p0| {
        let (lo, hi) = (r.start.max(p0) - p0, r.end.min(p0 + ROWS) - p0);
        let mask = if hi - lo == 32 { u32::MAX } else { ((1u32 << (hi - lo)) - 1) << lo };
        (p0, mask)
    })
}

/// Scale vectors per block of a panel chunk (per lane: per row; two halves of 16 rows).
type Scales = [[__m512; 2]; KC_FP4 / 32];

/// `y[t, row - row0] += Σ_blocks sc[blk, row] · Σ_(p in blk) panel[p, row] · x[t, p]` for the
/// panel's rows in `valid` and `B` tokens; blocks are `bp` pairs (x rows `ldx` pairs apart, y rows
/// `ldy` apart; `y` points at row `p0` and is touched only at valid lanes).
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512bf16")]
unsafe fn micro<const B: usize>(panel: &Panel, np: usize, bp: usize, sc: &Scales, x: *const u32, ldx: usize, y: *mut f32, ldy: usize, valid: u32) {
    let bh = |v: __m512i| -> __m512bh { unsafe { std::mem::transmute(v) } };
    let pp = panel.0.as_ptr();
    let mut acc = [[_mm512_setzero_ps(); 2]; B];
    for blk in 0..np / bp {
        // the block's sums, then scaled into acc (B <= 6: 24 accumulators in registers)
        let mut part = [[_mm512_setzero_ps(); 2]; B];
        for p in blk * bp..(blk + 1) * bp {
            let w0 = bh(unsafe { _mm512_load_si512(pp.add(p * ROWS) as *const __m512i) });
            let w1 = bh(unsafe { _mm512_load_si512(pp.add(p * ROWS + 16) as *const __m512i) });
            for b in 0..B {
                let xv = bh(_mm512_set1_epi32(unsafe { *x.add(b * ldx + p) } as i32));
                part[b][0] = _mm512_dpbf16_ps(part[b][0], w0, xv);
                part[b][1] = _mm512_dpbf16_ps(part[b][1], w1, xv);
            }
        }
        for b in 0..B {
            for h in 0..2 {
                acc[b][h] = _mm512_fmadd_ps(part[b][h], sc[blk][h], acc[b][h]);
            }
        }
    }
    let masks = [valid as u16, (valid >> 16) as u16];
    for b in 0..B {
        for h in 0..2 {
            if masks[h] != 0 {
                let yb = y.wrapping_add(b * ldy + 16 * h);
                // masked-off lanes are neither read nor written (they may lie outside y)
                let old = unsafe { _mm512_maskz_loadu_ps(masks[h], yb) };
                unsafe { _mm512_mask_storeu_ps(yb, masks[h], _mm512_add_ps(acc[b][h], old)) };
            }
        }
    }
}

/// Tokens per micro-kernel call (its accumulators fill the registers).
const TOKENS: usize = 6;

/// Runs [`micro`] for every chunk of up to [`TOKENS`] of the `m` tokens over one decoded panel
/// chunk (pairs `c0/2 ..` of x).
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512bf16")]
unsafe fn all_tokens(panel: &Panel, np: usize, bp: usize, sc: &Scales, xb: &[u16], k: usize, c0: usize, y: OutPtr, ldy: usize, p0: usize, row0: usize, valid: u32) {
    let m = xb.len() / k;
    let x32 = xb.as_ptr() as *const u32;
    // chunks as even as possible (a chunk of 1-2 tokens is latency-bound)
    let chunks = m.div_ceil(TOKENS);
    let mut t0 = 0;
    for c in 0..chunks {
        let bt = m * (c + 1) / chunks - t0;
        let (x, ldx) = (x32.wrapping_add(t0 * k / 2 + c0 / 2), k / 2);
        // y at (token t0, row p0): p0 may lie before row0 (masked-off lanes)
        let yb = y.0.wrapping_add(t0 * ldy).wrapping_add(p0).wrapping_sub(row0);
        unsafe {
            match bt {
                1 => micro::<1>(panel, np, bp, sc, x, ldx, yb, ldy, valid),
                2 => micro::<2>(panel, np, bp, sc, x, ldx, yb, ldy, valid),
                3 => micro::<3>(panel, np, bp, sc, x, ldx, yb, ldy, valid),
                4 => micro::<4>(panel, np, bp, sc, x, ldx, yb, ldy, valid),
                5 => micro::<5>(panel, np, bp, sc, x, ldx, yb, ldy, valid),
                6 => micro::<6>(panel, np, bp, sc, x, ldx, yb, ldy, valid),
                _ => unreachable!("chunk of {bt} tokens"),
            }
        }
        t0 += bt;
    }
}

/// Transposes 16 rows of 16 dwords: afterwards `t[d]` lane `l` is dword `d` of input row `l`.
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn transpose16(t: &mut [__m512i; 16]) {
    let mut a = [_mm512_setzero_si512(); 16];
    for i in 0..8 {
        a[2 * i] = _mm512_unpacklo_epi32(t[2 * i], t[2 * i + 1]);
        a[2 * i + 1] = _mm512_unpackhi_epi32(t[2 * i], t[2 * i + 1]);
    }
    // b[4i + j], 128-bit lane L: dword 4L + j of rows 4i..4i+3
    let mut b = [_mm512_setzero_si512(); 16];
    for i in 0..4 {
        b[4 * i] = _mm512_unpacklo_epi64(a[4 * i], a[4 * i + 2]);
        b[4 * i + 1] = _mm512_unpackhi_epi64(a[4 * i], a[4 * i + 2]);
        b[4 * i + 2] = _mm512_unpacklo_epi64(a[4 * i + 1], a[4 * i + 3]);
        b[4 * i + 3] = _mm512_unpackhi_epi64(a[4 * i + 1], a[4 * i + 3]);
    }
    for j in 0..4 {
        let c0 = _mm512_shuffle_i32x4::<0x88>(b[j], b[4 + j]); // lanes 0, 2 of each
        let c1 = _mm512_shuffle_i32x4::<0xDD>(b[j], b[4 + j]); // lanes 1, 3
        let e0 = _mm512_shuffle_i32x4::<0x88>(b[8 + j], b[12 + j]);
        let e1 = _mm512_shuffle_i32x4::<0xDD>(b[8 + j], b[12 + j]);
        t[j] = _mm512_shuffle_i32x4::<0x88>(c0, e0);
        t[8 + j] = _mm512_shuffle_i32x4::<0xDD>(c0, e0);
        t[4 + j] = _mm512_shuffle_i32x4::<0x88>(c1, e1);
        t[12 + j] = _mm512_shuffle_i32x4::<0xDD>(c1, e1);
    }
}

/// How far ahead in its row [`load16`] prefetches each row (into L2; past the row's end: the same
/// row of the next panel). A panel reads 32 rows side by side, more streams than the hardware
/// prefetcher follows. 1 KiB into L2 measured best of the distances and hints tried (Zen 4); a
/// linear prefetch of the next panel instead lost ~25% on FP8 wo_b at batch 32/64.
const AHEAD: usize = 1024;

/// 16 rows' 64 bytes at `p(l) + off` (zeros for rows not in `valid`; rows `rb` bytes apart),
/// transposed; prefetches [`AHEAD`] bytes further.
#[target_feature(enable = "avx512f")]
unsafe fn load16(p: impl Fn(usize) -> *const u8, off: usize, valid: u16, rb: usize) -> [__m512i; 16] {
    let ahead = off + AHEAD;
    // row l of the next panel starts 32 rows on: p(l) + 32 rb
    let skip = if ahead < rb { ahead } else { 31 * rb + ahead };
    for l in 0..16 {
        if valid >> l & 1 == 1 {
            // a prefetch never faults
            _mm_prefetch::<_MM_HINT_T1>(p(l).wrapping_add(skip) as *const i8);
        }
    }
    let mut t: [__m512i; 16] = std::array::from_fn(|l| {
        if valid >> l & 1 == 1 {
            unsafe { _mm512_loadu_si512(p(l).add(off) as *const __m512i) }
        } else {
            _mm512_setzero_si512()
        }
    });
    unsafe { transpose16(&mut t) };
    t
}

/// What the FP4 decode keeps in registers.
struct Fp4Dec {
    table: __m512i,
    ctl: [__m512i; 4],
    shift: __m512i,
    mff: __m512i,
    lane_off: __m512i,
}

impl Fp4Dec {
    #[target_feature(enable = "avx512f,avx512bw")]
    fn new(kb: usize) -> Fp4Dec {
        let e2m1: [i16; 32] = std::array::from_fn(|i| (E2M1[i & 15].to_bits() >> 16) as i16);
        Fp4Dec {
            table: unsafe { _mm512_loadu_si512(e2m1.as_ptr() as *const __m512i) },
            // pshufb control t: byte t of each dword into both of its words
            ctl: std::array::from_fn(|t| {
                let c: [u8; 64] = std::array::from_fn(|i| if i % 2 == 1 { 0x80 } else { (i / 4 * 4 + t) as u8 });
                unsafe { _mm512_loadu_si512(c.as_ptr() as *const __m512i) }
            }),
            shift: _mm512_set1_epi32(4 << 16), // low word: the byte (bits 0-4 index), high: byte >> 4
            mff: _mm512_set1_epi32(0xFF),
            lane_off: _mm512_mullo_epi32(_mm512_set1_epi32(kb as i32), _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15)),
        }
    }
}

/// Decodes inputs `c0 .. c0 + kc` of the panel at `p0` (rows in `valid`) into `dst` as
/// `[pair - c0/2][ROWS]` dwords. `sc: Some`: the blocks' scales go there (applied after the
/// sums); `None`: each scale is folded into the bf16 values (`+ (code - 127)` on the exponent of
/// each nonzero), and the result says whether every code allowed that exactly (2..=252).
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
unsafe fn fp4_decode(dc: &Fp4Dec, w: &[u8], scale: &[u8], k: usize, p0: usize, valid: u32, c0: usize, kc: usize, dst: *mut u32, mut sc: Option<&mut Scales>) -> bool {
    let (kb, rb) = (k / 32, k / 2);
    let mut ok = true;
    for h in 0..2 {
        let vm = (valid >> (16 * h)) as u16;
        if vm == 0 {
            continue;
        }
        let rows16 = p0 + 16 * h;
        for g in 0..kc / 128 {
            let t = unsafe { load16(|l| w.as_ptr().wrapping_add((rows16 + l) * rb), c0 / 2 + 64 * g, vm, rb) };
            // the 4 blocks' e8m0 codes of each row (one byte each) -> f32 scales per lane
            let sp = scale.as_ptr().wrapping_add(rows16 * kb + (c0 + 128 * g) / 32);
            if g == 0 && c0 == 0 {
                // the next panel's scale rows (the gather waits on each of its lines)
                let next = scale.as_ptr().wrapping_add((rows16 + ROWS) * kb);
                for off in (0..16 * kb).step_by(64) {
                    _mm_prefetch::<_MM_HINT_T1>(next.wrapping_add(off) as *const i8);
                }
            }
            let codes = unsafe { _mm512_mask_i32gather_epi32::<1>(_mm512_setzero_si512(), vm, dc.lane_off, sp as *const i32) };
            let e: [__m512i; 4] = std::array::from_fn(|q| _mm512_and_si512(_mm512_srlv_epi32(codes, _mm512_set1_epi32(8 * q as i32)), dc.mff));
            // per block: the exponent offset in both words of each lane (fold), else the scales
            let mut delta = [_mm512_setzero_si512(); 4];
            match sc.as_deref_mut() {
                Some(sc) => {
                    for q in 0..4 {
                        sc[4 * g + q][h] = e8m0_f32(e[q]);
                    }
                }
                None => {
                    for q in 0..4 {
                        let bad = _mm512_mask_cmplt_epu32_mask(vm, e[q], _mm512_set1_epi32(2)) | _mm512_mask_cmpgt_epu32_mask(vm, e[q], _mm512_set1_epi32(252));
                        ok &= bad == 0;
                        let d = _mm512_and_si512(_mm512_slli_epi32::<7>(_mm512_sub_epi32(e[q], _mm512_set1_epi32(127))), _mm512_set1_epi32(0xFFFF));
                        delta[q] = _mm512_or_si512(d, _mm512_slli_epi32::<16>(d));
                    }
                }
            }
            for (d, &td) in t.iter().enumerate() {
                for (tt, c) in dc.ctl.iter().enumerate() {
                    let i = _mm512_srlv_epi16(_mm512_shuffle_epi8(td, *c), dc.shift);
                    let mut v = _mm512_permutexvar_epi16(i, dc.table);
                    if sc.is_none() {
                        // pair 64g + 4d + tt is in block d / 4 of the group; zeros stay zero
                        v = _mm512_mask_add_epi16(v, _mm512_test_epi16_mask(v, _mm512_set1_epi16(0x7FFF)), v, delta[d / 4]);
                    }
                    let at = (64 * g + 4 * d + tt) * ROWS + 16 * h;
                    unsafe { _mm512_storeu_si512(dst.add(at) as *mut __m512i, v) };
                }
            }
        }
    }
    ok
}

/// The FP4 path on rows `r` (see the module docs).
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512bf16")]
unsafe fn fp4_rows(w: &[u8], scale: &[u8], k: usize, xb: &[u16], r: Range<usize>, y: OutPtr, ldy: usize, row0: usize) {
    let dc = Fp4Dec::new(k / 32);
    let mut panel = Panel([0; KC_FP4 / 2 * ROWS]);
    let mut sc: Scales = [[_mm512_setzero_ps(); 2]; KC_FP4 / 32];
    for (p0, valid) in panels(r) {
        for c0 in (0..k).step_by(KC_FP4) {
            let kc = KC_FP4.min(k - c0);
            unsafe { fp4_decode(&dc, w, scale, k, p0, valid, c0, kc, panel.0.as_mut_ptr(), Some(&mut sc)) };
            unsafe { all_tokens(&panel, kc / 2, 16, &sc, xb, k, c0, y, ldy, p0, row0, valid) };
        }
    }
}

/// e8m0 codes (one per dword lane) as f32 `2^(e-127)`: 0 is the subnormal 2^-127, 255 NaN.
#[target_feature(enable = "avx512f")]
fn e8m0_f32(e: __m512i) -> __m512 {
    let bits = _mm512_slli_epi32::<23>(e);
    let bits = _mm512_mask_mov_epi32(bits, _mm512_cmpeq_epi32_mask(e, _mm512_setzero_si512()), _mm512_set1_epi32(0x0040_0000));
    let bits = _mm512_mask_mov_epi32(bits, _mm512_cmpeq_epi32_mask(e, _mm512_set1_epi32(255)), _mm512_set1_epi32(0x7FC0_0000));
    _mm512_castsi512_ps(bits)
}

/// What the FP8 decode keeps in registers.
struct Fp8Dec {
    hi: [__m512i; 2],
    lo: [__m512i; 2],
    m80: __m512i,
    pick: [__m512i; 2],
}

impl Fp8Dec {
    #[target_feature(enable = "avx512f,avx512bw")]
    fn new() -> Fp8Dec {
        let tb = super::fp8::e4m3_bf16_bytes();
        let tbl = |t: usize, h: usize| unsafe { _mm512_loadu_si512(tb[t].as_ptr().add(64 * h) as *const __m512i) };
        // pair 0 of each dword: [low, high byte of input 0, low, high of input 1]; pair 1: inputs 2, 3
        let pick = |first: usize| {
            let c: [u8; 64] = std::array::from_fn(|i| ((i / 4 * 4 + first + i % 4 / 2) + 64 * (i % 2)) as u8);
            unsafe { _mm512_loadu_si512(c.as_ptr() as *const __m512i) }
        };
        Fp8Dec { hi: [tbl(0, 0), tbl(0, 1)], lo: [tbl(1, 0), tbl(1, 1)], m80: _mm512_set1_epi8(0x80u8 as i8), pick: [pick(0), pick(2)] }
    }
}

/// Decodes inputs `c0 .. c0 + 128` (one scale block) of the panel at `p0` (rows in `valid`) into
/// `dst` as `[pair - c0/2][ROWS]` dwords; `fold: Some(code)` adds `code - 127` to the exponent of
/// every nonzero, non-NaN value (exact for codes 10..=246, which the caller checks).
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vbmi")]
unsafe fn fp8_decode(dc: &Fp8Dec, w: &[u8], k: usize, p0: usize, valid: u32, c0: usize, dst: *mut u32, fold: Option<u8>) {
    let delta = _mm512_set1_epi16(((i32::from(fold.unwrap_or(127)) - 127) << 7) as i16);
    let (expo, abs) = (_mm512_set1_epi16(0x7F80), _mm512_set1_epi16(0x7FFF));
    let apply = |v: __m512i| {
        if fold.is_none() {
            return v;
        }
        let nan = _mm512_cmpeq_epi16_mask(_mm512_and_si512(v, expo), expo);
        _mm512_mask_add_epi16(v, _mm512_test_epi16_mask(v, abs) & !nan, v, delta)
    };
    for h in 0..2 {
        let vm = (valid >> (16 * h)) as u16;
        if vm == 0 {
            continue;
        }
        let rows16 = p0 + 16 * h;
        for g in 0..2 {
            let t = unsafe { load16(|l| w.as_ptr().wrapping_add((rows16 + l) * k), c0 + 64 * g, vm, k) };
            for (d, &v) in t.iter().enumerate() {
                let hb = _mm512_ternarylogic_epi32::<0xF8>(_mm512_permutex2var_epi8(dc.hi[0], v, dc.hi[1]), v, dc.m80); // | sign
                let lb = _mm512_permutex2var_epi8(dc.lo[0], v, dc.lo[1]);
                let at = (32 * g + 2 * d) * ROWS + 16 * h;
                unsafe { _mm512_storeu_si512(dst.add(at) as *mut __m512i, apply(_mm512_permutex2var_epi8(lb, dc.pick[0], hb))) };
                unsafe { _mm512_storeu_si512(dst.add(at + ROWS) as *mut __m512i, apply(_mm512_permutex2var_epi8(lb, dc.pick[1], hb))) };
            }
        }
    }
}

/// The FP8 path on rows `r` (see the module docs).
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512bf16,avx512vbmi")]
unsafe fn fp8_rows(w: &[u8], scale: &[u8], k: usize, xb: &[u16], r: Range<usize>, y: OutPtr, ldy: usize, row0: usize) {
    let kbn = k.div_ceil(128);
    let dc = Fp8Dec::new();
    let mut panel = Panel([0; KC_FP4 / 2 * ROWS]);
    let mut sc: Scales = [[_mm512_setzero_ps(); 2]; KC_FP4 / 32];
    for (p0, valid) in panels(r) {
        for c0 in (0..k).step_by(KC_FP8) {
            let kc = KC_FP8.min(k - c0);
            unsafe { fp8_decode(&dc, w, k, p0, valid, c0, panel.0.as_mut_ptr(), None) };
            let s = _mm512_set1_ps(E8M0[scale[(p0 / 128) * kbn + c0 / 128] as usize]);
            sc[0] = [s, s];
            unsafe { all_tokens(&panel, kc / 2, kc / 2, &sc, xb, k, c0, y, ldy, p0, row0, valid) };
        }
    }
}

/// Smallest batches that take the AMX path (`Level::Amx`), FP4 and FP8: where it measured ahead
/// of the AVX-512 paths (`batch_cache`, 2048x4096, 2 threads, Xeon with AMX, GFLOP/s AMX /
/// AVX-512): FP4 b4 155-161 / 151-155 (even), b6 226-236 / 157-170, b8 299-311 / 172, b16
/// 640-670 / 187, b64 681-974 / 180; FP8 b4 115-117 / 138-145, b6 173 / 123-127, b8 222-229 /
/// 146-148, b64 780-1011 / 200. The tile path streams ~10 (FP4) and ~14 (FP8) GB/s of weights
/// on its decode, so below these batches the row kernels' faster streaming wins.
const MIN_BATCH_AMX_FP4: usize = 6;
const MIN_BATCH_AMX_FP8: usize = 6;

/// Smallest batch of the BF16 AMX path (x exactly bf16 or in three parts).
const MIN_BATCH_AMX_BF16: usize = 6;

/// Whether the BF16 AMX path takes a call of `m` tokens over `inp` inputs.
pub(crate) fn applies_amx_bf16(m: usize, inp: usize) -> bool {
    m >= MIN_BATCH_AMX_BF16 && inp.is_multiple_of(32) && super::amx::enabled()
}

/// Whether the AMX path takes a call of `m` tokens over `inp` inputs.
pub(crate) fn applies_amx(m: usize, inp: usize, fp8: bool) -> bool {
    m >= if fp8 { MIN_BATCH_AMX_FP8 } else { MIN_BATCH_AMX_FP4 } && inp.is_multiple_of(128) && super::amx::enabled()
}

/// FP4 on AMX: `y[m, rows.len()]`, `xb` the activations as bf16 (natural order).
pub(crate) fn fp4_amx(w: &[u8], scale: &[u8], k: usize, xb: &[u16], rows: Range<usize>) -> Vec<f32> {
    let xp = [pad_tokens(xb, k)];
    let dc = unsafe { Fp4Dec::new(k / 32) };
    run(xb.len() / k, rows, k / 2, |r, y, ldy, row0| unsafe {
        amx_rows(
            &xp,
            xb.len() / k,
            k,
            KC_FP4,
            r,
            y,
            ldy,
            row0,
            |p0, valid, c0, n, dst| fp4_decode(&dc, w, scale, k, p0, valid, c0, n, dst, None),
            |r| fp4_rows(w, scale, k, xb, r, y, ldy, row0),
        )
    })
}

/// AMX's x: the padded bf16 parts and the token count.
fn amx_x(x: Result<&[u16], &[Vec<u16>; 3]>, k: usize) -> (Vec<Vec<u16>>, usize) {
    match x {
        Ok(xb) => (vec![pad_tokens(xb, k)], xb.len() / k),
        Err(parts) => (parts.iter().map(|p| pad_tokens(p, k)).collect(), parts[0].len() / k),
    }
}

/// BF16 on AMX: `y[m, rows.len()]` for x exactly bf16 (`Ok`) or as its three bf16 parts
/// (`Err`). A weight row's dwords are already input pairs: the decode is a 16 x 16 dword
/// transpose per 16 rows x 32 inputs.
pub(crate) fn bf16_amx(w: &[u8], k: usize, x: Result<&[u16], &[Vec<u16>; 3]>, rows: Range<usize>) -> Vec<f32> {
    let (xp, m) = amx_x(x, k);
    run(m, rows, 2 * k, |r, y, ldy, row0| unsafe {
        amx_rows(
            &xp,
            m,
            k,
            KC_FP4,
            r,
            y,
            ldy,
            row0,
            |p0, valid, c0, n, dst| {
                bf16_decode(w, k, p0, valid, c0, n, dst);
                true
            },
            |_| unreachable!("the BF16 decode always succeeds"),
        )
    })
}

/// Inputs `c0 .. c0 + n` (a multiple of 32) of the BF16 panel at `p0` (rows in `valid`) into
/// `dst` as `[pair - c0/2][ROWS]` dwords.
#[target_feature(enable = "avx512f")]
unsafe fn bf16_decode(w: &[u8], k: usize, p0: usize, valid: u32, c0: usize, n: usize, dst: *mut u32) {
    let rb = 2 * k;
    for h in 0..2 {
        let vm = (valid >> (16 * h)) as u16;
        if vm == 0 {
            continue;
        }
        let rows16 = p0 + 16 * h;
        for g in 0..n / 32 {
            let t = unsafe { load16(|l| w.as_ptr().wrapping_add((rows16 + l) * rb), 2 * (c0 + 32 * g), vm, rb) };
            for (d, &v) in t.iter().enumerate() {
                unsafe { _mm512_storeu_si512(dst.add((16 * g + d) * ROWS + 16 * h) as *mut __m512i, v) };
            }
        }
    }
}

/// FP8 on AMX: `y[m, rows.len()]` for x exactly bf16 (`Ok(xb)`, natural order) or any finite
/// x as its three bf16 parts (`Err`, [`amx::split_bf16`](super::amx::split_bf16); then every
/// scale code of the matrix must fold: [`fp8_folds`]).
pub(crate) fn fp8_amx(w: &[u8], scale: &[u8], k: usize, x: Result<&[u16], &[Vec<u16>; 3]>, rows: Range<usize>) -> Vec<f32> {
    let (xp, m) = amx_x(x, k);
    let dc = unsafe { Fp8Dec::new() };
    let kbn = k.div_ceil(128);
    run(m, rows, k, |r, y, ldy, row0| unsafe {
        amx_rows(
            &xp,
            m,
            k,
            KC_FP8,
            r,
            y,
            ldy,
            row0,
            |p0, valid, c0, _, dst| {
                let code = scale[(p0 / 128) * kbn + c0 / 128];
                FP8_FOLD.contains(&code) && {
                    fp8_decode(&dc, w, k, p0, valid, c0, dst, Some(code));
                    true
                }
            },
            |r| match x {
                Ok(xb) => fp8_rows(w, scale, k, xb, r, y, ldy, row0),
                Err(_) => unreachable!("split x with a scale that does not fold (fp8_folds was checked)"),
            },
        )
    })
}

/// FP8 block-scale codes whose factor folds into the bf16 weights exactly (e4m3 values times
/// 2^(code - 127) stay normal and finite).
const FP8_FOLD: std::ops::RangeInclusive<u8> = 10..=246;

/// Whether every scale code of an FP8 matrix folds (what a split x needs: the exact fallback
/// multiplies bf16 x only).
pub(crate) fn fp8_folds(scale: &[u8], out: usize, inp: usize) -> bool {
    scale[..out.div_ceil(128) * inp.div_ceil(128)].iter().all(|c| FP8_FOLD.contains(c))
}

/// `xb` (tokens of `k` bf16) with zero tokens appended up to a multiple of 16 (an A tile's rows),
/// rows [`amx_ldx`] apart.
fn pad_tokens(xb: &[u16], k: usize) -> Vec<u16> {
    let m = xb.len() / k;
    let mut xp = vec![0u16; m.next_multiple_of(16) * amx_ldx(k)];
    for (o, r) in xp.chunks_exact_mut(amx_ldx(k)).zip(xb.chunks_exact(k)) {
        o[..k].copy_from_slice(r);
    }
    xp
}

/// Row stride (elements) of AMX's x copies: `k` plus one cache line, so that the 16 rows of an
/// x tile (rows of 4 or 8 KiB otherwise, all in one L1 set: more rows than its 12 ways) fall in
/// different sets. `batch_cache`, Xeon, 2 threads, 2048x4096, two alternating runs (GB/s, stride
/// `k` -> this): FP4 b32 7.3-7.7 -> 8.3-8.5, b64 3.8 -> 4.4; FP8 b32 10.8-11.4 -> 11.9-12.4, b64
/// 6.2-6.3 -> 6.9-7.0; batch 8 the same.
fn amx_ldx(k: usize) -> usize {
    k + 32
}

/// The AMX path on rows `r` for x the sum of the bf16 token rows `xp` (padded to 16 tokens).
/// Per 32-row panel and chunk of `kc` inputs, `decode(p0, valid, c0, n, dst)` fills inputs
/// `c0 .. c0 + n` (`n`: `kc`, or what is left of `k`) as `n / 2` pairs x 32 dwords at `dst`
/// (16 KiB at most: it stays in L1), the scales folded in, or says it cannot (an extreme scale
/// code): `exact(rows)` then computes that panel's rows on the AVX-512 panel instead. Every 32
/// tokens multiply the chunk on tiles; with more than 32 their sums wait in L1 between chunks
/// (up to 32 they stay in the tiles).
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
unsafe fn amx_rows(xp: &[Vec<u16>], m: usize, k: usize, kc: usize, r: Range<usize>, y: OutPtr, ldy: usize, row0: usize, decode: impl Fn(usize, u32, usize, usize, *mut u32) -> bool, exact: impl Fn(Range<usize>)) {
    let ldx = amx_ldx(k);
    debug_assert!(xp.iter().all(|p| p.len() >= m.next_multiple_of(16) * ldx) && k.is_multiple_of(32) && kc <= KC_FP4 && (1..=3).contains(&xp.len()));
    let groups = m.div_ceil(32);
    let mut buf = Panel([0; KC_FP4 / 2 * ROWS]);
    let mut acc = vec![[[0f32; 256]; 4]; groups];
    let tiles = unsafe { super::amx::Tiles::load() };
    'panels: for (p0, valid) in panels(r.clone()) {
        for c0 in (0..k).step_by(kc) {
            let n = kc.min(k - c0);
            if !decode(p0, valid, c0, n, buf.0.as_mut_ptr()) {
                exact(r.start.max(p0)..r.end.min(p0 + ROWS));
                continue 'panels;
            }
            for (g, a) in acc.iter_mut().enumerate() {
                match (c0, groups) {
                    (0, _) => tiles.zero(),
                    (_, 1) => {}
                    _ => tiles.load_acc(a),
                }
                // the parts' pointers at this group and chunk (no allocation in the chunk loop)
                let x: [*const u16; 3] = std::array::from_fn(|i| xp.get(i).map_or(std::ptr::null(), |p| p.as_ptr().wrapping_add(32 * g * ldx + c0)));
                let x = &x[..xp.len()];
                unsafe {
                    if m - 32 * g > 16 {
                        tiles.steps::<2>(x, ldx, buf.0.as_ptr(), n)
                    } else {
                        tiles.steps::<1>(x, ldx, buf.0.as_ptr(), n)
                    }
                }
                if groups > 1 || c0 + n == k {
                    tiles.store(a);
                }
            }
        }
        for (g, a) in acc.iter().enumerate() {
            unsafe { write_out(a, 32 * g, m, p0, valid, y, ldy, row0) };
        }
    }
    drop(tiles);
}

/// Tokens `t0 ..` (up to 32, below `m`) of the stored accumulators into `y` at the panel's
/// valid rows.
#[allow(clippy::too_many_arguments)]
unsafe fn write_out(c: &[[f32; 256]; 4], t0: usize, m: usize, p0: usize, valid: u32, y: OutPtr, ldy: usize, row0: usize) {
    for tok in t0..m.min(t0 + 32) {
        let (j, t) = ((tok - t0) / 16, (tok - t0) % 16);
        for h in 0..2 {
            let ct = &c[2 * j + h][16 * t..16 * t + 16];
            for (col, &v) in ct.iter().enumerate() {
                if valid >> (16 * h + col) & 1 == 1 {
                    // SAFETY: the row is in the caller's range and tok < m: inside y
                    unsafe { *y.0.add(tok * ldy + p0 + 16 * h + col - row0) = v };
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transpose16_moves_dword_d_of_row_l_to_lane_l_of_vector_d() {
        if !is_x86_feature_detected!("avx512f") {
            return;
        }
        let rows: [[u32; 16]; 16] = std::array::from_fn(|l| std::array::from_fn(|d| (l * 100 + d) as u32));
        let mut t: [__m512i; 16] = std::array::from_fn(|l| unsafe { _mm512_loadu_si512(rows[l].as_ptr() as *const __m512i) });
        unsafe { transpose16(&mut t) };
        for (d, v) in t.iter().enumerate() {
            let mut out = [0u32; 16];
            unsafe { _mm512_storeu_si512(out.as_mut_ptr() as *mut __m512i, *v) };
            assert_eq!(out, std::array::from_fn(|l| (l * 100 + d) as u32), "vector {d}");
        }
    }

    #[test]
    fn panels_cover_the_range_with_masks() {
        let v: Vec<_> = panels(5..70).collect();
        assert_eq!(v, vec![(0, u32::MAX << 5), (32, u32::MAX), (64, 0b11_1111)]);
        assert_eq!(panels(32..64).collect::<Vec<_>>(), vec![(32, u32::MAX)]);
        assert_eq!(panels(40..41).collect::<Vec<_>>(), vec![(32, 1 << 8)]);
    }
}
