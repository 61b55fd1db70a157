//! The request message of a unary OTLP/gRPC call, read from the HTTP/2 body before tonic sees it.
//!
//! tonic would refuse a body it cannot unframe with a status whose only trace of the cause is its
//! message text (a gzip stream that does not inflate and a frame cut short are both `INTERNAL`,
//! a message over the limit `OUT_OF_RANGE`, which OTLP clients retry). Reading the frames here
//! makes each cause a [`FrameError`] variant, answered by type (`status.rs`). The message then
//! reaches the service through the request's extensions while tonic decodes an empty frame it
//! cannot refuse (so the body is copied once, here), and tonic still answers with its framing and
//! response compression.
//!
//! Each frame (`flag`, 4-byte big-endian length, message) is checked as tonic checks it: the flag
//! is 0 or 1, a compressed frame needs `grpc-encoding`, the length is at most the limit (before
//! the message is buffered), and a compressed message inflates (one gzip member, as tonic reads
//! it) to at most the limit (inflating stops there). A unary call carries one message; further
//! frames are checked the same way and dropped, as tonic does.

use std::io::Read;

use authwatch_core::ConsumeError;
use bytes::{Buf, BufMut, Bytes, BytesMut};
use http::HeaderMap;
use http_body_util::BodyExt;

/// The 5-byte prefix of a gRPC frame: compressed flag and message length.
const PREFIX: usize = 5;

/// The message compression of a request (`grpc-encoding`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RequestEncoding {
    Identity,
    Gzip,
}

impl RequestEncoding {
    /// From `grpc-encoding`: absent or `identity`, or `gzip`. `None` for an encoding the receiver
    /// does not take (tonic answers it `UNIMPLEMENTED` with `grpc-accept-encoding`).
    pub(crate) fn from_headers(headers: &HeaderMap) -> Option<RequestEncoding> {
        match headers.get("grpc-encoding").map(|v| v.as_bytes()) {
            None | Some(b"identity") => Some(RequestEncoding::Identity),
            Some(b"gzip") => Some(RequestEncoding::Gzip),
            Some(_) => None,
        }
    }
}

/// Why the request message could not be read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum FrameError {
    /// The body itself failed (the client reset the stream, the connection broke).
    #[error("cannot read the request body: {}", .0.message())]
    Body(#[source] tonic::Status),
    #[error("the body ends inside a gRPC frame header ({got} of {PREFIX} bytes)")]
    PrefixCutShort { got: usize },
    #[error("the body ends inside a gRPC frame ({got} of {declared} message bytes)")]
    MessageCutShort { declared: usize, got: usize },
    #[error("the request message is {len} bytes, larger than max_recv_msg_size_mib ({limit} bytes)")]
    TooLarge { len: usize, limit: usize },
    #[error(
        "the compressed request message inflates to more than max_recv_msg_size_mib ({limit} bytes)"
    )]
    InflatesTooLarge { limit: usize },
    #[error("the request message is not a gzip stream that inflates: {0}")]
    Gzip(#[source] std::io::Error),
    /// The gRPC spec: "MUST fail with INTERNAL status".
    #[error(
        "protocol error: received a message with the compressed flag but no grpc-encoding was specified"
    )]
    CompressedWithoutEncoding,
    #[error("protocol error: invalid compression flag {0} (valid flags are 0 and 1)")]
    InvalidFlag(u8),
    #[error("missing request message: the body holds no gRPC frame")]
    Missing,
    /// Refused on the length its frame header declares, before the message was read.
    #[error(transparent)]
    Refused(ConsumeError),
}

/// Reads every frame of `body` and returns the first message, unframed and inflated.
#[cfg(test)]
pub(crate) async fn read_message<B>(
    body: B,
    encoding: RequestEncoding,
    limit: usize,
) -> Result<Bytes, FrameError>
where
    B: tonic::codegen::Body,
    B::Error: Into<tonic::codegen::StdError>,
{
    read_admitted(body, encoding, limit, |_| Ok(())).await
}

