//! Strided 2-D copies (`cuda/copy.cu`): gather a column block of a row-major matrix into a
//! contiguous one, or scatter it back. Exact.

use crate::gpu::{Buf, Gpu};
use crate::launch::{GpuError, KernelArg, LaunchCfg};

/// A `[rows, cols]` block of a row-major f32 matrix: element (r, c) at `off + r·stride + c`.
#[derive(Clone, Copy)]
pub struct Block2d<'a> {
    pub buf: &'a Buf,
    pub off: usize,
    pub stride: usize,
}

impl Block2d<'_> {
    fn check(&self, rows: usize, cols: usize, what: &str) -> Result<(), GpuError> {
        if cols > self.stride {
            return Err(GpuError(format!("copy_strided {what}: {cols} columns in rows of stride {}", self.stride)));
        }
        let need = self.off + (rows - 1) * self.stride + cols;
        if self.buf.bytes() < need * 4 {
            return Err(GpuError(format!("copy_strided {what}: needs {need} f32 elements, the buffer holds {}", self.buf.bytes() / 4)));
        }
        if self.stride > u32::MAX as usize {
            return Err(GpuError(format!("copy_strided {what}: stride {} does not fit u32", self.stride)));
        }
        Ok(())
    }
}

/// `dst[r, c] = src[r, c]` for `r < rows`, `c < cols`.
pub fn copy_strided(gpu: &Gpu, dst: Block2d, src: Block2d, rows: usize, cols: usize) -> Result<(), GpuError> {
    if rows == 0 || cols == 0 {
        return Ok(());
    }
    dst.check(rows, cols, "dst")?;
    src.check(rows, cols, "src")?;
    if rows > 65535 {
        return Err(GpuError(format!("copy_strided: {rows} rows in one launch (at most 65535)")));
    }
    let cfg = LaunchCfg { grid: [cols.div_ceil(256) as u32, rows as u32, 1], block: [256, 1, 1], shared: 0 };
    gpu.launch(
        &crate::ptx::COPY,
        "copy_strided_f32",
        cfg,
        &[
            KernelArg::Ptr(dst.buf.ptr() + 4 * dst.off as u64),
            KernelArg::U32(dst.stride as u32),
            KernelArg::Ptr(src.buf.ptr() + 4 * src.off as u64),
            KernelArg::U32(src.stride as u32),
            KernelArg::U32(rows as u32),
            KernelArg::U32(cols as u32),
        ],
    )
}

/// `x[t·nc + j, :] += e[t, :]` for `t < rows`, `j < nc`: `x [rows·nc, d]`, `e [rows, d]`.
pub fn add_rows_broadcast(gpu: &Gpu, x: &Buf, e: &Buf, rows: usize, nc: usize, d: usize) -> Result<(), GpuError> {
    if rows == 0 || nc == 0 || d == 0 {
        return Ok(());
    }
    if x.bytes() < rows * nc * d * 4 || e.bytes() < rows * d * 4 {
        return Err(GpuError(format!("add_rows_broadcast: x of {} bytes, e of {} bytes for {rows}x{nc} rows of {d}", x.bytes(), e.bytes())));
    }
    if rows * nc > 65535 || d > u32::MAX as usize {
        return Err(GpuError(format!("add_rows_broadcast: {} rows in one launch (at most 65535)", rows * nc)));
    }
    let cfg = LaunchCfg { grid: [d.div_ceil(256) as u32, (rows * nc) as u32, 1], block: [256, 1, 1], shared: 0 };
    gpu.launch(&crate::ptx::COPY, "add_rows_broadcast_f32", cfg, &[x.arg(), e.arg(), KernelArg::U32(rows as u32), KernelArg::U32(nc as u32), KernelArg::U32(d as u32)])
}
