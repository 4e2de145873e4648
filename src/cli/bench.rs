//! `dsv4 bench`: measurements written to `results/`. Subcommands:
//!
//! - `cpu`: the CPU GEMV kernels on the decode shapes against this machine's read bandwidth
//!   (issue 11);
//! - `model` (issue 6): a synthetic model with the real Flash geometry (fewer routed experts,
//!   optionally fewer layers) on any backend, timed block by block; per-layer costs projected to
//!   43 layers and to contexts too long to run, with the bandwidth / compute bound beside each
//!   figure (`dsv4_bench::model_run`).

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use dsv4_bench::bandwidth::{fma_gflops, fma_gflops_with, int8_gops, int8_gops_with, read_bandwidth_sized};
use dsv4_bench::cpu::{self, impl_by_name, CpuOpts, IMPL_NAMES};
use dsv4_bench::report::{self, KernelRecord, RunInfo};
use dsv4_engine::cpu_kernels::Level;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    command: BenchCommand,
}

#[derive(clap::Subcommand, Debug)]
enum BenchCommand {
    /// CPU GEMV kernels on the decode shapes: GB/s of stored weight bytes vs the measured read
    /// bandwidth; writes results/cpu-<date>.{json,md,svg}.
    Cpu(CpuArgs),
    /// A synthetic model with the real DeepSeek-V4-Flash geometry: decode tokens/s, TTFT and
    /// prefill throughput, projected to 43 layers; writes results/<device>-<date>.{json,md,svg}.
    Model(super::bench_model::ModelBenchArgs),
}

#[derive(clap::Args, Debug)]
pub struct CpuArgs {
    /// 128 MB swept per case instead of 512 MB, 3 timed sweeps instead of 7, a smaller
    /// bandwidth buffer.
    #[arg(long)]
    quick: bool,
    #[command(flatten)]
    output: OutputArgs,
    /// JSON lists of peer records (same schema) to merge into the tables, plot and files.
    #[arg(long, value_name = "FILE", num_args = 1..)]
    peers: Vec<PathBuf>,
    /// Cases to run, comma-separated (expert_w1, expert_w2, dense_wq_b, dense_wo_b, shared_w1,
    /// head). Default: all.
    #[arg(long, value_name = "LIST")]
    cases: Option<String>,
    /// Batch sizes, comma-separated. Default: 1,8,32.
    #[arg(long, value_name = "LIST")]
    batches: Option<String>,
    /// Implementations, comma-separated: dsv4 (default: the best level, exact), dsv4-int8 (FP4 on
    /// int8 activations), dsv4-avx512, dsv4-avx2, dsv4-scalar (lower levels), reference (slow).
    #[arg(long, value_name = "LIST", default_value = "dsv4")]
    impls: String,
    /// Cap on the bytes swept per case and on the bandwidth buffer, in MB (tests: weights then
    /// come from cache, so the figures are not DRAM figures).
    #[arg(long, value_name = "N", hide = true)]
    max_mb: Option<usize>,
}

/// Where a bench run writes its records (shared by `bench cpu` and `bench model`).
#[derive(clap::Args, Debug)]
pub struct OutputArgs {
    /// Also write the records (a JSON list) to FILE.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Directory of the result files (cpu-<date>.* or <device>-<date>.*).
    #[arg(long, value_name = "DIR", default_value = "results")]
    out: PathBuf,
    /// Print only; write nothing under --out.
    #[arg(long)]
    no_write: bool,
}

impl OutputArgs {
    /// Writes `json` to `--json` when given, and unless `--no-write` each `(path, text)` that
    /// `files` makes from the `--out` folder (created if missing).
    pub fn write(&self, json: &str, files: impl FnOnce(&Path) -> Vec<(PathBuf, String)>) -> Result<()> {
        if let Some(f) = &self.json {
            if let Some(dir) = f.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            }
            std::fs::write(f, json).with_context(|| format!("writing {}", f.display()))?;
        }
        if !self.no_write {
            std::fs::create_dir_all(&self.out).with_context(|| format!("creating {}", self.out.display()))?;
            for (p, text) in files(&self.out) {
                std::fs::write(&p, text).with_context(|| format!("writing {}", p.display()))?;
                eprintln!("wrote {}", p.display());
            }
        }
        Ok(())
    }
}

pub fn run(args: Args) -> Result<()> {
    match args.command {
        BenchCommand::Cpu(a) => run_cpu(a),
        BenchCommand::Model(a) => super::bench_model::run(a),
    }
}

