//! The lightning indexer (`cuda/indexer.cu`): mirrors the scoring and top-k of
//! `dsv4_reference::model::Model::indexer` (`score[t] = Σ_h w_h·relu(q_h·k_t)` over the complete
//! entries `t < (p+1)/ratio`, the top `min(topk, n)` with ties to the lower entry, as
//! `ops::moe::topk_indices`), bit-exactly; and `ops::hadamard::hadamard_inplace`. The index
//! queries and keys come from other kernels (wq_b, RoPE, this Hadamard, FP4 simulation; the keys
//! from `compressor` + RoPE + Hadamard + FP4).

use crate::gpu::{Buf, Gpu};
use crate::launch::{GpuError, KernelArg, LaunchCfg};
use crate::ops::attention::{f32_at, need, u32_of};
use crate::ops::attn_state::DevRows;

/// Largest `topk` the selection kernel sorts in shared memory.
pub const INDEX_TOPK_MAX: usize = 2048;
/// Largest Hadamard size.
pub const HADAMARD_MAX: usize = 2048;
/// Scores scratch is processed in token batches of at most this many floats (256 MiB).
const SCORE_SCRATCH_FLOATS: usize = 64 << 20;

/// Shapes of the indexer.
#[derive(Clone, Copy, Debug)]
pub struct IndexShape {
    pub ratio: usize,
    /// Index heads and head dim.
    pub nh: usize,
    pub ihd: usize,
    /// `index_topk` (the width of the selection rows).
    pub topk: usize,
    /// Multiplies the raw `weights_proj` outputs: `ihd^-0.5 · nh^-0.5` as the reference
    /// computes it (`IndexShape::new`), or 1.0 when `w` is already scaled.
    pub w_scale: f32,
}

impl IndexShape {
    pub fn new(ratio: usize, nh: usize, ihd: usize, topk: usize) -> IndexShape {
        let w_scale = ((ihd as f64).powf(-0.5) * (nh as f64).powf(-0.5)) as f32;
        IndexShape { ratio, nh, ihd, topk, w_scale }
    }
}

/// Top-k selection for one chunk of one sequence: `q [*, nh·ihd]` index queries and
/// `w [*, nh]` raw `weights_proj·x` (step rows; the chunk is rows `row0..row0+t_len` at
/// positions `pos0..`), `keys` the sequence's index keys (at least `(pos0+t_len)/ratio` rows).
/// Writes `out [*, topk]` i32 rows `row0..`: the selected entries best first, then -1 — the
/// `Selection::Indices { buf: out, width: topk }` that `attention::sparse_attn_sink` reads.
#[allow(clippy::too_many_arguments)]
pub fn indexer_select(
    gpu: &Gpu,
    sh: IndexShape,
    q: &Buf,
    w: &Buf,
    keys: &DevRows,
    row0: usize,
    t_len: usize,
    pos0: usize,
    out: &Buf,
) -> Result<(), GpuError> {
    let IndexShape { ratio, nh, ihd, topk, w_scale } = sh;
    if ratio == 0 || nh == 0 || ihd == 0 || topk == 0 || topk > INDEX_TOPK_MAX {
        return Err(GpuError(format!("indexer_select: unsupported ratio {ratio}, nh {nh}, ihd {ihd}, topk {topk} (<= {INDEX_TOPK_MAX})")));
    }
    if keys.width() != ihd {
        return Err(GpuError(format!("indexer_select: keys of width {}, ihd {ihd}", keys.width())));
    }
    if t_len == 0 {
        return Ok(());
    }
    let end = row0 + t_len;
    let n_max = (pos0 + t_len) / ratio;
    if keys.len() < n_max {
        return Err(GpuError(format!("indexer_select: position {} needs {n_max} index keys, {} exist", pos0 + t_len - 1, keys.len())));
    }
    need(q, end * nh * ihd, "indexer_select q")?;
    need(w, end * nh, "indexer_select w")?;
    need(out, end * topk, "indexer_select out")?;
    u32_of(pos0 + t_len, "position")?;
    u32_of(end, "row")?;
    let smem = (nh * ihd + nh) * 4;
    if smem > 48 * 1024 {
        return Err(GpuError(format!("indexer_select: nh·ihd = {} needs {smem} bytes of shared memory (> 48 KiB)", nh * ihd)));
    }
    let stride = n_max.max(1);
    let batch = (SCORE_SCRATCH_FLOATS / stride).clamp(1, t_len).min(65535);
    let scores = gpu.alloc(batch * stride * 4)?;
    let mut t0 = 0;
    while t0 < t_len {
        let tb = batch.min(t_len - t0);
        let (r0, p0) = (row0 + t0, pos0 + t0);
        let n_last = (p0 + tb) / ratio;
        if n_last > 0 {
            let cfg = LaunchCfg { grid: [n_last.div_ceil(128) as u32, tb as u32, 1], block: [128, 1, 1], shared: smem as u32 };
            gpu.launch(
                &crate::ptx::INDEXER,
                "indexer_scores",
                cfg,
                &[
                    q.arg(),
                    w.arg(),
                    keys.buf().arg(),
                    scores.arg(),
                    KernelArg::U32(r0 as u32),
                    KernelArg::U32(p0 as u32),
                    KernelArg::U32(ratio as u32),
                    KernelArg::U32(nh as u32),
                    KernelArg::U32(ihd as u32),
                    KernelArg::U32(stride as u32),
                    KernelArg::F32(w_scale),
                ],
            )?;
        }
        gpu.launch(
            &crate::ptx::INDEXER,
            "indexer_topk",
            LaunchCfg::linear(tb as u32, 256),
            &[
                scores.arg(),
                out.arg(),
                KernelArg::U32(r0 as u32),
                KernelArg::U32(p0 as u32),
                KernelArg::U32(ratio as u32),
                KernelArg::U32(topk as u32),
                KernelArg::U32(stride as u32),
            ],
        )?;
        t0 += tb;
    }
    Ok(())
}

/// The Walsh–Hadamard transform (Sylvester order, scaled by 1/sqrt(n)) in place on rows
/// `row0..row0+rows` of `x [*, n]` (n a power of two <= 2048). For the index queries
/// `[T, nh·ihd]` use n = ihd and rows = T·nh.
pub fn hadamard(gpu: &Gpu, x: &Buf, row0: usize, rows: usize, n: usize) -> Result<(), GpuError> {
    if !n.is_power_of_two() || n > HADAMARD_MAX {
        return Err(GpuError(format!("hadamard: size {n} is not a power of two <= {HADAMARD_MAX}")));
    }
    if rows == 0 {
        return Ok(());
    }
    need(x, (row0 + rows) * n, "hadamard x")?;
    let scale = 1.0 / (n as f32).sqrt();
    gpu.launch(
        &crate::ptx::INDEXER,
        "indexer_hadamard",
        LaunchCfg::linear(u32_of(rows, "rows")?, 128),
        &[f32_at(x, row0 * n), KernelArg::U32(n as u32), KernelArg::F32(scale)],
    )
}
