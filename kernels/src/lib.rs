//! Our CUDA kernels for sm_90a and the machinery that runs them.
//!
//! - `cuda/*.cu`: kernel sources (one family per file, spec comment on top), compiled by the
//!   pinned nvcc from PyPI (`scripts/gen-ptx.sh`) into `ptx/*.ptx`, which is committed and
//!   embedded (`ptx`); no nvcc or NVRTC at run time.
//! - `launch`: the `Launcher` trait (alloc, copy, module, launch) with the emulator
//!   implementation (`emu_launcher`, always available) and the cudarc one (`cuda_launcher`).
//! - `gpu`: `Gpu` (a launcher plus loaded modules) and `Buf` (an owned device buffer).
//! - `ops`: one Rust wrapper per kernel family, mirroring a `dsv4-reference` op; the property
//!   tests in `tests/` compare each with the reference on the emulator.
pub use dsv4_reference as reference;

pub mod cuda_launcher;
pub mod emu_launcher;
pub mod gpu;
pub mod launch;
pub mod ops;
pub mod ptx;

pub use gpu::{Buf, Gpu};
pub use launch::{DevPtr, GpuError, KernelArg, LaunchCfg, Launcher, ModuleId};
