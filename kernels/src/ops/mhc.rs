//! Manifold-constrained hyper-connections (`cuda/mhc.cu`), mirroring
//! `reference::ops::mhc::{hc_pre, hc_post, hc_head}` each fused with the RMSNorm that follows it
//! in the model (`Model::sublayer`, `Model::head_logits`).
//!
//! Layouts (f32 row-major): streams `x` `[T, nc·d]` (stream j of token t at `t·nc·d + j·d`),
//! sublayer input / head input `[T, d]`, mix `[T, nc + nc²]` = post (nc) ‖ comb (nc², `comb[j·nc + k]`
//! = weight of input stream j in output stream k), the layout of the CPU backend's mix.
//!
//! hc_pre and hc_head take two launches each: the partial (fn · v) products spread over
//! `n_mix × ceil(nc·d/2048) × ceil(T/4)` CTAs into a caller-given scratch buffer
//! (`scratch_len`), then one CTA per token for r, Sinkhorn, Σ pre_j·X_j and the RMSNorm.
//!
//! Tolerances (see the .cu file; measured at nc 4, d 4096): mix ~2e-6 absolute, normed outputs
//! ~1e-5 of (|y| + rms(y)), hc_post bit-exact given the mix. Deterministic.

use dsv4_reference::ops::mhc::HcParams;

use crate::launch::{GpuError, KernelArg, LaunchCfg};
use crate::ops::norm::{check_len, DevNorm};
use crate::ptx;
use crate::{Buf, Gpu};

/// The largest `hc_mult` the kernels take.
pub const MAX_NC: usize = 8;

/// Width of one token's mix: `nc + nc²`.
pub fn mix_cols(nc: usize) -> usize {
    nc + nc * nc
}

/// One mHC site on the device: `fn_` `[n_mix, nc·d]`, `base` `[n_mix]`, `scale` `[3]` (a sublayer
/// site, `n_mix = (2+nc)·nc`) or `[1]` (the head, `n_mix = nc`).
pub struct DevHc {
    pub fn_: Buf,
    pub base: Buf,
    pub scale: Buf,
    pub nc: usize,
    pub d: usize,
    pub n_mix: usize,
}

impl DevHc {
    /// Upload a site's parameters for `nc` streams; `d` and the kind of site follow from the
    /// shapes.
    pub fn upload(gpu: &Gpu, p: &HcParams, nc: usize) -> Result<DevHc, GpuError> {
        let n_mix = p.base.len();
        if nc == 0 || nc > MAX_NC || (n_mix != nc && n_mix != (2 + nc) * nc) {
            return Err(GpuError(format!("mHC: {n_mix} mixes do not fit nc = {nc} (at most {MAX_NC})")));
        }
        if p.fn_.is_empty() || !p.fn_.len().is_multiple_of(n_mix * nc) {
            return Err(GpuError(format!("mHC: fn of {} values for {n_mix} mixes of nc = {nc} streams", p.fn_.len())));
        }
        let need_scale = if n_mix == nc { 1 } else { 3 };
        if p.scale.len() < need_scale {
            return Err(GpuError(format!("mHC: scale has {} values, need {need_scale}", p.scale.len())));
        }
        let d = p.fn_.len() / (n_mix * nc);
        Ok(DevHc { fn_: gpu.upload_f32(&p.fn_)?, base: gpu.upload_f32(&p.base)?, scale: gpu.upload_f32(&p.scale)?, nc, d, n_mix })
    }

    /// A head site (`hc_head`), as opposed to a sublayer site.
    pub fn is_head(&self) -> bool {
        self.n_mix == self.nc
    }
}

const BLOCK: u32 = 256;
/// Inputs per CTA of the partial (fn · v) products (`mhc_mix_partial`).
const CHUNK: usize = 2048;
/// Tokens per CTA of `mhc_mix_partial` (`MHC_TT`).
const TOKENS_PER_CTA: usize = 4;

/// f32 elements of the scratch buffer `hc_pre_norm_into` / `hc_head_norm_into` need for `t`
/// rows: the partial products `[t, ceil(nc·d / 2048), n_mix]`.
pub fn scratch_len(hc: &DevHc, t: usize) -> usize {
    t * (hc.nc * hc.d).div_ceil(CHUNK) * hc.n_mix
}

