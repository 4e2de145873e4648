//! The fast CPU kernels against the reference `Linear::forward`: every level this CPU has, random
//! shapes (odd `out`, FP4 `in` a multiple of 32, FP8 / BF16 any `in`), batch 1..=8 (and a chunked
//! batch above 8), sub-ranges of rows, and NaN propagation. Tolerance: 1e-5 · Σ|x·w| per output
//! (the kernels differ from the reference only in the f32 summation order).

use dsv4_engine::cpu_kernels::{fast_linear, fast_linear_with, pool, quantize_activations, Fp4Math, Kernels, Level, ROW_ALIGN};
use dsv4_engine::reference::compute::Compute;
use dsv4_engine::reference::checkpoint::Bytes;
use dsv4_engine::reference::linear::{Linear, Weight};
use dsv4_engine::reference::ActQuant;
use proptest::prelude::*;

/// splitmix64 for test data.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn byte(&mut self) -> u8 {
        self.next() as u8
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    /// Roughly N(0,1) times a random power-of-two-ish magnitude per call site.
    fn f32(&mut self) -> f32 {
        let u = (self.next() >> 40) as f32 / (1u64 << 24) as f32;
        let v = (self.next() >> 40) as f32 / (1u64 << 24) as f32;
        (u + v - 1.0) * 3.0
    }
}

#[derive(Clone, Copy, Debug)]
enum Fmt {
    Fp4,
    Fp8,
    Bf16,
}

/// A random `Linear` of the format; scales are e8m0 codes around 2^0 (normal range), FP8 codes
/// avoid the NaN codes, FP4 codes are all valid.
fn random_linear(fmt: Fmt, out: usize, inp: usize, seed: u64) -> Linear {
    let mut r = Rng(seed);
    let weight = match fmt {
        Fmt::Fp4 => {
            let w: Vec<u8> = (0..out * inp / 2).map(|_| r.byte()).collect();
            let s: Vec<u8> = (0..out * inp / 32).map(|_| 120 + r.below(14) as u8).collect();
            Weight::Fp4 { w: Bytes::from_vec(w), scale: Bytes::from_vec(s) }
        }
        Fmt::Fp8 => {
            let w: Vec<u8> = (0..out * inp)
                .map(|_| {
                    let b = r.byte();
                    if b & 0x7F == 0x7F {
                        b - 1
                    } else {
                        b
                    }
                })
                .collect();
            let s: Vec<u8> = (0..out.div_ceil(128) * inp.div_ceil(128)).map(|_| 115 + r.below(16) as u8).collect();
            Weight::Fp8 { w: Bytes::from_vec(w), scale: Bytes::from_vec(s) }
        }
        Fmt::Bf16 => {
            let w: Vec<u8> = (0..out * inp).flat_map(|_| ((r.f32().to_bits() >> 16) as u16).to_le_bytes()).collect();
            Weight::Bf16(Bytes::from_vec(w))
        }
    };
    Linear { out, inp, weight }
}

fn random_x(m: usize, k: usize, seed: u64) -> Vec<f32> {
    let mut r = Rng(seed ^ 0xABCDEF);
    // 1000: |x| above 256, where the AVX2 FP8 kernel's x · 2^120 would overflow (its fallback)
    let mag = [1e-3f32, 0.1, 1.0, 30.0, 1000.0][r.below(5)];
    (0..m * k).map(|_| r.f32() * mag).collect()
}

/// Checks `fast_linear` at every available level against the reference.
fn check(lin: &Linear, x: &[f32], rows: std::ops::Range<usize>, aq: ActQuant) -> Result<(), TestCaseError> {
    let k = lin.inp;
    let m = x.len() / k;
    let want = lin.forward_rows(x, rows.clone(), aq);
    let xe = if lin.is_quantized() && aq.is_on() { quantize_activations(x, k) } else { x.to_vec() };
    let w = lin.dequantized();
    let n = rows.len();
    for level in Level::available() {
        let got = fast_linear(level, lin, x, rows.clone(), aq);
        prop_assert_eq!(got.len(), want.len());
        for b in 0..m {
            for (j, row) in rows.clone().enumerate() {
                let mag: f32 = (0..k).map(|i| (xe[b * k + i] * w[row * k + i]).abs()).sum();
                let (g, e) = (got[b * n + j], want[b * n + j]);
                prop_assert!(
                    g.is_nan() == e.is_nan(),
                    "{level:?} NaN mismatch at b={b} row={row}: got {g}, want {e}"
                );
                if e.is_infinite() {
                    // an infinite input: the sign of the sum does not depend on the order
                    prop_assert_eq!(g, e, "{:?} b={} row={}", level, b, row);
                } else if !e.is_nan() {
                    let tol = 1e-5 * mag + 1e-30;
                    prop_assert!(
                        (g - e).abs() <= tol,
                        "{level:?} b={b} row={row}: got {g}, want {e}, |diff| {} > tol {tol}",
                        (g - e).abs()
                    );
                }
            }
        }
    }
    Ok(())
}

