//! Continuous batching against the reference run one sequence at a time (smooth mode):
//! a batch of concurrent sequences with different prompts, lengths, chunk sizes and prefix
//! hits gives the reference's logits within 1e-5 and the same greedy tokens.

use dsv4_engine::backend::cpu::CpuBackend;
use dsv4_engine::backend::{Backend, Chunk};
use dsv4_engine::engine::{Engine, EngineConfig, Event, FinishReason, Request};
use dsv4_engine::model_step;
use dsv4_engine::sampling::{log_softmax, SamplingParams};
use dsv4_engine::state_pool::BLOCK_TOKENS;
use dsv4_reference::golden::rel_err;
use dsv4_reference::{ActQuant, Logits, Model};

fn model(seed: u64) -> Model {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dsv4_reference::synthetic::small_config();
    dsv4_reference::synthetic::write_checkpoint(dir.path(), &cfg, seed).unwrap();
    Model::load(dir.path()).unwrap()
}

fn prompt(n: usize, salt: u32) -> Vec<u32> {
    (0..n as u32).map(|i| (i.wrapping_mul(2654435761) >> 7 ^ salt) % 64).collect()
}

/// Reference logits of every position, one sequence, one prefill.
fn reference_logits(m: &Model, tokens: &[u32]) -> Vec<f32> {
    let mut st = m.new_state();
    m.forward(tokens, &mut st, ActQuant::Off, Logits::All, None).unwrap().logits
}

#[test]
fn model_step_with_interleaved_chunks_matches_the_reference() {
    let m = model(5);
    let v = m.cfg.vocab_size;
    let seqs = [prompt(37, 1), prompt(11, 2), prompt(53, 3)];
    let want: Vec<Vec<f32>> = seqs.iter().map(|s| reference_logits(&m, s)).collect();
    let mut b = CpuBackend::new(model(5));
    for slot in 0..3 {
        b.state_reset(slot);
    }
    // Each step takes a different-sized piece of each sequence (prefill chunks and single tokens
    // side by side), so sequences sit at different positions in every step.
    let sizes = [[5, 1, 9], [1, 3, 1], [13, 7, 2], [1, 1, 17], [17, 0, 24]];
    let mut done = [0usize; 3];
    let mut worst = 0.0f64;
    for step in sizes {
        let (mut tokens, mut chunks, mut rows) = (Vec::new(), Vec::new(), Vec::new());
        for (slot, &n) in step.iter().enumerate() {
            let n = n.min(seqs[slot].len() - done[slot]);
            if n == 0 {
                continue;
            }
            let start = tokens.len();
            tokens.extend_from_slice(&seqs[slot][done[slot]..done[slot] + n]);
            chunks.push(Chunk { slot, pos0: done[slot], rows: start..tokens.len() });
            rows.extend((start..tokens.len()).map(|r| (r, slot, done[slot] + r - start)));
        }
        let logit_rows: Vec<usize> = rows.iter().map(|r| r.0).collect();
        let got = model_step::forward(&mut b, &tokens, &chunks, ActQuant::Off, &logit_rows);
        for (k, &(_, slot, pos)) in rows.iter().enumerate() {
            let e = rel_err(&got[k * v..(k + 1) * v], &want[slot][pos * v..(pos + 1) * v]);
            assert!(e < 1e-5, "slot {slot} position {pos}: relative error {e:e}");
            worst = worst.max(e);
        }
        for c in &chunks {
            done[c.slot] += c.rows.len();
        }
    }
    assert_eq!(done, [37, 11, 53]);
    println!("worst row relative error {worst:.2e}");
}

/// Greedy continuation by the reference, with the logprob of each chosen token.
fn reference_greedy(m: &Model, prompt: &[u32], n: usize, eos: u32) -> Vec<(u32, f32)> {
    let mut st = m.new_state();
    let mut logits = m.forward(prompt, &mut st, ActQuant::Off, Logits::Last, None).unwrap().logits;
    let mut out = Vec::new();
    for _ in 0..n {
        let lp = log_softmax(&logits);
        let t = (0..lp.len()).fold(0, |b, i| if lp[i] > lp[b] { i } else { b }) as u32;
        if t == eos {
            break;
        }
        out.push((t, lp[t as usize]));
        logits = m.forward(&[t], &mut st, ActQuant::Off, Logits::Last, None).unwrap().logits;
    }
    out
}

