//! Completion text -> assistant message: one-shot ([`parse_completion`]) or incrementally while
//! streaming ([`StreamParser`]); both give the same result for any split of the text.
//!
//! The grammar is the official `parse_message_from_completion_text`: in thinking mode, text up to
//! `</think>` is the reasoning; then content up to `\n\n<｜DSML｜tool_calls` or EOS; a tool-call
//! block (parsed as the official `parse_tool_calls`) must be followed by EOS. Where the official
//! parser raises, we return a best-effort message with `malformed: true`, never panic:
//! - no EOS at the end is fine (the text may stop at max_tokens or a stop sequence);
//! - EOS before `</think>`: the reasoning ends there (malformed);
//! - a tool-call block where `</think>` should have been: the reasoning ends there (malformed),
//!   the block is parsed;
//! - a tool-call block that does not parse, or that EOS or the end of the text cuts short: its
//!   raw text is returned as content (malformed) -- the one way DSML can reach content;
//! - text after a tool-call block: content (malformed); text after EOS: dropped (malformed);
//! - a stray special token (BOS, `<think>`, a second `</think>`, `<｜User｜>`, `<｜Assistant｜>`,
//!   `<｜latest_reminder｜>`, a task token, or `｜DSML｜` outside a tool-call block) is dropped
//!   from reasoning/content (malformed).
//!
//! A tool-call block ends at the first `</｜DSML｜tool_calls>` (a parameter value containing that
//! text, which the official parser would accept, breaks the block here). Its calls are emitted
//! when the block closes, each complete, with the id `call_{index}` (index counts the calls of
//! this completion; a server should replace it with a unique id).

use serde::Serialize;
use serde_json::{Map, Value};

use super::encode::{py_json, FunctionCall, ThinkingMode, ToolCall};
use super::{
    ASSISTANT, BOS, DSML, EOS, EXTRACTED_URL, LATEST_REMINDER, TASK_TOKENS, THINK_END, THINK_START,
    USER,
};

/// What a [`StreamParser`] emits: the newly parsed pieces, in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Delta {
    Reasoning(String),
    Content(String),
    /// One complete tool call; `arguments` is a JSON object as a string.
    ToolCall { index: usize, id: String, name: String, arguments: String },
}

/// A parsed completion: an OpenAI assistant message plus `malformed` and `eos`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct ParsedMessage {
    /// The reasoning (thinking mode: `Some`, possibly empty; chat mode: `None`).
    pub reasoning_content: Option<String>,
    pub content: String,
    pub tool_calls: Vec<ToolCall>,
    /// The text broke the chat format somewhere (see the module docs); the rest is best effort.
    pub malformed: bool,
    /// The turn ended with EOS.
    pub eos: bool,
}

impl ParsedMessage {
    /// Build a message from deltas (what a streaming client accumulates).
    pub fn from_deltas(mode: ThinkingMode, deltas: impl IntoIterator<Item = Delta>) -> Self {
        let mut m = ParsedMessage {
            reasoning_content: (mode == ThinkingMode::Thinking).then(String::new),
            ..Default::default()
        };
        for d in deltas {
            m.apply(d);
        }
        m
    }

