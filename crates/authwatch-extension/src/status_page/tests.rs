use std::time::{Duration, SystemTime};

use authwatch_core::board::{self, StatusBoard};
use authwatch_core::registry::decode_config;
use authwatch_core::{ComponentId, Settings};
use axum::body::Body;
use axum::http::Request;
use serde_json::{json, Value};
use tower::ServiceExt;

use super::*;

#[test]
fn config_contract() {
    authwatch_testkit::assert_config_contract::<Config>("status_page");
}

#[test]
fn defaults_and_every_option() {
    let c = Config::default();
    assert_eq!(c.endpoint.to_string(), "127.0.0.1:13134");
    assert_eq!(c.resources(), [Resource::Listen("127.0.0.1:13134".parse().unwrap())]);
    let c: Config = decode_config(json!({
        "endpoint": "0.0.0.0:9000", "title": "IdP", "banner": "hi", "refresh_interval": "2s",
        "sample_interval": "1s", "history_size": 10, "recent_alerts": 3,
        "read_header_timeout": "2s", "read_timeout": "3s", "idle_timeout": "4s",
        "max_connections": 8, "tls": {"cert_file": "/c.pem", "key_file": "/k.pem"}
    }))
    .unwrap();
    assert_eq!(c.refresh_interval, Duration::from_secs(2));
    assert_eq!(c.history_size.get(), 10);
    assert_eq!(
        (c.read_header_timeout, c.read_timeout, c.idle_timeout, c.max_connections.get()),
        (Duration::from_secs(2), Duration::from_secs(3), Duration::from_secs(4), 8)
    );
    assert!(c.tls.is_some());
    let mut v = Validator::new("status_page");
    Config { refresh_interval: Duration::from_millis(10), ..Config::default() }.validate(&mut v);
    assert!(v.has_errors());
}

/// A board as the components publish it, with a hostile string in every text field.
fn board() -> StatusBoard {
    let b = StatusBoard::default();
    let evil = "</script><img src=x onerror=alert(1)>&\u{2028}";
    b.publish(board::DEPENDENCIES, "auth0", json!({
        "dependency": "auth0", "updated_at": 1.0, "requests": 100, "errors": 30,
        "by_class": {"ok": 70, "server_error": 30},
        "windows": [{"window": "1m", "requests": 100, "errors": 30, "error_ratio": 0.3,
                     "traffic": {"requests": 90, "errors": 25}, "probe": {"requests": 10, "errors": 5}}],
    }));
    b.publish(board::ERROR_GROUPS, "auth0", json!({"dependency": "auth0", "groups": [
        {"fingerprint": "f", "endpoint": evil, "class": "server_error", "key": "500", "count": 30,
         "first_seen": 1.0, "last_seen": 2.0, "services": ["web"], "share": 0.3}]}));
    let alert = |name: &str, state: &str, verdict: &str| json!({
        "name": name, "state": state, "severity": "page", "kind": "threshold", "fingerprint": name,
        "dependency": "auth0", "labels": {"dependency": "auth0"}, "verdict": verdict,
        "verdict_reason": evil, "value": 0.3, "threshold": 0.05, "summary": evil,
        "status_page_url": "https://status.auth0.com", "starts_at": 10.0, "updated_at": 11.0,
        "resolved_at": if state == "resolved" { json!(12.0) } else { Value::Null },
    });
    b.publish(board::ALERTS, "alerts", json!({
        "updated_at": 11.0,
        "firing": [alert("auth0_errors", "firing", "provider_outage")],
        "pending": [],
        "resolved": [alert("old", "resolved", "transient")],
        "verdicts": {"auth0": {"verdict": "provider_outage", "reason": "r"}},
    }));
    b.publish(board::PROBES, "synthetic/login", json!({"receiver": "synthetic", "check": "login",
        "type": "password_grant", "server_address": "t.auth0.com", "runs": []}));
    b.publish(board::PROVIDER_STATUS, "auth0", json!({"page": "auth0", "up": true, "indicator": 2,
        "components": [], "incidents": [{"name": evil}]}));
    b
}

