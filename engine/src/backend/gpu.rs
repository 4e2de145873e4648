//! The CUDA backend: every op of a model step as our own kernels (`dsv4-kernels`), launched
//! through a `Launcher` — cudarc on an H100/H200, or the PTX emulator (`--device emu`), fed by
//! the same embedded PTX. Weights live on the device in their stored precision; so does every
//! sequence's state (window ring, compressed entries, compressor and indexer state).
//!
//! Each op mirrors `dsv4_reference::Model`'s method of the same name, composed of the kernel
//! families' wrappers; ops that read or write sequence state run per chunk.
//!
//! A device error inside a step (an emulator fault, a lost GPU) is a bug or a dead device, not
//! bad input: the trait has no error path, so it panics with the op and the device's message.

use dsv4_kernels::ops::attention::{attn_core_chunk, Selection};
use dsv4_kernels::ops::attn_state::{DevLayerSnapshot, DevLayerState};
use dsv4_kernels::ops::compressor::{compress_chunk, completed_blocks, DevCompressor};
use dsv4_kernels::ops::copy::{add_rows_broadcast, copy_strided, Block2d};
use dsv4_kernels::ops::embed::{embed, DevEmbed};
use dsv4_kernels::ops::indexer::{hadamard, indexer_select, IndexShape};
use dsv4_kernels::ops::linear::{linear, linear_rows, DevLinear};
use dsv4_kernels::ops::mhc::{hc_head_norm, hc_post, hc_pre_norm, mix_cols, DevHc};
use dsv4_kernels::ops::moe::{moe_experts, moe_route, DevMoe, MoeParams, Routes};
use dsv4_kernels::ops::norm::{rms_norm, rms_norm_inplace, DevNorm};
use dsv4_kernels::ops::quant::{act_quant_fp4_inplace, act_quant_fp8_inplace};
use dsv4_kernels::ops::rope::{norm_rope_strided, positions_for_chunks, rope_apply, DevRope, Positions};
use dsv4_kernels::{Buf, Gpu, GpuError};
use dsv4_reference::model::weights::{Attention, Block, Indexer, Mtp};
use dsv4_reference::model::{INDEX_FP4_BLOCK, KV_FP8_BLOCK};
use dsv4_reference::ops::rope::Rope;
use dsv4_reference::{ActQuant, Config, Model, SequenceState};

use super::{Backend, Chunk, Layer, Slot, Sublayer};


/// Activations `[rows, cols]` f32 on the device.
pub struct GpuAct {
    pub buf: Buf,
    pub rows: usize,
    pub cols: usize,
}

/// The compressed entries each row attends.
pub enum GpuSelection {
    None,
    All { ratio: usize },
    /// i32 `[rows, width]`, -1 = unused.
    Indices { buf: Buf, width: usize },
}

impl GpuSelection {
    fn as_sel(&self) -> Selection<'_> {
        match self {
            GpuSelection::None => Selection::None,
            GpuSelection::All { ratio } => Selection::All { ratio: *ratio },
            GpuSelection::Indices { buf, width } => Selection::Indices { buf, width: *width },
        }
    }
}

struct DevIndexer {
    wq_b: DevLinear,
    weights_proj: DevLinear,
    wkv: DevLinear,
    wgate: DevLinear,
    compressor: DevCompressor,
}

struct DevAttention {
    wq_a: DevLinear,
    q_norm: DevNorm,
    wq_b: DevLinear,
    wkv: DevLinear,
    kv_norm: DevNorm,
    wo_a: DevLinear,
    wo_b: DevLinear,
    sink: Buf,
    /// The compressor's projections and small weights.
    compressor: Option<(DevLinear, DevLinear, DevCompressor)>,
    indexer: Option<DevIndexer>,
}

/// The MTP block's own weights; its block is `layers[cfg.n_layers]`.
struct DevMtp {
    e_proj: DevLinear,
    h_proj: DevLinear,
    enorm: DevNorm,
    hnorm: DevNorm,
    norm: DevNorm,
    hc_head: DevHc,
}

struct DevBlock {
    ratio: usize,
    attn_norm: DevNorm,
    ffn_norm: DevNorm,
    hc_attn: DevHc,
    hc_ffn: DevHc,
    attn: DevAttention,
    ffn: DevMoe,
}

