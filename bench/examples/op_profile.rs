//! Where a decode step's time goes, op by op: the synthetic Flash-geometry model (16
//! experts, layers of the compress ratios in `RATIOS`, default 0,4,128) decoded at `CTX` (4096)
//! (`BATCH` sequences, default 1; or, with `PREFILL=N`, prefilled with N tokens) with every heavy op of the CPU kernels timed by a wrapper, reported per op (weight shape and
//! format) with the GB/s of the weight bytes it streamed.
//! `RATIOS=0,0 cargo run --release -p dsv4-bench --example op_profile`
use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use dsv4_bench::model_bench::{decode, prefill};
use dsv4_bench::weights::stored_bytes;
use dsv4_engine::backend::cpu::{CpuBackend, CpuKernels};
use dsv4_engine::cpu_kernels::{Fp4Math, Kernels, Level};
use dsv4_reference::compute::Compute;
use dsv4_reference::linear::{Linear, Weight};
use dsv4_reference::ops::attention::KvRows;
use dsv4_reference::synthetic::{bench_config_with_ratios, bench_model};
use dsv4_reference::ActQuant;

/// (calls, seconds, weight bytes) per op name.
type Log = Mutex<BTreeMap<String, (usize, f64, usize)>>;

struct Timed {
    k: Kernels,
    log: Log,
}

fn name(l: &Linear) -> String {
    let f = match &l.weight {
        Weight::Fp4 { .. } => "fp4",
        Weight::Fp8 { .. } => "fp8",
        Weight::Bf16(_) => "bf16",
        Weight::F32(_) => "f32",
    };
    format!("{f} {}x{}", l.out, l.inp)
}

/// Stored weight bytes of `rows` of `l` (scales included, pro rata).
fn bytes(l: &Linear, rows: usize) -> usize {
    stored_bytes(l) * rows / l.out.max(1)
}

impl Timed {
    fn note<R>(&self, key: String, b: usize, f: impl FnOnce() -> R) -> R {
        let t = Instant::now();
        let r = f();
        let mut log = self.log.lock().unwrap();
        let e = log.entry(key).or_default();
        *e = (e.0 + 1, e.1 + t.elapsed().as_secs_f64(), e.2 + b);
        r
    }
}

impl Compute for Timed {
    fn forward_rows(&self, lin: &Linear, x: &[f32], rows: Range<usize>, aq: ActQuant) -> Vec<f32> {
        let key = format!("{} {}", name(lin), if aq.is_on() { "aq" } else { "raw" });
        self.note(key, bytes(lin, rows.len()), || self.k.forward_rows(lin, x, rows, aq))
    }
    fn forward_many(&self, jobs: &[(&Linear, &[f32])], aq: ActQuant) -> Vec<Vec<f32>> {
        let key = format!("many {} x {}", jobs.len(), jobs.first().map(|j| name(j.0)).unwrap_or_default());
        self.note(key, jobs.iter().map(|j| bytes(j.0, j.0.out)).sum(), || self.k.forward_many(jobs, aq))
    }
    fn sparse_attn(&self, q: &[f32], kv: &KvRows, idx: &[i32], sink: &[f32], scale: f32, d: usize) -> Vec<f32> {
        self.note(format!("sparse_attn {} rows", idx.len()), 0, || self.k.sparse_attn(q, kv, idx, sink, scale, d))
    }
    fn index_scores(&self, q: &[f32], w: &[f32], keys: &[f32], d: usize) -> Vec<f32> {
        self.note("index_scores".into(), 0, || self.k.index_scores(q, w, keys, d))
    }
    // the mHC mixes' dots: the kernels' own (untimed: 24 short calls per sublayer and token)
    fn dot(&self, a: &[f32], b: &[f32]) -> f32 {
        self.k.dot(a, b)
    }
}

fn main() {
    let env = |k: &str, d: &str| std::env::var(k).unwrap_or(d.into());
    let ratios: Vec<usize> = env("RATIOS", "0,4,128").split(',').map(|s| s.parse().expect("RATIOS: numbers")).collect();
    let ctx: usize = env("CTX", "4096").parse().expect("CTX: a number");
    let runs: usize = env("RUNS", "10").parse().expect("RUNS: a number");
    let batch: usize = env("BATCH", "1").parse().expect("BATCH: a number");
    let bm = bench_model(&bench_config_with_ratios(&ratios, 16), 1).expect("the synthetic model");
    let timed = Arc::new(Timed { k: Kernels { level: Level::detect(), fp4: Fp4Math::Exact }, log: Mutex::new(BTreeMap::new()) });
    let mut b = CpuBackend::with_compute(bm.model, CpuKernels::detect(), timed.clone());
    // `PREFILL=N`: a prefill of N tokens instead of a decode step
    let pre: Option<usize> = std::env::var("PREFILL").ok().map(|v| v.parse().expect("PREFILL: a number"));
    let step = |b: &mut CpuBackend, runs| match pre {
        Some(n) => prefill(b, n, runs, ActQuant::On, false),
        None => decode(b, batch, ctx, runs, ActQuant::On, false),
    };
    step(&mut b, 1); // warm-up
    timed.log.lock().unwrap().clear();
    // each call runs one untimed step, then `runs` timed ones: the log holds runs + 1 steps
    let t = step(&mut b, runs);
    let step = t.embed_s + t.blocks_s.iter().sum::<f64>() + t.head_s;
    let runs = runs + 1;
    let log = timed.log.lock().unwrap();
    let total: f64 = log.values().map(|v| v.1).sum::<f64>() / runs as f64;
    let what = pre.map_or(format!("decode b{batch} @ {ctx}"), |n| format!("prefill {n}"));
    println!("{what}, layers {ratios:?}: {:.2} ms per step (median), timed ops {:.2} ms (mean)", step * 1e3, total * 1e3);
    let mut rows: Vec<_> = log.iter().collect();
    rows.sort_by(|a, b| b.1 .1.total_cmp(&a.1 .1));
    for (k, (calls, s, by)) in rows {
        let ms = s / runs as f64 * 1e3;
        let gbs = if *by > 0 { format!("{:6.1} GB/s", *by as f64 / s / 1e9) } else { String::new() };
        println!("{ms:8.3} ms  {:5} calls/step  {gbs:12} {k}", calls / runs);
    }
}
