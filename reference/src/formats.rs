//! The number formats of the checkpoint and of the activation-quantisation simulation
//! (`../shared/spec/model.md`, "Number formats"): e4m3 (FP8), e8m0 (scale), e2m1 (FP4), bf16.

/// Largest finite e4m3 magnitude.
pub const E4M3_MAX: f32 = 448.0;
/// Largest e2m1 magnitude.
pub const E2M1_MAX: f32 = 6.0;

/// The eight non-negative e2m1 values, indexed by the 3 low bits of a code.
pub const E2M1_VALUES: [f32; 8] = [0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0];

/// Decode an e4m3 byte (bias 7, no infinities; 0x7F/0xFF are NaN).
pub fn e4m3_to_f32(b: u8) -> f32 {
    let sign = if b & 0x80 != 0 { -1.0 } else { 1.0 };
    let exp = ((b >> 3) & 0xF) as i32;
    let man = (b & 0x7) as f32;
    if exp == 0xF && b & 0x7 == 0x7 {
        return f32::NAN;
    }
    let mag = if exp == 0 { man / 8.0 * 2f32.powi(-6) } else { (1.0 + man / 8.0) * 2f32.powi(exp - 7) };
    sign * mag
}

/// Round an f32 to the nearest e4m3 value (ties to even), saturating to ±448; NaN stays NaN.
/// Returns the code.
pub fn f32_to_e4m3(x: f32) -> u8 {
    if x.is_nan() {
        return 0x7F;
    }
    let sign: u8 = if x.is_sign_negative() { 0x80 } else { 0 };
    let a = x.abs().min(E4M3_MAX);
    // Every e4m3 value is k * 2^(e-3) with integer k; find the binade, then round k.
    // Subnormals share the quantum of the lowest binade: 2^-9.
    let e = if a < 2f32.powi(-6) { -6 } else { exponent(a) }.min(8);
    let quantum = 2f32.powi(e - 3);
    let k = round_half_even(a / quantum); // exact: a / 2^n is exact in f32
    let v = k * quantum;
    sign | encode_e4m3_exact(v)
}

/// Encode a non-negative value that is exactly representable in e4m3.
fn encode_e4m3_exact(v: f32) -> u8 {
    if v == 0.0 {
        return 0;
    }
    if v < 2f32.powi(-6) {
        return (v / 2f32.powi(-9)) as u8; // subnormal: exponent field 0
    }
    let e = exponent(v);
    let man = ((v / 2f32.powi(e) - 1.0) * 8.0) as u8;
    (((e + 7) as u8) << 3) | man
}

/// e4m3 rounding as a value: `e4m3_to_f32(f32_to_e4m3(x))`.
pub fn round_e4m3(x: f32) -> f32 {
    e4m3_to_f32(f32_to_e4m3(x))
}

/// Decode an e8m0 scale byte: 2^(e-127); 0xFF is NaN.
pub fn e8m0_to_f32(b: u8) -> f32 {
    if b == 0xFF {
        return f32::NAN;
    }
    // 2^-127 is subnormal in f32; powi handles it exactly.
    2f32.powi(b as i32 - 127)
}

/// Decode an e2m1 nibble (bit 3 = sign).
pub fn e2m1_to_f32(code: u8) -> f32 {
    let v = E2M1_VALUES[(code & 0x7) as usize];
    if code & 0x8 != 0 {
        -v
    } else {
        v
    }
}

/// Round an f32 (already clamped to ±6) to the nearest e2m1 code, ties to the even code.
pub fn f32_to_e2m1(x: f32) -> u8 {
    let sign: u8 = if x.is_sign_negative() { 0x8 } else { 0 };
    let a = x.abs().min(E2M1_MAX);
    let mut best = 0u8;
    for code in 1..8u8 {
        let (db, dc) = ((a - E2M1_VALUES[best as usize]).abs(), (a - E2M1_VALUES[code as usize]).abs());
        // The table is increasing, so an exact tie is between neighbours best = code-1 and code.
        if dc < db || (dc == db && code % 2 == 0) {
            best = code;
        }
    }
    sign | best // a negative value that rounds to zero keeps its sign (code 8 = -0)
}