fn run_cpu(a: CpuArgs) -> Result<()> {
    // peers first: a bad file should fail before minutes of measuring
    let mut peers: Vec<KernelRecord> = Vec::new();
    for p in &a.peers {
        peers.extend(report::read_kernel_records(p).map_err(|e| anyhow!("peer file {e}"))?);
    }
    let impls = a
        .impls
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|n| impl_by_name(n).ok_or_else(|| anyhow!("unknown implementation '{n}' (known: {})", IMPL_NAMES.join(", "))))
        .collect::<Result<Vec<_>>>()?;
    if impls.is_empty() {
        bail!("--impls names no implementation");
    }
    let cases = a.cases.as_deref().map(cpu::parse_cases).transpose().map_err(|e| anyhow!("--cases: {e}"))?;
    let batches = a.batches.as_deref().map(cpu::parse_batches).transpose().map_err(|e| anyhow!("--batches: {e}"))?;

    let threads = dsv4_engine::cpu_kernels::pool::threads();
    let max_bytes = a.max_mb.map(|m| m.max(1) << 20);
    let (bw_bytes, bw_passes) = if a.quick { (512usize << 20, 5) } else { (1usize << 30, 9) };
    let bw_bytes = max_bytes.map_or(bw_bytes, |m| m.min(bw_bytes));
    eprintln!("measuring read bandwidth ({} MB, {threads} threads), FMA and int8 dot rates...", bw_bytes >> 20);
    let bw_before = read_bandwidth_sized(threads, bw_bytes, bw_passes);
    // the compute ceilings (short probes under --max-mb, a test run)
    let compute_rates = || match max_bytes {
        Some(_) => (fma_gflops_with(threads, 1_000_000, 3), int8_gops_with(threads, 1_000_000, 3)),
        None => (fma_gflops(threads), int8_gops(threads)),
    };
    let (fma, int8) = compute_rates();

    let mut opts = if a.quick { CpuOpts::quick(bw_before) } else { CpuOpts::full(bw_before) };
    if let Some(m) = max_bytes {
        opts.sweep_bytes = opts.sweep_bytes.min(m);
    }
    if let Some(c) = cases {
        opts.cases = c;
    }
    if let Some(b) = batches {
        opts.batches = b;
    }
    opts.device = report::cpu_device(threads);
    let level = Level::detect();

    let mut records = cpu::run_cpu_kernels(&opts, &impls);
    // Measured again after the kernels: on a shared host one probe can land in a busy moment,
    // and the roofline is what the machine can do, so the higher of the two is kept.
    let bw_after = read_bandwidth_sized(threads, bw_bytes, bw_passes);
    let (fma_after, int8_after) = compute_rates();
    let (bw, fma, int8) = (bw_before.max(bw_after), fma.max(fma_after), int8.max(int8_after));
    for r in &mut records {
        r.roofline_gb_per_s = bw;
        r.pct_of_roofline = 100.0 * r.gb_per_s / bw;
    }
    records.extend(peers);

    let mut notes = vec![
        format!("kernel level {level:?} (available {:?})", Level::available()),
        format!(
            "{} MB of distinct weight copies swept per case, median of {} sweeps after 1 warm-up; bandwidth: read-only sum over {} MB, median of {bw_passes}, before {bw_before:.1} / after {bw_after:.1} GB/s (the higher is the roofline)",
            opts.sweep_bytes >> 20,
            opts.runs,
            bw_bytes >> 20
        ),
    ];
    if a.max_mb.is_some() {
        notes.push("--max-mb: sweeps may fit in cache; not DRAM figures".into());
    }
    let info = RunInfo {
        device: opts.device.clone(),
        date: opts.date.clone(),
        commit: opts.commit.clone(),
        bandwidth_gb_per_s: bw,
        compute_gflop_per_s: fma,
        int8_gops: int8,
        threads,
        notes,
    };
    let md = report::kernel_markdown(&records, &info);
    println!("{md}");
    let json = report::to_json(&records);
    a.output.write(&json, |dir| {
        let svg = cpu::kernel_svg(&records, &format!("% of read bandwidth ({bw:.1} GB/s), {}, {}", info.device, info.date));
        [("json", json.clone()), ("md", md), ("svg", svg)].into_iter().map(|(ext, t)| (report::cpu_result_path(dir, &info.date, ext), t)).collect()
    })
}
