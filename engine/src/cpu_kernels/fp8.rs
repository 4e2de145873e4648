//! FP8 GEMV: e4m3 weights `[out, in]` with e8m0 scales per 128x128 block
//! (`[ceil(out/128), ceil(in/128)]`), read in place.
//!
//! Per row and 128-input block: `p = Σ x·e4m3` in f32, then `acc += p · 2^e`.
//!
//! AVX2 + F16C: an e4m3 byte placed in the high byte of a 16-bit word, arithmetic-shifted right
//! by one and masked with 0xBFFF is the f16 of `e4m3 · 2^-8` (normals and subnormals alike), so
//! `vcvtph2ps` decodes 8 weights exactly; the 2^8 goes into the block scale. The NaN codes
//! (0x7F, 0xFF) do not survive that trick, so they are detected on the bytes and turn the row's
//! outputs into NaN, as in the reference.
//!
//! AVX2 at batch 1-2 (inputs a multiple of 32) on AMD: a cheaper exact decode with no
//! conversion, see `fp8_lanes`: the e4m3 bits shifted and masked in their own 32-bit lanes make
//! the f32 `w · 2^-120`, and x is scaled by `2^120 · scale` per block. It keeps e4m3 subnormals
//! as f32 subnormals, which Intel's FMA takes through a microcode assist (0.15-1.2 GB/s), so it
//! runs only where `Level::fast_subnormals`. AVX2 at batch 8 and more: a decode once into an
//! f32 panel (that in-lane one on AMD, the f16 one below elsewhere), a register-blocked
//! micro-kernel (`panel_avx2`). Where those do not apply (other batches, other sizes, x outside
//! the fold's exact range, Intel at batch 1-2), the f16 decode below.
//!
//! AVX-512: the same decode 32 weights at a time (`vpmovzxbw`, shift into the high byte, the
//! arithmetic shift and mask, two 16-lane `vcvtph2ps`), NaN codes caught by one compare into a
//! mask register; per-block partial sums scaled once per 128 inputs.
//!
//! AVX-512 BF16, when `x` is exactly bf16 (after the FP8 activation quantisation): every e4m3
//! value is exactly a normal bf16, so 32 codes decode by table: `vpmovsxbw` (bit 15 = the sign,
//! bits 0-6 = the magnitude code), two `vpermi2w` over a 128-entry bf16 table (magnitudes 0-63
//! and 64-127), a blend on bit 6 and the sign merged back: 6 ops per 32 weights instead of 10,
//! then one `vdpbf16ps` per batch row. The table's entry for the NaN codes is a bf16 NaN, so a
//! NaN weight poisons its row with no separate check. Batch 1-4 run two rows at a time.
//!
//! With VBMI too, batches of 1-4 decode 64 weights per step instead: two `vpermi2b` over
//! 128-byte tables give each weight's bf16 high byte (the sign merged back by one `vpternlog`)
//! and low byte, and `vpunpck[lh]bw` interleave them into two vectors of 32 words in the order
//! [`Bf16Layout::Unpack`](super::Bf16Layout) lays x out: 5 ops per 64 weights instead of 12,
//! about 1.5x the batch-1 speed per core (18.6 -> 28.5 GB/s in cache on Zen 4). At batch 8 the
//! second set of accumulators it needs costs more than the decode saves, so larger batches keep
//! the 16-bit tables. Batches of 8 and more take the panel kernel instead (`panel`: decode once
//! into bf16, reuse across tokens).

use std::ops::Range;

use super::{batched, with_batch, Level, OutPtr, E4M3, E8M0};

/// Prefetch distance of the AVX-512 kernels: FP8 rows are long (1-8 KiB, one byte per weight),
/// and 8 KiB ahead measured ~10% faster from DRAM than the 2 KiB the FP4 kernels use (which
/// lose at this distance); `dsv4 bench cpu`, alternating runs on Zen 4.
const PREFETCH: usize = 8192;

const BLOCK: usize = 128;

