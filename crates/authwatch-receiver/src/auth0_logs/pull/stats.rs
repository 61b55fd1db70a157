//! What the puller and the log-stream poller report: request outcomes, checkpoint resets, the
//! Management API's rate-limit headroom, the log streams' status and the push stream's silence.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::SystemTime;

use authwatch_core::data::kv_str;
use authwatch_core::otlp::collector::metrics::v1::ExportMetricsServiceRequest;
use authwatch_core::otlp::common::v1::KeyValue;
use authwatch_core::otlp::metrics::v1::{
    metric, number_data_point, AggregationTemporality, Gauge, Metric, NumberDataPoint,
    ResourceMetrics, ScopeMetrics, Sum,
};
use authwatch_core::semconv as sc;
use authwatch_core::time::otlp_time;
use authwatch_tenant_logs::ratelimit::RateLimit;

use super::super::ingest::{resource, scope};

/// The statuses a log stream can have (Auth0's `LogStreamStatusEnum`).
pub const STREAM_STATUSES: [&str; 3] = ["active", "paused", "suspended"];

/// One log stream as last seen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StreamSeen {
    pub id: String,
    pub name: String,
    pub status: String,
}

#[derive(Default)]
struct Inner {
    requests: BTreeMap<(&'static str, &'static str), u64>,
    checkpoint_resets: u64,
    ratelimit: RateLimit,
    streams: Option<Vec<StreamSeen>>,
    silence: Option<f64>,
}

pub(crate) struct Stats {
    start: u64,
    domain: String,
    inner: Mutex<Inner>,
}

impl Stats {
    pub(crate) fn new(domain: String, started: SystemTime) -> Self {
        Stats {
            start: otlp_time(started),
            domain,
            inner: Mutex::new(Inner::default()),
        }
    }

    fn with<R>(&self, f: impl FnOnce(&mut Inner) -> R) -> R {
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut g)
    }

    /// A Management API request to `api` (`logs`, `log_streams`, `token`) ended with `outcome`.
    pub(crate) fn request(&self, api: &'static str, outcome: &'static str) {
        self.with(|i| *i.requests.entry((api, outcome)).or_default() += 1);
    }

    pub(crate) fn checkpoint_reset(&self) {
        self.with(|i| i.checkpoint_resets += 1);
    }

    pub(crate) fn ratelimit(&self, rl: RateLimit) {
        if !rl.is_empty() {
            self.with(|i| i.ratelimit = rl);
        }
    }

    pub(crate) fn streams(&self, seen: Vec<StreamSeen>) {
        self.with(|i| i.streams = Some(seen));
    }

    pub(crate) fn silence(&self, secs: f64) {
        self.with(|i| i.silence = Some(secs));
    }

    /// The metrics as they stand.
    pub(crate) fn export(&self) -> ExportMetricsServiceRequest {
        let now = otlp_time(SystemTime::now());
        let server = || kv_str(sc::SERVER_ADDRESS, &self.domain);
        let point = |attributes: Vec<KeyValue>, v: i64, start: u64| NumberDataPoint {
            attributes,
            start_time_unix_nano: start,
            time_unix_nano: now,
            value: Some(number_data_point::Value::AsInt(v)),
            ..Default::default()
        };
        let gauge = |name: &str, unit: &str, description: &str, data_points| Metric {
            name: name.into(),
            unit: unit.into(),
            description: description.into(),
            data: Some(metric::Data::Gauge(Gauge { data_points })),
            ..Default::default()
        };
        let sum = |name: &str, unit: &str, description: &str, data_points| Metric {
            name: name.into(),
            unit: unit.into(),
            description: description.into(),
            data: Some(metric::Data::Sum(Sum {
                data_points,
                aggregation_temporality: AggregationTemporality::Cumulative as i32,
                is_monotonic: true,
            })),
            ..Default::default()
        };
        let mut metrics = Vec::new();
        self.with(|i| {
            let requests: Vec<_> = i
                .requests
                .iter()
                .map(|((api, outcome), n)| {
                    point(
                        vec![
                            server(),
                            kv_str(sc::AUTH0_PULL_API, *api),
                            kv_str(sc::AUTH0_PULL_OUTCOME, *outcome),
                        ],
                        i64::try_from(*n).unwrap_or(i64::MAX),
                        self.start,
                    )
                })
                .collect();
            if !requests.is_empty() {
                metrics.push(sum(
                    sc::AUTH0_PULL_REQUESTS,
                    "{request}",
                    "Management API requests of the auth0_logs receiver, by API and outcome.",
                    requests,
                ));
            }
            metrics.push(sum(
                sc::AUTH0_PULL_CHECKPOINT_RESETS,
                "{reset}",
                "Corrupt checkpoints moved aside (reading resumed from start_at).",
                vec![point(
                    vec![server()],
                    i64::try_from(i.checkpoint_resets).unwrap_or(i64::MAX),
                    self.start,
                )],
            ));
            metrics.extend(
                i.ratelimit
                    .gauges(&[server(), kv_str(sc::AUTH0_API, "management")], now),
            );
            if let Some(streams) = &i.streams {
                let points = streams
                    .iter()
                    .flat_map(|s| {
                        STREAM_STATUSES.iter().map(move |st| {
                            (
                                vec![
                                    server(),
                                    kv_str(sc::AUTH0_LOG_STREAM_ID, &s.id),
                                    kv_str(sc::AUTH0_LOG_STREAM_NAME, &s.name),
                                    kv_str(sc::AUTH0_LOG_STREAM_STATUS_ATTR, *st),
                                ],
                                i64::from(s.status == *st),
                            )
                        })
                    })
                    .map(|(a, v)| point(a, v, 0))
                    .collect();
                let active = streams
                    .iter()
                    .map(|s| {
                        point(
                            vec![
                                server(),
                                kv_str(sc::AUTH0_LOG_STREAM_ID, &s.id),
                                kv_str(sc::AUTH0_LOG_STREAM_NAME, &s.name),
                            ],
                            i64::from(s.status == "active"),
                            0,
                        )
                    })
                    .collect();
                metrics.push(gauge(
                    sc::AUTH0_LOG_STREAM_ACTIVE,
                    "1",
                    "1 while the log stream is active, 0 while it is paused or suspended.",
                    active,
                ));
                metrics.push(gauge(
                    sc::AUTH0_LOG_STREAM_STATUS,
                    "1",
                    "1 for the log stream's current status (active, paused, suspended), 0 for the others.",
                    points,
                ));
            }
            if let Some(secs) = i.silence {
                metrics.push(Metric {
                    name: sc::AUTH0_LOG_STREAM_SILENCE.into(),
                    unit: "s".into(),
                    description: "Seconds since the log stream last pushed a record (since the receiver started, if none yet).".into(),
                    data: Some(metric::Data::Gauge(Gauge {
                        data_points: vec![NumberDataPoint {
                            attributes: vec![server()],
                            time_unix_nano: now,
                            value: Some(number_data_point::Value::AsDouble(secs)),
                            ..Default::default()
                        }],
                    })),
                    ..Default::default()
                });
            }
        });
        ExportMetricsServiceRequest {
            resource_metrics: vec![ResourceMetrics {
                resource: Some(resource()),
                scope_metrics: vec![ScopeMetrics {
                    scope: Some(scope()),
                    metrics,
                    schema_url: String::new(),
                }],
                schema_url: String::new(),
            }],
        }
    }
}
