//! The SIMT core: grid -> CTAs (sequential, deterministic) -> warps of 32 lanes in lockstep with
//! per-lane PCs and min-PC reconvergence. Registers are `[reg][lane]` u64 slots, predicates u32
//! lane masks. Warps of a CTA run round-robin for a quantum or until they block on a barrier.
pub mod alu;
pub mod asyncops;
pub mod race;
pub mod schedule;
pub mod wgmma;

use std::cell::RefCell;
use std::collections::BTreeMap;

use crate::api::{EmuError, ErrorKind, LaunchStats};
use crate::decode::asyncops::{AsyncOp, MbarOp};
use crate::decode::inst::*;
use crate::mem::{le_read, le_write, GlobalMem};
use alu::*;

pub const FULL: u32 = u32::MAX;
const POISON64: u64 = u64::MAX;
const QUANTUM: u32 = 512;
/// Default per-launch budget of thread-instructions.
pub const DEFAULT_BUDGET: u64 = 20_000_000_000;

pub struct Launch<'a> {
    pub k: &'a Kernel,
    pub g: &'a mut GlobalMem,
    pub params: &'a [u8],
    pub grid: [u32; 3],
    pub block: [u32; 3],
    pub dyn_smem: u32,
    pub budget: u64,
    pub race_check: bool,
    pub schedule: schedule::Schedule,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum WState {
    Run,
    /// Blocked on CTA barrier `id`.
    Bar(u32),
    /// Parked on the mbarrier at this shared address until its phase moves past the second.
    Mbar(u32, u32),
    Done,
}

#[derive(Clone, Copy)]
struct CpReq {
    lane: u8,
    dst: u32,
    src: u64,
    size: u8,
    src_size: u8,
}

struct Warp {
    id: u32,
    regs: Vec<u64>,
    preds: Vec<u32>,
    pc: u32,
    /// Lanes executing together at `pc`.
    group: u32,
    /// Lanes that have not exited (and exist).
    live: u32,
    /// Lanes parked at a collective, waiting for the rest of its member mask.
    waiting: u32,
    pcs: [u32; 32],
    /// Minimum PC of the other runnable lanes (MAX when converged).
    other_min: u32,
    state: WState,
    local: Vec<u8>,
    cp_groups: Vec<Vec<CpReq>>,
    cp_cur: Vec<CpReq>,
    /// A pending `bar.red` result: (kind, destination, lanes).
    bar_red: Option<(BarKind, u32, u32)>,
    /// The PC of the CTA barrier this warp blocks on (for reports).
    block_pc: u32,
    /// Lowest PC where lanes are parked at an `.aligned` instruction (MAX if none), and the
    /// lanes that executed work past it meanwhile (they must come back, not exit).
    park_pc: u32,
    passed: u32,
    wg: wgmma::WarpWg,
}

#[derive(Default, Clone)]
struct Barrier {
    /// Threads arrived (warps count as 32 each for counted barriers).
    arrived: u32,
    /// Expected thread count (None: all non-exited warps).
    count: Option<u32>,
    waiters: Vec<usize>,
    popc: u32,
    all: bool,
    any: bool,
    /// Join of the arrived warps' clocks (race detector).
    clock: race::Clock,
}

enum Ev {
    Quantum,
    Done,
    Bar { id: u32, count: Option<u32>, wait: bool, popc: u32, all: bool, any: bool },
}

struct Stats {
    classes: [u64; N_CLASSES],
    global_bytes: u64,
    sectors: u64,
    conflicts: u64,
    tensor_flops: u64,
}

pub(crate) struct Ex<'a> {
    k: &'a Kernel,
    g: &'a mut GlobalMem,
    params: &'a [u8],
    grid: [u32; 3],
    block: [u32; 3],
    dyn_smem: u32,
    cta: [u32; 3],
    cls: Vec<u8>,
    thread_insts: u64,
    budget: u64,
    st: Stats,
    asy: asyncops::AsyncState,
    wg: wgmma::CtaWg,
    race: RefCell<race::Race>,
    race_on: bool,
    /// The current access is an atomic (atomics do not race with atomics).
    atomic: bool,
    /// The PC of the instruction being executed (race reports).
    cur_pc: u32,
    rng: Option<schedule::Rng>,
    quantum: u32,
    /// Fuzzing: land pending bulk/TMA loads at random points, not only at the latest one.
    early_loads: bool,
}

/// A failed memory access (formatted by the caller, who knows the lane and instruction).
struct MemFault {
    space: Space,
    addr: u64,
    size: u32,
    store: bool,
    misaligned: bool,
}

type Res<T> = Result<T, EmuError>;

#[inline(always)]
fn each(m: u32, mut f: impl FnMut(usize)) {
    if m == FULL {
        for l in 0..32 {
            f(l);
        }
    } else {
        let mut b = m;
        while b != 0 {
            let l = b.trailing_zeros() as usize;
            b &= b - 1;
            f(l);
        }
    }
}

#[inline(always)]
fn row(regs: &[u64], r: R) -> [u64; 32] {
    let o = r as usize * 32;
    regs[o..o + 32].try_into().unwrap()
}

#[inline(always)]
fn un(regs: &mut [u64], m: u32, d: R, a: R, f: impl Fn(u64) -> u64) {
    let av = row(regs, a);
    let o = d as usize * 32;
    let dv = &mut regs[o..o + 32];
    if m == FULL {
        for l in 0..32 {
            dv[l] = f(av[l]);
        }
    } else {
        each(m, |l| dv[l] = f(av[l]));
    }
}

#[inline(always)]
fn bin(regs: &mut [u64], m: u32, d: R, a: R, b: R, f: impl Fn(u64, u64) -> u64) {
    let av = row(regs, a);
    let bv = row(regs, b);
    let o = d as usize * 32;
    let dv = &mut regs[o..o + 32];
    if m == FULL {
        for l in 0..32 {
            dv[l] = f(av[l], bv[l]);
        }
    } else {
        each(m, |l| dv[l] = f(av[l], bv[l]));
    }
}

#[inline(always)]
fn tri(regs: &mut [u64], m: u32, d: R, a: R, b: R, c: R, f: impl Fn(u64, u64, u64) -> u64) {
    let av = row(regs, a);
    let bv = row(regs, b);
    let cv = row(regs, c);
    let o = d as usize * 32;
    let dv = &mut regs[o..o + 32];
    if m == FULL {
        for l in 0..32 {
            dv[l] = f(av[l], bv[l], cv[l]);
        }
    } else {
        each(m, |l| dv[l] = f(av[l], bv[l], cv[l]));
    }
}

#[inline(always)]
fn pval(preds: &[u32], p: P) -> u32 {
    let v = preds[(p & !NEG) as usize];
    if p & NEG != 0 {
        !v
    } else {
        v
    }
}

#[inline(always)]
fn pset(preds: &mut [u32], d: P, m: u32, v: u32) {
    let x = &mut preds[d as usize];
    *x = (*x & !m) | (v & m);
}

fn first_lane(m: u32) -> usize {
    if m == 0 {
        0
    } else {
        m.trailing_zeros() as usize
    }
}

impl Warp {
    /// Save the group's PC into its lanes and pick the next group among runnable lanes.
    fn regroup(&mut self) -> bool {
        let g = self.group;
        let pc = self.pc;
        each(g, |l| self.pcs[l] = pc);
        self.select()
    }

    /// Pick the lanes at the minimum PC among runnable (live, not waiting) lanes. Returns false
    /// when none is runnable.
    fn select(&mut self) -> bool {
        let cand = self.live & !self.waiting;
        if cand == 0 {
            self.group = 0;
            self.other_min = u32::MAX;
            return false;
        }
        let mut min = u32::MAX;
        each(cand, |l| min = min.min(self.pcs[l]));
        let mut g = 0u32;
        let mut other = u32::MAX;
        each(cand, |l| {
            if self.pcs[l] == min {
                g |= 1 << l;
            } else {
                other = other.min(self.pcs[l]);
            }
        });
        self.group = g;
        self.pc = min;
        self.other_min = other;
        true
    }

    /// Lanes parked at `pc`.
    fn waiting_at(&self, pc: u32) -> u32 {
        let mut m = 0;
        each(self.waiting, |l| {
            if self.pcs[l] == pc {
                m |= 1 << l
            }
        });
        m
    }
}

impl<'a> Ex<'a> {
    fn src_of(&self, pc: u32) -> (u32, &str) {
        let i = &self.k.insts[(pc as usize).min(self.k.insts.len() - 1)];
        let (l, t) = &self.k.src[i.src as usize];
        (*l, t.as_str())
    }

    fn tid(&self, w: &Warp, lane: usize) -> [u32; 3] {
        let lin = w.id * 32 + lane as u32;
        let [bx, by, _] = self.block;
        [lin % bx, (lin / bx) % by, lin / (bx * by)]
    }

    fn loc(&self, w: &Warp, lane: usize, pc: u32) -> String {
        let t = self.tid(w, lane);
        let (line, text) = self.src_of(pc);
        format!(
            "in kernel {}, CTA ({},{},{}), thread ({},{},{}), line {}: `{}`",
            self.k.name, self.cta[0], self.cta[1], self.cta[2], t[0], t[1], t[2], line, text
        )
    }

    fn err(&self, kind: ErrorKind, w: &Warp, lane: usize, pc: u32, what: &str) -> EmuError {
        EmuError::new(kind, format!("{what} {}", self.loc(w, lane, pc)))
    }

