//! The OpenAI-compatible routes against a real server on 127.0.0.1 with the tiny model.

use std::sync::Arc;
use std::time::Duration;

use dsv4_engine::backend::cpu::CpuBackend;
use dsv4_engine::engine::{Engine, EngineConfig};
use dsv4_engine::server::{serve, AppState, ServerConfig};
use dsv4_engine::service::EngineService;
use dsv4_engine::tokenizer::Tokenizer;
use serde_json::{json, Value};

struct Server {
    base: String,
    state: Arc<AppState>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    _dir: tempfile::TempDir,
}

async fn start(cfg: ServerConfig, ecfg: EngineConfig) -> Server {
    let dir = tempfile::tempdir().unwrap();
    dsv4_engine::tiny::write_tiny_model(dir.path()).unwrap();
    let model = dsv4_reference::Model::load(dir.path()).unwrap();
    let tokenizer = Tokenizer::from_file(dir.path().join("tokenizer.json")).unwrap();
    let service = EngineService::spawn(Engine::new(CpuBackend::new(model), ecfg));
    let state = Arc::new(AppState { service, tokenizer, metrics: Default::default(), cfg });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(serve(state.clone(), listener, async move {
        let _ = rx.await;
    }));
    Server { base, state, stop: Some(tx), task, _dir: dir }
}

fn hooks() -> ServerConfig {
    ServerConfig { test_hooks: true, served_name: "tiny".into(), ..ServerConfig::default() }
}

fn client() -> reqwest::Client {
    reqwest::Client::new()
}

