//! `dsv4_emu::tensor`: fragment layouts against tables transcribed from the PTX ISA's
//! "Matrix fragments for mma.m16n8k*" descriptions, full mma against a naive matmul, and
//! ldmatrix/stmatrix round trips, the `.trans` property and agreement with the mma layouts.

use dsv4_emu::num;
use dsv4_emu::tensor::*;
use std::collections::HashMap;

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

fn mods(s: &str) -> Vec<String> {
    s.split('.').filter(|x| !x.is_empty()).map(String::from).collect()
}

fn kind(s: &str) -> MmaKind {
    MmaKind::from_mods(&mods(s)).unwrap_or_else(|e| panic!("{s}: {e}"))
}

// ------------------------------------------------------------------ tables from the ISA text
//
// Each table lists, per fragment element a_i (b_i, c_i) in register order, the offset the ISA
// gives: A/C: (row - groupID, col - threadID_in_group * W); B: (k - threadID_in_group * W),
// with n = groupID. W is 2 for 16-bit types, 4 for 8-bit, 1 for tf32.

/// m16n8k16 .f16/.bf16 A: "a0,a1: row groupID, col tig*2+(i&1); a2,a3: row groupID+8;
/// a4,a5: row groupID, col +8; a6,a7: row groupID+8, col +8".
const A_K16_B16: [(u32, u32); 8] = [(0, 0), (0, 1), (8, 0), (8, 1), (0, 8), (0, 9), (8, 8), (8, 9)];
/// m16n8k8 .f16/.bf16 A: a0,a1 row groupID; a2,a3 row groupID+8.
const A_K8_B16: [(u32, u32); 4] = [(0, 0), (0, 1), (8, 0), (8, 1)];
/// m16n8k32 8-bit A: a0..a3 row groupID cols tig*4+{0..3}; a4..a7 row +8; a8..a11 row groupID,
/// cols +16; a12..a15 row +8, cols +16.
const A_K32_B8: [(u32, u32); 16] = [
    (0, 0),
    (0, 1),
    (0, 2),
    (0, 3),
    (8, 0),
    (8, 1),
    (8, 2),
    (8, 3),
    (0, 16),
    (0, 17),
    (0, 18),
    (0, 19),
    (8, 16),
    (8, 17),
    (8, 18),
    (8, 19),
];
/// m16n8k16 8-bit A: a0..a3 row groupID; a4..a7 row groupID+8.
const A_K16_B8: [(u32, u32); 8] = [(0, 0), (0, 1), (0, 2), (0, 3), (8, 0), (8, 1), (8, 2), (8, 3)];
/// m16n8k8 .tf32 A: a0 (g, t); a1 (g+8, t); a2 (g, t+4); a3 (g+8, t+4).
const A_K8_TF32: [(u32, u32); 4] = [(0, 0), (8, 0), (0, 4), (8, 4)];
/// m16n8k4 .tf32 A: a0 (g, t); a1 (g+8, t).
const A_K4_TF32: [(u32, u32); 2] = [(0, 0), (8, 0)];

/// m16n8k16 16-bit B: b0,b1 k = tig*2+{0,1}; b2,b3 k +8.
const B_K16_B16: [u32; 4] = [0, 1, 8, 9];
const B_K8_B16: [u32; 2] = [0, 1];
/// m16n8k32 8-bit B: b0..b3 k = tig*4+{0..3}; b4..b7 k +16.
const B_K32_B8: [u32; 8] = [0, 1, 2, 3, 16, 17, 18, 19];
const B_K16_B8: [u32; 4] = [0, 1, 2, 3];
/// m16n8k8 .tf32 B: b0 k = t; b1 k = t+4.
const B_K8_TF32: [u32; 2] = [0, 4];
const B_K4_TF32: [u32; 1] = [0];

/// C/D (all m16n8): c0,c1 row groupID cols tig*2+{0,1}; c2,c3 row groupID+8.
const C_M16N8: [(u32, u32); 4] = [(0, 0), (0, 1), (8, 0), (8, 1)];

