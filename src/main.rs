//! The `promptgate` binary: parse arguments, run the command, map the result to an exit code.

use std::process::ExitCode;

use clap::Parser;
use promptgate::{ErrorKind, cli, exit_codes};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A command whose reader went away (`promptgate list | head -1`) ends quietly, as other
/// Unix tools do, instead of panicking on the failed write: SIGPIPE gets its default action
/// back (Rust ignores it at start). Not for `serve`, whose sockets report a closed peer as an
/// error to handle.
fn quiet_on_closed_stdout(command: &cli::Command) {
    #[cfg(unix)]
    if !matches!(command, cli::Command::Serve(_)) {
        // SAFETY: setting a signal's disposition to the default has no preconditions.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    #[cfg(not(unix))]
    let _ = command;
}

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    quiet_on_closed_stdout(&args.command);
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
            eprint!("{}", promptgate::redact::text(&err.to_string()));
            match err.kind {
                ErrorKind::Usage => exit_codes::USAGE,
                ErrorKind::Conflict => exit_codes::CONFLICT,
                ErrorKind::Infrastructure => exit_codes::INFRASTRUCTURE,
            }
        }
    };
    ExitCode::from(code as u8)
}
