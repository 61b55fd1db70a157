//! Per request: counts requests in flight for the connection's watchdog, bounds the time a
//! body may take (`read_timeout`) and answers `408` when it passed.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::header::{CONNECTION, CONTENT_TYPE};
use http::{HeaderValue, Request, StatusCode, Version};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use tokio::time::Sleep;
use tower::Service;

use super::conn::{ConnState, RequestGuard};

// === impl RequestService ===

/// Per connection: counts requests in flight, bounds body reads, answers `408` when a body
/// timed out.
#[derive(Clone)]
pub(super) struct RequestService {
    pub(super) app: axum::Router,
    pub(super) state: Arc<ConnState>,
    pub(super) read_timeout: Option<Duration>,
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
pub enum BodyError {
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
pub(super) struct Tracked {
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