    fn mem_err(&self, f: MemFault, w: &Warp, lane: usize, pc: u32, smem_len: usize) -> EmuError {
        let dir = if f.store { "store" } else { "load" };
        let head = if f.misaligned {
            format!("misaligned {} {} of {} bytes at {:#x}", f.space.name(), dir, f.size, f.addr)
        } else {
            format!("out of bounds {} {} of {} bytes at {:#x}", f.space.name(), dir, f.size, f.addr)
        };
        let tail = match f.space {
            Space::Global => format!("; {}", self.g.describe(f.addr)),
            Space::Shared => format!("; shared memory is {} bytes", smem_len),
            Space::Local => format!("; local memory is {} bytes per thread", self.k.local_size),
            Space::Param => format!("; the parameter bank is {} bytes", self.params.len()),
            Space::Generic => String::new(),
        };
        EmuError::new(ErrorKind::Memory, format!("{head} {}{tail}", self.loc(w, lane, pc)))
    }

    fn warp_new(&self, id: u32, nthreads: u32) -> Warp {
        let k = self.k;
        let mut regs = vec![POISON64; k.nregs as usize * 32];
        for &(r, v) in &k.consts {
            let o = r as usize * 32;
            regs[o..o + 32].fill(v);
        }
        let first = id * 32;
        let n = nthreads.saturating_sub(first).min(32);
        let live = if n == 32 { FULL } else { (1u32 << n) - 1 };
        for &(r, s) in &k.sregs {
            let o = r as usize * 32;
            for l in 0..32u32 {
                let lin = first + l;
                let [bx, by, _] = self.block;
                let v: u64 = match s {
                    SReg::Tid(0) => (lin % bx) as u64,
                    SReg::Tid(1) => ((lin / bx) % by) as u64,
                    SReg::Tid(_) => (lin / (bx * by)) as u64,
                    SReg::Ntid(d) => self.block[d as usize] as u64,
                    SReg::Ctaid(d) => self.cta[d as usize] as u64,
                    SReg::Nctaid(d) => self.grid[d as usize] as u64,
                    SReg::LaneId => l as u64,
                    SReg::LaneMaskEq => (1u64 << l) as u32 as u64,
                    SReg::LaneMaskLt => ((1u64 << l) - 1) as u32 as u64,
                    SReg::LaneMaskLe => ((1u64 << (l + 1)) - 1) as u32 as u64,
                    SReg::LaneMaskGt => (!((1u64 << (l + 1)) - 1)) as u32 as u64,
                    SReg::LaneMaskGe => (!((1u64 << l) - 1)) as u32 as u64,
                    SReg::DynSmem => self.dyn_smem as u64,
                    SReg::TotalSmem => (k.dyn_smem_offset + self.dyn_smem) as u64,
                    SReg::WarpSize => 32,
                    SReg::DynBase => k.dyn_smem_offset as u64,
                };
                regs[o + l as usize] = v;
            }
        }
        let mut preds = vec![FULL; k.npreds as usize];
        preds[P_FALSE as usize] = 0;
        preds[P_TRUE as usize] = FULL;
        preds[P_CC as usize] = 0;
        Warp {
            id,
            regs,
            preds,
            pc: 0,
            group: live,
            live,
            waiting: 0,
            pcs: [0; 32],
            other_min: u32::MAX,
            state: if live == 0 { WState::Done } else { WState::Run },
            local: vec![crate::mem::POISON; k.local_size as usize * 32],
            cp_groups: Vec::new(),
            cp_cur: Vec::new(),
            bar_red: None,
            block_pc: 0,
            park_pc: u32::MAX,
            passed: 0,
            wg: wgmma::WarpWg::new(k, self.wg.info.on),
        }
    }

    // ---------------------------------------------------------------- memory

    #[inline(always)]
    fn resolve(space: Space, addr: u64) -> (Space, u64) {
        if space != Space::Generic {
            return (space, addr);
        }
        if (SHARED_WIN..SHARED_WIN + WIN_SIZE).contains(&addr) {
            (Space::Shared, addr - SHARED_WIN)
        } else if (LOCAL_WIN..LOCAL_WIN + WIN_SIZE).contains(&addr) {
            (Space::Local, addr - LOCAL_WIN)
        } else if (PARAM_WIN..PARAM_WIN + WIN_SIZE).contains(&addr) {
            (Space::Param, addr - PARAM_WIN)
        } else {
            (Space::Global, addr)
        }
    }

    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    fn read(&self, smem: &[u8], local: &[u8], lane: usize, space: Space, addr: u64, size: usize) -> Result<u64, MemFault> {
        let fault = |sp: Space, a: u64| MemFault { space: sp, addr: a, size: size as u32, store: false, misaligned: false };
        let (sp, a) = Self::resolve(space, addr);
        match sp {
            Space::Global => self.g.read(a, size).ok_or_else(|| fault(sp, a)),
            Space::Shared => {
                let e = a.checked_add(size as u64).filter(|&e| e <= smem.len() as u64).ok_or_else(|| fault(sp, a))?;
                if self.race_on {
                    self.race.borrow_mut().access(self.asy.cur_warp as usize, self.cur_pc, a, size as u64, false, self.atomic);
                }
                Ok(le_read(&smem[a as usize..e as usize]))
            }
            Space::Local => {
                let ls = self.k.local_size as u64;
                let e = a.checked_add(size as u64).filter(|&e| e <= ls).ok_or_else(|| fault(sp, a))?;
                let o = lane as u64 * ls;
                Ok(le_read(&local[(o + a) as usize..(o + e) as usize]))
            }
            Space::Param => {
                let e = a.checked_add(size as u64).filter(|&e| e <= self.params.len() as u64).ok_or_else(|| fault(sp, a))?;
                Ok(le_read(&self.params[a as usize..e as usize]))
            }
            Space::Generic => unreachable!(),
        }
    }

    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    fn write(&mut self, smem: &mut [u8], local: &mut [u8], lane: usize, space: Space, addr: u64, size: usize, v: u64) -> Result<(), MemFault> {
        let fault = |sp: Space, a: u64| MemFault { space: sp, addr: a, size: size as u32, store: true, misaligned: false };
        let (sp, a) = Self::resolve(space, addr);
        match sp {
            Space::Global => self.g.write(a, size, v).ok_or_else(|| fault(sp, a)),
            Space::Shared => {
                let e = a.checked_add(size as u64).filter(|&e| e <= smem.len() as u64).ok_or_else(|| fault(sp, a))?;
                self.asy.mark(a, size as u64);
                if self.race_on {
                    self.race.get_mut().access(self.asy.cur_warp as usize, self.cur_pc, a, size as u64, true, self.atomic);
                }
                le_write(&mut smem[a as usize..e as usize], v);
                Ok(())
            }
            Space::Local => {
                let ls = self.k.local_size as u64;
                let e = a.checked_add(size as u64).filter(|&e| e <= ls).ok_or_else(|| fault(sp, a))?;
                let o = lane as u64 * ls;
                le_write(&mut local[(o + a) as usize..(o + e) as usize], v);
                Ok(())
            }
            Space::Param => Err(fault(sp, a)),
            Space::Generic => unreachable!(),
        }
    }

    fn count_sectors(&mut self, addrs: &[u64; 32], m: u32, total: u64) {
        let mut n = 0u64;
        let mut prev = u64::MAX;
        let mut sorted = true;
        each(m, |l| {
            let first = addrs[l] >> 5;
            let last = (addrs[l] + total - 1) >> 5;
            if prev != u64::MAX && first < prev {
                sorted = false;
            }
            for s in first..=last {
                if s != prev {
                    n += 1;
                    prev = s;
                }
            }
        });
        if !sorted {
            let mut v: Vec<u64> = Vec::with_capacity(64);
            each(m, |l| {
                let first = addrs[l] >> 5;
                let last = (addrs[l] + total - 1) >> 5;
                for s in first..=last {
                    v.push(s);
                }
            });
            v.sort_unstable();
            v.dedup();
            n = v.len() as u64;
        }
        self.st.sectors += n;
        self.st.global_bytes += total * m.count_ones() as u64;
    }

    fn count_banks(&mut self, addrs: &[u64; 32], m: u32, total: u64) {
        // Distinct 4-byte words per bank; an access of `total` bytes per lane ideally needs
        // total/4 wavefronts (at least one).
        let mut words: Vec<u64> = Vec::with_capacity(32);
        each(m, |l| {
            let a = addrs[l] & !3;
            let mut w = a;
            while w < addrs[l] + total {
                words.push(w >> 2);
                w += 4;
            }
        });
        words.sort_unstable();
        words.dedup();
        let mut per_bank = [0u32; 32];
        for w in &words {
            per_bank[(w & 31) as usize] += 1;
        }
        let max = *per_bank.iter().max().unwrap_or(&0) as u64;
        let ideal = (total / 4).max(1);
        if max > ideal {
            self.st.conflicts += max - ideal;
        }
    }

    // ---------------------------------------------------------------- collectives

