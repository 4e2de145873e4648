//! The CPU backend built on `dsv4-reference`: each op is the reference op, run per sequence
//! chunk where it reads or writes sequence state, with the model's linears (the bytes of a
//! step) run by the engine's kernels (`crate::cpu_kernels`) unless the reference is asked for.

use std::sync::Arc;

use dsv4_reference::compute::{Compute, Reference};
use dsv4_reference::model::LayerState;
use dsv4_reference::ops::mhc::{hc_post, hc_pre_by, HcMix};
use dsv4_reference::ops::norm::rms_norm_inplace;
use dsv4_reference::{ActQuant, Config, Logits, Model, SequenceState};

use super::{Backend, Chunk, Layer, Slot, Sublayer};
use crate::cpu_kernels::{Fp4Math, Kernels, Level};

/// Row-major `[rows, cols]` f32 activations.
#[derive(Clone, Debug, PartialEq)]
pub struct CpuAct {
    pub data: Vec<f32>,
    pub cols: usize,
}

impl CpuAct {
    fn rows(&self, r: std::ops::Range<usize>) -> &[f32] {
        &self.data[r.start * self.cols..r.end * self.cols]
    }

    fn rows_count(&self) -> usize {
        self.data.len().checked_div(self.cols).unwrap_or(0)
    }
}

/// The position of each of the step's `rows`: chunk `c`'s rows are its sequence's positions
/// `c.pos0..`.
fn positions(chunks: &[Chunk], rows: usize) -> Vec<usize> {
    let mut pos = vec![usize::MAX; rows];
    for c in chunks {
        for (i, r) in c.rows.clone().enumerate() {
            pos[r] = c.pos0 + i;
        }
    }
    assert!(pos.iter().all(|&p| p != usize::MAX), "the chunks do not cover every row of the step");
    pos
}

fn layer_state(states: &mut [Option<SequenceState>], slot: Slot, layer: Layer) -> &mut LayerState {
    let st = states.get_mut(slot).and_then(Option::as_mut).unwrap_or_else(|| panic!("state slot {slot} is not allocated"));
    &mut st.layers[layer.0]
}

/// Who runs the CPU backend's linears (and attention, indexer scores).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CpuKernels {
    /// The reference's plain loops (slow; the oracle).
    Reference,
    /// The engine's kernels at `level`; FP4 weights with `fp4` arithmetic (exact by default).
    Fast { level: Level, fp4: Fp4Math },
}

impl CpuKernels {
    /// The best kernels this CPU has, exact arithmetic.
    pub fn detect() -> CpuKernels {
        CpuKernels::Fast { level: Level::detect(), fp4: Fp4Math::Exact }
    }

    /// `model` with its heavy ops run by these kernels.
    pub fn apply(self, model: Model) -> Model {
        match self {
            CpuKernels::Reference => model.with_compute(Arc::new(Reference)),
            CpuKernels::Fast { level, fp4 } => model.with_compute(Arc::new(Kernels { level, fp4 })),
        }
    }

    /// The spelling [`CpuKernels::parse`] reads back: `reference`, `avx512`, `avx2-int8`, ...
    pub fn name(self) -> String {
        match self {
            CpuKernels::Reference => "reference".into(),
            CpuKernels::Fast { level, fp4 } => {
                let l = format!("{level:?}").to_ascii_lowercase();
                if fp4 == Fp4Math::Int8 {
                    l + "-int8"
                } else {
                    l
                }
            }
        }
    }

    /// `auto`, `reference`, `scalar`, `avx2`, `avx512`, `amx`, each level optionally with `-int8` (the
    /// faster, approximate FP4 path; `int8` alone is `auto-int8`). A level this CPU lacks is an
    /// error.
    pub fn parse(s: &str) -> Result<CpuKernels, String> {
        let lower = s.to_ascii_lowercase();
        if lower == "reference" || lower == "ref" {
            return Ok(CpuKernels::Reference);
        }
        let (name, fp4) = match lower.strip_suffix("-int8") {
            Some(n) => (n, Fp4Math::Int8),
            None if lower == "int8" => ("auto", Fp4Math::Int8),
            None => (lower.as_str(), Fp4Math::Exact),
        };
        let level = match name {
            "auto" => Level::detect(),
            other => match Level::parse(other) {
                Some(l) if l.is_supported() => l,
                Some(l) => return Err(format!("CPU kernels '{s}': this CPU lacks {l:?} (available: {:?})", Level::available())),
                None => return Err(format!("unknown CPU kernels '{s}' (expected auto, reference, scalar, avx2, avx512 or amx, optionally with -int8)")),
            },
        };
        Ok(CpuKernels::Fast { level, fp4 })
    }
}

pub struct CpuBackend {
    model: Model,
    kernels: CpuKernels,
    states: Vec<Option<SequenceState>>,
}

