//! The self-telemetry endpoint (`:8888/metrics`) bounds its clients as every authwatch server
//! does (`authwatch_net::serve_http` with the default limits).

use std::time::Duration;

use authwatch_core::telemetry::Telemetry;
use authwatch_testkit::slow_client::{
    assert_idle_connection_is_closed, assert_slow_head_is_cut_off,
};
use tokio_util::sync::CancellationToken;

#[tokio::test(start_paused = true)]
async fn slow_and_idle_scrapers_are_cut_off() {
    let shutdown = CancellationToken::new();
    let (addr, task) = authwatch_service::telemetry::serve_metrics(
        "127.0.0.1:0".parse().unwrap(),
        Telemetry::new(),
        shutdown.clone(),
    )
    .await
    .unwrap();
    let task = tokio::spawn(task);
    // The defaults, in paused time: `read_header_timeout` 10s, `idle_timeout` 60s.
    assert_slow_head_is_cut_off(addr, Duration::from_secs(30)).await;
    let status = assert_idle_connection_is_closed(addr, "/metrics", Duration::from_secs(120)).await;
    assert_eq!(status, 200);
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(30), task)
        .await
        .expect("the server stops on shutdown")
        .unwrap()
        .unwrap();
}
