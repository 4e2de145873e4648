//! The asynchronous proxy: mbarriers, bulk copies and TMA tile copies, bulk groups and the
//! generic/async proxy check.
//!
//! Strict semantics: a bulk load poisons its destination at issue and lands (firing its
//! `complete_tx`) only when every warp of the CTA would otherwise block, one copy at a time in
//! issue order. A bulk store reads shared memory when its group completes (`wait_group`, or at
//! CTA end) and fails if the source changed after issue. A warp whose `try_wait` fails parks
//! at it until the barrier's phase flips; a failed `test_wait` returns false and the warp sleeps
//! until the phase flips or nothing else can run. Shared-memory chunks written through the
//! generic proxy are tagged with the writing warp until it executes `fence.proxy.async`; an
//! async-proxy read of a tagged chunk (a bulk store source) is an error naming the line, and so
//! is a generic write into a bulk load's destination while the load is in flight or over a live
//! mbarrier object. The deadlock report lists every mbarrier's phase, pending arrivals and
//! tx-count. Other engines reading shared memory through the async proxy (wgmma operands) can
//! use `AsyncState::unfenced` for the same fence check.
use std::collections::{BTreeMap, VecDeque};

use super::{each, pset, row, Ex, Res, WState, Warp};
use crate::api::{EmuError, ErrorKind};
use crate::decode::asyncops::{AAddr, AsyncOp, MbarOp};
use crate::decode::inst::*;
use crate::mem::POISON;
use crate::tmap::{box_bytes, box_elems, decode_tensor_map, OobFill, TensorMapDesc};

/// Largest arrival count / |tx-count| an mbarrier holds (2^20 - 1).
const MBAR_MAX: i64 = (1 << 20) - 1;

#[derive(Clone, Debug)]
pub(crate) struct Mbar {
    /// Completed phases so far (the current phase's parity is `phase & 1`).
    pub phase: u32,
    pub expected: u32,
    pub pending: u32,
    pub tx: i64,
}

impl Mbar {
    /// The 8 bytes the emulator keeps in shared memory for reads of the barrier object:
    /// pending count (bits 0-19), expected count (20-39), tx-count (40-60), phase parity (63).
    fn word(&self) -> u64 {
        (self.pending as u64 & 0xF_FFFF)
            | (self.expected as u64 & 0xF_FFFF) << 20
            | ((self.tx as u64) & 0x1F_FFFF) << 40
            | ((self.phase as u64) & 1) << 63
    }
}

enum LoadKind {
    Bulk { dst: u32, src: u64, size: u32 },
    Tensor { map: Box<TensorMapDesc>, coords: [i32; 5], dst: u32 },
}

struct PendingLoad {
    kind: LoadKind,
    bar: u32,
    tx: u32,
    warp: u32,
    lane: u8,
    pc: u32,
}

enum StoreKind {
    Bulk { dst: u64, size: u32 },
    Tensor { map: Box<TensorMapDesc>, coords: [i32; 5] },
}

struct PendingStore {
    kind: StoreKind,
    src: u32,
    snapshot: Vec<u8>,
    warp: u32,
    lane: u8,
    pc: u32,
}

#[derive(Default)]
struct WarpStores {
    cur: Vec<PendingStore>,
    groups: VecDeque<Vec<PendingStore>>,
}

/// Per-CTA state of the async proxy.
#[derive(Default)]
pub(crate) struct AsyncState {
    pub bars: BTreeMap<u32, Mbar>,
    loads: VecDeque<PendingLoad>,
    stores: Vec<WarpStores>,
    /// Per 16-byte shared chunk: 0 clean, else (warp id + 1) of a generic-proxy writer that has
    /// not executed `fence.proxy.async` since.
    dirty: Vec<u8>,
    /// The warp being stepped (for the write hook).
    pub cur_warp: u32,
    flips: u64,
    seen_flips: u64,
    /// A generic-proxy store into a live mbarrier object: (barrier, writer warp).
    clobber: Option<(u32, u32)>,
    /// Warps asleep after a failed `test_wait` (bit per warp id).
    soft: u64,
    /// The phase-flip count and sleepers at the last forced wake of `soft` warps.
    soft_sig: Option<(u64, u64)>,
}

