//! Manifold-constrained hyper-connections (mHC): the residual is `nc` parallel streams, mixed
//! around every sublayer by Sinkhorn-normalised weights computed from the streams themselves.

use crate::linear::dot;

/// One mHC site's parameters: `fn` `[(2+nc)·nc, nc·d]`, `base` `[(2+nc)·nc]`, `scale` `[3]`
/// (or, for the head, `[nc, nc·d]`, `[nc]`, `[1]`).
#[derive(Clone, Debug)]
pub struct HcParams {
    pub fn_: Vec<f32>,
    pub base: Vec<f32>,
    pub scale: Vec<f32>,
}

/// What hc_pre hands to hc_post.
#[derive(Clone, Debug)]
pub struct HcMix {
    pub post: Vec<f32>,
    /// `comb[j * nc + k]`: weight of input stream j in output stream k.
    pub comb: Vec<f32>,
}

/// `mix = (fn · v) · r` with `v` the flattened streams and `r = 1/sqrt(mean(v²)+eps)`.
pub fn hc_mixes(x: &[f32], fn_: &[f32], eps: f32) -> Vec<f32> {
    hc_mixes_by(x, fn_, eps, dot)
}

/// [`hc_mixes`] with its dot products by `dot` (a backend's vectorised dot: another f32
/// summation order).
pub fn hc_mixes_by(x: &[f32], fn_: &[f32], eps: f32, dot: impl Fn(&[f32], &[f32]) -> f32) -> Vec<f32> {
    let r = super::norm::rms_scale(x, eps);
    fn_.chunks(x.len()).map(|w| dot(w, x) * r).collect()
}

/// Split the mixes into pre (nc), post (nc) and the Sinkhorn-normalised comb (nc×nc), exactly
/// as the official kernel: `pre = sigmoid(.)+eps`, `post = 2·sigmoid(.)`,
/// `C = softmax_rows(.)+eps`, `C /= colsum+eps`, then (iters−1)× rows then columns.
pub fn hc_split_sinkhorn(mixes: &[f32], scale: &[f32], base: &[f32], nc: usize, iters: usize, eps: f32) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let pre = (0..nc).map(|i| sigmoid(mixes[i] * scale[0] + base[i]) + eps).collect();
    let post = (0..nc).map(|i| 2.0 * sigmoid(mixes[nc + i] * scale[1] + base[nc + i])).collect();
    let mut c: Vec<f32> = (0..nc * nc).map(|i| mixes[2 * nc + i] * scale[2] + base[2 * nc + i]).collect();
    for row in c.chunks_mut(nc) {
        let m = row.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
        row.iter_mut().for_each(|v| *v = (*v - m).exp());
        let s: f32 = row.iter().sum();
        row.iter_mut().for_each(|v| *v = *v / s + eps);
    }
    normalize_cols(&mut c, nc, eps);
    for _ in 1..iters {
        for row in c.chunks_mut(nc) {
            let s: f32 = row.iter().sum();
            row.iter_mut().for_each(|v| *v /= s + eps);
        }
        normalize_cols(&mut c, nc, eps);
    }
    (pre, post, c)
}

fn normalize_cols(c: &mut [f32], nc: usize, eps: f32) {
    for k in 0..nc {
        let s: f32 = (0..nc).map(|j| c[j * nc + k]).sum();
        (0..nc).for_each(|j| c[j * nc + k] /= s + eps);
    }
}

/// hc_pre for one token: `x` is `[nc, d]`; returns the sublayer input `Σ_j pre[j]·X[j]` and the
/// mix for hc_post.
pub fn hc_pre(x: &[f32], p: &HcParams, nc: usize, iters: usize, norm_eps: f32, hc_eps: f32) -> (Vec<f32>, HcMix) {
    hc_pre_by(x, p, nc, iters, norm_eps, hc_eps, dot)
}

/// [`hc_pre`] with the mixes' dot products by `dot` ([`hc_mixes_by`]).
pub fn hc_pre_by(x: &[f32], p: &HcParams, nc: usize, iters: usize, norm_eps: f32, hc_eps: f32, dot: impl Fn(&[f32], &[f32]) -> f32) -> (Vec<f32>, HcMix) {
    let mixes = hc_mixes_by(x, &p.fn_, norm_eps, dot);
    let (pre, post, comb) = hc_split_sinkhorn(&mixes, &p.scale, &p.base, nc, iters, hc_eps);
    (weighted_streams(x, &pre), HcMix { post, comb })
}

/// hc_post for one token: `X'[k] = post[k]·f + Σ_j C[j,k]·X[j]`.
pub fn hc_post(f: &[f32], x: &[f32], mix: &HcMix) -> Vec<f32> {
    let (d, nc) = (f.len(), mix.post.len());
    let mut y = vec![0.0; nc * d];
    for k in 0..nc {
        let out = &mut y[k * d..(k + 1) * d];
        for (i, o) in out.iter_mut().enumerate() {
            *o = mix.post[k] * f[i] + (0..nc).map(|j| mix.comb[j * nc + k] * x[j * d + i]).sum::<f32>();
        }
    }
    y
}

/// hc_head for one token: `pre = sigmoid((fn·v)·r·scale + base) + eps`, `x = Σ pre[j]·X[j]`.
pub fn hc_head(x: &[f32], p: &HcParams, norm_eps: f32, hc_eps: f32) -> Vec<f32> {
    hc_head_by(x, p, norm_eps, hc_eps, dot)
}

/// [`hc_head`] with the mixes' dot products by `dot` ([`hc_mixes_by`]).
pub fn hc_head_by(x: &[f32], p: &HcParams, norm_eps: f32, hc_eps: f32, dot: impl Fn(&[f32], &[f32]) -> f32) -> Vec<f32> {
    let mixes = hc_mixes_by(x, &p.fn_, norm_eps, dot);
    let pre: Vec<f32> = mixes.iter().zip(&p.base).map(|(m, b)| sigmoid(m * p.scale[0] + b) + hc_eps).collect();
    weighted_streams(x, &pre)
}

fn weighted_streams(x: &[f32], w: &[f32]) -> Vec<f32> {
    let d = x.len() / w.len();
    (0..d).map(|i| w.iter().enumerate().map(|(j, wj)| wj * x[j * d + i]).sum()).collect()
}

pub fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}
