//! Fault test: steady load from a real OTLP/gRPC client through the binary (persistent queue,
//! batching after it with `sending_queue.batch`) to a backend that is stopped for 60 s and
//! restarted. Every span acknowledged to the client arrives; duplicates can
//! only come from requests in flight when the backend went away (at least once, see
//! docs/operations.md, "Persistent sending queue").

mod common;

use std::time::{Duration, Instant};

use authwatch_testkit::otlp_server::OtlpServer;
use common::load::*;
use common::*;

fn config(grpc: u16, metrics: u16, backend: &OtlpServer, storage: &std::path::Path) -> String {
    format!(
        "
receivers:
  otlp:
    protocols:
      grpc: {{endpoint: '127.0.0.1:{grpc}'}}
exporters:
  otlp:
    endpoint: 'http://{bg}'
    tls: {{insecure: true}}
    timeout: 2s
    sending_queue:
      num_consumers: 4
      queue_size: 5000
      max_size_mib: 64
      storage: '{st}'
      batch: {{min_size: 200, max_size: 200, flush_timeout: 200ms}}
    retry_on_failure: {{initial_interval: 100ms, max_interval: 1s, max_elapsed_time: 0s}}
service:
  shutdown_timeout: 10s
  telemetry: {{metrics: {{address: '127.0.0.1:{metrics}'}}}}
  pipelines:
    traces: {{receivers: [otlp], exporters: [otlp]}}
",
        bg = backend.grpc_addr(),
        st = storage.display(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backend_down_for_60s_loses_nothing_acknowledged() {
    let backend = OtlpServer::start().await;
    let storage = Scratch::new("fault-queue");
    let (grpc, metrics) = (free_port(), free_port());
    let _aw = Authwatch::start(&config(grpc, metrics, &backend, &storage.0));
    let metrics: std::net::SocketAddr = format!("127.0.0.1:{metrics}").parse().unwrap();
    let load = Load::start(grpc);

    tokio::time::sleep(Duration::from_secs(3)).await;
    let before = load.acked();
    backend.stop().await;
    let down_at = Instant::now();
    tokio::time::sleep(Duration::from_secs(59)).await;
    let text = scrape(metrics).await;
    let q = |name: &str| sample(&text, &format!("authwatch_{name}{{exporter=\"otlp\"}}"));
    let (queued, bytes, age) = (
        q("exporter_queue_size"),
        q("exporter_queue_size_bytes"),
        q("exporter_queue_oldest_age_seconds"),
    );
    tokio::time::sleep(Duration::from_secs(60).saturating_sub(down_at.elapsed())).await;
    let during = load.acked() - before;
    backend.restart().await;
    let up_at = Instant::now();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let (acked, refused) = load.finish().await;

    let got = wait_for_all(&backend, &acked, Duration::from_secs(120)).await;
    let drained_in = up_at.elapsed();
    let lost: Vec<_> = acked.iter().filter(|i| !got.contains_key(i)).collect();
    let dup_spans: usize = got.values().map(|n| n - 1).sum();
    eprintln!(
        "fault: acked {} spans ({during} while the backend was down), refused {refused} requests; \
         after 59 s down the queue held {queued} requests, {bytes} bytes, oldest {age:.1} s; \
         drained {:.1} s after the restart; {dup_spans} duplicate spans",
        acked.len(),
        drained_in.as_secs_f64()
    );
    assert!(
        during >= 10_000,
        "the load kept being acknowledged while the backend was down ({during})"
    );
    assert!(
        queued > 0.0 && bytes > 0.0 && age > 30.0,
        "queue gauges: {queued} {bytes} {age}"
    );
    assert!(
        lost.is_empty(),
        "{} acknowledged spans lost, e.g. {:?}",
        lost.len(),
        &lost[..lost.len().min(5)]
    );
    // Only requests in flight when the backend stopped can arrive twice: at most one batch per
    // consumer (4 x `max_size` 200 spans).
    assert!(dup_spans <= 4 * 200, "{dup_spans} duplicate spans");
}
