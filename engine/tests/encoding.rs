//! The chat format and the tokenizer against the official test vectors (`shared/encoding/`,
//! `shared/tokenizer/`), malformed completions, and the incremental parser.

use std::sync::OnceLock;

use dsv4_engine::chat::{
    encode_conversation, generation_mode, parse_completion, Content, Delta, EncodeRequest, Message,
    ParsedMessage, ReasoningEffort, Role, StreamParser, ThinkingMode, Tool, ToolCall, ASSISTANT, BOS, DSML,
    EOS, REASONING_EFFORT_MAX, TASK_TOKENS, THINK_END, THINK_START, USER,
};
use dsv4_engine::tokenizer::Tokenizer;
use proptest::prelude::*;
use serde_json::{json, Value};

const ENCODING_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/encoding");
const TOKENIZER_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/tokenizer");

fn read(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {path}: {e}"))
}

/// Test vector `n`: the request (top-level `tools` as the official test combines them) and the
/// expected prompt.
fn vector(n: usize) -> (EncodeRequest, String) {
    let input: Value = serde_json::from_str(&read(&format!("{ENCODING_DIR}/test_input_{n}.json"))).unwrap();
    let mut req: EncodeRequest = match input {
        Value::Array(_) => EncodeRequest { messages: serde_json::from_value(input).unwrap(), ..Default::default() },
        obj => serde_json::from_value(obj).unwrap(),
    };
    req.drop_thinking = true;
    req.thinking_mode = if n == 4 { ThinkingMode::Chat } else { ThinkingMode::Thinking };
    (req, read(&format!("{ENCODING_DIR}/test_output_{n}.txt")))
}

fn tokenizer() -> &'static Tokenizer {
    static T: OnceLock<Tokenizer> = OnceLock::new();
    T.get_or_init(|| Tokenizer::from_file(format!("{TOKENIZER_DIR}/tokenizer.json")).unwrap())
}

fn text_of(c: &Option<Content>) -> String {
    match c {
        None => String::new(),
        Some(Content::Text(s)) => s.clone(),
        Some(Content::Parts(p)) => p.iter().filter_map(|p| p.text.clone()).collect(),
    }
}

fn args_value(s: &str) -> Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("arguments {s:?} are not JSON: {e}"))
}

/// The tool calls are the same calls: names, and arguments equal as JSON values.
fn assert_same_calls(got: &[ToolCall], want: &[ToolCall]) {
    assert_eq!(got.len(), want.len(), "{got:?} vs {want:?}");
    for (g, w) in got.iter().zip(want) {
        assert_eq!(g.function.name, w.function.name);
        assert_eq!(args_value(&g.function.arguments), args_value(&w.function.arguments));
    }
}

// ---------------------------------------------------------------------------------------------
// Encoding
// ---------------------------------------------------------------------------------------------

#[test]
fn official_vectors_byte_for_byte() {
    for n in 1..=4 {
        let (req, want) = vector(n);
        let got = encode_conversation(&req).unwrap_or_else(|e| panic!("vector {n}: {e}"));
        if got != want {
            let at = got.bytes().zip(want.bytes()).position(|(a, b)| a != b).unwrap_or(got.len().min(want.len()));
            let lo = at.saturating_sub(80);
            panic!(
                "vector {n} differs at byte {at}:\n got: {:?}\nwant: {:?}",
                String::from_utf8_lossy(&got.as_bytes()[lo..(at + 80).min(got.len())]),
                String::from_utf8_lossy(&want.as_bytes()[lo..(at + 80).min(want.len())])
            );
        }
    }
}

#[test]
fn vectors_tokenize_and_round_trip() {
    let tok = tokenizer();
    for n in 1..=4 {
        let (_, prompt) = vector(n);
        let ids = tok.encode(&prompt);
        assert_eq!(ids[0], tok.bos_id(), "vector {n} starts with BOS");
        assert_eq!(*ids.last().unwrap(), tok.eos_id(), "vector {n} ends with EOS");
        for special in [USER, ASSISTANT, THINK_START, THINK_END, EOS] {
            let id = tok.token_id(special).unwrap();
            assert_eq!(ids.iter().filter(|&&i| i == id).count(), prompt.matches(special).count(), "{special} in {n}");
        }
        let dsml = tok.token_id(DSML).unwrap();
        assert_eq!(ids.iter().filter(|&&i| i == dsml).count(), prompt.matches(DSML).count(), "DSML in {n}");
        assert_eq!(tok.decode(&ids), prompt, "vector {n} decodes back");
        assert_eq!(tok.decode_reference(&ids).unwrap(), prompt);
        // Streaming decode, one id at a time.
        let mut d = tok.decoder();
        let mut text: String = ids.iter().map(|&i| d.push(i)).collect();
        text.push_str(&d.flush());
        assert_eq!(text, prompt);
    }
}

