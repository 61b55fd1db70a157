//! The connector's state: counters and duration histograms per series, sliding-window rings per
//! dependency and source, and error groups. Driven by [`State::record_traces`] and read by
//! [`State::metrics`]; time is passed in (elapsed since start) so tests control it exactly.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use authwatch_core::otlp::collector::logs::v1::ExportLogsServiceRequest;
use authwatch_core::otlp::collector::metrics::v1::ExportMetricsServiceRequest;
use authwatch_core::otlp::collector::trace::v1::ExportTraceServiceRequest;
use authwatch_core::otlp::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use authwatch_core::otlp::logs::v1::{LogRecord, ResourceLogs, ScopeLogs, SeverityNumber};
use authwatch_core::otlp::metrics::v1::{
    metric, number_data_point, AggregationTemporality, Gauge, Histogram, HistogramDataPoint,
    Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum,
};
use authwatch_core::semconv;
use rustc_hash::FxHashMap;

use super::classify::{
    classify, endpoint_template, is_candidate, ErrorClass, Source, SpanFacts, SpanKindName,
    SpanView,
};
use super::encoded;
use super::util::{kv_bool, kv_f64, kv_i64, kv_str, kv_str_array, Clock};
use super::{Config, Dependency, Temporality};

/// Service name used when a resource has none.
const UNKNOWN_SERVICE: &str = "unknown_service";
/// Most services remembered per error group.
const MAX_GROUP_SERVICES: usize = 32;
/// Buckets per window ring (windows up to 5m get 1s buckets).
const RING_BUCKETS: u64 = 300;
const OVERFLOW: u32 = u32::MAX;
/// Error keys remembered per error group allowed (`error_groups.max_groups`): groups are
/// forgotten and new ones made, so the keys they name may outnumber them.
const ERROR_KEYS_PER_GROUP: usize = 4;

/// Identifies one output series; `Copy` so that lookups never allocate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct SeriesKey {
    dep: u16,
    source: u8,
    class: u8,
    endpoint: u32,
    service: u32,
}

#[derive(Debug, Clone)]
struct SeriesData {
    count: u64,
    sum: f64,
    min: f64,
    max: f64,
    buckets: Vec<u64>,
    /// When this series started counting (cumulative start time).
    start: Duration,
}

/// A sliding window as a ring of time buckets: bounded memory whatever the traffic.
#[derive(Debug, Clone)]
pub(crate) struct Ring {
    width_secs: u64,
    buckets: Vec<(u64, u64)>,
    /// Absolute index (seconds / width) of the newest bucket.
    head: u64,
}

impl Ring {
    pub(crate) fn new(window: Duration) -> Self {
        let secs = window.as_secs().max(1);
        let width_secs = secs.div_ceil(RING_BUCKETS).max(1);
        let n = secs.div_ceil(width_secs).max(1) as usize;
        Ring {
            width_secs,
            buckets: vec![(0, 0); n],
            head: 0,
        }
    }

    fn advance(&mut self, now: Duration) -> usize {
        let idx = now.as_secs() / self.width_secs;
        let n = self.buckets.len() as u64;
        if idx > self.head {
            let gap = (idx - self.head).min(n);
            for i in 0..gap {
                let slot = ((idx - i) % n) as usize;
                self.buckets[slot] = (0, 0);
            }
            self.head = idx;
        }
        (self.head % n) as usize
    }

    pub(crate) fn add(&mut self, now: Duration, requests: u64, errors: u64) {
        let slot = self.advance(now);
        let b = &mut self.buckets[slot];
        b.0 += requests;
        b.1 += errors;
    }

