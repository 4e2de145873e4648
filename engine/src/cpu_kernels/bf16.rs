//! BF16 GEMV (head, compressors, router): weights `[out, in]` as bf16 bits, read in place.
//!
//! AVX2: 16 weights (32 bytes) per step; `and 0xFFFF0000` gives the odd elements as f32 and
//! `<< 16` the even ones, so `x` is pre-arranged once per call into [even 8 | odd 8] groups.
//! AVX-512: the same on 32 weights (64 bytes) per step, `x` in [even 16 | odd 16] groups.
//! AVX2 at batch 8 and more: the same decode once into an f32 panel shared by all tokens
//! (`panel_avx2`).

use std::ops::Range;

use super::{batched, with_batch, Level, OutPtr};

/// `y[m, rows.len()] = x[m, inp] · W[rows]ᵀ`.
pub fn gemv(level: Level, w: &[u8], out: usize, inp: usize, x: &[f32], rows: Range<usize>) -> Vec<f32> {
    assert!(w.len() >= out * inp * 2, "BF16 weight has {} bytes, needs {}", w.len(), out * inp * 2);
    assert!(rows.end <= out);
    assert!(inp > 0);
    assert_eq!(x.len() % inp, 0);
    // AMX, batches of 6 and more: the tile path, on x exactly bf16 or on its three bf16 parts
    #[cfg(target_arch = "x86_64")]
    if level == Level::Amx && super::panel::applies_amx_bf16(x.len() / inp, inp) {
        // up to 16 tokens, whole 64-input groups: the weights as the A tile, loaded as they are
        if x.len() / inp <= super::amx_weights_a::MAX_TOKENS && inp.is_multiple_of(64) {
            if let Some(xb) = super::bf16_exact(x, inp, super::Bf16Layout::Natural) {
                return super::amx_weights_a::bf16(w, inp, &[&xb], rows);
            }
            if let Some(p) = super::amx::split_bf16(x) {
                return super::amx_weights_a::bf16(w, inp, &[&p[0], &p[1], &p[2]], rows);
            }
        }
        if let Some(xb) = super::bf16_exact(x, inp, super::Bf16Layout::Natural) {
            return super::panel::bf16_amx(w, inp, Ok(&xb), rows);
        }
        if let Some(parts) = super::amx::split_bf16(x) {
            return super::panel::bf16_amx(w, inp, Err(&parts), rows);
        }
    }
    let level = level.kernel();
    let (m, n, row0) = (x.len() / inp, rows.len(), rows.start);
    match level {
        #[cfg(target_arch = "x86_64")]
        Level::Avx512 => {
            let xs = deinterleave(x, inp, 32);
            batched(m, rows, inp * 2, |b, r, yp| unsafe {
                with_batch!(b.len(), rows_avx512(w, inp, &xs[b.start * inp..b.end * inp], r, yp, n, row0))
            })
        }
        #[cfg(target_arch = "x86_64")]
        Level::Avx2 if super::panel_avx2::applies_bf16(m, inp) => super::panel_avx2::bf16(w, inp, x, rows),
        #[cfg(target_arch = "x86_64")]
        Level::Avx2 => {
            let xs = deinterleave(x, inp, 16);
            batched(m, rows, inp * 2, |b, r, yp| unsafe {
                with_batch!(b.len(), rows_avx2(w, inp, &xs[b.start * inp..b.end * inp], r, yp, n, row0))
            })
        }
        _ => batched(m, rows, inp * 2, |b, r, yp| with_batch!(b.len(), rows_scalar(w, inp, &x[b.start * inp..b.end * inp], r, yp, n, row0))),
    }
}

/// Each full group of `n` inputs (`n` even) as [x0 x2 .. | x1 x3 ..]; the tail as is.
pub(crate) fn deinterleave(x: &[f32], k: usize, n: usize) -> Vec<f32> {
    let mut o = x.to_vec();
    for (row, orow) in x.chunks(k).zip(o.chunks_mut(k)) {
        for (g, og) in row.chunks_exact(n).zip(orow.chunks_exact_mut(n)) {
            for j in 0..n / 2 {
                og[j] = g[2 * j];
                og[n / 2 + j] = g[2 * j + 1];
            }
        }
    }
    o
}

#[inline(always)]
fn bf16_at(w: &[u8], i: usize) -> f32 {
    f32::from_bits((u16::from_le_bytes([w[2 * i], w[2 * i + 1]]) as u32) << 16)
}