/// Unpack FP4 bytes: low nibble is the even element.
pub fn unpack_e2m1(bytes: &[u8], out: &mut [f32]) {
    debug_assert_eq!(out.len(), bytes.len() * 2);
    for (i, &b) in bytes.iter().enumerate() {
        out[2 * i] = e2m1_to_f32(b & 0xF);
        out[2 * i + 1] = e2m1_to_f32(b >> 4);
    }
}

pub fn bf16_to_f32(bits: u16) -> f32 {
    f32::from_bits((bits as u32) << 16)
}

pub fn f16_to_f32(bits: u16) -> f32 {
    half::f16::from_bits(bits).to_f32()
}

/// `ceil_pow2(v)`: `2^(E + (M != 0))` from the f32 bits of v, the smallest power of two >= v
/// for normal positive v (the official kernels' ue8m0 scale rounding).
pub fn ceil_pow2(v: f32) -> f32 {
    let bits = v.to_bits();
    let e = ((bits >> 23) & 0xFF) as i32 - 127;
    let m = bits & 0x7F_FFFF;
    2f32.powi(e + (m != 0) as i32)
}

/// Unbiased exponent of a normal positive f32.
fn exponent(a: f32) -> i32 {
    ((a.to_bits() >> 23) & 0xFF) as i32 - 127
}

fn round_half_even(x: f32) -> f32 {
    let r = x.round(); // half away from zero
    if (x - x.trunc()).abs() == 0.5 && r % 2.0 != 0.0 {
        r - x.signum()
    } else {
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn e4m3_every_code_round_trips() {
        for b in 0..=255u8 {
            let v = e4m3_to_f32(b);
            if v.is_nan() {
                assert!(b & 0x7F == 0x7F);
                continue;
            }
            let back = f32_to_e4m3(v);
            // -0 encodes as 0x80; both zeros decode to 0.
            assert_eq!(e4m3_to_f32(back), v, "code {b:#x}");
            if v != 0.0 {
                assert_eq!(back, b, "code {b:#x} value {v}");
            }
        }
        assert_eq!(e4m3_to_f32(0x7E), 448.0);
        assert_eq!(e4m3_to_f32(0x01), 2f32.powi(-9));
    }

    #[test]
    fn e4m3_rounds_to_nearest_even_and_saturates() {
        // Between 1.0 (0x38) and 1.125 (0x39): midpoint goes to the even mantissa 1.0.
        assert_eq!(round_e4m3(1.0625), 1.0);
        // Between 1.125 and 1.25: midpoint 1.1875 goes to 1.25 (mantissa 2, even).
        assert_eq!(round_e4m3(1.1875), 1.25);
        assert_eq!(round_e4m3(1e6), 448.0);
        assert_eq!(round_e4m3(-1e6), -448.0);
        // Subnormal midpoint 1.5 * 2^-9 goes to 2 * 2^-9.
        assert_eq!(round_e4m3(1.5 * 2f32.powi(-9)), 2.0 * 2f32.powi(-9));
        assert_eq!(round_e4m3(0.5 * 2f32.powi(-9)), 0.0);
    }

    #[test]
    fn e2m1_ties_go_to_the_even_code() {
        let cases = [(0.25, 0.0), (0.75, 1.0), (1.25, 1.0), (1.75, 2.0), (2.5, 2.0), (3.5, 4.0), (5.0, 4.0), (6.0, 6.0)];
        for (x, want) in cases {
            assert_eq!(e2m1_to_f32(f32_to_e2m1(x)), want, "{x}");
            assert_eq!(e2m1_to_f32(f32_to_e2m1(-x)), -want, "-{x}");
        }
        for code in 0..16u8 {
            let v = e2m1_to_f32(code);
            assert_eq!(e2m1_to_f32(f32_to_e2m1(v)), v);
        }
    }

    #[test]
    fn e8m0_and_ceil_pow2() {
        assert_eq!(e8m0_to_f32(127), 1.0);
        assert_eq!(e8m0_to_f32(0), 2f32.powi(-127));
        assert!(e8m0_to_f32(255).is_nan());
        assert_eq!(ceil_pow2(1.0), 1.0);
        assert_eq!(ceil_pow2(1.0001), 2.0);
        assert_eq!(ceil_pow2(0.3), 0.5);
    }
}
