//! What both transports do with a decoded request: drop the items the OTLP spec calls invalid,
//! hand the rest to the pipelines, count, and build the `Export*ServiceResponse`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use authwatch_core::otlp::collector::logs::v1::{
    ExportLogsPartialSuccess, ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use authwatch_core::otlp::collector::metrics::v1::{
    ExportMetricsPartialSuccess, ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use authwatch_core::otlp::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use authwatch_core::otlp::logs::v1::LogRecord;
use authwatch_core::otlp::trace::v1::Span;
use authwatch_core::budget::Charge;
use authwatch_core::telemetry::ReceiverTelemetry;
use authwatch_core::wire::{self, Encoded};
use authwatch_core::{Backlog, ConsumeError, MemoryBudget, Router, Signal, SignalKind};
use bytes::Bytes;
use serde::de::DeserializeOwned;

use super::json::JsonError;

const TRACE_ID_LEN: usize = 16;
const SPAN_ID_LEN: usize = 8;

/// Items dropped from a request because they are invalid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Rejected {
    pub count: usize,
    pub message: String,
}

/// One OTLP export request type (traces, metrics or logs).
pub(crate) trait Export:
    prost::Message + Default + DeserializeOwned + Send + 'static
{
    type Response: prost::Message + Default + Send + 'static;
    const KIND: SignalKind;
    /// Protobuf message name, for error messages.
    const NAME: &'static str;
    /// The gRPC service and its `Export` method's path.
    const SERVICE: &'static str;
    const PATH: &'static str;

    /// Decodes OTLP/JSON.
    fn from_json(bytes: &[u8]) -> Result<Self, JsonError> {
        Ok(serde_json::from_slice(bytes)?)
    }
    /// Drops the items the OTLP spec calls invalid, in place; valid items are left untouched.
    fn drop_invalid(&mut self) -> Option<Rejected>;
    fn into_signal(self) -> Signal;
    fn response(rejected: Option<Rejected>) -> Self::Response;
    /// The response as OTLP/JSON: `{}`, or `partialSuccess` with the count as a string (proto3
    /// JSON maps int64 to a string).
    fn response_json(rejected: Option<&Rejected>) -> serde_json::Value {
        match rejected {
            None => serde_json::json!({}),
            Some(r) => {
                let mut partial = serde_json::Map::new();
                partial.insert(Self::REJECTED_JSON_KEY.into(), r.count.to_string().into());
                partial.insert("errorMessage".into(), r.message.clone().into());
                serde_json::json!({ "partialSuccess": partial })
            }
        }
    }
    /// `rejectedSpans`, `rejectedDataPoints` or `rejectedLogRecords`.
    const REJECTED_JSON_KEY: &'static str;
}

/// A request being read and handed on, from its admission until it is answered (or dropped).
pub(crate) struct Admitted {
    at: std::time::Instant,
    in_flight: Arc<AtomicUsize>,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Hands decoded requests to the pipelines and counts them, for one transport.
#[derive(Clone)]
pub(crate) struct Ingest {
    /// Requests admitted and not yet answered, and how many may be.
    in_flight: Arc<AtomicUsize>,
    max_in_flight: usize,
    next: Router,
    telemetry: ReceiverTelemetry,
    budget: MemoryBudget,
}

impl Ingest {
    pub(crate) fn new(next: Router, telemetry: ReceiverTelemetry) -> Self {
        Ingest {
            in_flight: Arc::new(AtomicUsize::new(0)),
            max_in_flight: usize::MAX,
            next,
            telemetry,
            budget: MemoryBudget::default(),
        }
    }

    /// Admits requests against the run's memory budget (a fresh one, admitting everything, by
    /// default).
    pub(crate) fn with_budget(mut self, budget: MemoryBudget) -> Self {
        self.budget = budget;
        self
    }

    /// Admits at most `n` requests at once (`max_requests_in_flight`; no limit by default).
    pub(crate) fn with_in_flight_limit(mut self, n: usize) -> Self {
        self.max_in_flight = n;
        self
    }

    /// Whether a request of `kind` declaring `incoming` bytes may be read: asked before its
    /// body is read, so that a refusal costs no read and no decode. Refused with `Full` (gRPC
    /// `UNAVAILABLE`, HTTP 503) while the signal's pipelines are backed up
    /// ([`Backlog::Full`]) or `max_requests_in_flight` requests of this transport are being read
    /// and handed on; with `Throttled` when the memory budget is spent. Refusals are counted per
    /// request (their items are not known).
    pub(crate) fn admit(&self, kind: SignalKind, incoming: u64) -> Result<Admitted, ConsumeError> {
        let admitted = self.reserve(kind).and_then(|admitted| {
            // A refusal here drops the reservation.
            self.budget.admit(incoming).map(|()| admitted)
        });
        if admitted.is_err() {
            self.telemetry.refused_request();
        }
        admitted
    }

