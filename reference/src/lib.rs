//! The oracle: plain, readable CPU code for every DeepSeek-V4-Flash op and the whole model,
//! mirroring the official inference code (`../shared/spec/model.md`). Clarity over speed.

pub mod checkpoint;
pub mod config;
pub mod formats;
