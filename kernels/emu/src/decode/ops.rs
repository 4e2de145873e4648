//! Per-opcode decoding: modifiers and operands -> `Op`.
use super::inst::*;
use super::{Builder, Imm};
use crate::num::Rnd;
use crate::ptx::ast::{Instruction, Operand, ScalarType};

type Res<T> = Result<T, String>;

struct Mods<'a> {
    m: &'a [String],
    used: Vec<bool>,
}

impl<'a> Mods<'a> {
    fn new(m: &'a [String]) -> Mods<'a> {
        Mods { m, used: vec![false; m.len()] }
    }
    fn has(&mut self, s: &str) -> bool {
        for (i, x) in self.m.iter().enumerate() {
            if !self.used[i] && x == s {
                self.used[i] = true;
                return true;
            }
        }
        false
    }
    fn any(&mut self, list: &[&'static str]) -> Option<&'static str> {
        for (i, x) in self.m.iter().enumerate() {
            if !self.used[i] {
                if let Some(s) = list.iter().find(|s| **s == x.as_str()) {
                    self.used[i] = true;
                    return Some(s);
                }
            }
        }
        None
    }
    /// Cache, eviction and memory-ordering hints that do not change single-threaded semantics.
    /// Returns true if `.L2::cache_hint` (an extra operand) is present.
    fn ignore_hints(&mut self) -> bool {
        let mut hint = false;
        for (i, x) in self.m.iter().enumerate() {
            if self.used[i] {
                continue;
            }
            let s = x.as_str();
            if s == "L2::cache_hint" {
                hint = true;
                self.used[i] = true;
            } else if s.starts_with("L1::") || s.starts_with("L2::") {
                self.used[i] = true;
            } else if matches!(
                s,
                "ca" | "cg" | "cs" | "lu" | "cv" | "wb" | "wt" | "nc" | "volatile" | "relaxed" | "acquire" | "release"
                    | "acq_rel" | "weak" | "mmio" | "cta" | "gpu" | "sys" | "cluster" | "unified"
            ) {
                self.used[i] = true;
            }
        }
        hint
    }
    fn rnd(&mut self) -> Option<Rnd> {
        self.any(&["rn", "rz", "rm", "rp"]).map(rnd_of)
    }
    fn irnd(&mut self) -> Option<Rnd> {
        self.any(&["rni", "rzi", "rmi", "rpi"]).map(|s| rnd_of(&s[..2]))
    }
    fn types(&mut self) -> Vec<ScalarType> {
        let mut out = Vec::new();
        for (i, x) in self.m.iter().enumerate() {
            if !self.used[i] {
                if let Some(t) = ScalarType::from_name(x) {
                    self.used[i] = true;
                    out.push(t);
                }
            }
        }
        out
    }
    fn one_type(&mut self) -> Res<ScalarType> {
        let t = self.types();
        if t.len() != 1 {
            return Err(format!("expected one type, got {t:?}"));
        }
        Ok(t[0])
    }
    fn done(&self) -> Res<()> {
        for (i, x) in self.m.iter().enumerate() {
            if !self.used[i] {
                return Err(format!("modifier .{x}"));
            }
        }
        Ok(())
    }
}

fn rnd_of(s: &str) -> Rnd {
    match s {
        "rz" => Rnd::Rz,
        "rm" => Rnd::Rm,
        "rp" => Rnd::Rp,
        _ => Rnd::Rn,
    }
}

fn it_of(t: ScalarType) -> Option<It> {
    use ScalarType::*;
    Some(match t {
        B8 | U8 => It { bits: 8, signed: false },
        S8 => It { bits: 8, signed: true },
        B16 | U16 => It { bits: 16, signed: false },
        S16 => It { bits: 16, signed: true },
        B32 | U32 => It { bits: 32, signed: false },
        S32 => It { bits: 32, signed: true },
        B64 | U64 => It { bits: 64, signed: false },
        S64 => It { bits: 64, signed: true },
        _ => return None,
    })
}

fn ft_of(t: ScalarType) -> Option<Ft> {
    match t {
        ScalarType::F32 => Some(Ft::F32),
        ScalarType::F64 => Some(Ft::F64),
        ScalarType::F16 => Some(Ft::F16),
        ScalarType::Bf16 => Some(Ft::Bf16),
        _ => None,
    }
}

fn ht_of(t: ScalarType) -> Option<Ht> {
    match t {
        ScalarType::F16 => Some(Ht { bf: false, x2: false }),
        ScalarType::Bf16 => Some(Ht { bf: true, x2: false }),
        ScalarType::F16x2 => Some(Ht { bf: false, x2: true }),
        ScalarType::Bf16x2 => Some(Ht { bf: true, x2: true }),
        _ => None,
    }
}

pub(crate) fn imm_of(t: ScalarType) -> Imm {
    if let Some(i) = it_of(t) {
        return Imm::Int(i);
    }
    match t {
        ScalarType::F32 => Imm::F32,
        ScalarType::F64 => Imm::F64,
        ScalarType::F16 | ScalarType::Bf16 => Imm::Bits(16),
        _ => Imm::Bits(32),
    }
}

fn nops(i: &Instruction, n: usize) -> Res<&[Operand]> {
    if i.operands.len() != n {
        return Err(format!("expected {n} operands, got {}", i.operands.len()));
    }
    Ok(&i.operands)
}

fn space_of(s: &str) -> Option<Space> {
    Some(match s {
        "global" => Space::Global,
        "shared" | "shared::cta" | "shared::cluster" => Space::Shared,
        "local" => Space::Local,
        "param" | "param::entry" | "param::func" => Space::Param,
        "const" => Space::Global,
        _ => return None,
    })
}

const SPACES: &[&str] = &["global", "shared", "shared::cta", "shared::cluster", "local", "param", "param::entry", "param::func", "const"];

fn mask_op(b: &mut Builder, o: &Operand) -> Res<R> {
    b.src(o, Imm::Int(It::U32))
}

pub(crate) fn decode(b: &mut Builder, i: &Instruction) -> Res<()> {
    let mut m = Mods::new(&i.mods);
    let ops = &i.operands;
    let op = i.opcode.as_str();
    match op {
        "mov" => {
            let t = m.one_type()?;
            m.done()?;
            let o = nops(i, 2)?;
            if t == ScalarType::Pred {
                let d = b.pdst(&o[0])?;
                let a = b.psrc(&o[1])?;
                b.emit(Op::PMov { d, a });
                return Ok(());
            }
            let tbits = t.size() * 8;
            match (&o[0], &o[1]) {
                (Operand::Vector(ds), _) => {
                    let n = ds.len();
                    if !(2..=4).contains(&n) || tbits > 64 {
                        return Err("bad vector unpack".into());
                    }
                    let a = b.src(&o[1], Imm::Bits(tbits as u8))?;
                    let mut d = [R_SINK; 4];
                    for (k, x) in ds.iter().enumerate() {
                        d[k] = b.dst(x)?;
                    }
                    b.emit(Op::Unpack { bits: (tbits as usize / n) as u8, n: n as u8, a, d });
                }
                (_, Operand::Vector(ss)) => {
                    let n = ss.len();
                    if !(2..=4).contains(&n) || tbits > 64 {
                        return Err("bad vector pack".into());
                    }
                    let bits = (tbits as usize / n) as u8;
                    let d = b.dst(&o[0])?;
                    let mut s = [R_ZERO; 4];
                    for (k, x) in ss.iter().enumerate() {
                        s[k] = b.src(x, Imm::Bits(bits))?;
                    }
                    b.emit(Op::Pack { bits, n: n as u8, d, s });
                }
                _ => {
                    let d = b.dst(&o[0])?;
                    let a = b.src(&o[1], imm_of(t))?;
                    b.emit(Op::Mov { d, a });
                }
            }
        }
        "add" | "sub" | "addc" | "subc" => {
            let t = m.one_type()?;
            let o = nops(i, 3)?;
            let sub = op.starts_with("sub");
            if let Some(ft) = ft_of(t).filter(|f| matches!(f, Ft::F32 | Ft::F64)) {
                let rnd = m.rnd().unwrap_or(Rnd::Rn);
                let ftz = m.has("ftz");
                let sat = m.has("sat");
                m.done()?;
                let (d, a, bb) = (b.dst(&o[0])?, b.src(&o[1], imm_of(t))?, b.src(&o[2], imm_of(t))?);
                b.emit(Op::FBin { op: if sub { FOp::Sub } else { FOp::Add }, t: ft, rnd, ftz, sat, d, a, b: bb });
            } else if let Some(ht) = ht_of(t) {
                m.has("rn");
                let ftz = m.has("ftz");
                let sat = m.has("sat");
                m.done()?;
                let (d, a, bb) = (b.dst(&o[0])?, b.src(&o[1], imm_of(t))?, b.src(&o[2], imm_of(t))?);
                b.emit(Op::HBin { op: if sub { FOp::Sub } else { FOp::Add }, t: ht, ftz, sat, d, a, b: bb });
            } else {
                let it = it_of(t).ok_or("bad type")?;
                let cc = m.has("cc");
                let sat = m.has("sat");
                m.done()?;
                let (d, a, bb) = (b.dst(&o[0])?, b.src(&o[1], imm_of(t))?, b.src(&o[2], imm_of(t))?);
                let carry = op.ends_with('c');
                if cc || carry {
                    if it.bits < 32 || sat {
                        return Err("carry arithmetic on this type".into());
                    }
                    b.emit(Op::Cc { mode: CcMode { sub, cin: carry, cout: cc }, mad: false, t: it, d, a, b: bb, c: R_ZERO });
                } else if sat {
                    if it != It::S32 {
                        return Err(".sat needs .s32".into());
                    }
                    b.emit(Op::IBin { op: if sub { IOp::SubSat } else { IOp::AddSat }, t: it, d, a, b: bb });
                } else {
                    b.emit(Op::IBin { op: if sub { IOp::Sub } else { IOp::Add }, t: it, d, a, b: bb });
                }
            }
        }
        "mul" | "mul24" => {
            let t = m.one_type()?;
            let o = nops(i, 3)?;
            if let Some(ft) = ft_of(t).filter(|f| matches!(f, Ft::F32 | Ft::F64)) {
                let rnd = m.rnd().unwrap_or(Rnd::Rn);
                let ftz = m.has("ftz");
                let sat = m.has("sat");
                m.done()?;
                let (d, a, bb) = (b.dst(&o[0])?, b.src(&o[1], imm_of(t))?, b.src(&o[2], imm_of(t))?);
                b.emit(Op::FBin { op: FOp::Mul, t: ft, rnd, ftz, sat, d, a, b: bb });
            } else if let Some(ht) = ht_of(t) {
                m.has("rn");
                let ftz = m.has("ftz");
                let sat = m.has("sat");
                m.done()?;
                let (d, a, bb) = (b.dst(&o[0])?, b.src(&o[1], imm_of(t))?, b.src(&o[2], imm_of(t))?);
                b.emit(Op::HBin { op: FOp::Mul, t: ht, ftz, sat, d, a, b: bb });
            } else {
                let it = it_of(t).ok_or("bad type")?;
                let mode = m.any(&["lo", "hi", "wide"]).ok_or("mul needs .lo/.hi/.wide")?;
                m.done()?;
                let iop = match (op, mode) {
                    ("mul", "lo") => IOp::MulLo,
                    ("mul", "hi") => IOp::MulHi,
                    ("mul", "wide") if it.bits <= 32 => IOp::MulWide,
                    ("mul24", "lo") if it.bits == 32 => IOp::Mul24Lo,
                    ("mul24", "hi") if it.bits == 32 => IOp::Mul24Hi,
                    _ => return Err("bad mul form".into()),
                };
                let (d, a, bb) = (b.dst(&o[0])?, b.src(&o[1], imm_of(t))?, b.src(&o[2], imm_of(t))?);
                b.emit(Op::IBin { op: iop, t: it, d, a, b: bb });
            }
        }
        "mad" | "mad24" | "madc" | "fma" | "sad" => {
            let t = m.one_type()?;
            let o = nops(i, 4)?;
            if let Some(ft) = ft_of(t).filter(|f| matches!(f, Ft::F32 | Ft::F64)) {
                if op != "fma" && op != "mad" {
                    return Err("bad float form".into());
                }
                let rnd = m.rnd().unwrap_or(Rnd::Rn);
                let ftz = m.has("ftz");
                let sat = m.has("sat");
                m.done()?;
                let im = imm_of(t);
                let (d, a, bb, c) = (b.dst(&o[0])?, b.src(&o[1], im)?, b.src(&o[2], im)?, b.src(&o[3], im)?);
                b.emit(Op::FFma { t: ft, rnd, ftz, sat, d, a, b: bb, c });
            } else if let Some(ht) = ht_of(t) {
                if op != "fma" {
                    return Err("bad half form".into());
                }
                m.has("rn");
                let ftz = m.has("ftz");
                let sat = m.has("sat");
                let relu = m.has("relu");
                m.done()?;
                let im = imm_of(t);
                let (d, a, bb, c) = (b.dst(&o[0])?, b.src(&o[1], im)?, b.src(&o[2], im)?, b.src(&o[3], im)?);
                b.emit(Op::HFma { t: ht, ftz, sat, relu, d, a, b: bb, c });
            } else {
                let it = it_of(t).ok_or("bad type")?;
                let im = imm_of(t);
                if op == "sad" {
                    m.done()?;
                    let (d, a, bb, c) = (b.dst(&o[0])?, b.src(&o[1], im)?, b.src(&o[2], im)?, b.src(&o[3], im)?);
                    b.emit(Op::IMad { op: MadOp::Sad, t: it, d, a, b: bb, c });
                    return Ok(());
                }
                if op == "fma" {
                    return Err("fma on integers".into());
                }
                let mode = m.any(&["lo", "hi", "wide"]).ok_or("mad needs .lo/.hi/.wide")?;
                let sat = m.has("sat");
                let cc = m.has("cc");
                m.done()?;
                let wide_t = if mode == "wide" { It { bits: it.bits * 2, signed: it.signed } } else { it };
                let (d, a, bb, c) =
                    (b.dst(&o[0])?, b.src(&o[1], im)?, b.src(&o[2], im)?, b.src(&o[3], Imm::Int(wide_t))?);
                if op == "madc" || cc {
                    if mode == "wide" || op == "mad24" || it.bits < 32 {
                        return Err("bad carry mad".into());
                    }
                    let ccm = CcMode { sub: false, cin: op == "madc", cout: cc };
                    if mode != "lo" {
                        return Err("mad.hi with carry is not supported".into());
                    }
                    b.emit(Op::Cc { mode: ccm, mad: true, t: it, d, a, b: bb, c });
                    return Ok(());
                }
                let mop = match (op, mode, sat) {
                    ("mad", "lo", false) => MadOp::Lo,
                    ("mad", "hi", false) => MadOp::Hi,
                    ("mad", "hi", true) if it == It::S32 => MadOp::HiSat,
                    ("mad", "wide", false) if it.bits <= 32 => MadOp::Wide,
                    ("mad24", "lo", false) if it.bits == 32 => MadOp::Lo24,
                    ("mad24", "hi", false) if it.bits == 32 => MadOp::Hi24,
                    _ => return Err("bad mad form".into()),
                };
                b.emit(Op::IMad { op: mop, t: it, d, a, b: bb, c });
            }
        }
        "div" | "rem" | "min" | "max" | "copysign" => {
            let t = m.one_type()?;
            let o = nops(i, 3)?;
            let im = imm_of(t);
            if let Some(ft) = ft_of(t).filter(|f| matches!(f, Ft::F32 | Ft::F64)) {
                let fop = match op {
                    "div" => {
                        if m.has("approx") {
                            FOp::DivApprox
                        } else if m.has("full") {
                            FOp::DivFull
                        } else {
                            FOp::Div
                        }
                    }
                    "min" => {
                        if m.has("NaN") {
                            FOp::MinNan
                        } else {
                            FOp::Min
                        }
                    }
                    "max" => {
                        if m.has("NaN") {
                            FOp::MaxNan
                        } else {
                            FOp::Max
                        }
                    }
                    "copysign" => FOp::Copysign,
                    _ => return Err("rem on floats".into()),
                };
                if ft == Ft::F64 && matches!(fop, FOp::DivApprox | FOp::DivFull) {
                    return Err("approximate f64 division".into());
                }
                let rnd = m.rnd().unwrap_or(Rnd::Rn);
                let ftz = m.has("ftz");
                m.done()?;
                let (d, a, bb) = (b.dst(&o[0])?, b.src(&o[1], im)?, b.src(&o[2], im)?);
                b.emit(Op::FBin { op: fop, t: ft, rnd, ftz, sat: false, d, a, b: bb });
            } else if let Some(ht) = ht_of(t) {
                let fop = match op {
                    "min" => {
                        if m.has("NaN") {
                            FOp::MinNan
                        } else {
                            FOp::Min
                        }
                    }
                    "max" => {
                        if m.has("NaN") {
                            FOp::MaxNan
                        } else {
                            FOp::Max
                        }
                    }
                    _ => return Err("bad half op".into()),
                };
                let ftz = m.has("ftz");
                m.done()?;
                let (d, a, bb) = (b.dst(&o[0])?, b.src(&o[1], im)?, b.src(&o[2], im)?);
                b.emit(Op::HBin { op: fop, t: ht, ftz, sat: false, d, a, b: bb });
            } else {
                let it = it_of(t).ok_or("bad type")?;
                let iop = match op {
                    "div" => IOp::Div,
                    "rem" => IOp::Rem,
                    "min" => IOp::Min,
                    "max" => IOp::Max,
                    _ => return Err("copysign on integers".into()),
                };
                if it.bits < 16 {
                    return Err("8-bit arithmetic".into());
                }
                m.done()?;
                let (d, a, bb) = (b.dst(&o[0])?, b.src(&o[1], im)?, b.src(&o[2], im)?);
                b.emit(Op::IBin { op: iop, t: it, d, a, b: bb });
            }
        }
        "abs" | "neg" => {
            let t = m.one_type()?;
            let o = nops(i, 2)?;
            let im = imm_of(t);
            if let Some(ft) = ft_of(t).filter(|f| matches!(f, Ft::F32 | Ft::F64)) {
                let ftz = m.has("ftz");
                m.done()?;
                let (d, a) = (b.dst(&o[0])?, b.src(&o[1], im)?);
                let fop = if op == "abs" { FUOp::Abs } else { FUOp::Neg };
                b.emit(Op::FUn { op: fop, t: ft, rnd: Rnd::Rn, ftz, sat: false, d, a });
            } else if let Some(ht) = ht_of(t) {
                m.has("ftz");
                m.done()?;
                let (d, a) = (b.dst(&o[0])?, b.src(&o[1], im)?);
                b.emit(Op::HUn { neg: op == "neg", t: ht, d, a });
            } else {
                let it = it_of(t).ok_or("bad type")?;
                m.done()?;
                let (d, a) = (b.dst(&o[0])?, b.src(&o[1], im)?);
                b.emit(Op::IUn { op: if op == "abs" { IUOp::Abs } else { IUOp::Neg }, t: it, d, a });
            }
        }
        "rcp" | "sqrt" | "rsqrt" | "ex2" | "lg2" | "sin" | "cos" | "tanh" => {
            let t = m.one_type()?;
            let ft = ft_of(t).filter(|f| matches!(f, Ft::F32 | Ft::F64)).ok_or("only f32/f64")?;
            let approx = m.has("approx");
            let rnd = m.rnd();
            let ftz = m.has("ftz");
            m.done()?;
            let fop = match (op, approx, rnd.is_some(), ft) {
                ("rcp", true, false, Ft::F32) => FUOp::RcpApprox,
                ("rcp", true, false, Ft::F64) if ftz => FUOp::RcpApproxFtzF64,
                ("rcp", false, true, _) => FUOp::Rcp,
                ("sqrt", true, false, Ft::F32) => FUOp::SqrtApprox,
                ("sqrt", false, true, _) => FUOp::Sqrt,
                ("rsqrt", true, false, _) => FUOp::Rsqrt,
                ("ex2", true, false, Ft::F32) => FUOp::Ex2,
                ("lg2", true, false, Ft::F32) => FUOp::Lg2,
                ("sin", true, false, Ft::F32) => FUOp::Sin,
                ("cos", true, false, Ft::F32) => FUOp::Cos,
                ("tanh", true, false, Ft::F32) => FUOp::Tanh,
                _ => return Err("unsupported rounding/type combination".into()),
            };
            let o = nops(i, 2)?;
            let (d, a) = (b.dst(&o[0])?, b.src(&o[1], imm_of(t))?);
            b.emit(Op::FUn { op: fop, t: ft, rnd: rnd.unwrap_or(Rnd::Rn), ftz, sat: false, d, a });
        }
        "and" | "or" | "xor" => {
            let t = m.one_type()?;
            m.done()?;
            let o = nops(i, 3)?;
            if t == ScalarType::Pred {
                let (d, a, bb) = (b.pdst(&o[0])?, b.psrc(&o[1])?, b.psrc(&o[2])?);
                let bop = match op {
                    "and" => BoolOp::And,
                    "or" => BoolOp::Or,
                    _ => BoolOp::Xor,
                };
                b.emit(Op::PLogic { op: bop, d, a, b: bb });
            } else {
                let it = it_of(t).ok_or("bad type")?;
                let (d, a, bb) = (b.dst(&o[0])?, b.src(&o[1], imm_of(t))?, b.src(&o[2], imm_of(t))?);
                let iop = match op {
                    "and" => IOp::And,
                    "or" => IOp::Or,
                    _ => IOp::Xor,
                };
                b.emit(Op::IBin { op: iop, t: it, d, a, b: bb });
            }
        }
        "not" | "cnot" | "popc" | "clz" | "brev" | "bfind" => {
            let t = m.one_type()?;
            let shift = op == "bfind" && m.has("shiftamt");
            m.done()?;
            let o = nops(i, 2)?;
            if t == ScalarType::Pred {
                if op != "not" {
                    return Err("bad predicate op".into());
                }
                let (d, a) = (b.pdst(&o[0])?, b.psrc(&o[1])?);
                b.emit(Op::PNot { d, a });
                return Ok(());
            }
            let it = it_of(t).ok_or("bad type")?;
            let (d, a) = (b.dst(&o[0])?, b.src(&o[1], imm_of(t))?);
            let uop = match op {
                "not" => IUOp::Not,
                "cnot" => IUOp::Cnot,
                "popc" => IUOp::Popc,
                "clz" => IUOp::Clz,
                "brev" => IUOp::Brev,
                _ => {
                    if shift {
                        IUOp::BfindShift
                    } else {
                        IUOp::Bfind
                    }
                }
            };
            b.emit(Op::IUn { op: uop, t: it, d, a });
        }
        "shl" | "shr" => {
            let t = m.one_type()?;
            m.done()?;
            let it = it_of(t).ok_or("bad type")?;
            let o = nops(i, 3)?;
            let (d, a, bb) = (b.dst(&o[0])?, b.src(&o[1], imm_of(t))?, b.src(&o[2], Imm::Int(It::U32))?);
            b.emit(Op::IBin { op: if op == "shl" { IOp::Shl } else { IOp::Shr }, t: it, d, a, b: bb });
        }
        "bfe" => {
            let t = m.one_type()?;
            m.done()?;
            let it = it_of(t).filter(|t| t.bits >= 32).ok_or("bad type")?;
            let o = nops(i, 4)?;
            let u = Imm::Int(It::U32);
            let (d, a, bb, c) = (b.dst(&o[0])?, b.src(&o[1], imm_of(t))?, b.src(&o[2], u)?, b.src(&o[3], u)?);
            b.emit(Op::Bfe { t: it, d, a, b: bb, c });
        }
        "bfi" => {
            let t = m.one_type()?;
            m.done()?;
            let it = it_of(t).filter(|t| t.bits >= 32).ok_or("bad type")?;
            let o = nops(i, 5)?;
            let u = Imm::Int(It::U32);
            let (d, a, bb, c, e) =
                (b.dst(&o[0])?, b.src(&o[1], imm_of(t))?, b.src(&o[2], imm_of(t))?, b.src(&o[3], u)?, b.src(&o[4], u)?);
            b.emit(Op::Bfi { t: it, d, a, b: bb, c, e });
        }
        "prmt" => {
            let mode = match m.any(&["f4e", "b4e", "rc8", "ecl", "ecr", "rc16"]) {
                None => 0,
                Some("f4e") => 1,
                Some("b4e") => 2,
                Some("rc8") => 3,
                Some("ecl") => 4,
                Some("ecr") => 5,
                Some(_) => 6,
            };
            let t = m.one_type()?;
            m.done()?;
            if t != ScalarType::B32 {
                return Err("prmt needs .b32".into());
            }
            let o = nops(i, 4)?;
            let u = Imm::Int(It::U32);
            let (d, a, bb, c) = (b.dst(&o[0])?, b.src(&o[1], u)?, b.src(&o[2], u)?, b.src(&o[3], u)?);
            b.emit(Op::Prmt { mode, d, a, b: bb, c });
        }
        "lop3" => {
            let t = m.one_type()?;
            m.done()?;
            if t != ScalarType::B32 {
                return Err("lop3 needs .b32".into());
            }
            let o = nops(i, 5)?;
            let lut = match &o[4] {
                Operand::Int(v) => *v as u8,
                _ => return Err("lop3 needs an immediate LUT".into()),
            };
            let u = Imm::Int(It::U32);
            let (d, a, bb, c) = (b.dst(&o[0])?, b.src(&o[1], u)?, b.src(&o[2], u)?, b.src(&o[3], u)?);
            b.emit(Op::Lop3 { lut, d, a, b: bb, c });
        }
        "shf" => {
            let dir = m.any(&["l", "r"]).ok_or("shf needs .l/.r")?;
            let mode = m.any(&["wrap", "clamp"]).ok_or("shf needs .wrap/.clamp")?;
            let t = m.one_type()?;
            m.done()?;
            if t != ScalarType::B32 {
                return Err("shf needs .b32".into());
            }
            let o = nops(i, 4)?;
            let u = Imm::Int(It::U32);
            let (d, a, bb, c) = (b.dst(&o[0])?, b.src(&o[1], u)?, b.src(&o[2], u)?, b.src(&o[3], u)?);
            b.emit(Op::Shf { left: dir == "l", clamp: mode == "clamp", d, a, b: bb, c });
        }
        "fns" => {
            let t = m.one_type()?;
            m.done()?;
            if t != ScalarType::B32 {
                return Err("fns needs .b32".into());
            }
            let o = nops(i, 4)?;
            let (d, a, bb, c) = (
                b.dst(&o[0])?,
                b.src(&o[1], Imm::Int(It::U32))?,
                b.src(&o[2], Imm::Int(It::U32))?,
                b.src(&o[3], Imm::Int(It::S32))?,
            );
            b.emit(Op::Fns { d, a, b: bb, c });
        }
        "dp4a" => {
            let ts = m.types();
            m.done()?;
            if ts.len() != 2 {
                return Err("dp4a needs two types".into());
            }
            let ua = ts[0] == ScalarType::U32;
            let ub = ts[1] == ScalarType::U32;
            let o = nops(i, 4)?;
            let ct = if ua && ub { It::U32 } else { It::S32 };
            let (d, a, bb, c) =
                (b.dst(&o[0])?, b.src(&o[1], imm_of(ts[0]))?, b.src(&o[2], imm_of(ts[1]))?, b.src(&o[3], Imm::Int(ct))?);
            b.emit(Op::Dp4a { ua, ub, d, a, b: bb, c });
        }
        "isspacep" => {
            let sp = m.any(SPACES).ok_or("isspacep needs a space")?;
            m.done()?;
            let o = nops(i, 2)?;
            let (d, a) = (b.pdst(&o[0])?, b.src(&o[1], Imm::Int(It::U64))?);
            let space = space_of(sp).ok_or("isspacep space")?;
            b.emit(Op::Isspacep { space, d, a });
        }
        "testp" => {
            let top = match m.any(&["finite", "infinite", "number", "notanumber", "normal", "subnormal"]).ok_or("testp op")? {
                "finite" => TestOp::Finite,
                "infinite" => TestOp::Infinite,
                "number" => TestOp::Number,
                "notanumber" => TestOp::NotANumber,
                "normal" => TestOp::Normal,
                _ => TestOp::Subnormal,
            };
            let t = m.one_type()?;
            m.done()?;
            let ft = ft_of(t).filter(|f| matches!(f, Ft::F32 | Ft::F64)).ok_or("bad type")?;
            let o = nops(i, 2)?;
            let (d, a) = (b.pdst(&o[0])?, b.src(&o[1], imm_of(t))?);
            b.emit(Op::Testp { op: top, t: ft, d, a });
        }
        "setp" | "set" => return setp(b, i, m),
        "selp" => {
            let t = m.one_type()?;
            m.done()?;
            let o = nops(i, 4)?;
            let (d, a, bb, p) = (b.dst(&o[0])?, b.src(&o[1], imm_of(t))?, b.src(&o[2], imm_of(t))?, b.psrc(&o[3])?);
            b.emit(Op::Selp { d, a, b: bb, p });
        }
        "slct" => {
            m.has("ftz");
            let ts = m.types();
            m.done()?;
            if ts.len() != 2 {
                return Err("slct needs two types".into());
            }
            let o = nops(i, 4)?;
            let f32c = ts[1] == ScalarType::F32;
            let (d, a, bb, c) =
                (b.dst(&o[0])?, b.src(&o[1], imm_of(ts[0]))?, b.src(&o[2], imm_of(ts[0]))?, b.src(&o[3], imm_of(ts[1]))?);
            b.emit(Op::Slct { f32c, d, a, b: bb, c });
        }
        "cvt" => return cvt(b, i, m),
        "cvta" => {
            let to = m.has("to");
            let sp = m.any(SPACES).ok_or("cvta needs a space")?;
            let t = m.one_type()?;
            m.done()?;
            if !matches!(t, ScalarType::U32 | ScalarType::U64 | ScalarType::B32 | ScalarType::B64) {
                return Err("cvta size".into());
            }
            let o = nops(i, 2)?;
            let d = b.dst(&o[0])?;
            let a = b.src(&o[1], Imm::Int(It::U64))?;
            let space = space_of(sp).unwrap();
            if space == Space::Global {
                b.emit(Op::Mov { d, a });
            } else {
                b.emit(Op::Cvta { to, space, d, a });
            }
        }
        "ld" | "ldu" | "st" => return ldst(b, i, m),
        "atom" | "red" => return atom(b, i, m),
        "prefetch" | "prefetchu" | "discard" | "applypriority" | "pmevent" => {
            b.emit(Op::Nop);
        }
        "membar" | "fence" => {
            if !super::asyncops::fence(b, i) {
                b.emit(Op::Nop);
            }
        }
        "griddepcontrol" => {
            b.emit(Op::Nop);
        }
        "setmaxnreg" | "wgmma" => return crate::exec::wgmma::decode(b, i),
        "createpolicy" => {
            let d = b.dst(ops.first().ok_or("no operands")?)?;
            b.emit(Op::Mov { d, a: R_ZERO });
        }
        "nanosleep" => {
            b.emit(Op::Nanosleep);
        }
        "exit" => {
            m.done()?;
            b.emit(Op::Exit);
        }
        "trap" | "brkpt" => {
            b.emit(Op::Trap);
        }
        "bar" | "barrier" => return bar(b, i, m),
        "shfl" => {
            if !m.has("sync") {
                return Err("shfl without .sync".into());
            }
            let mode = match m.any(&["up", "down", "bfly", "idx"]).ok_or("shfl mode")? {
                "up" => ShflMode::Up,
                "down" => ShflMode::Down,
                "bfly" => ShflMode::Bfly,
                _ => ShflMode::Idx,
            };
            m.has("b32");
            m.done()?;
            let o = nops(i, 5)?;
            let (d, dp) = match &o[0] {
                Operand::PredPair(x, y) => (b.dst(&Operand::Name(x.clone()))?, b.pdst(&Operand::Name(y.clone()))?),
                x => (b.dst(x)?, P_SINK),
            };
            let u = Imm::Int(It::U32);
            let (a, bb, c, mask) = (b.src(&o[1], u)?, b.src(&o[2], u)?, b.src(&o[3], u)?, mask_op(b, &o[4])?);
            b.emit(Op::Shfl { mode, d, dp, a, b: bb, c, mask });
        }
        "vote" => {
            if !m.has("sync") {
                return Err("vote without .sync".into());
            }
            let mode = m.any(&["all", "any", "uni", "ballot"]).ok_or("vote mode")?;
            let t = m.one_type()?;
            m.done()?;
            let o = nops(i, 3)?;
            let a = b.psrc(&o[1])?;
            let mask = mask_op(b, &o[2])?;
            let (mode, d) = match (mode, t) {
                ("ballot", ScalarType::B32) => (VoteMode::Ballot, b.dst(&o[0])?),
                ("all", ScalarType::Pred) => (VoteMode::All, b.pdst(&o[0])?),
                ("any", ScalarType::Pred) => (VoteMode::Any, b.pdst(&o[0])?),
                ("uni", ScalarType::Pred) => (VoteMode::Uni, b.pdst(&o[0])?),
                _ => return Err("bad vote form".into()),
            };
            b.emit(Op::Vote { mode, d, a, mask });
        }
        "match" => {
            let all = match m.any(&["any", "all"]).ok_or("match mode")? {
                "all" => true,
                _ => false,
            };
            if !m.has("sync") {
                return Err("match without .sync".into());
            }
            let t = m.one_type()?;
            m.done()?;
            let b64 = match t {
                ScalarType::B32 => false,
                ScalarType::B64 => true,
                _ => return Err("match type".into()),
            };
            let o = nops(i, 3)?;
            let (d, dp) = match &o[0] {
                Operand::PredPair(x, y) => (b.dst(&Operand::Name(x.clone()))?, b.pdst(&Operand::Name(y.clone()))?),
                x => (b.dst(x)?, P_SINK),
            };
            if dp != P_SINK && !all {
                return Err("match.any has no predicate".into());
            }
            let a = b.src(&o[1], imm_of(t))?;
            let mask = mask_op(b, &o[2])?;
            b.emit(Op::Match { all, b64, d, dp, a, mask });
        }
        "redux" => {
            if !m.has("sync") {
                return Err("redux without .sync".into());
            }
            let rop = match m.any(&["add", "min", "max", "and", "or", "xor"]).ok_or("redux op")? {
                "add" => ReduxOp::Add,
                "min" => ReduxOp::Min,
                "max" => ReduxOp::Max,
                "and" => ReduxOp::And,
                "or" => ReduxOp::Or,
                _ => ReduxOp::Xor,
            };
            let t = m.one_type()?;
            m.done()?;
            let signed = match t {
                ScalarType::U32 | ScalarType::B32 => false,
                ScalarType::S32 => true,
                _ => return Err("redux type".into()),
            };
            let o = nops(i, 3)?;
            let (d, a, mask) = (b.dst(&o[0])?, b.src(&o[1], imm_of(t))?, mask_op(b, &o[2])?);
            b.emit(Op::Redux { op: rop, signed, d, a, mask });
        }
        "activemask" => {
            m.has("b32");
            m.done()?;
            let o = nops(i, 1)?;
            let d = b.dst(&o[0])?;
            b.emit(Op::Activemask { d });
        }
        "elect" => {
            if !m.has("sync") {
                return Err("elect without .sync".into());
            }
            m.done()?;
            let o = nops(i, 2)?;
            let (d, p) = match &o[0] {
                Operand::PredPair(x, y) => (b.dst(&Operand::Name(x.clone()))?, b.pdst(&Operand::Name(y.clone()))?),
                x => (b.dst(x)?, P_SINK),
            };
            let mask = mask_op(b, &o[1])?;
            b.emit(Op::Elect { d, p, mask });
        }
        "mma" => {
            let kind = crate::tensor::MmaKind::from_mods(&i.mods)?;
            let (na, nb, nc, nd) = kind.regs();
            let o = nops(i, 4)?;
            let vecs = |x: &Operand, n: usize| -> Res<Vec<Operand>> {
                match x {
                    Operand::Vector(v) if v.len() == n => Ok(v.clone()),
                    _ => Err(format!("expected a vector of {n} registers")),
                }
            };
            let dv = vecs(&o[0], nd)?;
            let av = vecs(&o[1], na)?;
            let bv = vecs(&o[2], nb)?;
            let cv = vecs(&o[3], nc)?;
            let mut regs = Vec::new();
            for x in &dv {
                regs.push(b.dst(x)?);
            }
            for x in av.iter().chain(&bv).chain(&cv) {
                regs.push(b.src(x, Imm::Bits(32))?);
            }
            let at = b.push_list(&regs);
            let k = b.add_mma(kind);
            b.emit(Op::Mma { kind: k, regs: at });
        }
        "ldmatrix" | "stmatrix" => {
            if !m.has("sync") || !m.has("aligned") || !m.has("m8n8") {
                return Err("only .sync.aligned.m8n8 forms".into());
            }
            let num = match m.any(&["x1", "x2", "x4"]).ok_or("needs .x1/.x2/.x4")? {
                "x1" => 1u8,
                "x2" => 2,
                _ => 4,
            };
            let trans = m.has("trans");
            m.any(&["shared", "shared::cta"]);
            if !m.has("b16") {
                return Err("only .b16".into());
            }
            m.done()?;
            let o = nops(i, 2)?;
            let (vo, ao) = if op == "ldmatrix" { (&o[0], &o[1]) } else { (&o[1], &o[0]) };
            let regs = match vo {
                Operand::Vector(v) if v.len() == num as usize => v.clone(),
                x if num == 1 => vec![x.clone()],
                _ => return Err("register count does not match .x".into()),
            };
            let (sp, _, base, off) = b.addr(ao)?;
            if sp.is_some_and(|s| s != Space::Shared) {
                return Err("address is not shared".into());
            }
            let mut rr = [R_SINK; 4];
            for (k, x) in regs.iter().enumerate() {
                rr[k] = if op == "ldmatrix" { b.dst(x)? } else { b.src(x, Imm::Bits(32))? };
            }
            if op == "ldmatrix" {
                b.emit(Op::Ldmatrix { num, trans, d: rr, base, off });
            } else {
                b.emit(Op::Stmatrix { num, trans, s: rr, base, off });
            }
        }
        "cp" => return cp(b, i, m),
        "mbarrier" => return super::asyncops::mbarrier(b, i),
        _ => return Err(String::new()),
    }
    Ok(())
}

fn cmp_of(s: &str) -> Option<Cmp> {
    Some(match s {
        "eq" => Cmp::Eq,
        "ne" => Cmp::Ne,
        "lt" | "lo" => Cmp::Lt,
        "le" | "ls" => Cmp::Le,
        "gt" | "hi" => Cmp::Gt,
        "ge" | "hs" => Cmp::Ge,
        "equ" => Cmp::Equ,
        "neu" => Cmp::Neu,
        "ltu" => Cmp::Ltu,
        "leu" => Cmp::Leu,
        "gtu" => Cmp::Gtu,
        "geu" => Cmp::Geu,
        "num" => Cmp::Num,
        "nan" => Cmp::Nan,
        _ => return None,
    })
}

fn setp(b: &mut Builder, i: &Instruction, mut m: Mods) -> Res<()> {
    let cs = m
        .any(&["eq", "ne", "lt", "le", "gt", "ge", "lo", "ls", "hi", "hs", "equ", "neu", "ltu", "leu", "gtu", "geu", "num", "nan"])
        .ok_or("missing comparison")?;
    let cmp = cmp_of(cs).unwrap();
    let comb = m.any(&["and", "or", "xor"]).map(|s| match s {
        "and" => BoolOp::And,
        "or" => BoolOp::Or,
        _ => BoolOp::Xor,
    });
    let ftz = m.has("ftz");
    let ts = m.types();
    m.done()?;
    let set = i.opcode == "set";
    let (dt, st) = if set {
        if ts.len() != 2 {
            return Err("set needs two types".into());
        }
        (Some(ts[0]), ts[1])
    } else {
        if ts.len() != 1 {
            return Err("setp needs one type".into());
        }
        (None, ts[0])
    };
    let ct = if let Some(it) = it_of(st) {
        if matches!(cmp, Cmp::Equ | Cmp::Neu | Cmp::Ltu | Cmp::Leu | Cmp::Gtu | Cmp::Geu | Cmp::Num | Cmp::Nan) {
            return Err("unordered comparison on integers".into());
        }
        Ct::Int(it)
    } else if let Some(ft) = ft_of(st) {
        Ct::F(ft)
    } else {
        return Err("comparison type".into());
    };
    let _ = ftz;
    let n = i.operands.len();
    let o = &i.operands;
    let want = if comb.is_some() { 4 } else { 3 };
    if n != want {
        return Err(format!("expected {want} operands"));
    }
    let im = imm_of(st);
    let a = b.src(&o[1], im)?;
    let bb = b.src(&o[2], im)?;
    let c = if comb.is_some() { b.psrc(&o[3])? } else { P_TRUE };
    if set {
        let dt = dt.unwrap();
        let dct = if dt == ScalarType::F32 {
            CvtT::F(Ft::F32)
        } else {
            CvtT::Int(it_of(dt).filter(|t| t.bits == 32).ok_or("set destination type")?)
        };
        let d = b.dst(&o[0])?;
        b.emit(Op::Set { cmp, t: ct, dt: dct, comb, d, a, b: bb, c });
    } else {
        let (d, d2) = match &o[0] {
            Operand::PredPair(x, y) => (b.pdst(&Operand::Name(x.clone()))?, b.pdst(&Operand::Name(y.clone()))?),
            x => (b.pdst(x)?, P_SINK),
        };
        b.emit(Op::Setp { cmp, t: ct, comb, d, d2, a, b: bb, c });
    }
    Ok(())
}

fn cvt(b: &mut Builder, i: &Instruction, mut m: Mods) -> Res<()> {
    let frnd = m.rnd();
    let irnd = m.irnd();
    let ftz = m.has("ftz");
    let sat = m.has("sat");
    let relu = m.has("relu");
    let satfinite = m.has("satfinite");
    let fp8 = m.any(&["e4m3x2", "e5m2x2"]);
    let ts = m.types();
    m.done()?;
    let o = &i.operands;
    if let Some(f8) = fp8 {
        let e5 = f8 == "e5m2x2";
        // Either the destination (first type position) or the source is the fp8 pair: the
        // modifier order tells which.
        let f8_pos = i.mods.iter().position(|x| x == f8).unwrap();
        let t_pos = i.mods.iter().position(|x| ScalarType::from_name(x).is_some()).unwrap_or(usize::MAX);
        if ts.len() != 1 {
            return Err("fp8 cvt needs one other type".into());
        }
        if f8_pos < t_pos {
            // to fp8x2
            if !satfinite {
                return Err("fp8 conversion needs .satfinite".into());
            }
            match ts[0] {
                ScalarType::F32 => {
                    if o.len() != 3 {
                        return Err("expected 3 operands".into());
                    }
                    let (d, a, bb) = (b.dst(&o[0])?, b.src(&o[1], Imm::F32)?, b.src(&o[2], Imm::F32)?);
                    let kind = if e5 { PackKind::E5m2x2 } else { PackKind::E4m3x2 };
                    b.emit(Op::CvtPack { kind, relu, d, a, b: bb });
                }
                ScalarType::F16x2 => {
                    if o.len() != 2 {
                        return Err("expected 2 operands".into());
                    }
                    let (d, a) = (b.dst(&o[0])?, b.src(&o[1], Imm::Bits(32))?);
                    let kind = if e5 { PackKind::E5m2x2FromF16x2 } else { PackKind::E4m3x2FromF16x2 };
                    b.emit(Op::CvtPack { kind, relu, d, a, b: R_ZERO });
                }
                _ => return Err("fp8 source type".into()),
            }
        } else {
            if ts[0] != ScalarType::F16x2 || o.len() != 2 {
                return Err("fp8x2 converts only to f16x2".into());
            }
            if relu {
                return Err(".relu".into());
            }
            let (d, a) = (b.dst(&o[0])?, b.src(&o[1], Imm::Bits(16))?);
            b.emit(Op::CvtFp8Unpack { e5m2: e5, d, a });
        }
        return Ok(());
    }
    if ts.len() != 2 {
        return Err("cvt needs two types".into());
    }
    let (dt, st) = (ts[0], ts[1]);
    if matches!(dt, ScalarType::F16x2 | ScalarType::Bf16x2) {
        if st != ScalarType::F32 || o.len() != 3 {
            return Err("packed cvt needs two f32 sources".into());
        }
        let (d, a, bb) = (b.dst(&o[0])?, b.src(&o[1], Imm::F32)?, b.src(&o[2], Imm::F32)?);
        let kind = if dt == ScalarType::F16x2 { PackKind::F16x2 } else { PackKind::Bf16x2 };
        if satfinite {
            return Err(".satfinite on packed half".into());
        }
        b.emit(Op::CvtPack { kind, relu, d, a, b: bb });
        return Ok(());
    }
    let ct = |t: ScalarType| -> Res<CvtT> {
        if let Some(i) = it_of(t) {
            Ok(CvtT::Int(i))
        } else if let Some(f) = ft_of(t) {
            Ok(CvtT::F(f))
        } else {
            Err(format!("cvt type {t:?}"))
        }
    };
    let (dct, sct) = (ct(dt)?, ct(st)?);
    if o.len() != 2 {
        return Err("expected 2 operands".into());
    }
    let spec = CvtSpec {
        dt: dct,
        st: sct,
        rnd: irnd.or(frnd).unwrap_or(match (dct, sct) {
            (CvtT::Int(_), CvtT::F(_)) => Rnd::Rz,
            _ => Rnd::Rn,
        }),
        rint: irnd.is_some(),
        ftz,
        sat,
        satfinite,
        relu,
    };
    let (d, a) = (b.dst(&o[0])?, b.src(&o[1], imm_of(st))?);
    b.emit(Op::Cvt { spec, d, a });
    Ok(())
}

fn ldst(b: &mut Builder, i: &Instruction, mut m: Mods) -> Res<()> {
    let st = i.opcode == "st";
    let sp = m.any(SPACES);
    let hint = m.ignore_hints();
    let n = match m.any(&["v2", "v4", "v8"]) {
        None => 1u8,
        Some("v2") => 2,
        Some("v4") => 4,
        Some(_) => return Err(".v8".into()),
    };
    let t = m.one_type()?;
    m.done()?;
    if matches!(t, ScalarType::B128 | ScalarType::Pred) {
        return Err(format!("{t:?} loads/stores"));
    }
    let size = t.size() as u8;
    let signed = matches!(t, ScalarType::S8 | ScalarType::S16 | ScalarType::S32);
    let o = &i.operands;
    let want = if hint { 3 } else { 2 };
    if o.len() != want {
        return Err(format!("expected {want} operands"));
    }
    let (vo, ao) = if st { (&o[1], &o[0]) } else { (&o[0], &o[1]) };
    let (vsp, is_local_param, base, off) = b.addr(ao)?;
    let mut space = match sp {
        Some(s) => space_of(s).unwrap(),
        None => Space::Generic,
    };
    if let Some(v) = vsp {
        if space == Space::Generic {
            space = v;
        } else if space == Space::Param && is_local_param {
            space = Space::Local;
        } else if v != space && !(space == Space::Param && v == Space::Param) {
            if !(space == Space::Global && v == Space::Global) {
                return Err(format!("variable in {} space accessed as {}", v.name(), space.name()));
            }
        }
    }
    if st && space == Space::Param && vsp == Some(Space::Param) {
        return Err("store to a kernel parameter".into());
    }
    let elems: Vec<Operand> = match vo {
        Operand::Vector(v) => v.clone(),
        x => vec![x.clone()],
    };
    if elems.len() != n as usize {
        return Err("vector length does not match".into());
    }
    let mut regs = [R_SINK; 4];
    let im = Imm::Bits(size * 8);
    for (k, x) in elems.iter().enumerate() {
        regs[k] = if st {
            match x {
                Operand::Int(_) | Operand::F32(_) | Operand::F64(_) => b.src(x, imm_of(t))?,
                _ => b.src(x, im)?,
            }
        } else {
            b.dst(x)?
        };
    }
    if st {
        b.emit(Op::St { space, size, n, s: regs, base, off });
    } else {
        b.emit(Op::Ld { space, size, signed, n, d: regs, base, off });
    }
    Ok(())
}

fn atom(b: &mut Builder, i: &Instruction, mut m: Mods) -> Res<()> {
    let red = i.opcode == "red";
    let sp = m.any(&["global", "shared", "shared::cta", "shared::cluster"]);
    let hint = m.ignore_hints();
    let opn = m
        .any(&["add", "min", "max", "inc", "dec", "and", "or", "xor", "exch", "cas"])
        .ok_or("atom operation")?;
    m.has("noftz");
    let t = m.one_type()?;
    m.done()?;
    let it = match t {
        ScalarType::F32 => It::U32,
        ScalarType::F64 => It::U64,
        _ => it_of(t).filter(|t| t.bits >= 32).ok_or_else(|| format!("atomic type {t:?}"))?,
    };
    let aop = match (opn, t) {
        ("add", ScalarType::F32) => AtomOp::AddF32,
        ("add", ScalarType::F64) => AtomOp::AddF64,
        (_, ScalarType::F32 | ScalarType::F64) if opn != "exch" => return Err("float atomic".into()),
        ("add", _) => AtomOp::Add,
        ("min", _) => AtomOp::Min,
        ("max", _) => AtomOp::Max,
        ("inc", _) => AtomOp::Inc,
        ("dec", _) => AtomOp::Dec,
        ("and", _) => AtomOp::And,
        ("or", _) => AtomOp::Or,
        ("xor", _) => AtomOp::Xor,
        ("exch", _) => AtomOp::Exch,
        _ => AtomOp::Cas,
    };
    if red && matches!(aop, AtomOp::Exch | AtomOp::Cas) {
        return Err("red with exch/cas".into());
    }
    let o = &i.operands;
    let nv = if aop == AtomOp::Cas { 2 } else { 1 };
    let want = if red { 1 + nv } else { 2 + nv } + hint as usize;
    if o.len() != want {
        return Err(format!("expected {want} operands"));
    }
    let (d, rest) = if red { (R_SINK, &o[..]) } else { (b.dst(&o[0])?, &o[1..]) };
    let (vsp, _, base, off) = b.addr(&rest[0])?;
    let mut space = match sp {
        Some(s) => space_of(s).unwrap(),
        None => Space::Generic,
    };
    if let Some(v) = vsp {
        if space == Space::Generic {
            space = v;
        }
    }
    if !matches!(space, Space::Global | Space::Shared | Space::Generic) {
        return Err("atomic space".into());
    }
    let im = imm_of(t);
    let bv = b.src(&rest[1], im)?;
    let cv = if nv == 2 { b.src(&rest[2], im)? } else { R_ZERO };
    b.emit(Op::Atom { space, op: aop, t: it, d, base, off, b: bv, c: cv });
    Ok(())
}

fn bar(b: &mut Builder, i: &Instruction, mut m: Mods) -> Res<()> {
    if m.has("warp") {
        if !m.has("sync") {
            return Err("bar.warp needs .sync".into());
        }
        m.done()?;
        let o = nops(i, 1)?;
        let mask = mask_op(b, &o[0])?;
        b.emit(Op::WarpSync { mask });
        return Ok(());
    }
    if m.has("cluster") {
        return Err("cluster barriers are not supported".into());
    }
    m.has("cta");
    m.has("aligned");
    let kind = match m.any(&["sync", "arrive", "red"]) {
        Some("sync") | None => BarKind::Sync,
        Some("arrive") => BarKind::Arrive,
        _ => match m.any(&["popc", "and", "or"]).ok_or("bar.red op")? {
            "popc" => BarKind::RedPopc,
            "and" => BarKind::RedAnd,
            _ => BarKind::RedOr,
        },
    };
    let o = &i.operands;
    let u = Imm::Int(It::U32);
    if matches!(kind, BarKind::RedPopc | BarKind::RedAnd | BarKind::RedOr) {
        let t = m.one_type()?;
        m.done()?;
        if (kind == BarKind::RedPopc) != (t == ScalarType::U32) {
            return Err("bar.red type".into());
        }
        if !(3..=4).contains(&o.len()) {
            return Err("bar.red operands".into());
        }
        let d = if kind == BarKind::RedPopc { b.dst(&o[0])? } else { b.pdst(&o[0])? };
        let id = b.src(&o[1], u)?;
        let count = if o.len() == 4 { b.src(&o[2], u)? } else { NONE };
        let p = b.psrc(o.last().unwrap())?;
        b.emit(Op::Bar { kind, id, count, d, p });
        return Ok(());
    }
    m.done()?;
    if o.is_empty() || o.len() > 2 {
        return Err("bar operands".into());
    }
    let id = b.src(&o[0], u)?;
    let count = if o.len() == 2 { b.src(&o[1], u)? } else { NONE };
    if kind == BarKind::Arrive && count == NONE {
        return Err("bar.arrive needs a thread count".into());
    }
    b.emit(Op::Bar { kind, id, count, d: NONE, p: P_TRUE });
    Ok(())
}

fn cp(b: &mut Builder, i: &Instruction, mut m: Mods) -> Res<()> {
    if !m.has("async") {
        return Err(String::new());
    }
    if m.has("bulk") {
        return super::asyncops::bulk(b, i);
    }
    if m.has("mbarrier") {
        return Err("cp.async.mbarrier is not supported".into());
    }
    if m.has("commit_group") {
        m.done()?;
        b.emit(Op::CpCommit);
        return Ok(());
    }
    if m.has("wait_group") {
        m.done()?;
        let o = nops(i, 1)?;
        let n = match &o[0] {
            Operand::Int(v) => *v as u32,
            _ => return Err("wait_group needs an immediate".into()),
        };
        b.emit(Op::CpWait { n });
        return Ok(());
    }
    if m.has("wait_all") {
        m.done()?;
        b.emit(Op::CpWait { n: NONE });
        return Ok(());
    }
    let cg = m.any(&["ca", "cg"]).ok_or("cp.async needs .ca/.cg")?;
    if m.any(&["shared", "shared::cta"]).is_none() || !m.has("global") {
        return Err("cp.async needs .shared.global".into());
    }
    let hint = m.ignore_hints();
    m.done()?;
    let o = &i.operands;
    let mut o: Vec<Operand> = o.clone();
    if hint {
        o.pop();
    }
    if o.len() < 3 || o.len() > 4 {
        return Err("cp.async operands".into());
    }
    let size = match &o[2] {
        Operand::Int(v) if matches!(v, 4 | 8 | 16) => *v as u8,
        _ => return Err("cp-size must be 4, 8 or 16".into()),
    };
    if cg == "cg" && size != 16 {
        return Err("cp.async.cg needs cp-size 16".into());
    }
    let (dsp, _, dbase, doff) = b.addr(&o[0])?;
    if dsp.is_some_and(|s| s != Space::Shared) {
        return Err("destination is not shared".into());
    }
    let (ssp, _, sbase, soff) = b.addr(&o[1])?;
    if ssp.is_some_and(|s| s != Space::Global) {
        return Err("source is not global".into());
    }
    let src_size = if o.len() == 4 {
        if b.is_pred_operand(&o[3]) {
            // ignore-src predicate: src-size = p ? 0 : cp-size
            let p = b.psrc(&o[3])?;
            let t = b.temp();
            let z = R_ZERO;
            let full = b.konst(size as u64);
            b.emit(Op::Selp { d: t, a: z, b: full, p });
            t
        } else {
            b.src(&o[3], Imm::Int(It::U32))?
        }
    } else {
        NONE
    };
    b.emit(Op::CpAsync { size, src_size, dbase, doff, sbase, soff });
    Ok(())
}
