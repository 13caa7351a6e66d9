//! The Markdown report, for a pull-request comment: compact, the same per-metric table as the
//! terminal, and the regressions folded away in `<details>`.

use std::fmt::Write as _;

use super::{Report, Sink, pct, pts, pval, side_name, verdict_word};
use crate::gate::Verdict;

pub struct Markdown;

/// Regressions listed in the comment (the JSON and HTML reports have them all).
const SHOWN: usize = 20;

/// Escape what would break a table cell or start markup.
fn cell(s: &str) -> String {
    let one_line: String = s.split_whitespace().collect::<Vec<_>>().join(" ");
    let cut: String = if one_line.chars().count() > 160 {
        one_line.chars().take(160).collect::<String>() + "…"
    } else {
        one_line
    };
    cut.replace('\\', "\\\\")
        .replace('|', "\\|")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('`', "'")
}

impl Sink for Markdown {
    fn name(&self) -> &'static str {
        "md"
    }
    fn file_name(&self) -> &'static str {
        "report.md"
    }
    fn render(&self, r: &Report) -> String {
        let d = &r.decision;
        let icon = match d.verdict {
            Verdict::Pass => "✅",
            Verdict::Fail => "❌",
            Verdict::Inconclusive => "⚠️",
            Verdict::Invalid => "⛔",
        };
        let mut out = String::new();
        let _ = writeln!(
            out,
            "### {icon} promptgate {}: `{}` {} vs {}\n",
            verdict_word(d.verdict),
            r.prompt,
            side_name(&r.candidate),
            side_name(&r.baseline)
        );
        for reason in &d.reasons {
            let _ = writeln!(out, "- {}", reason.replace('|', "\\|"));
        }
        if !d.metrics.is_empty() {
            let conf = d.metrics[0].confidence;
            let _ = writeln!(
                out,
                "\n| metric | baseline | candidate | Δ (points) | {:.0} % interval | p (non-inferiority) | margin | verdict |",
                conf * 100.0
            );
            let _ = writeln!(out, "|---|---:|---:|---:|---|---:|---:|---|");
            for m in &d.metrics {
                let _ = writeln!(
                    out,
                    "| `{}` | {} | {} | {} | [{}, {}] | {} | {:.1} | **{}**{} |",
                    m.name,
                    pct(m.baseline_mean),
                    pct(m.candidate_mean),
                    pts(m.delta),
                    pts(m.interval.lower),
                    pts(m.interval.upper),
                    pval(m.p_noninferiority),
                    m.margin * 100.0,
                    verdict_word(m.verdict),
                    if m.superior { " (better)" } else { "" }
                );
            }
        }
        let mut extra = super::metric_notes(r);
        if !d.metrics.is_empty() {
            extra.push(super::P_NI_MEANING.to_string());
        }
        for f in &d.floors {
            extra.push(format!("{}: {}", verdict_word(f.verdict), f.reason));
        }
        if let (Some(c), Some(v)) = (&d.cost, d.cost_verdict) {
            extra.push(format!(
                "cost {}: {:+.1} % per case",
                verdict_word(v),
                (c.ratio_of_means - 1.0) * 100.0
            ));
        }
        if let Some(l) = &d.latency {
            extra.push(format!(
                "p95 latency {}: {:.0} ms → {:.0} ms",
                d.latency_verdict
                    .map(verdict_word)
                    .unwrap_or("not statistically supported"),
                l.p95_baseline,
                l.p95_candidate
            ));
        }
        for p in d.power.iter().filter(|p| !super::failed(r, &p.metric)) {
            extra.push(format!("power (`{}`): {}", p.metric, p.text));
        }
        extra.extend(super::sequential_note(r));
        extra.extend(super::pairwise_notes(r));
        if !extra.is_empty() {
            out.push('\n');
            for e in extra {
                let _ = writeln!(out, "- {e}");
            }
        }
        let regressions = r.regressions();
        if !regressions.is_empty() {
            let _ = writeln!(
                out,
                "\n<details><summary>{} of {} cases did worse on the candidate</summary>\n",
                regressions.len(),
                r.cases.len()
            );
            let _ = writeln!(
                out,
                "| case | worse on | baseline output | candidate output | failed checks |"
            );
            let _ = writeln!(out, "|---|---|---|---|---|");
            for c in regressions.iter().take(SHOWN) {
                let why: Vec<String> = c
                    .candidate
                    .failed_checks
                    .iter()
                    .map(|f| format!("{}: {}", f.check, f.reason))
                    .collect();
                let _ = writeln!(
                    out,
                    "| `{}` | {} | {} | {} | {} |",
                    c.id,
                    c.regressed.join(", "),
                    cell(c.baseline.error.as_deref().unwrap_or(&c.baseline.output)),
                    cell(c.candidate.error.as_deref().unwrap_or(&c.candidate.output)),
                    cell(&why.join("; "))
                );
            }
            if regressions.len() > SHOWN {
                let _ = writeln!(
                    out,
                    "\n…and {} more in the JSON and HTML reports.",
                    regressions.len() - SHOWN
                );
            }
            let _ = writeln!(out, "\n</details>");
        }
        let _ = writeln!(
            out,
            "\n<sub>{} paired cases · {} calls, {} errored · runs `{}` (baseline), `{}` (candidate) · promptgate {}</sub>",
            d.n,
            d.calls,
            d.errored_calls,
            r.baseline.run_id,
            r.candidate.run_id,
            r.promptgate_version
        );
        // Outputs, case ids and reasons are untrusted: no control character reaches the reader.
        crate::safe::text(&out).into_owned()
    }
}
