//! The engine: request -> scheduler (`engine`) -> model step (`model_step`) -> backend op
//! (`backend`) -> kernel. Per-sequence state lives in the backend, accounted by `state_pool`;
//! `prefix_cache` keeps snapshots of it; `sampling` picks tokens.
pub use dsv4_reference as reference;

pub mod backend;
pub mod cpu_kernels;
pub mod engine;
pub mod model_step;
pub mod prefix_cache;
pub mod sampling;
pub mod state_pool;
pub mod chat;
pub mod tokenizer;
pub mod tiny;
pub mod stop;
pub mod text_stream;
pub mod service;
pub mod constraint;
pub mod server;
