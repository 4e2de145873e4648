//! The prefix cache: snapshots of sequence state keyed by the tokens that produced them, taken
//! at multiples of `BLOCK_TOKENS` (where no compressor block is partial). A new request whose
//! prompt starts with a cached prefix restores the longest one instead of recomputing it. LRU
//! eviction under a byte budget.

use std::collections::HashMap;

use crate::state_pool::BLOCK_TOKENS;

struct Entry<S> {
    snap: S,
    bytes: usize,
    last_used: u64,
}

pub struct PrefixCache<S> {
    entries: HashMap<Vec<u32>, Entry<S>>,
    budget: usize,
    bytes: usize,
    clock: u64,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheUsage {
    pub entries: usize,
    pub bytes: usize,
    pub budget: usize,
}

impl<S> PrefixCache<S> {
    pub fn new(budget_bytes: usize) -> PrefixCache<S> {
        PrefixCache { entries: HashMap::new(), budget: budget_bytes, bytes: 0, clock: 0 }
    }

    /// The longest cached prefix of `tokens` shorter than `tokens` itself (at least one token
    /// must be left to compute the next logits): its length and snapshot.
    pub fn lookup(&mut self, tokens: &[u32]) -> Option<(usize, &S)> {
        let mut len = (tokens.len().saturating_sub(1) / BLOCK_TOKENS) * BLOCK_TOKENS;
        while len > 0 {
            if self.entries.contains_key(&tokens[..len]) {
                self.clock += 1;
                let e = self.entries.get_mut(&tokens[..len]).unwrap();
                e.last_used = self.clock;
                return Some((len, &e.snap));
            }
            len -= BLOCK_TOKENS;
        }
        None
    }

    pub fn contains(&self, tokens: &[u32]) -> bool {
        self.entries.contains_key(tokens)
    }

    /// Insert the state after `tokens` (a multiple of BLOCK_TOKENS long), evicting the least
    /// recently used entries beyond the budget. An entry larger than the budget is not kept.
    pub fn insert(&mut self, tokens: &[u32], snap: S, bytes: usize) {
        debug_assert_eq!(tokens.len() % BLOCK_TOKENS, 0);
        if bytes > self.budget || self.entries.contains_key(tokens) {
            return;
        }
        self.clock += 1;
        self.bytes += bytes;
        self.entries.insert(tokens.to_vec(), Entry { snap, bytes, last_used: self.clock });
        while self.bytes > self.budget {
            let oldest = self.entries.iter().min_by_key(|(_, e)| e.last_used).map(|(k, _)| k.clone()).unwrap();
            let e = self.entries.remove(&oldest).unwrap();
            self.bytes -= e.bytes;
        }
    }

    pub fn usage(&self) -> CacheUsage {
        CacheUsage { entries: self.entries.len(), bytes: self.bytes, budget: self.budget }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(n: usize, salt: u32) -> Vec<u32> {
        (0..n as u32).map(|i| i * 7 + salt).collect()
    }

    #[test]
    fn longest_prefix_wins_and_leaves_one_token() {
        let mut c = PrefixCache::new(1000);
        let t = toks(3 * BLOCK_TOKENS, 0);
        c.insert(&t[..BLOCK_TOKENS], "one", 10);
        c.insert(&t[..2 * BLOCK_TOKENS], "two", 10);
        assert_eq!(c.lookup(&t).map(|(n, s)| (n, *s)), Some((2 * BLOCK_TOKENS, "two")));
        // A prompt exactly 2 blocks long may only reuse 1 block: its last token must run.
        assert_eq!(c.lookup(&t[..2 * BLOCK_TOKENS]).map(|(n, _)| n), Some(BLOCK_TOKENS));
        assert!(c.lookup(&toks(3 * BLOCK_TOKENS, 1)).is_none());
    }

    #[test]
    fn evicts_least_recently_used_under_budget() {
        let mut c = PrefixCache::new(25);
        let (a, b, d) = (toks(BLOCK_TOKENS, 1), toks(BLOCK_TOKENS, 2), toks(BLOCK_TOKENS, 3));
        c.insert(&a, 1, 10);
        c.insert(&b, 2, 10);
        let probe: Vec<u32> = a.iter().copied().chain([5]).collect();
        assert!(c.lookup(&probe).is_some()); // a is now more recent than b
        c.insert(&d, 3, 10);
        assert!(c.contains(&a) && c.contains(&d) && !c.contains(&b));
        assert_eq!(c.usage().bytes, 20);
        c.insert(&toks(BLOCK_TOKENS, 4), 4, 26);
        assert_eq!(c.usage().entries, 2, "an entry over the budget is not kept");
    }
}
