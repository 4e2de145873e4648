//! wgmma layouts and numerics, checked against tables transcribed from the PTX ISA figures and,
//! independently, against CuTe's layout definitions evaluated by a tiny layout helper here:
//! - `cute/atom/mma_traits_sm90_gmma.hpp`: `CLayout_64xN = ((4,8,4),(2,2,N/8)):((128,1,16),
//!   (64,8,512))`, `ALayout_64x8 = ((4,8,4),(2,2)):((64,1,16),(8,256))`, `ALayout_64x16 =
//!   ((4,8,4),(2,2,2)):((128,1,16),(64,8,512))`, `ALayout_64x32 = ((4,8,4),(4,2,2)):((256,1,16),
//!   (64,8,1024))`, all (thread, value) -> m + 64 * (n or k); and the canonical smem layouts in
//!   `make_gmma_desc`'s comment (K-major `((8,m),(T,2)):((xT,SBO),(1,T))` with `Swizzle<b,4,3> o
//!   smem_ptr`, `((8,m),(T,2)):((1T,SBO),(1,LBO))` without; MN-major `((T,x,m),(8,k)):((1,T,LBO),
//!   (xT,SBO))`, `((T,1,m),(8,k)):((1,T,SBO),(1T,LBO))` without);
//! - `cute/swizzle.hpp`: `Swizzle<B,M,S>(x) = x ^ ((x & (((1<<B)-1) << (M+S))) >> S)`.
use dsv4_emu::tensor::wgmma::*;
use dsv4_emu::tensor::Elem;

/// (shape, stride) modes of a CuTe layout.
type Modes = Vec<(u32, u32)>;

/// A CuTe layout mode list: (shape, stride) pairs, the coordinate decomposed colexicographically.
fn cute(modes: &[(u32, u32)], mut c: u32) -> u32 {
    let mut off = 0;
    for &(s, d) in modes {
        off += (c % s) * d;
        c /= s;
    }
    off
}

fn cute_swizzle(b: u32, m: u32, s: u32, x: u32) -> u32 {
    let yyy = ((1u32 << b) - 1) << (m + s);
    x ^ ((x & yyy) >> s)
}

#[test]
fn descriptor_bitfields() {
    // PTX "Matrix Descriptor Format": start>>4 bits 0-13, LBO>>4 16-29, SBO>>4 32-45, base offset
    // 49-51, swizzle 62-63.
    let v: u64 = 0x123 | (0x45 << 16) | (0x40 << 32) | (5u64 << 49) | (1u64 << 62);
    let d = Desc::decode(v);
    assert_eq!(d, Desc { start: 0x1230, lbo: 0x450, sbo: 0x400, base_offset: 5, swizzle: Swizzle::B128 });
    assert_eq!(d.encode(), v);
    for (bits, s) in [(0u64, Swizzle::None), (1, Swizzle::B128), (2, Swizzle::B64), (3, Swizzle::B32)] {
        assert_eq!(Desc::decode(bits << 62).swizzle, s);
    }
    // unused bits are ignored
    assert_eq!(Desc::decode(v | (3 << 14) | (3 << 30) | (7 << 46) | (0x3FF << 52)), d);
    // base-offset rule
    let ok = Desc { start: 1024 * 2 + 384, lbo: 0, sbo: 1024, base_offset: 3, swizzle: Swizzle::B128 };
    assert!(ok.check().is_ok());
    assert!(Desc { base_offset: 0, ..ok }.check().is_err());
    assert!(Desc { start: 2048 + 32, base_offset: 0, ..ok }.check().is_ok());
    assert!(Desc { start: 2048 + 32, base_offset: 1, ..ok }.check().is_err());
    assert!(Desc { swizzle: Swizzle::B32, start: 256 + 128, base_offset: 1, ..ok }.check().is_ok());
}

