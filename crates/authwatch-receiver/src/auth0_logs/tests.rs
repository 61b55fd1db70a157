use super::*;

use std::collections::BTreeMap;
use std::io::Write;
use std::net::SocketAddr;

use authwatch_core::otlp::common::v1::{any_value, KeyValue};
use authwatch_core::otlp::logs::v1::LogRecord;
use authwatch_core::otlp::metrics::v1::{metric, number_data_point, AggregationTemporality};
use authwatch_core::registry::decode_config;
use authwatch_core::telemetry::Telemetry;
use authwatch_core::{semconv, ComponentId, ConsumeError, Router, Settings, Signal, SignalKind};
use authwatch_testkit::Sink;
use tokio_util::sync::CancellationToken;

const TOKEN: &str = "Bearer t0ken-Auth0";
const WAIT: Duration = Duration::from_secs(10);

fn data(name: &str) -> String {
    let path = format!(
        "{}/src/auth0_logs/testdata/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

// === config ===

#[test]
fn config_contract() {
    // `authorization` is required, so the default does not validate.
    authwatch_testkit::assert_config_decodes::<Config>("auth0_logs");
    let mut v = Validator::new("receivers::auth0_logs");
    Config::default().validate(&mut v);
    assert_eq!(v.errors().len(), 1);
    assert_eq!(
        Config::default().resources(),
        [Resource::Listen("127.0.0.1:4319".parse().unwrap())]
    );
}

#[test]
fn config_yaml_decodes_to_struct() {
    let v: serde_json::Value = serde_yaml::from_str(&data("config.yaml")).unwrap();
    let c: Config = decode_config(v).unwrap();
    let want = Config {
        endpoint: "0.0.0.0:9443".parse().unwrap(),
        path: "/webhooks/auth0".parse().unwrap(),
        authorization: Secret::new("Bearer s3cr3t"),
        max_request_body_size: Positive(1_048_576),
        include_user_ids: true,
        dedupe_window: Duration::from_secs(1800),
        dedupe_max_entries: Positive(5000),
        users_window: authwatch_core::time::Window::secs(15 * 60),
        read_header_timeout: Duration::from_secs(5),
        read_timeout: Duration::from_secs(60),
        idle_timeout: Duration::from_secs(90),
        max_connections: Positive(64),
        tls: None,
        pull: None,
    };
    assert_eq!(c, want);
    let mut v = Validator::new("");
    c.validate(&mut v);
    assert!(!v.has_errors(), "{:?}", v.errors());
    assert_eq!(c.signals(), Signals::LOGS | Signals::METRICS);
    // The secret never prints.
    assert!(!format!("{c:?}").contains("s3cr3t"));
    assert!(!serde_json::to_string(&c).unwrap().contains("s3cr3t"));
}

#[test]
fn invalid_configs() {
    let cases: serde_json::Map<String, serde_json::Value> =
        serde_yaml::from_str(&data("invalid.yaml")).unwrap();
    assert!(cases.len() >= 8);
    for (name, case) in cases {
        let got = match decode_config::<Config>(case["config"].clone()) {
            Err(e) => vec![e.to_string()],
            Ok(c) => {
                let mut v = Validator::new("");
                c.validate(&mut v);
                v.errors().iter().map(ToString::to_string).collect()
            }
        };
        assert_eq!(
            got,
            vec![case["error"].as_str().unwrap().to_owned()],
            "case {name}"
        );
    }
}

// === a receiver on loopback ===

struct Harness {
    addr: SocketAddr,
    sink: Sink,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<Result<(), RunError>>,
    telemetry: Telemetry,
    client: reqwest::Client,
}

fn test_config() -> Config {
    Config {
        endpoint: "127.0.0.1:0".parse().unwrap(),
        authorization: Secret::new(TOKEN),
        ..Config::default()
    }
}

async fn start_with(config: Config, kinds: &[SignalKind]) -> Harness {
    let sink = Sink::new();
    let mut next = Router::new();
    for k in kinds {
        next.set(*k, sink.shared());
    }
    let settings = Settings::new("auth0_logs/test".parse::<ComponentId>().unwrap());
    let telemetry = settings.telemetry.clone();
    let shutdown = settings.shutdown.clone();
    let r = Receiver::bind_alone(&config, ReceiverContext { settings, next })
        .await
        .unwrap();
    let addr = r.local_addr().unwrap();
    let task = tokio::spawn(r.run());
    Harness {
        addr,
        sink,
        shutdown,
        task,
        telemetry,
        client: reqwest::Client::new(),
    }
}

async fn start() -> Harness {
    start_with(test_config(), &[SignalKind::Logs, SignalKind::Metrics]).await
}

impl Harness {
    fn url(&self) -> String {
        format!("http://{}{}", self.addr, DEFAULT_PATH)
    }

    async fn post_with(&self, body: Vec<u8>, auth: Option<&str>, gzip: bool) -> reqwest::Response {
        let mut req = self
            .client
            .post(self.url())
            .header("content-type", "application/json")
            .body(body);
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        if gzip {
            req = req.header("content-encoding", "gzip");
        }
        req.send().await.unwrap()
    }

    async fn post(&self, body: &str) -> reqwest::Response {
        self.post_with(body.as_bytes().to_vec(), Some(TOKEN), false)
            .await
    }

    async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(WAIT, self.task)
            .await
            .expect("stops on shutdown")
            .unwrap()
            .unwrap();
    }
}

fn records(sink: &Sink) -> Vec<LogRecord> {
    sink.received()
        .into_iter()
        .filter_map(|s| match s {
            Signal::Logs(l) => Some(l),
            _ => None,
        })
        .flat_map(|l| l.resource_logs)
        .flat_map(|r| r.scope_logs)
        .flat_map(|s| s.log_records)
        .collect()
}

fn attr<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a any_value::Value> {
    attrs
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref()?.value.as_ref())
}

