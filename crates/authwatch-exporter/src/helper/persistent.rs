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

use std::collections::{HashMap, VecDeque};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use authwatch_core::otlp::collector::logs::v1::ExportLogsServiceRequest;
use authwatch_core::otlp::collector::metrics::v1::ExportMetricsServiceRequest;
use authwatch_core::otlp::collector::trace::v1::ExportTraceServiceRequest;
use authwatch_core::telemetry::ExporterTelemetry;
use authwatch_core::{Signal, SignalKind};
use futures::future::BoxFuture;
use prost::Message;
use redb::{Database, DatabaseError, Durability, TableDefinition};
use tokio::sync::{oneshot, Notify};
use tracing::{error, info, warn};

use super::queue::{PushError, Queue, Queued};
use super::RateLimit;

/// The queue file inside the exporter's directory.
pub const FILE_NAME: &str = "queue.redb";
const RECORDS: TableDefinition<u64, &[u8]> = TableDefinition::new("records");
const FORMAT: u8 = 1;
/// format, tag, enqueued ms, crc32.
const HEADER: usize = 1 + 1 + 8 + 4;
/// Most operations one store commit takes.
const MAX_BATCH: usize = 1024;
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
    #[error("cannot open the queue file `{path}`: {message}; check the path, permissions and free space")]
    Open { path: PathBuf, message: String },
}

