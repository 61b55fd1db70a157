use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use authwatch_core::otlp::collector::metrics::v1::ExportMetricsServiceRequest;
use authwatch_core::otlp::collector::trace::v1::ExportTraceServiceRequest;
use authwatch_core::otlp::common::v1::{any_value, KeyValue};
use authwatch_core::otlp::metrics::v1::{metric, number_data_point, Metric};
use authwatch_core::otlp::trace::v1::{span, status, Span};
use authwatch_core::semconv as sc;
use authwatch_core::{Router, Settings, Signal, SignalKind};
use authwatch_testkit::oauth_server::{self as srv, Mode, OAuthOptions, OAuthServer};
use authwatch_testkit::Sink;

use super::*;

// === config ===

#[test]
fn config_contract() {
    // The default has no checks, which is deliberately invalid.
    authwatch_testkit::assert_config_decodes::<Config>("synthetic");
    let mut v = Validator::new("receivers::synthetic");
    Config::default().validate(&mut v);
    assert_eq!(
        v.errors()[0].to_string(),
        "receivers::synthetic::checks: at least one check must be configured"
    );
}

fn decode(json: serde_json::Value) -> Result<Config, authwatch_core::ConfigError> {
    authwatch_core::registry::decode_config::<Config>(json)
}

fn problems(cfg: &Config) -> (Vec<String>, Vec<String>) {
    let mut v = Validator::new("receivers::synthetic");
    cfg.validate(&mut v);
    let (e, w) = v.into_parts();
    (
        e.iter().map(ToString::to_string).collect(),
        w.iter().map(ToString::to_string).collect(),
    )
}

#[test]
fn config_decodes_every_check_type() {
    let yaml = r#"
interval: 30s
timeout: 5s
initial_delay: 0s
jitter: 2s
rate_limit_budget: { requests_per_minute: 300, max_share: 0.1 }
checks:
  - name: login
    type: password_grant
    token_url: https://tenant.example.com/oauth/token
    client_id: abc
    client_secret: shh
    client_auth: basic
    username: probe@example.com
    password: pw
    realm: Username-Password-Authentication
    audience: https://api.example.com
    scope: openid
    body_format: json
    validate_token:
      token: access_token
      issuer: https://tenant.example.com/
      audience: https://api.example.com
      algorithms: [RS256, ES256]
      leeway: 10s
      require_claims: { "https://probe.example.com/actions_ran": true, gty: ~ }
    tls: { insecure_skip_verify: false }
  - name: m2m
    type: client_credentials
    token_url: https://tenant.example.com/oauth/token
    client_id: m2m
    client_secret: shh2
    audience: https://tenant.example.com/api/v2/
    interval: 5m
  - name: discovery
    type: http
    url: https://tenant.example.com/.well-known/openid-configuration
    headers: { x-token: hdr-value }
    expect:
      status: [200, "3xx"]
      headers: [{ name: content-type, regex: json }]
      body_regex: issuer
      json: [{ path: "$.issuer", equals: "https://tenant.example.com/" }, { path: "$.jwks_uri" }]
      max_response_time: 2s
"#;
    let value: serde_json::Value = serde_yaml::from_str(yaml).unwrap();
    let cfg = decode(value).unwrap();
    assert_eq!(cfg.interval, Duration::from_secs(30));
    assert_eq!(cfg.checks.len(), 3);
    let Check::PasswordGrant(login) = &cfg.checks[0] else {
        panic!("not a password grant: {:?}", cfg.checks[0]);
    };
    assert_eq!(login.client_auth, ClientAuth::Basic);
    assert_eq!(login.body_format, BodyFormat::Json);
    assert_eq!(login.password.as_ref().unwrap().expose(), "pw");
    let t = login.validate_token.as_ref().unwrap();
    assert_eq!(t.algorithms, vec![Algorithm::RS256, Algorithm::ES256]);
    assert_eq!(t.require_claims["gty"], serde_json::Value::Null);
    let Check::Http(http) = &cfg.checks[2] else {
        panic!("not http")
    };
    assert_eq!(http.method, "GET");
    assert_eq!(
        http.expect.status,
        vec![StatusMatch::Code(200), StatusMatch::Class(3)]
    );
    assert_eq!(cfg.checks[1].interval(), Some(Duration::from_secs(300)));
    let (errors, warnings) = problems(&cfg);
    assert!(errors.is_empty(), "{errors:?}");
    assert!(warnings.is_empty(), "{warnings:?}");
    // Secrets never print.
    let shown = format!("{cfg:?} {}", serde_json::to_string(&cfg).unwrap());
    for secret in ["shh", "pw\"", "hdr-value"] {
        assert!(!shown.contains(secret), "{secret} in {shown}");
    }
}