/// `y[m, rows.len()] = x[m, inp] · W[rows]ᵀ`.
pub fn gemv(level: Level, w: &[u8], scale: &[u8], out: usize, inp: usize, x: &[f32], rows: Range<usize>) -> Vec<f32> {
    assert!(inp > 0);
    assert!(w.len() >= out * inp, "FP8 weight has {} bytes, needs {}", w.len(), out * inp);
    let need = out.div_ceil(BLOCK) * inp.div_ceil(BLOCK);
    assert!(scale.len() >= need, "FP8 scale has {} bytes, needs {need}", scale.len());
    assert!(rows.end <= out);
    assert_eq!(x.len() % inp, 0);
    // AMX, batches of 6 and more: the tile path, on x exactly bf16 (what act quant leaves) or
    // on its three bf16 parts (unquantised x: wo_a)
    #[cfg(target_arch = "x86_64")]
    if level == Level::Amx && super::panel::applies_amx(x.len() / inp, inp, true) {
        // up to 16 tokens: the weights as the A tile (no transpose, no scale fold, any scale)
        if x.len() / inp <= super::amx_weights_a::MAX_TOKENS {
            if let Some(xb) = super::bf16_exact(x, inp, super::Bf16Layout::Natural) {
                return super::amx_weights_a::fp8(w, scale, inp, &[&xb], rows);
            }
            if let Some(p) = super::amx::split_bf16(x) {
                return super::amx_weights_a::fp8(w, scale, inp, &[&p[0], &p[1], &p[2]], rows);
            }
        }
        if let Some(xb) = super::bf16_exact(x, inp, super::Bf16Layout::Natural) {
            return super::panel::fp8_amx(w, scale, inp, Ok(&xb), rows);
        }
        if super::panel::fp8_folds(scale, out, inp) {
            if let Some(parts) = super::amx::split_bf16(x) {
                return super::panel::fp8_amx(w, scale, inp, Err(&parts), rows);
            }
        }
    }
    let level = level.kernel();
    let (m, n, row0) = (x.len() / inp, rows.len(), rows.start);
    // AVX-512 with BF16 and x exactly bf16 (what FP8 act quant leaves): table decode + bf16 dots
    #[cfg(target_arch = "x86_64")]
    if level == Level::Avx512 && Level::has_avx512_bf16() {
        // batches of 8 and more: decode once into a bf16 panel, outer-product micro-kernel
        if super::panel::applies(m, inp, true) {
            if let Some(xb) = super::bf16_exact(x, inp, super::Bf16Layout::Natural) {
                return super::panel::fp8(w, scale, inp, &xb, rows);
            }
        }
        // batches of 1-4 with VBMI: the 64-wide byte-table decode
        let wide = m <= 4 && Level::has_avx512_bf16_vbmi();
        let layout = if wide { super::Bf16Layout::Unpack } else { super::Bf16Layout::Natural };
        if let Some(xb) = super::bf16_exact(x, inp, layout) {
            return batched(m, rows, inp, |b, r, yp| unsafe {
                let xc = &xb[b.start * inp..b.end * inp];
                if wide {
                    with_batch!(b.len(), rows_avx512_bf16_vbmi(w, scale, inp, xc, r, yp, n, row0))
                } else {
                    with_batch!(b.len(), rows_avx512_bf16(w, scale, inp, xc, r, yp, n, row0))
                }
            });
        }
    }
    // AVX2, batches of 8 and more: decode once into an f32 panel, 3x4 register-blocked FMAs
    #[cfg(target_arch = "x86_64")]
    if level == Level::Avx2 {
        use super::panel_avx2::{applies_fp8, scale_fold_exact, Fp8Decode};
        let dec = Fp8Decode::for_this_cpu();
        if applies_fp8(m, inp, scale, &(0..out), x, dec) {
            return super::panel_avx2::fp8(w, scale, inp, x, rows, dec);
        }
        // batches of 1-2: the in-lane decode, the scale folded into x; it keeps e4m3 subnormals
        // as f32 subnormals, so only where the FMA takes them at full speed
        if dec == Fp8Decode::Lanes && super::fp8_lanes::applies(m, inp) && scale_fold_exact(inp, scale, &(0..out), x, dec.bias()) {
            return super::fp8_lanes::gemv(w, scale, inp, x, rows);
        }
    }
    batched(m, rows, inp, |b, r, yp| {
        let xc = &x[b.start * inp..b.end * inp];
        match level {
            #[cfg(target_arch = "x86_64")]
            Level::Avx512 => unsafe { with_batch!(b.len(), rows_avx512(w, scale, inp, xc, r, yp, n, row0)) },
            #[cfg(target_arch = "x86_64")]
            Level::Avx2 => unsafe { with_batch!(b.len(), rows_avx2(w, scale, inp, xc, r, yp, n, row0)) },
            _ => with_batch!(b.len(), rows_scalar(w, scale, inp, xc, r, yp, n, row0)),
        }
    })
}

