//! Conversation -> prompt text, exactly as DeepSeek's `encoding_dsv4.py` `encode_messages`.
//!
//! The pipeline of the official encoder, step by step:
//! 1. request-level `tools` / `response_format` go on the first message when it is a system
//!    message, else on a new empty system message put in front (what vLLM does; the official test
//!    puts them on `messages[0]`, which is the system message in its vector);
//! 2. tool results (role `tool`) become `<tool_result>` blocks of a user turn: a tool message
//!    joins the preceding user turn if that turn is made of blocks (every user turn is), else
//!    starts one; a user message likewise joins a preceding user turn unless that turn has a
//!    `task` -- so consecutive user messages merge, joined by `\n\n`;
//! 3. in each such turn, the tool results are ordered as the calls of the latest assistant
//!    message with tool calls (by `tool_call_id`; results with an unknown id sort first);
//! 4. drop_thinking (thinking mode, on by default, forced off when any message has tools): before
//!    the last user/developer turn, assistant turns lose their reasoning and developer turns are
//!    dropped altogether;
//! 5. each message is rendered, and what follows a user/developer turn (or a message with a
//!    `task`) decides the transition: `<｜Assistant｜>` + `<think>` or `</think>`.

use std::fmt::Write as _;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use super::{
    task_token, ASSISTANT, BOS, DSML, EOS, LATEST_REMINDER, REASONING_EFFORT_MAX, THINK_END,
    THINK_START, USER,
};

// ---------------------------------------------------------------------------------------------
// Request types (OpenAI chat-completions shapes, plus the official encoder's extra fields)
// ---------------------------------------------------------------------------------------------

/// Whether the model thinks before answering: the prompt ends in `<think>` or `</think>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ThinkingMode {
    #[default]
    Thinking,
    Chat,
}

/// `reasoning_effort`. Only `max` changes the prompt (a fixed preamble, thinking mode only);
/// `high` renders exactly like no effort at all. `none` switches to chat mode (as vLLM does).
/// OpenAI's other names are accepted: `low`/`medium` mean `high`, `xhigh` means `max` (the
/// mapping the DeepSeek API documents).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReasoningEffort {
    None,
    #[serde(alias = "low", alias = "medium", alias = "minimal")]
    High,
    #[serde(alias = "xhigh")]
    Max,
}

/// A message role. Unknown roles deserialize (so that the error can name the message) and are
/// rejected by [`encode_conversation`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Role {
    System,
    #[default]
    User,
    Assistant,
    /// An OpenAI tool result; merged into the following user turn as a `<tool_result>` block.
    Tool,
    /// Rendered like a user turn (`<｜User｜>` + content), may carry tools; dropped before the last
    /// user turn when drop_thinking applies.
    Developer,
    /// `<｜latest_reminder｜>` + content (e.g. date, place, client), no transition after it.
    LatestReminder,
    Other(String),
}

impl Role {
    pub fn as_str(&self) -> &str {
        match self {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
            Role::Tool => "tool",
            Role::Developer => "developer",
            Role::LatestReminder => "latest_reminder",
            Role::Other(s) => s,
        }
    }
}

impl Serialize for Role {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Role {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Ok(match s.as_str() {
            "system" => Role::System,
            "user" => Role::User,
            "assistant" => Role::Assistant,
            "tool" => Role::Tool,
            "developer" => Role::Developer,
            "latest_reminder" => Role::LatestReminder,
            _ => Role::Other(s),
        })
    }
}

/// Message content: a string, or OpenAI content parts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Content {
    Text(String),
    Parts(Vec<ContentPart>),
}

impl From<&str> for Content {
    fn from(s: &str) -> Self {
        Content::Text(s.to_string())
    }
}

impl From<String> for Content {
    fn from(s: String) -> Self {
        Content::Text(s)
    }
}

/// One OpenAI content part (`{"type": "text", "text": ...}`; other types are kept so the error
/// can name them).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContentPart {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

fn function_type() -> String {
    "function".to_string()
}

/// An assistant tool call, OpenAI shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolCall {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(rename = "type", default = "function_type")]
    pub kind: String,
    pub function: FunctionCall,
}

/// `function` of a tool call: `arguments` is a JSON string (a JSON object is accepted too and
/// kept as its JSON text).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FunctionCall {
    pub name: String,
    #[serde(default = "empty_object", deserialize_with = "de_arguments")]
    pub arguments: String,
}

