use std::time::{Duration, SystemTime, UNIX_EPOCH};

use authwatch_core::data::kv as attr;
use authwatch_core::otlp::common::v1::any_value::Value;
use authwatch_core::otlp::logs::v1::LogRecord;
use authwatch_core::time::{format_rfc3339, parse_rfc3339, Precision};
use authwatch_core::{semconv, ConsumeError, ExporterConfig};
use authwatch_testkit::alertmanager::Alertmanager;

use super::table::Table;
use super::*;
use crate::helper::alert::event::AlertEvent;
use crate::helper::alert::test_support::{rich, signal_of, Capture, WAIT};
use crate::helper::tests::fixtures::*;
use crate::helper::tests::metric;

fn format_time(t: SystemTime) -> String {
    format_rfc3339(t, Precision::Millis)
}

fn config(urls: &[String]) -> Config {
    let mut c = Config {
        sending_queue: no_queue(),
        retry_on_failure: fast_retry(),
        ..Config::default()
    };
    if urls.len() == 1 {
        c.endpoint = HttpUrl::new(urls[0].clone()).unwrap();
    } else {
        c.endpoints = urls.iter().map(|u| HttpUrl::new(u.clone()).unwrap()).collect();
    }
    c
}

fn custom_metric(s: &Settings, series: &str) -> u64 {
    s.telemetry
        .encode()
        .lines()
        .find_map(|l| l.strip_prefix(series))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map(|v| v as u64)
        .unwrap_or(0)
}

// --- config ---

#[test]
fn config_contract() {
    authwatch_testkit::assert_config_decodes::<Config>("alertmanager");
}

#[test]
fn full_config_decodes() {
    let yaml: serde_yaml::Value =
        serde_yaml::from_str(include_str!("testdata/config.yaml")).unwrap();
    let got: Config =
        authwatch_core::registry::decode_config(serde_json::to_value(yaml).unwrap()).unwrap();
    let want = Config {
        endpoint: HttpUrl::default(),
        endpoints: vec![
            HttpUrl::new("http://am-0:9093").unwrap(),
            HttpUrl::new("http://am-1:9093/alertmanager/").unwrap(),
        ],
        timeout: Duration::from_secs(5),
        headers: [("x-scope-orgid".to_owned(), Secret::new("tenant-1"))].into(),
        auth: Some(AuthConfig {
            bearer_token: Some(Secret::new("t0ken")),
            ..AuthConfig::default()
        }),
        generator_url: HttpUrl::new("https://grafana.example.com/d/authwatch").unwrap(),
        resend_interval: Duration::from_secs(30),
        alert_ttl: Duration::from_secs(120),
        sending_queue: QueueConfig {
            queue_size: authwatch_core::config::Positive(50),
            ..QueueConfig::default()
        },
        retry_on_failure: RetryConfig {
            max_elapsed_time: Duration::from_secs(60),
            ..RetryConfig::default()
        },
    };
    assert_eq!(got, want);
    assert_eq!(
        got.alert_urls(),
        vec![
            "http://am-0:9093/api/v2/alerts".to_owned(),
            "http://am-1:9093/alertmanager/api/v2/alerts".to_owned(),
        ]
    );
    let text = format!("{got:?} {}", serde_json::to_string(&got).unwrap());
    assert!(!text.contains("t0ken") && !text.contains("tenant-1"), "{text}");
}

#[test]
fn invalid_configs() {
    check_invalid_cases::<Config>(include_str!("testdata/invalid.yaml"));
}

#[test]
fn names_are_made_valid_for_alertmanager() {
    assert_eq!(sanitize("probe.failures"), "probe_failures");
    assert_eq!(sanitize("9lives"), "_9lives");
    assert_eq!(sanitize("runbook-url"), "runbook_url");
    assert_eq!(sanitize("ok_Name1"), "ok_Name1");
}

// --- the table (no sockets, paused time) ---

fn table() -> Table {
    Table::new(TableConfig {
        alert_ttl: Duration::from_secs(300),
        resend_interval: Duration::from_secs(60),
        generator_url: "https://authwatch.example.com".into(),
    })
}

