//! `ops::quant` (cuda/quant.cu) against `dsv4_reference::quant` on the test device.
//!
//! Tolerance: none. The act-quant simulation is a chain of exactly specified f32 operations
//! (division by a power of two, max, one multiply by f32(1/448) or f32(1/6), round to nearest even
//! onto the e4m3 / e2m1 grid), so codes, scales and q·s must be bit-identical, signs of zeros
//! included.

use dsv4_kernels::ops::quant::{act_quant_fp4_inplace, act_quant_fp8, act_quant_fp8_dequant, act_quant_fp8_inplace};
use dsv4_kernels::Gpu;
use dsv4_reference::formats::{e2m1_to_f32, e4m3_to_f32};
use dsv4_reference::quant;
use proptest::prelude::*;

/// Values that exercise every branch: normals over a wide exponent range, zeros of both signs,
/// tiny values under the scale floor, e4m3 subnormals, exact e4m3 / e2m1 rounding midpoints.
fn value() -> impl Strategy<Value = f32> {
    prop_oneof![
        4 => (-1.0f32..1.0, -20i32..20).prop_map(|(m, e)| m * 2f32.powi(e)),
        1 => Just(0.0f32),
        1 => Just(-0.0f32),
        1 => (-1.0f32..1.0).prop_map(|m| m * 1e-6),
        // e4m3 midpoints between consecutive codes (times a power of two)
        2 => (0u8..0x7e, any::<bool>(), -4i32..4).prop_map(|(c, neg, e)| {
            let v = (e4m3_to_f32(c) + e4m3_to_f32(c + 1)) / 2.0 * 2f32.powi(e);
            if neg { -v } else { v }
        }),
        // e2m1 midpoints
        2 => (0u8..7, any::<bool>(), -4i32..4).prop_map(|(c, neg, e)| {
            let v = (e2m1_to_f32(c) + e2m1_to_f32(c + 1)) / 2.0 * 2f32.powi(e);
            if neg { -v } else { v }
        }),
    ]
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]

    #[test]
    fn fp8_inplace_is_bit_identical(rows in 1usize..5, width in 1usize..200, nf in 0usize..200, block in prop_oneof![Just(64usize), Just(128), Just(32), Just(7)],
                                    seed_vals in prop::collection::vec(value(), 1000)) {
        let gpu = Gpu::for_tests();
        let n_first = nf % (width + 1);
        let x: Vec<f32> = (0..rows * width).map(|i| seed_vals[i % seed_vals.len()]).collect();
        let mut want = x.clone();
        for row in want.chunks_mut(width) {
            quant::act_quant_fp8_inplace(&mut row[..n_first], block);
        }
        let b = gpu.upload_f32(&x).unwrap();
        act_quant_fp8_inplace(&gpu, &b, rows, width, n_first, block).unwrap();
        prop_assert_eq!(bits(&b.download_f32().unwrap()), bits(&want));
    }

    #[test]
    fn fp8_codes_and_dequant_are_bit_identical(rows in 1usize..5, cols in 1usize..300, block in prop_oneof![Just(128usize), Just(64), Just(50)],
                                               vals in prop::collection::vec(value(), 1..1200)) {
        let gpu = Gpu::for_tests();
        let x: Vec<f32> = (0..rows * cols).map(|i| vals[i % vals.len()]).collect();
        let (q, s) = quant::act_quant_fp8(&x, cols, block);
        let b = gpu.upload_f32(&x).unwrap();
        let (qd, sd) = act_quant_fp8(&gpu, &b, rows, cols, block).unwrap();
        let qv: Vec<f32> = qd.download_bytes().unwrap().iter().map(|&c| e4m3_to_f32(c)).collect();
        prop_assert_eq!(bits(&qv), bits(&q));
        prop_assert_eq!(bits(&sd.download_f32().unwrap()), bits(&s));
        let nb = cols.div_ceil(block);
        let want: Vec<f32> = q.iter().enumerate().map(|(i, v)| v * s[(i / cols) * nb + (i % cols) / block]).collect();
        let got = act_quant_fp8_dequant(&gpu, &b, rows, cols, block).unwrap().download_f32().unwrap();
        prop_assert_eq!(bits(&got), bits(&want));
    }

    #[test]
    fn fp4_inplace_is_bit_identical(len in 0usize..300, block in prop_oneof![3 => Just(32usize), 1 => Just(16), 1 => Just(5)],
                                    vals in prop::collection::vec(value(), 1..400)) {
        let gpu = Gpu::for_tests();
        let x: Vec<f32> = (0..len).map(|i| vals[i % vals.len()]).collect();
        let mut want = x.clone();
        quant::act_quant_fp4_inplace(&mut want, block);
        // A tail past `len` must stay untouched.
        let mut padded = x.clone();
        padded.extend([1.2345f32; 7]);
        let b = gpu.upload_f32(&padded).unwrap();
        act_quant_fp4_inplace(&gpu, &b, len, block).unwrap();
        let got = b.download_f32().unwrap();
        prop_assert_eq!(bits(&got[..len]), bits(&want));
        prop_assert!(got[len..].iter().all(|&v| v == 1.2345));
    }
}

