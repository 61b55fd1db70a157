//! Self-telemetry per transport, and the lifecycle: binding, shutdown, requests in flight.

use super::*;

fn counter(text: &str, name: &str, transport: &str) -> u64 {
    let prefix = format!("authwatch_{name}_total{{receiver=\"otlp\",transport=\"{transport}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map(|v| v.trim().parse().unwrap())
        .unwrap_or(0)
}

#[tokio::test]
async fn telemetry_counts_accepted_and_refused_items_per_transport() {
    let h = Harness::start(loopback()).await;
    let mut t = TraceServiceClient::connect(h.grpc_url()).await.unwrap();
    t.export(traces(0, 3)).await.unwrap();
    let (with_invalid, _) = traces_with_invalid_ids(); // 2 valid, 3 invalid
    t.export(with_invalid).await.unwrap();
    h.sink.fail_with(Some(ConsumeError::Full));
    t.export(traces(0, 4)).await.unwrap_err();
    let r = post(h.http, "/v1/logs", &[PB], &logs(0, 6).encode_to_vec()).await;
    assert_eq!(r.status, 503);
    h.sink.fail_with(None);
    let r = post(
        h.http,
        "/v1/metrics",
        &[JS],
        &serde_json::to_vec(&metrics(0, 7)).unwrap(),
    )
    .await;
    assert_eq!(r.status, 200);
    let r = post(h.http, "/v1/metrics", &[PB], b"\xff\xff").await;
    assert_eq!(r.status, 400);

    let text = h.settings.telemetry.encode();
    assert_eq!(
        counter(&text, "receiver_accepted_spans", "grpc"),
        5,
        "{text}"
    );
    assert_eq!(
        counter(&text, "receiver_refused_spans", "grpc"),
        7,
        "{text}"
    );
    assert_eq!(
        counter(&text, "receiver_refused_log_records", "http"),
        6,
        "{text}"
    );
    assert_eq!(
        counter(&text, "receiver_accepted_metric_points", "http"),
        7,
        "{text}"
    );
    assert_eq!(
        counter(&text, "receiver_accepted_spans", "http"),
        0,
        "{text}"
    );
    h.stop().await;
}

// === lifecycle ===

#[tokio::test]
async fn build_fails_fast_when_a_port_is_taken() {
    let taken = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = taken.local_addr().unwrap();
    let mut config = loopback();
    if let Some(h) = config.protocols.http.as_mut() {
        h.endpoint = ListenAddr(addr);
    }
    let cx = ReceiverContext {
        settings: Settings::new(otlp_id()),
        next: Router::new(),
    };
    match config.build(cx).await {
        Err(BuildError::Bind { addr: a, .. }) => assert_eq!(a, addr),
        Err(e) => panic!("expected a bind error, got {e}"),
        Ok(_) => panic!("expected a bind error"),
    }
}

#[tokio::test]
async fn runs_only_the_configured_protocol() {
    let config = Config {
        protocols: Protocols {
            grpc: None,
            http: Some(HttpConfig {
                endpoint: ListenAddr::localhost(0),
                ..HttpConfig::default()
            }),
        },
    };
    let sink = Sink::new();
    let cx = ReceiverContext {
        settings: Settings::new(otlp_id()),
        next: router_to(sink.shared(), &SignalKind::ALL),
    };
    let receiver = Receiver::bind(&config, cx).await.unwrap();
    assert!(receiver.grpc_addr().is_none());
    assert!(receiver.http_addr().is_some());
}

#[tokio::test]
async fn shutdown_stops_accepting_and_ends_the_task() {
    // Through the public trait, as the service builds it; ports found by binding first.
    let grpc_port = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let http_port = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (grpc, http) = (
        grpc_port.local_addr().unwrap(),
        http_port.local_addr().unwrap(),
    );
    drop((grpc_port, http_port));
    let config = Config {
        protocols: Protocols {
            grpc: Some(GrpcConfig {
                endpoint: ListenAddr(grpc),
                ..GrpcConfig::default()
            }),
            http: Some(HttpConfig {
                endpoint: ListenAddr(http),
                ..HttpConfig::default()
            }),
        },
    };
    let sink = Sink::new();
    let settings = Settings::new(otlp_id());
    let running = config
        .build(ReceiverContext {
            settings: settings.clone(),
            next: router_to(sink.shared(), &SignalKind::ALL),
        })
        .await
        .unwrap();
    let task = tokio::spawn(running);
    let mut t = TraceServiceClient::connect(format!("http://{grpc}"))
        .await
        .unwrap();
    t.export(traces(0, 1)).await.unwrap();
    assert_still_serving(http, 1).await;

    settings.shutdown.cancel();
    tokio::time::timeout(HANG_GUARD, task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    // Both ports are closed, and the open gRPC connection takes no new call.
    assert!(TcpStream::connect(http).await.is_err());
    assert!(TcpStream::connect(grpc).await.is_err());
    assert!(t.export(traces(5, 1)).await.is_err());
    assert_eq!(sink.item_count(SignalKind::Traces), 2);
}

/// Holds every batch until released, then hands it to the sink.
struct Gate {
    sink: Sink,
    entered: Notify,
    release: Notify,
}

impl Consumer for Gate {
    fn consume(&self, data: Signal) -> BoxFuture<'_, Result<(), ConsumeError>> {
        Box::pin(async move {
            let released = self.release.notified();
            self.entered.notify_one();
            released.await;
            self.sink.consume(data).await
        })
    }
}

#[tokio::test]
async fn shutdown_finishes_requests_in_flight() {
    let gate = Arc::new(Gate {
        sink: Sink::new(),
        entered: Notify::new(),
        release: Notify::new(),
    });
    let settings = Settings::new(otlp_id());
    let cx = ReceiverContext {
        settings: settings.clone(),
        next: router_to(gate.clone(), &SignalKind::ALL),
    };
    let receiver = Receiver::bind(&loopback(), cx).await.unwrap();
    let (grpc, http) = (receiver.grpc_addr().unwrap(), receiver.http_addr().unwrap());
    let task = tokio::spawn(receiver.run());

    // One gRPC call in flight...
    let mut t = TraceServiceClient::connect(format!("http://{grpc}"))
        .await
        .unwrap();
    let grpc_call = tokio::spawn(async move { t.export(traces(0, 1)).await });
    gate.entered.notified().await;
    // ...and one HTTP request.
    let http_call =
        tokio::spawn(
            async move { post(http, "/v1/logs", &[PB], &logs(0, 2).encode_to_vec()).await },
        );
    gate.entered.notified().await;

    settings.shutdown.cancel();
    tokio::task::yield_now().await;
    assert!(
        !task.is_finished(),
        "the receiver waits for requests in flight"
    );
    gate.release.notify_waiters();

    let grpc_result = tokio::time::timeout(HANG_GUARD, grpc_call)
        .await
        .unwrap()
        .unwrap();
    assert!(grpc_result.is_ok(), "{grpc_result:?}");
    let reply = tokio::time::timeout(HANG_GUARD, http_call)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(reply.status, 200, "{reply:?}");
    tokio::time::timeout(HANG_GUARD, task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(gate.sink.item_count(SignalKind::Traces), 1);
    assert_eq!(gate.sink.item_count(SignalKind::Logs), 2);
}

#[tokio::test]
async fn lifecycle_with_no_data() {
    let h = Harness::start(loopback()).await;
    assert!(h.stop().await.received().is_empty());
}
