//! A consumer that records what it receives and answers what the test tells it to.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use authwatch_core::{ConsumeError, Consumer, PermanentError, Signal, SignalKind};
use futures::future::BoxFuture;
use tokio::sync::Notify;

/// A refusal a test makes a consumer answer with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestRefusal(pub &'static str);

impl std::fmt::Display for TestRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for TestRefusal {}

/// A permanent refusal saying `why` (what a destination that will never take the data answers).
pub fn permanent(why: &'static str) -> ConsumeError {
    ConsumeError::Permanent(PermanentError::refused(TestRefusal(why)))
}

#[derive(Default)]
struct Inner {
    received: Mutex<Vec<Signal>>,
    answer: Mutex<Option<ConsumeError>>,
    notify: Notify,
    wants_encoded: bool,
    /// Takes live data (as the `alerts` connector does) and records it in `live`.
    takes_live: bool,
    live: Mutex<Vec<Signal>>,
}

/// Records every accepted [`Signal`]; refuses with the error set by [`Sink::fail_with`].
#[derive(Clone, Default)]
pub struct Sink {
    inner: Arc<Inner>,
}

impl Sink {
    pub fn new() -> Self {
        Self::default()
    }

    /// A sink that asks for [`Signal::Encoded`] data, as the OTLP exporters do.
    pub fn wanting_encoded() -> Self {
        Sink {
            inner: Arc::new(Inner {
                wants_encoded: true,
                ..Inner::default()
            }),
        }
    }

    /// A sink that takes live data (see `authwatch_core::consume`), as the `alerts` connector
    /// does; [`Sink::live_received`] returns it, apart from the normal lane's data.
    pub fn taking_live() -> Self {
        Sink {
            inner: Arc::new(Inner {
                takes_live: true,
                ..Inner::default()
            }),
        }
    }

    /// The live data received so far (only a [`Sink::taking_live`] gets any).
    pub fn live_received(&self) -> Vec<Signal> {
        self.inner.live.lock().unwrap().clone()
    }

    /// From now on, refuse everything with `err` (`None`: accept again).
    pub fn fail_with(&self, err: Option<ConsumeError>) {
        *self.inner.answer.lock().unwrap() = err;
    }

    pub fn received(&self) -> Vec<Signal> {
        self.inner.received.lock().unwrap().clone()
    }

    /// Items (spans, points, records) of `kind` received so far.
    pub fn item_count(&self, kind: SignalKind) -> usize {
        self.inner
            .received
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.kind() == kind)
            .map(Signal::item_count)
            .sum()
    }

    /// Waits until at least `n` items of `kind` arrived, or panics after `timeout`.
    pub async fn wait_for_items(&self, kind: SignalKind, n: usize, timeout: Duration) {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.inner.notify.notified();
            if self.item_count(kind) >= n {
                return;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                panic!(
                    "timed out waiting for {n} {kind} items; have {}",
                    self.item_count(kind)
                );
            }
        }
    }

    pub fn shared(&self) -> authwatch_core::SharedConsumer {
        Arc::new(self.clone())
    }
}

impl Consumer for Sink {
    fn wants_encoded(&self) -> bool {
        self.inner.wants_encoded
    }

    fn consume(&self, data: Signal) -> BoxFuture<'_, Result<(), ConsumeError>> {
        let answer = self.inner.answer.lock().unwrap().clone();
        if let Some(e) = answer {
            return Box::pin(async move { Err(e) });
        }
        self.inner.received.lock().unwrap().push(data);
        self.inner.notify.notify_waiters();
        Box::pin(async { Ok(()) })
    }

    fn takes_live(&self) -> bool {
        self.inner.takes_live
    }

    fn consume_live(&self, data: Signal) -> BoxFuture<'_, Result<(), ConsumeError>> {
        if self.inner.takes_live {
            self.inner.live.lock().unwrap().push(data);
            self.inner.notify.notify_waiters();
        }
        Box::pin(async { Ok(()) })
    }
}
