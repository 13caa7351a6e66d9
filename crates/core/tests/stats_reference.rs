//! Every statistic against values computed independently with SciPy 1.17 / statsmodels 0.15
//! (`tests/data/stats_reference_values.json`, conventions stated in each entry). Closed forms
//! must agree to a relative error of 1e-9, iterative ones to 1e-6; bootstrap intervals are
//! checked for agreement with the spread over seeds and the ideal standard error.

use serde_json::Value;

use promptgate_core::stats::binary::{self, PairedCounts};
use promptgate_core::stats::continuous::{self, WilcoxonMethod, ZeroMethod};
use promptgate_core::stats::{self, bootstrap, budgets, power};

fn reference() -> Value {
    serde_json::from_str(include_str!("data/stats_reference_values.json")).expect("reference JSON")
}

#[track_caller]
fn close(actual: f64, expected: f64, rel: f64) {
    let scale = expected.abs().max(1e-300);
    assert!(
        (actual - expected).abs() <= rel * scale || (actual - expected).abs() < 1e-15,
        "got {actual:.17e}, expected {expected:.17e} (relative error {:.3e})",
        (actual - expected).abs() / scale
    );
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

fn vecf(v: &Value) -> Vec<f64> {
    v.as_array().unwrap().iter().map(f).collect()
}

fn bools(v: &Value) -> Vec<bool> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_i64().unwrap() == 1)
        .collect()
}

const CLOSED: f64 = 1e-9;
const ITERATIVE: f64 = 1e-6;

#[test]
fn binary_tables_match_scipy_and_statsmodels() {
    let r = reference();
    for key in ["B1_binary_small_n20", "B2_external_cavo2012_n161"] {
        let e = &r[key];
        let c = PairedCounts::from_pairs(
            &bools(&e["data"]["candidate"]),
            &bools(&e["data"]["baseline"]),
        );
        assert_eq!(
            c.n10,
            e["counts"]["n10_candidate_only"].as_u64().unwrap(),
            "{key}"
        );
        assert_eq!(
            c.n01,
            e["counts"]["n01_baseline_only"].as_u64().unwrap(),
            "{key}"
        );
        close(c.delta(), f(&e["delta_hat"]), CLOSED);

        let m = binary::mcnemar_exact(&c);
        let x = &e["mcnemar_exact_conditional"];
        close(m.two_sided, f(&x["two_sided_p"]), CLOSED);
        close(m.mid_p_two_sided, f(&x["mid_p_two_sided"]), CLOSED);
        close(
            m.one_sided_better,
            f(&x["one_sided_p_candidate_better"]),
            CLOSED,
        );
        close(
            m.one_sided_worse,
            f(&x["one_sided_p_candidate_worse"]),
            CLOSED,
        );

        for (conf, k) in [(0.95, "ci_95"), (0.90, "ci_90")] {
            let t = binary::tango_interval(&c, conf);
            close(t.lower, f(&e[k]["tango_score"][0]), ITERATIVE);
            close(t.upper, f(&e[k]["tango_score"][1]), ITERATIVE);
            let (nw, phi) = binary::newcombe_interval(&c, conf);
            close(phi, f(&e[k]["newcombe_phi_star_used"]), CLOSED);
            close(nw.lower, f(&e[k]["newcombe_method10"][0]), CLOSED);
            close(nw.upper, f(&e[k]["newcombe_method10"][1]), CLOSED);
        }
        for (margin, k) in [(0.05, "margin_0.05"), (0.1, "margin_0.1")] {
            let ni = &e["non_inferiority"][k];
            let (z, q) = binary::tango_z(&c, -margin);
            close(z, f(&ni["tango_score_z_at_minus_margin"]), CLOSED);
            close(q, f(&ni["restricted_mle_q_baseline_only_cell"]), CLOSED);
            let (_, p) = binary::tango_noninferiority(&c, margin);
            close(p, f(&ni["tango_one_sided_p"]), CLOSED);
            // The gate's decision from the 90 % interval.
            let ci = binary::tango_interval(&c, 0.90);
            let decision = if ci.lower > -margin {
                "PASS"
            } else if ci.upper < -margin {
                "FAIL"
            } else {
                "INCONCLUSIVE"
            };
            assert_eq!(
                decision, ni["gate_decision_from_tango_90pct_ci"],
                "{key} {k}"
            );
        }
    }
    // An external value pinned to R's PropCIs::scoreci.mp.
    let e = &r["B2b_external_propcis_tango"];
    let c = PairedCounts {
        n11: 0,
        n10: 28,
        n01: 25,
        n00: 618 - 53,
    };
    let t = binary::tango_interval(&c, 0.90);
    close(t.lower, f(&e["tango_90"][0]), ITERATIVE);
    close(t.upper, f(&e["tango_90"][1]), ITERATIVE);
}