fn event(r: &LogRecord) -> AlertEvent {
    AlertEvent::from_record(r).expect("an alert event")
}

#[test]
fn event_becomes_alertmanager_alert() {
    let t = table();
    let key = t.apply(&event(&rich("firing", "provider_outage"))).unwrap();
    assert_eq!(key, "fp-auth0");
    let now = UNIX_EPOCH + Duration::from_secs(1_714_565_000);
    let got = t.postable(std::slice::from_ref(&key), now);
    let want = PostableAlert {
        labels: [
            ("alertname", "auth0_errors"),
            ("dependency", "auth0"),
            ("severity", "page"),
            ("verdict", "provider_outage"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .into(),
        annotations: [
            ("summary", "Auth0 token endpoint failing"),
            ("runbook_url", "https://runbooks.example.com/auth0"),
            ("status_page_url", "https://status.auth0.com"),
            ("verdict_reason", "probes and real traffic both fail"),
            ("rule_kind", "threshold"),
            ("value", "0.42"),
            ("threshold", "0.05"),
            ("signal_probe_failures", "3"),
            ("signal_traffic_error_ratio", "0.42"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .into(),
        starts_at: Some("2024-05-01T12:00:00.000Z".into()),
        // Firing: the send time plus alert_ttl.
        ends_at: Some(format_time(now + Duration::from_secs(300))),
        generator_url: "https://authwatch.example.com".into(),
    };
    assert_eq!(got, vec![want]);
    // The JSON field names Alertmanager expects.
    let json = serde_json::to_value(&got[0]).unwrap();
    for k in ["labels", "annotations", "startsAt", "endsAt", "generatorURL"] {
        assert!(json.get(k).is_some(), "{k} missing in {json}");
    }
}

#[test]
fn a_resolution_wins_over_a_queued_firing_event() {
    let t = table();
    let key = t.apply(&event(&rich("firing", "provider_outage"))).unwrap();
    t.apply(&event(&rich("resolved", "provider_outage")));
    // The firing event's queue item is sent after the resolution: it carries the newest state.
    let got = t.postable(&[key], SystemTime::now());
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].ends_at.as_deref(), Some("2024-05-01T12:10:00.000Z"));
    assert_eq!(t.firing(), 0);
}

#[test]
fn pending_and_unknown_states_are_not_for_alertmanager() {
    let t = table();
    assert_eq!(t.apply(&event(&rich("pending", "transient"))), None);
    assert_eq!(t.apply(&event(&rich("exploded", "transient"))), None);
    assert_eq!(t.firing(), 0);
}

#[test]
fn a_changed_verdict_resolves_the_old_label_set() {
    let t = table();
    t.apply(&event(&rich("firing", "transient")));
    let key = t.apply(&event(&rich("firing", "provider_outage"))).unwrap();
    let got = t.postable(std::slice::from_ref(&key), SystemTime::now());
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(got[0].labels["verdict"], "transient");
    let old_end = parse_rfc3339(got[0].ends_at.as_deref().unwrap()).unwrap();
    assert!(old_end <= SystemTime::now(), "the old label set is resolved");
    assert_eq!(got[1].labels["verdict"], "provider_outage");
    assert_eq!(got[1].starts_at, got[0].starts_at);
    // Back to the first verdict: that label set is live again, not retired.
    t.apply(&event(&rich("firing", "transient")));
    let got = t.postable(&[key], SystemTime::now());
    assert_eq!(
        got.iter().map(|a| a.labels["verdict"].as_str()).collect::<Vec<_>>(),
        vec!["provider_outage", "transient"]
    );
}

#[tokio::test(start_paused = true)]
async fn resend_schedule_and_resolved_retention() {
    let t = table();
    let start = tokio::time::Instant::now();
    let key = t.apply(&event(&rich("firing", "provider_outage"))).unwrap();
    let (due, next) = t.due(start);
    assert!(due.is_empty());
    assert_eq!(next, Some(start + Duration::from_secs(60)));
    tokio::time::advance(Duration::from_secs(60)).await;
    let (due, next) = t.due(tokio::time::Instant::now());
    assert_eq!(due, vec![key.clone()]);
    assert_eq!(next, Some(start + Duration::from_secs(120)));
    // Resolved: still re-sent for 15 minutes, then forgotten.
    t.apply(&event(&rich("resolved", "provider_outage")));
    let resolved_at = tokio::time::Instant::now();
    tokio::time::advance(Duration::from_secs(60)).await;
    assert_eq!(t.due(tokio::time::Instant::now()).0, vec![key.clone()]);
    tokio::time::advance(RESOLVED_RETENTION).await;
    let (due, next) = t.due(resolved_at + RESOLVED_RETENTION);
    assert!(due.is_empty() && next.is_none(), "{due:?} {next:?}");
    assert!(t.postable(&[key], SystemTime::now()).is_empty());
}

// --- against a capture server ---

#[tokio::test]
async fn posts_the_alert_with_headers_and_bearer_token() {
    let server = Capture::start().await;
    let s = settings("alertmanager");
    let cfg = Config {
        headers: [("X-Scope-OrgID".to_owned(), Secret::new("tenant-1"))].into(),
        auth: Some(AuthConfig {
            bearer_token: Some(Secret::new("t0ken")),
            ..AuthConfig::default()
        }),
        ..config(&[server.url()])
    };
    let built = cfg.build(s.clone()).await.unwrap();
    built
        .consumer
        .consume(signal_of(vec![rich("firing", "provider_outage")]))
        .await
        .unwrap();
    let r = &server.wait_for(1).await[0];
    assert_eq!(r.path, "/api/v2/alerts");
    assert_eq!(r.headers["authorization"], "Bearer t0ken");
    assert_eq!(r.headers["x-scope-orgid"], "tenant-1");
    assert_eq!(r.headers["content-type"], "application/json");
    let alerts: Vec<PostableAlert> = serde_json::from_value(r.body.clone()).unwrap();
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0].labels["alertname"], "auth0_errors");
    assert_eq!(alerts[0].labels["verdict"], "provider_outage");
    assert_eq!(
        alerts[0].annotations["verdict_reason"],
        "probes and real traffic both fail"
    );
    let ends = parse_rfc3339(alerts[0].ends_at.as_deref().unwrap()).unwrap();
    assert!(ends > SystemTime::now() + Duration::from_secs(200), "firing: endsAt ahead");
    assert_eq!(metric(&s.telemetry, "exporter_sent_log_records_total", "alertmanager"), 1);
    shut_down(&s, built.task).await;
}

