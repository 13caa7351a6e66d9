//! The store conformance suite: what every [`Store`] must do, run against each backend — the
//! file store here. Resolution of names, labels, numbers and hash prefixes; registration from
//! content; compare-and-swap label moves under a race (exactly one winner, the others told the
//! current target); the audit chain (one entry per change, linked, read from any point); and
//! crash consistency where the backend has a crash window (the file store's log ahead of its
//! checkpoint).

use std::path::Path;
use std::sync::{Arc, Barrier};

use promptgate::ErrorKind;
use promptgate::registry::{
    Change, Expect, FileStore, LabelMove, NewVersion, Ref, Store, Target, audit::Action,
    signing::Trust,
};

use crate::support::version_yaml;

/// A backend under test: a fresh, empty store, and what can be done to it from outside.
trait Backend {
    fn store(&self) -> Arc<dyn Store>;
    /// Undo the last write's checkpoint, as a crash between its two writes would leave it
    /// (`None`: the backend has no such window).
    fn lose_last_checkpoint(&self, _prompt: &str) -> Option<()> {
        None
    }
}

struct Files {
    dir: tempfile::TempDir,
    store: Arc<FileStore>,
}

impl Files {
    fn new() -> Files {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(FileStore::new(
            dir.path().join("prompts"),
            dir.path(),
            "prompts",
            Trust::default(),
        ));
        Files { dir, store }
    }
}

impl Backend for Files {
    fn store(&self) -> Arc<dyn Store> {
        self.store.clone()
    }

    fn lose_last_checkpoint(&self, prompt: &str) -> Option<()> {
        // The audit log is written first, registry.yaml second: a crash between them leaves
        // the log one entry ahead. Rebuild that state by dropping the last move from the
        // registry file and rewinding its checkpoint.
        let dir = self.dir.path().join("prompts").join(prompt);
        let reg_path = dir.join("registry.yaml");
        let text = std::fs::read_to_string(&reg_path).ok()?;
        let reg = promptgate::registry::parse_registry(&reg_path, &text).ok()?;
        let log_text = std::fs::read_to_string(dir.join("audit.jsonl")).ok()?;
        let log = promptgate::registry::audit::parse(Path::new("audit.jsonl"), &log_text);
        let before = &log.entries[..log.entries.len() - 1];
        let old = promptgate::registry::replay(prompt, before);
        let bytes: usize = log_text
            .lines()
            .take(before.len())
            .map(|l| l.len() + 1)
            .sum();
        let mut rewound = promptgate::registry::file::RegistryFile::of(&old, bytes as u64);
        rewound.prompt = reg.prompt;
        std::fs::write(&reg_path, serde_yaml_ng::to_string(&rewound).ok()?).ok()?;
        // Really behind: the file alone no longer shows the last change.
        let behind = promptgate::registry::parse_registry(
            &reg_path,
            &std::fs::read_to_string(&reg_path).ok()?,
        )
        .ok()?;
        let full = promptgate::registry::replay(prompt, &log.entries);
        assert_ne!(
            behind.into_prompt(prompt).0.labels,
            full.labels,
            "the rewind did nothing"
        );
        Some(())
    }
}

fn backends() -> Vec<(&'static str, Box<dyn Backend>)> {
    vec![("file", Box::new(Files::new()))]
}

fn version(n: usize) -> NewVersion {
    NewVersion::parse(
        format!("v{n}.yaml"),
        version_yaml(&format!("You are assistant number {n}."), 0.0),
    )
}

fn register(store: &dyn Store, prompt: &str, n: usize) -> String {
    let out = store
        .register(prompt, vec![version(n)], true, "tester")
        .unwrap_or_else(|e| panic!("register v{n}: {e}"));
    assert_eq!(out.len(), 1);
    out[0].id.clone()
}

fn set(
    store: &dyn Store,
    prompt: &str,
    label: &str,
    to: &str,
    expect: Expect,
) -> promptgate::Result<promptgate::registry::audit::Entry> {
    store.move_label(&LabelMove::set(
        prompt, label, to, expect, "tester", "because",
    ))
}

/// `p` with v1 and v2 registered, and `production` moved to v1, then to v2.
fn two_versions_and_two_moves(store: &dyn Store) -> (String, String) {
    let v1 = register(store, "p", 1);
    let v2 = register(store, "p", 2);
    set(store, "p", "production", &v1, Expect::Absent).unwrap();
    set(store, "p", "production", &v2, Expect::Version(v1.clone())).unwrap();
    (v1, v2)
}

