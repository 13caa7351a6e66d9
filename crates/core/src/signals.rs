//! Production signals per prompt version: what `serve` keeps of the spans and feedback it is
//! sent, for the rollout guard to compare a canary with its stable version. Aggregates, never
//! events: per (prompt, label, version) and minute, the calls, errors, latency (mean and a
//! mergeable quantile sketch), tokens, and the numeric attributes a policy names — so memory
//! grows with versions × windows, never with traffic. Windows merge, so any span of time is
//! read by adding its minutes.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use sketches_ddsketch::{Config, DDSketch};

use crate::stats::sequential::Moments;

/// Length of a window.
pub const WINDOW_SECS: u64 = 60;
/// Windows kept per version (a day of minutes): older ones are dropped as new ones open.
pub const KEEP_WINDOWS: usize = 24 * 60;

/// Whose signal it is: the attributes the runtime clients hand out with every prompt.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Key {
    pub prompt: String,
    /// The label it was fetched by (`None`: fetched by version).
    pub label: Option<String>,
    pub version_id: String,
}

/// One window of one version.
#[derive(Clone, Serialize, Deserialize)]
pub struct Window {
    pub calls: u64,
    pub errors: u64,
    /// Latency in milliseconds: its moments (for a mean) and its distribution.
    pub latency_ms: Moments,
    /// Quantiles within 1 % of the true value (DDSketch, Masson, Rim and Lee 2019).
    pub latency_sketch: DDSketch,
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// Numeric attributes by name (only those asked for are kept).
    pub metrics: BTreeMap<String, Moments>,
}

impl Default for Window {
    fn default() -> Window {
        Window {
            calls: 0,
            errors: 0,
            latency_ms: Moments::default(),
            latency_sketch: DDSketch::new(Config::defaults()),
            input_tokens: 0,
            output_tokens: 0,
            metrics: BTreeMap::new(),
        }
    }
}

impl std::fmt::Debug for Window {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Window")
            .field("calls", &self.calls)
            .field("errors", &self.errors)
            .field("latency_ms", &self.latency_ms)
            .field("latency_p95", &self.latency_quantile(0.95))
            .field("input_tokens", &self.input_tokens)
            .field("output_tokens", &self.output_tokens)
            .field("metrics", &self.metrics)
            .finish()
    }
}

impl Window {
    pub fn merge(&mut self, other: &Window) {
        self.calls += other.calls;
        self.errors += other.errors;
        self.latency_ms.merge(&other.latency_ms);
        // Every sketch here has the default configuration, so a merge cannot fail.
        let _ = self.latency_sketch.merge(&other.latency_sketch);
        self.input_tokens += other.input_tokens;
        self.output_tokens += other.output_tokens;
        for (name, m) in &other.metrics {
            self.metrics.entry(name.clone()).or_default().merge(m);
        }
    }

    /// Errors as 0/1 observations, one per call.
    pub fn error_moments(&self) -> Moments {
        Moments::binary(self.errors, self.calls)
    }

    /// A latency quantile (0 ≤ q ≤ 1), if any call was timed.
    pub fn latency_quantile(&self, q: f64) -> Option<f64> {
        self.latency_sketch.quantile(q).ok().flatten()
    }
}

/// What one span (or one piece of feedback) says about a version.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Observation {
    /// When it ended, in seconds since the Unix epoch.
    pub at_unix_s: u64,
    /// A call (a span), as opposed to late feedback, which only carries metrics.
    pub call: bool,
    pub error: bool,
    pub latency_ms: Option<f64>,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub metrics: Vec<(String, f64)>,
}

/// Every version's windows.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(from = "Stored", into = "Stored")]
pub struct Signals {
    /// The attribute names kept as metrics.
    tracked: BTreeSet<String>,
    /// By key, by window start (seconds since the epoch, a multiple of [`WINDOW_SECS`]).
    windows: BTreeMap<Key, BTreeMap<u64, Window>>,
}

/// How [`Signals`] are written: JSON keys are strings, so the versions are a list.
#[derive(Serialize, Deserialize)]
struct Stored {
    tracked: BTreeSet<String>,
    versions: Vec<(Key, Vec<(u64, Window)>)>,
}

impl From<Signals> for Stored {
    fn from(s: Signals) -> Stored {
        Stored {
            tracked: s.tracked,
            versions: s
                .windows
                .into_iter()
                .map(|(k, w)| (k, w.into_iter().collect()))
                .collect(),
        }
    }
}

impl From<Stored> for Signals {
    fn from(s: Stored) -> Signals {
        Signals {
            tracked: s.tracked,
            windows: s
                .versions
                .into_iter()
                .map(|(k, w)| (k, w.into_iter().collect()))
                .collect(),
        }
    }
}

impl Signals {
    /// Signals that keep, beside calls, errors, latency and tokens, the metrics named.
    pub fn tracking(names: impl IntoIterator<Item = String>) -> Signals {
        Signals {
            tracked: names.into_iter().collect(),
            windows: BTreeMap::new(),
        }
    }

    /// Keep these metrics from now on (and only these).
    pub fn track(&mut self, names: impl IntoIterator<Item = String>) {
        self.tracked = names.into_iter().collect();
    }

    /// Whether a metric of this name is kept.
    pub fn tracks(&self, name: &str) -> bool {
        self.tracked.contains(name)
    }

