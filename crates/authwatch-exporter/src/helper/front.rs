//! What takes an exporter's data: the sending queue ([`QueuedConsumer`]: converts the data
//! once to the form the sender wants and queues it) or, with the queue disabled, a send the
//! caller waits for ([`SyncConsumer`]). Both are pipeline consumers for signals and
//! [`Enqueue`] handles for other items.

use std::sync::Arc;

use authwatch_core::telemetry::ExporterTelemetry;
use authwatch_core::{
    Backlog, ComponentId, ConsumeError, Consumer, PermanentError, Running, Signal,
};
use futures::future::BoxFuture;
use tokio_util::sync::CancellationToken;
use tracing::error;

use super::{
    update_gauges, Enqueue, Exporter, ItemSender, PushError, Queue, QueueItem, RateLimit, Retry,
};

/// What takes an exporter's data: a send the caller waits for, or the sending queue and the task
/// that drains it.
// Made once per exporter and unpacked at once: its size does not matter.
#[allow(clippy::large_enum_variant)]
pub(super) enum Front<S: ItemSender> {
    Sync(SyncConsumer<S>),
    Queued(QueuedConsumer<S::Item>, Running),
}

// === impl QueuedConsumer ===

pub(super) struct QueuedConsumer<T> {
    /// Queue requests encoded (the sender writes protobuf), else decoded.
    pub(super) encoded: bool,
    pub(super) queue: Arc<dyn Queue<T>>,
    pub(super) block: bool,
    pub(super) shutdown: CancellationToken,
    pub(super) telemetry: ExporterTelemetry,
    pub(super) id: ComponentId,
    pub(super) storage_warn: RateLimit,
}

impl Consumer for QueuedConsumer<Signal> {
    fn wants_encoded(&self) -> bool {
        self.encoded
    }

    fn consume(&self, data: Signal) -> BoxFuture<'_, Result<(), ConsumeError>> {
        Box::pin(self.push(data))
    }

    fn room(&self) -> BoxFuture<'_, ()> {
        self.queue.room()
    }

    fn backlog(&self) -> Backlog {
        self.queue.backlog()
    }
}

impl<T: QueueItem> Enqueue<T> for QueuedConsumer<T> {
    fn enqueue(&self, item: T) -> BoxFuture<'_, Result<(), ConsumeError>> {
        Box::pin(self.push(item))
    }
}

impl<T: QueueItem> QueuedConsumer<T> {
    async fn push(&self, data: T) -> Result<(), ConsumeError> {
        let kind = data.kind();
        let items = data.item_count();
        if self.shutdown.is_cancelled() {
            self.telemetry.enqueue_failed(kind, items);
            return Err(ConsumeError::Closed);
        }
        // Converted once here, so that every retry reuses the form the sender wants.
        let data = match data.into_form(self.encoded) {
            Ok(d) => d,
            Err(e) => {
                self.telemetry.enqueue_failed(kind, items);
                return Err(e);
            }
        };
        let pushed = tokio::select! {
            r = self.queue.push(data, self.block) => r,
            _ = self.shutdown.cancelled() => Err(PushError::Closed),
        };
        update_gauges(&self.telemetry, self.queue.as_ref());
        match pushed {
            Ok(()) => Ok(()),
            Err(e) => {
                self.telemetry.enqueue_failed(kind, items);
                Err(match e {
                    PushError::Full => ConsumeError::Full,
                    PushError::Closed => ConsumeError::Closed,
                    PushError::TooLarge(_) => PermanentError::refused(e).into(),
                    PushError::Storage(message) => {
                        if let Some(suppressed) = self.storage_warn.check() {
                            error!(
                                exporter = %self.id, error = %message, suppressed,
                                "Refused data: the persistent sending queue cannot store it."
                            );
                        }
                        ConsumeError::Full
                    }
                })
            }
        }
    }
}

// === impl SyncConsumer ===

pub(super) struct SyncConsumer<S> {
    pub(super) exporter: Arc<Exporter<S>>,
    pub(super) shutdown: CancellationToken,
}

impl<S: ItemSender<Item = Signal>> Consumer for SyncConsumer<S> {
    fn wants_encoded(&self) -> bool {
        S::ENCODED
    }

    fn consume(&self, data: Signal) -> BoxFuture<'_, Result<(), ConsumeError>> {
        Box::pin(self.send(data))
    }
}

impl<S: ItemSender> Enqueue<S::Item> for SyncConsumer<S> {
    fn enqueue(&self, item: S::Item) -> BoxFuture<'_, Result<(), ConsumeError>> {
        Box::pin(self.send(item))
    }
}

impl<S: ItemSender> SyncConsumer<S> {
    async fn send(&self, data: S::Item) -> Result<(), ConsumeError> {
        if self.shutdown.is_cancelled() {
            return Err(ConsumeError::Closed);
        }
        self.exporter
            .export(&data)
            .await
            .map_err(|g| match g.retry {
                Retry::No => PermanentError::Refused(g.error).into(),
                Retry::Yes => ConsumeError::Full,
                Retry::After(d) => ConsumeError::Throttled(d),
            })
    }
}
