//! Promotion rules, stated once for every caller (the CLI's `promote` and `rollback`, `serve`,
//! a rollout guard): what a promotion moves a label to — the candidate alone, or a canary
//! split with the label's stable version — and what it is gated against; and where a rollback
//! returns a label to. Targets are typed values, never text to be parsed back.

use promptgate_core::error::{Error, Result, list_names};

use crate::audit::{Action, Entry};
use crate::{Expect, LabelMove, MoveTo, Prompt, Store, Target};

/// What promoting a version under a label means, before anything is run or moved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Promotion {
    /// What the label points at now (`None`: it does not exist yet).
    pub current: Option<Target>,
    /// What the move must find (compare-and-swap): exactly the current target.
    pub expect: Expect,
    /// The version the candidate is gated against and, for a canary, shares the traffic with:
    /// the current target's largest other version (a split in progress keeps its stable side).
    pub stable: Option<String>,
    /// Where the label goes.
    pub target: Target,
}

/// Why a promotion may move its label: a gate admitted it, or a person skipped the gate (an
/// emergency, recorded as such).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Evidence {
    /// The gate's run id and the SHA-256 of its JSON report.
    Gate { run: String, report_digest: String },
    /// No gate ran.
    Skipped,
}

impl Promotion {
    /// The label move that carries out this promotion: compare-and-swap against the target it
    /// was planned (and gated) against, audited as a promotion with its evidence.
    pub fn label_move(
        &self,
        prompt: &str,
        label: &str,
        actor: &str,
        reason: String,
        evidence: Evidence,
    ) -> LabelMove {
        let (gate_run, report_digest, skip_gate) = match evidence {
            Evidence::Gate { run, report_digest } => (Some(run), Some(report_digest), false),
            Evidence::Skipped => (None, None, true),
        };
        LabelMove {
            prompt: prompt.to_string(),
            label: label.to_string(),
            target: MoveTo::Exactly(self.target.clone()),
            expect: self.expect.clone(),
            actor: actor.to_string(),
            reason,
            action: Action::Promote,
            gate_run,
            report_digest,
            skip_gate,
        }
    }
}

/// A rollback, as asked for.
#[derive(Debug, Clone)]
pub struct Rollback {
    pub prompt: String,
    pub label: String,
    /// Where to: a version selector; `None` for where the label was before its last move.
    pub to: Option<String>,
    /// What the caller saw the label point at (`serve`'s `If-Match`); `None`: whatever it
    /// points at when the rollback is planned.
    pub expect: Option<Expect>,
    pub actor: String,
    pub reason: String,
}

/// Roll a label back — no gate: a rollback must be instant — by compare-and-swap against its
/// current target, audited as a rollback. The target is `r.to`, or from the label's verified
/// audit history (see [`rollback_target`]): a forged move is no rollback target.
pub fn rollback(store: &dyn Store, r: &Rollback) -> Result<Entry> {
    let prompt = store.prompt(&r.prompt)?;
    let Some(current) = prompt.labels.get(&r.label).cloned() else {
        let known: Vec<&String> = prompt.labels.keys().collect();
        return Err(
            Error::not_found(format!("`{}` has no label `{}`", prompt.name, r.label))
                .with_hint(format!("its labels: {}", list_names(&known))),
        );
    };
    let target = match &r.to {
        Some(t) => MoveTo::Selector(t.clone()),
        None => {
            let log = store.audit(&prompt.name)?;
            MoveTo::Exactly(rollback_target(
                &prompt.name,
                &r.label,
                &log.entries[..log.valid],
            )?)
        }
    };
    store.move_label(&LabelMove {
        prompt: prompt.name.clone(),
        label: r.label.clone(),
        target,
        expect: r.expect.clone().unwrap_or(Expect::Is(current)),
        actor: r.actor.clone(),
        reason: r.reason.clone(),
        action: Action::Rollback,
        gate_run: None,
        report_digest: None,
        skip_gate: false,
    })
}

