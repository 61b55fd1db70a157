//! Starting a real peer (a Python or Node.js server of the test suite) that binds port 0 and
//! prints one JSON line (`{"port": N, ...}`) on stdout once it listens.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::{Child, Command};

/// How long a peer may take to print its first line: a loaded 2-core CI machine starts Node
/// and Python slowly.
pub const START_TIMEOUT: Duration = Duration::from_secs(120);

/// Spawns `cmd` (killed when the returned child is dropped), waits at most [`START_TIMEOUT`]
/// for its first stdout line and returns it as JSON; stdout and stderr are drained from then
/// on, so the peer never blocks on a full pipe.
///
/// # Panics
/// When it cannot be spawned, prints nothing in time, or its first line is not JSON: the
/// message names `what`, shows its stderr and ends with `hint` (what to install).
pub async fn start(mut cmd: Command, what: &str, hint: &str) -> (Child, serde_json::Value) {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {what}: {e}\n{hint}"));
    let stdout = child.stdout.take().expect("piped stdout");
    let mut lines = BufReader::new(stdout).lines();
    let first = tokio::time::timeout(START_TIMEOUT, lines.next_line()).await;
    let Ok(Ok(Some(line))) = first else {
        let _ = child.start_kill();
        let mut err = String::new();
        if let Some(mut stderr) = child.stderr.take() {
            let _ =
                tokio::time::timeout(Duration::from_secs(5), stderr.read_to_string(&mut err)).await;
        }
        panic!("{what} did not start ({first:?}). Its stderr:\n{err}\n{hint}");
    };
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    if let Some(stderr) = child.stderr.take() {
        tokio::spawn(async move {
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(_)) = lines.next_line().await {}
        });
    }
    let v = serde_json::from_str(&line)
        .unwrap_or_else(|e| panic!("unexpected first line from {what}: {line}: {e}"));
    (child, v)
}
