//! Mixture of experts: routing (score or hash) and the SwiGLU expert FFN.

use crate::config::ScoreFunc;
use crate::compute::{Compute, Reference};
use crate::linear::Linear;
use crate::quant::ActQuant;

/// Routing scores from the gate logits (f32): `sqrt(softplus(l))` for V4.
pub fn gate_scores(logits: &[f32], f: ScoreFunc) -> Vec<f32> {
    match f {
        ScoreFunc::SqrtSoftplus => logits.iter().map(|&l| softplus(l).sqrt()).collect(),
        ScoreFunc::Sigmoid => logits.iter().map(|&l| super::mhc::sigmoid(l)).collect(),
        ScoreFunc::Softmax => {
            let m = logits.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
            let e: Vec<f32> = logits.iter().map(|l| (l - m).exp()).collect();
            let s: f32 = e.iter().sum();
            e.iter().map(|v| v / s).collect()
        }
    }
}

/// torch's softplus (beta 1, threshold 20).
pub fn softplus(x: f32) -> f32 {
    if x > 20.0 {
        x
    } else {
        x.exp().ln_1p()
    }
}

/// Indices of the `k` largest values, descending; ties go to the lower index.
pub fn topk_indices(v: &[f32], k: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..v.len()).collect();
    order.sort_by(|&a, &b| v[b].total_cmp(&v[a]).then(a.cmp(&b)));
    order.truncate(k);
    order
}

/// One token's routing: experts chosen by `scores + bias` (or given by the hash table), weights
/// the unbiased scores of the chosen experts, normalised to sum 1 (not for softmax) and scaled.
pub fn route(scores: &[f32], bias: Option<&[f32]>, hashed: Option<&[i32]>, k: usize, f: ScoreFunc, route_scale: f32) -> (Vec<usize>, Vec<f32>) {
    let experts: Vec<usize> = match hashed {
        Some(ids) => ids.iter().map(|&e| e as usize).collect(),
        None => {
            let biased: Vec<f32> = match bias {
                Some(b) => scores.iter().zip(b).map(|(s, b)| s + b).collect(),
                None => scores.to_vec(),
            };
            topk_indices(&biased, k)
        }
    };
    let mut w: Vec<f32> = experts.iter().map(|&e| scores[e]).collect();
    if f != ScoreFunc::Softmax {
        let s: f32 = w.iter().sum();
        w.iter_mut().for_each(|v| *v /= s);
    }
    w.iter_mut().for_each(|v| *v *= route_scale);
    (experts, w)
}

/// An expert's three projections.
#[derive(Clone)]
pub struct Expert {
    pub w1: Linear,
    pub w2: Linear,
    pub w3: Linear,
}

/// `w2·(silu(g)·u·weight)` with `g = w1·x`, `u = w3·x` for the rows of `x`; when `limit` is
/// set, `g = min(g, limit)` and `u = clamp(u, ±limit)` (the routed experts' SwiGLU clamp).
pub fn expert_ffn(x: &[f32], e: &Expert, weights: Option<&[f32]>, limit: Option<f32>, aq: ActQuant) -> Vec<f32> {
    experts_ffn(&Reference, &[(e, x, weights, limit)], aq).pop().expect("one job, one output")
}

/// `g = silu(g)·u·weight[row]` on `[rows, inter]` (the clamp first, see `expert_ffn`).
pub fn swiglu_inplace(g: &mut [f32], u: &[f32], inter: usize, weights: Option<&[f32]>, limit: Option<f32>) {
    for (i, (gv, uv)) in g.iter_mut().zip(u).enumerate() {
        let (mut gg, mut uu) = (*gv, *uv);
        if let Some(l) = limit {
            gg = gg.min(l);
            uu = uu.clamp(-l, l);
        }
        *gv = gg / (1.0 + (-gg).exp()) * uu * weights.map_or(1.0, |w| w[i / inter]);
    }
}

/// One expert's share of a layer: (expert, its input rows, the routing weight of each row or
/// None, the SwiGLU clamp or None).
pub type ExpertJob<'a> = (&'a Expert, &'a [f32], Option<&'a [f32]>, Option<f32>);

/// Several experts, each on its own rows, in two phases of `mm.forward_many`: every w1 and w3,
/// then every w2. Returns each job's output rows. Same numbers as `expert_ffn` per job.
pub fn experts_ffn(mm: &dyn Compute, jobs: &[ExpertJob], aq: ActQuant) -> Vec<Vec<f32>> {
    let up: Vec<(&Linear, &[f32])> = jobs.iter().flat_map(|(e, x, _, _)| [(&e.w1, *x), (&e.w3, *x)]).collect();
    let mut gu = mm.forward_many(&up, aq).into_iter();
    let mut hidden = Vec::with_capacity(jobs.len());
    for (e, _, w, limit) in jobs {
        let (mut g, u) = (gu.next().expect("w1 output"), gu.next().expect("w3 output"));
        swiglu_inplace(&mut g, &u, e.w1.out, *w, *limit);
        hidden.push(g);
    }
    let down: Vec<(&Linear, &[f32])> = jobs.iter().zip(&hidden).map(|((e, ..), h)| (&e.w2, &h[..])).collect();
    mm.forward_many(&down, aq)
}