#[test]
fn config_errors_have_paths() {
    let err = decode(serde_json::json!({"checks": [{"name": "x", "type": "nope"}]})).unwrap_err();
    assert!(err.to_string().contains("nope"), "{err}");
    let err = decode(serde_json::json!({"checks": [{"name": "x", "type": "http", "urll": "x"}]}))
        .unwrap_err();
    assert!(err.to_string().contains("urll"), "{err}");
    let err = decode(serde_json::json!({"checks": [{"name": "x", "type": "http",
        "expect": {"status": ["7xx"]}}]}))
    .unwrap_err();
    assert!(err.to_string().contains("invalid status `7xx`"), "{err}");
    let err = decode(serde_json::json!({"checks": [{"name": "x", "type": "http",
        "expect": {"body_regex": "("}}]}))
    .unwrap_err();
    assert!(
        err.to_string().contains("invalid regular expression"),
        "{err}"
    );

    let cfg = decode(serde_json::json!({
        "interval": "10s", "timeout": "20s",
        "checks": [
            {"name": "a", "type": "password_grant", "token_url": "ftp://x", "client_id": "c"},
            {"name": "a", "type": "client_credentials", "token_url": "https://x/oauth/token",
             "client_id": "c", "username": "u", "validate_token": {}},
        ]
    }))
    .unwrap();
    let (errors, _) = problems(&cfg);
    let want = [
        "receivers::synthetic::checks::0::timeout: timeout 20s exceeds the interval 10s: runs of one check never overlap, so the timeout must not be longer than the interval",
        "receivers::synthetic::checks::0::token_url: invalid URL `ftp://x`: must start with https:// or http://",
        "receivers::synthetic::checks::0::username: is required for a password_grant check",
        "receivers::synthetic::checks::0::password: is required for a password_grant check",
        "receivers::synthetic::checks::1::name: check name `a` is used twice",
        "receivers::synthetic::checks::1::username: only a password_grant check takes it; remove it or change the type",
        "receivers::synthetic::checks::1::client_secret: is required for a client_credentials check",
        "receivers::synthetic::checks::1::validate_token: set `issuer` (keys are then found through discovery), `discovery_url` or `jwks_url`",
    ];
    for w in want {
        assert!(
            errors.iter().any(|e| e == w),
            "missing `{w}` in {errors:#?}"
        );
    }
}

#[test]
fn rate_limit_budget_warns() {
    let check = |name: &str| {
        Check::ClientCredentials(OAuthCheck {
            name: name.into(),
            token_url: "https://x/oauth/token".into(),
            client_id: "c".into(),
            client_secret: Some(Secret::new("s")),
            ..Default::default()
        })
    };
    let mut cfg = Config {
        interval: Duration::from_secs(10),
        timeout: Duration::from_secs(5),
        checks: vec![check("a"), check("b")],
        rate_limit_budget: Some(RateLimitBudget {
            requests_per_minute: 100.0,
            max_share: 0.1,
        }),
        ..Config::default()
    };
    assert_eq!(cfg.requests_per_minute(), 12.0);
    let (errors, warnings) = problems(&cfg);
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(
        warnings,
        vec!["receivers::synthetic::rate_limit_budget: the checks send 12.0 requests per minute, 12.0% of the stated budget of 100 per minute (more than the 10.0% allowed): lengthen `interval` or remove checks"]
    );
    cfg.interval = Duration::from_secs(60);
    assert!(problems(&cfg).1.is_empty());
}

// === scheduling ===

struct Scripted {
    calls: Arc<Mutex<Vec<Instant>>>,
    backoffs: Vec<Backoff>,
    running: Arc<AtomicUsize>,
}

