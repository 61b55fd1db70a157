//! A real Prometheus Alertmanager on loopback, for the `alertmanager` exporter's tests and the
//! end-to-end alerting test.
//!
//! [`Alertmanager::start`] runs the `prometheus-alertmanager` binary (Debian package
//! `prometheus-alertmanager`, installed by `scripts/test.sh`; upstream builds call it
//! `alertmanager`; `AUTHWATCH_TEST_ALERTMANAGER` overrides the path) on a free `127.0.0.1` port,
//! with clustering off, a minimal config (one receiver that notifies nobody) and a scratch
//! storage directory, and waits until `/-/ready` answers. The process is killed and the
//! directory removed on drop. Without the binary it panics with what to do: tests fail, they
//! never skip.
//!
//! The HTTP client is a plain HTTP/1.0 exchange over a `TcpStream` (the testkit has no HTTP
//! client dependency); Alertmanager answers HTTP/1.0 requests without chunking.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

/// The names the binary goes by, tried in order on `PATH` and in `/usr/bin`.
const BINARIES: [&str; 2] = ["prometheus-alertmanager", "alertmanager"];

/// The Alertmanager config: every alert goes to a receiver without integrations.
const CONFIG: &str = "\
route:
  receiver: blackhole
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: blackhole
";

/// How long [`Alertmanager::start`] waits for readiness.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// A running Alertmanager; killed on drop.
pub struct Alertmanager {
    child: Child,
    port: u16,
    dir: PathBuf,
}

