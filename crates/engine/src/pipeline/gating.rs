//! The gate: run the baseline and the candidate over the same suite (through the same cache,
//! so an unchanged baseline costs nothing), compare them and persist the decision and its
//! report into the candidate's run folder.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::{RunSide, Scoring, case_order, compare, power_before_run};
use crate::session::{self, EvalRequest, Prepared};
use crate::store::RunDir;
use crate::{Interrupt, Observer};
use promptgate_core::error::{Error, Result};
use promptgate_core::gate::{PowerNote, Verdict};
use promptgate_core::report::Report;
use promptgate_registry::{Ref, Repo};

/// What to gate.
#[derive(Debug, Clone, Default)]
pub struct GateRequest {
    /// The prompt both sides belong to.
    pub prompt: String,
    /// The candidate: a selector (`v3`) or a full reference (`support_agent@v3`).
    pub candidate: String,
    /// The baseline, likewise (usually a label such as `production`).
    pub baseline: String,
    /// Run options shared by both sides (`reference` is ignored).
    pub options: EvalRequest,
    /// Let breaking schema changes through.
    pub allow_breaking: bool,
}

/// `gate.json` in the candidate's run folder: the decision and where its evidence is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GateRecord {
    pub verdict: String,
    pub prompt: String,
    pub candidate: String,
    pub baseline: String,
    pub candidate_run: String,
    pub baseline_run: String,
    /// SHA-256 of `report.json` in the same folder.
    pub report_digest: String,
    pub decided_at: String,
}

/// Name of the decision file in a run folder.
pub const GATE_FILE: &str = "gate.json";
/// Name of the JSON report in a run folder.
pub const REPORT_FILE: &str = "report.json";

/// A gate ready to run: both sides planned, the suite's checks and policy parsed.
pub struct GatePlan {
    pub baseline: Prepared,
    pub candidate: Prepared,
    pub scoring: Scoring,
    pub baseline_ref: String,
    pub candidate_ref: String,
    /// The power note before any call, from the baseline's last scored run (if any).
    pub power: Vec<PowerNote>,
    allow_breaking: bool,
}

/// A decided gate.
pub struct GateOutcome {
    pub report: Report,
    /// SHA-256 of the JSON report written to the candidate's run folder.
    pub digest: String,
    pub candidate_run: RunDir,
    pub baseline_run: RunDir,
    /// The policy the gate applied (its `on_inconclusive` decides what a promotion does).
    pub policy: promptgate_core::gate::Policy,
    pub warnings: Vec<String>,
}

/// How a gate run ended.
pub enum GateResult {
    Decided(Box<GateOutcome>),
    /// Ctrl-C before every call was made; answers received so far are cached.
    Interrupted {
        missing: usize,
    },
}

fn full_ref(prompt: &str, r: &str) -> String {
    if r.contains('@') {
        r.to_string()
    } else {
        format!("{prompt}@{r}")
    }
}

impl GatePlan {
    /// Resolve both sides, load the suite, plan both runs and parse checks and policy: every
    /// problem that does not need a model is found here.
    pub fn prepare(repo: &Repo, req: &GateRequest) -> Result<GatePlan> {
        let candidate_ref = full_ref(&req.prompt, &req.candidate);
        let baseline_ref = full_ref(&req.prompt, &req.baseline);
        for r in [&candidate_ref, &baseline_ref] {
            let parsed = Ref::parse(r)?;
            if parsed.prompt != req.prompt {
                return Err(Error::usage(format!(
                    "`{r}` is not a version of `{}`: a gate compares two versions of one prompt",
                    req.prompt
                )));
            }
        }
        // Resolve both before creating any run folder.
        let (prompt, b, _) = repo.resolve(&Ref::parse(&baseline_ref)?)?;
        repo.resolve(&Ref::parse(&candidate_ref)?)?;
        let side = |reference: &str| EvalRequest {
            reference: reference.to_string(),
            resume: None,
            ..req.options.clone()
        };
        let candidate = session::plan_eval(repo, &side(&candidate_ref))?;
        let mut baseline = session::plan_eval(repo, &side(&baseline_ref))?;
        baseline.share_cases_with(&candidate);
        let baseline_name = format!("{}@{}", baseline.plan.prompt, baseline.plan.version_id);
        let scoring = Scoring::new(&candidate, &[(&baseline_name, &baseline.artifact)], repo)?;
        if scoring.is_empty() {
            return Err(Error::usage(format!(
                "the suite of `{}` has no checks: there is nothing to compare",
                prompt.name
            ))
            .with_hint(format!(
                "add `checks:` to {}",
                repo.suite_path(&prompt.name).display()
            )));
        }
        // Both sides are valid: now their run folders may exist.
        let candidate = candidate.start(repo)?;
        let baseline = baseline.start(repo)?;
        let power = power_before_run(
            &repo.state_dir(),
            &b.hash,
            candidate.plan.cases,
            &scoring.policy,
        );
        Ok(GatePlan {
            baseline,
            candidate,
            scoring,
            baseline_ref,
            candidate_ref,
            power,
            allow_breaking: req.allow_breaking,
        })
    }

