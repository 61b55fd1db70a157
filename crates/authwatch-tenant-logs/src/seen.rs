//! A durable record of the `log_id`s the pipelines accepted, so the dedupe survives a restart
//! or a `kill -9`.
//!
//! The file starts with the line `authwatch-seen v1`, then one line per accepted id:
//! `<unix milliseconds> <log_id>`. [`SeenFile::append`] writes a batch's lines and fsyncs them
//! (call it after the pipeline accepted the batch and before a checkpoint moves past it).
//! [`SeenFile::open`] reads what is there, keeps the ids younger than the window (at most
//! `bound` of them, the newest), ignores a torn last line (a crash in the middle of a write),
//! and writes the kept entries back atomically (temp file, fsync, rename, fsync of the
//! directory). A file it cannot read as one of these is moved aside to
//! `<name>.corrupt-<unix seconds>` and logged, like the checkpoint. Once the file holds more
//! than twice `bound` lines it is compacted the same way.
//!
//! Ids longer than [`MAX_ID_BYTES`] or holding control characters are not written (they are
//! still deduplicated in memory). These are blocking calls: run them with
//! `tokio::task::spawn_blocking` from async code.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tracing::warn;

use super::checkpoint::sync_dir;

/// The first line of every seen-ids file.
const HEADER: &str = "authwatch-seen v1\n";
/// Longest id written to the file.
pub const MAX_ID_BYTES: usize = 256;
/// The most bytes a line takes: the time, a space, the id, the newline.
const MAX_LINE_BYTES: u64 = 20 + 1 + MAX_ID_BYTES as u64 + 1;

/// A file larger than this is not one of ours: twice the bound of full lines, and some slack
/// (a crash may leave the file past the compaction point by one batch).
fn max_file_bytes(bound: usize) -> u64 {
    (bound.max(1) as u64)
        .saturating_mul(2)
        .saturating_add(100_000)
        .saturating_mul(MAX_LINE_BYTES)
}

