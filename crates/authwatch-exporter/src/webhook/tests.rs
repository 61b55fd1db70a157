use std::time::Duration;

use authwatch_core::config::Positive;
use authwatch_core::data::kv as attr;
use authwatch_core::otlp::common::v1::any_value::Value;
use authwatch_core::{semconv, ConsumeError, ExporterConfig};

use super::*;
use crate::helper::alert::test_support::{rich, signal_of, Capture};
use crate::helper::tests::fixtures::*;
use crate::helper::tests::metric;

fn config(server: &Capture) -> Config {
    Config {
        endpoint: HttpUrl::new(format!("{}/hooks/authwatch", server.url())).unwrap(),
        sending_queue: no_queue(),
        retry_on_failure: fast_retry(),
        ..Config::default()
    }
}

#[test]
fn config_contract() {
    authwatch_testkit::assert_config_decodes::<Config>("webhook");
}

#[test]
fn full_config_decodes() {
    let yaml: serde_yaml::Value =
        serde_yaml::from_str(include_str!("testdata/config.yaml")).unwrap();
    let got: Config =
        authwatch_core::registry::decode_config(serde_json::to_value(yaml).unwrap()).unwrap();
    let want = Config {
        endpoint: HttpUrl::new("https://hooks.example.com/authwatch").unwrap(),
        bearer_token: Some(Secret::new("hook-t0ken")),
        headers: [("x-api-key".to_owned(), Secret::new("k3y"))].into(),
        timeout: Duration::from_secs(3),
        send_pending: true,
        send_resends: true,
        sending_queue: QueueConfig {
            num_consumers: Positive(2),
            ..QueueConfig::default()
        },
        retry_on_failure: RetryConfig {
            initial_interval: Duration::from_secs(1),
            ..RetryConfig::default()
        },
    };
    assert_eq!(got, want);
    let text = format!("{got:?} {}", serde_json::to_string(&got).unwrap());
    assert!(!text.contains("hook-t0ken") && !text.contains("k3y"), "{text}");
}

#[test]
fn invalid_configs() {
    check_invalid_cases::<Config>(include_str!("testdata/invalid.yaml"));
}

#[tokio::test]
async fn one_post_per_event_with_the_documented_payload() {
    let server = Capture::start().await;
    let s = settings("webhook");
    let cfg = Config {
        bearer_token: Some(Secret::new("hook-t0ken")),
        headers: [("X-Api-Key".to_owned(), Secret::new("k3y"))].into(),
        ..config(&server)
    };
    let built = cfg.build(s.clone()).await.unwrap();
    built
        .consumer
        .consume(signal_of(vec![
            rich("firing", "provider_outage"),
            rich("resolved", "provider_outage"),
        ]))
        .await
        .unwrap();
    let reqs = server.wait_for(2).await;
    assert_eq!(reqs.len(), 2);
    for r in &reqs {
        assert_eq!(r.path, "/hooks/authwatch");
        assert_eq!(r.headers["authorization"], "Bearer hook-t0ken");
        assert_eq!(r.headers["x-api-key"], "k3y");
        assert_eq!(r.headers["content-type"], "application/json");
    }
    let want = serde_json::json!({
        "version": "1",
        "event": "authwatch.alert",
        "name": "auth0_errors",
        "state": "firing",
        "resend": false,
        "severity": "page",
        "rule_kind": "threshold",
        "fingerprint": "fp-auth0",
        "verdict": "provider_outage",
        "verdict_reason": "probes and real traffic both fail",
        "labels": {"alertname": "auth0_errors", "dependency": "auth0"},
        "annotations": {"summary": "Auth0 token endpoint failing"},
        "value": 0.42,
        "threshold": 0.05,
        "signals": {"probe.failures": 3.0, "traffic.error_ratio": 0.42},
        "starts_at": "2024-05-01T12:00:00Z",
        "ends_at": null,
        "time": "2024-05-01T12:00:01.000Z",
        "generator_url": null,
        "runbook_url": "https://runbooks.example.com/auth0",
        "status_page_url": "https://status.auth0.com",
    });
    assert_eq!(reqs[0].body, want);
    assert_eq!(reqs[1].body["state"], "resolved");
    assert_eq!(reqs[1].body["ends_at"], "2024-05-01T12:10:00Z");
    assert_eq!(metric(&s.telemetry, "exporter_sent_log_records_total", "webhook"), 2);
    shut_down(&s, built.task).await;
}

