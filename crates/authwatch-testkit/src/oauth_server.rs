//! A real OAuth2/OIDC authorization server on loopback for the `synthetic` receiver's tests:
//! `oauth/server.py`, built on Authlib (its `AuthorizationServer` handles the password,
//! password-realm and client-credentials grants) with JWTs signed by joserfc.
//!
//! The Python interpreter comes from `AUTHWATCH_TEST_PYTHON` (set by `scripts/test.sh`, which
//! installs `tests/requirements.txt` into `.venv`), else the workspace's `.venv/bin/python`.
//! Without either, or without the packages, [`OAuthServer::start`] panics with what to do: the
//! tests fail, they never skip.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::process::{Child, Command};

/// A confidential client (client_secret_post or client_secret_basic).
pub const CLIENT_ID: &str = "probe-client";
pub const CLIENT_SECRET: &str = "s3cr3t-client-Zq8w";
/// A public client (no secret), allowed the password grants only.
pub const PUBLIC_CLIENT_ID: &str = "probe-public";
/// The probe user.
pub const USERNAME: &str = "probe@example.test";
pub const PASSWORD: &str = "p4ss-W0rd-Xy7";
/// A second user: real traffic's logins (the knob `locked` can lock either).
pub const APP_USERNAME: &str = "app-user@example.test";
pub const APP_PASSWORD: &str = "app-P4ss-w0rd-Qv3";
/// The connection name of the password-realm grant.
pub const REALM: &str = "Username-Password-Authentication";
/// The API identifier to ask tokens for (`audience`).
pub const AUDIENCE: &str = "https://api.example.test";
/// The public client of the `authorization_code` walks (the confidential [`CLIENT_ID`] may
/// use it too), and the redirect URI both are registered with.
pub const REDIRECT_URI: &str = "https://authwatch.invalid/callback";
/// The probe user's TOTP secret (base32), for the MFA page (knob `mfa`).
pub const TOTP_SECRET: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";
/// The namespaced custom claim the server adds (value `true`) unless in `NoClaim` mode.
pub const CLAIM: &str = "https://probe.example.test/actions_ran";

/// How the server behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// Healthy: wrong passwords get 403 `invalid_grant`, bad clients 401 `invalid_client`.
    #[default]
    Ok,
    /// The token endpoint answers 500 `server_error`.
    Error500,
    /// The token endpoint answers 429 `too_many_requests` with `Retry-After: 7`.
    RateLimited,
    /// The token endpoint answers 429 `too_many_attempts` (brute-force protection).
    Blocked,
    /// The token endpoint waits `delay` before answering.
    Slow,
    /// Tokens lack the custom claim.
    NoClaim,
    /// Tokens expired an hour ago.
    Expired,
    /// Tokens are signed by a key that is not in the JWKS (same `kid`).
    BadSignature,
    /// Tokens are signed with ES256 (P-256).
    Es256,
}

impl Mode {
    fn arg(self) -> &'static str {
        match self {
            Mode::Ok => "ok",
            Mode::Error500 => "error500",
            Mode::RateLimited => "rate_limited",
            Mode::Blocked => "blocked",
            Mode::Slow => "slow",
            Mode::NoClaim => "no_claim",
            Mode::Expired => "expired",
            Mode::BadSignature => "bad_signature",
            Mode::Es256 => "es256",
        }
    }
}

/// Options for [`OAuthServer::start`].
#[derive(Debug, Clone, Default)]
pub struct OAuthOptions {
    pub mode: Mode,
    /// How long `Mode::Slow` waits (default 5 s).
    pub delay: Option<Duration>,
    /// Serve HTTPS with this PEM certificate chain and key (the issuer is then
    /// `https://localhost:<port>/`).
    pub tls: Option<(PathBuf, PathBuf)>,
}

/// The running server; dropping it kills the process.
pub struct OAuthServer {
    child: Child,
    port: u16,
    issuer: String,
}

pub(crate) fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("AUTHWATCH_TEST_PYTHON") {
        let p = PathBuf::from(p);
        assert!(
            p.exists(),
            "AUTHWATCH_TEST_PYTHON={} does not exist; run scripts/test.sh, or `python3 -m venv .venv && .venv/bin/pip install -r tests/requirements.txt`",
            p.display()
        );
        return p;
    }
    let venv = workspace_root().join(".venv/bin/python");
    assert!(
        venv.exists(),
        "no Python for the OAuth2 test server: set AUTHWATCH_TEST_PYTHON, or run scripts/test.sh (it creates .venv and installs tests/requirements.txt), or `python3 -m venv .venv && .venv/bin/pip install -r tests/requirements.txt`"
    );
    venv
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