/// `weight` with one NaN planted at `pos` (modulo its size): an FP4 scale of 0xFF, an FP8 code
/// 0x7F or 0xFF (by the parity of `pos`), a BF16 NaN.
fn poisoned(weight: &Weight, pos: usize) -> Weight {
    match weight {
        Weight::Fp4 { w, scale } => {
            let mut s = scale.to_vec();
            let i = pos % s.len();
            s[i] = 0xFF;
            Weight::Fp4 { w: w.clone(), scale: Bytes::from_vec(s) }
        }
        Weight::Fp8 { w, scale } => {
            let mut v = w.to_vec();
            let i = pos % v.len();
            v[i] = if pos.is_multiple_of(2) { 0x7F } else { 0xFF };
            Weight::Fp8 { w: Bytes::from_vec(v), scale: scale.clone() }
        }
        Weight::Bf16(w) => {
            let mut v = w.to_vec();
            let i = (pos % (v.len() / 2)) * 2;
            v[i..i + 2].copy_from_slice(&0x7FC0u16.to_le_bytes());
            Weight::Bf16(Bytes::from_vec(v))
        }
        Weight::F32(_) => unreachable!("the tests build no F32 weights"),
    }
}

fn fmt_strategy() -> impl Strategy<Value = Fmt> {
    prop_oneof![Just(Fmt::Fp4), Just(Fmt::Fp8), Just(Fmt::Bf16)]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn kernels_match_reference(
        fmt in fmt_strategy(),
        out in 1usize..300,
        inp_units in 1usize..24,
        inp_extra in 0usize..32,
        m in 1usize..=8,
        seed in any::<u64>(),
        aq_on in any::<bool>(),
        sub in any::<(u16, u16)>(),
    ) {
        // FP4: a multiple of 32; FP8 / BF16: any size, tails included, and a multiple of 32
        // half of the time (the AVX2 FP8 kernel of batches 1-2)
        let inp = match fmt { Fmt::Fp4 => inp_units * 32, _ => inp_units * 32 + if seed % 2 == 0 { inp_extra } else { 0 } };
        let lin = random_linear(fmt, out, inp, seed);
        let x = random_x(m, inp, seed);
        let aq = if aq_on { ActQuant::On } else { ActQuant::Off };
        check(&lin, &x, 0..out, aq)?;
        // a sub-range of rows (a group of a grouped projection)
        let (a, b) = ((sub.0 as usize) % out, (sub.1 as usize) % out);
        let (a, b) = (a.min(b), a.max(b) + 1);
        check(&lin, &x, a..b, aq)?;
    }

    #[test]
    fn nan_weights_and_scales_propagate(
        fmt in fmt_strategy(),
        out in 1usize..140,
        inp_units in 1usize..10,
        m in 1usize..=8,
        seed in any::<u64>(),
        pos in any::<usize>(),
    ) {
        let inp = inp_units * 32 + if matches!(fmt, Fmt::Fp4) || seed % 2 == 0 { 0 } else { 7 };
        let mut lin = random_linear(fmt, out, inp, seed);
        lin.weight = poisoned(&lin.weight, pos);
        let x = random_x(m, inp, seed);
        check(&lin, &x, 0..out, ActQuant::On)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// The batched panel paths (AVX-512 BF16: batch >= 8 FP8 / >= 32 FP4, inputs a multiple of
    /// 128; AVX2: batch >= 8 FP8 with inputs a multiple of 32, FP4 above 8 with a multiple of
    /// 32 and BF16 with a multiple of 16;
    /// batches from 4 so that the row kernels below the threshold run too):
    /// odd row counts, sub-ranges that start and end inside a panel or a 128-row scale block,
    /// token counts that split unevenly into micro-kernel chunks, a poisoned weight or scale now
    /// and then.
    #[test]
    fn batched_panels_match_reference(
        fmt in fmt_strategy(),
        out in 1usize..300,
        inp_units in 1usize..9,
        odd in any::<bool>(),
        m in 4usize..=45,
        seed in any::<u64>(),
        sub in any::<(u16, u16)>(),
        poison in prop::option::of(any::<usize>()),
    ) {
        // FP8 / BF16: now and then a size that is a multiple of 32 / 16 only (the AVX2 panels)
        let (m, inp) = match fmt {
            Fmt::Fp8 => (m, inp_units * 128 - if odd { 96 } else { 0 }),
            Fmt::Bf16 => (m, inp_units * 128 - if odd { 112 } else { 0 }),
            // FP4: the AVX-512 panel's shapes (32+ tokens, a multiple of 128 up to 2048) or a
            // multiple of 32 only at any batch (the AVX2 panel above 8, the row kernels below)
            Fmt::Fp4 if odd => (m, inp_units * 128 - 96),
            Fmt::Fp4 => (m.max(32), inp_units.min(8) * 128),
        };
        let mut lin = random_linear(fmt, out, inp, seed);
        if let Some(pos) = poison {
            lin.weight = poisoned(&lin.weight, pos);
        }
        let x = random_x(m, inp, seed);
        check(&lin, &x, 0..out, ActQuant::On)?;
        let (a, b) = ((sub.0 as usize) % out, (sub.1 as usize) % out);
        check(&lin, &x, a.min(b)..a.max(b) + 1, ActQuant::On)?;
    }
}

#[test]
fn real_shapes_and_big_batches() {
    // w2-like and wq_b-like at reduced out, batches 1-64: the row kernels (chunks of 8 over row
    // tiles: 11 = 8 + 3) and, with AVX-512 BF16, the panel kernel (FP8 from 8, FP4 from 32 at 2048
    // inputs); both aq modes (Off: x not bf16, so the row kernels).
    for (fmt, out, inp) in [(Fmt::Fp4, 257, 2048), (Fmt::Fp8, 300, 1024), (Fmt::Bf16, 129, 4096), (Fmt::Fp4, 64, 4096)] {
        for m in [1, 8, 11, 32, 64] {
            let lin = random_linear(fmt, out, inp, 7 + m as u64);
            let x = random_x(m, inp, 3 + out as u64);
            for aq in [ActQuant::On, ActQuant::Off] {
                check(&lin, &x, 0..out, aq).unwrap();
            }
        }
    }
}

#[test]
fn f32_weights_fall_back_to_reference() {
    let lin = Linear::f32(5, 7, (0..35).map(|i| i as f32 * 0.25 - 3.0).collect());
    let x: Vec<f32> = (0..14).map(|i| i as f32 - 6.5).collect();
    for level in Level::available() {
        assert_eq!(fast_linear(level, &lin, &x, 0..5, ActQuant::On), lin.forward(&x, ActQuant::On));
    }
}

#[test]
fn levels_detected() {
    let avail = Level::available();
    assert_eq!(avail[0], Level::Scalar);
    assert!(avail.contains(&Level::detect()));
    eprintln!("available levels: {avail:?}, detected {:?}", Level::detect());
}

#[test]
fn fp8_huge_scales_take_the_exact_path() {
    // e8m0 codes >= 247: 2^8·s would overflow, the batched kernel must not fold it.
    // inp 256 / 384 at batch 8+: the FP8 panel path (its chunk scale multiplies the sums)
    // (1-2, 256): the AVX2 batch-1-2 kernel declines (x times 2^(code - 7) overflows)
    for (m, inp) in [(1, 300), (3, 300), (8, 300), (1, 256), (2, 256), (8, 256), (12, 384)] {
        let out = 130;
        let mut lin = random_linear(Fmt::Fp8, out, inp, 99);
        if let Weight::Fp8 { w, scale } = &lin.weight {
            // weights below 2 in magnitude (exponent field <= 7) so the reference stays finite
            let s: Vec<u8> = scale.iter().enumerate().map(|(i, _)| [250u8, 120, 252, 247][i % 4]).collect();
            let w: Vec<u8> = w.iter().map(|b| b & 0xBF).collect();
            lin.weight = Weight::Fp8 { w: Bytes::from_vec(w), scale: Bytes::from_vec(s) };
        }
        // exactly bf16 (the fast paths' condition), with ActQuant::Off the reference's x too
        let x: Vec<f32> = random_x(m, inp, 5).iter().map(|v| f32::from_bits((v * 1e-30).to_bits() & 0xFFFF_0000)).collect();
        check(&lin, &x, 0..out, ActQuant::Off).unwrap();
    }
}

#[test]
fn fp4_extreme_scales_take_the_unfolded_path() {
    // e8m0 codes outside 2..=252 cannot be folded into the bf16 table (the scaled values would
    // leave bf16's normal range): the BF16 kernel scales those blocks' partial sums instead.
    // Mixed with ordinary codes, in both positions of a block pair, odd block counts included.
    // Only the low side (codes 0, 1): above 252 the reference's dequantised weights overflow to
    // inf for e2m1 magnitudes >= 4, a case no checkpoint has.
    for inp in [64usize, 96, 256] {
        for codes in [[0u8, 127], [1, 252], [127, 1], [2, 0], [252, 127]] {
            let mut lin = random_linear(Fmt::Fp4, 37, inp, inp as u64 + codes[0] as u64);
            if let Weight::Fp4 { w, scale } = &lin.weight {
                let s: Vec<u8> = (0..scale.len()).map(|i| codes[(i / 3) % 2]).collect();
                lin.weight = Weight::Fp4 { w: w.clone(), scale: Bytes::from_vec(s) };
            }
            // 33 at inp 256: the FP4 panel path (its per-block f32 scales take any code)
            for m in [1, 3, 9, 33] {
                // |x| <= 2^-9 keeps the sums finite at 2^125 (code 252): 256 · 6 · 2^125 · 2^-9 < 2^128
                let x = random_x(m, inp, 5);
                let top = x.iter().fold(0.0f32, |a, v| a.max(v.abs()));
                let x: Vec<f32> = x.iter().map(|v| v / top / 512.0).collect();
                check(&lin, &x, 0..37, ActQuant::On).unwrap();
                check(&lin, &x, 3..30, ActQuant::Off).unwrap();
            }
        }
    }
}

#[test]
fn fp8_nan_code_anywhere_in_a_row_poisons_it() {
    // 300 inputs: blocks of 128, 128 and 44 (a 32-byte step, an 8-weight group and 4 scalar
    // weights): each position of the short block and a few of the full ones, both NaN codes, on
    // the batch-1-2 kernels (10 = 8 + 2) and the 8-token one. 352 = 5 x 64 + 32: the AVX2
    // batch-1-2 kernel's 64-byte steps and its last 32-byte group.
    for inp in [300, 352] {
        let base = random_linear(Fmt::Fp8, 3, inp, 17);
        for pos in (0..128).step_by(37).chain(256..inp) {
            // row 1, input pos
            let lin = Linear { out: 3, inp, weight: poisoned(&base.weight, inp + pos) };
            for m in [1, 2, 8, 10] {
                let x = random_x(m, inp, pos as u64);
                let y = fast_linear(Level::detect(), &lin, &x, 0..3, ActQuant::On);
                for b in 0..m {
                    assert!(y[b * 3 + 1].is_nan(), "pos {pos} b {b}: row 1 not NaN");
                    assert!(!y[b * 3].is_nan() && !y[b * 3 + 2].is_nan(), "pos {pos} b {b}: NaN leaked");
                }
                check(&lin, &x, 0..3, ActQuant::On).unwrap();
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// FP4 on FP8-quantised activations (the AVX2 integer-digit kernel, one layout per chunk
    /// of 8 tokens: 11 = 8 + 3): blocks with values far below their largest (remainders added
    /// in f32 after each row), from none to more than the kernel takes (it declines: the f32
    /// kernels), zero blocks, odd block counts, sub-ranges of rows, now and then a NaN scale
    /// or a NaN / infinite input.
    #[test]
    fn fp4_quantised_with_remainders(
        out in 1usize..90,
        kb in 1usize..70,
        m in 1usize..=11,
        seed in any::<u64>(),
        tiny in prop::collection::vec((any::<usize>(), 0usize..5), 0..24),
        poison in prop::option::of(any::<usize>()),
        bad_x in prop::option::of((any::<usize>(), any::<bool>())),
        sub in any::<(u16, u16)>(),
        sparse in any::<bool>(),
    ) {
        let inp = kb * 32;
        let mut lin = random_linear(Fmt::Fp4, out, inp, seed);
        if let Some(pos) = poison {
            lin.weight = poisoned(&lin.weight, pos);
        }
        let mut x = quantize_activations(&random_x(m, inp, seed), inp);
        if sparse {
            // only the planted blocks: their remainders are then a visible part of each sum
            let keep: Vec<usize> = tiny.iter().map(|&(pos, _)| pos % x.len() / 32).collect();
            for (blk, v) in x.chunks_mut(32).enumerate() {
                if !keep.contains(&blk) {
                    v.fill(0.0);
                }
            }
        }
        for &(pos, kind) in &tiny {
            let i = pos % x.len();
            let blk = &mut x[i / 32 * 32..][..32];
            let top = blk.iter().fold(0.0f32, |a, v| a.max(v.abs()));
            if kind == 4 {
                // one large value over 31 that are all remainder: their sum is far above the
                // tolerance, so a lost remainder shows
                for (j, v) in blk.iter_mut().enumerate().skip(1) {
                    *v = top * 2f32.powi(-16) * (1.0 + j as f32 / 32.0) * if (pos >> j) & 1 == 0 { 1.0 } else { -1.0 };
                }
                continue;
            }
            blk[i % 32] = match kind {
                0 => top * 2f32.powi(-13) * 1.25, // below the block's digit unit
                1 => -top * 2f32.powi(-20),
                2 => 0.0,
                _ => 1e-35, // alone in a zero block: a block too small for digits
            };
        }
        if let Some((pos, nan)) = bad_x {
            let i = pos % x.len();
            x[i] = if nan { f32::NAN } else { f32::INFINITY };
        }
        // ActQuant::Off: the reference multiplies this very x
        check(&lin, &x, 0..out, ActQuant::Off)?;
        let (a, b) = ((sub.0 as usize) % out, (sub.1 as usize) % out);
        check(&lin, &x, a.min(b)..a.max(b) + 1, ActQuant::Off)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    /// One parallel phase (`Kernels::forward_many`: the rows of all jobs cut into shares of equal
    /// work, rows times the job's tokens) gives every job bit for bit what its own call gives:
    /// jobs of mixed formats, shapes and token counts (row kernels and panels side by side).
    #[test]
    fn forward_many_matches_each_job_alone(
        specs in prop::collection::vec((fmt_strategy(), 1usize..400, 1usize..5, 1usize..=20), 2..7),
        seed in any::<u64>(),
    ) {
        let lins: Vec<Linear> = specs.iter().enumerate().map(|(i, &(fmt, out, units, _))| random_linear(fmt, out, units * 128, seed ^ i as u64)).collect();
        let xs: Vec<Vec<f32>> = specs.iter().zip(&lins).enumerate().map(|(i, (&(.., m), l))| random_x(m, l.inp, seed.wrapping_add(i as u64))).collect();
        let jobs: Vec<(&Linear, &[f32])> = lins.iter().zip(&xs).map(|(l, x)| (l, x.as_slice())).collect();
        let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
        for level in Level::available() {
            let many = Kernels { level, fp4: Fp4Math::Exact }.forward_many(&jobs, ActQuant::On);
            prop_assert_eq!(many.len(), jobs.len());
            for (j, (l, x)) in jobs.iter().enumerate() {
                let alone = fast_linear(level, l, x, 0..l.out, ActQuant::On);
                prop_assert_eq!(bits(&many[j]), bits(&alone), "{:?} job {} ({} x {}, {} tokens)", level, j, l.out, l.inp, x.len() / l.inp);
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// A row's bits do not depend on how the rows are cut (so not on the thread count, nor on
    /// `forward_many`'s shares): the rows computed in pieces that start at multiples of
    /// `ROW_ALIGN`, each on the calling thread, equal the whole call split over the pool,
    /// at every level, FP4 arithmetic and batch size (row kernels, tiles and panels).
    #[test]
    fn rows_cut_at_the_alignment_give_the_same_bits(
        fmt in fmt_strategy(),
        out in 1usize..700,
        units in 1usize..5,
        m in 1usize..=20,
        cuts in prop::collection::vec(0usize..8, 0..4),
        seed in any::<u64>(),
    ) {
        let lin = random_linear(fmt, out, units * 128, seed);
        let x = random_x(m, lin.inp, seed.wrapping_add(1));
        let mut at: Vec<usize> = cuts.iter().map(|c| (c * ROW_ALIGN).min(out)).chain([0, out]).collect();
        at.sort_unstable();
        at.dedup();
        let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
        for level in Level::available() {
            for fp4 in [Fp4Math::Exact, Fp4Math::Int8] {
                let whole = fast_linear_with(level, fp4, &lin, &x, 0..out, ActQuant::On);
                let mut cut = vec![0.0f32; m * out];
                for w in at.windows(2) {
                    let y = pool::serial(|| fast_linear_with(level, fp4, &lin, &x, w[0]..w[1], ActQuant::On));
                    for (dst, src) in cut.chunks_mut(out).zip(y.chunks(w[1] - w[0])) {
                        dst[w[0]..w[1]].copy_from_slice(src);
                    }
                }
                prop_assert_eq!(bits(&cut), bits(&whole), "{:?} {:?} {:?} {} x {}, {} tokens, cuts {:?}", level, fp4, fmt, out, lin.inp, m, at);
            }
        }
    }
}
