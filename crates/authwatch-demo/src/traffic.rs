//! The demo's client traffic: real logins against the stand-in (about eight a second from two
//! "services"), each reported as an OTLP client span with the HTTP semantic conventions' client
//! attributes, sent in batches to authwatch's own OTLP gRPC receiver.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use authwatch_core::otlp::collector::trace::v1::trace_service_client::TraceServiceClient;
use authwatch_core::otlp::collector::trace::v1::ExportTraceServiceRequest;
use authwatch_core::otlp::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use authwatch_core::otlp::resource::v1::Resource;
use authwatch_core::otlp::trace::v1::{span, status, ResourceSpans, ScopeSpans, Span, Status};
use authwatch_core::semconv;
use authwatch_core::time::otlp_time;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use super::{CLIENT_ID, CLIENT_SECRET};

/// Time between two logins.
const PACE: Duration = Duration::from_millis(125);
/// Time between two OTLP exports.
const EXPORT_EVERY: Duration = Duration::from_millis(500);
const SERVICES: [&str; 2] = ["demo-web", "demo-mobile-api"];
const USERS: [&str; 4] = [
    "alice@demo.test",
    "bob@demo.test",
    "chen@demo.test",
    "dana@demo.test",
];

/// One finished call, ready to become a span.
#[derive(Debug, Clone)]
pub(super) struct Call {
    pub service: &'static str,
    pub start: SystemTime,
    pub end: SystemTime,
    pub status: Option<u16>,
    pub oauth_error: Option<String>,
    /// Transport failure (`error.type`) when there was no response.
    pub transport_error: Option<&'static str>,
}

/// Sends logins until `stop` is cancelled; exports their spans to `otlp`.
pub(super) async fn run(provider: SocketAddr, otlp: SocketAddr, stop: CancellationToken) {
    let http = match reqwest::Client::builder()
        .timeout(Duration::from_secs(3))
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, "The demo cannot create its HTTP client; no traffic.");
            return;
        }
    };
    let channel = match tonic::transport::Endpoint::from_shared(format!("http://{otlp}")) {
        Ok(e) => e.connect_timeout(Duration::from_secs(2)).connect_lazy(),
        Err(e) => {
            tracing::warn!(error = %e, "The demo cannot address its OTLP receiver; no traffic.");
            return;
        }
    };
    let mut client = TraceServiceClient::new(channel);
    let url = format!("http://{provider}/oauth/token");
    let mut pending: Vec<Call> = Vec::new();
    let mut pace = tokio::time::interval(PACE);
    let mut export = tokio::time::interval(EXPORT_EVERY);
    let mut n: u64 = 0;
    let mut seed = otlp_time(SystemTime::now());
    loop {
        tokio::select! {
            biased;
            () = stop.cancelled() => break,
            _ = export.tick() => {
                if !pending.is_empty() {
                    let req = request(&pending, provider, &mut seed);
                    match client.export(req).await {
                        Ok(_) => pending.clear(),
                        // authwatch may still be starting: keep the spans (bounded) for the next try.
                        Err(e) => {
                            debug!(error = %e, spans = pending.len(), "Demo spans not accepted yet.");
                            let excess = pending.len().saturating_sub(200);
                            pending.drain(..excess);
                        }
                    }
                }
            }
            _ = pace.tick() => {
                n += 1;
                pending.push(login(&http, &url, n).await);
            }
        }
    }
}

