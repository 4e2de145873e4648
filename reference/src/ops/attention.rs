//! Sparse attention over one shared latent KV head (K = V), with a per-head attention sink.

/// `q` `[s, h, d]`, `kv` `[n, d]`, `idx` `[s, k]` (entries of `kv`; -1 = unused slot),
/// `sink` `[h]`. For each query and head: `s_j = q·kv[idx_j]·scale`,
/// `o = Σ softmax(s)_j·kv[idx_j]` where the softmax denominator also holds `exp(sink)`
/// (a logit whose value vector is zero). Returns `[s, h, d]`.
pub fn sparse_attn(q: &[f32], kv: &[f32], idx: &[i32], sink: &[f32], scale: f32, d: usize) -> Vec<f32> {
    let h = sink.len();
    let s = q.len() / (h * d);
    let k = idx.len() / s.max(1);
    let mut out = vec![0.0; q.len()];
    for t in 0..s {
        let sel: Vec<&[f32]> = idx[t * k..(t + 1) * k]
            .iter()
            .filter(|&&j| j >= 0)
            .map(|&j| &kv[j as usize * d..(j as usize + 1) * d])
            .collect();
        for head in 0..h {
            let qh = &q[(t * h + head) * d..][..d];
            let scores: Vec<f32> = sel.iter().map(|kv| crate::linear::dot(qh, kv) * scale).collect();
            let m = scores.iter().fold(sink[head], |a, &b| a.max(b));
            let den = (sink[head] - m).exp() + scores.iter().map(|s| (s - m).exp()).sum::<f32>();
            let o = &mut out[(t * h + head) * d..][..d];
            for (sc, kv) in scores.iter().zip(&sel) {
                let p = (sc - m).exp() / den;
                o.iter_mut().zip(kv.iter()).for_each(|(o, v)| *o += p * v);
            }
        }
    }
    out
}

/// The lightning indexer's score of each key for one token: `Σ_h w[h]·relu(q[h]·key)` with
/// `q` `[h, d]`, `w` `[h]` (already scaled), `keys` `[n, d]`. Returns `[n]`.
pub fn index_scores(q: &[f32], w: &[f32], keys: &[f32], d: usize) -> Vec<f32> {
    keys.chunks(d).map(|k| w.iter().enumerate().map(|(h, wh)| wh * crate::linear::dot(&q[h * d..][..d], k).max(0.0)).sum()).collect()
}
