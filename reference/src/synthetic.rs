//! A random checkpoint in the released layout (`../shared/spec/checkpoint.md`), for tests of the
//! loader, the reference model and the engine at toy size without the real weights.
//!
//! Everything is deterministic from a seed: each tensor draws from its own splitmix64 stream
//! seeded by `(seed, tensor name)`, so adding a tensor or a layer leaves the others unchanged.
//! Scales aim at a numerically sane model: linear weights are `N(0,1)/sqrt(fan_in)` before
//! quantisation, and FP8 / FP4 weights are quantised the way the real checkpoint is (per block,
//! a power-of-two e8m0 scale `ceil_pow2(amax / max_code)`, codes rounded to nearest even), so
//! the codes use the top of their range and NaN codes never appear.
//!
//! [`fast_tensors`] is the same layout filled fast enough for the real dimensions (GBs in
//! seconds): the big matrices (FP8, FP4, BF16 linears and the embedding) get random codes —
//! never a NaN code — and one power-of-two scale per tensor chosen so the weights have RMS
//! ≈ `1/sqrt(fan_in)`, filled in parallel with one splitmix stream per 64 KiB chunk (so the bytes
//! depend on the seed only, not on the thread count); the small tensors (norms, mHC parameters,
//! biases, sinks, `ape`, hash tables) are drawn exactly as by [`random_tensors`].
//! [`bench_config`] and [`bench_model`] build an in-memory model with the real geometry and
//! fewer routed experts / layers for benchmarks.

use std::path::Path;

use rayon::prelude::*;
use serde_json::{Map, Value};

use crate::checkpoint::{Bytes, Checkpoint, DType, LoadError};
use crate::config::Config;
use crate::formats::{bf16_to_f32, ceil_pow2, e2m1_to_f32, e4m3_to_f32, f32_to_e2m1, f32_to_e4m3, E2M1_MAX, E4M3_MAX};
use crate::model::weights::Weights;
use crate::model::Model;

/// One tensor of a checkpoint: name, dtype, shape, little-endian bytes.
pub struct SynthTensor {
    pub name: String,
    pub dtype: DType,
    pub shape: Vec<usize>,
    pub bytes: Bytes,
}

/// splitmix64: tiny, fast, good enough for test weights.
struct Rng(u64);

