//! Benchmark harness (to come): criterion benches and the writer of `results/`.
pub use dsv4_reference as reference;