#[allow(clippy::too_many_arguments)]
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
    let (e4m3, e8m0) = (&*E4M3, &*E8M0);
    let kbn = k.div_ceil(BLOCK);
    for n in r {
        let wr = &w[n * k..(n + 1) * k];
        let sr = &scale[(n / BLOCK) * kbn..][..kbn];
        let mut acc = [0.0f32; B];
        for (kb, wb) in wr.chunks(BLOCK).enumerate() {
            let mut p = [0.0f32; B];
            for (j, &c) in wb.iter().enumerate() {
                let wv = e4m3[c as usize];
                for (b, pb) in p.iter_mut().enumerate() {
                    *pb += x[b * k + kb * BLOCK + j] * wv;
                }
            }
            let s = e8m0[sr[kb] as usize];
            for b in 0..B {
                acc[b] += p[b] * s;
            }
        }
        for (b, a) in acc.iter().enumerate() {
            unsafe { y.write(b * ldy + n - row0, *a) };
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
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
    let (e4m3, e8m0) = (&*E4M3, &*E8M0);
    let kbn = k.div_ceil(BLOCK);
    let xp = x.as_ptr();
    let zero = _mm_setzero_si128();
    let m7f = _mm_set1_epi8(0x7F);
    let mbf = _mm_set1_epi16(0xBFFFu16 as i16);
    let two8 = _mm256_set1_ps(256.0);
    for n in r {
        let wr = &w[n * k..(n + 1) * k];
        let wp = wr.as_ptr();
        let sr = &scale[(n / BLOCK) * kbn..][..kbn];
        let mut acc = [_mm256_setzero_ps(); B];
        let mut tail = [0.0f32; B];
        let mut nan = _mm_setzero_si128();
        for kb in 0..kbn {
            let start = kb * BLOCK;
            let len = BLOCK.min(k - start);
            let code = sr[kb];
            let s = e8m0[code as usize];
            // B <= 2: two partial-sum chains per batch row, scaled once per block. B >= 3: the
            // scale (times 2^8) is folded into the decoded weights (exact: powers of two), keeping
            // B accumulators in registers; codes >= 247 (2^8·s would overflow) take the scalar
            // tail path for the whole block.
            let fold = B >= 3;
            let vec_end = if fold && code >= 247 { 0 } else { len / 16 * 16 };
            let fs = _mm256_set1_ps(s * 256.0);
            let mut p0 = [_mm256_setzero_ps(); B];
            let mut p1 = [_mm256_setzero_ps(); B];
            let mut i = 0;
            while i < vec_end {
                let bp = unsafe { wp.add(start + i) };
                if i % 64 == 0 {
                    _mm_prefetch::<_MM_HINT_T0>(bp.wrapping_add(super::PREFETCH_BYTES) as *const i8);
                }
                let bytes = unsafe { _mm_loadu_si128(bp as *const __m128i) };
                nan = _mm_or_si128(nan, _mm_cmpeq_epi8(_mm_and_si128(bytes, m7f), m7f));
                let lo = _mm_and_si128(_mm_srai_epi16::<1>(_mm_unpacklo_epi8(zero, bytes)), mbf);
                let hi = _mm_and_si128(_mm_srai_epi16::<1>(_mm_unpackhi_epi8(zero, bytes)), mbf);
                let wl = _mm256_cvtph_ps(lo);
                let wh = _mm256_cvtph_ps(hi);
                if fold {
                    let (wl, wh) = (_mm256_mul_ps(wl, fs), _mm256_mul_ps(wh, fs));
                    for b in 0..B {
                        let xb = unsafe { xp.add(b * k + start + i) };
                        acc[b] = _mm256_fmadd_ps(unsafe { _mm256_loadu_ps(xb) }, wl, acc[b]);
                        acc[b] = _mm256_fmadd_ps(unsafe { _mm256_loadu_ps(xb.add(8)) }, wh, acc[b]);
                    }
                } else {
                    for b in 0..B {
                        let xb = unsafe { xp.add(b * k + start + i) };
                        p0[b] = _mm256_fmadd_ps(unsafe { _mm256_loadu_ps(xb) }, wl, p0[b]);
                        p1[b] = _mm256_fmadd_ps(unsafe { _mm256_loadu_ps(xb.add(8)) }, wh, p1[b]);
                    }
                }
                i += 16;
            }
            if !fold {
                let sv = _mm256_set1_ps(s);
                for b in 0..B {
                    let p = _mm256_mul_ps(_mm256_add_ps(p0[b], p1[b]), two8);
                    acc[b] = _mm256_fmadd_ps(p, sv, acc[b]);
                }
            }
            if i < len {
                for b in 0..B {
                    let mut t = 0.0f32;
                    for j in start + i..start + len {
                        t += x[b * k + j] * e4m3[wr[j] as usize];
                    }
                    tail[b] += t * s;
                }
            }
        }
        let any_nan = _mm_movemask_epi8(nan) != 0;
        for b in 0..B {
            let v = if any_nan { f32::NAN } else { super::hsum256(acc[b]) + tail[b] };
            unsafe { y.write(b * ldy + n - row0, v) };
        }
    }
}

/// AVX-512 kernel: per batch row two partial-sum chains per 128-input block (four for batch 1,
/// alternating by 32-input group), scaled by `2^8 · s` at the block's end.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
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
    // 32 weights at `bp` against inputs `col..col + 32` of each batch row, into `p[b][0..2]`
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
    #[inline]
    unsafe fn group<const B: usize>(bp: *const u8, xp: *const f32, k: usize, col: usize, p: &mut [[__m512; 2]; B], nan: &mut __mmask32) {
        let m7f00 = _mm512_set1_epi16(0x7F00);
        let mbf = _mm512_set1_epi16(0xBFFFu16 as i16);
        let wd = _mm512_slli_epi16::<8>(_mm512_cvtepu8_epi16(unsafe { _mm256_loadu_si256(bp as *const __m256i) }));
        *nan |= _mm512_cmpeq_epi16_mask(_mm512_and_si512(wd, m7f00), m7f00);
        let h = _mm512_and_si512(_mm512_srai_epi16::<1>(wd), mbf);
        let wl = _mm512_cvtph_ps(_mm512_castsi512_si256(h));
        let wh = _mm512_cvtph_ps(_mm512_extracti64x4_epi64::<1>(h));
        for b in 0..B {
            let xb = unsafe { xp.add(b * k + col) };
            p[b][0] = _mm512_fmadd_ps(unsafe { _mm512_loadu_ps(xb) }, wl, p[b][0]);
            p[b][1] = _mm512_fmadd_ps(unsafe { _mm512_loadu_ps(xb.add(16)) }, wh, p[b][1]);
        }
    }
    let (e4m3, e8m0) = (&*E4M3, &*E8M0);
    let kbn = k.div_ceil(BLOCK);
    let xp = x.as_ptr();
    let two8 = _mm512_set1_ps(256.0);
    let mut n0 = r.start;
    // batch 2-4: two rows at a time, each x load feeding both (above 4 the 4·B accumulators
    // would not fit in the 32 registers)
    if (2..=4).contains(&B) {
        while n0 + 2 <= r.end {
            let rows = [n0, n0 + 1];
            let wp = rows.map(|n| unsafe { w.as_ptr().add(n * k) });
            let sr = rows.map(|n| &scale[(n / BLOCK) * kbn..][..kbn]);
            let mut acc = [[_mm512_setzero_ps(); B]; 2];
            let mut tail = [[0.0f32; B]; 2];
            let mut nan: [__mmask32; 2] = [0; 2];
            for kb in 0..kbn {
                let start = kb * BLOCK;
                let len = BLOCK.min(k - start);
                let mut p = [[[_mm512_setzero_ps(); 2]; B]; 2];
                for i in (0..len / 32 * 32).step_by(32) {
                    if i % 64 == 0 {
                        for q in wp {
                            _mm_prefetch::<_MM_HINT_T0>(q.wrapping_add(start + i + PREFETCH) as *const i8);
                        }
                    }
                    unsafe { group_rows::<B, 2>(wp.map(|q| q.add(start + i)), xp, k, start + i, &mut p, &mut nan) };
                }
                for j in 0..2 {
                    let s = e8m0[sr[j][kb] as usize];
                    let sv = _mm512_set1_ps(s);
                    for b in 0..B {
                        acc[j][b] = _mm512_fmadd_ps(_mm512_mul_ps(_mm512_add_ps(p[j][b][0], p[j][b][1]), two8), sv, acc[j][b]);
                    }
                    let wr = &w[rows[j] * k..(rows[j] + 1) * k];
                    for b in 0..B {
                        let t: f32 = (start + len / 32 * 32..start + len).map(|c| x[b * k + c] * e4m3[wr[c] as usize]).sum();
                        tail[j][b] += t * s;
                    }
                }
            }
            for j in 0..2 {
                for b in 0..B {
                    let v = if nan[j] != 0 { f32::NAN } else { _mm512_reduce_add_ps(acc[j][b]) + tail[j][b] };
                    unsafe { y.write(b * ldy + rows[j] - row0, v) };
                }
            }
            n0 += 2;
        }
    }
    for n in n0..r.end {
        let wr = &w[n * k..(n + 1) * k];
        let wp = wr.as_ptr();
        let sr = &scale[(n / BLOCK) * kbn..][..kbn];
        let mut acc = [_mm512_setzero_ps(); B];
        let mut tail = [0.0f32; B];
        let mut nan: __mmask32 = 0;
        for kb in 0..kbn {
            let start = kb * BLOCK;
            let len = BLOCK.min(k - start);
            let s = e8m0[sr[kb] as usize];
            let mut pa = [[_mm512_setzero_ps(); 2]; B];
            let mut pb = [[_mm512_setzero_ps(); 2]; 1]; // batch 1's odd groups
            let bp = unsafe { wp.add(start) };
            let vec_end = len / 32 * 32;
            if vec_end == BLOCK {
                _mm_prefetch::<_MM_HINT_T0>(bp.wrapping_add(PREFETCH) as *const i8);
                _mm_prefetch::<_MM_HINT_T0>(bp.wrapping_add(PREFETCH + 64) as *const i8);
                for g in 0..4 {
                    let gp = unsafe { bp.add(g * 32) };
                    if B == 1 && g % 2 == 1 {
                        unsafe { group::<1>(gp, xp, k, start + g * 32, &mut pb, &mut nan) };
                    } else {
                        unsafe { group::<B>(gp, xp, k, start + g * 32, &mut pa, &mut nan) };
                    }
                }
            } else {
                for i in (0..vec_end).step_by(32) {
                    unsafe { group::<B>(bp.add(i), xp, k, start + i, &mut pa, &mut nan) };
                }
            }
            let sv = _mm512_set1_ps(s);
            for b in 0..B {
                let mut p = _mm512_add_ps(pa[b][0], pa[b][1]);
                if B == 1 {
                    p = _mm512_add_ps(p, _mm512_add_ps(pb[0][0], pb[0][1]));
                }
                acc[b] = _mm512_fmadd_ps(_mm512_mul_ps(p, two8), sv, acc[b]);
            }
            if vec_end < len {
                for b in 0..B {
                    let mut t = 0.0f32;
                    for j in start + vec_end..start + len {
                        t += x[b * k + j] * e4m3[wr[j] as usize];
                    }
                    tail[b] += t * s;
                }
            }
        }
        // a NaN code anywhere in the row (tail codes decode to NaN through the table)
        let any_nan = nan != 0;
        for b in 0..B {
            let v = if any_nan { f32::NAN } else { _mm512_reduce_add_ps(acc[b]) + tail[b] };
            unsafe { y.write(b * ldy + n - row0, v) };
        }
    }
}

