//! FP8 and BF16 on AMX with the weights as the A tile (batches of 6-16): an A tile row is 32
//! bf16 of one weight row. BF16 weights are then read by the tile loads straight from the
//! matrix (16 rows, `2k` bytes apart), with nothing decoded. For FP8 the decode is the FP8
//! kernel's VBMI byte-table decode (`vpermi2b` x2, a
//! `vpternlog` for the sign, `vpunpck[lh]bw`: 5 ops per 64 weights) stored as it comes, with no
//! transpose and no scale fold. x is laid out once per call as B tiles (VNNI pairs x 16 tokens)
//! in the order those words come out. A 128x128 block's e8m0 scale is one number for a whole
//! 32-row panel and 128 inputs, so per block the tiles start from zero, and their sums are
//! scaled into f32 accumulators after it (as the AVX-512 kernels scale per-block partial sums):
//! any code, NaN included, with no fallback.
//!
//! Per 32-row panel and 128-input block: decode 32 rows x 128 inputs into an 8 KiB A buffer,
//! then 4 steps of two A tiles (rows 0-15, 16-31) against one B tile (16 tokens) per x part
//! (x exactly bf16: one part; unquantised x: its three exact bf16 parts, `amx::split_bf16`),
//! each `tdpbf16ps` 16 rows x 16 tokens x 32 inputs.

use std::arch::asm;
use std::arch::x86_64::*;
use std::ops::Range;

use super::amx::Tiles;
use super::OutPtr;

/// Largest batch this path takes: one B tile of 16 tokens. `batch_cache`, Xeon, 2 threads,
/// two alternating runs (GB/s, the transposed-weights path -> this): 2048x4096 b6 13.7-13.8 ->
/// 20.3-22.5, b8 12.6-13.5 -> 19.9-20.3, b16 14.6-15.2 -> 19.9-20.5; 4096x1024 b8 10.6-11.1 ->
/// 17.4-17.9, b16 11.8-12.8 -> 12.9-13.7; 1024x8192 b8 14.2-15.7 -> 23.5-24.1, b16 10.7-11.4 ->
/// 14.1-14.2. With two token groups (b32) it measured 10-20% faster at 4096 and 8192 inputs
/// but 20% slower at 1024, so larger batches keep the other path. BF16 (`dsv4 bench cpu --quick`,
/// the head from DRAM, two alternating runs): b8 20.7-21.5 -> 26.2-27.3, b16 22.2-23.2 ->
/// 27.3-28.0.
pub(crate) const MAX_TOKENS: usize = 16;

/// Inputs per scale block (and per decode).
const BLOCK: usize = 128;

/// The input that word `w` (0..32) of chunk `c` (0: `vpunpcklbw`, 1: `vpunpckhbw`) of a 64-input
/// group holds in the FP8 decode: per 128-bit lane `L` (16 inputs), words `8L..8L+8` are inputs
/// `16L + 8c ..`. (BF16: input `32c + w`.)
fn input_of(c: usize, w: usize) -> usize {
    16 * (w / 8) + 8 * c + w % 8
}

/// The word order of an A tile row: the FP8 decode's, or the weights' own (BF16).
#[derive(Clone, Copy, PartialEq)]
enum Order {
    Fp8,
    Natural,
}

/// x as B tiles: per part and step of 32 inputs (64-input group `s / 2`, chunk `s % 2`), 16
/// rows (input pairs) x 16 tokens of dwords `x[i] | x[i + 1] << 16` (zero past the last token).
struct BTiles {
    t: Vec<u32>,
    steps: usize,
}

impl BTiles {
    fn new(parts: &[&[u16]], k: usize, order: Order) -> BTiles {
        let m = parts[0].len() / k;
        let steps = k / 32;
        let mut t = vec![0u32; parts.len() * steps * 256];
        // SAFETY: AVX-512 F (the AMX level has it); every read is inside a token row of `k`
        // bf16 (64-input groups: `k` is a multiple of 128) and every write inside `t`
        unsafe { fill(&mut t, parts, k, m, steps, order) };
        BTiles { t, steps }
    }

    fn at(&self, part: usize, step: usize) -> *const u32 {
        self.t[(part * self.steps + step) * 256..].as_ptr()
    }
}

