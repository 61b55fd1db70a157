//! The live lane: every call counted once whichever lane brings it first, probe runs and
//! status polls at once, and `for` and burn-rate semantics as they were.

use super::super::store::LatencyNeeds;
use super::*;

const SEC: u64 = 1_000_000_000;

/// Cumulative counters as error_rate sends them on both lanes: `start` and `time` in seconds.
fn counters_at(ok: f64, failed: f64, start: u64, time: u64) -> ExportMetricsServiceRequest {
    let mut r = counters("auth0", "traffic", ok, failed);
    for m in &mut r.resource_metrics[0].scope_metrics[0].metrics {
        if let Some(metric::Data::Sum(s)) = &mut m.data {
            for p in &mut s.data_points {
                p.start_time_unix_nano = start * SEC;
                p.time_unix_nano = time * SEC;
            }
        }
    }
    r
}

fn as_delta(mut r: ExportMetricsServiceRequest) -> ExportMetricsServiceRequest {
    for m in &mut r.resource_metrics[0].scope_metrics[0].metrics {
        if let Some(metric::Data::Sum(s)) = &mut m.data {
            s.aggregation_temporality = 1;
        }
    }
    r
}

fn totals(store: &Store) -> (f64, f64) {
    let i = store.increase(Some("auth0"), None, Duration::from_secs(100), Duration::from_secs(3600));
    (i.requests, i.errors)
}

#[test]
fn each_call_counts_once_whichever_lane_brings_it() {
    let mut store = Store::new(Duration::from_secs(3600), [], LatencyNeeds::default());
    let at = Duration::from_secs;
    // Live updates at 1 s and 2 s; the 15 s flush copy of the 2 s state comes later.
    store.ingest(&counters_at(5.0, 1.0, 1, 1), at(1));
    store.ingest(&counters_at(8.0, 2.0, 1, 2), at(2));
    store.ingest(&counters_at(8.0, 2.0, 1, 2), at(3));
    assert_eq!(totals(&store), (10.0, 2.0));
    // An older copy after a newer live update (a batch held it) adds nothing and undoes nothing.
    store.ingest(&counters_at(9.0, 2.0, 1, 4), at(5));
    store.ingest(&counters_at(6.0, 1.0, 1, 3), at(5));
    assert_eq!(totals(&store), (11.0, 2.0));
    // A new start time is a reset (a delta flush started the series again): counted in full.
    store.ingest(&counters_at(1.0, 1.0, 10, 10), at(10));
    assert_eq!(totals(&store), (13.0, 3.0));
    // A point of the series before that reset adds nothing.
    store.ingest(&counters_at(9.0, 2.0, 1, 9), at(11));
    assert_eq!(totals(&store), (13.0, 3.0));
    // Delta points of series read cumulatively from the live lane are left to those.
    store.ingest(&as_delta(counters_at(3.0, 1.0, 10, 15)), at(15));
    assert_eq!(totals(&store), (13.0, 3.0));
    // Other producers' delta counters are counted as before.
    let mut other = Store::new(Duration::from_secs(3600), [], LatencyNeeds::default());
    other.ingest(&as_delta(counters_at(3.0, 1.0, 10, 15)), at(15));
    other.ingest(&as_delta(counters_at(3.0, 1.0, 15, 30)), at(30));
    assert_eq!(totals(&other), (8.0, 2.0));
}

#[test]
fn a_probe_run_and_a_status_poll_count_once_from_two_lanes() {
    let mut store = Store::new(Duration::from_secs(3600), [], LatencyNeeds::default());
    let at = Duration::from_secs;
    store.ingest(&probe("login", false, 5 * SEC), at(5));
    store.ingest(&probe("login", false, 5 * SEC), at(5));
    assert_eq!(store.probes["login"].consecutive_failures, 1);
    store.ingest(&probe("login", false, 6 * SEC), at(6));
    // The normal lane's copy of the 5 s run comes after the 6 s run's live copy.
    store.ingest(&probe("login", false, 5 * SEC), at(6));
    assert_eq!(store.probes["login"].consecutive_failures, 2);
    // A status poll: a stale copy does not undo a newer indicator.
    let poll = |indicator: i64, t: u64| {
        let mut r = status("auth0", indicator);
        if let Some(metric::Data::Gauge(g)) = &mut r.resource_metrics[0].scope_metrics[0].metrics[0].data {
            g.data_points[0].time_unix_nano = t * SEC;
        }
        r
    };
    store.ingest(&poll(2, 20), at(20));
    store.ingest(&poll(0, 10), at(21));
    assert_eq!(store.status["auth0"].indicator, 2);
}

/// The connector fed live data as the `error_rate` connector sends it.
#[tokio::test(start_paused = true)]
async fn for_30s_still_waits_30s_with_live_updates() {
    let c = rules(serde_json::json!([
        {"name": "ratio", "threshold": {"dependency": "auth0", "error_ratio": 0.05, "window": "5m", "min_requests": 20}, "for": "30s"},
        {"name": "slo", "burn_rate": {"dependency": "auth0", "objective": 99.9, "min_requests": 20}}
    ]));
    let (alerts, logs, token, task) = build(&c).await;
    assert!(alerts.takes_live());
    let t0 = tokio::time::Instant::now();
    // 100 calls, 30% failing, arriving over one second in live updates every 200ms.
    let (mut ok, mut failed) = (0.0, 0.0);
    for i in 1..=5u64 {
        ok += 14.0;
        failed += 6.0;
        alerts.consume_live(Signal::Metrics(counters_at(ok, failed, 1, i))).await.unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let by_rule = |name: &str| -> Vec<String> {
        records(&logs)
            .iter()
            .map(attrs)
            .filter(|a| a[semconv::ALERT_NAME] == name)
            .map(|a| a[semconv::ALERT_STATE].clone())
            .collect()
    };
    // The burn rate (300x the budget over 1h and 5m) pages at once; the threshold is pending.
    assert_eq!(by_rule("slo").first().map(String::as_str), Some("firing"));
    assert_eq!(by_rule("ratio"), ["pending"]);
    // The 15 s flush copy of the same counters changes nothing.
    alerts.consume(Signal::Metrics(counters_at(ok, failed, 1, 5))).await.unwrap();
    // `for: 30s` from the update that made the condition true (the first, 20 calls at 30%).
    tokio::time::sleep_until(t0 + Duration::from_secs(29)).await;
    assert_eq!(by_rule("ratio").len(), 1, "still pending before 30s");
    tokio::time::sleep_until(t0 + Duration::from_secs(31)).await;
    assert_eq!(by_rule("ratio"), ["pending", "firing"]);
    let a = records(&logs).iter().map(attrs).find(|a| a[semconv::ALERT_NAME] == "ratio" && a[semconv::ALERT_STATE] == "firing").unwrap();
    assert_eq!(a["alert.window.requests"], "100", "every call once, not twice");
    assert_eq!(a["alert.window.errors"], "30");
    token.cancel();
    task.await.unwrap().unwrap();
}
