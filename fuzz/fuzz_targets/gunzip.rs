//! The OTLP/HTTP receiver's gunzip (`Content-Encoding: gzip`): inflating with a cap on the
//! output. The first two bytes pick the limit (0 to 65,535 bytes) and the third how the rest is
//! used: as the body itself (hostile gzip, held to an uncapped reference inflate), or as
//! plaintext that is compressed into one or two members and then sent whole, cut short, or with
//! one byte changed.
//!
//! Invariants: no panic; never more than `limit` bytes out; a body that inflates within the
//! limit gives exactly the reference's bytes; one that inflates beyond it is `TooLarge`; one
//! the reference refuses is refused (as `TooLarge` only when it passed the limit first).
#![no_main]

use std::io::{Read, Write};

use authwatch_receiver::fuzzing::{gunzip_capped, Gunzip};
use flate2::write::GzEncoder;
use flate2::Compression;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let [l0, l1, mode, rest @ ..] = data else {
        return;
    };
    let limit = usize::from(u16::from_le_bytes([*l0, *l1]));
    let body = match mode % 5 {
        0 => rest.to_vec(),
        1 => gzip(&[rest]),
        2 => {
            let (a, b) = rest.split_at(rest.len() / 2);
            gzip(&[a, b])
        }
        3 => {
            // Cut short at a point taken from the plaintext's first byte.
            let z = gzip(&[rest]);
            let at = rest.first().map_or(0, |b| usize::from(*b) * z.len() / 256);
            z[..at].to_vec()
        }
        _ => {
            // One byte changed, at a point and to a value taken from the plaintext.
            let mut z = gzip(&[rest]);
            if let [p, v, ..] = rest {
                let at = usize::from(*p) * z.len() / 256;
                z[at] ^= v | 1;
            }
            z
        }
    };

    let ours = gunzip_capped(&body, limit);
    if let Ok(out) = &ours {
        assert!(out.len() <= limit, "{} bytes out, limit {limit}", out.len());
    }
    // The reference: inflate every member without a cap (a fuzz input of a few KiB inflates to
    // a few MiB at most: deflate's ratio is bounded near 1032:1).
    let mut reference = Vec::new();
    let refused = flate2::read::MultiGzDecoder::new(&body[..])
        .read_to_end(&mut reference)
        .err();
    match (refused, &ours) {
        (None, Ok(out)) => assert_eq!(out, &reference, "a body within the limit comes out whole"),
        (None, Err(Gunzip::TooLarge)) => assert!(
            reference.len() > limit,
            "TooLarge, but it inflates to {} bytes (limit {limit})",
            reference.len()
        ),
        (None, Err(Gunzip::Invalid(e))) => {
            panic!("refused ({e}), but it inflates to {} bytes", reference.len())
        }
        (Some(e), Ok(out)) => panic!("accepted {} bytes, but the reference refuses: {e}", out.len()),
        (Some(_), Err(Gunzip::Invalid(_))) => {}
        (Some(e), Err(Gunzip::TooLarge)) => {
            // A read that fails returns none of what it inflated before the fault, so count
            // byte by byte how far the reference gets (at most `limit + 1` bytes).
            let before_fault = flate2::read::MultiGzDecoder::new(&body[..])
                .bytes()
                .take(limit + 1)
                .take_while(Result::is_ok)
                .count();
            assert!(
                before_fault > limit,
                "TooLarge, but the reference inflates {before_fault} bytes before: {e}"
            );
        }
    }
    if matches!(mode % 5, 1 | 2) {
        assert!(
            ours.as_deref() == Ok(rest) || (rest.len() > limit && ours == Err(Gunzip::TooLarge)),
            "a well-formed body of {} bytes (limit {limit}) gave {:?}",
            rest.len(),
            ours.as_ref().map(Vec::len)
        );
    }
});

/// `parts` compressed as consecutive gzip members.
fn gzip(parts: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for part in parts {
        let mut z = GzEncoder::new(Vec::new(), Compression::fast());
        z.write_all(part).expect("writes to a Vec do not fail");
        out.extend(z.finish().expect("writes to a Vec do not fail"));
    }
    out
}
