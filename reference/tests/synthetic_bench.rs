//! The fast synthetic fill and the in-memory benchmark model (`synthetic::fast_tensors`,
//! `bench_config`, `bench_model`): same layout as `random_tensors`, no NaN codes, deterministic
//! whatever the thread count, sane magnitudes, a model that runs. Small configs only: the real
//! dimensions are checked by counting bytes from the shapes, never by allocating them.

use dsv4_reference::checkpoint::{Checkpoint, DType, IN_MEMORY};
use dsv4_reference::config::Config;
use dsv4_reference::formats::{bf16_to_f32, e2m1_to_f32, e4m3_to_f32, e8m0_to_f32};
use dsv4_reference::model::weights::Weights;
use dsv4_reference::synthetic::{
    bench_config, bench_config_with_ratios, bench_model, fast_tensors, in_memory_checkpoint, random_tensors, small_config, stored_bytes,
    tensor_shapes, SynthTensor,
};
use dsv4_reference::{ActQuant, Logits};

/// `small_config` with tensors bigger than a 64 KiB fill chunk (embed 1 MiB, head 1 MiB),
/// so chunking and statistics are exercised, still tiny for a test.
fn medium_config() -> Config {
    let mut c = small_config();
    c.dim = 256;
    c.vocab_size = 2048;
    c.moe_inter_dim = 256;
    c.q_lora_rank = 128;
    c.o_lora_rank = 64;
    c.n_routed_experts = 8;
    c.validate().expect("medium_config validates");
    c
}

fn layout(ts: &[SynthTensor]) -> Vec<(String, DType, Vec<usize>)> {
    ts.iter().map(|t| (t.name.clone(), t.dtype, t.shape.clone())).collect()
}

fn find<'a>(ts: &'a [SynthTensor], name: &str) -> &'a SynthTensor {
    ts.iter().find(|t| t.name == name).unwrap_or_else(|| panic!("{name} missing"))
}

#[test]
fn fast_fill_has_the_layout_of_random_tensors() {
    for cfg in [small_config(), medium_config()] {
        let (exact, fast) = (random_tensors(&cfg, 3), fast_tensors(&cfg, 3));
        assert_eq!(layout(&fast), layout(&exact), "names, dtypes, shapes and order");
        assert_eq!(tensor_shapes(&cfg), layout(&exact), "tensor_shapes");
        let bytes: usize = fast.iter().map(|t| t.bytes.len()).sum();
        assert_eq!(bytes, stored_bytes(&cfg));
        for (f, e) in fast.iter().zip(&exact) {
            assert_eq!(f.bytes.len(), e.bytes.len(), "{}", f.name);
            // Small tensors (norms, mHC, biases, sinks, ape, hash tables) keep the exact draws.
            let big = matches!(f.dtype, DType::F8E4M3 | DType::F8E8M0 | DType::I8) || (f.dtype == DType::BF16 && f.shape.len() == 2);
            if !big {
                assert!(f.bytes == e.bytes, "{}: a small tensor differs from random_tensors", f.name);
            }
        }
    }
}

#[test]
fn fast_fill_has_no_nan_codes() {
    let cfg = medium_config();
    for t in fast_tensors(&cfg, 11) {
        match t.dtype {
            DType::F8E4M3 => assert!(t.bytes.iter().all(|&b| b & 0x7F != 0x7F), "{}: NaN e4m3 code", t.name),
            DType::F8E8M0 => assert!(t.bytes.iter().all(|&b| b != 0xFF && b != 0), "{}: NaN or tiny e8m0 scale", t.name),
            DType::BF16 => assert!(
                t.bytes.chunks_exact(2).all(|b| bf16_to_f32(u16::from_le_bytes([b[0], b[1]])).is_finite()),
                "{}: non-finite bf16",
                t.name
            ),
            DType::F32 => assert!(t.bytes.chunks_exact(4).all(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]).is_finite()), "{}", t.name),
            _ => {}
        }
    }
}

