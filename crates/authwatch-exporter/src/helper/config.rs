//! Config pieces the OTLP exporters share: `compression`, `headers`, TLS files.

use std::collections::BTreeMap;

use authwatch_core::config::Secret;
use authwatch_core::{BuildError, Validator};
use serde::{Deserialize, Serialize};

/// Request body compression.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    #[default]
    Gzip,
    None,
}

/// Checks `headers` names and values (pure). Messages never contain a value: values are secrets.
pub fn validate_headers(headers: &BTreeMap<String, Secret>, v: &mut Validator, grpc: bool) {
    for (name, value) in headers {
        let path = format!("headers::{name}");
        if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
            v.error(
                &path,
                "is not a valid header name: use letters, digits and `-`, e.g. `x-api-key`",
            );
            continue;
        }
        if grpc && name.to_ascii_lowercase().ends_with("-bin") {
            v.error(&path, "binary (`-bin`) gRPC metadata is not supported");
            continue;
        }
        if grpc && name.starts_with("grpc-") {
            v.error(&path, "`grpc-` headers are reserved by gRPC");
            continue;
        }
        if http::HeaderValue::from_str(value.expose()).is_err() {
            v.error(
                &path,
                "the value is not a valid header value: use visible ASCII characters only",
            );
        }
    }
}

/// Why a configured header cannot be sent. Never holds the value: header values are secrets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    #[error("not a valid header name")]
    InvalidName,
    #[error("not a valid header value: use visible ASCII characters only")]
    InvalidValue,
}

/// The headers as an HTTP header map, values marked sensitive (never logged by the client).
pub fn header_map(headers: &BTreeMap<String, Secret>) -> Result<http::HeaderMap, BuildError> {
    let mut map = http::HeaderMap::new();
    for (name, value) in headers {
        let n = http::HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
            BuildError::option(format!("headers::{name}"), HeaderError::InvalidName)
        })?;
        let mut v = http::HeaderValue::from_str(value.expose()).map_err(|_| {
            BuildError::option(format!("headers::{name}"), HeaderError::InvalidValue)
        })?;
        v.set_sensitive(true);
        map.insert(n, v);
    }
    Ok(map)
}

/// Walks an error's source chain into one line (`a: b: c`), skipping repeats.
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cur = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_headers_are_named_without_their_values() {
        let mut h = BTreeMap::new();
        h.insert("bad name".to_owned(), Secret::new("x"));
        h.insert("x-key".to_owned(), Secret::new("s3cret\nvalue"));
        h.insert("grpc-timeout".to_owned(), Secret::new("1"));
        let mut v = Validator::new("exporters::otlp");
        validate_headers(&h, &mut v, true);
        let lines: Vec<String> = v.errors().iter().map(|e| e.to_string()).collect();
        assert_eq!(
            lines,
            vec![
                "exporters::otlp::headers::bad name: is not a valid header name: use letters, digits and `-`, e.g. `x-api-key`",
                "exporters::otlp::headers::grpc-timeout: `grpc-` headers are reserved by gRPC",
                "exporters::otlp::headers::x-key: the value is not a valid header value: use visible ASCII characters only",
            ]
        );
        assert!(!lines.concat().contains("s3cret"));
    }

    #[test]
    fn header_values_are_sensitive() {
        let mut h = BTreeMap::new();
        h.insert("X-Honeycomb-Team".to_owned(), Secret::new("abc"));
        let m = header_map(&h).unwrap();
        assert!(m["x-honeycomb-team"].is_sensitive());
        assert!(!format!("{m:?}").contains("abc"));
    }
}
