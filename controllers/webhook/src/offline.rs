//! The offline review (like Kubewarden's `kwctl run`): one AdmissionReview from a file, the cluster from an objects
//! file (JSON array, v1 List, or multi-document YAML) held in a [`MemoryCluster`], the same [`Webhook`] code path as
//! the server, and the cluster objects after the call (e.g. a TenantConfig with a reserved VNI).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use danm_core::ipam::blocks::IpamMode;

use serde_json::Value;

use crate::admit::{Endpoint, Webhook};
use crate::cluster::{MemoryCluster, ObjectsError};
use crate::review::ReviewError;
use crate::validator::Validator;

/// Errors of the offline review.
#[derive(Debug, thiserror::Error)]
pub enum OfflineError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Objects {
        path: String,
        #[source]
        source: ObjectsError,
    },
    #[error("{0}")]
    Review(#[from] ReviewError),
}

/// Inputs of one offline review.
#[derive(Clone, Debug)]
pub struct OfflineReview {
    pub endpoint: Endpoint,
    pub request: PathBuf,
    pub objects: Option<PathBuf>,
    pub objects_out: Option<PathBuf>,
    /// Seed for the random profile choice (reproducible runs).
    pub seed: Option<u64>,
    /// The IPAM mode of new networks that name none.
    pub ipam_mode: IpamMode,
}

fn read(path: &Path) -> Result<String, OfflineError> {
    std::fs::read_to_string(path).map_err(|source| OfflineError::Read {
        path: path.display().to_string(),
        source,
    })
}

/// Runs the review; returns the response AdmissionReview. Writes `objects_out` (JSON array, or YAML when the name
/// ends in `.yaml`/`.yml`) when asked, also after a protocol error.
pub async fn run(args: &OfflineReview, validator: Arc<dyn Validator>) -> Result<Value, OfflineError> {
    let body = read(&args.request)?;
    let cluster = match &args.objects {
        Some(p) => MemoryCluster::from_text(&read(p)?).map_err(|source| OfflineError::Objects {
            path: p.display().to_string(),
            source,
        })?,
        None => MemoryCluster::new(Vec::new()).expect("an empty cluster is valid"),
    };
    let cluster = Arc::new(cluster);
    let mut webhook = Webhook::new(cluster.clone(), validator).with_ipam_mode(args.ipam_mode);
    if let Some(seed) = args.seed {
        webhook = webhook.with_seed(seed);
    }
    let res = webhook.handle(args.endpoint, body.as_bytes()).await;
    if let Some(out) = &args.objects_out {
        write_objects(out, &cluster.objects())?;
    }
    Ok(res?.response)
}

/// Writes objects as a JSON array, or multi-document YAML for `.yaml`/`.yml` paths.
pub fn write_objects(path: &Path, objects: &[Value]) -> Result<(), OfflineError> {
    let is_yaml = path.extension().is_some_and(|e| e == "yaml" || e == "yml");
    let text = if is_yaml {
        objects
            .iter()
            .map(|o| {
                format!(
                    "---\n{}",
                    serde_yaml::to_string(o).expect("JSON values serialise as YAML")
                )
            })
            .collect::<String>()
    } else {
        serde_json::to_string_pretty(objects).expect("JSON values serialise")
    };
    std::fs::write(path, text).map_err(|source| OfflineError::Write {
        path: path.display().to_string(),
        source,
    })
}
