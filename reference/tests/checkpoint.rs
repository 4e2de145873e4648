//! Checkpoint loading and config parsing: the golden tiny checkpoint, synthetic safetensors files
//! (single, sharded with an index, several without one) and every validation error.

use std::path::{Path, PathBuf};

use dsv4_reference::checkpoint::{Bytes, Checkpoint, DType, LoadError};
use dsv4_reference::config::{Config, ConfigError, ScoreFunc};
use proptest::prelude::*;

const GOLDEN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/golden/tiny");

fn golden() -> PathBuf {
    PathBuf::from(GOLDEN)
}

// ---------------------------------------------------------------------------------------------
// safetensors writing

/// One tensor to write: name, safetensors dtype name, shape, raw bytes.
struct T {
    name: String,
    dtype: &'static str,
    shape: Vec<usize>,
    data: Vec<u8>,
}

fn t(name: &str, dtype: &'static str, shape: &[usize], data: Vec<u8>) -> T {
    T {
        name: name.to_string(),
        dtype,
        shape: shape.to_vec(),
        data,
    }
}

/// A tensor of `dtype` and `shape` filled with `fill`.
fn filled(name: &str, dtype: &'static str, shape: &[usize], fill: u8) -> T {
    let size = DType::ALL
        .iter()
        .find(|d| d.name() == dtype)
        .unwrap()
        .size_in_bytes();
    t(
        name,
        dtype,
        shape,
        vec![fill; size * shape.iter().product::<usize>()],
    )
}

fn f32s(name: &str, shape: &[usize], v: &[f32]) -> T {
    t(
        name,
        "F32",
        shape,
        v.iter().flat_map(|x| x.to_le_bytes()).collect(),
    )
}

/// The bytes of a safetensors file holding `tensors`, contiguous in order.
fn st_bytes(tensors: &[T]) -> Vec<u8> {
    let mut header = serde_json::Map::new();
    header.insert("__metadata__".into(), serde_json::json!({"format": "pt"}));
    let mut off = 0usize;
    for x in tensors {
        header.insert(
            x.name.clone(),
            serde_json::json!({"dtype": x.dtype, "shape": x.shape, "data_offsets": [off, off + x.data.len()]}),
        );
        off += x.data.len();
    }
    let mut h = serde_json::to_vec(&serde_json::Value::Object(header)).unwrap();
    while !h.len().is_multiple_of(8) {
        h.push(b' ');
    }
    let mut out = (h.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(&h);
    for x in tensors {
        out.extend_from_slice(&x.data);
    }
    out
}

fn write_st(path: &Path, tensors: &[T]) {
    std::fs::write(path, st_bytes(tensors)).unwrap();
}

/// A raw file: 8-byte length + header text + data.
fn write_raw(path: &Path, header: &str, data: &[u8]) {
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(data);
    std::fs::write(path, out).unwrap();
}

/// A small valid model: an fp8 linear, an fp4 expert, floats, ints.
fn sample() -> Vec<T> {
    vec![
        filled("a.wq.weight", "F8_E4M3", &[130, 256], 0x38),
        filled("a.wq.scale", "F8_E8M0", &[2, 2], 127),
        filled("e.w1.weight", "I8", &[64, 32], 0x21),
        filled("e.w1.scale", "F8_E8M0", &[64, 2], 126),
        t(
            "norm.weight",
            "BF16",
            &[4],
            [1.0f32, -2.0, 0.5, 3.0]
                .iter()
                .flat_map(|x| ((x.to_bits() >> 16) as u16).to_le_bytes())
                .collect(),
        ),
        f32s("sink", &[2, 2], &[1.0, 2.0, 3.0, 4.0]),
        t(
            "tid",
            "I32",
            &[2, 3],
            [0i32, 1, 2, 3, 4, 5]
                .iter()
                .flat_map(|x| x.to_le_bytes())
                .collect(),
        ),
        t(
            "tid64",
            "I64",
            &[3],
            [7i64, -1, 9].iter().flat_map(|x| x.to_le_bytes()).collect(),
        ),
        filled("embed.weight", "BF16", &[8, 4], 0),
    ]
}

fn tmp_with(files: &[(&str, &[T])]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, tensors) in files {
        write_st(&dir.path().join(name), tensors);
    }
    dir
}

fn err_msg<T>(r: Result<T, LoadError>) -> String {
    match r {
        Ok(_) => panic!("expected an error"),
        Err(e) => e.to_string(),
    }
}