    /// Run the baseline, then the candidate, then decide. With `gate.sequential`, both run
    /// over the cases in a seeded shuffled order, look by look, and stop when the decision is
    /// clear (see [`GatePlan::run_sequential`]).
    pub async fn run(
        self,
        repo: &Repo,
        observer: Arc<dyn Observer>,
        interrupt: Arc<Interrupt>,
    ) -> Result<GateResult> {
        let order = case_order(&self.candidate.plan);
        let t0 = Instant::now();
        let watch = (observer.clone(), interrupt.clone());
        let ran = match self.scoring.policy.sequential.clone() {
            None => self
                .run_both(None, &watch)
                .await?
                .map(|(rb, rc)| (rb, rc, None, self.policy_at(None), None)),
            Some(seq) => self.run_sequential(&seq, &order, &watch).await?,
        };
        let (records_b, records_c, only, policy, sequential) = match ran {
            Ok(r) => r,
            Err(stopped) => return Ok(stopped),
        };
        let wall = t0.elapsed();
        let base =
            session::finish(repo, self.baseline, records_b, false, wall, only.as_ref()).await?;
        let cand =
            session::finish(repo, self.candidate, records_c, false, wall, only.as_ref()).await?;
        let prompt = repo.prompt(&cand.manifest.prompt)?;
        let labels = |id: &str| -> Vec<String> {
            prompt
                .labels_of(id)
                .into_iter()
                .map(str::to_string)
                .collect()
        };
        let (scored_b, scored_c, pairwise) = super::score_pair(
            &self.scoring,
            to_score(&base.run, &base.records, &base.artifact),
            to_score(&cand.run, &cand.records, &cand.artifact),
            observer,
            interrupt,
        )
        .await?;
        let mut report = compare(
            "gate",
            &self.scoring,
            &policy,
            &run_side(&self.baseline_ref, &base, labels(&base.manifest.version_id)),
            &run_side(
                &self.candidate_ref,
                &cand,
                labels(&cand.manifest.version_id),
            ),
            (scored_b, scored_c),
            &order,
        )?;
        report.sequential = sequential;
        report.pairwise = pairwise;
        let digest = persist(&cand.run, &report)?;
        let mut warnings = base.warnings;
        warnings.extend(cand.warnings);
        Ok(GateResult::Decided(Box::new(GateOutcome {
            report,
            digest,
            candidate_run: cand.run,
            baseline_run: base.run,
            policy: self.scoring.policy.clone(),
            warnings,
        })))
    }

    /// The policy at look `look` of `looks` (the whole run: `None`), with `--allow-breaking`.
    fn policy_at(&self, look: Option<(usize, usize)>) -> promptgate_core::gate::Policy {
        let mut policy = match look {
            Some((k, looks)) => self.scoring.policy.at_look(k, looks),
            None => self.scoring.policy.clone(),
        };
        if self.allow_breaking {
            policy.allow_breaking = Some(true);
        }
        policy
    }

    /// Make the baseline's calls, then the candidate's (all, or only those of `only`): both
    /// sides' records, or how the gate stopped when one was interrupted.
    async fn run_both(
        &self,
        only: Option<&HashSet<String>>,
        (observer, interrupt): &Watched,
    ) -> Result<Ran<(Records, Records)>> {
        let mut out = Vec::with_capacity(2);
        for side in [&self.baseline, &self.candidate] {
            let (records, interrupted) =
                session::execute_cases(side, only, observer.clone(), interrupt.clone(), Vec::new())
                    .await?;
            if interrupted {
                return Ok(Err(interrupted_side(side, &records)));
            }
            out.push(records);
        }
        let candidate = out.pop().unwrap_or_default();
        let baseline = out.pop().unwrap_or_default();
        Ok(Ok((baseline, candidate)))
    }

