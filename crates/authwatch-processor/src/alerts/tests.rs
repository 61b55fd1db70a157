use std::collections::HashMap;
use std::time::Duration;

use authwatch_core::otlp::collector::metrics::v1::ExportMetricsServiceRequest;
use authwatch_core::otlp::common::v1::{any_value, KeyValue};
use authwatch_core::otlp::logs::v1::LogRecord;
use authwatch_core::otlp::metrics::v1::{metric, Metric};
use authwatch_core::registry::decode_config;
use authwatch_core::{semconv, ConnectorContext, Router, Settings, SignalKind};
use authwatch_testkit::{kv, Sink};

use super::engine::{Engine, State as S};
use super::store::Store;
use super::test_data::{gauge, point, promtool, request, sum};
use super::*;

// --- builders ---





/// Cumulative counters of `dep` as error_rate emits them: `ok` calls and `server_error` calls.
fn counters(dep: &str, source: &str, ok: f64, failed: f64) -> ExportMetricsServiceRequest {
    let attrs = |class: &str| {
        vec![
            kv("dependency", dep),
            kv("endpoint", "/oauth/token"),
            kv("error.class", class),
            kv("service.name", "web"),
            kv("source", source),
        ]
    };
    request(vec![
        sum(
            semconv::DEPENDENCY_REQUESTS,
            vec![point(attrs("ok"), ok, 0), point(attrs("server_error"), failed, 0)],
        ),
        sum(semconv::DEPENDENCY_ERRORS, vec![point(attrs("server_error"), failed, 0)]),
    ])
}

fn probe(check: &str, ok: bool, run: u64) -> ExportMetricsServiceRequest {
    request(vec![gauge(
        "authwatch.probe.success",
        vec![point(vec![kv("synthetic.check", check)], if ok { 1.0 } else { 0.0 }, run)],
    )])
}

fn status(page: &str, indicator: i64) -> ExportMetricsServiceRequest {
    request(vec![gauge(
        semconv::STATUS_INDICATOR,
        vec![point(vec![kv("status.page", page)], indicator as f64, 1)],
    )])
}

fn rules(yaml: serde_json::Value) -> Config {
    let c: Config = decode_config(serde_json::json!({ "rules": yaml })).unwrap();
    let mut v = Validator::new("connectors::alerts");
    c.validate(&mut v);
    assert!(!v.has_errors(), "{:?}", v.errors());
    c
}

fn attrs(r: &LogRecord) -> HashMap<String, String> {
    r.attributes
        .iter()
        .map(|kv| {
            let v = match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                Some(any_value::Value::StringValue(s)) => s.clone(),
                Some(any_value::Value::IntValue(i)) => i.to_string(),
                Some(any_value::Value::DoubleValue(d)) => d.to_string(),
                Some(any_value::Value::BoolValue(b)) => b.to_string(),
                other => format!("{other:?}"),
            };
            (kv.key.clone(), v)
        })
        .collect()
}

fn states(events: &[engine::Event]) -> Vec<String> {
    events
        .iter()
        .map(|e| attrs(&e.record)[semconv::ALERT_STATE].clone())
        .collect()
}

// --- config ---

#[test]
fn config_contract() {
    authwatch_testkit::assert_config_contract::<Config>("alerts");
}

#[test]
fn full_config_decodes_and_round_trips() {
    let c: Config = decode_config(serde_json::json!({
        "resend_interval": "30s",
        "evaluation_interval": "500ms",
        "status_page_url": "https://status.example.com",
        "generator_url": "https://grafana.example.com/d/auth",
        "verdict": {"window": "10m", "traffic_error_ratio": 0.1, "min_requests": 5, "probe_failures": 3},
        "fleet": {"min_sidecars": 3, "error_ratio": 0.2, "window": "10m", "source": "probe", "for": "2m"},
        "rules": [
            {"name": "ratio", "threshold": {"dependency": "auth0", "source": "traffic", "error_ratio": 0.05,
             "resolve_error_ratio": 0.02, "window": "5m", "min_requests": 20},
             "for": "1m", "keep_firing_for": "2m", "severity": "page",
             "labels": {"team": "identity"}, "annotations": {"summary": "x"}, "runbook_url": "https://runbooks/x"},
            {"name": "latency", "threshold": {"metric": "authwatch.probe.duration", "value": 2, "op": "above", "aggregation": "max", "window": "10m"}},
            {"name": "slo", "burn_rate": {"dependency": "auth0", "objective": 99.5, "period": "28d", "min_requests": 100,
             "windows": [{"long": "1h", "short": "5m", "factor": 14, "severity": "page"}]}},
            {"name": "probe", "consecutive": {"check": "login", "failures": 3, "successes": 2, "probe_interval": "30s"}},
            {"name": "incident", "status": {"page": "auth0", "min_indicator": 2}}
        ]
    }))
    .unwrap();
    let mut v = Validator::new("connectors::alerts");
    c.validate(&mut v);
    assert!(!v.has_errors(), "{:?}", v.errors());
    assert_eq!(c.rules.len(), 5);
    assert_eq!(c.rules[0].for_, Duration::from_secs(60));
    assert_eq!(c.rules[2].burn_rate.as_ref().unwrap().windows[0].factor, 14.0);
    assert_eq!(c.rules[3].consecutive.as_ref().unwrap().failures.get(), 3);
    let back: Config = decode_config(serde_json::to_value(&c).unwrap()).unwrap();
    assert_eq!(back, c);
}