#[test]
fn concurrent_requests_with_prefix_hits_match_the_reference() {
    let m = model(9);
    let greedy = SamplingParams { temperature: 0.0, ..SamplingParams::default() };
    let eos = 1;
    let shared = prompt(2 * BLOCK_TOKENS + 20, 7);
    let mut prompts = vec![prompt(40, 1), prompt(3, 2), shared.clone(), prompt(150, 4)];
    // Same system prompt, different question: a prefix hit of 2 blocks once `shared` has run.
    let mut second = shared[..2 * BLOCK_TOKENS + 5].to_vec();
    second.extend(prompt(30, 9));
    prompts.push(second);
    let max_tokens = [12, 20, 6, 9, 8];

    let cfg = EngineConfig { max_batch_tokens: 61, max_running: 3, state_budget_bytes: 64 << 20, prefix_cache_bytes: 256 << 20, act_quant: ActQuant::Off, max_waiting: 16 };
    let mut engine = Engine::new(CpuBackend::new(model(9)), cfg);
    let mut ids = Vec::new();
    for (p, &mt) in prompts.iter().zip(&max_tokens).take(4) {
        ids.push(engine.submit(Request::new(p.clone(), greedy.clone(), mt, vec![eos])).unwrap());
    }
    let mut out: Vec<Vec<(u32, f32)>> = vec![Vec::new(); prompts.len()];
    let mut finished = vec![None; prompts.len()];
    let mut steps = 0;
    while engine.has_work() {
        for ev in engine.step() {
            match ev {
                Event::Token { id, sampled } => out[id as usize].push((sampled.token, sampled.logprob)),
                Event::Finished { id, reason, usage } => finished[id as usize] = Some((reason, usage)),
            }
        }
        steps += 1;
        // The fifth request arrives once the shared prompt's state is cached.
        if finished[2].is_some() && ids.len() == 4 {
            ids.push(engine.submit(Request::new(prompts[4].clone(), greedy.clone(), max_tokens[4], vec![eos])).unwrap());
        }
        assert!(steps < 1000, "the engine does not finish");
    }
    for (i, p) in prompts.iter().enumerate() {
        let want = reference_greedy(&m, p, max_tokens[i], eos);
        let got_tokens: Vec<u32> = out[i].iter().map(|t| t.0).collect();
        let want_tokens: Vec<u32> = want.iter().map(|t| t.0).collect();
        assert_eq!(got_tokens, want_tokens, "request {i}");
        for (g, w) in out[i].iter().zip(&want) {
            assert!((g.1 - w.1).abs() <= 1e-5 * w.1.abs().max(1.0), "request {i}: logprob {} vs {}", g.1, w.1);
        }
        let (reason, usage) = finished[i].unwrap();
        let expect = if want.len() < max_tokens[i] { FinishReason::Stop } else { FinishReason::Length };
        assert_eq!(reason, expect, "request {i}");
        assert_eq!(usage.prompt_tokens, p.len());
        assert_eq!(usage.completion_tokens, want.len());
        assert_eq!(usage.cache_hit_tokens + usage.cache_miss_tokens, p.len());
    }
    assert_eq!(finished[4].unwrap().1.cache_hit_tokens, 2 * BLOCK_TOKENS, "the shared system prompt is reused");
    assert_eq!(finished[0].unwrap().1.cache_hit_tokens, 0);
    let stats = engine.stats();
    assert_eq!((stats.running, stats.waiting, stats.pool.slots_used, stats.pool.blocks_used), (0, 0, 0, 0), "state returns to the pool");
    assert!(stats.cache.entries >= 2);
}

#[test]
fn cancel_frees_state_and_bad_requests_are_refused() {
    let mut engine = Engine::new(CpuBackend::new(model(3)), EngineConfig { act_quant: ActQuant::Off, ..EngineConfig::default() });
    let req = |p: Vec<u32>, mt| Request::new(p, SamplingParams { seed: Some(4), ..SamplingParams::default() }, mt, vec![]);
    let a = engine.submit(req(prompt(20, 1), 50)).unwrap();
    let b = engine.submit(req(prompt(9, 2), 50)).unwrap();
    engine.step();
    engine.step();
    assert_eq!(engine.stats().pool.slots_used, 2);
    assert!(matches!(engine.cancel(a), Some(Event::Finished { reason: FinishReason::Cancelled, .. })));
    assert_eq!(engine.stats().pool.slots_used, 1);
    assert!(engine.cancel(a).is_none(), "a second cancel is a no-op");
    engine.cancel(b);
    assert_eq!(engine.stats().pool.blocks_used, 0);

    use dsv4_engine::engine::SubmitError;
    assert_eq!(engine.submit(req(vec![], 5)).unwrap_err(), SubmitError::EmptyPrompt);
    assert!(matches!(engine.submit(req(prompt(600, 1), 5)).unwrap_err(), SubmitError::PromptTooLong { .. }));
    assert_eq!(engine.submit(req(vec![64], 5)).unwrap_err(), SubmitError::BadToken(64));
    assert_eq!(engine.submit(req(prompt(5, 1), 0)).unwrap_err(), SubmitError::ZeroMaxTokens);
    let mut bad = req(prompt(5, 1), 5);
    bad.params.temperature = 3.0;
    assert!(matches!(engine.submit(bad).unwrap_err(), SubmitError::Sampling(_)));
}

#[test]
fn same_seed_same_sampled_text() {
    let run = || {
        let mut engine = Engine::new(CpuBackend::new(model(2)), EngineConfig { act_quant: ActQuant::Off, ..EngineConfig::default() });
        let params = SamplingParams { temperature: 0.9, top_p: 0.95, top_k: 20, seed: Some(1234), logprobs: Some(3) };
        engine.submit(Request::new(prompt(17, 5), params, 10, vec![])).unwrap();
        let mut toks = Vec::new();
        while engine.has_work() {
            for ev in engine.step() {
                if let Event::Token { sampled, .. } = ev {
                    assert_eq!(sampled.top.len(), 3);
                    toks.push(sampled.token);
                }
            }
        }
        toks
    };
    let a = run();
    assert_eq!(a.len(), 10);
    assert_eq!(a, run());
}
