//! `danmctl`: operator commands: IPAM inspection and repair on network files, IPAM `show` and `migrate` on a
//! cluster, plugin checks.

use std::io::Write;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use danmctl::{ipam, plugins};

/// danm operator tool: works on network files (YAML or JSON); `ipam show --network` and `ipam migrate` work on a
/// cluster.
#[derive(Debug, Parser)]
#[command(name = "danmctl", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Inspect and repair the IP allocations stored in a DanmNet/TenantNetwork/ClusterNetwork file.
    #[command(subcommand)]
    Ipam(ipam::IpamCommand),
    /// Check, list and run danm's WebAssembly plugins offline (validate and translate network files).
    #[command(subcommand)]
    Plugins(plugins::PluginsCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result: anyhow::Result<()> = match cli.command {
        Command::Ipam(cmd) => ipam::run(cmd).map_err(anyhow::Error::from),
        Command::Plugins(cmd) => plugins::run(cmd).map_err(anyhow::Error::from),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // Every error's text already carries its cause, so the chain is not repeated.
            let _ = writeln!(std::io::stderr(), "danmctl: {e}");
            ExitCode::FAILURE
        }
    }
}
