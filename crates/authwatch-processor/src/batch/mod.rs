//! # `batch` processor
//!
//! Groups the spans, metric data points or log records of its pipeline into larger requests
//! before they go on, like the OpenTelemetry Collector's `batch` processor. Fewer, larger
//! requests compress better and cost exporters fewer round trips. Put it after
//! `memory_limiter` and any processor that drops or changes data.
//!
//! ```yaml
//! processors:
//!   batch:
//!     send_batch_size: 8192
//!     timeout: 200ms
//!     send_batch_max_size: 0
//! ```
//!
//! ## Options
//!
//! | option | default | meaning |
//! | --- | --- | --- |
//! | `send_batch_size` | `8192` | Items (spans, data points, log records) after which a batch is sent, whatever the `timeout`. It is a trigger, not a limit: one large request can make a batch bigger. `0` sends every request as soon as it arrives. |
//! | `timeout` | `200ms` | The longest an item waits for its batch to fill, counted from the moment the batch got its first item (or from the last size-triggered send). `0` sends every request as soon as it arrives. |
//! | `send_batch_max_size` | `0` | The most items one outgoing request may hold; larger batches are split. `0` means no maximum. When set it must be at least `send_batch_size`. |
//!
//! ## Behaviour
//!
//! - Requests that are still protobuf bytes (what the `otlp` receiver hands a pipeline that only
//!   forwards to OTLP exporters) are merged by concatenating their bytes: no span is decoded.
//!   Decoded requests are merged by moving their items, never copying them: the resource lists
//!   are concatenated, and a request whose first resource and scope equal the previous request's
//!   last ones is joined to them. Either way items keep their order and content exactly.
//! - A batch larger than `send_batch_max_size` is split (decoded first if it is bytes) at item granularity: a span or log list
//!   cut in two keeps its resource and scope in both requests, and a metric cut in two keeps its
//!   name, unit and kind (metrics are split at data-point level).
//! - **Backpressure, no loss.** Incoming requests wait in a small bounded queue (4 requests). When
//!   it stays full for 100ms the sender is refused with a retryable "pipeline is full" error, so
//!   receivers answer their clients with UNAVAILABLE / 503. When the next component refuses a
//!   batch with a retryable error, the batch is retried with a backoff from 10ms doubling to 1s
//!   (or after the `Throttled` hint) until it is accepted; meanwhile the queue fills and senders
//!   are refused. A full sending queue (in memory or on disk) is retried as soon as one of its
//!   senders takes or finishes a request (the backoff is then only the fallback), so that the
//!   exporter never idles with a batch waiting here. While a batch is being retried the
//!   pipeline reports itself backed up, and the `otlp` receiver refuses new requests before
//!   reading them (see its *Admission*) rather than letting them wait here. A batch refused
//!   with a permanent error is dropped, counted and logged at warn.
//! - **Each consumer gets a batch once.** When the pipeline has several exporters (or
//!   connectors) and some took a batch while others refused it, the retries go only to those
//!   that refused it retryably: an exporter or an `error_rate` connector that took the batch
//!   never gets it again (see "Pipelines with several consumers" in docs/configuration.md).
//!   This holds when `batch` is the last processor of its pipeline, as recommended; after a
//!   processor that changes data, a retry goes through that processor to every consumer.
//! - **Shutdown.** The queue is closed, what is in it is batched, and every pending item is sent.
//!   Retryable failures are then retried at most 3 more times within one second before the batch
//!   is dropped and counted.
//! - Requests with no items are accepted and discarded.
//! - Live data (what the `error_rate` connector and the probes send for the `alerts` connector,
//!   see `authwatch_core::consume`) is passed on at once, never batched: the batch `timeout`
//!   does not delay an alert.
//!
//! ## Telemetry
//!
//! - `authwatch_processor_{accepted,refused,dropped}_{spans,metric_points,log_records}_total`,
//!   labelled `processor` and `pipeline`.
//! - `authwatch_processor_batch_send_size`: histogram of items per sent request.
//! - `authwatch_processor_batch_size_trigger_send_total` and
//!   `authwatch_processor_batch_timeout_trigger_send_total`: requests sent because the batch was
//!   full, or because the timeout elapsed (or the processor was shutting down).

