//! The model configuration, read from either style of `config.json`:
//!
//! - the official inference code's short keys (`dim`, `n_layers`, `n_heads`, `moe_inter_dim`,
//!   `score_func`, `rope_factor`, ... — the style of `golden/tiny/config.json`), or
//! - the transformers keys of the Hugging Face release (`hidden_size`, `num_hidden_layers`,
//!   `num_attention_heads`, `rope_scaling: {factor, beta_fast, ...}`, ...).
//!
//! The style is chosen by the keys present: a config carrying any of `hidden_size`,
//! `num_hidden_layers` or `num_attention_heads` is read with the transformers keys, anything else
//! with the short keys. Unknown keys (`dtype`, `scale_fmt`, `max_batch_size`, `architectures`,
//! `torch_dtype`, `quantization_config`, ...) are ignored. Numbers may be written as JSON integers
//! or floats (`"rope_factor": 4`, `"dim": 4096.0`); an integer field must hold a whole number.
//!
//! Defaults, used only when the key is absent (each is the official code's default and a released
//! config may leave it out):
//! - `score_func` / `scoring_func`: `"sqrtsoftplus"`;
//! - `n_mtp_layers` / `num_nextn_predict_layers`: 0;
//! - `beta_fast` 32, `beta_slow` 1 (short keys, or inside `rope_scaling`);
//! - `max_seq_len` / `max_position_embeddings`: 1048576 (the Flash context) in both styles — the
//!   official code treats it as a run-time capacity knob, not a property of the weights.
//! - transformers style only: `"rope_scaling": null` means "no YaRN" (rope_factor 1,
//!   original_seq_len 0, the same as the official code with `original_seq_len = 0`); an absent
//!   `rope_scaling` is a missing-key error. Its `type` / `rope_type`, when present, must be
//!   `"yarn"`. `rope_parameters` (newer transformers) is accepted in place of `rope_scaling`, and
//!   may carry `rope_theta`. `n_hash_layers` is accepted as an alias of `num_hash_layers`.
//!
//! Every other field is required.

use std::fmt;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScoreFunc {
    SqrtSoftplus,
    Sigmoid,
    Softmax,
}

impl ScoreFunc {
    /// The config string: `"sqrtsoftplus"`, `"sigmoid"` or `"softmax"`.
    pub fn as_str(self) -> &'static str {
        match self {
            ScoreFunc::SqrtSoftplus => "sqrtsoftplus",
            ScoreFunc::Sigmoid => "sigmoid",
            ScoreFunc::Softmax => "softmax",
        }
    }

    pub fn parse(s: &str) -> Option<ScoreFunc> {
        match s {
            "sqrtsoftplus" => Some(ScoreFunc::SqrtSoftplus),
            "sigmoid" => Some(ScoreFunc::Sigmoid),
            "softmax" => Some(ScoreFunc::Softmax),
            _ => None,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    pub vocab_size: usize,
    pub dim: usize,
    pub n_layers: usize,
    pub n_heads: usize,
    pub head_dim: usize,
    pub rope_head_dim: usize,
    pub q_lora_rank: usize,
    pub o_lora_rank: usize,
    pub o_groups: usize,
    pub window_size: usize,
    pub n_routed_experts: usize,
    pub n_activated_experts: usize,
    pub n_shared_experts: usize,
    pub moe_inter_dim: usize,
    pub n_hash_layers: usize,
    pub n_mtp_layers: usize,
    pub score_func: ScoreFunc,
    pub route_scale: f32,
    pub swiglu_limit: f32,
    pub index_n_heads: usize,
    pub index_head_dim: usize,
    pub index_topk: usize,
    pub hc_mult: usize,
    pub hc_sinkhorn_iters: usize,
    pub hc_eps: f32,
    pub norm_eps: f32,
    pub rope_theta: f64,
    pub compress_rope_theta: f64,
    pub rope_factor: f64,
    pub original_seq_len: usize,
    pub beta_fast: f64,
    pub beta_slow: f64,
    /// n_layers + n_mtp_layers entries (0 = window only).
    pub compress_ratios: Vec<usize>,
    /// max context (official `max_seq_len`, transformers `max_position_embeddings`).
    pub max_seq_len: usize,
}

/// `"FILE: "` when the file is known, else nothing.
struct At<'a>(&'a Option<PathBuf>);

