//! The whole model: embedding, the blocks (mHC around attention and MoE), the head and the MTP
//! block. A call runs a chunk of consecutive tokens of one sequence from the position its state
//! holds: a prefill at 0, a decode step of one token, or any chunk in between.

pub mod compressor;
pub mod state;
pub mod weights;

use std::ops::Range;
use std::path::Path;
use std::sync::Arc;

use crate::checkpoint::{Checkpoint, LoadError};
use crate::config::Config;
use crate::compute::{Compute, Reference};
use crate::linear::Linear;
use crate::ops::attention::KvRows;
use crate::ops::hadamard::hadamard_inplace;
use crate::ops::mhc::{hc_head_by, hc_post, hc_pre_by};
use crate::ops::moe::{experts_ffn, gate_scores, route, topk_indices, ExpertJob};
use crate::ops::norm::{rms_norm_inplace, rms_norm_unweighted_inplace};
use crate::ops::rope::Rope;
use crate::quant::{act_quant_fp4_inplace, act_quant_fp8_inplace, ActQuant};
pub use compressor::Projected;
pub use state::{LayerState, MtpState, SequenceState};
pub use weights::Weights;
use weights::{Attention, Block, Indexer, Moe, Router};

/// The window KV and compressed KV simulate FP8 on their non-RoPE dims in blocks of 64.
pub const KV_FP8_BLOCK: usize = 64;
/// The indexer simulates FP4 in blocks of 32.
pub const INDEX_FP4_BLOCK: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("token id {id} at index {index} is outside the vocabulary (size {vocab})")]
    BadToken { id: u32, index: usize, vocab: usize },
    #[error("context overflow: position {end} exceeds the model's max_seq_len {max}")]
    ContextOverflow { end: usize, max: usize },
    #[error("empty chunk: at least one token is needed")]
    Empty,
    #[error("MTP block {0} does not exist")]
    NoMtp(usize),
}

/// Why a model folder could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Checkpoint(#[from] LoadError),
}

/// The lightning indexer's row-by-row inputs of a step (`Model::select_inputs`).
pub struct IndexerInputs {
    /// Queries `[T, nh·ihd]`, RoPE'd, Hadamard-rotated, FP4-simulated.
    q: Vec<f32>,
    /// Head weights `[T, nh]`, scaled by `ihd^-1/2 · nh^-1/2`.
    w: Vec<f32>,
    /// The index compressor's projections.
    comp: Projected,
}

/// Which rows of logits a call computes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Logits {
    All,
    Last,
    None,
}

/// Per-block observations, for bisecting against the golden `hidden.{L}` / `routes.{L}`.
#[derive(Clone, Debug, Default)]
pub struct Trace {
    /// After block L: `[T, nc, d]`.
    pub hidden: Vec<Vec<f32>>,
    /// Block L's chosen experts: `[T, n_activated]`.
    pub routes: Vec<Vec<usize>>,
}

pub struct Output {
    /// The residual streams after the last block, `[T, nc, d]` (the MTP block's input).
    pub hidden: Vec<f32>,
    /// `[rows, vocab]` as asked by `Logits`.
    pub logits: Vec<f32>,
}

pub struct Model {
    pub cfg: Config,
    pub w: Weights,
    /// Window-only layers: rope_theta, no YaRN.
    rope_plain: Rope,
    /// Compressed layers: compress_rope_theta with YaRN.
    rope_compress: Rope,
    /// Runs the linears, the attention and the indexer's scores (the reference arithmetic
    /// unless a backend plugs in its kernels).
    mm: Arc<dyn Compute>,
}

impl Model {
    /// Load a checkpoint folder in the released layout (`config.json` + safetensors).
    pub fn load(dir: &Path) -> Result<Model, OpenError> {
        let cfg = Config::from_file(dir)?;
        let ck = Checkpoint::open(dir)?;
        let w = Weights::load(&ck, &cfg)?;
        for name in ck.unused() {
            // The release may carry copies of the embedding and head under `mtp.`: ignored.
            let mtp_copy = name.starts_with("mtp.") && (name.contains("emb") || name.ends_with("head.weight"));
            if !mtp_copy {
                eprintln!("warning: {}: unknown tensor '{name}' ignored", dir.display());
            }
        }
        Ok(Model::new(cfg, w))
    }

