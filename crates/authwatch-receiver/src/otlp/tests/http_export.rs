//! OTLP/HTTP over real sockets: protobuf and JSON for every signal, the spec's JSON examples,
//! partial success, and pipelines that want the request as bytes.

use super::*;

#[tokio::test]
async fn http_ingests_protobuf_and_json_for_all_signals() {
    let h = Harness::start(loopback()).await;

    let r = post(h.http, "/v1/traces", &[PB], &traces(0, 2).encode_to_vec()).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.header("content-type"), Some("application/x-protobuf"));
    assert_eq!(
        ExportTraceServiceResponse::decode(&r.body[..]).unwrap(),
        ExportTraceServiceResponse::default()
    );
    let r = post(h.http, "/v1/metrics", &[PB], &metrics(0, 3).encode_to_vec()).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        ExportMetricsServiceResponse::decode(&r.body[..]).unwrap(),
        Default::default()
    );
    let r = post(h.http, "/v1/logs", &[PB], &logs(0, 4).encode_to_vec()).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        ExportLogsServiceResponse::decode(&r.body[..]).unwrap(),
        Default::default()
    );

    let json_ct = ("Content-Type", "application/json; charset=utf-8");
    for (path, body) in [
        ("/v1/traces", serde_json::to_vec(&traces(10, 2)).unwrap()),
        ("/v1/metrics", serde_json::to_vec(&metrics(10, 3)).unwrap()),
        ("/v1/logs", serde_json::to_vec(&logs(10, 4)).unwrap()),
    ] {
        let r = post(h.http, path, &[json_ct], &body).await;
        assert_eq!(r.status, 200, "{path}: {r:?}");
        assert_eq!(r.header("content-type"), Some("application/json"));
        assert_eq!(r.body, b"{}", "full success leaves partial_success unset");
    }

    // gzip, for both encodings.
    let r = post(
        h.http,
        "/v1/logs",
        &[PB, GZ],
        &gzip(&logs(20, 1).encode_to_vec()),
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    let body = gzip(&serde_json::to_vec(&metrics(20, 1)).unwrap());
    let r = post(
        h.http,
        "/v1/metrics",
        &[JS, ("Content-Encoding", "x-gzip")],
        &body,
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    let r = post(
        h.http,
        "/v1/traces",
        &[PB, ("Content-Encoding", "identity")],
        &traces(20, 1).encode_to_vec(),
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");

    let got = h.stop().await.received();
    assert_eq!(
        got,
        vec![
            Signal::Traces(traces(0, 2)),
            Signal::Metrics(metrics(0, 3)),
            Signal::Logs(logs(0, 4)),
            Signal::Traces(traces(10, 2)),
            Signal::Metrics(metrics(10, 3)),
            Signal::Logs(logs(10, 4)),
            Signal::Logs(logs(20, 1)),
            Signal::Metrics(metrics(20, 1)),
            Signal::Traces(traces(20, 1)),
        ]
    );
}

fn attr<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a Value> {
    attrs
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
        .and_then(|v| v.value.as_ref())
}

fn string(s: &str) -> Value {
    Value::StringValue(s.to_owned())
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

#[tokio::test]
async fn http_accepts_the_otlp_spec_json_examples() {
    let h = Harness::start(loopback()).await;
    for (path, file) in [
        ("/v1/traces", include_str!("../testdata/trace.json")),
        ("/v1/metrics", include_str!("../testdata/metrics.json")),
        ("/v1/logs", include_str!("../testdata/logs.json")),
    ] {
        let r = post(h.http, path, &[JS], file.as_bytes()).await;
        assert_eq!(r.status, 200, "{path}: {r:?}");
        assert_eq!(r.body, b"{}");
    }
    let got = h.stop().await.received();
    assert_eq!(got.len(), 3);

    let Signal::Traces(t) = &got[0] else {
        panic!("{got:?}")
    };
    let rs = &t.resource_spans[0];
    let resource = rs.resource.as_ref().unwrap();
    assert_eq!(
        attr(&resource.attributes, "service.name"),
        Some(&string("my.service"))
    );
    let scope = rs.scope_spans[0].scope.as_ref().unwrap();
    assert_eq!(
        (scope.name.as_str(), scope.version.as_str()),
        ("my.library", "1.0.0")
    );
    assert_eq!(
        attr(&scope.attributes, "my.scope.attribute"),
        Some(&string("some scope attribute"))
    );
    let span = &rs.scope_spans[0].spans[0];
    assert_eq!(span.trace_id, hex("5b8efff798038103d269b633813fc60c"));
    assert_eq!(span.span_id, hex("eee19b7ec3c1b174"));
    assert_eq!(span.parent_span_id, hex("eee19b7ec3c1b173"));
    assert_eq!(span.name, "I'm a server span");
    assert_eq!(span.kind, SpanKind::Server as i32);
    assert_eq!(span.start_time_unix_nano, 1_544_712_660_000_000_000);
    assert_eq!(span.end_time_unix_nano, 1_544_712_661_000_000_000);
    assert_eq!(
        attr(&span.attributes, "my.span.attr"),
        Some(&string("some value"))
    );

    let Signal::Metrics(m) = &got[1] else {
        panic!("{got:?}")
    };
    let ms = &m.resource_metrics[0].scope_metrics[0].metrics;
    assert_eq!(ms.len(), 3);
    assert_eq!(
        (ms[0].name.as_str(), ms[0].unit.as_str()),
        ("my.counter", "1")
    );
    assert_eq!(ms[0].description, "I`m a Counter");
    let Some(metric::Data::Sum(sum)) = &ms[0].data else {
        panic!("{:?}", ms[0])
    };
    assert_eq!(sum.aggregation_temporality, 1);
    assert!(sum.is_monotonic);
    let p = &sum.data_points[0];
    assert_eq!(p.value, Some(number_data_point::Value::AsDouble(5.0)));
    assert_eq!(p.start_time_unix_nano, 1_544_712_660_300_000_000);
    assert_eq!(p.time_unix_nano, 1_544_712_660_300_000_000);
    assert_eq!(
        attr(&p.attributes, "my.counter.attr"),
        Some(&string("some value"))
    );
    let Some(metric::Data::Gauge(gauge)) = &ms[1].data else {
        panic!("{:?}", ms[1])
    };
    assert_eq!(
        gauge.data_points[0].value,
        Some(number_data_point::Value::AsDouble(10.0))
    );
    let Some(metric::Data::Histogram(hist)) = &ms[2].data else {
        panic!("{:?}", ms[2])
    };
    let p = &hist.data_points[0];
    assert_eq!(hist.aggregation_temporality, 1);
    assert_eq!(
        (p.count, p.sum, p.min, p.max),
        (3, Some(3.0), Some(1.0), Some(1.0))
    );
    assert_eq!(p.bucket_counts, vec![1, 1, 1]);
    assert_eq!(p.explicit_bounds, vec![1.0]);
    assert_eq!(
        attr(&p.attributes, "my.histogram.attr"),
        Some(&string("some value"))
    );

    let Signal::Logs(l) = &got[2] else {
        panic!("{got:?}")
    };
    let record = &l.resource_logs[0].scope_logs[0].log_records[0];
    assert_eq!(record.time_unix_nano, 1_544_712_660_300_000_000);
    assert_eq!(record.observed_time_unix_nano, 1_544_712_660_300_000_000);
    assert_eq!(record.severity_text, "Information");
    assert_eq!(record.trace_id, hex("5b8efff798038103d269b633813fc60c"));
    assert_eq!(record.span_id, hex("eee19b7ec3c1b174"));
    assert_eq!(
        record.body.as_ref().and_then(|b| b.value.clone()),
        Some(string("Example log record"))
    );
    let a = &record.attributes;
    assert_eq!(attr(a, "string.attribute"), Some(&string("some string")));
    assert_eq!(attr(a, "boolean.attribute"), Some(&Value::BoolValue(true)));
    assert_eq!(attr(a, "int.attribute"), Some(&Value::IntValue(10)));
    assert_eq!(
        attr(a, "double.attribute"),
        Some(&Value::DoubleValue(637.704))
    );
    let Some(Value::ArrayValue(array)) = attr(a, "array.attribute") else {
        panic!("{a:?}")
    };
    let values: Vec<_> = array.values.iter().map(|v| v.value.clone()).collect();
    assert_eq!(values, vec![Some(string("many")), Some(string("values"))]);
    let Some(Value::KvlistValue(map)) = attr(a, "map.attribute") else {
        panic!("{a:?}")
    };
    assert_eq!(
        attr(&map.values, "some.map.key"),
        Some(&string("some value"))
    );
}

/// The `with-serde` impls against the OTLP/JSON rules of the spec (docs/specification.md,
/// "JSON Protobuf Encoding").
#[test]
fn otlp_json_follows_the_spec() {
    // 64-bit integers as strings or numbers; ids as case-insensitive hex; enums as integers;
    // unknown fields ignored at every level.
    let as_numbers = r#"{"resourceSpans":[{"scopeSpans":[{"spans":[{
        "traceId":"5B8EFFF798038103D269B633813FC60C","spanId":"eee19b7ec3c1b174",
        "startTimeUnixNano":1544712660000000000,"kind":3,"futureField":{"x":1},
        "attributes":[{"key":"n","value":{"intValue":10}}]}],"futureScopeField":1}]}],
        "futureTopLevelField":[1,2]}"#;
    let as_strings = r#"{"resourceSpans":[{"scopeSpans":[{"spans":[{
        "traceId":"5b8efff798038103d269b633813fc60c","spanId":"EEE19B7EC3C1B174",
        "startTimeUnixNano":"1544712660000000000","kind":3,
        "attributes":[{"key":"n","value":{"intValue":"10"}}]}]}]}]}"#;
    let a: ExportTraceServiceRequest = serde_json::from_str(as_numbers).unwrap();
    let b: ExportTraceServiceRequest = serde_json::from_str(as_strings).unwrap();
    assert_eq!(a, b);
    let span = &a.resource_spans[0].scope_spans[0].spans[0];
    assert_eq!(span.trace_id, hex("5b8efff798038103d269b633813fc60c"));
    assert_eq!(span.kind, SpanKind::Client as i32);
    assert_eq!(span.start_time_unix_nano, 1_544_712_660_000_000_000);
    assert_eq!(attr(&span.attributes, "n"), Some(&Value::IntValue(10)));

    // Enum names are not OTLP/JSON; original (snake_case) field names are not keys, so they are
    // ignored like any unknown field.
    let named_enum =
        r#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"kind":"SPAN_KIND_CLIENT"}]}]}]}"#;
    assert!(serde_json::from_str::<ExportTraceServiceRequest>(named_enum).is_err());
    let snake = r#"{"resource_spans":[{}]}"#;
    assert_eq!(
        serde_json::from_str::<ExportTraceServiceRequest>(snake).unwrap(),
        ExportTraceServiceRequest::default()
    );

    // Our encoding round-trips, with lowerCamelCase keys and hex ids.
    let sent = traces(0, 2);
    let text = serde_json::to_string(&sent).unwrap();
    assert!(
        text.contains(r#""resourceSpans""#) && text.contains(r#""traceId":"0000000000000001"#),
        "{text}"
    );
    assert_eq!(
        serde_json::from_str::<ExportTraceServiceRequest>(&text).unwrap(),
        sent
    );
    let text = serde_json::to_string(&metrics(0, 2)).unwrap();
    assert_eq!(
        serde_json::from_str::<ExportMetricsServiceRequest>(&text).unwrap(),
        metrics(0, 2)
    );
    let text = serde_json::to_string(&logs(0, 2)).unwrap();
    assert_eq!(
        serde_json::from_str::<ExportLogsServiceRequest>(&text).unwrap(),
        logs(0, 2)
    );
}

