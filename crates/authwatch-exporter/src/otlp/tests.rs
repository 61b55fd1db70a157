use std::time::Duration;

use authwatch_core::config::{Positive, Secret};
use authwatch_core::health::ComponentStatus;
use authwatch_core::{ConsumeError, ExporterConfig, SignalKind};
use authwatch_testkit::otlp_server::{OtlpServer, Reply};
use authwatch_testkit::{log_signal, logs, metric_signal, metrics, trace_signal, traces};

use super::*;
use crate::helper::tests::fixtures::*;
use crate::helper::tests::metric;
use crate::helper::{BatchConfig, Sizer};

const WAIT: Duration = Duration::from_secs(30);

fn config(server: &OtlpServer) -> Config {
    Config {
        endpoint: GrpcEndpoint::new(server.grpc_endpoint()).unwrap(),
        sending_queue: one_worker(100),
        retry_on_failure: fast_retry(),
        ..Config::default()
    }
}

#[test]
fn config_contract() {
    authwatch_testkit::assert_config_decodes::<Config>("otlp");
    assert_eq!(Config::ALIASES, &["otlp_grpc"]);
}

#[test]
fn full_config_decodes() {
    let yaml: serde_yaml::Value =
        serde_yaml::from_str(include_str!("testdata/config.yaml")).unwrap();
    let got: Config =
        authwatch_core::registry::decode_config(serde_json::to_value(yaml).unwrap()).unwrap();
    let want = Config {
        endpoint: GrpcEndpoint::new("collector:4317").unwrap(),
        tls: TlsClientConfig {
            insecure: false,
            ca_file: Some("/etc/ssl/ca.pem".into()),
            cert_file: Some("/etc/ssl/client.pem".into()),
            key_file: Some("/etc/ssl/client.key".into()),
            insecure_skip_verify: false,
            server_name_override: Some("collector.internal".into()),
        },
        headers: [("x-api-key".to_owned(), Secret::new("s3cret"))].into(),
        compression: Compression::None,
        timeout: Duration::from_secs(2),
        sending_queue: QueueConfig {
            enabled: true,
            num_consumers: Positive(4),
            queue_size: Positive(500),
            block_on_overflow: true,
            batch: Some(BatchConfig {
                flush_timeout: Duration::from_secs(1),
                min_size: 1000,
                max_size: 5000,
                sizer: Sizer::Items,
            }),
            ..QueueConfig::default()
        },
        retry_on_failure: RetryConfig {
            initial_interval: Duration::from_secs(1),
            max_interval: Duration::from_secs(10),
            max_elapsed_time: Duration::ZERO,
            ..RetryConfig::default()
        },
    };
    assert_eq!(got, want);
    let mut v = Validator::new("");
    got.validate(&mut v);
    assert!(!v.has_errors(), "{:?}", v.errors());
    // print-config never shows the secret.
    assert!(!serde_json::to_string(&got).unwrap().contains("s3cret"));
    assert!(!format!("{got:?}").contains("s3cret"));
}

#[test]
fn invalid_configs() {
    check_invalid_cases::<Config>(include_str!("testdata/invalid.yaml"));
}

#[test]
fn endpoint_forms() {
    // The forms themselves are `authwatch_net::GrpcEndpoint`'s (tested there).
    let t = |s: &str| GrpcEndpoint::parse_target(s).unwrap();
    let cfg = Config {
        tls: TlsClientConfig {
            insecure: true,
            ..TlsClientConfig::default()
        },
        ..Config::default()
    };
    assert!(!cfg.uses_tls(&t("collector:4317")));
    assert!(cfg.uses_tls(&t("https://collector:4317")));
    assert!(Config::default().uses_tls(&t("collector:4317")));
    assert!(!Config::default().uses_tls(&t("http://collector:4317")));
}

#[test]
fn status_codes_are_classified_per_the_otlp_spec() {
    let class = |s: tonic::Status| GrpcError::from_status("e", &s).retry();
    use tonic::Code;
    for code in [
        Code::Cancelled,
        Code::DeadlineExceeded,
        Code::Aborted,
        Code::OutOfRange,
        Code::Unavailable,
        Code::DataLoss,
    ] {
        assert_eq!(class(tonic::Status::new(code, "x")), Retry::Yes, "{code:?}");
    }
    for code in [
        Code::InvalidArgument,
        Code::Unauthenticated,
        Code::PermissionDenied,
        Code::NotFound,
        Code::Internal,
        Code::Unimplemented,
        Code::ResourceExhausted,
    ] {
        assert_eq!(class(tonic::Status::new(code, "x")), Retry::No, "{code:?}");
    }
    let throttled = tonic::Status::with_error_details(
        Code::ResourceExhausted,
        "slow down",
        tonic_types::ErrorDetails::with_retry_info(Some(Duration::from_secs(3))),
    );
    assert_eq!(class(throttled), Retry::After(Duration::from_secs(3)));
}

