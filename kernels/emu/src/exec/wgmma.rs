//! The executor side of warpgroup MMA: `wgmma.fence/commit_group/wait_group/mma_async` and
//! `setmaxnreg`, decoded into one `Op::Wgmma` variant.
//!
//! Model. A warpgroup is warps 4k..4k+3. Every warp must reach each warpgroup instruction with
//! all 32 lanes converged, and the four warps must execute the same sequence of warpgroup
//! instructions (a per-warpgroup log checked as each warp arrives, and counts compared when the
//! CTA ends). Each warp's share of a wgmma is self-contained (warp w owns D rows 16w..16w+15 and
//! the matching A rows), so the math runs per warp: `mma_async` queues the instruction with its
//! descriptors and scale-d captured at issue; `commit_group` closes a group; `wait_group N`
//! executes all but the newest N groups (reading shared memory, register A and D then: the
//! latest legal point). Hazards: a read or write of a register that a queued wgmma still owns
//! (D or register-A) is an error naming both lines (missing `wait_group`); a wgmma whose D or A
//! registers were written by an ordinary instruction since the warp's last `wgmma.fence` (or with
//! no fence at all before it) is an error (missing fence); a warp ending with wgmmas in flight is
//! an error; an operand element in a shared chunk written through the generic proxy without a
//! later `fence.proxy.async` (the async-proxy state of `exec::asyncops`, checked when the wgmma
//! executes) is an error. Register tracking costs only in kernels that contain wgmma: each instruction's
//! register operands are filtered once per launch to the registers any wgmma uses.
//!
//! `setmaxnreg.{inc,dec}.sync.aligned.u32 N`: N a multiple of 8 in 24..=256; inc must not lower
//! and dec must not raise the warp's count; the CTA's sum over warps (32 threads each) must fit
//! the SM's 65536 registers. An `inc` that does not fit yet waits (other warpgroups may `dec`
//! first, as on hardware); one that never fits is reported. Each warp starts at the count the
//! launch could give it (65536 / threads, rounded down to a multiple of 8, at most 248) since the
//! emulator does not know ptxas's allocation.
use std::collections::VecDeque;

use super::{first_lane, pval, Ex, Res, Warp, FULL};
use crate::api::{EmuError, ErrorKind};
use crate::decode::inst::*;
use crate::decode::{Builder, Imm};
use crate::ptx::ast::{Instruction, Operand};
use crate::tensor::wgmma::{elem_value, fp8_acc, wgmma_warp, Desc, Major, WgmmaKind};

/// One decoded warpgroup instruction.
#[derive(Clone, Debug, PartialEq)]
pub enum WgOp {
    Fence,
    Commit,
    Wait(u32),
    Setmaxnreg { inc: bool, n: u32 },
    Mma(WgMma),
}

/// `wgmma.mma_async` operands.
#[derive(Clone, Debug, PartialEq)]
pub struct WgMma {
    pub kind: WgmmaKind,
    pub d: Vec<R>,
    /// The A descriptor register, or `NONE` when A comes from `a_regs`.
    pub a_desc: R,
    pub a_regs: Vec<R>,
    pub b_desc: R,
    pub scale_d: P,
    pub neg_a: bool,
    pub neg_b: bool,
    pub trans_a: bool,
    pub trans_b: bool,
}

type DRes<T> = Result<T, String>;

fn imm(o: &Operand, what: &str) -> DRes<i64> {
    match o {
        Operand::Int(v) => Ok(*v),
        _ => Err(format!("{what} must be an immediate")),
    }
}

