//! `dsv4`: the DeepSeek-V4-Flash engine's command line.

mod cli;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "dsv4", version, about = "DeepSeek-V4-Flash inference engine")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the reference model on token ids and write its logits (prefill, teacher-forced
    /// decode, MTP) to a safetensors file: check any golden set from the command line.
    Logits(cli::logits::Args),
    /// Compare a `logits` output with a golden file: per-row relative error, argmax agreement.
    Compare(cli::compare::Args),
    /// Write a tiny model with random weights (and a byte-level tokenizer) in the released layout.
    InitTiny(cli::init_tiny::Args),
    /// Generate an answer to one prompt, streamed.
    Generate(cli::generate::Args),
    /// Interactive chat in the terminal.
    Chat(cli::chat::Args),
    /// Encode a chat request (JSON on stdin) into the DSV4 prompt text.
    Encode(cli::encode::Args),
    /// Parse a completion (stdin) into an assistant message (JSON).
    Parse(cli::parse::Args),
    /// Serve the DeepSeek API (OpenAI- and Anthropic-compatible) over HTTP.
    Serve(cli::serve::Args),
    /// The PTX emulator: run a kernel of any PTX file on the CPU; list instruction coverage.
    Emu(cli::emu::Args),
    /// Benchmarks written to results/: `cpu` (GEMV kernels vs read bandwidth), `model` (tokens/s
    /// and TTFT on a synthetic model with the real geometry).
    Bench(cli::bench::Args),
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Logits(args) => cli::logits::run(args),
        Command::Compare(args) => cli::compare::run(args),
        Command::InitTiny(args) => cli::init_tiny::run(args),
        Command::Generate(args) => cli::generate::run(args),
        Command::Chat(args) => cli::chat::run(args),
        Command::Serve(args) => cli::serve::run(args),
        Command::Encode(args) => cli::encode::run(args),
        Command::Parse(args) => cli::parse::run(args),
        Command::Emu(args) => cli::emu::run(args),
        Command::Bench(args) => cli::bench::run(args),
    };
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
