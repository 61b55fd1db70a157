//! The machinery every exporter shares, like the Collector's exporterhelper: a bounded
//! `sending_queue` drained by `num_consumers` workers, `retry_on_failure` with exponential
//! backoff, self-telemetry (`sent`, `send_failed`, `enqueue_failed`, queue gauges), health
//! reports and rate-limited failure logs. An exporter only says how to send one request: it
//! implements [`Sender`] and calls [`build_queued`]. The queue carries signals; an exporter
//! whose queue carries something else implements [`ItemSender`] and calls [`build_items`] (see
//! [`item`]).
//!
//! With `sending_queue.storage` set the queue is persistent (see [`persistent`]): exporters
//! build through [`try_build_queued`], which opens it and fails the build if it cannot.
//!
//! With `sending_queue.batch` set, one batcher takes the queued requests instead of the
//! workers, merges those of one signal into larger requests and sends them, still at most
//! `num_consumers` at once; a batch's queue records are done together (see [`batch`]).
//!
//! Shutdown: once `settings.shutdown` is cancelled the exporter refuses new data with
//! [`ConsumeError::Closed`]; the workers send (and keep retrying) everything already queued,
//! then the task returns. The service enforces its deadline by dropping the task.

pub mod alert;
pub mod batch;
pub mod config;
mod front;
pub mod item;
pub mod persistent;
pub mod queue;
pub mod retry;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use authwatch_core::health::{ComponentStatus, Health};
use authwatch_core::telemetry::ExporterTelemetry;
use authwatch_core::{
    BuildError, Built, ComponentId, ConsumeError, RunError, Settings, SharedError, Signal,
    SignalKind,
};
use futures::future::BoxFuture;
use tokio::time::Instant;
use tracing::{error, info, warn, Instrument};

use batch::{BatchMetrics, Batcher, Pending, Trigger};
use front::{Front, QueuedConsumer, SyncConsumer};

pub use batch::{BatchConfig, Sizer};
pub use config::Compression;
pub use item::{BuiltItems, Enqueue, ItemSender, QueueItem, SharedEnqueue};
pub use persistent::PersistentQueue;
pub use queue::{EmptyStorageDir, MemoryQueue, PushError, Queue, QueueConfig, Queued, StorageDir};
pub use retry::{Backoff, ExportError, Retry, RetryConfig};

/// What a successful send reports back: items the destination refused in a partial success.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sent {
    /// Items the destination rejected (`partial_success.rejected_*`); they are not retried.
    pub rejected: usize,
    /// The destination's explanation, if any.
    pub message: String,
}

/// How to send one request to the destination; the only thing an exporter implements.
pub trait Sender: Send + Sync + 'static {
    type Error: ExportError;
    /// Whether `send` wants [`Signal::Encoded`] data (it writes protobuf bytes). The helper
    /// hands every sender the form it wants, converting once when data is queued, so that
    /// retries reuse it.
    const ENCODED: bool = false;
    /// Sends `data` once (no retries: the helper retries according to the error's
    /// [`ExportError::retry`]).
    fn send<'a>(&'a self, data: &'a Signal) -> BoxFuture<'a, Result<Sent, Self::Error>>;
}

/// Builds an exporter from a [`Sender`]: queued with `num_consumers` workers when
/// `queue.enabled` (persistent when `queue.storage` is set), otherwise synchronous (the
/// pipeline waits for the send, retries included). Fails only if the persistent queue cannot be
/// opened.
pub fn try_build_queued<S: Sender>(
    settings: Settings,
    sender: S,
    queue: &QueueConfig,
    retry: &RetryConfig,
) -> Result<Built, BuildError> {
    let queue_impl = open_queue(&settings, queue)?;
    Ok(build_with_queue(settings, sender, queue, retry, queue_impl))
}