/// Decodes `wgmma.*` and `setmaxnreg.*`.
pub(crate) fn decode(b: &mut Builder, i: &Instruction) -> DRes<()> {
    let mods: Vec<&str> = i.mods.iter().map(|s| s.as_str()).collect();
    let ops = &i.operands;
    if i.opcode == "setmaxnreg" {
        let inc = match mods.as_slice() {
            ["inc", "sync", "aligned", "u32"] => true,
            ["dec", "sync", "aligned", "u32"] => false,
            _ => return Err("setmaxnreg: expected .inc/.dec.sync.aligned.u32".into()),
        };
        if ops.len() != 1 {
            return Err("setmaxnreg: expected one operand".into());
        }
        let n = imm(&ops[0], "setmaxnreg count")?;
        if !(24..=256).contains(&n) || n % 8 != 0 {
            return Err(format!("setmaxnreg: count {n} is not a multiple of 8 in 24..=256"));
        }
        b.emit(Op::Wgmma(Box::new(WgOp::Setmaxnreg { inc, n: n as u32 })));
        return Ok(());
    }
    let first = *mods.first().ok_or("wgmma: missing operation")?;
    let simple = |rest: &[&str]| rest == ["sync", "aligned"];
    let op = match first {
        "fence" if simple(&mods[1..]) && ops.is_empty() => WgOp::Fence,
        "commit_group" if simple(&mods[1..]) && ops.is_empty() => WgOp::Commit,
        "wait_group" if simple(&mods[1..]) && ops.len() == 1 => {
            let n = imm(&ops[0], "wgmma.wait_group count")?;
            if !(0..=1 << 20).contains(&n) {
                return Err("wgmma.wait_group: bad count".into());
            }
            WgOp::Wait(n as u32)
        }
        "mma_async" => WgOp::Mma(decode_mma(b, i)?),
        _ => return Err(format!("wgmma: unsupported form .{}", mods.join("."))),
    };
    b.emit(Op::Wgmma(Box::new(op)));
    Ok(())
}

fn decode_mma(b: &mut Builder, i: &Instruction) -> DRes<WgMma> {
    let kind = WgmmaKind::from_mods(&i.mods)?;
    let o = &i.operands;
    let nd = kind.d_regs();
    let d = match &o.first() {
        Some(Operand::Vector(v)) if v.len() == nd => v.iter().map(|x| b.dst(x)).collect::<DRes<Vec<R>>>()?,
        _ => return Err(format!("wgmma: D must be a vector of {nd} registers")),
    };
    let (a_desc, a_regs) = match o.get(1) {
        Some(Operand::Vector(v)) if v.len() == kind.a_regs() => {
            (NONE, v.iter().map(|x| b.src(x, Imm::Bits(32))).collect::<DRes<Vec<R>>>()?)
        }
        Some(Operand::Vector(_)) => return Err(format!("wgmma: register A must be a vector of {} registers", kind.a_regs())),
        Some(x) => (b.src(x, Imm::Int(It::U64))?, Vec::new()),
        None => return Err("wgmma: missing A".into()),
    };
    let rs = a_desc == NONE;
    let b_desc = b.src(o.get(2).ok_or("wgmma: missing B descriptor")?, Imm::Int(It::U64))?;
    let scale_d = b.psrc(o.get(3).ok_or("wgmma: missing scale-d")?)?;
    let rest = &o[4..];
    let ntrans = if kind.has_trans() { if rs { 1 } else { 2 } } else { 0 };
    if rest.len() != 2 + ntrans && rest.len() != 2 {
        return Err(format!("wgmma: expected {} immediates after scale-d, got {}", 2 + ntrans, rest.len()));
    }
    let scale = |x: &Operand, what: &str| -> DRes<bool> {
        match imm(x, what)? {
            1 => Ok(false),
            -1 => Ok(true),
            v => Err(format!("wgmma: {what} must be 1 or -1, got {v}")),
        }
    };
    let neg_a = scale(&rest[0], "imm-scale-a")?;
    let neg_b = scale(&rest[1], "imm-scale-b")?;
    let bit = |x: &Operand, what: &str| -> DRes<bool> {
        match imm(x, what)? {
            0 => Ok(false),
            1 => Ok(true),
            v => Err(format!("wgmma: {what} must be 0 or 1, got {v}")),
        }
    };
    let (mut trans_a, mut trans_b) = (false, false);
    if rest.len() > 2 {
        if rs {
            trans_b = bit(&rest[2], "imm-trans-b")?;
        } else {
            trans_a = bit(&rest[2], "imm-trans-a")?;
            trans_b = bit(&rest[3], "imm-trans-b")?;
        }
    }
    Ok(WgMma { kind, d, a_desc, a_regs, b_desc, scale_d, neg_a, neg_b, trans_a, trans_b })
}

