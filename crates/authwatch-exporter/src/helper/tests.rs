//! The helper against a scripted in-memory sender, with paused time.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use authwatch_core::health::ComponentStatus;
use authwatch_core::telemetry::Telemetry;
use authwatch_core::{ConsumeError, Settings, Signal};
use authwatch_testkit::trace_signal;
use tokio::sync::Semaphore;
use tokio::time::Instant;

use super::*;

/// Reads a counter or gauge of one exporter from the Prometheus text, e.g.
/// `metric(&t, "exporter_sent_spans_total", "otlp")`.
pub(crate) fn metric(t: &Telemetry, name: &str, exporter: &str) -> u64 {
    let prefix = format!("authwatch_{name}{{exporter=\"{exporter}\"}} ");
    t.encode()
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map(|v| v as u64)
        .unwrap_or(0)
}

#[derive(Debug, thiserror::Error)]
#[error("fake failure")]
struct FakeError(Retry);

impl ExportError for FakeError {
    fn retry(&self) -> Retry {
        self.0
    }
}

/// Answers from a script (then OK), records attempt times, optionally waits for a permit.
#[derive(Clone, Default)]
struct Fake {
    script: Arc<Mutex<VecDeque<Result<Sent, Retry>>>>,
    attempts: Arc<Mutex<Vec<(Instant, Signal)>>>,
    gate: Option<Arc<Semaphore>>,
}

impl Fake {
    fn answering(script: Vec<Result<Sent, Retry>>) -> Self {
        Fake {
            script: Arc::new(Mutex::new(script.into())),
            ..Default::default()
        }
    }
    fn gated(gate: Arc<Semaphore>) -> Self {
        Fake {
            gate: Some(gate),
            ..Default::default()
        }
    }
    fn attempts(&self) -> Vec<(Instant, Signal)> {
        self.attempts.lock().unwrap().clone()
    }
}

impl Sender for Fake {
    type Error = FakeError;
    fn send<'a>(&'a self, data: &'a Signal) -> BoxFuture<'a, Result<Sent, FakeError>> {
        Box::pin(async move {
            if let Some(g) = &self.gate {
                g.acquire().await.unwrap().forget();
            }
            self.attempts
                .lock()
                .unwrap()
                .push((Instant::now(), data.clone()));
            match self.script.lock().unwrap().pop_front() {
                None => Ok(Sent::default()),
                Some(Ok(s)) => Ok(s),
                Some(Err(r)) => Err(FakeError(r)),
            }
        })
    }
}

fn settings() -> Settings {
    Settings::new("otlp/test".parse().unwrap())
}

fn fast_retry() -> RetryConfig {
    RetryConfig {
        initial_interval: Duration::from_millis(100),
        max_interval: Duration::from_secs(1),
        max_elapsed_time: Duration::from_secs(60),
        randomization_factor: 0.0,
        multiplier: 2.0,
        ..RetryConfig::default()
    }
}

fn sync_queue() -> QueueConfig {
    QueueConfig {
        enabled: false,
        ..QueueConfig::default()
    }
}

#[tokio::test(start_paused = true)]
async fn transient_failures_are_retried_with_backoff_then_counted_sent() {
    let s = settings();
    let fake = Fake::answering(vec![Err(Retry::Yes), Err(Retry::Yes)]);
    let built = build_queued(s.clone(), fake.clone(), &sync_queue(), &fast_retry());
    built.consumer.consume(trace_signal(0, 3)).await.unwrap();
    let at: Vec<Instant> = fake.attempts().into_iter().map(|a| a.0).collect();
    assert_eq!(at.len(), 3);
    assert_eq!(at[1] - at[0], Duration::from_millis(100));
    assert_eq!(at[2] - at[1], Duration::from_millis(200));
    assert_eq!(
        metric(&s.telemetry, "exporter_sent_spans_total", "otlp/test"),
        3
    );
    assert_eq!(
        metric(
            &s.telemetry,
            "exporter_send_failed_spans_total",
            "otlp/test"
        ),
        0
    );
    assert_eq!(
        s.health.snapshot().components.get("otlp/test"),
        Some(&ComponentStatus::Ok)
    );
}