    /// A sequential gate: look after look over a seeded shuffle of the cases, deciding at each
    /// (with the look's α) and stopping at the first look whose decision is clear.
    async fn run_sequential(
        &self,
        seq: &promptgate_core::gate::policy::SequentialPolicy,
        order: &[(String, Option<String>)],
        watch: &Watched,
    ) -> Result<Ran<Decidable>> {
        let mut ids: Vec<String> = Vec::with_capacity(order.len());
        let mut seen = HashSet::new();
        for (id, _) in order {
            if seen.insert(id.as_str()) {
                ids.push(id.clone());
            }
        }
        fastrand::Rng::with_seed(self.scoring.policy.seed()).shuffle(&mut ids);
        let sizes = seq.look_sizes(ids.len());
        let breaking = super::breaking_changes(&self.baseline.artifact, &self.candidate.artifact);
        for (k, &m) in sizes.iter().enumerate() {
            let only: HashSet<String> = ids[..m].iter().cloned().collect();
            let (rb, rc) = match self.run_both(Some(&only), watch).await? {
                Ok(both) => both,
                Err(stopped) => return Ok(Err(stopped)),
            };
            let policy = self.policy_at(Some((k, sizes.len())));
            let last = k + 1 == sizes.len();
            if !last {
                let (sb, sc, _) = super::score_pair(
                    &self.scoring,
                    to_score(&self.baseline.run, &rb, &self.baseline.artifact),
                    to_score(&self.candidate.run, &rc, &self.candidate.artifact),
                    watch.0.clone(),
                    watch.1.clone(),
                )
                .await?;
                let paired = super::pair(&self.scoring, (&rb, &sb), (&rc, &sc), order);
                let (d, _) = super::decide(&policy, paired, breaking.clone());
                if !promptgate_core::gate::stops_early(&d) {
                    continue;
                }
            }
            let total_calls = self.baseline.plan.calls.len() + self.candidate.plan.calls.len();
            let info = promptgate_core::report::Sequential {
                looks_planned: sizes.len(),
                stopped_at_look: k + 1,
                cases_used: m,
                cases_total: ids.len(),
                calls_saved: total_calls.saturating_sub(rb.len() + rc.len()),
                interim_alpha: seq.interim_alpha(),
                alpha_at_stop: policy.gated().first().map(|g| g.2).unwrap_or(0.0),
            };
            return Ok(Ok((rb, rc, (!last).then_some(only), policy, Some(info))));
        }
        Err(Error::usage("a sequential gate needs at least one case"))
    }
}

type Records = Vec<crate::store::Record>;
/// Who follows a gate: its progress, and Ctrl-C.
type Watched = (Arc<dyn Observer>, Arc<Interrupt>);
/// What a gate's runs gave, or how it stopped before deciding (interrupted).
type Ran<T> = std::result::Result<T, GateResult>;
/// Both sides' records, the cases a sequential gate stopped at (`None`: all), the policy to
/// decide with and how the sequential gate went.
type Decidable = (
    Records,
    Records,
    Option<HashSet<String>>,
    promptgate_core::gate::Policy,
    Option<promptgate_core::report::Sequential>,
);

fn run_side<'a>(reference: &str, ev: &'a session::Evaluation, labels: Vec<String>) -> RunSide<'a> {
    RunSide {
        reference: reference.to_string(),
        run: &ev.run,
        manifest: &ev.manifest,
        labels,
        records: &ev.records,
        artifact: &ev.artifact,
    }
}

fn to_score<'a>(
    run: &'a RunDir,
    records: &'a [crate::store::Record],
    artifact: &'a promptgate_core::artifact::Artifact,
) -> super::ToScore<'a> {
    super::ToScore {
        run,
        records,
        artifact,
        scored: None,
    }
}

/// An interrupted side: mark its manifest and say how many calls are missing.
fn interrupted_side(p: &Prepared, records: &[crate::store::Record]) -> GateResult {
    let mut m = p.manifest.clone();
    m.status = "interrupted".into();
    let _ = p.run.write_manifest(&m);
    GateResult::Interrupted {
        missing: p.plan.calls.len().saturating_sub(records.len()),
    }
}

/// Write `report.json` and `gate.json` into the candidate's run folder; returns the report's
/// SHA-256.
pub fn persist(run: &RunDir, report: &Report) -> Result<String> {
    // Streamed to the file through the hash of its bytes (the report digest).
    struct Hashing<'a> {
        inner: &'a mut dyn std::io::Write,
        hasher: &'a mut sha2::Sha256,
    }
    impl std::io::Write for Hashing<'_> {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            let n = self.inner.write(buf)?;
            sha2::Digest::update(self.hasher, &buf[..n]);
            Ok(n)
        }
        fn flush(&mut self) -> std::io::Result<()> {
            self.inner.flush()
        }
    }
    let mut hasher = <sha2::Sha256 as sha2::Digest>::new();
    promptgate_core::fsutil::write_atomic_with(&run.path.join(REPORT_FILE), |w| {
        report.write_json(&mut Hashing {
            inner: w,
            hasher: &mut hasher,
        })
    })?;
    let digest = promptgate_core::artifact::canonical::hex(&sha2::Digest::finalize(hasher));
    let record = GateRecord {
        verdict: promptgate_core::report::verdict_word(report.decision.verdict).to_string(),
        prompt: report.prompt.clone(),
        candidate: report.candidate.version_id.clone(),
        baseline: report.baseline.version_id.clone(),
        candidate_run: report.candidate.run_id.clone(),
        baseline_run: report.baseline.run_id.clone(),
        report_digest: digest.clone(),
        decided_at: report.generated_at.clone(),
    };
    let text = serde_json::to_vec_pretty(&record).unwrap_or_default();
    promptgate_core::fsutil::write_atomic(&run.path.join(GATE_FILE), &text)?;
    Ok(digest)
}

/// Whether a verdict lets a promotion through under the policy.
pub fn admits(verdict: Verdict, policy: &promptgate_core::gate::Policy) -> bool {
    match verdict {
        Verdict::Pass => true,
        Verdict::Inconclusive => {
            policy.on_inconclusive == Some(promptgate_core::gate::OnInconclusive::Allow)
        }
        Verdict::Fail | Verdict::Invalid => false,
    }
}
