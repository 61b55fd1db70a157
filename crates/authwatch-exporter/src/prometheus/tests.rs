use std::time::Duration;

use authwatch_core::otlp::collector::metrics::v1::ExportMetricsServiceRequest;
use authwatch_core::otlp::common::v1::{any_value, AnyValue, KeyValue};
use authwatch_core::otlp::metrics::v1::{
    metric, number_data_point, summary_data_point, AggregationTemporality, ExponentialHistogram,
    ExponentialHistogramDataPoint, Gauge, Histogram, HistogramDataPoint, Metric, NumberDataPoint,
    ResourceMetrics, ScopeMetrics, Sum, Summary, SummaryDataPoint,
};
use authwatch_core::otlp::resource::v1::Resource as OtlpResource;
use authwatch_core::{ComponentConfig, ConsumeError, ExporterConfig, Settings, Signal, Validator};

use super::*;

const WAIT: Duration = Duration::from_secs(30);

#[test]
fn config_contract() {
    authwatch_testkit::assert_config_contract::<Config>("prometheus");
}

#[test]
fn full_config_decodes() {
    let yaml: serde_yaml::Value =
        serde_yaml::from_str(include_str!("testdata/config.yaml")).unwrap();
    let got: Config =
        authwatch_core::registry::decode_config(serde_json::to_value(yaml).unwrap()).unwrap();
    let want = Config {
        endpoint: "0.0.0.0:9464".parse().unwrap(),
        namespace: "idp".into(),
        const_labels: [
            ("env".into(), "prod".into()),
            ("region".into(), "eu_west".into()),
        ]
        .into(),
        send_timestamps: true,
        metric_expiration: Duration::from_secs(90),
        resource_to_telemetry_conversion: ResourceToTelemetryConversion { enabled: true },
        enable_open_metrics: true,
        add_metric_suffixes: false,
    };
    assert_eq!(got, want);
    let mut v = Validator::new("");
    got.validate(&mut v);
    assert!(!v.has_errors(), "{:?}", v.errors());
    assert_eq!(
        got.resources(),
        vec![Resource::Listen("0.0.0.0:9464".parse().unwrap())]
    );
}

#[test]
fn invalid_configs() {
    let cases: serde_yaml::Mapping =
        serde_yaml::from_str(include_str!("testdata/invalid.yaml")).unwrap();
    assert!(!cases.is_empty());
    for (name, case) in cases {
        let value = serde_json::to_value(&case["config"]).unwrap();
        let want: Vec<String> = serde_yaml::from_value(case["errors"].clone()).unwrap();
        let got: Vec<String> = match authwatch_core::registry::decode_config::<Config>(value) {
            Err(e) => vec![e.to_string()],
            Ok(c) => {
                let mut v = Validator::new("");
                c.validate(&mut v);
                v.errors().iter().map(|e| e.to_string()).collect()
            }
        };
        assert_eq!(got, want, "case {name:?}");
    }
}

// === fixtures ===

fn s(k: &str, v: &str) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(v.into())),
        }),
        ..Default::default()
    }
}

fn num_point(attrs: Vec<KeyValue>, v: f64, t: u64) -> NumberDataPoint {
    NumberDataPoint {
        attributes: attrs,
        time_unix_nano: t,
        value: Some(number_data_point::Value::AsDouble(v)),
        ..Default::default()
    }
}

fn int_point(attrs: Vec<KeyValue>, v: i64, t: u64) -> NumberDataPoint {
    NumberDataPoint {
        attributes: attrs,
        time_unix_nano: t,
        value: Some(number_data_point::Value::AsInt(v)),
        ..Default::default()
    }
}

fn gauge(name: &str, unit: &str, points: Vec<NumberDataPoint>) -> Metric {
    Metric {
        name: name.into(),
        unit: unit.into(),
        description: format!("{name} help"),
        data: Some(metric::Data::Gauge(Gauge {
            data_points: points,
        })),
        ..Default::default()
    }
}

fn sum(name: &str, monotonic: bool, delta: bool, points: Vec<NumberDataPoint>) -> Metric {
    let t = if delta {
        AggregationTemporality::Delta
    } else {
        AggregationTemporality::Cumulative
    };
    Metric {
        name: name.into(),
        unit: "{request}".into(),
        description: format!("{name} help"),
        data: Some(metric::Data::Sum(Sum {
            data_points: points,
            aggregation_temporality: t as i32,
            is_monotonic: monotonic,
        })),
        ..Default::default()
    }
}

fn histogram(
    name: &str,
    delta: bool,
    attrs: Vec<KeyValue>,
    counts: Vec<u64>,
    sum: f64,
    t: u64,
) -> Metric {
    let temporality = if delta {
        AggregationTemporality::Delta
    } else {
        AggregationTemporality::Cumulative
    };
    Metric {
        name: name.into(),
        unit: "s".into(),
        description: format!("{name} help"),
        data: Some(metric::Data::Histogram(Histogram {
            data_points: vec![HistogramDataPoint {
                attributes: attrs,
                time_unix_nano: t,
                count: counts.iter().sum(),
                sum: Some(sum),
                bucket_counts: counts,
                explicit_bounds: vec![0.1, 0.5, 1.0],
                ..Default::default()
            }],
            aggregation_temporality: temporality as i32,
        })),
        ..Default::default()
    }
}

