//! What `dsv4 bench model` measures (scenarios parsed from short strings) and how measured
//! per-layer costs become full-model figures (projections).
//!
//! A synthetic model with the real geometry rarely fits whole, so a run measures some layers of
//! each kind (compress ratio 0, 4, 128), and the 43-layer step is the sum over the config's
//! layers of their kind's measured cost plus the fixed pieces (embedding, head). Contexts too long
//! to hold are projected from a straight-line fit of per-layer cost against context. Every
//! projected figure carries `projected: true` and the basis it came from.

use std::collections::BTreeMap;
use std::fmt;

use dsv4_reference::Config;

/// One measured figure of issue 6's scenario list.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scenario {
    /// Time to first token of a `prompt`-token prompt (prefill + the first logits).
    Ttft { prompt: usize },
    /// Steady decode of `batch` sequences at `context` earlier tokens each.
    Decode { batch: usize, context: usize },
    /// Prefill throughput over `tokens` prompt tokens.
    Prefill { tokens: usize },
}

impl fmt::Display for Scenario {
    /// The parser's own spelling: `ttft:8k`, `decode:32@64k`, `prefill:4k`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scenario::Ttft { prompt } => write!(f, "ttft:{}", size_str(*prompt)),
            Scenario::Decode { batch, context } => write!(f, "decode:{batch}@{}", size_str(*context)),
            Scenario::Prefill { tokens } => write!(f, "prefill:{}", size_str(*tokens)),
        }
    }
}

/// `1m`, `64k`, `1000` (the shortest exact spelling with k = 1024, m = 1048576).
pub fn size_str(n: usize) -> String {
    if n >= 1 << 20 && n.is_multiple_of(1 << 20) {
        format!("{}m", n >> 20)
    } else if n >= 1 << 10 && n.is_multiple_of(1 << 10) {
        format!("{}k", n >> 10)
    } else {
        n.to_string()
    }
}

/// A scenario string that does not parse; the message names the offending token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScenarioError(pub String);

impl fmt::Display for ScenarioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ScenarioError {}

/// A token count: digits with an optional `k` (x1024) or `m` (x1048576) suffix, non-zero.
pub fn parse_size(tok: &str) -> Result<usize, ScenarioError> {
    let t = tok.trim();
    let lower = t.to_ascii_lowercase();
    let (digits, mult) = match lower.strip_suffix('k') {
        Some(d) => (d, 1usize << 10),
        None => match lower.strip_suffix('m') {
            Some(d) => (d, 1usize << 20),
            None => (lower.as_str(), 1),
        },
    };
    let n: usize = digits
        .parse()
        .map_err(|_| ScenarioError(format!("bad size '{t}': expected a number with an optional k (1024) or m (1048576) suffix")))?;
    if n == 0 {
        return Err(ScenarioError(format!("bad size '{t}': must be > 0")));
    }
    n.checked_mul(mult).ok_or_else(|| ScenarioError(format!("bad size '{t}': too large")))
}

fn sizes(list: &str, what: &str) -> Result<Vec<usize>, ScenarioError> {
    if list.trim().is_empty() {
        return Err(ScenarioError(format!("empty {what} list")));
    }
    list.split(',').map(parse_size).collect()
}

/// One scenario group: `ttft:1k,8k,64k`, `decode:1,8,32,128@4k,64k,1m` (every batch at every
/// context), `prefill:4k`. Kinds are case-insensitive; sizes take k / m suffixes.
pub fn parse_group(s: &str) -> Result<Vec<Scenario>, ScenarioError> {
    let s = s.trim();
    let (kind, rest) = s
        .split_once(':')
        .ok_or_else(|| ScenarioError(format!("bad scenario '{s}': expected KIND:SIZES, e.g. ttft:8k, decode:1,8@4k, prefill:4k")))?;
    match kind.trim().to_ascii_lowercase().as_str() {
        "ttft" => Ok(sizes(rest, "prompt")?.into_iter().map(|prompt| Scenario::Ttft { prompt }).collect()),
        "prefill" => Ok(sizes(rest, "token")?.into_iter().map(|tokens| Scenario::Prefill { tokens }).collect()),
        "decode" => {
            let (batches, contexts) = rest
                .split_once('@')
                .ok_or_else(|| ScenarioError(format!("bad scenario '{s}': decode needs BATCHES@CONTEXTS, e.g. decode:1,8@4k,64k")))?;
            let batches = sizes(batches, "batch")?;
            let contexts = sizes(contexts, "context")?;
            Ok(contexts.iter().flat_map(|&context| batches.iter().map(move |&batch| Scenario::Decode { batch, context })).collect())
        }
        other => Err(ScenarioError(format!("unknown scenario kind '{other}' in '{s}' (expected ttft, decode or prefill)"))),
    }
}