/// [`try_build_queued`] that cannot fail: if the persistent queue cannot be opened, the error is
/// logged and the exporter runs with a memory queue. Prefer [`try_build_queued`].
pub fn build_queued<S: Sender>(
    settings: Settings,
    sender: S,
    queue: &QueueConfig,
    retry: &RetryConfig,
) -> Built {
    let queue_impl = open_queue(&settings, queue).unwrap_or_else(|e| {
        error!(exporter = %settings.id, error = %e, "Cannot open the persistent sending queue; using a memory queue.");
        Arc::new(
            MemoryQueue::new(queue.queue_size.get(), queue.max_size_bytes())
                .with_budget(settings.budget.clone()),
        )
    });
    build_with_queue(settings, sender, queue, retry, queue_impl)
}

/// The queue `cfg` asks for: persistent in `<storage>/<exporter id>/` when `storage` is set
/// (and the queue enabled), else in memory.
pub fn open_queue(settings: &Settings, cfg: &QueueConfig) -> Result<Arc<dyn Queue>, BuildError> {
    let Some(storage) = cfg.storage.as_ref().filter(|_| cfg.enabled) else {
        return Ok(Arc::new(
            MemoryQueue::new(cfg.queue_size.get(), cfg.max_size_bytes())
                .with_budget(settings.budget.clone()),
        ));
    };
    let id = settings.id.to_string();
    let dir = storage.path().join(persistent::dir_name(&id));
    let (q, _) = PersistentQueue::open(
        &dir,
        &id,
        cfg.queue_size.get(),
        cfg.max_size_bytes(),
        settings.telemetry.exporter(&settings.id),
    )
    .map_err(|e| BuildError::option("sending_queue::storage", e))?;
    Ok(Arc::new(q))
}

/// How often the queue gauges are refreshed while idle (the oldest record ages).
const GAUGE_EVERY: Duration = Duration::from_secs(1);

fn update_gauges<T: 'static>(telemetry: &ExporterTelemetry, queue: &dyn Queue<T>) {
    telemetry.queue_size.set(queue.len() as i64);
    telemetry.queue_size_bytes.set(queue.bytes() as i64);
    telemetry
        .queue_oldest_age_seconds
        .set(queue.oldest_age().map_or(0.0, |d| d.as_secs_f64()));
}

/// [`build_queued`] with a queue of the caller's choice (e.g. a persistent one).
pub fn build_with_queue<S: Sender>(
    settings: Settings,
    sender: S,
    queue_cfg: &QueueConfig,
    retry: &RetryConfig,
    queue: Arc<dyn Queue>,
) -> Built {
    match assemble(settings, sender, queue_cfg, retry, queue) {
        Front::Sync(consumer) => Built {
            consumer: Arc::new(consumer),
            task: None,
        },
        Front::Queued(consumer, task) => Built {
            consumer: Arc::new(consumer),
            task: Some(task),
        },
    }
}

/// Builds an exporter whose queue carries [`ItemSender::Item`]s rather than signals: queued in
/// memory with `num_consumers` workers when `queue.enabled` (`queue.storage` is not used: the
/// component refuses it), otherwise synchronous. The owner puts items into
/// [`BuiltItems::queue`].
pub fn build_items<S: ItemSender>(
    settings: Settings,
    sender: S,
    queue: &QueueConfig,
    retry: &RetryConfig,
) -> BuiltItems<S::Item> {
    let memory: Arc<dyn Queue<S::Item>> = Arc::new(MemoryQueue::new(
        queue.queue_size.get(),
        queue.max_size_bytes(),
    ));
    match assemble(settings, sender, queue, retry, memory) {
        Front::Sync(consumer) => BuiltItems {
            queue: Arc::new(consumer),
            task: None,
        },
        Front::Queued(consumer, task) => BuiltItems {
            queue: Arc::new(consumer),
            task: Some(task),
        },
    }
}