#[test]
fn fast_fill_is_deterministic_whatever_the_threads() {
    let cfg = medium_config();
    let one = rayon::ThreadPoolBuilder::new().num_threads(1).build().expect("1-thread pool");
    let three = rayon::ThreadPoolBuilder::new().num_threads(3).build().expect("3-thread pool");
    let a = one.install(|| fast_tensors(&cfg, 9));
    let b = fast_tensors(&cfg, 9);
    let c = three.install(|| fast_tensors(&cfg, 9));
    assert!(find(&a, "embed.weight").bytes.len() > 8 * (1 << 16), "the embedding spans several fill chunks");
    for ((x, y), z) in a.iter().zip(&b).zip(&c) {
        assert!(x.name == y.name && x.bytes == y.bytes && x.bytes == z.bytes, "{} depends on the thread count", x.name);
    }
    // Another seed changes the big tensors, and chunks of one tensor are not copies of each other.
    let d = fast_tensors(&cfg, 10);
    for name in ["embed.weight", "layers.1.attn.wq_b.weight", "layers.2.ffn.experts.7.w2.weight"] {
        assert!(find(&a, name).bytes != find(&d, name).bytes, "{name}: seed ignored");
    }
    let e = &find(&a, "embed.weight").bytes;
    let chunks: Vec<&[u8]> = e.chunks(1 << 16).collect();
    assert!(chunks.windows(2).all(|w| w[0] != w[1]), "two fill chunks repeat");
}

/// RMS of a decoded weight `[out, inp]`.
fn rms(ts: &[SynthTensor], p: &str) -> (f64, usize) {
    let w = find(ts, &format!("{p}.weight"));
    let vals: Vec<f32> = match w.dtype {
        DType::BF16 => w.bytes.chunks_exact(2).map(|b| bf16_to_f32(u16::from_le_bytes([b[0], b[1]]))).collect(),
        DType::F8E4M3 => {
            let s = find(ts, &format!("{p}.scale"));
            let (inp, sb) = (w.shape[1], s.shape[1]);
            w.bytes.iter().enumerate().map(|(i, &b)| e4m3_to_f32(b) * e8m0_to_f32(s.bytes[(i / inp / 128) * sb + (i % inp) / 128])).collect()
        }
        DType::I8 => {
            let s = find(ts, &format!("{p}.scale"));
            let inp = w.shape[1] * 2;
            let codes = w.bytes.iter().flat_map(|&b| [e2m1_to_f32(b & 0xF), e2m1_to_f32(b >> 4)]);
            codes.enumerate().map(|(i, c)| c * e8m0_to_f32(s.bytes[(i / inp) * (inp / 32) + (i % inp) / 32])).collect()
        }
        other => panic!("{p}: {other}"),
    };
    let ms = vals.iter().map(|&v| (v as f64) * (v as f64)).sum::<f64>() / vals.len() as f64;
    let fan_in = if w.dtype == DType::I8 { w.shape[1] * 2 } else { w.shape[1] };
    (ms.sqrt(), fan_in)
}

#[test]
fn fast_fill_magnitudes_follow_fan_in() {
    let cfg = medium_config();
    let ts = fast_tensors(&cfg, 5);
    for p in [
        "head",
        "layers.0.attn.wq_a",
        "layers.0.attn.wq_b",
        "layers.1.attn.wo_a",
        "layers.1.attn.wo_b",
        "layers.1.attn.compressor.wkv",
        "layers.1.attn.indexer.weights_proj",
        "layers.2.ffn.gate",
        "layers.2.ffn.shared_experts.w2",
        "layers.3.ffn.experts.0.w1",
        "layers.3.ffn.experts.5.w2",
        "mtp.0.e_proj",
    ] {
        let (r, fan_in) = rms(&ts, p);
        let want = 1.0 / (fan_in as f64).sqrt();
        println!("{p}: rms {r:.4e}, 1/sqrt(fan_in) {want:.4e}");
        assert!(r > want / 2.0 && r < want * 2.0, "{p}: rms {r:.4e}, expected about {want:.4e}");
    }
    let (r, _) = rms(&ts, "embed");
    assert!(r > 0.5 && r < 2.0, "embed rms {r}");
}