    /// One of the `max_requests_in_flight` places, unless the pipelines are backed up or every
    /// place is taken (checked and taken at once, so concurrent requests never pass the limit).
    fn reserve(&self, kind: SignalKind) -> Result<Admitted, ConsumeError> {
        if self.next.backlog_for(kind) == Backlog::Full {
            return Err(ConsumeError::Full);
        }
        let max = self.max_in_flight;
        self.in_flight
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                (n < max).then_some(n + 1)
            })
            .map_err(|_| ConsumeError::Full)?;
        Ok(Admitted {
            at: std::time::Instant::now(),
            in_flight: self.in_flight.clone(),
        })
    }

    /// Whether `more` bytes than first declared may be read (the gRPC frame header's length):
    /// the memory budget only, the request being admitted already.
    pub(crate) fn admit_more(&self, more: u64) -> Result<(), ConsumeError> {
        let admitted = self.budget.admit(more);
        if admitted.is_err() {
            self.telemetry.refused_request();
        }
        admitted
    }

    /// An admitted request is answered now (its duration is observed).
    pub(crate) fn answered(&self, admitted: Admitted) {
        self.telemetry.request_answered(admitted.at);
    }

    /// Counts a body being read and handed on as held until the charge is dropped.
    pub(crate) fn charge(&self, bytes: u64) -> Charge {
        self.budget.charge(bytes)
    }

    /// Forwards the valid part of `req` and tells what was dropped (the partial success). An
    /// empty request, or one with nothing valid left, succeeds without reaching the pipelines.
    pub(crate) async fn export<R: Export>(
        &self,
        mut req: R,
    ) -> Result<Option<Rejected>, ConsumeError> {
        let rejected = req.drop_invalid();
        if let Some(r) = &rejected {
            self.telemetry.refused(R::KIND, r.count);
        }
        let signal = req.into_signal();
        let n = signal.item_count();
        if n > 0 {
            match self.next.route(signal).await {
                Ok(()) => self.telemetry.accepted(R::KIND, n),
                Err(e) => {
                    self.telemetry.refused(R::KIND, n);
                    return Err(e);
                }
            }
        }
        Ok(rejected)
    }
}

/// Why a body is not a protobuf export request.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ProtobufError {
    /// Found by the walk of a request the pipelines want as bytes.
    #[error(transparent)]
    Wire(#[from] wire::WireError),
    #[error(transparent)]
    Decode(#[from] prost::DecodeError),
}

/// A protobuf request as the pipelines will get it.
pub(crate) enum Decoded<R> {
    /// Checked and counted, still bytes: the pipelines want it so and every item is valid.
    Encoded(Encoded),
    Decoded(R),
}

impl Ingest {
    /// Checks or decodes a protobuf request. Requests the pipelines would rather get as bytes
    /// (see [`authwatch_core::wire`]) are only walked when all their items are valid; the others
    /// are decoded. The error (what is wrong with the bytes) is for the sender (400 /
    /// INVALID_ARGUMENT).
    pub(crate) fn read_protobuf<R: Export>(
        &self,
        bytes: Bytes,
    ) -> Result<Decoded<R>, ProtobufError> {
        if self.next.wants_encoded_for(R::KIND) {
            match wire::check(R::KIND, &bytes) {
                Some(Ok(s)) if s.invalid == 0 => {
                    return Ok(Decoded::Encoded(Encoded::new(R::KIND, bytes, s.items)));
                }
                Some(Err(e)) => return Err(e.into()),
                // Invalid items to drop, or a signal that is not walked: decode.
                Some(Ok(_)) | None => {}
            }
        }
        Ok(Decoded::Decoded(R::decode(bytes)?))
    }

    /// Forwards a checked request in which every item is valid.
    pub(crate) async fn export_encoded(&self, data: Encoded) -> Result<(), ConsumeError> {
        let (kind, n) = (data.kind(), data.items());
        if n == 0 {
            return Ok(());
        }
        match self.next.route(Signal::Encoded(data)).await {
            Ok(()) => {
                self.telemetry.accepted(kind, n);
                Ok(())
            }
            Err(e) => {
                self.telemetry.refused(kind, n);
                Err(e)
            }
        }
    }
}

fn plural(n: usize, one: &'static str, many: &'static str) -> &'static str {
    if n == 1 {
        one
    } else {
        many
    }
}

fn span_is_valid(s: &Span) -> bool {
    s.trace_id.len() == TRACE_ID_LEN
        && s.span_id.len() == SPAN_ID_LEN
        && (s.parent_span_id.is_empty() || s.parent_span_id.len() == SPAN_ID_LEN)
}

fn log_record_is_valid(r: &LogRecord) -> bool {
    (r.trace_id.is_empty() || r.trace_id.len() == TRACE_ID_LEN)
        && (r.span_id.is_empty() || r.span_id.len() == SPAN_ID_LEN)
}

