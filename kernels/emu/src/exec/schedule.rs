//! Seeded schedule fuzzing: warp order and quantum per scheduling round, the lane
//! `elect.sync` picks, and (in one launch of four) bulk/TMA loads landing at random points
//! after issue instead of at the latest legal point, all from a splitmix64 stream seeded per
//! launch, so a seed replays one launch exactly. Not varied: the FIFO order in which pending
//! loads land (the queue is private to `exec/asyncops.rs`).

/// How the CTA scheduler orders warps.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Schedule {
    /// Round-robin in warp order with a fixed quantum; `elect.sync` picks the lowest lane.
    #[default]
    Fixed,
    /// Warp order, quantum and elected lane drawn from a stream seeded with `seed`.
    Fuzz { seed: u64 },
}

impl Schedule {
    pub fn seed(&self) -> Option<u64> {
        match self {
            Schedule::Fixed => None,
            Schedule::Fuzz { seed } => Some(*seed),
        }
    }
}

pub(crate) struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x6a09_e667_f3bc_c909)
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        if n <= 1 {
            0
        } else {
            self.next() % n
        }
    }

    /// A quantum for the next scheduling round.
    pub fn quantum(&mut self, max: u32) -> u32 {
        const Q: [u32; 6] = [1, 3, 16, 64, 256, 512];
        Q[self.below(Q.len() as u64) as usize].min(max)
    }

    /// A random lane of the non-empty mask `m`.
    pub fn lane(&mut self, m: u32) -> usize {
        let k = self.below(m.count_ones() as u64) as u32;
        let mut bits = m;
        for _ in 0..k {
            bits &= bits - 1;
        }
        bits.trailing_zeros() as usize
    }

    pub fn shuffle(&mut self, v: &mut [usize]) {
        for i in (1..v.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            v.swap(i, j);
        }
    }
}
