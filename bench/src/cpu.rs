//! `dsv4 bench cpu`: the CPU GEMV kernels on DeepSeek-V4-Flash's decode shapes, in GB/s of
//! stored weight bytes against this machine's measured read bandwidth.
//!
//! Each case builds enough distinct random copies of its weight (>= 512 MB in all; 128 MB with
//! `quick`) that a sweep over them reads from DRAM, not the last-level cache: decode reads each
//! weight once per step, so cache-resident figures would flatter every kernel. One warm-up sweep,
//! then the median of several timed sweeps; time per call = sweep time / copies.
//!
//! Implementations are a trait ([`CpuImpl`]) so another path (e.g. an int8 `dsv4-int8`) is one
//! more value in the list, measured on the same weights and activations.

use std::hint::black_box;
use std::time::Instant;

use dsv4_engine::cpu_kernels::{fast_linear_with, Fp4Math, Level};
use dsv4_reference::linear::Linear;
use dsv4_reference::ActQuant;

use crate::bandwidth::median;
use crate::progress::Progress;
use crate::report::KernelRecord;
use crate::weights::{activations, random_linear, stored_bytes, Format};

/// One weight shape of the decode path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KernelCase {
    /// `expert_w1`, ... (the record's case is `<name>_b<batch>`).
    pub name: &'static str,
    pub format: Format,
    pub out: usize,
    pub inp: usize,
}

/// Issue 11's shapes: routed expert w1 (w3 is the same shape) and w2 in FP4, the dense FP8
/// projections (attention wq_b and wo_b, shared expert w1), the BF16 head.
pub const CASES: [KernelCase; 6] = [
    KernelCase { name: "expert_w1", format: Format::Fp4, out: 2048, inp: 4096 },
    KernelCase { name: "expert_w2", format: Format::Fp4, out: 4096, inp: 2048 },
    KernelCase { name: "dense_wq_b", format: Format::Fp8, out: 32768, inp: 1024 },
    KernelCase { name: "dense_wo_b", format: Format::Fp8, out: 4096, inp: 8192 },
    KernelCase { name: "shared_w1", format: Format::Fp8, out: 2048, inp: 4096 },
    KernelCase { name: "head", format: Format::Bf16, out: 129280, inp: 4096 },
];

/// Decode batch sizes: one sequence, a small batch, a large one.
pub const BATCHES: [usize; 3] = [1, 8, 32];

/// A GEMV implementation under test.
pub trait CpuImpl: Sync {
    /// The record's `impl` field.
    fn name(&self) -> String;
    /// Whether it runs `case` (e.g. an int8 FP4 path only runs FP4 cases).
    fn supports(&self, _case: &KernelCase) -> bool {
        true
    }
    /// `y[batch, w.out] = x[batch, w.inp] · Wᵀ`.
    fn run(&self, w: &Linear, x: &[f32]) -> Vec<f32>;
    /// Free text for the record's `note`.
    fn note(&self) -> String {
        String::new()
    }
}

/// The engine's kernels: `cpu_kernels::fast_linear_with` at a level, FP8 activation
/// quantisation on (exactly what decode runs). `name` is the record's `impl`.
pub struct Dsv4 {
    pub level: Level,
    pub fp4: Fp4Math,
    pub name: &'static str,
}

impl CpuImpl for Dsv4 {
    fn name(&self) -> String {
        self.name.into()
    }
    fn supports(&self, case: &KernelCase) -> bool {
        // the int8 path only changes FP4 weights
        self.fp4 == Fp4Math::Exact || case.format == Format::Fp4
    }
    fn run(&self, w: &Linear, x: &[f32]) -> Vec<f32> {
        fast_linear_with(self.level, self.fp4, w, x, 0..w.out, ActQuant::On)
    }
    fn note(&self) -> String {
        format!("fast_linear {:?} {:?}, ActQuant::On", self.level, self.fp4)
    }
}

/// The reference `Linear::forward` (slow: the oracle, for scale only).
pub struct Reference;

impl CpuImpl for Reference {
    fn name(&self) -> String {
        "reference".into()
    }
    fn run(&self, w: &Linear, x: &[f32]) -> Vec<f32> {
        w.forward(x, ActQuant::On)
    }
    fn note(&self) -> String {
        "reference Linear::forward".into()
    }
}