impl Probe for Scripted {
    async fn run_once(&mut self) -> Backoff {
        assert_eq!(
            self.running.fetch_add(1, Ordering::SeqCst),
            0,
            "runs overlap"
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
        self.running.fetch_sub(1, Ordering::SeqCst);
        let mut calls = self.calls.lock().unwrap();
        calls.push(Instant::now());
        self.backoffs
            .get(calls.len() - 1)
            .copied()
            .unwrap_or_default()
    }
}

#[tokio::test(start_paused = true)]
async fn schedule_honours_interval_retry_after_and_blocking() {
    let schedule = Schedule {
        interval: Duration::from_secs(10),
        initial_delay: Duration::from_secs(1),
        jitter: Duration::ZERO,
        blocked_backoff: Duration::from_secs(300),
        lag: None,
    };
    let calls = Arc::new(Mutex::new(Vec::new()));
    let mut probe = Scripted {
        calls: calls.clone(),
        backoffs: vec![
            Backoff::None,
            Backoff::RetryAfter(Duration::from_secs(35)),
            Backoff::Blocked,
            Backoff::None,
        ],
        running: Arc::new(AtomicUsize::new(0)),
    };
    let shutdown = tokio_util::sync::CancellationToken::new();
    let t0 = Instant::now();
    let stop = shutdown.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(400)).await;
        stop.cancel();
    });
    run_schedule(&schedule, &shutdown, &mut probe).await;
    // Each run takes 2 s; times are when runs ended.
    let ends: Vec<u64> = calls
        .lock()
        .unwrap()
        .iter()
        .map(|t| (*t - t0).as_secs())
        .collect();
    // Runs start at 1 (initial delay), 11 (interval), 51 (a 35 s Retry-After at 13, rounded up
    // to the interval grid), 361 (a 300 s pause at 53, on the grid), then every 10 s.
    assert_eq!(ends, [3, 13, 53, 363, 373, 383, 393]);
}

#[tokio::test(start_paused = true)]
async fn schedule_stops_on_shutdown_after_the_run_in_flight() {
    let schedule = Schedule {
        interval: Duration::from_secs(10),
        initial_delay: Duration::ZERO,
        jitter: Duration::from_secs(5),
        blocked_backoff: Duration::from_secs(300),
        lag: None,
    };
    let calls = Arc::new(Mutex::new(Vec::new()));
    let mut probe = Scripted {
        calls: calls.clone(),
        backoffs: vec![],
        running: Arc::new(AtomicUsize::new(0)),
    };
    let shutdown = tokio_util::sync::CancellationToken::new();
    let stop = shutdown.clone();
    tokio::spawn(async move {
        // Lands inside the first run (jitter < 5 s, run takes 2 s) or before it.
        tokio::time::sleep(Duration::from_millis(5500)).await;
        stop.cancel();
    });
    run_schedule(&schedule, &shutdown, &mut probe).await;
    assert!(calls.lock().unwrap().len() <= 1);
}

#[tokio::test(start_paused = true)]
async fn schedule_records_how_late_each_run_starts() {
    let telemetry = authwatch_core::telemetry::Telemetry::new();
    let schedule = Schedule {
        interval: Duration::from_secs(10),
        initial_delay: Duration::ZERO,
        jitter: Duration::ZERO,
        blocked_backoff: Duration::from_secs(300),
        lag: Some(schedule_lag(&telemetry, "synthetic/x")),
    };
    let mut probe = Scripted {
        calls: Arc::new(Mutex::new(Vec::new())),
        backoffs: vec![],
        running: Arc::new(AtomicUsize::new(0)),
    };
    let shutdown = tokio_util::sync::CancellationToken::new();
    let stop = shutdown.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(35)).await;
        stop.cancel();
    });
    run_schedule(&schedule, &shutdown, &mut probe).await;
    // Runs at 0, 10, 20 and 30 s, each on time (the paused clock has no timer delay).
    let text = telemetry.encode();
    assert!(
        text.contains(
            r#"authwatch_synthetic_schedule_lag_seconds_count{receiver="synthetic/x"} 4"#
        ),
        "{text}"
    );
    assert!(
        text.contains(r#"authwatch_synthetic_schedule_lag_seconds_bucket{le="0.002",receiver="synthetic/x"} 4"#),
        "{text}"
    );
}

// === helpers for runs against the OAuth2 server ===

fn oauth_check(s: &OAuthServer) -> OAuthCheck {
    let mut require = IndexMap::new();
    require.insert(srv::CLAIM.to_owned(), serde_json::Value::Bool(true));
    OAuthCheck {
        name: "login".into(),
        token_url: s.token_url(),
        client_id: srv::CLIENT_ID.into(),
        client_secret: Some(Secret::new(srv::CLIENT_SECRET)),
        username: Some(srv::USERNAME.into()),
        password: Some(Secret::new(srv::PASSWORD)),
        audience: Some(srv::AUDIENCE.into()),
        scope: Some("openid profile".into()),
        validate_token: Some(TokenValidation {
            issuer: Some(s.issuer().to_owned()),
            audience: Some(srv::AUDIENCE.into()),
            require_claims: require,
            ..TokenValidation::default()
        }),
        ..OAuthCheck::default()
    }
}

