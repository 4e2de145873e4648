//! Constrained decoding: a `Constraint` removes the tokens that would break a grammar before
//! each sample (JSON mode, strict tool schemas).

pub mod dsml;
pub mod force;
pub mod json;

/// Restricts which tokens may be sampled next.
pub trait Constraint: Send {
    /// Set the logits of tokens that may not come next to -inf. At least one token (EOS when
    /// the grammar is complete) stays allowed.
    fn mask(&mut self, logits: &mut [f32]);
    /// The token that was sampled.
    fn advance(&mut self, token: u32);
}
