//! Network files: reading a DanmNet/TenantNetwork/ClusterNetwork from YAML or JSON and writing it back in the same
//! format.

use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use danm_api::{Network, NetworkKind};

/// Errors reading or writing network files.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot parse {path} as a network object ({format}): {reason}")]
    Parse {
        path: PathBuf,
        format: Format,
        reason: String,
    },
    #[error("{path} holds kind {kind:?}, not a DanmNet, TenantNetwork or ClusterNetwork")]
    NotANetwork { path: PathBuf, kind: String },
    #[error("cannot serialise the network object: {reason}")]
    Serialise { reason: String },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// The format a file was written in; output keeps it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Json,
    Yaml,
}

impl std::fmt::Display for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Format::Json => "JSON",
            Format::Yaml => "YAML",
        })
    }
}

/// A loaded network and the format it came in.
#[derive(Debug)]
pub struct Document {
    pub network: Network,
    pub format: Format,
}

impl Document {
    /// A short reference for messages: `Kind namespace/name`.
    pub fn reference(&self) -> String {
        let n = &self.network;
        match n.namespace() {
            Some(ns) => format!("{} {ns}/{}", n.kind, n.name()),
            None => format!("{} {}", n.kind, n.name()),
        }
    }
}

/// Reads `path` (`-` = stdin). `.json` is JSON, `.yaml`/`.yml` YAML; otherwise a leading `{` means JSON.
pub fn load(path: &Path) -> Result<Document, FileError> {
    let read_err = |source| FileError::Read {
        path: path.to_owned(),
        source,
    };
    let text = if path == Path::new("-") {
        let mut s = String::new();
        io::stdin().read_to_string(&mut s).map_err(read_err)?;
        s
    } else {
        fs::read_to_string(path).map_err(read_err)?
    };
    let format = match path.extension().and_then(|e| e.to_str()) {
        Some("json") => Format::Json,
        Some("yaml" | "yml") => Format::Yaml,
        _ if text.trim_start().starts_with('{') => Format::Json,
        _ => Format::Yaml,
    };
    let parse_err = |reason: String| FileError::Parse {
        path: path.to_owned(),
        format,
        reason,
    };
    let network: Network = match format {
        Format::Json => serde_json::from_str(&text).map_err(|e| parse_err(e.to_string()))?,
        Format::Yaml => serde_yaml::from_str(&text).map_err(|e| parse_err(e.to_string()))?,
    };
    if network.kind.parse::<NetworkKind>().is_err() {
        return Err(FileError::NotANetwork {
            path: path.to_owned(),
            kind: network.kind,
        });
    }
    Ok(Document { network, format })
}

/// Serialises the network in its format.
pub fn render(doc: &Document) -> Result<String, FileError> {
    let ser = |reason: String| FileError::Serialise { reason };
    match doc.format {
        Format::Json => serde_json::to_string_pretty(&doc.network)
            .map(|s| s + "\n")
            .map_err(|e| ser(e.to_string())),
        Format::Yaml => serde_yaml::to_string(&doc.network).map_err(|e| ser(e.to_string())),
    }
}

/// Writes the network to `out` (atomically, through a temporary file and a rename), or to stdout when `out` is
/// `None`.
pub fn save(doc: &Document, out: Option<&Path>) -> Result<(), FileError> {
    let text = render(doc)?;
    match out {
        None => {
            let stdout_err = |source| FileError::Write {
                path: PathBuf::from("<stdout>"),
                source,
            };
            let mut stdout = io::stdout().lock();
            stdout.write_all(text.as_bytes()).map_err(stdout_err)?;
            stdout.flush().map_err(stdout_err)
        }
        Some(path) => {
            let write_err = |source| FileError::Write {
                path: path.to_owned(),
                source,
            };
            let mut tmp = path.as_os_str().to_owned();
            tmp.push(".danmctl-tmp");
            let tmp = PathBuf::from(tmp);
            fs::write(&tmp, text).map_err(write_err)?;
            fs::rename(&tmp, path).map_err(write_err)
        }
    }
}
