use std::time::Duration;

use authwatch_core::otlp::collector::metrics::v1::ExportMetricsServiceRequest;
use authwatch_core::otlp::collector::trace::v1::ExportTraceServiceRequest;
use authwatch_core::otlp::common::v1::{any_value, KeyValue};
use authwatch_core::otlp::metrics::v1::{metric, number_data_point};
use authwatch_core::otlp::trace::v1::{
    span, status, span::Event, ResourceSpans, ScopeSpans, Span, Status,
};
use authwatch_core::registry::decode_config;
use authwatch_core::semconv;
use authwatch_core::{ConnectorContext, Router, Settings, SignalKind};
use authwatch_testkit::{kv, kv_int, resource, Sink};

use super::classify::{classify, endpoint_template, glob_match, is_id, split_url, SpanView};
use super::state::State;
use super::util::Clock;
use super::*;

// --- builders ---

fn http(host: &str, path: &str, status_code: Option<i64>) -> Span {
    let mut attrs = vec![
        kv("http.request.method", "POST"),
        kv("server.address", host),
        kv("url.full", &format!("https://{host}{path}?x=1")),
    ];
    if let Some(c) = status_code {
        attrs.push(kv_int("http.response.status_code", c));
    }
    Span {
        trace_id: vec![1; 16],
        span_id: vec![2; 8],
        name: "POST".into(),
        kind: span::SpanKind::Client as i32,
        start_time_unix_nano: 1_000_000_000,
        end_time_unix_nano: 1_000_000_000 + 30_000_000,
        attributes: attrs,
        status: Some(Status {
            code: if status_code.is_some_and(|c| c >= 400) {
                status::StatusCode::Error as i32
            } else {
                status::StatusCode::Unset as i32
            },
            message: String::new(),
        }),
        ..Default::default()
    }
}

fn with(mut s: Span, extra: Vec<KeyValue>) -> Span {
    s.attributes.extend(extra);
    s
}

fn failed(host: &str, error_type: &str) -> Span {
    let mut s = with(http(host, "/oauth/token", None), vec![kv("error.type", error_type)]);
    s.status = Some(Status {
        code: status::StatusCode::Error as i32,
        message: String::new(),
    });
    s
}

fn req(service: &str, spans: Vec<Span>) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(resource(service)),
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            schema_url: String::new(),
        }],
    }
}

const AUTH0: &str = "tenant.us.auth0.com";

fn cfg() -> Config {
    Config::default()
}

fn rejected() -> Vec<String> {
    DEFAULT_AUTH_REJECTED.iter().map(|s| s.to_string()).collect()
}

fn class_of(s: &Span) -> ErrorClass {
    classify(&SpanView::of(s), &rejected())
}