#[tokio::test]
async fn basic_auth() {
    let server = Capture::start().await;
    let s = settings("alertmanager");
    let cfg = Config {
        auth: Some(AuthConfig {
            username: Some("am".into()),
            password: Some(Secret::new("pw")),
            ..AuthConfig::default()
        }),
        ..config(&[server.url()])
    };
    let built = cfg.build(s.clone()).await.unwrap();
    built
        .consumer
        .consume(signal_of(vec![rich("firing", "transient")]))
        .await
        .unwrap();
    // base64("am:pw")
    assert_eq!(server.wait_for(1).await[0].headers["authorization"], "Basic YW06cHc=");
    shut_down(&s, built.task).await;
}

#[tokio::test]
async fn firing_alerts_are_resent_until_resolved() {
    let server = Capture::start().await;
    let s = settings("alertmanager");
    let cfg = Config {
        resend_interval: Duration::from_millis(50),
        alert_ttl: Duration::from_secs(1),
        sending_queue: one_worker(100),
        ..config(&[server.url()])
    };
    let built = cfg.build(s.clone()).await.unwrap();
    let task = tokio::spawn(built.task.unwrap());
    built
        .consumer
        .consume(signal_of(vec![rich("firing", "provider_outage")]))
        .await
        .unwrap();
    // No more events: the exporter re-sends by itself, each time with a later endsAt.
    let reqs = server.wait_for(4).await;
    let ends: Vec<SystemTime> = reqs
        .iter()
        .map(|r| {
            let a: Vec<PostableAlert> = serde_json::from_value(r.body.clone()).unwrap();
            parse_rfc3339(a[0].ends_at.as_deref().unwrap()).unwrap()
        })
        .collect();
    assert!(ends.windows(2).all(|w| w[0] <= w[1]), "{ends:?}");
    assert!(ends[0] < ends[3], "{ends:?}");
    built
        .consumer
        .consume(signal_of(vec![rich("resolved", "provider_outage")]))
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let last = server.requests().last().cloned().unwrap();
        let a: Vec<PostableAlert> = serde_json::from_value(last.body).unwrap();
        if a[0].ends_at.as_deref() == Some("2024-05-01T12:10:00.000Z") {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "no resolution sent");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    s.shutdown.cancel();
    tokio::time::timeout(WAIT, task).await.unwrap().unwrap().unwrap();
}

