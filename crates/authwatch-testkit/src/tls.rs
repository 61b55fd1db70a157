//! TLS for the tests: a small PKI written to PEM files, and a TLS front for the plaintext test
//! servers.

use std::net::SocketAddr;
use std::path::PathBuf;

use authwatch_net::tls::TlsIncoming;
use authwatch_net::TlsServerConfig;
use futures::StreamExt;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

/// A CA, a server certificate for `localhost` and a client certificate (`CN=authwatch test
/// client`), both signed by the CA, as PEM files in their own temporary directory (removed on
/// drop).
pub struct TestPki {
    dir: PathBuf,
    /// The CA certificate: what clients (and servers requiring client certificates) trust.
    pub ca_file: PathBuf,
    /// The server certificate (for `localhost`) and its key.
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    /// The client certificate and its key.
    pub client_cert_file: PathBuf,
    pub client_key_file: PathBuf,
}

impl TestPki {
    /// New certificates; `name` tells the directories of concurrent tests apart.
    pub fn new(name: &str) -> Self {
        let ca_key = KeyPair::generate().expect("a CA key");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "authwatch test CA");
        let ca_cert = ca_params.self_signed(&ca_key).expect("the CA certificate");
        let issuer = Issuer::from_params(&ca_params, &ca_key);
        let signed = |names: Vec<String>, cn: &str| {
            let key = KeyPair::generate().expect("a key");
            let mut params = CertificateParams::new(names).expect("params");
            params.distinguished_name.push(DnType::CommonName, cn);
            let cert = params.signed_by(&key, &issuer).expect("a certificate");
            (cert.pem(), key.serialize_pem())
        };
        let (server_cert, server_key) = signed(vec!["localhost".to_owned()], "localhost");
        let (client_cert, client_key) = signed(Vec::new(), "authwatch test client");
        let dir = std::env::temp_dir().join(format!(
            "authwatch-testkit-pki-{name}-{}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).expect("a temporary directory");
        let write = |file: &str, pem: &str| {
            let path = dir.join(file);
            std::fs::write(&path, pem).expect("write a PEM file");
            path
        };
        TestPki {
            ca_file: write("ca.pem", &ca_cert.pem()),
            cert_file: write("server.pem", &server_cert),
            key_file: write("server.key", &server_key),
            client_cert_file: write("client.pem", &client_cert),
            client_key_file: write("client.key", &client_key),
            dir,
        }
    }

    /// The server's `tls` block; with `mutual`, clients must present a certificate from the CA.
    pub fn server_config(&self, mutual: bool) -> TlsServerConfig {
        TlsServerConfig {
            cert_file: self.cert_file.clone(),
            key_file: self.key_file.clone(),
            client_ca_file: mutual.then(|| self.ca_file.clone()),
        }
    }
}

impl Drop for TestPki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A TLS front for a plaintext server: accepts TLS on a loopback port (ALPN `h2` and
/// `http/1.1`, so HTTP/2 reaches the backend as h2c) and copies the bytes to `backend`. Stops
/// when dropped.
pub struct TlsFront {
    pub addr: SocketAddr,
    shutdown: CancellationToken,
}

impl TlsFront {
    pub async fn start(backend: SocketAddr, tls: &TlsServerConfig) -> TlsFront {
        let config = tls.load(&[b"h2", b"http/1.1"]).expect("the TLS files");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("the bound address");
        let shutdown = CancellationToken::new();
        let mut incoming = TlsIncoming::new(listener, config, shutdown.clone());
        tokio::spawn(async move {
            while let Some(Ok(mut tls)) = incoming.next().await {
                tokio::spawn(async move {
                    if let Ok(mut plain) = TcpStream::connect(backend).await {
                        let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
                    }
                });
            }
        });
        TlsFront { addr, shutdown }
    }
}

impl Drop for TlsFront {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}