/// `metric name -> [(sorted "k=v" attributes, value)]` of one flush.
fn points(req: &ExportMetricsServiceRequest, name: &str) -> Vec<(String, f64)> {
    let mut out = Vec::new();
    for m in req
        .resource_metrics
        .iter()
        .flat_map(|r| &r.scope_metrics)
        .flat_map(|s| &s.metrics)
        .filter(|m| m.name == name)
    {
        let fmt = |attrs: &[KeyValue]| {
            let mut v: Vec<String> = attrs
                .iter()
                .map(|kv| {
                    let val = match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                        Some(any_value::Value::StringValue(s)) => s.clone(),
                        Some(any_value::Value::BoolValue(b)) => b.to_string(),
                        other => format!("{other:?}"),
                    };
                    format!("{}={val}", kv.key)
                })
                .collect();
            v.sort();
            v.join(",")
        };
        let num = |v: &Option<number_data_point::Value>| match v {
            Some(number_data_point::Value::AsInt(i)) => *i as f64,
            Some(number_data_point::Value::AsDouble(d)) => *d,
            None => f64::NAN,
        };
        match &m.data {
            Some(metric::Data::Sum(s)) => {
                out.extend(s.data_points.iter().map(|p| (fmt(&p.attributes), num(&p.value))))
            }
            Some(metric::Data::Gauge(g)) => {
                out.extend(g.data_points.iter().map(|p| (fmt(&p.attributes), num(&p.value))))
            }
            Some(metric::Data::Histogram(h)) => {
                out.extend(h.data_points.iter().map(|p| (fmt(&p.attributes), p.count as f64)))
            }
            _ => {}
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn value(req: &ExportMetricsServiceRequest, name: &str, attrs: &str) -> Option<f64> {
    points(req, name)
        .into_iter()
        .find(|(a, _)| a == attrs)
        .map(|(_, v)| v)
}

// --- config ---

#[test]
fn config_contract() {
    authwatch_testkit::assert_config_contract::<Config>("error_rate");
}

#[test]
fn full_config_decodes() {
    let c: Config = decode_config(serde_json::json!({
        "dependencies": [
            {"name": "auth0", "server_address": ["*.auth0.com"], "url_prefix": ["https://login.example.com/"]},
            {"name": "okta", "peer_service": ["okta"], "rpc_service": ["okta.Auth"]}
        ],
        "span_kinds": ["client", "internal"],
        "error_classes": ["server_error", "timeout"],
        "auth_rejected_errors": ["invalid_grant"],
        "windows": ["1m", "1h"],
        "metrics_flush_interval": "5s",
        "aggregation_temporality": "delta",
        "aggregation_cardinality_limit": 10,
        "histogram": {"buckets": [0.1, 1]},
        "error_groups": {"enabled": false, "resolve_after": "10m", "max_groups": 5}
    }))
    .unwrap();
    assert_eq!(c.dependencies.len(), 2);
    assert_eq!(c.dependencies[1].rpc_service, ["okta.Auth"]);
    assert_eq!(c.windows, [Window::secs(60), Window::secs(3600)]);
    assert_eq!(c.metrics_flush_interval, Duration::from_secs(5));
    assert_eq!(c.aggregation_temporality, Temporality::Delta);
    assert_eq!(c.error_groups.max_groups.get(), 5);
    assert_eq!(c.error_groups.resolve_after, Duration::from_secs(600));
    let mut v = Validator::new("connectors::error_rate");
    c.validate(&mut v);
    assert!(!v.has_errors(), "{:?}", v.errors());
    // Round trip (what `print-config` shows).
    let back: Config = decode_config(serde_json::to_value(&c).unwrap()).unwrap();
    assert_eq!(back, c);
}

#[test]
fn invalid_configs_name_the_path() {
    let decode_err = |j: serde_json::Value| decode_config::<Config>(j).unwrap_err().to_string();
    assert_eq!(
        decode_err(serde_json::json!({"windows": ["0s"]})),
        "windows::0: must be longer than zero, e.g. `5m`"
    );
    assert!(decode_err(serde_json::json!({"aggregation_temporality": "sometimes"}))
        .starts_with("aggregation_temporality: unknown variant `sometimes`"));
    assert!(decode_err(serde_json::json!({"error_classes": ["oops"]}))
        .starts_with("error_classes::0: unknown variant `oops`"));
    assert!(decode_err(serde_json::json!({"dependencies": [{"name": "a", "hosts": []}]}))
        .starts_with("dependencies::0::hosts: unknown field `hosts`"));
    assert_eq!(
        decode_err(serde_json::json!({"error_groups": {"max_groups": 0}})),
        "error_groups::max_groups: must be positive"
    );

    let validate = |j: serde_json::Value| {
        let c: Config = decode_config(j).unwrap();
        let mut v = Validator::new("connectors::error_rate");
        c.validate(&mut v);
        v.into_parts().0.iter().map(|e| e.to_string()).collect::<Vec<_>>()
    };
    assert_eq!(
        validate(serde_json::json!({"dependencies": []})),
        ["connectors::error_rate::dependencies: must list at least one dependency"]
    );
    assert_eq!(
        validate(serde_json::json!({"dependencies": [
            {"name": "a", "peer_service": ["a"]}, {"name": "a"}]})),
        [
            "connectors::error_rate::dependencies::1::name: `a` is used by another dependency; names must be unique",
            "connectors::error_rate::dependencies::1: needs at least one matcher: `server_address`, `url_prefix`, `url_path`, `peer_service` or `rpc_service`",
        ]
    );
    assert_eq!(
        validate(serde_json::json!({"error_classes": ["ok"], "windows": ["5m", "300s"],
            "histogram": {"buckets": [1, 0.5]}, "span_kinds": [], "metrics_flush_interval": 0})),
        [
            "connectors::error_rate::span_kinds: must list at least one span kind, e.g. `[client]`",
            "connectors::error_rate::error_classes: `ok` cannot be an error class",
            "connectors::error_rate::windows::1: `5m` is listed twice",
            "connectors::error_rate::metrics_flush_interval: must be longer than zero, e.g. `15s`",
            "connectors::error_rate::histogram::buckets: must be finite numbers in strictly increasing order",
        ]
    );
}

// --- per-span logic ---

#[test]
fn classification_follows_http_semconv() {
    let oauth = |code: i64, e: &str| with(http(AUTH0, "/oauth/token", Some(code)), vec![kv("oauth.error", e)]);
    let cases: Vec<(Span, ErrorClass)> = vec![
        (http(AUTH0, "/oauth/token", Some(200)), ErrorClass::Ok),
        (http(AUTH0, "/authorize", Some(302)), ErrorClass::Ok),
        (http(AUTH0, "/oauth/token", Some(500)), ErrorClass::ServerError),
        (http(AUTH0, "/oauth/token", Some(503)), ErrorClass::ServerError),
        (http(AUTH0, "/oauth/token", Some(429)), ErrorClass::RateLimited),
        (oauth(429, "too_many_requests"), ErrorClass::RateLimited),
        (oauth(429, "too_many_attempts"), ErrorClass::AuthRejected),
        (oauth(403, "invalid_grant"), ErrorClass::AuthRejected),
        (oauth(401, "invalid_client"), ErrorClass::ClientError),
        (oauth(400, "invalid_request"), ErrorClass::ClientError),
        (http(AUTH0, "/oauth/token", Some(404)), ErrorClass::ClientError),
        (http(AUTH0, "/oauth/token", Some(408)), ErrorClass::Timeout),
        (failed(AUTH0, "timeout"), ErrorClass::Timeout),
        (failed(AUTH0, "java.net.SocketTimeoutException"), ErrorClass::Timeout),
        (failed(AUTH0, "connection_refused"), ErrorClass::Network),
        (failed(AUTH0, "java.net.UnknownHostException"), ErrorClass::Network),
        (http(AUTH0, "/oauth/token", None), ErrorClass::Ok),
        (with(http(AUTH0, "/x", None), vec![kv_int("rpc.grpc.status_code", 14)]), ErrorClass::ServerError),
        (with(http(AUTH0, "/x", None), vec![kv_int("rpc.grpc.status_code", 4)]), ErrorClass::Timeout),
        (with(http(AUTH0, "/x", None), vec![kv_int("rpc.grpc.status_code", 8)]), ErrorClass::RateLimited),
        (with(http(AUTH0, "/x", None), vec![kv_int("rpc.grpc.status_code", 0)]), ErrorClass::Ok),
        (with(http(AUTH0, "/x", None), vec![kv("synthetic.check", "login"), kv("synthetic.outcome", "timeout")]), ErrorClass::Timeout),
        (with(http(AUTH0, "/x", None), vec![kv("synthetic.check", "login"), kv("synthetic.outcome", "dns")]), ErrorClass::Network),
    ];
    for (i, (s, want)) in cases.iter().enumerate() {
        assert_eq!(class_of(s), *want, "case {i}: {:?}", s.attributes);
    }
    // The OAuth error may come from an exception event, and `auth0.error` is read too.
    let mut ev = http(AUTH0, "/oauth/token", Some(403));
    ev.events.push(Event {
        name: "exception".into(),
        attributes: vec![kv("exception.type", "Auth0Error"), kv("oauth.error", "invalid_grant")],
        ..Default::default()
    });
    assert_eq!(class_of(&ev), ErrorClass::AuthRejected);
    assert_eq!(SpanView::of(&ev).error_key(), Some("invalid_grant"));
    let a0 = with(http(AUTH0, "/oauth/token", Some(403)), vec![kv("auth0.error", "mfa_required")]);
    assert_eq!(class_of(&a0), ErrorClass::AuthRejected);
    // auth_rejected is configurable: with an empty list a wrong password is a client error.
    assert_eq!(
        classify(&SpanView::of(&oauth(403, "invalid_grant")), &[]),
        ErrorClass::ClientError
    );
}

#[test]
fn endpoints_are_templated() {
    let t = |path: &str| {
        let s = http(AUTH0, path, Some(200));
        let mut out = String::new();
        endpoint_template(&SpanView::of(&s), &mut out);
        out
    };
    assert_eq!(t("/oauth/token"), "/oauth/token");
    assert_eq!(t("/api/v2/users/auth0|5f7c8ec7c33c6c004bbafe82"), "/api/v2/users/{id}");
    assert_eq!(t("/api/v2/users/google-oauth2%7C1234/roles"), "/api/v2/users/{id}/roles");
    assert_eq!(t("/api/v2/orders/12345"), "/api/v2/orders/{id}");
    assert_eq!(t("/api/v2/x/123e4567-e89b-12d3-a456-426614174000"), "/api/v2/x/{id}");
    assert_eq!(t("/api/v2/clients/aBcDeF1234567890xyZ"), "/api/v2/clients/{id}");
    assert_eq!(t("/a/b/c/d/e/f/g/h/i/j"), "/a/b/c/d/e/f/g/h/{...}");
    assert_eq!(t(""), "/");
    // url.template wins.
    let s = with(http(AUTH0, "/api/v2/users/7", Some(200)), vec![kv("url.template", "/api/v2/users/{user}")]);
    let mut out = String::new();
    endpoint_template(&SpanView::of(&s), &mut out);
    assert_eq!(out, "/api/v2/users/{user}");
    assert!(!is_id("userinfo") && !is_id("authorize") && !is_id("v2"));
    assert_eq!(split_url("https://u:p@h.example.com:8443/a/b?c#d"), (Some("h.example.com"), "/a/b"));
    assert_eq!(split_url("http://[::1]:80"), (Some("::1"), "/"));
}

#[test]
fn dependencies_match_by_glob_prefix_peer_and_rpc() {
    assert!(glob_match("*.auth0.com", "tenant.us.AUTH0.com"));
    assert!(!glob_match("*.auth0.com", "auth0.com.evil.io"));
    assert!(glob_match("login.*.example.com", "login.eu.example.com"));
    assert!(glob_match("*", "anything"));
    assert!(glob_match("*.auth0.com", ".auth0.com") && !glob_match("*.auth0.com", "auth0.com"));
    assert!(glob_match("*a*b", "xxaYYb") && !glob_match("*a*b", "xxbYYa"));
    let d = Dependency {
        name: "idp".into(),
        server_address: vec!["*.auth0.com".into()],
        url_prefix: vec!["https://login.example.com/".into()],
        peer_service: vec!["idp".into()],
        rpc_service: vec!["idp.Tokens".into()],
        url_path: vec![],
    };
    let m = |s: Span| d.matches(&SpanView::of(&s));
    assert!(m(http(AUTH0, "/", Some(200))));
    assert!(m(http("login.example.com", "/oauth/token", Some(200))));
    assert!(!m(http("api.example.com", "/", Some(200))));
    assert!(m(with(http("10.0.0.1", "/", Some(200)), vec![kv("peer.service", "idp")])));
    assert!(m(with(http("10.0.0.1", "/", Some(200)), vec![kv("rpc.service", "idp.Tokens")])));
    // Host from url.full when server.address is missing.
    let mut s = http(AUTH0, "/", Some(200));
    s.attributes.retain(|kv| kv.key != "server.address");
    assert!(m(s));
}

#[test]
fn dependencies_match_by_url_path_glob() {
    let d = Dependency {
        name: "keycloak".into(),
        server_address: vec![],
        url_prefix: vec![],
        peer_service: vec![],
        rpc_service: vec![],
        url_path: vec!["/realms/*/protocol/openid-connect/*".into()],
    };
    let m = |s: Span| d.matches(&SpanView::of(&s));
    // From the path of url.full, the query string left out.
    assert!(m(http("sso.example.com", "/realms/acme/protocol/openid-connect/token", Some(200))));
    assert!(!m(http("sso.example.com", "/realms/acme/account", Some(200))));
    assert!(!m(http("sso.example.com", "/api/realms/acme/protocol/openid-connect/token", Some(200))));
    // `url.path` wins over url.full.
    let s = with(
        http("sso.example.com", "/other", Some(200)),
        vec![kv("url.path", "/realms/x/protocol/openid-connect/certs")],
    );
    assert!(m(s));
    // Without a path attribute, nothing to match.
    let mut s = http("sso.example.com", "/realms/a/protocol/openid-connect/token", Some(200));
    s.attributes.retain(|kv| kv.key != "url.full");
    assert!(!m(s));
    // A dependency with only `url_path` validates.
    let mut c = cfg();
    c.dependencies = vec![d.clone()];
    let mut v = Validator::new("connectors::error_rate");
    c.validate(&mut v);
    assert!(!v.has_errors(), "{:?}", v.errors());
}

// --- counts and windows ---

#[tokio::test(start_paused = true)]
async fn exact_counts_and_ratios_per_window_and_class() {
    let mut c = cfg();
    c.windows = vec![Window::secs(60), Window::secs(300)];
    let mut st = State::new(&c, Clock::new());
    let s = Duration::from_secs;
    // t = 0..60: 100 calls, 10 server errors, 5 rate limited, 5 wrong passwords.
    for i in 0..60u64 {
        let mut spans = vec![http(AUTH0, "/oauth/token", Some(200))];
        if i < 10 {
            spans.push(http(AUTH0, "/oauth/token", Some(503)));
        }
        if i < 5 {
            spans.push(http(AUTH0, "/oauth/token", Some(429)));
            spans.push(with(http(AUTH0, "/oauth/token", Some(403)), vec![kv("oauth.error", "invalid_grant")]));
        }
        if i < 20 {
            spans.push(http(AUTH0, "/userinfo", Some(200)));
        }
        st.record_traces(&req("checkout", spans), s(i));
    }
    // Spans of other dependencies and server spans are ignored.
    let mut server = http(AUTH0, "/oauth/token", Some(500));
    server.kind = span::SpanKind::Server as i32;
    st.record_traces(&req("checkout", vec![http("api.stripe.com", "/v1", Some(500)), server]), s(59));
    assert_eq!(st.matched, 100);

    // 60 + 10 + 5 + 5 + 20 = 100 calls; errors = 10 + 5 (auth_rejected is not an error).
    assert_eq!(st.window_totals(0, Source::Traffic, 0, s(59)), (100, 15));
    assert_eq!(st.window_totals(0, Source::Traffic, 1, s(59)), (100, 15));
    assert_eq!(st.window_totals(0, Source::Probe, 1, s(59)), (0, 0));
    let m = st.metrics(s(60));
    let base = "dependency=auth0,endpoint=/oauth/token";
    let tail = "service.name=checkout,source=traffic";
    let rq = |class: &str| value(&m, semconv::DEPENDENCY_REQUESTS, &format!("{base},error.class={class},{tail}"));
    assert_eq!(rq("ok"), Some(60.0));
    assert_eq!(rq("server_error"), Some(10.0));
    assert_eq!(rq("rate_limited"), Some(5.0));
    assert_eq!(rq("auth_rejected"), Some(5.0));
    assert_eq!(
        value(&m, semconv::DEPENDENCY_REQUESTS, &format!("dependency=auth0,endpoint=/userinfo,error.class=ok,{tail}")),
        Some(20.0)
    );
    let errs = points(&m, semconv::DEPENDENCY_ERRORS);
    assert_eq!(errs.len(), 2, "{errs:?}");
    assert_eq!(errs.iter().map(|p| p.1).sum::<f64>(), 15.0);
    assert_eq!(
        value(&m, semconv::HTTP_CLIENT_REQUEST_DURATION, &format!("{base},error.class=ok,{tail}")),
        Some(60.0)
    );
    // Ratio gauges at t=60: the 1m window lost second 0 (1 ok, 1 5xx, 1 429, 1 403, 1 userinfo gone).
    assert_eq!(
        value(&m, semconv::DEPENDENCY_ERROR_RATIO, "dependency=auth0,source=traffic,window=5m"),
        Some(0.15)
    );
    assert_eq!(
        value(&m, semconv::DEPENDENCY_WINDOW_REQUESTS, "dependency=auth0,source=traffic,window=1m"),
        Some(95.0)
    );
    assert_eq!(
        value(&m, semconv::DEPENDENCY_ERROR_RATIO, "dependency=auth0,source=traffic,window=1m"),
        Some(13.0 / 95.0)
    );
    // No probe calls: no probe ratio, but a zero request count.
    assert_eq!(value(&m, semconv::DEPENDENCY_ERROR_RATIO, "dependency=auth0,source=probe,window=1m"), None);
    assert_eq!(value(&m, semconv::DEPENDENCY_WINDOW_REQUESTS, "dependency=auth0,source=probe,window=1m"), Some(0.0));
    // Later: at t=70 the 1m window has lost seconds 0..=10 (1s buckets): 49 ok calls, 9 userinfo calls.
    assert_eq!(st.window_totals(0, Source::Traffic, 0, s(70)), (49 + 9, 0));
    assert_eq!(st.window_totals(0, Source::Traffic, 1, s(70)), (100, 15));
    // After 5 minutes everything is gone from both windows.
    assert_eq!(st.window_totals(0, Source::Traffic, 1, s(359)), (0, 0));

}

#[tokio::test(start_paused = true)]
async fn probe_spans_count_once_and_are_labelled() {
    let mut st = State::new(&cfg(), Clock::new());
    let root = with(http(AUTH0, "/oauth/token", Some(500)), vec![kv("synthetic.check", "login")]);
    let mut phase = with(http(AUTH0, "/oauth/token", Some(500)), vec![kv("synthetic.check", "login")]);
    phase.parent_span_id = vec![2; 8];
    let mut internal_root = with(http(AUTH0, "/oauth/token", Some(200)), vec![kv("synthetic.check", "login")]);
    internal_root.kind = span::SpanKind::Internal as i32;
    st.record_traces(&req("authwatch", vec![root, phase, internal_root]), Duration::ZERO);
    assert_eq!(st.matched, 2);
    assert_eq!(st.window_totals(0, Source::Probe, 0, Duration::ZERO), (2, 1));
    assert_eq!(st.window_totals(0, Source::Traffic, 0, Duration::ZERO), (0, 0));
    let m = st.metrics(Duration::ZERO);
    assert_eq!(
        value(&m, semconv::DEPENDENCY_ERROR_RATIO, "dependency=auth0,source=probe,window=1m"),
        Some(0.5)
    );
}

#[tokio::test(start_paused = true)]
async fn cardinality_is_capped_with_an_overflow_series() {
    let mut c = cfg();
    c.aggregation_cardinality_limit = 3;
    let mut st = State::new(&c, Clock::new());
    let spans = (0..10).map(|i| http(AUTH0, &format!("/p{i}/x"), Some(if i % 2 == 0 { 200 } else { 500 }))).collect();
    st.record_traces(&req("svc", spans), Duration::ZERO);
    assert_eq!(st.overflowed, 7);
    let m = st.metrics(Duration::ZERO);
    let rq = points(&m, semconv::DEPENDENCY_REQUESTS);
    assert_eq!(rq.len(), 5, "{rq:?}");
    assert_eq!(rq.iter().map(|p| p.1).sum::<f64>(), 10.0);
    // p3, p5, p7, p9 fail; p4, p6, p8 succeed; the overflow keeps dependency, class and source.
    assert_eq!(
        value(&m, semconv::DEPENDENCY_REQUESTS, "dependency=auth0,error.class=server_error,otel.metric.overflow=true,source=traffic"),
        Some(4.0)
    );
    assert_eq!(
        value(&m, semconv::DEPENDENCY_REQUESTS, "dependency=auth0,error.class=ok,otel.metric.overflow=true,source=traffic"),
        Some(3.0)
    );
    // Windows still count every call.
    assert_eq!(st.window_totals(0, Source::Traffic, 0, Duration::ZERO), (10, 5));
}

#[tokio::test(start_paused = true)]
async fn delta_temporality_restarts_counters() {
    let mut c = cfg();
    c.aggregation_temporality = Temporality::Delta;
    let mut st = State::new(&c, Clock::new());
    let one = || req("svc", vec![http(AUTH0, "/oauth/token", Some(200))]);
    st.record_traces(&one(), Duration::ZERO);
    st.record_traces(&one(), Duration::ZERO);
    let a = st.metrics(Duration::from_secs(15));
    st.record_traces(&one(), Duration::from_secs(16));
    let b = st.metrics(Duration::from_secs(30));
    let k = "dependency=auth0,endpoint=/oauth/token,error.class=ok,service.name=svc,source=traffic";
    assert_eq!(value(&a, semconv::DEPENDENCY_REQUESTS, k), Some(2.0));
    assert_eq!(value(&b, semconv::DEPENDENCY_REQUESTS, k), Some(1.0));
    let Some(metric::Data::Sum(sum)) = &b.resource_metrics[0].scope_metrics[0].metrics[0].data else {
        panic!("requests must be a sum");
    };
    assert_eq!(sum.aggregation_temporality, 1, "delta");
    let p = &sum.data_points[0];
    assert_eq!(p.time_unix_nano - p.start_time_unix_nano, 15_000_000_000);
}

#[tokio::test(start_paused = true)]
async fn error_groups_new_and_regressed() {
    let mut st = State::new(&cfg(), Clock::new());
    let wrong_pw = || with(http(AUTH0, "/oauth/token", Some(403)), vec![kv("oauth.error", "invalid_grant")]);
    let s = Duration::from_secs;
    // 8 good calls, then the first wrong password: a new group.
    let mut spans: Vec<Span> = (0..8).map(|_| http(AUTH0, "/oauth/token", Some(200))).collect();
    spans.push(wrong_pw());
    let recs = st.record_traces(&req("web", spans), s(0));
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0].event, state::GroupEvent::New);
    // More of the same from another service: no new record, count and services grow.
    let recs = st.record_traces(&req("mobile", vec![wrong_pw(), http(AUTH0, "/oauth/token", Some(200))]), s(60));
    assert!(recs.is_empty());
    let g = st.group("auth0", "/oauth/token", "invalid_grant").unwrap();
    assert_eq!((g.count, g.services.len()), (2, 2));
    assert_eq!(g.first_seen, s(0));
    assert_eq!(g.last_seen, s(60));
    // A 503 is another group (key = status code), and a timeout another (key = error.type).
    let recs = st.record_traces(&req("web", vec![http(AUTH0, "/oauth/token", Some(503)), failed(AUTH0, "timeout")]), s(61));
    assert_eq!(recs.len(), 2);
    // Quiet for resolve_after (1h), then seen again: regressed.
    let recs = st.record_traces(&req("web", vec![wrong_pw()]), s(60 + 3600));
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0].event, state::GroupEvent::Regressed);
    let attrs: std::collections::HashMap<_, _> = recs[0]
        .attributes
        .iter()
        .map(|kv| (kv.key.as_str(), kv.value.clone().and_then(|v| v.value)))
        .collect();
    assert_eq!(attrs["error_group.count"], Some(any_value::Value::IntValue(3)));
    assert_eq!(attrs["error_group.key"], Some(any_value::Value::StringValue("invalid_grant".into())));
    assert_eq!(attrs["error.class"], Some(any_value::Value::StringValue("auth_rejected".into())));
    // Share: 3 of the 1 + 2 + 2 + 1 = 6 calls to the endpoint since the group was first seen.
    assert_eq!(attrs["error_group.share"], Some(any_value::Value::DoubleValue(0.5)));
    assert_eq!(
        attrs["error_group.fingerprint"],
        Some(any_value::Value::StringValue(state::fingerprint("auth0", "/oauth/token", "auth_rejected", "invalid_grant")))
    );
    let Some(any_value::Value::ArrayValue(services)) = &attrs["error_group.services"] else {
        panic!("services must be an array");
    };
    assert_eq!(services.values.len(), 2);
}