#[tokio::test(start_paused = true)]
async fn permanent_errors_are_not_retried() {
    let s = settings();
    let fake = Fake::answering(vec![Err(Retry::No)]);
    let built = build_queued(s.clone(), fake.clone(), &sync_queue(), &fast_retry());
    let err = built
        .consumer
        .consume(trace_signal(0, 2))
        .await
        .unwrap_err();
    assert_eq!(err, ConsumeError::Permanent("fake failure".into()));
    assert_eq!(fake.attempts().len(), 1);
    assert_eq!(
        metric(
            &s.telemetry,
            "exporter_send_failed_spans_total",
            "otlp/test"
        ),
        2
    );
    assert_eq!(
        s.health.snapshot().components.get("otlp/test"),
        Some(&ComponentStatus::RecoverableError("fake failure".into()))
    );
}

#[tokio::test(start_paused = true)]
async fn server_hints_are_honoured() {
    let s = settings();
    let fake = Fake::answering(vec![Err(Retry::After(Duration::from_secs(7)))]);
    let built = build_queued(s, fake.clone(), &sync_queue(), &fast_retry());
    built.consumer.consume(trace_signal(0, 1)).await.unwrap();
    let at = fake.attempts();
    assert_eq!(at[1].0 - at[0].0, Duration::from_secs(7));
}

#[tokio::test(start_paused = true)]
async fn gives_up_after_max_elapsed_time() {
    let s = settings();
    let fake = Fake::answering(vec![Err(Retry::Yes); 100]);
    let retry = RetryConfig {
        max_elapsed_time: Duration::from_secs(3),
        ..fast_retry()
    };
    let built = build_queued(s.clone(), fake.clone(), &sync_queue(), &retry);
    let start = Instant::now();
    let err = built
        .consumer
        .consume(trace_signal(0, 4))
        .await
        .unwrap_err();
    assert_eq!(
        err,
        ConsumeError::Full,
        "retryable failures stay retryable upstream"
    );
    assert!(start.elapsed() <= Duration::from_secs(3));
    // 0.1 + 0.2 + 0.4 + 0.8 + 1 = 2.5s; another 1s would pass the limit.
    assert_eq!(fake.attempts().len(), 6);
    assert_eq!(
        metric(
            &s.telemetry,
            "exporter_send_failed_spans_total",
            "otlp/test"
        ),
        4
    );
    assert_eq!(
        metric(&s.telemetry, "exporter_sent_spans_total", "otlp/test"),
        0
    );
}

#[tokio::test(start_paused = true)]
async fn retry_disabled_drops_at_once() {
    let s = settings();
    let fake = Fake::answering(vec![Err(Retry::Yes)]);
    let retry = RetryConfig {
        enabled: false,
        ..fast_retry()
    };
    let built = build_queued(s, fake.clone(), &sync_queue(), &retry);
    assert!(built.consumer.consume(trace_signal(0, 1)).await.is_err());
    assert_eq!(fake.attempts().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn partial_success_counts_rejected_as_failed() {
    let s = settings();
    let fake = Fake::answering(vec![Ok(Sent {
        rejected: 2,
        message: "too old".into(),
    })]);
    let built = build_queued(s.clone(), fake, &sync_queue(), &fast_retry());
    built.consumer.consume(trace_signal(0, 5)).await.unwrap();
    assert_eq!(
        metric(&s.telemetry, "exporter_sent_spans_total", "otlp/test"),
        3
    );
    assert_eq!(
        metric(
            &s.telemetry,
            "exporter_send_failed_spans_total",
            "otlp/test"
        ),
        2
    );
}

fn small_queue(block: bool) -> QueueConfig {
    QueueConfig {
        enabled: true,
        num_consumers: authwatch_core::config::Positive(1),
        queue_size: authwatch_core::config::Positive(2),
        block_on_overflow: block,
        ..QueueConfig::default()
    }
}

#[tokio::test]
async fn full_queue_refuses_and_counts() {
    let s = settings();
    let gate = Arc::new(Semaphore::new(0));
    let built = build_queued(
        s.clone(),
        Fake::gated(gate.clone()),
        &small_queue(false),
        &fast_retry(),
    );
    let task = tokio::spawn(built.task.unwrap());
    // One request in the (blocked) worker, two in the queue.
    built.consumer.consume(trace_signal(0, 1)).await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), async {
        while metric(&s.telemetry, "exporter_queue_size", "otlp/test") != 0 {
            tokio::task::yield_now().await;
        }
    })
    .await
    .unwrap();
    built.consumer.consume(trace_signal(1, 1)).await.unwrap();
    built.consumer.consume(trace_signal(2, 1)).await.unwrap();
    assert_eq!(metric(&s.telemetry, "exporter_queue_size", "otlp/test"), 2);
    assert_eq!(
        metric(&s.telemetry, "exporter_queue_capacity", "otlp/test"),
        2
    );
    let err = built
        .consumer
        .consume(trace_signal(3, 5))
        .await
        .unwrap_err();
    assert_eq!(err, ConsumeError::Full);
    assert_eq!(
        metric(
            &s.telemetry,
            "exporter_enqueue_failed_spans_total",
            "otlp/test"
        ),
        5
    );
    gate.add_permits(100);
    s.shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(
        metric(&s.telemetry, "exporter_sent_spans_total", "otlp/test"),
        3
    );
}

