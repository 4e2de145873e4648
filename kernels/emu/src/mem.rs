//! Global memory: an emulator heap at high addresses with guard gaps between allocations.
//! Every access is checked against the live allocations (the last hit is cached).
use std::cell::Cell;

/// Where the first allocation goes.
pub const HEAP_BASE: u64 = 0x7f00_0000_0000;
/// Unmapped bytes between allocations (so off-by-a-little accesses fault).
pub const GUARD: u64 = 64 * 1024;
pub const POISON: u8 = 0xFF;

pub struct Alloc {
    pub base: u64,
    pub data: Vec<u8>,
}

#[derive(Default)]
pub struct GlobalMem {
    /// Live allocations sorted by base.
    allocs: Vec<Alloc>,
    /// Freed ranges (for better messages).
    freed: Vec<(u64, u64)>,
    next: u64,
    last: Cell<usize>,
}

impl GlobalMem {
    pub fn new() -> GlobalMem {
        GlobalMem { allocs: Vec::new(), freed: Vec::new(), next: HEAP_BASE, last: Cell::new(0) }
    }

    pub fn alloc(&mut self, bytes: usize) -> u64 {
        if self.next == 0 {
            self.next = HEAP_BASE;
        }
        let base = self.next;
        let size = bytes.max(1) as u64;
        self.next = (base + size + GUARD).div_ceil(256) * 256;
        self.allocs.push(Alloc { base, data: vec![POISON; bytes.max(1)] });
        base
    }

    pub fn free(&mut self, ptr: u64) -> bool {
        match self.allocs.binary_search_by_key(&ptr, |a| a.base) {
            Ok(i) => {
                let a = self.allocs.remove(i);
                self.freed.push((a.base, a.data.len() as u64));
                self.last.set(0);
                true
            }
            Err(_) => false,
        }
    }

    /// Index of the live allocation containing `[addr, addr + len)`.
    #[inline(always)]
    pub fn find(&self, addr: u64, len: u64) -> Option<usize> {
        let l = self.last.get();
        if let Some(a) = self.allocs.get(l) {
            if addr >= a.base && addr.wrapping_add(len) <= a.base + a.data.len() as u64 && addr.wrapping_add(len) >= addr {
                return Some(l);
            }
        }
        self.find_slow(addr, len)
    }

    #[inline(never)]
    fn find_slow(&self, addr: u64, len: u64) -> Option<usize> {
        let i = match self.allocs.binary_search_by_key(&addr, |a| a.base) {
            Ok(i) => i,
            Err(0) => return None,
            Err(i) => i - 1,
        };
        let a = &self.allocs[i];
        let end = addr.checked_add(len)?;
        if addr >= a.base && end <= a.base + a.data.len() as u64 {
            self.last.set(i);
            Some(i)
        } else {
            None
        }
    }

    #[inline(always)]
    pub fn slice(&self, addr: u64, len: usize) -> Option<&[u8]> {
        let i = self.find(addr, len as u64)?;
        let a = &self.allocs[i];
        let o = (addr - a.base) as usize;
        Some(&a.data[o..o + len])
    }

    #[inline(always)]
    pub fn slice_mut(&mut self, addr: u64, len: usize) -> Option<&mut [u8]> {
        let i = self.find(addr, len as u64)?;
        let a = &mut self.allocs[i];
        let o = (addr - a.base) as usize;
        Some(&mut a.data[o..o + len])
    }

    #[inline(always)]
    pub fn read(&self, addr: u64, len: usize) -> Option<u64> {
        self.slice(addr, len).map(|s| le_read(s))
    }

    #[inline(always)]
    pub fn write(&mut self, addr: u64, len: usize, v: u64) -> Option<()> {
        self.slice_mut(addr, len).map(|s| le_write(s, v))
    }

    /// "nearest allocation 0x...+size (offset ...)" for an error message.
    pub fn describe(&self, addr: u64) -> String {
        let mut best: Option<(u64, u64, i128)> = None;
        for a in &self.allocs {
            let size = a.data.len() as u64;
            let dist = if addr < a.base {
                (a.base - addr) as i128
            } else if addr >= a.base + size {
                (addr - (a.base + size)) as i128 + 1
            } else {
                0
            };
            if best.is_none_or(|b| dist < b.2) {
                best = Some((a.base, size, dist));
            }
        }
        let mut s = match best {
            Some((b, size, _)) => {
                format!("nearest allocation {:#x}+{} (offset {})", b, size, addr as i128 - b as i128)
            }
            None => "no live allocations".to_string(),
        };
        for &(b, size) in &self.freed {
            if addr >= b && addr < b + size && !self.allocs.iter().any(|a| a.base == b) {
                s.push_str(&format!("; inside freed allocation {:#x}+{}", b, size));
                break;
            }
        }
        s
    }

    pub fn live_size(&self, ptr: u64) -> Option<usize> {
        self.allocs.binary_search_by_key(&ptr, |a| a.base).ok().map(|i| self.allocs[i].data.len())
    }
}

#[inline(always)]
pub fn le_read(s: &[u8]) -> u64 {
    match s.len() {
        1 => s[0] as u64,
        2 => u16::from_le_bytes([s[0], s[1]]) as u64,
        4 => u32::from_le_bytes([s[0], s[1], s[2], s[3]]) as u64,
        8 => u64::from_le_bytes(s.try_into().unwrap()),
        _ => {
            let mut v = 0u64;
            for (i, b) in s.iter().enumerate().take(8) {
                v |= (*b as u64) << (8 * i);
            }
            v
        }
    }
}

#[inline(always)]
pub fn le_write(s: &mut [u8], v: u64) {
    match s.len() {
        1 => s[0] = v as u8,
        2 => s.copy_from_slice(&(v as u16).to_le_bytes()),
        4 => s.copy_from_slice(&(v as u32).to_le_bytes()),
        8 => s.copy_from_slice(&v.to_le_bytes()),
        n => {
            for (i, b) in s.iter_mut().enumerate().take(n.min(8)) {
                *b = (v >> (8 * i)) as u8;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alloc_find_free() {
        let mut g = GlobalMem::new();
        let a = g.alloc(100);
        let b = g.alloc(10);
        assert_eq!(a % 256, 0);
        assert_eq!(b % 256, 0);
        assert!(b >= a + 100 + GUARD);
        assert_eq!(g.read(a, 4), Some(0xFFFF_FFFF));
        g.write(a + 96, 4, 0x1234_5678).unwrap();
        assert_eq!(g.read(a + 96, 4), Some(0x1234_5678));
        assert!(g.read(a + 97, 4).is_none());
        assert!(g.read(a - 4, 4).is_none());
        assert!(g.read(b + 8, 2).is_some());
        assert!(g.describe(a + 100).contains("offset 100"));
        assert!(g.free(a));
        assert!(g.read(a, 4).is_none());
        assert!(g.describe(a).contains("freed"));
    }
}
