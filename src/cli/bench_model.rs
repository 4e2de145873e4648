//! `dsv4 bench model`: the engine's model step on a synthetic model with the real
//! DeepSeek-V4-Flash geometry (every dense weight at full size; `--experts` routed experts per
//! layer instead of 256, so it fits in memory while a batch-1 token still reads the release's
//! bytes), timed block by block on the chosen backend. Flow: rooflines measured -> model built
//! in memory -> `model_run::plan` / `measure` -> projected records -> results/ files.

use std::time::Instant;

use anyhow::{anyhow, bail, Context, Result};
use dsv4_bench::bandwidth::{fma_gflops, read_bandwidth_sized};
use dsv4_bench::model_bench::StepTimes;
use dsv4_bench::model_record::Rooflines;
use dsv4_bench::model_run::{self, MeasureOpts};
use dsv4_bench::report::{self, ModelRecord, RunInfo};
use dsv4_bench::roofline::bytes_per_token;
use dsv4_bench::scenario::{parse_scenarios, Scenario, DEFAULT_SCENARIOS};
use dsv4_bench::telemetry::{self, Sampler};
use dsv4_engine::backend::cpu::{CpuBackend, CpuKernels};
use dsv4_engine::backend::gpu::GpuBackend;
use dsv4_kernels::Gpu;
use dsv4_reference::synthetic::{bench_config, bench_model};
use dsv4_reference::{ActQuant, Config};

use super::model::{open_device, parse_cpu_kernels, DeviceChoice};

/// The CPU's default scenarios: what a 2-core box finishes in minutes (issue 6's full set is
/// the GPU default; pass `--scenarios` for more).
pub const CPU_SCENARIOS: &str = "decode:1,8@4k;prefill:64";

#[derive(clap::Args, Debug)]
pub struct ModelBenchArgs {
    /// cuda (an H100/H200), cpu, emu (the CUDA backend on the PTX emulator: only for a tiny
    /// `--layers` run), auto (cuda when a usable GPU is present).
    #[arg(long, default_value = "auto")]
    device: DeviceChoice,
    /// Build only the first N of the 43 layers (their compress ratios kept; at least 4 so every
    /// kind is measured); the step is projected to 43 from the per-kind medians.
    #[arg(long, value_name = "N")]
    layers: Option<usize>,
    /// Routed experts per layer (>= 6). 16 keeps the whole model near 18 GB.
    #[arg(long, default_value_t = 16)]
    experts: usize,
    /// Scenario groups separated by ';': `decode:BATCHES@CONTEXTS`, `ttft:PROMPTS`,
    /// `prefill:TOKENS`; sizes take k/m suffixes. Default: issue 6's set on a GPU
    /// ("ttft:1k,8k,64k;decode:1,8,32,128@4k,64k,1m;prefill:4k"), "decode:1,8@4k;prefill:64" on the CPU.
    #[arg(long, value_name = "LIST")]
    scenarios: Option<String>,
    /// Longest decode context run as is; longer ones are projected from a linear fit (default:
    /// 64k, or 256k on a GPU).
    #[arg(long, value_name = "N", value_parser = parse_size)]
    max_context: Option<usize>,
    /// Longest prompt prefilled as is; longer ones are projected (default 8k on a GPU, 256 on the CPU).
    #[arg(long, value_name = "N", value_parser = parse_size)]
    max_prompt: Option<usize>,
    /// Timed steps per shape after one warm-up (the median is kept).
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// One timed step per shape.
    #[arg(long)]
    quick: bool,
    /// The CPU backend's kernels (as for `generate`).
    #[arg(long, default_value = "auto", env = "DSV4_CPU_KERNELS", value_parser = parse_cpu_kernels)]
    cpu_kernels: CpuKernels,
    #[command(flatten)]
    output: super::bench::OutputArgs,
    /// Seed of the random weights.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Cap on the bandwidth probe's buffer in MB (tests; figures then come from cache).
    #[arg(long, value_name = "N", hide = true)]
    max_mb: Option<usize>,
}

fn parse_size(s: &str) -> Result<usize, String> {
    dsv4_bench::scenario::parse_size(s).map_err(|e| e.to_string())
}

/// The machine's ceilings, measured in this run, and a line saying how.
struct Measured {
    roof: Rooflines,
    how: String,
}

/// Read bandwidth and FMA rate of this CPU (the pool's threads).
fn cpu_rooflines(max_mb: Option<usize>) -> Measured {
    let threads = dsv4_engine::cpu_kernels::pool::threads();
    let bytes = max_mb.map_or(1usize << 30, |m| (m.max(1) << 20).min(1 << 30));
    let bw = read_bandwidth_sized(threads, bytes, 9);
    let fma = if max_mb.is_some() { dsv4_bench::bandwidth::fma_gflops_with(threads, 1_000_000, 3) } else { fma_gflops(threads) };
    Measured {
        roof: Rooflines { bandwidth_gb_per_s: bw, compute_gflop_per_s: fma },
        how: format!("CPU read-only sum over {} MB on {threads} threads (median of 9), FP32 FMA chains (median of 7)", bytes >> 20),
    }
}

