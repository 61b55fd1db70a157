use std::time::Duration;

use authwatch_core::config::Secret;
use authwatch_core::health::ComponentStatus;
use authwatch_core::{ConsumeError, ExporterConfig, SignalKind};
use authwatch_testkit::otlp_server::{Encoding as WireEncoding, OtlpServer, Reply, Transport};
use authwatch_testkit::{log_signal, logs, metric_signal, metrics, trace_signal, traces};

use super::*;
use crate::helper::tests::fixtures::*;
use crate::helper::tests::metric;

const WAIT: Duration = Duration::from_secs(30);

fn config(server: &OtlpServer) -> Config {
    Config {
        endpoint: HttpUrl::new(server.http_endpoint()).unwrap(),
        sending_queue: one_worker(100),
        retry_on_failure: fast_retry(),
        ..Config::default()
    }
}

#[test]
fn config_contract() {
    authwatch_testkit::assert_config_decodes::<Config>("otlphttp");
    assert_eq!(Config::ALIASES, &["otlp_http"]);
}

#[test]
fn full_config_decodes() {
    let yaml: serde_yaml::Value =
        serde_yaml::from_str(include_str!("testdata/config.yaml")).unwrap();
    let got: Config =
        authwatch_core::registry::decode_config(serde_json::to_value(yaml).unwrap()).unwrap();
    let want = Config {
        endpoint: HttpUrl::new("https://api.honeycomb.io").unwrap(),
        traces_endpoint: None,
        metrics_endpoint: None,
        logs_endpoint: Some(HttpUrl::new("https://logs.example.com/ingest").unwrap()),
        encoding: Encoding::Json,
        compression: Compression::None,
        headers: [("x-honeycomb-team".to_owned(), Secret::new("s3cret"))].into(),
        timeout: Duration::from_secs(10),
        tls: TlsClientConfig {
            ca_file: Some("/etc/ssl/ca.pem".into()),
            ..TlsClientConfig::default()
        },
        sending_queue: QueueConfig {
            enabled: false,
            ..QueueConfig::default()
        },
        retry_on_failure: RetryConfig {
            enabled: false,
            ..RetryConfig::default()
        },
    };
    assert_eq!(got, want);
    assert_eq!(
        got.signal_urls(),
        [
            "https://api.honeycomb.io/v1/traces".to_owned(),
            "https://api.honeycomb.io/v1/metrics".to_owned(),
            "https://logs.example.com/ingest".to_owned(),
        ]
    );
    assert!(!serde_json::to_string(&got).unwrap().contains("s3cret"));
}

#[test]
fn invalid_configs() {
    check_invalid_cases::<Config>(include_str!("testdata/invalid.yaml"));
}

#[test]
fn base_paths_are_kept() {
    let cfg = Config {
        endpoint: HttpUrl::new("http://gw:4318/otlp/").unwrap(),
        ..Config::default()
    };
    assert_eq!(cfg.signal_urls()[1], "http://gw:4318/otlp/v1/metrics");
}

#[test]
fn statuses_are_classified_per_the_otlp_spec() {
    let status = |code: u16, retry_after: Option<u64>| HttpError::Status {
        url: "u".into(),
        status: StatusCode::from_u16(code).unwrap(),
        retry_after: retry_after.map(Duration::from_secs),
        message: String::new(),
    };
    for code in [429, 502, 503, 504] {
        assert_eq!(status(code, None).retry(), Retry::Yes, "{code}");
    }
    assert_eq!(
        status(503, Some(4)).retry(),
        Retry::After(Duration::from_secs(4))
    );
    for code in [400, 401, 403, 404, 413, 500, 501] {
        assert_eq!(status(code, None).retry(), Retry::No, "{code}");
    }
    let transport = HttpError::Transport {
        url: "u".into(),
        source: reqwest::Client::new().get("no url").build().unwrap_err(),
    };
    assert_eq!(transport.retry(), Retry::Yes);
}

