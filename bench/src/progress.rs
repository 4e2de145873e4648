//! A one-line progress indicator for long runs: `N/M case ... eta 1m05s` on stderr, redrawn in
//! place. Only when stderr is a terminal, so logs, CI output and tests stay clean.

use std::io::{IsTerminal, Write};
use std::time::Instant;

pub struct Progress {
    total: usize,
    done: usize,
    start: Instant,
    enabled: bool,
}

/// `1h02m`, `3m05s`, `12s`.
pub fn fmt_eta(secs: f64) -> String {
    let s = secs.max(0.0).round() as u64;
    if s >= 3600 {
        format!("{}h{:02}m", s / 3600, s % 3600 / 60)
    } else if s >= 60 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{s}s")
    }
}

impl Progress {
    /// A bar of `total` steps, drawn only when stderr is a terminal.
    pub fn new(total: usize) -> Progress {
        Progress::with_enabled(total, std::io::stderr().is_terminal())
    }

    pub fn with_enabled(total: usize, enabled: bool) -> Progress {
        Progress { total, done: 0, start: Instant::now(), enabled }
    }

    /// The line for starting step `label` (ETA from the mean time of the steps done so far).
    pub fn line(&self, label: &str) -> String {
        let eta = if self.done == 0 {
            "eta ?".to_string()
        } else {
            let per = self.start.elapsed().as_secs_f64() / self.done as f64;
            format!("eta {}", fmt_eta(per * (self.total - self.done.min(self.total)) as f64))
        };
        format!("{}/{} {label} ... {eta}", self.done + 1, self.total)
    }

    /// Shows that step `label` is starting.
    pub fn start(&self, label: &str) {
        if self.enabled {
            let mut e = std::io::stderr().lock();
            let _ = write!(e, "\r\x1b[2K{}", self.line(label));
            let _ = e.flush();
        }
    }

    /// Marks one step done.
    pub fn inc(&mut self) {
        self.done += 1;
    }

    /// Clears the line.
    pub fn finish(&self) {
        if self.enabled {
            let _ = write!(std::io::stderr().lock(), "\r\x1b[2K");
        }
    }
}