#[test]
fn swizzle_tables_from_ptx_figures() {
    // 16-byte chunk c of swizzle row r lands in chunk TABLE[r][c] (PTX "Shared Memory Matrix
    // Layout" swizzle figures; rows are 128/64/32 bytes).
    const T128: [[u32; 8]; 8] = [
        [0, 1, 2, 3, 4, 5, 6, 7],
        [1, 0, 3, 2, 5, 4, 7, 6],
        [2, 3, 0, 1, 6, 7, 4, 5],
        [3, 2, 1, 0, 7, 6, 5, 4],
        [4, 5, 6, 7, 0, 1, 2, 3],
        [5, 4, 7, 6, 1, 0, 3, 2],
        [6, 7, 4, 5, 2, 3, 0, 1],
        [7, 6, 5, 4, 3, 2, 1, 0],
    ];
    const T64: [[u32; 4]; 8] =
        [[0, 1, 2, 3], [0, 1, 2, 3], [1, 0, 3, 2], [1, 0, 3, 2], [2, 3, 0, 1], [2, 3, 0, 1], [3, 2, 1, 0], [3, 2, 1, 0]];
    const T32: [[u32; 2]; 8] = [[0, 1], [0, 1], [0, 1], [0, 1], [1, 0], [1, 0], [1, 0], [1, 0]];
    for rep in 0..3u32 {
        for r in 0..8u32 {
            for c in 0..8u32 {
                let base = rep * 1024;
                let a = base + r * 128 + c * 16 + 5;
                assert_eq!(Swizzle::B128.apply(a), base + r * 128 + T128[r as usize][c as usize] * 16 + 5);
                assert_eq!(Swizzle::B128.apply(a), cute_swizzle(3, 4, 3, a));
            }
            for c in 0..4u32 {
                let base = rep * 512;
                let a = base + r * 64 + c * 16 + 3;
                assert_eq!(Swizzle::B64.apply(a), base + r * 64 + T64[r as usize][c as usize] * 16 + 3);
                assert_eq!(Swizzle::B64.apply(a), cute_swizzle(2, 4, 3, a));
            }
            for c in 0..2u32 {
                let base = rep * 256;
                let a = base + r * 32 + c * 16 + 1;
                assert_eq!(Swizzle::B32.apply(a), base + r * 32 + T32[r as usize][c as usize] * 16 + 1);
                assert_eq!(Swizzle::B32.apply(a), cute_swizzle(1, 4, 3, a));
            }
        }
    }
    for a in 0..4096 {
        assert_eq!(Swizzle::None.apply(a), a);
    }
}

/// The canonical K-major and MN-major layouts against CuTe's formulas.
#[test]
fn smem_layouts_match_cute() {
    let swz = [(Swizzle::None, 0u32, 1u32), (Swizzle::B32, 1, 2), (Swizzle::B64, 2, 4), (Swizzle::B128, 3, 8)];
    for &(sw, b, x) in &swz {
        for eb in [1u32, 2, 4] {
            let t = 16 / eb;
            for start in [0u32, 4096, 8192 + 32, 8192 + 64 + 16] {
                // K-major: SBO between 8-row groups; LBO between the two k core matrices (none).
                let (sbo, lbo) = if sw == Swizzle::None { (256, 128) } else { (8 * 16 * x, 0) };
                let d = Desc { start, lbo, sbo, base_offset: 0, swizzle: sw };
                let modes_mn: Vec<(u32, u32)> = vec![(8, x * t), (8, sbo / eb)];
                let modes_k: Vec<(u32, u32)> = if sw == Swizzle::None { vec![(t, 1), (4, lbo / eb)] } else { vec![(t, 1), (4, t)] };
                for mn in 0..64 {
                    for k in 0..2 * t {
                        let e = cute(&modes_mn, mn) + cute(&modes_k, k);
                        let want = cute_swizzle(b, 4, 3, start + e * eb);
                        assert_eq!(elem_addr(&d, Major::K, eb, mn, k), want, "K-major {sw:?} eb {eb} start {start} ({mn},{k})");
                    }
                }
            }
        }
        // MN-major, 16-bit
        let (eb, t) = (2u32, 8u32);
        for start in [0u32, 8192] {
            let (sbo, lbo) = if sw == Swizzle::None { (128, 256) } else { (8 * 16 * x, 4096) };
            let d = Desc { start, lbo, sbo, base_offset: 0, swizzle: sw };
            let (modes_mn, modes_k): (Modes, Modes) = if sw == Swizzle::None {
                (vec![(t, 1), (1, t), (16, sbo / eb)], vec![(8, t), (2, lbo / eb)])
            } else {
                (vec![(t, 1), (x, t), (4, lbo / eb)], vec![(8, x * t), (2, sbo / eb)])
            };
            let mn_max = if sw == Swizzle::None { 64 } else { t * x * 2 };
            for mn in 0..mn_max {
                for k in 0..16 {
                    let e = cute(&modes_mn, mn) + cute(&modes_k, k);
                    let want = cute_swizzle(b, 4, 3, start + e * eb);
                    assert_eq!(elem_addr(&d, Major::MN, eb, mn, k), want, "MN-major {sw:?} start {start} ({mn},{k})");
                }
            }
        }
    }
}

/// D fragment: PTX figure "WGMMA .m64nNk16 register fragment layout for accumulator matrix D"
/// (entries transcribed: thread, index -> row, col), then every (thread, value) against CuTe.
#[test]
fn d_fragment() {
    let table: &[(u32, u32, u32, u32)] = &[
        (0, 0, 0, 0),
        (0, 1, 0, 1),
        (0, 2, 8, 0),
        (0, 3, 8, 1),
        (0, 4, 0, 8),
        (0, 5, 0, 9),
        (0, 6, 8, 8),
        (0, 7, 8, 9),
        (1, 0, 0, 2),
        (3, 1, 0, 7),
        (4, 0, 1, 0),
        (31, 3, 15, 7),
        (32, 0, 16, 0),
        (33, 2, 24, 2),
        (64, 0, 32, 0),
        (127, 0, 55, 6),
        (127, 3, 63, 7),
        (127, 127, 63, 255),
        (5, 12, 1, 26),
    ];
    for &(t, v, r, c) in table {
        assert_eq!(d_coord(t, v), (r, c), "thread {t} d{v}");
    }
    for n in (8..=256).step_by(8) {
        let mut seen = vec![false; 64 * n as usize];
        for t in 0..128 {
            for v in 0..n / 2 {
                let idx = cute(&[(4, 128), (8, 1), (4, 16)], t) + cute(&[(2, 64), (2, 8), (n / 8, 512)], v);
                let (m, nn) = (idx % 64, idx / 64);
                assert_eq!(d_coord(t, v), (m, nn), "N {n} thread {t} value {v}");
                assert!(!std::mem::replace(&mut seen[(m * n + nn) as usize], true));
            }
        }
    }
}

