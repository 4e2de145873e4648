//! Fuzzing the request parsing: random and mutated bodies on every route never panic the
//! server, never get a 5xx, and every error is a JSON error body.

use std::sync::{Arc, OnceLock};

use axum::body::Body;
use axum::http::Request;
use dsv4_engine::backend::cpu::CpuBackend;
use dsv4_engine::engine::{Engine, EngineConfig};
use dsv4_engine::server::{router, AppState, ServerConfig};
use dsv4_engine::service::EngineService;
use dsv4_engine::tokenizer::Tokenizer;
use proptest::prelude::*;
use serde_json::{json, Value};
use tower::ServiceExt;

fn state() -> Arc<AppState> {
    static S: OnceLock<(Arc<AppState>, tempfile::TempDir)> = OnceLock::new();
    S.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        dsv4_engine::tiny::write_tiny_model(dir.path()).unwrap();
        let model = dsv4_reference::Model::load(dir.path()).unwrap();
        let tokenizer = Tokenizer::from_file(dir.path().join("tokenizer.json")).unwrap();
        let service = EngineService::spawn(Engine::new(CpuBackend::new(model), EngineConfig::default()));
        let cfg = ServerConfig { default_max_tokens: 2, max_output_tokens: 64, ..ServerConfig::default() };
        (Arc::new(AppState { service, tokenizer, metrics: Default::default(), cfg }), dir)
    })
    .0
    .clone()
}

fn rt() -> &'static tokio::runtime::Runtime {
    static R: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    R.get_or_init(|| tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap())
}

/// Send a body to a route; returns the status and the body text.
fn send(path: &str, body: Vec<u8>) -> (u16, String) {
    rt().block_on(async {
        let req = Request::post(path).header("content-type", "application/json").body(Body::from(body)).unwrap();
        let resp = router(state()).oneshot(req).await.unwrap();
        let status = resp.status().as_u16();
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 24).await.unwrap();
        (status, String::from_utf8_lossy(&bytes).into_owned())
    })
}

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        (-1e6f64..1e6).prop_map(Value::from),
        "[a-z<>｜\"\\\\]{0,12}".prop_map(Value::from),
        prop::sample::select(vec!["user", "assistant", "system", "tool", "function", "deepseek-chat", "deepseek-reasoner", "enabled", "json_object", "auto", "required", "none"]).prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((prop::sample::select(vec![
                "model", "messages", "role", "content", "max_tokens", "stream", "tools", "tool_choice", "temperature", "top_p", "n", "stop",
                "response_format", "type", "thinking", "function", "name", "parameters", "logprobs", "top_logprobs", "prompt", "suffix",
                "system", "tool_calls", "arguments", "prefix", "reasoning_content", "seed", "input_schema", "tool_use_id", "budget_tokens",
            ]), inner), 0..6)
                .prop_map(|kv| Value::Object(kv.into_iter().map(|(k, v)| (k.to_string(), v)).collect())),
        ]
    })
}

/// A valid request with one field replaced by a random value.
fn mutated_valid() -> impl Strategy<Value = (String, Value)> {
    let chat = json!({"model": "deepseek-chat", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2});
    let anth = json!({"model": "deepseek-chat", "max_tokens": 2, "messages": [{"role": "user", "content": "hi"}]});
    let fim = json!({"model": "deepseek-chat", "prompt": "a", "suffix": "b", "max_tokens": 2});
    (
        prop::sample::select(vec![("/v1/chat/completions", chat), ("/anthropic/v1/messages", anth), ("/beta/completions", fim)]),
        prop::sample::select(vec!["model", "messages", "max_tokens", "stream", "tools", "tool_choice", "temperature", "n", "stop", "response_format", "thinking", "logprobs", "prompt", "suffix", "system", "top_logprobs"]),
        arb_json(),
    )
        .prop_map(|((path, mut body), key, v)| {
            body[key] = v;
            (path.to_string(), body)
        })
}

fn check(path: &str, status: u16, text: &str) -> Result<(), TestCaseError> {
    prop_assert!(status < 500, "{path}: {status} {text}");
    if status >= 400 {
        let v: Value = serde_json::from_str(text).map_err(|e| TestCaseError::fail(format!("{path}: error body is not JSON ({e}): {text}")))?;
        let has_msg = v["error"]["message"].is_string();
        prop_assert!(has_msg, "{path}: error body without a message: {text}");
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 160, ..ProptestConfig::default() })]

    #[test]
    fn random_json_bodies(path in prop::sample::select(vec!["/v1/chat/completions", "/anthropic/v1/messages", "/beta/completions"]), body in arb_json()) {
        let (status, text) = send(path, serde_json::to_vec(&body).unwrap());
        check(path, status, &text)?;
    }

    #[test]
    fn mutated_valid_requests((path, body) in mutated_valid()) {
        let (status, text) = send(&path, serde_json::to_vec(&body).unwrap());
        check(&path, status, &text)?;
    }

    #[test]
    fn random_bytes(path in prop::sample::select(vec!["/v1/chat/completions", "/anthropic/v1/messages", "/beta/completions"]), bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        let (status, text) = send(path, bytes);
        check(path, status, &text)?;
    }
}
