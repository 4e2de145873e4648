//! Token choice on the device (`cuda/sampling.cu`), mirroring the engine's host sampler
//! (`engine/src/sampling.rs`): greedy argmax (ties to the lower id), log-softmax (f64 sum),
//! top-n ids (total order, ties to the lower id) and temperature + top-k + top-p sampling driven
//! by one uniform per row (the `Rng::next_f64` draw the host would make).
//!
//! Exactness: argmax and top-n are exact; log-softmax equals the host's up to the f64 sum's
//! order (1 f32 ulp at most, in practice identical); `sample` picks the host's token unless the
//! uniform lands within ~1e-15 (bisect kernel; ~1e-13 for the radix kernel's 2^-60 fixed-point
//! masses at V = 129280) of a cumulative-probability boundary. `logprobs` gives
//! the host's `Sampled::{logprob, top}` for chosen tokens (log-softmax, top-n and gathers on the
//! device).
//!
//! Cost (one CTA per row): argmax, log-softmax and gather are one pass over the row; top-n is n
//! passes; a non-greedy `sample` (radix kernel) is ~27 passes (three 8-digit radix searches, an
//! f64 exp per token in about five of them); the first version (`SampleKernel::Bisect`, 64-step
//! bisections, ~195 passes) is kept as a cross-check. Both still read the whole row per pass
//! from one SM: a multi-CTA version is future work.
//! All functions work on `rows` rows of `vocab` f32 logits, one CTA per row.

use crate::launch::{GpuError, KernelArg, LaunchCfg};
use crate::ops::norm::{block_for, check_len};
use crate::ptx;
use crate::{Buf, Gpu};

fn cfg(rows: usize, vocab: usize) -> Result<LaunchCfg, GpuError> {
    let rows = u32::try_from(rows).map_err(|_| GpuError("sampling: too many rows".into()))?;
    if vocab == 0 || vocab > u32::MAX as usize - 1 {
        return Err(GpuError(format!("sampling: vocabulary of {vocab}")));
    }
    Ok(LaunchCfg::linear(rows, block_for(vocab, 1024)))
}

/// Greedy ids: `out` u32 `[rows]`.
pub fn argmax_into(gpu: &Gpu, logits: &Buf, rows: usize, vocab: usize, out: &Buf) -> Result<(), GpuError> {
    if rows == 0 {
        return Ok(());
    }
    check_len(logits, rows * vocab, "argmax logits")?;
    check_len(out, rows, "argmax out")?;
    gpu.launch(
        &ptx::SAMPLING,
        "sampling_argmax",
        cfg(rows, vocab)?,
        &[logits.arg(), KernelArg::U32(rows as u32), KernelArg::U32(vocab as u32), out.arg()],
    )
}

/// Greedy ids, downloaded.
pub fn argmax(gpu: &Gpu, logits: &Buf, rows: usize, vocab: usize) -> Result<Vec<u32>, GpuError> {
    let out = gpu.alloc(rows * 4)?;
    argmax_into(gpu, logits, rows, vocab, &out)?;
    out.download_u32()
}

/// The host's `log_softmax` per row: `lse` f32 `[rows]` and, when given, `logp` f32
/// `[rows, vocab]` (`logp = logit - lse`).
pub fn log_softmax_into(gpu: &Gpu, logits: &Buf, rows: usize, vocab: usize, logp: Option<&Buf>, lse: &Buf) -> Result<(), GpuError> {
    if rows == 0 {
        return Ok(());
    }
    check_len(logits, rows * vocab, "log_softmax logits")?;
    check_len(lse, rows, "log_softmax lse")?;
    if let Some(l) = logp {
        check_len(l, rows * vocab, "log_softmax logp")?;
    }
    gpu.launch(
        &ptx::SAMPLING,
        "sampling_log_softmax",
        cfg(rows, vocab)?,
        &[logits.arg(), KernelArg::U32(rows as u32), KernelArg::U32(vocab as u32), logp.map_or(KernelArg::Ptr(0), Buf::arg), lse.arg()],
    )
}