    /// (requests, errors) in the window ending now.
    pub(crate) fn totals(&mut self, now: Duration) -> (u64, u64) {
        self.advance(now);
        self.buckets
            .iter()
            .fold((0, 0), |(r, e), b| (r + b.0, e + b.1))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct GroupKey {
    dep: u16,
    endpoint: u32,
    class: u8,
    key: u32,
}

/// An error group: one kind of dependency failure, Sentry-style.
#[derive(Debug, Clone)]
pub struct Group {
    pub first_seen: Duration,
    pub last_seen: Duration,
    pub count: u64,
    pub services: BTreeSet<u32>,
    /// Requests to the group's endpoint before the group was first seen.
    endpoint_requests_before: u64,
}

/// Whether an error-group record announces a new group or a regression.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupEvent {
    New,
    Regressed,
}

/// An interned string table: lookups by `&str` never allocate. With a `cap`, strings beyond it
/// get [`OVERFLOW`] instead of an id, so memory stays bounded whatever the spans carry.
#[derive(Debug, Default)]
struct Interner {
    ids: HashMap<String, u32>,
    names: Vec<String>,
    /// Most strings kept; 0 = no limit.
    cap: usize,
}

/// The name of the [`OVERFLOW`] id: endpoints, services or error keys past their cap.
const OTHER: &str = "{other}";

impl Interner {
    fn with_cap(cap: usize) -> Self {
        Interner {
            cap,
            ..Default::default()
        }
    }

    fn get_or_insert(&mut self, s: &str) -> u32 {
        if let Some(id) = self.ids.get(s) {
            return *id;
        }
        if self.cap > 0 && self.names.len() >= self.cap {
            return OVERFLOW;
        }
        let id = self.names.len() as u32;
        self.names.push(s.to_owned());
        self.ids.insert(s.to_owned(), id);
        id
    }
    #[cfg(test)]
    fn get(&self, s: &str) -> Option<u32> {
        self.ids.get(s).copied()
    }
    fn name(&self, id: u32) -> &str {
        if id == OVERFLOW {
            return OTHER;
        }
        self.names.get(id as usize).map_or("", String::as_str)
    }
}

/// Everything the connector keeps between flushes.
pub struct State {
    dependencies: Vec<Dependency>,
    kinds: Vec<SpanKindName>,
    auth_rejected: Vec<String>,
    is_error: [bool; 7],
    windows: Vec<Duration>,
    temporality: Temporality,
    limit: usize,
    bounds: Vec<f64>,
    groups_enabled: bool,
    resolve_after: Duration,
    max_groups: usize,

    endpoints: Interner,
    services: Interner,
    error_keys: Interner,
    // Maps keyed by interned ids (small integers the sender cannot choose) use FxHash; the
    // interners, keyed by strings from spans, keep the std hasher's DoS resistance.
    series: FxHashMap<SeriesKey, SeriesData>,
    /// Per dependency and source, one ring per configured window.
    rings: Vec<Vec<Ring>>,
    groups: FxHashMap<GroupKey, Group>,
    endpoint_requests: FxHashMap<(u16, u32), u64>,
    scratch: String,
    last_flush: Duration,
    clock: Clock,
    /// Calls per dependency and error class since start (for the status board).
    class_totals: Vec<[u64; 7]>,
    /// Spans matched / overflowed since start (self-observation for tests and logs).
    pub matched: u64,
    pub overflowed: u64,
}

/// One error-group record to emit.
#[derive(Debug, PartialEq)]
pub struct GroupRecord {
    pub event: GroupEvent,
    pub at: Duration,
    pub attributes: Vec<KeyValue>,
    pub body: String,
}

impl State {
    pub fn new(cfg: &Config, clock: Clock) -> Self {
        let mut is_error = [false; 7];
        for c in &cfg.error_classes {
            is_error[c.index()] = true;
        }
        let rings = (0..cfg.dependencies.len() * Source::ALL.len())
            .map(|_| cfg.windows.iter().map(|w| Ring::new(w.get())).collect())
            .collect();
        State {
            dependencies: cfg.dependencies.clone(),
            kinds: cfg.span_kinds.clone(),
            auth_rejected: cfg.auth_rejected_errors.clone(),
            is_error,
            windows: cfg.windows.iter().map(|w| w.get()).collect(),
            temporality: cfg.aggregation_temporality,
            limit: cfg.aggregation_cardinality_limit,
            bounds: cfg.histogram.buckets.clone(),
            groups_enabled: cfg.error_groups.enabled,
            resolve_after: cfg.error_groups.resolve_after,
            max_groups: cfg.error_groups.max_groups.get(),
            // Each endpoint and service has at least one series, so more of them than series
            // could not be told apart anyway; error keys only name groups.
            endpoints: Interner::with_cap(cfg.aggregation_cardinality_limit),
            services: Interner::with_cap(cfg.aggregation_cardinality_limit),
            error_keys: Interner::with_cap(ERROR_KEYS_PER_GROUP * cfg.error_groups.max_groups.get()),
            series: FxHashMap::default(),
            rings,
            groups: FxHashMap::default(),
            endpoint_requests: FxHashMap::default(),
            scratch: String::with_capacity(64),
            last_flush: Duration::ZERO,
            clock,
            class_totals: vec![[0; 7]; cfg.dependencies.len()],
            matched: 0,
            overflowed: 0,
        }
    }

