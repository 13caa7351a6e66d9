//! Prometheus metrics of `promptgate serve`: requests by route and status, a latency histogram
//! per route, label moves and reloads — as text, with no labels that could carry a secret.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 10] = [
    0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.05, 0.25, 1.0,
];

/// Status codes counted one by one; anything else is counted as `other`.
const STATUSES: [u16; 13] = [
    200, 201, 304, 400, 401, 403, 404, 405, 412, 422, 428, 500, 503,
];

/// One route's counters: lock-free, so two requests never wait on each other here.
struct RouteStats {
    by_status: [AtomicU64; STATUSES.len() + 1],
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_nanos: AtomicU64,
}

impl Default for RouteStats {
    fn default() -> RouteStats {
        RouteStats {
            by_status: std::array::from_fn(|_| AtomicU64::new(0)),
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            count: AtomicU64::new(0),
            sum_nanos: AtomicU64::new(0),
        }
    }
}

pub struct Metrics {
    routes: Vec<(&'static str, RouteStats)>,
    pub label_moves: AtomicU64,
    pub versions_registered: AtomicU64,
    pub reloads: AtomicU64,
    pub reload_errors: AtomicU64,
    pub events_sent: AtomicU64,
}

impl Metrics {
    /// Counters for these routes (and one for requests that match none).
    pub fn new(routes: &[&'static str]) -> Metrics {
        let mut r: Vec<(&'static str, RouteStats)> =
            routes.iter().map(|p| (*p, RouteStats::default())).collect();
        r.push(("(unmatched)", RouteStats::default()));
        Metrics {
            routes: r,
            label_moves: AtomicU64::new(0),
            versions_registered: AtomicU64::new(0),
            reloads: AtomicU64::new(0),
            reload_errors: AtomicU64::new(0),
            events_sent: AtomicU64::new(0),
        }
    }

    /// Record one request: its route template (never the raw path), status and duration.
    pub fn observe(&self, route: &str, status: u16, took: Duration) {
        let Some((_, r)) = self
            .routes
            .iter()
            .find(|(p, _)| *p == route)
            .or_else(|| self.routes.last())
        else {
            return;
        };
        let i = STATUSES
            .iter()
            .position(|s| *s == status)
            .unwrap_or(STATUSES.len());
        r.by_status[i].fetch_add(1, Ordering::Relaxed);
        let secs = took.as_secs_f64();
        for (b, bound) in r.buckets.iter().zip(BUCKETS) {
            if secs <= bound {
                b.fetch_add(1, Ordering::Relaxed);
            }
        }
        r.count.fetch_add(1, Ordering::Relaxed);
        r.sum_nanos
            .fetch_add(took.as_nanos() as u64, Ordering::Relaxed);
    }

    /// The Prometheus text exposition.
    pub fn render(&self, prompts: usize) -> String {
        let mut out = String::new();
        out.push_str("# HELP promptgate_http_requests_total HTTP requests by route and status.\n# TYPE promptgate_http_requests_total counter\n");
        for (route, r) in &self.routes {
            for (i, n) in r.by_status.iter().enumerate() {
                let n = n.load(Ordering::Relaxed);
                if n > 0 {
                    let status = STATUSES
                        .get(i)
                        .map(u16::to_string)
                        .unwrap_or_else(|| "other".into());
                    let _ = writeln!(
                        out,
                        "promptgate_http_requests_total{{route=\"{route}\",status=\"{status}\"}} {n}"
                    );
                }
            }
        }
        out.push_str("# HELP promptgate_http_request_duration_seconds Time to answer, by route.\n# TYPE promptgate_http_request_duration_seconds histogram\n");
        for (route, r) in &self.routes {
            let count = r.count.load(Ordering::Relaxed);
            if count == 0 {
                continue;
            }
            for (b, bound) in r.buckets.iter().zip(BUCKETS) {
                let _ = writeln!(
                    out,
                    "promptgate_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"{bound}\"}} {}",
                    b.load(Ordering::Relaxed)
                );
            }
            let sum = r.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
            let _ = writeln!(
                out,
                "promptgate_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"+Inf\"}} {count}\npromptgate_http_request_duration_seconds_sum{{route=\"{route}\"}} {sum}\npromptgate_http_request_duration_seconds_count{{route=\"{route}\"}} {count}"
            );
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