#[test]
fn max_effort_preamble_and_drop_thinking_off() {
    let (mut req, want) = vector(2);
    req.reasoning_effort = Some(ReasoningEffort::Max);
    let got = encode_conversation(&req).unwrap();
    assert_eq!(got, format!("{BOS}{REASONING_EFFORT_MAX}{}", &want[BOS.len()..]));
    // In chat mode the preamble is not written.
    req.thinking_mode = ThinkingMode::Chat;
    assert!(!encode_conversation(&req).unwrap().contains("Reasoning Effort"));

    // drop_thinking off: the first turn keeps its reasoning, and the transition is <think>.
    let (mut req, _) = vector(2);
    req.drop_thinking = false;
    let got = encode_conversation(&req).unwrap();
    assert!(got.contains(&format!(
        "{USER}Hello{ASSISTANT}{THINK_START}The user said hello, I should greet back.{THINK_END}Hi there!"
    )));
}

#[test]
fn generation_prompts() {
    // Vector 2 without its last answer: the prompt ends in <think>, earlier reasoning dropped.
    let (mut req, want) = vector(2);
    req.messages.pop();
    let got = encode_conversation(&req).unwrap();
    let cut = want.rfind(THINK_START).unwrap() + THINK_START.len();
    assert_eq!(got, want[..cut]);
    assert_eq!(generation_mode(&req), ThinkingMode::Thinking);

    // Vector 4 without the answer to the action task: ends with </think><｜action｜>.
    let (mut req, want) = vector(4);
    req.messages.pop();
    let got = encode_conversation(&req).unwrap();
    assert!(got.ends_with(&format!("{ASSISTANT}{THINK_END}<｜action｜>")));
    assert_eq!(got, want[..want.rfind("Search").unwrap()]);
    assert_eq!(generation_mode(&req), ThinkingMode::Chat);
    // The same in thinking mode: <think><｜action｜>, and the answer has no reasoning part.
    req.thinking_mode = ThinkingMode::Thinking;
    assert!(encode_conversation(&req).unwrap().ends_with(&format!("{ASSISTANT}{THINK_START}<｜action｜>")));
    assert_eq!(generation_mode(&req), ThinkingMode::Chat);
    // A non-action task token follows the message itself.
    let mut req = EncodeRequest::new(vec![Message::user("Tell me about Rust")], ThinkingMode::Thinking);
    req.messages[0].task = Some("title".into());
    assert_eq!(encode_conversation(&req).unwrap(), format!("{BOS}{USER}Tell me about Rust<｜title｜>"));
}

#[test]
fn request_tools_without_system_message() {
    let (v1, want1) = vector(1);
    // Without the system message, the tools go on a new empty system message in front.
    let mut req = v1.clone();
    req.messages.remove(0);
    let got = encode_conversation(&req).unwrap();
    let tools_start = want1.find("\n\n## Tools").unwrap();
    let tools_end = want1.find(USER).unwrap();
    assert_eq!(got, format!("{BOS}{}{}", &want1[tools_start..tools_end], &want1[tools_end..]));
    // Tools make drop_thinking a no-op: reasoning before the last user turn is kept.
    assert!(got.contains("I should use the get_weather tool.</think>"));
}