/// The implementations `--impls` can name.
pub fn impl_by_name(name: &str) -> Option<Box<dyn CpuImpl>> {
    match name {
        "dsv4" => Some(Box::new(Dsv4 { level: Level::detect(), fp4: Fp4Math::Exact, name: "dsv4" })),
        "dsv4-int8" => Some(Box::new(Dsv4 { level: Level::detect(), fp4: Fp4Math::Int8, name: "dsv4-int8" })),
        // a lower dispatch level, for the speed-up of the best one (only where this CPU has it)
        "dsv4-avx2" if Level::Avx2.is_supported() => Some(Box::new(Dsv4 { level: Level::Avx2, fp4: Fp4Math::Exact, name: "dsv4-avx2" })),
        "dsv4-avx512" if Level::Avx512.is_supported() => Some(Box::new(Dsv4 { level: Level::Avx512, fp4: Fp4Math::Exact, name: "dsv4-avx512" })),
        "dsv4-scalar" => Some(Box::new(Dsv4 { level: Level::Scalar, fp4: Fp4Math::Exact, name: "dsv4-scalar" })),
        "reference" => Some(Box::new(Reference)),
        _ => None,
    }
}

/// Names accepted by [`impl_by_name`].
pub const IMPL_NAMES: [&str; 6] = ["dsv4", "dsv4-int8", "dsv4-avx512", "dsv4-avx2", "dsv4-scalar", "reference"];

/// What to run.
#[derive(Clone, Debug)]
pub struct CpuOpts {
    /// Weight bytes swept per case (distinct copies); also caps one copy (a larger matrix is cut
    /// to fewer rows and the record says so).
    pub sweep_bytes: usize,
    /// Timed sweeps per (case, batch, impl); the median is reported.
    pub runs: usize,
    pub cases: Vec<KernelCase>,
    pub batches: Vec<usize>,
    /// The read bandwidth (GB/s) each record's roofline is.
    pub roofline_gb_per_s: f64,
    pub device: String,
    pub date: String,
    pub commit: String,
    /// Draw a progress line (on a terminal).
    pub progress: bool,
}

impl CpuOpts {
    /// Full run: 512 MB per case, 7 sweeps, every case and batch.
    pub fn full(roofline_gb_per_s: f64) -> CpuOpts {
        CpuOpts {
            sweep_bytes: 512 << 20,
            runs: 7,
            cases: CASES.to_vec(),
            batches: BATCHES.to_vec(),
            roofline_gb_per_s,
            device: String::new(),
            date: crate::report::today(),
            commit: crate::report::git_commit(),
            progress: true,
        }
    }

    /// `--quick`: 128 MB per case, 3 sweeps.
    pub fn quick(roofline_gb_per_s: f64) -> CpuOpts {
        CpuOpts { sweep_bytes: 128 << 20, runs: 3, ..CpuOpts::full(roofline_gb_per_s) }
    }
}

/// Looks up cases by name (`expert_w1,head`); errors name an unknown one.
pub fn parse_cases(list: &str) -> Result<Vec<KernelCase>, String> {
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|n| {
            CASES.iter().find(|c| c.name == n).copied().ok_or_else(|| {
                let names: Vec<&str> = CASES.iter().map(|c| c.name).collect();
                format!("unknown case '{n}' (known: {})", names.join(", "))
            })
        })
        .collect()
}

/// `1,8,32`; errors name the bad entry.
pub fn parse_batches(list: &str) -> Result<Vec<usize>, String> {
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|b| match b.parse::<usize>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(format!("bad batch '{b}': expected a positive integer")),
        })
        .collect()
}

/// The case cut to the rows that fit `max_bytes` (multiple of 128 rows), when one copy is larger.
pub fn fit_case(c: &KernelCase, max_bytes: usize) -> (KernelCase, Option<String>) {
    let full = c.format.stored_bytes(c.out, c.inp);
    if full <= max_bytes {
        return (*c, None);
    }
    let per_row = full as f64 / c.out as f64;
    let rows = (((max_bytes as f64 / per_row) as usize) / 128 * 128).max(128).min(c.out);
    (KernelCase { out: rows, ..*c }, Some(format!("rows cut from {} to {rows} to fit the sweep size", c.out)))
}

