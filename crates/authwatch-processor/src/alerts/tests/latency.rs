//! Latency rules, latency objectives and the `degraded` verdict.

use super::*;
use authwatch_core::otlp::metrics::v1::{Histogram, HistogramDataPoint};

const BOUNDS: [f64; 6] = [0.1, 0.25, 0.5, 1.0, 2.5, 5.0];

fn series_attrs(dep: &str, source: &str) -> Vec<KeyValue> {
    vec![
        kv("dependency", dep),
        kv("endpoint", "/oauth/token"),
        kv("error.class", "ok"),
        kv("service.name", "web"),
        kv("source", source),
    ]
}

/// A cumulative `http.client.request.duration` point, plus the `ok` request counter (so the
/// dependency is known), as error_rate emits them; `degraded` adds its counter.
fn durations(dep: &str, source: &str, counts: [u64; 7], degraded: Option<f64>) -> ExportMetricsServiceRequest {
    let total: u64 = counts.iter().sum();
    let mut m = vec![
        sum(semconv::DEPENDENCY_REQUESTS, vec![point(series_attrs(dep, source), total as f64, 0)]),
        Metric {
            name: semconv::HTTP_CLIENT_REQUEST_DURATION.into(),
            data: Some(metric::Data::Histogram(Histogram {
                data_points: vec![HistogramDataPoint {
                    attributes: series_attrs(dep, source),
                    count: total,
                    bucket_counts: counts.to_vec(),
                    explicit_bounds: BOUNDS.to_vec(),
                    ..Default::default()
                }],
                aggregation_temporality: 2,
            })),
            ..Default::default()
        },
    ];
    if let Some(d) = degraded {
        m.push(sum(semconv::DEPENDENCY_DEGRADED, vec![point(series_attrs(dep, source), d, 0)]));
    }
    request(m)
}

fn at(s: u64) -> Duration {
    Duration::from_secs(s)
}

#[test]
fn latency_rules_validate() {
    let errors = |j: serde_json::Value| {
        let c: Config = decode_config(serde_json::json!({ "rules": j })).unwrap();
        let mut v = Validator::new("connectors::alerts");
        c.validate(&mut v);
        v.into_parts().0.iter().map(|e| e.to_string()).collect::<Vec<_>>()
    };
    assert_eq!(
        errors(serde_json::json!([
            {"name": "a", "latency": {"quantile": "p95"}},
            {"name": "b", "latency": {"slower_than": "1s"}},
            {"name": "c", "latency": {"slower_than": "1s", "share": 1.5, "resolve_below": "1s"}},
            {"name": "d", "latency": {"slower_than": "1s", "quantile": "p99", "resolve_below": "2s", "resolve_share": 0.1}},
            {"name": "e", "burn_rate": {"slower_than": "0s"}}
        ])),
        [
            "connectors::alerts::rules::0::latency::slower_than: is required: the bound, e.g. `500ms`",
            "connectors::alerts::rules::1::latency: needs exactly one of `quantile` (p50, p90, p95, p99) or `share`",
            "connectors::alerts::rules::2::latency::share: must be at least 0 and below 1, e.g. 0.1",
            "connectors::alerts::rules::2::latency::resolve_below: goes with `quantile`; use `resolve_share` with `share`",
            "connectors::alerts::rules::3::latency::resolve_share: goes with `share`; use `resolve_below` with `quantile`",
            "connectors::alerts::rules::3::latency::resolve_below: must be at most `slower_than`",
            "connectors::alerts::rules::4::burn_rate::slower_than: must be longer than zero, e.g. `1s`",
        ]
    );
    let e = decode_config::<Config>(serde_json::json!({"rules": [{"name": "a", "latency": {"quantile": "p42"}}]}))
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("rules::0::latency::quantile: unknown variant `p42`"), "{e}");
}

