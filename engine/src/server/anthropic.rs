//! `POST /anthropic/v1/messages`: Anthropic's Messages API over the chat model.
//!
//! The request is mapped onto an OpenAI [`ChatRequest`] and goes through the same checks and
//! prompt building as the chat route ([`prepare_chat`]):
//! - `system` (a string or text blocks, joined by `\n\n`) becomes the system message;
//! - user turns: each `text` block a user message (the encoder joins consecutive user messages
//!   with `\n\n`), each `tool_result` block a `tool` message (`tool_call_id` = `tool_use_id`),
//!   in the order they appear; a `tool_result` with `is_error: true` gets `Error: ` before its
//!   text (the chat format has no error flag);
//! - assistant turns: `thinking` blocks become the reasoning, `text` blocks the content,
//!   `tool_use` blocks tool calls (`arguments` = `input` as JSON text); `redacted_thinking`
//!   blocks are dropped (they cannot be read back); a final assistant turn is a prefill, which
//!   the model continues (beta prefix completion);
//! - `tools` become functions (`input_schema` = `parameters`), `tool_choice` auto / any / tool /
//!   none becomes auto / required / the named function / none, `thinking` enabled / disabled
//!   switches the thinking mode (default: the model's), `stop_sequences` are the stop strings;
//! - images and documents are refused (400): the model reads text only.
//!
//! The answer is a `message` with `thinking`, `text` and `tool_use` blocks in that order, or the
//! same as Anthropic's server-sent events. `usage.input_tokens` counts the prompt tokens not read
//! from the prefix cache, `cache_read_input_tokens` those that were (Anthropic's split; the sum
//! is the prompt). While streaming, `message_start` cannot know the cache hits yet: it reports the
//! whole prompt as `input_tokens`, and `message_delta` carries the final split.
//!
//! `stop_reason` `stop_sequence` names the stop string the generation reports as having ended
//! the content.

use std::convert::Infallible;

use axum::body::Body;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::stream::{self, Stream, StreamExt};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::chat::encode::{Content, FunctionCall, FunctionDef, Message, Role, Tool, ToolCall};
use crate::chat::parse::Delta;
use crate::chat::ThinkingMode;

use super::errors::{ApiError, Flavor};
use super::generation::{Finish, GenItem, GenUsage, Generation};
use super::openai::{new_id, prepare_chat, start_all, ChatRequest, StopSpec, ThinkingKind, ThinkingParam};
use super::{json_body, Shared, MODEL_IDS};

const FLAVOR: Flavor = Flavor::Anthropic;

fn bad(message: impl Into<String>, param: &str) -> ApiError {
    ApiError::bad_request(message).param(param).flavor(FLAVOR)
}

// ---------------------------------------------------------------- request

#[derive(Deserialize, Debug)]
pub struct MessagesRequest {
    pub model: String,
    pub max_tokens: Option<usize>,
    pub messages: Vec<InMessage>,
    /// A string or an array of text blocks.
    pub system: Option<Value>,
    pub stop_sequences: Option<Vec<String>>,
    pub temperature: Option<f32>,
    pub top_p: Option<f32>,
    pub top_k: Option<usize>,
    pub stream: Option<bool>,
    pub tools: Option<Vec<InTool>>,
    pub tool_choice: Option<InToolChoice>,
    pub thinking: Option<InThinking>,
    /// Accepted and ignored (`user_id`).
    pub metadata: Option<Value>,
    /// Test hook (server started with test hooks only): the exact completion text to produce.
    pub dsv4_forced_output: Option<String>,
}

#[derive(Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum InRole {
    User,
    Assistant,
}

#[derive(Deserialize, Debug)]
pub struct InMessage {
    pub role: InRole,
    /// A string or an array of content blocks.
    pub content: Value,
}

/// One content block of a message (or of `system`, or of a tool result's content).
#[derive(Deserialize, Debug)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Block {
    Text {
        text: String,
    },
    Image {},
    Document {},
    ToolUse {
        id: String,
        name: String,
        #[serde(default)]
        input: Value,
    },
    ToolResult {
        tool_use_id: String,
        #[serde(default)]
        content: Value,
        #[serde(default)]
        is_error: Option<bool>,
    },
    Thinking {
        thinking: String,
        #[serde(default)]
        signature: Option<String>,
    },
    RedactedThinking {},
}

