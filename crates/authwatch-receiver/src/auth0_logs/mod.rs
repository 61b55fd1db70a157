//! # `auth0_logs` receiver
//!
//! Auth0's tenant logs, pushed to an HTTP endpoint by a **Custom Webhook** log stream, pulled
//! from the **Management API** (`pull:`), or both. Every Auth0 tenant log event (logins, token
//! exchanges, Management API calls, rate limits, attack protection) becomes an OTLP log record,
//! and a cumulative counter by event type and category feeds error rates and alerts. It can feed
//! `logs` and `metrics` pipelines.
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
//!     users_window: 5m
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
//! | `users_window` | `5m` | window of `authwatch.logins.users_affected` (distinct users with a failed login), whole minutes from `1m` to `1h`; match it to the `alerts` connector's `verdict.window` so verdicts and user counts cover the same time |
//! | `read_header_timeout` | `10s` | time for a request head to arrive, from connecting (first request) or from its first byte (keep-alive); else the connection is closed; `0s`: no limit |
//! | `read_timeout` | `30s` | time for a request body to arrive after its head; else `408`; `0s`: no limit |
//! | `idle_timeout` | `60s` | time a keep-alive connection may wait for its next request; `0s`: no limit |
//! | `max_connections` | `1024` | connections open at once (TLS handshakes included); more wait in the listen backlog until one closes |
//! | `tls.cert_file`, `tls.key_file` | (off) | serve HTTPS with this PEM certificate chain and key (Auth0 only sends to `https://` URLs: use this or a TLS-terminating proxy) |
//! | `tls.client_ca_file` | (off) | require client certificates signed by these CAs (mutual TLS; Auth0's log streams do not send one, so only behind a proxy that does) |
//!
//! ## Pull mode
//!
//! With `pull:`, the receiver reads the tenant's logs itself: no public endpoint needed, and
//! what a paused or failing stream missed is read anyway. It gets a Management API token by
//! client credentials (audience `https://{domain}/api/v2/`; kept until a minute before it
//! expires, asked again once on a `401`), then reads `GET /api/v2/logs?from={log_id}&take=100`
//! and follows `Link: rel="next"` until a page comes back short or empty, then waits
//! `interval`. The first start reads from `start_at`: `now`, or a duration to backfill
//! (bounded by the tenant's retention), found with one search request
//! (`q=date:[T TO *]&sort=date:1&per_page=1`). Leave `authorization` empty to pull only (the
//! webhook endpoint is then not opened).
//!
//! ```yaml
//! receivers:
//!   auth0_logs:
//!     authorization: "Bearer ${env:AUTH0_LOG_STREAM_TOKEN}"   # push too; "" to pull only
//!     pull:
//!       domain: my-tenant.us.auth0.com
//!       client_id: ${env:AUTH0_LOGS_CLIENT_ID}
//!       client_secret: ${env:AUTH0_LOGS_CLIENT_SECRET}
//!       storage: /var/lib/authwatch          # checkpoint and seen ids (required)
//!       interval: 10s
//!       start_at: now                         # or a duration: 24h
//!       take: 100
//!       requests_per_second: 2                # your plan's Management API rate
//!       max_share: 0.5
//!       timeout: 30s
//!       log_streams:                          # optional: the streams' health
//!         interval: 1m
//!         id: ""                              # one stream (lst_...), or every stream
//! ```
//!
//! | option | default | meaning |
//! | --- | --- | --- |
//! | `pull.domain` | (required) | the tenant's domain, without a scheme |
//! | `pull.client_id`, `pull.client_secret` | (required) | an M2M application authorized for the Management API with `read:logs` (and `read:log_streams` for `log_streams`) |
//! | `pull.audience` | `https://{domain}/api/v2/` | the token's audience |
//! | `pull.endpoint` | `https://{domain}` | where the Management API and `/oauth/token` are (a proxy, a test stand-in) |
//! | `pull.interval` | `10s` | wait after a short or empty page |
//! | `pull.start_at` | `now` | where the first start (no checkpoint) reads from: `now` or a duration back |
//! | `pull.take` | `100` | events per page (at most 100) |
//! | `pull.requests_per_second` | `2` | the tenant's sustained Management API rate (a free tenant's is 2) |
//! | `pull.max_share` | `0.5` | share of that rate, and of each `x-ratelimit-limit` bucket, this receiver may use: requests are spaced `1 / (max_share × requests_per_second)` apart, and once a response says fewer than `(1 − max_share) × limit` requests are left it waits for `x-ratelimit-reset` |
//! | `pull.storage` | (required) | directory of the checkpoint file `auth0_logs-<domain>.checkpoint` and of the accepted ids `auth0_logs-<domain>.seen` (may be the persistent queue's `storage`) |
//! | `pull.timeout` | `30s` | per request |
//! | `pull.tls` | system roots | client TLS (`ca_file`, `cert_file`, `key_file`, `insecure`) |
//! | `pull.log_streams.interval` | `1m` | how often `GET /api/v2/log-streams` (or `/{id}`) is read |
//! | `pull.log_streams.id` | every stream | read one stream |
//!
//! **Checkpoint.** The last `log_id` of each page is stored (temp file, fsync, rename, fsync of
//! the directory) only after the pipelines accepted the page (and its ids were recorded, see
//! below), so a restart or `kill -9` resumes after it with no gap; a page read again because
//! of a crash before the checkpoint's fsync is dropped by the durable dedupe. A checkpoint
//! that does not read is moved aside to `<file>.corrupt-<unix seconds>`, logged, counted, and
//! reading starts again from `start_at`.
//!
//! **Push and pull together** share one dedupe: a `log_id` accepted from either is dropped
//! from the other, so each event reaches the pipelines once. With `pull.storage` (and a
//! `dedupe_window` above `0s`) the dedupe is durable: the ids the pipelines accepted, from
//! push or pull, are appended to `auth0_logs-<domain>.seen` in that directory (a header line,
//! then `<unix ms> <log_id>` per line) and fsynced after each accepted batch, before the
//! checkpoint is written. On start the file is loaded into the dedupe (ids older than
//! `dedupe_window` are dropped, at most `dedupe_max_entries` of the newest kept); a torn last
//! line is ignored; a file that does not read is moved aside to `<file>.corrupt-<unix
//! seconds>` and logged. Once it holds more than twice `dedupe_max_entries` lines it is
//! rewritten (temp file, fsync, rename) with what the dedupe keeps. So after a `kill -9`, pull
//! reading again from its checkpoint drops the records the webhook had already delivered.
//! What remains: a crash after a pipeline accepted a batch and before its ids were fsynced to
//! this file (a few milliseconds) delivers that batch again after the restart; ids over 256
//! bytes or with control characters are deduplicated in memory only; and push alone (no
//! `pull:`) keeps its dedupe in memory.
//!
//! **Faults.** A `429` waits for `Retry-After` (else `x-ratelimit-reset`); `5xx`, timeouts, a
//! token endpoint that fails, a page that is not JSON back off (1s doubling to 5m, at least
//! `interval` once it is reached) and read the same page again; a `Link` whose scheme, host or
//! port differs from the endpoint's is refused (the token is never sent there) and the next
//! request is built from the checkpoint. Each is a warning in the log and an
//! `authwatch.auth0.pull.requests` outcome. Tokens and the client secret never appear in logs,
//! metrics or errors.
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
//! With `pull:`, after each round of reading, with `server.address` = `pull.domain`:
//!
//! - `authwatch.auth0.pull.requests` `{request}` (cumulative) by `auth0.pull.api` (`token`,
//!   `logs`, `log_streams`) and `auth0.pull.outcome` (`ok`, `rate_limited`, `server_error`,
//!   `malformed`, `link_refused`, `token_error`, `unauthorized`, `refused`, `transport_error`);
//! - `authwatch.auth0.pull.checkpoint.resets` `{reset}`: corrupt checkpoints moved aside;
//! - `authwatch.ratelimit.limit`, `authwatch.ratelimit.remaining` `{request}` and
//!   `authwatch.ratelimit.reset` (Unix s), gauges with `auth0.api=management`, from the last
//!   `x-ratelimit-*` headers (the probes' names).
//!
//! With `pull.log_streams`, every `log_streams.interval`, per stream (`auth0.log_stream.id`,
//! `auth0.log_stream.name`):
//!
//! - `authwatch.auth0.log_stream.active`: 1 while active, 0 while paused or suspended;
//! - `authwatch.auth0.log_stream.status`: 1 for the current `auth0.log_stream.status`
//!   (`active`, `paused`, `suspended`), 0 for the others;
//! - `authwatch.auth0.log_stream.silence` (s, when the webhook is on): time since a pushed
//!   batch was last accepted (since the start, before the first).
//!
//! ## Self-telemetry
//!
//! `authwatch_receiver_accepted_log_records_total{transport="http"}` and `..._refused_...`,
//! and the same for `metric_points`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use authwatch_core::config::{Positive, Secret};
use authwatch_core::time::Window;
use authwatch_core::{
    BuildError, ComponentConfig, ReceiverConfig, ReceiverContext, Resource, RunError, Running,
    Signals, Validator,
};
use authwatch_net::server::{
    validate_http_limits, Limits, DEFAULT_IDLE_TIMEOUT, DEFAULT_MAX_CONNECTIONS,
    DEFAULT_READ_HEADER_TIMEOUT, DEFAULT_READ_TIMEOUT,
};
use authwatch_net::{ListenAddr, TlsServerConfig, UrlPath};
use authwatch_tenant_logs::logins::{check_users_window, USERS_WINDOW};
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tracing::info;


