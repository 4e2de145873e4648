//! A small exact soft-float core shared by every arithmetic op and conversion.
//!
//! A finite value is `(-1)^neg * sig * 2^exp` with `sig: u128`. Every operation first forms the
//! exact result (or an exact significand plus a "sticky" bit jammed into bit 0 far below the
//! rounding position), then [`round_pack`] rounds it once, in the requested mode, to the target
//! format. There is no double rounding anywhere.

use super::Rnd;

/// What the format does with values that round past its largest finite magnitude.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Special {
    /// IEEE-like: all-ones exponent holds infinities and NaNs.
    Ieee,
    /// OCP e4m3 (E4M3FN): no infinities; only S.1111.111 is NaN.
    E4m3,
    /// OCP e2m1: no infinities, no NaN; every code is finite.
    Finite,
}

/// A binary floating-point format: `ebits` exponent bits, `mbits` stored mantissa bits.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Fmt {
    pub ebits: u32,
    pub mbits: u32,
    pub special: Special,
    /// Bit pattern of the canonical NaN this format produces (positive sign).
    pub nan: u64,
}

impl Fmt {
    pub const fn bias(&self) -> i32 {
        (1 << (self.ebits - 1)) - 1
    }
    /// Unbiased exponent of the smallest normal.
    pub const fn emin(&self) -> i32 {
        1 - self.bias()
    }
    pub const fn sign_bit(&self) -> u64 {
        1u64 << (self.ebits + self.mbits)
    }
    /// Largest finite magnitude, as a bit pattern.
    pub const fn max_finite(&self) -> u64 {
        match self.special {
            Special::Ieee => (((1u64 << self.ebits) - 1) << self.mbits) - 1,
            Special::E4m3 => (1u64 << (self.ebits + self.mbits)) - 2,
            Special::Finite => (1u64 << (self.ebits + self.mbits)) - 1,
        }
    }
    pub const fn inf(&self) -> u64 {
        ((1u64 << self.ebits) - 1) << self.mbits
    }
}

pub(crate) const F64: Fmt = Fmt { ebits: 11, mbits: 52, special: Special::Ieee, nan: 0x7FFF_FFFF_FFFF_FFFF };
pub(crate) const F32: Fmt = Fmt { ebits: 8, mbits: 23, special: Special::Ieee, nan: 0x7FFF_FFFF };
pub(crate) const F16: Fmt = Fmt { ebits: 5, mbits: 10, special: Special::Ieee, nan: 0x7FFF };
pub(crate) const BF16: Fmt = Fmt { ebits: 8, mbits: 7, special: Special::Ieee, nan: 0x7FFF };
pub(crate) const E5M2: Fmt = Fmt { ebits: 5, mbits: 2, special: Special::Ieee, nan: 0x7F };
pub(crate) const E4M3: Fmt = Fmt { ebits: 4, mbits: 3, special: Special::E4m3, nan: 0x7F };
pub(crate) const E2M1: Fmt = Fmt { ebits: 2, mbits: 1, special: Special::Finite, nan: 0x7 };

/// A decoded value.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Val {
    Nan,
    Inf(bool),
    /// `(-1)^neg * sig * 2^exp`; `sig == 0` is a signed zero.
    Fin(bool, u128, i32),
}

pub(crate) fn decode(bits: u64, f: &Fmt) -> Val {
    let neg = bits & f.sign_bit() != 0;
    let mag = bits & (f.sign_bit() - 1);
    let emask = (1u64 << f.ebits) - 1;
    let e = (mag >> f.mbits) & emask;
    let m = mag & ((1u64 << f.mbits) - 1);
    match f.special {
        Special::Ieee if e == emask => return if m == 0 { Val::Inf(neg) } else { Val::Nan },
        Special::E4m3 if mag == (1u64 << (f.ebits + f.mbits)) - 1 => return Val::Nan,
        _ => {}
    }
    let lsb_exp = f.emin() - f.mbits as i32;
    if e == 0 {
        Val::Fin(neg, m as u128, lsb_exp)
    } else {
        Val::Fin(neg, (m | (1u64 << f.mbits)) as u128, lsb_exp + e as i32 - 1)
    }
}