/// The ISA figure for m16n8k16 .f16 A, rows 0 and 8 and 15, as (lane, element) per column.
const FIG_A_K16_ROW0: [(u32, u32); 16] = [
    (0, 0),
    (0, 1),
    (1, 0),
    (1, 1),
    (2, 0),
    (2, 1),
    (3, 0),
    (3, 1),
    (0, 4),
    (0, 5),
    (1, 4),
    (1, 5),
    (2, 4),
    (2, 5),
    (3, 4),
    (3, 5),
];
const FIG_A_K16_ROW8: [(u32, u32); 16] = [
    (0, 2),
    (0, 3),
    (1, 2),
    (1, 3),
    (2, 2),
    (2, 3),
    (3, 2),
    (3, 3),
    (0, 6),
    (0, 7),
    (1, 6),
    (1, 7),
    (2, 6),
    (2, 7),
    (3, 6),
    (3, 7),
];
const FIG_A_K16_ROW15: [(u32, u32); 16] = [
    (28, 2),
    (28, 3),
    (29, 2),
    (29, 3),
    (30, 2),
    (30, 3),
    (31, 2),
    (31, 3),
    (28, 6),
    (28, 7),
    (29, 6),
    (29, 7),
    (30, 6),
    (30, 7),
    (31, 6),
    (31, 7),
];
/// The ISA figure for the m16n8 C/D fragment, row 9: (lane, element) per column.
const FIG_C_ROW9: [(u32, u32); 8] = [(4, 2), (4, 3), (5, 2), (5, 3), (6, 2), (6, 3), (7, 2), (7, 3)];

fn a_table(k: &MmaKind) -> (Vec<(u32, u32)>, u32) {
    match (k.k, k.a.bits()) {
        (16, 16) => (A_K16_B16.to_vec(), 2),
        (8, 16) => (A_K8_B16.to_vec(), 2),
        (32, 8) => (A_K32_B8.to_vec(), 4),
        (16, 8) => (A_K16_B8.to_vec(), 4),
        (8, 32) => (A_K8_TF32.to_vec(), 1),
        (4, 32) => (A_K4_TF32.to_vec(), 1),
        _ => unreachable!(),
    }
}
fn b_table(k: &MmaKind) -> (Vec<u32>, u32) {
    match (k.k, k.b.bits()) {
        (16, 16) => (B_K16_B16.to_vec(), 2),
        (8, 16) => (B_K8_B16.to_vec(), 2),
        (32, 8) => (B_K32_B8.to_vec(), 4),
        (16, 8) => (B_K16_B8.to_vec(), 4),
        (8, 32) => (B_K8_TF32.to_vec(), 1),
        (4, 32) => (B_K4_TF32.to_vec(), 1),
        _ => unreachable!(),
    }
}

const KINDS: &[&str] = &[
    "sync.aligned.m16n8k16.row.col.f32.f16.f16.f32",
    "sync.aligned.m16n8k16.row.col.f16.f16.f16.f16",
    "sync.aligned.m16n8k16.row.col.f32.f16.f16.f16",
    "sync.aligned.m16n8k16.row.col.f16.f16.f16.f32",
    "sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32",
    "sync.aligned.m16n8k8.row.col.f32.f16.f16.f32",
    "sync.aligned.m16n8k8.row.col.f32.bf16.bf16.f32",
    "sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32",
    "sync.aligned.m16n8k4.row.col.f32.tf32.tf32.f32",
    "sync.aligned.m16n8k32.row.col.f32.e4m3.e4m3.f32",
    "sync.aligned.m16n8k32.row.col.f32.e5m2.e4m3.f32",
    "sync.aligned.m16n8k32.row.col.f32.e4m3.e5m2.f32",
    "sync.aligned.m16n8k32.row.col.f16.e5m2.e5m2.f16",
    "sync.aligned.m16n8k16.row.col.f32.e4m3.e4m3.f32",
    "sync.aligned.m16n8k32.row.col.s32.s8.s8.s32",
    "sync.aligned.m16n8k32.row.col.s32.u8.s8.s32",
    "sync.aligned.m16n8k32.row.col.s32.s8.u8.s32",
    "sync.aligned.m16n8k32.row.col.s32.u8.u8.s32",
    "sync.aligned.m16n8k16.row.col.s32.s8.s8.s32",
];