/// Promote version `candidate` of `prompt` under `label`, wholly or as a canary taking
/// `canary` percent of the traffic (1–99).
pub fn promotion(
    prompt: &Prompt,
    label: &str,
    candidate: &str,
    canary: Option<u32>,
) -> Result<Promotion> {
    if let Some(p) = canary.filter(|p| !(1..=99).contains(p)) {
        return Err(Error::usage(format!(
            "a canary takes 1 to 99 percent of the traffic, not {p}"
        ))
        .with_hint("promote without `--canary` to move all of it"));
    }
    let current = prompt.labels.get(label).cloned();
    if current.as_ref().and_then(Target::single) == Some(candidate) {
        return Err(Error::usage(format!(
            "`{}@{label}` already points at `{candidate}`: nothing to promote",
            prompt.name
        )));
    }
    let stable: Option<String> = current.as_ref().and_then(|t| match t {
        Target::One(v) => Some(v.clone()),
        Target::Split(parts) => parts
            .iter()
            .filter(|(v, _)| v != candidate)
            .max_by_key(|(_, w)| *w)
            .map(|(v, _)| v.clone()),
    });
    let target = match (canary, &stable) {
        (Some(p), Some(s)) => Target::split(vec![(candidate.to_string(), p), (s.clone(), 100 - p)])
            .map_err(|e| Error::usage(format!("a canary of {p} %: {e}")))?,
        (Some(_), None) => {
            return Err(Error::usage(format!(
                "label `{label}` of `{}` does not exist yet: a canary needs a version to share the traffic with",
                prompt.name
            ))
            .with_hint(format!(
                "create it with `promptgate label set {} {label} VERSION --expect none -m \"…\"`",
                prompt.name
            )));
        }
        (None, _) => Target::One(candidate.to_string()),
    };
    let expect = current.clone().map(Expect::Is).unwrap_or(Expect::Absent);
    Ok(Promotion {
        current,
        expect,
        stable,
        target,
    })
}

/// What the rollout guard does to its label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GuardMove {
    /// The canary at this weight (percent), the rest on the stable version.
    Weight(u8),
    /// The canary alone.
    Finish,
    /// The stable version alone.
    RollBack,
}

/// Who the guard's moves are by, in the audit log.
pub const GUARD_ACTOR: &str = "promptgate-guard";

/// The split a rollout's label is at with the canary at `weight` percent (100: the canary
/// alone, 0: the stable version alone).
pub fn rollout_target(canary: &str, stable: &str, weight: u8) -> Result<Target> {
    match weight {
        0 => Ok(Target::One(stable.to_string())),
        100.. => Ok(Target::One(canary.to_string())),
        w => Target::split(vec![
            (canary.to_string(), u32::from(w)),
            (stable.to_string(), 100 - u32::from(w)),
        ])
        .map_err(|e| Error::usage(format!("a canary of {w} %: {e}"))),
    }
}

/// The guard's label move: from the split the rollout left the label at (compare-and-swap: a
/// label someone else moved is not overwritten), audited by [`GUARD_ACTOR`] with the reason and
/// the SHA-256 of the evidence (the look it decided on). A rollback is audited as one.
pub fn guard_move(
    prompt: &str,
    label: &str,
    (canary, stable, weight): (&str, &str, u8),
    to: GuardMove,
    reason: String,
    evidence_digest: String,
) -> Result<LabelMove> {
    let (target, action) = match to {
        GuardMove::Weight(w) => (rollout_target(canary, stable, w)?, Action::Promote),
        GuardMove::Finish => (Target::One(canary.to_string()), Action::Promote),
        GuardMove::RollBack => (Target::One(stable.to_string()), Action::Rollback),
    };
    Ok(LabelMove {
        prompt: prompt.to_string(),
        label: label.to_string(),
        target: MoveTo::Exactly(target),
        expect: Expect::Is(rollout_target(canary, stable, weight)?),
        actor: GUARD_ACTOR.to_string(),
        reason,
        action,
        gate_run: None,
        report_digest: Some(evidence_digest),
        skip_gate: false,
    })
}

