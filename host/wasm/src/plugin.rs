//! One plugin file: identification (sha256, WIT version, world), compilation or cache load, and the guarded calls.

use std::path::{Path, PathBuf};
use std::sync::PoisonError;
use std::sync::{Mutex, OnceLock};

use serde::{Deserialize, Serialize};
use wasmtime::component::Component;
use wasmtime::{Store, Trap};

use crate::bindings::v0_1_0;
use crate::cache::{Cache, FileStamp, IndexEntry, Loaded, Meta};
use crate::engine::{Host, Pipes, Runtime, sha256_hex};
use crate::output::network_name;
use crate::{
    BackendInfo, CallSite, Operation, PluginError, Review, SUPPORTED_VERSIONS, TranslateRequest, Violation,
};

/// Which world a plugin implements.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PluginKind {
    /// `backend-plugin`: serves NetworkTypes.
    Backend,
    /// `rules-plugin`: DANM's API-level rules.
    Rules,
}

/// What `danmctl plugins list` shows about a plugin.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PluginInfo {
    pub file: PathBuf,
    pub sha256: String,
    pub kind: PluginKind,
    /// The `danm:plugin` version it was built against.
    pub version: String,
    /// NetworkTypes served (backends), lower-case.
    pub network_types: Vec<String>,
    pub backend: Option<BackendInfo>,
}

/// Instance factories, per supported version and world.
enum Pre {
    BackendV0_1(v0_1_0::backend::BackendPluginPre<Host>),
    RulesV0_1(v0_1_0::rules::RulesPluginPre<Host>),
}

/// Live instances, per supported version and world.
enum Inst {
    BackendV0_1(v0_1_0::backend::BackendPlugin),
    RulesV0_1(v0_1_0::rules::RulesPlugin),
}

impl Pre {
    fn instantiate(&self, store: &mut Store<Host>) -> wasmtime::Result<Inst> {
        Ok(match self {
            Pre::BackendV0_1(p) => Inst::BackendV0_1(p.instantiate(store)?),
            Pre::RulesV0_1(p) => Inst::RulesV0_1(p.instantiate(store)?),
        })
    }
}

/// An instance kept for more calls (long-lived hosts; see `RuntimeConfig::reuse_instance_calls`).
struct Live {
    store: Store<Host>,
    inst: Inst,
    pipes: Pipes,
    calls: u32,
}

pub(crate) struct Plugin {
    pub(crate) info: PluginInfo,
    key: String,
    /// Checksum of the cached artefact, from the metadata (`None`: not cached or unknown).
    cwasm_crc32: Option<u32>,
    /// The artefact's stamp when it last matched its checksum, from the metadata.
    cwasm_stamp: Option<FileStamp>,
    pre: OnceLock<Result<Pre, String>>,
    live: Mutex<Vec<Live>>,
}