#[test]
fn quantile_rule_fires_with_min_requests_and_resolves_with_hysteresis() {
    let c = rules(serde_json::json!([{"name": "slow_idp", "latency": {
        "dependency": "auth0", "quantile": "p95", "slower_than": "500ms", "resolve_below": "250ms",
        "window": "1m", "min_requests": 10}}]));
    let mut store = c.store();
    let mut engine = Engine::new(&c, Clock::new());
    // 5 slow calls: too few.
    store.ingest(&durations("auth0", "traffic", [0, 0, 0, 0, 5, 0, 0], None), at(1));
    assert!(engine.evaluate(&store, at(1)).is_empty());
    // 10 more, all slow (1..2.5s): p95 in that bucket, fires.
    store.ingest(&durations("auth0", "traffic", [0, 0, 0, 0, 15, 0, 0], None), at(2));
    let ev = engine.evaluate(&store, at(2));
    assert_eq!(states(&ev), ["firing"]);
    let a = attrs(&ev[0].record);
    assert_eq!(a[semconv::ALERT_LATENCY_QUANTILE], "p95");
    assert_eq!(a[semconv::ALERT_LATENCY_BOUND], "0.5");
    assert_eq!(a[semconv::ALERT_RULE_KIND], "latency");
    assert_eq!(a[semconv::ALERT_VERDICT], "degraded");
    let reason = &a[semconv::ALERT_VERDICT_REASON];
    assert!(reason.starts_with("Slow but not failing: p95 of calls to auth0 is"), "{reason}");
    assert!(reason.contains("bound 500ms"), "{reason}");
    assert!(a[semconv::ALERT_VALUE].parse::<f64>().unwrap() > 2.0);
    // A minute later the old calls leave the window; 40 calls at 250..500ms: p95 under the
    // bound but above resolve_below: still firing.
    store.ingest(&durations("auth0", "traffic", [0, 0, 40, 0, 15, 0, 0], None), at(63));
    assert_eq!(states(&engine.evaluate(&store, at(63))), ["firing"], "a re-send, not a resolve");
    assert_eq!(engine.state("slow_idp", &[("dependency", "auth0")]), S::Firing);
    // Fast calls only in the window: resolved.
    store.ingest(&durations("auth0", "traffic", [100, 0, 40, 0, 15, 0, 0], None), at(124));
    assert_eq!(states(&engine.evaluate(&store, at(124))), ["resolved"]);
}

#[test]
fn share_rule_counts_degraded_probe_runs_as_slow() {
    let c = rules(serde_json::json!([{"name": "slow_logins", "latency": {
        "source": "probe", "slower_than": "2.5s", "share": 0.5, "window": "5m", "min_requests": 2}}]));
    let mut store = c.store();
    let mut engine = Engine::new(&c, Clock::new());
    // Two probe runs of 1..2.5s: under the rule's bound, but their check marked both degraded.
    store.ingest(&durations("auth0", "probe", [0, 0, 0, 0, 2, 0, 0], Some(2.0)), at(1));
    let ev = engine.evaluate(&store, at(1));
    assert_eq!(states(&ev), ["firing"]);
    let a = attrs(&ev[0].record);
    assert_eq!(a["alert.label.source"], "probe");
    assert_eq!(a["alert.window.slow"], "2");
    assert_eq!(a[semconv::ALERT_LATENCY_QUANTILE], "share");
    // Traffic is not the rule's source.
    store.ingest(&durations("auth0", "traffic", [50, 0, 0, 0, 0, 0, 0], None), at(2));
    assert!(engine.evaluate(&store, at(2)).is_empty());
    // Six fast, undegraded runs: 2 of 8 slow, under the share.
    store.ingest(&durations("auth0", "probe", [6, 0, 0, 0, 2, 0, 0], Some(2.0)), at(3));
    assert_eq!(states(&engine.evaluate(&store, at(3))), ["resolved"]);
}

