//! The consumer chain: receivers hand data to a [`Consumer`], processors wrap the next consumer,
//! a [`Fanout`] feeds several, a [`Router`] picks the pipeline by signal.
//!
//! ## The live lane
//!
//! Beside [`Consumer::consume`], the chain carries *live* data ([`Consumer::consume_live`]):
//! what a producer knows now, for the components that evaluate it in this process, not for
//! backends. The `error_rate` connector counts every span as it arrives but exports its metrics
//! every `metrics_flush_interval` (15 s), so as not to flood backends; on the live lane it sends
//! the series that changed within a fraction of a second, and the `alerts` connector evaluates
//! them at once. The `synthetic` and `statuspage` receivers send each run or poll on both lanes,
//! so that no `batch` timeout stands between a failed probe and its alert.
//!
//! - **Exporters never get live data.** The default `consume_live` drops it and the default
//!   [`Consumer::takes_live`] is false; only evaluators (the `alerts` connector) take it. A new
//!   exporter cannot flood its backend by forgetting something.
//! - **Processors pass it straight on**, with no queue and no batch ([`Fanout`] and [`Router`]
//!   hand it to the consumers that take it), and a producer sends it only when
//!   [`Router::takes_live_for`] says someone downstream reads it.
//! - **Live data previews the normal lane.** It holds the same series, attributes and
//!   timestamps as the normal lane's data (cumulative counters, whatever temporality is
//!   exported), so a point may arrive twice, once per lane, in either order. A live consumer
//!   reads points idempotently: a point not newer than the last one read of its series adds
//!   nothing.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;

use crate::signal::{DecodeError, Signal, SignalKind};

/// Why data was not accepted. Receivers map this to the wire (see each receiver's `status.rs`);
/// classification is by variant, never by message.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConsumeError {
    /// A bounded queue or channel is full: try again soon.
    #[error("pipeline is full, retry later")]
    Full,
    /// The component is shutting down.
    #[error("pipeline is shutting down")]
    Closed,
    /// Refused to protect the process (e.g. memory limit); retry after the hint.
    #[error("refused to protect the process, retry after {0:?}")]
    Throttled(Duration),
    /// No pipeline takes this signal from this receiver.
    #[error("no pipeline accepts {0} from this receiver")]
    NoPipeline(SignalKind),
    /// Refused for good: the data is bad, or its destination will never take it; retrying the
    /// same data will not help.
    #[error(transparent)]
    Permanent(#[from] PermanentError),
    /// A [`Fanout`] handed the data to several consumers and some of them refused it while
    /// others took it. A sender that retries sends the data again only to
    /// [`ConsumeError::retry_target`], never to the consumers that took it.
    #[error(transparent)]
    Partial(PartialRefusal),
}

impl From<DecodeError> for ConsumeError {
    fn from(e: DecodeError) -> Self {
        ConsumeError::Permanent(PermanentError::Decode(e))
    }
}

/// Why data was refused for good (see [`ConsumeError::Permanent`]).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PermanentError {
    /// Bytes that claimed to be a request did not decode.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// Bytes that claimed to be a request are not valid protobuf (found without decoding).
    #[error("{component} got a {kind} request that is not valid protobuf")]
    Malformed {
        component: &'static str,
        kind: SignalKind,
    },
    /// A component got a signal it does not take (a wiring bug the graph checks should catch).
    #[error("{component} takes {expected}, not {got}")]
    WrongSignal {
        component: &'static str,
        expected: SignalKind,
        got: SignalKind,
    },
    /// The destination refused the data for good, or can never take it (an exporter's own
    /// typed error, shared so that every consumer upstream can report it).
    #[error(transparent)]
    Refused(SharedError),
}

impl PermanentError {
    /// The destination refused the data for good; `error` says why.
    pub fn refused(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        PermanentError::Refused(SharedError::new(error))
    }
}

/// A typed error behind a reference count, so that [`ConsumeError`] stays `Clone`. Two are equal
/// when they are the same error or say the same thing.
#[derive(Debug, Clone)]
pub struct SharedError(pub Arc<dyn std::error::Error + Send + Sync>);

impl SharedError {
    pub fn new(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        SharedError(Arc::new(error))
    }
}

impl std::fmt::Display for SharedError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for SharedError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

impl PartialEq for SharedError {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0) || self.0.to_string() == other.0.to_string()
    }
}

