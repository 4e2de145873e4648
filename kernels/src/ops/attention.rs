//! Sparse attention with the per-head sink (`cuda/attention.cu`): mirrors
//! `dsv4_reference::model::Model::attn_core` without the inverse RoPE (the rope family applies
//! it to the output), reading the window ring, the step's KV rows and the compressed entries in
//! place; plus the window-ring update and a device copy the growable caches use.
//!
//! "Step rows": a step's activations hold the rows of several sequences' chunks; every wrapper
//! takes one chunk (`row0`, `t_len` rows at positions `pos0..`) and the state of its sequence, so
//! the backend calls it once per `Chunk { slot, pos0, rows }` with `row0 = rows.start`.

use crate::gpu::{Buf, Gpu};
use crate::launch::{GpuError, KernelArg, LaunchCfg};
use crate::ops::attn_state::DevLayerState;

/// Largest head dim the kernel holds in registers (16 values per lane).
pub const ATTN_MAX_HD: usize = 512;
/// Warps per (token, head) CTA.
const ATTN_SPLIT: usize = 4;

/// A kernel argument pointing `float_off` f32 elements into `buf`.
pub(crate) fn f32_at(buf: &Buf, float_off: usize) -> KernelArg {
    KernelArg::Ptr(buf.ptr() + 4 * float_off as u64)
}

/// Error unless `buf` holds at least `elems` 4-byte elements.
pub(crate) fn need(buf: &Buf, elems: usize, what: &str) -> Result<(), GpuError> {
    if buf.bytes() < elems * 4 {
        return Err(GpuError(format!("{what}: buffer of {} bytes, need {} elements ({} bytes)", buf.bytes(), elems, elems * 4)));
    }
    Ok(())
}

pub(crate) fn u32_of(v: usize, what: &str) -> Result<u32, GpuError> {
    u32::try_from(v).map_err(|_| GpuError(format!("{what} = {v} does not fit in u32")))
}

/// Which compressed entries the chunk's tokens attend, besides the window.
#[derive(Clone, Copy)]
pub enum Selection<'a> {
    /// None (window-only layers).
    None,
    /// Every complete entry `0 .. (p+1)/ratio` (layers without an indexer, e.g. ratio 128).
    All { ratio: usize },
    /// Per step row a list of `width` i32 entry indices, -1 = unused (the indexer's output
    /// `[*, width]`, indexed by step row like `q`).
    Indices { buf: &'a Buf, width: usize },
}

/// Shapes of one attention call.
#[derive(Clone, Copy, Debug)]
pub struct AttnShape {
    pub heads: usize,
    pub hd: usize,
    pub window: usize,
    /// Logit scale, `hd^-0.5` (as the reference computes it: `(hd as f64).powf(-0.5) as f32`).
    pub scale: f32,
}

impl AttnShape {
    pub fn new(heads: usize, hd: usize, window: usize) -> AttnShape {
        AttnShape { heads, hd, window, scale: (hd as f64).powf(-0.5) as f32 }
    }
}