fn empty_object() -> String {
    "{}".to_string()
}

fn de_arguments<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::String(s) => s,
        Value::Null => empty_object(),
        other => other.to_string(),
    })
}

/// A tool definition, OpenAI shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tool {
    #[serde(rename = "type", default = "function_type")]
    pub kind: String,
    pub function: FunctionDef,
}

/// A tool's `function` object (`name`, `description`, `parameters`, `strict`, ...). Kept as the
/// JSON object it came as: the prompt lists it key by key, in the given order.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct FunctionDef(pub Map<String, Value>);

impl FunctionDef {
    pub fn name(&self) -> Option<&str> {
        self.0.get("name").and_then(Value::as_str)
    }
    pub fn description(&self) -> Option<&str> {
        self.0.get("description").and_then(Value::as_str)
    }
    pub fn parameters(&self) -> Option<&Value> {
        self.0.get("parameters")
    }
}

/// One conversation message.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Message {
    pub role: Role,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<Content>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning_content: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ToolCall>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
    /// OpenAI's participant name; not rendered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Beta prefix completion: the last message, an assistant one, that the model continues (no
    /// EOS after it). In thinking mode, with no content, its `reasoning_content` is the start of
    /// the reasoning (no `</think>`); with content, reasoning + `</think>` + content.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub prefix: bool,
    /// Tools on a system or developer message (the official encoder's per-message tools).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<Tool>>,
    /// A response format (schema) on a system or developer message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_format: Option<Value>,
    /// A quick-instruction task (`action`, `query`, `authority`, `domain`, `title`, `read_url`):
    /// its token follows the message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<String>,
}

impl Message {
    pub fn new(role: Role, content: &str) -> Self {
        Message { role, content: Some(content.into()), ..Default::default() }
    }
    pub fn system(content: &str) -> Self {
        Self::new(Role::System, content)
    }
    pub fn user(content: &str) -> Self {
        Self::new(Role::User, content)
    }
    pub fn assistant(content: &str) -> Self {
        Self::new(Role::Assistant, content)
    }
    pub fn tool(tool_call_id: &str, content: &str) -> Self {
        Message { tool_call_id: Some(tool_call_id.to_string()), ..Self::new(Role::Tool, content) }
    }
}

fn default_true() -> bool {
    true
}

/// What [`encode_conversation`] needs: the conversation and the encoder settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EncodeRequest {
    pub messages: Vec<Message>,
    /// Request-level tools (OpenAI `tools`): rendered in the first system message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<Tool>>,
    /// Request-level response format (OpenAI `response_format`); `{"type": "text"}` renders
    /// nothing, anything else is rendered like a system message's `response_format`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_format: Option<Value>,
    #[serde(default)]
    pub thinking_mode: ThinkingMode,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning_effort: Option<ReasoningEffort>,
    /// Drop the reasoning of assistant turns before the last user turn (official default: on;
    /// it has no effect when any message has tools).
    #[serde(default = "default_true")]
    pub drop_thinking: bool,
}

impl Default for EncodeRequest {
    fn default() -> Self {
        EncodeRequest {
            messages: Vec::new(),
            tools: None,
            response_format: None,
            thinking_mode: ThinkingMode::Thinking,
            reasoning_effort: None,
            drop_thinking: true,
        }
    }
}

impl EncodeRequest {
    pub fn new(messages: Vec<Message>, thinking_mode: ThinkingMode) -> Self {
        EncodeRequest { messages, thinking_mode, ..Default::default() }
    }

    /// The thinking mode actually used: `reasoning_effort: "none"` means chat.
    pub fn effective_thinking_mode(&self) -> ThinkingMode {
        match self.reasoning_effort {
            Some(ReasoningEffort::None) => ThinkingMode::Chat,
            _ => self.thinking_mode,
        }
    }
}

/// A malformed conversation: `path` names the message and field (`messages[3].role`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct EncodeError {
    pub path: String,
    pub message: String,
}

fn err<T>(path: impl Into<String>, message: impl Into<String>) -> Result<T, EncodeError> {
    Err(EncodeError { path: path.into(), message: message.into() })
}