#[tokio::test]
async fn shutdown_refuses_new_data_and_drains_the_queue() {
    let s = settings();
    let gate = Arc::new(Semaphore::new(0));
    let fake = Fake::gated(gate.clone());
    let built = build_queued(s.clone(), fake.clone(), &small_queue(true), &fast_retry());
    let task = tokio::spawn(built.task.unwrap());
    for i in 0..3 {
        built.consumer.consume(trace_signal(i, 1)).await.unwrap();
    }
    // The queue is full: a blocking push waits, and shutdown wakes it with Closed.
    let consumer = built.consumer.clone();
    let blocked = tokio::spawn(async move { consumer.consume(trace_signal(9, 1)).await });
    s.shutdown.cancel();
    assert_eq!(blocked.await.unwrap(), Err(ConsumeError::Closed));
    assert_eq!(
        built.consumer.consume(trace_signal(10, 1)).await,
        Err(ConsumeError::Closed)
    );
    assert!(!task.is_finished());
    gate.add_permits(100);
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let mut sent: Vec<Signal> = fake.attempts().into_iter().map(|a| a.1).collect();
    sent.sort_by_key(|s| format!("{s:?}"));
    let mut want: Vec<Signal> = (0..3).map(|i| trace_signal(i, 1)).collect();
    want.sort_by_key(|s| format!("{s:?}"));
    assert_eq!(sent, want);
    assert_eq!(metric(&s.telemetry, "exporter_queue_size", "otlp/test"), 0);
}

#[tokio::test(start_paused = true)]
async fn draining_keeps_retrying() {
    let s = settings();
    let fake = Fake::answering(vec![Err(Retry::Yes), Err(Retry::Yes)]);
    let built = build_queued(s.clone(), fake.clone(), &small_queue(false), &fast_retry());
    built.consumer.consume(trace_signal(0, 1)).await.unwrap();
    s.shutdown.cancel();
    built.task.unwrap().await.unwrap();
    assert_eq!(fake.attempts().len(), 3);
    assert_eq!(
        metric(&s.telemetry, "exporter_sent_spans_total", "otlp/test"),
        1
    );
}

#[test]
fn rate_limit_lets_one_through_per_interval() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    rt.block_on(async {
        let r = RateLimit::default();
        assert_eq!(r.check(), Some(0));
        assert_eq!(r.check(), None);
        assert_eq!(r.check(), None);
        tokio::time::advance(WARN_EVERY).await;
        assert_eq!(r.check(), Some(2));
    });
}

/// Test settings shared by the exporters' tests: fast retries, one worker (order kept).
pub(crate) mod fixtures {
    use super::*;

