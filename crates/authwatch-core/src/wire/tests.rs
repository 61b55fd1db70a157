use super::*;
use crate::otlp::collector::logs::v1::ExportLogsServiceRequest;
use crate::otlp::collector::trace::v1::ExportTraceServiceRequest;
use crate::otlp::common::v1::{
    any_value, AnyValue, ArrayValue, InstrumentationScope, KeyValue, KeyValueList,
};
use crate::otlp::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use crate::otlp::resource::v1::Resource;
use crate::otlp::trace::v1::span::{Event, Link};
use crate::otlp::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
use crate::signal::{log_record_count, span_count, Signal};
use prost::Message;

fn kv(key: &str, value: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

fn span(i: u8, trace_len: usize, span_len: usize, parent_len: usize) -> Span {
    Span {
        trace_id: vec![i; trace_len],
        span_id: vec![i; span_len],
        parent_span_id: vec![1; parent_len],
        name: format!("POST /oauth/token {i}"),
        kind: 3,
        start_time_unix_nano: 1_700_000_000_000_000_000 + u64::from(i),
        end_time_unix_nano: 1_700_000_000_100_000_000,
        attributes: vec![
            kv(
                "http.request.method",
                any_value::Value::StringValue("POST".into()),
            ),
            kv("http.response.status_code", any_value::Value::IntValue(429)),
            kv("ratio", any_value::Value::DoubleValue(0.5)),
            kv("ok", any_value::Value::BoolValue(false)),
            kv("raw", any_value::Value::BytesValue(vec![0, 255])),
            kv(
                "list",
                any_value::Value::ArrayValue(ArrayValue {
                    values: vec![AnyValue {
                        value: Some(any_value::Value::KvlistValue(KeyValueList {
                            values: vec![kv("k", any_value::Value::StringValue("v".into()))],
                        })),
                    }],
                }),
            ),
        ],
        events: vec![Event {
            time_unix_nano: 5,
            name: "exception".into(),
            attributes: vec![kv(
                "exception.type",
                any_value::Value::StringValue("E".into()),
            )],
            dropped_attributes_count: 1,
        }],
        links: vec![Link {
            trace_id: vec![2; 16],
            span_id: vec![2; 8],
            trace_state: "a=b".into(),
            flags: 1,
            ..Default::default()
        }],
        status: Some(Status {
            message: "too many requests".into(),
            code: 2,
        }),
        flags: 0x100,
        ..Default::default()
    }
}

fn traces(spans: Vec<Span>) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![kv(
                    "service.name",
                    any_value::Value::StringValue("checkout".into()),
                )],
                ..Default::default()
            }),
            scope_spans: vec![
                ScopeSpans {
                    scope: Some(InstrumentationScope {
                        name: "reqwest".into(),
                        version: "0.12".into(),
                        ..Default::default()
                    }),
                    spans,
                    schema_url: "https://opentelemetry.io/schemas/1.26.0".into(),
                },
                ScopeSpans::default(),
            ],
            schema_url: String::new(),
        }],
    }
}

