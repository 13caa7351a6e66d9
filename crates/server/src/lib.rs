//! promptgate-server — `promptgate serve`: the registry over HTTP — prompts by label (sticky canary splits), by id
//! or hash, rendering, compare-and-swap label moves and registration with bearer tokens, a
//! server-sent-events stream of changes, hot reload from disk, health and Prometheus metrics.
//!
//! The served state is an immutable [`Snapshot`] behind an `Arc`: a request clones the `Arc`
//! and never waits for a reload. A watcher follows the store's change notices (the file
//! store's file events) and reloads the prompts they name, with a full scan every few seconds
//! as a safety net, and polling where the store sends none.

pub mod auth;
mod guard;
mod handlers;
pub mod ingest;
pub mod metrics;
mod state;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Router;
use axum::http::StatusCode;
use axum::middleware;
use axum::routing::get;
use serde_json::json;
use tokio::sync::watch;

use auth::Auth;
use promptgate_core::error::{Error, Result};

use handlers::*;
pub use handlers::{ApiError, MoveBody, RollbackBody, parse_move_body};
use state::watch;
pub use state::{App, Change, Health, Options, SAFETY_SCAN, Served, Snapshot, Source};

/// Every route, as (method, path template). The OpenAPI document must list exactly these.
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", "/v1/prompts"),
    ("GET", "/v1/prompts/{name}"),
    ("GET", "/v1/prompts/{name}/versions/{version}"),
    ("POST", "/v1/prompts/{name}/versions"),
    ("GET", "/v1/prompts/{name}/render"),
    ("POST", "/v1/prompts/{name}/render"),
    ("PUT", "/v1/prompts/{name}/labels/{label}"),
    ("POST", "/v1/prompts/{name}/labels/{label}/rollback"),
    ("POST", "/v1/traces"),
    ("POST", "/v1/feedback"),
    ("GET", "/v1/signals"),
    ("GET", "/v1/events"),
    ("GET", "/healthz"),
    ("GET", "/metrics"),
    ("GET", "/openapi.json"),
];

/// How often changed production signals are saved.
pub const SIGNALS_SAVE: std::time::Duration = std::time::Duration::from_secs(5);

/// The OpenAPI 3 document (checked in as `docs/openapi.json`).
pub const OPENAPI: &str = include_str!("../../../docs/openapi.json");

/// The router over a loaded app.
pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/v1/prompts", get(list))
        .route("/v1/prompts/{name}", get(get_prompt))
        .route(
            "/v1/prompts/{name}/versions/{version}",
            get(get_version),
        )
        .route(
            "/v1/prompts/{name}/versions",
            axum::routing::post(post_version),
        )
        .route("/v1/prompts/{name}/render", get(render).post(render))
        .route(
            "/v1/prompts/{name}/labels/{label}",
            axum::routing::put(put_label),
        )
        .route(
            "/v1/prompts/{name}/labels/{label}/rollback",
            axum::routing::post(post_rollback),
        )
        .route(
            "/v1/traces",
            axum::routing::post(post_traces)
                .layer(axum::extract::DefaultBodyLimit::max(ingest::MAX_BODY)),
        )
        .route("/v1/feedback", axum::routing::post(post_feedback))
        .route("/v1/signals", get(get_signals))
        .route("/v1/events", get(events))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics_text))
        .route("/openapi.json", get(openapi))
        .fallback(|| async {
            error(
                StatusCode::NOT_FOUND,
                "no such route",
                json!({ "routes": ROUTES.iter().map(|(m, p)| format!("{m} {p}")).collect::<Vec<_>>() }),
            )
        })
        .layer(middleware::from_fn_with_state(app.clone(), track))
        .with_state(app)
}

/// Serve until SIGTERM or Ctrl-C. `ready` is called with the bound address.
pub async fn serve(
    source: Source,
    auth: Auth,
    opts: Options,
    ready: impl FnOnce(SocketAddr, &App),
) -> Result<()> {
    let (stop_tx, stop_rx) = watch::channel(false);
    let app = App::new(source, auth, stop_rx.clone())?;
    app.max_streams
        .store(opts.max_streams.max(1), Ordering::SeqCst);
    let listener = tokio::net::TcpListener::bind(&opts.listen)
        .await
        .map_err(|e| {
            Error::usage(format!("cannot listen on `{}`: {e}", opts.listen)).with_hint(
                "pick another address with `--listen HOST:PORT` (port 0 picks a free one)",
            )
        })?;
    let addr = listener
        .local_addr()
        .map_err(|e| Error::io(Path::new(&opts.listen), "listen on", e))?;
    ready(addr, &app);

    // The watcher: a thread, so reloads never hold up a request.
    if !app.store.read_only() {
        watch(app.clone(), opts.poll, stop_rx.clone());
    }
    // Signals are saved every few seconds when they changed (a crash loses at most that
    // much), and once more at shutdown.
    let saver = app.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(SIGNALS_SAVE);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let app = saver.clone();
            let _ = tokio::task::spawn_blocking(move || app.save_signals()).await;
        }
    });

    let shutdown = async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
            tokio::select! {
                _ = ctrl_c => {}
                _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
            }
        }
        #[cfg(not(unix))]
        {
            let _ = ctrl_c.await;
        }
        eprintln!("promptgate serve: shutting down");
        let _ = stop_tx.send(true);
    };
    // Answers are written whole: do not hold them back waiting for the peer's ACK (Nagle).
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp: &mut tokio::net::TcpStream| {
        let _ = tcp.set_nodelay(true);
    });
    // The rollout guard, over a repository (its policy is in promptgate.yaml).
    if let Some(policy) = app
        .repo
        .as_ref()
        .map(|r| r.config.rollout.clone().unwrap_or_default())
    {
        let guard = app.clone();
        let every = opts.guard_every;
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            // One guard per store: this server guards while it holds the lead, and tries for it
            // at every tick while another does (it takes over when that one stops).
            let lead: Arc<std::sync::Mutex<Option<promptgate_registry::Lease>>> =
                Default::default();
            loop {
                tick.tick().await;
                let (app, policy, lead) = (guard.clone(), policy.clone(), lead.clone());
                let _ = tokio::task::spawn_blocking(move || {
                    let Ok(mut held) = lead.lock() else { return };
                    if held.is_none() {
                        *held = app.store.try_lead("rollout-guard").ok().flatten();
                    }
                    app.guard_leading.store(held.is_some(), Ordering::SeqCst);
                    if held.is_none() {
                        return;
                    }
                    let now = promptgate_core::clock::now_unix_s();
                    for a in guard::tick(&app, &policy, now) {
                        if a.moved.is_some()
                            || !matches!(a.action, promptgate_core::rollout::Action::Hold { .. })
                        {
                            eprintln!(
                                "promptgate serve: rollout {}@{}: {}",
                                a.prompt,
                                a.label,
                                serde_json::to_string(&a.action).unwrap_or_default()
                            );
                        }
                    }
                })
                .await;
            }
        });
    }
    let last = app.clone();
    axum::serve(listener, router(app))
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(|e| Error::io(Path::new(&opts.listen), "serve on", e))?;
    tokio::task::spawn_blocking(move || last.save_signals())
        .await
        .ok();
    Ok(())
}
