//! One generation as the API routes see it: a prompt goes to the engine thread, sampled tokens
//! come back and become chat deltas (reasoning, content, tool calls) with their logprobs, then
//! a finish with usage. Shared by the OpenAI and Anthropic routes.

use std::time::Instant;

use crate::chat::parse::Delta;
use crate::chat::ThinkingMode;
use crate::constraint::Constraint;
use crate::engine::{Event, FinishReason, Request};
use crate::sampling::{Sampled, SamplingParams};
use crate::service::{EngineService, EventStream};
use crate::text_stream::TextStream;
use crate::tokenizer::Tokenizer;

use super::errors::ApiError;
use super::metrics::Metrics;

/// How a generation ended, in API terms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Finish {
    Stop,
    Length,
    ToolCalls,
    Cancelled,
}

impl Finish {
    pub fn openai(self) -> &'static str {
        match self {
            Finish::Stop | Finish::Cancelled => "stop",
            Finish::Length => "length",
            Finish::ToolCalls => "tool_calls",
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GenUsage {
    pub prompt_tokens: usize,
    pub completion_tokens: usize,
    pub reasoning_tokens: usize,
    pub cache_hit_tokens: usize,
    pub cache_miss_tokens: usize,
}

/// A token's logprob and alternatives, with their texts.
#[derive(Clone, Debug, PartialEq)]
pub struct TokenLogprob {
    pub token: String,
    pub logprob: f32,
    pub top: Vec<(String, f32)>,
}

pub enum GenItem {
    /// What one token added (possibly nothing visible yet).
    Step { deltas: Vec<Delta>, logprob: Option<TokenLogprob> },
    /// `stop_sequence`: the stop string that ended the content (finish Stop), if one did.
    Done { finish: Finish, usage: GenUsage, malformed: bool, stop_sequence: Option<String> },
}

pub struct GenOptions {
    pub params: SamplingParams,
    pub max_tokens: usize,
    pub stops: Vec<String>,
    pub mode: ThinkingMode,
    pub constraint: Option<Box<dyn Constraint>>,
    pub logprobs: bool,
}

pub struct Generation {
    service: EngineService,
    stream: EventStream,
    text: TextStream,
    tokenizer: Tokenizer,
    think_end: Option<u32>,
    in_reasoning: bool,
    saw_tool_call: bool,
    usage: GenUsage,
    logprobs: bool,
    metrics: Metrics,
    started: Instant,
    last_token: Option<Instant>,
    /// Tokens received so far (for the metrics of a generation dropped mid-way).
    tokens_seen: usize,
    /// Whether this generation has been counted as finished in the metrics.
    counted: bool,
    /// Items ready to hand out (the finish's tail, then Done).
    pending: std::collections::VecDeque<GenItem>,
    done: bool,
}

impl Generation {
    pub fn start(service: &EngineService, tokenizer: &Tokenizer, metrics: &Metrics, prompt: Vec<u32>, opts: GenOptions) -> Result<Generation, ApiError> {
        let eos = tokenizer.eos_id();
        let prompt_tokens = prompt.len();
        let mut req = Request::new(prompt, opts.params, opts.max_tokens, vec![eos]);
        req.constraint = opts.constraint;
        let stream = service.submit(req)?;
        metrics.request_started();
        Ok(Generation {
            service: service.clone(),
            stream,
            text: TextStream::new(tokenizer, opts.mode, opts.stops),
            tokenizer: tokenizer.clone(),
            think_end: tokenizer.token_id(crate::chat::THINK_END),
            in_reasoning: opts.mode == ThinkingMode::Thinking,
            saw_tool_call: false,
            usage: GenUsage { prompt_tokens, ..GenUsage::default() },
            logprobs: opts.logprobs,
            metrics: metrics.clone(),
            started: Instant::now(),
            last_token: None,
            tokens_seen: 0,
            counted: false,
            pending: Default::default(),
            done: false,
        })
    }

    /// The next item; None after Done.
    pub async fn next(&mut self) -> Option<GenItem> {
        if let Some(item) = self.pending.pop_front() {
            return Some(item);
        }
        if self.done {
            return None;
        }
        match self.stream.recv().await {
            Some(Event::Token { sampled, .. }) => Some(self.on_token(sampled)),
            Some(Event::Finished { reason, usage, .. }) => Some(self.on_finish(reason, usage)),
            None => {
                // The engine thread stopped (shutdown): end the generation as cancelled.
                self.done = true;
                self.count_finished(self.tokens_seen);
                Some(GenItem::Done { finish: Finish::Cancelled, usage: self.usage, malformed: false, stop_sequence: None })
            }
        }
    }

    fn on_token(&mut self, s: Sampled) -> GenItem {
        let now = Instant::now();
        match self.last_token {
            None => self.metrics.observe_ttft(now - self.started),
            Some(t) => self.metrics.observe_itl(now - t),
        }
        self.last_token = Some(now);
        self.tokens_seen += 1;
        if self.in_reasoning {
            self.usage.reasoning_tokens += 1;
            if Some(s.token) == self.think_end {
                self.in_reasoning = false;
            }
        }
        let logprob = self.logprobs.then(|| TokenLogprob {
            token: self.tokenizer.decode(&[s.token]),
            logprob: s.logprob,
            top: s.top.iter().map(|&(t, lp)| (self.tokenizer.decode(&[t]), lp)).collect(),
        });
        let mut deltas = self.text.push(s.token);
        self.note_tool_calls(&mut deltas);
        if self.text.stopped() {
            // A stop string: end now; the engine frees the sequence.
            self.service.cancel(self.stream.id);
        }
        GenItem::Step { deltas, logprob }
    }

    fn on_finish(&mut self, reason: FinishReason, usage: crate::engine::Usage) -> GenItem {
        let mut tail = self.text.finish();
        self.note_tool_calls(&mut tail);
        self.usage.completion_tokens = usage.completion_tokens;
        self.usage.cache_hit_tokens = usage.cache_hit_tokens;
        self.usage.cache_miss_tokens = usage.cache_miss_tokens;
        self.done = true;
        let finish = match reason {
            _ if self.text.stopped() => Finish::Stop,
            FinishReason::Stop if self.saw_tool_call => Finish::ToolCalls,
            FinishReason::Stop => Finish::Stop,
            FinishReason::Length => Finish::Length,
            FinishReason::Cancelled => Finish::Cancelled,
        };
        self.count_finished(self.usage.completion_tokens);
        let stop_sequence = self.text.stop_sequence().map(str::to_string);
        self.pending.push_back(GenItem::Done { finish, usage: self.usage, malformed: self.text.malformed(), stop_sequence });
        GenItem::Step { deltas: tail, logprob: None }
    }

    fn count_finished(&mut self, completion_tokens: usize) {
        if !self.counted {
            self.counted = true;
            self.metrics.request_finished(self.usage.prompt_tokens, completion_tokens);
        }
    }

    /// Remember that a tool call was made and give each call a unique id (the parser numbers
    /// them per completion).
    fn note_tool_calls(&mut self, deltas: &mut [Delta]) {
        for d in deltas.iter_mut() {
            if let Delta::ToolCall { id, .. } = d {
                self.saw_tool_call = true;
                *id = super::openai::new_id("call_");
            }
        }
    }
}

impl Drop for Generation {
    /// A generation dropped before its finish (the client left) still leaves the metrics
    /// consistent; the engine cancels the request when it sees the stream closed.
    fn drop(&mut self) {
        self.count_finished(self.tokens_seen);
    }
}
