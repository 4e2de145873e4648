//! Scenario strings and the projection arithmetic, on hand-made numbers.

use std::collections::BTreeMap;

use dsv4_bench::scenario::*;
use dsv4_reference::Config;

#[test]
fn parses_sizes_and_groups() {
    assert_eq!(parse_size("4k").unwrap(), 4096);
    assert_eq!(parse_size("1M").unwrap(), 1 << 20);
    assert_eq!(parse_size(" 1000 ").unwrap(), 1000);
    assert_eq!(parse_group("ttft:1k,8k,64k").unwrap(), vec![
        Scenario::Ttft { prompt: 1024 },
        Scenario::Ttft { prompt: 8192 },
        Scenario::Ttft { prompt: 65536 }
    ]);
    let d = parse_group("decode:1,8@4k,1m").unwrap();
    assert_eq!(d, vec![
        Scenario::Decode { batch: 1, context: 4096 },
        Scenario::Decode { batch: 8, context: 4096 },
        Scenario::Decode { batch: 1, context: 1 << 20 },
        Scenario::Decode { batch: 8, context: 1 << 20 },
    ]);
    assert_eq!(parse_group("prefill:4k").unwrap(), vec![Scenario::Prefill { tokens: 4096 }]);
    let all = parse_scenarios(&["ttft:1k;prefill:2k", "decode:2@3"]).unwrap();
    assert_eq!(all.len(), 3);
}

#[test]
fn default_set_is_issue_6s() {
    let d = default_scenarios();
    assert_eq!(d.iter().filter(|s| matches!(s, Scenario::Ttft { .. })).count(), 3);
    assert_eq!(d.iter().filter(|s| matches!(s, Scenario::Decode { .. })).count(), 12);
    assert!(d.contains(&Scenario::Decode { batch: 128, context: 1 << 20 }));
    assert!(d.contains(&Scenario::Prefill { tokens: 4096 }));
    // Display round-trips through the parser
    for s in &d {
        let text = s.to_string();
        assert_eq!(parse_group(&text).unwrap(), vec![*s], "{text}");
    }
    assert_eq!(Scenario::Decode { batch: 32, context: 65536 }.to_string(), "decode:32@64k");
}

#[test]
fn errors_name_the_bad_token() {
    let e = |s: &str| parse_scenarios(&[s]).unwrap_err().to_string();
    assert!(e("ttft:1k,8x").contains("'8x'"), "{}", e("ttft:1k,8x"));
    assert!(e("decode:1,8").contains("BATCHES@CONTEXTS"));
    assert!(e("decode:1,q@4k").contains("'q'"));
    assert!(e("decode:1@0").contains("'0'"));
    assert!(e("warmup:1k").contains("'warmup'"));
    assert!(e("ttft").contains("KIND:SIZES"));
    assert!(e("ttft:").contains("empty prompt list"));
    assert!(e("").contains("no scenario"));
    assert!(e("prefill:99999999999999999999m").contains("bad size"));
}

fn costs(r0: f64, r4: f64, r128: f64) -> LayerCosts {
    LayerCosts { per_kind_s: BTreeMap::from([(0, r0), (4, r4), (128, r128)]), embed_s: 0.001, head_s: 0.05 }
}

#[test]
fn projects_the_full_depth_by_layer_kind() {
    let cfg = Config::flash();
    let counts = layer_kind_counts(&cfg);
    assert_eq!(counts, BTreeMap::from([(0, 2), (4, 21), (128, 20)]));
    let t = project_step_s(&cfg, &costs(0.010, 0.030, 0.020)).unwrap();
    // 2·10 + 21·30 + 20·20 ms + 1 + 50 ms
    assert!((t - (0.020 + 0.630 + 0.400 + 0.051)).abs() < 1e-12, "{t}");
    let mut missing = costs(0.01, 0.03, 0.02);
    missing.per_kind_s.remove(&128);
    assert!(project_step_s(&cfg, &missing).unwrap_err().0.contains("ratio 128"));
    // per-kind medians from a shortened model's blocks
    let c = LayerCosts::from_blocks(&[0, 4, 128, 4, 4], &[1.0, 2.0, 3.0, 4.0, 9.0], 0.5, 0.25);
    assert_eq!(c.per_kind_s, BTreeMap::from([(0, 1.0), (4, 4.0), (128, 3.0)]));
    assert_eq!(decode_tokens_per_s(8, 0.5), 16.0);
}

