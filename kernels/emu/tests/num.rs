//! `dsv4_emu::num` against independent references: rustc_apfloat (LLVM's APFloat, an IEEE
//! soft-float with every rounding mode), the `half` crate, the `float8` crate, the project's
//! reference formats, and exact-arithmetic bracket checks.

use dsv4_emu::num::*;
use rustc_apfloat::ieee::{BFloat, Double, Float8E4M3FN, Float8E5M2, Half, Single};
use rustc_apfloat::{Float, FloatConvert, Round};

// ---------------------------------------------------------------- helpers

/// splitmix64: deterministic, dependency-free.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn round_of(r: Rnd) -> Round {
    match r {
        Rnd::Rn => Round::NearestTiesToEven,
        Rnd::Rz => Round::TowardZero,
        Rnd::Rm => Round::TowardNegative,
        Rnd::Rp => Round::TowardPositive,
    }
}

const F32_EDGES: &[u32] = &[
    0x0000_0000,
    0x8000_0000,
    0x0000_0001,
    0x8000_0001,
    0x007F_FFFF,
    0x807F_FFFF,
    0x0080_0000,
    0x8080_0000,
    0x0080_0001,
    0x7F7F_FFFF,
    0xFF7F_FFFF,
    0x7F7F_FFFE,
    0x7F80_0000,
    0xFF80_0000,
    0x7FC0_0000,
    0xFFC0_0001,
    0x7F80_0001,
    0x3F80_0000,
    0xBF80_0000,
    0x3F80_0001,
    0x3F7F_FFFF,
    0x4000_0000,
    0x3F00_0000,
    0x3380_0000,
    0x3400_0000,
    0x0040_0000,
    0x0000_0002,
    0x0000_0003,
    0x7F00_0000,
    0x0100_0000,
    0x4B80_0000,
    0x4B00_0001,
];

/// A random f32 bit pattern drawn to hit edge cases often: raw bits, edges, small integers,
/// subnormals, values near 1, and near-overflow.
fn rand_f32(rng: &mut Rng) -> u32 {
    let s = (rng.next() as u32) & 0x8000_0000;
    match rng.below(10) {
        0 => F32_EDGES[rng.below(F32_EDGES.len() as u64) as usize],
        1 => s | (rng.next() as u32 & 0x007F_FFFF), // subnormal
        2 => s | (0x3F00_0000 + (rng.next() as u32 & 0x00FF_FFFF)), // [0.5, 2)
        3 => s | (0x7F00_0000 + (rng.next() as u32 & 0x007F_FFFF)), // near max
        4 => {
            let v = (rng.below(2000) as i32 - 1000) as f32;
            v.to_bits()
        }
        5 => s | ((rng.below(40) as u32 + 0x30) << 23) | (rng.next() as u32 & 0x7F_FFFF & !((1 << rng.below(23)) - 1)),
        6 => s | ((1 + rng.below(253) as u32) << 23) | (rng.next() as u32 & 0x7F_FFFF & 0x7F_0000), // short mantissa
        _ => rng.next() as u32,
    }
}

fn rand_f64(rng: &mut Rng) -> u64 {
    let s = rng.next() & 0x8000_0000_0000_0000;
    match rng.below(9) {
        0 => (f32::from_bits(F32_EDGES[rng.below(F32_EDGES.len() as u64) as usize]) as f64).to_bits(),
        1 => s | (rng.next() & 0x000F_FFFF_FFFF_FFFF),
        2 => s | (0x3FE0_0000_0000_0000 + (rng.next() & 0x001F_FFFF_FFFF_FFFF)),
        3 => s | (0x7FE0_0000_0000_0000 + (rng.next() & 0x000F_FFFF_FFFF_FFFF)),
        4 => {
            [
                0u64,
                1,
                0x7FF0_0000_0000_0000,
                0x7FEF_FFFF_FFFF_FFFF,
                0x0010_0000_0000_0000,
                0x7FF8_0000_0000_0000,
                0x3FF0_0000_0000_0000,
            ][rng.below(7) as usize]
                | s
        }
        5 => s | ((rng.below(60) + 0x3E0) << 52) | (rng.next() & 0xF_FFFF_FFFF_FFFF & !((1 << rng.below(52)) - 1)),
        _ => rng.next(),
    }
}

/// Second/third operands related to the first, so sums cancel, tie, or straddle exponents.
fn related_f32(rng: &mut Rng, a: u32) -> u32 {
    match rng.below(6) {
        0 => a ^ 0x8000_0000,                                     // exact cancellation
        1 => (a ^ 0x8000_0000).wrapping_add(rng.below(4) as u32), // near cancellation
        2 => a.wrapping_add((rng.below(64) as u32) << 23),        // shifted exponent
        3 => a.wrapping_sub((rng.below(30) as u32) << 23),
        _ => rand_f32(rng),
    }
}

fn same32(ours: f32, want: u32, what: impl Fn() -> String) {
    let w = f32::from_bits(want);
    if w.is_nan() {
        assert_eq!(ours.to_bits(), 0x7FFF_FFFF, "{}: want canonical NaN, got {:#010x}", what(), ours.to_bits());
    } else {
        assert_eq!(
            ours.to_bits(),
            want,
            "{}: got {:e} ({:#010x}) want {:e} ({:#010x})",
            what(),
            ours,
            ours.to_bits(),
            w,
            want
        );
    }
}

fn same64(ours: f64, want: u64, what: impl Fn() -> String) {
    let w = f64::from_bits(want);
    if w.is_nan() {
        assert_eq!(ours.to_bits(), 0x7FFF_FFFF_FFFF_FFFF, "{}: want canonical NaN", what());
    } else {
        assert_eq!(
            ours.to_bits(),
            want,
            "{}: got {:e} ({:#018x}) want {:e} ({:#018x})",
            what(),
            ours,
            ours.to_bits(),
            w,
            want
        );
    }
}

fn same16(ours: u16, want: u16, nan: bool, what: impl Fn() -> String) {
    if nan {
        assert_eq!(ours, 0x7FFF, "{}: want canonical NaN, got {ours:#06x}", what());
    } else {
        assert_eq!(ours, want, "{}: got {ours:#06x} want {want:#06x}", what());
    }
}

// ---------------------------------------------------------------- f32 / f64 arithmetic

#[test]
fn f32_arith_all_modes_vs_apfloat() {
    let mut rng = Rng(1);
    for iter in 0..40_000 {
        let a = rand_f32(&mut rng);
        let b = related_f32(&mut rng, a);
        let c = if iter % 3 == 0 {
            // c cancels the product: -(a*b rounded), perturbed.
            let p = (f32::from_bits(a) * f32::from_bits(b)).to_bits() ^ 0x8000_0000;
            p.wrapping_add(rng.below(5) as u32).wrapping_sub(2)
        } else {
            related_f32(&mut rng, a)
        };
        let (fa, fb, fc) = (f32::from_bits(a), f32::from_bits(b), f32::from_bits(c));
        let (xa, xb, xc) = (Single::from_bits(a as u128), Single::from_bits(b as u128), Single::from_bits(c as u128));
        for r in Rnd::ALL {
            let m = round_of(r);
            let ctx = |op: &str| format!("{op}_f32({fa:e}, {fb:e}, {fc:e}, {r:?}) [{a:#x} {b:#x} {c:#x}]");
            same32(add_f32(fa, fb, r), xa.add_r(xb, m).value.to_bits() as u32, || ctx("add"));
            same32(sub_f32(fa, fb, r), xa.sub_r(xb, m).value.to_bits() as u32, || ctx("sub"));
            same32(mul_f32(fa, fb, r), xa.mul_r(xb, m).value.to_bits() as u32, || ctx("mul"));
            same32(fma_f32(fa, fb, fc, r), xa.mul_add_r(xb, xc, m).value.to_bits() as u32, || ctx("fma"));
            same32(div_f32(fa, fb, r), xa.div_r(xb, m).value.to_bits() as u32, || ctx("div"));
            same32(rcp_f32(fa, r), Single::from_bits(0x3F80_0000).div_r(xa, m).value.to_bits() as u32, || ctx("rcp"));
        }
    }
}