/// Stage 1: `part[t][s][m]` = chunk s of `fn[m] · v_t`, `v_t` = row `row_ids[t]` (or `t`) of `x`.
fn mix_partial(gpu: &Gpu, x: &Buf, row_ids: Option<&Buf>, hc: &DevHc, t: usize, part: &Buf) -> Result<u32, GpuError> {
    let k = hc.nc * hc.d;
    let nsplit = k.div_ceil(CHUNK);
    check_len(part, scratch_len(hc, t), "mHC scratch")?;
    let z = t.div_ceil(TOKENS_PER_CTA);
    if nsplit > 65535 || z > 65535 {
        return Err(GpuError(format!("mHC: {t} rows of {k} exceed one launch (split into chunks of at most 262140 rows)")));
    }
    let cfg = LaunchCfg { grid: [hc.n_mix as u32, nsplit as u32, z as u32], block: [BLOCK, 1, 1], shared: 0 };
    gpu.launch(
        &ptx::MHC,
        "mhc_mix_partial",
        cfg,
        &[
            x.arg(),
            row_ids.map_or(KernelArg::Ptr(0), Buf::arg),
            hc.fn_.arg(),
            part.arg(),
            KernelArg::U32(t as u32),
            KernelArg::U32(k as u32),
            KernelArg::U32(hc.n_mix as u32),
            KernelArg::U32(CHUNK as u32),
        ],
    )?;
    Ok(nsplit as u32)
}

fn check_norm(hc: &DevHc, norm: &DevNorm) -> Result<(), GpuError> {
    if norm.n != hc.d {
        return Err(GpuError(format!("mHC: norm weight of {} for d = {}", norm.n, hc.d)));
    }
    Ok(())
}

/// hc_pre + the sublayer's RMSNorm for `t` tokens: writes the normed sublayer input `y` `[T, d]`
/// and the mix `[T, nc + nc²]` for `hc_post`. `scratch` holds at least `scratch_len(hc, t)` f32.
/// Two launches (the partial (fn · v) products over many CTAs, then one CTA per token).
#[allow(clippy::too_many_arguments)]
pub fn hc_pre_norm_into(
    gpu: &Gpu,
    x: &Buf,
    hc: &DevHc,
    norm: &DevNorm,
    t: usize,
    iters: usize,
    norm_eps: f32,
    hc_eps: f32,
    y: &Buf,
    mix: &Buf,
    scratch: &Buf,
) -> Result<(), GpuError> {
    if hc.is_head() {
        return Err(GpuError("hc_pre_norm: given the head's mHC parameters".into()));
    }
    check_norm(hc, norm)?;
    if t == 0 {
        return Ok(());
    }
    check_len(x, t * hc.nc * hc.d, "hc_pre x")?;
    check_len(y, t * hc.d, "hc_pre y")?;
    check_len(mix, t * mix_cols(hc.nc), "hc_pre mix")?;
    let nsplit = mix_partial(gpu, x, None, hc, t, scratch)?;
    gpu.launch(
        &ptx::MHC,
        "mhc_pre_norm",
        LaunchCfg::linear(t as u32, BLOCK),
        &[
            x.arg(),
            scratch.arg(),
            KernelArg::U32(nsplit),
            hc.base.arg(),
            hc.scale.arg(),
            norm.w.arg(),
            y.arg(),
            mix.arg(),
            KernelArg::U32(hc.nc as u32),
            KernelArg::U32(hc.d as u32),
            KernelArg::U32(iters as u32),
            KernelArg::F32(norm_eps),
            KernelArg::F32(hc_eps),
        ],
    )
}

/// `hc_pre_norm_into` into new buffers: `(y [T, d], mix [T, nc + nc²])`.
#[allow(clippy::too_many_arguments)]
pub fn hc_pre_norm(
    gpu: &Gpu,
    x: &Buf,
    hc: &DevHc,
    norm: &DevNorm,
    t: usize,
    iters: usize,
    norm_eps: f32,
    hc_eps: f32,
) -> Result<(Buf, Buf), GpuError> {
    let y = gpu.alloc(t * hc.d * 4)?;
    let mix = gpu.alloc(t * mix_cols(hc.nc) * 4)?;
    let scratch = gpu.alloc(scratch_len(hc, t) * 4)?;
    hc_pre_norm_into(gpu, x, hc, norm, t, iters, norm_eps, hc_eps, &y, &mix, &scratch)?;
    Ok((y, mix))
}

