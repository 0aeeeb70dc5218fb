//! The lab API server: options, start-up (state loading, TLS, kubeconfig), the accept loop and the handle tests use.

pub mod admission;
pub mod audit;
pub mod fault;
mod http;
mod openapi;
pub mod patch;
pub mod persist;
mod proto;
pub mod registry;
pub mod selector;
pub mod status;
pub mod store;
mod table;
mod watch;

use crate::{kubeconfig, tls};
use admission::AdmissionConfig;
use fault::{Fault, Faults};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::PoisonError;
use std::sync::{Arc, Mutex, RwLock};
use store::Store;
use tokio::net::TcpListener;
use tokio::sync::watch as tokio_watch;

/// Start-up failures of the lab server.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    #[error("binding {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("TLS: {0}")]
    Tls(#[from] tls::TlsError),
    #[error(transparent)]
    Persist(#[from] persist::PersistError),
    #[error("writing the kubeconfig {path}: {source}")]
    Kubeconfig { path: PathBuf, source: std::io::Error },
    #[error("manifest {path}: {message}")]
    Manifest { path: PathBuf, message: String },
    #[error("building a client from {path}: {message}")]
    Client { path: PathBuf, message: String },
}

/// How to run a lab server.
#[derive(Debug, Clone)]
pub struct LabOptions {
    /// Listen address; port 0 picks a free one. Default `127.0.0.1:0`.
    pub addr: SocketAddr,
    /// Serve HTTPS with a fresh self-signed CA (put into the kubeconfig).
    pub tls: bool,
    /// Require `Authorization: Bearer <token>` (put into the kubeconfig).
    pub token: Option<String>,
    /// Persist every change to `<dir>/objects.jsonl` and load it on start.
    pub state_dir: Option<PathBuf>,
    /// Where to write the kubeconfig; default a file in the system temp dir, removed on shutdown.
    pub kubeconfig_out: Option<PathBuf>,
    /// How many events watches can replay (older resourceVersions get 410 Gone). Default 10 000.
    pub history: usize,
    /// How admission webhooks are reached (service → URL map, TLS verification).
    pub admission: AdmissionConfig,
}

impl Default for LabOptions {
    fn default() -> Self {
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            tls: false,
            token: None,
            state_dir: None,
            kubeconfig_out: None,
            history: 10_000,
            admission: AdmissionConfig::default(),
        }
    }
}

/// State shared by every request.
pub(crate) struct Shared {
    pub(crate) store: Mutex<Store>,
    pub(crate) rv_tx: tokio_watch::Sender<u64>,
    pub(crate) shutdown: tokio_watch::Receiver<bool>,
    pub(crate) faults: Faults,
    pub(crate) admission: RwLock<AdmissionConfig>,
    pub(crate) token: Option<String>,
    pub(crate) addr: String,
    pub(crate) audit: audit::AuditLog,
}

impl Shared {
    /// Wakes watches after a write.
    pub(crate) fn notify(&self) {
        let rv = self.store.lock().unwrap_or_else(PoisonError::into_inner).rv();
        self.rv_tx.send_if_modified(|cur| {
            let changed = *cur != rv;
            *cur = rv;
            changed
        });
    }
}

/// Starts lab servers.
#[derive(Debug)]
pub struct LabServer;