pub(crate) mod decode;
mod dedupe;
mod http;
mod ingest;
mod logins;
pub mod pull;
mod seen_file;
pub mod types;

pub use decode::PERSONAL_FIELDS;
pub use pull::config::{LogStreams, PullConfig, StartAt};
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
    /// The window of `authwatch.logins.users_affected`: whole minutes from `1m` to `1h`.
    pub users_window: Window,
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
    /// Read the tenant's logs from the Management API too (or instead: leave `authorization`
    /// empty to turn the webhook endpoint off).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pull: Option<PullConfig>,
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
            users_window: Window(USERS_WINDOW),
            read_header_timeout: DEFAULT_READ_HEADER_TIMEOUT,
            read_timeout: DEFAULT_READ_TIMEOUT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            max_connections: Positive(DEFAULT_MAX_CONNECTIONS),
            tls: None,
            pull: None,
        }
    }
}

// === impl Config ===

impl Config {
    /// Whether the webhook endpoint is served: always without `pull`, else when
    /// `authorization` is set.
    pub fn push_on(&self) -> bool {
        self.pull.is_none() || !self.authorization.is_empty()
    }

    /// The pull checkpoint file, when pulling.
    pub fn checkpoint_path(&self) -> Option<PathBuf> {
        let pull = self.pull.as_ref()?;
        let dir = pull.storage.as_ref()?;
        Some(dir.join(checkpoint_file_name(&pull.domain)))
    }