// --- the connector ---

async fn build(c: &Config) -> (Built, Sink, Sink, CancellationToken) {
    let (metrics, logs) = (Sink::new(), Sink::new());
    let mut next = Router::new();
    next.set(SignalKind::Metrics, metrics.shared());
    next.set(SignalKind::Logs, logs.shared());
    let settings = Settings::new("error_rate".parse().unwrap());
    let token = settings.shutdown.clone();
    let built = c.build(ConnectorContext { settings, next }).await.unwrap();
    (built, metrics, logs, token)
}

#[tokio::test(start_paused = true)]
async fn flushes_every_interval_and_at_shutdown() {
    let (built, metrics, logs, token) = build(&cfg()).await;
    let task = tokio::spawn(built.task.unwrap());
    let consumer = built.consumer;
    consumer
        .consume(Signal::Traces(req("web", vec![http(AUTH0, "/oauth/token", Some(503)), http(AUTH0, "/oauth/token", Some(200))])))
        .await
        .unwrap();
    // The new error group went to the logs pipeline right away.
    let recs = logs.received();
    assert_eq!(recs.len(), 1);
    let Signal::Logs(l) = &recs[0] else { panic!("logs expected") };
    assert_eq!(l.resource_logs[0].scope_logs[0].log_records[0].event_name, semconv::ERROR_GROUP_NEW);
    assert!(metrics.received().is_empty());

    tokio::time::sleep(Duration::from_secs(15) + Duration::from_millis(1)).await;
    assert_eq!(metrics.received().len(), 1);
    tokio::time::sleep(Duration::from_secs(15)).await;
    assert_eq!(metrics.received().len(), 2);
    // Cumulative: the second flush still has both calls.
    let Signal::Metrics(m) = &metrics.received()[1] else { panic!("metrics expected") };
    assert_eq!(
        points(m, semconv::DEPENDENCY_REQUESTS).iter().map(|p| p.1).sum::<f64>(),
        2.0
    );
    consumer
        .consume(Signal::Traces(req("web", vec![http(AUTH0, "/oauth/token", Some(200))])))
        .await
        .unwrap();
    token.cancel();
    task.await.unwrap().unwrap();
    // The final flush carries the last call.
    assert_eq!(metrics.received().len(), 3);
    let Signal::Metrics(m) = &metrics.received()[2] else { panic!("metrics expected") };
    assert_eq!(
        points(m, semconv::DEPENDENCY_REQUESTS).iter().map(|p| p.1).sum::<f64>(),
        3.0
    );
}