/// Register A fragments against CuTe's ALayout_64x8 / 64x16 / 64x32, and a few PTX-figure entries.
#[test]
fn a_fragment() {
    // PTX figure for .m64nNk16 A (16-bit): thread 0 a0,a1 = (0,0),(0,1); a2,a3 = (8,0),(8,1);
    // a4..a7 = (0,8),(0,9),(8,8),(8,9); thread 1 a0 = (0,2); thread 36 a0 = (17,0).
    for &(t, i, r, k) in &[(0u32, 0u32, 0u32, 0u32), (0, 1, 0, 1), (0, 2, 8, 0), (0, 5, 0, 9), (0, 7, 8, 9), (1, 0, 0, 2), (36, 0, 17, 0)] {
        assert_eq!(a_reg_coord(Elem::Bf16, t, i), (r, k));
    }
    // 8-bit (k32): thread 0 a0..a3 = (0,0..3), a4..a7 = (8,0..3), a8.. = (0,16..19); thread 1 a0 = (0,4).
    for &(t, i, r, k) in &[(0u32, 0u32, 0u32, 0u32), (0, 3, 0, 3), (0, 4, 8, 0), (0, 8, 0, 16), (0, 15, 8, 19), (1, 0, 0, 4)] {
        assert_eq!(a_reg_coord(Elem::E4m3, t, i), (r, k));
    }
    // tf32 (k8): thread 0 a0 = (0,0), a1 = (8,0), a2 = (0,4), a3 = (8,4); thread 1 a0 = (0,1).
    for &(t, i, r, k) in &[(0u32, 0u32, 0u32, 0u32), (0, 1, 8, 0), (0, 2, 0, 4), (0, 3, 8, 4), (1, 0, 0, 1)] {
        assert_eq!(a_reg_coord(Elem::Tf32, t, i), (r, k));
    }
    let cases: [(Elem, u32, Modes, Modes); 3] = [
        (Elem::Tf32, 4, vec![(4, 64), (8, 1), (4, 16)], vec![(2, 8), (2, 256)]),
        (Elem::Bf16, 8, vec![(4, 128), (8, 1), (4, 16)], vec![(2, 64), (2, 8), (2, 512)]),
        (Elem::E4m3, 16, vec![(4, 256), (8, 1), (4, 16)], vec![(4, 64), (2, 8), (2, 1024)]),
    ];
    for (e, nv, tm, vm) in cases {
        for t in 0..128 {
            for v in 0..nv {
                let idx = cute(&tm, t) + cute(&vm, v);
                assert_eq!(a_reg_coord(e, t, v), (idx % 64, idx / 64), "{e:?} thread {t} value {v}");
            }
        }
    }
}

fn kind_of(mods: &str) -> WgmmaKind {
    let m: Vec<String> = mods.split('.').map(String::from).collect();
    WgmmaKind::from_mods(&m).unwrap()
}

#[test]
fn kinds() {
    let k = kind_of("mma_async.sync.aligned.m64n256k16.f32.bf16.bf16");
    assert_eq!((k.n, k.k, k.d_regs(), k.flops()), (256, 16, 128, 2 * 64 * 256 * 16));
    assert_eq!(kind_of("mma_async.sync.aligned.m64n64k32.f16.e4m3.e5m2").d_regs(), 16);
    assert_eq!(kind_of("mma_async.sync.aligned.m64n8k8.f32.tf32.tf32").k, 8);
    for bad in [
        "mma_async.sync.aligned.m64n12k16.f32.bf16.bf16",
        "mma_async.sync.aligned.m64n264k16.f32.bf16.bf16",
        "mma_async.sync.aligned.m64n64k16.f16.bf16.bf16",
        "mma_async.sync.aligned.m64n64k16.f32.e4m3.e4m3",
        "mma_async.sync.aligned.m64n64k32.f32.e4m3.bf16",
    ] {
        let m: Vec<String> = bad.split('.').map(String::from).collect();
        assert!(WgmmaKind::from_mods(&m).is_err(), "{bad}");
    }
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Small integers times a power of two: every sum below is exact in f32 and f16.
    fn small(&mut self, max: i64, scale: f64) -> f64 {
        let v = (self.next() % (2 * max as u64 + 1)) as i64 - max;
        v as f64 * scale
    }
}

fn f16_bits(v: f64) -> u32 {
    half::f16::from_f64(v).to_bits() as u32
}

