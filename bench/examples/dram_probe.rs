//! Where a batch-1 GEMV's time goes from DRAM: a sweep over many matrices (one call each, as
//! `dsv4 bench cpu` times them) against one call over the same bytes (no per-call cost), on 2
//! threads and on one, and the cost of an empty fork/join of the kernels' pool. `TASKS=1`: each
//! thread's time for half of a cache-resident FP4 GEMV, alone and with the other thread busy.
//! `cargo run --release -p dsv4-bench --example dram_probe`
use std::time::Instant;

use dsv4_bench::bandwidth::{median, read_bandwidth_sized};
use dsv4_bench::weights::{activations, random_linear, stored_bytes, Format};
use dsv4_engine::cpu_kernels::{fast_linear, pool, Level};
use dsv4_reference::ActQuant;

fn sweep(ws: &[dsv4_reference::linear::Linear], x: &[f32], serial: bool) -> f64 {
    let bytes: usize = ws.iter().map(stored_bytes).sum();
    let mut v = Vec::new();
    for it in 0..6 {
        let t = Instant::now();
        for w in ws {
            if serial {
                pool::serial(|| std::hint::black_box(fast_linear(Level::detect(), w, x, 0..w.out, ActQuant::On)));
            } else {
                std::hint::black_box(fast_linear(Level::detect(), w, x, 0..w.out, ActQuant::On));
            }
        }
        if it > 0 {
            v.push(bytes as f64 / t.elapsed().as_secs_f64() / 1e9);
        }
    }
    median(v)
}

fn main() {
    if std::env::var("TASKS").is_ok() {
        return per_task();
    }
    let bw2 = read_bandwidth_sized(2, 512 << 20, 5);
    let bw1 = read_bandwidth_sized(1, 512 << 20, 5);
    println!("read bw: 1 thread {bw1:.1} GB/s, 2 threads {bw2:.1}");
    for (name, fmt, out, inp) in [("w1", Format::Fp4, 2048, 4096), ("wo_b", Format::Fp8, 4096, 8192), ("head", Format::Bf16, 16384, 4096)] {
        let one = stored_bytes(&random_linear(fmt, out, inp, 1));
        let copies = (512usize << 20) / one;
        let ws: Vec<_> = (0..copies).map(|i| random_linear(fmt, out, inp, i as u64 + 1)).collect();
        let big = random_linear(fmt, out * copies, inp, 99);
        let x = activations(1, inp);
        println!(
            "{name}: copies {copies}: 2 threads {:.1} GB/s, 1 thread {:.1}, one big call {:.1}",
            sweep(&ws, &x, false),
            sweep(&ws, &x, true),
            sweep(std::slice::from_ref(&big), &x, false)
        );
        // overhead of a call on cached weights
        let small = &ws[0];
        let mut t1 = Vec::new();
        for _ in 0..200 {
            let t = Instant::now();
            std::hint::black_box(fast_linear(Level::detect(), small, &x, 0..small.out, ActQuant::On));
            t1.push(t.elapsed().as_secs_f64() * 1e6);
        }
        println!("  repeated call (cache-warm-ish): median {:.1} us", median(t1));
    }
    // empty fork/join
    let mut t1 = Vec::new();
    for _ in 0..1000 {
        let t = Instant::now();
        pool::split_rows(0..1024, 1, 1 << 20, |r| {
            std::hint::black_box(r);
        });
        t1.push(t.elapsed().as_secs_f64() * 1e6);
    }
    println!("empty split_rows: median {:.2} us", median(t1));
}

/// Each thread's time for its half of a cache-resident FP4 GEMV, run alone and together: on a
/// VM whose vCPUs share a physical core the halves slow each other down.
fn per_task() {
    use dsv4_engine::cpu_kernels::quantize_activations;
    use std::sync::Mutex;
    let w = random_linear(Format::Fp4, 2048, 4096, 1);
    let xq = quantize_activations(&activations(1, 4096), 4096);
    let log = Mutex::new(Vec::new());
    for _ in 0..200 {
        let t0 = Instant::now();
        pool::tasks(2, |i| {
            let ts = t0.elapsed().as_secs_f64() * 1e6;
            pool::serial(|| std::hint::black_box(fast_linear(Level::detect(), &w, &xq, i * 1024..(i + 1) * 1024, ActQuant::Off)));
            let te = t0.elapsed().as_secs_f64() * 1e6;
            log.lock().unwrap().push((i, std::thread::current().name().unwrap_or("main").to_string(), ts, te));
        });
    }
    let alone: Vec<f64> = (0..200)
        .map(|_| {
            let t = Instant::now();
            pool::serial(|| std::hint::black_box(fast_linear(Level::detect(), &w, &xq, 0..1024, ActQuant::Off)));
            t.elapsed().as_secs_f64() * 1e6
        })
        .collect();
    let l = log.lock().unwrap();
    let of = |i: usize| median(l.iter().filter(|e| e.0 == i).map(|e| e.3 - e.2).collect());
    println!("half of the rows, one thread alone: {:.1} us; both halves at once: caller {:.1} us, worker {:.1} us", median(alone), of(0), of(1));
}