#[test]
fn f64_arith_all_modes_vs_apfloat() {
    let mut rng = Rng(2);
    for iter in 0..25_000 {
        let a = rand_f64(&mut rng);
        let b = match rng.below(4) {
            0 => a ^ (1 << 63),
            1 => (a ^ (1 << 63)).wrapping_add(rng.below(3)),
            _ => rand_f64(&mut rng),
        };
        let c = if iter % 3 == 0 {
            ((f64::from_bits(a) * f64::from_bits(b)).to_bits() ^ (1 << 63)).wrapping_add(rng.below(5)).wrapping_sub(2)
        } else {
            rand_f64(&mut rng)
        };
        let (fa, fb, fc) = (f64::from_bits(a), f64::from_bits(b), f64::from_bits(c));
        let (xa, xb, xc) = (Double::from_bits(a as u128), Double::from_bits(b as u128), Double::from_bits(c as u128));
        for r in Rnd::ALL {
            let m = round_of(r);
            let ctx = |op: &str| format!("{op}_f64({fa:e}, {fb:e}, {fc:e}, {r:?})");
            same64(add_f64(fa, fb, r), xa.add_r(xb, m).value.to_bits() as u64, || ctx("add"));
            same64(sub_f64(fa, fb, r), xa.sub_r(xb, m).value.to_bits() as u64, || ctx("sub"));
            same64(mul_f64(fa, fb, r), xa.mul_r(xb, m).value.to_bits() as u64, || ctx("mul"));
            same64(fma_f64(fa, fb, fc, r), xa.mul_add_r(xb, xc, m).value.to_bits() as u64, || ctx("fma"));
            same64(div_f64(fa, fb, r), xa.div_r(xb, m).value.to_bits() as u64, || ctx("div"));
        }
        // .rn agrees with the host too.
        same64(fma_f64(fa, fb, fc, Rnd::Rn), fa.mul_add(fb, fc).to_bits(), || "fma_f64 vs host".to_string());
        same64(sqrt_f64(fa, Rnd::Rn), fa.sqrt().to_bits(), || "sqrt_f64 vs host".to_string());
    }
}

/// A case where rounding the exact f64 fma result to f32 (double rounding) is wrong:
/// a*b + c = (1 + 2^-23) + 2^-24 - 2^-54 rounds in f64 to the f32 tie (1 + 2^-23) + 2^-24,
/// which then goes to even (1 + 2^-22), while the correct result is 1 + 2^-23.
#[test]
fn f32_fma_is_not_double_rounded() {
    let a = f32::from_bits(0x3380_0100); // 2^-24 * (1 + 2^-15)
    let b = 1.0 - 2f32.powi(-15);
    let c = f32::from_bits(0x3F80_0001);
    assert_eq!(a, 2f32.powi(-24) * (1.0 + 2f32.powi(-15)));
    let naive = (a as f64 * b as f64 + c as f64) as f32;
    assert_eq!(naive.to_bits(), 0x3F80_0002, "the naive path double-rounds");
    assert_eq!(fma_f32(a, b, c, Rnd::Rn).to_bits(), 0x3F80_0001);
    assert_eq!(a.mul_add(b, c).to_bits(), 0x3F80_0001, "host fma agrees");
    // Directed add via an f64 .rn sum is wrong too: 1 + 2^-100 rounds to 1 in f64.
    let tiny = 2f32.powi(-100);
    assert_eq!(add_f32(1.0, tiny, Rnd::Rp).to_bits(), 0x3F80_0001);
    assert_eq!(add_f32(1.0, -tiny, Rnd::Rz).to_bits(), 0x3F7F_FFFF);
    assert_eq!(add_f32(1.0, -tiny, Rnd::Rm).to_bits(), 0x3F7F_FFFF);
    assert_eq!(add_f32(1.0, -tiny, Rnd::Rn).to_bits(), 0x3F80_0000);
    // A random search for more double-rounding cases; ours must match apfloat on each.
    let mut rng = Rng(3);
    let mut found = 0;
    for _ in 0..200_000 {
        // c + p lands near a tie of c's ulp with a tail below 2^-53 relative.
        let c = f32::from_bits(0x3F80_0000 | (rng.next() as u32 & 0x7F_FFFF));
        let x = 2f32.powi(-(13 + rng.below(4) as i32));
        let a = 2f32.powi(-24) * (1.0 + x);
        let b = if rng.below(2) == 0 { 1.0 - x } else { 1.0 + x };
        let naive = (a as f64 * b as f64 + c as f64) as f32;
        let ours = fma_f32(a, b, c, Rnd::Rn);
        let want = Single::from_bits(a.to_bits() as u128)
            .mul_add_r(
                Single::from_bits(b.to_bits() as u128),
                Single::from_bits(c.to_bits() as u128),
                Round::NearestTiesToEven,
            )
            .value
            .to_bits() as u32;
        assert_eq!(ours.to_bits(), want);
        found += (naive.to_bits() != want) as u32;
    }
    assert!(found > 100, "expected many double-rounding cases, found {found}");
}

#[test]
fn f32_sqrt_all_modes_exact_bracket() {
    // r = sqrt(x) in mode m iff r*r and its neighbours bracket x; all squares are exact in f64
    // (<= 50 significant bits).
    let mut rng = Rng(4);
    let mut xs: Vec<u32> = F32_EDGES.iter().map(|b| b & 0x7FFF_FFFF).collect();
    xs.extend((0..100_000).map(|_| rand_f32(&mut rng) & 0x7FFF_FFFF));
    xs.extend((1..2000u32).map(|i| (i * i) as f32).map(f32::to_bits)); // perfect squares
    for &xb in &xs {
        let x = f32::from_bits(xb);
        for r in Rnd::ALL {
            let y = sqrt_f32(x, r);
            if x.is_nan() {
                assert_eq!(y.to_bits(), 0x7FFF_FFFF);
                continue;
            }
            if x == 0.0 || x.is_infinite() {
                assert_eq!(y.to_bits(), xb);
                continue;
            }
            assert!(y > 0.0 && y.is_finite());
            let xd = x as f64;
            let yd = y as f64;
            let up = f32::from_bits(y.to_bits() + 1) as f64;
            let dn = f32::from_bits(y.to_bits() - 1) as f64;
            match r {
                Rnd::Rz | Rnd::Rm => assert!(yd * yd <= xd && up * up > xd, "sqrt {x:e} {r:?} -> {y:e}"),
                Rnd::Rp => assert!(yd * yd >= xd && dn * dn < xd, "sqrt {x:e} {r:?} -> {y:e}"),
                Rnd::Rn => {
                    let lo = (yd + dn) / 2.0;
                    let hi = (yd + up) / 2.0;
                    assert!(lo * lo < xd && hi * hi > xd, "sqrt {x:e} rn -> {y:e}");
                }
            }
        }
        same32(sqrt_f32(x, Rnd::Rn), x.sqrt().to_bits(), || "sqrt_f32 rn vs host".to_string());
        // negative inputs: NaN; -0 -> -0
        if x != 0.0 && !x.is_nan() {
            assert_eq!(sqrt_f32(-x, Rnd::Rn).to_bits(), 0x7FFF_FFFF);
        }
    }
    assert_eq!(sqrt_f32(-0.0, Rnd::Rn).to_bits(), 0x8000_0000);
}

