//! Token embedding (`cuda/embed.cu`), mirroring `Model::embed` and the stream copy of
//! `Model::forward`: `out[t, j·d..(j+1)·d] = E.row(tokens[t])` for each of the `nc` streams.
//! The embedding is uploaded in its stored precision (BF16 or F32) and widened in the kernel.
//! Exact.

use dsv4_reference::linear::{Linear, Weight};

use crate::launch::{GpuError, KernelArg, LaunchCfg};
use crate::ops::norm::check_len;
use crate::ptx;
use crate::{Buf, Gpu};

/// The embedding table `[vocab, d]` on the device.
pub struct DevEmbed {
    pub w: Buf,
    pub vocab: usize,
    pub d: usize,
    /// BF16 (else F32).
    pub bf16: bool,
}

impl DevEmbed {
    /// Upload an embedding stored as BF16 or F32 (quantised formats are refused).
    pub fn upload(gpu: &Gpu, e: &Linear) -> Result<DevEmbed, GpuError> {
        let (vocab, d) = (e.out, e.inp);
        match &e.weight {
            Weight::Bf16(b) => {
                if b.len() != vocab * d * 2 {
                    return Err(GpuError(format!("embedding: {} bytes for [{vocab}, {d}] bf16", b.len())));
                }
                Ok(DevEmbed { w: gpu.upload_bytes(b)?, vocab, d, bf16: true })
            }
            Weight::F32(v) => Ok(DevEmbed { w: gpu.upload_f32(v)?, vocab, d, bf16: false }),
            _ => Err(GpuError("embedding: only BF16 or F32 tables are supported".into())),
        }
    }
}

/// Gather `t` tokens (device u32 `[t]`) into `out` `[t, nc·d]`. Ids `>= vocab` give NaN rows.
pub fn embed_into(gpu: &Gpu, e: &DevEmbed, tokens: &Buf, t: usize, nc: usize, out: &Buf) -> Result<(), GpuError> {
    if t == 0 || e.d == 0 || nc == 0 {
        return Ok(());
    }
    check_len(tokens, t, "embed tokens")?;
    check_len(out, t * nc * e.d, "embed out")?;
    const BLOCK: u64 = 256;
    let grid = ((t * e.d) as u64).div_ceil(BLOCK);
    if grid > u32::MAX as u64 {
        return Err(GpuError("embed: too many elements for one launch".into()));
    }
    let kernel = if e.bf16 { "embed_gather_bf16" } else { "embed_gather_f32" };
    gpu.launch(
        &ptx::EMBED,
        kernel,
        LaunchCfg::linear(grid as u32, BLOCK as u32),
        &[
            e.w.arg(),
            tokens.arg(),
            out.arg(),
            KernelArg::U32(t as u32),
            KernelArg::U32(e.d as u32),
            KernelArg::U32(nc as u32),
            KernelArg::U32(e.vocab as u32),
        ],
    )
}

/// Host token ids (checked against the vocabulary) into a new `[tokens.len(), nc·d]` buffer.
pub fn embed(gpu: &Gpu, e: &DevEmbed, tokens: &[u32], nc: usize) -> Result<Buf, GpuError> {
    if let Some((i, &id)) = tokens.iter().enumerate().find(|(_, &id)| id as usize >= e.vocab) {
        return Err(GpuError(format!("embed: token id {id} at index {i} is outside the vocabulary ({})", e.vocab)));
    }
    let ids = gpu.upload_u32(tokens)?;
    let out = gpu.alloc(tokens.len() * nc * e.d * 4)?;
    embed_into(gpu, e, &ids, tokens.len(), nc, &out)?;
    Ok(out)
}
