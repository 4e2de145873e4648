//! `POST /anthropic/v1/messages` against a real server on 127.0.0.1 with the tiny model: the
//! message shape, usage, the streamed event sequence, thinking blocks, tool use (forced through
//! the `dsv4_forced_output` test hook), tool results, stop sequences, errors in Anthropic's
//! shape, and the `x-api-key` check.

use std::sync::{Arc, OnceLock};

use dsv4_engine::backend::cpu::CpuBackend;
use dsv4_engine::engine::{Engine, EngineConfig};
use dsv4_engine::server::{serve, AppState, ServerConfig};
use dsv4_engine::service::EngineService;
use dsv4_engine::tokenizer::Tokenizer;
use serde_json::{json, Value};

/// Start a server on its own thread and runtime (shared by the tests); returns its base URL.
fn start_server(api_key: Option<&str>) -> String {
    let api_key = api_key.map(str::to_string);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let dir = tempfile::tempdir().unwrap();
        dsv4_engine::tiny::write_tiny_model(dir.path()).unwrap();
        let model = dsv4_reference::Model::load(dir.path()).unwrap();
        let tokenizer = Tokenizer::from_file(dir.path().join("tokenizer.json")).unwrap();
        let engine = Engine::new(CpuBackend::new(model), EngineConfig::default());
        let service = EngineService::spawn(engine);
        let cfg = ServerConfig { test_hooks: true, api_key, ..Default::default() };
        let state = Arc::new(AppState { service, tokenizer, metrics: Default::default(), cfg });
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(format!("http://{}", listener.local_addr().unwrap())).unwrap();
            serve(state, listener, std::future::pending()).await.unwrap();
        });
        drop(dir);
    });
    rx.recv().unwrap()
}

fn server() -> &'static str {
    static S: OnceLock<String> = OnceLock::new();
    S.get_or_init(|| start_server(None))
}

fn keyed_server() -> &'static str {
    static S: OnceLock<String> = OnceLock::new();
    S.get_or_init(|| start_server(Some("k")))
}

async fn post_raw(base: &str, body: String, headers: &[(&str, &str)]) -> (u16, String) {
    let mut req = reqwest::Client::new().post(format!("{base}/anthropic/v1/messages")).header("content-type", "application/json").header("anthropic-version", "2023-06-01").body(body);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.text().await.unwrap())
}

async fn post(body: Value) -> (u16, Value) {
    let (status, text) = post_raw(server(), body.to_string(), &[]).await;
    (status, serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}")))
}

/// An SSE body as (event name, data) pairs.
fn parse_sse(text: &str) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for chunk in text.split("\n\n").filter(|c| !c.trim().is_empty()) {
        let (mut name, mut data) = (None, String::new());
        for line in chunk.lines() {
            if let Some(n) = line.strip_prefix("event:") {
                name = Some(n.trim().to_string());
            } else if let Some(d) = line.strip_prefix("data:") {
                data += d.strip_prefix(' ').unwrap_or(d);
            }
        }
        if let Some(name) = name {
            let v: Value = serde_json::from_str(&data).unwrap_or_else(|e| panic!("bad data ({e}): {data}"));
            assert_eq!(v["type"], json!(name), "the data's type is the event's name: {chunk}");
            out.push((name, v));
        }
    }
    out
}

