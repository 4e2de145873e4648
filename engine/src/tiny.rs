//! The tiny model that makes the engine work out of the box: random weights from a seed in the
//! released checkpoint layout, and a byte-level `tokenizer.json` carrying the DSV4 special
//! tokens. Its text is random; point `--model` at the real release for real answers.

use std::path::{Path, PathBuf};

use dsv4_reference::Config;
use serde_json::{json, Value};

/// The special tokens of the chat format, in id order (0 = BOS, 1 = EOS as in the release).
pub const SPECIAL_TOKENS: [&str; 20] = [
    "<｜begin▁of▁sentence｜>",
    "<｜end▁of▁sentence｜>",
    "<｜User｜>",
    "<｜Assistant｜>",
    "<think>",
    "</think>",
    "｜DSML｜",
    "<｜latest_reminder｜>",
    "<｜action｜>",
    "<｜query｜>",
    "<｜authority｜>",
    "<｜domain｜>",
    "<｜title｜>",
    "<｜extracted_url｜>",
    "<｜read_url｜>",
    "<｜fim▁hole｜>",
    "<｜fim▁begin｜>",
    "<｜fim▁end｜>",
    "<｜task｜>",
    "<|EOT|>",
];

/// Bump when the tiny model's config or generator changes, so caches are rebuilt.
const TINY_VERSION: &str = "tiny-v1";
const TINY_SEED: u64 = 20261123;

/// The tiny model's config: every feature of the real one (window-only, ratio-4 layers with the
/// indexer, a higher ratio, hash routing, MTP) at toy size.
pub fn tiny_config() -> Config {
    let mut c = dsv4_reference::synthetic::small_config();
    c.vocab_size = SPECIAL_TOKENS.len() + 256;
    c.dim = 128;
    c.n_heads = 4;
    c.n_routed_experts = 8;
    c.moe_inter_dim = 128;
    c.window_size = 32;
    c.index_topk = 8;
    c.max_seq_len = 4096;
    c
}

/// GPT-2's byte-to-unicode table: printable bytes map to themselves, the rest to U+0100...
fn byte_to_char(b: u8) -> char {
    let printable = |b: u8| (b'!'..=b'~').contains(&b) || (0xA1..=0xAC).contains(&b) || (0xAE..=0xFF).contains(&b);
    if printable(b) {
        return b as char;
    }
    let offset = (0..b).filter(|&x| !printable(x)).count() as u32;
    char::from_u32(256 + offset).unwrap()
}

/// A byte-level BPE tokenizer (no merges: one token per byte) with the special tokens first.
pub fn tiny_tokenizer_json() -> Value {
    let s = SPECIAL_TOKENS.len();
    let added: Vec<Value> = SPECIAL_TOKENS
        .iter()
        .enumerate()
        .map(|(id, t)| json!({"id": id, "content": t, "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true}))
        .collect();
    let mut vocab = serde_json::Map::new();
    for (id, t) in SPECIAL_TOKENS.iter().enumerate() {
        vocab.insert(t.to_string(), json!(id));
    }
    for b in 0..=255u8 {
        vocab.insert(byte_to_char(b).to_string(), json!(s + b as usize));
    }
    json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": added,
        "normalizer": null,
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": false},
        "post_processor": null,
        "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
        "model": {"type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null, "end_of_word_suffix": null,
                  "fuse_unk": false, "byte_fallback": false, "vocab": vocab, "merges": []}
    })
}

/// Write the tiny model (config.json, model.safetensors, tokenizer.json, tokenizer_config.json)
/// into `dir`.
pub fn write_tiny_model(dir: &Path) -> std::io::Result<()> {
    let cfg = tiny_config();
    dsv4_reference::synthetic::write_checkpoint(dir, &cfg, TINY_SEED)?;
    std::fs::write(dir.join("tokenizer.json"), serde_json::to_string(&tiny_tokenizer_json()).unwrap())?;
    let tc = json!({"add_bos_token": false, "add_eos_token": false, "bos_token": SPECIAL_TOKENS[0], "eos_token": SPECIAL_TOKENS[1],
                    "model_max_length": cfg.max_seq_len, "tokenizer_class": "PreTrainedTokenizerFast"});
    std::fs::write(dir.join("tokenizer_config.json"), serde_json::to_string_pretty(&tc).unwrap())?;
    std::fs::write(dir.join("README.txt"), "A tiny DeepSeek-V4-style model with RANDOM weights, made by `dsv4 init-tiny`.\nIts text is random: it exists to exercise the engine end to end.\n")
}

/// The cache folder of the default tiny model: `$DSV4_CACHE`, else `$XDG_CACHE_HOME/dsv4`,
/// else `~/.cache/dsv4`, else the system temp dir.
pub fn cache_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("DSV4_CACHE") {
        return PathBuf::from(d);
    }
    if let Some(d) = std::env::var_os("XDG_CACHE_HOME") {
        return PathBuf::from(d).join("dsv4");
    }
    if let Some(h) = std::env::var_os("HOME") {
        return PathBuf::from(h).join(".cache").join("dsv4");
    }
    std::env::temp_dir().join("dsv4")
}

/// The default tiny model folder, created on first use (written to a temporary folder and
/// renamed, so a concurrent or interrupted first run never leaves a half-written model).
pub fn ensure_tiny_model() -> std::io::Result<PathBuf> {
    let dir = cache_dir().join(TINY_VERSION);
    if dir.join("model.safetensors").exists() && dir.join("tokenizer.json").exists() {
        return Ok(dir);
    }
    std::fs::create_dir_all(cache_dir())?;
    let tmp = cache_dir().join(format!("{TINY_VERSION}.tmp-{}", std::process::id()));
    write_tiny_model(&tmp)?;
    match std::fs::rename(&tmp, &dir) {
        Ok(()) => Ok(dir),
        Err(_) if dir.join("model.safetensors").exists() => {
            let _ = std::fs::remove_dir_all(&tmp);
            Ok(dir)
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_table_is_a_bijection_onto_256_chars() {
        let chars: std::collections::BTreeSet<char> = (0..=255u8).map(byte_to_char).collect();
        assert_eq!(chars.len(), 256);
        assert_eq!(byte_to_char(b'A'), 'A');
        assert_eq!(byte_to_char(b' '), 'Ġ');
        assert_eq!(byte_to_char(b'\n'), 'Ċ');
    }
}
