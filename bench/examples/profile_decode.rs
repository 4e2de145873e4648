use dsv4_bench::model_bench::{decode, prefill};
use dsv4_engine::backend::cpu::{CpuBackend, CpuKernels};
use dsv4_reference::synthetic::{bench_config_with_ratios, bench_model};
use dsv4_reference::ActQuant;

fn main() {
    let ratios: Vec<usize> = std::env::var("RATIOS").unwrap_or("0,4,128".into()).split(',').map(|s| s.parse().unwrap()).collect();
    let ctx: usize = std::env::var("CTX").ok().and_then(|s| s.parse().ok()).unwrap_or(4096);
    let batch: usize = std::env::var("BATCH").ok().and_then(|s| s.parse().ok()).unwrap_or(1);
    let kern = CpuKernels::parse(&std::env::var("K").unwrap_or("auto".into())).unwrap();
    let cfg = bench_config_with_ratios(&ratios, 16);
    let bm = bench_model(&cfg, 1).unwrap();
    eprintln!("built {:.2} GB in {:.1} s", bm.bytes as f64 / 1e9, bm.seconds);
    let mut b = CpuBackend::with_kernels(bm.model, kern);
    let runs: usize = std::env::var("RUNS").ok().and_then(|s| s.parse().ok()).unwrap_or(3);
    let t = decode(&mut b, batch, ctx, runs, ActQuant::On, false);
    eprintln!("decode b{batch} ctx {ctx}: embed {:.2} ms, blocks {:?} ms, head {:.1} ms", t.embed_s * 1e3, t.blocks_s.iter().map(|s| (s * 1e4).round() / 10.0).collect::<Vec<_>>(), t.head_s * 1e3);
    if let Ok(p) = std::env::var("PREFILL") {
        let t = prefill(&mut b, p.parse().unwrap(), 1, ActQuant::On, false);
        eprintln!("prefill {p}: blocks {:?} ms, head {:.1} ms", t.blocks_s.iter().map(|s| (s * 1e4).round() / 10.0).collect::<Vec<_>>(), t.head_s * 1e3);
    }
}