#[test]
fn fast_model_runs_prefill_and_decode() {
    let cfg = small_config();
    let bm = bench_model(&cfg, 21).expect("bench_model");
    assert_eq!(bm.bytes, stored_bytes(&cfg));
    let model = &bm.model;
    for aq in [ActQuant::On, ActQuant::Off] {
        let mut st = model.new_state();
        let prompt: Vec<u32> = (0..12u32).map(|i| (i * 5 + 1) % cfg.vocab_size as u32).collect();
        let out = model.forward(&prompt, &mut st, aq, Logits::Last, None).expect("prefill");
        assert_eq!(out.logits.len(), cfg.vocab_size);
        assert!(out.logits.iter().all(|v| v.is_finite()), "{aq:?}: non-finite prefill logits");
        let mut tok = argmax(&out.logits);
        for step in 0..2 {
            let out = model.forward(&[tok], &mut st, aq, Logits::Last, None).expect("decode");
            assert_eq!(out.logits.len(), cfg.vocab_size);
            assert!(out.logits.iter().all(|v| v.is_finite()), "{aq:?}: non-finite logits at decode step {step}");
            assert!(out.hidden.iter().all(|v| v.is_finite()), "{aq:?}: non-finite hidden at decode step {step}");
            tok = argmax(&out.logits);
        }
    }
}

fn argmax(v: &[f32]) -> u32 {
    v.iter().enumerate().fold((0, f32::NEG_INFINITY), |b, (i, &x)| if x > b.1 { (i, x) } else { b }).0 as u32
}

#[test]
fn in_memory_checkpoint_loads_and_checks() {
    let cfg = small_config();
    let ck = in_memory_checkpoint(fast_tensors(&cfg, 2)).expect("in-memory checkpoint");
    assert_eq!(ck.dir(), std::path::Path::new(IN_MEMORY));
    assert!(ck.files().is_empty());
    assert_eq!(ck.data_bytes(), stored_bytes(&cfg));
    let w = Weights::load(&ck, &cfg).expect("Weights::load");
    assert_eq!(w.layers.len(), cfg.n_layers);
    assert!(ck.unused().is_empty(), "never asked for: {:?}", ck.unused());
    // Same validation as files: wrong byte length, duplicate names.
    let short = Checkpoint::from_tensors([("x".to_string(), DType::F32, vec![3], dsv4_reference::checkpoint::Bytes::from_vec(vec![0; 8]))]);
    assert!(short.is_err());
    let t = || ("x".to_string(), DType::U8, vec![2], dsv4_reference::checkpoint::Bytes::from_vec(vec![0; 2]));
    assert!(Checkpoint::from_tensors([t(), t()]).is_err());
}

/// Bytes of a checkpoint for `cfg`, counted from the spec's table (`spec/checkpoint.md`),
/// independently of the builder.
fn counted_bytes(c: &Config) -> usize {
    let (d, nc) = (c.dim, c.hc_mult);
    let fp8 = |o: usize, i: usize| o * i + o.div_ceil(128) * i.div_ceil(128);
    let fp4 = |o: usize, i: usize| o * i / 2 + o * i / 32;
    let hc = |rows: usize, ns: usize| 4 * (rows * nc * d + rows + ns);
    let comp = |r: usize, hd: usize| {
        let w = if r == 4 { 2 * hd } else { hd };
        2 * 2 * w * d + 4 * r * w + 2 * hd
    };
    let block = |idx: usize| {
        let r = c.compress_ratios[idx];
        let mix = (2 + nc) * nc;
        let mut b = 2 * 2 * d + 2 * hc(mix, 3) + 4 * c.n_heads;
        b += fp8(c.q_lora_rank, d) + 2 * c.q_lora_rank + fp8(c.n_heads * c.head_dim, c.q_lora_rank);
        b += fp8(c.head_dim, d) + 2 * c.head_dim;
        b += fp8(c.o_groups * c.o_lora_rank, c.n_heads * c.head_dim / c.o_groups) + fp8(d, c.o_groups * c.o_lora_rank);
        if r > 0 {
            b += comp(r, c.head_dim);
        }
        if r == 4 {
            b += fp8(c.index_n_heads * c.index_head_dim, c.q_lora_rank) + 2 * c.index_n_heads * d + comp(4, c.index_head_dim);
        }
        b += 2 * c.n_routed_experts * d;
        b += if idx < c.n_hash_layers { 4 * c.vocab_size * c.n_activated_experts } else { 4 * c.n_routed_experts };
        let inter = c.moe_inter_dim;
        b += c.n_routed_experts * (2 * fp4(inter, d) + fp4(d, inter));
        let si = c.n_shared_experts * inter;
        b + 2 * fp8(si, d) + fp8(d, si)
    };
    let mut total = 2 * 2 * c.vocab_size * d + 2 * d + hc(nc, 1);
    total += (0..c.n_layers).map(block).sum::<usize>();
    for i in 0..c.n_mtp_layers {
        total += block(c.n_layers + i) + 2 * fp8(d, d) + 3 * 2 * d + hc(nc, 1);
    }
    total
}

