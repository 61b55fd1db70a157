//! Live updates: what changed goes to the live lane at once, then at most every
//! `live_interval`, always cumulative, never to exporters, and the exported metrics keep their
//! `metrics_flush_interval`.

use std::time::Duration;

use authwatch_core::otlp::collector::metrics::v1::ExportMetricsServiceRequest;
use authwatch_core::otlp::metrics::v1::{metric, AggregationTemporality};
use authwatch_core::{semconv, ConnectorContext, Fanout, Router, Settings, SignalKind};
use authwatch_testkit::Sink;

use super::state::State;
use super::tests::{cfg, http, points, req, value, AUTH0};
use super::*;
use authwatch_core::time::Clock;

const TOKEN: &str =
    "dependency=auth0,endpoint=/oauth/token,error.class=ok,service.name=web,source=traffic";
const TOKEN_5XX: &str =
    "dependency=auth0,endpoint=/oauth/token,error.class=server_error,service.name=web,source=traffic";

fn sum_temporality(m: &ExportMetricsServiceRequest, name: &str) -> Option<i32> {
    m.resource_metrics
        .iter()
        .flat_map(|r| &r.scope_metrics)
        .flat_map(|s| &s.metrics)
        .find(|x| x.name == name)
        .and_then(|x| match &x.data {
            Some(metric::Data::Sum(s)) => Some(s.aggregation_temporality),
            _ => None,
        })
}

#[test]
fn live_metrics_hold_what_changed_cumulatively_and_leave_the_flush_alone() {
    let mut c = cfg();
    c.aggregation_temporality = Temporality::Delta;
    let mut st = State::new(&c, Clock::new());
    let s = Duration::from_secs;
    assert!(st.live_metrics(s(0)).is_none(), "nothing counted, nothing sent");
    st.record_traces(&req("web", vec![http(AUTH0, "/oauth/token", Some(200)), http(AUTH0, "/oauth/token", Some(503))]), s(1));
    let live = st.live_metrics(s(1)).expect("calls were counted");
    assert_eq!(value(&live, semconv::DEPENDENCY_REQUESTS, TOKEN), Some(1.0));
    assert_eq!(value(&live, semconv::DEPENDENCY_ERRORS, TOKEN_5XX), Some(1.0));
    assert_eq!(
        sum_temporality(&live, semconv::DEPENDENCY_REQUESTS),
        Some(AggregationTemporality::Cumulative as i32),
        "live counters are cumulative whatever is exported"
    );
    assert!(!points(&live, semconv::DEPENDENCY_ERROR_RATIO).is_empty(), "with the windows");
    assert!(st.live_metrics(s(1)).is_none(), "only on change");
    // One more ok call: only its series goes live, with its running total.
    st.record_traces(&req("web", vec![http(AUTH0, "/oauth/token", Some(200))]), s(2));
    let live = st.live_metrics(s(2)).unwrap();
    assert_eq!(points(&live, semconv::DEPENDENCY_REQUESTS), [(TOKEN.to_string(), 2.0)]);
    // The flush is as it was: delta, every call once.
    let flush = st.metrics(s(15));
    assert_eq!(sum_temporality(&flush, semconv::DEPENDENCY_REQUESTS), Some(AggregationTemporality::Delta as i32));
    assert_eq!(value(&flush, semconv::DEPENDENCY_REQUESTS, TOKEN), Some(2.0));
    assert_eq!(value(&flush, semconv::DEPENDENCY_REQUESTS, TOKEN_5XX), Some(1.0));
    // After a delta flush the series count again from zero, with a new start time.
    st.record_traces(&req("web", vec![http(AUTH0, "/oauth/token", Some(200))]), s(16));
    let live = st.live_metrics(s(16)).unwrap();
    assert_eq!(points(&live, semconv::DEPENDENCY_REQUESTS), [(TOKEN.to_string(), 1.0)]);
}

/// What `slow` and `once` added goes live too: a changed series carries its degraded counter
/// and histogram; seeded error series (zero) and re-sent spans (counted once) change nothing.
#[test]
fn live_updates_carry_degraded_calls_and_skip_what_did_not_change() {
    use authwatch_core::otlp::common::v1::{any_value, AnyValue, KeyValue};
    use authwatch_testkit::kv;
    let mut st = State::new(&cfg(), Clock::new());
    let s = Duration::from_secs;
    let degraded = KeyValue {
        key: semconv::SYNTHETIC_DEGRADED.into(),
        value: Some(AnyValue { value: Some(any_value::Value::BoolValue(true)) }),
        ..Default::default()
    };
    let run = super::tests::with(http(AUTH0, "/oauth/token", Some(200)), vec![kv("synthetic.check", "login"), degraded]);
    let series = "dependency=auth0,endpoint=/oauth/token,error.class=ok,service.name=authwatch,source=probe";
    st.record_traces(&req("authwatch", vec![run.clone()]), s(1));
    let live = st.live_metrics(s(1)).expect("a call was counted");
    assert_eq!(value(&live, semconv::DEPENDENCY_DEGRADED, series), Some(1.0));
    assert_eq!(points(&live, semconv::DEPENDENCY_REQUESTS), [(series.to_string(), 1.0)], "not the seeded zeros");
    assert_eq!(points(&live, semconv::HTTP_CLIENT_REQUEST_DURATION).len(), 1);
    // The exported metrics do hold the seeded error series.
    assert!(points(&st.metrics(s(2)), semconv::DEPENDENCY_REQUESTS).len() > 1);
    // The same span sent again is not counted again: nothing changed, nothing goes live.
    st.record_traces(&req("authwatch", vec![run]), s(3));
    assert!(st.live_metrics(s(3)).is_none());
}

