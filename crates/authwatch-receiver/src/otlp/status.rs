//! Failures on the wire, per the OTLP spec (and the Collector's
//! `otlpreceiver/internal/errors/errors.go`): one [`Problem`] rendered as a gRPC status or as an
//! HTTP status with a `google.rpc.Status` body.
//!
//! | cause | gRPC | HTTP |
//! | --- | --- | --- |
//! | `Full`, `Closed` | `UNAVAILABLE` + `RetryInfo` | 503 + `Retry-After` |
//! | `Throttled(d)` | `RESOURCE_EXHAUSTED` + `RetryInfo(d)` | 429 + `Retry-After: ceil(d)` |
//! | `NoPipeline` | `UNIMPLEMENTED` | 404 |
//! | `Permanent` | `INVALID_ARGUMENT` | 400 |
//! | undecodable body | `INVALID_ARGUMENT` | 400 + `BadRequest` |
//! | a gRPC message that cannot be read ([`FrameError`]: bad gzip, a frame cut short) | `INVALID_ARGUMENT` | — |
//! | message or body too large | `RESOURCE_EXHAUSTED`, no `RetryInfo` | 413 |
//! | a gRPC frame against the gRPC spec (bad flag, compressed without `grpc-encoding`, none) | `INTERNAL` | — |

use std::time::Duration;

use authwatch_core::ConsumeError;
use bytes::Bytes;

use super::grpc_frame::FrameError;
use http::StatusCode;
use tonic::Code;
use tonic_types::{ErrorDetails, StatusExt};

/// The `google.rpc.BadRequest` field named in bad-payload answers.
const BODY_FIELD: &str = "body";

/// A failed request, ready to be answered on either transport.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Problem {
    pub code: Code,
    pub http: StatusCode,
    pub message: String,
    pub retry_after: Option<Duration>,
    /// Attach a `google.rpc.BadRequest` detail describing the bad body.
    pub bad_request: bool,
}

impl From<&ConsumeError> for Problem {
    fn from(e: &ConsumeError) -> Self {
        // Some consumers may have taken the data: the client is still told to retry, since the
        // others need it (a counting consumer skips spans it has counted, see `error_rate`).
        let (code, http) = match e.cause() {
            ConsumeError::Full | ConsumeError::Closed | ConsumeError::Partial(_) => {
                (Code::Unavailable, StatusCode::SERVICE_UNAVAILABLE)
            }
            ConsumeError::Throttled(_) => (Code::ResourceExhausted, StatusCode::TOO_MANY_REQUESTS),
            ConsumeError::NoPipeline(_) => (Code::Unimplemented, StatusCode::NOT_FOUND),
            ConsumeError::Permanent(_) => (Code::InvalidArgument, StatusCode::BAD_REQUEST),
        };
        Problem {
            code,
            http,
            message: e.to_string(),
            retry_after: e.retry_after(),
            bad_request: false,
        }
    }
}

impl From<&FrameError> for tonic::Status {
    /// A gRPC request message that could not be read. The sender's faults are refused so that
    /// OTLP clients do not retry them (no `RetryInfo`; not `OUT_OF_RANGE`, which they retry):
    /// `INVALID_ARGUMENT` for bytes that cannot be read, `RESOURCE_EXHAUSTED` as grpc-go for a
    /// message over the limit. What the gRPC spec calls a protocol error stays `INTERNAL`.
    fn from(e: &FrameError) -> Self {
        match e {
            FrameError::Body(status) => status.clone(),
            FrameError::PrefixCutShort { .. }
            | FrameError::MessageCutShort { .. }
            | FrameError::Gzip(_) => {
                tonic::Status::invalid_argument(format!("cannot read the request message: {e}"))
            }
            FrameError::TooLarge { .. } | FrameError::InflatesTooLarge { .. } => {
                tonic::Status::resource_exhausted(format!(
                    "{e}: send smaller requests (the sender's batch size) or raise \
                     max_recv_msg_size_mib"
                ))
            }
            FrameError::CompressedWithoutEncoding
            | FrameError::InvalidFlag(_)
            | FrameError::Missing => tonic::Status::internal(e.to_string()),
            FrameError::Refused(refusal) => Problem::from(refusal).to_grpc(),
        }
    }
}

