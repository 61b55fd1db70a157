//! Human-readable renderings of OTLP requests for the `debug` exporter. Pure functions.

use std::fmt::Write;

use authwatch_core::otlp::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use authwatch_core::otlp::logs::v1::LogRecord;
use authwatch_core::otlp::metrics::v1::{metric, number_data_point, Metric, NumberDataPoint};
use authwatch_core::otlp::resource::v1::Resource;
use authwatch_core::otlp::trace::v1::{span, status, Span};
use authwatch_core::Signal;

/// (resources, items) in a request.
pub(super) fn counts(data: &Signal) -> (usize, usize) {
    let resources = match data {
        Signal::Traces(r) => r.resource_spans.len(),
        Signal::Metrics(r) => r.resource_metrics.len(),
        Signal::Logs(r) => r.resource_logs.len(),
        // Callers decode first; an encoded request's resources are not counted.
        Signal::Encoded(_) => 0,
    };
    (resources, data.item_count())
}

pub(super) fn hex(b: &[u8]) -> String {
    b.iter().fold(String::with_capacity(b.len() * 2), |mut s, x| {
        let _ = write!(s, "{x:02x}");
        s
    })
}

pub(super) fn value(v: &Option<AnyValue>) -> String {
    let Some(v) = v.as_ref().and_then(|v| v.value.as_ref()) else {
        return String::new();
    };
    match v {
        any_value::Value::StringValue(s) => s.clone(),
        any_value::Value::BoolValue(b) => b.to_string(),
        any_value::Value::IntValue(i) => i.to_string(),
        any_value::Value::DoubleValue(d) => d.to_string(),
        any_value::Value::BytesValue(b) => hex(b),
        any_value::Value::ArrayValue(a) => {
            let items: Vec<String> = a.values.iter().map(|v| value(&Some(v.clone()))).collect();
            format!("[{}]", items.join(", "))
        }
        any_value::Value::KvlistValue(kv) => format!("{{{}}}", attrs(&kv.values)),
        #[allow(unreachable_patterns)]
        _ => String::from("?"),
    }
}

pub(super) fn attrs(kvs: &[KeyValue]) -> String {
    kvs.iter()
        .map(|kv| format!("{}={}", kv.key, value(&kv.value)))
        .collect::<Vec<_>>()
        .join(" ")
}

fn span_kind(k: i32) -> &'static str {
    span::SpanKind::try_from(k).map_or("Unknown", |k| match k {
        span::SpanKind::Unspecified => "Unspecified",
        span::SpanKind::Internal => "Internal",
        span::SpanKind::Server => "Server",
        span::SpanKind::Client => "Client",
        span::SpanKind::Producer => "Producer",
        span::SpanKind::Consumer => "Consumer",
    })
}

fn status_code(s: &Option<authwatch_core::otlp::trace::v1::Status>) -> &'static str {
    match s.as_ref().map(|s| status::StatusCode::try_from(s.code)) {
        Some(Ok(status::StatusCode::Ok)) => "Ok",
        Some(Ok(status::StatusCode::Error)) => "Error",
        _ => "Unset",
    }
}

fn number(p: &NumberDataPoint) -> String {
    match p.value {
        Some(number_data_point::Value::AsInt(i)) => i.to_string(),
        Some(number_data_point::Value::AsDouble(d)) => d.to_string(),
        None => String::new(),
    }
}

fn span_line(s: &Span) -> String {
    let ms = s.end_time_unix_nano.saturating_sub(s.start_time_unix_nano) as f64 / 1e6;
    format!(
        "{} trace_id={} span_id={} kind={} status={} duration={ms}ms {}",
        s.name,
        hex(&s.trace_id),
        hex(&s.span_id),
        span_kind(s.kind),
        status_code(&s.status),
        attrs(&s.attributes)
    )
    .trim_end()
    .to_owned()
}

