//! The `.approx` functions (and `div.full`). Hardware computes these with small, documented
//! errors; we return (nearly) correctly rounded results computed in f64, which lie inside every
//! bound the PTX ISA states:
//!
//! | function          | PTX ISA bound                              | ours                        |
//! |-------------------|--------------------------------------------|-----------------------------|
//! | `ex2.approx.f32`  | max rel. error 2 ulp (2^-22.5 for full range) | f64 `exp2`, rounded once: <= 0.5 ulp + 2^-52 rel |
//! | `lg2.approx.f32`  | max abs error 2^-22 (2^-22.6 for x in [0.5, 2]) | f64 `log2`, rounded: <= 0.5 ulp |
//! | `sin/cos.approx.f32` | max abs error 2^-20.5 in [-pi, pi]      | f64 `sin`/`cos` of the exact input, rounded |
//! | `rsqrt.approx.f32`| max rel error 2^-22.9                      | `1/sqrt` in f64, rounded: < 0.5 ulp + 2^-51 rel |
//! | `rcp.approx.f32`  | max 1 ulp                                  | correctly rounded (.rn) |
//! | `sqrt.approx.f32` | max rel error 2^-23                        | correctly rounded (.rn) |
//! | `tanh.approx.f32` | max rel error 2^-10.987                    | f64 `tanh`, rounded |
//! | `div.approx.f32`  | max 2 ulp for 2^-126 <= abs(b) <= 2^126    | correctly rounded, except abs(b) > 2^126 (see below) |
//! | `div.full.f32`    | max 2 ulp, full range                      | correctly rounded (.rn) |
//!
//! Special values (as the ISA tables give them): `ex2(-inf) = +0`, `ex2(+inf) = +inf`,
//! `ex2(±0) = 1`; `lg2(±0) = -inf`, `lg2(x<0) = NaN`, `lg2(+inf) = +inf`; `sin/cos(±inf) = NaN`,
//! `sin(±0) = ±0`; `rsqrt(±0) = ±inf`, `rsqrt(x<0) = NaN`, `rsqrt(+inf) = +0`; `rcp(±0) = ±inf`,
//! `rcp(±inf) = ±0`; `sqrt(-0) = -0`, `sqrt(x<0) = NaN`; `tanh(±inf) = ±1`, `tanh(±0) = ±0`.
//! `div.approx.f32`: for 2^126 < |b| < 2^128 the hardware's reciprocal underflows, so the result
//! is ±0 for finite `a` and NaN for infinite `a` — we reproduce that. NaN results are the
//! canonical `0x7FFFFFFF`. Subnormal inputs/outputs are kept (the executor applies `ftz_f32` for
//! `.ftz` forms).

use super::arith::{div_f32, rcp_f32, sqrt_f32};
use super::cvt::{f64_to_bf16, f64_to_f16, f64_to_f32};
use super::soft::{self, BF16, F16};
use super::Rnd;

const QNAN: u32 = 0x7FFF_FFFF;

/// Rounds an f64 result to f32 (.rn) with the canonical NaN.
fn rn32(y: f64) -> f32 {
    f64_to_f32(y, Rnd::Rn)
}

/// `ex2.approx.f32`: 2^x.
pub fn ex2_approx(x: f32) -> f32 {
    if x.is_nan() {
        return f32::from_bits(QNAN);
    }
    rn32((x as f64).exp2())
}

/// `lg2.approx.f32`: log2(x).
pub fn lg2_approx(x: f32) -> f32 {
    if x.is_nan() || (x < 0.0) {
        return f32::from_bits(QNAN);
    }
    if x == 0.0 {
        return f32::NEG_INFINITY;
    }
    rn32((x as f64).log2())
}

/// `sin.approx.f32`.
pub fn sin_approx(x: f32) -> f32 {
    if !x.is_finite() {
        return f32::from_bits(QNAN);
    }
    rn32((x as f64).sin())
}

/// `cos.approx.f32`.
pub fn cos_approx(x: f32) -> f32 {
    if !x.is_finite() {
        return f32::from_bits(QNAN);
    }
    rn32((x as f64).cos())
}

/// `rsqrt.approx.f32`: 1/sqrt(x).
pub fn rsqrt_approx(x: f32) -> f32 {
    if x.is_nan() || x < 0.0 {
        return f32::from_bits(QNAN);
    }
    if x == 0.0 {
        return if x.is_sign_negative() { f32::NEG_INFINITY } else { f32::INFINITY };
    }
    rn32(1.0 / (x as f64).sqrt())
}

/// `rsqrt.approx.f64`: 1/sqrt(x) (two f64 roundings: within 1 ulp; ISA: max rel error 2^-50ish
/// is not promised — the f64 form is an approximation too).
pub fn rsqrt_approx_f64(x: f64) -> f64 {
    if x.is_nan() || x < 0.0 {
        return f64::from_bits(soft::F64.nan);
    }
    if x == 0.0 {
        return if x.is_sign_negative() { f64::NEG_INFINITY } else { f64::INFINITY };
    }
    1.0 / x.sqrt()
}

/// `rcp.approx.f32`: correctly rounded 1/x.
pub fn rcp_approx(x: f32) -> f32 {
    rcp_f32(x, Rnd::Rn)
}

/// `sqrt.approx.f32`: correctly rounded sqrt(x).
pub fn sqrt_approx(x: f32) -> f32 {
    sqrt_f32(x, Rnd::Rn)
}

/// `tanh.approx.f32`.
pub fn tanh_approx(x: f32) -> f32 {
    if x.is_nan() {
        return f32::from_bits(QNAN);
    }
    rn32((x as f64).tanh())
}

/// `div.approx.f32`: a/b, correctly rounded, except the ISA's `2^126 < |b| < 2^128` range where
/// the result is ±0 (a finite) or NaN (a infinite).
pub fn div_approx(a: f32, b: f32) -> f32 {
    if b.is_finite() && b.abs() > 2f32.powi(126) {
        if a.is_nan() || a.is_infinite() {
            return f32::from_bits(QNAN);
        }
        return if a.is_sign_negative() ^ b.is_sign_negative() { -0.0 } else { 0.0 };
    }
    div_f32(a, b, Rnd::Rn)
}

/// `div.full.f32`: a/b correctly rounded (inside the ISA's 2-ulp bound).
pub fn div_full(a: f32, b: f32) -> f32 {
    div_f32(a, b, Rnd::Rn)
}

fn f16_val(h: u16) -> f64 {
    f64::from_bits(soft::convert(soft::decode(h as u64, &F16), Rnd::Rn, &soft::F64, false))
}
fn bf16_val(h: u16) -> f64 {
    f64::from_bits(soft::convert(soft::decode(h as u64, &BF16), Rnd::Rn, &soft::F64, false))
}

/// `ex2.approx.f16` (and per-half of `.f16x2`): 2^x rounded to f16.
pub fn ex2_approx_f16(h: u16) -> u16 {
    f64_to_f16(f16_val(h).exp2(), Rnd::Rn)
}
/// `ex2.approx.ftz.bf16`: 2^x rounded to bf16 (the executor flushes for .ftz).
pub fn ex2_approx_bf16(h: u16) -> u16 {
    f64_to_bf16(bf16_val(h).exp2(), Rnd::Rn)
}
/// `tanh.approx.f16`.
pub fn tanh_approx_f16(h: u16) -> u16 {
    f64_to_f16(f16_val(h).tanh(), Rnd::Rn)
}
/// `tanh.approx.bf16`.
pub fn tanh_approx_bf16(h: u16) -> u16 {
    f64_to_bf16(bf16_val(h).tanh(), Rnd::Rn)
}
