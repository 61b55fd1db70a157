//! The handles components count with, and how they reach the meter provider.
//!
//! Counters and gauges are plain atomics: counting on the hot path is one relaxed atomic add, with
//! no allocation and no attribute lookup. The meter provider reads them through observable
//! instruments (callbacks) when a reader collects. Histograms are recorded per batch, not per
//! item, into OpenTelemetry SDK histograms whose attributes were built once, when the series was
//! created.

use std::collections::HashMap;
use std::fmt;
use std::hash::Hash;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};

use opentelemetry::metrics::{AsyncInstrument, Meter};
use opentelemetry::KeyValue;

/// What a registration tells an instrument: its full name and help text.
#[doc(hidden)]
#[derive(Debug, Clone)]
pub struct Describe {
    /// The full name, prefix included (`authwatch_processor_redactions`).
    pub name: String,
    pub help: String,
}

/// The label keys of a metric, in the order they were first seen (the exposition order).
pub(crate) type LabelOrder = Arc<Mutex<Vec<String>>>;

/// Calls its argument once per series: the handle and its attributes.
#[doc(hidden)]
pub type Points<M> = Arc<dyn Fn(&mut dyn FnMut(&M, &[KeyValue])) + Send + Sync>;

/// A histogram metric's series (attributes and bounds), so that `/metrics` shows a series at
/// zero before its first observation, as it did before the SDK.
pub(crate) type Declared = Arc<dyn Fn(&mut dyn FnMut(&[KeyValue], &[f64])) + Send + Sync>;

/// What registering a metric tells the text encoder.
#[doc(hidden)]
pub struct Registration {
    pub(crate) kind: SeriesKind,
    pub(crate) order: Option<LabelOrder>,
    pub(crate) declared: Option<Declared>,
}

// === Counter, Gauge, GaugeF64 ===

/// A monotonic counter. Cheap to clone: clones count into the same value.
#[derive(Clone, Debug, Default)]
pub struct Counter(Arc<AtomicU64>);

impl Counter {
    /// Adds one; returns the previous value.
    pub fn inc(&self) -> u64 {
        self.inc_by(1)
    }
    /// Adds `v`; returns the previous value.
    pub fn inc_by(&self, v: u64) -> u64 {
        self.0.fetch_add(v, Ordering::Relaxed)
    }
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// An integer gauge. Cheap to clone: clones share the value.
#[derive(Clone, Debug, Default)]
pub struct Gauge(Arc<AtomicI64>);

impl Gauge {
    /// Sets the value; returns the previous one.
    pub fn set(&self, v: i64) -> i64 {
        self.0.swap(v, Ordering::Relaxed)
    }
    pub fn inc(&self) -> i64 {
        self.inc_by(1)
    }
    pub fn inc_by(&self, v: i64) -> i64 {
        self.0.fetch_add(v, Ordering::Relaxed)
    }
    pub fn dec(&self) -> i64 {
        self.dec_by(1)
    }
    pub fn dec_by(&self, v: i64) -> i64 {
        self.0.fetch_sub(v, Ordering::Relaxed)
    }
    pub fn get(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A floating-point gauge (seconds, ratios). Cheap to clone: clones share the value.
#[derive(Clone, Debug, Default)]
pub struct GaugeF64(Arc<AtomicU64>);

impl GaugeF64 {
    /// Sets the value; returns the previous one.
    pub fn set(&self, v: f64) -> f64 {
        f64::from_bits(self.0.swap(v.to_bits(), Ordering::Relaxed))
    }
    pub fn get(&self) -> f64 {
        f64::from_bits(self.0.load(Ordering::Relaxed))
    }
}

// === Histogram ===

/// A histogram with explicit bucket bounds, recorded into an SDK histogram once registered
/// (through [`crate::telemetry::Telemetry::metric`], alone or in a [`Family`]). Observations made
/// on a histogram that was never registered go nowhere. Meant for per-batch figures: each
/// observation is one SDK record (an attribute-set lookup), not one atomic add.
#[derive(Clone)]
pub struct Histogram {
    inner: Arc<HistogramInner>,
}

struct HistogramInner {
    bounds: Vec<f64>,
    sink: OnceLock<(opentelemetry::metrics::Histogram<f64>, Arc<[KeyValue]>)>,
}

impl Histogram {
    /// A histogram with these upper bucket bounds (`+Inf` is implied; bounds that are not finite
    /// are ignored, the rest sorted).
    pub fn new(buckets: impl IntoIterator<Item = f64>) -> Self {
        let mut bounds: Vec<f64> = buckets.into_iter().filter(|b| b.is_finite()).collect();
        bounds.sort_by(f64::total_cmp);
        bounds.dedup();
        Histogram {
            inner: Arc::new(HistogramInner {
                bounds,
                sink: OnceLock::new(),
            }),
        }
    }

    pub fn observe(&self, v: f64) {
        if let Some((h, attrs)) = self.inner.sink.get() {
            h.record(v, attrs);
        }
    }

    /// The upper bucket bounds, `+Inf` not included.
    pub fn bounds(&self) -> &[f64] {
        &self.inner.bounds
    }
}

impl fmt::Debug for Histogram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Histogram")
            .field("bounds", &self.inner.bounds)
            .field("registered", &self.inner.sink.get().is_some())
            .finish()
    }
}

// === Series: what a metric or a family member is ===

/// The Prometheus type a series is exposed as.
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeriesKind {
    Counter,
    Gauge,
    Histogram,
}

/// One time series' handle: a [`Counter`], [`Gauge`], [`GaugeF64`] or [`Histogram`].
pub trait Series: Clone + Send + Sync + 'static {
    /// What registration leaves for new series to bind to (the SDK histogram; nothing for the
    /// observable kinds).
    #[doc(hidden)]
    type Sink: Send + Sync + 'static;
    #[doc(hidden)]
    const KIND: SeriesKind;
    /// Creates the SDK instrument for a metric whose series `points` lists; `template` is one
    /// series as the metric makes them (a histogram's bounds).
    #[doc(hidden)]
    fn instrument(meter: &Meter, d: &Describe, template: &Self, points: Points<Self>)
        -> Self::Sink;
    /// Connects a new series to the registered instrument.
    #[doc(hidden)]
    fn bind(&self, _sink: &Self::Sink, _attrs: &Arc<[KeyValue]>) {}
    /// The series the text encoder shows even before the SDK has data for them.
    #[doc(hidden)]
    fn declared(_points: &Points<Self>) -> Option<Declared> {
        None
    }
}

