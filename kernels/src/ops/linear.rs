//! Linear layers (`cuda/gemm.cu`), mirroring `dsv4_reference::linear::Linear::{forward,
//! forward_rows}`: weights stay in their stored precision on the device (FP8 e4m3 + 128x128 e8m0
//! scales, FP4 e2m1 packed + e8m0 per 32 inputs, BF16 as u16, F32), activations are f32
//! row-major, and a quantised weight's input is FP8-act-quantised per 128 values first when
//! `ActQuant::On` (`ops::quant`, bit-identical to the reference).
//!
//! A `DevLinear` can also hold a stack of same-shape, same-format matrices (the routed experts);
//! the grouped launches in `ops::moe` pick one per row.

use std::ops::Range;

use dsv4_reference::linear::{Linear, Weight, ACT_BLOCK, FP4_WEIGHT_BLOCK, FP8_WEIGHT_BLOCK};
use dsv4_reference::ActQuant;

use crate::gpu::{f32_bytes, Buf, Gpu};
use crate::launch::{GpuError, KernelArg, LaunchCfg};
use crate::ops::quant::act_quant_fp8_dequant;
use crate::ptx;

/// The stored precision of a weight.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WKind {
    F32,
    Bf16,
    Fp8,
    Fp4,
}

impl WKind {
    fn of(w: &Weight) -> WKind {
        match w {
            Weight::F32(_) => WKind::F32,
            Weight::Bf16(_) => WKind::Bf16,
            Weight::Fp8 { .. } => WKind::Fp8,
            Weight::Fp4 { .. } => WKind::Fp4,
        }
    }
    fn suffix(self) -> &'static str {
        match self {
            WKind::F32 => "f32",
            WKind::Bf16 => "bf16",
            WKind::Fp8 => "fp8",
            WKind::Fp4 => "fp4",
        }
    }
    pub fn is_quantized(self) -> bool {
        matches!(self, WKind::Fp8 | WKind::Fp4)
    }
}

/// One weight matrix `[out, inp]` (or `count` of them back to back) on the device.
pub struct DevLinear {
    pub out: usize,
    pub inp: usize,
    /// Matrices in the stack (1 for a plain linear).
    pub count: usize,
    pub kind: WKind,
    w: Buf,
    scale: Option<Buf>,
    /// Bytes per matrix in `w` / in `scale`.
    w_stride: usize,
    s_stride: usize,
}

/// The stored bytes of one weight, checked against its shape.
fn weight_bytes(l: &Linear) -> Result<(Vec<u8>, Option<&[u8]>), GpuError> {
    let (o, i) = (l.out, l.inp);
    let bad = |what: &str, got: usize, want: usize| GpuError(format!("linear [{o}, {i}]: {what} has {got} bytes, expected {want}"));
    Ok(match &l.weight {
        Weight::F32(d) => {
            if d.len() != o * i {
                return Err(bad("f32 weight", d.len() * 4, o * i * 4));
            }
            (f32_bytes(d), None)
        }
        Weight::Bf16(b) => {
            if b.len() != o * i * 2 {
                return Err(bad("bf16 weight", b.len(), o * i * 2));
            }
            (b.to_vec(), None)
        }
        Weight::Fp8 { w, scale } => {
            let sn = o.div_ceil(FP8_WEIGHT_BLOCK) * i.div_ceil(FP8_WEIGHT_BLOCK);
            if w.len() != o * i {
                return Err(bad("fp8 weight", w.len(), o * i));
            }
            if scale.len() != sn {
                return Err(bad("fp8 scale", scale.len(), sn));
            }
            (w.to_vec(), Some(&scale[..]))
        }
        Weight::Fp4 { w, scale } => {
            if i % FP4_WEIGHT_BLOCK != 0 {
                return Err(GpuError(format!("fp4 linear [{o}, {i}]: inputs not a multiple of {FP4_WEIGHT_BLOCK}")));
            }
            if w.len() != o * i / 2 {
                return Err(bad("fp4 weight", w.len(), o * i / 2));
            }
            if scale.len() != o * i / FP4_WEIGHT_BLOCK {
                return Err(bad("fp4 scale", scale.len(), o * i / FP4_WEIGHT_BLOCK));
            }
            (w.to_vec(), Some(&scale[..]))
        }
    })
}

