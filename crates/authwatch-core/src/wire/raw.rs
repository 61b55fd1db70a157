//! Reading and writing protobuf fields one at a time, for components that read or rewrite a few
//! fields of an [`Encoded`](super::Encoded) request without decoding the rest.
//!
//! [`fields`] yields each field of one message with its byte range, so a rewriter can copy
//! untouched fields verbatim. It reads exactly as prost does: a field that occurs twice is
//! yielded twice (prost keeps the last scalar and merges messages), and unknown fields,
//! groups included, come out as their whole byte range.

use super::{Reader, WireError, WIRE_FIXED32, WIRE_FIXED64, WIRE_LEN, WIRE_VARINT};

/// A field's payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Value<'a> {
    Varint(u64),
    Fixed64(u64),
    Fixed32(u32),
    /// A string, bytes or embedded message.
    Len(&'a [u8]),
    /// A group (deprecated; only ever an unknown field here).
    Group,
}

/// One field of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field<'a> {
    pub tag: u32,
    pub value: Value<'a>,
    /// Where the field (key included) starts and ends in the message's bytes.
    pub start: usize,
    pub end: usize,
}

impl<'a> Field<'a> {
    /// The payload of a length-delimited field; `None` for any other wire type.
    #[inline]
    pub fn bytes(&self) -> Option<&'a [u8]> {
        match self.value {
            Value::Len(b) => Some(b),
            _ => None,
        }
    }

    /// A varint field's value; `None` for any other wire type.
    #[inline]
    pub fn varint(&self) -> Option<u64> {
        match self.value {
            Value::Varint(v) => Some(v),
            _ => None,
        }
    }
}

/// The fields of one message, in order. Stops at the first error (the iterator then yields
/// `Err` once and ends).
#[inline]
pub fn fields(buf: &[u8]) -> Fields<'_> {
    Fields {
        r: Reader { buf, pos: 0 },
        failed: false,
    }
}

/// Iterator returned by [`fields`].
pub struct Fields<'a> {
    r: Reader<'a>,
    failed: bool,
}

impl<'a> Fields<'a> {
    #[inline(always)]
    fn read(&mut self) -> Result<Field<'a>, WireError> {
        let start = self.r.pos;
        let (tag, wire) = self.r.key()?;
        let value = match wire {
            WIRE_VARINT => Value::Varint(self.r.varint()?),
            WIRE_FIXED64 => {
                let b = self.take(8)?;
                Value::Fixed64(u64::from_le_bytes(b.try_into().expect("8 bytes")))
            }
            WIRE_FIXED32 => {
                let b = self.take(4)?;
                Value::Fixed32(u32::from_le_bytes(b.try_into().expect("4 bytes")))
            }
            WIRE_LEN => Value::Len(self.r.bytes()?),
            _ => {
                self.r.skip_field(tag, wire, super::RECURSION_LIMIT)?;
                Value::Group
            }
        };
        Ok(Field {
            tag,
            value,
            start,
            end: self.r.pos,
        })
    }

    #[inline]
    fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        let start = self.r.pos;
        self.r.skip(n as u64)?;
        Ok(&self.r.buf[start..self.r.pos])
    }
}

impl<'a> Iterator for Fields<'a> {
    type Item = Result<Field<'a>, WireError>;

    #[inline(always)]
    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.r.done() {
            return None;
        }
        let f = self.read();
        self.failed = f.is_err();
        Some(f)
    }
}

/// A scalar `AnyValue` read in place by [`plain_key_value`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlainValue<'a> {
    /// `string_value`, as bytes (UTF-8 is the caller's to check).
    Str(&'a [u8]),
    /// `bool_value`, as its varint.
    Bool(u64),
    /// `int_value`, as its varint.
    Int(u64),
    /// `double_value`, as its bits.
    Double(u64),
}

/// An OTLP `KeyValue` in the layout SDKs write: `key` (field 1), then one `value` (field 2)
/// holding exactly one string, bool, int or double, each once. Read in place, without
/// [`fields`]. `None` for any other layout (a varint over 9 bytes included) and for bytes that
/// are not protobuf: the caller then reads field by field, which gives the same result for
/// this layout.
#[inline(always)]
pub fn plain_key_value(buf: &[u8]) -> Option<(&[u8], PlainValue<'_>)> {
    const KEY: u8 = 1 << 3 | WIRE_LEN as u8;
    const VALUE: u8 = 2 << 3 | WIRE_LEN as u8;
    const STRING: u8 = 1 << 3 | WIRE_LEN as u8;
    const BOOL: u8 = 2 << 3 | WIRE_VARINT as u8;
    const INT: u8 = 3 << 3 | WIRE_VARINT as u8;
    const DOUBLE: u8 = 4 << 3 | WIRE_FIXED64 as u8;
    let rest = buf.strip_prefix(&[KEY])?;
    let (key, rest) = len_prefixed(rest)?;
    let rest = rest.strip_prefix(&[VALUE])?;
    let (value, []) = len_prefixed(rest)? else {
        return None;
    };
    let (&tag, v) = value.split_first()?;
    let value = match (tag, v) {
        (STRING, v) => match len_prefixed(v)? {
            (s, []) => PlainValue::Str(s),
            _ => return None,
        },
        (BOOL, v) => match short_varint(v)? {
            (b, []) => PlainValue::Bool(b),
            _ => return None,
        },
        (INT, v) => match short_varint(v)? {
            (i, []) => PlainValue::Int(i),
            _ => return None,
        },
        (DOUBLE, v) => PlainValue::Double(u64::from_le_bytes(v.try_into().ok()?)),
        _ => return None,
    };
    Some((key, value))
}

