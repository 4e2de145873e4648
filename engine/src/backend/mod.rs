//! The backend: every op of a model step, at the granularity of the kernels (quantised linears
//! inside the attention and expert ops, routing, the compressor, the indexer, sparse attention,
//! mHC, norms/RoPE, the head) plus the per-sequence state it keeps in its own memory. The
//! engine's model step (`crate::model_step`) is written against this trait only.

pub mod cpu;
pub mod gpu;

use std::ops::Range;

use dsv4_reference::{ActQuant, Config, SequenceState};

/// A state slot of the pool: one sequence's per-layer state lives in one slot.
pub type Slot = usize;

/// One sequence's part of a step: consecutive rows `rows` of the step at positions
/// `pos0..pos0 + rows.len()`, read and written against the state in `slot`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chunk {
    pub slot: Slot,
    pub pos0: usize,
    pub rows: Range<usize>,
}

/// Which block's weights an op uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layer(pub usize);

/// The two mHC-wrapped sublayers of a block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sublayer {
    Attn,
    Ffn,
}

pub trait Backend: Send {
    /// Activations `[rows, cols]` in the backend's memory.
    type Act: Send;
    /// The compressed entries each row attends (indexer output).
    type Selection: Send;
    /// Each row's experts and routing weights.
    type Routes: Send;
    /// A copy of one slot's state (the prefix cache holds these).
    type Snapshot: Send + Sync;

    fn config(&self) -> &Config;
    /// For logs: "cpu (reference)", "cuda (H100)", ...
    fn name(&self) -> String;
    fn download(&self, x: &Self::Act) -> Vec<f32>;

    // The state pool's storage.
    /// A fresh, empty state in `slot` (position 0).
    fn state_reset(&mut self, slot: Slot);
    fn state_release(&mut self, slot: Slot);
    fn state_snapshot(&self, slot: Slot) -> Self::Snapshot;
    fn state_restore(&mut self, slot: Slot, snap: &Self::Snapshot);
    /// Bytes a snapshot holds (for the prefix cache's budget).
    fn snapshot_bytes(snap: &Self::Snapshot) -> usize;
    /// A host state in the reference layout into `slot` (the benchmark's synthetic contexts;
    /// moving a sequence between backends).
    fn state_load(&mut self, slot: Slot, st: &SequenceState);

    // Embedding, mHC and norms.
    /// `[T, nc·d]`: each token's embedding copied into the `nc` streams.
    fn embed(&self, tokens: &[u32]) -> Self::Act;
    /// hc_pre then the sublayer's RMSNorm: the sublayer input `[T, d]` and the mix for hc_post.
    fn hc_pre_norm(&self, x: &Self::Act, layer: Layer, sub: Sublayer) -> (Self::Act, Self::Act);
    fn hc_post(&self, f: &Self::Act, x: &Self::Act, mix: &Self::Act) -> Self::Act;

    // Attention.
    /// Queries `[T, H·hd]` (RoPE at each row's position) and the low-rank `qr`.
    fn attn_queries(&self, layer: Layer, x: &Self::Act, chunks: &[Chunk], aq: ActQuant) -> (Self::Act, Self::Act);
    /// Window KV `[T, hd]` of the step's rows.
    fn attn_window_kv(&self, layer: Layer, x: &Self::Act, chunks: &[Chunk], aq: ActQuant) -> Self::Act;
    /// Compressor: appends the entries the rows complete to each slot's state.
    fn attn_compress(&mut self, layer: Layer, x: &Self::Act, chunks: &[Chunk], aq: ActQuant);
    /// Indexer top-k (ratio 4), all complete entries (other ratios), none (window-only layers).
    fn attn_select(&mut self, layer: Layer, x: &Self::Act, qr: &Self::Act, chunks: &[Chunk], aq: ActQuant) -> Self::Selection;
    /// Sparse attention with the sink over window + selected entries, inverse RoPE; writes
    /// the rows' KV into each slot's window ring.
    fn attn_core(&mut self, layer: Layer, q: &Self::Act, kv: &Self::Act, sel: &Self::Selection, chunks: &[Chunk]) -> Self::Act;
    /// Grouped low-rank output projection `[T, d]`.
    fn attn_output(&self, layer: Layer, o: &Self::Act, aq: ActQuant) -> Self::Act;

    // Mixture of experts.
    fn moe_route(&self, layer: Layer, x: &Self::Act, tokens: &[u32]) -> Self::Routes;
    /// Grouped routed experts + the shared expert `[T, d]`.
    fn moe_experts(&self, layer: Layer, x: &Self::Act, routes: &Self::Routes, aq: ActQuant) -> Self::Act;

    /// hc_head, final norm and head for the listed rows: logits `[rows.len(), vocab]` on the host
    /// (sampling runs on the host).
    fn logits(&self, x: &Self::Act, rows: &[usize]) -> Vec<f32>;
}
