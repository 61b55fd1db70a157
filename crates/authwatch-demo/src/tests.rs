use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::Request;
use serde_json::{json, Value};
use tower::ServiceExt;

use super::provider::{router, signing_key, summary_for, StandIn};
use super::*;

#[test]
fn script_phases_follow_the_shares() {
    let s = Script::new(Duration::from_secs(100));
    let at = |secs| s.phase_at(Duration::from_secs(secs));
    assert_eq!(at(0), Phase::Healthy);
    assert_eq!(at(20), Phase::ServerErrors);
    assert_eq!(at(45), Phase::RateLimited);
    assert_eq!(at(60), Phase::ProbeUserLocked);
    assert_eq!(at(80), Phase::Recovered);
    assert_eq!(at(500), Phase::Recovered);
    assert_eq!(s.start_of(Phase::ServerErrors), Duration::from_secs(15));
}

#[test]
fn status_summary_follows_the_incident() {
    let healthy = summary_for(Phase::Healthy, "http://x/");
    assert_eq!(healthy["status"]["indicator"], "none");
    assert_eq!(healthy["incidents"], json!([]));
    let bad = summary_for(Phase::ServerErrors, "http://x/");
    assert_eq!(bad["status"]["indicator"], "major");
    assert_eq!(bad["incidents"][0]["status"], "investigating");
}

#[test]
fn a_corrupt_signing_key_is_a_typed_error() {
    assert!(signing_key(&key::DEMO_RSA_PKCS1_DER_B64.concat()).is_ok());
    let err = signing_key("not base64!")
        .err()
        .expect("a corrupt key is refused");
    assert!(matches!(err, DemoError::Key(_)), "{err:?}");
    assert!(
        err.to_string()
            .starts_with("the demo's signing key is unusable"),
        "{err}"
    );
}

async fn post(app: &axum::Router, form: &str) -> (u16, axum::http::HeaderMap, Value) {
    let r = app
        .clone()
        .oneshot(
            Request::post("/oauth/token")
                .header("content-type", "application/x-www-form-urlencoded")
                .body(Body::from(form.to_owned()))
                .unwrap(),
        )
        .await
        .unwrap();
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let body = axum::body::to_bytes(r.into_body(), 1 << 20).await.unwrap();
    (status, headers, serde_json::from_slice(&body).unwrap())
}

const PROBE_FORM: &str = "grant_type=password&client_id=demo-client&client_secret=demo-client-secret&username=probe%40demo.test&password=demo-probe-password&scope=openid";

#[tokio::test]
async fn healthy_provider_issues_rs256_tokens_its_jwks_verifies() {
    let app = router(Arc::new(
        StandIn::new(Script::new(Duration::from_secs(3600)), "http://x/".into()).unwrap(),
    ));
    let (status, headers, body) = post(&app, PROBE_FORM).await;
    assert_eq!(status, 200, "{body}");
    assert!(headers.contains_key("x-ratelimit-remaining"));
    let token = body["access_token"].as_str().unwrap();
    assert!(body["id_token"].is_string());
    let r = app
        .clone()
        .oneshot(
            Request::get("/.well-known/jwks.json")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    let jwks: jsonwebtoken::jwk::JwkSet =
        serde_json::from_slice(&axum::body::to_bytes(r.into_body(), 1 << 20).await.unwrap())
            .unwrap();
    let key = jsonwebtoken::DecodingKey::from_jwk(&jwks.keys[0]).unwrap();
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    v.set_audience(&[AUDIENCE]);
    v.set_issuer(&["http://x/"]);
    let data =
        jsonwebtoken::decode::<Value>(token, &key, &v).expect("the token verifies with the JWKS");
    assert_eq!(data.claims["sub"], "auth0|probedemotest");
    let (status, _, body) = post(&app, &PROBE_FORM.replace("demo-probe-password", "nope")).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (403, Some("invalid_grant"))
    );
    let (status, _, body) = post(
        &app,
        "grant_type=client_credentials&client_id=demo-client&client_secret=demo-client-secret",
    )
    .await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test(start_paused = true)]
