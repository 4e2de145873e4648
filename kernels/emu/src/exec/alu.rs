//! Per-lane semantics of the scalar instructions (pure functions on slot values).
use crate::decode::inst::*;
use crate::num::{self, Rnd};

pub const NAN32: u64 = 0x7FFF_FFFF;
pub const NAN64: u64 = 0x7FFF_FFFF_FFFF_FFFF;

#[inline(always)]
pub fn f32v(x: u64) -> f32 {
    f32::from_bits(x as u32)
}
#[inline(always)]
pub fn f64v(x: u64) -> f64 {
    f64::from_bits(x)
}
#[inline(always)]
pub fn c32(x: f32) -> u64 {
    if x.is_nan() {
        NAN32
    } else {
        x.to_bits() as u64
    }
}
#[inline(always)]
pub fn c64(x: f64) -> u64 {
    if x.is_nan() {
        NAN64
    } else {
        x.to_bits()
    }
}

#[inline(always)]
pub fn ibin(op: IOp, t: It, a: u64, b: u64) -> u64 {
    match op {
        IOp::Add => t.norm(a.wrapping_add(b)),
        IOp::Sub => t.norm(a.wrapping_sub(b)),
        IOp::AddSat => (t.val(a) + t.val(b)).clamp(i32::MIN as i128, i32::MAX as i128) as i64 as u64,
        IOp::SubSat => (t.val(a) - t.val(b)).clamp(i32::MIN as i128, i32::MAX as i128) as i64 as u64,
        IOp::MulLo => t.norm(a.wrapping_mul(b)),
        IOp::MulHi => {
            if t.signed {
                let p = t.val(a) * t.val(b);
                t.norm((p >> t.bits) as u64)
            } else {
                let p = (a & t.mask()) as u128 * (b & t.mask()) as u128;
                t.norm((p >> t.bits) as u64)
            }
        }
        IOp::MulWide => {
            let p = t.val(a) * t.val(b);
            It { bits: t.bits * 2, signed: t.signed }.norm(p as u64)
        }
        IOp::Mul24Lo | IOp::Mul24Hi => {
            let ext = |v: u64| -> i64 {
                if t.signed {
                    ((v as i64) << 40) >> 40
                } else {
                    (v & 0xFF_FFFF) as i64
                }
            };
            let p = ext(a) * ext(b);
            let r = if op == IOp::Mul24Lo { p as u64 } else { (p >> 16) as u64 };
            t.norm(r)
        }
        IOp::Div => {
            let (x, y) = (t.val(a), t.val(b));
            if y == 0 {
                t.norm(u64::MAX)
            } else {
                t.norm(x.wrapping_div(y) as u64)
            }
        }
        IOp::Rem => {
            let (x, y) = (t.val(a), t.val(b));
            if y == 0 {
                t.norm(a)
            } else {
                t.norm(x.wrapping_rem(y) as u64)
            }
        }
        IOp::Min => {
            if t.val(a) <= t.val(b) {
                t.norm(a)
            } else {
                t.norm(b)
            }
        }
        IOp::Max => {
            if t.val(a) >= t.val(b) {
                t.norm(a)
            } else {
                t.norm(b)
            }
        }
        IOp::And => t.norm(a & b),
        IOp::Or => t.norm(a | b),
        IOp::Xor => t.norm(a ^ b),
        IOp::Shl => {
            let n = b as u32;
            if n >= t.bits as u32 {
                0
            } else {
                t.norm(a << n)
            }
        }
        IOp::Shr => {
            let n = b as u32;
            if t.signed {
                let v = t.val(a) as i64;
                t.norm((v >> n.min(63)) as u64)
            } else if n >= t.bits as u32 {
                0
            } else {
                t.norm((a & t.mask()) >> n)
            }
        }
    }
}

#[inline(always)]
pub fn iun(op: IUOp, t: It, a: u64) -> u64 {
    let m = t.mask();
    let bits = t.bits as u32;
    match op {
        IUOp::Neg => t.norm(a.wrapping_neg()),
        IUOp::Abs => t.norm(t.val(a).unsigned_abs() as u64),
        IUOp::Not => t.norm(!a),
        IUOp::Cnot => (a & m == 0) as u64,
        IUOp::Popc => (a & m).count_ones() as u64,
        IUOp::Clz => ((a & m).leading_zeros() - (64 - bits)) as u64,
        IUOp::Brev => t.norm((a & m).reverse_bits() >> (64 - bits)),
        IUOp::Bfind | IUOp::BfindShift => {
            let mut v = a & m;
            if t.signed && (v >> (bits - 1)) & 1 == 1 {
                v = !v & m;
            }
            if v == 0 {
                0xFFFF_FFFF
            } else {
                let pos = 63 - v.leading_zeros();
                if op == IUOp::BfindShift {
                    (bits - 1 - pos) as u64
                } else {
                    pos as u64
                }
            }
        }
    }
}

