//! The KV compressor (`cuda/compressor.cu`): mirrors
//! `dsv4_reference::model::compressor::Compressor::feed` (+ `pool`) followed by the entry's
//! RMSNorm, for any chunking (a prefill chunk of T tokens at any `pos0`, or one decode token).
//! Input: the chunk's projections `kv = wkv·x` and `score = wgate·x` (f32 step rows `[*, w]`,
//! `w = coff·hd`), computed by the linear family. Output: the pooled, normalised entries of the
//! blocks the chunk completes; RoPE (at position b·ratio) and the FP8 (attention) or
//! Hadamard + FP4 (indexer) simulation are applied to them afterwards by the other families'
//! kernels, before they join the cache.

use std::ops::Range;

use dsv4_reference::model::compressor::{Compressor, CompressorState};

use crate::gpu::{f32_bytes, Buf, Gpu};
use crate::launch::{GpuError, KernelArg, LaunchCfg};
use crate::ops::attention::{need, u32_of};
use crate::ops::attn_state::DevRows;

/// A compressor's small weights on the device (`wkv`/`wgate` belong to the linear family).
pub struct DevCompressor {
    pub ratio: usize,
    pub hd: usize,
    pub overlap: bool,
    /// `[ratio, coff·hd]`, added to the gate scores by position within the block.
    pub ape: Buf,
    /// RMSNorm weight `[hd]`.
    pub norm: Buf,
    pub eps: f32,
}

impl DevCompressor {
    pub fn coff(&self) -> usize {
        if self.overlap {
            2
        } else {
            1
        }
    }
    /// Width of the projections, `coff·hd`.
    pub fn width(&self) -> usize {
        self.coff() * self.hd
    }
    /// Upload a reference compressor's `ape` and `norm` (`eps` = `cfg.norm_eps`).
    pub fn from_reference(gpu: &Gpu, c: &Compressor, eps: f32) -> Result<DevCompressor, GpuError> {
        Ok(DevCompressor { ratio: c.ratio, hd: c.hd, overlap: c.overlap, ape: gpu.upload_f32(&c.ape)?, norm: gpu.upload_f32(&c.norm)?, eps })
    }
}

/// One sequence's compressor state: rings of the raw rows of the positions a later entry still
/// needs (the partial block, and with overlap the previous complete block), slot = position mod
/// `R` (`R = 2·ratio` with overlap, else `ratio`); scores stored with `ape` added. `pos` is the
/// next position to feed.
pub struct DevCompressorState {
    pub ratio: usize,
    pub hd: usize,
    pub overlap: bool,
    pub pos: usize,
    /// `[R, coff·hd]` raw kv rows.
    pub kv_ring: Buf,
    /// `[R, coff·hd]` gate scores + ape.
    pub sc_ring: Buf,
}

impl DevCompressorState {
    /// Empty (position 0); rings NaN-poisoned.
    pub fn new(gpu: &Gpu, ratio: usize, hd: usize, overlap: bool) -> Result<DevCompressorState, GpuError> {
        if ratio == 0 {
            return Err(GpuError("DevCompressorState: ratio 0".into()));
        }
        let rows = if overlap { 2 * ratio } else { ratio };
        let w = if overlap { 2 * hd } else { hd };
        Ok(DevCompressorState {
            ratio,
            hd,
            overlap,
            pos: 0,
            kv_ring: gpu.alloc_poisoned(rows * w * 4)?,
            sc_ring: gpu.alloc_poisoned(rows * w * 4)?,
        })
    }
    pub fn ring_rows(&self) -> usize {
        if self.overlap {
            2 * self.ratio
        } else {
            self.ratio
        }
    }
    pub fn width(&self) -> usize {
        if self.overlap {
            2 * self.hd
        } else {
            self.hd
        }
    }
    pub fn bytes(&self) -> usize {
        self.kv_ring.bytes() + self.sc_ring.bytes()
    }
    pub fn snapshot(&self) -> Result<crate::ops::attn_state::CompressorSnapshot, GpuError> {
        Ok(crate::ops::attn_state::CompressorSnapshot { pos: self.pos, kv_ring: self.kv_ring.download_f32()?, sc_ring: self.sc_ring.download_f32()? })
    }
    pub fn restore(&mut self, s: &crate::ops::attn_state::CompressorSnapshot) -> Result<(), GpuError> {
        self.kv_ring.write_bytes(&f32_bytes(&s.kv_ring))?;
        self.sc_ring.write_bytes(&f32_bytes(&s.sc_ring))?;
        self.pos = s.pos;
        Ok(())
    }