impl DevLinear {
    /// Upload one weight in its stored precision.
    pub fn upload(gpu: &Gpu, l: &Linear) -> Result<DevLinear, GpuError> {
        DevLinear::upload_stack(gpu, &[l])
    }

    /// Upload same-shape, same-format weights back to back (matrix e is selected by index).
    pub fn upload_stack(gpu: &Gpu, ls: &[&Linear]) -> Result<DevLinear, GpuError> {
        let first = ls.first().ok_or_else(|| GpuError("DevLinear::upload_stack: no matrices".into()))?;
        let (out, inp, kind) = (first.out, first.inp, WKind::of(&first.weight));
        let mut w = Vec::new();
        let mut s = Vec::new();
        let (mut w_stride, mut s_stride) = (0, 0);
        for (e, l) in ls.iter().enumerate() {
            if (l.out, l.inp, WKind::of(&l.weight)) != (out, inp, kind) {
                return Err(GpuError(format!(
                    "DevLinear::upload_stack: matrix {e} is {:?} [{}, {}], matrix 0 {kind:?} [{out}, {inp}]",
                    WKind::of(&l.weight),
                    l.out,
                    l.inp
                )));
            }
            let (wb, sb) = weight_bytes(l)?;
            w_stride = wb.len();
            w.extend_from_slice(&wb);
            if let Some(sb) = sb {
                s_stride = sb.len();
                s.extend_from_slice(sb);
            }
        }
        let scale = if kind.is_quantized() { Some(gpu.upload_bytes(&s)?) } else { None };
        Ok(DevLinear { out, inp, count: ls.len(), kind, w: gpu.upload_bytes(&w)?, scale, w_stride, s_stride })
    }

    pub fn is_quantized(&self) -> bool {
        self.kind.is_quantized()
    }

    fn scale_arg(&self) -> KernelArg {
        KernelArg::Ptr(self.scale.as_ref().map_or(0, |s| s.ptr()))
    }
}

/// Rows of a grouped launch: GEMM row r is pair `perm[r]`, which reads input row `perm[r] / x_div`,
/// uses matrix `experts[perm[r]]` of the stack and writes output row `perm[r]`.
pub(crate) struct RowMap<'a> {
    pub perm: &'a Buf,
    pub experts: &'a Buf,
    pub x_div: usize,
}

fn u32_arg(v: usize, what: &str) -> Result<KernelArg, GpuError> {
    u32::try_from(v).map(KernelArg::U32).map_err(|_| GpuError(format!("gemm: {what} = {v} does not fit u32")))
}

fn grid(cols: usize, rows: usize) -> Result<LaunchCfg, GpuError> {
    let gy = rows.div_ceil(4);
    if gy > 65535 {
        return Err(GpuError(format!("gemm: {rows} rows in one launch (at most {})", 65535 * 4)));
    }
    let gx = u32::try_from(cols.div_ceil(4)).map_err(|_| GpuError(format!("gemm: {cols} outputs")))?;
    Ok(LaunchCfg { grid: [gx, gy as u32, 1], block: [128, 1, 1], shared: 0 })
}

fn map_args(map: Option<&RowMap>, l: &DevLinear) -> Result<[KernelArg; 5], GpuError> {
    Ok([
        KernelArg::Ptr(map.map_or(0, |m| m.perm.ptr())),
        KernelArg::Ptr(map.map_or(0, |m| m.experts.ptr())),
        u32_arg(map.map_or(1, |m| m.x_div.max(1)), "x_div")?,
        KernelArg::U64(l.w_stride as u64),
        KernelArg::U64(l.s_stride as u64),
    ])
}

/// `y[p, n - n0] = x[p / x_div] · W[n]ᵀ` for `n` in `out_range`, into `y` (`[*, out_range.len()]`);
/// no act quant here (the caller passes the quantised input).
pub(crate) fn gemm_into(gpu: &Gpu, l: &DevLinear, x: &Buf, rows: usize, out_range: Range<usize>, map: Option<&RowMap>, y: &Buf) -> Result<(), GpuError> {
    if rows == 0 || out_range.is_empty() {
        return Ok(());
    }
    let mut args = vec![
        x.arg(),
        l.w.arg(),
        l.scale_arg(),
        y.arg(),
        u32_arg(rows, "rows")?,
        u32_arg(l.inp, "inp")?,
        u32_arg(out_range.start, "n0")?,
        u32_arg(out_range.end, "n1")?,
    ];
    args.extend(map_args(map, l)?);
    gpu.launch(&ptx::GEMM, &format!("gemm_{}", l.kind.suffix()), grid(out_range.len(), rows)?, &args)
}

