//! Server TLS: the `tls` block of every server, loading and checking its PEM files at build
//! time, and an accept loop that turns a bound [`TcpListener`] into a stream of TLS connections
//! for tonic.
//!
//! ```yaml
//! tls:
//!   cert_file: /etc/authwatch/server.crt     # PEM: the server certificate, then its chain
//!   key_file: /etc/authwatch/server.key      # PEM: PKCS#8, PKCS#1 (RSA) or SEC1 (EC) key
//!   client_ca_file: /etc/authwatch/ca.crt    # optional: mutual TLS, clients must present a
//!                                            # certificate signed by one of these CAs
//! ```
//!
//! Handshakes run concurrently, off the accept loop, each bounded by [`HANDSHAKE_TIMEOUT`] and
//! at most [`MAX_PENDING_HANDSHAKES`] at a time, so a client that connects and says nothing holds
//! neither the server nor other clients. HTTP servers serve TLS through
//! [`serve_http`](crate::serve_http), which calls [`handshake`] per connection (and counts it
//! against `max_connections`); gRPC uses [`TlsIncoming`]. A failed handshake (plaintext client,
//! untrusted or missing client certificate) closes that connection and is logged at debug.

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use authwatch_core::Validator;
use rustls::server::WebPkiClientVerifier;
use rustls::ServerConfig;
use serde::{Deserialize, Serialize};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinSet;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::{content, provider, read_certs, read_key, read_roots, FileProblem, TlsError};

/// How long a client has to complete the TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Handshakes in progress at once; further connections wait in the kernel's accept queue.
pub const MAX_PENDING_HANDSHAKES: usize = 256;

/// `tls`: serve over TLS with this certificate; with `client_ca_file`, require client
/// certificates (mutual TLS).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsServerConfig {
    /// PEM file with the server certificate first, then any intermediates.
    pub cert_file: PathBuf,
    /// PEM file with the certificate's private key.
    pub key_file: PathBuf,
    /// PEM file with the CA certificates client certificates must chain to. When set, clients
    /// without a valid certificate are refused during the handshake.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_ca_file: Option<PathBuf>,
}

impl TlsServerConfig {
    /// Cross-field rules, at `at` (e.g. `protocols::grpc::tls`). Pure: no file is read here.
    pub fn validate(&self, v: &mut Validator, at: &str) {
        let empty = |p: &Path| p.as_os_str().is_empty();
        match (empty(&self.cert_file), empty(&self.key_file)) {
            (true, true) => v.error(
                at,
                "set `cert_file` and `key_file` to serve TLS, or remove `tls` to serve plaintext",
            ),
            (true, false) => v.error(
                &format!("{at}::cert_file"),
                "must be set when `key_file` is set: the certificate the key belongs to",
            ),
            (false, true) => v.error(
                &format!("{at}::key_file"),
                "must be set when `cert_file` is set: the certificate's private key",
            ),
            (false, false) => {}
        }
        if self.client_ca_file.as_deref().is_some_and(empty) {
            v.error(
                &format!("{at}::client_ca_file"),
                "must not be empty; remove it to accept clients without certificates",
            );
        }
    }

    /// Whether clients must present a certificate.
    pub fn is_mutual(&self) -> bool {
        self.client_ca_file.is_some()
    }

    /// Reads and checks the files and builds the rustls server config, offering `alpn`
    /// protocols (e.g. `h2`, `http/1.1`).
    pub fn load(&self, alpn: &[&[u8]]) -> Result<Arc<ServerConfig>, TlsError> {
        let certs = read_certs("cert_file", &self.cert_file)?;
        let key = read_key(&self.key_file)?;
        let provider = provider();
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(TlsError::Setup)?;
        let builder = match &self.client_ca_file {
            None => builder.with_no_client_auth(),
            Some(ca_path) => {
                let roots = read_roots("client_ca_file", ca_path)?;
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                        .build()
                        .map_err(|source| {
                            content(
                                "client_ca_file",
                                ca_path,
                                FileProblem::Unusable {
                                    peers: "clients",
                                    source,
                                },
                            )
                        })?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let mut config =
            builder
                .with_single_cert(certs, key)
                .map_err(|source| TlsError::KeyMismatch {
                    cert: self.cert_file.clone(),
                    key: self.key_file.clone(),
                    source,
                })?;
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Ok(Arc::new(config))
    }
}

// === impl TlsIncoming ===

/// TLS connections accepted on a listener, handshakes done. A [`futures::Stream`] for tonic's
/// `serve_with_incoming*` and an [`axum::serve::Listener`] for `axum::serve`.
///
/// The accept loop stops when `shutdown` is cancelled or this value is dropped; handshakes
/// still in progress are then abandoned.
pub struct TlsIncoming {
    rx: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: io::Result<SocketAddr>,
}

impl TlsIncoming {
    pub fn new(
        listener: TcpListener,
        config: Arc<ServerConfig>,
        shutdown: CancellationToken,
    ) -> Self {
        let local = listener.local_addr();
        let (tx, rx) = mpsc::channel(64);
        tokio::spawn(accept_loop(
            listener,
            TlsAcceptor::from(config),
            tx,
            shutdown,
        ));
        TlsIncoming { rx, local }
    }
}

async fn accept_loop(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    tx: mpsc::Sender<(TlsStream<TcpStream>, SocketAddr)>,
    shutdown: CancellationToken,
) {
    let permits = Arc::new(Semaphore::new(MAX_PENDING_HANDSHAKES));
    let mut handshakes = JoinSet::new();
    loop {
        let permit = tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tx.closed() => break,
            Some(_) = handshakes.join_next(), if !handshakes.is_empty() => continue,
            p = permits.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tx.closed() => break,
            a = listener.accept() => a,
        };
        let (tcp, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                warn!(error = %e, "Cannot accept a connection; retrying in 100ms.");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let tx = tx.clone();
        handshakes.spawn(async move {
            let _permit = permit;
            if let Some(tls) = handshake(&acceptor, tcp, peer).await {
                let _ = tx.send((tls, peer)).await;
            }
        });
    }
    handshakes.abort_all();
}

/// Runs the server side of a TLS handshake within [`HANDSHAKE_TIMEOUT`]; `None` (logged at
/// debug) when it fails or times out, which closes the connection.
pub(crate) async fn handshake(
    acceptor: &TlsAcceptor,
    tcp: TcpStream,
    peer: SocketAddr,
) -> Option<TlsStream<TcpStream>> {
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
        Ok(Ok(tls)) => Some(tls),
        Ok(Err(e)) => {
            debug!(peer = %peer, error = %e, "TLS handshake failed; connection closed.");
            None
        }
        Err(_) => {
            debug!(peer = %peer, "TLS handshake timed out; connection closed.");
            None
        }
    }
}

impl futures::Stream for TlsIncoming {
    type Item = Result<TlsStream<TcpStream>, io::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.rx.poll_recv(cx).map(|c| c.map(|(s, _)| Ok(s)))
    }
}