/// Several groups separated by `;` or given as separate strings (each may hold `;`).
pub fn parse_scenarios<S: AsRef<str>>(groups: &[S]) -> Result<Vec<Scenario>, ScenarioError> {
    let mut out = Vec::new();
    for g in groups {
        for part in g.as_ref().split(';').filter(|p| !p.trim().is_empty()) {
            out.extend(parse_group(part)?);
        }
    }
    if out.is_empty() {
        return Err(ScenarioError("no scenario given".into()));
    }
    Ok(out)
}

/// Issue 6's set: TTFT at 1K/8K/64K, decode at batch 1/8/32/128 and contexts 4K/64K/1M,
/// prefill throughput at 4K.
pub const DEFAULT_SCENARIOS: &str = "ttft:1k,8k,64k;decode:1,8,32,128@4k,64k,1m;prefill:4k";

pub fn default_scenarios() -> Vec<Scenario> {
    parse_scenarios(&[DEFAULT_SCENARIOS]).expect("the default scenarios parse")
}

/// A layer's kind for projection: its compress ratio (0 = window only, 4, 128).
pub fn layer_kind(cfg: &Config, layer: usize) -> usize {
    cfg.compress_ratio(layer)
}

/// How many of the config's `n_layers` layers are of each kind.
pub fn layer_kind_counts(cfg: &Config) -> BTreeMap<usize, usize> {
    let mut m = BTreeMap::new();
    for l in 0..cfg.n_layers {
        *m.entry(layer_kind(cfg, l)).or_insert(0) += 1;
    }
    m
}

/// Measured costs of one step shape (seconds): the median per-layer time of each layer kind,
/// and the fixed pieces that happen once per step.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LayerCosts {
    /// compress ratio -> seconds per layer of that kind.
    pub per_kind_s: BTreeMap<usize, f64>,
    pub embed_s: f64,
    pub head_s: f64,
}

impl LayerCosts {
    /// Median per-kind cost from `blocks_s[i]` measured on layers whose ratios are `ratios[i]`
    /// (e.g. a `StepTimes` of a shortened model and its config's `compress_ratios`).
    pub fn from_blocks(ratios: &[usize], blocks_s: &[f64], embed_s: f64, head_s: f64) -> LayerCosts {
        let mut by: BTreeMap<usize, Vec<f64>> = BTreeMap::new();
        for (&r, &t) in ratios.iter().zip(blocks_s) {
            by.entry(r).or_default().push(t);
        }
        let per_kind_s = by.into_iter().map(|(r, v)| (r, crate::bandwidth::median(v))).collect();
        LayerCosts { per_kind_s, embed_s, head_s }
    }
}

/// A projection's inputs were incomplete.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProjectionError(pub String);

impl fmt::Display for ProjectionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ProjectionError {}

/// The full-depth step time: `embed + head + Σ_layers cost[kind(layer)]` over `cfg.n_layers`.
/// Errors name a kind the config uses that was not measured.
pub fn project_step_s(cfg: &Config, costs: &LayerCosts) -> Result<f64, ProjectionError> {
    let mut t = costs.embed_s + costs.head_s;
    for (kind, n) in layer_kind_counts(cfg) {
        let c = costs
            .per_kind_s
            .get(&kind)
            .ok_or_else(|| ProjectionError(format!("no measured layer of compress ratio {kind} ({n} such layers in the config)")))?;
        t += c * n as f64;
    }
    Ok(t)
}

/// `y = intercept + slope · x`, least squares.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LinearFit {
    pub intercept: f64,
    pub slope: f64,
}

impl LinearFit {
    /// Least-squares fit of `(x, y)` points; needs >= 2 distinct x.
    pub fn fit(points: &[(f64, f64)]) -> Result<LinearFit, ProjectionError> {
        let n = points.len() as f64;
        let mx = points.iter().map(|p| p.0).sum::<f64>() / n;
        let my = points.iter().map(|p| p.1).sum::<f64>() / n;
        let sxx: f64 = points.iter().map(|p| (p.0 - mx).powi(2)).sum();
        if points.len() < 2 || sxx <= 0.0 {
            return Err(ProjectionError(format!("a fit against context needs >= 2 distinct measured contexts, got {}", points.len())));
        }
        let sxy: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
        let slope = sxy / sxx;
        Ok(LinearFit { intercept: my - slope * mx, slope })
    }