pub struct GpuBackend {
    gpu: Gpu,
    cfg: Config,
    embed: DevEmbed,
    head: DevLinear,
    norm: DevNorm,
    hc_head: DevHc,
    /// The main blocks, then the MTP block (when the checkpoint has one).
    layers: Vec<DevBlock>,
    mtp: Option<DevMtp>,
    /// Window-only layers: rope_theta, no YaRN.
    rope_plain: DevRope,
    /// Compressed layers and the indexer: compress_rope_theta with YaRN.
    rope_compress: DevRope,
    moe: MoeParams,
    states: Vec<Option<Vec<DevLayerState>>>,
}

/// A slot's state copied to the host (prefix cache).
pub struct GpuSnapshot {
    layers: Vec<DevLayerSnapshot>,
}

fn ok<T>(op: &str, r: Result<T, GpuError>) -> T {
    r.unwrap_or_else(|e| panic!("device error in {op}: {e}"))
}

impl DevAttention {
    fn upload(gpu: &Gpu, a: &Attention, eps: f32) -> Result<DevAttention, GpuError> {
        let compressor = match &a.compressor {
            Some(c) => Some((DevLinear::upload(gpu, &c.wkv)?, DevLinear::upload(gpu, &c.wgate)?, DevCompressor::from_reference(gpu, c, eps)?)),
            None => None,
        };
        let indexer = match &a.indexer {
            Some(ix) => Some(DevIndexer::upload(gpu, ix, eps)?),
            None => None,
        };
        Ok(DevAttention {
            wq_a: DevLinear::upload(gpu, &a.wq_a)?,
            q_norm: DevNorm::upload(gpu, &a.q_norm)?,
            wq_b: DevLinear::upload(gpu, &a.wq_b)?,
            wkv: DevLinear::upload(gpu, &a.wkv)?,
            kv_norm: DevNorm::upload(gpu, &a.kv_norm)?,
            wo_a: DevLinear::upload(gpu, &a.wo_a)?,
            wo_b: DevLinear::upload(gpu, &a.wo_b)?,
            sink: gpu.upload_f32(&a.attn_sink)?,
            compressor,
            indexer,
        })
    }
}

impl DevIndexer {
    fn upload(gpu: &Gpu, ix: &Indexer, eps: f32) -> Result<DevIndexer, GpuError> {
        Ok(DevIndexer {
            wq_b: DevLinear::upload(gpu, &ix.wq_b)?,
            weights_proj: DevLinear::upload(gpu, &ix.weights_proj)?,
            wkv: DevLinear::upload(gpu, &ix.compressor.wkv)?,
            wgate: DevLinear::upload(gpu, &ix.compressor.wgate)?,
            compressor: DevCompressor::from_reference(gpu, &ix.compressor, eps)?,
        })
    }
}

impl DevBlock {
    fn upload(gpu: &Gpu, b: &Block, cfg: &Config) -> Result<DevBlock, GpuError> {
        let nc = cfg.hc_mult;
        Ok(DevBlock {
            ratio: b.ratio,
            attn_norm: DevNorm::upload(gpu, &b.attn_norm)?,
            ffn_norm: DevNorm::upload(gpu, &b.ffn_norm)?,
            hc_attn: DevHc::upload(gpu, &b.hc_attn, nc)?,
            hc_ffn: DevHc::upload(gpu, &b.hc_ffn, nc)?,
            attn: DevAttention::upload(gpu, &b.attn, cfg.norm_eps)?,
            ffn: DevMoe::upload(gpu, &b.ffn)?,
        })
    }
}

impl DevMtp {
    /// Upload the MTP block's weights; its block goes to the end of `layers`.
    fn upload(gpu: &Gpu, m: &Mtp, cfg: &Config, layers: &mut Vec<DevBlock>) -> Result<DevMtp, GpuError> {
        layers.push(DevBlock::upload(gpu, &m.block, cfg).map_err(|e| GpuError(format!("MTP block: {e}")))?);
        Ok(DevMtp {
            e_proj: DevLinear::upload(gpu, &m.e_proj)?,
            h_proj: DevLinear::upload(gpu, &m.h_proj)?,
            enorm: DevNorm::upload(gpu, &m.enorm)?,
            hnorm: DevNorm::upload(gpu, &m.hnorm)?,
            norm: DevNorm::upload(gpu, &m.norm)?,
            hc_head: DevHc::upload(gpu, &m.hc_head, cfg.hc_mult)?,
        })
    }
}