fn diffs(e: &Value) -> Vec<f64> {
    // Differences of the integers, then scaled: float subtraction of scaled scores would break
    // ties (the reference's PITFALL entry).
    let s = f(&e["data"]["scale_divisor"]);
    let b = vecf(&e["data"]["baseline_int"]);
    let c = vecf(&e["data"]["candidate_int"]);
    c.iter().zip(&b).map(|(c, b)| (c - b) / s).collect()
}

#[test]
fn paired_t_and_noninferiority_match_scipy() {
    let r = reference();
    for key in ["C1_judge_n15_ties_zeros", "C2_judge_n10_no_ties"] {
        let e = &r[key];
        let d = diffs(e);
        let t = continuous::paired_t(&d, 0.95);
        close(t.mean, f(&e["mean_diff"]), CLOSED);
        close(t.sd, f(&e["sd_diff_ddof1"]), CLOSED);
        close(t.se, f(&e["se_diff"]), CLOSED);
        close(t.t, f(&e["paired_t"]["t"]), CLOSED);
        close(t.p_two_sided, f(&e["paired_t"]["p_two_sided"]), ITERATIVE);
        close(t.ci.lower, f(&e["paired_t"]["ci95"][0]), ITERATIVE);
        close(t.ci.upper, f(&e["paired_t"]["ci95"][1]), ITERATIVE);
        let t90 = continuous::paired_t(&d, 0.90);
        close(t90.ci.lower, f(&e["paired_t"]["ci90"][0]), ITERATIVE);
        close(t90.ci.upper, f(&e["paired_t"]["ci90"][1]), ITERATIVE);
        for (k, ni) in e["non_inferiority_t"].as_object().unwrap() {
            let margin: f64 = k.trim_start_matches("margin_").parse().unwrap();
            let (tt, p) = continuous::t_noninferiority(&d, margin);
            close(tt, f(&ni["t"]), CLOSED);
            close(p, f(&ni["one_sided_p"]), ITERATIVE);
            let shifted: Vec<f64> = d.iter().map(|x| x + margin).collect();
            let sf = continuous::sign_flip(&shifted, 0, 0);
            assert!(sf.exact);
            close(sf.p_greater, f(&ni["sign_flip_exact_one_sided_p"]), CLOSED);
            let decision = if t90.ci.lower > -margin {
                "PASS"
            } else if t90.ci.upper < -margin {
                "FAIL"
            } else {
                "INCONCLUSIVE"
            };
            assert_eq!(decision, ni["gate_decision_from_t_90pct_ci"]);
        }
    }
}

