//! CORS for OTLP/HTTP, so that browser apps instrumented with the OpenTelemetry JavaScript SDK
//! can export straight to the receiver. Shaped like the Collector's `confighttp` `cors` block
//! (which wraps its handler in `rs/cors` with `AllowCredentials: true`):
//!
//! - a preflight (`OPTIONS` with `Access-Control-Request-Method`) on any path is answered here,
//!   before authentication (browsers never send credentials on a preflight): `204` with the
//!   `Access-Control-Allow-*` headers when the origin, the method (`POST`) and every requested
//!   header are allowed, `403` without them otherwise (the Collector answers `204` without them;
//!   either way the browser blocks the request, the `403` only makes the refusal visible);
//! - every other response (errors included) to a request whose `Origin` is allowed carries
//!   `Access-Control-Allow-Origin: <origin>` and `Access-Control-Allow-Credentials: true`;
//!   a request from another origin is served as if it had no `Origin` (no CORS headers, so the
//!   browser hides the response), as the Collector does;
//! - `Vary: Origin` on every response, so that caches keep the answers apart.

use axum::body::Body;
use axum::response::Response;
use http::header::{
    ACCESS_CONTROL_ALLOW_CREDENTIALS, ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS,
    ACCESS_CONTROL_ALLOW_ORIGIN, ACCESS_CONTROL_EXPOSE_HEADERS, ACCESS_CONTROL_MAX_AGE,
    ACCESS_CONTROL_REQUEST_HEADERS, ACCESS_CONTROL_REQUEST_METHOD, CONTENT_TYPE, ORIGIN, VARY,
};
use http::{HeaderMap, HeaderValue, Method, StatusCode};

use super::CorsConfig;

/// Request headers a browser may always send: the CORS-safelisted ones, `Content-Type` with any
/// value (OTLP sends `application/json` or `application/x-protobuf`), and `X-Requested-With`,
/// as `rs/cors` allows by default.
const ALWAYS_ALLOWED_HEADERS: &[&str] = &[
    "accept",
    "accept-language",
    "content-language",
    "content-type",
    "x-requested-with",
    "origin",
];

/// Why a preflight is refused (the `403` body says it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
enum PreflightRefused {
    #[error("no `Origin` header")]
    NoOrigin,
    #[error("the `Origin` header is not ASCII")]
    OriginNotAscii,
    #[error("origin `{0}` is not in `cors.allowed_origins`")]
    Origin(String),
    #[error("method `{0}` is not allowed: OTLP/HTTP takes POST")]
    Method(String),
    #[error("header `{0}` is not in `cors.allowed_headers`")]
    Header(String),
}

/// The CORS policy of one OTLP/HTTP endpoint.
#[derive(Debug, Clone)]
pub(crate) struct Cors {
    /// Lowercased origin patterns; `*` matches any run of characters.
    origins: Vec<String>,
    /// Lowercased extra request headers; `*` allows any.
    headers: Vec<String>,
    any_header: bool,
    max_age: Option<HeaderValue>,
    expose: Option<HeaderValue>,
}

impl Cors {
    /// The policy, or `None` when CORS is off (no `allowed_origins`).
    pub(crate) fn new(config: &CorsConfig) -> Option<Cors> {
        if config.allowed_origins.is_empty() {
            return None;
        }
        let lower = |v: &[String]| -> Vec<String> {
            v.iter()
                .map(|s| s.trim().to_ascii_lowercase())
                .filter(|s| !s.is_empty())
                .collect()
        };
        let headers = lower(&config.allowed_headers);
        let expose = (!config.exposed_headers.is_empty())
            .then(|| HeaderValue::from_str(&config.exposed_headers.join(", ")).ok())
            .flatten();
        Some(Cors {
            origins: lower(&config.allowed_origins),
            any_header: headers.iter().any(|h| h == "*"),
            headers,
            max_age: (config.max_age > 0).then(|| HeaderValue::from(config.max_age)),
            expose,
        })
    }

    /// Whether `origin` (as sent by the browser) is allowed.
    pub(crate) fn allows_origin(&self, origin: &str) -> bool {
        let origin = origin.trim().to_ascii_lowercase();
        self.origins.iter().any(|p| glob_match(p, &origin))
    }

    fn allows_header(&self, name: &str) -> bool {
        self.any_header
            || ALWAYS_ALLOWED_HEADERS.contains(&name)
            || self.headers.iter().any(|h| h == name)
    }

    /// Whether the request is a CORS preflight (which this module answers).
    pub(crate) fn is_preflight(method: &Method, headers: &HeaderMap) -> bool {
        method == Method::OPTIONS && headers.contains_key(ACCESS_CONTROL_REQUEST_METHOD)
    }