/// Calls `f(register, is_write)` for each register operand of an ordinary instruction. Ops this
/// function does not know (added later) are not tracked.
pub(crate) fn regs_of(op: &Op, k: &Kernel, f: &mut dyn FnMut(R, bool)) {
    use Op::*;
    match op {
        Mov { d, a } | MovT { d, a, .. } => {
            f(*a, false);
            f(*d, true)
        }
        Pack { n, d, s, .. } => {
            s.iter().take(*n as usize).for_each(|r| f(*r, false));
            f(*d, true)
        }
        Unpack { n, a, d, .. } => {
            f(*a, false);
            d.iter().take(*n as usize).for_each(|r| f(*r, true))
        }
        IBin { d, a, b, .. } | FBin { d, a, b, .. } | HBin { d, a, b, .. } | CvtPack { d, a, b, .. } => {
            f(*a, false);
            f(*b, false);
            f(*d, true)
        }
        Set { d, a, b, .. } => {
            f(*a, false);
            f(*b, false);
            f(*d, true)
        }
        Setp { a, b, .. } => {
            f(*a, false);
            f(*b, false)
        }
        Selp { d, a, b, .. } => {
            f(*a, false);
            f(*b, false);
            f(*d, true)
        }
        IUn { d, a, .. } | FUn { d, a, .. } | HUn { d, a, .. } | Cvt { d, a, .. } | CvtFp8Unpack { d, a, .. } | Cvta { d, a, .. } => {
            f(*a, false);
            f(*d, true)
        }
        Testp { a, .. } | Isspacep { a, .. } => f(*a, false),
        IMad { d, a, b, c, .. }
        | Cc { d, a, b, c, .. }
        | Bfe { d, a, b, c, .. }
        | Prmt { d, a, b, c, .. }
        | Lop3 { d, a, b, c, .. }
        | Shf { d, a, b, c, .. }
        | Fns { d, a, b, c, .. }
        | Dp4a { d, a, b, c, .. }
        | Slct { d, a, b, c, .. }
        | FFma { d, a, b, c, .. }
        | HFma { d, a, b, c, .. } => {
            f(*a, false);
            f(*b, false);
            f(*c, false);
            f(*d, true)
        }
        Bfi { d, a, b, c, e, .. } => {
            for r in [a, b, c, e] {
                f(*r, false);
            }
            f(*d, true)
        }
        Ld { n, d, base, .. } => {
            f(*base, false);
            d.iter().take(*n as usize).for_each(|r| f(*r, true))
        }
        St { n, s, base, .. } => {
            f(*base, false);
            s.iter().take(*n as usize).for_each(|r| f(*r, false))
        }
        Atom { d, base, b, c, .. } => {
            f(*base, false);
            f(*b, false);
            f(*c, false);
            f(*d, true)
        }
        Bar { id, count, .. } => {
            f(*id, false);
            f(*count, false)
        }
        WarpSync { mask } => f(*mask, false),
        Shfl { d, a, b, c, mask, .. } => {
            for r in [a, b, c, mask] {
                f(*r, false);
            }
            f(*d, true)
        }
        Vote { mask, .. } => f(*mask, false),
        Match { d, a, mask, .. } | Redux { d, a, mask, .. } => {
            f(*a, false);
            f(*mask, false);
            f(*d, true)
        }
        Activemask { d } => f(*d, true),
        Elect { d, mask, .. } => {
            f(*mask, false);
            f(*d, true)
        }
        Mma { kind, regs } => {
            let (na, nb, nc, nd) = k.mma_kinds[*kind as usize].regs();
            let l = &k.lists[*regs as usize..*regs as usize + nd + na + nb + nc];
            l[..nd].iter().for_each(|r| f(*r, true));
            l[nd..].iter().for_each(|r| f(*r, false));
        }
        Ldmatrix { num, d, base, .. } => {
            f(*base, false);
            d.iter().take(*num as usize).for_each(|r| f(*r, true))
        }
        Stmatrix { num, s, base, .. } => {
            f(*base, false);
            s.iter().take(*num as usize).for_each(|r| f(*r, false))
        }
        CpAsync { src_size, dbase, sbase, .. } => {
            if *src_size != NONE {
                f(*src_size, false);
            }
            f(*dbase, false);
            f(*sbase, false)
        }
        _ => {}
    }
}

/// Per-launch facts about the kernel's wgmma use.
pub(crate) struct KInfo {
    /// Whether the kernel has any warpgroup instruction.
    pub on: bool,
    /// Per instruction: its (register, is_write) operands among the registers wgmmas use.
    hz: Vec<Vec<(R, bool)>>,
}

