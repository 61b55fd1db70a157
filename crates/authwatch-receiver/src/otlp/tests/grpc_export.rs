//! OTLP/gRPC: every signal, pipeline errors, gzip and the message limit, bad payloads and
//! broken framing, partial success, and pipelines that want the request as bytes.

use super::*;

#[tokio::test]
async fn grpc_ingests_all_signals_and_maps_pipeline_errors() {
    let h = Harness::start(loopback()).await;
    let mut t = TraceServiceClient::connect(h.grpc_url()).await.unwrap();
    let mut m = MetricsServiceClient::connect(h.grpc_url()).await.unwrap();
    let mut l = LogsServiceClient::connect(h.grpc_url()).await.unwrap();

    let r = t.export(traces(0, 3)).await.unwrap().into_inner();
    assert_eq!(r, ExportTraceServiceResponse::default());
    let r = m.export(metrics(0, 4)).await.unwrap().into_inner();
    assert_eq!(r, ExportMetricsServiceResponse::default());
    let r = l.export(logs(0, 5)).await.unwrap().into_inner();
    assert_eq!(r, ExportLogsServiceResponse::default());
    assert_eq!(
        h.sink.received(),
        vec![
            Signal::Traces(traces(0, 3)),
            Signal::Metrics(metrics(0, 4)),
            Signal::Logs(logs(0, 5)),
        ]
    );

    h.sink.fail_with(Some(ConsumeError::Full));
    let e = t.export(traces(10, 1)).await.unwrap_err();
    assert_status(&e, Code::Unavailable);
    h.sink.fail_with(Some(ConsumeError::Closed));
    let e = m.export(metrics(10, 1)).await.unwrap_err();
    assert_status(&e, Code::Unavailable);
    assert_eq!(
        e.get_details_retry_info().and_then(|r| r.retry_delay),
        Some(Duration::from_secs(1))
    );

    h.sink
        .fail_with(Some(ConsumeError::Throttled(Duration::from_secs(5))));
    let e = l.export(logs(10, 1)).await.unwrap_err();
    assert_status(&e, Code::ResourceExhausted);
    assert_eq!(
        e.get_details_retry_info().and_then(|r| r.retry_delay),
        Some(Duration::from_secs(5))
    );

    h.sink
        .fail_with(Some(authwatch_testkit::permanent("bad data")));
    let e = t.export(traces(10, 1)).await.unwrap_err();
    assert_status(&e, Code::InvalidArgument);
    assert_eq!(e.message(), "bad data");

    // Nothing refused reached the sink; accepting again works.
    assert_eq!(h.sink.received().len(), 3);
    h.sink.fail_with(None);
    t.export(traces(20, 2)).await.unwrap();
    assert_eq!(h.sink.item_count(SignalKind::Traces), 5);
    h.stop().await;
}

#[tokio::test]
async fn grpc_signal_without_pipeline_is_unimplemented() {
    let h = Harness::start_with(loopback(), &[SignalKind::Traces]).await;
    let mut l = LogsServiceClient::connect(h.grpc_url()).await.unwrap();
    let e = l.export(logs(0, 1)).await.unwrap_err();
    assert_status(&e, Code::Unimplemented);
    let mut t = TraceServiceClient::connect(h.grpc_url()).await.unwrap();
    t.export(traces(0, 1)).await.unwrap();
    assert_eq!(
        h.stop().await.received(),
        vec![Signal::Traces(traces(0, 1))]
    );
}

