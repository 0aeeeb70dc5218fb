//! fakeipam: echoes the addresses danm allocated back to a delegated CNI plugin (behaviour §4.7).

use std::io::{Read, Write};
use std::process::ExitCode;

fn main() -> ExitCode {
    let command = std::env::var("CNI_COMMAND").unwrap_or_default();
    let mut stdin = Vec::new();
    if command != "VERSION" {
        let _ = std::io::stdin().read_to_end(&mut stdin);
    }
    let mut out = std::io::stdout().lock();
    match danm_cni::fakeipam::run(&command, &stdin) {
        Ok(Some(text)) => {
            let _ = writeln!(out, "{text}");
            ExitCode::SUCCESS
        }
        Ok(None) => ExitCode::SUCCESS,
        Err((version, err)) => {
            let _ = writeln!(out, "{}", err.to_json(&version));
            ExitCode::FAILURE
        }
    }
}
