//! `dsv4 bench cpu` end to end on a tiny sweep: the records file is a JSON list with the fields
//! issue 11 asks for and positive numbers; the results/ files are written; peer files merge,
//! and a bad one fails naming the file and field.

use std::process::Command;

fn dsv4() -> Command {
    Command::new(env!("CARGO_BIN_EXE_dsv4"))
}

#[test]
fn bench_cpu_quick_writes_records_and_results() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("f.json");
    let peer = dir.path().join("peer.json");
    std::fs::write(&peer, r#"[{"case":"expert_w1_b1","impl":"peer-x","gb_per_s":5.0,"roofline_gb_per_s":20.0}]"#).unwrap();
    let out = dsv4()
        .args(["bench", "cpu", "--quick", "--max-mb", "8", "--cases", "expert_w1", "--batches", "1", "--json"])
        .arg(&json)
        .arg("--out")
        .arg(dir.path())
        .arg("--peers")
        .arg(&peer)
        .output()
        .unwrap();
    assert!(out.status.success(), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("| case | dsv4 | peer-x |"), "{stdout}");

    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let list = v.as_array().expect("a JSON list");
    assert_eq!(list.len(), 2);
    let ours = &list[0];
    assert_eq!(ours["case"], "expert_w1_b1");
    assert_eq!(ours["impl"], "dsv4");
    for k in ["gb_per_s", "roofline_gb_per_s", "pct_of_roofline", "gflop_per_s", "median_ms"] {
        assert!(ours[k].as_f64().is_some_and(|x| x > 0.0 && x.is_finite()), "{k}: {}", ours[k]);
    }
    for k in ["device", "date", "commit", "format"] {
        assert!(ours[k].as_str().is_some_and(|s| !s.is_empty()), "{k}");
    }
    assert_eq!(list[1]["impl"], "peer-x");
    assert_eq!(list[1]["pct_of_roofline"], 25.0);

    let date = ours["date"].as_str().unwrap();
    for ext in ["json", "md", "svg"] {
        let p = dir.path().join(format!("cpu-{date}.{ext}"));
        assert!(p.is_file(), "{} missing", p.display());
    }
    let svg = std::fs::read_to_string(dir.path().join(format!("cpu-{date}.svg"))).unwrap();
    assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
}

#[test]
fn bench_cpu_rejects_bad_peer_files_and_cases() {
    let dir = tempfile::tempdir().unwrap();
    let peer = dir.path().join("bad-peer.json");
    std::fs::write(&peer, r#"[{"case":"x","impl":"y","gb_per_s":"fast","roofline_gb_per_s":1}]"#).unwrap();
    let out = dsv4().args(["bench", "cpu", "--no-write", "--peers"]).arg(&peer).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad-peer.json") && err.contains("gb_per_s"), "{err}");

    let out = dsv4().args(["bench", "cpu", "--no-write", "--max-mb", "4", "--cases", "expert_w7"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("expert_w7"));
}

/// `dsv4 bench model` on the CPU with a 4-layer slice of the real geometry (6 experts, ~3.3 GB):
/// every scenario gets a record with the bound beside it, long contexts are projected from the
/// measured ones, and the results/ files are written.
#[test]
fn bench_model_cpu_writes_projected_records() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("m.json");
    let out = dsv4()
        .args(["bench", "model", "--device", "cpu", "--layers", "4", "--experts", "6", "--quick", "--max-mb", "8"])
        .args(["--scenarios", "decode:1@128,512,64k;ttft:8,32", "--max-context", "512", "--max-prompt", "8", "--json"])
        .arg(&json)
        .arg("--out")
        .arg(dir.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "stderr: {err}");
    assert!(err.contains("decode:1@128:") && err.contains("prefill:8:"), "per-step log missing: {err}");
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let list = v.as_array().expect("a JSON list");
    let names: Vec<&str> = list.iter().map(|r| r["scenario"].as_str().unwrap()).collect();
    assert_eq!(names, ["decode:1@128", "decode:1@512", "decode:1@64k", "ttft:8", "ttft:32"]);
    for r in list {
        assert_eq!(r["layers_measured"], 4);
        assert_eq!(r["layers_total"], 43);
        assert_eq!(r["projected"], true, "4 of 43 layers: every figure is projected in depth");
        for k in ["step_s", "bound_tokens_per_s", "pct_of_bound", "bytes_per_token", "bandwidth_gb_per_s", "compute_gflop_per_s"] {
            assert!(r[k].as_f64().is_some_and(|x| x > 0.0 && x.is_finite()), "{k}: {}", r[k]);
        }
        assert!(r["backend"].as_str().unwrap().starts_with("cpu-"));
        assert!(r["note"].as_str().unwrap().contains("6 routed experts"));
    }
    assert!(list[2]["basis"].as_str().unwrap().contains("linear fit"));
    assert!(list[0]["tokens_per_s"].as_f64().unwrap() > 0.0 && list[3]["ttft_s"].as_f64().unwrap() > 0.0);
    let files: Vec<String> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    for ext in [".json", ".md", ".decode.svg", ".ttft.svg"] {
        assert!(files.iter().any(|f| f.ends_with(ext)), "{ext} missing in {files:?}");
    }
}

#[test]
fn bench_model_rejects_bad_flags() {
    for (args, needle) in [
        (&["--scenarios", "decode:1"][..], "BATCHES@CONTEXTS"),
        (&["--layers", "2"][..], "--layers 2"),
        (&["--experts", "3"][..], "--experts 3"),
        (&["--max-context", "4x"][..], "4x"),
    ] {
        let out = dsv4().args(["bench", "model", "--device", "cpu", "--no-write"]).args(args).output().unwrap();
        assert!(!out.status.success(), "{args:?} should fail");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
}
