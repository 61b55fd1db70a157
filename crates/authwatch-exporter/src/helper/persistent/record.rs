//! The record format: `format (1) | signal tag (1) | enqueued unix ms (8, LE) | crc32 (4, LE) |
//! protobuf Export*ServiceRequest`, the CRC over everything but itself.

use std::time::{SystemTime, UNIX_EPOCH};

use authwatch_core::otlp::collector::logs::v1::ExportLogsServiceRequest;
use authwatch_core::otlp::collector::metrics::v1::ExportMetricsServiceRequest;
use authwatch_core::otlp::collector::trace::v1::ExportTraceServiceRequest;
use authwatch_core::{Signal, SignalKind};
use prost::Message;

pub(super) const FORMAT: u8 = 1;
/// format, tag, enqueued ms, crc32.
const HEADER: usize = 1 + 1 + 8 + 4;

/// Why a stored record was skipped.
#[derive(Debug, thiserror::Error)]
pub enum Corrupt {
    #[error("record is truncated ({0} bytes)")]
    Truncated(usize),
    #[error("unknown record format {0}")]
    Format(u8),
    #[error("unknown signal tag {0}")]
    Tag(u8),
    #[error("checksum mismatch")]
    Checksum,
    #[error("payload does not decode: {0}")]
    Decode(#[from] prost::DecodeError),
    #[error("record is missing from the queue file")]
    Missing,
}

pub(super) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

pub(super) fn checksum(head: &[u8], payload: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(head);
    h.update(payload);
    h.finalize()
}

/// One stored record: header and protobuf payload.
pub(crate) fn encode_record(data: &Signal, enqueued_ms: u64) -> Vec<u8> {
    let encoded = data.to_encoded();
    let tag = match encoded.kind() {
        SignalKind::Traces => 0u8,
        SignalKind::Metrics => 1u8,
        SignalKind::Logs => 2u8,
    };
    let payload = encoded.bytes();
    let mut out = Vec::with_capacity(HEADER + payload.len());
    out.push(FORMAT);
    out.push(tag);
    out.extend_from_slice(&enqueued_ms.to_le_bytes());
    let crc = checksum(&out, payload);
    out.extend_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(payload);
    out
}

/// Checks a record's header and checksum; returns its enqueue time.
pub(super) fn check_record(value: &[u8]) -> Result<u64, Corrupt> {
    if value.len() < HEADER {
        return Err(Corrupt::Truncated(value.len()));
    }
    if value[0] != FORMAT {
        return Err(Corrupt::Format(value[0]));
    }
    if value[1] > 2 {
        return Err(Corrupt::Tag(value[1]));
    }
    let mut crc = [0u8; 4];
    crc.copy_from_slice(&value[10..14]);
    if checksum(&value[..10], &value[HEADER..]) != u32::from_le_bytes(crc) {
        return Err(Corrupt::Checksum);
    }
    let mut ms = [0u8; 8];
    ms.copy_from_slice(&value[2..10]);
    Ok(u64::from_le_bytes(ms))
}

pub(crate) fn decode_record(value: &[u8]) -> Result<Signal, Corrupt> {
    check_record(value)?;
    let payload = &value[HEADER..];
    Ok(match value[1] {
        0 => Signal::Traces(ExportTraceServiceRequest::decode(payload)?),
        1 => Signal::Metrics(ExportMetricsServiceRequest::decode(payload)?),
        _ => Signal::Logs(ExportLogsServiceRequest::decode(payload)?),
    })
}