#[test]
fn status_document_joins_the_sections() {
    let b = board();
    let mut h = History::new(3);
    for _ in 0..5 {
        h.sample(&b.section(board::DEPENDENCIES), SystemTime::now());
    }
    let s = view::status(&b, &h, &Config::default(), SystemTime::now());
    let d = &s["dependencies"][0];
    assert_eq!(d["name"], "auth0");
    assert_eq!(d["verdict"], "provider_outage");
    assert_eq!(d["verdict_source"], "signals");
    assert_eq!(d["firing"], json!(["auth0_errors"]));
    assert_eq!(d["windows"][0]["error_ratio"], 0.3);
    assert_eq!(d["history"][0]["window"], "1m");
    assert_eq!(d["history"][0]["points"].as_array().unwrap().len(), 3, "history is bounded");
    assert_eq!(d["error_groups"][0]["count"], 30);
    assert_eq!(s["alerts"]["firing"][0]["name"], "auth0_errors");
    assert_eq!(s["alerts"]["resolved"][0]["name"], "old");
    assert_eq!(s["probes"][0]["check"], "login");
    assert_eq!(s["provider_status"][0]["indicator"], 2);
    // Without an alerts connector the verdict is unknown.
    let empty = StatusBoard::default();
    empty.publish(board::DEPENDENCIES, "x", json!({"windows": []}));
    let s = view::status(&empty, &History::new(1), &Config::default(), SystemTime::now());
    assert_eq!(s["dependencies"][0]["verdict"], "unknown");
    assert_eq!(s["alerts"]["firing"], json!([]));
}

#[test]
fn logins_from_tenant_logs_are_shown_per_dependency() {
    let b = board();
    let logins = json!({"window": "5m", "logins": 97.0, "failures": 17.0, "provider_side_failures": 12.0,
        "provider_errors": 12.0, "tenant_errors": 0.0, "user_failures": 5.0, "users_affected": 17.0,
        "users_affected_provider_side": 12.0});
    b.publish(board::ALERTS, "alerts", json!({"firing": [], "pending": [], "resolved": [], "verdicts": {
        "okta": {"verdict": "provider_outage", "reason": "r", "logins": logins},
        "auth0": {"verdict": "healthy", "reason": "r", "logins": null}
    }}));
    let s = view::status(&b, &History::new(1), &Config::default(), SystemTime::now());
    let deps = s["dependencies"].as_array().unwrap();
    let okta = deps.iter().find(|d| d["name"] == "okta").expect("a dependency seen only in a tenant log is listed");
    assert_eq!(okta["logins"], logins);
    assert_eq!(okta["verdict"], "provider_outage");
    let auth0 = deps.iter().find(|d| d["name"] == "auth0").unwrap();
    assert!(auth0["logins"].is_null());
    let page = page::render(&Config::default(), &s);
    assert!(page.contains("users affected"), "the page script names the users affected");
}

#[test]
fn page_escapes_everything_from_the_board() {
    let b = board();
    let cfg = Config { title: "<b>t</b>".into(), banner: "\"x\" & <y>".into(), ..Config::default() };
    let s = view::status(&b, &History::new(1), &cfg, SystemTime::now());
    let html = page::render(&cfg, &s);
    assert!(!html.contains("<img"), "markup from the board must not reach the page");
    assert_eq!(html.matches("</script>").count(), 2, "only the page's own script elements end");
    assert!(!html.contains('\u{2028}'));
    assert!(html.contains("<title>&lt;b&gt;t&lt;/b&gt;</title>"));
    assert!(html.contains("&quot;x&quot; &amp; &lt;y&gt;"));
    // The embedded JSON still means the same data.
    let start = html.find("id=\"status-data\">").unwrap() + "id=\"status-data\">".len();
    let end = html[start..].find("</script>").unwrap() + start;
    let back: Value = serde_json::from_str(&html[start..end]).unwrap();
    assert_eq!(back, s);
    assert_eq!(page::escape_html("a<'&\">"), "a&lt;&#39;&amp;&quot;&gt;");
}

fn shared(b: StatusBoard) -> Arc<Shared> {
    Arc::new(Shared {
        board: b,
        history: Mutex::new(History::new(10)),
        config: Config::default(),
    })
}