    /// Gather the lanes that must execute a collective together. Returns Some(lanes) when every
    /// lane of `needed` waits at this instruction, None when the group was parked.
    fn gather(&self, w: &mut Warp, needed: u32, explicit: bool, pc: u32) -> Res<Option<u32>> {
        if explicit && needed & !w.live != 0 {
            let bad = needed & !w.live;
            return Err(self.err(
                ErrorKind::Convergence,
                w,
                first_lane(w.group),
                pc,
                &format!("membermask {needed:#010x} names exited or nonexistent lanes {bad:#010x}"),
            ));
        }
        let here = w.group | w.waiting_at(pc);
        if needed & !here == 0 {
            w.waiting &= !here;
            w.passed &= !here;
            if w.waiting == 0 {
                w.park_pc = u32::MAX;
                w.passed = 0;
            }
            w.group = here;
            let mut other = u32::MAX;
            each(w.live & !w.waiting & !here, |l| other = other.min(w.pcs[l]));
            w.other_min = other;
            return Ok(Some(here));
        }
        // Park the group and let the other lanes catch up.
        if !explicit {
            w.park_pc = w.park_pc.min(pc);
        }
        w.waiting |= w.group;
        let g = w.group;
        each(g, |l| w.pcs[l] = pc);
        if !w.select() {
            return Err(self.stuck(w));
        }
        Ok(None)
    }

    fn stuck(&self, w: &Warp) -> EmuError {
        let mut parts = Vec::new();
        let mut seen = 0u32;
        for l in 0..32 {
            if w.waiting & (1 << l) != 0 && seen & (1 << l) == 0 {
                let pc = w.pcs[l];
                let lanes = w.waiting_at(pc);
                seen |= lanes;
                let (line, text) = self.src_of(pc);
                parts.push(format!("lanes {lanes:#010x} wait at line {line} `{text}`"));
            }
        }
        EmuError::new(
            ErrorKind::Convergence,
            format!(
                "warp-synchronous instruction can never complete in kernel {}, CTA ({},{},{}), warp {}: {} (live lanes {:#010x}); the member mask names lanes that are elsewhere or exited",
                self.k.name,
                self.cta[0],
                self.cta[1],
                self.cta[2],
                w.id,
                parts.join("; "),
                w.live
            ),
        )
    }

    /// After exits, parked lanes may now be complete: retry the lowest parked PC.
    fn unpark(&self, w: &mut Warp) -> Res<bool> {
        if w.waiting == 0 {
            return Ok(false);
        }
        let mut min = u32::MAX;
        each(w.waiting, |l| min = min.min(w.pcs[l]));
        let g = w.waiting_at(min);
        // Would it complete now?
        let inst = &self.k.insts[min as usize];
        let needed = self.needed_of(w, inst, first_lane(g));
        if needed & !g == 0 || needed & !w.live != 0 {
            w.waiting &= !g;
            w.group = g;
            w.pc = min;
            w.other_min = u32::MAX;
            let mut other = u32::MAX;
            each(w.live & !w.waiting & !g, |l| other = other.min(w.pcs[l]));
            w.other_min = other;
            return Ok(true);
        }
        Err(self.stuck(w))
    }

    fn needed_of(&self, w: &Warp, inst: &Inst, lane: usize) -> u32 {
        let mr = match &inst.op {
            Op::Shfl { mask, .. }
            | Op::Vote { mask, .. }
            | Op::Match { mask, .. }
            | Op::Redux { mask, .. }
            | Op::Elect { mask, .. }
            | Op::WarpSync { mask } => *mask,
            _ => return w.live,
        };
        w.regs[mr as usize * 32 + lane] as u32
    }

    // ---------------------------------------------------------------- the interpreter

