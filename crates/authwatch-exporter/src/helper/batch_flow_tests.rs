//! `sending_queue.batch` through the helper: min and max sizes, the flush timeout, records done
//! together once their batch was sent, retries, signals apart, and a persistent batch surviving
//! a crash.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use authwatch_core::telemetry::Telemetry;
use authwatch_core::{Settings, Signal};
use authwatch_testkit::trace_signal;
use tokio::sync::Semaphore;
use tokio::time::Instant;

use super::tests::{fast_retry, metric, settings, Fake};
use super::*;

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
    let scratch = authwatch_testkit::Scratch::reserve("helper-batch");
    let dir = scratch.0.clone();
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
}