impl AsyncState {
    pub(crate) fn reset(&mut self, smem_len: usize) {
        self.bars.clear();
        self.loads.clear();
        self.stores.clear();
        self.dirty.clear();
        self.dirty.resize(smem_len.div_ceil(16), 0);
        self.flips = 0;
        self.seen_flips = 0;
        self.clobber = None;
        self.soft = 0;
        self.soft_sig = None;
    }

    /// A generic-proxy write of shared bytes `[a, a + size)` by the current warp.
    #[inline(always)]
    pub(crate) fn mark(&mut self, a: u64, size: u64) {
        let tag = (self.cur_warp as u8).wrapping_add(1);
        let (c0, c1) = ((a >> 4) as usize, ((a + size.max(1) - 1) >> 4) as usize);
        for c in c0..=c1 {
            if let Some(d) = self.dirty.get_mut(c) {
                *d = tag;
            }
        }
        if !self.bars.is_empty() && self.clobber.is_none() {
            let lo = (a as u32).saturating_sub(7);
            if let Some((&b, _)) = self.bars.range(lo..(a + size) as u32).next() {
                self.clobber = Some((b, self.cur_warp));
            }
        }
    }

    fn clean(&mut self, a: u32, size: u32) {
        let (c0, c1) = ((a >> 4) as usize, ((a as u64 + size.max(1) as u64 - 1) >> 4) as usize);
        for c in c0..=c1.min(self.dirty.len().saturating_sub(1)) {
            self.dirty[c] = 0;
        }
    }

    /// The first chunk in `[a, a + size)` written through the generic proxy without a fence:
    /// (chunk address, writer warp).
    pub(crate) fn unfenced(&self, a: u32, size: u32) -> Option<(u32, u32)> {
        let (c0, c1) = ((a >> 4) as usize, ((a as u64 + size.max(1) as u64 - 1) >> 4) as usize);
        (c0..=c1.min(self.dirty.len().saturating_sub(1))).find(|&c| self.dirty[c] != 0).map(|c| ((c * 16) as u32, self.dirty[c] as u32 - 1))
    }

    /// Barrier states and pending copies for a deadlock report.
    pub(crate) fn report(&self) -> String {
        let mut s = String::new();
        for (a, b) in &self.bars {
            s.push_str(&format!(
                "\n  mbarrier at shared {a:#x}: phase {} (parity {}), {} of {} arrivals pending, tx-count {} bytes",
                b.phase,
                b.phase & 1,
                b.pending,
                b.expected,
                b.tx
            ));
        }
        if !self.loads.is_empty() {
            s.push_str(&format!("\n  {} bulk loads pending", self.loads.len()));
        }
        s
    }
}

fn bar_write(smem: &mut [u8], a: u32, b: &Mbar) {
    if let Some(x) = smem.get_mut(a as usize..a as usize + 8) {
        x.copy_from_slice(&b.word().to_le_bytes());
    }
}

impl<'a> Ex<'a> {
    fn async_err(&self, kind: ErrorKind, warp: u32, lane: usize, pc: u32, what: &str) -> EmuError {
        let lin = warp * 32 + lane as u32;
        let [bx, by, _] = self.block;
        let (line, text) = self.src_of(pc);
        EmuError::new(
            kind,
            format!(
                "{what} in kernel {}, CTA ({},{},{}), thread ({},{},{}), line {line}: `{text}`",
                self.k.name,
                self.cta[0],
                self.cta[1],
                self.cta[2],
                lin % bx,
                (lin / bx) % by,
                lin / (bx * by)
            ),
        )
    }

    /// A lane's address operand resolved to (space, address).
    fn aaddr(&self, w: &Warp, a: &AAddr, l: usize) -> (Space, u64) {
        let v = w.regs[a.base as usize * 32 + l].wrapping_add(a.off as u64);
        Self::resolve(a.space, v)
    }

    fn shared_addr(&self, w: &Warp, a: &AAddr, l: usize, pc: u32, align: u64, what: &str) -> Res<u32> {
        let (sp, v) = self.aaddr(w, a, l);
        if sp != Space::Shared {
            return Err(self.err(ErrorKind::Memory, w, l, pc, &format!("{what} address {v:#x} is not in shared memory ({})", sp.name())));
        }
        if v % align != 0 {
            return Err(self.err(ErrorKind::Memory, w, l, pc, &format!("misaligned {what} address {v:#x} (needs {align}-byte alignment)")));
        }
        Ok(v as u32)
    }