#[test]
fn wilcoxon_matches_scipy_for_every_zero_method() {
    let r = reference();
    for key in ["C1_judge_n15_ties_zeros", "C2_judge_n10_no_ties"] {
        let e = &r[key];
        let d = diffs(e);
        let w = &e["wilcoxon_signed_rank"];
        for (name, zm) in [
            ("wilcox", ZeroMethod::Wilcox),
            ("pratt", ZeroMethod::Pratt),
            ("zsplit", ZeroMethod::Zsplit),
        ] {
            for corr in [false, true] {
                let x = &w[format!("asymptotic_{name}_correction_{corr}")];
                let got = continuous::wilcoxon(&d, zm, corr, Some(WilcoxonMethod::Normal));
                assert_eq!(got.method, WilcoxonMethod::Normal);
                close(got.t_plus, f(&x["T_plus"]), CLOSED);
                close(got.null_mean, f(&x["null_mean"]), CLOSED);
                close(got.null_sd, f(&x["null_sd_tie_corrected"]), CLOSED);
                close(got.z, f(&x["z_scipy"]), CLOSED);
                close(got.p_two_sided, f(&x["p_two_sided"]), ITERATIVE);
                close(got.p_greater, f(&x["p_one_sided_greater"]), ITERATIVE);
            }
            let x = &w[format!("exact_conditional_permutation_{name}")];
            let got = continuous::wilcoxon(&d, zm, false, None);
            assert_eq!(
                got.method,
                WilcoxonMethod::Exact,
                "small n: exact by default"
            );
            close(got.p_two_sided, f(&x["p_two_sided"]), CLOSED);
            close(got.p_greater, f(&x["p_one_sided_greater"]), CLOSED);
        }
    }
}

#[test]
fn sign_flip_matches_scipy_permutation_test() {
    let r = reference();
    for key in ["C1_judge_n15_ties_zeros", "C2_judge_n10_no_ties"] {
        let e = &r[key];
        let s = continuous::sign_flip(&diffs(e), 0, 0);
        let x = &e["sign_flip_permutation_mean"];
        assert_eq!(s.patterns, x["n_sign_patterns"].as_u64().unwrap());
        close(s.p_two_sided, f(&x["exact_two_sided_p"]), CLOSED);
        close(s.p_greater, f(&x["exact_one_sided_greater_p"]), CLOSED);
        close(s.p_less, f(&x["exact_one_sided_less_p"]), CLOSED);
    }
    // Monte Carlo above 20 cases: close to the exact answer of a known case.
    let d: Vec<f64> = (0..30)
        .map(|i| if i % 3 == 0 { -0.1 } else { 0.1 })
        .collect();
    let mc = continuous::sign_flip(&d, 200_000, 42);
    assert!(!mc.exact);
    // Exact: 20 positives and 10 negatives of equal size; P(S ≥ 10·0.1) by the binomial.
    let exact = statrs_binomial_ge(30, 20);
    assert!(
        (mc.p_greater - exact).abs() < 0.005,
        "{} vs {exact}",
        mc.p_greater
    );
}

fn statrs_binomial_ge(n: u64, k: u64) -> f64 {
    use statrs::distribution::{Binomial, DiscreteCDF};
    1.0 - Binomial::new(0.5, n).unwrap().cdf(k - 1)
}

#[test]
fn bootstrap_agrees_with_scipy_across_seeds() {
    let r = reference();
    for key in ["C1_judge_n15_ties_zeros", "C2_judge_n10_no_ties"] {
        let e = &r[key];
        let d = diffs(e);
        let x = &e["bootstrap_mean_diff"];
        let ideal_se = f(&x["ideal_bootstrap_se_of_mean"]);
        for seed in 0..5u64 {
            let b = bootstrap::paired_bootstrap(&d, None, 10_000, 0.95, seed);
            assert!(
                (b.se - ideal_se).abs() < 0.05 * ideal_se,
                "{key}: se {} vs ideal {ideal_se}",
                b.se
            );
            for (method, got) in [("percentile", b.percentile), ("BCa", b.bca)] {
                let lows: Vec<f64> = x[method]["seeds_0_to_4_[low,high,se]"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| f(&v[0]))
                    .collect();
                let highs: Vec<f64> = x[method]["seeds_0_to_4_[low,high,se]"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| f(&v[1]))
                    .collect();
                let (lo_min, lo_max) = (
                    lows.iter().cloned().fold(f64::MAX, f64::min),
                    lows.iter().cloned().fold(f64::MIN, f64::max),
                );
                let (hi_min, hi_max) = (
                    highs.iter().cloned().fold(f64::MAX, f64::min),
                    highs.iter().cloned().fold(f64::MIN, f64::max),
                );
                // Within the seeds' spread, give or take 0.01 on the score scale.
                assert!(
                    got.lower >= lo_min - 0.01 && got.lower <= lo_max + 0.01,
                    "{key} {method} lower {}",
                    got.lower
                );
                assert!(
                    got.upper >= hi_min - 0.01 && got.upper <= hi_max + 0.01,
                    "{key} {method} upper {}",
                    got.upper
                );
            }
        }
    }
}

