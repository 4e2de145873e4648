//! Linear layers with the checkpoint's weight formats, read in place (no dequantised copy):
//! FP8 e4m3 with 128x128 e8m0 block scales, FP4 e2m1 with one e8m0 scale per 32 inputs,
//! and plain BF16 / F32 matrices. `y = x · Wᵀ`, accumulated in f32.

use std::ops::Range;

use rayon::prelude::*;

use crate::checkpoint::{Bytes, DType, TensorRef};
use crate::formats::{bf16_to_f32, e4m3_to_f32, e8m0_to_f32, unpack_e2m1};
use crate::quant::{act_quant_fp8_dequant, ActQuant};

/// GEMM inputs are quantised per 128 values (FP8, power-of-two scales).
pub const ACT_BLOCK: usize = 128;
/// FP8 weights carry one scale per 128x128 block.
pub const FP8_WEIGHT_BLOCK: usize = 128;
/// FP4 weights carry one scale per 32 inputs of a row.
pub const FP4_WEIGHT_BLOCK: usize = 32;

#[derive(Clone)]
pub enum Weight {
    F32(std::sync::Arc<Vec<f32>>),
    Bf16(Bytes),
    /// e4m3 bytes `[out, inp]`, e8m0 scales `[ceil(out/128), ceil(inp/128)]`.
    Fp8 { w: Bytes, scale: Bytes },
    /// packed e2m1 `[out, inp/2]` (low nibble = even input), e8m0 scales `[out, inp/32]`.
    Fp4 { w: Bytes, scale: Bytes },
}

/// A weight matrix `[out, inp]`.
#[derive(Clone)]
pub struct Linear {
    pub out: usize,
    pub inp: usize,
    pub weight: Weight,
}

impl Linear {
    pub fn f32(out: usize, inp: usize, data: Vec<f32>) -> Linear {
        assert_eq!(data.len(), out * inp);
        Linear { out, inp, weight: Weight::F32(std::sync::Arc::new(data)) }
    }

    /// A float matrix as loaded (`Checkpoint::float_matrix`): BF16 stays BF16, F32 stays F32.
    pub fn from_float(t: TensorRef) -> Linear {
        let (out, inp) = (t.shape[0], t.shape[1]);
        let weight = match t.dtype {
            DType::BF16 => Weight::Bf16(t.bytes),
            DType::F32 => Weight::F32(std::sync::Arc::new(
                t.bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect(),
            )),
            other => panic!("float_matrix returned {other:?} for {}", t.name),
        };
        Linear { out, inp, weight }
    }

    pub fn fp8(out: usize, inp: usize, (w, scale): (TensorRef, TensorRef)) -> Linear {
        Linear { out, inp, weight: Weight::Fp8 { w: w.bytes, scale: scale.bytes } }
    }

    pub fn fp4(out: usize, inp: usize, (w, scale): (TensorRef, TensorRef)) -> Linear {
        Linear { out, inp, weight: Weight::Fp4 { w: w.bytes, scale: scale.bytes } }
    }

    /// Whether the weight is block-quantised (its input is then activation-quantised).
    pub fn is_quantized(&self) -> bool {
        matches!(self.weight, Weight::Fp8 { .. } | Weight::Fp4 { .. })
    }

