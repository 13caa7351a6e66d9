//! Reports: one [`Report`] object — the decision, both sides and every paired case — and
//! independent sinks that render it (terminal, Markdown, JSON, JUnit, HTML). Adding a format
//! is one new file with one [`Sink`].

mod html;
mod junit;
mod markdown;
mod terminal;

use serde::Serialize;

use crate::dataset::DatasetInfo;
use crate::error::{Error, Result};
use crate::gate::{Decision, Verdict};

/// The version of the JSON report's schema (`docs/report.schema.json`). Bumped on any change
/// that is not a pure addition.
pub const REPORT_VERSION: u32 = 1;

/// A check that failed on an output, as reports show it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FailedCheck {
    pub check: String,
    pub reason: String,
}

/// One side of one case, as reports show it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SideCase {
    /// Per-metric value: the share of samples that passed, errored samples fail-closed.
    pub metrics: crate::names::ByName<f64>,
    /// The first sample's output (cut at [`OUTPUT_CHARS`] characters), or empty.
    pub output: String,
    /// The first error, when a sample errored.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Checks that failed on the first scored sample.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub failed_checks: Vec<FailedCheck>,
    pub latency_ms: f64,
    pub cost_usd: f64,
}

/// One paired case.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CaseRow {
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    pub baseline: SideCase,
    pub candidate: SideCase,
    /// Metrics on which the baseline did better than the candidate on this case.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub regressed: Vec<String>,
    /// Metrics on which the candidate did better.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub improved: Vec<String>,
}

/// Outputs longer than this are cut in reports.
pub const OUTPUT_CHARS: usize = 2000;

/// A pairwise judge's tally over a comparison.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PairwiseSummary {
    pub check: String,
    pub judge: String,
    pub compared: usize,
    pub candidate_wins: usize,
    pub baseline_wins: usize,
    pub ties: usize,
    /// Pairs where the two orders disagreed (the judge preferred a position, not an answer).
    pub position_disagreements: usize,
    pub errored: usize,
}

/// One side of the comparison.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Side {
    /// What the user named (`support_agent@production`, or a run id).
    pub reference: String,
    pub version_id: String,
    pub version_hash: String,
    /// The labels pointing at this version when the report was made.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<String>,
    pub run_id: String,
    pub provider: String,
    pub model: String,
    pub calls: usize,
    pub errors: usize,
    pub cached: usize,
    pub cost_usd: f64,
}

/// What was compared and how it came out.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub report_version: u32,
    /// `gate` (candidate vs baseline) or `compare` (a fresh run vs a stored one).
    pub kind: String,
    pub prompt: String,
    pub generated_at: String,
    pub promptgate_version: String,
    pub baseline: Side,
    pub candidate: Side,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub suite: Option<String>,
    pub suite_digest: String,
    pub datasets: Vec<DatasetInfo>,
    pub decision: Decision,
    /// Cases in only one of the two runs, left out of the comparison.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unpaired: Vec<String>,
    /// How a sequential gate (`gate.sequential`) went.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sequential: Option<Sequential>,
    /// The pairwise judges' tallies (wins, ties, position disagreements).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub pairwise: Vec<PairwiseSummary>,
    pub cases: Vec<CaseRow>,
}

/// A sequential gate's looks and what stopping saved.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Sequential {
    pub looks_planned: usize,
    /// The look that decided (1-based).
    pub stopped_at_look: usize,
    pub cases_used: usize,
    pub cases_total: usize,
    /// Calls not made because the decision was clear early (both sides).
    pub calls_saved: usize,
    pub interim_alpha: f64,
    /// One-sided α of each metric at the look that decided.
    pub alpha_at_stop: f64,
}