    pub fn new(cfg: Config, w: Weights) -> Model {
        let rd = cfg.rope_head_dim;
        let rope_plain = Rope::new(rd, cfg.rope_theta, 0, 1.0, cfg.beta_fast, cfg.beta_slow);
        let rope_compress = Rope::new(rd, cfg.compress_rope_theta, cfg.original_seq_len, cfg.rope_factor, cfg.beta_fast, cfg.beta_slow);
        Model { cfg, w, rope_plain, rope_compress, mm: Arc::new(Reference) }
    }

    /// The same model with its heavy ops run by `mm` (a backend's kernels).
    pub fn with_compute(mut self, mm: Arc<dyn Compute>) -> Model {
        self.mm = mm;
        self
    }

    /// `a · b` through the model's `Compute` (the mHC mixes).
    pub fn dot(&self, a: &[f32], b: &[f32]) -> f32 {
        self.mm.dot(a, b)
    }

    /// `lin · x` through the model's `MatMul`.
    fn linear(&self, lin: &Linear, x: &[f32], aq: ActQuant) -> Vec<f32> {
        self.mm.forward(lin, x, aq)
    }

    pub fn new_state(&self) -> SequenceState {
        SequenceState::new(&self.cfg)
    }

    pub fn new_mtp_state(&self) -> MtpState {
        MtpState::new(&self.cfg)
    }

    fn check_tokens(&self, tokens: &[u32], pos: usize) -> Result<(), ModelError> {
        if tokens.is_empty() {
            return Err(ModelError::Empty);
        }
        if let Some((index, &id)) = tokens.iter().enumerate().find(|(_, &t)| t as usize >= self.cfg.vocab_size) {
            return Err(ModelError::BadToken { id, index, vocab: self.cfg.vocab_size });
        }
        let end = pos + tokens.len();
        if end > self.cfg.max_seq_len {
            return Err(ModelError::ContextOverflow { end, max: self.cfg.max_seq_len });
        }
        Ok(())
    }

    /// Run `tokens` of one sequence at positions `st.pos..`, advancing `st`.
    pub fn forward(&self, tokens: &[u32], st: &mut SequenceState, aq: ActQuant, logits: Logits, mut trace: Option<&mut Trace>) -> Result<Output, ModelError> {
        self.check_tokens(tokens, st.pos)?;
        let (d, nc) = (self.cfg.dim, self.cfg.hc_mult);
        let mut x = Vec::with_capacity(tokens.len() * nc * d);
        for &t in tokens {
            let e = self.embed(t);
            (0..nc).for_each(|_| x.extend_from_slice(&e));
        }
        for (blk, ls) in self.w.layers.iter().zip(st.layers.iter_mut()) {
            let routes = self.block(blk, &mut x, tokens, st.pos, ls, aq);
            if let Some(tr) = trace.as_deref_mut() {
                tr.hidden.push(x.clone());
                tr.routes.push(routes);
            }
        }
        st.pos += tokens.len();
        let logits = self.head_logits(&x, &self.w.hc_head, &self.w.norm, logits);
        Ok(Output { hidden: x, logits })
    }