/// [`read_message`], asking `admit` with the message length the first frame header declares as
/// soon as it has arrived, before the message itself is read: a refusal ends the read.
pub(crate) async fn read_admitted<B>(
    body: B,
    encoding: RequestEncoding,
    limit: usize,
    mut admit: impl FnMut(u64) -> Result<(), ConsumeError>,
) -> Result<Bytes, FrameError>
where
    B: tonic::codegen::Body,
    B::Error: Into<tonic::codegen::StdError>,
{
    let mut admitted = false;
    // A frame's length is a `u32`, so no larger limit can apply.
    let limit = limit.min(usize::try_from(u32::MAX).unwrap_or(usize::MAX));
    let mut body = std::pin::pin!(body);
    let mut buf = BytesMut::new();
    let mut first: Option<Bytes> = None;
    loop {
        if !admitted && buf.len() >= PREFIX {
            admitted = true;
            admit(declared_len(&buf) as u64).map_err(FrameError::Refused)?;
        }
        while let Some(frame) = take_frame(&mut buf, encoding, limit)? {
            first.get_or_insert(frame);
        }
        match body.frame().await {
            None => break,
            Some(Err(e)) => return Err(FrameError::Body(tonic::Status::from_error(e.into()))),
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    buf.put(data);
                }
            }
        }
    }
    match buf.len() {
        0 => first.ok_or(FrameError::Missing),
        got if got < PREFIX => Err(FrameError::PrefixCutShort { got }),
        got => Err(FrameError::MessageCutShort {
            declared: declared_len(&buf),
            got: got - PREFIX,
        }),
    }
}

fn declared_len(buf: &[u8]) -> usize {
    let len = u32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]);
    usize::try_from(len).unwrap_or(usize::MAX)
}

/// The next whole frame of `buf` as an uncompressed frame, `None` until one is whole. The prefix
/// is checked as soon as it arrives, so an oversized message is refused before it is buffered.
fn take_frame(
    buf: &mut BytesMut,
    encoding: RequestEncoding,
    limit: usize,
) -> Result<Option<Bytes>, FrameError> {
    if buf.len() < PREFIX {
        return Ok(None);
    }
    let compressed = match buf[0] {
        0 => false,
        1 if encoding == RequestEncoding::Identity => {
            return Err(FrameError::CompressedWithoutEncoding)
        }
        1 => true,
        flag => return Err(FrameError::InvalidFlag(flag)),
    };
    let len = declared_len(buf);
    if len > limit {
        return Err(FrameError::TooLarge { len, limit });
    }
    if buf.len() - PREFIX < len {
        return Ok(None);
    }
    buf.advance(PREFIX);
    if !compressed {
        return Ok(Some(buf.split_to(len).freeze()));
    }
    let zipped = buf.split_to(len).freeze();
    inflate(&zipped, limit).map(Some)
}

/// Inflates one gzip member, stopping as soon as the output passes `limit` bytes.
fn inflate(zipped: &[u8], limit: usize) -> Result<Bytes, FrameError> {
    let mut message = Vec::new();
    let cap = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    flate2::bufread::GzDecoder::new(zipped)
        .take(cap)
        .read_to_end(&mut message)
        .map_err(FrameError::Gzip)?;
    if message.len() > limit {
        return Err(FrameError::InflatesTooLarge { limit });
    }
    Ok(Bytes::from(message))
}