mod merge;
mod metrics;

use std::mem;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use authwatch_core::budget::Charge;
use authwatch_core::config::duration;
use authwatch_core::telemetry::ProcessorTelemetry;
use authwatch_core::{
    Backlog, BuildError, Built, ComponentConfig, ConsumeError, Consumer, DecodeError, Encoded,
    MemoryBudget, PermanentError, ProcessorConfig, ProcessorContext, RunError, SharedConsumer,
    Signal, SignalKind, Validator,
};
use bytes::BytesMut;
use futures::future::BoxFuture;
use metrics::BatchMetrics;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

/// The `batch` processor's configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Items after which a batch is sent regardless of `timeout`.
    pub send_batch_size: usize,
    /// The longest an item waits for its batch to fill.
    #[serde(with = "duration")]
    pub timeout: Duration,
    /// Upper bound of items per outgoing request; `0` means none.
    pub send_batch_max_size: usize,
}

pub const DEFAULT_SEND_BATCH_SIZE: usize = 8192;
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(200);

impl Default for Config {
    fn default() -> Self {
        Config {
            send_batch_size: DEFAULT_SEND_BATCH_SIZE,
            timeout: DEFAULT_TIMEOUT,
            send_batch_max_size: 0,
        }
    }
}

/// Requests that may wait in the input queue.
const INPUT_CAPACITY: usize = 4;
/// How long `consume` waits for room in the input queue before refusing with `Full`.
const ENQUEUE_DEADLINE: Duration = Duration::from_millis(100);
/// First and largest pause between two tries of one batch.
const RETRY_INITIAL: Duration = Duration::from_millis(10);
const RETRY_MAX: Duration = Duration::from_secs(1);
/// After shutdown: extra tries per batch, and the time after which no batch is retried.
const SHUTDOWN_RETRIES: u32 = 3;
const SHUTDOWN_RETRY_BUDGET: Duration = Duration::from_secs(1);

impl ComponentConfig for Config {
    const TYPE: &'static str = "batch";

    fn validate(&self, v: &mut Validator) {
        if self.send_batch_max_size > 0 && self.send_batch_max_size < self.send_batch_size {
            v.error(
                "send_batch_max_size",
                format!(
                    "must be greater than or equal to `send_batch_size` ({}), or 0 for no maximum",
                    self.send_batch_size
                ),
            );
        }
    }

    /// Requests are acknowledged once they are in the batch, which lives in memory.
    fn holds(&self) -> authwatch_core::Holds {
        authwatch_core::Holds::Memory
    }
}

impl ProcessorConfig for Config {
    async fn build(&self, cx: ProcessorContext) -> Result<Built, BuildError> {
        let kind = cx.signal();
        let pipeline = cx.pipeline.to_string();
        let id = cx.settings.id.clone();
        let telemetry = cx.settings.telemetry.processor(&id, &pipeline);
        let metrics = BatchMetrics::new(&cx.settings.telemetry, &id, &pipeline);
        let (tx, rx) = mpsc::channel(INPUT_CAPACITY);
        let wants_encoded = cx.next.wants_encoded();
        let retrying = Arc::new(AtomicBool::new(false));
        let consumer = Arc::new(Batcher {
            tx,
            retrying: retrying.clone(),
            next: cx.next.clone(),
            budget: cx.settings.budget.clone(),
            kind,
            telemetry: telemetry.clone(),
            wants_encoded,
        });
        let task = BatchTask {
            rx,
            retrying,
            held: cx.settings.budget.charge(0),
            next: cx.next,
            kind,
            pipeline,
            send_batch_size: self.send_batch_size,
            send_batch_max_size: self.send_batch_max_size,
            timeout: self.timeout,
            shutdown: cx.settings.shutdown,
            telemetry,
            metrics,
            pending: Signal::empty(kind),
            wire: BytesMut::new(),
            wants_encoded,
            pending_items: 0,
            deadline: None,
            draining_since: None,
        };
        Ok(Built {
            consumer,
            task: Some(Box::pin(task.run())),
        })
    }
}