/// Keeps the items of a two-level container (resource → scope → items) that pass `valid`;
/// drops scopes and resources that only became empty through that. Returns how many items went.
macro_rules! retain_items {
    ($resources:expr, $scopes:ident, $items:ident, $valid:expr) => {{
        let mut dropped = 0usize;
        $resources.retain_mut(|r| {
            let scopes_before = r.$scopes.len();
            r.$scopes.retain_mut(|s| {
                let before = s.$items.len();
                s.$items.retain($valid);
                let gone = before - s.$items.len();
                dropped += gone;
                !(gone > 0 && s.$items.is_empty())
            });
            !(r.$scopes.len() < scopes_before && r.$scopes.is_empty())
        });
        dropped
    }};
}

impl Export for ExportTraceServiceRequest {
    type Response = ExportTraceServiceResponse;
    const KIND: SignalKind = SignalKind::Traces;
    const NAME: &'static str = "ExportTraceServiceRequest";
    const SERVICE: &'static str = "opentelemetry.proto.collector.trace.v1.TraceService";
    const PATH: &'static str = authwatch_net::otlp::TRACES_EXPORT_PATH;
    const REJECTED_JSON_KEY: &'static str = "rejectedSpans";

    fn drop_invalid(&mut self) -> Option<Rejected> {
        let n = retain_items!(self.resource_spans, scope_spans, spans, span_is_valid);
        (n > 0).then(|| Rejected {
            count: n,
            message: format!(
                "dropped {n} {} with an invalid id: trace_id must be 16 bytes, span_id 8 bytes \
                 and parent_span_id empty or 8 bytes",
                plural(n, "span", "spans")
            ),
        })
    }

    fn into_signal(self) -> Signal {
        Signal::Traces(self)
    }

    fn response(rejected: Option<Rejected>) -> Self::Response {
        ExportTraceServiceResponse {
            partial_success: rejected.map(|r| ExportTracePartialSuccess {
                rejected_spans: i64::try_from(r.count).unwrap_or(i64::MAX),
                error_message: r.message,
            }),
        }
    }
}

impl Export for ExportMetricsServiceRequest {
    type Response = ExportMetricsServiceResponse;
    const KIND: SignalKind = SignalKind::Metrics;
    const NAME: &'static str = "ExportMetricsServiceRequest";
    const SERVICE: &'static str = "opentelemetry.proto.collector.metrics.v1.MetricsService";
    const PATH: &'static str = authwatch_net::otlp::METRICS_EXPORT_PATH;
    const REJECTED_JSON_KEY: &'static str = "rejectedDataPoints";

    /// With the check for data the serde impls would drop silently (see `json.rs`).
    fn from_json(bytes: &[u8]) -> Result<Self, JsonError> {
        super::json::metrics_from_json(bytes)
    }

    /// The spec defines no invalid data points at this level: everything is forwarded.
    fn drop_invalid(&mut self) -> Option<Rejected> {
        None
    }

    fn into_signal(self) -> Signal {
        Signal::Metrics(self)
    }

    fn response(rejected: Option<Rejected>) -> Self::Response {
        ExportMetricsServiceResponse {
            partial_success: rejected.map(|r| ExportMetricsPartialSuccess {
                rejected_data_points: i64::try_from(r.count).unwrap_or(i64::MAX),
                error_message: r.message,
            }),
        }
    }
}

impl Export for ExportLogsServiceRequest {
    type Response = ExportLogsServiceResponse;
    const KIND: SignalKind = SignalKind::Logs;
    const NAME: &'static str = "ExportLogsServiceRequest";
    const SERVICE: &'static str = "opentelemetry.proto.collector.logs.v1.LogsService";
    const PATH: &'static str = authwatch_net::otlp::LOGS_EXPORT_PATH;
    const REJECTED_JSON_KEY: &'static str = "rejectedLogRecords";

    fn drop_invalid(&mut self) -> Option<Rejected> {
        let n = retain_items!(
            self.resource_logs,
            scope_logs,
            log_records,
            log_record_is_valid
        );
        (n > 0).then(|| Rejected {
            count: n,
            message: format!(
                "dropped {n} log {} with an invalid id: a trace_id must be empty or 16 bytes, \
                 a span_id empty or 8 bytes",
                plural(n, "record", "records")
            ),
        })
    }

    fn into_signal(self) -> Signal {
        Signal::Logs(self)
    }

    fn response(rejected: Option<Rejected>) -> Self::Response {
        ExportLogsServiceResponse {
            partial_success: rejected.map(|r| ExportLogsPartialSuccess {
                rejected_log_records: i64::try_from(r.count).unwrap_or(i64::MAX),
                error_message: r.message,
            }),
        }
    }
}
