//! `dsv4 init-tiny`, `generate` and `chat` as a user runs them, and their errors.

use std::io::Write;
use std::process::{Command, Stdio};

fn dsv4(cache: &std::path::Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_dsv4"));
    c.env("DSV4_CACHE", cache);
    c
}

fn run(c: &mut Command) -> (bool, String, String) {
    let o = c.output().unwrap();
    (o.status.success(), String::from_utf8_lossy(&o.stdout).into_owned(), String::from_utf8_lossy(&o.stderr).into_owned())
}

#[test]
fn init_tiny_then_generate_is_reproducible() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("tiny");
    let (ok, _, err) = run(dsv4(tmp.path()).arg("init-tiny").arg(&dir));
    assert!(ok, "{err}");
    let (ok, _, err) = run(dsv4(tmp.path()).arg("init-tiny").arg(&dir));
    assert!(!ok && err.contains("already holds"), "{err}");

    let gen = |seed: &str| run(dsv4(tmp.path()).args(["generate", "--model"]).arg(&dir).args(["--prompt", "Hello", "--max-tokens", "12", "--seed", seed]));
    let (ok, out1, err) = gen("7");
    assert!(ok, "{err}");
    assert!(err.contains("tok/s") && err.contains("output 12 tokens") || err.contains("output"), "speeds are reported: {err}");
    let (_, out2, _) = gen("7");
    assert_eq!(out1, out2, "same seed, same text");
    assert!(!err.contains("panicked"));
}

#[test]
fn generate_without_model_uses_the_cached_tiny_model() {
    let tmp = tempfile::tempdir().unwrap();
    let (ok, _, err) = run(dsv4(tmp.path()).args(["generate", "--prompt", "Hi", "--max-tokens", "4", "--thinking", "--temperature", "0"]));
    assert!(ok, "{err}");
    assert!(err.contains("tiny random model"), "{err}");
    assert!(tmp.path().join("tiny-v1/model.safetensors").exists());
}

#[test]
fn bad_input_gets_a_clear_message() {
    let tmp = tempfile::tempdir().unwrap();
    let cases: Vec<(Vec<String>, &str)> = vec![
        (vec!["--model".into(), "/no/such/folder".into(), "--prompt".into(), "x".into()], "/no/such/folder"),
        (vec!["--prompt".into(), "x".into(), "--temperature".into(), "5".into()], "temperature"),
        (vec!["--prompt".into(), "x".into(), "--top-p".into(), "0".into()], "top_p"),
        (vec!["--prompt".into(), "x".into(), "--max-tokens".into(), "0".into()], "max-tokens"),
        (vec!["--prompt".into(), "y".repeat(5000)], "context limit"),
    ];
    for (args, needle) in cases {
        let (ok, _, err) = run(dsv4(tmp.path()).arg("generate").args(&args));
        assert!(!ok, "{needle}: succeeded");
        assert!(err.contains(needle), "{needle}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
    // A folder that is not a model.
    let (ok, _, err) = run(dsv4(tmp.path()).args(["generate", "--prompt", "x", "--model"]).arg(tmp.path()));
    assert!(!ok && err.contains("config.json"), "{err}");
}

#[test]
fn chat_keeps_history_and_obeys_commands() {
    let tmp = tempfile::tempdir().unwrap();
    let mut child = dsv4(tmp.path())
        .args(["chat", "--max-tokens", "5", "--seed", "3"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"hello\nand again\n/clear\nhi\n/exit\nnever read\n").unwrap();
    let o = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert_eq!(err.lines().filter(|l| l.starts_with("prompt ")).count(), 3, "three turns answered: {err}");
    assert!(err.contains("conversation cleared"), "{err}");
    // The second turn's prompt holds the first turn, so it is longer than the third's.
    let prompts: Vec<usize> = err.lines().filter_map(|l| l.strip_prefix("prompt ")?.split(' ').next()?.parse().ok()).collect();
    assert_eq!(prompts.len(), 3, "{err}");
    assert!(prompts[1] > prompts[0] && prompts[2] < prompts[1], "{prompts:?}");
}
