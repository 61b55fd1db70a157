//! Reading spans from their bytes against decoding them: the same view of every span, the same
//! counts and the same error-group records.

use std::time::Duration;

use authwatch_core::otlp::collector::trace::v1::ExportTraceServiceRequest;
use authwatch_core::otlp::common::v1::{any_value, AnyValue, ArrayValue, KeyValue};
use authwatch_core::otlp::trace::v1::span::Event;
use authwatch_core::otlp::trace::v1::{Span, Status};
use authwatch_core::wire::raw::{put_len_field, put_varint};
use authwatch_core::{ConnectorContext, Router, Settings};
use authwatch_loadgen::spans::Generator;
use authwatch_testkit::{kv, kv_int, Sink};
use prost::Message;

use super::classify::{SpanFacts, SpanView};
use super::encoded;
use super::state::State;
use authwatch_core::time::Clock;
use super::*;

fn any(v: any_value::Value) -> Option<AnyValue> {
    Some(AnyValue { value: Some(v) })
}

/// Spans that exercise every attribute the view reads, in the forms SDKs send them.
fn odd_spans() -> Vec<Span> {
    let base = Generator::new(3).request(1).resource_spans[0].scope_spans[0].spans[0].clone();
    let mut out = Vec::new();
    let mut s = base.clone();
    s.attributes.push(kv("http.status_code", "503"));
    s.attributes.push(KeyValue {
        key: "http.response.status_code".into(),
        value: any(any_value::Value::DoubleValue(429.0)),
        ..Default::default()
    });
    out.push(s);
    let mut s = base.clone();
    s.attributes.push(kv("server.address", "other.example.com"));
    s.attributes.push(KeyValue {
        key: "server.address".into(),
        value: any(any_value::Value::ArrayValue(ArrayValue::default())),
        ..Default::default()
    });
    s.attributes.push(kv("synthetic.check", "login"));
    s.parent_span_id = vec![];
    out.push(s);
    let mut s = base.clone();
    s.events.push(Event {
        name: "exception".into(),
        attributes: vec![
            KeyValue { key: "exception.type".into(), value: None, ..Default::default() },
            kv("exception.type", "TimeoutError"),
            kv("oauth.error", "invalid_grant"),
        ],
        ..Default::default()
    });
    s.events.push(Event {
        attributes: vec![kv("exception.type", "Later"), kv("auth0.error", "too_late")],
        ..Default::default()
    });
    s.status = Some(Status { message: "x".into(), code: 2 });
    s.end_time_unix_nano = s.start_time_unix_nano.saturating_sub(5);
    out.push(s);
    let mut s = base;
    s.attributes.push(kv_int("rpc.grpc.status_code", 14));
    s.attributes.push(kv("rpc.service", "auth.v1.Tokens"));
    s.attributes.push(kv("url.template", "/users/{id}"));
    s.attributes.push(kv("peer.service", "auth0"));
    s.kind = 2;
    out.push(s);
    out
}

#[test]
fn the_view_of_encoded_spans_is_the_view_of_decoded_ones() {
    let mut spans = odd_spans();
    let mut g = Generator::new(11);
    for _ in 0..8 {
        spans.extend(g.request(64).resource_spans[0].scope_spans[0].spans.clone());
    }
    for (i, span) in spans.iter().enumerate() {
        let bytes = span.encode_to_vec();
        let (view, facts) = encoded::span(&bytes).expect("valid span");
        assert_eq!(view, SpanView::of(span), "span #{i}");
        assert_eq!(facts, SpanFacts::of(span), "span #{i}");
    }
}

/// Bytes a naive reader would get wrong: duplicate keys, values and statuses, and a resource
/// written in two parts after the spans.
#[test]
fn duplicate_fields_are_read_as_prost_reads_them() {
    let mut kv_bytes = Vec::new();
    put_len_field(&mut kv_bytes, 1, b"server.address");
    let mut v1 = Vec::new();
    put_len_field(&mut v1, 1, b"first.example.com");
    put_len_field(&mut kv_bytes, 2, &v1);
    let mut v2 = Vec::new();
    put_varint(&mut v2, 3 << 3); // int_value: replaces the string
    put_varint(&mut v2, 7);
    put_varint(&mut v2, 1 << 3 | 2);
    put_varint(&mut v2, 4);
    v2.extend_from_slice(b"last"); // then a string again: this one wins
    put_len_field(&mut kv_bytes, 2, &v2);

    let mut span = Generator::new(5).request(1).resource_spans[0].scope_spans[0].spans[0]
        .encode_to_vec();
    put_len_field(&mut span, 9, &kv_bytes);
    let mut status = Vec::new();
    put_varint(&mut status, 3 << 3);
    put_varint(&mut status, 2);
    put_len_field(&mut span, 15, &status);
    let mut status = Vec::new();
    put_varint(&mut status, 3 << 3);
    put_varint(&mut status, 1);
    put_len_field(&mut span, 15, &status);

    let mut ss = Vec::new();
    put_len_field(&mut ss, 2, &span);
    let mut rs = Vec::new();
    put_len_field(&mut rs, 2, &ss);
    let mut res = Vec::new();
    put_len_field(&mut res, 1, &kv("host.name", "a").encode_to_vec());
    put_len_field(&mut rs, 1, &res);
    let mut res = Vec::new();
    put_len_field(&mut res, 1, &kv("service.name", "late-service").encode_to_vec());
    put_len_field(&mut rs, 1, &res);
    let mut req = Vec::new();
    put_len_field(&mut req, 1, &rs);

    let decoded = ExportTraceServiceRequest::decode(&req[..]).unwrap();
    let span = &decoded.resource_spans[0].scope_spans[0].spans[0];
    let span_bytes = ss_span(&req);
    let (view, facts) = encoded::span(&span_bytes).unwrap();
    assert_eq!(view, SpanView::of(span));
    assert_eq!(view.server_address, Some("last"));
    assert!(!view.status_error, "the later status says OK");
    assert_eq!(facts, SpanFacts::of(span));
    let rs = encoded::messages(&req, 1).next().unwrap().unwrap();
    assert_eq!(encoded::service_name(rs), Some(Some("late-service")));
}

