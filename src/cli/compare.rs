//! `dsv4 compare`: per-row relative errors and argmax agreement of a `dsv4 logits` output
//! against a golden file (the comparisons of `../shared/golden/README.md`).

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use dsv4_reference::golden::{argmax, rel_err, GoldenFile};

#[derive(clap::Args)]
pub struct Args {
    /// The output of `dsv4 logits`.
    #[arg(long)]
    out: PathBuf,
    /// The golden file with the same tensor names.
    #[arg(long)]
    golden: PathBuf,
}

pub fn run(a: Args) -> Result<()> {
    let ours = GoldenFile::open(&a.out).with_context(|| format!("reading {}", a.out.display()))?;
    let gold = GoldenFile::open(&a.golden).with_context(|| format!("reading {}", a.golden.display()))?;
    let names = ours.names();
    let mut compared = 0;
    for name in ["prefill_logits_all", "decode_logits", "mtp_logits"] {
        if !names.iter().any(|n| n == name) || !gold.names().iter().any(|n| n == name) {
            continue;
        }
        let (shape, want_shape) = (ours.shape(name), gold.shape(name));
        if shape != want_shape {
            bail!("{name}: shape {shape:?} in {} but {want_shape:?} in {}", a.out.display(), a.golden.display());
        }
        let v = *shape.last().unwrap();
        let (x, y) = (ours.f32s(name), gold.f32s(name));
        let errs: Vec<f64> = x.chunks(v).zip(y.chunks(v)).map(|(a, b)| rel_err(a, b)).collect();
        let agree = x.chunks(v).zip(y.chunks(v)).filter(|(a, b)| argmax(a) == argmax(b)).count();
        let max = errs.iter().cloned().fold(0.0, f64::max);
        println!("{name:20} rows {:5}  max row rel err {max:.3e}  argmax agreement {agree}/{}", errs.len(), errs.len());
        compared += 1;
    }
    if compared == 0 {
        bail!("no logits tensor is in both {} and {}", a.out.display(), a.golden.display());
    }
    Ok(())
}
