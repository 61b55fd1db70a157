//! The verdict's weighing of kinds and recency, driven through the store with the metrics the
//! `error_rate` connector and the `synthetic` receiver send, at explicit times.

use std::collections::BTreeMap;
use std::time::Duration;

use authwatch_core::otlp::collector::metrics::v1::ExportMetricsServiceRequest;
use authwatch_core::otlp::metrics::v1::{metric, Gauge, Metric};
use authwatch_core::registry::decode_config;
use authwatch_core::semconv;
use authwatch_core::time::Clock;
use authwatch_testkit::kv;

use super::engine::Engine;
use super::store::Store;
use super::verdict::{verdict, with_latency, Signals, Verdict};
use super::test_data::{point, request, sum};
use super::Config;

const TOKEN: &str = "/oauth/token";




/// A sidecar's view of the world, fed second by second: cumulative counters as `error_rate`
/// sends them and probe runs as `synthetic` sends them.
struct World {
    store: Store,
    engine: Engine,
    cfg: Config,
    /// `(source, endpoint, class)` -> cumulative calls.
    calls: BTreeMap<(&'static str, &'static str, &'static str), f64>,
    runs: BTreeMap<&'static str, f64>,
    run_id: u64,
    now: Duration,
    events: Vec<(String, String, String, String)>,
}

impl World {
    fn new(extra: serde_json::Value) -> World {
        let mut j = serde_json::json!({
            "rules": [
                {"name": "traffic_errors", "threshold": {"dependency": "auth0", "source": "traffic", "error_ratio": 0.05, "window": "1m", "min_requests": 10}},
                {"name": "probe_failing", "consecutive": {"failures": 2, "successes": 1}},
                {"name": "any_errors", "threshold": {"dependency": "auth0", "error_ratio": 0.0, "window": "10s", "min_requests": 1}},
                {"name": "incident", "status": {}}
            ]
        });
        if let (Some(o), Some(e)) = (j.as_object_mut(), extra.as_object()) {
            o.extend(e.clone());
        }
        let cfg: Config = decode_config(j).unwrap();
        World {
            store: cfg.store(),
            engine: Engine::new(&cfg, Clock::new()),
            cfg,
            calls: BTreeMap::new(),
            runs: BTreeMap::new(),
            run_id: 0,
            now: Duration::ZERO,
            events: Vec::new(),
        }
    }

    fn counters(&self) -> ExportMetricsServiceRequest {
        let attrs = |source: &str, endpoint: &str, class: &str| {
            vec![
                kv("dependency", "auth0"),
                kv("endpoint", endpoint),
                kv("error.class", class),
                kv("service.name", "web"),
                kv("source", source),
            ]
        };
        let all = self.calls.iter().map(|((s, e, c), n)| point(attrs(s, e, c), *n, 0)).collect();
        let errors = self
            .calls
            .iter()
            .filter(|((_, _, c), _)| !matches!(*c, "ok" | "auth_rejected"))
            .map(|((s, e, c), n)| point(attrs(s, e, c), *n, 0))
            .collect();
        request(vec![
            sum(semconv::DEPENDENCY_REQUESTS, all),
            sum(semconv::DEPENDENCY_ERRORS, errors),
        ])
    }

    fn call(&mut self, endpoint: &'static str, class: &'static str, n: f64) {
        *self.calls.entry(("traffic", endpoint, class)).or_default() += n;
    }

    /// One probe run with `outcome`, as the synthetic receiver and error_rate report it.
    fn probe(&mut self, outcome: &'static str) {
        self.run_id += 1;
        *self.runs.entry(outcome).or_default() += 1.0;
        let class = match outcome {
            "success" => "ok",
            "timeout" => "timeout",
            "http_status" => "server_error",
            "rate_limited" => "rate_limited",
            "oauth_error" => "client_error",
            _ => "network",
        };
        *self.calls.entry(("probe", TOKEN, class)).or_default() += 1.0;
        let check = || vec![kv("synthetic.check", "login"), kv("synthetic.type", "password_grant")];
        let ok = if outcome == "success" { 1.0 } else { 0.0 };
        let runs = self
            .runs
            .iter()
            .map(|(o, n)| {
                let mut a = check();
                a.push(kv("synthetic.outcome", o));
                point(a, *n, self.run_id)
            })
            .collect();
        let req = request(vec![
            Metric {
                name: semconv::PROBE_SUCCESS.into(),
                data: Some(metric::Data::Gauge(Gauge {
                    data_points: vec![point(check(), ok, self.run_id)],
                })),
                ..Default::default()
            },
            sum(semconv::PROBE_RUNS, runs),
        ]);
        self.store.ingest(&req, self.now);
    }