#[test]
fn f64_sqrt_directed_bracket() {
    // Directed f64 sqrt: the exact residual r*r - x has the sign of fma(r, r, -x) as long as it
    // does not underflow (inputs kept in [2^-500, 2^500]).
    let mut rng = Rng(5);
    for _ in 0..40_000 {
        let e = rng.below(1000) as i32 - 500;
        let x = f64::from_bits(0x3FF0_0000_0000_0000 | (rng.next() & 0xF_FFFF_FFFF_FFFF)) * 2f64.powi(e);
        let rn = sqrt_f64(x, Rnd::Rn);
        assert_eq!(rn.to_bits(), x.sqrt().to_bits());
        let z = sqrt_f64(x, Rnd::Rz);
        let p = sqrt_f64(x, Rnd::Rp);
        assert_eq!(sqrt_f64(x, Rnd::Rm).to_bits(), z.to_bits());
        let exact = z.mul_add(z, -x) == 0.0;
        assert!(z.mul_add(z, -x) <= 0.0);
        let zu = f64::from_bits(z.to_bits() + 1);
        assert!(zu.mul_add(zu, -x) > 0.0);
        if exact {
            assert_eq!(p, z);
        } else {
            assert_eq!(p.to_bits(), z.to_bits() + 1);
        }
    }
}

#[test]
fn ftz_sat_min_max() {
    assert_eq!(ftz_f32(f32::from_bits(1)).to_bits(), 0);
    assert_eq!(ftz_f32(f32::from_bits(0x807F_FFFF)).to_bits(), 0x8000_0000);
    assert_eq!(ftz_f32(f32::MIN_POSITIVE), f32::MIN_POSITIVE);
    assert_eq!(ftz_f32(-1.5), -1.5);
    assert!(ftz_f32(f32::NAN).is_nan());
    assert_eq!(sat_f32(f32::NAN).to_bits(), 0);
    assert_eq!(sat_f32(-3.0).to_bits(), 0);
    assert_eq!(sat_f32(-0.0).to_bits(), 0);
    assert_eq!(sat_f32(2.0), 1.0);
    assert_eq!(sat_f32(f32::INFINITY), 1.0);
    assert_eq!(sat_f32(0.25), 0.25);
    assert_eq!(sat_f64(f64::NAN).to_bits(), 0);
    let nan = f32::from_bits(0x7FC0_0001);
    assert_eq!(min_f32(nan, 3.0), 3.0);
    assert_eq!(min_f32(3.0, nan), 3.0);
    assert_eq!(max_f32(nan, -3.0), -3.0);
    assert_eq!(max_f32(nan, nan).to_bits(), 0x7FFF_FFFF);
    assert_eq!(min_f32(-0.0, 0.0).to_bits(), 0x8000_0000);
    assert_eq!(min_f32(0.0, -0.0).to_bits(), 0x8000_0000);
    assert_eq!(max_f32(-0.0, 0.0).to_bits(), 0);
    assert_eq!(max_f32(0.0, -0.0).to_bits(), 0);
    assert_eq!(min_f32(f32::NEG_INFINITY, 1.0), f32::NEG_INFINITY);
    assert_eq!(min_f64(f64::NAN, 1.0), 1.0);
    assert_eq!(max_f64(2.0, 1.0), 2.0);
    // f16 min/max and neg/abs
    let h = |x: f32| half::f16::from_f32(x).to_bits();
    assert_eq!(min_f16(h(1.0), h(-2.0)), h(-2.0));
    assert_eq!(max_f16(0x7E00, h(-2.0)), h(-2.0));
    assert_eq!(max_f16(0x7E00, 0x7E01), 0x7FFF);
    assert_eq!(min_f16(0x8000, 0x0000), 0x8000);
    assert_eq!(max_bf16(0x8000, 0x0000), 0x0000);
    assert_eq!(neg_f16(h(1.0)), h(-1.0));
    assert_eq!(abs_bf16(0xBF80), 0x3F80);
    let mut rng = Rng(6);
    for _ in 0..20_000 {
        let (a, b) = (f32::from_bits(rand_f32(&mut rng)), f32::from_bits(rand_f32(&mut rng)));
        if !a.is_nan() && !b.is_nan() && a != b {
            assert_eq!(min_f32(a, b), a.min(b));
            assert_eq!(max_f32(a, b), a.max(b));
            let (ha, hb) = (h(a), h(b));
            let (fa, fb) = (half::f16::from_bits(ha), half::f16::from_bits(hb));
            if fa != fb && !fa.is_nan() && !fb.is_nan() {
                assert_eq!(min_f16(ha, hb), if fa < fb { ha } else { hb });
                assert_eq!(max_f16(ha, hb), if fa > fb { ha } else { hb });
            }
        }
    }
}

#[test]
fn zero_signs() {
    for r in Rnd::ALL {
        let z = if r == Rnd::Rm { 0x8000_0000 } else { 0 };
        assert_eq!(add_f32(1.0, -1.0, r).to_bits(), z, "{r:?}");
        assert_eq!(add_f32(0.0, -0.0, r).to_bits(), z, "{r:?}");
        assert_eq!(add_f32(-0.0, -0.0, r).to_bits(), 0x8000_0000);
        assert_eq!(fma_f32(2.0, 3.0, -6.0, r).to_bits(), z);
        assert_eq!(fma_f32(0.0, -3.0, 0.0, r).to_bits(), z);
        assert_eq!(fma_f32(0.0, -3.0, -0.0, r).to_bits(), 0x8000_0000);
        assert_eq!(mul_f32(-0.0, 5.0, r).to_bits(), 0x8000_0000);
        assert!(fma_f32(f32::INFINITY, 0.0, 1.0, r).is_nan());
        assert_eq!(
            fma_f32(1e-30, 1e-30, 1.0, r).to_bits(),
            match r {
                Rnd::Rp => 0x3F80_0001,
                _ => 0x3F80_0000,
            }
        );
    }
}

// ---------------------------------------------------------------- f16 / bf16 arithmetic

#[test]
fn f16_bf16_arith_vs_apfloat() {
    let mut rng = Rng(7);
    let specials: [u16; 10] = [0, 0x8000, 1, 0x3C00, 0x7BFF, 0x7C00, 0xFC00, 0x7E00, 0x0400, 0x03FF];
    for i in 0..30_000 {
        let pick = |rng: &mut Rng| if rng.below(8) == 0 { specials[rng.below(10) as usize] } else { rng.next() as u16 };
        let a = pick(&mut rng);
        let b = if i % 4 == 0 { a ^ 0x8000 } else { pick(&mut rng) };
        let c = pick(&mut rng);
        for r in Rnd::ALL {
            let m = round_of(r);
            // f16
            let (xa, xb, xc) = (Half::from_bits(a as u128), Half::from_bits(b as u128), Half::from_bits(c as u128));
            let chk = |ours: u16, want: Half, op: &str| {
                same16(ours, want.to_bits() as u16, want.is_nan(), || format!("{op}_f16 {a:#x} {b:#x} {c:#x} {r:?}"))
            };
            chk(add_f16(a, b, r), xa.add_r(xb, m).value, "add");
            chk(sub_f16(a, b, r), xa.sub_r(xb, m).value, "sub");
            chk(mul_f16(a, b, r), xa.mul_r(xb, m).value, "mul");
            chk(fma_f16(a, b, c, r), xa.mul_add_r(xb, xc, m).value, "fma");
            // bf16
            let (ya, yb, yc) =
                (BFloat::from_bits(a as u128), BFloat::from_bits(b as u128), BFloat::from_bits(c as u128));
            let chk = |ours: u16, want: BFloat, op: &str| {
                same16(ours, want.to_bits() as u16, want.is_nan(), || format!("{op}_bf16 {a:#x} {b:#x} {c:#x} {r:?}"))
            };
            chk(add_bf16(a, b, r), ya.add_r(yb, m).value, "add");
            chk(sub_bf16(a, b, r), ya.sub_r(yb, m).value, "sub");
            chk(mul_bf16(a, b, r), ya.mul_r(yb, m).value, "mul");
            chk(fma_bf16(a, b, c, r), ya.mul_add_r(yb, yc, m).value, "fma");
        }
    }
}