/// What the receiver exported during one run.
struct Exported {
    traces: Vec<ExportTraceServiceRequest>,
    metrics: Vec<ExportMetricsServiceRequest>,
}

impl Exported {
    fn spans(&self) -> Vec<Span> {
        self.traces
            .iter()
            .flat_map(|t| &t.resource_spans)
            .flat_map(|r| &r.scope_spans)
            .flat_map(|s| s.spans.clone())
            .collect()
    }

    fn root(&self) -> Span {
        let roots: Vec<Span> = self
            .spans()
            .into_iter()
            .filter(|s| s.parent_span_id.is_empty())
            .collect();
        assert_eq!(roots.len(), 1, "one root span per run");
        roots[0].clone()
    }

    fn outcome(&self) -> String {
        str_attr(&self.root().attributes, sc::SYNTHETIC_OUTCOME).expect("outcome")
    }

    /// The span tree, indented by depth, siblings by start time: `synthetic login`, `  POST`, ...
    fn tree(&self) -> Vec<String> {
        let spans = self.spans();
        let mut out = Vec::new();
        fn walk(spans: &[Span], parent: &[u8], depth: usize, out: &mut Vec<String>) {
            let mut kids: Vec<&Span> = spans
                .iter()
                .filter(|s| s.parent_span_id == parent)
                .collect();
            kids.sort_by_key(|s| s.start_time_unix_nano);
            for k in kids {
                out.push(format!("{}{}", "  ".repeat(depth), k.name));
                walk(spans, &k.span_id, depth + 1, out);
            }
        }
        walk(&spans, &[], 0, &mut out);
        out
    }

    fn span(&self, name: &str) -> Span {
        self.spans()
            .into_iter()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("no span {name} in {:?}", self.tree()))
    }

    fn metric(&self, name: &str) -> Option<Metric> {
        self.metrics
            .iter()
            .flat_map(|m| &m.resource_metrics)
            .flat_map(|r| &r.scope_metrics)
            .flat_map(|s| s.metrics.clone())
            .find(|m| m.name == name)
    }

    fn gauge(&self, name: &str) -> Option<i64> {
        match self.metric(name)?.data? {
            metric::Data::Gauge(g) => match g.data_points.first()?.value? {
                number_data_point::Value::AsInt(v) => Some(v),
                number_data_point::Value::AsDouble(v) => Some(v as i64),
            },
            _ => None,
        }
    }

    /// `authwatch.probe.runs` points as (outcome, count).
    fn runs(&self) -> Vec<(String, i64)> {
        match self.metric(sc::PROBE_RUNS).and_then(|m| m.data) {
            Some(metric::Data::Sum(s)) => {
                assert!(s.is_monotonic);
                s.data_points
                    .iter()
                    .map(|p| {
                        let v = match p.value {
                            Some(number_data_point::Value::AsInt(v)) => v,
                            _ => -1,
                        };
                        (str_attr(&p.attributes, sc::SYNTHETIC_OUTCOME).unwrap(), v)
                    })
                    .collect()
            }
            other => panic!("runs is not a sum: {other:?}"),
        }
    }

    fn phases(&self) -> Vec<String> {
        match self.metric(sc::PROBE_PHASE_DURATION).and_then(|m| m.data) {
            Some(metric::Data::Histogram(h)) => h
                .data_points
                .iter()
                .map(|p| {
                    assert_eq!(p.count, 1);
                    str_attr(&p.attributes, sc::SYNTHETIC_PHASE).unwrap()
                })
                .collect(),
            other => panic!("phase duration is not a histogram: {other:?}"),
        }
    }

    /// The checks every run's metrics share.
    fn assert_common_metrics(&self, outcome: &str) {
        let success = i64::from(outcome == "success");
        assert_eq!(self.gauge(sc::PROBE_SUCCESS), Some(success));
        assert_eq!(self.runs(), vec![(outcome.to_owned(), 1)]);
        match self.metric(sc::PROBE_DURATION).and_then(|m| m.data) {
            Some(metric::Data::Histogram(h)) => {
                assert_eq!(h.data_points.len(), 1);
                assert_eq!(h.data_points[0].count, 1);
                assert_eq!(h.data_points[0].bucket_counts.iter().sum::<u64>(), 1);
            }
            other => panic!("duration is not a histogram: {other:?}"),
        }
        let resource = &self.metrics[0].resource_metrics[0]
            .resource
            .as_ref()
            .unwrap()
            .attributes;
        assert_eq!(
            str_attr(resource, sc::SERVICE_NAME).as_deref(),
            Some("authwatch")
        );
        assert_eq!(
            str_attr(resource, sc::SYNTHETIC_CHECK).as_deref(),
            Some("login")
        );
        let root = self.root();
        assert_eq!(
            root.status.as_ref().map(|s| s.code).unwrap_or(0) == status::StatusCode::Error as i32,
            outcome != "success",
            "root status must be Error exactly on failure: {root:?}"
        );
    }
}

