//! `tests/cuda/ws_gemm.cu` on the emulator: a warp-specialised FP8 GEMM (TMA producer warpgroup,
//! 4-stage full/empty mbarrier ring, wgmma consumer warpgroup with DeepSeek-style promotion of
//! each 128-K partial sum into f32 accumulators scaled by a_scale * b_scale), checked against a
//! Rust reference that dequantises and multiplies in f64.
//!
//! - `exact_inputs_bit_exact`: small-integer e4m3 inputs and power-of-two scales make every partial
//!   sum exact, so in `Fp8Acc::Exact` mode C must equal the reference bit for bit (partial M/N
//!   tiles go through the TMA's out-of-bounds zero fill).
//! - `random_inputs_within_tolerance`: arbitrary finite e4m3 inputs and scales under the default
//!   reduced-precision FP8 accumulator; error per element is measured against sum_k |terms|.
//! - `bug_*`: the kernel's `bug` parameter injects a missing empty-barrier arrive (deadlock), a
//!   wgmma issued before the full-barrier wait (reads TMA poison), and no promotion (error grows
//!   beyond the tolerance the correct kernel meets).
use dsv4_emu::tensor::wgmma::{set_fp8_acc, Fp8Acc};
use dsv4_emu::{encode_tensor_map, ArgValue, Device, EmuError, ErrorKind, LaunchConfig, ModuleHandle, Swizzle, TensorMapDesc, TmapDtype};

const PTX: &str = include_str!("ptx/ws_gemm.ptx");
const BM: usize = 64;
const BN: usize = 128;
const BK: usize = 128;
const STAGES: usize = 4;
const SMEM: u32 = (STAGES * (BM + BN) * BK) as u32;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + (self.next() % (hi - lo + 1) as u64) as i64
    }
}

/// e4m3 code -> value (OCP FP8: bias 7, no infinities, 0x7F/0xFF NaN), written from the spec.
fn e4m3_value(c: u8) -> f64 {
    let s = if c & 0x80 != 0 { -1.0 } else { 1.0 };
    let e = ((c >> 3) & 0xF) as i32;
    let m = (c & 7) as f64;
    s * if e == 0 { m / 8.0 * 2f64.powi(-6) } else { (1.0 + m / 8.0) * 2f64.powi(e - 7) }
}

/// e4m3 code of an exactly representable value.
fn e4m3_code(v: f64) -> u8 {
    (0u8..=255).find(|&c| c & 0x7F != 0x7F && e4m3_value(c) == v && !(v == 0.0 && c != 0)).unwrap_or_else(|| panic!("{v} is not e4m3"))
}

struct Problem {
    m: usize,
    n: usize,
    k: usize,
    a: Vec<u8>,
    b: Vec<u8>,
    sa: Vec<f32>, // [m][k/128]
    sb: Vec<f32>, // [ceil(n/128)][k/128]
}

impl Problem {
    /// (C in f64, sum over k of |terms| per element)
    fn reference(&self) -> (Vec<f64>, Vec<f64>) {
        let kb = self.k / BK;
        let av: Vec<f64> = self.a.iter().map(|&c| e4m3_value(c)).collect();
        let bv: Vec<f64> = self.b.iter().map(|&c| e4m3_value(c)).collect();
        let mut c = vec![0.0; self.m * self.n];
        let mut mag = vec![0.0; self.m * self.n];
        for i in 0..self.m {
            for j in 0..self.n {
                let (mut s, mut g) = (0.0, 0.0);
                for b in 0..kb {
                    let sc = self.sa[i * kb + b] as f64 * self.sb[(j / BN) * kb + b] as f64;
                    let (mut p, mut q) = (0.0, 0.0);
                    for kk in b * BK..(b + 1) * BK {
                        let t = av[i * self.k + kk] * bv[j * self.k + kk];
                        p += t;
                        q += t.abs();
                    }
                    s += sc * p;
                    g += sc.abs() * q;
                }
                c[i * self.n + j] = s;
                mag[i * self.n + j] = g;
            }
        }
        (c, mag)
    }
}

struct Emu {
    dev: Device,
    m: ModuleHandle,
}