impl ConsumeError {
    /// Whether the sender should try the same data again.
    pub fn is_retryable(&self) -> bool {
        match self {
            ConsumeError::Full | ConsumeError::Closed | ConsumeError::Throttled(_) => true,
            ConsumeError::Partial(p) => p.error.is_retryable(),
            _ => false,
        }
    }

    /// A retry hint for the sender, if any.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ConsumeError::Throttled(d) => Some(*d),
            ConsumeError::Full | ConsumeError::Closed => Some(Duration::from_secs(1)),
            ConsumeError::Partial(p) => p.error.retry_after(),
            _ => None,
        }
    }

    /// The refusal itself: for a [`ConsumeError::Partial`], the refusal of the consumers that
    /// refused (never itself `Partial`); what a receiver answers its client with.
    pub fn cause(&self) -> &ConsumeError {
        match self {
            ConsumeError::Partial(p) => &p.error,
            e => e,
        }
    }

    /// Where a retry of the data refused with this error goes, when `sent_to` (the consumer the
    /// data was handed to) is a [`Fanout`] whose other consumers took it: only to the consumers
    /// that refused. `None`: retry with `sent_to` itself. A partial refusal that came from
    /// further down (through a processor that changes the data) is not honoured here, since the
    /// data the sender holds is not the data that fanout saw.
    pub fn retry_target(&self, sent_to: &SharedConsumer) -> Option<SharedConsumer> {
        match self {
            ConsumeError::Partial(p) if p.origin == data_address(sent_to) => Some(p.rest.clone()),
            _ => None,
        }
    }
}

/// Some consumers of a [`Fanout`] took the data, others refused it (see
/// [`ConsumeError::Partial`]).
#[derive(Clone)]
pub struct PartialRefusal {
    /// The refusal the sender acts on: the first retryable refusal, if any.
    error: Box<ConsumeError>,
    /// Consumers that took the data, and consumers that refused it.
    accepted: usize,
    refused: usize,
    /// Only the consumers that refused with a retryable error (narrowed further when one of
    /// them is itself a fanout that took part of it).
    rest: SharedConsumer,
    /// The address of the fanout that answered, to tell whether the sender called it directly.
    origin: usize,
}

impl PartialRefusal {
    /// Consumers of the fanout that took the data.
    pub fn accepted(&self) -> usize {
        self.accepted
    }

    /// Consumers of the fanout that refused it.
    pub fn refused(&self) -> usize {
        self.refused
    }
}

impl std::fmt::Display for PartialRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} ({} of {} consumers refused the data)",
            self.error,
            self.refused,
            self.accepted + self.refused
        )
    }
}

impl std::fmt::Debug for PartialRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PartialRefusal")
            .field("error", &self.error)
            .field("accepted", &self.accepted)
            .field("refused", &self.refused)
            .finish_non_exhaustive()
    }
}

impl std::error::Error for PartialRefusal {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.error)
    }
}

impl PartialEq for PartialRefusal {
    fn eq(&self, other: &Self) -> bool {
        self.error == other.error
            && self.accepted == other.accepted
            && self.refused == other.refused
            && self.origin == other.origin
    }
}

/// The address of a consumer's data (what `&self` points to inside its `consume`). A fanout
/// exists only in the allocation [`Fanout::of`] makes (its fields are private), so while the
/// sender holds that `Arc`, no other consumer has its address.
fn data_address(c: &SharedConsumer) -> usize {
    Arc::as_ptr(c) as *const () as usize
}

