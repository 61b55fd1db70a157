//! Opening the queue file: an unreadable file is moved aside and replaced by an empty one, and
//! the records that could still be read are copied into it.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use redb::{Database, DatabaseError};
use tracing::{error, warn};

use super::record::{check_record, now_ms, Corrupt};
use super::{Meta, Recovered, StorageError, Unreadable, FILE_NAME, RECORDS};

#[derive(Default)]
pub(super) struct Scan {
    pub(super) good: Vec<Meta>,
    pub(super) corrupt: Vec<(u64, Corrupt)>,
    pub(super) next_id: u64,
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
        Ok(Err(e)) if is_corruption(&e) => Unreadable::Open(e),
        Ok(Err(source)) => {
            return Err(StorageError::Open {
                path: path.to_path_buf(),
                source,
            })
        }
        Err(_) => Unreadable::Panicked,
    };
    let aside = move_aside(path, exporter, why)?;
    recovered.moved_aside = Some(aside);
    match open() {
        Ok(Ok(db)) => Ok(db),
        Ok(Err(source)) => Err(StorageError::Open {
            path: path.to_path_buf(),
            source,
        }),
        Err(_) => Err(StorageError::Panicked {
            path: path.to_path_buf(),
        }),
    }
}

fn move_aside(path: &Path, exporter: &str, why: Unreadable) -> Result<PathBuf, StorageError> {
    let secs = now_ms() / 1000;
    let aside = path.with_file_name(format!("{FILE_NAME}.corrupt-{secs}"));
    if let Err(source) = std::fs::rename(path, &aside) {
        return Err(StorageError::MoveAside {
            path: path.to_path_buf(),
            why,
            source,
        });
    }
    error!(
        exporter, path = %path.display(), moved_to = %aside.display(), error = %why,
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

pub(super) fn open_and_scan(
    path: &Path,
    exporter: &str,
    recovered: &mut Recovered,
) -> Result<(Database, Scan), StorageError> {
    let db = open_db(path, exporter, recovered)?;
    let mut found = Scan::default();
    let why = match catch_unwind(AssertUnwindSafe(|| scan(&db, &mut found))) {
        Ok(Ok(())) => return Ok((db, found)),
        Ok(Err(e)) => Unreadable::Scan(e),
        Err(_) => Unreadable::Panicked,
    };
    // Part of the file is unreadable: keep what was read, in a new file.
    let aside = move_aside(path, exporter, why)?;
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