#[tokio::test]
async fn all_signals_arrive_exactly_gzip() {
    let server = OtlpServer::start().await;
    let s = settings("otlp");
    let built = config(&server).build(s.clone()).await.unwrap();
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
    assert!(server.received().iter().all(|r| r.compressed));
    s.shutdown.cancel();
    tokio::time::timeout(WAIT, task).await.unwrap().unwrap().unwrap();
    let t = &s.telemetry;
    assert_eq!(metric(t, "exporter_sent_spans_total", "otlp"), 7);
    assert_eq!(metric(t, "exporter_sent_metric_points_total", "otlp"), 4);
    assert_eq!(metric(t, "exporter_sent_log_records_total", "otlp"), 3);
    assert_eq!(metric(t, "exporter_send_failed_spans_total", "otlp"), 0);
}

#[tokio::test]
async fn uncompressed_with_headers() {
    let server = OtlpServer::start().await;
    let s = settings("otlp/plain");
    let cfg = Config {
        compression: Compression::None,
        headers: [
            ("X-Api-Key".to_owned(), Secret::new("s3cret")),
            ("tenant".to_owned(), Secret::new("acme")),
        ]
        .into(),
        sending_queue: no_queue(),
        ..config(&server)
    };
    let built = cfg.build(s).await.unwrap();
    built.consumer.consume(log_signal(0, 2)).await.unwrap();
    let got = server.received();
    assert_eq!(got.len(), 1);
    assert!(!got[0].compressed);
    assert_eq!(got[0].header("x-api-key"), Some("s3cret"));
    assert_eq!(got[0].header("tenant"), Some("acme"));
    assert_eq!(server.logs(), vec![logs(0, 2)]);
}

#[tokio::test]
async fn unavailable_is_retried_then_delivered_once() {
    let server = OtlpServer::start().await;
    server.respond_next(2, Reply::Unavailable);
    let s = settings("otlp");
    let built = config(&server).build(s.clone()).await.unwrap();
    let task = built.task.unwrap();
    let run = tokio::spawn(task);
    built.consumer.consume(trace_signal(0, 4)).await.unwrap();
    server.wait_for_items(SignalKind::Traces, 4, WAIT).await;
    s.shutdown.cancel();
    tokio::time::timeout(WAIT, run).await.unwrap().unwrap().unwrap();
    assert_eq!(server.request_count(), 3);
    assert_eq!(server.traces(), vec![traces(0, 4)]);
    assert_eq!(metric(&s.telemetry, "exporter_sent_spans_total", "otlp"), 4);
    assert_eq!(metric(&s.telemetry, "exporter_send_failed_spans_total", "otlp"), 0);
    assert_eq!(
        s.health.snapshot().components.get("otlp"),
        Some(&ComponentStatus::Ok)
    );
}

#[tokio::test]
async fn invalid_argument_is_permanent_and_counted() {
    let server = OtlpServer::start().await;
    server.set_response(Reply::InvalidArgument);
    let s = settings("otlp");
    let built = config(&server).build(s.clone()).await.unwrap();
    built.consumer.consume(metric_signal(0, 3)).await.unwrap();
    shut_down(&s, built.task).await;
    assert_eq!(server.request_count(), 1, "permanent errors are not retried");
    assert_eq!(metric(&s.telemetry, "exporter_send_failed_metric_points_total", "otlp"), 3);
    assert_eq!(metric(&s.telemetry, "exporter_sent_metric_points_total", "otlp"), 0);
    assert!(matches!(
        s.health.snapshot().components.get("otlp"),
        Some(ComponentStatus::RecoverableError(m)) if m.contains("InvalidArgument")
    ));
}

