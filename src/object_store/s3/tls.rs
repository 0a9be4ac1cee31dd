//! TLS for `https://` endpoints: rustls (ring provider) over the shard's glommio TCP streams.
//!
//! Trust: the CA certificates in the PEM file named by `AWS_CA_BUNDLE`, as the AWS SDKs do,
//! or else the Mozilla roots compiled in (webpki-roots), so the agent needs no system store.
//! The configuration is built once per shard when its store opens.

use std::path::Path;
use std::sync::Arc;

use futures_rustls::pki_types::pem::PemObject;
use futures_rustls::pki_types::CertificateDer;
use futures_rustls::rustls::{ClientConfig, RootCertStore};

/// A client configuration trusting `ca_bundle`'s certificates, or the webpki roots.
pub fn client_config(ca_bundle: Option<&Path>) -> Result<Arc<ClientConfig>, String> {
    let mut roots = RootCertStore::empty();
    match ca_bundle {
        Some(path) => {
            let certs = CertificateDer::pem_file_iter(path)
                .map_err(|e| format!("CA bundle {}: {e}", path.display()))?;
            for cert in certs {
                let cert = cert.map_err(|e| format!("CA bundle {}: {e}", path.display()))?;
                roots
                    .add(cert)
                    .map_err(|e| format!("CA bundle {}: {e}", path.display()))?;
            }
            if roots.is_empty() {
                return Err(format!("CA bundle {} holds no certificate", path.display()));
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let provider = Arc::new(futures_rustls::rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS configuration: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_roots_and_bad_bundles() {
        let config = client_config(None).expect("webpki roots");
        assert!(config.alpn_protocols.is_empty(), "HTTP/1.1 only, no ALPN");
        let dir = tempfile::tempdir().expect("tempdir");
        let missing = dir.path().join("missing.pem");
        assert!(client_config(Some(&missing))
            .unwrap_err()
            .contains("missing.pem"));
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "no certificates here\n").expect("write");
        assert!(client_config(Some(&empty))
            .unwrap_err()
            .contains("no certificate"));
    }
}
