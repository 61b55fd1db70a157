//! The redaction rules, applied in place to traces, metrics and logs.
//!
//! Cost per attribute: one pass over the key against the blocked keys. A string value is then
//! scanned only when a cheap byte test says a rule could match (`=` for query parameters, `"`
//! and `:` for JSON fields, `eyJ` for JWTs, `bearer` / `basic` for credentials); the regexes
//! run only on those strings. User `blocked_values` run on every string: their cost is the
//! user's choice.

use std::borrow::Cow;

use authwatch_core::config::REDACTED;
use authwatch_core::otlp::collector::logs::v1::ExportLogsServiceRequest;
use authwatch_core::otlp::collector::metrics::v1::ExportMetricsServiceRequest;
use authwatch_core::otlp::collector::trace::v1::ExportTraceServiceRequest;
use authwatch_core::otlp::common::v1::any_value::Value;
use authwatch_core::otlp::common::v1::{AnyValue, KeyValue};
use authwatch_core::otlp::metrics::v1::metric::Data;
use authwatch_core::otlp::metrics::v1::Exemplar;
use regex::{Captures, Regex};

use super::{Action, Config};

/// What was redacted in one request, by rule.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Counts {
    /// Values of blocked keys.
    pub key: u64,
    /// Query parameters in URL-like strings.
    pub query: u64,
    /// `"key": "value"` fields of blocked keys inside JSON strings.
    pub json: u64,
    /// JSON Web Tokens anywhere in a string.
    pub jwt: u64,
    /// `Bearer` / `Basic` credentials in a string.
    pub credential: u64,
    /// Matches of a `blocked_values` pattern.
    pub value: u64,
}

impl Counts {
    pub(crate) fn by_rule(&self) -> [(&'static str, u64); 6] {
        [
            ("key", self.key),
            ("query", self.query),
            ("json", self.json),
            ("jwt", self.jwt),
            ("credential", self.credential),
            ("value", self.value),
        ]
    }

    pub(crate) fn total(&self) -> u64 {
        self.by_rule().iter().map(|(_, n)| n).sum()
    }
}

/// Lowercase, `-` read as `_`: `Set-Cookie` and `set_cookie` are the same key.
fn norm(b: u8) -> u8 {
    match b {
        b'-' => b'_',
        b => b.to_ascii_lowercase(),
    }
}

fn normalize(s: &str) -> Vec<u8> {
    s.trim().bytes().map(norm).collect()
}

/// The compiled rules of one processor instance.
#[derive(Debug)]
pub(crate) struct Redactor {
    action: Action,
    /// Normalized blocked keys.
    blocked_keys: Vec<Vec<u8>>,
    /// Normalized allowed keys.
    allowed_keys: Vec<Vec<u8>>,
    /// Lowercase query parameter names.
    query_params: Vec<Vec<u8>>,
    json_fields: Option<Regex>,
    jwt: Regex,
    credential: Regex,
    blocked_values: Vec<Regex>,
}

impl Redactor {
    pub(crate) fn new(config: &Config) -> Result<Self, regex::Error> {
        let blocked_keys: Vec<Vec<u8>> = config
            .blocked_keys
            .iter()
            .map(|k| normalize(k))
            .filter(|k| !k.is_empty())
            .collect();
        // `"[prefix.]key": "value"` with `-`/`_` alike, for the blocked keys.
        let json_fields = if blocked_keys.is_empty() {
            None
        } else {
            let alternatives: Vec<String> = blocked_keys
                .iter()
                .map(|k| regex::escape(&String::from_utf8_lossy(k)).replace('_', "[-_]"))
                .collect();
            Some(Regex::new(&format!(
                r#"(?i)("(?:[^"\\]*[._-])?(?:{})"\s*:\s*")((?:[^"\\]|\\.)*)""#,
                alternatives.join("|")
            ))?)
        };
        Ok(Redactor {
            action: config.action,
            blocked_keys,
            allowed_keys: config.allowed_keys.iter().map(|k| normalize(k)).collect(),
            query_params: config
                .blocked_query_params
                .iter()
                .map(|p| p.trim().to_ascii_lowercase().into_bytes())
                .filter(|p| !p.is_empty())
                .collect(),
            json_fields,
            jwt: Regex::new(r"eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*")?,
            credential: Regex::new(r"(?i)\b(bearer|basic)(\s+)([A-Za-z0-9._~+/=-]{8,})")?,
            blocked_values: config
                .blocked_values
                .iter()
                .map(|v| v.regex.clone())
                .collect(),
        })
    }

