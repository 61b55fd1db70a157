//! Tests of the `synthetic` receiver, by what they test: config, the scheduler, OAuth checks
//! against a real OAuth2 server (outcomes, TLS, token validation, grants), `http` checks, that
//! secrets never leave, and `probe`. This file holds what they share: the helpers that run a
//! check against the OAuth2 server and read what it exported.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use authwatch_core::otlp::collector::metrics::v1::ExportMetricsServiceRequest;
use authwatch_core::otlp::collector::trace::v1::ExportTraceServiceRequest;
use authwatch_core::otlp::common::v1::{any_value, KeyValue};
use authwatch_core::otlp::metrics::v1::{metric, number_data_point, Metric};
use authwatch_core::otlp::trace::v1::{span, status, Span};
use authwatch_core::semconv as sc;
use authwatch_core::{Router, Settings, Signal, SignalKind};
use authwatch_testkit::oauth_server::{self as srv, Mode, OAuthOptions, OAuthServer};
use authwatch_testkit::Sink;
use std::time::Duration;

use authwatch_core::config::Secret;
use indexmap::IndexMap;

use super::*;
// (`super::oauth` and `super::schedule`: this module's own `oauth` and `schedule` shadow them.)
use super::oauth::PASSWORD_REALM_GRANT;

mod authcode;
mod config;
mod http_check;
mod oauth;
mod probe;
mod schedule;
mod secrets;
mod tls;
mod tokens;

// === helpers for runs against the OAuth2 server ===

fn oauth_check(s: &OAuthServer) -> OAuthCheck {
    let mut require = IndexMap::new();
    require.insert(srv::CLAIM.to_owned(), serde_json::Value::Bool(true));
    OAuthCheck {
        name: "login".into(),
        token_url: s.token_url(),
        client_id: srv::CLIENT_ID.into(),
        client_secret: Some(Secret::new(srv::CLIENT_SECRET)),
        username: Some(srv::USERNAME.into()),
        password: Some(Secret::new(srv::PASSWORD)),
        audience: Some(srv::AUDIENCE.into()),
        scope: Some("openid profile".into()),
        validate_token: Some(TokenValidation {
            issuer: Some(s.issuer().to_owned()),
            audience: Some(srv::AUDIENCE.into()),
            require_claims: require,
            ..TokenValidation::default()
        }),
        ..OAuthCheck::default()
    }
}

/// What the receiver exported during one run.
struct Exported {
    traces: Vec<ExportTraceServiceRequest>,
    metrics: Vec<ExportMetricsServiceRequest>,
}

impl Exported {
    fn spans(&self) -> Vec<Span> {
        self.traces
            .iter()
            .flat_map(|t| &t.resource_spans)
            .flat_map(|r| &r.scope_spans)
            .flat_map(|s| s.spans.clone())
            .collect()
    }

    fn root(&self) -> Span {
        let roots: Vec<Span> = self
            .spans()
            .into_iter()
            .filter(|s| s.parent_span_id.is_empty())
            .collect();
        assert_eq!(roots.len(), 1, "one root span per run");
        roots[0].clone()
    }

    fn outcome(&self) -> String {
        str_attr(&self.root().attributes, sc::SYNTHETIC_OUTCOME).expect("outcome")
    }

    /// The span tree, indented by depth, siblings by start time: `synthetic login`, `  POST`, ...
    fn tree(&self) -> Vec<String> {
        let spans = self.spans();
        let mut out = Vec::new();
        fn walk(spans: &[Span], parent: &[u8], depth: usize, out: &mut Vec<String>) {
            let mut kids: Vec<&Span> = spans
                .iter()
                .filter(|s| s.parent_span_id == parent)
                .collect();
            kids.sort_by_key(|s| s.start_time_unix_nano);
            for k in kids {
                out.push(format!("{}{}", "  ".repeat(depth), k.name));
                walk(spans, &k.span_id, depth + 1, out);
            }
        }
        walk(&spans, &[], 0, &mut out);
        out
    }

