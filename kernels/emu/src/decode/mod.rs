//! AST -> per kernel a flat `Vec<Inst>`. Registers are resolved to dense indices with scoped
//! symbol tables (nested blocks shadow names and may repeat labels), labels to instruction
//! indices, immediates and addresses to constant registers, device functions are inlined at
//! their call sites (so the executor has no call stack), and variables are laid out in their
//! spaces. An unsupported form is rejected with "line N: unsupported instruction `text`".
pub mod asyncops;
pub mod inst;
mod ops;

use std::collections::HashMap;

use crate::api::{EmuError, ErrorKind};
use crate::ptx::ast::*;
pub use inst::*;

/// What a name means in a scope.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Sym {
    Reg(R),
    Pred(P),
    /// A variable: its space and address within it (global addresses are absolute; `.param`
    /// variables of call sequences live in local memory).
    Var(Space, u64, bool),
    /// A kernel parameter at this offset in the parameter bank.
    KParam(u64),
}

#[derive(Default)]
struct Scope {
    syms: HashMap<String, Sym>,
    labels: HashMap<String, u32>,
    /// The root scope of a function body: name lookups do not go past it (except to module scope).
    root: bool,
}

struct FnFrame {
    name: String,
    /// Label id that `ret` jumps to (None in the kernel itself: `ret` exits).
    ret_label: Option<u32>,
}

/// Module-wide facts the decoder needs.
pub struct ModuleEnv<'a> {
    pub ast: &'a Module,
    /// Addresses of module `.global` and `.const` variables (allocated by the device).
    pub globals: &'a HashMap<String, u64>,
}

pub(crate) struct Builder<'a> {
    env: &'a ModuleEnv<'a>,
    funcs: HashMap<&'a str, &'a Function>,
    pub(crate) insts: Vec<Inst>,
    src: Vec<(u32, String)>,
    cur_src: u32,
    cur_guard: P,
    nregs: u32,
    npreds: u32,
    consts: HashMap<u64, R>,
    sregs: HashMap<SReg, R>,
    scopes: Vec<Scope>,
    label_pc: Vec<u32>,
    label_names: Vec<String>,
    fixups: Vec<(usize, u32)>,
    frames: Vec<FnFrame>,
    local_size: u32,
    smem_size: u32,
    dyn_align: u32,
    lists: Vec<R>,
    mma_kinds: Vec<crate::tensor::MmaKind>,
    /// Collect every unsupported instruction instead of stopping at the first.
    collect: Option<Vec<(u32, String, String)>>,
}

fn align_up(v: u64, a: u64) -> u64 {
    let a = a.max(1);
    v.div_ceil(a) * a
}

fn unsupported(line: u32, text: &str, why: &str) -> EmuError {
    if why.is_empty() {
        EmuError::new(ErrorKind::Unsupported, format!("line {line}: unsupported instruction `{text}`"))
    } else {
        EmuError::new(ErrorKind::Unsupported, format!("line {line}: unsupported instruction `{text}` ({why})"))
    }
}

/// Decode every `.entry` of a module.
pub fn decode_module(env: &ModuleEnv) -> Result<Vec<Kernel>, EmuError> {
    let mut out = Vec::new();
    for f in &env.ast.functions {
        if f.is_entry && f.body.is_some() {
            let mut b = Builder::new(env, false);
            out.push(b.kernel(f)?);
        }
    }
    Ok(out)
}

/// Every instruction of every kernel (and of the device functions they call) that the decoder
/// rejects: (line, text, reason).
pub fn unsupported_insts(env: &ModuleEnv) -> Vec<(u32, String, String)> {
    let mut all = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for f in &env.ast.functions {
        if f.body.is_none() {
            continue;
        }
        let mut b = Builder::new(env, true);
        let r = if f.is_entry { b.kernel(f).map(|_| ()) } else { b.kernel(f).map(|_| ()) };
        if let Err(e) = r {
            if seen.insert((0, e.message.clone())) {
                all.push((0, e.message.clone(), String::new()));
            }
        }
        for (l, t, w) in b.collect.take().unwrap_or_default() {
            if seen.insert((l, t.clone())) {
                all.push((l, t, w));
            }
        }
    }
    all.sort();
    all
}

