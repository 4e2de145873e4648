//! `dsv4 logits` and `dsv4 compare` as a user runs them: the golden check from the command line,
//! and clear errors for bad input.

use std::process::Command;

use dsv4_reference::golden::{max_row_rel_err, shared_path, GoldenFile};

fn dsv4() -> Command {
    Command::new(env!("CARGO_BIN_EXE_dsv4"))
}

#[test]
fn logits_command_reproduces_the_smooth_golden() {
    let dir = shared_path(env!("CARGO_MANIFEST_DIR"), "golden/tiny");
    let golden = dir.join("golden_smooth.safetensors");
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("logits.safetensors");
    let run = dsv4()
        .args(["logits", "--model"])
        .arg(&dir)
        .arg("--input")
        .arg(&golden)
        .args(["--prefill", "37", "--no-act-quant", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let (ours, gold) = (GoldenFile::open(&out).unwrap(), GoldenFile::open(&golden).unwrap());
    for name in ["prefill_logits_all", "decode_logits", "mtp_logits"] {
        assert_eq!(ours.shape(name), gold.shape(name), "{name}");
        let e = max_row_rel_err(&ours.f32s(name), &gold.f32s(name), 256);
        assert!(e < 1e-4, "{name}: {e:e}");
    }
    let cmp = dsv4().args(["compare", "--out"]).arg(&out).arg("--golden").arg(&golden).output().unwrap();
    let text = String::from_utf8_lossy(&cmp.stdout);
    assert!(cmp.status.success() && text.contains("decode_logits") && text.contains("argmax agreement 80/80"), "{text}");
}

#[test]
fn logits_command_names_what_is_wrong() {
    let dir = shared_path(env!("CARGO_MANIFEST_DIR"), "golden/tiny");
    let golden = dir.join("golden_smooth.safetensors");
    let cases: Vec<(Vec<std::ffi::OsString>, &str)> = vec![
        (vec!["--model".into(), "/no/such/model".into(), "--input".into(), golden.clone().into(), "--prefill".into(), "5".into()], "/no/such/model"),
        (vec!["--model".into(), dir.clone().into(), "--input".into(), dir.join("config.json").into(), "--prefill".into(), "5".into()], "config.json"),
        (vec!["--model".into(), dir.clone().into(), "--input".into(), dir.join("ops.safetensors").into(), "--prefill".into(), "5".into()], "input_ids"),
        (vec!["--model".into(), dir.clone().into(), "--input".into(), golden.clone().into(), "--prefill".into(), "500".into()], "--prefill 500"),
    ];
    for (args, needle) in cases {
        let run = dsv4().arg("logits").args(&args).args(["--out", "/tmp/never-written.safetensors"]).output().unwrap();
        let err = String::from_utf8_lossy(&run.stderr);
        assert!(!run.status.success(), "{args:?} succeeded");
        assert!(err.contains(needle), "{args:?}: message {err:?} does not name {needle:?}");
        assert!(!err.contains("panicked"), "{args:?} panicked: {err}");
    }
}