// ---------------------------------------------------------------- f16 / bf16 / f64 conversions

#[test]
fn f16_bf16_to_f32_exhaustive() {
    for h in 0..=u16::MAX {
        let want = half::f16::from_bits(h).to_f32();
        same32(f16_to_f32(h), want.to_bits(), || format!("f16_to_f32({h:#x})"));
        let want = half::bf16::from_bits(h).to_f32();
        same32(bf16_to_f32(h), want.to_bits(), || format!("bf16_to_f32({h:#x})"));
        let w64 = half::f16::from_bits(h).to_f64();
        same64(f16_to_f64(h), w64.to_bits(), || "f16_to_f64".to_string());
        same64(bf16_to_f64(h), half::bf16::from_bits(h).to_f64().to_bits(), || "bf16_to_f64".to_string());
    }
}

/// f32 -> f16/bf16 in every mode: every f16 (bf16) value's f32 image plus offsets that land on,
/// just below and just above every tie, checked against half (.rn) and apfloat (all modes).
#[test]
fn f32_to_f16_bf16_exhaustive_neighbourhoods() {
    let offs16: [i32; 9] = [0, 1, -1, 0xFFF, 0x1000, 0x1001, 0x1FFF, -0x1000, -0x1001];
    let offs_b: [i32; 7] = [0, 1, -1, 0x7FFF, 0x8000, 0x8001, -0x8000];
    let mut lost = false;
    for h in 0..=u16::MAX {
        // f16 neighbourhoods
        let base = half::f16::from_bits(h).to_f32().to_bits();
        for &o in &offs16 {
            let x = f32::from_bits(base.wrapping_add(o as u32));
            let sx = Single::from_bits(x.to_bits() as u128);
            same16(f32_to_f16(x, Rnd::Rn, false), half::f16::from_f32(x).to_bits(), x.is_nan(), || {
                format!("f32_to_f16({x:e}) vs half")
            });
            for r in Rnd::ALL {
                let w: Half = sx.convert_r(round_of(r), &mut lost).value;
                same16(f32_to_f16(x, r, false), w.to_bits() as u16, w.is_nan(), || format!("f32_to_f16({x:e}, {r:?})"));
            }
        }
        // bf16 neighbourhoods
        let base = (h as u32) << 16;
        for &o in &offs_b {
            let x = f32::from_bits(base.wrapping_add(o as u32));
            let sx = Single::from_bits(x.to_bits() as u128);
            same16(f32_to_bf16(x, Rnd::Rn, false), half::bf16::from_f32(x).to_bits(), x.is_nan(), || {
                format!("f32_to_bf16({x:e}) vs half")
            });
            for r in Rnd::ALL {
                let w: BFloat = sx.convert_r(round_of(r), &mut lost).value;
                same16(f32_to_bf16(x, r, false), w.to_bits() as u16, w.is_nan(), || {
                    format!("f32_to_bf16({x:e}, {r:?})")
                });
            }
        }
    }
}

#[test]
fn f64_to_narrow_random_vs_apfloat() {
    let mut rng = Rng(8);
    let mut lost = false;
    for _ in 0..60_000 {
        let x = rand_f64(&mut rng);
        let d = Double::from_bits(x as u128);
        let fx = f64::from_bits(x);
        for r in Rnd::ALL {
            let m = round_of(r);
            let w: Single = d.convert_r(m, &mut lost).value;
            same32(f64_to_f32(fx, r), w.to_bits() as u32, || format!("f64_to_f32({fx:e}, {r:?})"));
            let w: Half = d.convert_r(m, &mut lost).value;
            same16(f64_to_f16(fx, r), w.to_bits() as u16, w.is_nan(), || format!("f64_to_f16({fx:e}, {r:?})"));
            let w: BFloat = d.convert_r(m, &mut lost).value;
            same16(f64_to_bf16(fx, r), w.to_bits() as u16, w.is_nan(), || format!("f64_to_bf16({fx:e}, {r:?})"));
        }
        // and f32 sources
        let y = f32::from_bits(rand_f32(&mut rng));
        let w = f32_to_f64(y);
        if y.is_nan() {
            assert_eq!(w.to_bits(), 0x7FFF_FFFF_FFFF_FFFF);
        } else {
            assert_eq!(w.to_bits(), (y as f64).to_bits());
        }
    }
}

#[test]
fn satfinite_f16_bf16() {
    for r in Rnd::ALL {
        assert_eq!(f32_to_f16(1e6, r, true), 0x7BFF);
        assert_eq!(f32_to_f16(-1e6, r, true), 0xFBFF);
        assert_eq!(f32_to_f16(f32::INFINITY, r, true), 0x7BFF);
        assert_eq!(f32_to_f16(f32::NEG_INFINITY, r, true), 0xFBFF);
        assert_eq!(f32_to_f16(f32::NAN, r, true), 0x7FFF);
        assert_eq!(f32_to_bf16(f32::MAX, r, true), 0x7F7F);
        assert_eq!(f32_to_bf16(f32::MAX, r, false), if r == Rnd::Rn || r == Rnd::Rp { 0x7F80 } else { 0x7F7F });
        assert_eq!(f32_to_bf16(f32::INFINITY, r, true), 0x7F7F);
        assert_eq!(f32_to_bf16(f32::NEG_INFINITY, r, true), 0xFF7F);
        assert_eq!(f32_to_f16(1.5, r, true), 0x3E00);
    }
    // without satfinite: mode-dependent overflow
    assert_eq!(f32_to_f16(1e6, Rnd::Rn, false), 0x7C00);
    assert_eq!(f32_to_f16(1e6, Rnd::Rz, false), 0x7BFF);
    assert_eq!(f32_to_f16(-1e6, Rnd::Rp, false), 0xFBFF);
    assert_eq!(f32_to_f16(-1e6, Rnd::Rm, false), 0xFC00);
    assert_eq!(f32_to_f16(65519.0, Rnd::Rn, false), 0x7BFF);
    assert_eq!(f32_to_f16(65520.0, Rnd::Rn, false), 0x7C00);
    assert_eq!(f32_to_f16(65520.0, Rnd::Rn, true), 0x7BFF);
}

