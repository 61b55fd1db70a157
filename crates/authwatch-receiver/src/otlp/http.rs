//! OTLP/HTTP: `POST` of protobuf or JSON export requests, optionally gzip-compressed, on three
//! configurable paths. The body is read with a cap on its wire size and inflated with a cap on its
//! decompressed size, so neither a huge body nor a gzip bomb is ever held in memory.

use std::future::Future;
use std::io::{BufRead, Read};
use std::sync::Arc;

use authwatch_core::otlp::collector::logs::v1::ExportLogsServiceRequest;
use authwatch_core::otlp::collector::metrics::v1::ExportMetricsServiceRequest;
use authwatch_core::otlp::collector::trace::v1::ExportTraceServiceRequest;
use authwatch_core::budget::Charge;
use authwatch_core::{RunError, SignalKind};
use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use bytes::{Bytes, BytesMut};
use http::header::{
    ALLOW, AUTHORIZATION, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE, ORIGIN, RETRY_AFTER,
    WWW_AUTHENTICATE,
};
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use http_body_util::BodyExt;
use prost::Message;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use super::auth::BearerAuth;
use super::cors::Cors;
use super::ingest::{Decoded, Export, Ingest};
use super::status::Problem;
use super::HttpConfig;

const PROTOBUF: &str = "application/x-protobuf";
const JSON: &str = "application/json";

/// How a request body (and so its response) is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    Protobuf,
    Json,
}

impl Format {
    fn content_type(self) -> HeaderValue {
        HeaderValue::from_static(match self {
            Format::Protobuf => PROTOBUF,
            Format::Json => JSON,
        })
    }

    /// From `Content-Type`, ignoring parameters such as `charset`.
    fn from_headers(headers: &HeaderMap) -> Result<Format, Problem> {
        let raw = headers
            .get(CONTENT_TYPE)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .unwrap_or_default();
        let essence = raw.split(';').next().unwrap_or_default().trim();
        if essence.eq_ignore_ascii_case(PROTOBUF) {
            Ok(Format::Protobuf)
        } else if essence.eq_ignore_ascii_case(JSON) {
            Ok(Format::Json)
        } else {
            let shown = if raw.is_empty() {
                "none".to_owned()
            } else {
                format!("`{raw}`")
            };
            Err(Problem::unsupported_media_type(format!(
                "unsupported Content-Type {shown}: send {PROTOBUF} or {JSON}"
            )))
        }
    }
}

/// `Content-Encoding` of a request body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Identity,
    Gzip,
}

impl Encoding {
    fn from_headers(headers: &HeaderMap) -> Result<Encoding, Problem> {
        let mut values = headers.get_all(CONTENT_ENCODING).iter();
        let (value, more) = (values.next(), values.next().is_some());
        let Some(value) = value else {
            return Ok(Encoding::Identity);
        };
        let text = String::from_utf8_lossy(value.as_bytes());
        let token = text.trim();
        if !more {
            if token.is_empty() || token.eq_ignore_ascii_case("identity") {
                return Ok(Encoding::Identity);
            }
            if token.eq_ignore_ascii_case("gzip") || token.eq_ignore_ascii_case("x-gzip") {
                return Ok(Encoding::Gzip);
            }
        }
        Err(Problem::bad_request(format!(
            "unsupported Content-Encoding `{token}`: send the body uncompressed or with \
             Content-Encoding: gzip"
        )))
    }
}

/// What the router needs; shared by every request.
struct Endpoint {
    ingest: Ingest,
    traces: String,
    metrics: String,
    logs: String,
    max_body: usize,
    auth: Option<BearerAuth>,
    cors: Option<Cors>,
}

impl Endpoint {
    fn signal_for(&self, path: &str) -> Option<SignalKind> {
        if path == self.traces {
            Some(SignalKind::Traces)
        } else if path == self.metrics {
            Some(SignalKind::Metrics)
        } else if path == self.logs {
            Some(SignalKind::Logs)
        } else {
            None
        }
    }
}

/// The OTLP/HTTP router. Paths are matched exactly (no axum route syntax), so no configured path
/// can make route registration fail.
pub(crate) fn router(
    config: &HttpConfig,
    ingest: Ingest,
    auth: Option<BearerAuth>,
) -> axum::Router {
    let endpoint = Endpoint {
        auth,
        cors: config.cors.as_ref().and_then(Cors::new),
        ingest,
        traces: config.traces_url_path.as_str().to_owned(),
        metrics: config.metrics_url_path.as_str().to_owned(),
        logs: config.logs_url_path.as_str().to_owned(),
        max_body: config.max_request_body_size.get(),
    };
    axum::Router::new()
        .fallback(dispatch)
        .with_state(Arc::new(endpoint))
}

