//! Start, data flow and drain order with stand-in components.

use std::time::Duration;

use authwatch_core::SignalKind;
use authwatch_service::config::ConfigSource;
use authwatch_testkit::components::{events, factories, sink};

fn loaded(yaml: &str) -> authwatch_service::Loaded {
    let src = ConfigSource::Embedded {
        name: "test".into(),
        text: yaml.into(),
    };
    authwatch_service::load(&[src], &factories(), &|_| None).unwrap_or_else(|e| panic!("{e}"))
}

#[tokio::test]
async fn data_flows_through_connectors_and_drains_in_data_order() {
    let l = loaded(
        "
receivers: {test_receiver/flow: {emit: 5, signals: [traces, logs]}}
processors: {test_processor/flow: {}}
connectors: {test_connector/flow: {}}
exporters:
  test_exporter/flow_a: {sink: flow_a}
  test_exporter/flow_b: {sink: flow_b}
service:
  telemetry: {metrics: {level: none}}
  pipelines:
    traces/in: {receivers: [test_receiver/flow], processors: [test_processor/flow], exporters: [test_connector/flow, test_exporter/flow_a]}
    traces/out: {receivers: [test_connector/flow], exporters: [test_exporter/flow_b]}
    logs: {receivers: [test_receiver/flow], exporters: [test_exporter/flow_a]}
",
    );
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let run = tokio::spawn(authwatch_service::run(
        l,
        async {
            let _ = stop_rx.await;
        },
        |_| {},
    ));
    let a = sink("flow_a");
    let b = sink("flow_b");
    a.wait_for_items(SignalKind::Traces, 5, Duration::from_secs(10))
        .await;
    a.wait_for_items(SignalKind::Logs, 5, Duration::from_secs(10))
        .await;
    b.wait_for_items(SignalKind::Traces, 5, Duration::from_secs(10))
        .await;
    assert_eq!(b.item_count(SignalKind::Logs), 0);
    stop_tx.send(()).unwrap();
    let outcome = tokio::time::timeout(Duration::from_secs(20), run)
        .await
        .expect("shutdown in time")
        .unwrap()
        .unwrap();
    assert_eq!(outcome.exit_code(), 0);

    let ev = events("flow");
    let pos = |e: &str| {
        ev.iter()
            .position(|x| x == e)
            .unwrap_or_else(|| panic!("no event {e} in {ev:?}"))
    };
    // Start: exporters, then downstream pipeline/connector, then upstream processors, receivers last.
    assert!(
        pos("start exporter test_exporter/flow_b") < pos("start connector test_connector/flow")
    );
    assert!(
        pos("start connector test_connector/flow")
            < pos("start processor test_processor/flow in traces/in")
    );
    assert!(
        pos("start processor test_processor/flow in traces/in")
            < pos("start receiver test_receiver/flow")
    );
    // Stop: receivers, upstream processors, connector, exporters.
    assert!(
        pos("stop receiver test_receiver/flow")
            < pos("stop processor test_processor/flow in traces/in")
    );
    assert!(
        pos("stop processor test_processor/flow in traces/in")
            < pos("stop connector test_connector/flow")
    );
    assert!(pos("stop connector test_connector/flow") < pos("stop exporter test_exporter/flow_a"));
    assert!(pos("stop connector test_connector/flow") < pos("stop exporter test_exporter/flow_b"));
}

#[tokio::test]
async fn a_port_in_use_fails_startup_with_the_component_named() {
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port();
    let l = loaded(&format!(
        "
receivers: {{test_receiver/busy: {{}}}}
exporters: {{test_exporter/busy: {{sink: busy}}}}
service:
  telemetry: {{metrics: {{address: '127.0.0.1:{port}'}}}}
  pipelines: {{traces: {{receivers: [test_receiver/busy], exporters: [test_exporter/busy]}}}}
"
    ));
    let err = authwatch_service::run(l, std::future::pending(), |_| {})
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains(&format!("cannot listen on 127.0.0.1:{port}")),
        "{msg}"
    );
    assert!(msg.contains("metrics"), "{msg}");
}

#[tokio::test]
async fn self_telemetry_endpoint_serves_prometheus_text() {
    let l = loaded(
        "
receivers: {test_receiver/tele: {}}
exporters: {test_exporter/tele: {sink: tele}}
service:
  telemetry: {metrics: {address: '127.0.0.1:0'}}
  pipelines: {traces: {receivers: [test_receiver/tele], exporters: [test_exporter/tele]}}
",
    );
    let (addr_tx, addr_rx) = tokio::sync::oneshot::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let run = tokio::spawn(authwatch_service::run(
        l,
        async {
            let _ = stop_rx.await;
        },
        move |s| {
            let _ = addr_tx.send(s.metrics_address);
        },
    ));
    let addr = addr_rx.await.unwrap().expect("metrics address");
    let r = authwatch_testkit::raw_http::get(addr, "/metrics").await;
    assert_eq!(r.status, 200, "{r:?}");
    assert!(
        r.header("content-type")
            .is_some_and(|v| v.contains("application/openmetrics-text")),
        "{r:?}"
    );
    assert!(
        r.text().contains("authwatch_process_uptime_seconds"),
        "{r:?}"
    );
    stop_tx.send(()).unwrap();
    assert_eq!(run.await.unwrap().unwrap().exit_code(), 0);
}