// ---------------------------------------------------------------------------------------------
// Python-compatible JSON (json.dumps(..., ensure_ascii=False) with the default separators)
// ---------------------------------------------------------------------------------------------

/// `json.dumps(value, ensure_ascii=False)`: `", "` and `": "` separators, keys in their order,
/// non-ASCII kept, floats as Python's `repr`.
pub fn py_json(v: &Value) -> String {
    let mut out = String::new();
    write_py_json(&mut out, v);
    out
}

fn write_py_json(out: &mut String, v: &Value) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => {
            if n.is_i64() || n.is_u64() {
                out.push_str(&n.to_string())
            } else {
                out.push_str(&py_float(n.as_f64().unwrap_or(f64::NAN)))
            }
        }
        // serde_json escapes exactly Python's set: `"`, `\`, and controls below 0x20 (\b \f \n
        // \r \t by name, the rest as lowercase \u00XX).
        Value::String(s) => out.push_str(&Value::String(s.clone()).to_string()),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_py_json(out, item);
            }
            out.push(']');
        }
        Value::Object(map) => {
            out.push('{');
            for (i, (k, item)) in map.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push_str(": ");
                write_py_json(out, item);
            }
            out.push('}');
        }
    }
}

/// Python's `repr(float)`: the shortest round-trip digits, positional for exponents -4..16,
/// else `d.ddde+XX`.
fn py_float(x: f64) -> String {
    if x.is_nan() {
        return "NaN".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { "Infinity".into() } else { "-Infinity".into() };
    }
    if x == 0.0 {
        return if x.is_sign_negative() { "-0.0".into() } else { "0.0".into() };
    }
    // Rust's `{:e}` gives the shortest round-trip digits too: "-1.2345e-7".
    let sci = format!("{x:e}");
    let (mant, exp) = sci.split_once('e').expect("{:e} always has an exponent");
    let exp: i32 = exp.parse().expect("{:e} exponent is an integer");
    let (sign, mant) = match mant.strip_prefix('-') {
        Some(m) => ("-", m),
        None => ("", mant),
    };
    let digits: String = mant.chars().filter(|c| *c != '.').collect();
    let mut out = String::from(sign);
    if (-4..16).contains(&exp) {
        if exp >= 0 {
            let int_len = exp as usize + 1;
            if digits.len() <= int_len {
                out.push_str(&digits);
                out.push_str(&"0".repeat(int_len - digits.len()));
                out.push_str(".0");
            } else {
                out.push_str(&digits[..int_len]);
                out.push('.');
                out.push_str(&digits[int_len..]);
            }
        } else {
            out.push_str("0.");
            out.push_str(&"0".repeat((-exp - 1) as usize));
            out.push_str(&digits);
        }
    } else {
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        let _ = write!(out, "e{}{:02}", if exp < 0 { '-' } else { '+' }, exp.abs());
    }
    out
}

