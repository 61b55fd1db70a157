//! The webhook endpoint: authorization, body limits, gzip, decoding, and the wire answers.

use std::io::Read;
use std::sync::Arc;

use authwatch_core::config::Secret;
use authwatch_core::ConsumeError;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::header::{AUTHORIZATION, CONTENT_ENCODING, CONTENT_TYPE, RETRY_AFTER};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use http_body_util::{BodyExt, Limited};
use subtle::ConstantTimeEq;
use tracing::debug;

use super::decode::decode_body;
use super::ingest::Ingest;

/// Everything a request needs.
pub(crate) struct Endpoint {
    pub authorization: Secret,
    pub max_body: usize,
    pub ingest: Arc<Ingest>,
}

pub(crate) fn router(path: &str, endpoint: Arc<Endpoint>) -> axum::Router {
    // A `UrlPath` holds no route syntax (`{`, `}`, `*`); a segment starting with `:` is a plain
    // segment too (axum 0.7's capture syntax, which axum 0.8 would refuse with a panic).
    axum::Router::new()
        .without_v07_checks()
        .route(path, axum::routing::post(handle))
        .with_state(endpoint)
}

fn text(status: StatusCode, msg: impl Into<String>) -> Response {
    let mut body = msg.into();
    body.push('\n');
    (
        status,
        [(
            CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        )],
        body,
    )
        .into_response()
}

/// Whether the `Authorization` header equals the configured value, compared in constant time.
fn authorized(headers: &HeaderMap, expected: &Secret) -> bool {
    let Some(got) = headers.get(AUTHORIZATION) else {
        return false;
    };
    let want = expected.expose().as_bytes();
    !want.is_empty() && bool::from(got.as_bytes().ct_eq(want))
}

#[derive(Debug, PartialEq)]
enum Encoding {
    Identity,
    Gzip,
}

/// The body's encoding; `None` when it is neither gzip nor identity.
fn encoding(headers: &HeaderMap) -> Option<Encoding> {
    let Some(v) = headers.get(CONTENT_ENCODING) else {
        return Some(Encoding::Identity);
    };
    match v.to_str().map(str::trim) {
        Ok(s) if s.eq_ignore_ascii_case("gzip") || s.eq_ignore_ascii_case("x-gzip") => {
            Some(Encoding::Gzip)
        }
        Ok(s) if s.is_empty() || s.eq_ignore_ascii_case("identity") => Some(Encoding::Identity),
        _ => None,
    }
}

fn too_large(max: usize) -> Response {
    text(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("request body is larger than {max} bytes"),
    )
}

/// Inflates at most `limit + 1` bytes; `Ok(None)` when the output exceeds `limit`.
fn gunzip_capped(input: &[u8], limit: usize) -> std::io::Result<Option<Vec<u8>>> {
    let mut out = Vec::new();
    let cap = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    flate2::read::MultiGzDecoder::new(input)
        .take(cap)
        .read_to_end(&mut out)?;
    Ok((out.len() <= limit).then_some(out))
}

fn refused(e: &ConsumeError) -> Response {
    let retry = |status, d: std::time::Duration| {
        let secs = d.as_secs_f64().ceil().max(1.0) as u64;
        let mut r = text(status, e.to_string());
        r.headers_mut().insert(RETRY_AFTER, HeaderValue::from(secs));
        r
    };
    match e.cause() {
        ConsumeError::Throttled(d) => retry(StatusCode::TOO_MANY_REQUESTS, *d),
        ConsumeError::Full | ConsumeError::Closed | ConsumeError::Partial(_) => retry(
            StatusCode::SERVICE_UNAVAILABLE,
            e.retry_after().unwrap_or(std::time::Duration::from_secs(1)),
        ),
        ConsumeError::Permanent(_) => text(StatusCode::BAD_REQUEST, e.to_string()),
        ConsumeError::NoPipeline(_) => text(StatusCode::INTERNAL_SERVER_ERROR, "internal error"),
    }
}

