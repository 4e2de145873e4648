//! The fast FP8 activation quantisation against the reference's `act_quant_fp8_dequant`: bit
//! equality on random rows of any width and block (values spread over every binade, e4m3
//! subnormals, ties, saturation) and on special values (±0, NaN, ±inf, f32 subnormals).

use dsv4_engine::cpu_kernels::act_quant::act_quant_fp8_dequant_fast;
use dsv4_engine::reference::quant::act_quant_fp8_dequant;
use proptest::prelude::*;

fn assert_bits_eq(x: &[f32], cols: usize, block: usize) {
    let want = act_quant_fp8_dequant(x, cols, block);
    let got = act_quant_fp8_dequant_fast(x, cols, block);
    assert_eq!(want.len(), got.len());
    for (i, (w, g)) in want.iter().zip(&got).enumerate() {
        let same = w.to_bits() == g.to_bits() || (w.is_nan() && g.is_nan());
        assert!(same, "cols {cols} block {block}: element {i} of x = {:e}: reference {w:e} ({:#x}), fast {g:e} ({:#x})", x[i], w.to_bits(), g.to_bits());
    }
}

/// A value with a random sign, mantissa and binade in 2^lo .. 2^hi.
fn spread() -> impl Strategy<Value = f32> {
    (any::<bool>(), 0u32..(1 << 23), -30i32..30).prop_map(|(neg, m, e)| {
        let v = f32::from_bits(((e + 127) as u32) << 23 | m);
        if neg {
            -v
        } else {
            v
        }
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn matches_reference_bit_for_bit(
        rows in 1usize..4,
        cols in 1usize..300,
        block in prop::sample::select(vec![1usize, 7, 32, 64, 128]),
        seed in prop::collection::vec(spread(), 1..1200),
    ) {
        let x: Vec<f32> = (0..rows * cols).map(|i| seed[i % seed.len()] * (1.0 + (i / seed.len()) as f32)).collect();
        assert_bits_eq(&x, cols, block);
    }

    /// Values near each block's e4m3 rounding boundaries: every e4m3 value and its midpoints,
    /// scaled so the block amax lands on 448 (s = 1) and on other scales.
    #[test]
    fn ties_and_subnormals(scale_exp in -20i32..20, extra in 0u8..=255) {
        let s = 2f32.powi(scale_exp);
        let mut x = vec![448.0 * s];
        for code in 0u8..=0x7E {
            let v = dsv4_engine::reference::formats::e4m3_to_f32(code);
            let next = dsv4_engine::reference::formats::e4m3_to_f32(code + 1);
            x.push(v * s);
            x.push(-(v + next) / 2.0 * s); // a tie
            x.push((v + next) / 2.0 * s * (1.0 + f32::EPSILON)); // just above it
        }
        x.push(dsv4_engine::reference::formats::e4m3_to_f32(extra & 0x7E) * s);
        let cols = x.len();
        assert_bits_eq(&x, cols, cols);
        assert_bits_eq(&x, cols, 128);
    }
}

#[test]
fn special_values() {
    let specials = [0.0f32, -0.0, f32::NAN, f32::INFINITY, f32::NEG_INFINITY, f32::MIN_POSITIVE, 1e-40, -1e-45, f32::MAX, -f32::MAX, 1e-4, 448.0, 464.0, -480.0];
    for &a in &specials {
        for &b in &specials {
            let x = [a, b, 1.0, -3.5, b, a, 2e-9, 0.33];
            assert_bits_eq(&x, 8, 8);
            assert_bits_eq(&x, 8, 3);
            assert_bits_eq(&x, 4, 128);
        }
    }
}
