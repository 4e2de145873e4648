//! One wrapper per kernel family: takes device buffers and shapes, launches the family's
//! kernels. Each mirrors a `dsv4-reference` op named in its doc; `tests/` holds the property
//! tests that compare them on the emulator.
pub mod attention;
pub mod attn_state;
pub mod compressor;
pub mod copy;
pub mod embed;
pub mod indexer;
pub mod linear;
pub mod mhc;
pub mod moe;
pub mod norm;
pub mod quant;
pub mod rope;
pub mod sampling;