/// Exact-input wgmma for each type and several N against a naive matmul.
#[test]
fn wgmma_exact_vs_naive() {
    let mut rng = Rng(1);
    let kinds = [
        "mma_async.sync.aligned.m64n{N}k16.f32.bf16.bf16",
        "mma_async.sync.aligned.m64n{N}k16.f32.f16.f16",
        "mma_async.sync.aligned.m64n{N}k16.f16.f16.f16",
        "mma_async.sync.aligned.m64n{N}k32.f32.e4m3.e4m3",
        "mma_async.sync.aligned.m64n{N}k32.f32.e5m2.e4m3",
        "mma_async.sync.aligned.m64n{N}k32.f16.e4m3.e5m2",
        "mma_async.sync.aligned.m64n{N}k8.f32.tf32.tf32",
    ];
    for kt in kinds {
        for n in [8u32, 16, 64, 128, 256] {
            let kind = kind_of(&kt.replace("{N}", &n.to_string()));
            let k = kind.k as usize;
            let nn = n as usize;
            let a: Vec<f64> = (0..64 * k).map(|_| rng.small(4, 0.5)).collect();
            let b: Vec<f64> = (0..k * nn).map(|_| rng.small(4, 0.25)).collect();
            let c: Vec<f64> = (0..64 * nn).map(|_| rng.small(8, 1.0)).collect();
            for scale_d in [true, false] {
                let nd = kind.d_regs();
                let mut d = vec![0u32; 128 * nd];
                // load C into the D fragment
                for t in 0..128u32 {
                    for v in 0..n / 2 {
                        let (r, col) = d_coord(t, v);
                        let x = c[r as usize * nn + col as usize];
                        let slot = t as usize * nd;
                        if kind.d == Elem::F32 {
                            d[slot + v as usize] = (x as f32).to_bits();
                        } else {
                            d[slot + (v / 2) as usize] |= f16_bits(x) << (16 * (v % 2));
                        }
                    }
                }
                wgmma_dense(&kind, &a, &b, &mut d, scale_d, Fp8Acc::default());
                for t in 0..128u32 {
                    for v in 0..n / 2 {
                        let (r, col) = d_coord(t, v);
                        let mut want = if scale_d { c[r as usize * nn + col as usize] } else { 0.0 };
                        for kk in 0..k {
                            want += a[r as usize * k + kk] * b[kk * nn + col as usize];
                        }
                        let slot = t as usize * nd;
                        let got = if kind.d == Elem::F32 {
                            f32::from_bits(d[slot + v as usize]) as f64
                        } else {
                            half::f16::from_bits((d[slot + (v / 2) as usize] >> (16 * (v % 2))) as u16).to_f64()
                        };
                        assert_eq!(got, want, "{kt} N={n} scale_d={scale_d} D[{r}][{col}]");
                    }
                }
            }
        }
    }
}

/// The FP8 reduced-precision accumulator: chaining many wgmmas into one accumulator drifts from
/// the exact sum; promoting every 4 wgmmas (K = 128) into an f32 accumulator keeps it close.
#[test]
fn fp8_accumulation_model() {
    assert_eq!(truncate_to(1.0 + 2f64.powi(-13), 13), 1.0 + 2f32.powi(-13));
    assert_eq!(truncate_to(1.0 + 2f64.powi(-14), 13), 1.0);
    assert_eq!(truncate_to(-(1.0 + 2f64.powi(-14) * 3.0), 13), -(1.0 + 2f32.powi(-13)));
    let kind = kind_of("mma_async.sync.aligned.m64n8k32.f32.e4m3.e4m3");
    let mut rng = Rng(9);
    let steps = 64; // K = 2048
    let vals: Vec<f64> = (0..16).map(|i| 1.0 + i as f64 / 8.0).collect(); // exact in e4m3
    let pick = |rng: &mut Rng| vals[(rng.next() % 16) as usize] * if rng.next().is_multiple_of(4) { -1.0 } else { 1.0 };
    let mut exact = vec![0f64; 64 * 8];
    let mut chained = vec![0u32; 128 * 4];
    let mut promoted = vec![0f32; 64 * 8];
    let mut part = vec![0u32; 128 * 4];
    let mut exact_mode = vec![0u32; 128 * 4];
    for s in 0..steps {
        let a: Vec<f64> = (0..64 * 32).map(|_| pick(&mut rng)).collect();
        let b: Vec<f64> = (0..32 * 8).map(|_| pick(&mut rng)).collect();
        for r in 0..64 {
            for c in 0..8 {
                exact[r * 8 + c] += (0..32).map(|k| a[r * 32 + k] * b[k * 8 + c]).sum::<f64>();
            }
        }
        wgmma_dense(&kind, &a, &b, &mut chained, true, Fp8Acc::default());
        wgmma_dense(&kind, &a, &b, &mut exact_mode, true, Fp8Acc::Exact);
        wgmma_dense(&kind, &a, &b, &mut part, s % 4 != 0, Fp8Acc::default());
        if s % 4 == 3 {
            for t in 0..128u32 {
                for v in 0..4 {
                    let (r, c) = d_coord(t, v);
                    promoted[r as usize * 8 + c as usize] += f32::from_bits(part[t as usize * 4 + v as usize]);
                }
            }
        }
    }
    let (mut e_chain, mut e_prom, mut e_exact) = (0f64, 0f64, 0f64);
    for t in 0..128u32 {
        for v in 0..4 {
            let (r, c) = d_coord(t, v);
            let want = exact[r as usize * 8 + c as usize];
            let rel = |x: f64| (x - want).abs() / want.abs().max(1.0);
            e_chain = e_chain.max(rel(f32::from_bits(chained[t as usize * 4 + v as usize]) as f64));
            e_exact = e_exact.max(rel(f32::from_bits(exact_mode[t as usize * 4 + v as usize]) as f64));
            e_prom = e_prom.max(rel(promoted[r as usize * 8 + c as usize] as f64));
        }
    }
    assert!(e_exact < 1e-6, "exact mode error {e_exact}");
    assert!(e_chain > 4.0 * e_prom && e_chain > 1e-4, "chained {e_chain} vs promoted {e_prom}");
}

