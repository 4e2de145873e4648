//! Activation-quantisation simulation (`cuda/quant.cu`), mirroring `dsv4_reference::quant`:
//! `act_quant_fp8` (codes + scales), its dequantised "q·s" form (the input of a quantised
//! Linear, and in place the KV non-RoPE dims), and `act_quant_fp4_inplace`. All results are
//! bit-identical to the reference.

use crate::gpu::{Buf, Gpu};
use crate::launch::{GpuError, KernelArg, LaunchCfg};
use crate::ptx;

/// Quantisation blocks handled by one CTA (one warp each).
const BLOCKS_PER_CTA: usize = 4;

fn check_len(x: &Buf, elems: usize, what: &str) -> Result<(), GpuError> {
    if x.bytes() < elems * 4 {
        return Err(GpuError(format!("{what}: buffer of {} bytes holds fewer than {elems} f32", x.bytes())));
    }
    Ok(())
}

fn ctas(blocks: usize) -> Result<u32, GpuError> {
    u32::try_from(blocks.div_ceil(BLOCKS_PER_CTA)).map_err(|_| GpuError(format!("act quant: {blocks} blocks is too many for one launch")))
}

/// `x[r, c] := q·s` for `r < rows`, `c < n_first`, blocks of `block` along each row (a short last
/// block allowed), rows of `width` f32. Columns `n_first..width` are untouched. Mirrors
/// `act_quant_fp8_inplace(&mut row[..n_first], block)` applied to every row.
pub fn act_quant_fp8_inplace(gpu: &Gpu, x: &Buf, rows: usize, width: usize, n_first: usize, block: usize) -> Result<(), GpuError> {
    fp8_qdq(gpu, x, x, rows, width, n_first, block)
}

/// A new buffer `[rows, cols]` holding the dequantised FP8 act quant `q·s` of `x` per `block`
/// values of each row: exactly the values `Linear::forward` multiplies with a quantised weight.
pub fn act_quant_fp8_dequant(gpu: &Gpu, x: &Buf, rows: usize, cols: usize, block: usize) -> Result<Buf, GpuError> {
    let y = gpu.alloc_poisoned(rows * cols * 4)?;
    fp8_qdq(gpu, x, &y, rows, cols, cols, block)?;
    Ok(y)
}

fn fp8_qdq(gpu: &Gpu, x: &Buf, y: &Buf, rows: usize, width: usize, n_first: usize, block: usize) -> Result<(), GpuError> {
    if block == 0 || n_first > width {
        return Err(GpuError(format!("act_quant_fp8: block {block}, n_first {n_first} > width {width}?")));
    }
    check_len(x, rows * width, "act_quant_fp8 input")?;
    check_len(y, rows * width, "act_quant_fp8 output")?;
    let blocks = rows * n_first.div_ceil(block);
    if blocks == 0 {
        return Ok(());
    }
    let u = |v: usize| u32::try_from(v).map(KernelArg::U32).map_err(|_| GpuError(format!("act_quant_fp8: {v} does not fit u32")));
    gpu.launch(&ptx::QUANT, "quant_fp8_qdq", LaunchCfg::linear(ctas(blocks)?, 128), &[x.arg(), y.arg(), u(rows)?, u(width)?, u(n_first)?, u(block)?])
}

/// `act_quant_fp8(x, cols, block)`: e4m3 codes (u8 `[rows, cols]`) and f32 scales
/// (`[rows, ceil(cols / block)]`).
pub fn act_quant_fp8(gpu: &Gpu, x: &Buf, rows: usize, cols: usize, block: usize) -> Result<(Buf, Buf), GpuError> {
    if block == 0 {
        return Err(GpuError("act_quant_fp8: block 0".into()));
    }
    check_len(x, rows * cols, "act_quant_fp8 input")?;
    let nb = cols.div_ceil(block);
    let q = gpu.alloc_poisoned(rows * cols)?;
    let s = gpu.alloc_poisoned(rows * nb * 4)?;
    if rows * nb > 0 {
        let u = |v: usize| u32::try_from(v).map(KernelArg::U32).map_err(|_| GpuError(format!("act_quant_fp8: {v} does not fit u32")));
        gpu.launch(&ptx::QUANT, "quant_fp8_codes", LaunchCfg::linear(ctas(rows * nb)?, 128), &[x.arg(), q.arg(), s.arg(), u(rows)?, u(cols)?, u(block)?])?;
    }
    Ok((q, s))
}

/// `act_quant_fp4_inplace(&mut x[..len], block)`: contiguous blocks of `block` values (a short
/// last block allowed), `x := e2m1(x/s)·s`.
pub fn act_quant_fp4_inplace(gpu: &Gpu, x: &Buf, len: usize, block: usize) -> Result<(), GpuError> {
    if block == 0 {
        return Err(GpuError("act_quant_fp4: block 0".into()));
    }
    let block32 = u32::try_from(block).map_err(|_| GpuError(format!("act_quant_fp4: block {block}")))?;
    check_len(x, len, "act_quant_fp4")?;
    if len == 0 {
        return Ok(());
    }
    gpu.launch(
        &ptx::QUANT,
        "quant_fp4_qdq",
        LaunchCfg::linear(ctas(len.div_ceil(block))?, 128),
        &[x.arg(), KernelArg::U64(len as u64), KernelArg::U32(block32)],
    )
}