impl Block {
    fn kind(&self) -> &'static str {
        match self {
            Block::Text { .. } => "text",
            Block::Image {} => "image",
            Block::Document {} => "document",
            Block::ToolUse { .. } => "tool_use",
            Block::ToolResult { .. } => "tool_result",
            Block::Thinking { .. } => "thinking",
            Block::RedactedThinking {} => "redacted_thinking",
        }
    }
}

#[derive(Deserialize, Debug)]
pub struct InTool {
    /// Custom tools only (absent or `"custom"`); Anthropic's server tools are not served.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub name: String,
    pub description: Option<String>,
    pub input_schema: Option<Value>,
}

#[derive(Deserialize, Debug)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum InToolChoice {
    Auto {},
    Any {},
    Tool {
        name: String,
    },
    #[serde(rename = "none")]
    NoTool {},
}

#[derive(Deserialize, Debug)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum InThinking {
    /// `budget_tokens` is accepted but not enforced: the reasoning ends when the model ends it
    /// (or at max_tokens).
    Enabled {
        budget_tokens: Option<usize>,
    },
    Disabled {},
}

/// Content blocks of a `content` value: a string is one text block.
fn blocks(v: &Value, path: &str) -> Result<Vec<Block>, ApiError> {
    match v {
        Value::String(s) => Ok(vec![Block::Text { text: s.clone() }]),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(j, item)| {
                let p = format!("{path}[{j}]");
                let b: Block = serde_json::from_value(item.clone()).map_err(|e| bad(format!("invalid request: {p}: {e}"), &p))?;
                if matches!(b, Block::Image {} | Block::Document {}) {
                    return Err(bad(format!("{p}: {} content blocks are not supported: this model reads text only", b.kind()), &p));
                }
                Ok(b)
            })
            .collect(),
        _ => Err(bad(format!("invalid request: {path}: expected a string or an array of content blocks"), path)),
    }
}

/// The text of a value that may hold only text blocks (`system`, a tool result's content).
fn text_only(v: &Value, path: &str, join: &str) -> Result<String, ApiError> {
    if v.is_null() {
        return Ok(String::new());
    }
    let mut texts = Vec::new();
    for (j, b) in blocks(v, path)?.into_iter().enumerate() {
        match b {
            Block::Text { text } => texts.push(text),
            other => return Err(bad(format!("{path}[{j}]: a {} block is not allowed here (text only)", other.kind()), &format!("{path}[{j}]"))),
        }
    }
    Ok(texts.join(join))
}

/// The conversation in chat-format messages.
struct Conversation {
    messages: Vec<Message>,
    /// Where each message came from in the request (`system`, `messages[2].content[1]`), to
    /// name it in the encoder's errors.
    origin: Vec<String>,
    /// Whether the last turn is an assistant prefill with text (or tool calls) in it.
    prefill_text: bool,
}