impl GpuBackend {
    /// Upload `model`'s weights to `gpu`, layer by layer (a progress line per layer on a
    /// terminal).
    pub fn new(gpu: Gpu, model: Model) -> Result<GpuBackend, GpuError> {
        let cfg = model.cfg.clone();
        let w = &model.w;
        let rd = cfg.rope_head_dim;
        let rope_plain = Rope::new(rd, cfg.rope_theta, 0, 1.0, cfg.beta_fast, cfg.beta_slow);
        let rope_compress = Rope::new(rd, cfg.compress_rope_theta, cfg.original_seq_len, cfg.rope_factor, cfg.beta_fast, cfg.beta_slow);
        let mut layers = Vec::with_capacity(w.layers.len());
        let show = std::io::IsTerminal::is_terminal(&std::io::stderr());
        for (i, b) in w.layers.iter().enumerate() {
            if show {
                eprint!("\ruploading weights to {}: layer {}/{}", gpu.name(), i + 1, w.layers.len());
            }
            layers.push(DevBlock::upload(&gpu, b, &cfg).map_err(|e| GpuError(format!("layer {i}: {e}")))?);
        }
        let mtp = match w.mtp.first() {
            Some(m) => Some(DevMtp::upload(&gpu, m, &cfg, &mut layers)?),
            None => None,
        };
        if show {
            eprintln!();
        }
        Ok(GpuBackend {
            mtp,
            embed: DevEmbed::upload(&gpu, &w.embed)?,
            head: DevLinear::upload(&gpu, &w.head)?,
            norm: DevNorm::upload(&gpu, &w.norm)?,
            hc_head: DevHc::upload(&gpu, &w.hc_head, cfg.hc_mult)?,
            layers,
            rope_plain: DevRope::upload(&gpu, &rope_plain)?,
            rope_compress: DevRope::upload(&gpu, &rope_compress)?,
            moe: MoeParams::from_config(&cfg),
            states: Vec::new(),
            gpu,
            cfg,
        })
    }

    pub fn gpu(&self) -> &Gpu {
        &self.gpu
    }

    fn rope_for(&self, ratio: usize) -> &DevRope {
        if ratio == 0 {
            &self.rope_plain
        } else {
            &self.rope_compress
        }
    }

    fn state(states: &mut [Option<Vec<DevLayerState>>], slot: Slot, layer: Layer) -> &mut DevLayerState {
        let st = states.get_mut(slot).and_then(Option::as_mut).unwrap_or_else(|| panic!("state slot {slot} is not allocated"));
        &mut st[layer.0]
    }

    /// Row positions of a step as a device buffer.
    fn positions(&self, chunks: &[Chunk]) -> Result<Buf, GpuError> {
        let spans: Vec<(usize, usize)> = chunks.iter().map(|c| (c.pos0, c.rows.len())).collect();
        self.gpu.upload_u32(&positions_for_chunks(&spans))
    }

    fn act(&self, buf: Buf, rows: usize, cols: usize) -> GpuAct {
        GpuAct { buf, rows, cols }
    }

    fn try_attn_queries(&self, layer: Layer, x: &GpuAct, chunks: &[Chunk], aq: ActQuant) -> Result<(GpuAct, GpuAct), GpuError> {
        let cfg = &self.cfg;
        let blk = &self.layers[layer.0];
        let a = &blk.attn;
        let (t, h, hd, eps) = (x.rows, cfg.n_heads, cfg.head_dim, cfg.norm_eps);
        let qr = linear(&self.gpu, &a.wq_a, &x.buf, t, aq)?;
        rms_norm_inplace(&self.gpu, &qr, &a.q_norm, t, eps)?;
        let q = linear(&self.gpu, &a.wq_b, &qr, t, aq)?;
        let pos = self.positions(chunks)?;
        norm_rope_strided(&self.gpu, self.rope_for(blk.ratio), &q, None, t, h, hd, h * hd, eps, Positions::PerRow(&pos), false)?;
        Ok((self.act(q, t, h * hd), self.act(qr, t, cfg.q_lora_rank)))
    }

