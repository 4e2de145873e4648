//! The CPU backend's sparse attention and indexer scores against the reference ops
//! (`ops::attention::{sparse_attn, index_scores}`): every level this CPU has, random shapes
//! (heads, head dim incl. non-multiples of 32, unused `-1` slots, repeated entries, the KV table
//! split in pieces), NaN
//! propagation. The kernels differ from the reference only in each dot's f32 summation order.

use dsv4_engine::cpu_kernels::attention::{dot, index_scores, sparse_attn};
use dsv4_engine::cpu_kernels::Level;
use dsv4_engine::reference::linear::dot as ref_dot;
use dsv4_engine::reference::ops::attention as reference;
use dsv4_engine::reference::ops::attention::KvRows;
use proptest::prelude::*;

fn vals(seed: u64, n: usize) -> Vec<f32> {
    let mut s = seed | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn dot_matches_at_every_level(n in 0usize..300, seed in any::<u64>()) {
        let (a, b) = (vals(seed, n), vals(seed ^ 77, n));
        let want = ref_dot(&a, &b);
        let mag: f32 = a.iter().zip(&b).map(|(x, y)| (x * y).abs()).sum();
        for l in Level::available() {
            let got = dot(l, &a, &b);
            prop_assert!((got - want).abs() <= 1e-6 * mag + 1e-30, "{l:?}: {got} vs {want}");
        }
    }

    #[test]
    fn sparse_attn_matches_the_reference(s in 1usize..4, h in 1usize..10, d in prop_oneof![1usize..80, (1usize..9).prop_map(|c| 16 * c), (1usize..9).prop_map(|c| 8 * c)], n in 1usize..40, k in prop_oneof![1usize..24, 60usize..150], seed in any::<u64>()) {
        let q = vals(seed, s * h * d);
        let kv = vals(seed ^ 1, n * d);
        let sink = vals(seed ^ 2, h);
        let mut r = vals(seed ^ 3, s * k).into_iter();
        // entries of kv or -1 (unused), repeats allowed
        let idx: Vec<i32> = (0..s * k).map(|_| { let v = r.next().unwrap(); if v < -0.7 { -1 } else { ((v + 1.0) * 0.5 * n as f32) as i32 % n as i32 } }).collect();
        let scale = 1.0 / (d as f32).sqrt();
        let cut = seed as usize % (n + 1); // the kv table in two pieces
        let want = reference::sparse_attn(&q, &kv, &idx, &sink, scale, d);
        for l in Level::available() {
            let got = sparse_attn(l, &q, &KvRows::new([&kv[..cut * d], &[], &kv[cut * d..]], d), &idx, &sink, scale, d);
            prop_assert_eq!(got.len(), want.len());
            for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                prop_assert!(g.is_finite(), "{:?}: output {} is {}", l, i, g);
                // outputs are convex combinations of kv rows (|kv| <= 1) times <= 1
                prop_assert!((g - w).abs() <= 2e-5, "{:?}: output {}: {} vs {}", l, i, g, w);
            }
        }
    }

    #[test]
    fn index_scores_match_the_reference(h in 1usize..9, d in 1usize..140, n in 0usize..200, seed in any::<u64>()) {
        let q = vals(seed, h * d);
        let w = vals(seed ^ 5, h);
        let keys = vals(seed ^ 6, n * d);
        let want = reference::index_scores(&q, &w, &keys, d);
        for l in Level::available() {
            let got = index_scores(l, &q, &w, &keys, d);
            prop_assert_eq!(got.len(), n);
            for (j, (g, wv)) in got.iter().zip(&want).enumerate() {
                // each dot's error <= 1e-6 · d (|q|,|k| <= 1), times Σ|w| <= h
                prop_assert!((g - wv).abs() <= 1e-6 * (d * h) as f32, "{:?}: key {}: {} vs {}", l, j, g, wv);
            }
        }
    }
}

#[test]
fn nan_inputs_propagate() {
    let d = 40;
    let mut q = vals(1, 2 * d);
    let kv = vals(2, 3 * d);
    q[d + 3] = f32::NAN; // head 1 of the only query
    let idx = [0, 2, -1];
    for l in Level::available() {
        let o = sparse_attn(l, &q, &KvRows::one(&kv, d), &idx, &[0.0, 0.0], 0.1, d);
        assert!(o[..d].iter().all(|v| v.is_finite()), "{l:?}: head 0 is clean");
        assert!(o[d..].iter().all(|v| v.is_nan()), "{l:?}: head 1 reads a NaN query");
        let mut keys = vals(3, 4 * d);
        keys[2 * d + 1] = f32::NAN;
        // the reference's relu is `max(0)`, which maps a NaN dot to 0: the same here
        let s = index_scores(l, &q[..d], &[1.0], &keys, d);
        let want = reference::index_scores(&q[..d], &[1.0], &keys, d);
        assert_eq!(s[2].to_bits(), want[2].to_bits(), "{l:?}: {s:?} vs {want:?}");
    }
}

#[test]
fn sparse_attn_at_the_real_shape_with_nans() {
    // 64 heads of 512 over 128 window + 512 selected rows (the Flash decode step; the AVX-512
    // tiles: 4-head groups, row pairs, 64-wide strips), an odd count of selected rows, a NaN in a
    // row one head group reads through all of its heads, and 6 heads (a short last group)
    for (h, n, nan) in [(64usize, 641usize, false), (6, 77, true)] {
        let d = 512;
        let q = vals(21, h * d);
        let mut kv = vals(22, (n + 3) * d);
        let idx: Vec<i32> = (0..n as i32).map(|j| if j % 97 == 5 { -1 } else { j }).collect();
        if nan {
            kv[40 * d + 7] = f32::NAN;
        }
        let sink = vals(23, h);
        let want = reference::sparse_attn(&q, &kv, &idx, &sink, 1.0 / (d as f32).sqrt(), d);
        for l in Level::available() {
            let cut = n / 3 * d; // the table in two pieces (window, compressed)
            let got = sparse_attn(l, &q, &KvRows::new([&kv[..cut], &kv[cut..], &[]], d), &idx, &sink, 1.0 / (d as f32).sqrt(), d);
            assert_eq!(got.len(), want.len());
            for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                if nan {
                    assert!(g.is_nan() && w.is_nan(), "{l:?}: output {i}: {g} vs {w} (every head reads the NaN row)");
                } else {
                    assert!((g - w).abs() <= 2e-5, "{l:?}: output {i}: {g} vs {w}");
                }
            }
        }
    }
}

#[test]
fn index_scores_at_the_real_shape() {
    // 64 heads of 128 (the Flash indexer), keys not a multiple of the 8-key groups or the task size
    let (h, d, n) = (64, 128, 203);
    let (q, w) = (vals(9, h * d), vals(10, h));
    let mut keys = vals(11, n * d);
    keys[17 * d + 5] = f32::NAN; // inside an 8-key group
    let want = reference::index_scores(&q, &w, &keys, d);
    for l in Level::available() {
        let got = index_scores(l, &q, &w, &keys, d);
        for (j, (g, wv)) in got.iter().zip(&want).enumerate() {
            assert!((g - wv).abs() <= 1e-6 * (d * h) as f32 || (g.is_nan() && wv.is_nan()), "{l:?}: key {j}: {g} vs {wv}");
        }
    }
}
