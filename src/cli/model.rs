//! Opening a model folder for the commands that generate text: the checkpoint, its tokenizer,
//! and an engine on the chosen backend (`--device`). Without `--model`, the tiny random model in
//! the cache.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use dsv4_engine::backend::cpu::{CpuBackend, CpuKernels};
use dsv4_engine::backend::gpu::GpuBackend;
use dsv4_engine::backend::Backend;
use dsv4_kernels::Gpu;
use dsv4_engine::engine::{Engine, EngineConfig};
use dsv4_engine::sampling::SamplingParams;
use dsv4_engine::tokenizer::Tokenizer;
use dsv4_reference::{ActQuant, Model};

/// Model flags shared by `generate`, `chat` and `serve`.
#[derive(clap::Args, Clone, Debug)]
pub struct ModelArgs {
    /// Checkpoint folder in the released layout with its tokenizer.json (default: a tiny model
    /// with random weights, created in the cache folder on first use).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Switch the activation-quantisation simulation off (the golden "smooth" mode).
    #[arg(long)]
    pub no_act_quant: bool,
    /// Where the model runs: cuda (an H100/H200), emu (the CUDA backend on the PTX emulator:
    /// slow, for checking kernels), cpu; auto picks cuda when a usable GPU is present.
    #[arg(long, default_value = "auto")]
    pub device: DeviceChoice,
    /// The CPU backend's kernels: auto (the best this CPU has), amx, avx512, avx2, scalar, or
    /// reference (the oracle's plain loops); `-int8` (e.g. `auto-int8`) runs FP4 experts on int8
    /// activations: faster, not exact.
    #[arg(long, default_value = "auto", env = "DSV4_CPU_KERNELS", value_parser = parse_cpu_kernels)]
    pub cpu_kernels: CpuKernels,
}

/// clap parser for `--cpu-kernels`.
pub fn parse_cpu_kernels(s: &str) -> Result<CpuKernels, String> {
    CpuKernels::parse(s)
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceChoice {
    Auto,
    Cpu,
    Cuda,
    Emu,
}

/// Sampling flags shared by `generate` and `chat`.
#[derive(clap::Args, Clone, Debug)]
pub struct SamplingArgs {
    /// 0 is greedy.
    #[arg(long, default_value_t = 1.0)]
    pub temperature: f32,
    #[arg(long, default_value_t = 1.0)]
    pub top_p: f32,
    /// 0 = off.
    #[arg(long, default_value_t = 0)]
    pub top_k: usize,
    #[arg(long)]
    pub seed: Option<u64>,
    #[arg(long, default_value_t = 512)]
    pub max_tokens: usize,
}

impl SamplingArgs {
    pub fn params(&self) -> Result<SamplingParams> {
        let p = SamplingParams { temperature: self.temperature, top_p: self.top_p, top_k: self.top_k, seed: self.seed, logprobs: None };
        p.validate().context("invalid sampling option")?;
        if self.max_tokens == 0 {
            bail!("--max-tokens must be at least 1");
        }
        Ok(p)
    }
}

pub struct Loaded<B: Backend> {
    pub engine: Engine<B>,
    pub tokenizer: Tokenizer,
    /// The folder's name: served as a model id.
    pub name: String,
}

/// A loaded model on whichever backend `--device` chose.
pub enum AnyLoaded {
    Cpu(Loaded<CpuBackend>),
    Gpu(Loaded<GpuBackend>),
}

/// Run `$body` with `$l` bound to the `Loaded<B>` inside an `AnyLoaded`, whatever its backend.
macro_rules! with_loaded {
    ($any:expr, $l:ident => $body:expr) => {
        match $any {
            $crate::cli::model::AnyLoaded::Cpu($l) => $body,
            $crate::cli::model::AnyLoaded::Gpu($l) => $body,
        }
    };
}
pub(crate) use with_loaded;

pub fn model_dir(arg: &Option<PathBuf>) -> Result<PathBuf> {
    match arg {
        Some(d) => Ok(d.clone()),
        None => {
            let dir = dsv4_engine::tiny::ensure_tiny_model().context("creating the tiny model in the cache folder (set DSV4_CACHE to choose another)")?;
            eprintln!("using the tiny random model at {} (its text is random; --model DIR for the real release)", dir.display());
            Ok(dir)
        }
    }
}

pub fn load(args: &ModelArgs) -> Result<AnyLoaded> {
    let dir = model_dir(&args.model)?;
    if !dir.is_dir() {
        bail!("model folder {} does not exist or is not a folder", dir.display());
    }
    let model = Model::load(&dir).with_context(|| format!("loading the model from {}", dir.display()))?;
    let tokenizer = open_tokenizer(&dir)?;
    if tokenizer.vocab_size() > model.cfg.vocab_size {
        bail!("{}: the tokenizer has {} ids but the model's vocab_size is {}", dir.display(), tokenizer.vocab_size(), model.cfg.vocab_size);
    }
    let act_quant = if args.no_act_quant { ActQuant::Off } else { ActQuant::On };
    let cfg = EngineConfig { act_quant, ..EngineConfig::default() };
    let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "model".into());
    Ok(match open_device(args.device)? {
        None => AnyLoaded::Cpu(Loaded { engine: Engine::new(CpuBackend::with_kernels(model, args.cpu_kernels), cfg), tokenizer, name }),
        Some(gpu) => {
            let backend = GpuBackend::new(gpu, model).with_context(|| format!("uploading the model from {} to the device", dir.display()))?;
            AnyLoaded::Gpu(Loaded { engine: Engine::new(backend, cfg), tokenizer, name })
        }
    })
}

/// The GPU `choice` names (None: the CPU backend). `auto` says in one log line why it chose.
pub fn open_device(choice: DeviceChoice) -> Result<Option<Gpu>> {
    match choice {
        DeviceChoice::Cpu => Ok(None),
        DeviceChoice::Emu => {
            eprintln!("device: the CUDA backend on the PTX emulator (slow: for checking kernels)");
            Ok(Some(Gpu::emu()))
        }
        DeviceChoice::Cuda => {
            let gpu = Gpu::cuda(0).map_err(|e| anyhow::anyhow!("--device cuda: {e}"))?;
            eprintln!("device: {}", gpu.name());
            Ok(Some(gpu))
        }
        DeviceChoice::Auto => match Gpu::cuda(0) {
            Ok(gpu) => {
                eprintln!("device: {} (auto)", gpu.name());
                Ok(Some(gpu))
            }
            Err(e) => {
                eprintln!("device: cpu (auto: {e})");
                Ok(None)
            }
        },
    }
}

fn open_tokenizer(dir: &Path) -> Result<Tokenizer> {
    let path = dir.join("tokenizer.json");
    if !path.exists() {
        bail!("{} has no tokenizer.json (the release ships one beside the weights)", dir.display());
    }
    Ok(Tokenizer::from_file(&path)?)
}
