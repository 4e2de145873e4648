//! OpenAI-compatible routes as the DeepSeek API serves them: chat completions (stream and
//! non-stream, thinking, tools, JSON mode, logprobs, n, usage with prefix-cache counts), the
//! beta FIM completion, and the model list.

use std::convert::Infallible;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::stream::{self, Stream, StreamExt};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::chat::encode::{encode_conversation, generation_mode, EncodeRequest, Message, ReasoningEffort, Role, Tool};
use crate::chat::parse::Delta;
use crate::chat::ThinkingMode;
use crate::constraint::dsml::{StrictTool, StrictToolCalls};
use crate::constraint::force::ForcePrefix;
use crate::constraint::Constraint;
use crate::sampling::SamplingParams;

use super::errors::{ApiError, Flavor};
use super::generation::{Finish, GenItem, GenOptions, GenUsage, Generation, TokenLogprob};
use super::{json_body, sse_json, AppState, Shared, MODEL_IDS};

/// Most choices a request may ask for.
pub const MAX_N: usize = 8;
/// Most stop strings a request may give.
pub const MAX_STOPS: usize = 16;

#[derive(Deserialize, Debug, Clone)]
#[serde(untagged)]
pub enum StopSpec {
    One(String),
    Many(Vec<String>),
}

impl StopSpec {
    pub fn into_vec(self) -> Vec<String> {
        match self {
            StopSpec::One(s) => vec![s],
            StopSpec::Many(v) => v,
        }
    }
}

#[derive(Deserialize, Debug, Default)]
pub struct StreamOptions {
    #[serde(default)]
    pub include_usage: bool,
}

#[derive(Deserialize, Debug)]
pub struct ThinkingParam {
    #[serde(rename = "type")]
    pub kind: ThinkingKind,
}

#[derive(Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ThinkingKind {
    Enabled,
    Disabled,
}

#[derive(Deserialize, Debug)]
pub struct ChatRequest {
    pub model: String,
    pub messages: Vec<Message>,
    #[serde(default)]
    pub stream: bool,
    pub stream_options: Option<StreamOptions>,
    pub max_tokens: Option<usize>,
    pub max_completion_tokens: Option<usize>,
    pub temperature: Option<f32>,
    pub top_p: Option<f32>,
    pub top_k: Option<usize>,
    pub stop: Option<StopSpec>,
    pub seed: Option<u64>,
    pub tools: Option<Vec<Tool>>,
    pub tool_choice: Option<Value>,
    pub response_format: Option<Value>,
    pub thinking: Option<ThinkingParam>,
    pub reasoning_effort: Option<ReasoningEffort>,
    pub logprobs: Option<bool>,
    pub top_logprobs: Option<usize>,
    pub n: Option<usize>,
    pub frequency_penalty: Option<f32>,
    pub presence_penalty: Option<f32>,
    /// Test hook (server started with test hooks only): the exact completion text to produce.
    pub dsv4_forced_output: Option<String>,
}

/// What a checked request turns into: the prompt, how to sample, how to answer.
pub struct Prepared {
    pub prompt: Vec<u32>,
    pub mode: ThinkingMode,
    pub params: SamplingParams,
    pub max_tokens: usize,
    pub stops: Vec<String>,
    pub logprobs: bool,
    pub n: usize,
    /// Builds each choice's constraint (a constraint is stateful, so one per choice).
    pub constraint: Option<Box<dyn Fn() -> Box<dyn Constraint> + Send + Sync>>,
}

pub fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

pub fn new_id(prefix: &str) -> String {
    let mut rng = crate::sampling::Rng::from_entropy();
    format!("{prefix}{:016x}{:08x}", rng.next_u64(), rng.next_u64() as u32)
}

fn valid_tool_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 64 && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// Sampling values shared by the chat and FIM routes.
pub fn sampling(temperature: Option<f32>, top_p: Option<f32>, top_k: Option<usize>, seed: Option<u64>, thinking: bool, logprobs: Option<usize>) -> Result<SamplingParams, ApiError> {
    let mut p = SamplingParams { temperature: temperature.unwrap_or(1.0), top_p: top_p.unwrap_or(1.0), top_k: top_k.unwrap_or(0), seed, logprobs };
    p.validate().map_err(|e| {
        let param = match e {
            crate::sampling::SamplingError::Temperature(_) => "temperature",
            crate::sampling::SamplingError::TopP(_) => "top_p",
            crate::sampling::SamplingError::TopLogprobs(_) => "top_logprobs",
        };
        ApiError::bad_request(e.to_string()).param(param).code("invalid_value")
    })?;
    if thinking {
        // As the DeepSeek API: in thinking mode temperature and top_p have no effect.
        p.temperature = 1.0;
        p.top_p = 1.0;
    }
    Ok(p)
}