fn request(resource: Vec<KeyValue>, metrics: Vec<Metric>) -> ExportMetricsServiceRequest {
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(OtlpResource {
                attributes: resource,
                ..Default::default()
            }),
            scope_metrics: vec![ScopeMetrics {
                metrics,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

fn authwatch_like() -> ExportMetricsServiceRequest {
    request(
        vec![
            s("service.name", "authwatch"),
            s("service.instance.id", "sidecar-1"),
            s("host.name", "node-7"),
        ],
        vec![
            gauge(
                "authwatch.probe.success",
                "1",
                vec![int_point(vec![s("synthetic.check", "login")], 1, 10)],
            ),
            gauge(
                "authwatch.dependency.error_ratio",
                "1",
                vec![num_point(
                    vec![s("dependency", "auth0"), s("window", "5m")],
                    0.25,
                    10,
                )],
            ),
            gauge(
                "authwatch.ratelimit.reset",
                "s",
                vec![int_point(vec![], 1_700_000_000, 10)],
            ),
            sum(
                "authwatch.dependency.requests",
                true,
                false,
                vec![int_point(
                    vec![
                        s("dependency", "auth0"),
                        s("error.class", "server_error"),
                        s("endpoint", "/oauth/token"),
                    ],
                    7,
                    10,
                )],
            ),
            sum("queue.items", false, false, vec![int_point(vec![], 3, 10)]),
            histogram(
                "authwatch.probe.phase.duration",
                false,
                vec![s("phase", "dns"), s("synthetic.check", "login")],
                vec![1, 2, 0, 1],
                1.9,
                10,
            ),
            Metric {
                name: "rpc.latency".into(),
                unit: "s".into(),
                data: Some(metric::Data::Summary(Summary {
                    data_points: vec![SummaryDataPoint {
                        count: 4,
                        sum: 10.0,
                        quantile_values: vec![
                            summary_data_point::ValueAtQuantile {
                                quantile: 0.5,
                                value: 2.0,
                            },
                            summary_data_point::ValueAtQuantile {
                                quantile: 0.99,
                                value: 5.5,
                            },
                        ],
                        time_unix_nano: 10,
                        ..Default::default()
                    }],
                })),
                ..Default::default()
            },
            Metric {
                name: "exp.hist".into(),
                data: Some(metric::Data::ExponentialHistogram(ExponentialHistogram {
                    data_points: vec![ExponentialHistogramDataPoint::default()],
                    aggregation_temporality: 2,
                })),
                ..Default::default()
            },
        ],
    )
}

fn store(cfg: &Config) -> Store {
    Store::new(cfg.options())
}

fn feed(st: &mut Store, req: &ExportMetricsServiceRequest, now: Instant) -> store::Outcome {
    let mut total = store::Outcome::default();
    for rm in &req.resource_metrics {
        let metrics: Vec<_> = rm.scope_metrics.iter().flat_map(|s| &s.metrics).collect();
        let o = st.accept(rm.resource.as_ref(), &metrics, now);
        total.stored += o.stored;
        total.dropped.extend(o.dropped);
    }
    total
}

// === translation ===

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

// === the running exporter ===

fn local() -> Config {
    Config {
        endpoint: "127.0.0.1:0".parse().unwrap(),
        enable_open_metrics: true,
        ..Config::default()
    }
}

#[tokio::test]
async fn serves_metrics_over_http_and_shuts_down() {
    let settings = Settings::new("prometheus".parse().unwrap());
    let (addr, built) = local().bind(settings.clone()).await.unwrap();
    let task = tokio::spawn(built.task.unwrap());
    built
        .consumer
        .consume(Signal::Metrics(authwatch_like()))
        .await
        .unwrap();

    let client = reqwest::Client::new();
    let resp = client
        .get(format!("http://{addr}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], TEXT);
    let text = resp.text().await.unwrap();
    assert!(text.contains("authwatch_probe_success_ratio{"), "{text}");

    let resp = client
        .get(format!("http://{addr}/metrics"))
        .header(
            "accept",
            "application/openmetrics-text;version=1.0.0,text/plain;q=0.5",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["content-type"], OPEN_METRICS);
    assert!(resp.text().await.unwrap().ends_with("# EOF\n"));

    let self_metrics = settings.telemetry.encode();
    assert!(
        self_metrics.contains(r#"authwatch_exporter_prometheus_dropped_points_total{exporter="prometheus",reason="exponential_histogram"} 1"#),
        "{self_metrics}"
    );
    assert!(
        self_metrics
            .contains(r#"authwatch_exporter_sent_metric_points_total{exporter="prometheus"} 8"#),
        "{self_metrics}"
    );

    settings.shutdown.cancel();
    tokio::time::timeout(WAIT, task)
        .await
        .expect("stops")
        .unwrap()
        .unwrap();
    assert!(matches!(
        built
            .consumer
            .consume(Signal::Metrics(authwatch_like()))
            .await,
        Err(ConsumeError::Closed)
    ));
    assert!(client
        .get(format!("http://{addr}/metrics"))
        .send()
        .await
        .is_err());
}

#[tokio::test]
async fn a_taken_port_fails_the_build() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let cfg = Config {
        endpoint: ListenAddr(taken.local_addr().unwrap()),
        ..Config::default()
    };
    let err = match cfg
        .build(Settings::new("prometheus".parse().unwrap()))
        .await
    {
        Err(e) => e,
        Ok(_) => panic!("binding a taken port must fail"),
    };
    assert!(matches!(err, BuildError::Bind { .. }), "{err}");
    assert!(err.to_string().contains("cannot listen on"), "{err}");
}