fn assert_has(msg: &str, parts: &[&str]) {
    for p in parts {
        assert!(msg.contains(p), "message {msg:?} should contain {p:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// golden tiny

#[test]
fn golden_tiny_checkpoint_loads() {
    let ck = Checkpoint::open(&golden()).unwrap();
    // model.safetensors only: the golden_*.safetensors / ops.safetensors beside it are not weights.
    assert!(ck.contains("embed.weight"));
    assert!(ck.names().iter().all(|n| n.starts_with("layers.")
        || n.starts_with("mtp.")
        || [
            "embed.weight",
            "head.weight",
            "norm.weight",
            "hc_head_fn",
            "hc_head_base",
            "hc_head_scale"
        ]
        .contains(&n.as_str())));
    let names = ck.names();
    assert!(names.windows(2).all(|w| w[0] < w[1]), "names() sorted");

    let (w, s) = ck.fp8_weight("layers.1.attn.wq_a", 128, 256).unwrap();
    assert_eq!((w.dtype, w.shape.clone()), (DType::F8E4M3, vec![128, 256]));
    assert_eq!((s.dtype, s.shape.clone()), (DType::F8E8M0, vec![1, 2]));
    assert_eq!(w.bytes.len(), 128 * 256);
    assert!(w.file.ends_with("model.safetensors"));

    let (w, s) = ck
        .fp4_weight("layers.1.ffn.experts.0.w1", 256, 256)
        .unwrap();
    assert_eq!((w.dtype, w.shape.clone()), (DType::I8, vec![256, 128]));
    assert_eq!(s.shape, vec![256, 8]);

    let e = ck.float_matrix("embed.weight", &[256, 256]).unwrap();
    assert_eq!(e.dtype, DType::BF16);
    assert_eq!(e.bytes.len(), 256 * 256 * 2);

    let norm = ck.floats("norm.weight", &[256]).unwrap();
    assert!(norm.iter().all(|x| x.is_finite()));
    let tid = ck.ints("layers.1.ffn.gate.tid2eid", &[256, 2]).unwrap();
    assert!(tid.iter().all(|&x| (0..8).contains(&x)));

    let unused = ck.unused();
    assert!(!unused.contains(&"embed.weight".to_string()));
    assert!(!unused.contains(&"layers.1.attn.wq_a.scale".to_string()));
    assert!(unused.contains(&"head.weight".to_string()));
    assert_eq!(unused.len(), names.len() - 7);
}

#[test]
fn golden_tiny_config() {
    for p in [golden(), golden().join("config.json")] {
        let c = Config::from_file(&p).unwrap();
        assert_eq!(c.dim, 256);
        assert_eq!(c.n_layers, 5);
        assert_eq!(c.n_mtp_layers, 1);
        assert_eq!(c.compress_ratios, vec![0, 4, 16, 4, 0, 0]);
        assert_eq!(c.compress_ratio(5), 0);
        assert_eq!(c.compress_ratio(2), 16);
        assert_eq!(c.score_func, ScoreFunc::SqrtSoftplus);
        assert_eq!(c.rope_factor, 4.0);
        assert_eq!(c.original_seq_len, 64);
        assert_eq!(c.max_seq_len, 256);
        assert_eq!(c.hc_eps, 1e-6);
        assert_eq!(c.route_scale, 1.5);
        assert_eq!((c.beta_fast, c.beta_slow), (32.0, 1.0));
        assert_eq!((c.window_size, c.index_topk, c.n_hash_layers), (8, 4, 2));
    }
}

// ---------------------------------------------------------------------------------------------
// config

/// The Hugging Face release's config.json (transformers keys), as published.
const FLASH_HF_CONFIG: &str = r#"{
  "architectures": ["DeepseekV4ForCausalLM"],
  "attention_bias": false,
  "attention_dropout": 0.0,
  "bos_token_id": 0,
  "eos_token_id": 1,
  "expert_dtype": "fp4",
  "hc_eps": 1e-06,
  "hc_mult": 4,
  "hc_sinkhorn_iters": 20,
  "head_dim": 512,
  "hidden_act": "silu",
  "hidden_size": 4096,
  "index_head_dim": 128,
  "index_n_heads": 64,
  "index_topk": 512,
  "initializer_range": 0.02,
  "max_position_embeddings": 1048576,
  "model_type": "deepseek_v4",
  "moe_intermediate_size": 2048,
  "n_routed_experts": 256,
  "n_shared_experts": 1,
  "norm_topk_prob": true,
  "num_attention_heads": 64,
  "num_experts_per_tok": 6,
  "num_hidden_layers": 43,
  "num_hash_layers": 3,
  "num_key_value_heads": 1,
  "num_nextn_predict_layers": 1,
  "o_groups": 8,
  "o_lora_rank": 1024,
  "q_lora_rank": 1024,
  "qk_rope_head_dim": 64,
  "quantization_config": {
    "activation_scheme": "dynamic",
    "fmt": "e4m3",
    "quant_method": "fp8",
    "scale_fmt": "ue8m0",
    "weight_block_size": [128, 128]
  },
  "rms_norm_eps": 1e-06,
  "rope_scaling": {
    "beta_fast": 32,
    "beta_slow": 1,
    "factor": 16,
    "original_max_position_embeddings": 65536,
    "type": "yarn"
  },
  "rope_theta": 10000,
  "routed_scaling_factor": 1.5,
  "scoring_func": "sqrtsoftplus",
  "sliding_window": 128,
  "swiglu_limit": 10.0,
  "tie_word_embeddings": false,
  "topk_method": "noaux_tc",
  "torch_dtype": "bfloat16",
  "transformers_version": "4.57.1",
  "use_cache": true,
  "vocab_size": 129280,
  "compress_rope_theta": 160000,
  "compress_ratios": [0, 0, 4, 128, 4, 128, 4, 128, 4, 128, 4, 128, 4, 128, 4, 128, 4, 128, 4, 128, 4, 128, 4, 128, 4, 128, 4, 128, 4, 128, 4, 128, 4, 128, 4, 128, 4, 128, 4, 128, 4, 128, 4, 0]
}"#;

fn edit(text: &str, f: impl FnOnce(&mut serde_json::Map<String, serde_json::Value>)) -> String {
    let mut v: serde_json::Value = serde_json::from_str(text).unwrap();
    f(v.as_object_mut().unwrap());
    serde_json::to_string(&v).unwrap()
}

fn cfg_err(text: &str) -> String {
    match Config::from_json_str(text) {
        Ok(c) => panic!("expected an error, parsed {c:?}"),
        Err(e) => e.to_string(),
    }
}

fn tiny_text() -> String {
    std::fs::read_to_string(golden().join("config.json")).unwrap()
}

#[test]
fn flash_config() {
    let f = Config::flash();
    f.validate().unwrap();
    assert_eq!(f.compress_ratios.len(), 44);
    assert_eq!(&f.compress_ratios[..5], &[0, 0, 4, 128, 4]);
    assert_eq!(f.compress_ratio(41), 128);
    assert_eq!(f.compress_ratio(42), 4);
    assert_eq!(f.compress_ratio(43), 0);
    assert_eq!(f.compress_ratios.iter().filter(|&&r| r == 4).count(), 21);
    assert_eq!(f.compress_ratios.iter().filter(|&&r| r == 128).count(), 20);
    assert_eq!(f.max_seq_len, 1 << 20);
}

#[test]
fn transformers_config_parses_to_flash() {
    assert_eq!(
        Config::from_json_str(FLASH_HF_CONFIG).unwrap(),
        Config::flash()
    );
    // newer transformers: rope_parameters, rope_type
    let text = edit(FLASH_HF_CONFIG, |m| {
        let mut rope = m.remove("rope_scaling").unwrap();
        let r = rope.as_object_mut().unwrap();
        r.remove("type");
        r.insert("rope_type".into(), "yarn".into());
        r.insert("rope_theta".into(), m.remove("rope_theta").unwrap());
        m.insert("rope_parameters".into(), rope);
    });
    assert_eq!(Config::from_json_str(&text).unwrap(), Config::flash());
    // defaults: max_position_embeddings, scoring_func, beta_*
    let text = edit(FLASH_HF_CONFIG, |m| {
        m.remove("max_position_embeddings");
        m.remove("scoring_func");
        let r = m.get_mut("rope_scaling").unwrap().as_object_mut().unwrap();
        r.remove("beta_fast");
        r.remove("beta_slow");
    });
    assert_eq!(Config::from_json_str(&text).unwrap(), Config::flash());
    // rope_scaling: null = no YaRN
    let c = Config::from_json_str(&edit(FLASH_HF_CONFIG, |m| {
        m.insert("rope_scaling".into(), serde_json::Value::Null);
    }))
    .unwrap();
    assert_eq!((c.rope_factor, c.original_seq_len), (1.0, 0));
}

#[test]
fn short_key_flash_parses_to_flash() {
    let text = Config::flash().to_json();
    assert!(text.contains("\"n_activated_experts\": 6"));
    assert!(
        text.contains("\"hc_eps\": 1e-6") || text.contains("\"hc_eps\": 0.000001"),
        "{text}"
    );
    assert_eq!(Config::from_json_str(&text).unwrap(), Config::flash());
}

#[test]
fn to_json_round_trips() {
    let tiny = Config::from_file(&golden()).unwrap();
    let text = tiny.to_json();
    assert_eq!(Config::from_json_str(&text).unwrap(), tiny);
    // same keys as the official config, less the run-time max_batch_size
    let ours: serde_json::Value = serde_json::from_str(&text).unwrap();
    let official: serde_json::Value = serde_json::from_str(&tiny_text()).unwrap();
    let mut a: Vec<&String> = ours.as_object().unwrap().keys().collect();
    let mut b: Vec<&String> = official
        .as_object()
        .unwrap()
        .keys()
        .filter(|k| k.as_str() != "max_batch_size")
        .collect();
    a.sort();
    b.sort();
    assert_eq!(a, b);

    let mut odd = Config::flash();
    odd.score_func = ScoreFunc::Softmax;
    odd.route_scale = 2.5;
    odd.hc_eps = 3.3e-7;
    odd.norm_eps = 1e-5;
    odd.swiglu_limit = 0.0;
    odd.rope_factor = 40.0;
    odd.beta_fast = 31.5;
    odd.n_mtp_layers = 0;
    odd.compress_ratios.pop();
    assert_eq!(Config::from_json_str(&odd.to_json()).unwrap(), odd);
}

#[test]
fn config_missing_key_names_key_and_file() {
    let msg = cfg_err(&edit(&tiny_text(), |m| {
        m.remove("dim");
    }));
    assert_has(&msg, &["missing key 'dim'"]);

    let msg = cfg_err(&edit(FLASH_HF_CONFIG, |m| {
        m.remove("moe_intermediate_size");
    }));
    assert_has(
        &msg,
        &["missing key 'moe_intermediate_size'", "transformers"],
    );

    let msg = cfg_err(&edit(FLASH_HF_CONFIG, |m| {
        m["rope_scaling"].as_object_mut().unwrap().remove("factor");
    }));
    assert_has(&msg, &["'rope_scaling.factor'"]);

    let msg = cfg_err(&edit(FLASH_HF_CONFIG, |m| {
        m.remove("rope_scaling");
    }));
    assert_has(&msg, &["'rope_scaling'"]);

    let msg = cfg_err(&edit(FLASH_HF_CONFIG, |m| {
        m.remove("num_hash_layers");
    }));
    assert_has(&msg, &["'num_hash_layers'"]);

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.json");
    std::fs::write(
        &path,
        edit(&tiny_text(), |m| {
            m.remove("index_topk");
        }),
    )
    .unwrap();
    let e = Config::from_file(dir.path()).unwrap_err();
    assert!(matches!(e, ConfigError::Missing { .. }));
    assert_has(&e.to_string(), &["index_topk", &path.display().to_string()]);

    std::fs::write(&path, "{\"dim\": 4,,}").unwrap();
    let msg = Config::from_file(&path).unwrap_err().to_string();
    assert_has(&msg, &["invalid JSON", &path.display().to_string()]);

    let missing = dir.path().join("nope.json");
    let msg = Config::from_file(&missing).unwrap_err().to_string();
    assert_has(&msg, &["nope.json"]);
}

#[test]
fn config_values_and_consistency() {
    // ints written as floats are fine; fractions are not
    let c = Config::from_json_str(&edit(&tiny_text(), |m| {
        m.insert("dim".into(), serde_json::json!(256.0));
    }))
    .unwrap();
    assert_eq!(c.dim, 256);
    let msg = cfg_err(&edit(&tiny_text(), |m| {
        m.insert("dim".into(), serde_json::json!(2.5));
    }));
    assert_has(&msg, &["'dim'", "2.5"]);
    let msg = cfg_err(&edit(&tiny_text(), |m| {
        m.insert("n_heads".into(), serde_json::json!("four"));
    }));
    assert_has(&msg, &["'n_heads'", "four"]);

    let msg = cfg_err(&edit(&tiny_text(), |m| {
        m.insert("score_func".into(), "relu".into());
    }));
    assert_has(&msg, &["'score_func'", "relu", "sqrtsoftplus"]);
    for (s, f) in [
        ("sigmoid", ScoreFunc::Sigmoid),
        ("softmax", ScoreFunc::Softmax),
    ] {
        let c = Config::from_json_str(&edit(&tiny_text(), |m| {
            m.insert("score_func".into(), s.into());
        }))
        .unwrap();
        assert_eq!(c.score_func, f);
    }
    let c = Config::from_json_str(&edit(&tiny_text(), |m| {
        m.remove("score_func");
        m.remove("beta_fast");
    }))
    .unwrap();
    assert_eq!((c.score_func, c.beta_fast), (ScoreFunc::SqrtSoftplus, 32.0));

    // compress_ratios covering the layers but not the MTP block
    let msg = cfg_err(&edit(&tiny_text(), |m| {
        m.insert(
            "compress_ratios".into(),
            serde_json::json!([0, 4, 16, 4, 0]),
        );
    }));
    assert_has(&msg, &["compress_ratios", "MTP", "6 entries"]);
    let msg = cfg_err(&edit(FLASH_HF_CONFIG, |m| {
        m.get_mut("compress_ratios")
            .unwrap()
            .as_array_mut()
            .unwrap()
            .pop();
    }));
    assert_has(&msg, &["compress_ratios", "44 entries"]);
    // ... fine without an MTP block
    let c = Config::from_json_str(&edit(&tiny_text(), |m| {
        m.insert(
            "compress_ratios".into(),
            serde_json::json!([0, 4, 16, 4, 0]),
        );
        m.insert("n_mtp_layers".into(), 0.into());
    }))
    .unwrap();
    assert_eq!(c.compress_ratios.len(), 5);

    let msg = cfg_err(&edit(&tiny_text(), |m| {
        m.insert("n_activated_experts".into(), 9.into());
    }));
    assert_has(&msg, &["n_activated_experts", "n_routed_experts"]);
    let msg = cfg_err(&edit(&tiny_text(), |m| {
        m.insert("rope_head_dim".into(), 128.into());
    }));
    assert_has(&msg, &["head_dim"]);
    let msg = cfg_err(&edit(&tiny_text(), |m| {
        m.insert("o_groups".into(), 3.into());
    }));
    assert_has(&msg, &["o_groups"]);
    let msg = cfg_err(&edit(&tiny_text(), |m| {
        m.insert("hc_mult".into(), 0.into());
    }));
    assert_has(&msg, &["hc_mult"]);
    let msg = cfg_err(&edit(FLASH_HF_CONFIG, |m| {
        m["rope_scaling"]
            .as_object_mut()
            .unwrap()
            .insert("type".into(), "linear".into());
    }));
    assert_has(&msg, &["rope_scaling.type", "linear"]);
    assert_has(&cfg_err("[1, 2]"), &["not a JSON object"]);
}

// ---------------------------------------------------------------------------------------------
// synthetic checkpoints

#[test]
fn single_file_loads_and_converts() {
    let dir = tmp_with(&[("model.safetensors", &sample())]);
    let ck = Checkpoint::open(dir.path()).unwrap();
    assert_eq!(ck.dir(), dir.path());
    assert_eq!(ck.names().len(), 9);
    assert_eq!(
        ck.floats("norm.weight", &[4]).unwrap(),
        vec![1.0, -2.0, 0.5, 3.0]
    );
    assert_eq!(
        ck.floats("sink", &[2, 2]).unwrap(),
        vec![1.0, 2.0, 3.0, 4.0]
    );
    assert_eq!(ck.ints("tid", &[2, 3]).unwrap(), vec![0, 1, 2, 3, 4, 5]);
    assert_eq!(ck.ints("tid64", &[3]).unwrap(), vec![7, -1, 9]);
    let (w, s) = ck.fp8_weight("a.wq", 130, 256).unwrap();
    assert!(w.bytes.iter().all(|&b| b == 0x38));
    assert_eq!(&*s.bytes, &[127u8; 4]);
    let (w, s) = ck.fp4_weight("e.w1", 64, 64).unwrap();
    assert_eq!((w.bytes.len(), s.bytes.len()), (64 * 32, 128));
    let m = ck.float_matrix("embed.weight", &[8, 4]).unwrap();
    let m2 = m.clone();
    assert_eq!(m2.bytes.len(), 64);
    assert_eq!(&*Bytes::from_vec(vec![1, 2, 3]), &[1, 2, 3]);
    assert!(ck.unused().is_empty());
    // F16 floats
    let dir = tmp_with(&[(
        "model.safetensors",
        &[t(
            "h",
            "F16",
            &[2],
            [half::f16::from_f32(1.5), half::f16::from_f32(-4.0)]
                .iter()
                .flat_map(|x| x.to_le_bytes())
                .collect(),
        )],
    )]);
    assert_eq!(
        Checkpoint::open(dir.path())
            .unwrap()
            .floats("h", &[2])
            .unwrap(),
        vec![1.5, -4.0]
    );
}

#[test]
fn path_to_one_file_opens() {
    let dir = tmp_with(&[("weights.safetensors", &sample())]);
    let ck = Checkpoint::open(&dir.path().join("weights.safetensors")).unwrap();
    assert!(ck.contains("a.wq.weight"));
}

fn index_json(map: &[(&str, &str)]) -> String {
    let wm: serde_json::Map<String, serde_json::Value> = map
        .iter()
        .map(|(k, v)| (k.to_string(), serde_json::Value::from(*v)))
        .collect();
    serde_json::json!({"metadata": {"total_size": 0}, "weight_map": wm}).to_string()
}

fn sharded() -> tempfile::TempDir {
    let mut all = sample();
    let second: Vec<T> = all.split_off(4);
    let dir = tmp_with(&[
        ("model-00001-of-00002.safetensors", &all),
        ("model-00002-of-00002.safetensors", &second),
    ]);
    let mut map: Vec<(String, &str)> = all
        .iter()
        .map(|x| (x.name.clone(), "model-00001-of-00002.safetensors"))
        .collect();
    map.extend(
        second
            .iter()
            .map(|x| (x.name.clone(), "model-00002-of-00002.safetensors")),
    );
    let map: Vec<(&str, &str)> = map.iter().map(|(a, b)| (a.as_str(), *b)).collect();
    std::fs::write(
        dir.path().join("model.safetensors.index.json"),
        index_json(&map),
    )
    .unwrap();
    dir
}

#[test]
fn sharded_with_index_loads_both_shards() {
    let dir = sharded();
    // a stray safetensors file next to the shards is not opened
    write_st(
        &dir.path().join("extra.safetensors"),
        &[filled("stray", "U8", &[1], 0)],
    );
    let ck = Checkpoint::open(dir.path()).unwrap();
    assert_eq!(ck.names().len(), 9);
    assert!(!ck.contains("stray"));
    let (w, _) = ck.fp8_weight("a.wq", 130, 256).unwrap();
    assert!(w.file.ends_with("model-00001-of-00002.safetensors"));
    let n = ck.tensor("norm.weight").unwrap();
    assert!(n.file.ends_with("model-00002-of-00002.safetensors"));
    assert_eq!(
        ck.floats("norm.weight", &[4]).unwrap(),
        vec![1.0, -2.0, 0.5, 3.0]
    );
    assert_eq!(ck.ints("tid", &[2, 3]).unwrap(), vec![0, 1, 2, 3, 4, 5]);
    assert_eq!(ck.files().len(), 2);
}

#[test]
fn several_files_without_index() {
    let mut all = sample();
    let second: Vec<T> = all.split_off(4);
    let dir = tmp_with(&[("a.safetensors", &all), ("b.safetensors", &second)]);
    let ck = Checkpoint::open(dir.path()).unwrap();
    assert_eq!(ck.names().len(), 9);
    // the same name in two files
    write_st(
        &dir.path().join("c.safetensors"),
        &[filled("sink", "F32", &[1], 0)],
    );
    let msg = err_msg(Checkpoint::open(dir.path()));
    assert_has(&msg, &["'sink'", "b.safetensors", "c.safetensors"]);
}

#[test]
fn index_pointing_to_missing_shard() {
    let dir = sharded();
    std::fs::remove_file(dir.path().join("model-00002-of-00002.safetensors")).unwrap();
    let msg = err_msg(Checkpoint::open(dir.path()));
    assert_has(
        &msg,
        &[
            "model.safetensors.index.json",
            "model-00002-of-00002.safetensors",
            "cannot be opened",
        ],
    );
}

#[test]
fn index_claiming_tensor_not_in_shard() {
    let dir = sharded();
    let idx = dir.path().join("model.safetensors.index.json");
    // a name that is nowhere
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&idx).unwrap()).unwrap();
    v["weight_map"]["ghost.weight"] = "model-00001-of-00002.safetensors".into();
    std::fs::write(&idx, v.to_string()).unwrap();
    let msg = err_msg(Checkpoint::open(dir.path()));
    assert_has(
        &msg,
        &[
            "'ghost.weight'",
            "model-00001-of-00002.safetensors",
            "does not contain it",
        ],
    );
    // a name in the other shard
    v["weight_map"]
        .as_object_mut()
        .unwrap()
        .remove("ghost.weight");
    v["weight_map"]["sink"] = "model-00001-of-00002.safetensors".into();
    std::fs::write(&idx, v.to_string()).unwrap();
    let msg = err_msg(Checkpoint::open(dir.path()));
    assert_has(
        &msg,
        &[
            "'sink'",
            "model-00001-of-00002.safetensors",
            "it is in",
            "model-00002-of-00002.safetensors",
        ],
    );
    // garbage index
    std::fs::write(&idx, "{\"weight_map\": 3}").unwrap();
    assert_has(
        &err_msg(Checkpoint::open(dir.path())),
        &["bad index", "weight_map"],
    );
}

