//! Records the bundled example's cassette (`examples/support/cassettes/support_agent.jsonl`):
//! runs every version of `support_agent` over its golden dataset against promptgate's stub
//! server, whose scripted answers stand in for a model, and keeps the answers keyed by request
//! hash. The outputs are illustrative, not a real model's.
//!
//! Run it after changing the example's prompts or dataset, or how requests render:
//! `cargo run --example record_support_cassette`

use std::path::Path;
use std::sync::Arc;

use serde_json::{Value, json};

use promptgate::engine::session::{self, EvalRequest};
use promptgate::engine::{Interrupt, Silent};
use promptgate::registry::Repo;
use promptgate_stub::{self as stub, Answer, Server};

/// (case id, keyword in the question, a good answer, escalate?, category, what the terse v3 says)
const SCRIPT: &[(&str, &str, &str, bool, &str, &str)] = &[
    (
        "pw-reset",
        "forgot my password",
        "Use \"Forgot password\" on the sign-in page; we email you a reset link valid for 1 hour.",
        false,
        "account",
        "Click \"Forgot password\" to get a reset link.",
    ),
    (
        "2fa-lost",
        "2FA",
        "Sign in with one of your recovery codes, then register your new phone under Settings → Security.",
        false,
        "account",
        "Contact support to disable 2FA.",
    ),
    (
        "invoice-copy",
        "invoice",
        "Invoices are under Billing → Invoices; each can be downloaded as PDF.",
        false,
        "billing",
        "See Billing → Invoices.",
    ),
    (
        "double-charge",
        "charged my card twice",
        "I'm sorry about the double charge. I've flagged this for our billing team, who will refund the duplicate within 3 business days.",
        true,
        "billing",
        "Duplicate charges are refunded automatically.",
    ),
    (
        "refund",
        "refund",
        "Annual plans can be refunded pro rata for unused months; start the refund request under Billing → Plan.",
        false,
        "billing",
        "Request a refund under Billing → Plan.",
    ),
    (
        "outage",
        "instances are down",
        "I'm escalating this to our on-call engineers right now; please check the status page for live updates.",
        true,
        "outage",
        "We are escalating this to on-call; see the status page.",
    ),
    (
        "latency",
        "latency doubled",
        "Check the status page for incidents in your region; if none is listed, send us a request id and we'll investigate.",
        false,
        "outage",
        "Check the status page.",
    ),
    (
        "export",
        "export all my data",
        "Go to Settings → Data → Export to download a full export as a ZIP archive.",
        false,
        "account",
        "Use Settings → Data → Export.",
    ),
    (
        "delete-account",
        "delete my account",
        "I've passed your deletion request to our privacy team, who will confirm by email before deleting anything.",
        true,
        "account",
        "Go to Settings → Account → Delete account.",
    ),
    (
        "plan-upgrade",
        "upgrade from Starter to Pro",
        "Go to Billing → Plan and choose Pro; the price difference is prorated for this month.",
        false,
        "billing",
        "Choose Pro under Billing → Plan.",
    ),
    (
        "gdpr",
        "GDPR",
        "Your data is stored in the EU region you chose at sign-up. I'm forwarding this to our compliance team for a DPA.",
        true,
        "other",
        "Data is stored in the EU.",
    ),
    (
        "api-key",
        "rotate my API key",
        "Create a new key under Settings → API keys, update your clients, then revoke the old key.",
        false,
        "account",
        "Create a new API key and revoke the old one under Settings → API keys.",
    ),
];

fn respond(body: &Value) -> Answer {
    let messages = body["messages"].as_array().cloned().unwrap_or_default();
    let system = messages
        .iter()
        .find(|m| m["role"] == "system")
        .and_then(|m| m["content"].as_str())
        .unwrap_or("");
    let question = messages
        .iter()
        .rev()
        .find(|m| m["role"] == "user")
        .and_then(|m| m["content"].as_str())
        .unwrap_or("");
    let Some(&(_, _, good, escalate, category, terse)) =
        SCRIPT.iter().find(|s| question.contains(s.1))
    else {
        return Answer {
            content: "I'm not sure; let me connect you with a colleague.".into(),
            tool_calls: vec![],
        };
    };
    let content = if system.contains("Be concise") {
        // v3: terse, routed, and it stopped escalating what a human must handle.
        json!({"answer": terse, "category": category, "escalate": escalate && category == "outage"})
            .to_string()
    } else if system.contains("Reply as JSON") {
        json!({"answer": good, "escalate": escalate}).to_string()
    } else {
        good.to_string()
    };
    Answer {
        content,
        tool_calls: vec![],
    }
}

fn main() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/support");
    let server = Server::start(stub::Config {
        responder: Arc::new(respond),
        ..stub::Config::default()
    })
    .expect("stub server");
    // Work on a copy whose provider is the stub: request hashes do not depend on the provider.
    let work = tempfile::tempdir().expect("tempdir");
    promptgate::fsutil::copy_tree(&example, work.path(), &[".promptgate"])
        .expect("copy the example");
    std::fs::write(
        work.path().join("promptgate.yaml"),
        format!(
            "version: 1\nproviders:\n  stubbed: {{ kind: openai, base_url: {} }}\n",
            server.base_url()
        ),
    )
    .expect("config");
    let repo = Repo::open(work.path()).expect("repo");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let mut lines = Vec::new();
    for version in ["v1", "v2", "v3"] {
        let req = EvalRequest {
            reference: format!("support_agent@{version}"),
            provider: Some("stubbed".into()),
            no_cache: true,
            ..EvalRequest::default()
        };
        let prepared = session::prepare(&repo, &req).expect("prepare");
        let ev = rt
            .block_on(session::run(
                &repo,
                prepared,
                Arc::new(Silent),
                Arc::new(Interrupt::new()),
            ))
            .expect("run");
        assert_eq!(ev.summary.errors, 0);
        let mut records = ev.records;
        records.sort_by_key(|r| (r.line, r.sample));
        for r in records {
            lines.push(
                json!({
                    "version": version,
                    "case_id": r.case_id,
                    "sample": r.sample,
                    "request_hash": r.request_hash,
                    "output": r.output,
                })
                .to_string(),
            );
        }
    }
    let out = example.join("cassettes/support_agent.jsonl");
    std::fs::create_dir_all(out.parent().unwrap()).unwrap();
    std::fs::write(&out, lines.join("\n") + "\n").unwrap();
    println!("wrote {} recordings to {}", lines.len(), out.display());
}