    /// Counts every matched span of the request; returns the error-group records to emit.
    pub fn record_traces(
        &mut self,
        req: &ExportTraceServiceRequest,
        now: Duration,
    ) -> Vec<GroupRecord> {
        let mut out = Vec::new();
        for rs in &req.resource_spans {
            let service = rs
                .resource
                .as_ref()
                .and_then(|r| super::util::find_str(&r.attributes, semconv::SERVICE_NAME))
                .unwrap_or(UNKNOWN_SERVICE);
            let service_id = self.services.get_or_insert(service);
            for ss in &rs.scope_spans {
                for span in &ss.spans {
                    let view = SpanView::of(span);
                    self.observe(&view, &SpanFacts::of(span), service_id, now, &mut out);
                }
            }
        }
        out
    }

    /// [`State::record_traces`] on an encoded `ExportTraceServiceRequest`, reading only the
    /// fields the connector needs. `None` when the bytes are not a valid request (the spans
    /// before the fault are counted).
    pub fn record_traces_encoded(&mut self, req: &[u8], now: Duration) -> Option<Vec<GroupRecord>> {
        let mut out = Vec::new();
        for rs in encoded::messages(req, 1) {
            let rs = rs?;
            let service = encoded::service_name(rs)?.unwrap_or(UNKNOWN_SERVICE);
            let service_id = self.services.get_or_insert(service);
            for ss in encoded::messages(rs, 2) {
                for span in encoded::messages(ss?, 2) {
                    let (view, facts) = encoded::span(span?)?;
                    self.observe(&view, &facts, service_id, now, &mut out);
                }
            }
        }
        Some(out)
    }

    fn observe(
        &mut self,
        view: &SpanView<'_>,
        facts: &SpanFacts,
        service_id: u32,
        now: Duration,
        out: &mut Vec<GroupRecord>,
    ) {
        if !is_candidate(facts, view, &self.kinds) {
            return;
        }
        let Some(dep) = self.dependencies.iter().position(|d| d.matches(view)) else {
            return;
        };
        if let Some(rec) = self.record(dep as u16, view, service_id, facts.seconds, now) {
            out.push(rec);
        }
    }

    fn record(
        &mut self,
        dep: u16,
        view: &SpanView<'_>,
        service: u32,
        seconds: f64,
        now: Duration,
    ) -> Option<GroupRecord> {
        self.matched += 1;
        let class = classify(view, &self.auth_rejected);
        let source = view.source();
        endpoint_template(view, &mut self.scratch);
        let endpoint = self.endpoints.get_or_insert(&self.scratch);
        let is_error = self.is_error[class.index()];
        if let Some(t) = self.class_totals.get_mut(dep as usize) {
            t[class.index()] += 1;
        }

        let mut key = SeriesKey {
            dep,
            source: source as u8,
            class: class as u8,
            endpoint,
            service,
        };
        let interned_overflow = endpoint == OVERFLOW || service == OVERFLOW;
        if interned_overflow
            || (!self.series.contains_key(&key) && self.limit > 0 && self.series_len() >= self.limit)
        {
            key.endpoint = OVERFLOW;
            key.service = OVERFLOW;
            self.overflowed += 1;
        }
        let n_bounds = self.bounds.len();
        let s = self.series.entry(key).or_insert_with(|| SeriesData {
            count: 0,
            sum: 0.0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            buckets: vec![0; n_bounds + 1],
            start: now,
        });
        s.count += 1;
        s.sum += seconds;
        s.min = s.min.min(seconds);
        s.max = s.max.max(seconds);
        let b = self.bounds.partition_point(|bound| *bound < seconds);
        s.buckets[b] += 1;

        let ring_idx = dep as usize * Source::ALL.len() + source.index();
        if let Some(rings) = self.rings.get_mut(ring_idx) {
            for r in rings {
                r.add(now, 1, u64::from(is_error));
            }
        }
        let before = {
            let e = self.endpoint_requests.entry((dep, endpoint)).or_insert(0);
            *e += 1;
            *e - 1
        };
        if class == ErrorClass::Ok || !self.groups_enabled {
            return None;
        }
        self.record_group(dep, endpoint, class, view, service, before, now)
    }