#[test]
fn truncated_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.safetensors");
    let bytes = st_bytes(&sample());
    std::fs::write(&path, &bytes[..bytes.len() - 10]).unwrap();
    let msg = err_msg(Checkpoint::open(dir.path()));
    assert_has(
        &msg,
        &[
            &path.display().to_string(),
            "truncated",
            &format!("end at byte {}", bytes.len()),
            &format!("has {} bytes", bytes.len() - 10),
        ],
    );
    // shorter than the length prefix
    std::fs::write(&path, [1u8, 2, 3]).unwrap();
    assert_has(
        &err_msg(Checkpoint::open(dir.path())),
        &["model.safetensors", "bad header", "3 bytes"],
    );
}

#[test]
fn bad_headers() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.safetensors");
    let open = || err_msg(Checkpoint::open(dir.path()));

    write_raw(&path, "{\"a\": {\"dtype\": \"F32\", garbage", &[0; 4]);
    assert_has(
        &open(),
        &["model.safetensors", "bad header", "invalid JSON"],
    );

    let mut out = 1_000_000u64.to_le_bytes().to_vec();
    out.extend_from_slice(b"{}");
    std::fs::write(&path, out).unwrap();
    assert_has(
        &open(),
        &[
            "model.safetensors",
            "bad header",
            "header length 1000000",
            "10 bytes",
        ],
    );

    write_raw(
        &path,
        r#"{"a": {"dtype": "F4", "shape": [2], "data_offsets": [0, 1]}}"#,
        &[0; 1],
    );
    assert_has(&open(), &["bad header", "'a'", "unknown dtype 'F4'"]);

    write_raw(
        &path,
        r#"{"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 4]}}"#,
        &[0; 8],
    );
    assert_has(&open(), &["bad header", "'a'", "hold 4 bytes", "needs 8"]);

    write_raw(
        &path,
        r#"{"a": {"dtype": "F32", "shape": [2, -1], "data_offsets": [0, 4]}}"#,
        &[0; 8],
    );
    assert_has(&open(), &["bad header", "'a'", "shape"]);

    write_raw(
        &path,
        r#"{"a": {"dtype": "F32", "shape": [1], "data_offsets": [4]}}"#,
        &[0; 8],
    );
    assert_has(&open(), &["bad header", "'a'", "data_offsets"]);

    write_raw(
        &path,
        r#"{"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}, "b": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}"#,
        &[0; 8],
    );
    assert_has(&open(), &["bad header", "overlap"]);

    write_raw(&path, "[1, 2]", &[]);
    assert_has(&open(), &["bad header", "not a JSON object"]);

    // header-only file with no tensors is fine
    write_raw(&path, r#"{"__metadata__": {"format": "pt"}}"#, &[]);
    assert!(Checkpoint::open(dir.path()).unwrap().names().is_empty());
}

