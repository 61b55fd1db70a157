//! `sending_queue`: the bounded queue between the pipeline and an exporter's senders.
//!
//! The exporter helper talks to the queue only through [`Queue`], so that a persistent (disk)
//! queue can replace [`MemoryQueue`] without touching the exporters: such a queue hands out
//! items with an id and deletes them when [`Queue::done`] is called. `storage: <dir>` selects
//! the persistent queue ([`super::persistent::PersistentQueue`]).

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use authwatch_core::budget::Charge;
use authwatch_core::config::Positive;
use authwatch_core::{Backlog, Holds, MemoryBudget, Resource, Signal, Validator};
use futures::future::BoxFuture;
use serde::{Deserialize, Deserializer, Serialize};
use tokio::sync::Notify;

use super::batch::BatchConfig;
use super::item::QueueItem;
use super::persistent::StoreError;

/// `sending_queue` settings (the Collector's names and defaults; the queue counts requests).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QueueConfig {
    /// `false`: no queue; the pipeline waits while the request is sent (and retried).
    pub enabled: bool,
    /// How many requests are sent concurrently.
    pub num_consumers: Positive,
    /// How many requests the queue holds.
    pub queue_size: Positive,
    /// When full, make the pipeline wait instead of refusing the data.
    pub block_on_overflow: bool,
    /// A directory for a persistent queue that survives restarts and `kill -9` (each exporter
    /// uses the subdirectory named after its id). Unset: the queue is in memory.
    pub storage: Option<StorageDir>,
    /// The most MiB of requests queued (in memory, or stored on disk), as protobuf.
    pub max_size_mib: Positive,
    /// Batch queued requests into larger ones as they are taken from the queue (unset: each
    /// request is sent as it was queued). See [`super::batch`].
    pub batch: Option<BatchConfig>,
}

/// A sidecar's queue should not hold more than this much memory by default.
pub const DEFAULT_MAX_SIZE_MIB: usize = 64;

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            enabled: true,
            num_consumers: Positive(10),
            queue_size: Positive(1000),
            block_on_overflow: false,
            storage: None,
            max_size_mib: Positive(DEFAULT_MAX_SIZE_MIB),
            batch: None,
        }
    }
}

impl QueueConfig {
    /// Cross-field rules, reported below `at` (e.g. `sending_queue`).
    pub fn validate(&self, v: &mut Validator, at: &str) {
        if self.storage.is_some() && !self.enabled {
            v.warn(
                &format!("{at}::storage"),
                "is ignored while the queue is disabled (`enabled: false`)",
            );
        }
        if let Some(batch) = &self.batch {
            if !self.enabled {
                v.warn(
                    &format!("{at}::batch"),
                    "is ignored while the queue is disabled (`enabled: false`)",
                );
            }
            batch.validate(v, &format!("{at}::batch"));
        }
    }

    /// Where the queue keeps what it has acknowledged: on disk with `storage` (and the queue
    /// enabled), else in memory.
    pub fn holds(&self) -> Holds {
        if self.enabled && self.storage.is_some() {
            Holds::Disk
        } else {
            Holds::Memory
        }
    }

    /// The storage directory, claimed so that two exporters cannot share one.
    pub fn resources(&self) -> Vec<Resource> {
        match (&self.storage, self.enabled) {
            (Some(dir), true) => vec![Resource::Path(dir.path().to_path_buf())],
            _ => Vec::new(),
        }
    }

    /// `max_size_mib` in bytes.
    pub fn max_size_bytes(&self) -> u64 {
        (self.max_size_mib.get() as u64).saturating_mul(1024 * 1024)
    }
}

/// `sending_queue.storage`: a non-empty directory path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct StorageDir(PathBuf);

/// A `sending_queue.storage` that is no directory path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("must be a non-empty directory path, e.g. `/var/lib/authwatch/queue`")]
pub struct EmptyStorageDir;