fn str_attr(attrs: &[KeyValue], key: &str) -> Option<String> {
    attrs.iter().find(|kv| kv.key == key).and_then(|kv| {
        match kv.value.as_ref()?.value.as_ref()? {
            any_value::Value::StringValue(s) => Some(s.clone()),
            any_value::Value::IntValue(i) => Some(i.to_string()),
            _ => None,
        }
    })
}

fn is_error(s: &Span) -> bool {
    s.status.as_ref().map(|s| s.code) == Some(status::StatusCode::Error as i32)
}

/// Builds the receiver with one check and a sink behind a router, lets it run once, stops it.
async fn run_receiver(check: Check, timeout: Duration, signals: Signals) -> (Exported, Sink) {
    let cfg = Config {
        interval: Duration::from_secs(60),
        timeout,
        initial_delay: Duration::ZERO,
        checks: vec![check],
        ..Config::default()
    };
    let (errors, _) = problems(&cfg);
    assert!(errors.is_empty(), "{errors:?}");
    let sink = Sink::new();
    let mut next = Router::new();
    for kind in signals.iter() {
        next.set(kind, sink.shared());
    }
    let settings = Settings::new("synthetic/test".parse().unwrap());
    let shutdown = settings.shutdown.clone();
    let task = cfg
        .build(ReceiverContext { settings, next })
        .await
        .expect("build");
    let handle = tokio::spawn(task);
    let last = if signals.contains(SignalKind::Metrics) {
        SignalKind::Metrics
    } else {
        SignalKind::Traces
    };
    sink.wait_for_items(last, 1, Duration::from_secs(60)).await;
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(30), handle)
        .await
        .expect("receiver stops after shutdown")
        .expect("no panic")
        .expect("ok");
    let mut exported = Exported {
        traces: Vec::new(),
        metrics: Vec::new(),
    };
    for s in sink.received() {
        match s {
            Signal::Traces(t) => exported.traces.push(t),
            Signal::Metrics(m) => exported.metrics.push(m),
            Signal::Logs(_) | Signal::Encoded(_) => panic!("no logs or encoded data expected"),
        }
    }
    (exported, sink)
}

async fn run_oauth(check: Check, timeout: Duration) -> Exported {
    run_receiver(check, timeout, Signals::TRACES | Signals::METRICS)
        .await
        .0
}

const T: Duration = Duration::from_secs(10);

fn lines(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}

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

// === TLS ===

struct Pki {
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

fn temp_path(name: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let n = N.fetch_add(1, Ordering::SeqCst);
    std::env::temp_dir().join(format!(
        "authwatch-synthetic-{}-{n}-{name}",
        std::process::id()
    ))
}

/// A CA and a `localhost` certificate it signed; `expired`: the certificate ended in 2021.
fn pki(expired: bool) -> Pki {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "authwatch test CA");
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::from_params(&ca_params, &ca_key);
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    if expired {
        params.not_before = rcgen::date_time_ymd(2020, 1, 1);
        params.not_after = rcgen::date_time_ymd(2021, 1, 1);
    }
    let cert = params.signed_by(&key, &issuer).unwrap();
    let p = Pki {
        ca: temp_path("ca.pem"),
        cert: temp_path("cert.pem"),
        key: temp_path("key.pem"),
    };
    std::fs::write(&p.ca, ca_cert.pem()).unwrap();
    std::fs::write(&p.cert, cert.pem()).unwrap();
    std::fs::write(&p.key, key.serialize_pem()).unwrap();
    p
}

async fn tls_server(p: &Pki) -> OAuthServer {
    OAuthServer::start(OAuthOptions {
        tls: Some((p.cert.clone(), p.key.clone())),
        ..Default::default()
    })
    .await
}