#[test]
fn a_store_resolves_names_labels_numbers_and_hash_prefixes() {
    for (name, b) in backends() {
        let store = b.store();
        assert_eq!(
            store.prompt_names().unwrap(),
            Vec::<String>::new(),
            "{name}"
        );
        let v1 = register(&*store, "support", 1);
        let v2 = register(&*store, "support", 2);
        register(&*store, "billing/refunds", 1);
        assert_eq!(
            store.prompt_names().unwrap(),
            ["billing/refunds", "support"],
            "{name}"
        );
        set(&*store, "support", "production", &v1, Expect::Absent).unwrap();

        let p = store.prompt("support").unwrap();
        assert_eq!(p.versions.len(), 2, "{name}");
        assert_eq!(p.labels["production"], Target::One(v1.clone()), "{name}");
        assert_eq!(p.audit.entries, 3, "{name}: two registrations and a move");
        let by = |sel: &str| p.resolve(Some(sel)).map(|(v, _)| v.id.clone());
        assert_eq!(by("production").unwrap(), v1, "{name}");
        assert_eq!(by("v2").unwrap(), v2, "{name}");
        assert_eq!(by(&v2).unwrap(), v2, "{name}");
        assert_eq!(by(&p.versions[1].hash[..12]).unwrap(), v2, "{name}");
        assert_eq!(p.resolve(None).unwrap().0.id, v2, "{name}: latest");
        assert!(by("staging").is_err(), "{name}");

        // The content comes back as registered, checked against its hash.
        let loaded = store.load_version(&p, &p.versions[0]).unwrap();
        assert_eq!(loaded.hash, p.versions[0].hash, "{name}");

        // An unknown prompt names the ones there are.
        let e = store.prompt("suport").unwrap_err().to_string();
        assert!(e.contains("no prompt named `suport`"), "{name}: {e}");
        assert!(e.contains("did you mean `support`"), "{name}: {e}");
        // A reference parses the same for every store.
        assert_eq!(Ref::parse("support@production").unwrap().prompt, "support");
    }
}

#[test]
fn a_store_registers_content_once() {
    for (name, b) in backends() {
        let store = b.store();
        register(&*store, "p", 1);
        // The same content again, under another name: nothing new.
        let again = NewVersion::parse(
            "copy.yaml",
            version_yaml("You are assistant number 1.", 0.0),
        );
        let e = store
            .register("p", vec![again], true, "tester")
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Usage, "{name}");
        assert!(e.to_string().contains("same content"), "{name}: {e}");
        // A batch with a bad version registers none of it.
        let bad = NewVersion::parse("bad.yaml", "model: [".to_string());
        assert!(
            store
                .register("p", vec![version(2), bad], true, "tester")
                .is_err(),
            "{name}"
        );
        assert_eq!(
            store.prompt("p").unwrap().versions.len(),
            1,
            "{name}: all or none"
        );
        // Numbers follow on.
        let id = register(&*store, "p", 3);
        assert!(id.starts_with("v2-"), "{name}: {id}");
    }
}

