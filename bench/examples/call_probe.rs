//! Where a batch-1 GEMV's weights live, from DRAM: the bench's matrices (each in its own
//! page-aligned huge-page mapping, `Bytes::anon`) against copies of them in `Vec`s from the heap
//! (what the weights were before), each swept one call per matrix, and one call over a single
//! matrix of the same total size. `FMT=fp8` for a dense shape, `OUT=n` rows per FP4 matrix.
//! `cargo run --release -p dsv4-bench --example call_probe`
use std::time::Instant;

use dsv4_bench::weights::{activations, random_linear, stored_bytes, Format};
use dsv4_engine::cpu_kernels::{fast_linear, pool, Level};
use dsv4_reference::checkpoint::Bytes;
use dsv4_reference::linear::{Linear, Weight};
use dsv4_reference::ActQuant;

/// Best GB/s of 5 sweeps over `ws`, on the pool or on the calling thread alone.
fn sweep(ws: &[Linear], x: &[f32], serial: bool) -> f64 {
    let bytes: usize = ws.iter().map(stored_bytes).sum();
    let mut best = 0.0f64;
    for _ in 0..5 {
        let t = Instant::now();
        for w in ws {
            let call = || std::hint::black_box(fast_linear(Level::detect(), w, x, 0..w.out, ActQuant::On));
            if serial {
                pool::serial(call);
            } else {
                call();
            }
        }
        best = best.max(bytes as f64 / t.elapsed().as_secs_f64() / 1e9);
    }
    best
}

/// `l` with its bytes copied into heap `Vec`s.
fn on_heap(l: &Linear) -> Linear {
    let v = |b: &Bytes| Bytes::from_vec(b.to_vec());
    let weight = match &l.weight {
        Weight::Fp4 { w, scale } => Weight::Fp4 { w: v(w), scale: v(scale) },
        Weight::Fp8 { w, scale } => Weight::Fp8 { w: v(w), scale: v(scale) },
        Weight::Bf16(w) => Weight::Bf16(v(w)),
        Weight::F32(w) => Weight::F32(w.clone()),
    };
    Linear { out: l.out, inp: l.inp, weight }
}

fn main() {
    let out_env = std::env::var("OUT").ok().and_then(|v| v.parse().ok());
    let (fmt, out, inp) = match std::env::var("FMT").as_deref() {
        Ok("fp8") => (Format::Fp8, 4096, 8192),
        _ => (Format::Fp4, out_env.unwrap_or(2048), 4096),
    };
    let copies = (512usize << 20) / stored_bytes(&random_linear(fmt, out, inp, 1));
    let ws: Vec<_> = (0..copies).map(|i| random_linear(fmt, out, inp, i as u64 + 1)).collect();
    let heap: Vec<_> = ws.iter().map(on_heap).collect();
    let big = random_linear(fmt, out * copies, inp, 99);
    let x = activations(1, inp);
    println!("{fmt:?} {out}x{inp}, {copies} copies; GB/s on 2 threads / 1 thread");
    for _ in 0..3 {
        println!(
            "mapped {:.1} / {:.1}   heap {:.1} / {:.1}   one matrix {:.1} / {:.1}",
            sweep(&ws, &x, false),
            sweep(&ws, &x, true),
            sweep(&heap, &x, false),
            sweep(&heap, &x, true),
            sweep(std::slice::from_ref(&big), &x, false),
            sweep(std::slice::from_ref(&big), &x, true)
        );
    }
}