#[inline(always)]
pub fn imad(op: MadOp, t: It, a: u64, b: u64, c: u64) -> u64 {
    match op {
        MadOp::Lo => t.norm(a.wrapping_mul(b).wrapping_add(c)),
        MadOp::Hi => t.norm(ibin(IOp::MulHi, t, a, b).wrapping_add(c)),
        MadOp::HiSat => {
            let h = ibin(IOp::MulHi, t, a, b) as i64 as i128;
            (h + t.val(c)).clamp(i32::MIN as i128, i32::MAX as i128) as i64 as u64
        }
        MadOp::Wide => {
            let w = It { bits: t.bits * 2, signed: t.signed };
            w.norm(ibin(IOp::MulWide, t, a, b).wrapping_add(c))
        }
        MadOp::Lo24 => t.norm(ibin(IOp::Mul24Lo, t, a, b).wrapping_add(c)),
        MadOp::Hi24 => t.norm(ibin(IOp::Mul24Hi, t, a, b).wrapping_add(c)),
        MadOp::Sad => {
            let d = (t.val(a) - t.val(b)).unsigned_abs() as u64;
            t.norm(c.wrapping_add(d))
        }
    }
}

/// Carry-chain add/sub/mad: returns (result, carry-out).
#[inline(always)]
pub fn cc(mode: CcMode, mad: bool, t: It, a: u64, b: u64, c: u64, cin: bool) -> (u64, bool) {
    let m = t.mask() as u128;
    let (x, y) = if mad { ((a as u128 * b as u128) & m, c as u128 & m) } else { (a as u128 & m, b as u128 & m) };
    let ci = (mode.cin && cin) as u128;
    if mode.sub {
        let r = x.wrapping_sub(y).wrapping_sub(ci);
        (t.norm(r as u64), x < y + ci)
    } else {
        let r = x + y + ci;
        (t.norm(r as u64), r > m)
    }
}

pub fn bfe(t: It, a: u64, pos: u64, len: u64) -> u64 {
    let bits = t.bits as u64;
    let msb = bits - 1;
    let pos = pos & 0xFF;
    let len = len & 0xFF;
    let sbit = if !t.signed || len == 0 {
        0
    } else {
        let p = (pos + len - 1).min(msb);
        (a >> p) & 1
    };
    let mut d = 0u64;
    for i in 0..bits {
        let bit = if i < len && pos + i <= msb { (a >> (pos + i)) & 1 } else { sbit };
        d |= bit << i;
    }
    t.norm(d)
}

pub fn bfi(t: It, a: u64, b: u64, pos: u64, len: u64) -> u64 {
    let bits = t.bits as u64;
    let pos = pos & 0xFF;
    let len = len & 0xFF;
    let mut f = b;
    for i in 0..len {
        if pos + i >= bits {
            break;
        }
        let bit = (a >> i) & 1;
        f = (f & !(1 << (pos + i))) | (bit << (pos + i));
    }
    t.norm(f)
}

const PRMT_MODES: [[[u8; 4]; 4]; 6] = [
    // f4e: [b0,b1,b2,b3] for c = 0..3
    [[0, 1, 2, 3], [1, 2, 3, 4], [2, 3, 4, 5], [3, 4, 5, 6]],
    // b4e
    [[0, 7, 6, 5], [1, 0, 7, 6], [2, 1, 0, 7], [3, 2, 1, 0]],
    // rc8
    [[0, 0, 0, 0], [1, 1, 1, 1], [2, 2, 2, 2], [3, 3, 3, 3]],
    // ecl
    [[0, 1, 2, 3], [1, 1, 2, 3], [2, 2, 2, 3], [3, 3, 3, 3]],
    // ecr
    [[0, 0, 0, 0], [0, 1, 1, 1], [0, 1, 2, 2], [0, 1, 2, 3]],
    // rc16
    [[0, 1, 0, 1], [2, 3, 2, 3], [0, 1, 0, 1], [2, 3, 2, 3]],
];

pub fn prmt(mode: u8, a: u64, b: u64, c: u64) -> u64 {
    let tmp = ((b as u32 as u64) << 32) | (a as u32 as u64);
    let byte = |i: u64| (tmp >> (8 * (i & 7))) as u8;
    let mut d = 0u32;
    if mode == 0 {
        for i in 0..4 {
            let sel = (c >> (4 * i)) & 0xF;
            let mut v = byte(sel);
            if sel & 8 != 0 {
                v = if v & 0x80 != 0 { 0xFF } else { 0 };
            }
            d |= (v as u32) << (8 * i);
        }
    } else {
        let sel = PRMT_MODES[(mode - 1) as usize][(c & 3) as usize];
        for i in 0..4 {
            d |= (byte(sel[i] as u64) as u32) << (8 * i);
        }
    }
    d as u64
}