    fn bar_of(&self, w: &Warp, a: &AAddr, l: usize, pc: u32, smem_len: usize) -> Res<u32> {
        let b = self.shared_addr(w, a, l, pc, 8, "mbarrier")?;
        if b as usize + 8 > smem_len {
            return Err(self.err(ErrorKind::Memory, w, l, pc, &format!("mbarrier address {b:#x} is outside shared memory ({smem_len} bytes)")));
        }
        Ok(b)
    }

    fn mbar_get(&mut self, w: &Warp, b: u32, l: usize, pc: u32) -> Res<&mut Mbar> {
        if !self.asy.bars.contains_key(&b) {
            return Err(self.err(ErrorKind::Fault, w, l, pc, &format!("mbarrier at shared {b:#x} is not initialised (mbarrier.init)")));
        }
        Ok(self.asy.bars.get_mut(&b).unwrap())
    }

    /// Complete the current phase if arrivals and tx-count are both zero.
    fn try_complete(&mut self, b: u32, smem: &mut [u8]) {
        let flipped = {
            let m = self.asy.bars.get_mut(&b).unwrap();
            if m.pending == 0 && m.tx == 0 {
                m.phase = m.phase.wrapping_add(1);
                m.pending = m.expected;
                true
            } else {
                false
            }
        };
        if flipped {
            self.asy.flips += 1;
        }
        let m = self.asy.bars[&b].clone();
        bar_write(smem, b, &m);
    }

    fn read_map(&self, w: &Warp, a: &AAddr, l: usize, pc: u32) -> Res<TensorMapDesc> {
        let (sp, v) = self.aaddr(w, a, l);
        if v % 64 != 0 {
            return Err(self.err(ErrorKind::Memory, w, l, pc, &format!("tensor map address {v:#x} is not 64-byte aligned")));
        }
        let bytes: Option<&[u8]> = match sp {
            Space::Param => self.params.get(v as usize..v as usize + 128),
            Space::Global => self.g.slice(v, 128),
            _ => None,
        };
        let Some(bytes) = bytes else {
            return Err(self.err(ErrorKind::Memory, w, l, pc, &format!("tensor map address {v:#x} ({}) does not hold 128 readable bytes", sp.name())));
        };
        decode_tensor_map(bytes).map_err(|e| self.err(ErrorKind::Fault, w, l, pc, &e))
    }

    fn coords(w: &Warp, cs: &[R; 5], rank: u8, l: usize) -> [i32; 5] {
        let mut c = [0i32; 5];
        for i in 0..rank as usize {
            c[i] = w.regs[cs[i] as usize * 32 + l] as i32;
        }
        c
    }

