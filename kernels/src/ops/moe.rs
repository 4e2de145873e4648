//! Mixture of experts (`cuda/moe.cu` + the grouped GEMMs of `cuda/gemm.cu`), mirroring
//! `dsv4_reference::model::Model::{moe_route, moe_experts}`:
//!
//! - `moe_route`: gate logits (f32 GEMM, no act quant) -> `sqrt(softplus)` scores -> hash-table
//!   experts or biased top-k (ties to the lower index) -> weights normalised to sum 1, times
//!   `route_scale`.
//! - `moe_experts`: every (token, slot) pair runs its expert's SwiGLU FFN (w1/w3 fused with the
//!   clamp and the routing weight, FP8 act quant, w2), pairs grouped by expert so rows of one
//!   expert share weight loads; the shared expert runs on all tokens; the outputs are summed per
//!   token in the reference's order (routed experts by expert index, then the shared one).

use dsv4_reference::config::{Config, ScoreFunc};
use dsv4_reference::linear::ACT_BLOCK;
use dsv4_reference::model::weights::{Moe, Router};
use dsv4_reference::ActQuant;

use crate::gpu::{Buf, Gpu};
use crate::launch::{GpuError, KernelArg, LaunchCfg};
use crate::ops::linear::{gemm_into, linear, swiglu_into, DevLinear, RowMap};
use crate::ops::quant::{act_quant_fp8_dequant, act_quant_fp8_inplace};
use crate::ptx;

/// The config values the MoE uses.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MoeParams {
    /// Experts per token (`n_activated_experts`).
    pub k: usize,
    pub score_func: ScoreFunc,
    pub route_scale: f32,
    /// The routed experts' SwiGLU clamp; `<= 0` means none.
    pub swiglu_limit: f32,
}

impl MoeParams {
    pub fn from_config(cfg: &Config) -> MoeParams {
        MoeParams { k: cfg.n_activated_experts, score_func: cfg.score_func, route_scale: cfg.route_scale, swiglu_limit: cfg.swiglu_limit }
    }
}

/// How a layer picks experts.
pub enum DevRouter {
    /// `tid2eid` i32 `[vocab, k]`.
    Hash { table: Buf },
    /// Selection bias f32 `[n_experts]`.
    Score { bias: Buf },
}

/// One MoE layer's weights on the device.
pub struct DevMoe {
    pub dim: usize,
    pub n_experts: usize,
    /// `[n_experts, dim]`, F32 or BF16 (f32 matmul).
    pub gate: DevLinear,
    pub router: DevRouter,
    /// The routed experts' matrices, stacked `[n_experts]` (same shape and format each).
    pub w1: DevLinear,
    pub w2: DevLinear,
    pub w3: DevLinear,
    pub shared_w1: DevLinear,
    pub shared_w2: DevLinear,
    pub shared_w3: DevLinear,
}

impl DevMoe {
    pub fn upload(gpu: &Gpu, m: &Moe) -> Result<DevMoe, GpuError> {
        let n_experts = m.experts.len();
        if n_experts == 0 {
            return Err(GpuError("DevMoe::upload: no routed experts".into()));
        }
        let dim = m.gate.inp;
        if m.gate.out != n_experts {
            return Err(GpuError(format!("DevMoe::upload: gate has {} rows for {n_experts} experts", m.gate.out)));
        }
        let stack = |f: fn(&dsv4_reference::ops::moe::Expert) -> &dsv4_reference::linear::Linear| {
            DevLinear::upload_stack(gpu, &m.experts.iter().map(f).collect::<Vec<_>>())
        };
        let router = match &m.router {
            Router::Hash(t) => {
                if t.is_empty() {
                    return Err(GpuError("DevMoe::upload: empty hash table".into()));
                }
                DevRouter::Hash { table: gpu.upload_i32(t)? }
            }
            Router::Score(b) => {
                if b.len() != n_experts {
                    return Err(GpuError(format!("DevMoe::upload: bias has {} entries for {n_experts} experts", b.len())));
                }
                DevRouter::Score { bias: gpu.upload_f32(b)? }
            }
        };
        let moe = DevMoe {
            dim,
            n_experts,
            gate: DevLinear::upload(gpu, &m.gate)?,
            router,
            w1: stack(|e| &e.w1)?,
            w2: stack(|e| &e.w2)?,
            w3: stack(|e| &e.w3)?,
            shared_w1: DevLinear::upload(gpu, &m.shared.w1)?,
            shared_w2: DevLinear::upload(gpu, &m.shared.w2)?,
            shared_w3: DevLinear::upload(gpu, &m.shared.w3)?,
        };
        let (i, si) = (moe.w1.out, moe.shared_w1.out);
        for (name, l, out, inp) in [
            ("w1", &moe.w1, i, dim),
            ("w3", &moe.w3, i, dim),
            ("w2", &moe.w2, dim, i),
            ("shared w1", &moe.shared_w1, si, dim),
            ("shared w3", &moe.shared_w3, si, dim),
            ("shared w2", &moe.shared_w2, dim, si),
        ] {
            if (l.out, l.inp) != (out, inp) {
                return Err(GpuError(format!("DevMoe::upload: {name} is [{}, {}], expected [{out}, {inp}]", l.out, l.inp)));
            }
        }
        if moe.w1.kind != moe.w3.kind || moe.shared_w1.kind != moe.shared_w3.kind {
            return Err(GpuError("DevMoe::upload: w1 and w3 differ in format".into()));
        }
        Ok(moe)
    }
}