/// Distinct copies so a sweep covers `sweep_bytes`: at least 2 unless one copy already does.
pub fn copies_for(bytes_per_copy: usize, sweep_bytes: usize) -> usize {
    if bytes_per_copy >= sweep_bytes {
        1
    } else {
        sweep_bytes.div_ceil(bytes_per_copy.max(1)).max(2)
    }
}

/// Median seconds per call of `imp` over `ws` with input `x`: one warm-up sweep, then `runs`.
pub fn time_sweeps(imp: &dyn CpuImpl, ws: &[Linear], x: &[f32], runs: usize) -> f64 {
    for w in ws {
        black_box(imp.run(w, black_box(x)));
    }
    let v = (0..runs.max(1))
        .map(|_| {
            let t = Instant::now();
            for w in ws {
                black_box(imp.run(w, black_box(x)));
            }
            t.elapsed().as_secs_f64() / ws.len() as f64
        })
        .collect();
    median(v)
}

/// Runs every case x batch x implementation; one record each.
pub fn run_cpu_kernels(opts: &CpuOpts, impls: &[Box<dyn CpuImpl>]) -> Vec<KernelRecord> {
    let total = opts.cases.len() * opts.batches.len() * impls.len();
    let mut prog = Progress::with_enabled(total, opts.progress && std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let mut out = Vec::new();
    for (ci, c0) in opts.cases.iter().enumerate() {
        let (c, cut) = fit_case(c0, opts.sweep_bytes);
        let bytes = c.format.stored_bytes(c.out, c.inp);
        let copies = copies_for(bytes, opts.sweep_bytes);
        let ws: Vec<Linear> = (0..copies).map(|i| random_linear(c.format, c.out, c.inp, (ci * 1000 + i + 1) as u64)).collect();
        debug_assert_eq!(stored_bytes(&ws[0]), bytes);
        for &batch in &opts.batches {
            let x = activations(batch, c.inp);
            for imp in impls.iter().filter(|i| i.supports(&c)) {
                let case = format!("{}_b{batch}", c.name);
                prog.start(&format!("{case} {}", imp.name()));
                let t = time_sweeps(imp.as_ref(), &ws, &x, opts.runs);
                prog.inc();
                let gb = bytes as f64 / t / 1e9;
                let mut note = imp.note();
                note.push_str(&format!("; {copies} copies, {:.0} MB swept", (bytes * copies) as f64 / 1e6));
                if let Some(cut) = &cut {
                    note.push_str("; ");
                    note.push_str(cut);
                }
                out.push(KernelRecord {
                    case,
                    implementation: imp.name(),
                    batch,
                    format: c.format.as_str().into(),
                    out: c.out,
                    inp: c.inp,
                    gb_per_s: gb,
                    roofline_gb_per_s: opts.roofline_gb_per_s,
                    pct_of_roofline: 100.0 * gb / opts.roofline_gb_per_s,
                    gflop_per_s: 2.0 * (c.out * c.inp * batch) as f64 / t / 1e9,
                    median_ms: t * 1e3,
                    runs: opts.runs,
                    device: opts.device.clone(),
                    date: opts.date.clone(),
                    commit: opts.commit.clone(),
                    note,
                });
            }
        }
    }
    prog.finish();
    out
}

/// The bar chart of a kernel run: % of roofline per case, one bar per implementation.
pub fn kernel_svg(records: &[KernelRecord], title: &str) -> String {
    let mut cases: Vec<String> = Vec::new();
    let mut impls: Vec<String> = Vec::new();
    for r in records {
        if !cases.contains(&r.case) {
            cases.push(r.case.clone());
        }
        if !impls.contains(&r.implementation) {
            impls.push(r.implementation.clone());
        }
    }
    let values: Vec<Vec<Option<f64>>> = impls
        .iter()
        .map(|i| cases.iter().map(|c| records.iter().find(|r| &r.case == c && &r.implementation == i).map(|r| r.pct_of_roofline)).collect())
        .collect();
    crate::svg::grouped_bars(title, "% of read bandwidth", &cases, &impls, &values)
}
