//! OAuth checks against a real OAuth2 server: each outcome, the grants and request bodies, the
//! key cache.

use super::*;

// === OAuth checks against a real Authlib server ===

#[tokio::test]
async fn password_grant_success_with_rs256_token_and_claim() {
    let s = OAuthServer::start(OAuthOptions::default()).await;
    let e = run_oauth(Check::PasswordGrant(oauth_check(&s)), T).await;
    assert_eq!(e.outcome(), "success");
    assert_eq!(
        e.tree(),
        lines(&[
            "synthetic login",
            "  POST",
            "    dns",
            "    connect",
            "    request",
            "    transfer",
            "  jwks",
            "    GET",
            "      dns",
            "      connect",
            "      request",
            "      transfer",
            "    GET",
            "      dns",
            "      connect",
            "      request",
            "      transfer",
            "  validate",
        ])
    );
    let post = e.span("POST");
    assert_eq!(post.kind, span::SpanKind::Client as i32);
    assert!(!is_error(&post));
    let a = &post.attributes;
    assert_eq!(
        str_attr(a, sc::HTTP_REQUEST_METHOD).as_deref(),
        Some("POST")
    );
    assert_eq!(
        str_attr(a, sc::SERVER_ADDRESS).as_deref(),
        Some("127.0.0.1")
    );
    assert_eq!(str_attr(a, "server.port"), Some(s.port().to_string()));
    assert_eq!(str_attr(a, sc::URL_FULL), Some(s.token_url()));
    assert_eq!(
        str_attr(a, sc::HTTP_RESPONSE_STATUS_CODE).as_deref(),
        Some("200")
    );
    assert_eq!(str_attr(a, sc::ERROR_TYPE), None);
    let root = e.root();
    assert_eq!(
        str_attr(&root.attributes, sc::SYNTHETIC_CHECK).as_deref(),
        Some("login")
    );
    assert_eq!(
        str_attr(&root.attributes, sc::SYNTHETIC_TYPE).as_deref(),
        Some("password_grant")
    );
    assert!(root.start_time_unix_nano <= post.start_time_unix_nano);
    assert!(root.end_time_unix_nano >= post.end_time_unix_nano);

    e.assert_common_metrics("success");
    assert_eq!(
        e.phases(),
        lines(&["connect", "dns", "jwks", "request", "transfer", "validate"])
    );
    assert_eq!(e.gauge(sc::RATELIMIT_LIMIT), Some(30));
    assert_eq!(e.gauge(sc::RATELIMIT_REMAINING), Some(29));
    assert!(e.gauge(sc::RATELIMIT_RESET).unwrap() > 1_700_000_000);
    assert_eq!(e.gauge(sc::TLS_CERTIFICATE_REMAINING), None, "plain HTTP");

    let reqs = s.token_requests().await;
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0]["grant_type"], "password");
    assert_eq!(reqs[0]["content_type"], "form");
    assert_eq!(reqs[0]["client_auth"], "post");
    assert!(reqs[0]["user_agent"]
        .as_str()
        .unwrap()
        .starts_with("authwatch-synthetic/"));
}

#[tokio::test]
async fn wrong_password_is_an_oauth_error() {
    let s = OAuthServer::start(OAuthOptions::default()).await;
    let mut c = oauth_check(&s);
    c.password = Some(Secret::new("not-the-password"));
    let e = run_oauth(Check::PasswordGrant(c), T).await;
    assert_eq!(e.outcome(), "oauth_error");
    assert_eq!(
        e.tree(),
        lines(&[
            "synthetic login",
            "  POST",
            "    dns",
            "    connect",
            "    request",
            "    transfer"
        ])
    );
    let root = e.root();
    assert_eq!(
        str_attr(&root.attributes, sc::OAUTH_ERROR).as_deref(),
        Some("invalid_grant")
    );
    assert_eq!(
        str_attr(&root.attributes, sc::ERROR_TYPE).as_deref(),
        Some("403")
    );
    assert!(root
        .status
        .as_ref()
        .unwrap()
        .message
        .contains("Wrong email or password"));
    let post = e.span("POST");
    assert!(is_error(&post));
    assert_eq!(
        str_attr(&post.attributes, sc::HTTP_RESPONSE_STATUS_CODE).as_deref(),
        Some("403")
    );
    assert_eq!(
        str_attr(&post.attributes, sc::OAUTH_ERROR).as_deref(),
        Some("invalid_grant")
    );
    e.assert_common_metrics("oauth_error");
    assert_eq!(
        e.phases(),
        lines(&["connect", "dns", "request", "transfer"])
    );
}

