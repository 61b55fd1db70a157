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

/// Two normalized bytes as an index into the endings bitmap.
fn ending(a: u8, b: u8) -> usize {
    (usize::from(a) << 8) | usize::from(b)
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
    /// The normalized last two bytes of every blocked key, as a bitmap: most keys end
    /// otherwise and are cleared with one lookup. `None` when a blocked key is one byte long.
    blocked_endings: Option<Box<[u64; 1024]>>,
    /// Normalized allowed keys.
    allowed_keys: Vec<Vec<u8>>,
    /// Lowercase query parameter names.
    query_params: Vec<Vec<u8>>,
    json_fields: Option<Regex>,
    jwt: Regex,
    /// `eyJ`, the start of every JWT, searched before the regex runs.
    jwt_start: memchr::memmem::Finder<'static>,
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
        let blocked_endings = if blocked_keys.iter().all(|k| k.len() >= 2) {
            let mut bits = Box::new([0u64; 1024]);
            for k in &blocked_keys {
                let e = ending(k[k.len() - 2], k[k.len() - 1]);
                bits[e / 64] |= 1 << (e % 64);
            }
            Some(bits)
        } else {
            None
        };
        Ok(Redactor {
            action: config.action,
            blocked_keys,
            blocked_endings,
            allowed_keys: config.allowed_keys.iter().map(|k| normalize(k)).collect(),
            query_params: config
                .blocked_query_params
                .iter()
                .map(|p| p.trim().to_ascii_lowercase().into_bytes())
                .filter(|p| !p.is_empty())
                .collect(),
            json_fields,
            jwt: Regex::new(r"eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*")?,
            jwt_start: memchr::memmem::Finder::new(b"eyJ").into_owned(),
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
    pub(crate) fn replacement(&self, secret: &[u8]) -> String {
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

    pub(crate) fn key_is_allowed(&self, key: impl AsRef<[u8]>) -> bool {
        let k = key.as_ref();
        self.allowed_keys
            .iter()
            .any(|a| a.len() == k.len() && a.iter().zip(k).all(|(a, b)| *a == norm(*b)))
    }

    /// Whether `key` is a blocked key, or ends with one after a `.`, `_` or `-`
    /// (`http.request.header.authorization`, `db.password`, `x-api-key`).
    pub(crate) fn key_is_blocked(&self, key: impl AsRef<[u8]>) -> bool {
        let k = key.as_ref();
        if let Some(bits) = &self.blocked_endings {
            if k.len() < 2 {
                return false;
            }
            let e = ending(norm(k[k.len() - 2]), norm(k[k.len() - 1]));
            if bits[e / 64] & (1 << (e % 64)) == 0 {
                return false;
            }
        }
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

    /// Whether any rule of [`Redactor::text`] could apply to `b`: the disjunction of the byte
    /// tests that gate each rule, so `false` means `text` returns `None`. Two SIMD scans for
    /// the rare bytes the gates start from (`=`, `"`, the `J` of `eyJ`; `b`/`B`), so encoded
    /// strings need no UTF-8 check to be skipped.
    pub(crate) fn might_redact(&self, b: &[u8]) -> bool {
        if !self.blocked_values.is_empty() {
            return true;
        }
        let query = !self.query_params.is_empty();
        let json = self.json_fields.is_some();
        // The JSON rule needs a `"` and a `:`. The `:` is looked for once, at the first `"`: a
        // string of many quotes and no colon costs one more scan, not one per quote.
        let mut colon = None;
        for i in memchr::memchr3_iter(b'=', b'"', b'J', b) {
            match b[i] {
                b'=' if query => return true,
                b'"' if json && *colon.get_or_insert_with(|| memchr::memchr(b':', b).is_some()) => {
                    return true
                }
                b'J' if i >= 2 && &b[i - 2..i] == b"ey" => return true,
                _ => {}
            }
        }
        memchr::memchr2_iter(b'b', b'B', b).any(|i| {
            let rest = &b[i + 1..];
            let starts = |w: &[u8]| rest.len() >= w.len() && rest[..w.len()].eq_ignore_ascii_case(w);
            starts(b"earer") || starts(b"asic")
        })
    }

    /// Redacts the secrets inside free text; `None` when nothing changed.
    pub(crate) fn text(&self, s: &str, c: &mut Counts) -> Option<String> {
        let bytes = s.as_bytes();
        if !self.might_redact(bytes) {
            return None;
        }
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
        if self.jwt_start.find(out.as_bytes()).is_some() {
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

/// Case-insensitive search of a lowercase ASCII `needle`: candidates by their first letter.
fn contains_ci(hay: &[u8], needle: &[u8]) -> bool {
    let first = needle[0];
    memchr::memchr2_iter(first, first.to_ascii_uppercase(), hay).any(|i| {
        hay.get(i..i + needle.len())
            .is_some_and(|w| w.eq_ignore_ascii_case(needle))
    })
}
