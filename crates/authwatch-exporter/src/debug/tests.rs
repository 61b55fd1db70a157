use std::time::Duration;

use authwatch_core::{ConsumeError, ExporterConfig, Signal};
use authwatch_testkit::{log_signal, metric_signal, trace_signal};

use super::*;
use crate::helper::tests::fixtures::{config_errors, settings};
use crate::helper::tests::metric;

#[test]
fn config_contract() {
    authwatch_testkit::assert_config_contract::<Config>("debug");
}

#[test]
fn config_fields() {
    let c: Config = authwatch_core::registry::decode_config(serde_json::json!({
        "verbosity": "detailed", "sampling_initial": 5, "sampling_thereafter": 0
    }))
    .unwrap();
    assert_eq!(
        c,
        Config {
            verbosity: Verbosity::Detailed,
            sampling_initial: 5,
            sampling_thereafter: 0,
        }
    );
    assert_eq!(
        config_errors::<Config>(serde_json::json!({ "verbosity": "loud" })),
        vec!["verbosity: unknown variant `loud`, expected one of `basic`, `normal`, `detailed`"]
    );
}

#[test]
fn normal_is_one_line_per_item() {
    let spans = format::normal(&trace_signal(0, 3));
    assert_eq!(spans.len(), 3);
    assert!(
        spans[0].starts_with(
            "POST trace_id=000000000000000100000000000a11ce span_id=0000000000000001 kind=Client status=Unset duration=42ms http.request.method=POST"
        ),
        "{}",
        spans[0]
    );
    let points = format::normal(&metric_signal(0, 2));
    assert_eq!(points, vec!["test.gauge{test.index=0} 0", "test.gauge{test.index=1} 1"]);
    let records = format::normal(&log_signal(4, 1));
    assert_eq!(records, vec!["INFO log 4 test.index=4"]);
}

#[test]
fn detailed_shows_resource_scope_and_fields() {
    let text = format::detailed(&trace_signal(9, 1));
    for want in [
        "ResourceSpans #0",
        "  resource service.name: checkout",
        "  ScopeSpans #0 scope: authwatch-testkit 1.0.0",
        "    Span #0",
        "      span_id: 000000000000000a",
        "      kind: Client",
        "      status: Error",
        "      attribute http.response.status_code: 503",
    ] {
        assert!(text.contains(want), "missing {want:?} in\n{text}");
    }
    let text = format::detailed(&log_signal(0, 1));
    assert!(text.contains("      body: log 0"), "{text}");
    let text = format::detailed(&metric_signal(0, 1));
    assert!(text.contains("      name: test.gauge"), "{text}");
    assert!(text.contains("      point test.gauge{test.index=0} 0"), "{text}");
}

#[test]
fn counts_resources_and_items() {
    assert_eq!(format::counts(&trace_signal(0, 4)), (1, 4));
    assert_eq!(format::counts(&Signal::empty(authwatch_core::SignalKind::Logs)), (0, 0));
}

#[tokio::test(start_paused = true)]
async fn sampling_per_second() {
    let s = Sampler::new(2, 3);
    let first: Vec<bool> = (0..8).map(|_| s.sample()).collect();
    assert_eq!(first, vec![true, true, false, false, true, false, false, true]);
    tokio::time::advance(Duration::from_secs(1)).await;
    assert!(s.sample() && s.sample() && !s.sample());
    let none_after = Sampler::new(1, 0);
    assert!(none_after.sample());
    assert!(!none_after.sample());
    let all = Sampler::new(2, 1);
    assert!((0..10).all(|_| all.sample()));
}

#[tokio::test]
async fn consumes_every_verbosity_and_refuses_after_shutdown() {
    for verbosity in [Verbosity::Basic, Verbosity::Normal, Verbosity::Detailed] {
        let s = settings("debug");
        let cfg = Config {
            verbosity,
            ..Config::default()
        };
        let built = cfg.build(s.clone()).await.unwrap();
        assert!(built.task.is_none());
        built.consumer.consume(trace_signal(0, 2)).await.unwrap();
        built.consumer.consume(metric_signal(0, 3)).await.unwrap();
        built.consumer.consume(log_signal(0, 1)).await.unwrap();
        assert_eq!(metric(&s.telemetry, "exporter_sent_spans_total", "debug"), 2);
        assert_eq!(metric(&s.telemetry, "exporter_sent_metric_points_total", "debug"), 3);
        s.shutdown.cancel();
        assert_eq!(
            built.consumer.consume(log_signal(0, 1)).await,
            Err(ConsumeError::Closed)
        );
    }
}
