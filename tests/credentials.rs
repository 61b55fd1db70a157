//! End to end: spans and logs full of credentials (Authorization and Cookie headers, URLs with
//! tokens in the query, JWTs in attributes and log bodies, client secrets) go through every
//! shipped config that forwards, unchanged except for the ports, to a real OTLP server. None of
//! the secrets may arrive; the non-secret parts (host, path, other attributes) must. And the
//! receiver's bearer-token auth, through the binary.

mod common;

use std::time::Duration;

use authwatch_core::otlp::collector::logs::v1::logs_service_client::LogsServiceClient;
use authwatch_core::otlp::collector::logs::v1::ExportLogsServiceRequest;
use authwatch_core::otlp::collector::trace::v1::trace_service_client::TraceServiceClient;
use authwatch_core::otlp::collector::trace::v1::ExportTraceServiceRequest;
use authwatch_core::otlp::common::v1::any_value::Value;
use authwatch_core::otlp::common::v1::{AnyValue, KeyValue};
use authwatch_core::otlp::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use authwatch_core::otlp::resource::v1::Resource;
use authwatch_core::otlp::trace::v1::span::Event;
use authwatch_core::otlp::trace::v1::{ResourceSpans, ScopeSpans, Span};
use authwatch_core::SignalKind;
use authwatch_testkit::otlp_server::OtlpServer;
use common::*;
use prost::Message;

const HANG_GUARD: Duration = Duration::from_secs(30);

// Distinct, greppable secrets.
const BEARER: &str = "b3arerT0kenQwErTy123";
const SESSION: &str = "s3ssionC00kieZxCv";
const SET_COOKIE: &str = "n3wS3ssionAsDf";
const ACCESS: &str = "acc3ssT0kenInUrl";
const CODE: &str = "authC0deXyz789";
const CLIENT_SECRET: &str = "cl1entS3cretPlm";
const API_KEY: &str = "ap1K3yRes0urce";
const BASIC: &str = "dXNlcjpodW50ZXIy";
const FORM_SECRET: &str = "f0rmS3cretIjn";
const JWT: &str = "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJhdXRoMHwxMjMiLCJhdWQiOiJhcGkifQ.c2lnbmF0dXJlLXBhcnQtb25lLXR3by10aHJlZQ";
const JWT_IN_LOG: &str = "eyJraWQiOiJrMSIsImFsZyI6IlJTMjU2In0.eyJpc3MiOiJodHRwczovL2lkcC8ifQ.bG9nLXNpZ25hdHVyZS1ieXRlcy1oZXJl";

const SECRETS: &[&str] = &[
    BEARER,
    SESSION,
    SET_COOKIE,
    ACCESS,
    CODE,
    CLIENT_SECRET,
    API_KEY,
    BASIC,
    FORM_SECRET,
    "eyJ",
];

fn kv(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(Value::StringValue(value.into())),
        }),
        ..Default::default()
    }
}

fn resource() -> Option<Resource> {
    Some(Resource {
        attributes: vec![
            kv("service.name", "checkout"),
            kv("deployment.api_key", API_KEY),
        ],
        ..Default::default()
    })
}