    pub fn record(&mut self, key: &Key, o: &Observation) {
        let start = o.at_unix_s - o.at_unix_s % WINDOW_SECS;
        let windows = match self.windows.get_mut(key) {
            Some(w) => w,
            None => self.windows.entry(key.clone()).or_default(),
        };
        let w = windows.entry(start).or_default();
        if o.call {
            w.calls += 1;
            w.errors += u64::from(o.error);
            if let Some(ms) = o.latency_ms.filter(|ms| ms.is_finite() && *ms >= 0.0) {
                w.latency_ms.add(ms);
                w.latency_sketch.add(ms);
            }
            w.input_tokens += o.input_tokens;
            w.output_tokens += o.output_tokens;
        }
        for (name, value) in &o.metrics {
            if value.is_finite() && self.tracked.contains(name) {
                match w.metrics.get_mut(name) {
                    Some(m) => m.add(*value),
                    None => {
                        let mut m = Moments::default();
                        m.add(*value);
                        w.metrics.insert(name.clone(), m);
                    }
                }
            }
        }
        while windows.len() > KEEP_WINDOWS {
            windows.pop_first();
        }
    }

    /// Every window of `key` that starts at or after `from_unix_s`, merged.
    pub fn since(&self, key: &Key, from_unix_s: u64) -> Window {
        let mut out = Window::default();
        if let Some(windows) = self.windows.get(key) {
            for w in windows
                .range(from_unix_s - from_unix_s % WINDOW_SECS..)
                .map(|(_, w)| w)
            {
                out.merge(w);
            }
        }
        out
    }

    /// The versions heard from.
    pub fn keys(&self) -> impl Iterator<Item = &Key> {
        self.windows.keys()
    }

    /// How many windows are held (what memory grows with).
    pub fn window_count(&self) -> usize {
        self.windows.values().map(BTreeMap::len).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(v: &str) -> Key {
        Key {
            prompt: "p".into(),
            label: Some("production".into()),
            version_id: v.into(),
        }
    }

    fn call(at: u64, error: bool, ms: f64) -> Observation {
        Observation {
            at_unix_s: at,
            call: true,
            error,
            latency_ms: Some(ms),
            input_tokens: 10,
            output_tokens: 5,
            metrics: vec![("app.score".into(), if error { 0.0 } else { 1.0 })],
        }
    }

    #[test]
    fn windows_add_up_to_what_was_recorded() {
        let mut s = Signals::tracking(["app.score".to_string()]);
        let t0 = 1_800_000_000;
        for i in 0..300u64 {
            s.record(
                &key("v1"),
                &call(t0 + i, i % 10 == 0, (i % 100) as f64 + 1.0),
            );
        }
        s.record(&key("v2"), &call(t0, false, 5.0));
        // Feedback: a metric, no call.
        s.record(
            &key("v1"),
            &Observation {
                at_unix_s: t0 + 299,
                metrics: vec![("app.score".into(), 0.5), ("untracked".into(), 1.0)],
                ..Observation::default()
            },
        );
        let all = s.since(&key("v1"), 0);
        assert_eq!((all.calls, all.errors), (300, 30));
        assert_eq!((all.input_tokens, all.output_tokens), (3000, 1500));
        assert_eq!(all.metrics["app.score"].n, 301);
        assert!(!all.metrics.contains_key("untracked"));
        assert!((all.latency_ms.mean - 50.5).abs() < 1e-9);
        let p95 = all.latency_quantile(0.95).unwrap();
        assert!((p95 - 95.0).abs() <= 95.0 * 0.011, "{p95}");
        assert_eq!(all.error_moments(), Moments::binary(30, 300));
        // 300 s from a minute boundary: 5 windows; the last two minutes hold 120 calls.
        assert_eq!(s.window_count(), 5 + 1);
        assert_eq!(s.since(&key("v1"), t0 + 180).calls, 120);
        assert_eq!(s.since(&key("v2"), 0).calls, 1);
        assert_eq!(s.since(&key("v3"), 0).calls, 0);
    }

    #[test]
    fn memory_is_bounded_by_windows_not_calls() {
        let mut s = Signals::default();
        for minute in 0..(KEEP_WINDOWS as u64 + 100) {
            for i in 0..3 {
                s.record(&key("v1"), &call(minute * WINDOW_SECS + i, false, 1.0));
            }
        }
        assert_eq!(s.window_count(), KEEP_WINDOWS);
        // The oldest went first.
        assert_eq!(s.since(&key("v1"), 0).calls, 3 * KEEP_WINDOWS as u64);
    }

    #[test]
    fn signals_survive_a_round_trip_through_json() {
        let mut s = Signals::tracking(["app.score".to_string()]);
        for i in 0..50 {
            s.record(&key("v1"), &call(1_800_000_000 + i, i % 7 == 0, i as f64));
        }
        let back: Signals = serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
        let (a, b) = (s.since(&key("v1"), 0), back.since(&key("v1"), 0));
        assert_eq!(
            (a.calls, a.errors, a.latency_ms),
            (b.calls, b.errors, b.latency_ms)
        );
        assert_eq!(a.latency_quantile(0.5), b.latency_quantile(0.5));
        assert!(back.tracks("app.score"));
    }
}
