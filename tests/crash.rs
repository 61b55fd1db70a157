//! Crash test: `kill -9` of authwatch mid-load with a persistent sending queue and the backend
//! down, a restart on the same queue directory, then the backend up: every span acknowledged to
//! the client arrives. Also: a queue file damaged between runs (truncated, overwritten) is moved
//! aside and authwatch starts and delivers new data instead of failing.
//!
//! No `batch` processor here: it acknowledges what it holds in memory, which a `kill -9` loses
//! (see docs/operations.md, "Persistent sending queue"). Receiver → persistent exporter queue acknowledges only what
//! was committed to disk. Batching happens after the queue instead, with `sending_queue.batch`:
//! the same crash with it loses nothing either, and the backend gets far fewer requests than the
//! client sent.

mod common;

use std::time::{Duration, Instant};

use authwatch_testkit::otlp_server::OtlpServer;
use common::load::*;
use common::*;

fn config(grpc: u16, backend: &OtlpServer, storage: &std::path::Path) -> String {
    config_with(grpc, backend, storage, "")
}

/// `queue_extra`: more `sending_queue` settings, e.g. `, batch: {min_size: 500}`.
fn config_with(
    grpc: u16,
    backend: &OtlpServer,
    storage: &std::path::Path,
    queue_extra: &str,
) -> String {
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
    sending_queue: {{num_consumers: 4, queue_size: 5000, storage: '{st}'{queue_extra}}}
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

/// `sending_queue.batch` after the persistent queue: batches taken from the queue (and being
/// retried while the backend is down) are still on disk after a `kill -9`; after the restart
/// every acknowledged span arrives, in far fewer requests than the client sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_with_exporter_batching_loses_nothing_and_sends_fewer_requests() {
    let backend = OtlpServer::start_stopped().await;
    let storage = Scratch::new("crash-batch-queue");
    let grpc = free_port();
    let yaml = config_with(
        grpc,
        &backend,
        &storage.0,
        ", batch: {flush_timeout: 200ms, min_size: 500}",
    );
    let aw = Authwatch::start(&yaml);
    let load = Load::start(grpc);

    tokio::time::sleep(Duration::from_secs(4)).await;
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
    tokio::time::sleep(Duration::from_secs(1)).await;
    // The backend comes up under load: the backlog goes in batches of `min_size`, live traffic
    // in batches of `flush_timeout`.
    backend.restart().await;
    let up_at = Instant::now();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (acked, refused) = load.finish().await;

    let got = wait_for_all(&backend, &acked, Duration::from_secs(60)).await;
    let lost: Vec<_> = acked.iter().filter(|i| !got.contains_key(i)).collect();
    let dup_spans: usize = got.values().map(|n| n - 1).sum();
    let client_requests = acked.len() / PER_REQUEST as usize;
    let backend_requests = backend.traces().len();
    let recovered_line = second_start
        .lines()
        .find(|l| l.contains("queued again"))
        .unwrap_or_default()
        .to_owned();
    eprintln!(
        "crash with sending_queue.batch: acked {} spans in {client_requests} requests \
         ({before_kill} spans before kill -9), refused {refused}; the backend got {backend_requests} \
         requests; all delivered {:.1} s after the backend came up; {dup_spans} duplicate spans; \
         {recovered_line}",
        acked.len(),
        up_at.elapsed().as_secs_f64()
    );
    assert!(
        before_kill >= 1000,
        "the load ran before the kill ({before_kill})"
    );
    assert!(!first_run.contains("panicked"), "first run:\n{first_run}");
    assert!(
        !recovered_line.contains("records=0 "),
        "the first run left its batches on disk: {recovered_line}"
    );
    assert!(
        lost.is_empty(),
        "{} acknowledged spans lost, e.g. {:?}",
        lost.len(),
        &lost[..lost.len().min(5)]
    );
    assert_eq!(dup_spans, 0);
    assert!(
        backend_requests * 5 <= client_requests,
        "batching: the backend got {backend_requests} requests for the client's {client_requests}"
    );
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