#[test]
fn latency_objective_burns_on_slow_calls_and_keeps_a_failure_verdict() {
    let c = rules(serde_json::json!([{"name": "login_slo", "burn_rate": {
        "objective": 99.0, "slower_than": "1s", "min_requests": 10,
        "windows": [{"long": "1h", "short": "5m", "factor": 14.4, "severity": "page"}]}}]));
    let mut store = c.store();
    let mut engine = Engine::new(&c, Clock::new());
    // 100 calls, 30 slower than 1s: 30% bad, burn 30x > 14.4.
    store.ingest(&durations("auth0", "traffic", [70, 0, 0, 0, 20, 10, 0], None), at(1));
    let ev = engine.evaluate(&store, at(1));
    assert_eq!(states(&ev), ["firing"]);
    let a = attrs(&ev[0].record);
    assert_eq!(a["alert.label.severity"], "page");
    assert!(a[semconv::ALERT_VERDICT_REASON].contains("latency budget (calls slower than 1.00s)"), "{a:?}");
    assert_eq!(a[semconv::ALERT_VERDICT], "degraded");

    // Slow and failing: the failure verdict stays, and says the calls are slow too.
    let mut store = c.store();
    let mut engine = Engine::new(&c, Clock::new());
    store.ingest(&counters("auth0", "traffic", 50.0, 50.0), at(1));
    store.ingest(&durations("auth0", "traffic", [70, 0, 0, 0, 20, 10, 0], None), at(1));
    let a = attrs(&engine.evaluate(&store, at(1))[0].record);
    assert_eq!(a[semconv::ALERT_VERDICT], "provider_outage", "{a:?}");
    assert!(a[semconv::ALERT_VERDICT_REASON].contains("Calls are slow too: auth0 burns its latency budget"), "{a:?}");
}

#[tokio::test(start_paused = true)]
async fn a_slow_dependency_is_degraded_on_the_board() {
    let c = rules(serde_json::json!([{"name": "slow_idp", "latency": {"quantile": "p90", "slower_than": "500ms", "window": "1m"}}]));
    let logs = Sink::new();
    let mut next = Router::new();
    next.set(SignalKind::Logs, logs.shared());
    let settings = Settings::new("alerts".parse().unwrap());
    let board = settings.board.clone();
    let token = settings.shutdown.clone();
    let built = c.build(ConnectorContext { settings, next }).await.unwrap();
    let task = tokio::spawn(built.task.unwrap());
    built.consumer.consume(Signal::Metrics(durations("auth0", "traffic", [0, 0, 0, 0, 9, 0, 0], None))).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let s = board.section(authwatch_core::board::ALERTS)["alerts"].clone();
    assert_eq!(s["firing"][0]["verdict"], "degraded", "{s:#}");
    let v = &s["verdicts"]["auth0"];
    assert_eq!(v["verdict"], "degraded", "{s:#}");
    assert!(v["reason"].as_str().unwrap().contains("p90 of calls to auth0"), "{s:#}");
    assert!(v["reason"].as_str().unwrap().contains("bound 500ms"), "{s:#}");
    token.cancel();
    task.await.unwrap().unwrap();
}

// --- Prometheus rules ---

fn latency_config() -> Config {
    rules(serde_json::json!([
        {"name": "idp_p95", "latency": {"dependency": "auth0", "quantile": "p95", "slower_than": "500ms", "window": "5m", "min_requests": 10}},
        {"name": "idp_slow_share", "latency": {"source": "traffic", "slower_than": "1s", "share": 0.2, "window": "5m"}},
        {"name": "idp_latency_slo", "burn_rate": {"dependency": "auth0", "objective": 99.0, "slower_than": "1s",
            "windows": [{"long": "1h", "short": "5m", "factor": 14.4, "severity": "page"}]}}
    ]))
}

#[test]
fn generated_latency_rules_read_the_exported_buckets() {
    let y = prometheus_rules(&[Window::secs(300)], &latency_config());
    assert!(
        y.contains("histogram_quantile(0.95, sum without (source, endpoint, error_class, service_name, otel_metric_overflow) (rate(http_client_request_duration_seconds_bucket{dependency=\"auth0\"}[5m]))) > 0.5"),
        "{y}"
    );
    assert!(y.contains("http_client_request_duration_seconds_bucket{source=\"traffic\", le=~\"1|1.0\"}[5m]"), "{y}");
    assert!(y.contains("http_client_request_duration_seconds_count{dependency=\"auth0\", source=\"traffic\"}[1h]"), "{y}");
}

