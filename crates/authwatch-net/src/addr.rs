//! Listen addresses and URLs as config values: each newtype is its parse rule plus one
//! [`string_newtype!`](crate::string_newtype) line, so that a bad value is refused by serde at its
//! exact path ("parse, don't validate").

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use crate::string_newtype;

// === ListenAddr ===

/// A listen address: `host:port` where host is an IP literal or `localhost` (no DNS at config
/// time); an empty host means every interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ListenAddr(pub SocketAddr);

/// Why a listen address was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ListenAddrError {
    #[error("invalid endpoint `{0}`: write it as host:port, e.g. 127.0.0.1:4317")]
    NoPort(String),
    #[error("invalid endpoint `{input}`: port `{port}` is not a number from 0 to 65535")]
    BadPort { input: String, port: String },
    #[error("invalid endpoint `{0}`: host must be an IP address or `localhost`")]
    BadHost(String),
}

string_newtype!(
    ListenAddr,
    error = ListenAddrError,
    parse = ListenAddr::parse,
    display = |a| a.0
);

impl ListenAddr {
    pub const fn localhost(port: u16) -> Self {
        ListenAddr(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port))
    }

    pub fn addr(&self) -> SocketAddr {
        self.0
    }

    fn parse(s: &str) -> Result<Self, ListenAddrError> {
        let s = s.trim();
        if let Ok(a) = s.parse::<SocketAddr>() {
            return Ok(ListenAddr(a));
        }
        let (host, port) = s
            .rsplit_once(':')
            .ok_or_else(|| ListenAddrError::NoPort(s.to_owned()))?;
        let port: u16 = port.parse().map_err(|_| ListenAddrError::BadPort {
            input: s.to_owned(),
            port: port.to_owned(),
        })?;
        let ip = match host {
            "localhost" => IpAddr::V4(Ipv4Addr::LOCALHOST),
            "" => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            h => h
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse()
                .map_err(|_| ListenAddrError::BadHost(s.to_owned()))?,
        };
        Ok(ListenAddr(SocketAddr::new(ip, port)))
    }
}

// === UrlPath ===

/// An HTTP URL path a server listens on, such as `/v1/traces`. Surrounding spaces are trimmed
/// and a missing leading `/` is added (as the Collector does); query strings, fragments, spaces,
/// control and non-ASCII characters and route syntax (`{`, `}`, `*`) are refused, so any
/// `UrlPath` can be routed.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UrlPath(String);

/// Why a URL path was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlPathError {
    #[error("URL path must not be empty; write it like `/v1/traces`")]
    Empty,
    #[error("invalid URL path `{path}`: {} is not allowed; write a plain path like `/v1/traces`", shown(*.found))]
    Char { path: String, found: char },
}

fn shown(c: char) -> String {
    match c {
        ' ' => "a space".to_owned(),
        c => format!("`{}`", c.escape_default()),
    }
}

string_newtype!(
    UrlPath,
    error = UrlPathError,
    parse = UrlPath::parse,
    display = |p| p.0
);

impl UrlPath {
    /// A path known to be valid (defaults in code).
    pub fn from_static(s: &'static str) -> Self {
        UrlPath(s.to_owned())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    fn parse(s: &str) -> Result<Self, UrlPathError> {
        let t = s.trim();
        if t.is_empty() {
            return Err(UrlPathError::Empty);
        }
        if let Some(found) = t
            .chars()
            .find(|c| !c.is_ascii_graphic() || matches!(c, '?' | '#' | '{' | '}' | '*'))
        {
            return Err(UrlPathError::Char {
                path: t.to_owned(),
                found,
            });
        }
        Ok(if t.starts_with('/') {
            UrlPath(t.to_owned())
        } else {
            UrlPath(format!("/{t}"))
        })
    }
}

// === HttpUrl ===

/// An `http://` or `https://` URL with a host, kept as written. Empty means "not set" (the
/// component's `validate` reports it when it is required).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HttpUrl(String);

/// Why a URL was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HttpUrlError {
    #[error("invalid URL `{url}` ({source}): write it like `https://collector:4318`")]
    Parse {
        url: String,
        #[source]
        source: url::ParseError,
    },
    #[error("invalid URL `{0}`: it must start with http:// or https:// and name a host, e.g. `https://collector:4318`")]
    NotHttp(String),
}

