//! The progress bar: an [`engine::Observer`](crate::engine::Observer) drawn with indicatif on
//! stderr, hidden when stderr is not a terminal or under `--quiet`.

use super::printer::{Printer, note};
use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::engine::{Event, Observer};

pub struct Bar {
    pr: Printer,
    pb: ProgressBar,
    errors: AtomicU64,
    retries: AtomicU64,
}

impl Bar {
    pub fn new(pr: Printer, quiet: bool) -> Bar {
        let visible = !quiet && std::io::stderr().is_terminal();
        let pb = ProgressBar::with_draw_target(
            Some(0),
            if visible {
                ProgressDrawTarget::stderr()
            } else {
                ProgressDrawTarget::hidden()
            },
        );
        pb.set_style(
            ProgressStyle::with_template(
                "{spinner} [{bar:30}] {pos}/{len} calls  {per_sec}  ETA {eta}  {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        if visible {
            pb.enable_steady_tick(Duration::from_millis(120));
        }
        Bar {
            pr,
            pb,
            errors: AtomicU64::new(0),
            retries: AtomicU64::new(0),
        }
    }

    fn refresh(&self) {
        self.pb.set_message(format!(
            "errors {}  retries {}",
            self.errors.load(Ordering::Relaxed),
            self.retries.load(Ordering::Relaxed)
        ));
    }

    pub fn finish(&self) {
        self.pb.finish_and_clear();
    }
}

impl Observer for Bar {
    fn on_event(&self, event: &Event<'_>) {
        match event {
            Event::Started {
                total,
                already_done,
            } => {
                self.pb.set_length(*total as u64);
                self.pb.set_position(*already_done as u64);
                self.refresh();
            }
            Event::Finished(r) => {
                if !r.is_ok() {
                    self.errors.fetch_add(1, Ordering::Relaxed);
                    self.refresh();
                }
                self.pb.inc(1);
            }
            Event::Cached { count } => self.pb.inc(*count as u64),
            Event::Retrying { .. } => {
                self.retries.fetch_add(1, Ordering::Relaxed);
                self.refresh();
            }
            Event::Draining { in_flight } => {
                self.pb.suspend(|| {
                    note!(self.pr, "interrupted: finishing {in_flight} call(s) in flight and writing results (Ctrl-C again to abort)");
                });
            }
        }
    }
}