#[tokio::test]
async fn tls_with_configured_ca_succeeds() {
    let p = pki(false);
    let s = tls_server(&p).await;
    let mut c = oauth_check(&s);
    c.tls.ca_file = Some(p.ca.clone());
    let e = run_oauth(Check::PasswordGrant(c.clone()), T).await;
    assert_eq!(e.outcome(), "success", "{:?}", e.root().status);
    let tree = e.tree();
    assert_eq!(
        tree[..7],
        lines(&[
            "synthetic login",
            "  POST",
            "    dns",
            "    connect",
            "    tls",
            "    request",
            "    transfer"
        ])
    );
    assert_eq!(
        str_attr(&e.span("POST").attributes, sc::SERVER_ADDRESS).as_deref(),
        Some("localhost")
    );
    e.assert_common_metrics("success");
    assert!(e.phases().contains(&"tls".to_owned()));
    // rcgen's default validity runs to 4096.
    assert!(e.gauge(sc::TLS_CERTIFICATE_REMAINING).unwrap() > 365 * 86_400);

    // Without the CA, the same server is untrusted.
    c.tls.ca_file = None;
    let e = run_oauth(Check::PasswordGrant(c), T).await;
    assert_eq!(e.outcome(), "tls");
    assert_eq!(
        str_attr(&e.span("POST").attributes, sc::ERROR_TYPE).as_deref(),
        Some("certificate_unknown_issuer")
    );
}

#[tokio::test]
async fn tls_with_expired_certificate_fails() {
    let p = pki(true);
    let s = tls_server(&p).await;
    let mut c = oauth_check(&s);
    c.tls.ca_file = Some(p.ca.clone());
    let e = run_oauth(Check::PasswordGrant(c), T).await;
    assert_eq!(e.outcome(), "tls");
    assert_eq!(
        e.tree(),
        lines(&[
            "synthetic login",
            "  POST",
            "    dns",
            "    connect",
            "    tls"
        ])
    );
    let post = e.span("POST");
    assert!(is_error(&post));
    assert_eq!(
        str_attr(&post.attributes, sc::ERROR_TYPE).as_deref(),
        Some("certificate_expired")
    );
    e.assert_common_metrics("tls");
    // Known even though the handshake failed: expired, so negative.
    assert!(e.gauge(sc::TLS_CERTIFICATE_REMAINING).unwrap() < -365 * 86_400);
}

// === token validation ===

async fn token_failure(mode: Mode, edit: impl FnOnce(&mut TokenValidation)) -> Exported {
    let s = OAuthServer::start(OAuthOptions {
        mode,
        ..Default::default()
    })
    .await;
    let mut c = oauth_check(&s);
    edit(c.validate_token.as_mut().unwrap());
    run_oauth(Check::PasswordGrant(c), T).await
}

fn assert_token_failure(e: &Exported, outcome: &str, error_type: &str) {
    assert_eq!(e.outcome(), outcome);
    assert_eq!(
        str_attr(&e.root().attributes, sc::ERROR_TYPE).as_deref(),
        Some(error_type)
    );
    let v = e.span("validate");
    assert!(is_error(&v), "{v:?}");
    assert_eq!(
        str_attr(&v.attributes, sc::ERROR_TYPE).as_deref(),
        Some(error_type)
    );
    assert!(
        !is_error(&e.span("POST")),
        "the token request itself succeeded"
    );
    assert!(!is_error(&e.span("jwks")));
    e.assert_common_metrics(outcome);
}

#[tokio::test]
async fn missing_claim() {
    let e = token_failure(Mode::NoClaim, |_| {}).await;
    assert_token_failure(&e, "missing_claim", "missing_claim");
    assert!(e.root().status.unwrap().message.contains(srv::CLAIM));
}

#[tokio::test]
async fn wrong_issuer() {
    let e = token_failure(Mode::Ok, |t| {
        t.jwks_url = t
            .issuer
            .as_ref()
            .map(|i| format!("{i}.well-known/jwks.json"));
        t.issuer = Some("https://someone-else.example.com/".into());
    })
    .await;
    assert_token_failure(&e, "invalid_token", "invalid_issuer");
}

#[tokio::test]
async fn wrong_audience() {
    let e = token_failure(Mode::Ok, |t| {
        t.audience = Some("https://other-api.example".into())
    })
    .await;
    assert_token_failure(&e, "invalid_token", "invalid_audience");
}

#[tokio::test]
async fn expired_token() {
    let e = token_failure(Mode::Expired, |_| {}).await;
    assert_token_failure(&e, "invalid_token", "token_expired");
}