pub fn max_tokens(s: &AppState, asked: Option<usize>, prompt_len: usize) -> Result<usize, ApiError> {
    let room = s.service.max_context().saturating_sub(prompt_len);
    match asked {
        Some(0) => Err(ApiError::bad_request("max_tokens must be at least 1").param("max_tokens").code("invalid_value")),
        Some(m) if m > s.cfg.max_output_tokens => {
            Err(ApiError::bad_request(format!("max_tokens {m} is over the limit of {}", s.cfg.max_output_tokens)).param("max_tokens").code("invalid_value"))
        }
        Some(m) if m > room => Err(ApiError::bad_request(format!(
            "the prompt ({prompt_len} tokens) plus max_tokens ({m}) is over the context limit of {} tokens",
            s.service.max_context()
        ))
        .param("max_tokens")
        .code("context_length_exceeded")),
        Some(m) => Ok(m),
        None => Ok(s.cfg.default_max_tokens.min(room).max(1)),
    }
}

pub fn check_prompt_len(s: &AppState, len: usize, param: &str) -> Result<(), ApiError> {
    let limit = s.service.max_context();
    if len >= limit {
        return Err(ApiError::bad_request(format!("the prompt has {len} tokens; the model's context limit is {limit} tokens")).param(param).code("context_length_exceeded"));
    }
    Ok(())
}

pub fn stops(stop: Option<StopSpec>) -> Result<Vec<String>, ApiError> {
    let v = stop.map(StopSpec::into_vec).unwrap_or_default();
    if v.len() > MAX_STOPS {
        return Err(ApiError::bad_request(format!("at most {MAX_STOPS} stop strings")).param("stop"));
    }
    Ok(v)
}

