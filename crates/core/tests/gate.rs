//! The gate's decision: scenarios, the policy language, and calibration by simulation.

use promptgate_core::gate::{self, Input, MetricData, Policy, Verdict};
use promptgate_core::stats::power;
use serde_json::json;

fn metric(name: &str, candidate: Vec<f64>, baseline: Vec<f64>) -> MetricData {
    MetricData {
        name: name.into(),
        candidate,
        baseline,
        groups: vec![],
    }
}

fn input(m: MetricData) -> Input {
    let calls = 2 * m.candidate.len();
    Input {
        metrics: vec![m],
        calls,
        ..Input::default()
    }
}

/// Paired binary outcomes with given counts (n11, n10, n01, n00).
fn table(n11: usize, n10: usize, n01: usize, n00: usize) -> (Vec<f64>, Vec<f64>) {
    let mut c = Vec::new();
    let mut b = Vec::new();
    for (k, (x, y)) in [
        (n11, (1.0, 1.0)),
        (n10, (1.0, 0.0)),
        (n01, (0.0, 1.0)),
        (n00, (0.0, 0.0)),
    ] {
        for _ in 0..k {
            c.push(x);
            b.push(y);
        }
    }
    (c, b)
}

#[test]
fn equal_on_many_cases_passes_worse_fails_few_is_inconclusive() {
    let policy = Policy::default();
    // 400 cases, identical outcomes: the interval is tight around 0.
    let (c, b) = table(320, 4, 4, 72);
    let d = gate::decide(&policy, &input(metric("pass", c, b)));
    assert_eq!(d.verdict, Verdict::Pass, "{:#?}", d.reasons);
    assert!(
        d.metrics[0].reason.contains("within the 5.0-point margin"),
        "{}",
        d.metrics[0].reason
    );
    assert_eq!(d.metrics[0].method, "Tango score interval");
    // Clearly worse: 30 regressions, 2 improvements on 200 cases.
    let (c, b) = table(140, 2, 30, 28);
    let d = gate::decide(&policy, &input(metric("pass", c, b)));
    assert_eq!(d.verdict, Verdict::Fail, "{:#?}", d.reasons);
    assert!(
        d.reasons[0].contains("beyond the 5.0-point margin"),
        "{:?}",
        d.reasons
    );
    // Too few cases: INCONCLUSIVE with the number needed.
    let (c, b) = table(15, 1, 1, 3);
    let d = gate::decide(&policy, &input(metric("pass", c, b)));
    assert_eq!(d.verdict, Verdict::Inconclusive);
    assert!(
        d.reasons
            .iter()
            .any(|r| r.contains("only 20 paired cases: at least 30")),
        "{:?}",
        d.reasons
    );
    assert!(
        d.power[0]
            .text
            .contains("cases are needed for a 5.0-point margin"),
        "{}",
        d.power[0].text
    );
}

#[test]
fn superiority_needs_the_interval_and_the_exact_test() {
    let (c, b) = table(200, 40, 5, 55);
    let d = gate::decide(&Policy::default(), &input(metric("pass", c, b)));
    assert_eq!(d.verdict, Verdict::Pass);
    assert!(d.metrics[0].superior);
    assert!(d.metrics[0].p_difference < 0.001);
    let (c, b) = table(300, 8, 4, 88);
    let d = gate::decide(&Policy::default(), &input(metric("pass", c, b)));
    assert!(
        !d.metrics[0].superior,
        "a small, non-significant gain is not superiority"
    );
}

#[test]
fn continuous_metrics_use_the_t_interval_and_clusters_widen_it() {
    let mut rng = fastrand::Rng::with_seed(3);
    let n = 120;
    let b: Vec<f64> = (0..n).map(|_| 0.6 + 0.3 * rng.f64()).collect();
    let c: Vec<f64> = b
        .iter()
        .map(|x| (x + 0.02 * (rng.f64() - 0.5)).clamp(0.0, 1.0))
        .collect();
    let m = metric("quality", c, b);
    let policy: Policy = Policy::from_value(
        Some(&json!({"metrics": {"quality": {"margin": 0.03}}})),
        "suite.yaml",
    )
    .unwrap();
    let plain = gate::decide(&policy, &input(m.clone()));
    assert_eq!(plain.metrics[0].method, "paired t interval");
    assert_eq!(plain.verdict, Verdict::Pass, "{:?}", plain.reasons);
    // Cases in 24 groups whose differences are correlated: a wider, clustered interval.
    let mut grouped = m.clone();
    for (i, c) in grouped.candidate.iter_mut().enumerate() {
        *c += if i % 24 < 12 { 0.01 } else { -0.01 };
    }
    grouped.groups = (0..n).map(|i| format!("g{}", i % 24)).collect();
    let mut ungrouped = grouped.clone();
    ungrouped.groups.clear();
    let clustered = gate::decide(&policy, &input(grouped.clone()));
    let independent = gate::decide(&policy, &input(ungrouped));
    let r = &clustered.metrics[0];
    assert!(
        r.method.contains("clustered SE (24 groups)"),
        "{}",
        r.method
    );
    let width = |i: &promptgate_core::stats::Interval| i.upper - i.lower;
    assert!(
        width(&r.interval) > width(&independent.metrics[0].interval),
        "clustering widens: {:?} vs {:?}",
        r.interval,
        independent.metrics[0].interval
    );
    // Six groups are too few to estimate how cases in a group move together: the case-level
    // interval, and the report says so.
    grouped.groups = (0..n).map(|i| format!("g{}", i % 6)).collect();
    let few = gate::decide(&policy, &input(grouped));
    assert_eq!(few.metrics[0].method, "paired t interval");
    assert!(
        few.metrics[0].notes[0].contains("clustering not applied: 6 groups"),
        "{:?}",
        few.metrics[0].notes
    );
}

#[test]
fn errors_over_budget_are_invalid_and_floors_and_budgets_gate() {
    let (c, b) = table(320, 4, 4, 72);
    let mut i = input(metric("pass", c.clone(), b.clone()));
    i.errored_calls = 50; // of 800
    let d = gate::decide(&Policy::default(), &i);
    assert_eq!(d.verdict, Verdict::Invalid);
    // Fail-closed scoring.
    assert_eq!(gate::fail_closed(None, Some(0.3)), (0.0, 0.3));
    assert_eq!(gate::fail_closed(Some(0.7), None), (0.7, 1.0));
    // A floor the candidate is clearly under fails.
    let policy =
        Policy::from_value(Some(&json!({"floors": {"pass": 0.95}})), "suite.yaml").unwrap();
    let d = gate::decide(&policy, &input(metric("pass", c.clone(), b.clone())));
    assert_eq!(d.verdict, Verdict::Fail);
    assert_eq!(d.floors[0].verdict, Verdict::Fail);
    // A cost budget: +50 % cost on a +10 % budget fails.
    let policy =
        Policy::from_value(Some(&json!({"cost": {"max_increase": 0.1}})), "suite.yaml").unwrap();
    let mut i = input(metric("pass", c.clone(), b.clone()));
    let base: Vec<f64> = (0..c.len())
        .map(|k| 0.001 + (k % 7) as f64 * 1e-4)
        .collect();
    i.cost = Some((base.iter().map(|x| x * 1.5).collect(), base.clone()));
    let d = gate::decide(&policy, &i);
    assert_eq!(d.cost_verdict, Some(Verdict::Fail));
    assert_eq!(d.verdict, Verdict::Fail);
    // A breaking schema change fails unless allowed.
    let mut i = input(metric("pass", c.clone(), b.clone()));
    i.breaking = vec!["output_schema: field `category` became required".into()];
    assert_eq!(gate::decide(&Policy::default(), &i).verdict, Verdict::Fail);
    let allow = Policy::from_value(Some(&json!({"allow_breaking": true})), "suite.yaml").unwrap();
    assert_eq!(gate::decide(&allow, &i).verdict, Verdict::Pass);
}

