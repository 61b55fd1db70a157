//! # `health_check` extension
//!
//! Serves the process's health over HTTP for load balancers and orchestrators (Kubernetes
//! liveness and readiness probes), like the OpenTelemetry Collector's `health_check` extension.
//!
//! ```yaml
//! extensions:
//!   health_check:
//!     endpoint: 127.0.0.1:13133
//!     path: /
//! service:
//!   extensions: [health_check]
//! ```
//!
//! ## Options
//!
//! | option | default | meaning |
//! | --- | --- | --- |
//! | `endpoint` | `127.0.0.1:13133` | Where to listen, `host:port`; the host is an IP address or `localhost`. Use `0.0.0.0:13133` to be reachable from other hosts (e.g. a kubelet). |
//! | `path` | `/` | The readiness path (a missing leading `/` is added); no spaces, `?`, `#`, `{`, `}` or `*`, and not `/livez`. |
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
//! | `GET <path>` and `GET /readyz` | `200` with `{"status":"Server available","phase":"ready","components":{...}}` once every pipeline has started; `503` with `"status":"Server not available"` while starting (`"phase":"starting"`) and stopping (`"phase":"stopping"`). |
//! | `GET /livez` | `200` with `{"status":"Server alive"}` for as long as the server runs. |
//!
//! `components` maps each component that reported a status to `{"status":"ok"}` or
//! `{"status":"recoverable_error","error":"..."}` (for example an exporter whose destination is
//! down). Such errors are shown but do not make the process unready: restarting it would not
//! help. `HEAD` works wherever `GET` does; every body is JSON.
//!
//! ## Behaviour
//!
//! - The port is bound when the service builds the extension, so a port in use stops startup
//!   with "cannot listen on ...". The endpoint is claimed: no other component may use it.
//! - The server bounds its clients as every authwatch server does (the options above): a probe
//!   that connects and says nothing, or keeps an idle connection, cannot hold it.
//! - On shutdown the server stops accepting connections, answers the requests in flight, then
//!   ends.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use authwatch_core::config::{duration, Positive};
use authwatch_core::health::{ComponentStatus, Health, Phase};
use authwatch_core::{
    BuildError, ComponentConfig, ExtensionConfig, Resource, RunError, Running, Settings, Validator,
};
use authwatch_net::server::{
    validate_http_limits, Limits, DEFAULT_IDLE_TIMEOUT, DEFAULT_MAX_CONNECTIONS,
    DEFAULT_READ_HEADER_TIMEOUT, DEFAULT_READ_TIMEOUT,
};
use authwatch_net::{ListenAddr, TlsServerConfig, UrlPath};
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde::{Deserialize, Serialize};
use tracing::info;

/// The `health_check` extension's configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Where the HTTP server listens.
    pub endpoint: ListenAddr,
    /// The readiness path (also served at `/readyz`).
    pub path: UrlPath,
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

/// The Collector's health_check port.
pub const DEFAULT_PORT: u16 = 13133;
/// The liveness path, always served.
pub const LIVENESS_PATH: &str = "/livez";
/// The readiness path, always served besides `path`.
pub const READINESS_PATH: &str = "/readyz";

impl Default for Config {
    fn default() -> Self {
        Config {
            endpoint: ListenAddr::localhost(DEFAULT_PORT),
            path: UrlPath::from_static("/"),
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
    const TYPE: &'static str = "health_check";

    fn validate(&self, v: &mut Validator) {
        if self.path.as_str() == LIVENESS_PATH {
            v.error(
                "path",
                format!(
                    "`{LIVENESS_PATH}` is the liveness endpoint; choose another readiness path"
                ),
            );
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
    /// Binds the endpoint and returns the address actually bound (for port 0) and the server.
    pub(crate) async fn bind(
        &self,
        settings: Settings,
    ) -> Result<(SocketAddr, Running), BuildError> {
        let tls = match &self.tls {
            Some(t) => Some(t.load(&[b"h2", b"http/1.1"])?),
            None => None,
        };
        let addr = self.endpoint.addr();
        let listener = authwatch_net::server::bind(addr).await?;
        let local = listener
            .local_addr()
            .map_err(|source| BuildError::Bind { addr, source })?;
        let app = router(&self.path, settings.health.clone());
        let shutdown = settings.shutdown.clone();
        let limits = Limits::new(
            self.read_header_timeout,
            self.read_timeout,
            self.idle_timeout,
            self.max_connections.get(),
        );
        info!(endpoint = %local, path = %self.path, tls = tls.is_some(), "Health check extension listening.");
        let running = async move {
            authwatch_net::serve_http(listener, tls, app, limits, shutdown).await;
            info!(endpoint = %local, "Health check extension stopped.");
            Ok::<(), RunError>(())
        };
        Ok((local, Box::pin(running)))
    }
}

// === impl router ===

/// The routes: readiness at `path` and `/readyz`, liveness at `/livez`.
pub(crate) fn router(path: &UrlPath, health: Health) -> Router {
    // A `UrlPath` holds no route syntax (`{`, `}`, `*`); a segment starting with `:` is a plain
    // segment too (axum 0.7's capture syntax, which axum 0.8 would refuse with a panic).
    let mut app = Router::new()
        .without_v07_checks()
        .route(LIVENESS_PATH, get(live))
        .route(READINESS_PATH, get(ready));
    // `/readyz` is already routed to the same handler; `validate` refuses `/livez`.
    if path.as_str() != READINESS_PATH && path.as_str() != LIVENESS_PATH {
        app = app.route(path.as_str(), get(ready));
    }
    app.with_state(Arc::new(health))
}

#[derive(Serialize)]
struct Readiness<'a> {
    status: &'static str,
    phase: Phase,
    components: &'a BTreeMap<String, ComponentStatus>,
}

fn json(status: StatusCode, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

async fn ready(State(health): State<Arc<Health>>) -> Response {
    let report = health.snapshot();
    let (code, status) = if report.phase == Phase::Ready {
        (StatusCode::OK, "Server available")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "Server not available")
    };
    let body = Readiness {
        status,
        phase: report.phase,
        components: &report.components,
    };
    match serde_json::to_string(&body) {
        Ok(text) => json(code, text),
        // Strings and enums always serialize; answer plainly rather than panic.
        Err(_) => json(code, format!(r#"{{"status":"{status}"}}"#)),
    }
}

async fn live() -> Response {
    json(StatusCode::OK, r#"{"status":"Server alive"}"#.to_owned())
}

#[cfg(test)]
mod tests;
