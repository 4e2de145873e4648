//! The model bench's pieces on a small random model: synthetic states have exactly the shapes a
//! real run leaves, and decode / prefill timing runs through the CPU backend.

use dsv4_bench::model_bench::{decode, prefill, state_bytes, synthetic_state};
use dsv4_engine::backend::cpu::CpuBackend;
use dsv4_reference::model::compressor::CompressorState;
use dsv4_reference::synthetic::small_config;
use dsv4_reference::{ActQuant, Logits, Model};

fn small_model() -> Model {
    let cfg = small_config();
    let dir = tempfile::tempdir().unwrap();
    dsv4_reference::synthetic::write_checkpoint(dir.path(), &cfg, 3).unwrap();
    Model::load(dir.path()).unwrap()
}

fn shape(c: &CompressorState) -> [usize; 4] {
    let w = |v: &Vec<Vec<f32>>| v.iter().map(Vec::len).sum::<usize>();
    [w(&c.kv), w(&c.score), w(&c.prev_kv), w(&c.prev_score)]
}

#[test]
fn synthetic_state_has_the_shapes_of_a_real_run() {
    let model = small_model();
    let cfg = &model.cfg;
    for pos in [1usize, 3, 4, 9, 16, 37] {
        let mut real = model.new_state();
        let toks: Vec<u32> = (0..pos as u32).map(|t| t % cfg.vocab_size as u32).collect();
        model.forward(&toks, &mut real, ActQuant::On, Logits::None, None).unwrap();
        let syn = synthetic_state(cfg, pos, 1);
        assert_eq!(syn.pos, real.pos);
        let mut floats = 0;
        for (l, (a, b)) in syn.layers.iter().zip(&real.layers).enumerate() {
            assert_eq!(a.window.len(), b.window.len(), "layer {l} pos {pos}");
            // the same ring slots written (NaN = never written)
            let written = |w: &[f32]| w.iter().map(|v| !v.is_nan()).collect::<Vec<_>>();
            assert_eq!(written(&a.window), written(&b.window), "layer {l} pos {pos}: window slots");
            assert_eq!(a.comp.len(), b.comp.len(), "layer {l} pos {pos}: compressed entries");
            assert_eq!(a.index_keys.len(), b.index_keys.len(), "layer {l} pos {pos}: index keys");
            assert_eq!(shape(&a.compressor), shape(&b.compressor), "layer {l} pos {pos}: compressor");
            assert_eq!(shape(&a.index_compressor), shape(&b.index_compressor), "layer {l} pos {pos}: index compressor");
            assert!(a.comp.iter().chain(&a.index_keys).all(|v| v.is_finite()));
            floats += a.window.len() + a.comp.len() + a.index_keys.len();
        }
        assert!(state_bytes(cfg, pos) >= floats * 4, "state_bytes undercounts at pos {pos}");
    }
}

#[test]
fn decode_and_prefill_time_every_block() {
    let mut b = CpuBackend::new(small_model());
    let n = b.model().cfg.n_layers;
    for (batch, ctx) in [(1, 0), (3, 21)] {
        let t = decode(&mut b, batch, ctx, 2, ActQuant::On, false);
        assert_eq!(t.blocks_s.len(), n);
        assert!(t.blocks_s.iter().all(|&s| s > 0.0) && t.head_s > 0.0 && t.total_s() > 0.0, "{t:?}");
    }
    let t = prefill(&mut b, 19, 1, ActQuant::On, false);
    assert_eq!(t.blocks_s.len(), n);
    assert!(t.total_s() > 0.0);
}
