//! The helper carrying items of an exporter's own type ([`build_items`]), with paused time.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use authwatch_core::config::Positive;
use authwatch_core::{ConsumeError, SignalKind};

use super::super::tests::fixtures::{fast_retry, no_queue, one_worker, settings, shut_down};
use super::super::tests::metric;
use super::super::{build_items, BatchConfig, QueueConfig, Retry, Sizer};
use super::*;

/// Numbers, counted as log records.
#[derive(Debug, Clone, PartialEq)]
struct Numbers(Vec<u32>);

impl QueueItem for Numbers {
    fn kind(&self) -> SignalKind {
        SignalKind::Logs
    }
    fn item_count(&self) -> usize {
        self.0.len()
    }
    fn encoded_size(&self) -> usize {
        self.0.len() * 4
    }
    fn merge(parts: Vec<Self>) -> Self {
        Numbers(parts.into_iter().flat_map(|p| p.0).collect())
    }
}

#[derive(Debug, thiserror::Error)]
#[error("scripted failure")]
struct Failed(Retry);

impl ExportError for Failed {
    fn retry(&self) -> Retry {
        self.0
    }
}

/// Records what it is asked to send; answers from a script, then OK.
#[derive(Clone, Default)]
struct Recorder {
    sent: Arc<Mutex<Vec<Numbers>>>,
    script: Arc<Mutex<VecDeque<Retry>>>,
}

impl Recorder {
    fn failing(script: Vec<Retry>) -> Self {
        Recorder {
            script: Arc::new(Mutex::new(script.into())),
            ..Recorder::default()
        }
    }
    fn sent(&self) -> Vec<Numbers> {
        self.sent.lock().unwrap().clone()
    }
}

impl ItemSender for Recorder {
    type Item = Numbers;
    type Error = Failed;

    fn send_item<'a>(&'a self, item: &'a Numbers) -> BoxFuture<'a, Result<Sent, Failed>> {
        Box::pin(async move {
            self.sent.lock().unwrap().push(item.clone());
            match self.script.lock().unwrap().pop_front() {
                Some(r) => Err(Failed(r)),
                None => Ok(Sent::default()),
            }
        })
    }
}

#[tokio::test(start_paused = true)]
async fn queued_items_are_sent_retried_and_counted_as_their_signal() {
    let s = settings("alertmanager/items");
    let rec = Recorder::failing(vec![Retry::Yes]);
    let built = build_items(s.clone(), rec.clone(), &one_worker(10), &fast_retry());
    built.queue.enqueue(Numbers(vec![1, 2])).await.unwrap();
    built.queue.enqueue(Numbers(vec![3])).await.unwrap();
    shut_down(&s, built.task).await;
    // The first send failed and was retried; then the second item.
    assert_eq!(
        rec.sent(),
        vec![Numbers(vec![1, 2]), Numbers(vec![1, 2]), Numbers(vec![3])]
    );
    let sent = metric(
        &s.telemetry,
        "exporter_sent_log_records_total",
        "alertmanager/items",
    );
    assert_eq!(sent, 3);
}

#[tokio::test(start_paused = true)]
async fn batched_items_are_merged_into_one_send() {
    let s = settings("alertmanager/items");
    let queue = QueueConfig {
        num_consumers: Positive(1),
        batch: Some(BatchConfig {
            flush_timeout: Duration::from_secs(1),
            min_size: 3,
            max_size: 0,
            sizer: Sizer::Items,
        }),
        ..QueueConfig::default()
    };
    let rec = Recorder::default();
    let built = build_items(s.clone(), rec.clone(), &queue, &fast_retry());
    let task = tokio::spawn(built.task.expect("a queued exporter has a task"));
    built.queue.enqueue(Numbers(vec![1])).await.unwrap();
    built.queue.enqueue(Numbers(vec![2, 3])).await.unwrap();
    built.queue.enqueue(Numbers(vec![4])).await.unwrap();
    // The first two reach `min_size`; the third goes after `flush_timeout`.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(rec.sent(), vec![Numbers(vec![1, 2, 3]), Numbers(vec![4])]);
    s.shutdown.cancel();
    task.await.unwrap().unwrap();
}

#[tokio::test(start_paused = true)]
async fn without_a_queue_enqueue_waits_for_the_send_and_its_outcome() {
    let s = settings("alertmanager/items");
    let rec = Recorder::failing(vec![Retry::No]);
    let built = build_items(s.clone(), rec.clone(), &no_queue(), &fast_retry());
    assert!(built.task.is_none());
    let err = built.queue.enqueue(Numbers(vec![1])).await.unwrap_err();
    assert!(matches!(err, ConsumeError::Permanent(_)), "{err:?}");
    built.queue.enqueue(Numbers(vec![2])).await.unwrap();
    assert_eq!(rec.sent(), vec![Numbers(vec![1]), Numbers(vec![2])]);
    let failed = metric(
        &s.telemetry,
        "exporter_send_failed_log_records_total",
        "alertmanager/items",
    );
    assert_eq!(failed, 1);
    s.shutdown.cancel();
    assert!(matches!(
        built.queue.enqueue(Numbers(vec![3])).await,
        Err(ConsumeError::Closed)
    ));
}
