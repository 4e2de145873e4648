//! One model step over a batch that mixes sequences: decode tokens of some, prompt chunks of
//! others. Row-wise ops run on all rows at once; ops that touch sequence state run per chunk
//! inside the backend. Written against `Backend` only.

use dsv4_reference::ActQuant;

use crate::backend::{Backend, Chunk, Layer, Sublayer};

/// Run `tokens` (the rows of the step; `chunks` say which sequence and position each row is)
/// through every block; returns the logits of `logit_rows`, `[logit_rows.len(), vocab]`.
pub fn forward<B: Backend>(b: &mut B, tokens: &[u32], chunks: &[Chunk], aq: ActQuant, logit_rows: &[usize]) -> Vec<f32> {
    let x = forward_hidden(b, tokens, chunks, aq);
    b.logits(&x, logit_rows)
}

/// The residual streams `[T, nc·d]` after the last block (the MTP block's input).
pub fn forward_hidden<B: Backend>(b: &mut B, tokens: &[u32], chunks: &[Chunk], aq: ActQuant) -> B::Act {
    debug_assert_eq!(chunks.iter().map(|c| c.rows.len()).sum::<usize>(), tokens.len());
    let mut x = b.embed(tokens);
    for l in 0..b.config().n_layers {
        x = block(b, x, Layer(l), tokens, chunks, aq);
    }
    x
}

/// One block: the attention sublayer then the MoE sublayer, each wrapped in mHC.
pub fn block<B: Backend>(b: &mut B, x: B::Act, layer: Layer, tokens: &[u32], chunks: &[Chunk], aq: ActQuant) -> B::Act {
    // Attention sublayer.
    let (y, mix) = b.hc_pre_norm(&x, layer, Sublayer::Attn);
    let (q, qr) = b.attn_queries(layer, &y, chunks, aq);
    let kv = b.attn_window_kv(layer, &y, chunks, aq);
    b.attn_compress(layer, &y, chunks, aq);
    let sel = b.attn_select(layer, &y, &qr, chunks, aq);
    let o = b.attn_core(layer, &q, &kv, &sel, chunks);
    let f = b.attn_output(layer, &o, aq);
    let x = b.hc_post(&f, &x, &mix);
    // MoE sublayer.
    let (y, mix) = b.hc_pre_norm(&x, layer, Sublayer::Ffn);
    let routes = b.moe_route(layer, &y, tokens);
    let f = b.moe_experts(layer, &y, &routes, aq);
    b.hc_post(&f, &x, &mix)
}