string_newtype!(
    HttpUrl,
    error = HttpUrlError,
    parse = |s| HttpUrl::new(s),
    display = |u| u.0
);

impl HttpUrl {
    pub fn new(s: impl Into<String>) -> Result<Self, HttpUrlError> {
        let s = s.into();
        if !s.is_empty() {
            HttpUrl::check(&s)?;
        }
        Ok(HttpUrl(s))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Parses `s` as an `http(s)` URL with a host.
    pub fn check(s: &str) -> Result<url::Url, HttpUrlError> {
        let url = url::Url::parse(s).map_err(|source| HttpUrlError::Parse {
            url: s.to_owned(),
            source,
        })?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none_or(str::is_empty) {
            return Err(HttpUrlError::NotHttp(s.to_owned()));
        }
        Ok(url)
    }
}

// === GrpcEndpoint ===

/// A gRPC endpoint as written: `host:port`, `http://host[:port]` or `https://host[:port]`.
/// Empty means "not set" (the component's `validate` reports it).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GrpcEndpoint(String);

/// A parsed [`GrpcEndpoint`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrpcTarget {
    /// `Some(true)` for `https://`, `Some(false)` for `http://`, `None` for `host:port`.
    pub tls: Option<bool>,
    /// `host:port` or `host`.
    pub authority: String,
}

/// Why a gRPC endpoint was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GrpcEndpointError {
    #[error("invalid endpoint `{0}`: write it as host:port (e.g. `collector:4317`) or as an http:// or https:// URL")]
    Malformed(String),
    #[error("invalid endpoint `{input}`: the port is missing, e.g. `{host}:4317`")]
    NoPort { input: String, host: String },
}

string_newtype!(
    GrpcEndpoint,
    error = GrpcEndpointError,
    parse = |s| GrpcEndpoint::new(s),
    display = |e| e.0
);