impl LabServer {
    /// Binds, loads persisted state, writes the kubeconfig and starts serving on the current tokio runtime.
    pub async fn start(opts: LabOptions) -> Result<LabHandle, LabError> {
        let listener = TcpListener::bind(opts.addr)
            .await
            .map_err(|source| LabError::Bind {
                addr: opts.addr,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| LabError::Bind {
            addr: opts.addr,
            source,
        })?;
        let mut store = Store::new(opts.history);
        if let Some(dir) = &opts.state_dir {
            let ((objects, last), log) = persist::open(dir)?;
            for (gr, o) in objects {
                store.load(gr, o);
            }
            store.finish_load(last);
            store.set_sink(Box::new(log));
        }
        ensure_default_namespaces(&mut store);
        let (tls_cfg, ca_pem) = if opts.tls {
            let b = tls::generate(&["localhost", "127.0.0.1", &addr.ip().to_string()])?;
            (Some(tls::server_config(&b.cert_pem, &b.key_pem)?), Some(b.ca_pem))
        } else {
            (None, None)
        };
        let scheme = if opts.tls { "https" } else { "http" };
        let url = format!("{scheme}://{addr}");
        let (owned_kubeconfig, kubeconfig) = match &opts.kubeconfig_out {
            Some(p) => (false, p.clone()),
            None => (
                true,
                std::env::temp_dir().join(format!("danm-lab-{}.kubeconfig", uuid::Uuid::new_v4())),
            ),
        };
        kubeconfig::write(&kubeconfig, &url, ca_pem.as_deref(), opts.token.as_deref()).map_err(|source| {
            LabError::Kubeconfig {
                path: kubeconfig.clone(),
                source,
            }
        })?;
        let (shutdown_tx, shutdown_rx) = tokio_watch::channel(false);
        let (rv_tx, _) = tokio_watch::channel(store.rv());
        let shared = Arc::new(Shared {
            store: Mutex::new(store),
            rv_tx,
            shutdown: shutdown_rx.clone(),
            faults: Faults::default(),
            admission: RwLock::new(opts.admission.clone()),
            token: opts.token.clone(),
            addr: addr.to_string(),
            audit: audit::AuditLog::from_env(),
        });
        let app = axum::Router::new()
            .fallback(http::handle)
            .with_state(shared.clone());
        let task = tokio::spawn(serve(listener, app, tls_cfg, shutdown_rx));
        tracing::info!(%url, kubeconfig = %kubeconfig.display(), "lab API server listening");
        Ok(LabHandle {
            shared,
            url,
            addr,
            kubeconfig,
            owned_kubeconfig,
            ca_pem,
            token: opts.token,
            shutdown_tx,
            task: Some(task),
        })
    }
}

/// The API as served, over a fresh in-memory store with the default namespaces: no listener, TLS, kubeconfig,
/// persistence or audit. Requests go straight to the HTTP edge (the fuzz target of the request parsing drives it).
pub fn in_memory_router() -> axum::Router {
    let mut store = Store::new(1_000);
    ensure_default_namespaces(&mut store);
    let (_shutdown_tx, shutdown_rx) = tokio_watch::channel(false);
    let (rv_tx, _) = tokio_watch::channel(store.rv());
    let shared = Arc::new(Shared {
        store: Mutex::new(store),
        rv_tx,
        shutdown: shutdown_rx,
        faults: Faults::default(),
        admission: RwLock::new(AdmissionConfig::default()),
        token: None,
        addr: "127.0.0.1:0".to_owned(),
        audit: audit::AuditLog::default(),
    });
    axum::Router::new().fallback(http::handle).with_state(shared)
}

fn ensure_default_namespaces(store: &mut Store) {
    let def = store
        .registry
        .lookup("", "v1", "namespaces")
        .cloned()
        .expect("namespaces are built in");
    for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        if store.get(&def, "", ns).is_ok() {
            continue;
        }
        let obj = serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
        if let Ok(p) = store.prepare_create(&def, "", obj) {
            let _ = store.commit_create(&def, p, false);
        }
    }
}

/// Serves an axum router on a listener (HTTPS when `tls` is given) until `shutdown` changes. The lab uses it for its
/// API; tests use it for webhook doubles.
pub async fn serve(
    listener: TcpListener,
    app: axum::Router,
    tls: Option<Arc<rustls::ServerConfig>>,
    mut shutdown: tokio_watch::Receiver<bool>,
) {
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    let mut conns = tokio::task::JoinSet::new();
    loop {
        let (stream, _) = tokio::select! {
            r = listener.accept() => match r {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    continue;
                }
            },
            _ = shutdown.changed() => break,
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let acceptor = acceptor.clone();
        conns.spawn(async move {
            let svc = hyper_util::service::TowerToHyperService::new(app);
            let builder = hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new());
            let res = match acceptor {
                Some(a) => match a.accept(stream).await {
                    Ok(tls) => {
                        builder
                            .serve_connection_with_upgrades(hyper_util::rt::TokioIo::new(tls), svc)
                            .await
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, "TLS handshake failed");
                        return;
                    }
                },
                None => {
                    builder
                        .serve_connection_with_upgrades(hyper_util::rt::TokioIo::new(stream), svc)
                        .await
                }
            };
            if let Err(e) = res {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
        while conns.try_join_next().is_some() {}
    }
    conns.abort_all();
}

/// A running lab server. Dropping it stops the server (like [`LabHandle::shutdown`], without waiting).
pub struct LabHandle {
    shared: Arc<Shared>,
    url: String,
    addr: SocketAddr,
    kubeconfig: PathBuf,
    owned_kubeconfig: bool,
    ca_pem: Option<String>,
    token: Option<String>,
    shutdown_tx: tokio_watch::Sender<bool>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl std::fmt::Debug for LabHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LabHandle")
            .field("url", &self.url)
            .field("kubeconfig", &self.kubeconfig)
            .finish()
    }
}

impl LabHandle {
    /// Base URL, e.g. `http://127.0.0.1:41234`.
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The kubeconfig written for this server.
    pub fn kubeconfig_path(&self) -> &Path {
        &self.kubeconfig
    }

    /// PEM of the CA that signed the server certificate (TLS only).
    pub fn ca_pem(&self) -> Option<&str> {
        self.ca_pem.as_deref()
    }

    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// A kube client configured from the lab's kubeconfig.
    pub async fn client(&self) -> Result<kube::Client, LabError> {
        self.client_with_agent(None).await
    }

    /// A kube client that names itself `agent` in its User-Agent, as danm's binaries do (`svcwatcher/test`): a test
    /// that runs a component's code in-process gives it such a client, so the audit (`DANM_LAB_AUDIT`) attributes
    /// its calls to that component, apart from the test's own set-up and checks.
    pub async fn client_as(&self, agent: &str) -> Result<kube::Client, LabError> {
        self.client_with_agent(Some(agent)).await
    }

