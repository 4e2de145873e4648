//! The run behind `dsv4 bench model`: which step shapes to measure for a list of scenarios
//! ([`plan`]), measuring them on a backend ([`measure`]), and turning the measured per-layer
//! costs into one record per scenario ([`records`]), projected to the full depth and, where a
//! context or prompt was too long to run, to that length.
//!
//! Planning rule: a decode scenario whose context is at most `max_context` is measured as is;
//! a longer one is projected from a straight-line fit over at least two measured contexts of
//! the same batch (`max_context / 4` and `max_context` are added when the scenarios give fewer).
//! TTFT and prefill scenarios do the same with prompt lengths and `max_prompt`.

use std::collections::{BTreeMap, BTreeSet};

use dsv4_engine::backend::Backend;
use dsv4_reference::{ActQuant, Config};

use crate::model_bench::{decode, prefill, StepTimes};
use crate::model_record::{model_record, Rooflines};
use crate::progress::Progress;
use crate::report::ModelRecord;
use crate::scenario::{project_at_context, size_str, LayerCosts, ProjectionError, Scenario};

/// The step shapes a run measures.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// `(batch, context)` decode steps.
    pub decode: BTreeSet<(usize, usize)>,
    /// Prompt lengths prefilled in one chunk (TTFT and prefill throughput share them).
    pub prefill: BTreeSet<usize>,
}

