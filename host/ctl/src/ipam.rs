//! `danmctl ipam`: reserve, free, show and initialise allocations in a network file, with danm's IPAM rules.
//!
//! Commands that change the network write the updated object to `-o FILE` (may be the input file) or to stdout,
//! in the input's format. Their report (allocated addresses, what was freed) goes to stdout when `-o` is given and
//! to stderr when the object itself goes to stdout, so `danmctl ipam reserve -f n.yaml > new.yaml` stays clean.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use danm_core::ipam::{self, FreeOutcome, IpRequest, IpamError, apply_network_defaults, free_address};

use crate::file::{self, FileError};
use crate::usage::render_usage;

#[derive(Debug, Subcommand)]
pub enum IpamCommand {
    /// Reserve addresses like the CNI does (both families in one step) and write the updated network.
    Reserve(ReserveArgs),
    /// Free addresses (IPv4 or IPv6, with or without /prefix) and write the updated network.
    Free(FreeArgs),
    /// Print the pools, used/free counts and the allocated addresses of each family.
    Show(ShowArgs),
    /// Apply the webhook's IPAM defaults (pools, alloc, alloc6) to a network created without the webhook.
    Init(InitArgs),
    /// Move a network of a cluster from the bitmap mode to the blocks mode, owners taken from its DanmEps. Refuses
    /// with a report when the bitmap and the DanmEps disagree; safe to re-run after an interruption.
    Migrate(MigrateArgs),
}

#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// The network's name.
    name: String,
    #[command(flatten)]
    cluster: crate::online::ClusterNetworkArgs,
}

#[derive(Debug, Args)]
pub struct InputArgs {
    /// Network file (YAML or JSON; `-` reads stdin).
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    file: PathBuf,
}

#[derive(Debug, Args)]
pub struct OutputArgs {
    /// Where to write the updated network (may be the input file); stdout when absent.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    output: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ReserveArgs {
    #[command(flatten)]
    input: InputArgs,
    /// IPv4 request: `dynamic`, `none` or an address. Defaults to `dynamic` when neither --ip nor --ip6 is given.
    #[arg(long, value_name = "dynamic|none|ADDR")]
    ip: Option<String>,
    /// IPv6 request: `dynamic`, `none` or an address.
    #[arg(long, value_name = "dynamic|none|ADDR")]
    ip6: Option<String>,
    #[command(flatten)]
    output: OutputArgs,
}

#[derive(Debug, Args)]
pub struct FreeArgs {
    #[command(flatten)]
    input: InputArgs,
    /// Addresses to free.
    #[arg(required = true, value_name = "ADDR")]
    addrs: Vec<String>,
    #[command(flatten)]
    output: OutputArgs,
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("source").required(true).args(["file", "network"])))]
pub struct ShowArgs {
    /// Network file (YAML or JSON; `-` reads stdin).
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    file: Option<PathBuf>,
    /// A network of the cluster instead of a file (both IPAM modes).
    #[arg(long, value_name = "NAME")]
    network: Option<String>,
    #[command(flatten)]
    cluster: crate::online::ClusterNetworkArgs,
}

#[derive(Debug, Args)]
pub struct InitArgs {
    #[command(flatten)]
    input: InputArgs,
    #[command(flatten)]
    output: OutputArgs,
}