impl CpuBackend {
    /// The model with the best kernels this CPU has.
    pub fn new(model: Model) -> CpuBackend {
        CpuBackend::with_kernels(model, CpuKernels::detect())
    }

    pub fn with_kernels(model: Model, kernels: CpuKernels) -> CpuBackend {
        CpuBackend { model: kernels.apply(model), kernels, states: Vec::new() }
    }

    /// The model with its heavy ops run by `mm` (e.g. a wrapper that times `kernels`' ops:
    /// `bench/examples/op_profile.rs`); `kernels` names them.
    pub fn with_compute(model: Model, kernels: CpuKernels, mm: Arc<dyn Compute>) -> CpuBackend {
        CpuBackend { model: model.with_compute(mm), kernels, states: Vec::new() }
    }

    pub fn kernels(&self) -> CpuKernels {
        self.kernels
    }

    pub fn model(&self) -> &Model {
        &self.model
    }
}

impl Backend for CpuBackend {
    type Act = CpuAct;
    type Selection = Vec<Vec<usize>>;
    type Routes = (Vec<usize>, Vec<f32>);
    type Snapshot = SequenceState;

    fn config(&self) -> &Config {
        &self.model.cfg
    }

    fn name(&self) -> String {
        let k = match self.kernels {
            CpuKernels::Reference => "reference".to_string(),
            CpuKernels::Fast { level, fp4: Fp4Math::Exact } => format!("{level:?} kernels"),
            CpuKernels::Fast { level, fp4: Fp4Math::Int8 } => format!("{level:?} kernels, int8 FP4"),
        };
        format!("cpu ({k}, {} threads)", crate::cpu_kernels::pool::threads())
    }

    fn download(&self, x: &CpuAct) -> Vec<f32> {
        x.data.clone()
    }

    fn state_reset(&mut self, slot: Slot) {
        if self.states.len() <= slot {
            self.states.resize_with(slot + 1, || None);
        }
        self.states[slot] = Some(self.model.new_state());
    }

    fn state_release(&mut self, slot: Slot) {
        if let Some(s) = self.states.get_mut(slot) {
            *s = None;
        }
    }

    fn state_snapshot(&self, slot: Slot) -> SequenceState {
        self.states[slot].clone().expect("snapshot of an empty slot")
    }

    fn state_restore(&mut self, slot: Slot, snap: &SequenceState) {
        self.state_reset(slot);
        self.states[slot] = Some(snap.clone());
    }

    fn state_load(&mut self, slot: Slot, st: &SequenceState) {
        assert_eq!(st.layers.len(), self.model.cfg.n_layers, "state_load: a state of {} layers for a model of {}", st.layers.len(), self.model.cfg.n_layers);
        self.state_restore(slot, st);
    }

    fn snapshot_bytes(snap: &SequenceState) -> usize {
        let rows = |v: &Vec<Vec<f32>>| v.iter().map(Vec::len).sum::<usize>();
        let floats: usize = snap
            .layers
            .iter()
            .map(|l| {
                let c = |s: &dsv4_reference::model::compressor::CompressorState| rows(&s.kv) + rows(&s.score) + rows(&s.prev_kv) + rows(&s.prev_score);
                l.window.len() + l.comp.len() + l.index_keys.len() + c(&l.compressor) + c(&l.index_compressor)
            })
            .sum();
        floats * 4 + std::mem::size_of::<SequenceState>()
    }

    fn embed(&self, tokens: &[u32]) -> CpuAct {
        let (d, nc) = (self.model.cfg.dim, self.model.cfg.hc_mult);
        let mut data = Vec::with_capacity(tokens.len() * nc * d);
        for &t in tokens {
            let e = self.model.embed(t);
            (0..nc).for_each(|_| data.extend_from_slice(&e));
        }
        CpuAct { data, cols: nc * d }
    }

    fn hc_pre_norm(&self, x: &CpuAct, layer: Layer, sub: Sublayer) -> (CpuAct, CpuAct) {
        let cfg = &self.model.cfg;
        let blk = &self.model.w.layers[layer.0];
        let (hc, norm) = match sub {
            Sublayer::Attn => (&blk.hc_attn, &blk.attn_norm),
            Sublayer::Ffn => (&blk.hc_ffn, &blk.ffn_norm),
        };
        let nc = cfg.hc_mult;
        let (mut y, mut mix) = (Vec::new(), Vec::new());
        for xt in x.data.chunks(x.cols) {
            let (yt, m) = hc_pre_by(xt, hc, nc, cfg.hc_sinkhorn_iters, cfg.norm_eps, cfg.hc_eps, |a, b| self.model.dot(a, b));
            y.extend(yt);
            mix.extend(m.post);
            mix.extend(m.comb);
        }
        rms_norm_inplace(&mut y, norm, cfg.norm_eps);
        (CpuAct { data: y, cols: cfg.dim }, CpuAct { data: mix, cols: nc + nc * nc })
    }