#[tokio::test]
async fn retry_info_delay_is_honoured() {
    let server = OtlpServer::start().await;
    server.respond_next(1, Reply::Throttled(Duration::from_millis(1500)));
    let s = settings("otlp");
    let cfg = Config {
        sending_queue: no_queue(),
        ..config(&server)
    };
    let built = cfg.build(s).await.unwrap();
    built.consumer.consume(trace_signal(0, 1)).await.unwrap();
    let got = server.received();
    assert_eq!(got.len(), 2);
    // The backoff alone would wait about 20ms.
    assert!(got[1].at - got[0].at >= Duration::from_millis(1500));
    assert_eq!(server.traces(), vec![traces(0, 1)]);
}

#[tokio::test]
async fn partial_success_counts_rejected_items() {
    let server = OtlpServer::start().await;
    server.set_response(Reply::PartialSuccess {
        rejected: 2,
        message: "2 spans too old".into(),
    });
    let s = settings("otlp");
    let cfg = Config {
        sending_queue: no_queue(),
        ..config(&server)
    };
    let built = cfg.build(s.clone()).await.unwrap();
    built.consumer.consume(trace_signal(0, 5)).await.unwrap();
    assert_eq!(server.request_count(), 1);
    assert_eq!(metric(&s.telemetry, "exporter_sent_spans_total", "otlp"), 3);
    assert_eq!(metric(&s.telemetry, "exporter_send_failed_spans_total", "otlp"), 2);
}

#[tokio::test]
async fn backend_down_at_start_then_full_queue_then_everything_arrives() {
    let server = OtlpServer::start_stopped().await;
    let s = settings("otlp");
    let cfg = Config {
        sending_queue: one_worker(2),
        ..config(&server)
    };
    // Building does not need the backend.
    let built = cfg.build(s.clone()).await.unwrap();
    let task = tokio::spawn(built.task.unwrap());
    let mut accepted = Vec::new();
    let mut refused = 0;
    for i in 0..10 {
        match built.consumer.consume(trace_signal(i * 10, 3)).await {
            Ok(()) => accepted.push(traces(i * 10, 3)),
            Err(ConsumeError::Full) => refused += 1,
            Err(e) => panic!("unexpected {e}"),
        }
    }
    // Queue of 2 plus at most one request held by the single worker.
    assert!((2..=3).contains(&accepted.len()), "{}", accepted.len());
    assert_eq!(refused, 10 - accepted.len());
    assert_eq!(
        metric(&s.telemetry, "exporter_enqueue_failed_spans_total", "otlp"),
        3 * refused as u64
    );
    assert_eq!(metric(&s.telemetry, "exporter_queue_capacity", "otlp"), 2);
    server.restart().await;
    server
        .wait_for_items(SignalKind::Traces, 3 * accepted.len(), WAIT)
        .await;
    assert_eq!(server.traces(), accepted);
    s.shutdown.cancel();
    tokio::time::timeout(WAIT, task).await.unwrap().unwrap().unwrap();
    assert_eq!(metric(&s.telemetry, "exporter_queue_size", "otlp"), 0);
}

#[tokio::test]
async fn shutdown_drains_the_queue_while_retrying() {
    let server = OtlpServer::start_stopped().await;
    let s = settings("otlp");
    let built = config(&server).build(s.clone()).await.unwrap();
    let task = tokio::spawn(built.task.unwrap());
    for i in 0..5 {
        built.consumer.consume(log_signal(i, 1)).await.unwrap();
    }
    s.shutdown.cancel();
    assert_eq!(
        built.consumer.consume(log_signal(99, 1)).await,
        Err(ConsumeError::Closed)
    );
    // Still retrying with the backend down.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!task.is_finished());
    server.restart().await;
    tokio::time::timeout(WAIT, task).await.unwrap().unwrap().unwrap();
    assert_eq!(server.logs(), (0..5).map(|i| logs(i, 1)).collect::<Vec<_>>());
}

#[tokio::test]
async fn secret_header_values_never_appear_in_errors() {
    let server = OtlpServer::start().await;
    server.set_response(Reply::InvalidArgument);
    let s = settings("otlp");
    let cfg = Config {
        headers: [("authorization".to_owned(), Secret::new("Bearer hunter2"))].into(),
        sending_queue: no_queue(),
        ..config(&server)
    };
    assert!(!format!("{cfg:?}").contains("hunter2"));
    let built = cfg.build(s.clone()).await.unwrap();
    let err = built.consumer.consume(trace_signal(0, 1)).await.unwrap_err();
    assert!(matches!(err, ConsumeError::Permanent(_)), "{err:?}");
    assert!(!format!("{err} {err:?}").contains("hunter2"), "{err}");
    let health = format!("{:?}", s.health.snapshot());
    assert!(!health.contains("hunter2"), "{health}");
    // The header did go out.
    assert_eq!(
        server.received()[0].header("authorization"),
        Some("Bearer hunter2")
    );
}

