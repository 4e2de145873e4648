//! This machine's two rooflines, measured in the same run as the kernels they bound:
//!
//! - read bandwidth: a STREAM-like read-only sum over a buffer far larger than the last-level
//!   cache, split into one contiguous part per thread (what a weight-streaming GEMV does), so the
//!   figure is what DRAM can feed, not what a cache can;
//! - FP32 FMA rate: independent multiply-add chains per thread, enough of them to hide the FMA
//!   latency, so the figure is the issue rate of the vector units the compiler targets.
//!
//! Both are medians of several passes after one warm-up pass: the host is shared and noisy.

use std::hint::black_box;
use std::time::Instant;

use dsv4_reference::checkpoint::Bytes;
use rayon::prelude::*;

/// Median of `v` (the upper middle for an even count); NaN for an empty list.
pub fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// The default buffer for [`read_bandwidth`]: 1 GiB, four times the largest L3 seen on the
/// team's hosts (260 MiB), so no pass is served from cache.
pub const DEFAULT_BANDWIDTH_BYTES: usize = 1 << 30;

/// A buffer of `bytes` (rounded down to 8) with non-zero contents, so the pages are really
/// mapped (a zeroed allocation could share the zero page and read from cache).
/// In its own page-aligned huge-page mapping, like the benches' weights ([`Bytes::anon`]), so the
/// ceiling and the kernels read the same kind of memory.
pub fn bandwidth_buffer(bytes: usize) -> Bytes {
    Bytes::anon(bytes / 8 * 8, |v| {
        for (i, c) in v.chunks_exact_mut(8).enumerate() {
            c.copy_from_slice(&(i as u64 * 0x9E37_79B9).to_le_bytes());
        }
    })
}

/// `buf` as words (it is page-aligned, so nothing is left over).
pub fn words(buf: &[u8]) -> &[u64] {
    // SAFETY: every bit pattern is a valid u64
    let (head, mid, _) = unsafe { buf.align_to::<u64>() };
    assert!(head.is_empty(), "the bandwidth buffer is not 8-byte aligned");
    mid
}

/// GB/s (1e9 bytes) of a read-only sum over `buf` split into `threads` contiguous parts: one
/// warm-up pass, then the median of `passes` passes.
pub fn read_bandwidth_over(buf: &[u64], threads: usize, passes: usize) -> f64 {
    let threads = threads.max(1);
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("a rayon pool");
    let per = buf.len().div_ceil(threads).max(8);
    let pass = || {
        pool.install(|| {
            buf.par_chunks(per)
                .map(|c| {
                    // 8 independent accumulators: the adds never wait on each other.
                    let mut a = [0u64; 8];
                    for ch in c.chunks_exact(8) {
                        for i in 0..8 {
                            a[i] = a[i].wrapping_add(ch[i]);
                        }
                    }
                    a.iter().fold(0u64, |x, y| x.wrapping_add(*y))
                })
                .reduce(|| 0, |a, b| a.wrapping_add(b))
        })
    };
    black_box(pass());
    let runs = (0..passes.max(1))
        .map(|_| {
            let t = Instant::now();
            black_box(pass());
            (buf.len() * 8) as f64 / t.elapsed().as_secs_f64() / 1e9
        })
        .collect();
    median(runs)
}

/// GB/s of the read-only sum over [`DEFAULT_BANDWIDTH_BYTES`] on `threads` threads (median of 9).
pub fn read_bandwidth(threads: usize) -> f64 {
    read_bandwidth_sized(threads, DEFAULT_BANDWIDTH_BYTES, 9)
}

/// [`read_bandwidth`] over a buffer of `bytes` with `passes` timed passes (quick runs and tests
/// use a smaller buffer; below the LLC size the figure is cache bandwidth, not DRAM).
pub fn read_bandwidth_sized(threads: usize, bytes: usize, passes: usize) -> f64 {
    let buf = bandwidth_buffer(bytes.max(64));
    read_bandwidth_over(words(&buf), threads, passes)
}

/// Independent FMA chains per thread: enough vector registers in flight to hide a 4-cycle FMA
/// latency at 2 FMAs per cycle, few enough to stay in registers (16 ymm on AVX2, 32 zmm on
/// AVX-512); the C peak probe in the CPU anchors notes used 12.
const CHAINS: usize = 10;

