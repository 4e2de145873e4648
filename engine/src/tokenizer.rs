//! The DeepSeek-V4 tokenizer: `tokenizer.json` (byte-level BPE, 129,280 ids with the added
//! tokens) through the Hugging Face `tokenizers` crate, plus an incremental decoder for streaming.
//!
//! No BOS/EOS is ever added: the chat encoder writes BOS into the text, and special tokens in the
//! text (`<｜User｜>`, `<think>`, `｜DSML｜` ...) come out as their single ids.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::chat::{BOS, EOS};

#[derive(Debug, thiserror::Error)]
pub enum TokenizerError {
    #[error("loading tokenizer {}: {message}", path.display())]
    Load { path: PathBuf, message: String },
    #[error("tokenizer {}: no token {token:?}", path.display())]
    MissingToken { path: PathBuf, token: String },
    #[error("tokenizing: {0}")]
    Encode(String),
}

/// A loaded tokenizer. Cheap to clone (the tables are shared).
#[derive(Clone)]
pub struct Tokenizer {
    inner: Arc<tokenizers::Tokenizer>,
    /// Bytes of every id, as the byte-level decoder turns it into text.
    bytes: Arc<Vec<Box<[u8]>>>,
    /// Which ids are special (control) tokens.
    special: Arc<Vec<bool>>,
    bos: u32,
    eos: u32,
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokenizer").field("vocab_size", &self.vocab_size()).finish()
    }
}

/// GPT-2's byte <-> printable char map used by byte-level BPE: the char of each byte.
fn byte_level_chars() -> [char; 256] {
    let mut chars = ['\0'; 256];
    let mut n = 0u32;
    for b in 0..=255u8 {
        let printable = matches!(b, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF);
        chars[b as usize] = if printable {
            b as char
        } else {
            n += 1;
            char::from_u32(255 + n).expect("valid char")
        };
    }
    chars
}

impl Tokenizer {
    /// Load `tokenizer.json`; errors name the file.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, TokenizerError> {
        let path = path.as_ref();
        let inner = tokenizers::Tokenizer::from_file(path)
            .map_err(|e| TokenizerError::Load { path: path.to_path_buf(), message: e.to_string() })?;
        let id = |token: &str| {
            inner
                .token_to_id(token)
                .ok_or_else(|| TokenizerError::MissingToken { path: path.to_path_buf(), token: token.to_string() })
        };
        let (bos, eos) = (id(BOS)?, id(EOS)?);

