//! `dsv4 bench model`'s run logic on the CPU: which shapes a scenario list needs measured,
//! that measured shapes give unprojected figures and long contexts come from the fit, the
//! records' arithmetic (tokens/s, bound, % of bound), and the plots.

use std::collections::BTreeMap;

use dsv4_bench::model_record::Rooflines;
use dsv4_bench::model_run::{measure, model_svgs, plan, records, MeasureOpts, Measured};
use dsv4_bench::scenario::{parse_scenarios, LayerCosts, Scenario};
use dsv4_bench::svg::check_well_formed;
use dsv4_engine::backend::cpu::CpuBackend;
use dsv4_reference::synthetic::{bench_config, small_config};
use dsv4_reference::{ActQuant, Model};

fn sc(s: &str) -> Vec<Scenario> {
    parse_scenarios(&[s]).unwrap()
}

#[test]
fn plan_measures_what_fits_and_adds_fit_points() {
    let p = plan(&sc("decode:1,8@4k,64k,1m;ttft:1k,64k;prefill:4k"), 64 << 10, 8 << 10);
    // 4k and 64k fit for both batches; 1m is projected from them (no extra points needed)
    assert_eq!(p.decode.iter().copied().collect::<Vec<_>>(), [(1, 4096), (1, 65536), (8, 4096), (8, 65536)]);
    // 1k and 4k fit; 64k is projected from them
    assert_eq!(p.prefill.iter().copied().collect::<Vec<_>>(), [1024, 4096]);

    // a lone long context gets max/4 and max measured
    let p = plan(&sc("decode:32@1m"), 16 << 10, 256);
    assert_eq!(p.decode.iter().copied().collect::<Vec<_>>(), [(32, 4096), (32, 16384)]);
    assert!(p.prefill.is_empty());
    let p = plan(&sc("ttft:64k"), 4096, 256);
    assert_eq!(p.prefill.iter().copied().collect::<Vec<_>>(), [64, 256]);
    assert_eq!(p.len(), 2);
}

/// Costs per layer kind that grow linearly with context: 1 ms + 1 µs per context token.
fn costs(ctx: usize) -> LayerCosts {
    let t = 1e-3 + 1e-6 * ctx as f64;
    LayerCosts { per_kind_s: BTreeMap::from([(0, t), (4, 2.0 * t), (128, t)]), embed_s: 1e-4, head_s: 2e-3 }
}

#[test]
fn records_project_depth_and_context() {
    let full = bench_config(None, 16); // 43 layers: 2 of ratio 0, 21 of 4, 20 of 128
    let mut m = Measured::default();
    m.decode.insert(1, vec![(4096, costs(4096)), (65536, costs(65536))]);
    m.prefill = vec![(64, costs(64)), (256, costs(256))];
    let roof = Rooflines { bandwidth_gb_per_s: 20.0, compute_gflop_per_s: 200.0 };
    let scen = sc("decode:1@4k,1m;ttft:64,1k;prefill:256");
    let recs = records(&full, &scen, &m, 4, "cpu", roof).unwrap();
    assert_eq!(recs.len(), 5);
    let step = |ctx: usize| {
        let t = 1e-3 + 1e-6 * ctx as f64;
        1e-4 + 2e-3 + 2.0 * t + 21.0 * 2.0 * t + 20.0 * t
    };
    // measured context, 4 of 43 layers: projected in depth only
    let r = &recs[0];
    assert_eq!(r.scenario, "decode:1@4k");
    assert!((r.step_s - step(4096)).abs() < 1e-12, "{} vs {}", r.step_s, step(4096));
    assert!((r.tokens_per_s.unwrap() - 1.0 / r.step_s).abs() < 1e-9);
    assert!(r.projected && r.basis.contains("4 of 43 layers"));
    let bound = r.bound_tokens_per_s.unwrap();
    assert!(bound > 0.0 && (r.pct_of_bound.unwrap() - 100.0 * r.tokens_per_s.unwrap() / bound).abs() < 1e-9);
    assert!((r.bytes_per_token - dsv4_bench::roofline::bytes_per_token(&full, 1, None)).abs() < 1.0);
    // 1m: the exact line through the two measured contexts
    let r = &recs[1];
    assert!((r.step_s - step(1 << 20)).abs() < 1e-9 * step(1 << 20), "{} vs {}", r.step_s, step(1 << 20));
    assert!(r.basis.contains("linear fit") && r.basis.contains("4k, 64k"), "{}", r.basis);
    assert!((r.ms_per_layer_by_kind["ratio4"] - 2e3 * (1e-3 + 1e-6 * (1 << 20) as f64)).abs() < 1e-6);
    // TTFT measured at 64, fitted at 1k; prefill throughput = tokens / step
    assert_eq!(recs[2].ttft_s, Some(recs[2].step_s));
    assert!(recs[2].tokens_per_s.is_none());
    assert!((recs[3].ttft_s.unwrap() - step(1024)).abs() < 1e-9);
    assert!((recs[4].tokens_per_s.unwrap() - 256.0 / step(256)).abs() < 1e-6);

    // nothing measured for batch 8: the error names the scenario
    let err = records(&full, &sc("decode:8@4k"), &m, 4, "cpu", roof).unwrap_err();
    assert!(err.0.contains("decode:8@4k"), "{}", err.0);
}

#[test]
fn measure_runs_the_plan_on_a_backend_and_plots() {
    let cfg = small_config();
    let dir = tempfile::tempdir().unwrap();
    dsv4_reference::synthetic::write_checkpoint(dir.path(), &cfg, 3).unwrap();
    let mut b = CpuBackend::new(Model::load(dir.path()).unwrap());
    let scen = sc("decode:1,2@8,40;ttft:5;prefill:9");
    let p = plan(&scen, 32, 16);
    let mut seen = Vec::new();
    let m = measure(&mut b, &p, MeasureOpts { runs: 1, act_quant: ActQuant::On, sync: false, progress: false }, |l, t| {
        seen.push(l.to_string());
        assert_eq!(t.blocks_s.len(), cfg.n_layers);
    });
    assert_eq!(seen, ["decode:1@8", "decode:1@32", "decode:2@8", "decode:2@32", "prefill:5", "prefill:9"]);
    assert_eq!(m.decode[&2].len(), 2);
    let kinds: Vec<usize> = m.decode[&1][0].1.per_kind_s.keys().copied().collect();
    let mut want: Vec<usize> = (0..cfg.n_layers).map(|l| cfg.compress_ratio(l)).collect();
    want.sort();
    want.dedup();
    assert_eq!(kinds, want);
    let roof = Rooflines { bandwidth_gb_per_s: 10.0, compute_gflop_per_s: 100.0 };
    let recs = records(&cfg, &scen, &m, cfg.n_layers, "cpu", roof).unwrap();
    assert_eq!(recs.len(), 6);
    // 40 > 32: projected from 8 and 32; 8 was measured at full depth
    assert!(!recs[0].projected && recs[0].basis.contains("measured at full depth"), "{}", recs[0].basis);
    assert!(recs[2].projected);
    assert!(recs.iter().all(|r| r.step_s > 0.0 && r.step_s.is_finite()));
    let svgs = model_svgs(&recs, "test & <run>");
    assert_eq!(svgs.iter().map(|s| s.0).collect::<Vec<_>>(), ["decode", "ttft"]);
    for (_, s) in &svgs {
        check_well_formed(s).unwrap();
        assert!(s.contains("test &amp; &lt;run&gt;"));
    }
}