#[tokio::test]
async fn bad_client_secret_is_invalid_client() {
    let s = OAuthServer::start(OAuthOptions::default()).await;
    let mut c = oauth_check(&s);
    c.client_secret = Some(Secret::new("wrong-client-secret"));
    let e = run_oauth(Check::PasswordGrant(c), T).await;
    assert_eq!(e.outcome(), "oauth_error");
    let root = e.root();
    assert_eq!(
        str_attr(&root.attributes, sc::OAUTH_ERROR).as_deref(),
        Some("invalid_client")
    );
    assert_eq!(
        str_attr(&root.attributes, sc::ERROR_TYPE).as_deref(),
        Some("401")
    );
    assert!(is_error(&e.span("POST")));
    e.assert_common_metrics("oauth_error");
}

#[tokio::test]
async fn server_error_is_http_status() {
    let s = OAuthServer::start(OAuthOptions {
        mode: Mode::Error500,
        ..Default::default()
    })
    .await;
    let e = run_oauth(Check::PasswordGrant(oauth_check(&s)), T).await;
    assert_eq!(e.outcome(), "http_status");
    let root = e.root();
    assert_eq!(
        str_attr(&root.attributes, sc::ERROR_TYPE).as_deref(),
        Some("500")
    );
    assert_eq!(
        str_attr(&root.attributes, sc::OAUTH_ERROR).as_deref(),
        Some("server_error")
    );
    let post = e.span("POST");
    assert!(is_error(&post));
    assert_eq!(
        str_attr(&post.attributes, sc::HTTP_RESPONSE_STATUS_CODE).as_deref(),
        Some("500")
    );
    e.assert_common_metrics("http_status");
}

#[tokio::test]
async fn rate_limited_honours_retry_after() {
    let s = OAuthServer::start(OAuthOptions {
        mode: Mode::RateLimited,
        ..Default::default()
    })
    .await;
    let check = Check::PasswordGrant(oauth_check(&s));
    let e = run_oauth(check.clone(), T).await;
    assert_eq!(e.outcome(), "rate_limited");
    let root = e.root();
    assert_eq!(
        str_attr(&root.attributes, sc::ERROR_TYPE).as_deref(),
        Some("429")
    );
    assert_eq!(
        str_attr(&root.attributes, sc::OAUTH_ERROR).as_deref(),
        Some("too_many_requests")
    );
    e.assert_common_metrics("rate_limited");
    assert_eq!(e.gauge(sc::RATELIMIT_REMAINING), Some(0));
    // The run asks the scheduler to wait as long as Retry-After says.
    let mut runner = run::CheckRunner::new(check, T).unwrap();
    let r = runner.run().await;
    assert_eq!(r.outcome, Outcome::RateLimited);
    assert_eq!(r.retry_after, Some(Duration::from_secs(7)));
    assert_eq!(r.backoff(), Backoff::RetryAfter(Duration::from_secs(7)));
}

#[tokio::test]
async fn too_many_attempts_backs_off() {
    let s = OAuthServer::start(OAuthOptions {
        mode: Mode::Blocked,
        ..Default::default()
    })
    .await;
    let check = Check::PasswordGrant(oauth_check(&s));
    let e = run_oauth(check.clone(), T).await;
    assert_eq!(e.outcome(), "oauth_error");
    assert_eq!(
        str_attr(&e.root().attributes, sc::OAUTH_ERROR).as_deref(),
        Some("too_many_attempts")
    );
    e.assert_common_metrics("oauth_error");
    let r = run::CheckRunner::new(check, T).unwrap().run().await;
    assert_eq!(r.backoff(), Backoff::Blocked);
    assert!(r.message.unwrap().contains("brute-force protection"));
}