    /// What a secret becomes: `[REDACTED]`, or `sha256:` and the first 16 hex digits of its
    /// SHA-256 with `action: hash`.
    fn replacement(&self, secret: &[u8]) -> String {
        match self.action {
            Action::Mask => REDACTED.to_owned(),
            Action::Hash => {
                let d = ring::digest::digest(&ring::digest::SHA256, secret);
                let mut out = String::with_capacity(23);
                out.push_str("sha256:");
                for b in &d.as_ref()[..8] {
                    out.push_str(&format!("{b:02x}"));
                }
                out
            }
        }
    }

    fn key_is_allowed(&self, key: &str) -> bool {
        let k = key.as_bytes();
        self.allowed_keys
            .iter()
            .any(|a| a.len() == k.len() && a.iter().zip(k).all(|(a, b)| *a == norm(*b)))
    }

    /// Whether `key` is a blocked key, or ends with one after a `.`, `_` or `-`
    /// (`http.request.header.authorization`, `db.password`, `x-api-key`).
    pub(crate) fn key_is_blocked(&self, key: &str) -> bool {
        let k = key.as_bytes();
        self.blocked_keys.iter().any(|b| {
            if b.len() > k.len() {
                return false;
            }
            let start = k.len() - b.len();
            let tail_matches = k[start..].iter().zip(b).all(|(x, y)| norm(*x) == *y);
            tail_matches && (start == 0 || matches!(k[start - 1], b'.' | b'_' | b'-'))
        })
    }

    // === traversal ===

    pub(crate) fn traces(&self, req: &mut ExportTraceServiceRequest, c: &mut Counts) {
        for rs in &mut req.resource_spans {
            if let Some(r) = &mut rs.resource {
                self.attributes(&mut r.attributes, c);
            }
            for ss in &mut rs.scope_spans {
                if let Some(s) = &mut ss.scope {
                    self.attributes(&mut s.attributes, c);
                }
                for span in &mut ss.spans {
                    self.string(&mut span.name, c);
                    self.attributes(&mut span.attributes, c);
                    for e in &mut span.events {
                        self.string(&mut e.name, c);
                        self.attributes(&mut e.attributes, c);
                    }
                    for l in &mut span.links {
                        self.attributes(&mut l.attributes, c);
                    }
                    if let Some(st) = &mut span.status {
                        self.string(&mut st.message, c);
                    }
                }
            }
        }
    }

    pub(crate) fn logs(&self, req: &mut ExportLogsServiceRequest, c: &mut Counts) {
        for rl in &mut req.resource_logs {
            if let Some(r) = &mut rl.resource {
                self.attributes(&mut r.attributes, c);
            }
            for sl in &mut rl.scope_logs {
                if let Some(s) = &mut sl.scope {
                    self.attributes(&mut s.attributes, c);
                }
                for rec in &mut sl.log_records {
                    if let Some(body) = &mut rec.body {
                        self.value(body, c);
                    }
                    self.attributes(&mut rec.attributes, c);
                }
            }
        }
    }

