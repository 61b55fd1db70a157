//! OTLP/HTTP through the router, no socket: pipeline errors per the OTLP spec, routing.

use super::*;

#[tokio::test]
async fn http_maps_pipeline_errors_per_otlp_spec() {
    let sink = Sink::new();
    let telemetry = Telemetry::new();
    let router = test_router(
        &sink,
        &[SignalKind::Traces, SignalKind::Metrics],
        &telemetry,
    );
    let pb = traces(0, 1).encode_to_vec();
    let js = serde_json::to_vec(&traces(0, 1)).unwrap();

    // (sink error, HTTP status, Retry-After, google.rpc.Code)
    let cases = [
        (ConsumeError::Full, 503, Some("1"), Code::Unavailable),
        (ConsumeError::Closed, 503, Some("1"), Code::Unavailable),
        (
            ConsumeError::Throttled(Duration::from_secs(30)),
            429,
            Some("30"),
            Code::ResourceExhausted,
        ),
        (
            ConsumeError::Throttled(Duration::from_millis(1500)),
            429,
            Some("2"),
            Code::ResourceExhausted,
        ),
        (
            authwatch_testkit::permanent("no"),
            400,
            None,
            Code::InvalidArgument,
        ),
    ];
    for (err, status, retry_after, code) in cases {
        sink.fail_with(Some(err.clone()));
        for (ct, body) in [(PB, pb.clone()), (JS, js.clone())] {
            let r = oneshot(&router, "POST", "/v1/traces", &[ct], body).await;
            assert_eq!(r.status, status, "{err:?} {ct:?}: {r:?}");
            assert_eq!(r.header("retry-after"), retry_after, "{err:?}");
            assert_eq!(r.header("content-type"), Some(ct.1));
            let s = rpc_status(&r);
            assert_eq!(s.code, code as i32, "{err:?}");
            assert_eq!(s.message, err.to_string());
        }
    }
    // The JSON form of RetryInfo.
    sink.fail_with(Some(ConsumeError::Throttled(Duration::from_secs(30))));
    let r = oneshot(&router, "POST", "/v1/traces", &[JS], js.clone()).await;
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(
        v["details"][0]["@type"],
        "type.googleapis.com/google.rpc.RetryInfo"
    );
    assert_eq!(v["details"][0]["retryDelay"], "30s");
    let r = oneshot(&router, "POST", "/v1/traces", &[PB], pb.clone()).await;
    assert_eq!(
        rpc_status(&r)
            .get_details_retry_info()
            .and_then(|i| i.retry_delay),
        Some(Duration::from_secs(30))
    );

    // A signal no pipeline takes.
    sink.fail_with(None);
    let r = oneshot(
        &router,
        "POST",
        "/v1/logs",
        &[PB],
        logs(0, 1).encode_to_vec(),
    )
    .await;
    assert_eq!(r.status, 404, "{r:?}");
    assert_eq!(rpc_status(&r).code, Code::Unimplemented as i32);
    assert!(sink.received().is_empty());
}

#[tokio::test]
async fn http_routes_only_post_on_the_configured_paths() {
    let sink = Sink::new();
    let telemetry = Telemetry::new();
    let router = test_router(&sink, &SignalKind::ALL, &telemetry);
    let r = oneshot(&router, "GET", "/v1/traces", &[], Vec::new()).await;
    assert_eq!(r.status, 405, "{r:?}");
    assert_eq!(r.header("allow"), Some("POST"));
    let r = oneshot(&router, "PUT", "/v1/logs", &[PB], Vec::new()).await;
    assert_eq!(r.status, 405, "{r:?}");
    let r = oneshot(&router, "POST", "/v1/trace", &[PB], Vec::new()).await;
    assert_eq!(r.status, 404, "{r:?}");
    let r = oneshot(&router, "POST", "/v1/traces/", &[PB], Vec::new()).await;
    assert_eq!(r.status, 404, "{r:?}");
    // An empty body is an empty request: success, nothing forwarded.
    let r = oneshot(&router, "POST", "/v1/traces?x=1", &[PB], Vec::new()).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert!(sink.received().is_empty());

    // Custom paths replace the defaults.
    let config = HttpConfig {
        traces_url_path: "/otlp/t".parse().unwrap(),
        ..HttpConfig::default()
    };
    let ingest = ingest::Ingest::new(
        router_to(sink.shared(), &SignalKind::ALL),
        telemetry.receiver(&otlp_id(), "http"),
    );
    let custom = http::router(&config, ingest, None);
    let r = oneshot(
        &custom,
        "POST",
        "/otlp/t",
        &[PB],
        traces(0, 1).encode_to_vec(),
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    let r = oneshot(
        &custom,
        "POST",
        "/v1/traces",
        &[PB],
        traces(0, 1).encode_to_vec(),
    )
    .await;
    assert_eq!(r.status, 404, "{r:?}");
    assert_eq!(sink.item_count(SignalKind::Traces), 1);
}
