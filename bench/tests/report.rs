//! Result records, their JSON / markdown / SVG forms, file naming and the civil date.

use std::path::Path;

use dsv4_bench::cpu::kernel_svg;
use dsv4_bench::report::*;
use dsv4_bench::svg::{check_well_formed, escape, line_chart, Series};

fn rec(case: &str, imp: &str, gb: f64) -> KernelRecord {
    KernelRecord {
        case: case.into(),
        implementation: imp.into(),
        batch: 1,
        format: "fp4".into(),
        out: 2048,
        inp: 4096,
        gb_per_s: gb,
        roofline_gb_per_s: 20.0,
        pct_of_roofline: 100.0 * gb / 20.0,
        gflop_per_s: 1.0,
        median_ms: 0.2,
        runs: 3,
        device: "test <cpu> & co".into(),
        date: "2026-01-02".into(),
        commit: "abc".into(),
        note: "a | b".into(),
    }
}

fn info() -> RunInfo {
    RunInfo { device: "cpu".into(), date: "2026-01-02".into(), commit: "abc".into(), bandwidth_gb_per_s: 20.0, compute_gflop_per_s: 100.0, int8_gops: 0.0, threads: 2, notes: vec!["n".into()] }
}

#[test]
fn kernel_json_has_the_required_fields() {
    let recs = vec![rec("expert_w1_b1", "dsv4", 18.0), rec("expert_w1_b1", "ggml", 10.0)];
    let v: serde_json::Value = serde_json::from_str(&to_json(&recs)).unwrap();
    let a = v.as_array().unwrap();
    assert_eq!(a.len(), 2);
    for k in ["case", "impl", "batch", "format", "out", "inp", "gb_per_s", "roofline_gb_per_s", "pct_of_roofline", "gflop_per_s", "median_ms", "runs", "device", "date", "commit", "note"] {
        assert!(a[0].get(k).is_some(), "missing {k}");
    }
    assert_eq!(a[1]["impl"], "ggml");
    assert_eq!(parse_kernel_records(&to_json(&recs)).unwrap(), recs);
}

