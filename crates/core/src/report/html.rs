//! The HTML report: one self-contained page (inline CSS, inline SVG, a few lines of inline
//! script, no network fetches) with each metric's interval drawn against its margin and a
//! browsable, filterable table of every case with both outputs.

use std::fmt::Write as _;

use super::{Report, Sink, pct, pts, pval, side_name, verdict_word};
use crate::gate::{MetricResult, Verdict};

pub struct Html;

/// Escape text for HTML element content and attribute values.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn class_of(v: Verdict) -> &'static str {
    match v {
        Verdict::Pass => "pass",
        Verdict::Fail => "fail",
        Verdict::Inconclusive => "inconclusive",
        Verdict::Invalid => "invalid",
    }
}

const STYLE: &str = r#"
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:2rem auto;max-width:1100px;padding:0 1rem;color:#1d1d1f}
h1{font-size:1.4rem;margin:.2rem 0}h2{font-size:1.1rem;margin-top:2rem}
.badge{display:inline-block;padding:.15rem .6rem;border-radius:.3rem;color:#fff;font-weight:700}
.pass{background:#1a7f37}.fail{background:#cf222e}.inconclusive{background:#bf8700}.invalid{background:#6e7781}
table{border-collapse:collapse;width:100%}th,td{border-bottom:1px solid #d0d7de;padding:.3rem .5rem;text-align:left;vertical-align:top}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
tr.regressed td:first-child{border-left:3px solid #cf222e}tr.improved td:first-child{border-left:3px solid #1a7f37}
pre{white-space:pre-wrap;word-break:break-word;background:#f6f8fa;padding:.5rem;margin:.2rem 0;max-height:20rem;overflow:auto}
.pair{display:grid;grid-template-columns:1fr 1fr;gap:.6rem}.muted{color:#57606a}
svg text{font:12px system-ui,sans-serif}
"#;

const SCRIPT: &str = r#"
const q=document.getElementById('q'),only=document.getElementById('only');
function apply(){const t=q.value.toLowerCase();for(const r of document.querySelectorAll('#cases tbody tr.case')){
const hit=r.dataset.search.includes(t)&&(!only.checked||r.classList.contains('regressed'));r.style.display=hit?'':'none';
const d=r.nextElementSibling;if(d&&d.classList.contains('detail')&&!hit)d.style.display='none';}}
q.addEventListener('input',apply);only.addEventListener('change',apply);
for(const r of document.querySelectorAll('#cases tbody tr.case')){r.addEventListener('click',()=>{const d=r.nextElementSibling;d.style.display=d.style.display==='none'?'':'none';});}
"#;

/// The interval chart: one row per metric, Δ in points on a shared axis, with 0 and −δ marked.
fn chart(metrics: &[MetricResult]) -> String {
    if metrics.is_empty() {
        return String::new();
    }
    let finite = |x: f64| if x.is_finite() { x } else { 0.0 };
    let lo = metrics
        .iter()
        .map(|m| finite(m.interval.lower).min(-m.margin))
        .fold(0.0_f64, f64::min);
    let hi = metrics
        .iter()
        .map(|m| finite(m.interval.upper))
        .fold(0.0_f64, f64::max);
    let span = (hi - lo).max(0.02);
    let (lo, hi) = (lo - span * 0.08, hi + span * 0.08);
    let (left, width, row) = (140.0, 520.0, 34.0);
    let x = |v: f64| left + (finite(v) - lo) / (hi - lo) * width;
    let height = row * metrics.len() as f64 + 40.0;
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg role="img" aria-label="Confidence intervals of the differences" width="{}" height="{height}" viewBox="0 0 {} {height}">"#,
        left + width + 20.0,
        left + width + 20.0
    );
    let _ = write!(
        s,
        "<line x1=\"{0}\" x2=\"{0}\" y1=\"10\" y2=\"{1}\" stroke=\"#57606a\"/><text x=\"{0}\" y=\"{2}\" text-anchor=\"middle\">0</text>",
        x(0.0),
        height - 22.0,
        height - 6.0
    );
    for (i, m) in metrics.iter().enumerate() {
        let y = 24.0 + row * i as f64;
        let color = match m.verdict {
            Verdict::Pass => "#1a7f37",
            Verdict::Fail => "#cf222e",
            _ => "#bf8700",
        };
        let _ = write!(
            s,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>",
            left - 10.0,
            y + 4.0,
            esc(&m.name)
        );
        let _ = write!(
            s,
            "<line x1=\"{0}\" x2=\"{0}\" y1=\"{1}\" y2=\"{2}\" stroke=\"#cf222e\" stroke-dasharray=\"4 3\"><title>−δ = {3} points</title></line>",
            x(-m.margin),
            y - 12.0,
            y + 12.0,
            pts(-m.margin)
        );
        let _ = write!(
            s,
            "<line x1=\"{}\" x2=\"{}\" y1=\"{y}\" y2=\"{y}\" stroke=\"{color}\" stroke-width=\"5\" stroke-linecap=\"round\"><title>{} interval [{}, {}] points</title></line>",
            x(m.interval.lower),
            x(m.interval.upper),
            esc(&m.name),
            pts(m.interval.lower),
            pts(m.interval.upper)
        );
        let _ = write!(
            s,
            "<circle cx=\"{}\" cy=\"{y}\" r=\"5\" fill=\"#fff\" stroke=\"{color}\" stroke-width=\"2\"><title>Δ = {} points</title></circle>",
            x(m.delta),
            pts(m.delta)
        );
    }
    let _ = write!(
        s,
        "<text x=\"{}\" y=\"{}\" text-anchor=\"start\" class=\"muted\">Δ = candidate − baseline (points); dashed: −margin</text></svg>",
        left,
        height - 6.0
    );
    s
}

impl Sink for Html {
    fn name(&self) -> &'static str {
        "html"
    }
    fn file_name(&self) -> &'static str {
        "report.html"
    }
    fn render(&self, r: &Report) -> String {
        let d = &r.decision;
        let mut h = String::new();
        let _ = write!(
            h,
            "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
             <title>promptgate {} — {}</title><style>{STYLE}</style></head><body>\n",
            verdict_word(d.verdict),
            esc(&r.prompt)
        );
        let _ = write!(
            h,
            "<p><span class=\"badge {}\">{}</span></p><h1>{}: {} vs {}</h1>\n<p class=\"muted\">candidate run <code>{}</code> · baseline run <code>{}</code> · {} paired cases · {} calls, {} errored · {} · promptgate {}</p>\n<ul>",
            class_of(d.verdict),
            verdict_word(d.verdict),
            esc(&r.prompt),
            esc(&side_name(&r.candidate)),
            esc(&side_name(&r.baseline)),
            esc(&r.candidate.run_id),
            esc(&r.baseline.run_id),
            d.n,
            d.calls,
            d.errored_calls,
            esc(&r.generated_at),
            esc(&r.promptgate_version)
        );
        for reason in &d.reasons {
            let _ = write!(h, "<li>{}</li>", esc(reason));
        }
        h.push_str("</ul>\n");
        if !d.metrics.is_empty() {
            h.push_str("<h2>Metrics</h2>\n");
            h.push_str(&chart(&d.metrics));
            let _ = write!(
                h,
                "<table><thead><tr><th>metric</th><th class=\"num\">baseline</th><th class=\"num\">candidate</th><th class=\"num\">Δ</th><th>{:.0} % interval</th><th class=\"num\">p (non-inferiority)</th><th class=\"num\">p (difference)</th><th class=\"num\">margin</th><th>method</th><th>verdict</th></tr></thead><tbody>",
                d.metrics[0].confidence * 100.0
            );
            for m in &d.metrics {
                let _ = write!(
                    h,
                    "<tr><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td>[{}, {}]</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{:.1}</td><td>{}</td><td><span class=\"badge {}\">{}</span></td></tr>",
                    esc(&m.name),
                    pct(m.baseline_mean),
                    pct(m.candidate_mean),
                    pts(m.delta),
                    pts(m.interval.lower),
                    pts(m.interval.upper),
                    pval(m.p_noninferiority),
                    pval(m.p_difference),
                    m.margin * 100.0,
                    esc(&m.method),
                    class_of(m.verdict),
                    verdict_word(m.verdict)
                );
            }
            h.push_str("</tbody></table>\n");
        }
        let mut notes = super::metric_notes(r);
        if !d.metrics.is_empty() {
            notes.push(super::P_NI_MEANING.to_string());
        }
        for f in &d.floors {
            notes.push(format!("{}: {}", verdict_word(f.verdict), f.reason));
        }
        if let (Some(c), Some(v)) = (&d.cost, d.cost_verdict) {
            notes.push(format!(
                "cost {}: ${:.6} → ${:.6} per case ({:+.1} %)",
                verdict_word(v),
                c.mean_baseline,
                c.mean_candidate,
                (c.ratio_of_means - 1.0) * 100.0
            ));
        }
        if let Some(l) = &d.latency {
            notes.push(format!(
                "p95 latency {}: {:.0} ms → {:.0} ms ({:.2}×)",
                d.latency_verdict
                    .map(verdict_word)
                    .unwrap_or("not statistically supported"),
                l.p95_baseline,
                l.p95_candidate,
                l.ratio
            ));
        }
        for p in &d.power {
            notes.push(format!("power ({}): {}", p.metric, p.text));
        }
        notes.extend(super::sequential_note(r));
        notes.extend(super::pairwise_notes(r));
        if !notes.is_empty() {
            h.push_str("<h2>Budgets and power</h2><ul>");
            for n in notes {
                let _ = write!(h, "<li>{}</li>", esc(&n));
            }
            h.push_str("</ul>\n");
        }
        let metric_names: Vec<&String> = {
            let mut m: Vec<&String> = r
                .cases
                .iter()
                .flat_map(|c| c.candidate.metrics.keys())
                .collect();
            m.sort();
            m.dedup();
            m
        };
        let _ = write!(
            h,
            "<h2>Cases</h2><p><input id=\"q\" type=\"search\" placeholder=\"filter by id, output or reason\" size=\"40\"> <label><input id=\"only\" type=\"checkbox\"> only regressions ({})</label> <span class=\"muted\">click a row for both outputs</span></p>\n<table id=\"cases\"><thead><tr><th>case</th><th>group</th>",
            r.regressions().len()
        );
        for m in &metric_names {
            let _ = write!(
                h,
                "<th class=\"num\">{} (baseline → candidate)</th>",
                esc(m)
            );
        }
        h.push_str("</tr></thead><tbody>\n");
        for c in &r.cases {
            let class = if !c.regressed.is_empty() {
                "case regressed"
            } else if !c.improved.is_empty() {
                "case improved"
            } else {
                "case"
            };
            let search = format!(
                "{} {} {} {}",
                c.id,
                c.baseline.output,
                c.candidate.output,
                c.candidate
                    .failed_checks
                    .iter()
                    .map(|f| f.reason.as_str())
                    .collect::<Vec<_>>()
                    .join(" ")
            )
            .to_lowercase();
            let _ = write!(
                h,
                "<tr class=\"{class}\" data-search=\"{}\"><td><code>{}</code></td><td>{}</td>",
                esc(&search),
                esc(&c.id),
                esc(c.group.as_deref().unwrap_or(""))
            );
            for m in &metric_names {
                let v = |s: &crate::report::SideCase| {
                    s.metrics
                        .get(m)
                        .map(|x| format!("{x:.2}"))
                        .unwrap_or_else(|| "–".into())
                };
                let _ = write!(
                    h,
                    "<td class=\"num\">{} → {}</td>",
                    v(&c.baseline),
                    v(&c.candidate)
                );
            }
            h.push_str("</tr>\n");
            let side = |s: &crate::report::SideCase| {
                let mut t = String::new();
                match &s.error {
                    Some(e) => {
                        let _ = write!(t, "<pre>(error) {}</pre>", esc(e));
                    }
                    None => {
                        let _ = write!(t, "<pre>{}</pre>", esc(&s.output));
                    }
                }
                for f in &s.failed_checks {
                    let _ = write!(
                        t,
                        "<div>✗ <b>{}</b>: {}</div>",
                        esc(&f.check),
                        esc(&f.reason)
                    );
                }
                t
            };
            let _ = writeln!(
                h,
                "<tr class=\"detail\" style=\"display:none\"><td colspan=\"{}\"><div class=\"pair\"><div><b>baseline</b>{}</div><div><b>candidate</b>{}</div></div></td></tr>",
                2 + metric_names.len(),
                side(&c.baseline),
                side(&c.candidate)
            );
        }
        h.push_str("</tbody></table>\n");
        let _ = write!(h, "<script>{SCRIPT}</script>\n</body></html>\n");
        h
    }
}

#[cfg(test)]
mod tests {
    use super::esc;

    #[test]
    fn escapes_markup() {
        assert_eq!(
            esc("<script>\"a\" & 'b'</script>"),
            "&lt;script&gt;&quot;a&quot; &amp; &#39;b&#39;&lt;/script&gt;"
        );
    }
}
