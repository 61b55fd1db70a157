//! `sending_queue.batch`: batching after the queue, like the Collector's exporterhelper.
//!
//! One batcher task takes requests from the queue and gathers those of one signal until
//! `min_size` is reached or `flush_timeout` has passed since the first of them, never more than
//! `max_size` (a single larger request goes alone, unsplit). The gathered requests are sent as
//! one request, at most `num_consumers` at once; once that request was sent, or given up on, every
//! queue record it was made of is marked done together (a persistent queue deletes them then).
//! A retry resends the whole batch. Until then the records stay in the queue: after a crash
//! they are all sent again (at least once).
//!
//! Merging needs no decode when the sender writes protobuf: an `Export*ServiceRequest` has one
//! repeated field, so two encodings concatenated are the encoding of the merged request.

use std::time::Duration;

use authwatch_core::telemetry::{batch_send_size_histogram, Counter, Family, Histogram, Telemetry};
use authwatch_core::{ComponentId, Encoded, Signal, SignalKind, Validator};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::item::QueueItem;

/// `sending_queue.batch` settings (the Collector's names and defaults).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BatchConfig {
    /// Send a batch this long after its first request was taken, whatever its size.
    #[serde(with = "authwatch_core::config::duration")]
    pub flush_timeout: Duration,
    /// Send a batch as soon as it holds this much (in `sizer` units).
    pub min_size: usize,
    /// The most one batch holds (in `sizer` units); `0`: no maximum. A single larger request is
    /// sent alone, not split.
    pub max_size: usize,
    /// What `min_size` and `max_size` count.
    pub sizer: Sizer,
}

impl Default for BatchConfig {
    fn default() -> Self {
        BatchConfig {
            flush_timeout: Duration::from_millis(200),
            min_size: 8192,
            max_size: 0,
            sizer: Sizer::Items,
        }
    }
}

/// What a batch's size counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Sizer {
    /// Spans, metric data points or log records.
    #[default]
    Items,
    /// Bytes as protobuf.
    Bytes,
    /// Requests taken from the queue.
    Requests,
}

impl Sizer {
    /// The size of one request.
    pub fn size<T: QueueItem>(self, data: &T) -> usize {
        match self {
            Sizer::Items => data.item_count(),
            Sizer::Bytes => data.encoded_size(),
            Sizer::Requests => 1,
        }
    }
}

impl BatchConfig {
    /// Cross-field rules, reported below `at` (e.g. `sending_queue::batch`).
    pub fn validate(&self, v: &mut Validator, at: &str) {
        if self.flush_timeout.is_zero() {
            v.error(
                &format!("{at}::flush_timeout"),
                "must be greater than 0, e.g. `200ms`",
            );
        }
        if self.max_size != 0 && self.max_size < self.min_size {
            v.error(
                &format!("{at}::max_size"),
                format!(
                    "must be greater than or equal to `min_size` ({}), or 0 for no maximum",
                    self.min_size
                ),
            );
        }
    }
}

/// Why a batch was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Trigger {
    /// It reached `min_size`, or the next request would have taken it past `max_size`.
    Size,
    /// `flush_timeout` passed.
    Timeout,
    /// The queue was closed and empty (shutdown).
    Shutdown,
}

/// One signal's batch being gathered: the queue records it is made of and their requests, in
/// the order they were taken.
#[derive(Debug)]
pub(crate) struct Pending<T = Signal> {
    pub ids: Vec<u64>,
    pub parts: Vec<T>,
    /// In `sizer` units.
    pub size: usize,
    pub deadline: Instant,
}

/// Gathers requests into batches, one per signal; pure bookkeeping (the task that drives it
/// lives in the helper's `mod.rs`).
#[derive(Debug)]
pub(crate) struct Batcher<T = Signal> {
    cfg: BatchConfig,
    pending: [Option<Pending<T>>; 3],
}

impl<T: QueueItem> Batcher<T> {
    pub fn new(cfg: BatchConfig) -> Self {
        Batcher {
            cfg,
            pending: Default::default(),
        }
    }

    /// Adds a request taken from the queue at `now`; returns the batches now ready, in order.
    pub fn add(&mut self, id: u64, data: T, now: Instant) -> Vec<(Pending<T>, Trigger)> {
        let mut ready = Vec::new();
        let size = self.cfg.sizer.size(&data);
        let slot = &mut self.pending[data.kind().index()];
        if self.cfg.max_size != 0 {
            if let Some(p) = slot.take_if(|p| p.size + size > self.cfg.max_size) {
                ready.push((p, Trigger::Size));
            }
        }
        let p = slot.get_or_insert_with(|| Pending {
            ids: Vec::new(),
            parts: Vec::new(),
            size: 0,
            deadline: now + self.cfg.flush_timeout,
        });
        p.ids.push(id);
        p.parts.push(data);
        p.size += size;
        let full =
            p.size >= self.cfg.min_size || (self.cfg.max_size != 0 && p.size >= self.cfg.max_size);
        if full {
            if let Some(p) = slot.take() {
                ready.push((p, Trigger::Size));
            }
        }
        ready
    }

