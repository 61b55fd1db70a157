//! The encoded walk against the owned traversal: for any request, decoding what the walk wrote
//! gives what redacting the decoded request gives, with the same counts.

use authwatch_core::otlp::collector::logs::v1::ExportLogsServiceRequest;
use authwatch_core::otlp::collector::trace::v1::ExportTraceServiceRequest;
use authwatch_core::otlp::common::v1::any_value::Value;
use authwatch_core::otlp::common::v1::{AnyValue, ArrayValue, KeyValue, KeyValueList};
use authwatch_core::otlp::trace::v1::span::{Event, Link};
use authwatch_core::otlp::trace::v1::Status;
use authwatch_core::config::REDACTED;
use authwatch_core::registry::decode_config;
use authwatch_core::wire::raw::put_len_field;
use authwatch_core::SignalKind;
use authwatch_testkit::{kv, kv_int, logs, traces, Sink};
use prost::Message;

use super::encoded::NeedsDecode;
use super::rules::{Counts, Redactor};
use super::tests::processor;
use super::*;

const JWT: &str = "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4ifQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c";

/// xorshift64*: reproducible requests without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[self.below(xs.len())]
    }
}

const KEYS: &[&str] = &[
    "url.full",
    "http.request.header.authorization",
    "Cookie",
    "db.password",
    "x-api-key",
    "server.address",
    "http.request.header.x-trace",
    "allowed.password",
    "message",
    "",
];

fn texts() -> Vec<String> {
    vec![
        String::new(),
        "plain text".into(),
        "https://h.example.com/p?access_token=t0k&x=1".into(),
        "code=abc".into(),
        format!("bad token {JWT}"),
        "Bearer abcdefgh12345".into(),
        "Basic authentication failed".into(),
        r#"{"client_secret":"s3cr3t","user":"u"}"#.into(),
        REDACTED.into(),
        "card 4111111111111111 declined".into(),
        "a=b&token=".into(),
    ]
}

fn value(rng: &mut Rng, depth: u32) -> AnyValue {
    let texts = texts();
    let v = match rng.below(if depth > 2 { 9 } else { 12 }) {
        0..=5 => Value::StringValue(texts[rng.below(texts.len())].clone()),
        6 => Value::IntValue(rng.next() as i64 % 1000),
        7 => Value::BoolValue(rng.below(2) == 0),
        8 => Value::BytesValue(b"raw-secret".to_vec()),
        9 | 10 => Value::ArrayValue(ArrayValue {
            values: (0..rng.below(3)).map(|_| value(rng, depth + 1)).collect(),
        }),
        _ => Value::KvlistValue(KeyValueList {
            values: attributes(rng, depth + 1, 3),
        }),
    };
    AnyValue { value: Some(v) }
}

fn attributes(rng: &mut Rng, depth: u32, max: usize) -> Vec<KeyValue> {
    (0..rng.below(max + 1))
        .map(|_| KeyValue {
            key: rng.pick(KEYS).to_owned(),
            value: (rng.below(8) != 0).then(|| value(rng, depth)),
            ..Default::default()
        })
        .collect()
}

fn random_traces(rng: &mut Rng) -> ExportTraceServiceRequest {
    let texts = texts();
    let mut req = traces(0, 1 + rng.below(4) as u64);
    for rs in &mut req.resource_spans {
        if let Some(r) = &mut rs.resource {
            r.attributes.extend(attributes(rng, 0, 2));
        }
        for ss in &mut rs.scope_spans {
            if let Some(s) = &mut ss.scope {
                s.attributes.extend(attributes(rng, 0, 1));
            }
            for span in &mut ss.spans {
                span.name = texts[rng.below(texts.len())].clone();
                span.attributes.extend(attributes(rng, 0, 6));
                for _ in 0..rng.below(3) {
                    span.events.push(Event {
                        name: texts[rng.below(texts.len())].clone(),
                        attributes: attributes(rng, 0, 3),
                        ..Default::default()
                    });
                }
                if rng.below(3) == 0 {
                    span.links.push(Link {
                        trace_id: vec![1; 16],
                        span_id: vec![2; 8],
                        attributes: attributes(rng, 0, 2),
                        ..Default::default()
                    });
                }
                if rng.below(2) == 0 {
                    span.status = Some(Status {
                        message: texts[rng.below(texts.len())].clone(),
                        code: 2,
                    });
                }
            }
        }
    }
    req
}

fn random_logs(rng: &mut Rng) -> ExportLogsServiceRequest {
    let mut req = logs(0, 1 + rng.below(4) as u64);
    for rl in &mut req.resource_logs {
        for sl in &mut rl.scope_logs {
            for rec in &mut sl.log_records {
                rec.body = (rng.below(6) != 0).then(|| value(rng, 0));
                rec.attributes.extend(attributes(rng, 0, 5));
            }
        }
    }
    req
}