impl Plan {
    /// Number of measurements (for the progress line).
    pub fn len(&self) -> usize {
        self.decode.len() + self.prefill.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Adds the lengths a fit needs when `wanted` exceeds `max`: `max / 4` and `max` (at least 1).
fn fit_points(max: usize) -> [usize; 2] {
    [(max / 4).max(1), max.max(1)]
}

/// What to measure for `scenarios` when contexts above `max_context` and prompts above
/// `max_prompt` cannot be run.
pub fn plan(scenarios: &[Scenario], max_context: usize, max_prompt: usize) -> Plan {
    let mut p = Plan::default();
    let mut long_batches = BTreeSet::new();
    let mut long_prompt = false;
    for s in scenarios {
        match *s {
            Scenario::Decode { batch, context } if context <= max_context => {
                p.decode.insert((batch, context));
            }
            Scenario::Decode { batch, .. } => {
                long_batches.insert(batch);
            }
            Scenario::Ttft { prompt: n } | Scenario::Prefill { tokens: n } if n <= max_prompt => {
                p.prefill.insert(n);
            }
            Scenario::Ttft { .. } | Scenario::Prefill { .. } => long_prompt = true,
        }
    }
    for b in long_batches {
        if p.decode.iter().filter(|(pb, _)| *pb == b).count() < 2 {
            for c in fit_points(max_context) {
                p.decode.insert((b, c));
            }
        }
    }
    if long_prompt && p.prefill.len() < 2 {
        p.prefill.extend(fit_points(max_prompt));
    }
    p
}

/// Measured per-layer costs of every planned shape.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Measured {
    /// batch -> [(context, costs)].
    pub decode: BTreeMap<usize, Vec<(usize, LayerCosts)>>,
    /// [(prompt, costs)].
    pub prefill: Vec<(usize, LayerCosts)>,
}

/// How to time each step.
#[derive(Clone, Copy, Debug)]
pub struct MeasureOpts {
    /// Timed steps per shape after one warm-up (the median is kept).
    pub runs: usize,
    pub act_quant: ActQuant,
    /// Download after each block (GPU backends: the queue is drained inside the clock).
    pub sync: bool,
    /// Draw a progress line.
    pub progress: bool,
}

/// The per-kind costs of one timed step on `built` (the model the backend holds).
fn costs_of(built: &Config, t: &StepTimes) -> LayerCosts {
    let ratios: Vec<usize> = (0..built.n_layers).map(|l| built.compress_ratio(l)).collect();
    LayerCosts::from_blocks(&ratios, &t.blocks_s, t.embed_s, t.head_s)
}

/// Runs every shape of `plan` on `b`. `on_step` sees each shape's label and median step times
/// (for a per-layer log).
pub fn measure<B: Backend>(b: &mut B, plan: &Plan, o: MeasureOpts, mut on_step: impl FnMut(&str, &StepTimes)) -> Measured {
    let built = b.config().clone();
    let mut m = Measured::default();
    let mut prog = Progress::with_enabled(plan.len(), o.progress);
    for &(batch, context) in &plan.decode {
        let label = format!("decode:{batch}@{}", size_str(context));
        prog.start(&label);
        let t = decode(b, batch, context, o.runs, o.act_quant, o.sync);
        on_step(&label, &t);
        m.decode.entry(batch).or_default().push((context, costs_of(&built, &t)));
        prog.inc();
    }
    for &n in &plan.prefill {
        let label = format!("prefill:{}", size_str(n));
        prog.start(&label);
        let t = prefill(b, n, o.runs, o.act_quant, o.sync);
        on_step(&label, &t);
        m.prefill.push((n, costs_of(&built, &t)));
        prog.inc();
    }
    prog.finish();
    m
}

/// One record per scenario, in order: `full` is the config the figures are projected to (the
/// built model's geometry at full depth), `layers_measured` the built model's layer count.
/// An error names the scenario whose projection lacked a measurement.
pub fn records(
    full: &Config,
    scenarios: &[Scenario],
    m: &Measured,
    layers_measured: usize,
    backend: &str,
    roof: Rooflines,
) -> Result<Vec<ModelRecord>, ProjectionError> {
    scenarios
        .iter()
        .map(|s| {
            let (points, x) = match *s {
                Scenario::Decode { batch, context } => (m.decode.get(&batch).map(Vec::as_slice).unwrap_or(&[]), context),
                Scenario::Ttft { prompt: n } | Scenario::Prefill { tokens: n } => (&m.prefill[..], n),
            };
            let proj = project_at_context(full, points, x, layers_measured).map_err(|e| ProjectionError(format!("{s}: {}", e.0)))?;
            let mut r = model_record(full, s, backend, &proj, layers_measured, roof);
            if !matches!(s, Scenario::Decode { .. }) {
                r.basis = format!("{}; one chunk from position 0", r.basis);
            }
            Ok(r)
        })
        .collect()
}

/// The model run's plots, `(file suffix, SVG)`: decode tokens/s against batch (a line per
/// context) and TTFT against prompt length, each when the records have such scenarios.
pub fn model_svgs(records: &[ModelRecord], title: &str) -> Vec<(&'static str, String)> {
    use crate::svg::{line_chart, Series};
    let mut out = Vec::new();
    let mut by_ctx: BTreeMap<usize, Vec<(f64, f64)>> = BTreeMap::new();
    for r in records.iter().filter(|r| r.scenario.starts_with("decode:")) {
        if let Some(t) = r.tokens_per_s {
            by_ctx.entry(r.context).or_default().push((r.batch as f64, t));
        }
    }
    if !by_ctx.is_empty() {
        let series: Vec<Series> =
            by_ctx.into_iter().map(|(c, mut points)| {
                points.sort_by(|a, b| a.0.total_cmp(&b.0));
                Series { name: format!("context {}", size_str(c)), points }
            }).collect();
        out.push(("decode", line_chart(&format!("decode tokens/s, {title}"), "batch", "tokens/s", &series)));
    }
    let mut ttft: Vec<(f64, f64)> = records.iter().filter_map(|r| r.ttft_s.map(|t| (r.prompt as f64, t))).collect();
    if !ttft.is_empty() {
        ttft.sort_by(|a, b| a.0.total_cmp(&b.0));
        out.push(("ttft", line_chart(&format!("time to first token, {title}"), "prompt tokens", "seconds", &[Series { name: "TTFT".into(), points: ttft }])));
    }
    out
}
