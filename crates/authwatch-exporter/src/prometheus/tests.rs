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

pub(super) const WAIT: Duration = Duration::from_secs(30);

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
        read_header_timeout: Duration::from_secs(5),
        read_timeout: Duration::from_secs(20),
        idle_timeout: Duration::from_secs(120),
        max_connections: Positive(64),
        tls: Some(TlsServerConfig {
            cert_file: "/etc/authwatch/server.crt".into(),
            key_file: "/etc/authwatch/server.key".into(),
            client_ca_file: None,
        }),
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

pub(super) fn s(k: &str, v: &str) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(v.into())),
        }),
        ..Default::default()
    }
}

pub(super) fn num_point(attrs: Vec<KeyValue>, v: f64, t: u64) -> NumberDataPoint {
    NumberDataPoint {
        attributes: attrs,
        time_unix_nano: t,
        value: Some(number_data_point::Value::AsDouble(v)),
        ..Default::default()
    }
}

pub(super) fn int_point(attrs: Vec<KeyValue>, v: i64, t: u64) -> NumberDataPoint {
    NumberDataPoint {
        attributes: attrs,
        time_unix_nano: t,
        value: Some(number_data_point::Value::AsInt(v)),
        ..Default::default()
    }
}

pub(super) fn gauge(name: &str, unit: &str, points: Vec<NumberDataPoint>) -> Metric {
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

pub(super) fn sum(name: &str, monotonic: bool, delta: bool, points: Vec<NumberDataPoint>) -> Metric {
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

pub(super) fn histogram(
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

pub(super) fn request(resource: Vec<KeyValue>, metrics: Vec<Metric>) -> ExportMetricsServiceRequest {
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

pub(super) fn authwatch_like() -> ExportMetricsServiceRequest {
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

pub(super) fn store(cfg: &Config) -> Store {
    Store::new(cfg.options())
}

pub(super) fn feed(st: &mut Store, req: &ExportMetricsServiceRequest, now: Instant) -> store::Outcome {
    let mut total = store::Outcome::default();
    for rm in &req.resource_metrics {
        let metrics: Vec<_> = rm.scope_metrics.iter().flat_map(|s| &s.metrics).collect();
        let o = st.accept(rm.resource.as_ref(), &metrics, now);
        total.stored += o.stored;
        total.dropped.extend(o.dropped);
    }
    total
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

#[tokio::test]
async fn slow_and_idle_scrapers_are_cut_off() {
    let cfg = Config {
        read_header_timeout: Duration::from_millis(300),
        idle_timeout: Duration::from_millis(300),
        ..local()
    };
    let settings = Settings::new("prometheus".parse().unwrap());
    let (addr, built) = cfg.bind(settings.clone()).await.unwrap();
    let task = tokio::spawn(built.task.unwrap());
    authwatch_testkit::slow_client::assert_slow_head_is_cut_off(addr, WAIT).await;
    let status =
        authwatch_testkit::slow_client::assert_idle_connection_is_closed(addr, "/metrics", WAIT)
            .await;
    assert_eq!(status, 200);
    settings.shutdown.cancel();
    tokio::time::timeout(WAIT, task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn serves_https_with_tls() {
    let pki = authwatch_testkit::tls::TestPki::new("prometheus");
    let cfg = Config {
        tls: Some(pki.server_config(false)),
        ..local()
    };
    let settings = Settings::new("prometheus".parse().unwrap());
    let (addr, built) = cfg.bind(settings.clone()).await.unwrap();
    let task = tokio::spawn(built.task.unwrap());
    let client = authwatch_net::http_client(
        WAIT,
        &authwatch_net::TlsClientConfig {
            ca_file: Some(pki.ca_file.clone()),
            ..Default::default()
        },
    )
    .unwrap();
    let res = client
        .get(format!("https://localhost:{}/metrics", addr.port()))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let plain = client.get(format!("http://{addr}/metrics")).send().await;
    assert!(plain.is_err(), "plaintext must get no answer: {plain:?}");
    settings.shutdown.cancel();
    tokio::time::timeout(WAIT, task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn a_missing_certificate_fails_the_build_naming_it() {
    let cfg = Config {
        tls: Some(TlsServerConfig {
            cert_file: "/nonexistent/authwatch.crt".into(),
            key_file: "/nonexistent/authwatch.key".into(),
            client_ca_file: None,
        }),
        ..local()
    };
    let err = match cfg.bind(Settings::new("prometheus".parse().unwrap())).await {
        Err(e) => e.to_string(),
        Ok(_) => panic!("a missing certificate must fail the build"),
    };
    assert!(
        err.contains("tls::cert_file: cannot read `/nonexistent/authwatch.crt`"),
        "{err}"
    );
}