    /// Endpoints, services and error keys interned (tests: they stay under their caps).
    #[cfg(test)]
    pub fn interned(&self) -> (usize, usize, usize) {
        (
            self.endpoints.names.len(),
            self.services.names.len(),
            self.error_keys.names.len(),
        )
    }

    /// Series other than overflow ones.
    fn series_len(&self) -> usize {
        self.series.len()
    }

    #[allow(clippy::too_many_arguments)]
    fn record_group(
        &mut self,
        dep: u16,
        endpoint: u32,
        class: ErrorClass,
        view: &SpanView<'_>,
        service: u32,
        before: u64,
        now: Duration,
    ) -> Option<GroupRecord> {
        let key_str = match view.error_key() {
            Some(k) => k,
            None => match view.status_code {
                Some(code) => {
                    self.scratch.clear();
                    use std::fmt::Write;
                    let _ = write!(self.scratch, "{code}");
                    self.scratch.as_str()
                }
                None => class.as_str(),
            },
        };
        let key_id = self.error_keys.get_or_insert(key_str);
        let gk = GroupKey {
            dep,
            endpoint,
            class: class as u8,
            key: key_id,
        };
        let event = match self.groups.get_mut(&gk) {
            Some(g) => {
                let regressed = now.saturating_sub(g.last_seen) >= self.resolve_after;
                g.last_seen = now;
                g.count += 1;
                if g.services.len() < MAX_GROUP_SERVICES {
                    g.services.insert(service);
                }
                regressed.then_some(GroupEvent::Regressed)
            }
            None => {
                if self.groups.len() >= self.max_groups {
                    // Forget the group seen least recently.
                    if let Some(oldest) = self
                        .groups
                        .iter()
                        .min_by_key(|(_, g)| g.last_seen)
                        .map(|(k, _)| *k)
                    {
                        self.groups.remove(&oldest);
                    }
                }
                self.groups.insert(
                    gk,
                    Group {
                        first_seen: now,
                        last_seen: now,
                        count: 1,
                        services: BTreeSet::from([service]),
                        endpoint_requests_before: before,
                    },
                );
                Some(GroupEvent::New)
            }
        }?;
        Some(self.group_record(gk, event, now))
    }

    fn group_record(&self, gk: GroupKey, event: GroupEvent, now: Duration) -> GroupRecord {
        let g = &self.groups[&gk];
        let dep = &self.dependencies[gk.dep as usize].name;
        let endpoint = self.endpoints.name(gk.endpoint);
        let key = self.error_keys.name(gk.key);
        let class = ErrorClass::ALL[gk.class as usize];
        let total = self
            .endpoint_requests
            .get(&(gk.dep, gk.endpoint))
            .copied()
            .unwrap_or(0)
            .saturating_sub(g.endpoint_requests_before);
        let share = if total == 0 {
            0.0
        } else {
            g.count as f64 / total as f64
        };
        let fp = fingerprint(dep, endpoint, class.as_str(), key);
        let p = semconv::ERROR_GROUP_PREFIX;
        let attributes = vec![
            kv_str(format!("{p}fingerprint"), fp),
            kv_str(
                format!("{p}state"),
                match event {
                    GroupEvent::New => "new",
                    GroupEvent::Regressed => "regressed",
                },
            ),
            kv_str(semconv::DEPENDENCY, dep.clone()),
            kv_str(semconv::ENDPOINT, endpoint),
            kv_str(semconv::ERROR_CLASS, class.as_str()),
            kv_str(format!("{p}key"), key),
            kv_str(format!("{p}first_seen"), self.clock.rfc3339(g.first_seen)),
            kv_str(format!("{p}last_seen"), self.clock.rfc3339(g.last_seen)),
            kv_i64(format!("{p}count"), g.count as i64),
            kv_str_array(
                format!("{p}services"),
                g.services
                    .iter()
                    .map(|s| self.services.name(*s).to_owned()),
            ),
            kv_f64(format!("{p}share"), share),
        ];
        let what = match event {
            GroupEvent::New => "New",
            GroupEvent::Regressed => "Regressed",
        };
        GroupRecord {
            event,
            at: now,
            attributes,
            body: format!("{what} error group: {dep} {endpoint} {key} ({}).", class.as_str()),
        }
    }