impl Problem {
    /// The body cannot be decoded (bad protobuf, JSON or gzip): 400, not retryable.
    pub(crate) fn bad_data(message: impl Into<String>) -> Self {
        Problem {
            code: Code::InvalidArgument,
            http: StatusCode::BAD_REQUEST,
            message: message.into(),
            retry_after: None,
            bad_request: true,
        }
    }

    /// A request the receiver does not speak (e.g. an unknown `Content-Encoding`): 400.
    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Problem {
            bad_request: false,
            ..Problem::bad_data(message)
        }
    }

    /// The body is over `max_request_body_size`, compressed or not: 413, not retryable.
    pub(crate) fn too_large(limit: usize, what: &str) -> Self {
        Problem {
            code: Code::InvalidArgument,
            http: StatusCode::PAYLOAD_TOO_LARGE,
            message: format!(
                "{what} is larger than max_request_body_size ({limit} bytes); send smaller batches"
            ),
            retry_after: None,
            bad_request: false,
        }
    }

    /// No or a wrong credential: `UNAUTHENTICATED` / 401, not retryable.
    pub(crate) fn unauthenticated(message: impl Into<String>) -> Self {
        Problem {
            code: Code::Unauthenticated,
            http: StatusCode::UNAUTHORIZED,
            message: message.into(),
            retry_after: None,
            bad_request: false,
        }
    }

    /// A `Content-Type` other than protobuf or JSON: 415.
    pub(crate) fn unsupported_media_type(message: impl Into<String>) -> Self {
        Problem {
            code: Code::InvalidArgument,
            http: StatusCode::UNSUPPORTED_MEDIA_TYPE,
            message: message.into(),
            retry_after: None,
            bad_request: false,
        }
    }

    /// Whole seconds for `Retry-After`: rounded up, at least 1.
    pub(crate) fn retry_after_secs(&self) -> Option<u64> {
        self.retry_after.map(|d| {
            let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
            secs.max(1)
        })
    }

    fn details(&self) -> ErrorDetails {
        let mut d = ErrorDetails::new();
        if let Some(after) = self.retry_after {
            d.set_retry_info(Some(after));
        }
        if self.bad_request {
            d.add_bad_request_violation(BODY_FIELD, self.message.clone());
        }
        d
    }

    /// The gRPC status, with `google.rpc.RetryInfo` / `BadRequest` in its details.
    pub(crate) fn to_grpc(&self) -> tonic::Status {
        tonic::Status::with_error_details(self.code, self.message.clone(), self.details())
    }

    /// The protobuf-encoded `google.rpc.Status` (what `grpc-status-details-bin` carries).
    pub(crate) fn to_protobuf(&self) -> Bytes {
        self.to_grpc().details().to_vec().into()
    }

    /// The `google.rpc.Status` in proto3 JSON.
    pub(crate) fn to_json(&self) -> serde_json::Value {
        let mut details = Vec::new();
        if let Some(after) = self.retry_after {
            details.push(serde_json::json!({
                "@type": "type.googleapis.com/google.rpc.RetryInfo",
                "retryDelay": json_duration(after),
            }));
        }
        if self.bad_request {
            details.push(serde_json::json!({
                "@type": "type.googleapis.com/google.rpc.BadRequest",
                "fieldViolations": [{ "field": BODY_FIELD, "description": self.message }],
            }));
        }
        let mut status = serde_json::json!({
            "code": self.code as i32,
            "message": self.message,
        });
        if !details.is_empty() {
            status["details"] = details.into();
        }
        status
    }
}

