//! Opening a model folder for the commands that generate text: the checkpoint, its tokenizer,
//! and an engine on the CPU backend. Without `--model`, the tiny random model in the cache.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use dsv4_engine::backend::cpu::CpuBackend;
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

pub struct Loaded {
    pub engine: Engine<CpuBackend>,
    pub tokenizer: Tokenizer,
    /// The folder's name: served as a model id.
    pub name: String,
}

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

pub fn load(args: &ModelArgs) -> Result<Loaded> {
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
    let engine = Engine::new(CpuBackend::new(model), EngineConfig { act_quant, ..EngineConfig::default() });
    let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "model".into());
    Ok(Loaded { engine, tokenizer, name })
}

fn open_tokenizer(dir: &Path) -> Result<Tokenizer> {
    let path = dir.join("tokenizer.json");
    if !path.exists() {
        bail!("{} has no tokenizer.json (the release ships one beside the weights)", dir.display());
    }
    Ok(Tokenizer::from_file(&path)?)
}