/// The `n` largest ids of each row of `vals` (descending by `f32::total_cmp`, ties to the lower
/// id): `out` u32 `[rows, n]`. Give it the log-softmax rows to get the host's top logprobs.
pub fn top_n_into(gpu: &Gpu, vals: &Buf, rows: usize, vocab: usize, n: usize, out: &Buf) -> Result<(), GpuError> {
    if rows == 0 || n == 0 {
        return Ok(());
    }
    if n > vocab {
        return Err(GpuError(format!("top_n: n = {n} above the vocabulary {vocab}")));
    }
    check_len(vals, rows * vocab, "top_n vals")?;
    check_len(out, rows * n, "top_n out")?;
    gpu.launch(
        &ptx::SAMPLING,
        "sampling_topn",
        cfg(rows, vocab)?,
        &[vals.arg(), KernelArg::U32(rows as u32), KernelArg::U32(vocab as u32), KernelArg::U32(n as u32), out.arg()],
    )
}

/// One row's sampling parameters (the engine's `SamplingParams` plus the row's uniform draw).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RowSampling {
    /// 0 = greedy.
    pub temperature: f32,
    /// 1 = off.
    pub top_p: f32,
    /// 0 = off.
    pub top_k: u32,
    /// Uniform in [0, 1): `Rng::next_f64()` of the request's generator (unused when greedy, but
    /// the host sampler draws only when not greedy, so draw it only then).
    pub uniform: f64,
}

/// Device-side per-row parameters: temperature f32, top_p f32, top_k u32, uniform f64, each `[rows]`.
/// Which sampling kernel: `Radix` (the default: ~27 passes over the row, fixed-point masses) or
/// `Bisect` (the first version: ~195 passes, f64 masses; kept as a cross-check).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum SampleKernel {
    #[default]
    Radix,
    Bisect,
}

/// `sample_into_with(.., SampleKernel::Radix)`.
pub fn sample_into(gpu: &Gpu, logits: &Buf, rows: usize, vocab: usize, params: (&Buf, &Buf, &Buf, &Buf), out: &Buf) -> Result<(), GpuError> {
    sample_into_with(gpu, logits, rows, vocab, params, out, SampleKernel::Radix)
}

/// One sampled id per row into `out` u32 `[rows]`, with the given kernel version.
pub fn sample_into_with(
    gpu: &Gpu,
    logits: &Buf,
    rows: usize,
    vocab: usize,
    params: (&Buf, &Buf, &Buf, &Buf),
    out: &Buf,
    kernel: SampleKernel,
) -> Result<(), GpuError> {
    if rows == 0 {
        return Ok(());
    }
    let (temperature, top_p, top_k, uniform) = params;
    check_len(logits, rows * vocab, "sample logits")?;
    check_len(temperature, rows, "sample temperature")?;
    check_len(top_p, rows, "sample top_p")?;
    check_len(top_k, rows, "sample top_k")?;
    check_len(uniform, rows * 2, "sample uniform (f64)")?;
    check_len(out, rows, "sample out")?;
    let name = match kernel {
        SampleKernel::Radix => "sampling_sample_radix",
        SampleKernel::Bisect => "sampling_sample",
    };
    gpu.launch(
        &ptx::SAMPLING,
        name,
        cfg(rows, vocab)?,
        &[
            logits.arg(),
            KernelArg::U32(rows as u32),
            KernelArg::U32(vocab as u32),
            temperature.arg(),
            top_p.arg(),
            top_k.arg(),
            uniform.arg(),
            out.arg(),
        ],
    )
}

/// Sample one token per row with host-given parameters (radix kernel); returns the ids.
pub fn sample(gpu: &Gpu, logits: &Buf, rows: usize, vocab: usize, params: &[RowSampling]) -> Result<Vec<u32>, GpuError> {
    sample_with(gpu, logits, rows, vocab, params, SampleKernel::Radix)
}

