//! Self-telemetry: per-component counters in the Collector's naming, routed through one
//! OpenTelemetry SDK meter provider (`opentelemetry_sdk::metrics::SdkMeterProvider`).
//!
//! - Components take their handles once at build time ([`Telemetry::receiver`],
//!   [`Telemetry::processor`], [`Telemetry::exporter`], [`Telemetry::metric`]); counting on the hot
//!   path is one atomic add, with no allocation and no attribute hashing.
//! - The meter provider reads those atomics through observable instruments when a reader
//!   collects; per-batch histograms are SDK histograms with their attributes built once.
//! - Every provider has one pull reader, which [`Telemetry::encode`] collects on demand and writes
//!   as Prometheus/OpenMetrics text (`authwatch_receiver_accepted_spans_total`, ...): what the
//!   service serves on `/metrics`. The service adds the configured push readers (periodic OTLP)
//!   with [`TelemetryBuilder::reader`], so every reader sees the same data.
//!
//! Instrument names carry the `authwatch_` prefix and no type suffix (`authwatch_receiver_accepted_spans`);
//! the Prometheus text adds `_total` to counters and `_sum`/`_count`/`_bucket` to histograms.

mod instruments;
mod process;
mod text;

#[cfg(test)]
mod tests;

use std::any::Any;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use opentelemetry::metrics::{Meter, MeterProvider as _};
use opentelemetry_sdk::metrics::data::ResourceMetrics;
use opentelemetry_sdk::metrics::reader::MetricReader;
use opentelemetry_sdk::metrics::{ManualReader, Pipeline, SdkMeterProvider, Temporality};
use opentelemetry_sdk::Resource;

pub use instruments::{Counter, Family, Gauge, GaugeF64, Histogram, LabelSet, Metric, Series};
#[doc(hidden)]
pub use instruments::{Describe, Points, Registration, SeriesKind};
pub use process::ProcessStats;

use crate::id::ComponentId;
use crate::kind::SignalKind;
use text::Registered;

/// The prefix of every self-telemetry metric name.
pub const PREFIX: &str = "authwatch";

/// The instrumentation scope of authwatch's own metrics.
const SCOPE: &str = "authwatch";

/// The meter provider could not be shut down cleanly (a final export failed or timed out).
#[derive(Debug, thiserror::Error)]
#[error("self-telemetry shutdown: {0}")]
pub struct ShutdownError(#[source] opentelemetry_sdk::error::OTelSdkError);

#[derive(Clone, Debug, Hash, PartialEq, Eq)]
struct ReceiverLabels {
    receiver: String,
    transport: String,
}
crate::label_set!(ReceiverLabels {
    receiver,
    transport
});

#[derive(Clone, Debug, Hash, PartialEq, Eq)]
struct ProcessorLabels {
    processor: String,
    pipeline: String,
}
crate::label_set!(ProcessorLabels {
    processor,
    pipeline
});

#[derive(Clone, Debug, Hash, PartialEq, Eq)]
struct ExporterLabels {
    exporter: String,
}
crate::label_set!(ExporterLabels { exporter });

type PerSignal<L> = [Family<L, Counter>; 3];

fn per_signal<L: LabelSet>() -> PerSignal<L> {
    SignalKind::ALL.map(|_| Family::default())
}

struct Families {
    receiver_accepted: PerSignal<ReceiverLabels>,
    receiver_refused: PerSignal<ReceiverLabels>,
    receiver_refused_requests: Family<ReceiverLabels, Counter>,
    receiver_request_duration: Family<ReceiverLabels, Histogram, fn() -> Histogram>,
    processor_accepted: PerSignal<ProcessorLabels>,
    processor_refused: PerSignal<ProcessorLabels>,
    processor_dropped: PerSignal<ProcessorLabels>,
    exporter_sent: PerSignal<ExporterLabels>,
    exporter_send_failed: PerSignal<ExporterLabels>,
    exporter_enqueue_failed: PerSignal<ExporterLabels>,
    exporter_queue_size: Family<ExporterLabels, Gauge>,
    exporter_queue_capacity: Family<ExporterLabels, Gauge>,
    exporter_queue_size_bytes: Family<ExporterLabels, Gauge>,
    exporter_queue_oldest_age: Family<ExporterLabels, GaugeF64>,
    exporter_queue_corrupt: Family<ExporterLabels, Counter>,
}

/// What registration keeps: the encoder's view of each metric, and the handles of metrics
/// registered by name so that every instance of a component shares one.
#[derive(Default)]
struct Registry {
    registered: Vec<Registered>,
    custom: HashMap<String, Box<dyn Any + Send + Sync>>,
}

struct Inner {
    provider: SdkMeterProvider,
    meter: Meter,
    pull: PullReader,
    registry: Mutex<Registry>,
    families: Families,
}

/// The process's self-telemetry: the meter provider and the handles registered on it. Cheap to
/// clone.
#[derive(Clone)]
pub struct Telemetry {
    inner: Arc<Inner>,
}

impl Default for Telemetry {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Telemetry").finish_non_exhaustive()
    }
}