/// [`BTiles`]' contents: per 64-input group, each token's 32 input pairs (two
/// vectors of dwords) permuted into the two chunks' orders, then a 16 x 16 dword transpose makes
/// each chunk's tile (pair-major, tokens along a row).
#[target_feature(enable = "avx512f")]
unsafe fn fill(t: &mut [u32], parts: &[&[u16]], k: usize, m: usize, steps: usize, order: Order) {
    // chunk c's pair r: FP8 pair `8 (r / 4) + 4c + r % 4` of the group (`input_of` / 2), BF16
    // pair `16c + r`
    let idx: [__m512i; 2] = std::array::from_fn(|c| {
        let v: [u32; 16] = std::array::from_fn(|r| if order == Order::Fp8 { (input_of(c, 2 * r) / 2) as u32 } else { (16 * c + r) as u32 });
        unsafe { _mm512_loadu_si512(v.as_ptr() as *const __m512i) }
    });
    for (p, xp) in parts.iter().enumerate() {
        for g in 0..k / 64 {
            let mut ch = [[_mm512_setzero_si512(); 16]; 2];
            for tok in 0..m {
                let q = unsafe { xp.as_ptr().add(tok * k + 64 * g) } as *const __m512i;
                let (lo, hi) = unsafe { (_mm512_loadu_si512(q), _mm512_loadu_si512(q.add(1))) };
                for (c, chc) in ch.iter_mut().enumerate() {
                    chc[tok] = _mm512_permutex2var_epi32(lo, idx[c], hi);
                }
            }
            for (c, chc) in ch.iter_mut().enumerate() {
                unsafe { super::panel::transpose16(chc) };
                let base = (p * steps + 2 * g + c) * 256;
                for (r, v) in chc.iter().enumerate() {
                    unsafe { _mm512_storeu_si512(t.as_mut_ptr().add(base + 16 * r) as *mut __m512i, *v) };
                }
            }
        }
    }
}

/// `y[m, rows.len()]` for `x` as `parts` (1 or 3 arrays of `m` bf16 token rows whose sum is x),
/// `m <= MAX_TOKENS`, `k` a multiple of 128.
pub(crate) fn fp8(w: &[u8], scale: &[u8], k: usize, parts: &[&[u16]], rows: Range<usize>) -> Vec<f32> {
    let m = parts[0].len() / k;
    debug_assert!((1..=MAX_TOKENS).contains(&m) && k.is_multiple_of(BLOCK) && parts.iter().all(|p| p.len() == m * k));
    let bt = BTiles::new(parts, k, Order::Fp8);
    super::panel::run(m, rows, k, |r, y, ldy, row0| unsafe { share(w, scale, k, m, &bt, parts.len(), r, y, ldy, row0) })
}

/// BF16 (`w` as bf16 bytes, rows of `k`): `y[m, rows.len()]` for `x` as `parts`, `m <=
/// MAX_TOKENS`, `k` a multiple of 64.
pub(crate) fn bf16(w: &[u8], k: usize, parts: &[&[u16]], rows: Range<usize>) -> Vec<f32> {
    let m = parts[0].len() / k;
    debug_assert!((1..=MAX_TOKENS).contains(&m) && k.is_multiple_of(64) && parts.iter().all(|p| p.len() == m * k));
    let bt = BTiles::new(parts, k, Order::Natural);
    super::panel::run(m, rows, 2 * k, |r, y, ldy, row0| unsafe { share_bf16(w, k, m, &bt, parts.len(), r, y, ldy, row0) })
}

/// How far ahead along each of a panel's 32 rows [`share_bf16`] prefetches (into L2): more rows
/// side by side than the hardware prefetchers follow.
const AHEAD: usize = 1024;

/// One thread's BF16 rows: whole panels load their A tiles from the matrix, a partial one (rows
/// past the range are not read) from a copy of its rows.
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
unsafe fn share_bf16(w: &[u8], k: usize, m: usize, bt: &BTiles, np: usize, r: Range<usize>, y: OutPtr, ldy: usize, row0: usize) {
    let rb = 2 * k;
    let mut a = Buf([[0u8; 64]; 4 * 32]);
    let mut c = [[0f32; 256]; 4];
    let tiles = unsafe { Tiles::load() };
    for (p0, valid) in super::panel::panels(r.clone()) {
        let base = unsafe { w.as_ptr().add(p0 * rb) };
        tiles.zero();
        for step in 0..k / 32 {
            let off = 64 * step;
            let (ap, stride) = if valid == u32::MAX {
                for i in 0..32 {
                    // a prefetch never faults
                    _mm_prefetch::<_MM_HINT_T1>(base.wrapping_add(i * rb + off + AHEAD) as *const i8);
                }
                (base.wrapping_add(off), rb)
            } else {
                for i in 0..32 {
                    a.0[i] = if valid >> i & 1 == 1 { unsafe { *(base.add(i * rb + off) as *const [u8; 64]) } } else { [0; 64] };
                }
                (a.0[0].as_ptr(), 64)
            };
            for p in 0..np {
                unsafe { tiles.weight_step(ap, stride, bt.at(p, step)) };
            }
        }
        tiles.store(&mut c);
        for i in (0..32).filter(|i| valid >> i & 1 == 1) {
            for (tok, &val) in c[i / 16][16 * (i % 16)..][..16].iter().enumerate().take(m) {
                // SAFETY: the row is in the caller's range and the token below m: inside y
                unsafe { *y.0.add(tok * ldy + p0 + i - row0) = val };
            }
        }
    }
    drop(tiles);
}