    pub(crate) fn fast_retry() -> RetryConfig {
        RetryConfig {
            initial_interval: Duration::from_millis(20),
            max_interval: Duration::from_millis(100),
            max_elapsed_time: Duration::from_secs(60),
            ..RetryConfig::default()
        }
    }

    pub(crate) fn one_worker(queue_size: usize) -> QueueConfig {
        QueueConfig {
            num_consumers: authwatch_core::config::Positive(1),
            queue_size: authwatch_core::config::Positive(queue_size),
            ..QueueConfig::default()
        }
    }

    pub(crate) fn no_queue() -> QueueConfig {
        QueueConfig {
            enabled: false,
            ..QueueConfig::default()
        }
    }

    /// Settings for an exporter with this id.
    pub(crate) fn settings(id: &str) -> Settings {
        Settings::new(id.parse().expect("test id"))
    }

    /// Decodes `value` and validates it, returning every error line (paths from the component).
    pub(crate) fn config_errors<C: authwatch_core::ComponentConfig>(
        value: serde_json::Value,
    ) -> Vec<String> {
        match authwatch_core::registry::decode_config::<C>(value) {
            Err(e) => vec![e.to_string()],
            Ok(c) => {
                let mut v = authwatch_core::Validator::new("");
                c.validate(&mut v);
                v.errors().iter().map(|e| e.to_string()).collect()
            }
        }
    }

    /// Runs the named cases of a `testdata/invalid.yaml`: `name: { config: {...}, errors: [..] }`.
    pub(crate) fn check_invalid_cases<C: authwatch_core::ComponentConfig>(yaml: &str) {
        let cases: serde_yaml::Mapping = serde_yaml::from_str(yaml).expect("invalid.yaml parses");
        assert!(!cases.is_empty());
        for (name, case) in cases {
            let config = serde_json::to_value(&case["config"]).expect("case config");
            let want: Vec<String> =
                serde_yaml::from_value(case["errors"].clone()).expect("case errors");
            assert_eq!(config_errors::<C>(config), want, "case {name:?}");
        }
    }

    /// Waits for the exporter's task after cancelling shutdown (hang guard only).
    pub(crate) async fn shut_down(settings: &Settings, task: Option<authwatch_core::Running>) {
        settings.shutdown.cancel();
        if let Some(t) = task {
            tokio::time::timeout(Duration::from_secs(30), t)
                .await
                .expect("exporter drains within the hang guard")
                .expect("exporter task ends cleanly");
        }
    }
}

#[test]
fn storage_config_decodes_validates_and_claims_the_directory() {
    let cfg: QueueConfig =
        serde_json::from_value(serde_json::json!({"storage": "/var/lib/aw", "max_size_mib": 8}))
            .unwrap();
    assert_eq!(cfg.storage, Some(StorageDir::new("/var/lib/aw").unwrap()));
    assert_eq!(cfg.max_size_bytes(), 8 * 1024 * 1024);
    assert_eq!(
        cfg.resources(),
        vec![authwatch_core::Resource::Path("/var/lib/aw".into())]
    );
    assert_eq!(QueueConfig::default().max_size_mib.get(), 64);
    assert!(QueueConfig::default().resources().is_empty());
    for bad in ["", "  "] {
        let err = serde_json::from_value::<QueueConfig>(serde_json::json!({ "storage": bad }))
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("must be a non-empty directory path"),
            "{err}"
        );
    }
    let off = QueueConfig {
        enabled: false,
        ..cfg
    };
    assert!(off.resources().is_empty());
    let mut v = authwatch_core::Validator::new("exporters::otlp");
    off.validate(&mut v, "sending_queue");
    assert!(!v.has_errors());
    let warned = format!("{v:?}");
    assert!(
        warned.contains("is ignored while the queue is disabled"),
        "{warned}"
    );
}

