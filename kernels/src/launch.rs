//! The one launch interface: everything the CUDA backend does on a device goes through
//! `Launcher`, implemented by cudarc (a real GPU) and by the PTX emulator (the CPU), both fed
//! by the same embedded PTX.

use std::fmt;

/// The arguments of `cuTensorMapEncodeTiled` (the emulator's type, shared by both launchers).
pub use dsv4_emu::{OobFill, Swizzle, TensorMapDesc, TmapDtype};

/// A device address.
pub type DevPtr = u64;

/// A module loaded by a launcher.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ModuleId(pub usize);

/// Grid and block shape of a launch and its dynamic shared memory in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LaunchCfg {
    pub grid: [u32; 3],
    pub block: [u32; 3],
    pub shared: u32,
}

impl LaunchCfg {
    /// A 1-D launch: `grid` blocks of `block` threads.
    pub fn linear(grid: u32, block: u32) -> LaunchCfg {
        LaunchCfg { grid: [grid, 1, 1], block: [block, 1, 1], shared: 0 }
    }
    pub fn with_shared(mut self, bytes: u32) -> LaunchCfg {
        self.shared = bytes;
        self
    }
}

/// One kernel argument in parameter order.
#[derive(Clone, Debug, PartialEq)]
pub enum KernelArg {
    Ptr(DevPtr),
    U32(u32),
    I32(i32),
    U64(u64),
    I64(i64),
    F32(f32),
    F64(f64),
    /// A by-value struct, e.g. a `__grid_constant__` tensor map (128 bytes).
    Bytes(Vec<u8>),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GpuError(pub String);

impl fmt::Display for GpuError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for GpuError {}

impl From<dsv4_emu::EmuError> for GpuError {
    fn from(e: dsv4_emu::EmuError) -> GpuError {
        GpuError(e.message)
    }
}

pub trait Launcher: Send + Sync {
    /// For logs: "emu (PTX emulator)", "cuda (NVIDIA H100 80GB HBM3, sm_90)".
    fn name(&self) -> String;
    fn alloc(&self, bytes: usize) -> Result<DevPtr, GpuError>;
    fn free(&self, ptr: DevPtr) -> Result<(), GpuError>;
    fn htod(&self, dst: DevPtr, src: &[u8]) -> Result<(), GpuError>;
    fn dtoh(&self, src: DevPtr, dst: &mut [u8]) -> Result<(), GpuError>;
    fn memset(&self, dst: DevPtr, byte: u8, len: usize) -> Result<(), GpuError>;
    /// Load (JIT on a GPU, parse + decode on the emulator) a PTX module.
    fn load_module(&self, name: &str, ptx: &str) -> Result<ModuleId, GpuError>;
    /// Launch `kernel` of module `m`; launches are ordered (one stream).
    fn launch(&self, m: ModuleId, kernel: &str, cfg: &LaunchCfg, args: &[KernelArg]) -> Result<(), GpuError>;
    /// Wait for all launched work; reports an asynchronous fault.
    fn synchronize(&self) -> Result<(), GpuError>;
    /// Encode a tiled tensor map (`cuTensorMapEncodeTiled` on a GPU; the emulator validates the
    /// same constraints and writes its own layout). Kernels receive the 128 bytes opaquely as a
    /// `__grid_constant__ const CUtensorMap` (`KernelArg::Bytes`).
    fn encode_tensor_map(&self, desc: &TensorMapDesc) -> Result<[u8; 128], GpuError>;
    /// The emulator's counters for the last launch (None on a GPU).
    fn last_stats(&self) -> Option<dsv4_emu::LaunchStats> {
        None
    }
}
