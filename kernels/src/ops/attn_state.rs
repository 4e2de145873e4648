//! The attention side's per-sequence, per-layer device state: what `attention`, `compressor`
//! and `indexer` read and write between steps. Mirrors `dsv4_reference::model::LayerState`
//! (and converts to and from it exactly, for tests and for moving a sequence between backends).
//!
//! One `DevLayerState` per (sequence slot, layer); all f32 row-major:
//!
//! | field | shape | content |
//! |---|---|---|
//! | `window` | `[window, hd]` | window KV ring, slot = position mod window; NaN until written (as the reference) |
//! | `comp` | `DevRows [cap, hd]`, `len` rows valid | compressed KV entries (ratio > 0), row = block index |
//! | `compressor` | `DevCompressorState` | rings of the raw kv / gate(+ape) rows of the partial block (and the previous block for ratio 4) |
//! | `index_keys` | `DevRows [cap, index_hd]` | the indexer's keys (ratio 4) |
//! | `index_compressor` | `DevCompressorState` | the indexer compressor's partial-block rings (ratio 4) |
//!
//! `DevRows` grows by reallocating (capacity doubles) and copying on the device
//! (`attention::copy_f32`); rows past `len` are NaN-poisoned.
//!
//! How a backend composes the three families per layer for a step's `chunks` (each chunk:
//! `row0 = rows.start`, `t = rows.len()`, `pos0`, and the slot's `DevLayerState` `st`):
//! - `attn_compress`: `kv = wkv·x`, `score = wgate·x` over all step rows (linear family, f32
//!   `[T, coff·hd]`); per chunk `compressor::compress_chunk(.., &mut st.compressor, &kv,
//!   &score, row0, t, pos0, &scratch, 0)` → the new entries (blocks `b`) in `scratch`; RoPE at
//!   `b·ratio` + FP8 simulation (other families); `st.comp.append(gpu, &scratch, 0, n)`.
//!   (`compressor::compress_into` writes into the cache directly instead.)
//! - `attn_select`, ratio 4: index queries (wq_b, RoPE, `indexer::hadamard` with n = ihd over
//!   `T·nh` rows, FP4), the index compressor as above on `st.index_compressor` / `st.index_keys`
//!   (RoPE, `hadamard`, FP4 between), `w = weights_proj·x`; per chunk
//!   `indexer::indexer_select(.., &st.index_keys, row0, t, pos0, &sel)` into one `[T, topk]`
//!   i32 buffer → `Selection::Indices { buf: &sel, width: topk }`. Ratio 128:
//!   `Selection::All { ratio }`; ratio 0: `Selection::None`.
//! - `attn_core`: per chunk `attention::attn_core_chunk(gpu, st, heads, &q, &kv, sel, &sink,
//!   row0, t, pos0, &o)` (attention, then the ring update), then the inverse RoPE on `o`.
//!
//! Bytes at the real config (hd 512, window 128, index_hd 128): window 256 KiB; ratio-4 layer
//! compressor rings 2×[8, 1024] = 64 KiB + indexer rings 2×[8, 256] = 16 KiB; ratio-128 layer
//! rings 2×[128, 512] = 512 KiB; entries 2 KiB (+512 B index key) each.

use std::ops::Range;

use dsv4_reference::model::compressor::CompressorState;
use dsv4_reference::model::LayerState;
use dsv4_reference::Config;

use crate::gpu::{f32_bytes, Buf, Gpu};
use crate::launch::GpuError;
use crate::ops::attention::copy_f32;
pub use crate::ops::compressor::DevCompressorState;

/// A growable device table of f32 rows `[capacity, width]`, the first `len` valid.
pub struct DevRows {
    buf: Buf,
    width: usize,
    len: usize,
    cap: usize,
}

