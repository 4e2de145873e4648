//! `wgmma.mma_async` (sm_90a warpgroup MMA) as pure functions: shared-memory matrix descriptors,
//! the canonical K-major / MN-major shared layouts with their swizzles, the register fragments of
//! D and of a register-sourced A, and the 64xNxK multiply-accumulate of one warp's 16-row slice.
//!
//! Sources (PTX ISA 8.4, "Asynchronous Warpgroup Level Matrix Multiply-Accumulate"): "Matrix
//! Descriptor Format" (start address >> 4 in bits 0-13, leading byte offset >> 4 in 16-29,
//! stride byte offset >> 4 in 32-45, base offset in 49-51, swizzle in 62-63: 0 none, 1 128B,
//! 2 64B, 3 32B), "Shared Memory Matrix Layout" (core matrices of 8 rows x 16 bytes; the swizzle
//! XORs byte-address bits 4-6 / 4-5 / 4 with bits 7-9 / 7-8 / 7, repeating every 1024 / 512 /
//! 256 bytes) and the "Register Fragments" figures for D and A. Cross-checked in
//! `tests/wgmma.rs` against CuTe (`cute/atom/mma_traits_sm90_gmma.hpp`: the canonical layouts in
//! `make_gmma_desc`'s comment, `CLayout_64xN`, `ALayout_64x{8,16,32}`; `cute/swizzle.hpp`).
//!
//! Address model. Element (mn, k) of an operand tile (mn = row of A or column of B) lives at
//! `swizzle(start + offset(mn, k))`, the swizzle applied to the absolute shared address (as TMA
//! writes it). K-major, element size `e` bytes, `T = 16 / e` elements per 16-byte chunk:
//! - no swizzle: `(mn % 8) * 16 + (mn / 8) * SBO + (k / T) * LBO + (k % T) * e`
//!   (CuTe: `((8,m),(T,2)):((1T,SBO),(1,LBO))`);
//! - swizzle of width `W` = 32/64/128 bytes: `(mn % 8) * W + (mn / 8) * SBO + (k / T) * 16 +
//!   (k % T) * e`, LBO unused (CuTe: `((8,m),(T,2)):((xT,SBO),(1,T))`, x = W / 16).
//!
//! MN-major (16-bit types only, `imm-trans = 1`):
//! - no swizzle: `(mn % T) * e + (mn / T) * SBO + (k % 8) * 16 + (k / 8) * LBO`
//!   (CuTe: `((T,1,m),(8,k)):((1,T,SBO),(1T,LBO))`);
//! - swizzle width `W`: `(mn % T) * e + ((mn / T) % x) * 16 + (mn / (T x)) * LBO + (k % 8) * W +
//!   (k / 8) * SBO` (CuTe: `((T,x,m),(8,k)):((1,T,LBO),(xT,SBO))`).
//!
//! Base offset: the PTX ISA says that when the start address is not aligned to the swizzle's
//! repeating pattern, the base offset must be `(start >> 7) & 7` (masked to the pattern). With
//! that value, "pattern phase relative to the start plus base offset" and "absolute address bits"
//! agree, so the emulator computes absolute-address swizzles and reports any other base offset as
//! an error (hardware behaviour there is not documented).
//!
//! Numerics. bf16/f16/tf32 products are exact; each output element's products and the old D are
//! summed in f64 and rounded once (to nearest even) into D's type: exact for exactly
//! representable sums, which is what tests use. FP8 (e4m3/e5m2) with f32 D models Hopper's
//! reduced-precision accumulator (see [`Fp8Acc`]).

use crate::num::{self, Rnd};

use super::Elem;

/// The swizzle mode of a descriptor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Swizzle {
    None,
    B128,
    B64,
    B32,
}