#[tokio::test]
async fn grpc_accepts_gzip_and_enforces_the_message_limit() {
    let mut config = loopback();
    if let Some(g) = config.protocols.grpc.as_mut() {
        g.max_recv_msg_size_mib = Positive(1);
    }
    let h = Harness::start(config).await;
    let mut t = TraceServiceClient::connect(h.grpc_url())
        .await
        .unwrap()
        .send_compressed(CompressionEncoding::Gzip)
        .accept_compressed(CompressionEncoding::Gzip);
    t.export(traces(0, 2)).await.unwrap();

    // 2 MiB of span name: over the 1 MiB limit on the wire when sent uncompressed...
    let mut big = traces(100, 1);
    big.resource_spans[0].scope_spans[0].spans[0].name = "x".repeat(2 << 20);
    let mut plain = TraceServiceClient::connect(h.grpc_url()).await.unwrap();
    // RESOURCE_EXHAUSTED without RetryInfo (as grpc-go): OTLP clients retry OUT_OF_RANGE.
    let e = plain.export(big.clone()).await.unwrap_err();
    assert_status(&e, Code::ResourceExhausted);
    assert!(e.message().contains("max_recv_msg_size_mib"), "{e:?}");
    assert!(e.details().is_empty(), "no RetryInfo: {e:?}");
    // ...and, compressed to a few KiB, still over it once inflated.
    let e = t.export(big).await.unwrap_err();
    assert_status(&e, Code::ResourceExhausted);

    t.export(traces(2, 1)).await.unwrap();
    assert_eq!(h.stop().await.item_count(SignalKind::Traces), 3);
}

/// Sends one raw gRPC frame, compressed with `encoding` if given, and returns the call's status.
async fn grpc_raw_call(
    addr: SocketAddr,
    path: &str,
    encoding: Option<&str>,
    payload: Bytes,
) -> tonic::Status {
    let mut frame = Vec::with_capacity(payload.len() + 5);
    frame.push(u8::from(encoding.is_some()));
    frame.extend_from_slice(&u32::try_from(payload.len()).unwrap().to_be_bytes());
    frame.extend_from_slice(&payload);
    grpc_raw_body(addr, path, encoding, frame).await
}