pub(crate) fn sreg_of(name: &str) -> Option<Result<SReg, u64>> {
    let dim = |s: &str| match s {
        "x" => Some(0u8),
        "y" => Some(1),
        "z" => Some(2),
        _ => None,
    };
    let (base, d) = match name.rsplit_once('.') {
        Some((b, s)) if dim(s).is_some() => (b, dim(s)),
        _ => (name, None),
    };
    Some(match (base, d) {
        ("%tid", Some(d)) => Ok(SReg::Tid(d)),
        ("%ntid", Some(d)) => Ok(SReg::Ntid(d)),
        ("%ctaid", Some(d)) => Ok(SReg::Ctaid(d)),
        ("%nctaid", Some(d)) => Ok(SReg::Nctaid(d)),
        ("%clusterid", Some(d)) => Ok(SReg::Ctaid(d)),
        ("%nclusterid", Some(d)) => Ok(SReg::Nctaid(d)),
        ("%cluster_ctaid", Some(_)) => Err(0),
        ("%cluster_nctaid", Some(_)) => Err(1),
        ("%cluster_ctarank", None) => Err(0),
        ("%cluster_nctarank", None) => Err(1),
        ("%is_explicit_cluster", None) => Err(0),
        ("%laneid", None) => Ok(SReg::LaneId),
        ("%lanemask_eq", None) => Ok(SReg::LaneMaskEq),
        ("%lanemask_lt", None) => Ok(SReg::LaneMaskLt),
        ("%lanemask_le", None) => Ok(SReg::LaneMaskLe),
        ("%lanemask_gt", None) => Ok(SReg::LaneMaskGt),
        ("%lanemask_ge", None) => Ok(SReg::LaneMaskGe),
        ("%dynamic_smem_size", None) => Ok(SReg::DynSmem),
        ("%total_smem_size", None) => Ok(SReg::TotalSmem),
        ("WARP_SZ", None) => Ok(SReg::WarpSize),
        _ => return None,
    })
}

fn forbidden_sreg(name: &str) -> bool {
    let base = name.split('.').next().unwrap_or(name);
    matches!(
        base,
        "%clock" | "%clock64" | "%smid" | "%nsmid" | "%warpid" | "%nwarpid" | "%globaltimer" | "%globaltimer_lo"
            | "%globaltimer_hi" | "%gridid" | "%reserved_smem_offset_begin" | "%reserved_smem_offset_end"
            | "%reserved_smem_offset_cap" | "%reserved_smem_offset_0" | "%reserved_smem_offset_1"
    ) || base.starts_with("%pm")
        || base.starts_with("%envreg")
}

/// How an immediate operand is typed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Imm {
    Int(It),
    F32,
    F64,
    /// raw bits of this width
    Bits(u8),
}