// ------------------------------------------------------------------------------------------------
// nvcc-compiled kernels (tests/cuda/wgmma_ss_rs.cu) on the emulator.

use dsv4_emu::{ArgValue, Device, ErrorKind, LaunchConfig, ModuleHandle};

const PTX_WGMMA: &str = include_str!("ptx/wgmma_ss_rs.ptx");

struct Emu {
    dev: Device,
    m: ModuleHandle,
}

impl Emu {
    fn new() -> Emu {
        let mut dev = Device::new();
        let m = dev.load_module("wgmma_ss_rs.ptx", PTX_WGMMA).unwrap_or_else(|e| panic!("load: {e}"));
        Emu { dev, m }
    }
    fn upload(&mut self, bytes: &[u8]) -> u64 {
        let p = self.dev.alloc(bytes.len()).unwrap();
        self.dev.write(p, bytes).unwrap();
        p
    }
    fn download_f32(&self, p: u64, n: usize) -> Vec<f32> {
        let mut b = vec![0u8; 4 * n];
        self.dev.read(p, &mut b).unwrap();
        b.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect()
    }
    fn run_bytes(&mut self, kernel: &str, a: &[u8], bt: &[u8], c: &[u8]) -> Vec<u8> {
        let (pa, pb, pc) = (self.upload(a), self.upload(bt), self.upload(c));
        let cfg = LaunchConfig { grid: [1, 1, 1], block: [128, 1, 1], dynamic_smem: 0 };
        let args = [ArgValue::U64(pa), ArgValue::U64(pb), ArgValue::U64(pc), ArgValue::I32(0), ArgValue::I32(1)];
        self.dev.launch(self.m, kernel, &cfg, &args).unwrap_or_else(|e| panic!("{kernel}: {e}"));
        let mut out = vec![0u8; c.len()];
        self.dev.read(pc, &mut out).unwrap();
        out
    }
    fn run(&mut self, kernel: &str, a: &[u8], bt: &[u8], c: &[f32], mode: i32, acc: i32) -> Result<(Vec<f32>, u64), dsv4_emu::EmuError> {
        let (pa, pb) = (self.upload(a), self.upload(bt));
        let cb: Vec<u8> = c.iter().flat_map(|x| x.to_le_bytes()).collect();
        let pc = self.upload(&cb);
        let cfg = LaunchConfig { grid: [1, 1, 1], block: [128, 1, 1], dynamic_smem: 0 };
        let st = self.dev.launch(self.m, kernel, &cfg, &[ArgValue::U64(pa), ArgValue::U64(pb), ArgValue::U64(pc), ArgValue::I32(mode), ArgValue::I32(acc)])?;
        Ok((self.download_f32(pc, c.len()), st.tensor_flops))
    }
}

/// e4m3 code -> value (OCP FP8: bias 7, no infinities, 0x7F/0xFF NaN), written here from the spec.
fn e4m3_value(c: u8) -> f64 {
    let s = if c & 0x80 != 0 { -1.0 } else { 1.0 };
    let e = ((c >> 3) & 0xF) as i32;
    let m = (c & 7) as f64;
    s * if e == 0 { m / 8.0 * 2f64.powi(-6) } else { (1.0 + m / 8.0) * 2f64.powi(e - 7) }
}

fn naive(a: &[f64], bt: &[f64], c: &[f64], m: usize, n: usize, k: usize, acc: bool) -> Vec<f64> {
    let mut out = vec![0.0; m * n];
    for i in 0..m {
        for j in 0..n {
            let mut s = if acc { c[i * n + j] } else { 0.0 };
            for kk in 0..k {
                s += a[i * k + kk] * bt[j * k + kk];
            }
            out[i * n + j] = s;
        }
    }
    out
}

fn bf16_tile(rng: &mut Rng, len: usize) -> (Vec<u8>, Vec<f64>) {
    let vals: Vec<f64> = (0..len).map(|_| rng.small(8, 0.25)).collect();
    let bytes = vals.iter().flat_map(|v| half::bf16::from_f64(*v).to_bits().to_le_bytes()).collect();
    (bytes, vals)
}