/// A varint of at most 9 bytes and what follows it.
#[inline(always)]
fn short_varint(buf: &[u8]) -> Option<(u64, &[u8])> {
    let mut v = 0u64;
    for (i, &b) in buf.iter().take(9).enumerate() {
        v |= u64::from(b & 0x7f) << (7 * i);
        if b < 0x80 {
            return Some((v, &buf[i + 1..]));
        }
    }
    None
}

/// A length-prefixed payload and what follows it.
#[inline(always)]
fn len_prefixed(buf: &[u8]) -> Option<(&[u8], &[u8])> {
    let (len, rest) = short_varint(buf)?;
    let len = usize::try_from(len).ok()?;
    (len <= rest.len()).then(|| rest.split_at(len))
}

/// Appends a varint.
pub fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Appends a length-delimited field: key, length, payload.
pub fn put_len_field(out: &mut Vec<u8>, tag: u32, payload: &[u8]) {
    put_varint(out, (u64::from(tag) << 3) | WIRE_LEN);
    put_varint(out, payload.len() as u64);
    out.extend_from_slice(payload);
}

/// Rewrites a message field by field. Fields are copied verbatim until the first one that
/// changes; only then is an output buffer allocated, so a message that does not change costs
/// no allocation and [`Splice::finish`] returns `None`.
pub struct Splice<'a> {
    buf: &'a [u8],
    out: Option<Vec<u8>>,
    copied: usize,
}

impl<'a> Splice<'a> {
    #[inline]
    pub fn new(buf: &'a [u8]) -> Self {
        Splice {
            buf,
            out: None,
            copied: 0,
        }
    }

    /// Replaces `field` with a length-delimited field of the same tag holding `payload`.
    pub fn replace(&mut self, field: &Field<'_>, payload: &[u8]) {
        let cap = self.buf.len() + 64;
        let out = self.out.get_or_insert_with(|| Vec::with_capacity(cap));
        out.extend_from_slice(&self.buf[self.copied..field.start]);
        put_len_field(out, field.tag, payload);
        self.copied = field.end;
    }

