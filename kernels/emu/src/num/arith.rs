//! Correctly rounded IEEE arithmetic in every rounding mode (f64, f32, f16, bf16), plus the
//! PTX helpers ftz, sat, min and max. All of it goes through the exact core in `soft`.

use super::soft::{self, BF16, F16, F32, F64};
use super::Rnd;

macro_rules! float_ops {
    ($t:ty, $fmt:expr, $add:ident, $sub:ident, $mul:ident, $fma:ident, $div:ident, $sqrt:ident, $rcp:ident, $one:expr) => {
        /// `add` correctly rounded in mode `r`.
        pub fn $add(a: $t, b: $t, r: Rnd) -> $t {
            <$t>::from_bits(soft::add(a.to_bits() as u64, b.to_bits() as u64, r, &$fmt) as _)
        }
        /// `sub` correctly rounded in mode `r` (`a + (-b)`).
        pub fn $sub(a: $t, b: $t, r: Rnd) -> $t {
            <$t>::from_bits(soft::add(a.to_bits() as u64, (-b).to_bits() as u64, r, &$fmt) as _)
        }
        /// `mul` correctly rounded in mode `r`.
        pub fn $mul(a: $t, b: $t, r: Rnd) -> $t {
            <$t>::from_bits(soft::mul(a.to_bits() as u64, b.to_bits() as u64, r, &$fmt) as _)
        }
        /// `fma(a, b, c) = a*b + c` with a single rounding in mode `r`.
        pub fn $fma(a: $t, b: $t, c: $t, r: Rnd) -> $t {
            <$t>::from_bits(soft::fma(a.to_bits() as u64, b.to_bits() as u64, c.to_bits() as u64, r, &$fmt) as _)
        }
        /// IEEE `div` correctly rounded in mode `r` (`div.rn/rz/rm/rp`).
        pub fn $div(a: $t, b: $t, r: Rnd) -> $t {
            <$t>::from_bits(soft::div(a.to_bits() as u64, b.to_bits() as u64, r, &$fmt) as _)
        }
        /// IEEE `sqrt` correctly rounded in mode `r` (`sqrt.rn/rz/rm/rp`); sqrt(-0) = -0.
        pub fn $sqrt(a: $t, r: Rnd) -> $t {
            <$t>::from_bits(soft::sqrt(a.to_bits() as u64, r, &$fmt) as _)
        }
        /// IEEE `1/a` correctly rounded in mode `r` (`rcp.rn/rz/rm/rp`).
        pub fn $rcp(a: $t, r: Rnd) -> $t {
            $div($one, a, r)
        }
    };
}

float_ops!(f32, F32, add_f32, sub_f32, mul_f32, fma_f32, div_f32, sqrt_f32, rcp_f32, 1.0f32);
float_ops!(f64, F64, add_f64, sub_f64, mul_f64, fma_f64, div_f64, sqrt_f64, rcp_f64, 1.0f64);

/// Flushes an f32 subnormal to a zero of the same sign (`.ftz`); other values pass through.
pub fn ftz_f32(x: f32) -> f32 {
    if x.is_subnormal() {
        f32::from_bits(x.to_bits() & 0x8000_0000)
    } else {
        x
    }
}

/// f64 flush-to-zero (PTX only has `.ftz` for f32; provided for completeness).
pub fn ftz_f64(x: f64) -> f64 {
    if x.is_subnormal() {
        f64::from_bits(x.to_bits() & 0x8000_0000_0000_0000)
    } else {
        x
    }
}

/// `.sat`: clamps to [+0, 1]; NaN -> +0. (-0 also becomes +0: our choice; the clamp's lower
/// bound is +0.0.)
pub fn sat_f32(x: f32) -> f32 {
    if x.is_nan() || x <= 0.0 {
        0.0
    } else if x > 1.0 {
        1.0
    } else {
        x
    }
}

/// `.sat` for f64 (same rules as [`sat_f32`]).
pub fn sat_f64(x: f64) -> f64 {
    if x.is_nan() || x <= 0.0 {
        0.0
    } else if x > 1.0 {
        1.0
    } else {
        x
    }
}

/// PTX `min.f32`: the non-NaN operand if exactly one is NaN; canonical NaN if both are;
/// -0 is less than +0.
pub fn min_f32(a: f32, b: f32) -> f32 {
    match (a.is_nan(), b.is_nan()) {
        (true, true) => f32::from_bits(0x7FFF_FFFF),
        (true, false) => b,
        (false, true) => a,
        _ => {
            if a == b {
                // Equal values: only +0/-0 differ; prefer the negative one.
                if a.is_sign_negative() {
                    a
                } else {
                    b
                }
            } else if a < b {
                a
            } else {
                b
            }
        }
    }
}

/// PTX `max.f32`: the non-NaN operand if exactly one is NaN; canonical NaN if both are;
/// +0 is greater than -0.
pub fn max_f32(a: f32, b: f32) -> f32 {
    match (a.is_nan(), b.is_nan()) {
        (true, true) => f32::from_bits(0x7FFF_FFFF),
        (true, false) => b,
        (false, true) => a,
        _ => {
            if a == b {
                if a.is_sign_negative() {
                    b
                } else {
                    a
                }
            } else if a > b {
                a
            } else {
                b
            }
        }
    }
}

/// `min.f64` (rules of [`min_f32`], canonical NaN `0x7FFFFFFFFFFFFFFF`).
pub fn min_f64(a: f64, b: f64) -> f64 {
    match (a.is_nan(), b.is_nan()) {
        (true, true) => f64::from_bits(F64.nan),
        (true, false) => b,
        (false, true) => a,
        _ => {
            if a == b {
                if a.is_sign_negative() {
                    a
                } else {
                    b
                }
            } else if a < b {
                a
            } else {
                b
            }
        }
    }
}