#[tokio::test]
async fn ha_pair_succeeds_when_one_endpoint_is_down() {
    let server = Capture::start().await;
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let s = settings("alertmanager/ha");
    let built = config(&[dead.clone(), server.url()])
        .build(s.clone())
        .await
        .unwrap();
    built
        .consumer
        .consume(signal_of(vec![rich("firing", "provider_outage")]))
        .await
        .unwrap();
    assert_eq!(server.requests().len(), 1, "no retry: one endpoint took it");
    let t = &s.telemetry;
    assert_eq!(metric(t, "exporter_sent_log_records_total", "alertmanager/ha"), 1);
    assert_eq!(metric(t, "exporter_send_failed_log_records_total", "alertmanager/ha"), 0);
    let series = format!(
        "authwatch_exporter_endpoint_failures_total{{exporter=\"alertmanager/ha\",endpoint=\"{dead}/api/v2/alerts\"}} "
    );
    assert_eq!(custom_metric(&s, &series), 1, "{}", t.encode());
    shut_down(&s, built.task).await;
}

#[tokio::test]
async fn every_endpoint_failing_is_retried_then_reported_per_endpoint() {
    let a = Capture::start().await;
    let b = Capture::start().await;
    a.answer(&[503, 503]);
    b.answer(&[500, 429]);
    let s = settings("alertmanager");
    let built = config(&[a.url(), b.url()]).build(s.clone()).await.unwrap();
    built
        .consumer
        .consume(signal_of(vec![rich("firing", "provider_outage")]))
        .await
        .unwrap();
    assert_eq!(a.requests().len(), 3);
    assert_eq!(b.requests().len(), 3);
    assert_eq!(metric(&s.telemetry, "exporter_sent_log_records_total", "alertmanager"), 1);
    shut_down(&s, built.task).await;
}