    /// The answer to a preflight: `204` with the allow headers, or `403` without them.
    pub(crate) fn preflight(&self, headers: &HeaderMap) -> Response {
        match self.check_preflight(headers) {
            Ok(origin) => {
                let mut response = Response::new(Body::empty());
                *response.status_mut() = StatusCode::NO_CONTENT;
                let h = response.headers_mut();
                vary(h, true);
                h.insert(ACCESS_CONTROL_ALLOW_ORIGIN, origin);
                h.insert(
                    ACCESS_CONTROL_ALLOW_CREDENTIALS,
                    HeaderValue::from_static("true"),
                );
                h.insert(
                    ACCESS_CONTROL_ALLOW_METHODS,
                    HeaderValue::from_static("POST"),
                );
                if let Some(requested) = headers.get(ACCESS_CONTROL_REQUEST_HEADERS) {
                    if !requested.as_bytes().iter().all(u8::is_ascii_whitespace) {
                        h.insert(ACCESS_CONTROL_ALLOW_HEADERS, requested.clone());
                    }
                }
                if let Some(age) = &self.max_age {
                    h.insert(ACCESS_CONTROL_MAX_AGE, age.clone());
                }
                response
            }
            Err(why) => {
                tracing::debug!(reason = %why, "Refused a CORS preflight request.");
                let mut response = Response::new(Body::from(format!(
                    "403 forbidden: CORS preflight refused: {why}\n"
                )));
                *response.status_mut() = StatusCode::FORBIDDEN;
                let h = response.headers_mut();
                vary(h, true);
                h.insert(
                    CONTENT_TYPE,
                    HeaderValue::from_static("text/plain; charset=utf-8"),
                );
                response
            }
        }
    }

    /// The allowed origin's header value, or why the preflight is refused.
    fn check_preflight(&self, headers: &HeaderMap) -> Result<HeaderValue, PreflightRefused> {
        let origin = headers.get(ORIGIN).ok_or(PreflightRefused::NoOrigin)?;
        let text = origin
            .to_str()
            .map_err(|_| PreflightRefused::OriginNotAscii)?;
        if !self.allows_origin(text) {
            return Err(PreflightRefused::Origin(text.to_owned()));
        }
        let method = headers
            .get(ACCESS_CONTROL_REQUEST_METHOD)
            .and_then(|m| m.to_str().ok())
            .unwrap_or_default()
            .trim();
        if method != "POST" {
            return Err(PreflightRefused::Method(method.to_owned()));
        }
        if let Some(requested) = headers.get(ACCESS_CONTROL_REQUEST_HEADERS) {
            let requested = String::from_utf8_lossy(requested.as_bytes()).to_ascii_lowercase();
            for name in requested
                .split(',')
                .map(str::trim)
                .filter(|n| !n.is_empty())
            {
                if !self.allows_header(name) {
                    return Err(PreflightRefused::Header(name.to_owned()));
                }
            }
        }
        Ok(origin.clone())
    }

    /// Adds the CORS headers to the response of a (non-preflight) request from `origin`.
    pub(crate) fn decorate(&self, origin: Option<&HeaderValue>, response: &mut Response) {
        let h = response.headers_mut();
        vary(h, false);
        let Some(origin) = origin else {
            return;
        };
        if !origin.to_str().is_ok_and(|o| self.allows_origin(o)) {
            return;
        }
        h.insert(ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
        h.insert(
            ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static("true"),
        );
        if let Some(expose) = &self.expose {
            h.insert(ACCESS_CONTROL_EXPOSE_HEADERS, expose.clone());
        }
    }
}

fn vary(h: &mut HeaderMap, preflight: bool) {
    h.append(VARY, HeaderValue::from_static("Origin"));
    if preflight {
        h.append(
            VARY,
            HeaderValue::from_static(
                "Access-Control-Request-Method, Access-Control-Request-Headers",
            ),
        );
    }
}

/// Case-sensitive glob with `*` (any run of characters); callers lowercase both sides.
pub(crate) fn glob_match(pattern: &str, text: &str) -> bool {
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    let (mut pi, mut ti) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while ti < t.len() {
        if pi < p.len() && p[pi] != b'*' && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == b'*' {
            star = Some(pi);
            pi += 1;
            mark = ti;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == b'*' {
        pi += 1;
    }
    pi == p.len()
}

/// Why an `allowed_origins` entry is refused at `validate`, if it is.
pub(crate) fn origin_problem(origin: &str) -> Option<String> {
    let o = origin.trim();
    if o == "*" {
        return Some(
            "a plain `*` is not allowed: responses carry `Access-Control-Allow-Credentials: true`, \
             so every origin would be trusted with credentials; list the origins, wildcards \
             allowed, e.g. `https://*.example.com`"
                .to_owned(),
        );
    }
    if o == "null" {
        return None;
    }
    let Some((scheme, rest)) = o.split_once("://") else {
        return Some(format!(
            "origin `{o}` needs a scheme; write it like `https://app.example.com`"
        ));
    };
    if scheme.is_empty() || rest.is_empty() {
        return Some(format!(
            "origin `{o}` needs a scheme and a host; write it like `https://app.example.com`"
        ));
    }
    if rest.contains('/') || rest.contains('?') || rest.contains('#') {
        return Some(format!(
            "origin `{o}` must not have a path; an origin is `scheme://host[:port]`, e.g. `https://app.example.com`"
        ));
    }
    None
}
