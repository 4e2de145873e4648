//! Result records and their files: JSON (a list of records, the machine-readable truth),
//! markdown (the tables a person reads) and the `results/` naming. Every record carries the
//! device, date and commit it came from, so merged files stay attributable.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// One kernel case on one implementation (`dsv4 bench cpu`). Peer files use the same schema:
/// `case`, `impl`, `gb_per_s` and `roofline_gb_per_s` are required, the rest default.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct KernelRecord {
    /// `<shape>_b<batch>`, e.g. `expert_w1_b1`.
    pub case: String,
    /// `dsv4`, `dsv4-int8`, or a peer's name.
    #[serde(rename = "impl")]
    pub implementation: String,
    #[serde(default)]
    pub batch: usize,
    /// Stored weight format: `fp4`, `fp8`, `bf16` (a peer may name its own, e.g. `q4_0`).
    #[serde(default)]
    pub format: String,
    #[serde(default)]
    pub out: usize,
    #[serde(default)]
    pub inp: usize,
    /// Stored weight bytes (codes + scales) read per second, 1e9 B/s.
    pub gb_per_s: f64,
    /// This machine's measured read bandwidth in the same run.
    pub roofline_gb_per_s: f64,
    /// 100 · gb_per_s / roofline_gb_per_s (filled in when a peer file leaves it out).
    #[serde(default)]
    pub pct_of_roofline: f64,
    /// 2 · out · inp · batch / time.
    #[serde(default)]
    pub gflop_per_s: f64,
    /// Median time of one call.
    #[serde(default)]
    pub median_ms: f64,
    /// Timed sweeps behind the median.
    #[serde(default)]
    pub runs: usize,
    #[serde(default)]
    pub device: String,
    #[serde(default)]
    pub date: String,
    #[serde(default)]
    pub commit: String,
    #[serde(default)]
    pub note: String,
}

impl KernelRecord {
    /// Fills `pct_of_roofline` from the two bandwidths when it is missing.
    pub fn normalize(&mut self) {
        if self.pct_of_roofline == 0.0 && self.roofline_gb_per_s > 0.0 {
            self.pct_of_roofline = 100.0 * self.gb_per_s / self.roofline_gb_per_s;
        }
    }
}

/// One model scenario (`dsv4 bench model`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ModelRecord {
    /// `Scenario`'s spelling: `decode:8@64k`, `ttft:8k`, `prefill:4k`.
    pub scenario: String,
    /// `cpu`, `gpu`, ...
    pub backend: String,
    #[serde(default)]
    pub batch: usize,
    #[serde(default)]
    pub context: usize,
    #[serde(default)]
    pub prompt: usize,
    pub layers_measured: usize,
    pub layers_total: usize,
    /// Decode or prefill throughput (absent for TTFT).
    #[serde(default)]
    pub tokens_per_s: Option<f64>,
    /// Time to first token (TTFT scenarios).
    #[serde(default)]
    pub ttft_s: Option<f64>,
    /// Full-depth step time.
    #[serde(default)]
    pub step_s: f64,
    /// `ratio0` / `ratio4` / `ratio128` / `embed` / `head` -> milliseconds (per layer for ratios).
    #[serde(default)]
    pub ms_per_layer_by_kind: BTreeMap<String, f64>,
    /// Tokens/s allowed by bytes / measured bandwidth (and FLOPs / measured compute rate).
    #[serde(default)]
    pub bound_tokens_per_s: Option<f64>,
    #[serde(default)]
    pub pct_of_bound: Option<f64>,
    #[serde(default)]
    pub bytes_per_token: f64,
    #[serde(default)]
    pub flops_per_token: f64,
    #[serde(default)]
    pub bandwidth_gb_per_s: f64,
    #[serde(default)]
    pub compute_gflop_per_s: f64,
    pub projected: bool,
    /// How the figure was obtained (which layers, which contexts, which fit).
    pub basis: String,
    #[serde(default)]
    pub device: String,
    #[serde(default)]
    pub date: String,
    #[serde(default)]
    pub commit: String,
    /// GPU telemetry summary during the scenario, when NVML was present.
    #[serde(default)]
    pub telemetry: Option<serde_json::Value>,
    #[serde(default)]
    pub note: String,
}

