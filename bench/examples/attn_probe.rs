//! Sparse attention at the Flash decode shape (64 heads x 512, 128 window + 512 selected rows)
//! per level, and the indexer's scores over 1024 keys (4K context, ratio 4).
//! `cargo run --release -p dsv4-bench --example attn_probe`
use std::time::Instant;

use dsv4_bench::bandwidth::median;
use dsv4_engine::cpu_kernels::attention::{index_scores, sparse_attn};
use dsv4_engine::cpu_kernels::Level;
use dsv4_reference::ops::attention::KvRows;

fn main() {
    let (h, d, n) = (64, 512, 640);
    let v = |n: usize, s: u32| (0..n).map(|i| ((i as u32).wrapping_mul(2654435761).wrapping_add(s) >> 8) as f32 / (1 << 24) as f32 - 0.5).collect::<Vec<f32>>();
    let (q, kv, sink) = (v(h * d, 1), v(n * d, 2), v(h, 3));
    let idx: Vec<i32> = (0..n as i32).collect();
    let (iq, iw, keys) = (v(64 * 128, 4), v(64, 5), v(1024 * 128, 6));
    for l in Level::available() {
        let t = |f: &dyn Fn()| median((0..30).map(|_| { let t = Instant::now(); f(); t.elapsed().as_secs_f64() * 1e3 }).collect());
        let a = t(&|| { std::hint::black_box(sparse_attn(l, &q, &KvRows::one(&kv, d), &idx, &sink, 0.04, d)); });
        let i = t(&|| { std::hint::black_box(index_scores(l, &iq, &iw, &keys, 128)); });
        println!("{l:?}: sparse_attn {a:.3} ms ({:.1} GFLOP/s), index_scores {i:.3} ms", 4.0 * (h * n * d) as f64 / a / 1e6);
    }
}