/// Rounds `(-1)^neg * sig * 2^exp` to format `f` in mode `r`. Bits of `sig` below the rounding
/// position act as round and sticky bits (callers jam inexactness into bit 0). `satfinite`
/// clamps overflow to the largest finite magnitude. A zero `sig` gives a signed zero.
pub(crate) fn round_pack(neg: bool, sig: u128, exp: i32, r: Rnd, f: &Fmt, satfinite: bool) -> u64 {
    let sbit = if neg { f.sign_bit() } else { 0 };
    if sig == 0 {
        return sbit;
    }
    let p = f.mbits as i32; // stored bits; precision p+1
    let msb = 127 - sig.leading_zeros() as i32;
    let e_top = exp + msb; // unbiased exponent of the leading bit
    let qmin = f.emin() - p;
    let q = (e_top - p).max(qmin); // exponent of the result's lsb
    let shift = q - exp;
    let (mut kept, half, rest) = if shift <= 0 {
        (sig << (-shift) as u32, false, false)
    } else if shift >= 129 {
        (0u128, false, true)
    } else if shift == 128 {
        (0u128, sig >> 127 != 0, sig & !(1u128 << 127) != 0)
    } else {
        let s = shift as u32;
        let kept = sig >> s;
        let rem = sig & ((1u128 << s) - 1);
        let halfbit = 1u128 << (s - 1);
        (kept, rem & halfbit != 0, rem & (halfbit - 1) != 0)
    };
    let inexact = half || rest;
    let up = match r {
        Rnd::Rn => half && (rest || kept & 1 == 1),
        Rnd::Rz => false,
        Rnd::Rm => inexact && neg,
        Rnd::Rp => inexact && !neg,
    };
    let mut q = q;
    if up {
        kept += 1;
        if kept == 1u128 << (p + 1) {
            kept >>= 1;
            q += 1;
        }
    }
    // Uniform encoding: ((q - qmin) << mbits) + kept covers subnormals and normals alike.
    let over = q - qmin > 4096 // far out of range for any of our formats
        || {
            let bits = (((q - qmin) as u128) << p) + kept;
            bits > f.max_finite() as u128
        };
    if !over {
        return sbit | ((((q - qmin) as u64) << p) + kept as u64);
    }
    overflow(neg, r, f, satfinite)
}

/// The result of an overflow in mode `r`.
pub(crate) fn overflow(neg: bool, r: Rnd, f: &Fmt, satfinite: bool) -> u64 {
    let sbit = if neg { f.sign_bit() } else { 0 };
    let to_inf = match r {
        Rnd::Rn => true,
        Rnd::Rz => false,
        Rnd::Rm => neg,
        Rnd::Rp => !neg,
    };
    if !to_inf || satfinite {
        return sbit | f.max_finite();
    }
    match f.special {
        Special::Ieee => sbit | f.inf(),
        Special::E4m3 => sbit | f.nan,
        Special::Finite => sbit | f.max_finite(),
    }
}

/// Encodes an infinity (or, for formats without one, its satfinite/NaN substitute).
pub(crate) fn pack_inf(neg: bool, f: &Fmt, satfinite: bool) -> u64 {
    let sbit = if neg { f.sign_bit() } else { 0 };
    if satfinite {
        return sbit | f.max_finite();
    }
    match f.special {
        Special::Ieee => sbit | f.inf(),
        Special::E4m3 => sbit | f.nan,
        Special::Finite => sbit | f.max_finite(),
    }
}

/// Encodes a decoded value into `f` (a conversion), rounding in mode `r`.
pub(crate) fn convert(v: Val, r: Rnd, f: &Fmt, satfinite: bool) -> u64 {
    match v {
        Val::Nan => f.nan,
        Val::Inf(neg) => pack_inf(neg, f, satfinite),
        Val::Fin(neg, sig, exp) => round_pack(neg, sig, exp, r, f, satfinite),
    }
}

/// Position of the leading bit after [`norm`].
const TOP: u32 = 125;

/// Shifts a nonzero significand so its leading bit is bit [`TOP`]. Exact for `sig < 2^126`.
fn norm(sig: u128, exp: i32) -> (u128, i32) {
    let msb = 127 - sig.leading_zeros();
    if msb <= TOP {
        (sig << (TOP - msb), exp - (TOP - msb) as i32)
    } else {
        let s = msb - TOP;
        let lost = sig & ((1u128 << s) - 1) != 0;
        ((sig >> s) | lost as u128, exp + s as i32)
    }
}

