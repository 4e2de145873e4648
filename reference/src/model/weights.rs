//! The model's weights, loaded from a checkpoint in the released layout and validated (every
//! expected tensor, its shape and dtype, scale shapes, scale NaN codes) before use.

use crate::checkpoint::{Checkpoint, LoadError};
use crate::config::Config;
use crate::linear::Linear;
use crate::model::compressor::Compressor;
use crate::ops::mhc::HcParams;
use crate::ops::moe::Expert;

#[derive(Clone)]
pub struct Indexer {
    /// `[index_n_heads·index_hd, q_lora]` (FP8).
    pub wq_b: Linear,
    /// `[index_n_heads, dim]` (BF16, f32 matmul).
    pub weights_proj: Linear,
    pub compressor: Compressor,
}

#[derive(Clone)]
pub struct Attention {
    pub wq_a: Linear,
    pub q_norm: Vec<f32>,
    pub wq_b: Linear,
    pub wkv: Linear,
    pub kv_norm: Vec<f32>,
    /// `[o_groups·o_lora, n_heads·hd/o_groups]`, FP8 in memory, a plain matmul (no act quant).
    pub wo_a: Linear,
    pub wo_b: Linear,
    pub attn_sink: Vec<f32>,
    pub compressor: Option<Compressor>,
    pub indexer: Option<Indexer>,
}

#[derive(Clone)]
pub enum Router {
    /// `tid2eid` `[vocab, n_activated]`: experts by token id (the first n_hash_layers layers).
    Hash(Vec<i32>),
    /// Selection bias `[n_experts]` added to the scores for the top-k only.
    Score(Vec<f32>),
}

#[derive(Clone)]
pub struct Moe {
    /// `[n_experts, dim]`, f32 matmul.
    pub gate: Linear,
    pub router: Router,
    pub experts: Vec<Expert>,
    pub shared: Expert,
}

#[derive(Clone)]
pub struct Block {
    pub ratio: usize,
    pub attn_norm: Vec<f32>,
    pub ffn_norm: Vec<f32>,
    pub hc_attn: HcParams,
    pub hc_ffn: HcParams,
    pub attn: Attention,
    pub ffn: Moe,
}

#[derive(Clone)]
pub struct Mtp {
    pub e_proj: Linear,
    pub h_proj: Linear,
    pub enorm: Vec<f32>,
    pub hnorm: Vec<f32>,
    pub norm: Vec<f32>,
    pub hc_head: HcParams,
    pub block: Block,
}

#[derive(Clone)]
pub struct Weights {
    /// `[vocab, dim]`, rows looked up.
    pub embed: Linear,
    /// `[vocab, dim]`, f32 matmul.
    pub head: Linear,
    pub norm: Vec<f32>,
    pub hc_head: HcParams,
    pub layers: Vec<Block>,
    pub mtp: Vec<Mtp>,
}

impl Weights {
    pub fn load(ck: &Checkpoint, cfg: &Config) -> Result<Weights, LoadError> {
        let d = cfg.dim;
        let layers = (0..cfg.n_layers).map(|l| load_block(ck, cfg, &format!("layers.{l}"), l)).collect::<Result<_, _>>()?;
        let mut mtp = Vec::new();
        for i in 0..cfg.n_mtp_layers {
            let p = format!("mtp.{i}");
            mtp.push(Mtp {
                e_proj: Linear::fp8(d, d, ck.fp8_weight(&format!("{p}.e_proj"), d, d)?),
                h_proj: Linear::fp8(d, d, ck.fp8_weight(&format!("{p}.h_proj"), d, d)?),
                enorm: ck.floats(&format!("{p}.enorm.weight"), &[d])?,
                hnorm: ck.floats(&format!("{p}.hnorm.weight"), &[d])?,
                norm: ck.floats(&format!("{p}.norm.weight"), &[d])?,
                hc_head: load_hc(ck, cfg, &format!("{p}.hc_head"), cfg.hc_mult, 1)?,
                block: load_block(ck, cfg, &p, cfg.n_layers + i)?,
            });
        }
        Ok(Weights {
            embed: Linear::from_float(ck.float_matrix("embed.weight", &[cfg.vocab_size, d])?),
            head: Linear::from_float(ck.float_matrix("head.weight", &[cfg.vocab_size, d])?),
            norm: ck.floats("norm.weight", &[d])?,
            hc_head: load_hc(ck, cfg, "hc_head", cfg.hc_mult, 1)?,
            layers,
            mtp,
        })
    }
}

/// `{p}_fn`, `{p}_base`, `{p}_scale` with `rows` mixes.
fn load_hc(ck: &Checkpoint, cfg: &Config, p: &str, rows: usize, nscale: usize) -> Result<HcParams, LoadError> {
    Ok(HcParams {
        fn_: ck.floats(&format!("{p}_fn"), &[rows, cfg.hc_mult * cfg.dim])?,
        base: ck.floats(&format!("{p}_base"), &[rows])?,
        scale: ck.floats(&format!("{p}_scale"), &[nscale])?,
    })
}

