//! The HTTP server: the DeepSeek API surface (OpenAI-compatible chat completions, the beta
//! prefix completion and FIM, Anthropic messages, models, health, metrics) over the engine
//! thread. Every error is a JSON error body with the right status; nothing a client sends can
//! panic the server.

pub mod anthropic;
pub mod errors;
pub mod generation;
pub mod metrics;
pub mod openai;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::de::DeserializeOwned;

use crate::service::EngineService;
use crate::tokenizer::Tokenizer;
use errors::{ApiError, Flavor};
use metrics::Metrics;

#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Bearer key every route but /health requires (None = open).
    pub api_key: Option<String>,
    /// Largest request body accepted.
    pub max_body_bytes: usize,
    /// Largest max_tokens accepted (and the default when a request gives none).
    pub max_output_tokens: usize,
    pub default_max_tokens: usize,
    /// Model ids answered besides the standard ones (the served folder's name).
    pub served_name: String,
    /// Allow the `dsv4_forced_output` request field (tests only).
    pub test_hooks: bool,
    /// How long running streams may take to finish after a shutdown signal.
    pub shutdown_grace: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            api_key: None,
            max_body_bytes: 16 << 20,
            max_output_tokens: 393_216,
            default_max_tokens: 4096,
            served_name: "dsv4".into(),
            test_hooks: false,
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

pub struct AppState {
    pub service: EngineService,
    pub tokenizer: Tokenizer,
    pub metrics: Metrics,
    pub cfg: ServerConfig,
}

pub type Shared = Arc<AppState>;

/// The model ids this server answers to and whether each thinks by default.
pub const MODEL_IDS: [(&str, bool); 3] = [("deepseek-v4-flash", true), ("deepseek-chat", false), ("deepseek-reasoner", true)];

impl AppState {
    /// Thinking default of a model id, or None for an unknown model.
    pub fn model_thinks(&self, model: &str) -> Option<bool> {
        MODEL_IDS.iter().find(|(m, _)| *m == model).map(|(_, t)| *t).or((model == self.cfg.served_name).then_some(true))
    }
}

pub fn router(state: Shared) -> Router {
    let api = Router::new()
        .route("/v1/chat/completions", post(openai::chat_completions))
        .route("/chat/completions", post(openai::chat_completions))
        .route("/beta/completions", post(openai::fim_completions))
        .route("/v1/completions", post(openai::fim_completions))
        .route("/v1/models", get(openai::models))
        .route("/models", get(openai::models))
        .route("/anthropic/v1/messages", post(anthropic::messages))
        .route("/metrics", get(metrics_route))
        .route_layer(middleware::from_fn_with_state(state.clone(), auth));
    Router::new()
        .route("/health", get(health))
        .merge(api)
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(state.clone(), count_responses))
        .with_state(state)
}

async fn health(State(s): State<Shared>) -> Response {
    let st = s.service.stats();
    axum::Json(serde_json::json!({"status": "ok", "running": st.engine.running, "waiting": st.engine.waiting})).into_response()
}

async fn metrics_route(State(s): State<Shared>) -> Response {
    ([("content-type", "text/plain; version=0.0.4")], s.metrics.render(&s.service.stats())).into_response()
}

async fn not_found(req: Request) -> ApiError {
    let flavor = if req.uri().path().starts_with("/anthropic") { Flavor::Anthropic } else { Flavor::OpenAi };
    ApiError::new(StatusCode::NOT_FOUND, format!("no route {} {}", req.method(), req.uri().path())).flavor(flavor)
}

/// Bearer-key check (constant time); the Anthropic route also accepts `x-api-key`.
async fn auth(State(s): State<Shared>, req: Request, next: Next) -> Response {
    if let Some(key) = &s.cfg.api_key {
        let anthropic = req.uri().path().starts_with("/anthropic");
        let given = bearer(req.headers()).or_else(|| anthropic.then(|| header(req.headers(), "x-api-key")).flatten());
        if !given.is_some_and(|g| constant_time_eq(g.as_bytes(), key.as_bytes())) {
            let flavor = if anthropic { Flavor::Anthropic } else { Flavor::OpenAi };
            return ApiError::unauthorized().flavor(flavor).into_response();
        }
    }
    next.run(req).await
}