#[test]
fn the_policy_rejects_unknown_keys_and_bad_values() {
    let e = Policy::from_value(
        Some(&json!({"metrics": {"pass": {"margn": 0.1}}})),
        "prompts/p/suite.yaml",
    )
    .unwrap_err();
    let text = e.to_string();
    assert!(
        text.contains("gate.metrics.pass") && text.contains("margn"),
        "{text}"
    );
    assert!(text.contains("did you mean `margin`"), "{text}");
    assert!(Policy::from_value(Some(&json!({"min_case": 10})), "s").is_err());
    assert!(Policy::from_value(Some(&json!({"metrics": {"pass": {"alpha": 0.7}}})), "s").is_err());
    let p = Policy::from_value(None, "s").unwrap();
    assert_eq!(
        p.gated(),
        vec![("pass".to_string(), 0.05, 0.05, gate::Method::Auto)]
    );
    assert_eq!(p.min_cases(), 30);
}

/// Simulate one gate on `n` cases: each case has a latent pass probability; baseline and
/// candidate draw independently, the candidate `shift` lower.
fn simulate(rng: &mut fastrand::Rng, n: usize, shift: f64) -> Verdict {
    let mut c = Vec::with_capacity(n);
    let mut b = Vec::with_capacity(n);
    for _ in 0..n {
        let p = if rng.f64() < 0.7 { 0.95 } else { 0.55 };
        b.push(if rng.f64() < p { 1.0 } else { 0.0 });
        c.push(if rng.f64() < p - shift { 1.0 } else { 0.0 });
    }
    let policy = Policy {
        min_cases: Some(1),
        ..Policy::default()
    };
    gate::decide(&policy, &input(metric("pass", c, b))).verdict
}

#[test]
fn calibration_false_pass_rate_is_at_most_alpha() {
    // Candidates exactly δ below the baseline: PASSed in at most α (+ Monte Carlo tolerance).
    let mut rng = fastrand::Rng::with_seed(2026);
    let gates = 2000;
    let passes = (0..gates)
        .filter(|_| simulate(&mut rng, 300, 0.05) == Verdict::Pass)
        .count();
    let rate = passes as f64 / gates as f64;
    let tol = 3.0 * (0.05f64 * 0.95 / gates as f64).sqrt();
    eprintln!("300 independent cases, exactly δ worse: false PASS rate {rate}");
    assert!(rate <= 0.05 + tol, "false PASS rate {rate} > α + {tol}");
}

#[test]
fn calibration_identical_candidates_pass_at_the_planned_power() {
    // Under the simulation's model two runs of one prompt differ on a case with probability
    // 2p(1 − p): E over the mix of easy (0.95) and hard (0.55) cases.
    let discordance: f64 = 2.0 * (0.7 * 0.95 * 0.05 + 0.3 * 0.55 * 0.45);
    // The n the gate plans, for the method it uses (Tango's test, computed exactly).
    let n = power::tango_cases_needed(discordance, 0.05, 0.05, 0.8, 1.0, None);
    let promised = power::tango_pass_probability(n, discordance, 0.05, 0.05, 1.0, None);
    assert!((0.8..0.83).contains(&promised), "n = {n}: {promised}");
    let mut rng = fastrand::Rng::with_seed(7);
    let gates = 2000;
    let passes = (0..gates)
        .filter(|_| simulate(&mut rng, n, 0.0) == Verdict::Pass)
        .count();
    let rate = passes as f64 / gates as f64;
    let tol = 3.0 * (0.8f64 * 0.2 / gates as f64).sqrt();
    eprintln!(
        "identical candidates at the planned n = {n}: pass rate {rate} (promised {promised})"
    );
    assert!(
        (rate - promised).abs() <= tol,
        "n = {n}: identical candidates passed {rate}, the power note promised {promised}"
    );
    // The decision's own note, on data like these, plans about the same n.
    let (c, b) = table(
        n - (discordance * n as f64) as usize,
        (discordance * n as f64 / 2.0) as usize,
        (discordance * n as f64 / 2.0) as usize,
        0,
    );
    let d = gate::decide(&Policy::default(), &input(metric("pass", c, b)));
    let planned = d.power[0].cases_needed as f64;
    assert!((planned / n as f64 - 1.0).abs() < 0.05, "{planned} vs {n}");
}

/// One gate over `groups` groups of `size` cases. Each case has a pass rate drawn from its
/// group (`stratum_spread` moves both versions alike); the candidate is worse by `shift` on
/// average, by `shift + e` in a group, e = ±`cluster_spread` at random: its regressions come
/// in groups.
fn simulate_grouped(
    rng: &mut fastrand::Rng,
    groups: usize,
    size: usize,
    shift: f64,
    stratum_spread: f64,
    cluster_spread: f64,
) -> Verdict {
    let (mut c, mut b, mut g) = (vec![], vec![], vec![]);
    for k in 0..groups {
        let base: f64 = 0.8 + stratum_spread * (rng.f64() - 0.5);
        let e = if rng.bool() {
            cluster_spread
        } else {
            -cluster_spread
        };
        for _ in 0..size {
            let p = base.clamp(0.05, 0.95);
            b.push(if rng.f64() < p { 1.0 } else { 0.0 });
            c.push(if rng.f64() < (p - shift - e).clamp(0.0, 1.0) {
                1.0
            } else {
                0.0
            });
            g.push(format!("g{k}"));
        }
    }
    let mut m = metric("pass", c, b);
    m.groups = g;
    let policy = Policy {
        min_cases: Some(1),
        ..Policy::default()
    };
    gate::decide(&policy, &input(m)).verdict
}

#[test]
fn calibration_with_groups_keeps_the_false_pass_rate_at_alpha() {
    let gates = 2000;
    let tol = 3.0 * (0.05f64 * 0.95 / gates as f64).sqrt();
    // Many groups whose regressions come together (a design effect well above 1).
    let mut rng = fastrand::Rng::with_seed(11);
    let passes = (0..gates)
        .filter(|_| simulate_grouped(&mut rng, 40, 20, 0.05, 0.2, 0.15) == Verdict::Pass)
        .count();
    let rate = passes as f64 / gates as f64;
    eprintln!("40 groups of 20, regressions in groups: false PASS rate {rate}");
    assert!(
        rate <= 0.05 + tol,
        "40 groups: false PASS rate {rate} > α + {tol}"
    );
    // Few groups (5 of 80): treated as independent cases. Valid when groups are strata —
    // they move both versions alike — which is what this simulates; the report says that
    // clustering was not applied.
    let mut rng = fastrand::Rng::with_seed(12);
    let passes = (0..gates)
        .filter(|_| simulate_grouped(&mut rng, 5, 80, 0.05, 0.4, 0.0) == Verdict::Pass)
        .count();
    let rate = passes as f64 / gates as f64;
    eprintln!("5 groups of 80, strata: false PASS rate {rate}");
    assert!(
        rate <= 0.05 + tol,
        "5 groups: false PASS rate {rate} > α + {tol}"
    );
}