/// Errors of the `ipam` commands.
#[derive(Debug, thiserror::Error)]
pub enum IpamCmdError {
    #[error(transparent)]
    File(#[from] FileError),
    #[error("{file}: {source}")]
    Ipam {
        file: PathBuf,
        #[source]
        source: IpamError,
    },
    #[error("{file}: cannot free {addr:?}: not an IP address")]
    InvalidAddress { file: PathBuf, addr: String },
    #[error("cannot write the report: {0}")]
    Report(#[source] io::Error),
    #[error(transparent)]
    Online(#[from] crate::online::OnlineError),
}

pub fn run(cmd: IpamCommand) -> Result<(), IpamCmdError> {
    match cmd {
        IpamCommand::Reserve(a) => reserve(a),
        IpamCommand::Free(a) => free(a),
        IpamCommand::Show(a) => show(a),
        IpamCommand::Init(a) => init(a),
        IpamCommand::Migrate(a) => {
            let text = crate::online::run_migrate(&a.name, &a.cluster)?;
            io::stdout()
                .write_all(text.as_bytes())
                .map_err(IpamCmdError::Report)
        }
    }
}

/// The report goes to stdout unless the object does.
fn report_sink(output: Option<&Path>) -> Box<dyn Write> {
    if output.is_some() {
        Box::new(io::stdout())
    } else {
        Box::new(io::stderr())
    }
}

fn ipam_err(file: &Path) -> impl Fn(IpamError) -> IpamCmdError + '_ {
    move |source| IpamCmdError::Ipam {
        file: file.to_owned(),
        source,
    }
}

fn reserve(a: ReserveArgs) -> Result<(), IpamCmdError> {
    let path = &a.input.file;
    let mut doc = file::load(path)?;
    let (ip, ip6) = match (a.ip, a.ip6) {
        (None, None) => ("dynamic".to_owned(), String::new()),
        (ip, ip6) => (ip.unwrap_or_default(), ip6.unwrap_or_default()),
    };
    let name = doc.network.name().to_owned();
    let req4 = IpRequest::parse(&ip).map_err(|e| ipam_err(path)(e.for_network(&name)))?;
    let req6 = IpRequest::parse(&ip6).map_err(|e| ipam_err(path)(e.for_network(&name)))?;
    let r =
        ipam::reserve(&doc.network.spec, &req4, &req6).map_err(|e| ipam_err(path)(e.for_network(&name)))?;
    doc.network.spec = r.spec;
    let out = a.output.output.as_deref();
    file::save(&doc, out)?;
    let mut rep = report_sink(out);
    if req4 != IpRequest::Absent {
        writeln!(rep, "ip: {}", r.ip4).map_err(IpamCmdError::Report)?;
    }
    if req6 != IpRequest::Absent {
        writeln!(rep, "ip6: {}", r.ip6).map_err(IpamCmdError::Report)?;
    }
    Ok(())
}

fn free(a: FreeArgs) -> Result<(), IpamCmdError> {
    let path = &a.input.file;
    let mut doc = file::load(path)?;
    let mut lines = Vec::new();
    for addr in &a.addrs {
        let outcome = free_address(&mut doc.network.spec.options, addr);
        let what = match outcome {
            FreeOutcome::Freed => "freed",
            FreeOutcome::NotAllocated => "was not allocated",
            FreeOutcome::Skipped => "nothing to free",
            FreeOutcome::Invalid => {
                return Err(IpamCmdError::InvalidAddress {
                    file: path.clone(),
                    addr: addr.clone(),
                });
            }
            FreeOutcome::NoIpam => "not tracked: the network has no allocation bitmap for this family",
            FreeOutcome::OutsideRange => "not tracked: outside the range the bitmap covers",
            FreeOutcome::Protected => "not freed: network, broadcast or gateway address",
        };
        lines.push(format!("{addr}: {what}"));
    }
    let out = a.output.output.as_deref();
    file::save(&doc, out)?;
    let mut rep = report_sink(out);
    for l in lines {
        writeln!(rep, "{l}").map_err(IpamCmdError::Report)?;
    }
    Ok(())
}

fn init(a: InitArgs) -> Result<(), IpamCmdError> {
    let path = &a.input.file;
    let mut doc = file::load(path)?;
    let changed = apply_network_defaults(&mut doc.network.spec.options).map_err(ipam_err(path))?;
    let out = a.output.output.as_deref();
    file::save(&doc, out)?;
    let mut rep = report_sink(out);
    if changed.is_empty() {
        writeln!(rep, "nothing to change").map_err(IpamCmdError::Report)?;
    }
    for p in changed {
        writeln!(rep, "set {p}").map_err(IpamCmdError::Report)?;
    }
    Ok(())
}

fn show(a: ShowArgs) -> Result<(), IpamCmdError> {
    let text = match (&a.file, &a.network) {
        (_, Some(name)) => crate::online::run_show(name, &a.cluster)?,
        (Some(path), None) => {
            let doc = file::load(path)?;
            let u = ipam::usage(&doc.network.spec).map_err(ipam_err(path))?;
            render_usage(&doc.reference(), &doc.network, &u)
        }
        (None, None) => unreachable!("clap requires --file or --network"),
    };
    io::stdout()
        .write_all(text.as_bytes())
        .map_err(IpamCmdError::Report)
}