/// An uncompressed frame holding an empty message.
pub(crate) const EMPTY_FRAME: &[u8] = &[0; PREFIX];

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;
    use http_body_util::{Full, StreamBody};

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn prefixed(flag: u8, declared: usize, payload: &[u8]) -> Vec<u8> {
        let mut f = vec![flag];
        f.extend_from_slice(&u32::try_from(declared).unwrap().to_be_bytes());
        f.extend_from_slice(payload);
        f
    }

    async fn read(body: Vec<u8>, encoding: RequestEncoding) -> Result<Bytes, FrameError> {
        read_message(Full::new(Bytes::from(body)), encoding, 1024).await
    }

    #[tokio::test]
    async fn a_plain_or_gzip_message_comes_out_unframed() {
        let message = b"hello".to_vec();
        let plain = prefixed(0, 5, &message);
        assert_eq!(read(plain.clone(), RequestEncoding::Identity).await.unwrap(), message);
        assert_eq!(read(plain.clone(), RequestEncoding::Gzip).await.unwrap(), message);
        let zipped = gzip(&message);
        let compressed = prefixed(1, zipped.len(), &zipped);
        assert_eq!(read(compressed, RequestEncoding::Gzip).await.unwrap(), message);
        assert_eq!(EMPTY_FRAME, prefixed(0, 0, b""));
    }

    #[tokio::test]
    async fn admission_is_asked_with_the_declared_length_before_the_message_is_read() {
        // Only the frame header arrives, then the body stalls: the refusal comes without it.
        let head: Vec<Result<hyper::body::Frame<Bytes>, std::convert::Infallible>> = vec![Ok(
            hyper::body::Frame::data(Bytes::from(prefixed(0, 900, b""))),
        )];
        let body = StreamBody::new(futures::StreamExt::chain(
            futures::stream::iter(head),
            futures::stream::pending(),
        ));
        let mut asked = Vec::new();
        let got = read_admitted(body, RequestEncoding::Identity, 1024, |len| {
            asked.push(len);
            Err(ConsumeError::Full)
        })
        .await;
        assert!(matches!(got, Err(FrameError::Refused(ConsumeError::Full))), "{got:?}");
        assert_eq!(asked, [900]);
        let status = tonic::Status::from(&got.unwrap_err());
        assert_eq!(status.code(), tonic::Code::Unavailable);
        // Admitted: read as usual, asked once.
        let mut n = 0;
        let plain = prefixed(0, 5, b"hello");
        let got = read_admitted(Full::new(Bytes::from(plain)), RequestEncoding::Identity, 1024, |_| {
            n += 1;
            Ok(())
        })
        .await
        .unwrap();
        assert_eq!((got, n), (Bytes::from_static(b"hello"), 1));
    }

    #[tokio::test]
    async fn frames_split_across_chunks_are_joined_and_later_frames_dropped() {
        let mut both = prefixed(0, 3, b"one");
        both.extend(prefixed(0, 3, b"two"));
        let chunks: Vec<Result<hyper::body::Frame<Bytes>, std::convert::Infallible>> = both
            .chunks(2)
            .map(|c| Ok(hyper::body::Frame::data(Bytes::copy_from_slice(c))))
            .collect();
        let body = StreamBody::new(futures::stream::iter(chunks));
        let got = read_message(body, RequestEncoding::Identity, 1024).await.unwrap();
        assert_eq!(got, &b"one"[..]);
    }

    #[tokio::test]
    async fn each_fault_is_its_own_variant() {
        use FrameError as E;
        let zipped = gzip(b"hello");
        let bomb = gzip(&[0u8; 4096]);
        type Case = (&'static str, Vec<u8>, RequestEncoding, fn(&FrameError) -> bool);
        let cases: Vec<Case> = vec![
            ("empty body", vec![], RequestEncoding::Identity, |e| matches!(e, E::Missing)),
            ("prefix cut short", vec![0, 0, 0], RequestEncoding::Identity, |e| {
                matches!(e, E::PrefixCutShort { got: 3 })
            }),
            ("message cut short", prefixed(0, 10, b"abc"), RequestEncoding::Identity, |e| {
                matches!(e, E::MessageCutShort { declared: 10, got: 3 })
            }),
            ("over the limit", prefixed(0, 2048, b""), RequestEncoding::Identity, |e| {
                matches!(e, E::TooLarge { len: 2048, limit: 1024 })
            }),
            ("compressed, no encoding", prefixed(1, 5, b"hello"), RequestEncoding::Identity, |e| {
                matches!(e, E::CompressedWithoutEncoding)
            }),
            ("bad flag", prefixed(2, 5, b"hello"), RequestEncoding::Gzip, |e| {
                matches!(e, E::InvalidFlag(2))
            }),
            ("not gzip", prefixed(1, 5, b"hello"), RequestEncoding::Gzip, |e| {
                matches!(e, E::Gzip(_))
            }),
            (
                "truncated gzip",
                prefixed(1, zipped.len() / 2, &zipped[..zipped.len() / 2]),
                RequestEncoding::Gzip,
                |e| matches!(e, E::Gzip(_)),
            ),
            ("inflates past the limit", prefixed(1, bomb.len(), &bomb), RequestEncoding::Gzip, |e| {
                matches!(e, E::InflatesTooLarge { limit: 1024 })
            }),
        ];
        for (what, body, encoding, is) in cases {
            let e = read(body, encoding).await.unwrap_err();
            assert!(is(&e), "{what}: {e:?}");
        }
    }

    #[test]
    fn encodings_from_headers() {
        let with = |v: Option<&'static str>| {
            let mut h = HeaderMap::new();
            if let Some(v) = v {
                h.insert("grpc-encoding", http::HeaderValue::from_static(v));
            }
            RequestEncoding::from_headers(&h)
        };
        assert_eq!(with(None), Some(RequestEncoding::Identity));
        assert_eq!(with(Some("identity")), Some(RequestEncoding::Identity));
        assert_eq!(with(Some("gzip")), Some(RequestEncoding::Gzip));
        assert_eq!(with(Some("zstd")), None);
    }
}