impl DevRows {
    /// Room for `cap` rows (NaN-poisoned), none valid yet.
    pub fn new(gpu: &Gpu, width: usize, cap: usize) -> Result<DevRows, GpuError> {
        Ok(DevRows { buf: gpu.alloc_poisoned(cap * width * 4)?, width, len: 0, cap })
    }
    pub fn buf(&self) -> &Buf {
        &self.buf
    }
    pub fn width(&self) -> usize {
        self.width
    }
    pub fn len(&self) -> usize {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    pub fn capacity(&self) -> usize {
        self.cap
    }
    /// Allocated bytes.
    pub fn bytes(&self) -> usize {
        self.buf.bytes()
    }
    /// Make room for `rows` rows, keeping the valid ones (reallocates to max(rows, 2·cap, 16)
    /// and copies on the device).
    pub fn reserve(&mut self, gpu: &Gpu, rows: usize) -> Result<(), GpuError> {
        if rows <= self.cap {
            return Ok(());
        }
        let cap = rows.max(2 * self.cap).max(16);
        let buf = gpu.alloc_poisoned(cap * self.width * 4)?;
        copy_f32(gpu, &buf, 0, &self.buf, 0, self.len * self.width)?;
        self.buf = buf;
        self.cap = cap;
        Ok(())
    }
    /// Declare rows `0..len` valid (after a kernel wrote them in place; `len <= capacity`).
    pub fn set_len(&mut self, len: usize) {
        assert!(len <= self.cap, "DevRows::set_len({len}) past capacity {}", self.cap);
        self.len = len;
    }
    /// Append `n` rows of `src` starting at its row `src_row0` (same width); returns the new
    /// rows' indices.
    pub fn append(&mut self, gpu: &Gpu, src: &Buf, src_row0: usize, n: usize) -> Result<Range<usize>, GpuError> {
        let start = self.len;
        self.reserve(gpu, start + n)?;
        copy_f32(gpu, &self.buf, start * self.width, src, src_row0 * self.width, n * self.width)?;
        self.len = start + n;
        Ok(start..start + n)
    }
    /// The valid rows on the host.
    pub fn download(&self) -> Result<Vec<f32>, GpuError> {
        // Whole buffer, then cut: only snapshots and tests download.
        let mut v = self.buf.download_f32()?;
        v.truncate(self.len * self.width);
        Ok(v)
    }
    /// Replace the contents by `rows` (`[n, width]`), keeping at least the current capacity.
    pub fn upload(&mut self, gpu: &Gpu, rows: &[f32]) -> Result<(), GpuError> {
        assert_eq!(rows.len() % self.width.max(1), 0, "DevRows::upload: {} floats are not rows of {}", rows.len(), self.width);
        let n = rows.len().checked_div(self.width).unwrap_or(0);
        if n > self.cap {
            let cap = n.max(16);
            self.buf = gpu.alloc_poisoned(cap * self.width * 4)?;
            self.cap = cap;
        }
        if !rows.is_empty() {
            gpu.launcher().htod(self.buf.ptr(), &f32_bytes(rows))?;
        }
        self.len = n;
        Ok(())
    }
}

/// One sequence's state for one layer on the device.
pub struct DevLayerState {
    /// The layer's compress ratio (0 = window only).
    pub ratio: usize,
    pub hd: usize,
    pub window_size: usize,
    /// `[window, hd]`, slot = position mod window, NaN until written.
    pub window: Buf,
    /// Compressed entries `[n, hd]` (empty and unused at ratio 0).
    pub comp: DevRows,
    /// Ratio > 0.
    pub compressor: Option<DevCompressorState>,
    /// Ratio 4: indexer keys `[n, index_hd]`.
    pub index_keys: Option<DevRows>,
    /// Ratio 4.
    pub index_compressor: Option<DevCompressorState>,
}

/// A host copy of a `DevLayerState` (prefix cache, tests).
#[derive(Clone, Debug, PartialEq)]
pub struct DevLayerSnapshot {
    pub ratio: usize,
    pub window: Vec<f32>,
    pub comp: Vec<f32>,
    pub compressor: Option<CompressorSnapshot>,
    pub index_keys: Vec<f32>,
    pub index_compressor: Option<CompressorSnapshot>,
}

/// A host copy of a `DevCompressorState`.
#[derive(Clone, Debug, PartialEq)]
pub struct CompressorSnapshot {
    pub pos: usize,
    pub kv_ring: Vec<f32>,
    pub sc_ring: Vec<f32>,
}

impl DevLayerSnapshot {
    /// Bytes the snapshot holds.
    pub fn bytes(&self) -> usize {
        let c = |s: &Option<CompressorSnapshot>| s.as_ref().map_or(0, |s| s.kv_ring.len() + s.sc_ring.len());
        4 * (self.window.len() + self.comp.len() + self.index_keys.len() + c(&self.compressor) + c(&self.index_compressor))
    }
}

impl DevLayerState {
    /// A fresh state (position 0) for a layer of compress ratio `ratio`
    /// (`cfg.compress_ratio(layer)`): window ring NaN, no entries, empty partial blocks.
    pub fn new(gpu: &Gpu, cfg: &Config, ratio: usize) -> Result<DevLayerState, GpuError> {
        let (hd, win, ihd) = (cfg.head_dim, cfg.window_size, cfg.index_head_dim);
        let window = gpu.alloc_poisoned(win * hd * 4)?;
        let comp = DevRows::new(gpu, hd, if ratio > 0 { 16 } else { 0 })?;
        let compressor = if ratio > 0 { Some(DevCompressorState::new(gpu, ratio, hd, ratio == 4)?) } else { None };
        let (index_keys, index_compressor) = if ratio == 4 {
            (Some(DevRows::new(gpu, ihd, 16)?), Some(DevCompressorState::new(gpu, ratio, ihd, true)?))
        } else {
            (None, None)
        };
        Ok(DevLayerState { ratio, hd, window_size: win, window, comp, compressor, index_keys, index_compressor })
    }