/// Why a stored record was skipped.
#[derive(Debug, thiserror::Error)]
pub enum Corrupt {
    #[error("record is truncated ({0} bytes)")]
    Truncated(usize),
    #[error("unknown record format {0}")]
    Format(u8),
    #[error("unknown signal tag {0}")]
    Tag(u8),
    #[error("checksum mismatch")]
    Checksum,
    #[error("payload does not decode: {0}")]
    Decode(#[from] prost::DecodeError),
    #[error("record is missing from the queue file")]
    Missing,
}

// === record format ===

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn checksum(head: &[u8], payload: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(head);
    h.update(payload);
    h.finalize()
}

/// One stored record: header and protobuf payload.
pub(crate) fn encode_record(data: &Signal, enqueued_ms: u64) -> Vec<u8> {
    let encoded = data.to_encoded();
    let tag = match encoded.kind() {
        SignalKind::Traces => 0u8,
        SignalKind::Metrics => 1u8,
        SignalKind::Logs => 2u8,
    };
    let payload = encoded.bytes();
    let mut out = Vec::with_capacity(HEADER + payload.len());
    out.push(FORMAT);
    out.push(tag);
    out.extend_from_slice(&enqueued_ms.to_le_bytes());
    let crc = checksum(&out, payload);
    out.extend_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(payload);
    out
}

/// Checks a record's header and checksum; returns its enqueue time.
fn check_record(value: &[u8]) -> Result<u64, Corrupt> {
    if value.len() < HEADER {
        return Err(Corrupt::Truncated(value.len()));
    }
    if value[0] != FORMAT {
        return Err(Corrupt::Format(value[0]));
    }
    if value[1] > 2 {
        return Err(Corrupt::Tag(value[1]));
    }
    let mut crc = [0u8; 4];
    crc.copy_from_slice(&value[10..14]);
    if checksum(&value[..10], &value[HEADER..]) != u32::from_le_bytes(crc) {
        return Err(Corrupt::Checksum);
    }
    let mut ms = [0u8; 8];
    ms.copy_from_slice(&value[2..10]);
    Ok(u64::from_le_bytes(ms))
}

pub(crate) fn decode_record(value: &[u8]) -> Result<Signal, Corrupt> {
    check_record(value)?;
    let payload = &value[HEADER..];
    Ok(match value[1] {
        0 => Signal::Traces(ExportTraceServiceRequest::decode(payload)?),
        1 => Signal::Metrics(ExportMetricsServiceRequest::decode(payload)?),
        _ => Signal::Logs(ExportLogsServiceRequest::decode(payload)?),
    })
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

enum Op {
    Insert {
        meta: Meta,
        record: Vec<u8>,
        reply: oneshot::Sender<Result<(), String>>,
    },
    Delete(u64),
    Read {
        id: u64,
        reply: oneshot::Sender<ReadResult>,
    },
}

enum ReadResult {
    Found(Vec<u8>),
    Missing,
    Failed(String),
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
            .map_err(|e| StorageError::Open {
                path: path.clone(),
                message: format!("cannot start the store thread: {e}"),
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
            return ReadResult::Failed("the queue store has stopped".into());
        }
        rx.await
            .unwrap_or_else(|_| ReadResult::Failed("the queue store has stopped".into()))
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
                return Err(PushError::Storage("the queue store has stopped".into()));
            }
            match rx.await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(message)) => Err(PushError::Storage(message)),
                Err(_) => Err(PushError::Storage("the queue store has stopped".into())),
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

// === open and scan ===

#[derive(Default)]
struct Scan {
    good: Vec<Meta>,
    corrupt: Vec<(u64, Corrupt)>,
    next_id: u64,
}

fn is_corruption(e: &DatabaseError) -> bool {
    match e {
        DatabaseError::UpgradeRequired(_) => true,
        DatabaseError::Storage(redb::StorageError::Corrupted(_)) => true,
        DatabaseError::Storage(redb::StorageError::Io(io)) => matches!(
            io.kind(),
            std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::InvalidData
        ),
        _ => false,
    }
}

/// Opens the file; an unreadable one is moved aside and replaced by an empty one.
fn open_db(
    path: &Path,
    exporter: &str,
    recovered: &mut Recovered,
) -> Result<Database, StorageError> {
    let open = || catch_unwind(|| Database::builder().create(path));
    let why = match open() {
        Ok(Ok(db)) => return Ok(db),
        Ok(Err(DatabaseError::DatabaseAlreadyOpen)) => {
            return Err(StorageError::InUse(path.to_path_buf()))
        }
        Ok(Err(e)) if is_corruption(&e) => e.to_string(),
        Ok(Err(e)) => {
            return Err(StorageError::Open {
                path: path.to_path_buf(),
                message: e.to_string(),
            })
        }
        Err(_) => "the storage engine panicked reading it".to_owned(),
    };
    let aside = move_aside(path, exporter, &why)?;
    recovered.moved_aside = Some(aside);
    match open() {
        Ok(Ok(db)) => Ok(db),
        Ok(Err(e)) => Err(StorageError::Open {
            path: path.to_path_buf(),
            message: e.to_string(),
        }),
        Err(_) => Err(StorageError::Open {
            path: path.to_path_buf(),
            message: "the storage engine panicked creating a new file".into(),
        }),
    }
}

fn move_aside(path: &Path, exporter: &str, why: &str) -> Result<PathBuf, StorageError> {
    let secs = now_ms() / 1000;
    let aside = path.with_file_name(format!("{FILE_NAME}.corrupt-{secs}"));
    std::fs::rename(path, &aside).map_err(|e| StorageError::Open {
        path: path.to_path_buf(),
        message: format!("the file is corrupt ({why}) and cannot be moved aside: {e}"),
    })?;
    error!(
        exporter, path = %path.display(), moved_to = %aside.display(), error = why,
        "Persistent sending queue file is corrupt; moved it aside and started a new queue file."
    );
    Ok(aside)
}

fn scan(db: &Database, out: &mut Scan) -> Result<(), redb::Error> {
    let txn = db.begin_read()?;
    let table = match txn.open_table(RECORDS) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    for item in table.range::<u64>(..)? {
        let (k, v) = item?;
        let id = k.value();
        out.next_id = out.next_id.max(id + 1);
        let value = v.value();
        match check_record(value) {
            Ok(enqueued_ms) => out.good.push(Meta {
                id,
                bytes: value.len() as u64,
                enqueued_ms,
            }),
            Err(why) => out.corrupt.push((id, why)),
        }
    }
    Ok(())
}

fn open_and_scan(
    path: &Path,
    exporter: &str,
    recovered: &mut Recovered,
) -> Result<(Database, Scan), StorageError> {
    let db = open_db(path, exporter, recovered)?;
    let mut found = Scan::default();
    let why = match catch_unwind(AssertUnwindSafe(|| scan(&db, &mut found))) {
        Ok(Ok(())) => return Ok((db, found)),
        Ok(Err(e)) => e.to_string(),
        Err(_) => "the storage engine panicked reading it".to_owned(),
    };
    // Part of the file is unreadable: keep what was read, in a new file.
    let aside = move_aside(path, exporter, &why)?;
    recovered.moved_aside = Some(aside);
    let fresh = open_db(path, exporter, recovered)?;
    let mut kept = Scan {
        next_id: found.next_id,
        corrupt: found.corrupt,
        good: Vec::new(),
    };
    let copy = catch_unwind(AssertUnwindSafe(|| -> Result<(), redb::Error> {
        let read = db.begin_read()?;
        let old = read.open_table(RECORDS)?;
        let txn = fresh.begin_write()?;
        {
            let mut new = txn.open_table(RECORDS)?;
            for m in &found.good {
                if let Ok(Some(v)) = old.get(m.id) {
                    new.insert(m.id, v.value())?;
                    kept.good.push(*m);
                }
            }
        }
        txn.commit()?;
        Ok(())
    }));
    drop(db);
    if !matches!(copy, Ok(Ok(()))) {
        kept.good.clear();
    }
    warn!(
        exporter,
        kept = kept.good.len(),
        lost = found.good.len() - kept.good.len(),
        "Copied the readable records of the corrupt queue file into the new one."
    );
    // Corrupt records were left behind in the old file.
    kept.corrupt.clear();
    Ok((fresh, kept))
}

// === impl Store ===

/// The thread that owns the database: group-commits inserts and deletes, serves reads, and
/// reopens the file after an I/O error (redb refuses further writes after one).
struct Store {
    path: PathBuf,
    db: Option<Database>,
    shared: Arc<Shared>,
    /// Deletes to try again in the next commit.
    failed_deletes: Vec<u64>,
}

impl Store {
    fn run(&mut self, rx: mpsc::Receiver<Op>) {
        if !self.failed_deletes.is_empty() {
            let _ = self.write(&[], true);
        }
        while let Ok(first) = rx.recv() {
            let mut ops = vec![first];
            while ops.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(op) => ops.push(op),
                    Err(_) => break,
                }
            }
            self.batch(ops);
        }
        // Every handle is gone: a last attempt at pending deletes, then a clean close.
        if !self.failed_deletes.is_empty() {
            let _ = self.write(&[], false);
        }
    }