#[inline(always)]
pub fn lop3(lut: u8, a: u64, b: u64, c: u64) -> u64 {
    let (a, b, c) = (a as u32, b as u32, c as u32);
    let mut r = 0u32;
    for k in 0..8 {
        if (lut >> k) & 1 != 0 {
            let x = if k & 4 != 0 { a } else { !a };
            let y = if k & 2 != 0 { b } else { !b };
            let z = if k & 1 != 0 { c } else { !c };
            r |= x & y & z;
        }
    }
    r as u64
}

pub fn shf(left: bool, clamp: bool, a: u64, b: u64, c: u64) -> u64 {
    let n = if clamp { (c as u32).min(32) } else { (c as u32) & 31 };
    let v = ((b as u32 as u64) << 32) | (a as u32 as u64);
    if left {
        ((v << n) >> 32) as u32 as u64
    } else {
        (v >> n) as u32 as u64
    }
}

pub fn fns(mask: u64, base: u64, offset: u64) -> u64 {
    let mask = mask as u32;
    let base = (base as u32) & 31;
    let off = offset as i32;
    if off == 0 {
        return if (mask >> base) & 1 != 0 { base as u64 } else { 0xFFFF_FFFF };
    }
    let mut n = off.unsigned_abs();
    if off > 0 {
        for i in base..32 {
            if (mask >> i) & 1 != 0 {
                n -= 1;
                if n == 0 {
                    return i as u64;
                }
            }
        }
    } else {
        for i in (0..=base).rev() {
            if (mask >> i) & 1 != 0 {
                n -= 1;
                if n == 0 {
                    return i as u64;
                }
            }
        }
    }
    0xFFFF_FFFF
}

pub fn dp4a(ua: bool, ub: bool, a: u64, b: u64, c: u64) -> u64 {
    let mut s = c as i64;
    for i in 0..4 {
        let x = ((a >> (8 * i)) & 0xFF) as u8;
        let y = ((b >> (8 * i)) & 0xFF) as u8;
        let x = if ua { x as i64 } else { x as i8 as i64 };
        let y = if ub { y as i64 } else { y as i8 as i64 };
        s = s.wrapping_add(x * y);
    }
    if ua && ub {
        s as u32 as u64
    } else {
        s as i32 as i64 as u64
    }
}

/// A float operand of setp/set widened to f64 (exact).
#[inline(always)]
fn fval(t: Ft, v: u64) -> f64 {
    match t {
        Ft::F32 => f32v(v) as f64,
        Ft::F64 => f64v(v),
        Ft::F16 => num::f16_to_f32(v as u16) as f64,
        Ft::Bf16 => num::bf16_to_f32(v as u16) as f64,
    }
}

#[inline(always)]
pub fn compare(cmp: Cmp, t: Ct, a: u64, b: u64) -> bool {
    match t {
        Ct::Int(it) => {
            let (x, y) = (it.val(a), it.val(b));
            match cmp {
                Cmp::Eq => x == y,
                Cmp::Ne => x != y,
                Cmp::Lt => x < y,
                Cmp::Le => x <= y,
                Cmp::Gt => x > y,
                Cmp::Ge => x >= y,
                _ => false,
            }
        }
        Ct::F(ft) => {
            let (x, y) = (fval(ft, a), fval(ft, b));
            let un = x.is_nan() || y.is_nan();
            match cmp {
                Cmp::Eq => x == y,
                Cmp::Ne => !un && x != y,
                Cmp::Lt => x < y,
                Cmp::Le => x <= y,
                Cmp::Gt => x > y,
                Cmp::Ge => x >= y,
                Cmp::Equ => un || x == y,
                Cmp::Neu => un || x != y,
                Cmp::Ltu => un || x < y,
                Cmp::Leu => un || x <= y,
                Cmp::Gtu => un || x > y,
                Cmp::Geu => un || x >= y,
                Cmp::Num => !un,
                Cmp::Nan => un,
            }
        }
    }
}

#[inline(always)]
fn ftz32(ftz: bool, x: f32) -> f32 {
    if ftz {
        num::ftz_f32(x)
    } else {
        x
    }
}

#[inline(always)]
pub fn fbin32(op: FOp, rnd: Rnd, ftz: bool, sat: bool, a: u64, b: u64) -> u64 {
    let (x, y) = (ftz32(ftz, f32v(a)), ftz32(ftz, f32v(b)));
    let fast = rnd == Rnd::Rn;
    let r = match op {
        FOp::Add => {
            if fast {
                x + y
            } else {
                num::add_f32(x, y, rnd)
            }
        }
        FOp::Sub => {
            if fast {
                x - y
            } else {
                num::sub_f32(x, y, rnd)
            }
        }
        FOp::Mul => {
            if fast {
                x * y
            } else {
                num::mul_f32(x, y, rnd)
            }
        }
        FOp::Div => {
            if fast {
                x / y
            } else {
                num::div_f32(x, y, rnd)
            }
        }
        FOp::DivApprox => num::div_approx(x, y),
        FOp::DivFull => num::div_full(x, y),
        FOp::Min => num::min_f32(x, y),
        FOp::Max => num::max_f32(x, y),
        FOp::MinNan => {
            if x.is_nan() || y.is_nan() {
                f32::NAN
            } else {
                num::min_f32(x, y)
            }
        }
        FOp::MaxNan => {
            if x.is_nan() || y.is_nan() {
                f32::NAN
            } else {
                num::max_f32(x, y)
            }
        }
        FOp::Copysign => return (b as u32 & 0x7FFF_FFFF | a as u32 & 0x8000_0000) as u64,
    };
    let r = ftz32(ftz, r);
    c32(if sat { num::sat_f32(r) } else { r })
}

