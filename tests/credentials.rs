//! End to end: spans and logs full of credentials (Authorization and Cookie headers, URLs with
//! tokens in the query, JWTs in attributes and log bodies, client secrets) go through every
//! shipped config that forwards, unchanged except for the ports, to a real OTLP server. None of
//! the secrets may arrive; the non-secret parts (host, path, other attributes) must. And the
//! receiver's bearer-token auth, through the binary.
//!
//! What is covered comes from the registry and from configs/: every registered receiver must be
//! in [`RECEIVERS`] and every shipped config in [`CONFIGS`], so that a new one fails by name
//! instead of being skipped.

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
use authwatch_core::{Kind, SignalKind};
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
            .replace(
                &format!("{host}:13134"),
                &format!("127.0.0.1:{}", free_port()),
            )
            .replace(
                &format!("{host}:8889"),
                &format!("127.0.0.1:{}", free_port()),
            )
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

/// Whether a resource is the leaky clients' (`service.name` = `checkout`): configs that probe or
/// derive signals send their own data to the backend too.
fn from_clients(resource: &Option<Resource>) -> bool {
    resource
        .as_ref()
        .is_some_and(|r| string_attr(&r.attributes, "service.name") == Some("checkout"))
}

/// Spans or log records of the leaky clients that reached the backend.
fn clients_items(backend: &OtlpServer, kind: SignalKind) -> usize {
    match kind {
        SignalKind::Traces => backend
            .traces()
            .iter()
            .flat_map(|r| &r.resource_spans)
            .filter(|r| from_clients(&r.resource))
            .flat_map(|r| &r.scope_spans)
            .map(|s| s.spans.len())
            .sum(),
        _ => backend
            .logs()
            .iter()
            .flat_map(|r| &r.resource_logs)
            .filter(|r| from_clients(&r.resource))
            .flat_map(|r| &r.scope_logs)
            .map(|s| s.log_records.len())
            .sum(),
    }
}

async fn wait_for_clients_items(backend: &OtlpServer, kind: SignalKind, n: usize, file: &str) {
    let arrived = eventually(HANG_GUARD, async || clients_items(backend, kind) >= n).await;
    assert!(
        arrived,
        "{file}: {n} {kind:?} items of the clients never reached the backend; {} did",
        clients_items(backend, kind)
    );
}

/// What a config does with the logs it is sent.
#[derive(Clone, Copy, PartialEq)]
enum Logs {
    /// Forwarded to the backend by every exporter.
    Forwarded,
    /// Taken, but only the `debug` exporter gets them (a line of counts in authwatch's output,
    /// which is checked too).
    Debug,
    /// No logs pipeline: the config refuses them.
    NotTaken,
}

