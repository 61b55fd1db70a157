//! Counts the spans of an encoded `ExportTraceServiceRequest` without decoding it: the sink only
//! walks the length-delimited fields `resource_spans` (1) → `scope_spans` (2) → `spans` (2), so
//! it costs about a read of the bytes, never an allocation per span.

/// The bytes are not a well-formed protobuf message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WireError;

impl std::fmt::Display for WireError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("malformed protobuf: truncated or invalid field")
    }
}

impl std::error::Error for WireError {}

/// Spans in an encoded `ExportTraceServiceRequest`.
pub fn count_spans(buf: &[u8]) -> Result<u64, WireError> {
    let mut total = 0;
    for_each_len_field(buf, 1, |resource_spans| {
        for_each_len_field(resource_spans, 2, |scope_spans| {
            for_each_len_field(scope_spans, 2, |_span| {
                total += 1;
                Ok(())
            })
        })
    })?;
    Ok(total)
}

/// Calls `f` with the body of every length-delimited field numbered `field`; skips the others.
fn for_each_len_field(
    mut buf: &[u8],
    field: u64,
    mut f: impl FnMut(&[u8]) -> Result<(), WireError>,
) -> Result<(), WireError> {
    while !buf.is_empty() {
        let key = varint(&mut buf)?;
        let (number, wire_type) = (key >> 3, key & 7);
        match wire_type {
            0 => {
                varint(&mut buf)?;
            }
            1 => buf = buf.get(8..).ok_or(WireError)?,
            5 => buf = buf.get(4..).ok_or(WireError)?,
            2 => {
                let len = usize::try_from(varint(&mut buf)?).map_err(|_| WireError)?;
                let body = buf.get(..len).ok_or(WireError)?;
                if number == field {
                    f(body)?;
                }
                buf = &buf[len..];
            }
            _ => return Err(WireError),
        }
    }
    Ok(())
}

fn varint(buf: &mut &[u8]) -> Result<u64, WireError> {
    let mut value = 0u64;
    for (i, byte) in buf.iter().enumerate().take(10) {
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            *buf = &buf[i + 1..];
            return Ok(value);
        }
    }
    Err(WireError)
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    #[test]
    fn counts_what_prost_encodes() {
        let mut req = crate::spans::Generator::new(7).request(300);
        let extra = crate::spans::Generator::new(8).request(12);
        req.resource_spans.extend(extra.resource_spans);
        let n = count_spans(&req.encode_to_vec()).expect("well-formed");
        assert_eq!(n, 312);
    }

    #[test]
    fn refuses_truncated_input() {
        let bytes = crate::spans::Generator::new(1).request(4).encode_to_vec();
        assert_eq!(count_spans(&bytes[..bytes.len() - 3]), Err(WireError));
        assert_eq!(count_spans(&[]), Ok(0));
    }
}