/// One line per data point: `name{attrs} value`.
fn metric_lines(m: &Metric, out: &mut Vec<String>) {
    let mut point = |attributes: &[KeyValue], v: String| {
        out.push(format!("{}{{{}}} {v}", m.name, attrs(attributes)));
    };
    match &m.data {
        Some(metric::Data::Gauge(g)) => g
            .data_points
            .iter()
            .for_each(|p| point(&p.attributes, number(p))),
        Some(metric::Data::Sum(s)) => s
            .data_points
            .iter()
            .for_each(|p| point(&p.attributes, number(p))),
        Some(metric::Data::Histogram(h)) => h.data_points.iter().for_each(|p| {
            point(
                &p.attributes,
                format!("count={} sum={}", p.count, p.sum.unwrap_or_default()),
            )
        }),
        Some(metric::Data::ExponentialHistogram(h)) => h.data_points.iter().for_each(|p| {
            point(
                &p.attributes,
                format!("count={} sum={}", p.count, p.sum.unwrap_or_default()),
            )
        }),
        Some(metric::Data::Summary(s)) => s.data_points.iter().for_each(|p| {
            point(&p.attributes, format!("count={} sum={}", p.count, p.sum))
        }),
        None => {}
    }
}

fn log_line(r: &LogRecord) -> String {
    let mut line = format!(
        "{} {}",
        if r.severity_text.is_empty() {
            format!("severity={}", r.severity_number)
        } else {
            r.severity_text.clone()
        },
        value(&r.body)
    );
    if !r.attributes.is_empty() {
        line.push(' ');
        line.push_str(&attrs(&r.attributes));
    }
    if !r.trace_id.is_empty() {
        let _ = write!(line, " trace_id={} span_id={}", hex(&r.trace_id), hex(&r.span_id));
    }
    line
}

/// One line per span, data point or log record.
pub(super) fn normal(data: &Signal) -> Vec<String> {
    let mut out = Vec::new();
    match data {
        Signal::Traces(r) => r
            .resource_spans
            .iter()
            .flat_map(|rs| &rs.scope_spans)
            .flat_map(|ss| &ss.spans)
            .for_each(|s| out.push(span_line(s))),
        Signal::Metrics(r) => r
            .resource_metrics
            .iter()
            .flat_map(|rm| &rm.scope_metrics)
            .flat_map(|sm| &sm.metrics)
            .for_each(|m| metric_lines(m, &mut out)),
        Signal::Logs(r) => r
            .resource_logs
            .iter()
            .flat_map(|rl| &rl.scope_logs)
            .flat_map(|sl| &sl.log_records)
            .for_each(|l| out.push(log_line(l))),
        Signal::Encoded(e) => out.push(format!("{} encoded {}", e.items(), e.kind().item_name())),
    }
    out
}

fn resource_block(out: &mut String, i: usize, what: &str, r: &Option<Resource>, schema: &str) {
    let _ = writeln!(out, "{what} #{i}");
    if !schema.is_empty() {
        let _ = writeln!(out, "  schema_url: {schema}");
    }
    if let Some(r) = r {
        for kv in &r.attributes {
            let _ = writeln!(out, "  resource {}: {}", kv.key, value(&kv.value));
        }
    }
}

fn scope_block(out: &mut String, i: usize, what: &str, s: &Option<InstrumentationScope>) {
    let (name, version) = s
        .as_ref()
        .map_or((String::new(), String::new()), |s| {
            (s.name.clone(), s.version.clone())
        });
    let _ = writeln!(out, "  {what} #{i} scope: {name} {version}");
}

fn kv_lines(out: &mut String, indent: &str, kvs: &[KeyValue]) {
    for kv in kvs {
        let _ = writeln!(out, "{indent}{}: {}", kv.key, value(&kv.value));
    }
}