    async fn client_with_agent(&self, agent: Option<&str>) -> Result<kube::Client, LabError> {
        let err = |message: String| LabError::Client {
            path: self.kubeconfig.clone(),
            message,
        };
        let kc = kube::config::Kubeconfig::read_from(&self.kubeconfig).map_err(|e| err(e.to_string()))?;
        let mut cfg = kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
            .await
            .map_err(|e| err(e.to_string()))?;
        if let Some(agent) = agent {
            let value = axum::http::HeaderValue::from_str(agent)
                .map_err(|e| err(format!("User-Agent {agent:?}: {e}")))?;
            cfg.headers.push((axum::http::header::USER_AGENT, value));
        }
        kube::Client::try_from(cfg).map_err(|e| err(e.to_string()))
    }

    /// Installs a fault (fail the next N writes of a resource, or add latency).
    pub fn inject(&self, fault: Fault) {
        self.shared.faults.add(fault);
    }

    /// Removes every installed fault.
    pub fn clear_faults(&self) {
        self.shared.faults.clear();
    }

    /// Routes webhooks whose `clientConfig.service` is `namespace/name` to `base_url` (e.g. `https://127.0.0.1:9443`).
    pub fn map_webhook_service(&self, namespace_name: &str, base_url: &str) {
        self.shared
            .admission
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .services
            .insert(namespace_name.into(), base_url.into());
    }

    /// Skip TLS verification of webhooks without a `caBundle`.
    pub fn set_webhook_insecure(&self, insecure: bool) {
        self.shared
            .admission
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insecure = insecure;
    }

    /// Creates (or, if they exist, replaces) every object of the YAML manifests at `path` (a file or a directory of
    /// `*.yaml`/`*.yml`/`*.json`, multi-document allowed), without admission, like a cluster bootstrap would.
    /// Returns `kind/name` of each object.
    pub fn apply_manifests(&self, path: &Path) -> Result<Vec<String>, LabError> {
        let err = |p: &Path, message: String| LabError::Manifest {
            path: p.to_path_buf(),
            message,
        };
        let mut files = Vec::new();
        if path.is_dir() {
            let rd = std::fs::read_dir(path).map_err(|e| err(path, e.to_string()))?;
            files.extend(rd.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| {
                p.extension()
                    .is_some_and(|x| x == "yaml" || x == "yml" || x == "json")
            }));
            files.sort();
        } else {
            files.push(path.to_path_buf());
        }
        let mut done = Vec::new();
        for f in files {
            let text = std::fs::read_to_string(&f).map_err(|e| err(&f, e.to_string()))?;
            for doc in serde_yaml::Deserializer::from_str(&text) {
                let v: serde_json::Value =
                    serde::Deserialize::deserialize(doc).map_err(|e| err(&f, e.to_string()))?;
                // A kustomization in the directory describes the others; it is not an object to store.
                if v.is_null()
                    || v["apiVersion"]
                        .as_str()
                        .is_some_and(|a| a.starts_with("kustomize.config.k8s.io/"))
                {
                    continue;
                }
                done.push(self.apply_object(v).map_err(|e| err(&f, e.to_string()))?);
            }
        }
        self.shared.notify();
        Ok(done)
    }

    fn apply_object(&self, mut v: serde_json::Value) -> Result<String, status::ApiError> {
        let mut st = self.shared.store.lock().unwrap_or_else(PoisonError::into_inner);
        let av = v["apiVersion"].as_str().unwrap_or_default().to_string();
        let kind = v["kind"].as_str().unwrap_or_default().to_string();
        let def = st
            .registry
            .by_kind(&av, &kind)
            .cloned()
            .ok_or_else(|| status::ApiError::bad_request(format!("no resource serves {kind} at {av}")))?;
        let version = av.rsplit('/').next().unwrap_or_default().to_string();
        store::check_body(&def, &version, &mut v)?;
        let ns = v
            .pointer("/metadata/namespace")
            .and_then(|n| n.as_str())
            .unwrap_or("default")
            .to_string();
        let name = store::name_of(&v).to_string();
        if st.get(&def, &ns, &name).is_ok() {
            let (old, new) = st.prepare_update(&def, &ns, &name, v, false)?;
            let base = old["metadata"]["resourceVersion"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            st.commit_update(&def, new, &base, false)?;
        } else {
            let p = st.prepare_create(&def, &ns, v)?;
            st.commit_create(&def, p, false)?;
        }
        Ok(format!("{}/{name}", def.singular))
    }

    /// The current global resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.shared
            .store
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .rv()
    }

    /// Stops accepting, ends open connections and watches, and removes a kubeconfig the lab chose itself.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown_tx.send(true);
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }

    /// Blocks until the server task ends (it ends only on shutdown).
    pub async fn wait(mut self) {
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }
}

impl Drop for LabHandle {
    fn drop(&mut self) {
        let _ = self.shutdown_tx.send(true);
        if self.owned_kubeconfig {
            let _ = std::fs::remove_file(&self.kubeconfig);
        }
    }
}