#[test]
fn layouts_match_isa_tables() {
    for s in KINDS {
        let k = kind(s);
        let (at, aw) = a_table(&k);
        let (bt, bw) = b_table(&k);
        assert_eq!(at.len() as u32, k.m * k.k / 32, "{s}");
        assert_eq!(bt.len() as u32, k.k * k.n / 32, "{s}");
        let mut seen_a = vec![false; (k.m * k.k) as usize];
        let mut seen_b = vec![false; (k.k * k.n) as usize];
        for lane in 0..32 {
            let (g, t) = (lane / 4, lane % 4);
            for (i, &(dr, dc)) in at.iter().enumerate() {
                let want = (g + dr, t * aw + dc);
                assert_eq!(a_coord(&k, lane, i as u32), want, "{s} A lane {lane} a{i}");
                let idx = (want.0 * k.k + want.1) as usize;
                assert!(!seen_a[idx]);
                seen_a[idx] = true;
            }
            for (i, &dk) in bt.iter().enumerate() {
                let want = (t * bw + dk, g);
                assert_eq!(b_coord(&k, lane, i as u32), want, "{s} B lane {lane} b{i}");
                let idx = (want.0 * k.n + want.1) as usize;
                assert!(!seen_b[idx]);
                seen_b[idx] = true;
            }
            for (i, &(dr, dc)) in C_M16N8.iter().enumerate() {
                assert_eq!(c_coord(lane, i as u32), (g + dr, t * 2 + dc), "C lane {lane} c{i}");
            }
        }
        assert!(seen_a.iter().all(|&x| x) && seen_b.iter().all(|&x| x), "{s}: layout is a bijection");
    }
    // The literal figure rows.
    let k = kind(KINDS[0]);
    for (row, fig) in [(0u32, &FIG_A_K16_ROW0), (8, &FIG_A_K16_ROW8), (15, &FIG_A_K16_ROW15)] {
        for (col, &(lane, i)) in fig.iter().enumerate() {
            assert_eq!(a_coord(&k, lane, i), (row, col as u32), "figure A row {row} col {col}");
        }
    }
    for (col, &(lane, i)) in FIG_C_ROW9.iter().enumerate() {
        assert_eq!(c_coord(lane, i), (9, col as u32));
    }
}

#[test]
fn from_mods_regs_flops() {
    type Regs = (usize, usize, usize, usize);
    let cases: &[(&str, Regs)] = &[
        ("sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32", (4, 2, 4, 4)),
        ("sync.aligned.m16n8k16.row.col.f16.f16.f16.f16", (4, 2, 2, 2)),
        ("sync.aligned.m16n8k16.row.col.f32.f16.f16.f16", (4, 2, 2, 4)),
        ("sync.aligned.m16n8k8.row.col.f32.f16.f16.f32", (2, 1, 4, 4)),
        ("sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32", (4, 2, 4, 4)),
        ("sync.aligned.m16n8k4.row.col.f32.tf32.tf32.f32", (2, 1, 4, 4)),
        ("sync.aligned.m16n8k32.row.col.f32.e4m3.e4m3.f32", (4, 2, 4, 4)),
        ("sync.aligned.m16n8k32.row.col.f16.e4m3.e4m3.f16", (4, 2, 2, 2)),
        ("sync.aligned.m16n8k32.row.col.s32.s8.s8.s32", (4, 2, 4, 4)),
        ("sync.aligned.m16n8k16.row.col.s32.u8.u8.s32", (2, 1, 4, 4)),
    ];
    for &(s, regs) in cases {
        let k = kind(s);
        assert_eq!(k.regs(), regs, "{s}");
        assert_eq!(k.flops(), 2 * 16 * 8 * k.k as u64);
    }
    let k = kind("sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32");
    assert_eq!(k, MmaKind { m: 16, n: 8, k: 16, a: Elem::Bf16, b: Elem::Bf16, c: Elem::F32, d: Elem::F32 });
    assert_eq!(k.flops(), 4096);
    for bad in [
        "sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f16", // bf16 needs f32 accumulate
        "sync.aligned.m16n8k16.row.col.f32.f16.bf16.f32",
        "sync.aligned.m16n8k16.col.row.f32.f16.f16.f32",
        "sync.aligned.m16n8k16.row.row.f32.f16.f16.f32",
        "aligned.m16n8k16.row.col.f32.f16.f16.f32",
        "sync.aligned.m8n8k4.row.col.f32.f16.f16.f32",
        "sync.aligned.m16n8k64.row.col.f32.e4m3.e4m3.f32",
        "sync.aligned.m16n8k32.row.col.satfinite.s32.s8.s8.s32",
        "sync.aligned.m16n8k16.row.col.f32.f16.f16",
        "sync.aligned.m16n8k16.row.col.f32.f16.f16.f32.f32",
        "sync.aligned.m16n8k16.row.col.f32.f64.f64.f32",
        "sync.aligned.m16n8k16.row.col.f32.e4m3.e4m3.f32.x",
    ] {
        assert!(MmaKind::from_mods(&mods(bad)).is_err(), "{bad} should be rejected");
    }
}