impl Plugin {
    /// Identifies and checks a plugin file. With a cache hit on its metadata nothing is compiled or deserialised
    /// until the first call.
    /// `known` is what the cache's index remembers of this path while the file keeps the stamp it had when it was
    /// hashed (same device, inode, size, mtime and ctime); with it the file is not even read.
    pub(crate) fn open(
        rt: &Runtime,
        cache: Option<&Cache>,
        file: &Path,
        known: Option<&IndexEntry>,
    ) -> Result<Plugin, PluginError> {
        let from_meta = |sha256: &str, known: Option<&IndexEntry>| {
            let key = format!("{sha256}-{}", rt.engine_hash);
            let meta = match known.and_then(|k| k.meta(&key)) {
                Some(m) => m.clone(),
                None => cache.and_then(|c| c.load_meta(&key))?,
            };
            let info = PluginInfo {
                file: file.to_owned(),
                sha256: sha256.to_owned(),
                kind: meta.kind,
                version: meta.version,
                network_types: meta.network_types,
                backend: meta.backend,
            };
            Some(Plugin {
                info,
                key,
                cwasm_crc32: meta.cwasm_crc32,
                cwasm_stamp: meta.cwasm_stamp,
                pre: OnceLock::new(),
                live: Mutex::new(Vec::new()),
            })
        };
        if let Some(p) = known.and_then(|k| from_meta(&k.sha256, Some(k))) {
            return Ok(p);
        }
        let bytes = std::fs::read(file).map_err(|source| PluginError::Read {
            file: file.to_owned(),
            source,
        })?;
        let sha256 = sha256_hex(&bytes);
        if let Some(p) = from_meta(&sha256, None) {
            return Ok(p);
        }
        let key = format!("{sha256}-{}", rt.engine_hash);
        let (component, learnt) = component(rt, cache, &key, file, Some(&bytes), None, None)?;
        let cwasm_crc32 = match learnt {
            Learnt::Recompiled { crc32 } => Some(crc32),
            Learnt::Nothing | Learnt::Verified { .. } => None,
        };
        let (kind, version) = identify(rt, &component, file)?;
        let pre = instance_pre(rt, &component, kind, &version, file)?;
        let mut plugin = Plugin {
            info: PluginInfo {
                file: file.to_owned(),
                sha256,
                kind,
                version,
                network_types: Vec::new(),
                backend: None,
            },
            key,
            cwasm_crc32,
            cwasm_stamp: None,
            pre: OnceLock::new(),
            live: Mutex::new(Vec::new()),
        };
        let _ = plugin.pre.set(Ok(pre));
        if kind == PluginKind::Backend {
            let types = plugin.call(rt, "network-types", None, |store, inst| match inst {
                Inst::BackendV0_1(b) => b.danm_plugin_backend().call_network_types(store),
                Inst::RulesV0_1(_) => wasmtime::bail!("not a backend"),
            })?;
            let info = plugin.call(rt, "describe", None, |store, inst| match inst {
                Inst::BackendV0_1(b) => b.danm_plugin_backend().call_describe(store),
                Inst::RulesV0_1(_) => wasmtime::bail!("not a backend"),
            })?;
            plugin.info.network_types = types.into_iter().map(|t| t.to_ascii_lowercase()).collect();
            plugin.info.backend = Some(info.into());
        }
        if let Some(c) = cache {
            c.store_meta(&plugin.meta());
        }
        Ok(plugin)
    }

    /// What the cache records about this plugin.
    pub(crate) fn meta(&self) -> Meta {
        Meta {
            key: self.key.clone(),
            kind: self.info.kind,
            version: self.info.version.clone(),
            network_types: self.info.network_types.clone(),
            backend: self.info.backend.clone(),
            cwasm_crc32: self.cwasm_crc32,
            cwasm_stamp: self.cwasm_stamp.clone(),
        }
    }

    /// Deserialises (or compiles) and pre-links the component once, without instantiating it.
    pub(crate) fn prepare(&self, rt: &Runtime, cache: Option<&Cache>) -> Result<(), PluginError> {
        self.pre(rt, cache).map(|_| ())
    }

    fn pre(&self, rt: &Runtime, cache: Option<&Cache>) -> Result<&Pre, PluginError> {
        let file = &self.info.file;
        let res = self.pre.get_or_init(|| {
            let (component, learnt) = component(
                rt,
                cache,
                &self.key,
                file,
                None,
                self.cwasm_crc32,
                self.cwasm_stamp.as_ref(),
            )
            .map_err(|e| e.to_string())?;
            match (cache, learnt) {
                // Recompiled (the entry was missing or corrupt): record the new checksum; the index, which
                // remembers the old one, is rebuilt from the metadata entries by the next load.
                (Some(c), Learnt::Recompiled { crc32 }) => {
                    c.store_meta(&Meta {
                        cwasm_crc32: Some(crc32),
                        cwasm_stamp: None,
                        ..self.meta()
                    });
                    c.drop_index();
                }
                // Checked against its checksum, with a settled stamp: later loads need not read it first.
                (Some(c), Learnt::Verified { stamp }) => {
                    c.store_meta(&Meta {
                        cwasm_stamp: Some(stamp.clone()),
                        ..self.meta()
                    });
                    c.remember_verified(file, &self.key, &stamp);
                }
                _ => {}
            }
            instance_pre(rt, &component, self.info.kind, &self.info.version, file).map_err(|e| e.to_string())
        });
        res.as_ref().map_err(|message| PluginError::Compile {
            file: file.clone(),
            message: message.clone(),
        })
    }

