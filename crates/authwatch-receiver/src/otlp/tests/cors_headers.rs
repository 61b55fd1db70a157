//! CORS: preflights, headers on answers, tokens, and CORS off.

use super::*;

fn cors_config() -> HttpConfig {
    HttpConfig {
        cors: Some(CorsConfig {
            allowed_origins: vec![
                "https://app.example.com".into(),
                "https://*.example.org".into(),
            ],
            allowed_headers: vec!["X-Tenant".into()],
            exposed_headers: vec![],
            max_age: 600,
        }),
        ..HttpConfig::default()
    }
}

fn cors_router(sink: &Sink, config: &HttpConfig, auth: Option<auth::BearerAuth>) -> axum::Router {
    let telemetry = Telemetry::new();
    let ingest = ingest::Ingest::new(
        router_to(sink.shared(), &SignalKind::ALL),
        telemetry.receiver(&otlp_id(), "http"),
    );
    http::router(config, ingest, auth)
}

const JSON_SPAN: &str = r#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174","name":"GET /authorize","kind":3}]}]}]}"#;

#[tokio::test]
async fn cors_preflight_from_an_allowed_origin_is_answered() {
    let sink = Sink::new();
    let router = cors_router(&sink, &cors_config(), None);
    for origin in ["https://app.example.com", "https://shop.eu.example.org"] {
        let r = oneshot(
            &router,
            "OPTIONS",
            "/v1/traces",
            &[
                ("Origin", origin),
                ("Access-Control-Request-Method", "POST"),
                ("Access-Control-Request-Headers", "content-type,x-tenant"),
            ],
            Vec::new(),
        )
        .await;
        assert_eq!(r.status, 204, "{r:?}");
        assert_eq!(r.header("access-control-allow-origin"), Some(origin));
        assert_eq!(r.header("access-control-allow-credentials"), Some("true"));
        assert_eq!(r.header("access-control-allow-methods"), Some("POST"));
        assert_eq!(
            r.header("access-control-allow-headers"),
            Some("content-type,x-tenant")
        );
        assert_eq!(r.header("access-control-max-age"), Some("600"));
        assert_eq!(r.header("vary"), Some("Origin"));
    }
    assert!(sink.received().is_empty());
}

#[tokio::test]
async fn cors_preflight_is_refused_for_other_origins_methods_and_headers() {
    let sink = Sink::new();
    let router = cors_router(&sink, &cors_config(), None);
    let cases: [(&str, &str, &str, &str); 5] = [
        (
            "https://evil.example.net",
            "POST",
            "content-type",
            "origin `https://evil.example.net`",
        ),
        // `*.example.org` does not match the bare domain, nor another scheme.
        (
            "https://example.org",
            "POST",
            "content-type",
            "origin `https://example.org`",
        ),
        (
            "http://app.example.com",
            "POST",
            "content-type",
            "origin `http://app.example.com`",
        ),
        (
            "https://app.example.com",
            "PUT",
            "content-type",
            "method `PUT`",
        ),
        (
            "https://app.example.com",
            "POST",
            "content-type,x-secret",
            "header `x-secret`",
        ),
    ];
    for (origin, method, headers, why) in cases {
        let r = oneshot(
            &router,
            "OPTIONS",
            "/v1/traces",
            &[
                ("Origin", origin),
                ("Access-Control-Request-Method", method),
                ("Access-Control-Request-Headers", headers),
            ],
            Vec::new(),
        )
        .await;
        assert_eq!(r.status, 403, "{origin} {method} {headers}: {r:?}");
        assert!(
            r.headers
                .iter()
                .all(|(k, _)| !k.starts_with("access-control-")),
            "{r:?}"
        );
        let body = String::from_utf8_lossy(&r.body);
        assert!(body.contains(why), "{body}");
    }
}