async fn send_all_signals(encoding: Encoding, compression: Compression) {
    let server = OtlpServer::start().await;
    let s = settings("otlphttp");
    let cfg = Config {
        encoding,
        compression,
        ..config(&server)
    };
    let built = cfg.build(s.clone()).await.unwrap();
    let task = tokio::spawn(built.task.unwrap());
    built.consumer.consume(trace_signal(0, 5)).await.unwrap();
    built.consumer.consume(metric_signal(0, 4)).await.unwrap();
    built.consumer.consume(log_signal(0, 3)).await.unwrap();
    built.consumer.consume(trace_signal(5, 2)).await.unwrap();
    server.wait_for_items(SignalKind::Traces, 7, WAIT).await;
    server.wait_for_items(SignalKind::Metrics, 4, WAIT).await;
    server.wait_for_items(SignalKind::Logs, 3, WAIT).await;
    assert_eq!(server.traces(), vec![traces(0, 5), traces(5, 2)]);
    assert_eq!(server.metrics(), vec![metrics(0, 4)]);
    assert_eq!(server.logs(), vec![logs(0, 3)]);
    let wire = match encoding {
        Encoding::Proto => WireEncoding::Protobuf,
        Encoding::Json => WireEncoding::Json,
    };
    for r in server.received() {
        assert_eq!(r.transport, Transport::Http);
        assert_eq!(r.encoding, wire);
        assert_eq!(r.compressed, compression == Compression::Gzip);
    }
    s.shutdown.cancel();
    tokio::time::timeout(WAIT, task).await.unwrap().unwrap().unwrap();
    let t = &s.telemetry;
    assert_eq!(metric(t, "exporter_sent_spans_total", "otlphttp"), 7);
    assert_eq!(metric(t, "exporter_sent_metric_points_total", "otlphttp"), 4);
    assert_eq!(metric(t, "exporter_sent_log_records_total", "otlphttp"), 3);
}

#[tokio::test]
async fn all_signals_arrive_exactly_proto_gzip() {
    send_all_signals(Encoding::Proto, Compression::Gzip).await;
}

#[tokio::test]
async fn all_signals_arrive_exactly_proto_uncompressed() {
    send_all_signals(Encoding::Proto, Compression::None).await;
}

#[tokio::test]
async fn all_signals_arrive_exactly_json_gzip() {
    send_all_signals(Encoding::Json, Compression::Gzip).await;
}

#[tokio::test]
async fn all_signals_arrive_exactly_json_uncompressed() {
    send_all_signals(Encoding::Json, Compression::None).await;
}

#[tokio::test]
async fn headers_and_signal_endpoints() {
    let server = OtlpServer::start().await;
    let s = settings("otlphttp");
    let cfg = Config {
        // The base URL is wrong on purpose: every signal has its own URL.
        endpoint: HttpUrl::new("http://127.0.0.1:9/nowhere").unwrap(),
        traces_endpoint: Some(HttpUrl::new(format!("{}/v1/traces", server.http_endpoint())).unwrap()),
        metrics_endpoint: Some(HttpUrl::new(format!("{}/v1/metrics", server.http_endpoint())).unwrap()),
        logs_endpoint: Some(HttpUrl::new(format!("{}/v1/logs", server.http_endpoint())).unwrap()),
        headers: [("X-Honeycomb-Team".to_owned(), Secret::new("team-key"))].into(),
        sending_queue: no_queue(),
        ..config(&server)
    };
    let built = cfg.build(s).await.unwrap();
    built.consumer.consume(trace_signal(0, 1)).await.unwrap();
    built.consumer.consume(metric_signal(0, 1)).await.unwrap();
    built.consumer.consume(log_signal(0, 1)).await.unwrap();
    let got = server.received();
    assert_eq!(got.len(), 3);
    for r in got {
        assert_eq!(r.header("x-honeycomb-team"), Some("team-key"));
        assert!(r.header("user-agent").is_some_and(|u| u.starts_with("authwatch/")));
    }
}

#[tokio::test]
async fn service_unavailable_is_retried_then_delivered_once() {
    let server = OtlpServer::start().await;
    server.respond_next(2, Reply::Unavailable);
    let s = settings("otlphttp");
    let built = config(&server).build(s.clone()).await.unwrap();
    let task = tokio::spawn(built.task.unwrap());
    built.consumer.consume(metric_signal(0, 6)).await.unwrap();
    server.wait_for_items(SignalKind::Metrics, 6, WAIT).await;
    s.shutdown.cancel();
    tokio::time::timeout(WAIT, task).await.unwrap().unwrap().unwrap();
    assert_eq!(server.request_count(), 3);
    assert_eq!(server.metrics(), vec![metrics(0, 6)]);
    assert_eq!(metric(&s.telemetry, "exporter_sent_metric_points_total", "otlphttp"), 6);
    assert_eq!(
        s.health.snapshot().components.get("otlphttp"),
        Some(&ComponentStatus::Ok)
    );
}

