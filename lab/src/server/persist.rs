//! Optional persistence: an append-only JSON-lines log of every change in a directory, replayed and compacted on start.

use super::registry::GroupResource;
use super::store::{Event, EventSink, EventType};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

/// Persistence failures, naming the file.
#[derive(Debug, thiserror::Error)]
pub enum PersistError {
    #[error("lab state file {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
}

#[derive(Serialize, Deserialize)]
struct Record {
    #[serde(rename = "type")]
    type_: EventType,
    rv: u64,
    group: String,
    resource: String,
    object: Value,
}

/// The open log file.
#[derive(Debug)]
pub struct Log {
    file: File,
    path: PathBuf,
}

impl EventSink for Log {
    fn record(&mut self, ev: &Event) {
        let rec = Record {
            type_: ev.type_,
            rv: ev.rv,
            group: ev.gr.0.clone(),
            resource: ev.gr.1.clone(),
            object: ev.object.clone(),
        };
        let mut line = serde_json::to_vec(&rec).unwrap_or_default();
        line.push(b'\n');
        if let Err(e) = self.file.write_all(&line) {
            tracing::error!(path = %self.path.display(), error = %e, "cannot append to the lab state log");
        }
    }
}

/// What a state directory held: objects in replay order and the last resourceVersion.
pub type Loaded = (Vec<(GroupResource, Value)>, u64);

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> PersistError + '_ {
    move |source| PersistError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Replays `dir/objects.jsonl` (if any), rewrites it compacted, and opens it for appending.
pub fn open(dir: &Path) -> Result<(Loaded, Log), PersistError> {
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let path = dir.join("objects.jsonl");
    let mut objects: BTreeMap<(String, String, String, String), (u64, Value)> = BTreeMap::new();
    let mut last = 0u64;
    if path.exists() {
        let f = File::open(&path).map_err(io(&path))?;
        for line in BufReader::new(f).lines() {
            let line = line.map_err(io(&path))?;
            // A torn last line (killed mid-write) is skipped.
            let Ok(rec) = serde_json::from_str::<Record>(&line) else {
                continue;
            };
            last = last.max(rec.rv);
            let ns = rec
                .object
                .pointer("/metadata/namespace")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            let name = rec
                .object
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            let key = (rec.group, rec.resource, ns, name);
            match rec.type_ {
                EventType::Deleted => {
                    objects.remove(&key);
                }
                _ => {
                    objects.insert(key, (rec.rv, rec.object));
                }
            }
        }
    }
    // CRDs first so their resources are registered before their objects are loaded.
    let mut list: Vec<(GroupResource, u64, Value)> = objects
        .into_iter()
        .map(|((g, r, _, _), (rv, o))| ((g, r), rv, o))
        .collect();
    list.sort_by_key(|((g, r), rv, _)| {
        (
            !(g == "apiextensions.k8s.io" && r == "customresourcedefinitions"),
            *rv,
        )
    });
    let tmp = dir.join("objects.jsonl.tmp");
    {
        let mut f = File::create(&tmp).map_err(io(&tmp))?;
        for ((g, r), rv, o) in &list {
            let rec = Record {
                type_: EventType::Added,
                rv: *rv,
                group: g.clone(),
                resource: r.clone(),
                object: o.clone(),
            };
            let mut line = serde_json::to_vec(&rec).unwrap_or_default();
            line.push(b'\n');
            f.write_all(&line).map_err(io(&tmp))?;
        }
        f.sync_all().map_err(io(&tmp))?;
    }
    std::fs::rename(&tmp, &path).map_err(io(&path))?;
    let file = OpenOptions::new().append(true).open(&path).map_err(io(&path))?;
    let loaded = list.into_iter().map(|(gr, _, o)| (gr, o)).collect();
    Ok(((loaded, last), Log { file, path }))
}
