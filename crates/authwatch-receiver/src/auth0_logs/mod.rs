//! # `auth0_logs` receiver
//!
//! An HTTP endpoint for Auth0's **Custom Webhook** log stream. Every Auth0 tenant log event
//! (logins, token exchanges, Management API calls, rate limits, attack protection) becomes an
//! OTLP log record, and a cumulative counter by event type and category feeds error rates and
//! alerts. It can feed `logs` and `metrics` pipelines.
//!
//! ```yaml
//! receivers:
//!   auth0_logs:
//!     endpoint: 127.0.0.1:4319           # behind a TLS-terminating proxy: Auth0 sends HTTPS only
//!     path: /auth0/logs
//!     authorization: "Bearer ${env:AUTH0_LOG_STREAM_TOKEN}"   # required
//!     max_request_body_size: 10485760
//!     include_user_ids: false
//!     dedupe_window: 1h
//!     dedupe_max_entries: 100000
//!     read_header_timeout: 10s
//!     read_timeout: 30s
//!     idle_timeout: 60s
//!     max_connections: 1024
//!     tls:                               # optional: serve HTTPS yourself
//!       cert_file: /etc/authwatch/server.crt
//!       key_file: /etc/authwatch/server.key
//! ```
//!
//! ## Options
//!
//! | option | default | meaning |
//! | --- | --- | --- |
//! | `endpoint` | `127.0.0.1:4319` | `host:port` to listen on |
//! | `path` | `/auth0/logs` | URL path of the Payload URL |
//! | `authorization` | (required) | the exact `Authorization` header value the stream sends (Auth0 adds no `Bearer`) |
//! | `max_request_body_size` | `10485760` (10 MiB) | largest body in bytes, on the wire and after gunzip |
//! | `include_user_ids` | `false` | keep personal fields (`user_id`, `user_name`, `email`, `ip`, ...) |
//! | `dedupe_window` | `1h` | how long a `log_id` is remembered; `0s` turns dedupe off |
//! | `dedupe_max_entries` | `100000` | most `log_id`s remembered; the oldest are forgotten first |
//! | `read_header_timeout` | `10s` | time for a request head to arrive, from connecting (first request) or from its first byte (keep-alive); else the connection is closed; `0s`: no limit |
//! | `read_timeout` | `30s` | time for a request body to arrive after its head; else `408`; `0s`: no limit |
//! | `idle_timeout` | `60s` | time a keep-alive connection may wait for its next request; `0s`: no limit |
//! | `max_connections` | `1024` | connections open at once (TLS handshakes included); more wait in the listen backlog until one closes |
//! | `tls.cert_file`, `tls.key_file` | (off) | serve HTTPS with this PEM certificate chain and key (Auth0 only sends to `https://` URLs: use this or a TLS-terminating proxy) |
//! | `tls.client_ca_file` | (off) | require client certificates signed by these CAs (mutual TLS; Auth0's log streams do not send one, so only behind a proxy that does) |
//!
//! ## Requests and answers
//!
//! `POST` with a JSON array (`JSONARRAY`), JSON lines (`JSONLINES`) or one JSON object
//! (`JSONOBJECT`; an object with a `logs` array is read as that array), optionally
//! `Content-Encoding: gzip`. Each record is `{"log_id": "...", "data": {...}}`; a bare event
//! object is accepted too.
//!
//! | what happened | status |
//! | --- | --- |
//! | the pipelines took the batch (or every record was a duplicate) | `200` `{"accepted":N,"duplicates":M}` |
//! | `Authorization` missing or different | `401`, nothing enters the pipeline |
//! | body not JSON, a record not an object, bad gzip | `400` |
//! | body larger than `max_request_body_size` (wire or inflated) | `413` (the rest of the body is read and dropped, for up to 5 s and 4 MiB, so the client can read it) |
//! | body not complete within `read_timeout` | `408`, connection closed |
//! | `Content-Encoding` other than gzip / identity | `415` |
//! | a pipeline is full or shutting down | `503` + `Retry-After` (Auth0 retries) |
//! | a pipeline refused to protect the process | `429` + `Retry-After` |
//!
//! Delivery is at least once: records whose `log_id` was accepted within `dedupe_window` are
//! dropped and counted. Ids are remembered only after the pipeline accepted the batch, so a
//! batch answered `503` and sent again is counted once.
//!
//! ## What it sends
//!
//! Resource `service.name=auth0`, scope `authwatch.auth0_logs`.
//!
//! Log records (`event_name` `auth0.log`): time from `data.date`, observed time on arrival,
//! body from `description`, severity INFO (success, other) or WARN (failure, rate_limit,
//! anomaly), attributes `auth0.log.type`, `auth0.log.category`, `auth0.log_id` and every other
//! field of `data` flattened under `auth0.` (`auth0.client_id`, `auth0.details.error.message`;
//! arrays of scalars stay arrays, deeper objects and arrays of objects become JSON strings; at
//! most 128 attributes). Unless `include_user_ids` is on, these keys are removed at any depth:
//! `user_id`, `user_name`, `username`, `email`, `phone_number`, `phone`, `ip`, `client_ip`,
//! `user_agent`, `location_info`, `given_name`, `family_name`, `nickname`, `picture`.
//!
//! Metrics, sent with each accepted batch, **cumulative** monotonic sums whose start time is the
//! receiver's start (a restart starts them again, which backends see as a reset):
//!
//! - `authwatch.auth0.events` `{event}` by `auth0.log.type` and `auth0.log.category`;
//! - `authwatch.auth0.events.duplicates` `{event}`.
//!
//! ## Self-telemetry
//!
//! `authwatch_receiver_accepted_log_records_total{transport="http"}` and `..._refused_...`,
//! and the same for `metric_points`.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use authwatch_core::config::{Positive, Secret};
use authwatch_core::{
    BuildError, ComponentConfig, ReceiverConfig, ReceiverContext, Resource, RunError, Running,
    Signals, Validator,
};
use authwatch_net::server::{
    validate_http_limits, Limits, DEFAULT_IDLE_TIMEOUT, DEFAULT_MAX_CONNECTIONS,
    DEFAULT_READ_HEADER_TIMEOUT, DEFAULT_READ_TIMEOUT,
};
use authwatch_net::{ListenAddr, TlsServerConfig, UrlPath};
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tracing::info;