// === impl Batcher ===

/// The consumer side: hands requests to the batching task through a bounded queue.
struct Batcher {
    tx: mpsc::Sender<(Signal, usize, Charge)>,
    /// Set while the batching task retries a batch the next component refused.
    retrying: Arc<AtomicBool>,
    /// Where live data goes, unbatched.
    next: SharedConsumer,
    budget: MemoryBudget,
    kind: SignalKind,
    telemetry: ProcessorTelemetry,
    /// What the next component wants (batching takes both forms).
    wants_encoded: bool,
}

impl Consumer for Batcher {
    fn wants_encoded(&self) -> bool {
        self.wants_encoded
    }

    fn takes_live(&self) -> bool {
        self.next.takes_live()
    }

    /// `Full` while the batching task retries a batch the next component refused (what is
    /// handed now waits behind it), else the next component's.
    fn backlog(&self) -> Backlog {
        if self.retrying.load(Ordering::Relaxed) {
            return Backlog::Full;
        }
        self.next.backlog()
    }

    /// Live data is never batched: the alert path waits for no `timeout`.
    fn consume_live(&self, data: Signal) -> BoxFuture<'_, Result<(), ConsumeError>> {
        self.next.consume_live(data)
    }

    fn consume(&self, data: Signal) -> BoxFuture<'_, Result<(), ConsumeError>> {
        Box::pin(async move {
            if data.kind() != self.kind {
                return Err(ConsumeError::Permanent(PermanentError::WrongSignal {
                    component: "the batch processor",
                    expected: self.kind,
                    got: data.kind(),
                }));
            }
            let n = data.item_count();
            if n == 0 {
                return Ok(());
            }
            let held = self.budget.charge(data.encoded_size() as u64);
            match self.tx.send_timeout((data, n, held), ENQUEUE_DEADLINE).await {
                Ok(()) => {
                    self.telemetry.accepted(self.kind, n);
                    Ok(())
                }
                Err(mpsc::error::SendTimeoutError::Timeout(_)) => {
                    self.telemetry.refused(self.kind, n);
                    Err(ConsumeError::Full)
                }
                Err(mpsc::error::SendTimeoutError::Closed(_)) => {
                    self.telemetry.refused(self.kind, n);
                    Err(ConsumeError::Closed)
                }
            }
        })
    }
}

// === impl BatchTask ===

#[derive(Debug, Clone, Copy)]
enum Trigger {
    Size,
    Timeout,
}

/// The batching task: merges queued requests, sends full or timed-out batches downstream.
struct BatchTask {
    rx: mpsc::Receiver<(Signal, usize, Charge)>,
    /// Set while a batch the next component refused is being retried.
    retrying: Arc<AtomicBool>,
    /// What is queued here and in the pending batch, counted in the run's memory budget.
    held: Charge,
    next: SharedConsumer,
    kind: SignalKind,
    pipeline: String,
    send_batch_size: usize,
    send_batch_max_size: usize,
    timeout: Duration,
    shutdown: CancellationToken,
    telemetry: ProcessorTelemetry,
    metrics: BatchMetrics,
    /// The batch being filled: decoded requests merged in `pending`, or, once an encoded request
    /// has come, everything concatenated as protobuf in `wire` (one of the two is empty).
    pending: Signal,
    wire: BytesMut,
    /// Whether the next component wants batches encoded.
    wants_encoded: bool,
    /// Items in the pending batch.
    pending_items: usize,
    /// When the pending batch goes out regardless of size.
    deadline: Option<Instant>,
    /// Set once shutdown has begun: retries are then bounded.
    draining_since: Option<Instant>,
}

async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

impl BatchTask {
    async fn run(mut self) -> Result<(), RunError> {
        loop {
            tokio::select! {
                biased;
                () = self.shutdown.cancelled() => break,
                msg = self.rx.recv() => match msg {
                    Some((data, n, held)) => {
                        self.held.merge(held);
                        self.add(data, n).await;
                    }
                    // Every sender is gone: the pipeline's input has closed.
                    None => break,
                },
                () = sleep_until_opt(self.deadline) => self.flush(Trigger::Timeout).await,
            }
        }
        self.drain().await;
        info!(pipeline = %self.pipeline, "Batch processor flushed and stopped.");
        Ok(())
    }