#[test]
fn missing_dir_and_empty_dir() {
    let dir = tempfile::tempdir().unwrap();
    let gone = dir.path().join("no-such-dir");
    assert_has(&err_msg(Checkpoint::open(&gone)), &["no-such-dir"]);
    assert_has(
        &err_msg(Checkpoint::open(dir.path())),
        &["no model.safetensors"],
    );
}

#[test]
fn wrong_dtype() {
    let dir = tmp_with(&[(
        "model.safetensors",
        &[
            filled("layers.3.attn.wq_a.weight", "BF16", &[128, 256], 0),
            filled("layers.3.attn.wq_a.scale", "F8_E8M0", &[1, 2], 127),
        ],
    )]);
    let ck = Checkpoint::open(dir.path()).unwrap();
    let file = dir.path().join("model.safetensors").display().to_string();
    let msg = err_msg(ck.fp8_weight("layers.3.attn.wq_a", 128, 256));
    assert_has(
        &msg,
        &[
            "tensor 'layers.3.attn.wq_a.weight'",
            &file,
            "expected dtype F8_E4M3, found BF16",
        ],
    );
    let msg = err_msg(ck.ints("layers.3.attn.wq_a.weight", &[128, 256]));
    assert_has(&msg, &["expected dtype I32 or I64, found BF16"]);
    let msg = err_msg(ck.floats("layers.3.attn.wq_a.scale", &[1, 2]));
    assert_has(
        &msg,
        &[
            "'layers.3.attn.wq_a.scale'",
            "expected dtype BF16 or F16 or F32, found F8_E8M0",
        ],
    );
    let msg = err_msg(ck.float_matrix("layers.3.attn.wq_a.scale", &[1, 2]));
    assert_has(&msg, &["expected dtype BF16 or F32, found F8_E8M0"]);
}

