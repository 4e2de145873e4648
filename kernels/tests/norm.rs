//! The RMSNorm kernel against `dsv4_reference::ops::norm::{rms_norm, rms_norm_unweighted_inplace}`
//! on random rows (odd widths, several rows, weighted/unweighted, in place/out of place, strided).
//!
//! Tolerance: |gpu − ref| ≤ 4e-6·|ref| + 1e-30: the sum of squares is reduced in a tree (the
//! reference sums sequentially), a few f32 ulps on r; the products are rounded as in the
//! reference.

use dsv4_kernels::ops::norm::{rms_norm_inplace, rms_norm_into, rms_norm_strided, rms_norm_unweighted_inplace, DevNorm};
use dsv4_kernels::Gpu;
use dsv4_reference::ops::norm::{rms_norm, rms_norm_unweighted_inplace as ref_unweighted};
use proptest::prelude::*;

mod common;
use common::Rng;

fn assert_close(got: &[f32], want: &[f32], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(!g.is_nan(), "{what}[{i}] is NaN (want {w})");
        assert!((g - w).abs() <= 4e-6 * w.abs() + 1e-30, "{what}[{i}]: gpu {g} ref {w}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]

    #[test]
    fn weighted_matches_reference(rows in 1usize..5, n in 1usize..90, scale in prop::sample::select(vec![1e-3f32, 1.0, 30.0]), eps in prop::sample::select(vec![1e-6f32, 1e-5]), seed in 1u64..u64::MAX) {
        let gpu = Gpu::for_tests();
        let mut rng = Rng(seed);
        let x = rng.vec(rows * n, -scale, scale);
        let w = rng.vec(n, -2.0, 2.0);
        let want = rms_norm(&x, &w, eps);
        let dw = DevNorm::upload(&gpu, &w).unwrap();
        let dx = gpu.upload_f32(&x).unwrap();
        let dy = gpu.alloc_poisoned(rows * n * 4).unwrap();
        rms_norm_into(&gpu, &dx, &dw, &dy, rows, eps).unwrap();
        assert_close(&dy.download_f32().unwrap(), &want, "out of place");
        prop_assert_eq!(dx.download_f32().unwrap(), x.clone(), "input untouched");
        rms_norm_inplace(&gpu, &dx, &dw, rows, eps).unwrap();
        assert_close(&dx.download_f32().unwrap(), &want, "in place");
    }

    #[test]
    fn unweighted_per_head_matches_reference(t in 1usize..4, heads in 1usize..4, hd in 1usize..70, seed in 1u64..u64::MAX) {
        let gpu = Gpu::for_tests();
        let mut rng = Rng(seed);
        let x = rng.vec(t * heads * hd, -3.0, 3.0);
        let mut want = x.clone();
        ref_unweighted(&mut want, hd, 1e-6);
        let dx = gpu.upload_f32(&x).unwrap();
        rms_norm_unweighted_inplace(&gpu, &dx, t * heads, hd, 1e-6).unwrap();
        assert_close(&dx.download_f32().unwrap(), &want, "unweighted");
    }

    #[test]
    fn strided_rows_leave_the_rest_alone(rows in 1usize..4, n in 1usize..40, pad in 1usize..9, seed in 1u64..u64::MAX) {
        let gpu = Gpu::for_tests();
        let mut rng = Rng(seed);
        let stride = n + pad;
        let x = rng.vec(rows * stride, -2.0, 2.0);
        let w = rng.vec(n, 0.5, 1.5);
        let dw = DevNorm::upload(&gpu, &w).unwrap();
        let dx = gpu.upload_f32(&x).unwrap();
        let dy = gpu.alloc_poisoned(rows * n * 4).unwrap();
        rms_norm_strided(&gpu, &dx, stride, Some(&dw), &dy, n, rows, n, 1e-6).unwrap();
        let dense: Vec<f32> = x.chunks(stride).flat_map(|r| r[..n].to_vec()).collect();
        assert_close(&dy.download_f32().unwrap(), &rms_norm(&dense, &w, 1e-6), "strided");
        // In place on the strided buffer: the padding stays as it was.
        rms_norm_strided(&gpu, &dx, stride, Some(&dw), &dx, stride, rows, n, 1e-6).unwrap();
        let got = dx.download_f32().unwrap();
        for r in 0..rows {
            prop_assert_eq!(&got[r * stride + n..(r + 1) * stride], &x[r * stride + n..(r + 1) * stride]);
        }
    }
}

/// Rows wider than the CTA (several values per thread), the model's widths included.
#[test]
fn wide_rows_match_reference() {
    let gpu = Gpu::for_tests();
    let mut rng = Rng(31);
    for (rows, n) in [(2usize, 4096usize), (3, 1024), (2, 1537), (5, 512)] {
        let x = rng.vec(rows * n, -4.0, 4.0);
        let w = rng.vec(n, -2.0, 2.0);
        let dw = DevNorm::upload(&gpu, &w).unwrap();
        let dx = gpu.upload_f32(&x).unwrap();
        let dy = gpu.alloc_poisoned(rows * n * 4).unwrap();
        rms_norm_into(&gpu, &dx, &dw, &dy, rows, 1e-6).unwrap();
        assert_close(&dy.download_f32().unwrap(), &rms_norm(&x, &w, 1e-6), "wide weighted");
        let mut want = x.clone();
        ref_unweighted(&mut want, n, 1e-6);
        rms_norm_unweighted_inplace(&gpu, &dx, rows, n, 1e-6).unwrap();
        assert_close(&dx.download_f32().unwrap(), &want, "wide unweighted");
    }
}

#[test]
fn zeros_give_zeros() {
    let gpu = Gpu::for_tests();
    let w = vec![1.5f32; 33];
    let dw = DevNorm::upload(&gpu, &w).unwrap();
    let dx = gpu.zeros(2 * 33 * 4).unwrap();
    let dy = gpu.alloc_poisoned(2 * 33 * 4).unwrap();
    rms_norm_into(&gpu, &dx, &dw, &dy, 2, 1e-6).unwrap();
    assert!(dy.download_f32().unwrap().iter().all(|&v| v == 0.0));
}