#[test]
fn tf32() {
    let mut rng = Rng(9);
    for _ in 0..20_000 {
        let x = f32::from_bits(rand_f32(&mut rng));
        // rna: nearest, ties away
        let t = f32_to_tf32_rna(x, false);
        if x.is_nan() {
            assert_eq!(t, 0x7FFF_FFFF);
            continue;
        }
        assert_eq!(t & 0x1FFF, 0);
        // Compare with a float reference: |x - t| <= half tf32 ulp, ties away.
        let lo = x.to_bits() & !0x1FFF;
        let rem = x.to_bits() & 0x1FFF;
        let want = if rem >= 0x1000 { lo + 0x2000 } else { lo };
        assert_eq!(t, want);
        for r in Rnd::ALL {
            let t = f32_to_tf32(x, r, false);
            assert_eq!(t & 0x1FFF, 0);
            let want = match r {
                Rnd::Rz => lo,
                Rnd::Rn => {
                    if rem > 0x1000 || (rem == 0x1000 && lo & 0x2000 != 0) {
                        lo + 0x2000
                    } else {
                        lo
                    }
                }
                Rnd::Rp | Rnd::Rm => {
                    let away = (r == Rnd::Rp) != x.is_sign_negative();
                    if rem != 0 && away {
                        lo + 0x2000
                    } else {
                        lo
                    }
                }
            };
            if !x.is_infinite() {
                assert_eq!(t, want, "tf32 {x:e} {r:?}");
            }
        }
    }
}

// ---------------------------------------------------------------- FP8 / FP4

fn e4m3_ref(b: u8) -> f32 {
    // Straight from the OCP table: S EEEE MMM, bias 7, S.1111.111 NaN, no inf.
    let s = if b & 0x80 != 0 { -1.0f32 } else { 1.0 };
    let e = ((b >> 3) & 0xF) as i32;
    let m = (b & 7) as f32;
    if e == 15 && m == 7.0 {
        return f32::NAN;
    }
    s * if e == 0 { m / 8.0 * 2f32.powi(-6) } else { (1.0 + m / 8.0) * 2f32.powi(e - 7) }
}

fn e5m2_ref(b: u8) -> f32 {
    let s = if b & 0x80 != 0 { -1.0f32 } else { 1.0 };
    let e = ((b >> 2) & 0x1F) as i32;
    let m = (b & 3) as f32;
    if e == 31 {
        return if m == 0.0 { s * f32::INFINITY } else { f32::NAN };
    }
    s * if e == 0 { m / 4.0 * 2f32.powi(-14) } else { (1.0 + m / 4.0) * 2f32.powi(e - 15) }
}

#[test]
fn fp8_decode_exhaustive() {
    for b in 0..=255u8 {
        let (x, y) = (e4m3_ref(b), e4m3_to_f32(b));
        let fl = float8::F8E4M3::from_bits(b).to_f32();
        let rf = dsv4_reference::formats::e4m3_to_f32(b);
        let ap: Single = Float8E4M3FN::from_bits(b as u128).convert_r(Round::NearestTiesToEven, &mut false).value;
        if x.is_nan() {
            assert!(y.is_nan() && fl.is_nan() && rf.is_nan() && ap.is_nan(), "{b:#x}");
            assert_eq!(y.to_bits(), 0x7FFF_FFFF);
            assert_eq!(e4m3_to_f16(b), 0x7FFF);
        } else {
            assert_eq!(y.to_bits(), x.to_bits(), "e4m3 {b:#x}");
            assert_eq!(fl.to_bits(), x.to_bits(), "float8 e4m3 {b:#x}");
            assert_eq!(rf.to_bits(), x.to_bits(), "reference e4m3 {b:#x}");
            assert_eq!(ap.to_bits() as u32, x.to_bits(), "apfloat e4m3 {b:#x}");
            assert_eq!(e4m3_to_f16(b), half::f16::from_f32(x).to_bits(), "e4m3_to_f16 {b:#x}");
            assert_eq!(half::f16::from_bits(e4m3_to_f16(b)).to_f32(), x, "exact");
        }
        let (x, y) = (e5m2_ref(b), e5m2_to_f32(b));
        let fl = float8::F8E5M2::from_bits(b).to_f32();
        if x.is_nan() {
            assert!(y.is_nan() && fl.is_nan());
            assert_eq!(e5m2_to_f16(b), 0x7FFF);
        } else {
            assert_eq!(y.to_bits(), x.to_bits(), "e5m2 {b:#x}");
            assert_eq!(fl.to_bits(), x.to_bits(), "float8 e5m2 {b:#x}");
            // e5m2 is the top byte of an f16.
            assert_eq!(e5m2_to_f16(b), (b as u16) << 8, "e5m2_to_f16 {b:#x}");
        }
    }
    assert_eq!(e4m3_to_f32(0x7E), 448.0);
    assert_eq!(e4m3_to_f32(0x01), 2f32.powi(-9));
    assert_eq!(e5m2_to_f32(0x7B), 57344.0);
    assert_eq!(e5m2_to_f32(0x7C), f32::INFINITY);
}

/// Every e4m3/e5m2 code, every midpoint between neighbouring codes and points just either side
/// of each: encoder against apfloat (non-satfinite semantics), float8 and the reference.
#[test]
fn fp8_encode_midpoints() {
    let mut lost = false;
    let mut pts: Vec<f32> = Vec::new();
    for b in 0..=0x7Fu8 {
        for dec in [e4m3_ref as fn(u8) -> f32, e5m2_ref] {
            let lo = dec(b);
            let hi = dec(b + 1);
            if lo.is_nan() || !lo.is_finite() {
                continue;
            }
            let hi = if hi.is_nan() || hi.is_infinite() { lo + (lo - dec(b - 1)) } else { hi };
            let mid = (lo + hi) / 2.0;
            for v in [lo, mid, f32::from_bits(mid.to_bits() - 1), f32::from_bits(mid.to_bits() + 1), hi] {
                pts.push(v);
                pts.push(-v);
            }
        }
    }
    pts.extend([
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::NAN,
        1e30,
        -1e30,
        464.0,
        465.0,
        480.0,
        61440.0,
        57344.0,
        1e-30,
        -1e-30,
        0.0,
        -0.0,
    ]);
    for &x in &pts {
        let sx = Single::from_bits(x.to_bits() as u128);
        // e4m3, no satfinite: overflow -> NaN (apfloat's E4M3FN does the same)
        let w: Float8E4M3FN = sx.convert_r(Round::NearestTiesToEven, &mut lost).value;
        let ours = f32_to_e4m3(x, false);
        if w.is_nan() {
            assert_eq!(ours & 0x7F, 0x7F, "e4m3({x:e}) want NaN, got {ours:#x}");
        } else {
            assert_eq!(ours, w.to_bits() as u8, "e4m3({x:e})");
        }
        // satfinite: clamp to +-448
        let sat = f32_to_e4m3(x, true);
        if x.is_nan() {
            assert_eq!(sat, 0x7F);
        } else if x.abs() >= 464.0 {
            assert_eq!(sat, if x < 0.0 { 0xFE } else { 0x7E }, "sat e4m3({x:e})");
        } else {
            assert_eq!(sat, ours);
            assert_eq!(sat, dsv4_reference::formats::f32_to_e4m3(x), "reference e4m3({x:e})");
            assert_eq!(sat, float8::F8E4M3::from_f32(x).to_bits(), "float8 e4m3({x:e})");
        }
        // e5m2
        let w: Float8E5M2 = sx.convert_r(Round::NearestTiesToEven, &mut lost).value;
        let ours = f32_to_e5m2(x, false);
        if w.is_nan() {
            assert_eq!(ours, 0x7F);
        } else {
            assert_eq!(ours, w.to_bits() as u8, "e5m2({x:e})");
        }
        let sat = f32_to_e5m2(x, true);
        if x.is_nan() {
            assert_eq!(sat, 0x7F);
        } else if x.abs() >= 61440.0 {
            assert_eq!(sat, if x < 0.0 { 0xFB } else { 0x7B }, "sat e5m2({x:e})");
        } else {
            assert_eq!(sat, ours);
            assert_eq!(sat, float8::F8E5M2::from_f32(x).to_bits(), "float8 e5m2({x:e})");
        }
    }
    // Fixed points of the spec.
    assert_eq!(f32_to_e4m3(448.0, true), 0x7E);
    assert_eq!(f32_to_e4m3(464.0, false), 0x7E); // tie to even (448)
    assert_eq!(f32_to_e4m3(465.0, false), 0x7F); // overflow: NaN
    assert_eq!(f32_to_e4m3(-1e9, false), 0xFF);
    assert_eq!(f32_to_e4m3(f32::INFINITY, false), 0x7F);
    assert_eq!(f32_to_e4m3(f32::INFINITY, true), 0x7E);
    assert_eq!(f32_to_e4m3(-1e9, true), 0xFE);
    assert_eq!(f32_to_e4m3(2f32.powi(-10), true), 0x00); // tie between 0 and 2^-9 -> even (0)
    assert_eq!(f32_to_e4m3(2f32.powi(-10) * 1.01, true), 0x01);
    assert_eq!(f32_to_e4m3(-0.0, true), 0x80);
    assert_eq!(f32_to_e5m2(f32::INFINITY, false), 0x7C);
    assert_eq!(f32_to_e5m2(f32::INFINITY, true), 0x7B);
    assert_eq!(f32_to_e5m2(1e9, false), 0x7C);
    assert_eq!(f32_to_e5m2(-1e9, true), 0xFB);
}