/// `sample` with the given kernel version.
pub fn sample_with(gpu: &Gpu, logits: &Buf, rows: usize, vocab: usize, params: &[RowSampling], kernel: SampleKernel) -> Result<Vec<u32>, GpuError> {
    if params.len() != rows {
        return Err(GpuError(format!("sample: {} parameter rows for {rows} rows", params.len())));
    }
    let t = gpu.upload_f32(&params.iter().map(|p| p.temperature).collect::<Vec<_>>())?;
    let p = gpu.upload_f32(&params.iter().map(|p| p.top_p).collect::<Vec<_>>())?;
    let k = gpu.upload_u32(&params.iter().map(|p| p.top_k).collect::<Vec<_>>())?;
    let u = gpu.upload_bytes(&params.iter().flat_map(|p| p.uniform.to_le_bytes()).collect::<Vec<_>>())?;
    let out = gpu.alloc(rows * 4)?;
    sample_into_with(gpu, logits, rows, vocab, (&t, &p, &k, &u), &out, kernel)?;
    out.download_u32()
}

/// `out[r][j] = vals[r][ids[r][j]]` for `ids` u32 `[rows, n]` (NaN for ids outside the
/// vocabulary): the logprobs of chosen / top tokens from the log-softmax rows.
pub fn gather_into(gpu: &Gpu, vals: &Buf, rows: usize, vocab: usize, ids: &Buf, n: usize, out: &Buf) -> Result<(), GpuError> {
    let total = rows * n;
    if total == 0 {
        return Ok(());
    }
    check_len(vals, rows * vocab, "gather vals")?;
    check_len(ids, total, "gather ids")?;
    check_len(out, total, "gather out")?;
    let grid = u32::try_from(total.div_ceil(128)).map_err(|_| GpuError("gather: too many values".into()))?;
    gpu.launch(
        &ptx::SAMPLING,
        "sampling_gather",
        LaunchCfg::linear(grid, 128),
        &[vals.arg(), KernelArg::U32(rows as u32), KernelArg::U32(vocab as u32), ids.arg(), KernelArg::U32(n as u32), out.arg()],
    )
}

/// One row's logprobs as the host sampler reports them (`Sampled::logprob` and `Sampled::top`).
#[derive(Clone, Debug, PartialEq)]
pub struct RowLogprobs {
    pub logprob: f32,
    pub top: Vec<(u32, f32)>,
}

/// The chosen tokens' logprobs and the `n` most likely alternatives of each row (n = 0: none),
/// computed on the device (log-softmax, top-n, gathers); downloads only `rows·(n+1)` ids/values.
pub fn logprobs(gpu: &Gpu, logits: &Buf, rows: usize, vocab: usize, chosen: &[u32], n: usize) -> Result<Vec<RowLogprobs>, GpuError> {
    if chosen.len() != rows {
        return Err(GpuError(format!("logprobs: {} chosen tokens for {rows} rows", chosen.len())));
    }
    let n = n.min(vocab);
    let logp = gpu.alloc(rows * vocab * 4)?;
    let lse = gpu.alloc(rows.max(1) * 4)?;
    log_softmax_into(gpu, logits, rows, vocab, Some(&logp), &lse)?;
    let ids = gpu.upload_u32(chosen)?;
    let lp = gpu.alloc(rows.max(1) * 4)?;
    gather_into(gpu, &logp, rows, vocab, &ids, 1, &lp)?;
    let lp = if rows > 0 { lp.download_f32()? } else { Vec::new() };
    let (top_ids, top_lp) = if n > 0 && rows > 0 {
        let top = gpu.alloc(rows * n * 4)?;
        top_n_into(gpu, &logp, rows, vocab, n, &top)?;
        let vals = gpu.alloc(rows * n * 4)?;
        gather_into(gpu, &logp, rows, vocab, &top, n, &vals)?;
        (top.download_u32()?, vals.download_f32()?)
    } else {
        (Vec::new(), Vec::new())
    };
    Ok((0..rows)
        .map(|r| RowLogprobs {
            logprob: lp[r],
            top: if top_ids.is_empty() { Vec::new() } else { (0..n).map(|j| (top_ids[r * n + j], top_lp[r * n + j])).collect() },
        })
        .collect())
}