impl StorageDir {
    pub fn new(path: impl Into<PathBuf>) -> Result<Self, EmptyStorageDir> {
        let path = path.into();
        if path.as_os_str().is_empty() || path.to_string_lossy().trim().is_empty() {
            return Err(EmptyStorageDir);
        }
        Ok(StorageDir(path))
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl<'de> Deserialize<'de> for StorageDir {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        StorageDir::new(PathBuf::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

/// Why an item was not queued.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PushError {
    #[error("sending queue is full")]
    Full,
    #[error("sending queue is closed")]
    Closed,
    /// The request alone is larger than the queue's byte limit: it can never be queued.
    #[error("request of {0} bytes is larger than the sending queue's `max_size_mib`")]
    TooLarge(u64),
    /// A persistent queue could not write the request (disk full, permissions, I/O error).
    #[error("sending queue storage failed: {0}")]
    Storage(#[source] Arc<StoreError>),
}

/// An item taken from a queue; pass `id` to [`Queue::done`] once it has been dealt with.
#[derive(Debug)]
pub struct Queued<T = Signal> {
    pub data: T,
    pub id: u64,
}

/// A bounded queue of export requests shared by several consumers. Requests are signals unless
/// an exporter queues items of its own ([`QueueItem`]).
pub trait Queue<T = Signal>: Send + Sync + 'static {
    /// Adds an item. When full: refuse with [`PushError::Full`], or wait for room if `block`.
    /// After [`close`](Queue::close): [`PushError::Closed`] (waiting pushes wake up with it).
    fn push(&self, data: T, block: bool) -> BoxFuture<'_, Result<(), PushError>>;
    /// The oldest item; waits while the queue is empty and open. `None` once it is closed and
    /// empty.
    fn pop(&self) -> BoxFuture<'_, Option<Queued<T>>>;
    /// The item was sent or given up on (a persistent queue deletes it now).
    fn done(&self, _id: u64) {}
    /// Refuses new items; what is queued can still be taken.
    fn close(&self);
    /// Items waiting.
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    fn capacity(&self) -> usize;
    /// Bytes stored (a persistent queue; 0 for queues that do not count bytes).
    fn bytes(&self) -> u64 {
        0
    }
    /// Age of the oldest item not yet done, if the queue knows it.
    fn oldest_age(&self) -> Option<Duration> {
        None
    }
    /// How backed up the queue is ([`Backlog`]): `Full` from half its capacity, the other half
    /// being room for what was admitted before (and for the batch a `batch` processor holds).
    fn backlog(&self) -> Backlog {
        if self.len() * 2 >= self.capacity() {
            Backlog::Full
        } else {
            Backlog::Clear
        }
    }
    /// Resolves when an item was taken since the last push found the queue full (or the queue
    /// closed): a refused push may fit now. May resolve spuriously. The default never resolves
    /// (the caller's retry backoff decides).
    fn room(&self) -> BoxFuture<'_, ()> {
        Box::pin(std::future::pending())
    }
}

struct State<T> {
    /// Requests with their size.
    items: VecDeque<(T, u64)>,
    bytes: u64,
    closed: bool,
    next_id: u64,
    /// `bytes`, counted in the run's memory budget.
    held: Option<Charge>,
}

impl<T> Default for State<T> {
    fn default() -> Self {
        State {
            items: VecDeque::new(),
            bytes: 0,
            closed: false,
            next_id: 0,
            held: None,
        }
    }
}

/// The in-memory [`Queue`]: what is queued is lost if the process dies. Bounded by a number of
/// requests and by their size as protobuf (one request is always let into an empty queue).
pub struct MemoryQueue<T = Signal> {
    state: Mutex<State<T>>,
    capacity: usize,
    max_bytes: u64,
    readable: Notify,
    writable: Notify,
}

impl<T> MemoryQueue<T> {
    pub fn new(capacity: usize, max_bytes: u64) -> Self {
        MemoryQueue {
            state: Mutex::new(State::default()),
            capacity: capacity.max(1),
            max_bytes,
            readable: Notify::new(),
            writable: Notify::new(),
        }
    }

    /// Counts what is queued in `budget`: charged when pushed, released when taken (what the
    /// senders hold while sending and retrying is not counted).
    pub fn with_budget(self, budget: MemoryBudget) -> Self {
        self.lock().held = Some(budget.charge(0));
        self
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State<T>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl<T: QueueItem> Queue<T> for MemoryQueue<T> {
    fn push(&self, data: T, block: bool) -> BoxFuture<'_, Result<(), PushError>> {
        Box::pin(async move {
            let size = data.encoded_size() as u64;
            let mut data = Some(data);
            loop {
                let room = self.writable.notified();
                tokio::pin!(room);
                room.as_mut().enable();
                {
                    let mut s = self.lock();
                    if s.closed {
                        return Err(PushError::Closed);
                    }
                    let fits = s.items.is_empty()
                        || (s.items.len() < self.capacity && s.bytes + size <= self.max_bytes);
                    if fits {
                        if let Some(d) = data.take() {
                            s.items.push_back((d, size));
                            s.bytes += size;
                            if let Some(held) = &mut s.held {
                                held.add(size);
                            }
                        }
                        drop(s);
                        self.readable.notify_one();
                        return Ok(());
                    }
                }
                if !block {
                    return Err(PushError::Full);
                }
                room.await;
            }
        })
    }

    fn pop(&self) -> BoxFuture<'_, Option<Queued<T>>> {
        Box::pin(async move {
            loop {
                let ready = self.readable.notified();
                tokio::pin!(ready);
                ready.as_mut().enable();
                {
                    let mut s = self.lock();
                    if let Some((data, size)) = s.items.pop_front() {
                        s.bytes -= size;
                        if let Some(held) = &mut s.held {
                            held.release(size);
                        }
                        let id = s.next_id;
                        s.next_id += 1;
                        let more = !s.items.is_empty();
                        drop(s);
                        self.writable.notify_one();
                        if more {
                            // Another consumer may be waiting for the rest.
                            self.readable.notify_one();
                        }
                        return Some(Queued { data, id });
                    }
                    if s.closed {
                        return None;
                    }
                }
                ready.await;
            }
        })
    }

    fn backlog(&self) -> Backlog {
        let s = self.lock();
        // Half of either bound; one request always fits an empty queue, so an empty one is clear.
        if !s.items.is_empty()
            && (s.items.len() * 2 >= self.capacity || s.bytes * 2 >= self.max_bytes)
        {
            Backlog::Full
        } else {
            Backlog::Clear
        }
    }

    fn room(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            // `pop` calls `notify_one`, which keeps a permit when nobody waits: a pop between
            // the refused push and this call is not missed.
            let room = self.writable.notified();
            tokio::pin!(room);
            room.as_mut().enable();
            if self.lock().closed {
                return;
            }
            room.await;
        })
    }

