//! OTLP/HTTP bad input and limits: bad requests of every kind, the body limit before reading
//! and on chunked streams, gzip bombs.

use super::*;

struct BadCase {
    name: &'static str,
    path: &'static str,
    headers: Vec<(&'static str, &'static str)>,
    body: Vec<u8>,
    status: u16,
    /// Content type of the answer (the `google.rpc.Status` encoding).
    content_type: &'static str,
    message: &'static str,
}

#[tokio::test]
async fn http_bad_requests_are_answered_and_the_receiver_keeps_serving() {
    let mut config = loopback();
    if let Some(h) = config.protocols.http.as_mut() {
        h.max_request_body_size = Positive(4096);
    }
    let h = Harness::start(config).await;
    let valid = traces(0, 3).encode_to_vec();
    let truncated = valid[..valid.len() - 1].to_vec();
    let zipped = gzip(&valid);
    let cases = vec![
        BadCase {
            name: "malformed protobuf",
            path: "/v1/traces",
            headers: vec![PB],
            body: vec![0xff; 64],
            status: 400,
            content_type: "application/x-protobuf",
            message: "cannot decode the body as protobuf ExportTraceServiceRequest",
        },
        BadCase {
            name: "truncated protobuf",
            path: "/v1/traces",
            headers: vec![PB],
            body: truncated,
            status: 400,
            content_type: "application/x-protobuf",
            message: "cannot decode the body as protobuf ExportTraceServiceRequest",
        },
        BadCase {
            name: "malformed JSON",
            path: "/v1/logs",
            headers: vec![JS],
            body: br#"{"resourceLogs": [{"#.to_vec(),
            status: 400,
            content_type: "application/json",
            message: "cannot decode the body as OTLP/JSON ExportLogsServiceRequest",
        },
        BadCase {
            name: "JSON with a bad hex id",
            path: "/v1/traces",
            headers: vec![JS],
            body: br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"xyz"}]}]}]}"#.to_vec(),
            status: 400,
            content_type: "application/json",
            message: "cannot decode the body as OTLP/JSON ExportTraceServiceRequest",
        },
        BadCase {
            name: "JSON metric point with a bad value",
            path: "/v1/metrics",
            headers: vec![JS],
            body: br#"{"resourceMetrics":[{"scopeMetrics":[{"metrics":[
                {"name":"m","sum":{"dataPoints":[{"asInt":"many"}]}}]}]}]}"#
                .to_vec(),
            status: 400,
            content_type: "application/json",
            message: "metric `m`: data point 0: `asInt` is not a valid number",
        },
        BadCase {
            name: "truncated gzip",
            path: "/v1/traces",
            headers: vec![PB, GZ],
            body: zipped[..zipped.len() / 2].to_vec(),
            status: 400,
            content_type: "application/x-protobuf",
            message: "invalid gzip request body",
        },
        BadCase {
            name: "not gzip at all",
            path: "/v1/traces",
            headers: vec![JS, GZ],
            body: b"{}".to_vec(),
            status: 400,
            content_type: "application/json",
            message: "invalid gzip request body",
        },
        BadCase {
            name: "unsupported content encoding",
            path: "/v1/metrics",
            headers: vec![PB, ("Content-Encoding", "br")],
            body: valid.clone(),
            status: 400,
            content_type: "application/x-protobuf",
            message: "unsupported Content-Encoding `br`",
        },
        BadCase {
            name: "wrong content type",
            path: "/v1/traces",
            headers: vec![("Content-Type", "text/plain")],
            body: valid.clone(),
            status: 415,
            content_type: "application/x-protobuf",
            message: "unsupported Content-Type `text/plain`",
        },
        BadCase {
            name: "no content type",
            path: "/v1/traces",
            headers: vec![],
            body: valid.clone(),
            status: 415,
            content_type: "application/x-protobuf",
            message: "unsupported Content-Type none",
        },
        BadCase {
            name: "body over the limit",
            path: "/v1/traces",
            headers: vec![PB],
            body: vec![0; 5000],
            status: 413,
            content_type: "application/x-protobuf",
            message: "request body is larger than max_request_body_size (4096 bytes)",
        },
        BadCase {
            name: "decompressed body over the limit",
            path: "/v1/traces",
            headers: vec![JS, GZ],
            body: gzip(&[b' '; 64 * 1024]),
            status: 413,
            content_type: "application/json",
            message: "decompressed request body is larger than max_request_body_size (4096 bytes)",
        },
    ];
    for (i, case) in cases.into_iter().enumerate() {
        let r = post(h.http, case.path, &case.headers, &case.body).await;
        assert_eq!(r.status, case.status, "{}: {r:?}", case.name);
        assert_eq!(
            r.header("content-type"),
            Some(case.content_type),
            "{}",
            case.name
        );
        let status = rpc_status(&r);
        assert!(
            status.message.contains(case.message),
            "{}: {status:?}",
            case.name
        );
        if case.status == 400 && case.message.contains("decode") {
            assert_eq!(status.code, Code::InvalidArgument as i32, "{}", case.name);
            if case.content_type == "application/x-protobuf" {
                assert!(status.get_details_bad_request().is_some(), "{}", case.name);
            }
        }
        assert_still_serving(h.http, 100 + i as u64).await;
    }
    // Only the valid requests in between reached the pipeline.
    let got = h.stop().await;
    assert!(got.received().iter().all(|s| s.item_count() == 1));
    assert_eq!(got.item_count(SignalKind::Traces), 12);
    assert_eq!(got.item_count(SignalKind::Metrics), 0);
}