async fn the_probe_fails_in_every_incident_phase() {
    let t0 = tokio::time::Instant::now();
    let app = router(Arc::new(
        StandIn::new(Script::new(Duration::from_secs(100)), "http://x/".into()).unwrap(),
    ));
    let mut seen = Vec::new();
    for (at, phase) in [
        (5, Phase::Healthy),
        (20, Phase::ServerErrors),
        (45, Phase::RateLimited),
        (60, Phase::ProbeUserLocked),
        (80, Phase::Recovered),
    ] {
        let target = t0 + Duration::from_secs(at);
        tokio::time::advance(target.saturating_duration_since(tokio::time::Instant::now())).await;
        let (status, headers, body) = post(&app, PROBE_FORM).await;
        seen.push((phase, status, body["error"].as_str().map(str::to_owned)));
        if phase == Phase::RateLimited {
            assert_eq!(headers["retry-after"], "2");
            assert_eq!(headers["x-ratelimit-remaining"], "0");
        }
    }
    let codes: Vec<(u16, Option<&str>)> = seen.iter().map(|(_, s, e)| (*s, e.as_deref())).collect();
    assert_eq!(codes[0], (200, None));
    assert!(
        codes[1].0 >= 500 && codes[1].1 == Some("server_error"),
        "{seen:?}"
    );
    assert_eq!(codes[2], (429, Some("too_many_requests")));
    assert_eq!(codes[3], (429, Some("too_many_attempts")));
    assert_eq!(codes[4], (200, None));
}

#[test]
fn spans_carry_the_http_client_attributes() {
    use authwatch_core::otlp::trace::v1::span::SpanKind;
    let now = std::time::SystemTime::now();
    let call = traffic::Call {
        service: "demo-web",
        start: now,
        end: now + Duration::from_millis(5),
        status: Some(503),
        oauth_error: Some("server_error".into()),
        transport_error: None,
    };
    let addr: SocketAddr = "127.0.0.1:4000".parse().unwrap();
    let req = traffic::request(&[call], addr, &mut 1);
    let span = &req.resource_spans[0].scope_spans[0].spans[0];
    assert_eq!(span.kind, SpanKind::Client as i32);
    let get = |k: &str| {
        span.attributes
            .iter()
            .find(|a| a.key == k)
            .map(|a| format!("{:?}", a.value))
    };
    assert!(get("server.address").unwrap().contains("127.0.0.1"));
    assert!(get("http.response.status_code").unwrap().contains("503"));
    assert!(get("error.type").unwrap().contains("503"));
    assert!(get("oauth.error").unwrap().contains("server_error"));
    assert_eq!(span.trace_id.len(), 16);
    assert_eq!(span.span_id.len(), 8);
}

#[test]
fn console_prints_transitions_once() {
    let mut c = Console::new(
        Script::new(Duration::from_secs(60)),
        "127.0.0.1:1".parse().unwrap(),
    );
    let alert = json!({"name": "a", "fingerprint": "f", "verdict": "provider_outage", "summary": "s", "verdict_reason": "r"});
    let firing = json!({"alerts": {"firing": [alert], "resolved": []}, "dependencies": [], "probes": [
        {"check": "login", "runs": [{"started_at": 2.0, "outcome": "http_status", "duration_ms": 3.0, "status": 500}]}]});
    let lines = c.update(&firing).join("\n");
    assert!(
        lines.contains("[ALERT FIRING] a verdict=provider_outage"),
        "{lines}"
    );
    assert!(
        lines.contains("[probe] login: http_status in 3 ms, HTTP 500"),
        "{lines}"
    );
    let again = c.update(&firing).join("\n");
    assert!(
        !again.contains("FIRING") && !again.contains("[probe]"),
        "{again}"
    );
    let resolved = json!({"alerts": {"firing": [], "resolved": [{"name": "a", "fingerprint": "f", "verdict": "provider_outage"}]}});
    assert!(c
        .update(&resolved)
        .join("\n")
        .contains("[ALERT RESOLVED] a"));
    assert!(c.firing().is_empty());
}