async fn post_stream(body: Value) -> Vec<(String, Value)> {
    let mut body = body;
    body["stream"] = json!(true);
    let resp = reqwest::Client::new().post(format!("{}/anthropic/v1/messages", server())).json(&body).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert!(resp.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"));
    parse_sse(&resp.text().await.unwrap())
}

fn assert_anthropic_error(status: u16, body: &Value, want_status: u16, want_type: &str) {
    assert_eq!(status, want_status, "{body}");
    assert_eq!(body["type"], "error", "{body}");
    assert_eq!(body["error"]["type"], want_type, "{body}");
    assert!(body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
}

const TOOL_CALL: &str = "\n\n<｜DSML｜tool_calls>\n<｜DSML｜invoke name=\"get_weather\">\n<｜DSML｜parameter name=\"city\" string=\"true\">Paris</｜DSML｜parameter>\n</｜DSML｜invoke>\n</｜DSML｜tool_calls>";

fn weather_tool() -> Value {
    json!({"name": "get_weather", "description": "The weather in a city.", "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}})
}

/// Checks the stream's grammar: message_start, then blocks (start, deltas, stop; indexes from
/// 0, never interleaved), then message_delta and message_stop; pings anywhere after the start.
/// Returns the non-ping events.
fn check_stream(events: &[(String, Value)]) -> Vec<(String, Value)> {
    let evs: Vec<(String, Value)> = events.iter().filter(|(n, _)| n != "ping").cloned().collect();
    assert_eq!(events[0].0, "message_start");
    assert_eq!(evs.first().unwrap().0, "message_start");
    assert_eq!(evs[evs.len() - 2].0, "message_delta");
    assert_eq!(evs.last().unwrap().0, "message_stop");
    let (mut open, mut next) = (None::<u64>, 0u64);
    for (name, v) in &evs[1..evs.len() - 2] {
        let index = v["index"].as_u64().unwrap();
        match name.as_str() {
            "content_block_start" => {
                assert_eq!(open, None, "a block opened while another is open");
                assert_eq!(index, next);
                open = Some(index);
            }
            "content_block_delta" => assert_eq!(open, Some(index)),
            "content_block_stop" => {
                assert_eq!(open, Some(index));
                open = None;
                next += 1;
            }
            other => panic!("unexpected event {other}"),
        }
    }
    assert_eq!(open, None);
    evs
}

/// The blocks a stream built: (type, accumulated text or JSON).
fn stream_blocks(evs: &[(String, Value)]) -> Vec<(String, String)> {
    let mut blocks: Vec<(String, String)> = Vec::new();
    for (name, v) in evs {
        match name.as_str() {
            "content_block_start" => blocks.push((v["content_block"]["type"].as_str().unwrap().to_string(), String::new())),
            "content_block_delta" => {
                let d = &v["delta"];
                let (kind, field) = match d["type"].as_str().unwrap() {
                    "thinking_delta" => ("thinking", "thinking"),
                    "text_delta" => ("text", "text"),
                    "input_json_delta" => ("tool_use", "partial_json"),
                    other => panic!("unexpected delta {other}"),
                };
                let last = blocks.last_mut().unwrap();
                assert_eq!(last.0, kind);
                last.1 += d[field].as_str().unwrap();
            }
            _ => {}
        }
    }
    blocks
}

#[tokio::test]
async fn text_reply_has_the_message_shape_and_usage() {
    let (status, v) = post(json!({
        "model": "deepseek-chat", "max_tokens": 64, "system": "Be brief.",
        "messages": [{"role": "user", "content": "Say hello."}],
        "metadata": {"user_id": "u1"}, "dsv4_forced_output": "Hello there!",
    }))
    .await;
    assert_eq!(status, 200, "{v}");
    assert!(v["id"].as_str().unwrap().starts_with("msg_"));
    assert_eq!(v["type"], "message");
    assert_eq!(v["role"], "assistant");
    assert_eq!(v["model"], "deepseek-chat");
    assert_eq!(v["content"], json!([{"type": "text", "text": "Hello there!"}]));
    assert_eq!(v["stop_reason"], "end_turn");
    assert_eq!(v["stop_sequence"], Value::Null);
    let u = &v["usage"];
    // One token per byte in the tiny tokenizer, plus the end of sentence.
    let out = u["output_tokens"].as_u64().unwrap();
    assert!((12..=13).contains(&out), "{u}");
    let input = u["input_tokens"].as_u64().unwrap() + u["cache_read_input_tokens"].as_u64().unwrap();
    assert!(input > "Be brief.Say hello.".len() as u64, "{u}");
    assert_eq!(u["cache_creation_input_tokens"], 0);

    // The same prompt again: the prefix cache serves part of it, and the split adds up.
    let (status, v2) = post(json!({
        "model": "deepseek-chat", "max_tokens": 64, "system": [{"type": "text", "text": "Be brief."}],
        "messages": [{"role": "user", "content": [{"type": "text", "text": "Say hello."}]}],
        "dsv4_forced_output": "Hello there!",
    }))
    .await;
    assert_eq!(status, 200, "{v2}");
    let u2 = &v2["usage"];
    assert_eq!(u2["input_tokens"].as_u64().unwrap() + u2["cache_read_input_tokens"].as_u64().unwrap(), input, "{u2}");
}

#[tokio::test]
async fn sampled_reply_stops_at_max_tokens_or_end_turn() {
    let (status, v) = post(json!({
        "model": "deepseek-v4-flash", "max_tokens": 5, "temperature": 0.0, "top_p": 0.9, "top_k": 20,
        "thinking": {"type": "disabled"},
        "messages": [{"role": "user", "content": "Hi"}],
    }))
    .await;
    assert_eq!(status, 200, "{v}");
    assert!(["max_tokens", "end_turn"].contains(&v["stop_reason"].as_str().unwrap()), "{v}");
    assert!(v["usage"]["output_tokens"].as_u64().unwrap() <= 5);
    for b in v["content"].as_array().unwrap() {
        assert_eq!(b["type"], "text", "{v}");
    }

    // A forced output longer than max_tokens is cut: stop_reason max_tokens.
    let (status, v) = post(json!({
        "model": "deepseek-chat", "max_tokens": 3,
        "messages": [{"role": "user", "content": "Hi"}], "dsv4_forced_output": "Hello there!",
    }))
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["content"], json!([{"type": "text", "text": "Hel"}]));
    assert_eq!(v["stop_reason"], "max_tokens");
    assert_eq!(v["usage"]["output_tokens"], 3);
}

#[tokio::test]
async fn thinking_on_gives_a_thinking_block_first_and_off_gives_none() {
    let msgs = json!([{"role": "user", "content": "2+2?"}]);
    // deepseek-v4-flash thinks by default.
    let (status, v) = post(json!({"model": "deepseek-v4-flash", "max_tokens": 64, "messages": msgs, "dsv4_forced_output": "Add them.</think>4"})).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["content"], json!([{"type": "thinking", "thinking": "Add them.", "signature": ""}, {"type": "text", "text": "4"}]));
    assert_eq!(v["stop_reason"], "end_turn");

    let (status, v) = post(json!({"model": "deepseek-chat", "max_tokens": 64, "thinking": {"type": "enabled", "budget_tokens": 1024}, "messages": msgs, "dsv4_forced_output": "Hmm.</think>4"})).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["content"], json!([{"type": "thinking", "thinking": "Hmm.", "signature": ""}, {"type": "text", "text": "4"}]));

    let (status, v) = post(json!({"model": "deepseek-v4-flash", "max_tokens": 64, "thinking": {"type": "disabled"}, "messages": msgs, "dsv4_forced_output": "4"})).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["content"], json!([{"type": "text", "text": "4"}]));
}