        // The byte-level decoder maps each char of a token back to its byte; a token with a char
        // outside that map (the added tokens such as `<｜User｜>`) is taken as its UTF-8 text.
        let chars = byte_level_chars();
        let mut byte_of = std::collections::HashMap::with_capacity(256);
        for (b, c) in chars.iter().enumerate() {
            byte_of.insert(*c, b as u8);
        }
        let size = inner.get_vocab(true).values().map(|&i| i as usize + 1).max().unwrap_or(0);
        let bytes = (0..size as u32)
            .map(|i| match inner.id_to_token(i) {
                None => Box::default(),
                Some(tok) => match tok.chars().map(|c| byte_of.get(&c).copied()).collect::<Option<Vec<u8>>>() {
                    Some(b) => b.into_boxed_slice(),
                    None => tok.as_bytes().into(),
                },
            })
            .collect();
        let mut special = vec![false; size];
        for (id, tok) in inner.get_added_tokens_decoder() {
            if tok.special && (id as usize) < size {
                special[id as usize] = true;
            }
        }
        Ok(Tokenizer { inner: Arc::new(inner), bytes: Arc::new(bytes), special: Arc::new(special), bos, eos })
    }

    /// Token ids of `text` (no BOS/EOS added; special tokens recognised).
    pub fn try_encode(&self, text: &str) -> Result<Vec<u32>, TokenizerError> {
        let enc = self.inner.encode_fast(text, false).map_err(|e| TokenizerError::Encode(e.to_string()))?;
        Ok(enc.get_ids().to_vec())
    }

    /// Token ids of `text` (no BOS/EOS added; special tokens recognised). Byte-level BPE covers
    /// every string, so this does not fail for a well-formed tokenizer file.
    pub fn encode(&self, text: &str) -> Vec<u32> {
        self.try_encode(text).unwrap_or_else(|e| panic!("byte-level BPE cannot fail: {e}"))
    }

    /// The text of `ids` (special tokens included; invalid UTF-8 becomes U+FFFD; unknown ids are
    /// skipped).
    pub fn decode(&self, ids: &[u32]) -> String {
        let mut d = self.decoder();
        let mut out = d.push_all(ids);
        out.push_str(&d.flush());
        out
    }

    /// The text of `ids` as the `tokenizers` library decodes it (the reference for [`decode`]).
    pub fn decode_reference(&self, ids: &[u32]) -> Result<String, TokenizerError> {
        self.inner.decode(ids, false).map_err(|e| TokenizerError::Encode(e.to_string()))
    }

    /// An incremental decoder.
    pub fn decoder(&self) -> Decoder {
        Decoder { bytes: Arc::clone(&self.bytes), buf: Vec::new() }
    }

    /// The id of a token given by its text (special tokens, or any vocabulary entry in its
    /// byte-level spelling).
    pub fn token_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    /// The text of one id (byte-level spelling for vocabulary entries).
    pub fn id_token(&self, id: u32) -> Option<String> {
        self.inner.id_to_token(id)
    }

    pub fn bos_id(&self) -> u32 {
        self.bos
    }

    pub fn eos_id(&self) -> u32 {
        self.eos
    }

    /// Number of ids (the largest id + 1): 129,280 for DeepSeek-V4.
    pub fn vocab_size(&self) -> usize {
        self.bytes.len()
    }

    /// The bytes each id decodes to (index = id; empty for ids with no token), shared: for
    /// constrained decoding over the raw byte stream. Special tokens are their UTF-8 text.
    pub fn token_bytes_table(&self) -> Arc<Vec<Box<[u8]>>> {
        Arc::clone(&self.bytes)
    }

    /// Whether `id` is one of the special (control) tokens of `tokenizer.json`.
    pub fn is_special(&self, id: u32) -> bool {
        self.special.get(id as usize).copied().unwrap_or(false)
    }
}

/// Incremental decoding: push ids as they are sampled, get the text they complete. A multi-byte
/// char split across tokens comes out whole once its last byte arrives; the concatenation of all
/// outputs plus [`flush`](Self::flush) equals [`Tokenizer::decode`] of all the ids.
#[derive(Debug, Clone)]
pub struct Decoder {
    bytes: Arc<Vec<Box<[u8]>>>,
    buf: Vec<u8>,
}

impl Decoder {
    /// Add one id; returns the newly completed text (possibly empty).
    pub fn push(&mut self, id: u32) -> String {
        if let Some(b) = self.bytes.get(id as usize) {
            self.buf.extend_from_slice(b);
        }
        self.take_complete()
    }

    pub fn push_all(&mut self, ids: &[u32]) -> String {
        for &id in ids {
            if let Some(b) = self.bytes.get(id as usize) {
                self.buf.extend_from_slice(b);
            }
        }
        self.take_complete()
    }

    /// Bytes held back (the start of an unfinished char).
    pub fn pending(&self) -> usize {
        self.buf.len()
    }

    /// The end of the stream: an unfinished char becomes U+FFFD.
    pub fn flush(&mut self) -> String {
        let out = String::from_utf8_lossy(&self.buf).into_owned();
        self.buf.clear();
        out
    }

    /// Everything up to an incomplete trailing char, invalid bytes as U+FFFD exactly as
    /// `String::from_utf8_lossy` of the whole stream would have them.
    fn take_complete(&mut self) -> String {
        let mut out = String::new();
        let mut start = 0;
        loop {
            match std::str::from_utf8(&self.buf[start..]) {
                Ok(s) => {
                    out.push_str(s);
                    start = self.buf.len();
                    break;
                }
                Err(e) => {
                    let valid = start + e.valid_up_to();
                    out.push_str(std::str::from_utf8(&self.buf[start..valid]).expect("valid prefix"));
                    match e.error_len() {
                        Some(n) => {
                            out.push('\u{FFFD}');
                            start = valid + n;
                        }
                        None => {
                            start = valid;
                            break;
                        }
                    }
                }
            }
        }
        self.buf.drain(..start);
        out
    }
}