/// f16 -> e4m3/e5m2 over every f16 input, against apfloat (same semantics as from f32).
#[test]
fn f16_to_fp8_exhaustive() {
    let mut lost = false;
    for h in 0..=u16::MAX {
        let x = half::f16::from_bits(h);
        let hx = Half::from_bits(h as u128);
        let w: Float8E4M3FN = hx.convert_r(Round::NearestTiesToEven, &mut lost).value;
        let ours = f16_to_e4m3(h, false);
        if w.is_nan() {
            assert_eq!(ours & 0x7F, 0x7F, "f16_to_e4m3({x})");
        } else {
            assert_eq!(ours, w.to_bits() as u8, "f16_to_e4m3({x})");
        }
        let sat = f16_to_e4m3(h, true);
        assert_eq!(sat, f32_to_e4m3(x.to_f32(), true), "f16 vs f32 path ({x})");
        let w: Float8E5M2 = hx.convert_r(Round::NearestTiesToEven, &mut lost).value;
        let ours = f16_to_e5m2(h, false);
        if w.is_nan() {
            assert_eq!(ours, 0x7F);
        } else {
            assert_eq!(ours, w.to_bits() as u8, "f16_to_e5m2({x})");
        }
        assert_eq!(f16_to_e5m2(h, true), f32_to_e5m2(x.to_f32(), true));
        // e5m2 is f16 with the low byte rounded away: round-trip of representable values.
        if h & 0xFF == 0 && !x.is_nan() {
            assert_eq!(f16_to_e5m2(h, false), (h >> 8) as u8);
        }
    }
}

#[test]
fn fp4_e2m1() {
    // The 16-entry table straight from the OCP MX spec.
    let table: [f32; 16] = [0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, -0.0, -0.5, -1.0, -1.5, -2.0, -3.0, -4.0, -6.0];
    for (code, &v) in table.iter().enumerate() {
        assert_eq!(e2m1_to_f32(code as u8).to_bits(), v.to_bits(), "code {code}");
        assert_eq!(f32_to_e2m1(v, true), code as u8, "encode {v}");
        assert_eq!(e2m1_to_f32(code as u8 | 0xF0).to_bits(), v.to_bits(), "high bits ignored");
    }
    // Midpoints: ties go to the even code.
    let mids: [(f32, u8); 8] = [(0.25, 0), (0.75, 2), (1.25, 2), (1.75, 4), (2.5, 4), (3.5, 6), (5.0, 6), (7.0, 7)];
    for (x, code) in mids {
        assert_eq!(f32_to_e2m1(x, true), code, "{x}");
        assert_eq!(f32_to_e2m1(-x, true), code | 8, "-{x}");
    }
    assert_eq!(f32_to_e2m1(100.0, true), 7);
    assert_eq!(f32_to_e2m1(f32::INFINITY, true), 7);
    assert_eq!(f32_to_e2m1(f32::NEG_INFINITY, true), 15);
    assert_eq!(f32_to_e2m1(0.2, true), 0);
    assert_eq!(f32_to_e2m1(-0.2, true), 8);
    assert_eq!(f32_to_e2m1(0.26, true), 1);
    // Against the project reference on a dense sweep.
    let mut x = -8.0f32;
    while x <= 8.0 {
        assert_eq!(f32_to_e2m1(x, true), dsv4_reference::formats::f32_to_e2m1(x), "{x}");
        x += 1.0 / 64.0;
    }
}

// ---------------------------------------------------------------- integer conversions

#[test]
fn float_to_int_saturating() {
    let mut rng = Rng(10);
    let mut xs: Vec<f64> = vec![
        0.0,
        -0.0,
        0.5,
        -0.5,
        1.5,
        2.5,
        -2.5,
        127.5,
        128.0,
        -128.5,
        -129.0,
        255.5,
        256.0,
        1e10,
        -1e10,
        2147483647.5,
        2147483648.0,
        -2147483648.5,
        -2147483649.0,
        4294967295.4,
        9.3e18,
        1.8e19,
        1.9e19,
        -9.3e18,
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::NAN,
        1e-300,
        -1e-300,
        4503599627370497.0,
        9223372036854775807.0,
    ];
    for _ in 0..20_000 {
        let e = rng.below(140) as i32 - 70;
        let v = (rng.next() as i64 as f64) * 2f64.powi(e - 63);
        xs.push(v);
        xs.push(f64::from_bits(rand_f64(&mut rng)));
    }
    for &x in &xs {
        for r in Rnd::ALL {
            for bits in [8u32, 16, 32, 64] {
                for signed in [false, true] {
                    let got = f64_to_int(x, r, signed, bits);
                    // Reference: apfloat's round_to_integral, then clamp in i128.
                    let want = if x.is_nan() {
                        0u64
                    } else {
                        let ri = Double::from_bits(x.to_bits() as u128).round_to_integral(round_of(r)).value;
                        let rf = f64::from_bits(ri.to_bits() as u64);
                        let (lo, hi) = if signed {
                            (-(1i128 << (bits - 1)), (1i128 << (bits - 1)) - 1)
                        } else {
                            (0, (1i128 << bits) - 1)
                        };
                        let v: i128 = if rf >= 1.8e38 {
                            hi
                        } else if rf <= -1.8e38 {
                            lo
                        } else {
                            (rf as i128).clamp(lo, hi)
                        };
                        let mask = if bits == 64 { u64::MAX } else { (1u64 << bits) - 1 };
                        (v as u64) & mask
                    };
                    assert_eq!(got, want, "f64_to_int({x:e}, {r:?}, signed={signed}, {bits})");
                }
            }
        }
    }
    assert_eq!(f64_to_int(-1.0, Rnd::Rn, true, 8), 0xFF);
    assert_eq!(f64_to_int(-1.0, Rnd::Rn, false, 8), 0);
    assert_eq!(f64_to_int(300.0, Rnd::Rn, true, 8), 0x7F);
    assert_eq!(f64_to_int(-300.0, Rnd::Rn, true, 8), 0x80);
    assert_eq!(f64_to_int(2.5, Rnd::Rn, true, 32), 2);
    assert_eq!(f64_to_int(3.5, Rnd::Rn, true, 32), 4);
    assert_eq!(f64_to_int(-2.5, Rnd::Rm, true, 32), (-3i32) as u32 as u64);
    assert_eq!(f64_to_int(-2.5, Rnd::Rp, true, 32), (-2i32) as u32 as u64);
    assert_eq!(f64_to_int(1e30, Rnd::Rz, true, 64), i64::MAX as u64);
    assert_eq!(f64_to_int(1e30, Rnd::Rz, false, 64), u64::MAX);
    assert_eq!(f64_to_int(-1e30, Rnd::Rz, true, 64), i64::MIN as u64);
    assert_eq!(f64_to_int(f64::NAN, Rnd::Rz, true, 64), 0);
    assert_eq!(f32_to_int(f32::INFINITY, Rnd::Rz, false, 16), 0xFFFF);
}

