//! Tensor-core instructions as pure functions over one warp's registers: `mma.sync` for every
//! shape and type we use, `ldmatrix`/`stmatrix` fragment layouts. Layouts are closed-form
//! functions checked by tests against tables transcribed independently from the PTX ISA figures
//! and from CuTe's layout definitions.
//!
//! CONTRACT (the executor relies on these):
//! ```ignore
//! #[derive(Clone, Copy, Debug, PartialEq, Eq)]
//! pub enum Elem { F16, Bf16, E4m3, E5m2, F32, S8, U8, Tf32 }
//! #[derive(Clone, Copy, Debug, PartialEq, Eq)]
//! pub struct MmaKind { pub m: u32, pub n: u32, pub k: u32, pub a: Elem, pub b: Elem, pub c: Elem, pub d: Elem }
//! impl MmaKind {
//!     /// Parse from the instruction modifiers after "mma": e.g.
//!     /// ["sync","aligned","m16n8k16","row","col","f32","bf16","bf16","f32"]. Err names what is unsupported.
//!     pub fn from_mods(mods: &[String]) -> Result<MmaKind, String>;
//!     /// 32-bit registers per lane for A, B, C, D (e.g. m16n8k16 bf16 f32: 4, 2, 4, 4).
//!     pub fn regs(&self) -> (usize, usize, usize, usize);
//!     pub fn flops(&self) -> u64;  // 2*m*n*k
//! }
//! /// One warp-wide mma: a[lane * na + i] etc. (lane-major), d written the same way.
//! pub fn mma_sync(kind: &MmaKind, a: &[u32], b: &[u32], c: &[u32], d: &mut [u32]);
//! /// ldmatrix .m8n8 .x{1,2,4} [.trans] .b16: lane `l` supplies the row address of row l%8 of
//! /// matrix l/8 (only lanes < 8*num matter). `read` returns the 16 bytes of one row.
//! /// Returns regs[lane * num + i]: lane's 32-bit register for matrix i.
//! pub fn ldmatrix(num: usize, trans: bool, row_addr: &[u32; 32], read: &mut dyn FnMut(u32) -> Result<[u8; 16], String>) -> Result<Vec<u32>, String>;
//! /// stmatrix, the inverse: writes each matrix row (16 bytes) to the address lane l supplies.
//! pub fn stmatrix(num: usize, trans: bool, row_addr: &[u32; 32], regs: &[u32], write: &mut dyn FnMut(u32, [u8; 16]) -> Result<(), String>) -> Result<(), String>;
//! ```
//!
//! Additions beyond the contract: `Elem::S32` (the integer accumulator of `.s8/.u8` mma), the
//! closed-form layout functions `a_coord`/`b_coord`/`c_coord` and `Elem::bits`, and
//! `ldmatrix_coord` (which matrix element a lane's register half holds).
//!
//! Supported `mma.sync.aligned` forms (all `.row.col`):
//! - `m16n8k16` and `m16n8k8` with `.f16` inputs (C/D each `.f16` or `.f32`) or `.bf16` inputs
//!   (C/D `.f32`);
//! - `m16n8k8` and `m16n8k4` `.tf32` (C/D `.f32`);
//! - `m16n8k32` and `m16n8k16` `.e4m3`/`.e5m2` (mixed allowed; C/D `.f32`, or both `.f16`);
//! - `m16n8k32` and `m16n8k16` `.s8`/`.u8` (mixed allowed; C/D `.s32`, wrapping; `.satfinite`
//!   is rejected).
//!
//! Numerics (our choice, documented): products are exact, they are summed together with C in
//! f64 (in the order c, k = 0, 1, ...) and the sum is rounded once to nearest-even into D's
//! type. That is exact or within one f64 rounding of exact, so tests with exactly
//! representable sums see the true result; hardware may truncate intermediate sums instead.
//! `.tf32` operands use only the top 19 bits of each register (the low 13 are ignored, as
//! hardware does). NaN results are the canonical NaN of D's type.

mod ldmatrix;
mod mma;
/// `wgmma.mma_async` (warpgroup MMA): descriptors, smem layouts, fragments, numerics.
pub mod wgmma;

pub use ldmatrix::*;
pub use mma::*;