pub fn fbin64(op: FOp, rnd: Rnd, sat: bool, a: u64, b: u64) -> u64 {
    let (x, y) = (f64v(a), f64v(b));
    let fast = rnd == Rnd::Rn;
    let r = match op {
        FOp::Add => {
            if fast {
                x + y
            } else {
                num::add_f64(x, y, rnd)
            }
        }
        FOp::Sub => {
            if fast {
                x - y
            } else {
                num::sub_f64(x, y, rnd)
            }
        }
        FOp::Mul => {
            if fast {
                x * y
            } else {
                num::mul_f64(x, y, rnd)
            }
        }
        FOp::Div | FOp::DivApprox | FOp::DivFull => {
            if fast {
                x / y
            } else {
                num::div_f64(x, y, rnd)
            }
        }
        FOp::Min => num::min_f64(x, y),
        FOp::Max => num::max_f64(x, y),
        FOp::MinNan => {
            if x.is_nan() || y.is_nan() {
                f64::NAN
            } else {
                num::min_f64(x, y)
            }
        }
        FOp::MaxNan => {
            if x.is_nan() || y.is_nan() {
                f64::NAN
            } else {
                num::max_f64(x, y)
            }
        }
        FOp::Copysign => return (b & !(1 << 63)) | (a & (1 << 63)),
    };
    c64(if sat { num::sat_f64(r) } else { r })
}

#[inline(always)]
pub fn ffma32(rnd: Rnd, ftz: bool, sat: bool, a: u64, b: u64, c: u64) -> u64 {
    let (x, y, z) = (ftz32(ftz, f32v(a)), ftz32(ftz, f32v(b)), ftz32(ftz, f32v(c)));
    let r = if rnd == Rnd::Rn { x.mul_add(y, z) } else { num::fma_f32(x, y, z, rnd) };
    let r = ftz32(ftz, r);
    c32(if sat { num::sat_f32(r) } else { r })
}

pub fn ffma64(rnd: Rnd, sat: bool, a: u64, b: u64, c: u64) -> u64 {
    let (x, y, z) = (f64v(a), f64v(b), f64v(c));
    let r = if rnd == Rnd::Rn { x.mul_add(y, z) } else { num::fma_f64(x, y, z, rnd) };
    c64(if sat { num::sat_f64(r) } else { r })
}

pub fn fun32(op: FUOp, rnd: Rnd, ftz: bool, sat: bool, a: u64) -> u64 {
    let x = ftz32(ftz, f32v(a));
    let r = match op {
        FUOp::Abs => return (x.to_bits() & 0x7FFF_FFFF) as u64,
        FUOp::Neg => return (x.to_bits() ^ 0x8000_0000) as u64,
        FUOp::Sqrt => {
            if rnd == Rnd::Rn {
                x.sqrt()
            } else {
                num::sqrt_f32(x, rnd)
            }
        }
        FUOp::SqrtApprox => num::sqrt_approx(x),
        FUOp::Rcp => num::rcp_f32(x, rnd),
        FUOp::RcpApprox | FUOp::RcpApproxFtzF64 => num::rcp_approx(x),
        FUOp::Rsqrt => num::rsqrt_approx(x),
        FUOp::Ex2 => num::ex2_approx(x),
        FUOp::Lg2 => num::lg2_approx(x),
        FUOp::Sin => num::sin_approx(x),
        FUOp::Cos => num::cos_approx(x),
        FUOp::Tanh => num::tanh_approx(x),
    };
    let r = ftz32(ftz, r);
    c32(if sat { num::sat_f32(r) } else { r })
}

pub fn fun64(op: FUOp, rnd: Rnd, a: u64) -> u64 {
    let x = f64v(a);
    let r = match op {
        FUOp::Abs => return a & !(1 << 63),
        FUOp::Neg => return a ^ (1 << 63),
        FUOp::Sqrt | FUOp::SqrtApprox => num::sqrt_f64(x, rnd),
        FUOp::Rcp => num::rcp_f64(x, rnd),
        FUOp::RcpApprox | FUOp::RcpApproxFtzF64 => num::ftz_f64(1.0 / num::ftz_f64(x)),
        FUOp::Rsqrt => num::rsqrt_approx_f64(x),
        _ => f64::NAN,
    };
    c64(r)
}