    fn status(&mut self, indicator: f64) {
        let req = request(vec![Metric {
            name: semconv::STATUS_INDICATOR.into(),
            data: Some(metric::Data::Gauge(Gauge {
                data_points: vec![point(vec![kv("status.page", "auth0")], indicator, 1)],
            })),
            ..Default::default()
        }]);
        self.store.ingest(&req, self.now);
    }

    /// Runs `secs` seconds: every second `traffic` adds calls, every `probe_every` seconds a
    /// probe runs with `outcome`; the engine evaluates every second.
    fn run(&mut self, secs: u64, probe_every: u64, outcome: &'static str, mut traffic: impl FnMut(&mut World)) {
        for _ in 0..secs {
            self.now += Duration::from_secs(1);
            traffic(self);
            if probe_every > 0 && self.now.as_secs().is_multiple_of(probe_every) {
                self.probe(outcome);
            }
            let c = self.counters();
            self.store.ingest(&c, self.now);
            for e in self.engine.evaluate(&self.store, self.now) {
                let a: BTreeMap<String, String> = e
                    .record
                    .attributes
                    .iter()
                    .filter_map(|kv| match kv.value.as_ref()?.value.as_ref()? {
                        authwatch_core::otlp::common::v1::any_value::Value::StringValue(s) => {
                            Some((kv.key.clone(), s.clone()))
                        }
                        _ => None,
                    })
                    .collect();
                self.events.push((
                    a[semconv::ALERT_NAME].clone(),
                    a[semconv::ALERT_STATE].clone(),
                    a[semconv::ALERT_VERDICT].clone(),
                    a[semconv::ALERT_VERDICT_REASON].clone(),
                ));
            }
        }
    }

    /// Firing events since the last call: `(alert, verdict, reason)`.
    fn fired(&mut self) -> Vec<(String, String, String)> {
        let out = self
            .events
            .iter()
            .filter(|e| e.1 == "firing")
            .map(|e| (e.0.clone(), e.2.clone(), e.3.clone()))
            .collect();
        self.events.clear();
        out
    }

    fn verdict_of(&mut self, name: &str) -> (String, String) {
        let f = self.fired();
        let e = f.iter().find(|e| e.0 == name).unwrap_or_else(|| panic!("{name} did not fire: {f:?}"));
        (e.1.clone(), e.2.clone())
    }