/// 32 weights of each of `R` rows (at `bp[j]`) against inputs `col..col + 32` of each batch row,
/// into `p[j][b][0..2]`; each x load feeds all `R` rows. NaN codes set `nan[j]`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
#[inline]
unsafe fn group_rows<const B: usize, const R: usize>(
    bp: [*const u8; R],
    xp: *const f32,
    k: usize,
    col: usize,
    p: &mut [[[std::arch::x86_64::__m512; 2]; B]; R],
    nan: &mut [std::arch::x86_64::__mmask32; R],
) {
    use std::arch::x86_64::*;
    let m7f00 = _mm512_set1_epi16(0x7F00);
    let mbf = _mm512_set1_epi16(0xBFFFu16 as i16);
    let mut wl = [_mm512_setzero_ps(); R];
    let mut wh = [_mm512_setzero_ps(); R];
    for j in 0..R {
        let wd = _mm512_slli_epi16::<8>(_mm512_cvtepu8_epi16(unsafe { _mm256_loadu_si256(bp[j] as *const __m256i) }));
        nan[j] |= _mm512_cmpeq_epi16_mask(_mm512_and_si512(wd, m7f00), m7f00);
        let h = _mm512_and_si512(_mm512_srai_epi16::<1>(wd), mbf);
        wl[j] = _mm512_cvtph_ps(_mm512_castsi512_si256(h));
        wh[j] = _mm512_cvtph_ps(_mm512_extracti64x4_epi64::<1>(h));
    }
    for b in 0..B {
        let xb = unsafe { xp.add(b * k + col) };
        let (x0, x1) = unsafe { (_mm512_loadu_ps(xb), _mm512_loadu_ps(xb.add(16))) };
        for j in 0..R {
            p[j][b][0] = _mm512_fmadd_ps(x0, wl[j], p[j][b][0]);
            p[j][b][1] = _mm512_fmadd_ps(x1, wh[j], p[j][b][1]);
        }
    }
}

