//! The terminal report: the decision first, then the per-metric table, budgets, the power note
//! and the worst regressions with both outputs side by side.

use std::fmt::Write as _;

use super::{Report, Sink, failed, headline, pct, pts, pval, verdict_word};
use crate::gate::Verdict;

pub struct Terminal;

/// How many regressions the terminal shows.
const SHOWN: usize = 5;
/// Width of each side of the side-by-side outputs.
const COLUMN: usize = 46;

impl Sink for Terminal {
    fn name(&self) -> &'static str {
        "terminal"
    }
    fn file_name(&self) -> &'static str {
        "report.txt"
    }
    fn render(&self, r: &Report) -> String {
        let d = &r.decision;
        let mut out = String::new();
        let _ = writeln!(out, "{}", headline(r));
        for reason in &d.reasons {
            let _ = writeln!(out, "  - {reason}");
        }
        if d.verdict == Verdict::Invalid {
            return crate::safe::text(&out).into_owned();
        }
        if !d.metrics.is_empty() {
            let conf = d.metrics[0].confidence;
            let interval_head = format!("{:.0} % interval", conf * 100.0);
            let _ = writeln!(
                out,
                "\n  {:<14} {:>9} {:>9} {:>7}  {:<17} {:>7} {:>6}  verdict",
                "metric", "baseline", "candidate", "Δ", interval_head, "p(NI)", "margin"
            );
            for m in &d.metrics {
                let interval = format!("[{}, {}]", pts(m.interval.lower), pts(m.interval.upper));
                let _ = writeln!(
                    out,
                    "  {:<14} {:>9} {:>9} {:>7}  {:<17} {:>7} {:>6}  {}{}",
                    m.name,
                    pct(m.baseline_mean),
                    pct(m.candidate_mean),
                    pts(m.delta),
                    interval,
                    pval(m.p_noninferiority),
                    format!("{:.1}", m.margin * 100.0),
                    verdict_word(m.verdict),
                    if m.superior { " (better)" } else { "" }
                );
            }
            let _ = writeln!(
                out,
                "  Δ and intervals in points; method: {}",
                d.metrics
                    .iter()
                    .map(|m| format!("{} {}", m.name, m.method))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            for n in super::metric_notes(r) {
                let _ = writeln!(out, "  note     {n}");
            }
            let _ = writeln!(out, "  {}", super::P_NI_MEANING);
        }
        for f in &d.floors {
            let _ = writeln!(out, "  {} — {}", verdict_word(f.verdict), f.reason);
        }
        if let (Some(c), Some(v)) = (&d.cost, d.cost_verdict) {
            let _ = writeln!(
                out,
                "  cost     {} — mean ${:.6} → ${:.6} per case ({:+.1} %)",
                verdict_word(v),
                c.mean_baseline,
                c.mean_candidate,
                (c.ratio_of_means - 1.0) * 100.0
            );
        }
        if let Some(l) = &d.latency {
            let _ = writeln!(
                out,
                "  latency  {} — p95 {:.0} ms → {:.0} ms ({:.2}×)",
                d.latency_verdict
                    .map(verdict_word)
                    .unwrap_or("not statistically supported"),
                l.p95_baseline,
                l.p95_candidate,
                l.ratio
            );
        }
        for p in d.power.iter().filter(|p| !failed(r, &p.metric)) {
            let _ = writeln!(out, "  power    `{}`: {}", p.metric, p.text);
        }
        let regressions = r.regressions();
        if regressions.is_empty() {
            let _ = writeln!(
                out,
                "\n  no regressions: no case did worse on the candidate ({} improved)",
                r.improvements()
            );
        } else {
            let _ = writeln!(
                out,
                "\n  regressions: {} of {} cases did worse on the candidate ({} improved){}",
                regressions.len(),
                r.cases.len(),
                r.improvements(),
                if regressions.len() > SHOWN {
                    format!("; the worst {SHOWN}")
                } else {
                    String::new()
                }
            );
            for c in regressions.iter().take(SHOWN) {
                let _ = writeln!(
                    out,
                    "\n  case `{}` — worse on {}",
                    c.id,
                    c.regressed.join(", ")
                );
                let left = c
                    .baseline
                    .error
                    .clone()
                    .map(|e| format!("(error) {e}"))
                    .unwrap_or_else(|| c.baseline.output.clone());
                let right = c
                    .candidate
                    .error
                    .clone()
                    .map(|e| format!("(error) {e}"))
                    .unwrap_or_else(|| c.candidate.output.clone());
                side_by_side(&mut out, "baseline", &left, "candidate", &right);
                for f in &c.candidate.failed_checks {
                    let _ = writeln!(out, "    ✗ {}: {}", f.check, f.reason);
                }
            }
        }
        if let Some(n) = super::sequential_note(r) {
            let _ = writeln!(out, "\n  {n}");
        }
        for n in super::pairwise_notes(r) {
            let _ = writeln!(out, "  {n}");
        }
        let _ = writeln!(
            out,
            "\n  runs     baseline {}, candidate {}",
            r.baseline.run_id, r.candidate.run_id
        );
        let _ = writeln!(
            out,
            "  calls    {} ({} errored, {} from cache)",
            d.calls,
            d.errored_calls,
            r.baseline.cached + r.candidate.cached
        );
        // Outputs, case ids and reasons are untrusted: no control character reaches the reader.
        crate::safe::text(&out).into_owned()
    }
}

/// Break text into lines of at most `width` characters, at spaces where possible.
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    for para in text.lines() {
        let mut line = String::new();
        for word in para.split(' ') {
            let mut word = word.to_string();
            while word.chars().count() > width {
                if !line.is_empty() {
                    lines.push(std::mem::take(&mut line));
                }
                let head: String = word.chars().take(width).collect();
                word = word.chars().skip(width).collect();
                lines.push(head);
            }
            let len = line.chars().count();
            if len > 0 && len + 1 + word.chars().count() > width {
                lines.push(std::mem::take(&mut line));
            }
            if !line.is_empty() {
                line.push(' ');
            }
            line.push_str(&word);
        }
        lines.push(line);
    }
    if lines.is_empty() {
        lines.push(String::new());
    }
    if lines.len() > 12 {
        lines.truncate(12);
        lines.push("…".into());
    }
    lines
}

fn side_by_side(out: &mut String, lh: &str, left: &str, rh: &str, right: &str) {
    let l = wrap(left, COLUMN);
    let r = wrap(right, COLUMN);
    let _ = writeln!(out, "    {:<COLUMN$} │ {}", lh, rh);
    for i in 0..l.len().max(r.len()) {
        let a = l.get(i).map(String::as_str).unwrap_or("");
        let b = r.get(i).map(String::as_str).unwrap_or("");
        let pad = COLUMN.saturating_sub(a.chars().count());
        let _ = writeln!(out, "    {a}{} │ {b}", " ".repeat(pad));
    }
}

#[cfg(test)]
mod tests {
    use super::wrap;

    #[test]
    fn wrap_breaks_at_spaces_and_cuts_long_words() {
        assert_eq!(wrap("aa bb cc", 5), vec!["aa bb", "cc"]);
        assert_eq!(wrap("abcdefgh", 3), vec!["abc", "def", "gh"]);
        assert_eq!(wrap("", 3), vec![""]);
    }
}