/// Everything, as indented text.
pub(super) fn detailed(data: &Signal) -> String {
    let mut out = String::new();
    match data {
        Signal::Traces(r) => {
            for (i, rs) in r.resource_spans.iter().enumerate() {
                resource_block(&mut out, i, "ResourceSpans", &rs.resource, &rs.schema_url);
                for (j, ss) in rs.scope_spans.iter().enumerate() {
                    scope_block(&mut out, j, "ScopeSpans", &ss.scope);
                    for (k, s) in ss.spans.iter().enumerate() {
                        let _ = writeln!(out, "    Span #{k}");
                        let _ = writeln!(out, "      trace_id: {}", hex(&s.trace_id));
                        let _ = writeln!(out, "      parent_id: {}", hex(&s.parent_span_id));
                        let _ = writeln!(out, "      span_id: {}", hex(&s.span_id));
                        let _ = writeln!(out, "      name: {}", s.name);
                        let _ = writeln!(out, "      kind: {}", span_kind(s.kind));
                        let _ = writeln!(out, "      start_time_unix_nano: {}", s.start_time_unix_nano);
                        let _ = writeln!(out, "      end_time_unix_nano: {}", s.end_time_unix_nano);
                        let _ = writeln!(out, "      status: {}", status_code(&s.status));
                        if let Some(m) = s.status.as_ref().filter(|s| !s.message.is_empty()) {
                            let _ = writeln!(out, "      status_message: {}", m.message);
                        }
                        kv_lines(&mut out, "      attribute ", &s.attributes);
                        for e in &s.events {
                            let _ = writeln!(out, "      event {} at {}: {}", e.name, e.time_unix_nano, attrs(&e.attributes));
                        }
                        for l in &s.links {
                            let _ = writeln!(out, "      link trace_id={} span_id={}: {}", hex(&l.trace_id), hex(&l.span_id), attrs(&l.attributes));
                        }
                    }
                }
            }
        }
        Signal::Metrics(r) => {
            for (i, rm) in r.resource_metrics.iter().enumerate() {
                resource_block(&mut out, i, "ResourceMetrics", &rm.resource, &rm.schema_url);
                for (j, sm) in rm.scope_metrics.iter().enumerate() {
                    scope_block(&mut out, j, "ScopeMetrics", &sm.scope);
                    for (k, m) in sm.metrics.iter().enumerate() {
                        let _ = writeln!(out, "    Metric #{k}");
                        let _ = writeln!(out, "      name: {}", m.name);
                        let _ = writeln!(out, "      description: {}", m.description);
                        let _ = writeln!(out, "      unit: {}", m.unit);
                        let mut points = Vec::new();
                        metric_lines(m, &mut points);
                        for p in points {
                            let _ = writeln!(out, "      point {p}");
                        }
                    }
                }
            }
        }
        Signal::Logs(r) => {
            for (i, rl) in r.resource_logs.iter().enumerate() {
                resource_block(&mut out, i, "ResourceLogs", &rl.resource, &rl.schema_url);
                for (j, sl) in rl.scope_logs.iter().enumerate() {
                    scope_block(&mut out, j, "ScopeLogs", &sl.scope);
                    for (k, l) in sl.log_records.iter().enumerate() {
                        let _ = writeln!(out, "    LogRecord #{k}");
                        let _ = writeln!(out, "      time_unix_nano: {}", l.time_unix_nano);
                        let _ = writeln!(out, "      observed_time_unix_nano: {}", l.observed_time_unix_nano);
                        let _ = writeln!(out, "      severity: {} ({})", l.severity_text, l.severity_number);
                        let _ = writeln!(out, "      body: {}", value(&l.body));
                        let _ = writeln!(out, "      trace_id: {}", hex(&l.trace_id));
                        let _ = writeln!(out, "      span_id: {}", hex(&l.span_id));
                        kv_lines(&mut out, "      attribute ", &l.attributes);
                    }
                }
            }
        }
        Signal::Encoded(e) => {
            let _ = writeln!(out, "{} encoded {}", e.items(), e.kind().item_name());
        }
    }
    out
}
