//! The test backend's OTLP/HTTP handlers: protobuf or JSON, optionally gzip; record the request,
//! answer what the test set, errors as a `google.rpc.Status` in the request's encoding.

use std::io::Read;
use std::sync::Arc;

use authwatch_core::{Signal, SignalKind};
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, StatusCode};
use prost::Message;

use super::{logs_response, metrics_response, trace_response, Encoding, Reply, Shared, Transport};

pub(super) async fn traces(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    http_export(&s, SignalKind::Traces, headers, body)
}

pub(super) async fn metrics(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    http_export(&s, SignalKind::Metrics, headers, body)
}

pub(super) async fn logs(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    http_export(&s, SignalKind::Logs, headers, body)
}

fn http_export(shared: &Shared, kind: SignalKind, headers: HeaderMap, body: Bytes) -> Response {
    let encoding = match headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    {
        Some(ct) if ct.starts_with("application/json") => Encoding::Json,
        Some(ct) if ct.starts_with("application/x-protobuf") => Encoding::Protobuf,
        _ => {
            return (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported content type",
            )
                .into_response()
        }
    };
    let compressed = match headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
    {
        None | Some("identity") => false,
        Some("gzip") => true,
        Some(_) => {
            return (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported content encoding",
            )
                .into_response()
        }
    };
    let body = if compressed {
        let mut out = Vec::new();
        if let Err(e) = flate2::read::GzDecoder::new(&body[..]).read_to_end(&mut out) {
            let e = DecodeError::Gzip(e);
            return error_response(encoding, StatusCode::BAD_REQUEST, &e.to_string());
        }
        Bytes::from(out)
    } else {
        body
    };
    let signal = match decode(kind, encoding, &body) {
        Ok(s) => s,
        Err(e) => return error_response(encoding, StatusCode::BAD_REQUEST, &e.to_string()),
    };
    let reply = shared.record(signal, Transport::Http, encoding, compressed, headers);
    match &reply {
        Reply::Ok | Reply::PartialSuccess { .. } => {
            let body = match (kind, encoding) {
                (SignalKind::Traces, Encoding::Protobuf) => trace_response(&reply).encode_to_vec(),
                (SignalKind::Metrics, Encoding::Protobuf) => {
                    metrics_response(&reply).encode_to_vec()
                }
                (SignalKind::Logs, Encoding::Protobuf) => logs_response(&reply).encode_to_vec(),
                (SignalKind::Traces, Encoding::Json) => to_json(&trace_response(&reply)),
                (SignalKind::Metrics, Encoding::Json) => to_json(&metrics_response(&reply)),
                (SignalKind::Logs, Encoding::Json) => to_json(&logs_response(&reply)),
            };
            (
                StatusCode::OK,
                [(header::CONTENT_TYPE, content_type(encoding))],
                body,
            )
                .into_response()
        }
        Reply::Unavailable => error_response(
            encoding,
            StatusCode::SERVICE_UNAVAILABLE,
            "test server is unavailable",
        ),
        Reply::Throttled(d) => {
            let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
            let mut r = error_response(
                encoding,
                StatusCode::TOO_MANY_REQUESTS,
                "test server is throttling",
            );
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
            r
        }
        Reply::InvalidArgument => error_response(
            encoding,
            StatusCode::BAD_REQUEST,
            "test server refuses this data",
        ),
    }
}

fn content_type(encoding: Encoding) -> &'static str {
    match encoding {
        Encoding::Protobuf => "application/x-protobuf",
        Encoding::Json => "application/json",
    }
}

fn to_json<T: serde::Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).unwrap_or_default()
}

/// An OTLP/HTTP error: a `google.rpc.Status` body in the request's encoding.
fn error_response(encoding: Encoding, status: StatusCode, message: &str) -> Response {
    let body = match encoding {
        Encoding::Protobuf => tonic_types::Status {
            code: i32::from(status.as_u16()),
            message: message.to_owned(),
            details: Vec::new(),
        }
        .encode_to_vec(),
        Encoding::Json => {
            to_json(&serde_json::json!({ "code": status.as_u16(), "message": message }))
        }
    };
    (
        status,
        [(header::CONTENT_TYPE, content_type(encoding))],
        body,
    )
        .into_response()
}

/// Why a request body was refused.
#[derive(Debug, thiserror::Error)]
enum DecodeError {
    #[error("bad gzip: {0}")]
    Gzip(#[source] std::io::Error),
    #[error("bad protobuf: {0}")]
    Protobuf(#[from] prost::DecodeError),
    #[error("bad JSON: {0}")]
    Json(#[from] serde_json::Error),
}

fn decode(kind: SignalKind, encoding: Encoding, body: &[u8]) -> Result<Signal, DecodeError> {
    fn pb<T: Message + Default>(b: &[u8]) -> Result<T, DecodeError> {
        Ok(T::decode(b)?)
    }
    fn js<T: serde::de::DeserializeOwned>(b: &[u8]) -> Result<T, DecodeError> {
        Ok(serde_json::from_slice(b)?)
    }
    Ok(match (kind, encoding) {
        (SignalKind::Traces, Encoding::Protobuf) => Signal::Traces(pb(body)?),
        (SignalKind::Metrics, Encoding::Protobuf) => Signal::Metrics(pb(body)?),
        (SignalKind::Logs, Encoding::Protobuf) => Signal::Logs(pb(body)?),
        (SignalKind::Traces, Encoding::Json) => Signal::Traces(js(body)?),
        (SignalKind::Metrics, Encoding::Json) => Signal::Metrics(js(body)?),
        (SignalKind::Logs, Encoding::Json) => Signal::Logs(js(body)?),
    })
}