#[tokio::test]
async fn refuses_other_signals_and_survives_a_full_logs_pipeline() {
    let (built, _metrics, logs, _token) = build(&cfg()).await;
    let r = built.consumer.consume(authwatch_testkit::metric_signal(0, 1)).await;
    assert!(matches!(r, Err(ConsumeError::Permanent(_))), "{r:?}");
    logs.fail_with(Some(ConsumeError::Full));
    let r = built
        .consumer
        .consume(Signal::Traces(req("web", vec![http(AUTH0, "/oauth/token", Some(500))])))
        .await;
    assert_eq!(r, Ok(()));
}

#[test]
fn testkit_spans_are_counted() {
    // The testkit's client spans: every tenth a 503.
    let mut st = State::new(&cfg(), Clock::new());
    st.record_traces(&authwatch_testkit::traces(0, 100), Duration::ZERO);
    assert_eq!(st.window_totals(0, Source::Traffic, 0, Duration::ZERO), (100, 10));
}

#[tokio::test(start_paused = true)]
async fn publishes_dependencies_and_error_groups_on_the_board_at_flush() {
    let (metrics, logs) = (Sink::new(), Sink::new());
    let mut next = Router::new();
    next.set(SignalKind::Metrics, metrics.shared());
    next.set(SignalKind::Logs, logs.shared());
    let settings = Settings::new("error_rate".parse().unwrap());
    let board = settings.board.clone();
    let token = settings.shutdown.clone();
    let built = cfg().build(ConnectorContext { settings, next }).await.unwrap();
    let task = tokio::spawn(built.task.unwrap());
    let spans = vec![
        http(AUTH0, "/oauth/token", Some(503)),
        http(AUTH0, "/oauth/token", Some(503)),
        http(AUTH0, "/oauth/token", Some(200)),
        with(http(AUTH0, "/oauth/token", Some(403)), vec![kv("oauth.error", "invalid_grant")]),
    ];
    built.consumer.consume(Signal::Traces(req("web", spans))).await.unwrap();
    assert!(board.section(authwatch_core::board::DEPENDENCIES).is_empty(), "published on flush, not per span");
    tokio::time::sleep(Duration::from_secs(15) + Duration::from_millis(1)).await;
    let deps = board.section(authwatch_core::board::DEPENDENCIES);
    let d = &deps["auth0"];
    assert_eq!(d["dependency"], "auth0");
    assert_eq!(d["connector"], "error_rate");
    assert_eq!(d["requests"], 4);
    assert_eq!(d["errors"], 2, "auth_rejected is not an error");
    assert_eq!(d["by_class"]["server_error"], 2);
    assert_eq!(d["by_class"]["auth_rejected"], 1);
    assert_eq!(d["windows"][0]["window"], "1m");
    assert_eq!(d["windows"][0]["requests"], 4);
    assert_eq!(d["windows"][0]["error_ratio"], 0.5);
    assert_eq!(d["windows"][0]["traffic"]["errors"], 2);
    let groups = board.section(authwatch_core::board::ERROR_GROUPS);
    let g = &groups["auth0"]["groups"];
    assert_eq!(g[0]["class"], "server_error", "most calls first");
    assert_eq!(g[0]["count"], 2);
    assert_eq!(g[0]["endpoint"], "/oauth/token");
    assert_eq!(g[0]["services"], serde_json::json!(["web"]));
    assert_eq!(g.as_array().unwrap().len(), 2);
    token.cancel();
    task.await.unwrap().unwrap();
}

