use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use rustls::pki_types::pem::PemObject;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::{TlsAcceptor, TlsConnector};

use super::*;
use crate::tls::test_files::Files;

fn errors(c: &TlsClientConfig) -> (Vec<String>, Vec<String>) {
    let mut v = Validator::new("");
    c.validate_for_urls(&mut v, "tls");
    let (errors, warnings) = v.into_parts();
    (
        errors.iter().map(ToString::to_string).collect(),
        warnings.iter().map(ToString::to_string).collect(),
    )
}

#[test]
fn validate_rules() {
    assert_eq!(errors(&TlsClientConfig::default()), (vec![], vec![]));
    // An empty `server_name_override` is unset, as in the Collector.
    let empty_name = TlsClientConfig {
        server_name_override: Some(String::new()),
        ..Default::default()
    };
    assert_eq!(errors(&empty_name), (vec![], vec![]));
    assert_eq!(empty_name.server_name().unwrap(), None);
    let cert_only = TlsClientConfig {
        cert_file: Some("/c.pem".into()),
        ..Default::default()
    };
    assert_eq!(
        errors(&cert_only).0,
        ["tls::key_file: must be set when `cert_file` is set: the certificate's private key"]
    );
    let key_only = TlsClientConfig {
        key_file: Some("/k.pem".into()),
        ca_file: Some("".into()),
        server_name_override: Some("not a name".into()),
        ..Default::default()
    };
    assert_eq!(
        errors(&key_only).0,
        [
            "tls::cert_file: must be set when `key_file` is set: the certificate the key belongs to",
            "tls::ca_file: must not be empty; remove it",
            "tls::server_name_override: `not a name` is not a DNS name or an IP address; remove it to verify the endpoint's host",
        ]
    );
    let skip = TlsClientConfig {
        insecure: true,
        insecure_skip_verify: true,
        ca_file: Some("/nonexistent/ca.pem".into()),
        server_name_override: Some("collector.internal".into()),
        ..Default::default()
    };
    let (errs, warns) = errors(&skip);
    assert!(errs.is_empty(), "validate must not read files: {errs:?}");
    assert_eq!(
        warns,
        [
            "tls::insecure_skip_verify: `ca_file` is ignored: certificates are not verified",
            "tls::insecure: has no effect: the URL's scheme (`http://` or `https://`) says whether TLS is used",
        ]
    );
}

#[test]
fn every_key_of_the_four_former_structs_decodes() {
    let c: TlsClientConfig = serde_json::from_value(serde_json::json!({
        "insecure": true, "ca_file": "/ca.pem", "cert_file": "/c.pem", "key_file": "/k.pem",
        "insecure_skip_verify": true, "server_name_override": "collector.internal"
    }))
    .unwrap();
    assert!(c.insecure && c.insecure_skip_verify);
    let c: TlsClientConfig = serde_json::from_value(serde_json::json!({})).unwrap();
    assert_eq!(c, TlsClientConfig::default());
    let e = serde_json::from_value::<TlsClientConfig>(serde_json::json!({"client_ca_file": "/x"}))
        .unwrap_err();
    assert!(
        e.to_string().starts_with("unknown field `client_ca_file`"),
        "{e}"
    );
}

/// A CA, a server certificate for `localhost` and a client certificate, all signed by the CA.
struct Pki {
    files: Files,
    ca: PathBuf,
    server: (String, String),
    client_cert: PathBuf,
    client_key: PathBuf,
}

fn pki(name: &str) -> Pki {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "authwatch-net test CA");
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::from_params(&ca_params, &ca_key);
    let signed = |names: Vec<String>| {
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(names)
            .unwrap()
            .signed_by(&key, &issuer)
            .unwrap();
        (cert.pem(), key.serialize_pem())
    };
    let server = signed(vec!["localhost".to_owned()]);
    let (client_cert, client_key) = signed(vec!["client".to_owned()]);
    let files = Files::new(name);
    Pki {
        ca: files.write("ca.pem", &ca_cert.pem()),
        client_cert: files.write("client.pem", &client_cert),
        client_key: files.write("client.key", &client_key),
        server,
        files,
    }
}

/// Serves one TLS handshake with the server certificate (requiring a client certificate from
/// the CA with `mutual`); resolves to whether the server side succeeded.
async fn server(p: &Pki, mutual: bool) -> (std::net::SocketAddr, tokio::task::JoinHandle<bool>) {
    let config = crate::TlsServerConfig {
        cert_file: p.files.write("server.pem", &p.server.0),
        key_file: p.files.write("server.key", &p.server.1),
        client_ca_file: mutual.then(|| p.ca.clone()),
    }
    .load(&[])
    .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        match TlsAcceptor::from(config).accept(tcp).await {
            Ok(mut tls) => {
                // Read what the client sends, so that the handshake is complete on both sides.
                let mut buf = [0u8; 1];
                let _ = tls.read(&mut buf).await;
                !mutual || tls.get_ref().1.peer_certificates().is_some()
            }
            Err(_) => false,
        }
    });
    (addr, task)
}

