//! Cache-resident batched kernel speed (compute without DRAM): a small weight, batches 8-64,
//! GFLOP/s. `DSV4_THREADS=1 cargo run --release -p dsv4-bench --example batch_cache`.
use std::time::Instant;

use dsv4_bench::weights::{activations, random_linear, Format};
use dsv4_engine::cpu_kernels::{fast_linear, quantize_activations, Level};
use dsv4_reference::ActQuant;

fn main() {
    let out: usize = std::env::var("OUT").ok().and_then(|v| v.parse().ok()).unwrap_or(256);
    for (fmt, inp) in [(Format::Fp4, 4096), (Format::Fp8, 2048)] {
        let w = random_linear(fmt, out, inp, 1);
        for b in [4usize, 8, 16, 32, 64] {
            let x = quantize_activations(&activations(b, inp), inp);
            let mut best = f64::MAX;
            for _ in 0..5 {
                let t = Instant::now();
                for _ in 0..20 {
                    std::hint::black_box(fast_linear(Level::detect(), &w, &x, 0..out, ActQuant::Off));
                }
                best = best.min(t.elapsed().as_secs_f64() / 20.0);
            }
            println!("{:?} {out}x{inp} b{b}: {:.1} GFLOP/s", fmt, 2.0 * (out * inp * b) as f64 / best / 1e9);
        }
    }
}
