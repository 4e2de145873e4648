//! Conversions: float <-> float (f64, f32, f16, bf16, tf32, e4m3, e5m2, e2m1), float <-> int,
//! and round-to-integral. Every rounding goes through `soft::round_pack` (one rounding).
//!
//! Format notes (OCP FP8/FP4 as the model uses them, `shared/spec/model.md`):
//! - e4m3: bias 7, no infinities, max ±448, NaN = S.1111.111 (0x7F/0xFF). Overflow: with
//!   `satfinite` clamps to ±448 (an infinite input too); without it gives NaN (0x7F|sign).
//!   Rounding is ties-to-even on the extended exponent range, so 464 (halfway to a would-be
//!   480) rounds to 448 even without satfinite, and anything above 464 overflows.
//! - e5m2: IEEE-like, bias 15, max ±57344, has ±inf; satfinite clamps overflow and ±inf to
//!   ±57344. NaN -> 0x7F.
//! - e2m1: values 0, 0.5, 1, 1.5, 2, 3, 4, 6 and negatives; no inf, no NaN. Overflow and ±inf
//!   clamp to ±6 with or without `satfinite` (PTX only has the satfinite form). NaN has no
//!   code: we return sign|0x7 (±6), our choice.
//! - NaN inputs give the target's canonical NaN (f32 0x7FFFFFFF, f16/bf16 0x7FFF, FP8 0x7F),
//!   with or without satfinite.

use super::soft::{self, Fmt, Special, Val, BF16, E2M1, E4M3, E5M2, F16, F32, F64};
use super::Rnd;

fn d32(x: f32) -> Val {
    soft::decode(x.to_bits() as u64, &F32)
}
fn d64(x: f64) -> Val {
    soft::decode(x.to_bits(), &F64)
}

/// `cvt{.rn,.rz,.rm,.rp}{.satfinite}.f16.f32`.
pub fn f32_to_f16(x: f32, r: Rnd, sat: bool) -> u16 {
    soft::convert(d32(x), r, &F16, sat) as u16
}
/// Exact f16 -> f32.
pub fn f16_to_f32(h: u16) -> f32 {
    f32::from_bits(soft::convert(soft::decode(h as u64, &F16), Rnd::Rn, &F32, false) as u32)
}
/// `cvt{.rn,.rz,.rm,.rp}{.satfinite}.bf16.f32`.
pub fn f32_to_bf16(x: f32, r: Rnd, sat: bool) -> u16 {
    soft::convert(d32(x), r, &BF16, sat) as u16
}
/// Exact bf16 -> f32 (NaN -> canonical f32 NaN).
pub fn bf16_to_f32(h: u16) -> f32 {
    f32::from_bits(soft::convert(soft::decode(h as u64, &BF16), Rnd::Rn, &F32, false) as u32)
}
/// `cvt.{rn,rz,rm,rp}.f32.f64`.
pub fn f64_to_f32(x: f64, r: Rnd) -> f32 {
    f32::from_bits(soft::convert(d64(x), r, &F32, false) as u32)
}
/// `cvt.{rn,rz,rm,rp}.f16.f64`.
pub fn f64_to_f16(x: f64, r: Rnd) -> u16 {
    soft::convert(d64(x), r, &F16, false) as u16
}
/// `cvt.{rn,rz,rm,rp}.bf16.f64`.
pub fn f64_to_bf16(x: f64, r: Rnd) -> u16 {
    soft::convert(d64(x), r, &BF16, false) as u16
}
/// Exact f32 -> f64 (`cvt.f64.f32`; NaN -> canonical f64 NaN).
pub fn f32_to_f64(x: f32) -> f64 {
    f64::from_bits(soft::convert(d32(x), Rnd::Rn, &F64, false))
}
/// Exact f16 -> f64.
pub fn f16_to_f64(h: u16) -> f64 {
    f64::from_bits(soft::convert(soft::decode(h as u64, &F16), Rnd::Rn, &F64, false))
}
/// Exact bf16 -> f64.
pub fn bf16_to_f64(h: u16) -> f64 {
    f64::from_bits(soft::convert(soft::decode(h as u64, &BF16), Rnd::Rn, &F64, false))
}

