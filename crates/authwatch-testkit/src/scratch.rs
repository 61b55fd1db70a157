//! Scratch directories for tests: a fresh path under the system temp dir, unique per process and
//! per call, removed with everything in it when dropped.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// A scratch directory, removed on drop. [`Scratch::new`] creates it empty;
/// [`Scratch::reserve`] only picks the path, for tests of code that creates it.
pub struct Scratch(pub PathBuf);

impl Scratch {
    /// A fresh, empty directory named after `name` (`authwatch-{name}-{pid}-{n}`).
    pub fn new(name: &str) -> Self {
        let s = Scratch::reserve(name);
        std::fs::create_dir_all(&s.0)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", s.0.display()));
        s
    }

    /// A fresh path that does not exist yet; whatever is made there is removed on drop.
    pub fn reserve(name: &str) -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "authwatch-{name}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        let _ = std::fs::remove_file(&dir);
        Scratch(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    /// A path inside the directory.
    pub fn join(&self, file: impl AsRef<Path>) -> PathBuf {
        self.0.join(file)
    }

    /// Writes `text` to `file` inside the directory and returns its path.
    pub fn write(&self, file: &str, text: impl AsRef<[u8]>) -> PathBuf {
        let p = self.0.join(file);
        std::fs::write(&p, text).unwrap_or_else(|e| panic!("cannot write {}: {e}", p.display()));
        p
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        // A test may have left a file where the directory was.
        if std::fs::remove_dir_all(&self.0).is_err() {
            let _ = std::fs::remove_file(&self.0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_unique_and_removed_on_drop() {
        let a = Scratch::new("scratch-test");
        let b = Scratch::new("scratch-test");
        assert_ne!(a.path(), b.path());
        assert!(a.path().is_dir());
        let file = a.write("f.txt", "x");
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "x");
        let kept = a.path().to_path_buf();
        drop(a);
        assert!(!kept.exists());

        let r = Scratch::reserve("scratch-test");
        assert!(!r.path().exists());
        std::fs::write(r.path(), "a file where the directory would be").unwrap();
        let kept = r.path().to_path_buf();
        drop(r);
        assert!(!kept.exists());
    }
}