#[tokio::test]
async fn persistent_queue_through_the_helper_keeps_unsent_data_across_builds() {
    let dir = std::env::temp_dir().join(format!("authwatch-helper-pq-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let queue = QueueConfig {
        num_consumers: authwatch_core::config::Positive(1),
        storage: Some(StorageDir::new(&dir).unwrap()),
        ..QueueConfig::default()
    };
    // First run: the destination never answers; the data stays stored.
    let s = settings();
    let gate = Arc::new(Semaphore::new(0));
    let built =
        try_build_queued(s.clone(), Fake::gated(gate.clone()), &queue, &fast_retry()).unwrap();
    let task = tokio::spawn(built.task.unwrap());
    for i in 0..3 {
        built.consumer.consume(trace_signal(i, 2)).await.unwrap();
    }
    assert!(metric(&s.telemetry, "exporter_queue_size_bytes", "otlp/test") > 0);
    assert!(dir.join("otlp_test").join("queue.redb").exists());
    s.shutdown.cancel();
    // The service's deadline: the task is dropped while a send hangs.
    tokio::time::sleep(Duration::from_millis(100)).await;
    task.abort();
    let _ = task.await;
    drop(built.consumer);

    // Second run on the same directory: everything is sent.
    let s = settings();
    let fake = Fake::default();
    let built = try_build_queued(s.clone(), fake.clone(), &queue, &fast_retry()).unwrap();
    let task = tokio::spawn(built.task.unwrap());
    tokio::time::timeout(Duration::from_secs(10), async {
        while fake.attempts().len() < 3 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the stored data is sent after the restart");
    let mut sent: Vec<String> = fake
        .attempts()
        .into_iter()
        .map(|a| format!("{:?}", a.1))
        .collect();
    sent.sort();
    let mut want: Vec<String> = (0..3)
        .map(|i| format!("{:?}", trace_signal(i, 2)))
        .collect();
    want.sort();
    assert_eq!(sent, want);
    s.shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(
        metric(&s.telemetry, "exporter_queue_size_bytes", "otlp/test"),
        0
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn an_unusable_storage_directory_fails_the_build() {
    let file = std::env::temp_dir().join(format!("authwatch-helper-file-{}", std::process::id()));
    std::fs::write(&file, "not a directory").unwrap();
    let queue = QueueConfig {
        storage: Some(StorageDir::new(&file).unwrap()),
        ..QueueConfig::default()
    };
    let err = try_build_queued(settings(), Fake::default(), &queue, &fast_retry())
        .err()
        .expect("refused");
    assert!(
        err.to_string()
            .starts_with("sending_queue.storage: cannot create the queue directory"),
        "{err}"
    );
    let _ = std::fs::remove_file(&file);
}

// === sending_queue.batch through the helper ===

/// A memory queue that records when each record was marked done.
struct Recording {
    inner: MemoryQueue,
    done: Mutex<Vec<(Instant, u64)>>,
}

impl Recording {
    fn new() -> Arc<Self> {
        Arc::new(Recording {
            inner: MemoryQueue::new(100, u64::MAX),
            done: Mutex::new(Vec::new()),
        })
    }
    fn done_ids(&self) -> Vec<u64> {
        let mut ids: Vec<u64> = self.done.lock().unwrap().iter().map(|d| d.1).collect();
        ids.sort();
        ids
    }
    fn done_at(&self) -> Vec<Instant> {
        self.done.lock().unwrap().iter().map(|d| d.0).collect()
    }
}

impl Queue for Recording {
    fn push(&self, data: Signal, block: bool) -> BoxFuture<'_, Result<(), PushError>> {
        self.inner.push(data, block)
    }
    fn pop(&self) -> BoxFuture<'_, Option<Queued>> {
        self.inner.pop()
    }
    fn done(&self, id: u64) {
        self.done.lock().unwrap().push((Instant::now(), id));
    }
    fn close(&self) {
        self.inner.close()
    }
    fn len(&self) -> usize {
        self.inner.len()
    }
    fn capacity(&self) -> usize {
        self.inner.capacity()
    }
}

fn batching(min_size: usize, max_size: usize) -> QueueConfig {
    QueueConfig {
        num_consumers: authwatch_core::config::Positive(2),
        batch: Some(BatchConfig {
            flush_timeout: Duration::from_millis(200),
            min_size,
            max_size,
            sizer: Sizer::Items,
        }),
        ..QueueConfig::default()
    }
}

/// Builds a batching exporter on `queue`, its task running.
fn start_batching(
    s: &Settings,
    fake: &Fake,
    cfg: &QueueConfig,
    queue: Arc<dyn Queue>,
) -> (
    authwatch_core::SharedConsumer,
    tokio::task::JoinHandle<Result<(), RunError>>,
) {
    let built = build_with_queue(s.clone(), fake.clone(), cfg, &fast_retry(), queue);
    (built.consumer, tokio::spawn(built.task.unwrap()))
}

/// Cancels shutdown and waits for the exporter's task (hang guard only).
async fn stop(s: &Settings, task: tokio::task::JoinHandle<Result<(), RunError>>) {
    s.shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(30), task)
        .await
        .expect("the exporter drains")
        .expect("no panic")
        .expect("a clean stop");
}

/// Lets the spawned tasks run (time is paused: nothing else moves).
async fn settle() {
    for _ in 0..50 {
        tokio::task::yield_now().await;
    }
}

fn spans(s: &Signal) -> usize {
    s.item_count()
}

#[tokio::test(start_paused = true)]
async fn batch_is_sent_as_one_request_once_min_size_is_reached() {
    let s = settings();
    let fake = Fake::default();
    let q = Recording::new();
    let (consumer, task) = start_batching(&s, &fake, &batching(6, 0), q.clone());
    for i in 0..2 {
        consumer.consume(trace_signal(i * 2, 2)).await.unwrap();
    }
    settle().await;
    assert!(fake.attempts().is_empty(), "4 of 6 spans: still gathering");
    consumer.consume(trace_signal(4, 2)).await.unwrap();
    settle().await;
    let sent = fake.attempts();
    assert_eq!(sent.len(), 1);
    let mut want = authwatch_testkit::traces(0, 2);
    for first in [2, 4] {
        want.resource_spans
            .extend(authwatch_testkit::traces(first, 2).resource_spans);
    }
    assert_eq!(sent[0].1, Signal::Traces(want), "one request, in order");
    assert_eq!(q.done_ids(), vec![0, 1, 2]);
    assert_eq!(
        metric(&s.telemetry, "exporter_sent_spans_total", "otlp/test"),
        6
    );
    assert_eq!(
        metric(
            &s.telemetry,
            "exporter_queue_batch_size_trigger_send_total",
            "otlp/test"
        ),
        1
    );
    assert!(s
        .telemetry
        .encode()
        .contains("authwatch_exporter_queue_batch_send_size_sum{exporter=\"otlp/test\"} 6.0"));
    stop(&s, task).await;
}

#[tokio::test(start_paused = true)]
async fn batch_is_sent_when_flush_timeout_passes_after_its_first_request() {
    let s = settings();
    let fake = Fake::default();
    let q = Recording::new();
    let (consumer, task) = start_batching(&s, &fake, &batching(100, 0), q.clone());
    let first = Instant::now();
    consumer.consume(trace_signal(0, 1)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(150)).await;
    consumer.consume(trace_signal(1, 1)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(49)).await;
    assert!(fake.attempts().is_empty());
    tokio::time::sleep(Duration::from_millis(2)).await;
    let sent = fake.attempts();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].0 - first, Duration::from_millis(200));
    assert_eq!(spans(&sent[0].1), 2);
    assert_eq!(
        metric(
            &s.telemetry,
            "exporter_queue_batch_timeout_trigger_send_total",
            "otlp/test"
        ),
        1
    );
    // The next batch starts its own clock.
    consumer.consume(trace_signal(2, 1)).await.unwrap();
    let second = Instant::now();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let sent = fake.attempts();
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[1].0 - second, Duration::from_millis(200));
    stop(&s, task).await;
}