fn str_attr(attrs: &[KeyValue], key: &str) -> Option<String> {
    match attr(attrs, key)? {
        any_value::Value::StringValue(s) => Some(s.clone()),
        _ => None,
    }
}

/// From the newest metrics request: (type, category) -> count, and the duplicates count.
fn counts(sink: &Sink) -> (BTreeMap<(String, String), i64>, i64) {
    let Some(Signal::Metrics(m)) = sink
        .received()
        .into_iter()
        .rev()
        .find(|s| s.kind() == SignalKind::Metrics)
    else {
        return (BTreeMap::new(), 0);
    };
    let mut out = BTreeMap::new();
    let mut dups = 0;
    for metric in m
        .resource_metrics
        .iter()
        .flat_map(|r| &r.scope_metrics)
        .flat_map(|s| &s.metrics)
    {
        // Login counters: see `logins_are_counted_from_the_batch`.
        if metric.name.starts_with(semconv::LOGINS) {
            continue;
        }
        let Some(metric::Data::Sum(sum)) = &metric.data else {
            panic!("{} is not a sum", metric.name)
        };
        assert!(sum.is_monotonic);
        assert_eq!(
            sum.aggregation_temporality,
            AggregationTemporality::Cumulative as i32
        );
        for p in &sum.data_points {
            assert!(p.start_time_unix_nano > 0 && p.start_time_unix_nano <= p.time_unix_nano);
            let Some(number_data_point::Value::AsInt(v)) = p.value else {
                panic!("not an int")
            };
            if metric.name == semconv::AUTH0_EVENTS_DUPLICATES {
                dups = v;
            } else {
                assert_eq!(metric.name, semconv::AUTH0_EVENTS);
                out.insert(
                    (
                        str_attr(&p.attributes, semconv::AUTH0_LOG_TYPE).unwrap(),
                        str_attr(&p.attributes, semconv::AUTH0_LOG_CATEGORY).unwrap(),
                    ),
                    v,
                );
            }
        }
    }
    (out, dups)
}

fn gzip(b: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(b).unwrap();
    e.finish().unwrap()
}

fn all_batches() -> [String; 4] {
    [
        data("batch_array.json"),
        data("batch.jsonl"),
        data("object.json"),
        data("object_logs.json"),
    ]
}

// === behaviour ===