/// Python truthiness of a JSON value (`if response_format:`).
fn py_truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64() != Some(0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

// ---------------------------------------------------------------------------------------------
// Templates
// ---------------------------------------------------------------------------------------------

fn render_tools(tools: &[&FunctionDef]) -> String {
    let schemas: Vec<String> = tools.iter().map(|f| py_json(&Value::Object(f.0.clone()))).collect();
    format!(
        "## Tools\n\n\
You have access to a set of tools to help answer the user's question. You can invoke tools by writing a \"<{DSML}tool_calls>\" block like the following:\n\n\
<{DSML}tool_calls>\n\
<{DSML}invoke name=\"$TOOL_NAME\">\n\
<{DSML}parameter name=\"$PARAMETER_NAME\" string=\"true|false\">$PARAMETER_VALUE</{DSML}parameter>\n\
...\n\
</{DSML}invoke>\n\
<{DSML}invoke name=\"$TOOL_NAME2\">\n\
...\n\
</{DSML}invoke>\n\
</{DSML}tool_calls>\n\n\
String parameters should be specified as is and set `string=\"true\"`. For all other types (numbers, booleans, arrays, objects), pass the value in JSON format and set `string=\"false\"`.\n\n\
If thinking_mode is enabled (triggered by {THINK_START}), you MUST output your complete reasoning inside {THINK_START}...{THINK_END} BEFORE any tool calls or final response.\n\n\
Otherwise, output directly after {THINK_END} with tool calls or final response.\n\n\
### Available Tool Schemas\n\n\
{}\n\n\
You MUST strictly follow the above defined tool name and parameter schemas to invoke tool calls.\n",
        schemas.join("\n")
    )
}

fn render_response_format(rf: &Value) -> String {
    format!(
        "## Response Format:\n\nYou MUST strictly adhere to the following schema to reply:\n{}",
        py_json(rf)
    )
}

/// `<｜DSML｜parameter ...>` lines of one call, as `encode_arguments_to_dsml`.
fn render_arguments(arguments: &str, path: &str) -> Result<String, EncodeError> {
    let params: Map<String, Value> = match serde_json::from_str::<Value>(arguments) {
        Ok(Value::Object(map)) => map,
        Ok(_) => return err(path, "tool call arguments must be a JSON object"),
        // Deviation: the official encoder renders "" like any non-JSON text (one `arguments`
        // string parameter); an empty string is taken as no arguments.
        Err(_) if arguments.trim().is_empty() => Map::new(),
        // As the official encoder: arguments that are not JSON become one string parameter.
        Err(_) => Map::from_iter([("arguments".to_string(), Value::String(arguments.to_string()))]),
    };
    let lines: Vec<String> = params
        .iter()
        .map(|(k, v)| match v {
            Value::String(s) => {
                format!("<{DSML}parameter name=\"{k}\" string=\"true\">{s}</{DSML}parameter>")
            }
            other => format!(
                "<{DSML}parameter name=\"{k}\" string=\"false\">{}</{DSML}parameter>",
                py_json(other)
            ),
        })
        .collect();
    Ok(lines.join("\n"))
}

// ---------------------------------------------------------------------------------------------
// The internal message list the official pipeline works on
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum IRole {
    System,
    User,
    Assistant,
    Tool,
    Developer,
    LatestReminder,
}

#[derive(Debug, Clone)]
enum Block {
    Text(String),
    ToolResult { id: String, content: String },
}

#[derive(Debug, Clone)]
struct IMsg<'a> {
    role: IRole,
    /// System, developer, latest_reminder, assistant, tool: the content text.
    content: String,
    /// User turns: text and tool-result blocks, joined by `\n\n`.
    blocks: Vec<Block>,
    tools: Vec<&'a FunctionDef>,
    response_format: Option<&'a Value>,
    /// (name, rendered parameters, id) of each tool call.
    tool_calls: Vec<(&'a str, String, Option<&'a str>)>,
    reasoning: Option<&'a str>,
    task: Option<&'static str>,
    /// The task is `action` (its token comes after `<｜Assistant｜>` + think token).
    task_is_action: bool,
    wo_eos: bool,
    tool_call_id: &'a str,
}

impl<'a> IMsg<'a> {
    fn new(role: IRole) -> Self {
        IMsg {
            role,
            content: String::new(),
            blocks: Vec::new(),
            tools: Vec::new(),
            response_format: None,
            tool_calls: Vec::new(),
            reasoning: None,
            task: None,
            task_is_action: false,
            wo_eos: false,
            tool_call_id: "",
        }
    }
}

/// Text of a content field: a string, or its text parts concatenated.
fn content_text(c: Option<&Content>, path: &str) -> Result<String, EncodeError> {
    match c {
        None => Ok(String::new()),
        Some(Content::Text(s)) => Ok(s.clone()),
        Some(Content::Parts(parts)) => {
            let mut out = String::new();
            for (j, p) in parts.iter().enumerate() {
                match (p.kind.as_str(), &p.text) {
                    ("text", Some(t)) => out.push_str(t),
                    ("text", None) => return err(format!("{path}[{j}].text"), "missing text"),
                    (kind, _) => {
                        return err(
                            format!("{path}[{j}].type"),
                            format!("unsupported content part type {kind:?} (only text)"),
                        )
                    }
                }
            }
            Ok(out)
        }
    }
}

/// Tool-result content as the official encoder: text parts joined by `\n\n`, other parts as
/// `[Unsupported TYPE]`.
fn tool_content_text(c: Option<&Content>) -> String {
    match c {
        None => String::new(),
        Some(Content::Text(s)) => s.clone(),
        Some(Content::Parts(parts)) => parts
            .iter()
            .map(|p| match (p.kind.as_str(), &p.text) {
                ("text", t) => t.clone().unwrap_or_default(),
                (kind, _) => format!("[Unsupported {kind}]"),
            })
            .collect::<Vec<_>>()
            .join("\n\n"),
    }
}