/// Check a chat request and build its prompt and sampling plan.
pub fn prepare_chat(s: &AppState, mut r: ChatRequest, flavor: Flavor) -> Result<Prepared, ApiError> {
    let thinks = s.model_thinks(&r.model).ok_or_else(|| {
        ApiError::new(StatusCode::NOT_FOUND, format!("the model '{}' does not exist; served: {}, {}", r.model, MODEL_IDS.map(|m| m.0).join(", "), s.cfg.served_name))
            .param("model")
            .code("model_not_found")
            .flavor(flavor)
    })?;
    if r.messages.is_empty() {
        return Err(ApiError::bad_request("messages must not be empty").param("messages").flavor(flavor));
    }
    let mut thinking = match &r.thinking {
        Some(t) => t.kind == ThinkingKind::Enabled,
        None => thinks,
    };
    if r.reasoning_effort == Some(ReasoningEffort::None) {
        thinking = false;
    }
    let mode = if thinking { ThinkingMode::Thinking } else { ThinkingMode::Chat };
    let n = r.n.unwrap_or(1);
    if n == 0 || n > MAX_N {
        return Err(ApiError::bad_request(format!("n must be between 1 and {MAX_N}")).param("n").flavor(flavor));
    }
    for (name, v) in [("frequency_penalty", r.frequency_penalty), ("presence_penalty", r.presence_penalty)] {
        if let Some(v) = v {
            if !(-2.0..=2.0).contains(&v) {
                return Err(ApiError::bad_request(format!("{name} must be between -2 and 2")).param(name).flavor(flavor));
            }
        }
    }
    let logprobs = r.logprobs.unwrap_or(false);
    if r.top_logprobs.is_some() && !logprobs {
        return Err(ApiError::bad_request("top_logprobs requires logprobs: true").param("top_logprobs").flavor(flavor));
    }
    let params = sampling(r.temperature, r.top_p, r.top_k, r.seed, thinking, logprobs.then_some(r.top_logprobs.unwrap_or(0))).map_err(|e| e.flavor(flavor))?;
    let stops = stops(r.stop.take()).map_err(|e| e.flavor(flavor))?;

    // Tools and tool_choice.
    let tools = r.tools.take().unwrap_or_default();
    for (i, t) in tools.iter().enumerate() {
        let name = t.function.name().unwrap_or("");
        if t.kind != "function" || !valid_tool_name(name) {
            return Err(ApiError::bad_request(format!("tools[{i}]: a tool needs type \"function\" and a function.name of 1-64 letters, digits, _ or -")).param(&format!("tools[{i}]")).flavor(flavor));
        }
        if let Some(p) = t.function.parameters() {
            if !p.is_object() {
                return Err(ApiError::bad_request(format!("tools[{i}].function.parameters must be a JSON Schema object")).param(&format!("tools[{i}].function.parameters")).flavor(flavor));
            }
        }
    }
    let choice = parse_tool_choice(r.tool_choice.as_ref(), &tools).map_err(|e| e.flavor(flavor))?;
    let tools_for_prompt = match choice {
        ToolChoice::None => None,
        _ if tools.is_empty() => None,
        _ => Some(tools),
    };
    // Tool calls follow the DSML grammar, with strict tools' arguments held to their schema,
    // whenever a tool is strict or a call is required.
    let strict_tools: Option<Vec<StrictTool>> = tools_for_prompt.as_ref().and_then(|ts| {
        let any_strict = ts.iter().any(|t| t.function.0.get("strict").and_then(Value::as_bool) == Some(true));
        (any_strict || matches!(choice, ToolChoice::Required(_))).then(|| {
            ts.iter()
                .map(|t| StrictTool {
                    name: t.function.name().unwrap_or_default().to_string(),
                    strict: t.function.0.get("strict").and_then(Value::as_bool) == Some(true),
                    schema: t.function.parameters().cloned(),
                })
                .collect()
        })
    });

    // Response format: JSON mode constrains the content (after the reasoning).
    let (response_format, json_schema) = match &r.response_format {
        None => (None, None),
        Some(f) => match f.get("type").and_then(Value::as_str) {
            Some("text") => (None, None),
            Some("json_object") => (None, Some(json!({"type": "object"}))),
            Some("json_schema") => {
                let schema = f.pointer("/json_schema/schema").cloned().ok_or_else(|| ApiError::bad_request("response_format json_schema needs json_schema.schema").param("response_format").flavor(flavor))?;
                (Some(f.clone()), Some(schema))
            }
            _ => return Err(ApiError::bad_request("response_format.type must be \"text\", \"json_object\" or \"json_schema\"").param("response_format").flavor(flavor)),
        },
    };

    let req = EncodeRequest {
        messages: r.messages,
        tools: tools_for_prompt,
        response_format,
        thinking_mode: mode,
        reasoning_effort: r.reasoning_effort,
        drop_thinking: true,
    };
    let text = encode_conversation(&req).map_err(|e| ApiError::bad_request(e.to_string()).param(&e.path).flavor(flavor))?;
    let prompt = s.tokenizer.encode(&text);
    check_prompt_len(s, prompt.len(), "messages").map_err(|e| e.flavor(flavor))?;
    let max_tokens = max_tokens(s, r.max_completion_tokens.or(r.max_tokens), prompt.len()).map_err(|e| e.flavor(flavor))?;
    let prefix_continuation = req.messages.last().is_some_and(|m| m.role == Role::Assistant && m.prefix);

    let think_end = s.tokenizer.token_id(crate::chat::THINK_END);
    // In thinking mode the forced/constrained part starts after `</think>` (unless a prefix
    // continuation already closed the reasoning).
    let after = if mode == ThinkingMode::Thinking && !prefix_continuation { think_end } else { None };
    let constraint: Option<Box<dyn Fn() -> Box<dyn Constraint> + Send + Sync>> = if let Some(forced) = r.dsv4_forced_output.take() {
        if !s.cfg.test_hooks {
            return Err(ApiError::bad_request("unknown parameter dsv4_forced_output").param("dsv4_forced_output").flavor(flavor));
        }
        let mut toks = s.tokenizer.encode(&forced);
        toks.push(s.tokenizer.eos_id());
        Some(Box::new(move || Box::new(ForcePrefix::new(None, toks.clone())) as Box<dyn Constraint>))
    } else if let Some(tools) = strict_tools {
        let (vocab, eos) = (s.tokenizer.token_bytes_table(), s.tokenizer.eos_id());
        let required = match &choice {
            ToolChoice::Required(name) => Some(name.clone()),
            _ => None,
        };
        Some(Box::new(move || {
            let c = StrictToolCalls::new(vocab.clone(), eos, after, tools.clone());
            Box::new(match &required {
                Some(name) => c.with_required_call(name.as_deref()),
                None => c,
            }) as Box<dyn Constraint>
        }))
    } else if let Some(schema) = json_schema {
        let vocab = s.tokenizer.token_bytes_table();
        let eos = s.tokenizer.eos_id();
        let schema = Some(schema);
        Some(Box::new(move || Box::new(crate::constraint::json::JsonConstraint::new(vocab.clone(), eos, after, schema.clone())) as Box<dyn Constraint>))
    } else {
        None
    };
    // The completion is parsed in the mode the prompt leaves the model in (a prefix that already
    // has content continues in chat mode).
    let mode = generation_mode(&req);
    Ok(Prepared { prompt, mode, params, max_tokens, stops, logprobs, n, constraint })
}

