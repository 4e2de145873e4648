//! Tensor maps (the 128-byte `CUtensorMap` a kernel hands to `cp.async.bulk.tensor`).
//!
//! Kernels treat the map as opaque, so the emulator uses its own tagged layout. The encoder
//! validates what `cuTensorMapEncodeTiled` validates (address and stride alignment, rank, box
//! and element-stride ranges, inner box bytes against the swizzle span, data type sizes).
//! `box_copy` is the tile-mode copy itself (swizzle, traversal strides, out-of-bounds fill),
//! used by the executor and checked against a plain model in the tests.
use crate::api::{EmuError, ErrorKind};

/// `CUtensorMapDataType`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum TmapDtype {
    U8 = 0,
    U16 = 1,
    U32 = 2,
    S32 = 3,
    U64 = 4,
    S64 = 5,
    F16 = 6,
    F32 = 7,
    F64 = 8,
    Bf16 = 9,
    F32Ftz = 10,
    Tf32 = 11,
    Tf32Ftz = 12,
}

impl TmapDtype {
    pub fn size(self) -> u64 {
        use TmapDtype::*;
        match self {
            U8 => 1,
            U16 | F16 | Bf16 => 2,
            U32 | S32 | F32 | F32Ftz | Tf32 | Tf32Ftz => 4,
            U64 | S64 | F64 => 8,
        }
    }
    pub fn is_float(self) -> bool {
        use TmapDtype::*;
        matches!(self, F16 | F32 | F64 | Bf16 | F32Ftz | Tf32 | Tf32Ftz)
    }
    fn from_u8(v: u8) -> Option<TmapDtype> {
        use TmapDtype::*;
        Some(match v {
            0 => U8,
            1 => U16,
            2 => U32,
            3 => S32,
            4 => U64,
            5 => S64,
            6 => F16,
            7 => F32,
            8 => F64,
            9 => Bf16,
            10 => F32Ftz,
            11 => Tf32,
            12 => Tf32Ftz,
            _ => return None,
        })
    }
}

/// `CUtensorMapSwizzle` (same numbering: 0 none, 1 32B, 2 64B, 3 128B).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Swizzle {
    None = 0,
    B32 = 1,
    B64 = 2,
    B128 = 3,
}

impl Swizzle {
    /// The swizzle span in bytes (0 for none).
    pub fn span(self) -> u64 {
        match self {
            Swizzle::None => 0,
            Swizzle::B32 => 32,
            Swizzle::B64 => 64,
            Swizzle::B128 => 128,
        }
    }
    /// Apply the swizzle to an absolute shared-memory byte address: bits 4-6 / 4-5 / 4 XOR-ed
    /// with bits 7-9 / 7-8 / 7 (pattern repeating every 1024 / 512 / 256 bytes).
    #[inline]
    pub fn apply(self, addr: u32) -> u32 {
        let mask = match self {
            Swizzle::None => return addr,
            Swizzle::B32 => 0x1,
            Swizzle::B64 => 0x3,
            Swizzle::B128 => 0x7,
        };
        addr ^ (((addr >> 7) & mask) << 4)
    }
    fn from_u8(v: u8) -> Option<Swizzle> {
        Some(match v {
            0 => Swizzle::None,
            1 => Swizzle::B32,
            2 => Swizzle::B64,
            3 => Swizzle::B128,
            _ => return None,
        })
    }
}

/// `CUtensorMapFloatOOBfill`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum OobFill {
    /// Out-of-bounds elements read as zero.
    None = 0,
    /// Out-of-bounds elements read as NaN (float types only).
    NanRequestZeroFma = 1,
}

/// The arguments of `cuTensorMapEncodeTiled` (interleave none, L2 promotion is a hint).
/// `dims[0]` is the innermost (contiguous) dimension; `strides[i]` is the byte stride of
/// dimension `i + 1` (rank - 1 entries).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorMapDesc {
    pub dtype: TmapDtype,
    pub global_address: u64,
    pub dims: Vec<u64>,
    pub strides: Vec<u64>,
    pub box_dims: Vec<u32>,
    pub element_strides: Vec<u32>,
    pub swizzle: Swizzle,
    pub oob_fill: OobFill,
}