// ------------------------------------------------------------------ mma against a naive matmul

/// Random raw element bits of type `e` whose values make every dot product exact in f32/f16
/// when `exact` (few mantissa bits, small exponent range).
fn rand_elem(rng: &mut Rng, e: Elem, exact: bool) -> u32 {
    let small = |rng: &mut Rng| (rng.below(15) as f32 - 7.0) / 4.0; // multiples of 1/4 in [-1.75, 1.75]
    match e {
        Elem::F16 => {
            if exact {
                half::f16::from_f32(small(rng)).to_bits() as u32
            } else {
                (rng.next() as u16 & 0xBBFF) as u32
            } // finite
        }
        Elem::Bf16 => {
            if exact {
                half::bf16::from_f32(small(rng)).to_bits() as u32
            } else {
                let v = rng.next() as u16;
                (v & 0x807F) as u32 | ((0x3C + rng.below(8) as u32) << 7)
            }
        }
        Elem::Tf32 => {
            let v = if exact {
                small(rng).to_bits()
            } else {
                (rng.next() as u32 & 0x807F_FFFF) | ((120 + rng.below(16) as u32) << 23)
            };
            // low 13 bits are garbage the hardware ignores
            v | (rng.next() as u32 & 0x1FFF)
        }
        Elem::E4m3 => {
            let b = rng.next() as u8;
            if exact {
                num::f32_to_e4m3(small(rng), true) as u32
            } else if b & 0x7F == 0x7F {
                0x3C
            } else {
                b as u32
            }
        }
        Elem::E5m2 => {
            if exact {
                num::f32_to_e5m2(small(rng), true) as u32
            } else {
                (rng.next() as u8 & 0xBB) as u32
            }
        }
        Elem::S8 | Elem::U8 => rng.next() as u8 as u32,
        Elem::F32 => {
            if exact {
                (small(rng) * 8.0).to_bits()
            } else {
                ((rng.next() as f32 / u64::MAX as f32) - 0.5).to_bits()
            }
        }
        Elem::S32 => rng.next() as u32,
    }
}

/// Value of raw element bits (independent decoders: half, float8, plain casts).
fn elem_value(e: Elem, raw: u32) -> f64 {
    match e {
        Elem::F16 => half::f16::from_bits(raw as u16).to_f64(),
        Elem::Bf16 => half::bf16::from_bits(raw as u16).to_f64(),
        Elem::Tf32 => f32::from_bits(raw & 0xFFFF_E000) as f64,
        Elem::E4m3 => float8::F8E4M3::from_bits(raw as u8).to_f64(),
        Elem::E5m2 => float8::F8E5M2::from_bits(raw as u8).to_f64(),
        Elem::S8 => raw as u8 as i8 as f64,
        Elem::U8 => raw as u8 as f64,
        Elem::F32 => f32::from_bits(raw) as f64,
        Elem::S32 => raw as i32 as f64,
    }
}

fn width(e: Elem) -> u32 {
    match e {
        Elem::F16 | Elem::Bf16 => 16,
        Elem::E4m3 | Elem::E5m2 | Elem::S8 | Elem::U8 => 8,
        _ => 32,
    }
}