/// Why the seen-ids file could not be read or written. Holds paths, never ids.
#[derive(Debug, thiserror::Error)]
pub enum SeenError {
    #[error("cannot create the directory {}: {source}", path.display())]
    CreateDir {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot read the seen-ids file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot write the seen-ids file {}: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot move the corrupt seen-ids file {} aside: {source}", path.display())]
    MoveAside {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// What [`SeenFile::open`] found.
#[derive(Debug, Default)]
pub struct Loaded {
    /// The ids kept, oldest first, with the time they were accepted.
    pub entries: Vec<(String, SystemTime)>,
    /// Whether the last line was torn (and ignored).
    pub torn: bool,
    /// Where a corrupt file was moved, when it was.
    pub moved_aside: Option<PathBuf>,
}

/// One seen-ids file, `<dir>/<name>`, open for appending.
#[derive(Debug)]
pub struct SeenFile {
    dir: PathBuf,
    name: String,
    window: Duration,
    bound: usize,
    file: File,
    lines: usize,
}

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

fn writable(id: &str) -> bool {
    !id.is_empty() && id.len() <= MAX_ID_BYTES && !id.chars().any(char::is_control)
}

impl SeenFile {
    /// Opens (or creates) `<dir>/<name>`, keeping the ids accepted less than `window` before
    /// `now`, at most `bound` of them.
    pub fn open(
        dir: impl Into<PathBuf>,
        name: impl Into<String>,
        window: Duration,
        bound: usize,
        now: SystemTime,
    ) -> Result<(SeenFile, Loaded), SeenError> {
        let dir = dir.into();
        let name = name.into();
        fs::create_dir_all(&dir).map_err(|source| SeenError::CreateDir {
            path: dir.clone(),
            source,
        })?;
        let path = dir.join(&name);
        let mut loaded = Loaded::default();
        let mut kept = Vec::new();
        let max = max_file_bytes(bound);
        if let Some(bytes) = read(&path, max)? {
            match parse(&bytes, max) {
                Some((entries, torn)) => {
                    loaded.torn = torn;
                    kept = keep(entries, window, bound, now);
                }
                None => {
                    let secs = unix_ms(now) / 1000;
                    let aside = dir.join(format!("{name}.corrupt-{secs}"));
                    fs::rename(&path, &aside).map_err(|source| SeenError::MoveAside {
                        path: path.clone(),
                        source,
                    })?;
                    warn!(
                        seen_file = %path.display(),
                        moved_to = %aside.display(),
                        "The seen-ids file is corrupt; moved it aside. Events accepted before the restart may be delivered again."
                    );
                    loaded.moved_aside = Some(aside);
                }
            }
        }
        let file = write_atomic(&dir, &name, &kept)?;
        loaded.entries = kept
            .iter()
            .map(|(id, ms)| (id.clone(), UNIX_EPOCH + Duration::from_millis(*ms)))
            .collect();
        let seen = SeenFile {
            dir,
            name,
            window,
            bound: bound.max(1),
            file,
            lines: kept.len(),
        };
        Ok((seen, loaded))
    }

    /// The file.
    pub fn path(&self) -> PathBuf {
        self.dir.join(&self.name)
    }

    /// Appends `ids`, accepted at `at`, and fsyncs; compacts when the file has grown past
    /// twice the bound.
    pub fn append<'a>(
        &mut self,
        ids: impl IntoIterator<Item = &'a str>,
        at: SystemTime,
    ) -> Result<(), SeenError> {
        let ms = unix_ms(at);
        let mut buf = String::new();
        let mut n = 0;
        for id in ids.into_iter().filter(|id| writable(id)) {
            buf.push_str(&format!("{ms} {id}\n"));
            n += 1;
        }
        if n == 0 {
            return Ok(());
        }
        let path = self.path();
        let werr = |source| SeenError::Write {
            path: path.clone(),
            source,
        };
        self.file.write_all(buf.as_bytes()).map_err(werr)?;
        self.file.sync_data().map_err(werr)?;
        self.lines += n;
        if self.lines > self.bound.saturating_mul(2) {
            self.compact(at)?;
        }
        Ok(())
    }

    /// Rewrites the file with the entries younger than the window, at most `bound`.
    pub fn compact(&mut self, now: SystemTime) -> Result<(), SeenError> {
        let path = self.path();
        let max = max_file_bytes(self.bound);
        let entries = match read(&path, max)?.as_deref().and_then(|b| parse(b, max)) {
            Some((entries, _)) => entries,
            None => Vec::new(),
        };
        let kept = keep(entries, self.window, self.bound, now);
        self.file = write_atomic(&self.dir, &self.name, &kept)?;
        self.lines = kept.len();
        Ok(())
    }

    /// Lines in the file (entries, without the header).
    #[cfg(test)]
    pub fn lines(&self) -> usize {
        self.lines
    }
}

/// The file's bytes, `None` when there is none.
fn read(path: &Path, max: u64) -> Result<Option<Vec<u8>>, SeenError> {
    let rerr = |source| SeenError::Read {
        path: path.to_path_buf(),
        source,
    };
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(rerr(e)),
    };
    let mut bytes = Vec::new();
    file.take(max.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(rerr)?;
    Ok(Some(bytes))
}

/// The entries (id, unix ms) and whether the last line was torn; `None` when the bytes are not
/// a seen-ids file.
fn parse(bytes: &[u8], max: u64) -> Option<(Vec<(String, u64)>, bool)> {
    if bytes.len() as u64 > max {
        return None;
    }
    if bytes.is_empty() {
        return Some((Vec::new(), false));
    }
    let body = bytes.strip_prefix(HEADER.as_bytes())?;
    let (complete, tail) = match body.iter().rposition(|b| *b == b'\n') {
        Some(i) => (&body[..=i], &body[i + 1..]),
        None => (&body[..0], body),
    };
    let text = std::str::from_utf8(complete).ok()?;
    let mut entries = Vec::new();
    for line in text.lines() {
        let (ms, id) = line.split_once(' ')?;
        if ms.is_empty() || !ms.bytes().all(|b| b.is_ascii_digit()) || !writable(id) {
            return None;
        }
        entries.push((id.to_owned(), ms.parse().ok()?));
    }
    Some((entries, !tail.is_empty()))
}

/// The newest `bound` entries accepted less than `window` before `now`.
fn keep(
    entries: Vec<(String, u64)>,
    window: Duration,
    bound: usize,
    now: SystemTime,
) -> Vec<(String, u64)> {
    let now = unix_ms(now);
    let window = u64::try_from(window.as_millis()).unwrap_or(u64::MAX);
    let mut kept: Vec<_> = entries
        .into_iter()
        .filter(|(_, ms)| now.saturating_sub(*ms) < window)
        .collect();
    let drop = kept.len().saturating_sub(bound.max(1));
    kept.drain(..drop);
    kept
}

/// Writes the header and `entries` to `<name>.tmp`, fsyncs, renames it over `<name>`, fsyncs
/// the directory, and returns the file open for appending.
fn write_atomic(dir: &Path, name: &str, entries: &[(String, u64)]) -> Result<File, SeenError> {
    let tmp = dir.join(format!("{name}.tmp"));
    let path = dir.join(name);
    let werr = |p: &Path| {
        let path = p.to_path_buf();
        move |source| SeenError::Write { path, source }
    };
    let mut body = String::from(HEADER);
    for (id, ms) in entries {
        body.push_str(&format!("{ms} {id}\n"));
    }
    {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)
            .map_err(werr(&tmp))?;
        f.write_all(body.as_bytes()).map_err(werr(&tmp))?;
        f.sync_all().map_err(werr(&tmp))?;
    }
    fs::rename(&tmp, &path).map_err(werr(&path))?;
    sync_dir(dir).map_err(werr(dir))?;
    OpenOptions::new()
        .append(true)
        .open(&path)
        .map_err(werr(&path))
}

#[cfg(test)]
#[path = "tests/seen.rs"]
mod tests;
