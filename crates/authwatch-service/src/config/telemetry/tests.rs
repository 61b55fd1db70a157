use super::*;
use crate::config::{ConfigSource, Loaded};
use crate::load;

/// Loads a config whose `service.telemetry` is `telemetry` (YAML flow style), with stand-in
/// components.
fn load_telemetry(telemetry: &str) -> Result<Loaded, Vec<String>> {
    let yaml = format!(
        "receivers: {{test_receiver: {{}}}}\n\
         exporters: {{test_exporter: {{}}}}\n\
         service: {{pipelines: {{traces: {{receivers: [test_receiver], exporters: [test_exporter]}}}}, telemetry: {telemetry}}}\n"
    );
    let src = ConfigSource::Embedded {
        name: "test".into(),
        text: yaml,
    };
    load(&[src], &authwatch_testkit::components::factories(), &|_| {
        None
    })
    .map_err(|e| e.errors.iter().map(|e| e.to_string()).collect())
}

fn metrics(telemetry: &str) -> MetricsConfig {
    load_telemetry(telemetry)
        .unwrap_or_else(|e| panic!("{telemetry}: {e:?}"))
        .service
        .telemetry
        .metrics
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

#[test]
fn default_is_one_pull_reader_on_8888() {
    let m = metrics("{}");
    assert_eq!(m, MetricsConfig::default());
    assert_eq!(
        m.pull_readers(),
        vec![(
            "service::telemetry::metrics::address".to_owned(),
            addr("127.0.0.1:8888")
        )]
    );
    assert_eq!(m.periodic_readers().count(), 0);
}

#[test]
fn address_is_the_older_form_of_one_pull_reader() {
    let m = metrics("{metrics: {address: '0.0.0.0:9999'}}");
    assert_eq!(m.address, Some(ListenAddr(addr("0.0.0.0:9999"))));
    assert!(m.readers.is_empty());
    assert_eq!(
        m.pull_readers(),
        vec![(
            "service::telemetry::metrics::address".to_owned(),
            addr("0.0.0.0:9999")
        )]
    );
}

#[test]
fn readers_decode_as_written() {
    let m = metrics(
        "{metrics: {level: detailed, readers: [
            {pull: {exporter: {prometheus: {host: localhost, port: 9464}}}},
            {periodic: {interval: 10s, timeout: 5s, exporter: {otlp: {protocol: grpc, endpoint: 'http://collector:4317', headers: {X-Api-Key: k}}}}},
            {periodic: {exporter: {otlp: {endpoint: 'https://otlp.example.com'}}}}
        ]}}",
    );
    let expected = MetricsConfig {
        level: MetricsLevel::Detailed,
        address: None,
        readers: vec![
            MetricReaderConfig::Pull(PullReaderConfig {
                exporter: PullExporterConfig::Prometheus(PrometheusPullConfig {
                    host: ListenHost(IpAddr::V4(Ipv4Addr::LOCALHOST)),
                    port: 9464,
                }),
            }),
            MetricReaderConfig::Periodic(PeriodicReaderConfig {
                interval: Duration::from_secs(10),
                timeout: Duration::from_secs(5),
                exporter: PushExporterConfig::Otlp(OtlpExporterConfig {
                    protocol: OtlpProtocol::Grpc,
                    endpoint: "http://collector:4317".parse().unwrap(),
                    headers: [(
                        serde_json::from_value(serde_json::json!("x-api-key")).unwrap(),
                        Secret::new("k"),
                    )]
                    .into_iter()
                    .collect(),
                }),
            }),
            MetricReaderConfig::Periodic(PeriodicReaderConfig {
                interval: Duration::from_secs(60),
                timeout: Duration::from_secs(30),
                exporter: PushExporterConfig::Otlp(OtlpExporterConfig {
                    protocol: OtlpProtocol::HttpProtobuf,
                    endpoint: "https://otlp.example.com".parse().unwrap(),
                    headers: IndexMap::new(),
                }),
            }),
        ],
    };
    assert_eq!(m, expected);
    assert_eq!(
        m.pull_readers(),
        vec![(
            "service::telemetry::metrics::readers::0::pull".to_owned(),
            addr("127.0.0.1:9464")
        )]
    );
    assert_eq!(m.periodic_readers().count(), 2);
}

#[test]
fn readers_without_a_pull_reader_serve_no_metrics_endpoint() {
    let m = metrics(
        "{metrics: {readers: [{periodic: {exporter: {otlp: {endpoint: 'http://c:4318'}}}}]}}",
    );
    assert!(m.pull_readers().is_empty());
    assert_eq!(m.periodic_readers().count(), 1);
}