fn conversation(r: &MessagesRequest) -> Result<Conversation, ApiError> {
    let (mut out, mut origin) = (Vec::new(), Vec::new());
    if let Some(system) = &r.system {
        let text = text_only(system, "system", "\n\n")?;
        if !text.is_empty() {
            out.push(Message::system(&text));
            origin.push("system".to_string());
        }
    }
    let mut prefill_text = false;
    let last = r.messages.len().saturating_sub(1);
    for (i, m) in r.messages.iter().enumerate() {
        let path = format!("messages[{i}].content");
        let bs = blocks(&m.content, &path)?;
        match m.role {
            InRole::User => {
                let before = out.len();
                let one = m.content.is_string();
                for (j, b) in bs.into_iter().enumerate() {
                    origin.push(if one { path.clone() } else { format!("{path}[{j}]") });
                    match b {
                        Block::Text { text } => out.push(Message::user(&text)),
                        Block::ToolResult { tool_use_id, content, is_error } => {
                            let p = format!("{path}[{j}].content");
                            let mut text = text_only(&content, &p, "\n\n")?;
                            if is_error == Some(true) {
                                text = if text.is_empty() { "Error".into() } else { format!("Error: {text}") };
                            }
                            out.push(Message::tool(&tool_use_id, &text));
                        }
                        other => {
                            let p = format!("{path}[{j}]");
                            return Err(bad(format!("{p}: a {} block is not allowed in a user message", other.kind()), &p));
                        }
                    }
                }
                if out.len() == before {
                    out.push(Message::user(""));
                    origin.push(path.clone());
                }
            }
            InRole::Assistant => {
                let (mut reasoning, mut text, mut calls) = (None::<String>, String::new(), Vec::new());
                for (j, b) in bs.into_iter().enumerate() {
                    let p = format!("{path}[{j}]");
                    match b {
                        Block::Text { text: t } => text += &t,
                        Block::Thinking { thinking, .. } => reasoning.get_or_insert_with(String::new).push_str(&thinking),
                        Block::RedactedThinking {} => {}
                        Block::ToolUse { id, name, input } => {
                            let input = match input {
                                Value::Null => Value::Object(Map::new()),
                                v @ Value::Object(_) => v,
                                _ => return Err(bad(format!("{p}.input must be an object"), &format!("{p}.input"))),
                            };
                            calls.push(ToolCall { id: Some(id), kind: "function".into(), function: FunctionCall { name, arguments: input.to_string() } });
                        }
                        other => return Err(bad(format!("{p}: a {} block is not allowed in an assistant message", other.kind()), &p)),
                    }
                }
                let prefix = i == last;
                prefill_text = prefix && (!text.is_empty() || !calls.is_empty());
                origin.push(format!("messages[{i}]"));
                out.push(Message {
                    role: Role::Assistant,
                    content: Some(Content::Text(text)),
                    reasoning_content: reasoning,
                    tool_calls: (!calls.is_empty()).then_some(calls),
                    prefix,
                    ..Default::default()
                });
            }
        }
    }
    Ok(Conversation { messages: out, origin, prefill_text })
}

/// An error about `messages[k]...` of the converted conversation, renamed after the request's
/// block it came from.
fn rename_path(mut e: ApiError, origin: &[String]) -> ApiError {
    let Some(param) = e.param.clone() else { return e };
    let Some(rest) = param.strip_prefix("messages[") else { return e };
    let Some((k, tail)) = rest.split_once(']') else { return e };
    let Some(from) = k.parse::<usize>().ok().and_then(|k| origin.get(k)) else { return e };
    let renamed = format!("{from}{tail}");
    if let Some(m) = e.message.strip_prefix(param.as_str()) {
        e.message = format!("{renamed}{m}");
    }
    e.param = Some(renamed);
    e
}

fn tool(t: InTool, i: usize) -> Result<Tool, ApiError> {
    if let Some(kind) = t.kind.as_deref() {
        if kind != "custom" {
            return Err(bad(format!("tools[{i}]: tool type \"{kind}\" is not supported (custom tools only)"), &format!("tools[{i}].type")));
        }
    }
    if t.name.is_empty() || t.name.len() > 64 || !t.name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
        return Err(bad(format!("tools[{i}].name: must be 1-64 letters, digits, _ or -, got {:?}", t.name), &format!("tools[{i}].name")));
    }
    let schema = t.input_schema.ok_or_else(|| bad(format!("tools[{i}].input_schema: field required"), &format!("tools[{i}].input_schema")))?;
    let mut f = Map::new();
    f.insert("name".into(), Value::String(t.name));
    if let Some(d) = t.description {
        f.insert("description".into(), Value::String(d));
    }
    f.insert("parameters".into(), schema);
    Ok(Tool { kind: "function".into(), function: FunctionDef(f) })
}

/// What the answer needs to know besides the generation.
struct Plan {
    model: String,
    input_tokens: usize,
    mode: ThinkingMode,
}