/// Exact-enough sum of two finite nonzero values whose significands have at most ~110
/// significant bits: returns `(neg, sig, exp)` with the inexact tail jammed into bit 0 far
/// below any rounding position of a <= 64-bit-precision target. `sig == 0` means exact zero.
pub(crate) fn add_fin(an: bool, asig: u128, aexp: i32, bn: bool, bsig: u128, bexp: i32) -> (bool, u128, i32) {
    let (a, ae) = norm(asig, aexp);
    let (b, be) = norm(bsig, bexp);
    // Order by magnitude exponent so `x` has the larger exponent.
    let (xn, x, xe, yn, mut y, ye) = if ae >= be { (an, a, ae, bn, b, be) } else { (bn, b, be, an, a, ae) };
    let d = (xe - ye) as u32;
    if d > 0 {
        y = if d >= 127 { 1 } else { (y >> d) | (y & ((1u128 << d) - 1) != 0) as u128 };
    }
    if xn == yn {
        (xn, x + y, xe)
    } else if x >= y {
        (xn, x - y, xe)
    } else {
        (yn, y - x, xe)
    }
}

/// Exact integer square root of a u128: `(floor(sqrt(n)), n != floor^2)`.
pub(crate) fn isqrt(n: u128) -> (u128, bool) {
    if n == 0 {
        return (0, false);
    }
    // Digit-by-digit.
    let mut rem = n;
    let mut res: u128 = 0;
    let mut bit: u128 = 1u128 << ((127 - n.leading_zeros()) & !1);
    while bit != 0 {
        if rem >= res + bit {
            rem -= res + bit;
            res = (res >> 1) + bit;
        } else {
            res >>= 1;
        }
        bit >>= 2;
    }
    (res, rem != 0)
}

/// The sign of an exact zero sum `x + y` (both zero or cancelling): IEEE rules.
pub(crate) fn zero_sum_sign(xn: bool, yn: bool, r: Rnd) -> bool {
    if xn == yn {
        xn
    } else {
        r == Rnd::Rm
    }
}

/// Generic correctly-rounded a + b in format `f`.
pub(crate) fn add(a: u64, b: u64, r: Rnd, f: &Fmt) -> u64 {
    match (decode(a, f), decode(b, f)) {
        (Val::Nan, _) | (_, Val::Nan) => f.nan,
        (Val::Inf(x), Val::Inf(y)) => {
            if x == y {
                pack_inf(x, f, false)
            } else {
                f.nan
            }
        }
        (Val::Inf(x), _) | (_, Val::Inf(x)) => pack_inf(x, f, false),
        (Val::Fin(an, asig, aexp), Val::Fin(bn, bsig, bexp)) => fin_sum(an, asig, aexp, bn, bsig, bexp, r, f),
    }
}

/// Rounds the exact sum of two finite values (either may be zero).
#[allow(clippy::too_many_arguments)]
pub(crate) fn fin_sum(an: bool, asig: u128, aexp: i32, bn: bool, bsig: u128, bexp: i32, r: Rnd, f: &Fmt) -> u64 {
    if asig == 0 && bsig == 0 {
        let n = zero_sum_sign(an, bn, r);
        return if n { f.sign_bit() } else { 0 };
    }
    if asig == 0 {
        return round_pack(bn, bsig, bexp, r, f, false);
    }
    if bsig == 0 {
        return round_pack(an, asig, aexp, r, f, false);
    }
    let (n, s, e) = add_fin(an, asig, aexp, bn, bsig, bexp);
    if s == 0 {
        return if r == Rnd::Rm { f.sign_bit() } else { 0 };
    }
    round_pack(n, s, e, r, f, false)
}

pub(crate) fn mul(a: u64, b: u64, r: Rnd, f: &Fmt) -> u64 {
    match (decode(a, f), decode(b, f)) {
        (Val::Nan, _) | (_, Val::Nan) => f.nan,
        (Val::Inf(x), Val::Inf(y)) => pack_inf(x ^ y, f, false),
        (Val::Inf(x), Val::Fin(y, s, _)) | (Val::Fin(y, s, _), Val::Inf(x)) => {
            if s == 0 {
                f.nan
            } else {
                pack_inf(x ^ y, f, false)
            }
        }
        (Val::Fin(an, asig, aexp), Val::Fin(bn, bsig, bexp)) => {
            round_pack(an ^ bn, asig * bsig, aexp + bexp, r, f, false)
        }
    }
}

