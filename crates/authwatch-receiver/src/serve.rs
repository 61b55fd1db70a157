//! Serving HTTP so that slow, idle or too many clients cannot hold the server; and a connection
//! cap for tonic's gRPC servers.
//!
//! [`serve_http`] is the accept loop of every HTTP receiver (`otlp` HTTP, `auth0_logs`), plain or
//! TLS, HTTP/1.1 and HTTP/2 (hyper-util's auto builder):
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
//! (`TcpIncoming` or [`crate::tls::TlsIncoming`]), holds a permit per open connection and stops
//! taking connections at the cap. Each connection must send its first bytes (the HTTP/2 preface)
//! within [`PREFACE_TIMEOUT`].

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{ready, Context, Poll};
use std::time::Duration;

use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::header::{CONNECTION, CONTENT_TYPE};
use http::{HeaderValue, Request, StatusCode, Version};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, Notify, OwnedSemaphorePermit, Semaphore};
use tokio::time::{sleep_until, Instant, Sleep};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::{CancellationToken, PollSemaphore};
use tokio_util::task::TaskTracker;
use tower::Service;
use tracing::{debug, warn};

/// Default `read_header_timeout` of the HTTP receivers.
pub const DEFAULT_READ_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Default `read_timeout` of the HTTP receivers.
pub const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Default `idle_timeout` of the HTTP receivers.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Default `max_connections` of every receiver that listens.
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;
/// Lingering close: at most this long reading what a client still sends after the answer.
pub const LINGER_TIMEOUT: Duration = Duration::from_secs(5);
/// Lingering close: at most this many bytes read and discarded.
pub const LINGER_MAX_BYTES: usize = 4 * 1024 * 1024;
/// gRPC: how long a new connection may take to send its first bytes.
pub const PREFACE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a connection told to close (idle, shutting down) with no request in flight may take
/// to do so before it is dropped.
const CLOSE_GRACE: Duration = Duration::from_secs(1);
/// Least time between two "connection limit reached" warnings.
const CAP_WARN_EVERY: Duration = Duration::from_secs(60);

/// How an HTTP server bounds its clients. `None` turns a timeout off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limits {
    pub read_header_timeout: Option<Duration>,
    pub read_timeout: Option<Duration>,
    pub idle_timeout: Option<Duration>,
    pub max_connections: usize,
}

