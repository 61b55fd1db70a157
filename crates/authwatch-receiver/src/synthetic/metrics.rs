//! The metrics of probe runs: cumulative counters and histograms per check, current gauges,
//! kept between runs by [`MetricState`] and sent with each run's trace by `emit`.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use authwatch_core::otlp::collector::metrics::v1::ExportMetricsServiceRequest;
use authwatch_core::otlp::common::v1::KeyValue;
use authwatch_core::otlp::metrics::v1::{
    metric, number_data_point, AggregationTemporality, Gauge, Histogram, HistogramDataPoint,
    Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum,
};
use authwatch_core::semconv as sc;
use authwatch_core::time::otlp_time;

use super::emit::{resource, s, scope, BOUNDS};
use super::outcome::Outcome;
use super::result::{Purpose, RunResult};

/// A cumulative explicit-bucket histogram.
#[derive(Debug, Clone)]
struct Hist {
    counts: [u64; BOUNDS.len() + 1],
    count: u64,
    sum: f64,
    min: f64,
    max: f64,
}

impl Default for Hist {
    fn default() -> Self {
        Hist {
            counts: [0; BOUNDS.len() + 1],
            count: 0,
            sum: 0.0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
        }
    }
}

impl Hist {
    fn record(&mut self, d: Duration) {
        let v = d.as_secs_f64();
        let idx = BOUNDS.iter().position(|b| v <= *b).unwrap_or(BOUNDS.len());
        self.counts[idx] += 1;
        self.count += 1;
        self.sum += v;
        self.min = self.min.min(v);
        self.max = self.max.max(v);
    }

    fn point(&self, attributes: Vec<KeyValue>, start: u64, now: u64) -> HistogramDataPoint {
        HistogramDataPoint {
            attributes,
            start_time_unix_nano: start,
            time_unix_nano: now,
            count: self.count,
            sum: Some(self.sum),
            bucket_counts: self.counts.to_vec(),
            explicit_bounds: BOUNDS.to_vec(),
            min: Some(self.min),
            max: Some(self.max),
            ..Default::default()
        }
    }
}

/// What a check's metrics remember between runs (cumulative temporality).
pub(crate) struct MetricState {
    start: u64,
    runs: BTreeMap<Outcome, u64>,
    duration: Hist,
    phases: BTreeMap<&'static str, Hist>,
}

impl MetricState {
    pub fn new() -> Self {
        MetricState {
            start: otlp_time(SystemTime::now()),
            runs: BTreeMap::new(),
            duration: Hist::default(),
            phases: BTreeMap::new(),
        }
    }

    pub fn record(&mut self, r: &RunResult) {
        *self.runs.entry(r.outcome).or_default() += 1;
        self.duration.record(r.duration());
        for (phase, d) in r.phases() {
            let key = RunResult::phase_names()
                .into_iter()
                .find(|p| *p == phase)
                .unwrap_or("other");
            self.phases.entry(key).or_default().record(d);
        }
    }