#[test]
fn wrong_shape_and_missing_tensor() {
    let dir = tmp_with(&[("model.safetensors", &sample())]);
    let ck = Checkpoint::open(dir.path()).unwrap();
    let msg = err_msg(ck.floats("sink", &[4]));
    assert_has(
        &msg,
        &[
            "tensor 'sink'",
            "model.safetensors",
            "expected shape [4]",
            "found [2, 2]",
        ],
    );
    let msg = err_msg(ck.fp8_weight("a.wq", 128, 256));
    assert_has(
        &msg,
        &[
            "'a.wq.weight'",
            "expected shape [128, 256]",
            "found [130, 256]",
        ],
    );
    let msg = err_msg(ck.fp4_weight("e.w1", 64, 128));
    assert_has(
        &msg,
        &["'e.w1.weight'", "expected shape [64, 64]", "found [64, 32]"],
    );
    let msg = err_msg(ck.fp4_weight("e.w1", 64, 48));
    assert_has(&msg, &["'e.w1.weight'", "divisible by 32"]);
    let msg = err_msg(ck.tensor("layers.9.nothing"));
    assert_has(
        &msg,
        &[
            "tensor 'layers.9.nothing' is not in the checkpoint",
            &dir.path().display().to_string(),
        ],
    );
    let msg = err_msg(ck.fp8_weight("nope", 1, 1));
    assert_has(&msg, &["'nope.weight' is not in the checkpoint"]);
    assert!(!ck.contains("nope.weight"));
}