/// Something that takes pipeline data: a processor, a fanout, an exporter's queue, a connector.
///
/// `consume` returns once the data has been accepted (handed on, queued) or refused. Once it has
/// returned `Ok`, the data is the consumer's responsibility.
pub trait Consumer: Send + Sync + 'static {
    fn consume(&self, data: Signal) -> BoxFuture<'_, Result<(), ConsumeError>>;

    /// Whether this consumer would rather get [`Signal::Encoded`] data: true for the OTLP
    /// exporters (they write the bytes as they are) and for what only passes data on to them.
    /// Producers use it to skip a decode or an encode; every consumer must still take both forms.
    fn wants_encoded(&self) -> bool {
        false
    }

    /// Takes live data (see [the live lane](self#the-live-lane)). The default drops it: only
    /// components that evaluate data in this process, and those that pass data on to them,
    /// override it. Processors hand it to the next consumer's `consume_live` at once.
    fn consume_live(&self, data: Signal) -> BoxFuture<'_, Result<(), ConsumeError>> {
        drop(data);
        Box::pin(std::future::ready(Ok(())))
    }

    /// Whether this consumer, or one it passes data to, reads live data. Producers skip
    /// building live data nobody reads.
    fn takes_live(&self) -> bool {
        false
    }

    /// Resolves when this consumer, having refused with [`ConsumeError::Full`], may have room
    /// again (a sending queue: when a sender took a request from it). A sender that retries
    /// (the `batch` processor) waits for this *or* its backoff, whichever comes first, so that
    /// a full queue is refilled as soon as it drains instead of after a backoff that grows
    /// while the exporter idles. The default never resolves: a consumer that cannot tell
    /// leaves the retry to the backoff. It may resolve spuriously; the retry then finds out.
    fn room(&self) -> BoxFuture<'_, ()> {
        Box::pin(std::future::pending())
    }

    /// Whether data handed now would wait ([`Backlog`]): receivers ask it before reading a
    /// request's body, so that a backed-up pipeline costs neither a read nor a long wait of the
    /// requests they admitted. Cheap: an atomic load or an uncontended lock. The default is
    /// [`Backlog::Clear`]; processors ask the next consumer.
    fn backlog(&self) -> Backlog {
        Backlog::Clear
    }
}

pub type SharedConsumer = Arc<dyn Consumer>;

/// How backed up a consumer is ([`Consumer::backlog`]), from the least to the most.
///
/// An exporter's sending queue reports it from what it holds; the processors in front of it
/// pass it on. The `otlp` receiver refuses every request before reading its body while its
/// pipeline is `Full`, so that a backed-up pipeline costs no read and the requests it did admit
/// do not wait for room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Backlog {
    /// There is room: data handed now goes in.
    Clear,
    /// Data handed now would wait for room: a sending queue at least half full, or a `batch`
    /// processor retrying a batch the next component refused.
    Full,
}

/// Feeds the same data to several consumers (pipelines sharing a receiver, pipelines with
/// several exporters). Every consumer is tried once, in order.
///
/// Every consumer counted once: when all of them take the data, `Ok`; when none takes it and
/// every refusal is retryable, the first refusal as it is (a retry of the whole fanout then goes
/// only to consumers that refused). Otherwise, when some consumer refused with a retryable
/// error, [`ConsumeError::Partial`]: a sender that retries (the `batch` processor) retries only
/// the consumers that refused retryably ([`ConsumeError::retry_target`]), never those that took
/// the data nor those that refused it for good. When every refusal is permanent, the first one.
/// The Collector's fanout consumer returns the combined error and the sender retries every
/// consumer, so the ones that took the data see it again; this one does not.
pub struct Fanout {
    consumers: Vec<SharedConsumer>,
}

impl Fanout {
    /// One consumer needs no fanout: it is returned as is.
    pub fn of(mut consumers: Vec<SharedConsumer>) -> SharedConsumer {
        if consumers.len() == 1 {
            return consumers.pop().expect("one consumer");
        }
        Arc::new(Fanout { consumers })
    }
}

impl Consumer for Fanout {
    fn wants_encoded(&self) -> bool {
        self.consumers.iter().all(|c| c.wants_encoded())
    }