    /// Closes the input, batches what is still queued and sends every pending item.
    async fn drain(&mut self) {
        self.draining_since.get_or_insert_with(Instant::now);
        self.rx.close();
        while let Some((data, n, held)) = self.rx.recv().await {
            self.held.merge(held);
            self.add(data, n).await;
        }
        self.flush(Trigger::Timeout).await;
    }

    async fn add(&mut self, data: Signal, n: usize) {
        let merged = match data {
            Signal::Encoded(e) => {
                if self.wire.is_empty() && self.pending_items > 0 {
                    // Keep arrival order: what is pending goes first, as bytes.
                    let pending = mem::replace(&mut self.pending, Signal::empty(self.kind));
                    self.wire.extend_from_slice(pending.to_encoded().bytes());
                }
                self.wire.extend_from_slice(e.bytes());
                Ok(())
            }
            decoded if !self.wire.is_empty() => {
                self.wire.extend_from_slice(decoded.to_encoded().bytes());
                Ok(())
            }
            decoded => merge::append(&mut self.pending, decoded),
        };
        if let Err(other) = merged {
            // `Batcher::consume` lets only this pipeline's signal in; count rather than panic.
            let kind = other.kind();
            self.telemetry.dropped(kind, n);
            warn!(pipeline = %self.pipeline, signal = %kind, "Batch processor got a request of another signal; dropping it.");
            return;
        }
        self.pending_items += n;
        if self.timeout.is_zero() {
            self.flush(Trigger::Size).await;
            return;
        }
        if self.deadline.is_none() {
            self.deadline = Some(Instant::now() + self.timeout);
        }
        let mut sent = false;
        while self.pending_items > 0 && self.pending_items >= self.send_batch_size {
            self.send_one(Trigger::Size).await;
            sent = true;
        }
        if sent {
            // As in the Collector, the timer restarts after a size-triggered send.
            self.deadline = (self.pending_items > 0).then(|| Instant::now() + self.timeout);
        }
    }

    /// Sends every pending item, split by `send_batch_max_size`.
    async fn flush(&mut self, trigger: Trigger) {
        while self.pending_items > 0 {
            self.send_one(trigger).await;
        }
        self.deadline = None;
    }

    /// Sends one request of at most `send_batch_max_size` items from the front of the batch.
    async fn send_one(&mut self, trigger: Trigger) {
        let max = self.send_batch_max_size;
        if !self.wire.is_empty() {
            let bytes = mem::take(&mut self.wire).freeze();
            // The next batch will likely be as large: one allocation instead of a doubling series.
            self.wire.reserve(bytes.len());
            let encoded = Signal::Encoded(Encoded::new(self.kind, bytes, self.pending_items));
            if max > 0 && self.pending_items > max {
                // Split at item granularity: decode, then take the decoded path below.
                match encoded.into_decoded() {
                    Ok(decoded) => self.pending = decoded,
                    Err(e) => {
                        self.drop_undecodable(e);
                        return;
                    }
                }
            } else {
                let n = self.pending_items;
                self.pending_items = 0;
                self.record_send(n, trigger);
                self.deliver(encoded, n).await;
                return;
            }
        }
        let batch = if max > 0 && self.pending_items > max {
            merge::split_front(&mut self.pending, max)
        } else {
            mem::replace(&mut self.pending, Signal::empty(self.kind))
        };
        let n = batch.item_count();
        self.pending_items = if max > 0 && self.pending_items > max {
            self.pending_items - n
        } else {
            0
        };
        self.record_send(n, trigger);
        self.deliver(batch, n).await;
    }

    fn record_send(&self, n: usize, trigger: Trigger) {
        self.metrics.send_size.observe(n as f64);
        match trigger {
            Trigger::Size => self.metrics.size_trigger.inc(),
            Trigger::Timeout => self.metrics.timeout_trigger.inc(),
        };
    }

