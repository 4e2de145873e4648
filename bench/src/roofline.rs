//! What a decoded token must move and compute, from the model config alone: the bounds every
//! measured figure is set against. Bytes are the weights as stored (FP4 experts with e8m0 per 32,
//! FP8 projections with e8m0 per 128x128, BF16 head and compressors, F32 mHC), read once per
//! step, so batch B shares the dense bytes and only the routed experts grow with B.
//!
//! Routing is taken as uniform (an upper bound on distinct experts; real routing is skewed):
//! B tokens picking k of n experts touch `n·(1-(1-k/n)^B)` distinct experts per layer.

use dsv4_reference::Config;

use crate::weights::Format;

/// Weight bytes read per decode step, by category (the rows of the CPU anchors' section 2).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct WeightBytes {
    /// Routed experts (w1, w3, w2 in FP4) over the distinct experts of each layer.
    pub routed: f64,
    /// Attention projections in FP8: wq_a, wq_b, wkv, wo_a, wo_b.
    pub attention: f64,
    /// Shared expert(s) in FP8.
    pub shared: f64,
    /// The BF16 output head `[vocab, dim]`.
    pub head: f64,
    /// Attention compressors (wkv + wgate, BF16; doubled width on overlapping ratio-4 layers).
    pub compressors: f64,
    /// Indexer of ratio-4 layers: wq_b FP8, weights_proj BF16 and its own compressor BF16.
    pub indexer: f64,
    /// mHC mixing functions, F32 `[(2+hc)·hc, hc·dim]` for attention and FFN per layer.
    pub mhc: f64,
    /// Router gate BF16 `[n_experts, dim]`.
    pub gate: f64,
}

impl WeightBytes {
    pub fn total(&self) -> f64 {
        self.routed + self.attention + self.shared + self.head + self.compressors + self.indexer + self.mhc + self.gate
    }