impl Swizzle {
    /// From the 2-bit descriptor field (0 none, 1 128B, 2 64B, 3 32B).
    pub fn from_bits(b: u64) -> Swizzle {
        match b & 3 {
            0 => Swizzle::None,
            1 => Swizzle::B128,
            2 => Swizzle::B64,
            _ => Swizzle::B32,
        }
    }
    pub fn bits(self) -> u64 {
        match self {
            Swizzle::None => 0,
            Swizzle::B128 => 1,
            Swizzle::B64 => 2,
            Swizzle::B32 => 3,
        }
    }
    /// Row width in bytes (16 for none: one core-matrix row).
    pub fn width(self) -> u32 {
        match self {
            Swizzle::None => 16,
            Swizzle::B32 => 32,
            Swizzle::B64 => 64,
            Swizzle::B128 => 128,
        }
    }
    /// Number of XOR bits (CuTe `Swizzle<B,4,3>`'s B).
    pub fn xor_bits(self) -> u32 {
        match self {
            Swizzle::None => 0,
            Swizzle::B32 => 1,
            Swizzle::B64 => 2,
            Swizzle::B128 => 3,
        }
    }
    /// Bytes after which the pattern repeats (1024 / 512 / 256; 16 for none).
    pub fn repeat(self) -> u32 {
        self.width() * 8
    }
    /// The swizzled byte address: bits 4.. (B bits) XOR bits 7.. (B bits).
    #[inline]
    pub fn apply(self, addr: u32) -> u32 {
        let b = self.xor_bits();
        if b == 0 {
            return addr;
        }
        let mask = (1u32 << b) - 1;
        addr ^ (((addr >> 7) & mask) << 4)
    }
}

/// A decoded wgmma shared-memory matrix descriptor (byte quantities).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Desc {
    pub start: u32,
    pub lbo: u32,
    pub sbo: u32,
    pub base_offset: u32,
    pub swizzle: Swizzle,
}

impl Desc {
    pub fn decode(v: u64) -> Desc {
        Desc {
            start: ((v & 0x3FFF) << 4) as u32,
            lbo: (((v >> 16) & 0x3FFF) << 4) as u32,
            sbo: (((v >> 32) & 0x3FFF) << 4) as u32,
            base_offset: ((v >> 49) & 7) as u32,
            swizzle: Swizzle::from_bits(v >> 62),
        }
    }
    pub fn encode(&self) -> u64 {
        ((self.start as u64 >> 4) & 0x3FFF)
            | (((self.lbo as u64 >> 4) & 0x3FFF) << 16)
            | (((self.sbo as u64 >> 4) & 0x3FFF) << 32)
            | ((self.base_offset as u64 & 7) << 49)
            | (self.swizzle.bits() << 62)
    }
    /// Checks the base offset against the PTX rule (see the module doc).
    pub fn check(&self) -> Result<(), String> {
        if self.swizzle == Swizzle::None {
            return Ok(());
        }
        let mask = (1u32 << self.swizzle.xor_bits()) - 1;
        let phase = (self.start >> 7) & mask;
        if self.base_offset & mask != phase || self.base_offset & !mask != 0 {
            return Err(format!(
                "wgmma descriptor: start address {:#x} has pattern phase {} for the {}B swizzle but the base offset is {} (PTX: base offset = (start >> 7) & {})",
                self.start,
                phase,
                self.swizzle.width(),
                self.base_offset,
                mask
            ));
        }
        Ok(())
    }
}

/// Which dimension is contiguous in shared memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Major {
    /// K contiguous (`imm-trans = 0`): A row-major, B "column-major" (N rows of K).
    K,
    /// M or N contiguous (`imm-trans = 1`, 16-bit types only).
    MN,
}

/// Byte offset (before swizzling) of element (mn, k) from the descriptor's start address.
pub fn elem_offset(d: &Desc, major: Major, ebytes: u32, mn: u32, k: u32) -> u32 {
    let t = 16 / ebytes;
    let w = d.swizzle.width();
    match (major, d.swizzle) {
        (Major::K, Swizzle::None) => (mn % 8) * 16 + (mn / 8) * d.sbo + (k / t) * d.lbo + (k % t) * ebytes,
        (Major::K, _) => (mn % 8) * w + (mn / 8) * d.sbo + (k / t) * 16 + (k % t) * ebytes,
        (Major::MN, Swizzle::None) => (mn % t) * ebytes + (mn / t) * d.sbo + (k % 8) * 16 + (k / 8) * d.lbo,
        (Major::MN, _) => {
            let x = w / 16;
            (mn % t) * ebytes + ((mn / t) % x) * 16 + (mn / (t * x)) * d.lbo + (k % 8) * w + (k / 8) * d.sbo
        }
    }
}