impl Report {
    /// Cases where the baseline did better than the candidate on some metric, worst first
    /// (gated metrics first, then the size of the drop).
    pub fn regressions(&self) -> Vec<&CaseRow> {
        let gated: Vec<&str> = self
            .decision
            .metrics
            .iter()
            .map(|m| m.name.as_str())
            .collect();
        let drop = |c: &CaseRow| -> (usize, f64) {
            let on_gated = c
                .regressed
                .iter()
                .filter(|m| gated.contains(&m.as_str()))
                .count();
            let size: f64 = c
                .regressed
                .iter()
                .map(|m| c.baseline.metrics[m] - c.candidate.metrics[m])
                .sum();
            (on_gated, size)
        };
        let mut r: Vec<&CaseRow> = self
            .cases
            .iter()
            .filter(|c| !c.regressed.is_empty())
            .collect();
        r.sort_by(|a, b| {
            let (ga, sa) = drop(a);
            let (gb, sb) = drop(b);
            gb.cmp(&ga).then(sb.total_cmp(&sa)).then(a.id.cmp(&b.id))
        });
        r
    }

    /// Cases where the candidate did better on some metric.
    pub fn improvements(&self) -> usize {
        self.cases.iter().filter(|c| !c.improved.is_empty()).count()
    }

    /// The JSON report as written to disk (its SHA-256 is the report digest).
    pub fn to_json(&self) -> String {
        let mut out = Vec::new();
        // Writing to memory cannot fail, and the report serializes (a test holds it).
        let _ = self.write_json(&mut out);
        String::from_utf8(out).unwrap_or_default()
    }

    /// [`Report::to_json`], written piece by piece: a report over 100,000 cases is 44 MB of
    /// text, and a file or stdout need not hold it whole.
    pub fn write_json(&self, w: &mut dyn std::io::Write) -> std::io::Result<()> {
        serde_json::to_writer_pretty(&mut *w, self).map_err(std::io::Error::other)?;
        w.write_all(b"\n")
    }
}

/// A report format.
pub trait Sink: Sync {
    /// The name `--report` takes.
    fn name(&self) -> &'static str;
    /// The file it is written to under `--out`.
    fn file_name(&self) -> &'static str;
    fn render(&self, report: &Report) -> String;
}

struct Json;

impl Sink for Json {
    fn name(&self) -> &'static str {
        "json"
    }
    fn file_name(&self) -> &'static str {
        "report.json"
    }
    fn render(&self, report: &Report) -> String {
        report.to_json()
    }
}

/// Every format, in the order `--report` lists them.
pub fn sinks() -> [&'static dyn Sink; 5] {
    [
        &terminal::Terminal,
        &markdown::Markdown,
        &Json,
        &junit::Junit,
        &html::Html,
    ]
}

/// Parse `--report md,json,junit,html` (aliases: `markdown`, `xml`, `text`).
pub fn parse_formats(spec: &str) -> Result<Vec<&'static dyn Sink>> {
    let mut out: Vec<&'static dyn Sink> = Vec::new();
    for raw in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let name = match raw {
            "markdown" => "md",
            "xml" => "junit",
            "text" | "txt" => "terminal",
            other => other,
        };
        let Some(s) = sinks().into_iter().find(|s| s.name() == name) else {
            let names = sinks().map(|s| s.name());
            let hint = match crate::error::did_you_mean(raw, names) {
                Some(m) => format!("did you mean `{m}`? formats: {}", names.join(", ")),
                None => format!("formats: {}", names.join(", ")),
            };
            return Err(Error::usage(format!("unknown report format `{raw}`")).with_hint(hint));
        };
        if !out.iter().any(|o| o.name() == s.name()) {
            out.push(s);
        }
    }
    Ok(out)
}

/// The terminal rendering (what `gate` prints).
pub fn terminal(report: &Report) -> String {
    terminal::Terminal.render(report)
}

/// Write the chosen formats into `dir`; returns the files written.
pub fn write(
    report: &Report,
    formats: &[&dyn Sink],
    dir: &std::path::Path,
) -> Result<Vec<std::path::PathBuf>> {
    crate::fsutil::create_dir_all(dir)?;
    let mut written = Vec::new();
    for f in formats {
        let path = dir.join(f.file_name());
        crate::fsutil::write_atomic(&path, f.render(report).as_bytes())?;
        written.push(path);
    }
    Ok(written)
}