#[tokio::test(start_paused = true)]
async fn max_size_bounds_batches_and_a_larger_request_goes_alone() {
    let s = settings();
    let fake = Fake::default();
    let q = Recording::new();
    let (consumer, task) = start_batching(&s, &fake, &batching(5, 5), q.clone());
    for (i, n) in [(0, 2), (10, 2), (20, 2), (30, 9)] {
        consumer.consume(trace_signal(i, n)).await.unwrap();
    }
    settle().await;
    let sizes: Vec<usize> = fake.attempts().iter().map(|a| spans(&a.1)).collect();
    assert_eq!(
        sizes,
        vec![4, 2, 9],
        "2+2, then 2 alone before the 9, then the 9 unsplit"
    );
    assert_eq!(q.done_ids(), vec![0, 1, 2, 3]);
    stop(&s, task).await;
}

#[tokio::test(start_paused = true)]
async fn records_are_done_together_only_after_the_batch_was_sent() {
    let s = settings();
    let gate = Arc::new(Semaphore::new(0));
    let fake = Fake::gated(gate.clone());
    let q = Recording::new();
    let (consumer, task) = start_batching(&s, &fake, &batching(3, 0), q.clone());
    for i in 0..3 {
        consumer.consume(trace_signal(i, 1)).await.unwrap();
    }
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(q.done_ids().is_empty(), "the send has not finished");
    gate.add_permits(1);
    settle().await;
    assert_eq!(fake.attempts().len(), 1);
    assert_eq!(q.done_ids(), vec![0, 1, 2]);
    stop(&s, task).await;
}

