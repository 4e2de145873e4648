//! The strided copy against plain indexing, on random shapes, offsets and strides.
use dsv4_kernels::ops::copy::{copy_strided, Block2d};
use dsv4_kernels::Gpu;
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]
    #[test]
    fn copy_strided_matches_indexing(rows in 1usize..9, cols in 1usize..300, pad_s in 0usize..5, pad_d in 0usize..5, off_s in 0usize..7, off_d in 0usize..7, seed in any::<u64>()) {
        let gpu = Gpu::for_tests();
        let (ss, ds) = (cols + pad_s, cols + pad_d);
        let src: Vec<f32> = (0..off_s + rows * ss).map(|i| ((i as u64).wrapping_mul(seed | 1) % 1000) as f32 - 500.0).collect();
        let src_b = gpu.upload_f32(&src).unwrap();
        let dst_b = gpu.alloc_poisoned((off_d + rows * ds) * 4).unwrap();
        copy_strided(&gpu, Block2d { buf: &dst_b, off: off_d, stride: ds }, Block2d { buf: &src_b, off: off_s, stride: ss }, rows, cols).unwrap();
        let got = dst_b.download_f32().unwrap();
        for r in 0..rows {
            for c in 0..ds {
                let g = got[off_d + r * ds + c];
                if c < cols {
                    prop_assert_eq!(g.to_bits(), src[off_s + r * ss + c].to_bits());
                } else {
                    prop_assert!(g.is_nan(), "padding at ({}, {}) was written", r, c);
                }
            }
        }
        prop_assert!(got[..off_d].iter().all(|v| v.is_nan()), "bytes before the block were written");
    }
}

#[test]
fn copy_strided_rejects_out_of_range_blocks() {
    let gpu = Gpu::for_tests();
    let a = gpu.alloc(64).unwrap();
    let b = gpu.alloc(64).unwrap();
    let e = copy_strided(&gpu, Block2d { buf: &a, off: 0, stride: 4 }, Block2d { buf: &b, off: 0, stride: 4 }, 5, 4).unwrap_err();
    assert!(e.0.contains("needs 20 f32 elements"), "{e}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]
    #[test]
    fn add_rows_broadcast_matches_indexing(rows in 1usize..6, nc in 1usize..5, d in 1usize..300, seed in any::<u64>()) {
        use dsv4_kernels::ops::copy::add_rows_broadcast;
        let gpu = Gpu::for_tests();
        let val = |i: usize, s: u64| ((i as u64).wrapping_mul(s | 1) % 997) as f32 / 7.0 - 60.0;
        let x: Vec<f32> = (0..rows * nc * d).map(|i| val(i, seed)).collect();
        let e: Vec<f32> = (0..rows * d).map(|i| val(i, seed >> 7)).collect();
        let xb = gpu.upload_f32(&x).unwrap();
        let eb = gpu.upload_f32(&e).unwrap();
        add_rows_broadcast(&gpu, &xb, &eb, rows, nc, d).unwrap();
        let got = xb.download_f32().unwrap();
        for (i, g) in got.iter().enumerate() {
            let (r, c) = (i / d, i % d);
            prop_assert_eq!(g.to_bits(), (x[i] + e[(r / nc) * d + c]).to_bits(), "element {}", i);
        }
    }
}
