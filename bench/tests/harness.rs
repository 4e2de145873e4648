//! The rest of the harness on the CPU: telemetry without NVML, progress text, bandwidth and FMA
//! probes, and a tiny kernel run.

use dsv4_bench::bandwidth::{fma_gflops_with, int8_gops_with, median, read_bandwidth_sized};
use dsv4_bench::cpu::*;
use dsv4_bench::progress::{fmt_eta, Progress};
use dsv4_bench::telemetry::{nvml_available, summarize, Sample, Sampler};
use dsv4_bench::weights::{random_linear, stored_bytes, Format};

#[test]
fn telemetry_is_none_without_nvml() {
    if nvml_available() {
        // a GPU machine: the sampler must run and stop cleanly
        let s = Sampler::start(0, std::time::Duration::from_millis(10)).expect("NVML present");
        std::thread::sleep(std::time::Duration::from_millis(50));
        assert!(!s.stop().is_empty());
    } else {
        assert!(Sampler::start(0, std::time::Duration::from_millis(10)).is_none());
    }
    assert!(Sampler::start(9999, std::time::Duration::from_millis(10)).is_none());
    let sum = summarize("gpu", &[
        Sample { sm_clock_mhz: Some(1500), power_w: Some(300.0), throttle_reasons: Some(1), ..Default::default() },
        Sample { sm_clock_mhz: Some(1980), power_w: Some(500.0), throttle_reasons: Some(4), ..Default::default() },
        Sample { sm_clock_mhz: Some(1700), ..Default::default() },
    ]);
    assert_eq!(sum.samples, 3);
    assert_eq!(sum.sm_clock_mhz, Some([1500.0, 1700.0, 1980.0]));
    assert_eq!(sum.power_w, Some([300.0, 500.0, 500.0]));
    assert_eq!(sum.mem_clock_mhz, None);
    assert_eq!(sum.throttle_reasons_any, 5);
}

#[test]
fn progress_text() {
    let mut p = Progress::with_enabled(4, false);
    assert_eq!(p.line("expert_w1_b1"), "1/4 expert_w1_b1 ... eta ?");
    p.inc();
    assert!(p.line("x").starts_with("2/4 x ... eta "));
    p.start("x");
    p.finish();
    assert_eq!(fmt_eta(5.2), "5s");
    assert_eq!(fmt_eta(65.0), "1m05s");
    assert_eq!(fmt_eta(3725.0), "1h02m");
}

#[test]
fn probes_give_positive_rates() {
    assert!(read_bandwidth_sized(2, 4 << 20, 3) > 0.1);
    assert!(fma_gflops_with(2, 100_000, 3) > 0.1);
    // the int8 loop needs AVX2 (elsewhere it reports 0: not measured)
    #[cfg(target_arch = "x86_64")]
    if is_x86_feature_detected!("avx2") {
        assert!(int8_gops_with(2, 100_000, 3) > 0.1);
    }
    assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
    assert!(median(vec![]).is_nan());
}

#[test]
fn case_lists_and_sizes() {
    assert_eq!(parse_cases("expert_w1, head").unwrap().iter().map(|c| c.name).collect::<Vec<_>>(), ["expert_w1", "head"]);
    assert!(parse_cases("expert_w9").unwrap_err().contains("'expert_w9'"));
    assert_eq!(parse_batches("1,8,32").unwrap(), [1, 8, 32]);
    assert!(parse_batches("1,x").unwrap_err().contains("'x'"));
    assert!(parse_batches("0").is_err());
    assert_eq!(copies_for(100, 1000), 10);
    assert_eq!(copies_for(900, 1000), 2);
    assert_eq!(copies_for(2000, 1000), 1);
    let head = CASES.iter().find(|c| c.name == "head").unwrap();
    let (cut, note) = fit_case(head, 8 << 20);
    assert_eq!(cut.out, 1024);
    assert!(note.unwrap().contains("129280"));
    for c in CASES {
        let w = random_linear(c.format, 128.min(c.out), c.inp, 1);
        assert_eq!(stored_bytes(&w), c.format.stored_bytes(w.out, w.inp));
    }
    assert_eq!(Format::Fp4.stored_bytes(2048, 4096), 4_456_448);
}

#[test]
fn tiny_kernel_run_fills_every_field() {
    let mut opts = CpuOpts::quick(20.0);
    opts.sweep_bytes = 4 << 20;
    opts.runs = 2;
    opts.cases = parse_cases("expert_w2,shared_w1").unwrap();
    opts.batches = vec![1, 8];
    opts.device = "test".into();
    opts.progress = false;
    let impls: Vec<Box<dyn CpuImpl>> = vec![impl_by_name("dsv4").unwrap()];
    let recs = run_cpu_kernels(&opts, &impls);
    assert_eq!(recs.len(), 4);
    assert_eq!(recs.iter().map(|r| r.case.as_str()).collect::<Vec<_>>(), ["expert_w2_b1", "expert_w2_b8", "shared_w1_b1", "shared_w1_b8"]);
    for r in &recs {
        assert_eq!(r.implementation, "dsv4");
        assert!(r.gb_per_s > 0.0 && r.gflop_per_s > 0.0 && r.median_ms > 0.0);
        assert!((r.pct_of_roofline - 100.0 * r.gb_per_s / 20.0).abs() < 1e-9);
        let bytes = Format::from_name(&r.format).unwrap().stored_bytes(r.out, r.inp) as f64;
        assert!((r.gb_per_s - bytes / (r.median_ms * 1e-3) / 1e9).abs() < 1e-6 * r.gb_per_s);
        assert!((r.gflop_per_s - 2.0 * (r.out * r.inp * r.batch) as f64 / (r.median_ms * 1e-3) / 1e9).abs() < 1e-6 * r.gflop_per_s);
    }
}
