//! The wire check (`authwatch_core::wire::check`) against prost: for trace and log requests the
//! allocation-free walk must accept exactly what prost's decoder accepts, count the same items,
//! and count as invalid exactly the items the receiver drops. A request the walk passes is
//! forwarded without being decoded, so any disagreement would let undecodable bytes through (or
//! refuse good ones).
#![no_main]

use authwatch_core::otlp::collector::logs::v1::ExportLogsServiceRequest;
use authwatch_core::otlp::collector::trace::v1::ExportTraceServiceRequest;
use authwatch_core::signal::{log_record_count, span_count};
use authwatch_core::wire::{check, Summary};
use authwatch_core::SignalKind;
use libfuzzer_sys::fuzz_target;
use prost::Message;

fuzz_target!(|data: &[u8]| {
    let Some((&which, body)) = data.split_first() else {
        return;
    };
    let kind = if which % 2 == 0 {
        SignalKind::Traces
    } else {
        SignalKind::Logs
    };
    let walked = check(kind, body).expect("traces and logs are walked");
    match kind {
        SignalKind::Traces => match (ExportTraceServiceRequest::decode(body), walked) {
            (Ok(r), Ok(s)) => assert_eq!(s, summary_of_traces(&r)),
            (Err(_), Err(_)) => {}
            (p, w) => panic!("prost {p:?} but the walk {w:?}"),
        },
        _ => match (ExportLogsServiceRequest::decode(body), walked) {
            (Ok(r), Ok(s)) => assert_eq!(s, summary_of_logs(&r)),
            (Err(_), Err(_)) => {}
            (p, w) => panic!("prost {p:?} but the walk {w:?}"),
        },
    }
});

fn summary_of_traces(r: &ExportTraceServiceRequest) -> Summary {
    let invalid = r
        .resource_spans
        .iter()
        .flat_map(|rs| &rs.scope_spans)
        .flat_map(|ss| &ss.spans)
        .filter(|s| {
            !(s.trace_id.len() == 16
                && s.span_id.len() == 8
                && (s.parent_span_id.is_empty() || s.parent_span_id.len() == 8))
        })
        .count();
    Summary {
        items: span_count(r),
        invalid,
    }
}

fn summary_of_logs(r: &ExportLogsServiceRequest) -> Summary {
    let invalid = r
        .resource_logs
        .iter()
        .flat_map(|rl| &rl.scope_logs)
        .flat_map(|sl| &sl.log_records)
        .filter(|l| {
            !((l.trace_id.is_empty() || l.trace_id.len() == 16)
                && (l.span_id.is_empty() || l.span_id.len() == 8))
        })
        .count();
    Summary {
        items: log_record_count(r),
        invalid,
    }
}