#[tokio::test]
async fn three_formats_records_categories_and_counts() {
    let h = start().await;
    let [array, lines, object, wrapped] = all_batches();
    let r = h.post(&array).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), r#"{"accepted":12,"duplicates":0}"#);
    let r = h.post_with(gzip(lines.as_bytes()), Some(TOKEN), true).await;
    assert_eq!(r.status(), 200, "gzip JSON lines");
    assert_eq!(h.post(&object).await.status(), 200);
    assert_eq!(h.post(&wrapped).await.status(), 200);

    let recs = records(&h.sink);
    assert_eq!(recs.len(), 26);
    let types: std::collections::BTreeSet<String> = recs
        .iter()
        .map(|r| str_attr(&r.attributes, semconv::AUTH0_LOG_TYPE).unwrap())
        .collect();
    assert!(types.len() >= 20, "{types:?}");
    for r in &recs {
        let t = str_attr(&r.attributes, semconv::AUTH0_LOG_TYPE).unwrap();
        let c = str_attr(&r.attributes, semconv::AUTH0_LOG_CATEGORY).unwrap();
        assert_eq!(c, category(&t).as_str(), "{t}");
        assert_eq!(r.event_name, "auth0.log");
        assert!(r.time_unix_nano > 0 && r.observed_time_unix_nano >= r.time_unix_nano);
        // Personal data is gone at every depth.
        for kv in &r.attributes {
            for f in PERSONAL_FIELDS {
                assert!(
                    !kv.key.ends_with(&format!(".{f}")),
                    "{} kept in {t}",
                    kv.key
                );
            }
        }
        assert_eq!(
            str_attr(&r.attributes, "auth0.client_id").as_deref(),
            Some("aI61p8I8aFjmYRliLWgvM9ev97kCCNDB")
        );
        assert!(str_attr(&r.attributes, semconv::AUTH0_LOG_ID).is_some());
    }
    let cat_of = |t: &str| {
        let r = recs
            .iter()
            .find(|r| str_attr(&r.attributes, semconv::AUTH0_LOG_TYPE).as_deref() == Some(t))
            .unwrap();
        (
            str_attr(&r.attributes, semconv::AUTH0_LOG_CATEGORY).unwrap(),
            r.clone(),
        )
    };
    assert_eq!(cat_of("sepft").0, "success");
    assert_eq!(cat_of("fepft").0, "failure");
    assert_eq!(cat_of("fapi").0, "failure");
    assert_eq!(cat_of("api_limit").0, "rate_limit");
    assert_eq!(cat_of("limit_wc").0, "anomaly");
    assert_eq!(cat_of("sys_os_update_end").0, "other");

    // Body, time, severity and flattened fields of the documented `fp` example.
    let (_, fp) = cat_of("fp");
    assert_eq!(
        fp.body.as_ref().and_then(|b| b.value.clone()),
        Some(any_value::Value::StringValue(
            "Wrong email or password.".into()
        ))
    );
    assert_eq!(fp.time_unix_nano, 1_635_908_831_384_000_000); // 2021-11-03T03:07:11.384Z
    assert_eq!(fp.severity_text, "WARN");
    assert_eq!(
        str_attr(&fp.attributes, "auth0.details.error.message").as_deref(),
        Some("Wrong email or password.")
    );
    assert_eq!(
        str_attr(&fp.attributes, "auth0.$event_schema.version").as_deref(),
        Some("1.0.0")
    );
    assert_eq!(
        attr(&fp.attributes, "auth0.isMobile"),
        Some(&any_value::Value::BoolValue(false))
    );
    let (_, limit) = cat_of("api_limit");
    assert_eq!(
        attr(&limit.attributes, "auth0.details.limit.size"),
        Some(&any_value::Value::IntValue(100))
    );
    let (_, sepft) = cat_of("sepft");
    assert!(matches!(
        attr(&sepft.attributes, "auth0.scope"),
        Some(any_value::Value::ArrayValue(a)) if a.values.len() == 2
    ));
    assert_eq!(sepft.severity_text, "INFO");
    let (_, sapi) = cat_of("sapi");
    assert_eq!(
        str_attr(&sapi.attributes, "auth0.details.request.path").as_deref(),
        Some("/api/v2/clients/abc")
    );

    // The counter: one per type, cumulative across the four batches.
    let (c, dups) = counts(&h.sink);
    assert_eq!(c.len(), 26);
    assert!(c.values().all(|n| *n == 1));
    assert_eq!(c[&("fp".into(), "failure".into())], 1);
    assert_eq!(c[&("api_limit".into(), "rate_limit".into())], 1);
    assert_eq!(dups, 0);

    let text = h.telemetry.encode();
    assert!(
        text.contains(r#"authwatch_receiver_accepted_log_records_total{receiver="auth0_logs/test",transport="http"} 26"#),
        "{text}"
    );
    h.stop().await;
}