    /// The reference's `CompressorState` at `self.pos`: the current partial block's rows and,
    /// with overlap once a block is complete, the previous block's.
    pub fn to_reference(&self) -> Result<CompressorState, GpuError> {
        let (r, w, rr) = (self.ratio, self.width(), self.ring_rows());
        let kv = self.kv_ring.download_f32()?;
        let sc = self.sc_ring.download_f32()?;
        let rows = |range: Range<usize>, ring: &[f32]| -> Vec<Vec<f32>> { range.map(|p| ring[(p % rr) * w..][..w].to_vec()).collect() };
        let nb = self.pos / r;
        let cur = nb * r..self.pos;
        let prev = if self.overlap && nb > 0 { (nb - 1) * r..nb * r } else { 0..0 };
        Ok(CompressorState { kv: rows(cur.clone(), &kv), score: rows(cur, &sc), prev_kv: rows(prev.clone(), &kv), prev_score: rows(prev, &sc) })
    }

    /// Load the reference's state of a sequence with `n_entries` complete blocks.
    pub fn load_reference(&mut self, n_entries: usize, cs: &CompressorState) -> Result<(), GpuError> {
        let (r, w, rr) = (self.ratio, self.width(), self.ring_rows());
        let bad = |m: String| Err(GpuError(format!("load_reference: {m}")));
        if cs.kv.len() >= r || cs.kv.len() != cs.score.len() {
            return bad(format!("partial block of {} kv / {} score rows at ratio {r}", cs.kv.len(), cs.score.len()));
        }
        let want_prev = if self.overlap && n_entries > 0 { r } else { 0 };
        if cs.prev_kv.len() != want_prev || cs.prev_score.len() != want_prev {
            return bad(format!("{} previous rows, expected {want_prev}", cs.prev_kv.len()));
        }
        let mut kv = vec![f32::NAN; rr * w];
        let mut sc = vec![f32::NAN; rr * w];
        let nb = n_entries;
        let mut put = |p: usize, k: &[f32], s: &[f32]| {
            kv[(p % rr) * w..][..w].copy_from_slice(k);
            sc[(p % rr) * w..][..w].copy_from_slice(s);
        };
        for (i, (k, s)) in cs.prev_kv.iter().zip(&cs.prev_score).enumerate() {
            put((nb - 1) * r + i, k, s);
        }
        for (i, (k, s)) in cs.kv.iter().zip(&cs.score).enumerate() {
            put(nb * r + i, k, s);
        }
        self.kv_ring.write_bytes(&f32_bytes(&kv))?;
        self.sc_ring.write_bytes(&f32_bytes(&sc))?;
        self.pos = nb * r + cs.kv.len();
        Ok(())
    }
}

/// The blocks a chunk at `pos0` of `t_len` tokens completes: `pos0/ratio .. (pos0+t_len)/ratio`.
pub fn completed_blocks(ratio: usize, pos0: usize, t_len: usize) -> Range<usize> {
    pos0 / ratio..(pos0 + t_len) / ratio
}