impl Limits {
    /// From config values, where a zero duration means "off".
    pub(crate) fn new(
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
pub(crate) fn validate_http_limits(
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

// === serve_http ===

/// Serves `app` on `listener` (TLS with `tls`) within `limits` until `shutdown` is cancelled,
/// then answers the requests in flight and returns. Never fails: accept errors (out of file
/// descriptors and the like) are logged and retried.
pub(crate) async fn serve_http(
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    app: axum::Router,
    limits: Limits,
    shutdown: CancellationToken,
) {
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let handshakes = Arc::new(Semaphore::new(crate::tls::MAX_PENDING_HANDSHAKES));
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

/// One accepted connection, holding its slot until it is closed.
struct Connection {
    app: axum::Router,
    limits: Limits,
    shutdown: CancellationToken,
    peer: SocketAddr,
    _permit: OwnedSemaphorePermit,
}

/// How the connection loop ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ended {
    /// hyper finished the connection (client closed, or it closed after an answer).
    Done,
    /// Dropped by the server: too slow to send a request head, or did not close when told.
    Cut,
}

/// What the watchdog found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expiry {
    /// No complete request head within `read_header_timeout`.
    Header,
    /// Idle keep-alive connection past `idle_timeout`.
    Idle,
}

impl Connection {
    async fn serve_tls(self, acceptor: TlsAcceptor, handshakes: Arc<Semaphore>, tcp: TcpStream) {
        let shutdown = self.shutdown.clone();
        let handshake = async {
            let _slot = handshakes.acquire_owned().await.ok()?;
            crate::tls::handshake(&acceptor, tcp, self.peer).await
        };
        let tls = tokio::select! {
            _ = shutdown.cancelled() => return,
            t = handshake => t,
        };
        if let Some(tls) = tls {
            self.serve(tls).await;
        }
    }

    async fn serve<S>(self, io: S)
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let state = Arc::new(ConnState::new());
        let (linger_tx, linger_rx) = oneshot::channel();
        let io = Watched {
            inner: Some(io),
            state: state.clone(),
            linger: Some(linger_tx),
        };
        let service = RequestService {
            app: self.app.clone(),
            state: state.clone(),
            read_timeout: self.limits.read_timeout,
        };
        let mut builder = auto::Builder::new(TokioExecutor::new());
        // The watchdog below times request heads: hyper's own timer would also close idle
        // keep-alive connections after `header_read_timeout`.
        builder.http1().header_read_timeout(None);
        let mut conn = Box::pin(builder.serve_connection(TokioIo::new(io), service));
        let mut graceful = false;
        let mut hard_close_at: Option<Instant> = None;
        let ended = loop {
            tokio::select! {
                r = conn.as_mut() => {
                    if let Err(e) = r {
                        debug!(peer = %self.peer, error = %e, "HTTP connection ended with an error.");
                    }
                    break Ended::Done;
                }
                _ = self.shutdown.cancelled(), if !graceful => {
                    conn.as_mut().graceful_shutdown();
                    graceful = true;
                    if !state.busy() {
                        hard_close_at = Some(Instant::now() + CLOSE_GRACE);
                    }
                }
                expiry = state.expired(&self.limits), if hard_close_at.is_none() => match expiry {
                    Expiry::Header => {
                        debug!(peer = %self.peer, "No request head within `read_header_timeout`; connection closed.");
                        break Ended::Cut;
                    }
                    Expiry::Idle => {
                        debug!(peer = %self.peer, "Idle connection past `idle_timeout`; closing it.");
                        if !graceful {
                            conn.as_mut().graceful_shutdown();
                            graceful = true;
                        }
                        hard_close_at = Some(Instant::now() + CLOSE_GRACE);
                    }
                },
                _ = sleep_until(hard_close_at.unwrap_or_else(Instant::now)), if hard_close_at.is_some() => {
                    if state.busy() {
                        // A request arrived meanwhile: graceful shutdown answers it.
                        hard_close_at = None;
                    } else {
                        break Ended::Cut;
                    }
                }
            }
        };
        // Dropping the connection drops the socket, or hands it over for a lingering close.
        drop(conn);
        if ended == Ended::Done {
            if let Ok(io) = linger_rx.await {
                linger(io, &self.shutdown).await;
            }
        }
    }
}

/// Shuts down the sending side, then reads and discards what the client still sends, within
/// [`LINGER_TIMEOUT`] and [`LINGER_MAX_BYTES`] (and [`CLOSE_GRACE`] once shutting down).
async fn linger<S: AsyncRead + AsyncWrite + Unpin>(mut io: S, shutdown: &CancellationToken) {
    let drain = async {
        let _ = io.shutdown().await;
        let mut buf = vec![0u8; 16 * 1024];
        let mut left = LINGER_MAX_BYTES;
        while left > 0 {
            match io.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => left = left.saturating_sub(n),
            }
        }
    };
    let shutting_down = async {
        shutdown.cancelled().await;
        tokio::time::sleep(CLOSE_GRACE).await;
    };
    tokio::select! {
        _ = tokio::time::timeout(LINGER_TIMEOUT, drain) => {}
        _ = shutting_down => {}
    }
}

// === impl ConnState ===

/// What a connection is doing, for the watchdog.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for a request head (the first one, or after the first byte of the next one)
    /// since then.
    Head(Instant),
    /// No request in flight since then.
    Idle(Instant),
    /// At least one request in flight.
    Busy,
}

/// Which protocol the client speaks, from its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Proto {
    /// This many bytes matched the HTTP/2 preface so far.
    Unknown(usize),
    Http1,
    Http2,
}

const H2_PREFACE_START: &[u8] = b"PRI * HTTP/2.0";

#[derive(Debug)]
struct Shared {
    phase: Phase,
    in_flight: usize,
    proto: Proto,
    /// A request body was dropped before its end: close lingering.
    unread_body: bool,
}

