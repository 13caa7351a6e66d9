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
    /// Requests whose duration falls in each bucket alone (not cumulative: one increment per
    /// request); [`Metrics::render`] adds them up as Prometheus expects.
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
    /// Event streams open now.
    pub streams_open: std::sync::atomic::AtomicUsize,
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
            streams_open: std::sync::atomic::AtomicUsize::new(0),
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
        if let Some(i) = BUCKETS.iter().position(|bound| secs <= *bound) {
            r.buckets[i].fetch_add(1, Ordering::Relaxed);
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
            let mut below = 0;
            for (b, bound) in r.buckets.iter().zip(BUCKETS) {
                below += b.load(Ordering::Relaxed);
                let _ = writeln!(
                    out,
                    "promptgate_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"{bound}\"}} {below}"
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
            "# HELP promptgate_event_streams Event streams open.\n# TYPE promptgate_event_streams gauge\npromptgate_event_streams {}",
            self.streams_open.load(std::sync::atomic::Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP promptgate_prompts Prompts served.\n# TYPE promptgate_prompts gauge\npromptgate_prompts {prompts}"
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative_in_the_exposition() {
        let m = Metrics::new(&["/r"]);
        for micros in [50, 300, 2_000, 2_000_000] {
            m.observe("/r", 200, Duration::from_micros(micros));
        }
        m.observe("/r", 404, Duration::from_micros(80));
        let text = m.render(3);
        let bucket = |le: &str| {
            let prefix = format!(
                "promptgate_http_request_duration_seconds_bucket{{route=\"/r\",le=\"{le}\"}} "
            );
            text.lines()
                .find_map(|l| l.strip_prefix(prefix.as_str()))
                .unwrap_or_else(|| panic!("no bucket le={le} in\n{text}"))
                .to_string()
        };
        assert_eq!(bucket("0.0001"), "2");
        assert_eq!(bucket("0.00025"), "2");
        assert_eq!(bucket("0.0005"), "3");
        assert_eq!(bucket("0.0025"), "4");
        assert_eq!(bucket("1"), "4");
        assert_eq!(bucket("+Inf"), "5");
        assert!(text.contains("promptgate_http_requests_total{route=\"/r\",status=\"200\"} 4"));
        assert!(text.contains("promptgate_http_requests_total{route=\"/r\",status=\"404\"} 1"));
        assert!(text.contains("promptgate_http_request_duration_seconds_count{route=\"/r\"} 5"));
    }
}