/// Each token's experts and routing weights.
pub struct Routes {
    /// i32 `[rows, k]`.
    pub experts: Buf,
    /// f32 `[rows, k]`.
    pub weights: Buf,
    pub rows: usize,
    pub k: usize,
}

/// `Model::moe_route` for the `rows` tokens `x` (f32 `[rows, dim]`); `tokens` (u32 `[rows]`, each
/// below the hash table's vocab) is read only by a hash-routed layer. Expert ids of a hash table
/// must lie in `0..n_experts` (the checkpoint loader checks this).
pub fn moe_route(gpu: &Gpu, m: &DevMoe, p: &MoeParams, x: &Buf, rows: usize, tokens: &Buf) -> Result<Routes, GpuError> {
    let (e, k) = (m.n_experts, p.k);
    if p.score_func != ScoreFunc::SqrtSoftplus {
        return Err(GpuError(format!("moe_route: score function {:?} is not implemented on the device", p.score_func)));
    }
    if k == 0 || k > e || k > 64 {
        return Err(GpuError(format!("moe_route: k = {k} with {e} experts (1..=min(E, 64))")));
    }
    if e * 8 * 4 > 48 * 1024 {
        return Err(GpuError(format!("moe_route: {e} experts need more than 48 KiB of shared memory")));
    }
    let experts = gpu.alloc_poisoned(rows * k * 4)?;
    let weights = gpu.alloc_poisoned(rows * k * 4)?;
    if rows == 0 {
        return Ok(Routes { experts, weights, rows, k });
    }
    let (bias, table) = match &m.router {
        DevRouter::Score { bias } => (bias.ptr(), 0),
        DevRouter::Hash { table } => {
            if table.bytes() % (4 * k) != 0 {
                return Err(GpuError(format!("moe_route: hash table of {} bytes is not [vocab, {k}] i32", table.bytes())));
            }
            if tokens.bytes() < rows * 4 {
                return Err(GpuError(format!("moe_route: {} token bytes for {rows} rows", tokens.bytes())));
            }
            (0, table.ptr())
        }
    };
    let logits = linear(gpu, &m.gate, x, rows, ActQuant::Off)?;
    let grid = u32::try_from(rows.div_ceil(4)).map_err(|_| GpuError(format!("moe_route: {rows} rows")))?;
    gpu.launch(
        &ptx::MOE,
        "moe_route",
        LaunchCfg::linear(grid, 128).with_shared((4 * e * 8) as u32),
        &[
            logits.arg(),
            KernelArg::Ptr(bias),
            KernelArg::Ptr(table),
            tokens.arg(),
            experts.arg(),
            weights.arg(),
            KernelArg::U32(rows as u32),
            KernelArg::U32(e as u32),
            KernelArg::U32(k as u32),
            KernelArg::F32(p.route_scale),
        ],
    )?;
    Ok(Routes { experts, weights, rows, k })
}

