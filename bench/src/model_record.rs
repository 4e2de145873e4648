//! Turning a projected step time into a `ModelRecord` with its bound beside it: the glue
//! `dsv4 bench model` calls once per scenario, kept here so the arithmetic is tested on the CPU.

use std::collections::BTreeMap;

use dsv4_reference::Config;

use crate::report::ModelRecord;
use crate::roofline::{bytes_per_step, flops_per_token, roofline_tokens_per_s};
use crate::scenario::{LayerCosts, Projection, Scenario};

/// The machine's measured rooflines for the run.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rooflines {
    pub bandwidth_gb_per_s: f64,
    pub compute_gflop_per_s: f64,
}

/// Tokens a step of `s` processes, and the (bytes per token, FLOPs per token) that bound it.
/// Decode: B tokens at context C. Prefill / TTFT of P tokens: one step reading every touched
/// weight once (distinct experts for P tokens), each token attending P/2 earlier ones on average.
pub fn step_work(cfg: &Config, s: &Scenario) -> (usize, f64, f64) {
    match *s {
        Scenario::Decode { batch, context } => {
            (batch, bytes_per_step(cfg, batch, None).total() / batch as f64, flops_per_token(cfg, context, None))
        }
        Scenario::Ttft { prompt: p } | Scenario::Prefill { tokens: p } => {
            (p, bytes_per_step(cfg, p, None).total() / p as f64, flops_per_token(cfg, p / 2, None))
        }
    }
}

/// `ratio0` / `ratio4` / `ratio128` per-layer ms plus `embed` and `head` ms.
pub fn ms_by_kind(costs: &LayerCosts) -> BTreeMap<String, f64> {
    let mut m: BTreeMap<String, f64> = costs.per_kind_s.iter().map(|(k, t)| (format!("ratio{k}"), t * 1e3)).collect();
    m.insert("embed".into(), costs.embed_s * 1e3);
    m.insert("head".into(), costs.head_s * 1e3);
    m
}

/// A record for scenario `s` whose full-depth step took `proj.step_s` (summed from
/// `proj.costs`). Device, date, commit and telemetry are left for the caller.
pub fn model_record(cfg: &Config, s: &Scenario, backend: &str, proj: &Projection, layers_measured: usize, roof: Rooflines) -> ModelRecord {
    let (tokens, bytes, flops) = step_work(cfg, s);
    let tps = tokens as f64 / proj.step_s;
    let bound = roofline_tokens_per_s(roof.bandwidth_gb_per_s, bytes, roof.compute_gflop_per_s, flops);
    let (batch, context, prompt) = match *s {
        Scenario::Decode { batch, context } => (batch, context, 0),
        Scenario::Ttft { prompt } => (1, 0, prompt),
        Scenario::Prefill { tokens } => (1, 0, tokens),
    };
    ModelRecord {
        scenario: s.to_string(),
        backend: backend.into(),
        batch,
        context,
        prompt,
        layers_measured,
        layers_total: cfg.n_layers,
        tokens_per_s: if matches!(s, Scenario::Ttft { .. }) { None } else { Some(tps) },
        ttft_s: if matches!(s, Scenario::Ttft { .. }) { Some(proj.step_s) } else { None },
        step_s: proj.step_s,
        ms_per_layer_by_kind: ms_by_kind(&proj.costs),
        bound_tokens_per_s: Some(bound),
        pct_of_bound: Some(100.0 * tps / bound),
        bytes_per_token: bytes,
        flops_per_token: flops,
        bandwidth_gb_per_s: roof.bandwidth_gb_per_s,
        compute_gflop_per_s: roof.compute_gflop_per_s,
        projected: proj.projected,
        basis: proj.basis.clone(),
        ..Default::default()
    }
}