fn check(what: &str, got: &[f32], want: &[f64], n: usize) {
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert_eq!(*g as f64, *w, "{what}: C[{}][{}]", i / n, i % n);
    }
}

#[test]
fn kernel_bf16_ss_sw128() {
    let mut rng = Rng(21);
    let mut emu = Emu::new();
    for acc in [1, 0] {
        let (a, av) = bf16_tile(&mut rng, 64 * 64);
        let (bt, bv) = bf16_tile(&mut rng, 64 * 64);
        let c: Vec<f64> = (0..64 * 64).map(|_| rng.small(16, 1.0)).collect();
        let c32: Vec<f32> = c.iter().map(|x| *x as f32).collect();
        let (got, flops) = emu.run("wgmma_bf16_ss", &a, &bt, &c32, 0, acc).unwrap_or_else(|e| panic!("{e}"));
        check("bf16 ss", &got, &naive(&av, &bv, &c, 64, 64, 64, acc == 1), 64);
        assert_eq!(flops, 2 * 64 * 64 * 64);
    }
}

/// MN-major B (imm-trans-b = 1) through a 128B-swizzled descriptor.
#[test]
fn kernel_bf16_ss_mn_major_b() {
    let mut rng = Rng(25);
    let mut emu = Emu::new();
    let (a, av) = bf16_tile(&mut rng, 64 * 64);
    let (b, bv) = bf16_tile(&mut rng, 64 * 64); // B[k][n]
    let mut btv = vec![0.0; 64 * 64];
    for k in 0..64 {
        for n in 0..64 {
            btv[n * 64 + k] = bv[k * 64 + n];
        }
    }
    let c: Vec<f64> = (0..64 * 64).map(|_| rng.small(16, 1.0)).collect();
    let c32: Vec<f32> = c.iter().map(|x| *x as f32).collect();
    let (got, _) = emu.run("wgmma_bf16_ss_mn", &a, &b, &c32, 0, 1).unwrap_or_else(|e| panic!("{e}"));
    check("bf16 ss MN-major B", &got, &naive(&av, &btv, &c, 64, 64, 64, true), 64);
}

#[test]
fn kernel_bf16_rs_sw128() {
    let mut rng = Rng(22);
    let mut emu = Emu::new();
    for acc in [1, 0] {
        let (a, av) = bf16_tile(&mut rng, 64 * 64);
        let (bt, bv) = bf16_tile(&mut rng, 32 * 64);
        let c: Vec<f64> = (0..64 * 32).map(|_| rng.small(16, 1.0)).collect();
        let c32: Vec<f32> = c.iter().map(|x| *x as f32).collect();
        let (got, _) = emu.run("wgmma_bf16_rs", &a, &bt, &c32, 0, acc).unwrap_or_else(|e| panic!("{e}"));
        check("bf16 rs", &got, &naive(&av, &bv, &c, 64, 32, 64, acc == 1), 32);
    }
}

#[test]
fn kernel_fp8_ss_sw128() {
    let mut rng = Rng(23);
    let mut emu = Emu::new();
    // Wide exact inputs (|v| in [1/4, 8] or 0) in exact-accumulation mode.
    let wide = |rng: &mut Rng| loop {
        let c = rng.next() as u8;
        let v = e4m3_value(c);
        if c & 0x7F != 0x7F && (v == 0.0 || (0.25..=8.0).contains(&v.abs())) {
            return (c, v);
        }
    };
    let prev = set_fp8_acc(Fp8Acc::Exact);
    let (a, av): (Vec<u8>, Vec<f64>) = (0..64 * 128).map(|_| wide(&mut rng)).unzip();
    let (bt, bv): (Vec<u8>, Vec<f64>) = (0..64 * 128).map(|_| wide(&mut rng)).unzip();
    let c: Vec<f64> = (0..64 * 64).map(|_| rng.small(16, 1.0)).collect();
    let c32: Vec<f32> = c.iter().map(|x| *x as f32).collect();
    let r = emu.run("wgmma_fp8_ss", &a, &bt, &c32, 0, 1);
    set_fp8_acc(prev);
    check("fp8 ss exact mode", &r.unwrap_or_else(|e| panic!("{e}")).0, &naive(&av, &bv, &c, 64, 64, 128, true), 64);
    // Narrow inputs (0, ±1/2, ±1, ±2): every partial sum fits 14 bits, so the default
    // reduced-precision accumulator is exact too.
    const NARROW: [u8; 7] = [0x00, 0x30, 0xB0, 0x38, 0xB8, 0x40, 0xC0];
    let narrow = |rng: &mut Rng| {
        let c = NARROW[(rng.next() % 7) as usize];
        (c, e4m3_value(c))
    };
    let (a, av): (Vec<u8>, Vec<f64>) = (0..64 * 128).map(|_| narrow(&mut rng)).unzip();
    let (bt, bv): (Vec<u8>, Vec<f64>) = (0..64 * 128).map(|_| narrow(&mut rng)).unzip();
    let (got, _) = emu.run("wgmma_fp8_ss", &a, &bt, &c32, 0, 0).unwrap_or_else(|e| panic!("{e}"));
    check("fp8 ss default mode", &got, &naive(&av, &bv, &c, 64, 64, 128, false), 64);
}