/// Packs element `i` of a lane's fragment into its register (element i lives in register
/// i / (32/w), at bit (i % (32/w)) * w).
fn put(regs: &mut [u32], nregs: usize, lane: u32, i: usize, w: u32, raw: u32) {
    let per = (32 / w) as usize;
    let slot = &mut regs[lane as usize * nregs + i / per];
    if w == 32 {
        *slot = raw;
    } else {
        *slot |= (raw & ((1 << w) - 1)) << ((i % per) as u32 * w);
    }
}
fn take(regs: &[u32], nregs: usize, lane: u32, i: usize, w: u32) -> u32 {
    let per = (32 / w) as usize;
    let r = regs[lane as usize * nregs + i / per];
    if w == 32 {
        r
    } else {
        (r >> ((i % per) as u32 * w)) & ((1 << w) - 1)
    }
}

/// Builds random A (m x k), B (k x n), C (m x n), scatters them into registers with the ISA
/// tables, runs `mma_sync`, gathers D with the tables and compares with a naive matmul.
fn check_mma(s: &str, exact: bool, rng: &mut Rng) {
    let k = kind(s);
    let (m, n, kk) = (k.m as usize, k.n as usize, k.k as usize);
    let (na, nb, nc, nd) = k.regs();
    let am: Vec<u32> = (0..m * kk).map(|_| rand_elem(rng, k.a, exact)).collect();
    let bm: Vec<u32> = (0..kk * n).map(|_| rand_elem(rng, k.b, exact)).collect();
    let cm: Vec<u32> = (0..m * n).map(|_| rand_elem(rng, k.c, exact)).collect();
    let (at, aw) = a_table(&k);
    let (bt, bw) = b_table(&k);
    let (mut a, mut b, mut c) = (vec![0u32; 32 * na], vec![0u32; 32 * nb], vec![0u32; 32 * nc]);
    for lane in 0..32u32 {
        let (g, t) = (lane / 4, lane % 4);
        for (i, &(dr, dc)) in at.iter().enumerate() {
            let (r, col) = ((g + dr) as usize, (t * aw + dc) as usize);
            put(&mut a, na, lane, i, width(k.a), am[r * kk + col]);
        }
        for (i, &dk) in bt.iter().enumerate() {
            let (r, col) = ((t * bw + dk) as usize, g as usize);
            put(&mut b, nb, lane, i, width(k.b), bm[r * n + col]);
        }
        for (i, &(dr, dc)) in C_M16N8.iter().enumerate() {
            let (r, col) = ((g + dr) as usize, (t * 2 + dc) as usize);
            put(&mut c, nc, lane, i, width(k.c), cm[r * n + col]);
        }
    }
    let mut d = vec![0xDEAD_BEEFu32; 32 * nd];
    mma_sync(&k, &a, &b, &c, &mut d);
    for lane in 0..32u32 {
        let (g, t) = (lane / 4, lane % 4);
        for (i, &(dr, dc)) in C_M16N8.iter().enumerate() {
            let (r, col) = ((g + dr) as usize, (t * 2 + dc) as usize);
            let got = take(&d, nd, lane, i, width(k.d));
            let ctx = format!("{s} D[{r}][{col}] lane {lane} d{i}");
            if k.d == Elem::S32 {
                let mut acc = cm[r * n + col] as i32;
                for x in 0..kk {
                    acc = acc.wrapping_add((elem_value(k.a, am[r * kk + x]) * elem_value(k.b, bm[x * n + col])) as i32);
                }
                assert_eq!(got as i32, acc, "{ctx}");
                continue;
            }
            // naive: f64 products and sum (exact for the `exact` inputs)
            let mut acc = elem_value(k.c, cm[r * n + col]);
            let mut mag = acc.abs();
            for x in 0..kk {
                let p = elem_value(k.a, am[r * kk + x]) * elem_value(k.b, bm[x * n + col]);
                acc += p;
                mag += p.abs();
            }
            let gv = elem_value(k.d, got);
            if exact {
                let want = if k.d == Elem::F16 { half::f16::from_f64(acc).to_f64() } else { acc as f32 as f64 };
                assert_eq!(acc, want, "{ctx}: test data not exact");
                assert_eq!(gv, want, "{ctx}");
            } else {
                let ulp = if k.d == Elem::F16 { 2f64.powi(-10) } else { 2f64.powi(-23) };
                assert!((gv - acc).abs() <= mag * ulp + 1e-30, "{ctx}: got {gv} want {acc}");
            }
        }
    }
}