#[test]
fn invalid_configs_name_the_path() {
    let e = decode_config::<Config>(serde_json::json!({"rules": [{"name": "a", "thresold": {}}]}))
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("rules::0::thresold: unknown field `thresold`"), "{e}");
    let e = decode_config::<Config>(serde_json::json!({"rules": [{"name": "a", "consecutive": {"failures": 0}}]}))
        .unwrap_err()
        .to_string();
    assert_eq!(e, "rules::0::consecutive::failures: must be positive");

    let errors = |j: serde_json::Value| {
        let c: Config = decode_config(j).unwrap();
        let mut v = Validator::new("connectors::alerts");
        c.validate(&mut v);
        v.into_parts().0.iter().map(|e| e.to_string()).collect::<Vec<_>>()
    };
    assert_eq!(
        errors(serde_json::json!({"rules": [
            {"name": "a"},
            {"name": "a", "threshold": {"error_ratio": 0.1}, "status": {}},
            {"name": "9bad", "threshold": {"error_ratio": 1.5}},
            {"name": "v", "threshold": {"value": 1}},
            {"name": "w", "threshold": {"error_ratio": 0.1, "resolve_error_ratio": 0.2}, "labels": {"bad-label": "x"}},
            {"name": "b", "burn_rate": {"objective": 0.999, "windows": [{"long": "5m", "short": "1h", "factor": 0, "severity": "page"}]}},
            {"name": "s", "status": {"min_indicator": 4}}
        ], "status_page_url": "status.auth0.com", "evaluation_interval": "5s"})),
        [
            "connectors::alerts::rules::0: must have exactly one of `threshold`, `burn_rate`, `consecutive`, `status` or `latency`",
            "connectors::alerts::rules::1: must have exactly one of `threshold`, `burn_rate`, `consecutive`, `status` or `latency`",
            "connectors::alerts::rules::1::name: `a` is used by another rule; rule names must be unique",
            "connectors::alerts::rules::2::name: must be a label-safe name: letters, digits and `_`, not starting with a digit",
            "connectors::alerts::rules::2::threshold::error_ratio: must be at least 0 and below 1, e.g. 0.05",
            "connectors::alerts::rules::3::threshold::metric: is required with `value`: the metric to compare",
            "connectors::alerts::rules::4::labels::bad-label: label names must be letters, digits and `_`, not starting with a digit",
            "connectors::alerts::rules::4::threshold::resolve_error_ratio: must be between 0 and `error_ratio`",
            "connectors::alerts::rules::5::burn_rate::objective: must be a percentage from 50 to below 100, e.g. 99.9",
            "connectors::alerts::rules::5::burn_rate::windows::0::short: must be shorter than `long`",
            "connectors::alerts::rules::5::burn_rate::windows::0::factor: must be a positive number, e.g. 14.4",
            "connectors::alerts::rules::6::status::min_indicator: must be 1 (minor), 2 (major) or 3 (critical)",
            "connectors::alerts::evaluation_interval: must be longer than zero and at most `1s`, so that alerts fire within a second",
            "connectors::alerts::status_page_url: must be an http(s) URL, e.g. https://status.auth0.com",
        ]
    );
}

// --- the SRE workbook's worked example ---

