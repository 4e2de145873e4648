//! Strict tool calls (`constraint::dsml`) over the real DeepSeek-V4 vocabulary: a constrained
//! random "sampler" must always produce completions that the chat parser reads without
//! `malformed`, calling the given tools with arguments valid for their schemas; real encoded
//! tool calls go through token by token; and the mask is timed.

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use dsv4_engine::chat::{parse_completion, ThinkingMode, DSML, EOS, THINK_END};
use dsv4_engine::constraint::dsml::{StrictTool, StrictToolCalls};
use dsv4_engine::constraint::json::{looks_special, validate};
use dsv4_engine::constraint::Constraint;
use dsv4_engine::sampling::Rng;
use dsv4_engine::tokenizer::Tokenizer;
use serde_json::{json, Value};

const TOKENIZER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/tokenizer/tokenizer.json");
const ENCODING: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/encoding");

fn tokenizer() -> &'static Tokenizer {
    static T: OnceLock<Tokenizer> = OnceLock::new();
    T.get_or_init(|| Tokenizer::from_file(TOKENIZER).unwrap())
}

fn think_end() -> u32 {
    tokenizer().token_id(THINK_END).unwrap()
}

fn weather_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "city": {"type": "string", "description": "City name"},
            "days": {"type": "integer"},
            "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}
        },
        "required": ["city", "days", "unit"],
        "additionalProperties": false
    })
}

fn book_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "title": {"type": "string"},
            "guests": {"type": "array", "items": {"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"}}, "required": ["name"], "additionalProperties": false}},
            "vip": {"type": "boolean"},
            "budget": {"type": ["number", "null"]},
            "mode": {"enum": ["fast", "cheap", 3]}
        },
        "required": ["title", "vip"]
    })
}

fn tools() -> Vec<StrictTool> {
    vec![
        StrictTool { name: "get_weather".into(), strict: true, schema: Some(weather_schema()) },
        StrictTool { name: "book".into(), strict: true, schema: Some(book_schema()) },
        StrictTool { name: "search".into(), strict: false, schema: Some(json!({"type": "object", "properties": {"q": {"type": "string"}}})) },
    ]
}

fn text_of(ids: &[u32]) -> String {
    let vocab = tokenizer().token_bytes_table();
    let bytes: Vec<u8> = ids.iter().flat_map(|&i| vocab[i as usize].iter().copied()).collect();
    String::from_utf8(bytes).expect("valid UTF-8")
}

fn allowed(logits: &[f32]) -> Vec<u32> {
    (0..logits.len() as u32).filter(|&i| logits[i as usize].is_finite()).collect()
}

/// Token sequences that move toward the end of a block (tried in this order).
fn closers() -> &'static Vec<Vec<u32>> {
    static C: OnceLock<Vec<Vec<u32>>> = OnceLock::new();
    C.get_or_init(|| {
        let t = tokenizer();
        [
            format!("</{DSML}tool_calls>"),
            format!("</{DSML}parameter>\n"),
            format!("</{DSML}invoke>\n"),
            "\" string=\"true\">".to_string(),
            "\"".into(),
            "]".into(),
            "}".into(),
            "0".into(),
            "true".into(),
            "\"x\"".into(),
            "\"name\": \"Bob\"".into(),
        ]
        .iter()
        .map(|s| t.encode(s))
        .collect()
    })
}

/// Whether the whole sequence is allowed from `c`'s state.
fn fits(c: &StrictToolCalls, seq: &[u32]) -> bool {
    let mut c = c.clone();
    seq.iter().all(|&t| {
        let ok = c.allows(t);
        c.advance(t);
        ok
    })
}

struct Run {
    ids: Vec<u32>,
    finished: bool,
}