/// A run that passes but takes longer than `degraded_response_time` is degraded: still a
/// success, marked on the root span and in `authwatch.probe.degraded`.
#[tokio::test]
async fn slow_but_correct_answers_are_degraded_not_failed() {
    let s = OAuthServer::start(OAuthOptions::default()).await;
    s.set_delay(Duration::from_millis(600)).await;
    let check = |bound_ms: u64| {
        Check::PasswordGrant(OAuthCheck {
            degraded_response_time: Some(Duration::from_millis(bound_ms)),
            ..oauth_check(&s)
        })
    };
    let e = run_oauth(check(300), T).await;
    assert_eq!(e.outcome(), "success");
    assert!(!is_error(&e.root()));
    let degraded = e.root().attributes.iter().find(|kv| kv.key == sc::SYNTHETIC_DEGRADED).cloned();
    assert_eq!(
        degraded.and_then(|kv| kv.value).and_then(|v| v.value),
        Some(any_value::Value::BoolValue(true))
    );
    assert_eq!(e.gauge(sc::PROBE_DEGRADED), Some(1));
    assert_eq!(e.gauge(sc::PROBE_SUCCESS), Some(1));
    // Fast again: not degraded, and the gauge says so.
    s.set_delay(Duration::ZERO).await;
    let e = run_oauth(check(5_000), T).await;
    assert_eq!(e.outcome(), "success");
    assert!(e.root().attributes.iter().all(|kv| kv.key != sc::SYNTHETIC_DEGRADED));
    assert_eq!(e.gauge(sc::PROBE_DEGRADED), Some(0));
    // Without the option: no gauge.
    let e = run_oauth(Check::PasswordGrant(oauth_check(&s)), T).await;
    assert_eq!(e.gauge(sc::PROBE_DEGRADED), None);
    s.stop().await;
}

#[tokio::test]
async fn slow_token_endpoint_times_out() {
    let s = OAuthServer::start(OAuthOptions {
        mode: Mode::Slow,
        delay: Some(Duration::from_secs(5)),
        ..Default::default()
    })
    .await;
    let e = run_oauth(
        Check::PasswordGrant(oauth_check(&s)),
        Duration::from_millis(800),
    )
    .await;
    assert_eq!(e.outcome(), "timeout");
    assert_eq!(
        e.tree(),
        lines(&[
            "synthetic login",
            "  POST",
            "    dns",
            "    connect",
            "    request"
        ])
    );
    let post = e.span("POST");
    assert!(is_error(&post));
    assert_eq!(
        str_attr(&post.attributes, sc::ERROR_TYPE).as_deref(),
        Some("timeout")
    );
    assert_eq!(
        str_attr(&post.attributes, sc::HTTP_RESPONSE_STATUS_CODE),
        None
    );
    e.assert_common_metrics("timeout");
}

#[tokio::test]
async fn connection_refused_is_connect() {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    drop(l);
    let c = OAuthCheck {
        name: "login".into(),
        token_url: format!("http://127.0.0.1:{port}/oauth/token"),
        client_id: "c".into(),
        username: Some("u".into()),
        password: Some(Secret::new("p")),
        ..Default::default()
    };
    let e = run_oauth(Check::PasswordGrant(c), T).await;
    assert_eq!(e.outcome(), "connect");
    assert_eq!(
        e.tree(),
        lines(&["synthetic login", "  POST", "    dns", "    connect"])
    );
    assert_eq!(
        str_attr(&e.span("POST").attributes, sc::ERROR_TYPE).as_deref(),
        Some("connect")
    );
    e.assert_common_metrics("connect");
}

