//! Batched FP8 / FP4 / BF16 GEMM for AVX2: each weight is decoded once per call into a small f32
//! panel (its scale folded in), then a register-blocked micro-kernel multiplies the panel
//! against every token.
//!
//! Why: the row kernels (`fp8`, `bf16`) keep one accumulator per (row, token) and re-read each
//! token's x for every weight row: at batch 8 and more that is two loads per FMA (x from L2 once
//! `inp` x tokens outgrows L1), and the decode is repeated for every chunk of 8 tokens. They
//! reach ~40 GFLOP/s per Zen 3 core of the ~90-100 its two FMA pipes can do; this kernel
//! ~57 at batch 8 and ~67-70 at 16-32 (`batch_cache`, FP8 256x2048, one core, best of runs).
//!
//! Here a panel holds [`RP`] weight rows x [`KC`] inputs as f32 (24 KiB, in L1 beside the 8 KiB
//! of x the micro-kernel reads for one chunk of tokens). The micro-kernel takes 3 rows x up to
//! 4 tokens: per 8 inputs 3 panel loads, 4 x loads and 12 FMAs into 12 accumulators that stay
//! in registers (16 ymm in all), so it runs at the FMA pipes' rate. Lanes run along the inputs (dot-product form, no
//! transpose); the accumulators live in memory between chunks and are summed across lanes once
//! per row and token.
//!
//! Decodes (all exact):
//! - FP8, two ways ([`Fp8Decode`]), the weight short of `w` by a power of two `2^-bias`:
//!   - `Lanes` (AMD): `vpmovsxbd`, a shift by 20 and a mask put an e4m3 byte's exponent and
//!     mantissa in an f32 as `w · 2^-120` (`fp8_lanes` makes the same f32 in place, without the
//!     widening; e4m3 subnormals become f32 subnormals, which Zen 3's FMA takes at full speed
//!     but its multiply does not, so the panel holds them as they are).
//!   - `F16` (every other vendor: Intel's FMA takes a microcode assist per subnormal operand):
//!     the byte into the high half of a word, an arithmetic shift by one and a mask make the f16
//!     of `w · 2^-8` (as `fp8::rows_avx2`), and `vcvtph2ps` widens it to a normal f32.
//!
//!   The scale goes into x instead: per 128-row block, x is copied once with each 128-input
//!   block times `2^bias · scale` (`2^(code - 127 + bias)`), so an FMA forms
//!   `(x · 2^bias · s) · (w · 2^-bias)` = `x · w · s`, rounded once. That copy is exact when the
//!   factor and every nonzero `|x|` times it are normal f32s, which [`applies_fp8`] checks for
//!   the whole call (activations and checkpoint scales are far inside it); otherwise the row
//!   kernels run. NaN codes (finite after either decode) are caught on the bytes and make their
//!   row's outputs NaN, as in the reference.
//! - FP4: `fp4::decode8` (8 e2m1 codes to f32 in input order) times the block's e8m0 scale: the
//!   reference's dequantised weight itself, so no condition on x.
//! - BF16: `and 0xFFFF0000` / `<< 16` on 16 weights give the odd / even elements as f32, with x
//!   laid out in [even 8 | odd 8] groups (as `bf16::rows_avx2`).
//!
//! The results equal `Linear::forward`'s up to the f32 summation order: products are exact and
//! scaling by a power of two commutes with rounding (except for products below 2^-126, which
//! the reference forms before scaling and this kernel after).

use std::arch::x86_64::*;
use std::ops::Range;

use super::OutPtr;

/// Smallest batch that takes the panel path. `dsv4 bench cpu --quick`, Zen 3, 2 threads, weights
/// from DRAM, two alternating runs each (GB/s, row kernels -> panel): batch 8 FP8 wq_b 3.5/4.8
/// -> 4.4/4.5, wo_b 5.0/3.8 -> 6.2/6.5, BF16 head 8.1/9.8 -> 12.0/11.7; batch 32 FP8 1.1-1.6 ->
/// 1.5-2.1, head 2.1/2.4 -> 3.7/4.0; but batch 4 wq_b 7.9/10.6 -> 5.7/6.7 and head 16.1/19.4 ->
/// 17.9/13.9: at 4 tokens the row kernels' decode per token still streams faster.
pub(crate) const MIN_BATCH: usize = 8;