/// Simulate one sequential gate (`looks` looks over `n` cases, Haybittle–Peto): returns the
/// verdict and the number of cases it used.
fn simulate_sequential(
    rng: &mut fastrand::Rng,
    n: usize,
    shift: f64,
    looks: usize,
) -> (Verdict, usize) {
    let mut c = Vec::with_capacity(n);
    let mut b = Vec::with_capacity(n);
    for _ in 0..n {
        let p = if rng.f64() < 0.7 { 0.95 } else { 0.55 };
        b.push(if rng.f64() < p { 1.0 } else { 0.0 });
        c.push(if rng.f64() < p - shift { 1.0 } else { 0.0 });
    }
    let policy = Policy::from_value(
        Some(&json!({"min_cases": 1, "sequential": {"looks": looks}})),
        "suite.yaml",
    )
    .unwrap();
    let seq = policy.sequential.clone().unwrap();
    let sizes = seq.look_sizes(n);
    for (k, &m) in sizes.iter().enumerate() {
        let p = policy.at_look(k, sizes.len());
        let d = gate::decide(&p, &input(metric("pass", c[..m].to_vec(), b[..m].to_vec())));
        if k + 1 == sizes.len() || gate::stops_early(&d) {
            return (d.verdict, m);
        }
    }
    unreachable!()
}

#[test]
fn sequential_gates_keep_the_false_pass_rate_at_alpha_and_stop_early_when_clear() {
    let gates = 2000;
    let tol = 3.0 * (0.05f64 * 0.95 / gates as f64).sqrt();
    for looks in [2, 3, 4] {
        let mut rng = fastrand::Rng::with_seed(looks as u64);
        let passes = (0..gates)
            .filter(|_| simulate_sequential(&mut rng, 300, 0.05, looks).0 == Verdict::Pass)
            .count();
        let rate = passes as f64 / gates as f64;
        assert!(
            rate <= 0.05 + tol,
            "{looks} looks: false PASS rate {rate} > α + {tol}"
        );
    }
    // A clearly worse candidate is stopped at the first look (a third of the cases).
    let mut rng = fastrand::Rng::with_seed(11);
    let (v, used) = simulate_sequential(&mut rng, 600, 0.4, 3);
    assert_eq!((v, used), (Verdict::Fail, 200));
    // Identical candidates on plenty of cases usually pass before the last look.
    let mut rng = fastrand::Rng::with_seed(12);
    let runs: Vec<(Verdict, usize)> = (0..200)
        .map(|_| simulate_sequential(&mut rng, 3000, 0.0, 4))
        .collect();
    let early = runs.iter().filter(|(_, m)| *m < 3000).count();
    assert!(early > 100, "only {early} of 200 stopped early");
    assert!(runs.iter().filter(|(v, _)| *v == Verdict::Pass).count() > 180);
}

#[test]
fn sequential_policy_is_validated() {
    assert!(Policy::from_value(Some(&json!({"sequential": {"looks": 5}})), "s").is_err());
    assert!(
        Policy::from_value(
            Some(&json!({"sequential": {"looks": 3, "interim_alpha": 0.2}})),
            "s"
        )
        .is_err()
    );
    let p = Policy::from_value(Some(&json!({"sequential": {"looks": 3}})), "s").unwrap();
    assert_eq!(
        p.sequential.as_ref().unwrap().look_sizes(100),
        vec![34, 67, 100]
    );
    let interim = p.at_look(0, 3);
    assert_eq!(interim.gated()[0].2, 0.001);
    let last = p.at_look(2, 3);
    assert!((last.gated()[0].2 - 0.048).abs() < 1e-12);
}

#[test]
fn the_power_note_of_a_perfect_baseline_counts_the_cases_the_exact_interval_needs() {
    // A baseline and an identical candidate that pass every case: σ_d = 0, so the normal
    // approximation would ask for one case; the score interval needs z²(1 − δ)/δ of them.
    let policy = Policy::default();
    let floor = power::binary_floor_cases(0.05, 0.05);
    assert_eq!(floor, 52);
    for (n, verdict) in [(floor - 1, Verdict::Inconclusive), (floor, Verdict::Pass)] {
        let (c, b) = table(n, 0, 0, 0);
        let d = gate::decide(&policy, &input(metric("pass", c, b)));
        assert_eq!(d.verdict, verdict, "n = {n}: {:#?}", d.reasons);
        assert_eq!(d.power[0].cases_needed, floor, "n = {n}");
    }
    let (c, b) = table(40, 0, 0, 0);
    let d = gate::decide(&policy, &input(metric("pass", c, b)));
    assert!(
        d.power[0]
            .text
            .contains("passes 0 % of the time; 52 cases are needed"),
        "{}",
        d.power[0].text
    );
}

/// Adding a `group` column once turned INCONCLUSIVE into PASS on the same data: a clustered
/// standard error of 0 from a handful of clusters read as certainty.
#[test]
fn grouped_identical_data_give_the_same_verdict_as_without_groups() {
    for (n, groups) in [(30, 3), (30, 10), (60, 30), (200, 3), (200, 40)] {
        let (c, b) = table(n, 0, 0, 0);
        let plain = gate::decide(
            &Policy::default(),
            &input(metric("pass", c.clone(), b.clone())),
        );
        let mut m = metric("pass", c, b);
        m.groups = (0..n).map(|i| format!("g{}", i % groups)).collect();
        let grouped = gate::decide(&Policy::default(), &input(m));
        assert_eq!(
            grouped.verdict, plain.verdict,
            "{n} cases in {groups} groups: {:?} vs {:?}",
            grouped.reasons, plain.reasons
        );
        let (g, p) = (&grouped.metrics[0].interval, &plain.metrics[0].interval);
        assert!(
            g.lower <= p.lower + 1e-12 && g.upper >= p.upper - 1e-12,
            "clustering only widens: {g:?} vs {p:?}"
        );
        assert!(g.upper - g.lower > 0.0, "never a point: {g:?}");
    }
    // The reproduction: 30 identical all-pass cases in 3 groups are INCONCLUSIVE, as without.
    let (c, b) = table(30, 0, 0, 0);
    let mut m = metric("pass", c, b);
    m.groups = (0..30).map(|i| format!("g{}", i % 3)).collect();
    let d = gate::decide(&Policy::default(), &input(m));
    assert_eq!(d.verdict, Verdict::Inconclusive, "{:?}", d.reasons);
    assert_eq!(d.metrics[0].method, "Tango score interval");
    assert!(d.metrics[0].notes[0].contains("clustering not applied: 3 groups"));
}