    fn step(&mut self, w: &mut Warp, smem: &mut [u8]) -> Res<Ev> {
        let k = self.k;
        let insts = &k.insts[..];
        let mut n = 0u32;
        self.asy.cur_warp = w.id;
        loop {
            if n >= self.quantum {
                return Ok(Ev::Quantum);
            }
            n += 1;
            let pc = w.pc;
            self.cur_pc = pc;
            let inst = &insts[pc as usize];
            let mut m = w.group;
            if inst.guard != NONE {
                m &= pval(&w.preds, inst.guard);
            }
            self.st.classes[self.cls[pc as usize] as usize] += 1;
            if w.waiting != 0 && pc > w.park_pc && !matches!(inst.op, Op::Exit | Op::Bra { .. }) {
                w.passed |= m;
            }
            self.thread_insts += m.count_ones() as u64;
            if self.wg.info.on {
                self.wg_hazard(w, pc, m)?;
            }
            let regs = &mut w.regs[..];
            match &inst.op {
                Op::Nop => {}
                &Op::Mov { d, a } => un(regs, m, d, a, |x| x),
                &Op::MovT { t, d, a } => un(regs, m, d, a, |x| t.norm(x)),
                &Op::PMov { d, a } => {
                    let v = pval(&w.preds, a);
                    pset(&mut w.preds, d, m, v);
                }
                &Op::Pack { bits, n: cnt, d, s } => {
                    let mask = if bits >= 64 { u64::MAX } else { (1u64 << bits) - 1 };
                    let o = d as usize * 32;
                    each(m, |l| {
                        let mut v = 0u64;
                        for (i, r) in s.iter().enumerate().take(cnt as usize) {
                            v |= (regs[*r as usize * 32 + l] & mask) << (i as u32 * bits as u32);
                        }
                        regs[o + l] = v;
                    });
                }
                &Op::Unpack { bits, n: cnt, a, d } => {
                    let mask = if bits >= 64 { u64::MAX } else { (1u64 << bits) - 1 };
                    let av = row(regs, a);
                    for (i, r) in d.iter().enumerate().take(cnt as usize) {
                        let o = *r as usize * 32;
                        each(m, |l| regs[o + l] = (av[l] >> (i as u32 * bits as u32)) & mask);
                    }
                }
                &Op::IBin { op, t, d, a, b } => match (op, t.bits, t.signed) {
                    (IOp::Add, 32, false) => bin(regs, m, d, a, b, |x, y| (x as u32).wrapping_add(y as u32) as u64),
                    (IOp::Add, 32, true) => bin(regs, m, d, a, b, |x, y| (x as i32).wrapping_add(y as i32) as i64 as u64),
                    (IOp::MulLo, 32, false) => bin(regs, m, d, a, b, |x, y| (x as u32).wrapping_mul(y as u32) as u64),
                    (IOp::MulLo, 32, true) => bin(regs, m, d, a, b, |x, y| (x as i32).wrapping_mul(y as i32) as i64 as u64),
                    (IOp::MulWide, 32, false) => bin(regs, m, d, a, b, |x, y| (x as u32 as u64) * (y as u32 as u64)),
                    (IOp::MulWide, 32, true) => bin(regs, m, d, a, b, |x, y| ((x as i32 as i64) * (y as i32 as i64)) as u64),
                    (IOp::Add, 64, _) => bin(regs, m, d, a, b, |x, y| x.wrapping_add(y)),
                    (IOp::Sub, 32, false) => bin(regs, m, d, a, b, |x, y| (x as u32).wrapping_sub(y as u32) as u64),
                    (IOp::Sub, 32, true) => bin(regs, m, d, a, b, |x, y| (x as i32).wrapping_sub(y as i32) as i64 as u64),
                    (IOp::Sub, 64, _) => bin(regs, m, d, a, b, |x, y| x.wrapping_sub(y)),
                    (IOp::MulLo, 64, _) => bin(regs, m, d, a, b, |x, y| x.wrapping_mul(y)),
                    (IOp::And, 32, false) => bin(regs, m, d, a, b, |x, y| (x & y) as u32 as u64),
                    (IOp::Or, 32, false) => bin(regs, m, d, a, b, |x, y| (x | y) as u32 as u64),
                    (IOp::Xor, 32, false) => bin(regs, m, d, a, b, |x, y| (x ^ y) as u32 as u64),
                    (IOp::And, 64, _) => bin(regs, m, d, a, b, |x, y| x & y),
                    (IOp::Or, 64, _) => bin(regs, m, d, a, b, |x, y| x | y),
                    (IOp::Xor, 64, _) => bin(regs, m, d, a, b, |x, y| x ^ y),
                    (IOp::Shr, 32, false) => bin(regs, m, d, a, b, |x, y| if y as u32 >= 32 { 0 } else { ((x as u32) >> y as u32) as u64 }),
                    (IOp::Shr, 32, true) => bin(regs, m, d, a, b, |x, y| ((x as i32) >> (y as u32).min(31)) as i64 as u64),
                    (IOp::Shr, 64, false) => bin(regs, m, d, a, b, |x, y| if y as u32 >= 64 { 0 } else { x >> y as u32 }),
                    (IOp::Shr, 64, true) => bin(regs, m, d, a, b, |x, y| ((x as i64) >> (y as u32).min(63)) as u64),
                    (IOp::Min, 32, true) => bin(regs, m, d, a, b, |x, y| (x as i32).min(y as i32) as i64 as u64),
                    (IOp::Max, 32, true) => bin(regs, m, d, a, b, |x, y| (x as i32).max(y as i32) as i64 as u64),
                    (IOp::Min, 32, false) => bin(regs, m, d, a, b, |x, y| (x as u32).min(y as u32) as u64),
                    (IOp::Max, 32, false) => bin(regs, m, d, a, b, |x, y| (x as u32).max(y as u32) as u64),
                    (IOp::Shl, 32, _) => bin(regs, m, d, a, b, |x, y| if y as u32 >= 32 { 0 } else { t.norm(((x as u32) << y as u32) as u64) }),
                    (IOp::Shl, 64, _) => bin(regs, m, d, a, b, |x, y| if y as u32 >= 64 { 0 } else { x << y as u32 }),
                    _ => bin(regs, m, d, a, b, |x, y| ibin(op, t, x, y)),
                },
                &Op::IUn { op, t, d, a } => un(regs, m, d, a, |x| iun(op, t, x)),
                &Op::IMad { op, t, d, a, b, c } => match (op, t.bits, t.signed) {
                    (MadOp::Lo, 32, false) => tri(regs, m, d, a, b, c, |x, y, z| (x as u32).wrapping_mul(y as u32).wrapping_add(z as u32) as u64),
                    (MadOp::Lo, 32, true) => tri(regs, m, d, a, b, c, |x, y, z| (x as i32).wrapping_mul(y as i32).wrapping_add(z as i32) as i64 as u64),
                    (MadOp::Wide, 32, false) => tri(regs, m, d, a, b, c, |x, y, z| (x as u32 as u64 * y as u32 as u64).wrapping_add(z)),
                    (MadOp::Wide, 32, true) => tri(regs, m, d, a, b, c, |x, y, z| ((x as i32 as i64) * (y as i32 as i64)).wrapping_add(z as i64) as u64),
                    _ => tri(regs, m, d, a, b, c, |x, y, z| imad(op, t, x, y, z)),
                },
                &Op::Cc { mode, mad, t, d, a, b, c } => {
                    let cin = w.preds[P_CC as usize];
                    let (av, bv, cv) = (row(regs, a), row(regs, b), row(regs, c));
                    let mut cout = 0u32;
                    let o = d as usize * 32;
                    each(m, |l| {
                        let (r, co) = cc(mode, mad, t, av[l], bv[l], cv[l], (cin >> l) & 1 != 0);
                        regs[o + l] = r;
                        cout |= (co as u32) << l;
                    });
                    if mode.cout {
                        pset(&mut w.preds, P_CC, m, cout);
                    }
                }
                &Op::Bfe { t, d, a, b, c } => tri(regs, m, d, a, b, c, |x, y, z| bfe(t, x, y, z)),
                &Op::Bfi { t, d, a, b, c, e } => {
                    let (av, bv, cv, ev) = (row(regs, a), row(regs, b), row(regs, c), row(regs, e));
                    let o = d as usize * 32;
                    each(m, |l| regs[o + l] = bfi(t, av[l], bv[l], cv[l], ev[l]));
                }
                &Op::Prmt { mode, d, a, b, c } => tri(regs, m, d, a, b, c, |x, y, z| prmt(mode, x, y, z)),
                &Op::Lop3 { lut, d, a, b, c } => tri(regs, m, d, a, b, c, |x, y, z| lop3(lut, x, y, z)),
                &Op::Shf { left, clamp, d, a, b, c } => tri(regs, m, d, a, b, c, |x, y, z| shf(left, clamp, x, y, z)),
                &Op::Fns { d, a, b, c } => tri(regs, m, d, a, b, c, fns),
                &Op::Dp4a { ua, ub, d, a, b, c } => tri(regs, m, d, a, b, c, |x, y, z| dp4a(ua, ub, x, y, z)),
                &Op::PLogic { op, d, a, b } => {
                    let (x, y) = (pval(&w.preds, a), pval(&w.preds, b));
                    let v = match op {
                        BoolOp::And => x & y,
                        BoolOp::Or => x | y,
                        BoolOp::Xor => x ^ y,
                    };
                    pset(&mut w.preds, d, m, v);
                }
                &Op::PNot { d, a } => {
                    let v = !pval(&w.preds, a);
                    pset(&mut w.preds, d, m, v);
                }
                &Op::Setp { cmp, t, comb, d, d2, a, b, c } => {
                    let (av, bv) = (row(regs, a), row(regs, b));
                    let mut v = 0u32;
                    match t {
                        Ct::Int(It { bits: 32, signed: true }) => each(m, |l| {
                            let (x, y) = (av[l] as i32, bv[l] as i32);
                            let r = match cmp {
                                Cmp::Eq => x == y,
                                Cmp::Ne => x != y,
                                Cmp::Lt => x < y,
                                Cmp::Le => x <= y,
                                Cmp::Gt => x > y,
                                Cmp::Ge => x >= y,
                                _ => false,
                            };
                            v |= (r as u32) << l;
                        }),
                        Ct::Int(It { bits: 32, signed: false }) => each(m, |l| {
                            let (x, y) = (av[l] as u32, bv[l] as u32);
                            let r = match cmp {
                                Cmp::Eq => x == y,
                                Cmp::Ne => x != y,
                                Cmp::Lt => x < y,
                                Cmp::Le => x <= y,
                                Cmp::Gt => x > y,
                                Cmp::Ge => x >= y,
                                _ => false,
                            };
                            v |= (r as u32) << l;
                        }),
                        _ => each(m, |l| v |= (compare(cmp, t, av[l], bv[l]) as u32) << l),
                    }
                    let (v, v2) = match comb {
                        None => (v, !v),
                        Some(op) => {
                            let cv = pval(&w.preds, c);
                            match op {
                                BoolOp::And => (v & cv, !v & cv),
                                BoolOp::Or => (v | cv, !v | cv),
                                BoolOp::Xor => (v ^ cv, !v ^ cv),
                            }
                        }
                    };
                    pset(&mut w.preds, d, m, v);
                    if d2 != P_SINK {
                        pset(&mut w.preds, d2, m, v2);
                    }
                }
                &Op::Set { cmp, t, dt, comb, d, a, b, c } => {
                    let cv = pval(&w.preds, c);
                    let (av, bv) = (row(regs, a), row(regs, b));
                    let o = d as usize * 32;
                    each(m, |l| {
                        let mut r = compare(cmp, t, av[l], bv[l]);
                        let cb = (cv >> l) & 1 != 0;
                        r = match comb {
                            None => r,
                            Some(BoolOp::And) => r & cb,
                            Some(BoolOp::Or) => r | cb,
                            Some(BoolOp::Xor) => r ^ cb,
                        };
                        regs[o + l] = match dt {
                            CvtT::F(_) => {
                                if r {
                                    1.0f32.to_bits() as u64
                                } else {
                                    0
                                }
                            }
                            CvtT::Int(it) => {
                                if r {
                                    it.norm(u64::MAX)
                                } else {
                                    0
                                }
                            }
                        };
                    });
                }
                &Op::Selp { d, a, b, p } => {
                    let pv = pval(&w.preds, p);
                    let (av, bv) = (row(regs, a), row(regs, b));
                    let o = d as usize * 32;
                    each(m, |l| regs[o + l] = if (pv >> l) & 1 != 0 { av[l] } else { bv[l] });
                }
                &Op::Slct { f32c, d, a, b, c } => tri(regs, m, d, a, b, c, |x, y, z| {
                    let ge = if f32c { f32v(z) >= 0.0 } else { z as i32 >= 0 };
                    if ge {
                        x
                    } else {
                        y
                    }
                }),
                &Op::FBin { op, t, rnd, ftz, sat, d, a, b } => match t {
                    Ft::F32 => match (op, rnd, ftz, sat) {
                        (FOp::Add, crate::num::Rnd::Rn, false, false) => bin(regs, m, d, a, b, |x, y| c32(f32v(x) + f32v(y))),
                        (FOp::Sub, crate::num::Rnd::Rn, false, false) => bin(regs, m, d, a, b, |x, y| c32(f32v(x) - f32v(y))),
                        (FOp::Mul, crate::num::Rnd::Rn, false, false) => bin(regs, m, d, a, b, |x, y| c32(f32v(x) * f32v(y))),
                        _ => bin(regs, m, d, a, b, |x, y| fbin32(op, rnd, ftz, sat, x, y)),
                    },
                    _ => bin(regs, m, d, a, b, |x, y| fbin64(op, rnd, sat, x, y)),
                },
                &Op::FFma { t, rnd, ftz, sat, d, a, b, c } => match t {
                    Ft::F32 if rnd == crate::num::Rnd::Rn && !ftz && !sat => {
                        tri(regs, m, d, a, b, c, |x, y, z| c32(f32v(x).mul_add(f32v(y), f32v(z))))
                    }
                    Ft::F32 => tri(regs, m, d, a, b, c, |x, y, z| ffma32(rnd, ftz, sat, x, y, z)),
                    _ => tri(regs, m, d, a, b, c, |x, y, z| ffma64(rnd, sat, x, y, z)),
                },
                &Op::FUn { op, t, rnd, ftz, sat, d, a } => match t {
                    Ft::F32 => un(regs, m, d, a, |x| fun32(op, rnd, ftz, sat, x)),
                    _ => un(regs, m, d, a, |x| fun64(op, rnd, x)),
                },
                &Op::HBin { op, t, ftz, sat, d, a, b } => {
                    bin(regs, m, d, a, b, |x, y| hx(t.x2, x, y, |p, q| h1(op, t.bf, ftz, sat, p, q)))
                }
                &Op::HFma { t, ftz, sat, relu, d, a, b, c } => tri(regs, m, d, a, b, c, |x, y, z| {
                    let lo = hfma1(t.bf, ftz, sat, relu, x as u16, y as u16, z as u16) as u64;
                    if t.x2 {
                        lo | (hfma1(t.bf, ftz, sat, relu, (x >> 16) as u16, (y >> 16) as u16, (z >> 16) as u16) as u64) << 16
                    } else {
                        lo
                    }
                }),
                &Op::HUn { neg, t, d, a } => un(regs, m, d, a, |x| {
                    let mask = if t.x2 { 0x8000_8000u64 } else { 0x8000 };
                    let v = if neg { x ^ mask } else { x & !mask };
                    v & if t.x2 { 0xFFFF_FFFF } else { 0xFFFF }
                }),
                Op::Cvt { spec, d, a } => {
                    let spec = *spec;
                    un(regs, m, *d, *a, |x| cvt(&spec, x))
                }
                &Op::CvtPack { kind, relu, d, a, b } => bin(regs, m, d, a, b, |x, y| cvt_pack(kind, relu, x, y)),
                &Op::CvtFp8Unpack { e5m2, d, a } => un(regs, m, d, a, |x| fp8_unpack(e5m2, x)),
                &Op::Cvta { to, space, d, a } => {
                    let win = match space {
                        Space::Shared => SHARED_WIN,
                        Space::Local => LOCAL_WIN,
                        Space::Param => PARAM_WIN,
                        _ => 0,
                    };
                    if to {
                        un(regs, m, d, a, |x| x.wrapping_sub(win))
                    } else {
                        un(regs, m, d, a, |x| x.wrapping_add(win))
                    }
                }
                &Op::Isspacep { space, d, a } => {
                    let av = row(regs, a);
                    let win = |base: u64, x: u64| (base..base + WIN_SIZE).contains(&x);
                    let mut v = 0u32;
                    each(m, |l| {
                        let x = av[l];
                        let hit = match space {
                            Space::Shared => win(SHARED_WIN, x),
                            Space::Local => win(LOCAL_WIN, x),
                            Space::Param => win(PARAM_WIN, x),
                            Space::Global => !win(SHARED_WIN, x) && !win(LOCAL_WIN, x) && !win(PARAM_WIN, x),
                            _ => false,
                        };
                        v |= (hit as u32) << l;
                    });
                    pset(&mut w.preds, d, m, v);
                }
                &Op::Testp { op, t, d, a } => {
                    let av = row(regs, a);
                    let mut v = 0u32;
                    each(m, |l| v |= (testp(op, t, av[l]) as u32) << l);
                    pset(&mut w.preds, d, m, v);
                }
                &Op::Ld { space, size, signed, n: cnt, d, base, off } => {
                    let bv = row(regs, base);
                    let total = size as u64 * cnt as u64;
                    let mut addrs = [0u64; 32];
                    let mut vals = [[0u64; 4]; 32];
                    let mut fault = None;
                    let ext = |v: u64| -> u64 {
                        if signed {
                            match size {
                                1 => v as u8 as i8 as i64 as u64,
                                2 => v as u16 as i16 as i64 as u64,
                                4 => v as u32 as i32 as i64 as u64,
                                _ => v,
                            }
                        } else {
                            v
                        }
                    };
                    each(m, |l| {
                        if fault.is_some() {
                            return;
                        }
                        let addr = bv[l].wrapping_add(off as u64);
                        addrs[l] = addr;
                        if addr % total != 0 && addr % total.min(16) != 0 || addr % size as u64 != 0 {
                            fault = Some((l, MemFault { space, addr, size: total as u32, store: false, misaligned: true }));
                            return;
                        }
                        for e in 0..cnt as usize {
                            match self.read(smem, &w.local, l, space, addr + (e as u64) * size as u64, size as usize) {
                                Ok(v) => vals[l][e] = ext(v),
                                Err(f) => {
                                    fault = Some((l, f));
                                    return;
                                }
                            }
                        }
                    });
                    if let Some((l, f)) = fault {
                        return Err(self.mem_err(f, w, l, pc, smem.len()));
                    }
                    let regs = &mut w.regs[..];
                    for (e, r) in d.iter().enumerate().take(cnt as usize) {
                        let o = *r as usize * 32;
                        each(m, |l| regs[o + l] = vals[l][e]);
                    }
                    self.mem_stats(space, &addrs, m, total);
                }
                &Op::St { space, size, n: cnt, s, base, off } => {
                    let bv = row(regs, base);
                    let total = size as u64 * cnt as u64;
                    let mut addrs = [0u64; 32];
                    let mut fault = None;
                    let mut srcs = [[0u64; 32]; 4];
                    for (e, r) in s.iter().enumerate().take(cnt as usize) {
                        srcs[e] = row(regs, *r);
                    }
                    let mut bits = m;
                    while bits != 0 {
                        let l = bits.trailing_zeros() as usize;
                        bits &= bits - 1;
                        let addr = bv[l].wrapping_add(off as u64);
                        addrs[l] = addr;
                        if addr % total != 0 && addr % total.min(16) != 0 || addr % size as u64 != 0 {
                            fault = Some((l, MemFault { space, addr, size: total as u32, store: true, misaligned: true }));
                            break;
                        }
                        for (e, sv) in srcs.iter().enumerate().take(cnt as usize) {
                            if let Err(f) = self.write(smem, &mut w.local, l, space, addr + (e as u64) * size as u64, size as usize, sv[l]) {
                                fault = Some((l, f));
                                break;
                            }
                        }
                        if fault.is_some() {
                            break;
                        }
                    }
                    if let Some((l, f)) = fault {
                        return Err(self.mem_err(f, w, l, pc, smem.len()));
                    }
                    self.mem_stats(space, &addrs, m, total);
                }
                &Op::Atom { space, op, t, d, base, off, b, c } => {
                    let (bv, xv, cv) = (row(regs, base), row(regs, b), row(regs, c));
                    let size = (t.bits / 8) as usize;
                    let mut out = [0u64; 32];
                    let mut fault = None;
                    let mut bits = m;
                    while bits != 0 {
                        let l = bits.trailing_zeros() as usize;
                        bits &= bits - 1;
                        let addr = bv[l].wrapping_add(off as u64);
                        if addr % size as u64 != 0 {
                            fault = Some((l, MemFault { space, addr, size: size as u32, store: true, misaligned: true }));
                            break;
                        }
                        self.atomic = true;
                        let old = match self.read(smem, &w.local, l, space, addr, size) {
                            Ok(v) => v,
                            Err(f) => {
                                self.atomic = false;
                                fault = Some((l, f));
                                break;
                            }
                        };
                        let new = atom_apply(op, t, old, xv[l], cv[l]);
                        let r = self.write(smem, &mut w.local, l, space, addr, size, new);
                        self.atomic = false;
                        if let Err(mut f) = r {
                            f.store = true;
                            fault = Some((l, f));
                            break;
                        }
                        out[l] = if t.signed { t.norm(old) } else { old };
                    }
                    if let Some((l, f)) = fault {
                        return Err(self.mem_err(f, w, l, pc, smem.len()));
                    }
                    if d != R_SINK {
                        let o = d as usize * 32;
                        each(m, |l| w.regs[o + l] = out[l]);
                    }
                }
                &Op::Bra { target } => {
                    let not = w.group & !m;
                    if not == 0 {
                        w.pc = target;
                    } else if m == 0 {
                        w.pc = pc + 1;
                    } else {
                        each(m, |l| w.pcs[l] = target);
                        each(not, |l| w.pcs[l] = pc + 1);
                        w.select();
                        continue;
                    }
                    if w.pc >= w.other_min {
                        w.regroup();
                    }
                    continue;
                }
                Op::Exit => {
                    if m & w.passed != 0 {
                        let (line, text) = self.src_of(w.park_pc);
                        return Err(self.err(
                            ErrorKind::Convergence,
                            w,
                            first_lane(m & w.passed),
                            pc,
                            &format!(
                                "lanes {:#010x} ran past the .aligned `{}` at line {} (where lanes {:#010x} wait) and exit without executing it;",
                                m & w.passed,
                                text,
                                line,
                                w.waiting_at(w.park_pc)
                            ),
                        ));
                    }
                    w.live &= !m;
                    w.group &= !m;
                    if w.group == 0 {
                        if w.live == 0 {
                            if w.waiting != 0 {
                                return Err(self.stuck(w));
                            }
                            w.state = WState::Done;
                            return Ok(Ev::Done);
                        }
                        if !w.select() && !self.unpark(w)? {
                            return Err(self.stuck(w));
                        }
                        continue;
                    }
                }
                Op::Trap => {
                    if m != 0 {
                        return Err(self.err(ErrorKind::Fault, w, first_lane(m), pc, "trap executed"));
                    }
                }
                Op::Nanosleep => {
                    w.pc = pc + 1;
                    if w.pc >= w.other_min {
                        w.regroup();
                    }
                    return Ok(Ev::Quantum);
                }
                &Op::Bar { kind, id, count, d, p } => {
                    let live = w.live;
                    let Some(parts) = self.gather(w, live, false, pc)? else { continue };
                    let m = parts & if inst.guard != NONE { pval(&w.preds, inst.guard) } else { FULL };
                    if m != parts {
                        return Err(self.err(ErrorKind::Convergence, w, first_lane(parts), pc, "barrier under a predicate that differs across the warp"));
                    }
                    if m == 0 {
                        w.pc = pc + 1;
                        if w.pc >= w.other_min {
                            w.regroup();
                        }
                        continue;
                    }
                    let l0 = first_lane(m);
                    let idv = w.regs[id as usize * 32 + l0];
                    if idv >= 16 {
                        return Err(self.err(ErrorKind::Fault, w, l0, pc, &format!("barrier id {idv} out of range (0..15)")));
                    }
                    let cnt = if count == NONE { None } else { Some(w.regs[count as usize * 32 + l0] as u32) };
                    if let Some(c) = cnt {
                        if c == 0 || c % 32 != 0 {
                            return Err(self.err(ErrorKind::Fault, w, l0, pc, &format!("barrier thread count {c} is not a positive multiple of 32")));
                        }
                    }
                    let pv = pval(&w.preds, p) & m;
                    let ev = Ev::Bar {
                        id: idv as u32,
                        count: cnt,
                        wait: kind != BarKind::Arrive,
                        popc: pv.count_ones(),
                        all: pv == m,
                        any: pv != 0,
                    };
                    if matches!(kind, BarKind::RedPopc | BarKind::RedAnd | BarKind::RedOr) {
                        w.bar_red = Some((kind, d, m));
                    }
                    w.pc = pc + 1;
                    w.block_pc = pc;
                    return Ok(ev);
                }
                &Op::WarpSync { mask } => {
                    let needed = w.regs[mask as usize * 32 + first_lane(w.group)] as u32;
                    if self.gather(w, needed, true, pc)?.is_none() {
                        continue;
                    }
                }
                &Op::Shfl { mode, d, dp, a, b, c, mask } => {
                    let needed = w.regs[mask as usize * 32 + first_lane(w.group)] as u32;
                    let Some(parts) = self.gather(w, needed, true, pc)? else { continue };
                    let m = self.check_members(w, parts, inst.guard, needed, pc)?;
                    let regs = &mut w.regs[..];
                    let (av, bv, cv) = (row(regs, a), row(regs, b), row(regs, c));
                    let mut out = [0u64; 32];
                    let mut pv = 0u32;
                    each(m, |l| {
                        let lane = l as i32;
                        let bval = (bv[l] & 31) as i32;
                        let cval = (cv[l] & 31) as i32;
                        let seg = ((cv[l] >> 8) & 31) as i32;
                        let max_lane = (lane & seg) | (cval & !seg);
                        let min_lane = lane & seg;
                        let (mut j, ok) = match mode {
                            ShflMode::Up => (lane - bval, lane - bval >= max_lane),
                            ShflMode::Down => (lane + bval, lane + bval <= max_lane),
                            ShflMode::Bfly => (lane ^ bval, (lane ^ bval) <= max_lane),
                            ShflMode::Idx => {
                                let j = min_lane | (bval & !seg);
                                (j, j <= max_lane)
                            }
                        };
                        if !ok {
                            j = lane;
                        }
                        out[l] = if (0..32).contains(&j) && (m >> j) & 1 != 0 { av[j as usize] as u32 as u64 } else { 0xFFFF_FFFF };
                        pv |= (ok as u32) << l;
                    });
                    let o = d as usize * 32;
                    each(m, |l| regs[o + l] = out[l]);
                    if dp != P_SINK {
                        pset(&mut w.preds, dp, m, pv);
                    }
                }
                &Op::Vote { mode, d, a, mask } => {
                    let needed = w.regs[mask as usize * 32 + first_lane(w.group)] as u32;
                    let Some(parts) = self.gather(w, needed, true, pc)? else { continue };
                    let m = self.check_members(w, parts, inst.guard, needed, pc)?;
                    let pa = pval(&w.preds, a) & m;
                    match mode {
                        VoteMode::Ballot => {
                            let o = d as usize * 32;
                            each(m, |l| w.regs[o + l] = pa as u64);
                        }
                        VoteMode::All => pset(&mut w.preds, d, m, if pa == m { FULL } else { 0 }),
                        VoteMode::Any => pset(&mut w.preds, d, m, if pa != 0 { FULL } else { 0 }),
                        VoteMode::Uni => pset(&mut w.preds, d, m, if pa == m || pa == 0 { FULL } else { 0 }),
                    }
                }
                &Op::Match { all, b64, d, dp, a, mask } => {
                    let needed = w.regs[mask as usize * 32 + first_lane(w.group)] as u32;
                    let Some(parts) = self.gather(w, needed, true, pc)? else { continue };
                    let m = self.check_members(w, parts, inst.guard, needed, pc)?;
                    let regs = &mut w.regs[..];
                    let av = row(regs, a);
                    let key = |v: u64| if b64 { v } else { v as u32 as u64 };
                    let o = d as usize * 32;
                    if all {
                        let k0 = key(av[first_lane(m)]);
                        let mut same = true;
                        each(m, |l| same &= key(av[l]) == k0);
                        each(m, |l| regs[o + l] = if same { m as u64 } else { 0 });
                        if dp != P_SINK {
                            pset(&mut w.preds, dp, m, if same { FULL } else { 0 });
                        }
                    } else {
                        let mut out = [0u64; 32];
                        each(m, |l| {
                            let mut s = 0u32;
                            each(m, |j| {
                                if key(av[j]) == key(av[l]) {
                                    s |= 1 << j
                                }
                            });
                            out[l] = s as u64;
                        });
                        each(m, |l| regs[o + l] = out[l]);
                    }
                }
                &Op::Redux { op, signed, d, a, mask } => {
                    let needed = w.regs[mask as usize * 32 + first_lane(w.group)] as u32;
                    let Some(parts) = self.gather(w, needed, true, pc)? else { continue };
                    let m = self.check_members(w, parts, inst.guard, needed, pc)?;
                    let regs = &mut w.regs[..];
                    let av = row(regs, a);
                    let mut acc: Option<u32> = None;
                    each(m, |l| {
                        let x = av[l] as u32;
                        acc = Some(match acc {
                            None => x,
                            Some(y) => match op {
                                ReduxOp::Add => y.wrapping_add(x),
                                ReduxOp::Min => {
                                    if signed {
                                        (y as i32).min(x as i32) as u32
                                    } else {
                                        y.min(x)
                                    }
                                }
                                ReduxOp::Max => {
                                    if signed {
                                        (y as i32).max(x as i32) as u32
                                    } else {
                                        y.max(x)
                                    }
                                }
                                ReduxOp::And => y & x,
                                ReduxOp::Or => y | x,
                                ReduxOp::Xor => y ^ x,
                            },
                        });
                    });
                    let r = acc.unwrap_or(0);
                    let v = if signed { r as i32 as i64 as u64 } else { r as u64 };
                    let o = d as usize * 32;
                    each(m, |l| regs[o + l] = v);
                }
                &Op::Activemask { d } => {
                    let g = w.group as u64;
                    let o = d as usize * 32;
                    each(m, |l| regs[o + l] = g);
                }
                &Op::Elect { d, p, mask } => {
                    let needed = w.regs[mask as usize * 32 + first_lane(w.group)] as u32;
                    let Some(parts) = self.gather(w, needed, true, pc)? else { continue };
                    let m = self.check_members(w, parts, inst.guard, needed, pc)?;
                    let leader = match &mut self.rng {
                        Some(r) if m != 0 => r.lane(m),
                        _ => first_lane(m),
                    };
                    if d != R_SINK {
                        let o = d as usize * 32;
                        each(m, |l| w.regs[o + l] = leader as u64);
                    }
                    if m != 0 {
                        pset(&mut w.preds, p, m, 1 << leader);
                    }
                }
                &Op::Mma { kind, regs: at } => {
                    let live = w.live;
                    let Some(parts) = self.gather(w, live, false, pc)? else { continue };
                    let m = parts & if inst.guard != NONE { pval(&w.preds, inst.guard) } else { FULL };
                    if parts != FULL || m != FULL {
                        return Err(self.err(ErrorKind::Convergence, w, first_lane(parts), pc, "mma.sync.aligned needs all 32 lanes of the warp"));
                    }
                    let kd = &k.mma_kinds[kind as usize];
                    let (na, nb, nc, nd) = kd.regs();
                    let list = &k.lists[at as usize..at as usize + nd + na + nb + nc];
                    let (dl, rest) = list.split_at(nd);
                    let (al, rest) = rest.split_at(na);
                    let (bl, cl) = rest.split_at(nb);
                    let gather = |rl: &[R]| -> Vec<u32> {
                        let mut v = vec![0u32; 32 * rl.len()];
                        for l in 0..32 {
                            for (i, r) in rl.iter().enumerate() {
                                v[l * rl.len() + i] = w.regs[*r as usize * 32 + l] as u32;
                            }
                        }
                        v
                    };
                    let (av, bv, cv) = (gather(al), gather(bl), gather(cl));
                    let mut dv = vec![0u32; 32 * nd];
                    crate::tensor::mma_sync(kd, &av, &bv, &cv, &mut dv);
                    for l in 0..32 {
                        for (i, r) in dl.iter().enumerate() {
                            w.regs[*r as usize * 32 + l] = dv[l * nd + i] as u64;
                        }
                    }
                    self.st.tensor_flops += kd.flops();
                }
                &Op::Ldmatrix { num, trans, d, base, off } => {
                    let live = w.live;
                    let Some(parts) = self.gather(w, live, false, pc)? else { continue };
                    let m = parts & if inst.guard != NONE { pval(&w.preds, inst.guard) } else { FULL };
                    if m != parts {
                        return Err(self.err(ErrorKind::Convergence, w, first_lane(parts), pc, "ldmatrix.sync.aligned under a divergent predicate"));
                    }
                    let mut ra = [0u32; 32];
                    each(m, |l| ra[l] = w.regs[base as usize * 32 + l].wrapping_add(off as u64) as u32);
                    let need = if num == 4 { FULL } else { (1u32 << (8 * num as u32)) - 1 };
                    if need & !m != 0 {
                        return Err(self.err(ErrorKind::Convergence, w, first_lane(parts), pc, "ldmatrix needs the lanes that supply row addresses"));
                    }
                    let smem_ro: &[u8] = smem;
                    let mut bad: Option<u32> = None;
                    let r = crate::tensor::ldmatrix(num as usize, trans, &ra, &mut |a: u32| {
                        let a64 = a as u64;
                        if a64 % 16 != 0 || a64 + 16 > smem_ro.len() as u64 {
                            bad = Some(a);
                            return Err(format!("row address {a:#x}"));
                        }
                        let mut row = [0u8; 16];
                        if self.race_on {
                            self.race.borrow_mut().access(self.asy.cur_warp as usize, pc, a64, 16, false, false);
                        }
                        row.copy_from_slice(&smem_ro[a as usize..a as usize + 16]);
                        Ok(row)
                    });
                    match r {
                        Ok(vals) => {
                            for l in 0..32 {
                                if (m >> l) & 1 == 0 {
                                    continue;
                                }
                                for (i, dr) in d.iter().enumerate().take(num as usize) {
                                    w.regs[*dr as usize * 32 + l] = vals[l * num as usize + i] as u64;
                                }
                            }
                        }
                        Err(e) => {
                            let a = bad.unwrap_or(0) as u64;
                            let lane = (0..32).find(|&l| ra[l] as u64 == a).unwrap_or(0);
                            let mis = a % 16 != 0;
                            let f = MemFault { space: Space::Shared, addr: a, size: 16, store: false, misaligned: mis };
                            let _ = e;
                            return Err(self.mem_err(f, w, lane, pc, smem.len()));
                        }
                    }
                }
                &Op::Stmatrix { num, trans, s, base, off } => {
                    let live = w.live;
                    let Some(parts) = self.gather(w, live, false, pc)? else { continue };
                    let m = parts & if inst.guard != NONE { pval(&w.preds, inst.guard) } else { FULL };
                    if m != parts || parts != FULL {
                        return Err(self.err(ErrorKind::Convergence, w, first_lane(parts), pc, "stmatrix.sync.aligned needs a converged full warp"));
                    }
                    let mut ra = [0u32; 32];
                    each(m, |l| ra[l] = w.regs[base as usize * 32 + l].wrapping_add(off as u64) as u32);
                    let mut rv = vec![0u32; 32 * num as usize];
                    for l in 0..32 {
                        for (i, sr) in s.iter().enumerate().take(num as usize) {
                            rv[l * num as usize + i] = w.regs[*sr as usize * 32 + l] as u32;
                        }
                    }
                    let len = smem.len();
                    let mut bad: Option<u32> = None;
                    let r = crate::tensor::stmatrix(num as usize, trans, &ra, &rv, &mut |a: u32, bytes: [u8; 16]| {
                        if a % 16 != 0 || a as usize + 16 > len {
                            bad = Some(a);
                            return Err(format!("row address {a:#x}"));
                        }
                        smem[a as usize..a as usize + 16].copy_from_slice(&bytes);
                        self.asy.mark(a as u64, 16);
                        if self.race_on {
                            self.race.borrow_mut().access(self.asy.cur_warp as usize, pc, a as u64, 16, true, false);
                        }
                        Ok(())
                    });
                    if r.is_err() {
                        let a = bad.unwrap_or(0) as u64;
                        let lane = (0..32).find(|&l| ra[l] as u64 == a).unwrap_or(0);
                        let f = MemFault { space: Space::Shared, addr: a, size: 16, store: true, misaligned: a % 16 != 0 };
                        return Err(self.mem_err(f, w, lane, pc, len));
                    }
                }
                &Op::CpAsync { size, src_size, dbase, doff, sbase, soff } => {
                    let (dv, sv) = (row(regs, dbase), row(regs, sbase));
                    let ssv = if src_size == NONE { [size as u64; 32] } else { row(regs, src_size) };
                    let mut fault = None;
                    each(m, |l| {
                        if fault.is_some() {
                            return;
                        }
                        let dst = dv[l].wrapping_add(doff as u64);
                        let src = sv[l].wrapping_add(soff as u64);
                        let ss = (ssv[l] as u32).min(size as u32);
                        if dst % size as u64 != 0 {
                            fault = Some((l, MemFault { space: Space::Shared, addr: dst, size: size as u32, store: true, misaligned: true }));
                        } else if src % size as u64 != 0 {
                            fault = Some((l, MemFault { space: Space::Global, addr: src, size: size as u32, store: false, misaligned: true }));
                        } else if dst + size as u64 > smem.len() as u64 {
                            fault = Some((l, MemFault { space: Space::Shared, addr: dst, size: size as u32, store: true, misaligned: false }));
                        } else if ss > 0 && self.g.find(src, ss as u64).is_none() {
                            fault = Some((l, MemFault { space: Space::Global, addr: src, size: ss, store: false, misaligned: false }));
                        } else {
                            w.cp_cur.push(CpReq { lane: l as u8, dst: dst as u32, src, size, src_size: ss as u8 });
                        }
                    });
                    if let Some((l, f)) = fault {
                        return Err(self.mem_err(f, w, l, pc, smem.len()));
                    }
                }
                Op::Async(a) => {
                    let mbar = match &**a {
                        AsyncOp::Mbar { op, bar } if self.race_on => Some((op, bar)),
                        _ => None,
                    };
                    let mut addrs = [u32::MAX; 32];
                    if let Some((op, bar)) = mbar {
                        each(m, |l| addrs[l] = Self::resolve(bar.space, w.regs[bar.base as usize * 32 + l].wrapping_add(bar.off as u64)).1 as u32);
                        if matches!(op, MbarOp::Arrive { .. } | MbarOp::CompleteTx { .. }) {
                            let r = self.race.get_mut();
                            each(m, |l| r.mbar_release(w.id as usize, addrs[l]));
                        }
                    }
                    if !self.async_op(w, smem, a, m, pc)? {
                        return Ok(Ev::Quantum);
                    }
                    if let Some((MbarOp::Wait { .. }, _)) = mbar {
                        let r = self.race.get_mut();
                        each(m, |l| r.mbar_acquire(w.id as usize, addrs[l]));
                    }
                }
                Op::Wgmma(op) => match self.wgmma_step(w, op, pc, inst.guard, smem)? {
                    wgmma::Flow::Next => {}
                    wgmma::Flow::Parked => continue,
                    wgmma::Flow::Yield => return Ok(Ev::Quantum),
                },
                Op::CpCommit => {
                    let g = std::mem::take(&mut w.cp_cur);
                    w.cp_groups.push(g);
                }
                &Op::CpWait { n: keep } => {
                    if keep == NONE {
                        let g = std::mem::take(&mut w.cp_cur);
                        w.cp_groups.push(g);
                    }
                    let keep = if keep == NONE { 0 } else { keep as usize };
                    while w.cp_groups.len() > keep {
                        let g = w.cp_groups.remove(0);
                        for r in g {
                            let mut buf = [0u8; 16];
                            if r.src_size > 0 {
                                match self.g.slice(r.src, r.src_size as usize) {
                                    Some(s) => buf[..r.src_size as usize].copy_from_slice(s),
                                    None => {
                                        let f = MemFault { space: Space::Global, addr: r.src, size: r.src_size as u32, store: false, misaligned: false };
                                        return Err(self.mem_err(f, w, r.lane as usize, pc, smem.len()));
                                    }
                                }
                            }
                            smem[r.dst as usize..r.dst as usize + r.size as usize].copy_from_slice(&buf[..r.size as usize]);
                            if self.race_on {
                                self.race.get_mut().access(w.id as usize, pc, r.dst as u64, r.size as u64, true, false);
                            }
                        }
                    }
                }
            }
            w.pc = pc + 1;
            if w.pc >= w.other_min {
                w.regroup();
            }
        }
    }