#[test]
fn endpoints_services_and_error_keys_stay_under_their_caps() {
    let mut c = cfg();
    c.aggregation_cardinality_limit = 5;
    c.error_groups.max_groups = decode_config::<Config>(serde_json::json!({ "error_groups": { "max_groups": 2 } }))
        .unwrap()
        .error_groups
        .max_groups;
    let mut st = State::new(&c, Clock::new());
    for round in 0..4 {
        let spans = (0..50)
            .map(|i| {
                let s = http(AUTH0, &format!("/p{round}-{i}/x"), Some(500));
                with(s, vec![kv("oauth.error", &format!("e{round}-{i}"))])
            })
            .collect();
        st.record_traces(&req(&format!("svc{round}"), spans), Duration::from_secs(round));
    }
    let (endpoints, services, keys) = st.interned();
    assert!(endpoints <= 5 && services <= 5 && keys <= 8, "{endpoints} {services} {keys}");
    // Every call is still counted, the ones past the caps in the overflow series.
    let m = st.metrics(Duration::from_secs(4));
    let rq = points(&m, semconv::DEPENDENCY_REQUESTS);
    assert_eq!(rq.iter().map(|p| p.1).sum::<f64>(), 200.0, "{rq:?}");
    assert!(rq.iter().any(|(a, n)| a.contains("otel.metric.overflow=true") && *n >= 195.0), "{rq:?}");
    assert_eq!(st.window_totals(0, Source::Traffic, 0, Duration::from_secs(4)), (200, 200));
}

