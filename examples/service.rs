//! A service that takes its prompt from `promptgate serve` at runtime: the `production` label of
//! `support_agent`, assigned per user when the label is a canary split, rendered locally, with
//! the prompt's identity on the service's own spans.
//!
//! ```text
//! promptgate -C examples/support serve --listen 127.0.0.1:7070 &
//! cargo run --example service -- http://127.0.0.1:7070 user-42 "Where is my invoice?"
//! ```
//!
//! Stop the server and run it again: the answer comes from the last-known-good copy on disk.

use std::time::Duration;

use promptgate::client::Client;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let mut args = std::env::args().skip(1);
    let server = args
        .next()
        .unwrap_or_else(|| "http://127.0.0.1:7070".into());
    let user = args.next().unwrap_or_else(|| "user-42".into());
    let question = args.next().unwrap_or_else(|| "Where is my invoice?".into());

    let client = match Client::builder(&server)
        .cache_dir(std::env::temp_dir().join("promptgate-example-service"))
        .timeout(Duration::from_millis(500))
        .build()
    {
        Ok(c) => c,
        Err(e) => return eprint!("{e}"),
    };
    // Every request of the service does this: a memory lookup after the first time.
    let prompt = match client.get("support_agent", "production", Some(&user)).await {
        Ok(p) => p,
        Err(e) => return eprint!("{e}"),
    };
    let vars = serde_json::json!({ "question": question });
    let request = match prompt.render(vars.as_object().expect("an object")) {
        Ok(r) => r,
        Err(e) => return eprint!("{e}"),
    };
    // What the service would put on its span around the model call.
    for (k, v) in prompt.span_attributes() {
        println!("span attribute {k} = {v}");
    }
    println!(
        "{} messages for {} ({} on {})",
        request.messages.len(),
        request.model,
        prompt.version_id,
        user
    );
    if let Some(last) = request.messages.last() {
        println!("last message: {}", last.content);
    }
}
