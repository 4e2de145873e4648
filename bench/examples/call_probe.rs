//! Where a batch-1 GEMV's weights live, from DRAM: the bench's matrices (each in its own
//! page-aligned huge-page mapping, `Bytes::anon`) against copies of them in heap `Vec`s (what
//! the weights were before) or, with `FILE=1`, in a safetensors file opened as a checkpoint;
//! each swept one call per matrix, and one call over a single matrix of the same total size.
//! `FMT=fp8` for a dense shape, `OUT=n` rows per FP4 matrix.
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
    let heap: Vec<_> = if std::env::var_os("FILE").is_some() { from_file(&ws) } else { ws.iter().map(on_heap).collect() };
    let big = random_linear(fmt, out * copies, inp, 99);
    let x = activations(1, inp);
    let al = |l: &Linear| match &l.weight { Weight::Fp4 { w, scale } | Weight::Fp8 { w, scale } => (w.as_ptr() as usize % 4096, scale.as_ptr() as usize % 4096), _ => (0, 0) };
    println!("offsets mod 4096 (w, scale): {:?}", heap.iter().take(4).map(al).collect::<Vec<_>>());
    println!("{fmt:?} {out}x{inp}, {copies} copies; GB/s on 2 threads / 1 thread");
    for _ in 0..3 {
        println!(
            "own mappings {:.1} / {:.1}   heap (FILE=1: file) {:.1} / {:.1}   one matrix {:.1} / {:.1}",
            sweep(&ws, &x, false),
            sweep(&ws, &x, true),
            sweep(&heap, &x, false),
            sweep(&heap, &x, true),
            sweep(std::slice::from_ref(&big), &x, false),
            sweep(std::slice::from_ref(&big), &x, true)
        );
    }
}

/// `ws` written to a safetensors file and opened as a checkpoint (page-cache pages of a file
/// map, as a real checkpoint is read): `FILE=1`.
fn from_file(ws: &[Linear]) -> Vec<Linear> {
    use dsv4_reference::checkpoint::{Checkpoint, DType};
    use dsv4_reference::synthetic::{safetensors_bytes, SynthTensor};
    let mut ts = Vec::new();
    for (i, l) in ws.iter().enumerate() {
        if let Weight::Fp4 { w, scale } | Weight::Fp8 { w, scale } = &l.weight {
            ts.push(SynthTensor { name: format!("w{i}"), dtype: DType::U8, shape: vec![w.len()], bytes: w.clone() });
            ts.push(SynthTensor { name: format!("s{i}"), dtype: DType::U8, shape: vec![scale.len()], bytes: scale.clone() });
        }
    }
    let dir = std::env::temp_dir().join("dsv4-call-probe");
    std::fs::create_dir_all(&dir).expect("temp dir");
    std::fs::write(dir.join("model.safetensors"), safetensors_bytes(&ts)).expect("write");
    let ck = Checkpoint::open(&dir).expect("open");
    let _ = std::fs::remove_dir_all(&dir);
    ws.iter()
        .enumerate()
        .map(|(i, l)| {
            let (w, scale) = (ck.tensor(&format!("w{i}")).unwrap().bytes, ck.tensor(&format!("s{i}")).unwrap().bytes);
            let weight = match &l.weight {
                Weight::Fp4 { .. } => Weight::Fp4 { w, scale },
                _ => Weight::Fp8 { w, scale },
            };
            Linear { out: l.out, inp: l.inp, weight }
        })
        .collect()
}