#[test]
fn response_format_rendering() {
    let mut req = EncodeRequest::new(vec![Message::system("Be terse."), Message::user("hi")], ThinkingMode::Chat);
    req.response_format = Some(json!({"type": "json_object"}));
    assert_eq!(
        encode_conversation(&req).unwrap(),
        format!(
            "{BOS}Be terse.\n\n## Response Format:\n\nYou MUST strictly adhere to the following schema to reply:\n\
             {{\"type\": \"json_object\"}}{USER}hi{ASSISTANT}{THINK_END}"
        )
    );
    req.response_format = Some(json!({"type": "text"}));
    assert_eq!(encode_conversation(&req).unwrap(), format!("{BOS}Be terse.{USER}hi{ASSISTANT}{THINK_END}"));
}

fn call(id: &str, name: &str, args: &str) -> ToolCall {
    serde_json::from_value(json!({"id": id, "type": "function", "function": {"name": name, "arguments": args}}))
        .unwrap()
}

#[test]
fn tool_results_merge_and_sort() {
    let mut a = Message::assistant("");
    a.tool_calls = Some(vec![call("c1", "f", r#"{"x": 1}"#), call("c2", "g", r#"{"s": "v", "l": [1, 2.5]}"#)]);
    let msgs = vec![
        Message::user("go"),
        a,
        Message::tool("c2", "two"),
        Message::tool("c1", "one"),
        Message::user("and?"),
    ];
    let req = EncodeRequest::new(msgs, ThinkingMode::Chat);
    let got = encode_conversation(&req).unwrap();
    let want = format!(
        "{BOS}{USER}go{ASSISTANT}{THINK_END}\n\n<{DSML}tool_calls>\n\
         <{DSML}invoke name=\"f\">\n<{DSML}parameter name=\"x\" string=\"false\">1</{DSML}parameter>\n</{DSML}invoke>\n\
         <{DSML}invoke name=\"g\">\n<{DSML}parameter name=\"s\" string=\"true\">v</{DSML}parameter>\n\
         <{DSML}parameter name=\"l\" string=\"false\">[1, 2.5]</{DSML}parameter>\n</{DSML}invoke>\n\
         </{DSML}tool_calls>{EOS}\
         {USER}<tool_result>one</tool_result>\n\n<tool_result>two</tool_result>\n\nand?{ASSISTANT}{THINK_END}"
    );
    assert_eq!(got, want);
}

#[test]
fn consecutive_users_merge_and_content_parts() {
    let msgs: Vec<Message> = serde_json::from_value(json!([
        {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
        {"role": "user", "content": "c"}
    ]))
    .unwrap();
    let got = encode_conversation(&EncodeRequest::new(msgs, ThinkingMode::Thinking)).unwrap();
    assert_eq!(got, format!("{BOS}{USER}ab\n\nc{ASSISTANT}{THINK_START}"));
}

#[test]
fn prefix_completion() {
    let mut p = Message::assistant("The answer is");
    p.prefix = true;
    p.reasoning_content = Some("easy".into());
    let mut req = EncodeRequest::new(vec![Message::user("q"), p.clone()], ThinkingMode::Thinking);
    assert_eq!(encode_conversation(&req).unwrap(), format!("{BOS}{USER}q{ASSISTANT}{THINK_START}easy{THINK_END}The answer is"));
    assert_eq!(generation_mode(&req), ThinkingMode::Chat);
    // No content: the reasoning itself is continued.
    req.messages[1].content = None;
    assert_eq!(encode_conversation(&req).unwrap(), format!("{BOS}{USER}q{ASSISTANT}{THINK_START}easy"));
    assert_eq!(generation_mode(&req), ThinkingMode::Thinking);
    req.thinking_mode = ThinkingMode::Chat;
    req.messages[1] = p;
    assert_eq!(encode_conversation(&req).unwrap(), format!("{BOS}{USER}q{ASSISTANT}{THINK_END}The answer is"));
}

#[test]
fn malformed_conversations_are_errors() {
    let cases: Vec<(Value, &str)> = vec![
        (json!([{"role": "wizard", "content": "x"}]), "messages[0].role"),
        (json!([{"role": "user", "content": "x"}, {"role": "tool", "content": "r"}]), "messages[1]"),
        (
            json!([{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}, {"role": "tool", "content": "r"}]),
            "messages[2]",
        ),
        (json!([{"role": "user", "content": "x", "task": "dance"}]), "messages[0].task"),
        (json!([{"role": "developer", "content": ""}]), "messages[0].content"),
        (json!([{"role": "latest_reminder"}]), "messages[0].content"),
        (json!([{"role": "assistant", "content": "x", "prefix": true}, {"role": "user", "content": "y"}]), "messages[0].prefix"),
        (json!([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "u"}}]}]), "messages[0].content[0].type"),
        (
            json!([{"role": "user", "content": "x"}, {"role": "assistant", "tool_calls": [{"type": "function", "function": {"name": "f", "arguments": "[1]"}}]}]),
            "messages[1].tool_calls[0].function.arguments",
        ),
        (json!([{"role": "user", "content": "x", "tools": [{"type": "function", "function": {"name": "f"}}]}]), "messages[0].tools"),
        (json!([{"role": "system", "content": "x", "tools": [{"type": "function", "function": {"description": "f"}}]}]), "messages[0].tools[0].function.name"),
        (json!([]), "messages"),
    ];
    for (msgs, path) in cases {
        let messages: Vec<Message> = serde_json::from_value(msgs.clone()).unwrap();
        let e = encode_conversation(&EncodeRequest::new(messages, ThinkingMode::Thinking)).unwrap_err();
        assert_eq!(e.path, path, "{msgs}: {e}");
        assert!(e.to_string().starts_with(path));
    }
}

