//! Random weights in the checkpoint's stored formats, for kernel benchmarks: the kernels' speed
//! does not depend on the values, but NaN codes and absurd scales would take slow paths, so the
//! generator keeps e4m3 codes finite and e8m0 scales near 1.

use dsv4_reference::checkpoint::Bytes;
use dsv4_reference::linear::{Linear, Weight};

/// A stored weight format of the checkpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Format {
    /// e2m1 codes `[out, inp/2]` + e8m0 scales `[out, inp/32]` (4.25 bits per weight).
    Fp4,
    /// e4m3 `[out, inp]` + e8m0 per 128x128 block.
    Fp8,
    /// Plain BF16 `[out, inp]`.
    Bf16,
}

impl Format {
    /// `fp4`, `fp8`, `bf16` (the `format` field of a result record).
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Fp4 => "fp4",
            Format::Fp8 => "fp8",
            Format::Bf16 => "bf16",
        }
    }

    /// The inverse of [`Format::as_str`].
    pub fn from_name(s: &str) -> Option<Format> {
        [Format::Fp4, Format::Fp8, Format::Bf16].into_iter().find(|f| f.as_str() == s)
    }

    /// Bytes a `[out, inp]` matrix takes stored in this format, scales included.
    pub fn stored_bytes(self, out: usize, inp: usize) -> usize {
        match self {
            Format::Fp4 => out * inp / 2 + out * inp / 32,
            Format::Fp8 => out * inp + out.div_ceil(128) * inp.div_ceil(128),
            Format::Bf16 => out * inp * 2,
        }
    }
}

/// xorshift64: fast, deterministic, good enough for benchmark weights.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// `n` random bytes mapped by `f`, in their own page-aligned mapping ([`Bytes::anon`]) as
    /// the synthetic model's weights are: streamed from the heap they measure slower.
    fn fill(&mut self, n: usize, f: impl Fn(u8) -> u8) -> Bytes {
        Bytes::anon(n, |v| {
            for c in v.chunks_mut(8) {
                let r = self.next().to_le_bytes();
                c.iter_mut().zip(r).for_each(|(b, r)| *b = f(r));
            }
        })
    }
}

/// A `[out, inp]` weight in `fmt` with random contents from `seed` (distinct seeds give distinct
/// copies, which is what sweeping for DRAM-resident weights needs).
pub fn random_linear(fmt: Format, out: usize, inp: usize, seed: u64) -> Linear {
    let mut r = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let weight = match fmt {
        Format::Fp4 => Weight::Fp4 {
            w: r.fill(out * inp / 2, |b| b),
            // 2^-9 .. 2^2: the range real expert scales span
            scale: r.fill(out * inp / 32, |b| 118 + b % 12),
        },
        Format::Fp8 => Weight::Fp8 {
            // 0x7F / 0xFF are NaN in e4m3
            w: r.fill(out * inp, |b| if b & 0x7F == 0x7F { b - 1 } else { b }),
            scale: r.fill(out.div_ceil(128) * inp.div_ceil(128), |b| 115 + b % 12),
        },
        // sign and a small exponent: values near 1, never Inf/NaN
        Format::Bf16 => Weight::Bf16(r.fill(out * inp * 2, |b| (b & 0xBF) | 0x3C)),
    };
    Linear { out, inp, weight }
}

/// Bytes `l`'s weight occupies as stored (codes + scales): what one GEMV must read.
pub fn stored_bytes(l: &Linear) -> usize {
    match &l.weight {
        Weight::Fp4 { w, scale } | Weight::Fp8 { w, scale } => w.len() + scale.len(),
        Weight::Bf16(w) => w.len(),
        Weight::F32(v) => v.len() * 4,
    }
}

/// Deterministic activations `[batch, inp]` in about [-5, 5].
pub fn activations(batch: usize, inp: usize) -> Vec<f32> {
    (0..batch * inp).map(|i| ((i * 7919 % 1000) as f32 - 500.0) * 0.01).collect()
}
