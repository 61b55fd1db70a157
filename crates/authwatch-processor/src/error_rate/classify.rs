//! Per-span work: read the attributes that matter by reference, match a dependency, classify the
//! outcome and template the endpoint. Nothing here allocates except the caller's scratch buffer.

use authwatch_core::otlp::common::v1::{any_value, AnyValue};
use authwatch_core::otlp::trace::v1::{span, status, Span};
use authwatch_core::semconv;
use serde::{Deserialize, Serialize};

use super::dedupe::SpanIds;
use super::Dependency;
pub use authwatch_core::semconv::{ErrorClass, Source};

/// `synthetic.check`: set by the `synthetic` receiver on its spans (probe runs).
pub const SYNTHETIC_CHECK: &str = semconv::SYNTHETIC_CHECK;
/// `synthetic.outcome`: the probe run's outcome (`timeout`, `connect`, ...).
pub const SYNTHETIC_OUTCOME: &str = semconv::SYNTHETIC_OUTCOME;

/// The attributes of one span that matter, borrowed.
#[derive(Debug, Default, PartialEq)]
pub struct SpanView<'a> {
    pub server_address: Option<&'a str>,
    pub url_full: Option<&'a str>,
    pub url_template: Option<&'a str>,
    pub url_path: Option<&'a str>,
    pub peer_service: Option<&'a str>,
    pub rpc_service: Option<&'a str>,
    pub rpc_method: Option<&'a str>,
    pub status_code: Option<i64>,
    pub grpc_status: Option<i64>,
    pub error_type: Option<&'a str>,
    pub oauth_error: Option<&'a str>,
    pub exception_type: Option<&'a str>,
    pub synthetic_check: Option<&'a str>,
    pub synthetic_outcome: Option<&'a str>,
    /// `synthetic.degraded`: the probe run was slower than its check's bound.
    pub synthetic_degraded: bool,
    pub status_error: bool,
}

impl<'a> SpanView<'a> {
    pub fn of(span: &'a Span) -> Self {
        let mut v = SpanView {
            status_error: span
                .status
                .as_ref()
                .is_some_and(|s| s.code == status::StatusCode::Error as i32),
            ..Default::default()
        };
        for kv in &span.attributes {
            v.attribute(kv.key.as_bytes(), Scalar::of(&kv.value));
        }
        if v.wants_events() {
            for ev in &span.events {
                for kv in &ev.attributes {
                    v.event_attribute(kv.key.as_bytes(), Scalar::of(&kv.value));
                }
            }
        }
        v
    }

    /// Takes one span attribute; a later one with the same key wins. Keys are compared as
    /// bytes, so encoded spans need no UTF-8 check of keys the connector does not read.
    pub fn attribute(&mut self, key: &[u8], val: Scalar<'a>) {
        let is = |k: &str| key == k.as_bytes();
        if is(semconv::SERVER_ADDRESS) {
            self.server_address = val.str();
        } else if is(semconv::URL_FULL) {
            self.url_full = val.str();
        } else if is(semconv::URL_TEMPLATE) {
            self.url_template = val.str();
        } else if is("url.path") {
            self.url_path = val.str();
        } else if is(semconv::PEER_SERVICE) {
            self.peer_service = val.str();
        } else if is(semconv::RPC_SERVICE) {
            self.rpc_service = val.str();
        } else if is("rpc.method") {
            self.rpc_method = val.str();
        } else if is(semconv::HTTP_RESPONSE_STATUS_CODE) || is("http.status_code") {
            self.status_code = val.int();
        } else if is("rpc.grpc.status_code") {
            self.grpc_status = val.int();
        } else if is(semconv::ERROR_TYPE) {
            self.error_type = val.str();
        } else if is(semconv::OAUTH_ERROR) || is("auth0.error") {
            self.oauth_error = val.str();
        } else if is(semconv::EXCEPTION_TYPE) {
            self.exception_type = val.str();
        } else if is(SYNTHETIC_CHECK) {
            self.synthetic_check = val.str();
        } else if is(SYNTHETIC_OUTCOME) {
            self.synthetic_outcome = val.str();
        } else if is(semconv::SYNTHETIC_DEGRADED) {
            self.synthetic_degraded = matches!(val, Scalar::Bool(true));
        }
    }

    /// Whether span events could still add something: exceptions and OAuth errors recorded
    /// as span events (`exception` event convention).
    pub fn wants_events(&self) -> bool {
        self.exception_type.is_none() || self.oauth_error.is_none()
    }