/// `google.protobuf.Duration` in proto3 JSON: `1s`, `1.500s`, `0.000001s`.
fn json_duration(d: Duration) -> String {
    let nanos = d.subsec_nanos();
    if nanos == 0 {
        return format!("{}s", d.as_secs());
    }
    let mut fraction = format!("{nanos:09}");
    while fraction.ends_with("000") {
        fraction.truncate(fraction.len() - 3);
    }
    format!("{}.{fraction}s", d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;
    use authwatch_core::SignalKind;
    use prost::Message;
    use tonic_types::{RpcStatusExt, StatusExt};

    #[test]
    fn consume_errors_map_per_otlp_spec() {
        let cases = [
            (ConsumeError::Full, Code::Unavailable, 503, Some(1)),
            (ConsumeError::Closed, Code::Unavailable, 503, Some(1)),
            (
                ConsumeError::Throttled(Duration::from_millis(2500)),
                Code::ResourceExhausted,
                429,
                Some(3),
            ),
            (
                ConsumeError::NoPipeline(SignalKind::Logs),
                Code::Unimplemented,
                404,
                None,
            ),
            (
                authwatch_testkit::permanent("bad"),
                Code::InvalidArgument,
                400,
                None,
            ),
        ];
        for (e, code, http, retry) in cases {
            let p = Problem::from(&e);
            assert_eq!(p.code, code, "{e:?}");
            assert_eq!(p.http.as_u16(), http, "{e:?}");
            assert_eq!(p.retry_after_secs(), retry, "{e:?}");
            assert_eq!(p.to_grpc().code(), code);
            assert_eq!(p.message, e.to_string());
        }
    }

    #[test]
    fn throttled_carries_retry_info_on_both_transports() {
        let p = Problem::from(&ConsumeError::Throttled(Duration::from_secs(7)));
        let g = p.to_grpc();
        assert_eq!(
            g.get_details_retry_info().and_then(|r| r.retry_delay),
            Some(Duration::from_secs(7))
        );
        let pb = tonic_types::Status::decode(p.to_protobuf()).unwrap();
        assert_eq!(pb.code, Code::ResourceExhausted as i32);
        assert_eq!(
            pb.get_details_retry_info().and_then(|r| r.retry_delay),
            Some(Duration::from_secs(7))
        );
        let j = p.to_json();
        assert_eq!(j["code"], 8);
        assert_eq!(j["details"][0]["retryDelay"], "7s");
    }

    #[test]
    fn bad_data_carries_bad_request() {
        let p = Problem::bad_data("cannot decode");
        let pb = tonic_types::Status::decode(p.to_protobuf()).unwrap();
        assert_eq!(pb.code, Code::InvalidArgument as i32);
        assert_eq!(pb.message, "cannot decode");
        let br = pb.get_details_bad_request().unwrap();
        assert_eq!(br.field_violations[0].description, "cannot decode");
        assert_eq!(
            p.to_json(),
            serde_json::json!({
                "code": 3,
                "message": "cannot decode",
                "details": [{
                    "@type": "type.googleapis.com/google.rpc.BadRequest",
                    "fieldViolations": [{"field": "body", "description": "cannot decode"}],
                }],
            })
        );
        assert_eq!(p.retry_after_secs(), None);
    }

    #[test]
    fn durations_in_proto3_json() {
        assert_eq!(json_duration(Duration::from_secs(3)), "3s");
        assert_eq!(json_duration(Duration::from_millis(1500)), "1.500s");
        assert_eq!(json_duration(Duration::from_micros(1)), "0.000001s");
        assert_eq!(json_duration(Duration::from_nanos(5)), "0.000000005s");
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        let p = Problem::from(&ConsumeError::Throttled(Duration::ZERO));
        assert_eq!(p.retry_after_secs(), Some(1));
        let p = Problem::from(&ConsumeError::Throttled(Duration::from_secs(60)));
        assert_eq!(p.retry_after_secs(), Some(60));
    }
}
