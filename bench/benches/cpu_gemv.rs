//! CPU GEMV kernels at the memory-bandwidth limit.
//!
//! 1. This machine's read bandwidth: a multi-threaded read-only sum over 1 GiB (far above the
//!    last-level cache), median of 9 passes, on 1 thread and on the whole pool.
//! 2. The kernels (`cpu_kernels::fast_linear` at the detected level and forced scalar) and the
//!    reference `Linear::forward` on real DeepSeek-V4-Flash shapes at batch 1 and 8. Each case
//!    sweeps enough distinct copies of the weight (>= 512 MB in all) that weights come from DRAM;
//!    GB/s counts the stored weight bytes (codes + scales) read per second, % is of the measured
//!    pool read bandwidth. A summary table (median of several sweeps) is printed first, then
//!    criterion measures the same cases (`-- --quick` is enough).
//!
//! The "int8" FP4 cases run the fast, inexact `cpu_kernels::int8::fp4_gemv_int8` (activations
//! quantised to int8 per 32 inputs) on the same weights; their reference column is the exact one.
//!
//! Environment: `CPU_GEMV_SWEEP_MB` (default 512) sets the swept bytes per case;
//! `CPU_GEMV_SKIP_REF=1` skips the (slow) reference baseline; `CPU_GEMV_ONLY=text` runs only the
//! cases whose name contains `text`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use dsv4_bench::bandwidth::{bandwidth_buffer, read_bandwidth_over, words};
use dsv4_engine::cpu_kernels::int8::fp4_gemv_int8;
use dsv4_engine::cpu_kernels::{fast_linear, Level};
use dsv4_bench::weights::{random_linear, stored_bytes, Format};
use dsv4_reference::linear::{Linear, Weight};
use dsv4_reference::ActQuant;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

struct Case {
    name: &'static str,
    fmt: Format,
    out: usize,
    inp: usize,
    /// FP4 only: run the int8 path instead of `fast_linear`.
    int8: bool,
}

/// One kernel call of case `c` on `w`.
fn run(c: &Case, level: Level, w: &Linear, x: &[f32], aq: ActQuant) -> Vec<f32> {
    match &w.weight {
        Weight::Fp4 { w: codes, scale } if c.int8 => fp4_gemv_int8(level, codes, scale, w.out, w.inp, x, 0..w.out),
        _ => fast_linear(level, w, x, 0..w.out, aq),
    }
}

fn build(c: &Case, seed: u64) -> Linear {
    random_linear(c.fmt, c.out, c.inp, seed)
}

fn main() {
    let threads = rayon::current_num_threads();
    let level = Level::detect();
    let sweep_mb: usize = std::env::var("CPU_GEMV_SWEEP_MB").ok().and_then(|s| s.parse().ok()).unwrap_or(512);
    let skip_ref = std::env::var("CPU_GEMV_SKIP_REF").is_ok_and(|v| v == "1");
    // `off` times the GEMV alone (no activation quantisation in front)
    let aq = if std::env::var("CPU_GEMV_AQ").is_ok_and(|v| v == "off") { ActQuant::Off } else { ActQuant::On };

    let bw1;
    let bwn;
    {
        let buf = bandwidth_buffer(1 << 30);
        bw1 = read_bandwidth_over(words(&buf), 1, 9);
        bwn = read_bandwidth_over(words(&buf), threads, 9);
    }
    println!("cpu_gemv: level {level:?} (available {:?}), {threads} pool threads", Level::available());
    println!("read-only sum over 1 GiB: 1 thread {bw1:.1} GB/s, {threads} threads {bwn:.1} GB/s (median of 9)");

    let cases = [
        Case { name: "fp4 expert w1/w3 4096->2048", fmt: Format::Fp4, out: 2048, inp: 4096, int8: false },
        Case { name: "fp4 expert w2 2048->4096", fmt: Format::Fp4, out: 4096, inp: 2048, int8: false },
        Case { name: "fp4 int8 w1/w3 4096->2048", fmt: Format::Fp4, out: 2048, inp: 4096, int8: true },
        Case { name: "fp4 int8 w2 2048->4096", fmt: Format::Fp4, out: 4096, inp: 2048, int8: true },
        Case { name: "fp8 wq_b 1024->32768", fmt: Format::Fp8, out: 32768, inp: 1024, int8: false },
        Case { name: "fp8 shared w1 4096->2048", fmt: Format::Fp8, out: 2048, inp: 4096, int8: false },
        Case { name: "bf16 head slice 4096->8192", fmt: Format::Bf16, out: 8192, inp: 4096, int8: false },
    ];
    let only = std::env::var("CPU_GEMV_ONLY").unwrap_or_default();

    let mut crit = Criterion::default()
        .configure_from_args()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2));

    println!("{:<30} {:>5} {:>9} {:>10} {:>8} {:>10} {:>10} {:>7}", "shape", "batch", "MB", "kernel ms", "GB/s", "% of bw", "ref GB/s", "speedup");
    for (ci, c) in cases.iter().enumerate() {
        if !c.name.contains(only.as_str()) {
            continue;
        }
        let one = build(c, ci as u64 * 1000 + 1);
        let bytes = stored_bytes(&one);
        let copies = (sweep_mb * 1_000_000).div_ceil(bytes).max(2);
        let ws: Vec<Linear> = std::iter::once(one).chain((1..copies).map(|i| build(c, ci as u64 * 1000 + 1 + i as u64))).collect();
        for m in [1usize, 8] {
            let x: Vec<f32> = (0..m * c.inp).map(|i| ((i * 7919 % 1000) as f32 - 500.0) * 0.01).collect();
            // summary: median of 5 sweeps over all copies
            let mut runs = Vec::new();
            for _ in 0..5 {
                let t = Instant::now();
                for w in &ws {
                    black_box(run(c, level, w, black_box(&x), aq));
                }
                runs.push(t.elapsed().as_secs_f64() / ws.len() as f64);
            }
            let t = median(runs);
            let gbs = bytes as f64 / t / 1e9;
            let (rgbs, sp) = if skip_ref {
                (f64::NAN, f64::NAN)
            } else {
                let mut rr = Vec::new();
                for w in ws.iter().take(3) {
                    let t0 = Instant::now();
                    black_box(w.forward(black_box(&x), aq));
                    rr.push(t0.elapsed().as_secs_f64());
                }
                let rt = median(rr);
                (bytes as f64 / rt / 1e9, rt / t)
            };
            println!(
                "{:<30} {:>5} {:>9.2} {:>10.3} {:>8.2} {:>9.0}% {:>10.3} {:>6.0}x",
                c.name, m, bytes as f64 / 1e6, t * 1e3, gbs, 100.0 * gbs / bwn, rgbs, sp
            );

            let mut g = crit.benchmark_group(format!("{} b{m}", c.name));
            g.throughput(Throughput::BytesDecimal(bytes as u64));
            let mut i = 0;
            g.bench_function(format!("{level:?}"), |bch| {
                bch.iter(|| {
                    i = (i + 1) % ws.len();
                    run(c, level, &ws[i], &x, aq)
                })
            });
            if !skip_ref {
                g.sample_size(10).warm_up_time(Duration::from_millis(1)).measurement_time(Duration::from_millis(500));
                let mut i = 0;
                g.bench_function("reference", |bch| {
                    bch.iter(|| {
                        i = (i + 1) % ws.len();
                        ws[i].forward(&x, aq)
                    })
                });
            }
            g.finish();
        }
    }
    crit.final_summary();
}