    /// The MTP block `i` on the main model's final streams `hidden` (`[T, nc, d]`, positions
    /// `st.pos..`) and the tokens that follow each position; predicts the token after those.
    pub fn mtp(&self, i: usize, hidden: &[f32], next_tokens: &[u32], st: &mut MtpState, aq: ActQuant, logits: Logits) -> Result<Output, ModelError> {
        let m = self.w.mtp.get(i).ok_or(ModelError::NoMtp(i))?;
        self.check_tokens(next_tokens, st.pos)?;
        let (d, nc, eps) = (self.cfg.dim, self.cfg.hc_mult, self.cfg.norm_eps);
        assert_eq!(hidden.len(), next_tokens.len() * nc * d, "MTP hidden does not match its tokens");
        let mut e: Vec<f32> = next_tokens.iter().flat_map(|&t| self.embed(t)).collect();
        rms_norm_inplace(&mut e, &m.enorm, eps);
        let e = self.linear(&m.e_proj, &e, aq);
        let mut h = hidden.to_vec();
        rms_norm_inplace(&mut h, &m.hnorm, eps);
        let mut x = self.linear(&m.h_proj, &h, aq);
        for (row, xr) in x.chunks_mut(d).enumerate() {
            let er = &e[(row / nc) * d..][..d];
            xr.iter_mut().zip(er).for_each(|(a, b)| *a += b);
        }
        self.block(&m.block, &mut x, next_tokens, st.pos, &mut st.layer, aq);
        st.pos += next_tokens.len();
        let logits = self.head_logits(&x, &m.hc_head, &m.norm, logits);
        Ok(Output { hidden: x, logits })
    }

    pub fn embed(&self, token: u32) -> Vec<f32> {
        let mut e = vec![0.0; self.cfg.dim];
        self.w.embed.row(token as usize, &mut e);
        e
    }

    /// hc_head, the final norm and the head (f32) for the requested rows.
    pub fn head_logits(&self, x: &[f32], hc: &crate::ops::mhc::HcParams, norm: &[f32], which: Logits) -> Vec<f32> {
        let row = self.cfg.hc_mult * self.cfg.dim;
        let t = x.len() / row;
        let rows = match which {
            Logits::All => 0..t,
            Logits::Last => t - 1..t,
            Logits::None => return Vec::new(),
        };
        let mut y: Vec<f32> = rows.flat_map(|i| hc_head_by(&x[i * row..(i + 1) * row], hc, self.cfg.norm_eps, self.cfg.hc_eps, |a, b| self.mm.dot(a, b))).collect();
        rms_norm_inplace(&mut y, norm, self.cfg.norm_eps);
        self.linear(&self.w.head, &y, ActQuant::Off)
    }

    /// One block on the streams `x` (`[T, nc, d]`, updated in place); returns the routes.
    fn block(&self, blk: &Block, x: &mut [f32], tokens: &[u32], pos0: usize, ls: &mut LayerState, aq: ActQuant) -> Vec<usize> {
        let cfg = &self.cfg;
        let mut routes = Vec::new();
        self.sublayer(x, &blk.hc_attn, &blk.attn_norm, |y| self.attention(&blk.attn, blk.ratio, y, pos0, ls, aq));
        self.sublayer(x, &blk.hc_ffn, &blk.ffn_norm, |y| {
            let (out, r) = self.moe(&blk.ffn, y, tokens, aq);
            routes = r;
            out
        });
        debug_assert_eq!(routes.len(), tokens.len() * cfg.n_activated_experts);
        routes
    }

    /// hc_pre, RMSNorm, the sublayer `f` on all T tokens, hc_post.
    fn sublayer(&self, x: &mut [f32], hc: &crate::ops::mhc::HcParams, norm: &[f32], f: impl FnOnce(&[f32]) -> Vec<f32>) {
        let cfg = &self.cfg;
        let row = cfg.hc_mult * cfg.dim;
        let (mut y, mixes): (Vec<Vec<f32>>, Vec<_>) =
            x.chunks(row).map(|xt| hc_pre_by(xt, hc, cfg.hc_mult, cfg.hc_sinkhorn_iters, cfg.norm_eps, cfg.hc_eps, |a, b| self.mm.dot(a, b))).unzip();
        y.iter_mut().for_each(|v| rms_norm_inplace(v, norm, cfg.norm_eps));
        let out = f(&y.concat());
        for ((xt, ft), mix) in x.chunks_mut(row).zip(out.chunks(cfg.dim)).zip(&mixes) {
            let new = hc_post(ft, xt, mix);
            xt.copy_from_slice(&new);
        }
    }