/// Rows per panel: four micro-kernel triples, so each chunk of x is read from L2 once per 12
/// weight rows rather than 6 (the other triples find it in L1). One Zen 3 core in cache
/// (`batch_cache`, 1020x4096, three alternating runs, GFLOP/s, 6 -> 12 rows): FP4 b32 56-71 ->
/// 72-75, b64 69-74 -> 76-79; FP8 b32 66-72 -> 73-74, b64 68-72 -> 72-75. 12 rows x 384 inputs
/// measured the same, 15 x 256 and 9 x 512 between the two (and 12 x 256 earlier the same as
/// 6 x 512). Two threads from DRAM (16384x4096), in the two quiet runs of three: FP8 b64
/// 134-142 -> 144-146, FP4 b64 127-143 -> 144-148.
pub(crate) const RP: usize = 12;

/// Inputs per panel chunk (a multiple of 128, the FP8 scale block).
const KC: usize = 512;

/// Tokens per micro-kernel call (3 x 4 accumulators fill the registers with the 3 panel
/// vectors and one x vector).
const TOKENS: usize = 4;

/// Prefetch distance along a weight row (bytes, into L2): a panel reads 12 rows side by side,
/// more streams than the hardware prefetcher follows.
const AHEAD: usize = 1024;

/// Panel row stride in floats: not a multiple of 1 KiB, so the 3 rows the micro-kernel reads
/// side by side do not meet in the same L1 bank.
const PS: usize = KC + 8;

/// A panel: [`RP`] rows of [`KC`] f32, [`PS`] apart.
#[repr(C, align(32))]
struct Panel([f32; RP * PS]);

/// Accumulators of one (row triple, token chunk): `[3 rows][TOKENS tokens]`.
type Acc = [__m256; 3 * TOKENS];

/// How the FP8 panel holds a weight (module docs): both exact, `w · 2^-bias`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Fp8Decode {
    /// `w · 2^-120` by shift and mask; e4m3 subnormals stay f32 subnormals.
    Lanes,
    /// `w · 2^-8` through f16 and `vcvtph2ps`: every value a normal f32.
    F16,
}

impl Fp8Decode {
    /// `Lanes` where subnormal FMA operands cost nothing ([`Level::fast_subnormals`]), else `F16`.
    pub(crate) fn for_this_cpu() -> Fp8Decode {
        if super::Level::fast_subnormals() {
            Fp8Decode::Lanes
        } else {
            Fp8Decode::F16
        }
    }

    /// The power of two the decoded weight is short of `w`, which x's copy makes up.
    pub(crate) fn bias(self) -> i32 {
        match self {
            Fp8Decode::Lanes => 120,
            Fp8Decode::F16 => 8,
        }
    }
}

/// Whether an FP8 call takes the panel path: enough tokens, whole 32-input groups, and x
/// times every scale factor of `rows` exact ([`scale_fold_exact`]).
pub(crate) fn applies_fp8(m: usize, inp: usize, scale: &[u8], rows: &Range<usize>, x: &[f32], dec: Fp8Decode) -> bool {
    m >= MIN_BATCH && inp.is_multiple_of(32) && scale_fold_exact(inp, scale, rows, x, dec.bias())
}

