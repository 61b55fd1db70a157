//! The connection cap of tonic's gRPC servers.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Sleep;
use tokio_util::sync::PollSemaphore;

use super::PREFACE_TIMEOUT;

// === impl LimitedIncoming ===

/// A tonic incoming stream with at most `max` connections open at once: each connection holds a
/// permit until tonic drops it, and at the cap the inner stream is not polled, so new
/// connections wait (in the kernel's listen backlog for `TcpIncoming`; for
/// [`TlsIncoming`](crate::tls::TlsIncoming), up to its handshake queue first). A connection that sends
/// nothing within [`PREFACE_TIMEOUT`] is closed.
pub struct LimitedIncoming<I> {
    inner: I,
    permits: PollSemaphore,
    next: Option<OwnedSemaphorePermit>,
}

impl<I> LimitedIncoming<I> {
    pub fn new(inner: I, max_connections: usize) -> Self {
        LimitedIncoming {
            inner,
            permits: PollSemaphore::new(Arc::new(Semaphore::new(max_connections.max(1)))),
            next: None,
        }
    }

    /// Connections that can still be opened before the cap.
    pub fn available(&self) -> usize {
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
pub struct Limited<IO> {
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
    use std::time::Duration;

    use futures::StreamExt;
    use tokio::io::AsyncReadExt;
    use tokio::net::{TcpListener, TcpStream};
    use tonic::transport::server::TcpIncoming;

    use super::*;

    const HANG_GUARD: Duration = Duration::from_secs(60);

    #[tokio::test]
    async fn connection_cap_holds_and_frees_on_close() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut incoming = LimitedIncoming::new(TcpIncoming::from(listener), 2);
        let _a = TcpStream::connect(addr).await.unwrap();
        let first = incoming.next().await.unwrap().unwrap();
        let _b = TcpStream::connect(addr).await.unwrap();
        let second = incoming.next().await.unwrap().unwrap();
        assert_eq!(incoming.available(), 0);
        // The third connection waits: the stream has no permit to hand it out with.
        let _c = TcpStream::connect(addr).await.unwrap();
        let waiting = tokio::time::timeout(Duration::from_millis(300), incoming.next()).await;
        assert!(waiting.is_err(), "a third connection was handed out");
        // Closing one frees its slot.
        drop(first);
        let third = tokio::time::timeout(HANG_GUARD, incoming.next())
            .await
            .expect("the waiting connection must be handed out once one closes");
        assert!(third.unwrap().is_ok());
        drop(second);
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_that_sends_nothing_fails_its_read_after_the_preface_timeout() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut incoming = LimitedIncoming::new(TcpIncoming::from(listener), 1);
        let _silent = TcpStream::connect(addr).await.unwrap();
        let mut conn = incoming.next().await.unwrap().unwrap();
        let mut buf = [0u8; 8];
        let read = tokio::time::timeout(PREFACE_TIMEOUT * 2, conn.read(&mut buf))
            .await
            .expect("the read must fail at the preface timeout");
        assert_eq!(read.unwrap_err().kind(), io::ErrorKind::TimedOut);
    }
}