/// Where rolling `label` of `prompt` back goes, from its verified audit history `entries`:
/// the target before its last move — and from a canary, or from a version a canary rolled
/// out, the single version the split started from.
pub fn rollback_target(prompt: &str, label: &str, entries: &[Entry]) -> Result<Target> {
    let mut moves = entries
        .iter()
        .rev()
        .filter(|e| e.label.as_deref() == Some(label));
    let last = moves.next().ok_or_else(|| {
        Error::usage(format!("the audit log has no move of `{prompt}@{label}`"))
            .with_hint("name the target with `--to VERSION`")
    })?;
    let mut from = last.from.clone();
    while let Some(Target::Split(_)) = from {
        from = moves.find(|e| e.to == from).and_then(|e| e.from.clone());
    }
    from.ok_or_else(|| {
        Error::usage(format!(
            "`{prompt}@{label}` was created by its last move (audit #{}): there is no previous target",
            last.seq
        ))
        .with_hint("name the target with `--to VERSION`")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::{Action, GENESIS};
    use crate::{AuditHead, VersionEntry};

    fn prompt(labels: &[(&str, Target)]) -> Prompt {
        Prompt {
            name: "p".into(),
            versions: (1..=3)
                .map(|n| VersionEntry {
                    id: format!("v{n}-000000{n}"),
                    number: n,
                    file: format!("v{n}.yaml"),
                    hash: format!("{n}"),
                })
                .collect(),
            labels: labels
                .iter()
                .map(|(l, t)| (l.to_string(), t.clone()))
                .collect(),
            audit: AuditHead::default(),
        }
    }

    fn one(v: &str) -> Target {
        Target::One(v.into())
    }

    #[test]
    fn a_canary_splits_with_the_stable_version_and_a_promotion_replaces_it() {
        let p = prompt(&[("production", one("v1"))]);
        let plain = promotion(&p, "production", "v2", None).unwrap();
        assert_eq!(plain.target, one("v2"));
        assert_eq!(plain.stable.as_deref(), Some("v1"));
        assert_eq!(plain.expect, Expect::Is(one("v1")));
        let canary = promotion(&p, "production", "v2", Some(10)).unwrap();
        assert_eq!(
            canary.target,
            Target::split(vec![("v2".into(), 10), ("v1".into(), 90)]).unwrap()
        );
        // Growing a canary keeps the stable side.
        let p = prompt(&[("production", canary.target.clone())]);
        let more = promotion(&p, "production", "v2", Some(50)).unwrap();
        assert_eq!(more.stable.as_deref(), Some("v1"));
        assert_eq!(more.target.weight_of("v2"), 50);
        // Nothing to do, and nothing to share with.
        let p = prompt(&[("production", one("v2"))]);
        assert!(promotion(&p, "production", "v2", None).is_err());
        for bad in [0, 100, 250] {
            assert!(
                promotion(&p, "production", "v3", Some(bad)).is_err(),
                "{bad}"
            );
        }
        let e = promotion(&p, "canary", "v2", Some(10))
            .unwrap_err()
            .to_string();
        assert!(e.contains("does not exist yet"), "{e}");
        let fresh = promotion(&p, "staging", "v2", None).unwrap();
        assert_eq!((fresh.expect, fresh.stable), (Expect::Absent, None));
    }

    fn entry(seq: u64, from: Option<Target>, to: Option<Target>) -> Entry {
        Entry {
            seq,
            ts: "2026-12-01T00:00:00Z".into(),
            actor: "a".into(),
            action: Action::LabelSet,
            prompt: "p".into(),
            label: Some("production".into()),
            from,
            to,
            file: None,
            version_hash: None,
            reason: Some("r".into()),
            gate_run: None,
            report_digest: None,
            skip_gate: false,
            prev: GENESIS.into(),
            hash: String::new(),
            sig: None,
        }
    }

    #[test]
    fn a_rollback_returns_to_the_version_a_canary_started_from() {
        let split = Target::split(vec![("v2".into(), 10), ("v1".into(), 90)]).unwrap();
        let log = [
            entry(1, None, Some(one("v1"))),
            entry(2, Some(one("v1")), Some(split.clone())),
            entry(3, Some(split.clone()), Some(one("v2"))),
        ];
        // From v2 (rolled out by the canary): back to v1, not to the split.
        assert_eq!(rollback_target("p", "production", &log).unwrap(), one("v1"));
        // From the canary itself: v1.
        assert_eq!(
            rollback_target("p", "production", &log[..2]).unwrap(),
            one("v1")
        );
        // A label created by its only move has nowhere to go back to.
        let e = rollback_target("p", "production", &log[..1])
            .unwrap_err()
            .to_string();
        assert!(e.contains("no previous target"), "{e}");
        let e = rollback_target("p", "staging", &log)
            .unwrap_err()
            .to_string();
        assert!(e.contains("no move of `p@staging`"), "{e}");
    }
}