impl Emu {
    fn new() -> Emu {
        let mut dev = Device::new();
        let m = dev.load_module("ws_gemm.ptx", PTX).unwrap_or_else(|e| panic!("load: {e}"));
        Emu { dev, m }
    }
    fn upload(&mut self, bytes: &[u8]) -> u64 {
        let p = self.dev.alloc(bytes.len().max(16)).unwrap();
        self.dev.write(p, bytes).unwrap();
        p
    }
    fn run(&mut self, p: &Problem, bug: i32) -> Result<Vec<f32>, EmuError> {
        let f32b = |v: &[f32]| -> Vec<u8> { v.iter().flat_map(|x| x.to_le_bytes()).collect() };
        let (ga, gb) = (self.upload(&p.a), self.upload(&p.b));
        let (gsa, gsb) = (self.upload(&f32b(&p.sa)), self.upload(&f32b(&p.sb)));
        let gc = self.dev.alloc(p.m * p.n * 4).unwrap();
        self.dev.memset(gc, 0, p.m * p.n * 4).unwrap();
        let ta = TensorMapDesc::dense(TmapDtype::U8, ga, &[p.k as u64, p.m as u64], &[BK as u32, BM as u32], Swizzle::B128);
        let tb = TensorMapDesc::dense(TmapDtype::U8, gb, &[p.k as u64, p.n as u64], &[BK as u32, BN as u32], Swizzle::B128);
        let (ta, tb) = (encode_tensor_map(&ta)?, encode_tensor_map(&tb)?);
        let cfg = LaunchConfig { grid: [p.n.div_ceil(BN) as u32, p.m.div_ceil(BM) as u32, 1], block: [256, 1, 1], dynamic_smem: SMEM };
        let args = [
            ArgValue::Bytes(ta.to_vec()),
            ArgValue::Bytes(tb.to_vec()),
            ArgValue::U64(gsa),
            ArgValue::U64(gsb),
            ArgValue::U64(gc),
            ArgValue::I32(p.m as i32),
            ArgValue::I32(p.n as i32),
            ArgValue::I32(p.k as i32),
            ArgValue::I32(bug),
        ];
        let r = self.dev.launch(self.m, "ws_gemm", &cfg, &args);
        let out = r.map(|_| {
            let mut o = vec![0u8; p.m * p.n * 4];
            self.dev.read(gc, &mut o).unwrap();
            o.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect()
        });
        for g in [ga, gb, gsa, gsb, gc] {
            self.dev.free(g).unwrap();
        }
        out
    }
}

/// Largest |got - want| / sum_k |terms| (the scale-free accumulation error).
fn max_err(got: &[f32], want: &[f64], mag: &[f64]) -> f64 {
    got.iter().zip(want).zip(mag).map(|((g, w), m)| (*g as f64 - w).abs() / m.max(1e-30)).fold(0.0, f64::max)
}

fn exact_problem(rng: &mut Rng, m: usize, n: usize, k: usize) -> Problem {
    let codes: Vec<u8> = (-4..=4).map(|v| e4m3_code(v as f64)).collect();
    let mut pick = |len: usize| -> Vec<u8> { (0..len).map(|_| codes[rng.range(0, 8) as usize]).collect() };
    let (a, b) = (pick(m * k), pick(n * k));
    let kb = k / BK;
    let sa = (0..m * kb).map(|_| 2f32.powi(rng.range(-3, 3) as i32)).collect();
    let sb = (0..n.div_ceil(BN) * kb).map(|_| 2f32.powi(rng.range(-3, 3) as i32)).collect();
    Problem { m, n, k, a, b, sa, sb }
}

fn random_problem(rng: &mut Rng, m: usize, n: usize, k: usize, positive: bool) -> Problem {
    let mut pick = |len: usize| -> Vec<u8> {
        (0..len)
            .map(|_| loop {
                let c = rng.next() as u8 & if positive { 0x7F } else { 0xFF };
                if c & 0x7F != 0x7F {
                    break c;
                }
            })
            .collect()
    };
    let (a, b) = (pick(m * k), pick(n * k));
    let kb = k / BK;
    let scale = |rng: &mut Rng| 2f32.powi(rng.range(-6, 6) as i32) * (1.0 + rng.range(0, 255) as f32 / 256.0);
    let sa = (0..m * kb).map(|_| scale(rng)).collect();
    let sb = (0..n.div_ceil(BN) * kb).map(|_| scale(rng)).collect();
    Problem { m, n, k, a, b, sa, sb }
}