    /// Consumers that want bytes share one encoding (a reference count each); the others get
    /// the data as it came, the last of them the original and the rest copies.
    fn consume(&self, data: Signal) -> BoxFuture<'_, Result<(), ConsumeError>> {
        Box::pin(async move {
            let wants: Vec<bool> = self.consumers.iter().map(|c| c.wants_encoded()).collect();
            let encoded = match &data {
                Signal::Encoded(e) => Some(e.clone()),
                _ if wants.contains(&true) => Some(data.to_encoded()),
                _ => None,
            };
            let last_as_is = wants.iter().rposition(|w| !w);
            let mut data = Some(data);
            let mut accepted = 0;
            let mut refused = 0;
            // Consumers to retry (narrowed when one of them is a fanout that took part of it).
            let mut retry: Vec<SharedConsumer> = Vec::new();
            let mut narrowed = false;
            let (mut first_retryable, mut first_permanent) = (None, None);
            for (i, c) in self.consumers.iter().enumerate() {
                let item = match (&encoded, wants[i]) {
                    (Some(e), true) => Signal::Encoded(e.clone()),
                    _ if Some(i) == last_as_is => data.take().expect("taken once"),
                    _ => data.as_ref().expect("not taken yet").clone(),
                };
                match c.consume(item).await {
                    Ok(()) => accepted += 1,
                    Err(e) if e.is_retryable() => {
                        refused += 1;
                        match e.retry_target(c) {
                            Some(rest) => {
                                narrowed = true;
                                retry.push(rest);
                            }
                            None => retry.push(c.clone()),
                        }
                        first_retryable.get_or_insert(e);
                    }
                    Err(e) => {
                        refused += 1;
                        first_permanent.get_or_insert(e);
                    }
                }
            }
            let Some(error) = first_retryable else {
                return first_permanent.map_or(Ok(()), Err);
            };
            if accepted == 0 && first_permanent.is_none() && !narrowed {
                return Err(error);
            }
            Err(ConsumeError::Partial(PartialRefusal {
                error: Box::new(error.cause().clone()),
                accepted,
                refused,
                rest: Fanout::of(retry),
                origin: self as *const Fanout as *const () as usize,
            }))
        })
    }

    fn takes_live(&self) -> bool {
        self.consumers.iter().any(|c| c.takes_live())
    }

    /// The most backed-up consumer's: the data would wait for it.
    fn backlog(&self) -> Backlog {
        self.consumers
            .iter()
            .map(|c| c.backlog())
            .max()
            .unwrap_or(Backlog::Clear)
    }

    /// Room in every consumer: a retry after a partial refusal goes to a fanout of only the
    /// consumers that refused, so this waits for those.
    fn room(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            futures::future::join_all(self.consumers.iter().map(|c| c.room())).await;
        })
    }

    /// Live data goes only to the consumers that take it; the first error is returned.
    fn consume_live(&self, data: Signal) -> BoxFuture<'_, Result<(), ConsumeError>> {
        Box::pin(async move {
            let mut first_err = None;
            let last = self.consumers.iter().rposition(|c| c.takes_live());
            let mut data = Some(data);
            for (i, c) in self.consumers.iter().enumerate() {
                if !c.takes_live() {
                    continue;
                }
                let item = if Some(i) == last {
                    data.take().expect("taken once")
                } else {
                    data.as_ref().expect("not taken yet").clone()
                };
                if let Err(e) = c.consume_live(item).await {
                    first_err.get_or_insert(e);
                }
            }
            first_err.map_or(Ok(()), Err)
        })
    }
}

/// Routes each signal to the consumer of its kind; what a receiver or connector is handed.
#[derive(Clone, Default)]
pub struct Router {
    by_kind: [Option<SharedConsumer>; 3],
}

impl Router {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn set(&mut self, kind: SignalKind, consumer: SharedConsumer) {
        self.by_kind[kind.index()] = Some(consumer);
    }

    pub fn get(&self, kind: SignalKind) -> Option<&SharedConsumer> {
        self.by_kind[kind.index()].as_ref()
    }

    /// Whether the pipeline of this signal would rather get [`Signal::Encoded`] data.
    pub fn wants_encoded_for(&self, kind: SignalKind) -> bool {
        self.get(kind).is_some_and(|c| c.wants_encoded())
    }

    /// Whether some pipeline takes this signal.
    pub fn accepts(&self, kind: SignalKind) -> bool {
        self.by_kind[kind.index()].is_some()
    }

    pub async fn route(&self, data: Signal) -> Result<(), ConsumeError> {
        match self.get(data.kind()) {
            Some(c) => c.consume(data).await,
            None => Err(ConsumeError::NoPipeline(data.kind())),
        }
    }

    /// How backed up the pipelines of this signal are ([`Consumer::backlog`]).
    pub fn backlog_for(&self, kind: SignalKind) -> Backlog {
        self.get(kind).map_or(Backlog::Clear, |c| c.backlog())
    }

    /// Whether some consumer downstream reads live data of this signal.
    pub fn takes_live_for(&self, kind: SignalKind) -> bool {
        self.get(kind).is_some_and(|c| c.takes_live())
    }

