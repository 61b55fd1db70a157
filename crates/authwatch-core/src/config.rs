//! Config newtypes shared by components: single-field rules live here, so that serde reports the
//! exact path of a bad value ("parse, don't validate"). Listen addresses and URLs are the
//! networking crate's (`authwatch_net::{ListenAddr, UrlPath, HttpUrl, GrpcEndpoint}`).

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// What a secret prints as in `print-config`, logs and errors.
pub const REDACTED: &str = "[REDACTED]";

/// A secret config value (client secret, password, API key, header value). Its `Debug`,
/// `Display` and `Serialize` never show the value; read it with [`Secret::expose`].
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(REDACTED)
    }
}

/// Durations written the Collector's way: `200ms`, `5s`, `1m30s`. A bare number is seconds.
pub mod duration {
    use super::*;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&humantime::format_duration(*d))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Secs(u64),
            Float(f64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Secs(n) => Ok(Duration::from_secs(n)),
            Raw::Float(f) if f.is_finite() && f >= 0.0 => Ok(Duration::from_secs_f64(f)),
            Raw::Float(f) => Err(serde::de::Error::custom(format!(
                "invalid duration {f}: must be a non-negative number"
            ))),
            Raw::Text(t) => parse(&t).map_err(serde::de::Error::custom),
        }
    }

    /// A duration that does not read as one.
    #[derive(Debug, Clone, PartialEq, thiserror::Error)]
    #[error("invalid duration `{text}` ({source}); write it like `200ms`, `5s` or `1m30s`")]
    pub struct ParseError {
        /// What was written (trimmed).
        pub text: String,
        #[source]
        pub source: humantime::DurationError,
    }

    /// Parses `200ms`, `5s`, `1m30s`, `0`.
    pub fn parse(t: &str) -> Result<Duration, ParseError> {
        let t = t.trim();
        if t == "0" {
            return Ok(Duration::ZERO);
        }
        humantime::parse_duration(t).map_err(|source| ParseError {
            text: t.to_owned(),
            source,
        })
    }
}

/// `Option<Duration>` in the same format.
pub mod opt_duration {
    use super::*;

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => duration::serialize(d, s),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        #[derive(Deserialize)]
        struct W(#[serde(with = "duration")] Duration);
        Ok(Option::<W>::deserialize(d)?.map(|w| w.0))
    }
}

/// A count that must be at least one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Positive(pub usize);

impl Positive {
    pub fn get(self) -> usize {
        self.0
    }
}

impl<'de> Deserialize<'de> for Positive {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let n = usize::deserialize(d)?;
        if n == 0 {
            return Err(serde::de::Error::custom("must be positive"));
        }
        Ok(Positive(n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_never_prints() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?} {s}"), "[REDACTED] [REDACTED]");
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"[REDACTED]\"");
        assert_eq!(s.expose(), "hunter2");
    }

    #[test]
    fn durations() {
        #[derive(Deserialize)]
        struct C {
            #[serde(with = "duration")]
            d: Duration,
        }
        let c: C = serde_json::from_str(r#"{"d":"1m30s"}"#).unwrap();
        assert_eq!(c.d, Duration::from_secs(90));
        let c: C = serde_json::from_str(r#"{"d":5}"#).unwrap();
        assert_eq!(c.d, Duration::from_secs(5));
        let c: C = serde_json::from_str(r#"{"d":"200ms"}"#).unwrap();
        assert_eq!(c.d, Duration::from_millis(200));
        let e = serde_json::from_str::<C>(r#"{"d":"soon"}"#).err().unwrap();
        assert!(e.to_string().contains("invalid duration `soon`"), "{e}");
    }
}