    fn try_attn_window_kv(&self, layer: Layer, x: &GpuAct, chunks: &[Chunk], aq: ActQuant) -> Result<GpuAct, GpuError> {
        let cfg = &self.cfg;
        let blk = &self.layers[layer.0];
        let (t, hd, rd) = (x.rows, cfg.head_dim, cfg.rope_head_dim);
        let kv = linear(&self.gpu, &blk.attn.wkv, &x.buf, t, aq)?;
        let pos = self.positions(chunks)?;
        norm_rope_strided(&self.gpu, self.rope_for(blk.ratio), &kv, Some(&blk.attn.kv_norm), t, 1, hd, hd, cfg.norm_eps, Positions::PerRow(&pos), false)?;
        if aq.is_on() {
            act_quant_fp8_inplace(&self.gpu, &kv, t, hd, hd - rd, KV_FP8_BLOCK)?;
        }
        Ok(self.act(kv, t, hd))
    }

    /// The KV compressor (`index` false) or the indexer's (true) on each chunk: the entries a
    /// chunk completes are pooled into a scratch buffer, RoPE'd at their block's first position
    /// (plus the Hadamard for index keys), quantisation-simulated, and appended to the slot's
    /// compressed KV or index keys.
    fn try_compress(&mut self, layer: Layer, x: &GpuAct, chunks: &[Chunk], index: bool, aq: ActQuant) -> Result<(), GpuError> {
        let cfg = self.cfg.clone();
        let blk = &self.layers[layer.0];
        let ratio = blk.ratio;
        let (wkv, wgate, comp) = match (index, &blk.attn.compressor, &blk.attn.indexer) {
            (false, Some((wkv, wgate, c)), _) => (wkv, wgate, c),
            (true, _, Some(ix)) => (&ix.wkv, &ix.wgate, &ix.compressor),
            _ => return Ok(()),
        };
        let rope = if index || ratio > 0 { &self.rope_compress } else { &self.rope_plain };
        let t = x.rows;
        let kv = linear(&self.gpu, wkv, &x.buf, t, ActQuant::Off)?;
        let score = linear(&self.gpu, wgate, &x.buf, t, ActQuant::Off)?;
        let hd = comp.hd;
        for c in chunks {
            let n_new = completed_blocks(ratio, c.pos0, c.rows.len()).len();
            let scratch = self.gpu.alloc_poisoned(n_new.max(1) * hd * 4)?;
            let st = Self::state(&mut self.states, c.slot, layer);
            let cst = if index { st.index_compressor.as_mut() } else { st.compressor.as_mut() };
            let cst = cst.ok_or_else(|| GpuError(format!("layer {}: no compressor state", layer.0)))?;
            let blocks = compress_chunk(&self.gpu, comp, cst, &kv, &score, c.rows.start, c.rows.len(), c.pos0, &scratch, 0)?;
            if blocks.is_empty() {
                continue;
            }
            // Each entry at the position of its block's first token.
            let pos: Vec<u32> = blocks.clone().map(|b| (b * ratio) as u32).collect();
            let pos = self.gpu.upload_u32(&pos)?;
            let n = blocks.len();
            if index {
                rope_apply(&self.gpu, rope, &scratch, n, 1, hd, Positions::PerRow(&pos), false)?;
                hadamard(&self.gpu, &scratch, 0, n, hd)?;
                if aq.is_on() {
                    act_quant_fp4_inplace(&self.gpu, &scratch, n * hd, INDEX_FP4_BLOCK)?;
                }
                let keys = st.index_keys.as_mut().ok_or_else(|| GpuError(format!("layer {}: no index keys", layer.0)))?;
                keys.append(&self.gpu, &scratch, 0, n)?;
            } else {
                let rd = cfg.rope_head_dim;
                rope_apply(&self.gpu, rope, &scratch, n, 1, hd, Positions::PerRow(&pos), false)?;
                if aq.is_on() {
                    act_quant_fp8_inplace(&self.gpu, &scratch, n, hd, hd - rd, KV_FP8_BLOCK)?;
                }
                st.comp.append(&self.gpu, &scratch, 0, n)?;
            }
        }
        Ok(())
    }

