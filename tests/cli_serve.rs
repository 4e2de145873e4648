//! `dsv4 serve` as a process: it answers, and SIGTERM stops it cleanly (exit 0).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A raw HTTP/1.1 request on loopback; returns the whole response text.
fn http(addr: &str, req: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    s.write_all(req.as_bytes()).unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

#[cfg(unix)]
#[test]
fn serve_answers_and_stops_on_sigterm() {
    let cache = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_dsv4"))
        .args(["serve", "--port", "0", "--shutdown-grace-secs", "2"])
        .env("DSV4_CACHE", cache.path())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The banner names the address it bound.
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let start = Instant::now();
    let addr = loop {
        let mut line = String::new();
        assert!(err.read_line(&mut line).unwrap() > 0, "serve exited early");
        if let Some(rest) = line.split("http://").nth(1) {
            break rest.split_whitespace().next().unwrap().to_string();
        }
        assert!(start.elapsed() < Duration::from_secs(120), "no banner");
    };
    let health = http(&addr, "GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert!(health.starts_with("HTTP/1.1 200") && health.contains("\"ok\""), "{health}");
    let body = r#"{"model":"deepseek-chat","messages":[{"role":"user","content":"hi"}],"max_tokens":3}"#;
    let resp = http(&addr, &format!("POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len()));
    assert!(resp.starts_with("HTTP/1.1 200") && resp.contains("chat.completion"), "{resp}");

    let kill = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(kill.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "serve did not stop after SIGTERM");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "exit status {status}");
    let mut rest = String::new();
    let _ = err.read_to_string(&mut rest);
    assert!(rest.contains("dsv4 stopped"), "{rest}");
}
