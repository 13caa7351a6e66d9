//! Prometheus metrics of `promptgate serve`: requests by route and status, a latency histogram
//! per route, label moves and reloads — as text, with no labels that could carry a secret.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 10] = [
    0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.05, 0.25, 1.0,
];

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

#[derive(Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(&'static str, u16), u64>>,
    latency: Mutex<BTreeMap<&'static str, Histogram>>,
    pub label_moves: AtomicU64,
    pub versions_registered: AtomicU64,
    pub reloads: AtomicU64,
    pub reload_errors: AtomicU64,
    pub events_sent: AtomicU64,
}

impl Metrics {
    /// Record one request: its route template (never the raw path), status and duration.
    pub fn observe(&self, route: &'static str, status: u16, took: Duration) {
        if let Ok(mut r) = self.requests.lock() {
            *r.entry((route, status)).or_default() += 1;
        }
        let secs = took.as_secs_f64();
        if let Ok(mut l) = self.latency.lock() {
            let h = l.entry(route).or_default();
            for (i, b) in BUCKETS.iter().enumerate() {
                if secs <= *b {
                    h.counts[i] += 1;
                }
            }
            h.count += 1;
            h.sum += secs;
        }
    }

    /// The Prometheus text exposition.
    pub fn render(&self, prompts: usize) -> String {
        let mut out = String::new();
        out.push_str("# HELP promptgate_http_requests_total HTTP requests by route and status.\n# TYPE promptgate_http_requests_total counter\n");
        if let Ok(r) = self.requests.lock() {
            for ((route, status), n) in r.iter() {
                let _ = writeln!(
                    out,
                    "promptgate_http_requests_total{{route=\"{route}\",status=\"{status}\"}} {n}"
                );
            }
        }
        out.push_str("# HELP promptgate_http_request_duration_seconds Time to answer, by route.\n# TYPE promptgate_http_request_duration_seconds histogram\n");
        if let Ok(l) = self.latency.lock() {
            for (route, h) in l.iter() {
                for (i, b) in BUCKETS.iter().enumerate() {
                    let _ = writeln!(
                        out,
                        "promptgate_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"{b}\"}} {}",
                        h.counts[i]
                    );
                }
                let _ = writeln!(
                    out,
                    "promptgate_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"+Inf\"}} {}\npromptgate_http_request_duration_seconds_sum{{route=\"{route}\"}} {}\npromptgate_http_request_duration_seconds_count{{route=\"{route}\"}} {}",
                    h.count, h.sum, h.count
                );
            }
        }
        let counter = |out: &mut String, name: &str, help: &str, v: &AtomicU64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                v.load(Ordering::Relaxed)
            );
        };
        counter(
            &mut out,
            "promptgate_label_moves_total",
            "Label moves seen (any process).",
            &self.label_moves,
        );
        counter(
            &mut out,
            "promptgate_versions_registered_total",
            "Versions registered (any process).",
            &self.versions_registered,
        );
        counter(
            &mut out,
            "promptgate_reloads_total",
            "Prompts reloaded from disk.",
            &self.reloads,
        );
        counter(
            &mut out,
            "promptgate_reload_errors_total",
            "Reloads that found an invalid file (the last good state is kept).",
            &self.reload_errors,
        );
        counter(
            &mut out,
            "promptgate_events_sent_total",
            "Server-sent events delivered.",
            &self.events_sent,
        );
        let _ = writeln!(
            out,
            "# HELP promptgate_prompts Prompts served.\n# TYPE promptgate_prompts gauge\npromptgate_prompts {prompts}"
        );
        out
    }
}