    /// Takes one span event attribute; the first one with a value wins.
    pub fn event_attribute(&mut self, key: &[u8], val: Scalar<'a>) {
        let is = |k: &str| key == k.as_bytes();
        if is(semconv::EXCEPTION_TYPE) {
            if self.exception_type.is_none() {
                self.exception_type = val.str();
            }
        } else if (is(semconv::OAUTH_ERROR) || is("auth0.error")) && self.oauth_error.is_none() {
            self.oauth_error = val.str();
        }
    }

    pub fn source(&self) -> Source {
        if self.synthetic_check.is_some() {
            Source::Probe
        } else {
            Source::Traffic
        }
    }

    /// The host: `server.address`, else the host of `url.full`.
    pub fn host(&self) -> Option<&'a str> {
        self.server_address
            .or_else(|| self.url_full.and_then(|u| split_url(u).0))
    }

    /// The error key of the group fingerprint: OAuth error code, else exception type, else
    /// `error.type`, else the status code class.
    pub fn error_key(&self) -> Option<&'a str> {
        self.oauth_error
            .or(self.exception_type)
            .or(self.error_type)
    }
}

/// An attribute value as the connector reads it, by reference, from a decoded or an encoded span.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Scalar<'a> {
    /// A string's bytes: read as UTF-8 only when the connector keeps it.
    Str(&'a [u8]),
    Int(i64),
    Double(f64),
    Bool(bool),
    /// Absent, or a type the connector does not read (bytes, array, map).
    Other,
}

impl<'a> Scalar<'a> {
    pub fn of(v: &'a Option<AnyValue>) -> Self {
        match v.as_ref().and_then(|v| v.value.as_ref()) {
            Some(any_value::Value::StringValue(s)) => Scalar::Str(s.as_bytes()),
            Some(any_value::Value::IntValue(i)) => Scalar::Int(*i),
            Some(any_value::Value::DoubleValue(d)) => Scalar::Double(*d),
            Some(any_value::Value::BoolValue(b)) => Scalar::Bool(*b),
            _ => Scalar::Other,
        }
    }

    pub fn str(self) -> Option<&'a str> {
        match self {
            Scalar::Str(s) => std::str::from_utf8(s).ok(),
            _ => None,
        }
    }

    /// An integer, or a string of digits as some SDKs send, or a whole double.
    pub fn int(self) -> Option<i64> {
        match self {
            Scalar::Int(i) => Some(i),
            Scalar::Str(s) => std::str::from_utf8(s).ok()?.parse().ok(),
            Scalar::Double(d) if d.fract() == 0.0 => Some(d as i64),
            _ => None,
        }
    }
}

/// What the connector reads of a span besides its attributes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SpanFacts {
    /// `SpanKind` as its number.
    pub kind: i32,
    /// No parent span id.
    pub root: bool,
    /// End minus start, in seconds (0 when the end is before the start).
    pub seconds: f64,
    /// `trace_id` and `span_id`, to skip a span counted before.
    pub ids: SpanIds,
}

impl SpanFacts {
    pub fn of(span: &Span) -> Self {
        SpanFacts::new(
            span.kind,
            span.parent_span_id.is_empty(),
            span.start_time_unix_nano,
            span.end_time_unix_nano,
        )
        .with_ids(SpanIds::of(&span.trace_id, &span.span_id))
    }

    pub fn with_ids(self, ids: SpanIds) -> Self {
        SpanFacts { ids, ..self }
    }

    pub fn new(kind: i32, root: bool, start_unix_nano: u64, end_unix_nano: u64) -> Self {
        SpanFacts {
            kind,
            root,
            seconds: end_unix_nano.saturating_sub(start_unix_nano) as f64 / 1e9,
            ids: SpanIds::default(),
        }
    }
}

/// Whether the span is one the connector looks at: a probe's root span, or a span of a configured
/// kind that is not part of a probe.
pub fn is_candidate(facts: &SpanFacts, view: &SpanView<'_>, kinds: &[SpanKindName]) -> bool {
    if view.synthetic_check.is_some() {
        return facts.root;
    }
    kinds.iter().any(|k| k.code() == facts.kind)
}

/// Span kinds as written in the config.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SpanKindName {
    Client,
    Internal,
    Producer,
    Server,
    Consumer,
    Unspecified,
}