/// 99.9% over 30 days, 10 calls a second, then every call fails for 300s, then none does.
/// The workbook: budget 0.1% (43.2 minutes of full outage); 14.4x over 1h spends 2% of it;
/// detection time = (1 - SLO) / error_rate * window * factor: 1h/5m pages after 51.84s,
/// 1d/2h tickets after 259.2s; the 5m short window resets the 1h pair ~5 minutes after recovery.
#[test]
fn sre_workbook_burn_rate_example() {
    let c = rules(serde_json::json!([{"name": "auth0_slo", "burn_rate": {"dependency": "auth0", "objective": 99.9}}]));
    let b = c.rules[0].burn_rate.as_ref().unwrap();
    assert!((b.budget() - 0.001).abs() < 1e-12);
    let period_minutes = b.period.get().as_secs_f64() / 60.0;
    assert!((b.budget() * period_minutes - 43.2).abs() < 1e-9, "43.2 minutes of budget");
    let spent = |w: &BurnWindow| w.factor * w.long.get().as_secs_f64() / b.period.get().as_secs_f64();
    let shares: Vec<f64> = b.windows.iter().map(spent).collect();
    for (got, want) in shares.iter().zip([0.02, 0.05, 0.10, 0.10]) {
        assert!((got - want).abs() < 1e-9, "{shares:?}");
    }

    let mut store = c.store();
    let mut engine = Engine::new(&c, Clock::new());
    let (mut ok, mut failed) = (0.0, 0.0);
    let feed = |store: &mut Store, engine: &mut Engine, t: u64, ok: f64, failed: f64| {
        store.ingest(&counters("auth0", "traffic", ok, failed), Duration::from_secs(t));
        engine.evaluate(store, Duration::from_secs(t))
    };
    let page = [("dependency", "auth0"), ("severity", "page"), ("source", "traffic")];
    let ticket = [("dependency", "auth0"), ("severity", "ticket"), ("source", "traffic")];
    // Three healthy days: one sample a minute, then one a second for the last 6 hours.
    let t0: u64 = 3 * 86_400;
    let mut t = 0;
    while t < t0 {
        ok += if t == 0 { 0.0 } else if t <= t0 - 21_600 { 600.0 } else { 10.0 };
        let ev = feed(&mut store, &mut engine, t, ok, failed);
        assert!(ev.is_empty(), "healthy traffic raised {:?} at {t}", states(&ev));
        t += if t < t0 - 21_600 { 60 } else { 1 };
    }
    assert_eq!(t, t0);
    // The outage: every call fails.
    let mut page_at = None;
    let mut ticket_at = None;
    for x in 1..=300u64 {
        failed += 10.0;
        let ev = feed(&mut store, &mut engine, t0 + x, ok, failed);
        for e in &ev {
            let a = attrs(&e.record);
            if a[semconv::ALERT_STATE] == "firing" {
                match a["alert.label.severity"].as_str() {
                    "page" => {
                        page_at.get_or_insert(x);
                        assert_eq!(a["alert.burn_rate.windows"], "1h/5m", "the 1h/5m pair pages first");
                        assert_eq!(a[semconv::ALERT_THRESHOLD], "14.4");
                        assert_eq!(a[semconv::ALERT_VERDICT], "provider_outage");
                    }
                    "ticket" => {
                        ticket_at.get_or_insert(x);
                        assert_eq!(a["alert.burn_rate.windows"], "1d/2h");
                    }
                    s => panic!("unexpected severity {s}"),
                }
            }
        }
    }
    assert_eq!(page_at, Some(52), "ceil(51.84s)");
    assert_eq!(ticket_at, Some(260), "ceil(259.2s)");
    assert_eq!(engine.state("auth0_slo", &page), S::Firing);
    // Recovery: every call succeeds again.
    let tr = t0 + 300;
    let mut page_resolved = None;
    let mut ticket_resolved = None;
    for y in 1..=21_600u64 {
        ok += 10.0;
        let ev = feed(&mut store, &mut engine, tr + y, ok, failed);
        for e in &ev {
            let a = attrs(&e.record);
            if a[semconv::ALERT_STATE] == "resolved" {
                match a["alert.label.severity"].as_str() {
                    "page" => page_resolved = Some(y),
                    _ => ticket_resolved = Some(y),
                }
            }
        }
        if y == 296 {
            // The 1h/5m pair has reset (40 of 3000 calls failed in the last 5m, under 1.44%),
            // but the 6h/30m pair still holds the page.
            let inc5 = store.increase(Some("auth0"), None, Duration::from_secs(tr + y), Duration::from_secs(300));
            assert_eq!((inc5.errors, inc5.requests), (40.0, 3000.0));
            assert_eq!(engine.state("auth0_slo", &page), S::Firing);
        }
    }
    // 30m short window: failed calls in it drop under 0.6% of 18000 (108) 10.8s before the end.
    assert_eq!(page_resolved, Some(1790));
    // 6h short window of the 3d/6h pair: under 0.1% of 216000 (216) 21.6s before the end.
    assert_eq!(ticket_resolved, Some(21_579));
    assert_eq!(engine.state("auth0_slo", &ticket), S::Inactive);
}

// --- threshold, for, firing latency, resend, resolve ---