    /// Back to position 0 without reallocating (rings NaN again, no entries; capacity kept).
    pub fn reset(&mut self, gpu: &Gpu) -> Result<(), GpuError> {
        let poison = |b: &Buf| gpu.launcher().memset(b.ptr(), 0xFF, b.bytes());
        poison(&self.window)?;
        self.comp.set_len(0);
        for c in [&mut self.compressor, &mut self.index_compressor].into_iter().flatten() {
            poison(&c.kv_ring)?;
            poison(&c.sc_ring)?;
            c.pos = 0;
        }
        if let Some(k) = &mut self.index_keys {
            k.set_len(0);
        }
        Ok(())
    }

    /// Allocated device bytes.
    pub fn bytes(&self) -> usize {
        self.window.bytes()
            + self.comp.bytes()
            + self.compressor.as_ref().map_or(0, |c| c.bytes())
            + self.index_keys.as_ref().map_or(0, |k| k.bytes())
            + self.index_compressor.as_ref().map_or(0, |c| c.bytes())
    }

    /// Copy everything to the host.
    pub fn snapshot(&self) -> Result<DevLayerSnapshot, GpuError> {
        Ok(DevLayerSnapshot {
            ratio: self.ratio,
            window: self.window.download_f32()?,
            comp: self.comp.download()?,
            compressor: self.compressor.as_ref().map(|c| c.snapshot()).transpose()?,
            index_keys: match &self.index_keys {
                Some(k) => k.download()?,
                None => Vec::new(),
            },
            index_compressor: self.index_compressor.as_ref().map(|c| c.snapshot()).transpose()?,
        })
    }

    /// Put a snapshot of a state of the same layer back.
    pub fn restore(&mut self, gpu: &Gpu, s: &DevLayerSnapshot) -> Result<(), GpuError> {
        if s.ratio != self.ratio {
            return Err(GpuError(format!("restore: snapshot of a ratio-{} layer into a ratio-{} layer", s.ratio, self.ratio)));
        }
        self.window.write_bytes(&f32_bytes(&s.window))?;
        self.comp.upload(gpu, &s.comp)?;
        if let (Some(c), Some(sc)) = (&mut self.compressor, &s.compressor) {
            c.restore(sc)?;
        }
        if let Some(k) = &mut self.index_keys {
            k.upload(gpu, &s.index_keys)?;
        }
        if let (Some(c), Some(sc)) = (&mut self.index_compressor, &s.index_compressor) {
            c.restore(sc)?;
        }
        Ok(())
    }

    /// The same state as the reference holds it.
    pub fn to_reference(&self) -> Result<LayerState, GpuError> {
        Ok(LayerState {
            window: self.window.download_f32()?,
            comp: self.comp.download()?,
            compressor: match &self.compressor {
                Some(c) => c.to_reference()?,
                None => CompressorState::default(),
            },
            index_keys: match &self.index_keys {
                Some(k) => k.download()?,
                None => Vec::new(),
            },
            index_compressor: match &self.index_compressor {
                Some(c) => c.to_reference()?,
                None => CompressorState::default(),
            },
        })
    }

    /// A device state equal to the reference's `ls` for a layer of ratio `ratio`.
    pub fn from_reference(gpu: &Gpu, cfg: &Config, ratio: usize, ls: &LayerState) -> Result<DevLayerState, GpuError> {
        let mut st = DevLayerState::new(gpu, cfg, ratio)?;
        st.window.write_bytes(&f32_bytes(&ls.window))?;
        if ratio > 0 {
            st.comp.upload(gpu, &ls.comp)?;
            let n = ls.comp.len() / cfg.head_dim;
            st.compressor.as_mut().expect("ratio > 0 has a compressor").load_reference(n, &ls.compressor)?;
        }
        if ratio == 4 {
            st.index_keys.as_mut().expect("ratio 4 has index keys").upload(gpu, &ls.index_keys)?;
            let n = ls.index_keys.len() / cfg.index_head_dim;
            st.index_compressor.as_mut().expect("ratio 4 has an index compressor").load_reference(n, &ls.index_compressor)?;
        }
        Ok(st)
    }
}
