//! The engine: requests come in, a scheduler packs each step with decode tokens of running
//! sequences and chunks of prompts (a token budget per step), the model step runs on the
//! backend, the sampler picks tokens, and finished or cancelled sequences give their state back.
//! Requests join and leave between steps (continuous batching).

use std::collections::VecDeque;

use dsv4_reference::ActQuant;

use crate::backend::{Backend, Chunk, Slot};
use crate::constraint::Constraint;
use crate::model_step;
use crate::prefix_cache::{CacheUsage, PrefixCache};
use crate::sampling::{sample, Rng, Sampled, SamplingError, SamplingParams};
use crate::state_pool::{PoolUsage, StatePool, BLOCK_TOKENS};

pub type RequestId = u64;

#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// Rows per step (decode tokens + prompt chunk tokens).
    pub max_batch_tokens: usize,
    /// Sequences running at once (state slots).
    pub max_running: usize,
    /// Bytes of sequence state in the pool.
    pub state_budget_bytes: usize,
    /// Bytes of prefix-cache snapshots (0 = off).
    pub prefix_cache_bytes: usize,
    pub act_quant: ActQuant,
    /// Requests allowed to wait for a slot; beyond that `submit` answers QueueFull.
    pub max_waiting: usize,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig { max_batch_tokens: 512, max_running: 16, state_budget_bytes: 4 << 30, prefix_cache_bytes: 2 << 30, act_quant: ActQuant::On, max_waiting: 256 }
    }
}

pub struct Request {
    pub prompt: Vec<u32>,
    pub params: SamplingParams,
    pub max_tokens: usize,
    /// Tokens that end the sequence (EOS); not reported as output.
    pub stop_tokens: Vec<u32>,
    /// Grammar the output must follow (JSON mode, strict tools).
    pub constraint: Option<Box<dyn Constraint>>,
}