async fn build(c: &Config) -> (authwatch_core::SharedConsumer, Sink, tokio_util::sync::CancellationToken, tokio::task::JoinHandle<Result<(), authwatch_core::RunError>>) {
    let logs = Sink::new();
    let mut next = Router::new();
    next.set(SignalKind::Logs, logs.shared());
    let settings = Settings::new("alerts".parse().unwrap());
    let token = settings.shutdown.clone();
    let built = c.build(ConnectorContext { settings, next }).await.unwrap();
    let task = tokio::spawn(built.task.unwrap());
    (built.consumer, logs, token, task)
}

fn records(sink: &Sink) -> Vec<LogRecord> {
    sink.received()
        .into_iter()
        .flat_map(|s| match s {
            Signal::Logs(l) => l.resource_logs,
            _ => vec![],
        })
        .flat_map(|r| r.scope_logs)
        .flat_map(|s| s.log_records)
        .collect()
}

#[tokio::test(start_paused = true)]
async fn threshold_with_min_requests_for_resend_and_resolve() {
    let c = rules(serde_json::json!([{
        "name": "auth0_errors",
        "threshold": {"dependency": "auth0", "source": "traffic", "error_ratio": 0.1, "resolve_error_ratio": 0.05, "window": "1m", "min_requests": 20},
        "for": "10s", "severity": "page", "labels": {"team": "identity"},
        "annotations": {"description": "{{ $labels.dependency }} error ratio {{ $value }}"},
        "runbook_url": "https://runbooks.example.com/auth0"
    }]));
    let (alerts, logs, token, task) = build(&c).await;
    let step = Duration::from_secs(1);
    // 10 calls, 5 failed: 50%, but under min_requests: nothing.
    alerts.consume(Signal::Metrics(counters("auth0", "traffic", 5.0, 5.0))).await.unwrap();
    tokio::time::sleep(step).await;
    assert!(records(&logs).is_empty());
    // 30 calls, 15 failed: the condition holds from this request on: pending at once.
    alerts.consume(Signal::Metrics(counters("auth0", "traffic", 15.0, 15.0))).await.unwrap();
    let r = records(&logs);
    assert_eq!(r.len(), 1, "pending within the same evaluation");
    let a = attrs(&r[0]);
    assert_eq!(a[semconv::ALERT_STATE], "pending");
    // `for: 10s`: firing on the first tick at or after 10s, with no new data.
    tokio::time::sleep(Duration::from_secs(9)).await;
    assert_eq!(records(&logs).len(), 1);
    tokio::time::sleep(Duration::from_secs(1) + Duration::from_millis(1)).await;
    let r = records(&logs);
    assert_eq!(r.len(), 2);
    let a = attrs(&r[1]);
    assert_eq!(r[1].event_name, semconv::ALERT_EVENT);
    assert_eq!(r[1].severity_text, "ERROR");
    assert_eq!(a[semconv::ALERT_STATE], "firing");
    assert_eq!(a[semconv::ALERT_NAME], "auth0_errors");
    assert_eq!(a[semconv::ALERT_SEVERITY], "page");
    assert_eq!(a[semconv::ALERT_RULE_KIND], "threshold");
    assert_eq!(a["alert.label.alertname"], "auth0_errors");
    assert_eq!(a["alert.label.team"], "identity");
    assert_eq!(a["alert.label.dependency"], "auth0");
    assert_eq!(a["alert.label.source"], "traffic");
    assert_eq!(a["alert.annotation.description"], "auth0 error ratio 0.5");
    assert_eq!(a["alert.annotation.runbook_url"], "https://runbooks.example.com/auth0");
    assert_eq!(a["alert.annotation.status_page"], "https://status.auth0.com");
    assert_eq!(a[semconv::ALERT_STATUS_PAGE_URL], "https://status.auth0.com");
    assert_eq!(a[semconv::ALERT_RUNBOOK_URL], "https://runbooks.example.com/auth0");
    assert_eq!(a[semconv::ALERT_VALUE], "0.5");
    assert_eq!(a[semconv::ALERT_THRESHOLD], "0.1");
    assert_eq!(a["alert.signal.traffic.requests"], "30");
    assert_eq!(a["alert.signal.traffic.errors"], "15");
    // No probes, mostly 5xx: the provider.
    assert_eq!(a[semconv::ALERT_VERDICT], "provider_outage");
    assert_eq!(a[semconv::ALERT_RESEND], "false");
    assert!(a[semconv::ALERT_STARTS_AT].ends_with('Z'));
    let fp = a[semconv::ALERT_FINGERPRINT].clone();
    let (mut ok, mut failed) = (15.0, 15.0);
    // Still 50% every 10s: re-sent once resend_interval (1m) has passed since it fired.
    for _ in 0..6 {
        tokio::time::sleep(Duration::from_secs(10)).await;
        ok += 10.0;
        failed += 10.0;
        alerts.consume(Signal::Metrics(counters("auth0", "traffic", ok, failed))).await.unwrap();
    }
    let r = records(&logs);
    assert_eq!(r.len(), 3);
    let a = attrs(&r[2]);
    assert_eq!((a[semconv::ALERT_STATE].as_str(), a[semconv::ALERT_RESEND].as_str()), ("firing", "true"));
    assert_eq!(a[semconv::ALERT_FINGERPRINT], fp);
    // Hysteresis: 7% (under the 10% threshold, above the 5% resolve ratio) keeps it firing.
    for _ in 0..6 {
        tokio::time::sleep(Duration::from_secs(10)).await;
        ok += 93.0;
        failed += 7.0;
        alerts.consume(Signal::Metrics(counters("auth0", "traffic", ok, failed))).await.unwrap();
    }
    let st: Vec<String> = records(&logs).iter().map(|x| attrs(x)[semconv::ALERT_STATE].clone()).collect();
    assert!(!st.contains(&"resolved".to_string()), "{st:?}");
    // 2%: resolved, once.
    for _ in 0..6 {
        tokio::time::sleep(Duration::from_secs(10)).await;
        ok += 98.0;
        failed += 2.0;
        alerts.consume(Signal::Metrics(counters("auth0", "traffic", ok, failed))).await.unwrap();
    }
    let r = records(&logs);
    let st: Vec<String> = r.iter().map(|x| attrs(x)[semconv::ALERT_STATE].clone()).collect();
    assert_eq!(st[..2], ["pending", "firing"]);
    assert_eq!(st.last().map(String::as_str), Some("resolved"), "{st:?}");
    assert_eq!(st.iter().filter(|s| *s == "resolved").count(), 1, "{st:?}");
    assert!(st[2..st.len() - 1].iter().all(|s| s == "firing"), "{st:?}");
    let last = r.last().unwrap();
    let a = attrs(last);
    assert_eq!(a[semconv::ALERT_FINGERPRINT], fp);
    assert_eq!(a[semconv::ALERT_RESEND], "false");
    assert_eq!(a[semconv::ALERT_STARTS_AT], attrs(&r[1])[semconv::ALERT_STARTS_AT]);
    assert!(a[semconv::ALERT_ENDS_AT] > a[semconv::ALERT_STARTS_AT]);
    assert_eq!(last.severity_text, "INFO");
    token.cancel();
    task.await.unwrap().unwrap();
}