/// `cvt.{rn,rz,rm,rp}.tf32.f32` (sm_90): the result is an f32 bit pattern whose low 13 bits are
/// zero. With `sat` (`.satfinite`) overflow clamps to the largest tf32 value.
pub fn f32_to_tf32(x: f32, r: Rnd, sat: bool) -> u32 {
    const TF32: Fmt = Fmt { ebits: 8, mbits: 10, special: Special::Ieee, nan: 0x7FFFF };
    let b = soft::convert(d32(x), r, &TF32, sat) as u32;
    if x.is_nan() {
        return 0x7FFF_FFFF;
    }
    b << 13
}

/// `cvt.rna{.satfinite}.tf32.f32`: round to nearest, ties away from zero.
pub fn f32_to_tf32_rna(x: f32, sat: bool) -> u32 {
    if x.is_nan() {
        return 0x7FFF_FFFF;
    }
    let b = x.to_bits();
    if x.is_infinite() {
        return if sat { (b & 0x8000_0000) | 0x7F7F_E000 } else { b };
    }
    let r = b.wrapping_add(0x1000) & !0x1FFF; // magnitude + half ulp, then truncate
    if sat && (r & 0x7FFF_FFFF) >= 0x7F80_0000 {
        return (b & 0x8000_0000) | 0x7F7F_E000;
    }
    r
}

/// `cvt.rn.satfinite.e4m3x2.f32` (one element). See the module notes for non-satfinite.
pub fn f32_to_e4m3(x: f32, satfinite: bool) -> u8 {
    soft::convert(d32(x), Rnd::Rn, &E4M3, satfinite) as u8
}
/// `cvt.rn.satfinite.e5m2x2.f32` (one element).
pub fn f32_to_e5m2(x: f32, satfinite: bool) -> u8 {
    soft::convert(d32(x), Rnd::Rn, &E5M2, satfinite) as u8
}
/// `cvt.rn.satfinite.e4m3x2.f16x2` (one element).
pub fn f16_to_e4m3(h: u16, satfinite: bool) -> u8 {
    soft::convert(soft::decode(h as u64, &F16), Rnd::Rn, &E4M3, satfinite) as u8
}
/// `cvt.rn.satfinite.e5m2x2.f16x2` (one element).
pub fn f16_to_e5m2(h: u16, satfinite: bool) -> u8 {
    soft::convert(soft::decode(h as u64, &F16), Rnd::Rn, &E5M2, satfinite) as u8
}
/// `cvt.rn.f16x2.e4m3x2` (one element): exact; NaN -> 0x7FFF.
pub fn e4m3_to_f16(b: u8) -> u16 {
    soft::convert(soft::decode(b as u64, &E4M3), Rnd::Rn, &F16, false) as u16
}
/// `cvt.rn.f16x2.e5m2x2` (one element): exact; ±inf -> ±inf, NaN -> 0x7FFF.
pub fn e5m2_to_f16(b: u8) -> u16 {
    soft::convert(soft::decode(b as u64, &E5M2), Rnd::Rn, &F16, false) as u16
}
/// Exact e4m3 -> f32.
pub fn e4m3_to_f32(b: u8) -> f32 {
    f32::from_bits(soft::convert(soft::decode(b as u64, &E4M3), Rnd::Rn, &F32, false) as u32)
}
/// Exact e5m2 -> f32.
pub fn e5m2_to_f32(b: u8) -> f32 {
    f32::from_bits(soft::convert(soft::decode(b as u64, &E5M2), Rnd::Rn, &F32, false) as u32)
}
/// Exact e2m1 -> f32 (low 4 bits of `nibble`; bit 3 is the sign).
pub fn e2m1_to_f32(nibble: u8) -> f32 {
    f32::from_bits(soft::convert(soft::decode((nibble & 0xF) as u64, &E2M1), Rnd::Rn, &F32, false) as u32)
}
/// `cvt.rn.satfinite.e2m1x2.f32` (one element, a nibble). Ties to even code; ±6 clamp; NaN ->
/// sign|0x7 (no NaN code exists).
pub fn f32_to_e2m1(x: f32, satfinite: bool) -> u8 {
    if x.is_nan() {
        return if x.is_sign_negative() { 0xF } else { 0x7 };
    }
    soft::convert(d32(x), Rnd::Rn, &E2M1, satfinite) as u8
}

