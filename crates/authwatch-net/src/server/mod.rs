//! Serving HTTP so that slow, idle or too many clients cannot hold the server; and a connection
//! cap for tonic's gRPC servers.
//!
//! [`serve_http`] is the accept loop of every HTTP server authwatch opens (the `otlp` HTTP and
//! `auth0_logs` receivers, the self-telemetry endpoint, the `health_check` and `status_page`
//! extensions, the `prometheus` exporter), plain or TLS, HTTP/1.1 and HTTP/2 (hyper-util's auto
//! builder):
//!
//! - **`max_connections`**: at most this many connections are open at once (TLS handshakes
//!   included). At the cap the loop stops calling `accept`, so further connections wait in the
//!   kernel's listen backlog (the client's `connect` succeeds, its request is answered once a
//!   connection closes) instead of being refused; a warning is logged at most once a minute.
//! - **`read_header_timeout`**: a connection's first request head (or, for HTTP/1.1 keep-alive,
//!   the next request head, counted from its first byte) must arrive within this time, or the
//!   connection is closed. This covers a client that connects and says nothing and a client that
//!   sends its headers byte by byte (slowloris).
//! - **`read_timeout`**: a request body must be received within this time of its headers. A
//!   handler still reading it then gets an error, and the request is answered
//!   `408 Request Timeout` (`Connection: close` on HTTP/1.1).
//! - **`idle_timeout`**: a keep-alive connection with no request in flight is closed after this
//!   long (HTTP/2: `GOAWAY`).
//! - **Graceful shutdown**: when `shutdown` is cancelled the listener is closed, idle connections
//!   are closed, and requests in flight are answered before [`serve_http`] returns.
//! - **Lingering close**: when the server closes a connection whose last request body was not
//!   read to the end (a `413` for a streamed body over the limit, a `401` or `408`), it first
//!   shuts down its sending side and then reads and discards what the client still sends, up to
//!   [`LINGER_MAX_BYTES`] or [`LINGER_TIMEOUT`]. Closing with unread data would make the kernel
//!   send a TCP reset, and a client still writing its body would lose the answer.
//!
//! A zero duration turns that timeout off.
//!
//! For gRPC, tonic owns the accept loop: [`LimitedIncoming`] wraps its incoming stream
//! (`TcpIncoming` or [`TlsIncoming`](crate::tls::TlsIncoming)), holds a permit per open connection and stops
//! taking connections at the cap. Each connection must send its first bytes (the HTTP/2 preface)
//! within [`PREFACE_TIMEOUT`].

mod conn;
mod grpc;
mod request;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::warn;

use self::conn::Connection;
pub use self::grpc::{Limited, LimitedIncoming};
pub use self::request::BodyError;

/// Default `read_header_timeout` of the HTTP servers.
pub const DEFAULT_READ_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Default `read_timeout` of the HTTP servers.
pub const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Default `idle_timeout` of the HTTP servers.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Default `max_connections` of every server.
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;
/// Lingering close: at most this long reading what a client still sends after the answer.
pub const LINGER_TIMEOUT: Duration = Duration::from_secs(5);
/// Lingering close: at most this many bytes read and discarded.
pub const LINGER_MAX_BYTES: usize = 4 * 1024 * 1024;
/// gRPC: how long a new connection may take to send its first bytes.
pub const PREFACE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a connection told to close (idle, shutting down) with no request in flight may take
/// to do so before it is dropped.
pub(crate) const CLOSE_GRACE: Duration = Duration::from_secs(1);
/// Least time between two "connection limit reached" warnings.
const CAP_WARN_EVERY: Duration = Duration::from_secs(60);

/// How an HTTP server bounds its clients. `None` turns a timeout off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub read_header_timeout: Option<Duration>,
    pub read_timeout: Option<Duration>,
    pub idle_timeout: Option<Duration>,
    pub max_connections: usize,
}