#[tokio::test]
async fn http_body_limit_applies_before_reading_and_to_chunked_streams() {
    let mut config = loopback();
    if let Some(h) = config.protocols.http.as_mut() {
        h.max_request_body_size = Positive(1024);
    }
    let h = Harness::start(config).await;

    // A declared length over the limit is refused before the body is sent at all.
    let head = format!(
        "POST /v1/traces HTTP/1.1\r\nHost: {}\r\nContent-Type: application/x-protobuf\r\n\
         Content-Length: 1073741824\r\nConnection: close\r\n\r\n",
        h.http
    );
    let r = exchange(h.http, &head, b"").await;
    assert_eq!(r.status, 413, "{r:?}");
    assert!(rpc_status(&r)
        .message
        .contains("max_request_body_size (1024 bytes)"));
    assert_still_serving(h.http, 0).await;

    // A chunked body is refused once it passes the limit.
    let head = format!(
        "POST /v1/traces HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
         Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        h.http
    );
    let mut chunks = Vec::new();
    for _ in 0..8 {
        chunks.extend_from_slice(b"100\r\n");
        chunks.extend_from_slice(&[b' '; 256]);
        chunks.extend_from_slice(b"\r\n");
    }
    chunks.extend_from_slice(b"0\r\n\r\n");
    let r = exchange(h.http, &head, &chunks).await;
    assert_eq!(r.status, 413, "{r:?}");
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_still_serving(h.http, 1).await;

    // Under the limit, chunked works.
    let body = traces(2, 1).encode_to_vec();
    let head = format!(
        "POST /v1/traces HTTP/1.1\r\nHost: {}\r\nContent-Type: application/x-protobuf\r\n\
         Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        h.http
    );
    let mut chunked = format!("{:x}\r\n", body.len()).into_bytes();
    chunked.extend_from_slice(&body);
    chunked.extend_from_slice(b"\r\n0\r\n\r\n");
    let r = exchange(h.http, &head, &chunked).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(h.stop().await.item_count(SignalKind::Traces), 3);
}

#[test]
fn gzip_bomb_is_valid_gzip_of_zeros() {
    let bomb = gzip_bomb(3);
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(&bomb[..])
        .read_to_end(&mut out)
        .unwrap();
    assert_eq!(out.len(), 3 << 20);
    assert!(out.iter().all(|b| *b == 0));
}

/// Counts how much of its input a reader took.
struct Counting<'a> {
    inner: &'a [u8],
    consumed: Arc<AtomicUsize>,
}

impl Read for Counting<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = Read::read(&mut self.inner, buf)?;
        self.consumed.fetch_add(n, Ordering::Relaxed);
        Ok(n)
    }
}

impl BufRead for Counting<'_> {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        Ok(self.inner)
    }
    fn consume(&mut self, n: usize) {
        self.inner = &self.inner[n..];
        self.consumed.fetch_add(n, Ordering::Relaxed);
    }
}

#[test]
fn gunzip_stops_at_the_limit() {
    let bomb = gzip_bomb(1024);
    let consumed = Arc::new(AtomicUsize::new(0));
    let input = Counting {
        inner: &bomb,
        consumed: consumed.clone(),
    };
    let limit = DEFAULT_MAX_REQUEST_BODY_SIZE;
    assert!(matches!(
        http::gunzip_capped(input, limit),
        Err(http::InflateError::TooLarge)
    ));
    // About 21 of the 1024 compressed MiB were read: the other 1003 MiB were never inflated.
    let read = consumed.load(Ordering::Relaxed);
    assert!(
        read < bomb.len() / 10,
        "read {read} of {} bytes",
        bomb.len()
    );

    assert_eq!(http::gunzip_capped(&gzip(b"ok")[..], 2).unwrap(), b"ok");
    assert!(matches!(
        http::gunzip_capped(&gzip(b"too")[..], 2),
        Err(http::InflateError::TooLarge)
    ));
    // Concatenated gzip members are one body, as in Go's gzip reader.
    let mut two = gzip(b"a");
    two.extend(gzip(b"b"));
    assert_eq!(http::gunzip_capped(&two[..], 10).unwrap(), b"ab");
}

#[tokio::test]
async fn http_refuses_a_gzip_bomb_with_413() {
    let h = Harness::start(loopback()).await; // default limit: 20 MiB
    let bomb = gzip_bomb(1024); // 1 GiB of zeros in about 1 MiB
    let r = post(h.http, "/v1/traces", &[PB, GZ], &bomb).await;
    assert_eq!(r.status, 413, "{r:?}");
    assert!(rpc_status(&r).message.contains("decompressed request body"));
    assert_still_serving(h.http, 0).await;
    assert_eq!(h.stop().await.item_count(SignalKind::Traces), 1);
}