    /// Execute one async-proxy instruction for lanes `m`. Returns false when the warp parked
    /// (PC not advanced).
    pub(super) fn async_op(&mut self, w: &mut Warp, smem: &mut [u8], op: &AsyncOp, m: u32, pc: u32) -> Res<bool> {
        let lanes: Vec<usize> = {
            let mut v = Vec::new();
            each(m, |l| v.push(l));
            v
        };
        match op {
            AsyncOp::Mbar { op, bar } => {
                // Waits first: park unless every active lane's wait succeeds.
                if let &MbarOp::Wait { test, parity, d, arg } = op {
                    let mut ok = 0u32;
                    let mut park = None;
                    for &l in &lanes {
                        let b = self.bar_of(w, bar, l, pc, smem.len())?;
                        let cur = self.mbar_get(w, b, l, pc)?.phase;
                        let a = w.regs[arg as usize * 32 + l];
                        let done = if parity { (cur & 1) as u64 != a & 1 } else { cur != (a >> 32) as u32 };
                        if done {
                            ok |= 1 << l;
                        } else if park.is_none() {
                            park = Some((b, cur));
                        }
                    }
                    match park {
                        None => pset(&mut w.preds, d, m, ok),
                        // try_wait: park at the instruction and retry it when the phase flips.
                        Some((b, cur)) if !test => {
                            w.state = WState::Mbar(b, cur);
                            return Ok(false);
                        }
                        // test_wait: return false now, then sleep until the phase flips or
                        // nothing else in the CTA can run (so polling loops do not spin).
                        Some((b, cur)) => {
                            pset(&mut w.preds, d, m, ok);
                            w.state = WState::Mbar(b, cur);
                            self.asy.soft |= 1 << w.id;
                            w.pc = pc + 1;
                            if w.pc >= w.other_min {
                                w.regroup();
                            }
                            return Ok(false);
                        }
                    }
                    return Ok(true);
                }
                for &l in &lanes {
                    let b = self.bar_of(w, bar, l, pc, smem.len())?;
                    match *op {
                        MbarOp::Init { count } => {
                            let c = w.regs[count as usize * 32 + l] as u32;
                            if c == 0 || c as i64 > MBAR_MAX {
                                return Err(self.err(ErrorKind::Fault, w, l, pc, &format!("mbarrier.init count {c} is not in 1..2^20")));
                            }
                            let mb = Mbar { phase: 0, expected: c, pending: c, tx: 0 };
                            bar_write(smem, b, &mb);
                            self.asy.bars.insert(b, mb);
                            self.asy.flips += 1;
                        }
                        MbarOp::Inval => {
                            self.asy.bars.remove(&b);
                            self.asy.flips += 1;
                        }
                        MbarOp::Arrive { d, count, tx, drop } => {
                            let cnt = if count == NONE { 1 } else { w.regs[count as usize * 32 + l] as u32 };
                            let txv = if tx == NONE { 0 } else { w.regs[tx as usize * 32 + l] as u32 as i64 };
                            let mb = self.mbar_get(w, b, l, pc)?;
                            if cnt > mb.pending || cnt == 0 {
                                let (p, e) = (mb.pending, mb.expected);
                                return Err(self.err(
                                    ErrorKind::Fault,
                                    w,
                                    l,
                                    pc,
                                    &format!("mbarrier at shared {b:#x}: arrival count {cnt} with only {p} of {e} arrivals pending in this phase"),
                                ));
                            }
                            mb.tx += txv;
                            if mb.tx.abs() > MBAR_MAX {
                                return Err(self.err(ErrorKind::Fault, w, l, pc, &format!("mbarrier at shared {b:#x}: tx-count overflow")));
                            }
                            let state = (mb.phase as u64) << 32 | (mb.pending - cnt) as u64;
                            mb.pending -= cnt;
                            if drop {
                                mb.expected -= cnt;
                            }
                            if d != R_SINK {
                                w.regs[d as usize * 32 + l] = state;
                            }
                            self.try_complete(b, smem);
                        }
                        MbarOp::ExpectTx { tx } | MbarOp::CompleteTx { tx } => {
                            let v = w.regs[tx as usize * 32 + l] as u32 as i64;
                            let mb = self.mbar_get(w, b, l, pc)?;
                            mb.tx += if matches!(op, MbarOp::ExpectTx { .. }) { v } else { -v };
                            if mb.tx.abs() > MBAR_MAX {
                                return Err(self.err(ErrorKind::Fault, w, l, pc, &format!("mbarrier at shared {b:#x}: tx-count out of range")));
                            }
                            self.try_complete(b, smem);
                        }
                        MbarOp::Wait { .. } => unreachable!(),
                    }
                }
            }
            &AsyncOp::PendingCount { d, state } => {
                let sv = row(&w.regs, state);
                each(m, |l| w.regs[d as usize * 32 + l] = sv[l] as u32 as u64);
            }
            AsyncOp::BulkLoad { dst, src, size, bar } => {
                for &l in &lanes {
                    let n = w.regs[*size as usize * 32 + l] as u32;
                    let d = self.shared_addr(w, dst, l, pc, 16, "bulk copy destination")?;
                    let (ssp, s) = self.aaddr(w, src, l);
                    if !n.is_multiple_of(16) || n == 0 {
                        return Err(self.err(ErrorKind::Fault, w, l, pc, &format!("bulk copy size {n} is not a positive multiple of 16")));
                    }
                    if ssp != Space::Global || s % 16 != 0 || self.g.find(s, n as u64).is_none() {
                        let f = super::MemFault { space: Space::Global, addr: s, size: n, store: false, misaligned: s % 16 != 0 };
                        return Err(self.mem_err(f, w, l, pc, smem.len()));
                    }
                    if d as usize + n as usize > smem.len() {
                        let f = super::MemFault { space: Space::Shared, addr: d as u64, size: n, store: true, misaligned: false };
                        return Err(self.mem_err(f, w, l, pc, smem.len()));
                    }
                    let b = self.bar_of(w, bar, l, pc, smem.len())?;
                    self.mbar_get(w, b, l, pc)?;
                    smem[d as usize..(d + n) as usize].fill(POISON);
                    self.asy.clean(d, n);
                    self.asy.loads.push_back(PendingLoad { kind: LoadKind::Bulk { dst: d, src: s, size: n }, bar: b, tx: n, warp: w.id, lane: l as u8, pc });
                }
            }
            AsyncOp::TensorLoad { rank, dst, map, coords, bar } => {
                for &l in &lanes {
                    let desc = self.read_map(w, map, l, pc)?;
                    if desc.dims.len() != *rank as usize {
                        return Err(self.err(ErrorKind::Fault, w, l, pc, &format!("{rank}d tensor copy with a rank-{} tensor map", desc.dims.len())));
                    }
                    let d = self.shared_addr(w, dst, l, pc, 128, "tensor copy destination")?;
                    let n = box_bytes(&desc) as u32;
                    if d as usize + n as usize > smem.len() {
                        let f = super::MemFault { space: Space::Shared, addr: d as u64, size: n, store: true, misaligned: false };
                        return Err(self.mem_err(f, w, l, pc, smem.len()));
                    }
                    let b = self.bar_of(w, bar, l, pc, smem.len())?;
                    self.mbar_get(w, b, l, pc)?;
                    let c = Self::coords(w, coords, *rank, l);
                    smem[d as usize..(d + n) as usize].fill(POISON);
                    self.asy.clean(d, n);
                    self.asy.loads.push_back(PendingLoad {
                        kind: LoadKind::Tensor { map: Box::new(desc), coords: c, dst: d },
                        bar: b,
                        tx: n,
                        warp: w.id,
                        lane: l as u8,
                        pc,
                    });
                }
            }
            AsyncOp::BulkStore { dst, src, size } => {
                for &l in &lanes {
                    let n = w.regs[*size as usize * 32 + l] as u32;
                    let s = self.shared_addr(w, src, l, pc, 16, "bulk copy source")?;
                    let (dsp, d) = self.aaddr(w, dst, l);
                    if !n.is_multiple_of(16) || n == 0 {
                        return Err(self.err(ErrorKind::Fault, w, l, pc, &format!("bulk copy size {n} is not a positive multiple of 16")));
                    }
                    if dsp != Space::Global || d % 16 != 0 || self.g.find(d, n as u64).is_none() {
                        let f = super::MemFault { space: Space::Global, addr: d, size: n, store: true, misaligned: d % 16 != 0 };
                        return Err(self.mem_err(f, w, l, pc, smem.len()));
                    }
                    self.store_issue(w, smem, l, pc, s, n, StoreKind::Bulk { dst: d, size: n })?;
                }
            }
            AsyncOp::TensorStore { rank, map, coords, src } => {
                for &l in &lanes {
                    let desc = self.read_map(w, map, l, pc)?;
                    if desc.dims.len() != *rank as usize {
                        return Err(self.err(ErrorKind::Fault, w, l, pc, &format!("{rank}d tensor copy with a rank-{} tensor map", desc.dims.len())));
                    }
                    let s = self.shared_addr(w, src, l, pc, 128, "tensor copy source")?;
                    let n = box_bytes(&desc) as u32;
                    let c = Self::coords(w, coords, *rank, l);
                    self.store_issue(w, smem, l, pc, s, n, StoreKind::Tensor { map: Box::new(desc), coords: c })?;
                }
            }
            AsyncOp::BulkCommit => {
                let ws = self.warp_stores(w.id);
                let g = std::mem::take(&mut ws.cur);
                ws.groups.push_back(g);
            }
            &AsyncOp::BulkWait { n, .. } => {
                loop {
                    let ws = self.warp_stores(w.id);
                    if ws.groups.len() <= n as usize {
                        break;
                    }
                    let g = ws.groups.pop_front().unwrap();
                    for st in g {
                        self.store_complete(st, smem)?;
                    }
                }
            }
            AsyncOp::FenceProxyAsync => {
                let tag = (w.id as u8).wrapping_add(1);
                for d in self.asy.dirty.iter_mut() {
                    if *d == tag {
                        *d = 0;
                    }
                }
            }
        }
        Ok(true)
    }

