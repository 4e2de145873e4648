//! Per-sequence state, owned by the caller: for every layer the window ring, the compressed
//! entries, the compressor's partial block, and the indexer's entries and partial block.

use super::compressor::CompressorState;
use crate::config::Config;

#[derive(Clone, Debug)]
pub struct LayerState {
    /// Window KV ring `[window, hd]`: slot = position mod window. Starts as NaN so a read of a
    /// slot never written poisons the output.
    pub window: Vec<f32>,
    /// Compressed KV entries `[n, hd]` (ratio > 0).
    pub comp: Vec<f32>,
    pub compressor: CompressorState,
    /// Indexer keys `[n, index_hd]` (ratio 4).
    pub index_keys: Vec<f32>,
    pub index_compressor: CompressorState,
}

impl LayerState {
    pub fn new(cfg: &Config) -> LayerState {
        LayerState {
            window: vec![f32::NAN; cfg.window_size * cfg.head_dim],
            comp: Vec::new(),
            compressor: CompressorState::default(),
            index_keys: Vec::new(),
            index_compressor: CompressorState::default(),
        }
    }
}

/// One sequence of the main model: the next position and every layer's state.
#[derive(Clone, Debug)]
pub struct SequenceState {
    pub pos: usize,
    pub layers: Vec<LayerState>,
}

impl SequenceState {
    pub fn new(cfg: &Config) -> SequenceState {
        SequenceState { pos: 0, layers: (0..cfg.n_layers).map(|_| LayerState::new(cfg)).collect() }
    }
}

/// The MTP block's own state (it is a block with its own attention).
#[derive(Clone, Debug)]
pub struct MtpState {
    pub pos: usize,
    pub layer: LayerState,
}

impl MtpState {
    pub fn new(cfg: &Config) -> MtpState {
        MtpState { pos: 0, layer: LayerState::new(cfg) }
    }
}
