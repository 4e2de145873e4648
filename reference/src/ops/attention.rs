//! Sparse attention over one shared latent KV head (K = V), with a per-head attention sink.

/// Up to three row-major `[n_i, d]` tables read as one `[Σ n_i, d]` table without copying them
/// together: attention's window ring, the chunk's own rows and the compressed cache (at 64K
/// context the cache is ~32 MB a layer; a concatenated copy per token costs more than the math).
#[derive(Clone, Copy, Debug)]
pub struct KvRows<'a> {
    parts: [&'a [f32]; 3],
    d: usize,
}

impl<'a> KvRows<'a> {
    pub fn new(parts: [&'a [f32]; 3], d: usize) -> KvRows<'a> {
        assert!(parts.iter().all(|p| p.len() % d.max(1) == 0), "KvRows: a part is not whole rows of {d}");
        KvRows { parts, d }
    }

    /// One table.
    pub fn one(kv: &'a [f32], d: usize) -> KvRows<'a> {
        KvRows::new([kv, &[], &[]], d)
    }

    /// Row `j` of the concatenation.
    pub fn row(&self, j: usize) -> &'a [f32] {
        let mut j = j;
        for p in self.parts {
            let n = p.len() / self.d;
            if j < n {
                return &p[j * self.d..(j + 1) * self.d];
            }
            j -= n;
        }
        panic!("KvRows: row out of range")
    }
}

/// `q` `[s, h, d]`, `kv` `[n, d]`, `idx` `[s, k]` (entries of `kv`; -1 = unused slot),
/// `sink` `[h]`. For each query and head: `s_j = q·kv[idx_j]·scale`,
/// `o = Σ softmax(s)_j·kv[idx_j]` where the softmax denominator also holds `exp(sink)`
/// (a logit whose value vector is zero). Returns `[s, h, d]`.
pub fn sparse_attn(q: &[f32], kv: &[f32], idx: &[i32], sink: &[f32], scale: f32, d: usize) -> Vec<f32> {
    sparse_attn_rows(q, &KvRows::one(kv, d), idx, sink, scale, d)
}

/// `sparse_attn` over the rows of `kv`.
pub fn sparse_attn_rows(q: &[f32], kv: &KvRows, idx: &[i32], sink: &[f32], scale: f32, d: usize) -> Vec<f32> {
    let h = sink.len();
    let s = q.len() / (h * d);
    let k = idx.len() / s.max(1);
    let mut out = vec![0.0; q.len()];
    for t in 0..s {
        let sel: Vec<&[f32]> = idx[t * k..(t + 1) * k].iter().filter(|&&j| j >= 0).map(|&j| kv.row(j as usize)).collect();
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