    fn warp_stores(&mut self, id: u32) -> &mut WarpStores {
        let i = id as usize;
        if self.asy.stores.len() <= i {
            self.asy.stores.resize_with(i + 1, WarpStores::default);
        }
        &mut self.asy.stores[i]
    }

    #[allow(clippy::too_many_arguments)]
    fn store_issue(&mut self, w: &Warp, smem: &[u8], l: usize, pc: u32, s: u32, n: u32, kind: StoreKind) -> Res<()> {
        if s as usize + n as usize > smem.len() {
            let f = super::MemFault { space: Space::Shared, addr: s as u64, size: n, store: false, misaligned: false };
            return Err(self.mem_err(f, w, l, pc, smem.len()));
        }
        if let Some((chunk, writer)) = self.asy.unfenced(s, n) {
            return Err(self.err(
                ErrorKind::Fault,
                w,
                l,
                pc,
                &format!(
                    "proxy error: the async proxy reads shared bytes {chunk:#x}..{:#x} that warp {writer} wrote through the generic proxy without a fence.proxy.async since",
                    chunk + 16
                ),
            ));
        }
        let snapshot = smem[s as usize..(s + n) as usize].to_vec();
        let st = PendingStore { kind, src: s, snapshot, warp: w.id, lane: l as u8, pc };
        self.warp_stores(w.id).cur.push(st);
        Ok(())
    }