impl fmt::Display for At<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(p) => write!(f, "{}: ", p.display()),
            None => Ok(()),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}invalid JSON: {source}", At(.file))]
    Json {
        file: Option<PathBuf>,
        source: serde_json::Error,
    },
    #[error("{}the config is not a JSON object", At(.file))]
    NotObject { file: Option<PathBuf> },
    /// A required key is absent (`style` says which key set was being read).
    #[error("{}missing key '{key}' ({style} config)", At(.file))]
    Missing {
        file: Option<PathBuf>,
        key: String,
        style: &'static str,
    },
    /// A key is present but its value is unusable.
    #[error("{}key '{key}': {msg}", At(.file))]
    BadValue {
        file: Option<PathBuf>,
        key: String,
        msg: String,
    },
    /// The values are individually fine but inconsistent (`Config::validate`).
    #[error("{}inconsistent config, key '{key}': {msg}", At(.file))]
    Invalid {
        file: Option<PathBuf>,
        key: String,
        msg: String,
    },
}

impl ConfigError {
    /// Attach the file name to an error produced while parsing text.
    fn in_file(self, path: &Path) -> ConfigError {
        let p = Some(path.to_path_buf());
        match self {
            ConfigError::Json { source, .. } => ConfigError::Json { file: p, source },
            ConfigError::NotObject { .. } => ConfigError::NotObject { file: p },
            ConfigError::Missing { key, style, .. } => ConfigError::Missing {
                file: p,
                key,
                style,
            },
            ConfigError::BadValue { key, msg, .. } => ConfigError::BadValue { file: p, key, msg },
            ConfigError::Invalid { key, msg, .. } => ConfigError::Invalid { file: p, key, msg },
            e @ ConfigError::Io { .. } => e,
        }
    }
}

fn bad(key: &str, msg: impl Into<String>) -> ConfigError {
    ConfigError::BadValue {
        file: None,
        key: key.to_string(),
        msg: msg.into(),
    }
}

fn invalid(key: &str, msg: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        file: None,
        key: key.to_string(),
        msg: msg.into(),
    }
}

/// Typed access to one JSON object; `prefix` names nested objects in messages (`rope_scaling.`).
struct Obj<'a> {
    map: &'a Map<String, Value>,
    prefix: &'static str,
    style: &'static str,
}

impl<'a> Obj<'a> {
    fn name(&self, key: &str) -> String {
        format!("{}{}", self.prefix, key)
    }

