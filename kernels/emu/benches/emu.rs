//! Emulator speed: thread-instructions per second on a scalar-heavy ALU loop, and emulated
//! tensor-core GFLOP/s on the mma.sync bf16 GEMM (both kernels come from the proof suite,
//! `tests/cuda/alu_loop.cu` and `tests/cuda/mma_bf16.cu`).
//!
//! `cargo bench -p dsv4-emu --bench emu` prints criterion's numbers (throughput in
//! "elements" = thread-instructions for the ALU loop and FLOPs for the GEMM) plus one summary
//! line per workload computed from `LaunchStats` and a directly timed batch of launches.
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use dsv4_emu::{ArgValue, Device, LaunchConfig, LaunchStats, ModuleHandle};
use std::time::{Duration, Instant};

const PTX_ALU: &str = include_str!("../tests/ptx/alu_loop.ptx");
const PTX_MMA: &str = include_str!("../tests/ptx/mma_bf16.ptx");

fn upload(dev: &mut Device, bytes: &[u8]) -> u64 {
    let p = dev.alloc(bytes.len()).expect("alloc");
    dev.write(p, bytes).expect("write");
    p
}

struct Workload {
    dev: Device,
    m: ModuleHandle,
    kernel: &'static str,
    cfg: LaunchConfig,
    args: Vec<ArgValue>,
}

impl Workload {
    fn run(&mut self) -> LaunchStats {
        self.dev.launch(self.m, self.kernel, &self.cfg, &self.args).unwrap_or_else(|e| panic!("{}: {e}", self.kernel))
    }
    /// Launches repeatedly for at least `min` and returns seconds per launch.
    fn time(&mut self, min: Duration) -> f64 {
        let start = Instant::now();
        let mut n = 0u32;
        while n == 0 || start.elapsed() < min {
            std::hint::black_box(self.run());
            n += 1;
        }
        start.elapsed().as_secs_f64() / n as f64
    }
}

/// 1024 threads x 200 iterations of the 24-instruction integer/float loop: ~5 M thread-insts.
fn alu_workload() -> Workload {
    let mut dev = Device::new();
    let m = dev.load_module("alu_loop.ptx", PTX_ALU).expect("load alu_loop.ptx");
    let threads = 1024usize;
    let seeds: Vec<u8> = (0..threads as u32).flat_map(|t| (t.wrapping_mul(2_654_435_761) ^ 0x1234_5678).to_le_bytes()).collect();
    let ps = upload(&mut dev, &seeds);
    let pu = dev.alloc(threads * 4).unwrap();
    let pf = dev.alloc(threads * 4).unwrap();
    Workload {
        dev,
        m,
        kernel: "alu_loop",
        cfg: LaunchConfig { grid: [(threads / 128) as u32, 1, 1], block: [128, 1, 1], dynamic_smem: 0 },
        args: vec![ArgValue::U64(ps), ArgValue::I32(200), ArgValue::U64(pu), ArgValue::U64(pf)],
    }
}

/// C[256,256] = A[256,256] * B[256,256] in bf16 with f32 accumulation: 8192 mma.sync m16n8k16.
fn gemm_workload() -> Workload {
    let mut dev = Device::new();
    let m = dev.load_module("mma_bf16.ptx", PTX_MMA).expect("load mma_bf16.ptx");
    let (mm, nn, kk) = (256usize, 256usize, 256usize);
    // small integers / 4 as bf16 (upper half of the f32 bit pattern)
    let bf16 = |i: usize| -> [u8; 2] { ((((((i * 7919) % 17) as f32 - 8.0) / 4.0).to_bits() >> 16) as u16).to_le_bytes() };
    let a: Vec<u8> = (0..mm * kk).flat_map(bf16).collect();
    let b: Vec<u8> = (0..kk * nn).flat_map(|i| bf16(i + 3)).collect();
    let pa = upload(&mut dev, &a);
    let pb = upload(&mut dev, &b);
    let pc = dev.alloc(mm * nn * 4).unwrap();
    Workload {
        dev,
        m,
        kernel: "gemm_bf16_mma",
        cfg: LaunchConfig { grid: [(nn / 32) as u32, (mm / 32) as u32, 1], block: [128, 1, 1], dynamic_smem: 0 },
        args: vec![ArgValue::U64(pa), ArgValue::U64(pb), ArgValue::U64(pc), ArgValue::I32(mm as i32), ArgValue::I32(nn as i32), ArgValue::I32(kk as i32)],
    }
}

fn bench(c: &mut Criterion) {
    let mut alu = alu_workload();
    let st = alu.run();
    let secs = alu.time(Duration::from_secs(2));
    println!(
        "emu alu_loop: {} thread-insts per launch, {:.2} ms per launch -> {:.1} M thread-insts/s ({} warp-insts, classes {:?})",
        st.thread_insts,
        secs * 1e3,
        st.thread_insts as f64 / secs / 1e6,
        st.warp_insts.values().sum::<u64>(),
        st.warp_insts
    );
    let mut g = c.benchmark_group("emu");
    g.sample_size(10).measurement_time(Duration::from_secs(5));
    g.throughput(Throughput::Elements(st.thread_insts));
    g.bench_function("alu_loop (elements = thread-insts)", |b| b.iter(|| alu.run()));

    let mut gemm = gemm_workload();
    let st = gemm.run();
    let secs = gemm.time(Duration::from_secs(2));
    println!(
        "emu gemm_bf16_mma 256x256x256: {} tensor FLOPs per launch, {} thread-insts, {:.2} ms per launch -> {:.3} GFLOP/s emulated tensor core, {:.1} M thread-insts/s",
        st.tensor_flops,
        st.thread_insts,
        secs * 1e3,
        st.tensor_flops as f64 / secs / 1e9,
        st.thread_insts as f64 / secs / 1e6
    );
    g.throughput(Throughput::Elements(st.tensor_flops));
    g.bench_function("gemm_bf16_mma 256^3 (elements = tensor FLOPs)", |b| b.iter(|| gemm.run()));
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