/// Shared byte address of element (mn, k): the swizzle applied to start + offset.
pub fn elem_addr(d: &Desc, major: Major, ebytes: u32, mn: u32, k: u32) -> u32 {
    d.swizzle.apply(d.start.wrapping_add(elem_offset(d, major, ebytes, mn, k)))
}

/// (row, col) within the 64xN D tile of warpgroup thread `t` (0..128), value `v` (0..N/2).
/// Warp `t/32` owns rows 16w..16w+15; per 8-column block `v/4`, like mma.sync's C fragment.
pub fn d_coord(t: u32, v: u32) -> (u32, u32) {
    let (w, lane) = (t / 32, t % 32);
    (16 * w + lane / 4 + 8 * ((v / 2) % 2), 8 * (v / 4) + 2 * (lane % 4) + v % 2)
}

/// (row, k) within the 64xK A tile of warpgroup thread `t`, element `i` of its register-A
/// fragment (element i lives in register i / (32 / bits), at bits (i % per) * bits).
pub fn a_reg_coord(a: Elem, t: u32, i: u32) -> (u32, u32) {
    let (w, lane) = (t / 32, t % 32);
    let (g, q) = (lane / 4, lane % 4);
    let base = 16 * w + g;
    match a.bits() {
        32 => (base + 8 * (i % 2), q + 4 * (i / 2)),
        16 => (base + 8 * ((i / 2) % 2), 2 * q + i % 2 + 8 * (i / 4)),
        _ => (base + 8 * ((i / 4) % 2), 4 * q + i % 4 + 16 * (i / 8)),
    }
}

/// The shape and types of one wgmma form.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WgmmaKind {
    pub n: u32,
    pub k: u32,
    pub a: Elem,
    pub b: Elem,
    /// D (and C) type: F32 or F16.
    pub d: Elem,
}

impl WgmmaKind {
    /// Parses the modifiers after `wgmma`, e.g. `["mma_async","sync","aligned","m64n128k16",
    /// "f32","bf16","bf16"]`.
    pub fn from_mods(mods: &[String]) -> Result<WgmmaKind, String> {
        let mut shape = None;
        let mut types = Vec::new();
        let (mut ma, mut sync, mut aligned) = (false, false, false);
        for m in mods {
            match m.as_str() {
                "mma_async" => ma = true,
                "sync" => sync = true,
                "aligned" => aligned = true,
                s if s.starts_with("m64n") => {
                    let rest = &s[4..];
                    let (n, k) = rest.split_once('k').ok_or_else(|| format!("wgmma: bad shape .{s}"))?;
                    shape = Some((
                        n.parse::<u32>().map_err(|_| format!("wgmma: bad shape .{s}"))?,
                        k.parse::<u32>().map_err(|_| format!("wgmma: bad shape .{s}"))?,
                    ));
                }
                s => match s {
                    "f16" => types.push(Elem::F16),
                    "bf16" => types.push(Elem::Bf16),
                    "e4m3" => types.push(Elem::E4m3),
                    "e5m2" => types.push(Elem::E5m2),
                    "f32" => types.push(Elem::F32),
                    "tf32" => types.push(Elem::Tf32),
                    _ => return Err(format!("wgmma: unsupported modifier .{s}")),
                },
            }
        }
        if !(ma && sync && aligned) {
            return Err("wgmma: only wgmma.mma_async.sync.aligned is supported".into());
        }
        let (n, k) = shape.ok_or("wgmma: missing shape")?;
        if types.len() != 3 {
            return Err(format!("wgmma: expected 3 types (d, a, b), got {}", types.len()));
        }
        let (d, a, b) = (types[0], types[1], types[2]);
        if n == 0 || n % 8 != 0 || n > 256 {
            return Err(format!("wgmma: N = {n} must be a multiple of 8 in 8..=256"));
        }
        use Elem::*;
        let fp8 = |e: Elem| matches!(e, E4m3 | E5m2);
        let ok = match (a, b) {
            (F16, F16) => k == 16 && matches!(d, F16 | F32),
            (Bf16, Bf16) => k == 16 && d == F32,
            (Tf32, Tf32) => k == 8 && d == F32,
            (x, y) if fp8(x) && fp8(y) => k == 32 && matches!(d, F16 | F32),
            _ => false,
        };
        if !ok {
            return Err(format!("wgmma.m64n{n}k{k}.{d:?}.{a:?}.{b:?}: unsupported type combination").to_lowercase());
        }
        Ok(WgmmaKind { n, k, a, b, d })
    }

