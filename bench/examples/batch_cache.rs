//! Cache-resident kernel speed (compute without DRAM): a small weight called repeatedly, GFLOP/s
//! and GB/s of stored weight bytes. `DSV4_THREADS=1 cargo run --release -p dsv4-bench --example
//! batch_cache`; `OUT` rows (default 256), `FMT=fp4|fp8` (default both), `INP` (default 4096 for
//! FP4, 2048 for FP8), `BATCHES` (default 4,8,16,32,64), `TINY` (default 0): that many inputs
//! per row of `x` set to 2^-14 of their block's largest (one remainder each in the FP4 integer
//! kernel; the synthetic model's expert inputs hold 1-4 per row), `MATH=int8` (the inexact FP4
//! path; default exact).
use std::time::Instant;

use dsv4_bench::weights::{activations, random_linear, stored_bytes, Format};
use dsv4_engine::cpu_kernels::{fast_linear_with, quantize_activations, Fp4Math, Level};
use dsv4_reference::ActQuant;

fn env<T: std::str::FromStr>(name: &str) -> Option<T> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

fn main() {
    // the core's FMA rate now (a shared host's speed moves between runs): each line's % of it
    let peak = dsv4_bench::bandwidth::fma_gflops_with(1, 2_000_000, 5);
    println!("FMA peak, 1 thread: {peak:.1} GFLOP/s");
    let out: usize = env("OUT").unwrap_or(256);
    let fmt_only = std::env::var("FMT").ok();
    let math = if std::env::var("MATH").is_ok_and(|m| m == "int8") { Fp4Math::Int8 } else { Fp4Math::Exact };
    let batches: Vec<usize> = std::env::var("BATCHES")
        .map(|v| v.split(',').filter_map(|b| b.trim().parse().ok()).collect())
        .unwrap_or_else(|_| vec![4, 8, 16, 32, 64]);
    for (fmt, inp) in [(Format::Fp4, env("INP").unwrap_or(4096)), (Format::Fp8, env("INP").unwrap_or(2048))] {
        if fmt_only.as_deref().is_some_and(|f| f != fmt.as_str()) {
            continue;
        }
        let w = random_linear(fmt, out, inp, 1);
        for &b in &batches {
            let mut x = quantize_activations(&activations(b, inp), inp);
            let tiny: usize = env("TINY").unwrap_or(0);
            for (r, row) in x.chunks_mut(inp).enumerate() {
                for t in 0..tiny {
                    // spread over the row's blocks, a different input per row
                    let i = (t * inp / tiny.max(1) + 7 * r + 3) % inp;
                    let top = row[i / 32 * 32..][..32].iter().fold(0.0f32, |a, v| a.max(v.abs()));
                    row[i] = top * 2f32.powi(-14);
                }
            }
            let mut best = f64::MAX;
            for _ in 0..5 {
                let t = Instant::now();
                for _ in 0..20 {
                    std::hint::black_box(fast_linear_with(Level::detect(), math, &w, &x, 0..out, ActQuant::Off));
                }
                best = best.min(t.elapsed().as_secs_f64() / 20.0);
            }
            let gflops = 2.0 * (out * inp * b) as f64 / best / 1e9;
            println!("{:?} {out}x{inp} b{b}: {gflops:.1} GFLOP/s ({:.0}% of FMA), {:.1} GB/s", fmt, 100.0 * gflops / peak, stored_bytes(&w) as f64 / best / 1e9);
        }
    }
}