#[inline(always)]
fn hftz(bf: bool, ftz: bool, h: u16) -> u16 {
    if ftz && !bf && h & 0x7C00 == 0 && h & 0x03FF != 0 {
        h & 0x8000
    } else {
        h
    }
}

fn hsat(bf: bool, h: u16) -> u16 {
    let x = if bf { num::bf16_to_f32(h) } else { num::f16_to_f32(h) };
    let y = num::sat_f32(x);
    if y == x && !x.is_nan() {
        h
    } else if bf {
        num::f32_to_bf16(y, Rnd::Rn, false)
    } else {
        num::f32_to_f16(y, Rnd::Rn, false)
    }
}

fn hnan(bf: bool, h: u16) -> bool {
    if bf {
        h & 0x7F80 == 0x7F80 && h & 0x7F != 0
    } else {
        h & 0x7C00 == 0x7C00 && h & 0x3FF != 0
    }
}

pub fn h1(op: FOp, bf: bool, ftz: bool, sat: bool, a: u16, b: u16) -> u16 {
    let (a, b) = (hftz(bf, ftz, a), hftz(bf, ftz, b));
    let r = match (op, bf) {
        (FOp::Add, false) => num::add_f16(a, b, Rnd::Rn),
        (FOp::Add, true) => num::add_bf16(a, b, Rnd::Rn),
        (FOp::Sub, false) => num::sub_f16(a, b, Rnd::Rn),
        (FOp::Sub, true) => num::sub_bf16(a, b, Rnd::Rn),
        (FOp::Mul, false) => num::mul_f16(a, b, Rnd::Rn),
        (FOp::Mul, true) => num::mul_bf16(a, b, Rnd::Rn),
        (FOp::Min, false) => num::min_f16(a, b),
        (FOp::Min, true) => num::min_bf16(a, b),
        (FOp::Max, false) => num::max_f16(a, b),
        (FOp::Max, true) => num::max_bf16(a, b),
        (FOp::MinNan | FOp::MaxNan, _) => {
            if hnan(bf, a) || hnan(bf, b) {
                0x7FFF
            } else {
                return h1(if op == FOp::MinNan { FOp::Min } else { FOp::Max }, bf, ftz, sat, a, b);
            }
        }
        _ => 0x7FFF,
    };
    let r = hftz(bf, ftz, r);
    if sat {
        hsat(bf, r)
    } else {
        r
    }
}

pub fn hfma1(bf: bool, ftz: bool, sat: bool, relu: bool, a: u16, b: u16, c: u16) -> u16 {
    let (a, b, c) = (hftz(bf, ftz, a), hftz(bf, ftz, b), hftz(bf, ftz, c));
    let mut r = if bf { num::fma_bf16(a, b, c, Rnd::Rn) } else { num::fma_f16(a, b, c, Rnd::Rn) };
    r = hftz(bf, ftz, r);
    if sat {
        r = hsat(bf, r);
    }
    if relu && r & 0x8000 != 0 && !hnan(bf, r) {
        r = 0;
    }
    r
}

#[inline(always)]
pub fn hx(x2: bool, a: u64, b: u64, f: impl Fn(u16, u16) -> u16) -> u64 {
    let lo = f(a as u16, b as u16) as u64;
    if x2 {
        lo | (f((a >> 16) as u16, (b >> 16) as u16) as u64) << 16
    } else {
        lo
    }
}

fn to_f32_any(t: Ft, v: u64) -> f32 {
    match t {
        Ft::F32 => f32v(v),
        Ft::F16 => num::f16_to_f32(v as u16),
        Ft::Bf16 => num::bf16_to_f32(v as u16),
        Ft::F64 => f64v(v) as f32,
    }
}