/// With enough groups, discordance that comes in whole groups widens the interval by its
/// design effect; spread evenly, it does not narrow it.
#[test]
fn a_binary_metrics_design_effect_comes_from_its_groups() {
    let n = 400;
    // 40 groups of 10; the candidate's 20 regressions and 20 improvements: in whole groups
    // (two groups regress entirely, two improve entirely) or one per group.
    let build = |clumped: bool| {
        let mut c = vec![1.0; n];
        let b = vec![1.0; n];
        let mut b = b;
        for i in 0..n {
            let (g, k) = (i / 10, i % 10);
            let regress = if clumped { g < 2 } else { k == 0 && g < 20 };
            let improve = if clumped {
                (2..4).contains(&g)
            } else {
                k == 0 && g >= 20
            };
            if regress {
                c[i] = 0.0;
            }
            if improve {
                b[i] = 0.0;
            }
        }
        let mut m = metric("pass", c, b);
        m.groups = (0..n).map(|i| format!("g{}", i / 10)).collect();
        gate::decide(&Policy::default(), &input(m))
    };
    let (clumped, spread) = (build(true), build(false));
    let deff = clumped.metrics[0].design_effect.unwrap();
    assert!(deff > 5.0, "whole groups move together: {deff}");
    let even = spread.metrics[0].design_effect.unwrap();
    assert!((1.0..1.1).contains(&even), "spread evenly: {even}");
    let width = |d: &gate::Decision| d.metrics[0].interval.upper - d.metrics[0].interval.lower;
    assert!(width(&clumped) > 2.0 * width(&spread));
    assert!(
        clumped.metrics[0]
            .method
            .contains("40 groups, design effect")
    );
    // The power note plans with what the interval uses: the design effect and t with G − 1
    // degrees of freedom.
    let r = &clumped.metrics[0];
    let want = gate::power_note(
        "pass",
        r.n,
        gate::PowerBasis::Discordance {
            rate: r.discordant.unwrap() as f64 / r.n as f64,
            deff,
            df: Some(39.0),
        },
        &clumped.power[0].source,
        0.05,
        0.05,
    );
    assert_eq!(clumped.power[0], want);
}

#[test]
fn a_zero_spread_from_too_few_cases_is_not_certainty() {
    // Continuous scores, every difference exactly +0.01 on 12 cases: no spread, no evidence.
    let b: Vec<f64> = (0..12).map(|i| 0.5 + i as f64 / 100.0).collect();
    let c: Vec<f64> = b.iter().map(|x| x + 0.01).collect();
    let policy = Policy::from_value(
        Some(&json!({"min_cases": 10, "metrics": {"quality": {}}})),
        "s",
    )
    .unwrap();
    let d = gate::decide(&policy, &input(metric("quality", c.clone(), b.clone())));
    assert_eq!(
        d.metrics[0].verdict,
        Verdict::Pass,
        "12 ≥ 10 cases: {:?}",
        d.reasons
    );
    let policy = Policy::from_value(
        Some(&json!({"min_cases": 30, "metrics": {"quality": {}}})),
        "s",
    )
    .unwrap();
    let d = gate::decide(&policy, &input(metric("quality", c, b)));
    assert_eq!(d.metrics[0].verdict, Verdict::Inconclusive);
    assert!(
        d.metrics[0].reason.contains("same difference"),
        "{}",
        d.metrics[0].reason
    );
}

#[test]
fn two_sides_at_zero_are_never_a_pass() {
    // 400 cases that both versions fail: the interval is tight around 0, but it says nothing.
    let (c, b) = table(0, 0, 0, 400);
    let d = gate::decide(&Policy::default(), &input(metric("pass", c, b)));
    assert_eq!(d.verdict, Verdict::Inconclusive, "{:?}", d.reasons);
    assert!(
        d.reasons[0].contains("both versions score 0"),
        "{:?}",
        d.reasons
    );
    // One passing case on either side is something to compare.
    let (c, b) = table(0, 0, 0, 400);
    let (mut c, b) = (c, b);
    c[0] = 1.0;
    let d = gate::decide(&Policy::default(), &input(metric("pass", c, b)));
    assert_eq!(d.verdict, Verdict::Pass, "{:?}", d.reasons);
}

#[test]
fn float_noise_cannot_break_wilcoxon_ties() {
    // Differences of ±0.25 on paper; computed from these scores some come out 0.24999999999999997.
    let bases = [0.1, 0.2, 0.3, 0.6, 0.7];
    let (mut noisy_c, mut noisy_b, mut clean_c, mut clean_b): (
        Vec<f64>,
        Vec<f64>,
        Vec<f64>,
        Vec<f64>,
    ) = (vec![], vec![], vec![], vec![]);
    for i in 0..40 {
        let up = i % 8 < 5;
        let b = bases[i % bases.len()];
        noisy_b.push(b);
        noisy_c.push(if up { b + 0.25 } else { b - 0.05 - 0.2 });
        clean_b.push(0.5);
        clean_c.push(if up { 0.75 } else { 0.25 });
    }
    let spread: std::collections::BTreeSet<u64> = noisy_c
        .iter()
        .zip(&noisy_b)
        .map(|(c, b)| (c - b).abs().to_bits())
        .collect();
    assert!(spread.len() > 1, "the data do carry float noise");
    let policy = Policy::from_value(Some(&json!({"metrics": {"q": {}}})), "s").unwrap();
    let noisy = gate::decide(&policy, &input(metric("q", noisy_c, noisy_b)));
    let clean = gate::decide(&policy, &input(metric("q", clean_c, clean_b)));
    assert_eq!(
        noisy.metrics[0].p_difference, clean.metrics[0].p_difference,
        "tied differences are tied however they were computed"
    );
}

#[test]
fn newcombe_reports_its_own_p_value_and_floors_use_the_metrics_alpha() {
    // Test inversion: p < α exactly when the lower bound clears the margin.
    for (n11, n10, n01, n00) in [
        (320, 4, 4, 72),
        (140, 2, 30, 28),
        (50, 3, 5, 2),
        (90, 0, 0, 10),
    ] {
        let (c, b) = table(n11, n10, n01, n00);
        for alpha in [0.025, 0.05, 0.1] {
            let policy = Policy::from_value(
                Some(&json!({"metrics": {"pass": {"method": "newcombe", "alpha": alpha}}})),
                "s",
            )
            .unwrap();
            let r = &gate::decide(&policy, &input(metric("pass", c.clone(), b.clone()))).metrics[0];
            assert_eq!(
                r.p_noninferiority < alpha,
                r.interval.lower > -r.margin,
                "{n11}/{n10}/{n01}/{n00} at α {alpha}: p {} vs lower {}",
                r.p_noninferiority,
                r.interval.lower
            );
        }
    }
    // A floor at the metric's α: at α = 0.2 the lower bound is higher than at 0.05.
    let (c, b) = table(27, 0, 0, 3);
    let strict = Policy::from_value(Some(&json!({"floors": {"pass": 0.8}})), "s").unwrap();
    let loose = Policy::from_value(
        Some(&json!({"floors": {"pass": 0.8}, "metrics": {"pass": {"alpha": 0.2}}})),
        "s",
    )
    .unwrap();
    let f = |p: &Policy| {
        gate::decide(p, &input(metric("pass", c.clone(), b.clone()))).floors[0].lower_bound
    };
    assert!(f(&loose) > f(&strict), "{} vs {}", f(&loose), f(&strict));
}

#[test]
fn a_latency_budget_that_cannot_be_checked_is_not_a_pass() {
    // 40 cases: enough for the pass rate at a 10-point margin (25), fewer than a
    // distribution-free bound on a p95 ratio at 90 % needs (45).
    let (c, b) = table(40, 0, 0, 0);
    let mut i = input(metric("pass", c.clone(), b.clone()));
    let metrics = json!({"pass": {"margin": 0.1}});
    let without =
        Policy::from_value(Some(&json!({"min_cases": 10, "metrics": metrics})), "s").unwrap();
    assert_eq!(gate::decide(&without, &i).verdict, Verdict::Pass);
    i.latency = Some((vec![100.0; 40], vec![100.0; 40]));
    let policy = Policy::from_value(
        Some(&json!({"min_cases": 10, "metrics": metrics, "latency": {"p95_max_ratio": 1.2}})),
        "s",
    )
    .unwrap();
    let d = gate::decide(&policy, &i);
    assert_eq!(d.latency_verdict, None);
    assert_eq!(d.verdict, Verdict::Inconclusive, "{:?}", d.reasons);
    assert!(
        d.reasons
            .iter()
            .any(|r| r.contains("not statistically supported"))
    );
}