/// What a report header says about the run.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RunInfo {
    pub device: String,
    pub date: String,
    pub commit: String,
    pub bandwidth_gb_per_s: f64,
    pub compute_gflop_per_s: f64,
    /// GOPS of int8 dot products (`bandwidth::int8_gops`): the compute ceiling of the kernels
    /// that quantise activations to int8; 0 when not measured (no row in the header).
    pub int8_gops: f64,
    pub threads: usize,
    /// Free-form lines (kernel level, sweep sizes, ...).
    pub notes: Vec<String>,
}

/// JSON text of a list of records (pretty, fields in declaration order).
pub fn to_json<T: Serialize>(records: &[T]) -> String {
    serde_json::to_string_pretty(records).expect("records serialise") + "\n"
}

/// Reads a JSON list of kernel records; errors name the file and the path of the bad field
/// (`[2].gb_per_s: invalid type ...`).
pub fn read_kernel_records(path: &Path) -> Result<Vec<KernelRecord>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    parse_kernel_records(&text).map_err(|e| format!("{}: {e}", path.display()))
}

/// [`read_kernel_records`] on text.
pub fn parse_kernel_records(text: &str) -> Result<Vec<KernelRecord>, String> {
    let de = &mut serde_json::Deserializer::from_str(text);
    let mut v: Vec<KernelRecord> = serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path == "." {
            format!("expected a JSON list of kernel records: {inner}")
        } else {
            format!("field {path}: {inner}")
        }
    })?;
    v.iter_mut().for_each(KernelRecord::normalize);
    Ok(v)
}

fn header(title: &str, info: &RunInfo) -> String {
    let mut s = format!("# {title}\n\n| | |\n| --- | --- |\n");
    let _ = writeln!(s, "| device | {} |", md_escape(&info.device));
    let _ = writeln!(s, "| date | {} |", info.date);
    let _ = writeln!(s, "| commit | {} |", info.commit);
    let _ = writeln!(s, "| threads | {} |", info.threads);
    let _ = writeln!(s, "| read bandwidth (roofline) | {:.1} GB/s |", info.bandwidth_gb_per_s);
    let _ = writeln!(s, "| FP32 FMA rate | {:.0} GFLOP/s |", info.compute_gflop_per_s);
    if info.int8_gops > 0.0 {
        let _ = writeln!(s, "| int8 dot rate | {:.0} GOPS |", info.int8_gops);
    }
    for n in &info.notes {
        let _ = writeln!(s, "| note | {} |", md_escape(n));
    }
    s.push('\n');
    s
}

fn md_escape(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

/// Distinct values in first-seen order.
fn distinct<'a>(it: impl Iterator<Item = &'a str>) -> Vec<&'a str> {
    let mut v: Vec<&str> = Vec::new();
    for s in it {
        if !v.contains(&s) {
            v.push(s);
        }
    }
    v
}

/// Markdown of a kernel run: header, a case x impl table of `GB/s (% of roofline)`, and a
/// detail table (batch, format, shape, ms, GFLOP/s).
pub fn kernel_markdown(records: &[KernelRecord], info: &RunInfo) -> String {
    let mut s = header("CPU kernels: stored weight bytes read per second", info);
    let cases = distinct(records.iter().map(|r| r.case.as_str()));
    let impls = distinct(records.iter().map(|r| r.implementation.as_str()));
    s.push_str("GB/s of stored weight bytes (% of this run's read bandwidth; a peer's % is of its own run's).\n\n| case |");
    for i in &impls {
        let _ = write!(s, " {} |", md_escape(i));
    }
    s.push_str("\n| --- |");
    s.push_str(&" ---: |".repeat(impls.len()));
    s.push('\n');
    for c in &cases {
        let _ = write!(s, "| {} |", md_escape(c));
        for i in &impls {
            match records.iter().find(|r| r.case == *c && r.implementation == *i) {
                Some(r) => {
                    let _ = write!(s, " {:.1} ({:.0}%) |", r.gb_per_s, r.pct_of_roofline);
                }
                None => s.push_str(" - |"),
            }
        }
        s.push('\n');
    }
    s.push_str("\n| case | impl | batch | format | out x in | median ms | GB/s | % roofline | GFLOP/s | runs | note |\n");
    s.push_str("| --- | --- | ---: | --- | --- | ---: | ---: | ---: | ---: | ---: | --- |\n");
    for r in records {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {}x{} | {:.3} | {:.2} | {:.0}% | {:.1} | {} | {} |",
            md_escape(&r.case),
            md_escape(&r.implementation),
            r.batch,
            md_escape(&r.format),
            r.out,
            r.inp,
            r.median_ms,
            r.gb_per_s,
            r.pct_of_roofline,
            r.gflop_per_s,
            r.runs,
            md_escape(&r.note)
        );
    }
    s
}