#[tokio::test]
async fn pending_resends_and_other_records_are_skipped_by_default() {
    let server = Capture::start().await;
    let s = settings("webhook");
    let built = config(&server).build(s.clone()).await.unwrap();
    let mut resend = rich("firing", "provider_outage");
    resend
        .attributes
        .push(attr(semconv::ALERT_RESEND, Value::BoolValue(true)));
    built
        .consumer
        .consume(signal_of(vec![rich("pending", "transient"), resend.clone()]))
        .await
        .unwrap();
    built
        .consumer
        .consume(authwatch_testkit::log_signal(0, 2))
        .await
        .unwrap();
    assert!(server.requests().is_empty());
    let ignored = s
        .telemetry
        .encode()
        .lines()
        .find_map(|l| {
            l.strip_prefix("authwatch_exporter_ignored_log_records_total{exporter=\"webhook\"} ")
                .map(|v| v.trim().to_owned())
        })
        .unwrap_or_default();
    assert_eq!(ignored, "4");
    shut_down(&s, built.task).await;

    // Asked for: both are posted.
    let s = settings("webhook/all");
    let cfg = Config {
        send_pending: true,
        send_resends: true,
        ..config(&server)
    };
    let built = cfg.build(s.clone()).await.unwrap();
    built
        .consumer
        .consume(signal_of(vec![rich("pending", "transient"), resend]))
        .await
        .unwrap();
    let reqs = server.wait_for(2).await;
    assert_eq!(reqs[0].body["state"], "pending");
    assert_eq!(reqs[1].body["resend"], true);
    shut_down(&s, built.task).await;
}

#[tokio::test]
async fn transient_failures_are_retried() {
    let server = Capture::start().await;
    server.answer(&[503, 429, 502]);
    let s = settings("webhook");
    let built = config(&server).build(s.clone()).await.unwrap();
    built
        .consumer
        .consume(signal_of(vec![rich("firing", "provider_outage")]))
        .await
        .unwrap();
    let reqs = server.requests();
    assert_eq!(reqs.len(), 4);
    assert!(reqs.iter().all(|r| r.body == reqs[0].body));
    assert_eq!(metric(&s.telemetry, "exporter_sent_log_records_total", "webhook"), 1);
    shut_down(&s, built.task).await;
}

#[tokio::test]
async fn client_errors_are_permanent_and_secrets_stay_out() {
    let server = Capture::start().await;
    server.answer(&[401]);
    let s = settings("webhook");
    let cfg = Config {
        bearer_token: Some(Secret::new("hook-s3cret")),
        ..config(&server)
    };
    let built = cfg.build(s.clone()).await.unwrap();
    let err = built
        .consumer
        .consume(signal_of(vec![rich("firing", "provider_outage")]))
        .await
        .unwrap_err();
    let ConsumeError::Permanent(e) = &err else {
        panic!("want permanent, got {err:?}");
    };
    let msg = e.to_string();
    assert!(msg.contains("HTTP 401"), "{msg}");
    assert!(!msg.contains("s3cret"), "{msg}");
    assert_eq!(server.requests().len(), 1);
    assert_eq!(metric(&s.telemetry, "exporter_send_failed_log_records_total", "webhook"), 1);
    shut_down(&s, built.task).await;
}

#[tokio::test]
async fn queued_events_are_retried_one_by_one() {
    let server = Capture::start().await;
    // The first event fails once; the second goes through; nothing is posted twice.
    server.answer(&[503]);
    let s = settings("webhook");
    let cfg = Config {
        sending_queue: one_worker(10),
        ..config(&server)
    };
    let built = cfg.build(s.clone()).await.unwrap();
    let task = tokio::spawn(built.task.unwrap());
    built
        .consumer
        .consume(signal_of(vec![
            rich("firing", "provider_outage"),
            rich("resolved", "provider_outage"),
        ]))
        .await
        .unwrap();
    let reqs = server.wait_for(3).await;
    let states: Vec<&str> = reqs.iter().map(|r| r.body["state"].as_str().unwrap()).collect();
    assert_eq!(states, vec!["firing", "firing", "resolved"]);
    s.shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(30), task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(server.requests().len(), 3);
}