/// Every range of the policy, at its bounds: what is accepted, what is refused.
#[test]
fn the_policy_ranges_are_exact_at_their_bounds() {
    let ok = |v: serde_json::Value| Policy::from_value(Some(&v), "s").map_err(|e| e.to_string());
    let accepted = |v: serde_json::Value| {
        let r = ok(v.clone());
        assert!(r.is_ok(), "{v} should be accepted: {r:?}");
        r.unwrap()
    };
    let refused = |v: serde_json::Value| {
        assert!(ok(v.clone()).is_err(), "{v} should be refused");
    };
    for a in [1e-9, 0.05, 0.499] {
        accepted(json!({"metrics": {"pass": {"alpha": a}}}));
    }
    for a in [0.0, 0.5, -0.1, 1.0] {
        refused(json!({"metrics": {"pass": {"alpha": a}}}));
    }
    for m in [0.0, 0.05, 0.999] {
        accepted(json!({"metrics": {"pass": {"margin": m}}}));
    }
    for m in [-0.01, 1.0, 5.0] {
        refused(json!({"metrics": {"pass": {"margin": m}}}));
    }
    for f in [0.0, 1.0] {
        accepted(json!({"floors": {"pass": f}}));
    }
    refused(json!({"floors": {"pass": 1.01}}));
    refused(json!({"floors": {"pass": -0.01}}));
    accepted(json!({"latency": {"p95_max_ratio": 0.5}}));
    refused(json!({"latency": {"p95_max_ratio": 0}}));
    refused(json!({"latency": {}}));
    accepted(json!({"cost": {"max_increase": 0}}));
    refused(json!({"cost": {"max_increase": -0.1}}));
    for b in [0.0, 1.0] {
        accepted(json!({"error_budget": b}));
    }
    refused(json!({"error_budget": 1.1}));
    accepted(json!({"min_cases": 1}));
    refused(json!({"min_cases": 0}));
    for looks in [2, 4] {
        accepted(json!({"sequential": {"looks": looks}}));
    }
    for looks in [1, 5] {
        refused(json!({"sequential": {"looks": looks}}));
    }
    let s = accepted(json!({"sequential": {"looks": 2, "interim_alpha": 0.01}}));
    assert_eq!(s.sequential.unwrap().interim_alpha(), 0.01);
    for a in [0.0, 0.0101] {
        refused(json!({"sequential": {"looks": 2, "interim_alpha": a}}));
    }
    assert_eq!(
        accepted(json!({"sequential": {"looks": 2}}))
            .sequential
            .unwrap()
            .interim_alpha(),
        gate::defaults::INTERIM_ALPHA
    );
    assert_eq!(accepted(json!({"seed": 42})).seed(), 42);
    assert_eq!(accepted(json!({})).seed(), gate::defaults::SEED);
    use gate::{Method, OnInconclusive};
    for (name, method) in [
        ("auto", Method::Auto),
        ("tango", Method::Tango),
        ("newcombe", Method::Newcombe),
        ("t", Method::T),
        ("bootstrap", Method::Bootstrap),
    ] {
        let p = accepted(json!({"metrics": {"pass": {"method": name}}}));
        assert_eq!(p.metrics["pass"].method, Some(method), "{name}");
    }
    let e = ok(json!({"metrics": {"pass": {"method": "wald"}}})).unwrap_err();
    assert!(e.contains("expected one of `auto`, `tango`"), "{e}");
    assert_eq!(
        accepted(json!({"on_inconclusive": "allow"})).on_inconclusive,
        Some(OnInconclusive::Allow)
    );
    assert_eq!(
        accepted(json!({"on_inconclusive": "block"})).on_inconclusive,
        Some(OnInconclusive::Block)
    );
}

/// The numbers of the decision pinned against formulas written out here, and every verdict
/// boundary at its exact value.
mod pinned {
    use super::*;
    use statrs::distribution::{ContinuousCDF, StudentsT};

    fn continuous(n: usize, seed: u64) -> (Vec<f64>, Vec<f64>) {
        let mut rng = fastrand::Rng::with_seed(seed);
        let b: Vec<f64> = (0..n).map(|_| 0.4 + 0.4 * rng.f64()).collect();
        let c: Vec<f64> = b.iter().map(|x| x + 0.06 * (rng.f64() - 0.4)).collect();
        (c, b)
    }