fn opt(v: Option<f64>, prec: usize) -> String {
    v.map(|x| format!("{x:.prec$}")).unwrap_or_else(|| "-".into())
}

/// Markdown of a model run: one row per scenario with the bound beside it; projected figures
/// are marked `*` and their basis listed under the table. `peers` are quoted lines (published
/// anchors with their source).
pub fn model_markdown(records: &[ModelRecord], info: &RunInfo, peers: &[String]) -> String {
    let mut s = header("Model benchmark", info);
    s.push_str("| scenario | backend | layers | tokens/s | TTFT s | step ms | bound tokens/s | % of bound |\n");
    s.push_str("| --- | --- | --- | ---: | ---: | ---: | ---: | ---: |\n");
    let mut bases = Vec::new();
    for r in records {
        let mark = if r.projected {
            bases.push(format!("- `{}`: {}", r.scenario, r.basis));
            "*"
        } else {
            ""
        };
        let _ = writeln!(
            s,
            "| {}{mark} | {} | {}/{} | {} | {} | {:.2} | {} | {} |",
            md_escape(&r.scenario),
            md_escape(&r.backend),
            r.layers_measured,
            r.layers_total,
            opt(r.tokens_per_s, 2),
            opt(r.ttft_s, 3),
            r.step_s * 1e3,
            opt(r.bound_tokens_per_s, 2),
            opt(r.pct_of_bound, 0),
        );
    }
    if !bases.is_empty() {
        s.push_str("\n\\* projected:\n\n");
        s.push_str(&bases.join("\n"));
        s.push('\n');
    }
    if !peers.is_empty() {
        s.push_str("\nPublished peers (not measured here):\n\n");
        for p in peers {
            let _ = writeln!(s, "- {p}");
        }
    }
    s
}

/// Published anchors to quote beside model results, with their sources (from the team's notes;
/// not measured by this harness).
pub fn published_anchors() -> Vec<String> {
    vec![
        "DeepSeek API, V4-Flash: 83.6 tok/s output speed, 1.04 s TTFT (Artificial Analysis)".into(),
        "SGLang day-0, V4-Flash on H200: 266 tok/s decode at 4K context, 240 tok/s at 900K (lmsys.org/blog/2026-04-25-deepseek-v4)".into(),
        "SGLang + KT-Kernel, V4-Flash MXFP4, 144 of 256 experts on 8x RTX 5090, rest on CPU: 26.5 tok/s, 32.7 with MTP (kvcache-ai/ktransformers doc/en/DeepSeek-V4-Flash.md)".into(),
    ]
}

/// `<dir>/cpu-<date>.<ext>`.
pub fn cpu_result_path(dir: &Path, date: &str, ext: &str) -> PathBuf {
    dir.join(format!("cpu-{date}.{ext}"))
}

/// `<dir>/<device>-<date>.<ext>` with the device name reduced to `[a-z0-9-]`.
pub fn model_result_path(dir: &Path, device: &str, date: &str, ext: &str) -> PathBuf {
    dir.join(format!("{}-{date}.{ext}", slug(device)))
}

/// Lower-case ASCII letters and digits, runs of anything else as one `-`.
pub fn slug(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    let t = out.trim_matches('-');
    if t.is_empty() {
        "device".into()
    } else {
        t.to_string()
    }
}

/// `git rev-parse --short HEAD` of the current directory's repository, or `unknown`.
pub fn git_commit() -> String {
    std::process::Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".into())
}

/// The civil (proleptic Gregorian, UTC) date of `days` since 1970-01-01 (Howard Hinnant's
/// `civil_from_days`), so no date crate is needed.
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// `YYYY-MM-DD` of a UNIX time in seconds (UTC).
pub fn date_of_unix(secs: i64) -> String {
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    format!("{y:04}-{m:02}-{d:02}")
}

/// Today's UTC date, `YYYY-MM-DD`.
pub fn today() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    date_of_unix(secs)
}

/// The CPU's model name from /proc/cpuinfo (`unknown CPU` elsewhere), with the thread count.
pub fn cpu_device(threads: usize) -> String {
    let name = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| t.lines().find(|l| l.starts_with("model name")).and_then(|l| l.split_once(':')).map(|(_, v)| v.trim().to_string()))
        .unwrap_or_else(|| "unknown CPU".into());
    format!("{name}, {threads} threads")
}