#[test]
fn a_label_move_is_compare_and_swap_with_one_winner() {
    for (name, b) in backends() {
        let store = b.store();
        let v1 = register(&*store, "p", 1);
        let v2 = register(&*store, "p", 2);
        set(&*store, "p", "production", &v1, Expect::Absent).unwrap();

        // A stale expectation is a conflict that names the current target.
        let e = set(&*store, "p", "production", &v2, Expect::Absent).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Conflict, "{name}");
        assert!(e.to_string().contains(&v1), "{name}: {e}");
        assert_eq!(
            e.current(),
            Some(Some(v1.as_str())),
            "{name}: the conflict carries the target"
        );

        // Sixteen movers expecting v1: exactly one wins, fifteen are told it moved.
        let racers = 16;
        let barrier = Arc::new(Barrier::new(racers));
        let movers: Vec<_> = (0..racers)
            .map(|_| {
                let (store, barrier, v1, v2) =
                    (store.clone(), barrier.clone(), v1.clone(), v2.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    set(&*store, "p", "production", &v2, Expect::Version(v1)).map(|_| ())
                })
            })
            .collect();
        let outcomes: Vec<_> = movers.into_iter().map(|t| t.join().unwrap()).collect();
        let won = outcomes.iter().filter(|o| o.is_ok()).count();
        let lost = outcomes
            .iter()
            .filter(|o| matches!(o, Err(e) if e.kind() == ErrorKind::Conflict))
            .count();
        assert_eq!((won, lost), (1, racers - 1), "{name}: {outcomes:?}");
        let p = store.prompt("p").unwrap();
        assert_eq!(p.labels["production"], Target::One(v2.clone()), "{name}");
        // One entry per change: two registrations, two moves.
        let log = store.audit("p").unwrap();
        assert_eq!(log.entries.len(), 4, "{name}");
        assert_eq!(p.audit.entries, 4, "{name}");

        // Splits are targets like any other.
        set(
            &*store,
            "p",
            "production",
            &format!("{v1}:90,{v2}:10"),
            Expect::Version(v2.clone()),
        )
        .unwrap();
        let p = store.prompt("p").unwrap();
        assert_eq!(p.labels["production"].weight_of(&v2), 10, "{name}");
        // Moving to where it already is, or without a reason, is refused.
        let same = set(
            &*store,
            "p",
            "production",
            &format!("{v1}:90,{v2}:10"),
            Expect::Version(format!("{v1}:90,{v2}:10")),
        );
        assert!(same.is_err(), "{name}");
        let mut m = LabelMove::set("p", "production", v1.clone(), Expect::Absent, "tester", " ");
        m.expect = Expect::Version(format!("{v1}:90,{v2}:10"));
        assert!(
            store.move_label(&m).is_err(),
            "{name}: a move needs a reason"
        );
    }
}

#[test]
fn the_audit_chain_records_every_change_and_reads_from_any_point() {
    for (name, b) in backends() {
        let store = b.store();
        let (v1, v2) = two_versions_and_two_moves(&*store);
        let log = store.audit("p").unwrap();
        assert!(log.problems.is_empty(), "{name}: {:?}", log.problems);
        assert_eq!(log.valid, 4, "{name}");
        let actions: Vec<Action> = log.entries.iter().map(|e| e.action).collect();
        assert_eq!(
            actions,
            [
                Action::Register,
                Action::Register,
                Action::LabelSet,
                Action::LabelSet
            ],
            "{name}"
        );
        for (i, e) in log.entries.iter().enumerate() {
            assert_eq!(e.seq, i as u64 + 1, "{name}");
            assert_eq!(e.hash, e.compute_hash(), "{name}");
            if i > 0 {
                assert_eq!(e.prev, log.entries[i - 1].hash, "{name}: linked");
            }
        }
        assert_eq!(log.entries[3].from, Some(Target::One(v1.clone())), "{name}");
        assert_eq!(log.entries[3].to, Some(Target::One(v2.clone())), "{name}");
        assert_eq!(
            store.prompt("p").unwrap().audit.head,
            log.entries[3].hash,
            "{name}"
        );
        // Reading from a later point gives the same history.
        for from in 0..=4 {
            let tail = store.audit_from("p", from).unwrap();
            assert_eq!(tail.entries, log.entries, "{name}: from {from}");
            assert_eq!(tail.valid, 4, "{name}: from {from}");
        }
    }
}

#[test]
fn a_write_cut_short_by_a_crash_is_rolled_forward() {
    for (name, b) in backends() {
        let store = b.store();
        let (v1, v2) = two_versions_and_two_moves(&*store);
        if b.lose_last_checkpoint("p").is_none() {
            continue;
        }
        // Readers see the committed move, and the next writer builds on it.
        let p = store.prompt("p").unwrap();
        assert_eq!(p.labels["production"], Target::One(v2.clone()), "{name}");
        assert_eq!(p.audit.entries, 4, "{name}");
        let e = set(&*store, "p", "production", &v1, Expect::Version(v1.clone())).unwrap_err();
        assert_eq!(
            e.kind(),
            ErrorKind::Conflict,
            "{name}: the rolled-forward state is the current one"
        );
        set(&*store, "p", "production", &v1, Expect::Version(v2.clone())).unwrap();
        let log = store.audit("p").unwrap();
        assert!(log.problems.is_empty(), "{name}: {:?}", log.problems);
        assert_eq!(log.entries.len(), 5, "{name}");
    }
}

/// Wait for a notice naming `want`, up to 10 s; the notices before it.
fn notice(rx: &std::sync::mpsc::Receiver<Change>, want: &Change) -> Vec<Change> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut before = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(c) if &c == want => return before,
            Ok(c) => before.push(c),
            Err(_) => panic!("no notice {want:?} within 10 s; got {before:?}"),
        }
    }
}

