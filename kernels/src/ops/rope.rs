//! Rotary position embedding (`cuda/rope.cu`), mirroring `reference::ops::rope::Rope::apply`
//! (plain and YaRN): the reference's own `Rope::freqs` are uploaded, the kernel forms
//! `f32(pos)·f_i` and its f64 cos/sin as the reference does, and rotates the pairs of the last
//! `rd` dims of every head, forward or inverse.
//!
//! Positions: either one start for all rows (`Positions::Start(pos0)`: row `r` at `pos0 + r`, a
//! single chunk), or a device array of one u32 per row (`Positions::PerRow`), for steps that mix
//! several sequences or for compressed entries (`b·ratio`); `positions_for_chunks` builds it.
//!
//! `norm_rope_strided` fuses the per-head RMSNorm that precedes RoPE in the model (q: unweighted
//! per head; kv and compressed entries: weighted by kv_norm / the compressor norm).
//!
//! Tolerance: bit-exact with the reference except with probability ~2^-28 per value (see the
//! .cu file; 0 mismatches in 7.7e7 host-simulated (pos, freq) pairs); tests allow 1e-6 relative.

use dsv4_reference::ops::rope::Rope;

use crate::launch::{GpuError, KernelArg, LaunchCfg};
use crate::ops::norm::check_len;
use crate::ptx;
use crate::{Buf, Gpu};

/// One RoPE configuration on the device: `freqs` f32 `[rd/2]`.
pub struct DevRope {
    pub freqs: Buf,
    /// `rd / 2`.
    pub half: usize,
}

impl DevRope {
    pub fn upload(gpu: &Gpu, rope: &Rope) -> Result<DevRope, GpuError> {
        Ok(DevRope { freqs: gpu.upload_f32(&rope.freqs)?, half: rope.freqs.len() })
    }
    /// `rope_head_dim`.
    pub fn rd(&self) -> usize {
        2 * self.half
    }
}

/// Where each row is.
#[derive(Clone, Copy)]
pub enum Positions<'a> {
    /// Row `r` at position `pos0 + r`.
    Start(u32),
    /// u32 `[rows]`: row `r` at `pos[r]`.
    PerRow(&'a Buf),
}

/// The per-row positions of a step made of chunks `(pos0, len)` in row order.
pub fn positions_for_chunks(chunks: &[(usize, usize)]) -> Vec<u32> {
    chunks.iter().flat_map(|&(p0, n)| (p0..p0 + n).map(|p| p as u32)).collect()
}

/// Rotate, in place, the last `rope.rd()` dims of each of the `heads` heads (width `hd`,
/// contiguous from the row start) of `rows` rows of `x` placed `stride` f32 apart.
/// `inverse` rotates by minus the angle (the attention output).
#[allow(clippy::too_many_arguments)]
pub fn rope_apply_strided(
    gpu: &Gpu,
    rope: &DevRope,
    x: &Buf,
    rows: usize,
    heads: usize,
    hd: usize,
    stride: usize,
    pos: Positions,
    inverse: bool,
) -> Result<(), GpuError> {
    let total = rows * heads * rope.half;
    if total == 0 {
        return Ok(());
    }
    if rope.rd() > hd || heads * hd > stride {
        return Err(GpuError(format!("rope: rd {} hd {hd} heads {heads} stride {stride} do not fit", rope.rd())));
    }
    if total > u32::MAX as usize {
        return Err(GpuError(format!("rope: {total} pairs exceed one launch")));
    }
    check_len(x, (rows - 1) * stride + heads * hd, "rope x")?;
    let (pos_arg, pos0) = match pos {
        Positions::Start(p) => (KernelArg::Ptr(0), p),
        Positions::PerRow(b) => {
            check_len(b, rows, "rope positions")?;
            (b.arg(), 0)
        }
    };
    const BLOCK: u32 = 128;
    gpu.launch(
        &ptx::ROPE,
        "rope_apply",
        LaunchCfg::linear((total as u32).div_ceil(BLOCK), BLOCK),
        &[
            x.arg(),
            KernelArg::U32(rows as u32),
            KernelArg::U32(heads as u32),
            KernelArg::U32(hd as u32),
            KernelArg::U32(rope.half as u32),
            KernelArg::U32(stride as u32),
            rope.freqs.arg(),
            pos_arg,
            KernelArg::U32(pos0),
            KernelArg::I32(inverse as i32),
        ],
    )
}

/// `Rope::apply` on rows of `heads·hd` values (`[rows, heads·hd]` contiguous).
#[allow(clippy::too_many_arguments)]
pub fn rope_apply(gpu: &Gpu, rope: &DevRope, x: &Buf, rows: usize, heads: usize, hd: usize, pos: Positions, inverse: bool) -> Result<(), GpuError> {
    rope_apply_strided(gpu, rope, x, rows, heads, hd, heads * hd, pos, inverse)
}

/// The per-head RMSNorm (weighted by `norm` when given, else unweighted) followed by the RoPE
/// rotation, in place, on `rows` rows of `heads` heads of width `hd` placed `stride` f32 apart:
/// the q path of `attn_queries` (`rms_norm_unweighted` + `apply`) or, with `heads = 1` and
/// `kv_norm`, the kv path of `attn_window_kv` and of compressed entries. Bit-identical to
/// `norm::rms_norm_strided` followed by `rope_apply_strided`.
#[allow(clippy::too_many_arguments)]
pub fn norm_rope_strided(
    gpu: &Gpu,
    rope: &DevRope,
    x: &Buf,
    norm: Option<&crate::ops::norm::DevNorm>,
    rows: usize,
    heads: usize,
    hd: usize,
    stride: usize,
    eps: f32,
    pos: Positions,
    inverse: bool,
) -> Result<(), GpuError> {
    if rows == 0 || heads == 0 || hd == 0 {
        return Ok(());
    }
    if rope.rd() > hd || heads * hd > stride {
        return Err(GpuError(format!("norm_rope: rd {} hd {hd} heads {heads} stride {stride} do not fit", rope.rd())));
    }
    let ctas = rows * heads;
    if ctas > u32::MAX as usize {
        return Err(GpuError(format!("norm_rope: {ctas} heads exceed one launch")));
    }
    check_len(x, (rows - 1) * stride + heads * hd, "norm_rope x")?;
    let w_arg = match norm {
        Some(w) if w.n == hd => w.w.arg(),
        Some(w) => return Err(GpuError(format!("norm_rope: weight of {} for heads of {hd}", w.n))),
        None => KernelArg::Ptr(0),
    };
    let (pos_arg, pos0) = match pos {
        Positions::Start(p) => (KernelArg::Ptr(0), p),
        Positions::PerRow(b) => {
            check_len(b, rows, "norm_rope positions")?;
            (b.arg(), 0)
        }
    };
    gpu.launch(
        &ptx::ROPE,
        "rope_norm_apply",
        LaunchCfg::linear(ctas as u32, crate::ops::norm::block_for(hd, 256)),
        &[
            x.arg(),
            w_arg,
            KernelArg::U32(rows as u32),
            KernelArg::U32(heads as u32),
            KernelArg::U32(hd as u32),
            KernelArg::U32(rope.half as u32),
            KernelArg::U32(stride as u32),
            KernelArg::F32(eps),
            rope.freqs.arg(),
            pos_arg,
            KernelArg::U32(pos0),
            KernelArg::I32(inverse as i32),
        ],
    )
}
