use super::*;

#[test]
fn request_durations_are_a_histogram_per_receiver_and_transport() {
    let t = Telemetry::new();
    let r = t.receiver(&"otlp".parse().unwrap(), "http");
    let admitted = Instant::now() - Duration::from_millis(20);
    r.request_answered(admitted);
    r.request_answered(Instant::now());
    let text = t.encode();
    let labels = r#"receiver="otlp",transport="http"}"#;
    let name = "authwatch_receiver_request_duration_seconds";
    let line = |prefix: &str| {
        text.lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no {prefix} in\n{text}"))
            .rsplit(' ')
            .next()
            .unwrap()
            .to_owned()
    };
    assert_eq!(line(&format!("{name}_count{{{labels}")), "2");
    // The fast one is under 0.5 ms, the other in the (20 ms, 30 ms] bucket.
    let bucket = |le: &str| line(&format!(r#"{name}_bucket{{le="{le}",{labels}"#));
    assert_eq!(bucket("0.0005"), "1");
    assert_eq!(bucket("0.015"), "1");
    assert_eq!(bucket("0.03"), "2");
    assert_eq!(bucket("+Inf"), "2");
}

#[test]
fn counters_use_collector_names() {
    let t = Telemetry::new();
    let id: ComponentId = "otlp".parse().unwrap();
    let r = t.receiver(&id, "grpc");
    r.accepted(SignalKind::Traces, 3);
    r.refused(SignalKind::Logs, 2);
    let e = t.exporter(&"otlphttp/x".parse().unwrap());
    e.sent(SignalKind::Metrics, 5);
    e.queue_size.set(4);
    let text = t.encode();
    assert!(
        text.contains(
            r#"authwatch_receiver_accepted_spans_total{receiver="otlp",transport="grpc"} 3"#
        ),
        "{text}"
    );
    assert!(text.contains(
        r#"authwatch_receiver_refused_log_records_total{receiver="otlp",transport="grpc"} 2"#
    ));
    assert!(
        text.contains(r#"authwatch_exporter_sent_metric_points_total{exporter="otlphttp/x"} 5"#)
    );
    assert!(text.contains(r#"authwatch_exporter_queue_size{exporter="otlphttp/x"} 4"#));
    assert!(text.contains("authwatch_process_memory_rss_bytes"));
}

#[test]
fn custom_metrics_register_once() {
    let t = Telemetry::new();
    let a: Counter = t.metric("thing", "Things", Counter::default);
    let b: Counter = t.metric("thing", "Things", Counter::default);
    a.inc();
    b.inc();
    let text = t.encode();
    assert_eq!(
        text.matches("# TYPE authwatch_thing counter").count(),
        1,
        "{text}"
    );
    assert!(text.contains("authwatch_thing_total 2"), "{text}");
}

#[test]
fn handles_share_counters() {
    let t = Telemetry::new();
    let id: ComponentId = "otlp".parse().unwrap();
    t.receiver(&id, "http").accepted(SignalKind::Traces, 1);
    t.receiver(&id, "http").accepted(SignalKind::Traces, 1);
    assert!(t.encode().contains(
        r#"authwatch_receiver_accepted_spans_total{receiver="otlp",transport="http"} 2"#
    ));
}

#[derive(Clone, Debug, Hash, PartialEq, Eq)]
struct BatchLabels {
    processor: String,
    pipeline: String,
}
crate::label_set!(BatchLabels {
    processor,
    pipeline
});

type HistogramFamily = Family<BatchLabels, Histogram, fn() -> Histogram>;

fn small_histogram() -> Histogram {
    Histogram::new([25.0, 0.5, 10.0])
}

/// Every kind of series, written exactly as the prometheus-client registry wrote it before the
/// SDK (captured from that implementation), except label values, which are now escaped.
#[test]
fn text_matches_the_previous_exposition() {
    let t = Telemetry::new();
    let p = t.processor(&"batch/x".parse().unwrap(), "traces/a");
    p.accepted(SignalKind::Metrics, 7);
    p.dropped(SignalKind::Traces, 1);
    let e = t.exporter(&"otlphttp/x".parse().unwrap());
    e.queue_capacity.set(1000);
    e.queue_oldest_age_seconds.set(1.5);
    e.queue_corrupt_records.inc();
    let f: HistogramFamily = t.metric("processor_batch_send_size", "Items per batch", || {
        Family::new_with_constructor(small_histogram as fn() -> Histogram)
    });
    let s = f.get_or_create(&BatchLabels {
        processor: "batch".into(),
        pipeline: "traces".into(),
    });
    for v in [12.0, 3.0, 100.0] {
        s.observe(v);
    }
    let c: Family<Vec<(String, String)>, Counter> =
        t.metric("processor_redactions", "Redactions", Family::default);
    c.get_or_create(&vec![
        ("processor".into(), "redaction".into()),
        ("pipeline".into(), "logs".into()),
        ("rule".into(), "a \"q\" \\ x\ny".into()),
    ])
    .inc_by(9);
    let _empty: Family<Vec<(String, String)>, Counter> =
        t.metric("empty_thing", "Nothing yet", Family::default);
    let plain: Counter = t.metric("thing", "Things", Counter::default);
    plain.inc();

    let text = t.encode();
    let expected = [
        "# HELP authwatch_processor_accepted_metric_points Items a processor accepted (metric points).",
        "# TYPE authwatch_processor_accepted_metric_points counter",
        r#"authwatch_processor_accepted_metric_points_total{processor="batch/x",pipeline="traces/a"} 7"#,
        "# HELP authwatch_processor_dropped_spans Items a processor dropped after a permanent downstream error (spans).",
        "# TYPE authwatch_processor_dropped_spans counter",
        r#"authwatch_processor_dropped_spans_total{processor="batch/x",pipeline="traces/a"} 1"#,
        r#"authwatch_processor_refused_log_records_total{processor="batch/x",pipeline="traces/a"} 0"#,
        "# HELP authwatch_exporter_queue_capacity Capacity of an exporter's sending queue, in requests.",
        "# TYPE authwatch_exporter_queue_capacity gauge",
        r#"authwatch_exporter_queue_capacity{exporter="otlphttp/x"} 1000"#,
        "# TYPE authwatch_exporter_queue_oldest_age_seconds gauge",
        r#"authwatch_exporter_queue_oldest_age_seconds{exporter="otlphttp/x"} 1.5"#,
        "# TYPE authwatch_exporter_queue_corrupt_records counter",
        r#"authwatch_exporter_queue_corrupt_records_total{exporter="otlphttp/x"} 1"#,
        "# TYPE authwatch_process_uptime_seconds gauge",
        "# TYPE authwatch_process_memory_rss_bytes gauge",
        "# HELP authwatch_process_cpu_seconds CPU time used by the process (user + system).",
        "# HELP authwatch_processor_batch_send_size Items per batch.\n\
         # TYPE authwatch_processor_batch_send_size histogram\n\
         authwatch_processor_batch_send_size_sum{processor=\"batch\",pipeline=\"traces\"} 115.0\n\
         authwatch_processor_batch_send_size_count{processor=\"batch\",pipeline=\"traces\"} 3\n\
         authwatch_processor_batch_send_size_bucket{le=\"0.5\",processor=\"batch\",pipeline=\"traces\"} 0\n\
         authwatch_processor_batch_send_size_bucket{le=\"10.0\",processor=\"batch\",pipeline=\"traces\"} 1\n\
         authwatch_processor_batch_send_size_bucket{le=\"25.0\",processor=\"batch\",pipeline=\"traces\"} 2\n\
         authwatch_processor_batch_send_size_bucket{le=\"+Inf\",processor=\"batch\",pipeline=\"traces\"} 3\n",
        "# HELP authwatch_processor_redactions Redactions.\n\
         # TYPE authwatch_processor_redactions counter\n\
         authwatch_processor_redactions_total{processor=\"redaction\",pipeline=\"logs\",rule=\"a \\\"q\\\" \\\\ x\\ny\"} 9\n",
        "# HELP authwatch_thing Things.\n# TYPE authwatch_thing counter\nauthwatch_thing_total 1\n# EOF\n",
    ];
    for e in expected {
        assert!(text.contains(e), "missing {e:?} in:\n{text}");
    }
    // Registration order, as before: built-in families, the process, then components' own.
    let pos = |s: &str| text.find(s).unwrap_or_else(|| panic!("{s} missing"));
    assert!(
        pos("# TYPE authwatch_processor_accepted_spans ")
            < pos("# TYPE authwatch_exporter_queue_capacity ")
    );
    assert!(pos("authwatch_process_cpu_seconds ") < pos("authwatch_processor_batch_send_size_sum"));
    assert!(pos("authwatch_processor_redactions_total") < pos("authwatch_thing_total"));
    // A family with no series is left out, as before.
    assert!(!text.contains("empty_thing"), "{text}");
    assert!(text.ends_with("# EOF\n"));
}

#[test]
fn series_created_before_and_after_registration_are_recorded() {
    let t = Telemetry::new();
    let f: HistogramFamily = HistogramFamily::new_with_constructor(small_histogram);
    let early = f.get_or_create(&BatchLabels {
        processor: "a".into(),
        pipeline: "p".into(),
    });
    let registered = t.metric("h", "H", || f.clone());
    let late = registered.get_or_create(&BatchLabels {
        processor: "b".into(),
        pipeline: "p".into(),
    });
    early.observe(1.0);
    late.observe(1.0);
    late.observe(1.0);
    let text = t.encode();
    assert!(
        text.contains(r#"authwatch_h_count{processor="a",pipeline="p"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"authwatch_h_count{processor="b",pipeline="p"} 2"#),
        "{text}"
    );
}

/// Every reader sees the same data: a second (push-style) reader collects what `encode` shows.
#[test]
fn extra_readers_see_the_same_counters() {
    use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData};
    let extra = PullReader::default();
    let t = Telemetry::builder()
        .resource(
            Resource::builder()
                .with_service_name("authwatch")
                .with_attribute(opentelemetry::KeyValue::new(
                    "deployment.environment",
                    "test",
                ))
                .build(),
        )
        .reader(extra.clone())
        .build();
    t.receiver(&"otlp".parse().unwrap(), "grpc")
        .accepted(SignalKind::Traces, 4);
    let mut rm = ResourceMetrics::default();
    extra.collect(&mut rm).unwrap();
    let env = rm
        .resource()
        .get(&opentelemetry::Key::new("deployment.environment"))
        .map(|v| v.to_string());
    assert_eq!(env.as_deref(), Some("test"));
    let m = rm
        .scope_metrics()
        .flat_map(|s| s.metrics())
        .find(|m| m.name() == "authwatch_receiver_accepted_spans")
        .expect("the counter reaches every reader");
    let AggregatedMetrics::U64(MetricData::Sum(sum)) = m.data() else {
        panic!("a u64 sum expected: {:?}", m.data());
    };
    assert!(sum.is_monotonic());
    let values: Vec<u64> = sum.data_points().map(|p| p.value()).collect();
    assert_eq!(values, vec![4]);
    assert!(t.encode().contains(
        r#"authwatch_receiver_accepted_spans_total{receiver="otlp",transport="grpc"} 4"#
    ));
}

#[test]
fn encode_after_shutdown_is_empty_not_a_panic() {
    let t = Telemetry::new();
    t.receiver(&"otlp".parse().unwrap(), "grpc")
        .accepted(SignalKind::Traces, 1);
    t.shutdown(Duration::from_secs(1)).unwrap();
    assert_eq!(t.encode(), "# EOF\n");
}

#[test]
fn gauges_and_unregistered_histograms() {
    let g = Gauge::default();
    g.set(3);
    g.inc();
    g.dec_by(2);
    assert_eq!(g.get(), 2);
    let f = GaugeF64::default();
    assert_eq!(f.set(0.25), 0.0);
    assert_eq!(f.get(), 0.25);
    let h = Histogram::new([2.0, f64::NAN, 1.0, 2.0]);
    assert_eq!(h.bounds(), &[1.0, 2.0]);
    h.observe(1.0); // not registered: goes nowhere, and does not panic
}

/// As before the SDK: a histogram series shows at zero from its creation, before its first
/// observation (the SDK itself reports it only once recorded).
#[test]
fn histogram_series_show_at_zero_before_their_first_observation() {
    let t = Telemetry::new();
    let f: HistogramFamily = t.metric("h", "H", || {
        Family::new_with_constructor(small_histogram as fn() -> Histogram)
    });
    let observed = f.get_or_create(&BatchLabels {
        processor: "a".into(),
        pipeline: "p".into(),
    });
    let _idle = f.get_or_create(&BatchLabels {
        processor: "b".into(),
        pipeline: "p".into(),
    });
    observed.observe(7.0);
    let text = t.encode();
    let expected = "# HELP authwatch_h H.\n\
        # TYPE authwatch_h histogram\n\
        authwatch_h_sum{processor=\"a\",pipeline=\"p\"} 7.0\n\
        authwatch_h_count{processor=\"a\",pipeline=\"p\"} 1\n\
        authwatch_h_bucket{le=\"0.5\",processor=\"a\",pipeline=\"p\"} 0\n\
        authwatch_h_bucket{le=\"10.0\",processor=\"a\",pipeline=\"p\"} 1\n\
        authwatch_h_bucket{le=\"25.0\",processor=\"a\",pipeline=\"p\"} 1\n\
        authwatch_h_bucket{le=\"+Inf\",processor=\"a\",pipeline=\"p\"} 1\n\
        authwatch_h_sum{processor=\"b\",pipeline=\"p\"} 0.0\n\
        authwatch_h_count{processor=\"b\",pipeline=\"p\"} 0\n\
        authwatch_h_bucket{le=\"0.5\",processor=\"b\",pipeline=\"p\"} 0\n\
        authwatch_h_bucket{le=\"10.0\",processor=\"b\",pipeline=\"p\"} 0\n\
        authwatch_h_bucket{le=\"25.0\",processor=\"b\",pipeline=\"p\"} 0\n\
        authwatch_h_bucket{le=\"+Inf\",processor=\"b\",pipeline=\"p\"} 0\n";
    assert!(text.contains(expected), "{text}");
}
