//! `dsv4 chat`: an interactive terminal chat with history. /clear forgets it, /exit (or end of
//! input) quits. Thinking is shown dimmed.

use std::io::{BufRead, Write};

use anyhow::Result;
use dsv4_engine::chat::encode::Message;
use dsv4_engine::chat::ThinkingMode;

use super::generate::generate_turn;
use dsv4_engine::backend::Backend;

use super::model::{load, with_loaded, Loaded, ModelArgs, SamplingArgs};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    sampling: SamplingArgs,
    /// Thinking mode (the model reasons before answering).
    #[arg(long)]
    thinking: bool,
    /// A system prompt.
    #[arg(long)]
    system: Option<String>,
}

pub fn run(a: Args) -> Result<()> {
    let params = a.sampling.params()?;
    with_loaded!(load(&a.model)?, loaded => chat_loop(loaded, &a, params))
}

fn chat_loop<B: Backend>(mut loaded: Loaded<B>, a: &Args, params: dsv4_engine::sampling::SamplingParams) -> Result<()> {
    let mode = if a.thinking { ThinkingMode::Thinking } else { ThinkingMode::Chat };
    let fresh = || a.system.as_deref().map(Message::system).into_iter().collect::<Vec<_>>();
    let mut history = fresh();
    eprintln!("dsv4 chat with {} ({}). /clear forgets the conversation, /exit quits.", loaded.name, if a.thinking { "thinking" } else { "chat mode" });
    let stdin = std::io::stdin();
    let mut lines = stdin.lock().lines();
    loop {
        print!("> ");
        std::io::stdout().flush()?;
        let Some(line) = lines.next().transpose()? else { break };
        let line = line.trim();
        match line {
            "" => continue,
            "/exit" | "/quit" => break,
            "/clear" => {
                history = fresh();
                eprintln!("(conversation cleared)");
                continue;
            }
            _ => {}
        }
        history.push(Message::user(line));
        match generate_turn(&mut loaded, history.clone(), mode, params.clone(), a.sampling.max_tokens) {
            Ok(turn) => {
                let mut m = Message::assistant(&turn.content);
                if mode == ThinkingMode::Thinking {
                    m.reasoning_content = Some(turn.reasoning);
                }
                history.push(m);
            }
            Err(e) => {
                // A turn that cannot run (e.g. over the context limit) is reported, not fatal.
                history.pop();
                eprintln!("error: {e:#}");
            }
        }
    }
    Ok(())
}