/// Dials the server as `name` with `config`; whether the client's handshake succeeded.
async fn dial(
    config: &TlsClientConfig,
    verifier: Arc<ServerVerifier>,
    addr: std::net::SocketAddr,
    name: &str,
) -> Result<(), String> {
    let tls = config
        .rustls_config(verifier, &[])
        .map_err(|e| e.to_string())?;
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = ServerName::try_from(name.to_owned()).unwrap();
    let mut stream = TlsConnector::from(Arc::new(tls))
        .connect(name, tcp)
        .await
        .map_err(|e| e.to_string())?;
    let _ = stream.write_all(b"x").await;
    let _ = stream.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn ca_file_is_trusted_and_the_web_roots_are_not_enough() {
    let p = pki("ca");
    let config = TlsClientConfig {
        ca_file: Some(p.ca.clone()),
        ..Default::default()
    };
    let (addr, server_side) = server(&p, false).await;
    dial(
        &config,
        Arc::new(config.verifier().unwrap()),
        addr,
        "localhost",
    )
    .await
    .unwrap();
    assert!(server_side.await.unwrap());

    let web = TlsClientConfig::default();
    let (addr, _server_side) = server(&p, false).await;
    let e = dial(&web, Arc::new(web.verifier().unwrap()), addr, "localhost")
        .await
        .unwrap_err();
    assert!(e.contains("UnknownIssuer"), "{e}");
}

#[tokio::test]
async fn server_name_override_is_what_the_certificate_is_checked_against() {
    let p = pki("name");
    let plain = TlsClientConfig {
        ca_file: Some(p.ca.clone()),
        ..Default::default()
    };
    let (addr, _s) = server(&p, false).await;
    let e = dial(
        &plain,
        Arc::new(plain.verifier().unwrap()),
        addr,
        "127.0.0.1",
    )
    .await
    .unwrap_err();
    assert!(e.contains("not valid for name"), "{e}");
    let overridden = TlsClientConfig {
        server_name_override: Some("localhost".into()),
        ..plain
    };
    let (addr, server_side) = server(&p, false).await;
    dial(
        &overridden,
        Arc::new(overridden.verifier().unwrap()),
        addr,
        "127.0.0.1",
    )
    .await
    .unwrap();
    assert!(server_side.await.unwrap());
}

#[tokio::test]
async fn insecure_skip_verify_accepts_and_a_capturing_verifier_keeps_the_certificate() {
    let p = pki("skip");
    let config = TlsClientConfig {
        insecure_skip_verify: true,
        ..Default::default()
    };
    let verifier = Arc::new(config.verifier().unwrap().capturing());
    assert!(!verifier.verifies());
    let (addr, server_side) = server(&p, false).await;
    dial(&config, verifier.clone(), addr, "anything.example")
        .await
        .unwrap();
    assert!(server_side.await.unwrap());
    let seen = verifier.take_seen().expect("the server certificate");
    let want = CertificateDer::from_pem_slice(p.server.0.as_bytes()).unwrap();
    assert_eq!(seen, want.as_ref());
    assert_eq!(verifier.take_seen(), None, "taken once");

    // A verifier that is not capturing keeps nothing, also on failure.
    let strict = TlsClientConfig::default().verifier().unwrap();
    assert!(strict.verifies());
    assert_eq!(strict.take_seen(), None);
}

#[tokio::test]
async fn the_client_certificate_is_presented() {
    let p = pki("mtls");
    let anonymous = TlsClientConfig {
        ca_file: Some(p.ca.clone()),
        ..Default::default()
    };
    let (addr, server_side) = server(&p, true).await;
    let _ = dial(
        &anonymous,
        Arc::new(anonymous.verifier().unwrap()),
        addr,
        "localhost",
    )
    .await;
    assert!(
        !server_side.await.unwrap(),
        "an anonymous client must be refused"
    );

    let mutual = TlsClientConfig {
        cert_file: Some(p.client_cert.clone()),
        key_file: Some(p.client_key.clone()),
        ..anonymous
    };
    let (addr, server_side) = server(&p, true).await;
    dial(
        &mutual,
        Arc::new(mutual.verifier().unwrap()),
        addr,
        "localhost",
    )
    .await
    .unwrap();
    assert!(
        server_side.await.unwrap(),
        "the client certificate must be accepted"
    );
    let pem = mutual.identity_pem().unwrap().unwrap();
    assert!(String::from_utf8(pem.cert)
        .unwrap()
        .contains("BEGIN CERTIFICATE"));
    assert!(String::from_utf8(pem.key).unwrap().contains("PRIVATE KEY"));
}

#[test]
fn bad_files_are_named() {
    let p = pki("bad");
    let e = |c: TlsClientConfig| {
        c.verifier()
            .err()
            .or(c.identity().err())
            .unwrap()
            .to_string()
    };
    let missing = p.files.dir.join("missing.pem");
    let got = e(TlsClientConfig {
        ca_file: Some(missing.clone()),
        ..Default::default()
    });
    assert!(
        got.starts_with("tls::ca_file: cannot read `") && got.contains("missing.pem"),
        "{got}"
    );
    let got = e(TlsClientConfig {
        ca_file: Some(p.client_key.clone()),
        ..Default::default()
    });
    assert!(
        got.starts_with("tls::ca_file: `")
            && got.ends_with(
                "holds no certificate; expected PEM `-----BEGIN CERTIFICATE-----` blocks"
            ),
        "{got}"
    );
    let (_, other_key) = crate::tls::test_files::self_signed();
    let got = e(TlsClientConfig {
        cert_file: Some(p.client_cert.clone()),
        key_file: Some(p.files.write("other.key", &other_key)),
        ..Default::default()
    });
    assert!(
        got.starts_with("tls::key_file: `") && got.contains("does not belong to the certificate"),
        "{got}"
    );
    let got = e(TlsClientConfig {
        cert_file: Some(p.client_cert.clone()),
        key_file: Some(p.client_cert.clone()),
        ..Default::default()
    });
    assert!(got.contains("holds no private key"), "{got}");
}