/// An `alerts`-like consumer (takes live data) and an exporter (does not), behind one fanout.
async fn build(c: &Config) -> (Built, Sink, Sink, Settings) {
    let (evaluator, exporter) = (Sink::taking_live(), Sink::new());
    let mut next = Router::new();
    next.set(SignalKind::Metrics, Fanout::of(vec![evaluator.shared(), exporter.shared()]));
    let settings = Settings::new("error_rate".parse().unwrap());
    let built = c
        .build(ConnectorContext { settings: settings.clone(), next })
        .await
        .unwrap();
    (built, evaluator, exporter, settings)
}

#[tokio::test(start_paused = true)]
async fn live_updates_reach_evaluators_at_once_and_never_exporters() {
    let mut c = cfg();
    c.metrics_flush_interval = Duration::from_secs(3600);
    let (built, evaluator, exporter, settings) = build(&c).await;
    let task = tokio::spawn(built.task.unwrap());
    // Each span its own ids: a span sent again is counted once.
    let calls = |n: usize| Signal::Traces(req("web", (0..n).map(|_| http(AUTH0, "/oauth/token", Some(503))).collect()));
    built.consumer.consume(calls(3)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1)).await;
    let live = evaluator.live_received();
    assert_eq!(live.len(), 1, "the first calls after a quiet spell go at once");
    let Signal::Metrics(m) = &live[0] else { panic!("metrics expected") };
    assert_eq!(value(m, semconv::DEPENDENCY_ERRORS, TOKEN_5XX), Some(3.0));
    // The status page too.
    let deps = settings.board.section(authwatch_core::board::DEPENDENCIES);
    assert_eq!(deps["auth0"]["errors"], 3);

    // Calls that keep coming are gathered for `live_interval` (200ms).
    built.consumer.consume(calls(1)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    built.consumer.consume(calls(1)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(evaluator.live_received().len(), 1);
    tokio::time::sleep(Duration::from_millis(60)).await;
    let live = evaluator.live_received();
    assert_eq!(live.len(), 2);
    let Signal::Metrics(m) = &live[1] else { panic!("metrics expected") };
    assert_eq!(value(m, semconv::DEPENDENCY_ERRORS, TOKEN_5XX), Some(5.0));
    // Nothing counted: nothing sent.
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(evaluator.live_received().len(), 2);

    // The exporter saw nothing at all, and nobody saw the exported metrics before the flush.
    assert!(exporter.received().is_empty() && exporter.live_received().is_empty());
    assert!(evaluator.received().is_empty());
    settings.shutdown.cancel();
    task.await.unwrap().unwrap();
    // The final flush: both get the exported metrics once.
    assert_eq!(exporter.received().len(), 1);
    assert_eq!(evaluator.received().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn no_live_updates_without_a_live_consumer() {
    let exporter = Sink::new();
    let mut next = Router::new();
    next.set(SignalKind::Metrics, exporter.shared());
    let settings = Settings::new("error_rate".parse().unwrap());
    let built = cfg()
        .build(ConnectorContext { settings: settings.clone(), next })
        .await
        .unwrap();
    let task = tokio::spawn(built.task.unwrap());
    built
        .consumer
        .consume(Signal::Traces(req("web", vec![http(AUTH0, "/oauth/token", Some(200))])))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(exporter.received().is_empty());
    // The board still follows the calls.
    assert_eq!(settings.board.section(authwatch_core::board::DEPENDENCIES)["auth0"]["requests"], 1);
    settings.shutdown.cancel();
    task.await.unwrap().unwrap();
}

#[test]
fn live_interval_is_at_most_a_second() {
    let validate = |j: serde_json::Value| {
        let c: Config = authwatch_core::registry::decode_config(j).unwrap();
        let mut v = Validator::new("connectors::error_rate");
        c.validate(&mut v);
        v.into_parts().0.iter().map(|e| e.to_string()).collect::<Vec<_>>()
    };
    let err = ["connectors::error_rate::live_interval: must be longer than zero and at most `1s`, so that alerts learn of calls within a second"];
    assert_eq!(validate(serde_json::json!({"live_interval": "2s"})), err);
    assert_eq!(validate(serde_json::json!({"live_interval": 0})), err);
    assert!(validate(serde_json::json!({"live_interval": "1s"})).is_empty());
    assert_eq!(Config::default().live_interval, Duration::from_millis(200));
}