    pub(crate) fn metrics(&self, req: &mut ExportMetricsServiceRequest, c: &mut Counts) {
        for rm in &mut req.resource_metrics {
            if let Some(r) = &mut rm.resource {
                self.attributes(&mut r.attributes, c);
            }
            for sm in &mut rm.scope_metrics {
                if let Some(s) = &mut sm.scope {
                    self.attributes(&mut s.attributes, c);
                }
                for m in &mut sm.metrics {
                    self.attributes(&mut m.metadata, c);
                    match &mut m.data {
                        Some(Data::Gauge(g)) => {
                            for p in &mut g.data_points {
                                self.attributes(&mut p.attributes, c);
                                self.exemplars(&mut p.exemplars, c);
                            }
                        }
                        Some(Data::Sum(s)) => {
                            for p in &mut s.data_points {
                                self.attributes(&mut p.attributes, c);
                                self.exemplars(&mut p.exemplars, c);
                            }
                        }
                        Some(Data::Histogram(h)) => {
                            for p in &mut h.data_points {
                                self.attributes(&mut p.attributes, c);
                                self.exemplars(&mut p.exemplars, c);
                            }
                        }
                        Some(Data::ExponentialHistogram(h)) => {
                            for p in &mut h.data_points {
                                self.attributes(&mut p.attributes, c);
                                self.exemplars(&mut p.exemplars, c);
                            }
                        }
                        Some(Data::Summary(s)) => {
                            for p in &mut s.data_points {
                                self.attributes(&mut p.attributes, c);
                            }
                        }
                        None => {}
                    }
                }
            }
        }
    }

    fn exemplars(&self, exemplars: &mut [Exemplar], c: &mut Counts) {
        for e in exemplars {
            self.attributes(&mut e.filtered_attributes, c);
        }
    }

    pub(crate) fn attributes(&self, attrs: &mut [KeyValue], c: &mut Counts) {
        for kv in attrs {
            if self.key_is_allowed(&kv.key) {
                continue;
            }
            let Some(v) = &mut kv.value else { continue };
            if self.key_is_blocked(&kv.key) {
                if let Some(new) = self.blocked_value(v) {
                    v.value = Some(Value::StringValue(new));
                    c.key += 1;
                }
                continue;
            }
            self.value(v, c);
        }
    }

    /// The replacement of a blocked key's value; `None` when there is nothing to hide (empty,
    /// or already redacted).
    fn blocked_value(&self, v: &AnyValue) -> Option<String> {
        let secret: Cow<'_, [u8]> = match &v.value {
            None => return None,
            Some(Value::StringValue(s)) if s.is_empty() || s == REDACTED => return None,
            Some(Value::StringValue(s)) => Cow::Borrowed(s.as_bytes()),
            Some(Value::BytesValue(b)) => Cow::Borrowed(b.as_slice()),
            Some(Value::BoolValue(_)) => return None,
            Some(other) => Cow::Owned(format!("{other:?}").into_bytes()),
        };
        Some(self.replacement(&secret))
    }

    fn value(&self, v: &mut AnyValue, c: &mut Counts) {
        match &mut v.value {
            Some(Value::StringValue(s)) => self.string(s, c),
            Some(Value::ArrayValue(a)) => {
                for x in &mut a.values {
                    self.value(x, c);
                }
            }
            Some(Value::KvlistValue(l)) => self.attributes(&mut l.values, c),
            _ => {}
        }
    }

    fn string(&self, s: &mut String, c: &mut Counts) {
        if let Some(new) = self.text(s, c) {
            *s = new;
        }
    }

