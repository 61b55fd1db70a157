//! One unary gRPC call with a request that is already protobuf bytes.
//!
//! tonic's generated clients take a message to encode and compress gzip at level 6, which costs
//! several times more CPU than everything else the exporter does. Here the request bytes are
//! framed as they are (`Encoded` data is never decoded), compressed at gzip level 1 when asked,
//! and sent over tonic's `Channel` (its connection handling, TLS and timeouts). The response is
//! read per the gRPC HTTP/2 protocol: status from the trailers (or from the headers of a
//! trailers-only response), message from the one length-prefixed frame of the body.

use std::io::{Read, Write};
use std::time::Duration;

use bytes::{Buf, Bytes};
use http::header::{CONTENT_TYPE, TE};
use http::{HeaderMap, HeaderValue, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use tonic::transport::Channel;
use tonic::{Code, Status};
use tower::ServiceExt;

/// The gzip level: 1 compresses OTLP about as well as 6 for a fraction of the CPU.
pub(crate) const GZIP_LEVEL: u32 = 1;
/// The most response body read (a response is a small `Export*ServiceResponse`).
const MAX_RESPONSE: usize = 4 << 20;
/// gRPC message frame header: compressed flag and big-endian length.
const FRAME_HEADER: usize = 5;

/// A gRPC message frame holding `payload`, gzip-compressed when `gzip`.
pub(crate) fn frame(payload: &[u8], gzip: bool) -> std::io::Result<Bytes> {
    let mut out = Vec::with_capacity(FRAME_HEADER + if gzip { payload.len() / 4 } else { payload.len() });
    out.extend_from_slice(&[0; FRAME_HEADER]);
    if gzip {
        let mut enc = flate2::write::GzEncoder::new(out, flate2::Compression::new(GZIP_LEVEL));
        enc.write_all(payload)?;
        out = enc.finish()?;
        out[0] = 1;
    } else {
        out.extend_from_slice(payload);
    }
    let len = u32::try_from(out.len() - FRAME_HEADER)
        .map_err(|_| std::io::Error::other("request larger than 4 GiB"))?;
    out[1..FRAME_HEADER].copy_from_slice(&len.to_be_bytes());
    Ok(out.into())
}

/// `grpc-timeout` in milliseconds (at most 8 digits, as the spec allows).
fn grpc_timeout(t: Duration) -> HeaderValue {
    let ms = t.as_millis().clamp(1, 99_999_999);
    HeaderValue::from_str(&format!("{ms}m")).unwrap_or_else(|_| HeaderValue::from_static("1000m"))
}

/// The gRPC status of an HTTP status that is not 200 (gRPC's "HTTP to gRPC status code mapping").
fn code_of_http(status: StatusCode) -> Code {
    match status.as_u16() {
        400 => Code::Internal,
        401 => Code::Unauthenticated,
        403 => Code::PermissionDenied,
        404 => Code::Unimplemented,
        429 | 502..=504 => Code::Unavailable,
        _ => Code::Unknown,
    }
}

/// Sends one framed request to `path` and returns the response message's bytes.
pub(crate) async fn unary(
    channel: &Channel,
    path: &'static str,
    metadata: &HeaderMap,
    timeout: Duration,
    gzip: bool,
    body: Bytes,
) -> Result<Bytes, Status> {
    let mut req = Request::builder()
        .method(Method::POST)
        .uri(path)
        .body(tonic::body::Body::new(Full::new(body)))
        .map_err(|e| Status::internal(format!("cannot build the request: {e}")))?;
    let headers = req.headers_mut();
    headers.extend(metadata.iter().map(|(k, v)| (k.clone(), v.clone())));
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
    headers.insert(TE, HeaderValue::from_static("trailers"));
    headers.insert("grpc-timeout", grpc_timeout(timeout));
    if gzip {
        headers.insert("grpc-encoding", HeaderValue::from_static("gzip"));
    }
    let call = channel.clone().oneshot(req);
    let response = match tokio::time::timeout(timeout, call).await {
        Ok(r) => r.map_err(|e| Status::from_error(Box::new(e)))?,
        Err(_) => return Err(Status::deadline_exceeded(format!("no response within {timeout:?}"))),
    };
    let (parts, body) = response.into_parts();
    // A trailers-only response carries the status in its headers.
    if let Some(status) = Status::from_header_map(&parts.headers) {
        return match status.code() {
            Code::Ok => Ok(Bytes::new()),
            _ => Err(status),
        };
    }
    if parts.status != StatusCode::OK {
        return Err(Status::new(
            code_of_http(parts.status),
            format!("HTTP status {} without a gRPC status", parts.status),
        ));
    }
    let read = tokio::time::timeout(timeout, Limited::new(body, MAX_RESPONSE).collect()).await;
    let collected = match read {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => return Err(Status::from_error(e)),
        Err(_) => return Err(Status::deadline_exceeded(format!("no response within {timeout:?}"))),
    };
    let status = collected
        .trailers()
        .and_then(Status::from_header_map)
        .unwrap_or_else(|| Status::internal("the response has no grpc-status"));
    if status.code() != Code::Ok {
        return Err(status);
    }
    let compressed = parts
        .headers
        .get("grpc-encoding")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"gzip"));
    message(collected.to_bytes(), compressed)
}