#[tokio::test]
async fn stream_events_come_in_anthropics_order() {
    let events = post_stream(json!({
        "model": "deepseek-v4-flash", "max_tokens": 64,
        "messages": [{"role": "user", "content": "2+2?"}], "dsv4_forced_output": "Add them up.</think>It is 4.",
    }))
    .await;
    let evs = check_stream(&events);
    let start = &evs[0].1["message"];
    assert!(start["id"].as_str().unwrap().starts_with("msg_"));
    assert_eq!(start["type"], "message");
    assert_eq!(start["role"], "assistant");
    assert_eq!(start["model"], "deepseek-v4-flash");
    assert_eq!(start["content"], json!([]));
    assert_eq!(start["stop_reason"], Value::Null);
    assert_eq!(start["stop_sequence"], Value::Null);
    assert_eq!(start["usage"]["output_tokens"], 0);
    assert!(start["usage"]["input_tokens"].as_u64().unwrap() > 0);

    assert_eq!(evs[1].0, "content_block_start");
    assert_eq!(evs[1].1["content_block"], json!({"type": "thinking", "thinking": "", "signature": ""}));
    assert_eq!(stream_blocks(&evs), vec![("thinking".to_string(), "Add them up.".to_string()), ("text".to_string(), "It is 4.".to_string())]);
    let text_start = evs.iter().find(|(n, v)| n == "content_block_start" && v["index"] == 1).unwrap();
    assert_eq!(text_start.1["content_block"], json!({"type": "text", "text": ""}));

    let delta = &evs[evs.len() - 2].1;
    assert_eq!(delta["delta"], json!({"stop_reason": "end_turn", "stop_sequence": null}));
    let out = delta["usage"]["output_tokens"].as_u64().unwrap();
    assert!(out >= "Add them up.".len() as u64 + 1 + "It is 4.".len() as u64, "{delta}");

    // Thinking off: one text block.
    let events = post_stream(json!({
        "model": "deepseek-chat", "max_tokens": 64,
        "messages": [{"role": "user", "content": "2+2?"}], "dsv4_forced_output": "It is 4.",
    }))
    .await;
    let evs = check_stream(&events);
    assert_eq!(stream_blocks(&evs), vec![("text".to_string(), "It is 4.".to_string())]);
}

