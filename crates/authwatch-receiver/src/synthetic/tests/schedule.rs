//! The scheduler: interval, `Retry-After`, blocking, shutdown, and the lag of each run.

use tokio::time::Instant;

use super::super::schedule::{run_schedule, schedule_lag, Probe, Schedule};
use super::*;

// === scheduling ===

struct Scripted {
    calls: Arc<Mutex<Vec<Instant>>>,
    backoffs: Vec<Backoff>,
    running: Arc<AtomicUsize>,
}

impl Probe for Scripted {
    async fn run_once(&mut self) -> Backoff {
        assert_eq!(
            self.running.fetch_add(1, Ordering::SeqCst),
            0,
            "runs overlap"
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
        self.running.fetch_sub(1, Ordering::SeqCst);
        let mut calls = self.calls.lock().unwrap();
        calls.push(Instant::now());
        self.backoffs
            .get(calls.len() - 1)
            .copied()
            .unwrap_or_default()
    }
}

#[tokio::test(start_paused = true)]
async fn schedule_honours_interval_retry_after_and_blocking() {
    let schedule = Schedule {
        interval: Duration::from_secs(10),
        initial_delay: Duration::from_secs(1),
        jitter: Duration::ZERO,
        blocked_backoff: Duration::from_secs(300),
        lag: None,
    };
    let calls = Arc::new(Mutex::new(Vec::new()));
    let mut probe = Scripted {
        calls: calls.clone(),
        backoffs: vec![
            Backoff::None,
            Backoff::RetryAfter(Duration::from_secs(35)),
            Backoff::Blocked,
            Backoff::None,
        ],
        running: Arc::new(AtomicUsize::new(0)),
    };
    let shutdown = tokio_util::sync::CancellationToken::new();
    let t0 = Instant::now();
    let stop = shutdown.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(400)).await;
        stop.cancel();
    });
    run_schedule(&schedule, &shutdown, &mut probe).await;
    // Each run takes 2 s; times are when runs ended.
    let ends: Vec<u64> = calls
        .lock()
        .unwrap()
        .iter()
        .map(|t| (*t - t0).as_secs())
        .collect();
    // Runs start at 1 (initial delay), 11 (interval), 51 (a 35 s Retry-After at 13, rounded up
    // to the interval grid), 361 (a 300 s pause at 53, on the grid), then every 10 s.
    assert_eq!(ends, [3, 13, 53, 363, 373, 383, 393]);
}

#[tokio::test(start_paused = true)]
async fn schedule_stops_on_shutdown_after_the_run_in_flight() {
    let schedule = Schedule {
        interval: Duration::from_secs(10),
        initial_delay: Duration::ZERO,
        jitter: Duration::from_secs(5),
        blocked_backoff: Duration::from_secs(300),
        lag: None,
    };
    let calls = Arc::new(Mutex::new(Vec::new()));
    let mut probe = Scripted {
        calls: calls.clone(),
        backoffs: vec![],
        running: Arc::new(AtomicUsize::new(0)),
    };
    let shutdown = tokio_util::sync::CancellationToken::new();
    let stop = shutdown.clone();
    tokio::spawn(async move {
        // Lands inside the first run (jitter < 5 s, run takes 2 s) or before it.
        tokio::time::sleep(Duration::from_millis(5500)).await;
        stop.cancel();
    });
    run_schedule(&schedule, &shutdown, &mut probe).await;
    assert!(calls.lock().unwrap().len() <= 1);
}

#[tokio::test(start_paused = true)]
async fn schedule_records_how_late_each_run_starts() {
    let telemetry = authwatch_core::telemetry::Telemetry::new();
    let schedule = Schedule {
        interval: Duration::from_secs(10),
        initial_delay: Duration::ZERO,
        jitter: Duration::ZERO,
        blocked_backoff: Duration::from_secs(300),
        lag: Some(schedule_lag(&telemetry, "synthetic/x")),
    };
    let mut probe = Scripted {
        calls: Arc::new(Mutex::new(Vec::new())),
        backoffs: vec![],
        running: Arc::new(AtomicUsize::new(0)),
    };
    let shutdown = tokio_util::sync::CancellationToken::new();
    let stop = shutdown.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(35)).await;
        stop.cancel();
    });
    run_schedule(&schedule, &shutdown, &mut probe).await;
    // Runs at 0, 10, 20 and 30 s, each on time (the paused clock has no timer delay).
    let text = telemetry.encode();
    assert!(
        text.contains(
            r#"authwatch_synthetic_schedule_lag_seconds_count{receiver="synthetic/x"} 4"#
        ),
        "{text}"
    );
    assert!(
        text.contains(r#"authwatch_synthetic_schedule_lag_seconds_bucket{le="0.002",receiver="synthetic/x"} 4"#),
        "{text}"
    );
}
