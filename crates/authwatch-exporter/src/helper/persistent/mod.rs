//! The persistent `sending_queue` (`storage: <dir>`): every request is written to an embedded
//! [redb](https://www.redb.org) database before the sender is answered, and deleted only once it
//! was sent or given up on, so what was acknowledged survives a crash or `kill -9` and is sent
//! after a restart on the same directory (at least once: a request whose delete was lost in the
//! crash is sent again).
//!
//! - **File:** `<storage>/<exporter id>/queue.redb`, one table `records`, key = a growing id.
//! - **Record:** `format (1) | signal tag (1) | enqueued unix ms (8, LE) | crc32 (4, LE) |
//!   protobuf Export*ServiceRequest`. The CRC (over everything but itself) is checked when the
//!   file is opened and again when a record is taken; a record that fails the check or does not
//!   decode is counted (`exporter_queue_corrupt_records`), logged, deleted and skipped.
//! - **Durability:** writes are group-committed by one store thread: a batch holding new records
//!   commits with `Durability::Immediate` (fsync) before any of its senders is answered; batches
//!   holding only deletes commit with `Durability::Eventual` (a power loss may bring deleted
//!   records back: duplicates, never loss).
//! - **Corrupt file:** if redb cannot open the file (or panics reading it), the file is moved to
//!   `queue.redb.corrupt-<unix seconds>`, an error is logged, and an empty queue starts; records
//!   that could still be read are copied into the new file first.
//! - **Limits:** `queue_size` requests waiting and `max_size_mib` bytes stored (waiting and in
//!   flight, counted as record bytes; redb's own page overhead comes on top).

// redb's error types are large; they only travel the cold error path.
#![allow(clippy::result_large_err)]

mod open;
mod record;
mod store;

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Mutex, MutexGuard};
use std::time::Duration;

use authwatch_core::telemetry::ExporterTelemetry;
use authwatch_core::{Backlog, Signal};
use futures::future::BoxFuture;
use redb::TableDefinition;
use tokio::sync::{oneshot, Notify};
use tracing::{error, info};

use super::queue::{PushError, Queue, Queued};
use super::RateLimit;
use open::open_and_scan;
use record::now_ms;
pub use record::Corrupt;
pub(crate) use record::{decode_record, encode_record};
use store::{Op, ReadResult, Store};

/// The queue file inside the exporter's directory.
pub const FILE_NAME: &str = "queue.redb";
const RECORDS: TableDefinition<u64, &[u8]> = TableDefinition::new("records");
/// Wait before taking a record again after a read failed for a reason other than corruption.
const READ_RETRY: Duration = Duration::from_secs(1);