    /// Attention for the T tokens `x` (`[T, d]`, normalised) at positions `pos0..`: the pieces
    /// below, in order. The projections (`attn_queries`, `attn_window_kv`, `compress_inputs`,
    /// `select_inputs`) are row by row and take each row's position, so a step that mixes
    /// sequences runs them once on all its rows; the rest reads and writes one sequence's state.
    fn attention(&self, a: &Attention, ratio: usize, x: &[f32], pos0: usize, ls: &mut LayerState, aq: ActQuant) -> Vec<f32> {
        let t = x.len() / self.cfg.dim;
        let pos: Vec<usize> = (pos0..pos0 + t).collect();
        let (q, qr) = self.attn_queries(a, ratio, x, &pos, aq);
        let kv = self.attn_window_kv(a, ratio, x, &pos, aq);
        let comp = self.compress_inputs(a, x);
        self.attn_compress(a, ratio, comp.as_ref(), 0..t, pos0, ls, aq);
        let ix = self.select_inputs(a, ratio, x, &qr, &pos, aq);
        let selected = self.attn_select(a, ratio, ix.as_ref(), 0..t, pos0, ls, aq);
        let o = self.attn_core(a, ratio, &q, &kv, &selected, pos0, ls);
        self.attn_output(a, &o, aq)
    }

    fn rope_for(&self, ratio: usize) -> &Rope {
        if ratio == 0 {
            &self.rope_plain
        } else {
            &self.rope_compress
        }
    }

    /// Queries `[T, H·hd]` (low-rank, normalised per head, RoPE on the last rd dims at each
    /// row's position `pos[t]`) and the low-rank `qr` `[T, q_lora]` the indexer shares.
    pub fn attn_queries(&self, a: &Attention, ratio: usize, x: &[f32], pos: &[usize], aq: ActQuant) -> (Vec<f32>, Vec<f32>) {
        let cfg = &self.cfg;
        let (h, hd, eps) = (cfg.n_heads, cfg.head_dim, cfg.norm_eps);
        let mut qr = self.linear(&a.wq_a, x, aq);
        rms_norm_inplace(&mut qr, &a.q_norm, eps);
        let mut q = self.linear(&a.wq_b, &qr, aq);
        rms_norm_unweighted_inplace(&mut q, hd, eps);
        assert_eq!(q.len(), pos.len() * h * hd, "attn_queries: one position per row");
        for (qt, &p) in q.chunks_mut(h * hd).zip(pos) {
            self.rope_for(ratio).apply(qt, hd, p, false);
        }
        (q, qr)
    }

    /// The rows' window KV `[T, hd]`: one shared head, RMSNorm, RoPE at `pos[t]`,
    /// FP8-simulated on the non-RoPE dims.
    pub fn attn_window_kv(&self, a: &Attention, ratio: usize, x: &[f32], pos: &[usize], aq: ActQuant) -> Vec<f32> {
        let cfg = &self.cfg;
        let (hd, rd) = (cfg.head_dim, cfg.rope_head_dim);
        let mut kv = self.linear(&a.wkv, x, aq);
        rms_norm_inplace(&mut kv, &a.kv_norm, cfg.norm_eps);
        assert_eq!(kv.len(), pos.len() * hd, "attn_window_kv: one position per row");
        for (kt, &p) in kv.chunks_mut(hd).zip(pos) {
            self.rope_for(ratio).apply(kt, hd, p, false);
            if aq.is_on() {
                act_quant_fp8_inplace(&mut kt[..hd - rd], KV_FP8_BLOCK);
            }
        }
        kv
    }

    /// The compressor's projections of the rows `x` (none in a layer without compressor).
    pub fn compress_inputs(&self, a: &Attention, x: &[f32]) -> Option<Projected> {
        a.compressor.as_ref().map(|c| c.project(&*self.mm, x))
    }