/// A connection's state, shared by its IO, its requests and its watchdog.
#[derive(Debug)]
struct ConnState {
    shared: Mutex<Shared>,
    changed: Notify,
}

impl ConnState {
    fn new() -> Self {
        ConnState {
            shared: Mutex::new(Shared {
                phase: Phase::Head(Instant::now()),
                in_flight: 0,
                proto: Proto::Unknown(0),
                unread_body: false,
            }),
            changed: Notify::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn busy(&self) -> bool {
        self.lock().in_flight > 0
    }

    /// Bytes arrived from the client.
    fn on_bytes(&self, data: &[u8]) {
        let mut s = self.lock();
        let mut changed = false;
        if let Proto::Unknown(mut matched) = s.proto {
            for &b in data {
                if H2_PREFACE_START.get(matched) == Some(&b) {
                    matched += 1;
                    if matched == H2_PREFACE_START.len() {
                        break;
                    }
                } else {
                    matched = usize::MAX;
                    break;
                }
            }
            s.proto = match matched {
                usize::MAX => Proto::Http1,
                n if n == H2_PREFACE_START.len() => {
                    // HTTP/2 frames are no request heads: wait for requests as idle.
                    if matches!(s.phase, Phase::Head(_)) {
                        s.phase = Phase::Idle(Instant::now());
                        changed = true;
                    }
                    Proto::Http2
                }
                n => Proto::Unknown(n),
            };
        }
        if s.proto == Proto::Http1 && matches!(s.phase, Phase::Idle(_)) {
            s.phase = Phase::Head(Instant::now());
            changed = true;
        }
        drop(s);
        if changed {
            self.changed.notify_waiters();
        }
    }

    fn request_started(self: &Arc<Self>) -> RequestGuard {
        {
            let mut s = self.lock();
            s.in_flight += 1;
            s.phase = Phase::Busy;
            s.unread_body = false;
        }
        self.changed.notify_waiters();
        RequestGuard(self.clone())
    }

    fn request_ended(&self) {
        {
            let mut s = self.lock();
            s.in_flight = s.in_flight.saturating_sub(1);
            if s.in_flight == 0 {
                s.phase = Phase::Idle(Instant::now());
            }
        }
        self.changed.notify_waiters();
    }

    fn body_unread(&self) {
        self.lock().unread_body = true;
    }

    fn wants_linger(&self) -> bool {
        self.lock().unread_body
    }

    /// Resolves when the connection has waited too long for a request head, or idled too long.
    async fn expired(&self, limits: &Limits) -> Expiry {
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let phase = self.lock().phase;
            let deadline = match phase {
                Phase::Head(since) => limits
                    .read_header_timeout
                    .map(|d| (since + d, Expiry::Header)),
                Phase::Idle(since) => limits.idle_timeout.map(|d| (since + d, Expiry::Idle)),
                Phase::Busy => None,
            };
            match deadline {
                None => notified.await,
                Some((at, expiry)) => {
                    tokio::select! {
                        _ = notified => {}
                        _ = sleep_until(at) => {
                            if self.lock().phase == phase {
                                return expiry;
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Counts a request in flight until its response body is dropped.
struct RequestGuard(Arc<ConnState>);

impl Drop for RequestGuard {
    fn drop(&mut self) {
        self.0.request_ended();
    }
}

// === impl Watched ===

/// The connection's IO: tells [`ConnState`] when bytes arrive, and on drop hands the stream over
/// for a lingering close when a request body was left unread.
struct Watched<S> {
    inner: Option<S>,
    state: Arc<ConnState>,
    linger: Option<oneshot::Sender<S>>,
}

fn gone() -> io::Error {
    io::Error::new(io::ErrorKind::NotConnected, "connection already closed")
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let Some(inner) = this.inner.as_mut() else {
            return Poll::Ready(Err(gone()));
        };
        let before = buf.filled().len();
        ready!(Pin::new(inner).poll_read(cx, buf))?;
        let new = &buf.filled()[before..];
        if !new.is_empty() {
            this.state.on_bytes(new);
        }
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut().inner.as_mut() {
            Some(s) => Pin::new(s).poll_write(cx, buf),
            None => Poll::Ready(Err(gone())),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut().inner.as_mut() {
            Some(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            None => Poll::Ready(Err(gone())),
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.as_ref().is_some_and(|s| s.is_write_vectored())
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut().inner.as_mut() {
            Some(s) => Pin::new(s).poll_flush(cx),
            None => Poll::Ready(Err(gone())),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut().inner.as_mut() {
            Some(s) => Pin::new(s).poll_shutdown(cx),
            None => Poll::Ready(Err(gone())),
        }
    }
}

impl<S> Drop for Watched<S> {
    fn drop(&mut self) {
        if self.state.wants_linger() {
            if let (Some(io), Some(tx)) = (self.inner.take(), self.linger.take()) {
                let _ = tx.send(io);
            }
        }
    }
}

// === impl RequestService ===

/// Per connection: counts requests in flight, bounds body reads, answers `408` when a body
/// timed out.
#[derive(Clone)]
struct RequestService {
    app: axum::Router,
    state: Arc<ConnState>,
    read_timeout: Option<Duration>,
}

impl hyper::service::Service<Request<Incoming>> for RequestService {
    type Response = Response<Tracked>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn call(&self, req: Request<Incoming>) -> Self::Future {
        let guard = self.state.request_started();
        let timed_out = Arc::new(AtomicBool::new(false));
        let http1 = req.version() < Version::HTTP_2;
        let read_timeout = self.read_timeout;
        let state = self.state.clone();
        let flag = timed_out.clone();
        let req = req.map(move |body| TimedBody {
            inner: body,
            deadline: read_timeout.map(|d| Box::pin(tokio::time::sleep(d))),
            timeout: read_timeout.unwrap_or_default(),
            timed_out: flag,
            state,
            finished: false,
        });
        let mut app = self.app.clone();
        Box::pin(async move {
            let response = match app.call(req).await {
                Ok(r) => r,
                Err(never) => match never {},
            };
            let response = if timed_out.load(Ordering::Acquire) {
                request_timeout(read_timeout.unwrap_or_default(), http1)
            } else {
                response
            };
            Ok(response.map(|body| Tracked {
                inner: body,
                _guard: guard,
            }))
        })
    }
}

/// `408`: the body did not arrive in time.
fn request_timeout(after: Duration, http1: bool) -> Response {
    let mut response = (
        StatusCode::REQUEST_TIMEOUT,
        [(
            CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        )],
        format!(
            "the request body was not received within {}; send it faster or raise `read_timeout`\n",
            humanize(after)
        ),
    )
        .into_response();
    if http1 {
        response
            .headers_mut()
            .insert(CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

fn humanize(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

/// Why a request body could not be read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum BodyError {
    #[error("cannot read the request body: {0}")]
    Read(#[source] hyper::Error),
    #[error("the request body was not received within `read_timeout` ({})", humanize(*.0))]
    TimedOut(Duration),
}

/// A request body with a deadline; records whether it was read to its end.
struct TimedBody {
    inner: Incoming,
    deadline: Option<Pin<Box<Sleep>>>,
    timeout: Duration,
    timed_out: Arc<AtomicBool>,
    state: Arc<ConnState>,
    finished: bool,
}

impl Body for TimedBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = self.get_mut();
        if this.finished {
            return Poll::Ready(None);
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(None) => {
                this.finished = true;
                Poll::Ready(None)
            }
            Poll::Ready(Some(Ok(frame))) => Poll::Ready(Some(Ok(frame))),
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(BodyError::Read(e)))),
            Poll::Pending => {
                let expired = this
                    .deadline
                    .as_mut()
                    .is_some_and(|d| d.as_mut().poll(cx).is_ready());
                if expired {
                    this.timed_out.store(true, Ordering::Release);
                    this.deadline = None;
                    Poll::Ready(Some(Err(BodyError::TimedOut(this.timeout))))
                } else {
                    Poll::Pending
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.finished || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for TimedBody {
    fn drop(&mut self) {
        if !self.is_end_stream() {
            self.state.body_unread();
        }
    }
}

/// A response body that keeps its request counted in flight until it is sent (or dropped).
struct Tracked {
    inner: axum::body::Body,
    _guard: RequestGuard,
}

impl Body for Tracked {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.get_mut().inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

// === impl LimitedIncoming ===

/// A tonic incoming stream with at most `max` connections open at once: each connection holds a
/// permit until tonic drops it, and at the cap the inner stream is not polled, so new
/// connections wait (in the kernel's listen backlog for `TcpIncoming`; for
/// [`crate::tls::TlsIncoming`], up to its handshake queue first). A connection that sends
/// nothing within [`PREFACE_TIMEOUT`] is closed.
pub(crate) struct LimitedIncoming<I> {
    inner: I,
    permits: PollSemaphore,
    next: Option<OwnedSemaphorePermit>,
}

impl<I> LimitedIncoming<I> {
    pub(crate) fn new(inner: I, max_connections: usize) -> Self {
        LimitedIncoming {
            inner,
            permits: PollSemaphore::new(Arc::new(Semaphore::new(max_connections.max(1)))),
            next: None,
        }
    }

    /// Connections that can still be opened before the cap.
    #[cfg(test)]
    pub(crate) fn available(&self) -> usize {
        self.permits.available_permits()
    }
}

impl<I, IO, E> futures::Stream for LimitedIncoming<I>
where
    I: futures::Stream<Item = Result<IO, E>> + Unpin,
{
    type Item = Result<Limited<IO>, E>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.next.is_none() {
            match ready!(this.permits.poll_acquire(cx)) {
                Some(p) => this.next = Some(p),
                None => return Poll::Ready(None),
            }
        }
        match ready!(Pin::new(&mut this.inner).poll_next(cx)) {
            Some(Ok(io)) => match this.next.take() {
                Some(permit) => Poll::Ready(Some(Ok(Limited {
                    inner: io,
                    _permit: permit,
                    preface: Some(Box::pin(tokio::time::sleep(PREFACE_TIMEOUT))),
                }))),
                None => Poll::Ready(None),
            },
            Some(Err(e)) => Poll::Ready(Some(Err(e))),
            None => Poll::Ready(None),
        }
    }
}

/// A connection from [`LimitedIncoming`]: frees its slot when dropped.
pub(crate) struct Limited<IO> {
    inner: IO,
    _permit: OwnedSemaphorePermit,
    /// Until the first bytes arrive.
    preface: Option<Pin<Box<Sleep>>>,
}

impl<IO: AsyncRead + Unpin> AsyncRead for Limited<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(r) => {
                if buf.filled().len() > before {
                    this.preface = None;
                }
                Poll::Ready(r)
            }
            Poll::Pending => {
                let expired = this
                    .preface
                    .as_mut()
                    .is_some_and(|t| t.as_mut().poll(cx).is_ready());
                if expired {
                    Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "the client sent nothing after connecting",
                    )))
                } else {
                    Poll::Pending
                }
            }
        }
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Limited<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

impl<IO: tonic::transport::server::Connected> tonic::transport::server::Connected for Limited<IO> {
    type ConnectInfo = IO::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.inner.connect_info()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use axum::routing::post;
    use http_body_util::BodyExt;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Bodies larger than this get `413` from the test handler.
    const LIMIT: usize = 64 * 1024;
    /// Only a hang guard: no test waits for it unless the code under test is broken.
    const HANG_GUARD: Duration = Duration::from_secs(600);

    /// `POST /echo` reads the body (at most [`LIMIT`] bytes, as the receivers' handlers do) and
    /// answers `200 got N`; `POST /wait` answers once `release` is notified.
    fn app(release: Arc<Notify>) -> axum::Router {
        axum::Router::new()
            .route(
                "/echo",
                post(|body: axum::body::Body| async move {
                    let mut body = body;
                    let mut n = 0;
                    while let Some(frame) = body.frame().await {
                        let Ok(frame) = frame else {
                            return (StatusCode::BAD_REQUEST, "cannot read the body".to_owned());
                        };
                        n += frame.data_ref().map_or(0, |d| d.len());
                        if n > LIMIT {
                            return (StatusCode::PAYLOAD_TOO_LARGE, "too large".to_owned());
                        }
                    }
                    (StatusCode::OK, format!("got {n}"))
                }),
            )
            .route(
                "/wait",
                post(move || async move {
                    release.notified().await;
                    "released"
                }),
            )
    }

    struct Server {
        addr: SocketAddr,
        shutdown: CancellationToken,
        task: tokio::task::JoinHandle<()>,
        release: Arc<Notify>,
    }

    impl Server {
        async fn start(limits: Limits) -> Self {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let shutdown = CancellationToken::new();
            let release = Arc::new(Notify::new());
            let task = tokio::spawn(serve_http(
                listener,
                None,
                app(release.clone()),
                limits,
                shutdown.clone(),
            ));
            Server {
                addr,
                shutdown,
                task,
                release,
            }
        }

        async fn connect(&self) -> TcpStream {
            TcpStream::connect(self.addr).await.unwrap()
        }

        async fn stop(self) {
            self.shutdown.cancel();
            tokio::time::timeout(HANG_GUARD, self.task)
                .await
                .expect("serve_http must return after shutdown")
                .unwrap();
        }
    }

    fn request(path: &str, body: &str) -> String {
        format!(
            "POST {path} HTTP/1.1\r\nhost: test\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        )
    }

    /// Reads one response (head and `content-length` body); what arrived before EOF otherwise.
    async fn read_response(s: &mut TcpStream) -> String {
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let text = String::from_utf8_lossy(&got).into_owned();
            if let Some(end) = text.find("\r\n\r\n") {
                let len = text[..end]
                    .lines()
                    .find_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        k.eq_ignore_ascii_case("content-length")
                            .then(|| v.trim().parse::<usize>().ok())?
                    })
                    .unwrap_or(0);
                if got.len() >= end + 4 + len {
                    return text;
                }
            }
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return text,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    }

    /// Whether the server closed the connection (EOF or reset) rather than answering.
    async fn closed_without_answer(s: &mut TcpStream) -> bool {
        let mut rest = Vec::new();
        match tokio::time::timeout(HANG_GUARD, s.read_to_end(&mut rest)).await {
            Ok(Ok(_)) => rest.is_empty(),
            Ok(Err(_)) => true,
            Err(_) => false,
        }
    }

    async fn ok_request(server: &Server) {
        let mut s = server.connect().await;
        s.write_all(request("/echo", "hello").as_bytes())
            .await
            .unwrap();
        let res = tokio::time::timeout(HANG_GUARD, read_response(&mut s))
            .await
            .unwrap();
        assert!(res.starts_with("HTTP/1.1 200"), "{res}");
        assert!(res.ends_with("got 5"), "{res}");
    }

    #[test]
    fn zero_turns_a_timeout_off() {
        let l = Limits::new(Duration::ZERO, Duration::from_secs(1), Duration::ZERO, 0);
        assert_eq!(l.read_header_timeout, None);
        assert_eq!(l.read_timeout, Some(Duration::from_secs(1)));
        assert_eq!(l.idle_timeout, None);
        assert_eq!(l.max_connections, 1);
        let d = Limits::default();
        assert_eq!(d.read_header_timeout, Some(Duration::from_secs(10)));
        assert_eq!(d.read_timeout, Some(Duration::from_secs(30)));
        assert_eq!(d.idle_timeout, Some(Duration::from_secs(60)));
        assert_eq!(d.max_connections, 1024);
    }

    #[test]
    fn turned_off_timeouts_are_warned_about() {
        let mut v = authwatch_core::Validator::new("");
        validate_http_limits(
            &mut v,
            "http",
            Duration::ZERO,
            Duration::ZERO,
            Duration::ZERO,
        );
        let (errors, warnings) = v.into_parts();
        assert!(errors.is_empty());
        let paths: Vec<String> = warnings
            .iter()
            .map(|w| {
                w.to_string()
                    .split(':')
                    .next()
                    .unwrap_or_default()
                    .to_owned()
            })
            .collect();
        assert_eq!(
            paths,
            ["http", "http", "http"],
            "{warnings:?}" // "http::read_header_timeout: ..." splits at the first ':'
        );
        let text: Vec<String> = warnings.iter().map(ToString::to_string).collect();
        assert!(
            text[0].starts_with("http::read_header_timeout: is 0"),
            "{text:?}"
        );
        assert!(text[1].starts_with("http::read_timeout: is 0"), "{text:?}");
        assert!(text[2].starts_with("http::idle_timeout: is 0"), "{text:?}");
        let mut v = authwatch_core::Validator::new("");
        let d = Limits::default();
        validate_http_limits(
            &mut v,
            "",
            d.read_header_timeout.unwrap(),
            d.read_timeout.unwrap(),
            d.idle_timeout.unwrap(),
        );
        assert!(v.into_parts().1.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn headers_sent_byte_by_byte_are_cut_off() {
        let server = Server::start(Limits::default()).await;
        let mut slow = server.connect().await;
        // One byte a second: the 10 s `read_header_timeout` passes long before the head ends.
        for b in request("/echo", "hello").bytes() {
            if slow.write_all(&[b]).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        assert!(
            closed_without_answer(&mut slow).await,
            "a client sending its head slowly must be cut off, not answered"
        );
        // The server goes on serving others.
        ok_request(&server).await;
        server.stop().await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_client_that_sends_nothing_is_cut_off() {
        let server = Server::start(Limits::default()).await;
        let mut silent = server.connect().await;
        assert!(closed_without_answer(&mut silent).await);
        server.stop().await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_body_gets_408_while_others_are_served() {
        let server = Server::start(Limits::default()).await;
        let mut slow = server.connect().await;
        slow.write_all(
            b"POST /echo HTTP/1.1\r\nhost: test\r\ncontent-length: 100\r\n\r\nonly ten b",
        )
        .await
        .unwrap();
        // Meanwhile another client is served.
        ok_request(&server).await;
        ok_request(&server).await;
        let res = tokio::time::timeout(HANG_GUARD, read_response(&mut slow))
            .await
            .unwrap();
        assert!(res.starts_with("HTTP/1.1 408"), "{res}");
        assert!(
            res.to_ascii_lowercase().contains("connection: close"),
            "{res}"
        );
        assert!(res.contains("raise `read_timeout`"), "{res}");
        assert!(closed_without_answer(&mut slow).await);
        server.stop().await;
    }

    #[tokio::test(start_paused = true)]
    async fn the_connection_cap_holds_and_frees_on_close() {
        let limits = Limits {
            max_connections: 2,
            ..Limits::default()
        };
        let server = Server::start(limits).await;
        // Two keep-alive connections, each served once, fill the cap.
        let mut open = Vec::new();
        for _ in 0..2 {
            let mut s = server.connect().await;
            s.write_all(request("/echo", "hi").as_bytes())
                .await
                .unwrap();
            let res = read_response(&mut s).await;
            assert!(res.starts_with("HTTP/1.1 200"), "{res}");
            open.push(s);
        }
        // The third connects (kernel backlog) but is not served while both are open.
        let mut third = server.connect().await;
        third
            .write_all(request("/echo", "third").as_bytes())
            .await
            .unwrap();
        let early = tokio::time::timeout(Duration::from_secs(5), read_response(&mut third)).await;
        assert!(early.is_err(), "served beyond the cap: {early:?}");
        // Closing one lets it in.
        drop(open.pop());
        let res = tokio::time::timeout(HANG_GUARD, read_response(&mut third))
            .await
            .unwrap();
        assert!(res.starts_with("HTTP/1.1 200"), "{res}");
        assert!(res.ends_with("got 5"), "{res}");
        drop(open);
        server.stop().await;
    }

    #[tokio::test(start_paused = true)]
    async fn idle_keep_alive_connections_close_after_idle_timeout_not_header_timeout() {
        let server = Server::start(Limits::default()).await;
        let mut s = server.connect().await;
        s.write_all(request("/echo", "hi").as_bytes())
            .await
            .unwrap();
        let res = read_response(&mut s).await;
        assert!(res.starts_with("HTTP/1.1 200"), "{res}");
        // Past `read_header_timeout` (10 s) but within `idle_timeout` (60 s): still open and
        // usable.
        tokio::time::sleep(Duration::from_secs(30)).await;
        s.write_all(request("/echo", "again").as_bytes())
            .await
            .unwrap();
        let res = read_response(&mut s).await;
        assert!(res.ends_with("got 5"), "{res}");
        // Then idle: closed.
        assert!(closed_without_answer(&mut s).await);
        server.stop().await;
    }

    /// A client that writes its whole (oversized, chunked) body before reading still reads
    /// the `413`: the server drains instead of resetting the connection.
    #[tokio::test]
    async fn an_oversized_chunked_body_gets_a_readable_413_raw() {
        let server = Server::start(Limits::default()).await;
        let mut s = server.connect().await;
        s.write_all(b"POST /echo HTTP/1.1\r\nhost: test\r\ntransfer-encoding: chunked\r\n\r\n")
            .await
            .unwrap();
        // 1 MiB in 64 KiB chunks, paced so that the client is still writing when the server
        // has answered: a server that closed without draining resets the connection, and a
        // write fails.
        let chunk = vec![b'x'; 64 * 1024];
        for _ in 0..16 {
            let mut wire = format!("{:x}\r\n", chunk.len()).into_bytes();
            wire.extend_from_slice(&chunk);
            wire.extend_from_slice(b"\r\n");
            tokio::time::timeout(HANG_GUARD, s.write_all(&wire))
                .await
                .unwrap()
                .expect("the server must read (and drop) the rest instead of resetting");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        s.write_all(b"0\r\n\r\n").await.unwrap();
        let res = tokio::time::timeout(HANG_GUARD, read_response(&mut s))
            .await
            .unwrap();
        assert!(res.starts_with("HTTP/1.1 413"), "{res}");
        assert!(res.ends_with("too large"), "{res}");
        server.stop().await;
    }

    /// The same with a real HTTP client streaming the body.
    #[tokio::test]
    async fn an_oversized_chunked_body_gets_a_readable_413_hyper_client() {
        let server = Server::start(Limits::default()).await;
        let tcp = server.connect().await;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
            .await
            .unwrap();
        let conn = tokio::spawn(conn);
        let chunks = futures::stream::iter(
            (0..64).map(|_| Ok::<_, Infallible>(Frame::data(Bytes::from(vec![b'x'; 16 * 1024])))),
        );
        let req = Request::post("/echo")
            .header("host", "test")
            .body(http_body_util::StreamBody::new(chunks))
            .unwrap();
        let res = tokio::time::timeout(HANG_GUARD, sender.send_request(req))
            .await
            .unwrap()
            .expect("the client must read the answer, not a reset");
        assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
        let body = res.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], b"too large");
        drop(sender);
        let _ = tokio::time::timeout(HANG_GUARD, conn).await;
        server.stop().await;
    }

    #[tokio::test]
    async fn shutdown_answers_requests_in_flight() {
        let server = Server::start(Limits::default()).await;
        let mut s = server.connect().await;
        s.write_all(request("/wait", "").as_bytes()).await.unwrap();
        // Wait until the request is in the handler, then shut down.
        tokio::task::yield_now().await;
        let mut idle = server.connect().await;
        idle.write_all(request("/echo", "x").as_bytes())
            .await
            .unwrap();
        let _ = read_response(&mut idle).await;
        server.shutdown.cancel();
        // The idle keep-alive connection is closed...
        assert!(closed_without_answer(&mut idle).await);
        // ...the one in flight is answered.
        server.release.notify_waiters();
        let res = tokio::time::timeout(HANG_GUARD, read_response(&mut s))
            .await
            .unwrap();
        assert!(res.starts_with("HTTP/1.1 200"), "{res}");
        assert!(res.ends_with("released"), "{res}");
        tokio::time::timeout(HANG_GUARD, server.task)
            .await
            .expect("serve_http must return once the request is answered")
            .unwrap();
    }
}