#[tokio::test]
async fn duplicates_are_dropped_and_counted() {
    let h = start().await;
    let array = data("batch_array.json");
    assert_eq!(h.post(&array).await.status(), 200);
    // The same batch again (Auth0 retried after a lost answer), plus one new record.
    let r = h.post(&array).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), r#"{"accepted":0,"duplicates":12}"#);
    assert_eq!(records(&h.sink).len(), 12);
    let (c, dups) = counts(&h.sink);
    assert_eq!(dups, 12);
    assert!(c.values().all(|n| *n == 1));
    // A duplicate inside one batch.
    let one = data("object.json");
    let r = h.post(&format!("{one}\n{one}\n")).await;
    assert_eq!(r.text().await.unwrap(), r#"{"accepted":1,"duplicates":1}"#);
    assert_eq!(records(&h.sink).len(), 13);
    assert_eq!(counts(&h.sink).1, 13);
    h.stop().await;
}

/// From the newest metrics request: login points as (outcome, category, client) -> count, and
/// the users gauge as (scope -> users).
type LoginPoints = BTreeMap<(String, String, String), i64>;

fn login_counts(sink: &Sink) -> (LoginPoints, BTreeMap<String, i64>) {
    let mut out = BTreeMap::new();
    let mut users = BTreeMap::new();
    let Some(Signal::Metrics(m)) = sink.received().into_iter().rev().find(|s| s.kind() == SignalKind::Metrics) else {
        return (out, users);
    };
    for metric in m.resource_metrics.iter().flat_map(|r| &r.scope_metrics).flat_map(|s| &s.metrics) {
        match &metric.data {
            Some(metric::Data::Sum(sum)) if metric.name == semconv::LOGINS => {
                for p in &sum.data_points {
                    let Some(number_data_point::Value::AsInt(v)) = p.value else { panic!("not an int") };
                    assert_eq!(str_attr(&p.attributes, semconv::DEPENDENCY).as_deref(), Some("auth0"));
                    let key = (
                        str_attr(&p.attributes, semconv::LOGIN_OUTCOME).unwrap(),
                        str_attr(&p.attributes, semconv::LOGIN_FAILURE_CATEGORY).unwrap_or_default(),
                        str_attr(&p.attributes, semconv::LOGIN_CLIENT).unwrap(),
                    );
                    out.insert(key, v);
                }
            }
            Some(metric::Data::Gauge(g)) if metric.name == semconv::LOGINS_USERS_AFFECTED => {
                for p in &g.data_points {
                    let Some(number_data_point::Value::AsInt(v)) = p.value else { panic!("not an int") };
                    users.insert(str_attr(&p.attributes, semconv::LOGIN_FAILURE_SCOPE).unwrap(), v);
                }
            }
            _ => {}
        }
    }
    (out, users)
}