fn check_tools<'a>(tools: &'a [Tool], path: &str) -> Result<Vec<&'a FunctionDef>, EncodeError> {
    let mut out = Vec::with_capacity(tools.len());
    for (j, t) in tools.iter().enumerate() {
        if t.kind != "function" {
            return err(format!("{path}[{j}].type"), format!("unsupported tool type {:?}", t.kind));
        }
        if t.function.name().is_none_or(str::is_empty) {
            return err(format!("{path}[{j}].function.name"), "missing tool name");
        }
        out.push(&t.function);
    }
    Ok(out)
}

/// Validate the request and turn it into the internal list (step 1 of the pipeline).
fn build(req: &EncodeRequest) -> Result<Vec<IMsg<'_>>, EncodeError> {
    if req.messages.is_empty() {
        return err("messages", "no messages");
    }
    let last = req.messages.len() - 1;
    let mut out = Vec::with_capacity(req.messages.len() + 1);
    // Whether a tool result may follow: the latest assistant message made tool calls.
    let mut calls_open = false;
    for (i, m) in req.messages.iter().enumerate() {
        let p = format!("messages[{i}]");
        let role = match &m.role {
            Role::System => IRole::System,
            Role::User => IRole::User,
            Role::Assistant => IRole::Assistant,
            Role::Tool => IRole::Tool,
            Role::Developer => IRole::Developer,
            Role::LatestReminder => IRole::LatestReminder,
            Role::Other(r) => return err(format!("{p}.role"), format!("unknown role {r:?}")),
        };
        let mut im = IMsg::new(role);
        if let Some(t) = &m.task {
            match task_token(t) {
                Some(tok) => {
                    im.task = Some(tok);
                    im.task_is_action = t == "action";
                }
                None => return err(format!("{p}.task"), format!("unknown task {t:?}")),
            }
        }
        if let Some(tools) = m.tools.as_deref().filter(|t| !t.is_empty()) {
            if !matches!(role, IRole::System | IRole::Developer) {
                return err(format!("{p}.tools"), "tools belong on a system or developer message");
            }
            im.tools = check_tools(tools, &format!("{p}.tools"))?;
        }
        if let Some(rf) = m.response_format.as_ref().filter(|v| py_truthy(v)) {
            if !matches!(role, IRole::System | IRole::Developer) {
                return err(
                    format!("{p}.response_format"),
                    "response_format belongs on a system or developer message",
                );
            }
            im.response_format = Some(rf);
        }
        if m.prefix && (role != IRole::Assistant || i != last) {
            return err(format!("{p}.prefix"), "only the last message, an assistant one, can be a prefix");
        }
        if role != IRole::Assistant {
            if m.tool_calls.as_ref().is_some_and(|c| !c.is_empty()) {
                return err(format!("{p}.tool_calls"), "only assistant messages make tool calls");
            }
            if m.reasoning_content.is_some() {
                return err(format!("{p}.reasoning_content"), "only assistant messages have reasoning");
            }
        }
        let content_path = format!("{p}.content");
        match role {
            IRole::System => im.content = content_text(m.content.as_ref(), &content_path)?,
            IRole::User => im.content = content_text(m.content.as_ref(), &content_path)?,
            IRole::Developer => {
                im.content = content_text(m.content.as_ref(), &content_path)?;
                if im.content.is_empty() {
                    return err(content_path, "a developer message needs content");
                }
            }
            IRole::LatestReminder => {
                if m.content.is_none() {
                    return err(content_path, "a latest_reminder message needs content");
                }
                im.content = content_text(m.content.as_ref(), &content_path)?;
            }
            IRole::Tool => {
                if !calls_open {
                    return err(
                        p.clone(),
                        "tool message without a preceding assistant message with tool_calls",
                    );
                }
                im.content = tool_content_text(m.content.as_ref());
                im.tool_call_id = m.tool_call_id.as_deref().unwrap_or("");
            }
            IRole::Assistant => {
                im.content = content_text(m.content.as_ref(), &content_path)?;
                im.reasoning = m.reasoning_content.as_deref();
                im.wo_eos = m.prefix;
                let calls = m.tool_calls.as_deref().unwrap_or(&[]);
                if m.prefix && !calls.is_empty() {
                    return err(format!("{p}.tool_calls"), "a prefix message cannot have tool calls");
                }
                for (j, c) in calls.iter().enumerate() {
                    let cp = format!("{p}.tool_calls[{j}]");
                    if c.kind != "function" {
                        return err(format!("{cp}.type"), format!("unsupported tool call type {:?}", c.kind));
                    }
                    if c.function.name.is_empty() {
                        return err(format!("{cp}.function.name"), "missing function name");
                    }
                    let args = render_arguments(&c.function.arguments, &format!("{cp}.function.arguments"))?;
                    im.tool_calls.push((c.function.name.as_str(), args, c.id.as_deref()));
                }
                calls_open = !calls.is_empty();
            }
        }
        out.push(im);
    }

    // Request-level tools and response format: on the first message if it is a system message,
    // else on a new empty system message in front.
    let tools = match req.tools.as_deref() {
        Some(t) if !t.is_empty() => check_tools(t, "tools")?,
        _ => Vec::new(),
    };
    let rf = req
        .response_format
        .as_ref()
        .filter(|v| py_truthy(v) && v.get("type").and_then(Value::as_str) != Some("text"));
    if !tools.is_empty() || rf.is_some() {
        if out[0].role != IRole::System {
            out.insert(0, IMsg::new(IRole::System));
        }
        out[0].tools.extend(tools);
        if out[0].response_format.is_none() {
            out[0].response_format = rf;
        }
    }
    Ok(out)
}