    /// The rewritten message, or `None` when nothing was replaced.
    #[inline]
    pub fn finish(self) -> Option<Vec<u8>> {
        let mut out = self.out?;
        out.extend_from_slice(&self.buf[self.copied..]);
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::otlp::common::v1::{any_value, AnyValue, KeyValue};
    use prost::Message;

    fn kv(key: &str, value: &str) -> KeyValue {
        KeyValue {
            key: key.to_owned(),
            value: Some(AnyValue {
                value: Some(any_value::Value::StringValue(value.to_owned())),
            }),
            ..Default::default()
        }
    }

    #[test]
    fn fields_come_out_in_order_with_their_ranges() {
        let bytes = kv("a", "b").encode_to_vec();
        let fs: Vec<Field<'_>> = fields(&bytes).collect::<Result<_, _>>().unwrap();
        assert_eq!(fs.len(), 2);
        assert_eq!((fs[0].tag, fs[0].bytes()), (1, Some(&b"a"[..])));
        assert_eq!(fs[1].tag, 2);
        assert_eq!(fs[0].start, 0);
        assert_eq!(fs[1].end, bytes.len());
        assert_eq!(fs[0].end, fs[1].start);
    }

    #[test]
    fn every_wire_type_and_a_group_are_read() {
        // varint 1:150, fixed64 2, fixed32 3, group 4 holding varint 1:1, then len 5.
        let mut b = vec![0x08, 0x96, 0x01];
        b.push(0x11);
        b.extend_from_slice(&7u64.to_le_bytes());
        b.push(0x1d);
        b.extend_from_slice(&9u32.to_le_bytes());
        b.extend_from_slice(&[0x23, 0x08, 0x01, 0x24]);
        b.extend_from_slice(&[0x2a, 0x01, b'x']);
        let vs: Vec<Value<'_>> = fields(&b).map(|f| f.unwrap().value).collect();
        assert_eq!(
            vs,
            vec![
                Value::Varint(150),
                Value::Fixed64(7),
                Value::Fixed32(9),
                Value::Group,
                Value::Len(b"x"),
            ]
        );
    }

    /// Whatever `plain_key_value` reads, prost decodes to the same key and value (or refuses
    /// only for UTF-8, which the caller checks): on each scalar's encoding and on every cut and
    /// one-byte change of it.
    #[test]
    fn plain_key_values_read_as_prost_decodes_them() {
        use any_value::Value as V;
        let values = [
            V::StringValue("https://tenant.auth0.com/oauth/token?x=1".into()),
            V::StringValue(String::new()),
            V::StringValue("é".repeat(100)),
            V::BoolValue(true),
            V::BoolValue(false),
            V::IntValue(429),
            V::IntValue(i64::MAX),
            V::IntValue(-1),
            V::DoubleValue(-0.5),
            V::BytesValue(vec![0; 3]),
        ];
        let mut read_in_place = 0;
        for (i, v) in values.into_iter().enumerate() {
            let key = if i % 2 == 0 {
                "http.response.status_code".to_owned()
            } else {
                "k".repeat(150)
            };
            let kv = KeyValue {
                key,
                value: Some(AnyValue { value: Some(v) }),
                ..Default::default()
            };
            let bytes = kv.encode_to_vec();
            let mut variants = vec![bytes.clone()];
            for at in 0..bytes.len() {
                variants.push(bytes[..at].to_vec());
                for flip in [0x01, 0x08, 0x80, 0xff] {
                    let mut b = bytes.clone();
                    b[at] ^= flip;
                    variants.push(b);
                }
            }
            for b in &variants {
                let Some((key, value)) = plain_key_value(b) else {
                    continue;
                };
                let decoded = match KeyValue::decode(b.as_slice()) {
                    Ok(d) => d,
                    Err(e) => {
                        let utf8 = |s: &[u8]| std::str::from_utf8(s).is_ok();
                        let str_ok = !matches!(value, PlainValue::Str(s) if !utf8(s));
                        assert!(!(utf8(key) && str_ok), "{b:02x?}: prost refuses it: {e}");
                        continue;
                    }
                };
                assert_eq!(key, decoded.key.as_bytes(), "{b:02x?}");
                let decoded_value = decoded.value.and_then(|v| v.value);
                let want = match &decoded_value {
                    Some(V::StringValue(s)) => PlainValue::Str(s.as_bytes()),
                    Some(V::BoolValue(x)) => PlainValue::Bool(u64::from(*x)),
                    Some(V::IntValue(x)) => PlainValue::Int(*x as u64),
                    Some(V::DoubleValue(x)) => PlainValue::Double(x.to_bits()),
                    other => panic!("{b:02x?}: read in place, but prost decodes {other:?}"),
                };
                let got = match value {
                    // prost reads any non-zero bool varint as true.
                    PlainValue::Bool(x) => PlainValue::Bool(u64::from(x != 0)),
                    other => other,
                };
                assert_eq!(got, want, "{b:02x?}");
            }
            if plain_key_value(&bytes).is_some() {
                read_in_place += 1;
            }
        }
        // All but -1 (a 10-byte varint) and the bytes value.
        assert_eq!(read_in_place, 8);
    }

    #[test]
    fn a_truncated_message_yields_one_error_and_ends() {
        let bytes = kv("a", "b").encode_to_vec();
        let cut = &bytes[..bytes.len() - 1];
        let out: Vec<_> = fields(cut).collect();
        assert_eq!(out.len(), 2);
        assert!(out[0].is_ok());
        assert!(out[1].is_err());
    }

    #[test]
    fn splice_replaces_only_what_changed() {
        let mut msg = Vec::new();
        put_len_field(&mut msg, 1, b"key");
        put_len_field(&mut msg, 2, b"old");
        put_len_field(&mut msg, 3, b"tail");
        let fs: Vec<Field<'_>> = fields(&msg).map(Result::unwrap).collect();

        assert_eq!(Splice::new(&msg).finish(), None, "nothing replaced");

        let mut s = Splice::new(&msg);
        s.replace(&fs[1], b"a longer value");
        let out = s.finish().unwrap();
        let got: Vec<(u32, Vec<u8>)> = fields(&out)
            .map(|f| {
                let f = f.unwrap();
                (f.tag, f.bytes().unwrap().to_vec())
            })
            .collect();
        assert_eq!(
            got,
            vec![
                (1, b"key".to_vec()),
                (2, b"a longer value".to_vec()),
                (3, b"tail".to_vec()),
            ]
        );

        let mut s = Splice::new(&msg);
        s.replace(&fs[0], b"k");
        s.replace(&fs[2], b"");
        let out = s.finish().unwrap();
        let lens: Vec<usize> = fields(&out)
            .map(|f| f.unwrap().bytes().unwrap().len())
            .collect();
        assert_eq!(lens, vec![1, 3, 0]);
    }

    #[test]
    fn long_lengths_get_multi_byte_varints() {
        let payload = vec![b'x'; 300];
        let mut out = Vec::new();
        put_len_field(&mut out, 1, &payload);
        let f = fields(&out).next().unwrap().unwrap();
        assert_eq!(f.bytes().unwrap().len(), 300);
        assert_eq!(f.end, out.len());
    }
}