fn configs() -> Vec<(&'static str, Redactor)> {
    let hash: Config = decode_config(serde_json::json!({
        "action": "hash",
        "allowed_keys": ["allowed.password"],
        "blocked_values": ["4[0-9]{15}"],
    }))
    .unwrap();
    vec![
        ("default", Redactor::new(&Config::default()).unwrap()),
        ("hash", Redactor::new(&hash).unwrap()),
    ]
}

/// The owned result of redacting `req`, and what the walk made of its bytes.
fn both_traces(
    r: &Redactor,
    req: &ExportTraceServiceRequest,
) -> (
    ExportTraceServiceRequest,
    Counts,
    Result<Option<Vec<u8>>, NeedsDecode>,
    Counts,
) {
    let mut owned = req.clone();
    let mut oc = Counts::default();
    r.traces(&mut owned, &mut oc);
    let mut ec = Counts::default();
    let walked = r.encoded_traces(&req.encode_to_vec(), &mut ec);
    (owned, oc, walked, ec)
}

#[test]
fn the_walk_agrees_with_the_owned_rules_on_random_traces() {
    let (mut walked_n, mut unchanged_n, mut decode_n) = (0, 0, 0);
    for (name, r) in configs() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for i in 0..1500 {
            let req = random_traces(&mut rng);
            let (owned, oc, walked, ec) = both_traces(&r, &req);
            match walked {
                Ok(Some(bytes)) => {
                    walked_n += 1;
                    let got = ExportTraceServiceRequest::decode(&bytes[..]).unwrap();
                    assert_eq!(got, owned, "{name} #{i}");
                    assert_eq!(ec, oc, "{name} #{i}: counts");
                }
                Ok(None) => {
                    unchanged_n += 1;
                    assert_eq!(req, owned, "{name} #{i}: the walk missed a secret");
                    assert_eq!(oc.total(), 0, "{name} #{i}");
                }
                // Only a blocked key with a value that is not a plain string, bytes or bool.
                Err(NeedsDecode) => decode_n += 1,
            }
        }
    }
    assert!(walked_n > 500 && unchanged_n > 10 && decode_n > 100, "{walked_n} {unchanged_n} {decode_n}");
}

#[test]
fn the_walk_agrees_with_the_owned_rules_on_random_logs() {
    for (name, r) in configs() {
        let mut rng = Rng(7);
        for i in 0..1500 {
            let req = random_logs(&mut rng);
            let mut owned = req.clone();
            let mut oc = Counts::default();
            r.logs(&mut owned, &mut oc);
            let mut ec = Counts::default();
            match r.encoded_logs(&req.encode_to_vec(), &mut ec) {
                Ok(Some(bytes)) => {
                    let got = ExportLogsServiceRequest::decode(&bytes[..]).unwrap();
                    assert_eq!(got, owned, "{name} #{i}");
                    assert_eq!(ec, oc, "{name} #{i}: counts");
                }
                Ok(None) => assert_eq!(req, owned, "{name} #{i}"),
                Err(NeedsDecode) => {}
            }
        }
    }
}

#[test]
fn nothing_to_redact_is_no_copy() {
    let r = Redactor::new(&Config::default()).unwrap();
    let mut req = traces(0, 3);
    req.resource_spans[0].scope_spans[0].spans[0]
        .attributes
        .push(kv("url.full", "https://example.com/authorize?client_id=x"));
    let mut c = Counts::default();
    assert_eq!(r.encoded_traces(&req.encode_to_vec(), &mut c), Ok(None));
    assert_eq!(c.total(), 0);
}

#[test]
fn blocked_keys_with_structured_values_are_left_to_the_decoder() {
    let r = Redactor::new(&Config::default()).unwrap();
    let mut req = traces(0, 1);
    req.resource_spans[0].scope_spans[0].spans[0]
        .attributes
        .push(kv_int("db.password", 1234));
    let mut c = Counts::default();
    assert_eq!(
        r.encoded_traces(&req.encode_to_vec(), &mut c),
        Err(NeedsDecode)
    );
}

/// Hand-written bytes prost would decode differently from a naive field-by-field reading.
#[test]
fn duplicate_fields_are_read_as_prost_reads_them() {
    let r = Redactor::new(&Config::default()).unwrap();
    let any = |s: &str| {
        let mut b = Vec::new();
        put_len_field(&mut b, 1, s.as_bytes());
        b
    };
    // KeyValue: key "x" first, then key "authorization": prost keeps the last key, so the value
    // is a blocked key's.
    let mut kvb = Vec::new();
    put_len_field(&mut kvb, 1, b"x");
    put_len_field(&mut kvb, 2, &any("hunter2"));
    put_len_field(&mut kvb, 1, b"authorization");
    // And an attribute whose value holds two strings: prost keeps the last; both are redacted.
    let mut kv2 = Vec::new();
    put_len_field(&mut kv2, 1, b"note");
    let mut two = any(&format!("first {JWT}"));
    two.extend(any("second ?code=zz"));
    put_len_field(&mut kv2, 2, &two);
    let mut span = authwatch_testkit::traces(0, 1).resource_spans[0].scope_spans[0].spans[0]
        .encode_to_vec();
    put_len_field(&mut span, 9, &kvb);
    put_len_field(&mut span, 9, &kv2);
    let mut ss = Vec::new();
    put_len_field(&mut ss, 2, &span);
    let mut rs = Vec::new();
    put_len_field(&mut rs, 2, &ss);
    let mut req = Vec::new();
    put_len_field(&mut req, 1, &rs);

    let mut owned = ExportTraceServiceRequest::decode(&req[..]).unwrap();
    r.traces(&mut owned, &mut Counts::default());
    let mut c = Counts::default();
    let walked = r.encoded_traces(&req, &mut c).unwrap().unwrap();
    assert_eq!(ExportTraceServiceRequest::decode(&walked[..]).unwrap(), owned);
    for secret in [&b"hunter2"[..], b"eyJ", b"zz"] {
        assert!(
            !walked.windows(secret.len()).any(|w| w == secret),
            "{} is still in the bytes",
            String::from_utf8_lossy(secret)
        );
    }
}

