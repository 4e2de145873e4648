//! `dsv4 encode`: a chat request (JSON on stdin) -> the prompt text the model sees, on stdout,
//! exactly (no newline added).
//!
//! The request: `{"messages": [...], "tools": [...], "thinking_mode": "thinking" | "chat",
//! "reasoning_effort": "high" | "max" | "none", "drop_thinking": true, "response_format": {...}}`
//! (only `messages` is required; thinking mode is the default), or a bare array of messages.

use std::io::{Read, Write};

use anyhow::{Context, Result};
use dsv4_engine::chat::{encode_conversation, EncodeRequest, Message};

#[derive(clap::Args)]
pub struct Args {}

pub fn run(_a: Args) -> Result<()> {
    let mut input = String::new();
    std::io::stdin().read_to_string(&mut input).context("reading the request JSON from stdin")?;
    let value: serde_json::Value = serde_json::from_str(&input).context("stdin is not JSON")?;
    let req: EncodeRequest = if value.is_array() {
        let messages: Vec<Message> = serde_json::from_value(value).context("reading the messages")?;
        EncodeRequest { messages, ..Default::default() }
    } else {
        serde_json::from_value(value).context("reading the request")?
    };
    let prompt = encode_conversation(&req).context("encoding the conversation")?;
    let mut out = std::io::stdout().lock();
    out.write_all(prompt.as_bytes())?;
    out.flush()?;
    Ok(())
}
