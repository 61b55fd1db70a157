//! The connector's state: exact counts and ratios per window and class, probe spans, the
//! cardinality cap, delta temporality, error groups and the caps on interned strings.

use std::time::Duration;

use authwatch_core::otlp::common::v1::any_value;
use authwatch_core::otlp::metrics::v1::metric;
use authwatch_core::otlp::trace::v1::{span, Span};
use authwatch_core::registry::decode_config;

use super::state::{self, State};
use super::tests::{cfg, failed, http, points, req, value, with, AUTH0};
use super::*;
use authwatch_core::semconv;
use authwatch_core::time::Clock;
use authwatch_testkit::kv;

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
    // Two error series with calls; the other error classes of both endpoints start at 0.
    let errs = points(&m, semconv::DEPENDENCY_ERRORS);
    assert_eq!(errs.iter().filter(|p| p.1 > 0.0).count(), 2, "{errs:?}");
    assert_eq!(errs.len(), 10, "{errs:?}");
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
async fn probe_runs_marked_degraded_are_counted_decoded_and_encoded() {
    use authwatch_core::otlp::common::v1::{AnyValue, KeyValue};
    use prost::Message;
    let degraded = |on: bool| KeyValue {
        key: semconv::SYNTHETIC_DEGRADED.into(),
        value: Some(AnyValue { value: Some(any_value::Value::BoolValue(on)) }),
        ..Default::default()
    };
    let run = |on: bool| with(http(AUTH0, "/oauth/token", Some(200)), vec![kv("synthetic.check", "login"), degraded(on)]);
    let series = "dependency=auth0,endpoint=/oauth/token,error.class=ok,service.name=authwatch,source=probe";
    // No degraded run: no metric at all.
    let mut st = State::new(&cfg(), Clock::new());
    st.record_traces(&req("authwatch", vec![run(false)]), Duration::ZERO);
    assert!(points(&st.metrics(Duration::ZERO), semconv::DEPENDENCY_DEGRADED).is_empty());
    // Decoded and encoded spans read the flag alike.
    st.record_traces(&req("authwatch", vec![run(true), run(false)]), Duration::ZERO);
    let bytes = req("authwatch", vec![run(true)]).encode_to_vec();
    st.record_traces_encoded(&bytes, Duration::ZERO).unwrap();
    let m = st.metrics(Duration::ZERO);
    assert_eq!(value(&m, semconv::DEPENDENCY_DEGRADED, series), Some(2.0));
    assert_eq!(value(&m, semconv::DEPENDENCY_REQUESTS, series), Some(4.0));
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

// --- every call counted once ---

#[tokio::test(start_paused = true)]
async fn a_re_sent_span_is_counted_once_decoded_or_encoded() {
    let mut st = State::new(&cfg(), Clock::new());
    let spans = vec![
        http(AUTH0, "/oauth/token", Some(200)),
        http(AUTH0, "/oauth/token", Some(503)),
    ];
    let sent = req("checkout", spans.clone());
    st.record_traces(&sent, Duration::ZERO);
    // The client was refused elsewhere and sends the request again, decoded then as bytes.
    st.record_traces(&sent, Duration::from_secs(1));
    let bytes = authwatch_core::Signal::Traces(sent.clone()).to_encoded();
    st.record_traces_encoded(bytes.bytes(), Duration::from_secs(2)).unwrap();
    assert_eq!((st.matched, st.duplicates), (2, 4));
    assert_eq!(st.window_totals(0, Source::Traffic, 0, Duration::from_secs(2)), (1 + 1, 1));
    // A new span with the same trace but its own span id counts.
    let mut again = spans[1].clone();
    again.span_id = vec![0xEE; 8];
    st.record_traces_encoded(
        authwatch_core::Signal::Traces(req("checkout", vec![again])).to_encoded().bytes(),
        Duration::from_secs(3),
    )
    .unwrap();
    assert_eq!((st.matched, st.duplicates), (3, 4));
    let m = st.metrics(Duration::from_secs(4));
    let k = "dependency=auth0,endpoint=/oauth/token,error.class=server_error,service.name=checkout,source=traffic";
    assert_eq!(value(&m, semconv::DEPENDENCY_ERRORS, k), Some(2.0));
}

#[tokio::test(start_paused = true)]
async fn dedupe_can_be_turned_off() {
    let mut c = cfg();
    c.dedupe_spans = 0;
    let mut st = State::new(&c, Clock::new());
    let sent = req("checkout", vec![http(AUTH0, "/oauth/token", Some(200))]);
    st.record_traces(&sent, Duration::ZERO);
    st.record_traces(&sent, Duration::ZERO);
    assert_eq!((st.matched, st.duplicates), (2, 0));
}

#[tokio::test(start_paused = true)]
async fn error_counters_of_a_new_endpoint_start_at_zero() {
    let mut st = State::new(&cfg(), Clock::new());
    st.record_traces(&req("checkout", vec![http(AUTH0, "/oauth/token", Some(200))]), Duration::ZERO);
    let before = st.metrics(Duration::from_secs(15));
    let k = |class: &str| {
        format!("dependency=auth0,endpoint=/oauth/token,error.class={class},service.name=checkout,source=traffic")
    };
    // Every configured error class is there at 0 before its first error; `auth_rejected` is not
    // an error class and is not seeded.
    for class in ["server_error", "rate_limited", "timeout", "network", "client_error"] {
        assert_eq!(value(&before, semconv::DEPENDENCY_ERRORS, &k(class)), Some(0.0), "{class}");
        assert_eq!(value(&before, semconv::DEPENDENCY_REQUESTS, &k(class)), Some(0.0), "{class}");
    }
    assert_eq!(value(&before, semconv::DEPENDENCY_REQUESTS, &k("auth_rejected")), None);
    // Histograms only for series with calls.
    assert_eq!(points(&before, semconv::HTTP_CLIENT_REQUEST_DURATION).len(), 1);
    let burst: Vec<Span> = (0..40).map(|_| http(AUTH0, "/oauth/token", Some(503))).collect();
    st.record_traces(&req("checkout", burst), Duration::from_secs(20));
    let after = st.metrics(Duration::from_secs(30));
    assert_eq!(value(&after, semconv::DEPENDENCY_ERRORS, &k("server_error")), Some(40.0));
    assert_eq!(points(&after, semconv::HTTP_CLIENT_REQUEST_DURATION).len(), 2);
}

#[tokio::test(start_paused = true)]
async fn zero_series_are_not_seeded_past_the_limit_nor_with_delta() {
    let mut c = cfg();
    c.aggregation_cardinality_limit = 5; // one series and its 5 siblings do not fit
    let mut st = State::new(&c, Clock::new());
    st.record_traces(&req("checkout", vec![http(AUTH0, "/oauth/token", Some(200))]), Duration::ZERO);
    assert_eq!(points(&st.metrics(Duration::from_secs(1)), semconv::DEPENDENCY_REQUESTS).len(), 1);
    let mut c = cfg();
    c.aggregation_temporality = Temporality::Delta;
    let mut st = State::new(&c, Clock::new());
    st.record_traces(&req("checkout", vec![http(AUTH0, "/oauth/token", Some(200))]), Duration::ZERO);
    assert_eq!(points(&st.metrics(Duration::from_secs(1)), semconv::DEPENDENCY_REQUESTS).len(), 1);
}