/// Serves the router on `listener` until `shutdown` is cancelled, then lets the requests in
/// flight finish. Slow, idle and surplus clients are bounded by `config`'s `read_header_timeout`,
/// `read_timeout`, `idle_timeout` and `max_connections` (see [`authwatch_net::server`]).
pub(crate) fn serve(
    config: &HttpConfig,
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    auth: Option<BearerAuth>,
    ingest: Ingest,
    shutdown: CancellationToken,
) -> impl Future<Output = Result<(), RunError>> + Send + 'static {
    let app = router(config, ingest, auth);
    let limits = config.limits();
    async move {
        authwatch_net::serve_http(listener, tls, app, limits, shutdown).await;
        Ok(())
    }
}

async fn dispatch(State(endpoint): State<Arc<Endpoint>>, req: Request) -> Response {
    let Some(cors) = &endpoint.cors else {
        return serve_request(&endpoint, req).await;
    };
    // Preflights first: browsers send them without credentials.
    if Cors::is_preflight(req.method(), req.headers()) {
        return cors.preflight(req.headers());
    }
    let origin = req.headers().get(ORIGIN).cloned();
    let mut response = serve_request(&endpoint, req).await;
    cors.decorate(origin.as_ref(), &mut response);
    response
}

async fn serve_request(endpoint: &Endpoint, req: Request) -> Response {
    // Authentication first: an unauthenticated client learns nothing, and its body is not read.
    if let Some(auth) = &endpoint.auth {
        if !auth.check(req.headers().get(AUTHORIZATION).map(|v| v.as_bytes())) {
            debug!("Refused an OTLP/HTTP request without the configured bearer token.");
            let format = Format::from_headers(req.headers()).unwrap_or(Format::Protobuf);
            let mut response = problem_response(
                &Problem::unauthenticated(
                    "missing or wrong bearer token: send `Authorization: Bearer <token>`",
                ),
                format,
            );
            response
                .headers_mut()
                .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            return response;
        }
    }
    let Some(kind) = endpoint.signal_for(req.uri().path()) else {
        return (
            StatusCode::NOT_FOUND,
            [(CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"))],
            "404 page not found: OTLP/HTTP paths are the configured traces, metrics and logs paths\n",
        )
            .into_response();
    };
    if req.method() != Method::POST {
        return (
            StatusCode::METHOD_NOT_ALLOWED,
            [
                (ALLOW, HeaderValue::from_static("POST")),
                (
                    CONTENT_TYPE,
                    HeaderValue::from_static("text/plain; charset=utf-8"),
                ),
            ],
            "405 method not allowed: OTLP/HTTP takes POST\n",
        )
            .into_response();
    }
    match kind {
        SignalKind::Traces => handle::<ExportTraceServiceRequest>(endpoint, req).await,
        SignalKind::Metrics => handle::<ExportMetricsServiceRequest>(endpoint, req).await,
        SignalKind::Logs => handle::<ExportLogsServiceRequest>(endpoint, req).await,
    }
}

async fn handle<R: Export>(endpoint: &Endpoint, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let format = match Format::from_headers(&parts.headers) {
        Ok(f) => f,
        // The request's encoding is unknown: answer in the spec's default, protobuf.
        Err(p) => {
            debug!(signal = %R::KIND, error = %p.message, "Refused an OTLP/HTTP request.");
            return problem_response(&p, Format::Protobuf);
        }
    };
    // Admission before the body is read: a refusal costs no read and no decode. The body is
    // counted as held (its declared size, then what arrived) until the pipelines have it.
    let declared = content_length(&parts.headers);
    if declared.is_some_and(|n| n > endpoint.max_body as u64) {
        return problem_response(&Problem::too_large(endpoint.max_body, "request body"), format);
    }
    let admitted = match endpoint.ingest.admit(R::KIND, declared.unwrap_or(0)) {
        Ok(admitted) => admitted,
        Err(e) => {
            debug!(signal = %R::KIND, error = %e, "Refused an OTLP/HTTP request before reading its body.");
            return problem_response(&Problem::from(&e), format);
        }
    };
    let mut held = endpoint.ingest.charge(declared.unwrap_or(0));
    let request = match decode::<R>(&endpoint.ingest, &parts.headers, body, endpoint.max_body, format, &mut held).await {
        Ok(r) => r,
        Err(p) => {
            debug!(
                signal = %R::KIND,
                status = %p.http,
                error = %p.message,
                "Refused an OTLP/HTTP request."
            );
            return problem_response(&p, format);
        }
    };
    let exported = match request {
        Decoded::Encoded(data) => endpoint.ingest.export_encoded(data).await.map(|()| None),
        Decoded::Decoded(request) => endpoint.ingest.export(request).await,
    };
    drop(held);
    endpoint.ingest.answered(admitted);
    match exported {
        Ok(rejected) => {
            let body = match format {
                Format::Protobuf => Bytes::from(R::response(rejected).encode_to_vec()),
                Format::Json => Bytes::from(R::response_json(rejected.as_ref()).to_string()),
            };
            (
                StatusCode::OK,
                [(CONTENT_TYPE, format.content_type())],
                body,
            )
                .into_response()
        }
        Err(e) => problem_response(&Problem::from(&e), format),
    }
}

/// Reads, inflates and decodes (or, for a pipeline that wants bytes, checks) the body, each step
/// capped and mapped to a [`Problem`].
async fn decode<R: Export>(
    ingest: &Ingest,
    headers: &HeaderMap,
    body: Body,
    max_body: usize,
    format: Format,
    held: &mut Charge,
) -> Result<Decoded<R>, Problem> {
    let encoding = Encoding::from_headers(headers)?;
    // A declared length over `max_body` was refused before admission.
    let declared = content_length(headers);
    let wire = read_capped(body, max_body, declared).await?;
    // A body without Content-Length (chunked) is counted once it has arrived.
    held.add((wire.len() as u64).saturating_sub(held.bytes()));
    let plain = match encoding {
        Encoding::Identity => wire,
        Encoding::Gzip => gunzip_capped(&wire[..], max_body)
            .map_err(|e| match e {
                InflateError::TooLarge => Problem::too_large(max_body, "decompressed request body"),
                InflateError::Invalid(e) => {
                    Problem::bad_data(format!("invalid gzip request body: {e}"))
                }
            })?
            .into(),
    };
    match format {
        Format::Protobuf => ingest
            .read_protobuf::<R>(plain)
            .map_err(|e| {
                Problem::bad_data(format!(
                    "cannot decode the body as protobuf {}: {e}",
                    R::NAME
                ))
            }),
        Format::Json => R::from_json(&plain).map(Decoded::Decoded).map_err(|e| {
            Problem::bad_data(format!(
                "cannot decode the body as OTLP/JSON {}: {e}",
                R::NAME
            ))
        }),
    }
}

/// The `Content-Length` a request declares, if it declares one that parses.
fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
}

/// Collects the body, refusing it as soon as it grows past `limit` bytes.
async fn read_capped(
    mut body: Body,
    limit: usize,
    declared: Option<u64>,
) -> Result<Bytes, Problem> {
    let capacity = declared
        .and_then(|n| usize::try_from(n).ok())
        .unwrap_or(0)
        .min(limit);
    let mut buf = BytesMut::with_capacity(capacity);
    while let Some(frame) = body.frame().await {
        let frame = frame
            .map_err(|e| Problem::bad_request(format!("cannot read the request body: {e}")))?;
        if let Ok(data) = frame.into_data() {
            if data.len() > limit - buf.len() {
                return Err(Problem::too_large(limit, "request body"));
            }
            buf.extend_from_slice(&data);
        }
    }
    Ok(buf.freeze())
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum InflateError {
    #[error("decompressed body is over the limit")]
    TooLarge,
    #[error(transparent)]
    Invalid(#[from] std::io::Error),
}

/// Inflates gzip (one or more members) into memory, stopping as soon as the output passes
/// `limit` bytes: at most `limit + 1` bytes are ever produced.
pub(crate) fn gunzip_capped<R: BufRead>(input: R, limit: usize) -> Result<Vec<u8>, InflateError> {
    let mut out = Vec::new();
    let cap = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    flate2::bufread::MultiGzDecoder::new(input)
        .take(cap)
        .read_to_end(&mut out)?;
    if out.len() > limit {
        return Err(InflateError::TooLarge);
    }
    Ok(out)
}

/// A failure as HTTP: the status, `Retry-After` when retryable, and a `google.rpc.Status` body in
/// the request's encoding.
fn problem_response(p: &Problem, format: Format) -> Response {
    let body = match format {
        Format::Protobuf => p.to_protobuf(),
        Format::Json => Bytes::from(p.to_json().to_string()),
    };
    let mut response = (p.http, [(CONTENT_TYPE, format.content_type())], body).into_response();
    if let Some(secs) = p.retry_after_secs() {
        response
            .headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from(secs));
    }
    response
}
