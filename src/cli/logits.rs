//! `dsv4 logits`: prefill P tokens at position 0, then decode the rest one token at a time
//! (teacher-forced), then run the MTP block as the golden README describes.

use std::collections::HashMap;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use dsv4_reference::{ActQuant, Logits, Model};
use dsv4_engine::backend::gpu::GpuBackend;
use dsv4_engine::backend::{Backend, Chunk};
use dsv4_engine::model_step;
use safetensors::{Dtype, SafeTensors};

use super::model::{open_device, parse_cpu_kernels, DeviceChoice};
use dsv4_engine::backend::cpu::CpuKernels;

#[derive(clap::Args)]
pub struct Args {
    /// Checkpoint folder in the released layout (config.json + safetensors).
    #[arg(long)]
    model: PathBuf,
    /// safetensors file holding `input_ids` [B, N] (I64 or I32).
    #[arg(long)]
    input: PathBuf,
    /// Prompt length P: positions 0..P are one prefill, P..N are decoded one by one.
    #[arg(long)]
    prefill: usize,
    /// Switch the activation-quantisation simulation off (the golden "smooth" mode).
    #[arg(long)]
    no_act_quant: bool,
    /// Output safetensors: prefill_logits_all [B,P,V], decode_logits [B,N-P,V], mtp_logits [B,V].
    #[arg(long)]
    out: PathBuf,
    /// cpu runs the reference model; cuda and emu run the CUDA backend (on a GPU, or on the PTX
    /// emulator) through the engine's model step; auto picks cuda when a usable GPU is present.
    #[arg(long, default_value = "cpu")]
    device: DeviceChoice,
    /// On cpu, who runs the heavy ops: reference (the oracle, default), or the engine's kernels
    /// (auto, avx512, avx2, scalar; `-int8` for the approximate FP4 path) inside the same model.
    #[arg(long, default_value = "reference", value_parser = parse_cpu_kernels)]
    cpu_kernels: CpuKernels,
}

pub fn run(a: Args) -> Result<()> {
    let (batch, n, ids) = read_input_ids(&a.input)?;
    if a.prefill == 0 || a.prefill > n {
        bail!("--prefill {} must be between 1 and the sequence length {n} of {}", a.prefill, a.input.display());
    }
    let model = Model::load(&a.model).with_context(|| format!("loading the model from {}", a.model.display()))?;
    let aq = if a.no_act_quant { ActQuant::Off } else { ActQuant::On };
    if let Some(gpu) = open_device(a.device)? {
        return run_on_backend(&a, gpu, model, batch, n, &ids, aq);
    }
    let model = a.cpu_kernels.apply(model);
    let (p, v) = (a.prefill, model.cfg.vocab_size);
    let mut prefill_all = Vec::with_capacity(batch * p * v);
    let mut decode = Vec::with_capacity(batch * (n - p) * v);
    let mut mtp = Vec::with_capacity(batch * v);
    for (b, seq) in ids.chunks(n).enumerate() {
        let ctx = || format!("sequence {b} of {}", a.input.display());
        let mut st = model.new_state();
        let out = model.forward(&seq[..p], &mut st, aq, Logits::All, None).with_context(ctx)?;
        prefill_all.extend_from_slice(&out.logits);
        for &t in &seq[p..] {
            let step = model.forward(&[t], &mut st, aq, Logits::Last, None).with_context(ctx)?;
            decode.extend_from_slice(&step.logits);
        }
        if !model.w.mtp.is_empty() && p >= 2 {
            // MTP on the main model's streams at positions 0..P-2 with the tokens 1..P.
            let row = model.cfg.hc_mult * model.cfg.dim;
            let mut ms = model.new_mtp_state();
            let m = model.mtp(0, &out.hidden[..(p - 1) * row], &seq[1..p], &mut ms, aq, Logits::Last).with_context(ctx)?;
            mtp.extend_from_slice(&m.logits);
        }
    }
    let mut tensors: Vec<(&str, Vec<usize>, &[f32])> =
        vec![("prefill_logits_all", vec![batch, p, v], &prefill_all), ("decode_logits", vec![batch, n - p, v], &decode)];
    if mtp.len() == batch * v {
        tensors.push(("mtp_logits", vec![batch, v], &mtp));
    }
    write_f32(&a.out, &tensors)
}