impl KInfo {
    pub(crate) fn new(k: &Kernel) -> KInfo {
        let on = k.insts.iter().any(|i| matches!(i.op, Op::Wgmma(_)));
        if !on {
            return KInfo { on, hz: Vec::new() };
        }
        let mut tracked = vec![false; k.nregs as usize];
        for i in &k.insts {
            if let Op::Wgmma(op) = &i.op {
                if let WgOp::Mma(m) = &**op {
                    for r in m.d.iter().chain(&m.a_regs) {
                        if *r != R_SINK && *r != R_ZERO {
                            tracked[*r as usize] = true;
                        }
                    }
                }
            }
        }
        let hz = k
            .insts
            .iter()
            .map(|i| {
                let mut v = Vec::new();
                regs_of(&i.op, k, &mut |r, wr| {
                    if (r as usize) < tracked.len() && tracked[r as usize] {
                        v.push((r, wr))
                    }
                });
                v
            })
            .collect();
        KInfo { on, hz }
    }
}

#[derive(Clone, Copy)]
struct Queued {
    pc: u32,
    a_desc: u64,
    b_desc: u64,
    scale_d: bool,
}

/// Per-warp wgmma state.
pub(crate) struct WarpWg {
    pending: Vec<Queued>,
    groups: VecDeque<Vec<Queued>>,
    /// Per register: number of queued wgmmas owning it, and the latest one's PC.
    inflight: Vec<u16>,
    inflight_pc: Vec<u32>,
    /// Per register: PC of the last ordinary write since the last `wgmma.fence` (MAX: none).
    dirty_pc: Vec<u32>,
    fenced: bool,
    /// Warpgroup instructions executed so far.
    seq: usize,
    spins: u32,
}

impl WarpWg {
    pub(crate) fn new(k: &Kernel, on: bool) -> WarpWg {
        let n = if on { k.nregs as usize } else { 0 };
        WarpWg {
            pending: Vec::new(),
            groups: VecDeque::new(),
            inflight: vec![0; n],
            inflight_pc: vec![u32::MAX; n],
            dirty_pc: vec![u32::MAX; n],
            fenced: false,
            seq: 0,
            spins: 0,
        }
    }
    fn busy(&self) -> bool {
        !self.pending.is_empty() || !self.groups.is_empty()
    }
}

/// Per-CTA warpgroup state (logs of warpgroup instructions, register counts).
pub(crate) struct CtaWg {
    pub info: KInfo,
    /// Per warpgroup: PCs of its warpgroup instructions from index `base` on (entries every warp
    /// of the warpgroup has passed are dropped).
    logs: Vec<(usize, VecDeque<u32>)>,
    /// Per warp: warpgroup instructions executed (a copy of `WarpWg::seq`).
    seqs: Vec<usize>,
    nreg: Vec<u32>,
}

pub(crate) const SM_REGS: u32 = 65536;

impl CtaWg {
    pub(crate) fn new(k: &Kernel) -> CtaWg {
        CtaWg { info: KInfo::new(k), logs: Vec::new(), seqs: Vec::new(), nreg: Vec::new() }
    }
}

/// What the step loop does after a warpgroup instruction.
pub(crate) enum Flow {
    Next,
    /// Lanes were parked waiting for the rest of the warp.
    Parked,
    /// Retry this instruction later (setmaxnreg.inc waiting for registers).
    Yield,
}

const MAX_SPINS: u32 = 100_000;

impl<'a> Ex<'a> {
    fn wg_err(&self, kind: ErrorKind, w: &Warp, pc: u32, what: &str) -> EmuError {
        self.err(kind, w, first_lane(w.live), pc, what)
    }

    fn nthreads(&self) -> u32 {
        self.block[0] * self.block[1] * self.block[2]
    }

    fn initial_nreg(&self) -> u32 {
        let t = self.nthreads().max(1);
        ((SM_REGS / t) / 8 * 8).min(248)
    }

    /// Before an ordinary instruction of a wgmma kernel: in-flight and fence bookkeeping.
    #[inline]
    pub(super) fn wg_hazard(&self, w: &mut Warp, pc: u32, m: u32) -> Res<()> {
        let hz = &self.wg.info.hz[pc as usize];
        if hz.is_empty() || m == 0 {
            return Ok(());
        }
        for &(r, wr) in hz {
            let r = r as usize;
            if w.wg.inflight[r] > 0 {
                let (line, _) = self.src_of(w.wg.inflight_pc[r]);
                let what = if wr { "writes" } else { "reads" };
                return Err(self.err(
                    ErrorKind::Fault,
                    w,
                    first_lane(m),
                    pc,
                    &format!(
                        "wgmma in flight: this instruction {what} register #{r}, an operand of the wgmma.mma_async at line {line} that no wgmma.wait_group has completed yet (missing wgmma.wait_group),"
                    ),
                ));
            }
            if wr {
                w.wg.dirty_pc[r] = pc;
            }
        }
        Ok(())
    }