impl OAuthServer {
    /// Starts the server on a free `127.0.0.1` port (the server binds port 0 and reports it)
    /// and waits until it listens.
    ///
    /// # Panics
    /// When Python, Authlib, Flask or joserfc is missing, or the server does not come up
    /// within 120 s; the message says what to install.
    pub async fn start(options: OAuthOptions) -> OAuthServer {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("oauth/server.py");
        let mut cmd = Command::new(python());
        cmd.arg(&script).arg("--mode").arg(options.mode.arg());
        if let Some(d) = options.delay {
            cmd.arg("--delay").arg(d.as_secs_f64().to_string());
        }
        if let Some((cert, key)) = &options.tls {
            cmd.arg("--cert").arg(cert).arg("--key").arg(key);
        }
        let (child, v) = crate::peer::start(
            cmd,
            "the OAuth2 test server",
            "If a module is missing, install tests/requirements.txt into the Python at AUTHWATCH_TEST_PYTHON (scripts/test.sh does this).",
        )
        .await;
        let port = v["port"].as_u64().expect("port") as u16;
        let issuer = v["issuer"].as_str().expect("issuer").to_owned();
        OAuthServer {
            child,
            port,
            issuer,
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http(s)://host:port/` with Auth0's trailing slash: the tokens' `iss`.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The token endpoint.
    pub fn token_url(&self) -> String {
        format!("{}oauth/token", self.issuer)
    }

    pub fn jwks_url(&self) -> String {
        format!("{}.well-known/jwks.json", self.issuer)
    }

    /// What the token endpoint received so far (plain HTTP servers only): per request,
    /// `content_type` (`form`/`json`), `grant_type`, `client_auth` (`post`/`basic`), `realm`,
    /// `user_agent`.
    pub async fn token_requests(&self) -> Vec<serde_json::Value> {
        use tokio::io::AsyncWriteExt;
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", self.port))
            .await
            .expect("connect to the OAuth2 test server");
        s.write_all(b"GET /_requests HTTP/1.0\r\nHost: localhost\r\n\r\n")
            .await
            .expect("write");
        let mut buf = String::new();
        s.read_to_string(&mut buf).await.expect("read");
        let body = buf.split("\r\n\r\n").nth(1).unwrap_or("[]");
        serde_json::from_str(body).unwrap_or_default()
    }

    /// Makes the token endpoint answer every later request correctly but `delay` late
    /// (`Duration::ZERO`: the start mode again): the knobs `{"mode": "slow", "delay": S}`.
    /// Plain HTTP servers only.
    pub async fn set_delay(&self, delay: std::time::Duration) {
        let knobs = if delay.is_zero() {
            serde_json::json!({"mode": null, "delay": null})
        } else {
            serde_json::json!({"mode": "slow", "delay": delay.as_secs_f64()})
        };
        self.control(knobs).await;
    }

    /// Changes how the server behaves while it runs (`POST /_control`); returns the knobs now in
    /// force. Keys (each optional): `mode` (a [`Mode`] name, or `wrong_issuer`,
    /// `wrong_audience`, `invalid_client`, `unauthorized_client`, `action_error`; `null` for the
    /// start mode), `delay` (seconds, for `slow`), `locked` (user names answered 429
    /// `too_many_attempts`), `rate_limit` (token requests per second for the whole tenant, more
    /// get 429 `too_many_requests` with `Retry-After: 1`; 0 = none), `api_status` (what
    /// `GET /api/v2/users/<id>` answers), and the hosted login pages' knobs (`login`:
    /// `identifier_first` or `one_page`; `mfa`, `consent`: bool; `page`: `captcha`, `changed`,
    /// `huge`, `loop`, `garbage`, `offsite` or null; `offsite_action`), described in
    /// `oauth/login_pages.py`. Plain HTTP servers only.
    pub async fn control(&self, knobs: serde_json::Value) -> serde_json::Value {
        use tokio::io::AsyncWriteExt;
        let body = knobs.to_string();
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", self.port))
            .await
            .expect("connect to the OAuth2 test server");
        let req = format!(
            "POST /_control HTTP/1.0\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        s.write_all(req.as_bytes()).await.expect("write");
        let mut buf = String::new();
        s.read_to_string(&mut buf).await.expect("read");
        let answer = buf.split("\r\n\r\n").nth(1).unwrap_or("null");
        serde_json::from_str(answer).unwrap_or_else(|e| {
            panic!("the OAuth2 test server refused the knobs {knobs}: {buf}: {e}")
        })
    }

    /// What the hosted login forms received so far: per submit, the field names and whether
    /// the password was right (never the values). Plain HTTP servers only.
    pub async fn logins(&self) -> Vec<serde_json::Value> {
        use tokio::io::AsyncWriteExt;
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", self.port))
            .await
            .expect("connect to the OAuth2 test server");
        s.write_all(b"GET /_logins HTTP/1.0\r\nHost: localhost\r\n\r\n")
            .await
            .expect("write");
        let mut buf = String::new();
        s.read_to_string(&mut buf).await.expect("read");
        let body = buf.split("\r\n\r\n").nth(1).unwrap_or("[]");
        serde_json::from_str(body).unwrap_or_default()
    }

    /// Kills the server now.
    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}