#[test]
fn bootstrap_is_reproducible_whatever_the_thread_count() {
    let d: Vec<f64> = (0..500)
        .map(|i| ((i * 37) % 11) as f64 / 10.0 - 0.4)
        .collect();
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| bootstrap::paired_bootstrap(&d, None, 2_000, 0.90, 99))
    };
    let (a, b, c) = (run(1), run(2), run(7));
    assert_eq!(a, b);
    assert_eq!(a, c);
    // And a different seed gives a different (but close) answer.
    let other = bootstrap::paired_bootstrap(&d, None, 2_000, 0.90, 100);
    assert_ne!(a.percentile, other.percentile);
}

#[test]
fn clustered_errors_and_repeats_match_statsmodels() {
    let r = reference();
    let e = &r["K1_clustered_k3"];
    let draws =
        |k: &str| -> Vec<Vec<f64>> { e["data"][k].as_array().unwrap().iter().map(vecf).collect() };
    let b = stats::per_case_means(&draws("baseline_draws"));
    let c = stats::per_case_means(&draws("candidate_draws"));
    for (got, want) in b.iter().zip(vecf(&e["per_case_mean_baseline"])) {
        close(*got, want, CLOSED);
    }
    let d: Vec<f64> = c.iter().zip(&b).map(|(c, b)| c - b).collect();
    close(stats::mean(&d), f(&e["mean_diff"]), CLOSED);
    let topic: Vec<u64> = e["data"]["case_cluster"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    close(
        stats::clustered_se(&d, &topic),
        f(&e["se_cluster_by_topic_on_case_means"]["se_with_C_over_C_minus_1"]),
        CLOSED,
    );
    close(
        stats::clustered_se(&d, &topic),
        f(&e["statsmodels_OLS_cluster_topic_on_case_means"]),
        CLOSED,
    );
    // Each case its own cluster: the case-level standard error.
    let own: Vec<usize> = (0..d.len()).collect();
    close(
        stats::clustered_se(&d, &own),
        f(&e["se_case_level_per_case_means_ddof1"]),
        CLOSED,
    );
    // A single cluster: no correction possible, a clear NaN the gate turns into an error.
    assert!(stats::clustered_se(&d, &vec![0u8; d.len()]).is_nan());
}

#[test]
fn budgets_match_the_reference() {
    let r = reference();
    let e = &r["L1_latency_cost_n12"];
    let (lb, lc) = (
        vecf(&e["data"]["latency_ms_baseline"]),
        vecf(&e["data"]["latency_ms_candidate"]),
    );
    let (cb, cc) = (
        vecf(&e["data"]["cost_usd_baseline"]),
        vecf(&e["data"]["cost_usd_candidate"]),
    );
    let cost = budgets::cost_budget(&cc, &cb, f(&e["cost"]["budget_plus_pct"]), 0.95);
    close(cost.mean_excess, f(&e["cost"]["mean_e"]), 1e-7);
    close(cost.t, f(&e["cost"]["t"]), 1e-7);
    close(cost.p, f(&e["cost"]["one_sided_p"]), ITERATIVE);
    close(
        cost.upper_bound,
        f(&e["cost"]["t_95pct_upper_bound_mean_e"]),
        1e-6,
    );
    close(cost.ratio_of_means, f(&e["cost"]["ratio_of_means"]), CLOSED);
    assert!(cost.within);

    let lat = budgets::latency_p95(&lc, &lb, 0.95, 4_000, 1);
    close(
        lat.p95_baseline,
        f(&e["p95_latency"]["numpy_linear_type7_baseline"]),
        CLOSED,
    );
    close(
        lat.p95_candidate,
        f(&e["p95_latency"]["numpy_linear_type7_candidate"]),
        CLOSED,
    );
    close(lat.ratio, f(&e["p95_ratio_point_type7"]), CLOSED);
    assert_eq!(lat.min_n, e["p95_distribution_free_95pct_upper_bound_candidate"]["min_n_for_max_to_be_95pct_ucb_of_p95"].as_u64().unwrap() as usize);
    assert!(
        !lat.supported,
        "n = 12 is below the size where a bound exists"
    );
    let mut sorted = lc.clone();
    sorted.sort_by(f64::total_cmp);
    assert_eq!(budgets::quantile_upper_bound(&sorted, 0.95, 0.95), None);
    let want = &e["p95_ratio_paired_bootstrap_percentile_95ci_seeds_0_1_2"][0];
    assert!(
        (lat.ratio_interval.lower - f(&want[0])).abs() < 0.05
            && (lat.ratio_interval.upper - f(&want[1])).abs() < 0.05,
        "{:?}",
        lat.ratio_interval
    );
}

#[test]
fn holm_matches_the_reference() {
    let r = reference();
    let e = &r["M1_holm"];
    let adj = stats::holm(&vecf(&e["p_values"]));
    for (a, want) in adj.iter().zip(vecf(&e["holm_adjusted"])) {
        close(*a, want, CLOSED);
    }
    let reject: Vec<bool> = adj.iter().map(|p| *p <= 0.05).collect();
    let want: Vec<bool> = e["reject_at_0.05"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_bool().unwrap())
        .collect();
    assert_eq!(reject, want);
}

#[test]
fn floors_and_inverse_cdfs_round_trip() {
    // Clopper–Pearson goes through statrs' Beta inverse CDF (a generic solver): check it.
    use statrs::distribution::{Beta, ContinuousCDF};
    for (x, n) in [(1u64, 10u64), (45, 50), (99, 100), (7, 8)] {
        let lb = binary::clopper_pearson_lower(x, n, 0.95);
        let beta = Beta::new(x as f64, (n - x + 1) as f64).unwrap();
        close(beta.cdf(lb), 0.05, 1e-9);
        assert!(lb < x as f64 / n as f64);
        let w = binary::wilson_lower(x, n, 0.95);
        assert!(w > 0.0 && w < x as f64 / n as f64);
    }
    assert_eq!(binary::clopper_pearson_lower(0, 10, 0.95), 0.0);
    // Against SciPy (tests/data/make_extra_reference.py).
    let extra: Value =
        serde_json::from_str(include_str!("data/stats_extra_reference.json")).unwrap();
    for e in extra["clopper_pearson_lower"].as_array().unwrap() {
        let (x, n) = (e["x"].as_u64().unwrap(), e["n"].as_u64().unwrap());
        close(
            binary::clopper_pearson_lower(x, n, 0.95),
            f(&e["lower_95_one_sided"]),
            ITERATIVE,
        );
    }
    for e in extra["wilson_lower"].as_array().unwrap() {
        let (x, n) = (e["x"].as_u64().unwrap(), e["n"].as_u64().unwrap());
        close(
            binary::wilson_lower(x, n, 0.95),
            f(&e["lower_95_one_sided"]),
            CLOSED,
        );
    }
    for p in [0.001, 0.05, 0.5, 0.975, 0.999] {
        close(stats::norm_cdf(stats::norm_ppf(p)), p, 1e-9);
        close(stats::t_cdf(stats::t_ppf(p, 7.0), 7.0), p, 1e-9);
    }
}

#[test]
fn power_formulas_are_consistent() {
    // With n = cases_needed(σ, δ), an identical candidate passes with the requested power.
    let (sd, margin, alpha) = (0.35, 0.05, 0.05);
    let n = power::cases_needed(sd, margin, alpha, 0.8);
    let p = power::pass_probability(n, sd, margin, alpha, 0.0);
    assert!((0.8..0.81).contains(&p), "n = {n}, p = {p}");
    // The MDE at that n is (just under) the margin.
    let mde = power::minimum_detectable_effect(n, sd, alpha, 0.8);
    assert!(mde <= margin && mde > 0.99 * margin, "{mde}");
    // With 100 cases an identical prompt passes rarely.
    assert!(power::pass_probability(100, sd, margin, alpha, 0.0) < 0.5);
    close(power::binary_sd_diff(0.1, 0.1), (0.2f64).sqrt(), CLOSED);
}

#[test]
fn edge_cases_never_produce_nan_intervals() {
    // No discordant pairs: Tango's interval still has width (Wald's would collapse to 0).
    let c = PairedCounts {
        n11: 30,
        n10: 0,
        n01: 0,
        n00: 10,
    };
    let t = binary::tango_interval(&c, 0.90);
    assert!(
        t.lower < 0.0 && t.upper > 0.0 && t.lower.is_finite() && t.upper.is_finite(),
        "{t:?}"
    );
    assert_eq!(binary::mcnemar_exact(&c).two_sided, 1.0);
    // All pass on both sides, and all fail.
    for c in [
        PairedCounts {
            n11: 20,
            ..Default::default()
        },
        PairedCounts {
            n00: 20,
            ..Default::default()
        },
    ] {
        let t = binary::tango_interval(&c, 0.90);
        assert!(
            t.lower.is_finite() && t.upper.is_finite() && t.lower < 0.0 && t.upper > 0.0,
            "{t:?}"
        );
        let (n, _) = binary::newcombe_interval(&c, 0.90);
        assert!(n.lower.is_finite() && n.upper.is_finite());
    }
    // Candidate always better: the upper end reaches 1 cleanly.
    let c = PairedCounts {
        n10: 20,
        ..Default::default()
    };
    let t = binary::tango_interval(&c, 0.90);
    assert!(t.lower > 0.0 && t.upper <= 1.0);
    // Continuous: all zero differences.
    let z = vec![0.0; 12];
    let t = continuous::paired_t(&z, 0.90);
    assert_eq!((t.ci.lower, t.ci.upper, t.p_two_sided), (0.0, 0.0, 1.0));
    let w = continuous::wilcoxon(&z, ZeroMethod::Wilcox, false, None);
    assert_eq!(w.p_two_sided, 1.0);
    let s = continuous::sign_flip(&z, 0, 0);
    assert_eq!(s.p_two_sided, 1.0);
    let b = bootstrap::paired_bootstrap(&z, None, 500, 0.9, 1);
    assert_eq!((b.bca.lower, b.bca.upper), (0.0, 0.0));
    // n = 0.
    let t = continuous::paired_t(&[], 0.90);
    assert!(t.mean.is_nan() && t.p_two_sided == 1.0);
    assert_eq!(continuous::sign_flip(&[], 0, 0).p_two_sided, 1.0);
}

/// The guard's always-valid boundary against `confseq`, the implementation of Howard et al.
/// (2021) by its authors (`tests/data/make_sequential_reference.py`): 72 points over α, the
/// planned time and the time looked at.
#[test]
fn the_normal_mixture_boundary_matches_confseq() {
    use promptgate_core::stats::sequential::{normal_mixture_bound, z_boundary};
    let r: Value =
        serde_json::from_str(include_str!("data/stats_sequential_reference.json")).unwrap();
    let cases = r["normal_mixture_two_sided"].as_array().unwrap();
    assert_eq!(cases.len(), 72);
    for c in cases {
        let (v, alpha, v_opt) = (f(&c["v"]), f(&c["alpha"]), f(&c["v_opt"]));
        close(normal_mixture_bound(v, alpha, v_opt), f(&c["bound"]), 1e-9);
        close(z_boundary(v, alpha, v_opt), f(&c["bound"]) / v.sqrt(), 1e-9);
    }
}