    /// Redacts the secrets inside free text; `None` when nothing changed.
    pub(crate) fn text(&self, s: &str, c: &mut Counts) -> Option<String> {
        let bytes = s.as_bytes();
        let mut out: Cow<'_, str> = Cow::Borrowed(s);
        if bytes.contains(&b'=') && !self.query_params.is_empty() {
            if let Some(n) = self.query(&out, c) {
                out = Cow::Owned(n);
            }
        }
        if let Some(re) = &self.json_fields {
            if bytes.contains(&b'"') && bytes.contains(&b':') {
                let mut n = 0;
                let r = re.replace_all(&out, |cap: &Captures<'_>| {
                    let secret = &cap[2];
                    if secret.is_empty() || secret == REDACTED {
                        return cap[0].to_owned();
                    }
                    n += 1;
                    format!("{}{}\"", &cap[1], self.replacement(secret.as_bytes()))
                });
                if n > 0 {
                    c.json += n;
                    out = Cow::Owned(r.into_owned());
                }
            }
        }
        if contains(out.as_bytes(), b"eyJ") {
            let mut n = 0;
            let r = self.jwt.replace_all(&out, |cap: &Captures<'_>| {
                n += 1;
                self.replacement(cap[0].as_bytes())
            });
            if n > 0 {
                c.jwt += n;
                out = Cow::Owned(r.into_owned());
            }
        }
        if contains_ci(out.as_bytes(), b"bearer") || contains_ci(out.as_bytes(), b"basic") {
            let mut n = 0;
            let r = self.credential.replace_all(&out, |cap: &Captures<'_>| {
                let secret = &cap[3];
                if !looks_like_credential(secret) {
                    return cap[0].to_owned();
                }
                n += 1;
                format!(
                    "{}{}{}",
                    &cap[1],
                    &cap[2],
                    self.replacement(secret.as_bytes())
                )
            });
            if n > 0 {
                c.credential += n;
                out = Cow::Owned(r.into_owned());
            }
        }
        for re in &self.blocked_values {
            let mut n = 0;
            let r = re.replace_all(&out, |cap: &Captures<'_>| {
                n += 1;
                self.replacement(cap[0].as_bytes())
            });
            if n > 0 {
                c.value += n;
                out = Cow::Owned(r.into_owned());
            }
        }
        match out {
            Cow::Borrowed(_) => None,
            Cow::Owned(s) => Some(s),
        }
    }

    /// `name=value` of a blocked parameter, at the start of the text or after `?`, `&`, `#` or
    /// `;` (a URL, a bare query string, a fragment, a form body); the value runs to the next
    /// `&`, `#`, whitespace or quote.
    fn query(&self, s: &str, c: &mut Counts) -> Option<String> {
        let b = s.as_bytes();
        let mut out = String::new();
        let mut copied = 0;
        let mut i = 0;
        while i < b.len() {
            let at_boundary = i == 0 || matches!(b[i - 1], b'?' | b'&' | b'#' | b';');
            if at_boundary {
                if let Some(name_len) = self.query_param_at(&b[i..]) {
                    let start = i + name_len + 1;
                    let end = b[start..]
                        .iter()
                        .position(|x| {
                            matches!(x, b'&' | b'#' | b'"' | b'\'' | b'<' | b'>')
                                || x.is_ascii_whitespace()
                        })
                        .map_or(b.len(), |p| start + p);
                    let secret = &s[start..end];
                    if !secret.is_empty() && secret != REDACTED {
                        out.push_str(&s[copied..start]);
                        out.push_str(&self.replacement(secret.as_bytes()));
                        copied = end;
                        c.query += 1;
                    }
                    i = end.max(i + 1);
                    continue;
                }
            }
            i += 1;
        }
        if copied == 0 {
            return None;
        }
        out.push_str(&s[copied..]);
        Some(out)
    }

    /// The length of the blocked parameter name at the start of `b`, if `b` is `name=...`.
    fn query_param_at(&self, b: &[u8]) -> Option<usize> {
        self.query_params
            .iter()
            .find(|p| {
                b.len() > p.len() && b[p.len()] == b'=' && b[..p.len()].eq_ignore_ascii_case(p)
            })
            .map(|p| p.len())
    }
}

/// A `Bearer`/`Basic` argument that is a credential, not a word: it has a digit, a symbol, or a
/// capital letter past its first character. "Basic Authentication failed" is left alone.
fn looks_like_credential(s: &str) -> bool {
    s.bytes().enumerate().any(|(i, b)| {
        b.is_ascii_digit()
            || matches!(b, b'.' | b'_' | b'~' | b'+' | b'/' | b'=' | b'-')
            || (i > 0 && b.is_ascii_uppercase())
    })
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

fn contains_ci(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle))
}