#[tokio::test]
async fn only_the_signals_a_pipeline_takes_are_sent() {
    let c = Check::Http(HttpCheck {
        name: "login".into(),
        url: "http://127.0.0.1:1/".into(),
        ..Default::default()
    });
    let (e, sink) = run_receiver(c, T, Signals::TRACES).await;
    assert_eq!(e.outcome(), "connect");
    assert!(e.metrics.is_empty());
    assert_eq!(sink.item_count(SignalKind::Metrics), 0);
}

// === grants and bodies ===

#[tokio::test]
async fn password_realm_grant_public_client_json_body() {
    let s = OAuthServer::start(OAuthOptions::default()).await;
    let mut c = oauth_check(&s);
    c.client_id = srv::PUBLIC_CLIENT_ID.into();
    c.client_secret = None;
    c.realm = Some(srv::REALM.into());
    c.body_format = BodyFormat::Json;
    let e = run_oauth(Check::PasswordGrant(c), T).await;
    assert_eq!(e.outcome(), "success", "{:?}", e.root().status);
    e.assert_common_metrics("success");
    let reqs = s.token_requests().await;
    assert_eq!(reqs[0]["grant_type"], PASSWORD_REALM_GRANT);
    assert_eq!(reqs[0]["realm"], srv::REALM);
    assert_eq!(reqs[0]["content_type"], "json");
}

#[tokio::test]
async fn realm_grant_with_unknown_realm_is_an_oauth_error() {
    let s = OAuthServer::start(OAuthOptions::default()).await;
    let mut c = oauth_check(&s);
    c.realm = Some("No-Such-Connection".into());
    let e = run_oauth(Check::PasswordGrant(c), T).await;
    assert_eq!(e.outcome(), "oauth_error");
    assert_eq!(
        str_attr(&e.root().attributes, sc::OAUTH_ERROR).as_deref(),
        Some("invalid_request")
    );
    e.assert_common_metrics("oauth_error");
}

#[tokio::test]
async fn client_credentials_basic_auth_form_body() {
    let s = OAuthServer::start(OAuthOptions::default()).await;
    let mut c = oauth_check(&s);
    c.username = None;
    c.password = None;
    c.scope = None;
    c.client_auth = ClientAuth::Basic;
    let t = c.validate_token.as_mut().unwrap();
    t.require_claims
        .insert("gty".into(), serde_json::Value::from("client-credentials"));
    // Keys straight from the JWKS, without discovery.
    t.jwks_url = Some(s.jwks_url());
    let e = run_oauth(Check::ClientCredentials(c), T).await;
    assert_eq!(e.outcome(), "success", "{:?}", e.root().status);
    assert_eq!(
        str_attr(&e.root().attributes, sc::SYNTHETIC_TYPE).as_deref(),
        Some("client_credentials")
    );
    // One GET under jwks: the JWKS, no discovery document.
    assert_eq!(e.tree().iter().filter(|l| l.trim() == "GET").count(), 1);
    e.assert_common_metrics("success");
    let reqs = s.token_requests().await;
    assert_eq!(reqs[0]["grant_type"], "client_credentials");
    assert_eq!(reqs[0]["client_auth"], "basic");
    assert_eq!(reqs[0]["content_type"], "form");
}

#[tokio::test]
async fn keys_are_cached_between_runs() {
    let s = OAuthServer::start(OAuthOptions::default()).await;
    let mut runner = run::CheckRunner::new(Check::PasswordGrant(oauth_check(&s)), T).unwrap();
    let first = runner.run().await;
    assert_eq!(first.outcome, Outcome::Success, "{:?}", first.message);
    assert!(first.jwks.is_some());
    assert_eq!(
        first.claims,
        vec![(srv::CLAIM.to_owned(), "true".to_owned())]
    );
    let second = runner.run().await;
    assert_eq!(second.outcome, Outcome::Success);
    assert!(second.jwks.is_none(), "the JWKS is cached");
    assert_eq!(second.steps.len(), 1);
}
