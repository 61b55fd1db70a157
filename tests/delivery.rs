//! Delivery guarantees of the real binary: a backend that is down, then up, loses nothing that
//! was acknowledged; SIGTERM under load drains and exits 0.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use authwatch_core::otlp::collector::trace::v1::trace_service_client::TraceServiceClient;
use authwatch_core::SignalKind;
use authwatch_testkit::otlp_server::OtlpServer;
use common::load::arrived;
use common::*;
use tonic::Code;

fn config(
    grpc: u16,
    backend: &OtlpServer,
    extra_exporter: &str,
    batch: &str,
    timeout: &str,
) -> String {
    format!(
        "
receivers:
  otlp:
    protocols:
      grpc: {{endpoint: '127.0.0.1:{grpc}'}}
processors:
  batch: {batch}
exporters:
  otlp:
    endpoint: 'http://{bg}'
    tls: {{insecure: true}}
    timeout: 2s
    retry_on_failure: {{initial_interval: 50ms, max_interval: 500ms, max_elapsed_time: 0s}}
    {extra_exporter}
service:
  shutdown_timeout: {timeout}
  telemetry: {{metrics: {{level: none}}}}
  pipelines:
    traces: {{receivers: [otlp], processors: [batch], exporters: [otlp]}}
",
        bg = backend.grpc_addr()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backend_down_then_up_loses_nothing_acknowledged() {
    let backend = OtlpServer::start_stopped().await;
    let grpc = free_port();
    let _aw = Authwatch::start(&config(
        grpc,
        &backend,
        "sending_queue: {queue_size: 20, num_consumers: 2}",
        "{send_batch_size: 10, timeout: 10ms}",
        "10s",
    ));
    let mut client = TraceServiceClient::connect(format!("http://127.0.0.1:{grpc}"))
        .await
        .unwrap();

    let mut acked = Vec::new();
    let mut refusals = 0usize;
    for k in 0..200u64 {
        if k == 60 {
            // The queue has filled and senders have seen refusals: bring the backend up.
            tokio::time::sleep(Duration::from_secs(1)).await;
            backend.restart().await;
        }
        let req = authwatch_testkit::traces(k * 10, 10);
        loop {
            match client.export(req.clone()).await {
                Ok(_) => {
                    acked.extend((k * 10..k * 10 + 10).map(|i| i as i64));
                    break;
                }
                Err(st) if matches!(st.code(), Code::Unavailable | Code::ResourceExhausted) => {
                    refusals += 1;
                    if k < 60 && refusals > 20 {
                        // Backend still down and authwatch is refusing: that is the backpressure
                        // we want to see. Move on to the restart.
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(st) => panic!("unexpected error {st:?}"),
            }
        }
    }
    assert!(
        refusals > 0,
        "with the backend down, senders must be refused with retryable codes"
    );
    let want = acked.len();
    assert!(
        want >= 1500,
        "most requests are acknowledged once the backend is up ({want})"
    );
    backend
        .wait_for_items(SignalKind::Traces, want, Duration::from_secs(60))
        .await;
    let got = arrived(&backend);
    for idx in &acked {
        assert!(got.contains_key(idx), "acknowledged span {idx} was lost");
    }
    let dups = got.values().filter(|n| **n > 1).count();
    assert_eq!(dups, 0, "no duplicates on loopback");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_drains_and_exits_zero() {
    let backend = OtlpServer::start().await;
    let grpc = free_port();
    let mut aw = Authwatch::start(&config(
        grpc,
        &backend,
        "",
        "{send_batch_size: 512, timeout: 200ms}",
        "10s",
    ));
    let acked = Arc::new(Mutex::new(Vec::<i64>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let mut senders = Vec::new();
    for t in 0..2u64 {
        let acked = acked.clone();
        let stop = stop.clone();
        senders.push(tokio::spawn(async move {
            let mut client = TraceServiceClient::connect(format!("http://127.0.0.1:{grpc}"))
                .await
                .unwrap();
            let mut k = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let first = (t * 1_000_000) + k * 50;
                match client.export(authwatch_testkit::traces(first, 50)).await {
                    Ok(_) => acked
                        .lock()
                        .unwrap()
                        .extend((first..first + 50).map(|i| i as i64)),
                    Err(_) => break, // shutting down: refused or connection closed
                }
                k += 1;
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    aw.signal("TERM");
    let status = tokio::task::spawn_blocking(move || {
        let s = aw.wait(Duration::from_secs(20));
        (s, aw.output())
    })
    .await
    .unwrap();
    stop.store(true, Ordering::Relaxed);
    for s in senders {
        s.await.unwrap();
    }
    assert_eq!(status.0.code(), Some(0), "{}", status.1);
    assert!(status.1.contains("signal=\"SIGTERM\""), "{}", status.1);
    assert!(status.1.contains("Shutdown complete."), "{}", status.1);
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() > 1000, "the load ran ({} spans)", acked.len());
    let got = arrived(&backend);
    let lost: Vec<_> = acked.iter().filter(|i| !got.contains_key(i)).collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged spans lost, e.g. {:?}",
        lost.len(),
        &lost[..lost.len().min(5)]
    );
}
