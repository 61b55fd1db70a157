//! End to end: slow is down too. The project's OAuth2 test server answers every login
//! correctly but 1.5 s late; the authwatch binary probes it every 3 s with a
//! `password_grant` check, `error_rate` turns the probe runs into the duration histogram, and a
//! `latency` rule (p90 above 500 ms) fires with the verdict `degraded`, which the status page's
//! JSON API shows for the dependency, with the quantile and the bound. Once the delay is
//! removed, fast runs push the slow ones out of the window and the alert resolves. Bounds far
//! apart (1.5 s against 0.5 s) and generous deadlines keep it robust on a loaded machine.

mod common;

use std::time::Duration;

use authwatch_testkit::oauth_server::{self as srv, OAuthOptions, OAuthServer};
use common::*;
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(120);

async fn status(port: u16) -> Option<Value> {
    reqwest::get(format!("http://127.0.0.1:{port}/api/v1/status"))
        .await
        .ok()?
        .json()
        .await
        .ok()
}

fn dependency<'a>(s: &'a Value, name: &str) -> Option<&'a Value> {
    s["dependencies"]
        .as_array()?
        .iter()
        .find(|d| d["name"] == name)
}

fn alert<'a>(s: &'a Value, list: &str, name: &str) -> Option<&'a Value> {
    s["alerts"][list]
        .as_array()?
        .iter()
        .find(|a| a["name"] == name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_provider_fires_a_latency_alert_and_shows_degraded() {
    let idp = OAuthServer::start(OAuthOptions::default()).await;
    idp.set_delay(Duration::from_millis(1500)).await;
    let page = free_port();
    let yaml = format!(
        "
receivers:
  synthetic:
    interval: 3s
    timeout: 3s
    initial_delay: 0s
    checks:
      - name: login
        type: password_grant
        token_url: '{token_url}'
        client_id: '{client_id}'
        client_secret: '{client_secret}'
        username: '{username}'
        password: '{password}'
        audience: '{audience}'
        degraded_response_time: 1s
connectors:
  error_rate:
    dependencies:
      - name: test_idp
        server_address: ['127.0.0.1']
    metrics_flush_interval: 500ms
  alerts:
    rules:
      - name: idp_slow
        latency: {{dependency: test_idp, source: probe, quantile: p90, slower_than: 500ms, window: 10s, min_requests: 2}}
exporters:
  debug: {{}}
extensions:
  status_page: {{endpoint: '127.0.0.1:{page}'}}
service:
  extensions: [status_page]
  telemetry: {{metrics: {{level: none}}}}
  pipelines:
    traces: {{receivers: [synthetic], exporters: [error_rate]}}
    metrics: {{receivers: [error_rate, synthetic], exporters: [alerts]}}
    logs: {{receivers: [alerts], exporters: [debug]}}
",
        token_url = idp.token_url(),
        client_id = srv::CLIENT_ID,
        client_secret = srv::CLIENT_SECRET,
        username = srv::USERNAME,
        password = srv::PASSWORD,
        audience = srv::AUDIENCE,
    );
    let aw = Authwatch::start(&yaml);

    // Slow but correct: the latency alert fires, and nothing failed, so the verdict is
    // `degraded`, on the alert and on the dependency.
    let mut last = Value::Null;
    let fired = eventually(WAIT, async || {
        let Some(s) = status(page).await else {
            return false;
        };
        last = s;
        let firing = alert(&last, "firing", "idp_slow").is_some_and(|a| a["verdict"] == "degraded");
        let dep = dependency(&last, "test_idp").is_some_and(|d| d["verdict"] == "degraded");
        firing && dep
    })
    .await;
    assert!(
        fired,
        "no degraded latency alert:\n{last:#}\nauthwatch output:\n{}",
        aw.output()
    );
    let d = dependency(&last, "test_idp").unwrap();
    let reason = d["verdict_reason"].as_str().unwrap_or_default();
    assert!(
        reason.starts_with("Slow but not failing: p90 of calls to test_idp"),
        "{last:#}"
    );
    assert!(reason.contains("bound 500ms"), "{last:#}");
    let a = alert(&last, "firing", "idp_slow").unwrap();
    assert_eq!(a["kind"], "latency", "{last:#}");
    assert!(a["value"].as_f64().unwrap() > 0.5, "{last:#}");
    assert_eq!(a["threshold"], 0.5, "{last:#}");
    // The probe runs succeed; their check marks them degraded (slower than 1s).
    let probe = last["probes"]
        .as_array()
        .and_then(|p| p.first())
        .cloned()
        .unwrap_or_default();
    let run = &probe["runs"][0];
    assert_eq!(run["outcome"], "success", "{last:#}");
    assert_eq!(run["degraded"], true, "{last:#}");

    // Fast again: the slow runs leave the 10s window and the alert resolves.
    idp.set_delay(Duration::ZERO).await;
    let resolved = eventually(WAIT, async || {
        let Some(s) = status(page).await else {
            return false;
        };
        last = s;
        alert(&last, "firing", "idp_slow").is_none()
            && alert(&last, "resolved", "idp_slow").is_some()
            && dependency(&last, "test_idp").is_some_and(|d| d["verdict"] == "healthy")
    })
    .await;
    assert!(
        resolved,
        "the latency alert did not resolve:\n{last:#}\nauthwatch output:\n{}",
        aw.output()
    );
    idp.stop().await;
}