#[tokio::test(start_paused = true)]
async fn a_failed_batch_is_retried_whole_and_done_after_the_retry() {
    let s = settings();
    let fake = Fake::answering(vec![Err(Retry::Yes), Err(Retry::Yes)]);
    let q = Recording::new();
    let (consumer, task) = start_batching(&s, &fake, &batching(4, 0), q.clone());
    for i in 0..2 {
        consumer.consume(trace_signal(i * 2, 2)).await.unwrap();
    }
    tokio::time::sleep(Duration::from_secs(5)).await;
    let attempts = fake.attempts();
    assert_eq!(attempts.len(), 3);
    assert!(attempts
        .iter()
        .all(|a| a.1 == attempts[0].1 && spans(&a.1) == 4));
    assert_eq!(attempts[1].0 - attempts[0].0, Duration::from_millis(100));
    assert_eq!(q.done_ids(), vec![0, 1]);
    assert!(q.done_at().iter().all(|t| *t == attempts[2].0));
    assert_eq!(
        metric(&s.telemetry, "exporter_sent_spans_total", "otlp/test"),
        4
    );
    stop(&s, task).await;
}

#[tokio::test(start_paused = true)]
async fn a_permanently_refused_batch_is_counted_failed_and_done() {
    let s = settings();
    let fake = Fake::answering(vec![Err(Retry::No)]);
    let q = Recording::new();
    let (consumer, task) = start_batching(&s, &fake, &batching(4, 0), q.clone());
    for i in 0..2 {
        consumer.consume(trace_signal(i * 2, 2)).await.unwrap();
    }
    settle().await;
    assert_eq!(fake.attempts().len(), 1);
    assert_eq!(q.done_ids(), vec![0, 1]);
    assert_eq!(
        metric(
            &s.telemetry,
            "exporter_send_failed_spans_total",
            "otlp/test"
        ),
        4
    );
    stop(&s, task).await;
}

#[tokio::test(start_paused = true)]
async fn signals_are_sent_in_separate_batches() {
    let s = settings();
    let fake = Fake::default();
    let (consumer, task) = start_batching(
        &s,
        &fake,
        &batching(100, 0),
        Arc::new(MemoryQueue::new(100, u64::MAX)),
    );
    consumer.consume(trace_signal(0, 1)).await.unwrap();
    consumer
        .consume(authwatch_testkit::log_signal(0, 1))
        .await
        .unwrap();
    consumer.consume(trace_signal(1, 1)).await.unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut kinds: Vec<(authwatch_core::SignalKind, usize)> = fake
        .attempts()
        .iter()
        .map(|a| (a.1.kind(), spans(&a.1)))
        .collect();
    kinds.sort();
    assert_eq!(
        kinds,
        vec![
            (authwatch_core::SignalKind::Traces, 2),
            (authwatch_core::SignalKind::Logs, 1)
        ]
    );
    stop(&s, task).await;
}