impl GrpcEndpoint {
    pub fn new(s: impl Into<String>) -> Result<Self, GrpcEndpointError> {
        let s = s.into();
        if !s.is_empty() {
            GrpcEndpoint::parse_target(&s)?;
        }
        Ok(GrpcEndpoint(s))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The scheme (if any) and authority.
    pub fn target(&self) -> Result<GrpcTarget, GrpcEndpointError> {
        GrpcEndpoint::parse_target(&self.0)
    }

    /// Parses `host:port`, `http://host[:port][/]` or `https://host[:port][/]`.
    pub fn parse_target(s: &str) -> Result<GrpcTarget, GrpcEndpointError> {
        let bad = || GrpcEndpointError::Malformed(s.to_owned());
        let (tls, rest) = if let Some(r) = s.strip_prefix("https://") {
            (Some(true), r)
        } else if let Some(r) = s.strip_prefix("http://") {
            (Some(false), r)
        } else if s.contains("://") {
            return Err(bad());
        } else {
            (None, s)
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.is_empty() || rest.contains('/') {
            return Err(bad());
        }
        let uri: http::Uri = format!("http://{rest}").parse().map_err(|_| bad())?;
        let authority = uri.authority().ok_or_else(bad)?;
        if authority.host().is_empty() || authority.as_str().contains('@') {
            return Err(bad());
        }
        if tls.is_none() && authority.port().is_none() {
            return Err(GrpcEndpointError::NoPort {
                input: s.to_owned(),
                host: rest.to_owned(),
            });
        }
        Ok(GrpcTarget {
            tls,
            authority: authority.as_str().to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_addrs() {
        assert_eq!(
            "localhost:4317".parse::<ListenAddr>().unwrap(),
            ListenAddr::localhost(4317)
        );
        assert_eq!(
            "0.0.0.0:1".parse::<ListenAddr>().unwrap().to_string(),
            "0.0.0.0:1"
        );
        assert_eq!(":9".parse::<ListenAddr>().unwrap().to_string(), "0.0.0.0:9");
        assert_eq!("[::1]:9".parse::<ListenAddr>().unwrap().0.port(), 9);
        let e = |s: &str| s.parse::<ListenAddr>().unwrap_err().to_string();
        assert_eq!(
            e("example.com:80"),
            "invalid endpoint `example.com:80`: host must be an IP address or `localhost`"
        );
        assert_eq!(
            e("127.0.0.1"),
            "invalid endpoint `127.0.0.1`: write it as host:port, e.g. 127.0.0.1:4317"
        );
        assert_eq!(
            e("127.0.0.1:99999"),
            "invalid endpoint `127.0.0.1:99999`: port `99999` is not a number from 0 to 65535"
        );
    }

    #[test]
    fn listen_addrs_round_trip_through_serde() {
        let a: ListenAddr = serde_json::from_str(r#"" 127.0.0.1:4318 ""#).unwrap();
        assert_eq!(serde_json::to_string(&a).unwrap(), r#""127.0.0.1:4318""#);
        let e = serde_json::from_str::<ListenAddr>("4318").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("invalid type: integer `4318`, expected a string"),
            "{e}"
        );
    }

    #[test]
    fn url_paths() {
        assert_eq!("v1/x".parse::<UrlPath>().unwrap().as_str(), "/v1/x");
        assert_eq!(" /v1/x ".parse::<UrlPath>().unwrap().to_string(), "/v1/x");
        for bad in ["", "/a b", "/a#b", "/a?b=1", "/é", "/{id}", "/*", "/a\tb"] {
            assert!(bad.parse::<UrlPath>().is_err(), "{bad}");
        }
        let e = |s: &str| s.parse::<UrlPath>().unwrap_err().to_string();
        assert_eq!(
            e(" "),
            "URL path must not be empty; write it like `/v1/traces`"
        );
        assert_eq!(
            e("/logs?x=1"),
            "invalid URL path `/logs?x=1`: `?` is not allowed; write a plain path like `/v1/traces`"
        );
        assert_eq!(
            e("/a b"),
            "invalid URL path `/a b`: a space is not allowed; write a plain path like `/v1/traces`"
        );
        assert_eq!(
            e("/é"),
            "invalid URL path `/é`: `\\u{e9}` is not allowed; write a plain path like `/v1/traces`"
        );
    }

    #[test]
    fn http_urls() {
        assert!(HttpUrl::new("").unwrap().is_empty());
        assert_eq!(
            HttpUrl::new("https://a:4318/x").unwrap().as_str(),
            "https://a:4318/x"
        );
        let e = |s: &str| HttpUrl::new(s).unwrap_err().to_string();
        assert_eq!(
            e("collector:4318"),
            "invalid URL `collector:4318`: it must start with http:// or https:// and name a host, e.g. `https://collector:4318`"
        );
        assert_eq!(
            e("/v1/traces"),
            "invalid URL `/v1/traces` (relative URL without a base): write it like `https://collector:4318`"
        );
        assert!(HttpUrl::new("ftp://a/logs").is_err());
        let u: HttpUrl = serde_json::from_str(r#""http://a:1/t""#).unwrap();
        assert_eq!(u.to_string(), "http://a:1/t");
    }

    #[test]
    fn grpc_endpoints() {
        let t = |s: &str| GrpcEndpoint::parse_target(s).unwrap();
        assert_eq!(t("collector:4317").tls, None);
        assert_eq!(t("collector:4317").authority, "collector:4317");
        assert_eq!(t("http://127.0.0.1:4317").tls, Some(false));
        assert_eq!(t("https://api.honeycomb.io").tls, Some(true));
        assert_eq!(
            t("https://api.honeycomb.io:443/").authority,
            "api.honeycomb.io:443"
        );
        assert_eq!(t("[::1]:4317").authority, "[::1]:4317");
        assert!(GrpcEndpoint::parse_target("user@host:1").is_err());
        assert!(GrpcEndpoint::new("").unwrap().is_empty());
        let e = |s: &str| GrpcEndpoint::new(s).unwrap_err().to_string();
        assert_eq!(
            e("collector"),
            "invalid endpoint `collector`: the port is missing, e.g. `collector:4317`"
        );
        assert_eq!(
            e("ftp://collector:4317"),
            "invalid endpoint `ftp://collector:4317`: write it as host:port (e.g. `collector:4317`) or as an http:// or https:// URL"
        );
    }
}