#[test]
fn kernel_injected_bugs() {
    let mut rng = Rng(24);
    let mut emu = Emu::new();
    let (a, _) = bf16_tile(&mut rng, 64 * 64);
    let (bt, _) = bf16_tile(&mut rng, 64 * 64);
    let c = vec![0f32; 64 * 64];
    for kernel in ["wgmma_bf16_ss", "wgmma_bf16_rs", "wgmma_fp8_ss"] {
        let bt = if kernel == "wgmma_bf16_rs" { &bt[..32 * 128] } else { &bt[..] };
        let c = if kernel == "wgmma_bf16_rs" { &c[..64 * 32] } else { &c[..] };
        // mode 1: D stored without wgmma.wait_group
        let e = emu.run(kernel, &a, bt, c, 1, 0).expect_err("missing wait_group must fail");
        assert_eq!(e.kind, ErrorKind::Fault, "{e}");
        assert!(e.message.contains("wgmma in flight") && e.message.contains("line"), "{kernel}: {e}");
        // mode 2: no wgmma.fence
        let e = emu.run(kernel, &a, bt, c, 2, 0).expect_err("missing fence must fail");
        assert!(e.message.contains("missing wgmma.fence"), "{kernel}: {e}");
    }
    // mode 3: an accumulator written between wgmma.fence and the wgmma
    let e = emu.run("wgmma_bf16_ss", &a, &bt, &c, 3, 0).expect_err("write after fence must fail");
    assert!(e.message.contains("missing wgmma.fence: operand register") && e.message.contains("mov.f32"), "{e}");
    // mode 4: shared operands written without fence.proxy.async
    let e = emu.run("wgmma_bf16_ss", &a, &bt, &c, 4, 0).expect_err("missing proxy fence must fail");
    assert!(e.message.contains("missing fence.proxy.async"), "{e}");
    // a CTA that is not whole warpgroups
    let (pa, pb) = (emu.upload(&a), emu.upload(&bt));
    let pc = emu.upload(&vec![0u8; 64 * 64 * 4]);
    let cfg = LaunchConfig { grid: [1, 1, 1], block: [96, 1, 1], dynamic_smem: 0 };
    let args = [ArgValue::U64(pa), ArgValue::U64(pb), ArgValue::U64(pc), ArgValue::I32(0), ArgValue::I32(0)];
    let e = emu.dev.launch(emu.m, "wgmma_bf16_ss", &cfg, &args).expect_err("96 threads");
    assert_eq!(e.kind, ErrorKind::Convergence, "{e}");
}

// ------------------------------------------------------------------------------------------------
// Hand-written PTX (assembled by ptxas -arch=sm_90a when written): setmaxnreg and warpgroup
// divergence.

const PTX_WG_MISC: &str = r#"
.version 8.4
.target sm_90a
.address_size 64

// 384 threads: warpgroups 0 and 1 raise their registers to `inc`, warpgroup 2 lowers to `dec`
// (it runs after the others in the emulator's warp order, so the raises must wait for it).
.visible .entry smr(.param .u32 p_inc, .param .u32 p_bad)
.maxntid 384, 1, 1
{
	.reg .b32 %r<6>;
	.reg .pred %p<4>;
	ld.param.u32 %r1, [p_inc];
	ld.param.u32 %r5, [p_bad];
	mov.u32 %r2, %tid.x;
	shr.u32 %r3, %r2, 7;
	setp.eq.u32 %p1, %r3, 2;
	@%p1 bra PRODUCER;
	setp.eq.u32 %p2, %r1, 0;
	@%p2 bra INC256;
	setmaxnreg.inc.sync.aligned.u32 232;
	bra DONE;
INC256:
	setmaxnreg.inc.sync.aligned.u32 256;
	bra DONE;
PRODUCER:
	setp.ne.u32 %p3, %r5, 0;
	@%p3 bra BAD;
	setmaxnreg.dec.sync.aligned.u32 40;
	bra DONE;
BAD:
	setmaxnreg.dec.sync.aligned.u32 200;
DONE:
	ret;
}

// warp 0 executes wgmma.fence while warps 1-3 execute wgmma.commit_group
.visible .entry diverge()
{
	.reg .b32 %r<2>;
	.reg .pred %p<2>;
	mov.u32 %r1, %tid.x;
	setp.lt.u32 %p1, %r1, 32;
	@%p1 bra A;
	wgmma.commit_group.sync.aligned;
	bra D;
A:
	wgmma.fence.sync.aligned;
D:
	ret;
}
"#;