#[test]
fn peer_files_minimal_and_bad() {
    let ok = parse_kernel_records(r#"[{"case":"expert_w1_b1","impl":"candle q8_0","gb_per_s":10,"roofline_gb_per_s":20}]"#).unwrap();
    assert_eq!(ok[0].pct_of_roofline, 50.0);
    let e = parse_kernel_records(r#"[{"case":"a","impl":"b","gb_per_s":1,"roofline_gb_per_s":2},{"case":"a","impl":"b","gb_per_s":"fast","roofline_gb_per_s":2}]"#).unwrap_err();
    assert!(e.contains("[1].gb_per_s"), "{e}");
    let e = parse_kernel_records(r#"[{"case":"a","impl":"b","gb_per_s":1}]"#).unwrap_err();
    assert!(e.contains("roofline_gb_per_s"), "{e}");
    let e = parse_kernel_records(r#"{"case":"a"}"#).unwrap_err();
    assert!(e.contains("list"), "{e}");
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("peer.json");
    std::fs::write(&p, "[{]").unwrap();
    let e = read_kernel_records(&p).unwrap_err();
    assert!(e.contains("peer.json"), "{e}");
}

#[test]
fn kernel_markdown_tables() {
    let recs = vec![rec("expert_w1_b1", "dsv4", 18.0), rec("expert_w1_b1", "ggml", 10.0), rec("head_b1", "dsv4", 15.0)];
    let md = kernel_markdown(&recs, &info());
    assert!(md.contains("| case | dsv4 | ggml |"), "{md}");
    assert!(md.contains("| expert_w1_b1 | 18.0 (90%) | 10.0 (50%) |"), "{md}");
    assert!(md.contains("| head_b1 | 15.0 (75%) | - |"), "{md}");
    assert!(md.contains("| read bandwidth (roofline) | 20.0 GB/s |"));
    assert!(md.contains("a \\| b"), "pipes in notes are escaped");
    assert!(!md.contains("int8 dot rate"), "no row for an unmeasured rate");
    let md8 = kernel_markdown(&recs, &RunInfo { int8_gops: 350.4, ..info() });
    assert!(md8.contains("| int8 dot rate | 350 GOPS |"), "{md8}");
    // every table row has the same number of cells as its header
    for block in md.split("\n\n").filter(|b| b.starts_with('|')) {
        let cols: Vec<usize> = block.lines().map(|l| l.matches('|').count() - l.matches("\\|").count()).collect();
        assert!(cols.iter().all(|&c| c == cols[0]), "{block}");
    }
}

#[test]
fn model_records_and_markdown() {
    let r = ModelRecord {
        scenario: "decode:8@1m".into(),
        backend: "cpu".into(),
        batch: 8,
        context: 1 << 20,
        layers_measured: 3,
        layers_total: 43,
        tokens_per_s: Some(2.5),
        step_s: 3.2,
        bound_tokens_per_s: Some(5.0),
        pct_of_bound: Some(50.0),
        projected: true,
        basis: "linear fit over 4k, 16k".into(),
        ..Default::default()
    };
    let v: serde_json::Value = serde_json::from_str(&to_json(std::slice::from_ref(&r))).unwrap();
    for k in ["scenario", "backend", "layers_measured", "layers_total", "tokens_per_s", "ttft_s", "ms_per_layer_by_kind", "bound_tokens_per_s", "pct_of_bound", "projected", "basis"] {
        assert!(v[0].get(k).is_some(), "missing {k}");
    }
    let md = model_markdown(&[r], &info(), &published_anchors());
    assert!(md.contains("| decode:8@1m* | cpu | 3/43 | 2.50 | - | 3200.00 | 5.00 | 50 |"), "{md}");
    assert!(md.contains("linear fit over 4k, 16k"));
    assert!(md.contains("83.6 tok/s") && md.contains("Artificial Analysis"));
}

#[test]
fn svg_is_well_formed_and_escaped() {
    let recs = vec![rec("a<b>&c", "dsv4", 18.0), rec("a<b>&c", "peer \"x\"", 25.0), rec("head_b1", "dsv4", 15.0)];
    let s = kernel_svg(&recs, "title & more");
    check_well_formed(&s).unwrap();
    assert!(s.contains("a&lt;b&gt;&amp;c"));
    assert!(s.contains("100%"));
    let l = line_chart("tok/s", "batch", "tokens/s", &[
        Series { name: "cpu".into(), points: vec![(1.0, 2.0), (8.0, 9.0), (32.0, 20.0)] },
        Series { name: "bound <x>".into(), points: vec![(1.0, 4.0), (32.0, 60.0)] },
    ]);
    check_well_formed(&l).unwrap();
    check_well_formed(&line_chart("empty", "x", "y", &[])).unwrap();
    assert!(check_well_formed("<svg><g></svg>").is_err());
    assert!(check_well_formed("<svg>a & b</svg>").is_err());
    assert!(check_well_formed("<svg>").is_err());
    assert_eq!(escape("<'&\">"), "&lt;&apos;&amp;&quot;&gt;");
}

#[test]
fn naming_dates_and_commit() {
    assert_eq!(cpu_result_path(Path::new("results"), "2026-11-23", "json"), Path::new("results/cpu-2026-11-23.json"));
    assert_eq!(model_result_path(Path::new("r"), "NVIDIA H100 80GB HBM3", "2026-11-23", "md"), Path::new("r/nvidia-h100-80gb-hbm3-2026-11-23.md"));
    assert_eq!(slug("  "), "device");
    assert_eq!(date_of_unix(0), "1970-01-01");
    assert_eq!(date_of_unix(951_782_400), "2000-02-29");
    assert_eq!(date_of_unix(1_700_000_000), "2023-11-14");
    assert_eq!(date_of_unix(4_102_444_800), "2100-01-01");
    assert_eq!(date_of_unix(-86_400), "1969-12-31");
    let t = today();
    assert_eq!(t.len(), 10);
    assert!(t.starts_with("20"));
    assert!(!git_commit().is_empty());
}