/// Step 2: tool results into user turns, consecutive user messages merged.
fn merge_tool_messages(msgs: Vec<IMsg<'_>>) -> Vec<IMsg<'_>> {
    let mut merged: Vec<IMsg> = Vec::with_capacity(msgs.len());
    for m in msgs {
        match m.role {
            IRole::Tool => {
                let block = Block::ToolResult { id: m.tool_call_id.to_string(), content: m.content };
                match merged.last_mut() {
                    Some(prev) if prev.role == IRole::User => prev.blocks.push(block),
                    _ => {
                        let mut u = IMsg::new(IRole::User);
                        u.blocks.push(block);
                        merged.push(u);
                    }
                }
            }
            IRole::User => match merged.last_mut() {
                // The merged message keeps the earlier one's fields (the official code drops the
                // later task).
                Some(prev) if prev.role == IRole::User && prev.task.is_none() => {
                    prev.blocks.push(Block::Text(m.content))
                }
                _ => {
                    let mut u = m;
                    let text = std::mem::take(&mut u.content);
                    u.blocks.push(Block::Text(text));
                    merged.push(u);
                }
            },
            _ => merged.push(m),
        }
    }
    merged
}

/// Step 3: tool results in the order of the latest assistant's calls.
fn sort_tool_results(msgs: &mut [IMsg<'_>]) {
    let mut order: Vec<&str> = Vec::new();
    for m in msgs.iter_mut() {
        match m.role {
            IRole::Assistant if !m.tool_calls.is_empty() => {
                order = m.tool_calls.iter().filter_map(|c| c.2).filter(|id| !id.is_empty()).collect();
            }
            IRole::User => {
                let n = m.blocks.iter().filter(|b| matches!(b, Block::ToolResult { .. })).count();
                if n > 1 && !order.is_empty() {
                    let rank = |b: &Block| match b {
                        // The official map is id -> last index of that id; unknown ids rank 0.
                        Block::ToolResult { id, .. } => order.iter().rposition(|o| o == id).unwrap_or(0),
                        Block::Text(_) => 0,
                    };
                    let mut results: Vec<Block> =
                        m.blocks.iter().filter(|b| matches!(b, Block::ToolResult { .. })).cloned().collect();
                    results.sort_by_key(rank); // stable, as Python's sorted
                    let mut it = results.into_iter();
                    for b in m.blocks.iter_mut() {
                        if matches!(b, Block::ToolResult { .. }) {
                            *b = it.next().expect("same number of tool results");
                        }
                    }
                }
            }
            _ => {}
        }
    }
}

fn last_user_index(msgs: &[IMsg<'_>]) -> Option<usize> {
    msgs.iter().rposition(|m| matches!(m.role, IRole::User | IRole::Developer))
}

/// Step 4: before the last user turn, assistant turns lose their reasoning and developer turns
/// are dropped.
fn drop_thinking_messages(msgs: Vec<IMsg<'_>>) -> Vec<IMsg<'_>> {
    let last_user = last_user_index(&msgs);
    msgs.into_iter()
        .enumerate()
        .filter_map(|(i, mut m)| {
            let after = last_user.is_none_or(|l| i >= l);
            match m.role {
                _ if after => Some(m),
                IRole::User | IRole::System | IRole::Tool | IRole::LatestReminder => Some(m),
                IRole::Assistant => {
                    m.reasoning = None;
                    Some(m)
                }
                IRole::Developer => None,
            }
        })
        .collect()
}

/// Step 5: one message (`render_message` of the official encoder).
fn render(i: usize, msgs: &[IMsg<'_>], thinking: bool, drop_thinking: bool, effort_max: bool, out: &mut String) {
    let m = &msgs[i];
    let last_user = last_user_index(msgs);
    if i == 0 && thinking && effort_max {
        out.push_str(REASONING_EFFORT_MAX);
    }
    let tools_and_format = |out: &mut String| {
        if !m.tools.is_empty() {
            out.push_str("\n\n");
            out.push_str(&render_tools(&m.tools));
        }
        if let Some(rf) = m.response_format {
            out.push_str("\n\n");
            out.push_str(&render_response_format(rf));
        }
    };
    match m.role {
        IRole::System => {
            out.push_str(&m.content);
            tools_and_format(out);
        }
        IRole::Developer => {
            out.push_str(USER);
            out.push_str(&m.content);
            tools_and_format(out);
        }
        IRole::User => {
            out.push_str(USER);
            for (j, b) in m.blocks.iter().enumerate() {
                if j > 0 {
                    out.push_str("\n\n");
                }
                match b {
                    Block::Text(t) => out.push_str(t),
                    Block::ToolResult { content, .. } => {
                        out.push_str("<tool_result>");
                        out.push_str(content);
                        out.push_str("</tool_result>");
                    }
                }
            }
        }
        IRole::LatestReminder => {
            out.push_str(LATEST_REMINDER);
            out.push_str(&m.content);
        }
        IRole::Tool => unreachable!("tool messages are merged into user turns"),
        IRole::Assistant => {
            let prev_has_task = i > 0 && msgs[i - 1].task.is_some();
            if thinking && !prev_has_task && (!drop_thinking || last_user.is_none_or(|l| i > l)) {
                out.push_str(m.reasoning.unwrap_or(""));
                // A prefix with no content continues the reasoning itself.
                let continues_reasoning = m.wo_eos && m.content.is_empty() && m.tool_calls.is_empty();
                if !continues_reasoning {
                    out.push_str(THINK_END);
                }
            }
            out.push_str(&m.content);
            if !m.tool_calls.is_empty() {
                let _ = write!(out, "\n\n<{DSML}tool_calls>\n");
                for (j, (name, args, _)) in m.tool_calls.iter().enumerate() {
                    if j > 0 {
                        out.push('\n');
                    }
                    let _ = write!(out, "<{DSML}invoke name=\"{name}\">\n{args}\n</{DSML}invoke>");
                }
                let _ = write!(out, "\n</{DSML}tool_calls>");
            }
            if !m.wo_eos {
                out.push_str(EOS);
            }
        }
    }

    // The transition: only before an assistant or latest_reminder message, or at the end.
    if i + 1 < msgs.len() && !matches!(msgs[i + 1].role, IRole::Assistant | IRole::LatestReminder) {
        return;
    }
    if let Some(tok) = m.task {
        if m.task_is_action {
            out.push_str(ASSISTANT);
            out.push_str(if thinking { THINK_START } else { THINK_END });
        }
        out.push_str(tok);
    } else if matches!(m.role, IRole::User | IRole::Developer) {
        out.push_str(ASSISTANT);
        let think = thinking && (!drop_thinking || last_user.is_none_or(|l| i >= l));
        out.push_str(if think { THINK_START } else { THINK_END });
    }
}

/// The prompt text for a conversation, exactly as the official `encode_messages` (BOS first).
pub fn encode_conversation(req: &EncodeRequest) -> Result<String, EncodeError> {
    let thinking = req.effective_thinking_mode() == ThinkingMode::Thinking;
    let effort_max = req.reasoning_effort == Some(ReasoningEffort::Max);
    let msgs = build(req)?;
    let mut msgs = merge_tool_messages(msgs);
    sort_tool_results(&mut msgs);
    let drop_thinking = req.drop_thinking && !msgs.iter().any(|m| !m.tools.is_empty());
    if thinking && drop_thinking {
        msgs = drop_thinking_messages(msgs);
    }
    let mut out = String::from(BOS);
    for i in 0..msgs.len() {
        render(i, &msgs, thinking, drop_thinking, effort_max, &mut out);
    }
    Ok(out)
}

/// The mode to parse the completion of this prompt in: [`ThinkingMode::Thinking`] when the
/// prompt leaves the model inside `<think>` (the completion starts with reasoning), else
/// [`ThinkingMode::Chat`] (chat mode, a task answer, or a prefix that already closed the
/// reasoning).
pub fn generation_mode(req: &EncodeRequest) -> ThinkingMode {
    if req.effective_thinking_mode() == ThinkingMode::Chat {
        return ThinkingMode::Chat;
    }
    let n = req.messages.len();
    match req.messages.last() {
        Some(m) if m.task.is_some() => ThinkingMode::Chat,
        // An answer to a task has no reasoning part.
        Some(m) if m.prefix && n >= 2 && req.messages[n - 2].task.is_some() => ThinkingMode::Chat,
        Some(m) if m.role == Role::Assistant && m.prefix => {
            let empty = match &m.content {
                None => true,
                Some(Content::Text(s)) => s.is_empty(),
                Some(Content::Parts(p)) => p.iter().all(|p| p.text.as_deref().unwrap_or("").is_empty()),
            };
            if empty {
                ThinkingMode::Thinking
            } else {
                ThinkingMode::Chat
            }
        }
        _ => ThinkingMode::Thinking,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn py_float_matches_python_repr() {
        let cases = [
            (1.0, "1.0"),
            (0.1, "0.1"),
            (-2.5, "-2.5"),
            (1e16, "1e+16"),
            (1.5e16, "1.5e+16"),
            (1e15, "1000000000000000.0"),
            (123456.789, "123456.789"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (1.5e-7, "1.5e-07"),
            (1.2345678901234568e17, "1.2345678901234568e+17"),
            (1e100, "1e+100"),
            (-0.0, "-0.0"),
            (100.0, "100.0"),
        ];
        for (x, want) in cases {
            assert_eq!(py_float(x), want, "{x}");
        }
    }

    #[test]
    fn py_json_formatting() {
        let v: Value = serde_json::from_str(
            r#"{"b": [1, 2.0, "x\"y\n\u0001é"], "a": {}, "c": [], "d": null, "e": true, "f": -7}"#,
        )
        .unwrap();
        assert_eq!(
            py_json(&v),
            r#"{"b": [1, 2.0, "x\"y\n\u0001é"], "a": {}, "c": [], "d": null, "e": true, "f": -7}"#
        );
    }

    #[test]
    fn generation_prompt_and_transitions() {
        let req = EncodeRequest::new(vec![Message::user("hi")], ThinkingMode::Thinking);
        assert_eq!(encode_conversation(&req).unwrap(), format!("{BOS}{USER}hi{ASSISTANT}{THINK_START}"));
        let req = EncodeRequest::new(vec![Message::user("hi")], ThinkingMode::Chat);
        assert_eq!(encode_conversation(&req).unwrap(), format!("{BOS}{USER}hi{ASSISTANT}{THINK_END}"));
        let mut req = EncodeRequest::new(vec![Message::user("hi")], ThinkingMode::Thinking);
        req.reasoning_effort = Some(ReasoningEffort::Max);
        assert_eq!(
            encode_conversation(&req).unwrap(),
            format!("{BOS}{REASONING_EFFORT_MAX}{USER}hi{ASSISTANT}{THINK_START}")
        );
        req.reasoning_effort = Some(ReasoningEffort::High);
        assert_eq!(encode_conversation(&req).unwrap(), format!("{BOS}{USER}hi{ASSISTANT}{THINK_START}"));
        req.reasoning_effort = Some(ReasoningEffort::None);
        assert_eq!(encode_conversation(&req).unwrap(), format!("{BOS}{USER}hi{ASSISTANT}{THINK_END}"));
    }
}