    fn try_attn_select(&mut self, layer: Layer, x: &GpuAct, qr: &GpuAct, chunks: &[Chunk], aq: ActQuant) -> Result<GpuSelection, GpuError> {
        let cfg = self.cfg.clone();
        let blk = &self.layers[layer.0];
        let ratio = blk.ratio;
        let Some(ix) = &blk.attn.indexer else {
            return Ok(if ratio == 0 { GpuSelection::None } else { GpuSelection::All { ratio } });
        };
        let (t, nh, ihd) = (x.rows, cfg.index_n_heads, cfg.index_head_dim);
        let q = linear(&self.gpu, &ix.wq_b, &qr.buf, t, aq)?;
        let pos = self.positions(chunks)?;
        rope_apply(&self.gpu, &self.rope_compress, &q, t, nh, ihd, Positions::PerRow(&pos), false)?;
        hadamard(&self.gpu, &q, 0, t * nh, ihd)?;
        if aq.is_on() {
            act_quant_fp4_inplace(&self.gpu, &q, t * nh * ihd, INDEX_FP4_BLOCK)?;
        }
        let w = linear(&self.gpu, &ix.weights_proj, &x.buf, t, ActQuant::Off)?;
        self.try_compress(layer, x, chunks, true, aq)?;
        let topk = cfg.index_topk;
        let sel = self.gpu.alloc_poisoned(t * topk * 4)?;
        let shape = IndexShape::new(ratio, nh, ihd, topk);
        for c in chunks {
            let st = Self::state(&mut self.states, c.slot, layer);
            let keys = st.index_keys.as_ref().ok_or_else(|| GpuError(format!("layer {}: no index keys", layer.0)))?;
            indexer_select(&self.gpu, shape, &q, &w, keys, c.rows.start, c.rows.len(), c.pos0, &sel)?;
        }
        Ok(GpuSelection::Indices { buf: sel, width: topk })
    }

    fn try_attn_core(&mut self, layer: Layer, q: &GpuAct, kv: &GpuAct, sel: &GpuSelection, chunks: &[Chunk]) -> Result<GpuAct, GpuError> {
        let (h, hd) = (self.cfg.n_heads, self.cfg.head_dim);
        let t = q.rows;
        let ratio = self.layers[layer.0].ratio;
        let o = self.gpu.alloc_poisoned(t * h * hd * 4)?;
        for c in chunks {
            let sink = &self.layers[layer.0].attn.sink;
            let st = Self::state(&mut self.states, c.slot, layer);
            attn_core_chunk(&self.gpu, st, h, &q.buf, &kv.buf, sel.as_sel(), sink, c.rows.start, c.rows.len(), c.pos0, &o)?;
        }
        let pos = self.positions(chunks)?;
        rope_apply(&self.gpu, self.rope_for(ratio), &o, t, h, hd, Positions::PerRow(&pos), true)?;
        Ok(self.act(o, t, h * hd))
    }

    /// Grouped low-rank output: `z_g = wo_a_g · o_g` (no activation quantisation), `wo_b · z`.
    fn try_attn_output(&self, layer: Layer, o: &GpuAct, aq: ActQuant) -> Result<GpuAct, GpuError> {
        let cfg = &self.cfg;
        let a = &self.layers[layer.0].attn;
        let (t, g, r) = (o.rows, cfg.o_groups, cfg.o_lora_rank);
        let gi = o.cols / g;
        let z = self.gpu.alloc_poisoned(t * g * r * 4)?;
        let og = self.gpu.alloc(t * gi * 4)?;
        for grp in 0..g {
            copy_strided(&self.gpu, Block2d { buf: &og, off: 0, stride: gi }, Block2d { buf: &o.buf, off: grp * gi, stride: o.cols }, t, gi)?;
            let zg = linear_rows(&self.gpu, &a.wo_a, &og, t, grp * r..(grp + 1) * r, ActQuant::Off)?;
            copy_strided(&self.gpu, Block2d { buf: &z, off: grp * r, stride: g * r }, Block2d { buf: &zg, off: 0, stride: r }, t, r)?;
        }
        Ok(self.act(linear(&self.gpu, &a.wo_b, &z, t, aq)?, t, cfg.dim))
    }
}

