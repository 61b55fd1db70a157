//! `authorization_code` runs against the test IdP's hosted pages: the spans of a walk, and
//! that no secret (password, TOTP secret, client secret, and the run's own cookies, code,
//! verifier and tokens) reaches a span, a metric, a log line, a message or the probe report.

use super::*;
use crate::synthetic::run::CheckRunner;

fn authcode_check(s: &OAuthServer) -> AuthCodeCheck {
    AuthCodeCheck {
        name: "ulp".into(),
        issuer: s.issuer().to_owned(),
        authorize_url: Some(format!("{}authorize", s.issuer())),
        client_id: srv::CLIENT_ID.into(),
        client_secret: Some(Secret::new(srv::CLIENT_SECRET)),
        redirect_uri: srv::REDIRECT_URI.into(),
        username: srv::USERNAME.into(),
        password: Some(Secret::new(srv::PASSWORD)),
        totp_secret: Some(Secret::new(srv::TOTP_SECRET)),
        consent: ConsentAction::Accept,
        audience: Some(srv::AUDIENCE.into()),
        validate_token: Some(TokenValidation {
            audience: Some(srv::AUDIENCE.into()),
            ..TokenValidation::default()
        }),
        ..AuthCodeCheck::default()
    }
}

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
async fn a_walk_leaks_no_secret() {
    let logs = Captured::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let s = OAuthServer::start(OAuthOptions::default()).await;
    s.control(serde_json::json!({"mfa": true, "consent": true}))
        .await;
    let mut seen = String::new();
    let mut run_secrets: Vec<String> = Vec::new();
    let mut results = Vec::new();
    let ok = authcode_check(&s);
    let mut wrong = authcode_check(&s);
    wrong.name = "wrong".into();
    wrong.password = Some(Secret::new("Wr0ng-Pa55word-Secret"));
    for (check, want) in [(ok, Outcome::Success), (wrong, Outcome::LoginRejected)] {
        let check = Check::AuthorizationCode(Box::new(check));
        let mut runner = CheckRunner::new(check, T).unwrap();
        let r = runner.run().await;
        assert_eq!(r.outcome, want, "{:?}", r.message);
        run_secrets.extend(runner.last_run_secrets.clone());
        let mut m = metrics::MetricState::new();
        m.record(&r);
        seen.push_str(&format!(
            "{:?}\n{}\n{:?}\n{:?}\n",
            emit::traces(&r),
            serde_json::to_string(&emit::traces(&r)).unwrap(),
            m.metrics(&r),
            r
        ));
        results.push(("synthetic".to_owned(), r));
    }
    // The successful run had a code, a verifier, tokens and the IdP's session cookies.
    assert!(run_secrets.len() >= 6, "{}", run_secrets.len());
    let report = ProbeReport { results };
    let text = report.to_string();
    assert!(text.contains("page=mfa_otp") && text.contains("page=consent"), "{text}");
    seen.push_str(&format!("{text}\n{report:?}\n"));
    seen.push_str(&String::from_utf8_lossy(&logs.0.lock().unwrap()));
    for secret in [
        srv::CLIENT_SECRET,
        srv::PASSWORD,
        srv::TOTP_SECRET,
        "Wr0ng-Pa55word-Secret",
    ]
    .iter()
    .copied()
    .chain(run_secrets.iter().map(String::as_str))
    {
        assert!(secret.len() >= 8, "a short value would prove nothing: {secret}");
        if let Some(at) = seen.find(secret) {
            let from = seen[..at].char_indices().rev().nth(120).map_or(0, |(i, _)| i);
            panic!(
                "a secret ({} chars) leaked, after: {}",
                secret.len(),
                &seen[from..at]
            );
        }
    }
}

#[tokio::test]
async fn a_walk_is_one_trace_with_a_span_per_hop() {
    let s = OAuthServer::start(OAuthOptions::default()).await;
    let check = Check::AuthorizationCode(Box::new(authcode_check(&s)));
    let (e, _) = run_receiver(check, T, Signals::TRACES | Signals::METRICS).await;
    assert_eq!(e.outcome(), "success");
    let hops: Vec<(String, Option<String>)> = e
        .spans()
        .iter()
        .filter_map(|s| {
            str_attr(&s.attributes, sc::SYNTHETIC_HOP)
                .map(|h| (h, str_attr(&s.attributes, sc::SYNTHETIC_PAGE)))
        })
        .collect();
    let want = [
        ("authorize", None),
        ("redirect", Some("identifier")),
        ("submit", None),
        ("redirect", Some("password")),
        ("submit", None),
        ("token", None),
    ];
    let want: Vec<(String, Option<String>)> = want
        .iter()
        .map(|(h, p)| (h.to_string(), p.map(str::to_owned)))
        .collect();
    assert_eq!(hops, want);
    // Every hop span is a CLIENT span of the root with its phases; JWKS under `jwks`.
    let tree = e.tree().join("\n");
    assert!(tree.contains("jwks"), "{tree}");
    assert!(tree.contains("validate"), "{tree}");
    assert!(e.span("POST").kind == span::SpanKind::Client as i32);
}

#[tokio::test]
async fn a_blocked_probe_user_pauses_the_check() {
    let s = OAuthServer::start(OAuthOptions::default()).await;
    s.control(serde_json::json!({"locked": [srv::USERNAME]}))
        .await;
    let check = Check::AuthorizationCode(Box::new(authcode_check(&s)));
    let mut runner = CheckRunner::new(check, T).unwrap();
    let r = runner.run().await;
    assert_eq!(r.outcome, Outcome::LoginRejected, "{:?}", r.message);
    assert_eq!(r.error_type.as_deref(), Some("user_blocked"));
    assert_eq!(r.oauth_error.as_deref(), Some("too_many_attempts"));
    assert_eq!(r.backoff(), Backoff::Blocked);
    // A plain wrong password does not pause it.
    s.control(serde_json::json!({"locked": []})).await;
    let mut wrong = authcode_check(&s);
    wrong.password = Some(Secret::new("Wr0ng-Pa55word-Secret"));
    let mut runner = CheckRunner::new(Check::AuthorizationCode(Box::new(wrong)), T).unwrap();
    let r = runner.run().await;
    assert_eq!(r.outcome, Outcome::LoginRejected);
    assert_eq!(r.backoff(), Backoff::None);
}