/// `max.f64` (rules of [`max_f32`]).
pub fn max_f64(a: f64, b: f64) -> f64 {
    match (a.is_nan(), b.is_nan()) {
        (true, true) => f64::from_bits(F64.nan),
        (true, false) => b,
        (false, true) => a,
        _ => {
            if a == b {
                if a.is_sign_negative() {
                    b
                } else {
                    a
                }
            } else if a > b {
                a
            } else {
                b
            }
        }
    }
}

macro_rules! half_ops {
    ($fmt:expr, $add:ident, $sub:ident, $mul:ident, $fma:ident, $neg:ident, $abs:ident, $min:ident, $max:ident, $name:literal) => {
        #[doc = concat!("`add.", $name, "` on bit patterns, correctly rounded in mode `r`.")]
        pub fn $add(a: u16, b: u16, r: Rnd) -> u16 {
            soft::add(a as u64, b as u64, r, &$fmt) as u16
        }
        #[doc = concat!("`sub.", $name, "` on bit patterns.")]
        pub fn $sub(a: u16, b: u16, r: Rnd) -> u16 {
            soft::add(a as u64, (b ^ 0x8000) as u64, r, &$fmt) as u16
        }
        #[doc = concat!("`mul.", $name, "` on bit patterns.")]
        pub fn $mul(a: u16, b: u16, r: Rnd) -> u16 {
            soft::mul(a as u64, b as u64, r, &$fmt) as u16
        }
        #[doc = concat!("`fma.", $name, "`: a*b + c, one rounding.")]
        pub fn $fma(a: u16, b: u16, c: u16, r: Rnd) -> u16 {
            soft::fma(a as u64, b as u64, c as u64, r, &$fmt) as u16
        }
        #[doc = concat!("`neg.", $name, "`: flips the sign bit (NaN too).")]
        pub fn $neg(a: u16) -> u16 {
            a ^ 0x8000
        }
        #[doc = concat!("`abs.", $name, "`: clears the sign bit.")]
        pub fn $abs(a: u16) -> u16 {
            a & 0x7FFF
        }
        #[doc = concat!("`min.", $name, "`: non-NaN operand wins; both NaN -> canonical 0x7FFF; -0 < +0.")]
        pub fn $min(a: u16, b: u16) -> u16 {
            minmax_u16(a, b, &$fmt, true)
        }
        #[doc = concat!("`max.", $name, "`: non-NaN operand wins; both NaN -> canonical 0x7FFF; +0 > -0.")]
        pub fn $max(a: u16, b: u16) -> u16 {
            minmax_u16(a, b, &$fmt, false)
        }
    };
}

half_ops!(F16, add_f16, sub_f16, mul_f16, fma_f16, neg_f16, abs_f16, min_f16, max_f16, "f16");
half_ops!(BF16, add_bf16, sub_bf16, mul_bf16, fma_bf16, neg_bf16, abs_bf16, min_bf16, max_bf16, "bf16");

fn minmax_u16(a: u16, b: u16, f: &soft::Fmt, min: bool) -> u16 {
    let is_nan = |x: u16| matches!(soft::decode(x as u64, f), soft::Val::Nan);
    match (is_nan(a), is_nan(b)) {
        (true, true) => f.nan as u16,
        (true, false) => b,
        (false, true) => a,
        _ => {
            // Total order on non-NaN sign-magnitude patterns (-0 < +0).
            let key = |x: u16| -> i32 {
                if x & 0x8000 != 0 {
                    -((x & 0x7FFF) as i32) - 1
                } else {
                    x as i32
                }
            };
            let a_less = key(a) < key(b);
            if a_less == min {
                a
            } else {
                b
            }
        }
    }
}

/// `.relu` on an f32 result: negative values (and -0) become +0; NaN becomes the canonical NaN.
pub fn relu_f32(x: f32) -> f32 {
    if x.is_nan() {
        f32::from_bits(0x7FFF_FFFF)
    } else if x.is_sign_negative() {
        0.0
    } else {
        x
    }
}

/// `.relu` on an f16 result (bit pattern): negative -> +0, NaN -> canonical 0x7FFF.
pub fn relu_f16(h: u16) -> u16 {
    relu_u16(h, &F16)
}

/// `.relu` on a bf16 result (bit pattern): negative -> +0, NaN -> canonical 0x7FFF.
pub fn relu_bf16(h: u16) -> u16 {
    relu_u16(h, &BF16)
}

fn relu_u16(h: u16, f: &soft::Fmt) -> u16 {
    if matches!(soft::decode(h as u64, f), soft::Val::Nan) {
        f.nan as u16
    } else if h & 0x8000 != 0 {
        0
    } else {
        h
    }
}

/// `min.NaN.f32`: canonical NaN if either operand is NaN, else [`min_f32`].
pub fn min_nan_f32(a: f32, b: f32) -> f32 {
    if a.is_nan() || b.is_nan() {
        f32::from_bits(0x7FFF_FFFF)
    } else {
        min_f32(a, b)
    }
}

/// `max.NaN.f32`: canonical NaN if either operand is NaN, else [`max_f32`].
pub fn max_nan_f32(a: f32, b: f32) -> f32 {
    if a.is_nan() || b.is_nan() {
        f32::from_bits(0x7FFF_FFFF)
    } else {
        max_f32(a, b)
    }
}