    fn apply(&mut self, d: Delta) {
        match d {
            Delta::Reasoning(s) => self.reasoning_content.get_or_insert_with(String::new).push_str(&s),
            Delta::Content(s) => self.content.push_str(&s),
            Delta::ToolCall { id, name, arguments, .. } => self.tool_calls.push(ToolCall {
                id: Some(id),
                kind: "function".to_string(),
                function: FunctionCall { name, arguments },
            }),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Markers
// ---------------------------------------------------------------------------------------------

/// The start of a tool-call block (the official `tool_calls_start_token`).
const TC_OPEN: &str = "\n\n<｜DSML｜tool_calls";
const TC_CLOSE: &str = "</｜DSML｜tool_calls>";
const INVOKE_OPEN: &str = "<｜DSML｜invoke";
const INVOKE_CLOSE: &str = "</｜DSML｜invoke";
const PARAM_OPEN: &str = "<｜DSML｜parameter";
const PARAM_CLOSE: &str = "/｜DSML｜parameter";

/// Special tokens that never belong in reasoning or content.
const STRAY: [&str; 14] = [
    BOS,
    THINK_START,
    USER,
    ASSISTANT,
    LATEST_REMINDER,
    DSML,
    TASK_TOKENS[0].1,
    TASK_TOKENS[1].1,
    TASK_TOKENS[2].1,
    TASK_TOKENS[3].1,
    TASK_TOKENS[4].1,
    TASK_TOKENS[5].1,
    EXTRACTED_URL,
    // In content (a second `</think>`); in reasoning it is the end of the reasoning.
    THINK_END,
];

const fn text_markers() -> [&'static str; 16] {
    let mut out = [TC_OPEN; 16];
    out[1] = EOS;
    let mut i = 0;
    while i < STRAY.len() {
        out[i + 2] = STRAY[i];
        i += 1;
    }
    out
}

/// What ends or interrupts reasoning and content (in reasoning, `</think>` ends it).
const TEXT_MARKERS: [&str; 16] = text_markers();
const BLOCK_MARKERS: [&str; 2] = [TC_CLOSE, EOS];

/// The earliest full occurrence of any marker in `s`: (position, marker).
fn earliest(s: &str, markers: &[&'static str]) -> Option<(usize, &'static str)> {
    markers.iter().filter_map(|m| s.find(m).map(|p| (p, *m))).min_by_key(|(p, m)| (*p, usize::MAX - m.len()))
}

// ---------------------------------------------------------------------------------------------
// The state machine both parsers drive
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Reasoning,
    Content,
    /// Inside a tool-call block (after `TC_OPEN`), collecting its text.
    Block,
    /// Right after a tool-call block: only EOS (or the end) is well-formed.
    AfterBlock,
    /// After EOS.
    End,
}

#[derive(Debug, Clone)]
struct Core {
    phase: Phase,
    block: String,
    calls: usize,
    malformed: bool,
    eos: bool,
    out: Vec<Delta>,
}

impl Core {
    fn new(mode: ThinkingMode) -> Self {
        Core {
            phase: if mode == ThinkingMode::Thinking { Phase::Reasoning } else { Phase::Content },
            block: String::new(),
            calls: 0,
            malformed: false,
            eos: false,
            out: Vec::new(),
        }
    }

    fn markers(&self) -> &'static [&'static str] {
        match self.phase {
            Phase::Reasoning | Phase::Content | Phase::AfterBlock => &TEXT_MARKERS,
            Phase::Block => &BLOCK_MARKERS,
            Phase::End => &[],
        }
    }

    fn content(&mut self, s: &str) {
        match self.out.last_mut() {
            Some(Delta::Content(c)) => c.push_str(s),
            _ => self.out.push(Delta::Content(s.to_string())),
        }
    }

    /// Plain text (no marker in it).
    fn text(&mut self, s: &str) {
        if s.is_empty() {
            return;
        }
        match self.phase {
            Phase::Reasoning => match self.out.last_mut() {
                Some(Delta::Reasoning(r)) => r.push_str(s),
                _ => self.out.push(Delta::Reasoning(s.to_string())),
            },
            Phase::Content => self.content(s),
            Phase::AfterBlock => {
                self.malformed = true;
                self.phase = Phase::Content;
                self.content(s);
            }
            Phase::Block => self.block.push_str(s),
            Phase::End => self.malformed = true,
        }
    }

    fn marker(&mut self, m: &'static str) {
        match (self.phase, m) {
            (Phase::Reasoning, THINK_END) => self.phase = Phase::Content,
            (Phase::Reasoning | Phase::Content | Phase::AfterBlock, TC_OPEN) => {
                self.malformed |= self.phase != Phase::Content;
                self.phase = Phase::Block;
                self.block.clear();
            }
            (Phase::Reasoning | Phase::Content | Phase::AfterBlock, EOS) => {
                self.malformed |= self.phase == Phase::Reasoning;
                self.phase = Phase::End;
                self.eos = true;
            }
            (Phase::Reasoning | Phase::Content | Phase::AfterBlock, _) => {
                self.malformed = true;
                if self.phase == Phase::AfterBlock {
                    self.phase = Phase::Content;
                }
            }
            (Phase::Block, TC_CLOSE) => match parse_block(&self.block) {
                Ok(calls) => {
                    for (name, arguments) in calls {
                        let index = self.calls;
                        self.calls += 1;
                        self.out.push(Delta::ToolCall { index, id: format!("call_{index}"), name, arguments });
                    }
                    self.phase = Phase::AfterBlock;
                }
                Err(_) => {
                    self.malformed = true;
                    let raw = format!("{TC_OPEN}{}{TC_CLOSE}", self.block);
                    self.content(&raw);
                    self.phase = Phase::Content;
                }
            },
            (Phase::Block, _) => {
                // EOS inside a block: cut short.
                self.unclosed_block();
                self.phase = Phase::End;
                self.eos = true;
            }
            (Phase::End, _) => self.malformed = true,
        }
    }

    fn unclosed_block(&mut self) {
        self.malformed = true;
        let raw = format!("{TC_OPEN}{}", std::mem::take(&mut self.block));
        self.content(&raw);
    }

    fn finish(&mut self) {
        if self.phase == Phase::Block {
            self.unclosed_block();
            self.phase = Phase::Content;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The tool-call block (the official `parse_tool_calls`)
// ---------------------------------------------------------------------------------------------

/// The official `_read_until_stop`: (index after the stop, text before it, the stop).
fn read_until<'a>(s: &'a str, i: usize, stops: &[&'static str]) -> (usize, &'a str, Option<&'static str>) {
    match earliest(&s[i..], stops) {
        Some((p, m)) => (i + p + m.len(), &s[i..i + p], Some(m)),
        None => (s.len(), &s[i..], None),
    }
}

/// Python's `\s` (str patterns).
fn py_space(c: char) -> bool {
    c.is_whitespace() || ('\x1c'..='\x1f').contains(&c)
}

/// `^\s*name="(.*?)">\n$` (DOTALL; `$` also matches before a final newline).
fn invoke_name(s: &str) -> Option<&str> {
    let rest = s.trim_start_matches(py_space).strip_prefix("name=\"")?;
    rest.strip_suffix("\">\n").or_else(|| rest.strip_suffix("\">\n\n"))
}

/// `^ name="(.*?)" string="(true|false)">(.*?)<$` (DOTALL): (name, is string, value).
fn parameter(s: &str) -> Option<(&str, bool, &str)> {
    let rest = s.strip_prefix(" name=\"")?;
    let body = rest.strip_suffix('<').or_else(|| rest.strip_suffix("<\n"))?;
    const T: &str = "\" string=\"true\">";
    const F: &str = "\" string=\"false\">";
    let (p, is_str) = match (body.find(T), body.find(F)) {
        (Some(t), Some(f)) if f < t => (f, false),
        (Some(t), _) => (t, true),
        (None, Some(f)) => (f, false),
        (None, None) => return None,
    };
    let value = &body[p + if is_str { T.len() } else { F.len() }..];
    Some((&body[..p], is_str, value))
}

/// The calls of a block (its text between `TC_OPEN` and `TC_CLOSE`): (name, arguments JSON).
fn parse_block(block: &str) -> Result<Vec<(String, String)>, String> {
    let s = format!("{block}{TC_CLOSE}");
    let mut calls = Vec::new();
    let mut i = 0;
    loop {
        let (ni, gap, stop) = read_until(&s, i, &[INVOKE_OPEN, TC_CLOSE]);
        i = ni;
        if gap != ">\n" {
            return Err(format!("expected '>\\n' before an invoke, got {gap:?}"));
        }
        match stop {
            Some(TC_CLOSE) => break,
            None => return Err("missing the end of the tool calls".into()),
            _ => {}
        }
        let (ni, head, mut stop) = read_until(&s, i, &[PARAM_OPEN, INVOKE_CLOSE]);
        i = ni;
        let name = invoke_name(head).ok_or_else(|| format!("bad invoke head {head:?}"))?;
        let mut args = Map::new();
        while stop == Some(PARAM_OPEN) {
            let (ni, param, _) = read_until(&s, i, &[PARAM_CLOSE]);
            i = ni;
            let (key, is_str, value) = parameter(param).ok_or_else(|| format!("bad parameter {param:?}"))?;
            if args.contains_key(key) {
                return Err(format!("duplicate parameter {key:?}"));
            }
            let value = if is_str {
                Value::String(value.to_string())
            } else {
                // Not JSON despite string="false": kept as the string it is.
                serde_json::from_str(value).unwrap_or_else(|_| Value::String(value.to_string()))
            };
            args.insert(key.to_string(), value);
            let (ni, gap, st) = read_until(&s, i, &[PARAM_OPEN, INVOKE_CLOSE]);
            i = ni;
            stop = st;
            if gap != ">\n" {
                return Err(format!("expected '>\\n' after a parameter, got {gap:?}"));
            }
        }
        if stop != Some(INVOKE_CLOSE) {
            return Err("missing the end of an invoke".into());
        }
        calls.push((name.to_string(), py_json(&Value::Object(args))));
    }
    if i != s.len() {
        return Err("text after the end of the tool calls".into());
    }
    Ok(calls)
}

// ---------------------------------------------------------------------------------------------
// The two drivers
// ---------------------------------------------------------------------------------------------

/// Parse a whole completion (the text the model generated after the prompt, EOS included or not).
pub fn parse_completion(text: &str, mode: ThinkingMode) -> ParsedMessage {
    let mut core = Core::new(mode);
    let mut i = 0;
    while i < text.len() {
        match earliest(&text[i..], core.markers()) {
            Some((p, m)) => {
                core.text(&text[i..i + p]);
                core.marker(m);
                i += p + m.len();
            }
            None => {
                core.text(&text[i..]);
                break;
            }
        }
    }
    core.finish();
    let (malformed, eos) = (core.malformed, core.eos);
    ParsedMessage { malformed, eos, ..ParsedMessage::from_deltas(mode, core.out) }
}

/// Incremental parser: push text as it is generated, get what can be told apart so far. Text
/// that may be the start of a marker (a trailing `<｜DS`, `\n\n`, `</thi` ...) is held back until
/// the next push resolves it, so no special token or DSML ever leaks out in pieces.
#[derive(Debug, Clone)]
pub struct StreamParser {
    core: Core,
    pending: String,
    mode: ThinkingMode,
}

impl StreamParser {
    pub fn new(mode: ThinkingMode) -> Self {
        StreamParser { core: Core::new(mode), pending: String::new(), mode }
    }

    pub fn mode(&self) -> ThinkingMode {
        self.mode
    }

    /// Feed more completion text; returns the deltas it completes.
    pub fn push(&mut self, text: &str) -> Vec<Delta> {
        self.pending.push_str(text);
        self.drain(false);
        std::mem::take(&mut self.core.out)
    }

    /// The completion is over (EOS, length, stop): flush what was held back.
    pub fn finish(&mut self) -> Vec<Delta> {
        self.drain(true);
        self.core.finish();
        std::mem::take(&mut self.core.out)
    }

    /// Whether the text so far broke the format (final after [`finish`](Self::finish)).
    pub fn malformed(&self) -> bool {
        self.core.malformed
    }

    /// Whether EOS was seen.
    pub fn eos(&self) -> bool {
        self.core.eos
    }

    /// Whether the parser is inside the reasoning (the completion so far is all reasoning).
    pub fn in_reasoning(&self) -> bool {
        self.core.phase == Phase::Reasoning
    }

    /// Number of tool calls emitted so far.
    pub fn tool_calls(&self) -> usize {
        self.core.calls
    }

    fn drain(&mut self, last: bool) {
        loop {
            let markers = self.core.markers();
            if markers.is_empty() {
                self.core.text(&self.pending);
                self.pending.clear();
                return;
            }
            let full = earliest(&self.pending, markers);
            // The earliest place where a marker may start but has not fully arrived yet.
            let partial = if last { None } else { partial_start(&self.pending, markers) };
            match (full, partial) {
                (Some((p, m)), j) if j.is_none_or(|j| j >= p) => {
                    let before = self.pending[..p].to_string();
                    self.core.text(&before);
                    self.core.marker(m);
                    self.pending.drain(..p + m.len());
                }
                (_, Some(j)) => {
                    let before = self.pending[..j].to_string();
                    self.core.text(&before);
                    self.pending.drain(..j);
                    return;
                }
                (_, None) => {
                    let all = std::mem::take(&mut self.pending);
                    self.core.text(&all);
                    return;
                }
            }
        }
    }
}

/// The first char boundary `j` such that `s[j..]` is a proper prefix of a marker.
fn partial_start(s: &str, markers: &[&str]) -> Option<usize> {
    let longest = markers.iter().map(|m| m.len()).max().unwrap_or(0);
    let from = s.len().saturating_sub(longest);
    (from..s.len())
        .filter(|j| s.is_char_boundary(*j))
        .find(|&j| markers.iter().any(|m| m.len() > s.len() - j && m.starts_with(&s[j..])))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameter_regex() {
        assert_eq!(parameter(" name=\"a\" string=\"true\">x<"), Some(("a", true, "x")));
        assert_eq!(parameter(" name=\"a\" string=\"false\">[1]<"), Some(("a", false, "[1]")));
        assert_eq!(parameter(" name=\"a\" string=\"true\"><"), Some(("a", true, "")));
        assert_eq!(parameter(" name=\"a\" string=\"true\">x<\n"), Some(("a", true, "x")));
        assert_eq!(parameter(" name=\"a\" string=\"maybe\">x<"), None);
        assert_eq!(parameter("name=\"a\" string=\"true\">x<"), None);
        assert_eq!(invoke_name(" name=\"f\">\n"), Some("f"));
        assert_eq!(invoke_name(" name=\"f\">\n\n"), Some("f"));
        assert_eq!(invoke_name(" name=\"f\">"), None);
    }

    #[test]
    fn holds_back_partial_markers() {
        let mut p = StreamParser::new(ThinkingMode::Chat);
        // `｜DS` may be the start of the DSML token: held back. (`<｜DS` cannot start a tool-call
        // block, which begins with `\n\n<`, so the `<` is plain text.)
        assert_eq!(p.push("Hello <｜DS"), vec![Delta::Content("Hello <".into())]);
        // A stray DSML token is dropped.
        assert_eq!(p.push("ML｜ x"), vec![Delta::Content(" x".into())]);
        assert!(p.malformed());
        let mut p = StreamParser::new(ThinkingMode::Chat);
        assert_eq!(p.push("Hi\n\n<｜DS"), vec![Delta::Content("Hi".into())]);
        assert_eq!(p.push("ML｜tool_calls>\n"), vec![]);
        assert!(!p.malformed());
        let mut p = StreamParser::new(ThinkingMode::Thinking);
        assert_eq!(p.push("abc</thi"), vec![Delta::Reasoning("abc".into())]);
        assert_eq!(p.push("nk>ok\n"), vec![Delta::Content("ok".into())]);
        assert_eq!(p.push("\n"), vec![]);
        assert_eq!(p.push("x"), vec![Delta::Content("\n\nx".into())]);
        assert_eq!(p.push("<｜end▁of▁sentence｜>"), vec![]);
        assert!(p.eos() && !p.malformed());
    }
}