/// A random "sampler": random logits, mask, then the argmax (a random allowed token). On a
/// growing share of the steps (10% at first, 100% at the budget) it takes EOS when allowed, else
/// the first of [`closers`] that fits, so that it finishes. `forced` tokens get +1e4 first (free
/// text, the opening), which the mask must keep.
fn generate(c: &mut StrictToolCalls, rng: &mut Rng, forced: &[u32], budget: usize) -> Run {
    let t = tokenizer();
    let eos = t.eos_id();
    let mut logits = vec![0.0f32; t.vocab_size()];
    let mut ids = Vec::new();
    let mut plan: Vec<u32> = Vec::new();
    for step in 0..budget {
        for x in logits.iter_mut() {
            *x = rng.next_f64() as f32;
        }
        if let Some(&f) = forced.get(step) {
            logits[f as usize] += 1e4;
        }
        c.mask(&mut logits);
        let ok = allowed(&logits);
        assert!(!ok.is_empty(), "mask left nothing after {:?}", text_of(&ids));
        let mut token = *ok.iter().max_by(|&&a, &&b| logits[a as usize].total_cmp(&logits[b as usize])).unwrap();
        if step < forced.len() {
            assert_eq!(token, forced[step], "forced token masked after {:?}", text_of(&ids));
        } else if !plan.is_empty() && c.allows(plan[0]) {
            token = plan.remove(0);
        } else if rng.next_f64() < 0.1 + 0.9 * step as f64 / budget as f64 {
            plan.clear();
            if c.allows(eos) {
                token = eos;
            } else if let Some(seq) = closers().iter().find(|s| fits(c, s)) {
                token = seq[0];
                plan = seq[1..].to_vec();
            }
        }
        assert_eq!(c.allows(token), logits[token as usize].is_finite());
        c.advance(token);
        ids.push(token);
        if token == eos {
            return Run { ids, finished: true };
        }
    }
    Run { ids, finished: false }
}

/// The completion parses cleanly, with calls that name given tools and (strict tools) have
/// valid arguments. Returns the parsed message.
fn check(text: &str, mode: ThinkingMode, tools: &[StrictTool]) -> dsv4_engine::chat::ParsedMessage {
    let m = parse_completion(text, mode);
    assert!(!m.malformed, "malformed: {text:?}");
    assert!(m.eos);
    for call in &m.tool_calls {
        let tool = tools.iter().find(|t| t.name == call.function.name).unwrap_or_else(|| panic!("unknown tool in {text:?}"));
        let args: Value = serde_json::from_str(&call.function.arguments).unwrap();
        assert!(args.is_object());
        if tool.strict {
            let schema = tool.schema.as_ref().unwrap();
            validate(&args, schema).unwrap_or_else(|e| panic!("{e}: {text:?}"));
            let props = schema["properties"].as_object().unwrap();
            assert!(args.as_object().unwrap().keys().all(|k| props.contains_key(k)), "{text:?}");
        }
    }
    m
}

fn opening() -> Vec<u32> {
    tokenizer().encode(&format!("\n\n<{DSML}tool_calls>\n"))
}

