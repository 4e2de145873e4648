pub mod compare;
pub mod logits;
