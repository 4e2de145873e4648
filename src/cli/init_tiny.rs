//! `dsv4 init-tiny DIR`: write the tiny random model in the released layout.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};

#[derive(clap::Args)]
pub struct Args {
    /// Folder to create (must not hold a model already).
    dir: PathBuf,
}

pub fn run(a: Args) -> Result<()> {
    if a.dir.join("model.safetensors").exists() {
        bail!("{} already holds a model.safetensors; choose an empty folder", a.dir.display());
    }
    std::fs::create_dir_all(&a.dir).with_context(|| format!("creating {}", a.dir.display()))?;
    dsv4_engine::tiny::write_tiny_model(&a.dir).with_context(|| format!("writing the tiny model into {}", a.dir.display()))?;
    println!("wrote a tiny model with random weights to {}", a.dir.display());
    Ok(())
}
