//! OTLP metrics to Prometheus series and their text exposition: names, types, labels, deltas,
//! options, collisions, expiry, staleness markers, and promtool's verdict on the output.

use std::time::Duration;

use super::tests::{
    authwatch_like, feed, gauge, histogram, int_point, num_point, request, s, store, sum,
};
use super::*;
use authwatch_core::otlp::metrics::v1::{metric, NumberDataPoint};

#[tokio::test]
async fn translates_names_types_and_labels() {
    let mut st = store(&Config::default());
    let out = feed(&mut st, &authwatch_like(), Instant::now());
    assert_eq!(out.dropped, vec![(store::Dropped::ExponentialHistogram, 1)]);
    let text = st.encode(false);
    let id = r#"instance="sidecar-1",job="authwatch""#;
    for line in [
        "# HELP authwatch_probe_success_ratio authwatch.probe.success help".to_owned(),
        "# TYPE authwatch_probe_success_ratio gauge".to_owned(),
        format!(r#"authwatch_probe_success_ratio{{{id},synthetic_check="login"}} 1"#),
        format!(r#"authwatch_dependency_error_ratio{{dependency="auth0",{id},window="5m"}} 0.25"#),
        format!("authwatch_ratelimit_reset_seconds{{{id}}} 1700000000"),
        "# TYPE authwatch_dependency_requests_total counter".to_owned(),
        format!(
            r#"authwatch_dependency_requests_total{{dependency="auth0",endpoint="/oauth/token",error_class="server_error",{id}}} 7"#
        ),
        "# TYPE queue_items gauge".to_owned(),
        "# TYPE authwatch_probe_phase_duration_seconds histogram".to_owned(),
        format!(
            r#"authwatch_probe_phase_duration_seconds_bucket{{{id},phase="dns",synthetic_check="login",le="0.1"}} 1"#
        ),
        format!(
            r#"authwatch_probe_phase_duration_seconds_bucket{{{id},phase="dns",synthetic_check="login",le="0.5"}} 3"#
        ),
        format!(
            r#"authwatch_probe_phase_duration_seconds_bucket{{{id},phase="dns",synthetic_check="login",le="1"}} 3"#
        ),
        format!(
            r#"authwatch_probe_phase_duration_seconds_bucket{{{id},phase="dns",synthetic_check="login",le="+Inf"}} 4"#
        ),
        format!(
            r#"authwatch_probe_phase_duration_seconds_sum{{{id},phase="dns",synthetic_check="login"}} 1.9"#
        ),
        format!(
            r#"authwatch_probe_phase_duration_seconds_count{{{id},phase="dns",synthetic_check="login"}} 4"#
        ),
        "# TYPE rpc_latency_seconds summary".to_owned(),
        "# HELP rpc_latency_seconds rpc.latency".to_owned(),
        format!(r#"rpc_latency_seconds{{{id},quantile="0.99"}} 5.5"#),
        format!("rpc_latency_seconds_count{{{id}}} 4"),
        "# TYPE target_info gauge".to_owned(),
        format!(r#"target_info{{host_name="node-7",{id}}} 1"#),
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing {line:?} in:\n{text}"
        );
    }
    assert!(!text.contains("exp_hist"), "{text}");
    // One TYPE and one HELP per family.
    let types = text.lines().filter(|l| l.starts_with("# TYPE ")).count();
    let helps = text.lines().filter(|l| l.starts_with("# HELP ")).count();
    assert_eq!(types, 8, "{text}");
    assert_eq!(helps, 8, "{text}");
}

#[tokio::test]
async fn deltas_accumulate_and_cumulatives_replace() {
    let mut st = store(&Config::default());
    let now = Instant::now();
    for v in [2, 3] {
        feed(
            &mut st,
            &request(
                vec![],
                vec![sum("d", true, true, vec![int_point(vec![], v, 1)])],
            ),
            now,
        );
        feed(
            &mut st,
            &request(
                vec![],
                vec![sum("c", true, false, vec![int_point(vec![], v, v as u64)])],
            ),
            now,
        );
        feed(
            &mut st,
            &request(
                vec![],
                vec![histogram(
                    "h",
                    true,
                    vec![],
                    vec![1, 0, 0, v as u64],
                    1.0,
                    1,
                )],
            ),
            now,
        );
    }
    // An out-of-order cumulative point is ignored.
    feed(
        &mut st,
        &request(
            vec![],
            vec![sum("c", true, false, vec![int_point(vec![], 100, 1)])],
        ),
        now,
    );
    let text = st.encode(false);
    assert!(text.contains("\nd_total 5\n"), "{text}");
    assert!(text.contains("\nc_total 3\n"), "{text}");
    assert!(text.contains("h_seconds_bucket{le=\"0.1\"} 2\n"), "{text}");
    assert!(text.contains("h_seconds_bucket{le=\"+Inf\"} 7\n"), "{text}");
    assert!(text.contains("h_seconds_sum 2\n"), "{text}");
}

#[tokio::test]
async fn options_shape_the_output() {
    let cfg = Config {
        namespace: "idp".into(),
        const_labels: [("env".into(), "prod".into())].into(),
        resource_to_telemetry_conversion: ResourceToTelemetryConversion { enabled: true },
        add_metric_suffixes: false,
        send_timestamps: true,
        ..Config::default()
    };
    let mut st = store(&cfg);
    feed(&mut st, &authwatch_like(), Instant::now());
    let text = st.encode(false);
    assert!(
        text.contains(r#"idp_authwatch_probe_success{env="prod",host_name="node-7",instance="sidecar-1",job="authwatch",service_instance_id="sidecar-1",service_name="authwatch",synthetic_check="login"} 1 0"#),
        "{text}"
    );
    assert!(
        text.contains("# TYPE idp_authwatch_dependency_requests counter"),
        "{text}"
    );
    assert!(
        text.contains(r#"target_info{env="prod",host_name="node-7""#),
        "{text}"
    );
}

#[tokio::test]
async fn open_metrics_names_counters_by_family() {
    let mut st = store(&Config::default());
    feed(&mut st, &authwatch_like(), Instant::now());
    let text = st.encode(true);
    assert!(
        text.contains("# TYPE authwatch_dependency_requests counter\n"),
        "{text}"
    );
    assert!(
        text.contains("\nauthwatch_dependency_requests_total{"),
        "{text}"
    );
    assert!(text.contains("# TYPE target info\n"), "{text}");
    assert!(text.ends_with("# EOF\n"), "{text}");
}

/// Issue 17: a counter born with its first burst counts for nothing in `increase()`; its
/// OpenMetrics `_created` timestamp tells a Prometheus that ingests it that it started at 0.
#[tokio::test]
async fn open_metrics_carries_created_timestamps_of_counters_and_histograms() {
    let mut st = store(&Config::default());
    let start = 1_700_000_000_500_000_000u64;
    let point = |v: i64, t: u64| NumberDataPoint {
        start_time_unix_nano: start,
        ..int_point(vec![s("error.class", "server_error")], v, t)
    };
    let mut h = histogram("d", false, vec![], vec![1, 0], 0.2, start + 10);
    if let Some(metric::Data::Histogram(hist)) = &mut h.data {
        hist.data_points[0].explicit_bounds = vec![0.5];
        hist.data_points[0].start_time_unix_nano = start;
    }
    feed(
        &mut st,
        &request(
            vec![],
            vec![
                sum("errors", true, false, vec![point(40, start + 10)]),
                sum("deltas", true, true, vec![point(3, start + 10)]),
                gauge("g", "", vec![num_point(vec![], 1.0, start + 10)]),
                h,
            ],
        ),
        Instant::now(),
    );
    // Later deltas add up; the series still started when the first one did.
    feed(
        &mut st,
        &request(vec![], vec![sum("deltas", true, true, vec![point(2, start + 20)])]),
        Instant::now(),
    );
    let text = st.encode(true);
    for line in [
        r#"errors_total{error_class="server_error"} 40"#,
        r#"errors_created{error_class="server_error"} 1700000000.5"#,
        r#"deltas_total{error_class="server_error"} 5"#,
        r#"deltas_created{error_class="server_error"} 1700000000.5"#,
        "d_seconds_count 1",
        "d_seconds_created 1700000000.5",
    ] {
        assert!(text.lines().any(|l| l == line), "missing {line:?} in:\n{text}");
    }
    assert!(!text.contains("g_created"), "gauges have no created time:\n{text}");
    // The Prometheus text format has no `_created`.
    assert!(!st.encode(false).contains("_created"));
}

#[tokio::test]
async fn label_collisions_escapes_and_conflicts() {
    let mut st = store(&Config::default());
    let attrs = vec![
        s("a.b", "1"),
        s("a_b", "2"),
        s("msg", "say \"hi\"\\\n"),
        s("le", "x"),
    ];
    feed(
        &mut st,
        &request(
            vec![],
            vec![gauge("g", "", vec![num_point(attrs.clone(), 1.0, 1)])],
        ),
        Instant::now(),
    );
    let out = feed(
        &mut st,
        &request(
            vec![],
            vec![
                sum("g", false, false, vec![]),
                histogram("g", false, attrs, vec![1, 1, 1, 1], 1.0, 1),
            ],
        ),
        Instant::now(),
    );
    let text = st.encode(false);
    assert!(
        text.contains(r#"g{a_b="1;2",le="x",msg="say \"hi\"\\\n"} 1"#),
        "{text}"
    );
    // `g` stays a gauge; the histogram `g_seconds` is another family and drops its `le` attribute.
    assert!(
        text.contains(r#"g_seconds_bucket{a_b="1;2",msg="say \"hi\"\\\n",le="0.1"} 1"#),
        "{text}"
    );
    assert_eq!(out.dropped, vec![]);
    let out = feed(
        &mut st,
        &request(
            vec![],
            vec![sum("g", true, false, vec![int_point(vec![], 1, 1)])],
        ),
        Instant::now(),
    );
    assert_eq!(out.dropped, vec![]);
    let out = feed(
        &mut st,
        &request(
            vec![],
            vec![gauge("g_total", "", vec![int_point(vec![], 1, 1)])],
        ),
        Instant::now(),
    );
    assert_eq!(out.dropped, vec![(store::Dropped::TypeConflict, 1)]);
}

#[tokio::test(start_paused = true)]
async fn stale_series_expire() {
    let cfg = Config {
        metric_expiration: Duration::from_secs(60),
        ..Config::default()
    };
    let mut st = store(&cfg);
    feed(&mut st, &authwatch_like(), Instant::now());
    tokio::time::advance(Duration::from_secs(30)).await;
    feed(
        &mut st,
        &request(
            vec![],
            vec![gauge("fresh", "", vec![int_point(vec![], 1, 1)])],
        ),
        Instant::now(),
    );
    tokio::time::advance(Duration::from_secs(31)).await;
    st.expire(Instant::now());
    let text = st.encode(false);
    assert_eq!(
        text,
        "# HELP fresh fresh help\n# TYPE fresh gauge\nfresh 1\n"
    );
    tokio::time::advance(Duration::from_secs(30)).await;
    st.expire(Instant::now());
    assert_eq!(st.series_count(), 0);
    assert_eq!(st.encode(false), "");
}

#[tokio::test]
async fn no_recorded_value_removes_the_series() {
    let mut st = store(&Config::default());
    feed(
        &mut st,
        &request(vec![], vec![gauge("g", "", vec![int_point(vec![], 1, 1)])]),
        Instant::now(),
    );
    let mut p = int_point(vec![], 0, 2);
    p.flags = 1;
    feed(
        &mut st,
        &request(vec![], vec![gauge("g", "", vec![p])]),
        Instant::now(),
    );
    assert_eq!(st.series_count(), 0);
}

/// `promtool check metrics` (the Prometheus linter) accepts what the exporter writes.
#[tokio::test]
async fn promtool_accepts_the_exposition() {
    let mut st = store(&Config::default());
    feed(&mut st, &authwatch_like(), Instant::now());
    let text = st.encode(false);
    let mut child = match std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => panic!(
            "promtool is needed to check the exposition format ({e}); install the Debian package `prometheus` (scripts/test.sh does)"
        ),
    };
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics refused:\n{}{}\n--- exposition ---\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

