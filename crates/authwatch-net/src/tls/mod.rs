//! TLS for every socket, as the Collector's `configtls`: rustls with the `ring` provider, TLS 1.2
//! and 1.3.
//!
//! - [`TlsServerConfig`] (`cert_file`, `key_file`, `client_ca_file`): the `tls` block of every
//!   server, and [`TlsIncoming`], the accept loop that hands tonic finished handshakes.
//! - [`TlsClientConfig`] (`insecure`, `ca_file`, `cert_file`, `key_file`,
//!   `insecure_skip_verify`, `server_name_override`): the `tls` block of every client: the
//!   `otlp` and `otlphttp` exporters, the `synthetic` probes, and through
//!   [`http_client`](crate::http_client) every reqwest client.
//! - [`ServerVerifier`]: the one server-certificate verifier behind every client.
//!
//! `validate` only checks which fields are set; the files are read and checked (parsable, key
//! matching the certificate, CA usable) when the component is built, so a bad file fails startup
//! with an error naming the option and the file.

mod client;
pub(crate) mod server;
mod verify;

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::RootCertStore;

pub use self::client::{Identity, IdentityPem, TlsClientConfig};
pub use self::server::{TlsIncoming, TlsServerConfig, HANDSHAKE_TIMEOUT, MAX_PENDING_HANDSHAKES};
pub use self::verify::ServerVerifier;

/// Why the TLS settings cannot be used. Every message names the option (and the file).
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("tls::{option}: cannot read `{}`: {source}", path.display())]
    Read {
        option: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("tls::{option}: `{}` {problem}", path.display())]
    Content {
        option: &'static str,
        path: PathBuf,
        problem: FileProblem,
    },
    #[error("tls::key_file: `{}` does not belong to the certificate in `{}` ({source}); give the key the certificate was issued for", key.display(), cert.display())]
    KeyMismatch {
        cert: PathBuf,
        key: PathBuf,
        #[source]
        source: rustls::Error,
    },
    #[error("tls::server_name_override: `{0}` is not a DNS name or an IP address")]
    ServerName(String),
    #[error("cannot set up TLS: {0}")]
    Setup(#[source] rustls::Error),
}

/// What is wrong with a PEM file's content.
#[derive(Debug, thiserror::Error)]
pub enum FileProblem {
    #[error("is not valid PEM: {0}")]
    NotPem(rustls::pki_types::pem::Error),
    #[error("holds no certificate; expected PEM `-----BEGIN CERTIFICATE-----` blocks")]
    NoCertificate,
    #[error("holds no private key; expected a PEM `PRIVATE KEY`, `RSA PRIVATE KEY` or `EC PRIVATE KEY` block")]
    NoKey,
    #[error("is not a valid PEM private key: {0}")]
    BadKey(rustls::pki_types::pem::Error),
    #[error("holds a certificate that cannot be a trust anchor: {0}")]
    NotTrustAnchor(rustls::Error),
    #[error("cannot be used to verify {peers}: {source}")]
    Unusable {
        peers: &'static str,
        source: rustls::client::VerifierBuilderError,
    },
}

impl From<TlsError> for authwatch_core::BuildError {
    fn from(e: TlsError) -> Self {
        authwatch_core::BuildError::component(e)
    }
}

/// The crypto provider of every TLS config.
pub(crate) fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read_file(option: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        option,
        path: path.to_owned(),
        source,
    })
}

fn content(option: &'static str, path: &Path, problem: FileProblem) -> TlsError {
    TlsError::Content {
        option,
        path: path.to_owned(),
        problem,
    }
}

/// The certificates of a PEM file; at least one.
pub(crate) fn read_certs(
    option: &'static str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read_file(option, path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| content(option, path, FileProblem::NotPem(e)))?;
    if certs.is_empty() {
        return Err(content(option, path, FileProblem::NoCertificate));
    }
    Ok(certs)
}

/// The private key of a PEM file (`key_file`): PKCS#8, PKCS#1 (RSA) or SEC1 (EC).
pub(crate) fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let pem = read_file("key_file", path)?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| {
        let problem = match e {
            rustls::pki_types::pem::Error::NoItemsFound => FileProblem::NoKey,
            e => FileProblem::BadKey(e),
        };
        content("key_file", path, problem)
    })
}

/// The certificates of a PEM file as trust anchors.
pub(crate) fn read_roots(option: &'static str, path: &Path) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for ca in read_certs(option, path)? {
        roots
            .add(ca)
            .map_err(|e| content(option, path, FileProblem::NotTrustAnchor(e)))?;
    }
    Ok(roots)
}

#[cfg(test)]
pub(crate) mod test_files {
    //! PEM files in a temporary directory, for the tests.

    use std::path::PathBuf;

    pub(crate) struct Files {
        pub(crate) dir: PathBuf,
    }

    impl Files {
        pub(crate) fn new(name: &str) -> Self {
            let dir =
                std::env::temp_dir().join(format!("authwatch-tls-{name}-{}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            Files { dir }
        }

        pub(crate) fn write(&self, name: &str, content: &str) -> PathBuf {
            let p = self.dir.join(name);
            std::fs::write(&p, content).unwrap();
            p
        }
    }

    impl Drop for Files {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    /// A self-signed certificate for `localhost` and its key, as PEM.
    pub(crate) fn self_signed() -> (String, String) {
        let c = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
        (c.cert.pem(), c.signing_key.serialize_pem())
    }
}