    #[test]
    fn the_clustered_t_interval_is_the_textbook_one() {
        let n = 200;
        let (c, b) = continuous(n, 9);
        let groups: Vec<String> = (0..n).map(|i| format!("g{}", i % 25)).collect();
        let mut m = metric("q", c.clone(), b.clone());
        m.groups = groups.clone();
        let policy =
            Policy::from_value(Some(&json!({"metrics": {"q": {"margin": 0.02}}})), "s").unwrap();
        let r = gate::decide(&policy, &input(m)).metrics[0].clone();
        // Independently: CR1 sandwich SE, never below the case-level SE; t with G − 1 df.
        let d: Vec<f64> = c.iter().zip(&b).map(|(c, b)| c - b).collect();
        let mean = d.iter().sum::<f64>() / n as f64;
        let g = 25usize;
        let mut sums = vec![0.0; g];
        for (i, x) in d.iter().enumerate() {
            sums[i % g] += x - mean;
        }
        let cr1 = (g as f64 / (g as f64 - 1.0) * sums.iter().map(|s| s * s).sum::<f64>()
            / (n * n) as f64)
            .sqrt();
        let var = d.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n as f64 - 1.0);
        let se = cr1.max((var / n as f64).sqrt());
        let t = StudentsT::new(0.0, 1.0, g as f64 - 1.0).unwrap();
        let q = t.inverse_cdf(0.95);
        assert!(
            (r.interval.lower - (mean - q * se)).abs() < 1e-12,
            "{:?}",
            r.interval
        );
        assert!(
            (r.interval.upper - (mean + q * se)).abs() < 1e-12,
            "{:?}",
            r.interval
        );
        let p = 1.0 - t.cdf((mean + 0.02) / se);
        assert!(
            (r.p_noninferiority - p).abs() < 1e-12,
            "{} vs {p}",
            r.p_noninferiority
        );
        assert_eq!(r.groups, Some(25));
        assert!(r.method.contains("clustered SE (25 groups)"));
        // Where p(NI) is neither 0 nor 1: the candidate shifted down, the margin one SE above
        // its mean difference (t = 1). The shift moves no deviation, so the SE is the same.
        let shifted: Vec<f64> = c.iter().map(|x| x - 0.05).collect();
        let margin = -(mean - 0.05) + se;
        let mut m = metric("q", shifted, b.clone());
        m.groups = groups.clone();
        let policy =
            Policy::from_value(Some(&json!({"metrics": {"q": {"margin": margin}}})), "s").unwrap();
        let r = gate::decide(&policy, &input(m)).metrics[0].clone();
        let p = 1.0 - t.cdf(1.0);
        assert!(
            (r.p_noninferiority - p).abs() < 1e-9,
            "{} vs {p}",
            r.p_noninferiority
        );
        // Every case in a group of its own is no clustering at all.
        let mut alone = metric("q", c, b);
        alone.groups = (0..n).map(|i| format!("g{i}")).collect();
        let r = gate::decide(&policy, &input(alone)).metrics[0].clone();
        assert_eq!((r.groups, r.notes.len()), (None, 0));
        assert_eq!(r.method, "paired t interval");
    }

    #[test]
    fn verdicts_change_exactly_at_the_margin() {
        let (wc, wb) = continuous(300, 4);
        let worse: Vec<f64> = wc.iter().map(|x| x - 0.01).collect();
        for (c, b) in [table(300, 10, 14, 76), table(140, 2, 30, 28), (worse, wb)] {
            let name = if c.iter().all(|v| *v == 0.0 || *v == 1.0) {
                "pass"
            } else {
                "q"
            };
            let at = |margin: f64| {
                let p =
                    Policy::from_value(Some(&json!({"metrics": {name: {"margin": margin}}})), "s")
                        .unwrap();
                gate::decide(&p, &input(metric(name, c.clone(), b.clone()))).metrics[0].clone()
            };
            let probe = at(0.05);
            // The interval does not depend on the margin: −δ exactly at L is not yet a PASS,
            // −δ exactly at U is not yet a FAIL.
            let l = probe.interval.lower;
            assert!(l < 0.0, "{:?}", probe.interval);
            assert_eq!(at(-l).interval, probe.interval);
            assert_eq!(at(-l).verdict, Verdict::Inconclusive, "{name} at L");
            assert_eq!(at(-l + 1e-9).verdict, Verdict::Pass, "{name} just past L");
            let u = probe.interval.upper;
            if u < 0.0 {
                assert_eq!(at(-u).verdict, Verdict::Inconclusive, "{name} at U");
                assert_eq!(at(-u - 1e-9).verdict, Verdict::Fail, "{name} just past U");
            }
        }
    }

    #[test]
    fn methods_follow_the_data_and_the_policy() {
        let policy = |method: &str| {
            Policy::from_value(Some(&json!({"metrics": {"m": {"method": method}}})), "s").unwrap()
        };
        let (bc, bb) = table(280, 6, 4, 60);
        let (cc, cb) = continuous(120, 5);
        let decide = |p: &Policy, c: &[f64], b: &[f64]| {
            gate::decide(p, &input(metric("m", c.to_vec(), b.to_vec()))).metrics[0].clone()
        };
        assert_eq!(
            decide(&policy("auto"), &bc, &bb).method,
            "Tango score interval"
        );
        assert_eq!(
            decide(&policy("newcombe"), &bc, &bb).method,
            "Newcombe hybrid score interval"
        );
        assert!(
            decide(&policy("bootstrap"), &bc, &bb)
                .method
                .contains("widened to Tango")
        );
        assert!(
            decide(&policy("bootstrap"), &cc, &cb)
                .method
                .starts_with("BCa bootstrap")
        );
        // A pass/fail method on continuous scores is the t interval.
        for m in ["tango", "newcombe", "auto", "t"] {
            assert_eq!(
                decide(&policy(m), &cc, &cb).method,
                "paired t interval",
                "{m}"
            );
        }
        // Binary on one side only is not a binary metric.
        let half: Vec<f64> = bc.iter().map(|v| v * 0.5 + 0.25).collect();
        assert!(!decide(&policy("auto"), &half, &bb).binary);
        assert_eq!(
            decide(&policy("auto"), &half, &bb).method,
            "paired t interval"
        );
        // The bootstrap's non-inferiority p is the sign-flip test of d + δ.
        let r = decide(&policy("bootstrap"), &cc, &cb);
        let shifted: Vec<f64> = cc.iter().zip(&cb).map(|(c, b)| c - b + 0.05).collect();
        let sf =
            promptgate_core::stats::continuous::sign_flip(&shifted, 20_000, gate::defaults::SEED);
        assert_eq!(r.p_noninferiority, sf.p_greater);
    }

    #[test]
    fn superiority_and_the_power_flag() {
        // Clearly better: 60 improvements, 2 regressions on 400 cases.
        let (c, b) = table(300, 60, 2, 38);
        let r = gate::decide(&Policy::default(), &input(metric("pass", c, b)));
        assert!(r.metrics[0].superior && r.metrics[0].interval.lower > 0.0);
        // Better on average but not significantly: not superior.
        let (c, b) = table(300, 12, 10, 78);
        let r = gate::decide(&Policy::default(), &input(metric("pass", c, b)));
        assert!(!r.metrics[0].superior);
        // Identical: not superior, and the power note says whether n is enough.
        let (c, b) = table(40, 0, 0, 0);
        let r = gate::decide(&Policy::default(), &input(metric("pass", c, b)));
        assert!(!r.metrics[0].superior);
        assert!(r.power[0].underpowered, "40 < 52 cases");
        let (c, b) = table(60, 0, 0, 0);
        let r = gate::decide(&Policy::default(), &input(metric("pass", c, b)));
        assert!(!r.power[0].underpowered, "60 ≥ 52 cases");
        assert_eq!(r.power[0].identical_pass_probability, 1.0);
    }

    #[test]
    fn a_spread_from_few_cases_is_still_evidence() {
        // Continuous, 12 cases with a spread, a wide margin: the metric passes on its own
        // (only the whole gate waits for `min_cases`).
        let (c, b) = continuous(12, 3);
        let p = Policy::from_value(Some(&json!({"metrics": {"q": {"margin": 0.5}}})), "s").unwrap();
        let d = gate::decide(&p, &input(metric("q", c, b)));
        assert_eq!(d.metrics[0].verdict, Verdict::Pass, "{:?}", d.metrics[0]);
        assert!(d.metrics[0].notes.is_empty());
        assert_eq!(d.verdict, Verdict::Inconclusive);
        // Pass/fail on few cases, likewise never "zero spread".
        let (c, b) = table(20, 0, 0, 0);
        let p =
            Policy::from_value(Some(&json!({"metrics": {"pass": {"margin": 0.2}}})), "s").unwrap();
        let d = gate::decide(&p, &input(metric("pass", c, b)));
        assert_eq!(d.metrics[0].verdict, Verdict::Pass);
        assert!(d.metrics[0].notes.is_empty());
    }
}