impl axum::serve::Listener for TlsIncoming {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.rx.recv().await {
            Some(c) => c,
            // The accept loop ended (shutdown): axum's graceful shutdown is under way and stops
            // calling accept; never hand out another connection.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        match &self.local {
            Ok(a) => Ok(*a),
            Err(e) => Err(io::Error::new(e.kind(), e.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validate_cross_field_rules() {
        let errors = |c: &TlsServerConfig| {
            let mut v = Validator::new("");
            c.validate(&mut v, "tls");
            v.errors().iter().map(|e| e.to_string()).collect::<Vec<_>>()
        };
        assert_eq!(
            errors(&TlsServerConfig::default()),
            ["tls: set `cert_file` and `key_file` to serve TLS, or remove `tls` to serve plaintext"]
        );
        let key_only = TlsServerConfig {
            key_file: "k.pem".into(),
            ..Default::default()
        };
        assert_eq!(
            errors(&key_only),
            ["tls::cert_file: must be set when `key_file` is set: the certificate the key belongs to"]
        );
        let cert_only = TlsServerConfig {
            cert_file: "c.pem".into(),
            client_ca_file: Some("".into()),
            ..Default::default()
        };
        assert_eq!(
            errors(&cert_only),
            [
                "tls::key_file: must be set when `cert_file` is set: the certificate's private key",
                "tls::client_ca_file: must not be empty; remove it to accept clients without certificates"
            ]
        );
        let ok = TlsServerConfig {
            cert_file: "/nonexistent/c.pem".into(),
            key_file: "/nonexistent/k.pem".into(),
            client_ca_file: Some("/nonexistent/ca.pem".into()),
        };
        assert!(errors(&ok).is_empty(), "validate must not read files");
    }

    use crate::tls::test_files::{self_signed, Files};

    #[test]
    fn load_checks_files_and_names_them() {
        let f = Files::new("load");
        let (cert, key) = self_signed();
        let (_, other_key) = self_signed();
        let cert_path = f.write("cert.pem", &cert);
        let key_path = f.write("key.pem", &key);
        let config = TlsServerConfig {
            cert_file: cert_path.clone(),
            key_file: key_path.clone(),
            client_ca_file: None,
        };
        let loaded = config.load(&[b"h2"]).unwrap();
        assert_eq!(loaded.alpn_protocols, [b"h2".to_vec()]);

        let with_ca = TlsServerConfig {
            client_ca_file: Some(cert_path.clone()),
            ..config.clone()
        };
        with_ca.load(&[b"h2"]).unwrap();

        let missing = TlsServerConfig {
            cert_file: f.dir.join("nope.pem"),
            ..config.clone()
        };
        let e = missing.load(&[]).unwrap_err().to_string();
        assert!(
            e.starts_with("tls::cert_file: cannot read `") && e.contains("nope.pem"),
            "{e}"
        );

        let not_pem = TlsServerConfig {
            cert_file: f.write("garbage.pem", "hello"),
            ..config.clone()
        };
        let e = not_pem.load(&[]).unwrap_err().to_string();
        assert!(e.contains("garbage.pem` holds no certificate"), "{e}");

        let key_as_cert = TlsServerConfig {
            key_file: cert_path.clone(),
            ..config.clone()
        };
        let e = key_as_cert.load(&[]).unwrap_err().to_string();
        assert!(
            e.starts_with("tls::key_file: `") && e.contains("holds no private key"),
            "{e}"
        );

        let wrong_key = TlsServerConfig {
            key_file: f.write("other.key", &other_key),
            ..config.clone()
        };
        let e = wrong_key.load(&[]).unwrap_err().to_string();
        assert!(e.contains("does not belong to the certificate"), "{e}");

        let bad_ca = TlsServerConfig {
            client_ca_file: Some(key_path),
            ..config
        };
        let e = bad_ca.load(&[]).unwrap_err().to_string();
        assert!(e.starts_with("tls::client_ca_file: `"), "{e}");
    }
}