#[test]
fn ints_range_check() {
    let dir = tmp_with(&[(
        "model.safetensors",
        &[t(
            "big",
            "I64",
            &[2],
            [1i64, 5_000_000_000]
                .iter()
                .flat_map(|x| x.to_le_bytes())
                .collect(),
        )],
    )]);
    let ck = Checkpoint::open(dir.path()).unwrap();
    assert_has(
        &err_msg(ck.ints("big", &[2])),
        &["'big'", "5000000000", "index 1", "i32"],
    );
}

#[test]
fn nan_scales() {
    let mut fp8_scale = vec![127u8; 4];
    fp8_scale[3] = 0xFF;
    let mut fp4_scale = vec![126u8; 128];
    fp4_scale[17] = 0xFF;
    let dir = tmp_with(&[(
        "model.safetensors",
        &[
            filled("layers.3.attn.wq_a.weight", "F8_E4M3", &[130, 256], 0),
            t("layers.3.attn.wq_a.scale", "F8_E8M0", &[2, 2], fp8_scale),
            filled("layers.0.ffn.experts.1.w2.weight", "U8", &[64, 32], 0),
            t(
                "layers.0.ffn.experts.1.w2.scale",
                "F8_E8M0",
                &[64, 2],
                fp4_scale,
            ),
        ],
    )]);
    let ck = Checkpoint::open(dir.path()).unwrap();
    let msg = err_msg(ck.fp8_weight("layers.3.attn.wq_a", 130, 256));
    assert_has(
        &msg,
        &[
            "tensor 'layers.3.attn.wq_a.scale'",
            "model.safetensors",
            "scale byte 0xFF (NaN) at index 3",
        ],
    );
    let msg = err_msg(ck.fp4_weight("layers.0.ffn.experts.1.w2", 64, 64));
    assert_has(
        &msg,
        &[
            "tensor 'layers.0.ffn.experts.1.w2.scale'",
            "scale byte 0xFF (NaN) at index 17",
        ],
    );
}

