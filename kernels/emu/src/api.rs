//! The types of the emulator's public interface (`Device`).
use std::collections::BTreeMap;
use std::fmt;

/// Grid and block shape of a launch plus the dynamic shared memory size in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LaunchConfig {
    pub grid: [u32; 3],
    pub block: [u32; 3],
    pub dynamic_smem: u32,
}

/// One kernel argument, by value. Pointers are `U64` device addresses; a `__grid_constant__`
/// struct (e.g. a tensor map) is `Bytes`.
#[derive(Clone, Debug, PartialEq)]
pub enum ArgValue {
    U32(u32),
    I32(i32),
    U64(u64),
    I64(i64),
    F32(f32),
    F64(f64),
    Bytes(Vec<u8>),
}

impl ArgValue {
    /// The bytes the argument occupies in the parameter bank (little endian).
    pub fn bytes(&self) -> Vec<u8> {
        match self {
            ArgValue::U32(v) => v.to_le_bytes().to_vec(),
            ArgValue::I32(v) => v.to_le_bytes().to_vec(),
            ArgValue::U64(v) => v.to_le_bytes().to_vec(),
            ArgValue::I64(v) => v.to_le_bytes().to_vec(),
            ArgValue::F32(v) => v.to_le_bytes().to_vec(),
            ArgValue::F64(v) => v.to_le_bytes().to_vec(),
            ArgValue::Bytes(b) => b.clone(),
        }
    }
}

/// A kernel parameter as declared in the PTX.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParamInfo {
    pub name: String,
    pub size: u32,
    pub align: u32,
}

/// Per-launch counters (`dsv4 emu run --profile`): the numbers that let us reason about a
/// kernel's speed without a GPU.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LaunchStats {
    /// Warp-instructions executed, by class ("int", "float", "cvt", "ld.global", "st.shared",
    /// "control", "sync", "tensor", ...).
    pub warp_insts: BTreeMap<String, u64>,
    /// Thread-instructions (active lanes summed over warp-instructions).
    pub thread_insts: u64,
    /// Global memory bytes requested by the active lanes of loads and stores.
    pub global_bytes: u64,
    /// Distinct 32-byte sectors touched per warp-instruction, summed.
    pub global_sectors: u64,
    /// Extra shared-memory wavefronts caused by bank conflicts, summed over warp-instructions.
    pub shared_bank_conflicts: u64,
    /// Tensor-core FLOPs (2·M·N·K per mma).
    pub tensor_flops: u64,
}

/// Everything that can go wrong: parse and decode errors (with the PTX line), faults during a
/// launch (with kernel, CTA, thread, line and address), API misuse. Never a panic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EmuError {
    pub kind: ErrorKind,
    pub message: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    Parse,
    /// A form the decoder does not implement, or a malformed one.
    Unsupported,
    /// Out of bounds or misaligned memory access.
    Memory,
    /// A barrier deadlock or an exhausted instruction budget.
    Deadlock,
    /// A `.sync`/`.aligned` collective reached by a divergent or incomplete warp.
    Convergence,
    /// Wrong arguments, launch limits, unknown kernel or pointer.
    Launch,
    /// Anything else that a kernel did wrong (e.g. reading a special register tests must not use).
    Fault,
}

impl EmuError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> EmuError {
        EmuError { kind, message: message.into() }
    }
}

impl fmt::Display for EmuError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for EmuError {}