pub enum ToolChoice {
    None,
    Auto,
    /// Some(name): that function.
    Required(Option<String>),
}

fn parse_tool_choice(v: Option<&Value>, tools: &[Tool]) -> Result<ToolChoice, ApiError> {
    let bad = |m: String| Err(ApiError::bad_request(m).param("tool_choice"));
    match v {
        None => Ok(ToolChoice::Auto),
        Some(Value::String(s)) => match s.as_str() {
            "none" => Ok(ToolChoice::None),
            "auto" => Ok(ToolChoice::Auto),
            "required" if tools.is_empty() => bad("tool_choice \"required\" needs tools".into()),
            "required" => Ok(ToolChoice::Required(None)),
            other => bad(format!("tool_choice must be \"none\", \"auto\", \"required\" or a function, got \"{other}\"")),
        },
        Some(obj) => {
            let name = obj.pointer("/function/name").and_then(Value::as_str);
            match name {
                Some(n) if tools.iter().any(|t| t.function.name() == Some(n)) => Ok(ToolChoice::Required(Some(n.to_string()))),
                Some(n) => bad(format!("tool_choice names the function '{n}', which is not in tools")),
                None => bad("tool_choice object needs {\"type\": \"function\", \"function\": {\"name\": ...}}".into()),
            }
        }
    }
}

fn usage_json(u: &GenUsage) -> Value {
    json!({
        "prompt_tokens": u.prompt_tokens,
        "completion_tokens": u.completion_tokens,
        "total_tokens": u.prompt_tokens + u.completion_tokens,
        "prompt_cache_hit_tokens": u.cache_hit_tokens,
        "prompt_cache_miss_tokens": u.cache_miss_tokens,
        "prompt_tokens_details": {"cached_tokens": u.cache_hit_tokens},
        "completion_tokens_details": {"reasoning_tokens": u.reasoning_tokens},
    })
}

/// Usage over several choices of one prompt: the prompt counts once.
fn total_usage(us: &[GenUsage]) -> GenUsage {
    let mut t = us.first().copied().unwrap_or_default();
    for u in &us[1.min(us.len())..] {
        t.completion_tokens += u.completion_tokens;
        t.reasoning_tokens += u.reasoning_tokens;
    }
    t
}

fn logprob_json(l: &TokenLogprob) -> Value {
    let entry = |t: &str, lp: f32| json!({"token": t, "logprob": lp, "bytes": t.as_bytes()});
    let mut e = entry(&l.token, l.logprob);
    e["top_logprobs"] = Value::Array(l.top.iter().map(|(t, lp)| entry(t, *lp)).collect());
    e
}

fn tool_call_json(index: usize, id: &str, name: &str, arguments: &str) -> Value {
    json!({"index": index, "id": id, "type": "function", "function": {"name": name, "arguments": arguments}})
}

/// Start every choice's generation.
pub fn start_all(s: &AppState, p: &Prepared) -> Result<Vec<Generation>, ApiError> {
    (0..p.n)
        .map(|i| {
            let mut params = p.params.clone();
            params.seed = params.seed.map(|x| x.wrapping_add(i as u64));
            let opts = GenOptions { params, max_tokens: p.max_tokens, stops: p.stops.clone(), mode: p.mode, constraint: p.constraint.as_ref().map(|f| f()), logprobs: p.logprobs };
            Generation::start(&s.service, &s.tokenizer, &s.metrics, p.prompt.clone(), opts)
        })
        .collect()
}