/// The cost budget at the textbook one-sided t bounds of eᵢ = cᵢ − (1+Y)·bᵢ: within when the
/// upper bound is below 0, over when the lower bound is above 0, and cannot tell between.
#[test]
fn the_cost_budget_decides_on_the_bounds_of_the_excess() {
    use promptgate_core::stats::{mean, sd, t_ppf};
    let (c, b) = table(380, 0, 0, 20);
    let policy =
        Policy::from_value(Some(&json!({"cost": {"max_increase": 0.1}})), "suite.yaml").unwrap();
    let base: Vec<f64> = (0..c.len()).map(|k| 1.0 + (k % 5) as f64 * 0.1).collect();
    let decide = |ratio: f64, noise: f64| {
        let cand: Vec<f64> = base
            .iter()
            .enumerate()
            .map(|(k, x)| ratio * x + if k % 2 == 0 { noise } else { -noise })
            .collect();
        let e: Vec<f64> = cand.iter().zip(&base).map(|(c, b)| c - 1.1 * b).collect();
        let half = t_ppf(0.95, e.len() as f64 - 1.0) * sd(&e) / (e.len() as f64).sqrt();
        let mut i = input(metric("pass", c.clone(), b.clone()));
        i.cost = Some((cand, base.clone()));
        let d = gate::decide(&policy, &i);
        let t = d.cost.unwrap();
        assert!((t.mean_excess - mean(&e)).abs() < 1e-12);
        assert!((t.lower_bound - (mean(&e) - half)).abs() < 1e-12);
        assert!((t.upper_bound - (mean(&e) + half)).abs() < 1e-12);
        (d.cost_verdict.unwrap(), d.verdict, t)
    };
    // 12 % over on average, little noise: over budget with confidence.
    let (v, overall, t) = decide(1.12, 0.1);
    assert!(t.lower_bound > 0.0, "{t:?}");
    assert_eq!((v, overall), (Verdict::Fail, Verdict::Fail));
    // The same average with much noise: the bounds straddle 0, so it cannot tell.
    let (v, overall, t) = decide(1.12, 0.3);
    assert!(t.lower_bound < 0.0 && t.upper_bound > 0.0, "{t:?}");
    assert_eq!((v, overall), (Verdict::Inconclusive, Verdict::Inconclusive));
    // 5 % over, on a 10 % budget: within with confidence.
    let (v, overall, t) = decide(1.05, 0.1);
    assert!(t.upper_bound < 0.0, "{t:?}");
    assert_eq!((v, overall), (Verdict::Pass, Verdict::Pass));
}

/// A floor on a continuous metric: the one-sided t bound at the metric's α, textbook form.
#[test]
fn a_continuous_floor_uses_the_one_sided_t_bound() {
    use promptgate_core::stats::{mean, sd, t_ppf};
    let n = 60;
    let cand: Vec<f64> = (0..n).map(|k| 0.80 + (k % 7) as f64 * 0.02).collect();
    let lower = mean(&cand) - t_ppf(0.95, n as f64 - 1.0) * sd(&cand) / (n as f64).sqrt();
    for (floor, want) in [
        (lower - 0.005, Verdict::Pass),
        (lower + 0.005, Verdict::Inconclusive),
        (0.99, Verdict::Fail),
    ] {
        let policy = Policy::from_value(Some(&json!({"floors": {"score": floor}})), "s").unwrap();
        let mut i = input(metric("score", cand.clone(), cand.clone()));
        i.metrics[0].name = "score".into();
        let d = gate::decide(&policy, &i);
        let f = &d.floors[0];
        assert!(
            (f.lower_bound - lower).abs() < 1e-12,
            "{} vs {lower}",
            f.lower_bound
        );
        assert_eq!(f.verdict, want, "floor {floor}: {:?}", f.reason);
    }
}

/// The error budget is a share of calls that may error: at it is allowed, over it is INVALID.
#[test]
fn the_error_budget_allows_exactly_its_share() {
    let (c, b) = table(380, 0, 0, 20);
    let policy = Policy::from_value(Some(&json!({"error_budget": 0.05})), "s").unwrap();
    let mut i = input(metric("pass", c, b));
    assert_eq!(i.calls, 800);
    i.errored_calls = 40; // exactly 5 %
    assert_ne!(gate::decide(&policy, &i).verdict, Verdict::Invalid);
    i.errored_calls = 41;
    assert_eq!(gate::decide(&policy, &i).verdict, Verdict::Invalid);
}

/// `min_cases` is a minimum: exactly that many cases is enough.
#[test]
fn min_cases_is_inclusive() {
    let (c, b) = table(30, 0, 0, 0);
    let metrics = json!({"pass": {"margin": 0.15}});
    let at = Policy::from_value(Some(&json!({"min_cases": 30, "metrics": metrics})), "s").unwrap();
    let d = gate::decide(&at, &input(metric("pass", c.clone(), b.clone())));
    assert!(
        !d.reasons
            .iter()
            .any(|r| r.contains("paired cases: at least")),
        "{:?}",
        d.reasons
    );
    let over =
        Policy::from_value(Some(&json!({"min_cases": 31, "metrics": metrics})), "s").unwrap();
    let d = gate::decide(&over, &input(metric("pass", c, b)));
    assert_eq!(d.verdict, Verdict::Inconclusive);
    assert!(
        d.reasons.iter().any(|r| r.contains("only 30 paired cases")),
        "{:?}",
        d.reasons
    );
}

/// The latency budget: "at most R×" holds at R exactly, fails when the whole interval is over.
#[test]
fn the_latency_budget_is_at_most_its_ratio() {
    let n = 200;
    let (c, b) = table(n, 0, 0, 0);
    let base: Vec<f64> = (0..n).map(|k| 100.0 + (k % 10) as f64).collect();
    let policy =
        |r: f64| Policy::from_value(Some(&json!({"latency": {"p95_max_ratio": r}})), "s").unwrap();
    let mut i = input(metric("pass", c, b));
    i.latency = Some((base.clone(), base.clone()));
    let d = gate::decide(&policy(1.0), &i);
    assert_eq!(d.latency_verdict, Some(Verdict::Pass), "{:?}", d.reasons);
    i.latency = Some((base.iter().map(|x| x * 2.0).collect(), base.clone()));
    let d = gate::decide(&policy(1.2), &i);
    assert_eq!(d.latency_verdict, Some(Verdict::Fail), "{:?}", d.reasons);
    assert_eq!(d.verdict, Verdict::Fail);
}

/// A floor on a pass/fail metric counts the passes (the Wilson bound of the pass rate), and
/// only a floor or a budget that does not hold gives a reason.
#[test]
fn floors_count_passes_and_only_what_does_not_hold_gives_a_reason() {
    let (c, b) = table(396, 0, 0, 4);
    let floor = |f: f64| {
        let policy = Policy::from_value(Some(&json!({"floors": {"pass": f}})), "s").unwrap();
        gate::decide(&policy, &input(metric("pass", c.clone(), b.clone())))
    };
    let d = floor(0.95);
    assert_eq!(
        d.floors[0].verdict,
        Verdict::Pass,
        "99 % passes clear a 95 % floor"
    );
    assert!(
        d.floors[0].lower_bound > 0.97,
        "{}",
        d.floors[0].lower_bound
    );
    assert!(
        !d.reasons.iter().any(|r| r.contains("floor")),
        "{:?}",
        d.reasons
    );
    let d = floor(0.999);
    assert_eq!(d.floors[0].verdict, Verdict::Fail);
    assert!(
        d.reasons.iter().any(|r| r.contains("floor `pass`")),
        "{:?}",
        d.reasons
    );
    // The cost budget likewise: a reason only when it does not hold.
    let policy = Policy::from_value(Some(&json!({"cost": {"max_increase": 0.1}})), "s").unwrap();
    let base: Vec<f64> = (0..c.len()).map(|k| 1.0 + (k % 5) as f64 * 0.1).collect();
    let mut i = input(metric("pass", c.clone(), b.clone()));
    i.cost = Some((base.clone(), base.clone()));
    let d = gate::decide(&policy, &i);
    assert_eq!(d.cost_verdict, Some(Verdict::Pass));
    assert!(
        !d.reasons.iter().any(|r| r.starts_with("cost")),
        "{:?}",
        d.reasons
    );
    i.cost = Some((base.iter().map(|x| x * 2.0).collect(), base.clone()));
    let d = gate::decide(&policy, &i);
    assert_eq!(d.cost_verdict, Some(Verdict::Fail));
    assert!(
        d.reasons.iter().any(|r| r.starts_with("cost")),
        "{:?}",
        d.reasons
    );
}

