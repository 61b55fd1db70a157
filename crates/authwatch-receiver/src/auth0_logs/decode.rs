//! Log-stream bodies (JSON array, JSON lines, one object) into events, and events into OTLP
//! log records with flattened `auth0.*` attributes.

use authwatch_core::otlp::logs::v1::{LogRecord, SeverityNumber};
use authwatch_core::semconv;
use serde_json::{Map, Value};

use super::types::{category, Category};
use authwatch_tenant_logs::attributes::{flatten, kv, scrub, string};

/// Keys dropped at any depth unless `include_user_ids` is on: they identify a person.
pub const PERSONAL_FIELDS: &[&str] = &[
    "user_id",
    "user_name",
    "username",
    "email",
    "phone_number",
    "phone",
    "ip",
    "client_ip",
    "user_agent",
    "location_info",
    "given_name",
    "family_name",
    "nickname",
    "picture",
];


/// One streamed event.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Event {
    pub log_id: Option<String>,
    pub data: Map<String, Value>,
}

impl Event {
    pub fn type_code(&self) -> &str {
        self.data.get("type").and_then(Value::as_str).unwrap_or("")
    }
}

/// Why a body is not a log-stream batch.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("the body is not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("record {0} is not a JSON object; send Auth0 log stream records")]
    NotAnObject(usize),
}

/// Decodes a JSON array, JSON lines (or any whitespace-separated JSON values), or one object.
/// An object with a `logs` array and no `data` is read as that array.
pub(crate) fn decode_body(body: &[u8]) -> Result<Vec<Event>, DecodeError> {
    let mut records = Vec::new();
    for value in serde_json::Deserializer::from_slice(body).into_iter::<Value>() {
        match value? {
            Value::Array(items) => records.extend(items),
            Value::Object(mut o)
                if !o.contains_key("data") && o.get("logs").is_some_and(Value::is_array) =>
            {
                if let Some(Value::Array(items)) = o.remove("logs") {
                    records.extend(items);
                }
            }
            v => records.push(v),
        }
    }
    records
        .into_iter()
        .enumerate()
        .map(|(i, r)| match r {
            Value::Object(o) => Ok(event(o)),
            _ => Err(DecodeError::NotAnObject(i)),
        })
        .collect()
}

fn event(mut record: Map<String, Value>) -> Event {
    let outer_id = record
        .get("log_id")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let data = match record.remove("data") {
        Some(Value::Object(d)) => d,
        Some(other) => {
            record.insert("data".into(), other);
            record
        }
        None => record,
    };
    let log_id = outer_id
        .or_else(|| {
            data.get("log_id")
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
        .or_else(|| data.get("_id").and_then(Value::as_str).map(str::to_owned))
        .filter(|s| !s.is_empty());
    Event { log_id, data }
}

/// The log record of one event.
pub(crate) fn record(event: &Event, include_user_ids: bool, observed: u64) -> LogRecord {
    let code = event.type_code();
    let cat = category(code);
    let mut data = Value::Object(event.data.clone());
    if !include_user_ids {
        scrub(&mut data, PERSONAL_FIELDS);
    }
    let mut attributes = vec![
        kv(semconv::AUTH0_LOG_TYPE, string(code)),
        kv(semconv::AUTH0_LOG_CATEGORY, string(cat.as_str())),
    ];
    if let Value::Object(o) = &data {
        for (k, v) in o {
            if matches!(k.as_str(), "type" | "description" | "date") {
                continue;
            }
            flatten(&format!("auth0.{k}"), v, 1, &mut attributes);
        }
    }
    if let Some(id) = &event.log_id {
        if !attributes.iter().any(|a| a.key == semconv::AUTH0_LOG_ID) {
            attributes.push(kv(semconv::AUTH0_LOG_ID, string(id.clone())));
        }
    }
    let (severity, text) = match cat {
        Category::Success | Category::Other => (SeverityNumber::Info, "INFO"),
        Category::Failure | Category::RateLimit | Category::Anomaly => {
            (SeverityNumber::Warn, "WARN")
        }
    };
    let time = event
        .data
        .get("date")
        .and_then(Value::as_str)
        .and_then(authwatch_core::time::parse_rfc3339)
        .and_then(authwatch_core::time::unix_nanos)
        .unwrap_or(0);
    let body = event
        .data
        .get("description")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    LogRecord {
        time_unix_nano: time,
        observed_time_unix_nano: observed,
        severity_number: severity as i32,
        severity_text: text.to_owned(),
        body: Some(string(body)),
        attributes,
        event_name: "auth0.log".to_owned(),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn three_body_formats() {
        let a = br#"[{"log_id":"1","data":{"type":"s"}},{"log_id":"2","data":{"type":"f"}}]"#;
        let l = b"{\"log_id\":\"1\",\"data\":{\"type\":\"s\"}}\n\n{\"log_id\":\"2\",\"data\":{\"type\":\"f\"}}\n";
        let o = br#"{"log_id":"1","data":{"type":"s"}}"#;
        let w = br#"{"logs":[{"log_id":"1","data":{"type":"s"}}]}"#;
        assert_eq!(decode_body(a).unwrap().len(), 2);
        assert_eq!(decode_body(l).unwrap().len(), 2);
        assert_eq!(decode_body(o).unwrap()[0].log_id.as_deref(), Some("1"));
        assert_eq!(decode_body(w).unwrap()[0].type_code(), "s");
        assert!(decode_body(b"[1]").is_err());
        assert!(decode_body(b"{\"a\":").is_err());
        assert!(decode_body(b"").unwrap().is_empty());
    }

    #[test]
    fn bare_event_and_id_fallback() {
        let e = decode_body(br#"{"type":"fp","log_id":"9","date":"2021-11-03T03:07:24.384Z"}"#)
            .unwrap();
        assert_eq!(e[0].log_id.as_deref(), Some("9"));
        assert_eq!(e[0].type_code(), "fp");
    }
}