/// The word for a verdict.
pub fn verdict_word(v: Verdict) -> &'static str {
    match v {
        Verdict::Pass => "PASS",
        Verdict::Fail => "FAIL",
        Verdict::Inconclusive => "INCONCLUSIVE",
        Verdict::Invalid => "INVALID",
    }
}

/// A value in [0, 1] as a percentage with one decimal.
pub(crate) fn pct(x: f64) -> String {
    if x.is_finite() {
        format!("{:.1} %", x * 100.0)
    } else {
        "–".into()
    }
}

/// A difference in [−1, 1] as signed points with one decimal.
pub(crate) fn pts(x: f64) -> String {
    if x.is_finite() {
        format!("{:+.1}", x * 100.0)
    } else {
        "–".into()
    }
}

/// A p-value, compactly.
pub(crate) fn pval(p: f64) -> String {
    if !p.is_finite() {
        "–".into()
    } else if p < 0.001 {
        "<0.001".into()
    } else {
        format!("{p:.3}")
    }
}

/// "v3-1a2b3c4 (production)".
pub(crate) fn side_name(s: &Side) -> String {
    if s.labels.is_empty() {
        s.version_id.clone()
    } else {
        format!("{} ({})", s.version_id, s.labels.join(", "))
    }
}

/// A one-line headline.
pub(crate) fn headline(r: &Report) -> String {
    format!(
        "{}  {}: {} vs {}",
        verdict_word(r.decision.verdict),
        r.prompt,
        side_name(&r.candidate),
        side_name(&r.baseline)
    )
}

/// Whether a metric failed: its power note is beside the point then (the observed
/// differences are the regression, not noise), so the terminal and Markdown leave it out.
pub(crate) fn failed(r: &Report, metric: &str) -> bool {
    r.decision
        .metrics
        .iter()
        .any(|m| m.name == metric && m.verdict == Verdict::Fail)
}

/// "decided at look 1 of 3 (34 of 100 cases): 132 calls saved".
pub(crate) fn sequential_note(r: &Report) -> Option<String> {
    let s = r.sequential.as_ref()?;
    let early = s.stopped_at_look < s.looks_planned;
    Some(format!(
        "sequential: decided at look {} of {} ({} of {} cases, one-sided α {}): {} calls saved{}",
        s.stopped_at_look,
        s.looks_planned,
        s.cases_used,
        s.cases_total,
        s.alpha_at_stop,
        s.calls_saved,
        if early {
            "; Δ and its interval are not adjusted for stopping early (a gate that stops early tends to overstate the difference)"
        } else {
            ""
        }
    ))
}

/// What `p(NI)` means, for every table that shows it: it is a p-value, not a probability that
/// the candidate is fine.
pub const P_NI_MEANING: &str = "p(NI) is the p-value of \"the candidate is worse by the margin or more\": below α it rejects that (non-inferior); it is not the probability that the candidate is non-inferior";

/// Per-metric notes on how an interval was made (clustering not applied, a zero spread).
pub(crate) fn metric_notes(r: &Report) -> Vec<String> {
    r.decision
        .metrics
        .iter()
        .flat_map(|m| m.notes.iter().map(move |n| format!("`{}`: {n}", m.name)))
        .collect()
}

/// One line per pairwise judge: "judge `pref` (judges/pref@v1-…): candidate 12 wins, baseline
/// 3, 25 ties; 4 position disagreements".
pub(crate) fn pairwise_notes(r: &Report) -> Vec<String> {
    r.pairwise
        .iter()
        .map(|p| {
            format!(
                "pairwise judge `{}` ({}): candidate {} wins, baseline {}, {} ties over {} pairs; {} position disagreements{}",
                p.check,
                p.judge,
                p.candidate_wins,
                p.baseline_wins,
                p.ties,
                p.compared,
                p.position_disagreements,
                if p.errored > 0 {
                    format!(", {} errored", p.errored)
                } else {
                    String::new()
                }
            )
        })
        .collect()
}
