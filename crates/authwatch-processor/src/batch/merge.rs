//! Merging requests into one and splitting them at item granularity, for all three signals.
//!
//! Items (spans, data points, log records) are always moved, never cloned; only the small
//! headers (resource, scope, metric name and kind) are cloned when one list is cut in two.
//! Merging joins a request's first resource (and scope) with the pending request's last one when
//! they are identical, so item order is exactly the order of arrival.

use std::mem;

use authwatch_core::otlp::collector::logs::v1::ExportLogsServiceRequest;
use authwatch_core::otlp::collector::metrics::v1::ExportMetricsServiceRequest;
use authwatch_core::otlp::collector::trace::v1::ExportTraceServiceRequest;
use authwatch_core::otlp::logs::v1::{ResourceLogs, ScopeLogs};
use authwatch_core::otlp::metrics::v1::{
    metric::Data, ExponentialHistogram, Gauge, Histogram, Metric, ResourceMetrics, ScopeMetrics,
    Sum, Summary,
};
use authwatch_core::otlp::trace::v1::{ResourceSpans, ScopeSpans};
use authwatch_core::signal::metric_point_count;
use authwatch_core::Signal;

/// A node of the request tree that holds items and can give up its first `n` of them.
trait Split: Sized {
    fn count(&self) -> usize;
    /// Moves the first `n` items (`0 < n < count`) into a new node with the same header.
    fn split_front(&mut self, n: usize) -> Self;
}

/// A node that may be joined with an adjacent node of the same header.
trait Merge: Sized {
    fn same_header(&self, other: &Self) -> bool;
    /// Appends `other`'s children, whose header equals ours.
    fn absorb(&mut self, other: Self);
}

/// Moves the first `n` items of `nodes` out, keeping the rest in place.
fn split_vec<N: Split>(nodes: &mut Vec<N>, n: usize) -> Vec<N> {
    let mut head = Vec::new();
    let mut tail = Vec::new();
    let mut left = n;
    for mut node in mem::take(nodes) {
        if left == 0 {
            tail.push(node);
            continue;
        }
        let c = node.count();
        if c <= left {
            left -= c;
            head.push(node);
        } else {
            head.push(node.split_front(left));
            left = 0;
            tail.push(node);
        }
    }
    *nodes = tail;
    head
}

/// Appends `from` to `into`, joining adjacent nodes with the same header.
fn append_vec<N: Merge>(into: &mut Vec<N>, from: Vec<N>) {
    for node in from {
        match into.last_mut() {
            Some(last) if last.same_header(&node) => last.absorb(node),
            _ => into.push(node),
        }
    }
}

/// Resource and scope levels look the same for spans and log records.
macro_rules! resource_and_scope {
    ($Res:ident . $scopes:ident, $Scope:ident . $items:ident) => {
        impl Split for $Scope {
            fn count(&self) -> usize {
                self.$items.len()
            }
            fn split_front(&mut self, n: usize) -> Self {
                let rest = self.$items.split_off(n);
                $Scope {
                    scope: self.scope.clone(),
                    $items: mem::replace(&mut self.$items, rest),
                    schema_url: self.schema_url.clone(),
                }
            }
        }

        impl Merge for $Scope {
            fn same_header(&self, other: &Self) -> bool {
                self.scope == other.scope && self.schema_url == other.schema_url
            }
            fn absorb(&mut self, mut other: Self) {
                self.$items.append(&mut other.$items);
            }
        }

        resource_level!($Res . $scopes);
    };
}

macro_rules! resource_level {
    ($Res:ident . $scopes:ident) => {
        impl Split for $Res {
            fn count(&self) -> usize {
                self.$scopes.iter().map(Split::count).sum()
            }
            fn split_front(&mut self, n: usize) -> Self {
                $Res {
                    resource: self.resource.clone(),
                    $scopes: split_vec(&mut self.$scopes, n),
                    schema_url: self.schema_url.clone(),
                }
            }
        }

        impl Merge for $Res {
            fn same_header(&self, other: &Self) -> bool {
                self.resource == other.resource && self.schema_url == other.schema_url
            }
            fn absorb(&mut self, other: Self) {
                append_vec(&mut self.$scopes, other.$scopes);
            }
        }
    };
}

