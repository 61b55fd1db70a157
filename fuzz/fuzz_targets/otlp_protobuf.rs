//! OTLP protobuf: prost decode of an export request (the first byte picks traces, metrics or
//! logs), the encode -> decode round trip, then the receiver's invalid-item dropping.
#![no_main]

use authwatch_core::otlp::collector::logs::v1::ExportLogsServiceRequest;
use authwatch_core::otlp::collector::metrics::v1::ExportMetricsServiceRequest;
use authwatch_core::otlp::collector::trace::v1::ExportTraceServiceRequest;
use authwatch_receiver::fuzzing::{otlp_drop_invalid, OtlpRequest};
use libfuzzer_sys::fuzz_target;
use prost::Message;

fuzz_target!(|data: &[u8]| {
    let Some((&which, body)) = data.split_first() else {
        return;
    };
    let req = match which % 3 {
        0 => decode::<ExportTraceServiceRequest>(body).map(OtlpRequest::Traces),
        1 => decode::<ExportMetricsServiceRequest>(body).map(OtlpRequest::Metrics),
        _ => decode::<ExportLogsServiceRequest>(body).map(OtlpRequest::Logs),
    };
    let Some(mut req) = req else {
        return;
    };
    let before = items(&req);
    let rejected = otlp_drop_invalid(&mut req);
    let after = items(&req);
    assert_eq!(
        before - after,
        rejected.as_ref().map_or(0, |r| r.count),
        "the rejected count is what was dropped"
    );
    assert!(
        rejected.is_none_or(|r| r.count > 0),
        "no empty partial success"
    );
    assert_all_valid(&req);
    assert!(
        otlp_drop_invalid(&mut req).is_none(),
        "dropping is idempotent"
    );
});

/// Decodes, and checks that re-encoding is stable: decode(encode(x)) encodes to the same bytes
/// (bytes, not `==`, so that NaN values compare equal).
fn decode<R: Message + Default>(body: &[u8]) -> Option<R> {
    let req = R::decode(body).ok()?;
    let encoded = req.encode_to_vec();
    assert_eq!(encoded.len(), req.encoded_len());
    let again = R::decode(encoded.as_slice()).expect("an encoded request decodes");
    assert_eq!(
        again.encode_to_vec(),
        encoded,
        "encode -> decode -> encode is stable"
    );
    Some(req)
}

fn items(req: &OtlpRequest) -> usize {
    match req {
        OtlpRequest::Traces(r) => r
            .resource_spans
            .iter()
            .flat_map(|r| &r.scope_spans)
            .map(|s| s.spans.len())
            .sum(),
        OtlpRequest::Metrics(r) => r
            .resource_metrics
            .iter()
            .flat_map(|r| &r.scope_metrics)
            .map(|s| s.metrics.len())
            .sum(),
        OtlpRequest::Logs(r) => r
            .resource_logs
            .iter()
            .flat_map(|r| &r.scope_logs)
            .map(|s| s.log_records.len())
            .sum(),
    }
}

/// What the OTLP spec calls valid ids survive; nothing else does.
fn assert_all_valid(req: &OtlpRequest) {
    match req {
        OtlpRequest::Traces(r) => {
            for s in r
                .resource_spans
                .iter()
                .flat_map(|r| &r.scope_spans)
                .flat_map(|s| &s.spans)
            {
                assert_eq!(s.trace_id.len(), 16);
                assert_eq!(s.span_id.len(), 8);
                assert!(s.parent_span_id.is_empty() || s.parent_span_id.len() == 8);
            }
        }
        OtlpRequest::Metrics(_) => {}
        OtlpRequest::Logs(r) => {
            for l in r
                .resource_logs
                .iter()
                .flat_map(|r| &r.scope_logs)
                .flat_map(|s| &s.log_records)
            {
                assert!(l.trace_id.is_empty() || l.trace_id.len() == 16);
                assert!(l.span_id.is_empty() || l.span_id.len() == 8);
            }
        }
    }
}