/// Whether multiplying x by `2^(code - 127 + bias)` for every scale code of `rows` is exact (the
/// module docs' condition, also `fp8_lanes`' with bias 120): with `lo` / `hi` the smallest
/// nonzero / largest finite `|x|`, `c` the codes and `f = 2^(c - 127 + bias)` each factor, every
/// `f` is a normal f32, `lo · min f >= 2^-126` and `hi · max f < 2^127`.
pub(crate) fn scale_fold_exact(inp: usize, scale: &[u8], rows: &Range<usize>, x: &[f32], bias: i32) -> bool {
    if rows.is_empty() {
        return false;
    }
    let kbn = inp.div_ceil(128);
    let blocks = &scale[rows.start / 128 * kbn..(rows.end - 1) / 128 * kbn + kbn];
    let (cmin, cmax) = blocks.iter().fold((255u8, 0u8), |(a, b), &c| (a.min(c), b.max(c)));
    // |v| as bits orders like |v|: the smallest nonzero and largest finite, in one pass that
    // vectorises
    let (lo, hi) = x.iter().fold((u32::MAX, 0u32), |(lo, hi), v| {
        let a = v.to_bits() & 0x7FFF_FFFF;
        let ok = a != 0 && a < 0x7F80_0000;
        (if ok { lo.min(a) } else { lo }, if ok { hi.max(a) } else { hi })
    });
    if hi == 0 {
        // x all zero or non-finite: every factor only needs to be a normal f32
        return cmax < 255 && i32::from(cmin) - 127 + bias >= -126 && i32::from(cmax) - 127 + bias <= 127;
    }
    if lo < 0x0080_0000 {
        return false; // a subnormal x
    }
    let (emin, emax) = (i32::from(cmin) - 127 + bias, i32::from(cmax) - 127 + bias);
    // floor(log2 |v|) of a normal |v|: its exponent field - 127
    let (llo, lhi) = ((lo >> 23) as i32 - 127, (hi >> 23) as i32 - 127);
    cmax < 255 && emin >= -126 && emax <= 127 && llo + emin >= -126 && lhi + emax <= 126
}

/// Whether a BF16 call takes the panel path.
pub(crate) fn applies_bf16(m: usize, inp: usize) -> bool {
    m >= MIN_BATCH && inp.is_multiple_of(16)
}

/// FP8 `y[m, rows.len()]` for `x[m, k]`, the weights decoded as `dec` says (the caller checked
/// [`applies_fp8`] with the same `dec`).
pub(crate) fn fp8(w: &[u8], scale: &[u8], k: usize, x: &[f32], rows: Range<usize>, dec: Fp8Decode) -> Vec<f32> {
    let kbn = k.div_ceil(128);
    let bias = dec.bias() as u32;
    // x with each 128-input block times 2^(code - 127 + bias) of row block `rb`
    let scaled = |rb: usize, buf: &mut XBuf| {
        let out = buf.take(x.len() / k * ldx(k));
        for (xr, or) in x.chunks_exact(k).zip(out.chunks_exact_mut(ldx(k))) {
            for (kb, (xb, ob)) in xr.chunks(128).zip(or.chunks_mut(128)).enumerate() {
                let f = f32::from_bits((u32::from(scale[rb * kbn + kb]) + bias) << 23);
                for (o, v) in ob.iter_mut().zip(xb) {
                    *o = v * f;
                }
            }
        }
    };
    run(k, x.len() / k, &[], rows, k, 128, Some(&scaled), |n0, nv, c0, kc, panel| unsafe {
        match dec {
            Fp8Decode::Lanes => decode_fp8::<false>(w, k, n0, nv, c0, kc, panel),
            Fp8Decode::F16 => decode_fp8::<true>(w, k, n0, nv, c0, kc, panel),
        }
    })
}

/// Smallest batch that takes the FP4 panel: the integer row kernel (`fp4_int`) takes chunks of
/// up to [`super::MAX_BATCH`] tokens, so above that it would stream the weights twice. One Zen 3
/// core in cache (`batch_cache`, best of three alternating runs, GFLOP/s integer -> panel):
/// 4096 inputs b8 55.8 -> 56.1, b16 54.2 -> 66.6, b32 53.1 -> 72.6; 2048 inputs b8 54.7 ->
/// 57.9, b16 56.9 -> 69.8, b32 56.8 -> 75.9.
pub(crate) const MIN_BATCH_FP4: usize = super::MAX_BATCH + 1;

/// Whether an FP4 call takes the panel path.
pub(crate) fn applies_fp4(m: usize, inp: usize) -> bool {
    m >= MIN_BATCH_FP4 && inp.is_multiple_of(32)
}

