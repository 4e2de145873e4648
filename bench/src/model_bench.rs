//! The model bench behind `dsv4 bench model`: the engine's model step (`model_step`'s ops, any
//! `Backend`) timed block by block on a synthetic model with the real geometry, at synthetic
//! contexts, so per-layer costs can be projected to the full depth and to contexts that do not
//! fit in memory.
//!
//! - Decode at batch B and context C: B state slots loaded with a synthetic state at position C
//!   (`synthetic_state`: random window ring, compressed entries, indexer keys and partial
//!   compressor blocks of the right sizes — their values only steer the indexer's choice, not
//!   the work), one warm-up step, then `runs` timed steps (positions C, C+1, ...).
//! - Prefill of P tokens from position 0 in one chunk (what TTFT is made of).
//!
//! Every step is timed per block (embed, each layer, head); `sync` downloads the activations
//! after each piece so a GPU backend's queue is drained inside the clock.

use std::time::Instant;

use dsv4_engine::backend::{Backend, Chunk, Layer};
use dsv4_engine::model_step;
use dsv4_reference::model::compressor::CompressorState;
use dsv4_reference::{ActQuant, Config, SequenceState};

/// Seconds spent in each piece of one step.
#[derive(Clone, Debug, PartialEq)]
pub struct StepTimes {
    pub embed_s: f64,
    /// One per layer, in order.
    pub blocks_s: Vec<f64>,
    /// hc_head, final norm and the head for the step's logit rows.
    pub head_s: f64,
}

impl StepTimes {
    pub fn total_s(&self) -> f64 {
        self.embed_s + self.blocks_s.iter().sum::<f64>() + self.head_s
    }