#[tokio::test]
async fn a_tool_call_is_a_tool_use_block() {
    let body = json!({
        "model": "deepseek-v4-flash", "max_tokens": 200, "thinking": {"type": "disabled"},
        "tools": [weather_tool()], "tool_choice": {"type": "auto"},
        "messages": [{"role": "user", "content": "Weather in Paris?"}], "dsv4_forced_output": TOOL_CALL,
    });
    let (status, v) = post(body.clone()).await;
    assert_eq!(status, 200, "{v}");
    let content = v["content"].as_array().unwrap();
    assert_eq!(content.len(), 1, "{v}");
    assert_eq!(content[0]["type"], "tool_use");
    assert!(content[0]["id"].as_str().unwrap().starts_with("toolu_"));
    assert_eq!(content[0]["name"], "get_weather");
    assert_eq!(content[0]["input"], json!({"city": "Paris"}));
    assert_eq!(v["stop_reason"], "tool_use");

    let evs = check_stream(&post_stream(body).await);
    let start = evs.iter().find(|(n, _)| n == "content_block_start").unwrap();
    assert_eq!(start.1["content_block"]["type"], "tool_use");
    assert_eq!(start.1["content_block"]["name"], "get_weather");
    assert_eq!(start.1["content_block"]["input"], json!({}));
    assert!(start.1["content_block"]["id"].as_str().unwrap().starts_with("toolu_"));
    let blocks = stream_blocks(&evs);
    assert_eq!(blocks.len(), 1);
    assert_eq!(serde_json::from_str::<Value>(&blocks[0].1).unwrap(), json!({"city": "Paris"}));
    assert_eq!(evs[evs.len() - 2].1["delta"]["stop_reason"], "tool_use");

    // Thinking and text before the call: three blocks in order.
    let forced = format!("Check it.</think>Let me look.{TOOL_CALL}");
    let (status, v) = post(json!({
        "model": "deepseek-v4-flash", "max_tokens": 300, "tools": [weather_tool()], "tool_choice": {"type": "any"},
        "messages": [{"role": "user", "content": "Weather in Paris?"}], "dsv4_forced_output": forced,
    }))
    .await;
    assert_eq!(status, 200, "{v}");
    let kinds: Vec<&str> = v["content"].as_array().unwrap().iter().map(|b| b["type"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["thinking", "text", "tool_use"], "{v}");
    assert_eq!(v["content"][1]["text"], "Let me look.");
    assert_eq!(v["stop_reason"], "tool_use");
}

#[tokio::test]
async fn tool_results_round_trip() {
    let (status, v) = post(json!({
        "model": "deepseek-v4-flash", "max_tokens": 64,
        "tools": [weather_tool()], "tool_choice": {"type": "tool", "name": "get_weather"},
        "messages": [
            {"role": "user", "content": "Weather in Paris and Rome?"},
            {"role": "assistant", "content": [
                {"type": "thinking", "thinking": "Two calls.", "signature": "sig"},
                {"type": "text", "text": "Checking."},
                {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}},
                {"type": "tool_use", "id": "toolu_2", "name": "get_weather", "input": {"city": "Rome"}},
            ]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_2", "content": [{"type": "text", "text": "rain"}]},
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "sunny"},
                {"type": "text", "text": "Thanks."},
            ]},
            {"role": "assistant", "content": [
                {"type": "redacted_thinking", "data": "xyz"},
                {"type": "text", "text": "Paris is sunny. Again for Rome:"},
                {"type": "tool_use", "id": "toolu_3", "name": "get_weather", "input": {"city": "Rome"}},
            ]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_3", "content": "timeout", "is_error": true}, {"type": "text", "text": "And now?"}]},
        ],
        "dsv4_forced_output": "Done.</think>Rome has rain.",
    }))
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["content"].as_array().unwrap().last().unwrap(), &json!({"type": "text", "text": "Rome has rain."}));

    // A tool_result with no tool_use before it: the error names the request's block.
    let (status, v) = post(json!({
        "model": "deepseek-chat", "max_tokens": 8,
        "messages": [
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello."},
            {"role": "user", "content": [{"type": "text", "text": "x"}, {"type": "tool_result", "tool_use_id": "toolu_9", "content": "?"}]},
        ],
    }))
    .await;
    assert_anthropic_error(status, &v, 400, "invalid_request_error");
    assert!(v["error"]["message"].as_str().unwrap().starts_with("messages[2].content[1]"), "{v}");
}

