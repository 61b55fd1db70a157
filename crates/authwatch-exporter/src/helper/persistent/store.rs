//! The store thread: the one owner of the database. It group-commits inserts and deletes,
//! serves reads, and reopens the file after an I/O error.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::{mpsc, Arc};

use redb::{Database, Durability};
use tokio::sync::oneshot;
use tracing::{error, info};

use super::{Meta, Shared, StoreError, RECORDS};

/// Most operations one store commit takes.
const MAX_BATCH: usize = 1024;

pub(super) enum Op {
    Insert {
        meta: Meta,
        record: Vec<u8>,
        reply: oneshot::Sender<Result<(), Arc<StoreError>>>,
    },
    Delete(u64),
    Read {
        id: u64,
        reply: oneshot::Sender<ReadResult>,
    },
}

pub(super) enum ReadResult {
    Found(Vec<u8>),
    Missing,
    Failed(Arc<StoreError>),
}

/// The thread that owns the database: group-commits inserts and deletes, serves reads, and
/// reopens the file after an I/O error (redb refuses further writes after one).
pub(super) struct Store {
    pub(super) path: PathBuf,
    pub(super) db: Option<Database>,
    pub(super) shared: Arc<Shared>,
    /// Deletes to try again in the next commit.
    pub(super) failed_deletes: Vec<u64>,
}

impl Store {
    pub(super) fn run(&mut self, rx: mpsc::Receiver<Op>) {
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
    fn db(&mut self) -> Result<&Database, StoreError> {
        let db = match self.db.take() {
            Some(db) => db,
            None => match catch_unwind(|| Database::builder().create(&self.path)) {
                Ok(Ok(db)) => {
                    info!(exporter = %self.shared.exporter, "Persistent sending queue file reopened.");
                    db
                }
                Ok(Err(e)) => return Err(StoreError::Reopen(e)),
                Err(_) => return Err(StoreError::Panicked("reopening")),
            },
        };
        Ok(self.db.insert(db))
    }

    /// Commits `records` and the pending deletes in one transaction.
    fn write(&mut self, records: &[(u64, &[u8])], durable: bool) -> Result<(), Arc<StoreError>> {
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
                Ok(r) => r.map_err(StoreError::Write),
                Err(_) => Err(StoreError::Panicked("writing")),
            }
        });
        let result = result.map_err(Arc::new);
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
            Err(e) => {
                let e = Arc::new(e);
                for (_, reply) in reads {
                    let _ = reply.send(ReadResult::Failed(e.clone()));
                }
                return;
            }
        };
        let txn = match catch_unwind(AssertUnwindSafe(|| db.begin_read())) {
            Ok(Ok(t)) => t,
            Ok(Err(e)) => {
                let e = Arc::new(StoreError::Read(e.into()));
                for (_, reply) in reads {
                    let _ = reply.send(ReadResult::Failed(e.clone()));
                }
                return;
            }
            Err(_) => {
                let e = Arc::new(StoreError::Panicked("reading"));
                for (_, reply) in reads {
                    let _ = reply.send(ReadResult::Failed(e.clone()));
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
                Ok(Err(e)) => ReadResult::Failed(Arc::new(StoreError::Read(e))),
            };
            let _ = reply.send(result);
        }
    }
}