/// FP4 `y[m, rows.len()]` for `x[m, k]` (codes `[out, k/2]`, e8m0 scales `[out, k/32]`).
pub(crate) fn fp4(w: &[u8], scale: &[u8], k: usize, x: &[f32], rows: Range<usize>) -> Vec<f32> {
    let mut buf = XBuf::default();
    let m = x.len() / k;
    let xs = buf.take(m * ldx(k));
    for (o, r) in xs.chunks_exact_mut(ldx(k)).zip(x.chunks_exact(k)) {
        o[..k].copy_from_slice(r);
    }
    run(k, m, xs, rows, k / 2 + k / 32, usize::MAX, None, |n0, nv, c0, kc, panel| unsafe { decode_fp4(w, scale, k, n0, nv, c0, kc, panel) })
}

/// BF16 `y[m, rows.len()]` for `x[m, k]` (`w` as bf16 bytes).
pub(crate) fn bf16(w: &[u8], k: usize, x: &[f32], rows: Range<usize>) -> Vec<f32> {
    let mut buf = XBuf::default();
    let m = x.len() / k;
    let xs = buf.take(m * ldx(k));
    for (o, r) in xs.chunks_exact_mut(ldx(k)).zip(super::bf16::deinterleave(x, k, 16).chunks_exact(k)) {
        o[..k].copy_from_slice(r);
    }
    run(k, m, xs, rows, 2 * k, usize::MAX, None, |n0, nv, c0, kc, panel| unsafe { decode_bf16(w, k, n0, nv, c0, kc, panel) })
}

/// Row stride of the x copies the micro-kernel reads: `k` plus one cache line, so that
/// tokens' rows (often a multiple of 4 KiB apart) fall in different L1 sets.
fn ldx(k: usize) -> usize {
    k + 16
}

/// The x of one row block: `f(rb, buf)` writes into `buf` the x (rows [`ldx`] apart) that rows
/// `rb · block ..` use.
type XFor<'a> = Option<&'a (dyn Fn(usize, &mut XBuf) + Sync)>;

/// A reusable f32 buffer aligned to 32 bytes (x rows of a multiple of 8 floats then never
/// split a vector load across cache lines).
#[derive(Default)]
struct XBuf(Vec<__m256>);

impl XBuf {
    /// The buffer as `len` floats (contents unspecified).
    fn take(&mut self, len: usize) -> &mut [f32] {
        self.0.resize(len.div_ceil(8), unsafe { _mm256_setzero_ps() });
        // SAFETY: the Vec holds at least `len` f32s, suitably aligned
        unsafe { std::slice::from_raw_parts_mut(self.0.as_mut_ptr() as *mut f32, len) }
    }

    fn view(&self, len: usize) -> &[f32] {
        unsafe { std::slice::from_raw_parts(self.0.as_ptr() as *const f32, len) }
    }
}

/// Splits `rows` across the pool and runs every panel of each share on `m` tokens of `x` (rows
/// [`ldx`] apart; unused with `xfor`): `decode(n0, rows, c0, kc,
/// panel)` fills panel rows `0..rows` with weight rows `n0..` over inputs `c0..c0 + kc` and
/// returns the mask of those rows whose outputs must be NaN. With `xfor`, each block of `block`
/// rows (from row 0) multiplies its own x; panels never straddle a block.
fn run(k: usize, m: usize, x: &[f32], rows: Range<usize>, bytes_per_row: usize, block: usize, xfor: XFor, decode: impl Fn(usize, usize, usize, usize, &mut Panel) -> u16 + Sync) -> Vec<f32> {
    let n = rows.len();
    let mut y = vec![0.0f32; m * n];
    let yp = OutPtr(y.as_mut_ptr());
    let row0 = rows.start;
    super::pool::split_rows(rows, RP, bytes_per_row.saturating_mul(m), |r| {
        let mut buf = XBuf::default();
        let mut s = r.start;
        while s < r.end {
            let e = r.end.min((s / block + 1).saturating_mul(block));
            let xb = match xfor {
                Some(f) => {
                    f(s / block, &mut buf);
                    buf.view(m * ldx(k))
                }
                None => x,
            };
            unsafe { share(k, m, xb, s..e, yp, n, row0, &decode) };
            s = e;
        }
    });
    y
}