#[tokio::test]
async fn routes_serve_the_page_and_the_json() {
    let app = router(shared(board()));
    let r = app
        .clone()
        .oneshot(Request::get("/api/v1/status").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/json");
    assert!(r.headers()["content-security-policy"].to_str().unwrap().contains("default-src 'none'"));
    let body = axum::body::to_bytes(r.into_body(), 1 << 20).await.unwrap();
    let v: Value = serde_json::from_slice(&body).unwrap();
    for k in ["generated_at", "dependencies", "probes", "provider_status", "alerts", "refresh_interval_ms"] {
        assert!(v.get(k).is_some(), "missing {k}");
    }
    let r = app
        .clone()
        .oneshot(Request::get("/").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    let body = axum::body::to_bytes(r.into_body(), 1 << 20).await.unwrap();
    let text = String::from_utf8(body.to_vec()).unwrap();
    assert!(text.starts_with("<!DOCTYPE html>"));
    for external in ["<script src", "<link", "<img", "href=\"http", "url(", "@import"] {
        assert!(!text.contains(external), "no external assets: found {external}");
    }
    let r = app
        .oneshot(Request::get("/nope").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}

#[tokio::test]
async fn lifecycle_binds_serves_and_stops() {
    let config = Config {
        endpoint: "127.0.0.1:0".parse().unwrap(),
        sample_interval: Duration::from_millis(100),
        ..Config::default()
    };
    let settings = Settings::new(ComponentId::new("status_page", None).unwrap());
    settings.board.publish(board::DEPENDENCIES, "auth0", json!({"windows": [{"window": "1m", "error_ratio": 0.5}]}));
    let (addr, running) = config.bind(settings.clone()).await.unwrap();
    // The port is taken while it runs.
    let again = Config { endpoint: ListenAddr(addr), ..Config::default() };
    assert!(matches!(again.bind(settings.clone()).await, Err(BuildError::Bind { .. })));
    let task = tokio::spawn(running);
    let url = format!("http://{addr}/api/v1/status");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let v: Value = reqwest::get(&url).await.unwrap().json().await.unwrap();
        if v["dependencies"][0]["history"][0]["points"]
            .as_array()
            .is_some_and(|p| !p.is_empty())
        {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the sampler never sampled");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    settings.shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("stops on shutdown")
        .unwrap()
        .unwrap();
    assert!(reqwest::get(&url).await.is_err(), "nothing listens after shutdown");
}

#[tokio::test]
async fn shutdown_without_requests() {
    let config = Config { endpoint: "127.0.0.1:0".parse().unwrap(), ..Config::default() };
    let settings = Settings::new(ComponentId::new("status_page", None).unwrap());
    let running = config.build(settings.clone()).await.unwrap();
    settings.shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(10), running).await.unwrap().unwrap();
}

#[tokio::test]
async fn slow_and_idle_clients_are_cut_off() {
    let config = Config {
        endpoint: "127.0.0.1:0".parse().unwrap(),
        read_header_timeout: Duration::from_millis(300),
        idle_timeout: Duration::from_millis(300),
        ..Config::default()
    };
    let settings = Settings::new(ComponentId::new("status_page", None).unwrap());
    let (addr, running) = config.bind(settings.clone()).await.unwrap();
    let task = tokio::spawn(running);
    let wait = Duration::from_secs(10);
    authwatch_testkit::slow_client::assert_slow_head_is_cut_off(addr, wait).await;
    let status =
        authwatch_testkit::slow_client::assert_idle_connection_is_closed(addr, API_PATH, wait)
            .await;
    assert_eq!(status, 200);
    settings.shutdown.cancel();
    tokio::time::timeout(wait, task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

#[test]
fn turned_off_timeouts_are_warned_about() {
    let mut v = Validator::new("");
    Config {
        idle_timeout: Duration::ZERO,
        ..Config::default()
    }
    .validate(&mut v);
    let (errors, warnings) = v.into_parts();
    assert!(errors.is_empty());
    let warnings: Vec<String> = warnings.iter().map(ToString::to_string).collect();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].starts_with("idle_timeout: is 0"),
        "{warnings:?}"
    );
}