/// The straightforward `split_url`, `is_id` and path templating the byte-search versions
/// replaced, as the
/// reference for the property test below.
mod reference {
    pub fn split_url(url: &str) -> (Option<&str>, &str) {
        let scheme_end = url.find("://");
        let rest = match scheme_end {
            Some(i) => &url[i + 3..],
            None => return (None, strip_query(url)),
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest.split(['?', '#']).next().unwrap_or(rest), "/"),
        };
        let host = authority.rsplit('@').next().unwrap_or(authority);
        let host = if host.starts_with('[') {
            host.split(']').next().map(|h| h.trim_start_matches('['))
        } else {
            host.split(':').next()
        };
        (host.filter(|h| !h.is_empty()), strip_query(path))
    }

    fn strip_query(p: &str) -> &str {
        p.split(['?', '#']).next().unwrap_or(p)
    }

    /// `endpoint_template` of a span with only `url.path`.
    pub fn path_template(path: &str) -> String {
        let mut out = String::new();
        for (n, seg) in strip_query(path).split('/').filter(|s| !s.is_empty()).enumerate() {
            out.push('/');
            if n == 8 {
                out.push_str("{...}");
                return out;
            }
            out.push_str(if is_id(seg) { "{id}" } else { seg });
        }
        if out.is_empty() {
            out.push('/');
        }
        out
    }

    pub fn is_id(seg: &str) -> bool {
        let b = seg.as_bytes();
        if b.iter().all(u8::is_ascii_digit) {
            return true;
        }
        let escaped_pipe =
            (0..b.len()).any(|i| b[i] == b'%' && (b[i + 1..].starts_with(b"7C") || b[i + 1..].starts_with(b"7c")));
        if b.contains(&b'|') || escaped_pipe {
            return true;
        }
        let hexish = b.iter().all(|c| c.is_ascii_hexdigit() || *c == b'-');
        if hexish && b.iter().filter(|c| c.is_ascii_hexdigit()).count() >= 16 {
            return true;
        }
        let digits = b.iter().filter(|c| c.is_ascii_digit()).count();
        b.len() >= 16 && digits >= 2 && b.iter().all(|c| c.is_ascii_alphanumeric() || b"-_.".contains(c))
    }
}

