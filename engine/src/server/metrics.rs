//! Prometheus metrics, rendered by hand in the text exposition format: requests by status,
//! prompt and generated tokens, TTFT and inter-token latency histograms, queue depth, running
//! sequences, state-pool and prefix-cache usage.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::service::ServiceStats;

const TTFT_BUCKETS: [f64; 12] = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];
const ITL_BUCKETS: [f64; 12] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0];

struct Histogram {
    bounds: &'static [f64],
    counts: Vec<u64>,
    sum: f64,
    n: u64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Histogram {
        Histogram { bounds, counts: vec![0; bounds.len()], sum: 0.0, n: 0 }
    }
    fn observe(&mut self, v: f64) {
        for (b, c) in self.bounds.iter().zip(self.counts.iter_mut()) {
            if v <= *b {
                *c += 1;
            }
        }
        self.sum += v;
        self.n += 1;
    }
    fn render(&self, name: &str, help: &str, out: &mut String) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        for (b, c) in self.bounds.iter().zip(&self.counts) {
            let _ = writeln!(out, "{name}_bucket{{le=\"{b}\"}} {c}");
        }
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {}\n{name}_sum {}\n{name}_count {}", self.n, self.sum, self.n);
    }
}

#[derive(Default)]
struct Counters {
    /// (route, status) -> count.
    requests: BTreeMap<(String, u16), u64>,
}

/// Shared metrics; cheap to clone.
#[derive(Clone)]
pub struct Metrics {
    counters: Arc<Mutex<Counters>>,
    ttft: Arc<Mutex<Histogram>>,
    itl: Arc<Mutex<Histogram>>,
    prompt_tokens: Arc<AtomicU64>,
    generated_tokens: Arc<AtomicU64>,
    in_flight: Arc<AtomicU64>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            counters: Default::default(),
            ttft: Arc::new(Mutex::new(Histogram::new(&TTFT_BUCKETS))),
            itl: Arc::new(Mutex::new(Histogram::new(&ITL_BUCKETS))),
            prompt_tokens: Default::default(),
            generated_tokens: Default::default(),
            in_flight: Default::default(),
        }
    }
}

impl Metrics {
    pub fn record_response(&self, route: &str, status: u16) {
        *self.counters.lock().unwrap().requests.entry((route.to_string(), status)).or_default() += 1;
    }
    pub fn request_started(&self) {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
    }
    pub fn request_finished(&self, prompt: usize, generated: usize) {
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.prompt_tokens.fetch_add(prompt as u64, Ordering::Relaxed);
        self.generated_tokens.fetch_add(generated as u64, Ordering::Relaxed);
    }
    pub fn observe_ttft(&self, d: Duration) {
        self.ttft.lock().unwrap().observe(d.as_secs_f64());
    }
    pub fn observe_itl(&self, d: Duration) {
        self.itl.lock().unwrap().observe(d.as_secs_f64());
    }

    pub fn render(&self, s: &ServiceStats) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "# HELP dsv4_requests_total HTTP requests by route and status.\n# TYPE dsv4_requests_total counter");
        for ((route, status), n) in &self.counters.lock().unwrap().requests {
            let _ = writeln!(out, "dsv4_requests_total{{route=\"{route}\",status=\"{status}\"}} {n}");
        }
        let gauge = |out: &mut String, name: &str, help: &str, kind: &str, v: f64| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}");
        };
        gauge(&mut out, "dsv4_prompt_tokens_total", "Prompt tokens of finished requests.", "counter", self.prompt_tokens.load(Ordering::Relaxed) as f64);
        gauge(&mut out, "dsv4_generated_tokens_total", "Generated tokens of finished requests.", "counter", self.generated_tokens.load(Ordering::Relaxed) as f64);
        self.ttft.lock().unwrap().render("dsv4_time_to_first_token_seconds", "Time from submission to the first token.", &mut out);
        self.itl.lock().unwrap().render("dsv4_inter_token_latency_seconds", "Time between consecutive tokens of a request.", &mut out);
        let e = &s.engine;
        gauge(&mut out, "dsv4_queue_depth", "Requests waiting for a state slot.", "gauge", e.waiting as f64);
        gauge(&mut out, "dsv4_running_sequences", "Sequences in the running batch.", "gauge", e.running as f64);
        gauge(&mut out, "dsv4_state_pool_slots_used", "State slots in use.", "gauge", e.pool.slots_used as f64);
        gauge(&mut out, "dsv4_state_pool_slots", "State slots in all.", "gauge", e.pool.slots as f64);
        gauge(&mut out, "dsv4_state_pool_blocks_used", "State blocks reserved.", "gauge", e.pool.blocks_used as f64);
        gauge(&mut out, "dsv4_state_pool_blocks", "State blocks in all.", "gauge", e.pool.blocks as f64);
        gauge(&mut out, "dsv4_prefix_cache_entries", "Prefix-cache snapshots.", "gauge", e.cache.entries as f64);
        gauge(&mut out, "dsv4_prefix_cache_bytes", "Bytes held by the prefix cache.", "gauge", e.cache.bytes as f64);
        gauge(&mut out, "dsv4_prefix_cache_budget_bytes", "Prefix-cache byte budget.", "gauge", e.cache.budget as f64);
        gauge(&mut out, "dsv4_engine_steps_total", "Model steps run.", "counter", s.steps as f64);
        gauge(&mut out, "dsv4_requests_in_flight", "Generations started and not finished.", "gauge", self.in_flight.load(Ordering::Relaxed) as f64);
        out
    }
}