/// Sends `body` as the request body of a gRPC call, framing and all, and returns its status.
async fn grpc_raw_body(
    addr: SocketAddr,
    path: &str,
    encoding: Option<&str>,
    frame: Vec<u8>,
) -> tonic::Status {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut req = ::http::Request::builder()
        .method("POST")
        .uri(format!("http://{addr}{path}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers");
    if let Some(e) = encoding {
        req = req.header("grpc-encoding", e);
    }
    let req = req
        .body(tonic::body::Body::new(http_body_util::Full::new(
            Bytes::from(frame),
        )))
        .unwrap();
    let resp = channel.oneshot(req).await.unwrap();
    let (parts, body) = resp.into_parts();
    let collected = body.collect().await.unwrap();
    tonic::Status::from_header_map(&parts.headers)
        .or_else(|| {
            collected
                .trailers()
                .and_then(tonic::Status::from_header_map)
        })
        .expect("a grpc-status")
}

const TRACE_EXPORT: &str = authwatch_net::otlp::TRACES_EXPORT_PATH;

#[tokio::test]
async fn grpc_bad_payloads_are_refused_and_the_receiver_keeps_serving() {
    let h = Harness::start(loopback()).await;
    let valid = traces(0, 2).encode_to_vec();
    let zipped = gzip(&valid);
    // (what, grpc-encoding, payload, code): an undecodable message or a gzip stream that does not
    // inflate is the sender's fault (INVALID_ARGUMENT; grpc-go and tonic's generated servers say
    // INTERNAL); an encoding the server does not take is UNIMPLEMENTED (the gRPC spec).
    let cases = [
        ("malformed protobuf", None, vec![0xff; 16], Code::InvalidArgument),
        (
            "truncated protobuf",
            None,
            valid[..valid.len() - 1].to_vec(),
            Code::InvalidArgument,
        ),
        (
            "truncated gzip",
            Some("gzip"),
            zipped[..zipped.len() / 2].to_vec(),
            Code::InvalidArgument,
        ),
        (
            "not gzip at all",
            Some("gzip"),
            valid.clone(),
            Code::InvalidArgument,
        ),
        (
            "unsupported encoding",
            Some("zstd"),
            zipped.clone(),
            Code::Unimplemented,
        ),
    ];
    for (what, encoding, payload, code) in cases {
        let status = grpc_raw_call(h.grpc, TRACE_EXPORT, encoding, payload.into()).await;
        assert_eq!(status.code(), code, "{what}: {status:?}");
    }
    let ok = grpc_raw_call(h.grpc, TRACE_EXPORT, Some("gzip"), zipped.into()).await;
    assert_eq!(ok.code(), Code::Ok, "{ok:?}");
    assert_eq!(
        h.stop().await.received(),
        vec![Signal::Traces(traces(0, 2))]
    );
}

#[tokio::test]
async fn grpc_broken_framing_is_refused_with_the_right_code() {
    let h = Harness::start(loopback()).await;
    let valid = traces(0, 2).encode_to_vec();
    let framed = |flag: u8, declared: usize, payload: &[u8]| {
        let mut frame = vec![flag];
        frame.extend_from_slice(&u32::try_from(declared).unwrap().to_be_bytes());
        frame.extend_from_slice(payload);
        frame
    };
    // (what, grpc-encoding, body, code)
    let cases = [
        (
            "a frame cut short",
            None,
            framed(0, valid.len() + 100, &valid),
            Code::InvalidArgument,
        ),
        ("a frame header cut short", None, vec![0, 0, 0], Code::InvalidArgument),
        // The gRPC spec: "MUST fail with INTERNAL status".
        (
            "compressed flag without grpc-encoding",
            None,
            framed(1, valid.len(), &valid),
            Code::Internal,
        ),
    ];
    for (what, encoding, body, code) in cases {
        let status = grpc_raw_body(h.grpc, TRACE_EXPORT, encoding, body).await;
        assert_eq!(status.code(), code, "{what}: {status:?}");
    }
    let ok = grpc_raw_body(h.grpc, TRACE_EXPORT, None, framed(0, valid.len(), &valid)).await;
    assert_eq!(ok.code(), Code::Ok, "{ok:?}");
    assert_eq!(
        h.stop().await.received(),
        vec![Signal::Traces(traces(0, 2))]
    );
}

#[tokio::test]
async fn grpc_refuses_a_gzip_bomb_without_inflating_it() {
    let h = Harness::start(loopback()).await;
    let bomb = gzip_bomb(1024); // 1 GiB of zeros in about 1 MiB
    assert!(bomb.len() < 4 << 20, "{}", bomb.len());
    let status = grpc_raw_call(h.grpc, TRACE_EXPORT, Some("gzip"), bomb.into()).await;
    assert_status(&status, Code::ResourceExhausted);
    assert!(
        status
            .message()
            .contains("inflates to more than max_recv_msg_size_mib"),
        "{status:?}"
    );

    let mut t = TraceServiceClient::connect(h.grpc_url()).await.unwrap();
    t.export(traces(0, 1)).await.unwrap();
    assert_eq!(
        h.stop().await.received(),
        vec![Signal::Traces(traces(0, 1))]
    );
}

#[tokio::test]
async fn grpc_partial_success_drops_invalid_ids_only() {
    let h = Harness::start(loopback()).await;
    let (sent, valid) = traces_with_invalid_ids();
    let mut t = TraceServiceClient::connect(h.grpc_url()).await.unwrap();
    let r = t.export(sent).await.unwrap().into_inner();
    let partial = r.partial_success.expect("partial success");
    assert_eq!(partial.rejected_spans, 3);
    assert!(
        partial.error_message.contains("trace_id must be 16 bytes"),
        "{partial:?}"
    );

    let (sent_logs, valid_logs) = logs_with_invalid_ids();
    let mut l = LogsServiceClient::connect(h.grpc_url()).await.unwrap();
    let r = l.export(sent_logs).await.unwrap().into_inner();
    assert_eq!(r.partial_success.unwrap().rejected_log_records, 2);

    let got = h.stop().await.received();
    assert_eq!(
        got,
        vec![
            Signal::Traces(valid.clone()),
            Signal::Logs(valid_logs.clone())
        ]
    );
    // Byte for byte: what was forwarded encodes exactly like the valid part of the request.
    let Signal::Traces(forwarded) = &got[0] else {
        unreachable!()
    };
    assert_eq!(forwarded.encode_to_vec(), valid.encode_to_vec());
}

// === gRPC into a pipeline that wants bytes (pass-through to OTLP exporters) ===

#[tokio::test]
async fn grpc_hands_valid_requests_to_a_byte_pipeline_undecoded() {
    let h = Harness::start_into(loopback(), &SignalKind::ALL, Sink::wanting_encoded()).await;
    let mut t = TraceServiceClient::connect(h.grpc_url())
        .await
        .unwrap()
        .send_compressed(CompressionEncoding::Gzip);
    let mut m = MetricsServiceClient::connect(h.grpc_url()).await.unwrap();
    let mut l = LogsServiceClient::connect(h.grpc_url()).await.unwrap();
    let r = t.export(traces(0, 3)).await.unwrap().into_inner();
    assert_eq!(r, ExportTraceServiceResponse::default());
    m.export(metrics(0, 4)).await.unwrap();
    l.export(logs(0, 5)).await.unwrap();
    // An empty request is answered and not forwarded.
    t.export(ExportTraceServiceRequest::default()).await.unwrap();
    let got = h.stop().await.received();
    assert_eq!(got.len(), 3, "{got:?}");
    // Traces and logs stay bytes, byte for byte what the client sent; metrics are decoded.
    let Signal::Encoded(e) = &got[0] else {
        panic!("traces were decoded: {:?}", got[0])
    };
    assert_eq!(e.items(), 3);
    assert_eq!(&e.bytes()[..], &traces(0, 3).encode_to_vec()[..]);
    assert_eq!(got[1], Signal::Metrics(metrics(0, 4)));
    assert!(matches!(&got[2], Signal::Encoded(e) if e.items() == 5));
    assert_eq!(got[2].clone().into_decoded().unwrap(), Signal::Logs(logs(0, 5)));
}

#[tokio::test]
async fn grpc_byte_pipeline_still_drops_invalid_ids_and_refuses_garbage() {
    let h = Harness::start_into(loopback(), &SignalKind::ALL, Sink::wanting_encoded()).await;
    let (sent, valid) = traces_with_invalid_ids();
    let mut t = TraceServiceClient::connect(h.grpc_url()).await.unwrap();
    let r = t.export(sent).await.unwrap().into_inner();
    assert_eq!(r.partial_success.expect("partial success").rejected_spans, 3);
    let valid_bytes = traces(0, 2).encode_to_vec();
    for (what, payload) in [
        ("malformed", vec![0xff; 16]),
        ("truncated", valid_bytes[..valid_bytes.len() - 1].to_vec()),
    ] {
        let status = grpc_raw_call(h.grpc, TRACE_EXPORT, None, payload.into()).await;
        assert_eq!(status.code(), Code::InvalidArgument, "{what}: {status:?}");
        assert!(status.message().contains("ExportTraceServiceRequest"), "{status:?}");
    }
    let got = h.stop().await.received();
    assert_eq!(got, vec![Signal::Traces(valid)], "only the valid spans, decoded to drop the rest");
}

#[tokio::test]
async fn nothing_valid_left_is_not_forwarded() {
    let h = Harness::start(loopback()).await;
    let mut sent = traces(0, 2);
    for s in &mut sent.resource_spans[0].scope_spans[0].spans {
        s.span_id.clear();
    }
    let mut t = TraceServiceClient::connect(h.grpc_url()).await.unwrap();
    let r = t.export(sent).await.unwrap().into_inner();
    assert_eq!(r.partial_success.unwrap().rejected_spans, 2);
    // An empty request succeeds without reaching the pipeline either.
    let r = t
        .export(ExportTraceServiceRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.partial_success, None);
    assert!(h.stop().await.received().is_empty());
}