#[test]
fn mma_matches_naive_matmul() {
    let mut rng = Rng(42);
    for s in KINDS {
        for rep in 0..6 {
            check_mma(s, rep % 2 == 0, &mut rng);
        }
    }
}

#[test]
fn mma_edge_values() {
    // bf16 m16n8k16: A = I-like pattern, B holds known values, C = 0.5: D[r][c] = B[r][c] + 0.5.
    let k = kind("sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32");
    let one = 0x3F80u32;
    let (mut a, mut b, mut c) = (vec![0u32; 128], vec![0u32; 64], vec![0u32; 128]);
    for lane in 0..32u32 {
        for i in 0..8u32 {
            let (r, col) = a_coord(&k, lane, i);
            if r == col {
                a[(lane * 4 + i / 2) as usize] |= one << (16 * (i % 2));
            }
        }
        for i in 0..4u32 {
            let (kk, nn) = b_coord(&k, lane, i);
            let v = half::bf16::from_f32((kk * 8 + nn) as f32).to_bits() as u32;
            b[(lane * 2 + i / 2) as usize] |= v << (16 * (i % 2));
            c[(lane * 4 + i) as usize] = 0.5f32.to_bits();
        }
    }
    let mut d = vec![0u32; 128];
    mma_sync(&k, &a, &b, &c, &mut d);
    for lane in 0..32u32 {
        for i in 0..4u32 {
            let (r, col) = c_coord(lane, i);
            assert_eq!(f32::from_bits(d[(lane * 4 + i) as usize]), (r * 8 + col) as f32 + 0.5);
        }
    }
    // NaN / inf propagate; NaN is canonical.
    let mut a2 = a.clone();
    a2[0] = 0x7FC0; // lane 0 a0 = NaN at A[0][0]
    mma_sync(&k, &a2, &b, &c, &mut d);
    assert_eq!(d[0], 0x7FFF_FFFF); // D[0][0]
    assert_eq!(d[1], 0x7FFF_FFFF); // D[0][1] also uses A[0][0]
    assert_eq!(f32::from_bits(d[2]), 64.5); // D[8][0] = B[8][0] + 0.5 does not
                                            // f16 accumulate overflows to inf
    let k = kind("sync.aligned.m16n8k16.row.col.f16.f16.f16.f16");
    let big = half::f16::from_f32(60000.0).to_bits() as u32;
    let a = vec![big | (big << 16); 128];
    let b = vec![(0x3C00 | (0x3C00 << 16)) as u32; 64];
    let c = vec![0u32; 64];
    let mut d = vec![0u32; 64];
    mma_sync(&k, &a, &b, &c, &mut d);
    assert!(d.iter().all(|&x| x == 0x7C00_7C00));
    // s8 wraps
    let k = kind("sync.aligned.m16n8k32.row.col.s32.s8.s8.s32");
    let a = vec![0x8080_8080u32; 128]; // -128 everywhere
    let b = vec![0x8080_8080u32; 64];
    let c = vec![i32::MAX as u32; 128];
    let mut d = vec![0u32; 128];
    mma_sync(&k, &a, &b, &c, &mut d);
    let want = (i32::MAX).wrapping_add(32 * 128 * 128);
    assert!(d.iter().all(|&x| x as i32 == want));
}

// ------------------------------------------------------------------ ldmatrix / stmatrix

/// A little shared memory: row addresses -> 16 bytes.
struct Smem(HashMap<u32, [u8; 16]>);

fn random_rows(rng: &mut Rng) -> ([u32; 32], Smem) {
    let mut addrs = [0u32; 32];
    let mut mem = HashMap::new();
    for (l, a) in addrs.iter_mut().enumerate() {
        // distinct, scattered, 16-byte aligned
        *a = (l as u32 * 7 % 32) * 48 + 1024;
        let mut row = [0u8; 16];
        for b in row.iter_mut() {
            *b = rng.next() as u8;
        }
        mem.insert(*a, row);
    }
    (addrs, Smem(mem))
}

