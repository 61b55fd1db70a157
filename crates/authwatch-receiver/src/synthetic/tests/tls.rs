//! TLS of the probes: a configured CA, an expired certificate, `server_name_override`.

use super::*;

// === TLS ===

/// The PEM files, in a scratch directory removed with it.
struct Pki {
    _dir: authwatch_testkit::Scratch,
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

/// A CA and a `localhost` certificate it signed; `expired`: the certificate ended in 2021.
fn pki(expired: bool) -> Pki {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "authwatch test CA");
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::from_params(&ca_params, &ca_key);
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    if expired {
        params.not_before = rcgen::date_time_ymd(2020, 1, 1);
        params.not_after = rcgen::date_time_ymd(2021, 1, 1);
    }
    let cert = params.signed_by(&key, &issuer).unwrap();
    let dir = authwatch_testkit::Scratch::new("synthetic-pki");
    let p = Pki {
        ca: dir.join("ca.pem"),
        cert: dir.join("cert.pem"),
        key: dir.join("key.pem"),
        _dir: dir,
    };
    std::fs::write(&p.ca, ca_cert.pem()).unwrap();
    std::fs::write(&p.cert, cert.pem()).unwrap();
    std::fs::write(&p.key, key.serialize_pem()).unwrap();
    p
}

async fn tls_server(p: &Pki) -> OAuthServer {
    OAuthServer::start(OAuthOptions {
        tls: Some((p.cert.clone(), p.key.clone())),
        ..Default::default()
    })
    .await
}

#[tokio::test]
async fn tls_with_configured_ca_succeeds() {
    let p = pki(false);
    let s = tls_server(&p).await;
    let mut c = oauth_check(&s);
    c.tls.ca_file = Some(p.ca.clone());
    let e = run_oauth(Check::PasswordGrant(c.clone()), T).await;
    assert_eq!(e.outcome(), "success", "{:?}", e.root().status);
    let tree = e.tree();
    assert_eq!(
        tree[..7],
        lines(&[
            "synthetic login",
            "  POST",
            "    dns",
            "    connect",
            "    tls",
            "    request",
            "    transfer"
        ])
    );
    assert_eq!(
        str_attr(&e.span("POST").attributes, sc::SERVER_ADDRESS).as_deref(),
        Some("localhost")
    );
    e.assert_common_metrics("success");
    assert!(e.phases().contains(&"tls".to_owned()));
    // rcgen's default validity runs to 4096.
    assert!(e.gauge(sc::TLS_CERTIFICATE_REMAINING).unwrap() > 365 * 86_400);

    // Without the CA, the same server is untrusted.
    c.tls.ca_file = None;
    let e = run_oauth(Check::PasswordGrant(c), T).await;
    assert_eq!(e.outcome(), "tls");
    assert_eq!(
        str_attr(&e.span("POST").attributes, sc::ERROR_TYPE).as_deref(),
        Some("certificate_unknown_issuer")
    );
}

#[tokio::test]
async fn tls_with_expired_certificate_fails() {
    let p = pki(true);
    let s = tls_server(&p).await;
    let mut c = oauth_check(&s);
    c.tls.ca_file = Some(p.ca.clone());
    let e = run_oauth(Check::PasswordGrant(c), T).await;
    assert_eq!(e.outcome(), "tls");
    assert_eq!(
        e.tree(),
        lines(&[
            "synthetic login",
            "  POST",
            "    dns",
            "    connect",
            "    tls"
        ])
    );
    let post = e.span("POST");
    assert!(is_error(&post));
    assert_eq!(
        str_attr(&post.attributes, sc::ERROR_TYPE).as_deref(),
        Some("certificate_expired")
    );
    e.assert_common_metrics("tls");
    // Known even though the handshake failed: expired, so negative.
    assert!(e.gauge(sc::TLS_CERTIFICATE_REMAINING).unwrap() < -365 * 86_400);
}

#[tokio::test]
async fn tls_server_name_override_is_the_name_checked_and_sent() {
    let p = pki(false);
    let s = tls_server(&p).await;
    let mut c = oauth_check(&s);
    c.validate_token = None;
    c.token_url = c.token_url.replace("localhost", "127.0.0.1");
    c.tls.ca_file = Some(p.ca.clone());
    // The certificate is for `localhost`, not the IP address dialled.
    let e = run_oauth(Check::PasswordGrant(c.clone()), T).await;
    assert_eq!(e.outcome(), "tls");
    assert_eq!(
        str_attr(&e.span("POST").attributes, sc::ERROR_TYPE).as_deref(),
        Some("certificate_name_mismatch")
    );
    c.tls.server_name_override = Some("localhost".into());
    let e = run_oauth(Check::PasswordGrant(c), T).await;
    assert_eq!(e.outcome(), "success", "{:?}", e.root().status);
}