/// The bf16 of every e4m3 magnitude code (0..128; 0x7F is NaN) as four 32-entry tables.
#[cfg(target_arch = "x86_64")]
static E4M3_BF16: std::sync::LazyLock<[[i16; 32]; 4]> =
    std::sync::LazyLock::new(|| std::array::from_fn(|t| std::array::from_fn(|i| (E4M3[t * 32 + i].to_bits() >> 16) as i16)));

/// The high and the low byte of [`E4M3_BF16`]'s 128 entries: the `vpermi2b` tables.
#[cfg(target_arch = "x86_64")]
static E4M3_BF16_BYTES: std::sync::LazyLock<[[u8; 128]; 2]> = std::sync::LazyLock::new(|| {
    let w = |m: usize| E4M3_BF16[m / 32][m % 32] as u16;
    [std::array::from_fn(|m| (w(m) >> 8) as u8), std::array::from_fn(|m| w(m) as u8)]
});

/// [`E4M3_BF16_BYTES`] for the panel kernel.
#[cfg(target_arch = "x86_64")]
pub(crate) fn e4m3_bf16_bytes() -> &'static [[u8; 128]; 2] {
    &E4M3_BF16_BYTES
}

/// AVX-512 BF16 kernel (see the module docs): `x` as bf16 words in natural order.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512bf16,avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn rows_avx512_bf16<const B: usize>(w: &[u8], scale: &[u8], k: usize, x: &[u16], r: Range<usize>, y: OutPtr, ldy: usize, row0: usize) {
    let mut n = r.start;
    if B <= 4 {
        while n + 2 <= r.end {
            unsafe { rows_bf16_r::<B, 2>(w, scale, k, x, [n, n + 1], y, ldy, row0) };
            n += 2;
        }
    }
    for n in n..r.end {
        unsafe { rows_bf16_r::<B, 1>(w, scale, k, x, [n], y, ldy, row0) };
    }
}