#[test]
fn arguments_fallbacks() {
    let mut a = Message::assistant("");
    a.tool_calls = Some(vec![call("1", "f", "not json"), call("2", "g", "")]);
    // Arguments given as a JSON object are accepted too.
    let obj: ToolCall =
        serde_json::from_value(json!({"type": "function", "function": {"name": "h", "arguments": {"k": 1.0}}})).unwrap();
    a.tool_calls.as_mut().unwrap().push(obj);
    let got = encode_conversation(&EncodeRequest::new(vec![Message::user("u"), a], ThinkingMode::Chat)).unwrap();
    assert!(got.contains(&format!("<{DSML}parameter name=\"arguments\" string=\"true\">not json</{DSML}parameter>")));
    assert!(got.contains(&format!("<{DSML}invoke name=\"g\">\n\n</{DSML}invoke>")));
    assert!(got.contains(&format!("<{DSML}parameter name=\"k\" string=\"false\">1.0</{DSML}parameter>")));
}

#[test]
fn request_json_shapes() {
    let req: EncodeRequest = serde_json::from_value(json!({
        "messages": [{"role": "user", "content": "hi"}],
        "thinking_mode": "chat",
        "reasoning_effort": "xhigh",
        "tools": [{"type": "function", "function": {"name": "f", "description": "d", "parameters": {}, "strict": true}}]
    }))
    .unwrap();
    assert_eq!(req.reasoning_effort, Some(ReasoningEffort::Max));
    assert!(req.drop_thinking);
    let tools: &Vec<Tool> = req.tools.as_ref().unwrap();
    assert_eq!(tools[0].function.name(), Some("f"));
    let got = encode_conversation(&req).unwrap();
    assert!(got.contains("{\"name\": \"f\", \"description\": \"d\", \"parameters\": {}, \"strict\": true}\n"));
    assert_eq!(serde_json::from_value::<Message>(json!({"role": "x"})).unwrap().role, Role::Other("x".into()));
}

// ---------------------------------------------------------------------------------------------
// Parsing
// ---------------------------------------------------------------------------------------------

/// Each assistant turn of a vector prompt: (the mode its completion is parsed in, the completion
/// text up to and including EOS), in order.
fn assistant_turns(prompt: &str) -> Vec<(ThinkingMode, String)> {
    prompt
        .split(ASSISTANT)
        .skip(1)
        .map(|seg| {
            let (mode, rest) = match seg.strip_prefix(THINK_START) {
                Some(r) => (ThinkingMode::Thinking, r),
                None => (ThinkingMode::Chat, seg.strip_prefix(THINK_END).expect("think token")),
            };
            let rest = TASK_TOKENS.iter().fold(rest, |r, (_, tok)| r.strip_prefix(tok).unwrap_or(r));
            let end = rest.find(EOS).expect("turn ends with EOS") + EOS.len();
            (mode, rest[..end].to_string())
        })
        .collect()
}