    fn span(&self, name: &str) -> Span {
        self.spans()
            .into_iter()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("no span {name} in {:?}", self.tree()))
    }

    fn metric(&self, name: &str) -> Option<Metric> {
        self.metrics
            .iter()
            .flat_map(|m| &m.resource_metrics)
            .flat_map(|r| &r.scope_metrics)
            .flat_map(|s| s.metrics.clone())
            .find(|m| m.name == name)
    }

    fn gauge(&self, name: &str) -> Option<i64> {
        match self.metric(name)?.data? {
            metric::Data::Gauge(g) => match g.data_points.first()?.value? {
                number_data_point::Value::AsInt(v) => Some(v),
                number_data_point::Value::AsDouble(v) => Some(v as i64),
            },
            _ => None,
        }
    }

    /// `authwatch.probe.runs` points as (outcome, count).
    fn runs(&self) -> Vec<(String, i64)> {
        match self.metric(sc::PROBE_RUNS).and_then(|m| m.data) {
            Some(metric::Data::Sum(s)) => {
                assert!(s.is_monotonic);
                s.data_points
                    .iter()
                    .map(|p| {
                        let v = match p.value {
                            Some(number_data_point::Value::AsInt(v)) => v,
                            _ => -1,
                        };
                        (str_attr(&p.attributes, sc::SYNTHETIC_OUTCOME).unwrap(), v)
                    })
                    .collect()
            }
            other => panic!("runs is not a sum: {other:?}"),
        }
    }

    fn phases(&self) -> Vec<String> {
        match self.metric(sc::PROBE_PHASE_DURATION).and_then(|m| m.data) {
            Some(metric::Data::Histogram(h)) => h
                .data_points
                .iter()
                .map(|p| {
                    assert_eq!(p.count, 1);
                    str_attr(&p.attributes, sc::SYNTHETIC_PHASE).unwrap()
                })
                .collect(),
            other => panic!("phase duration is not a histogram: {other:?}"),
        }
    }

    /// The checks every run's metrics share.
    fn assert_common_metrics(&self, outcome: &str) {
        let success = i64::from(outcome == "success");
        assert_eq!(self.gauge(sc::PROBE_SUCCESS), Some(success));
        assert_eq!(self.runs(), vec![(outcome.to_owned(), 1)]);
        match self.metric(sc::PROBE_DURATION).and_then(|m| m.data) {
            Some(metric::Data::Histogram(h)) => {
                assert_eq!(h.data_points.len(), 1);
                assert_eq!(h.data_points[0].count, 1);
                assert_eq!(h.data_points[0].bucket_counts.iter().sum::<u64>(), 1);
            }
            other => panic!("duration is not a histogram: {other:?}"),
        }
        let resource = &self.metrics[0].resource_metrics[0]
            .resource
            .as_ref()
            .unwrap()
            .attributes;
        assert_eq!(
            str_attr(resource, sc::SERVICE_NAME).as_deref(),
            Some("authwatch")
        );
        assert_eq!(
            str_attr(resource, sc::SYNTHETIC_CHECK).as_deref(),
            Some("login")
        );
        let root = self.root();
        assert_eq!(
            root.status.as_ref().map(|s| s.code).unwrap_or(0) == status::StatusCode::Error as i32,
            outcome != "success",
            "root status must be Error exactly on failure: {root:?}"
        );
    }
}

fn str_attr(attrs: &[KeyValue], key: &str) -> Option<String> {
    attrs.iter().find(|kv| kv.key == key).and_then(|kv| {
        match kv.value.as_ref()?.value.as_ref()? {
            any_value::Value::StringValue(s) => Some(s.clone()),
            any_value::Value::IntValue(i) => Some(i.to_string()),
            _ => None,
        }
    })
}

fn is_error(s: &Span) -> bool {
    s.status.as_ref().map(|s| s.code) == Some(status::StatusCode::Error as i32)
}

/// Builds the receiver with one check and a sink behind a router, lets it run once, stops it.
async fn run_receiver(check: Check, timeout: Duration, signals: Signals) -> (Exported, Sink) {
    let cfg = Config {
        interval: Duration::from_secs(60),
        timeout,
        initial_delay: Duration::ZERO,
        checks: vec![check],
        ..Config::default()
    };
    let (errors, _) = problems(&cfg);
    assert!(errors.is_empty(), "{errors:?}");
    let sink = Sink::new();
    let mut next = Router::new();
    for kind in signals.iter() {
        next.set(kind, sink.shared());
    }
    let settings = Settings::new("synthetic/test".parse().unwrap());
    let shutdown = settings.shutdown.clone();
    let task = cfg
        .build(ReceiverContext { settings, next })
        .await
        .expect("build");
    let handle = tokio::spawn(task);
    let last = if signals.contains(SignalKind::Metrics) {
        SignalKind::Metrics
    } else {
        SignalKind::Traces
    };
    sink.wait_for_items(last, 1, Duration::from_secs(60)).await;
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(30), handle)
        .await
        .expect("receiver stops after shutdown")
        .expect("no panic")
        .expect("ok");
    let mut exported = Exported {
        traces: Vec::new(),
        metrics: Vec::new(),
    };
    for s in sink.received() {
        match s {
            Signal::Traces(t) => exported.traces.push(t),
            Signal::Metrics(m) => exported.metrics.push(m),
            Signal::Logs(_) | Signal::Encoded(_) => panic!("no logs or encoded data expected"),
        }
    }
    (exported, sink)
}

async fn run_oauth(check: Check, timeout: Duration) -> Exported {
    run_receiver(check, timeout, Signals::TRACES | Signals::METRICS)
        .await
        .0
}

const T: Duration = Duration::from_secs(10);

fn lines(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}

fn decode(json: serde_json::Value) -> Result<Config, authwatch_core::ConfigError> {
    authwatch_core::registry::decode_config::<Config>(json)
}

fn problems(cfg: &Config) -> (Vec<String>, Vec<String>) {
    let mut v = Validator::new("receivers::synthetic");
    cfg.validate(&mut v);
    let (e, w) = v.into_parts();
    (
        e.iter().map(ToString::to_string).collect(),
        w.iter().map(ToString::to_string).collect(),
    )
}

fn temp_path(name: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let n = N.fetch_add(1, Ordering::SeqCst);
    std::env::temp_dir().join(format!(
        "authwatch-synthetic-{}-{n}-{name}",
        std::process::id()
    ))
}