fn run_many(label: &str, seed: u64, runs: usize, thinking: bool, required: Option<Option<&str>>) {
    let t = tokenizer();
    let vocab = t.token_bytes_table();
    let mut rng = Rng::new(seed);
    let mut finished = 0;
    let mut calls = std::collections::BTreeMap::<String, usize>::new();
    let t0 = Instant::now();
    let (reasoning, content) = ("Let me think about the \"weather\".", "Let me check.");
    for run in 0..runs {
        let mut c = StrictToolCalls::new(Arc::clone(&vocab), t.eos_id(), thinking.then(think_end), tools());
        if let Some(name) = required {
            c = c.with_required_call(name);
        }
        let mut prefix = Vec::new();
        if thinking {
            prefix.extend(t.encode(reasoning));
            prefix.push(think_end());
        }
        if required.is_none() {
            prefix.extend(t.encode(content));
            prefix.extend(opening());
        }
        let r = generate(&mut c, &mut rng, &prefix, 400);
        let text = text_of(&r.ids);
        if !r.finished {
            println!("{label} run {run}: not finished: {text:?}");
            continue;
        }
        finished += 1;
        let mode = if thinking { ThinkingMode::Thinking } else { ThinkingMode::Chat };
        let m = check(&text, mode, &tools());
        assert!(!m.tool_calls.is_empty(), "{text:?}");
        for call in &m.tool_calls {
            *calls.entry(call.function.name.clone()).or_default() += 1;
        }
        if thinking {
            assert_eq!(m.reasoning_content.as_deref(), Some(reasoning));
        }
        assert_eq!(m.content, if required.is_none() { content } else { "" });
        if let Some(Some(name)) = required {
            assert_eq!(m.tool_calls[0].function.name, name);
        }
        if run < 3 {
            println!("{label} run {run}: {text}");
        }
    }
    println!("{label}: {finished}/{runs} finished, calls {calls:?}, {:.1} s", t0.elapsed().as_secs_f64());
    if required != Some(Some("book")) {
        assert!(calls.contains_key("get_weather") && calls.contains_key("book"), "{label}: strict tools were called");
    }
    assert!(finished * 10 >= runs * 9, "{label}: only {finished}/{runs} finished");
}

#[test]
fn random_sampler_chat() {
    run_many("chat", 1, 30, false, None);
}

#[test]
fn random_sampler_thinking() {
    run_many("thinking", 2, 20, true, None);
}

#[test]
fn random_sampler_required_call() {
    run_many("required", 3, 20, false, Some(None));
    run_many("required book, thinking", 4, 20, true, Some(Some("book")));
}

#[test]
fn free_text_stays_free_and_only_eos_after_the_block() {
    let t = tokenizer();
    let n = t.vocab_size();
    let mut c = StrictToolCalls::new(t.token_bytes_table(), t.eos_id(), None, tools());
    let mut logits = vec![0.5f32; n];
    c.mask(&mut logits);
    assert_eq!(allowed(&logits).len(), n, "free text: nothing masked");
    for id in t.encode("Hello <｜DSML｜tool_calls> \n\n<｜DSML｜tool_callz and \"json\" {") {
        logits.fill(0.5);
        c.mask(&mut logits);
        assert!(logits[id as usize].is_finite());
        c.advance(id);
    }
    assert!(!c.in_block());
    // Partly through the marker: only tokens that would complete it wrongly are refused.
    for id in t.encode("\n\n<｜DSML｜tool_call") {
        c.advance(id);
    }
    logits.fill(0.5);
    c.mask(&mut logits);
    let refused = n - allowed(&logits).len();
    println!("after a partial marker: {refused} tokens refused");
    assert!(refused > 0 && refused < 5000, "{refused}");
    assert!(logits[t.eos_id() as usize].is_finite());
    let s = t.encode("s")[0];
    assert!(logits[s as usize].is_finite());
    // A whole block, then only EOS.
    let block = format!("s>\n<{DSML}invoke name=\"search\">\n\n</{DSML}invoke>\n</{DSML}tool_calls>");
    for id in t.encode(&block) {
        assert!(c.allows(id), "{:?}", t.decode(&[id]));
        c.advance(id);
    }
    assert!(c.in_block() && c.is_done());
    logits.fill(0.5);
    c.mask(&mut logits);
    assert_eq!(allowed(&logits), vec![t.eos_id()]);
}

#[test]
fn thinking_mode_waits_for_think_end() {
    let t = tokenizer();
    let n = t.vocab_size();
    let eos = t.eos_id();
    let mut c = StrictToolCalls::new(t.token_bytes_table(), eos, Some(think_end()), tools());
    for id in t.encode("Reasoning with \n\n<｜DSML｜tool_calls>\n<｜DSML｜invoke name=\"nope\">") {
        let mut logits = vec![0.5f32; n];
        c.mask(&mut logits);
        assert!(logits.iter().enumerate().all(|(i, &x)| if i == eos as usize { x == f32::NEG_INFINITY } else { x == 0.5 }));
        c.advance(id);
    }
    assert!(!c.in_block());
    c.advance(think_end());
    let mut logits = vec![0.5f32; n];
    c.mask(&mut logits);
    assert_eq!(allowed(&logits).len(), n, "free content after </think>, EOS included");
}