/// Check the request and start its generation.
fn start(s: &Shared, r: MessagesRequest) -> Result<(Generation, Plan, bool), ApiError> {
    if s.model_thinks(&r.model).is_none() {
        return Err(ApiError::new(StatusCode::NOT_FOUND, format!("model: the model '{}' does not exist; served: {}, {}", r.model, MODEL_IDS.map(|m| m.0).join(", "), s.cfg.served_name))
            .param("model")
            .flavor(FLAVOR));
    }
    let max_tokens = match r.max_tokens {
        None => return Err(bad("max_tokens: field required", "max_tokens")),
        Some(0) => return Err(bad("max_tokens: must be at least 1", "max_tokens")),
        Some(m) => m,
    };
    if let Some(t) = r.temperature {
        if !(0.0..=1.0).contains(&t) {
            return Err(bad(format!("temperature: must be between 0 and 1, got {t}"), "temperature"));
        }
    }
    if let Some(p) = r.top_p {
        if !(0.0..=1.0).contains(&p) {
            return Err(bad(format!("top_p: must be between 0 and 1, got {p}"), "top_p"));
        }
    }
    let Conversation { messages, origin, prefill_text } = conversation(&r)?;
    let thinking = match &r.thinking {
        Some(InThinking::Enabled { .. }) if prefill_text => {
            return Err(bad("a final assistant message (prefill) with text or tool_use cannot be continued with thinking enabled", "thinking"));
        }
        Some(InThinking::Enabled { .. }) => Some(ThinkingKind::Enabled),
        Some(InThinking::Disabled {}) => Some(ThinkingKind::Disabled),
        // The model continues the prefill's text: no reasoning before it.
        None if prefill_text => Some(ThinkingKind::Disabled),
        None => None,
    };
    let tools = r.tools.map(|ts| ts.into_iter().enumerate().map(|(i, t)| tool(t, i)).collect::<Result<Vec<_>, _>>()).transpose()?;
    if matches!(r.tool_choice, Some(InToolChoice::Any {} | InToolChoice::Tool { .. })) && tools.as_ref().is_none_or(Vec::is_empty) {
        return Err(bad("tool_choice: \"any\" and \"tool\" need tools", "tool_choice"));
    }
    let tool_choice = r.tool_choice.map(|c| match c {
        InToolChoice::Auto {} => json!("auto"),
        InToolChoice::Any {} => json!("required"),
        InToolChoice::Tool { name } => json!({"type": "function", "function": {"name": name}}),
        InToolChoice::NoTool {} => json!("none"),
    });
    let stops: Vec<String> = r.stop_sequences.unwrap_or_default();
    let req = ChatRequest {
        model: r.model.clone(),
        messages,
        stream: false,
        stream_options: None,
        max_tokens: Some(max_tokens),
        max_completion_tokens: None,
        temperature: r.temperature,
        top_p: r.top_p,
        top_k: r.top_k,
        stop: (!stops.is_empty()).then(|| StopSpec::Many(stops.clone())),
        seed: None,
        tools,
        tool_choice,
        response_format: None,
        thinking: thinking.map(|kind| ThinkingParam { kind }),
        reasoning_effort: None,
        logprobs: None,
        top_logprobs: None,
        n: None,
        frequency_penalty: None,
        presence_penalty: None,
        dsv4_forced_output: r.dsv4_forced_output,
    };
    let p = prepare_chat(s, req, FLAVOR).map_err(|e| rename_path(e, &origin).flavor(FLAVOR))?;
    let g = start_all(s, &p).map_err(|e| e.flavor(FLAVOR))?.pop().ok_or_else(|| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "no generation started").flavor(FLAVOR))?;
    let plan = Plan { model: r.model, input_tokens: p.prompt.len(), mode: p.mode };
    Ok((g, plan, r.stream.unwrap_or(false)))
}