    /// After a collective gathered `parts`: apply the guard and check the member mask.
    fn check_members(&self, w: &Warp, parts: u32, guard: P, needed: u32, pc: u32) -> Res<u32> {
        let m = parts & if guard != NONE { pval(&w.preds, guard) } else { FULL };
        if m & !needed != 0 {
            return Err(self.err(
                ErrorKind::Convergence,
                w,
                first_lane(m & !needed),
                pc,
                &format!("lanes {:#010x} execute a warp-synchronous instruction with membermask {needed:#010x} that does not name them", m & !needed),
            ));
        }
        if needed & !m != 0 {
            return Err(self.err(
                ErrorKind::Convergence,
                w,
                first_lane(needed & !m),
                pc,
                &format!("lanes {:#010x} named in membermask {needed:#010x} do not execute this warp-synchronous instruction", needed & !m),
            ));
        }
        Ok(m)
    }

    fn mem_stats(&mut self, space: Space, addrs: &[u64; 32], m: u32, total: u64) {
        match space {
            Space::Global => self.count_sectors(addrs, m, total),
            Space::Shared => self.count_banks(addrs, m, total),
            Space::Generic => {
                let mut g = [0u64; 32];
                let mut gm = 0u32;
                let mut s = [0u64; 32];
                let mut sm = 0u32;
                each(m, |l| match Self::resolve(Space::Generic, addrs[l]) {
                    (Space::Global, a) => {
                        g[l] = a;
                        gm |= 1 << l;
                    }
                    (Space::Shared, a) => {
                        s[l] = a;
                        sm |= 1 << l;
                    }
                    _ => {}
                });
                if gm != 0 {
                    self.count_sectors(&g, gm, total);
                }
                if sm != 0 {
                    self.count_banks(&s, sm, total);
                }
            }
            _ => {}
        }
    }

