//! A tonic codec that moves already-encoded protobuf bytes, so that neither the sender nor the
//! sink pays for prost: the sender cycles through requests encoded once at start, the sink counts
//! spans on the wire.

use bytes::{Buf, BufMut, Bytes};
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::Status;

/// gRPC paths of the OTLP export calls (the sink accepts and ignores metrics and logs).
pub use authwatch_net::otlp::{
    LOGS_EXPORT_PATH as LOGS_EXPORT, METRICS_EXPORT_PATH as METRICS_EXPORT,
    TRACES_EXPORT_PATH as TRACES_EXPORT,
};

#[derive(Debug, Clone, Copy, Default)]
pub struct RawCodec;

impl Codec for RawCodec {
    type Encode = Bytes;
    type Decode = Bytes;
    type Encoder = RawCodec;
    type Decoder = RawCodec;

    fn encoder(&mut self) -> RawCodec {
        RawCodec
    }

    fn decoder(&mut self) -> RawCodec {
        RawCodec
    }
}

impl Encoder for RawCodec {
    type Item = Bytes;
    type Error = Status;

    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put(item);
        Ok(())
    }
}

impl Decoder for RawCodec {
    type Item = Bytes;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }
}