impl Series for Counter {
    type Sink = ();
    const KIND: SeriesKind = SeriesKind::Counter;
    fn instrument(meter: &Meter, d: &Describe, _: &Self, points: Points<Self>) {
        meter
            .u64_observable_counter(d.name.clone())
            .with_description(d.help.clone())
            .with_callback(move |o: &dyn AsyncInstrument<u64>| {
                points(&mut |c, attrs| o.observe(c.get(), attrs))
            })
            .build();
    }
}

impl Series for Gauge {
    type Sink = ();
    const KIND: SeriesKind = SeriesKind::Gauge;
    fn instrument(meter: &Meter, d: &Describe, _: &Self, points: Points<Self>) {
        meter
            .i64_observable_gauge(d.name.clone())
            .with_description(d.help.clone())
            .with_callback(move |o: &dyn AsyncInstrument<i64>| {
                points(&mut |g, attrs| o.observe(g.get(), attrs))
            })
            .build();
    }
}

impl Series for GaugeF64 {
    type Sink = ();
    const KIND: SeriesKind = SeriesKind::Gauge;
    fn instrument(meter: &Meter, d: &Describe, _: &Self, points: Points<Self>) {
        meter
            .f64_observable_gauge(d.name.clone())
            .with_description(d.help.clone())
            .with_callback(move |o: &dyn AsyncInstrument<f64>| {
                points(&mut |g, attrs| o.observe(g.get(), attrs))
            })
            .build();
    }
}

impl Series for Histogram {
    type Sink = opentelemetry::metrics::Histogram<f64>;
    const KIND: SeriesKind = SeriesKind::Histogram;
    fn instrument(
        meter: &Meter,
        d: &Describe,
        template: &Self,
        _: Points<Self>,
    ) -> opentelemetry::metrics::Histogram<f64> {
        meter
            .f64_histogram(d.name.clone())
            .with_description(d.help.clone())
            .with_boundaries(template.inner.bounds.clone())
            .build()
    }
    fn bind(&self, sink: &Self::Sink, attrs: &Arc<[KeyValue]>) {
        let _ = self.inner.sink.set((sink.clone(), attrs.clone()));
    }
    fn declared(points: &Points<Self>) -> Option<Declared> {
        let points = points.clone();
        Some(Arc::new(move |f| {
            points(&mut |h: &Histogram, attrs| f(attrs, h.bounds()))
        }))
    }
}

// === Label sets and families ===

/// A family's labels: names and values, in exposition order. Implemented for
/// `Vec<(String, String)>`; structs get it from [`label_set!`](crate::label_set).
pub trait LabelSet: Clone + Eq + Hash + Send + Sync + 'static {
    fn labels(&self) -> Vec<(String, String)>;
}

impl LabelSet for Vec<(String, String)> {
    fn labels(&self) -> Vec<(String, String)> {
        self.clone()
    }
}