/// One thread's rows.
#[target_feature(enable = "avx512f,avx512bw,avx512vbmi")]
#[allow(clippy::too_many_arguments)]
unsafe fn share(w: &[u8], scale: &[u8], k: usize, m: usize, bt: &BTiles, np: usize, r: Range<usize>, y: OutPtr, ldy: usize, row0: usize) {
    let tb = super::fp8::e4m3_bf16_bytes();
    let tbl = |t: usize, h: usize| unsafe { _mm512_loadu_si512(tb[t].as_ptr().add(64 * h) as *const __m512i) };
    let (hi0, hi1, lo0, lo1) = (tbl(0, 0), tbl(0, 1), tbl(1, 0), tbl(1, 1));
    let m80 = _mm512_set1_epi8(0x80u8 as i8);
    let kbn = k / BLOCK;
    // A: [step 0..4][32 rows][64 bytes]
    let mut a = Buf([[0u8; 64]; 4 * 32]);
    let mut c = [[0f32; 256]; 4];
    let tiles = unsafe { Tiles::load() };
    for (p0, valid) in super::panel::panels(r.clone()) {
        // [row][16 tokens]
        let mut acc = [_mm512_setzero_ps(); 32];
        for kb in 0..kbn {
            for i in 0..32 {
                if valid >> i & 1 == 0 {
                    for s in 0..4 {
                        a.0[32 * s + i] = [0; 64];
                    }
                    continue;
                }
                let wp = unsafe { w.as_ptr().add((p0 + i) * k + kb * BLOCK) };
                // a prefetch never faults: the same place one block on
                _mm_prefetch::<_MM_HINT_T1>(wp.wrapping_add(BLOCK) as *const i8);
                _mm_prefetch::<_MM_HINT_T1>(wp.wrapping_add(BLOCK + 64) as *const i8);
                for g in 0..2 {
                    let v = unsafe { _mm512_loadu_si512(wp.add(64 * g) as *const __m512i) };
                    let hb = _mm512_ternarylogic_epi32::<0xF8>(_mm512_permutex2var_epi8(hi0, v, hi1), v, m80); // | sign
                    let lb = _mm512_permutex2var_epi8(lo0, v, lo1);
                    unsafe {
                        _mm512_storeu_si512(a.0[32 * (2 * g) + i].as_mut_ptr() as *mut __m512i, _mm512_unpacklo_epi8(lb, hb));
                        _mm512_storeu_si512(a.0[32 * (2 * g + 1) + i].as_mut_ptr() as *mut __m512i, _mm512_unpackhi_epi8(lb, hb));
                    }
                }
            }
            tiles.zero();
            for s in 0..4 {
                let step = 4 * kb + s;
                let ap = a.0[32 * s].as_ptr();
                for p in 0..np {
                    unsafe { tiles.weight_step(ap, 64, bt.at(p, step)) };
                }
            }
            tiles.store(&mut c);
            let sc = _mm512_set1_ps(super::E8M0[scale[(p0 / BLOCK) * kbn + kb] as usize]);
            for (i, ai) in acc.iter_mut().enumerate() {
                let t = unsafe { _mm512_loadu_ps(c[i / 16][16 * (i % 16)..].as_ptr()) };
                *ai = _mm512_fmadd_ps(t, sc, *ai);
            }
        }
        for (i, ai) in acc.iter().enumerate() {
            if valid >> i & 1 == 0 {
                continue;
            }
            let mut v = [0f32; 16];
            unsafe { _mm512_storeu_ps(v.as_mut_ptr(), *ai) };
            for (tok, &val) in v.iter().enumerate().take(m) {
                // SAFETY: the row is in the caller's range and the token below m: inside y
                unsafe { *y.0.add(tok * ldy + p0 + i - row0) = val };
            }
        }
    }
    drop(tiles);
}

/// The A buffer, 64-byte aligned (tile rows are cache lines).
#[repr(C, align(64))]
struct Buf([[u8; 64]; 4 * 32]);

impl Tiles {
    /// Accumulator `h` (16 weight rows of half `h` x 16 tokens) `+=` A(h) · B, for the A tiles at
    /// `a` (32 rows of 64 bytes, `sa` bytes apart: rows 0-15, then 16-31) and the B tile at `b`
    /// (16 input pairs x 16 tokens, 64 bytes apart).
    ///
    /// # Safety
    /// `a` must cover 32 rows of 64 bytes `sa` apart and `b` 16 x 64 bytes; `self` proves the
    /// config is loaded.
    unsafe fn weight_step(&self, a: *const u8, sa: usize, b: *const u32) {
        unsafe {
            asm!(
                "tileloadd tmm4, [{a0} + {sa}*1]",
                "tileloadd tmm5, [{a1} + {sa}*1]",
                "tileloadd tmm6, [{b0} + {s}*1]",
                "tdpbf16ps tmm0, tmm4, tmm6",
                "tdpbf16ps tmm1, tmm5, tmm6",
                a0 = in(reg) a, a1 = in(reg) a.add(16 * sa), b0 = in(reg) b, sa = in(reg) sa, s = in(reg) 64usize,
                options(nostack, readonly),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::input_of;

    #[test]
    fn the_two_chunks_cover_a_group_once() {
        let mut seen = [0u8; 64];
        for c in 0..2 {
            for w in 0..32 {
                seen[input_of(c, w)] += 1;
            }
            // a pair is two consecutive inputs
            for r in 0..16 {
                assert_eq!(input_of(c, 2 * r) + 1, input_of(c, 2 * r + 1));
            }
        }
        assert!(seen.iter().all(|&n| n == 1));
    }
}
