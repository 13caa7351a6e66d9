//! The storage seam: what every backend of the registry provides — the files of a Git
//! repository ([`crate::FileStore`]) now, a database shared by a fleet of `serve` replicas next.
//!
//! **Synchronous, by decision.** Every operation is a handful of small reads or one
//! compare-and-swap; none is on a hot path (`serve` answers from an in-memory snapshot and only
//! reloads through the store). The file store blocks by nature (advisory locks, fsync), and so
//! does a database client behind a pool. A synchronous trait keeps the CLI and the tests free of
//! a runtime and the trait object-safe without boxing futures; async callers (`serve`) run its
//! calls where blocking is allowed (`spawn_blocking`).
//!
//! Every implementation must pass the conformance suite in `tests/store.rs` of the facade
//! crate: resolution, compare-and-swap under races, the audit chain, and crash consistency
//! where it applies.

use promptgate_core::artifact::Loaded;
use promptgate_core::error::Result;
use promptgate_core::rollout::Rollouts;
use promptgate_core::signals::Signals;

use crate::audit::{Entry, Log};
use crate::{LabelMove, NewVersion, Prompt, Registered, VersionEntry};

/// What may have changed in a store, for a reader that keeps a copy (`serve`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Something of this prompt: a registration, a label move, an edited file.
    Prompt(String),
    /// Anything (a new prompt, a notice that names nothing): look at every prompt.
    Any,
}

/// Change notices, delivered for as long as this lives.
pub struct Subscription {
    /// Why notices cannot arrive (for the log); `None` while they do.
    pub why_not: Option<String>,
    _guard: Option<Box<dyn Send>>,
}

impl Subscription {
    /// Notices arrive while `guard` lives.
    pub fn live(guard: Box<dyn Send>) -> Subscription {
        Subscription {
            why_not: None,
            _guard: Some(guard),
        }
    }

    /// No notices: the store cannot tell, for the reason given.
    pub fn none(why: impl Into<String>) -> Subscription {
        Subscription {
            why_not: Some(why.into()),
            _guard: None,
        }
    }

    /// Whether notices arrive as things change. If not, the subscriber polls
    /// [`Store::change_stamp`].
    pub fn is_live(&self) -> bool {
        self.why_not.is_none()
    }
}

/// Called with each change notice, from a thread of the store's.
pub type OnChange = Box<dyn Fn(Change) + Send + Sync>;

/// Where versions, labels and the audit log of a repository's prompts are kept.
/// A duty held by one caller of a store ([`Store::try_lead`]); dropping it hands the duty on.
pub struct Lease(#[allow(dead_code)] Box<dyn Send + Sync>);

impl Lease {
    pub fn new(held: impl Send + Sync + 'static) -> Lease {
        Lease(Box::new(held))
    }
}

impl std::fmt::Debug for Lease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Lease")
    }
}

pub trait Store: Send + Sync + std::fmt::Debug {
    /// Where the store is, for messages (a folder, a database URL without its password).
    fn location(&self) -> String;

    /// Whether every write is refused (a bundle): callers may say so before trying.
    fn read_only(&self) -> bool {
        false
    }

    /// Every prompt with at least one registration, sorted by name.
    fn prompt_names(&self) -> Result<Vec<String>>;

    /// A prompt's state: versions, labels and splits, and how far into its audit log that is.
    /// Only history that verifies (chain and signatures) is part of it. An unknown prompt is
    /// an error naming the prompts there are.
    fn prompt(&self, name: &str) -> Result<Prompt>;

    /// A registered version's content, checked against its registered hash.
    fn load_version(&self, prompt: &Prompt, v: &VersionEntry) -> Result<Loaded>;

    /// Register versions from their content, in order, each with its audit entry: all or none.
    /// `explicit` says the caller named them (a version already registered is then an error;
    /// otherwise it is skipped). A version whose content is already registered is refused.
    fn register(
        &self,
        name: &str,
        versions: Vec<NewVersion>,
        explicit: bool,
        actor: &str,
    ) -> Result<Vec<Registered>>;

    /// Move a label by compare-and-swap against `m.expect`, with its chained (and, with a
    /// signing key, signed) audit entry, as one operation: either both happen or neither.
    /// A lost race is a conflict error naming the label's current target.
    fn move_label(&self, m: &LabelMove) -> Result<Entry>;

    /// The audit log for a reader that has seen its first `from` entries: the chain verified
    /// in full, the signatures of the entries from `from` on and of the last one (which vouches
    /// for the chain before it). `log.entries[..log.valid]` is the verified history.
    fn audit_from(&self, name: &str, from: usize) -> Result<Log>;

    /// A token that changes whenever anything of prompt `name` changes — a registration, a
    /// label move, an edited file — for reloaders that poll (`serve`). By default the head of
    /// its audit log.
    fn change_stamp(&self, name: &str) -> String {
        self.prompt(name)
            .map(|p| format!("{}:{}", p.audit.entries, p.audit.head))
            .unwrap_or_default()
    }

    /// Tell `notify` what may have changed, as it changes, for as long as the subscription
    /// lives: the file store watches its folders (file events), a database store would listen
    /// for its own notices. A store that cannot tell returns a subscription that is not live.
    fn subscribe(&self, notify: OnChange) -> Subscription {
        let _ = notify;
        Subscription::none("this store sends no change notices")
    }

    /// The production signals last saved by `serve` (empty when none were).
    fn load_signals(&self) -> Result<Signals> {
        Ok(Signals::default())
    }

    /// Keep the signals, replacing what was kept: whole or not at all. A store that cannot
    /// (a bundle) says so; `serve` then holds them in memory only.
    fn save_signals(&self, signals: &Signals) -> Result<()> {
        let _ = signals;
        Err(promptgate_core::error::Error::usage(format!(
            "{} cannot keep production signals",
            self.location()
        )))
    }

    /// Lead a duty that must run in one place only (the rollout guard): `Some` while this
    /// caller holds it — until the lease is dropped, or the process dies, when another may take
    /// it —, `None` while someone else does. A store that cannot coordinate never grants it.
    fn try_lead(&self, duty: &str) -> Result<Option<Lease>> {
        let _ = duty;
        Ok(None)
    }

    /// The guarded rollouts (empty when there are none).
    fn rollouts(&self) -> Result<Rollouts> {
        Ok(Rollouts::default())
    }

    /// Change the rollouts as one operation against concurrent changers (the CLI and the
    /// guard): read, `change`, write — or nothing written if `change` fails. Returns them as
    /// written.
    fn update_rollouts(
        &self,
        change: &mut dyn FnMut(&mut Rollouts) -> Result<()>,
    ) -> Result<Rollouts> {
        let _ = change;
        Err(promptgate_core::error::Error::usage(format!(
            "{} cannot keep rollouts",
            self.location()
        )))
    }

    /// The audit log with every signature verified (`check`, `log`).
    fn audit(&self, name: &str) -> Result<Log> {
        self.audit_from(name, 0)
    }
}