/// Implements [`LabelSet`] for a struct of `Display` fields, labels named as the fields, in the
/// order given: `authwatch_core::label_set!(BatchLabels { processor, pipeline });`.
#[macro_export]
macro_rules! label_set {
    ($ty:ty { $($field:ident),+ $(,)? }) => {
        impl $crate::telemetry::LabelSet for $ty {
            fn labels(&self) -> ::std::vec::Vec<(::std::string::String, ::std::string::String)> {
                ::std::vec![$((::std::stringify!($field).to_owned(), self.$field.to_string())),+]
            }
        }
    };
}

/// Series of one metric, one per label set, created on first use. Cheap to clone: clones share
/// the series.
pub struct Family<L, M: Series, C = fn() -> M> {
    inner: Arc<FamilyInner<L, M, C>>,
}

type SeriesMap<L, M> = RwLock<HashMap<L, (M, Arc<[KeyValue]>)>>;

struct FamilyInner<L, M: Series, C> {
    series: SeriesMap<L, M>,
    constructor: C,
    sink: OnceLock<M::Sink>,
    order: LabelOrder,
}

impl<L, M: Series, C> Clone for Family<L, M, C> {
    fn clone(&self) -> Self {
        Family {
            inner: self.inner.clone(),
        }
    }
}

impl<L, M: Series, C> fmt::Debug for Family<L, M, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Family").finish_non_exhaustive()
    }
}

impl<L: LabelSet, M: Series + Default> Default for Family<L, M> {
    fn default() -> Self {
        Family::new_with_constructor(M::default)
    }
}

impl<L: LabelSet, M: Series, C: Fn() -> M> Family<L, M, C> {
    /// A family whose series are made by `constructor` (a histogram's buckets).
    pub fn new_with_constructor(constructor: C) -> Self {
        Family {
            inner: Arc::new(FamilyInner {
                series: RwLock::default(),
                constructor,
                sink: OnceLock::new(),
                order: LabelOrder::default(),
            }),
        }
    }

    /// The series for `labels`, created on first use. Take it once and keep it where counting
    /// is hot: this looks the label set up.
    pub fn get_or_create(&self, labels: &L) -> M {
        let inner = &self.inner;
        {
            let series = inner.series.read().unwrap_or_else(|e| e.into_inner());
            if let Some((m, _)) = series.get(labels) {
                return m.clone();
            }
        }
        let mut series = inner.series.write().unwrap_or_else(|e| e.into_inner());
        if let Some((m, _)) = series.get(labels) {
            return m.clone();
        }
        let pairs = labels.labels();
        {
            let mut order = inner.order.lock().unwrap_or_else(|e| e.into_inner());
            for (k, _) in &pairs {
                if !order.contains(k) {
                    order.push(k.clone());
                }
            }
        }
        let attrs: Arc<[KeyValue]> = pairs
            .into_iter()
            .map(|(k, v)| KeyValue::new(k, v))
            .collect();
        let m = (inner.constructor)();
        if let Some(sink) = inner.sink.get() {
            m.bind(sink, &attrs);
        }
        series.insert(labels.clone(), (m.clone(), attrs));
        m
    }
}

// === Metric: what `Telemetry::metric` registers ===

/// What [`crate::telemetry::Telemetry::metric`] registers: a single series or a [`Family`].
pub trait Metric: Clone + Send + Sync + 'static {
    /// Creates the metric's SDK instrument; returns what the text encoder needs.
    #[doc(hidden)]
    fn register(&self, meter: &Meter, d: &Describe) -> Registration;
}

impl<M: Series> Metric for M {
    fn register(&self, meter: &Meter, d: &Describe) -> Registration {
        let me = self.clone();
        let points: Points<M> = Arc::new(move |f| f(&me, &[]));
        let declared = M::declared(&points);
        let sink = M::instrument(meter, d, self, points);
        self.bind(&sink, &Arc::from([]));
        Registration {
            kind: M::KIND,
            order: None,
            declared,
        }
    }
}

impl<L, M, C> Metric for Family<L, M, C>
where
    L: LabelSet,
    M: Series,
    C: Fn() -> M + Send + Sync + 'static,
{
    fn register(&self, meter: &Meter, d: &Describe) -> Registration {
        let weak = Arc::downgrade(&self.inner);
        let points: Points<M> = Arc::new(move |f| {
            let Some(inner) = weak.upgrade() else {
                return;
            };
            let series = inner.series.read().unwrap_or_else(|e| e.into_inner());
            for (m, attrs) in series.values() {
                f(m, attrs);
            }
        });
        let template = (self.inner.constructor)();
        let declared = M::declared(&points);
        let sink = M::instrument(meter, d, &template, points);
        // Bind what was created before registration, then let new series bind themselves.
        let series = self.inner.series.write().unwrap_or_else(|e| e.into_inner());
        for (m, attrs) in series.values() {
            m.bind(&sink, attrs);
        }
        let _ = self.inner.sink.set(sink);
        drop(series);
        Registration {
            kind: M::KIND,
            order: Some(self.inner.order.clone()),
            declared,
        }
    }
}