    /// `(name, bytes)` in table order.
    pub fn categories(&self) -> [(&'static str, f64); 8] {
        [
            ("routed", self.routed),
            ("attention", self.attention),
            ("shared", self.shared),
            ("head", self.head),
            ("compressors", self.compressors),
            ("indexer", self.indexer),
            ("mhc", self.mhc),
            ("gate", self.gate),
        ]
    }
}

/// Expected distinct experts per layer when `batch` tokens each pick `k` of `n` uniformly.
pub fn distinct_experts(n: usize, k: usize, batch: usize) -> f64 {
    if n == 0 {
        return 0.0;
    }
    n as f64 * (1.0 - (1.0 - k as f64 / n as f64).powi(batch as i32))
}

fn b(fmt: Format, out: usize, inp: usize) -> f64 {
    fmt.stored_bytes(out, inp) as f64
}

/// Bytes of one layer's attention-side weights (projections, compressors, indexer) by category:
/// `(attention, compressors, indexer)`.
fn attention_layer_bytes(cfg: &Config, layer: usize) -> (f64, f64, f64) {
    let (d, h, hd) = (cfg.dim, cfg.n_heads, cfg.head_dim);
    let og = cfg.o_groups;
    let attn = b(Format::Fp8, cfg.q_lora_rank, d)
        + b(Format::Fp8, h * hd, cfg.q_lora_rank)
        + b(Format::Fp8, hd, d)
        + b(Format::Fp8, og * cfg.o_lora_rank, h * hd / og)
        + b(Format::Fp8, d, og * cfg.o_lora_rank);
    let ratio = cfg.compress_ratio(layer);
    // a compressor's wkv and wgate; ratio 4 overlaps two blocks, so its entries are twice as wide
    let compressor = |width: usize, r: usize| {
        let w = if r == 4 { 2 * width } else { width };
        2.0 * b(Format::Bf16, w, d)
    };
    let comp = if ratio > 0 { compressor(hd, ratio) } else { 0.0 };
    let idx = if ratio == 4 {
        let (ih, ihd) = (cfg.index_n_heads, cfg.index_head_dim);
        b(Format::Fp8, ih * ihd, cfg.q_lora_rank) + b(Format::Bf16, ih, d) + compressor(ihd, ratio)
    } else {
        0.0
    };
    (attn, comp, idx)
}

/// Weight bytes read per decode step of `batch` tokens (one per sequence), by category, with
/// `experts` routed experts per token per layer (`None`: the config's `n_activated_experts`).
/// Covers the `n_layers` main layers and the head; not the MTP block(s) or the embedding rows.
pub fn bytes_per_step(cfg: &Config, batch: usize, experts: Option<usize>) -> WeightBytes {
    let k = experts.unwrap_or(cfg.n_activated_experts);
    let (d, inter) = (cfg.dim, cfg.moe_inter_dim);
    let expert = 2.0 * b(Format::Fp4, inter, d) + b(Format::Fp4, d, inter);
    let distinct = distinct_experts(cfg.n_routed_experts, k, batch.max(1));
    let hc = cfg.hc_mult;
    let mut wb = WeightBytes { head: b(Format::Bf16, cfg.vocab_size, d), ..Default::default() };
    for l in 0..cfg.n_layers {
        wb.routed += distinct * expert;
        let (a, c, i) = attention_layer_bytes(cfg, l);
        wb.attention += a;
        wb.compressors += c;
        wb.indexer += i;
        wb.shared += cfg.n_shared_experts as f64 * (2.0 * b(Format::Fp8, inter, d) + b(Format::Fp8, d, inter));
        wb.mhc += 2.0 * ((2 + hc) * hc * hc * d * 4) as f64;
        wb.gate += b(Format::Bf16, cfg.n_routed_experts, d);
    }
    wb
}

/// Weight bytes per decoded token at batch `batch`: [`bytes_per_step`] total / batch.
pub fn bytes_per_token(cfg: &Config, batch: usize, experts: Option<usize>) -> f64 {
    bytes_per_step(cfg, batch, experts).total() / batch.max(1) as f64
}

/// Parameters one token multiplies (routed experts it picks, everything dense, the head): the
/// weight half of the FLOP count.
pub fn active_params(cfg: &Config, experts: Option<usize>) -> f64 {
    let k = experts.unwrap_or(cfg.n_activated_experts);
    let (d, inter, hc) = (cfg.dim, cfg.moe_inter_dim, cfg.hc_mult);
    let (h, hd, og) = (cfg.n_heads, cfg.head_dim, cfg.o_groups);
    let mut p = (cfg.vocab_size * d) as f64;
    for l in 0..cfg.n_layers {
        let ratio = cfg.compress_ratio(l);
        p += ((k + cfg.n_shared_experts) * 3 * inter * d) as f64;
        p += (cfg.q_lora_rank * d + h * hd * cfg.q_lora_rank + hd * d + og * cfg.o_lora_rank * (h * hd / og) + d * og * cfg.o_lora_rank) as f64;
        let cw = |w: usize| 2 * (if ratio == 4 { 2 * w } else { w }) * d;
        if ratio > 0 {
            p += cw(hd) as f64;
        }
        if ratio == 4 {
            p += (cfg.index_n_heads * cfg.index_head_dim * cfg.q_lora_rank + cfg.index_n_heads * d + cw(cfg.index_head_dim)) as f64;
        }
        p += (2 * (2 + hc) * hc * hc * d + cfg.n_routed_experts * d) as f64;
    }
    p
}

/// Attention FLOPs of one token at `context` earlier tokens, over all layers: every query head
/// (MQA, one shared `head_dim` KV) scores and sums each key it attends, 4·heads·head_dim per key;
/// keys are the window plus the compressed entries (ratio 128: all `context/128`; ratio 4: the
/// indexer's top-k of `context/4`), and the indexer scores all `context/4` entries
/// (2·index_heads·index_head_dim each).
pub fn attention_flops(cfg: &Config, context: usize) -> f64 {
    let per_key = 4.0 * (cfg.n_heads * cfg.head_dim) as f64;
    let index_per_key = 2.0 * (cfg.index_n_heads * cfg.index_head_dim) as f64;
    (0..cfg.n_layers)
        .map(|l| {
            let window = context.min(cfg.window_size) as f64;
            match cfg.compress_ratio(l) {
                0 => window * per_key,
                4 => {
                    let entries = (context / 4) as f64;
                    (window + entries.min(cfg.index_topk as f64)) * per_key + entries * index_per_key
                }
                r => (window + (context / r) as f64) * per_key,
            }
        })
        .sum()
}

/// FLOPs of one decoded token at `context`: 2 per active parameter plus attention.
pub fn flops_per_token(cfg: &Config, context: usize, experts: Option<usize>) -> f64 {
    2.0 * active_params(cfg, experts) + attention_flops(cfg, context)
}

/// The tokens/s a step can reach when `bytes` must be read per token at `gb_per_s` (1e9 B/s).
pub fn bound_tokens_per_s(gb_per_s: f64, bytes_per_token: f64) -> f64 {
    if bytes_per_token <= 0.0 {
        return f64::INFINITY;
    }
    gb_per_s * 1e9 / bytes_per_token
}

/// The tokens/s allowed by compute: `gflop_per_s` over `flops_per_token`.
pub fn compute_bound_tokens_per_s(gflop_per_s: f64, flops_per_token: f64) -> f64 {
    if flops_per_token <= 0.0 {
        return f64::INFINITY;
    }
    gflop_per_s * 1e9 / flops_per_token
}

/// The binding roofline: the lower of the bandwidth and compute bounds, in tokens/s.
pub fn roofline_tokens_per_s(gb_per_s: f64, bytes_per_token: f64, gflop_per_s: f64, flops_per_token: f64) -> f64 {
    bound_tokens_per_s(gb_per_s, bytes_per_token).min(compute_bound_tokens_per_s(gflop_per_s, flops_per_token))
}