#[tokio::test]
async fn logins_are_counted_from_the_batch() {
    let h = start().await;
    let now = authwatch_core::time::format_rfc3339(std::time::SystemTime::now(), authwatch_core::time::Precision::Millis);
    let ev = |id: &str, ty: &str, user: &str, desc: &str| {
        format!(r#"{{"log_id":"{id}","data":{{"type":"{ty}","date":"{now}","client_name":"Shop","connection":"db","user_id":"{user}","description":"{desc}"}}}}"#)
    };
    let batch = [
        ev("1", "s", "auth0|a", ""),
        ev("2", "fp", "auth0|b", "Wrong email or password."),
        ev("3", "f", "auth0|c", "Error in the login script"),
        ev("4", "f", "auth0|d", "Internal error"),
        ev("5", "f", "auth0|d", "Internal error"),
        ev("6", "seccft", "", ""),
    ];
    assert_eq!(h.post(&format!("[{}]", batch.join(","))).await.status(), 200);
    let (c, users) = login_counts(&h.sink);
    let k = |o: &str, cat: &str| (o.to_owned(), cat.to_owned(), "Shop".to_owned());
    assert_eq!(c[&k("success", "")], 1);
    assert_eq!(c[&k("failure", "wrong_credentials")], 1);
    assert_eq!(c[&k("failure", "tenant_error")], 1);
    assert_eq!(c[&k("failure", "provider_error")], 2);
    assert_eq!(c.values().sum::<i64>(), 5, "client credentials are no login: {c:?}");
    assert_eq!(users["provider_side"], 2);
    assert_eq!(users["all"], 3);
    // No user id in any metric.
    let text = format!("{:?}", h.sink.received().iter().filter(|s| s.kind() == SignalKind::Metrics).collect::<Vec<_>>());
    assert!(!text.contains("auth0|"), "a user id leaked into the metrics");
    h.stop().await;
}

/// A login that failed 20 minutes ago counts among the users affected only with a window that
/// reaches it (`users_window: 30m`), not with the default 5 minutes.
#[tokio::test]
async fn the_users_window_is_the_configured_one() {
    let ago = |mins: u64| {
        authwatch_core::time::format_rfc3339(
            std::time::SystemTime::now() - Duration::from_secs(mins * 60),
            authwatch_core::time::Precision::Millis,
        )
    };
    let batch = format!(
        r#"[{{"log_id":"1","data":{{"type":"f","date":"{}","user_id":"auth0|a","description":"Internal error"}}}},
            {{"log_id":"2","data":{{"type":"f","date":"{}","user_id":"auth0|b","description":"Internal error"}}}}]"#,
        ago(0),
        ago(20)
    );
    for (window, affected) in [(None, 1), (Some(30), 2)] {
        let mut config = test_config();
        if let Some(mins) = window {
            config.users_window = authwatch_core::time::Window::secs(mins * 60);
        }
        let h = start_with(config, &[SignalKind::Logs, SignalKind::Metrics]).await;
        assert_eq!(h.post(&batch).await.status(), 200);
        let (_, users) = login_counts(&h.sink);
        assert_eq!(users["provider_side"], affected, "window {window:?}");
        h.stop().await;
    }
}

#[tokio::test]
async fn user_ids_are_kept_only_when_configured() {
    let h = start_with(
        Config {
            include_user_ids: true,
            ..test_config()
        },
        &[SignalKind::Logs],
    )
    .await;
    assert_eq!(h.post(&data("batch_array.json")).await.status(), 200);
    let recs = records(&h.sink);
    let a = &recs[0].attributes;
    assert_eq!(str_attr(a, "auth0.ip").as_deref(), Some("81.2.69.143"));
    assert_eq!(
        str_attr(a, "auth0.user_name").as_deref(),
        Some("neo@example.com")
    );
    assert_eq!(
        str_attr(a, "auth0.user_id").as_deref(),
        Some("auth0|61820e6d7b1e3c006a3a1b2c")
    );
    // No metrics pipeline: none sent.
    assert_eq!(h.sink.item_count(SignalKind::Metrics), 0);
    h.stop().await;
}