impl<'a> Builder<'a> {
    fn new(env: &'a ModuleEnv<'a>, collect: bool) -> Builder<'a> {
        let mut funcs = HashMap::new();
        for f in &env.ast.functions {
            // Prefer the definition over a prototype.
            if f.body.is_some() || !funcs.contains_key(f.name.as_str()) {
                funcs.insert(f.name.as_str(), f);
            }
        }
        let mut b = Builder {
            env,
            funcs,
            insts: Vec::new(),
            src: Vec::new(),
            cur_src: 0,
            cur_guard: NONE,
            nregs: 2,
            npreds: N_RESERVED_PREDS,
            consts: HashMap::new(),
            sregs: HashMap::new(),
            scopes: Vec::new(),
            label_pc: Vec::new(),
            label_names: Vec::new(),
            fixups: Vec::new(),
            frames: Vec::new(),
            local_size: 0,
            smem_size: 0,
            dyn_align: 16,
            lists: Vec::new(),
            mma_kinds: Vec::new(),
            collect: if collect { Some(Vec::new()) } else { None },
        };
        b.consts.insert(0, R_ZERO);
        b
    }

    fn kernel(&mut self, f: &'a Function) -> Result<Kernel, EmuError> {
        // Module scope: module variables.
        let mut module_scope = Scope { root: true, ..Default::default() };
        for v in &self.env.ast.vars {
            let sym = self.declare_var(v)?;
            if let Some(s) = sym {
                module_scope.syms.insert(v.name.clone(), s);
            }
        }
        self.scopes.push(module_scope);
        // Kernel params.
        let mut params = Vec::new();
        let mut off = 0u64;
        let mut fscope = Scope { root: true, ..Default::default() };
        for p in &f.params {
            let al = p.alignment().max(1) as u64;
            off = align_up(off, al);
            params.push(KParam { name: p.name.clone(), offset: off as u32, size: p.size(), align: al as u32 });
            if f.is_entry {
                fscope.syms.insert(p.name.clone(), Sym::KParam(off));
            } else {
                // decoding a .func on its own (coverage): params are local
                let o = self.alloc_local(p.size() as u64, al);
                fscope.syms.insert(p.name.clone(), Sym::Var(Space::Local, o, true));
            }
            off += p.size() as u64;
        }
        for p in &f.returns {
            let o = self.alloc_local(p.size() as u64, p.alignment() as u64);
            fscope.syms.insert(p.name.clone(), Sym::Var(Space::Local, o, true));
        }
        let param_size = off as u32;
        self.scopes.push(fscope);
        self.frames.push(FnFrame { name: f.name.clone(), ret_label: None });
        let body = f.body.as_ref().unwrap();
        self.block(body, false)?;
        // Falling off the end exits.
        self.cur_guard = NONE;
        if self.src.is_empty() {
            self.src.push((f.line, f.name.clone()));
        }
        self.emit(Op::Exit);
        self.frames.pop();
        for &(at, lid) in &self.fixups {
            let pc = self.label_pc[lid as usize];
            if pc == NONE {
                return Err(EmuError::new(
                    ErrorKind::Unsupported,
                    format!("line {}: label `{}` is never defined", f.line, self.label_names[lid as usize]),
                ));
            }
            if let Op::Bra { target } = &mut self.insts[at].op {
                *target = pc;
            }
        }
        let dir = |n: &str| -> Option<[u32; 3]> {
            f.directives.iter().find(|(d, _)| d == n).map(|(_, v)| {
                [v.first().copied().unwrap_or(1), v.get(1).copied().unwrap_or(1), v.get(2).copied().unwrap_or(1)]
            })
        };
        let mut consts: Vec<(R, u64)> = self.consts.iter().map(|(&v, &r)| (r, v)).collect();
        consts.sort();
        let mut sregs: Vec<(R, SReg)> = self.sregs.iter().map(|(&s, &r)| (r, s)).collect();
        sregs.sort_by_key(|x| x.0);
        let static_smem = self.smem_size;
        let dyn_off = align_up(static_smem as u64, self.dyn_align as u64) as u32;
        Ok(Kernel {
            name: f.name.clone(),
            insts: std::mem::take(&mut self.insts),
            src: std::mem::take(&mut self.src),
            nregs: self.nregs,
            npreds: self.npreds,
            consts,
            sregs,
            params,
            param_size,
            static_smem,
            dyn_smem_offset: dyn_off,
            local_size: align_up(self.local_size as u64, 16) as u32,
            maxntid: dir("maxntid"),
            reqntid: dir("reqntid"),
            lists: std::mem::take(&mut self.lists),
            mma_kinds: std::mem::take(&mut self.mma_kinds),
            line: f.line,
        })
    }

    fn alloc_local(&mut self, size: u64, align: u64) -> u64 {
        let o = align_up(self.local_size as u64, align.max(1));
        self.local_size = (o + size.max(1)) as u32;
        o
    }

    /// Lay out a variable; returns the symbol it defines.
    fn declare_var(&mut self, v: &VarDecl) -> Result<Option<Sym>, EmuError> {
        let al = v.align.unwrap_or(v.ty.size()).max(1) as u64;
        Ok(Some(match v.space {
            StateSpace::Shared => {
                if v.is_extern {
                    self.dyn_align = self.dyn_align.max(al as u32);
                    // Resolved to the dynamic base when the kernel is finished; we use a marker
                    // address that `finish` cannot know yet, so lay out dynamic smem lazily:
                    // dynamic smem sits after all static smem; since static vars may be declared
                    // later, we record a placeholder and patch at the end.
                    Sym::Var(Space::Shared, DYN_MARK, false)
                } else {
                    let o = align_up(self.smem_size as u64, al);
                    self.smem_size = (o + v.size()) as u32;
                    Sym::Var(Space::Shared, o, false)
                }
            }
            StateSpace::Local => {
                let o = self.alloc_local(v.size(), al);
                Sym::Var(Space::Local, o, false)
            }
            StateSpace::Param => {
                let o = self.alloc_local(v.size(), al);
                Sym::Var(Space::Local, o, true)
            }
            StateSpace::Global | StateSpace::Const => match self.env.globals.get(&v.name) {
                Some(&a) => Sym::Var(Space::Global, a, false),
                None => {
                    return Err(EmuError::new(
                        ErrorKind::Unsupported,
                        format!("line {}: function-scope .global/.const variable `{}` is not supported", v.line, v.name),
                    ))
                }
            },
            StateSpace::Reg => return Ok(None),
        }))
    }

    fn new_label(&mut self, name: &str) -> u32 {
        self.label_pc.push(NONE);
        self.label_names.push(name.to_string());
        (self.label_pc.len() - 1) as u32
    }

    fn block(&mut self, stmts: &'a [Statement], push: bool) -> Result<(), EmuError> {
        if push {
            self.scopes.push(Scope::default());
        }
        // Labels of this block are visible before their definition.
        for s in stmts {
            if let Statement::Label(name, _) = s {
                let id = self.new_label(name);
                self.scopes.last_mut().unwrap().labels.insert(name.clone(), id);
            }
        }
        for s in stmts {
            match s {
                Statement::Block(b) => self.block(b, true)?,
                Statement::Reg(r) => {
                    for (name, n) in &r.names {
                        match n {
                            Some(n) => {
                                for i in 0..*n {
                                    self.declare_reg(&format!("{name}{i}"), r.ty);
                                }
                            }
                            None => self.declare_reg(name, r.ty),
                        }
                    }
                }
                Statement::Var(v) => {
                    if let Some(sym) = self.declare_var(v)? {
                        self.scopes.last_mut().unwrap().syms.insert(v.name.clone(), sym);
                    }
                }
                Statement::Label(name, _) => {
                    let id = self.scopes.last().unwrap().labels[name];
                    self.label_pc[id as usize] = self.insts.len() as u32;
                }
                Statement::Pragma(..) => {}
                Statement::Inst(i) => {
                    self.src.push((i.line, i.text.clone()));
                    self.cur_src = (self.src.len() - 1) as u32;
                    let r = self.inst(i);
                    if let Err(e) = r {
                        match &mut self.collect {
                            Some(c) if e.kind == ErrorKind::Unsupported => c.push((i.line, i.text.clone(), e.message)),
                            _ => return Err(e),
                        }
                    }
                }
            }
        }
        if push {
            self.scopes.pop();
        }
        Ok(())
    }

    fn declare_reg(&mut self, name: &str, ty: ScalarType) {
        let sym = if ty == ScalarType::Pred {
            self.npreds += 1;
            Sym::Pred(self.npreds - 1)
        } else {
            self.nregs += 1;
            Sym::Reg(self.nregs - 1)
        };
        self.scopes.last_mut().unwrap().syms.insert(name.to_string(), sym);
    }

    fn lookup(&self, name: &str) -> Option<Sym> {
        for s in self.scopes.iter().rev() {
            if let Some(&x) = s.syms.get(name) {
                return Some(x);
            }
            if s.root {
                break;
            }
        }
        self.scopes.first().and_then(|s| s.syms.get(name).copied())
    }

    fn lookup_label(&self, name: &str) -> Option<u32> {
        for s in self.scopes.iter().rev() {
            if let Some(&x) = s.labels.get(name) {
                return Some(x);
            }
            if s.root {
                break;
            }
        }
        None
    }

    pub(crate) fn emit(&mut self, op: Op) {
        self.insts.push(Inst { op, guard: self.cur_guard, src: self.cur_src });
    }

    pub(crate) fn konst(&mut self, v: u64) -> R {
        if let Some(&r) = self.consts.get(&v) {
            return r;
        }
        self.nregs += 1;
        let r = self.nregs - 1;
        self.consts.insert(v, r);
        r
    }

    pub(crate) fn temp(&mut self) -> R {
        self.nregs += 1;
        self.nregs - 1
    }

    fn sreg(&mut self, s: SReg) -> R {
        if let Some(&r) = self.sregs.get(&s) {
            return r;
        }
        self.nregs += 1;
        let r = self.nregs - 1;
        self.sregs.insert(s, r);
        r
    }

    /// Address value of a variable symbol (dynamic shared resolved at the end via patching).
    fn var_addr(&mut self, sym: Sym) -> Option<u64> {
        match sym {
            Sym::Var(Space::Shared, DYN_MARK, _) => Some(DYN_MARK),
            Sym::Var(_, a, _) => Some(a),
            Sym::KParam(o) => Some(o),
            _ => None,
        }
    }

    /// A source operand as a register.
    pub(crate) fn src(&mut self, o: &Operand, imm: Imm) -> Result<R, String> {
        match o {
            Operand::Name(n) => self.name_src(n, 0),
            Operand::SymbolOffset(n, off) => self.name_src(n, *off),
            Operand::Int(v) => Ok(self.konst(imm_int(*v, imm))),
            Operand::F32(bits) => {
                let v = match imm {
                    Imm::F64 => (f32::from_bits(*bits) as f64).to_bits(),
                    Imm::Bits(16) | Imm::Int(It { bits: 16, .. }) => {
                        crate::num::f32_to_f16(f32::from_bits(*bits), crate::num::Rnd::Rn, false) as u64
                    }
                    _ => *bits as u64,
                };
                Ok(self.konst(v))
            }
            Operand::F64(bits) => {
                let v = match imm {
                    Imm::F64 | Imm::Bits(64) | Imm::Int(It { bits: 64, .. }) => *bits,
                    _ => crate::num::f64_to_f32(f64::from_bits(*bits), crate::num::Rnd::Rn).to_bits() as u64,
                };
                Ok(self.konst(v))
            }
            _ => Err(format!("operand {o:?} is not a value")),
        }
    }

    fn name_src(&mut self, n: &str, off: i64) -> Result<R, String> {
        if let Some(sym) = self.lookup(n) {
            return match sym {
                Sym::Reg(r) if off == 0 => Ok(r),
                Sym::Pred(_) => Err(format!("predicate `{n}` used as a value")),
                Sym::Reg(_) => Err(format!("register `{n}` with an offset")),
                _ => {
                    let a = self.var_addr(sym).unwrap();
                    if a == DYN_MARK {
                        // Dynamic shared base: a constant patched at the end; use a dedicated
                        // sreg-like register holding the dynamic offset plus `off`.
                        let base = self.dyn_base_reg();
                        if off == 0 {
                            return Ok(base);
                        }
                        let t = self.temp();
                        let k = self.konst(off as u64);
                        self.emit_unguarded(Op::IBin { op: IOp::Add, t: It::U64, d: t, a: base, b: k });
                        return Ok(t);
                    }
                    Ok(self.konst(a.wrapping_add(off as u64)))
                }
            };
        }
        if let Some(s) = sreg_of(n) {
            return match s {
                Ok(s) => Ok(self.sreg(s)),
                Err(v) => Ok(self.konst(v)),
            };
        }
        if forbidden_sreg(n) {
            return Err(format!("special register {n} is not emulated: tests must not depend on it"));
        }
        Err(format!("unknown name `{n}`"))
    }

    fn dyn_base_reg(&mut self) -> R {
        // The dynamic smem offset depends on the final static size, so it is a special register.
        self.sreg(SReg::DynBase)
    }

    /// Emit an instruction that must run whatever the current guard (address helpers).
    fn emit_unguarded(&mut self, op: Op) {
        let g = self.cur_guard;
        self.cur_guard = NONE;
        self.emit(op);
        self.cur_guard = g;
    }

    pub(crate) fn dst(&mut self, o: &Operand) -> Result<R, String> {
        match o {
            Operand::Sink => Ok(R_SINK),
            Operand::Name(n) if n == "_" => Ok(R_SINK),
            Operand::Name(n) => match self.lookup(n) {
                Some(Sym::Reg(r)) => Ok(r),
                Some(Sym::Pred(_)) => Err(format!("predicate `{n}` used as a value destination")),
                _ => Err(format!("`{n}` is not a register")),
            },
            _ => Err(format!("bad destination {o:?}")),
        }
    }

    pub(crate) fn pdst(&mut self, o: &Operand) -> Result<P, String> {
        match o {
            Operand::Sink => Ok(P_SINK),
            Operand::Name(n) if n == "_" => Ok(P_SINK),
            Operand::Name(n) => self.pred_name(n),
            _ => Err(format!("bad predicate destination {o:?}")),
        }
    }

    pub(crate) fn pred_name(&self, n: &str) -> Result<P, String> {
        match self.lookup(n) {
            Some(Sym::Pred(p)) => Ok(p),
            _ => Err(format!("`{n}` is not a predicate")),
        }
    }

    pub(crate) fn psrc(&mut self, o: &Operand) -> Result<P, String> {
        match o {
            Operand::Name(n) => self.pred_name(n),
            Operand::Not(n) => Ok(self.pred_name(n)? | NEG),
            Operand::Int(0) => Ok(P_FALSE),
            Operand::Int(_) => Ok(P_TRUE),
            _ => Err(format!("bad predicate operand {o:?}")),
        }
    }

    pub(crate) fn is_pred_operand(&self, o: &Operand) -> bool {
        match o {
            Operand::Name(n) | Operand::Not(n) => matches!(self.lookup(n), Some(Sym::Pred(_))),
            _ => false,
        }
    }

    /// An address operand: (space implied by a variable, if any; base register; offset).
    pub(crate) fn addr(&mut self, o: &Operand) -> Result<(Option<Space>, bool, R, i64), String> {
        match o {
            Operand::Address { base: None, offset } => Ok((None, false, R_ZERO, *offset)),
            Operand::Address { base: Some(n), offset } => match self.lookup(n) {
                Some(Sym::Reg(r)) => Ok((None, false, r, *offset)),
                Some(Sym::Pred(_)) => Err("predicate as address".into()),
                Some(Sym::KParam(o)) => Ok((Some(Space::Param), false, R_ZERO, o as i64 + offset)),
                Some(Sym::Var(sp, a, is_param)) => {
                    if a == DYN_MARK {
                        let b = self.dyn_base_reg();
                        Ok((Some(Space::Shared), false, b, *offset))
                    } else {
                        Ok((Some(sp), is_param, R_ZERO, a as i64 + offset))
                    }
                }
                None => {
                    if sreg_of(n).is_some() || forbidden_sreg(n) {
                        let r = self.name_src(n, 0)?;
                        Ok((None, false, r, *offset))
                    } else {
                        Err(format!("unknown name `{n}` in address"))
                    }
                }
            },
            Operand::Name(_) | Operand::SymbolOffset(..) => {
                // `[name]` written without brackets is not an address; be lenient for labels.
                Err(format!("expected an address, got {o:?}"))
            }
            _ => Err(format!("expected an address, got {o:?}")),
        }
    }

    fn inst(&mut self, i: &'a Instruction) -> Result<(), EmuError> {
        self.cur_guard = match &i.guard {
            None => NONE,
            Some((neg, p)) => {
                let p = self.pred_name(p).map_err(|e| unsupported(i.line, &i.text, &e))?;
                if *neg {
                    p | NEG
                } else {
                    p
                }
            }
        };
        match i.opcode.as_str() {
            "bra" | "brx" => return self.bra(i),
            "call" => return self.call(i),
            "ret" => {
                let lab = self.frames.last().and_then(|f| f.ret_label);
                match lab {
                    Some(l) => {
                        self.fixups.push((self.insts.len(), l));
                        self.emit(Op::Bra { target: NONE });
                    }
                    None => self.emit(Op::Exit),
                }
                return Ok(());
            }
            _ => {}
        }
        ops::decode(self, i).map_err(|e| unsupported(i.line, &i.text, &e))
    }

    fn bra(&mut self, i: &'a Instruction) -> Result<(), EmuError> {
        let bad = |w: &str| unsupported(i.line, &i.text, w);
        if i.opcode != "bra" {
            return Err(bad("indirect branches are not supported"));
        }
        for m in &i.mods {
            if m != "uni" {
                return Err(bad(&format!("modifier .{m}")));
            }
        }
        let target = match i.operands.as_slice() {
            [Operand::Name(n)] => n,
            _ => return Err(bad("expected one label")),
        };
        let lid = self.lookup_label(target).ok_or_else(|| bad(&format!("unknown label `{target}`")))?;
        self.fixups.push((self.insts.len(), lid));
        self.emit(Op::Bra { target: NONE });
        Ok(())
    }

    /// `call (ret..), f, (args..)`: the callee's body is inlined; its formal parameters alias
    /// the caller's argument variables.
    fn call(&mut self, i: &'a Instruction) -> Result<(), EmuError> {
        let bad = |w: &str| unsupported(i.line, &i.text, w);
        for m in &i.mods {
            if m != "uni" {
                return Err(bad(&format!("modifier .{m}")));
            }
        }
        if self.cur_guard != NONE {
            return Err(bad("predicated calls are not supported"));
        }
        let mut rets: &[Operand] = &[];
        let mut args: &[Operand] = &[];
        let mut callee = None;
        for o in &i.operands {
            match o {
                Operand::Vector(v) if callee.is_none() => rets = v,
                Operand::Name(n) if callee.is_none() => callee = Some(n.clone()),
                Operand::Vector(v) => args = v,
                _ => return Err(bad("indirect calls and call prototypes are not supported")),
            }
        }
        let callee = callee.ok_or_else(|| bad("no callee"))?;
        let f = *self.funcs.get(callee.as_str()).ok_or_else(|| bad(&format!("unknown function `{callee}`")))?;
        if f.is_entry {
            return Err(bad("calling a kernel"));
        }
        let body = f.body.as_ref().ok_or_else(|| bad(&format!("function `{callee}` has no body (extern)")))?;
        if self.frames.iter().any(|fr| fr.name == callee) || self.frames.len() > 32 {
            return Err(bad("recursive calls are not supported"));
        }
        if rets.len() != f.returns.len() || args.len() != f.params.len() {
            return Err(bad("argument count does not match the callee"));
        }
        let mut scope = Scope { root: true, ..Default::default() };
        let bind = |b: &mut Builder<'a>, o: &Operand, p: &Param, is_ret: bool| -> Result<Sym, String> {
            match o {
                Operand::Name(n) => match b.lookup(n) {
                    Some(s @ Sym::Var(..)) | Some(s @ Sym::KParam(_)) => Ok(s),
                    Some(Sym::Reg(r)) => {
                        // A register argument: pass through a local slot.
                        let off = b.alloc_local(p.size() as u64, p.alignment() as u64);
                        if !is_ret {
                            b.emit(Op::St {
                                space: Space::Local,
                                size: p.size().min(8) as u8,
                                n: 1,
                                s: [r, 0, 0, 0],
                                base: R_ZERO,
                                off: off as i64,
                            });
                        }
                        Ok(Sym::Var(Space::Local, off, true))
                    }
                    Some(Sym::Pred(_)) => Err("predicate arguments are not supported".into()),
                    None => Err(format!("unknown argument `{n}`")),
                },
                Operand::Int(_) | Operand::F32(_) | Operand::F64(_) if !is_ret => {
                    let r = b.src(o, Imm::Bits((p.size() * 8) as u8))?;
                    let off = b.alloc_local(p.size() as u64, p.alignment() as u64);
                    b.emit(Op::St { space: Space::Local, size: p.size().min(8) as u8, n: 1, s: [r, 0, 0, 0], base: R_ZERO, off: off as i64 });
                    Ok(Sym::Var(Space::Local, off, true))
                }
                _ => Err(format!("unsupported call argument {o:?}")),
            }
        };
        let mut reg_rets = Vec::new();
        for (o, p) in args.iter().zip(&f.params) {
            let s = bind(self, o, p, false).map_err(|e| bad(&e))?;
            scope.syms.insert(p.name.clone(), s);
        }
        for (o, p) in rets.iter().zip(&f.returns) {
            let s = bind(self, o, p, true).map_err(|e| bad(&e))?;
            if let (Operand::Name(n), Sym::Var(_, off, _)) = (o, s) {
                if let Some(Sym::Reg(r)) = self.lookup(n) {
                    reg_rets.push((r, off, p.size()));
                }
            }
            scope.syms.insert(p.name.clone(), s);
        }
        let ret_label = self.new_label("<return>");
        self.scopes.push(scope);
        self.frames.push(FnFrame { name: callee.clone(), ret_label: Some(ret_label) });
        let saved_src = self.cur_src;
        let r = self.block(body, false);
        self.frames.pop();
        self.scopes.pop();
        r?;
        self.cur_src = saved_src;
        self.cur_guard = NONE;
        self.label_pc[ret_label as usize] = self.insts.len() as u32;
        for (r, off, size) in reg_rets {
            self.emit(Op::Ld { space: Space::Local, size: size.min(8) as u8, signed: false, n: 1, d: [r, 0, 0, 0], base: R_ZERO, off: off as i64 });
        }
        Ok(())
    }

    pub(crate) fn push_list(&mut self, regs: &[R]) -> u32 {
        let at = self.lists.len() as u32;
        self.lists.extend_from_slice(regs);
        at
    }

    pub(crate) fn add_mma(&mut self, k: crate::tensor::MmaKind) -> u32 {
        self.mma_kinds.push(k);
        (self.mma_kinds.len() - 1) as u32
    }

}