    /// Runs `f` on an instance (fresh, or a reused live one when `reuse_instance_calls` > 0) and turns every failure
    /// into a [`PluginError`] naming this plugin. An instance whose call failed is never reused.
    fn call<R>(
        &self,
        rt: &Runtime,
        function: &'static str,
        network: Option<&dyn Fn() -> Option<String>>,
        f: impl FnOnce(&mut Store<Host>, &Inst) -> wasmtime::Result<R>,
    ) -> Result<R, PluginError> {
        self.call_cached(rt, None, function, network, f)
    }

    fn call_cached<R>(
        &self,
        rt: &Runtime,
        cache: Option<&Cache>,
        function: &'static str,
        network: Option<&dyn Fn() -> Option<String>>,
        f: impl FnOnce(&mut Store<Host>, &Inst) -> wasmtime::Result<R>,
    ) -> Result<R, PluginError> {
        let pre = self.pre(rt, cache)?;
        // The epoch must advance from here on: instantiation runs guest code too.
        let _ticking = rt.clock.during_call().map_err(|message| PluginError::Engine {
            message: format!(
                "{}: {message}",
                CallSite {
                    file: self.info.file.clone(),
                    function,
                    network: network.and_then(|n| n()),
                }
            ),
        })?;
        let reuse = rt.config.reuse_instance_calls;
        let pooled = if reuse > 0 {
            self.live.lock().unwrap_or_else(PoisonError::into_inner).pop()
        } else {
            None
        };
        let mut live = match pooled {
            Some(mut l) => {
                rt.rearm(&mut l.store);
                l
            }
            None => {
                let (mut store, pipes) = rt.store();
                match pre.instantiate(&mut store) {
                    Ok(inst) => Live {
                        store,
                        inst,
                        pipes,
                        calls: 0,
                    },
                    Err(e) => return Err(self.failure(rt, &store, &pipes, (0, 0), function, network, e)),
                }
            }
        };
        let mark = live.pipes.mark();
        match f(&mut live.store, &live.inst) {
            Ok(r) => {
                live.calls += 1;
                if reuse > 0 && live.calls < reuse {
                    self.live
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .push(live);
                }
                Ok(r)
            }
            Err(e) => Err(self.failure(rt, &live.store, &live.pipes, mark, function, network, e)),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn failure(
        &self,
        rt: &Runtime,
        store: &Store<Host>,
        pipes: &Pipes,
        mark: (usize, usize),
        function: &'static str,
        network: Option<&dyn Fn() -> Option<String>>,
        e: wasmtime::Error,
    ) -> PluginError {
        let site = CallSite {
            file: self.info.file.clone(),
            function,
            network: network.and_then(|n| n()),
        };
        classify(rt, store, pipes, mark, site, e)
    }

    pub(crate) fn translate(
        &self,
        rt: &Runtime,
        cache: Option<&Cache>,
        req: &TranslateRequest,
    ) -> Result<String, PluginError> {
        let network = || network_name(&req.network_json);
        let site = || CallSite {
            file: self.info.file.clone(),
            function: "translate",
            network: network(),
        };
        let att = req.into();
        let res = self.call_cached(rt, cache, "translate", Some(&network), |store, inst| match inst {
            Inst::BackendV0_1(b) => b.danm_plugin_backend().call_translate(store, &att),
            Inst::RulesV0_1(_) => wasmtime::bail!("the rules plugin cannot translate"),
        })?;
        let config = res.map_err(|e| PluginError::Refused {
            site: site(),
            code: e.code,
            message: e.message,
        })?;
        if config.len() > rt.config.output_limit {
            return Err(PluginError::OutputTooLarge {
                site: site(),
                size: config.len(),
                limit: rt.config.output_limit,
            });
        }
        crate::output::check_translation(&config).map_err(|message| PluginError::InvalidOutput {
            site: site(),
            message,
        })?;
        Ok(config)
    }

    pub(crate) fn validate(
        &self,
        rt: &Runtime,
        cache: Option<&Cache>,
        op: Operation,
        network_json: &str,
        old_network_json: Option<&str>,
    ) -> Result<Vec<Violation>, PluginError> {
        let network = || network_name(network_json);
        let v = self.call_cached(rt, cache, "validate", Some(&network), |store, inst| match inst {
            Inst::BackendV0_1(b) => {
                b.danm_plugin_backend()
                    .call_validate(store, op.into(), network_json, old_network_json)
            }
            Inst::RulesV0_1(_) => wasmtime::bail!("not a backend"),
        })?;
        let site = || CallSite {
            file: self.info.file.clone(),
            function: "validate",
            network: network(),
        };
        violations(rt, v.into_iter().map(Into::into).collect(), site)
    }

    pub(crate) fn review(
        &self,
        rt: &Runtime,
        cache: Option<&Cache>,
        review: &Review,
        dynamic_types: &[String],
    ) -> Result<Vec<Violation>, PluginError> {
        let network = || {
            review
                .object_json
                .as_deref()
                .or(review.old_object_json.as_deref())
                .and_then(network_name)
        };
        let r = v0_1_0::rules_review(review, dynamic_types);
        let v = self.call_cached(rt, cache, "validate", Some(&network), |store, inst| match inst {
            Inst::RulesV0_1(p) => p.danm_plugin_rules().call_validate(store, &r),
            Inst::BackendV0_1(_) => wasmtime::bail!("not the rules plugin"),
        })?;
        let site = || CallSite {
            file: self.info.file.clone(),
            function: "validate",
            network: network(),
        };
        violations(rt, v.into_iter().map(Into::into).collect(), site)
    }
}

fn violations(
    rt: &Runtime,
    v: Vec<Violation>,
    site: impl Fn() -> CallSite,
) -> Result<Vec<Violation>, PluginError> {
    let size: usize = v
        .iter()
        .map(|v| v.rule.len() + v.field.len() + v.message.len())
        .sum();
    if size > rt.config.output_limit {
        return Err(PluginError::OutputTooLarge {
            site: site(),
            size,
            limit: rt.config.output_limit,
        });
    }
    Ok(v)
}

fn classify(
    rt: &Runtime,
    store: &Store<Host>,
    pipes: &Pipes,
    mark: (usize, usize),
    site: CallSite,
    e: wasmtime::Error,
) -> PluginError {
    let stderr = pipes.text_since(mark);
    match e.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => {
            return PluginError::Timeout {
                site,
                timeout: rt.config.timeout,
                stderr,
            };
        }
        Some(Trap::OutOfFuel) => return PluginError::OutOfFuel { site, stderr },
        _ => {}
    }
    if store.data().memory_denied {
        return PluginError::MemoryLimit {
            site,
            limit: rt.config.memory_limit,
            stderr,
        };
    }
    PluginError::Trap {
        site,
        message: format!("{e:#}"),
        stderr,
    }
}

/// What loading a component taught the cache.
enum Learnt {
    Nothing,
    /// Compiled and written to the cache with this checksum.
    Recompiled {
        crc32: u32,
    },
    /// Read from the cache after its checksum matched, with this settled stamp.
    Verified {
        stamp: FileStamp,
    },
}

/// The component for `key`: from the cache if intact (its checksum is `crc32`, checked unless the entry still has
/// the stamp `verified`), else compiled, and cached.
fn component(
    rt: &Runtime,
    cache: Option<&Cache>,
    key: &str,
    file: &Path,
    bytes: Option<&[u8]>,
    crc32: Option<u32>,
    verified: Option<&FileStamp>,
) -> Result<(Component, Learnt), PluginError> {
    if let Some(Loaded { component, verified }) = cache
        .zip(crc32)
        .and_then(|(c, crc)| c.load_component(&rt.engine, key, crc, verified))
    {
        let learnt = verified.map_or(Learnt::Nothing, |stamp| Learnt::Verified { stamp });
        return Ok((component, learnt));
    }
    let owned;
    let bytes = match bytes {
        Some(b) => b,
        None => {
            owned = std::fs::read(file).map_err(|source| PluginError::Read {
                file: file.to_owned(),
                source,
            })?;
            // Metadata was taken from the cache by digest: the file must still be what was described.
            if !key.starts_with(&sha256_hex(&owned)) {
                return Err(PluginError::Compile {
                    file: file.to_owned(),
                    message: "the file changed on disk since it was loaded; reload the plugin set".into(),
                });
            }
            &owned
        }
    };
    let component = Component::new(&rt.engine, bytes).map_err(|e| PluginError::Compile {
        file: file.to_owned(),
        message: format!("{e:#}"),
    })?;
    let mut learnt = Learnt::Nothing;
    if let Some(c) = cache {
        match component.serialize() {
            Ok(s) => {
                learnt = Learnt::Recompiled {
                    crc32: c.store_component(key, &s),
                }
            }
            Err(e) => tracing::warn!(file = %file.display(), "cannot serialise compiled plugin: {e:#}"),
        }
    }
    Ok((component, learnt))
}

/// Reads the world and `danm:plugin` version from the component's export names (`danm:plugin/backend@0.1.0`).
fn identify(rt: &Runtime, component: &Component, file: &Path) -> Result<(PluginKind, String), PluginError> {
    let ty = component.component_type();
    let names: Vec<String> = ty.exports(&rt.engine).map(|(n, _)| n.to_owned()).collect();
    for name in &names {
        let Some(rest) = name.strip_prefix("danm:plugin/") else {
            continue;
        };
        let (iface, version) = rest.split_once('@').unwrap_or((rest, "unversioned"));
        let kind = match iface {
            "backend" => PluginKind::Backend,
            "rules" => PluginKind::Rules,
            _ => continue,
        };
        if !SUPPORTED_VERSIONS.contains(&version) {
            return Err(PluginError::WitVersion {
                file: file.to_owned(),
                found: version.to_owned(),
                supported: SUPPORTED_VERSIONS.join(", "),
            });
        }
        return Ok((kind, version.to_owned()));
    }
    Err(PluginError::NotAPlugin {
        file: file.to_owned(),
        exports: names.join(", "),
    })
}

fn instance_pre(
    rt: &Runtime,
    component: &Component,
    kind: PluginKind,
    version: &str,
    file: &Path,
) -> Result<Pre, PluginError> {
    let link = |e: wasmtime::Error| PluginError::Link {
        file: file.to_owned(),
        message: format!("{e:#}"),
    };
    let pre = rt.instantiate_pre(component).map_err(link)?;
    match (kind, version) {
        (PluginKind::Backend, v0_1_0::VERSION) => Ok(Pre::BackendV0_1(
            v0_1_0::backend::BackendPluginPre::new(pre).map_err(link)?,
        )),
        (PluginKind::Rules, v0_1_0::VERSION) => Ok(Pre::RulesV0_1(
            v0_1_0::rules::RulesPluginPre::new(pre).map_err(link)?,
        )),
        (_, other) => Err(PluginError::WitVersion {
            file: file.to_owned(),
            found: other.to_owned(),
            supported: SUPPORTED_VERSIONS.join(", "),
        }),
    }
}