    /// Feed rows `rows` of `proj` (one sequence's consecutive tokens at positions `pos0..`) to
    /// the compressor; append the entries they complete (RMSNorm, RoPE at the block's first
    /// position, FP8 simulation) to the layer state.
    #[allow(clippy::too_many_arguments)]
    pub fn attn_compress(&self, a: &Attention, ratio: usize, proj: Option<&Projected>, rows: Range<usize>, pos0: usize, ls: &mut LayerState, aq: ActQuant) {
        let cfg = &self.cfg;
        let (hd, rd) = (cfg.head_dim, cfg.rope_head_dim);
        if let Some(c) = &a.compressor {
            let (kv, score) = proj.expect("attn_compress: a compressor layer needs compress_inputs").rows(rows);
            for (b, mut e) in c.feed_projected(kv, score, pos0, &mut ls.compressor) {
                rms_norm_inplace(&mut e, &c.norm, cfg.norm_eps);
                self.rope_for(ratio).apply(&mut e, hd, b * ratio, false);
                if aq.is_on() {
                    act_quant_fp8_inplace(&mut e[..hd - rd], KV_FP8_BLOCK);
                }
                debug_assert_eq!(ls.comp.len(), b * hd);
                ls.comp.extend_from_slice(&e);
            }
        }
    }

    /// The lightning indexer's row-by-row part for the rows `x` / `qr` at positions `pos`
    /// (ratio-4 layers only): queries (RoPE, Hadamard, FP4 simulation), head weights and its
    /// compressor's projections.
    pub fn select_inputs(&self, a: &Attention, ratio: usize, x: &[f32], qr: &[f32], pos: &[usize], aq: ActQuant) -> Option<IndexerInputs> {
        let ix = a.indexer.as_ref().filter(|_| ratio > 0)?;
        let cfg = &self.cfg;
        let (nh, ihd) = (cfg.index_n_heads, cfg.index_head_dim);
        let mut q = self.linear(&ix.wq_b, qr, aq);
        assert_eq!(q.len(), pos.len() * nh * ihd, "select_inputs: one position per row");
        for (qt, &p) in q.chunks_mut(nh * ihd).zip(pos) {
            self.rope_compress.apply(qt, ihd, p, false);
        }
        hadamard_inplace(&mut q, ihd);
        if aq.is_on() {
            act_quant_fp4_inplace(&mut q, INDEX_FP4_BLOCK);
        }
        let scale = ((ihd as f64).powf(-0.5) * (nh as f64).powf(-0.5)) as f32;
        let w = self.linear(&ix.weights_proj, x, ActQuant::Off).iter().map(|v| v * scale).collect();
        Some(IndexerInputs { q, w, comp: ix.compressor.project(&*self.mm, x) })
    }

    /// Which compressed entries each of rows `rows` (one sequence's tokens at positions
    /// `pos0..`) reads: the indexer's top-k (ratio 4, from `select_inputs`) or all complete
    /// ones (t < (p+1)/ratio).
    #[allow(clippy::too_many_arguments)]
    pub fn attn_select(&self, a: &Attention, ratio: usize, ix_in: Option<&IndexerInputs>, rows: Range<usize>, pos0: usize, ls: &mut LayerState, aq: ActQuant) -> Vec<Vec<usize>> {
        let t_len = rows.len();
        match (&a.indexer, ratio, ix_in) {
            (_, 0, _) => vec![Vec::new(); t_len],
            (Some(ix), _, Some(inp)) => self.indexer(ix, ratio, inp, rows, pos0, ls, aq),
            (Some(_), _, None) => panic!("attn_select: an indexer layer needs select_inputs"),
            (None, _, _) => (0..t_len).map(|t| (0..(pos0 + t + 1) / ratio).collect()).collect(),
        }
    }

