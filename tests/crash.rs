//! Crash test: `kill -9` of authwatch mid-load with a persistent sending queue and the backend
//! down, a restart on the same queue directory, then the backend up: every span acknowledged to
//! the client arrives. Also: a queue file damaged between runs (truncated, overwritten) is moved
//! aside and authwatch starts and delivers new data instead of failing.
//!
//! No `batch` processor here: it acknowledges what it holds in memory, which a `kill -9` loses
//! (see README, "Persistent sending queue"). Receiver → persistent exporter queue acknowledges only what
//! was committed to disk.

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

fn config(grpc: u16, backend: &OtlpServer, storage: &std::path::Path) -> String {
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
    sending_queue: {{num_consumers: 4, queue_size: 5000, storage: '{st}'}}
    retry_on_failure: {{initial_interval: 100ms, max_interval: 1s, max_elapsed_time: 0s}}
service:
  shutdown_timeout: 5s
  telemetry: {{metrics: {{level: none}}}}
  pipelines:
    traces: {{receivers: [otlp], exporters: [otlp]}}
",
        bg = backend.grpc_addr(),
        st = storage.display(),
    )
}

fn kill9(mut aw: Authwatch) -> String {
    aw.signal("KILL");
    let status = aw.wait(Duration::from_secs(10));
    assert_eq!(status.code(), None, "killed by a signal");
    aw.output()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_load_then_restart_loses_nothing_acknowledged() {
    let backend = OtlpServer::start_stopped().await;
    let storage = Scratch::new("crash-queue");
    let grpc = free_port();
    let yaml = config(grpc, &backend, &storage.0);
    let aw = Authwatch::start(&yaml);
    let load = Load::start(grpc);

    tokio::time::sleep(Duration::from_secs(5)).await;
    let before_kill = load.acked();
    let first_run = tokio::task::spawn_blocking(move || kill9(aw))
        .await
        .unwrap();
    let mut aw = tokio::task::spawn_blocking(move || Authwatch::start(&yaml))
        .await
        .unwrap();
    aw.wait_for_output(
        "queued again what the previous run left",
        Duration::from_secs(5),
    );
    let second_start = aw.output();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (acked, refused) = load.finish().await;
    backend.restart().await;
    let up_at = Instant::now();

    let got = wait_for_all(&backend, &acked, Duration::from_secs(120)).await;
    let lost: Vec<_> = acked.iter().filter(|i| !got.contains_key(i)).collect();
    let dup_spans: usize = got.values().map(|n| n - 1).sum();
    let recovered_line = second_start
        .lines()
        .find(|l| l.contains("queued again"))
        .unwrap_or_default()
        .to_owned();
    eprintln!(
        "crash: acked {} spans ({before_kill} before kill -9), refused {refused} requests; \
         delivered {:.1} s after the backend came up; {dup_spans} duplicate spans; {recovered_line}",
        acked.len(),
        up_at.elapsed().as_secs_f64()
    );
    assert!(
        before_kill >= 1000,
        "the load ran before the kill ({before_kill})"
    );
    assert!(
        acked.len() > before_kill,
        "the restarted authwatch took load too"
    );
    assert!(!first_run.contains("panicked"), "first run:\n{first_run}");
    assert!(
        lost.is_empty(),
        "{} acknowledged spans lost, e.g. {:?}",
        lost.len(),
        &lost[..lost.len().min(5)]
    );
    // Nothing was sent before the restart of the backend, so nothing is sent twice.
    assert_eq!(dup_spans, 0);
    drop(aw);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_queue_file_is_moved_aside_and_authwatch_still_delivers() {
    for damage in ["truncate", "overwrite"] {
        let backend = OtlpServer::start_stopped().await;
        let storage = Scratch::new("damaged-queue");
        let grpc = free_port();
        let yaml = config(grpc, &backend, &storage.0);
        let aw = Authwatch::start(&yaml);
        let load = Load::start(grpc);
        tokio::time::sleep(Duration::from_secs(2)).await;
        let (acked, _) = load.finish().await;
        assert!(!acked.is_empty());
        tokio::task::spawn_blocking(move || kill9(aw))
            .await
            .unwrap();

        let file = storage.0.join("otlp").join("queue.redb");
        let mut bytes = std::fs::read(&file).expect("the queue file exists");
        match damage {
            "truncate" => bytes.truncate(bytes.len() / 3),
            _ => bytes
                .iter_mut()
                .for_each(|b| *b = b.wrapping_mul(31).wrapping_add(7)),
        }
        std::fs::write(&file, &bytes).unwrap();

        let yaml2 = yaml.clone();
        let aw = tokio::task::spawn_blocking(move || Authwatch::start(&yaml2))
            .await
            .unwrap();
        let out = aw.output();
        let aside: Vec<_> = std::fs::read_dir(storage.0.join("otlp"))
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| {
                e.file_name()
                    .to_string_lossy()
                    .starts_with("queue.redb.corrupt-")
            })
            .collect();
        eprintln!(
            "{damage}: moved aside {}; log: {}",
            aside.len(),
            out.lines()
                .filter(|l| l.contains("queue"))
                .collect::<Vec<_>>()
                .join(" | ")
        );
        if damage == "overwrite" {
            assert_eq!(aside.len(), 1, "{out}");
            assert!(out.contains("moved it aside"), "{out}");
        }
        // New data still flows end to end.
        backend.restart().await;
        let load = Load::start(grpc);
        tokio::time::sleep(Duration::from_secs(2)).await;
        let (acked, _) = load.finish().await;
        assert!(!acked.is_empty());
        let got = wait_for_all(&backend, &acked, Duration::from_secs(60)).await;
        assert!(
            acked.iter().all(|i| got.contains_key(i)),
            "{damage}: new data lost"
        );
        drop(aw);
    }
}
