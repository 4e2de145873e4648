//! The DeepSeek-V4 chat format: OpenAI-style conversations -> prompt text ([`encode`]), and
//! completion text -> assistant message, one-shot or while streaming ([`parse`]).
//!
//! Rules: `shared/spec/chat-format.md`, and DeepSeek's own `encoding_dsv4.py` (the official
//! encoder/parser shipped with the model), whose behaviour this module reproduces byte for byte
//! on well-formed input. Where that code would crash or silently do something odd, we return an
//! [`EncodeError`] or document the choice next to the code.

pub mod encode;
pub mod parse;

pub use encode::{
    encode_conversation, generation_mode, Content, ContentPart, EncodeError, EncodeRequest,
    FunctionCall, FunctionDef, Message, ReasoningEffort, Role, ThinkingMode, Tool, ToolCall,
};
pub use parse::{parse_completion, Delta, ParsedMessage, StreamParser};

/// Beginning of the sequence; the encoder writes it at the start of every prompt.
pub const BOS: &str = "<｜begin▁of▁sentence｜>";
/// End of sentence: ends every assistant turn (and is the generation stop token).
pub const EOS: &str = "<｜end▁of▁sentence｜>";
pub const USER: &str = "<｜User｜>";
pub const ASSISTANT: &str = "<｜Assistant｜>";
pub const LATEST_REMINDER: &str = "<｜latest_reminder｜>";
pub const THINK_START: &str = "<think>";
pub const THINK_END: &str = "</think>";
/// The DSML marker (one token) that prefixes every tool-call tag.
pub const DSML: &str = "｜DSML｜";

/// The quick-instruction task tokens of the official encoder (`DS_TASK_SP_TOKENS`): the message
/// field `task` -> the token appended after that message.
pub const TASK_TOKENS: [(&str, &str); 6] = [
    ("action", "<｜action｜>"),
    ("query", "<｜query｜>"),
    ("authority", "<｜authority｜>"),
    ("domain", "<｜domain｜>"),
    ("title", "<｜title｜>"),
    ("read_url", "<｜read_url｜>"),
];
/// A task-like special token in the vocabulary that the official encoder never writes; listed so
/// the parser never lets it through into content.
pub const EXTRACTED_URL: &str = "<｜extracted_url｜>";

/// The token a message's `task` appends, if `task` is one of the official names.
pub fn task_token(task: &str) -> Option<&'static str> {
    TASK_TOKENS.iter().find(|(name, _)| *name == task).map(|(_, tok)| *tok)
}

/// The fixed preamble that `reasoning_effort: "max"` puts before everything but BOS (thinking
/// mode only).
pub const REASONING_EFFORT_MAX: &str = "Reasoning Effort: Absolute maximum with no shortcuts permitted.\n\
You MUST be very thorough in your thinking and comprehensively decompose the problem to resolve the root cause, rigorously stress-testing your logic against all potential paths, edge cases, and adversarial scenarios.\n\
Explicitly write out your entire deliberation process, documenting every intermediate step, considered alternative, and rejected hypothesis to ensure absolutely no assumption is left unchecked.\n\n";