    /// Sparse attention of the chunk's queries over the window (ring + chunk) and the selected
    /// compressed entries, then inverse RoPE; the ring keeps the chunk's last `window` KV rows.
    /// Returns `[T, H·hd]`.
    #[allow(clippy::too_many_arguments)]
    pub fn attn_core(&self, a: &Attention, ratio: usize, q: &[f32], kv: &[f32], selected: &[Vec<usize>], pos0: usize, ls: &mut LayerState) -> Vec<f32> {
        let cfg = &self.cfg;
        let (h, hd, win) = (cfg.n_heads, cfg.head_dim, cfg.window_size);
        let t_len = kv.len() / hd;
        // KV rows: the ring (positions before the chunk), the chunk, the compressed entries.
        let kv_all = KvRows::new([&ls.window[..], kv, &ls.comp[..]], hd);
        let width = win + selected.iter().map(Vec::len).max().unwrap_or(0);
        let mut idx = vec![-1i32; t_len * width];
        for (t, slots) in idx.chunks_mut(width).enumerate() {
            let p = pos0 + t;
            let window = (p + 1).saturating_sub(win)..=p;
            let rows = window.map(|pos| if pos >= pos0 { win + pos - pos0 } else { pos % win });
            let comp = selected[t].iter().map(|e| win + t_len + e);
            for (s, r) in slots.iter_mut().zip(rows.chain(comp)) {
                *s = r as i32;
            }
        }
        let scale = (hd as f64).powf(-0.5) as f32;
        let mut o = self.mm.sparse_attn(q, &kv_all, &idx, &a.attn_sink, scale, hd);
        for (t, ot) in o.chunks_mut(h * hd).enumerate() {
            self.rope_for(ratio).apply(ot, hd, pos0 + t, true);
        }
        for t in t_len.saturating_sub(win)..t_len {
            let slot = (pos0 + t) % win;
            ls.window[slot * hd..(slot + 1) * hd].copy_from_slice(&kv[t * hd..(t + 1) * hd]);
        }
        o
    }

    /// Grouped low-rank output: `z_g = wo_a_g · o_g` (no activation quantisation), `wo_b · z`.
    pub fn attn_output(&self, a: &Attention, o: &[f32], aq: ActQuant) -> Vec<f32> {
        let cfg = &self.cfg;
        let (h, hd, g, r) = (cfg.n_heads, cfg.head_dim, cfg.o_groups, cfg.o_lora_rank);
        let t_len = o.len() / (h * hd);
        let gi = h * hd / g;
        let mut z = vec![0.0; t_len * g * r];
        for grp in 0..g {
            let og: Vec<f32> = o.chunks(h * hd).flat_map(|ot| ot[grp * gi..(grp + 1) * gi].iter().copied()).collect();
            let zg = self.mm.forward_rows(&a.wo_a, &og, grp * r..(grp + 1) * r, ActQuant::Off);
            for (t, zt) in zg.chunks(r).enumerate() {
                z[t * g * r + grp * r..][..r].copy_from_slice(zt);
            }
        }
        self.linear(&a.wo_b, &z, aq)
    }

    /// The lightning indexer's per-sequence part: feed its compressor (the index keys), then
    /// for each token the top `index_topk` complete compressed entries by
    /// `Σ_h w_h·relu(q_h·k_t)`, ties to the lower entry.
    #[allow(clippy::too_many_arguments)]
    fn indexer(&self, ix: &Indexer, ratio: usize, inp: &IndexerInputs, rows: Range<usize>, pos0: usize, ls: &mut LayerState, aq: ActQuant) -> Vec<Vec<usize>> {
        let cfg = &self.cfg;
        let (nh, ihd, eps) = (cfg.index_n_heads, cfg.index_head_dim, cfg.norm_eps);
        let c = &ix.compressor;
        let (kv, score) = inp.comp.rows(rows.clone());
        for (b, mut e) in c.feed_projected(kv, score, pos0, &mut ls.index_compressor) {
            rms_norm_inplace(&mut e, &c.norm, eps);
            self.rope_compress.apply(&mut e, ihd, b * ratio, false);
            hadamard_inplace(&mut e, ihd);
            if aq.is_on() {
                act_quant_fp4_inplace(&mut e, INDEX_FP4_BLOCK);
            }
            debug_assert_eq!(ls.index_keys.len(), b * ihd);
            ls.index_keys.extend_from_slice(&e);
        }
        rows.enumerate()
            .map(|(t, row)| {
                let n = (pos0 + t + 1) / ratio;
                let scores = self.mm.index_scores(&inp.q[row * nh * ihd..][..nh * ihd], &inp.w[row * nh..][..nh], &ls.index_keys[..n * ihd], ihd);
                topk_indices(&scores, cfg.index_topk.min(n))
            })
            .collect()
    }