    /// The file of accepted `log_id`s, when pulling with dedupe on.
    pub fn seen_path(&self) -> Option<PathBuf> {
        if self.dedupe_window.is_zero() {
            return None;
        }
        let pull = self.pull.as_ref()?;
        let dir = pull.storage.as_ref()?;
        Some(dir.join(seen_file_name(&pull.domain)))
    }
}

/// `auth0_logs-<domain>.seen`.
fn seen_file_name(domain: &str) -> String {
    let cp = checkpoint_file_name(domain);
    format!("{}.seen", cp.trim_end_matches(".checkpoint"))
}

/// `auth0_logs-<domain>.checkpoint`, the domain's characters kept to `[A-Za-z0-9._-]`.
fn checkpoint_file_name(domain: &str) -> String {
    let d: String = domain
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '-' | '.') { c } else { '_' })
        .collect();
    format!("auth0_logs-{d}.checkpoint")
}

impl ComponentConfig for Config {
    const TYPE: &'static str = "auth0_logs";

    fn validate(&self, v: &mut Validator) {
        if let Some(pull) = &self.pull {
            pull.validate(v);
        }
        if self.authorization.is_empty() && self.pull.is_none() {
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
        if let Err(e) = check_users_window(self.users_window) {
            v.error("users_window", e.to_string());
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
        let mut r = Vec::new();
        if self.push_on() {
            r.push(Resource::Listen(self.endpoint.addr()));
        }
        if let Some(p) = self.checkpoint_path() {
            r.push(Resource::Path(p));
        }
        if let Some(p) = self.seen_path() {
            r.push(Resource::Path(p));
        }
        r
    }
}

impl ReceiverConfig for Config {
    fn signals(&self) -> Signals {
        Signals::LOGS | Signals::METRICS
    }

    async fn build(&self, cx: ReceiverContext) -> Result<Running, BuildError> {
        let ingest = ingest::Ingest::new(
            cx.next.clone(),
            cx.settings.telemetry.receiver(&cx.settings.id, "http"),
            self,
            SystemTime::now(),
        );
        let ingest = Arc::new(match self.load_seen().await {
            Some((file, loaded)) => ingest.with_seen(file, loaded.entries),
            None => ingest,
        });
        let push = if self.push_on() {
            Some(Receiver::bind(self, &cx, ingest.clone()).await?.run())
        } else {
            None
        };
        let pull = match &self.pull {
            Some(p) => Some(start_pull(self, p, &cx, ingest)?),
            None => None,
        };
        Ok(Box::pin(async move {
            let push = async {
                if let Some(p) = push {
                    p.await
                } else {
                    Ok(())
                }
            };
            let pull = async {
                if let Some(p) = pull {
                    p.await;
                }
            };
            let (push, ()) = tokio::join!(push, pull);
            push
        }))
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
    pub(crate) async fn bind(
        config: &Config,
        cx: &ReceiverContext,
        ingest: Arc<ingest::Ingest>,
    ) -> Result<Self, BuildError> {
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
            shutdown: cx.settings.shutdown.clone(),
        })
    }

    /// Binds with its own ingest (the tests of the webhook alone).
    #[cfg(test)]
    pub(crate) async fn bind_alone(config: &Config, cx: ReceiverContext) -> Result<Self, BuildError> {
        let ingest = Arc::new(ingest::Ingest::new(
            cx.next.clone(),
            cx.settings.telemetry.receiver(&cx.settings.id, "http"),
            config,
            SystemTime::now(),
        ));
        Receiver::bind(config, &cx, ingest).await
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

/// Builds the puller (and the log-stream poller) as one task.
fn start_pull(
    config: &Config,
    p: &PullConfig,
    cx: &ReceiverContext,
    ingest: Arc<ingest::Ingest>,
) -> Result<std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>, BuildError> {
    use authwatch_tenant_logs::checkpoint::Checkpoint;
    use authwatch_tenant_logs::ratelimit::Pacer;

    let client = authwatch_net::http_client(p.timeout, &p.tls)?;
    let base = url::Url::parse(&p.base_url())
        .map_err(|e| BuildError::option("pull::endpoint", e))?;
    let stats = Arc::new(pull::stats::Stats::new(p.domain.clone(), SystemTime::now()));
    let api = |share: f64| {
        pull::api::Api::new(
            client.clone(),
            base.clone(),
            pull::token::TokenCache::new(
                client.clone(),
                base.as_str().trim_end_matches('/'),
                p.client_id.clone(),
                p.client_secret.clone(),
                p.audience(),
            ),
            Pacer::new(share, p.requests_per_second),
        )
    };
    let path = config
        .checkpoint_path()
        .unwrap_or_else(|| PathBuf::from(checkpoint_file_name(&p.domain)));
    let dir = path.parent().map(PathBuf::from).unwrap_or_default();
    let file = path
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    let shutdown = cx.settings.shutdown.clone();
    // The log-stream poller's requests are few; it gets a tenth of the share.
    let streams = p.log_streams.as_ref().map(|ls| pull::streams::StreamsPoller {
        api: api(p.max_share / 10.0),
        id: ls.id.clone(),
        interval: ls.interval,
        stats: stats.clone(),
        ingest: ingest.clone(),
        push_on: config.push_on(),
        next: cx.next.clone(),
        shutdown: shutdown.clone(),
    });
    let puller = pull::Puller {
        api: api(p.max_share),
        ingest,
        next: cx.next.clone(),
        stats,
        checkpoint: Checkpoint::new(dir, file),
        interval: p.interval,
        take: p.take.get(),
        start_at: p.start_at,
        started: SystemTime::now(),
        shutdown,
    };
    info!(domain = %p.domain, endpoint = %base, "Auth0 logs: pulling from the Management API.");
    Ok(Box::pin(async move {
        match streams {
            Some(s) => {
                tokio::join!(puller.run(), s.run());
            }
            None => puller.run().await,
        }
    }))
}

#[cfg(test)]
mod tests;