/// Placeholder address of dynamic shared memory (resolved through `SReg::DynBase`).
const DYN_MARK: u64 = u64::MAX - 0xFFFF;

fn imm_int(v: i64, imm: Imm) -> u64 {
    match imm {
        Imm::Int(t) => t.norm(v as u64),
        Imm::F32 => {
            // An integer literal where a float is expected: its value.
            (v as f32).to_bits() as u64
        }
        Imm::F64 => (v as f64).to_bits(),
        Imm::Bits(b) => {
            if b >= 64 {
                v as u64
            } else {
                (v as u64) & ((1u64 << b) - 1)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_src(src: &str) -> Result<Vec<Kernel>, EmuError> {
        let ast = crate::ptx::parse(src).map_err(|e| EmuError::new(ErrorKind::Parse, e.message))?;
        let globals = HashMap::new();
        decode_module(&ModuleEnv { ast: &ast, globals: &globals })
    }

    #[test]
    fn nested_scopes_shadow_and_repeat_labels() {
        let src = r#"
.version 8.4
.target sm_90a
.address_size 64
.visible .entry k()
{
    .reg .b32 %r<3>;
    mov.u32 %r1, 1;
    { .reg .b32 %r1; mov.u32 %r1, 2; W: bra W; }
    { .reg .b32 %r1; mov.u32 %r1, 3; W: bra W; }
    mov.u32 %r2, %r1;
    ret;
}
"#;
        let ks = decode_src(src).unwrap();
        let k = &ks[0];
        let movs: Vec<(R, R)> = k
            .insts
            .iter()
            .filter_map(|i| match i.op {
                Op::Mov { d, a } => Some((d, a)),
                _ => None,
            })
            .collect();
        // Outer %r1, two distinct inner %r1, and the final copy reads the outer one.
        assert_eq!(movs.len(), 4);
        let outer = movs[0].0;
        assert_ne!(movs[1].0, outer);
        assert_ne!(movs[2].0, outer);
        assert_ne!(movs[1].0, movs[2].0);
        assert_eq!(movs[3].1, outer);
        // Each `bra W` targets the label of its own block (itself).
        let bras: Vec<(usize, u32)> = k
            .insts
            .iter()
            .enumerate()
            .filter_map(|(n, i)| match i.op {
                Op::Bra { target } => Some((n, target)),
                _ => None,
            })
            .collect();
        assert_eq!(bras.len(), 2);
        for (n, t) in bras {
            assert_eq!(n as u32, t);
        }
    }

    #[test]
    fn shared_layout_and_params() {
        let src = r#"
.version 8.4
.target sm_90a
.address_size 64
.extern .shared .align 1024 .b8 dyn[];
.visible .entry k(.param .u32 a, .param .u64 b, .param .align 64 .b8 tm[128])
{
    .shared .align 4 .b8 s1[10];
    .shared .align 16 .b8 s2[32];
    .reg .b64 %rd<2>;
    mov.u64 %rd1, dyn;
    ret;
}
"#;
        let k = &decode_src(src).unwrap()[0];
        assert_eq!(k.static_smem, 48);
        assert_eq!(k.dyn_smem_offset, 1024);
        let offs: Vec<(u32, u32)> = k.params.iter().map(|p| (p.offset, p.size)).collect();
        assert_eq!(offs, vec![(0, 4), (8, 8), (64, 128)]);
        assert_eq!(k.param_size, 192);
    }

    #[test]
    fn unsupported_names_line() {
        let src = ".version 8.4\n.target sm_90a\n.address_size 64\n.visible .entry k()\n{\n .reg .b32 %r<2>;\n wibble.u32 %r1, %r1;\n ret;\n}\n";
        let e = decode_src(src).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Unsupported);
        assert!(e.message.starts_with("line 7: unsupported instruction `wibble.u32 %r1, %r1;`"), "{}", e.message);
    }
}
