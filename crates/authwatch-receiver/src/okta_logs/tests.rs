use super::*;

use authwatch_core::otlp::common::v1::any_value;
use authwatch_core::otlp::metrics::v1::{metric, number_data_point};
use authwatch_core::registry::decode_config;
use authwatch_core::{semconv, ComponentId, Router, Settings, Signal, SignalKind};
use authwatch_testkit::okta_server::OktaServer;
use authwatch_testkit::{Scratch, Sink};
use tokio_util::sync::CancellationToken;

const TOKEN: &str = "00OktaT0ken-secret";
const WAIT: Duration = Duration::from_secs(20);

#[test]
fn config_contract() {
    authwatch_testkit::assert_config_decodes::<Config>("okta_logs");
    let mut v = Validator::new("receivers::okta_logs");
    Config::default().validate(&mut v);
    assert_eq!(v.errors().len(), 2, "org_url and api_token are required");
    let c: Config = decode_config(serde_json::json!({
        "org_url": "https://example.okta.com", "api_token": "x", "start_at": "10m", "limit": 5000,
        "rate_limit_share": 0.0, "users_window": "2h"
    }))
    .unwrap();
    assert_eq!(c.start_at, StartAt::Ago(Duration::from_secs(600)));
    let mut v = Validator::new("");
    c.validate(&mut v);
    let errs: Vec<String> = v.errors().iter().map(ToString::to_string).collect();
    assert_eq!(errs.len(), 3, "{errs:?}");
    assert!(
        errs[2].starts_with("users_window: must be whole minutes from `1m` to `1h`"),
        "{errs:?}"
    );
    assert!(decode_config::<Config>(serde_json::json!({"start_at": "yesterday"})).is_err());
    // The token never prints.
    assert!(!format!("{c:?}").contains("\"x\""));
}

struct Harness {
    sink: Sink,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<Result<(), authwatch_core::RunError>>,
}

fn config(okta: &OktaServer, storage: Option<&Scratch>) -> Config {
    Config {
        org_url: authwatch_net::HttpUrl::new(okta.url()).unwrap(),
        api_token: Secret::new(TOKEN),
        start_at: StartAt::Ago(Duration::from_secs(3600)),
        interval: Duration::from_millis(100),
        limit: Positive(3),
        max_backoff: Duration::from_secs(1),
        storage: storage.map(|d| d.0.clone()),
        ..Config::default()
    }
}

async fn start(c: &Config) -> Harness {
    let sink = Sink::new();
    let mut next = Router::new();
    next.set(SignalKind::Logs, sink.shared());
    next.set(SignalKind::Metrics, sink.shared());
    let settings = Settings::new("okta_logs/test".parse::<ComponentId>().unwrap());
    let shutdown = settings.shutdown.clone();
    let running = c.build(ReceiverContext { settings, next }).await.unwrap();
    Harness {
        sink,
        shutdown,
        task: tokio::spawn(running),
    }
}

