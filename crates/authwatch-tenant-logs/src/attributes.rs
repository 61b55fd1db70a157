//! Tenant log events as OTLP attributes, shared by `auth0_logs` and `okta_logs`: every field of
//! an event flattened under a prefix (`auth0.details.error.message`), personal fields removed
//! first unless the user keeps them.

use authwatch_core::otlp::common::v1::{any_value, AnyValue, ArrayValue, KeyValue};
use serde_json::Value;

/// Attributes per record at most; further fields are dropped.
pub const MAX_ATTRIBUTES: usize = 128;
/// Objects nested deeper than this are kept as one JSON string.
pub const MAX_DEPTH: usize = 4;

pub fn string(s: impl Into<String>) -> AnyValue {
    AnyValue {
        value: Some(any_value::Value::StringValue(s.into())),
    }
}

pub fn kv(key: impl Into<String>, value: AnyValue) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(value),
        ..Default::default()
    }
}

fn scalar(v: &Value) -> Option<AnyValue> {
    let value = match v {
        Value::Bool(b) => any_value::Value::BoolValue(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => any_value::Value::IntValue(i),
            None => any_value::Value::DoubleValue(n.as_f64().unwrap_or(0.0)),
        },
        Value::String(s) => any_value::Value::StringValue(s.clone()),
        _ => return None,
    };
    Some(AnyValue { value: Some(value) })
}

/// Removes the `personal` keys at any depth.
pub fn scrub(v: &mut Value, personal: &[&str]) {
    match v {
        Value::Object(o) => {
            o.retain(|k, _| !personal.contains(&k.as_str()));
            o.values_mut().for_each(|v| scrub(v, personal));
        }
        Value::Array(a) => a.iter_mut().for_each(|v| scrub(v, personal)),
        _ => {}
    }
}

/// Appends `v` as attributes named from `prefix`: objects are walked (deeper than
/// [`MAX_DEPTH`]: one JSON string), arrays of scalars stay arrays, other arrays become JSON
/// strings, nulls are skipped; at most [`MAX_ATTRIBUTES`] in `out`.
pub fn flatten(prefix: &str, v: &Value, depth: usize, out: &mut Vec<KeyValue>) {
    if out.len() >= MAX_ATTRIBUTES {
        return;
    }
    match v {
        Value::Null => {}
        Value::Object(o) if depth < MAX_DEPTH => {
            for (k, v) in o {
                flatten(&format!("{prefix}.{k}"), v, depth + 1, out);
            }
        }
        Value::Object(_) => out.push(kv(prefix, string(v.to_string()))),
        Value::Array(items) => match items.iter().map(scalar).collect::<Option<Vec<_>>>() {
            Some(values) => out.push(kv(
                prefix,
                AnyValue {
                    value: Some(any_value::Value::ArrayValue(ArrayValue { values })),
                },
            )),
            None => out.push(kv(prefix, string(v.to_string()))),
        },
        v => {
            if let Some(s) = scalar(v) {
                out.push(kv(prefix, s));
            }
        }
    }
}
