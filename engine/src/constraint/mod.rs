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

/// Restricts which tokens may be sampled next.
pub trait Constraint: Send {
    /// Set the logits of tokens that may not come next to -inf. At least one token (EOS when
    /// the grammar is complete) stays allowed.
    fn mask(&mut self, logits: &mut [f32]);
    /// The token that was sampled.
    fn advance(&mut self, token: u32);
}
