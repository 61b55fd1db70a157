//! Fault test: steady load from a real OTLP/gRPC client through the binary to a backend that is
//! stopped for 60 s and restarted. Every span acknowledged to the client arrives; duplicates can
//! only come from requests in flight when the backend went away (at least once, see
//! README, "Persistent sending queue").

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use authwatch_core::otlp::collector::trace::v1::trace_service_client::TraceServiceClient;
use authwatch_testkit::otlp_server::OtlpServer;
use common::*;

/// Spans per client request.
const PER_REQUEST: u64 = 10;
/// One request per this interval (500 spans/s).
const EVERY: Duration = Duration::from_millis(20);
/// Hard cap on requests, whatever happens to the timing.
const MAX_REQUESTS: u64 = 20_000;

/// `test.index` of every span the backend accepted, with how often it arrived.
fn arrived(backend: &OtlpServer) -> HashMap<i64, usize> {
    let mut seen = HashMap::new();
    for req in backend.traces() {
        for rs in &req.resource_spans {
            for ss in &rs.scope_spans {
                for s in &ss.spans {
                    let idx = s
                        .attributes
                        .iter()
                        .find(|kv| kv.key == "test.index")
                        .and_then(|kv| match kv.value.as_ref()?.value.as_ref()? {
                            authwatch_core::otlp::common::v1::any_value::Value::IntValue(i) => {
                                Some(*i)
                            }
                            _ => None,
                        });
                    *seen.entry(idx.expect("test.index")).or_insert(0) += 1;
                }
            }
        }
    }
    seen
}

/// Waits (hang guard `timeout`) until every acknowledged index arrived; returns the arrivals.
async fn wait_for_all(
    backend: &OtlpServer,
    acked: &[i64],
    timeout: Duration,
) -> HashMap<i64, usize> {
    let deadline = Instant::now() + timeout;
    loop {
        let got = arrived(backend);
        if acked.iter().all(|i| got.contains_key(i)) || Instant::now() > deadline {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// A client sending one request every [`EVERY`] until stopped; refused requests are counted and
/// not retried (their spans are simply not acknowledged).
struct Load {
    acked: Arc<Mutex<Vec<i64>>>,
    refused: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Load {
    fn start(grpc: u16) -> Load {
        let acked = Arc::new(Mutex::new(Vec::new()));
        let refused = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (a, r, s) = (acked.clone(), refused.clone(), stop.clone());
        let task = tokio::spawn(async move {
            let url = format!("http://127.0.0.1:{grpc}");
            let mut client = None;
            let mut tick = tokio::time::interval(EVERY);
            for k in 0..MAX_REQUESTS {
                tick.tick().await;
                if s.load(Ordering::Relaxed) {
                    break;
                }
                if client.is_none() {
                    client = TraceServiceClient::connect(url.clone()).await.ok();
                }
                let Some(c) = client.as_mut() else {
                    r.fetch_add(1, Ordering::Relaxed);
                    continue;
                };
                let first = k * PER_REQUEST;
                let req = authwatch_testkit::traces(first, PER_REQUEST);
                match tokio::time::timeout(Duration::from_secs(10), c.export(req)).await {
                    Ok(Ok(_)) => a
                        .lock()
                        .unwrap()
                        .extend((first..first + PER_REQUEST).map(|i| i as i64)),
                    Ok(Err(st)) => {
                        r.fetch_add(1, Ordering::Relaxed);
                        if !matches!(
                            st.code(),
                            tonic::Code::Unavailable | tonic::Code::ResourceExhausted
                        ) {
                            // Transport trouble (authwatch restarting): connect again.
                            client = None;
                        }
                    }
                    Err(_) => {
                        r.fetch_add(1, Ordering::Relaxed);
                        client = None;
                    }
                }
            }
        });
        Load {
            acked,
            refused,
            stop,
            task,
        }
    }

    async fn finish(self) -> (Vec<i64>, usize) {
        self.stop.store(true, Ordering::Relaxed);
        tokio::time::timeout(Duration::from_secs(30), self.task)
            .await
            .expect("load stops")
            .unwrap();
        let acked = self.acked.lock().unwrap().clone();
        (acked, self.refused.load(Ordering::Relaxed))
    }

    fn acked(&self) -> usize {
        self.acked.lock().unwrap().len()
    }
}

fn config(grpc: u16, metrics: u16, backend: &OtlpServer, storage: &std::path::Path) -> String {
    format!(
        "
receivers:
  otlp:
    protocols:
      grpc: {{endpoint: '127.0.0.1:{grpc}'}}
processors:
  batch: {{send_batch_size: 200, timeout: 200ms}}
exporters:
  otlp:
    endpoint: 'http://{bg}'
    tls: {{insecure: true}}
    timeout: 2s
    sending_queue: {{num_consumers: 4, queue_size: 2000, max_size_mib: 64, storage: '{st}'}}
    retry_on_failure: {{initial_interval: 100ms, max_interval: 1s, max_elapsed_time: 0s}}
service:
  shutdown_timeout: 10s
  telemetry: {{metrics: {{address: '127.0.0.1:{metrics}'}}}}
  pipelines:
    traces: {{receivers: [otlp], processors: [batch], exporters: [otlp]}}
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
    // consumer (4 x 200 spans, rounded up for batch overshoot).
    assert!(dup_spans <= 4 * 400, "{dup_spans} duplicate spans");
}