/// Two sidecars; from minute 10 on, `a`'s calls take 1..2.5s while `b`'s stay fast.
#[test]
fn generated_latency_rules_pass_promtool_check_and_fire_in_promtool_test() {
    let promtool = promtool();
    let scratch = authwatch_testkit::Scratch::new("latency-rules");
    let dir = scratch.0.clone();
    std::fs::write(dir.join("rules.yml"), prometheus_rules(&[Window::secs(300)], &latency_config())).unwrap();
    let out = std::process::Command::new(&promtool).arg("check").arg("rules").arg(dir.join("rules.yml")).output().unwrap();
    assert!(out.status.success(), "promtool check rules failed:\n{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    // 600 calls a minute per sidecar; cumulative buckets (le) as the prometheus exporter writes them.
    let mut input = String::new();
    for (inst, slow) in [("a:1", true), ("b:1", false)] {
        for le in ["0.1", "0.25", "0.5", "1", "2.5", "5", "+Inf"] {
            // Cumulative buckets: every call is at or below 0.1s, except `a`'s calls from minute
            // 10 on, which land in (1, 2.5].
            let after = match (slow, le) {
                (true, "0.1" | "0.25" | "0.5" | "1") => 0,
                _ => 600,
            };
            input += &format!(
                "      - series: 'http_client_request_duration_seconds_bucket{{instance=\"{inst}\", job=\"authwatch\", dependency=\"auth0\", endpoint=\"/oauth/token\", error_class=\"ok\", service_name=\"web\", source=\"traffic\", le=\"{le}\"}}'\n        values: '0+600x10 6000+{after}x20'\n"
            );
        }
        input += &format!(
            "      - series: 'http_client_request_duration_seconds_count{{instance=\"{inst}\", job=\"authwatch\", dependency=\"auth0\", endpoint=\"/oauth/token\", error_class=\"ok\", service_name=\"web\", source=\"traffic\"}}'\n        values: '0+600x10 6000+600x20'\n"
        );
    }
    let labels = |inst: &str| format!("instance: '{inst}', job: authwatch, dependency: auth0");
    let mut test = String::from("rule_files:\n  - rules.yml\nevaluation_interval: 1m\ntests:\n  - interval: 1m\n    input_series:\n");
    test += &input;
    test += "    alert_rule_test:\n";
    for name in ["idp_p95", "idp_slow_share", "idp_latency_slo"] {
        test += &format!("      - eval_time: 5m\n        alertname: {name}\n        exp_alerts: []\n");
    }
    test += "      - eval_time: 20m\n        alertname: idp_p95\n        exp_alerts:\n";
    test += &format!("          - exp_labels: {{severity: warning, {}}}\n", labels("a:1"));
    test += "            exp_annotations: {summary: 'auth0 is slow: p95 of the calls slower than 500ms over 5m', status_page: 'https://status.auth0.com'}\n";
    test += "      - eval_time: 20m\n        alertname: idp_slow_share\n        exp_alerts:\n";
    test += &format!("          - exp_labels: {{severity: warning, {}, source: traffic}}\n", labels("a:1"));
    test += "            exp_annotations: {summary: 'auth0 is slow: more than 20% of the calls slower than 1.00s over 5m', status_page: 'https://status.auth0.com'}\n";
    test += "      - eval_time: 20m\n        alertname: idp_latency_slo\n        exp_alerts:\n";
    test += &format!("          - exp_labels: {{severity: page, {}, source: traffic}}\n", labels("a:1"));
    test += "            exp_annotations: {summary: 'auth0 burns its 99% latency budget (calls slower than 1.00s) too fast (page)', status_page: 'https://status.auth0.com'}\n";
    std::fs::write(dir.join("test.yml"), test).unwrap();
    let out = std::process::Command::new(&promtool).current_dir(&dir).arg("test").arg("rules").arg("test.yml").output().unwrap();
    assert!(out.status.success(), "promtool test rules failed:\n{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
}

/// A cumulative histogram point seen twice, or an older one arriving after a newer one (two
/// delivery paths), adds nothing; a new start time is a reset.
#[test]
fn cumulative_histogram_points_count_once_whatever_their_order() {
    let c = rules(serde_json::json!([{"name": "slow_idp", "latency": {"quantile": "p50", "slower_than": "500ms", "window": "5m"}}]));
    let mut store = c.store();
    let point = |counts: [u64; 7], start: u64, time: u64| {
        let mut r = durations("auth0", "traffic", counts, None);
        for m in &mut r.resource_metrics[0].scope_metrics[0].metrics {
            if let Some(metric::Data::Histogram(h)) = &mut m.data {
                h.data_points[0].start_time_unix_nano = start;
                h.data_points[0].time_unix_nano = time;
            }
        }
        r
    };
    let calls = |store: &Store| -> f64 {
        store.durations(Some("auth0"), None, at(10), at(300)).map_or(0.0, |(_, c)| c.iter().sum())
    };
    store.ingest(&point([2, 0, 0, 0, 0, 0, 0], 1, 10), at(1));
    store.ingest(&point([5, 0, 0, 0, 0, 0, 0], 1, 30), at(2));
    store.ingest(&point([2, 0, 0, 0, 0, 0, 0], 1, 10), at(3));
    store.ingest(&point([5, 0, 0, 0, 0, 0, 0], 1, 30), at(4));
    assert_eq!(calls(&store), 5.0);
    // Restarted producer: counts from zero again.
    store.ingest(&point([1, 0, 0, 0, 0, 0, 0], 99, 40), at(5));
    assert_eq!(calls(&store), 6.0);
}

/// The live lane sends each changed series cumulatively, the normal lane the same series again
/// (cumulative, or delta when `error_rate` exports delta): the histogram, its slow calls and
/// the degraded counter count each call once, whichever lane brings it first.
#[test]
fn histogram_points_from_both_lanes_count_once() {
    let c = rules(serde_json::json!([{"name": "slow_logins", "latency": {
        "source": "probe", "slower_than": "2.5s", "share": 0.5, "window": "5m", "min_requests": 1}}]));
    let mut store = c.store();
    const SEC: u64 = 1_000_000_000;
    let timed = |counts: [u64; 7], degraded: f64, start: u64, time: u64, delta: bool| {
        let mut r = durations("auth0", "probe", counts, Some(degraded));
        for m in &mut r.resource_metrics[0].scope_metrics[0].metrics {
            match &mut m.data {
                Some(metric::Data::Histogram(h)) => {
                    h.aggregation_temporality = if delta { 1 } else { 2 };
                    h.data_points[0].start_time_unix_nano = start * SEC;
                    h.data_points[0].time_unix_nano = time * SEC;
                }
                Some(metric::Data::Sum(s)) => {
                    s.aggregation_temporality = if delta { 1 } else { 2 };
                    s.data_points[0].start_time_unix_nano = start * SEC;
                    s.data_points[0].time_unix_nano = time * SEC;
                }
                _ => {}
            }
        }
        r
    };
    let window = |store: &Store| {
        let calls: f64 = store.durations(Some("auth0"), None, at(20), at(300)).map_or(0.0, |(_, c)| c.iter().sum());
        let slow = store.slow_increase(Some("auth0"), None, Duration::from_millis(2500), at(20), at(300));
        (calls, slow.requests, slow.errors)
    };
    // Live updates at 1 s and 2 s.
    store.ingest(&timed([1, 0, 0, 0, 1, 0, 0], 1.0, 1, 1, false), at(1));
    store.ingest(&timed([3, 0, 0, 0, 2, 0, 0], 2.0, 1, 2, false), at(2));
    // The normal lane: the 1 s state late, then the 2 s state (cumulative export).
    store.ingest(&timed([1, 0, 0, 0, 1, 0, 0], 1.0, 1, 1, false), at(3));
    store.ingest(&timed([3, 0, 0, 0, 2, 0, 0], 2.0, 1, 2, false), at(3));
    assert_eq!(window(&store), (5.0, 5.0, 2.0));
    // A delta export of the same series is left to the live lane's cumulative points.
    store.ingest(&timed([3, 0, 0, 0, 2, 0, 0], 2.0, 1, 2, true), at(4));
    assert_eq!(window(&store), (5.0, 5.0, 2.0));
    // After a delta flush the series starts again: a new start time is a reset.
    store.ingest(&timed([1, 0, 0, 0, 1, 0, 0], 1.0, 15, 16, false), at(16));
    assert_eq!(window(&store), (7.0, 7.0, 3.0));
    // A point from before that reset adds nothing.
    store.ingest(&timed([4, 0, 0, 0, 2, 0, 0], 2.0, 1, 14, false), at(17));
    assert_eq!(window(&store), (7.0, 7.0, 3.0));
}
