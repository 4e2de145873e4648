//! Numeric semantics of PTX, as pure functions: IEEE arithmetic in every rounding mode, the
//! approximate functions, and conversions between all integer and float types (f16, bf16,
//! e4m3, e5m2, e2m1 included). The executor calls only these; tests check them against
//! independent references (rustc_apfloat, half, exhaustive tables from the OCP spec).
//!
//! CONTRACT (signatures the executor relies on; implementations may add more):
//! ```ignore
//! pub enum Rnd { Rn, Rz, Rm, Rp }            // .rn .rz .rm .rp (ties-to-even for Rn)
//! // f32/f64 arithmetic, correctly rounded in mode r; `ftz` flushes subnormal inputs and
//! // outputs to sign-preserving zero; `sat` clamps to [0, 1] (NaN -> +0).
//! pub fn add_f32(a: f32, b: f32, r: Rnd) -> f32;  sub_f32, mul_f32, fma_f32(a, b, c, r), div_f32, sqrt_f32, rcp_f32
//! pub fn add_f64 / sub_f64 / mul_f64 / fma_f64 / div_f64 / sqrt_f64 / rcp_f64 (same shape, f64)
//! pub fn ftz_f32(x: f32) -> f32;  pub fn sat_f32(x: f32) -> f32;
//! // min/max: PTX returns the non-NaN operand when one is NaN; NaN only if both are NaN.
//! pub fn min_f32(a, b) -> f32; max_f32(a, b) -> f32;
//! // approximate functions (within the ISA's stated error; ex2/lg2/sin/cos/rsqrt/rcp/sqrt/tanh/div)
//! pub fn ex2_approx(x: f32) -> f32; lg2_approx; sin_approx; cos_approx; rsqrt_approx; rcp_approx;
//! pub fn sqrt_approx; tanh_approx; div_approx(a, b) -> f32; div_full(a, b) -> f32;
//! // f16/bf16 (bit patterns in u16)
//! pub fn f32_to_f16(x: f32, r: Rnd, sat: bool /*satfinite*/) -> u16;  f16_to_f32(h: u16) -> f32 (exact)
//! pub fn f32_to_bf16(x: f32, r: Rnd, sat: bool) -> u16;  bf16_to_f32(h: u16) -> f32 (exact)
//! pub fn f64_to_f32(x: f64, r: Rnd) -> f32;  f64_to_f16, f64_to_bf16 (same shape)
//! // FP8 and FP4 (cvt.rn.satfinite.{e4m3x2,e5m2x2}.f32 and .f16x2; only .rn exists)
//! pub fn f32_to_e4m3(x: f32, satfinite: bool) -> u8;  f32_to_e5m2(x: f32, satfinite: bool) -> u8
//! pub fn e4m3_to_f16(b: u8) -> u16;  e5m2_to_f16(b: u8) -> u16  (exact; what cvt.rn.f16x2.e4m3x2 does)
//! pub fn f16_to_e4m3(h: u16, satfinite: bool) -> u8; f16_to_e5m2
//! pub fn e2m1_to_f32(nibble: u8) -> f32; f32_to_e2m1(x: f32, satfinite: bool) -> u8
//! // float <-> integer: PTX saturates out-of-range values and maps NaN to 0
//! pub fn f64_to_int(x: f64, r: Rnd, signed: bool, bits: u32) -> u64   (result zero-extended; for signed, two's complement in `bits`)
//! pub fn int_to_f32(v: i128, r: Rnd) -> f32;  int_to_f64(v: i128, r: Rnd) -> f64;  int_to_f16(v: i128, r) -> u16; int_to_bf16
//! // round to integral value in float format: cvt.rni/rzi/rmi/rpi.f32.f32 and f64
//! pub fn round_int_f32(x: f32, r: Rnd) -> f32;  round_int_f64(x: f64, r: Rnd) -> f64
//! // f16/bf16 arithmetic (add/sub/mul/fma .rn, min/max, neg/abs) on u16 bit patterns
//! pub fn add_f16(a: u16, b: u16, r: Rnd) -> u16; mul_f16; fma_f16; add_bf16; mul_bf16; fma_bf16
//! ```
//!
//! Additions beyond the contract (same conventions):
//! ```ignore
//! pub fn sub_f16 / sub_bf16; neg_f16 / abs_f16 / min_f16 / max_f16 (and _bf16) on u16 patterns
//! pub fn relu_f32(x) -> f32; relu_f16(u16) -> u16; relu_bf16   // `.relu`: negative -> +0, NaN -> canonical
//! pub fn min_nan_f32(a, b) / max_nan_f32(a, b)                 // `min.NaN` / `max.NaN`
//! pub fn min_f64 / max_f64 / ftz_f64 / sat_f64
//! pub fn f32_to_f64(x) -> f64; f16_to_f64(u16) -> f64; bf16_to_f64   (exact)
//! pub fn f32_to_tf32(x, r, sat) -> u32; f32_to_tf32_rna(x, sat) -> u32  // f32 bit pattern, low 13 bits 0
//! pub fn e4m3_to_f32(u8) -> f32; e5m2_to_f32(u8) -> f32             (exact)
//! pub fn f32_to_int(x: f32, r, signed, bits) -> u64                   (= f64_to_int of the widening)
//! pub fn round_int_f16(u16, r) -> u16; round_int_bf16
//! pub fn rsqrt_approx_f64(x: f64) -> f64; ex2_approx_f16(u16) -> u16; ex2_approx_bf16; tanh_approx_f16; tanh_approx_bf16
//! ```
//! The bit-level generic core (`soft`: decode, one-rounding `round_pack`, add/mul/fma/div/sqrt
//! over any binary format) is crate-private.
//!
//! Conventions (documented choices where the ISA leaves room):
//! - NaN results are canonical: f32 `0x7FFFFFFF`, f16/bf16 `0x7FFF`, f64 `0x7FFFFFFFFFFFFFFF`
//!   (the f64 choice is ours; PTX does not promise payload propagation), e4m3/e5m2 `0x7F`.
//! - `ftz` is not a parameter: the executor applies `ftz_f32` to every input and to the result
//!   of a `.ftz` instruction (the result is flushed after rounding).
//! - Exact zero sums are +0 except in `.rm` (IEEE 754); `x * 0` signs follow IEEE.

mod approx;
mod arith;
mod cvt;
pub(crate) mod soft;

pub use approx::*;
pub use arith::*;
pub use cvt::*;

/// A PTX rounding mode. For float -> float: `.rn .rz .rm .rp`; for -> integer (and
/// round-to-integral) the same four are `.rni .rzi .rmi .rpi`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Rnd {
    /// To nearest, ties to even.
    Rn,
    /// Towards zero.
    Rz,
    /// Towards minus infinity.
    Rm,
    /// Towards plus infinity.
    Rp,
}

impl Rnd {
    pub const ALL: [Rnd; 4] = [Rnd::Rn, Rnd::Rz, Rnd::Rm, Rnd::Rp];
}
