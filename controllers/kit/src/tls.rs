//! HTTPS serving with rustls: the certificate chain and key come from PEM files and are reloaded when the files
//! change (checked by a background task), so a rotated Secret takes effect without a restart.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::PoisonError;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::KitError;

/// The PEM files of a server certificate (leaf first, optional chain) and its private key.
#[derive(Clone, Debug)]
pub struct CertFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl CertFiles {
    fn load(&self, provider: &CryptoProvider) -> Result<CertifiedKey, KitError> {
        let read = |what, path: &Path| {
            std::fs::read(path).map_err(|source| KitError::Read {
                what,
                path: path.display().to_string(),
                source,
            })
        };
        let cert_pem = read("certificate", &self.cert)?;
        let key_pem = read("private key", &self.key)?;
        let chain: Vec<CertificateDer<'static>> = rustls_pemfile::certs(&mut cert_pem.as_slice())
            .collect::<Result<_, _>>()
            .map_err(|_| KitError::Pem {
                what: "certificate",
                path: self.cert.display().to_string(),
            })?;
        if chain.is_empty() {
            return Err(KitError::Pem {
                what: "certificate",
                path: self.cert.display().to_string(),
            });
        }
        let key: PrivateKeyDer<'static> = rustls_pemfile::private_key(&mut key_pem.as_slice())
            .ok()
            .flatten()
            .ok_or_else(|| KitError::Pem {
                what: "private key",
                path: self.key.display().to_string(),
            })?;
        CertifiedKey::from_der(chain, key, provider).map_err(|source| KitError::Tls {
            cert: self.cert.display().to_string(),
            key: self.key.display().to_string(),
            source,
        })
    }

    fn mtimes(&self) -> (Option<SystemTime>, Option<SystemTime>) {
        let m = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
        (m(&self.cert), m(&self.key))
    }
}

/// A certificate resolver serving the current contents of [`CertFiles`].
#[derive(Debug)]
pub struct ReloadingCert {
    files: CertFiles,
    provider: Arc<CryptoProvider>,
    current: RwLock<Arc<CertifiedKey>>,
    seen: RwLock<(Option<SystemTime>, Option<SystemTime>)>,
}

impl ReloadingCert {
    /// Loads the files once; fails when they are missing or invalid.
    pub fn new(files: CertFiles) -> Result<Arc<Self>, KitError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let seen = files.mtimes();
        let key = files.load(&provider)?;
        Ok(Arc::new(ReloadingCert {
            files,
            provider,
            current: RwLock::new(Arc::new(key)),
            seen: RwLock::new(seen),
        }))
    }

    /// Reloads when a file's modification time changed. A broken new pair is logged and the old one kept.
    /// Returns whether a new certificate is now served.
    pub fn reload_if_changed(&self) -> bool {
        let now = self.files.mtimes();
        if *self.seen.read().unwrap_or_else(PoisonError::into_inner) == now {
            return false;
        }
        *self.seen.write().unwrap_or_else(PoisonError::into_inner) = now;
        match self.files.load(&self.provider) {
            Ok(key) => {
                *self.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(key);
                tracing::info!(cert = %self.files.cert.display(), "reloaded the TLS certificate");
                true
            }
            Err(e) => {
                tracing::warn!(error = %e, "the changed TLS certificate cannot be loaded; keeping the previous one");
                false
            }
        }
    }

    /// Polls the files every `every` until the process ends.
    pub fn spawn_watcher(self: &Arc<Self>, every: Duration) -> tokio::task::JoinHandle<()> {
        let me = Arc::clone(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                me.reload_if_changed();
            }
        })
    }

    /// A rustls server config (TLS 1.2/1.3, ALPN h2 + http/1.1) that resolves through this certificate.
    pub fn server_config(self: &Arc<Self>) -> Result<Arc<ServerConfig>, KitError> {
        let tls_err = |source| KitError::Tls {
            cert: self.files.cert.display().to_string(),
            key: self.files.key.display().to_string(),
            source,
        };
        let mut cfg = ServerConfig::builder_with_provider(Arc::clone(&self.provider))
            .with_safe_default_protocol_versions()
            .map_err(tls_err)?
            .with_no_client_auth()
            .with_cert_resolver(Arc::clone(self) as Arc<dyn ResolvesServerCert>);
        cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Arc::new(cfg))
    }
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(
            &self.current.read().unwrap_or_else(PoisonError::into_inner),
        ))
    }
}

/// Serves `router` over HTTPS on `listener` until `shutdown` resolves. Each connection gets `handshake_timeout` for
/// the TLS handshake; HTTP/1.1 and HTTP/2 are both spoken.
pub async fn serve_tls(
    listener: TcpListener,
    router: Router,
    tls: Arc<ServerConfig>,
    handshake_timeout: Duration,
    shutdown: impl std::future::Future<Output = ()> + Send,
) {
    let acceptor = TlsAcceptor::from(tls);
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer): (_, SocketAddr) = tokio::select! {
            res = listener.accept() => match res {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => return,
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let service = TowerToHyperService::new(router.clone());
        tokio::spawn(async move {
            let stream = match tokio::time::timeout(handshake_timeout, acceptor.accept(tcp)).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%peer, "TLS handshake timed out");
                    return;
                }
            };
            if let Err(e) = Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
}

/// Binds a TCP listener, naming the address on failure.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, KitError> {
    TcpListener::bind(addr).await.map_err(|source| KitError::Bind {
        addr: addr.to_string(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_pair(dir: &Path, cn: &str) -> CertFiles {
        let ck = rcgen::generate_simple_self_signed(vec![cn.to_owned()]).unwrap();
        let files = CertFiles {
            cert: dir.join("cert.pem"),
            key: dir.join("key.pem"),
        };
        std::fs::write(&files.cert, ck.cert.pem()).unwrap();
        std::fs::write(&files.key, ck.key_pair.serialize_pem()).unwrap();
        files
    }

    #[test]
    fn a_rewritten_certificate_is_served_after_reload() {
        let dir = tempfile::tempdir().unwrap();
        let files = write_pair(dir.path(), "one.example");
        let rc = ReloadingCert::new(files.clone()).unwrap();
        let before = rc.current.read().unwrap_or_else(PoisonError::into_inner).cert[0].clone();
        assert!(!rc.reload_if_changed(), "nothing changed yet");
        std::thread::sleep(Duration::from_millis(20));
        write_pair(dir.path(), "two.example");
        // Force a different mtime even on coarse file systems.
        let later = SystemTime::now() + Duration::from_secs(2);
        std::fs::File::options()
            .write(true)
            .open(&files.cert)
            .unwrap()
            .set_modified(later)
            .unwrap();
        assert!(rc.reload_if_changed());
        assert_ne!(
            rc.current.read().unwrap_or_else(PoisonError::into_inner).cert[0],
            before
        );
    }

    #[test]
    fn a_missing_key_file_is_reported_with_its_path() {
        let dir = tempfile::tempdir().unwrap();
        let mut files = write_pair(dir.path(), "x.example");
        files.key = dir.path().join("nope.pem");
        let err = ReloadingCert::new(files).unwrap_err().to_string();
        assert!(err.contains("nope.pem"), "{err}");
    }
}