    fn batch(&mut self, ops: Vec<Op>) {
        let mut inserts = Vec::new();
        let mut reads = Vec::new();
        for op in ops {
            match op {
                Op::Insert {
                    meta,
                    record,
                    reply,
                } => inserts.push((meta, record, reply)),
                Op::Delete(id) => self.failed_deletes.push(id),
                Op::Read { id, reply } => reads.push((id, reply)),
            }
        }
        if !inserts.is_empty() || !self.failed_deletes.is_empty() {
            let records: Vec<(u64, &[u8])> = inserts
                .iter()
                .map(|(m, r, _)| (m.id, r.as_slice()))
                .collect();
            let result = self.write(&records, !records.is_empty());
            let mut s = self.shared.lock();
            for (meta, _, reply) in inserts {
                s.reserved -= 1;
                s.reserved_bytes -= meta.bytes;
                if result.is_ok() {
                    s.pending.push_back(meta);
                    s.stored_bytes += meta.bytes;
                    self.shared.readable.notify_one();
                }
                let _ = reply.send(result.clone());
            }
            drop(s);
            if result.is_err() {
                self.shared.wake_writers();
            }
        }
        if !reads.is_empty() {
            self.read(reads);
        }
    }

    /// The open database, reopening it after a failure.
    fn db(&mut self) -> Result<&Database, String> {
        if self.db.is_none() {
            match catch_unwind(|| Database::builder().create(&self.path)) {
                Ok(Ok(db)) => {
                    info!(exporter = %self.shared.exporter, "Persistent sending queue file reopened.");
                    self.db = Some(db);
                }
                Ok(Err(e)) => return Err(format!("cannot reopen the queue file: {e}")),
                Err(_) => return Err("the storage engine panicked reopening the queue file".into()),
            }
        }
        self.db
            .as_ref()
            .ok_or_else(|| "the queue file is not open".to_owned())
    }