#[tokio::test]
async fn bad_signature() {
    let e = token_failure(Mode::BadSignature, |_| {}).await;
    assert_token_failure(&e, "invalid_token", "invalid_signature");
}

#[tokio::test]
async fn es256_tokens_validate() {
    let e = token_failure(Mode::Es256, |_| {}).await;
    assert_eq!(e.outcome(), "success", "{:?}", e.root().status);
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
    assert_eq!(reqs[0]["grant_type"], run::PASSWORD_REALM_GRANT);
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

// === http checks ===

#[tokio::test]
async fn http_check_assertions() {
    let s = OAuthServer::start(OAuthOptions::default()).await;
    let yaml = format!(
        r#"
name: login
url: {issuer}.well-known/openid-configuration
expect:
  status: [200]
  headers: [{{ name: content-type, regex: "^application/json" }}]
  body_regex: jwks_uri
  json:
    - {{ path: "$.issuer", equals: "{issuer}" }}
    - {{ path: "$.grant_types_supported[1]", equals: "{realm}" }}
    - {{ path: "$.nope", exists: false }}
  max_response_time: 5s
"#,
        issuer = s.issuer(),
        realm = run::PASSWORD_REALM_GRANT
    );
    let mut check: HttpCheck = serde_yaml::from_str(&yaml).unwrap();
    let e = run_oauth(Check::Http(check.clone()), T).await;
    assert_eq!(e.outcome(), "success", "{:?}", e.root().status);
    assert_eq!(
        e.tree(),
        lines(&[
            "synthetic login",
            "  GET",
            "    dns",
            "    connect",
            "    request",
            "    transfer"
        ])
    );
    e.assert_common_metrics("success");

    check.expect.json[0].equals = Some("https://wrong.example/".into());
    let e = run_oauth(Check::Http(check.clone()), T).await;
    assert_eq!(e.outcome(), "assertion");
    assert_eq!(
        str_attr(&e.root().attributes, sc::ERROR_TYPE).as_deref(),
        Some("assert_json")
    );
    assert!(!is_error(&e.span("GET")), "the request itself was fine");
    e.assert_common_metrics("assertion");

    check.expect.status = vec![StatusMatch::Class(4)];
    let e = run_oauth(Check::Http(check), T).await;
    assert_eq!(e.outcome(), "http_status");
}

// === secrets ===

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn secrets_never_leave() {
    let logs = Captured::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let ok = OAuthServer::start(OAuthOptions::default()).await;
    let blocked = OAuthServer::start(OAuthOptions {
        mode: Mode::Blocked,
        ..Default::default()
    })
    .await;
    let mut checks = Vec::new();
    checks.push(Check::PasswordGrant(oauth_check(&ok)));
    let mut basic = oauth_check(&ok);
    basic.name = "basic".into();
    basic.client_auth = ClientAuth::Basic;
    basic.body_format = BodyFormat::Json;
    checks.push(Check::PasswordGrant(basic));
    let mut wrong = oauth_check(&ok);
    wrong.name = "wrong".into();
    wrong.password = Some(Secret::new("Wr0ng-Pa55word-Secret"));
    checks.push(Check::PasswordGrant(wrong));
    let mut b = oauth_check(&blocked);
    b.name = "blocked".into();
    checks.push(Check::PasswordGrant(b));
    let mut headers = IndexMap::new();
    headers.insert(
        "authorization".to_owned(),
        Secret::new("Bearer h3ader-S3cret"),
    );
    checks.push(Check::Http(HttpCheck {
        name: "http".into(),
        url: format!("{}.well-known/jwks.json?api_key=qu3ry-S3cret", ok.issuer()),
        headers,
        body: Some(Secret::new("b0dy-S3cret")),
        expect: Expect {
            status: vec![StatusMatch::Code(418)],
            ..Default::default()
        },
        ..Default::default()
    }));
    let secrets = [
        srv::CLIENT_SECRET,
        srv::PASSWORD,
        "Wr0ng-Pa55word-Secret",
        "h3ader-S3cret",
        "qu3ry-S3cret",
        "b0dy-S3cret",
    ];

    let mut seen = String::new();
    for check in &checks {
        let (e, _) = run_receiver(check.clone(), T, Signals::TRACES | Signals::METRICS).await;
        seen.push_str(&format!("{:?}\n{:?}\n", e.traces, e.metrics));
        for t in &e.traces {
            seen.push_str(&serde_json::to_string(t).unwrap());
        }
    }
    let cfg = Config {
        checks: checks.clone(),
        ..Config::default()
    };
    let results = probe_once(&cfg, None).await.unwrap();
    let outcomes: Vec<Outcome> = results.iter().map(|r| r.outcome).collect();
    assert_eq!(
        outcomes,
        [
            Outcome::Success,
            Outcome::Success,
            Outcome::OauthError,
            Outcome::OauthError,
            Outcome::HttpStatus
        ]
    );
    for r in &results {
        seen.push_str(&format!("{r:?}\n{}\n", r.message.as_deref().unwrap_or("")));
    }
    let report = ProbeReport {
        results: results
            .into_iter()
            .map(|r| ("synthetic".to_owned(), r))
            .collect(),
    };
    seen.push_str(&format!("{report}\n{report:?}\n"));
    // The config itself: every `Secret` field redacted (a URL query is not a secret field).
    let cfg_text = format!("{cfg:?}\n{}\n", serde_json::to_string(&cfg).unwrap());
    for s in secrets.iter().filter(|s| **s != "qu3ry-S3cret") {
        assert!(
            !cfg_text.contains(s),
            "secret `{s}` printed with the config"
        );
    }
    let err = setup_error();
    seen.push_str(&format!("{err}\n{err:?}\n"));
    let logs = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("too_many_attempts"),
        "the blocked warning was logged: {logs}"
    );
    seen.push_str(&logs);

    for s in secrets {
        assert!(!seen.contains(s), "secret `{s}` leaked");
    }
    // Nor any token (JWTs start with a base64url `{"`).
    assert!(!seen.contains("eyJ"), "a token leaked");
    assert!(
        seen.contains("Wrong email or password"),
        "the checks did run"
    );
}

