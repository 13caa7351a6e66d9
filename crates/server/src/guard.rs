//! The rollout guard: every few seconds, for each active rollout in the store, it compares the
//! canary's signals with the stable version's ([`promptgate_core::rollout::decide`]) and acts —
//! advances the split, finishes, rolls back, or pauses — through the same compare-and-swap
//! label move and audit chain as every other move, by `promptgate-guard`, with the SHA-256 of
//! the look it decided on. A label someone else moved meanwhile is never overwritten: the
//! rollout is aborted and says who moved it. One guard per store: on the file store, the one
//! `serve` over the repository.

use promptgate_core::artifact::canonical;
use promptgate_core::rollout::{self, Action, Look, Policy, Rollout, Status};
use promptgate_core::signals::Key;
use promptgate_registry::promotion::{self, GuardMove};

use crate::state::App;

/// What one look at one rollout did, for the log.
#[derive(Debug, Clone, PartialEq)]
pub struct Acted {
    pub prompt: String,
    pub label: String,
    pub action: Action,
    /// The label move's audit sequence number, if it moved.
    pub moved: Option<u64>,
}

/// Look at every active rollout once, at `now_unix_s`, and act.
pub fn tick(app: &App, policy: &Policy, now_unix_s: u64) -> Vec<Acted> {
    let Ok(rollouts) = app.store.rollouts() else {
        return Vec::new();
    };
    let mut acted = Vec::new();
    for r in rollouts.rollouts.iter().filter(|r| r.active()) {
        if let Some(a) = look_and_act(app, policy, r, now_unix_s) {
            acted.push(a);
        }
    }
    acted
}

fn look_and_act(app: &App, policy: &Policy, r: &Rollout, now: u64) -> Option<Acted> {
    let key = |version: &str| Key {
        prompt: r.prompt.clone(),
        label: Some(r.label.clone()),
        version_id: version.to_string(),
    };
    let (canary, stable, step_calls) = {
        let signals = app.signals.lock().ok()?;
        let canary = signals.since(&key(&r.canary), r.progress.started_unix_s);
        let stable = signals.since(&key(&r.stable), r.progress.started_unix_s);
        let step_calls = signals
            .since(&key(&r.canary), r.progress.step_started_unix_s)
            .calls;
        (canary, stable, step_calls)
    };
    let (action, looks) = rollout::decide(policy, &r.progress, &canary, &stable, step_calls, now);
    let look = Look {
        at_unix_s: now,
        action: serde_json::to_value(&action).unwrap_or_default(),
        metrics: serde_json::to_value(&looks).unwrap_or_default(),
    };
    let digest = serde_json::to_value(&look)
        .ok()
        .and_then(|v| canonical::to_canonical_string(&v).ok())
        .map(|t| canonical::sha256_hex(t.as_bytes()))
        .unwrap_or_default();
    let weight = r.weight(policy);
    let to = match &action {
        Action::Hold { .. } | Action::Pause { .. } => None,
        Action::Advance { weight } => Some(GuardMove::Weight(*weight)),
        Action::Finish => Some(GuardMove::Finish),
        Action::RollBack { .. } => Some(GuardMove::RollBack),
    };
    let mut moved = None;
    let mut aborted = None;
    if let Some(to) = to {
        let reason = match &action {
            Action::RollBack { why } => format!("rollout guard: regression: {why}"),
            Action::Advance { weight: w } => {
                format!("rollout guard: within tolerance at {weight} %, to {w} %")
            }
            _ => format!("rollout guard: within tolerance at {weight} %, finished"),
        };
        let m = promotion::guard_move(
            &r.prompt,
            &r.label,
            (&r.canary, &r.stable, weight),
            to,
            reason,
            digest,
        )
        .ok()?;
        match app.store.move_label(&m) {
            Ok(entry) => {
                moved = Some(entry.seq);
                app.reload(Some(&r.prompt), true);
            }
            Err(e) if e.kind() == promptgate_core::ErrorKind::Conflict => {
                aborted = Some(format!("the label was moved by someone else: {e}"));
            }
            // Tried again at the next look.
            Err(e) => {
                eprintln!(
                    "promptgate serve: the rollout guard could not move {}@{}: {e}",
                    r.prompt, r.label
                );
                return None;
            }
        }
    }
    let (prompt, label) = (r.prompt.clone(), r.label.clone());
    let recorded = action.clone();
    let _ = app.store.update_rollouts(&mut |all| {
        let Some(r) = all.get_mut(&prompt, &label) else {
            return Ok(());
        };
        r.last_look = Some(look.clone());
        if let Some(why) = &aborted {
            r.status = Status::Aborted { why: why.clone() };
            return Ok(());
        }
        match &recorded {
            Action::Hold { .. } => {}
            Action::Advance { .. } => {
                r.progress.step += 1;
                r.progress.step_started_unix_s = now;
            }
            Action::Finish => r.status = Status::Finished,
            Action::RollBack { why } => r.status = Status::RolledBack { why: why.clone() },
            Action::Pause { why } => r.status = Status::Paused { why: why.clone() },
        }
        Ok(())
    });
    Some(Acted {
        prompt: r.prompt.clone(),
        label: r.label.clone(),
        action,
        moved,
    })
}