#[test]
fn level_none_turns_every_reader_off() {
    let m = metrics(
        "{metrics: {level: none, readers: [{pull: {exporter: {prometheus: {}}}}, {periodic: {exporter: {otlp: {endpoint: 'http://c:4318'}}}}]}}",
    );
    assert!(m.pull_readers().is_empty());
    assert_eq!(m.periodic_readers().count(), 0);
}

#[test]
fn resource_and_log_processors_decode() {
    let t = load_telemetry(
        "{resource: {deployment.environment: prod, service.version: null},
          logs: {level: debug, encoding: json, processors: [{batch: {schedule_delay: 200ms, exporter: {otlp: {protocol: grpc, endpoint: 'http://c:4317'}}}}]}}",
    )
    .unwrap()
    .service
    .telemetry;
    assert_eq!(
        t.resource.get("deployment.environment"),
        Some(&Some("prod".to_owned()))
    );
    assert_eq!(t.resource.get("service.version"), Some(&None));
    assert_eq!(t.logs.level, "debug");
    assert_eq!(t.logs.encoding, LogEncoding::Json);
    let [LogProcessorConfig::Batch(b)] = t.logs.processors.as_slice() else {
        panic!("one batch processor: {:?}", t.logs.processors);
    };
    assert_eq!(b.schedule_delay, Duration::from_millis(200));
    assert_eq!(b.export_timeout, Duration::from_secs(30));
    assert_eq!(b.max_queue_size, 2048);
    let PushExporterConfig::Otlp(o) = &b.exporter;
    assert_eq!(o.protocol, OtlpProtocol::Grpc);
}

/// (name, `service.telemetry`, the one expected error line)
const INVALID: &[(&str, &str, &str)] = &[
    (
        "address and readers",
        "{metrics: {address: '127.0.0.1:8888', readers: []}}",
        "service::telemetry::metrics: `address` and `readers` cannot both be set: `address` is the older way to write one `pull` reader; list it under `readers` instead (`- pull: { exporter: { prometheus: { host: ..., port: ... } } }`), or write `address: null` where an earlier config file sets it",
    ),
    (
        "unknown reader",
        "{metrics: {readers: [{push: {}}]}}",
        "service::telemetry::metrics::readers::0: unknown variant `push`, expected `pull` or `periodic`",
    ),
    (
        "unknown pull exporter",
        "{metrics: {readers: [{pull: {exporter: {otlp: {}}}}]}}",
        "service::telemetry::metrics::readers::0::pull::exporter: unknown variant `otlp`, expected `prometheus`",
    ),
    (
        "unknown periodic exporter",
        "{metrics: {readers: [{periodic: {exporter: {console: {}}}}]}}",
        "service::telemetry::metrics::readers::0::periodic::exporter: unknown variant `console`, expected `otlp`",
    ),
    (
        "typo in a reader",
        "{metrics: {readers: [{periodic: {intervall: 5s, exporter: {otlp: {endpoint: 'http://c:4317'}}}}]}}",
        "service::telemetry::metrics::readers::0::periodic::intervall: unknown field `intervall`, expected one of `interval`, `timeout`, `exporter`",
    ),
    (
        "endpoint without a scheme",
        "{metrics: {readers: [{periodic: {exporter: {otlp: {endpoint: 'collector:4317'}}}}]}}",
        "service::telemetry::metrics::readers::0::periodic::exporter::otlp::endpoint: invalid endpoint `collector:4317`: write a URL starting with http:// or https://, e.g. http://collector:4317",
    ),
    (
        "credentials in the endpoint",
        "{metrics: {readers: [{periodic: {exporter: {otlp: {endpoint: 'https://user:pw@c:4318'}}}}]}}",
        "service::telemetry::metrics::readers::0::periodic::exporter::otlp::endpoint: invalid endpoint: credentials in the URL are not supported; send them in `headers`",
    ),
    (
        "unknown protocol",
        "{metrics: {readers: [{periodic: {exporter: {otlp: {protocol: http/json, endpoint: 'http://c:4318'}}}}]}}",
        "service::telemetry::metrics::readers::0::periodic::exporter::otlp::protocol: unknown variant `http/json`, expected `grpc` or `http/protobuf`",
    ),
    (
        "zero interval",
        "{metrics: {readers: [{periodic: {interval: 0s, exporter: {otlp: {endpoint: 'http://c:4317'}}}}]}}",
        "service::telemetry::metrics::readers::0::periodic::interval: must be more than zero",
    ),
    (
        "bad pull host",
        "{metrics: {readers: [{pull: {exporter: {prometheus: {host: example.com}}}}]}}",
        "service::telemetry::metrics::readers::0::pull::exporter::prometheus::host: invalid host `example.com`: write an IP address or `localhost`",
    ),
    (
        "unknown log processor",
        "{logs: {processors: [{simple: {}}]}}",
        "service::telemetry::logs::processors::0: unknown variant `simple`, expected `batch`",
    ),
    (
        "log processor without an exporter",
        "{logs: {processors: [{batch: {}}]}}",
        "service::telemetry::logs::processors::0::batch: missing field `exporter`",
    ),
];