async fn handle(State(ep): State<Arc<Endpoint>>, req: Request) -> Response {
    if !authorized(req.headers(), &ep.authorization) {
        debug!("Refused an Auth0 log stream request without the configured Authorization.");
        return text(
            StatusCode::UNAUTHORIZED,
            "missing or wrong Authorization header",
        );
    }
    let Some(enc) = encoding(req.headers()) else {
        return text(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported Content-Encoding; send the body as is or with gzip",
        );
    };
    let body: Body = req.into_body();
    let wire = match Limited::new(body, ep.max_body).collect().await {
        Ok(c) => c.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => return too_large(ep.max_body),
        Err(e) => {
            return text(
                StatusCode::BAD_REQUEST,
                format!("cannot read the request body: {e}"),
            )
        }
    };
    let bytes = match enc {
        Encoding::Identity => wire.to_vec(),
        Encoding::Gzip => match gunzip_capped(&wire, ep.max_body) {
            Ok(Some(b)) => b,
            Ok(None) => return too_large(ep.max_body),
            Err(e) => {
                return text(
                    StatusCode::BAD_REQUEST,
                    format!("invalid gzip request body: {e}"),
                )
            }
        },
    };
    let events = match decode_body(&bytes) {
        Ok(e) => e,
        Err(e) => return text(StatusCode::BAD_REQUEST, e.to_string()),
    };
    match ep.ingest.ingest(events).await {
        Ok(o) => {
            ep.ingest.note_push();
            (
            StatusCode::OK,
            [(CONTENT_TYPE, HeaderValue::from_static("application/json"))],
            format!(
                "{{\"accepted\":{},\"duplicates\":{}}}",
                    o.accepted, o.duplicates
                ),
            )
                .into_response()
        }
        Err(e) => refused(&e),
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::time::Duration;

    use authwatch_core::config::{Positive, Secret};
    use authwatch_core::{ReceiverConfig, ReceiverContext, Router, Settings};
    use axum::http::StatusCode;
    use bytes::Bytes;
    use http_body_util::BodyExt;
    use hyper::body::Frame;
    use hyper_util::rt::TokioIo;

    const HANG_GUARD: Duration = Duration::from_secs(120);

    /// The webhook entry point answers an oversized streamed (chunked) body with a `413` that a
    /// real client reads, and goes on serving.
    #[tokio::test]
    async fn oversized_chunked_body_gets_a_readable_413() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let config = super::super::Config {
            endpoint: authwatch_net::ListenAddr::localhost(port),
            authorization: Secret::new("Bearer t"),
            max_request_body_size: Positive(64 * 1024),
            ..Default::default()
        };
        let settings = Settings::new("auth0_logs".parse().unwrap());
        let running = config
            .build(ReceiverContext {
                settings: settings.clone(),
                next: Router::new(),
            })
            .await
            .unwrap();
        let task = tokio::spawn(running);
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
            .await
            .unwrap();
        let conn = tokio::spawn(conn);
        let chunks = futures::stream::iter(
            (0..64).map(|_| Ok::<_, Infallible>(Frame::data(Bytes::from(vec![b' '; 16 * 1024])))),
        );
        let req = http::Request::post("/auth0/logs")
            .header("host", "localhost")
            .header("authorization", "Bearer t")
            .body(http_body_util::StreamBody::new(chunks))
            .unwrap();
        let res = tokio::time::timeout(HANG_GUARD, sender.send_request(req))
            .await
            .unwrap()
            .expect("the client must read the answer, not a reset");
        assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
        let body = res.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], b"request body is larger than 65536 bytes\n");
        drop(sender);
        let _ = tokio::time::timeout(HANG_GUARD, conn).await;
        settings.shutdown.cancel();
        tokio::time::timeout(HANG_GUARD, task)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
    }
}