/// Error bound the promoted kernel must meet under the default reduced-precision accumulator.
const TOL: f64 = 5e-4;

#[test]
fn exact_inputs_bit_exact() {
    let mut rng = Rng(0x5eed_0001);
    let mut emu = Emu::new();
    let prev = set_fp8_acc(Fp8Acc::Exact);
    for (m, n, k) in [(64, 128, 128), (64, 128, 640), (100, 200, 256), (128, 256, 1024), (37, 70, 512)] {
        let p = exact_problem(&mut rng, m, n, k);
        let got = emu.run(&p, 0).unwrap_or_else(|e| panic!("{m}x{n}x{k}: {e}"));
        let (want, _) = p.reference();
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert_eq!(*g as f64, *w, "{m}x{n}x{k}: C[{}][{}]", i / n, i % n);
        }
    }
    set_fp8_acc(prev);
}

#[test]
fn random_inputs_within_tolerance() {
    let mut rng = Rng(0x5eed_0002);
    let mut emu = Emu::new();
    for (m, n, k) in [(64, 128, 1024), (rng.range(1, 160), rng.range(129, 300), 128 * rng.range(1, 8)), (rng.range(1, 160), rng.range(1, 300), 128 * rng.range(1, 8)), (rng.range(65, 192), rng.range(1, 128), 128 * rng.range(5, 8))] {
        let (m, n, k) = (m as usize, n as usize, k as usize);
        let p = random_problem(&mut rng, m, n, k, false);
        let got = emu.run(&p, 0).unwrap_or_else(|e| panic!("{m}x{n}x{k}: {e}"));
        let (want, mag) = p.reference();
        let e = max_err(&got, &want, &mag);
        eprintln!("random {m}x{n}x{k}: max error / sum|terms| = {e:.3e}");
        assert!(e < TOL, "{m}x{n}x{k}: error {e}");
    }
}

#[test]
fn bug_missing_empty_arrive_deadlocks() {
    let mut rng = Rng(0x5eed_0003);
    let mut emu = Emu::new();
    let p = exact_problem(&mut rng, 64, 128, 6 * BK);
    let e = emu.run(&p, 1).expect_err("a consumer that never frees its stage must deadlock the producer");
    assert_eq!(e.kind, ErrorKind::Deadlock, "{e}");
    eprintln!("{e}");
    assert!(e.message.contains("mbarrier at shared") && e.message.contains("arrivals pending"), "{e}");
}

#[test]
fn bug_read_before_full_wait_sees_poison() {
    let mut rng = Rng(0x5eed_0004);
    let mut emu = Emu::new();
    let p = exact_problem(&mut rng, 64, 128, 6 * BK);
    let prev = set_fp8_acc(Fp8Acc::Exact);
    let r = emu.run(&p, 2);
    set_fp8_acc(prev);
    let got = r.expect("the early read is not an error by itself");
    let (want, _) = p.reference();
    let bad = got.iter().zip(&want).filter(|(g, w)| **g as f64 != **w).count();
    assert!(bad > 0, "wgmmas issued before the full-barrier wait must not see the data");
    assert!(got.iter().any(|v| v.is_nan()), "poison (0xFF bytes) is e4m3 NaN");
}

#[test]
fn bug_no_promotion_loses_precision() {
    let mut rng = Rng(0x5eed_0005);
    let mut emu = Emu::new();
    // positive inputs: the running sum grows with K, so the reduced-precision accumulator's
    // truncation error grows with the number of wgmmas chained into it
    let mut p = random_problem(&mut rng, 64, 128, 1024, true);
    // scales constant along K so that the unpromoted kernel computes the same product
    let kb = p.k / BK;
    for r in 0..p.m {
        let s = p.sa[r * kb];
        p.sa[r * kb..(r + 1) * kb].fill(s);
    }
    let s = p.sb[0];
    p.sb.fill(s);
    let (want, mag) = p.reference();
    let good = max_err(&emu.run(&p, 0).unwrap(), &want, &mag);
    let bad = max_err(&emu.run(&p, 3).unwrap(), &want, &mag);
    eprintln!("K = 1024: max error / sum|terms| with promotion {good:.3e}, without {bad:.3e}");
    assert!(good < TOL, "promoted error {good}");
    assert!(bad > TOL && bad > 4.0 * good, "unpromoted error {bad} vs promoted {good}");
    // with exact FP8 accumulation both are accurate: the difference is the accumulator's precision
    let prev = set_fp8_acc(Fp8Acc::Exact);
    let (g, b) = (emu.run(&p, 0), emu.run(&p, 3));
    set_fp8_acc(prev);
    let (g, b) = (max_err(&g.unwrap(), &want, &mag), max_err(&b.unwrap(), &want, &mag));
    eprintln!("K = 1024, Fp8Acc::Exact: with promotion {g:.3e}, without {b:.3e}");
    assert!(g < 1e-6 && b < 1e-6, "exact mode: {g} {b}");
}