    /// The metrics after recording `r`.
    pub fn metrics(&self, r: &RunResult) -> ExportMetricsServiceRequest {
        let now = otlp_time(SystemTime::now());
        let run_start = otlp_time(r.started_at);
        let base = || {
            vec![
                s(sc::SYNTHETIC_CHECK, r.check.clone()),
                s(sc::SYNTHETIC_TYPE, r.check_type),
            ]
        };
        let gauge_int = |name: &str, unit: &str, description: &str, value: i64, attrs| Metric {
            name: name.into(),
            unit: unit.into(),
            description: description.into(),
            data: Some(metric::Data::Gauge(Gauge {
                data_points: vec![NumberDataPoint {
                    attributes: attrs,
                    start_time_unix_nano: run_start,
                    time_unix_nano: now,
                    value: Some(number_data_point::Value::AsInt(value)),
                    ..Default::default()
                }],
            })),
            ..Default::default()
        };
        let mut metrics = vec![gauge_int(
            sc::PROBE_SUCCESS,
            "1",
            "1 if the last run of the check succeeded, 0 if not.",
            i64::from(r.outcome.is_success()),
            base(),
        )];
        if r.degraded_after.is_some() {
            metrics.push(gauge_int(
                sc::PROBE_DEGRADED,
                "1",
                "1 if the last run of the check succeeded but took longer than its degraded_response_time, 0 if not.",
                i64::from(r.degraded),
                base(),
            ));
        }
        metrics.push(Metric {
            name: sc::PROBE_DURATION.into(),
            unit: "s".into(),
            description: "Duration of the check's runs, every request included.".into(),
            data: Some(metric::Data::Histogram(Histogram {
                data_points: vec![self.duration.point(base(), self.start, now)],
                aggregation_temporality: AggregationTemporality::Cumulative as i32,
            })),
            ..Default::default()
        });
        metrics.push(Metric {
            name: sc::PROBE_PHASE_DURATION.into(),
            unit: "s".into(),
            description: "Duration of each phase of the check's runs.".into(),
            data: Some(metric::Data::Histogram(Histogram {
                data_points: self
                    .phases
                    .iter()
                    .map(|(phase, h)| {
                        let mut a = base();
                        a.push(s(sc::SYNTHETIC_PHASE, *phase));
                        h.point(a, self.start, now)
                    })
                    .collect(),
                aggregation_temporality: AggregationTemporality::Cumulative as i32,
            })),
            ..Default::default()
        });
        metrics.push(Metric {
            name: sc::PROBE_RUNS.into(),
            unit: "{run}".into(),
            description: "Runs of the check, by outcome.".into(),
            data: Some(metric::Data::Sum(Sum {
                data_points: self
                    .runs
                    .iter()
                    .map(|(outcome, n)| {
                        let mut a = base();
                        a.push(s(sc::SYNTHETIC_OUTCOME, outcome.as_str()));
                        NumberDataPoint {
                            attributes: a,
                            start_time_unix_nano: self.start,
                            time_unix_nano: now,
                            value: Some(number_data_point::Value::AsInt(
                                i64::try_from(*n).unwrap_or(i64::MAX),
                            )),
                            ..Default::default()
                        }
                    })
                    .collect(),
                aggregation_temporality: AggregationTemporality::Cumulative as i32,
                is_monotonic: true,
            })),
            ..Default::default()
        });
        let server = r
            .steps
            .iter()
            .find(|s| s.purpose == Purpose::Main)
            .map(|s| s.exchange.endpoint.host.clone());
        let with_server = || {
            let mut a = base();
            if let Some(h) = &server {
                a.push(s(sc::SERVER_ADDRESS, h.clone()));
            }
            a
        };
        for (name, unit, description, value) in [
            (
                sc::RATELIMIT_LIMIT,
                "{request}",
                "Requests allowed in the rate-limit window (x-ratelimit-limit).",
                r.ratelimit.limit,
            ),
            (
                sc::RATELIMIT_REMAINING,
                "{request}",
                "Requests left in the rate-limit window (x-ratelimit-remaining).",
                r.ratelimit.remaining,
            ),
            (
                sc::RATELIMIT_RESET,
                "s",
                "Unix time at which the rate-limit window resets (x-ratelimit-reset).",
                r.ratelimit.reset,
            ),
        ] {
            if let Some(v) = value {
                metrics.push(gauge_int(name, unit, description, v, with_server()));
            }
        }
        if let Some(not_after) = r.cert_not_after {
            let now_s = i64::try_from(now / 1_000_000_000).unwrap_or(i64::MAX);
            metrics.push(gauge_int(
                sc::TLS_CERTIFICATE_REMAINING,
                "s",
                "Seconds until the server certificate expires (negative: expired).",
                not_after - now_s,
                with_server(),
            ));
        }
        ExportMetricsServiceRequest {
            resource_metrics: vec![ResourceMetrics {
                resource: Some(resource(&r.check)),
                scope_metrics: vec![ScopeMetrics {
                    scope: Some(scope()),
                    metrics,
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
    }
}