pub(crate) mod decode;
mod dedupe;
mod http;
mod ingest;
mod logins;
pub mod types;

pub use decode::PERSONAL_FIELDS;
pub use types::{category, Category};

/// Default listen port.
pub const DEFAULT_PORT: u16 = 4319;
/// Default `path`.
pub const DEFAULT_PATH: &str = "/auth0/logs";
/// Default `max_request_body_size`: 10 MiB.
pub const DEFAULT_MAX_REQUEST_BODY_SIZE: usize = 10 * 1024 * 1024;
/// Default `dedupe_window`.
pub const DEFAULT_DEDUPE_WINDOW: Duration = Duration::from_secs(3600);
/// Default `dedupe_max_entries`.
pub const DEFAULT_DEDUPE_MAX_ENTRIES: usize = 100_000;

/// The `auth0_logs` receiver's config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub endpoint: ListenAddr,
    pub path: UrlPath,
    /// The exact `Authorization` header value Auth0 is configured to send.
    pub authorization: Secret,
    pub max_request_body_size: Positive,
    pub include_user_ids: bool,
    #[serde(with = "authwatch_core::config::duration")]
    pub dedupe_window: Duration,
    pub dedupe_max_entries: Positive,
    /// Time for a request head to arrive (from its first byte, or from connecting); `0s`: no limit.
    #[serde(with = "authwatch_core::config::duration")]
    pub read_header_timeout: Duration,
    /// Time for a request body to arrive after its head (else `408`); `0s`: no limit.
    #[serde(with = "authwatch_core::config::duration")]
    pub read_timeout: Duration,
    /// Time a keep-alive connection may wait for its next request; `0s`: no limit.
    #[serde(with = "authwatch_core::config::duration")]
    pub idle_timeout: Duration,
    /// Most connections open at once; more wait until one closes.
    pub max_connections: Positive,
    /// Serve HTTPS (see [`authwatch_net::tls`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsServerConfig>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            endpoint: ListenAddr::localhost(DEFAULT_PORT),
            path: UrlPath::from_static(DEFAULT_PATH),
            authorization: Secret::default(),
            max_request_body_size: Positive(DEFAULT_MAX_REQUEST_BODY_SIZE),
            include_user_ids: false,
            dedupe_window: DEFAULT_DEDUPE_WINDOW,
            dedupe_max_entries: Positive(DEFAULT_DEDUPE_MAX_ENTRIES),
            read_header_timeout: DEFAULT_READ_HEADER_TIMEOUT,
            read_timeout: DEFAULT_READ_TIMEOUT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            max_connections: Positive(DEFAULT_MAX_CONNECTIONS),
            tls: None,
        }
    }
}