    /// Concatenated requests that do not decode (cannot happen for checked input): dropped and
    /// counted rather than retried forever.
    fn drop_undecodable(&mut self, e: DecodeError) {
        self.telemetry.dropped(self.kind, self.pending_items);
        warn!(pipeline = %self.pipeline, items = self.pending_items, error = %e, "Batch processor cannot decode a batch to split it; dropping it.");
        self.pending_items = 0;
        self.held.release(u64::MAX);
    }

    /// Hands one batch downstream, retrying retryable refusals with backoff (bounded once
    /// shutdown has begun); a permanent refusal drops it.
    async fn deliver(&mut self, batch: Signal, n: usize) {
        self.hand_on(batch, n).await;
        self.retrying.store(false, Ordering::Relaxed);
        // Its share of the held bytes leaves with it (the rest is still pending).
        let total = (n + self.pending_items) as u64;
        let share = if total == 0 {
            u64::MAX
        } else {
            (u128::from(self.held.bytes()) * n as u128 / u128::from(total)) as u64
        };
        self.held.release(share);
    }

    /// Hands one batch downstream until it is accepted or dropped.
    async fn hand_on(&mut self, batch: Signal, n: usize) {
        // In the form the next component wants; encoded data makes each try's copy free.
        let converted = if self.wants_encoded {
            Ok(batch.into_encoded())
        } else {
            batch.into_decoded()
        };
        let batch = match converted {
            Ok(b) => b,
            Err(e) => {
                self.telemetry.dropped(self.kind, n);
                warn!(pipeline = %self.pipeline, items = n, error = %e, "Batch processor cannot decode a batch; dropping it.");
                return;
            }
        };
        let mut backoff = RETRY_INITIAL;
        let mut tries_after_shutdown = 0;
        // Where the batch goes: the next component, then, after a partial refusal of a fanout,
        // only the consumers that refused it (those that took it never see it again).
        let mut target = self.next.clone();
        loop {
            // The consumer API takes the request by value, so a retry needs its own copy (a
            // reference count for encoded data).
            let err = match target.consume(batch.clone()).await {
                Ok(()) => return,
                Err(e) => e,
            };
            if !err.is_retryable() {
                self.telemetry.dropped(self.kind, n);
                warn!(pipeline = %self.pipeline, items = n, error = %err, "Next component refused a batch permanently; dropping it.");
                return;
            }
            if let Some(rest) = err.retry_target(&target) {
                target = rest;
            }
            // Until the batch is taken or dropped, what comes in waits behind it.
            self.retrying.store(true, Ordering::Relaxed);
            let wait = match &err {
                ConsumeError::Throttled(hint) => (*hint).clamp(backoff, RETRY_MAX),
                _ => backoff,
            };
            backoff = (backoff * 2).min(RETRY_MAX);
            match self.draining_since {
                None => {
                    debug!(pipeline = %self.pipeline, items = n, error = %err, retry_in = ?wait, "Next component refused a batch; retrying.");
                    // A full queue is retried as soon as a sender takes from it (the backoff is
                    // the fallback): sleeping while the exporter drains it would idle the
                    // exporter and leave the requests behind this batch waiting.
                    let full = matches!(err.cause(), ConsumeError::Full);
                    let room = async {
                        if full {
                            target.room().await;
                        } else {
                            std::future::pending::<()>().await;
                        }
                    };
                    tokio::select! {
                        biased;
                        () = self.shutdown.cancelled() => {
                            self.draining_since = Some(Instant::now());
                        }
                        () = room => backoff = RETRY_INITIAL,
                        () = tokio::time::sleep(wait) => {}
                    }
                }
                Some(since) => {
                    tries_after_shutdown += 1;
                    let budget_left = SHUTDOWN_RETRY_BUDGET.saturating_sub(since.elapsed());
                    if tries_after_shutdown > SHUTDOWN_RETRIES || budget_left.is_zero() {
                        self.telemetry.dropped(self.kind, n);
                        warn!(pipeline = %self.pipeline, items = n, error = %err, "Next component still refuses a batch while stopping; dropping it.");
                        return;
                    }
                    tokio::time::sleep(wait.min(budget_left)).await;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