pub async fn messages(State(s): State<Shared>, body: Body) -> Response {
    let r: MessagesRequest = match json_body(&s, body, FLAVOR).await {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    let (g, plan, stream) = match start(&s, r) {
        Ok(x) => x,
        Err(e) => return e.into_response(),
    };
    if stream {
        message_stream(g, plan).into_response()
    } else {
        message_complete(g, plan).await
    }
}

// ---------------------------------------------------------------- answer

/// `stop_reason` and `stop_sequence`.
fn stop_reason(finish: Finish, stop_sequence: Option<String>) -> (&'static str, Option<String>) {
    match (finish, stop_sequence) {
        (Finish::Length, _) => ("max_tokens", None),
        (Finish::ToolCalls, _) => ("tool_use", None),
        (Finish::Stop, Some(s)) => ("stop_sequence", Some(s)),
        _ => ("end_turn", None),
    }
}

fn usage_json(u: &GenUsage) -> Value {
    json!({
        "input_tokens": u.prompt_tokens.saturating_sub(u.cache_hit_tokens),
        "output_tokens": u.completion_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": u.cache_hit_tokens,
    })
}

fn cancelled() -> ApiError {
    ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "the generation was cancelled: the server is shutting down").flavor(FLAVOR)
}

fn tool_input(arguments: &str) -> Value {
    serde_json::from_str::<Value>(arguments).ok().filter(Value::is_object).unwrap_or_else(|| Value::Object(Map::new()))
}

async fn message_complete(mut g: Generation, plan: Plan) -> Response {
    let (mut reasoning, mut text, mut calls) = (String::new(), String::new(), Vec::new());
    let mut end = None;
    while let Some(item) = g.next().await {
        match item {
            GenItem::Step { deltas, .. } => {
                for d in deltas {
                    match d {
                        Delta::Reasoning(t) => reasoning += &t,
                        Delta::Content(t) => text += &t,
                        Delta::ToolCall { name, arguments, .. } => calls.push(json!({"type": "tool_use", "id": new_id("toolu_"), "name": name, "input": tool_input(&arguments)})),
                    }
                }
            }
            GenItem::Done { finish, usage, stop_sequence, .. } => end = Some((finish, usage, stop_sequence)),
        }
    }
    let (finish, usage, stop_sequence) = match end {
        Some((f, u, s)) if f != Finish::Cancelled => (f, u, s),
        _ => return cancelled().into_response(),
    };
    let mut content = Vec::new();
    if plan.mode == ThinkingMode::Thinking && !reasoning.is_empty() {
        content.push(json!({"type": "thinking", "thinking": reasoning, "signature": ""}));
    }
    if !text.is_empty() {
        content.push(json!({"type": "text", "text": text}));
    }
    content.extend(calls);
    let (reason, seq) = stop_reason(finish, stop_sequence);
    axum::Json(json!({
        "id": new_id("msg_"), "type": "message", "role": "assistant", "model": plan.model,
        "content": content, "stop_reason": reason, "stop_sequence": seq, "usage": usage_json(&usage),
    }))
    .into_response()
}

