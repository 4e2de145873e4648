//! Benchmark harness: criterion benches (`benches/`) and the library behind `dsv4 bench`:
//! rooflines measured on this machine, kernel and model runs, and the writers of `results/`.
pub use dsv4_reference as reference;
pub mod bandwidth;
pub mod cpu;
pub mod model_bench;
pub mod model_record;
pub mod model_run;
pub mod progress;
pub mod report;
pub mod roofline;
pub mod scenario;
pub mod svg;
pub mod telemetry;
pub mod weights;
