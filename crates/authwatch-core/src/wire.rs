//! OTLP export requests kept as the protobuf bytes they arrived in.
//!
//! Decoding every span into owned structures and encoding it again costs several times what
//! reading and writing the bytes costs. A pipeline that only forwards (receiver → batch →
//! exporter) therefore carries [`Encoded`] requests: the receiver checks the bytes once with
//! [`check`] (a walk over the wire format that allocates nothing), `batch` merges requests by
//! concatenating them (a repeated protobuf field concatenates), and the OTLP exporters write the
//! bytes as they are. A component that reads the data decodes it with [`Encoded::decode`].
//!
//! [`check`] accepts exactly what prost's decoder accepts for the trace and log requests (the
//! same wire types per field, UTF-8 strings, the same recursion limit), so a checked request
//! always decodes; the `wire_check` fuzz target holds the two to that.

use bytes::Bytes;

use crate::kind::SignalKind;

pub mod raw;

/// An export request of one signal as protobuf bytes, with its item count.
#[derive(Debug, Clone, PartialEq)]
pub struct Encoded {
    kind: SignalKind,
    bytes: Bytes,
    items: usize,
}

impl Encoded {
    /// Wraps bytes known to hold a valid request of `kind` with `items` items (encoded by us,
    /// or checked by [`check`]).
    pub fn new(kind: SignalKind, bytes: Bytes, items: usize) -> Self {
        Encoded { kind, bytes, items }
    }

    pub fn kind(&self) -> SignalKind {
        self.kind
    }

    pub fn items(&self) -> usize {
        self.items
    }

    pub fn bytes(&self) -> &Bytes {
        &self.bytes
    }

    pub fn into_bytes(self) -> Bytes {
        self.bytes
    }
}

/// What [`check`] found in a valid request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Summary {
    /// Spans or log records.
    pub items: usize,
    /// Items the OTLP spec calls invalid: a span whose `trace_id` is not 16 bytes, `span_id` not
    /// 8 bytes or `parent_span_id` neither empty nor 8 bytes; a log record whose `trace_id` or
    /// `span_id` is neither empty nor of that length.
    pub invalid: usize,
}