fn assemble<S: ItemSender>(
    settings: Settings,
    sender: S,
    queue_cfg: &QueueConfig,
    retry: &RetryConfig,
    queue: Arc<dyn Queue<S::Item>>,
) -> Front<S> {
    let exporter = Arc::new(Exporter::new(&settings, sender, retry.clone()));
    if !queue_cfg.enabled {
        return Front::Sync(SyncConsumer {
            exporter,
            shutdown: settings.shutdown.clone(),
        });
    }
    let telemetry = exporter.telemetry.clone();
    telemetry.queue_capacity.set(queue.capacity() as i64);
    update_gauges(&telemetry, queue.as_ref());
    let consumer = QueuedConsumer {
        encoded: S::ENCODED,
        queue: queue.clone(),
        block: queue_cfg.block_on_overflow,
        shutdown: settings.shutdown.clone(),
        telemetry: telemetry.clone(),
        id: settings.id.clone(),
        storage_warn: RateLimit::default(),
    };
    let workers = queue_cfg.num_consumers.get();
    let batch = queue_cfg
        .batch
        .clone()
        .map(|cfg| (cfg, BatchMetrics::new(&settings.telemetry, &settings.id)));
    let shutdown = settings.shutdown.clone();
    let id = settings.id.clone();
    let task = async move {
        let span = tracing::info_span!("component", kind = "exporter", id = %id);
        let mut set = tokio::task::JoinSet::new();
        match batch {
            // One batcher feeds up to `workers` concurrent sends.
            Some((cfg, metrics)) => {
                set.spawn(
                    batch_worker(exporter.clone(), queue.clone(), cfg, workers, metrics)
                        .instrument(span.clone()),
                );
            }
            None => {
                for _ in 0..workers {
                    set.spawn(worker(exporter.clone(), queue.clone()).instrument(span.clone()));
                }
            }
        }
        let mut tick = tokio::time::interval(GAUGE_EVERY);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tick.tick() => update_gauges(&telemetry, queue.as_ref()),
            }
        }
        queue.close();
        let pending = queue.len();
        if pending > 0 {
            info!(exporter = %id, pending, "Exporter draining its sending queue.");
        }
        let mut panicked = false;
        while let Some(r) = set.join_next().await {
            panicked |= r.as_ref().is_err_and(|e| e.is_panic());
        }
        if panicked {
            return Err(RunError::Panicked {
                task: format!("a sending worker of exporter {id}"),
            });
        }
        info!(exporter = %id, "Exporter stopped.");
        Ok(())
    };
    Front::Queued(consumer, Box::pin(task))
}

async fn worker<S: ItemSender>(exporter: Arc<Exporter<S>>, queue: Arc<dyn Queue<S::Item>>) {
    while let Some(item) = queue.pop().await {
        update_gauges(&exporter.telemetry, queue.as_ref());
        // Failures are counted, logged and reported inside.
        let _ = exporter.export(&item.data).await;
        queue.done(item.id);
        update_gauges(&exporter.telemetry, queue.as_ref());
    }
}