#[test]
fn bench_config_keeps_the_real_geometry() {
    let flash = Config::flash();
    let c = bench_config(Some(2), 16);
    c.validate().expect("bench_config(Some(2), 16) validates");
    assert_eq!((c.n_layers, c.n_routed_experts, c.n_hash_layers, c.n_mtp_layers), (2, 16, 2, 1));
    assert_eq!(c.compress_ratios, vec![0, 0, 0]);
    assert_eq!((c.dim, c.vocab_size, c.moe_inter_dim, c.max_seq_len), (flash.dim, flash.vocab_size, flash.moe_inter_dim, flash.max_seq_len));
    assert_eq!(stored_bytes(&c), counted_bytes(&c));

    let full = bench_config(None, 16);
    assert_eq!(full.n_layers, 43);
    assert_eq!(full.n_hash_layers, 3);
    assert_eq!(full.compress_ratios, flash.compress_ratios);
    assert_eq!(stored_bytes(&full), counted_bytes(&full));
    let gb = stored_bytes(&full) as f64 / 1e9;
    println!("bench_config(None, 16): {gb:.2} GB; bench_config(Some(2), 16): {:.2} GB", stored_bytes(&c) as f64 / 1e9);
    assert!((14.0..20.0).contains(&gb), "{gb} GB");
    // The release itself (256 experts), counted the same way.
    assert_eq!(stored_bytes(&flash), counted_bytes(&flash));
    println!("Config::flash(): {:.2} GB", stored_bytes(&flash) as f64 / 1e9);

    let mix = bench_config_with_ratios(&[4, 128, 0], 8);
    assert_eq!(mix.compress_ratios, vec![4, 128, 0, 0]);
    assert_eq!((mix.n_layers, mix.n_hash_layers, mix.n_routed_experts), (3, 3, 8));
    assert_eq!(stored_bytes(&mix), counted_bytes(&mix));

    let small = small_config();
    assert_eq!(stored_bytes(&small), counted_bytes(&small));
}

#[test]
fn anonymous_bytes_hold_what_was_written_page_aligned() {
    use dsv4_reference::checkpoint::Bytes;
    for len in [0usize, 1, 4095, 4096, 3 << 20] {
        let b = Bytes::anon(len, |v| v.iter_mut().enumerate().for_each(|(i, x)| *x = (i * 31 % 251) as u8));
        assert_eq!(b.len(), len);
        assert!(b.iter().enumerate().all(|(i, &x)| x == (i * 31 % 251) as u8), "len {len}");
        if len > 0 {
            assert_eq!(b.as_ptr() as usize % 4096, 0, "len {len}: not page-aligned");
        }
        // equal to the same bytes owned, and a clone shares the mapping
        let owned = Bytes::from_vec(b.to_vec());
        assert!(b == owned && b.clone().as_ptr() == b.as_ptr());
        assert!(format!("{b:?}").contains(&format!("{len} bytes")));
    }
    let a = Bytes::anon(8, |v| v.fill(1));
    assert!(a != Bytes::anon(8, |v| v.fill(2)) && a != Bytes::anon(7, |v| v.fill(1)));
}

#[test]
fn fast_fill_puts_big_tensors_in_their_own_mappings() {
    // the streamed matrices of the benchmark model are page-aligned (own mappings), not heap `Vec`s
    let ts = fast_tensors(&medium_config(), 4);
    let big: Vec<_> = ts.iter().filter(|t| t.bytes.len() >= 1 << 16 && t.name.contains("experts")).collect();
    assert!(!big.is_empty());
    assert!(big.iter().all(|t| t.bytes.as_ptr() as usize % 4096 == 0), "an expert tensor is not page-aligned");
}
