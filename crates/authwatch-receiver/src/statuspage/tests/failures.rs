//! An unreachable page, malformed documents and recovery, pipelines that take only some
//! signals, polling from start to shutdown, and the status board.

use super::*;

#[tokio::test]
async fn unreachable_page_is_down_never_operational() {
    // A port nobody listens on.
    let addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let sink = Sink::new();
    let mut p = poller(
        &format!("http://{addr}/api/v2/summary.json"),
        Format::StatuspageV2,
        &[],
        &sink,
    );
    assert_eq!(p.poll_once().await, Polled::Failed("unreachable"));
    assert_eq!(p.failures(), 1);
    let g = last_gauges(&sink);
    assert_eq!(g, [(semconv::STATUS_UP.to_owned(), String::new(), 0)]);
    let recs = log_records(&sink);
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0].event_name, semconv::STATUS_PAGE_DOWN);
    assert_eq!(recs[0].severity_text, "ERROR");
    assert_eq!(
        str_attr(&recs[0].attributes, semconv::ERROR_TYPE).as_deref(),
        Some("unreachable")
    );
    // Still down: metric again, no second log.
    assert_eq!(p.poll_once().await, Polled::Failed("unreachable"));
    assert_eq!(p.failures(), 2);
    assert_eq!(gauge(&sink, semconv::STATUS_UP, ""), Some(0));
    assert_eq!(log_records(&sink).len(), 1);
}

#[tokio::test]
async fn malformed_documents_and_errors_are_reported_then_recovery() {
    let server = StatusServer::start().await;
    let sink = Sink::new();
    let mut p = poller(
        &server.url("/api/v2/summary.json"),
        Format::StatuspageV2,
        &[],
        &sink,
    );

    server.json("summary_incident.json", "\"a\"");
    assert_eq!(p.poll_once().await, Polled::Fresh);

    // An HTML error page with 200: malformed, not operational.
    server.set(200, "<html>maintenance</html>".into(), "text/html", None);
    assert_eq!(p.poll_once().await, Polled::Failed("malformed"));
    assert_eq!(
        last_gauges(&sink),
        [(semconv::STATUS_UP.to_owned(), String::new(), 0)]
    );
    let down = log_records(&sink).pop().unwrap();
    assert_eq!(down.event_name, semconv::STATUS_PAGE_DOWN);
    assert_eq!(
        str_attr(&down.attributes, semconv::ERROR_TYPE).as_deref(),
        Some("malformed")
    );

    // A 503: another kind of down, logged again.
    server.set(503, "busy".into(), "text/plain", None);
    assert_eq!(p.poll_once().await, Polled::Failed("http_status"));
    let down = log_records(&sink).pop().unwrap();
    assert_eq!(
        str_attr(&down.attributes, semconv::ERROR_TYPE).as_deref(),
        Some("http_status")
    );
    assert!(body(&down).contains("HTTP 503"), "{}", body(&down));
    assert_eq!(p.failures(), 2);

    // Back, with the incident resolved meanwhile.
    server.json("summary_resolved.json", "\"b\"");
    assert_eq!(p.poll_once().await, Polled::Fresh);
    assert_eq!(p.failures(), 0);
    assert_eq!(gauge(&sink, semconv::STATUS_UP, ""), Some(1));
    assert_eq!(gauge(&sink, semconv::STATUS_INDICATOR, ""), Some(0));
    let events: Vec<String> = log_records(&sink)
        .iter()
        .map(|r| r.event_name.clone())
        .collect();
    assert_eq!(
        events,
        [
            semconv::STATUS_INCIDENT_OPENED,
            semconv::STATUS_PAGE_DOWN,
            semconv::STATUS_PAGE_DOWN,
            semconv::STATUS_PAGE_RECOVERED,
            semconv::STATUS_INCIDENT_RESOLVED,
        ]
    );

    // A truncated feed is malformed too.
    let sink2 = Sink::new();
    let mut f = poller(&server.url("/feed"), Format::Atom, &[], &sink2);
    let truncated: String = data("feed_incident.atom").chars().take(600).collect();
    server.set(200, truncated, "application/atom+xml", None);
    assert_eq!(f.poll_once().await, Polled::Failed("malformed"));
    assert_eq!(
        last_gauges(&sink2),
        [(semconv::STATUS_UP.to_owned(), String::new(), 0)]
    );
}