/// The same teacher-forced run through the engine's model step on the CUDA backend, and the
/// MTP block on the prefill's final streams.
fn run_on_backend(a: &Args, gpu: dsv4_kernels::Gpu, model: Model, batch: usize, n: usize, ids: &[u32], aq: ActQuant) -> Result<()> {
    let (p, v) = (a.prefill, model.cfg.vocab_size);
    if let Some((i, &t)) = ids.iter().enumerate().find(|(_, &t)| t as usize >= v) {
        bail!("'input_ids' in {} holds token id {t} at index {i}, outside the vocabulary (size {v})", a.input.display());
    }
    if n > model.cfg.max_seq_len {
        bail!("{}: sequences of {n} tokens exceed the model's max_seq_len {}", a.input.display(), model.cfg.max_seq_len);
    }
    let mut b = GpuBackend::new(gpu, model).context("uploading the model to the device")?;
    let mut prefill_all = Vec::with_capacity(batch * p * v);
    let mut decode = Vec::with_capacity(batch * (n - p) * v);
    let mut mtp = Vec::with_capacity(batch * v);
    for seq in ids.chunks(n) {
        b.state_reset(0);
        let all: Vec<usize> = (0..p).collect();
        let hidden = model_step::forward_hidden(&mut b, &seq[..p], &[Chunk { slot: 0, pos0: 0, rows: 0..p }], aq);
        prefill_all.extend(b.logits(&hidden, &all));
        for (i, &t) in seq[p..].iter().enumerate() {
            decode.extend(model_step::forward(&mut b, &[t], &[Chunk { slot: 0, pos0: p + i, rows: 0..1 }], aq, &[0]));
        }
        if p >= 2 {
            // MTP on the main streams at positions 0..P-2 with the tokens 1..P, from position 0
            // of a fresh MTP state (as the reference and the golden files).
            b.state_reset(1);
            if let Some(l) = b.mtp_logits(1, &hidden, &seq[1..p], 0, aq) {
                mtp.extend(l);
            }
            b.state_release(1);
        }
        b.state_release(0);
    }
    let mut tensors: Vec<(&str, Vec<usize>, &[f32])> = vec![("prefill_logits_all", vec![batch, p, v], &prefill_all), ("decode_logits", vec![batch, n - p, v], &decode)];
    if mtp.len() == batch * v {
        tensors.push(("mtp_logits", vec![batch, v], &mtp));
    }
    write_f32(&a.out, &tensors)
}

/// `input_ids` [B, N] as u32, with B and N.
fn read_input_ids(path: &PathBuf) -> Result<(usize, usize, Vec<u32>)> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let st = SafeTensors::deserialize(&bytes).with_context(|| format!("{} is not a valid safetensors file", path.display()))?;
    let t = st.tensor("input_ids").with_context(|| format!("{} has no tensor 'input_ids'", path.display()))?;
    let shape = t.shape();
    if shape.len() != 2 || shape[0] == 0 || shape[1] == 0 {
        bail!("'input_ids' in {} must be [B, N] with B, N > 0, found {shape:?}", path.display());
    }
    let vals: Vec<i64> = match t.dtype() {
        Dtype::I64 => t.data().chunks_exact(8).map(|c| i64::from_le_bytes(c.try_into().unwrap())).collect(),
        Dtype::I32 => t.data().chunks_exact(4).map(|c| i32::from_le_bytes(c.try_into().unwrap()) as i64).collect(),
        other => bail!("'input_ids' in {} must be I64 or I32, found {other:?}", path.display()),
    };
    let ids = vals
        .iter()
        .map(|&v| u32::try_from(v).map_err(|_| anyhow::anyhow!("'input_ids' in {} holds the invalid token id {v}", path.display())))
        .collect::<Result<Vec<u32>>>()?;
    Ok((shape[0], shape[1], ids))
}

fn write_f32(path: &PathBuf, tensors: &[(&str, Vec<usize>, &[f32])]) -> Result<()> {
    let bytes: Vec<Vec<u8>> = tensors.iter().map(|(_, _, d)| d.iter().flat_map(|v| v.to_le_bytes()).collect()).collect();
    let views: Vec<(String, safetensors::tensor::TensorView)> = tensors
        .iter()
        .zip(&bytes)
        .map(|((name, shape, _), b)| Ok((name.to_string(), safetensors::tensor::TensorView::new(Dtype::F32, shape.clone(), b)?)))
        .collect::<Result<_, safetensors::SafeTensorError>>()?;
    let data = safetensors::serialize(views, None::<HashMap<String, String>>)?;
    std::fs::write(path, data).with_context(|| format!("writing {}", path.display()))
}