    /// 32-bit D registers per thread (N/2 for f32, N/4 for f16).
    pub fn d_regs(&self) -> usize {
        (self.n / 2 * self.d.bits() / 32) as usize
    }
    /// 32-bit A registers per thread when A comes from registers (always 4).
    pub fn a_regs(&self) -> usize {
        4
    }
    /// Whether `imm-trans-a/b` operands exist (16-bit types only).
    pub fn has_trans(&self) -> bool {
        self.a.bits() == 16
    }
    /// 2 * 64 * N * K for the whole warpgroup.
    pub fn flops(&self) -> u64 {
        2 * 64 * self.n as u64 * self.k as u64
    }
}

/// How FP8 wgmma accumulates into an f32 D.
///
/// Model (default `Truncate { mantissa: 13 }`): each wgmma's K = 32 products (exact in f64) are
/// summed exactly, then added to D and the sum is rounded toward zero to 13 explicit mantissa
/// bits (14 significant bits). Basis: DeepSeek-V3 technical report (section 3.3.2, "the
/// accumulation precision of FP8 GEMM on NVIDIA H800 GPUs is limited to retaining around 14
/// bits"), and the SageAttention2 paper's measurement that Hopper's FP8 mma accumulator is
/// "FP22" (1 sign, 8 exponent, 13 mantissa bits). The error therefore grows with the number of
/// wgmmas chained into one accumulator, so a kernel that does not promote partial sums into a
/// separate f32 accumulator (e.g. every 128 of K, as DeepGEMM does) fails an f32-tolerance test.
/// Not yet confirmed on a device (gpu-diff golden pending). `Exact` rounds once to nearest f32.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fp8Acc {
    Exact,
    Truncate { mantissa: u32 },
}

impl Default for Fp8Acc {
    fn default() -> Fp8Acc {
        Fp8Acc::Truncate { mantissa: 13 }
    }
}

thread_local! {
    static FP8_ACC: std::cell::Cell<Fp8Acc> = std::cell::Cell::new(Fp8Acc::default());
}

/// Sets the FP8 accumulation model for wgmmas executed on this thread; returns the previous one.
pub fn set_fp8_acc(m: Fp8Acc) -> Fp8Acc {
    FP8_ACC.with(|c| c.replace(m))
}

/// The FP8 accumulation model in force on this thread.
pub fn fp8_acc() -> Fp8Acc {
    FP8_ACC.with(|c| c.get())
}

/// Truncates an f64 toward zero to f32 range and `mantissa` explicit bits (subnormals of f32
/// keep f32's absolute resolution).
pub fn truncate_to(v: f64, mantissa: u32) -> f32 {
    if !v.is_finite() || v == 0.0 {
        return v as f32;
    }
    let f = num::f64_to_f32(v, Rnd::Rz);
    if !f.is_finite() || f == 0.0 || f.is_subnormal() || mantissa >= 23 {
        return f;
    }
    let drop = 23 - mantissa;
    f32::from_bits(f.to_bits() & !((1u32 << drop) - 1))
}

/// The value of one element (`raw` in its low bits).
pub fn elem_value(e: Elem, raw: u32) -> f64 {
    match e {
        Elem::F16 => num::f16_to_f64(raw as u16),
        Elem::Bf16 => num::bf16_to_f64(raw as u16),
        Elem::E4m3 => num::e4m3_to_f32(raw as u8) as f64,
        Elem::E5m2 => num::e5m2_to_f32(raw as u8) as f64,
        Elem::F32 => f32::from_bits(raw) as f64,
        Elem::Tf32 => f32::from_bits(raw & !0x1FFF) as f64,
        Elem::S8 => raw as u8 as i8 as f64,
        Elem::U8 => raw as u8 as f64,
        Elem::S32 => raw as i32 as f64,
    }
}