/// [`rows_avx512_bf16`] with the VBMI decode ([`rows_bf16_r64`]): batches of 1-4, each full
/// 64-input group of `x` in [`Bf16Layout::Unpack`](super::Bf16Layout) order.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512bf16,avx512vbmi,avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn rows_avx512_bf16_vbmi<const B: usize>(w: &[u8], scale: &[u8], k: usize, x: &[u16], r: Range<usize>, y: OutPtr, ldy: usize, row0: usize) {
    let mut n = r.start;
    while n + 2 <= r.end {
        unsafe { rows_bf16_r64::<B, 2>(w, scale, k, x, [n, n + 1], y, ldy, row0) };
        n += 2;
    }
    for n in n..r.end {
        unsafe { rows_bf16_r64::<B, 1>(w, scale, k, x, [n], y, ldy, row0) };
    }
}

/// [`rows_bf16_r`] 64 weights at a time by the VBMI byte-table decode, x in
/// [`Bf16Layout::Unpack`](super::Bf16Layout) order (a trailing part of a block in natural order
/// takes the 32-wide decode). Batches of 1-4: at 8 the extra accumulators cost more than the
/// cheaper decode saves (measured 3.1 -> 1.3 GB/s at batch 32).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512bf16,avx512vbmi,avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn rows_bf16_r64<const B: usize, const R: usize>(
    w: &[u8],
    scale: &[u8],
    k: usize,
    x: &[u16],
    rows: [usize; R],
    y: OutPtr,
    ldy: usize,
    row0: usize,
) {
    use std::arch::x86_64::*;
    let t = &*E4M3_BF16;
    let tl: [__m512i; 4] = std::array::from_fn(|i| unsafe { _mm512_loadu_si512(t[i].as_ptr() as *const __m512i) });
    let tb = &*E4M3_BF16_BYTES;
    let tbl = |t: usize, h: usize| unsafe { _mm512_loadu_si512(tb[t].as_ptr().add(64 * h) as *const __m512i) };
    let (hi0, hi1, lo0, lo1) = (tbl(0, 0), tbl(0, 1), tbl(1, 0), tbl(1, 1));
    let m80 = _mm512_set1_epi8(0x80u8 as i8);
    let xp = x.as_ptr();
    let wp = rows.map(|n| unsafe { w.as_ptr().add(n * k) });
    let mut acc = RowSums::<B, R>::new(w, scale, k, x, rows);
    for kb in 0..k.div_ceil(BLOCK) {
        let start = kb * BLOCK;
        let len = BLOCK.min(k - start);
        let mut p = [[_mm512_setzero_ps(); B]; R];
        let mut p2 = [[_mm512_setzero_ps(); B]; R];
        // 64 weights at a time: two byte-table lookups (the bf16's high byte, the sign merged
        // in, and its low byte; `vpermi2b` reads 7 index bits: the magnitude) interleaved into
        // words by `vpunpck[lh]bw`, against x in the matching order
        let full64 = len / 64 * 64;
        for g in (0..full64).step_by(64) {
            for q in wp {
                _mm_prefetch::<_MM_HINT_T0>(q.wrapping_add(start + g + PREFETCH) as *const i8);
            }
            let mut wl = [_mm512_setzero_si512(); R];
            let mut wh = [_mm512_setzero_si512(); R];
            for j in 0..R {
                let v = unsafe { _mm512_loadu_si512(wp[j].add(start + g) as *const __m512i) };
                let hb = _mm512_ternarylogic_epi32::<0xF8>(_mm512_permutex2var_epi8(hi0, v, hi1), v, m80); // | sign
                let lb = _mm512_permutex2var_epi8(lo0, v, lo1);
                wl[j] = _mm512_unpacklo_epi8(lb, hb);
                wh[j] = _mm512_unpackhi_epi8(lb, hb);
            }
            for b in 0..B {
                let xb = unsafe { xp.add(b * k + start + g) };
                let (xl, xh) = unsafe { (bh(_mm512_loadu_si512(xb as *const __m512i)), bh(_mm512_loadu_si512(xb.add(32) as *const __m512i))) };
                for j in 0..R {
                    p[j][b] = _mm512_dpbf16_ps(p[j][b], bh(wl[j]), xl);
                    p2[j][b] = _mm512_dpbf16_ps(p2[j][b], bh(wh[j]), xh);
                }
            }
        }
        // a trailing 32 (natural order): the 16-bit table decode
        for g in (full64..len / 32 * 32).step_by(32) {
            unsafe { step32::<B, R>(&tl, wp, start + g, xp, k, &mut p) };
        }
        for j in 0..R {
            for b in 0..B {
                p[j][b] = _mm512_add_ps(p[j][b], p2[j][b]);
            }
        }
        acc.close_block(&p, kb);
    }
    unsafe { acc.write(y, ldy, row0) };
}

