//! OTLP builders for the status signals: gauges and incident / page log records.

use authwatch_core::otlp::collector::logs::v1::ExportLogsServiceRequest;
use authwatch_core::otlp::collector::metrics::v1::ExportMetricsServiceRequest;
use authwatch_core::otlp::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use authwatch_core::otlp::logs::v1::{LogRecord, ResourceLogs, ScopeLogs, SeverityNumber};
use authwatch_core::otlp::metrics::v1::{
    metric, number_data_point, Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics,
};
use authwatch_core::otlp::resource::v1::Resource;
use authwatch_core::{semconv, time};

/// Scope name of everything this receiver sends.
pub(crate) const SCOPE: &str = "authwatch.statuspage";


pub(crate) fn kv(key: &str, value: impl Into<String>) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.into())),
        }),
        ..Default::default()
    }
}

fn resource() -> Resource {
    Resource {
        attributes: vec![kv(semconv::SERVICE_NAME, "authwatch")],
        ..Default::default()
    }
}

fn scope() -> InstrumentationScope {
    InstrumentationScope {
        name: SCOPE.into(),
        version: env!("CARGO_PKG_VERSION").into(),
        ..Default::default()
    }
}

/// One gauge point.
pub(crate) fn point(
    attributes: Vec<KeyValue>,
    value: i64,
    start: u64,
    now: u64,
) -> NumberDataPoint {
    NumberDataPoint {
        attributes,
        start_time_unix_nano: start,
        time_unix_nano: now,
        value: Some(number_data_point::Value::AsInt(value)),
        ..Default::default()
    }
}

/// A gauge metric; `None` when it has no points.
pub(crate) fn gauge(name: &str, description: &str, points: Vec<NumberDataPoint>) -> Option<Metric> {
    if points.is_empty() {
        return None;
    }
    Some(Metric {
        name: name.to_owned(),
        description: description.to_owned(),
        unit: "1".to_owned(),
        data: Some(metric::Data::Gauge(Gauge {
            data_points: points,
        })),
        ..Default::default()
    })
}

pub(crate) fn metrics_request(metrics: Vec<Metric>) -> ExportMetricsServiceRequest {
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(resource()),
            scope_metrics: vec![ScopeMetrics {
                scope: Some(scope()),
                metrics,
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    }
}

pub(crate) fn logs_request(records: Vec<LogRecord>) -> ExportLogsServiceRequest {
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(resource()),
            scope_logs: vec![ScopeLogs {
                scope: Some(scope()),
                log_records: records,
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    }
}

/// A log record with event name, severity, body and attributes.
pub(crate) fn record(
    event: &str,
    severity: SeverityNumber,
    body: String,
    attributes: Vec<KeyValue>,
    time: u64,
    observed: u64,
) -> LogRecord {
    LogRecord {
        time_unix_nano: time,
        observed_time_unix_nano: observed,
        severity_number: severity as i32,
        severity_text: severity_text(severity).to_owned(),
        body: Some(AnyValue {
            value: Some(any_value::Value::StringValue(body)),
        }),
        attributes,
        event_name: event.to_owned(),
        ..Default::default()
    }
}

fn severity_text(s: SeverityNumber) -> &'static str {
    match s {
        SeverityNumber::Error => "ERROR",
        SeverityNumber::Warn => "WARN",
        _ => "INFO",
    }
}

/// RFC 3339 (`2026-11-26T10:00:00.123Z`, `...+02:00`) or RFC 2822 (`Wed, 26 Nov 2026 10:00:00
/// +0000`, `GMT`) to Unix nanoseconds; `None` when it is neither (or before 1970).
pub(crate) fn parse_time(s: &str) -> Option<u64> {
    let s = s.trim();
    time::parse_rfc3339(s)
        .or_else(|| time::parse_rfc3339(&rfc2822_as_rfc3339(s)?))
        .and_then(time::unix_nanos)
}

fn num(s: &str) -> Option<u32> {
    if s.is_empty() || s.len() > 4 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// An RFC 2822 date (the feeds' `pubDate`) rewritten as RFC 3339, for the one parser in
/// `authwatch_core::time`. Unknown zone names are read as UTC.
fn rfc2822_as_rfc3339(s: &str) -> Option<String> {
    let s = match s.split_once(',') {
        Some((_, rest)) => rest,
        None => s,
    };
    let parts: Vec<&str> = s.split_whitespace().collect();
    if parts.len() < 4 {
        return None;
    }
    let d = num(parts[0])?;
    let months = [
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ];
    let mo = months
        .iter()
        .position(|m| parts[1].to_ascii_lowercase().starts_with(m))?
        + 1;
    let y = num(parts[2])?;
    let t: Vec<&str> = parts[3].split(':').collect();
    let (h, mi) = (num(t.first()?)?, num(t.get(1)?)?);
    let sec = t.get(2).map_or(Some(0), |x| num(x))?;
    let offset = match parts.get(4).copied().unwrap_or("GMT") {
        o if o.len() == 5 && (o.starts_with('+') || o.starts_with('-')) => {
            format!("{}:{}", o.get(..3)?, o.get(3..)?)
        }
        _ => "Z".to_owned(),
    };
    Some(format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{sec:02}{offset}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times() {
        assert_eq!(parse_time("1970-01-01T00:00:01Z"), Some(1_000_000_000));
        assert_eq!(
            parse_time("2021-11-03T03:07:24.384Z"),
            Some(1_635_908_844_384_000_000)
        );
        assert_eq!(
            parse_time("2021-11-03T05:07:24.384+02:00"),
            Some(1_635_908_844_384_000_000)
        );
        assert_eq!(
            parse_time("Wed, 03 Nov 2021 03:07:24 +0000"),
            Some(1_635_908_844_000_000_000)
        );
        assert_eq!(
            parse_time("Wed, 03 Nov 2021 03:07:24 GMT"),
            Some(1_635_908_844_000_000_000)
        );
        assert_eq!(
            parse_time("Wed, 03 Nov 2021 05:37:24 +0230"),
            Some(1_635_908_844_000_000_000)
        );
        assert_eq!(parse_time("3 Nov 2021 03:07 UT"), Some(1_635_908_844_000_000_000 - 24_000_000_000));
        assert_eq!(parse_time("yesterday"), None);
        assert_eq!(parse_time("2021-13-03T03:07:24Z"), None);
        assert_eq!(parse_time("Thu, 29 Feb 2021 03:07:24 GMT"), None, "not a leap year");
        assert_eq!(parse_time("1969-12-31T23:59:59Z"), None, "before 1970");
    }

    /// Found writing the `statuspage` fuzz target, which reproduces it: a feed date with a huge
    /// year overflowed (a panic in debug builds, a wrong time in release ones).
    #[test]
    fn huge_years_are_not_times() {
        assert_eq!(parse_time("Wed, 03 Nov 999999999999 03:07:24 GMT"), None);
        assert_eq!(
            parse_time("03 Nov 9223372036854775807 03:07:24 +0000"),
            None
        );
        assert_eq!(parse_time("Fri, 31 Dec 9999 23:59:59 GMT"), None);
        assert_eq!(
            parse_time("Wed, 03 Nov 2021 03:07:24 GMT"),
            Some(1_635_908_844_000_000_000)
        );
    }
}