/// A setup error (unreadable CA file) for the secrets test.
fn setup_error() -> client::TlsSetupError {
    let c = Check::PasswordGrant(OAuthCheck {
        name: "x".into(),
        token_url: "https://x/oauth/token".into(),
        client_secret: Some(Secret::new(srv::CLIENT_SECRET)),
        tls: TlsConfig {
            ca_file: Some(temp_path("missing.pem")),
            insecure_skip_verify: false,
        },
        ..Default::default()
    });
    match run::CheckRunner::new(c, T) {
        Err(e) => e,
        Ok(_) => panic!("a missing CA file must fail"),
    }
}

// === probe ===

#[tokio::test]
async fn probe_document_reports_and_filters() {
    let s = OAuthServer::start(OAuthOptions::default()).await;
    let good = serde_json::to_value(Check::PasswordGrant(oauth_check(&s))).unwrap();
    // Serialized secrets are redacted; put the real ones back as a config file would have them.
    let mut good = good;
    good["client_secret"] = srv::CLIENT_SECRET.into();
    good["password"] = srv::PASSWORD.into();
    let mut bad = good.clone();
    bad["name"] = "bad".into();
    bad["password"] = "nope-nope".into();
    let doc = serde_json::json!({
        "receivers": {
            "otlp": {},
            "synthetic/auth0": { "checks": [good, bad] }
        }
    });
    let report = probe_document(&doc, Some("login")).await.unwrap();
    assert!(report.passed(), "{report}");
    let text = report.to_string();
    assert!(
        text.starts_with("PASS  synthetic/auth0 / login (password_grant)  outcome=success"),
        "{text}"
    );
    assert!(text.contains("phases: dns "), "{text}");
    assert!(
        text.contains(&format!("claim ok: {} = true", srv::CLAIM)),
        "{text}"
    );
    assert!(text.contains("rate limit: 29 of 30 left"), "{text}");
    assert!(text.ends_with("All 1 checks passed."), "{text}");

    let report = probe_document(&doc, None).await.unwrap();
    assert!(!report.passed());
    let text = report.to_string();
    assert!(
        text.contains("FAIL  synthetic/auth0 / bad (password_grant)  outcome=oauth_error"),
        "{text}"
    );
    assert!(text.contains("oauth.error: invalid_grant"), "{text}");
    assert!(text.ends_with("1 of 2 checks failed."), "{text}");

    let err = probe_document(&doc, Some("nope")).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "no check named `nope`; configured checks: login, bad"
    );
    let err = probe_document(&serde_json::json!({"receivers": {}}), None)
        .await
        .unwrap_err();
    assert!(matches!(err, ProbeError::NoSyntheticReceiver));
}