    // ---------------------------------------------------------------- CTA scheduling

    fn run_cta(&mut self, warps: &mut [Warp], smem: &mut [u8]) -> Res<()> {
        let mut bars: Vec<Barrier> = vec![Barrier::default(); 16];
        let mut order: Vec<usize> = (0..warps.len()).collect();
        loop {
            let mut progressed = false;
            let mut all_done = true;
            if let Some(r) = &mut self.rng {
                r.shuffle(&mut order);
                self.quantum = r.quantum(QUANTUM);
            }
            for oi in 0..order.len() {
                let wi = order[oi];
                if warps[wi].state != WState::Run {
                    if warps[wi].state != WState::Done {
                        all_done = false;
                    }
                    continue;
                }
                all_done = false;
                progressed = true;
                let ev = self.step(&mut warps[wi], smem)?;
                if self.race_on && self.race.get_mut().found.is_some() {
                    return Err(self.race_err());
                }
                if self.early_loads && self.rng.as_mut().is_some_and(|r| r.below(8) == 0) {
                    self.drain_one(smem)?;
                }
                self.wake_mbar(warps)?;
                if self.thread_insts > self.budget {
                    return Err(self.livelock(warps));
                }
                match ev {
                    Ev::Quantum => {}
                    Ev::Done => {
                        warps[wi].state = WState::Done;
                        self.release_ready(warps, &mut bars);
                    }
                    Ev::Bar { id, count, wait, popc, all, any } => {
                        let b = &mut bars[id as usize];
                        if b.arrived == 0 && b.waiters.is_empty() {
                            b.count = count;
                            b.popc = 0;
                            b.all = true;
                            b.any = false;
                        } else if b.count != count {
                            let w = &warps[wi];
                            let pc = w.pc.saturating_sub(1);
                            return Err(self.err(
                                ErrorKind::Fault,
                                w,
                                first_lane(w.group),
                                pc,
                                &format!("barrier {id} used with different thread counts ({:?} and {:?})", b.count, count),
                            ));
                        }
                        if self.race_on {
                            self.race.get_mut().release_into(wi, &mut b.clock);
                        }
                        b.arrived += 32;
                        b.popc += popc;
                        b.all &= all;
                        b.any |= any;
                        if wait {
                            b.waiters.push(wi);
                            warps[wi].state = WState::Bar(id);
                        }
                        self.release_ready(warps, &mut bars);
                    }
                }
            }
            if all_done {
                return Ok(());
            }
            if !progressed {
                // The latest legal point for pending bulk loads: nothing else can run.
                if self.drain_one(smem)? {
                    self.wake_mbar(warps)?;
                    continue;
                }
                if self.wake_soft(warps) {
                    continue;
                }
                return Err(self.deadlock(warps, &bars));
            }
        }
    }