    /// Log a warpgroup instruction and check the four warps execute the same sequence.
    fn wg_arrive(&mut self, w: &mut Warp, pc: u32) -> Res<()> {
        let nwarps = self.nthreads().div_ceil(32) as usize;
        let g = w.id as usize / 4;
        if !self.nthreads().is_multiple_of(128) {
            return Err(self.wg_err(
                ErrorKind::Convergence,
                w,
                pc,
                &format!("warpgroup instruction in a CTA of {} threads (warpgroups need 128 threads each)", self.nthreads()),
            ));
        }
        if self.wg.logs.len() < nwarps.div_ceil(4) {
            self.wg.logs = vec![(0, VecDeque::new()); nwarps.div_ceil(4)];
            self.wg.seqs = vec![0; nwarps];
            let init = self.initial_nreg();
            self.wg.nreg = vec![init; nwarps];
        }
        let k = w.wg.seq;
        let (base, log) = &mut self.wg.logs[g];
        let idx = k - *base;
        if idx < log.len() {
            if log[idx] != pc {
                let other = log[idx];
                let (ol, ot) = self.src_of(other);
                return Err(self.wg_err(
                    ErrorKind::Convergence,
                    w,
                    pc,
                    &format!(
                        "warpgroup {g} diverged: another warp of the warpgroup executed line {ol} `{ot}` as its warpgroup instruction #{k}, this warp"
                    ),
                ));
            }
        } else {
            log.push_back(pc);
        }
        w.wg.seq += 1;
        self.wg.seqs[w.id as usize] = w.wg.seq;
        let lo = 4 * g;
        let min = self.wg.seqs[lo..(lo + 4).min(self.wg.seqs.len())].iter().copied().min().unwrap_or(0);
        let (base, log) = &mut self.wg.logs[g];
        while *base < min && !log.is_empty() {
            log.pop_front();
            *base += 1;
        }
        Ok(())
    }