#[tokio::test]
async fn a_prefill_is_continued() {
    let (status, v) = post(json!({
        "model": "deepseek-v4-flash", "max_tokens": 16,
        "messages": [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "The answer is"}],
        "dsv4_forced_output": " 4.",
    }))
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["content"], json!([{"type": "text", "text": " 4."}]));

    // Prefill text with thinking explicitly on is refused, as Anthropic does.
    let (status, v) = post(json!({
        "model": "deepseek-v4-flash", "max_tokens": 16, "thinking": {"type": "enabled", "budget_tokens": 1024},
        "messages": [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "The answer is"}],
    }))
    .await;
    assert_anthropic_error(status, &v, 400, "invalid_request_error");
}

#[tokio::test]
async fn a_stop_sequence_is_reported() {
    let body = json!({
        "model": "deepseek-v4-flash", "max_tokens": 64, "stop_sequences": ["never", "STOP"],
        "messages": [{"role": "user", "content": "Count."}], "dsv4_forced_output": "One STOP here.</think>one two STOP three",
    });
    let (status, v) = post(body.clone()).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["content"][1], json!({"type": "text", "text": "one two "}));
    assert_eq!(v["stop_reason"], "stop_sequence");
    assert_eq!(v["stop_sequence"], "STOP");

    let evs = check_stream(&post_stream(body).await);
    assert_eq!(evs[evs.len() - 2].1["delta"], json!({"stop_reason": "stop_sequence", "stop_sequence": "STOP"}));
    assert_eq!(stream_blocks(&evs)[1].1, "one two ");

    // Stop sequences that do not occur: end_turn.
    let (status, v) = post(json!({
        "model": "deepseek-chat", "max_tokens": 64, "stop_sequences": ["never"],
        "messages": [{"role": "user", "content": "Count."}], "dsv4_forced_output": "one two",
    }))
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["stop_reason"], "end_turn");
    assert_eq!(v["stop_sequence"], Value::Null);
}