impl Harness {
    async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(WAIT, self.task).await.unwrap().unwrap().unwrap();
    }

    fn uuids(&self) -> Vec<String> {
        self.sink
            .received()
            .into_iter()
            .filter_map(|s| match s {
                Signal::Logs(l) => Some(l),
                _ => None,
            })
            .flat_map(|l| l.resource_logs)
            .flat_map(|r| r.scope_logs)
            .flat_map(|s| s.log_records)
            .filter_map(|r| {
                r.attributes.into_iter().find(|a| a.key == "okta.uuid").and_then(|a| match a.value?.value? {
                    any_value::Value::StringValue(s) => Some(s),
                    _ => None,
                })
            })
            .collect()
    }

    async fn wait_for(&self, n: usize) -> Vec<String> {
        let end = tokio::time::Instant::now() + WAIT;
        loop {
            let u = self.uuids();
            if u.len() >= n || tokio::time::Instant::now() > end {
                return u;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The newest value of a cumulative counter: its series with these attributes, summed.
    fn counter(&self, name: &str, attrs: &[(&str, &str)]) -> i64 {
        let mut last = 0;
        for s in self.sink.received() {
            let Signal::Metrics(m) = s else { continue };
            for metric in m.resource_metrics.iter().flat_map(|r| &r.scope_metrics).flat_map(|s| &s.metrics) {
                let Some(metric::Data::Sum(sum)) = &metric.data else { continue };
                if metric.name != name {
                    continue;
                }
                // The sum of the matching series of the newest request.
                last = 0;
                for p in &sum.data_points {
                    let has = attrs.iter().all(|(k, v)| {
                        p.attributes.iter().any(|a| a.key == *k && matches!(a.value.as_ref().and_then(|v| v.value.as_ref()), Some(any_value::Value::StringValue(s)) if s == v))
                    });
                    if let (true, Some(number_data_point::Value::AsInt(v))) = (has, p.value) {
                        last += v;
                    }
                }
            }
        }
        last
    }

    async fn wait_counter(&self, name: &str, attrs: &[(&str, &str)], at_least: i64) -> i64 {
        let end = tokio::time::Instant::now() + WAIT;
        loop {
            let v = self.counter(name, attrs);
            if v >= at_least || tokio::time::Instant::now() > end {
                return v;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

async fn login(okta: &OktaServer, user: &str, password: &str) -> u16 {
    reqwest::Client::new()
        .post(format!("{}/api/v1/authn", okta.url()))
        .header("content-type", "application/json")
        .body(serde_json::json!({"username": user, "password": password, "app": "Shop"}).to_string())
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn control(okta: &OktaServer, body: serde_json::Value) {
    let r = reqwest::Client::new()
        .post(format!("{}/_control", okta.url()))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
}

#[tokio::test]
async fn logins_made_against_the_org_arrive_once_with_their_counts() {
    let okta = OktaServer::start(TOKEN, &[("alice@example.com", "right")]).await;
    assert_eq!(login(&okta, "alice@example.com", "right").await, 200);
    assert_eq!(login(&okta, "alice@example.com", "wrong").await, 401);
    assert_eq!(login(&okta, "bob@example.com", "nope").await, 401);
    control(&okta, serde_json::json!({"locked": ["carol@example.com"]})).await;
    assert_eq!(login(&okta, "carol@example.com", "x").await, 401);
    let h = start(&config(&okta, None)).await;
    let got = h.wait_for(4).await;
    assert_eq!(got.len(), 4, "{got:?}");
    // Pages of 3: the second page and later empty pages follow the next link.
    assert_eq!(login(&okta, "alice@example.com", "right").await, 200);
    assert_eq!(h.wait_for(5).await.len(), 5);
    let base = [(semconv::DEPENDENCY, "okta"), (semconv::LOGIN_CLIENT, "Shop")];
    let with = |extra: &[(&'static str, &'static str)]| [&base[..], extra].concat();
    assert_eq!(h.wait_counter(semconv::LOGINS, &with(&[(semconv::LOGIN_OUTCOME, "success")]), 2).await, 2);
    assert_eq!(h.counter(semconv::LOGINS, &with(&[(semconv::LOGIN_FAILURE_CATEGORY, "wrong_credentials")])), 2);
    assert_eq!(h.counter(semconv::LOGINS, &with(&[(semconv::LOGIN_FAILURE_CATEGORY, "blocked")])), 1);
    assert_eq!(h.counter("authwatch.okta.events", &[("okta.event_type", "user.session.start")]), 5);
    // Several polls later, nothing arrived twice.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut u = h.uuids();
    let n = u.len();
    u.sort();
    u.dedup();
    assert_eq!((n, u.len()), (5, 5));
    // No token and no user name in anything sent.
    let all = format!("{:?}", h.sink.received());
    assert!(!all.contains(TOKEN) && !all.contains("alice@example.com"));
    h.stop().await;
}

#[tokio::test]
async fn faults_are_counted_and_nothing_is_lost_or_doubled() {
    let okta = OktaServer::start(TOKEN, &[("a", "b")]).await;
    for _ in 0..4 {
        login(&okta, "a", "b").await;
    }
    control(&okta, serde_json::json!({"fail_next": 2, "malformed_next": 1})).await;
    let h = start(&config(&okta, None)).await;
    assert_eq!(h.wait_for(4).await.len(), 4);
    assert!(h.wait_counter("authwatch.okta.poll.errors", &[("error.type", "http_status")], 2).await >= 2);
    assert!(h.wait_counter("authwatch.okta.poll.errors", &[("error.type", "malformed")], 1).await >= 1);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(h.uuids().len(), 4);
    h.stop().await;
}

#[tokio::test]
async fn a_next_link_to_another_host_is_refused() {
    let okta = OktaServer::start(TOKEN, &[("a", "b")]).await;
    let elsewhere = OktaServer::start(TOKEN, &[]).await;
    login(&okta, "a", "b").await;
    control(&okta, serde_json::json!({"foreign_next": elsewhere.url()})).await;
    let h = start(&config(&okta, None)).await;
    assert!(h.wait_counter("authwatch.okta.poll.errors", &[("error.type", "link_refused")], 1).await >= 1);
    // The same page again from the org itself, then on as usual.
    assert_eq!(h.wait_for(1).await.len(), 1);
    let n: serde_json::Value =
        serde_json::from_str(&reqwest::get(format!("{}/_control", elsewhere.url())).await.unwrap().text().await.unwrap()).unwrap();
    assert_eq!(n["log_requests"], 0, "the token went to another host");
    h.stop().await;
}

#[tokio::test]
async fn a_wrong_token_and_429_are_counted() {
    let okta = OktaServer::start(TOKEN, &[]).await;
    let mut c = config(&okta, None);
    c.api_token = Secret::new("wrong");
    let h = start(&c).await;
    assert!(h.wait_counter("authwatch.okta.poll.errors", &[("error.type", "unauthorized")], 1).await >= 1);
    h.stop().await;
    control(&okta, serde_json::json!({"rate_limit": 1})).await;
    let h = start(&config(&okta, None)).await;
    assert!(h.wait_counter("authwatch.okta.poll.errors", &[("error.type", "rate_limited")], 1).await >= 1);
    h.stop().await;
}

#[tokio::test]
async fn the_checkpoint_resumes_without_gap_or_duplicate_and_a_corrupt_one_is_moved_aside() {
    let okta = OktaServer::start(TOKEN, &[("a", "b")]).await;
    let dir = Scratch::reserve("okta-resume");
    for _ in 0..5 {
        login(&okta, "a", "b").await;
    }
    let h = start(&config(&okta, Some(&dir))).await;
    let first = h.wait_for(5).await;
    assert_eq!(first.len(), 5);
    tokio::time::sleep(Duration::from_millis(300)).await;
    h.stop().await;
    for _ in 0..2 {
        login(&okta, "a", "b").await;
    }
    // A new receiver (no dedupe memory): only the two new events.
    let h = start(&config(&okta, Some(&dir))).await;
    let second = h.wait_for(2).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(h.uuids().len(), 2, "{second:?}");
    assert!(second.iter().all(|u| !first.contains(u)));
    h.stop().await;
    // Corrupt: moved aside, read from `start_at` (all 7 again), counted.
    std::fs::write(dir.0.join(poll::CHECKPOINT_FILE), b"\x00garbage").unwrap();
    let h = start(&config(&okta, Some(&dir))).await;
    assert_eq!(h.wait_for(7).await.len(), 7);
    assert!(h.wait_counter("authwatch.okta.poll.errors", &[("error.type", "checkpoint")], 1).await >= 1);
    let aside = std::fs::read_dir(&dir.0).unwrap().filter_map(Result::ok).any(|e| e.file_name().to_string_lossy().contains("corrupt"));
    assert!(aside, "the corrupt checkpoint is kept aside");
    h.stop().await;
}