#[test]
fn vector_turns_parse_back() {
    for n in 1..=4 {
        let (req, prompt) = vector(n);
        let turns = assistant_turns(&prompt);
        let answers: Vec<&Message> = req.messages.iter().filter(|m| m.role == Role::Assistant).collect();
        assert_eq!(turns.len(), answers.len(), "vector {n}");
        for ((mode, text), want) in turns.iter().zip(answers) {
            let got = parse_completion(text, *mode);
            assert!(!got.malformed && got.eos, "vector {n}: {text:?} -> {got:?}");
            assert_eq!(got.content, text_of(&want.content), "vector {n}");
            if *mode == ThinkingMode::Thinking {
                assert_eq!(got.reasoning_content.as_deref(), Some(want.reasoning_content.as_deref().unwrap_or("")));
            } else {
                assert_eq!(got.reasoning_content, None);
            }
            assert_same_calls(&got.tool_calls, want.tool_calls.as_deref().unwrap_or(&[]));
        }
    }
}

#[test]
fn parses_official_example_tool_call() {
    let (_, prompt) = vector(1);
    let (mode, text) = &assistant_turns(&prompt)[0];
    let got = parse_completion(text, *mode);
    assert_eq!(got.tool_calls.len(), 1);
    assert_eq!(got.tool_calls[0].id.as_deref(), Some("call_0"));
    assert_eq!(got.tool_calls[0].function.arguments, r#"{"location": "Beijing", "unit": "celsius"}"#);
    // Without EOS (stripped by the server, or cut by a stop sequence) it is still well-formed.
    let got = parse_completion(text.strip_suffix(EOS).unwrap(), *mode);
    assert!(!got.malformed && !got.eos && got.tool_calls.len() == 1);
}

fn block(inner: &str) -> String {
    format!("\n\n<{DSML}tool_calls>\n{inner}\n</{DSML}tool_calls>")
}

#[test]
fn typed_parameters() {
    let inner = format!(
        "<{DSML}invoke name=\"f\">\n\
         <{DSML}parameter name=\"n\" string=\"false\">42</{DSML}parameter>\n\
         <{DSML}parameter name=\"o\" string=\"false\">{{\"a\": [true, null]}}</{DSML}parameter>\n\
         <{DSML}parameter name=\"s\" string=\"true\">42</{DSML}parameter>\n\
         <{DSML}parameter name=\"bad\" string=\"false\">not json</{DSML}parameter>\n\
         </{DSML}invoke>"
    );
    let got = parse_completion(&format!("ok{}{EOS}", block(&inner)), ThinkingMode::Chat);
    assert!(!got.malformed);
    assert_eq!(got.content, "ok");
    assert_eq!(args_value(&got.tool_calls[0].function.arguments), json!({"n": 42, "o": {"a": [true, null]}, "s": "42", "bad": "not json"}));
}

#[test]
fn malformed_completions() {
    let good_invoke = format!("<{DSML}invoke name=\"f\">\n<{DSML}parameter name=\"x\" string=\"true\">1</{DSML}parameter>\n</{DSML}invoke>");
    // (mode, text, reasoning, content, number of calls)
    let broken_param = block(&format!("<{DSML}invoke name=\"f\">\n<{DSML}parameter name=\"x\">1</{DSML}parameter>\n</{DSML}invoke>"));
    let dup = block(&format!(
        "<{DSML}invoke name=\"f\">\n<{DSML}parameter name=\"x\" string=\"true\">1</{DSML}parameter>\n\
         <{DSML}parameter name=\"x\" string=\"true\">2</{DSML}parameter>\n</{DSML}invoke>"
    ));
    let unclosed = format!("\n\n<{DSML}tool_calls>\n<{DSML}invoke name=\"f\">\n<{DSML}parameter name=\"x\" string=\"tr");
    let cases: Vec<(ThinkingMode, String, Option<&str>, String, usize)> = vec![
        // A parameter without string=: the raw block becomes content.
        (ThinkingMode::Chat, format!("hi{broken_param}{EOS}"), None, format!("hi{broken_param}"), 0),
        (ThinkingMode::Chat, format!("hi{dup}{EOS}"), None, format!("hi{dup}"), 0),
        // Cut short by the end of the text or by EOS.
        (ThinkingMode::Chat, format!("hi{unclosed}"), None, format!("hi{unclosed}"), 0),
        (ThinkingMode::Chat, format!("hi{unclosed}{EOS}"), None, format!("hi{unclosed}"), 0),
        // Missing </think> before the tool calls: still parsed.
        (ThinkingMode::Thinking, format!("hmm{}{EOS}", block(&good_invoke)), Some("hmm"), String::new(), 1),
        // EOS inside the reasoning.
        (ThinkingMode::Thinking, format!("hmm{EOS}"), Some("hmm"), String::new(), 0),
        // Text after the tool calls, and after EOS.
        (ThinkingMode::Chat, format!("{}tail{EOS}", block(&good_invoke)), None, "tail".into(), 1),
        (ThinkingMode::Chat, format!("done{EOS}more"), None, "done".into(), 0),
        // Stray special tokens are dropped.
        (ThinkingMode::Thinking, format!("a<think>b{THINK_END}c{THINK_END}d{BOS}e{USER}"), Some("ab"), "cde".into(), 0),
        (ThinkingMode::Chat, format!("x <{DSML}invoke name=\"f\"> y"), None, "x <invoke name=\"f\"> y".into(), 0),
        // Garbage between invokes.
        (
            ThinkingMode::Chat,
            block(&format!("{good_invoke}\nzzz\n{good_invoke}")),
            None,
            block(&format!("{good_invoke}\nzzz\n{good_invoke}")),
            0,
        ),
    ];
    for (mode, text, reasoning, content, calls) in cases {
        let got = parse_completion(&text, mode);
        assert!(got.malformed, "{text:?} -> {got:?}");
        assert_eq!(got.reasoning_content.as_deref(), reasoning, "{text:?}");
        assert_eq!(got.content, content, "{text:?}");
        assert_eq!(got.tool_calls.len(), calls, "{text:?}");
        assert_eq!(streamed(&text, mode, &[1, 2, 3, 5, 8, 13]), got, "{text:?}");
    }
}

/// Parse `text` pushed in pieces cut at the given char positions (modulo its length).
fn streamed(text: &str, mode: ThinkingMode, cuts: &[usize]) -> ParsedMessage {
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let mut bounds: Vec<usize> =
        cuts.iter().map(|c| if chars.is_empty() { 0 } else { chars[c % chars.len()].0 }).collect();
    bounds.push(0);
    bounds.push(text.len());
    bounds.sort_unstable();
    bounds.dedup();
    let mut p = StreamParser::new(mode);
    let mut deltas: Vec<Delta> = Vec::new();
    for w in bounds.windows(2) {
        deltas.extend(p.push(&text[w[0]..w[1]]));
    }
    deltas.extend(p.finish());
    // Tool call deltas come complete and in order.
    let indexes: Vec<usize> =
        deltas.iter().filter_map(|d| if let Delta::ToolCall { index, .. } = d { Some(*index) } else { None }).collect();
    assert_eq!(indexes, (0..indexes.len()).collect::<Vec<_>>());
    let (malformed, eos) = (p.malformed(), p.eos());
    ParsedMessage { malformed, eos, ..ParsedMessage::from_deltas(mode, deltas) }
}

#[test]
fn char_by_char_streaming_of_vectors() {
    for n in 1..=4 {
        let (_, prompt) = vector(n);
        for (mode, text) in assistant_turns(&prompt) {
            let mut p = StreamParser::new(mode);
            let mut deltas = Vec::new();
            for c in text.chars() {
                let out = p.push(c.encode_utf8(&mut [0; 4]));
                for d in &out {
                    if let Delta::Content(s) | Delta::Reasoning(s) = d {
                        for special in [DSML, EOS, THINK_END, "\n\n<"] {
                            assert!(!s.contains(special), "{d:?}");
                        }
                    }
                }
                deltas.extend(out);
            }
            deltas.extend(p.finish());
            let got = ParsedMessage { eos: p.eos(), malformed: p.malformed(), ..ParsedMessage::from_deltas(mode, deltas) };
            assert_eq!(got, parse_completion(&text, mode));
        }
    }
}

const FRAGMENTS: &[&str] = &[
    "a", "b", " ", "é", "中", "😀", "\n", "\n\n", "<", ">", "/", "｜", "\"", "=", "DSML", "think", "true",
    "<｜", "<｜DS", "｜DSML｜", "<｜DSML｜", "</｜DSML｜", "\n\n<｜DSML｜tool_calls>\n", "<｜DSML｜tool_calls>",
    "</｜DSML｜tool_calls>", "<｜DSML｜invoke name=\"f\">\n", "</｜DSML｜invoke>", "</｜DSML｜invoke>\n",
    "<｜DSML｜parameter name=\"x\" string=\"true\">", "<｜DSML｜parameter name=\"y\" string=\"false\">",
    "</｜DSML｜parameter>", "</｜DSML｜parameter>\n", "[1, 2]", "<｜end▁of▁sentence｜>", "<｜end▁of", "</think>",
    "</thi", "<think>", "<｜begin▁of▁sentence｜>", "<｜User｜>", "<｜action｜>", "\n\n<｜DSML｜tool_c",
];

/// Every marker the parser knows; none of them may be in a well-formed result.
const SPECIALS: &[&str] = &[DSML, EOS, BOS, THINK_START, THINK_END, USER, ASSISTANT, "<｜action｜>"];

fn well_formed_tool_text() -> String {
    format!(
        "\n\n<{DSML}tool_calls>\n<{DSML}invoke name=\"f\">\n<{DSML}parameter name=\"x\" string=\"true\">v</{DSML}parameter>\n\
         </{DSML}invoke>\n</{DSML}tool_calls>"
    )
}

/// A random assistant message made of text that cannot form a marker.
fn arb_message() -> impl Strategy<Value = Message> {
    let text = "[a-c \n<>/中é\"=｜]{0,16}";
    let value = prop_oneof![
        text.prop_map(Value::String),
        any::<i64>().prop_map(Value::from),
        (-1e20f64..1e20).prop_map(Value::from),
        any::<bool>().prop_map(Value::Bool),
        Just(Value::Null),
        prop::collection::vec(any::<i32>(), 0..3).prop_map(|v| json!(v)),
        "[a-c]{1,3}".prop_map(|k| json!({k: [1, {"z": "中"}]})),
    ];
    let args = prop::collection::btree_map("[a-z]{1,5}", value, 0..4);
    let call = ("[a-z_]{1,8}", args).prop_map(|(name, args)| {
        let obj: serde_json::Map<String, Value> = args.into_iter().collect();
        call("", &name, &serde_json::to_string(&obj).unwrap())
    });
    (text, text, prop::collection::vec(call, 0..3)).prop_map(|(reasoning, content, calls)| Message {
        role: Role::Assistant,
        content: Some(Content::Text(content)),
        reasoning_content: Some(reasoning),
        tool_calls: Some(calls),
        ..Default::default()
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn vector_turns_any_split(n in 1usize..=4, cuts in prop::collection::vec(any::<usize>(), 0..12)) {
        let (_, prompt) = vector(n);
        for (mode, text) in assistant_turns(&prompt) {
            prop_assert_eq!(streamed(&text, mode, &cuts), parse_completion(&text, mode));
        }
    }

    #[test]
    fn random_fragments_any_split(
        frags in prop::collection::vec(prop::sample::select(FRAGMENTS), 0..40),
        cuts in prop::collection::vec(any::<usize>(), 0..16),
        thinking in any::<bool>(),
        with_block in any::<bool>(),
    ) {
        let mode = if thinking { ThinkingMode::Thinking } else { ThinkingMode::Chat };
        let mut text: String = frags.concat();
        if with_block {
            let at = text.char_indices().map(|(i, _)| i).nth(cuts.first().copied().unwrap_or(0) % (text.chars().count() + 1)).unwrap_or(text.len());
            text.insert_str(at, &well_formed_tool_text());
        }
        let one = parse_completion(&text, mode);
        prop_assert_eq!(&streamed(&text, mode, &cuts), &one);
        if !one.malformed {
            for s in SPECIALS {
                prop_assert!(!one.content.contains(s), "{:?} in content {:?}", s, one.content);
                prop_assert!(!one.reasoning_content.clone().unwrap_or_default().contains(s));
            }
        }
        for c in &one.tool_calls {
            prop_assert!(args_value(&c.function.arguments).is_object());
        }
    }

    #[test]
    fn encoded_messages_parse_back(msg in arb_message(), thinking in any::<bool>(), cuts in prop::collection::vec(any::<usize>(), 0..8)) {
        let mode = if thinking { ThinkingMode::Thinking } else { ThinkingMode::Chat };
        let req = EncodeRequest::new(vec![Message::user("q"), msg.clone()], mode);
        let prompt = encode_conversation(&req).unwrap();
        let think = if thinking { THINK_START } else { THINK_END };
        let start = prompt.find(&format!("{USER}q{ASSISTANT}{think}")).unwrap() + USER.len() + 1 + ASSISTANT.len() + think.len();
        let text = &prompt[start..];
        let got = parse_completion(text, mode);
        prop_assert!(!got.malformed && got.eos, "{:?} -> {:?}", text, got);
        prop_assert_eq!(&got.content, &text_of(&msg.content));
        if thinking {
            prop_assert_eq!(got.reasoning_content.as_deref(), msg.reasoning_content.as_deref());
        }
        assert_same_calls(&got.tool_calls, msg.tool_calls.as_deref().unwrap());
        prop_assert_eq!(streamed(text, mode, &cuts), got);
    }

    #[test]
    fn streaming_decoder_matches_decode(ids in prop::collection::vec(prop_oneof![0u32..129_280, 200u32..300, 120_000u32..129_280], 0..24)) {
        let tok = tokenizer();
        let mut d = tok.decoder();
        let mut text = String::new();
        for &id in &ids {
            text.push_str(&d.push(id));
        }
        text.push_str(&d.flush());
        prop_assert_eq!(&text, &tok.decode_reference(&ids).unwrap());
        prop_assert_eq!(&text, &tok.decode(&ids));
    }
}

// ---------------------------------------------------------------------------------------------
// Tokenizer
// ---------------------------------------------------------------------------------------------

#[test]
fn tokenizer_vectors() {
    let tok = tokenizer();
    let vectors: Value = serde_json::from_str(&read(&format!("{TOKENIZER_DIR}/vectors.json"))).unwrap();
    for v in vectors.as_array().unwrap() {
        let text = v["text"].as_str().unwrap();
        let ids: Vec<u32> = v["ids"].as_array().unwrap().iter().map(|i| i.as_u64().unwrap() as u32).collect();
        assert_eq!(tok.encode(text), ids, "{text:?}");
        assert_eq!(tok.decode(&ids), v["decoded"].as_str().unwrap());
    }
}

#[test]
fn tokenizer_special_tokens() {
    let tok = tokenizer();
    assert_eq!(tok.vocab_size(), 129_280);
    assert_eq!((tok.bos_id(), tok.eos_id()), (0, 1));
    for (token, id) in [
        (BOS, 0),
        (EOS, 1),
        (USER, 128803),
        (ASSISTANT, 128804),
        (THINK_START, 128821),
        (THINK_END, 128822),
        (DSML, 128825),
        ("<｜latest_reminder｜>", 128828),
    ] {
        assert_eq!(tok.token_id(token), Some(id), "{token}");
        assert_eq!(tok.encode(token), vec![id], "{token}");
        assert_eq!(tok.decode(&[id]), token);
    }
    for (_, task) in TASK_TOKENS {
        let id = tok.token_id(task).unwrap_or_else(|| panic!("{task} is a token"));
        assert_eq!(tok.encode(task), vec![id]);
    }
    assert!(tok.is_special(0) && tok.is_special(1) && !tok.is_special(19923));
    assert_eq!(tok.token_id("no such token"), None);
    // A multi-byte char split over byte-level tokens comes out whole.
    let ids = tok.encode("😀");
    assert!(ids.len() > 1);
    let mut d = tok.decoder();
    let outs: Vec<String> = ids.iter().map(|&i| d.push(i)).collect();
    assert_eq!(outs.last().unwrap(), "😀");
    assert!(outs[..outs.len() - 1].iter().all(String::is_empty));
}

#[test]
fn tokenizer_load_error_names_the_file() {
    let e = Tokenizer::from_file("/nonexistent/tokenizer.json").unwrap_err();
    assert!(e.to_string().contains("/nonexistent/tokenizer.json"), "{e}");
}