// === newtypes ===


// === impl Config ===

impl ComponentConfig for Config {
    const TYPE: &'static str = "auth0_logs";

    fn validate(&self, v: &mut Validator) {
        if self.authorization.is_empty() {
            v.error(
                "authorization",
                "must be set to the Authorization token configured on the Auth0 log stream, e.g. `Bearer ${env:AUTH0_LOG_STREAM_TOKEN}`",
            );
        } else if self.authorization.expose().trim() != self.authorization.expose() {
            v.error(
                "authorization",
                "must not start or end with whitespace; HTTP drops it, so it could never match",
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

impl ReceiverConfig for Config {
    fn signals(&self) -> Signals {
        Signals::LOGS | Signals::METRICS
    }

    async fn build(&self, cx: ReceiverContext) -> Result<Running, BuildError> {
        Ok(Receiver::bind(self, cx).await?.run())
    }
}

// === impl Receiver ===

/// A bound, not yet serving, receiver.
pub(crate) struct Receiver {
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    path: UrlPath,
    endpoint: Arc<http::Endpoint>,
    limits: Limits,
    shutdown: tokio_util::sync::CancellationToken,
}

impl Receiver {
    pub(crate) async fn bind(config: &Config, cx: ReceiverContext) -> Result<Self, BuildError> {
        let tls = match &config.tls {
            Some(t) => Some(t.load(&[b"h2", b"http/1.1"])?),
            None => None,
        };
        let addr = config.endpoint.addr();
        let listener = authwatch_net::server::bind(addr).await?;
        let local = listener.local_addr().unwrap_or(addr);
        info!(
            endpoint = %local,
            path = %config.path,
            tls = tls.is_some(),
            "Auth0 log stream receiver listening."
        );
        let ingest = ingest::Ingest::new(
            cx.next,
            cx.settings.telemetry.receiver(&cx.settings.id, "http"),
            config.include_user_ids,
            config.dedupe_window,
            config.dedupe_max_entries.get(),
            SystemTime::now(),
        );
        Ok(Receiver {
            listener,
            tls,
            path: config.path.clone(),
            endpoint: Arc::new(http::Endpoint {
                authorization: config.authorization.clone(),
                max_body: config.max_request_body_size.get(),
                ingest,
            }),
            limits: Limits::new(
                config.read_header_timeout,
                config.read_timeout,
                config.idle_timeout,
                config.max_connections.get(),
            ),
            shutdown: cx.settings.shutdown,
        })
    }

    /// The bound address (the real port when configured with port 0).
    #[cfg(test)]
    pub(crate) fn local_addr(&self) -> Option<std::net::SocketAddr> {
        self.listener.local_addr().ok()
    }

    /// Serves until shutdown, answering the requests in flight.
    pub(crate) fn run(self) -> Running {
        let app = http::router(self.path.as_str(), self.endpoint);
        let listener = self.listener;
        let tls = self.tls;
        let shutdown = self.shutdown;
        let limits = self.limits;
        Box::pin(async move {
            authwatch_net::serve_http(listener, tls, app, limits, shutdown).await;
            info!("Auth0 log stream receiver stopped.");
            Ok::<(), RunError>(())
        })
    }
}

#[cfg(test)]
mod tests;
