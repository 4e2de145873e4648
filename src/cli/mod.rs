pub mod chat;
pub mod compare;
pub mod generate;
pub mod init_tiny;
pub mod logits;
pub mod model;