/// Each verdict's reason says what happened: no cases, an interval that straddles the margin,
/// a candidate worse within the margin or better.
#[test]
fn reasons_say_what_the_interval_says() {
    let reason = |c: Vec<f64>, b: Vec<f64>| {
        let d = gate::decide(&Policy::default(), &input(metric("pass", c, b)));
        d.metrics[0].reason.clone()
    };
    assert!(reason(vec![], vec![]).contains("no paired cases"));
    let (c, b) = table(30, 2, 2, 6);
    let r = reason(c, b);
    assert!(r.contains("cannot tell — candidate is between"), "{r}");
    let (c, b) = table(390, 0, 0, 10);
    let r = reason(c, b);
    assert!(r.contains("at most") && r.contains("points worse"), "{r}");
    let (c, b) = table(300, 90, 0, 10);
    let r = reason(c, b);
    assert!(r.contains("at least") && r.contains("points better"), "{r}");
}

/// A continuous metric whose differences are all equal: at `min_cases` cases that is a
/// finding (PASS when within the margin), below it a coincidence; with groups, p(NI) is 0 or 1
/// by which side of the margin the difference lies.
#[test]
fn a_zero_spread_at_min_cases_is_a_finding_and_its_p_is_exact() {
    let policy = Policy::from_value(Some(&json!({"min_cases": 30})), "s").unwrap();
    let at = gate::decide(
        &policy,
        &input(metric("pass", vec![0.5; 30], vec![0.5; 30])),
    );
    let r = &at.metrics[0];
    assert_eq!(r.verdict, Verdict::Pass, "{}", r.reason);
    let below = gate::decide(
        &policy,
        &input(metric("pass", vec![0.5; 29], vec![0.5; 29])),
    );
    assert_eq!(below.metrics[0].verdict, Verdict::Inconclusive);
    // 25 groups, every difference the same.
    let grouped = |delta: f64| {
        let n = 50;
        let mut m = metric("pass", vec![0.5 + delta; n], vec![0.5; n]);
        m.groups = (0..n).map(|i| format!("g{}", i / 2)).collect();
        gate::decide(&Policy::default(), &input(m)).metrics[0].clone()
    };
    let same = grouped(0.0);
    assert_eq!(same.p_noninferiority, 0.0, "{same:?}");
    let worse = grouped(-0.2);
    assert_eq!(worse.p_noninferiority, 1.0, "{worse:?}");
}

#[test]
fn each_method_reports_the_interval_and_the_p_values_of_its_reference_function() {
    use promptgate_core::stats::{binary, bootstrap, continuous};
    let (c, b) = table(140, 12, 6, 42);
    let alpha = 0.05;
    let counts = binary::PairedCounts::from_pairs(
        &c.iter().map(|v| *v == 1.0).collect::<Vec<_>>(),
        &b.iter().map(|v| *v == 1.0).collect::<Vec<_>>(),
    );
    let with = |method: &str| {
        let policy = Policy::from_value(
            Some(&json!({"metrics": {"pass": {"method": method, "alpha": alpha}}})),
            "s",
        )
        .unwrap();
        gate::decide(&policy, &input(metric("pass", c.clone(), b.clone()))).metrics[0].clone()
    };
    // Newcombe's interval at the two-sided confidence 1 − 2α.
    let r = with("newcombe");
    let want = binary::newcombe_interval(&counts, 1.0 - 2.0 * alpha).0;
    assert_eq!(
        (r.interval.lower, r.interval.upper),
        (want.lower, want.upper)
    );
    // The exact test of "no difference", for every method on a pass/fail metric.
    let mc = binary::mcnemar_exact(&counts);
    assert_eq!(r.p_difference, mc.two_sided);
    assert_eq!(
        r.superior,
        r.interval.lower > 0.0 && mc.one_sided_better < alpha
    );
    // The bootstrap's own BCa interval, widened to Tango's (never narrower).
    let r = with("bootstrap");
    let d: Vec<f64> = c.iter().zip(&b).map(|(x, y)| x - y).collect();
    let boot = bootstrap::paired_bootstrap(
        &d,
        None,
        10_000,
        1.0 - 2.0 * alpha,
        Policy::default().seed(),
    );
    assert!(
        r.interval.lower <= boot.bca.lower && r.interval.upper >= boot.bca.upper,
        "{r:?}"
    );
    // A continuous metric: Wilcoxon signed-rank (Pratt) for "no difference".
    let cont: Vec<f64> = (0..60).map(|i| 0.5 + 0.004 * (i % 7) as f64).collect();
    let base: Vec<f64> = (0..60).map(|i| 0.5 + 0.003 * (i % 5) as f64).collect();
    let policy =
        Policy::from_value(Some(&json!({"metrics": {"score": {"margin": 0.05}}})), "s").unwrap();
    let decided = gate::decide(&policy, &input(metric("score", cont.clone(), base.clone())));
    let r = decided
        .metrics
        .iter()
        .find(|m| m.name == "score")
        .expect("gated");
    let d: Vec<f64> = cont.iter().zip(&base).map(|(x, y)| x - y).collect();
    let w =
        continuous::wilcoxon_with_tolerance(&d, 1e-9, continuous::ZeroMethod::Pratt, false, None);
    assert_eq!(r.p_difference, w.p_two_sided);
    assert!(
        r.p_difference > 0.0 && r.p_difference < 1.0,
        "{}",
        r.p_difference
    );
}

#[test]
fn superiority_and_the_reasons_say_what_the_numbers_say() {
    let decide = |c: Vec<f64>, b: Vec<f64>, policy: &Policy| {
        gate::decide(policy, &input(metric("pass", c, b))).metrics[0].clone()
    };
    let p = Policy::default();
    // 4 of 34 better, none worse: the interval clears 0 but the exact test (p = 1/16) does not.
    let (c, b) = table(20, 4, 0, 10);
    let r = decide(c, b, &p);
    assert!(r.interval.lower > 0.0 && !r.superior, "{r:?}");
    assert!(
        r.reason.contains("at least 3.5 points better"),
        "{}",
        r.reason
    );
    let (c, b) = table(20, 5, 0, 10);
    assert!(decide(c, b, &p).superior);
    // Cannot tell: the interval spans both sides of the margin, each side named.
    let (c, b) = table(20, 3, 3, 8);
    let r = decide(c, b, &p);
    assert_eq!(r.verdict, Verdict::Inconclusive);
    let worse = r.reason.find("points worse").expect("worse side");
    let better = r.reason.find("points better").expect("better side");
    assert!(worse < better, "{}", r.reason);
    // Every difference equal on too few cases: the difference is said, with its sign.
    let score =
        Policy::from_value(Some(&json!({"metrics": {"score": {"margin": 0.05}}})), "s").unwrap();
    let m = metric("score", vec![0.7; 10], vec![0.6; 10]);
    let d = gate::decide(&score, &input(m));
    let r = d.metrics.iter().find(|m| m.name == "score").unwrap();
    assert!(r.reason.contains("(+10.0 points)"), "{}", r.reason);
}
