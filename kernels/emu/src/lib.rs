//! dsv4-emu: a functional PTX emulator. It runs the exact PTX our binary embeds (`.target sm_90a`,
//! `.version` <= 9.0) on the CPU, so every kernel's property test runs in CI without a GPU.
//!
//! Data flow: PTX text -> `ptx::parse` (syntax tree, scoped names kept) -> `decode` (one flat,
//! typed instruction array per kernel; an unsupported form is rejected here with its PTX line)
//! -> `exec` (grid -> CTAs -> warps in lockstep with per-lane PCs -> 32 lanes) over `mem`
//! (global heap with bounds checks, per-CTA shared, per-thread local, param and const banks).
//! Numeric semantics live in `num` (IEEE rounding modes, f16/bf16/FP8 conversions, approximate
//! functions) and tensor-core fragment layouts in `tensor`; both are pure functions tested
//! against independent sources. `Device` is the public face: the emulator's half of the
//! `Launcher` trait in `dsv4-kernels`.

pub mod api;
pub mod coverage;
pub mod decode;
pub mod device;
pub mod exec;
pub mod mem;
pub mod num;
pub mod ptx;
pub mod tensor;
pub mod tmap;

pub use api::{ArgValue, EmuError, ErrorKind, LaunchConfig, LaunchStats, ParamInfo};
pub use device::{Device, ModuleHandle};
pub use exec::schedule::Schedule;
pub use tmap::{encode_tensor_map, OobFill, Swizzle, TensorMapDesc, TmapDtype};
