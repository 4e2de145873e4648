//! `dsv4 generate`: one prompt, the answer streamed to the terminal (reasoning dimmed), then the
//! prompt and decode speeds.

use std::io::{IsTerminal, Write};
use std::time::Instant;

use anyhow::{bail, Result};
use dsv4_engine::chat::encode::{encode_conversation, EncodeRequest, Message};
use dsv4_engine::chat::parse::Delta;
use dsv4_engine::chat::ThinkingMode;
use dsv4_engine::engine::{Event, FinishReason, Request};
use dsv4_engine::text_stream::TextStream;

use dsv4_engine::backend::Backend;

use super::model::{load, with_loaded, Loaded, ModelArgs, SamplingArgs};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    sampling: SamplingArgs,
    /// The user message.
    #[arg(long)]
    prompt: String,
    /// Thinking mode (the model reasons before answering).
    #[arg(long)]
    thinking: bool,
}

pub fn run(a: Args) -> Result<()> {
    let params = a.sampling.params()?;
    let mode = if a.thinking { ThinkingMode::Thinking } else { ThinkingMode::Chat };
    let messages = vec![Message::user(&a.prompt)];
    let answer = with_loaded!(load(&a.model)?, loaded => {
        let mut loaded = loaded;
        generate_turn(&mut loaded, messages, mode, params, a.sampling.max_tokens)?
    });
    if answer.finish == FinishReason::Length {
        eprintln!("(stopped at --max-tokens {})", a.sampling.max_tokens);
    }
    Ok(())
}

/// What one assistant turn produced.
pub struct Turn {
    pub reasoning: String,
    pub content: String,
    pub finish: FinishReason,
}

/// Encode the conversation, generate the assistant turn streaming it to stdout, print speeds.
pub fn generate_turn<B: Backend>(loaded: &mut Loaded<B>, messages: Vec<Message>, mode: ThinkingMode, params: dsv4_engine::sampling::SamplingParams, max_tokens: usize) -> Result<Turn> {
    let text = encode_conversation(&EncodeRequest::new(messages, mode))?;
    let prompt = loaded.tokenizer.encode(&text);
    let limit = loaded.engine.max_context();
    if prompt.len() >= limit {
        bail!("the prompt has {} tokens, over the model's context limit of {limit} tokens", prompt.len());
    }
    let eos = loaded.tokenizer.eos_id();
    let id = loaded.engine.submit(Request::new(prompt.clone(), params, max_tokens, vec![eos]))?;
    let mut stream = TextStream::new(&loaded.tokenizer, mode, Vec::new());
    let dim = std::io::stdout().is_terminal();
    let (mut reasoning, mut content) = (String::new(), String::new());
    let mut out = std::io::stdout().lock();
    let start = Instant::now();
    let (mut first_token, mut n_tokens, mut finish, mut hit) = (None, 0usize, FinishReason::Stop, 0);
    let mut show = |deltas: Vec<Delta>, out: &mut std::io::StdoutLock| -> std::io::Result<()> {
        for d in deltas {
            match d {
                Delta::Reasoning(t) => {
                    reasoning += &t;
                    if dim { write!(out, "\x1b[2m{t}\x1b[0m")? } else { write!(out, "{t}")? }
                }
                Delta::Content(t) => {
                    content += &t;
                    write!(out, "{t}")?
                }
                Delta::ToolCall { name, arguments, .. } => writeln!(out, "\n[tool call] {name}({arguments})")?,
            }
        }
        out.flush()
    };
    while loaded.engine.has_work() {
        for ev in loaded.engine.step() {
            match ev {
                Event::Token { id: rid, sampled } if rid == id => {
                    first_token.get_or_insert_with(Instant::now);
                    n_tokens += 1;
                    show(stream.push(sampled.token), &mut out)?;
                }
                Event::Finished { id: rid, reason, usage } if rid == id => {
                    finish = reason;
                    hit = usage.cache_hit_tokens;
                }
                _ => {}
            }
        }
    }
    show(stream.finish(), &mut out)?;
    writeln!(out)?;
    let end = Instant::now();
    let ttft = first_token.unwrap_or(end) - start;
    let decode = end - first_token.unwrap_or(end);
    let prompt_rate = (prompt.len() - hit) as f64 / ttft.as_secs_f64().max(1e-9);
    let decode_rate = n_tokens.saturating_sub(1) as f64 / decode.as_secs_f64().max(1e-9);
    let stats = format!(
        "prompt {} tokens ({} from the prefix cache) in {:.2} s, {:.1} tok/s; output {} tokens, {:.1} tok/s",
        prompt.len(), hit, ttft.as_secs_f64(), prompt_rate, n_tokens, decode_rate
    );
    if dim { eprintln!("\x1b[2m{stats}\x1b[0m") } else { eprintln!("{stats}") }
    Ok(Turn { reasoning, content, finish })
}
