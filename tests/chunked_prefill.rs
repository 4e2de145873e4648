//! Prefill of N tokens equals prefill of K then the rest (one token at a time, or in chunks),
//! in smooth mode, for random N, K and chunkings — on the golden tiny model and on random model
//! shapes (`synthetic`).

use dsv4_reference::golden::{max_row_rel_err, shared_path};
use dsv4_reference::{ActQuant, Logits, Model};
use proptest::prelude::*;

/// Logits of every position, computed by one prefill.
fn one_shot(model: &Model, tokens: &[u32]) -> Vec<f32> {
    let mut st = model.new_state();
    model.forward(tokens, &mut st, ActQuant::Off, Logits::All, None).unwrap().logits
}

/// The same positions, computed in the given chunk sizes.
fn chunked(model: &Model, tokens: &[u32], chunks: &[usize]) -> Vec<f32> {
    let mut st = model.new_state();
    let mut out = Vec::new();
    let mut at = 0;
    for &c in chunks {
        let end = (at + c).min(tokens.len());
        if end > at {
            out.extend(model.forward(&tokens[at..end], &mut st, ActQuant::Off, Logits::All, None).unwrap().logits);
        }
        at = end;
    }
    assert_eq!(at, tokens.len());
    out
}

fn tiny() -> &'static Model {
    static M: std::sync::OnceLock<Model> = std::sync::OnceLock::new();
    M.get_or_init(|| Model::load(&shared_path(env!("CARGO_MANIFEST_DIR"), "golden/tiny")).unwrap())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    /// Prefill K, then decode one token at a time.
    #[test]
    fn prefill_then_decode_equals_one_prefill(seed in any::<u64>(), n in 2usize..70, kfrac in 0.0f64..1.0) {
        let model = tiny();
        let k = 1 + ((n - 1) as f64 * kfrac) as usize;
        let tokens: Vec<u32> = (0..n).map(|i| (seed.wrapping_mul(6364136223846793005).wrapping_add((i as u64).wrapping_mul(1442695040888963407)) >> 33) as u32 % 256).collect();
        let mut chunks = vec![k];
        chunks.extend(std::iter::repeat_n(1, n - k));
        let e = max_row_rel_err(&chunked(model, &tokens, &chunks), &one_shot(model, &tokens), 256);
        prop_assert!(e < 1e-4, "N={n} K={k}: max row relative error {e:e}");
    }

    /// Arbitrary chunk boundaries (the engine's chunked prefill).
    #[test]
    fn any_chunking_equals_one_prefill(seed in any::<u64>(), chunks in prop::collection::vec(1usize..20, 1..8)) {
        let model = tiny();
        let n: usize = chunks.iter().sum();
        let tokens: Vec<u32> = (0..n).map(|i| ((seed >> (i % 48)) as u32).wrapping_add(i as u32 * 97) % 256).collect();
        let e = max_row_rel_err(&chunked(model, &tokens, &chunks), &one_shot(model, &tokens), 256);
        prop_assert!(e < 1e-4, "chunks {chunks:?}: max row relative error {e:e}");
    }
}

/// A random model shape: window, compress ratios (0, 4 with the indexer, others), index top-k,
/// heads, hash layers.
fn random_model(seed: u64, window: usize, ratios: &[usize], topk: usize, heads: usize) -> Model {
    let mut cfg = dsv4_reference::synthetic::small_config();
    cfg.window_size = window;
    cfg.n_layers = ratios.len();
    cfg.compress_ratios = ratios.iter().copied().chain([0]).collect();
    cfg.n_hash_layers = cfg.n_hash_layers.min(cfg.n_layers);
    cfg.index_topk = topk;
    cfg.n_heads = heads;
    let dir = tempfile::tempdir().unwrap();
    dsv4_reference::synthetic::write_checkpoint(dir.path(), &cfg, seed).unwrap();
    Model::load(dir.path()).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 10, ..ProptestConfig::default() })]

    #[test]
    fn random_shapes_prefill_then_decode_equals_one_prefill(
        seed in any::<u64>(),
        window in prop::sample::select(vec![2usize, 4, 8, 16]),
        ratios in prop::collection::vec(prop::sample::select(vec![0usize, 4, 4, 2, 8, 16]), 1..4),
        topk in 1usize..6,
        heads in prop::sample::select(vec![2usize, 4]),
        n in 2usize..48,
        kfrac in 0.0f64..1.0,
    ) {
        let model = random_model(seed, window, &ratios, topk, heads);
        let k = 1 + ((n - 1) as f64 * kfrac) as usize;
        let tokens: Vec<u32> = (0..n).map(|i| ((seed >> (i % 40)) as u32 ^ (i as u32).wrapping_mul(2654435761)) % 64).collect();
        let mut chunks = vec![k];
        chunks.extend(std::iter::repeat_n(1, n - k));
        let e = max_row_rel_err(&chunked(&model, &tokens, &chunks), &one_shot(&model, &tokens), 64);
        prop_assert!(e < 1e-4, "window {window} ratios {ratios:?} topk {topk}: N={n} K={k}: {e:e}");
    }
}
