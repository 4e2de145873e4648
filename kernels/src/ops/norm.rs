//! RMSNorm (`cuda/norm.cu`), mirroring `reference::ops::norm::{rms_norm_inplace,
//! rms_norm_unweighted_inplace}`: `y = w * (x * 1/sqrt(mean(x²) + eps))` per row of width `n`,
//! or without `w` per head. In place when `y` is `x`. One CTA per row.
//!
//! Tolerance vs the reference: ~1e-6 relative (the sum of squares is reduced in a tree, the
//! reference sums sequentially; everything else is rounded as in the reference).

use crate::launch::{GpuError, KernelArg, LaunchCfg};
use crate::ptx;
use crate::{Buf, Gpu};

/// A norm weight `[n]` on the device (attn_norm, ffn_norm, q_norm, kv_norm, the final norm, ...).
pub struct DevNorm {
    pub w: Buf,
    pub n: usize,
}

impl DevNorm {
    pub fn upload(gpu: &Gpu, w: &[f32]) -> Result<DevNorm, GpuError> {
        Ok(DevNorm { w: gpu.upload_f32(w)?, n: w.len() })
    }
}

/// Threads per CTA for a row of `n` values: a multiple of 32, at most `max`.
pub(crate) fn block_for(n: usize, max: u32) -> u32 {
    (n.div_ceil(32) * 32).clamp(32, max as usize) as u32
}

/// An error unless `buf` holds at least `elems` 4-byte elements.
pub(crate) fn check_len(buf: &Buf, elems: usize, what: &str) -> Result<(), GpuError> {
    if buf.bytes() < elems * 4 {
        return Err(GpuError(format!("{what}: buffer of {} bytes, need {} elements of 4 bytes", buf.bytes(), elems)));
    }
    Ok(())
}

fn to_u32(v: usize, what: &str) -> Result<u32, GpuError> {
    u32::try_from(v).map_err(|_| GpuError(format!("{what} = {v} does not fit in u32")))
}

/// The general form: for each of `rows` rows, the first `n` values of `x` (rows `x_stride` apart)
/// normalised into `y` (rows `y_stride` apart), scaled by `w` when given. `y` may be `x` (same
/// strides) for in place.
#[allow(clippy::too_many_arguments)]
pub fn rms_norm_strided(
    gpu: &Gpu,
    x: &Buf,
    x_stride: usize,
    w: Option<&DevNorm>,
    y: &Buf,
    y_stride: usize,
    rows: usize,
    n: usize,
    eps: f32,
) -> Result<(), GpuError> {
    if rows == 0 || n == 0 {
        return Ok(());
    }
    if x_stride < n || y_stride < n {
        return Err(GpuError(format!("rms_norm: strides {x_stride}/{y_stride} below the row width {n}")));
    }
    check_len(x, (rows - 1) * x_stride + n, "rms_norm x")?;
    check_len(y, (rows - 1) * y_stride + n, "rms_norm y")?;
    let w_arg = match w {
        Some(w) if w.n == n => w.w.arg(),
        Some(w) => return Err(GpuError(format!("rms_norm: weight of {} for rows of {n}", w.n))),
        None => KernelArg::Ptr(0),
    };
    gpu.launch(
        &ptx::NORM,
        "norm_rms",
        LaunchCfg::linear(to_u32(rows, "rows")?, block_for(n, 256)),
        &[
            x.arg(),
            w_arg,
            y.arg(),
            KernelArg::U32(rows as u32),
            KernelArg::U32(to_u32(n, "n")?),
            KernelArg::U32(to_u32(x_stride, "x_stride")?),
            KernelArg::U32(to_u32(y_stride, "y_stride")?),
            KernelArg::F32(eps),
        ],
    )
}

/// `y[rows, n] = rms_norm(x[rows, n]) * w` (`n = w.n`); `y` may be `x`.
pub fn rms_norm_into(gpu: &Gpu, x: &Buf, w: &DevNorm, y: &Buf, rows: usize, eps: f32) -> Result<(), GpuError> {
    rms_norm_strided(gpu, x, w.n, Some(w), y, w.n, rows, w.n, eps)
}

/// `reference::ops::norm::rms_norm_inplace` on `rows` rows of `w.n`.
pub fn rms_norm_inplace(gpu: &Gpu, x: &Buf, w: &DevNorm, rows: usize, eps: f32) -> Result<(), GpuError> {
    rms_norm_into(gpu, x, w, x, rows, eps)
}

/// `reference::ops::norm::rms_norm` into a new buffer.
pub fn rms_norm(gpu: &Gpu, x: &Buf, w: &DevNorm, rows: usize, eps: f32) -> Result<Buf, GpuError> {
    let y = gpu.alloc(rows * w.n * 4)?;
    rms_norm_into(gpu, x, w, &y, rows, eps)?;
    Ok(y)
}

/// `reference::ops::norm::rms_norm_unweighted_inplace`: `rows` rows of `n` (e.g. `rows = T·H`,
/// `n = head_dim` for the per-head q norm), each scaled by its own `1/sqrt(mean(x²)+eps)`.
pub fn rms_norm_unweighted_inplace(gpu: &Gpu, x: &Buf, rows: usize, n: usize, eps: f32) -> Result<(), GpuError> {
    rms_norm_strided(gpu, x, n, None, x, n, rows, n, eps)
}