fn event(data: Value) -> SseEvent {
    let name = data["type"].as_str().unwrap_or("message").to_string();
    SseEvent::default().event(name).data(super::sse_json(&data))
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Open {
    Thinking,
    Text,
}

/// The streaming state: the open block (thinking or text; tool_use blocks open and close at
/// once) and the next block index.
struct Streamer {
    g: Generation,
    open: Option<Open>,
    index: usize,
    ended: bool,
}

impl Streamer {
    fn close(&mut self, out: &mut Vec<SseEvent>) {
        if self.open.take().is_some() {
            out.push(event(json!({"type": "content_block_stop", "index": self.index})));
            self.index += 1;
        }
    }

    /// A thinking or text delta, opening its block when another (or none) is open.
    fn text_delta(&mut self, kind: Open, t: String, out: &mut Vec<SseEvent>) {
        if t.is_empty() {
            return;
        }
        if self.open != Some(kind) {
            self.close(out);
            let block = match kind {
                Open::Thinking => json!({"type": "thinking", "thinking": "", "signature": ""}),
                Open::Text => json!({"type": "text", "text": ""}),
            };
            out.push(event(json!({"type": "content_block_start", "index": self.index, "content_block": block})));
            self.open = Some(kind);
        }
        let delta = match kind {
            Open::Thinking => json!({"type": "thinking_delta", "thinking": t}),
            Open::Text => json!({"type": "text_delta", "text": t}),
        };
        out.push(event(json!({"type": "content_block_delta", "index": self.index, "delta": delta})));
    }

    fn on_item(&mut self, item: GenItem) -> Vec<SseEvent> {
        let mut out = Vec::new();
        match item {
            GenItem::Step { deltas, .. } => {
                for d in deltas {
                    match d {
                        Delta::Reasoning(t) => self.text_delta(Open::Thinking, t, &mut out),
                        Delta::Content(t) => self.text_delta(Open::Text, t, &mut out),
                        Delta::ToolCall { name, arguments, .. } => {
                            self.close(&mut out);
                            let i = self.index;
                            out.push(event(json!({"type": "content_block_start", "index": i, "content_block": {"type": "tool_use", "id": new_id("toolu_"), "name": name, "input": {}}})));
                            out.push(event(json!({"type": "content_block_delta", "index": i, "delta": {"type": "input_json_delta", "partial_json": arguments}})));
                            out.push(event(json!({"type": "content_block_stop", "index": i})));
                            self.index += 1;
                        }
                    }
                }
            }
            GenItem::Done { finish, usage, stop_sequence, .. } => {
                self.close(&mut out);
                self.ended = true;
                if finish == Finish::Cancelled {
                    out.push(event(cancelled().body()));
                    return out;
                }
                let (reason, seq) = stop_reason(finish, stop_sequence);
                out.push(event(json!({"type": "message_delta", "delta": {"stop_reason": reason, "stop_sequence": seq}, "usage": usage_json(&usage)})));
                out.push(event(json!({"type": "message_stop"})));
            }
        }
        out
    }
}

fn message_stream(g: Generation, plan: Plan) -> Sse<impl Stream<Item = Result<SseEvent, Infallible>>> {
    let start = json!({
        "type": "message_start",
        "message": {
            "id": new_id("msg_"), "type": "message", "role": "assistant", "model": plan.model,
            "content": [], "stop_reason": null, "stop_sequence": null,
            "usage": {"input_tokens": plan.input_tokens, "output_tokens": 0, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0},
        },
    });
    let head = stream::iter(vec![event(start), event(json!({"type": "ping"}))]);
    let st = Streamer { g, open: None, index: 0, ended: false };
    let body = stream::unfold(st, |mut st| async move {
        if st.ended {
            return None;
        }
        match st.g.next().await {
            Some(item) => {
                let evs = st.on_item(item);
                Some((stream::iter(evs), st))
            }
            None => None,
        }
    })
    .flatten();
    let ping = SseEvent::default().event("ping").data(json!({"type": "ping"}).to_string());
    Sse::new(head.chain(body).map(Ok)).keep_alive(KeepAlive::default().event(ping))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoder_paths_are_renamed_after_the_request() {
        let origin = vec!["system".to_string(), "messages[0].content".to_string(), "messages[1].content[2]".to_string()];
        let e = rename_path(ApiError::bad_request("messages[2].content: bad").param("messages[2].content"), &origin);
        assert_eq!(e.message, "messages[1].content[2].content: bad");
        assert_eq!(e.param.as_deref(), Some("messages[1].content[2].content"));
        let e = rename_path(ApiError::bad_request("messages: empty").param("messages"), &origin);
        assert_eq!(e.message, "messages: empty");
        let e = rename_path(ApiError::bad_request("x").param("messages[9]"), &origin);
        assert_eq!(e.param.as_deref(), Some("messages[9]"));
    }

    #[test]
    fn blocks_of_a_string_and_of_an_array() {
        let b = blocks(&json!("hi"), "m").unwrap();
        assert!(matches!(&b[..], [Block::Text { text }] if text == "hi"));
        let b = blocks(&json!([{"type": "text", "text": "a", "cache_control": {"type": "ephemeral"}}, {"type": "tool_use", "id": "t", "name": "f", "input": {"x": 1}}]), "m").unwrap();
        assert_eq!(b.len(), 2);
        let e = blocks(&json!([{"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": ""}}]), "m").unwrap_err();
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        assert!(e.message.contains("not supported"), "{}", e.message);
        assert!(blocks(&json!([{"type": "text"}]), "m").is_err());
        assert!(blocks(&json!([{"type": "video"}]), "m").is_err());
        assert!(blocks(&json!(3), "m").is_err());
    }
}