/// The message of a one-frame response body (empty when the body is).
fn message(mut body: Bytes, gzip_ok: bool) -> Result<Bytes, Status> {
    if body.is_empty() {
        return Ok(body);
    }
    if body.len() < FRAME_HEADER {
        return Err(Status::internal("truncated response frame"));
    }
    let flag = body.get_u8();
    let len = body.get_u32() as usize;
    if body.len() < len {
        return Err(Status::internal("truncated response frame"));
    }
    let msg = body.split_to(len);
    match flag {
        0 => Ok(msg),
        1 if gzip_ok => {
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(&msg[..])
                .take(MAX_RESPONSE as u64)
                .read_to_end(&mut out)
                .map_err(|e| Status::internal(format!("cannot inflate the response: {e}")))?;
            Ok(out.into())
        }
        _ => Err(Status::internal("response frame compressed with an unknown encoding")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_plain_and_gzip() {
        let payload = b"hello hello hello hello".repeat(10);
        let plain = frame(&payload, false).unwrap();
        assert_eq!(plain[0], 0);
        assert_eq!(&plain[1..5], &(payload.len() as u32).to_be_bytes());
        assert_eq!(&plain[5..], &payload[..]);
        let gz = frame(&payload, true).unwrap();
        assert_eq!(gz[0], 1);
        let len = u32::from_be_bytes([gz[1], gz[2], gz[3], gz[4]]) as usize;
        assert_eq!(len, gz.len() - 5);
        let mut back = Vec::new();
        flate2::read::GzDecoder::new(&gz[5..]).read_to_end(&mut back).unwrap();
        assert_eq!(back, payload);
        // And the response reader takes both back.
        assert_eq!(message(plain, false).unwrap(), Bytes::from(payload.clone()));
        assert_eq!(message(gz, true).unwrap(), Bytes::from(payload));
    }

    #[test]
    fn bad_response_frames_are_errors() {
        assert!(message(Bytes::from_static(&[0, 0, 0]), false).is_err());
        assert!(message(Bytes::from_static(&[0, 0, 0, 0, 9, 1]), false).is_err());
        assert!(message(Bytes::from_static(&[1, 0, 0, 0, 1, 1]), false).is_err());
        assert!(message(Bytes::from_static(&[2, 0, 0, 0, 0]), true).is_err());
        assert_eq!(message(Bytes::new(), false).unwrap(), Bytes::new());
    }

    #[test]
    fn http_statuses_map_as_the_spec_says() {
        assert_eq!(code_of_http(StatusCode::SERVICE_UNAVAILABLE), Code::Unavailable);
        assert_eq!(code_of_http(StatusCode::TOO_MANY_REQUESTS), Code::Unavailable);
        assert_eq!(code_of_http(StatusCode::UNAUTHORIZED), Code::Unauthenticated);
        assert_eq!(code_of_http(StatusCode::IM_A_TEAPOT), Code::Unknown);
        assert_eq!(grpc_timeout(Duration::from_secs(5)), "5000m");
    }
}
