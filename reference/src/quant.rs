//! Activation quantisation: part of the model's semantics (`../shared/spec/model.md`,
//! "Activation quantisation"). Scales are powers of two (ue8m0), so `q * s` is exact.

use crate::formats::{ceil_pow2, e2m1_to_f32, f32_to_e2m1, round_e4m3, E2M1_MAX, E4M3_MAX};

/// Whether the activation-quantisation simulation runs. `On` is the model's real semantics;
/// `Off` is the "smooth" mode of the golden vectors (weights are still the stored FP8/FP4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ActQuant {
    On,
    Off,
}

impl ActQuant {
    pub fn is_on(self) -> bool {
        self == ActQuant::On
    }
}

/// FP8 scale of one block: `ceil_pow2(max(amax, 1e-4) * f32(1/448))`.
pub fn fp8_block_scale(block: &[f32]) -> f32 {
    let amax = block.iter().fold(1e-4f32, |m, v| m.max(v.abs()));
    ceil_pow2(amax * (1.0f32 / E4M3_MAX))
}

/// `act_quant_fp8(x, block)` on the rows of `x` (last dim `x.len() / rows`, a multiple of
/// nothing in particular: a short last block is allowed). Returns the quantised values as f32
/// (each an e4m3 value) and one scale per block, row-major `[rows, ceil(cols/block)]`.
pub fn act_quant_fp8(x: &[f32], cols: usize, block: usize) -> (Vec<f32>, Vec<f32>) {
    let nb = cols.div_ceil(block);
    let mut q = vec![0.0; x.len()];
    let mut scales = Vec::with_capacity(x.len() / cols * nb);
    for (row, qrow) in x.chunks(cols).zip(q.chunks_mut(cols)) {
        for (blk, qblk) in row.chunks(block).zip(qrow.chunks_mut(block)) {
            let s = fp8_block_scale(blk);
            for (v, qv) in blk.iter().zip(qblk.iter_mut()) {
                *qv = round_e4m3((v / s).clamp(-E4M3_MAX, E4M3_MAX));
            }
            scales.push(s);
        }
    }
    (q, scales)
}

/// `act_quant_fp8` multiplied back: every value replaced by `q · s` of its block, blocks
/// restarting at each row of `cols` (what a GEMM with quantised activations sees; exact).
pub fn act_quant_fp8_dequant(x: &[f32], cols: usize, block: usize) -> Vec<f32> {
    let (q, s) = act_quant_fp8(x, cols, block);
    let nb = cols.div_ceil(block);
    q.iter().enumerate().map(|(i, v)| v * s[(i / cols) * nb + (i % cols) / block]).collect()
}

/// The "in place" form: every value replaced by `q * s` (the window-KV and compressed-KV
/// FP8 simulation uses block 64 on the non-RoPE dims).
pub fn act_quant_fp8_inplace(x: &mut [f32], block: usize) {
    for blk in x.chunks_mut(block) {
        let s = fp8_block_scale(blk);
        for v in blk.iter_mut() {
            *v = round_e4m3((*v / s).clamp(-E4M3_MAX, E4M3_MAX)) * s;
        }
    }
}

/// `act_quant_fp4(x, 32)` in place: `amax = max(|x|, 6·2^-126)`, `s = ceil_pow2(amax * f32(1/6))`,
/// `x := e2m1_rne(clamp(x/s, ±6)) * s`.
pub fn act_quant_fp4_inplace(x: &mut [f32], block: usize) {
    for blk in x.chunks_mut(block) {
        let amax = blk.iter().fold(E2M1_MAX * 2f32.powi(-126), |m, v| m.max(v.abs()));
        let s = ceil_pow2(amax * (1.0f32 / E2M1_MAX));
        for v in blk.iter_mut() {
            *v = e2m1_to_f32(f32_to_e2m1((*v / s).clamp(-E2M1_MAX, E2M1_MAX))) * s;
        }
    }
}
