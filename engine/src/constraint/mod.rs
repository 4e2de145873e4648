//! Constrained decoding: a `Constraint` removes the tokens that would break a grammar before
//! each sample (JSON mode, strict tool schemas).

pub mod dsml;
pub mod force;
pub mod json;

use std::sync::{Arc, Mutex, Weak};

/// The bytes of every token id (special tokens as their UTF-8 text).
pub type Vocab = Arc<Vec<Box<[u8]>>>;

/// Tables derived from a vocabulary, one per vocabulary (by `Arc` identity).
pub type VocabCache<T> = Mutex<Vec<(Weak<Vec<Box<[u8]>>>, Arc<T>)>>;

/// The table for `vocab` from `cache`, built with `build` on first use and shared after.
pub fn per_vocab<T>(cache: &VocabCache<T>, vocab: &Vocab, build: impl FnOnce(&Vocab) -> T) -> Arc<T> {
    let mut cache = cache.lock().unwrap_or_else(|e| e.into_inner());
    cache.retain(|(w, _)| w.strong_count() > 0);
    if let Some((_, t)) = cache.iter().find(|(w, _)| std::ptr::eq(w.as_ptr(), Arc::as_ptr(vocab))) {
        return Arc::clone(t);
    }
    let t = Arc::new(build(vocab));
    cache.push((Arc::downgrade(vocab), Arc::clone(&t)));
    t
}

/// A byte that starts a multi-byte UTF-8 character: how many continuation bytes follow and the
/// range the first of them must lie in (RFC 3629: no overlongs, no surrogates, at most U+10FFFF).
/// None for ASCII and for bytes that cannot start a character.
pub fn utf8_lead(b: u8) -> Option<(u8, u8, u8)> {
    Some(match b {
        0xC2..=0xDF => (1, 0x80, 0xBF),
        0xE0 => (2, 0xA0, 0xBF),
        0xE1..=0xEC | 0xEE..=0xEF => (2, 0x80, 0xBF),
        0xED => (2, 0x80, 0x9F),
        0xF0 => (3, 0x90, 0xBF),
        0xF1..=0xF3 => (3, 0x80, 0xBF),
        0xF4 => (3, 0x80, 0x8F),
        _ => return None,
    })
}

/// Restricts which tokens may be sampled next.
pub trait Constraint: Send {
    /// Set the logits of tokens that may not come next to -inf. At least one token (EOS when
    /// the grammar is complete) stays allowed.
    fn mask(&mut self, logits: &mut [f32]);
    /// The token that was sampled.
    fn advance(&mut self, token: u32);
}