impl TensorMapDesc {
    /// A dense row-major tensor (innermost first) with unit element strides.
    pub fn dense(dtype: TmapDtype, global_address: u64, dims: &[u64], box_dims: &[u32], swizzle: Swizzle) -> TensorMapDesc {
        let mut strides = Vec::new();
        let mut s = dtype.size();
        for d in &dims[..dims.len().saturating_sub(1)] {
            s *= d;
            strides.push(s);
        }
        TensorMapDesc {
            dtype,
            global_address,
            dims: dims.to_vec(),
            strides,
            box_dims: box_dims.to_vec(),
            element_strides: vec![1; dims.len()],
            swizzle,
            oob_fill: OobFill::None,
        }
    }
}

pub const TMAP_MAGIC: [u8; 4] = *b"DSTM";
pub const TMAP_VERSION: u8 = 1;

fn bad(msg: String) -> EmuError {
    EmuError::new(ErrorKind::Launch, format!("cuTensorMapEncodeTiled: {msg} (CUDA_ERROR_INVALID_VALUE)"))
}

/// Validate like `cuTensorMapEncodeTiled` and write the emulator's 128-byte tagged layout:
/// 0..4 magic, 4 version, 5 dtype, 6 rank, 7 swizzle, 8 oob fill, 16..24 address,
/// 24..64 dims (u64 x5), 64..96 strides (u64 x4), 96..106 box (u16 x5), 106..111 element strides.
pub fn encode_tensor_map(d: &TensorMapDesc) -> Result<[u8; 128], EmuError> {
    let rank = d.dims.len();
    if !(1..=5).contains(&rank) {
        return Err(bad(format!("tensor rank {rank} is not in 1..=5")));
    }
    if d.strides.len() != rank - 1 || d.box_dims.len() != rank || d.element_strides.len() != rank {
        return Err(bad(format!(
            "rank {rank} needs {} strides, {rank} box dims and {rank} element strides (got {}, {}, {})",
            rank - 1,
            d.strides.len(),
            d.box_dims.len(),
            d.element_strides.len()
        )));
    }
    if !d.global_address.is_multiple_of(16) || d.global_address == 0 {
        return Err(bad(format!("global address {:#x} is not 16-byte aligned", d.global_address)));
    }
    let es = d.dtype.size();
    for (i, &n) in d.dims.iter().enumerate() {
        if n == 0 || n > 1 << 32 {
            return Err(bad(format!("globalDim[{i}] = {n} is not in 1..=2^32")));
        }
    }
    let mut prev = d.dims[0] * es;
    for (i, &s) in d.strides.iter().enumerate() {
        if s % 16 != 0 || s >= 1 << 40 {
            return Err(bad(format!("globalStrides[{i}] = {s} is not a multiple of 16 below 2^40")));
        }
        if s < prev {
            return Err(bad(format!("globalStrides[{i}] = {s} is smaller than the extent {prev} of the dimensions inside it")));
        }
        prev = s.saturating_mul(d.dims[i + 1]);
    }
    for (i, &b) in d.box_dims.iter().enumerate() {
        if !(1..=256).contains(&b) {
            return Err(bad(format!("boxDim[{i}] = {b} is not in 1..=256")));
        }
    }
    let inner = d.box_dims[0] as u64 * es;
    if !inner.is_multiple_of(16) {
        return Err(bad(format!("boxDim[0] * elementSize = {inner} bytes is not a multiple of 16")));
    }
    if d.swizzle != Swizzle::None && inner > d.swizzle.span() {
        return Err(bad(format!("inner box of {inner} bytes exceeds the {}-byte swizzle span", d.swizzle.span())));
    }
    for (i, &e) in d.element_strides.iter().enumerate() {
        if !(1..=8).contains(&e) {
            return Err(bad(format!("elementStrides[{i}] = {e} is not in 1..=8")));
        }
    }
    if d.oob_fill == OobFill::NanRequestZeroFma && !d.dtype.is_float() {
        return Err(bad("NaN out-of-bounds fill needs a floating-point data type".into()));
    }
    let mut m = [0u8; 128];
    m[0..4].copy_from_slice(&TMAP_MAGIC);
    m[4] = TMAP_VERSION;
    m[5] = d.dtype as u8;
    m[6] = rank as u8;
    m[7] = d.swizzle as u8;
    m[8] = d.oob_fill as u8;
    m[16..24].copy_from_slice(&d.global_address.to_le_bytes());
    for i in 0..rank {
        m[24 + 8 * i..32 + 8 * i].copy_from_slice(&d.dims[i].to_le_bytes());
        m[96 + 2 * i..98 + 2 * i].copy_from_slice(&(d.box_dims[i] as u16).to_le_bytes());
        m[106 + i] = d.element_strides[i] as u8;
    }
    for (i, s) in d.strides.iter().enumerate() {
        m[64 + 8 * i..72 + 8 * i].copy_from_slice(&s.to_le_bytes());
    }
    Ok(m)
}