/// Finds the Alertmanager binary, or says how to install it.
pub fn binary() -> PathBuf {
    if let Ok(p) = std::env::var("AUTHWATCH_TEST_ALERTMANAGER") {
        if !p.is_empty() {
            return PathBuf::from(p);
        }
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    let dirs: Vec<PathBuf> = std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/bin"), PathBuf::from("/usr/local/bin")])
        .collect();
    for name in BINARIES {
        for d in &dirs {
            let p = d.join(name);
            if is_executable(&p) {
                return p;
            }
        }
    }
    panic!(
        "the Prometheus Alertmanager binary was not found (looked for {BINARIES:?} on PATH and in \
         /usr/bin): install it with `apt-get install prometheus-alertmanager` (scripts/test.sh \
         does), or point AUTHWATCH_TEST_ALERTMANAGER at the binary"
    );
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind a free loopback port")
}

impl Alertmanager {
    /// Starts Alertmanager and waits until it is ready. Panics (with its output) if it does
    /// not become ready in 30 s.
    pub async fn start() -> Self {
        let bin = binary();
        let mut dir = std::env::temp_dir().join(format!(
            "authwatch-alertmanager-{}-{}",
            std::process::id(),
            free_port()
        ));
        std::fs::create_dir_all(dir.join("data")).expect("create the Alertmanager scratch dir");
        let config = dir.join("alertmanager.yml");
        std::fs::write(&config, CONFIG).expect("write the Alertmanager config");
        let log = dir.join("alertmanager.log");
        // A few attempts: a free port can be taken by someone else before Alertmanager binds.
        for _ in 0..3 {
            let port = free_port();
            let out = std::fs::File::create(&log).expect("create the Alertmanager log");
            let err = out.try_clone().expect("clone the log handle");
            let child = Command::new(&bin)
                .arg(format!("--config.file={}", config.display()))
                .arg(format!("--storage.path={}", dir.join("data").display()))
                .arg(format!("--web.listen-address=127.0.0.1:{port}"))
                .arg("--cluster.listen-address=")
                .arg("--log.level=info")
                .stdin(Stdio::null())
                .stdout(out)
                .stderr(err)
                .kill_on_drop(true)
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
            let mut am = Alertmanager { child, port, dir };
            match am.wait_ready().await {
                Ok(()) => return am,
                Err(exited) if exited => {
                    let text = std::fs::read_to_string(&log).unwrap_or_default();
                    if text.contains("address already in use") {
                        let _ = am.child.start_kill();
                        let _ = am.child.wait().await;
                        // Keep the directory for the next attempt.
                        dir = std::mem::take(&mut am.dir);
                        drop(am);
                        continue;
                    }
                    panic!("Alertmanager exited before it was ready:\n{text}");
                }
                Err(_) => {
                    let text = std::fs::read_to_string(&log).unwrap_or_default();
                    panic!("Alertmanager was not ready within {READY_TIMEOUT:?}:\n{text}");
                }
            }
        }
        panic!("Alertmanager could not bind a free loopback port in 3 attempts");
    }

    /// `Err(true)`: the process exited; `Err(false)`: timeout.
    async fn wait_ready(&mut self) -> Result<(), bool> {
        let deadline = Instant::now() + READY_TIMEOUT;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return Err(true);
            }
            if let Ok((200, _)) = self.request("GET", "/-/ready", None).await {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(false)
    }

    /// `http://127.0.0.1:<port>`: what the `alertmanager` exporter's `endpoint` is set to.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// One HTTP/1.0 request: (status, body).
    pub async fn request(
        &self,
        method: &str,
        path: &str,
        json: Option<&Value>,
    ) -> std::io::Result<(u16, String)> {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).await?;
        let body = json.map(|v| v.to_string()).unwrap_or_default();
        let head = format!(
            "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1:{}\r\nAccept: application/json\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            self.port,
            body.len()
        );
        s.write_all(head.as_bytes()).await?;
        s.write_all(body.as_bytes()).await?;
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).await?;
        let text = String::from_utf8_lossy(&raw);
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        Ok((status, body.to_owned()))
    }

    /// `GET /api/v2/alerts`: the alerts Alertmanager holds that have not ended (resolved alerts
    /// are left out by Alertmanager itself).
    pub async fn alerts(&self) -> Vec<Value> {
        let (status, body) = self
            .request("GET", "/api/v2/alerts", None)
            .await
            .expect("GET /api/v2/alerts");
        assert_eq!(status, 200, "GET /api/v2/alerts answered {status}: {body}");
        match serde_json::from_str(&body) {
            Ok(Value::Array(v)) => v,
            other => panic!("GET /api/v2/alerts: not a JSON list: {other:?}: {body}"),
        }
    }

    /// The alerts whose label `alertname` is `name`.
    pub async fn alerts_named(&self, name: &str) -> Vec<Value> {
        self.alerts()
            .await
            .into_iter()
            .filter(|a| a["labels"]["alertname"] == name)
            .collect()
    }

    /// Polls [`alerts`](Self::alerts) until `pred` holds, returning the last list; panics
    /// after `timeout` with what was there.
    pub async fn wait_for(
        &self,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&[Value]) -> bool,
    ) -> Vec<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let alerts = self.alerts().await;
            if pred(&alerts) {
                return alerts;
            }
            if Instant::now() > deadline {
                panic!(
                    "Alertmanager: {what}: not so after {timeout:?}; GET /api/v2/alerts = {}",
                    serde_json::to_string_pretty(&alerts).unwrap_or_default()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        if !self.dir.as_os_str().is_empty() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn takes_an_alert_and_lists_it() {
        let am = Alertmanager::start().await;
        let alert = serde_json::json!([{
            "labels": {"alertname": "testkit_probe", "severity": "page"},
            "annotations": {"summary": "hello"},
        }]);
        let (status, body) = am
            .request("POST", "/api/v2/alerts", Some(&alert))
            .await
            .unwrap();
        assert_eq!(status, 200, "{body}");
        let got = am
            .wait_for("alert listed", Duration::from_secs(10), |a| {
                a.iter()
                    .any(|x| x["labels"]["alertname"] == "testkit_probe")
            })
            .await;
        assert_eq!(got[0]["annotations"]["summary"], "hello");
    }
}