#[test]
fn setmaxnreg_and_divergence() {
    let mut dev = Device::new();
    let m = dev.load_module("wg_misc.ptx", PTX_WG_MISC).unwrap_or_else(|e| panic!("{e}"));
    let cfg = LaunchConfig { grid: [1, 1, 1], block: [384, 1, 1], dynamic_smem: 0 };
    // 2 x 128 x 232 + 128 x 40 = 64512 registers: fits once the producer has lowered its count.
    dev.launch(m, "smr", &cfg, &[ArgValue::U32(1), ArgValue::U32(0)]).unwrap_or_else(|e| panic!("{e}"));
    // 2 x 128 x 256 + 128 x 40 > 65536: never fits.
    let e = dev.launch(m, "smr", &cfg, &[ArgValue::U32(0), ArgValue::U32(0)]).expect_err("over budget");
    assert!(e.message.contains("more than the SM's 65536"), "{e}");
    // dec to more than the current count (65536 / 384 -> 168)
    let e = dev.launch(m, "smr", &cfg, &[ArgValue::U32(1), ArgValue::U32(1)]).expect_err("dec up");
    assert!(e.message.contains("setmaxnreg.dec to 200"), "{e}");
    let cfg = LaunchConfig { grid: [1, 1, 1], block: [128, 1, 1], dynamic_smem: 0 };
    let e = dev.launch(m, "diverge", &cfg, &[]).expect_err("divergent warpgroup");
    assert_eq!(e.kind, ErrorKind::Convergence, "{e}");
    assert!(e.message.contains("warpgroup 0 diverged"), "{e}");
}

/// f16 accumulate at N = 256, tf32 at N = 8, mixed e5m2 x e4m3 into f16 at N = 16 (all with the
/// first k-step accumulating onto C).
#[test]
fn kernel_more_types() {
    let mut rng = Rng(26);
    let mut emu = Emu::new();
    let h = |v: f64| half::f16::from_f64(v).to_bits();
    let hv = |b: &[u8]| -> Vec<f64> { b.chunks_exact(2).map(|x| half::f16::from_bits(u16::from_le_bytes([x[0], x[1]])).to_f64()).collect() };
    // f16.f16.f16, m64n256k16
    let av: Vec<f64> = (0..64 * 64).map(|_| rng.small(4, 0.5)).collect();
    let bv: Vec<f64> = (0..256 * 64).map(|_| rng.small(4, 0.25)).collect();
    let cv: Vec<f64> = (0..64 * 256).map(|_| rng.small(8, 1.0)).collect();
    let enc = |v: &[f64]| -> Vec<u8> { v.iter().flat_map(|x| h(*x).to_le_bytes()).collect() };
    let got = hv(&emu.run_bytes("wgmma_f16_n256", &enc(&av), &enc(&bv), &enc(&cv)));
    let want = naive(&av, &bv, &cv, 64, 256, 64, true);
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        assert_eq!(g, w, "f16 N=256 C[{}][{}]", i / 256, i % 256);
    }
    // tf32, m64n8k8 (values with at most 4 significant bits, exact in tf32)
    let av: Vec<f64> = (0..64 * 32).map(|_| rng.small(8, 0.5)).collect();
    let bv: Vec<f64> = (0..8 * 32).map(|_| rng.small(8, 0.25)).collect();
    let cv: Vec<f64> = (0..64 * 8).map(|_| rng.small(8, 1.0)).collect();
    let enc = |v: &[f64]| -> Vec<u8> { v.iter().flat_map(|x| (*x as f32).to_le_bytes()).collect() };
    let out = emu.run_bytes("wgmma_tf32_n8", &enc(&av), &enc(&bv), &enc(&cv));
    let got: Vec<f32> = out.chunks_exact(4).map(|x| f32::from_le_bytes(x.try_into().unwrap())).collect();
    check("tf32 N=8", &got, &naive(&av, &bv, &cv, 64, 8, 32, true), 8);
    // e5m2 x e4m3 -> f16, m64n16k32
    const E5: [(u8, f64); 7] = [(0x00, 0.0), (0x38, 0.5), (0xB8, -0.5), (0x3C, 1.0), (0xBC, -1.0), (0x40, 2.0), (0xC0, -2.0)];
    const E4: [(u8, f64); 7] = [(0x00, 0.0), (0x30, 0.5), (0xB0, -0.5), (0x38, 1.0), (0xB8, -1.0), (0x40, 2.0), (0xC0, -2.0)];
    for &(c, v) in &E4 {
        assert_eq!(e4m3_value(c), v);
    }
    let (a, av): (Vec<u8>, Vec<f64>) = (0..64 * 128).map(|_| E5[(rng.next() % 7) as usize]).unzip();
    let (bt, bv): (Vec<u8>, Vec<f64>) = (0..16 * 128).map(|_| E4[(rng.next() % 7) as usize]).unzip();
    let cv: Vec<f64> = (0..64 * 16).map(|_| rng.small(8, 1.0)).collect();
    let cb: Vec<u8> = cv.iter().flat_map(|x| h(*x).to_le_bytes()).collect();
    let got = hv(&emu.run_bytes("wgmma_e5m2_e4m3_n16", &a, &bt, &cb));
    let want = naive(&av, &bv, &cv, 64, 16, 128, true);
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        assert_eq!(g, w, "e5m2 x e4m3 N=16 C[{}][{}]", i / 16, i % 16);
    }
}