    /// Executes a warpgroup instruction for warp `w`.
    pub(super) fn wgmma_step(&mut self, w: &mut Warp, op: &WgOp, pc: u32, guard: P, smem: &mut [u8]) -> Res<Flow> {
        let live = w.live;
        let Some(parts) = self.gather(w, live, false, pc)? else { return Ok(Flow::Parked) };
        let m = parts & if guard != NONE { pval(&w.preds, guard) } else { FULL };
        if parts != FULL || m != FULL {
            return Err(self.err(
                ErrorKind::Convergence,
                w,
                first_lane(parts),
                pc,
                "warpgroup instruction (.sync.aligned) needs all 32 lanes of every warp of the warpgroup, converged and unpredicated-off;",
            ));
        }
        if w.wg.spins == 0 {
            self.wg_arrive(w, pc)?;
        }
        match op {
            WgOp::Fence => {
                w.wg.fenced = true;
                w.wg.dirty_pc.iter_mut().for_each(|x| *x = u32::MAX);
            }
            WgOp::Commit => {
                let g = std::mem::take(&mut w.wg.pending);
                w.wg.groups.push_back(g);
            }
            WgOp::Wait(n) => {
                while w.wg.groups.len() > *n as usize {
                    let g = w.wg.groups.pop_front().unwrap();
                    for q in g {
                        self.wg_exec(w, q, smem)?;
                    }
                }
            }
            WgOp::Setmaxnreg { inc, n } => {
                let wi = w.id as usize;
                let cur = self.wg.nreg[wi];
                if *inc && *n < cur || !*inc && *n > cur {
                    w.wg.spins = 0;
                    let dir = if *inc { "inc" } else { "dec" };
                    return Err(self.wg_err(
                        ErrorKind::Fault,
                        w,
                        pc,
                        &format!("setmaxnreg.{dir} to {n} registers from the warp's current {cur}"),
                    ));
                }
                let total: u32 = self.wg.nreg.iter().enumerate().map(|(i, &c)| if i == wi { *n } else { c } * 32).sum();
                if total > SM_REGS {
                    if *inc && w.wg.spins < MAX_SPINS {
                        w.wg.spins += 1;
                        return Ok(Flow::Yield);
                    }
                    w.wg.spins = 0;
                    return Err(self.wg_err(
                        ErrorKind::Fault,
                        w,
                        pc,
                        &format!(
                            "setmaxnreg to {n}: the CTA's warps would hold {total} registers, more than the SM's {SM_REGS} (per-warp counts {:?})",
                            self.wg.nreg
                        ),
                    ));
                }
                w.wg.spins = 0;
                self.wg.nreg[wi] = *n;
            }
            WgOp::Mma(mm) => {
                // Fence checks.
                if !w.wg.fenced {
                    return Err(self.wg_err(ErrorKind::Fault, w, pc, "missing wgmma.fence: no wgmma.fence before the first wgmma.mma_async"));
                }
                for r in mm.d.iter().chain(&mm.a_regs) {
                    let wpc = w.wg.dirty_pc[*r as usize];
                    if wpc != u32::MAX {
                        let (line, text) = self.src_of(wpc);
                        return Err(self.wg_err(
                            ErrorKind::Fault,
                            w,
                            pc,
                            &format!("missing wgmma.fence: operand register #{r} was written at line {line} `{text}` after the last wgmma.fence;"),
                        ));
                    }
                }
                let uni = |reg: R| -> Option<u64> {
                    let row = &w.regs[reg as usize * 32..reg as usize * 32 + 32];
                    row.iter().all(|&x| x == row[0]).then_some(row[0])
                };
                let a_desc = if mm.a_desc == NONE { 0 } else { uni(mm.a_desc).ok_or_else(|| self.wg_err(ErrorKind::Fault, w, pc, "wgmma: the A descriptor differs between lanes"))? };
                let b_desc = uni(mm.b_desc).ok_or_else(|| self.wg_err(ErrorKind::Fault, w, pc, "wgmma: the B descriptor differs between lanes"))?;
                let sd = pval(&w.preds, mm.scale_d);
                if sd != 0 && sd != FULL {
                    return Err(self.wg_err(ErrorKind::Fault, w, pc, "wgmma: the scale-d predicate differs between lanes"));
                }
                for r in mm.d.iter().chain(&mm.a_regs) {
                    let r = *r as usize;
                    w.wg.inflight[r] += 1;
                    w.wg.inflight_pc[r] = pc;
                }
                w.wg.pending.push(Queued { pc, a_desc, b_desc, scale_d: sd == FULL });
            }
        }
        Ok(Flow::Next)
    }