/// The `sending_queue.batch` consumer: takes requests from the queue into [`Batcher`], sends
/// each ready batch as one request (at most `workers` at once), and marks its records done
/// together once it was sent or given up on. See [`batch`].
async fn batch_worker<S: ItemSender>(
    exporter: Arc<Exporter<S>>,
    queue: Arc<dyn Queue<S::Item>>,
    cfg: BatchConfig,
    workers: usize,
    metrics: BatchMetrics,
) {
    let mut batcher = Batcher::new(cfg);
    let mut sends = tokio::task::JoinSet::new();
    let mut panic = None;
    let mut next = queue.pop();
    loop {
        let due = batcher.next_deadline();
        let ready: Vec<(Pending<S::Item>, Trigger)> = tokio::select! {
            got = &mut next => {
                let Some(item) = got else { break };
                next = queue.pop();
                update_gauges(&exporter.telemetry, queue.as_ref());
                match into_form::<S>(item.data) {
                    Ok(data) => batcher.add(item.id, data, Instant::now()),
                    Err((kind, items, e)) => {
                        exporter.undecodable(kind, items, &e);
                        queue.done(item.id);
                        Vec::new()
                    }
                }
            }
            _ = sleep_until_some(due) => batcher
                .due(Instant::now())
                .into_iter()
                .map(|p| (p, Trigger::Timeout))
                .collect(),
        };
        for (p, trigger) in ready {
            send_batch(
                &exporter, &queue, &metrics, &mut sends, workers, &mut panic, p, trigger,
            )
            .await;
        }
    }
    for p in batcher.drain() {
        send_batch(
            &exporter,
            &queue,
            &metrics,
            &mut sends,
            workers,
            &mut panic,
            p,
            Trigger::Shutdown,
        )
        .await;
    }
    while let Some(r) = sends.join_next().await {
        keep_panic(r, &mut panic);
    }
    if let Some(p) = panic {
        std::panic::resume_unwind(p);
    }
}