/// Why the persistent queue could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error(
        "cannot create the queue directory `{path}`: {source}; check the path and permissions"
    )]
    Dir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the queue file `{0}` is in use by another process; give each authwatch instance its own `storage` directory")]
    InUse(PathBuf),
    #[error(
        "cannot open the queue file `{path}`: {source}; check the path, permissions and free space"
    )]
    Open {
        path: PathBuf,
        #[source]
        source: redb::DatabaseError,
    },
    #[error("cannot open the queue file `{path}`: the storage engine panicked creating a new file; check the path, permissions and free space")]
    Panicked { path: PathBuf },
    #[error("cannot open the queue file `{path}`: the file is corrupt ({why}) and cannot be moved aside: {source}; check the path, permissions and free space")]
    MoveAside {
        path: PathBuf,
        why: Unreadable,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot start the store thread of the queue file `{path}`: {source}")]
    Thread {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Why a queue file could not be read when it was opened (it is then moved aside).
#[derive(Debug, thiserror::Error)]
pub enum Unreadable {
    #[error(transparent)]
    Open(redb::DatabaseError),
    #[error(transparent)]
    Scan(redb::Error),
    #[error("the storage engine panicked reading it")]
    Panicked,
}

/// Why the store thread could not read or write the queue file. Shared (`Arc`) because one
/// failed commit answers every push it held.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot reopen the queue file: {0}")]
    Reopen(#[source] redb::DatabaseError),
    #[error("cannot write the queue file: {0}")]
    Write(#[source] redb::Error),
    #[error("cannot read the queue file: {0}")]
    Read(#[source] redb::Error),
    /// The storage engine panicked; what it was doing.
    #[error("the storage engine panicked {0} the queue file")]
    Panicked(&'static str),
    #[error("the queue store has stopped")]
    Stopped,
}

// === shared state ===

#[derive(Debug, Clone, Copy)]
struct Meta {
    id: u64,
    bytes: u64,
    enqueued_ms: u64,
}

#[derive(Default)]
struct State {
    /// Stored and waiting, oldest first.
    pending: VecDeque<Meta>,
    /// Handed to a consumer, not yet done.
    in_flight: HashMap<u64, Meta>,
    /// Bytes of `pending` and `in_flight`.
    stored_bytes: u64,
    /// Pushes admitted but not yet committed, and their bytes.
    reserved: usize,
    reserved_bytes: u64,
    next_id: u64,
    closed: bool,
}

struct Shared {
    state: Mutex<State>,
    readable: Notify,
    writable: Notify,
    /// Woken with a permit (`notify_one`) whenever room may have appeared, for
    /// [`Queue::room`]: a `batch` in front of the queue waits on it instead of a backoff.
    room: Notify,
    exporter: String,
    telemetry: ExporterTelemetry,
    corrupt_warn: RateLimit,
    storage_warn: RateLimit,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn wake_writers(&self) {
        self.writable.notify_waiters();
        self.room.notify_one();
    }

    fn corrupt(&self, id: u64, why: &Corrupt) {
        self.telemetry.queue_corrupt_records.inc();
        if let Some(suppressed) = self.corrupt_warn.check() {
            error!(
                exporter = %self.exporter, record = id, error = %why, suppressed,
                "Skipped a corrupt record in the persistent sending queue."
            );
        }
    }
}

// === impl PersistentQueue ===

/// A [`Queue`] stored in a redb file; see the module docs.
pub struct PersistentQueue {
    shared: Arc<Shared>,
    ops: mpsc::Sender<Op>,
    capacity: usize,
    max_bytes: u64,
    /// Joined on drop, so that the file is closed cleanly (and can be reopened) once the queue
    /// is gone.
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for PersistentQueue {
    fn drop(&mut self) {
        // Closing the channel ends the store thread after its last commit.
        self.ops = mpsc::channel().0;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// What [`PersistentQueue::open`] found on disk.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recovered {
    /// Records queued again.
    pub records: usize,
    pub bytes: u64,
    /// Records skipped as corrupt.
    pub corrupt: usize,
    /// Where an unreadable file was moved, if it was.
    pub moved_aside: Option<PathBuf>,
}

impl PersistentQueue {
    /// Opens (or creates) `dir/queue.redb` and queues again everything a previous run left.
    /// `capacity` counts waiting requests; `max_bytes` bounds the bytes stored.
    pub fn open(
        dir: &Path,
        exporter: &str,
        capacity: usize,
        max_bytes: u64,
        telemetry: ExporterTelemetry,
    ) -> Result<(Self, Recovered), StorageError> {
        std::fs::create_dir_all(dir).map_err(|source| StorageError::Dir {
            path: dir.to_path_buf(),
            source,
        })?;
        let path = dir.join(FILE_NAME);
        let mut recovered = Recovered::default();
        let (db, scan) = open_and_scan(&path, exporter, &mut recovered)?;
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            readable: Notify::new(),
            writable: Notify::new(),
            room: Notify::new(),
            exporter: exporter.to_owned(),
            telemetry,
            corrupt_warn: RateLimit::default(),
            storage_warn: RateLimit::default(),
        });
        for (id, why) in &scan.corrupt {
            shared.corrupt(*id, why);
        }
        recovered.corrupt += scan.corrupt.len();
        recovered.records = scan.good.len();
        recovered.bytes = scan.good.iter().map(|m| m.bytes).sum();
        {
            let mut s = shared.lock();
            s.next_id = scan.next_id;
            s.stored_bytes = recovered.bytes;
            s.pending = scan.good.into();
        }
        let (ops, rx) = mpsc::channel();
        let mut store = Store {
            path: path.clone(),
            db: Some(db),
            shared: shared.clone(),
            failed_deletes: scan.corrupt.iter().map(|c| c.0).collect(),
        };
        let thread = std::thread::Builder::new()
            .name("authwatch-queue".into())
            .spawn(move || store.run(rx))
            .map_err(|source| StorageError::Thread {
                path: path.clone(),
                source,
            })?;
        if recovered.records > 0 || recovered.corrupt > 0 {
            info!(
                exporter, path = %path.display(), records = recovered.records,
                bytes = recovered.bytes, corrupt = recovered.corrupt,
                "Persistent sending queue queued again what the previous run left."
            );
        } else {
            info!(exporter, path = %path.display(), "Persistent sending queue opened.");
        }
        let q = PersistentQueue {
            shared,
            ops,
            capacity: capacity.max(1),
            max_bytes: max_bytes.max(1),
            thread: Some(thread),
        };
        Ok((q, recovered))
    }

    async fn read(&self, id: u64) -> ReadResult {
        let (reply, rx) = oneshot::channel();
        if self.ops.send(Op::Read { id, reply }).is_err() {
            return ReadResult::Failed(Arc::new(StoreError::Stopped));
        }
        rx.await
            .unwrap_or_else(|_| ReadResult::Failed(Arc::new(StoreError::Stopped)))
    }

    /// Forgets an in-flight record and deletes it from the file.
    fn forget(&self, id: u64) {
        {
            let mut s = self.shared.lock();
            if let Some(m) = s.in_flight.remove(&id) {
                s.stored_bytes = s.stored_bytes.saturating_sub(m.bytes);
            }
        }
        self.shared.wake_writers();
        let _ = self.ops.send(Op::Delete(id));
    }
}

impl Queue for PersistentQueue {
    fn push(&self, data: Signal, block: bool) -> BoxFuture<'_, Result<(), PushError>> {
        Box::pin(async move {
            let enqueued_ms = now_ms();
            let record = encode_record(&data, enqueued_ms);
            drop(data);
            let bytes = record.len() as u64;
            if bytes > self.max_bytes {
                return Err(PushError::TooLarge(bytes));
            }
            let meta = loop {
                let room = self.shared.writable.notified();
                tokio::pin!(room);
                room.as_mut().enable();
                {
                    let mut s = self.shared.lock();
                    if s.closed {
                        return Err(PushError::Closed);
                    }
                    let fits_count = s.pending.len() + s.reserved < self.capacity;
                    let fits_bytes = s.stored_bytes + s.reserved_bytes + bytes <= self.max_bytes;
                    if fits_count && fits_bytes {
                        s.reserved += 1;
                        s.reserved_bytes += bytes;
                        let id = s.next_id;
                        s.next_id += 1;
                        break Meta {
                            id,
                            bytes,
                            enqueued_ms,
                        };
                    }
                }
                if !block {
                    return Err(PushError::Full);
                }
                room.await;
            };
            // From here the store thread owns the reservation: it queues the record once it is
            // committed, even if this future is dropped.
            let (reply, rx) = oneshot::channel();
            if let Err(mpsc::SendError(op)) = self.ops.send(Op::Insert {
                meta,
                record,
                reply,
            }) {
                if let Op::Insert { meta, .. } = op {
                    let mut s = self.shared.lock();
                    s.reserved -= 1;
                    s.reserved_bytes -= meta.bytes;
                }
                return Err(PushError::Storage(Arc::new(StoreError::Stopped)));
            }
            match rx.await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(PushError::Storage(e)),
                Err(_) => Err(PushError::Storage(Arc::new(StoreError::Stopped))),
            }
        })
    }

    fn pop(&self) -> BoxFuture<'_, Option<Queued>> {
        Box::pin(async move {
            loop {
                let ready = self.shared.readable.notified();
                tokio::pin!(ready);
                ready.as_mut().enable();
                let taken = {
                    let mut s = self.shared.lock();
                    match s.pending.pop_front() {
                        Some(m) => {
                            s.in_flight.insert(m.id, m);
                            Some((m.id, !s.pending.is_empty()))
                        }
                        None if s.closed && s.reserved == 0 => return None,
                        None => None,
                    }
                };
                let Some((id, more)) = taken else {
                    ready.await;
                    continue;
                };
                self.shared.wake_writers();
                if more {
                    self.shared.readable.notify_one();
                }
                match self.read(id).await {
                    ReadResult::Found(value) => match decode_record(&value) {
                        Ok(data) => return Some(Queued { data, id }),
                        Err(why) => {
                            self.shared.corrupt(id, &why);
                            self.forget(id);
                        }
                    },
                    ReadResult::Missing => {
                        self.shared.corrupt(id, &Corrupt::Missing);
                        self.forget(id);
                    }
                    ReadResult::Failed(message) => {
                        if let Some(suppressed) = self.shared.storage_warn.check() {
                            error!(
                                exporter = %self.shared.exporter, error = %message, suppressed,
                                "Cannot read the persistent sending queue; will try again."
                            );
                        }
                        {
                            let mut s = self.shared.lock();
                            if let Some(m) = s.in_flight.remove(&id) {
                                s.pending.push_front(m);
                            }
                        }
                        tokio::time::sleep(READ_RETRY).await;
                    }
                }
            }
        })
    }

    fn done(&self, id: u64) {
        self.forget(id);
    }

    fn close(&self) {
        self.shared.lock().closed = true;
        self.shared.readable.notify_waiters();
        self.shared.writable.notify_waiters();
        self.shared.room.notify_waiters();
    }

    /// `Full` from half of either bound, counting what is admitted but not yet committed; bytes
    /// include the requests being sent, which hold their room in the file until done.
    fn backlog(&self) -> Backlog {
        let s = self.shared.lock();
        let count = s.pending.len() + s.reserved;
        let bytes = s.stored_bytes + s.reserved_bytes;
        if count > 0 && (count * 2 >= self.capacity || bytes * 2 >= self.max_bytes) {
            Backlog::Full
        } else {
            Backlog::Clear
        }
    }

    fn room(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            // Taking, finishing or failing to store a request leaves a permit when nobody waits,
            // so one between the refused push and this call is not missed.
            let room = self.shared.room.notified();
            tokio::pin!(room);
            room.as_mut().enable();
            if self.shared.lock().closed {
                return;
            }
            room.await;
        })
    }

    fn len(&self) -> usize {
        self.shared.lock().pending.len()
    }

    fn capacity(&self) -> usize {
        self.capacity
    }

    fn bytes(&self) -> u64 {
        self.shared.lock().stored_bytes
    }

    fn oldest_age(&self) -> Option<Duration> {
        let s = self.shared.lock();
        let oldest = s
            .pending
            .front()
            .into_iter()
            .chain(s.in_flight.values())
            .map(|m| m.enqueued_ms)
            .min()?;
        Some(Duration::from_millis(now_ms().saturating_sub(oldest)))
    }
}

/// The directory name of an exporter's queue: its id with anything but letters, digits, `-`,
/// `_` and `.` replaced by `_` (`otlp/upstream` → `otlp_upstream`).
pub fn dir_name(exporter: &str) -> String {
    exporter
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests;