/// Sends the leaky data into `file` and checks what `backend` got from `exporters` exporters.
async fn check_config(
    file: &str,
    env: &[(&str, &str)],
    backend: &OtlpServer,
    exporters: usize,
    logs_to: Logs,
) {
    let (g, h) = (free_port(), free_port());
    let yaml = localized(file, g, h);
    let aw = Authwatch::start_with_env(&yaml, env);

    // Traces over gRPC, logs over gRPC, and the same traces again over OTLP/HTTP JSON.
    let mut traces = TraceServiceClient::connect(format!("http://127.0.0.1:{g}"))
        .await
        .unwrap();
    traces.export(leaky_traces()).await.unwrap();
    if logs_to != Logs::NotTaken {
        let mut logs = LogsServiceClient::connect(format!("http://127.0.0.1:{g}"))
            .await
            .unwrap();
        logs.export(leaky_logs()).await.unwrap();
    }
    let res = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{h}/v1/traces"))
        .header("content-type", "application/x-protobuf")
        .body(leaky_traces().encode_to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "{file}");

    wait_for_clients_items(backend, SignalKind::Traces, 4 * exporters, file).await;
    if logs_to == Logs::Forwarded {
        wait_for_clients_items(backend, SignalKind::Logs, 3 * exporters, file).await;
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
            if string_attr(res, "service.name") != Some("checkout") {
                continue; // the config's own probes
            }
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
    if logs_to == Logs::Forwarded {
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
        Logs::Forwarded,
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
        Logs::Debug,
    )
    .await;
}

#[tokio::test]
async fn tempo_config_delivers_no_credentials() {
    let backend = OtlpServer::start().await;
    let grpc = backend.grpc_addr().to_string();
    // Tempo stores traces only; the config has no logs pipeline.
    check_config(
        "tempo.yaml",
        &[("TEMPO_ENDPOINT", &grpc)],
        &backend,
        1,
        Logs::NotTaken,
    )
    .await;
}

#[tokio::test]
async fn honeycomb_config_delivers_no_credentials() {
    let backend = OtlpServer::start().await;
    let http = backend.http_endpoint();
    check_config(
        "honeycomb.yaml",
        &[
            ("HONEYCOMB_ENDPOINT", &http),
            ("HONEYCOMB_API_KEY", "hc-test-key"),
        ],
        &backend,
        1,
        Logs::Forwarded,
    )
    .await;
}

#[tokio::test]
async fn compose_config_delivers_no_credentials() {
    let backend = OtlpServer::start().await;
    let grpc = backend.grpc_addr().to_string();
    // Traces to Jaeger and Tempo (both pointed at the backend); logs to the debug exporter,
    // whose output is checked too.
    check_config(
        "compose.yaml",
        &[("JAEGER_ENDPOINT", &grpc), ("TEMPO_ENDPOINT", &grpc)],
        &backend,
        2,
        Logs::Debug,
    )
    .await;
}

// === coverage, from the registry and configs/ ===

/// How a receiver's data is kept from leaking credentials, beyond the pipeline rule that every
/// traces and logs pipeline a registered receiver feeds lists `redaction`
/// ([`every_shipped_config_redacts_every_span_and_log_pipeline`]).
enum Coverage {
    /// Sent through the binary by these tests of this file.
    EndToEnd(&'static [&'static str]),
    /// Kept in by these tests under `crates/authwatch-receiver/src/<receiver>/`.
    UnitTests(&'static [&'static str]),
    /// Nothing to check, and why.
    NotApplicable(&'static str),
}

/// Every registered receiver (`every_receiver_is_covered` names one that is missing).
const RECEIVERS: &[(&str, Coverage)] = &[
    (
        "otlp",
        Coverage::EndToEnd(&[
            "otlp_forward_config_delivers_no_credentials",
            "jaeger_config_delivers_no_credentials",
            "bearer_token_is_required_by_the_binary",
        ]),
    ),
    // Its own secrets (client secret, password, header values, bodies) and the tokens it obtains
    // never reach spans, metrics or logs.
    (
        "synthetic",
        Coverage::UnitTests(&["secrets_never_leave", "a_walk_leaks_no_secret"]),
    ),
    // Its stream token is required and never printed; personal fields are dropped by default.
    (
        "auth0_logs",
        Coverage::UnitTests(&[
            "wrong_or_missing_token_is_401_and_nothing_enters",
            "config_yaml_decodes_to_struct",
            "user_ids_are_kept_only_when_configured",
        ]),
    ),
    // Its API token is required, never printed, sent only to `org_url`'s origin (a `next` link
    // elsewhere is refused); personal fields are dropped by default.
    (
        "okta_logs",
        Coverage::UnitTests(&[
            "config_contract",
            "a_next_link_to_another_host_is_refused",
            "logins_made_against_the_org_arrive_once_with_their_counts",
            "records_drop_personal_fields_unless_asked",
        ]),
    ),
    (
        "statuspage",
        Coverage::NotApplicable(
            "polls public status pages without credentials and emits what they publish",
        ),
    ),
];

/// Every file in configs/: run through [`check_config`] by the named test, or why not
/// (`every_shipped_config_is_covered` names one that is missing).
const CONFIGS: &[(&str, Result<&str, &str>)] = &[
    (
        "otlp-forward.yaml",
        Ok("otlp_forward_config_delivers_no_credentials"),
    ),
    ("jaeger.yaml", Ok("jaeger_config_delivers_no_credentials")),
    ("tempo.yaml", Ok("tempo_config_delivers_no_credentials")),
    ("honeycomb.yaml", Ok("honeycomb_config_delivers_no_credentials")),
    ("compose.yaml", Ok("compose_config_delivers_no_credentials")),
    (
        "default.yaml",
        Err("forwards nothing: spans go to error_rate only, and the console exporter prints alert \
             transitions and summaries, not the records it is given"),
    ),
    (
        "auth0.yaml",
        Err("an overlay on default.yaml that adds synthetic checks: it forwards nothing either"),
    ),
    (
        "demo.yaml",
        Err("the demo's own traffic to its stand-in provider; it takes nothing from outside and forwards nothing"),
    ),
];