/// The completions of the official encoder's test vectors (thinking mode, real tool schemas,
/// taken as strict) go through token by token.
#[test]
fn real_encoded_tool_calls_are_allowed() {
    let t = tokenizer();
    for case in [1, 3] {
        let input: Value = serde_json::from_str(&std::fs::read_to_string(format!("{ENCODING}/test_input_{case}.json")).unwrap()).unwrap();
        let output = std::fs::read_to_string(format!("{ENCODING}/test_output_{case}.txt")).unwrap();
        // Case 1 lists the tools at the top, case 3 on a message.
        let listed = match &input {
            Value::Array(msgs) => msgs.iter().find_map(|m| m.get("tools")).unwrap(),
            _ => &input["tools"],
        };
        let tools: Vec<StrictTool> = listed
            .as_array()
            .unwrap()
            .iter()
            .map(|f| StrictTool { name: f["function"]["name"].as_str().unwrap().into(), strict: true, schema: Some(f["function"]["parameters"].clone()) })
            .collect();
        // The first assistant turn with a tool call: from after `<think>` through its EOS.
        let start = output.find("<｜Assistant｜><think>").unwrap() + "<｜Assistant｜><think>".len();
        let block = start + output[start..].find(&format!("<{DSML}tool_calls>")).unwrap();
        let end = block + output[block..].find(EOS).unwrap() + EOS.len();
        let completion = &output[start..end];
        let mut c = StrictToolCalls::new(t.token_bytes_table(), t.eos_id(), Some(think_end()), tools.clone());
        let mut logits = vec![0.0f32; t.vocab_size()];
        for id in t.encode(completion) {
            logits.fill(0.0);
            c.mask(&mut logits);
            assert!(logits[id as usize].is_finite(), "case {case}: {:?} masked", t.decode(&[id]));
            c.advance(id);
        }
        assert!(c.is_ended() && c.in_block());
        let m = check(completion, ThinkingMode::Thinking, &tools);
        assert_eq!(m.tool_calls.len(), 1);
        println!("case {case}: {} {}", m.tool_calls[0].function.name, m.tool_calls[0].function.arguments);
        // The same call with a misspelt parameter name is refused.
        let bad = completion.replacen("name=\"", "name=\"x", 2);
        let mut c = StrictToolCalls::new(t.token_bytes_table(), t.eos_id(), Some(think_end()), tools);
        let ids = t.encode(&bad);
        assert!(!ids.iter().all(|&id| {
            let ok = c.allows(id);
            c.advance(id);
            ok
        }));
    }
}

#[test]
fn special_tokens_never_inside_values() {
    // Many random runs: no special token other than `｜DSML｜` (markup) and EOS in a block.
    let t = tokenizer();
    let vocab = t.token_bytes_table();
    let dsml = t.token_id(DSML).unwrap();
    let mut rng = Rng::new(9);
    for _ in 0..10 {
        let mut c = StrictToolCalls::new(Arc::clone(&vocab), t.eos_id(), None, tools()).with_required_call(None);
        let r = generate(&mut c, &mut rng, &[], 300);
        for &id in &r.ids {
            if looks_special(&vocab[id as usize]) {
                assert!(id == dsml || id == t.eos_id(), "special token {:?} in {:?}", t.decode(&[id]), text_of(&r.ids));
            }
        }
    }
}