/// Token chunks of at most [`TOKENS`], as even as possible (a chunk of 1-2 tokens has too few
/// accumulator chains to hide the FMA latency).
fn token_chunks(m: usize) -> Vec<Range<usize>> {
    let c = m.div_ceil(TOKENS);
    (0..c).map(|i| m * i / c..m * (i + 1) / c).collect()
}

/// One thread's rows `r`.
#[target_feature(enable = "avx2,fma")]
unsafe fn share(k: usize, m: usize, x: &[f32], r: Range<usize>, y: OutPtr, ldy: usize, row0: usize, decode: &impl Fn(usize, usize, usize, usize, &mut Panel) -> u16) {
    let chunks = token_chunks(m);
    let mut panel = Panel([0.0; RP * PS]);
    let mut acc: Vec<Acc> = vec![[_mm256_setzero_ps(); 3 * TOKENS]; chunks.len() * RP / 3];
    for n0 in r.clone().step_by(RP) {
        let nv = RP.min(r.end - n0);
        let triples = nv.div_ceil(3);
        acc.fill([_mm256_setzero_ps(); 3 * TOKENS]);
        let mut nan = 0u16;
        for c0 in (0..k).step_by(KC) {
            let kc = KC.min(k - c0);
            nan |= decode(n0, nv, c0, kc, &mut panel);
            for (ci, t) in chunks.iter().enumerate() {
                let xp = x.as_ptr().add(t.start * ldx(k) + c0);
                for tr in 0..triples {
                    let pw = panel.0.as_ptr().add(3 * tr * PS);
                    let a = &mut acc[ci * RP / 3 + tr];
                    match t.len() {
                        1 => micro::<1>(pw, xp, ldx(k), kc, a),
                        2 => micro::<2>(pw, xp, ldx(k), kc, a),
                        3 => micro::<3>(pw, xp, ldx(k), kc, a),
                        4 => micro::<4>(pw, xp, ldx(k), kc, a),
                        l => unreachable!("chunk of {l} tokens"),
                    }
                }
            }
        }
        for (ci, t) in chunks.iter().enumerate() {
            for tr in 0..triples {
                let a = &acc[ci * RP / 3 + tr];
                for i in (0..3).filter(|i| 3 * tr + i < nv) {
                    let row = n0 + 3 * tr + i;
                    for (j, tok) in t.clone().enumerate() {
                        let v = if nan >> (3 * tr + i) & 1 == 1 { f32::NAN } else { super::hsum256(a[i * TOKENS + j]) };
                        y.write(tok * ldy + row - row0, v);
                    }
                }
            }
        }
    }
}

/// `acc[i][t] += panel row i (of 3, `PS` apart) · x row t (`ldx` apart)` over `kc` inputs (a
/// multiple of 8), lane by lane.
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn micro<const T: usize>(pw: *const f32, x: *const f32, ldx: usize, kc: usize, acc: &mut Acc) {
    let mut a = [[_mm256_setzero_ps(); T]; 3];
    for i in 0..3 {
        for t in 0..T {
            a[i][t] = acc[i * TOKENS + t];
        }
    }
    let mut s = 0;
    while s < kc {
        let w0 = _mm256_load_ps(pw.add(s));
        let w1 = _mm256_load_ps(pw.add(PS + s));
        let w2 = _mm256_load_ps(pw.add(2 * PS + s));
        for t in 0..T {
            let xv = _mm256_loadu_ps(x.add(t * ldx + s));
            a[0][t] = _mm256_fmadd_ps(w0, xv, a[0][t]);
            a[1][t] = _mm256_fmadd_ps(w1, xv, a[1][t]);
            a[2][t] = _mm256_fmadd_ps(w2, xv, a[2][t]);
        }
        s += 8;
    }
    for i in 0..3 {
        for t in 0..T {
            acc[i * TOKENS + t] = a[i][t];
        }
    }
}