/// `h[p, n] = silu(g)·u·route_w[p]` with `g = x[p / x_div]·W1[n]ᵀ`, `u = x[p / x_div]·W3[n]ᵀ`,
/// `g = min(g, limit)`, `u = clamp(u, ±limit)` when `limit` is set, `route_w` 1 when absent.
#[allow(clippy::too_many_arguments)]
pub(crate) fn swiglu_into(
    gpu: &Gpu,
    w1: &DevLinear,
    w3: &DevLinear,
    x: &Buf,
    rows: usize,
    map: Option<&RowMap>,
    route_w: Option<&Buf>,
    limit: Option<f32>,
    h: &Buf,
) -> Result<(), GpuError> {
    if (w1.out, w1.inp, w1.kind, w1.count, w1.w_stride, w1.s_stride) != (w3.out, w3.inp, w3.kind, w3.count, w3.w_stride, w3.s_stride) {
        return Err(GpuError(format!("swiglu: w1 {:?} [{}, {}] and w3 {:?} [{}, {}] differ", w1.kind, w1.out, w1.inp, w3.kind, w3.out, w3.inp)));
    }
    if rows == 0 || w1.out == 0 {
        return Ok(());
    }
    let mut args = vec![
        x.arg(),
        w1.w.arg(),
        w1.scale_arg(),
        w3.w.arg(),
        w3.scale_arg(),
        h.arg(),
        u32_arg(rows, "rows")?,
        u32_arg(w1.inp, "inp")?,
        u32_arg(w1.out, "out")?,
    ];
    args.extend(map_args(map, w1)?);
    args.extend([KernelArg::Ptr(route_w.map_or(0, |b| b.ptr())), KernelArg::F32(limit.unwrap_or(0.0)), KernelArg::U32(limit.is_some() as u32)]);
    gpu.launch(&ptx::GEMM, &format!("gemm_swiglu_{}", w1.kind.suffix()), grid(w1.out, rows)?, &args)
}

/// `Linear::forward`: `y [rows, out] = x [rows, inp] · Wᵀ`.
pub fn linear(gpu: &Gpu, l: &DevLinear, x: &Buf, rows: usize, aq: ActQuant) -> Result<Buf, GpuError> {
    linear_rows(gpu, l, x, rows, 0..l.out, aq)
}

/// `Linear::forward_rows`: only the outputs `out_range`, `y [rows, out_range.len()]`.
pub fn linear_rows(gpu: &Gpu, l: &DevLinear, x: &Buf, rows: usize, out_range: Range<usize>, aq: ActQuant) -> Result<Buf, GpuError> {
    let y = gpu.alloc_poisoned(rows * out_range.len() * 4)?;
    linear_rows_into(gpu, l, x, rows, out_range, aq, &y)?;
    Ok(y)
}

/// `linear_rows` into an existing buffer `y` (at least `[rows, out_range.len()]` f32).
pub fn linear_rows_into(gpu: &Gpu, l: &DevLinear, x: &Buf, rows: usize, out_range: Range<usize>, aq: ActQuant, y: &Buf) -> Result<(), GpuError> {
    if out_range.start > out_range.end || out_range.end > l.out {
        return Err(GpuError(format!("linear_rows: range {out_range:?} outside 0..{}", l.out)));
    }
    if x.bytes() < rows * l.inp * 4 {
        return Err(GpuError(format!("linear: input of {} bytes for {rows} rows of {}", x.bytes(), l.inp)));
    }
    if y.bytes() < rows * out_range.len() * 4 {
        return Err(GpuError(format!("linear: output of {} bytes for {rows} rows of {}", y.bytes(), out_range.len())));
    }
    if rows == 0 || out_range.is_empty() {
        return Ok(());
    }
    let xq;
    let xin = if l.is_quantized() && aq.is_on() {
        xq = act_quant_fp8_dequant(gpu, x, rows, l.inp, ACT_BLOCK)?;
        &xq
    } else {
        x
    };
    gemm_into(gpu, l, xin, rows, out_range, None, y)
}