    fn store_complete(&mut self, st: PendingStore, smem: &[u8]) -> Res<()> {
        let n = st.snapshot.len();
        if smem[st.src as usize..st.src as usize + n] != st.snapshot[..] {
            return Err(self.async_err(
                ErrorKind::Fault,
                st.warp,
                st.lane as usize,
                st.pc,
                &format!(
                    "shared bytes {:#x}..{:#x}, the source of this bulk store, were overwritten before cp.async.bulk.wait_group.read released them",
                    st.src,
                    st.src as usize + n
                ),
            ));
        }
        match st.kind {
            StoreKind::Bulk { dst, size } => match self.g.slice_mut(dst, size as usize) {
                Some(x) => x.copy_from_slice(&smem[st.src as usize..(st.src + size) as usize]),
                None => {
                    return Err(self.async_err(ErrorKind::Memory, st.warp, st.lane as usize, st.pc, &format!("bulk store to freed global memory at {dst:#x}")));
                }
            },
            StoreKind::Tensor { map, coords } => {
                let es = map.dtype.size() as usize;
                let mut bad = None;
                box_elems(&map, &coords, st.src, |e| {
                    if let Some(g) = e.global {
                        let Some(src) = smem.get(e.smem as usize..e.smem as usize + es) else {
                            bad = Some(format!("swizzled shared address {:#x} outside shared memory", e.smem));
                            return;
                        };
                        match self.g.slice_mut(g, es) {
                            Some(x) => x.copy_from_slice(src),
                            None => bad = Some(format!("tensor store to unmapped global address {g:#x}; {}", self.g.describe(g))),
                        }
                    }
                });
                if let Some(b) = bad {
                    return Err(self.async_err(ErrorKind::Memory, st.warp, st.lane as usize, st.pc, &b));
                }
            }
        }
        Ok(())
    }

