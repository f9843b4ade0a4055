//! TLS for the endpoints, on rustls with the ring provider (the only TLS stack in the binary).

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// Loads a PEM certificate chain and private key into a server configuration. The error says
/// which file failed and why; it never includes key material.
pub fn load_server_config(
    cert_file: &Path,
    key_file: &Path,
) -> Result<Arc<rustls::ServerConfig>, String> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert_file)
        .map_err(|e| {
            format!(
                "cannot read certificate file `{}`: {e}",
                cert_file.display()
            )
        })?
        .collect::<Result<_, _>>()
        .map_err(|e| {
            format!(
                "cannot parse certificate file `{}`: {e}",
                cert_file.display()
            )
        })?;
    if certs.is_empty() {
        return Err(format!("no certificate found in `{}`", cert_file.display()));
    }
    let key = PrivateKeyDer::from_pem_file(key_file).map_err(|e| {
        format!(
            "cannot read a private key from `{}`: {e}",
            key_file.display()
        )
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup failed: {e}"))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| {
            format!(
                "certificate `{}` and key `{}` do not form a usable pair: {e}",
                cert_file.display(),
                key_file.display()
            )
        })?;
    Ok(Arc::new(config))
}