#[tokio::test]
async fn cors_headers_on_posts_and_errors_from_allowed_origins_only() {
    let sink = Sink::new();
    let router = cors_router(&sink, &cors_config(), None);
    let origin = ("Origin", "https://app.example.com");
    let r = oneshot(
        &router,
        "POST",
        "/v1/traces",
        &[JS, origin],
        JSON_SPAN.into(),
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://app.example.com")
    );
    assert_eq!(r.header("access-control-allow-credentials"), Some("true"));
    assert_eq!(r.header("vary"), Some("Origin"));
    // Errors carry them too, so the page can read why.
    let r = oneshot(&router, "POST", "/v1/traces", &[JS, origin], b"{".to_vec()).await;
    assert_eq!(r.status, 400, "{r:?}");
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://app.example.com")
    );
    let r = oneshot(&router, "POST", "/v1/nope", &[JS, origin], Vec::new()).await;
    assert_eq!(r.status, 404, "{r:?}");
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://app.example.com")
    );
    // Another origin: served as without `Origin`, no CORS headers (the browser hides it).
    let other = ("Origin", "https://evil.example.net");
    let r = oneshot(
        &router,
        "POST",
        "/v1/traces",
        &[JS, other],
        JSON_SPAN.into(),
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.header("access-control-allow-origin"), None);
    assert_eq!(r.header("access-control-allow-credentials"), None);
    assert_eq!(r.header("vary"), Some("Origin"));
    assert_eq!(sink.received().len(), 2);
}

#[tokio::test]
async fn cors_preflight_needs_no_token_but_the_post_does() {
    let sink = Sink::new();
    let telemetry = Telemetry::new();
    let auth = auth::BearerAuth::new(
        &AuthConfig {
            bearer_token: authwatch_core::config::Secret::new("tok"),
        },
        &telemetry,
        &otlp_id(),
        "http",
    );
    let mut config = cors_config();
    if let Some(c) = config.cors.as_mut() {
        c.allowed_headers = vec!["authorization".into()];
    }
    let router = cors_router(&sink, &config, Some(auth));
    let origin = ("Origin", "https://app.example.com");
    let r = oneshot(
        &router,
        "OPTIONS",
        "/v1/traces",
        &[
            origin,
            ("Access-Control-Request-Method", "POST"),
            (
                "Access-Control-Request-Headers",
                "authorization, content-type",
            ),
        ],
        Vec::new(),
    )
    .await;
    assert_eq!(r.status, 204, "{r:?}");
    let r = oneshot(
        &router,
        "POST",
        "/v1/traces",
        &[JS, origin],
        JSON_SPAN.into(),
    )
    .await;
    assert_eq!(r.status, 401, "{r:?}");
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://app.example.com")
    );
    let r = oneshot(
        &router,
        "POST",
        "/v1/traces",
        &[JS, origin, ("Authorization", "Bearer tok")],
        JSON_SPAN.into(),
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(sink.received().len(), 1);
}

#[tokio::test]
async fn without_cors_options_is_not_allowed_and_no_headers_are_added() {
    let sink = Sink::new();
    let router = cors_router(&sink, &HttpConfig::default(), None);
    let origin = ("Origin", "https://app.example.com");
    let r = oneshot(
        &router,
        "OPTIONS",
        "/v1/traces",
        &[origin, ("Access-Control-Request-Method", "POST")],
        Vec::new(),
    )
    .await;
    assert_eq!(r.status, 405, "{r:?}");
    let r = oneshot(
        &router,
        "POST",
        "/v1/traces",
        &[JS, origin],
        JSON_SPAN.into(),
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r
        .headers
        .iter()
        .all(|(k, _)| !k.starts_with("access-control-") && k != "vary"));
}

#[test]
fn cors_origin_globs() {
    use super::cors::glob_match;
    assert!(glob_match(
        "https://*.example.com",
        "https://a.b.example.com"
    ));
    assert!(!glob_match("https://*.example.com", "https://example.com"));
    assert!(!glob_match(
        "https://*.example.com",
        "https://a.example.com.evil.io"
    ));
    assert!(glob_match("http://localhost:*", "http://localhost:5173"));
    let mut v = Validator::new("");
    let c = decode("protocols: { http: { cors: { allowed_headers: [x-a] } } }").unwrap();
    c.validate(&mut v);
    let (errors, warnings) = v.into_parts();
    assert!(errors.is_empty());
    assert_eq!(
        warnings[0].to_string(),
        "protocols::http::cors: `allowed_headers` is set but `allowed_origins` is empty, so CORS is off; list the origins"
    );
}