pub async fn chat_completions(State(s): State<Shared>, body: Body) -> Response {
    let r: ChatRequest = match json_body(&s, body, Flavor::OpenAi).await {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    let (stream, include_usage, model) = (r.stream, r.stream_options.as_ref().is_some_and(|o| o.include_usage), r.model.clone());
    let p = match prepare_chat(&s, r, Flavor::OpenAi) {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    let gens = match start_all(&s, &p) {
        Ok(g) => g,
        Err(e) => return e.into_response(),
    };
    let (id, created) = (new_id("chatcmpl-"), now_secs());
    if stream {
        chat_stream(gens, id, created, model, include_usage).into_response()
    } else {
        chat_complete(gens, id, created, model, p.mode).await.into_response()
    }
}

/// One choice collected whole.
#[derive(Default)]
struct Collected {
    reasoning: String,
    content: String,
    tool_calls: Vec<Value>,
    logprobs: Vec<Value>,
    finish: Option<Finish>,
    usage: GenUsage,
}

async fn collect(mut g: Generation) -> Collected {
    let mut c = Collected::default();
    while let Some(item) = g.next().await {
        match item {
            GenItem::Step { deltas, logprob } => {
                if let Some(l) = logprob {
                    c.logprobs.push(logprob_json(&l));
                }
                for d in deltas {
                    match d {
                        Delta::Reasoning(t) => c.reasoning += &t,
                        Delta::Content(t) => c.content += &t,
                        Delta::ToolCall { index, id, name, arguments } => {
                            let mut v = tool_call_json(index, &id, &name, &arguments);
                            v.as_object_mut().unwrap().remove("index");
                            c.tool_calls.push(v);
                        }
                    }
                }
            }
            GenItem::Done { finish, usage, .. } => {
                c.finish = Some(finish);
                c.usage = usage;
            }
        }
    }
    c
}

async fn chat_complete(gens: Vec<Generation>, id: String, created: u64, model: String, mode: ThinkingMode) -> Response {
    let collected = futures_util::future::join_all(gens.into_iter().map(collect)).await;
    let usage = total_usage(&collected.iter().map(|c| c.usage).collect::<Vec<_>>());
    let with_logprobs = collected.iter().any(|c| !c.logprobs.is_empty());
    let choices: Vec<Value> = collected
        .into_iter()
        .enumerate()
        .map(|(i, c)| {
            let mut message = json!({"role": "assistant", "content": c.content});
            if mode == ThinkingMode::Thinking {
                message["reasoning_content"] = json!(c.reasoning);
            }
            if !c.tool_calls.is_empty() {
                message["tool_calls"] = Value::Array(c.tool_calls);
            }
            let logprobs = if with_logprobs { json!({"content": c.logprobs}) } else { Value::Null };
            json!({"index": i, "message": message, "logprobs": logprobs, "finish_reason": c.finish.unwrap_or(Finish::Cancelled).openai()})
        })
        .collect();
    axum::Json(json!({
        "id": id, "object": "chat.completion", "created": created, "model": model,
        "system_fingerprint": "dsv4", "choices": choices, "usage": usage_json(&usage),
    }))
    .into_response()
}

/// What one choice's stream yields: SSE chunks and, at its end, its usage.
enum ChoiceOut {
    Chunk(Value),
    End(GenUsage),
}

fn choice_stream(g: Generation, index: usize) -> impl Stream<Item = ChoiceOut> + Send {
    // First chunk: the role.
    let first = json!({"index": index, "delta": {"role": "assistant", "content": ""}, "logprobs": null, "finish_reason": null});
    stream::once(async move { ChoiceOut::Chunk(first) }).chain(stream::unfold((g, false), move |(mut g, ended)| async move {
        if ended {
            return None;
        }
        let item = g.next().await?;
        let out: Vec<ChoiceOut> = match item {
            GenItem::Step { deltas, logprob } => {
                let lp = logprob.map(|l| json!({"content": [logprob_json(&l)]}));
                let mut chunks: Vec<ChoiceOut> = deltas
                    .into_iter()
                    .map(|d| {
                        let delta = match d {
                            Delta::Reasoning(t) => json!({"reasoning_content": t}),
                            Delta::Content(t) => json!({"content": t}),
                            Delta::ToolCall { index: ti, id, name, arguments } => json!({"tool_calls": [tool_call_json(ti, &id, &name, &arguments)]}),
                        };
                        ChoiceOut::Chunk(json!({"index": index, "delta": delta, "logprobs": null, "finish_reason": null}))
                    })
                    .collect();
                // Logprobs ride on the token's first chunk (or an empty delta when nothing showed).
                if let Some(lp) = lp {
                    match chunks.first_mut() {
                        Some(ChoiceOut::Chunk(c)) => c["logprobs"] = lp,
                        _ => chunks.push(ChoiceOut::Chunk(json!({"index": index, "delta": {}, "logprobs": lp, "finish_reason": null}))),
                    }
                }
                chunks
            }
            GenItem::Done { finish, usage, .. } => {
                return Some((
                    stream::iter(vec![ChoiceOut::Chunk(json!({"index": index, "delta": {}, "logprobs": null, "finish_reason": finish.openai()})), ChoiceOut::End(usage)]),
                    (g, true),
                ))
            }
        };
        Some((stream::iter(out), (g, false)))
    })
    .flatten())
}

fn chat_stream(gens: Vec<Generation>, id: String, created: u64, model: String, include_usage: bool) -> Sse<impl Stream<Item = Result<SseEvent, Infallible>>> {
    let n = gens.len();
    let merged = stream::select_all(gens.into_iter().enumerate().map(|(i, g)| choice_stream(g, i).boxed()));
    let envelope = move |choices: Value, usage: Value| {
        json!({"id": id, "object": "chat.completion.chunk", "created": created, "model": model, "system_fingerprint": "dsv4", "choices": choices, "usage": usage})
    };
    let events = stream::unfold((merged, Vec::<GenUsage>::new(), false), move |(mut merged, mut usages, finished)| {
        let envelope = envelope.clone();
        async move {
            if finished {
                return None;
            }
            loop {
                match merged.next().await {
                    Some(ChoiceOut::Chunk(c)) => {
                        let ev = SseEvent::default().data(sse_json(&envelope(json!([c]), Value::Null)));
                        return Some((vec![ev], (merged, usages, false)));
                    }
                    Some(ChoiceOut::End(u)) => usages.push(u),
                    None => {
                        let mut evs = Vec::new();
                        if include_usage && usages.len() == n {
                            evs.push(SseEvent::default().data(sse_json(&envelope(json!([]), usage_json(&total_usage(&usages))))));
                        }
                        evs.push(SseEvent::default().data("[DONE]"));
                        return Some((evs, (merged, usages, true)));
                    }
                }
            }
        }
    })
    .flat_map(|evs| stream::iter(evs.into_iter().map(Ok)));
    Sse::new(events).keep_alive(KeepAlive::default())
}

// ---------------------------------------------------------------- FIM (beta completions)

#[derive(Deserialize, Debug)]
pub struct FimRequest {
    pub model: String,
    pub prompt: String,
    pub suffix: Option<String>,
    #[serde(default)]
    pub stream: bool,
    pub stream_options: Option<StreamOptions>,
    pub max_tokens: Option<usize>,
    pub temperature: Option<f32>,
    pub top_p: Option<f32>,
    pub stop: Option<StopSpec>,
    pub seed: Option<u64>,
    /// OpenAI completions: an integer (top alternatives).
    pub logprobs: Option<usize>,
    #[serde(default)]
    pub echo: bool,
}

/// `POST /beta/completions`: fill in the middle between `prompt` and `suffix` (non-thinking).
pub async fn fim_completions(State(s): State<Shared>, body: Body) -> Response {
    let r: FimRequest = match json_body(&s, body, Flavor::OpenAi).await {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    match fim(&s, r).await {
        Ok(resp) => resp,
        Err(e) => e.into_response(),
    }
}

async fn fim(s: &AppState, r: FimRequest) -> Result<Response, ApiError> {
    if s.model_thinks(&r.model).is_none() {
        return Err(ApiError::new(StatusCode::NOT_FOUND, format!("the model '{}' does not exist", r.model)).param("model").code("model_not_found"));
    }
    if r.echo {
        return Err(ApiError::bad_request("echo is not supported").param("echo"));
    }
    let text = match &r.suffix {
        Some(suffix) => format!("{}<｜fim▁begin｜>{}<｜fim▁hole｜>{}<｜fim▁end｜>", crate::chat::BOS, r.prompt, suffix),
        None => format!("{}{}", crate::chat::BOS, r.prompt),
    };
    let prompt = s.tokenizer.encode(&text);
    check_prompt_len(s, prompt.len(), "prompt")?;
    let params = sampling(r.temperature, r.top_p, None, r.seed, false, r.logprobs)?;
    let p = Prepared {
        max_tokens: max_tokens(s, r.max_tokens, prompt.len())?,
        prompt,
        mode: ThinkingMode::Chat,
        params,
        stops: stops(r.stop)?,
        logprobs: r.logprobs.is_some(),
        n: 1,
        constraint: None,
    };
    let mut gens = start_all(s, &p)?;
    let g = gens.pop().unwrap();
    let (id, created, model) = (new_id("cmpl-"), now_secs(), r.model.clone());
    if !r.stream {
        let c = collect(g).await;
        let logprobs = (!c.logprobs.is_empty()).then(|| completion_logprobs(&c.logprobs));
        return Ok(axum::Json(json!({
            "id": id, "object": "text_completion", "created": created, "model": model,
            "choices": [{"index": 0, "text": c.content, "logprobs": logprobs, "finish_reason": c.finish.unwrap_or(Finish::Cancelled).openai()}],
            "usage": usage_json(&c.usage),
        }))
        .into_response());
    }
    let include_usage = r.stream_options.is_some_and(|o| o.include_usage);
    let events = stream::unfold((g, false), move |(mut g, ended)| {
        let (id, model) = (id.clone(), model.clone());
        async move {
            if ended {
                return None;
            }
            let chunk = |choices: Value, usage: Value| SseEvent::default().data(sse_json(&json!({"id": id, "object": "text_completion", "created": created, "model": model, "choices": choices, "usage": usage})));
            match g.next().await {
                Some(GenItem::Step { deltas, logprob }) => {
                    let text: String = deltas.into_iter().filter_map(|d| if let Delta::Content(t) = d { Some(t) } else { None }).collect();
                    let lp = logprob.map(|l| completion_logprobs(&[logprob_json(&l)]));
                    if text.is_empty() && lp.is_none() {
                        return Some((vec![], (g, false)));
                    }
                    Some((vec![chunk(json!([{"index": 0, "text": text, "logprobs": lp, "finish_reason": null}]), Value::Null)], (g, false)))
                }
                Some(GenItem::Done { finish, usage, .. }) => {
                    let mut evs = vec![chunk(json!([{"index": 0, "text": "", "logprobs": null, "finish_reason": finish.openai()}]), Value::Null)];
                    if include_usage {
                        evs.push(chunk(json!([]), usage_json(&usage)));
                    }
                    evs.push(SseEvent::default().data("[DONE]"));
                    Some((evs, (g, true)))
                }
                None => None,
            }
        }
    })
    .flat_map(|evs| stream::iter(evs.into_iter().map(Ok::<_, Infallible>)));
    Ok(Sse::new(events).keep_alive(KeepAlive::default()).into_response())
}

/// The legacy completions logprobs shape from per-token entries.
fn completion_logprobs(entries: &[Value]) -> Value {
    json!({
        "tokens": entries.iter().map(|e| e["token"].clone()).collect::<Vec<_>>(),
        "token_logprobs": entries.iter().map(|e| e["logprob"].clone()).collect::<Vec<_>>(),
        "top_logprobs": entries.iter().map(|e| {
            let m: serde_json::Map<String, Value> = e["top_logprobs"].as_array().into_iter().flatten().map(|t| (t["token"].as_str().unwrap_or("").to_string(), t["logprob"].clone())).collect();
            Value::Object(m)
        }).collect::<Vec<_>>(),
    })
}

pub async fn models(State(s): State<Shared>) -> Response {
    let created = now_secs();
    let mut data: Vec<Value> = MODEL_IDS.iter().map(|(m, _)| json!({"id": m, "object": "model", "created": created, "owned_by": "dsv4"})).collect();
    if !MODEL_IDS.iter().any(|(m, _)| *m == s.cfg.served_name) {
        data.push(json!({"id": s.cfg.served_name, "object": "model", "created": created, "owned_by": "dsv4"}));
    }
    axum::Json(json!({"object": "list", "data": data})).into_response()
}