#[tokio::test]
async fn wrong_or_missing_token_is_401_and_nothing_enters() {
    let h = start().await;
    let body = data("batch_array.json").into_bytes();
    for auth in [
        None,
        Some("Bearer wrong"),
        Some("t0ken-Auth0"),
        Some("Bearer t0ken-Auth0x"),
        Some(""),
    ] {
        let r = h.post_with(body.clone(), auth, false).await;
        assert_eq!(r.status(), 401, "{auth:?}");
    }
    assert!(h.sink.received().is_empty());
    // Only POST is served.
    let r = h
        .client
        .get(h.url())
        .header("authorization", TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    let r = h
        .client
        .post(format!("http://{}/other", h.addr))
        .header("authorization", TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert!(h.sink.received().is_empty());
    h.stop().await;
}

#[tokio::test]
async fn malformed_bodies_are_400() {
    let h = start().await;
    for bad in [
        "[{\"log_id\":",
        "not json",
        "[1,2]",
        "{\"log_id\":\"1\"}\n42\n",
    ] {
        let r = h.post(bad).await;
        assert_eq!(r.status(), 400, "{bad}");
    }
    let r = h.post_with(b"not gzip".to_vec(), Some(TOKEN), true).await;
    assert_eq!(r.status(), 400);
    let r = h
        .client
        .post(h.url())
        .header("authorization", TOKEN)
        .header("content-encoding", "br")
        .body("[]")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415);
    assert!(h.sink.received().is_empty());
    h.stop().await;
}

#[tokio::test]
async fn oversized_bodies_are_413_on_wire_and_inflated() {
    let h = start_with(
        Config {
            max_request_body_size: Positive(4096),
            ..test_config()
        },
        &[SignalKind::Logs, SignalKind::Metrics],
    )
    .await;
    let big = format!("[{}]", vec![data("object.json"); 8].join(","));
    assert!(big.len() > 4096);
    assert_eq!(h.post(&big).await.status(), 413);
    // Small on the wire, too big once inflated.
    let bomb = gzip(&vec![b' '; 100_000]);
    assert!(bomb.len() < 4096);
    let r = h.post_with(bomb, Some(TOKEN), true).await;
    assert_eq!(r.status(), 413);
    // Under the limit is fine, compressed or not.
    assert_eq!(h.post(&data("object.json")).await.status(), 200);
    assert!(h.sink.item_count(SignalKind::Logs) == 1);
    h.stop().await;
}

#[tokio::test]
async fn full_pipeline_is_503_and_the_retry_counts_once() {
    let h = start().await;
    let array = data("batch_array.json");
    h.sink.fail_with(Some(ConsumeError::Full));
    let r = h.post(&array).await;
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["retry-after"], "1");
    assert!(h.sink.received().is_empty());
    // Throttled: 429 with the hint.
    h.sink
        .fail_with(Some(ConsumeError::Throttled(Duration::from_millis(2500))));
    let r = h.post(&array).await;
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["retry-after"], "3");
    // Recovered: Auth0 sends the batch again; it is taken and counted once.
    h.sink.fail_with(None);
    let r = h.post(&array).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), r#"{"accepted":12,"duplicates":0}"#);
    assert_eq!(records(&h.sink).len(), 12);
    let (c, dups) = counts(&h.sink);
    assert_eq!(c.values().sum::<i64>(), 12);
    assert_eq!(dups, 0);
    let text = h.telemetry.encode();
    assert!(text.contains(
        r#"authwatch_receiver_refused_log_records_total{receiver="auth0_logs/test",transport="http"} 24"#
    ), "{text}");
    h.stop().await;
}

#[tokio::test]
async fn metrics_only_pipeline_refusal_is_503_and_nothing_is_marked() {
    let h = start_with(test_config(), &[SignalKind::Metrics]).await;
    let array = data("batch_array.json");
    h.sink.fail_with(Some(ConsumeError::Full));
    assert_eq!(h.post(&array).await.status(), 503);
    h.sink.fail_with(None);
    assert_eq!(h.post(&array).await.status(), 200);
    let (c, dups) = counts(&h.sink);
    assert_eq!(c.values().sum::<i64>(), 12);
    assert_eq!(dups, 0);
    h.stop().await;
}

#[tokio::test]
async fn port_in_use_fails_build() {
    let h = start().await;
    let config = Config {
        endpoint: ListenAddr(h.addr),
        ..test_config()
    };
    let cx = ReceiverContext {
        settings: Settings::new("auth0_logs/b".parse().unwrap()),
        next: Router::new(),
    };
    match config.build(cx).await {
        Err(BuildError::Bind { addr, .. }) => assert_eq!(addr, h.addr),
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("must not bind a port in use"),
    }
    h.stop().await;
}

