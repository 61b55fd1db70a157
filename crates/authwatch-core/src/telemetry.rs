//! Self-telemetry: per-component counters in the Collector's naming, exposed by the service as
//! Prometheus text (`authwatch_receiver_accepted_spans_total`, ...). Components take their handles
//! once at build time; counting on the hot path is one atomic add.

use std::any::Any;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::{Metric, Registry};

use crate::id::ComponentId;
use crate::signal::SignalKind;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReceiverLabels {
    receiver: String,
    transport: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProcessorLabels {
    processor: String,
    pipeline: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ExporterLabels {
    exporter: String,
}

type PerSignal<L> = [Family<L, Counter>; 3];

fn per_signal<L>(reg: &mut Registry, stem: &str, help: &str) -> PerSignal<L>
where
    L: Clone + std::hash::Hash + Eq + EncodeLabelSet + std::fmt::Debug + Send + Sync + 'static,
{
    SignalKind::ALL.map(|k| {
        let f = Family::<L, Counter>::default();
        reg.register(
            format!("{stem}_{}", k.item_name()),
            format!("{help} ({})", k.item_name().replace('_', " ")),
            f.clone(),
        );
        f
    })
}

struct Families {
    receiver_accepted: PerSignal<ReceiverLabels>,
    receiver_refused: PerSignal<ReceiverLabels>,
    processor_accepted: PerSignal<ProcessorLabels>,
    processor_refused: PerSignal<ProcessorLabels>,
    processor_dropped: PerSignal<ProcessorLabels>,
    exporter_sent: PerSignal<ExporterLabels>,
    exporter_send_failed: PerSignal<ExporterLabels>,
    exporter_enqueue_failed: PerSignal<ExporterLabels>,
    exporter_queue_size: Family<ExporterLabels, Gauge>,
    exporter_queue_capacity: Family<ExporterLabels, Gauge>,
    exporter_queue_size_bytes: Family<ExporterLabels, Gauge>,
    exporter_queue_oldest_age: Family<ExporterLabels, Gauge<f64, std::sync::atomic::AtomicU64>>,
    exporter_queue_corrupt: Family<ExporterLabels, Counter>,
    process_uptime: Gauge<f64, std::sync::atomic::AtomicU64>,
    process_memory_rss: Gauge,
    process_cpu_seconds: Gauge<f64, std::sync::atomic::AtomicU64>,
}

/// The process's self-telemetry registry. Cheap to clone.
#[derive(Clone)]
pub struct Telemetry {
    registry: Arc<Mutex<Registry>>,
    families: Arc<Families>,
    /// Metrics registered by components, by name, so that every instance shares one family.
    custom: Arc<Mutex<HashMap<String, Box<dyn Any + Send + Sync>>>>,
    started: Instant,
}

impl Default for Telemetry {
    fn default() -> Self {
        Self::new()
    }
}

impl Telemetry {
    pub fn new() -> Self {
        let mut reg = Registry::with_prefix("authwatch");
        let families = Families {
            receiver_accepted: per_signal(
                &mut reg,
                "receiver_accepted",
                "Items a receiver accepted into its pipelines",
            ),
            receiver_refused: per_signal(
                &mut reg,
                "receiver_refused",
                "Items a receiver could not push into its pipelines",
            ),
            processor_accepted: per_signal(
                &mut reg,
                "processor_accepted",
                "Items a processor accepted",
            ),
            processor_refused: per_signal(
                &mut reg,
                "processor_refused",
                "Items a processor refused with a retryable error",
            ),
            processor_dropped: per_signal(
                &mut reg,
                "processor_dropped",
                "Items a processor dropped after a permanent downstream error",
            ),
            exporter_sent: per_signal(
                &mut reg,
                "exporter_sent",
                "Items an exporter delivered to its destination",
            ),
            exporter_send_failed: per_signal(
                &mut reg,
                "exporter_send_failed",
                "Items an exporter failed to deliver and gave up on",
            ),
            exporter_enqueue_failed: per_signal(
                &mut reg,
                "exporter_enqueue_failed",
                "Items an exporter refused because its sending queue was full",
            ),
            exporter_queue_size: Family::default(),
            exporter_queue_capacity: Family::default(),
            exporter_queue_size_bytes: Family::default(),
            exporter_queue_oldest_age: Family::default(),
            exporter_queue_corrupt: Family::default(),
            process_uptime: Gauge::default(),
            process_memory_rss: Gauge::default(),
            process_cpu_seconds: Gauge::default(),
        };
        reg.register(
            "exporter_queue_size",
            "Requests waiting in an exporter's sending queue",
            families.exporter_queue_size.clone(),
        );
        reg.register(
            "exporter_queue_capacity",
            "Capacity of an exporter's sending queue, in requests",
            families.exporter_queue_capacity.clone(),
        );
        reg.register(
            "exporter_queue_size_bytes",
            "Bytes of the requests stored in an exporter's persistent sending queue",
            families.exporter_queue_size_bytes.clone(),
        );
        reg.register(
            "exporter_queue_oldest_age_seconds",
            "Age of the oldest request in an exporter's persistent sending queue",
            families.exporter_queue_oldest_age.clone(),
        );
        reg.register(
            "exporter_queue_corrupt_records",
            "Corrupt or unreadable records an exporter's persistent sending queue skipped",
            families.exporter_queue_corrupt.clone(),
        );
        reg.register(
            "process_uptime_seconds",
            "Seconds since the process started",
            families.process_uptime.clone(),
        );
        reg.register(
            "process_memory_rss_bytes",
            "Resident set size of the process",
            families.process_memory_rss.clone(),
        );
        reg.register(
            "process_cpu_seconds",
            "CPU time used by the process (user + system)",
            families.process_cpu_seconds.clone(),
        );
        Telemetry {
            registry: Arc::new(Mutex::new(reg)),
            families: Arc::new(families),
            custom: Arc::default(),
            started: Instant::now(),
        }
    }

    /// Counters for one receiver on one transport (`grpc`, `http`, `synthetic`, ...).
    pub fn receiver(&self, id: &ComponentId, transport: &str) -> ReceiverTelemetry {
        let l = ReceiverLabels {
            receiver: id.to_string(),
            transport: transport.to_owned(),
        };
        let f = &self.families;
        ReceiverTelemetry {
            accepted: f
                .receiver_accepted
                .each_ref()
                .map(|x| x.get_or_create(&l).clone()),
            refused: f
                .receiver_refused
                .each_ref()
                .map(|x| x.get_or_create(&l).clone()),
        }
    }

    /// Counters for one processor instance in one pipeline.
    pub fn processor(&self, id: &ComponentId, pipeline: &str) -> ProcessorTelemetry {
        let l = ProcessorLabels {
            processor: id.to_string(),
            pipeline: pipeline.to_owned(),
        };
        let f = &self.families;
        ProcessorTelemetry {
            accepted: f
                .processor_accepted
                .each_ref()
                .map(|x| x.get_or_create(&l).clone()),
            refused: f
                .processor_refused
                .each_ref()
                .map(|x| x.get_or_create(&l).clone()),
            dropped: f
                .processor_dropped
                .each_ref()
                .map(|x| x.get_or_create(&l).clone()),
        }
    }

    /// Counters and queue gauges for one exporter.
    pub fn exporter(&self, id: &ComponentId) -> ExporterTelemetry {
        let l = ExporterLabels {
            exporter: id.to_string(),
        };
        let f = &self.families;
        ExporterTelemetry {
            sent: f
                .exporter_sent
                .each_ref()
                .map(|x| x.get_or_create(&l).clone()),
            send_failed: f
                .exporter_send_failed
                .each_ref()
                .map(|x| x.get_or_create(&l).clone()),
            enqueue_failed: f
                .exporter_enqueue_failed
                .each_ref()
                .map(|x| x.get_or_create(&l).clone()),
            queue_size: f.exporter_queue_size.get_or_create(&l).clone(),
            queue_capacity: f.exporter_queue_capacity.get_or_create(&l).clone(),
            queue_size_bytes: f.exporter_queue_size_bytes.get_or_create(&l).clone(),
            queue_oldest_age_seconds: f.exporter_queue_oldest_age.get_or_create(&l).clone(),
            queue_corrupt_records: f.exporter_queue_corrupt.get_or_create(&l).clone(),
        }
    }

    /// A component's own metric (name without the `authwatch_` prefix), registered on first
    /// use; later calls with the same name get the same metric (a clone of its handle), so every
    /// instance of a component shares one family. `make` runs only on first use.
    ///
    /// Panics if `name` was registered with another type: that is a bug, not input.
    pub fn metric<M>(&self, name: &str, help: &str, make: impl FnOnce() -> M) -> M
    where
        M: Metric + Clone + Send + Sync + 'static,
    {
        let mut custom = self.custom.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(existing) = custom.get(name) {
            return existing
                .downcast_ref::<M>()
                .unwrap_or_else(|| panic!("metric `{name}` registered twice with different types"))
                .clone();
        }
        let m = make();
        custom.insert(name.to_owned(), Box::new(m.clone()));
        let mut reg = self.registry.lock().unwrap_or_else(|e| e.into_inner());
        reg.register(name, help, m.clone());
        m
    }

    /// The Prometheus text exposition of everything registered, process figures refreshed.
    pub fn encode(&self) -> String {
        let f = &self.families;
        f.process_uptime.set(self.started.elapsed().as_secs_f64());
        if let Some(p) = ProcessStats::read() {
            f.process_memory_rss.set(p.rss_bytes as i64);
            f.process_cpu_seconds.set(p.cpu_seconds);
        }
        let reg = self.registry.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = encode(&mut out, &reg);
        out
    }
}

fn add(c: &Counter, n: usize) {
    c.inc_by(n as u64);
}

/// A receiver's counters.
#[derive(Clone, Debug)]
pub struct ReceiverTelemetry {
    accepted: [Counter; 3],
    refused: [Counter; 3],
}

impl ReceiverTelemetry {
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
    pub queue_oldest_age_seconds: Gauge<f64, std::sync::atomic::AtomicU64>,
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

/// Process figures from `/proc/self` (Linux); `None` elsewhere.
#[derive(Debug, Clone, Copy)]
pub struct ProcessStats {
    pub rss_bytes: u64,
    pub cpu_seconds: f64,
}

impl ProcessStats {
    pub fn read() -> Option<Self> {
        let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
        let rss_pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        // Fields after the command name, which is in parentheses and may contain spaces.
        let rest = &stat[stat.rfind(')')? + 2..];
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let utime: u64 = fields.get(11)?.parse().ok()?;
        let stime: u64 = fields.get(12)?.parse().ok()?;
        // Linux reports both in clock ticks of 1/100 s on every platform Rust targets here.
        Some(ProcessStats {
            rss_bytes: rss_pages * 4096,
            cpu_seconds: (utime + stime) as f64 / 100.0,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_use_collector_names() {
        let t = Telemetry::new();
        let id: ComponentId = "otlp".parse().unwrap();
        let r = t.receiver(&id, "grpc");
        r.accepted(SignalKind::Traces, 3);
        r.refused(SignalKind::Logs, 2);
        let e = t.exporter(&"otlphttp/x".parse().unwrap());
        e.sent(SignalKind::Metrics, 5);
        e.queue_size.set(4);
        let text = t.encode();
        assert!(
            text.contains(
                r#"authwatch_receiver_accepted_spans_total{receiver="otlp",transport="grpc"} 3"#
            ),
            "{text}"
        );
        assert!(text.contains(
            r#"authwatch_receiver_refused_log_records_total{receiver="otlp",transport="grpc"} 2"#
        ));
        assert!(text
            .contains(r#"authwatch_exporter_sent_metric_points_total{exporter="otlphttp/x"} 5"#));
        assert!(text.contains(r#"authwatch_exporter_queue_size{exporter="otlphttp/x"} 4"#));
        assert!(text.contains("authwatch_process_memory_rss_bytes"));
    }

    #[test]
    fn custom_metrics_register_once() {
        let t = Telemetry::new();
        let a: Counter = t.metric("thing", "Things", Counter::default);
        let b: Counter = t.metric("thing", "Things", Counter::default);
        a.inc();
        b.inc();
        let text = t.encode();
        assert_eq!(
            text.matches("# TYPE authwatch_thing counter").count(),
            1,
            "{text}"
        );
        assert!(text.contains("authwatch_thing_total 2"), "{text}");
    }

    #[test]
    fn handles_share_counters() {
        let t = Telemetry::new();
        let id: ComponentId = "otlp".parse().unwrap();
        t.receiver(&id, "http").accepted(SignalKind::Traces, 1);
        t.receiver(&id, "http").accepted(SignalKind::Traces, 1);
        assert!(t.encode().contains(
            r#"authwatch_receiver_accepted_spans_total{receiver="otlp",transport="http"} 2"#
        ));
    }
}