#[test]
fn int_to_float_all_modes_vs_apfloat() {
    let mut rng = Rng(11);
    let mut vs: Vec<i128> = vec![
        0,
        1,
        -1,
        16777217,
        -16777217,
        16777219,
        i64::MAX as i128,
        i64::MIN as i128,
        u64::MAX as i128,
        65519,
        65520,
        65536,
        -65520,
        2049,
        2051,
    ];
    for _ in 0..30_000 {
        let sh = rng.below(64) as u32;
        vs.push((rng.next() >> sh) as i128);
        vs.push(-((rng.next() >> sh) as i128));
        vs.push(rng.next() as i64 as i128);
    }
    for &v in &vs {
        for r in Rnd::ALL {
            let m = round_of(r);
            same32(int_to_f32(v, r), Single::from_i128_r(v, m).value.to_bits() as u32, || {
                format!("int_to_f32({v}, {r:?})")
            });
            same64(int_to_f64(v, r), Double::from_i128_r(v, m).value.to_bits() as u64, || {
                format!("int_to_f64({v}, {r:?})")
            });
            let w = Half::from_i128_r(v, m).value;
            same16(int_to_f16(v, r), w.to_bits() as u16, false, || format!("int_to_f16({v}, {r:?})"));
            let w = BFloat::from_i128_r(v, m).value;
            same16(int_to_bf16(v, r), w.to_bits() as u16, false, || format!("int_to_bf16({v}, {r:?})"));
        }
    }
}

#[test]
fn round_to_integral_vs_apfloat() {
    let mut rng = Rng(12);
    for i in 0..60_000 {
        let x = if i % 2 == 0 {
            f32::from_bits(rand_f32(&mut rng))
        } else {
            (rng.below(4000) as f32 - 2000.0) / 4.0 + if rng.below(2) == 0 { 0.0 } else { f32::EPSILON }
        };
        let y = f64::from_bits(rand_f64(&mut rng));
        for r in Rnd::ALL {
            let m = round_of(r);
            same32(
                round_int_f32(x, r),
                Single::from_bits(x.to_bits() as u128).round_to_integral(m).value.to_bits() as u32,
                || format!("round_int_f32({x:e}, {r:?})"),
            );
            same64(
                round_int_f64(y, r),
                Double::from_bits(y.to_bits() as u128).round_to_integral(m).value.to_bits() as u64,
                || format!("round_int_f64({y:e}, {r:?})"),
            );
        }
    }
    assert_eq!(round_int_f32(-0.5, Rnd::Rp).to_bits(), 0x8000_0000);
    assert_eq!(round_int_f32(0.5, Rnd::Rn).to_bits(), 0);
    assert_eq!(round_int_f32(1.5, Rnd::Rn), 2.0);
    assert_eq!(round_int_f32(2.5, Rnd::Rn), 2.0);
}

// ---------------------------------------------------------------- approximate functions

fn ulp_err(got: f32, exact: f64) -> f64 {
    // error in units of the f32 ulp at the exact value
    let e = exact.abs().max(f32::MIN_POSITIVE as f64 * 2f64.powi(-23));
    let ulp =
        if exact.abs() < f32::MIN_POSITIVE as f64 { 2f64.powi(-149) } else { 2f64.powi(e.log2().floor() as i32 - 23) };
    (got as f64 - exact).abs() / ulp
}

#[test]
fn approx_within_isa_bounds() {
    let mut rng = Rng(13);
    for i in 0..100_000 {
        let x = f32::from_bits(rand_f32(&mut rng));
        let small = (rng.below(2_000_001) as f32 - 1_000_000.0) / 100_000.0; // [-10, 10]
        let pos = f32::from_bits(rand_f32(&mut rng) & 0x7FFF_FFFF);
        // ex2: max 2 ulp
        for v in [x, small, small * 12.0] {
            let got = ex2_approx(v);
            let ex = (v as f64).exp2();
            if ex.is_finite() && ex < f32::MAX as f64 && ex > f32::MIN_POSITIVE as f64 {
                assert!(ulp_err(got, ex) <= 2.0, "ex2({v:e}) = {got:e}");
            }
        }
        // lg2: max abs error 2^-22 (where the f32 result's own half-ulp exceeds that, for
        // |lg2(x)| >= 4, the bound is that of a correctly rounded result: 0.5 ulp)
        if pos > 0.0 && pos.is_finite() {
            let ex = (pos as f64).log2();
            let got = lg2_approx(pos);
            assert!((got as f64 - ex).abs() <= 2f64.powi(-22) || ulp_err(got, ex) <= 0.5 + 1e-6, "lg2({pos:e})");
            // rsqrt: rel error 2^-22.9; rcp: 1 ulp; sqrt: rel 2^-23
            let rs = 1.0 / (pos as f64).sqrt();
            assert!(((rsqrt_approx(pos) as f64 - rs) / rs).abs() <= 2f64.powi(-22), "rsqrt({pos:e})");
            let rc = 1.0 / pos as f64;
            if rc.abs() < f32::MAX as f64 && rc.abs() > f32::MIN_POSITIVE as f64 {
                assert!(ulp_err(rcp_approx(pos), rc) <= 1.0, "rcp({pos:e})");
            }
            let sq = (pos as f64).sqrt();
            assert!(((sqrt_approx(pos) as f64 - sq) / sq).abs() <= 2f64.powi(-23), "sqrt({pos:e})");
        }
        // sin/cos: abs error 2^-20.5 on [-pi, pi]
        let t = small * std::f32::consts::PI / 10.0;
        assert!((sin_approx(t) as f64 - (t as f64).sin()).abs() <= 2f64.powf(-20.5));
        assert!((cos_approx(t) as f64 - (t as f64).cos()).abs() <= 2f64.powf(-20.5));
        // tanh: rel error 2^-10.987
        let th = (small as f64).tanh();
        if small != 0.0 {
            assert!(((tanh_approx(small) as f64 - th) / th).abs() <= 2f64.powf(-10.987), "tanh({small})");
        }
        // div: 2 ulp for b in [2^-126, 2^126]
        let b = f32::from_bits(rand_f32(&mut rng));
        if b.is_normal() && b.abs() <= 2f32.powi(126) && x.is_finite() {
            let q = x as f64 / b as f64;
            if q.abs() < f32::MAX as f64 && q.abs() > f32::MIN_POSITIVE as f64 {
                assert!(ulp_err(div_approx(x, b), q) <= 2.0, "div.approx({x:e}, {b:e})");
                assert!(ulp_err(div_full(x, b), q) <= 2.0, "div.full({x:e}, {b:e})");
            }
        }
        let _ = i;
    }
}