#[tokio::test(start_paused = true)]
async fn shutdown_sends_what_is_being_gathered_at_once() {
    let s = settings();
    let fake = Fake::default();
    let q = Recording::new();
    let (consumer, task) = start_batching(&s, &fake, &batching(100, 0), q.clone());
    consumer.consume(trace_signal(0, 3)).await.unwrap();
    settle().await;
    let stopping = Instant::now();
    stop(&s, task).await;
    let sent = fake.attempts();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].0, stopping, "no wait for flush_timeout");
    assert_eq!(q.done_ids(), vec![0]);
}

#[tokio::test(start_paused = true)]
async fn no_more_than_num_consumers_batches_are_sent_at_once() {
    let s = settings();
    let gate = Arc::new(Semaphore::new(0));
    let fake = Fake::gated(gate.clone());
    let q = Recording::new();
    // Two consumers; batches of one request each.
    let (consumer, task) = start_batching(&s, &fake, &batching(1, 0), q.clone());
    for i in 0..5 {
        consumer.consume(trace_signal(i, 1)).await.unwrap();
    }
    settle().await;
    assert_eq!(
        q.len(),
        2,
        "two batches being sent, one held by the batcher"
    );
    gate.add_permits(100);
    settle().await;
    assert_eq!(fake.attempts().len(), 5);
    assert_eq!(q.done_ids(), vec![0, 1, 2, 3, 4]);
    stop(&s, task).await;
}

/// What the exporter's queue file holds, in records, once the last handle on it is gone.
async fn stored_records(dir: &std::path::Path) -> usize {
    for _ in 0..100 {
        match PersistentQueue::open(
            &dir.join("otlp_test"),
            "otlp/test",
            1000,
            1 << 30,
            Telemetry::new().exporter(&"otlp/test".parse().unwrap()),
        ) {
            Ok((q, recovered)) => {
                drop(q);
                return recovered.records;
            }
            // Aborted send tasks still hold the queue for a moment.
            Err(persistent::StorageError::InUse(_)) => {
                tokio::time::sleep(Duration::from_millis(20)).await
            }
            Err(e) => panic!("{e}"),
        }
    }
    panic!("the queue file stays in use");
}

#[tokio::test]
async fn a_persistent_batch_survives_a_crash_whole_and_is_deleted_once_sent() {
    let dir = std::env::temp_dir().join(format!("authwatch-helper-batch-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let queue = QueueConfig {
        storage: Some(StorageDir::new(&dir).unwrap()),
        ..batching(6, 0)
    };
    // First run: the batch of 3 records is being sent when the process dies.
    let s = settings();
    let gate = Arc::new(Semaphore::new(0));
    let fake = Fake::gated(gate.clone());
    let built = try_build_queued(s.clone(), fake.clone(), &queue, &fast_retry()).unwrap();
    let task = tokio::spawn(built.task.unwrap());
    for i in 0..3 {
        built
            .consumer
            .consume(trace_signal(i * 2, 2))
            .await
            .unwrap();
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        metric(&s.telemetry, "exporter_queue_size", "otlp/test"),
        0,
        "all three taken into the batch"
    );
    task.abort();
    let _ = task.await;
    drop(built.consumer);
    assert_eq!(
        stored_records(&dir).await,
        3,
        "nothing deleted before the send ended"
    );

    // Second run: the three records are sent again as one batch, then deleted.
    let s = settings();
    let fake = Fake::default();
    let built = try_build_queued(s.clone(), fake.clone(), &queue, &fast_retry()).unwrap();
    let task = tokio::spawn(built.task.unwrap());
    tokio::time::timeout(Duration::from_secs(10), async {
        while metric(&s.telemetry, "exporter_sent_spans_total", "otlp/test") < 6 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the stored batch is sent after the restart");
    let sent = fake.attempts();
    assert_eq!(sent.len(), 1);
    assert_eq!(spans(&sent[0].1), 6);
    stop(&s, task).await;
    drop(built.consumer);
    assert_eq!(
        stored_records(&dir).await,
        0,
        "every record of the batch was deleted"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