fn leaky_traces() -> ExportTraceServiceRequest {
    let span = |i: u8, name: &str, attributes: Vec<KeyValue>| Span {
        trace_id: vec![7; 16],
        span_id: vec![i; 8],
        name: name.into(),
        kind: 3,
        start_time_unix_nano: 1_700_000_000_000_000_000,
        end_time_unix_nano: 1_700_000_000_100_000_000,
        attributes,
        ..Default::default()
    };
    let mut callback = span(
        2,
        "GET /callback",
        vec![
            kv(
                "url.full",
                &format!("https://app.example.com/callback?code={CODE}&state=xyz"),
            ),
            kv("http.request.method", "GET"),
        ],
    );
    callback.events.push(Event {
        name: "exception".into(),
        attributes: vec![kv(
            "exception.message",
            &format!("token rejected: {JWT} is expired"),
        )],
        ..Default::default()
    });
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: resource(),
            scope_spans: vec![ScopeSpans {
                spans: vec![
                    span(
                        1,
                        "GET /v1/orders",
                        vec![
                            kv(
                                "http.request.header.authorization",
                                &format!("Bearer {BEARER}"),
                            ),
                            kv("http.request.header.cookie", &format!("session={SESSION}")),
                            kv(
                                "http.response.header.set-cookie",
                                &format!("session={SET_COOKIE}; HttpOnly"),
                            ),
                            kv(
                                "url.full",
                                &format!(
                                    "https://api.example.com/v1/orders?access_token={ACCESS}&page=2"
                                ),
                            ),
                            kv("client_secret", CLIENT_SECRET),
                            kv("auth.id_token", JWT),
                            kv("user.note", &format!("proxied with Basic {BASIC}")),
                            kv("http.route", "/v1/orders"),
                        ],
                    ),
                    callback,
                ],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

fn leaky_logs() -> ExportLogsServiceRequest {
    let record = |body: String, attributes: Vec<KeyValue>| LogRecord {
        time_unix_nano: 1_700_000_000_000_000_000,
        severity_text: "INFO".into(),
        body: Some(AnyValue {
            value: Some(Value::StringValue(body)),
        }),
        attributes,
        ..Default::default()
    };
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: resource(),
            scope_logs: vec![ScopeLogs {
                log_records: vec![
                    record(
                        format!(
                            "POST /oauth/token grant_type=client_credentials&client_id=app&client_secret={FORM_SECRET}"
                        ),
                        vec![kv("http.request.header.authorization", &format!("Basic {BASIC}"))],
                    ),
                    record(
                        format!("id token for user 123: {JWT_IN_LOG}"),
                        vec![kv("enduser.id", "123")],
                    ),
                    record(
                        format!(r#"{{"event":"login","client_secret":"{CLIENT_SECRET}"}}"#),
                        vec![],
                    ),
                ],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

/// A shipped config with its listen ports moved to free ones, so that tests can run side by side.
fn localized(file: &str, grpc: u16, http: u16) -> String {
    let text = std::fs::read_to_string(repo().join("configs").join(file)).unwrap();
    let (health, metrics) = (free_port(), free_port());
    let mut out = text;
    for host in ["127.0.0.1", "0.0.0.0", "localhost"] {
        out = out
            .replace(&format!("{host}:4317\n"), &format!("127.0.0.1:{grpc}\n"))
            .replace(&format!("{host}:4318\n"), &format!("127.0.0.1:{http}\n"))
            .replace(&format!("{host}:13133"), &format!("127.0.0.1:{health}"))
            .replace(&format!("{host}:8888"), &format!("127.0.0.1:{metrics}"));
    }
    out = out.replace(
        "health_check: {}",
        &format!("health_check: {{endpoint: '127.0.0.1:{health}'}}"),
    );
    if !out.contains("\n  telemetry:") {
        out = out.replace(
            "\nservice:\n",
            &format!("\nservice:\n  telemetry: {{metrics: {{address: '127.0.0.1:{metrics}'}}}}\n"),
        );
    }
    assert!(
        out.contains(&format!("127.0.0.1:{grpc}")) && out.contains(&format!("127.0.0.1:{http}")),
        "{file}: the OTLP receiver ports were not found:\n{out}"
    );
    out
}

fn assert_no_secrets(what: &str, text: &str) {
    for s in SECRETS {
        assert!(!text.contains(s), "{what}: `{s}` leaked:\n{text}");
    }
}

fn string_attr<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a str> {
    attrs.iter().find(|kv| kv.key == key).and_then(|kv| {
        match kv.value.as_ref()?.value.as_ref()? {
            Value::StringValue(s) => Some(s.as_str()),
            _ => None,
        }
    })
}

/// Sends the leaky data into `file` and checks what `backend` got from `exporters` exporters.
async fn check_config(
    file: &str,
    env: &[(&str, &str)],
    backend: &OtlpServer,
    exporters: usize,
    logs_forwarded: bool,
) {
    let (g, h) = (free_port(), free_port());
    let yaml = localized(file, g, h);
    let aw = Authwatch::start_with_env(&yaml, env);

    // Traces over gRPC, logs over gRPC, and the same traces again over OTLP/HTTP JSON.
    let mut traces = TraceServiceClient::connect(format!("http://127.0.0.1:{g}"))
        .await
        .unwrap();
    traces.export(leaky_traces()).await.unwrap();
    let mut logs = LogsServiceClient::connect(format!("http://127.0.0.1:{g}"))
        .await
        .unwrap();
    logs.export(leaky_logs()).await.unwrap();
    let res = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{h}/v1/traces"))
        .header("content-type", "application/x-protobuf")
        .body(leaky_traces().encode_to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "{file}");

    backend
        .wait_for_items(SignalKind::Traces, 4 * exporters, HANG_GUARD)
        .await;
    if logs_forwarded {
        backend
            .wait_for_items(SignalKind::Logs, 3 * exporters, HANG_GUARD)
            .await;
    }
    let got_traces = backend.traces();
    let got_logs = backend.logs();
    assert_no_secrets(&format!("{file}: traces"), &format!("{got_traces:?}"));
    assert_no_secrets(&format!("{file}: logs"), &format!("{got_logs:?}"));
    assert_no_secrets(&format!("{file}: authwatch output"), &aw.output());

    // The non-secret parts arrive intact.
    for req in &got_traces {
        for rs in &req.resource_spans {
            let res = &rs.resource.as_ref().unwrap().attributes;
            assert_eq!(string_attr(res, "service.name"), Some("checkout"));
            assert_eq!(string_attr(res, "deployment.api_key"), Some("[REDACTED]"));
            for span in rs.scope_spans.iter().flat_map(|s| &s.spans) {
                let a = &span.attributes;
                match span.name.as_str() {
                    "GET /v1/orders" => {
                        assert_eq!(
                            string_attr(a, "url.full"),
                            Some(
                                "https://api.example.com/v1/orders?access_token=[REDACTED]&page=2"
                            )
                        );
                        assert_eq!(
                            string_attr(a, "http.request.header.authorization"),
                            Some("[REDACTED]")
                        );
                        assert_eq!(string_attr(a, "http.route"), Some("/v1/orders"));
                        assert_eq!(
                            string_attr(a, "user.note"),
                            Some("proxied with Basic [REDACTED]")
                        );
                    }
                    "GET /callback" => {
                        assert_eq!(
                            string_attr(a, "url.full"),
                            Some("https://app.example.com/callback?code=[REDACTED]&state=xyz")
                        );
                        assert_eq!(string_attr(a, "http.request.method"), Some("GET"));
                        assert_eq!(
                            string_attr(&span.events[0].attributes, "exception.message"),
                            Some("token rejected: [REDACTED] is expired")
                        );
                    }
                    other => panic!("{file}: unexpected span {other}"),
                }
            }
        }
    }
    if logs_forwarded {
        let bodies: Vec<String> = got_logs
            .iter()
            .flat_map(|r| &r.resource_logs)
            .flat_map(|r| &r.scope_logs)
            .flat_map(|s| &s.log_records)
            .filter_map(|r| match r.body.as_ref()?.value.as_ref()? {
                Value::StringValue(s) => Some(s.clone()),
                _ => None,
            })
            .collect();
        assert!(bodies.contains(
            &"POST /oauth/token grant_type=client_credentials&client_id=app&client_secret=[REDACTED]"
                .to_owned()
        ), "{bodies:?}");
        assert!(bodies.contains(&"id token for user 123: [REDACTED]".to_owned()));
        assert!(bodies.contains(&r#"{"event":"login","client_secret":"[REDACTED]"}"#.to_owned()));
    }
    drop(aw);
}

#[tokio::test]
async fn otlp_forward_config_delivers_no_credentials() {
    let backend = OtlpServer::start().await;
    let grpc = backend.grpc_addr().to_string();
    let http = backend.http_endpoint();
    check_config(
        "otlp-forward.yaml",
        &[("OTLP_ENDPOINT", &grpc), ("OTLP_HTTP_ENDPOINT", &http)],
        &backend,
        2,
        true,
    )
    .await;
}

#[tokio::test]
async fn jaeger_config_delivers_no_credentials() {
    let backend = OtlpServer::start().await;
    let grpc = backend.grpc_addr().to_string();
    // Jaeger stores traces only: logs go to the debug exporter, whose output is checked too.
    check_config(
        "jaeger.yaml",
        &[("JAEGER_ENDPOINT", &grpc)],
        &backend,
        1,
        false,
    )
    .await;
}

#[test]
fn every_shipped_config_redacts_every_span_and_log_pipeline() {
    let dir = repo().join("configs");
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
            continue;
        }
        // The effective config, as authwatch runs it: an overlay (configs/auth0.yaml) is only valid
        // on top of the default, so it is checked merged with it.
        let file = path.to_str().unwrap();
        let default = dir.join("default.yaml");
        let (mut code, mut out, _) = run_cli(&["print-config", "--config", file], &[]);
        if code == 64 {
            (code, out, _) = run_cli(
                &[
                    "print-config",
                    "--config",
                    default.to_str().unwrap(),
                    "--config",
                    file,
                ],
                &[],
            );
        }
        assert_eq!(code, 0, "{}: print-config failed", path.display());
        let config: serde_yaml::Value = serde_yaml::from_str(&out).unwrap();
        let pipelines = config["service"]["pipelines"].as_mapping().unwrap();
        for (name, p) in pipelines {
            let name = name.as_str().unwrap();
            if !(name.starts_with("traces") || name.starts_with("logs")) {
                continue;
            }
            // Pipelines fed only by connectors (alert events, derived metrics) carry data that
            // was redacted upstream; pipelines that take data from outside must redact it.
            let external = p["receivers"]
                .as_sequence()
                .map(|s| {
                    s.iter().filter_map(|v| v.as_str()).any(|r| {
                        let ty = r.split('/').next().unwrap_or(r);
                        matches!(ty, "otlp" | "auth0_logs" | "synthetic" | "statuspage")
                    })
                })
                .unwrap_or(false);
            if !external {
                continue;
            }
            let processors: Vec<&str> = p["processors"]
                .as_sequence()
                .map(|s| s.iter().filter_map(|v| v.as_str()).collect())
                .unwrap_or_default();
            assert!(
                processors
                    .iter()
                    .any(|p| *p == "redaction" || p.starts_with("redaction/")),
                "{}: pipeline `{name}` has no redaction processor",
                path.display()
            );
        }
    }
}

#[tokio::test]
async fn bearer_token_is_required_by_the_binary() {
    let backend = OtlpServer::start().await;
    let (g, h, m) = (free_port(), free_port(), free_port());
    let yaml = format!(
        "
receivers:
  otlp:
    protocols:
      grpc: {{endpoint: '127.0.0.1:{g}', auth: {{bearer_token: '${{env:TEST_OTLP_TOKEN}}'}}}}
      http: {{endpoint: '127.0.0.1:{h}', auth: {{bearer_token: '${{env:TEST_OTLP_TOKEN}}'}}}}
processors:
  redaction: {{}}
exporters:
  otlp:
    endpoint: 'http://{bg}'
    tls: {{insecure: true}}
service:
  telemetry: {{metrics: {{address: '127.0.0.1:{m}'}}}}
  pipelines:
    traces: {{receivers: [otlp], processors: [redaction], exporters: [otlp]}}
",
        bg = backend.grpc_addr(),
    );
    let token = "e2e-t0ken-9f8e7d";
    let aw = Authwatch::start_with_env(&yaml, &[("TEST_OTLP_TOKEN", token)]);

    let mut client = TraceServiceClient::connect(format!("http://127.0.0.1:{g}"))
        .await
        .unwrap();
    let e = client.export(leaky_traces()).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::Unauthenticated);
    let mut wrong = tonic::Request::new(leaky_traces());
    wrong
        .metadata_mut()
        .insert("authorization", "Bearer not-the-token".parse().unwrap());
    assert_eq!(
        client.export(wrong).await.unwrap_err().code(),
        tonic::Code::Unauthenticated
    );
    let http = reqwest::Client::new();
    let res = http
        .post(format!("http://127.0.0.1:{h}/v1/traces"))
        .header("content-type", "application/x-protobuf")
        .body(leaky_traces().encode_to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);

    let mut right = tonic::Request::new(leaky_traces());
    right
        .metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    client.export(right).await.unwrap();
    let res = http
        .post(format!("http://127.0.0.1:{h}/v1/traces"))
        .header("content-type", "application/x-protobuf")
        .header("authorization", format!("Bearer {token}"))
        .body(leaky_traces().encode_to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);

    backend
        .wait_for_items(SignalKind::Traces, 4, HANG_GUARD)
        .await;
    // Only the two authenticated requests arrive.
    let text = scrape(format!("127.0.0.1:{m}").parse().unwrap()).await;
    assert_eq!(
        sample(
            &text,
            r#"authwatch_receiver_unauthenticated_requests_total{receiver="otlp",transport="grpc"}"#
        ),
        2.0,
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            r#"authwatch_receiver_unauthenticated_requests_total{receiver="otlp",transport="http"}"#
        ),
        1.0
    );
    assert_eq!(backend.item_count(SignalKind::Traces), 4);
    assert!(
        !aw.output().contains(token),
        "the token must never be printed"
    );
}