#[tokio::test]
async fn bad_requests_get_anthropic_errors() {
    let msgs = json!([{"role": "user", "content": "Hi"}]);
    let cases: Vec<(Value, u16, &str)> = vec![
        (json!({"model": "deepseek-chat", "messages": msgs}), 400, "invalid_request_error"),
        (json!({"model": "deepseek-chat", "max_tokens": 0, "messages": msgs}), 400, "invalid_request_error"),
        (json!({"model": "deepseek-chat", "max_tokens": -1, "messages": msgs}), 400, "invalid_request_error"),
        (json!({"model": "deepseek-chat", "max_tokens": 8, "temperature": 1.5, "messages": msgs}), 400, "invalid_request_error"),
        (json!({"model": "deepseek-chat", "max_tokens": 8, "temperature": "hot", "messages": msgs}), 400, "invalid_request_error"),
        (json!({"model": "claude-nonesuch", "max_tokens": 8, "messages": msgs}), 404, "not_found_error"),
        (json!({"model": "deepseek-chat", "max_tokens": 8, "messages": []}), 400, "invalid_request_error"),
        (json!({"model": "deepseek-chat", "max_tokens": 8, "messages": [{"role": "system", "content": "x"}]}), 400, "invalid_request_error"),
        (
            json!({"model": "deepseek-chat", "max_tokens": 8, "messages": [{"role": "user", "content": [
                {"type": "text", "text": "What is this?"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
            ]}]}),
            400,
            "invalid_request_error",
        ),
        (json!({"model": "deepseek-chat", "max_tokens": 8, "messages": [{"role": "user", "content": [{"type": "text"}]}]}), 400, "invalid_request_error"),
        (json!({"model": "deepseek-chat", "max_tokens": 8, "messages": [{"role": "user", "content": [{"type": "tool_use", "id": "t", "name": "f", "input": {}}]}]}), 400, "invalid_request_error"),
        (json!({"model": "deepseek-chat", "max_tokens": 8, "tools": [{"name": "bad name!", "input_schema": {"type": "object"}}], "messages": msgs}), 400, "invalid_request_error"),
        (json!({"model": "deepseek-chat", "max_tokens": 8, "tools": [weather_tool()], "tool_choice": {"type": "tool", "name": "other"}, "messages": msgs}), 400, "invalid_request_error"),
        (json!({"model": "deepseek-chat", "max_tokens": 8, "thinking": {"type": "sometimes"}, "messages": msgs}), 400, "invalid_request_error"),
        (json!({"model": "deepseek-chat", "max_tokens": 8, "tool_choice": {"type": "any"}, "messages": msgs}), 400, "invalid_request_error"),
        (json!({"model": "deepseek-chat", "max_tokens": 8, "tools": [{"name": "f"}], "messages": msgs}), 400, "invalid_request_error"),
        (json!({"model": "deepseek-chat", "max_tokens": 8, "tools": [{"type": "web_search_20250305", "name": "web_search"}], "messages": msgs}), 400, "invalid_request_error"),
        (json!({"model": "deepseek-chat", "max_tokens": 8, "system": [{"type": "image", "source": {}}], "messages": msgs}), 400, "invalid_request_error"),
        (json!({"model": "deepseek-chat", "max_tokens": 8, "messages": [{"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": [{"type": "image", "source": {}}]}]}]}), 400, "invalid_request_error"),
    ];
    for (body, want_status, want_type) in cases {
        let (status, v) = post(body.clone()).await;
        assert_anthropic_error(status, &v, want_status, want_type);
        eprintln!("{body} -> {status} {v}");
    }

    // Malformed JSON.
    let (status, text) = post_raw(server(), "{\"model\": ".into(), &[]).await;
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_anthropic_error(status, &v, 400, "invalid_request_error");

    // The image error names the block.
    let (_, v) = post(json!({"model": "deepseek-chat", "max_tokens": 8, "messages": [{"role": "user", "content": [{"type": "image", "source": {}}]}]})).await;
    assert!(v["error"]["message"].as_str().unwrap().contains("messages[0].content[0]"), "{v}");
}

#[tokio::test]
async fn x_api_key_is_checked() {
    let body = json!({"model": "deepseek-chat", "max_tokens": 8, "messages": [{"role": "user", "content": "Hi"}], "dsv4_forced_output": "Hi!"}).to_string();
    let (status, text) = post_raw(keyed_server(), body.clone(), &[]).await;
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_anthropic_error(status, &v, 401, "authentication_error");

    let (status, text) = post_raw(keyed_server(), body.clone(), &[("x-api-key", "wrong")]).await;
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_anthropic_error(status, &v, 401, "authentication_error");

    let (status, text) = post_raw(keyed_server(), body.clone(), &[("x-api-key", "k")]).await;
    assert_eq!(status, 200, "{text}");
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["content"], json!([{"type": "text", "text": "Hi!"}]));

    let (status, text) = post_raw(keyed_server(), body, &[("authorization", "Bearer k")]).await;
    assert_eq!(status, 200, "{text}");
}
