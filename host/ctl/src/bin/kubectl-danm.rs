//! `kubectl-danm`: the `kubectl danm` plugin binary; parses the command line, runs it, maps the outcome to the
//! exit status (0 clean, 1 error, 2 problem found).

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use danmctl::kubectl::{Cli, Outcome, run};

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(Outcome::Clean) => ExitCode::SUCCESS,
        Ok(Outcome::ProblemFound) => ExitCode::from(2),
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "kubectl danm: {e}");
            ExitCode::FAILURE
        }
    }
}