    /// The element-wise median of several steps' times.
    pub fn median(steps: &[StepTimes]) -> StepTimes {
        assert!(!steps.is_empty(), "median of no steps");
        let med = |f: &dyn Fn(&StepTimes) -> f64| median(steps.iter().map(f).collect());
        StepTimes {
            embed_s: med(&|s| s.embed_s),
            blocks_s: (0..steps[0].blocks_s.len()).map(|l| med(&|s| s.blocks_s[l])).collect(),
            head_s: med(&|s| s.head_s),
        }
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// One step of `model_step::forward` with a clock around each piece.
pub fn timed_step<B: Backend>(b: &mut B, tokens: &[u32], chunks: &[Chunk], aq: ActQuant, logit_rows: &[usize], sync: bool) -> StepTimes {
    let drain = |b: &B, x: &B::Act| {
        if sync {
            std::hint::black_box(b.download(x));
        }
    };
    let t = Instant::now();
    let mut x = b.embed(tokens);
    drain(b, &x);
    let embed_s = t.elapsed().as_secs_f64();
    let mut blocks_s = Vec::with_capacity(b.config().n_layers);
    for l in 0..b.config().n_layers {
        let t = Instant::now();
        x = model_step::block(b, x, Layer(l), tokens, chunks, aq);
        drain(b, &x);
        blocks_s.push(t.elapsed().as_secs_f64());
    }
    let t = Instant::now();
    std::hint::black_box(b.logits(&x, logit_rows));
    StepTimes { embed_s, blocks_s, head_s: t.elapsed().as_secs_f64() }
}

/// Deterministic values in [-1, 1) (xorshift; quality does not matter here).
struct Fill(u64);

impl Fill {
    fn vec(&mut self, n: usize) -> Vec<f32> {
        (0..n)
            .map(|_| {
                self.0 ^= self.0 << 13;
                self.0 ^= self.0 >> 7;
                self.0 ^= self.0 << 17;
                (self.0 >> 40) as f32 / (1u64 << 23) as f32 - 1.0
            })
            .collect()
    }

    fn rows(&mut self, n: usize, width: usize) -> Vec<Vec<f32>> {
        (0..n).map(|_| self.vec(width)).collect()
    }
}

/// The partial-block state of a compressor of `ratio` (entry width `hd`, overlapping when
/// `overlap`) after `pos` tokens.
fn compressor_state(f: &mut Fill, ratio: usize, hd: usize, overlap: bool, pos: usize) -> CompressorState {
    let w = if overlap { 2 * hd } else { hd };
    let partial = pos % ratio;
    let prev = if overlap && pos >= ratio { ratio } else { 0 };
    CompressorState { kv: f.rows(partial, w), score: f.rows(partial, w), prev_kv: f.rows(prev, w), prev_score: f.rows(prev, w) }
}

/// A sequence state at position `pos` with every cache filled to the size `pos` tokens leave
/// (window ring, `pos / ratio` compressed entries, the indexer's keys, partial blocks).
pub fn synthetic_state(cfg: &Config, pos: usize, seed: u64) -> SequenceState {
    let mut f = Fill(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let (hd, ihd, win) = (cfg.head_dim, cfg.index_head_dim, cfg.window_size);
    let mut st = SequenceState::new(cfg);
    st.pos = pos;
    for (l, ls) in st.layers.iter_mut().enumerate() {
        for p in pos.saturating_sub(win)..pos {
            let slot = p % win;
            ls.window[slot * hd..(slot + 1) * hd].copy_from_slice(&f.vec(hd));
        }
        let ratio = cfg.compress_ratio(l);
        if ratio > 0 {
            ls.comp = f.vec(pos / ratio * hd);
            ls.compressor = compressor_state(&mut f, ratio, hd, ratio == 4, pos);
        }
        if ratio == 4 {
            ls.index_keys = f.vec(pos / ratio * ihd);
            ls.index_compressor = compressor_state(&mut f, ratio, ihd, true, pos);
        }
    }
    st
}

/// Bytes the caches of `synthetic_state(cfg, pos, _)` hold (to decide what fits).
pub fn state_bytes(cfg: &Config, pos: usize) -> usize {
    let floats: usize = (0..cfg.n_layers)
        .map(|l| {
            let r = cfg.compress_ratio(l);
            let mut n = cfg.window_size * cfg.head_dim;
            if r > 0 {
                n += pos / r * cfg.head_dim + 4 * r * cfg.head_dim;
            }
            if r == 4 {
                n += pos / r * cfg.index_head_dim + 4 * r * cfg.index_head_dim;
            }
            n
        })
        .sum();
    floats * 4
}

/// Random token ids below the vocabulary size.
fn tokens(cfg: &Config, n: usize, seed: u64) -> Vec<u32> {
    Fill(seed | 1).vec(n).iter().map(|v| ((v + 1.0) * 0.5 * (cfg.vocab_size - 1) as f32) as u32).collect()
}

/// Decode at `batch` sequences of context `context`: one warm-up step, then the median of
/// `runs` timed steps. Uses slots `0..batch` and releases them.
pub fn decode<B: Backend>(b: &mut B, batch: usize, context: usize, runs: usize, aq: ActQuant, sync: bool) -> StepTimes {
    let cfg = b.config().clone();
    let st = synthetic_state(&cfg, context, 7);
    for s in 0..batch {
        b.state_load(s, &st);
    }
    let rows: Vec<usize> = (0..batch).collect();
    let mut steps = Vec::with_capacity(runs);
    for i in 0..=runs {
        let toks = tokens(&cfg, batch, 11 + i as u64);
        let chunks: Vec<Chunk> = (0..batch).map(|s| Chunk { slot: s, pos0: context + i, rows: s..s + 1 }).collect();
        let t = timed_step(b, &toks, &chunks, aq, &rows, sync);
        if i > 0 {
            steps.push(t);
        }
    }
    (0..batch).for_each(|s| b.state_release(s));
    StepTimes::median(&steps)
}

/// A prefill of `prompt` tokens from position 0 in one chunk (logits of the last row), median
/// of `runs` after one warm-up. Uses slot 0 and releases it.
pub fn prefill<B: Backend>(b: &mut B, prompt: usize, runs: usize, aq: ActQuant, sync: bool) -> StepTimes {
    let cfg = b.config().clone();
    let toks = tokens(&cfg, prompt, 5);
    let chunks = [Chunk { slot: 0, pos0: 0, rows: 0..prompt }];
    let mut steps = Vec::with_capacity(runs);
    for i in 0..=runs {
        b.state_reset(0);
        let t = timed_step(b, &toks, &chunks, aq, &[prompt - 1], sync);
        if i > 0 {
            steps.push(t);
        }
    }
    b.state_release(0);
    StepTimes::median(&steps)
}
