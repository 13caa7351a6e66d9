//! Run promptgate's stub OpenAI-compatible server until killed, e.g. to try `promptgate eval`
//! without an API key: `cargo run --example stub_server -- --latency-ms 50`.
//! It prints its base URL; point a provider's `base_url` at it.

use std::time::Duration;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let latency = args
        .iter()
        .position(|a| a == "--latency-ms")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let server = promptgate_stub::Server::start(promptgate_stub::Config {
        latency: Duration::from_millis(latency),
        record: false,
        ..promptgate_stub::Config::default()
    })
    .expect("start the stub server");
    println!("{}", server.base_url());
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}
