//! CUDA kernels for sm_90a and the PTX emulator that proves them on the CPU (to come).
pub use dsv4_reference as reference;
