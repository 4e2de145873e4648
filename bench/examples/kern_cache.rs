//! Cache-resident kernel speed per level (decode cost without DRAM): one small weight called
//! repeatedly. `RAYON_NUM_THREADS=1 cargo run --release -p dsv4-bench --example kern_cache`.
use std::time::Instant;

use dsv4_bench::weights::{activations, random_linear, stored_bytes, Format};
use dsv4_engine::cpu_kernels::{fast_linear_with, Fp4Math, Level};
use dsv4_reference::ActQuant;

fn main() {
    let only = std::env::var("FMT").ok();
    for (fmt, out, inp) in [(Format::Fp4, 1024, 4096), (Format::Fp4, 2048, 2048), (Format::Fp8, 512, 4096), (Format::Bf16, 256, 4096)] {
        if only.as_deref().is_some_and(|f| f != fmt.as_str()) {
            continue;
        }
        let w = random_linear(fmt, out, inp, 1);
        for b in [1usize, 2, 4, 8] {
            // pre-quantised (bf16-exact) so the timed call is the kernel alone, `AQ=1` to include
            // it; `RAW=1`: x as it comes (not bf16: the unquantised paths, e.g. wo_a)
            let raw = activations(b, inp).iter().map(|v| v * 1.000_123).collect::<Vec<f32>>();
            let x = if std::env::var("RAW").is_ok() { raw } else { dsv4_engine::cpu_kernels::quantize_activations(&raw, inp) };
            for level in Level::available().into_iter().filter(|l| *l != Level::Scalar) {
                for fp4 in [Fp4Math::Exact, Fp4Math::Int8] {
                    if fp4 == Fp4Math::Int8 && fmt != Format::Fp4 {
                        continue;
                    }
                    let mut best = f64::MAX;
                    for _ in 0..5 {
                        let t = Instant::now();
                        for _ in 0..50 {
                            std::hint::black_box(fast_linear_with(level, fp4, &w, &x, 0..out, if std::env::var("AQ").is_ok() { ActQuant::On } else { ActQuant::Off }));
                        }
                        best = best.min(t.elapsed().as_secs_f64() / 50.0);
                    }
                    println!("{:?} {out}x{inp} b{b} {level:?} {fp4:?}: {:.2} GB/s", fmt, stored_bytes(&w) as f64 / best / 1e9);
                }
            }
        }
    }
}
