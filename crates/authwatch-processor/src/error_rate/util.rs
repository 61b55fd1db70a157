//! Small helpers shared by the `error_rate` and `alerts` connectors: durations written the
//! Prometheus way, a pausable clock, and OTLP attribute builders.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use authwatch_core::otlp::common::v1::{any_value, AnyValue, ArrayValue, KeyValue};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use tokio::time::Instant;

/// A duration that is written and printed the Prometheus way (`30s`, `5m`, `1h`, `1d`) and
/// parsed like every authwatch duration (`5m`, `1h30m`, `90s`). Must not be zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Window(pub Duration);

impl Window {
    pub const fn secs(s: u64) -> Self {
        Window(Duration::from_secs(s))
    }
    pub fn get(self) -> Duration {
        self.0
    }
}

impl fmt::Display for Window {
    /// The largest unit that divides the duration exactly: `1d`, `6h`, `30m`, `90s`, `500ms`.
    // `is_multiple_of` needs Rust 1.87; the workspace supports 1.85.
    #[allow(clippy::manual_is_multiple_of)]
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.as_millis();
        if ms % 1000 != 0 {
            return write!(f, "{ms}ms");
        }
        let s = ms / 1000;
        for (unit, n) in [("d", 86_400), ("h", 3600), ("m", 60)] {
            if s >= n && s % n == 0 {
                return write!(f, "{}{unit}", s / n);
            }
        }
        write!(f, "{s}s")
    }
}

impl Serialize for Window {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Window {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let d = authwatch_core::config::duration::deserialize(d)?;
        if d.is_zero() {
            return Err(serde::de::Error::custom(
                "must be longer than zero, e.g. `5m`",
            ));
        }
        Ok(Window(d))
    }
}

/// Wall-clock time that follows tokio's (pausable) clock: fixed at creation, then advanced by
/// `tokio::time::Instant`, so windows and timestamps agree and tests are deterministic.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    wall: SystemTime,
    start: Instant,
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock {
    pub fn new() -> Self {
        Clock {
            wall: SystemTime::now(),
            start: Instant::now(),
        }
    }
    /// Time since the clock was created.
    pub fn elapsed(&self) -> Duration {
        Instant::now().saturating_duration_since(self.start)
    }
    pub fn system_time(&self, elapsed: Duration) -> SystemTime {
        self.wall + elapsed
    }
    pub fn unix_nanos(&self, elapsed: Duration) -> u64 {
        let t = self.system_time(elapsed);
        t.duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0)
    }
    /// RFC 3339 in UTC with milliseconds (`2024-05-01T12:00:00.000Z`), as Alertmanager reads it.
    pub fn rfc3339(&self, elapsed: Duration) -> String {
        humantime::format_rfc3339_millis(self.system_time(elapsed)).to_string()
    }
}

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

fn kv(key: impl Into<String>, v: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(v) }),
        ..Default::default()
    }
}

/// The string value of an attribute, by reference.
pub fn attr_str(v: &Option<AnyValue>) -> Option<&str> {
    match v.as_ref()?.value.as_ref()? {
        any_value::Value::StringValue(s) => Some(s),
        _ => None,
    }
}

/// Finds a string attribute by key.
pub fn find_str<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a str> {
    attrs.iter().find(|kv| kv.key == key).and_then(|kv| attr_str(&kv.value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_print_the_prometheus_way() {
        for (s, p) in [
            (60, "1m"),
            (300, "5m"),
            (3600, "1h"),
            (21_600, "6h"),
            (86_400, "1d"),
            (259_200, "3d"),
            (90, "90s"),
            (5400, "90m"),
        ] {
            assert_eq!(Window::secs(s).to_string(), p);
        }
        assert_eq!(Window(Duration::from_millis(1500)).to_string(), "1500ms");
    }

    #[test]
    fn windows_parse_and_refuse_zero() {
        let w: Window = serde_json::from_str("\"1h30m\"").unwrap();
        assert_eq!(w, Window::secs(5400));
        let e = serde_json::from_str::<Window>("\"0s\"").unwrap_err();
        assert!(e.to_string().contains("longer than zero"), "{e}");
    }
}
