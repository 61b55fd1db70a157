//! What a sending queue carries. Most exporters queue [`Signal`]s and implement
//! [`Sender`]; an exporter that queues something else implements [`ItemSender`]
//! with its own [`QueueItem`] and builds through [`build_items`](super::build_items), which
//! hands back an [`Enqueue`] handle instead of a pipeline consumer. The `alertmanager` exporter
//! does this: its queue carries alert keys, and the sender looks up each alert's newest state
//! when it sends.
//!
//! Items other than signals are queued in memory only: the persistent queue stores signals.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use authwatch_core::{ConsumeError, Running, Signal, SignalKind};
use futures::future::BoxFuture;

use super::{ExportError, Sender, Sent};

/// An item of a sending queue: counted in the exporter's metrics under a signal, sized for the
/// queue's byte limit and the batcher, and merged when `sending_queue.batch` is set.
pub trait QueueItem: Clone + fmt::Debug + Send + Sync + 'static {
    /// The signal this item counts as in `exporter_sent_*`, `exporter_send_failed_*` and
    /// `exporter_enqueue_failed_*`.
    fn kind(&self) -> SignalKind;
    /// Items counted (spans, points, records; alert keys count as log records).
    fn item_count(&self) -> usize;
    /// Bytes, for `max_size_mib` and the `bytes` sizer.
    fn encoded_size(&self) -> usize;
    /// One item holding every part, in order (all parts are of one [`QueueItem::kind`]).
    fn merge(parts: Vec<Self>) -> Self;
    /// This item in the form a sender wants (`encoded`: protobuf bytes; see
    /// [`ItemSender::ENCODED`]). Fails when it cannot be decoded.
    fn into_form(self, _encoded: bool) -> Result<Self, ConsumeError> {
        Ok(self)
    }
    /// [`QueueItem::into_form`], borrowed when the item already is in that form.
    fn in_form(&self, _encoded: bool) -> Result<Cow<'_, Self>, ConsumeError> {
        Ok(Cow::Borrowed(self))
    }
}

impl QueueItem for Signal {
    #[inline]
    fn kind(&self) -> SignalKind {
        Signal::kind(self)
    }

    #[inline]
    fn item_count(&self) -> usize {
        Signal::item_count(self)
    }

    #[inline]
    fn encoded_size(&self) -> usize {
        Signal::encoded_size(self)
    }

    fn merge(parts: Vec<Self>) -> Self {
        super::batch::merge(parts)
    }

    #[inline]
    fn into_form(self, encoded: bool) -> Result<Self, ConsumeError> {
        if encoded {
            Ok(self.into_encoded())
        } else {
            Ok(self.into_decoded()?)
        }
    }

    #[inline]
    fn in_form(&self, encoded: bool) -> Result<Cow<'_, Self>, ConsumeError> {
        match (encoded, self) {
            (true, Signal::Encoded(_)) => Ok(Cow::Borrowed(self)),
            (true, _) => Ok(Cow::Owned(self.clone().into_encoded())),
            (false, _) => Ok(self.decoded_ref()?),
        }
    }
}

/// How to send one queued item: [`Sender`] for any [`QueueItem`]. Every [`Sender`] is an
/// `ItemSender` of [`Signal`]s.
pub trait ItemSender: Send + Sync + 'static {
    type Item: QueueItem;
    type Error: ExportError;
    /// Whether `send_item` wants its items in encoded form (see [`QueueItem::into_form`]).
    const ENCODED: bool = false;
    /// Sends `item` once (the helper retries according to the error's
    /// [`ExportError::retry`]).
    fn send_item<'a>(&'a self, item: &'a Self::Item) -> BoxFuture<'a, Result<Sent, Self::Error>>;
}

impl<S: Sender> ItemSender for S {
    type Item = Signal;
    type Error = S::Error;
    const ENCODED: bool = S::ENCODED;

    #[inline]
    fn send_item<'a>(&'a self, item: &'a Signal) -> BoxFuture<'a, Result<Sent, S::Error>> {
        self.send(item)
    }
}

/// Where the owner of an exporter built by [`build_items`](super::build_items) puts items: the
/// sending queue, or, with the queue disabled, a send (retries included) that the caller waits
/// for. Errors are those a pipeline consumer would answer.
pub trait Enqueue<T>: Send + Sync + 'static {
    fn enqueue(&self, item: T) -> BoxFuture<'_, Result<(), ConsumeError>>;
}

/// A shared [`Enqueue`] handle.
pub type SharedEnqueue<T> = Arc<dyn Enqueue<T>>;

/// What [`build_items`](super::build_items) returns: where to put items, and the task that
/// sends them (none without a queue).
pub struct BuiltItems<T> {
    pub queue: SharedEnqueue<T>,
    pub task: Option<Running>,
}

#[cfg(test)]
#[path = "item_tests.rs"]
mod tests;
