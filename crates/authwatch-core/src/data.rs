//! Building and reading OTLP data, for components that make their own: attribute key-values,
//! reading a string attribute by reference, authwatch's instrumentation scope and a logs
//! request around a batch of records.

use crate::otlp::collector::logs::v1::ExportLogsServiceRequest;
use crate::otlp::common::v1::{any_value, AnyValue, ArrayValue, InstrumentationScope, KeyValue};
use crate::otlp::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};

// === building attributes ===

pub fn kv_str(key: impl Into<String>, v: impl Into<String>) -> KeyValue {
    kv(key, any_value::Value::StringValue(v.into()))
}

pub fn kv_i64(key: impl Into<String>, v: i64) -> KeyValue {
    kv(key, any_value::Value::IntValue(v))
}

pub fn kv_f64(key: impl Into<String>, v: f64) -> KeyValue {
    kv(key, any_value::Value::DoubleValue(v))
}

pub fn kv_bool(key: impl Into<String>, v: bool) -> KeyValue {
    kv(key, any_value::Value::BoolValue(v))
}

pub fn kv_str_array(key: impl Into<String>, v: impl IntoIterator<Item = String>) -> KeyValue {
    let values = v
        .into_iter()
        .map(|s| AnyValue {
            value: Some(any_value::Value::StringValue(s)),
        })
        .collect();
    kv(key, any_value::Value::ArrayValue(ArrayValue { values }))
}

/// A key-value of any value.
pub fn kv(key: impl Into<String>, v: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(v) }),
        ..Default::default()
    }
}

// === reading attributes ===

/// The string value of an attribute, by reference.
#[inline]
pub fn attr_str(v: &Option<AnyValue>) -> Option<&str> {
    match v.as_ref()?.value.as_ref()? {
        any_value::Value::StringValue(s) => Some(s),
        _ => None,
    }
}

/// Finds a string attribute by key.
#[inline]
pub fn find_str<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a str> {
    attrs
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| attr_str(&kv.value))
}

// === requests ===

/// The instrumentation scope of data authwatch makes itself: `authwatch` and its version.
pub fn scope() -> InstrumentationScope {
    InstrumentationScope {
        name: "authwatch".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        ..Default::default()
    }
}

/// Wraps log records into one request (an empty resource, authwatch's [`scope`]).
pub fn logs_request(records: Vec<LogRecord>) -> ExportLogsServiceRequest {
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(Default::default()),
            scope_logs: vec![ScopeLogs {
                scope: Some(scope()),
                log_records: records,
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_are_built_and_read_back() {
        let attrs = vec![
            kv_i64("n", 3),
            kv_str("service.name", "web"),
            kv_bool("b", true),
            kv_f64("f", 0.5),
            kv_str_array("a", ["x".to_owned(), "y".to_owned()]),
        ];
        assert_eq!(find_str(&attrs, "service.name"), Some("web"));
        // Present but not a string, or missing.
        assert_eq!(find_str(&attrs, "n"), None);
        assert_eq!(find_str(&attrs, "missing"), None);
        assert_eq!(attr_str(&attrs[1].value), Some("web"));
        assert_eq!(attr_str(&None), None);
        let Some(any_value::Value::ArrayValue(a)) =
            attrs[4].value.as_ref().and_then(|v| v.value.clone())
        else {
            panic!("not an array: {:?}", attrs[4]);
        };
        assert_eq!(a.values.len(), 2);
    }

    #[test]
    fn a_logs_request_carries_the_records_under_authwatch_scope() {
        let r = LogRecord {
            event_name: "e".into(),
            ..Default::default()
        };
        let req = logs_request(vec![r.clone(), r.clone()]);
        assert_eq!(req.resource_logs.len(), 1);
        let sl = &req.resource_logs[0].scope_logs[0];
        assert_eq!(sl.log_records, vec![r.clone(), r]);
        assert_eq!(
            sl.scope.as_ref().map(|s| s.name.as_str()),
            Some("authwatch")
        );
    }
}