/// One thread's FMA loop: `CHAINS` independent vector accumulators for `iters` rounds, at the
/// widest FMA the CPU has (scalar `mul_add` elsewhere). Returns `(checksum, FLOPs)`.
#[inline(never)]
fn fma_chains(iters: usize, seed: f32) -> (f32, f64) {
    #[cfg(target_arch = "x86_64")]
    {
        if is_x86_feature_detected!("avx512f") {
            // SAFETY: the feature was just detected.
            return (unsafe { x86::fma_avx512(iters, seed) }, (2 * CHAINS * 16 * iters) as f64);
        }
        if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            // SAFETY: the features were just detected.
            return (unsafe { x86::fma_avx2(iters, seed) }, (2 * CHAINS * 8 * iters) as f64);
        }
    }
    let mut acc = [seed; CHAINS];
    let (m, a) = (black_box(0.999_999_f32), black_box(1e-7_f32));
    for _ in 0..iters {
        for v in acc.iter_mut() {
            *v = v.mul_add(m, a);
        }
    }
    (acc.iter().sum(), (2 * CHAINS * iters) as f64)
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;
    use std::hint::black_box;

    use super::CHAINS;

    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn fma_avx2(iters: usize, seed: f32) -> f32 {
        let m = _mm256_set1_ps(black_box(0.999_999));
        let a = _mm256_set1_ps(black_box(1e-7));
        let mut acc = [_mm256_set1_ps(seed); CHAINS];
        for _ in 0..iters {
            for v in acc.iter_mut() {
                *v = _mm256_fmadd_ps(*v, m, a);
            }
        }
        let mut out = [0f32; 8];
        let s = acc.iter().fold(_mm256_setzero_ps(), |x, y| _mm256_add_ps(x, *y));
        // SAFETY: `out` holds 8 floats.
        unsafe { _mm256_storeu_ps(out.as_mut_ptr(), s) };
        out.iter().sum()
    }

    // The int8 loops feed each chain's accumulator back in as the i8 operand, so no product is
    // loop-invariant (the values wrap and saturate: only the timing matters).
    #[target_feature(enable = "avx2")]
    pub unsafe fn dot_avx2(iters: usize, seed: i32) -> i32 {
        let u = _mm256_set1_epi8(black_box(3));
        let ones = _mm256_set1_epi16(1);
        let mut acc = [_mm256_set1_epi32(seed); CHAINS];
        for _ in 0..iters {
            for v in acc.iter_mut() {
                *v = _mm256_add_epi32(*v, _mm256_madd_epi16(_mm256_maddubs_epi16(u, *v), ones));
            }
        }
        let s = acc.iter().fold(_mm256_setzero_si256(), |x, y| _mm256_xor_si256(x, *y));
        _mm256_extract_epi32::<0>(s) ^ _mm256_extract_epi32::<5>(s)
    }

    #[target_feature(enable = "avx512f,avx512bw")]
    pub unsafe fn dot_avx512bw(iters: usize, seed: i32) -> i32 {
        let u = _mm512_set1_epi8(black_box(3));
        let ones = _mm512_set1_epi16(1);
        let mut acc = [_mm512_set1_epi32(seed); CHAINS];
        for _ in 0..iters {
            for v in acc.iter_mut() {
                *v = _mm512_add_epi32(*v, _mm512_madd_epi16(_mm512_maddubs_epi16(u, *v), ones));
            }
        }
        _mm512_reduce_add_epi32(acc.iter().fold(_mm512_setzero_si512(), |x, y| _mm512_xor_si512(x, *y)))
    }

    #[target_feature(enable = "avx512f,avx512vnni")]
    pub unsafe fn dot_vnni512(iters: usize, seed: i32) -> i32 {
        let u = _mm512_set1_epi8(black_box(3));
        let mut acc = [_mm512_set1_epi32(seed); CHAINS];
        for _ in 0..iters {
            for v in acc.iter_mut() {
                *v = _mm512_dpbusd_epi32(*v, u, *v);
            }
        }
        _mm512_reduce_add_epi32(acc.iter().fold(_mm512_setzero_si512(), |x, y| _mm512_xor_si512(x, *y)))
    }

    #[target_feature(enable = "avx512f")]
    pub unsafe fn fma_avx512(iters: usize, seed: f32) -> f32 {
        let m = _mm512_set1_ps(black_box(0.999_999));
        let a = _mm512_set1_ps(black_box(1e-7));
        let mut acc = [_mm512_set1_ps(seed); CHAINS];
        for _ in 0..iters {
            for v in acc.iter_mut() {
                *v = _mm512_fmadd_ps(*v, m, a);
            }
        }
        _mm512_reduce_add_ps(acc.iter().fold(_mm512_setzero_ps(), |x, y| _mm512_add_ps(x, *y)))
    }
}