pub fn cvt(s: &CvtSpec, v: u64) -> u64 {
    let rnd = s.rnd;
    match (s.st, s.dt) {
        (CvtT::Int(st), CvtT::Int(dt)) => {
            let x = st.val(v);
            if s.sat {
                let (lo, hi): (i128, i128) = if dt.signed {
                    (-(1i128 << (dt.bits - 1)), (1i128 << (dt.bits - 1)) - 1)
                } else {
                    (0, (1i128 << dt.bits) - 1)
                };
                dt.norm(x.clamp(lo, hi) as u64)
            } else {
                dt.norm(x as u64)
            }
        }
        (CvtT::Int(st), CvtT::F(dt)) => {
            let x = st.val(v);
            let r = match dt {
                Ft::F32 => {
                    let f = num::int_to_f32(x, rnd);
                    let f = if s.ftz { num::ftz_f32(f) } else { f };
                    (if s.sat { num::sat_f32(f) } else { f }).to_bits() as u64
                }
                Ft::F64 => {
                    let f = num::int_to_f64(x, rnd);
                    (if s.sat { num::sat_f64(f) } else { f }).to_bits()
                }
                Ft::F16 => num::int_to_f16(x, rnd) as u64,
                Ft::Bf16 => num::int_to_bf16(x, rnd) as u64,
            };
            r
        }
        (CvtT::F(st), CvtT::Int(dt)) => {
            let x: f64 = match st {
                Ft::F32 => {
                    let f = f32v(v);
                    (if s.ftz { num::ftz_f32(f) } else { f }) as f64
                }
                Ft::F64 => f64v(v),
                Ft::F16 => num::f16_to_f64(v as u16),
                Ft::Bf16 => num::bf16_to_f64(v as u16),
            };
            dt.norm(num::f64_to_int(x, rnd, dt.signed, dt.bits as u32))
        }
        (CvtT::F(st), CvtT::F(dt)) => {
            let out = match (st, dt) {
                (Ft::F32, Ft::F32) => {
                    let mut x = f32v(v);
                    if s.ftz {
                        x = num::ftz_f32(x);
                    }
                    if s.rint {
                        x = num::round_int_f32(x, rnd);
                    }
                    if s.ftz {
                        x = num::ftz_f32(x);
                    }
                    if s.sat {
                        x = num::sat_f32(x);
                    }
                    c32(x)
                }
                (Ft::F64, Ft::F64) => {
                    let mut x = f64v(v);
                    if s.rint {
                        x = num::round_int_f64(x, rnd);
                    }
                    if s.sat {
                        x = num::sat_f64(x);
                    }
                    c64(x)
                }
                (Ft::F32, Ft::F64) => {
                    let x = f32v(v);
                    let x = if s.ftz { num::ftz_f32(x) } else { x };
                    let y = num::f32_to_f64(x);
                    c64(if s.sat { num::sat_f64(y) } else { y })
                }
                (Ft::F64, Ft::F32) => {
                    let mut x = num::f64_to_f32(f64v(v), rnd);
                    if s.ftz {
                        x = num::ftz_f32(x);
                    }
                    if s.sat {
                        x = num::sat_f32(x);
                    }
                    c32(x)
                }
                (Ft::F16 | Ft::Bf16, Ft::F32) => {
                    let mut x = to_f32_any(st, v);
                    if s.ftz {
                        x = num::ftz_f32(x);
                    }
                    if s.sat {
                        x = num::sat_f32(x);
                    }
                    c32(x)
                }
                (Ft::F16 | Ft::Bf16, Ft::F64) => {
                    let y = if st == Ft::F16 { num::f16_to_f64(v as u16) } else { num::bf16_to_f64(v as u16) };
                    c64(if s.sat { num::sat_f64(y) } else { y })
                }
                (_, Ft::F16 | Ft::Bf16) => {
                    let bf = dt == Ft::Bf16;
                    let mut h = if st == Ft::F64 {
                        let x = f64v(v);
                        let x = if s.sat { num::sat_f64(x) } else { x };
                        if bf {
                            num::f64_to_bf16(x, rnd)
                        } else {
                            num::f64_to_f16(x, rnd)
                        }
                    } else {
                        let mut x = to_f32_any(st, v);
                        if s.ftz {
                            x = num::ftz_f32(x);
                        }
                        if s.sat {
                            x = num::sat_f32(x);
                        }
                        if st == dt {
                            // same half type: round to integral when asked
                            if s.rint {
                                x = num::round_int_f32(x, rnd);
                            }
                            if bf {
                                num::f32_to_bf16(x, Rnd::Rn, false)
                            } else {
                                num::f32_to_f16(x, Rnd::Rn, false)
                            }
                        } else if bf {
                            num::f32_to_bf16(x, rnd, s.satfinite)
                        } else {
                            num::f32_to_f16(x, rnd, s.satfinite)
                        }
                    };
                    if s.relu && h & 0x8000 != 0 && !hnan(bf, h) {
                        h = 0;
                    }
                    h as u64
                }
            };
            out
        }
    }
}

pub fn cvt_pack(kind: PackKind, relu: bool, a: u64, b: u64) -> u64 {
    let r = |x: f32| if relu && x < 0.0 { 0.0 } else { x };
    match kind {
        PackKind::F16x2 | PackKind::Bf16x2 => {
            let bf = kind == PackKind::Bf16x2;
            let one = |v: u64| -> u64 {
                let x = r(f32v(v));
                let h = if bf { num::f32_to_bf16(x, Rnd::Rn, false) } else { num::f32_to_f16(x, Rnd::Rn, false) };
                let h = if relu && h & 0x8000 != 0 && !hnan(bf, h) { 0 } else { h };
                h as u64
            };
            (one(a) << 16) | one(b)
        }
        PackKind::E4m3x2 => ((num::f32_to_e4m3(r(f32v(a)), true) as u64) << 8) | num::f32_to_e4m3(r(f32v(b)), true) as u64,
        PackKind::E5m2x2 => ((num::f32_to_e5m2(r(f32v(a)), true) as u64) << 8) | num::f32_to_e5m2(r(f32v(b)), true) as u64,
        PackKind::E4m3x2FromF16x2 | PackKind::E5m2x2FromF16x2 => {
            let e5 = kind == PackKind::E5m2x2FromF16x2;
            let one = |h: u16| -> u64 {
                let h = if relu && h & 0x8000 != 0 && !hnan(false, h) { 0 } else { h };
                (if e5 { num::f16_to_e5m2(h, true) } else { num::f16_to_e4m3(h, true) }) as u64
            };
            (one((a >> 16) as u16) << 8) | one(a as u16)
        }
    }
}