#[test]
fn fits_and_projects_long_contexts() {
    let f = LinearFit::fit(&[(1.0, 3.0), (2.0, 5.0), (3.0, 7.0)]).unwrap();
    assert!((f.slope - 2.0).abs() < 1e-12 && (f.intercept - 1.0).abs() < 1e-12);
    assert!(LinearFit::fit(&[(1.0, 1.0)]).is_err());
    assert!(LinearFit::fit(&[(1.0, 1.0), (1.0, 2.0)]).is_err());
    // a cost that falls with context is noise: flat at the mean, never below the points
    let r = LinearFit::fit_rising(&[(256.0, 0.020), (1024.0, 0.012)]).unwrap();
    assert_eq!(r, LinearFit { intercept: 0.016, slope: 0.0 });
    assert_eq!(LinearFit::fit_rising(&[(1.0, 3.0), (2.0, 5.0)]).unwrap(), LinearFit::fit(&[(1.0, 3.0), (2.0, 5.0)]).unwrap());

    let cfg = Config::flash();
    // per-layer costs grow by 1 ms per 4K of context on ratio-4 layers only
    let measured = vec![(4096, costs(0.010, 0.030, 0.020)), (8192, costs(0.010, 0.031, 0.020))];
    let p = project_at_context(&cfg, &measured, 4096, 43).unwrap();
    assert!(!p.projected);
    assert_eq!(p.basis, "measured at full depth");
    let p = project_at_context(&cfg, &measured, 4096, 5).unwrap();
    assert!(p.projected && p.basis.contains("5 of 43"));
    let long = project_at_context(&cfg, &measured, 1 << 20, 5).unwrap();
    assert!(long.projected);
    assert!(long.basis.contains("4k, 8k"), "{}", long.basis);
    // ratio-4 layer at 1M: 30 ms + (1M - 4K)/4K · 1 ms = 30 + 255 ms
    let want = 0.020 + 21.0 * (0.030 + 0.255) + 0.400 + 0.051;
    assert!((long.step_s - want).abs() < 1e-9, "{} vs {want}", long.step_s);
    assert!(project_at_context(&cfg, &measured[..1], 1 << 20, 5).is_err());
    assert_eq!(size_str(1 << 20), "1m");
    assert_eq!(size_str(65536), "64k");
    assert_eq!(size_str(1000), "1000");
}

#[test]
fn model_records_carry_bounds() {
    use dsv4_bench::model_record::{model_record, step_work, Rooflines};
    let cfg = Config::flash();
    let c = costs(0.010, 0.030, 0.020);
    let proj = project_at_context(&cfg, &[(4096, c.clone())], 4096, 3).unwrap();
    let roof = Rooflines { bandwidth_gb_per_s: 21.3, compute_gflop_per_s: 1e9 };
    let r = model_record(&cfg, &Scenario::Decode { batch: 1, context: 4096 }, "cpu", &proj, 3, roof);
    assert_eq!(r.scenario, "decode:1@4k");
    assert!((r.tokens_per_s.unwrap() - 1.0 / proj.step_s).abs() < 1e-9);
    // bandwidth-bound at batch 1: 21.3 GB/s / 11.21 GB
    assert!((r.bound_tokens_per_s.unwrap() - 1.9).abs() < 0.01);
    assert!(r.projected && r.basis.contains("3 of 43"));
    assert_eq!(r.ms_per_layer_by_kind["ratio4"], 30.0);
    assert_eq!(r.ms_per_layer_by_kind["head"], 50.0);
    let t = model_record(&cfg, &Scenario::Ttft { prompt: 8192 }, "cpu", &proj, 3, roof);
    assert_eq!(t.ttft_s, Some(proj.step_s));
    assert_eq!(t.tokens_per_s, None);
    // a long prompt reads (nearly) every expert once: the whole ~155 GB of weights per step
    let (n, bytes, _) = step_work(&cfg, &Scenario::Prefill { tokens: 8192 });
    assert_eq!(n, 8192);
    assert!(bytes * 8192.0 < 160e9 && bytes * 8192.0 > 150e9, "{}", bytes * 8192.0);
}
