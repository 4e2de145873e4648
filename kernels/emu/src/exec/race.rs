//! Shared-memory race detector (FastTrack-style, per CTA).
//!
//! Each warp of a CTA (at most 32) holds a vector clock. Happens-before edges: a CTA barrier
//! (`bar.sync`/`bar.red`/named barriers; `bar.arrive` releases only) joins the clocks of the
//! participating warps; an mbarrier arrive releases the warp's clock into the barrier's clock
//! and a wait that returns acquires it. Lanes of one warp are ordered (lockstep), so accesses
//! of one warp never race with each other. Every 4-byte shared word keeps its last write epoch
//! and its last read epoch (or a read set once two unordered warps read it). Atomics do not
//! race with atomics, nor with plain reads (CAS loops); a plain write races with both.
//!
//! Not tracked (gaps): bytes written by the async proxy (TMA / bulk loads) and smem read by
//! wgmma or bulk stores; those are covered by the proxy-fence and in-flight checks instead.
use std::collections::HashMap;

pub(crate) type Clock = [u32; 32];

/// One access: warp, its clock value, PC, atomic. `clock == 0`: none.
#[derive(Clone, Copy, Default)]
pub(crate) struct Ep {
    pub clock: u32,
    pub pc: u32,
    pub warp: u8,
    pub atomic: bool,
}

#[derive(Clone, Copy, Default)]
pub(crate) struct Word {
    w: Ep,
    /// Last read; `shared` reads live in `Race::reads`.
    r: Ep,
    shared: bool,
}

/// A detected race: (current access: warp, pc, is write), (earlier access), byte address.
pub(crate) struct Found {
    pub cur: (u32, u32, bool),
    pub prev: (u32, u32, bool),
    pub addr: u32,
}

#[derive(Default)]
pub(crate) struct Race {
    pub on: bool,
    pub vc: Vec<Clock>,
    pub(crate) words: Vec<Word>,
    pub(crate) reads: HashMap<u32, Vec<Ep>>,
    pub(crate) mbar: HashMap<u32, Clock>,
    pub found: Option<Found>,
}

fn join(a: &mut Clock, b: &Clock) {
    for i in 0..32 {
        a[i] = a[i].max(b[i]);
    }
}

impl Race {
    pub fn reset(&mut self, nwarps: usize, smem_len: usize) {
        if !self.on {
            return;
        }
        self.vc.clear();
        for w in 0..nwarps {
            let mut c = [0u32; 32];
            c[w] = 1;
            self.vc.push(c);
        }
        self.words.clear();
        self.words.resize(smem_len.div_ceil(4), Word::default());
        self.reads.clear();
        self.mbar.clear();
        self.found = None;
    }

    /// Does the earlier access `e` (a write when `ew`) conflict with the current one by warp
    /// `t` (atomic / write) without being ordered before it? Atomics never conflict with
    /// atomics, nor with plain reads (the CAS-loop idiom `old = *p; atomicCAS(p, old, ..)`
    /// reads a word other warps update atomically; the read is single-copy atomic).
    #[inline]
    fn unordered(&self, t: usize, e: &Ep, ew: bool, atomic: bool, write: bool) -> bool {
        if e.clock == 0 || e.warp as usize == t || e.clock <= self.vc[t][e.warp as usize] {
            return false;
        }
        let benign = if atomic { e.atomic || !ew } else { !write && e.atomic };
        !benign
    }

    fn report(&mut self, t: usize, pc: u32, write: bool, e: &Ep, ew: bool, addr: u32) {
        if self.found.is_none() {
            self.found = Some(Found { cur: (t as u32, pc, write), prev: (e.warp as u32, e.pc, ew), addr });
        }
    }

    /// A shared access of `size` bytes at `a` by warp `t` at `pc`.
    pub fn access(&mut self, t: usize, pc: u32, a: u64, size: u64, write: bool, atomic: bool) {
        if self.found.is_some() || t >= self.vc.len() {
            return;
        }
        let w0 = (a / 4) as usize;
        let w1 = ((a + size).div_ceil(4) as usize).min(self.words.len());
        for wi in w0..w1 {
            let addr = (wi * 4) as u32;
            let wd = self.words[wi];
            let me = Ep { clock: self.vc[t][t], pc, warp: t as u8, atomic };
            if self.unordered(t, &wd.w, true, atomic, write) {
                return self.report(t, pc, write, &wd.w, true, addr.max(a as u32));
            }
            if write {
                if wd.shared {
                    let rs = self.reads.remove(&(wi as u32)).unwrap_or_default();
                    for e in &rs {
                        if self.unordered(t, e, false, atomic, true) {
                            return self.report(t, pc, true, e, false, addr.max(a as u32));
                        }
                    }
                } else if self.unordered(t, &wd.r, false, atomic, true) {
                    return self.report(t, pc, true, &wd.r, false, addr.max(a as u32));
                }
                self.words[wi] = Word { w: me, r: Ep::default(), shared: false };
            } else if wd.shared {
                let v = self.reads.entry(wi as u32).or_default();
                match v.iter_mut().find(|e| e.warp as usize == t) {
                    Some(e) => *e = me,
                    None => v.push(me),
                }
            } else if wd.r.clock == 0 || wd.r.warp as usize == t || wd.r.clock <= self.vc[t][wd.r.warp as usize] {
                self.words[wi].r = me;
            } else {
                self.reads.insert(wi as u32, vec![wd.r, me]);
                self.words[wi].shared = true;
            }
        }
    }

    /// Warp `t` releases into a CTA barrier's clock.
    pub fn release_into(&mut self, t: usize, c: &mut Clock) {
        if let Some(v) = self.vc.get_mut(t) {
            join(c, v);
            v[t] += 1;
        }
    }

    /// Warp `t` acquires a barrier's clock.
    pub fn acquire(&mut self, t: usize, c: &Clock) {
        if let Some(v) = self.vc.get_mut(t) {
            join(v, c);
        }
    }

    pub fn mbar_release(&mut self, t: usize, b: u32) {
        if t >= self.vc.len() {
            return;
        }
        let mut c = self.mbar.remove(&b).unwrap_or([0; 32]);
        self.release_into(t, &mut c);
        self.mbar.insert(b, c);
    }

    pub fn mbar_acquire(&mut self, t: usize, b: u32) {
        if let Some(c) = self.mbar.get(&b).copied() {
            self.acquire(t, &c);
        }
    }
}
