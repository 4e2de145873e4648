//! The kernels as the model's [`Compute`]: every linear of the reference model runs through
//! [`fast_linear_with`](super::fast_linear_with) at a fixed level, the attention, the indexer's scores
//! and the mHC mixes' dots through [`attention`](super::attention), and a group of independent products
//! (a layer's expert matrices, the compressor's two projections) runs as one parallel phase:
//! the rows of all of them are cut into a few contiguous shares per thread of equal work (bytes
//! times the job's tokens; [`pool::plan`] into [`pool::parts`], claimed by whichever thread is
//! free), so a batch-1 MoE layer costs two fork/joins instead of one per matrix.

use std::ops::Range;

use dsv4_reference::compute::Compute;
use dsv4_reference::linear::{Linear, Weight};
use dsv4_reference::ops::attention::KvRows;
use dsv4_reference::ActQuant;

use super::{fast_linear_with, pool, Fp4Math, Level};

/// The engine's CPU kernels at `level` (see `Level::detect`), FP4 arithmetic `fp4`.
#[derive(Clone, Copy, Debug)]
pub struct Kernels {
    pub level: Level,
    pub fp4: Fp4Math,
}

/// Rows `1` of job `0` computed: `[m, 1.len()]`.
type Piece = (usize, Range<usize>, Vec<f32>);

/// Stored bytes of one weight row (what a thread streams).
fn row_bytes(lin: &Linear) -> usize {
    let k = lin.inp;
    match &lin.weight {
        Weight::Fp4 { .. } => k / 2 + k / 32,
        Weight::Fp8 { .. } => k,
        Weight::Bf16(_) => 2 * k,
        Weight::F32(_) => 4 * k,
    }
}

impl Compute for Kernels {
    fn forward_rows(&self, lin: &Linear, x: &[f32], rows: Range<usize>, aq: ActQuant) -> Vec<f32> {
        fast_linear_with(self.level, self.fp4, lin, x, rows, aq)
    }

    fn sparse_attn(&self, q: &[f32], kv: &KvRows, idx: &[i32], sink: &[f32], scale: f32, d: usize) -> Vec<f32> {
        super::attention::sparse_attn(self.level, q, kv, idx, sink, scale, d)
    }

    fn index_scores(&self, q: &[f32], w: &[f32], keys: &[f32], d: usize) -> Vec<f32> {
        super::attention::index_scores(self.level, q, w, keys, d)
    }

    fn dot(&self, a: &[f32], b: &[f32]) -> f32 {
        super::attention::dot(self.level, a, b)
    }

    fn forward_many(&self, jobs: &[(&Linear, &[f32])], aq: ActQuant) -> Vec<Vec<f32>> {
        // a row's cost: its bytes times the job's tokens (the kernels are compute-bound from a
        // few tokens on, and a batch's experts hold different numbers of them), so the shares
        // are of equal work, not of equal bytes
        let sizes: Vec<(usize, usize)> = jobs.iter().map(|(l, x)| (l.out, row_bytes(l) * (x.len() / l.inp.max(1)).max(1))).collect();
        let total: usize = sizes.iter().map(|(r, b)| r * b).sum();
        if jobs.len() <= 1 || total < pool::MIN_PARALLEL_BYTES || pool::threads() <= 1 {
            return jobs.iter().map(|(l, x)| self.forward(l, x, aq)).collect();
        }
        let shares = pool::plan(&sizes, pool::parts(total), super::ROW_ALIGN);
        // each share computes its pieces with row splitting off (it is one thread's work)
        // (job, its rows, their outputs) per share
        let pieces: Vec<Vec<Piece>> = pool::map(shares.len(), |s| {
            pool::serial(|| shares[s].iter().map(|(j, r)| (*j, r.clone(), fast_linear_with(self.level, self.fp4, jobs[*j].0, jobs[*j].1, r.clone(), aq))).collect())
        });
        let mut out: Vec<Vec<f32>> = jobs.iter().map(|(l, x)| vec![0.0; x.len() / l.inp * l.out]).collect();
        for (j, r, y) in pieces.into_iter().flatten() {
            let n = jobs[j].0.out;
            for (dst, src) in out[j].chunks_mut(n).zip(y.chunks(r.len())) {
                dst[r.clone()].copy_from_slice(src);
            }
        }
        out
    }
}
