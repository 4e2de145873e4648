//! Who computes the model's heavy ops: every linear (`x · Wᵀ`), the sparse attention, the
//! indexer's scores and the mHC mixes' dot products. `Model` runs them through one `Compute`: the reference ([`Reference`]: the
//! plain loops of `linear` and `ops`) or a backend's faster kernels that compute the same numbers
//! up to f32 summation order (the engine's CPU kernels). This is the one seam a fast CPU backend
//! needs; every other line of the model is shared.

use std::ops::Range;

use crate::linear::Linear;
use crate::ops::attention::{index_scores, sparse_attn_rows, KvRows};
use crate::quant::ActQuant;

pub trait Compute: Send + Sync {
    /// `lin.forward_rows(x, rows, aq)`.
    fn forward_rows(&self, lin: &Linear, x: &[f32], rows: Range<usize>, aq: ActQuant) -> Vec<f32>;

    /// `lin.forward(x, aq)`.
    fn forward(&self, lin: &Linear, x: &[f32], aq: ActQuant) -> Vec<f32> {
        self.forward_rows(lin, x, 0..lin.out, aq)
    }

    /// Independent products `jobs[i].0 · jobs[i].1` (e.g. every routed expert's w1 and w3 of a
    /// layer): one parallel phase for a fast backend instead of one per matrix.
    fn forward_many(&self, jobs: &[(&Linear, &[f32])], aq: ActQuant) -> Vec<Vec<f32>> {
        jobs.iter().map(|(lin, x)| self.forward(lin, x, aq)).collect()
    }

    /// `ops::attention::sparse_attn_rows`.
    fn sparse_attn(&self, q: &[f32], kv: &KvRows, idx: &[i32], sink: &[f32], scale: f32, d: usize) -> Vec<f32> {
        sparse_attn_rows(q, kv, idx, sink, scale, d)
    }

    /// `ops::attention::index_scores`.
    fn index_scores(&self, q: &[f32], w: &[f32], keys: &[f32], d: usize) -> Vec<f32> {
        index_scores(q, w, keys, d)
    }

    /// `linear::dot` (the mHC mixes: 24 dots of 16K per sublayer at the real geometry).
    fn dot(&self, a: &[f32], b: &[f32]) -> f32 {
        crate::linear::dot(a, b)
    }
}

/// The reference arithmetic.
#[derive(Clone, Copy, Debug, Default)]
pub struct Reference;

impl Compute for Reference {
    fn forward_rows(&self, lin: &Linear, x: &[f32], rows: Range<usize>, aq: ActQuant) -> Vec<f32> {
        lin.forward_rows(x, rows, aq)
    }
}