resource_and_scope!(ResourceSpans.scope_spans, ScopeSpans.spans);
resource_and_scope!(ResourceLogs.scope_logs, ScopeLogs.log_records);
resource_level!(ResourceMetrics.scope_metrics);

impl Split for ScopeMetrics {
    fn count(&self) -> usize {
        self.metrics.iter().map(metric_point_count).sum()
    }
    fn split_front(&mut self, n: usize) -> Self {
        ScopeMetrics {
            scope: self.scope.clone(),
            metrics: split_vec(&mut self.metrics, n),
            schema_url: self.schema_url.clone(),
        }
    }
}

impl Merge for ScopeMetrics {
    fn same_header(&self, other: &Self) -> bool {
        self.scope == other.scope && self.schema_url == other.schema_url
    }
    fn absorb(&mut self, mut other: Self) {
        // Metrics are appended as they are: two metrics of one name stay two entries.
        self.metrics.append(&mut other.metrics);
    }
}

/// Moves the first `n` points of a vector out, leaving the rest.
fn front<T>(points: &mut Vec<T>, n: usize) -> Vec<T> {
    let rest = points.split_off(n.min(points.len()));
    mem::replace(points, rest)
}

impl Split for Metric {
    fn count(&self) -> usize {
        metric_point_count(self)
    }
    fn split_front(&mut self, n: usize) -> Self {
        let data = match &mut self.data {
            Some(Data::Gauge(g)) => Some(Data::Gauge(Gauge {
                data_points: front(&mut g.data_points, n),
            })),
            Some(Data::Sum(s)) => Some(Data::Sum(Sum {
                data_points: front(&mut s.data_points, n),
                aggregation_temporality: s.aggregation_temporality,
                is_monotonic: s.is_monotonic,
            })),
            Some(Data::Histogram(h)) => Some(Data::Histogram(Histogram {
                data_points: front(&mut h.data_points, n),
                aggregation_temporality: h.aggregation_temporality,
            })),
            Some(Data::ExponentialHistogram(h)) => {
                Some(Data::ExponentialHistogram(ExponentialHistogram {
                    data_points: front(&mut h.data_points, n),
                    aggregation_temporality: h.aggregation_temporality,
                }))
            }
            Some(Data::Summary(s)) => Some(Data::Summary(Summary {
                data_points: front(&mut s.data_points, n),
            })),
            None => None,
        };
        Metric {
            name: self.name.clone(),
            description: self.description.clone(),
            unit: self.unit.clone(),
            metadata: self.metadata.clone(),
            data,
        }
    }
}

/// Appends `from` to `into` (same signal) by moving its items. A request of another signal is
/// handed back unchanged.
pub(crate) fn append(into: &mut Signal, from: Signal) -> Result<(), Signal> {
    match (into, from) {
        (Signal::Traces(a), Signal::Traces(b)) => append_vec(&mut a.resource_spans, b.resource_spans),
        (Signal::Metrics(a), Signal::Metrics(b)) => {
            append_vec(&mut a.resource_metrics, b.resource_metrics)
        }
        (Signal::Logs(a), Signal::Logs(b)) => append_vec(&mut a.resource_logs, b.resource_logs),
        // Encoded requests are concatenated by the batch task, never merged here.
        (_, other) => return Err(other),
    }
    Ok(())
}

/// Moves the first `n` items of `data` into a new request of the same signal. A resource, scope
/// or metric cut in two appears in both requests.
pub(crate) fn split_front(data: &mut Signal, n: usize) -> Signal {
    match data {
        Signal::Traces(r) => Signal::Traces(ExportTraceServiceRequest {
            resource_spans: split_vec(&mut r.resource_spans, n),
        }),
        Signal::Metrics(r) => Signal::Metrics(ExportMetricsServiceRequest {
            resource_metrics: split_vec(&mut r.resource_metrics, n),
        }),
        Signal::Logs(r) => Signal::Logs(ExportLogsServiceRequest {
            resource_logs: split_vec(&mut r.resource_logs, n),
        }),
        // The batch task decodes an encoded batch before splitting it.
        Signal::Encoded(e) => Signal::empty(e.kind()),
    }
}