/// Prefetches the line [`AHEAD`] bytes on from `off` in row `row` (rows `rb` bytes apart), or
/// past the row's end the same place in the row one panel further.
#[inline(always)]
fn prefetch_ahead(base: *const u8, row: usize, off: usize, rb: usize) {
    let ahead = off + AHEAD;
    let at = if ahead < rb { row * rb + ahead } else { (row + RP) * rb + ahead - rb };
    // a prefetch never faults
    unsafe { _mm_prefetch::<_MM_HINT_T1>(base.wrapping_add(at) as *const i8) };
}

/// FP8 rows `n0..n0 + nv`, inputs `c0..c0 + kc` (multiples of 32), into the panel as
/// `w · 2^-bias` (module docs): `F16` false, `w · 2^-120` by shift and mask ([`Fp8Decode::Lanes`]);
/// true, `w · 2^-8` through f16, every value a normal f32 ([`Fp8Decode::F16`]). Returns the mask
/// of the rows holding a NaN code.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn decode_fp8<const F16: bool>(w: &[u8], k: usize, n0: usize, nv: usize, c0: usize, kc: usize, panel: &mut Panel) -> u16 {
    let mask = _mm256_set1_epi32(0x87FF_FFFFu32 as i32);
    let m80 = _mm256_set1_epi8(0x80u8 as i8);
    let mbf = _mm_set1_epi16(0xBFFFu16 as i16);
    let zero = _mm_setzero_si128();
    let mut nan_rows = 0u16;
    for i in 0..nv {
        let row = n0 + i;
        let wp = w.as_ptr().add(row * k + c0);
        let pp = panel.0.as_mut_ptr().add(i * PS);
        let mut nan = _mm256_setzero_si256();
        for j in (0..kc).step_by(32) {
            if (c0 + j).is_multiple_of(64) {
                prefetch_ahead(w.as_ptr(), row, c0 + j, k);
            }
            // a NaN code is 0x7F / 0xFF: 0xFF once the sign bit is set
            nan = _mm256_max_epu8(nan, _mm256_or_si256(_mm256_loadu_si256(wp.add(j) as *const __m256i), m80));
            if F16 {
                for h in 0..2 {
                    let bytes = _mm_loadu_si128(wp.add(j + 16 * h) as *const __m128i);
                    // the byte in the high half, shifted right by one with its sign: the f16 of w · 2^-8
                    let lo = _mm_and_si128(_mm_srai_epi16::<1>(_mm_unpacklo_epi8(zero, bytes)), mbf);
                    let hi = _mm_and_si128(_mm_srai_epi16::<1>(_mm_unpackhi_epi8(zero, bytes)), mbf);
                    _mm256_store_ps(pp.add(j + 16 * h), _mm256_cvtph_ps(lo));
                    _mm256_store_ps(pp.add(j + 16 * h + 8), _mm256_cvtph_ps(hi));
                }
            } else {
                for q in 0..4 {
                    let v = _mm256_cvtepi8_epi32(_mm_loadl_epi64(wp.add(j + 8 * q) as *const __m128i));
                    _mm256_store_si256(pp.add(j + 8 * q) as *mut __m256i, _mm256_and_si256(_mm256_slli_epi32::<20>(v), mask));
                }
            }
        }
        if _mm256_movemask_epi8(_mm256_cmpeq_epi8(nan, _mm256_set1_epi8(-1))) != 0 {
            nan_rows |= 1 << i;
        }
    }
    nan_rows
}

/// FP4 rows `n0..n0 + nv`, inputs `c0..c0 + kc` (multiples of 32), into the panel as `w · s`
/// in input order (`fp4::decode8`, times the block's e8m0 scale: exact, the reference's
/// dequantised weight; a NaN scale makes NaN weights, so no row mask is needed).
#[target_feature(enable = "avx2,fma")]
unsafe fn decode_fp4(w: &[u8], scale: &[u8], k: usize, n0: usize, nv: usize, c0: usize, kc: usize, panel: &mut Panel) -> u16 {
    let (table, shifts) = super::fp4::decode8_consts();
    let e8m0 = &*super::E8M0;
    let (rb, kb) = (k / 2, k / 32);
    for i in 0..nv {
        let row = n0 + i;
        let wp = w.as_ptr().add(row * rb + c0 / 2);
        let sp = scale.as_ptr().add(row * kb + c0 / 32);
        let pp = panel.0.as_mut_ptr().add(i * PS);
        for j in (0..kc).step_by(32) {
            if (c0 + j).is_multiple_of(128) {
                prefetch_ahead(w.as_ptr(), row, (c0 + j) / 2, rb);
            }
            // `get_unchecked`: an e8m0 byte indexes the 256-entry table
            let sv = _mm256_set1_ps(*e8m0.get_unchecked(*sp.add(j / 32) as usize));
            for g in 0..4 {
                let word = (wp.add(j / 2 + 4 * g) as *const i32).read_unaligned();
                _mm256_store_ps(pp.add(j + 8 * g), _mm256_mul_ps(super::fp4::decode8(word, table, shifts), sv));
            }
        }
    }
    0
}