#[tokio::test(start_paused = true)]
async fn fires_in_the_evaluation_that_sees_the_condition() {
    let c = rules(serde_json::json!([{"name": "any", "threshold": {"error_ratio": 0.5, "window": "5m"}}]));
    let (alerts, logs, token, task) = build(&c).await;
    alerts.consume(Signal::Metrics(counters("auth0", "probe", 0.0, 1.0))).await.unwrap();
    let r = records(&logs);
    assert_eq!(r.len(), 1);
    assert_eq!(attrs(&r[0])[semconv::ALERT_STATE], "firing");
    // A probe-only failure, once: transient.
    assert_eq!(attrs(&r[0])[semconv::ALERT_VERDICT], "transient");
    token.cancel();
    task.await.unwrap().unwrap();
}

// --- consecutive, status ---

#[tokio::test(start_paused = true)]
async fn consecutive_failures_fire_and_successes_resolve() {
    let c = rules(serde_json::json!([{"name": "login_probe", "consecutive": {"check": "login", "failures": 3, "successes": 2}}]));
    let mut store = c.store();
    let mut engine = Engine::new(&c, Clock::new());
    let mut run = 0u64;
    let mut feed = |ok: bool| {
        run += 1;
        let now = Duration::from_secs(run * 10);
        store.ingest(&probe("login", ok, run), now);
        // A re-sent batch (same run) must not count twice.
        store.ingest(&probe("login", ok, run), now);
        states(&engine.evaluate(&store, now))
    };
    assert!(feed(false).is_empty());
    assert!(feed(false).is_empty());
    assert!(feed(true).is_empty(), "a success resets the count");
    assert!(feed(false).is_empty());
    assert!(feed(false).is_empty());
    assert_eq!(feed(false), ["firing"]);
    assert!(feed(true).is_empty(), "one success does not resolve (successes: 2)");
    assert!(feed(false).is_empty(), "still firing");
    assert!(feed(true).is_empty());
    assert_eq!(feed(true), ["resolved"]);
    assert!(feed(true).is_empty());
}

