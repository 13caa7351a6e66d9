//! The JUnit XML report (through `quick-junit`), so CI dashboards show regressions as failed
//! tests. Names are stable: one suite `promptgate.<prompt>.<metric>` per metric with one test
//! case per dataset case (a regression is a failure, an errored candidate call an error), and a
//! suite `promptgate.<prompt>.gate` whose one case is the decision itself.

use quick_junit::{NonSuccessKind, Property, TestCase, TestCaseStatus, TestSuite};

use super::{Report, Sink, verdict_word};
use crate::gate::Verdict;

pub struct Junit;

impl Sink for Junit {
    fn name(&self) -> &'static str {
        "junit"
    }
    fn file_name(&self) -> &'static str {
        "junit.xml"
    }
    fn render(&self, r: &Report) -> String {
        let mut report = quick_junit::Report::new("promptgate");
        let d = &r.decision;

        let mut gate = TestSuite::new(format!("promptgate.{}.gate", r.prompt));
        gate.add_property(Property::new("candidate", r.candidate.version_id.as_str()));
        gate.add_property(Property::new("baseline", r.baseline.version_id.as_str()));
        gate.add_property(Property::new("candidate_run", r.candidate.run_id.as_str()));
        gate.add_property(Property::new("baseline_run", r.baseline.run_id.as_str()));
        let status = match d.verdict {
            Verdict::Pass => TestCaseStatus::success(),
            Verdict::Fail | Verdict::Inconclusive => {
                let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
                s.set_type(verdict_word(d.verdict));
                s.set_message(d.reasons.join("; "));
                s
            }
            Verdict::Invalid => {
                let mut s = TestCaseStatus::non_success(NonSuccessKind::Error);
                s.set_type("INVALID");
                s.set_message(d.reasons.join("; "));
                s
            }
        };
        let mut case = TestCase::new("decision", status);
        case.set_classname(format!("{}.gate", r.prompt));
        gate.add_test_case(case);
        report.add_test_suite(gate);

        let metrics: Vec<&String> = {
            let mut m: Vec<&String> = r
                .cases
                .iter()
                .flat_map(|c| c.candidate.metrics.keys())
                .collect();
            m.sort();
            m.dedup();
            m
        };
        for metric in metrics {
            let mut suite = TestSuite::new(format!("promptgate.{}.{metric}", r.prompt));
            for c in r
                .cases
                .iter()
                .filter(|c| c.candidate.metrics.contains_key(metric))
            {
                let (b, v) = (c.baseline.metrics[metric], c.candidate.metrics[metric]);
                let status = if let Some(e) = &c.candidate.error {
                    let mut s = TestCaseStatus::non_success(NonSuccessKind::Error);
                    s.set_type("errored call");
                    s.set_message(e.as_str());
                    s
                } else if v < b {
                    let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
                    s.set_type("regression");
                    s.set_message(format!(
                        "`{metric}` {:.2} on the baseline, {:.2} on the candidate",
                        b, v
                    ));
                    let why: Vec<String> = c
                        .candidate
                        .failed_checks
                        .iter()
                        .map(|f| format!("{}: {}", f.check, f.reason))
                        .collect();
                    s.set_description(format!(
                        "baseline output:\n{}\n\ncandidate output:\n{}\n\nfailed checks:\n{}",
                        c.baseline.output,
                        c.candidate.output,
                        why.join("\n")
                    ));
                    s
                } else {
                    TestCaseStatus::success()
                };
                let mut case = TestCase::new(c.id.as_str(), status);
                case.set_classname(format!("{}.{metric}", r.prompt));
                suite.add_test_case(case);
            }
            report.add_test_suite(suite);
        }
        report
            .to_string()
            .unwrap_or_else(|e| format!("<!-- could not write the JUnit report: {e} -->\n"))
    }
}