#[tokio::test]
async fn backend_down_gives_a_retryable_transport_error() {
    let server = OtlpServer::start_stopped().await;
    let s = settings("otlp");
    let cfg = Config {
        sending_queue: no_queue(),
        retry_on_failure: RetryConfig {
            enabled: false,
            ..fast_retry()
        },
        ..config(&server)
    };
    let built = cfg.build(s.clone()).await.unwrap();
    let err = built.consumer.consume(trace_signal(0, 1)).await.unwrap_err();
    assert_eq!(err, ConsumeError::Full, "transport failures are retryable");
    match s.health.snapshot().components.get("otlp") {
        Some(ComponentStatus::RecoverableError(m)) => {
            assert!(m.contains("failed with Unavailable"), "{m}");
        }
        other => panic!("{other:?}"),
    }
}

// === TLS ===

/// Sends one trace request over TLS to `front` (a TLS front for `server`'s gRPC port).
async fn send_tls(endpoint: &str, tls: TlsClientConfig) -> Result<Sent, GrpcError> {
    let cfg = Config {
        endpoint: GrpcEndpoint::new(endpoint).unwrap(),
        tls,
        ..Config::default()
    };
    GrpcSender::new(&cfg)
        .unwrap()
        .send(&trace_signal(0, 1))
        .await
}

#[tokio::test]
async fn tls_verifies_the_server_and_presents_the_client_certificate() {
    use authwatch_testkit::tls::{TestPki, TlsFront};
    let server = OtlpServer::start().await;
    let pki = TestPki::new("otlp-exporter");
    let front = TlsFront::start(server.grpc_addr(), &pki.server_config(true)).await;
    let endpoint = format!("https://localhost:{}", front.addr.port());
    let trusted = TlsClientConfig {
        ca_file: Some(pki.ca_file.clone()),
        cert_file: Some(pki.client_cert_file.clone()),
        key_file: Some(pki.client_key_file.clone()),
        ..TlsClientConfig::default()
    };
    send_tls(&endpoint, trusted.clone()).await.unwrap();
    assert_eq!(server.traces(), vec![traces(0, 1)]);

    // The web's roots do not know the test CA.
    let e = send_tls(
        &endpoint,
        TlsClientConfig {
            ca_file: None,
            ..trusted.clone()
        },
    )
    .await
    .unwrap_err();
    assert_eq!(e.code(), tonic::Code::Unavailable, "{e}");
    assert!(e.to_string().contains("UnknownIssuer"), "{e}");
    // ... unless verification is off.
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
    // Without its certificate the client is refused by the server.
    let anonymous = TlsClientConfig {
        cert_file: None,
        key_file: None,
        ..trusted.clone()
    };
    assert!(send_tls(&endpoint, anonymous).await.is_err());
    // Dialled by IP, the certificate is checked against `server_name_override`.
    let by_ip = format!("https://127.0.0.1:{}", front.addr.port());
    let e = send_tls(&by_ip, trusted.clone()).await.unwrap_err();
    assert!(e.to_string().contains("not valid for name"), "{e}");
    let overridden = TlsClientConfig {
        server_name_override: Some("localhost".into()),
        ..trusted
    };
    send_tls(&by_ip, overridden).await.unwrap();
    assert_eq!(server.traces().len(), 3);
}

#[tokio::test]
async fn a_bad_client_certificate_fails_the_build_naming_the_file() {
    let cfg = Config {
        endpoint: GrpcEndpoint::new("https://localhost:4317").unwrap(),
        tls: TlsClientConfig {
            cert_file: Some("/nonexistent/client.pem".into()),
            key_file: Some("/nonexistent/client.key".into()),
            ..TlsClientConfig::default()
        },
        ..Config::default()
    };
    let e = match cfg.build(settings("otlp")).await {
        Err(e) => e.to_string(),
        Ok(_) => panic!("a missing client certificate must fail the build"),
    };
    assert!(
        e.contains("tls::cert_file: cannot read `/nonexistent/client.pem`"),
        "{e}"
    );
}
