//! Self-signed certificates for the lab (a CA plus a leaf for loopback names) and the rustls server config.

use std::sync::Arc;

/// A CA and a leaf certificate it signed, all PEM.
#[derive(Debug, Clone)]
pub struct CertBundle {
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
}

/// Certificate generation or loading failures.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("generating a certificate: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("building the TLS config: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("reading PEM: {0}")]
    Pem(String),
}

/// A fresh CA and a leaf certificate for `sans` (DNS names or IP addresses) signed by it.
pub fn generate(sans: &[&str]) -> Result<CertBundle, TlsError> {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name.push(DnType::CommonName, "danm-lab-ca");
    let ca_key = KeyPair::generate()?;
    let ca_cert = ca.self_signed(&ca_key)?;
    let mut leaf = CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>())?;
    leaf.distinguished_name
        .push(DnType::CommonName, sans.first().copied().unwrap_or("localhost"));
    let key = KeyPair::generate()?;
    let cert = leaf.signed_by(&key, &ca_cert, &ca_key)?;
    Ok(CertBundle {
        ca_pem: ca_cert.pem(),
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// A rustls server config for a PEM certificate chain and key, offering HTTP/2 and HTTP/1.1.
pub fn server_config(cert_pem: &str, key_pem: &str) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let certs = rustls_pemfile::certs(&mut cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Pem(e.to_string()))?;
    let key = rustls_pemfile::private_key(&mut key_pem.as_bytes())
        .map_err(|e| TlsError::Pem(e.to_string()))?
        .ok_or_else(|| TlsError::Pem("no private key".into()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}