/// Why bytes are not a valid request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid protobuf: {0}")]
pub struct WireError(&'static str);

/// Checks that `buf` is a valid `ExportTraceServiceRequest` (`Traces`) or
/// `ExportLogsServiceRequest` (`Logs`) and counts its items. `None` for metrics: their requests
/// are decoded, not walked.
pub fn check(kind: SignalKind, buf: &[u8]) -> Option<Result<Summary, WireError>> {
    let root = match kind {
        SignalKind::Traces => &TRACE_REQUEST,
        SignalKind::Logs => &LOGS_REQUEST,
        SignalKind::Metrics => return None,
    };
    let mut summary = Summary::default();
    Some(walk(buf, root, RECURSION_LIMIT, &mut summary, None).map(|()| summary))
}

// === the schema ===

/// prost's `RECURSION_LIMIT`: message nesting deeper than this is refused.
const RECURSION_LIMIT: u32 = 100;

/// How one known field is encoded.
#[derive(Clone, Copy)]
enum Field {
    Varint,
    Fixed64,
    Fixed32,
    Str,
    Raw,
    /// Bytes whose length is checked: the id rule at this index of the item's `ids`.
    Id(usize),
    Msg(&'static Schema),
    /// A message that is one item (span, log record).
    Item(&'static Schema),
}

/// An id field's rule: exactly `len` bytes, or also empty when `optional`.
#[derive(Clone, Copy)]
struct IdRule {
    len: usize,
    optional: bool,
}

struct Schema {
    fields: &'static [(u32, Field)],
    ids: &'static [IdRule],
}

impl Schema {
    fn field(&self, tag: u32) -> Option<Field> {
        self.fields.iter().find(|(t, _)| *t == tag).map(|(_, f)| *f)
    }
}

use Field::*;

static ANY_VALUE: Schema = Schema {
    fields: &[
        (1, Str),
        (2, Varint),
        (3, Varint),
        (4, Fixed64),
        (5, Msg(&ARRAY_VALUE)),
        (6, Msg(&KEY_VALUE_LIST)),
        (7, Raw),
        (8, Varint),
    ],
    ids: &[],
};
static ARRAY_VALUE: Schema = Schema {
    fields: &[(1, Msg(&ANY_VALUE))],
    ids: &[],
};
static KEY_VALUE_LIST: Schema = Schema {
    fields: &[(1, Msg(&KEY_VALUE))],
    ids: &[],
};
static KEY_VALUE: Schema = Schema {
    fields: &[(1, Str), (2, Msg(&ANY_VALUE)), (3, Varint)],
    ids: &[],
};
static ENTITY_REF: Schema = Schema {
    fields: &[(1, Str), (2, Str), (3, Str), (4, Str)],
    ids: &[],
};
static RESOURCE: Schema = Schema {
    fields: &[(1, Msg(&KEY_VALUE)), (2, Varint), (3, Msg(&ENTITY_REF))],
    ids: &[],
};
static SCOPE: Schema = Schema {
    fields: &[(1, Str), (2, Str), (3, Msg(&KEY_VALUE)), (4, Varint)],
    ids: &[],
};

static TRACE_REQUEST: Schema = Schema {
    fields: &[(1, Msg(&RESOURCE_SPANS))],
    ids: &[],
};
static RESOURCE_SPANS: Schema = Schema {
    fields: &[(1, Msg(&RESOURCE)), (2, Msg(&SCOPE_SPANS)), (3, Str)],
    ids: &[],
};
static SCOPE_SPANS: Schema = Schema {
    fields: &[(1, Msg(&SCOPE)), (2, Item(&SPAN)), (3, Str)],
    ids: &[],
};
static SPAN: Schema = Schema {
    fields: &[
        (1, Id(0)),
        (2, Id(1)),
        (3, Str),
        (4, Id(2)),
        (5, Str),
        (6, Varint),
        (7, Fixed64),
        (8, Fixed64),
        (9, Msg(&KEY_VALUE)),
        (10, Varint),
        (11, Msg(&EVENT)),
        (12, Varint),
        (13, Msg(&LINK)),
        (14, Varint),
        (15, Msg(&STATUS)),
        (16, Fixed32),
    ],
    ids: &[
        IdRule {
            len: 16,
            optional: false,
        },
        IdRule {
            len: 8,
            optional: false,
        },
        IdRule {
            len: 8,
            optional: true,
        },
    ],
};
static EVENT: Schema = Schema {
    fields: &[(1, Fixed64), (2, Str), (3, Msg(&KEY_VALUE)), (4, Varint)],
    ids: &[],
};
static LINK: Schema = Schema {
    fields: &[
        (1, Raw),
        (2, Raw),
        (3, Str),
        (4, Msg(&KEY_VALUE)),
        (5, Varint),
        (6, Fixed32),
    ],
    ids: &[],
};
static STATUS: Schema = Schema {
    fields: &[(2, Str), (3, Varint)],
    ids: &[],
};

static LOGS_REQUEST: Schema = Schema {
    fields: &[(1, Msg(&RESOURCE_LOGS))],
    ids: &[],
};
static RESOURCE_LOGS: Schema = Schema {
    fields: &[(1, Msg(&RESOURCE)), (2, Msg(&SCOPE_LOGS)), (3, Str)],
    ids: &[],
};
static SCOPE_LOGS: Schema = Schema {
    fields: &[(1, Msg(&SCOPE)), (2, Item(&LOG_RECORD)), (3, Str)],
    ids: &[],
};
static LOG_RECORD: Schema = Schema {
    fields: &[
        (1, Fixed64),
        (2, Varint),
        (3, Str),
        (5, Msg(&ANY_VALUE)),
        (6, Msg(&KEY_VALUE)),
        (7, Varint),
        (8, Fixed32),
        (9, Id(0)),
        (10, Id(1)),
        (11, Fixed64),
        (12, Str),
    ],
    ids: &[
        IdRule {
            len: 16,
            optional: true,
        },
        IdRule {
            len: 8,
            optional: true,
        },
    ],
};

// === the walk ===

const WIRE_VARINT: u64 = 0;
const WIRE_FIXED64: u64 = 1;
const WIRE_LEN: u64 = 2;
const WIRE_START_GROUP: u64 = 3;
const WIRE_END_GROUP: u64 = 4;
const WIRE_FIXED32: u64 = 5;

const UNDERFLOW: WireError = WireError("a field runs past the end of its message");
const BAD_VARINT: WireError = WireError("malformed varint");
const WRONG_WIRE_TYPE: WireError = WireError("a field has the wrong wire type");
const TOO_DEEP: WireError = WireError("message nesting is deeper than 100");

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    #[inline]
    fn done(&self) -> bool {
        self.pos >= self.buf.len()
    }

    #[inline(always)]
    fn varint(&mut self) -> Result<u64, WireError> {
        // Most varints (field keys, short lengths) are one byte.
        if let Some(&b) = self.buf.get(self.pos) {
            if b < 0x80 {
                self.pos += 1;
                return Ok(u64::from(b));
            }
        }
        self.varint_long()
    }

    #[cold]
    fn varint_long(&mut self) -> Result<u64, WireError> {
        let mut value = 0u64;
        for i in 0..10 {
            let b = *self.buf.get(self.pos + i).ok_or(BAD_VARINT)?;
            if i == 9 && b >= 0x02 {
                return Err(BAD_VARINT);
            }
            value |= u64::from(b & 0x7f) << (7 * i);
            if b < 0x80 {
                self.pos += i + 1;
                return Ok(value);
            }
        }
        Err(BAD_VARINT)
    }

    #[inline]
    fn skip(&mut self, n: u64) -> Result<(), WireError> {
        let left = (self.buf.len() - self.pos) as u64;
        if n > left {
            return Err(UNDERFLOW);
        }
        self.pos += n as usize;
        Ok(())
    }

    #[inline]
    fn bytes(&mut self) -> Result<&'a [u8], WireError> {
        let len = self.varint()?;
        let start = self.pos;
        self.skip(len)?;
        Ok(&self.buf[start..self.pos])
    }

    /// A field key: (tag, wire type), checked as prost's `decode_key` does.
    #[inline(always)]
    fn key(&mut self) -> Result<(u32, u64), WireError> {
        let key = self.varint()?;
        if key > u64::from(u32::MAX) {
            return Err(WireError("invalid field key"));
        }
        let wire = key & 0x07;
        if wire > WIRE_FIXED32 {
            return Err(WireError("invalid wire type"));
        }
        let tag = (key as u32) >> 3;
        if tag == 0 {
            return Err(WireError("invalid field number 0"));
        }
        Ok((tag, wire))
    }

    /// Skips an unknown field as prost's `skip_field` does (groups included).
    fn skip_field(&mut self, tag: u32, wire: u64, ctx: u32) -> Result<(), WireError> {
        if ctx == 0 {
            return Err(TOO_DEEP);
        }
        match wire {
            WIRE_VARINT => self.varint().map(drop),
            WIRE_FIXED64 => self.skip(8),
            WIRE_FIXED32 => self.skip(4),
            WIRE_LEN => {
                let len = self.varint()?;
                self.skip(len)
            }
            WIRE_START_GROUP => loop {
                let (inner_tag, inner_wire) = self.key()?;
                if inner_wire == WIRE_END_GROUP {
                    if inner_tag != tag {
                        return Err(WireError("unexpected end-group tag"));
                    }
                    return Ok(());
                }
                self.skip_field(inner_tag, inner_wire, ctx - 1)?;
            },
            _ => Err(WireError("unexpected end-group tag")),
        }
    }
}

/// Walks one message's fields. `ctx` is prost's remaining recursion budget for this message's
/// fields; `ids` collects the last length of each id field of the item being walked.
fn walk(
    buf: &[u8],
    schema: &'static Schema,
    ctx: u32,
    summary: &mut Summary,
    mut ids: Option<&mut [usize; 3]>,
) -> Result<(), WireError> {
    let mut r = Reader { buf, pos: 0 };
    while !r.done() {
        let (tag, wire) = r.key()?;
        let Some(field) = schema.field(tag) else {
            r.skip_field(tag, wire, ctx)?;
            continue;
        };
        let expected = match field {
            Varint => WIRE_VARINT,
            Fixed64 => WIRE_FIXED64,
            Fixed32 => WIRE_FIXED32,
            Str | Raw | Id(_) | Msg(_) | Item(_) => WIRE_LEN,
        };
        if wire != expected {
            return Err(WRONG_WIRE_TYPE);
        }
        match field {
            Varint => {
                r.varint()?;
            }
            Fixed64 => r.skip(8)?,
            Fixed32 => r.skip(4)?,
            Str => {
                std::str::from_utf8(r.bytes()?)
                    .map_err(|_| WireError("a string field is not valid UTF-8"))?;
            }
            Raw => {
                r.bytes()?;
            }
            Id(slot) => {
                let len = r.bytes()?.len();
                if let Some(ids) = ids.as_deref_mut() {
                    ids[slot] = len;
                }
            }
            Msg(inner) => {
                if ctx == 0 {
                    return Err(TOO_DEEP);
                }
                walk(r.bytes()?, inner, ctx - 1, summary, None)?;
            }
            Item(inner) => {
                if ctx == 0 {
                    return Err(TOO_DEEP);
                }
                let mut lens = [0usize; 3];
                walk(r.bytes()?, inner, ctx - 1, summary, Some(&mut lens))?;
                summary.items += 1;
                let valid = inner
                    .ids
                    .iter()
                    .zip(lens)
                    .all(|(rule, len)| len == rule.len || (rule.optional && len == 0));
                if !valid {
                    summary.invalid += 1;
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
