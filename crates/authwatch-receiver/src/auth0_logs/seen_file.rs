//! Loading the file of accepted `log_id`s at start (the durable dedupe shared by push and pull).

use std::path::PathBuf;
use std::time::SystemTime;

use tracing::{info, warn};

use super::Config;
use authwatch_tenant_logs::seen::{self, SeenFile};

impl Config {
    /// Opens the file of accepted `log_id`s (see [`seen_path`](Config::seen_path)); a failure
    /// is logged and the dedupe stays in memory only.
    pub(super) async fn load_seen(&self) -> Option<(SeenFile, seen::Loaded)> {
        let path = self.seen_path()?;
        let dir = path.parent().map(PathBuf::from).unwrap_or_default();
        let name = path.file_name()?.to_string_lossy().into_owned();
        let (window, bound) = (self.dedupe_window, self.dedupe_max_entries.get());
        let opened = tokio::task::spawn_blocking(move || {
            SeenFile::open(dir, name, window, bound, SystemTime::now())
        })
        .await;
        match opened {
            Ok(Ok((file, loaded))) => {
                if loaded.torn {
                    info!("Auth0 logs: the last line of the seen-ids file was torn by a crash; ignored it.");
                }
                if !loaded.entries.is_empty() {
                    info!(
                        ids = loaded.entries.len(),
                        "Auth0 logs: loaded the log_ids accepted before the restart into the dedupe."
                    );
                }
                Some((file, loaded))
            }
            Ok(Err(e)) => {
                warn!(error = %e, "Cannot open the seen-ids file; the dedupe is in memory only.");
                None
            }
            Err(_) => None,
        }
    }
}