    /// Routed experts + shared expert for the T tokens `x`; returns the output and the routes.
    fn moe(&self, m: &Moe, x: &[f32], tokens: &[u32], aq: ActQuant) -> (Vec<f32>, Vec<usize>) {
        let (routes, weights) = self.moe_route(m, x, tokens);
        (self.moe_experts(m, x, &routes, &weights, aq), routes)
    }

    /// Routing of each token: `[T, k]` experts (hash table or biased top-k of
    /// `sqrt(softplus(gate·x))`) and their weights.
    pub fn moe_route(&self, m: &Moe, x: &[f32], tokens: &[u32]) -> (Vec<usize>, Vec<f32>) {
        let cfg = &self.cfg;
        let (k, ne) = (cfg.n_activated_experts, cfg.n_routed_experts);
        let logits = self.linear(&m.gate, x, ActQuant::Off);
        let mut routes = Vec::with_capacity(tokens.len() * k);
        let mut weights = Vec::with_capacity(tokens.len() * k);
        for (t, lt) in logits.chunks(ne).enumerate() {
            let scores = gate_scores(lt, cfg.score_func);
            let (experts, w) = match &m.router {
                Router::Hash(table) => {
                    let id = tokens[t] as usize;
                    route(&scores, None, Some(&table[id * k..(id + 1) * k]), k, cfg.score_func, cfg.route_scale)
                }
                Router::Score(bias) => route(&scores, Some(bias), None, k, cfg.score_func, cfg.route_scale),
            };
            routes.extend(experts);
            weights.extend(w);
        }
        (routes, weights)
    }

    /// Σ over each token's routed experts (SwiGLU with the clamp, times the routing weight)
    /// plus the shared expert. The tokens are grouped by expert, and every expert's matrices run
    /// in two phases (all w1/w3, then all w2: see `experts_ffn`).
    pub fn moe_experts(&self, m: &Moe, x: &[f32], routes: &[usize], weights: &[f32], aq: ActQuant) -> Vec<f32> {
        let cfg = &self.cfg;
        let (d, k) = (cfg.dim, cfg.n_activated_experts);
        let limit = (cfg.swiglu_limit > 0.0).then_some(cfg.swiglu_limit);
        // (expert, the route slots `i` it serves: token i / k), in expert order
        let groups: Vec<(usize, Vec<usize>)> = (0..m.experts.len())
            .map(|e| (e, (0..routes.len()).filter(|&i| routes[i] == e).collect::<Vec<_>>()))
            .filter(|(_, hits)| !hits.is_empty())
            .collect();
        let inputs: Vec<(Vec<f32>, Vec<f32>)> = groups
            .iter()
            .map(|(_, hits)| {
                let xe = hits.iter().flat_map(|&i| x[(i / k) * d..(i / k + 1) * d].iter().copied()).collect();
                (xe, hits.iter().map(|&i| weights[i]).collect())
            })
            .collect();
        let mut jobs: Vec<ExpertJob> =
            groups.iter().zip(&inputs).map(|((e, _), (xe, we))| (&m.experts[*e], &xe[..], Some(&we[..]), limit)).collect();
        jobs.push((&m.shared, x, None, None));
        let mut outs = experts_ffn(&*self.mm, &jobs, aq);
        let shared = outs.pop().expect("the shared expert's output");
        // the routed outputs summed in expert order, then the shared expert's added
        let mut y = vec![0.0; x.len()];
        for ((_, hits), out) in groups.iter().zip(&outs) {
            for (&i, o) in hits.iter().zip(out.chunks(d)) {
                y[(i / k) * d..(i / k + 1) * d].iter_mut().zip(o).for_each(|(a, b)| *a += b);
            }
        }
        y.iter_mut().zip(&shared).for_each(|(a, b)| *a += b);
        y
    }
}