    fn hc_post(&self, f: &CpuAct, x: &CpuAct, mix: &CpuAct) -> CpuAct {
        let nc = self.model.cfg.hc_mult;
        let mut data = Vec::with_capacity(x.data.len());
        for ((ft, xt), mt) in f.data.chunks(f.cols).zip(x.data.chunks(x.cols)).zip(mix.data.chunks(mix.cols)) {
            let m = HcMix { post: mt[..nc].to_vec(), comb: mt[nc..].to_vec() };
            data.extend(hc_post(ft, xt, &m));
        }
        CpuAct { data, cols: x.cols }
    }

    // The projections run once on all rows of the step (one weight pass for every sequence),
    // each row at its own position; only the state updates go chunk by chunk.
    fn attn_queries(&self, layer: Layer, x: &CpuAct, chunks: &[Chunk], aq: ActQuant) -> (CpuAct, CpuAct) {
        let blk = &self.model.w.layers[layer.0];
        let cfg = &self.model.cfg;
        let (q, qr) = self.model.attn_queries(&blk.attn, blk.ratio, &x.data, &positions(chunks, x.rows_count()), aq);
        (CpuAct { data: q, cols: cfg.n_heads * cfg.head_dim }, CpuAct { data: qr, cols: cfg.q_lora_rank })
    }

    fn attn_window_kv(&self, layer: Layer, x: &CpuAct, chunks: &[Chunk], aq: ActQuant) -> CpuAct {
        let blk = &self.model.w.layers[layer.0];
        CpuAct { data: self.model.attn_window_kv(&blk.attn, blk.ratio, &x.data, &positions(chunks, x.rows_count()), aq), cols: self.model.cfg.head_dim }
    }

    fn attn_compress(&mut self, layer: Layer, x: &CpuAct, chunks: &[Chunk], aq: ActQuant) {
        let (model, states) = (&self.model, &mut self.states);
        let blk = &model.w.layers[layer.0];
        let proj = model.compress_inputs(&blk.attn, &x.data);
        for c in chunks {
            model.attn_compress(&blk.attn, blk.ratio, proj.as_ref(), c.rows.clone(), c.pos0, layer_state(states, c.slot, layer), aq);
        }
    }

    fn attn_select(&mut self, layer: Layer, x: &CpuAct, qr: &CpuAct, chunks: &[Chunk], aq: ActQuant) -> Vec<Vec<usize>> {
        let mut sel = Vec::new();
        let (model, states) = (&self.model, &mut self.states);
        let blk = &model.w.layers[layer.0];
        let inputs = model.select_inputs(&blk.attn, blk.ratio, &x.data, &qr.data, &positions(chunks, x.rows_count()), aq);
        for c in chunks {
            let ls = layer_state(states, c.slot, layer);
            sel.extend(model.attn_select(&blk.attn, blk.ratio, inputs.as_ref(), c.rows.clone(), c.pos0, ls, aq));
        }
        sel
    }

    fn attn_core(&mut self, layer: Layer, q: &CpuAct, kv: &CpuAct, sel: &Vec<Vec<usize>>, chunks: &[Chunk]) -> CpuAct {
        let mut o = Vec::new();
        let (model, states) = (&self.model, &mut self.states);
        let blk = &model.w.layers[layer.0];
        for c in chunks {
            let ls = layer_state(states, c.slot, layer);
            o.extend(model.attn_core(&blk.attn, blk.ratio, q.rows(c.rows.clone()), kv.rows(c.rows.clone()), &sel[c.rows.clone()], c.pos0, ls));
        }
        CpuAct { data: o, cols: q.cols }
    }

    fn attn_output(&self, layer: Layer, o: &CpuAct, aq: ActQuant) -> CpuAct {
        let blk = &self.model.w.layers[layer.0];
        CpuAct { data: self.model.attn_output(&blk.attn, &o.data, aq), cols: self.model.cfg.dim }
    }

    fn moe_route(&self, layer: Layer, x: &CpuAct, tokens: &[u32]) -> (Vec<usize>, Vec<f32>) {
        self.model.moe_route(&self.model.w.layers[layer.0].ffn, &x.data, tokens)
    }

    fn moe_experts(&self, layer: Layer, x: &CpuAct, routes: &(Vec<usize>, Vec<f32>), aq: ActQuant) -> CpuAct {
        let m = &self.model.w.layers[layer.0].ffn;
        CpuAct { data: self.model.moe_experts(m, &x.data, &routes.0, &routes.1, aq), cols: x.cols }
    }

    fn logits(&self, x: &CpuAct, rows: &[usize]) -> Vec<f32> {
        let picked: Vec<f32> = rows.iter().flat_map(|&r| x.rows(r..r + 1).iter().copied()).collect();
        if picked.is_empty() {
            return Vec::new();
        }
        self.model.head_logits(&picked, &self.model.w.hc_head, &self.model.w.norm, Logits::All)
    }
}