#[test]
fn a_store_tells_a_subscriber_which_prompt_changed() {
    for (name, b) in backends() {
        let store = b.store();
        let v1 = register(&*store, "p", 1);
        register(&*store, "team/agent", 1);
        let (tx, rx) = std::sync::mpsc::channel();
        let subscription = store.subscribe(Box::new(move |c| {
            let _ = tx.send(c);
        }));
        assert!(
            subscription.is_live(),
            "{name}: no change notices: {:?}",
            subscription.why_not
        );
        // A registration under a nested name names that prompt, never its parent folder.
        register(&*store, "team/agent", 2);
        let before = notice(&rx, &Change::Prompt("team/agent".into()));
        assert!(
            !before.contains(&Change::Prompt("team".into())),
            "{name}: {before:?}"
        );
        // A label move names its prompt.
        std::thread::sleep(std::time::Duration::from_millis(50));
        while rx.try_recv().is_ok() {}
        set(&*store, "p", "production", &v1, Expect::Absent).unwrap();
        notice(&rx, &Change::Prompt("p".into()));
        // A prompt that did not exist before is news about everything or about itself.
        std::thread::sleep(std::time::Duration::from_millis(50));
        while rx.try_recv().is_ok() {}
        register(&*store, "fresh", 1);
        match rx.recv_timeout(std::time::Duration::from_secs(10)) {
            Ok(Change::Any) => {}
            Ok(Change::Prompt(p)) if p == "fresh" => {}
            other => panic!("{name}: a new prompt reported as {other:?}"),
        }
        drop(subscription);
    }
}

#[test]
fn a_rollback_through_the_promotion_service_is_compare_and_swap_and_audited() {
    use promptgate::registry::promotion::{Rollback, rollback};
    for (name, b) in backends() {
        let store = b.store();
        let (v1, v2) = two_versions_and_two_moves(&*store);
        let back = |to: Option<&str>, expect: Option<Expect>| Rollback {
            prompt: "p".into(),
            label: "production".into(),
            to: to.map(str::to_string),
            expect,
            actor: "oncall".into(),
            reason: "errors up".into(),
        };
        // What the caller saw is checked: a stale view moves nothing.
        let e = rollback(&*store, &back(None, Some(Expect::Version(v1.clone())))).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Conflict, "{name}: {e}");
        assert_eq!(e.current(), Some(Some(v2.as_str())), "{name}");
        // To the previous target, from the audit log.
        let entry = rollback(&*store, &back(None, None)).unwrap();
        assert_eq!(entry.action, Action::Rollback, "{name}");
        assert_eq!(
            (entry.from.clone(), entry.to.clone()),
            (Some(Target::One(v2.clone())), Some(Target::One(v1.clone()))),
            "{name}"
        );
        assert_eq!(entry.actor, "oncall", "{name}");
        assert_eq!(
            store.prompt("p").unwrap().labels["production"],
            Target::One(v1.clone()),
            "{name}"
        );
        // Or to a named version; an unknown label is not found, naming the labels there are.
        let entry = rollback(
            &*store,
            &back(Some("v2"), Some(Expect::Version(v1.clone()))),
        )
        .unwrap();
        assert_eq!(entry.to, Some(Target::One(v2.clone())), "{name}");
        let mut r = back(None, None);
        r.label = "staging".into();
        let e = rollback(&*store, &r).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotFound, "{name}: {e}");
        assert!(e.to_string().contains("production"), "{name}: {e}");
        let log = store.audit("p").unwrap();
        assert_eq!(
            log.valid, 6,
            "{name}: two rollbacks audited, the refusals not"
        );
    }
}