#[tokio::test]
async fn bad_request_is_permanent_and_counted() {
    let server = OtlpServer::start().await;
    server.set_response(Reply::InvalidArgument);
    let s = settings("otlphttp");
    let built = config(&server).build(s.clone()).await.unwrap();
    built.consumer.consume(log_signal(0, 4)).await.unwrap();
    shut_down(&s, built.task).await;
    assert_eq!(server.request_count(), 1, "permanent errors are not retried");
    assert_eq!(metric(&s.telemetry, "exporter_send_failed_log_records_total", "otlphttp"), 4);
    assert_eq!(metric(&s.telemetry, "exporter_sent_log_records_total", "otlphttp"), 0);
    match s.health.snapshot().components.get("otlphttp") {
        Some(ComponentStatus::RecoverableError(m)) => {
            assert!(m.contains("HTTP 400 Bad Request: test server refuses this data"), "{m}")
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn retry_after_is_honoured() {
    let server = OtlpServer::start().await;
    server.respond_next(1, Reply::Throttled(Duration::from_secs(1)));
    let s = settings("otlphttp");
    let cfg = Config {
        sending_queue: no_queue(),
        ..config(&server)
    };
    let built = cfg.build(s).await.unwrap();
    built.consumer.consume(trace_signal(0, 2)).await.unwrap();
    let got = server.received();
    assert_eq!(got.len(), 2);
    // The backoff alone would wait about 20ms.
    assert!(got[1].at - got[0].at >= Duration::from_secs(1));
    assert_eq!(server.traces(), vec![traces(0, 2)]);
}

#[tokio::test]
async fn partial_success_is_decoded_in_both_encodings() {
    for encoding in [Encoding::Proto, Encoding::Json] {
        let server = OtlpServer::start().await;
        server.set_response(Reply::PartialSuccess {
            rejected: 1,
            message: "one record too large".into(),
        });
        let s = settings("otlphttp");
        let cfg = Config {
            encoding,
            sending_queue: no_queue(),
            ..config(&server)
        };
        let built = cfg.build(s.clone()).await.unwrap();
        built.consumer.consume(log_signal(0, 3)).await.unwrap();
        let t = &s.telemetry;
        assert_eq!(metric(t, "exporter_sent_log_records_total", "otlphttp"), 2, "{encoding:?}");
        assert_eq!(metric(t, "exporter_send_failed_log_records_total", "otlphttp"), 1, "{encoding:?}");
    }
}

#[tokio::test]
async fn backend_down_at_start_then_full_queue_then_everything_arrives() {
    let server = OtlpServer::start_stopped().await;
    let s = settings("otlphttp");
    let cfg = Config {
        sending_queue: one_worker(2),
        ..config(&server)
    };
    let built = cfg.build(s.clone()).await.unwrap();
    let task = tokio::spawn(built.task.unwrap());
    let mut accepted = Vec::new();
    let mut refused = 0;
    for i in 0..10 {
        match built.consumer.consume(log_signal(i * 10, 2)).await {
            Ok(()) => accepted.push(logs(i * 10, 2)),
            Err(ConsumeError::Full) => refused += 1,
            Err(e) => panic!("unexpected {e}"),
        }
    }
    assert!((2..=3).contains(&accepted.len()), "{}", accepted.len());
    assert_eq!(refused, 10 - accepted.len());
    assert_eq!(
        metric(&s.telemetry, "exporter_enqueue_failed_log_records_total", "otlphttp"),
        2 * refused as u64
    );
    server.restart().await;
    server
        .wait_for_items(SignalKind::Logs, 2 * accepted.len(), WAIT)
        .await;
    assert_eq!(server.logs(), accepted);
    s.shutdown.cancel();
    tokio::time::timeout(WAIT, task).await.unwrap().unwrap().unwrap();
}

#[tokio::test]
async fn shutdown_drains_the_queue_while_retrying() {
    let server = OtlpServer::start_stopped().await;
    let s = settings("otlphttp");
    let built = config(&server).build(s.clone()).await.unwrap();
    let task = tokio::spawn(built.task.unwrap());
    for i in 0..5 {
        built.consumer.consume(trace_signal(i, 1)).await.unwrap();
    }
    s.shutdown.cancel();
    assert_eq!(
        built.consumer.consume(trace_signal(99, 1)).await,
        Err(ConsumeError::Closed)
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!task.is_finished());
    server.restart().await;
    tokio::time::timeout(WAIT, task).await.unwrap().unwrap().unwrap();
    assert_eq!(server.traces(), (0..5).map(|i| traces(i, 1)).collect::<Vec<_>>());
}

#[tokio::test]
async fn secret_header_values_never_appear_in_errors() {
    for down in [false, true] {
        let server = if down {
            OtlpServer::start_stopped().await
        } else {
            OtlpServer::start().await
        };
        server.set_response(Reply::InvalidArgument);
        let s = settings("otlphttp");
        let cfg = Config {
            headers: [("authorization".to_owned(), Secret::new("Bearer hunter2"))].into(),
            sending_queue: no_queue(),
            retry_on_failure: RetryConfig {
                enabled: false,
                ..fast_retry()
            },
            ..config(&server)
        };
        assert!(!format!("{cfg:?}").contains("hunter2"));
        let built = cfg.build(s.clone()).await.unwrap();
        let err = built.consumer.consume(trace_signal(0, 1)).await.unwrap_err();
        let want_permanent = !down;
        assert_eq!(matches!(err, ConsumeError::Permanent(_)), want_permanent, "{err:?}");
        assert!(!format!("{err} {err:?}").contains("hunter2"), "{err}");
        let health = format!("{:?}", s.health.snapshot());
        assert!(!health.contains("hunter2"), "{health}");
    }
}

// === TLS ===

async fn send_tls(endpoint: &str, tls: TlsClientConfig) -> Result<Sent, HttpError> {
    let cfg = Config {
        endpoint: HttpUrl::new(endpoint).unwrap(),
        tls,
        ..Config::default()
    };
    HttpSender::new(&cfg)
        .unwrap()
        .send(&trace_signal(0, 1))
        .await
}

#[tokio::test]
async fn tls_verifies_the_server_and_presents_the_client_certificate() {
    use authwatch_testkit::tls::{TestPki, TlsFront};
    let server = OtlpServer::start().await;
    let pki = TestPki::new("otlphttp-exporter");
    let front = TlsFront::start(server.http_addr(), &pki.server_config(true)).await;
    let endpoint = format!("https://localhost:{}", front.addr.port());
    let trusted = TlsClientConfig {
        ca_file: Some(pki.ca_file.clone()),
        cert_file: Some(pki.client_cert_file.clone()),
        key_file: Some(pki.client_key_file.clone()),
        ..TlsClientConfig::default()
    };
    send_tls(&endpoint, trusted.clone()).await.unwrap();
    assert_eq!(server.traces(), vec![traces(0, 1)]);

    let e = send_tls(
        &endpoint,
        TlsClientConfig {
            ca_file: None,
            ..trusted.clone()
        },
    )
    .await
    .unwrap_err();
    assert!(matches!(e, HttpError::Transport { .. }), "{e}");
    assert!(e.to_string().contains("UnknownIssuer"), "{e}");
    send_tls(
        &endpoint,
        TlsClientConfig {
            ca_file: None,
            insecure_skip_verify: true,
            ..trusted.clone()
        },
    )
    .await
    .unwrap();
    let anonymous = TlsClientConfig {
        cert_file: None,
        key_file: None,
        ..trusted.clone()
    };
    assert!(send_tls(&endpoint, anonymous).await.is_err());
    // Dialled by IP, the certificate is checked against `server_name_override`.
    let by_ip = format!("https://127.0.0.1:{}", front.addr.port());
    assert!(send_tls(&by_ip, trusted.clone()).await.is_err());
    let overridden = TlsClientConfig {
        server_name_override: Some("localhost".into()),
        ..trusted
    };
    send_tls(&by_ip, overridden).await.unwrap();
    assert_eq!(server.traces().len(), 3);
}
