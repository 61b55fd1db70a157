//! What the alerts tests share: OTLP metric builders (points, sums, gauges, a request) and the
//! `promtool` they check generated rules with.

use authwatch_core::otlp::collector::metrics::v1::ExportMetricsServiceRequest;
use authwatch_core::otlp::common::v1::KeyValue;
use authwatch_core::otlp::metrics::v1::{
    metric, number_data_point, Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum,
};

/// A point of `v` at `t` (Unix nanoseconds), from `start` when it is not 0.
pub(super) fn point_from(attrs: Vec<KeyValue>, v: f64, start: u64, t: u64) -> NumberDataPoint {
    NumberDataPoint {
        attributes: attrs,
        start_time_unix_nano: start,
        time_unix_nano: t,
        value: Some(number_data_point::Value::AsDouble(v)),
        ..Default::default()
    }
}

/// A point of `v` at `t`, with no start time.
pub(super) fn point(attrs: Vec<KeyValue>, v: f64, t: u64) -> NumberDataPoint {
    point_from(attrs, v, 0, t)
}

/// One resource and scope holding `metrics`.
pub(super) fn request(metrics: Vec<Metric>) -> ExportMetricsServiceRequest {
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            scope_metrics: vec![ScopeMetrics {
                metrics,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

/// A cumulative, monotonic sum.
pub(super) fn sum(name: &str, points: Vec<NumberDataPoint>) -> Metric {
    Metric {
        name: name.into(),
        data: Some(metric::Data::Sum(Sum {
            data_points: points,
            aggregation_temporality: 2,
            is_monotonic: true,
        })),
        ..Default::default()
    }
}

pub(super) fn gauge(name: &str, points: Vec<NumberDataPoint>) -> Metric {
    Metric {
        name: name.into(),
        data: Some(metric::Data::Gauge(Gauge { data_points: points })),
        ..Default::default()
    }
}

/// `promtool` from `PATH`, or a panic that says how to install it.
pub(super) fn promtool() -> std::path::PathBuf {
    std::env::var_os("PATH")
        .and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|d| d.join("promtool"))
                .find(|p| p.is_file())
        })
        .expect("promtool is not installed: install the Debian package `prometheus` (apt-get install prometheus), or run scripts/test.sh, which does")
}