/// Builds a [`Telemetry`] with a resource and extra (push) readers.
pub struct TelemetryBuilder {
    provider: opentelemetry_sdk::metrics::MeterProviderBuilder,
    resource: Resource,
}

impl TelemetryBuilder {
    /// The resource every reader exports with (default: `service.name` = `authwatch`).
    pub fn resource(mut self, resource: Resource) -> Self {
        self.resource = resource;
        self
    }

    /// Adds a reader (a periodic OTLP reader, say) besides the pull reader.
    pub fn reader(mut self, reader: impl MetricReader) -> Self {
        self.provider = self.provider.with_reader(reader);
        self
    }

    /// Builds the meter provider and registers authwatch's own metrics. Push readers spawn their
    /// tasks here: call it inside the runtime they were built for.
    pub fn build(self) -> Telemetry {
        let pull = PullReader::default();
        let provider = self
            .provider
            .with_resource(self.resource)
            .with_reader(pull.clone())
            .build();
        let meter = provider.meter(SCOPE);
        Telemetry::register_builtin(provider, meter, pull)
    }
}

impl Telemetry {
    /// Telemetry with only the pull reader ([`Telemetry::encode`]); what tests use.
    pub fn new() -> Self {
        Self::builder().build()
    }

    pub fn builder() -> TelemetryBuilder {
        TelemetryBuilder {
            provider: SdkMeterProvider::builder(),
            resource: Resource::builder().with_service_name(PREFIX).build(),
        }
    }

    fn register_builtin(provider: SdkMeterProvider, meter: Meter, pull: PullReader) -> Telemetry {
        let families = Families {
            receiver_accepted: per_signal(),
            receiver_refused: per_signal(),
            receiver_refused_requests: Family::default(),
            receiver_request_duration: Family::new_with_constructor(
                request_duration_histogram as fn() -> Histogram,
            ),
            processor_accepted: per_signal(),
            processor_refused: per_signal(),
            processor_dropped: per_signal(),
            exporter_sent: per_signal(),
            exporter_send_failed: per_signal(),
            exporter_enqueue_failed: per_signal(),
            exporter_queue_size: Family::default(),
            exporter_queue_capacity: Family::default(),
            exporter_queue_size_bytes: Family::default(),
            exporter_queue_oldest_age: Family::default(),
            exporter_queue_corrupt: Family::default(),
        };
        let t = Telemetry {
            inner: Arc::new(Inner {
                provider,
                meter,
                pull,
                registry: Mutex::default(),
                families,
            }),
        };
        let f = &t.inner.families;
        let signal_help = [
            (
                &f.receiver_accepted,
                "receiver_accepted",
                "Items a receiver accepted into its pipelines",
            ),
            (
                &f.receiver_refused,
                "receiver_refused",
                "Items a receiver could not push into its pipelines",
            ),
        ];
        for (fam, stem, help) in signal_help {
            t.register_per_signal(fam, stem, help);
        }
        let processor_help = [
            (
                &f.processor_accepted,
                "processor_accepted",
                "Items a processor accepted",
            ),
            (
                &f.processor_refused,
                "processor_refused",
                "Items a processor refused with a retryable error",
            ),
            (
                &f.processor_dropped,
                "processor_dropped",
                "Items a processor dropped after a permanent downstream error",
            ),
        ];
        for (fam, stem, help) in processor_help {
            t.register_per_signal(fam, stem, help);
        }
        let exporter_help = [
            (
                &f.exporter_sent,
                "exporter_sent",
                "Items an exporter delivered to its destination",
            ),
            (
                &f.exporter_send_failed,
                "exporter_send_failed",
                "Items an exporter failed to deliver and gave up on",
            ),
            (
                &f.exporter_enqueue_failed,
                "exporter_enqueue_failed",
                "Items an exporter refused because its sending queue was full",
            ),
        ];
        for (fam, stem, help) in exporter_help {
            t.register_per_signal(fam, stem, help);
        }
        t.register(
            "exporter_queue_size",
            "Requests waiting in an exporter's sending queue",
            &f.exporter_queue_size,
        );
        t.register(
            "exporter_queue_capacity",
            "Capacity of an exporter's sending queue, in requests",
            &f.exporter_queue_capacity,
        );
        t.register(
            "exporter_queue_size_bytes",
            "Bytes of the requests stored in an exporter's persistent sending queue",
            &f.exporter_queue_size_bytes,
        );
        t.register(
            "exporter_queue_oldest_age_seconds",
            "Age of the oldest request in an exporter's persistent sending queue",
            &f.exporter_queue_oldest_age,
        );
        t.register(
            "exporter_queue_corrupt_records",
            "Corrupt or unreadable records an exporter's persistent sending queue skipped",
            &f.exporter_queue_corrupt,
        );
        t.register(
            "receiver_refused_requests",
            "Requests a receiver refused before reading their body (memory budget)",
            &f.receiver_refused_requests,
        );
        t.register(
            "receiver_request_duration_seconds",
            "Time from admitting a request to its answer, for requests read and handed to the pipelines",
            &f.receiver_request_duration,
        );
        t.register_process();
        t
    }