#[tokio::test(start_paused = true)]
async fn consecutive_alert_verdicts() {
    let c = rules(serde_json::json!([{"name": "login_probe", "consecutive": {"failures": 2, "successes": 1}}]));
    let mut store = c.store();
    let mut engine = Engine::new(&c, Clock::new());
    let s = Duration::from_secs;
    // Healthy real traffic, failing probes: the tenant (or the probe's setup).
    store.ingest(&counters("auth0", "traffic", 100.0, 0.0), s(1));
    store.ingest(&probe("login", false, 1), s(1));
    store.ingest(&probe("login", false, 2), s(2));
    let ev = engine.evaluate(&store, s(2));
    let a = attrs(&ev[0].record);
    assert_eq!((a[semconv::ALERT_STATE].as_str(), a[semconv::ALERT_VERDICT].as_str()), ("firing", "tenant_issue"));
    assert_eq!(a["alert.label.synthetic_check"], "login");
    assert_eq!(a["alert.signal.probe.consecutive_failures"], "2");
}

#[tokio::test(start_paused = true)]
async fn status_rule_fires_on_an_incident_and_resolves() {
    let c = rules(serde_json::json!([{"name": "auth0_incident", "status": {"page": "auth0", "min_indicator": 1}}]));
    let mut store = c.store();
    let mut engine = Engine::new(&c, Clock::new());
    let s = Duration::from_secs;
    store.ingest(&status("auth0", 0), s(1));
    assert!(engine.evaluate(&store, s(1)).is_empty());
    store.ingest(&status("other", 3), s(2));
    assert!(engine.evaluate(&store, s(2)).is_empty(), "another page is not this rule's");
    store.ingest(&status("auth0", 2), s(3));
    let ev = engine.evaluate(&store, s(3));
    let a = attrs(&ev[0].record);
    assert_eq!(a[semconv::ALERT_STATE], "firing");
    assert_eq!(a[semconv::ALERT_VERDICT], "provider_outage");
    assert_eq!(a["alert.label.status_page"], "auth0");
    assert_eq!(a[semconv::ALERT_VALUE], "2");
    store.ingest(&status("auth0", 0), s(4));
    assert_eq!(states(&engine.evaluate(&store, s(4))), ["resolved"]);
}

// --- verdicts ---

#[test]
fn verdicts_from_the_signals_together() {
    let cfg = VerdictConfig::default();
    let traffic = |requests: f64, errors: f64, provider: f64| Increase {
        requests,
        errors,
        provider_errors: provider,
    };
    let base = Signals {
        probe_runs: 5,
        probe_failures: 0,
        probe_consecutive_failures: 0,
        last_probe_ok: Some(true),
        traffic: traffic(1000.0, 1.0, 1.0),
        status_indicator: Some(0),
        ..Default::default()
    };
    // Probes and traffic fail together.
    let s = Signals {
        probe_failures: 3,
        probe_consecutive_failures: 3,
        last_probe_ok: Some(false),
        traffic: traffic(1000.0, 300.0, 300.0),
        ..base.clone()
    };
    assert_eq!(verdict(&s, &cfg, false, false).0, Verdict::ProviderOutage);
    // The status page has an incident, whatever else.
    let s = Signals { status_indicator: Some(1), ..base.clone() };
    let (v, why) = verdict(&s, &cfg, false, false);
    assert_eq!(v, Verdict::ProviderOutage);
    assert!(why.contains("status page"), "{why}");
    // Probes fail, status green, traffic fine.
    let s = Signals { probe_failures: 2, probe_consecutive_failures: 2, last_probe_ok: Some(false), ..base.clone() };
    assert_eq!(verdict(&s, &cfg, false, false).0, Verdict::TenantIssue);
    // Real traffic fails while probes pass.
    let s = Signals { traffic: traffic(1000.0, 200.0, 0.0), ..base.clone() };
    let (v, why) = verdict(&s, &cfg, false, false);
    assert_eq!(v, Verdict::ApplicationIssue);
    assert!(why.contains("200 of 1000"), "{why}");
    // A single probe failure that did not repeat.
    let s = Signals { probe_failures: 1, probe_consecutive_failures: 0, ..base.clone() };
    assert_eq!(verdict(&s, &cfg, false, false).0, Verdict::Transient);
    // The alert's own condition counts: a traffic alert with passing probes.
    let s = Signals { traffic: traffic(100.0, 1.0, 0.0), ..base };
    assert_eq!(verdict(&s, &cfg, false, true).0, Verdict::ApplicationIssue);
}

#[tokio::test(start_paused = true)]
async fn refused_alert_events_are_kept_and_sent_later() {
    let c = rules(serde_json::json!([{"name": "any", "threshold": {"error_ratio": 0.5, "window": "5m"}}]));
    let (alerts, logs, token, task) = build(&c).await;
    logs.fail_with(Some(ConsumeError::Full));
    alerts.consume(Signal::Metrics(counters("auth0", "traffic", 0.0, 10.0))).await.unwrap();
    assert!(records(&logs).is_empty());
    logs.fail_with(None);
    tokio::time::sleep(Duration::from_millis(1001)).await;
    let r = records(&logs);
    assert_eq!(r.len(), 1);
    assert_eq!(attrs(&r[0])[semconv::ALERT_STATE], "firing");
    assert!(alerts.consume(authwatch_testkit::trace_signal(0, 1)).await.is_err());
    token.cancel();
    task.await.unwrap().unwrap();
}

