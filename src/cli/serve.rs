//! `dsv4 serve`: the DeepSeek API on the engine (OpenAI- and Anthropic-compatible).

use std::sync::Arc;

use anyhow::{Context, Result};
use dsv4_engine::engine::{Engine, EngineConfig};
use dsv4_engine::server::{self, AppState, ServerConfig};
use dsv4_engine::service::EngineService;

use dsv4_engine::backend::Backend;

use super::model::{load, with_loaded, Loaded, ModelArgs};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    model: ModelArgs,
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    #[arg(long, default_value_t = 8000)]
    port: u16,
    /// Require `Authorization: Bearer KEY` on every route but /health.
    #[arg(long, env = "DSV4_API_KEY")]
    api_key: Option<String>,
    /// Largest max_tokens a request may ask for (default: the model's context).
    #[arg(long)]
    max_output_tokens: Option<usize>,
    /// max_tokens when a request gives none.
    #[arg(long, default_value_t = 4096)]
    default_max_tokens: usize,
    /// Sequences generating at once.
    #[arg(long, default_value_t = 16)]
    max_running: usize,
    /// Requests waiting for a slot before new ones get 429.
    #[arg(long, default_value_t = 256)]
    max_queued: usize,
    /// Tokens per model step (decode tokens + prompt chunks).
    #[arg(long, default_value_t = 512)]
    max_batch_tokens: usize,
    /// Prefix-cache memory in MiB (0 = off).
    #[arg(long, default_value_t = 2048)]
    prefix_cache_mib: usize,
    /// Sequence-state memory in MiB.
    #[arg(long, default_value_t = 4096)]
    state_mib: usize,
    /// Largest request body in bytes.
    #[arg(long, default_value_t = 16 << 20)]
    max_body_bytes: usize,
    /// Seconds running streams get to finish after SIGINT/SIGTERM.
    #[arg(long, default_value_t = 10)]
    shutdown_grace_secs: u64,
    /// Accept the `dsv4_forced_output` request field (for tests only).
    #[arg(long, hide = true)]
    test_hooks: bool,
}

pub fn run(a: Args) -> Result<()> {
    with_loaded!(load(&a.model)?, loaded => serve_with(loaded, a))
}

fn serve_with<B: Backend + 'static>(loaded: Loaded<B>, a: Args) -> Result<()> {
    let mut cfg = EngineConfig { max_running: a.max_running, max_waiting: a.max_queued, max_batch_tokens: a.max_batch_tokens, ..EngineConfig::default() };
    cfg.prefix_cache_bytes = a.prefix_cache_mib << 20;
    cfg.state_budget_bytes = a.state_mib << 20;
    cfg.act_quant = if a.model.no_act_quant { dsv4_reference::ActQuant::Off } else { dsv4_reference::ActQuant::On };
    let context = loaded.engine.max_context();
    let backend_name = dsv4_engine::backend::Backend::name(loaded.engine.backend());
    let engine = Engine::new(loaded.engine.into_backend(), cfg);
    let service = EngineService::spawn(engine);
    let server_cfg = ServerConfig {
        api_key: a.api_key.clone(),
        max_body_bytes: a.max_body_bytes,
        max_output_tokens: a.max_output_tokens.unwrap_or(context),
        default_max_tokens: a.default_max_tokens,
        served_name: loaded.name.clone(),
        test_hooks: a.test_hooks,
        shutdown_grace: std::time::Duration::from_secs(a.shutdown_grace_secs),
    };
    // Index the vocabulary for JSON mode and strict tools now rather than on the first request.
    dsv4_engine::constraint::dsml::StrictToolCalls::prepare_vocab(&loaded.tokenizer.token_bytes_table());
    let state = Arc::new(AppState { service, tokenizer: loaded.tokenizer, metrics: Default::default(), cfg: server_cfg });
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the async runtime")?;
    rt.block_on(async move {
        let addr = format!("{}:{}", a.host, a.port);
        let listener = tokio::net::TcpListener::bind(&addr).await.with_context(|| format!("cannot listen on {addr}"))?;
        let local = listener.local_addr()?;
        eprintln!(
            "dsv4 serving {} on http://{local} ({backend_name}; context {context} tokens; model ids deepseek-v4-flash, deepseek-chat, deepseek-reasoner, {}){}",
            loaded.name,
            loaded.name,
            if a.api_key.is_some() { "; API key required" } else { "" }
        );
        server::serve(state, listener, server::shutdown_signal()).await.context("serving")?;
        eprintln!("dsv4 stopped");
        anyhow::Ok(())
    })
}