    fn register_per_signal<L: LabelSet>(&self, fams: &PerSignal<L>, stem: &str, help: &str) {
        for (k, fam) in SignalKind::ALL.iter().zip(fams) {
            let name = format!("{stem}_{}", k.item_name());
            let help = format!("{help} ({})", k.item_name().replace('_', " "));
            self.register(&name, &help, fam);
        }
    }

    /// The process gauges, computed when a reader collects.
    fn register_process(&self) {
        let started = Instant::now();
        let meter = &self.inner.meter;
        let uptime = format!("{PREFIX}_process_uptime_seconds");
        let rss = format!("{PREFIX}_process_memory_rss_bytes");
        let cpu = format!("{PREFIX}_process_cpu_seconds");
        meter
            .f64_observable_gauge(uptime.clone())
            .with_description("Seconds since the process started")
            .with_callback(move |o| o.observe(started.elapsed().as_secs_f64(), &[]))
            .build();
        meter
            .i64_observable_gauge(rss.clone())
            .with_description("Resident set size of the process")
            .with_callback(|o| {
                if let Some(p) = ProcessStats::read() {
                    o.observe(i64::try_from(p.rss_bytes).unwrap_or(i64::MAX), &[]);
                }
            })
            .build();
        meter
            .f64_observable_gauge(cpu.clone())
            .with_description("CPU time used by the process (user + system)")
            .with_callback(|o| {
                if let Some(p) = ProcessStats::read() {
                    o.observe(p.cpu_seconds, &[]);
                }
            })
            .build();
        let mut reg = self.registry();
        for (name, help) in [
            (uptime, "Seconds since the process started"),
            (rss, "Resident set size of the process"),
            (cpu, "CPU time used by the process (user + system)"),
        ] {
            reg.registered.push(Registered {
                name,
                help: help.to_owned(),
                kind: SeriesKind::Gauge,
                order: None,
                declared: None,
            });
        }
    }

    fn registry(&self) -> std::sync::MutexGuard<'_, Registry> {
        self.inner
            .registry
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Creates `m`'s instrument on the meter and lists it for the text encoder.
    fn register<M: Metric>(&self, name: &str, help: &str, m: &M) {
        let d = Describe {
            name: format!("{PREFIX}_{name}"),
            help: help.to_owned(),
        };
        let r = m.register(&self.inner.meter, &d);
        self.registry().registered.push(Registered {
            name: d.name,
            help: d.help,
            kind: r.kind,
            order: r.order,
            declared: r.declared,
        });
    }

    /// Counters for one receiver on one transport (`grpc`, `http`, `synthetic`, ...).
    pub fn receiver(&self, id: &ComponentId, transport: &str) -> ReceiverTelemetry {
        let l = ReceiverLabels {
            receiver: id.to_string(),
            transport: transport.to_owned(),
        };
        let f = &self.inner.families;
        ReceiverTelemetry {
            accepted: f.receiver_accepted.each_ref().map(|x| x.get_or_create(&l)),
            refused: f.receiver_refused.each_ref().map(|x| x.get_or_create(&l)),
            refused_requests: f.receiver_refused_requests.get_or_create(&l),
            request_duration: f.receiver_request_duration.get_or_create(&l),
        }
    }