async fn post(s: &Server, path: &str, body: Value) -> (u16, Value) {
    let r = client().post(format!("{}{path}", s.base)).json(&body).send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// The `data:` payloads of an SSE body.
fn sse_data(text: &str) -> Vec<String> {
    text.lines().filter_map(|l| l.strip_prefix("data: ")).map(str::to_string).collect()
}

fn chat(model: &str, extra: Value) -> Value {
    let mut b = json!({"model": model, "messages": [{"role": "user", "content": "Hello"}], "max_tokens": 6, "seed": 1});
    for (k, v) in extra.as_object().unwrap() {
        b[k] = v.clone();
    }
    b
}

const TOOL_CALL: &str = "\n\n<｜DSML｜tool_calls>\n<｜DSML｜invoke name=\"get_weather\">\n<｜DSML｜parameter name=\"city\" string=\"true\">Paris</｜DSML｜parameter>\n<｜DSML｜parameter name=\"days\" string=\"false\">3</｜DSML｜parameter>\n</｜DSML｜invoke>\n</｜DSML｜tool_calls>";

fn weather_tool() -> Value {
    json!([{"type": "function", "function": {"name": "get_weather", "description": "Weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer"}}, "required": ["city"]}}}])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_non_stream_shapes_thinking_and_usage() {
    let s = start(hooks(), EngineConfig::default()).await;
    let (st, v) = post(&s, "/v1/chat/completions", chat("deepseek-chat", json!({}))).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["object"], "chat.completion");
    let m = &v["choices"][0]["message"];
    assert_eq!(m["role"], "assistant");
    assert!(m.get("reasoning_content").is_none(), "deepseek-chat does not think: {v}");
    assert_eq!(v["choices"][0]["finish_reason"], "length");
    let u = &v["usage"];
    assert_eq!(u["completion_tokens"], 6);
    assert_eq!(u["total_tokens"].as_u64(), Some(u["prompt_tokens"].as_u64().unwrap() + 6));
    assert_eq!(u["prompt_cache_hit_tokens"].as_u64().unwrap() + u["prompt_cache_miss_tokens"].as_u64().unwrap(), u["prompt_tokens"].as_u64().unwrap());
    assert!(u["completion_tokens_details"]["reasoning_tokens"].is_u64());

    // Thinking: reasoning_content is present; forced output splits reasoning and content.
    let (st, v) = post(&s, "/chat/completions", chat("deepseek-reasoner", json!({"dsv4_forced_output": "let me think</think>The answer.", "max_tokens": 50}))).await;
    assert_eq!(st, 200, "{v}");
    let m = &v["choices"][0]["message"];
    assert_eq!(m["reasoning_content"], "let me think");
    assert_eq!(m["content"], "The answer.");
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    assert!(v["usage"]["completion_tokens_details"]["reasoning_tokens"].as_u64().unwrap() > 0);

    // thinking disabled on a thinking model.
    let (_, v) = post(&s, "/v1/chat/completions", chat("deepseek-v4-flash", json!({"thinking": {"type": "disabled"}}))).await;
    assert!(v["choices"][0]["message"].get("reasoning_content").is_none(), "{v}");

    // n = 2 and logprobs with alternatives.
    let (st, v) = post(&s, "/v1/chat/completions", chat("deepseek-chat", json!({"n": 2, "logprobs": true, "top_logprobs": 3}))).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["choices"].as_array().unwrap().len(), 2);
    let lp = &v["choices"][1]["logprobs"]["content"];
    assert_eq!(lp.as_array().unwrap().len(), 6);
    assert_eq!(lp[0]["top_logprobs"].as_array().unwrap().len(), 3);
    assert_eq!(v["usage"]["completion_tokens"], 12);

    // JSON mode: the content always parses (thinking first, then the constrained content).
    for (model, seed) in [("deepseek-chat", 3), ("deepseek-reasoner", 4), ("deepseek-chat", 5)] {
        let (st, v) = post(&s, "/v1/chat/completions", chat(model, json!({"response_format": {"type": "json_object"}, "max_tokens": 600, "seed": seed}))).await;
        assert_eq!(st, 200, "{v}");
        let content = v["choices"][0]["message"]["content"].as_str().unwrap();
        if v["choices"][0]["finish_reason"] == "stop" {
            let parsed: Value = serde_json::from_str(content).unwrap_or_else(|e| panic!("{model}: content is not JSON ({e}): {content:?}"));
            assert!(parsed.is_object(), "{content}");
        }
    }
    let schema = json!({"type": "object", "properties": {"city": {"type": "string"}, "unit": {"enum": ["C", "F"]}}, "required": ["city", "unit"], "additionalProperties": false});
    let rf = json!({"type": "json_schema", "json_schema": {"name": "w", "schema": schema}});
    let (st, v) = post(&s, "/v1/chat/completions", chat("deepseek-chat", json!({"response_format": rf, "max_tokens": 600, "seed": 9}))).await;
    assert_eq!(st, 200, "{v}");
    if v["choices"][0]["finish_reason"] == "stop" {
        let parsed: Value = serde_json::from_str(v["choices"][0]["message"]["content"].as_str().unwrap()).unwrap();
        dsv4_engine::constraint::json::validate(&parsed, &schema).unwrap();
    }

    // Strict tool with a required call: the arguments follow the schema.
    let strict = json!([{"type": "function", "function": {"name": "set_unit", "strict": true, "parameters": {"type": "object",
        "properties": {"unit": {"type": "string", "enum": ["C", "F"]}, "flag": {"type": "boolean"}}, "required": ["unit", "flag"], "additionalProperties": false}}}]);
    for (model, seed) in [("deepseek-chat", 1), ("deepseek-reasoner", 2)] {
        let (st, v) = post(&s, "/v1/chat/completions", chat(model, json!({"tools": strict, "tool_choice": "required", "max_tokens": 1500, "seed": seed}))).await;
        assert_eq!(st, 200, "{v}");
        assert_eq!(v["choices"][0]["finish_reason"], "tool_calls", "{model}: {v}");
        let call = &v["choices"][0]["message"]["tool_calls"][0]["function"];
        assert_eq!(call["name"], "set_unit");
        let args: Value = serde_json::from_str(call["arguments"].as_str().unwrap()).unwrap();
        dsv4_engine::constraint::json::validate(&args, &strict[0]["function"]["parameters"]).unwrap_or_else(|e| panic!("{model}: {e}: {args}"));
    }

    // Over the context limit (4096 tokens in the tiny model).
    let (st, v) = post(&s, "/v1/chat/completions", chat("deepseek-chat", json!({"messages": [{"role": "user", "content": "y".repeat(5000)}]}))).await;
    assert_eq!((st, v["error"]["code"].as_str()), (400, Some("context_length_exceeded")), "{v}");

    // Same seed, same answer.
    let (_, a) = post(&s, "/v1/chat/completions", chat("deepseek-chat", json!({"seed": 42, "temperature": 0.8}))).await;
    let (_, b) = post(&s, "/v1/chat/completions", chat("deepseek-chat", json!({"seed": 42, "temperature": 0.8}))).await;
    assert_eq!(a["choices"][0]["message"], b["choices"][0]["message"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_stream_chunks_usage_and_tool_calls() {
    let s = start(hooks(), EngineConfig::default()).await;
    let body = chat("deepseek-reasoner", json!({"stream": true, "stream_options": {"include_usage": true}, "tools": weather_tool(),
        "dsv4_forced_output": format!("thinking about it</think>Checking.{TOOL_CALL}"), "max_tokens": 1000}));
    let r = client().post(format!("{}/v1/chat/completions", s.base)).json(&body).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"));
    let data = sse_data(&r.text().await.unwrap());
    assert_eq!(data.last().unwrap(), "[DONE]");
    let chunks: Vec<Value> = data[..data.len() - 1].iter().map(|d| serde_json::from_str(d).unwrap()).collect();
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let cat = |key: &str| chunks.iter().filter_map(|c| c["choices"].get(0)?["delta"][key].as_str().map(String::from)).collect::<String>();
    assert_eq!(cat("reasoning_content"), "thinking about it");
    assert_eq!(cat("content"), "Checking.");
    let calls: Vec<&Value> = chunks.iter().filter_map(|c| c["choices"].get(0)?["delta"].get("tool_calls")).collect();
    assert_eq!(calls.len(), 1);
    let f = &calls[0][0]["function"];
    assert_eq!(f["name"], "get_weather");
    let args: Value = serde_json::from_str(f["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(args, json!({"city": "Paris", "days": 3}));
    let finish: Vec<&Value> = chunks.iter().filter_map(|c| c["choices"].get(0)?.get("finish_reason")).filter(|f| !f.is_null()).collect();
    assert_eq!(finish, vec![&json!("tool_calls")]);
    let last = chunks.last().unwrap();
    assert_eq!(last["choices"], json!([]));
    assert!(last["usage"]["completion_tokens"].as_u64().unwrap() > 10);
    // No DSML or special token ever leaks into content.
    assert!(!cat("content").contains('｜'));

    // Non-stream: the same forced output gives a tool_calls message that round-trips.
    let (st, v) = post(&s, "/v1/chat/completions", chat("deepseek-chat", json!({"tools": weather_tool(), "dsv4_forced_output": TOOL_CALL, "max_tokens": 1000}))).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["choices"][0]["finish_reason"], "tool_calls");
    let msg = v["choices"][0]["message"].clone();
    let call_id = msg["tool_calls"][0]["id"].as_str().unwrap().to_string();
    let follow = json!({"model": "deepseek-chat", "max_tokens": 3, "tools": weather_tool(), "messages": [
        {"role": "user", "content": "Weather in Paris?"}, msg, {"role": "tool", "tool_call_id": call_id, "content": "sunny"}]});
    let (st, v) = post(&s, "/v1/chat/completions", follow).await;
    assert_eq!(st, 200, "tool result round trip: {v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_are_openai_shaped_with_the_right_status() {
    let s = start(ServerConfig { max_body_bytes: 4096, ..hooks() }, EngineConfig::default()).await;
    let raw = |body: &'static str| {
        let base = s.base.clone();
        async move {
            let r = client().post(format!("{base}/v1/chat/completions")).header("content-type", "application/json").body(body).send().await.unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    let cases: Vec<(u16, Value, &str)> = vec![
        (404, chat("gpt-4", json!({})), "model"),
        (400, chat("deepseek-chat", json!({"temperature": 3})), "temperature"),
        (400, chat("deepseek-chat", json!({"top_p": "x"})), "top_p"),
        (400, chat("deepseek-chat", json!({"n": 0})), "n"),
        (400, chat("deepseek-chat", json!({"max_tokens": 100000})), "max_tokens"),
        (400, chat("deepseek-chat", json!({"tools": [{"type": "function", "function": {"name": "bad name!"}}]})), "tools[0]"),
        (400, chat("deepseek-chat", json!({"tools": weather_tool(), "tool_choice": {"type": "function", "function": {"name": "other"}}})), "tool_choice"),
        (400, chat("deepseek-chat", json!({"messages": []})), "messages"),
        (400, chat("deepseek-chat", json!({"messages": [{"role": "wizard", "content": "x"}]})), "messages"),
        (400, chat("deepseek-chat", json!({"response_format": {"type": "yaml"}})), "response_format"),
    ];
    for (status, body, param) in cases {
        let (st, v) = post(&s, "/v1/chat/completions", body.clone()).await;
        assert_eq!(st, status, "{body}: {v}");
        assert!(v["error"]["message"].is_string() && v["error"]["type"].is_string(), "{v}");
        let p = v["error"]["param"].as_str().unwrap_or("");
        assert!(p.starts_with(param), "{body}: param {p:?}, want {param}: {v}");
    }
    let (st, v) = raw("{not json").await;
    assert_eq!((st, v["error"]["type"].as_str()), (400, Some("invalid_request_error")));
    // Over the context limit (4096 tokens in the tiny model) but under the body limit? The body
    // limit here is 4096 bytes: a bigger body is 413.
    let big = chat("deepseek-chat", json!({"messages": [{"role": "user", "content": "z".repeat(5000)}]}));
    let (st, v) = post(&s, "/v1/chat/completions", big).await;
    assert_eq!(st, 413, "{v}");
    let r = client().get(format!("{}/nowhere", s.base)).send().await.unwrap();
    assert_eq!(r.status(), 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_key_guards_everything_but_health() {
    let s = start(ServerConfig { api_key: Some("sk-test".into()), ..hooks() }, EngineConfig::default()).await;
    let r = client().post(format!("{}/v1/chat/completions", s.base)).json(&chat("deepseek-chat", json!({}))).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.json::<Value>().await.unwrap()["error"]["code"], "invalid_api_key");
    let r = client().post(format!("{}/v1/chat/completions", s.base)).bearer_auth("sk-wrong").json(&chat("deepseek-chat", json!({}))).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let r = client().post(format!("{}/v1/chat/completions", s.base)).bearer_auth("sk-test").json(&chat("deepseek-chat", json!({}))).send().await.unwrap();
    assert_eq!(r.status(), 200);
    for path in ["/v1/models", "/metrics"] {
        assert_eq!(client().get(format!("{}{path}", s.base)).send().await.unwrap().status(), 401, "{path}");
    }
    assert_eq!(client().get(format!("{}/health", s.base)).send().await.unwrap().status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disconnect_cancels_and_full_queue_answers_429() {
    let ecfg = EngineConfig { max_running: 1, max_waiting: 1, ..EngineConfig::default() };
    let s = start(hooks(), ecfg).await;
    // forced text longer than max_tokens: the streams cannot end early on a sampled end token
    // (whether the seeded tiny model samples one, and when, depends on the kernels' summation
    // order), so the first one is still running when the third request arrives
    let long = chat("deepseek-chat", json!({"stream": true, "max_tokens": 3000, "dsv4_forced_output": "ab ".repeat(4000)}));
    // One running, one waiting: the third is refused with 429 and Retry-After.
    let r1 = client().post(format!("{}/v1/chat/completions", s.base)).json(&long).send().await.unwrap();
    let r2 = client().post(format!("{}/v1/chat/completions", s.base)).json(&long).send().await.unwrap();
    assert_eq!((r1.status().as_u16(), r2.status().as_u16()), (200, 200));
    let r3 = client().post(format!("{}/v1/chat/completions", s.base)).json(&long).send().await.unwrap();
    assert_eq!(r3.status(), 429);
    assert!(r3.headers().contains_key("retry-after"));
    assert_eq!(r3.json::<Value>().await.unwrap()["error"]["type"], "rate_limit_error");
    // Read a little of the first stream, then hang up on both.
    let mut r1 = r1;
    assert!(r1.chunk().await.unwrap().is_some());
    drop(r1);
    drop(r2);
    let mut freed = false;
    for _ in 0..100 {
        let st = s.state.service.stats();
        if st.engine.running == 0 && st.engine.waiting == 0 && st.engine.pool.slots_used == 0 && st.engine.pool.blocks_used == 0 {
            freed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(freed, "state returns to the pool after the clients left: {:?}", s.state.service.stats());
    let text = client().get(format!("{}/metrics", s.base)).send().await.unwrap().text().await.unwrap();
    for name in ["dsv4_requests_total", "dsv4_time_to_first_token_seconds_bucket", "dsv4_inter_token_latency_seconds_count", "dsv4_queue_depth", "dsv4_running_sequences", "dsv4_state_pool_blocks_used", "dsv4_prefix_cache_bytes", "dsv4_generated_tokens_total"] {
        assert!(text.contains(name), "metrics lack {name}");
    }
    assert!(text.contains("status=\"429\""), "{text}");
    assert!(text.contains("dsv4_requests_in_flight 0"), "abandoned streams are not counted as in flight: {text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fim_prefix_completion_and_graceful_shutdown() {
    let mut s = start(hooks(), EngineConfig::default()).await;
    // seeded like `chat`: unseeded, the tiny model sometimes samples its end token early
    let (st, v) = post(&s, "/beta/completions", json!({"model": "deepseek-chat", "prompt": "def f(", "suffix": "\n    return x", "max_tokens": 5, "seed": 1})).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["object"], "text_completion");
    assert!(v["choices"][0]["text"].is_string());
    assert_eq!(v["usage"]["completion_tokens"], 5);
    // Beta prefix completion: the assistant message is continued.
    let body = json!({"model": "deepseek-chat", "max_tokens": 4, "messages": [{"role": "user", "content": "Count"}, {"role": "assistant", "content": "1, 2,", "prefix": true}]});
    let (st, v) = post(&s, "/v1/chat/completions", body).await;
    assert_eq!(st, 200, "{v}");
    // A stream is running when the shutdown comes: the server stops and the stream ends.
    let r = client().post(format!("{}/v1/chat/completions", s.base)).json(&chat("deepseek-chat", json!({"stream": true, "max_tokens": 40}))).send().await.unwrap();
    s.stop.take().unwrap().send(()).unwrap();
    let body = r.text().await.unwrap();
    assert!(body.contains("[DONE]"), "the running stream finished: {body}");
    let res = tokio::time::timeout(Duration::from_secs(30), &mut s.task).await.expect("server stops").unwrap();
    assert!(res.is_ok());
    assert!(client().get(format!("{}/health", s.base)).send().await.is_err(), "no longer accepting");
}