    fn release_ready(&self, warps: &mut [Warp], bars: &mut [Barrier]) {
        for b in bars.iter_mut() {
            if b.arrived == 0 && b.waiters.is_empty() {
                continue;
            }
            let done = match b.count {
                Some(c) => b.arrived >= c,
                None => warps.iter().enumerate().all(|(i, w)| w.state == WState::Done || b.waiters.contains(&i)),
            };
            if !done {
                continue;
            }
            for &wi in &b.waiters {
                if self.race_on {
                    self.race.borrow_mut().acquire(wi, &b.clock);
                }
                let w = &mut warps[wi];
                w.state = WState::Run;
                if let Some((kind, d, m)) = w.bar_red.take() {
                    match kind {
                        BarKind::RedPopc => {
                            let o = d as usize * 32;
                            each(m, |l| w.regs[o + l] = b.popc as u64);
                        }
                        BarKind::RedAnd => pset(&mut w.preds, d, m, if b.all { FULL } else { 0 }),
                        BarKind::RedOr => pset(&mut w.preds, d, m, if b.any { FULL } else { 0 }),
                        _ => {}
                    }
                }
            }
            *b = Barrier::default();
        }
    }

    fn race_err(&mut self) -> EmuError {
        let f = self.race.get_mut().found.take().unwrap();
        let what = |x: bool| if x { "write" } else { "read" };
        let (l1, t1) = self.src_of(f.cur.1);
        let (l2, t2) = self.src_of(f.prev.1);
        EmuError::new(
            ErrorKind::Fault,
            format!(
                "shared-memory race in kernel {}, CTA ({},{},{}): {} by warp {} at line {} (`{}`) conflicts with {} by warp {} at line {} (`{}`), address {:#x}, no barrier between them",
                self.k.name,
                self.cta[0],
                self.cta[1],
                self.cta[2],
                what(f.cur.2),
                f.cur.0,
                l1,
                t1,
                what(f.prev.2),
                f.prev.0,
                l2,
                t2,
                f.addr
            ),
        )
    }

