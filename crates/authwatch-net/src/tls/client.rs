//! Client TLS: the `tls` block of every client, as the Collector's `configtls.ClientConfig`.
//!
//! ```yaml
//! tls:
//!   insecure: false                 # gRPC `host:port` endpoints: plaintext (h2c) instead of TLS
//!   ca_file: /etc/ssl/ca.pem        # trust only these CAs (default: the web's root CAs)
//!   cert_file: /etc/ssl/client.pem  # client certificate (mutual TLS), with key_file
//!   key_file: /etc/ssl/client.key
//!   insecure_skip_verify: false     # do not verify the server certificate (tests only)
//!   server_name_override: ""        # the name the certificate must carry, instead of the host
//! ```

use std::path::{Path, PathBuf};
use std::sync::Arc;

use authwatch_core::Validator;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::RootCertStore;
use serde::{Deserialize, Serialize};

use super::{
    content, provider, read_certs, read_file, read_key, read_roots, FileProblem, ServerVerifier,
    TlsError,
};

/// `tls` settings of a client. Every client reads every field but `insecure`, which only a gRPC
/// `host:port` endpoint reads (a URL says it with its scheme).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsClientConfig {
    /// Plaintext (h2c) instead of TLS for a gRPC `host:port` endpoint.
    pub insecure: bool,
    /// PEM CA certificates to trust instead of the web's root CAs (webpki-roots).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate chain (mutual TLS); needs `key_file`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cert_file: Option<PathBuf>,
    /// PEM private key of `cert_file`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_file: Option<PathBuf>,
    /// Accept any server certificate. For tests only.
    pub insecure_skip_verify: bool,
    /// The name the server certificate must be valid for, instead of the host dialled (gRPC
    /// and the probes also send it as SNI). Empty: not set, as in the Collector.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_name_override: Option<String>,
}

/// A client certificate chain and its key, read and checked.
pub struct Identity {
    pub certs: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
}

/// A client certificate chain and its key as PEM, read and checked.
pub struct IdentityPem {
    pub cert: Vec<u8>,
    pub key: Vec<u8>,
}

impl TlsClientConfig {
    /// Rules at `at` (e.g. `tls`, `checks::0::tls`). Pure: no file is read here.
    pub fn validate(&self, v: &mut Validator, at: &str) {
        let empty = |p: &Option<PathBuf>| p.as_deref().is_some_and(|p| p.as_os_str().is_empty());
        match (&self.cert_file, &self.key_file) {
            (Some(_), None) => v.error(
                &format!("{at}::key_file"),
                "must be set when `cert_file` is set: the certificate's private key",
            ),
            (None, Some(_)) => v.error(
                &format!("{at}::cert_file"),
                "must be set when `key_file` is set: the certificate the key belongs to",
            ),
            _ => {}
        }
        for (option, path) in [
            ("ca_file", &self.ca_file),
            ("cert_file", &self.cert_file),
            ("key_file", &self.key_file),
        ] {
            if empty(path) {
                v.error(&format!("{at}::{option}"), "must not be empty; remove it");
            }
        }
        if let Some(name) = self.name_override() {
            if ServerName::try_from(name).is_err() {
                v.error(
                    &format!("{at}::server_name_override"),
                    format!("`{name}` is not a DNS name or an IP address; remove it to verify the endpoint's host"),
                );
            }
        }
        if self.insecure_skip_verify && self.ca_file.is_some() {
            v.warn(
                &format!("{at}::insecure_skip_verify"),
                "`ca_file` is ignored: certificates are not verified",
            );
        }
    }

    /// [`TlsClientConfig::validate`] for a client that dials URLs, where `insecure` has no
    /// effect.
    pub fn validate_for_urls(&self, v: &mut Validator, at: &str) {
        self.validate(v, at);
        if self.insecure {
            v.warn(
                &format!("{at}::insecure"),
                "has no effect: the URL's scheme (`http://` or `https://`) says whether TLS is used",
            );
        }
    }

