//! The engine: scheduler, state pool, sampling, backends (CPU, CUDA). Built on `dsv4-reference`;
//! see the open issues for what lands here next.
pub use dsv4_reference as reference;