    /// Counters for one processor instance in one pipeline.
    pub fn processor(&self, id: &ComponentId, pipeline: &str) -> ProcessorTelemetry {
        let l = ProcessorLabels {
            processor: id.to_string(),
            pipeline: pipeline.to_owned(),
        };
        let f = &self.inner.families;
        ProcessorTelemetry {
            accepted: f.processor_accepted.each_ref().map(|x| x.get_or_create(&l)),
            refused: f.processor_refused.each_ref().map(|x| x.get_or_create(&l)),
            dropped: f.processor_dropped.each_ref().map(|x| x.get_or_create(&l)),
        }
    }

    /// Counters and queue gauges for one exporter.
    pub fn exporter(&self, id: &ComponentId) -> ExporterTelemetry {
        let l = ExporterLabels {
            exporter: id.to_string(),
        };
        let f = &self.inner.families;
        ExporterTelemetry {
            sent: f.exporter_sent.each_ref().map(|x| x.get_or_create(&l)),
            send_failed: f
                .exporter_send_failed
                .each_ref()
                .map(|x| x.get_or_create(&l)),
            enqueue_failed: f
                .exporter_enqueue_failed
                .each_ref()
                .map(|x| x.get_or_create(&l)),
            queue_size: f.exporter_queue_size.get_or_create(&l),
            queue_capacity: f.exporter_queue_capacity.get_or_create(&l),
            queue_size_bytes: f.exporter_queue_size_bytes.get_or_create(&l),
            queue_oldest_age_seconds: f.exporter_queue_oldest_age.get_or_create(&l),
            queue_corrupt_records: f.exporter_queue_corrupt.get_or_create(&l),
        }
    }

    /// A component's own metric (name without the `authwatch_` prefix), registered on first
    /// use; later calls with the same name get the same metric (a clone of its handle), so every
    /// instance of a component shares one family. `make` runs only on first use.
    ///
    /// Panics if `name` was registered with another type: that is a bug, not input.
    pub fn metric<M: Metric>(&self, name: &str, help: &str, make: impl FnOnce() -> M) -> M {
        if let Some(existing) = self.registry().custom.get(name) {
            return existing
                .downcast_ref::<M>()
                .unwrap_or_else(|| panic!("metric `{name}` registered twice with different types"))
                .clone();
        }
        let m = make();
        // Register outside the lock (the SDK may call back into the encoder's view), then
        // record it; a racing registration of the same name keeps the first.
        let mut reg = self.registry();
        if let Some(existing) = reg.custom.get(name) {
            return existing
                .downcast_ref::<M>()
                .unwrap_or_else(|| panic!("metric `{name}` registered twice with different types"))
                .clone();
        }
        reg.custom.insert(name.to_owned(), Box::new(m.clone()));
        drop(reg);
        self.register(name, help, &m);
        m
    }

    /// Collects through the pull reader and writes Prometheus/OpenMetrics text: what `/metrics`
    /// serves. Empty (`# EOF` only) after [`Telemetry::shutdown`].
    pub fn encode(&self) -> String {
        let mut rm = ResourceMetrics::default();
        // Collecting fails only after shutdown: then there is nothing to show (not even the
        // zero series of registered histograms).
        if self.inner.pull.0.collect(&mut rm).is_err() {
            return "# EOF\n".to_owned();
        }
        let reg = self.registry();
        text::encode(&reg.registered, &rm)
    }

    /// The meter provider, for a reader the service wants to drive itself.
    pub fn meter_provider(&self) -> &SdkMeterProvider {
        &self.inner.provider
    }

    /// Shuts the meter provider down: every push reader collects and exports one last time,
    /// waiting at most `timeout` for each. Blocks the calling thread: call it from a blocking
    /// task when inside a runtime.
    pub fn shutdown(&self, timeout: Duration) -> Result<(), ShutdownError> {
        self.inner
            .provider
            .shutdown_with_timeout(timeout)
            .map_err(ShutdownError)
    }
}

/// The pull reader: an SDK `ManualReader` the `/metrics` handler collects on demand. Shared so
/// that the provider and [`Telemetry::encode`] hold the same reader.
#[derive(Clone, Debug, Default)]
struct PullReader(Arc<ManualReader>);