#[tokio::test]
async fn serves_https() {
    let pki = authwatch_testkit::tls::TestPki::new("auth0_logs");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = Config {
        endpoint: ListenAddr::localhost(port),
        authorization: Secret::new("Bearer x"),
        tls: Some(pki.server_config(false)),
        ..Default::default()
    };
    let settings = Settings::new("auth0_logs".parse().unwrap());
    let running = config
        .build(ReceiverContext {
            settings: settings.clone(),
            next: Router::new(),
        })
        .await
        .unwrap();
    let task = tokio::spawn(running);
    let client = authwatch_net::http_client(
        Duration::from_secs(20),
        &authwatch_net::TlsClientConfig {
            ca_file: Some(pki.ca_file.clone()),
            ..Default::default()
        },
    )
    .unwrap();
    // Served over TLS: the request reaches the handler (401: no Authorization header).
    let res = client
        .post(format!("https://localhost:{port}/auth0/logs"))
        .body("[]")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    // Plaintext to the same port gets no HTTP answer.
    let plain = client
        .post(format!("http://127.0.0.1:{port}/auth0/logs"))
        .body("[]")
        .send()
        .await;
    assert!(plain.is_err(), "{plain:?}");
    settings.shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(20), task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn slow_and_idle_clients_are_cut_off() {
    let config = Config {
        endpoint: ListenAddr::localhost(0),
        authorization: Secret::new("Bearer x"),
        // Any URL path routes: `:tenant` is a plain segment, not a capture.
        path: "/:tenant/logs".parse().unwrap(),
        read_header_timeout: Duration::from_millis(300),
        idle_timeout: Duration::from_millis(300),
        ..Default::default()
    };
    let settings = Settings::new("auth0_logs".parse().unwrap());
    let receiver = Receiver::bind_alone(
        &config,
        ReceiverContext {
            settings: settings.clone(),
            next: Router::new(),
        },
    )
    .await
    .unwrap();
    let addr = receiver.local_addr().unwrap();
    let task = tokio::spawn(receiver.run());
    authwatch_testkit::slow_client::assert_slow_head_is_cut_off(addr, WAIT).await;
    // `GET` of the path: `405` (the stream POSTs); then the connection idles.
    let status = authwatch_testkit::slow_client::assert_idle_connection_is_closed(
        addr,
        "/:tenant/logs",
        WAIT,
    )
    .await;
    assert_eq!(status, 405);
    settings.shutdown.cancel();
    tokio::time::timeout(WAIT, task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

/// The ids a pipeline accepted are written to the seen-ids file (a refused batch is not), and
/// an `Ingest` started from that file drops them: the dedupe survives a restart.
#[tokio::test]
async fn accepted_ids_survive_a_restart_through_the_seen_file() {
    use authwatch_tenant_logs::seen::SeenFile;

    let scratch = authwatch_testkit::Scratch::reserve("auth0-seen");
    let dir = scratch.0.clone();
    let events = || decode::decode_body(data("batch_array.json").as_bytes()).unwrap();
    let ingest = |sink: &Sink| {
        let mut next = Router::new();
        next.set(SignalKind::Logs, sink.shared());
        let settings = Settings::new("auth0_logs/test".parse::<ComponentId>().unwrap());
        let telemetry = settings.telemetry.receiver(&settings.id, "http");
        let (file, loaded) =
            SeenFile::open(&dir, "t.seen", Duration::from_secs(3600), 100, SystemTime::now())
                .unwrap();
        let n = loaded.entries.len();
        let config = Config {
            dedupe_max_entries: Positive(100),
            ..Config::default()
        };
        let i = ingest::Ingest::new(next, telemetry, &config, SystemTime::now())
            .with_seen(file, loaded.entries);
        (i, n)
    };

    let sink = Sink::new();
    let (first, loaded) = ingest(&sink);
    assert_eq!(loaded, 0);
    sink.fail_with(Some(ConsumeError::Full));
    assert!(first.ingest(events()).await.is_err());
    sink.fail_with(None);
    let out = first.ingest(events()).await.unwrap();
    assert_eq!((out.accepted, out.duplicates), (12, 0));
    drop(first);

    let sink = Sink::new();
    let (second, loaded) = ingest(&sink);
    assert_eq!(loaded, 12, "the refused batch was not recorded, the accepted one was");
    let out = second.ingest(events()).await.unwrap();
    assert_eq!((out.accepted, out.duplicates), (0, 12));
    assert!(records(&sink).is_empty());
}