    /// Completes one queued wgmma for warp `w` (its 16-row slice).
    fn wg_exec(&mut self, w: &mut Warp, q: Queued, smem: &[u8]) -> Res<()> {
        let k = self.k;
        let Op::Wgmma(op) = &k.insts[q.pc as usize].op else { unreachable!() };
        let WgOp::Mma(mm) = &**op else { unreachable!() };
        let kind = mm.kind;
        let warp = w.id % 4;
        let mut fault: Option<String> = None;
        let asy = &self.asy;
        let read = |desc: &Desc, major: Major, e: crate::tensor::Elem, mn: u32, kk: u32, fault: &mut Option<String>| -> f64 {
            let eb = e.bits() / 8;
            let addr = crate::tensor::wgmma::elem_addr(desc, major, eb, mn, kk) as usize;
            if addr + eb as usize > smem.len() {
                if fault.is_none() {
                    *fault = Some(format!(
                        "wgmma reads shared memory out of bounds: element ({mn}, {kk}) at {addr:#x}, shared memory is {} bytes;",
                        smem.len()
                    ));
                }
                return 0.0;
            }
            if let Some((chunk, writer)) = asy.unfenced(addr as u32, eb) {
                if fault.is_none() {
                    *fault = Some(format!(
                        "missing fence.proxy.async: wgmma (async proxy) reads shared chunk {chunk:#x} (element ({mn}, {kk})) that warp {writer} wrote through the generic proxy without a fence.proxy.async since;"
                    ));
                }
            }
            let mut raw = 0u32;
            for i in 0..eb as usize {
                raw |= (smem[addr + i] as u32) << (8 * i);
            }
            elem_value(e, raw)
        };
        let bd = Desc::decode(q.b_desc);
        let ad = Desc::decode(q.a_desc);
        for (d, which) in [(bd, "B"), (ad, "A")] {
            if which == "A" && mm.a_desc == NONE {
                continue;
            }
            if let Err(e) = d.check() {
                return Err(self.wg_err(ErrorKind::Fault, w, q.pc, &format!("{which}: {e};")));
            }
        }
        let nd = kind.d_regs();
        let mut dv = vec![0u32; 32 * nd];
        for l in 0..32 {
            for (i, r) in mm.d.iter().enumerate() {
                dv[l * nd + i] = w.regs[*r as usize * 32 + l] as u32;
            }
        }
        // Register A: element (row, k) of this warp's rows, from the lanes' registers.
        let mut areg = vec![0f64; 64 * kind.k as usize];
        if mm.a_desc == NONE {
            let per = 32 / kind.a.bits();
            for l in 0..32u32 {
                for i in 0..4 * per {
                    let (row, kk) = crate::tensor::wgmma::a_reg_coord(kind.a, warp * 32 + l, i);
                    let reg = w.regs[mm.a_regs[(i / per) as usize] as usize * 32 + l as usize] as u32;
                    let raw = if per == 1 { reg } else { (reg >> ((i % per) * kind.a.bits())) & ((1 << kind.a.bits()) - 1) };
                    areg[row as usize * kind.k as usize + kk as usize] = elem_value(kind.a, raw);
                }
            }
        }
        let amaj = if mm.trans_a { Major::MN } else { Major::K };
        let bmaj = if mm.trans_b { Major::MN } else { Major::K };
        {
            let fa = &mut fault;
            let mut fb: Option<String> = None;
            let kk_ = kind.k as usize;
            wgmma_warp(
                &kind,
                warp,
                &mut |row, kk| {
                    if mm.a_desc == NONE {
                        areg[row as usize * kk_ + kk as usize]
                    } else {
                        read(&ad, amaj, kind.a, row, kk, fa)
                    }
                },
                &mut |kk, n| read(&bd, bmaj, kind.b, n, kk, &mut fb),
                &mut dv,
                q.scale_d,
                mm.neg_a,
                mm.neg_b,
                fp8_acc(),
            );
            if fault.is_none() {
                fault = fb;
            }
        }
        if let Some(f) = fault {
            return Err(self.wg_err(ErrorKind::Memory, w, q.pc, &f));
        }
        for l in 0..32 {
            for (i, r) in mm.d.iter().enumerate() {
                w.regs[*r as usize * 32 + l] = dv[l * nd + i] as u64;
            }
        }
        for r in mm.d.iter().chain(&mm.a_regs) {
            let r = *r as usize;
            w.wg.inflight[r] -= 1;
        }
        self.st.tensor_flops += kind.flops() / 4;
        Ok(())
    }

    /// At the end of a CTA: no wgmma in flight, and the warps of each warpgroup executed the same
    /// number of warpgroup instructions.
    pub(super) fn wg_end_cta(&mut self, warps: &[Warp]) -> Res<()> {
        if !self.wg.info.on {
            return Ok(());
        }
        for w in warps {
            if w.wg.busy() {
                let q = w.wg.pending.first().or_else(|| w.wg.groups.iter().flat_map(|g| g.iter()).next()).unwrap();
                let (line, text) = self.src_of(q.pc);
                return Err(EmuError::new(
                    ErrorKind::Fault,
                    format!(
                        "wgmma in flight at exit: warp {} of kernel {}, CTA ({},{},{}) ended with the wgmma.mma_async at line {line} `{text}` never completed (missing wgmma.commit_group / wgmma.wait_group)",
                        w.id, self.k.name, self.cta[0], self.cta[1], self.cta[2]
                    ),
                ));
            }
        }
        for g in warps.chunks(4) {
            let s0 = g[0].wg.seq;
            if let Some(o) = g.iter().find(|w| w.wg.seq != s0) {
                return Err(EmuError::new(
                    ErrorKind::Convergence,
                    format!(
                        "warpgroup diverged in kernel {}, CTA ({},{},{}): warp {} executed {} warpgroup instructions but warp {} executed {}",
                        self.k.name, self.cta[0], self.cta[1], self.cta[2], g[0].id, s0, o.id, o.wg.seq
                    ),
                ));
            }
        }
        self.wg.logs.clear();
        self.wg.seqs.clear();
        self.wg.nreg.clear();
        Ok(())
    }
}
