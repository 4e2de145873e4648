//! Cache-resident kernel speed per level (decode cost without DRAM): one small weight called
//! repeatedly. `RAYON_NUM_THREADS=1 cargo run --release -p dsv4-bench --example kern_cache`.
use std::time::Instant;

use dsv4_bench::weights::{activations, random_linear, stored_bytes, Format};
use dsv4_engine::cpu_kernels::{fast_linear_with, Fp4Math, Level};
use dsv4_reference::ActQuant;

fn main() {
    for (fmt, out, inp) in [(Format::Fp4, 256, 4096), (Format::Fp8, 128, 4096), (Format::Bf16, 64, 4096)] {
        let w = random_linear(fmt, out, inp, 1);
        for b in [1usize, 2, 4, 8] {
            let x = activations(b, inp);
            for level in Level::available().into_iter().filter(|l| *l != Level::Scalar) {
                for fp4 in [Fp4Math::Exact, Fp4Math::Int8] {
                    if fp4 == Fp4Math::Int8 && fmt != Format::Fp4 {
                        continue;
                    }
                    let mut best = f64::MAX;
                    for _ in 0..5 {
                        let t = Instant::now();
                        for _ in 0..200 {
                            std::hint::black_box(fast_linear_with(level, fp4, &w, &x, 0..out, if std::env::var("AQ").is_ok() { ActQuant::On } else { ActQuant::Off }));
                        }
                        best = best.min(t.elapsed().as_secs_f64() / 200.0);
                    }
                    println!("{:?} b{b} {level:?} {fp4:?}: {:.2} GB/s", fmt, stored_bytes(&w) as f64 / best / 1e9);
                }
            }
        }
    }
}