impl MetricReader for PullReader {
    fn register_pipeline(&self, pipeline: std::sync::Weak<Pipeline>) {
        self.0.register_pipeline(pipeline)
    }
    fn collect(&self, rm: &mut ResourceMetrics) -> opentelemetry_sdk::error::OTelSdkResult {
        self.0.collect(rm)
    }
    fn force_flush(&self) -> opentelemetry_sdk::error::OTelSdkResult {
        self.0.force_flush()
    }
    fn shutdown_with_timeout(&self, timeout: Duration) -> opentelemetry_sdk::error::OTelSdkResult {
        self.0.shutdown_with_timeout(timeout)
    }
    fn temporality(&self, kind: opentelemetry_sdk::metrics::InstrumentKind) -> Temporality {
        self.0.temporality(kind)
    }
}

fn add(c: &Counter, n: usize) {
    c.inc_by(n as u64);
}

/// The Collector's buckets for `otelcol_processor_batch_batch_send_size` (items per sent
/// request), used by the `batch` processor and by exporters that batch in their sending queue.
const BATCH_SEND_SIZE_BUCKETS: [f64; 22] = [
    10.0, 25.0, 50.0, 75.0, 100.0, 250.0, 500.0, 750.0, 1000.0, 2000.0, 3000.0, 4000.0, 5000.0,
    6000.0, 7000.0, 8000.0, 9000.0, 10000.0, 20000.0, 30000.0, 50000.0, 100000.0,
];

/// A histogram of items per sent batch, with the Collector's bucket bounds (a `Family`
/// constructor for the batch send-size metrics).
pub fn batch_send_size_histogram() -> Histogram {
    Histogram::new(BATCH_SEND_SIZE_BUCKETS)
}

/// Bucket bounds of `receiver_request_duration_seconds`: from half a millisecond (a small
/// request on an idle pipeline) to 10 s (a pipeline pushing back for long).
const REQUEST_DURATION_BUCKETS: [f64; 19] = [
    0.0005, 0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.25,
    0.5, 1.0, 2.5, 5.0, 10.0,
];

fn request_duration_histogram() -> Histogram {
    Histogram::new(REQUEST_DURATION_BUCKETS)
}

/// A receiver's counters and its request-duration histogram.
#[derive(Clone, Debug)]
pub struct ReceiverTelemetry {
    accepted: [Counter; 3],
    refused: [Counter; 3],
    refused_requests: Counter,
    request_duration: Histogram,
}

impl ReceiverTelemetry {
    /// A request admitted at `admitted` was answered now (one observation per request).
    pub fn request_answered(&self, admitted: Instant) {
        self.request_duration
            .observe(admitted.elapsed().as_secs_f64())
    }
    /// A request refused before its body was read (its items are not known).
    pub fn refused_request(&self) {
        add(&self.refused_requests, 1)
    }
    pub fn accepted(&self, kind: SignalKind, n: usize) {
        add(&self.accepted[kind.index()], n)
    }
    pub fn refused(&self, kind: SignalKind, n: usize) {
        add(&self.refused[kind.index()], n)
    }
}

/// A processor's counters.
#[derive(Clone, Debug)]
pub struct ProcessorTelemetry {
    accepted: [Counter; 3],
    refused: [Counter; 3],
    dropped: [Counter; 3],
}

impl ProcessorTelemetry {
    pub fn accepted(&self, kind: SignalKind, n: usize) {
        add(&self.accepted[kind.index()], n)
    }
    pub fn refused(&self, kind: SignalKind, n: usize) {
        add(&self.refused[kind.index()], n)
    }
    pub fn dropped(&self, kind: SignalKind, n: usize) {
        add(&self.dropped[kind.index()], n)
    }
}

/// An exporter's counters and queue gauges.
#[derive(Clone, Debug)]
pub struct ExporterTelemetry {
    sent: [Counter; 3],
    send_failed: [Counter; 3],
    enqueue_failed: [Counter; 3],
    pub queue_size: Gauge,
    pub queue_capacity: Gauge,
    /// Bytes stored in a persistent sending queue (0 for the memory queue).
    pub queue_size_bytes: Gauge,
    /// Age of the oldest stored request of a persistent sending queue (0 when empty).
    pub queue_oldest_age_seconds: GaugeF64,
    /// Records a persistent sending queue found corrupt and skipped.
    pub queue_corrupt_records: Counter,
}

impl ExporterTelemetry {
    pub fn sent(&self, kind: SignalKind, n: usize) {
        add(&self.sent[kind.index()], n)
    }
    pub fn send_failed(&self, kind: SignalKind, n: usize) {
        add(&self.send_failed[kind.index()], n)
    }
    pub fn enqueue_failed(&self, kind: SignalKind, n: usize) {
        add(&self.enqueue_failed[kind.index()], n)
    }
}