/// What both BF16 row kernels keep per (weight row, batch row): the scaled block sums, and the
/// scalar sums of the columns past a block's last full 32.
#[cfg(target_arch = "x86_64")]
struct RowSums<'a, const B: usize, const R: usize> {
    rows: Rows<'a, R>,
    acc: [[std::arch::x86_64::__m512; B]; R],
    tail: [[f32; B]; R],
}

/// The weight rows and x a [`RowSums`] reads (apart from its sums, so that the cold tail path
/// can borrow them without pinning the vector sums in memory).
#[cfg(target_arch = "x86_64")]
struct Rows<'a, const R: usize> {
    w: &'a [u8],
    x: &'a [u16],
    k: usize,
    rows: [usize; R],
    /// Each row's e8m0 codes, one per 128-column block.
    sr: [&'a [u8]; R],
}

#[cfg(target_arch = "x86_64")]
impl<'a, const B: usize, const R: usize> RowSums<'a, B, R> {
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512bf16,avx2,fma")]
    #[inline]
    fn new(w: &'a [u8], scale: &'a [u8], k: usize, x: &'a [u16], rows: [usize; R]) -> Self {
        let kbn = k.div_ceil(BLOCK);
        let mut sr = [&scale[..0]; R];
        for j in 0..R {
            sr[j] = &scale[(rows[j] / BLOCK) * kbn..][..kbn];
        }
        RowSums { rows: Rows { w, x, k, rows, sr }, acc: [[std::arch::x86_64::_mm512_setzero_ps(); B]; R], tail: [[0.0; B]; R] }
    }

    /// Block `kb`'s vector partial sums `p` (its full 32s), times the block's scale, into the
    /// sums; its trailing `len % 32` columns in scalar.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512bf16,avx2,fma")]
    #[inline]
    fn close_block(&mut self, p: &[[std::arch::x86_64::__m512; B]; R], kb: usize) {
        use std::arch::x86_64::*;
        let r = &self.rows;
        for j in 0..R {
            let sv = _mm512_set1_ps(E8M0[r.sr[j][kb] as usize]);
            for b in 0..B {
                self.acc[j][b] = _mm512_fmadd_ps(p[j][b], sv, self.acc[j][b]);
            }
        }
        if !(r.k - kb * BLOCK).min(BLOCK).is_multiple_of(32) {
            let t = r.tail_columns::<B>(kb);
            for j in 0..R {
                for b in 0..B {
                    self.tail[j][b] += t[j][b];
                }
            }
        }
    }