    /// The error group of a dependency, endpoint and key, if any (for tests and tools).
    #[cfg(test)]
    pub fn group(&self, dep: &str, endpoint: &str, key: &str) -> Option<&Group> {
        let d = self.dependencies.iter().position(|x| x.name == dep)? as u16;
        let e = self.endpoints.get(endpoint)?;
        let k = self.error_keys.get(key)?;
        self.groups
            .iter()
            .find(|(gk, _)| gk.dep == d && gk.endpoint == e && gk.key == k)
            .map(|(_, g)| g)
    }

    /// (requests, errors) of a dependency and source over the `i`th configured window.
    pub fn window_totals(&mut self, dep: usize, source: Source, i: usize, now: Duration) -> (u64, u64) {
        let idx = dep * Source::ALL.len() + source.index();
        self.rings
            .get_mut(idx)
            .and_then(|r| r.get_mut(i))
            .map_or((0, 0), |r| r.totals(now))
    }

    /// The metrics of this flush. With delta temporality the counters start again afterwards.
    pub fn metrics(&mut self, now: Duration) -> ExportMetricsServiceRequest {
        let clock = self.clock;
        let now_ns = clock.unix_nanos(now);
        let delta = self.temporality == Temporality::Delta;
        let temporality = if delta {
            AggregationTemporality::Delta
        } else {
            AggregationTemporality::Cumulative
        } as i32;
        let mut keys: Vec<SeriesKey> = self.series.keys().copied().collect();
        keys.sort();
        let mut requests = Vec::with_capacity(keys.len());
        let mut errors = Vec::new();
        let mut durations = Vec::with_capacity(keys.len());
        for k in &keys {
            let s = &self.series[k];
            let start = if delta { self.last_flush } else { s.start };
            let start_ns = clock.unix_nanos(start);
            let attrs = self.series_attributes(k);
            let point = |v: u64| NumberDataPoint {
                attributes: attrs.clone(),
                start_time_unix_nano: start_ns,
                time_unix_nano: now_ns,
                value: Some(number_data_point::Value::AsInt(v as i64)),
                ..Default::default()
            };
            requests.push(point(s.count));
            if self.is_error[k.class as usize] {
                errors.push(point(s.count));
            }
            durations.push(HistogramDataPoint {
                attributes: attrs.clone(),
                start_time_unix_nano: start_ns,
                time_unix_nano: now_ns,
                count: s.count,
                sum: Some(s.sum),
                bucket_counts: s.buckets.clone(),
                explicit_bounds: self.bounds.clone(),
                min: (s.count > 0).then_some(s.min),
                max: (s.count > 0).then_some(s.max),
                ..Default::default()
            });
        }
        let mut ratios = Vec::new();
        let mut window_requests = Vec::new();
        for dep in 0..self.dependencies.len() {
            for source in Source::ALL {
                for (i, w) in self.windows.clone().into_iter().enumerate() {
                    let (r, e) = self.window_totals(dep, source, i, now);
                    let attrs = vec![
                        kv_str(semconv::DEPENDENCY, self.dependencies[dep].name.clone()),
                        kv_str(semconv::SOURCE, source.as_str()),
                        kv_str(semconv::WINDOW, super::util::Window(w).to_string()),
                    ];
                    window_requests.push(NumberDataPoint {
                        attributes: attrs.clone(),
                        time_unix_nano: now_ns,
                        value: Some(number_data_point::Value::AsInt(r as i64)),
                        ..Default::default()
                    });
                    if r > 0 {
                        ratios.push(NumberDataPoint {
                            attributes: attrs,
                            time_unix_nano: now_ns,
                            value: Some(number_data_point::Value::AsDouble(e as f64 / r as f64)),
                            ..Default::default()
                        });
                    }
                }
            }
        }
        if delta {
            self.series.clear();
        }
        self.last_flush = now;
        let sum = |name: &str, desc: &str, points| Metric {
            name: name.into(),
            description: desc.into(),
            unit: "{request}".into(),
            data: Some(metric::Data::Sum(Sum {
                data_points: points,
                aggregation_temporality: temporality,
                is_monotonic: true,
            })),
            ..Default::default()
        };
        let gauge = |name: &str, desc: &str, unit: &str, points| Metric {
            name: name.into(),
            description: desc.into(),
            unit: unit.into(),
            data: Some(metric::Data::Gauge(Gauge {
                data_points: points,
            })),
            ..Default::default()
        };
        let metrics = vec![
            sum(
                semconv::DEPENDENCY_REQUESTS,
                "Calls to a dependency, by endpoint, error class, calling service and source",
                requests,
            ),
            sum(
                semconv::DEPENDENCY_ERRORS,
                "Calls to a dependency that ended in one of the configured error classes",
                errors,
            ),
            Metric {
                name: semconv::HTTP_CLIENT_REQUEST_DURATION.into(),
                description: "Duration of calls to a dependency".into(),
                unit: "s".into(),
                data: Some(metric::Data::Histogram(Histogram {
                    data_points: durations,
                    aggregation_temporality: temporality,
                })),
                ..Default::default()
            },
            gauge(
                semconv::DEPENDENCY_ERROR_RATIO,
                "Errors divided by calls over a sliding window",
                "1",
                ratios,
            ),
            gauge(
                semconv::DEPENDENCY_WINDOW_REQUESTS,
                "Calls over a sliding window",
                "{request}",
                window_requests,
            ),
        ];
        ExportMetricsServiceRequest {
            resource_metrics: vec![ResourceMetrics {
                resource: Some(Default::default()),
                scope_metrics: vec![ScopeMetrics {
                    scope: Some(scope()),
                    metrics,
                    schema_url: String::new(),
                }],
                schema_url: String::new(),
            }],
        }
    }

