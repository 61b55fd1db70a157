//! Hostile and broken requests against the real binary: each gets a clear status and the
//! process keeps serving (a valid request right after succeeds, and everything valid arrives).

mod common;

use std::io::Write;
use std::time::Duration;

use authwatch_core::otlp::collector::trace::v1::trace_service_client::TraceServiceClient;
use authwatch_core::SignalKind;
use authwatch_testkit::otlp_server::OtlpServer;
use common::*;
use prost::Message;

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_clear_statuses_and_nothing_valid_is_lost() {
    let backend = OtlpServer::start().await;
    let (g, h) = (free_port(), free_port());
    let _aw = Authwatch::start(&format!(
        "
receivers:
  otlp:
    protocols:
      grpc: {{endpoint: '127.0.0.1:{g}', max_recv_msg_size_mib: 1}}
      http: {{endpoint: '127.0.0.1:{h}', max_request_body_size: 1048576}}
exporters:
  otlp: {{endpoint: 'http://{bg}', tls: {{insecure: true}}}}
service:
  telemetry: {{metrics: {{level: none}}}}
  pipelines:
    traces: {{receivers: [otlp], exporters: [otlp]}}
",
        bg = backend.grpc_addr()
    ));
    let http = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{h}/v1/traces");
    let valid = authwatch_testkit::traces(0, 5).encode_to_vec();
    let mut sent_valid = 0;

    // (case, content type, content encoding, body, expected status)
    type Case = (
        &'static str,
        &'static str,
        Option<&'static str>,
        Vec<u8>,
        u16,
    );
    let mut cases: Vec<Case> = vec![
        (
            "malformed protobuf",
            "application/x-protobuf",
            None,
            vec![0xff, 0xff, 0xff, 0x0f, 0x01],
            400,
        ),
        (
            "malformed JSON",
            "application/json",
            None,
            b"{\"resourceSpans\": [".to_vec(),
            400,
        ),
        ("wrong content type", "text/plain", None, valid.clone(), 415),
        (
            "truncated protobuf",
            "application/x-protobuf",
            None,
            valid[..valid.len() - 7].to_vec(),
            400,
        ),
        (
            "truncated gzip",
            "application/x-protobuf",
            Some("gzip"),
            {
                let z = gzip(&valid);
                z[..z.len() / 2].to_vec()
            },
            400,
        ),
    ];
    // A gzip bomb: 64 MiB of zeros in well under 1 MiB on the wire.
    let bomb = gzip(&vec![0u8; 64 * 1024 * 1024]);
    assert!(bomb.len() < 1024 * 1024);
    cases.push((
        "gzip bomb",
        "application/x-protobuf",
        Some("gzip"),
        bomb,
        413,
    ));

    for (name, ct, enc, body, want) in cases {
        let mut req = http.post(&url).header("content-type", ct).body(body);
        if let Some(e) = enc {
            req = req.header("content-encoding", e);
        }
        let resp = req.send().await.unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(resp.status().as_u16(), want, "{name}");
        let text = resp.text().await.unwrap();
        assert!(!text.is_empty(), "{name}: the body says what went wrong");
        // Still serving.
        let ok = http
            .post(&url)
            .header("content-type", "application/x-protobuf")
            .body(valid.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(ok.status(), 200, "after {name}");
        sent_valid += 5;
    }

    // Oversized by Content-Length: refused before the body is read (413), and still serving.
    // (A client that streams the whole oversized body may see its connection closed before it
    // reads the 413; the receiver's own tests cover bodies that grow past the limit.)
    {
        use authwatch_testkit::raw_http;
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], h));
        let head = raw_http::request_head(
            "POST",
            "/v1/traces",
            addr,
            &[("Content-Type", "application/x-protobuf")],
            Some(2 * 1024 * 1024),
        );
        let r = raw_http::exchange(addr, &head, b"").await;
        assert_eq!(r.status, 413, "oversized body: {r:?}");
        let ok = http
            .post(&url)
            .header("content-type", "application/x-protobuf")
            .body(valid.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(ok.status(), 200, "after oversized body");
        sent_valid += 5;
    }

    // gRPC: an oversized message is refused, a valid one after it accepted.
    let mut client = TraceServiceClient::connect(format!("http://127.0.0.1:{g}"))
        .await
        .unwrap();
    let big = authwatch_testkit::traces(100, 20_000);
    let err = client.export(big).await.unwrap_err();
    // RESOURCE_EXHAUSTED without RetryInfo, so OTLP clients do not retry it (not OUT_OF_RANGE).
    assert_eq!(err.code(), tonic::Code::ResourceExhausted, "{err:?}");
    assert!(err.details().is_empty(), "{err:?}");
    client
        .export(authwatch_testkit::traces(0, 5))
        .await
        .unwrap();
    sent_valid += 5;

    backend
        .wait_for_items(SignalKind::Traces, sent_valid, Duration::from_secs(30))
        .await;
    assert_eq!(backend.item_count(SignalKind::Traces), sent_valid);
}