impl Rng {
    /// A stream for one tensor: the seed and the name hashed (FNV-1a) together.
    fn for_tensor(seed: u64, name: &str) -> Rng {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in name.bytes() {
            h ^= b as u64;
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        let mut r = Rng(seed ^ h.rotate_left(17));
        r.next_u64();
        r
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in [lo, hi).
    fn range(&mut self, lo: f64, hi: f64) -> f32 {
        (lo + (hi - lo) * self.uniform()) as f32
    }

    /// Standard normal (Box–Muller; one of the pair is dropped for simplicity).
    fn normal(&mut self) -> f32 {
        let u1 = 1.0 - self.uniform(); // (0, 1]
        let u2 = self.uniform();
        ((-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()) as f32
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}

/// Bytes per independent stream of the fast fill.
const FAST_CHUNK: usize = 1 << 16;

impl Rng {
    /// The stream of chunk `chunk` of a tensor whose key is `key`.
    fn for_chunk(key: u64, chunk: usize) -> Rng {
        let mut h = Rng(key ^ (chunk as u64).wrapping_mul(0xD1B5_4A32_D192_ED03));
        let mut r = Rng(h.next_u64());
        r.next_u64();
        r
    }

    /// Fill `out` with random bytes.
    fn fill(&mut self, out: &mut [u8]) {
        let mut it = out.chunks_exact_mut(8);
        for c in &mut it {
            c.copy_from_slice(&self.next_u64().to_le_bytes());
        }
        let rest = it.into_remainder();
        let n = rest.len();
        rest.copy_from_slice(&self.next_u64().to_le_bytes()[..n]);
    }
}

/// `n` random bytes for tensor `name`, each chunk then rewritten in place by `map`; chunk `i`
/// of [`FAST_CHUNK`] bytes (a multiple of every element size) draws from its own stream, so the
/// result does not depend on the number of threads.
fn fast_bytes(seed: u64, name: &str, n: usize, map: impl Fn(&mut [u8]) + Sync) -> Bytes {
    let key = Rng::for_tensor(seed, name).next_u64();
    // its own page-aligned (huge-page) mapping: the benches stream these from DRAM
    Bytes::anon(n, |v| {
        v.par_chunks_mut(FAST_CHUNK).enumerate().for_each(|(i, c)| {
            Rng::for_chunk(key, i).fill(c);
            map(c);
        })
    })
}

/// A random byte to an e4m3 code: the sign and the 3 mantissa bits kept, 3 bits choosing the
/// exponent field among 7..=14 (magnitudes 1 to 240), so never the NaN codes 0x7F / 0xFF.
fn fast_e4m3(b: u8) -> u8 {
    (b & 0x80) | ((7 + ((b >> 3) & 7)) << 3) | (b & 7)
}

/// A random u16 to bf16 bits: sign and 7 mantissa bits kept, 3 bits choosing the exponent among
/// 2^0..2^7 (times `2^e0`, which the caller adds to the exponent field).
fn fast_bf16(u: u16, e0: i32) -> u16 {
    let exp = (127 + e0 + ((u >> 7) & 7) as i32) as u16;
    (u & 0x8000) | (exp << 7) | (u & 0x7F)
}

/// RMS of `values` (every code of a format, decoded).
fn code_rms(codes: impl Iterator<Item = f32>) -> f64 {
    let (mut s, mut n) = (0f64, 0usize);
    for v in codes {
        s += (v as f64) * (v as f64);
        n += 1;
    }
    (s / n as f64).sqrt()
}

/// `round(log2(target / rms))`: the power-of-two scale bringing codes of RMS `rms` to `target`.
fn pow2_exponent(target: f64, rms: f64) -> i32 {
    (target / rms).log2().round() as i32
}

/// The e8m0 byte of `2^e`.
fn e8m0_of_exponent(e: i32) -> u8 {
    (e + 127).clamp(0, 254) as u8
}

/// How a [`Builder`] fills the tensors.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// [`random_tensors`]: normal draws quantised like the release.
    Exact,
    /// [`fast_tensors`]: random codes for the big matrices.
    Fast,
    /// Names, dtypes and shapes only (empty bytes).
    Shapes,
}

/// The e8m0 byte of a power of two `s` (normal f32).
fn e8m0_code(s: f32) -> u8 {
    let e = ((s.to_bits() >> 23) & 0xFF) as i32 - 127;
    (e + 127).clamp(0, 254) as u8
}

/// Builds the tensor list; every tensor gets its own random stream.
struct Builder {
    seed: u64,
    mode: Mode,
    out: Vec<SynthTensor>,
}

impl Builder {
    fn rng(&self, name: &str) -> Rng {
        Rng::for_tensor(self.seed, name)
    }

    fn push(&mut self, name: String, dtype: DType, shape: Vec<usize>, bytes: impl Into<Bytes>) {
        let bytes = bytes.into();
        if self.mode != Mode::Shapes {
            debug_assert_eq!(bytes.len(), shape.iter().product::<usize>() * dtype.size_in_bytes(), "{name}");
        }
        self.out.push(SynthTensor { name, dtype, shape, bytes });
    }

    /// In `Shapes` mode: record the tensor without data and return true.
    fn shape_only(&mut self, name: &str, dtype: DType, shape: &[usize]) -> bool {
        if self.mode == Mode::Shapes {
            self.push(name.to_string(), dtype, shape.to_vec(), Vec::new());
        }
        self.mode == Mode::Shapes
    }

    /// `mean + std·N(0,1)` values.
    fn gaussian(&self, name: &str, n: usize, mean: f32, std: f32) -> Vec<f32> {
        let mut r = self.rng(name);
        (0..n).map(|_| mean + std * r.normal()).collect()
    }

    fn bf16(&mut self, name: String, shape: Vec<usize>, values: Vec<f32>) {
        let bytes: Vec<u8> = values.iter().flat_map(|&v| half::bf16::from_f32(v).to_le_bytes()).collect();
        self.push(name, DType::BF16, shape, bytes);
    }

    fn f32(&mut self, name: String, shape: Vec<usize>, values: Vec<f32>) {
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.push(name, DType::F32, shape, bytes);
    }

    /// BF16 `N(mean, std)`; in `Fast` mode (where `mean` must be 0) random bf16 codes of RMS
    /// within a factor sqrt(2) of `std`.
    fn bf16_normal(&mut self, name: String, shape: Vec<usize>, mean: f32, std: f32) {
        if self.shape_only(&name, DType::BF16, &shape) {
            return;
        }
        if self.mode == Mode::Fast {
            assert_eq!(mean, 0.0, "{name}: the fast fill draws around 0");
            let rms = code_rms((0..=u16::MAX).map(|u| bf16_to_f32(fast_bf16(u, 0))));
            let e0 = pow2_exponent(std as f64, rms);
            let n: usize = shape.iter().product();
            let bytes = fast_bytes(self.seed, &name, 2 * n, |c| {
                for p in c.chunks_exact_mut(2) {
                    let u = fast_bf16(u16::from_le_bytes([p[0], p[1]]), e0);
                    p.copy_from_slice(&u.to_le_bytes());
                }
            });
            self.push(name, DType::BF16, shape, bytes);
            return;
        }
        let v = self.gaussian(&name, shape.iter().product(), mean, std);
        self.bf16(name, shape, v);
    }

    /// F32 `N(mean, std)`.
    fn f32_normal(&mut self, name: String, shape: Vec<usize>, mean: f32, std: f32) {
        if self.shape_only(&name, DType::F32, &shape) {
            return;
        }
        let v = self.gaussian(&name, shape.iter().product(), mean, std);
        self.f32(name, shape, v);
    }

    /// A norm weight: BF16 `1 ± 0.1` (uniform).
    fn norm(&mut self, name: String, n: usize) {
        if self.shape_only(&name, DType::BF16, &[n]) {
            return;
        }
        let mut r = self.rng(&name);
        let v = (0..n).map(|_| r.range(0.9, 1.1)).collect();
        self.bf16(name, vec![n], v);
    }

    /// A float linear `[out, inp]`: BF16 `N(0,1)/sqrt(inp)`.
    fn bf16_linear(&mut self, name: String, out: usize, inp: usize) {
        self.bf16_normal(name, vec![out, inp], 0.0, 1.0 / (inp as f32).sqrt());
    }

    /// `{p}.weight` F8_E4M3 `[out, inp]` + `{p}.scale` F8_E8M0 `[ceil(out/128), ceil(inp/128)]`,
    /// quantising `N(0,1)/sqrt(inp)` per 128x128 block.
    fn fp8(&mut self, p: &str, out: usize, inp: usize) {
        let wname = format!("{p}.weight");
        let (bo, bi) = (out.div_ceil(128), inp.div_ceil(128));
        if self.shape_only(&wname, DType::F8E4M3, &[out, inp]) {
            self.shape_only(&format!("{p}.scale"), DType::F8E8M0, &[bo, bi]);
            return;
        }
        if self.mode == Mode::Fast {
            let rms = code_rms((0..=255u8).map(|b| e4m3_to_f32(fast_e4m3(b))));
            let e = pow2_exponent(1.0 / (inp as f64).sqrt(), rms);
            let codes = fast_bytes(self.seed, &wname, out * inp, |c| c.iter_mut().for_each(|b| *b = fast_e4m3(*b)));
            self.push(wname, DType::F8E4M3, vec![out, inp], codes);
            self.push(format!("{p}.scale"), DType::F8E8M0, vec![bo, bi], vec![e8m0_of_exponent(e); bo * bi]);
            return;
        }
        let w = self.gaussian(&wname, out * inp, 0.0, 1.0 / (inp as f32).sqrt());
        let mut codes = vec![0u8; out * inp];
        let mut scales = vec![0u8; bo * bi];
        for br in 0..bo {
            for bc in 0..bi {
                let (rows, cols) = (br * 128..((br + 1) * 128).min(out), bc * 128..((bc + 1) * 128).min(inp));
                let amax = rows
                    .clone()
                    .flat_map(|r| w[r * inp + cols.start..r * inp + cols.end].iter())
                    .fold(1e-30f32, |m, v| m.max(v.abs()));
                let s = ceil_pow2(amax / E4M3_MAX);
                scales[br * bi + bc] = e8m0_code(s);
                for r in rows {
                    for c in cols.clone() {
                        codes[r * inp + c] = f32_to_e4m3(w[r * inp + c] / s);
                    }
                }
            }
        }
        self.push(wname, DType::F8E4M3, vec![out, inp], codes);
        self.push(format!("{p}.scale"), DType::F8E8M0, vec![bo, bi], scales);
    }

    /// `{p}.weight` I8 `[out, inp/2]` (low nibble = even input) + `{p}.scale` F8_E8M0
    /// `[out, inp/32]`, quantising `N(0,1)/sqrt(inp)` per 32 inputs of a row.
    fn fp4(&mut self, p: &str, out: usize, inp: usize) {
        assert!(inp.is_multiple_of(32), "{p}: an FP4 weight needs an input size divisible by 32, got {inp}");
        let wname = format!("{p}.weight");
        if self.shape_only(&wname, DType::I8, &[out, inp / 2]) {
            self.shape_only(&format!("{p}.scale"), DType::F8E8M0, &[out, inp / 32]);
            return;
        }
        if self.mode == Mode::Fast {
            // Every byte is two valid e2m1 codes.
            let rms = code_rms((0..16u8).map(e2m1_to_f32));
            let e = pow2_exponent(1.0 / (inp as f64).sqrt(), rms);
            let packed = fast_bytes(self.seed, &wname, out * inp / 2, |_| {});
            self.push(wname, DType::I8, vec![out, inp / 2], packed);
            let scale = Bytes::anon(out * inp / 32, |v| v.fill(e8m0_of_exponent(e)));
            self.push(format!("{p}.scale"), DType::F8E8M0, vec![out, inp / 32], scale);
            return;
        }
        let w = self.gaussian(&wname, out * inp, 0.0, 1.0 / (inp as f32).sqrt());
        let mut packed = vec![0u8; out * inp / 2];
        let mut scales = vec![0u8; out * inp / 32];
        for (b, blk) in w.chunks(32).enumerate() {
            let amax = blk.iter().fold(1e-30f32, |m, v| m.max(v.abs()));
            let s = ceil_pow2(amax / E2M1_MAX);
            scales[b] = e8m0_code(s);
            for (i, pair) in blk.chunks(2).enumerate() {
                let (lo, hi) = (f32_to_e2m1(pair[0] / s), f32_to_e2m1(pair[1] / s));
                packed[b * 16 + i] = lo | (hi << 4);
            }
        }
        self.push(wname, DType::I8, vec![out, inp / 2], packed);
        self.push(format!("{p}.scale"), DType::F8E8M0, vec![out, inp / 32], scales);
    }

    /// `{p}_fn` `[rows, nc·dim]` ≈ `N(0,1)·0.1/sqrt(nc·dim)`, `{p}_base` `[rows]` ≈ `N(0, 0.5)`,
    /// `{p}_scale` `[nscale]` ≈ `1 ± 0.2`, all F32.
    fn hc(&mut self, p: &str, cfg: &Config, rows: usize, nscale: usize) {
        let k = cfg.hc_mult * cfg.dim;
        self.f32_normal(format!("{p}_fn"), vec![rows, k], 0.0, 0.1 / (k as f32).sqrt());
        self.f32_normal(format!("{p}_base"), vec![rows], 0.0, 0.5);
        let name = format!("{p}_scale");
        if self.shape_only(&name, DType::F32, &[nscale]) {
            return;
        }
        let mut r = self.rng(&name);
        let v = (0..nscale).map(|_| r.range(0.8, 1.2)).collect();
        self.f32(name, vec![nscale], v);
    }

    /// A compressor at `p` with head size `hd`.
    fn compressor(&mut self, p: &str, cfg: &Config, ratio: usize, hd: usize) {
        let w = if ratio == 4 { 2 * hd } else { hd };
        self.bf16_linear(format!("{p}.wkv.weight"), w, cfg.dim);
        self.bf16_linear(format!("{p}.wgate.weight"), w, cfg.dim);
        self.f32_normal(format!("{p}.ape"), vec![ratio, w], 0.0, 0.5);
        self.norm(format!("{p}.norm.weight"), hd);
    }

    /// Hash routing `[vocab, k]` I32: each token's k experts distinct, drawn by a partial
    /// Fisher–Yates shuffle.
    fn tid2eid(&mut self, name: String, cfg: &Config) {
        let (ne, k) = (cfg.n_routed_experts, cfg.n_activated_experts);
        if self.shape_only(&name, DType::I32, &[cfg.vocab_size, k]) {
            return;
        }
        let mut r = self.rng(&name);
        let mut ids = Vec::with_capacity(cfg.vocab_size * k);
        for _ in 0..cfg.vocab_size {
            let mut perm: Vec<i32> = (0..ne as i32).collect();
            for j in 0..k {
                let pick = j + r.below(ne - j);
                perm.swap(j, pick);
            }
            ids.extend_from_slice(&perm[..k]);
        }
        let bytes: Vec<u8> = ids.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.push(name, DType::I32, vec![cfg.vocab_size, k], bytes);
    }

    /// A block at `p` (`layers.L` or `mtp.i`); `index` selects its compress ratio and routing.
    fn block(&mut self, p: &str, cfg: &Config, index: usize) {
        let (d, hd, nc) = (cfg.dim, cfg.head_dim, cfg.hc_mult);
        let ratio = cfg.compress_ratios[index];
        self.norm(format!("{p}.attn_norm.weight"), d);
        self.norm(format!("{p}.ffn_norm.weight"), d);
        self.hc(&format!("{p}.hc_attn"), cfg, (2 + nc) * nc, 3);
        self.hc(&format!("{p}.hc_ffn"), cfg, (2 + nc) * nc, 3);

        let a = format!("{p}.attn");
        self.f32_normal(format!("{a}.attn_sink"), vec![cfg.n_heads], 0.0, 1.0);
        self.fp8(&format!("{a}.wq_a"), cfg.q_lora_rank, d);
        self.norm(format!("{a}.q_norm.weight"), cfg.q_lora_rank);
        self.fp8(&format!("{a}.wq_b"), cfg.n_heads * hd, cfg.q_lora_rank);
        self.fp8(&format!("{a}.wkv"), hd, d);
        self.norm(format!("{a}.kv_norm.weight"), hd);
        self.fp8(&format!("{a}.wo_a"), cfg.o_groups * cfg.o_lora_rank, cfg.n_heads * hd / cfg.o_groups);
        self.fp8(&format!("{a}.wo_b"), d, cfg.o_groups * cfg.o_lora_rank);
        if ratio > 0 {
            self.compressor(&format!("{a}.compressor"), cfg, ratio, hd);
        }
        if ratio == 4 {
            let i = format!("{a}.indexer");
            self.fp8(&format!("{i}.wq_b"), cfg.index_n_heads * cfg.index_head_dim, cfg.q_lora_rank);
            self.bf16_linear(format!("{i}.weights_proj.weight"), cfg.index_n_heads, d);
            self.compressor(&format!("{i}.compressor"), cfg, ratio, cfg.index_head_dim);
        }

        let f = format!("{p}.ffn");
        let (ne, inter) = (cfg.n_routed_experts, cfg.moe_inter_dim);
        self.bf16_linear(format!("{f}.gate.weight"), ne, d);
        if index < cfg.n_hash_layers {
            self.tid2eid(format!("{f}.gate.tid2eid"), cfg);
        } else {
            self.f32_normal(format!("{f}.gate.bias"), vec![ne], 0.0, 0.1);
        }
        for e in 0..ne {
            self.fp4(&format!("{f}.experts.{e}.w1"), inter, d);
            self.fp4(&format!("{f}.experts.{e}.w2"), d, inter);
            self.fp4(&format!("{f}.experts.{e}.w3"), inter, d);
        }
        if cfg.n_shared_experts > 0 {
            // The official code builds one shared MLP of n_shared_experts · moe_inter_dim.
            let si = cfg.n_shared_experts * inter;
            self.fp8(&format!("{f}.shared_experts.w1"), si, d);
            self.fp8(&format!("{f}.shared_experts.w2"), d, si);
            self.fp8(&format!("{f}.shared_experts.w3"), si, d);
        }
    }
}

/// The tensors of a model with `cfg`, filled as `mode` says; the blocks are built in parallel
/// (each tensor's bytes depend only on the seed and its name, so the order of work is free).
fn build(cfg: &Config, seed: u64, mode: Mode) -> Vec<SynthTensor> {
    let (d, v, nc) = (cfg.dim, cfg.vocab_size, cfg.hc_mult);
    let mut b = Builder { seed, mode, out: Vec::new() };
    b.bf16_normal("embed.weight".into(), vec![v, d], 0.0, 1.0);
    b.bf16_linear("head.weight".into(), v, d);
    b.norm("norm.weight".into(), d);
    b.hc("hc_head", cfg, nc, 1);
    let blocks: Vec<Vec<SynthTensor>> = (0..cfg.n_layers + cfg.n_mtp_layers)
        .into_par_iter()
        .map(|l| {
            let mut b = Builder { seed, mode, out: Vec::new() };
            if l < cfg.n_layers {
                b.block(&format!("layers.{l}"), cfg, l);
            } else {
                let p = format!("mtp.{}", l - cfg.n_layers);
                b.block(&p, cfg, l);
                b.fp8(&format!("{p}.e_proj"), d, d);
                b.fp8(&format!("{p}.h_proj"), d, d);
                b.norm(format!("{p}.enorm.weight"), d);
                b.norm(format!("{p}.hnorm.weight"), d);
                b.norm(format!("{p}.norm.weight"), d);
                b.hc(&format!("{p}.hc_head"), cfg, nc, 1);
            }
            b.out
        })
        .collect();
    b.out.extend(blocks.into_iter().flatten());
    b.out
}

/// Every tensor a model with `cfg` needs, in the released layout (`spec/checkpoint.md`): embed,
/// head, norm, hc_head_*, the `layers.L.*` blocks (compressor when the ratio is > 0, indexer when
/// it is 4, hash routing for the first `n_hash_layers` layers, FP4 routed experts, FP8 shared
/// expert) and the `mtp.i.*` blocks with their `e_proj`, `h_proj`, norms and `hc_head_*`.
/// Deterministic from `seed`.
pub fn random_tensors(cfg: &Config, seed: u64) -> Vec<SynthTensor> {
    build(cfg, seed, Mode::Exact)
}

/// The tensors of [`random_tensors`] (same names, dtypes, shapes, order) filled fast, for the
/// real dimensions: FP4 expert weights are random bytes (every nibble is a valid e2m1 code),
/// FP8 weights random e4m3 codes of magnitude 1 to 240 (never NaN), BF16 matrices (embed, head,
/// compressors, gate, indexer `weights_proj`) random bf16 over 8 octaves; each with one
/// power-of-two scale (the e8m0 scale tensors hold one value; BF16 gets it in the exponent)
/// putting the RMS within a factor sqrt(2) of `1/sqrt(fan_in)` (1 for the embedding). Filled in
/// parallel, one splitmix stream per 64 KiB chunk: the bytes depend on `seed` only, not on the
/// number of threads. Small tensors are drawn exactly as by `random_tensors` (same values).
pub fn fast_tensors(cfg: &Config, seed: u64) -> Vec<SynthTensor> {
    build(cfg, seed, Mode::Fast)
}

/// `(name, dtype, shape)` of every tensor of [`random_tensors`], in order, without building any.
pub fn tensor_shapes(cfg: &Config) -> Vec<(String, DType, Vec<usize>)> {
    build(cfg, 0, Mode::Shapes).into_iter().map(|t| (t.name, t.dtype, t.shape)).collect()
}

/// Bytes of data of a checkpoint for `cfg` (the sum over [`tensor_shapes`]), without building it.
pub fn stored_bytes(cfg: &Config) -> usize {
    tensor_shapes(cfg).iter().map(|(_, d, s)| s.iter().product::<usize>() * d.size_in_bytes()).sum()
}

/// An in-memory [`Checkpoint`] holding `tensors` (their buffers moved in, not copied).
pub fn in_memory_checkpoint(tensors: Vec<SynthTensor>) -> Result<Checkpoint, LoadError> {
    Checkpoint::from_tensors(tensors.into_iter().map(|t| (t.name, t.dtype, t.shape, t.bytes)))
}

/// The real DeepSeek-V4-Flash geometry (`Config::flash()`: dim, heads, vocab, expert size, every
/// dense weight at full size) with `experts` routed experts per layer instead of 256, and, with
/// `layers = Some(n)`, only the first `n` layers (their compress ratios kept: layers 0-1 window
/// only, then 4 / 128 alternating). With 16 experts a batch-1 token reads exactly the bytes of
/// the real model (6 experts a layer) while the whole model takes ~18 GB.
///
/// `n_hash_layers` is `min(3, n)`, and the hash tables are drawn over the `experts` experts.
/// The MTP block is kept (`n_mtp_layers = 1`, window only as in the release): it is the real
/// geometry, speculative decoding can be benchmarked, and it costs one block (~0.4 GB at 16
/// experts). `max_seq_len` is unchanged. Panics unless `6 <= experts` and `1 <= n <= 43`.
pub fn bench_config(layers: Option<usize>, experts: usize) -> Config {
    let flash = Config::flash();
    let n = layers.unwrap_or(flash.n_layers);
    assert!((1..=flash.n_layers).contains(&n), "bench_config: {n} layers, expected 1..={}", flash.n_layers);
    bench_config_with_ratios(&flash.compress_ratios[..n], experts)
}

/// [`bench_config`] with a chosen mix of layers: `ratios[l]` is layer l's compress ratio (0 =
/// window only, 4 = overlapping compressor + indexer, >= 2 otherwise: 128 in the release); the
/// layer count is `ratios.len()`, and the first `min(3, len)` layers are hash-routed.
pub fn bench_config_with_ratios(ratios: &[usize], experts: usize) -> Config {
    let mut c = Config::flash();
    assert!(
        experts >= c.n_activated_experts,
        "bench_config: {experts} routed experts, need at least the {} a token activates",
        c.n_activated_experts
    );
    assert!(!ratios.is_empty(), "bench_config: no layers");
    let mtp_ratio = c.compress_ratios[c.n_layers..].to_vec();
    c.n_routed_experts = experts;
    c.n_layers = ratios.len();
    c.n_hash_layers = c.n_hash_layers.min(c.n_layers);
    c.compress_ratios = ratios.iter().copied().chain(mtp_ratio).collect();
    if let Err(e) = c.validate() {
        panic!("bench_config: {e}");
    }
    c
}

/// A model built by [`bench_model`], in memory.
pub struct BenchModel {
    pub model: Model,
    /// Bytes of tensor data allocated for it (`stored_bytes(cfg)`), nearly all held by the model.
    pub bytes: usize,
    /// Wall-clock seconds the build took (fill + load).
    pub seconds: f64,
}

/// Build a model for `cfg` in memory from [`fast_tensors`] (no file written, nothing copied
/// after the fill): fill, wrap in an in-memory [`Checkpoint`], `Weights::load`, `Model::new`.
/// For the real Flash dims with 16 experts (`bench_config(None, 16)`) that is ~18 GB.
pub fn bench_model(cfg: &Config, seed: u64) -> Result<BenchModel, LoadError> {
    let t0 = std::time::Instant::now();
    let ck = in_memory_checkpoint(fast_tensors(cfg, seed))?;
    let bytes = ck.data_bytes();
    let w = Weights::load(&ck, cfg)?;
    debug_assert!(ck.unused().is_empty(), "tensors the loader never asked for: {:?}", ck.unused());
    drop(ck);
    Ok(BenchModel { model: Model::new(cfg.clone(), w), bytes, seconds: t0.elapsed().as_secs_f64() })
}

/// The bytes of a safetensors file holding `tensors` (in that order, contiguous): 8-byte
/// little-endian header length, the JSON header `{name: {dtype, shape, data_offsets}}` padded
/// with spaces to a multiple of 8, then the data.
pub fn safetensors_bytes(tensors: &[SynthTensor]) -> Vec<u8> {
    let mut header = Map::new();
    let mut offset = 0usize;
    for t in tensors {
        let end = offset + t.bytes.len();
        let mut e = Map::new();
        e.insert("dtype".into(), Value::from(t.dtype.name()));
        e.insert("shape".into(), Value::from(t.shape.clone()));
        e.insert("data_offsets".into(), Value::from(vec![offset, end]));
        header.insert(t.name.clone(), Value::Object(e));
        offset = end;
    }
    let mut h = serde_json::to_string(&Value::Object(header)).expect("a JSON map serialises").into_bytes();
    while !h.len().is_multiple_of(8) {
        h.push(b' ');
    }
    let mut out = Vec::with_capacity(8 + h.len() + offset);
    out.extend_from_slice(&(h.len() as u64).to_le_bytes());
    out.extend_from_slice(&h);
    for t in tensors {
        out.extend_from_slice(&t.bytes);
    }
    out
}

/// Write `config.json` (`cfg.to_json()`) and `model.safetensors` (`random_tensors(cfg, seed)`)
/// into `dir`, created if missing.
pub fn write_checkpoint(dir: &Path, cfg: &Config, seed: u64) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("config.json"), cfg.to_json())?;
    std::fs::write(dir.join("model.safetensors"), safetensors_bytes(&random_tensors(cfg, seed)))
}

/// A small config with every feature: window-only layers (ratio 0), ratio-4 layers (overlapping
/// compressor + indexer), a ratio-8 layer, two hash-routed layers, one MTP block. Dims are tiny
/// (dim 64, 2 heads of 64 with 16 RoPE dims, 4 experts of 64 with 2 active, vocab 64) but keep
/// the constraints: dim and moe_inter_dim multiples of 32 (FP4 blocks), index_head_dim a power of
/// two (Hadamard), YaRN active (original_seq_len 64 < max_seq_len 512).
pub fn small_config() -> Config {
    // Start from the real config so a field added later keeps a sensible value.
    let mut c = Config::flash();
    c.vocab_size = 64;
    c.dim = 64;
    c.n_layers = 4;
    c.n_heads = 2;
    c.head_dim = 64;
    c.rope_head_dim = 16;
    c.q_lora_rank = 32;
    c.o_lora_rank = 32;
    c.o_groups = 2;
    c.window_size = 8;
    c.n_routed_experts = 4;
    c.n_activated_experts = 2;
    c.n_shared_experts = 1;
    c.moe_inter_dim = 64;
    c.n_hash_layers = 2;
    c.n_mtp_layers = 1;
    c.route_scale = 1.5;
    c.swiglu_limit = 10.0;
    c.index_n_heads = 2;
    c.index_head_dim = 32;
    c.index_topk = 2;
    c.hc_mult = 4;
    c.hc_sinkhorn_iters = 20;
    c.hc_eps = 1e-6;
    c.norm_eps = 1e-6;
    c.rope_theta = 10000.0;
    c.compress_rope_theta = 160000.0;
    c.rope_factor = 4.0;
    c.original_seq_len = 64;
    c.beta_fast = 32.0;
    c.beta_slow = 1.0;
    // layers: window only, 4 (hash), 8, 4; the MTP block window only (as in Flash).
    c.compress_ratios = vec![0, 4, 8, 4, 0];
    c.max_seq_len = 512;
    c
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::Checkpoint;
    use crate::formats::{e2m1_to_f32, e4m3_to_f32, e8m0_to_f32};
    use crate::model::weights::Weights;
    use crate::model::{Logits, Model};
    use crate::quant::ActQuant;

    #[test]
    fn small_config_is_valid_and_round_trips() {
        let cfg = small_config();
        cfg.validate().expect("small_config validates");
        assert_eq!(Config::from_json_str(&cfg.to_json()).expect("to_json parses"), cfg);
        let ratios = &cfg.compress_ratios;
        assert!(ratios.contains(&0) && ratios.contains(&4) && ratios.iter().any(|&r| r > 4));
        assert!(cfg.n_hash_layers > 0 && cfg.n_mtp_layers > 0);
    }

    #[test]
    fn deterministic_and_seed_dependent() {
        let cfg = small_config();
        let (a, b, c) = (random_tensors(&cfg, 7), random_tensors(&cfg, 7), random_tensors(&cfg, 8));
        assert_eq!(a.len(), b.len());
        assert!(a.iter().zip(&b).all(|(x, y)| x.name == y.name && x.bytes == y.bytes));
        let differ = a.iter().zip(&c).filter(|(x, y)| x.bytes != y.bytes).count();
        assert!(differ > a.len() / 2, "seed 8 changed only {differ} of {} tensors", a.len());
    }

    #[test]
    fn codes_and_scales_are_sane() {
        let cfg = small_config();
        let ts = random_tensors(&cfg, 1);
        let find = |n: &str| ts.iter().find(|t| t.name == n).unwrap_or_else(|| panic!("{n} missing"));
        for t in &ts {
            match t.dtype {
                DType::F8E4M3 => assert!(t.bytes.iter().all(|&b| b & 0x7F != 0x7F), "{}: NaN e4m3 code", t.name),
                DType::F8E8M0 => assert!(t.bytes.iter().all(|&b| b != 0xFF), "{}: NaN e8m0 code", t.name),
                _ => {}
            }
        }
        // Dequantised weights ≈ N(0, 1/fan_in), and the codes reach the top of their range.
        let check = |p: &str, fan_in: usize, fp4: bool| {
            let (w, s) = (find(&format!("{p}.weight")), find(&format!("{p}.scale")));
            let (out, inp) = (w.shape[0], if fp4 { w.shape[1] * 2 } else { w.shape[1] });
            let codes: Vec<f32> = if fp4 {
                w.bytes.iter().flat_map(|&b| [e2m1_to_f32(b & 0xF), e2m1_to_f32(b >> 4)]).collect()
            } else {
                w.bytes.iter().map(|&b| e4m3_to_f32(b)).collect()
            };
            let scale = |r: usize, c: usize| {
                let i = if fp4 { r * (inp / 32) + c / 32 } else { (r / 128) * s.shape[1] + c / 128 };
                e8m0_to_f32(s.bytes[i])
            };
            let var = (0..out * inp).map(|i| (codes[i] * scale(i / inp, i % inp)).powi(2) as f64).sum::<f64>() / (out * inp) as f64;
            let want = 1.0 / fan_in as f64;
            assert!((var / want - 1.0).abs() < 0.25, "{p}: variance {var:.4e}, expected about {want:.4e}");
            let top = codes.iter().fold(0f32, |m, c| m.max(c.abs()));
            assert!(top > if fp4 { 3.0 } else { 224.0 }, "{p}: largest code {top}");
        };
        check("layers.0.attn.wq_a", cfg.dim, false);
        check("layers.2.ffn.shared_experts.w2", cfg.moe_inter_dim, false);
        check("layers.1.ffn.experts.3.w1", cfg.dim, true);
        check("mtp.0.ffn.experts.0.w2", cfg.moe_inter_dim, true);
        // Hash routing: distinct valid experts per token.
        let t = find("layers.0.ffn.gate.tid2eid");
        let ids: Vec<i32> = t.bytes.chunks_exact(4).map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
        for row in ids.chunks(cfg.n_activated_experts) {
            assert!(row.iter().all(|&e| e >= 0 && (e as usize) < cfg.n_routed_experts), "{row:?}");
            assert!(row.iter().enumerate().all(|(i, e)| !row[..i].contains(e)), "repeated expert {row:?}");
        }
        assert!(ts.iter().all(|t| !t.name.starts_with("layers.3.ffn.gate.tid2eid")));
        assert!(ts.iter().any(|t| t.name == "layers.2.attn.compressor.ape" && t.shape == [8, cfg.head_dim]));
        assert!(ts.iter().any(|t| t.name == "layers.3.attn.indexer.compressor.ape" && t.shape == [4, 2 * cfg.index_head_dim]));
        assert!(ts.iter().all(|t| !t.name.starts_with("layers.2.attn.indexer")));
    }

    #[test]
    fn written_checkpoint_loads_completely() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cfg = small_config();
        write_checkpoint(dir.path(), &cfg, 42).expect("write_checkpoint");
        let read = Config::from_file(dir.path()).expect("config.json parses");
        assert_eq!(read, cfg);
        // The file is also valid for the safetensors crate (the engine's other readers).
        let bytes = std::fs::read(dir.path().join("model.safetensors")).expect("read back");
        let st = safetensors::SafeTensors::deserialize(&bytes).expect("safetensors accepts the file");
        assert_eq!(st.len(), random_tensors(&cfg, 42).len());
        let ck = Checkpoint::open(dir.path()).expect("Checkpoint::open");
        let w = Weights::load(&ck, &cfg).expect("Weights::load");
        let unused = ck.unused();
        assert!(unused.is_empty(), "tensors the loader never asked for: {unused:?}");
        assert_eq!(w.layers.len(), cfg.n_layers);
        assert_eq!(w.mtp.len(), cfg.n_mtp_layers);

        // Numerically sane: a forward pass over more than the window gives finite, moderate
        // logits that depend on the input.
        let model = Model::new(cfg.clone(), w);
        let tokens: Vec<u32> = (0..24u32).map(|i| (i * 7 + 3) % cfg.vocab_size as u32).collect();
        let mut st = model.new_state();
        let out = model.forward(&tokens, &mut st, ActQuant::On, Logits::All, None).expect("forward");
        assert_eq!(out.logits.len(), tokens.len() * cfg.vocab_size);
        assert!(out.logits.iter().all(|v| v.is_finite()), "non-finite logits");
        assert!(out.hidden.iter().all(|v| v.is_finite()), "non-finite hidden state");
        let rms = (out.logits.iter().map(|v| (v * v) as f64).sum::<f64>() / out.logits.len() as f64).sqrt();
        let hrms = (out.hidden.iter().map(|v| (v * v) as f64).sum::<f64>() / out.hidden.len() as f64).sqrt();
        println!("logit rms {rms:.3}, final hidden rms {hrms:.3}");
        assert!(rms > 0.05 && rms < 50.0, "logit rms {rms}");
        assert!(hrms > 0.1 && hrms < 100.0, "final hidden rms {hrms}");
        let rows: Vec<&[f32]> = out.logits.chunks(cfg.vocab_size).collect();
        assert!(rows.windows(2).any(|w| w[0] != w[1]), "every position gives the same logits");
        // The MTP block runs on the final streams and the following tokens.
        let t = tokens.len() - 1;
        let hidden = &out.hidden[..t * cfg.hc_mult * cfg.dim];
        let mut mst = model.new_mtp_state();
        let m = model.mtp(0, hidden, &tokens[1..], &mut mst, ActQuant::On, Logits::All).expect("mtp");
        assert_eq!(m.logits.len(), t * cfg.vocab_size);
        assert!(m.logits.iter().all(|v| v.is_finite()), "non-finite MTP logits");
    }
}
