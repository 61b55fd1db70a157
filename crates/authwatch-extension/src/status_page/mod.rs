//! # `status_page` extension
//!
//! Serves a status page for the people on call: per dependency the current verdict, the error
//! ratio by window with a small chart, the last probe runs with their outcome and phase
//! timings, rate-limit headroom, the provider's own status, firing and recent alerts, and the
//! top error groups. The same data is served as JSON under `/api/v1/status`. The page is one
//! HTML document with inline CSS, JavaScript and SVG (no external assets, works offline) and
//! refreshes itself by fetching the JSON every `refresh_interval`.
//!
//! It reads what the components publish on the status board (`error_rate` and `alerts`
//! connectors, `synthetic` and `statuspage` receivers; see `authwatch_core::board` for each
//! section's shape) and keeps a short history of the error ratios for the charts.
//!
//! ```yaml
//! extensions:
//!   status_page:
//!     endpoint: 127.0.0.1:13134
//! service:
//!   extensions: [status_page]
//! ```
//!
//! ## Options
//!
//! | option | default | meaning |
//! | --- | --- | --- |
//! | `endpoint` | `127.0.0.1:13134` | Where to listen, `host:port`. The Collector's `health_check` port 13133 stays with `health_check`, so the page takes the next one. |
//! | `title` | `authwatch status` | The page's title and heading. |
//! | `banner` | empty | A line shown in a highlighted bar at the top (`authwatch demo` says that it is a demo). |
//! | `refresh_interval` | `5s` | How often the page fetches `/api/v1/status`. |
//! | `sample_interval` | `5s` | How often the error ratios are sampled for the charts. |
//! | `history_size` | `120` | Samples kept per dependency and window (10 minutes at 5 s). |
//! | `recent_alerts` | `10` | Resolved alerts shown. |
//! | `read_header_timeout` | `10s` | time for a request head to arrive, from connecting (first request) or from its first byte (keep-alive); else the connection is closed; `0s`: no limit |
//! | `read_timeout` | `30s` | time for a request body to arrive after its head; else `408`; `0s`: no limit |
//! | `idle_timeout` | `60s` | time a keep-alive connection may wait for its next request; `0s`: no limit |
//! | `max_connections` | `1024` | connections open at once; more wait until one closes |
//! | `tls.cert_file`, `tls.key_file` | (plaintext) | serve HTTPS with this PEM certificate chain and key |
//! | `tls.client_ca_file` | (no client certificates) | require client certificates signed by these CAs (mutual TLS) |
//!
//! ## Endpoints
//!
//! | request | answer |
//! | --- | --- |
//! | `GET /` | The page (`text/html`). |
//! | `GET /api/v1/status` | `application/json`: `{"generated_at", "title", "banner", "dependencies": [...], "probes": [...], "provider_status": [...], "alerts": {"firing", "pending", "resolved"}}` (see [the status page guide](../../status-page.md)). |
//!
//! ## Behaviour
//!
//! - The port is bound when the service builds the extension ("cannot listen on ..." if it is
//!   taken) and claimed, so no other component may use it.
//! - Everything shown comes from telemetry, which may hold attacker-chosen strings (span
//!   attributes, status-page texts). The page never puts data into HTML as markup: the initial
//!   JSON is embedded with `<`, `>`, `&` and line separators escaped, and the script renders
//!   it with `textContent`. Responses carry a restrictive `Content-Security-Policy`.
//! - The server bounds its clients as every authwatch server does (the options above): a
//!   browser tab left open holds a keep-alive connection for at most `idle_timeout`, and a
//!   client that sends its request slowly is cut off.
//! - On shutdown the server stops accepting connections, answers the requests in flight, then
//!   ends; the sampler stops with it.

mod page;
mod view;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use authwatch_core::board::StatusBoard;
use authwatch_core::config::{duration, Positive};
use authwatch_core::{
    BuildError, ComponentConfig, ExtensionConfig, Resource, RunError, Running, Settings, Validator,
};
use authwatch_net::server::{
    validate_http_limits, Limits, DEFAULT_IDLE_TIMEOUT, DEFAULT_MAX_CONNECTIONS,
    DEFAULT_READ_HEADER_TIMEOUT, DEFAULT_READ_TIMEOUT,
};
use authwatch_net::{ListenAddr, TlsServerConfig};
use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde::{Deserialize, Serialize};
use tracing::info;

pub use view::History;

/// The `status_page` extension's configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Where the HTTP server listens.
    pub endpoint: ListenAddr,
    /// The page's title and heading.
    pub title: String,
    /// A highlighted line at the top of the page; none when empty.
    pub banner: String,
    /// How often the page fetches the JSON.
    #[serde(with = "duration")]
    pub refresh_interval: Duration,
    /// How often error ratios are sampled for the charts.
    #[serde(with = "duration")]
    pub sample_interval: Duration,
    /// Samples kept per dependency and window.
    pub history_size: Positive,
    /// Resolved alerts shown.
    pub recent_alerts: Positive,
    /// Time for a request head to arrive (from its first byte, or from connecting); `0s`: no limit.
    #[serde(with = "duration")]
    pub read_header_timeout: Duration,
    /// Time for a request body to arrive after its head (else `408`); `0s`: no limit.
    #[serde(with = "duration")]
    pub read_timeout: Duration,
    /// Time a keep-alive connection may wait for its next request; `0s`: no limit.
    #[serde(with = "duration")]
    pub idle_timeout: Duration,
    /// Most connections open at once; more wait until one closes.
    pub max_connections: Positive,
    /// Serve HTTPS.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsServerConfig>,
}