#[tokio::test(start_paused = true)]
async fn value_threshold_reads_any_metric() {
    let c = rules(serde_json::json!([{"name": "slow_probe", "threshold": {"metric": "authwatch.probe.duration.last", "value": 2.0, "aggregation": "max", "window": "5m"}}]));
    let mut store = c.store();
    let mut engine = Engine::new(&c, Clock::new());
    let m = |v: f64, t: u64| request(vec![gauge("authwatch.probe.duration.last", vec![point(vec![kv("synthetic.check", "login")], v, t)])]);
    store.ingest(&m(1.0, 1), Duration::from_secs(1));
    assert!(engine.evaluate(&store, Duration::from_secs(1)).is_empty());
    store.ingest(&m(3.0, 2), Duration::from_secs(2));
    let ev = engine.evaluate(&store, Duration::from_secs(2));
    assert_eq!(attrs(&ev[0].record)["alert.label.synthetic_check"], "login");
    // The same point again (the other lane) is not a new sample.
    store.ingest(&m(3.0, 2), Duration::from_secs(3));
    assert_eq!(store.values["authwatch.probe.duration.last"].values().next().unwrap().len(), 2);
    // The 3.0 leaves the 5m window: resolved.
    store.ingest(&m(1.0, 400), Duration::from_secs(400));
    assert_eq!(states(&engine.evaluate(&store, Duration::from_secs(400))), ["resolved"]);
}

// --- Prometheus rules ---



fn example_configs() -> (Vec<Window>, Config) {
    // The `error_rate` connector's default windows.
    let er = [60, 300, 1800, 3600, 21_600].map(Window::secs).to_vec();
    let al = rules(serde_json::json!([
        {"name": "auth0_errors", "threshold": {"dependency": "auth0", "source": "traffic", "error_ratio": 0.05, "window": "5m", "min_requests": 10},
         "for": "1m", "severity": "page", "runbook_url": "https://runbooks.example.com/auth0"},
        {"name": "auth0_any", "threshold": {"error_ratio": 0.5, "window": "1m"}},
        {"name": "auth0_slo", "burn_rate": {"dependency": "auth0", "objective": 99.9}},
        {"name": "login_probe", "consecutive": {"check": "login", "failures": 3, "successes": 2}},
        {"name": "slow", "threshold": {"metric": "authwatch.probe.duration.last", "value": 2, "aggregation": "max"}},
        {"name": "auth0_incident", "status": {"page": "auth0"}}
    ]));
    (er, al)
}

#[test]
fn generated_rules_name_every_window_and_rule() {
    let (er, al) = example_configs();
    let y = prometheus_rules(&er, &al);
    for w in ["1m", "5m", "30m", "1h", "2h", "6h", "1d", "3d"] {
        assert!(y.contains(&format!("record: authwatch:dependency_error_ratio:rate{w}\n")), "{w} missing:\n{y}");
    }
    assert!(y.contains("increase(authwatch_dependency_requests_total[5m])"), "{y}");
    assert!(y.contains("authwatch:dependency_error_ratio:rate1h{dependency=\"auth0\", source=\"traffic\"} > 0.0144"), "{y}");
    assert!(y.contains("alert: authwatch_fleet_provider_failing"), "{y}");
    assert!(y.contains("count without (instance)"), "{y}");
    assert!(y.contains("max_over_time(authwatch_probe_success_ratio{synthetic_check=\"login\"}[3m]) == 0"), "{y}");
}