/// Waits until `at`, or for ever when there is nothing to wait for.
async fn sleep_until_some(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

type Panic = Box<dyn std::any::Any + Send>;

fn keep_panic(r: Result<(), tokio::task::JoinError>, panic: &mut Option<Panic>) {
    if let Err(e) = r {
        if e.is_panic() && panic.is_none() {
            *panic = Some(e.into_panic());
        }
    }
}

/// Sends one batch in its own task once fewer than `workers` are being sent.
#[allow(clippy::too_many_arguments)]
async fn send_batch<S: ItemSender>(
    exporter: &Arc<Exporter<S>>,
    queue: &Arc<dyn Queue<S::Item>>,
    metrics: &BatchMetrics,
    sends: &mut tokio::task::JoinSet<()>,
    workers: usize,
    panic: &mut Option<Panic>,
    p: Pending<S::Item>,
    trigger: Trigger,
) {
    while let Some(r) = sends.try_join_next() {
        keep_panic(r, panic);
    }
    while sends.len() >= workers {
        match sends.join_next().await {
            Some(r) => keep_panic(r, panic),
            None => break,
        }
    }
    let data = S::Item::merge(p.parts);
    metrics.sending(&data, trigger);
    let exporter = exporter.clone();
    let queue = queue.clone();
    let ids = p.ids;
    sends.spawn(
        async move {
            // Failures are counted, logged and reported inside.
            let _ = exporter.export(&data).await;
            for id in ids {
                queue.done(id);
            }
            update_gauges(&exporter.telemetry, queue.as_ref());
        }
        .in_current_span(),
    );
}

/// `data` converted to the form `S` wants; on failure its signal, item count and the error.
fn into_form<S: ItemSender>(data: S::Item) -> Result<S::Item, (SignalKind, usize, ConsumeError)> {
    let (kind, items) = (data.kind(), data.item_count());
    data.into_form(S::ENCODED).map_err(|e| (kind, items, e))
}

// === impl Exporter ===

/// Why a request was given up on: the last error's class and description.
#[derive(Debug)]
struct GaveUp {
    retry: Retry,
    error: SharedError,
}

/// Log warnings at most this often per exporter and kind of warning.
const WARN_EVERY: Duration = Duration::from_secs(10);

struct Exporter<S> {
    id: ComponentId,
    sender: S,
    retry: RetryConfig,
    telemetry: ExporterTelemetry,
    health: Health,
    failing: AtomicBool,
    retry_warn: RateLimit,
    drop_warn: RateLimit,
}

impl<S: ItemSender> Exporter<S> {
    fn new(settings: &Settings, sender: S, retry: RetryConfig) -> Self {
        Exporter {
            id: settings.id.clone(),
            sender,
            retry,
            telemetry: settings.telemetry.exporter(&settings.id),
            health: settings.health.clone(),
            failing: AtomicBool::new(false),
            retry_warn: RateLimit::default(),
            drop_warn: RateLimit::default(),
        }
    }

    /// Sends one request, retrying transient failures; counts the outcome.
    async fn export(&self, data: &S::Item) -> Result<(), GaveUp> {
        let kind = data.kind();
        let items = data.item_count();
        let data = match data.in_form(S::ENCODED) {
            Ok(d) => d,
            Err(e) => {
                self.undecodable(kind, items, &e);
                return Err(GaveUp {
                    retry: Retry::No,
                    error: SharedError::new(e),
                });
            }
        };
        let data = data.as_ref();
        let started = Instant::now();
        let mut backoff = Backoff::new(&self.retry);
        loop {
            let err = match self.sender.send_item(data).await {
                Ok(sent) => {
                    let rejected = sent.rejected.min(items);
                    self.telemetry.sent(kind, items - rejected);
                    if rejected > 0 {
                        self.telemetry.send_failed(kind, rejected);
                        if let Some(suppressed) = self.drop_warn.check() {
                            warn!(
                                exporter = %self.id, signal = %kind, rejected,
                                message = %sent.message, suppressed,
                                "Destination rejected part of the data."
                            );
                        }
                    }
                    self.recovered();
                    return Ok(());
                }
                Err(e) => e,
            };
            let class = err.retry();
            let message = err.to_string();
            self.failed(&message);
            let delay = if self.retry.enabled {
                retry::delay_for(class, &mut backoff)
            } else {
                None
            };
            let delay = delay.filter(|d| {
                self.retry.max_elapsed_time.is_zero()
                    || started.elapsed() + *d <= self.retry.max_elapsed_time
            });
            let Some(delay) = delay else {
                self.telemetry.send_failed(kind, items);
                if let Some(suppressed) = self.drop_warn.check() {
                    warn!(
                        exporter = %self.id, signal = %kind, error = %message, dropped_items = items,
                        permanent = class == Retry::No, suppressed,
                        "Export failed; dropping the data."
                    );
                }
                return Err(GaveUp {
                    retry: class,
                    error: SharedError::new(err),
                });
            };
            if let Some(suppressed) = self.retry_warn.check() {
                warn!(
                    exporter = %self.id, signal = %kind, error = %message, items,
                    retry_in = ?delay, suppressed,
                    "Export failed; will retry."
                );
            }
            tokio::time::sleep(delay).await;
        }
    }

    /// Counts and logs a request dropped because it cannot be decoded.
    fn undecodable(&self, kind: SignalKind, items: usize, e: &ConsumeError) {
        self.telemetry.send_failed(kind, items);
        warn!(exporter = %self.id, error = %e, "Dropped a request that cannot be decoded.");
    }

    fn failed(&self, message: &str) {
        self.failing.store(true, Ordering::Relaxed);
        self.health.report(
            &self.id.to_string(),
            ComponentStatus::RecoverableError(message.to_owned()),
        );
    }

    fn recovered(&self) {
        if self.failing.swap(false, Ordering::Relaxed) {
            self.health
                .report(&self.id.to_string(), ComponentStatus::Ok);
        }
    }
}

/// Lets one log line through per [`WARN_EVERY`], counting the ones it held back.
#[derive(Default)]
pub(crate) struct RateLimit {
    last: Mutex<Option<Instant>>,
    suppressed: AtomicU64,
}

impl RateLimit {
    /// `Some(n)`: log now, mentioning `n` lines suppressed since the last one.
    pub(crate) fn check(&self) -> Option<u64> {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        match *last {
            Some(t) if now.duration_since(t) < WARN_EVERY => {
                self.suppressed.fetch_add(1, Ordering::Relaxed);
                None
            }
            _ => {
                *last = Some(now);
                Some(self.suppressed.swap(0, Ordering::Relaxed))
            }
        }
    }
}

#[cfg(test)]
mod batch_flow_tests;
#[cfg(test)]
pub(crate) mod tests;