/// Production signals are kept whole across a restart (a new store over the same place reads
/// what the last one saved), and replaced whole by the next save.
#[test]
fn a_store_keeps_production_signals_across_a_restart() {
    use promptgate::signals::{Key, Observation, Signals};
    for (name, backend) in backends() {
        let store = backend.store();
        assert_eq!(store.load_signals().unwrap().window_count(), 0, "{name}");
        let key = Key {
            prompt: "p".into(),
            label: Some("canary".into()),
            version_id: "v2-abc".into(),
        };
        let mut s = Signals::tracking(["app.feedback.score".to_string()]);
        for i in 0..120 {
            s.record(
                &key,
                &Observation {
                    at_unix_s: 1_800_000_000 + i,
                    call: true,
                    error: i % 4 == 0,
                    latency_ms: Some(i as f64),
                    metrics: vec![("app.feedback.score".into(), 1.0)],
                    ..Observation::default()
                },
            );
        }
        store.save_signals(&s).unwrap();
        let again = backend.store().load_signals().unwrap();
        let (a, b) = (s.since(&key, 0), again.since(&key, 0));
        assert_eq!((b.calls, b.errors), (120, 30), "{name}");
        assert_eq!(a.latency_quantile(0.95), b.latency_quantile(0.95), "{name}");
        assert_eq!(b.metrics["app.feedback.score"].n, 120, "{name}");
        store.save_signals(&Signals::default()).unwrap();
        assert_eq!(store.load_signals().unwrap().window_count(), 0, "{name}");
    }
}

/// A duty (the rollout guard) is led by one holder at a time, and handed on when it lets go.
#[test]
fn a_duty_has_one_leader_at_a_time() {
    for (name, backend) in backends() {
        let store = backend.store();
        let first = store.try_lead("rollout-guard").unwrap();
        assert!(first.is_some(), "{name}");
        assert!(
            backend.store().try_lead("rollout-guard").unwrap().is_none(),
            "{name}"
        );
        assert!(store.try_lead("another-duty").unwrap().is_some(), "{name}");
        drop(first);
        assert!(
            backend.store().try_lead("rollout-guard").unwrap().is_some(),
            "{name}"
        );
    }
}

#[test]
fn a_bundle_is_a_read_only_store_that_reads_like_the_store_it_was_written_from() {
    use promptgate::bundle::{Bundle, BundleStore};
    let files = Files::new();
    let source = files.store();
    two_versions_and_two_moves(&*source);
    register(&*source, "billing/refunds", 1);
    let path = files.dir.path().join("bundle.json");
    Bundle::read(&*source).unwrap().write(&path).unwrap();
    let bundle = BundleStore::open(&path).unwrap();

    assert!(bundle.read_only() && !source.read_only());
    assert_eq!(
        bundle.prompt_names().unwrap(),
        source.prompt_names().unwrap()
    );
    for name in source.prompt_names().unwrap() {
        let (a, b) = (source.prompt(&name).unwrap(), bundle.prompt(&name).unwrap());
        assert_eq!((&a.labels, &a.audit), (&b.labels, &b.audit), "{name}");
        let ids = |p: &promptgate::registry::Prompt| -> Vec<(String, String)> {
            p.versions
                .iter()
                .map(|v| (v.id.clone(), v.hash.clone()))
                .collect()
        };
        assert_eq!(ids(&a), ids(&b), "{name}");
        for (va, vb) in a.versions.iter().zip(&b.versions) {
            let (la, lb) = (
                source.load_version(&a, va).unwrap(),
                bundle.load_version(&b, vb).unwrap(),
            );
            assert_eq!((la.hash, la.artifact), (lb.hash, lb.artifact), "{name}");
        }
    }
    let p = bundle.prompt("p").unwrap();
    assert_eq!(
        p.resolve(Some("production")).unwrap().0.id,
        p.versions[1].id
    );
    // A version the bundle does not hold under the hash asked for is refused, not served.
    let mut forged = p.versions[0].clone();
    forged.hash = p.versions[1].hash.clone();
    assert!(bundle.load_version(&p, &forged).is_err());
    let e = bundle.prompt("pp").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    assert!(e.to_string().contains("did you mean `p`"), "{e}");

    // A bundle keeps no signals (serve holds them in memory only).
    assert!(bundle.save_signals(&Default::default()).is_err());
    assert_eq!(bundle.load_signals().unwrap().window_count(), 0);

    // Writes are refused, saying why and what to do; nothing is ever announced.
    let e = register(&*source, "p", 3);
    let refused = bundle
        .register("p", vec![version(3)], true, "tester")
        .unwrap_err()
        .to_string();
    assert!(
        refused.contains("read-only") && refused.contains("promptgate bundle"),
        "{refused}"
    );
    let moved = set(&bundle, "p", "production", &e, Expect::Absent).unwrap_err();
    assert_eq!(moved.kind(), ErrorKind::Usage, "{moved}");
    assert!(!bundle.subscribe(Box::new(|_| {})).is_live());
}