fn rows_scalar<const B: usize>(w: &[u8], k: usize, x: &[f32], r: Range<usize>, y: OutPtr, ldy: usize, row0: usize) {
    for n in r {
        let wr = &w[n * k * 2..(n + 1) * k * 2];
        let mut acc = [0.0f32; B];
        for blk in (0..k).step_by(128) {
            let mut p = [0.0f32; B];
            for i in blk..(blk + 128).min(k) {
                let wv = bf16_at(wr, i);
                for (b, pb) in p.iter_mut().enumerate() {
                    *pb += x[b * k + i] * wv;
                }
            }
            for b in 0..B {
                acc[b] += p[b];
            }
        }
        for (b, a) in acc.iter().enumerate() {
            unsafe { y.write(b * ldy + n - row0, *a) };
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn rows_avx2<const B: usize>(w: &[u8], k: usize, x: &[f32], r: Range<usize>, y: OutPtr, ldy: usize, row0: usize) {
    use std::arch::x86_64::*;
    let hi_mask = _mm256_set1_epi32(0xFFFF_0000u32 as i32);
    let full = k / 16 * 16;
    let xp = x.as_ptr();
    for n in r {
        let wr = &w[n * k * 2..(n + 1) * k * 2];
        let wp = wr.as_ptr();
        let mut a0 = [_mm256_setzero_ps(); B];
        let mut a1 = [_mm256_setzero_ps(); B];
        let mut i = 0;
        while i < full {
            let gp = unsafe { wp.add(2 * i) };
            if i % 32 == 0 {
                _mm_prefetch::<_MM_HINT_T0>(gp.wrapping_add(super::PREFETCH_BYTES) as *const i8);
            }
            let v = unsafe { _mm256_loadu_si256(gp as *const __m256i) };
            let odd = _mm256_castsi256_ps(_mm256_and_si256(v, hi_mask));
            let even = _mm256_castsi256_ps(_mm256_slli_epi32::<16>(v));
            for b in 0..B {
                let xe = unsafe { _mm256_loadu_ps(xp.add(b * k + i)) };
                let xo = unsafe { _mm256_loadu_ps(xp.add(b * k + i + 8)) };
                a0[b] = _mm256_fmadd_ps(xe, even, a0[b]);
                a1[b] = _mm256_fmadd_ps(xo, odd, a1[b]);
            }
            i += 16;
        }
        for b in 0..B {
            let mut s = super::hsum256(_mm256_add_ps(a0[b], a1[b]));
            for j in full..k {
                s += x[b * k + j] * bf16_at(wr, j);
            }
            unsafe { y.write(b * ldy + n - row0, s) };
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma")]
unsafe fn rows_avx512<const B: usize>(w: &[u8], k: usize, x: &[f32], r: Range<usize>, y: OutPtr, ldy: usize, row0: usize) {
    use std::arch::x86_64::*;
    let hi_mask = _mm512_set1_epi32(0xFFFF_0000u32 as i32);
    let full = k / 32 * 32;
    let xp = x.as_ptr();
    for n in r {
        let wr = &w[n * k * 2..(n + 1) * k * 2];
        let wp = wr.as_ptr();
        let mut a0 = [_mm512_setzero_ps(); B];
        let mut a1 = [_mm512_setzero_ps(); B];
        let mut i = 0;
        while i < full {
            let gp = unsafe { wp.add(2 * i) };
            _mm_prefetch::<_MM_HINT_T0>(gp.wrapping_add(super::PREFETCH_BYTES) as *const i8);
            let v = unsafe { _mm512_loadu_si512(gp as *const __m512i) };
            let odd = _mm512_castsi512_ps(_mm512_and_si512(v, hi_mask));
            let even = _mm512_castsi512_ps(_mm512_slli_epi32::<16>(v));
            for b in 0..B {
                let xe = unsafe { _mm512_loadu_ps(xp.add(b * k + i)) };
                let xo = unsafe { _mm512_loadu_ps(xp.add(b * k + i + 16)) };
                a0[b] = _mm512_fmadd_ps(xe, even, a0[b]);
                a1[b] = _mm512_fmadd_ps(xo, odd, a1[b]);
            }
            i += 32;
        }
        for b in 0..B {
            let mut s = _mm512_reduce_add_ps(_mm512_add_ps(a0[b], a1[b]));
            for j in full..k {
                s += x[b * k + j] * bf16_at(wr, j);
            }
            unsafe { y.write(b * ldy + n - row0, s) };
        }
    }
}