    /// Row `n` of the weight, dequantised exactly (scales are powers of two).
    pub fn row(&self, n: usize, out: &mut [f32]) {
        let k = self.inp;
        assert_eq!(out.len(), k);
        match &self.weight {
            Weight::F32(d) => out.copy_from_slice(&d[n * k..(n + 1) * k]),
            Weight::Bf16(b) => {
                for (o, c) in out.iter_mut().zip(b[n * k * 2..(n + 1) * k * 2].chunks_exact(2)) {
                    *o = bf16_to_f32(u16::from_le_bytes([c[0], c[1]]));
                }
            }
            Weight::Fp8 { w, scale } => {
                let kb = k.div_ceil(FP8_WEIGHT_BLOCK);
                let srow = &scale[(n / FP8_WEIGHT_BLOCK) * kb..][..kb];
                for (i, o) in out.iter_mut().enumerate() {
                    *o = e4m3_to_f32(w[n * k + i]) * e8m0_to_f32(srow[i / FP8_WEIGHT_BLOCK]);
                }
            }
            Weight::Fp4 { w, scale } => {
                unpack_e2m1(&w[n * k / 2..(n + 1) * k / 2], out);
                let srow = &scale[n * (k / FP4_WEIGHT_BLOCK)..][..k / FP4_WEIGHT_BLOCK];
                for (i, o) in out.iter_mut().enumerate() {
                    *o *= e8m0_to_f32(srow[i / FP4_WEIGHT_BLOCK]);
                }
            }
        }
    }

    /// The whole weight dequantised, `[out, inp]` (for tests and small matrices).
    pub fn dequantized(&self) -> Vec<f32> {
        let mut w = vec![0.0; self.out * self.inp];
        for (n, r) in w.chunks_mut(self.inp).enumerate() {
            self.row(n, r);
        }
        w
    }

    /// `y[m, out] = x[m, inp] · Wᵀ`. A quantised weight's input is first quantised to FP8 per
    /// 128 values when `aq` is on: `y = Σ_kb (Σ_{k∈kb} q·w) · s_x · s_w`. Because every scale is a
    /// power of two we multiply the dequantised values, which is the same number, and keep the
    /// per-block partial sums of the spec.
    pub fn forward(&self, x: &[f32], aq: ActQuant) -> Vec<f32> {
        self.forward_rows(x, 0..self.out, aq)
    }

    /// `forward` restricted to the output rows `rows` (a group of a grouped projection).
    pub fn forward_rows(&self, x: &[f32], rows: Range<usize>, aq: ActQuant) -> Vec<f32> {
        let k = self.inp;
        assert_eq!(x.len() % k, 0, "input length {} is not a multiple of {k}", x.len());
        if self.is_quantized() && aq.is_on() {
            matmul_rows(&act_quant_fp8_dequant(x, k, ACT_BLOCK), self, rows, ACT_BLOCK)
        } else {
            matmul_rows(x, self, rows, ACT_BLOCK)
        }
    }
}

/// `y = x · Wᵀ` with f32 partial sums over `block` inputs, parallel over output rows.
fn matmul_rows(x: &[f32], w: &Linear, range: Range<usize>, block: usize) -> Vec<f32> {
    let (k, n) = (w.inp, range.len());
    let m = x.len() / k;
    const ROWS: usize = 16;
    let cols: Vec<Vec<f32>> = (0..n.div_ceil(ROWS))
        .into_par_iter()
        .map(|c| {
            let rows = (range.start + c * ROWS..range.start + ((c + 1) * ROWS).min(n)).collect::<Vec<_>>();
            let mut wrow = vec![0.0; k];
            let mut out = vec![0.0; m * rows.len()];
            for (j, &r) in rows.iter().enumerate() {
                w.row(r, &mut wrow);
                for i in 0..m {
                    out[i * rows.len() + j] = dot_blocked(&x[i * k..(i + 1) * k], &wrow, block);
                }
            }
            out
        })
        .collect();
    let mut y = vec![0.0; m * n];
    for (c, out) in cols.iter().enumerate() {
        let width = out.len() / m.max(1);
        for i in 0..m {
            y[i * n + c * ROWS..i * n + c * ROWS + width].copy_from_slice(&out[i * width..(i + 1) * width]);
        }
    }
    y
}

/// Σ a·b accumulated per `block` values, then across blocks (f32).
pub fn dot_blocked(a: &[f32], b: &[f32], block: usize) -> f32 {
    a.chunks(block).zip(b.chunks(block)).map(|(x, y)| dot(x, y)).sum()
}

pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}
