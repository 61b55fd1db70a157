//! Reading spans straight from an encoded `ExportTraceServiceRequest`: the connector needs a
//! dozen attributes, the kind, the parent, the times and the status of each span, so it reads
//! those by reference and skips the rest, instead of decoding every span into owned structures.
//!
//! Every value is read as prost would decode it: the last occurrence of a scalar field wins,
//! occurrences of a message field merge (so a resource's attributes are those of every
//! `resource` field in order), and an attribute's value is the last `AnyValue` variant written.
//! The tests hold the result to `SpanView::of` on the decoded span.

use authwatch_core::semconv;
use authwatch_core::wire::raw::{fields, plain_key_value, Field, PlainValue, Value};

use super::classify::{Scalar, SpanFacts, SpanView};
use super::dedupe::SpanIds;

/// The payloads of the length-delimited fields numbered `tag`, in order; `None` for a field of
/// that number with another wire type, or bytes that are not protobuf.
pub fn messages(buf: &[u8], tag: u32) -> impl Iterator<Item = Option<&[u8]>> {
    fields(buf).filter_map(move |f| match f {
        Ok(f) if f.tag == tag => Some(f.bytes()),
        Ok(_) => None,
        Err(_) => Some(None),
    })
}

/// `service.name` of a `ResourceSpans`: the first attribute with that key among its resource's
/// attributes, if its value is a string. `None` when the bytes are not valid.
pub fn service_name(resource_spans: &[u8]) -> Option<Option<&str>> {
    for resource in messages(resource_spans, 1) {
        for kv in messages(resource?, 1) {
            let (key, value) = key_value(kv?)?;
            if key == semconv::SERVICE_NAME.as_bytes() {
                return Some(value.str());
            }
        }
    }
    Some(None)
}

/// One span's view and facts. `None` when the bytes are not a valid span.
pub fn span(buf: &[u8]) -> Option<(SpanView<'_>, SpanFacts)> {
    let mut view = SpanView::default();
    let (mut kind, mut parent_len, mut start, mut end) = (0i32, 0usize, 0u64, 0u64);
    let (mut has_status, mut code) = (false, 0i32);
    let (mut trace_id, mut span_id): (&[u8], &[u8]) = (b"", b"");
    // Where the events start, so that a span without events is walked once.
    let mut events_from = None;
    for f in fields(buf) {
        let f = f.ok()?;
        match f.tag {
            1 => trace_id = payload(&f)?,
            2 => span_id = payload(&f)?,
            4 => parent_len = payload(&f)?.len(),
            6 => kind = varint(&f)? as i32,
            7 => start = fixed64(&f)?,
            8 => end = fixed64(&f)?,
            9 => {
                let (key, value) = key_value(payload(&f)?)?;
                view.attribute(key, value);
            }
            11 => {
                events_from.get_or_insert(f.start);
            }
            15 => {
                has_status = true;
                for sf in fields(payload(&f)?) {
                    let sf = sf.ok()?;
                    if sf.tag == 3 {
                        code = varint(&sf)? as i32;
                    }
                }
            }
            _ => {}
        }
    }
    view.status_error = has_status
        && code == authwatch_core::otlp::trace::v1::status::StatusCode::Error as i32;
    if let Some(from) = events_from.filter(|_| view.wants_events()) {
        for event in messages(&buf[from..], 11) {
            for kv in messages(event?, 3) {
                let (key, value) = key_value(kv?)?;
                view.event_attribute(key, value);
            }
        }
    }
    let facts = SpanFacts::new(kind, parent_len == 0, start, end)
        .with_ids(SpanIds::of(trace_id, span_id));
    Some((view, facts))
}

/// A `KeyValue`: the last key, and the value's last variant across every `value` field.
fn key_value(buf: &[u8]) -> Option<(&[u8], Scalar<'_>)> {
    canonical_key_value(buf).or_else(|| key_value_by_fields(buf))
}

/// [`key_value`] for any layout, field by field.
pub(super) fn key_value_by_fields(buf: &[u8]) -> Option<(&[u8], Scalar<'_>)> {
    let mut key: &[u8] = b"";
    let mut value = Scalar::Other;
    for f in fields(buf) {
        let f = f.ok()?;
        match f.tag {
            1 => key = payload(&f)?,
            2 => {
                for vf in fields(payload(&f)?) {
                    let vf = vf.ok()?;
                    value = match (vf.tag, vf.value) {
                        (1, Value::Len(s)) => Scalar::Str(s),
                        (3, Value::Varint(i)) => Scalar::Int(i as i64),
                        (4, Value::Fixed64(bits)) => Scalar::Double(f64::from_bits(bits)),
                        (2, Value::Varint(b)) => Scalar::Bool(b != 0),
                        (8, Value::Varint(_)) | (5..=7, Value::Len(_)) => Scalar::Other,
                        (1..=8, _) => return None,
                        _ => continue,
                    };
                }
            }
            _ => {}
        }
    }
    Some((key, value))
}

/// [`plain_key_value`] as a [`Scalar`], as [`key_value_by_fields`] reads it.
#[inline]
pub(super) fn canonical_key_value(buf: &[u8]) -> Option<(&[u8], Scalar<'_>)> {
    let (key, value) = plain_key_value(buf)?;
    let value = match value {
        PlainValue::Str(s) => Scalar::Str(s),
        PlainValue::Int(i) => Scalar::Int(i as i64),
        PlainValue::Double(bits) => Scalar::Double(f64::from_bits(bits)),
        PlainValue::Bool(b) => Scalar::Bool(b != 0),
    };
    Some((key, value))
}

fn payload<'a>(f: &Field<'a>) -> Option<&'a [u8]> {
    f.bytes()
}

fn varint(f: &Field<'_>) -> Option<u64> {
    f.varint()
}

fn fixed64(f: &Field<'_>) -> Option<u64> {
    match f.value {
        Value::Fixed64(v) => Some(v),
        _ => None,
    }
}