#[test]
fn scale_shape_inconsistent_with_weight() {
    let dir = tmp_with(&[(
        "model.safetensors",
        &[
            filled("w8.weight", "F8_E4M3", &[256, 256], 0),
            filled("w8.scale", "F8_E8M0", &[2, 1], 127),
            filled("w4.weight", "I8", &[64, 32], 0),
            filled("w4.scale", "F8_E8M0", &[64, 4], 127),
            filled("w4b.weight", "I8", &[64, 32], 0),
            filled("w4b.scale", "F8_E4M3", &[64, 2], 127),
        ],
    )]);
    let ck = Checkpoint::open(dir.path()).unwrap();
    let msg = err_msg(ck.fp8_weight("w8", 256, 256));
    assert_has(
        &msg,
        &[
            "tensor 'w8.scale'",
            "expected shape [2, 2]",
            "128x128 block of 'w8.weight' [256, 256]",
            "found [2, 1]",
        ],
    );
    let msg = err_msg(ck.fp4_weight("w4", 64, 64));
    assert_has(
        &msg,
        &[
            "tensor 'w4.scale'",
            "expected shape [64, 2]",
            "per 32 inputs",
            "found [64, 4]",
        ],
    );
    let msg = err_msg(ck.fp4_weight("w4b", 64, 64));
    assert_has(
        &msg,
        &[
            "tensor 'w4b.scale'",
            "expected dtype F8_E8M0, found F8_E4M3",
        ],
    );
}