fn elem(mem: &Smem, addrs: &[u32; 32], mat: usize, r: usize, c: usize) -> u16 {
    let row = mem.0[&addrs[8 * mat + r]];
    u16::from_le_bytes([row[2 * c], row[2 * c + 1]])
}

#[test]
fn ldmatrix_isa_layout() {
    // ISA figure for ldmatrix (m8n8, .b16): lane 0 holds row 0 elements 0,1; lane 1 elements 2,3;
    // lane 3 elements 6,7; lane 4 row 1 elements 0,1; lane 31 row 7 elements 6,7.
    let fig: [(u32, usize, usize); 6] = [(0, 0, 0), (1, 0, 2), (3, 0, 6), (4, 1, 0), (13, 3, 2), (31, 7, 6)];
    let mut rng = Rng(5);
    let (addrs, mem) = random_rows(&mut rng);
    for num in [1usize, 2, 4] {
        let mut reads = Vec::new();
        let regs = ldmatrix(num, false, &addrs, &mut |a| {
            reads.push(a);
            Ok(mem.0[&a])
        })
        .unwrap();
        reads.sort();
        let mut want: Vec<u32> = addrs[..8 * num].to_vec();
        want.sort();
        assert_eq!(reads, want, "x{num} reads exactly the rows of lanes < 8*num");
        for mat in 0..num {
            for &(lane, r, c) in &fig {
                let v = regs[lane as usize * num + mat];
                assert_eq!(v as u16, elem(&mem, &addrs, mat, r, c));
                assert_eq!((v >> 16) as u16, elem(&mem, &addrs, mat, r, c + 1));
            }
            for lane in 0..32u32 {
                let (r, c) = (lane as usize / 4, 2 * (lane as usize % 4));
                let v = regs[lane as usize * num + mat];
                assert_eq!(v, elem(&mem, &addrs, mat, r, c) as u32 | (elem(&mem, &addrs, mat, r, c + 1) as u32) << 16);
                assert_eq!(ldmatrix_coord(false, lane, 0), (r as u32, c as u32));
                assert_eq!(ldmatrix_coord(true, lane, 1), (c as u32 + 1, r as u32));
            }
        }
        // .trans: lane l gets column l/4, rows 2*(l%4) and +1.
        let t = ldmatrix(num, true, &addrs, &mut |a| Ok(mem.0[&a])).unwrap();
        for mat in 0..num {
            for lane in 0..32usize {
                let (col, r) = (lane / 4, 2 * (lane % 4));
                let v = t[lane * num + mat];
                assert_eq!(v as u16, elem(&mem, &addrs, mat, r, col));
                assert_eq!((v >> 16) as u16, elem(&mem, &addrs, mat, r + 1, col));
            }
        }
    }
    assert!(ldmatrix(3, false, &addrs, &mut |a| Ok(mem.0[&a])).is_err());
    let e = ldmatrix(4, false, &addrs, &mut |a| if a == addrs[20] { Err("oob".into()) } else { Ok(mem.0[&a]) });
    assert_eq!(e, Err("oob".to_string()));
}

#[test]
fn ldmatrix_trans_is_transpose() {
    // ldmatrix.trans of M gives the same registers as ldmatrix of M^T.
    let mut rng = Rng(6);
    for _ in 0..20 {
        let (addrs, mem) = random_rows(&mut rng);
        let t = ldmatrix(4, true, &addrs, &mut |a| Ok(mem.0[&a])).unwrap();
        // Build M^T in a second memory.
        let mut mem_t = HashMap::new();
        let addrs_t: [u32; 32] = std::array::from_fn(|l| 4096 + 16 * l as u32);
        for mat in 0..4 {
            for r in 0..8 {
                let mut row = [0u8; 16];
                for c in 0..8 {
                    row[2 * c..2 * c + 2].copy_from_slice(&elem(&mem, &addrs, mat, c, r).to_le_bytes());
                }
                mem_t.insert(addrs_t[8 * mat + r], row);
            }
        }
        let n = ldmatrix(4, false, &addrs_t, &mut |a| Ok(mem_t[&a])).unwrap();
        assert_eq!(t, n);
    }
}