/// Read back a map written by `encode_tensor_map`.
pub fn decode_tensor_map(m: &[u8]) -> Result<TensorMapDesc, String> {
    if m.len() < 128 || m[0..4] != TMAP_MAGIC || m[4] != TMAP_VERSION {
        return Err("the 128 bytes are not a tensor map made by encode_tensor_map (bad magic or version)".into());
    }
    let u64at = |o: usize| u64::from_le_bytes(m[o..o + 8].try_into().unwrap());
    let rank = m[6] as usize;
    if !(1..=5).contains(&rank) {
        return Err(format!("tensor map rank {rank}"));
    }
    let dtype = TmapDtype::from_u8(m[5]).ok_or("tensor map data type")?;
    let swizzle = Swizzle::from_u8(m[7]).ok_or("tensor map swizzle")?;
    let oob_fill = if m[8] == 1 { OobFill::NanRequestZeroFma } else { OobFill::None };
    Ok(TensorMapDesc {
        dtype,
        global_address: u64at(16),
        dims: (0..rank).map(|i| u64at(24 + 8 * i)).collect(),
        strides: (0..rank - 1).map(|i| u64at(64 + 8 * i)).collect(),
        box_dims: (0..rank).map(|i| u16::from_le_bytes([m[96 + 2 * i], m[97 + 2 * i]]) as u32).collect(),
        element_strides: (0..rank).map(|i| m[106 + i] as u32).collect(),
        swizzle,
        oob_fill,
    })
}

/// Elements per dimension that one box copy moves (traversal strides applied).
pub fn box_extent(d: &TensorMapDesc) -> Vec<u64> {
    d.box_dims.iter().zip(&d.element_strides).map(|(&b, &e)| (b as u64).div_ceil(e as u64)).collect()
}

/// Bytes one box copy moves to or from shared memory (the transaction count of a load).
pub fn box_bytes(d: &TensorMapDesc) -> u64 {
    box_extent(d).iter().product::<u64>() * d.dtype.size()
}

/// One element of a box copy: the shared byte address (swizzle applied) and, when in bounds,
/// the global byte address.
pub struct BoxElem {
    pub smem: u32,
    pub global: Option<u64>,
}

/// Walk a tile-mode box at `coords` (innermost first) whose shared copy starts at `smem_base`.
pub fn box_elems(d: &TensorMapDesc, coords: &[i32], smem_base: u32, mut f: impl FnMut(BoxElem)) {
    let rank = d.dims.len();
    let ext = box_extent(d);
    let es = d.dtype.size();
    let total: u64 = ext.iter().product();
    let mut idx = [0u64; 5];
    for lin in 0..total {
        let mut r = lin;
        for i in 0..rank {
            idx[i] = r % ext[i];
            r /= ext[i];
        }
        let mut inb = true;
        let mut g = d.global_address;
        for i in 0..rank {
            let c = coords[i] as i64 + (idx[i] * d.element_strides[i] as u64) as i64;
            if c < 0 || c as u64 >= d.dims[i] {
                inb = false;
                break;
            }
            let stride = if i == 0 { es } else { d.strides[i - 1] };
            g = g.wrapping_add(c as u64 * stride);
        }
        let off = (lin * es) as u32;
        let smem = d.swizzle.apply(smem_base.wrapping_add(off));
        f(BoxElem { smem, global: if inb { Some(g) } else { None } });
    }
}