#[test]
fn generated_rules_pass_promtool_check_and_fire_in_promtool_test() {
    let promtool = promtool();
    let (er, al) = example_configs();
    let scratch = authwatch_testkit::Scratch::new("rules");
    let dir = scratch.0.clone();
    let rules_file = dir.join("rules.yml");
    std::fs::write(&rules_file, prometheus_rules(&er, &al)).unwrap();
    let out = std::process::Command::new(&promtool)
        .arg("check")
        .arg("rules")
        .arg(&rules_file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "promtool check rules failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // Two sidecars, 10 calls a second each; from minute 10 half of the calls fail on both.
    // Expect: the threshold alert, the burn-rate page and ticket, and the fleet alert fire.
    let series = |inst: &str, class: &str, per_min_before: u64, per_min_after: u64| {
        format!(
            "      - series: 'authwatch_dependency_{kind}_total{{instance=\"{inst}\", job=\"authwatch\", dependency=\"auth0\", endpoint=\"/oauth/token\", error_class=\"{class}\", service_name=\"web\", source=\"traffic\"}}'\n        values: '0+{per_min_before}x10 {start}+{per_min_after}x20'\n",
            kind = if class == "errors" { "errors" } else { "requests" },
            class = if class == "errors" { "server_error" } else { class },
            start = per_min_before * 10 + per_min_after,
        )
    };
    let mut input = String::new();
    for inst in ["a:1", "b:1"] {
        input += &series(inst, "ok", 600, 300);
        input += &series(inst, "server_error", 0, 300);
        input += &series(inst, "errors", 0, 300);
    }
    let sp = "status_page: 'https://status.auth0.com'";
    let mut test = String::new();
    test += "rule_files:\n  - rules.yml\nevaluation_interval: 1m\ntests:\n  - interval: 1m\n    input_series:\n";
    test += &input;
    test += "    alert_rule_test:\n";
    test += "      - eval_time: 5m\n        alertname: auth0_errors\n        exp_alerts: []\n";
    test += "      - eval_time: 20m\n        alertname: auth0_errors\n        exp_alerts:\n";
    for inst in ["a:1", "b:1"] {
        test += &format!("          - exp_labels: {{severity: page, instance: '{inst}', job: authwatch, dependency: auth0, source: traffic}}\n");
        test += &format!("            exp_annotations: {{{sp}, runbook_url: 'https://runbooks.example.com/auth0'}}\n");
    }
    test += "      - eval_time: 20m\n        alertname: auth0_slo\n        exp_alerts:\n";
    for inst in ["a:1", "b:1"] {
        for sev in ["page", "ticket"] {
            test += &format!("          - exp_labels: {{severity: {sev}, instance: '{inst}', job: authwatch, dependency: auth0, source: traffic}}\n");
            test += &format!("            exp_annotations: {{summary: 'auth0 burns its 99.9% error budget too fast ({sev})', {sp}}}\n");
        }
    }
    test += "      - eval_time: 20m\n        alertname: authwatch_fleet_provider_failing\n        exp_alerts:\n";
    test += "          - exp_labels: {severity: page, job: authwatch, dependency: auth0}\n";
    test += &format!("            exp_annotations: {{summary: '2 sidecars see auth0 fail (error ratio above 0.1 over 5m)', verdict: provider_outage, {sp}}}\n");
    std::fs::write(dir.join("test.yml"), test).unwrap();
    let out = std::process::Command::new(&promtool)
        .current_dir(&dir)
        .arg("test")
        .arg("rules")
        .arg("test.yml")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "promtool test rules failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(start_paused = true)]
async fn publishes_firing_resolved_alerts_and_verdicts_on_the_board() {
    let c = rules(serde_json::json!([{"name": "login_probe", "consecutive": {"check": "login", "failures": 2, "successes": 1}}]));
    let logs = Sink::new();
    let mut next = Router::new();
    next.set(SignalKind::Logs, logs.shared());
    let settings = Settings::new("alerts".parse().unwrap());
    let board = settings.board.clone();
    let token = settings.shutdown.clone();
    let built = c.build(ConnectorContext { settings, next }).await.unwrap();
    let task = tokio::spawn(built.task.unwrap());
    let section = || board.section(authwatch_core::board::ALERTS)["alerts"].clone();
    built.consumer.consume(Signal::Metrics(counters("auth0", "traffic", 100.0, 0.0))).await.unwrap();
    for run in 1..=2 {
        built.consumer.consume(Signal::Metrics(probe("login", false, run))).await.unwrap();
    }
    let s = section();
    assert_eq!(s["firing"][0]["name"], "login_probe");
    assert_eq!(s["firing"][0]["state"], "firing");
    assert_eq!(s["firing"][0]["kind"], "consecutive");
    assert_eq!(s["firing"][0]["verdict"], "tenant_issue");
    assert!(s["firing"][0]["starts_at"].as_f64().unwrap() > 1e9);
    assert!(s["firing"][0]["summary"].as_str().unwrap().contains("login"));
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let s = section();
    assert_eq!(s["verdicts"]["auth0"]["verdict"], "tenant_issue", "{s:#}");
    built.consumer.consume(Signal::Metrics(probe("login", true, 3))).await.unwrap();
    let s = section();
    assert_eq!(s["firing"], serde_json::json!([]));
    assert_eq!(s["resolved"][0]["name"], "login_probe");
    assert!(s["resolved"][0]["resolved_at"].as_f64().is_some());
    token.cancel();
    task.await.unwrap().unwrap();
}

mod latency;

// --- the live lane ---

mod live;
