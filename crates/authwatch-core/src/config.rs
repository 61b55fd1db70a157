//! Config newtypes shared by components: single-field rules live here, so that serde reports the
//! exact path of a bad value ("parse, don't validate").

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::str::FromStr;
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

    /// Parses `200ms`, `5s`, `1m30s`, `0`.
    pub fn parse(t: &str) -> Result<Duration, String> {
        let t = t.trim();
        if t == "0" {
            return Ok(Duration::ZERO);
        }
        humantime::parse_duration(t).map_err(|e| {
            format!("invalid duration `{t}` ({e}); write it like `200ms`, `5s` or `1m30s`")
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

/// A listen address: `host:port` where host is an IP literal or `localhost` (no DNS at config time).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ListenAddr(pub SocketAddr);

impl ListenAddr {
    pub const fn localhost(port: u16) -> Self {
        ListenAddr(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port))
    }
    pub fn addr(&self) -> SocketAddr {
        self.0
    }
}

impl FromStr for ListenAddr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if let Ok(a) = s.parse::<SocketAddr>() {
            return Ok(ListenAddr(a));
        }
        let (host, port) = s.rsplit_once(':').ok_or_else(|| {
            format!("invalid endpoint `{s}`: write it as host:port, e.g. 127.0.0.1:4317")
        })?;
        let port: u16 = port.parse().map_err(|_| {
            format!("invalid endpoint `{s}`: port `{port}` is not a number from 0 to 65535")
        })?;
        let ip = match host {
            "localhost" => IpAddr::V4(Ipv4Addr::LOCALHOST),
            "" => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            h => h
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse()
                .map_err(|_| {
                    format!("invalid endpoint `{s}`: host must be an IP address or `localhost`")
                })?,
        };
        Ok(ListenAddr(SocketAddr::new(ip, port)))
    }
}

impl fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl Serialize for ListenAddr {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ListenAddr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// An HTTP URL path a server listens on, such as `/v1/traces`. A missing leading `/` is added
/// (as the Collector does); query strings, fragments, spaces, non-ASCII characters and route
/// syntax (`{`, `}`, `*`) are refused.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UrlPath(String);

impl UrlPath {
    /// A path known to be valid (defaults in code).
    pub fn from_static(s: &'static str) -> Self {
        UrlPath(s.to_owned())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for UrlPath {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim();
        if t.is_empty() {
            return Err("URL path must not be empty; write it like `/v1/traces`".to_owned());
        }
        if let Some(c) = t
            .chars()
            .find(|c| !c.is_ascii_graphic() || matches!(c, '?' | '#' | '{' | '}' | '*'))
        {
            return Err(format!(
                "invalid URL path `{t}`: `{}` is not allowed; write a plain path like `/v1/traces`",
                c.escape_default()
            ));
        }
        Ok(if t.starts_with('/') {
            UrlPath(t.to_owned())
        } else {
            UrlPath(format!("/{t}"))
        })
    }
}

impl fmt::Display for UrlPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for UrlPath {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for UrlPath {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
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

    #[test]
    fn url_paths() {
        assert_eq!("v1/x".parse::<UrlPath>().unwrap().as_str(), "/v1/x");
        assert_eq!(" /v1/x ".parse::<UrlPath>().unwrap().to_string(), "/v1/x");
        for bad in ["", "/a b", "/a#b", "/a?b=1", "/é", "/{id}", "/*"] {
            assert!(bad.parse::<UrlPath>().is_err(), "{bad}");
        }
    }

    #[test]
    fn listen_addrs() {
        assert_eq!(
            "localhost:4317".parse::<ListenAddr>().unwrap(),
            ListenAddr::localhost(4317)
        );
        assert_eq!(
            "0.0.0.0:1".parse::<ListenAddr>().unwrap().0.to_string(),
            "0.0.0.0:1"
        );
        assert_eq!("[::1]:9".parse::<ListenAddr>().unwrap().0.port(), 9);
        assert!("example.com:80".parse::<ListenAddr>().is_err());
        assert!("127.0.0.1".parse::<ListenAddr>().is_err());
        assert!("127.0.0.1:99999".parse::<ListenAddr>().is_err());
    }
}