/// Device copy bandwidth (a 2 x 512 MiB f32 copy: bytes read + written per second) and the
/// FP8 block GEMM rate of our own kernel at 4096^3, medians of 5 after a warm-up. The GEMM is
/// our kernel's rate, not the hardware peak: the bound it gives is the one our GEMM allows.
fn gpu_rooflines(gpu: &Gpu) -> Result<Measured> {
    use dsv4_bench::weights::{activations, random_linear, Format};
    use dsv4_kernels::ops::copy::{copy_strided, Block2d};
    use dsv4_kernels::ops::linear::{linear, DevLinear};
    let e = |e: dsv4_kernels::GpuError| anyhow!("measuring the device rooflines: {e}");
    let (rows, cols) = (8192usize, 16384usize);
    let a = gpu.zeros(rows * cols * 4).map_err(e)?;
    let b = gpu.zeros(rows * cols * 4).map_err(e)?;
    let time = |f: &dyn Fn() -> Result<(), dsv4_kernels::GpuError>| -> Result<f64> {
        f().map_err(e)?;
        gpu.synchronize().map_err(e)?;
        let mut ts = Vec::new();
        for _ in 0..5 {
            let t = Instant::now();
            f().map_err(e)?;
            gpu.synchronize().map_err(e)?;
            ts.push(t.elapsed().as_secs_f64());
        }
        Ok(dsv4_bench::bandwidth::median(ts))
    };
    let t_copy = time(&|| {
        copy_strided(gpu, Block2d { buf: &b, off: 0, stride: cols }, Block2d { buf: &a, off: 0, stride: cols }, rows, cols)
    })?;
    let bw = 2.0 * (rows * cols * 4) as f64 / t_copy / 1e9;
    drop((a, b));
    let n = 4096;
    let w = DevLinear::upload(gpu, &random_linear(Format::Fp8, n, n, 3)).map_err(e)?;
    let x = gpu.upload_f32(&activations(n, n)).map_err(e)?;
    let t_gemm = time(&|| linear(gpu, &w, &x, n, ActQuant::On).map(drop))?;
    let tflops = 2.0 * (n * n * n) as f64 / t_gemm / 1e9;
    Ok(Measured {
        roof: Rooflines { bandwidth_gb_per_s: bw, compute_gflop_per_s: tflops },
        how: format!("device copy of 512 MiB (read + write, median of 5); dsv4 FP8 block GEMM {n}x{n}x{n} with act quant (median of 5): {tflops:.0} GFLOP/s, our kernel's rate, not the hardware peak"),
    })
}