    /// [`LinearFit::fit`] for a cost that cannot fall as `x` grows: a negative slope (timing
    /// noise between close points) becomes a flat line at the mean, so an extrapolation never
    /// promises a longer context for less.
    pub fn fit_rising(points: &[(f64, f64)]) -> Result<LinearFit, ProjectionError> {
        let f = LinearFit::fit(points)?;
        if f.slope >= 0.0 {
            return Ok(f);
        }
        let mean = points.iter().map(|p| p.1).sum::<f64>() / points.len() as f64;
        Ok(LinearFit { intercept: mean, slope: 0.0 })
    }

    pub fn at(&self, x: f64) -> f64 {
        self.intercept + self.slope * x
    }
}

/// Per-layer costs at several measured contexts (same batch), to project longer contexts.
pub fn fit_costs_vs_context(measured: &[(usize, LayerCosts)]) -> Result<ContextModel, ProjectionError> {
    let mut kinds: BTreeMap<usize, Vec<(f64, f64)>> = BTreeMap::new();
    for (ctx, c) in measured {
        for (&k, &t) in &c.per_kind_s {
            kinds.entry(k).or_default().push((*ctx as f64, t));
        }
    }
    let per_kind = kinds
        .into_iter()
        .map(|(k, pts)| LinearFit::fit_rising(&pts).map(|f| (k, f)).map_err(|e| ProjectionError(format!("compress ratio {k}: {}", e.0))))
        .collect::<Result<_, _>>()?;
    let fixed = |f: &dyn Fn(&LayerCosts) -> f64| LinearFit::fit_rising(&measured.iter().map(|(x, c)| (*x as f64, f(c))).collect::<Vec<_>>());
    Ok(ContextModel {
        per_kind,
        embed: fixed(&|c| c.embed_s)?,
        head: fixed(&|c| c.head_s)?,
        contexts: measured.iter().map(|(x, _)| *x).collect(),
    })
}

/// Per-kind linear fits of cost against context.
#[derive(Clone, Debug, PartialEq)]
pub struct ContextModel {
    pub per_kind: BTreeMap<usize, LinearFit>,
    pub embed: LinearFit,
    pub head: LinearFit,
    /// The measured contexts the fits came from (for the basis text).
    pub contexts: Vec<usize>,
}

impl ContextModel {
    /// Per-layer costs at `context` (negative extrapolations clamp to 0).
    pub fn at(&self, context: usize) -> LayerCosts {
        let x = context as f64;
        LayerCosts {
            per_kind_s: self.per_kind.iter().map(|(&k, f)| (k, f.at(x).max(0.0))).collect(),
            embed_s: self.embed.at(x).max(0.0),
            head_s: self.head.at(x).max(0.0),
        }
    }

    /// `"linear fit of per-layer cost vs context over 4k, 16k"`.
    pub fn basis(&self) -> String {
        let xs: Vec<String> = self.contexts.iter().map(|&c| size_str(c)).collect();
        format!("linear fit of per-layer cost vs context over measured contexts {}", xs.join(", "))
    }
}

/// A full-depth step time and where it came from.
#[derive(Clone, Debug, PartialEq)]
pub struct Projection {
    pub step_s: f64,
    /// true when anything beyond summing measured layers was needed (a fit to an unmeasured
    /// context, or layers not measured at full depth).
    pub projected: bool,
    pub basis: String,
    /// The per-layer costs the step was summed from (measured, or the fit's at the context).
    pub costs: LayerCosts,
}

/// The step time at `context` for `cfg`'s full depth: measured costs when `context` was
/// measured, else the context fit. `layers_measured` < `cfg.n_layers` also marks it projected.
pub fn project_at_context(
    cfg: &Config,
    measured: &[(usize, LayerCosts)],
    context: usize,
    layers_measured: usize,
) -> Result<Projection, ProjectionError> {
    let depth = format!("{layers_measured} of {} layers measured, summed by compress ratio", cfg.n_layers);
    if let Some((_, c)) = measured.iter().find(|(x, _)| *x == context) {
        return Ok(Projection {
            step_s: project_step_s(cfg, c)?,
            projected: layers_measured < cfg.n_layers,
            basis: if layers_measured < cfg.n_layers { depth } else { "measured at full depth".into() },
            costs: c.clone(),
        });
    }
    let m = fit_costs_vs_context(measured)?;
    let costs = m.at(context);
    Ok(Projection { step_s: project_step_s(cfg, &costs)?, projected: true, basis: format!("{}; {depth}", m.basis()), costs })
}

/// Decode tokens/s of a step of `batch` tokens taking `step_s`.
pub fn decode_tokens_per_s(batch: usize, step_s: f64) -> f64 {
    batch as f64 / step_s
}
