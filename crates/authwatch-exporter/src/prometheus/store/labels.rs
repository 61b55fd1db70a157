//! OTLP attributes as Prometheus labels: the target's `job` and `instance`, attribute values as
//! text, and merging label sets.

use std::collections::BTreeMap;

use authwatch_core::otlp::common::v1::{any_value, AnyValue, KeyValue};

use super::super::naming::label_name;
use super::exposition::num;
use super::Labels;

/// Resource attributes that name the target: they become `job` and `instance`.
pub(super) const IDENTITY_KEYS: [&str; 3] = ["service.name", "service.namespace", "service.instance.id"];

/// `job` (`service.namespace/service.name`) and `instance` (`service.instance.id`).
pub(super) fn identity_labels(attrs: &[KeyValue]) -> Labels {
    let get = |k: &str| {
        attrs
            .iter()
            .find(|kv| kv.key == k)
            .map(|kv| value_string(kv.value.as_ref()))
            .filter(|s| !s.is_empty())
    };
    let mut l = Vec::new();
    if let Some(name) = get("service.name") {
        let job = match get("service.namespace") {
            Some(ns) => format!("{ns}/{name}"),
            None => name,
        };
        l.push(("job".to_owned(), job));
    }
    if let Some(id) = get("service.instance.id") {
        l.push(("instance".to_owned(), id));
    }
    l.sort();
    l
}

/// Attributes as sorted labels; keys that sanitise to the same name have their values joined
/// with `;` (in key order), as the Collector does.
pub(super) fn to_labels(attrs: &[KeyValue]) -> Labels {
    let mut sorted: Vec<&KeyValue> = attrs.iter().collect();
    sorted.sort_by(|a, b| a.key.cmp(&b.key));
    let mut map: BTreeMap<String, String> = BTreeMap::new();
    for kv in sorted {
        let Some(name) = label_name(&kv.key) else {
            continue;
        };
        let v = value_string(kv.value.as_ref());
        map.entry(name)
            .and_modify(|old| {
                old.push(';');
                old.push_str(&v);
            })
            .or_insert(v);
    }
    map.into_iter().collect()
}

/// `base` plus `more`; on a clash `more` wins when `override_`, else `base` keeps its value.
pub(super) fn merge(base: Labels, more: &Labels, override_: bool) -> Labels {
    let mut map: BTreeMap<String, String> = base.into_iter().collect();
    for (k, v) in more {
        if override_ || !map.contains_key(k) {
            map.insert(k.clone(), v.clone());
        }
    }
    map.into_iter().collect()
}

fn value_string(v: Option<&AnyValue>) -> String {
    match v.and_then(|v| v.value.as_ref()) {
        None => String::new(),
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::DoubleValue(d)) => num(*d),
        Some(any_value::Value::BytesValue(b)) => b.iter().map(|x| format!("{x:02x}")).collect(),
        Some(any_value::Value::ArrayValue(a)) => {
            let items: Vec<String> = a
                .values
                .iter()
                .map(|v| serde_json::Value::String(value_string(Some(v))).to_string())
                .collect();
            format!("[{}]", items.join(","))
        }
        Some(any_value::Value::KvlistValue(kv)) => {
            let items: Vec<String> = kv
                .values
                .iter()
                .map(|e| {
                    format!(
                        "{}:{}",
                        serde_json::Value::String(e.key.clone()),
                        serde_json::Value::String(value_string(e.value.as_ref()))
                    )
                })
                .collect();
            format!("{{{}}}", items.join(","))
        }
        // Dictionary-encoded strings need the request's string table, which is not kept.
        Some(_) => String::new(),
    }
}
