//! From sampled tokens to chat deltas: incremental detokenisation (never splitting a UTF-8
//! character), the stream parser (reasoning, content, tool calls; special tokens and DSML never
//! leak into content), and stop strings on the content.

use crate::chat::parse::{Delta, StreamParser};
use crate::chat::{ThinkingMode, DSML, EOS, THINK_END, THINK_START};
use crate::stop::StopMatcher;
use crate::tokenizer::{Decoder, Tokenizer};

pub struct TextStream {
    /// Special tokens that carry chat structure (the parser needs them); any other special
    /// token the model emits is dropped, never shown as text.
    structural: Vec<u32>,
    is_special: Box<dyn Fn(u32) -> bool + Send>,
    decoder: Decoder,
    parser: StreamParser,
    stop: StopMatcher,
}

impl TextStream {
    pub fn new(tokenizer: &Tokenizer, mode: ThinkingMode, stops: Vec<String>) -> TextStream {
        let structural = [THINK_START, THINK_END, DSML, EOS].iter().filter_map(|t| tokenizer.token_id(t)).collect();
        let tok = tokenizer.clone();
        TextStream {
            structural,
            is_special: Box::new(move |id| tok.is_special(id)),
            decoder: tokenizer.decoder(),
            parser: StreamParser::new(mode),
            stop: StopMatcher::new(stops),
        }
    }

    /// The deltas one more token completes.
    pub fn push(&mut self, token: u32) -> Vec<Delta> {
        if (self.is_special)(token) && !self.structural.contains(&token) {
            return Vec::new();
        }
        let text = self.decoder.push(token);
        let deltas = self.parser.push(&text);
        self.stop_filter(deltas)
    }

    /// The end of the output: everything still held back.
    pub fn finish(&mut self) -> Vec<Delta> {
        let text = self.decoder.flush();
        let mut deltas = self.parser.push(&text);
        deltas.extend(self.parser.finish());
        let mut out = self.stop_filter(deltas);
        if !self.stop.stopped() {
            let rest = self.stop.finish();
            if !rest.is_empty() {
                out.push(Delta::Content(rest));
            }
        }
        out
    }

    /// Whether a stop string ended the content (the caller then cancels the request).
    pub fn stopped(&self) -> bool {
        self.stop.stopped()
    }

    /// The stop string that ended the content.
    pub fn stop_sequence(&self) -> Option<&str> {
        self.stop.matched()
    }

    /// Whether the parser saw broken DSML (its text was kept as content).
    pub fn malformed(&self) -> bool {
        self.parser.malformed()
    }

    fn stop_filter(&mut self, deltas: Vec<Delta>) -> Vec<Delta> {
        let mut out = Vec::new();
        for d in deltas {
            if self.stop.stopped() {
                break;
            }
            match d {
                Delta::Content(t) => {
                    let t = self.stop.push(&t);
                    if !t.is_empty() {
                        out.push(Delta::Content(t));
                    }
                }
                other => out.push(other),
            }
        }
        out
    }
}
