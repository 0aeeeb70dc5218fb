//! danm: the CNI metaplugin binary (thin: read env and stdin, run, print, exit).

use std::io::{Read, Write};
use std::process::ExitCode;

use danm_cni::run::{Outcome, main_with};

fn main() -> ExitCode {
    let outcome = main_with(
        |k| std::env::var(k).ok(),
        || {
            let mut buf = Vec::new();
            let _ = std::io::stdin().read_to_end(&mut buf);
            buf
        },
    );
    let mut out = std::io::stdout().lock();
    match outcome {
        Outcome::Ok(text) => {
            if let Some(text) = text {
                let _ = writeln!(out, "{text}");
            }
            ExitCode::SUCCESS
        }
        Outcome::Err(json) => {
            let _ = writeln!(out, "{json}");
            ExitCode::FAILURE
        }
    }
}