#[test]
fn bytes_that_are_not_protobuf_are_left_to_the_decoder() {
    let r = Redactor::new(&Config::default()).unwrap();
    let mut bytes = traces(0, 1).encode_to_vec();
    bytes.truncate(bytes.len() - 3);
    assert_eq!(
        r.encoded_traces(&bytes, &mut Counts::default()),
        Err(NeedsDecode)
    );
}

#[tokio::test]
async fn the_processor_keeps_encoded_data_encoded() {
    let sink = Sink::wanting_encoded();
    let (built, telemetry) = processor(&sink).await;
    assert!(
        built.consumer.wants_encoded(),
        "the sink wants bytes, so redaction takes them"
    );

    let clean = Encoded::encode(&Signal::Traces(traces(0, 2)));
    built
        .consumer
        .consume(Signal::Encoded(clean.clone()))
        .await
        .unwrap();

    let mut req = traces(0, 2);
    req.resource_spans[0].scope_spans[0].spans[0]
        .attributes
        .push(kv("http.request.header.authorization", "Bearer x"));
    req.resource_spans[0].scope_spans[0].spans[1]
        .attributes
        .push(kv("url.full", "https://h/?code=a&token=b"));
    let dirty = Encoded::encode(&Signal::Traces(req));
    built
        .consumer
        .consume(Signal::Encoded(dirty))
        .await
        .unwrap();

    // A blocked key with an integer value: decoded, redacted the owned way.
    let mut req = traces(0, 1);
    req.resource_spans[0].scope_spans[0].spans[0]
        .attributes
        .push(kv_int("db.password", 1234));
    built
        .consumer
        .consume(Signal::Encoded(Encoded::encode(&Signal::Traces(req))))
        .await
        .unwrap();

    let got = sink.received();
    assert_eq!(got.len(), 3);
    match &got[0] {
        Signal::Encoded(e) => assert_eq!(
            e.bytes().as_ptr(),
            clean.bytes().as_ptr(),
            "clean bytes are passed on as they are"
        ),
        other => panic!("expected bytes, got {other:?}"),
    }
    let Signal::Encoded(e) = &got[1] else {
        panic!("expected bytes")
    };
    assert_eq!(e.items(), 2);
    let text = format!("{:?}", e.decode().unwrap());
    assert!(!text.contains("Bearer x") && !text.contains("code=a"), "{text}");
    assert!(!format!("{:?}", got[2].clone().into_decoded().unwrap()).contains("1234"));

    let text = telemetry.encode();
    for (rule, n) in [("key", 2), ("query", 2)] {
        let line = format!(
            r#"authwatch_processor_redactions_total{{processor="redaction",pipeline="traces",rule="{rule}"}} {n}"#
        );
        assert!(text.contains(&line), "{line} not in {text}");
    }
}

/// The fuzz target's entry point on requests full of secrets. With `AUTHWATCH_WRITE_FUZZ_SEEDS`
/// set to a folder, the inputs are also written there as seeds for `fuzz/corpus/redaction`
/// (selector byte: even = traces, odd = logs).
#[test]
fn the_fuzzing_entry_point_agrees_on_secret_bearing_requests() {
    let seeds = std::env::var_os("AUTHWATCH_WRITE_FUZZ_SEEDS").map(std::path::PathBuf::from);
    let mut rng = Rng(0xfeed);
    for i in 0..40 {
        let (kind, selector, body) = if i % 2 == 0 {
            (SignalKind::Traces, 0u8, random_traces(&mut rng).encode_to_vec())
        } else {
            (SignalKind::Logs, 1u8, random_logs(&mut rng).encode_to_vec())
        };
        crate::fuzzing::redaction_agrees(kind, &body);
        if let Some(dir) = &seeds {
            std::fs::create_dir_all(dir).unwrap();
            let mut input = vec![selector];
            input.extend_from_slice(&body);
            std::fs::write(dir.join(format!("seed-{i:02}")), input).unwrap();
        }
    }
}