/// hc_post: `out[t][k] = post_k·f[t] + Σ_j comb[j,k]·x[t][j]`, `[T, nc·d]`; `out` may be `x`.
#[allow(clippy::too_many_arguments)]
pub fn hc_post_into(gpu: &Gpu, f: &Buf, x: &Buf, mix: &Buf, t: usize, nc: usize, d: usize, out: &Buf) -> Result<(), GpuError> {
    if nc == 0 || nc > MAX_NC {
        return Err(GpuError(format!("hc_post: nc = {nc} (at most {MAX_NC})")));
    }
    if t == 0 || d == 0 {
        return Ok(());
    }
    check_len(f, t * d, "hc_post f")?;
    check_len(x, t * nc * d, "hc_post x")?;
    check_len(mix, t * mix_cols(nc), "hc_post mix")?;
    check_len(out, t * nc * d, "hc_post out")?;
    let n = (t * d) as u64;
    let grid = n.div_ceil(BLOCK as u64);
    if grid > u32::MAX as u64 {
        return Err(GpuError(format!("hc_post: {n} elements exceed one launch")));
    }
    gpu.launch(
        &ptx::MHC,
        "mhc_post",
        LaunchCfg::linear(grid as u32, BLOCK),
        &[f.arg(), x.arg(), mix.arg(), out.arg(), KernelArg::U32(t as u32), KernelArg::U32(nc as u32), KernelArg::U32(d as u32)],
    )
}

/// hc_post into a new buffer.
pub fn hc_post(gpu: &Gpu, f: &Buf, x: &Buf, mix: &Buf, t: usize, nc: usize, d: usize) -> Result<Buf, GpuError> {
    let out = gpu.alloc(t * nc * d * 4)?;
    hc_post_into(gpu, f, x, mix, t, nc, d, &out)?;
    Ok(out)
}

/// hc_head + the final RMSNorm for the rows listed in `row_ids` (u32 `[n_rows]`, indices into
/// the `[*, nc·d]` streams `x`): writes the head GEMM's input `y` `[n_rows, d]`. `scratch` holds
/// at least `scratch_len(hc, n_rows)` f32.
#[allow(clippy::too_many_arguments)]
pub fn hc_head_norm_into(
    gpu: &Gpu,
    x: &Buf,
    hc: &DevHc,
    norm: &DevNorm,
    row_ids: &Buf,
    n_rows: usize,
    norm_eps: f32,
    hc_eps: f32,
    y: &Buf,
    scratch: &Buf,
) -> Result<(), GpuError> {
    if !hc.is_head() {
        return Err(GpuError("hc_head_norm: given a sublayer's mHC parameters".into()));
    }
    check_norm(hc, norm)?;
    if n_rows == 0 {
        return Ok(());
    }
    check_len(row_ids, n_rows, "hc_head row_ids")?;
    check_len(y, n_rows * hc.d, "hc_head y")?;
    let nsplit = mix_partial(gpu, x, Some(row_ids), hc, n_rows, scratch)?;
    gpu.launch(
        &ptx::MHC,
        "mhc_head_norm",
        LaunchCfg::linear(n_rows as u32, BLOCK),
        &[
            x.arg(),
            row_ids.arg(),
            scratch.arg(),
            KernelArg::U32(nsplit),
            hc.base.arg(),
            hc.scale.arg(),
            norm.w.arg(),
            y.arg(),
            KernelArg::U32(hc.nc as u32),
            KernelArg::U32(hc.d as u32),
            KernelArg::F32(norm_eps),
            KernelArg::F32(hc_eps),
        ],
    )
}

/// `hc_head_norm_into` for host-listed rows (uploads them), into a new `[rows.len(), d]` buffer.
/// The caller guarantees `x` holds every listed row.
pub fn hc_head_norm(gpu: &Gpu, x: &Buf, hc: &DevHc, norm: &DevNorm, rows: &[u32], norm_eps: f32, hc_eps: f32) -> Result<Buf, GpuError> {
    let row_len = hc.nc * hc.d;
    if let Some(&r) = rows.iter().max() {
        check_len(x, (r as usize + 1) * row_len, "hc_head x")?;
    }
    let ids = gpu.upload_u32(rows)?;
    let y = gpu.alloc(rows.len() * hc.d * 4)?;
    let scratch = gpu.alloc(scratch_len(hc, rows.len()) * 4)?;
    hc_head_norm_into(gpu, x, hc, norm, &ids, rows.len(), norm_eps, hc_eps, &y, &scratch)?;
    Ok(y)
}