#[test]
fn approx_special_values() {
    let inf = f32::INFINITY;
    let is_cnan = |x: f32| x.to_bits() == 0x7FFF_FFFF;
    assert_eq!(ex2_approx(f32::NEG_INFINITY).to_bits(), 0);
    assert_eq!(ex2_approx(inf), inf);
    assert_eq!(ex2_approx(0.0), 1.0);
    assert_eq!(ex2_approx(-0.0), 1.0);
    assert_eq!(ex2_approx(10.0), 1024.0);
    assert_eq!(ex2_approx(-149.0), f32::from_bits(1));
    assert!(is_cnan(ex2_approx(f32::NAN)));
    assert_eq!(lg2_approx(0.0), f32::NEG_INFINITY);
    assert_eq!(lg2_approx(-0.0), f32::NEG_INFINITY);
    assert_eq!(lg2_approx(inf), inf);
    assert!(is_cnan(lg2_approx(-1.0)));
    assert!(is_cnan(lg2_approx(f32::NEG_INFINITY)));
    assert_eq!(lg2_approx(8.0), 3.0);
    assert_eq!(lg2_approx(f32::from_bits(1)), -149.0);
    assert!(is_cnan(sin_approx(inf)));
    assert!(is_cnan(cos_approx(f32::NEG_INFINITY)));
    assert_eq!(sin_approx(-0.0).to_bits(), 0x8000_0000);
    assert_eq!(cos_approx(0.0), 1.0);
    assert_eq!(rsqrt_approx(0.0), inf);
    assert_eq!(rsqrt_approx(-0.0), f32::NEG_INFINITY);
    assert_eq!(rsqrt_approx(inf).to_bits(), 0);
    assert!(is_cnan(rsqrt_approx(-1.0)));
    assert_eq!(rsqrt_approx(4.0), 0.5);
    assert_eq!(rcp_approx(0.0), inf);
    assert_eq!(rcp_approx(-0.0), f32::NEG_INFINITY);
    assert_eq!(rcp_approx(f32::NEG_INFINITY).to_bits(), 0x8000_0000);
    assert_eq!(rcp_approx(4.0), 0.25);
    assert_eq!(sqrt_approx(-0.0).to_bits(), 0x8000_0000);
    assert!(is_cnan(sqrt_approx(-2.0)));
    assert_eq!(tanh_approx(inf), 1.0);
    assert_eq!(tanh_approx(f32::NEG_INFINITY), -1.0);
    assert_eq!(tanh_approx(-0.0).to_bits(), 0x8000_0000);
    assert_eq!(div_approx(1.0, 2f32.powi(127)).to_bits(), 0);
    assert_eq!(div_approx(-1.0, 2f32.powi(127)).to_bits(), 0x8000_0000);
    assert!(is_cnan(div_approx(inf, 2f32.powi(127))));
    assert_eq!(div_approx(6.0, 3.0), 2.0);
    assert_eq!(div_full(1.0, 0.0), inf);
    assert!(is_cnan(div_full(0.0, 0.0)));
    assert_eq!(div_full(1.0, 2f32.powi(127)), 2f32.powi(-127));
    // f16/bf16 forms
    let h = |x: f32| half::f16::from_f32(x).to_bits();
    assert_eq!(ex2_approx_f16(h(3.0)), h(8.0));
    assert_eq!(ex2_approx_f16(0xFC00), 0);
    assert_eq!(tanh_approx_f16(0x7C00), h(1.0));
    assert_eq!(ex2_approx_bf16(0x4040), 0x4100); // 2^3 = 8
    assert_eq!(tanh_approx_bf16(0xFF80), 0xBF80);
    assert_eq!(rsqrt_approx_f64(0.25), 2.0);
}

#[test]
fn relu_minnan_round_int_half() {
    assert_eq!(relu_f32(-1.0).to_bits(), 0);
    assert_eq!(relu_f32(-0.0).to_bits(), 0);
    assert_eq!(relu_f32(2.0), 2.0);
    assert_eq!(relu_f32(f32::from_bits(0xFFC0_0000)).to_bits(), 0x7FFF_FFFF);
    assert_eq!(relu_f16(0xBC00), 0);
    assert_eq!(relu_f16(0x3C00), 0x3C00);
    assert_eq!(relu_f16(0xFE00), 0x7FFF);
    assert_eq!(relu_bf16(0xFFC1), 0x7FFF);
    assert_eq!(relu_bf16(0xBF80), 0);
    assert_eq!(min_nan_f32(f32::NAN, 1.0).to_bits(), 0x7FFF_FFFF);
    assert_eq!(max_nan_f32(1.0, f32::NAN).to_bits(), 0x7FFF_FFFF);
    assert_eq!(max_nan_f32(1.0, 2.0), 2.0);
    // round_int over every f16 and bf16 pattern, all modes, against apfloat.
    for h in 0..=u16::MAX {
        for r in Rnd::ALL {
            let w = Half::from_bits(h as u128).round_to_integral(round_of(r)).value;
            same16(round_int_f16(h, r), w.to_bits() as u16, w.is_nan(), || format!("round_int_f16({h:#x}, {r:?})"));
            let w = BFloat::from_bits(h as u128).round_to_integral(round_of(r)).value;
            same16(round_int_bf16(h, r), w.to_bits() as u16, w.is_nan(), || format!("round_int_bf16({h:#x}, {r:?})"));
        }
    }
}

/// fma/add/mul whose results are subnormal or whose addend is far below (or above) the product:
/// the cases where sticky bits and the subnormal quantum decide the rounding.
#[test]
fn f32_subnormal_and_far_operands_vs_apfloat() {
    let mut rng = Rng(14);
    for i in 0..30_000 {
        let s = |rng: &mut Rng| (rng.next() as u32) & 0x8000_0000;
        // product around 2^-150 .. 2^-120
        let ea = 40 + rng.below(30) as u32;
        let eb = 127 + 127 - 150 + rng.below(30) as u32 - ea + 0;
        let a = s(&mut rng) | (ea << 23) | (rng.next() as u32 & 0x7F_FFFF);
        let b = s(&mut rng) | (eb.min(254) << 23) | (rng.next() as u32 & 0x7F_FFFF);
        let c = match i % 3 {
            0 => s(&mut rng) | (rng.next() as u32 & 0x7F_FFFF), // subnormal
            1 => s(&mut rng) | ((1 + rng.below(254) as u32) << 23) | (rng.next() as u32 & 0x7F_FFFF), // anything
            _ => s(&mut rng) | ((rng.below(3) as u32) << 23) | (rng.below(4) as u32), // tiny
        };
        let (fa, fb, fc) = (f32::from_bits(a), f32::from_bits(b), f32::from_bits(c));
        let (xa, xb, xc) = (Single::from_bits(a as u128), Single::from_bits(b as u128), Single::from_bits(c as u128));
        for r in Rnd::ALL {
            let m = round_of(r);
            same32(fma_f32(fa, fb, fc, r), xa.mul_add_r(xb, xc, m).value.to_bits() as u32, || {
                format!("fma({fa:e}, {fb:e}, {fc:e}, {r:?})")
            });
            same32(mul_f32(fa, fb, r), xa.mul_r(xb, m).value.to_bits() as u32, || {
                format!("mul({fa:e}, {fb:e}, {r:?})")
            });
            same32(add_f32(fa, fc, r), xa.add_r(xc, m).value.to_bits() as u32, || {
                format!("add({fa:e}, {fc:e}, {r:?})")
            });
            same32(div_f32(fc, fb, r), xc.div_r(xb, m).value.to_bits() as u32, || {
                format!("div({fc:e}, {fb:e}, {r:?})")
            });
        }
    }
}
