//! The ops of the forward pass, each a public function over plain f32 slices so the engine's
//! CPU backend and the kernels' property tests can call them.

pub mod attention;
pub mod hadamard;
pub mod mhc;
pub mod moe;
pub mod norm;
pub mod rope;