/// Sparse attention with sink for one chunk, raw buffers:
/// `q [*, H·hd]`, `kv [*, hd]` (step rows; the chunk is rows `row0..row0+t_len` at positions
/// `pos0..`), `ring [window, hd]` (positions before `pos0`, slot = pos mod window), `comp
/// [n, hd]` (compressed entries; `n_comp` rows valid), `sink [H]`; writes `out [*, H·hd]` rows
/// `row0..row0+t_len`. The ring is only read: update it afterwards with `ring_update`.
#[allow(clippy::too_many_arguments)]
pub fn sparse_attn_sink(
    gpu: &Gpu,
    sh: AttnShape,
    q: &Buf,
    kv: &Buf,
    ring: &Buf,
    comp: &Buf,
    n_comp: usize,
    sel: Selection,
    sink: &Buf,
    row0: usize,
    t_len: usize,
    pos0: usize,
    out: &Buf,
) -> Result<(), GpuError> {
    let AttnShape { heads, hd, window, scale } = sh;
    if hd == 0 || hd > ATTN_MAX_HD || heads == 0 || window == 0 {
        return Err(GpuError(format!("sparse_attn_sink: unsupported shape heads {heads}, hd {hd}, window {window} (hd <= {ATTN_MAX_HD})")));
    }
    if t_len == 0 {
        return Ok(());
    }
    let end = row0 + t_len;
    need(q, end * heads * hd, "sparse_attn_sink q")?;
    need(kv, end * hd, "sparse_attn_sink kv")?;
    need(ring, window * hd, "sparse_attn_sink ring")?;
    need(sink, heads, "sparse_attn_sink sink")?;
    need(out, end * heads * hd, "sparse_attn_sink out")?;
    let (mode, sel_arg, width, ratio) = match sel {
        Selection::None => (0u32, KernelArg::Ptr(comp.ptr()), 0usize, 0usize),
        Selection::All { ratio } => {
            if ratio == 0 {
                return Err(GpuError("sparse_attn_sink: Selection::All with ratio 0".into()));
            }
            let n = (pos0 + t_len) / ratio;
            if n > n_comp {
                return Err(GpuError(format!("sparse_attn_sink: position {} needs {n} compressed entries, {n_comp} exist", pos0 + t_len - 1)));
            }
            (1, KernelArg::Ptr(comp.ptr()), 0, ratio)
        }
        Selection::Indices { buf, width } => {
            need(buf, end * width, "sparse_attn_sink selection")?;
            (2, buf.arg(), width, 0)
        }
    };
    need(comp, n_comp * hd, "sparse_attn_sink comp")?;
    u32_of(pos0 + t_len, "position")?;
    if heads > 65535 {
        return Err(GpuError(format!("sparse_attn_sink: {heads} heads (grid y <= 65535)")));
    }
    let cfg = LaunchCfg { grid: [u32_of(t_len, "t_len")?, heads as u32, 1], block: [(32 * ATTN_SPLIT) as u32, 1, 1], shared: 0 };
    gpu.launch(
        &crate::ptx::ATTENTION,
        "attn_sparse_sink",
        cfg,
        &[
            q.arg(),
            kv.arg(),
            ring.arg(),
            comp.arg(),
            sel_arg,
            sink.arg(),
            out.arg(),
            KernelArg::U32(u32_of(row0, "row0")?),
            KernelArg::U32(t_len as u32),
            KernelArg::U32(pos0 as u32),
            KernelArg::U32(heads as u32),
            KernelArg::U32(hd as u32),
            KernelArg::U32(u32_of(window, "window")?),
            KernelArg::U32(mode),
            KernelArg::U32(u32_of(width, "selection width")?),
            KernelArg::U32(u32_of(ratio, "ratio")?),
            KernelArg::F32(scale),
        ],
    )
}

/// Write the chunk's last `min(t_len, window)` KV rows (`kv [*, hd]`, rows `row0..`) into
/// `ring [window, hd]` at slot = position mod window.
#[allow(clippy::too_many_arguments)]
pub fn ring_update(gpu: &Gpu, ring: &Buf, window: usize, hd: usize, kv: &Buf, row0: usize, t_len: usize, pos0: usize) -> Result<(), GpuError> {
    if t_len == 0 {
        return Ok(());
    }
    need(ring, window * hd, "ring_update ring")?;
    need(kv, (row0 + t_len) * hd, "ring_update kv")?;
    let n = t_len.min(window);
    gpu.launch(
        &crate::ptx::ATTENTION,
        "attn_ring_update",
        LaunchCfg::linear(n as u32, 128),
        &[
            ring.arg(),
            kv.arg(),
            KernelArg::U32(u32_of(row0, "row0")?),
            KernelArg::U32(u32_of(t_len, "t_len")?),
            KernelArg::U32(u32_of(pos0, "pos0")?),
            KernelArg::U32(hd as u32),
            KernelArg::U32(window as u32),
        ],
    )
}

/// `attn_core` for one chunk of one sequence, minus the inverse RoPE: sparse attention with
/// sink over the window (ring + this chunk's `kv` rows) and the selected entries of `st.comp`,
/// then the ring update. `out [*, H·hd]` rows `row0..row0+t_len` are written.
#[allow(clippy::too_many_arguments)]
pub fn attn_core_chunk(
    gpu: &Gpu,
    st: &mut DevLayerState,
    heads: usize,
    q: &Buf,
    kv: &Buf,
    sel: Selection,
    sink: &Buf,
    row0: usize,
    t_len: usize,
    pos0: usize,
    out: &Buf,
) -> Result<(), GpuError> {
    let sh = AttnShape::new(heads, st.hd, st.window_size);
    sparse_attn_sink(gpu, sh, q, kv, &st.window, st.comp.buf(), st.comp.len(), sel, sink, row0, t_len, pos0, out)?;
    ring_update(gpu, &st.window, st.window_size, st.hd, kv, row0, t_len, pos0)
}

/// `dst[dst_off .. dst_off+n] = src[src_off .. src_off+n]` (f32 elements; no overlap).
pub fn copy_f32(gpu: &Gpu, dst: &Buf, dst_off: usize, src: &Buf, src_off: usize, n: usize) -> Result<(), GpuError> {
    if n == 0 {
        return Ok(());
    }
    need(dst, dst_off + n, "copy_f32 dst")?;
    need(src, src_off + n, "copy_f32 src")?;
    let blocks = n.div_ceil(256).min(4096) as u32;
    gpu.launch(
        &crate::ptx::ATTENTION,
        "attn_copy_f32",
        LaunchCfg::linear(blocks, 256),
        &[f32_at(dst, dst_off), f32_at(src, src_off), KernelArg::U64(n as u64)],
    )
}
