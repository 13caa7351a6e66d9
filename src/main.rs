//! The `promptgate` binary: parse arguments, run the command, map the result to an exit code.

use std::process::ExitCode;

use clap::Parser;
use promptgate::{ErrorKind, cli, exit_codes};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    let code = match cli::run(args) {
        Ok(outcome) => match outcome {
            cli::Outcome::Success => exit_codes::SUCCESS,
            cli::Outcome::Problems => exit_codes::USAGE,
            cli::Outcome::Infrastructure => exit_codes::INFRASTRUCTURE,
            cli::Outcome::Interrupted => exit_codes::INTERRUPTED,
            cli::Outcome::GateFail => exit_codes::GATE_FAIL,
            cli::Outcome::Inconclusive => exit_codes::INCONCLUSIVE,
        },
        Err(err) => {
            eprint!("{err}");
            match err.kind {
                ErrorKind::Usage => exit_codes::USAGE,
                ErrorKind::Conflict => exit_codes::CONFLICT,
                ErrorKind::Infrastructure => exit_codes::INFRASTRUCTURE,
            }
        }
    };
    ExitCode::from(code as u8)
}