fn logs(records: Vec<LogRecord>) -> ExportLogsServiceRequest {
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            scope_logs: vec![ScopeLogs {
                log_records: records,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

/// The walk and prost agree on `bytes`: both accept (with the same counts) or both refuse.
fn agree(kind: SignalKind, bytes: &[u8]) {
    let walked = check(kind, bytes).expect("traces and logs are walked");
    match kind {
        SignalKind::Traces => match (ExportTraceServiceRequest::decode(bytes), walked) {
            (Ok(r), Ok(s)) => assert_eq!(s.items, span_count(&r), "span count"),
            (Err(_), Err(_)) => {}
            (p, w) => panic!("prost {p:?} but walk {w:?} on {bytes:?}"),
        },
        SignalKind::Logs => match (ExportLogsServiceRequest::decode(bytes), walked) {
            (Ok(r), Ok(s)) => assert_eq!(s.items, log_record_count(&r), "log record count"),
            (Err(_), Err(_)) => {}
            (p, w) => panic!("prost {p:?} but walk {w:?} on {bytes:?}"),
        },
        SignalKind::Metrics => unreachable!(),
    }
}

#[test]
fn counts_items_of_a_realistic_request() {
    let req = traces((0..5).map(|i| span(i, 16, 8, 8)).collect());
    let bytes = req.encode_to_vec();
    let s = check(SignalKind::Traces, &bytes).unwrap().unwrap();
    assert_eq!(
        s,
        Summary {
            items: 5,
            invalid: 0
        }
    );
    let e = Encoded::new(SignalKind::Traces, bytes.into(), s.items);
    assert_eq!(e.decode().unwrap(), Signal::Traces(req));
}

#[test]
fn counts_invalid_ids_as_the_receiver_defines_them() {
    let req = traces(vec![
        span(1, 16, 8, 0), // root span: valid
        span(2, 15, 8, 8), // short trace id
        span(3, 16, 0, 8), // no span id
        span(4, 16, 8, 3), // odd parent
        span(5, 16, 8, 8), // valid
    ]);
    let s = check(SignalKind::Traces, &req.encode_to_vec())
        .unwrap()
        .unwrap();
    assert_eq!(
        s,
        Summary {
            items: 5,
            invalid: 3
        }
    );

    let rec = |t: usize, sp: usize| LogRecord {
        trace_id: vec![1; t],
        span_id: vec![1; sp],
        body: Some(AnyValue {
            value: Some(any_value::Value::StringValue("login failed".into())),
        }),
        ..Default::default()
    };
    let req = logs(vec![
        rec(0, 0),
        rec(16, 8),
        rec(16, 0),
        rec(3, 8),
        rec(16, 7),
    ]);
    let s = check(SignalKind::Logs, &req.encode_to_vec())
        .unwrap()
        .unwrap();
    assert_eq!(
        s,
        Summary {
            items: 5,
            invalid: 2
        }
    );
}

#[test]
fn concatenated_requests_are_one_request() {
    let a = traces(vec![span(1, 16, 8, 0)]).encode_to_vec();
    let b = traces(vec![span(2, 16, 8, 0), span(3, 16, 8, 0)]).encode_to_vec();
    let joined = [a, b].concat();
    let s = check(SignalKind::Traces, &joined).unwrap().unwrap();
    assert_eq!(s.items, 3);
    let r = ExportTraceServiceRequest::decode(&joined[..]).unwrap();
    assert_eq!(r.resource_spans.len(), 2);
}

#[test]
fn agrees_with_prost_on_every_truncation_and_byte_flip() {
    let t = traces(vec![span(1, 16, 8, 8), span(2, 16, 8, 0)]).encode_to_vec();
    let l = logs(vec![LogRecord {
        severity_text: "ERROR".into(),
        event_name: "login".into(),
        attributes: vec![kv("a", any_value::Value::IntValue(-1))],
        ..Default::default()
    }])
    .encode_to_vec();
    for (kind, bytes) in [(SignalKind::Traces, t), (SignalKind::Logs, l)] {
        for cut in 0..bytes.len() {
            agree(kind, &bytes[..cut]);
        }
        for i in 0..bytes.len() {
            for flip in [0x01, 0x02, 0x04, 0x07, 0x80, 0xff] {
                let mut m = bytes.clone();
                m[i] ^= flip;
                agree(kind, &m);
            }
        }
    }
}

#[test]
fn agrees_with_prost_on_nesting_depth() {
    // Request, resource spans, scope spans, span, key-value, value: 6 levels; each array adds 2.
    let mut verdicts = std::collections::BTreeSet::new();
    for depth in 40..56 {
        let mut v = AnyValue {
            value: Some(any_value::Value::IntValue(1)),
        };
        for _ in 0..depth {
            v = AnyValue {
                value: Some(any_value::Value::ArrayValue(ArrayValue { values: vec![v] })),
            };
        }
        let mut s = span(1, 16, 8, 0);
        s.attributes = vec![KeyValue {
            key: "deep".into(),
            value: Some(v),
            ..Default::default()
        }];
        let bytes = traces(vec![s]).encode_to_vec();
        agree(SignalKind::Traces, &bytes);
        verdicts.insert(ExportTraceServiceRequest::decode(&bytes[..]).is_ok());
    }
    assert_eq!(verdicts.len(), 2, "the depths tried straddle the limit");
}

#[test]
fn agrees_with_prost_on_unknown_fields_groups_and_bad_strings() {
    let base = traces(vec![span(1, 16, 8, 0)]).encode_to_vec();
    let cases: Vec<Vec<u8>> = vec![
        // Unknown top-level fields of every wire type, a group included.
        [
            base.clone(),
            vec![
                0x10, 0x05, 0x19, 1, 2, 3, 4, 5, 6, 7, 8, 0x25, 1, 2, 3, 4, 0x2a, 0,
            ],
        ]
        .concat(),
        [base.clone(), vec![0x33, 0x08, 0x01, 0x34]].concat(),
        // A group whose end tag does not match, and a stray end-group.
        [base.clone(), vec![0x33, 0x08, 0x01, 0x3c]].concat(),
        [base.clone(), vec![0x34]].concat(),
        // Field 1 (resource_spans) with the varint wire type.
        vec![0x08, 0x01],
        // A string (schema_url of ResourceSpans) that is not UTF-8.
        vec![0x0a, 0x04, 0x1a, 0x02, 0xc3, 0x28],
        // Field number 0; wire types 6 and 7.
        vec![0x02, 0x00],
        vec![0x0e],
        vec![0x0f],
        // An over-long varint and one that overflows u64.
        vec![
            0x10, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01,
        ],
        vec![
            0x10, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x02,
        ],
        vec![
            0x10, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01,
        ],
        // A key above u32::MAX.
        vec![0x80, 0x80, 0x80, 0x80, 0x10, 0x00],
        vec![],
    ];
    for c in cases {
        agree(SignalKind::Traces, &c);
        agree(SignalKind::Logs, &c);
    }
}

#[test]
fn metrics_are_not_walked() {
    assert!(check(SignalKind::Metrics, &[]).is_none());
}

#[test]
fn signal_conversions_round_trip() {
    let req = traces(vec![span(1, 16, 8, 0), span(2, 16, 8, 0)]);
    let signal = Signal::Traces(req.clone());
    let encoded = signal.clone().into_encoded();
    assert_eq!(encoded.kind(), SignalKind::Traces);
    assert_eq!(encoded.item_count(), 2);
    assert_eq!(encoded.clone().into_decoded().unwrap(), signal);
    assert_eq!(
        encoded.to_encoded().bytes(),
        &Bytes::from(req.encode_to_vec())
    );
    let broken = Signal::Encoded(Encoded::new(
        SignalKind::Traces,
        Bytes::from_static(&[0x08]),
        1,
    ));
    let err = broken.into_decoded().unwrap_err();
    assert_eq!(err.kind, SignalKind::Traces);
    assert!(matches!(
        crate::ConsumeError::from(err),
        crate::ConsumeError::Permanent(crate::PermanentError::Decode(_))
    ));
}