impl GpuBackend {
    /// The MTP block on the main model's final streams `hidden` (rows `0..next_tokens.len()` of
    /// `[*, nc·d]`, positions `pos0..` of `slot`) and the tokens that follow each position, as
    /// `Model::mtp` (block 0): the logits of the last row. The block's state is the slot's last
    /// layer state. None when the checkpoint has no MTP block.
    pub fn mtp_logits(&mut self, slot: Slot, hidden: &GpuAct, next_tokens: &[u32], pos0: usize, aq: ActQuant) -> Option<Vec<f32>> {
        let m = self.mtp.as_ref()?;
        let (t, nc, d, eps) = (next_tokens.len(), self.cfg.hc_mult, self.cfg.dim, self.cfg.norm_eps);
        let x = ok("mtp", (|| {
            let e = embed(&self.gpu, &self.embed, next_tokens, 1)?;
            rms_norm_inplace(&self.gpu, &e, &m.enorm, t, eps)?;
            let e = linear(&self.gpu, &m.e_proj, &e, t, aq)?;
            let h = rms_norm(&self.gpu, &hidden.buf, &m.hnorm, t * nc, eps)?;
            let x = linear(&self.gpu, &m.h_proj, &h, t * nc, aq)?;
            add_rows_broadcast(&self.gpu, &x, &e, t, nc, d)?;
            Ok(x)
        })());
        let chunks = [Chunk { slot, pos0, rows: 0..t }];
        let x = crate::model_step::block(self, self.act(x, t, nc * d), Layer(self.cfg.n_layers), next_tokens, &chunks, aq);
        let m = self.mtp.as_ref()?;
        let last = [(t - 1) as u32];
        let r = hc_head_norm(&self.gpu, &x.buf, &m.hc_head, &m.norm, &last, eps, self.cfg.hc_eps)
            .and_then(|y| linear(&self.gpu, &self.head, &y, 1, ActQuant::Off))
            .and_then(|l| l.download_f32());
        Some(ok("mtp logits", r))
    }
}

impl Backend for GpuBackend {
    type Act = GpuAct;
    type Selection = GpuSelection;
    type Routes = Routes;
    type Snapshot = GpuSnapshot;

    fn config(&self) -> &Config {
        &self.cfg
    }

    fn name(&self) -> String {
        self.gpu.name()
    }

    fn download(&self, x: &GpuAct) -> Vec<f32> {
        ok("download", x.buf.download_f32()).into_iter().take(x.rows * x.cols).collect()
    }

    fn state_reset(&mut self, slot: Slot) {
        if self.states.len() <= slot {
            self.states.resize_with(slot + 1, || None);
        }
        if let Some(layers) = self.states[slot].as_mut() {
            for st in layers.iter_mut() {
                ok("state_reset", st.reset(&self.gpu));
            }
            return;
        }
        let layers = self.layers.iter().map(|b| ok("state_reset", DevLayerState::new(&self.gpu, &self.cfg, b.ratio))).collect();
        self.states[slot] = Some(layers);
    }

    fn state_release(&mut self, slot: Slot) {
        if let Some(s) = self.states.get_mut(slot) {
            *s = None;
        }
    }

    fn state_snapshot(&self, slot: Slot) -> GpuSnapshot {
        let layers = self.states[slot].as_ref().expect("snapshot of an empty slot");
        GpuSnapshot { layers: layers.iter().map(|st| ok("state_snapshot", st.snapshot())).collect() }
    }

    fn state_restore(&mut self, slot: Slot, snap: &GpuSnapshot) {
        self.state_reset(slot);
        let layers = self.states[slot].as_mut().expect("slot just reset");
        for (st, s) in layers.iter_mut().zip(&snap.layers) {
            ok("state_restore", st.restore(&self.gpu, s));
        }
    }

    fn state_load(&mut self, slot: Slot, st: &SequenceState) {
        self.state_reset(slot);
        let layers = self.states[slot].as_mut().expect("slot just reset");
        // the main model's layers; an MTP block's state (past them) stays fresh
        for ((dst, ls), blk) in layers.iter_mut().zip(&st.layers).zip(&self.layers) {
            *dst = ok("state_load", DevLayerState::from_reference(&self.gpu, &self.cfg, blk.ratio, ls));
        }
    }

    fn snapshot_bytes(snap: &GpuSnapshot) -> usize {
        snap.layers.iter().map(DevLayerSnapshot::bytes).sum::<usize>() + std::mem::size_of::<GpuSnapshot>()
    }