impl SpanKindName {
    pub fn code(self) -> i32 {
        (match self {
            SpanKindName::Client => span::SpanKind::Client,
            SpanKindName::Internal => span::SpanKind::Internal,
            SpanKindName::Producer => span::SpanKind::Producer,
            SpanKindName::Server => span::SpanKind::Server,
            SpanKindName::Consumer => span::SpanKind::Consumer,
            SpanKindName::Unspecified => span::SpanKind::Unspecified,
        }) as i32
    }
}

/// Classifies a matched call. `auth_rejected` lists the OAuth error codes that mean "the user
/// was refused" rather than "the call failed".
pub fn classify(v: &SpanView<'_>, auth_rejected: &[String]) -> ErrorClass {
    if let Some(code) = v.status_code {
        return match code {
            400..=499 => {
                if v.oauth_error
                    .is_some_and(|e| auth_rejected.iter().any(|a| a == e))
                {
                    ErrorClass::AuthRejected
                } else if code == 429 {
                    ErrorClass::RateLimited
                } else if code == 408 {
                    ErrorClass::Timeout
                } else {
                    ErrorClass::ClientError
                }
            }
            500..=599 => ErrorClass::ServerError,
            100..=399 if !v.status_error => ErrorClass::Ok,
            // A response we could not interpret, or an error after the headers (body read).
            _ => {
                if is_timeout(v) {
                    ErrorClass::Timeout
                } else if (100..=399).contains(&code) {
                    ErrorClass::Network
                } else {
                    ErrorClass::ServerError
                }
            }
        };
    }
    if let Some(g) = v.grpc_status {
        return match g {
            0 => ErrorClass::Ok,
            4 => ErrorClass::Timeout,
            8 => ErrorClass::RateLimited,
            2 | 13 | 14 | 15 => ErrorClass::ServerError,
            7 | 16 => {
                if v.oauth_error
                    .is_some_and(|e| auth_rejected.iter().any(|a| a == e))
                {
                    ErrorClass::AuthRejected
                } else {
                    ErrorClass::ClientError
                }
            }
            1 => ErrorClass::Ok, // CANCELLED by the caller is not an error.
            _ => ErrorClass::ClientError,
        };
    }
    if v.error_type.is_none() && !v.status_error && !outcome_failed(v) {
        return ErrorClass::Ok;
    }
    if is_timeout(v) {
        ErrorClass::Timeout
    } else {
        ErrorClass::Network
    }
}

fn outcome_failed(v: &SpanView<'_>) -> bool {
    v.synthetic_outcome.is_some_and(|o| o != "success")
}

fn is_timeout(v: &SpanView<'_>) -> bool {
    let t = |s: &str| {
        contains_ignore_case(s, "timeout")
            || contains_ignore_case(s, "timedout")
            || contains_ignore_case(s, "deadline")
    };
    v.error_type.is_some_and(t)
        || v.exception_type.is_some_and(t)
        || v.synthetic_outcome == Some("timeout")
}

fn contains_ignore_case(hay: &str, needle: &str) -> bool {
    hay.as_bytes()
        .windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle.as_bytes()))
}

/// `(host, path)` of an absolute URL, by reference; the path without query or fragment.
pub fn split_url(url: &str) -> (Option<&str>, &str) {
    // Byte searches throughout: `str::find` with a string needle sets up a two-way searcher per
    // call, and `split` with a char set walks char by char. Every position found is an ASCII
    // byte, so every slice below is on a char boundary.
    let b = url.as_bytes();
    let scheme_end = memchr::memchr_iter(b':', b).find(|&i| b[i + 1..].starts_with(b"//"));
    let rest = match scheme_end {
        Some(i) => &url[i + 3..],
        None => return (None, strip_query(url)),
    };
    let (authority, path) = match memchr::memchr(b'/', rest.as_bytes()) {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (strip_query(rest), "/"),
    };
    let host = match memchr::memrchr(b'@', authority.as_bytes()) {
        Some(i) => &authority[i + 1..],
        None => authority,
    };
    let host = if host.starts_with('[') {
        let bracketed = match memchr::memchr(b']', host.as_bytes()) {
            Some(i) => &host[..i],
            None => host,
        };
        bracketed.trim_start_matches('[')
    } else {
        match memchr::memchr(b':', host.as_bytes()) {
            Some(i) => &host[..i],
            None => host,
        }
    };
    (Some(host).filter(|h| !h.is_empty()), strip_query(path))
}

/// The path without its query (`?`) and fragment (`#`).
fn strip_query(p: &str) -> &str {
    match memchr::memchr2(b'?', b'#', p.as_bytes()) {
        Some(i) => &p[..i],
        None => p,
    }
}