    fn warp_states(&self, warps: &[Warp]) -> String {
        let mut s = String::new();
        for w in warps {
            let at = if matches!(w.state, WState::Bar(_)) { w.block_pc } else { w.pc };
            let (line, text) = self.src_of(at);
            let st = match w.state {
                WState::Run => "runnable".to_string(),
                WState::Bar(id) => format!("waiting at barrier {id}"),
                WState::Mbar(b, ph) => format!("waiting on the mbarrier at shared {b:#x} for phase {ph} to complete"),
                WState::Done => "exited".to_string(),
            };
            if w.state == WState::Done {
                s.push_str(&format!("\n  warp {}: exited", w.id));
            } else {
                s.push_str(&format!(
                    "\n  warp {}: {} (pc {}, line {} `{}`, lanes {:#010x} live {:#010x})",
                    w.id,
                    st,
                    at,
                    line,
                    text,
                    w.group,
                    w.live
                ));
            }
        }
        s
    }

    fn deadlock(&self, warps: &[Warp], bars: &[Barrier]) -> EmuError {
        let mut s = format!(
            "barrier deadlock in kernel {}, CTA ({},{},{}): every remaining warp is blocked",
            self.k.name, self.cta[0], self.cta[1], self.cta[2]
        );
        s.push_str(&self.warp_states(warps));
        for (i, b) in bars.iter().enumerate() {
            if b.arrived > 0 || !b.waiters.is_empty() {
                s.push_str(&format!(
                    "\n  barrier {i}: {} threads arrived, expecting {}",
                    b.arrived,
                    match b.count {
                        Some(c) => format!("{c}"),
                        None => "all non-exited warps".into(),
                    }
                ));
            }
        }
        s.push_str(&self.asy.report());
        EmuError::new(ErrorKind::Deadlock, s)
    }

    fn livelock(&self, warps: &[Warp]) -> EmuError {
        let mut s = format!(
            "instruction budget of {} thread-instructions exhausted (livelock?) in kernel {}, CTA ({},{},{})",
            self.budget, self.k.name, self.cta[0], self.cta[1], self.cta[2]
        );
        s.push_str(&self.warp_states(warps));
        s.push_str(&self.asy.report());
        EmuError::new(ErrorKind::Deadlock, s)
    }
}

/// Run a whole grid.
pub fn run(l: Launch) -> Result<LaunchStats, EmuError> {
    let k = l.k;
    let cls: Vec<u8> = k.insts.iter().map(|i| i.op.class() as u8).collect();
    let mut ex = Ex {
        k,
        g: l.g,
        params: l.params,
        grid: l.grid,
        block: l.block,
        dyn_smem: l.dyn_smem,
        cta: [0; 3],
        cls,
        thread_insts: 0,
        budget: l.budget,
        st: Stats { classes: [0; N_CLASSES], global_bytes: 0, sectors: 0, conflicts: 0, tensor_flops: 0 },
        asy: Default::default(),
        wg: wgmma::CtaWg::new(k),
        race: RefCell::new(race::Race { on: l.race_check, ..Default::default() }),
        race_on: l.race_check,
        atomic: false,
        cur_pc: 0,
        rng: l.schedule.seed().map(schedule::Rng::new),
        quantum: QUANTUM,
        early_loads: false,
    };
    // One fuzzed launch in four lands async loads early; the others keep the adversarial
    // latest-point completion (reading before the wait sees poison).
    ex.early_loads = ex.rng.as_mut().is_some_and(|r| r.below(4) == 0);
    let nthreads = l.block[0] * l.block[1] * l.block[2];
    let nwarps = nthreads.div_ceil(32);
    let smem_size = (k.dyn_smem_offset + l.dyn_smem) as usize;
    let mut smem = vec![crate::mem::POISON; smem_size];
    for z in 0..l.grid[2] {
        for y in 0..l.grid[1] {
            for x in 0..l.grid[0] {
                ex.cta = [x, y, z];
                smem.fill(crate::mem::POISON);
                let mut warps: Vec<Warp> = (0..nwarps).map(|w| ex.warp_new(w, nthreads)).collect();
                ex.asy.reset(smem_size);
                ex.race.get_mut().reset(warps.len(), smem_size);
                ex.run_cta(&mut warps, &mut smem)?;
                ex.wg_end_cta(&warps)?;
                ex.async_finish(&mut smem)?;
            }
        }
    }
    let mut warp_insts = BTreeMap::new();
    for c in Class::ALL {
        let n = ex.st.classes[c as usize];
        if n > 0 {
            warp_insts.insert(c.name().to_string(), n);
        }
    }
    Ok(LaunchStats {
        warp_insts,
        thread_insts: ex.thread_insts,
        global_bytes: ex.st.global_bytes,
        global_sectors: ex.st.sectors,
        shared_bank_conflicts: ex.st.conflicts,
        tensor_flops: ex.st.tensor_flops,
    })
}