// ------------------------------------------------------------------------------------------------
// tests/cuda/tma_gather.cu: 1-row TMA boxes gather rows selected by an index list (as sparse
// attention gathers KV rows) into a 128B-swizzled tile that a wgmma consumes directly.

const PTX_GATHER: &str = include_str!("ptx/tma_gather.ptx");

#[test]
fn tma_row_gather_feeds_wgmma() {
    let mut dev = Device::new();
    let m = dev.load_module("tma_gather.ptx", PTX_GATHER).unwrap_or_else(|e| panic!("load: {e}"));
    let mut rng = Rng(0x5eed_0006);
    let bf = |v: f64| half::bf16::from_f64(v).to_bits().to_le_bytes();
    for t_rows in [64usize, 300, 1000] {
        // small values (multiples of 1/4 up to 2): every product and sum is exact in f32
        let q: Vec<f64> = (0..64 * 64).map(|_| rng.range(-8, 8) as f64 / 4.0).collect();
        let kt: Vec<f64> = (0..t_rows * 64).map(|_| rng.range(-8, 8) as f64 / 4.0).collect();
        // indices: in range (with duplicates), -1 padding, and one past the end
        let idx: Vec<i32> = (0..64)
            .map(|j| match j % 16 {
                7 => -1,
                13 => t_rows as i32 + rng.range(0, 3) as i32,
                5 => 0,
                _ => rng.range(0, t_rows as i64 - 1) as i32,
            })
            .collect();
        let up = |dev: &mut Device, b: &[u8]| {
            let p = dev.alloc(b.len()).unwrap();
            dev.write(p, b).unwrap();
            p
        };
        let gq = up(&mut dev, &q.iter().flat_map(|v| bf(*v)).collect::<Vec<u8>>());
        let gk = up(&mut dev, &kt.iter().flat_map(|v| bf(*v)).collect::<Vec<u8>>());
        let gi = up(&mut dev, &idx.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>());
        let gs = dev.alloc(64 * 64 * 4).unwrap();
        let mq = encode_tensor_map(&TensorMapDesc::dense(TmapDtype::Bf16, gq, &[64, 64], &[64, 64], Swizzle::B128)).unwrap();
        let mk = encode_tensor_map(&TensorMapDesc::dense(TmapDtype::Bf16, gk, &[64, t_rows as u64], &[64, 1], Swizzle::B128)).unwrap();
        let cfg = LaunchConfig { grid: [1, 1, 1], block: [256, 1, 1], dynamic_smem: 0 };
        let args = [ArgValue::Bytes(mq.to_vec()), ArgValue::Bytes(mk.to_vec()), ArgValue::U64(gi), ArgValue::U64(gs)];
        dev.launch(m, "tma_gather_qk", &cfg, &args).unwrap_or_else(|e| panic!("T = {t_rows}: {e}"));
        let mut o = vec![0u8; 64 * 64 * 4];
        dev.read(gs, &mut o).unwrap();
        let got: Vec<f32> = o.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect();
        for i in 0..64 {
            for j in 0..64 {
                let r = idx[j];
                let want: f64 = if r < 0 || r as usize >= t_rows { 0.0 } else { (0..64).map(|d| q[i * 64 + d] * kt[r as usize * 64 + d]).sum() };
                assert_eq!(got[i * 64 + j] as f64, want, "T = {t_rows}: S[{i}][{j}] (row {r})");
            }
        }
        for g in [gq, gk, gi, gs] {
            dev.free(g).unwrap();
        }
    }
}