    /// The value of the first present, non-null key of `keys`.
    fn find(&self, keys: &[&'static str]) -> Option<(&'static str, &'a Value)> {
        keys.iter().find_map(|&k| match self.map.get(k) {
            Some(Value::Null) | None => None,
            Some(v) => Some((k, v)),
        })
    }

    fn missing(&self, keys: &[&'static str]) -> ConfigError {
        // "a" or, with aliases, "a' or 'b" (the message quotes the whole).
        let key = keys
            .iter()
            .map(|k| self.name(k))
            .collect::<Vec<_>>()
            .join("' or '");
        ConfigError::Missing {
            file: None,
            key,
            style: self.style,
        }
    }

    fn float_opt(&self, keys: &[&'static str]) -> Result<Option<f64>, ConfigError> {
        match self.find(keys) {
            None => Ok(None),
            Some((k, v)) => match v.as_f64() {
                Some(x) if x.is_finite() => Ok(Some(x)),
                _ => Err(bad(&self.name(k), format!("expected a number, found {v}"))),
            },
        }
    }

    fn float(&self, keys: &[&'static str]) -> Result<f64, ConfigError> {
        self.float_opt(keys)?.ok_or_else(|| self.missing(keys))
    }

    fn f32(&self, keys: &[&'static str]) -> Result<f32, ConfigError> {
        let x = self.float(keys)?;
        let y = x as f32;
        if !y.is_finite() {
            let k = self.find(keys).map(|(k, _)| k).unwrap_or(keys[0]);
            return Err(bad(&self.name(k), format!("{x} does not fit in f32")));
        }
        Ok(y)
    }

    fn usize_of(&self, key: &str, v: &Value) -> Result<usize, ConfigError> {
        if let Some(u) = v.as_u64() {
            return usize::try_from(u)
                .map_err(|_| bad(&self.name(key), format!("{u} is too large")));
        }
        match v.as_f64() {
            Some(x) if x >= 0.0 && x.fract() == 0.0 && x <= 9.007_199_254_740_992e15 => {
                Ok(x as usize)
            }
            _ => Err(bad(
                &self.name(key),
                format!("expected a non-negative integer, found {v}"),
            )),
        }
    }

    fn usize_opt(&self, keys: &[&'static str]) -> Result<Option<usize>, ConfigError> {
        match self.find(keys) {
            None => Ok(None),
            Some((k, v)) => self.usize_of(k, v).map(Some),
        }
    }

    fn usize(&self, keys: &[&'static str]) -> Result<usize, ConfigError> {
        self.usize_opt(keys)?.ok_or_else(|| self.missing(keys))
    }

    fn usize_list(&self, keys: &[&'static str]) -> Result<Vec<usize>, ConfigError> {
        let (k, v) = self.find(keys).ok_or_else(|| self.missing(keys))?;
        let arr = v.as_array().ok_or_else(|| {
            bad(
                &self.name(k),
                format!("expected a list of integers, found {v}"),
            )
        })?;
        arr.iter()
            .enumerate()
            .map(|(i, x)| {
                self.usize_of(k, x).map_err(|_| {
                    bad(
                        &self.name(k),
                        format!("entry {i}: expected a non-negative integer, found {x}"),
                    )
                })
            })
            .collect()
    }

    fn score_func(&self, keys: &[&'static str]) -> Result<ScoreFunc, ConfigError> {
        match self.find(keys) {
            None => Ok(ScoreFunc::SqrtSoftplus),
            Some((k, Value::String(s))) => ScoreFunc::parse(s).ok_or_else(|| {
                bad(&self.name(k), format!("unknown score function '{s}' (expected 'sqrtsoftplus', 'sigmoid' or 'softmax')"))
            }),
            Some((k, v)) => Err(bad(&self.name(k), format!("expected a string, found {v}"))),
        }
    }
}

/// The Flash context length, the default `max_seq_len`.
const DEFAULT_MAX_SEQ_LEN: usize = 1_048_576;
const DEFAULT_BETA_FAST: f64 = 32.0;
const DEFAULT_BETA_SLOW: f64 = 1.0;

impl Config {
    pub fn from_json_str(text: &str) -> Result<Config, ConfigError> {
        let value: Value = serde_json::from_str(text)
            .map_err(|source| ConfigError::Json { file: None, source })?;
        let map = value
            .as_object()
            .ok_or(ConfigError::NotObject { file: None })?;
        let transformers = ["hidden_size", "num_hidden_layers", "num_attention_heads"]
            .iter()
            .any(|k| map.contains_key(*k));
        let cfg = if transformers {
            Self::from_transformers(map)?
        } else {
            Self::from_official(map)?
        };
        cfg.validate()?;
        Ok(cfg)
    }

    /// Reads DIR/config.json or a file path; errors name the file.
    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let file = if path.is_dir() {
            path.join("config.json")
        } else {
            path.to_path_buf()
        };
        let text = std::fs::read_to_string(&file).map_err(|source| ConfigError::Io {
            path: file.clone(),
            source,
        })?;
        Self::from_json_str(&text).map_err(|e| e.in_file(&file))
    }

    fn from_official(map: &Map<String, Value>) -> Result<Config, ConfigError> {
        let o = Obj {
            map,
            prefix: "",
            style: "official short-key",
        };
        Ok(Config {
            vocab_size: o.usize(&["vocab_size"])?,
            dim: o.usize(&["dim"])?,
            n_layers: o.usize(&["n_layers"])?,
            n_heads: o.usize(&["n_heads"])?,
            head_dim: o.usize(&["head_dim"])?,
            rope_head_dim: o.usize(&["rope_head_dim"])?,
            q_lora_rank: o.usize(&["q_lora_rank"])?,
            o_lora_rank: o.usize(&["o_lora_rank"])?,
            o_groups: o.usize(&["o_groups"])?,
            window_size: o.usize(&["window_size"])?,
            n_routed_experts: o.usize(&["n_routed_experts"])?,
            n_activated_experts: o.usize(&["n_activated_experts"])?,
            n_shared_experts: o.usize(&["n_shared_experts"])?,
            moe_inter_dim: o.usize(&["moe_inter_dim"])?,
            n_hash_layers: o.usize(&["n_hash_layers"])?,
            n_mtp_layers: o.usize_opt(&["n_mtp_layers"])?.unwrap_or(0),
            score_func: o.score_func(&["score_func"])?,
            route_scale: o.f32(&["route_scale"])?,
            swiglu_limit: o.f32(&["swiglu_limit"])?,
            index_n_heads: o.usize(&["index_n_heads"])?,
            index_head_dim: o.usize(&["index_head_dim"])?,
            index_topk: o.usize(&["index_topk"])?,
            hc_mult: o.usize(&["hc_mult"])?,
            hc_sinkhorn_iters: o.usize(&["hc_sinkhorn_iters"])?,
            hc_eps: o.f32(&["hc_eps"])?,
            norm_eps: o.f32(&["norm_eps"])?,
            rope_theta: o.float(&["rope_theta"])?,
            compress_rope_theta: o.float(&["compress_rope_theta"])?,
            rope_factor: o.float(&["rope_factor"])?,
            original_seq_len: o.usize(&["original_seq_len"])?,
            beta_fast: o.float_opt(&["beta_fast"])?.unwrap_or(DEFAULT_BETA_FAST),
            beta_slow: o.float_opt(&["beta_slow"])?.unwrap_or(DEFAULT_BETA_SLOW),
            compress_ratios: o.usize_list(&["compress_ratios"])?,
            max_seq_len: o
                .usize_opt(&["max_seq_len"])?
                .unwrap_or(DEFAULT_MAX_SEQ_LEN),
        })
    }

    fn from_transformers(map: &Map<String, Value>) -> Result<Config, ConfigError> {
        let style = "transformers";
        let o = Obj {
            map,
            prefix: "",
            style,
        };
        // rope_scaling {factor, beta_fast, beta_slow, original_max_position_embeddings, type}
        let (rope_key, rope) = match (map.get("rope_scaling"), map.get("rope_parameters")) {
            (Some(v), _) if !v.is_null() => ("rope_scaling", Some(v)),
            (_, Some(v)) if !v.is_null() => ("rope_parameters", Some(v)),
            (Some(_), _) | (_, Some(_)) => ("rope_scaling", None),
            (None, None) => return Err(o.missing(&["rope_scaling"])),
        };
        let (rope_factor, original_seq_len, beta_fast, beta_slow, nested_theta) = match rope {
            None => (1.0, 0, DEFAULT_BETA_FAST, DEFAULT_BETA_SLOW, None),
            Some(v) => {
                let m = v
                    .as_object()
                    .ok_or_else(|| bad(rope_key, format!("expected an object, found {v}")))?;
                let prefix = if rope_key == "rope_scaling" {
                    "rope_scaling."
                } else {
                    "rope_parameters."
                };
                let r = Obj {
                    map: m,
                    prefix,
                    style,
                };
                if let Some((k, t)) = r.find(&["type", "rope_type"]) {
                    if t.as_str() != Some("yarn") {
                        return Err(bad(
                            &r.name(k),
                            format!("unsupported RoPE scaling {t} (only \"yarn\")"),
                        ));
                    }
                }
                (
                    r.float(&["factor"])?,
                    r.usize(&["original_max_position_embeddings"])?,
                    r.float_opt(&["beta_fast"])?.unwrap_or(DEFAULT_BETA_FAST),
                    r.float_opt(&["beta_slow"])?.unwrap_or(DEFAULT_BETA_SLOW),
                    r.float_opt(&["rope_theta"])?,
                )
            }
        };
        let rope_theta = match o.float_opt(&["rope_theta"])? {
            Some(t) => t,
            None => nested_theta.ok_or_else(|| o.missing(&["rope_theta"]))?,
        };
        Ok(Config {
            vocab_size: o.usize(&["vocab_size"])?,
            dim: o.usize(&["hidden_size"])?,
            n_layers: o.usize(&["num_hidden_layers"])?,
            n_heads: o.usize(&["num_attention_heads"])?,
            head_dim: o.usize(&["head_dim"])?,
            rope_head_dim: o.usize(&["qk_rope_head_dim"])?,
            q_lora_rank: o.usize(&["q_lora_rank"])?,
            o_lora_rank: o.usize(&["o_lora_rank"])?,
            o_groups: o.usize(&["o_groups"])?,
            window_size: o.usize(&["sliding_window"])?,
            n_routed_experts: o.usize(&["n_routed_experts"])?,
            n_activated_experts: o.usize(&["num_experts_per_tok"])?,
            n_shared_experts: o.usize(&["n_shared_experts"])?,
            moe_inter_dim: o.usize(&["moe_intermediate_size"])?,
            n_hash_layers: o.usize(&["num_hash_layers", "n_hash_layers"])?,
            n_mtp_layers: o.usize_opt(&["num_nextn_predict_layers"])?.unwrap_or(0),
            score_func: o.score_func(&["scoring_func"])?,
            route_scale: o.f32(&["routed_scaling_factor"])?,
            swiglu_limit: o.f32(&["swiglu_limit"])?,
            index_n_heads: o.usize(&["index_n_heads"])?,
            index_head_dim: o.usize(&["index_head_dim"])?,
            index_topk: o.usize(&["index_topk"])?,
            hc_mult: o.usize(&["hc_mult"])?,
            hc_sinkhorn_iters: o.usize(&["hc_sinkhorn_iters"])?,
            hc_eps: o.f32(&["hc_eps"])?,
            norm_eps: o.f32(&["rms_norm_eps"])?,
            rope_theta,
            compress_rope_theta: o.float(&["compress_rope_theta"])?,
            rope_factor,
            original_seq_len,
            beta_fast,
            beta_slow,
            compress_ratios: o.usize_list(&["compress_ratios"])?,
            max_seq_len: o
                .usize_opt(&["max_position_embeddings"])?
                .unwrap_or(DEFAULT_MAX_SEQ_LEN),
        })
    }

    /// The real DeepSeek-V4-Flash config (`spec/model.md`, "Real Flash config").
    pub fn flash() -> Config {
        let n_layers = 43;
        // layers 0-1 window only, then 4 / 128 alternating (layer 42 is 4), the MTP block 0.
        let mut compress_ratios: Vec<usize> = (0..n_layers)
            .map(|l| {
                if l < 2 {
                    0
                } else if l % 2 == 0 {
                    4
                } else {
                    128
                }
            })
            .collect();
        compress_ratios.push(0);
        Config {
            vocab_size: 129280,
            dim: 4096,
            n_layers,
            n_heads: 64,
            head_dim: 512,
            rope_head_dim: 64,
            q_lora_rank: 1024,
            o_lora_rank: 1024,
            o_groups: 8,
            window_size: 128,
            n_routed_experts: 256,
            n_activated_experts: 6,
            n_shared_experts: 1,
            moe_inter_dim: 2048,
            n_hash_layers: 3,
            n_mtp_layers: 1,
            score_func: ScoreFunc::SqrtSoftplus,
            route_scale: 1.5,
            swiglu_limit: 10.0,
            index_n_heads: 64,
            index_head_dim: 128,
            index_topk: 512,
            hc_mult: 4,
            hc_sinkhorn_iters: 20,
            hc_eps: 1e-6,
            norm_eps: 1e-6,
            rope_theta: 10000.0,
            compress_rope_theta: 160000.0,
            rope_factor: 16.0,
            original_seq_len: 65536,
            beta_fast: 32.0,
            beta_slow: 1.0,
            compress_ratios,
            max_seq_len: DEFAULT_MAX_SEQ_LEN,
        }
    }

    /// Consistency checks; called by the parsers. Errors name the (short) key at fault.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let nonzero = [
            ("vocab_size", self.vocab_size),
            ("dim", self.dim),
            ("n_layers", self.n_layers),
            ("n_heads", self.n_heads),
            ("head_dim", self.head_dim),
            ("rope_head_dim", self.rope_head_dim),
            ("q_lora_rank", self.q_lora_rank),
            ("o_lora_rank", self.o_lora_rank),
            ("o_groups", self.o_groups),
            ("window_size", self.window_size),
            ("n_routed_experts", self.n_routed_experts),
            ("n_activated_experts", self.n_activated_experts),
            ("moe_inter_dim", self.moe_inter_dim),
            ("index_n_heads", self.index_n_heads),
            ("index_head_dim", self.index_head_dim),
            ("index_topk", self.index_topk),
            ("hc_mult", self.hc_mult),
            ("hc_sinkhorn_iters", self.hc_sinkhorn_iters),
            ("max_seq_len", self.max_seq_len),
        ];
        for (key, v) in nonzero {
            if v == 0 {
                return Err(invalid(key, "must be > 0"));
            }
        }
        if !self.rope_head_dim.is_multiple_of(2) {
            return Err(invalid(
                "rope_head_dim",
                format!("must be even, found {}", self.rope_head_dim),
            ));
        }
        if self.head_dim <= self.rope_head_dim {
            return Err(invalid(
                "head_dim",
                format!(
                    "must be larger than rope_head_dim ({}), found {}",
                    self.rope_head_dim, self.head_dim
                ),
            ));
        }
        if self.index_head_dim <= self.rope_head_dim {
            return Err(invalid(
                "index_head_dim",
                format!(
                    "must be larger than rope_head_dim ({}), found {}",
                    self.rope_head_dim, self.index_head_dim
                ),
            ));
        }
        if !(self.n_heads * self.head_dim).is_multiple_of(self.o_groups) {
            return Err(invalid(
                "o_groups",
                format!(
                    "n_heads * head_dim = {} is not divisible by o_groups = {}",
                    self.n_heads * self.head_dim,
                    self.o_groups
                ),
            ));
        }
        if self.n_activated_experts > self.n_routed_experts {
            return Err(invalid(
                "n_activated_experts",
                format!(
                    "{} exceeds n_routed_experts = {}",
                    self.n_activated_experts, self.n_routed_experts
                ),
            ));
        }
        if self.n_hash_layers > self.n_layers {
            return Err(invalid(
                "n_hash_layers",
                format!(
                    "{} exceeds n_layers = {}",
                    self.n_hash_layers, self.n_layers
                ),
            ));
        }
        let want = self.n_layers + self.n_mtp_layers;
        if self.compress_ratios.len() != want {
            let msg = if self.compress_ratios.len() == self.n_layers && self.n_mtp_layers > 0 {
                format!(
                    "has {} entries (one per layer) but must also cover the {} MTP block(s): expected n_layers + n_mtp_layers = {} entries",
                    self.compress_ratios.len(),
                    self.n_mtp_layers,
                    want
                )
            } else {
                format!(
                    "expected n_layers + n_mtp_layers = {} + {} = {} entries, found {}",
                    self.n_layers,
                    self.n_mtp_layers,
                    want,
                    self.compress_ratios.len()
                )
            };
            return Err(invalid("compress_ratios", msg));
        }
        if let Some((i, &r)) = self
            .compress_ratios
            .iter()
            .enumerate()
            .find(|(_, &r)| r == 1)
        {
            return Err(invalid(
                "compress_ratios",
                format!("entry {i} is {r}: a ratio is 0 (window only) or >= 2"),
            ));
        }
        let positive = [
            ("hc_eps", self.hc_eps as f64),
            ("norm_eps", self.norm_eps as f64),
            ("route_scale", self.route_scale as f64),
            ("rope_theta", self.rope_theta),
            ("compress_rope_theta", self.compress_rope_theta),
            ("rope_factor", self.rope_factor),
        ];
        for (key, v) in positive {
            if !(v.is_finite() && v > 0.0) {
                return Err(invalid(
                    key,
                    format!("must be a positive number, found {v}"),
                ));
            }
        }
        let finite = [
            ("swiglu_limit", self.swiglu_limit as f64),
            ("beta_fast", self.beta_fast),
            ("beta_slow", self.beta_slow),
        ];
        for (key, v) in finite {
            if !(v.is_finite() && v >= 0.0) {
                return Err(invalid(
                    key,
                    format!("must be a non-negative number, found {v}"),
                ));
            }
        }
        Ok(())
    }

    /// `compress_ratios[layer]`; the MTP block i uses index `n_layers + i`. Panics out of range.
    pub fn compress_ratio(&self, layer: usize) -> usize {
        self.compress_ratios[layer]
    }

    /// Serialise in the official short-key style (the keys of `golden/tiny/config.json`, less
    /// the run-time `max_batch_size`), so `from_json_str(to_json())` round-trips.
    pub fn to_json(&self) -> String {
        // f32 fields print in their shortest form (1e-6, not 9.99999997e-7).
        fn f32v(x: f32) -> Value {
            let shortest: f64 = format!("{x}").parse().unwrap_or(x as f64);
            serde_json::Number::from_f64(shortest)
                .map(Value::Number)
                .unwrap_or(Value::Null)
        }
        fn f64v(x: f64) -> Value {
            serde_json::Number::from_f64(x)
                .map(Value::Number)
                .unwrap_or(Value::Null)
        }
        let mut m = Map::new();
        let mut put = |k: &str, v: Value| {
            m.insert(k.to_string(), v);
        };
        put("max_seq_len", self.max_seq_len.into());
        put("dtype", "fp8".into());
        put("scale_fmt", "ue8m0".into());
        put("expert_dtype", "fp4".into());
        put("vocab_size", self.vocab_size.into());
        put("dim", self.dim.into());
        put("moe_inter_dim", self.moe_inter_dim.into());
        put("n_layers", self.n_layers.into());
        put("n_hash_layers", self.n_hash_layers.into());
        put("n_mtp_layers", self.n_mtp_layers.into());
        put("n_heads", self.n_heads.into());
        put("n_routed_experts", self.n_routed_experts.into());
        put("n_shared_experts", self.n_shared_experts.into());
        put("n_activated_experts", self.n_activated_experts.into());
        put("score_func", self.score_func.as_str().into());
        put("route_scale", f32v(self.route_scale));
        put("swiglu_limit", f32v(self.swiglu_limit));
        put("q_lora_rank", self.q_lora_rank.into());
        put("head_dim", self.head_dim.into());
        put("rope_head_dim", self.rope_head_dim.into());
        put("norm_eps", f32v(self.norm_eps));
        put("o_groups", self.o_groups.into());
        put("o_lora_rank", self.o_lora_rank.into());
        put("window_size", self.window_size.into());
        put(
            "compress_ratios",
            Value::Array(self.compress_ratios.iter().map(|&r| r.into()).collect()),
        );
        put("compress_rope_theta", f64v(self.compress_rope_theta));
        put("original_seq_len", self.original_seq_len.into());
        put("rope_theta", f64v(self.rope_theta));
        put("rope_factor", f64v(self.rope_factor));
        put("beta_fast", f64v(self.beta_fast));
        put("beta_slow", f64v(self.beta_slow));
        put("index_n_heads", self.index_n_heads.into());
        put("index_head_dim", self.index_head_dim.into());
        put("index_topk", self.index_topk.into());
        put("hc_mult", self.hc_mult.into());
        put("hc_sinkhorn_iters", self.hc_sinkhorn_iters.into());
        put("hc_eps", f32v(self.hc_eps));
        serde_json::to_string_pretty(&Value::Object(m)).unwrap_or_default()
    }
}
