//! The state pool: slots for sequence state and a memory budget counted in blocks of
//! `BLOCK_TOKENS` positions. A sequence reserves the blocks its whole life can need (prompt +
//! max tokens) when admitted, so a running sequence never runs out; it gives them back when it
//! ends or is cancelled.

use dsv4_reference::Config;

use crate::backend::Slot;

/// Positions per block; also the prefix cache's snapshot granularity (a multiple of every
/// compress ratio, so a snapshot never splits a compressor block).
pub const BLOCK_TOKENS: usize = 128;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolUsage {
    pub slots_used: usize,
    pub slots: usize,
    pub blocks_used: usize,
    pub blocks: usize,
}

#[derive(Debug)]
pub struct StatePool {
    free_slots: Vec<Slot>,
    slots: usize,
    /// Blocks reserved by each slot.
    reserved: Vec<usize>,
    blocks: usize,
    blocks_used: usize,
    block_bytes: usize,
    fixed_bytes: usize,
}

impl StatePool {
    /// `slots` sequences at most, `budget_bytes` of state in all.
    pub fn new(cfg: &Config, slots: usize, budget_bytes: usize) -> StatePool {
        let (block_bytes, fixed_bytes) = state_bytes(cfg);
        let blocks = budget_bytes.saturating_sub(fixed_bytes * slots) / block_bytes.max(1);
        StatePool { free_slots: (0..slots).rev().collect(), slots, reserved: vec![0; slots], blocks, blocks_used: 0, block_bytes, fixed_bytes }
    }

    /// Blocks a sequence of `tokens` positions needs.
    pub fn blocks_for(tokens: usize) -> usize {
        tokens.div_ceil(BLOCK_TOKENS).max(1)
    }

    /// Whether a sequence of `tokens` positions could ever fit (even in an empty pool).
    pub fn can_ever_fit(&self, tokens: usize) -> bool {
        self.slots > 0 && Self::blocks_for(tokens) <= self.blocks
    }

    /// A slot with room for `tokens` positions, or None while the pool is full.
    pub fn try_alloc(&mut self, tokens: usize) -> Option<Slot> {
        let need = Self::blocks_for(tokens);
        if self.blocks_used + need > self.blocks {
            return None;
        }
        let slot = self.free_slots.pop()?;
        self.reserved[slot] = need;
        self.blocks_used += need;
        Some(slot)
    }

    pub fn free(&mut self, slot: Slot) {
        assert!(self.reserved[slot] > 0, "slot {slot} freed twice");
        self.blocks_used -= self.reserved[slot];
        self.reserved[slot] = 0;
        self.free_slots.push(slot);
    }

    pub fn usage(&self) -> PoolUsage {
        PoolUsage { slots_used: self.slots - self.free_slots.len(), slots: self.slots, blocks_used: self.blocks_used, blocks: self.blocks }
    }

    pub fn bytes_used(&self) -> usize {
        self.blocks_used * self.block_bytes + (self.slots - self.free_slots.len()) * self.fixed_bytes
    }
}

/// (bytes of state per block of positions, fixed bytes per sequence) for `cfg`, in f32:
/// compressed KV and indexer keys grow with the position; the window ring and the
/// compressors' partial blocks do not.
pub fn state_bytes(cfg: &Config) -> (usize, usize) {
    let (mut per_block, mut fixed) = (0, 0);
    for l in 0..cfg.n_layers {
        let c = cfg.compress_ratio(l);
        fixed += cfg.window_size * cfg.head_dim;
        if c > 0 {
            let coff = if c == 4 { 2 } else { 1 };
            per_block += BLOCK_TOKENS / c * cfg.head_dim;
            fixed += 2 * coff * c * coff * cfg.head_dim;
            if c == 4 {
                per_block += BLOCK_TOKENS / c * cfg.index_head_dim;
                fixed += 2 * 2 * c * 2 * cfg.index_head_dim;
            }
        }
    }
    (per_block * 4, fixed * 4)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserves_and_frees_blocks() {
        let cfg = Config::flash();
        let (bb, fixed) = state_bytes(&cfg);
        let mut pool = StatePool::new(&cfg, 3, fixed * 3 + bb * 10);
        assert_eq!(pool.usage().blocks, 10);
        let a = pool.try_alloc(4 * BLOCK_TOKENS).unwrap();
        let b = pool.try_alloc(5 * BLOCK_TOKENS + 1).unwrap();
        assert_eq!(pool.usage().blocks_used, 10);
        assert!(pool.try_alloc(1).is_none(), "no blocks left");
        pool.free(a);
        let c = pool.try_alloc(1).unwrap();
        assert!(pool.try_alloc(1).is_some());
        assert!(pool.try_alloc(1).is_none(), "no slots left");
        pool.free(b);
        pool.free(c);
        assert!(pool.can_ever_fit(10 * BLOCK_TOKENS) && !pool.can_ever_fit(10 * BLOCK_TOKENS + 1));
    }
}