/// The status page's default port: the one after the Collector's health_check port.
pub const DEFAULT_PORT: u16 = 13134;
/// Where the JSON is served.
pub const API_PATH: &str = "/api/v1/status";

impl Default for Config {
    fn default() -> Self {
        Config {
            endpoint: ListenAddr::localhost(DEFAULT_PORT),
            title: "authwatch status".into(),
            banner: String::new(),
            refresh_interval: Duration::from_secs(5),
            sample_interval: Duration::from_secs(5),
            history_size: Positive(120),
            recent_alerts: Positive(10),
            read_header_timeout: DEFAULT_READ_HEADER_TIMEOUT,
            read_timeout: DEFAULT_READ_TIMEOUT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            max_connections: Positive(DEFAULT_MAX_CONNECTIONS),
            tls: None,
        }
    }
}

// === impl ExtensionConfig ===

impl ComponentConfig for Config {
    const TYPE: &'static str = "status_page";

    fn validate(&self, v: &mut Validator) {
        if self.refresh_interval < Duration::from_millis(500) {
            v.error("refresh_interval", "must be at least `500ms`, e.g. `5s`");
        }
        if self.sample_interval < Duration::from_millis(100) {
            v.error("sample_interval", "must be at least `100ms`, e.g. `5s`");
        }
        if self.title.trim().is_empty() {
            v.error("title", "must not be empty");
        }
        if let Some(tls) = &self.tls {
            tls.validate(v, "tls");
        }
        validate_http_limits(
            v,
            "",
            self.read_header_timeout,
            self.read_timeout,
            self.idle_timeout,
        );
    }

    fn resources(&self) -> Vec<Resource> {
        vec![Resource::Listen(self.endpoint.addr())]
    }
}

impl ExtensionConfig for Config {
    async fn build(&self, settings: Settings) -> Result<Running, BuildError> {
        let (_, running) = self.bind(settings).await?;
        Ok(running)
    }
}

impl Config {
    /// Binds the endpoint and returns the address actually bound (for port 0) and the task.
    pub async fn bind(&self, settings: Settings) -> Result<(SocketAddr, Running), BuildError> {
        let tls = match &self.tls {
            Some(t) => Some(t.load(&[b"h2", b"http/1.1"])?),
            None => None,
        };
        let addr = self.endpoint.addr();
        let listener = authwatch_net::server::bind(addr).await?;
        let local = listener
            .local_addr()
            .map_err(|source| BuildError::Bind { addr, source })?;
        let limits = Limits::new(
            self.read_header_timeout,
            self.read_timeout,
            self.idle_timeout,
            self.max_connections.get(),
        );
        let shared = Arc::new(Shared {
            board: settings.board.clone(),
            history: Mutex::new(History::new(self.history_size.get())),
            config: self.clone(),
        });
        let app = router(shared.clone());
        let shutdown = settings.shutdown.clone();
        let interval = self.sample_interval;
        info!(endpoint = %local, tls = tls.is_some(), "Status page listening.");
        let running = async move {
            let sampler = {
                let shared = shared.clone();
                let shutdown = shutdown.clone();
                async move {
                    let mut tick = tokio::time::interval(interval);
                    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                    loop {
                        tokio::select! {
                            biased;
                            () = shutdown.cancelled() => break,
                            _ = tick.tick() => shared.sample(),
                        }
                    }
                }
            };
            let server = authwatch_net::serve_http(listener, tls, app, limits, shutdown);
            tokio::join!(server, sampler);
            info!(endpoint = %local, "Status page stopped.");
            Ok::<(), RunError>(())
        };
        Ok((local, Box::pin(running)))
    }
}

// === impl Shared ===

/// What the handlers and the sampler share.
pub(crate) struct Shared {
    board: StatusBoard,
    history: Mutex<History>,
    config: Config,
}

impl Shared {
    fn sample(&self) {
        let deps = self.board.section(view::DEPENDENCIES);
        let mut h = self.history.lock().unwrap_or_else(|e| e.into_inner());
        h.sample(&deps, std::time::SystemTime::now());
    }

    fn status(&self) -> serde_json::Value {
        let h = self.history.lock().unwrap_or_else(|e| e.into_inner());
        view::status(&self.board, &h, &self.config, std::time::SystemTime::now())
    }
}

// === impl router ===

/// The routes: the page at `/`, the JSON at [`API_PATH`].
pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/", get(html))
        .route(API_PATH, get(json))
        .with_state(shared)
}

/// Content-Security-Policy: nothing from elsewhere; inline style and script only; fetches to self.
const CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

fn respond(content_type: &'static str, body: String) -> Response {
    let mut r = (StatusCode::OK, body).into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    r
}

async fn html(State(shared): State<Arc<Shared>>) -> Response {
    let status = shared.status();
    respond(
        "text/html; charset=utf-8",
        page::render(&shared.config, &status),
    )
}

async fn json(State(shared): State<Arc<Shared>>) -> Response {
    let status = shared.status();
    respond(
        "application/json",
        serde_json::to_string(&status).unwrap_or_else(|_| "{}".into()),
    )
}

#[cfg(test)]
mod tests;
