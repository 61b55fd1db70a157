//! The one server-certificate verifier of every TLS client.

use std::sync::{Arc, Mutex};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{VerifierBuilderError, WebPkiServerVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};

/// Verifies server certificates as rustls' WebPKI verifier does, against the given roots, or
/// not at all (`insecure_skip_verify`: signatures are still checked, so the handshake is sound,
/// but the peer is not authenticated). With a name override the certificate is checked against
/// that name instead of the one dialled. A [capturing](ServerVerifier::capturing) verifier keeps
/// the server's end-entity certificate, so that its expiry is known even when verification
/// fails (the `synthetic` probes report it).
#[derive(Debug)]
pub struct ServerVerifier {
    /// `None`: no verification.
    webpki: Option<Arc<WebPkiServerVerifier>>,
    provider: Arc<CryptoProvider>,
    name: Option<ServerName<'static>>,
    seen: Option<Mutex<Option<Vec<u8>>>>,
}

impl ServerVerifier {
    /// Verifies against `roots`, or not at all when `None`; against `name` instead of the name
    /// dialled when set.
    pub fn new(
        roots: Option<RootCertStore>,
        name: Option<ServerName<'static>>,
    ) -> Result<Self, VerifierBuilderError> {
        let provider = super::provider();
        let webpki = match roots {
            Some(roots) => Some(
                WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                    .build()?,
            ),
            None => None,
        };
        Ok(ServerVerifier {
            webpki,
            provider,
            name,
            seen: None,
        })
    }

    /// Whether certificates are verified (not `insecure_skip_verify`).
    pub fn verifies(&self) -> bool {
        self.webpki.is_some()
    }

    /// Keeps the end-entity certificate of the last handshake; see [`ServerVerifier::take_seen`].
    pub fn capturing(mut self) -> Self {
        self.seen = Some(Mutex::new(None));
        self
    }

    /// The DER end-entity certificate seen since the last call (capturing verifiers only).
    pub fn take_seen(&self) -> Option<Vec<u8>> {
        self.seen
            .as_ref()?
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
    }
}

impl ServerCertVerifier for ServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if let Some(seen) = &self.seen {
            *seen.lock().unwrap_or_else(|e| e.into_inner()) = Some(end_entity.to_vec());
        }
        match &self.webpki {
            Some(v) => {
                let name = self.name.as_ref().unwrap_or(server_name);
                v.verify_server_cert(end_entity, intermediates, name, ocsp_response, now)
            }
            None => Ok(ServerCertVerified::assertion()),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