/// Time of the first `mask` in this state (a fresh clone) and the median of the next ones; the
/// mask must agree with `allows` on every token.
fn time_mask(c: &StrictToolCalls, label: &str) -> f64 {
    let t = tokenizer();
    let mut logits = vec![0.0f32; t.vocab_size()];
    let mut c = c.clone();
    let t0 = Instant::now();
    c.mask(&mut logits);
    let cold = t0.elapsed().as_secs_f64() * 1e3;
    for id in 0..logits.len() as u32 {
        assert_eq!(logits[id as usize].is_finite(), c.allows(id), "{label}: token {id} {:?}", t.decode(&[id]));
    }
    let mut times: Vec<f64> = (0..9)
        .map(|_| {
            logits.fill(0.0);
            let t0 = Instant::now();
            c.mask(&mut logits);
            t0.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    times.sort_by(f64::total_cmp);
    let n = allowed(&logits).len();
    println!("mask {label:<34} {:>6.3} ms (first {cold:>6.3} ms) {n:>6} allowed", times[4]);
    assert!(n > 0);
    times[4].max(cold)
}

#[test]
fn mask_time_on_the_real_vocab() {
    let t = tokenizer();
    let vocab = t.token_bytes_table();
    let t0 = Instant::now();
    StrictToolCalls::prepare_vocab(&vocab);
    println!("vocab tables: {:.1} ms", t0.elapsed().as_secs_f64() * 1e3);
    let t0 = Instant::now();
    let base = StrictToolCalls::new(Arc::clone(&vocab), t.eos_id(), None, tools());
    println!("new constraint: {:.3} ms", t0.elapsed().as_secs_f64() * 1e3);
    let head = format!("Sure.\n\n<{DSML}tool_calls>\n<{DSML}invoke name=\"");
    let w = format!("{head}get_weather\">\n<{DSML}parameter name=\"");
    let b = format!("{head}book\">\n<{DSML}parameter name=\"");
    let s = format!("{head}search\">\n<{DSML}parameter name=\"");
    let mut worst: f64 = 0.0;
    for (label, prefix) in [
        ("free text", "Hello".to_string()),
        ("partial marker", "Hello\n\n<｜DSML｜tool_call".to_string()),
        ("tool name", head.clone()),
        ("strict param name", w.clone()),
        ("raw string value", format!("{w}city\" string=\"true\">New Yo")),
        ("raw value after '<'", format!("{w}city\" string=\"true\">New <")),
        ("enum value", format!("{w}unit\" string=\"true\">cel")),
        ("integer value", format!("{w}days\" string=\"false\">1")),
        ("after a parameter", format!("{w}days\" string=\"false\">1</{DSML}parameter>\n")),
        ("JSON string in array of objects", format!("{b}guests\" string=\"false\">[{{\"name\": \"Bo")),
        ("JSON object key", format!("{b}guests\" string=\"false\">[{{")),
        ("non-strict param name", format!("{s}qu")),
        ("non-strict JSON value", format!("{s}q\" string=\"false\">{{\"a\": [\"x")),
        ("JSON string after '<'", format!("{s}q\" string=\"false\">[\"x<")),
        ("JSON number, then '<'?", format!("{s}q\" string=\"false\">[1]")),
        ("raw value mid-char (+ byte E4)", format!("{s}q\" string=\"true\">ab")),
        ("done", format!("{s}q\" string=\"true\">x</{DSML}parameter>\n</{DSML}invoke>\n</{DSML}tool_calls>")),
    ] {
        let mut c = base.clone();
        for id in t.encode(&prefix) {
            assert!(c.allows(id), "{label}: {:?} refused", t.decode(&[id]));
            c.advance(id);
        }
        if label.contains("mid-char") {
            let e4 = vocab.iter().position(|b| **b == [0xE4]).unwrap() as u32;
            assert!(c.allows(e4));
            c.advance(e4);
        }
        worst = worst.max(time_mask(&c, label));
    }
    println!("slowest mask: {worst:.2} ms");
}
