//! A durable cursor (the last `log_id`, or the `next` URL) in a directory.
//!
//! [`Checkpoint::store`] writes `<name>.tmp`, fsyncs it, renames it over `<name>` and fsyncs the
//! directory, so after a crash (`kill -9`, power loss) the file holds either the old cursor or
//! the new one, never a torn mix. [`Checkpoint::load`] moves a file it cannot read as a
//! checkpoint aside to `<name>.corrupt-<unix seconds>`, logs it and answers "no checkpoint", so
//! the caller starts from its configured start point and says so.
//!
//! The file is JSON, `{"version":1,"cursor":"..."}`: a person can read it, and a cursor can be
//! set by hand to replay from a known point. These are blocking calls: run them with
//! `tokio::task::spawn_blocking` from async code.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tracing::warn;

/// The file format version this code writes and reads.
const VERSION: u32 = 1;
/// A checkpoint file larger than this is not one of ours.
const MAX_FILE_BYTES: u64 = 64 * 1024;

/// Why a checkpoint could not be read or written. Holds paths, never the cursor.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("cannot create the checkpoint directory {}: {source}", path.display())]
    CreateDir {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot read the checkpoint {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot write the checkpoint {}: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot move the corrupt checkpoint {} aside: {source}", path.display())]
    MoveAside {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("refusing to store an empty cursor, or one longer than {max} bytes")]
    BadCursor { max: usize },
}

/// What [`Checkpoint::load`] found.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Loaded {
    /// The stored cursor; `None` when there is no usable checkpoint.
    pub cursor: Option<String>,
    /// Where a corrupt checkpoint was moved, when it was.
    pub moved_aside: Option<PathBuf>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct File1 {
    version: u32,
    cursor: String,
}

/// One cursor file, `<dir>/<name>`.
#[derive(Debug, Clone)]
pub struct Checkpoint {
    dir: PathBuf,
    name: String,
}

impl Checkpoint {
    /// A checkpoint kept in `dir` (created when first stored) under the file name `name`.
    pub fn new(dir: impl Into<PathBuf>, name: impl Into<String>) -> Self {
        Checkpoint {
            dir: dir.into(),
            name: name.into(),
        }
    }

    /// The checkpoint file.
    pub fn path(&self) -> PathBuf {
        self.dir.join(&self.name)
    }

    fn tmp_path(&self) -> PathBuf {
        self.dir.join(format!("{}.tmp", self.name))
    }

    /// The stored cursor. A missing file is `None`; a file that is not a checkpoint is moved
    /// aside, logged, and `None` too.
    pub fn load(&self) -> Result<Loaded, CheckpointError> {
        let path = self.path();
        let read_err = |source| CheckpointError::Read {
            path: path.clone(),
            source,
        };
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Loaded::default()),
            Err(e) => return Err(read_err(e)),
        };
        let mut bytes = Vec::new();
        file.take(MAX_FILE_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(read_err)?;
        match parse(&bytes) {
            Some(cursor) => Ok(Loaded {
                cursor: Some(cursor),
                moved_aside: None,
            }),
            None => {
                let secs = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or(0);
                let aside = self.dir.join(format!("{}.corrupt-{secs}", self.name));
                fs::rename(&path, &aside).map_err(|source| CheckpointError::MoveAside {
                    path: path.clone(),
                    source,
                })?;
                warn!(
                    checkpoint = %path.display(),
                    moved_to = %aside.display(),
                    "The checkpoint file is corrupt; moved it aside and starting from the configured start point."
                );
                Ok(Loaded {
                    cursor: None,
                    moved_aside: Some(aside),
                })
            }
        }
    }

    /// Stores `cursor` durably: temp file, fsync, rename, fsync of the directory.
    pub fn store(&self, cursor: &str) -> Result<(), CheckpointError> {
        if cursor.is_empty() || cursor.len() as u64 > MAX_FILE_BYTES / 2 {
            return Err(CheckpointError::BadCursor {
                max: (MAX_FILE_BYTES / 2) as usize,
            });
        }
        fs::create_dir_all(&self.dir).map_err(|source| CheckpointError::CreateDir {
            path: self.dir.clone(),
            source,
        })?;
        let tmp = self.tmp_path();
        let write_err = |path: &Path| {
            let path = path.to_path_buf();
            move |source| CheckpointError::Write { path, source }
        };
        let body = serde_json::to_vec(&File1 {
            version: VERSION,
            cursor: cursor.to_owned(),
        })
        .map_err(|e| write_err(&tmp)(io::Error::other(e)))?;
        {
            let mut f = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .open(&tmp)
                .map_err(write_err(&tmp))?;
            f.write_all(&body).map_err(write_err(&tmp))?;
            f.sync_all().map_err(write_err(&tmp))?;
        }
        let path = self.path();
        fs::rename(&tmp, &path).map_err(write_err(&path))?;
        sync_dir(&self.dir).map_err(write_err(&self.dir))?;
        Ok(())
    }
}

fn parse(bytes: &[u8]) -> Option<String> {
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return None;
    }
    let f: File1 = serde_json::from_slice(bytes).ok()?;
    (f.version == VERSION && !f.cursor.is_empty()).then_some(f.cursor)
}

/// Makes a rename in `dir` durable (a no-op where directories cannot be synced).
#[cfg(unix)]
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(not(unix))]
pub fn sync_dir(_dir: &Path) -> io::Result<()> {
    Ok(())
}

#[cfg(test)]
#[path = "tests/checkpoint.rs"]
mod tests;