pub fn run(a: ModelBenchArgs) -> Result<()> {
    let gpu = open_device(a.device)?;
    let on_gpu = gpu.is_some();
    let scen_text = a.scenarios.clone().unwrap_or_else(|| if on_gpu { DEFAULT_SCENARIOS.into() } else { CPU_SCENARIOS.into() });
    let scenarios: Vec<Scenario> = parse_scenarios(&[scen_text.as_str()]).map_err(|e| anyhow!("--scenarios: {e}"))?;
    let full = checked_config(None, a.experts)?;
    let built = match a.layers {
        Some(n) if n < 4 || n > full.n_layers => bail!("--layers {n}: expected 4..={} (the first 4 hold every layer kind)", full.n_layers),
        n => checked_config(n, a.experts)?,
    };
    let max_context = a.max_context.unwrap_or(if on_gpu { 256 << 10 } else { 64 << 10 });
    let max_prompt = a.max_prompt.unwrap_or(if on_gpu { 8 << 10 } else { 256 });
    if max_context > full.max_seq_len {
        bail!("--max-context {max_context} is beyond the model's max_seq_len {}", full.max_seq_len);
    }
    let plan = model_run::plan(&scenarios, max_context, max_prompt);
    let runs = if a.quick { 1 } else { a.runs.max(1) };

    eprintln!("measuring rooflines...");
    let ceilings = match &gpu {
        Some(_) if a.device == DeviceChoice::Emu => cpu_rooflines(a.max_mb),
        Some(g) => gpu_rooflines(g)?,
        None => cpu_rooflines(a.max_mb),
    };
    let roof = ceilings.roof;
    eprintln!("rooflines: {:.1} GB/s, {:.0} GFLOP/s ({})", roof.bandwidth_gb_per_s, roof.compute_gflop_per_s, ceilings.how);

    let t = Instant::now();
    let bm = bench_model(&built, a.seed).map_err(|e| anyhow!("building the synthetic model: {e}"))?;
    eprintln!(
        "built {} layers x {} experts: {:.1} GB of weights in {:.1} s; {} shapes to measure, {runs} timed step(s) each",
        built.n_layers,
        built.n_routed_experts,
        bm.bytes as f64 / 1e9,
        t.elapsed().as_secs_f64(),
        plan.len()
    );
    let opts = MeasureOpts { runs, act_quant: ActQuant::On, sync: on_gpu, progress: std::io::IsTerminal::is_terminal(&std::io::stderr()) };
    let log = |label: &str, st: &StepTimes| {
        let blocks: Vec<String> = st.blocks_s.iter().map(|s| format!("{:.1}", s * 1e3)).collect();
        eprintln!("{label}: {:.1} ms (embed {:.2}, layers [{}], head {:.1})", st.total_s() * 1e3, st.embed_s * 1e3, blocks.join(" "), st.head_s * 1e3);
    };
    let (backend_name, device, measured, telemetry) = match gpu {
        None => {
            let mut b = CpuBackend::with_kernels(bm.model, a.cpu_kernels);
            let m = model_run::measure(&mut b, &plan, opts, log);
            (format!("cpu-{}", a.cpu_kernels.name()), report::cpu_device(dsv4_engine::cpu_kernels::pool::threads()), m, None)
        }
        Some(g) => {
            let name = g.name();
            let mut b = GpuBackend::new(g, bm.model).context("uploading the synthetic model to the device")?;
            let sampler = Sampler::start(0, telemetry::PERIOD);
            let m = model_run::measure(&mut b, &plan, opts, log);
            let tele = sampler.map(|s| {
                let dev = s.device().to_string();
                telemetry::summarize(&dev, &s.stop())
            });
            ("cuda".to_string(), name, m, tele)
        }
    };
    let mut records = model_run::records(&full, &scenarios, &measured, built.n_layers, &backend_name, roof).map_err(|e| anyhow!("{e}"))?;
    let (date, commit) = (report::today(), report::git_commit());
    let tele_json = telemetry.as_ref().map(|t| serde_json::to_value(t).expect("telemetry serialises"));
    let expert_note = if a.experts == 256 {
        String::new()
    } else {
        format!(
            "synthetic model with {} routed experts per layer (release: 256): batch 1 reads the release's bytes ({:.2} GB/token); at batch > 1 fewer distinct experts are touched than in the release, and the bound counts this model's bytes",
            a.experts,
            bytes_per_token(&full, 1, None) / 1e9
        )
    };
    for r in &mut records {
        r.device = device.clone();
        r.date = date.clone();
        r.commit = commit.clone();
        r.telemetry = tele_json.clone();
        r.note = expert_note.clone();
    }
    write_outputs(&a, &records, &full, &built, roof, &ceilings.how, &device, &date, &commit)
}

/// `bench_config` with its panics turned into errors that name the flag.
fn checked_config(layers: Option<usize>, experts: usize) -> Result<Config> {
    let flash = Config::flash();
    if experts < flash.n_activated_experts || experts > flash.n_routed_experts {
        bail!("--experts {experts}: expected {}..={} (a token activates {})", flash.n_activated_experts, flash.n_routed_experts, flash.n_activated_experts);
    }
    Ok(bench_config(layers, experts))
}

#[allow(clippy::too_many_arguments)]
fn write_outputs(
    a: &ModelBenchArgs,
    records: &[ModelRecord],
    full: &Config,
    built: &Config,
    roof: Rooflines,
    how: &str,
    device: &str,
    date: &str,
    commit: &str,
) -> Result<()> {
    let info = RunInfo {
        device: device.into(),
        date: date.into(),
        commit: commit.into(),
        bandwidth_gb_per_s: roof.bandwidth_gb_per_s,
        compute_gflop_per_s: roof.compute_gflop_per_s,
        int8_gops: 0.0,
        threads: dsv4_engine::cpu_kernels::pool::threads(),
        notes: vec![
            format!("rooflines: {how}"),
            format!(
                "model: DeepSeek-V4-Flash geometry, {} of {} layers built, {} routed experts per layer, random weights in the release's formats",
                built.n_layers, full.n_layers, built.n_routed_experts
            ),
            format!("{} timed step(s) per shape after one warm-up, median per block", if a.quick { 1 } else { a.runs.max(1) }),
        ],
    };
    let md = report::model_markdown(records, &info, &report::published_anchors());
    println!("{md}");
    let json = report::to_json(records);
    a.output.write(&json, |dir| {
        let mut files = vec![("json".to_string(), json.clone()), ("md".to_string(), md)];
        for (suffix, svg) in model_run::model_svgs(records, &format!("{device}, {date}")) {
            files.push((format!("{suffix}.svg"), svg));
        }
        files.into_iter().map(|(ext, t)| (report::model_result_path(dir, device, date, &ext), t)).collect()
    })
}