    /// Sends live data (see [the live lane](self#the-live-lane)); a signal nobody reads live
    /// is dropped.
    pub async fn route_live(&self, data: Signal) -> Result<(), ConsumeError> {
        match self.get(data.kind()) {
            Some(c) if c.takes_live() => c.consume_live(data).await,
            _ => Ok(()),
        }
    }
}

impl Consumer for Router {
    fn consume(&self, data: Signal) -> BoxFuture<'_, Result<(), ConsumeError>> {
        Box::pin(self.route(data))
    }

    fn takes_live(&self) -> bool {
        SignalKind::ALL.into_iter().any(|k| self.takes_live_for(k))
    }

    fn consume_live(&self, data: Signal) -> BoxFuture<'_, Result<(), ConsumeError>> {
        Box::pin(self.route_live(data))
    }
}

impl std::fmt::Debug for Router {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Router")
            .field("traces", &self.accepts(SignalKind::Traces))
            .field("metrics", &self.accepts(SignalKind::Metrics))
            .field("logs", &self.accepts(SignalKind::Logs))
            .finish()
    }
}

/// A consumer from a closure; handy for tests and small adapters.
pub struct FnConsumer<F>(pub F);

impl<F> Consumer for FnConsumer<F>
where
    F: Fn(Signal) -> Result<(), ConsumeError> + Send + Sync + 'static,
{
    fn consume(&self, data: Signal) -> BoxFuture<'_, Result<(), ConsumeError>> {
        let r = (self.0)(data);
        Box::pin(async move { r })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn counting(n: Arc<AtomicUsize>, result: Result<(), ConsumeError>) -> SharedConsumer {
        Arc::new(FnConsumer(move |_| {
            n.fetch_add(1, Ordering::SeqCst);
            result.clone()
        }))
    }

    #[tokio::test]
    async fn fanout_feeds_all_and_reports_a_partial_refusal() {
        let a = Arc::new(AtomicUsize::new(0));
        let b = Arc::new(AtomicUsize::new(0));
        let f = Fanout::of(vec![
            counting(a.clone(), Err(ConsumeError::Full)),
            counting(b.clone(), Ok(())),
        ]);
        let r = f.consume(Signal::empty(SignalKind::Traces)).await;
        let Err(e @ ConsumeError::Partial(_)) = r else {
            panic!("one took it, one refused: {r:?}");
        };
        assert!(e.is_retryable());
        assert_eq!(e.cause(), &ConsumeError::Full);
        assert_eq!(e.retry_after(), Some(Duration::from_secs(1)));
        assert_eq!(
            e.to_string(),
            "pipeline is full, retry later (1 of 2 consumers refused the data)"
        );
        assert_eq!(a.load(Ordering::SeqCst), 1);
        assert_eq!(b.load(Ordering::SeqCst), 1);
        // The retry goes to the consumer that refused only.
        let rest = e
            .retry_target(&f)
            .expect("a retry target for the fanout's own sender");
        assert!(rest
            .consume(Signal::empty(SignalKind::Traces))
            .await
            .is_err());
        assert_eq!(a.load(Ordering::SeqCst), 2);
        assert_eq!(
            b.load(Ordering::SeqCst),
            1,
            "the consumer that took it never sees it again"
        );
        // Another sender (one that did not call this fanout) is not told to narrow.
        let other = counting(Arc::new(AtomicUsize::new(0)), Ok(()));
        assert!(e.retry_target(&other).is_none());
    }

    #[tokio::test]
    async fn fanout_refusing_everywhere_returns_the_refusal_as_is() {
        let f = Fanout::of(vec![
            counting(
                Arc::new(AtomicUsize::new(0)),
                Err(ConsumeError::Throttled(Duration::from_secs(3))),
            ),
            counting(Arc::new(AtomicUsize::new(0)), Err(ConsumeError::Full)),
        ]);
        let r = f.consume(Signal::empty(SignalKind::Traces)).await;
        assert_eq!(r, Err(ConsumeError::Throttled(Duration::from_secs(3))));
        assert!(r.unwrap_err().retry_target(&f).is_none());
        let bad = || {
            ConsumeError::from(PermanentError::WrongSignal {
                component: "test",
                expected: SignalKind::Traces,
                got: SignalKind::Logs,
            })
        };
        let ok = Arc::new(AtomicUsize::new(0));
        let f = Fanout::of(vec![
            counting(Arc::new(AtomicUsize::new(0)), Err(bad())),
            counting(ok.clone(), Ok(())),
        ]);
        assert_eq!(
            f.consume(Signal::empty(SignalKind::Traces)).await,
            Err(bad())
        );
    }

    #[tokio::test]
    async fn fanout_retries_neither_takers_nor_permanent_refusers() {
        let (full, perm, ok) = (
            Arc::new(AtomicUsize::new(0)),
            Arc::new(AtomicUsize::new(0)),
            Arc::new(AtomicUsize::new(0)),
        );
        let bad = ConsumeError::from(PermanentError::WrongSignal {
            component: "test",
            expected: SignalKind::Traces,
            got: SignalKind::Logs,
        });
        let f = Fanout::of(vec![
            counting(perm.clone(), Err(bad)),
            counting(full.clone(), Err(ConsumeError::Full)),
            counting(ok.clone(), Ok(())),
        ]);
        let e = f
            .consume(Signal::empty(SignalKind::Traces))
            .await
            .unwrap_err();
        assert!(e.is_retryable(), "{e:?}");
        let rest = e.retry_target(&f).unwrap();
        let _ = rest.consume(Signal::empty(SignalKind::Traces)).await;
        assert_eq!(
            [perm, full, ok].map(|n| n.load(Ordering::SeqCst)),
            [1, 2, 1]
        );
    }

    #[tokio::test]
    async fn nested_fanouts_narrow_the_retry_to_the_innermost_refuser() {
        let (x, y, z) = (
            Arc::new(AtomicUsize::new(0)),
            Arc::new(AtomicUsize::new(0)),
            Arc::new(AtomicUsize::new(0)),
        );
        // A receiver feeding two pipelines: one pipeline's exporters are x (refusing) and y.
        let inner = Fanout::of(vec![
            counting(x.clone(), Err(ConsumeError::Full)),
            counting(y.clone(), Ok(())),
        ]);
        let outer = Fanout::of(vec![inner, counting(z.clone(), Ok(()))]);
        let e = outer
            .consume(Signal::empty(SignalKind::Traces))
            .await
            .unwrap_err();
        let ConsumeError::Partial(p) = &e else {
            panic!("{e:?}")
        };
        assert_eq!((p.accepted(), p.refused()), (1, 1));
        assert_eq!(e.cause(), &ConsumeError::Full);
        let rest = e.retry_target(&outer).unwrap();
        let _ = rest.consume(Signal::empty(SignalKind::Traces)).await;
        assert_eq!([x, y, z].map(|n| n.load(Ordering::SeqCst)), [2, 1, 1]);
        // Even when nobody at the outer level took it whole, the retry is narrowed.
        let (x, y) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let inner = Fanout::of(vec![
            counting(x.clone(), Err(ConsumeError::Full)),
            counting(y.clone(), Ok(())),
        ]);
        let outer = Fanout::of(vec![
            inner,
            counting(Arc::new(AtomicUsize::new(0)), Err(ConsumeError::Closed)),
        ]);
        let e = outer
            .consume(Signal::empty(SignalKind::Traces))
            .await
            .unwrap_err();
        assert!(matches!(e, ConsumeError::Partial(_)), "{e:?}");
        let _ = e
            .retry_target(&outer)
            .unwrap()
            .consume(Signal::empty(SignalKind::Traces))
            .await;
        assert_eq!([x, y].map(|n| n.load(Ordering::SeqCst)), [2, 1]);
    }

    /// Records whether each request came encoded; wants what it is told.
    struct Forms {
        wants: bool,
        got: std::sync::Mutex<Vec<bool>>,
    }

    impl Consumer for Forms {
        fn wants_encoded(&self) -> bool {
            self.wants
        }
        fn consume(&self, data: Signal) -> BoxFuture<'_, Result<(), ConsumeError>> {
            self.got
                .lock()
                .unwrap()
                .push(matches!(data, Signal::Encoded(_)));
            Box::pin(async { Ok(()) })
        }
    }

    fn forms(wants: bool) -> Arc<Forms> {
        Arc::new(Forms {
            wants,
            got: Default::default(),
        })
    }

    #[tokio::test]
    async fn fanout_hands_each_consumer_the_form_it_wants() {
        let (bytes, decoded) = (forms(true), forms(false));
        let f = Fanout::of(vec![bytes.clone(), decoded.clone()]);
        assert!(!f.wants_encoded(), "not every consumer wants bytes");
        f.consume(Signal::empty(SignalKind::Traces)).await.unwrap();
        f.consume(Signal::empty(SignalKind::Traces).into_encoded())
            .await
            .unwrap();
        assert_eq!(*bytes.got.lock().unwrap(), vec![true, true]);
        // Decoded data stays decoded for a reader; encoded data is passed as is (it decodes).
        assert_eq!(*decoded.got.lock().unwrap(), vec![false, true]);
        let all = Fanout::of(vec![forms(true), forms(true)]);
        assert!(all.wants_encoded());
    }

    #[tokio::test]
    async fn router_refuses_unrouted_signal() {
        let n = Arc::new(AtomicUsize::new(0));
        let mut r = Router::new();
        r.set(SignalKind::Logs, counting(n.clone(), Ok(())));
        assert!(r.route(Signal::empty(SignalKind::Logs)).await.is_ok());
        assert_eq!(
            r.route(Signal::empty(SignalKind::Traces)).await,
            Err(ConsumeError::NoPipeline(SignalKind::Traces))
        );
        assert_eq!(n.load(Ordering::SeqCst), 1);
    }

    /// Counts normal and live requests; takes live data when told.
    struct Lanes {
        takes: bool,
        normal: AtomicUsize,
        live: AtomicUsize,
    }

    impl Consumer for Lanes {
        fn consume(&self, _: Signal) -> BoxFuture<'_, Result<(), ConsumeError>> {
            self.normal.fetch_add(1, Ordering::SeqCst);
            Box::pin(async { Ok(()) })
        }
        fn takes_live(&self) -> bool {
            self.takes
        }
        fn consume_live(&self, _: Signal) -> BoxFuture<'_, Result<(), ConsumeError>> {
            assert!(
                self.takes,
                "live data reached a consumer that does not take it"
            );
            self.live.fetch_add(1, Ordering::SeqCst);
            Box::pin(async { Ok(()) })
        }
    }

    fn lanes(takes: bool) -> Arc<Lanes> {
        Arc::new(Lanes {
            takes,
            normal: AtomicUsize::new(0),
            live: AtomicUsize::new(0),
        })
    }

    #[tokio::test]
    async fn live_data_reaches_only_consumers_that_take_it() {
        let (evaluator, exporter) = (lanes(true), lanes(false));
        let f = Fanout::of(vec![exporter.clone(), evaluator.clone()]);
        assert!(f.takes_live());
        let mut r = Router::new();
        r.set(SignalKind::Metrics, f);
        assert!(r.takes_live_for(SignalKind::Metrics));
        assert!(!r.takes_live_for(SignalKind::Logs));
        r.route_live(Signal::empty(SignalKind::Metrics))
            .await
            .unwrap();
        // Nobody takes live logs: dropped, not refused.
        r.route_live(Signal::empty(SignalKind::Logs)).await.unwrap();
        r.route(Signal::empty(SignalKind::Metrics)).await.unwrap();
        assert_eq!(evaluator.live.load(Ordering::SeqCst), 1);
        assert_eq!(exporter.live.load(Ordering::SeqCst), 0);
        assert_eq!(evaluator.normal.load(Ordering::SeqCst), 1);
        assert_eq!(exporter.normal.load(Ordering::SeqCst), 1);
        // The default: a consumer that does not take live data drops it.
        let plain: SharedConsumer = Arc::new(FnConsumer(|_| Err(ConsumeError::Full)));
        assert!(!plain.takes_live());
        assert!(plain
            .consume_live(Signal::empty(SignalKind::Metrics))
            .await
            .is_ok());
        assert!(!Fanout::of(vec![plain, exporter]).takes_live());
    }

    #[test]
    fn retryable_classification() {
        assert!(ConsumeError::Full.is_retryable());
        assert!(ConsumeError::Throttled(Duration::from_secs(2)).is_retryable());
        let bad = PermanentError::WrongSignal {
            component: "test",
            expected: SignalKind::Traces,
            got: SignalKind::Logs,
        };
        assert!(!ConsumeError::from(bad).is_retryable());
        assert!(!ConsumeError::NoPipeline(SignalKind::Logs).is_retryable());
        assert_eq!(ConsumeError::Full.cause(), &ConsumeError::Full);
    }
}