    /// When the next batch is due, if any is being gathered.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.pending.iter().flatten().map(|p| p.deadline).min()
    }

    /// The batches whose `flush_timeout` has passed at `now`.
    pub fn due(&mut self, now: Instant) -> Vec<Pending<T>> {
        self.pending
            .iter_mut()
            .filter_map(|slot| slot.take_if(|p| p.deadline <= now))
            .collect()
    }

    /// Every batch being gathered (at shutdown).
    pub fn drain(&mut self) -> Vec<Pending<T>> {
        self.pending.iter_mut().filter_map(Option::take).collect()
    }
}

/// One request holding every part's items, in order. Encoded parts (what senders that write
/// protobuf get) are concatenated; decoded ones have their resource lists appended. All parts
/// are of one signal and in one form, the form the sender wants.
pub(crate) fn merge(mut parts: Vec<Signal>) -> Signal {
    if parts.len() == 1 {
        return parts
            .pop()
            .unwrap_or_else(|| Signal::empty(SignalKind::Traces));
    }
    let Some(kind) = parts.first().map(Signal::kind) else {
        return Signal::empty(SignalKind::Traces);
    };
    if parts.iter().any(|p| matches!(p, Signal::Encoded(_))) {
        let len = parts.iter().map(Signal::encoded_size).sum();
        let mut bytes = Vec::with_capacity(len);
        let mut items = 0;
        for p in &parts {
            let e = p.to_encoded();
            items += e.items();
            bytes.extend_from_slice(e.bytes());
        }
        return Signal::Encoded(Encoded::new(kind, bytes.into(), items));
    }
    let mut parts = parts.into_iter();
    let mut out = parts.next().unwrap_or_else(|| Signal::empty(kind));
    for p in parts {
        match (&mut out, p) {
            (Signal::Traces(a), Signal::Traces(b)) => a.resource_spans.extend(b.resource_spans),
            (Signal::Metrics(a), Signal::Metrics(b)) => {
                a.resource_metrics.extend(b.resource_metrics)
            }
            (Signal::Logs(a), Signal::Logs(b)) => a.resource_logs.extend(b.resource_logs),
            // Batches hold one signal; never reached.
            _ => {}
        }
    }
    out
}

// === impl BatchMetrics ===

#[derive(Clone, Debug, Hash, PartialEq, Eq)]
struct Labels {
    exporter: String,
}
authwatch_core::label_set!(Labels { exporter });

type HistogramFamily = Family<Labels, Histogram, fn() -> Histogram>;

/// Bytes: 1 KiB to 64 MiB, times 4.
const SEND_BYTES_BUCKETS: [f64; 9] = [
    1024.0, 4096.0, 16384.0, 65536.0, 262144.0, 1048576.0, 4194304.0, 16777216.0, 67108864.0,
];

fn send_bytes_histogram() -> Histogram {
    Histogram::new(SEND_BYTES_BUCKETS)
}

/// One exporter's handles on the batch metrics.
#[derive(Clone, Debug)]
pub(crate) struct BatchMetrics {
    send_size: Histogram,
    send_size_bytes: Histogram,
    size_trigger: Counter,
    timeout_trigger: Counter,
}

impl BatchMetrics {
    pub fn new(telemetry: &Telemetry, id: &ComponentId) -> Self {
        let send_size: HistogramFamily = telemetry.metric(
            "exporter_queue_batch_send_size",
            "Items per request an exporter sent from its sending queue's batches",
            || Family::new_with_constructor(batch_send_size_histogram as fn() -> Histogram),
        );
        let send_size_bytes: HistogramFamily = telemetry.metric(
            "exporter_queue_batch_send_size_bytes",
            "Bytes (protobuf) per request an exporter sent from its sending queue's batches",
            || Family::new_with_constructor(send_bytes_histogram as fn() -> Histogram),
        );
        let size_trigger: Family<Labels, Counter> = telemetry.metric(
            "exporter_queue_batch_size_trigger_send",
            "Batches an exporter sent because they reached min_size (or max_size)",
            Family::default,
        );
        let timeout_trigger: Family<Labels, Counter> = telemetry.metric(
            "exporter_queue_batch_timeout_trigger_send",
            "Batches an exporter sent because flush_timeout passed or it was stopping",
            Family::default,
        );
        let l = Labels {
            exporter: id.to_string(),
        };
        let send_size = send_size.get_or_create(&l).clone();
        let send_size_bytes = send_size_bytes.get_or_create(&l).clone();
        let size_trigger = size_trigger.get_or_create(&l).clone();
        let timeout_trigger = timeout_trigger.get_or_create(&l).clone();
        BatchMetrics {
            send_size,
            send_size_bytes,
            size_trigger,
            timeout_trigger,
        }
    }

    /// Counts one batch about to be sent.
    pub fn sending<T: QueueItem>(&self, data: &T, trigger: Trigger) {
        self.send_size.observe(data.item_count() as f64);
        self.send_size_bytes.observe(data.encoded_size() as f64);
        match trigger {
            Trigger::Size => self.size_trigger.inc(),
            Trigger::Timeout | Trigger::Shutdown => self.timeout_trigger.inc(),
        };
    }
}

#[cfg(test)]
#[path = "batch_tests.rs"]
mod tests;