/// `cvt.{rni,rzi,rmi,rpi}{.sat}.{s,u}{8,16,32,64}.f64` (and .f32/.f16 via exact widening):
/// rounds to an integer in mode `r`, saturates to the destination range, NaN -> 0. The result
/// is the `bits`-wide two's-complement pattern, zero-extended to u64.
pub fn f64_to_int(x: f64, r: Rnd, signed: bool, bits: u32) -> u64 {
    assert!((1..=64).contains(&bits));
    let mask = if bits == 64 { u64::MAX } else { (1u64 << bits) - 1 };
    if x.is_nan() {
        return 0;
    }
    let v = round_int_f64(x, r);
    let (lo, hi): (i128, i128) =
        if signed { (-(1i128 << (bits - 1)), (1i128 << (bits - 1)) - 1) } else { (0, (1i128 << bits) - 1) };
    // Every bound is a power of two (or one less), so compare against exact f64 powers.
    let iv: i128 = if v >= (hi + 1) as f64 {
        hi
    } else if v < lo as f64 {
        lo
    } else {
        v as i128
    };
    (iv as u64) & mask
}

/// [`f64_to_int`] of an f32 (exactly widened).
pub fn f32_to_int(x: f32, r: Rnd, signed: bool, bits: u32) -> u64 {
    f64_to_int(x as f64, r, signed, bits)
}

fn int_to(v: i128, r: Rnd, f: &Fmt) -> u64 {
    soft::round_pack(v < 0, v.unsigned_abs(), 0, r, f, false)
}
/// `cvt.{rn,rz,rm,rp}.f32.{s,u}{8..64}`: any integer (pass unsigned values zero-extended).
pub fn int_to_f32(v: i128, r: Rnd) -> f32 {
    f32::from_bits(int_to(v, r, &F32) as u32)
}
/// `cvt.{rn,rz,rm,rp}.f64.{s,u}{8..64}`.
pub fn int_to_f64(v: i128, r: Rnd) -> f64 {
    f64::from_bits(int_to(v, r, &F64))
}
/// `cvt.{rn,rz,rm,rp}.f16.{s,u}{8..64}` (overflow to ±inf in .rn, ±max in .rz).
pub fn int_to_f16(v: i128, r: Rnd) -> u16 {
    int_to(v, r, &F16) as u16
}
/// `cvt.{rn,rz,rm,rp}.bf16.{s,u}{8..64}`.
pub fn int_to_bf16(v: i128, r: Rnd) -> u16 {
    int_to(v, r, &BF16) as u16
}

/// `cvt.{rni,rzi,rmi,rpi}.f32.f32`: round to an integral value, in float format. Keeps the sign
/// of zero (e.g. rpi(-0.5) = -0); ±inf pass through; NaN -> canonical NaN.
pub fn round_int_f32(x: f32, r: Rnd) -> f32 {
    if x.is_nan() {
        return f32::from_bits(0x7FFF_FFFF);
    }
    round_int_f64(x as f64, r) as f32 // exact: an integral f32 value widens and narrows exactly
}

/// `cvt.{rni,rzi,rmi,rpi}.f64.f64`.
pub fn round_int_f64(x: f64, r: Rnd) -> f64 {
    if x.is_nan() {
        return f64::from_bits(F64.nan);
    }
    match r {
        Rnd::Rn => x.round_ties_even(),
        Rnd::Rz => x.trunc(),
        Rnd::Rm => x.floor(),
        Rnd::Rp => x.ceil(),
    }
}

/// `cvt.{rni,rzi,rmi,rpi}.f16.f16`: round to an integral value in f16 (bit patterns).
pub fn round_int_f16(h: u16, r: Rnd) -> u16 {
    // An integral value of an f16's magnitude is itself an f16, so the round trip is exact.
    soft::convert(d32(round_int_f32(f16_to_f32(h), r)), Rnd::Rn, &F16, false) as u16
}

/// `cvt.{rni,rzi,rmi,rpi}.bf16.bf16`: round to an integral value in bf16 (bit patterns).
pub fn round_int_bf16(h: u16, r: Rnd) -> u16 {
    soft::convert(d32(round_int_f32(bf16_to_f32(h), r)), Rnd::Rn, &BF16, false) as u16
}
