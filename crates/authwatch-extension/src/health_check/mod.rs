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
//! | `path` | `/` | The readiness path. It starts with `/` and holds only letters, digits, `-`, `.`, `_`, `~` and `/`; it may not be `/livez`. |
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
//! - On shutdown the server stops accepting connections, answers the requests in flight, then
//!   ends.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

use authwatch_core::config::ListenAddr;
use authwatch_core::health::{ComponentStatus, Health, Phase};
use authwatch_core::{
    BuildError, ComponentConfig, ExtensionConfig, Resource, RunError, Running, Settings,
};
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use tokio::net::TcpListener;
use tracing::info;

/// The `health_check` extension's configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Where the HTTP server listens.
    pub endpoint: ListenAddr,
    /// The readiness path (also served at `/readyz`).
    pub path: UrlPath,
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
            path: UrlPath("/".to_owned()),
        }
    }
}

// === newtypes ===

/// An HTTP path the server can route: `/` followed by letters, digits, `-._~` and `/`; never
/// the liveness path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlPath(String);

impl UrlPath {
    pub fn new(s: &str) -> Result<Self, String> {
        let valid_chars = s
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '~' | '/'));
        if !s.starts_with('/') || !valid_chars {
            return Err(format!(
                "invalid path `{s}`: start it with `/` and use only letters, digits, `-`, `.`, `_`, `~` and `/`, e.g. `/health/status`"
            ));
        }
        if s == LIVENESS_PATH {
            return Err(format!(
                "`{LIVENESS_PATH}` is the liveness endpoint; choose another readiness path"
            ));
        }
        Ok(UrlPath(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for UrlPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for UrlPath {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for UrlPath {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        UrlPath::new(&s).map_err(serde::de::Error::custom)
    }
}

// === impl ExtensionConfig ===

impl ComponentConfig for Config {
    const TYPE: &'static str = "health_check";

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
        let addr = self.endpoint.addr();
        let bind_err = |source| BuildError::Bind { addr, source };
        let listener = TcpListener::bind(addr).await.map_err(bind_err)?;
        let local = listener.local_addr().map_err(bind_err)?;
        let app = router(&self.path, settings.health.clone());
        let shutdown = settings.shutdown.clone();
        info!(endpoint = %local, path = %self.path, "Health check extension listening.");
        let running = async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(shutdown.cancelled_owned())
                .await
                .map_err(|e| RunError(format!("health check server on {local} failed: {e}")))?;
            info!(endpoint = %local, "Health check extension stopped.");
            Ok(())
        };
        Ok((local, Box::pin(running)))
    }
}

// === impl router ===

/// The routes: readiness at `path` and `/readyz`, liveness at `/livez`.
pub(crate) fn router(path: &UrlPath, health: Health) -> Router {
    let mut app = Router::new()
        .route(LIVENESS_PATH, get(live))
        .route(READINESS_PATH, get(ready));
    // `UrlPath` rules out `/livez`; `/readyz` is already routed to the same handler.
    if path.as_str() != READINESS_PATH {
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