    /// `server_name_override`, unless empty.
    pub fn name_override(&self) -> Option<&str> {
        self.server_name_override
            .as_deref()
            .filter(|n| !n.is_empty())
    }

    /// The server name to verify (and send) instead of the host dialled, if set.
    pub fn server_name(&self) -> Result<Option<ServerName<'static>>, TlsError> {
        self.name_override()
            .map(|n| {
                ServerName::try_from(n.to_owned()).map_err(|_| TlsError::ServerName(n.to_owned()))
            })
            .transpose()
    }

    /// The certificate verifier: `ca_file` or the web's root CAs, none with
    /// `insecure_skip_verify`; `server_name_override` when set.
    pub fn verifier(&self) -> Result<ServerVerifier, TlsError> {
        let roots = if self.insecure_skip_verify {
            None
        } else {
            Some(match &self.ca_file {
                Some(path) => read_roots("ca_file", path)?,
                None => RootCertStore::from_iter(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
            })
        };
        ServerVerifier::new(roots, self.server_name()?).map_err(|source| match &self.ca_file {
            Some(path) => content(
                "ca_file",
                path,
                FileProblem::Unusable {
                    peers: "servers",
                    source,
                },
            ),
            None => TlsError::Setup(rustls::Error::General(source.to_string())),
        })
    }

    /// The client certificate and key (mutual TLS), read and checked; `None` without
    /// `cert_file` and `key_file`.
    pub fn identity(&self) -> Result<Option<Identity>, TlsError> {
        let (Some(cert), Some(key)) = (&self.cert_file, &self.key_file) else {
            return Ok(None);
        };
        let identity = Identity {
            certs: read_certs("cert_file", cert)?,
            key: read_key(key)?,
        };
        // The key must belong to the certificate: found now rather than at the first handshake.
        self.with_identity(
            rustls::ClientConfig::builder_with_provider(provider())
                .with_safe_default_protocol_versions()
                .map_err(TlsError::Setup)?
                .with_root_certificates(RootCertStore::empty()),
            Identity {
                certs: identity.certs.clone(),
                key: identity.key.clone_key(),
            },
            cert,
            key,
        )?;
        Ok(Some(identity))
    }

    /// The client certificate and key as PEM (for tonic's `Identity::from_pem`), checked as
    /// [`TlsClientConfig::identity`] does.
    pub fn identity_pem(&self) -> Result<Option<IdentityPem>, TlsError> {
        let (Some(cert), Some(key)) = (&self.cert_file, &self.key_file) else {
            return Ok(None);
        };
        self.identity()?;
        Ok(Some(IdentityPem {
            cert: read_file("cert_file", cert)?,
            key: read_file("key_file", key)?,
        }))
    }

    /// A rustls client config with `verifier`, the client certificate if any, and `alpn`.
    pub fn rustls_config(
        &self,
        verifier: Arc<ServerVerifier>,
        alpn: &[&[u8]],
    ) -> Result<rustls::ClientConfig, TlsError> {
        let builder = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(TlsError::Setup)?
            .dangerous()
            .with_custom_certificate_verifier(verifier);
        let mut config = match (self.identity()?, &self.cert_file, &self.key_file) {
            (Some(id), Some(cert), Some(key)) => self.with_identity(builder, id, cert, key)?,
            _ => builder.with_no_client_auth(),
        };
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Ok(config)
    }

    fn with_identity(
        &self,
        builder: rustls::ConfigBuilder<rustls::ClientConfig, rustls::client::WantsClientCert>,
        id: Identity,
        cert: &Path,
        key: &Path,
    ) -> Result<rustls::ClientConfig, TlsError> {
        builder
            .with_client_auth_cert(id.certs, id.key)
            .map_err(|source| TlsError::KeyMismatch {
                cert: cert.to_owned(),
                key: key.to_owned(),
                source,
            })
    }
}

#[cfg(test)]
mod tests;