    fn series_attributes(&self, k: &SeriesKey) -> Vec<KeyValue> {
        let mut a = vec![
            kv_str(
                semconv::DEPENDENCY,
                self.dependencies[k.dep as usize].name.clone(),
            ),
            kv_str(semconv::ERROR_CLASS, ErrorClass::ALL[k.class as usize].as_str()),
            kv_str(semconv::SOURCE, Source::ALL[k.source as usize].as_str()),
        ];
        if k.endpoint == OVERFLOW {
            a.push(kv_bool(semconv::OTEL_METRIC_OVERFLOW, true));
        } else {
            a.push(kv_str(semconv::ENDPOINT, self.endpoints.name(k.endpoint)));
            a.push(kv_str(semconv::SERVICE_NAME, self.services.name(k.service)));
        }
        a
    }
}

// === status board ===

/// Error groups published per dependency.
const BOARD_GROUPS: usize = 10;

impl State {
    /// What the status page shows per dependency: `(name, dependencies value, error_groups
    /// value)`, shapes as documented in `authwatch_core::board`. Called on flush.
    pub fn board(&mut self, now: Duration) -> Vec<(String, serde_json::Value, serde_json::Value)> {
        use serde_json::json;
        let clock = self.clock;
        let secs = |d: Duration| clock.unix_nanos(d) as f64 / 1e9;
        let updated_at = secs(now);
        let mut out = Vec::with_capacity(self.dependencies.len());
        for dep in 0..self.dependencies.len() {
            let name = self.dependencies[dep].name.clone();
            let mut windows = Vec::with_capacity(self.windows.len());
            for (i, w) in self.windows.clone().into_iter().enumerate() {
                let (tr, te) = self.window_totals(dep, Source::Traffic, i, now);
                let (pr, pe) = self.window_totals(dep, Source::Probe, i, now);
                let (r, e) = (tr + pr, te + pe);
                windows.push(json!({
                    "window": super::util::Window(w).to_string(),
                    "requests": r,
                    "errors": e,
                    "error_ratio": (r > 0).then(|| e as f64 / r as f64),
                    "traffic": {"requests": tr, "errors": te},
                    "probe": {"requests": pr, "errors": pe},
                }));
            }
            let totals = self.class_totals.get(dep).copied().unwrap_or_default();
            let by_class: serde_json::Map<String, serde_json::Value> = ErrorClass::ALL
                .iter()
                .map(|c| (c.as_str().to_owned(), json!(totals[c.index()])))
                .collect();
            let requests: u64 = totals.iter().sum();
            let errors: u64 = ErrorClass::ALL
                .iter()
                .filter(|c| self.is_error[c.index()])
                .map(|c| totals[c.index()])
                .sum();
            let mut groups: Vec<(&GroupKey, &Group)> = self
                .groups
                .iter()
                .filter(|(k, _)| k.dep as usize == dep)
                .collect();
            groups.sort_by(|a, b| b.1.count.cmp(&a.1.count).then(b.1.last_seen.cmp(&a.1.last_seen)));
            let groups: Vec<serde_json::Value> = groups
                .into_iter()
                .take(BOARD_GROUPS)
                .map(|(k, g)| {
                    let endpoint = self.endpoints.name(k.endpoint);
                    let class = ErrorClass::ALL[k.class as usize].as_str();
                    let key = self.error_keys.name(k.key);
                    let total = self
                        .endpoint_requests
                        .get(&(k.dep, k.endpoint))
                        .copied()
                        .unwrap_or(0)
                        .saturating_sub(g.endpoint_requests_before);
                    json!({
                        "fingerprint": fingerprint(&name, endpoint, class, key),
                        "endpoint": endpoint,
                        "class": class,
                        "key": key,
                        "count": g.count,
                        "first_seen": secs(g.first_seen),
                        "last_seen": secs(g.last_seen),
                        "services": g.services.iter().map(|s| self.services.name(*s)).collect::<Vec<_>>(),
                        "share": if total == 0 { 0.0 } else { g.count as f64 / total as f64 },
                    })
                })
                .collect();
            let dep_value = json!({
                "dependency": name,
                "updated_at": updated_at,
                "requests": requests,
                "errors": errors,
                "by_class": by_class,
                "windows": windows,
            });
            let groups_value = json!({"dependency": name, "groups": groups});
            out.push((name, dep_value, groups_value));
        }
        out
    }
}

/// The group fingerprint: 16 hex digits of FNV-1a over dependency, endpoint, class and key
/// (stable across restarts and hosts, unlike `std`'s hasher).
pub fn fingerprint(dep: &str, endpoint: &str, class: &str, key: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in [dep, endpoint, class, key] {
        for b in part.bytes().chain(std::iter::once(0xff)) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    format!("{h:016x}")
}

pub(crate) fn scope() -> InstrumentationScope {
    InstrumentationScope {
        name: "authwatch".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        ..Default::default()
    }
}

/// Wraps log records into one request.
pub(crate) fn logs_request(records: Vec<LogRecord>) -> ExportLogsServiceRequest {
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(Default::default()),
            scope_logs: vec![ScopeLogs {
                scope: Some(scope()),
                log_records: records,
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    }
}

impl GroupRecord {
    pub fn into_log_record(self, clock: &Clock) -> LogRecord {
        let t = clock.unix_nanos(self.at);
        LogRecord {
            time_unix_nano: t,
            observed_time_unix_nano: t,
            severity_number: SeverityNumber::Warn as i32,
            severity_text: "WARN".into(),
            event_name: match self.event {
                GroupEvent::New => semconv::ERROR_GROUP_NEW,
                GroupEvent::Regressed => semconv::ERROR_GROUP_REGRESSED,
            }
            .into(),
            body: Some(AnyValue {
                value: Some(any_value::Value::StringValue(self.body)),
            }),
            attributes: self.attributes,
            ..Default::default()
        }
    }
}
