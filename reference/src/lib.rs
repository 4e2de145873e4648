//! The oracle: plain, readable CPU code for every DeepSeek-V4-Flash op and the whole model,
//! mirroring the official inference code (`../shared/spec/model.md`). Clarity over speed.

pub mod checkpoint;
pub mod compute;
pub mod config;
pub mod formats;
pub mod golden;
pub mod linear;
pub mod model;
pub mod ops;
pub mod quant;
pub mod synthetic;

pub use config::Config;
pub use model::{Logits, Model, ModelError, MtpState, SequenceState};
pub use quant::ActQuant;