/// One warp's slice of a wgmma: rows 16w..16w+15 of D (64xN) += A (64xK) * B (KxN).
/// `a(row, k)` and `b(k, n)` return element values (row in 0..64, taken only for this warp's
/// rows); `neg_a`/`neg_b` are the imm-scale -1 cases; `scale_d` false ignores the old D.
/// `d` holds the warp's D registers lane-major: `d[lane * d_regs + r]`.
#[allow(clippy::too_many_arguments)]
pub fn wgmma_warp(
    kind: &WgmmaKind,
    warp: u32,
    a: &mut dyn FnMut(u32, u32) -> f64,
    b: &mut dyn FnMut(u32, u32) -> f64,
    d: &mut [u32],
    scale_d: bool,
    neg_a: bool,
    neg_b: bool,
    acc: Fp8Acc,
) {
    let (n, k) = (kind.n as usize, kind.k as usize);
    let nd = kind.d_regs();
    assert!(d.len() >= 32 * nd, "wgmma_warp: short D");
    let sa = if neg_a { -1.0 } else { 1.0 };
    let sb = if neg_b { -1.0 } else { 1.0 };
    let mut am = vec![0f64; 16 * k];
    for r in 0..16 {
        for kk in 0..k {
            am[r * k + kk] = sa * a(16 * warp + r as u32, kk as u32);
        }
    }
    let mut bm = vec![0f64; k * n];
    for kk in 0..k {
        for nn in 0..n {
            bm[kk * n + nn] = sb * b(kk as u32, nn as u32);
        }
    }
    let fp8 = matches!(kind.a, Elem::E4m3 | Elem::E5m2);
    let per = 32 / kind.d.bits();
    for lane in 0..32u32 {
        for v in 0..kind.n / 2 {
            let (row, col) = d_coord(warp * 32 + lane, v);
            let r = (row - 16 * warp) as usize;
            let slot = lane as usize * nd + (v / per) as usize;
            let shift = (v % per) * kind.d.bits();
            let old_raw = if kind.d.bits() == 32 { d[slot] } else { (d[slot] >> shift) & 0xFFFF };
            let old = if scale_d { elem_value(kind.d, old_raw) } else { 0.0 };
            let mut s = 0f64;
            for kk in 0..k {
                s += am[r * k + kk] * bm[kk * n + col as usize];
            }
            let raw = match kind.d {
                Elem::F16 => num::f64_to_f16(old + s, Rnd::Rn) as u32,
                _ => match (fp8, acc) {
                    (true, Fp8Acc::Truncate { mantissa }) => truncate_to(old + s, mantissa).to_bits(),
                    _ => num::f64_to_f32(old + s, Rnd::Rn).to_bits(),
                },
            };
            if kind.d.bits() == 32 {
                d[slot] = raw;
            } else {
                d[slot] = (d[slot] & !(0xFFFF << shift)) | ((raw & 0xFFFF) << shift);
            }
        }
    }
}

/// The whole warpgroup's wgmma on plain matrices (for tests and references): `a` is 64xK
/// row-major, `b` is KxN row-major (values), `d` is `d[t * d_regs + r]` for threads 0..128.
pub fn wgmma_dense(kind: &WgmmaKind, a: &[f64], b: &[f64], d: &mut [u32], scale_d: bool, acc: Fp8Acc) {
    let (n, k) = (kind.n as usize, kind.k as usize);
    let nd = kind.d_regs();
    for w in 0..4u32 {
        let slice = &mut d[w as usize * 32 * nd..(w as usize + 1) * 32 * nd];
        wgmma_warp(
            kind,
            w,
            &mut |r, kk| a[r as usize * k + kk as usize],
            &mut |kk, nn| b[kk as usize * n + nn as usize],
            slice,
            scale_d,
            false,
            false,
            acc,
        );
    }
}
