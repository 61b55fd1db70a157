//! The connector's state: counters and duration histograms per series, sliding-window rings per
//! dependency and source, and error groups. Driven by [`State::record_traces`] and read by
//! [`State::metrics`]; time is passed in (elapsed since start) so tests control it exactly.
//!
//! Split by concern: counting spans here (the per-span hot path), [`ring`] and [`interner`] for
//! the bounded tables it writes, [`groups`] for error groups, [`metrics`] and [`board`] for what a
//! flush reads.

mod board;
mod groups;
mod interner;
mod metrics;
mod ring;

use std::time::Duration;

use authwatch_core::data::find_str;
use authwatch_core::otlp::collector::trace::v1::ExportTraceServiceRequest;
use authwatch_core::semconv;
use authwatch_core::time::Clock;
use rustc_hash::FxHashMap;

use super::classify::{
    classify, endpoint_template, is_candidate, ErrorClass, Source, SpanFacts, SpanKindName,
    SpanView,
};
use super::dedupe::Dedupe;
use super::encoded;
use super::{Config, Dependency, Temporality};
pub use groups::{Group, GroupRecord};
#[cfg(test)]
pub(crate) use groups::{fingerprint, GroupEvent};
use groups::{GroupKey, ERROR_KEYS_PER_GROUP};
use interner::{Interner, OVERFLOW};
use ring::Ring;

/// Service name used when a resource has none.
const UNKNOWN_SERVICE: &str = "unknown_service";

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
    /// Calls their source marked degraded (`synthetic.degraded`).
    degraded: u64,
    /// When this series started counting (cumulative start time).
    start: Duration,
    /// `count` at the last live update.
    live_sent: u64,
}

impl SeriesData {
    fn zero(n_bounds: usize, now: Duration) -> Self {
        SeriesData {
            count: 0,
            sum: 0.0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            buckets: vec![0; n_bounds + 1],
            degraded: 0,
            start: now,
            live_sent: 0,
        }
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
    /// Spans counted recently, to skip them when they are sent again.
    dedupe: Dedupe,
    /// Spans skipped because they had been counted already.
    pub duplicates: u64,
    /// Spans matched / overflowed since start (self-observation for tests and logs).
    pub matched: u64,
    pub overflowed: u64,
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
            dedupe: Dedupe::new(cfg.dedupe_spans),
            duplicates: 0,
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
                .and_then(|r| find_str(&r.attributes, semconv::SERVICE_NAME))
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
        if !self.dedupe.first_time(&facts.ids) {
            self.duplicates += 1;
            return;
        }
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
        if key.endpoint != OVERFLOW && !self.series.contains_key(&key) {
            self.seed_error_series(key, now);
        }
        let n_bounds = self.bounds.len();
        let s = self
            .series
            .entry(key)
            .or_insert_with(|| SeriesData::zero(n_bounds, now));
        s.count += 1;
        s.sum += seconds;
        s.min = s.min.min(seconds);
        s.max = s.max.max(seconds);
        let b = self.bounds.partition_point(|bound| *bound < seconds);
        s.buckets[b] += 1;
        s.degraded += u64::from(view.synthetic_degraded);

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

    /// A call of a new series: with cumulative temporality, its error-class siblings (same
    /// dependency, endpoint, service and source) start at 0 now, so that a scraper sees each
    /// error counter go from 0 to its first burst instead of being born with it (Prometheus'
    /// `increase()` counts nothing for a series' first sample). Only when every missing sibling
    /// fits under the cardinality limit; never for overflow series.
    fn seed_error_series(&mut self, key: SeriesKey, now: Duration) {
        if self.temporality != Temporality::Cumulative {
            return;
        }
        let siblings = || {
            ErrorClass::ALL
                .iter()
                .filter(|c| self.is_error[c.index()] && **c as u8 != key.class)
                .map(move |c| SeriesKey {
                    class: *c as u8,
                    ..key
                })
        };
        let missing = siblings().filter(|k| !self.series.contains_key(k)).count();
        // The new series itself needs a place too.
        if missing == 0 || (self.limit > 0 && self.series_len() + missing + 1 > self.limit) {
            return;
        }
        let seeds: Vec<SeriesKey> = siblings().collect();
        let n_bounds = self.bounds.len();
        for k in seeds {
            self.series
                .entry(k)
                .or_insert_with(|| SeriesData::zero(n_bounds, now));
        }
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

    /// (requests, errors) of a dependency and source over the `i`th configured window.
    pub fn window_totals(&mut self, dep: usize, source: Source, i: usize, now: Duration) -> (u64, u64) {
        let idx = dep * Source::ALL.len() + source.index();
        self.rings
            .get_mut(idx)
            .and_then(|r| r.get_mut(i))
            .map_or((0, 0), |r| r.totals(now))
    }
}
