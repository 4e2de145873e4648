//! `dsv4 parse`: a completion (the model's text after the prompt, on stdin) -> the assistant
//! message as JSON (`content`, `reasoning_content`, `tool_calls`, plus `malformed` and `eos`).

use std::io::Read;

use anyhow::{bail, Context, Result};
use dsv4_engine::chat::{parse_completion, ThinkingMode};

#[derive(clap::Args)]
pub struct Args {
    /// "thinking" (the completion starts with the reasoning, up to `</think>`) or "chat".
    #[arg(long)]
    thinking_mode: String,
}

pub fn run(a: Args) -> Result<()> {
    let mode = match a.thinking_mode.as_str() {
        "thinking" => ThinkingMode::Thinking,
        "chat" => ThinkingMode::Chat,
        other => bail!("--thinking-mode must be \"thinking\" or \"chat\", not {other:?}"),
    };
    let mut text = String::new();
    std::io::stdin().read_to_string(&mut text).context("reading the completion from stdin (UTF-8 text)")?;
    let parsed = parse_completion(&text, mode);
    let mut message = serde_json::json!({
        "role": "assistant",
        "content": parsed.content,
        "reasoning_content": parsed.reasoning_content,
    });
    if !parsed.tool_calls.is_empty() {
        message["tool_calls"] = serde_json::to_value(&parsed.tool_calls)?;
    }
    message["malformed"] = parsed.malformed.into();
    message["eos"] = parsed.eos.into();
    println!("{}", serde_json::to_string_pretty(&message)?);
    Ok(())
}
