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
pub(super) struct FakeError(Retry);

impl ExportError for FakeError {
    fn retry(&self) -> Retry {
        self.0
    }
}

/// Answers from a script (then OK), records attempt times, optionally waits for a permit.
#[derive(Clone, Default)]
pub(super) struct Fake {
    script: Arc<Mutex<VecDeque<Result<Sent, Retry>>>>,
    attempts: Arc<Mutex<Vec<(Instant, Signal)>>>,
    gate: Option<Arc<Semaphore>>,
}

impl Fake {
    pub(super) fn answering(script: Vec<Result<Sent, Retry>>) -> Self {
        Fake {
            script: Arc::new(Mutex::new(script.into())),
            ..Default::default()
        }
    }
    pub(super) fn gated(gate: Arc<Semaphore>) -> Self {
        Fake {
            gate: Some(gate),
            ..Default::default()
        }
    }
    pub(super) fn attempts(&self) -> Vec<(Instant, Signal)> {
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

pub(super) fn settings() -> Settings {
    Settings::new("otlp/test".parse().unwrap())
}

pub(super) fn fast_retry() -> RetryConfig {
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
    assert_eq!(err, authwatch_testkit::permanent("fake failure"));
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
    let scratch = authwatch_testkit::Scratch::reserve("helper-pq");
    let dir = scratch.0.clone();
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
}

#[tokio::test]
async fn an_unusable_storage_directory_fails_the_build() {
    let scratch = authwatch_testkit::Scratch::reserve("helper-file");
    let file = scratch.0.clone();
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
            .starts_with("sending_queue::storage: cannot create the queue directory"),
        "{err}"
    );
}