    fn close(&self) {
        self.lock().closed = true;
        self.readable.notify_waiters();
        self.writable.notify_waiters();
    }

    fn len(&self) -> usize {
        self.lock().items.len()
    }

    fn capacity(&self) -> usize {
        self.capacity
    }

    fn bytes(&self) -> u64 {
        self.lock().bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use authwatch_core::SignalKind;
    use std::sync::Arc;
    use std::time::Duration;

    fn item() -> Signal {
        Signal::empty(SignalKind::Logs)
    }

    #[tokio::test]
    async fn refuses_past_the_byte_limit_but_takes_one_into_an_empty_queue() {
        let big = authwatch_testkit::trace_signal(0, 50).into_encoded();
        let size = big.encoded_size() as u64;
        let q = MemoryQueue::new(100, size + size / 2);
        // Larger than the rest of the room, but the queue is empty: taken.
        q.push(big.clone(), false).await.unwrap();
        assert_eq!(q.bytes(), size);
        assert!(matches!(
            q.push(big.clone(), false).await,
            Err(PushError::Full)
        ));
        // A small one still fits.
        let small = authwatch_testkit::trace_signal(0, 1);
        q.push(small.clone(), false).await.unwrap();
        assert_eq!(q.bytes(), size + small.encoded_size() as u64);
        q.pop().await.unwrap();
        q.pop().await.unwrap();
        assert_eq!(q.bytes(), 0);
        // And one larger than the whole limit goes into the empty queue.
        let q = MemoryQueue::new(100, 1);
        q.push(big, false).await.unwrap();
    }

    #[tokio::test]
    async fn charges_the_budget_while_queued() {
        let budget = MemoryBudget::new();
        let q = MemoryQueue::new(8, u64::MAX).with_budget(budget.clone());
        let one = authwatch_testkit::trace_signal(0, 1);
        let size = one.encoded_size() as u64;
        for _ in 0..8 {
            q.push(one.clone(), false).await.unwrap();
        }
        assert_eq!(budget.held(), 8 * size);
        assert!(matches!(
            q.push(one.clone(), false).await,
            Err(PushError::Full)
        ));
        assert_eq!(budget.held(), 8 * size, "a refused push is not charged");
        q.pop().await.unwrap();
        assert_eq!(budget.held(), 7 * size);
        // Dropping the queue releases what it held.
        drop(q);
        assert_eq!(budget.held(), 0);
    }

    #[tokio::test]
    async fn refuses_when_full_and_keeps_order() {
        let q = MemoryQueue::new(2, u64::MAX);
        q.push(authwatch_testkit::log_signal(0, 1), false)
            .await
            .unwrap();
        q.push(authwatch_testkit::log_signal(1, 1), false)
            .await
            .unwrap();
        assert!(matches!(q.push(item(), false).await, Err(PushError::Full)));
        assert_eq!(q.len(), 2);
        let a = q.pop().await.unwrap();
        assert_eq!(a.data, authwatch_testkit::log_signal(0, 1));
        let b = q.pop().await.unwrap();
        assert_eq!(b.data, authwatch_testkit::log_signal(1, 1));
        assert_ne!(a.id, b.id);
        assert!(q.is_empty());
    }

    #[tokio::test]
    async fn backlog_is_full_from_half_of_either_bound() {
        use futures::FutureExt;
        let q = MemoryQueue::new(4, u64::MAX);
        assert_eq!(q.backlog(), Backlog::Clear);
        q.push(item(), false).await.unwrap();
        assert_eq!(q.backlog(), Backlog::Clear);
        q.push(item(), false).await.unwrap();
        assert_eq!(q.backlog(), Backlog::Full, "2 of 4 requests");
        q.pop().now_or_never().flatten().unwrap();
        assert_eq!(q.backlog(), Backlog::Clear);

        let one = authwatch_testkit::log_signal(0, 1);
        let size = one.encoded_size() as u64;
        let q = MemoryQueue::new(1000, size * 3);
        q.push(one.clone(), false).await.unwrap();
        assert_eq!(q.backlog(), Backlog::Clear, "a third of the bytes");
        q.push(one, false).await.unwrap();
        assert_eq!(q.backlog(), Backlog::Full, "two thirds of the bytes");
    }

    #[tokio::test]
    async fn room_resolves_once_a_request_is_taken() {
        use futures::FutureExt;
        let q = MemoryQueue::new(1, u64::MAX);
        q.push(item(), false).await.unwrap();
        assert!(matches!(q.push(item(), false).await, Err(PushError::Full)));
        let mut room = q.room();
        assert!((&mut room).now_or_never().is_none(), "no room before a pop");
        // Taken before the waiter polls again: the wake-up is kept, not lost.
        q.pop().now_or_never().flatten().unwrap();
        assert!(room.now_or_never().is_some());
        q.push(item(), false).await.unwrap();

        let closed = MemoryQueue::<Signal>::new(1, u64::MAX);
        closed.close();
        assert!(
            closed.room().now_or_never().is_some(),
            "a closed queue never has to be waited for"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn blocking_push_waits_for_room() {
        let q = Arc::new(MemoryQueue::new(1, u64::MAX));
        q.push(item(), true).await.unwrap();
        let q2 = q.clone();
        let pusher = tokio::spawn(async move { q2.push(item(), true).await });
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(!pusher.is_finished());
        assert!(q.pop().await.is_some());
        pusher.await.unwrap().unwrap();
        assert_eq!(q.len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn close_wakes_blocked_pushers_and_drains() {
        let q = Arc::new(MemoryQueue::new(1, u64::MAX));
        q.push(item(), true).await.unwrap();
        let q2 = q.clone();
        let pusher = tokio::spawn(async move { q2.push(item(), true).await });
        tokio::time::sleep(Duration::from_secs(1)).await;
        q.close();
        assert!(matches!(pusher.await.unwrap(), Err(PushError::Closed)));
        assert!(matches!(
            q.push(item(), false).await,
            Err(PushError::Closed)
        ));
        // What was queued before closing is still handed out, then the end.
        assert!(q.pop().await.is_some());
        assert!(q.pop().await.is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn close_wakes_idle_consumers() {
        let q = Arc::new(MemoryQueue::<Signal>::new(4, u64::MAX));
        let consumers: Vec<_> = (0..3)
            .map(|_| {
                let q = q.clone();
                tokio::spawn(async move { q.pop().await.is_none() })
            })
            .collect();
        tokio::time::sleep(Duration::from_secs(1)).await;
        q.close();
        for c in consumers {
            assert!(c.await.unwrap());
        }
    }

    #[tokio::test]
    async fn many_consumers_take_everything_once() {
        let q = Arc::new(MemoryQueue::new(100, u64::MAX));
        let consumers: Vec<_> = (0..4)
            .map(|_| {
                let q = q.clone();
                tokio::spawn(async move {
                    let mut n = 0;
                    while q.pop().await.is_some() {
                        n += 1;
                    }
                    n
                })
            })
            .collect();
        for _ in 0..50 {
            q.push(item(), true).await.unwrap();
        }
        q.close();
        let mut total = 0;
        for c in consumers {
            total += c.await.unwrap();
        }
        assert_eq!(total, 50);
    }
}
