//! The data that flows through pipelines: OTLP export requests, one variant per signal.

use prost::Message;

pub use crate::kind::{SignalKind, Signals};
use crate::wire::Encoded;

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::metrics::v1::metric::Data as MetricData;
use opentelemetry_proto::tonic::metrics::v1::Metric;

/// Bytes that claimed to be a request of one signal did not decode as one.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("cannot decode a {kind} request: {source}")]
pub struct DecodeError {
    pub kind: SignalKind,
    #[source]
    pub source: prost::DecodeError,
}

/// One unit of pipeline data: an OTLP export request of one signal, decoded or still encoded.
#[derive(Debug, Clone, PartialEq)]
pub enum Signal {
    Traces(ExportTraceServiceRequest),
    Metrics(ExportMetricsServiceRequest),
    Logs(ExportLogsServiceRequest),
    /// A request as protobuf bytes (see [`crate::wire`]): what forwarding pipelines carry.
    Encoded(Encoded),
}

impl Signal {
    pub fn kind(&self) -> SignalKind {
        match self {
            Signal::Traces(_) => SignalKind::Traces,
            Signal::Metrics(_) => SignalKind::Metrics,
            Signal::Logs(_) => SignalKind::Logs,
            Signal::Encoded(e) => e.kind(),
        }
    }

    /// Spans, metric data points or log records in this request.
    pub fn item_count(&self) -> usize {
        match self {
            Signal::Traces(r) => span_count(r),
            Signal::Metrics(r) => data_point_count(r),
            Signal::Logs(r) => log_record_count(r),
            Signal::Encoded(e) => e.items(),
        }
    }

    /// The request decoded: an [`Encoded`] one is decoded, the others are returned as they are.
    /// Components that read or change the data call this first.
    pub fn into_decoded(self) -> Result<Signal, DecodeError> {
        match self {
            Signal::Encoded(e) => e.decode(),
            other => Ok(other),
        }
    }

    /// The request's size as protobuf, in bytes (computed for a decoded request).
    pub fn encoded_size(&self) -> usize {
        match self {
            Signal::Traces(r) => r.encoded_len(),
            Signal::Metrics(r) => r.encoded_len(),
            Signal::Logs(r) => r.encoded_len(),
            Signal::Encoded(e) => e.bytes().len(),
        }
    }

    /// The request decoded, borrowed when it already is.
    pub fn decoded_ref(&self) -> Result<std::borrow::Cow<'_, Signal>, DecodeError> {
        match self {
            Signal::Encoded(_) => self.clone().into_decoded().map(std::borrow::Cow::Owned),
            other => Ok(std::borrow::Cow::Borrowed(other)),
        }
    }

    /// The request as protobuf bytes: free for an [`Encoded`] request, an encode for the others.
    pub fn to_encoded(&self) -> Encoded {
        Encoded::encode(self)
    }

    /// The request as an [`Encoded`] signal.
    pub fn into_encoded(self) -> Signal {
        match self {
            Signal::Encoded(e) => Signal::Encoded(e),
            other => Signal::Encoded(Encoded::encode(&other)),
        }
    }

    /// An empty request of the given signal.
    pub fn empty(kind: SignalKind) -> Signal {
        match kind {
            SignalKind::Traces => Signal::Traces(Default::default()),
            SignalKind::Metrics => Signal::Metrics(Default::default()),
            SignalKind::Logs => Signal::Logs(Default::default()),
        }
    }
}

// === impl Encoded (conversions from and to Signal) ===

impl Encoded {
    /// Encodes a decoded request.
    pub fn encode(data: &Signal) -> Encoded {
        let bytes = match data {
            Signal::Encoded(e) => return e.clone(),
            Signal::Traces(r) => r.encode_to_vec(),
            Signal::Metrics(r) => r.encode_to_vec(),
            Signal::Logs(r) => r.encode_to_vec(),
        };
        Encoded::new(data.kind(), bytes.into(), data.item_count())
    }

    /// Decodes into the owned request types.
    pub fn decode(&self) -> Result<Signal, DecodeError> {
        let b = &self.bytes()[..];
        let kind = self.kind();
        let decoded = match kind {
            SignalKind::Traces => ExportTraceServiceRequest::decode(b).map(Signal::Traces),
            SignalKind::Metrics => ExportMetricsServiceRequest::decode(b).map(Signal::Metrics),
            SignalKind::Logs => ExportLogsServiceRequest::decode(b).map(Signal::Logs),
        };
        decoded.map_err(|source| DecodeError { kind, source })
    }
}

pub fn span_count(r: &ExportTraceServiceRequest) -> usize {
    r.resource_spans
        .iter()
        .flat_map(|rs| &rs.scope_spans)
        .map(|ss| ss.spans.len())
        .sum()
}

pub fn log_record_count(r: &ExportLogsServiceRequest) -> usize {
    r.resource_logs
        .iter()
        .flat_map(|rl| &rl.scope_logs)
        .map(|sl| sl.log_records.len())
        .sum()
}

pub fn data_point_count(r: &ExportMetricsServiceRequest) -> usize {
    r.resource_metrics
        .iter()
        .flat_map(|rm| &rm.scope_metrics)
        .flat_map(|sm| &sm.metrics)
        .map(metric_point_count)
        .sum()
}

/// Data points in one metric (the Collector's `metric_points`).
pub fn metric_point_count(m: &Metric) -> usize {
    match &m.data {
        Some(MetricData::Gauge(g)) => g.data_points.len(),
        Some(MetricData::Sum(s)) => s.data_points.len(),
        Some(MetricData::Histogram(h)) => h.data_points.len(),
        Some(MetricData::ExponentialHistogram(h)) => h.data_points.len(),
        Some(MetricData::Summary(s)) => s.data_points.len(),
        None => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_counts_zero() {
        for k in SignalKind::ALL {
            assert_eq!(Signal::empty(k).item_count(), 0);
            assert_eq!(Signal::empty(k).kind(), k);
        }
    }
}
