//! A stand-in for an Auth0 tenant's Management API on loopback (`auth0/mgmt_server.py`, Flask):
//! client-credentials tokens for `https://{domain}/api/v2/`, `GET /api/v2/logs` by checkpoint
//! (`from`/`take`, `Link: rel="next"`) and by criteria, retention, `x-ratelimit-*` and `429`,
//! expired tokens, and the log-stream resource. The module doc of the script cites the Auth0
//! documentation each behaviour follows.
//!
//! The Python interpreter is found as for [`crate::oauth_server`] (`AUTHWATCH_TEST_PYTHON`, else
//! the workspace's `.venv`); without it the tests fail with what to install.

use std::path::Path;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, Command};

/// The M2M application's credentials the stand-in accepts.
pub const CLIENT_ID: &str = "mgmt-logs-reader";
pub const CLIENT_SECRET: &str = "m2m-s3cret-Lq9x7";
/// The tenant domain (the token's audience is `https://{DOMAIN}/api/v2/`).
pub const DOMAIN: &str = "tenant.example.test";
/// The one log stream's id and its (secret) `httpAuthorization`.
pub const STREAM_ID: &str = "lst_0000000000012345";
pub const STREAM_AUTHORIZATION: &str = "stream-auth-Zr4k-never-log";

/// The running stand-in; dropping it kills the process.
pub struct Auth0Server {
    child: Child,
    port: u16,
}

impl Auth0Server {
    /// Starts the stand-in on a free `127.0.0.1` port and waits until it listens.
    ///
    /// # Panics
    /// When Python or Flask is missing, or it does not come up within 120 s.
    pub async fn start() -> Auth0Server {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("auth0/mgmt_server.py");
        let mut cmd = Command::new(crate::oauth_server::python());
        cmd.arg(&script).arg("--domain").arg(DOMAIN);
        let (child, v) = crate::peer::start(
            cmd,
            "the Auth0 stand-in",
            "Install tests/requirements.txt (Flask) into the Python at AUTHWATCH_TEST_PYTHON (scripts/test.sh does this).",
        )
        .await;
        let port = v["port"].as_u64().expect("port") as u16;
        Auth0Server { child, port }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:<port>`: the Management API's origin (the receiver's `pull.endpoint`).
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    async fn call(&self, method: &str, path: &str, body: Option<serde_json::Value>) -> String {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", self.port))
            .await
            .expect("connect to the Auth0 stand-in");
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let req = format!(
            "{method} {path} HTTP/1.0\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        s.write_all(req.as_bytes()).await.expect("write");
        let mut buf = String::new();
        s.read_to_string(&mut buf).await.expect("read");
        let (head, body) = buf.split_once("\r\n\r\n").unwrap_or((&buf, ""));
        assert!(
            head.starts_with("HTTP/1.0 200") || head.starts_with("HTTP/1.1 200"),
            "the Auth0 stand-in refused {method} {path}: {buf}"
        );
        body.to_owned()
    }

    /// Sets knobs (`POST /_control`; see `KNOBS` in the script): `token_down`, `token_ttl`,
    /// `scope`, `bucket`, `refill`, `throttle_until`, `retry_after`, `fail_500`, `malformed`,
    /// `foreign_link`, `retention`, `stream_status`.
    pub async fn control(&self, knobs: serde_json::Value) {
        self.call("POST", "/_control", Some(knobs)).await;
    }

    /// Adds `n` login events (`s`, `fp`, `fu`, `s`, `f`, ...), spread over the last
    /// `age` (all now when zero).
    pub async fn generate(&self, n: usize, age: Duration) {
        self.call(
            "POST",
            "/_generate",
            Some(serde_json::json!({"n": n, "age_seconds": age.as_secs_f64()})),
        )
        .await;
    }

    /// Every event's `log_id`, in order.
    pub async fn log_ids(&self) -> Vec<String> {
        serde_json::from_str(&self.call("GET", "/_events", None).await).expect("JSON")
    }

    /// What the Management API received: `path`, `query`, `authorization` (a token came),
    /// `token_ok`, `user_agent`.
    pub async fn requests(&self) -> Vec<serde_json::Value> {
        serde_json::from_str(&self.call("GET", "/_requests", None).await).expect("JSON")
    }

    /// Makes every token issued so far expired.
    pub async fn expire_tokens(&self) {
        self.call("POST", "/_expire_tokens", None).await;
    }

    /// Starts a Custom Webhook log stream to `url` with `authorization`; with `backlog` it
    /// first pushes every event already there.
    pub async fn push_to(&self, url: &str, authorization: &str, backlog: bool) {
        self.call(
            "POST",
            "/_push",
            Some(
                serde_json::json!({"url": url, "authorization": authorization, "backlog": backlog}),
            ),
        )
        .await;
    }

    /// The push stream's state: `queued`, `delivered`, `failed`.
    pub async fn push_state(&self) -> serde_json::Value {
        serde_json::from_str(&self.call("GET", "/_push", None).await).expect("JSON")
    }

    /// Kills the stand-in now.
    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

impl Auth0Server {
    /// Whether the request chosen by the knob `hold_at` has arrived and is being held.
    pub async fn held(&self) -> bool {
        self.call("GET", "/_held", None).await.trim() == "true"
    }

    /// Lets a held request go on.
    pub async fn release(&self) {
        self.call("POST", "/_release", None).await;
    }
}