fn this_file() -> String {
    std::fs::read_to_string(repo().join("tests/credentials.rs")).unwrap()
}

/// Whether a test function of that name is defined in some .rs file under `dir`.
fn defines_test(dir: &std::path::Path, name: &str) -> bool {
    let needle = format!("fn {name}(");
    std::fs::read_dir(dir).into_iter().flatten().any(|e| {
        let path = e.unwrap().path();
        if path.is_dir() {
            defines_test(&path, name)
        } else {
            path.extension().is_some_and(|x| x == "rs")
                && std::fs::read_to_string(&path).is_ok_and(|t| t.contains(&needle))
        }
    })
}

#[test]
fn every_receiver_is_covered() {
    let registered = authwatch_receiver::factories().type_names(Kind::Receiver);
    let source = this_file();
    let mut problems = Vec::new();
    for ty in &registered {
        let Some((_, coverage)) = RECEIVERS.iter().find(|(r, _)| r == ty) else {
            problems.push(format!(
                "receiver `{ty}` is not covered by the credentials checks: send credentials through \
                 it end to end here, or name the unit tests that keep its secrets in, or say why it \
                 carries none (RECEIVERS in tests/credentials.rs)"
            ));
            continue;
        };
        match coverage {
            Coverage::EndToEnd(tests) => {
                for t in *tests {
                    if !source.contains(&format!("async fn {t}(")) {
                        problems.push(format!(
                            "receiver `{ty}`: no test `{t}` in tests/credentials.rs"
                        ));
                    }
                }
            }
            Coverage::UnitTests(tests) => {
                let dir = repo().join("crates/authwatch-receiver/src").join(ty);
                for t in *tests {
                    if !defines_test(&dir, t) {
                        problems.push(format!(
                            "receiver `{ty}`: no test `{t}` under crates/authwatch-receiver/src/{ty}/"
                        ));
                    }
                }
            }
            Coverage::NotApplicable(why) => assert!(why.len() > 20, "`{ty}`: say why"),
        }
    }
    for (r, _) in RECEIVERS {
        if !registered.contains(r) {
            problems.push(format!(
                "RECEIVERS lists `{r}`, which is not a registered receiver"
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn every_shipped_config_is_covered() {
    let source = this_file();
    let mut problems = Vec::new();
    let mut files = Vec::new();
    for entry in std::fs::read_dir(repo().join("configs")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") {
            files.push(path.file_name().unwrap().to_string_lossy().into_owned());
        }
    }
    for f in &files {
        match CONFIGS.iter().find(|(c, _)| c == f) {
            None => problems.push(format!(
                "configs/{f} is not covered by the credentials checks: run it through \
                 `check_config` in a test here, or say in CONFIGS why it forwards nothing"
            )),
            Some((_, Ok(test))) if !source.contains(&format!("async fn {test}(")) => problems.push(
                format!("configs/{f}: no test `{test}` in tests/credentials.rs"),
            ),
            Some(_) => {}
        }
    }
    for (c, _) in CONFIGS {
        if !files.iter().any(|f| f == c) {
            problems.push(format!("CONFIGS lists {c}, which is not in configs/"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn every_shipped_config_redacts_every_span_and_log_pipeline() {
    let receivers = authwatch_receiver::factories();
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
            // was redacted upstream; pipelines a registered receiver feeds take data from
            // outside and must redact it.
            let external = p["receivers"]
                .as_sequence()
                .map(|s| {
                    s.iter().filter_map(|v| v.as_str()).any(|r| {
                        let ty = r.split('/').next().unwrap_or(r);
                        receivers.get(Kind::Receiver, ty).is_some()
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