#[test]
fn invalid_telemetry_configs_name_their_path() {
    for (name, telemetry, expected) in INVALID {
        let errors = match load_telemetry(telemetry) {
            Ok(_) => panic!("{name}: loaded"),
            Err(e) => e,
        };
        assert_eq!(errors, vec![expected.to_string()], "{name}");
    }
}

#[test]
fn two_pull_readers_on_one_port_conflict() {
    let errors = load_telemetry(
        "{metrics: {readers: [{pull: {exporter: {prometheus: {port: 9000}}}}, {pull: {exporter: {prometheus: {host: 127.0.0.1, port: 9000}}}}]}}",
    )
    .err()
    .unwrap();
    assert_eq!(
        errors,
        vec!["service::telemetry::metrics::readers::1::pull: listen address 127.0.0.1:9000 is also claimed by service::telemetry::metrics::readers::0::pull"]
    );
}

#[test]
fn print_config_shows_the_effective_form_and_redacts_headers() {
    let l = load_telemetry(
        "{metrics: {readers: [{periodic: {exporter: {otlp: {endpoint: 'http://c:4318', headers: {authorization: 'Bearer sk-live-123'}}}}}]}}",
    )
    .unwrap();
    let y = l.to_yaml();
    assert!(!y.contains("sk-live-123"), "{y}");
    assert!(y.contains("authorization: '[REDACTED]'"), "{y}");
    assert!(!y.contains("address:"), "{y}");
    // What print-config prints loads again.
    let again: TelemetryConfig =
        serde_yaml::from_value(serde_yaml::to_value(&l.service.telemetry).unwrap()).unwrap();
    assert_eq!(again.metrics.readers.len(), 1);

    let y = load_telemetry("{}").unwrap().to_yaml();
    assert!(y.contains("address: 127.0.0.1:8888"), "{y}");
}

#[test]
fn http_urls_get_the_signal_path_only_when_they_have_none() {
    let base: OtlpEndpoint = "http://c:4318".parse().unwrap();
    assert_eq!(base.http_url("/v1/metrics"), "http://c:4318/v1/metrics");
    let slash: OtlpEndpoint = "http://c:4318/".parse().unwrap();
    assert_eq!(slash.http_url("/v1/logs"), "http://c:4318/v1/logs");
    let full: OtlpEndpoint = "https://c/otlp/v1/metrics".parse().unwrap();
    assert_eq!(full.http_url("/v1/metrics"), "https://c/otlp/v1/metrics");
}

/// On top of a file that sets `address` (configs/default.yaml does), an overlay switches to
/// `readers` by writing `address: null`.
#[test]
fn an_overlay_replaces_address_with_readers() {
    let base = "receivers: {test_receiver: {}}\n\
                exporters: {test_exporter: {}}\n\
                service: {pipelines: {traces: {receivers: [test_receiver], exporters: [test_exporter]}}, telemetry: {metrics: {address: '127.0.0.1:8888'}}}\n";
    let overlay = "service: {telemetry: {metrics: {address: null, readers: [{pull: {exporter: {prometheus: {port: 9000}}}}]}}}\n";
    let sources = [base, overlay].map(|text| ConfigSource::Embedded {
        name: "test".into(),
        text: text.into(),
    });
    let l = load(
        &sources,
        &authwatch_testkit::components::factories(),
        &|_| None,
    )
    .unwrap();
    assert_eq!(
        l.service.telemetry.metrics.pull_readers(),
        vec![(
            "service::telemetry::metrics::readers::0::pull".to_owned(),
            addr("127.0.0.1:9000")
        )]
    );
}