#[tokio::test]
async fn bad_request_is_permanent_and_secrets_stay_out_of_errors() {
    let server = Capture::start().await;
    server.answer(&[400]);
    let s = settings("alertmanager");
    let cfg = Config {
        headers: [("x-api-key".to_owned(), Secret::new("hdr-s3cret"))].into(),
        auth: Some(AuthConfig {
            bearer_token: Some(Secret::new("tok-s3cret")),
            ..AuthConfig::default()
        }),
        ..config(&[server.url()])
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
    assert!(msg.contains("HTTP 400"), "{msg}");
    assert!(msg.contains("/api/v2/alerts"), "{msg}");
    assert!(!msg.contains("s3cret"), "{msg}");
    assert_eq!(server.requests().len(), 1, "a 400 is not retried");
    assert_eq!(
        metric(&s.telemetry, "exporter_send_failed_log_records_total", "alertmanager"),
        1
    );
    shut_down(&s, built.task).await;
}

#[tokio::test]
async fn records_that_are_not_alerts_are_ignored_and_counted() {
    let server = Capture::start().await;
    let s = settings("alertmanager");
    let built = config(&[server.url()]).build(s.clone()).await.unwrap();
    built
        .consumer
        .consume(authwatch_testkit::log_signal(0, 3))
        .await
        .unwrap();
    built
        .consumer
        .consume(signal_of(vec![rich("pending", "transient")]))
        .await
        .unwrap();
    built
        .consumer
        .consume(signal_of(vec![rich("firing", "transient")]))
        .await
        .unwrap();
    let reqs = server.wait_for(1).await;
    assert_eq!(reqs.len(), 1, "only the firing alert is posted");
    assert_eq!(
        custom_metric(
            &s,
            "authwatch_exporter_ignored_log_records_total{exporter=\"alertmanager\"} "
        ),
        4
    );
    assert_eq!(metric(&s.telemetry, "exporter_sent_log_records_total", "alertmanager"), 1);
    shut_down(&s, built.task).await;
}

#[test]
fn queue_items_are_alert_keys() {
    use crate::helper::QueueItem;
    let keys = |k: &[&str]| AlertKeys(k.iter().map(|s| s.to_string()).collect());
    let a = keys(&["a", "b"]);
    assert_eq!(a.kind(), authwatch_core::SignalKind::Logs);
    assert_eq!(a.item_count(), 2);
    assert_eq!(a.encoded_size(), 2);
    // Batches name each alert once, in order.
    let merged = AlertKeys::merge(vec![a, keys(&["b", "c"]), keys(&["a"])]);
    assert_eq!(merged, keys(&["a", "b", "c"]));
    assert_eq!(AlertKeys::merge(vec![]), keys(&[]));
}

// --- against a real Alertmanager ---

fn label_is(a: &serde_json::Value, k: &str, v: &str) -> bool {
    a["labels"][k] == v
}

#[tokio::test]
async fn real_alertmanager_shows_the_alert_then_its_resolution() {
    let am = Alertmanager::start().await;
    let s = settings("alertmanager");
    let cfg = Config {
        generator_url: HttpUrl::new("https://authwatch.example.com/rules").unwrap(),
        ..config(&[am.url()])
    };
    let built = cfg.build(s.clone()).await.unwrap();
    // A start time close to now, so that Alertmanager's view is realistic.
    let now = SystemTime::now();
    let fresh = |state: &str| {
        let mut r = rich(state, "provider_outage");
        r.time_unix_nano = now.duration_since(UNIX_EPOCH).unwrap().as_nanos() as u64;
        for kv in &mut r.attributes {
            if kv.key == semconv::ALERT_STARTS_AT {
                *kv = attr(kv.key.as_str(), Value::StringValue(format_time(now)));
            }
            if kv.key == semconv::ALERT_ENDS_AT {
                *kv = attr(kv.key.as_str(), Value::StringValue(format_time(SystemTime::now())));
            }
        }
        r
    };
    built
        .consumer
        .consume(signal_of(vec![fresh("firing")]))
        .await
        .unwrap();
    let alerts = am
        .wait_for("auth0_errors listed", WAIT, |a| {
            a.iter().any(|x| label_is(x, "alertname", "auth0_errors"))
        })
        .await;
    let a = alerts
        .iter()
        .find(|x| label_is(x, "alertname", "auth0_errors"))
        .unwrap();
    assert_eq!(a["labels"]["verdict"], "provider_outage", "{a}");
    assert_eq!(a["labels"]["severity"], "page", "{a}");
    assert_eq!(a["labels"]["dependency"], "auth0", "{a}");
    assert_eq!(
        a["annotations"]["verdict_reason"],
        "probes and real traffic both fail",
        "{a}"
    );
    assert_eq!(a["annotations"]["runbook_url"], "https://runbooks.example.com/auth0");
    assert_eq!(a["annotations"]["status_page_url"], "https://status.auth0.com");
    assert_eq!(a["annotations"]["value"], "0.42");
    assert_eq!(a["annotations"]["threshold"], "0.05");
    assert_eq!(a["generatorURL"], "https://authwatch.example.com/rules");
    assert_eq!(a["status"]["state"], "active", "{a}");
    let ends = parse_rfc3339(a["endsAt"].as_str().unwrap()).unwrap();
    assert!(ends > SystemTime::now(), "firing alert must not have ended: {a}");

    built
        .consumer
        .consume(signal_of(vec![fresh("resolved")]))
        .await
        .unwrap();
    am.wait_for("auth0_errors resolved (gone from the active list)", WAIT, |a| {
        !a.iter().any(|x| label_is(x, "alertname", "auth0_errors"))
    })
    .await;
    shut_down(&s, built.task).await;
}