/// BF16 rows `n0..n0 + nv`, inputs `c0..c0 + kc` (multiples of 16), into the panel in [even 8 |
/// odd 8] groups; NaN weights stay NaN in f32, so no row mask is needed.
#[target_feature(enable = "avx2,fma")]
unsafe fn decode_bf16(w: &[u8], k: usize, n0: usize, nv: usize, c0: usize, kc: usize, panel: &mut Panel) -> u16 {
    let hi = _mm256_set1_epi32(0xFFFF_0000u32 as i32);
    for i in 0..nv {
        let row = n0 + i;
        let wp = w.as_ptr().add(2 * (row * k + c0));
        let pp = panel.0.as_mut_ptr().add(i * PS);
        for j in (0..kc).step_by(16) {
            if (2 * (c0 + j)).is_multiple_of(64) {
                prefetch_ahead(w.as_ptr(), row, 2 * (c0 + j), 2 * k);
            }
            let v = _mm256_loadu_si256(wp.add(2 * j) as *const __m256i);
            _mm256_store_ps(pp.add(j), _mm256_castsi256_ps(_mm256_slli_epi32::<16>(v)));
            _mm256_store_ps(pp.add(j + 8), _mm256_castsi256_ps(_mm256_and_si256(v, hi)));
        }
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_chunks_are_even_and_cover() {
        assert_eq!(token_chunks(4), vec![0..4]);
        assert_eq!(token_chunks(5), vec![0..2, 2..5]);
        assert_eq!(token_chunks(8), vec![0..4, 4..8]);
        assert_eq!(token_chunks(9), vec![0..3, 3..6, 6..9]);
        for m in 1..70 {
            let c = token_chunks(m);
            assert_eq!(c.first().unwrap().start, 0);
            assert_eq!(c.last().unwrap().end, m);
            assert!(c.windows(2).all(|p| p[0].end == p[1].start));
            assert!(c.iter().all(|r| (1..=TOKENS).contains(&r.len())));
        }
    }

    #[test]
    fn applies_fp8_reads_the_scale_rows_of_the_range() {
        use Fp8Decode::{Lanes, F16};
        // 300 rows x 256 inputs: 3 row blocks x 2 input blocks
        let x = |v: f32| vec![v; 8 * 256];
        let mut scale = vec![127u8; 6];
        for dec in [Lanes, F16] {
            assert!(applies_fp8(8, 256, &scale, &(0..300), &x(1.0), dec));
            assert!(!applies_fp8(3, 256, &scale, &(0..256), &x(1.0), dec));
            assert!(!applies_fp8(8, 260, &[127; 9], &(0..10), &x(1.0), dec));
        }
        scale[5] = 255; // row block 2: a NaN scale
        for dec in [Lanes, F16] {
            assert!(!applies_fp8(8, 256, &scale, &(0..300), &x(1.0), dec));
            assert!(!applies_fp8(8, 256, &scale, &(256..257), &x(0.0), dec));
            assert!(applies_fp8(8, 256, &scale, &(0..256), &x(1.0), dec));
            assert!(applies_fp8(8, 256, &scale, &(0..256), &x(0.0), dec));
        }
        // the exponent range: 2^e · 2^(127 - 127 + bias) must stay in [2^-126, 2^127)
        assert!(applies_fp8(8, 256, &scale, &(0..256), &x(2f32.powi(6) * 1.99), Lanes));
        assert!(!applies_fp8(8, 256, &scale, &(0..256), &x(2f32.powi(7)), Lanes));
        assert!(applies_fp8(8, 256, &scale, &(0..256), &x(2f32.powi(118) * 1.99), F16));
        assert!(!applies_fp8(8, 256, &scale, &(0..256), &x(2f32.powi(119)), F16));
        let mut small = vec![0u8; 6];
        small[0] = 127;
        // code 0: factor 2^-7 (Lanes); 2^-119 · 2^-7 = 2^-126 is the smallest allowed
        assert!(applies_fp8(8, 256, &small, &(0..256), &x(2f32.powi(-119)), Lanes));
        assert!(!applies_fp8(8, 256, &small, &(0..256), &x(2f32.powi(-120)), Lanes));
        // code 0 with F16: factor 2^-119, so x down to 2^-7
        assert!(applies_fp8(8, 256, &small, &(0..256), &x(2f32.powi(-7)), F16));
        assert!(!applies_fp8(8, 256, &small, &(0..256), &x(2f32.powi(-8)), F16));
        // the factor itself must be a normal f32: code 135 with Lanes is 2^128 (even for tiny
        // x, which the product check alone let through), code 247 with F16 likewise
        assert!(applies_fp8(8, 256, &[134; 6], &(0..256), &x(2f32.powi(-100)), Lanes));
        assert!(!applies_fp8(8, 256, &[135; 6], &(0..256), &x(2f32.powi(-100)), Lanes));
        assert!(!applies_fp8(8, 256, &[135; 6], &(0..256), &x(0.0), Lanes));
        assert!(applies_fp8(8, 256, &[246; 6], &(0..256), &x(2f32.powi(-100)), F16));
        assert!(!applies_fp8(8, 256, &[247; 6], &(0..256), &x(2f32.powi(-100)), F16));
        let mut mixed = x(1.0);
        mixed[3] = f32::NAN;
        mixed[4] = 0.0;
        for dec in [Lanes, F16] {
            assert!(applies_fp8(8, 256, &[127; 6], &(0..256), &mixed, dec));
        }
    }

    /// Every e4m3 code (signs and subnormals included) at every position of a 32-input group,
    /// through both panel decodes, at batches 8 and 9 and two row blocks of different scales:
    /// each product `x · w · s` is exact here (x small integers, s a power of two), so the panel
    /// must give the table's sum exactly; NaN codes give NaN rows.
    #[test]
    fn fp8_panel_every_code_both_decodes() {
        if !super::super::Level::Avx2.is_supported() {
            return;
        }
        let (k, out) = (64usize, 256usize);
        // row c: code c at inputs 32j + (c % 32) and (c * 7) % 64, code 0 elsewhere
        let mut w = vec![0u8; out * k];
        for c in 0..out {
            for j in 0..2 {
                w[c * k + 32 * j + c % 32] = c as u8;
            }
            w[c * k + (c * 7) % k] = c as u8;
        }
        let scale = [127u8, 131]; // row blocks 0 and 1: 2^0 and 2^4
        for dec in [Fp8Decode::Lanes, Fp8Decode::F16] {
            for m in [8usize, 9] {
                let x: Vec<f32> = (0..m * k).map(|i| (i % 13) as f32 - 6.0).collect();
                assert!(applies_fp8(m, k, &scale, &(0..out), &x, dec));
                let y = fp8(&w, &scale, k, &x, 0..out, dec);
                for b in 0..m {
                    for c in 0..out {
                        let s = super::super::E8M0[scale[c / 128] as usize];
                        let want: f32 = (0..k).map(|i| x[b * k + i] * super::super::E4M3[w[c * k + i] as usize] * s).sum();
                        let got = y[b * out + c];
                        if c & 0x7F == 0x7F {
                            assert!(got.is_nan(), "{dec:?} m {m} token {b} code {c:#x}: {got}");
                        } else {
                            assert_eq!(got, want, "{dec:?} m {m} token {b} code {c:#x}");
                        }
                    }
                }
            }
        }
    }
}