    fn embed(&self, tokens: &[u32]) -> GpuAct {
        let nc = self.cfg.hc_mult;
        self.act(ok("embed", embed(&self.gpu, &self.embed, tokens, nc)), tokens.len(), nc * self.cfg.dim)
    }

    fn hc_pre_norm(&self, x: &GpuAct, layer: Layer, sub: Sublayer) -> (GpuAct, GpuAct) {
        let cfg = &self.cfg;
        let blk = &self.layers[layer.0];
        let (hc, norm) = match sub {
            Sublayer::Attn => (&blk.hc_attn, &blk.attn_norm),
            Sublayer::Ffn => (&blk.hc_ffn, &blk.ffn_norm),
        };
        let (y, mix) = ok("hc_pre_norm", hc_pre_norm(&self.gpu, &x.buf, hc, norm, x.rows, cfg.hc_sinkhorn_iters, cfg.norm_eps, cfg.hc_eps));
        (self.act(y, x.rows, cfg.dim), self.act(mix, x.rows, mix_cols(cfg.hc_mult)))
    }

    fn hc_post(&self, f: &GpuAct, x: &GpuAct, mix: &GpuAct) -> GpuAct {
        let (nc, d) = (self.cfg.hc_mult, self.cfg.dim);
        self.act(ok("hc_post", hc_post(&self.gpu, &f.buf, &x.buf, &mix.buf, x.rows, nc, d)), x.rows, x.cols)
    }

    fn attn_queries(&self, layer: Layer, x: &GpuAct, chunks: &[Chunk], aq: ActQuant) -> (GpuAct, GpuAct) {
        ok("attn_queries", self.try_attn_queries(layer, x, chunks, aq))
    }

    fn attn_window_kv(&self, layer: Layer, x: &GpuAct, chunks: &[Chunk], aq: ActQuant) -> GpuAct {
        ok("attn_window_kv", self.try_attn_window_kv(layer, x, chunks, aq))
    }

    fn attn_compress(&mut self, layer: Layer, x: &GpuAct, chunks: &[Chunk], aq: ActQuant) {
        ok("attn_compress", self.try_compress(layer, x, chunks, false, aq))
    }

    fn attn_select(&mut self, layer: Layer, x: &GpuAct, qr: &GpuAct, chunks: &[Chunk], aq: ActQuant) -> GpuSelection {
        ok("attn_select", self.try_attn_select(layer, x, qr, chunks, aq))
    }

    fn attn_core(&mut self, layer: Layer, q: &GpuAct, kv: &GpuAct, sel: &GpuSelection, chunks: &[Chunk]) -> GpuAct {
        ok("attn_core", self.try_attn_core(layer, q, kv, sel, chunks))
    }

    fn attn_output(&self, layer: Layer, o: &GpuAct, aq: ActQuant) -> GpuAct {
        ok("attn_output", self.try_attn_output(layer, o, aq))
    }

    fn moe_route(&self, layer: Layer, x: &GpuAct, tokens: &[u32]) -> Routes {
        let r = self.gpu.upload_u32(tokens).and_then(|tok| moe_route(&self.gpu, &self.layers[layer.0].ffn, &self.moe, &x.buf, x.rows, &tok));
        ok("moe_route", r)
    }

    fn moe_experts(&self, layer: Layer, x: &GpuAct, routes: &Routes, aq: ActQuant) -> GpuAct {
        let y = ok("moe_experts", moe_experts(&self.gpu, &self.layers[layer.0].ffn, &self.moe, &x.buf, x.rows, routes, aq));
        self.act(y, x.rows, x.cols)
    }

    fn logits(&self, x: &GpuAct, rows: &[usize]) -> Vec<f32> {
        if rows.is_empty() {
            return Vec::new();
        }
        let ids: Vec<u32> = rows.iter().map(|&r| r as u32).collect();
        let r = hc_head_norm(&self.gpu, &x.buf, &self.hc_head, &self.norm, &ids, self.cfg.norm_eps, self.cfg.hc_eps)
            .and_then(|y| linear(&self.gpu, &self.head, &y, ids.len(), ActQuant::Off))
            .and_then(|l| l.download_f32());
        let mut l = ok("logits", r);
        l.truncate(rows.len() * self.cfg.vocab_size);
        l
    }
}