#[test]
fn stmatrix_round_trips() {
    let mut rng = Rng(7);
    for num in [1usize, 2, 4] {
        for trans in [false, true] {
            let (addrs, mem) = random_rows(&mut rng);
            let regs = ldmatrix(num, trans, &addrs, &mut |a| Ok(mem.0[&a])).unwrap();
            let mut out = HashMap::new();
            stmatrix(num, trans, &addrs, &regs, &mut |a, row| {
                assert!(out.insert(a, row).is_none(), "row written twice");
                Ok(())
            })
            .unwrap();
            assert_eq!(out.len(), 8 * num);
            for l in 0..8 * num {
                assert_eq!(out[&addrs[l]], mem.0[&addrs[l]], "x{num} trans={trans} row {l}");
            }
            // and registers -> memory -> registers
            let regs2: Vec<u32> = (0..32 * num).map(|_| rng.next() as u32).collect();
            let mut m2 = HashMap::new();
            stmatrix(num, trans, &addrs, &regs2, &mut |a, row| {
                m2.insert(a, row);
                Ok(())
            })
            .unwrap();
            let back = ldmatrix(num, trans, &addrs, &mut |a| Ok(m2[&a])).unwrap();
            assert_eq!(back, regs2);
        }
    }
    assert!(stmatrix(4, false, &[0; 32], &[0; 64], &mut |_, _| Ok(())).is_err());
}

/// ldmatrix.x4 of a row-major 16x16 f16 tile (lane l -> row l%16, column block l/16) yields
/// exactly the mma m16n8k16 A fragment; ldmatrix.x2.trans of a row-major 16x8 (k x n) tile
/// yields the B fragment.
#[test]
fn ldmatrix_feeds_mma_fragments() {
    let k = kind("sync.aligned.m16n8k16.row.col.f32.f16.f16.f32");
    let mut rng = Rng(8);
    let tile: Vec<u16> = (0..256).map(|_| rng.next() as u16).collect(); // A[r][c] = tile[r*16+c]
    let row_addr: [u32; 32] = std::array::from_fn(|l| ((l % 16) * 32 + (l / 16) * 16) as u32);
    let mut read = |a: u32| -> Result<[u8; 16], String> {
        let (r, c0) = (a as usize / 32, (a as usize % 32) / 2);
        let mut out = [0u8; 16];
        for c in 0..8 {
            out[2 * c..2 * c + 2].copy_from_slice(&tile[r * 16 + c0 + c].to_le_bytes());
        }
        Ok(out)
    };
    let regs = ldmatrix(4, false, &row_addr, &mut read).unwrap();
    for lane in 0..32u32 {
        for i in 0..8u32 {
            let (r, c) = a_coord(&k, lane, i);
            let v = (regs[(lane * 4 + i / 2) as usize] >> (16 * (i % 2))) as u16;
            assert_eq!(v, tile[(r * 16 + c) as usize], "A lane {lane} a{i}");
        }
    }
    // B: k x n = 16 x 8 row-major; lanes 0..15 give rows k = l.
    let btile: Vec<u16> = (0..128).map(|_| rng.next() as u16).collect();
    let baddr: [u32; 32] = std::array::from_fn(|l| ((l % 16) * 16) as u32);
    let mut bread = |a: u32| -> Result<[u8; 16], String> {
        let r = a as usize / 16;
        let mut out = [0u8; 16];
        for c in 0..8 {
            out[2 * c..2 * c + 2].copy_from_slice(&btile[r * 8 + c].to_le_bytes());
        }
        Ok(out)
    };
    let bregs = ldmatrix(2, true, &baddr, &mut bread).unwrap();
    for lane in 0..32u32 {
        for i in 0..4u32 {
            let (kk, nn) = b_coord(&k, lane, i);
            let v = (bregs[(lane * 2 + i / 2) as usize] >> (16 * (i % 2))) as u16;
            assert_eq!(v, btile[(kk * 8 + nn) as usize], "B lane {lane} b{i}");
        }
    }
}