#[test]
fn unused_reports_extra_tensor() {
    let mut tensors = sample();
    tensors.push(filled("mtp.0.emb.tok_emb.weight", "BF16", &[8, 4], 0));
    let dir = tmp_with(&[("model.safetensors", &tensors)]);
    let ck = Checkpoint::open(dir.path()).unwrap();
    assert_eq!(ck.unused().len(), 10);
    ck.fp8_weight("a.wq", 130, 256).unwrap();
    ck.fp4_weight("e.w1", 64, 64).unwrap();
    ck.floats("norm.weight", &[4]).unwrap();
    ck.floats("sink", &[2, 2]).unwrap();
    ck.ints("tid", &[2, 3]).unwrap();
    ck.ints("tid64", &[3]).unwrap();
    // a failed request still counts as a request
    assert!(ck.float_matrix("embed.weight", &[4, 8]).is_err());
    assert_eq!(ck.unused(), vec!["mtp.0.emb.tok_emb.weight".to_string()]);
}

#[test]
fn dtype_names() {
    assert_eq!(format!("{:?}", DType::F8E4M3), "F8_E4M3");
    assert_eq!(format!("{}", DType::F8E8M0), "F8_E8M0");
    assert_eq!(DType::from_name("F8_E5M2"), Some(DType::F8E5M2));
    assert_eq!(DType::BF16.size_in_bytes(), 2);
    assert_eq!(DType::I64.size_in_bytes(), 8);
    for d in DType::ALL {
        assert_eq!(DType::from_name(d.name()), Some(d));
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, .. ProptestConfig::default() })]

    /// Any prefix of a valid file, and any bytes, give an error or a checkpoint, never a panic.
    #[test]
    fn never_panics_on_bad_files(cut in 0usize..40000, junk in proptest::collection::vec(any::<u8>(), 0..64)) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("model.safetensors");
        let bytes = st_bytes(&sample());
        let cut = cut.min(bytes.len());
        std::fs::write(&path, &bytes[..cut]).unwrap();
        let r = Checkpoint::open(dir.path());
        prop_assert_eq!(r.is_ok(), cut == bytes.len());
        let mut j = junk.clone();
        if j.len() >= 8 {
            // keep the header length small enough to reach the JSON parser sometimes
            let n = (j.len() as u64 - 8).min(j[0] as u64);
            j[..8].copy_from_slice(&n.to_le_bytes());
        }
        std::fs::write(&path, &j).unwrap();
        let _ = Checkpoint::open(dir.path());
    }
}
