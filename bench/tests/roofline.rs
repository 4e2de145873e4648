//! The bytes-per-token arithmetic against the CPU anchors' section 2 table (figures worked out
//! by hand from the spec's shapes, not golden outputs of this code).

use dsv4_bench::roofline::*;
use dsv4_reference::Config;

fn gb(x: f64) -> f64 {
    (x / 1e9 * 1000.0).round() / 1000.0
}

#[test]
fn flash_batch_1_matches_the_anchor_table() {
    let cfg = Config::flash();
    let w = bytes_per_step(&cfg, 1, None);
    assert_eq!(gb(w.routed), 3.449);
    assert_eq!(gb(w.attention), 4.599);
    assert_eq!(gb(w.shared), 1.082);
    assert_eq!(gb(w.head), 1.059);
    assert_eq!(gb(w.compressors), 0.520);
    assert_eq!(gb(w.indexer), 0.275);
    assert_eq!(gb(w.mhc), 0.135);
    assert_eq!(gb(w.gate), 0.090);
    assert_eq!((w.total() / 1e7).round() / 100.0, 11.21);
    assert_eq!(w.categories().iter().map(|c| c.1).sum::<f64>(), w.total());
}

#[test]
fn batches_share_dense_bytes_and_grow_routed_ones() {
    let cfg = Config::flash();
    // the anchors' uniform-routing row: distinct experts and GB per step
    for (b, experts, step_gb) in [(2, 11.9, 14.6), (4, 23.2, 21.1), (8, 44.2, 33.2), (16, 80.8, 54.2), (32, 136.0, 86.0)] {
        let d = distinct_experts(256, 6, b);
        assert!((d - experts).abs() < 0.5, "batch {b}: {d} distinct experts");
        let s = bytes_per_step(&cfg, b, None).total() / 1e9;
        assert!((s - step_gb).abs() < 0.15, "batch {b}: {s} GB per step");
        assert!((bytes_per_token(&cfg, b, None) - s * 1e9 / b as f64).abs() < 1.0);
    }
    let one = bytes_per_step(&cfg, 1, None);
    let many = bytes_per_step(&cfg, 32, None);
    assert_eq!(one.attention, many.attention);
    assert_eq!(one.head, many.head);
    assert!(many.routed > 20.0 * one.routed);
    // fewer experts per token: fewer routed bytes
    assert!(bytes_per_step(&cfg, 1, Some(4)).routed < one.routed);
    assert_eq!(distinct_experts(256, 6, 1), 6.0);
}

#[test]
fn flops_and_bounds() {
    let cfg = Config::flash();
    let p = active_params(&cfg, None);
    // ~13B active parameters with the head (the release says 13B activated)
    assert!(p > 12e9 && p < 15e9, "{p}");
    let short = flops_per_token(&cfg, 4096, None);
    let long = flops_per_token(&cfg, 1 << 20, None);
    assert!((short - 2.0 * p - attention_flops(&cfg, 4096)).abs() < 1.0);
    assert!(long > short);
    assert_eq!(attention_flops(&cfg, 0), 0.0);
    // at 1 token of context only the window's one key per layer counts
    assert_eq!(attention_flops(&cfg, 1), 43.0 * 4.0 * 64.0 * 512.0);
    assert!((bound_tokens_per_s(21.3, 11.21e9) - 1.9).abs() < 0.01);
    assert_eq!(compute_bound_tokens_per_s(100.0, 1e9), 100.0);
    assert_eq!(roofline_tokens_per_s(21.3, 11.21e9, 1e6, 1.0), bound_tokens_per_s(21.3, 11.21e9));
    assert!(bound_tokens_per_s(10.0, 0.0).is_infinite());
}