pub(crate) fn fma(a: u64, b: u64, c: u64, r: Rnd, f: &Fmt) -> u64 {
    let (va, vb, vc) = (decode(a, f), decode(b, f), decode(c, f));
    if matches!(va, Val::Nan) || matches!(vb, Val::Nan) || matches!(vc, Val::Nan) {
        return f.nan;
    }
    // The product's class.
    let prod = match (va, vb) {
        (Val::Inf(x), Val::Inf(y)) => Val::Inf(x ^ y),
        (Val::Inf(x), Val::Fin(y, s, _)) | (Val::Fin(y, s, _), Val::Inf(x)) => {
            if s == 0 {
                return f.nan;
            }
            Val::Inf(x ^ y)
        }
        (Val::Fin(an, asig, aexp), Val::Fin(bn, bsig, bexp)) => Val::Fin(an ^ bn, asig * bsig, aexp + bexp),
        _ => unreachable!(),
    };
    match (prod, vc) {
        (Val::Inf(x), Val::Inf(y)) => {
            if x == y {
                pack_inf(x, f, false)
            } else {
                f.nan
            }
        }
        (Val::Inf(x), _) | (_, Val::Inf(x)) => pack_inf(x, f, false),
        (Val::Fin(pn, ps, pe), Val::Fin(cn, cs, ce)) => fin_sum(pn, ps, pe, cn, cs, ce, r, f),
        _ => unreachable!(),
    }
}

pub(crate) fn div(a: u64, b: u64, r: Rnd, f: &Fmt) -> u64 {
    match (decode(a, f), decode(b, f)) {
        (Val::Nan, _) | (_, Val::Nan) => f.nan,
        (Val::Inf(_), Val::Inf(_)) => f.nan,
        (Val::Inf(x), Val::Fin(y, _, _)) => pack_inf(x ^ y, f, false),
        (Val::Fin(x, _, _), Val::Inf(y)) => {
            if x ^ y {
                f.sign_bit()
            } else {
                0
            }
        }
        (Val::Fin(an, asig, aexp), Val::Fin(bn, bsig, bexp)) => {
            let neg = an ^ bn;
            if bsig == 0 {
                return if asig == 0 { f.nan } else { pack_inf(neg, f, false) };
            }
            if asig == 0 {
                return if neg { f.sign_bit() } else { 0 };
            }
            // Normalise: a to 2^125-ish, b to 2^60-ish, so the quotient has >= 64 bits.
            let (an_, ae) = norm(asig, aexp);
            let bmsb = 127 - bsig.leading_zeros() as i32;
            let (bs, be) = if bmsb > 60 {
                // Only f64-sized significands occur (<= 53 bits), so this is not reached.
                (bsig >> (bmsb - 60), bexp + (bmsb - 60))
            } else {
                (bsig << (60 - bmsb), bexp - (60 - bmsb))
            };
            let qt = an_ / bs;
            let rem = an_ % bs;
            round_pack(neg, qt | (rem != 0) as u128, ae - be, r, f, false)
        }
    }
}

pub(crate) fn sqrt(a: u64, r: Rnd, f: &Fmt) -> u64 {
    match decode(a, f) {
        Val::Nan => f.nan,
        Val::Inf(false) => pack_inf(false, f, false),
        Val::Inf(true) => f.nan,
        Val::Fin(neg, sig, exp) => {
            if sig == 0 {
                return if neg { f.sign_bit() } else { 0 };
            }
            if neg {
                return f.nan;
            }
            // Make the exponent even and the significand ~2^124..2^126.
            let (mut s, mut e) = norm(sig, exp);
            if e & 1 != 0 {
                s >>= 1; // bit 0 is zero for every input significand we get (<= 64 bits)
                e += 1;
            }
            let (root, inexact) = isqrt(s);
            round_pack(false, root | inexact as u128, e / 2, r, f, false)
        }
    }
}