/// The first span's bytes of a one-span request.
fn ss_span(req: &[u8]) -> Vec<u8> {
    let rs = encoded::messages(req, 1).next().unwrap().unwrap();
    let ss = encoded::messages(rs, 2).next().unwrap().unwrap();
    encoded::messages(ss, 2).next().unwrap().unwrap().to_vec()
}

#[test]
fn counts_and_records_from_bytes_equal_those_from_decoded_spans() {
    let cfg = Config::default();
    let clock = Clock::new();
    let (mut owned, mut bytes) = (State::new(&cfg, clock), State::new(&cfg, clock));
    let mut g = Generator::new(42);
    let mut records = 0;
    for i in 0..40u64 {
        let mut req = g.request(128);
        if i % 5 == 0 {
            req.resource_spans[0].scope_spans[0].spans.extend(odd_spans());
        }
        if i % 7 == 0 {
            req.resource_spans[0].resource = None;
        }
        let now = Duration::from_secs(i * 20);
        let a = owned.record_traces(&req, now);
        let b = bytes
            .record_traces_encoded(&req.encode_to_vec(), now)
            .expect("valid request");
        assert_eq!(a, b, "request #{i}");
        records += a.len();
    }
    assert!(records > 10, "error groups were exercised: {records}");
    let now = Duration::from_secs(800);
    assert_eq!(owned.metrics(now), bytes.metrics(now));
}

#[test]
fn bytes_that_are_not_a_request_are_refused() {
    let mut st = State::new(&Config::default(), Clock::new());
    let mut req = Generator::new(1).request(4).encode_to_vec();
    req.truncate(req.len() - 2);
    assert!(st.record_traces_encoded(&req, Duration::ZERO).is_none());
}

#[tokio::test]
async fn the_connector_takes_bytes() {
    let metrics = Sink::new();
    let mut next = Router::new();
    next.set(SignalKind::Metrics, metrics.shared());
    let settings = Settings::new("error_rate".parse().unwrap());
    let built = Config::default()
        .build(ConnectorContext { settings, next })
        .await
        .unwrap();
    assert!(built.consumer.wants_encoded());
    let req = Generator::new(9).request(100);
    let enc = authwatch_core::Encoded::encode(&Signal::Traces(req));
    built.consumer.consume(Signal::Encoded(enc)).await.unwrap();
    let logs = authwatch_core::Encoded::encode(&authwatch_testkit::log_signal(0, 1));
    let r = built.consumer.consume(Signal::Encoded(logs)).await;
    assert!(matches!(r, Err(ConsumeError::Permanent(_))), "{r:?}");
}

/// The in-place read of the usual `KeyValue` layout gives what the field-by-field read gives,
/// on every encoding prost writes and on every one-byte change and cut of them; it reads the
/// usual layout itself.
#[test]
fn the_key_value_fast_path_agrees_with_the_field_reader() {
    let values = [
        any_value::Value::StringValue("https://tenant.auth0.com/oauth/token".into()),
        any_value::Value::StringValue(String::new()),
        any_value::Value::StringValue("x".repeat(300)),
        any_value::Value::IntValue(200),
        any_value::Value::IntValue(0),
        any_value::Value::IntValue(-1),
        any_value::Value::IntValue(i64::MAX),
        any_value::Value::DoubleValue(0.25),
        any_value::Value::BoolValue(true),
        any_value::Value::BytesValue(vec![1, 2, 3]),
    ];
    let mut fast = 0;
    for (i, v) in values.into_iter().enumerate() {
        let key = if i % 2 == 0 { "url.full" } else { &"k".repeat(200) };
        let canonical = KeyValue {
            key: key.into(),
            value: any(v),
            ..Default::default()
        }
        .encode_to_vec();
        let mut variants = vec![canonical.clone()];
        for at in 0..canonical.len() {
            variants.push(canonical[..at].to_vec());
            for flip in [0x01, 0x80, 0xff] {
                let mut b = canonical.clone();
                b[at] ^= flip;
                variants.push(b);
            }
        }
        for b in &variants {
            if let Some(kv) = encoded::canonical_key_value(b) {
                assert_eq!(Some(kv), encoded::key_value_by_fields(b), "{b:02x?}");
            }
        }
        if encoded::canonical_key_value(&canonical).is_some() {
            fast += 1;
        }
    }
    // Strings, ints whose varint fits 9 bytes (i64::MAX does, -1 takes 10), doubles and bools
    // take the fast path; -1 and bytes values do not.
    assert_eq!(fast, 8, "encodings read in place");
}
