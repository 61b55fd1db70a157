//! The metrics of a flush: request and error counters and duration histograms per series, and
//! error ratios and request counts per sliding window. The live lane gets the same metrics,
//! restricted to what changed since the last live update and always cumulative.

use std::time::Duration;

use authwatch_core::data::{kv_bool, kv_str, scope};
use authwatch_core::otlp::collector::metrics::v1::ExportMetricsServiceRequest;
use authwatch_core::otlp::common::v1::KeyValue;
use authwatch_core::otlp::metrics::v1::{
    metric, number_data_point, AggregationTemporality, Gauge, Histogram, HistogramDataPoint,
    Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum,
};
use authwatch_core::semconv;
use authwatch_core::time::Window;

use super::super::classify::{ErrorClass, Source};
use super::super::Temporality;
use super::interner::OVERFLOW;
use super::{SeriesKey, State};

impl State {
    /// The metrics of this flush. With delta temporality the counters start again afterwards.
    pub fn metrics(&mut self, now: Duration) -> ExportMetricsServiceRequest {
        self.build_metrics(now, false)
    }

    /// The live update: the series counted since the last one (cumulative, whatever the
    /// configured temporality) and the windows of their dependencies; `None` when nothing was
    /// counted since. Leaves the exported metrics as they are.
    pub fn live_metrics(&mut self, now: Duration) -> Option<ExportMetricsServiceRequest> {
        if self.series.values().all(|s| s.live_sent == s.count) {
            return None;
        }
        Some(self.build_metrics(now, true))
    }

    fn build_metrics(&mut self, now: Duration, live: bool) -> ExportMetricsServiceRequest {
        let clock = self.clock;
        let now_ns = clock.unix_nanos(now);
        let delta = self.temporality == Temporality::Delta && !live;
        let temporality = if delta {
            AggregationTemporality::Delta
        } else {
            AggregationTemporality::Cumulative
        } as i32;
        let mut changed_deps = vec![!live; self.dependencies.len()];
        let mut keys: Vec<SeriesKey> = if live {
            let mut keys = Vec::new();
            for (k, s) in self.series.iter_mut() {
                if s.live_sent != s.count {
                    s.live_sent = s.count;
                    keys.push(*k);
                    if let Some(d) = changed_deps.get_mut(k.dep as usize) {
                        *d = true;
                    }
                }
            }
            keys
        } else {
            self.series.keys().copied().collect()
        };
        keys.sort();
        let mut requests = Vec::with_capacity(keys.len());
        let mut errors = Vec::new();
        let mut durations = Vec::with_capacity(keys.len());
        let mut degraded = Vec::new();
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
            if s.degraded > 0 {
                degraded.push(point(s.degraded));
            }
            if s.count == 0 {
                // A seeded error series (see `seed_error_series`): its counters start at 0, its
                // histogram with its first call.
                continue;
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
        let deps = changed_deps.iter().enumerate().filter(|(_, changed)| **changed);
        for (dep, _) in deps {
            for source in Source::ALL {
                for (i, w) in self.windows.clone().into_iter().enumerate() {
                    let (r, e) = self.window_totals(dep, source, i, now);
                    let attrs = vec![
                        kv_str(semconv::DEPENDENCY, self.dependencies[dep].name.clone()),
                        kv_str(semconv::SOURCE, source.as_str()),
                        kv_str(semconv::WINDOW, Window(w).to_string()),
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
        // A live update leaves the exported metrics as they are.
        if !live {
            if delta {
                self.series.clear();
            }
            self.last_flush = now;
        }
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
        let mut metrics = vec![
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
        // Only probes with `degraded_response_time` mark calls degraded: no empty metric.
        if !degraded.is_empty() {
            metrics.push(sum(
                semconv::DEPENDENCY_DEGRADED,
                "Calls their source marked degraded: probe runs slower than their check's degraded_response_time",
                degraded,
            ));
        }
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