#[test]
fn all_zero_blocks_use_the_scale_floor() {
    let gpu = Gpu::for_tests();
    let x = vec![0.0f32; 2 * 200];
    let b = gpu.upload_f32(&x).unwrap();
    let (q, s) = act_quant_fp8(&gpu, &b, 2, 200, 128).unwrap();
    assert!(q.download_bytes().unwrap().iter().all(|&c| c == 0));
    let (_, want) = quant::act_quant_fp8(&x, 200, 128);
    assert_eq!(bits(&s.download_f32().unwrap()), bits(&want));
    assert_eq!(want[0], 2f32.powi(-22)); // ceil_pow2(1e-4 / 448)
    act_quant_fp4_inplace(&gpu, &b, 400, 32).unwrap();
    assert!(b.download_f32().unwrap().iter().all(|&v| v == 0.0));
}

#[test]
fn every_midpoint_rounds_like_the_reference() {
    // One block per tie: the block max pins the scale to 1 (FP8: 448 → s = 1; FP4: 6 → s = 1), the
    // other lane holds the midpoint.
    let gpu = Gpu::for_tests();
    let mut x8 = Vec::new();
    for c in 0u8..0x7e {
        let mid = (e4m3_to_f32(c) + e4m3_to_f32(c + 1)) / 2.0;
        x8.extend([448.0, mid, -mid, 0.0]);
    }
    let mut want = x8.clone();
    quant::act_quant_fp8_inplace(&mut want, 4);
    let b = gpu.upload_f32(&x8).unwrap();
    act_quant_fp8_inplace(&gpu, &b, 1, x8.len(), x8.len(), 4).unwrap();
    assert_eq!(bits(&b.download_f32().unwrap()), bits(&want));

    let mut x4 = Vec::new();
    for c in 0u8..7 {
        let mid = (e2m1_to_f32(c) + e2m1_to_f32(c + 1)) / 2.0;
        x4.extend([6.0, mid, -mid, f32::from_bits(mid.to_bits() + 1), f32::from_bits(mid.to_bits() - 1), -0.0, 0.0, 6.0]);
    }
    let mut want = x4.clone();
    quant::act_quant_fp4_inplace(&mut want, 8);
    let b = gpu.upload_f32(&x4).unwrap();
    act_quant_fp4_inplace(&gpu, &b, x4.len(), 8).unwrap();
    assert_eq!(bits(&b.download_f32().unwrap()), bits(&want));
}

#[test]
fn empty_inputs_launch_nothing() {
    let gpu = Gpu::for_tests();
    let b = gpu.alloc(0).unwrap();
    act_quant_fp8_inplace(&gpu, &b, 0, 64, 64, 64).unwrap();
    act_quant_fp4_inplace(&gpu, &b, 0, 32).unwrap();
    let (q, s) = act_quant_fp8(&gpu, &b, 0, 128, 128).unwrap();
    assert_eq!((q.bytes(), s.bytes()), (0, 0));
}
