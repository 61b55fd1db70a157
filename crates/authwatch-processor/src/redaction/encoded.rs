//! The redaction rules applied to encoded trace and log requests, without decoding them.
//!
//! The walk visits exactly the strings the owned traversal in `rules.rs` visits (span, event
//! and status texts, attributes at every level, log bodies) and hands each to the same
//! functions ([`Redactor::text`], the key rules), so the two cannot disagree on what a secret
//! is. A message is rebuilt only on the way up from a string that changed; a request with
//! nothing to redact comes out as the same bytes, with no allocation.
//!
//! Where the bytes are not in the form the owned traversal would see, the walk gives up and
//! the caller decodes instead ([`NeedsDecode`]): a blocked key whose value is not one plain
//! string, bytes or boolean (its replacement hashes the decoded value's debug form), or bytes
//! that are not protobuf. Strings are read as bytes: UTF-8 was checked when the request was
//! received (`wire::check`), and a string is only read as text once a rule's byte test hits. A field that decoding would discard (an earlier duplicate of a
//! string, say) is redacted as well: nothing that could be a secret is passed on, at the price
//! of counting such a value too.

use authwatch_core::config::REDACTED;
use authwatch_core::wire::raw::{fields, plain_key_value, put_len_field, Field, PlainValue, Splice};

use super::rules::{Counts, Redactor};

/// The walk cannot keep to the owned traversal's result: decode and redact the owned way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct NeedsDecode;

type Walk<T> = Result<T, NeedsDecode>;

/// A message's rewrite: `None` when it did not change.
type Rewrite = Walk<Option<Vec<u8>>>;


/// The messages on the way to a string.
#[derive(Debug, Clone, Copy)]
enum Msg {
    TraceRequest,
    ResourceSpans,
    Resource,
    ScopeSpans,
    Scope,
    Span,
    Event,
    Link,
    Status,
    LogsRequest,
    ResourceLogs,
    ScopeLogs,
    LogRecord,
}

/// What to do with one field.
enum Step {
    Skip,
    Into(Msg),
    /// A string the text rules apply to.
    Text,
    /// A `KeyValue`.
    Attribute,
    /// An `AnyValue` with no key of its own (a log body).
    Value,
}

/// Field numbers from opentelemetry-proto (common, resource, trace, logs, collector v1).
fn step(m: Msg, tag: u32) -> Step {
    use Msg::*;
    match (m, tag) {
        (TraceRequest, 1) => Step::Into(ResourceSpans),
        (ResourceSpans, 1) | (ResourceLogs, 1) => Step::Into(Resource),
        (ResourceSpans, 2) => Step::Into(ScopeSpans),
        (Resource, 1) => Step::Attribute,
        (ScopeSpans, 1) | (ScopeLogs, 1) => Step::Into(Scope),
        (ScopeSpans, 2) => Step::Into(Span),
        (Scope, 3) => Step::Attribute,
        (Span, 5) => Step::Text,
        (Span, 9) => Step::Attribute,
        (Span, 11) => Step::Into(Event),
        (Span, 13) => Step::Into(Link),
        (Span, 15) => Step::Into(Status),
        (Event, 2) => Step::Text,
        (Event, 3) => Step::Attribute,
        (Link, 4) => Step::Attribute,
        (Status, 2) => Step::Text,
        (LogsRequest, 1) => Step::Into(ResourceLogs),
        (ResourceLogs, 2) => Step::Into(ScopeLogs),
        (ScopeLogs, 2) => Step::Into(LogRecord),
        (LogRecord, 5) => Step::Value,
        (LogRecord, 6) => Step::Attribute,
        _ => Step::Skip,
    }
}

// AnyValue's fields.
const ANY_STRING: u32 = 1;
const ANY_BOOL: u32 = 2;
const ANY_ARRAY: u32 = 5;
const ANY_KVLIST: u32 = 6;
const ANY_BYTES: u32 = 7;

impl Redactor {
    /// Redacts an encoded `ExportTraceServiceRequest`: `Ok(None)` when nothing changed.
    pub(crate) fn encoded_traces(&self, buf: &[u8], c: &mut Counts) -> Rewrite {
        self.message(buf, Msg::TraceRequest, c)
    }

    /// Redacts an encoded `ExportLogsServiceRequest`: `Ok(None)` when nothing changed.
    pub(crate) fn encoded_logs(&self, buf: &[u8], c: &mut Counts) -> Rewrite {
        self.message(buf, Msg::LogsRequest, c)
    }

    fn message(&self, buf: &[u8], m: Msg, c: &mut Counts) -> Rewrite {
        let mut splice = Splice::new(buf);
        for f in fields(buf) {
            let f = f.map_err(|_| NeedsDecode)?;
            let changed = match step(m, f.tag) {
                Step::Skip => continue,
                Step::Into(inner) => self.message(payload(&f)?, inner, c)?,
                Step::Text => self.text_field(payload(&f)?, c)?,
                Step::Attribute => self.key_value(payload(&f)?, c)?,
                Step::Value => self.any_value(payload(&f)?, c)?,
            };
            if let Some(new) = changed {
                splice.replace(&f, &new);
            }
        }
        Ok(splice.finish())
    }

