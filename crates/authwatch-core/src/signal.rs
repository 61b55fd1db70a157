//! The data that flows through pipelines: OTLP export requests, one variant per signal.

use std::fmt;

use crate::consume::ConsumeError;
use crate::wire::Encoded;

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::metrics::v1::metric::Data as MetricData;
use opentelemetry_proto::tonic::metrics::v1::Metric;

/// The three OTLP signals.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum SignalKind {
    Traces,
    Metrics,
    Logs,
}

impl SignalKind {
    pub const ALL: [SignalKind; 3] = [SignalKind::Traces, SignalKind::Metrics, SignalKind::Logs];

    /// Index 0..3, for per-signal arrays.
    pub const fn index(self) -> usize {
        self as usize
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            SignalKind::Traces => "traces",
            SignalKind::Metrics => "metrics",
            SignalKind::Logs => "logs",
        }
    }

    /// What one item of this signal is called in self-telemetry (`spans`, `metric_points`, `log_records`).
    pub const fn item_name(self) -> &'static str {
        match self {
            SignalKind::Traces => "spans",
            SignalKind::Metrics => "metric_points",
            SignalKind::Logs => "log_records",
        }
    }
}

impl fmt::Display for SignalKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A set of signals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Signals(u8);

impl Signals {
    pub const NONE: Signals = Signals(0);
    pub const ALL: Signals = Signals(0b111);
    pub const TRACES: Signals = Signals(1);
    pub const METRICS: Signals = Signals(2);
    pub const LOGS: Signals = Signals(4);

    pub const fn of(kind: SignalKind) -> Signals {
        Signals(1 << kind as u8)
    }
    pub const fn contains(self, kind: SignalKind) -> bool {
        self.0 & (1 << kind as u8) != 0
    }
    pub const fn with(self, kind: SignalKind) -> Signals {
        Signals(self.0 | (1 << kind as u8))
    }
    pub fn iter(self) -> impl Iterator<Item = SignalKind> {
        SignalKind::ALL
            .into_iter()
            .filter(move |k| self.contains(*k))
    }
}

impl std::ops::BitOr for Signals {
    type Output = Signals;
    fn bitor(self, rhs: Signals) -> Signals {
        Signals(self.0 | rhs.0)
    }
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
    pub fn into_decoded(self) -> Result<Signal, ConsumeError> {
        match self {
            Signal::Encoded(e) => e.decode().map_err(|err| {
                ConsumeError::Permanent(format!("cannot decode a {} request: {err}", e.kind()))
            }),
            other => Ok(other),
        }
    }

    /// The request's size as protobuf, in bytes (computed for a decoded request).
    pub fn encoded_size(&self) -> usize {
        use prost::Message;
        match self {
            Signal::Traces(r) => r.encoded_len(),
            Signal::Metrics(r) => r.encoded_len(),
            Signal::Logs(r) => r.encoded_len(),
            Signal::Encoded(e) => e.bytes().len(),
        }
    }

    /// The request decoded, borrowed when it already is.
    pub fn decoded_ref(&self) -> Result<std::borrow::Cow<'_, Signal>, ConsumeError> {
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
    fn signals_set() {
        let s = Signals::TRACES | Signals::LOGS;
        assert!(s.contains(SignalKind::Traces));
        assert!(!s.contains(SignalKind::Metrics));
        assert_eq!(s.iter().count(), 2);
        assert!(Signals::ALL.contains(SignalKind::Metrics));
    }

    #[test]
    fn empty_counts_zero() {
        for k in SignalKind::ALL {
            assert_eq!(Signal::empty(k).item_count(), 0);
            assert_eq!(Signal::empty(k).kind(), k);
        }
    }
}
