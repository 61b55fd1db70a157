//! OTLP/JSON: the receiver's decoding (`Export::from_json`, with the metrics check of
//! `otlp/json.rs`), then its invalid-item dropping. The first byte picks the signal.
//!
//! Invariants: a metrics request the receiver accepts is exactly what plain serde decodes from the
//! same JSON tree (the check only refuses, never changes), and an accepted request survives JSON and protobuf
//! encode -> decode.
#![no_main]

use authwatch_core::otlp::collector::metrics::v1::ExportMetricsServiceRequest;
use authwatch_core::SignalKind;
use authwatch_receiver::fuzzing::{otlp_drop_invalid, otlp_from_json, OtlpRequest};
use libfuzzer_sys::fuzz_target;
use prost::Message;
use serde::Deserialize;

fuzz_target!(|data: &[u8]| {
    let Some((&which, body)) = data.split_first() else {
        return;
    };
    let kind = match which % 3 {
        0 => SignalKind::Traces,
        1 => SignalKind::Metrics,
        _ => SignalKind::Logs,
    };
    let Ok(mut req) = otlp_from_json(kind, body) else {
        return;
    };
    match &req {
        OtlpRequest::Traces(r) => round_trip(r),
        OtlpRequest::Metrics(r) => {
            // Through a JSON tree first, as the receiver reads it: a repeated key counts once
            // (the last), where plain serde would refuse it or drop the enclosing data.
            let tree: serde_json::Value = serde_json::from_slice(body).expect("the body is JSON");
            let plain = ExportMetricsServiceRequest::deserialize(&tree)
                .expect("plain serde accepts what the receiver accepts");
            assert_eq!(
                plain.encode_to_vec(),
                r.encode_to_vec(),
                "the check only refuses"
            );
            round_trip(r);
        }
        OtlpRequest::Logs(r) => round_trip(r),
    }
    let rejected = otlp_drop_invalid(&mut req);
    assert!(
        rejected.is_none_or(|r| r.count > 0),
        "no empty partial success"
    );
    assert!(
        otlp_drop_invalid(&mut req).is_none(),
        "dropping is idempotent"
    );
});

/// JSON encode -> decode and protobuf encode -> decode both keep the request (compared as
/// protobuf bytes, so that NaN values compare equal). Doubles survive the JSON trip exactly
/// because serde_json is built with `float_roundtrip` (without it, a long decimal such as
/// `2222...221.5`, 112 digits, came back one ULP off).
fn round_trip<R>(r: &R)
where
    R: Message + Default + serde::Serialize + serde::de::DeserializeOwned,
{
    let bytes = r.encode_to_vec();
    let json = serde_json::to_vec(r).expect("a decoded request encodes as JSON");
    let again: R = serde_json::from_slice(&json).unwrap_or_else(|e| {
        panic!(
            "the JSON encoding decodes: {e}\n{}",
            String::from_utf8_lossy(&json)
        )
    });
    assert_eq!(
        again.encode_to_vec(),
        bytes,
        "JSON encode -> decode keeps the request"
    );
    let again = R::decode(bytes.as_slice()).expect("the protobuf encoding decodes");
    assert_eq!(again.encode_to_vec(), bytes);
}