fn load_compressor(ck: &Checkpoint, cfg: &Config, p: &str, ratio: usize, hd: usize) -> Result<Compressor, LoadError> {
    let overlap = ratio == 4;
    let w = if overlap { 2 * hd } else { hd };
    Ok(Compressor {
        ratio,
        hd,
        overlap,
        wkv: Linear::from_float(ck.float_matrix(&format!("{p}.wkv.weight"), &[w, cfg.dim])?),
        wgate: Linear::from_float(ck.float_matrix(&format!("{p}.wgate.weight"), &[w, cfg.dim])?),
        ape: ck.floats(&format!("{p}.ape"), &[ratio, w])?,
        norm: ck.floats(&format!("{p}.norm.weight"), &[hd])?,
    })
}

/// A block at `p` (`layers.L` or `mtp.i`); `index` selects its compress ratio and routing.
fn load_block(ck: &Checkpoint, cfg: &Config, p: &str, index: usize) -> Result<Block, LoadError> {
    let (d, hd) = (cfg.dim, cfg.head_dim);
    let ratio = cfg.compress_ratio(index);
    let nc = cfg.hc_mult;
    let mix = (2 + nc) * nc;
    let a = format!("{p}.attn");
    let fp8 = |name: &str, out: usize, inp: usize| ck.fp8_weight(&format!("{p}.{name}"), out, inp).map(|w| Linear::fp8(out, inp, w));
    let group_in = cfg.n_heads * hd / cfg.o_groups;
    let attn = Attention {
        wq_a: fp8("attn.wq_a", cfg.q_lora_rank, d)?,
        q_norm: ck.floats(&format!("{a}.q_norm.weight"), &[cfg.q_lora_rank])?,
        wq_b: fp8("attn.wq_b", cfg.n_heads * hd, cfg.q_lora_rank)?,
        wkv: fp8("attn.wkv", hd, d)?,
        kv_norm: ck.floats(&format!("{a}.kv_norm.weight"), &[hd])?,
        wo_a: fp8("attn.wo_a", cfg.o_groups * cfg.o_lora_rank, group_in)?,
        wo_b: fp8("attn.wo_b", d, cfg.o_groups * cfg.o_lora_rank)?,
        attn_sink: ck.floats(&format!("{a}.attn_sink"), &[cfg.n_heads])?,
        compressor: if ratio > 0 { Some(load_compressor(ck, cfg, &format!("{a}.compressor"), ratio, hd)?) } else { None },
        indexer: if ratio == 4 {
            let ih = cfg.index_n_heads * cfg.index_head_dim;
            Some(Indexer {
                wq_b: fp8("attn.indexer.wq_b", ih, cfg.q_lora_rank)?,
                weights_proj: Linear::from_float(ck.float_matrix(&format!("{a}.indexer.weights_proj.weight"), &[cfg.index_n_heads, d])?),
                compressor: load_compressor(ck, cfg, &format!("{a}.indexer.compressor"), ratio, cfg.index_head_dim)?,
            })
        } else {
            None
        },
    };
    let f = format!("{p}.ffn");
    let inter = cfg.moe_inter_dim;
    let router = if index < cfg.n_hash_layers {
        let name = format!("{f}.gate.tid2eid");
        let t = ck.ints(&name, &[cfg.vocab_size, cfg.n_activated_experts])?;
        if let Some(bad) = t.iter().find(|&&e| e < 0 || e as usize >= cfg.n_routed_experts) {
            let file = ck.tensor(&name)?.file;
            return Err(LoadError::BadValue { name, file, msg: format!("expert id {bad} outside 0..{}", cfg.n_routed_experts) });
        }
        Router::Hash(t)
    } else {
        Router::Score(ck.floats(&format!("{f}.gate.bias"), &[cfg.n_routed_experts])?)
    };
    let experts = (0..cfg.n_routed_experts)
        .map(|e| {
            let q = |w: &str, out, inp| ck.fp4_weight(&format!("{f}.experts.{e}.{w}"), out, inp).map(|t| Linear::fp4(out, inp, t));
            Ok(Expert { w1: q("w1", inter, d)?, w2: q("w2", d, inter)?, w3: q("w3", inter, d)? })
        })
        .collect::<Result<_, LoadError>>()?;
    let shared = Expert {
        w1: fp8("ffn.shared_experts.w1", inter, d)?,
        w2: fp8("ffn.shared_experts.w2", d, inter)?,
        w3: fp8("ffn.shared_experts.w3", inter, d)?,
    };
    Ok(Block {
        ratio,
        attn_norm: ck.floats(&format!("{p}.attn_norm.weight"), &[d])?,
        ffn_norm: ck.floats(&format!("{p}.ffn_norm.weight"), &[d])?,
        hc_attn: load_hc(ck, cfg, &format!("{p}.hc_attn"), mix, 3)?,
        hc_ffn: load_hc(ck, cfg, &format!("{p}.hc_ffn"), mix, 3)?,
        attn,
        ffn: Moe {
            gate: Linear::from_float(ck.float_matrix(&format!("{f}.gate.weight"), &[cfg.n_routed_experts, d])?),
            router,
            experts,
            shared,
        },
    })
}