/// Feed one chunk of one sequence: rows `row0..row0+t_len` of `kv` and `score` (`[*, coff·hd]`,
/// positions `pos0..`; `pos0` must equal `st.pos`). Writes the entries of the blocks it
/// completes (`completed_blocks(..)`, returned) to `out [*, hd]` rows `out_row0..`, pooled and
/// RMS-normalised, and advances the state.
#[allow(clippy::too_many_arguments)]
pub fn compress_chunk(
    gpu: &Gpu,
    c: &DevCompressor,
    st: &mut DevCompressorState,
    kv: &Buf,
    score: &Buf,
    row0: usize,
    t_len: usize,
    pos0: usize,
    out: &Buf,
    out_row0: usize,
) -> Result<Range<usize>, GpuError> {
    if st.ratio != c.ratio || st.hd != c.hd || st.overlap != c.overlap {
        return Err(GpuError(format!(
            "compress_chunk: state (ratio {}, hd {}, overlap {}) does not match the compressor (ratio {}, hd {}, overlap {})",
            st.ratio, st.hd, st.overlap, c.ratio, c.hd, c.overlap
        )));
    }
    if pos0 != st.pos {
        return Err(GpuError(format!("compress_chunk: chunk at position {pos0}, state at {}", st.pos)));
    }
    let blocks = completed_blocks(c.ratio, pos0, t_len);
    if t_len == 0 {
        return Ok(blocks);
    }
    let w = c.width();
    need(kv, (row0 + t_len) * w, "compress_chunk kv")?;
    need(score, (row0 + t_len) * w, "compress_chunk score")?;
    need(&c.ape, c.ratio * w, "compress_chunk ape")?;
    need(&c.norm, c.hd, "compress_chunk norm")?;
    u32_of(pos0 + t_len, "position")?;
    u32_of(row0 + t_len, "row")?;
    let n_new = blocks.len();
    if n_new > 0 {
        need(out, (out_row0 + n_new) * c.hd, "compress_chunk out")?;
        gpu.launch(
            &crate::ptx::COMPRESSOR,
            "compressor_pool_norm",
            LaunchCfg::linear(n_new as u32, 128),
            &[
                kv.arg(),
                score.arg(),
                st.kv_ring.arg(),
                st.sc_ring.arg(),
                c.ape.arg(),
                c.norm.arg(),
                out.arg(),
                KernelArg::U32(row0 as u32),
                KernelArg::U32(pos0 as u32),
                KernelArg::U32(u32_of(c.ratio, "ratio")?),
                KernelArg::U32(u32_of(c.hd, "hd")?),
                KernelArg::U32(c.overlap as u32),
                KernelArg::U32(blocks.start as u32),
                KernelArg::U32(u32_of(out_row0, "out_row0")?),
                KernelArg::F32(c.eps),
            ],
        )?;
    }
    let n_ring = t_len.min(st.ring_rows());
    gpu.launch(
        &crate::ptx::COMPRESSOR,
        "compressor_ring_update",
        LaunchCfg::linear(n_ring as u32, 128),
        &[
            st.kv_ring.arg(),
            st.sc_ring.arg(),
            kv.arg(),
            score.arg(),
            c.ape.arg(),
            KernelArg::U32(row0 as u32),
            KernelArg::U32(pos0 as u32),
            KernelArg::U32(t_len as u32),
            KernelArg::U32(c.ratio as u32),
            KernelArg::U32(c.hd as u32),
            KernelArg::U32(c.overlap as u32),
        ],
    )?;
    st.pos = pos0 + t_len;
    Ok(blocks)
}

/// `compress_chunk` writing the new entries straight into the cache `cache` (rows = block
/// index; grown as needed; `cache.len()` must equal the number of blocks before the chunk).
/// Returns the new rows, which the caller then RoPEs / quantises in place.
#[allow(clippy::too_many_arguments)]
pub fn compress_into(
    gpu: &Gpu,
    c: &DevCompressor,
    st: &mut DevCompressorState,
    kv: &Buf,
    score: &Buf,
    row0: usize,
    t_len: usize,
    pos0: usize,
    cache: &mut DevRows,
) -> Result<Range<usize>, GpuError> {
    let blocks = completed_blocks(c.ratio, pos0, t_len);
    if cache.width() != c.hd || cache.len() != blocks.start {
        return Err(GpuError(format!(
            "compress_into: cache of {} rows of {} for a chunk starting at block {} (hd {})",
            cache.len(),
            cache.width(),
            blocks.start,
            c.hd
        )));
    }
    cache.reserve(gpu, blocks.end)?;
    let got = compress_chunk(gpu, c, st, kv, score, row0, t_len, pos0, cache.buf(), blocks.start)?;
    cache.set_len(blocks.end);
    Ok(got)
}