    /// Land the oldest pending bulk load and fire its complete_tx. Returns false when none.
    pub(super) fn drain_one(&mut self, smem: &mut [u8]) -> Res<bool> {
        // Under a fuzzed schedule pending loads land in any order (the async proxy orders none
        // of them); otherwise oldest first.
        let pick = match (&mut self.rng, self.asy.loads.len()) {
            (Some(r), n) if n > 1 => r.below(n as u64) as usize,
            _ => 0,
        };
        let Some(ld) = self.asy.loads.remove(pick) else { return Ok(false) };
        let (d0, n) = match &ld.kind {
            LoadKind::Bulk { dst, size, .. } => (*dst, *size),
            LoadKind::Tensor { dst, .. } => (*dst, ld.tx),
        };
        if let Some((chunk, writer)) = self.asy.unfenced(d0, n) {
            return Err(self.async_err(
                ErrorKind::Fault,
                ld.warp,
                ld.lane as usize,
                ld.pc,
                &format!(
                    "warp {writer} wrote shared bytes {chunk:#x}..{:#x} through the generic proxy while this bulk load into them was in flight (a race: the write is lost or the load's bytes are)",
                    chunk + 16
                ),
            ));
        }
        match &ld.kind {
            LoadKind::Bulk { dst, src, size } => match self.g.slice(*src, *size as usize) {
                Some(x) => smem[*dst as usize..(*dst + *size) as usize].copy_from_slice(x),
                None => {
                    return Err(self.async_err(ErrorKind::Memory, ld.warp, ld.lane as usize, ld.pc, &format!("bulk load source {src:#x} was freed before the copy completed")));
                }
            },
            LoadKind::Tensor { map, coords, dst } => {
                let es = map.dtype.size() as usize;
                let fill = if map.oob_fill == OobFill::NanRequestZeroFma { 0xFF } else { 0 };
                let mut bad = None;
                let g = &*self.g;
                box_elems(map, coords, *dst, |e| {
                    let Some(d) = smem.get_mut(e.smem as usize..e.smem as usize + es) else {
                        bad = Some(format!("swizzled shared address {:#x} outside shared memory", e.smem));
                        return;
                    };
                    match e.global {
                        None => d.fill(fill),
                        Some(a) => match g.slice(a, es) {
                            Some(x) => d.copy_from_slice(x),
                            None => bad = Some(format!("tensor load from unmapped global address {a:#x}; {}", g.describe(a))),
                        },
                    }
                });
                if let Some(b) = bad {
                    return Err(self.async_err(ErrorKind::Memory, ld.warp, ld.lane as usize, ld.pc, &b));
                }
            }
        }
        if self.race_on {
            // The landed bytes are the issuing warp's write; completing the transaction releases
            // it through the mbarrier, so only warps that waited on the barrier are ordered
            // after it (a read before the wait is a race, as well as a poison read).
            let r = self.race.get_mut();
            r.access(ld.warp as usize, ld.pc, d0 as u64, n as u64, true, false);
            r.mbar_release(ld.warp as usize, ld.bar);
        }
        let Some(mb) = self.asy.bars.get_mut(&ld.bar) else {
            return Err(self.async_err(
                ErrorKind::Fault,
                ld.warp,
                ld.lane as usize,
                ld.pc,
                &format!("the mbarrier at shared {:#x} this copy signals was invalidated before the copy completed", ld.bar),
            ));
        };
        mb.tx -= ld.tx as i64;
        self.try_complete(ld.bar, smem);
        Ok(true)
    }

    /// Wake warps parked on an mbarrier whose phase has moved on; report a store that
    /// overwrote a live mbarrier object.
    pub(super) fn wake_mbar(&mut self, warps: &mut [Warp]) -> Res<()> {
        if let Some((b, wid)) = self.asy.clobber.take() {
            let w = warps.iter().find(|w| w.id == wid).unwrap();
            let (line, text) = self.src_of(w.pc.saturating_sub(1));
            return Err(EmuError::new(
                ErrorKind::Fault,
                format!(
                    "warp {wid} stored over the live mbarrier object at shared {b:#x} through the generic proxy (mbarrier.inval it first) in kernel {}, CTA ({},{},{}); the warp stopped at line {line}: `{text}`",
                    self.k.name, self.cta[0], self.cta[1], self.cta[2]
                ),
            ));
        }
        if self.asy.flips == self.asy.seen_flips {
            return Ok(());
        }
        self.asy.seen_flips = self.asy.flips;
        for w in warps.iter_mut() {
            if let WState::Mbar(b, ph) = w.state {
                if self.asy.bars.get(&b).is_none_or(|m| m.phase != ph) {
                    w.state = WState::Run;
                    self.asy.soft &= !(1u64 << w.id);
                }
            }
        }
        Ok(())
    }

    /// Nothing can run and no copy is pending: wake the warps asleep after a failed
    /// `test_wait` (their test already returned false). False when there are none, or when the
    /// same sleepers were woken before with no phase completing since (a deadlock).
    pub(super) fn wake_soft(&mut self, warps: &mut [Warp]) -> bool {
        if self.asy.soft == 0 || self.asy.soft_sig == Some((self.asy.flips, self.asy.soft)) {
            return false;
        }
        self.asy.soft_sig = Some((self.asy.flips, self.asy.soft));
        for w in warps.iter_mut() {
            if self.asy.soft & (1u64 << w.id) != 0 && matches!(w.state, WState::Mbar(..)) {
                w.state = WState::Run;
            }
        }
        self.asy.soft = 0;
        true
    }

    /// At CTA end: complete every outstanding bulk store (hardware finishes them).
    pub(super) fn async_finish(&mut self, smem: &mut [u8]) -> Res<()> {
        let stores = std::mem::take(&mut self.asy.stores);
        for ws in stores {
            for g in ws.groups.into_iter().chain(std::iter::once(ws.cur)) {
                for st in g {
                    self.store_complete(st, smem)?;
                }
            }
        }
        Ok(())
    }
}
