use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use authwatch_core::otlp::collector::logs::v1::ExportLogsServiceRequest;
use authwatch_core::otlp::common::v1::any_value::Value;
use authwatch_core::otlp::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use authwatch_core::{semconv, ConsumeError, ExporterConfig, Signal};
use authwatch_testkit::alertmanager::Alertmanager;
use axum::body::Bytes;
use axum::extract::State as AxState;
use axum::http::{HeaderMap as AxHeaders, StatusCode as AxStatus, Uri};

use super::event::{attr, format_time, parse_time, AlertEvent};
use super::table::{keys_of, Table};
use super::*;
use crate::helper::tests::fixtures::*;
use crate::helper::tests::metric;

const WAIT: Duration = Duration::from_secs(30);

// --- fixtures shared with the webhook tests ---

/// A request the capture server got.
#[derive(Debug, Clone)]
pub(crate) struct Req {
    pub path: String,
    pub headers: AxHeaders,
    pub body: serde_json::Value,
}

#[derive(Default)]
struct CaptureState {
    requests: Vec<Req>,
    script: VecDeque<u16>,
}

/// An HTTP server on 127.0.0.1:0 that records every request and answers from a script
/// (then 200).
pub(crate) struct Capture {
    addr: SocketAddr,
    state: Arc<Mutex<CaptureState>>,
    task: tokio::task::JoinHandle<()>,
}

async fn capture_handler(
    AxState(state): AxState<Arc<Mutex<CaptureState>>>,
    uri: Uri,
    headers: AxHeaders,
    body: Bytes,
) -> (AxStatus, &'static str) {
    let mut s = state.lock().unwrap();
    s.requests.push(Req {
        path: uri.path().to_owned(),
        headers,
        body: serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null),
    });
    let code = s.script.pop_front().unwrap_or(200);
    (AxStatus::from_u16(code).unwrap(), "scripted answer")
}

impl Capture {
    pub(crate) async fn start() -> Capture {
        let state = Arc::new(Mutex::new(CaptureState::default()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = axum::Router::new()
            .fallback(capture_handler)
            .with_state(state.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Capture { addr, state, task }
    }

    pub(crate) fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The next answers' status codes, in order.
    pub(crate) fn answer(&self, codes: &[u16]) {
        self.state.lock().unwrap().script.extend(codes);
    }

    pub(crate) fn requests(&self) -> Vec<Req> {
        self.state.lock().unwrap().requests.clone()
    }

    /// Waits until at least `n` requests came (hang guard only).
    pub(crate) async fn wait_for(&self, n: usize) -> Vec<Req> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let r = self.requests();
            if r.len() >= n {
                return r;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "expected {n} requests, got {}: {r:?}",
                r.len()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// An alert event record as the `alerts` connector writes it.
pub(crate) fn alert_record(name: &str, state: &str, extra: Vec<(&str, Value)>) -> LogRecord {
    let s = |v: &str| Value::StringValue(v.to_owned());
    let mut attributes = vec![
        attr(semconv::ALERT_NAME, s(name)),
        attr(semconv::ALERT_STATE, s(state)),
    ];
    attributes.extend(extra.into_iter().map(|(k, v)| attr(k, v)));
    LogRecord {
        event_name: semconv::ALERT_EVENT.into(),
        time_unix_nano: 1_714_564_801_000_000_000,
        attributes,
        ..Default::default()
    }
}

/// The connector's full attribute set for an auth0 alert.
pub(crate) fn rich(state: &str, verdict: &str) -> LogRecord {
    let s = |v: &str| Value::StringValue(v.to_owned());
    let mut extra = vec![
        (semconv::ALERT_SEVERITY, s("page")),
        (semconv::ALERT_RULE_KIND, s("threshold")),
        (semconv::ALERT_FINGERPRINT, s("fp-auth0")),
        (semconv::ALERT_VERDICT, s(verdict)),
        (
            semconv::ALERT_VERDICT_REASON,
            s("probes and real traffic both fail"),
        ),
        (semconv::ALERT_STARTS_AT, s("2024-05-01T12:00:00Z")),
        (semconv::ALERT_RUNBOOK_URL, s("https://runbooks.example.com/auth0")),
        (semconv::ALERT_STATUS_PAGE_URL, s("https://status.auth0.com")),
        ("alert.label.alertname", s("auth0_errors")),
        ("alert.label.dependency", s("auth0")),
        ("alert.annotation.summary", s("Auth0 token endpoint failing")),
        (semconv::ALERT_VALUE, Value::DoubleValue(0.42)),
        (semconv::ALERT_THRESHOLD, Value::DoubleValue(0.05)),
        ("alert.signal.probe.failures", Value::IntValue(3)),
        ("alert.signal.traffic.error_ratio", Value::DoubleValue(0.42)),
    ];
    if state == "resolved" {
        extra.push((semconv::ALERT_ENDS_AT, s("2024-05-01T12:10:00Z")));
    }
    alert_record("auth0_errors", state, extra)
}

pub(crate) fn signal_of(records: Vec<LogRecord>) -> Signal {
    Signal::Logs(ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            scope_logs: vec![ScopeLogs {
                log_records: records,
                ..Default::default()
            }],
            ..Default::default()
        }],
    })
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
    let old_end = parse_time(got[0].ends_at.as_deref().unwrap()).unwrap();
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
    let ends = parse_time(alerts[0].ends_at.as_deref().unwrap()).unwrap();
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
            parse_time(a[0].ends_at.as_deref().unwrap()).unwrap()
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
    let ConsumeError::Permanent(msg) = &err else {
        panic!("want permanent, got {err:?}");
    };
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
fn queue_items_carry_keys() {
    let sig = super::table::keys_signal(&["a".into(), "b".into()]);
    assert_eq!(keys_of(&sig), vec!["a".to_owned(), "b".to_owned()]);
    assert_eq!(sig.item_count(), 2);
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
    let ends = parse_time(a["endsAt"].as_str().unwrap()).unwrap();
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
