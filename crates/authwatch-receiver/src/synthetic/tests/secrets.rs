//! Secrets never leave: not in spans, metrics, logs, messages or errors.

use super::*;

// === secrets ===

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn secrets_never_leave() {
    let logs = Captured::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let ok = OAuthServer::start(OAuthOptions::default()).await;
    let blocked = OAuthServer::start(OAuthOptions {
        mode: Mode::Blocked,
        ..Default::default()
    })
    .await;
    let mut checks = Vec::new();
    checks.push(Check::PasswordGrant(oauth_check(&ok)));
    let mut basic = oauth_check(&ok);
    basic.name = "basic".into();
    basic.client_auth = ClientAuth::Basic;
    basic.body_format = BodyFormat::Json;
    checks.push(Check::PasswordGrant(basic));
    let mut wrong = oauth_check(&ok);
    wrong.name = "wrong".into();
    wrong.password = Some(Secret::new("Wr0ng-Pa55word-Secret"));
    checks.push(Check::PasswordGrant(wrong));
    let mut b = oauth_check(&blocked);
    b.name = "blocked".into();
    checks.push(Check::PasswordGrant(b));
    let mut headers = IndexMap::new();
    headers.insert(
        "authorization".to_owned(),
        Secret::new("Bearer h3ader-S3cret"),
    );
    checks.push(Check::Http(HttpCheck {
        name: "http".into(),
        url: format!("{}.well-known/jwks.json?api_key=qu3ry-S3cret", ok.issuer()),
        headers,
        body: Some(Secret::new("b0dy-S3cret")),
        expect: Expect {
            status: vec![StatusMatch::Code(418)],
            ..Default::default()
        },
        ..Default::default()
    }));
    let secrets = [
        srv::CLIENT_SECRET,
        srv::PASSWORD,
        "Wr0ng-Pa55word-Secret",
        "h3ader-S3cret",
        "qu3ry-S3cret",
        "b0dy-S3cret",
    ];

    let mut seen = String::new();
    for check in &checks {
        let (e, _) = run_receiver(check.clone(), T, Signals::TRACES | Signals::METRICS).await;
        seen.push_str(&format!("{:?}\n{:?}\n", e.traces, e.metrics));
        for t in &e.traces {
            seen.push_str(&serde_json::to_string(t).unwrap());
        }
    }
    let cfg = Config {
        checks: checks.clone(),
        ..Config::default()
    };
    let results = probe_once(&cfg, None).await.unwrap();
    let outcomes: Vec<Outcome> = results.iter().map(|r| r.outcome).collect();
    assert_eq!(
        outcomes,
        [
            Outcome::Success,
            Outcome::Success,
            Outcome::OauthError,
            Outcome::OauthError,
            Outcome::HttpStatus
        ]
    );
    for r in &results {
        seen.push_str(&format!("{r:?}\n{}\n", r.message.as_deref().unwrap_or("")));
    }
    let report = ProbeReport {
        results: results
            .into_iter()
            .map(|r| ("synthetic".to_owned(), r))
            .collect(),
    };
    seen.push_str(&format!("{report}\n{report:?}\n"));
    // The config itself: every `Secret` field redacted (a URL query is not a secret field).
    let cfg_text = format!("{cfg:?}\n{}\n", serde_json::to_string(&cfg).unwrap());
    for s in secrets.iter().filter(|s| **s != "qu3ry-S3cret") {
        assert!(
            !cfg_text.contains(s),
            "secret `{s}` printed with the config"
        );
    }
    let err = setup_error();
    seen.push_str(&format!("{err}\n{err:?}\n"));
    let logs = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("too_many_attempts"),
        "the blocked warning was logged: {logs}"
    );
    seen.push_str(&logs);

    for s in secrets {
        assert!(!seen.contains(s), "secret `{s}` leaked");
    }
    // Nor any token (JWTs start with a base64url `{"`).
    assert!(!seen.contains("eyJ"), "a token leaked");
    assert!(
        seen.contains("Wrong email or password"),
        "the checks did run"
    );
}

/// A setup error (unreadable CA file) for the secrets test.
fn setup_error() -> authwatch_net::TlsError {
    let c = Check::PasswordGrant(OAuthCheck {
        name: "x".into(),
        token_url: "https://x/oauth/token".into(),
        client_secret: Some(Secret::new(srv::CLIENT_SECRET)),
        tls: TlsConfig {
            ca_file: Some(temp_path("missing.pem")),
            ..TlsConfig::default()
        },
        ..Default::default()
    });
    match run::CheckRunner::new(c, T) {
        Err(e) => e,
        Ok(_) => panic!("a missing CA file must fail"),
    }
}