#[test]
fn split_url_is_id_and_templates_agree_with_their_references() {
    // Strings built from the bytes these functions look at, plus letters, digits and non-ASCII.
    const PIECES: [&str; 24] = [
        "/", "?", "#", ":", "@", "[", "]", "%", "7C", "7c", "://", "|", "-", "_", ".", "a", "F", "g",
        "Z", "0", "9", "é", "http", "x1y2z3w4v5u6t7s8",
    ];
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut checked = 0;
    for _ in 0..200_000 {
        let len = (next() % 24) as usize;
        let s: String = (0..len).map(|_| PIECES[(next() % PIECES.len() as u64) as usize]).collect();
        assert_eq!(split_url(&s), reference::split_url(&s), "split_url({s:?})");
        assert_eq!(is_id(&s), reference::is_id(&s), "is_id({s:?})");
        let view = SpanView {
            url_path: Some(&s),
            ..SpanView::default()
        };
        let mut template = String::new();
        endpoint_template(&view, &mut template);
        assert_eq!(template, reference::path_template(&s), "template of {s:?}");
        checked += 1;
    }
    for s in ["", "https://", "https://@", "http://[::1", "a://b/c?d#e", "%7", "%7C", "1%7c"] {
        assert_eq!(split_url(s), reference::split_url(s), "split_url({s:?})");
        assert_eq!(is_id(s), reference::is_id(s), "is_id({s:?})");
    }
    assert_eq!(checked, 200_000);
}