impl Request {
    pub fn new(prompt: Vec<u32>, params: SamplingParams, max_tokens: usize, stop_tokens: Vec<u32>) -> Request {
        Request { prompt, params, max_tokens, stop_tokens, constraint: None }
    }
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Request")
            .field("prompt_len", &self.prompt.len())
            .field("params", &self.params)
            .field("max_tokens", &self.max_tokens)
            .field("stop_tokens", &self.stop_tokens)
            .field("constrained", &self.constraint.is_some())
            .finish()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FinishReason {
    /// A stop token.
    Stop,
    /// max_tokens or the context limit.
    Length,
    Cancelled,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    pub prompt_tokens: usize,
    pub completion_tokens: usize,
    pub cache_hit_tokens: usize,
    pub cache_miss_tokens: usize,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    Token { id: RequestId, sampled: Sampled },
    Finished { id: RequestId, reason: FinishReason, usage: Usage },
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SubmitError {
    #[error("the prompt is empty")]
    EmptyPrompt,
    #[error("the prompt has {prompt} tokens; the context limit is {limit} (at least one token must be generated)")]
    PromptTooLong { prompt: usize, limit: usize },
    #[error("token id {0} is outside the vocabulary")]
    BadToken(u32),
    #[error("max_tokens must be at least 1")]
    ZeroMaxTokens,
    #[error("the request needs more state memory than the whole pool holds")]
    TooLargeForPool,
    #[error(transparent)]
    Sampling(#[from] SamplingError),
    #[error("the server is busy: {0} requests are already waiting")]
    QueueFull(usize),
    #[error("the engine is shutting down")]
    ShuttingDown,
}

struct Sequence {
    id: RequestId,
    slot: Slot,
    /// Prompt then generated tokens.
    tokens: Vec<u32>,
    prompt_len: usize,
    /// Positions whose state is in the slot.
    computed: usize,
    req: Request,
    rng: Rng,
    cache_hit: usize,
}

impl Sequence {
    fn generated(&self) -> usize {
        self.tokens.len() - self.prompt_len
    }
    fn usage(&self) -> Usage {
        Usage { prompt_tokens: self.prompt_len, completion_tokens: self.generated(), cache_hit_tokens: self.cache_hit, cache_miss_tokens: self.prompt_len - self.cache_hit }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EngineStats {
    pub waiting: usize,
    pub running: usize,
    pub pool: PoolUsage,
    pub cache: CacheUsage,
}

pub struct Engine<B: Backend> {
    backend: B,
    cfg: EngineConfig,
    pool: StatePool,
    cache: PrefixCache<B::Snapshot>,
    waiting: VecDeque<(RequestId, Request)>,
    running: Vec<Sequence>,
    next_id: RequestId,
}

impl<B: Backend> Engine<B> {
    pub fn new(backend: B, cfg: EngineConfig) -> Engine<B> {
        let pool = StatePool::new(backend.config(), cfg.max_running, cfg.state_budget_bytes);
        let cache = PrefixCache::new(cfg.prefix_cache_bytes);
        Engine { backend, cfg, pool, cache, waiting: VecDeque::new(), running: Vec::new(), next_id: 0 }
    }

    pub fn backend(&self) -> &B {
        &self.backend
    }

    /// Take the backend back (to build an engine with other settings).
    pub fn into_backend(self) -> B {
        self.backend
    }

    /// The longest sequence (prompt + output) the model supports.
    pub fn max_context(&self) -> usize {
        self.backend.config().max_seq_len
    }

    /// Check a request and queue it.
    pub fn submit(&mut self, req: Request) -> Result<RequestId, SubmitError> {
        let (vocab, limit) = (self.backend.config().vocab_size, self.max_context());
        if req.prompt.is_empty() {
            return Err(SubmitError::EmptyPrompt);
        }
        if req.prompt.len() >= limit {
            return Err(SubmitError::PromptTooLong { prompt: req.prompt.len(), limit });
        }
        if let Some(&t) = req.prompt.iter().find(|&&t| t as usize >= vocab) {
            return Err(SubmitError::BadToken(t));
        }
        if req.max_tokens == 0 {
            return Err(SubmitError::ZeroMaxTokens);
        }
        req.params.validate()?;
        if !self.pool.can_ever_fit(self.needed_positions(&req)) {
            return Err(SubmitError::TooLargeForPool);
        }
        if self.waiting.len() >= self.cfg.max_waiting {
            return Err(SubmitError::QueueFull(self.waiting.len()));
        }
        let id = self.next_id;
        self.next_id += 1;
        self.waiting.push_back((id, req));
        Ok(id)
    }

    fn needed_positions(&self, req: &Request) -> usize {
        (req.prompt.len() + req.max_tokens).min(self.max_context())
    }

    /// Cancel a waiting or running request; its state is freed at once.
    pub fn cancel(&mut self, id: RequestId) -> Option<Event> {
        if let Some(i) = self.waiting.iter().position(|(w, _)| *w == id) {
            let (_, req) = self.waiting.remove(i).unwrap();
            let usage = Usage { prompt_tokens: req.prompt.len(), ..Usage::default() };
            return Some(Event::Finished { id, reason: FinishReason::Cancelled, usage });
        }
        let i = self.running.iter().position(|s| s.id == id)?;
        let seq = self.running.remove(i);
        self.release(&seq);
        Some(Event::Finished { id, reason: FinishReason::Cancelled, usage: seq.usage() })
    }

    pub fn has_work(&self) -> bool {
        !self.waiting.is_empty() || !self.running.is_empty()
    }

    pub fn stats(&self) -> EngineStats {
        EngineStats { waiting: self.waiting.len(), running: self.running.len(), pool: self.pool.usage(), cache: self.cache.usage() }
    }

    fn release(&mut self, seq: &Sequence) {
        self.backend.state_release(seq.slot);
        self.pool.free(seq.slot);
    }

    /// Admit waiting requests (FIFO) while the pool has room; restore a cached prefix.
    fn admit(&mut self) {
        while let Some((_, req)) = self.waiting.front() {
            let Some(slot) = self.pool.try_alloc(self.needed_positions(req)) else { break };
            let (id, req) = self.waiting.pop_front().unwrap();
            let mut computed = 0;
            match self.cache.lookup(&req.prompt) {
                Some((len, snap)) => {
                    self.backend.state_restore(slot, snap);
                    computed = len;
                }
                None => self.backend.state_reset(slot),
            }
            let rng = req.params.seed.map(Rng::new).unwrap_or_else(Rng::from_entropy);
            let prompt_len = req.prompt.len();
            self.running.push(Sequence { id, slot, tokens: req.prompt.clone(), prompt_len, computed, req, rng, cache_hit: computed });
        }
    }

    /// One step: admit, schedule, run the model, sample, finish. Returns what happened.
    pub fn step(&mut self) -> Vec<Event> {
        self.admit();
        let plan = plan_step(&self.running, self.cfg.max_batch_tokens, self.cfg.prefix_cache_bytes > 0);
        if plan.is_empty() {
            return Vec::new();
        }
        let mut tokens = Vec::new();
        let mut chunks = Vec::new();
        let mut logit_rows = Vec::new();
        for &(i, n) in &plan {
            let s = &self.running[i];
            let start = tokens.len();
            tokens.extend_from_slice(&s.tokens[s.computed..s.computed + n]);
            chunks.push(Chunk { slot: s.slot, pos0: s.computed, rows: start..tokens.len() });
            if s.computed + n == s.tokens.len() {
                logit_rows.push(tokens.len() - 1);
            }
        }
        let logits = model_step::forward(&mut self.backend, &tokens, &chunks, self.cfg.act_quant, &logit_rows);
        let vocab = self.backend.config().vocab_size;

        let mut events = Vec::new();
        let mut finished = Vec::new();
        let mut next_logits = logits.chunks(vocab);
        for &(i, n) in &plan {
            let s = &mut self.running[i];
            s.computed += n;
            if s.computed.is_multiple_of(BLOCK_TOKENS) && self.cfg.prefix_cache_bytes > 0 && !self.cache.contains(&s.tokens[..s.computed]) {
                let snap = self.backend.state_snapshot(s.slot);
                let bytes = B::snapshot_bytes(&snap);
                self.cache.insert(&s.tokens[..s.computed], snap, bytes);
            }
            if s.computed < s.tokens.len() {
                continue; // mid-prompt: no logits yet
            }
            let row = next_logits.next().expect("a logits row per finished chunk");
            let sampled = match &mut s.req.constraint {
                Some(c) => {
                    let mut masked = row.to_vec();
                    c.mask(&mut masked);
                    let t = sample(&masked, &s.req.params, &mut s.rng);
                    c.advance(t.token);
                    t
                }
                None => sample(row, &s.req.params, &mut s.rng),
            };
            let reason = if s.req.stop_tokens.contains(&sampled.token) {
                Some(FinishReason::Stop)
            } else {
                s.tokens.push(sampled.token);
                events.push(Event::Token { id: s.id, sampled });
                let full = s.tokens.len() >= self.backend.config().max_seq_len;
                (s.generated() >= s.req.max_tokens || full).then_some(FinishReason::Length)
            };
            if let Some(reason) = reason {
                finished.push((i, reason));
            }
        }
        for &(i, reason) in finished.iter().rev() {
            let seq = self.running.remove(i);
            self.release(&seq);
            events.push(Event::Finished { id: seq.id, reason, usage: seq.usage() });
        }
        events
    }
}

/// Which sequences run this step and how many of their pending tokens: first every sequence
/// in decode (one token each), then prompt chunks in admission order until the token budget is
/// spent. With the prefix cache on, a prompt chunk stops at the next multiple of BLOCK_TOKENS
/// so the state there can be snapshotted.
fn plan_step(running: &[Sequence], budget: usize, split_at_blocks: bool) -> Vec<(usize, usize)> {
    let mut plan = Vec::new();
    let mut left = budget.max(1);
    for (i, s) in running.iter().enumerate() {
        if s.tokens.len() - s.computed == 1 && left > 0 {
            plan.push((i, 1));
            left -= 1;
        }
    }
    for (i, s) in running.iter().enumerate() {
        let pending = s.tokens.len() - s.computed;
        if pending <= 1 || left == 0 {
            continue;
        }
        let mut n = pending.min(left);
        if split_at_blocks {
            let to_boundary = BLOCK_TOKENS - s.computed % BLOCK_TOKENS;
            n = n.min(to_boundary);
        }
        plan.push((i, n));
        left -= n;
    }
    plan.sort_unstable();
    plan
}