async fn count_responses(State(s): State<Shared>, req: Request, next: Next) -> Response {
    let route = req.uri().path().to_string();
    let resp = next.run(req).await;
    let known = ["/v1/chat/completions", "/chat/completions", "/beta/completions", "/v1/completions", "/v1/models", "/models", "/anthropic/v1/messages", "/health", "/metrics"];
    let route = if known.contains(&route.as_str()) { route } else { "other".into() };
    s.metrics.record_response(&route, resp.status().as_u16());
    resp
}

fn header<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

fn bearer(h: &HeaderMap) -> Option<&str> {
    let v = header(h, "authorization")?;
    v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")).map(str::trim)
}

/// JSON text for a server-sent event. Besides what JSON escapes anyway, the Unicode line
/// separators (U+0085, U+2028, U+2029) are escaped too: clients that split an event stream into
/// lines with a general Unicode line splitter would otherwise cut a chunk in two.
pub fn sse_json(v: &serde_json::Value) -> String {
    let s = v.to_string();
    if !s.contains(['\u{85}', '\u{2028}', '\u{2029}']) {
        return s;
    }
    s.replace('\u{85}', "\\u0085").replace('\u{2028}', "\\u2028").replace('\u{2029}', "\\u2029")
}

/// Compares without an early exit, so the time taken does not reveal the matching prefix.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = (a.len() != b.len()) as u8;
    for i in 0..a.len().max(b.len()) {
        diff |= a.get(i).copied().unwrap_or(0) ^ b.get(i).copied().unwrap_or(0xFF);
    }
    diff == 0
}

/// Read and parse a JSON body with our own errors (size limit, malformed JSON, wrong types).
pub async fn json_body<T: DeserializeOwned>(s: &AppState, body: Body, flavor: Flavor) -> Result<T, ApiError> {
    let bytes = axum::body::to_bytes(body, s.cfg.max_body_bytes)
        .await
        .map_err(|_| ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, format!("request body over the limit of {} bytes", s.cfg.max_body_bytes)).flavor(flavor))?;
    let value: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| ApiError::bad_request(format!("malformed JSON body: {e}")).flavor(flavor))?;
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        ApiError::bad_request(format!("invalid request: {}: {}", path, e.inner())).param(&path).flavor(flavor)
    })
}

/// Serve until `shutdown` resolves; then stop accepting, give running streams the grace
/// period, cancel what is left and stop the engine thread.
pub async fn serve(state: Shared, listener: tokio::net::TcpListener, shutdown: impl std::future::Future<Output = ()> + Send + 'static) -> std::io::Result<()> {
    let app = router(state.clone()).into_make_service_with_connect_info::<SocketAddr>();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let service = state.service.clone();
    let grace = state.cfg.shutdown_grace;
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(());
        // Streams still open after the grace period are cancelled: their generations end and
        // the connections close, so the server can finish.
        tokio::time::sleep(grace).await;
        tokio::task::spawn_blocking(move || service.shutdown());
    });
    axum::serve(listener, app).with_graceful_shutdown(async move {
        let _ = stop_rx.await;
    })
    .await?;
    let service = state.service.clone();
    tokio::task::spawn_blocking(move || service.shutdown()).await.ok();
    Ok(())
}

/// SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}

#[cfg(test)]
mod tests {
    use super::constant_time_eq;

    #[test]
    fn sse_json_escapes_unicode_line_separators() {
        let v = serde_json::json!({"t": "a\u{2028}b\u{85}c\u{2029}\n"});
        let s = super::sse_json(&v);
        assert_eq!(s.lines().count(), 1);
        assert!(!s.contains(['\u{85}', '\u{2028}', '\u{2029}']), "{s}");
        assert_eq!(serde_json::from_str::<serde_json::Value>(&s).unwrap(), v);
    }

    #[test]
    fn constant_time_eq_is_equality() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret2"));
        assert!(!constant_time_eq(b"", b"x"));
        assert!(constant_time_eq(b"", b""));
    }
}