    fn signals(&self) -> Signals {
        self.engine.signals(&self.store, Some("auth0"), self.now)
    }
}

fn healthy(w: &mut World) {
    w.call(TOKEN, "ok", 10.0);
}

#[test]
fn the_issues_example_is_a_tenant_issue_not_an_outage() {
    // Default verdict settings (5m window, 1m half-life), probes every 10s.
    let mut w = World::new(serde_json::json!({}));
    w.run(120, 10, "success", healthy);
    assert!(w.fired().is_empty());
    // The application's own calls to a wrong port: connection refused, for 30s.
    w.run(30, 10, "success", |w| {
        healthy(w);
        w.call(TOKEN, "network", 5.0);
    });
    let (v, why) = w.verdict_of("traffic_errors");
    assert_eq!(v, "application_issue", "{why}");
    assert!(why.contains("probes pass"), "{why}");
    // They stop; half a minute later the tenant's Action stops adding a claim.
    w.run(30, 10, "success", healthy);
    w.fired();
    w.run(20, 10, "missing_claim", healthy);
    let (v, why) = w.verdict_of("probe_failing");
    assert_eq!(v, "tenant_issue", "{why}");
    assert!(why.starts_with("Probes fail with missing_claim (2)"), "{why}");
    // The earlier traffic failures are named, as evidence against.
    let against = why.split("Against:").nth(1).unwrap();
    assert!(against.contains("network errors") && against.contains("not failing now"), "{why}");
}

#[test]
fn provider_kinds_on_both_sides_are_an_outage() {
    let mut w = World::new(serde_json::json!({"verdict": {"half_life": "10s"}}));
    w.run(60, 2, "success", healthy);
    w.run(6, 2, "http_status", |w| {
        w.call(TOKEN, "ok", 2.0);
        w.call(TOKEN, "server_error", 8.0);
    });
    let fired = w.fired();
    for name in ["traffic_errors", "probe_failing"] {
        let e = fired.iter().find(|e| e.0 == name).unwrap();
        assert_eq!(e.1, "provider_outage", "{name}: {}", e.2);
    }
    let e = fired.iter().find(|e| e.0 == "probe_failing").unwrap();
    assert!(e.2.contains("fail together"), "{}", e.2);
}

#[test]
fn probe_timeouts_without_traffic_are_an_outage_with_traffic_succeeding_not() {
    let mut w = World::new(serde_json::json!({"verdict": {"half_life": "10s"}}));
    w.run(20, 2, "success", |_| {});
    w.run(4, 2, "timeout", |_| {});
    let (v, why) = w.verdict_of("probe_failing");
    assert_eq!(v, "provider_outage", "{why}");
    assert!(why.contains("no real traffic to compare with"), "{why}");

    // Real calls to the provider keep succeeding while the probes time out: not an outage.
    let mut w = World::new(serde_json::json!({"verdict": {"half_life": "10s"}}));
    w.run(20, 5, "success", healthy);
    w.run(10, 5, "timeout", healthy);
    let (v, why) = w.verdict_of("probe_failing");
    assert_eq!(v, "tenant_issue", "{why}");
    assert!(why.contains("kept succeeding"), "{why}");
}

#[test]
fn a_rate_limit_storm_from_the_app_is_the_apps() {
    let mut w = World::new(serde_json::json!({"verdict": {"half_life": "10s"}}));
    w.run(30, 2, "success", healthy);
    w.run(4, 2, "rate_limited", |w| {
        w.call(TOKEN, "ok", 10.0);
        w.call(TOKEN, "rate_limited", 40.0);
    });
    let fired = w.fired();
    for name in ["traffic_errors", "probe_failing"] {
        let e = fired.iter().find(|e| e.0 == name).unwrap();
        assert_eq!(e.1, "application_issue", "{name}: {}", e.2);
    }
    // Probes alone rate-limited: the tenant's limit is spent elsewhere.
    let mut w = World::new(serde_json::json!({"verdict": {"half_life": "10s"}}));
    w.run(30, 2, "success", healthy);
    w.run(4, 2, "rate_limited", healthy);
    assert_eq!(w.verdict_of("probe_failing").0, "tenant_issue");
}

#[test]
fn tenant_outcomes_are_the_tenants_whatever_traffic_does() {
    for outcome in ["missing_claim", "invalid_token", "oauth_error", "assertion"] {
        let mut w = World::new(serde_json::json!({"verdict": {"half_life": "10s"}}));
        w.run(30, 2, "success", healthy);
        // Even with the application's calls failing with network errors meanwhile.
        w.run(4, 2, outcome, |w| {
            healthy(w);
            w.call(TOKEN, "network", 10.0);
        });
        let fired = w.fired();
        let p = fired.iter().find(|e| e.0 == "probe_failing").unwrap();
        assert_eq!(p.1, "tenant_issue", "{outcome}: {}", p.2);
        assert!(p.2.contains(outcome), "{}", p.2);
        // ... and the traffic alert, about the application's network errors, says so.
        let t = fired.iter().find(|e| e.0 == "traffic_errors").unwrap();
        assert_eq!(t.1, "application_issue", "{outcome}: {}", t.2);
    }
}

#[test]
fn traffic_failing_while_probes_reach_the_provider_is_the_apps() {
    let mut w = World::new(serde_json::json!({"verdict": {"half_life": "10s"}}));
    w.run(30, 2, "success", healthy);
    // 5xx only on an endpoint the probes do not use.
    w.run(5, 2, "success", |w| {
        healthy(w);
        w.call("/api/v2/users/{id}", "server_error", 5.0);
    });
    let (v, why) = w.verdict_of("traffic_errors");
    assert_eq!(v, "application_issue", "{why}");
    assert!(why.contains("endpoints the probes do not use"), "{why}");
    // 4xx from the application's requests.
    let mut w = World::new(serde_json::json!({"verdict": {"half_life": "10s"}}));
    w.run(30, 2, "success", healthy);
    w.run(5, 2, "success", |w| {
        healthy(w);
        w.call(TOKEN, "client_error", 5.0);
    });
    assert_eq!(w.verdict_of("traffic_errors").0, "application_issue");
    // 4xx for the application while probes get a tenant error: the tenant's setup refuses both.
    let mut w = World::new(serde_json::json!({"verdict": {"half_life": "10s"}}));
    w.run(30, 2, "success", healthy);
    w.run(6, 2, "oauth_error", |w| {
        healthy(w);
        w.call(TOKEN, "client_error", 5.0);
    });
    let s = w.signals();
    assert_eq!(verdict(&s, &w.cfg.verdict, false, true).0, Verdict::TenantIssue);
}

#[test]
fn recency_outweighs_what_failed_minutes_ago() {
    let mut w = World::new(serde_json::json!({}));
    w.run(60, 10, "success", healthy);
    // Back to back: 5xx at the probe, then (without a pass between) a missing claim.
    w.run(30, 10, "http_status", |w| {
        w.call(TOKEN, "ok", 5.0);
        w.call(TOKEN, "server_error", 5.0);
    });
    let (v, _) = w.verdict_of("probe_failing");
    assert_eq!(v, "provider_outage");
    w.run(120, 10, "missing_claim", healthy);
    let s = w.signals();
    let (v, why) = verdict(&s, &w.cfg.verdict, true, false);
    assert_eq!(v, Verdict::TenantIssue, "{why}");
    assert!(why.contains("http_status (3)"), "the older kind is still named: {why}");

    // A single failed call after an incident that ended minutes ago: transient.
    let mut w = World::new(serde_json::json!({}));
    w.run(60, 10, "success", healthy);
    w.run(20, 10, "success", |w| {
        healthy(w);
        w.call(TOKEN, "network", 10.0);
    });
    w.run(180, 10, "success", healthy);
    w.fired();
    w.run(1, 10, "success", |w| {
        healthy(w);
        w.call(TOKEN, "server_error", 1.0);
    });
    let (v, why) = w.verdict_of("any_errors");
    assert_eq!(v, "transient", "{why}");
}

#[test]
fn the_status_page_names_the_evidence_against_it() {
    let mut w = World::new(serde_json::json!({"verdict": {"half_life": "10s"}}));
    w.run(10, 2, "success", healthy);
    w.status(2.0);
    w.run(1, 2, "success", healthy);
    let (v, why) = w.verdict_of("incident");
    assert_eq!(v, "provider_outage");
    assert!(why.starts_with("The provider's status page reports an incident (indicator 2)."), "{why}");
    let against = why.split("Against:").nth(1).unwrap();
    assert!(against.contains("probes pass") && against.contains("real traffic succeeds"), "{why}");
}

#[test]
fn reasons_name_for_and_against_and_stay_short() {
    let mut w = World::new(serde_json::json!({"verdict": {"half_life": "10s"}}));
    w.run(30, 2, "success", healthy);
    w.run(4, 2, "connect", |w| w.call(TOKEN, "network", 10.0));
    for (_, _, why) in w.fired() {
        assert!(why.contains(" For: ") && why.contains(" Against: "), "{why}");
        assert!(why.len() < 600, "{why}");
    }
}

#[test]
fn slow_but_not_failing_is_degraded_in_the_reason_format() {
    let slow = "p95 of calls to auth0 is 1.52s over 5m (40 calls), bound 500ms";
    let mut w = World::new(serde_json::json!({}));
    w.run(30, 10, "success", healthy);
    let (v, why) = with_latency(&w.signals(), &w.cfg.verdict, false, false, slow);
    assert_eq!(v, Verdict::Degraded);
    assert_eq!(
        why,
        "Slow but not failing: p95 of calls to auth0 is 1.52s over 5m (40 calls), bound 500ms. \
         For: real traffic succeeds (0 of 300 calls failed in 5m); probes pass (0 of 3 runs failed in 5m). \
         Against: none."
    );

    // A failure that did not repeat: still degraded, and it counts against.
    w.run(1, 1, "connect", healthy);
    w.run(10, 0, "success", healthy);
    let (v, why) = with_latency(&w.signals(), &w.cfg.verdict, false, false, slow);
    assert_eq!(v, Verdict::Degraded, "{why}");
    let against = why.split(" Against: ").nth(1).unwrap();
    assert!(against.contains("probes: 1 of 4 runs failed"), "{why}");

    // Slow and failing: the failure verdict stays; the headline says the calls are slow too.
    let mut w = World::new(serde_json::json!({"verdict": {"half_life": "10s"}}));
    w.run(30, 2, "success", healthy);
    w.run(4, 2, "connect", |w| w.call(TOKEN, "network", 10.0));
    let s = w.signals();
    let (plain, _) = verdict(&s, &w.cfg.verdict, false, true);
    let (v, why) = with_latency(&s, &w.cfg.verdict, false, true, slow);
    assert_eq!(v, plain);
    assert_eq!(v, Verdict::ProviderOutage, "{why}");
    let (headline, evidence) = why.split_once(" For: ").unwrap();
    assert!(headline.ends_with(&format!(" Calls are slow too: {slow}.")), "{why}");
    assert!(evidence.contains(" Against: "), "{why}");
}