#[tokio::test]
async fn only_signals_a_pipeline_takes_are_sent() {
    let server = StatusServer::start().await;
    server.json("summary_incident.json", "\"a\"");
    let sink = Sink::new();
    let mut next = Router::new();
    next.set(SignalKind::Logs, sink.shared());
    let page = PageConfig {
        name: "test".into(),
        url: server.url("/s").parse().unwrap(),
        format: Format::StatuspageV2,
        components: vec![],
    };
    let telemetry = Telemetry::new().receiver(&"statuspage".parse().unwrap(), "poll");
    let mut p = Poller::new(
        page,
        http_client(WAIT).unwrap(),
        next,
        telemetry,
        SystemTime::now(),
    );
    assert_eq!(p.poll_once().await, Polled::Fresh);
    assert_eq!(sink.item_count(SignalKind::Metrics), 0);
    assert_eq!(sink.item_count(SignalKind::Logs), 1);
}

#[tokio::test]
async fn receiver_polls_at_start_and_stops_on_shutdown() {
    let server = StatusServer::start().await;
    server.json("summary_operational.json", "\"a\"");
    let config = Config {
        interval: Duration::from_secs(3600),
        max_backoff: Duration::from_secs(3600),
        pages: vec![PageConfig {
            name: "test".into(),
            url: server.url("/api/v2/summary.json").parse().unwrap(),
            format: Format::StatuspageV2,
            components: vec![],
        }],
        ..Config::default()
    };
    let sink = Sink::new();
    let mut next = Router::new();
    next.set(SignalKind::Metrics, sink.shared());
    next.set(SignalKind::Logs, sink.shared());
    let id: ComponentId = "statuspage/test".parse().unwrap();
    let settings = Settings::new(id.clone());
    let telemetry = settings.telemetry.clone();
    let shutdown = settings.shutdown.clone();
    let task = config
        .build(ReceiverContext { settings, next })
        .await
        .unwrap();
    let handle = tokio::spawn(task);
    sink.wait_for_items(SignalKind::Metrics, 6, WAIT).await;
    shutdown.cancel();
    tokio::time::timeout(WAIT, handle)
        .await
        .expect("stops on shutdown")
        .unwrap()
        .unwrap();
    assert_eq!(gauge(&sink, semconv::STATUS_UP, ""), Some(1));
    assert!(telemetry.encode().contains(
        r#"authwatch_receiver_accepted_metric_points_total{receiver="statuspage/test",transport="poll"} 6"#
    ));
}

#[tokio::test]
async fn every_poll_is_published_on_the_status_board() {
    let server = StatusServer::start().await;
    let sink = Sink::new();
    let board = authwatch_core::board::StatusBoard::default();
    let mut p = poller(&server.url("/api/v2/summary.json"), Format::StatuspageV2, &[], &sink)
        .with_board(board.clone());
    let entry = || board.section(authwatch_core::board::PROVIDER_STATUS)["test"].clone();
    server.json("summary_operational.json", "\"v1\"");
    p.poll_once().await;
    let e = entry();
    assert_eq!(e["page"], "test");
    assert_eq!(e["format"], "statuspage_v2");
    assert_eq!(e["up"], true);
    assert_eq!(e["error"], serde_json::Value::Null);
    assert_eq!(e["indicator"], 0);
    assert_eq!(e["incidents"], serde_json::json!([]));
    let api = e["components"].as_array().unwrap().iter().find(|c| c["name"] == "API Requests").cloned().unwrap();
    assert_eq!(api["status"], "operational");
    server.json("summary_incident.json", "\"v2\"");
    p.poll_once().await;
    let e = entry();
    assert_eq!(e["indicator"], 1);
    assert_eq!(e["incidents"].as_array().unwrap().len(), 1);
    assert!(!e["incidents"][0]["name"].as_str().unwrap().is_empty());
    // Down: the last known state stays, marked down.
    server.set(500, "oops".into(), "text/plain", None);
    p.poll_once().await;
    let e = entry();
    assert_eq!(e["up"], false);
    assert_eq!(e["error"], "http_status");
    assert_eq!(e["indicator"], 1);
}