/// GFLOP/s of FP32 fused multiply-adds on `threads` threads (every thread runs independent
/// chains), median of `passes` passes of `iters` rounds each after a warm-up pass.
///
/// The loop uses AVX-512 or AVX2+FMA intrinsics when detected at run time (no `target-cpu`
/// flag needed); without either, scalar `mul_add` (possibly a library call: low, honestly so).
/// It is reported beside the kernels' effective GFLOP/s as the compute roofline.
pub fn fma_gflops_with(threads: usize, iters: usize, passes: usize) -> f64 {
    pool_rate(threads, passes, |t| fma_chains(iters, 1.0 + t as f32))
}

/// Billions of `work`'s units per second: `work(t)` runs once on each of `threads` threads per
/// pass and returns a checksum (kept from the optimiser) and its units; the median of `passes`
/// timed passes after a warm-up pass, 0 when the warm-up counts no units.
fn pool_rate<T: Send>(threads: usize, passes: usize, work: impl Fn(usize) -> (T, f64) + Sync) -> f64 {
    let threads = threads.max(1);
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("a rayon pool");
    let pass = || {
        pool.install(|| {
            (0..threads)
                .into_par_iter()
                .map(|t| {
                    let (sum, units) = work(t);
                    black_box(sum);
                    units
                })
                .sum::<f64>()
        })
    };
    if pass() == 0.0 {
        return 0.0;
    }
    let runs = (0..passes.max(1))
        .map(|_| {
            let t = Instant::now();
            let units = pass();
            units / t.elapsed().as_secs_f64() / 1e9
        })
        .collect();
    median(runs)
}

/// GOPS (2 per 8-bit multiply-add) of the int8 dot products a CPU kernel can issue without
/// VNNI: `vpmaddubsw` (u8 x i8 -> pairs summed to i16), `vpmaddwd` by ones (-> i32) and `vpaddd`,
/// `CHAINS` independent chains per thread (with AVX-512 VNNI: `vpdpbusd`, which fuses the three).
/// Median of `passes` passes of `iters` rounds after a warm-up pass; 0 without AVX2. It is the
/// ceiling of the int8 FP4 path and of the peers that quantise activations to int8 (ggml Q4/Q8,
/// onnxruntime's accuracy level 4, candle's k-quants) at the batches where they are compute-bound.
pub fn int8_gops_with(threads: usize, iters: usize, passes: usize) -> f64 {
    pool_rate(threads, passes, |t| int8_chains(iters, t as i32))
}

/// [`int8_gops_with`] at 10M rounds, median of 7.
pub fn int8_gops(threads: usize) -> f64 {
    int8_gops_with(threads, 10_000_000, 7)
}

/// One thread's int8 loop at the widest integer dot the CPU has: `(checksum, ops)`; no ops
/// without AVX2.
#[inline(never)]
fn int8_chains(iters: usize, seed: i32) -> (i32, f64) {
    #[cfg(target_arch = "x86_64")]
    {
        if is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512vnni") {
            // SAFETY: the features were just detected.
            return (unsafe { x86::dot_vnni512(iters, seed) }, (2 * CHAINS * 64 * iters) as f64);
        }
        if is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512bw") {
            // SAFETY: the features were just detected.
            return (unsafe { x86::dot_avx512bw(iters, seed) }, (2 * CHAINS * 64 * iters) as f64);
        }
        if is_x86_feature_detected!("avx2") {
            // SAFETY: the feature was just detected.
            return (unsafe { x86::dot_avx2(iters, seed) }, (2 * CHAINS * 32 * iters) as f64);
        }
    }
    let _ = (iters, seed);
    (0, 0.0)
}

/// [`fma_gflops_with`] at 10M rounds (1.6-3.2 GFLOP per thread, ~15 ms per pass on an AVX2 core;
/// shorter passes measure the thread wake-up): median of 7.
pub fn fma_gflops(threads: usize) -> f64 {
    fma_gflops_with(threads, 10_000_000, 7)
}