    /// One attribute, as `Redactor::attributes` treats it.
    fn key_value(&self, buf: &[u8], c: &mut Counts) -> Rewrite {
        // Most attributes are a key and one scalar, and most are left alone: settle those in
        // place. A key that is not blocked keeps a value that is not a string, and a string
        // no rule's byte test hits (what `any_value` and `text_field` would find).
        if let Some((key, value)) = plain_key_value(buf) {
            if self.key_is_allowed(key) {
                return Ok(None);
            }
            if !self.key_is_blocked(key) {
                match value {
                    PlainValue::Str(s) if self.might_redact(s) => {}
                    _ => return Ok(None),
                }
            }
        }
        // Decoding keeps the last key and merges the values, so read the whole message first.
        let mut key: &[u8] = b"";
        let mut value: Option<Field<'_>> = None;
        let mut values = 0;
        for f in fields(buf) {
            let f = f.map_err(|_| NeedsDecode)?;
            match f.tag {
                1 => key = payload(&f)?,
                2 => {
                    values += 1;
                    value.get_or_insert(f);
                }
                _ => {}
            }
        }
        let Some(first) = value else { return Ok(None) };
        if self.key_is_allowed(key) {
            return Ok(None);
        }
        let blocked = self.key_is_blocked(key);
        let redact = |f: &Field<'_>, c: &mut Counts| {
            if blocked {
                self.blocked_any_value(payload(f)?, c)
            } else {
                self.any_value(payload(f)?, c)
            }
        };
        let mut splice = Splice::new(buf);
        if values == 1 {
            if let Some(new) = redact(&first, c)? {
                splice.replace(&first, &new);
            }
            return Ok(splice.finish());
        }
        if blocked {
            return Err(NeedsDecode);
        }
        for f in fields(buf) {
            let f = f.map_err(|_| NeedsDecode)?;
            if f.tag == 2 {
                if let Some(new) = redact(&f, c)? {
                    splice.replace(&f, &new);
                }
            }
        }
        Ok(splice.finish())
    }

    /// A blocked key's value becomes one string, as `Redactor::blocked_value` decides.
    fn blocked_any_value(&self, buf: &[u8], c: &mut Counts) -> Rewrite {
        let mut only: Option<Field<'_>> = None;
        for f in fields(buf) {
            let f = f.map_err(|_| NeedsDecode)?;
            if only.replace(f).is_some() {
                return Err(NeedsDecode);
            }
        }
        let secret = match only {
            None => return Ok(None),
            Some(f) => match (f.tag, f.value) {
                (ANY_STRING, _) => {
                    let s = payload(&f)?;
                    if s.is_empty() || s == REDACTED.as_bytes() {
                        return Ok(None);
                    }
                    utf8(s)?;
                    s
                }
                (ANY_BYTES, _) => payload(&f)?,
                (ANY_BOOL, _) => return Ok(None),
                _ => return Err(NeedsDecode),
            },
        };
        c.key += 1;
        let mut out = Vec::new();
        put_len_field(&mut out, ANY_STRING, self.replacement(secret).as_bytes());
        Ok(Some(out))
    }

    /// An `AnyValue`, as `Redactor::value` treats it: strings, arrays and key-value lists.
    fn any_value(&self, buf: &[u8], c: &mut Counts) -> Rewrite {
        let mut splice = Splice::new(buf);
        for f in fields(buf) {
            let f = f.map_err(|_| NeedsDecode)?;
            let changed = match f.tag {
                ANY_STRING => self.text_field(payload(&f)?, c)?,
                ANY_ARRAY => self.repeated(payload(&f)?, c, Self::any_value)?,
                ANY_KVLIST => self.repeated(payload(&f)?, c, Self::key_value)?,
                _ => continue,
            };
            if let Some(new) = changed {
                splice.replace(&f, &new);
            }
        }
        Ok(splice.finish())
    }

    /// A string field: read as text only when a rule could apply to its bytes.
    fn text_field(&self, b: &[u8], c: &mut Counts) -> Rewrite {
        if !self.might_redact(b) {
            return Ok(None);
        }
        Ok(self.text(utf8(b)?, c).map(String::into_bytes))
    }

    /// `ArrayValue` / `KeyValueList`: field 1, repeated.
    fn repeated(
        &self,
        buf: &[u8],
        c: &mut Counts,
        each: fn(&Self, &[u8], &mut Counts) -> Rewrite,
    ) -> Rewrite {
        let mut splice = Splice::new(buf);
        for f in fields(buf) {
            let f = f.map_err(|_| NeedsDecode)?;
            if f.tag != 1 {
                continue;
            }
            if let Some(new) = each(self, payload(&f)?, c)? {
                splice.replace(&f, &new);
            }
        }
        Ok(splice.finish())
    }
}

/// A length-delimited field's payload; any other wire type is not what prost would accept here.
fn payload<'a>(f: &Field<'a>) -> Walk<&'a [u8]> {
    f.bytes().ok_or(NeedsDecode)
}

fn utf8(b: &[u8]) -> Walk<&str> {
    std::str::from_utf8(b).map_err(|_| NeedsDecode)
}
