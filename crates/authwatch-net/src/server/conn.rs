//! One accepted HTTP connection: its watchdog (request-head and idle timers), graceful and
//! hard close, and the lingering close of a connection whose last request body was not read.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{ready, Context, Poll};

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{oneshot, Notify, OwnedSemaphorePermit, Semaphore};
use tokio::time::{sleep_until, Instant};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use super::request::RequestService;
use super::{Limits, CLOSE_GRACE, LINGER_MAX_BYTES, LINGER_TIMEOUT};

/// One accepted connection, holding its slot until it is closed.
pub(super) struct Connection {
    pub(super) app: axum::Router,
    pub(super) limits: Limits,
    pub(super) shutdown: CancellationToken,
    pub(super) peer: SocketAddr,
    pub(super) _permit: OwnedSemaphorePermit,
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
    pub(super) async fn serve_tls(
        self,
        acceptor: TlsAcceptor,
        handshakes: Arc<Semaphore>,
        tcp: TcpStream,
    ) {
        let shutdown = self.shutdown.clone();
        let handshake = async {
            let _slot = handshakes.acquire_owned().await.ok()?;
            crate::tls::server::handshake(&acceptor, tcp, self.peer).await
        };
        let tls = tokio::select! {
            _ = shutdown.cancelled() => return,
            t = handshake => t,
        };
        if let Some(tls) = tls {
            self.serve(tls).await;
        }
    }

    pub(super) async fn serve<S>(self, io: S)
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
pub(super) struct ConnState {
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

    pub(super) fn request_started(self: &Arc<Self>) -> RequestGuard {
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

    pub(super) fn body_unread(&self) {
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
pub(super) struct RequestGuard(Arc<ConnState>);

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