    /// `y[b * ldy + row - row0]` for every batch row `b` and weight row.
    ///
    /// # Safety
    /// As [`OutPtr::write`].
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512bf16,avx2,fma")]
    #[inline]
    unsafe fn write(&self, y: OutPtr, ldy: usize, row0: usize) {
        use std::arch::x86_64::*;
        for j in 0..R {
            for b in 0..B {
                unsafe { y.write(b * ldy + self.rows.rows[j] - row0, _mm512_reduce_add_ps(self.acc[j][b]) + self.tail[j][b]) };
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
impl<const R: usize> Rows<'_, R> {
    /// The columns of block `kb` past its last full 32 (only when `k % 32 != 0`), in scalar,
    /// times the block's scale.
    #[cold]
    #[inline(never)]
    fn tail_columns<const B: usize>(&self, kb: usize) -> [[f32; B]; R] {
        let (e4m3, k) = (&*E4M3, self.k);
        let (start, len) = (kb * BLOCK, BLOCK.min(k - kb * BLOCK));
        std::array::from_fn(|j| {
            let s = E8M0[self.sr[j][kb] as usize];
            let wr = &self.w[self.rows[j] * k..(self.rows[j] + 1) * k];
            std::array::from_fn(|b| {
                let xv = |c: usize| f32::from_bits((self.x[b * k + c] as u32) << 16);
                (start + len / 32 * 32..start + len).map(|c| xv(c) * e4m3[wr[c] as usize]).sum::<f32>() * s
            })
        })
    }
}

/// One 32-weight step of the 16-bit table decode: columns `col..col + 32` of each of the `R`
/// weight rows at `wp` (e4m3) against the same columns of every batch row of x (natural order),
/// into `p[row][batch]`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512bf16")]
#[inline]
unsafe fn step32<const B: usize, const R: usize>(
    tl: &[std::arch::x86_64::__m512i; 4],
    wp: [*const u8; R],
    col: usize,
    xp: *const u16,
    k: usize,
    p: &mut [[std::arch::x86_64::__m512; B]; R],
) {
    use std::arch::x86_64::*;
    let (m40, m8000) = (_mm512_set1_epi16(0x40), _mm512_set1_epi16(0x8000u16 as i16));
    let mut wv = [_mm512_setzero_si512(); R];
    for j in 0..R {
        let v = _mm512_cvtepi8_epi16(unsafe { _mm256_loadu_si256(wp[j].add(col) as *const __m256i) });
        let lo = _mm512_permutex2var_epi16(tl[0], v, tl[1]);
        let hi = _mm512_permutex2var_epi16(tl[2], v, tl[3]);
        let mag = _mm512_mask_blend_epi16(_mm512_test_epi16_mask(v, m40), lo, hi);
        wv[j] = _mm512_ternarylogic_epi32::<0xF8>(mag, v, m8000); // mag | (v & 0x8000)
    }
    for b in 0..B {
        let xv = bh(unsafe { _mm512_loadu_si512(xp.add(b * k + col) as *const __m512i) });
        for j in 0..R {
            p[j][b] = _mm512_dpbf16_ps(p[j][b], bh(wv[j]), xv);
        }
    }
}

/// `R` rows of the BF16 kernel together, each x load feeding all of them.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512bf16,avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn rows_bf16_r<const B: usize, const R: usize>(
    w: &[u8],
    scale: &[u8],
    k: usize,
    x: &[u16],
    rows: [usize; R],
    y: OutPtr,
    ldy: usize,
    row0: usize,
) {
    use std::arch::x86_64::*;
    let t = &*E4M3_BF16;
    let tl: [__m512i; 4] = std::array::from_fn(|i| unsafe { _mm512_loadu_si512(t[i].as_ptr() as *const __m512i) });
    let xp = x.as_ptr();
    let wp = rows.map(|n| unsafe { w.as_ptr().add(n * k) });
    let mut acc = RowSums::<B, R>::new(w, scale, k, x, rows);
    for kb in 0..k.div_ceil(BLOCK) {
        let start = kb * BLOCK;
        let len = BLOCK.min(k - start);
        let mut p = [[_mm512_setzero_ps(); B]; R];
        for g in (0..len / 32 * 32).step_by(32) {
            if g % 64 == 0 {
                for q in wp {
                    _mm_prefetch::<_MM_HINT_T0>(q.wrapping_add(start + g + PREFETCH) as *const i8);
                }
            }
            unsafe { step32::<B, R>(&tl, wp, start + g, xp, k, &mut p) };
        }
        acc.close_block(&p, kb);
    }
    unsafe { acc.write(y, ldy, row0) };
}

/// 32 bf16 words as `vdpbf16ps` takes them (a plain function, always inlined: a closure in a
/// `target_feature` function was emitted out of line, a call per dot product).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn bh(v: std::arch::x86_64::__m512i) -> std::arch::x86_64::__m512bh {
    // SAFETY: same size, every bit pattern valid
    unsafe { std::mem::transmute(v) }
}