/// `Model::moe_experts`: Σ over each token's routed experts of
/// `w2·(silu(min(w1·x, limit))·clamp(w3·x, ±limit)·weight)` plus the shared expert
/// `w2·(silu(w1·x)·(w3·x))`, f32 `[rows, dim]`. Expert ids in `routes` must lie in `0..n_experts`.
pub fn moe_experts(gpu: &Gpu, m: &DevMoe, p: &MoeParams, x: &Buf, rows: usize, routes: &Routes, aq: ActQuant) -> Result<Buf, GpuError> {
    let (d, k) = (m.dim, routes.k);
    if routes.rows != rows || k != p.k || k == 0 || k > 64 {
        return Err(GpuError(format!("moe_experts: routes for {} rows x {} slots, called with {rows} rows x k = {}", routes.rows, routes.k, p.k)));
    }
    if routes.experts.bytes() < rows * k * 4 || routes.weights.bytes() < rows * k * 4 {
        return Err(GpuError(format!("moe_experts: route buffers of {} / {} bytes for {rows} x {k}", routes.experts.bytes(), routes.weights.bytes())));
    }
    if x.bytes() < rows * d * 4 {
        return Err(GpuError(format!("moe_experts: input of {} bytes for {rows} rows of {d}", x.bytes())));
    }
    let out = gpu.alloc_poisoned(rows * d * 4)?;
    if rows == 0 {
        return Ok(out);
    }
    let npairs = rows * k;
    let (e, inter, sinter) = (m.n_experts, m.w1.out, m.shared_w1.out);
    let limit = (p.swiglu_limit > 0.0).then_some(p.swiglu_limit);

    // The FP8 act quant of x is per row, so one quantised copy serves every expert of a token.
    let xq = if aq.is_on() && (m.w1.is_quantized() || m.shared_w1.is_quantized()) { Some(act_quant_fp8_dequant(gpu, x, rows, d, ACT_BLOCK)?) } else { None };
    let input = |quantized: bool| if quantized { xq.as_ref().unwrap_or(x) } else { x };

    // Pairs grouped by expert.
    if e * 8 > 48 * 1024 {
        return Err(GpuError(format!("moe_experts: {e} experts need more than 48 KiB of shared memory")));
    }
    let perm = gpu.alloc_poisoned(npairs * 4)?;
    gpu.launch(
        &ptx::MOE,
        "moe_sort",
        LaunchCfg::linear(1, 1024).with_shared((e * 8) as u32),
        &[routes.experts.arg(), KernelArg::U32(npairs as u32), KernelArg::U32(e as u32), perm.arg()],
    )?;
    let map = RowMap { perm: &perm, experts: &routes.experts, x_div: k };

    // Routed: h = swiglu (routing weight applied), act quant, w2.
    let h = gpu.alloc_poisoned(npairs * inter * 4)?;
    swiglu_into(gpu, &m.w1, &m.w3, input(m.w1.is_quantized()), npairs, Some(&map), Some(&routes.weights), limit, &h)?;
    if aq.is_on() && m.w2.is_quantized() {
        act_quant_fp8_inplace(gpu, &h, npairs, inter, inter, ACT_BLOCK)?;
    }
    let yp = gpu.alloc_poisoned(npairs * d * 4)?;
    gemm_into(gpu, &m.w2, &h, npairs, 0..d, Some(&RowMap { x_div: 1, ..map }), &yp)?;

    // Shared expert.
    let hs = gpu.alloc_poisoned(rows * sinter * 4)?;
    swiglu_into(gpu, &m.shared_w1, &m.shared_w3, input(m.shared_w1.is_quantized()), rows, None, None, None, &hs)?;
    if aq.is_on() && m.shared_w2.is_quantized() {
        act_quant_fp8_inplace(gpu, &hs, rows, sinter, sinter, ACT_BLOCK)?;
    }
    let ys = gpu.alloc_poisoned(rows * d * 4)?;
    gemm_into(gpu, &m.shared_w2, &hs, rows, 0..d, None, &ys)?;

    gpu.launch(
        &ptx::MOE,
        "moe_combine",
        LaunchCfg::linear(rows as u32, 128),
        &[yp.arg(), routes.experts.arg(), ys.arg(), out.arg(), KernelArg::U32(rows as u32), KernelArg::U32(k as u32), KernelArg::U32(d as u32)],
    )?;
    Ok(out)
}

/// `Model::moe`: routing then the experts; returns the output f32 `[rows, dim]` and the routes.
pub fn moe(gpu: &Gpu, m: &DevMoe, p: &MoeParams, x: &Buf, rows: usize, tokens: &Buf, aq: ActQuant) -> Result<(Buf, Routes), GpuError> {
    let routes = moe_route(gpu, m, p, x, rows, tokens)?;
    let out = moe_experts(gpu, m, p, x, rows, &routes, aq)?;
    Ok((out, routes))
}