pub fn fp8_unpack(e5m2: bool, a: u64) -> u64 {
    let one = |b: u8| -> u64 { (if e5m2 { num::e5m2_to_f16(b) } else { num::e4m3_to_f16(b) }) as u64 };
    (one((a >> 8) as u8) << 16) | one(a as u8)
}

pub fn testp(op: TestOp, t: Ft, a: u64) -> bool {
    let x = if t == Ft::F32 { f32v(a) as f64 } else { f64v(a) };
    let sub = if t == Ft::F32 { f32v(a).is_subnormal() } else { x.is_subnormal() };
    match op {
        TestOp::Finite => x.is_finite(),
        TestOp::Infinite => x.is_infinite(),
        TestOp::Number => !x.is_nan(),
        TestOp::NotANumber => x.is_nan(),
        TestOp::Normal => x.is_finite() && x != 0.0 && !sub,
        TestOp::Subnormal => sub,
    }
}

pub fn atom_apply(op: AtomOp, t: It, old: u64, b: u64, c: u64) -> u64 {
    let m = t.mask();
    match op {
        AtomOp::Add => t.norm(old.wrapping_add(b)),
        AtomOp::AddF32 => c32(f32v(old) + f32v(b)) & 0xFFFF_FFFF,
        AtomOp::AddF64 => c64(f64v(old) + f64v(b)),
        AtomOp::Min => ibin(IOp::Min, t, old, b),
        AtomOp::Max => ibin(IOp::Max, t, old, b),
        AtomOp::Inc => {
            let (o, bb) = (old & m, b & m);
            if o >= bb {
                0
            } else {
                o + 1
            }
        }
        AtomOp::Dec => {
            let (o, bb) = (old & m, b & m);
            if o == 0 || o > bb {
                bb
            } else {
                o - 1
            }
        }
        AtomOp::And => t.norm(old & b),
        AtomOp::Or => t.norm(old | b),
        AtomOp::Xor => t.norm(old ^ b),
        AtomOp::Exch => t.norm(b),
        AtomOp::Cas => {
            if old & m == b & m {
                t.norm(c)
            } else {
                t.norm(old)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn int_ops() {
        let s32 = It::S32;
        let u32t = It::U32;
        assert_eq!(ibin(IOp::Add, u32t, 0xFFFF_FFFF, 1), 0);
        assert_eq!(ibin(IOp::Sub, s32, 0, 1), u64::MAX);
        assert_eq!(ibin(IOp::MulHi, u32t, 0x8000_0000, 4), 2);
        assert_eq!(ibin(IOp::MulHi, s32, (-2i64) as u64, 0x8000_0000), 1);
        assert_eq!(ibin(IOp::MulWide, s32, (-3i64) as u64, 5), (-15i64) as u64);
        assert_eq!(ibin(IOp::MulWide, u32t, 0xFFFF_FFFF, 2), 0x1_FFFF_FFFE);
        assert_eq!(ibin(IOp::Shr, s32, (-16i64) as u64, 2), (-4i64) as u64);
        assert_eq!(ibin(IOp::Shr, u32t, 0xFFFF_FFF0, 40), 0);
        assert_eq!(ibin(IOp::Shr, s32, (-16i64) as u64, 40), u64::MAX);
        assert_eq!(ibin(IOp::Shl, u32t, 1, 31), 0x8000_0000);
        assert_eq!(ibin(IOp::Div, s32, (-7i64) as u64, 2), (-3i64) as u64);
        assert_eq!(ibin(IOp::Rem, s32, (-7i64) as u64, 2), (-1i64) as u64);
        assert_eq!(ibin(IOp::Min, s32, (-7i64) as u64, 2), (-7i64) as u64);
        assert_eq!(ibin(IOp::Min, u32t, 0xFFFF_FFF9, 2), 2);
        assert_eq!(iun(IUOp::Clz, u32t, 1), 31);
        assert_eq!(iun(IUOp::Clz, It::U64, 1), 63);
        assert_eq!(iun(IUOp::Popc, It::U64, u64::MAX), 64);
        assert_eq!(iun(IUOp::Brev, u32t, 1), 0x8000_0000);
        assert_eq!(iun(IUOp::Bfind, u32t, 0x10), 4);
        assert_eq!(iun(IUOp::Bfind, u32t, 0), 0xFFFF_FFFF);
        assert_eq!(iun(IUOp::Bfind, s32, (-1i64) as u64), 0xFFFF_FFFF);
        assert_eq!(iun(IUOp::BfindShift, u32t, 0x10), 27);
        assert_eq!(bfe(u32t, 0xABCD_1234, 8, 8), 0x12);
        assert_eq!(bfe(s32, 0x0000_8000, 8, 8), (-128i64) as u64);
        assert_eq!(bfi(It { bits: 32, signed: false }, 0xF, 0, 4, 4), 0xF0);
        assert_eq!(prmt(0, 0x4433_2211, 0x8877_6655, 0x3210), 0x4433_2211);
        assert_eq!(prmt(0, 0x4433_2211, 0x8877_6655, 0x7654), 0x8877_6655);
        assert_eq!(prmt(0, 0x0000_0080, 0, 0x8888), 0xFFFF_FFFF);
        assert_eq!(lop3(0xF0, 0x1234, 0, 0), 0x1234);
        assert_eq!(lop3(0x96, 0b1100, 0b1010, 0b0110), 0b1100 ^ 0b1010 ^ 0b0110);
        assert_eq!(lop3(0x80, 0b1110, 0b0111, 0b1111), 0b0110);
        assert_eq!(shf(true, false, 0x8000_0000, 0x1, 1), 0x3);
        assert_eq!(shf(false, false, 0x2, 0x1, 1), 0x8000_0001);
        assert_eq!(shf(false, true, 0x2, 0x1, 40), 1);
        assert_eq!(fns(0b1011_0000, 0, 2), 5);
        assert_eq!(fns(0b1011_0000, 7, (-2i64) as u64), 5);
        let (r, c) = cc(CcMode { sub: false, cin: false, cout: true }, false, u32t, 0xFFFF_FFFF, 1, 0, false);
        assert_eq!((r, c), (0, true));
        let (r, _) = cc(CcMode { sub: false, cin: true, cout: false }, false, u32t, 1, 1, 0, true);
        assert_eq!(r, 3);
        let (r, c) = cc(CcMode { sub: true, cin: false, cout: true }, false, u32t, 0, 1, 0, false);
        assert_eq!((r, c), (0xFFFF_FFFF, true));
        assert_eq!(dp4a(false, false, 0xFF01_0203, 0x0101_0101, 10), (10 + 1 + 2 + 3 - 1) as u64);
    }

    #[test]
    fn float_ops() {
        let one = 1.0f32.to_bits() as u64;
        let two = 2.0f32.to_bits() as u64;
        assert_eq!(fbin32(FOp::Add, Rnd::Rn, false, false, one, two), 3.0f32.to_bits() as u64);
        assert_eq!(fbin32(FOp::Add, Rnd::Rn, false, true, one, two), 1.0f32.to_bits() as u64);
        let nan = f32::NAN.to_bits() as u64 | 0x123;
        assert_eq!(fbin32(FOp::Mul, Rnd::Rn, false, false, nan, two), NAN32);
        assert_eq!(fbin32(FOp::Min, Rnd::Rn, false, false, nan, two), two);
        assert_eq!(fbin32(FOp::Copysign, Rnd::Rn, false, false, (-1.0f32).to_bits() as u64, two), (-2.0f32).to_bits() as u64);
        assert!(compare(Cmp::Ltu, Ct::F(Ft::F32), nan, two));
        assert!(!compare(Cmp::Lt, Ct::F(Ft::F32), nan, two));
        assert!(!compare(Cmp::Ne, Ct::F(Ft::F32), nan, two));
        let spec = CvtSpec {
            dt: CvtT::Int(It::S32),
            st: CvtT::F(Ft::F32),
            rnd: Rnd::Rn,
            rint: true,
            ftz: false,
            sat: false,
            satfinite: false,
            relu: false,
        };
        assert_eq!(cvt(&spec, 2.5f32.to_bits() as u64), 2);
        assert_eq!(cvt(&spec, (-3.5f32).to_bits() as u64), (-4i64) as u64);
        assert_eq!(cvt(&spec, 1e20f32.to_bits() as u64), i32::MAX as u64);
        let spec2 = CvtSpec { dt: CvtT::F(Ft::Bf16), st: CvtT::F(Ft::F32), rint: false, ..spec };
        assert_eq!(cvt(&spec2, 1.0f32.to_bits() as u64), 0x3F80);
        let spec3 = CvtSpec { dt: CvtT::Int(It::U64), st: CvtT::Int(It::S32), rint: false, ..spec };
        assert_eq!(cvt(&spec3, (-1i64) as u64), u64::MAX);
        let spec4 = CvtSpec { dt: CvtT::Int(It::U32), st: CvtT::Int(It::S32), sat: true, ..spec3 };
        assert_eq!(cvt(&spec4, (-1i64) as u64), 0);
        assert_eq!(cvt_pack(PackKind::Bf16x2, false, one, two), 0x3F80_4000);
        assert_eq!(h1(FOp::Add, false, false, false, 0x3C00, 0x3C00), 0x4000);
        assert_eq!(hx(true, 0x3C00_3C00, 0x3C00_4000, |x, y| h1(FOp::Mul, false, false, false, x, y)), 0x3C00_4000);
    }
}
