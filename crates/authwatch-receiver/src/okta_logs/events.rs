//! Okta System Log pages into events, events into OTLP log records, and logins.

use authwatch_core::otlp::logs::v1::{LogRecord, SeverityNumber};
use serde_json::{Map, Value};

use authwatch_tenant_logs::attributes::{flatten, kv, scrub, string};
use authwatch_tenant_logs::logins::{FailureCategory, Login, Outcome};

/// Keys dropped at any depth unless `include_user_ids` is on: they identify a person.
pub const PERSONAL_FIELDS: &[&str] = &[
    "alternateId",
    "displayName",
    "ipAddress",
    "ip",
    "rawUserAgent",
    "geographicalContext",
    "email",
    "login",
];


/// Why a page is not a System Log page.
#[derive(Debug, thiserror::Error)]
pub enum PageError {
    #[error("the page is not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("the page is not a JSON array of LogEvent objects")]
    NotAnArray,
    #[error("event {0} of the page is not a JSON object")]
    NotAnObject(usize),
}

/// One LogEvent.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Event(pub Map<String, Value>);

impl Event {
    fn str_at(&self, pointer: &str) -> Option<&str> {
        let v = if pointer.starts_with('/') {
            self.pointer(pointer)
        } else {
            self.0.get(pointer)
        };
        v.and_then(Value::as_str).filter(|s| !s.is_empty())
    }

    fn pointer(&self, pointer: &str) -> Option<&Value> {
        let mut parts = pointer.trim_start_matches('/').split('/');
        let mut v = self.0.get(parts.next()?)?;
        for p in parts {
            v = v.get(p)?;
        }
        Some(v)
    }

    pub fn uuid(&self) -> Option<&str> {
        self.str_at("uuid")
    }

    pub fn event_type(&self) -> &str {
        self.str_at("eventType").unwrap_or("")
    }

    pub fn result(&self) -> &str {
        self.str_at("/outcome/result").unwrap_or("")
    }
}

/// A page: a JSON array of objects.
pub(crate) fn decode_page(body: &[u8]) -> Result<Vec<Event>, PageError> {
    let Value::Array(items) = serde_json::from_slice::<Value>(body)? else {
        return Err(PageError::NotAnArray);
    };
    items
        .into_iter()
        .enumerate()
        .map(|(i, v)| match v {
            Value::Object(o) => Ok(Event(o)),
            _ => Err(PageError::NotAnObject(i)),
        })
        .collect()
}

fn upper_has(s: &str, words: &[&str]) -> bool {
    let u = s.to_ascii_uppercase();
    words.iter().any(|w| u.contains(w))
}

/// The category of a failed login from its `eventType` and `outcome.reason`.
fn category(event_type: &str, reason: &str) -> FailureCategory {
    use FailureCategory::*;
    if upper_has(reason, &["INVALID_CREDENTIALS", "VERIFICATION_ERROR", "INVALID_PASSWORD", "UNKNOWN_USER", "USER_NOT_FOUND"]) {
        WrongCredentials
    } else if upper_has(reason, &["LOCKED_OUT", "LOCKED", "BLOCKED", "SUSPENDED", "DEACTIVATED"]) {
        Blocked
    } else if upper_has(reason, &["RATE_LIMIT", "TOO_MANY"]) {
        RateLimit
    } else if upper_has(reason, &["MFA", "FACTOR", "PASSCODE", "OTP"]) || event_type.contains("mfa") {
        Mfa
    } else if upper_has(reason, &["HOOK", "POLICY", "CONFIGURATION", "MISCONFIGURED", "DELEGATED", "AGENT", "APP_NOT_ASSIGNED"]) {
        TenantError
    } else if upper_has(reason, &["INTERNAL", "SERVER_ERROR", "UNAVAILABLE", "TIMEOUT", "UNEXPECTED"]) {
        ProviderError
    } else {
        Other
    }
}

/// The login an event records: `user.session.start` (every outcome) and failed
/// `user.authentication.*` steps; `None` for anything else (other events, `CHALLENGE`,
/// `SKIPPED`, `UNKNOWN`).
pub(crate) fn login(e: &Event) -> Option<Login<'_>> {
    let t = e.event_type();
    let session = t == "user.session.start";
    if !session && !t.starts_with("user.authentication.") {
        return None;
    }
    let outcome = match e.result() {
        "SUCCESS" | "ALLOW" if session => Outcome::Success,
        "FAILURE" | "DENY" => {
            Outcome::Failure(category(t, e.str_at("/outcome/reason").unwrap_or("")))
        }
        _ => return None,
    };
    let app = e.0.get("target").and_then(Value::as_array).and_then(|ts| {
        ts.iter()
            .find(|x| x.get("type").and_then(Value::as_str) == Some("AppInstance"))
            .and_then(|x| x.get("displayName").and_then(Value::as_str))
    });
    Some(Login {
        outcome,
        client: app.unwrap_or(""),
        connection: e
            .str_at("/authenticationContext/authenticationProvider")
            .unwrap_or(""),
        user: e.str_at("/actor/id").or_else(|| e.str_at("/actor/alternateId")),
        at: e.str_at("published").and_then(authwatch_core::time::parse_rfc3339),
    })
}

/// The log record of one event.
pub(crate) fn record(e: &Event, include_user_ids: bool, observed: u64) -> LogRecord {
    let mut data = Value::Object(e.0.clone());
    if !include_user_ids {
        scrub(&mut data, PERSONAL_FIELDS);
    }
    let mut attributes = vec![
        kv("okta.event_type", string(e.event_type())),
        kv("okta.outcome.result", string(e.result())),
    ];
    if let Value::Object(o) = &data {
        for (k, v) in o {
            if matches!(k.as_str(), "eventType" | "displayMessage" | "published" | "severity") {
                continue;
            }
            let key = match k.as_str() {
                "uuid" => "okta.uuid".to_owned(),
                _ => format!("okta.{k}"),
            };
            flatten(&key, v, 1, &mut attributes);
        }
    }
    let (severity, text) = match e.str_at("severity").unwrap_or("INFO") {
        "DEBUG" => (SeverityNumber::Debug, "DEBUG"),
        "WARN" => (SeverityNumber::Warn, "WARN"),
        "ERROR" => (SeverityNumber::Error, "ERROR"),
        _ => (SeverityNumber::Info, "INFO"),
    };
    LogRecord {
        time_unix_nano: e
            .str_at("published")
            .and_then(authwatch_core::time::parse_rfc3339)
            .and_then(authwatch_core::time::unix_nanos)
            .unwrap_or(0),
        observed_time_unix_nano: observed,
        severity_number: severity as i32,
        severity_text: text.to_owned(),
        body: Some(string(e.str_at("displayMessage").unwrap_or(""))),
        attributes,
        event_name: "okta.log".to_owned(),
        ..Default::default()
    }
}

#[cfg(test)]
#[path = "tests/events.rs"]
mod tests;