/// One login through the password grant (every 7th a client_credentials grant, every 20th a
/// wrong password, which the provider rejects and authwatch does not count as its failure).
async fn login(http: &reqwest::Client, url: &str, n: u64) -> Call {
    let service = SERVICES[(n % 2) as usize];
    let user = USERS[(n % USERS.len() as u64) as usize];
    let password = if n.is_multiple_of(20) {
        "wrong"
    } else {
        "demo-user-password"
    };
    let form: Vec<(&str, &str)> = if n.is_multiple_of(7) {
        vec![
            ("grant_type", "client_credentials"),
            ("client_id", CLIENT_ID),
            ("client_secret", CLIENT_SECRET),
        ]
    } else {
        vec![
            ("grant_type", "password"),
            ("client_id", CLIENT_ID),
            ("client_secret", CLIENT_SECRET),
            ("username", user),
            ("password", password),
            ("scope", "openid"),
        ]
    };
    let start = SystemTime::now();
    let result = http.post(url).form(&form).send().await;
    let (status, oauth_error, transport_error) = match result {
        Ok(resp) => {
            let status = resp.status().as_u16();
            let body: serde_json::Value = resp
                .bytes()
                .await
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok())
                .unwrap_or(serde_json::Value::Null);
            let err = body
                .get("error")
                .and_then(|e| e.as_str())
                .map(|s| s.chars().take(64).collect());
            (Some(status), err, None)
        }
        Err(e) if e.is_timeout() => (None, None, Some("timeout")),
        Err(_) => (None, None, Some("connection_error")),
    };
    Call {
        service,
        start,
        end: SystemTime::now(),
        status,
        oauth_error,
        transport_error,
    }
}

/// splitmix64: ids that differ per span without a random number generator.
fn mix(x: &mut u64) -> u64 {
    *x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *x;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn s(key: &str, v: impl Into<String>) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(v.into())),
        }),
        ..Default::default()
    }
}

fn i(key: &str, v: i64) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::IntValue(v)),
        }),
        ..Default::default()
    }
}

/// The client span of one call, as an HTTP client instrumentation would write it.
pub(super) fn span_of(c: &Call, provider: SocketAddr, seed: &mut u64) -> Span {
    let mut trace_id = mix(seed).to_be_bytes().to_vec();
    trace_id.extend(mix(seed).to_be_bytes());
    let mut attributes = vec![
        s(semconv::HTTP_REQUEST_METHOD, "POST"),
        s(semconv::SERVER_ADDRESS, provider.ip().to_string()),
        i("server.port", i64::from(provider.port())),
        s(semconv::URL_FULL, format!("http://{provider}/oauth/token")),
        s(semconv::URL_TEMPLATE, "/oauth/token"),
    ];
    let failed = match (c.status, c.transport_error) {
        (Some(code), _) => {
            attributes.push(i(semconv::HTTP_RESPONSE_STATUS_CODE, i64::from(code)));
            if code >= 400 {
                attributes.push(s(semconv::ERROR_TYPE, code.to_string()));
            }
            code >= 400
        }
        (None, Some(kind)) => {
            attributes.push(s(semconv::ERROR_TYPE, kind));
            true
        }
        (None, None) => false,
    };
    if let Some(e) = &c.oauth_error {
        attributes.push(s(semconv::OAUTH_ERROR, e.clone()));
    }
    Span {
        trace_id,
        span_id: mix(seed).to_be_bytes().to_vec(),
        name: "POST".into(),
        kind: span::SpanKind::Client as i32,
        start_time_unix_nano: otlp_time(c.start),
        end_time_unix_nano: otlp_time(c.end),
        attributes,
        status: Some(Status {
            code: if failed {
                status::StatusCode::Error
            } else {
                status::StatusCode::Unset
            } as i32,
            message: String::new(),
        }),
        ..Default::default()
    }
}

/// One export request: a resource per calling service.
pub(super) fn request(
    calls: &[Call],
    provider: SocketAddr,
    seed: &mut u64,
) -> ExportTraceServiceRequest {
    let resource_spans = SERVICES
        .iter()
        .map(|svc| ResourceSpans {
            resource: Some(Resource {
                attributes: vec![
                    s(semconv::SERVICE_NAME, *svc),
                    s("deployment.environment.name", "demo"),
                ],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: "authwatch-demo".into(),
                    version: env!("CARGO_PKG_VERSION").into(),
                    ..Default::default()
                }),
                spans: calls
                    .iter()
                    .filter(|c| c.service == *svc)
                    .map(|c| span_of(c, provider, seed))
                    .collect(),
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        })
        .filter(|r| r.scope_spans.iter().any(|s| !s.spans.is_empty()))
        .collect();
    ExportTraceServiceRequest { resource_spans }
}