impl Limits {
    /// From config values, where a zero duration means "off".
    pub fn new(
        read_header_timeout: Duration,
        read_timeout: Duration,
        idle_timeout: Duration,
        max_connections: usize,
    ) -> Self {
        let on = |d: Duration| (!d.is_zero()).then_some(d);
        Limits {
            read_header_timeout: on(read_header_timeout),
            read_timeout: on(read_timeout),
            idle_timeout: on(idle_timeout),
            max_connections: max_connections.max(1),
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits::new(
            DEFAULT_READ_HEADER_TIMEOUT,
            DEFAULT_READ_TIMEOUT,
            DEFAULT_IDLE_TIMEOUT,
            DEFAULT_MAX_CONNECTIONS,
        )
    }
}

/// Warns about HTTP server timeouts turned off, at `at` (e.g. `protocols::http`).
pub fn validate_http_limits(
    v: &mut authwatch_core::Validator,
    at: &str,
    read_header_timeout: Duration,
    read_timeout: Duration,
    idle_timeout: Duration,
) {
    let join = |field: &str| {
        if at.is_empty() {
            field.to_owned()
        } else {
            format!("{at}::{field}")
        }
    };
    if read_header_timeout.is_zero() {
        v.warn(
            &join("read_header_timeout"),
            "is 0, so a client that sends its headers slowly holds a connection for ever; set e.g. `10s`",
        );
    }
    if read_timeout.is_zero() {
        v.warn(
            &join("read_timeout"),
            "is 0, so a client that sends its body slowly holds a connection for ever; set e.g. `30s`",
        );
    }
    if idle_timeout.is_zero() {
        v.warn(
            &join("idle_timeout"),
            "is 0, so idle keep-alive connections stay open until the client closes them; set e.g. `60s`",
        );
    }
}

/// Binds a server's port when its component is built (so that a port in use fails startup);
/// a port in use is [`BuildError::Bind`](authwatch_core::BuildError::Bind).
pub async fn bind(addr: std::net::SocketAddr) -> Result<TcpListener, authwatch_core::BuildError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| authwatch_core::BuildError::Bind { addr, source })
}

// === serve_http ===

/// Serves `app` on `listener` (TLS with `tls`) within `limits` until `shutdown` is cancelled,
/// then answers the requests in flight and returns. Never fails: accept errors (out of file
/// descriptors and the like) are logged and retried.
pub async fn serve_http(
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    app: axum::Router,
    limits: Limits,
    shutdown: CancellationToken,
) {
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let handshakes = Arc::new(Semaphore::new(crate::tls::server::MAX_PENDING_HANDSHAKES));
    let acceptor = tls.map(TlsAcceptor::from);
    let connections = TaskTracker::new();
    let mut last_cap_warning: Option<Instant> = None;
    loop {
        let permit = match permits.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                let now = Instant::now();
                if last_cap_warning.is_none_or(|t| now >= t + CAP_WARN_EVERY) {
                    last_cap_warning = Some(now);
                    warn!(
                        endpoint = %display_addr(&listener),
                        max_connections = limits.max_connections,
                        "Connection limit reached; new connections wait until one closes."
                    );
                }
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    p = permits.clone().acquire_owned() => match p {
                        Ok(p) => p,
                        Err(_) => break,
                    },
                }
            }
        };
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            a = listener.accept() => a,
        };
        let (tcp, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                warn!(error = %e, "Cannot accept a connection; retrying in 100ms.");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let conn = Connection {
            app: app.clone(),
            limits,
            shutdown: shutdown.clone(),
            peer,
            _permit: permit,
        };
        match &acceptor {
            None => connections.spawn(conn.serve(tcp)),
            Some(acceptor) => {
                connections.spawn(conn.serve_tls(acceptor.clone(), handshakes.clone(), tcp))
            }
        };
    }
    // Stop taking connections (the kernel refuses new ones), then wait for the open ones.
    drop(listener);
    connections.close();
    connections.wait().await;
}

fn display_addr(listener: &TcpListener) -> String {
    listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_else(|_| "?".to_owned())
}