/// One bad request: what to send and what must come back.

#[tokio::test]
async fn http_partial_success_in_both_encodings() {
    let h = Harness::start(loopback()).await;
    let (sent, valid) = traces_with_invalid_ids();
    let r = post(h.http, "/v1/traces", &[PB], &sent.encode_to_vec()).await;
    assert_eq!(r.status, 200, "{r:?}");
    let partial = ExportTraceServiceResponse::decode(&r.body[..])
        .unwrap()
        .partial_success
        .unwrap();
    assert_eq!(partial.rejected_spans, 3);
    assert!(!partial.error_message.is_empty());

    let (sent_logs, valid_logs) = logs_with_invalid_ids();
    let r = post(
        h.http,
        "/v1/logs",
        &[JS],
        &serde_json::to_vec(&sent_logs).unwrap(),
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    // int64 in proto3 JSON is a string.
    assert_eq!(v["partialSuccess"]["rejectedLogRecords"], "2", "{v}");
    assert!(v["partialSuccess"]["errorMessage"]
        .as_str()
        .unwrap()
        .contains("span_id"));

    // In JSON, an empty id string is a zero-length id.
    let json = r#"{"resourceSpans":[{"scopeSpans":[{"spans":[
        {"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174","name":"ok"},
        {"traceId":"","spanId":"eee19b7ec3c1b174","name":"no trace id"}]}]}]}"#;
    let r = post(h.http, "/v1/traces", &[JS], json.as_bytes()).await;
    assert_eq!(r.status, 200, "{r:?}");
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["partialSuccess"]["rejectedSpans"], "1", "{v}");

    let got = h.stop().await.received();
    assert_eq!(got[0], Signal::Traces(valid));
    assert_eq!(got[1], Signal::Logs(valid_logs));
    let Signal::Traces(t) = &got[2] else {
        panic!("{got:?}")
    };
    let names: Vec<_> = t.resource_spans[0].scope_spans[0]
        .spans
        .iter()
        .map(|s| s.name.as_str())
        .collect();
    assert_eq!(names, ["ok"]);
}

#[tokio::test]
async fn http_protobuf_into_a_byte_pipeline_is_checked_not_decoded() {
    let h = Harness::start_into(loopback(), &SignalKind::ALL, Sink::wanting_encoded()).await;
    let body = traces(0, 4).encode_to_vec();
    let r = post(h.http, "/v1/traces", &[PB, GZ], &gzip(&body)).await;
    assert_eq!(r.status, 200, "{r:?}");
    let r = post(h.http, "/v1/traces", &[PB], &body[..body.len() - 2]).await;
    assert_eq!(r.status, 400, "{r:?}");
    let json = serde_json::to_vec(&logs(0, 2)).unwrap();
    let r = post(h.http, "/v1/logs", &[JS], &json).await;
    assert_eq!(r.status, 200, "{r:?}");
    let got = h.stop().await.received();
    assert_eq!(got.len(), 2, "{got:?}");
    assert!(matches!(&got[0], Signal::Encoded(e) if e.items() == 4 && e.bytes()[..] == body[..]));
    assert!(matches!(&got[1], Signal::Logs(_)), "JSON is decoded");
}