    /// Commits `records` and the pending deletes in one transaction.
    fn write(&mut self, records: &[(u64, &[u8])], durable: bool) -> Result<(), String> {
        let deletes = std::mem::take(&mut self.failed_deletes);
        let result = self.db().and_then(|db| {
            let commit = || -> Result<(), redb::Error> {
                let mut txn = db.begin_write()?;
                txn.set_durability(if durable {
                    Durability::Immediate
                } else {
                    Durability::Eventual
                });
                {
                    let mut table = txn.open_table(RECORDS)?;
                    for (id, value) in records {
                        table.insert(*id, *value)?;
                    }
                    for id in &deletes {
                        table.remove(*id)?;
                    }
                }
                txn.commit()?;
                Ok(())
            };
            match catch_unwind(AssertUnwindSafe(commit)) {
                Ok(r) => r.map_err(|e| format!("cannot write the queue file: {e}")),
                Err(_) => Err("the storage engine panicked writing the queue file".into()),
            }
        });
        if let Err(message) = &result {
            self.failed_deletes = deletes;
            // redb refuses every write after an I/O error until the file is reopened.
            self.db = None;
            if let Some(suppressed) = self.shared.storage_warn.check() {
                error!(
                    exporter = %self.shared.exporter, path = %self.path.display(),
                    error = %message, suppressed,
                    "Persistent sending queue cannot write; refusing new data until it can. Check free disk space and permissions."
                );
            }
        }
        result
    }

    fn read(&mut self, reads: Vec<(u64, oneshot::Sender<ReadResult>)>) {
        let db = match self.db() {
            Ok(db) => db,
            Err(message) => {
                for (_, reply) in reads {
                    let _ = reply.send(ReadResult::Failed(message.clone()));
                }
                return;
            }
        };
        let txn = match catch_unwind(AssertUnwindSafe(|| db.begin_read())) {
            Ok(Ok(t)) => t,
            Ok(Err(e)) => {
                for (_, reply) in reads {
                    let _ = reply.send(ReadResult::Failed(e.to_string()));
                }
                return;
            }
            Err(_) => {
                for (_, reply) in reads {
                    let _ = reply.send(ReadResult::Failed("the storage engine panicked".into()));
                }
                return;
            }
        };
        for (id, reply) in reads {
            let got = catch_unwind(AssertUnwindSafe(|| -> Result<ReadResult, redb::Error> {
                let table = match txn.open_table(RECORDS) {
                    Ok(t) => t,
                    Err(redb::TableError::TableDoesNotExist(_)) => return Ok(ReadResult::Missing),
                    Err(e) => return Err(e.into()),
                };
                Ok(match table.get(id)? {
                    Some(v) => ReadResult::Found(v.value().to_vec()),
                    None => ReadResult::Missing,
                })
            }));
            let result = match got {
                Ok(Ok(r)) => r,
                // A damaged page: the record cannot be read, now or later.
                Ok(Err(redb::Error::Corrupted(_))) | Err(_) => ReadResult::Missing,
                Ok(Err(e)) => ReadResult::Failed(e.to_string()),
            };
            let _ = reply.send(result);
        }
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
#[path = "persistent_tests.rs"]
mod tests;