/// Case-insensitive glob with `*` (any run of characters, dots included).
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    // `*.auth0.com`, the usual form: a suffix test, no backtracking.
    if let Some(suffix) = p.strip_prefix(b"*") {
        if !suffix.contains(&b'*') {
            return t.len() >= suffix.len() && t[t.len() - suffix.len()..].eq_ignore_ascii_case(suffix);
        }
    }
    let (mut pi, mut ti) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while ti < t.len() {
        if pi < p.len() && p[pi] != b'*' && p[pi].eq_ignore_ascii_case(&t[ti]) {
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

impl Dependency {
    /// Whether the call goes to this dependency.
    pub fn matches(&self, v: &SpanView<'_>) -> bool {
        if let Some(host) = v.host() {
            if self.server_address.iter().any(|g| glob_match(g, host)) {
                return true;
            }
        }
        if let Some(url) = v.url_full {
            if self.url_prefix.iter().any(|p| url.starts_with(p.as_str())) {
                return true;
            }
        }
        if !self.url_path.is_empty() {
            let path = v.url_path.or_else(|| v.url_full.map(|u| split_url(u).1));
            if let Some(path) = path.map(strip_query) {
                if self.url_path.iter().any(|g| glob_match(g, path)) {
                    return true;
                }
            }
        }
        if let Some(p) = v.peer_service {
            if self.peer_service.iter().any(|x| x == p) {
                return true;
            }
        }
        if let Some(r) = v.rpc_service {
            if self.rpc_service.iter().any(|x| x == r) {
                return true;
            }
        }
        false
    }
}

/// Most path segments kept in a template; the rest become `{...}`.
const MAX_SEGMENTS: usize = 8;

/// Writes the endpoint template of the call into `out` (cleared first): `url.template` as is,
/// else the path of `url.path` / `url.full` with ids replaced by `{id}`, else the RPC method.
pub fn endpoint_template(v: &SpanView<'_>, out: &mut String) {
    out.clear();
    if let Some(t) = v.url_template {
        out.push_str(t);
        return;
    }
    let path = v
        .url_path
        .map(strip_query)
        .or_else(|| v.url_full.map(|u| split_url(u).1));
    match path {
        Some(p) => template_path(p, out),
        None => match (v.rpc_service, v.rpc_method) {
            (Some(s), Some(m)) => {
                out.push_str(s);
                out.push('/');
                out.push_str(m);
            }
            (None, Some(m)) => out.push_str(m),
            _ => out.push_str("{unknown}"),
        },
    }
}

fn template_path(path: &str, out: &mut String) {
    let (mut n, mut start) = (0, 0);
    let ends = memchr::memchr_iter(b'/', path.as_bytes()).chain(std::iter::once(path.len()));
    for end in ends {
        // `/` is ASCII: both ends are char boundaries.
        let seg = &path[start..end];
        start = end + 1;
        if seg.is_empty() {
            continue;
        }
        out.push('/');
        n += 1;
        if n > MAX_SEGMENTS {
            out.push_str("{...}");
            return;
        }
        if is_id(seg) {
            out.push_str("{id}");
        } else {
            out.push_str(seg);
        }
    }
    if out.is_empty() {
        out.push('/');
    }
}

/// Numbers, UUIDs, long hex strings, Auth0 user ids (`auth0|abc`, `google-oauth2%7C123`) and
/// long tokens mixing letters and digits. One pass over the segment's bytes.
pub fn is_id(seg: &str) -> bool {
    let b = seg.as_bytes();
    let (mut digits, mut hex) = (0usize, 0usize);
    // Every byte so far a hex digit or `-`; every byte so far alphanumeric or one of `-_.`.
    let (mut hexish, mut tokenish) = (true, true);
    for (i, &c) in b.iter().enumerate() {
        match c {
            b'0'..=b'9' => {
                digits += 1;
                hex += 1;
            }
            b'a'..=b'f' | b'A'..=b'F' => hex += 1,
            b'-' => {}
            b'g'..=b'z' | b'G'..=b'Z' | b'_' | b'.' => hexish = false,
            b'|' => return true,
            b'%' if matches!(b.get(i + 1..i + 3), Some(b"7C" | b"7c")) => return true,
            _ => {
                hexish = false;
                tokenish = false;
            }
        }
    }
    if digits == b.len() {
        return true; // Numbers (and the empty segment, which paths never pass).
    }
    if hexish && hex >= 16 {
        return true; // UUIDs, object ids, hashes.
    }
    b.len() >= 16 && digits >= 2 && tokenish
}
