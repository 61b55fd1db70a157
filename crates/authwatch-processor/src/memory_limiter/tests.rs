use std::sync::atomic::AtomicU64;
use std::time::Duration;

use authwatch_core::registry::decode_config;
use authwatch_core::{PipelineId, Settings, SignalKind};
use authwatch_testkit::{log_signal, metric_signal, trace_signal, Sink};
use tokio::task::JoinHandle;

use super::memory::{own_cgroup, parse_meminfo_total, parse_memory_max};
use super::*;

#[test]
fn config_contract() {
    // No default limit: the default config decodes but does not validate.
    authwatch_testkit::assert_config_decodes::<Config>("memory_limiter");
    assert_eq!(
        errors(&Config::default()),
        ["processors::memory_limiter: set one of `limit_mib` or `limit_percentage`; there is no default memory limit"]
    );
}

#[test]
fn decodes_every_option() {
    let c: Config = decode_config(serde_json::json!({
        "check_interval": "5s", "limit_mib": 0, "spike_limit_mib": 0,
        "limit_percentage": 80, "spike_limit_percentage": 25
    }))
    .unwrap();
    assert_eq!(
        c,
        Config {
            check_interval: Duration::from_secs(5),
            limit_percentage: Percent(80),
            spike_limit_percentage: Percent(25),
            ..Config::default()
        }
    );
    assert!(errors(&c).is_empty());
}

#[test]
fn percentages_above_100_are_refused_at_their_path() {
    let e = decode_config::<Config>(serde_json::json!({"limit_percentage": 150})).unwrap_err();
    assert_eq!(
        e.to_string(),
        "limit_percentage: 150 is not a percentage: write a whole number from 0 to 100"
    );
    let e =
        decode_config::<Config>(serde_json::json!({"spike_limit_percentage": 1000})).unwrap_err();
    assert_eq!(e.path, "spike_limit_percentage");
}

fn errors(c: &Config) -> Vec<String> {
    let mut v = Validator::new("processors::memory_limiter");
    c.validate(&mut v);
    v.errors().iter().map(ToString::to_string).collect()
}

fn mib(limit: u64, spike: u64) -> Config {
    Config {
        limit_mib: limit,
        spike_limit_mib: spike,
        ..Config::default()
    }
}

#[test]
fn validation_cases() {
    let pct = |limit: u8, spike: u8| Config {
        limit_percentage: Percent(limit),
        spike_limit_percentage: Percent(spike),
        ..Config::default()
    };
    let cases: Vec<(&str, Config, Vec<&str>)> = vec![
        ("limit_mib only", mib(512, 0), vec![]),
        ("limit_mib with spike", mib(512, 128), vec![]),
        ("limit_percentage only", pct(80, 0), vec![]),
        ("limit_percentage with spike", pct(80, 20), vec![]),
        (
            "both limits",
            Config {
                limit_percentage: Percent(50),
                ..mib(512, 0)
            },
            vec!["processors::memory_limiter: set only one of `limit_mib` or `limit_percentage`, not both"],
        ),
        (
            "spike equals limit",
            mib(512, 512),
            vec!["processors::memory_limiter::spike_limit_mib: must be smaller than `limit_mib` (512)"],
        ),
        (
            "spike percentage above limit",
            pct(30, 40),
            vec!["processors::memory_limiter::spike_limit_percentage: must be smaller than `limit_percentage` (30)"],
        ),
        (
            "spike percentage with limit_mib",
            Config {
                spike_limit_percentage: Percent(10),
                ..mib(512, 0)
            },
            vec!["processors::memory_limiter::spike_limit_percentage: applies only with `limit_percentage`; use `spike_limit_mib` with `limit_mib`"],
        ),
        (
            "spike mib with limit_percentage",
            Config {
                spike_limit_mib: 10,
                ..pct(50, 0)
            },
            vec!["processors::memory_limiter::spike_limit_mib: applies only with `limit_mib`; use `spike_limit_percentage` with `limit_percentage`"],
        ),
        (
            "zero check interval",
            Config {
                check_interval: Duration::ZERO,
                ..mib(512, 0)
            },
            vec!["processors::memory_limiter::check_interval: must be greater than zero, e.g. `1s`"],
        ),
    ];
    for (name, config, want) in cases {
        assert_eq!(errors(&config), want, "case {name}");
    }
}

#[test]
fn limits_default_spike_to_a_fifth() {
    let l = mib(100, 0).limits(|| None).unwrap();
    assert_eq!(l.hard, 100 * MIB);
    assert_eq!(l.soft, 80 * MIB);
    let l = mib(100, 30).limits(|| None).unwrap();
    assert_eq!(l.soft, 70 * MIB);
}

#[test]
fn percentage_limits_use_total_memory() {
    let c = Config {
        limit_percentage: Percent(50),
        spike_limit_percentage: Percent(10),
        ..Config::default()
    };
    let l = c.limits(|| Some(1000 * MIB)).unwrap();
    assert_eq!(l.hard, 500 * MIB);
    assert_eq!(l.soft, 400 * MIB);
    let c = Config {
        limit_percentage: Percent(50),
        ..Config::default()
    };
    assert_eq!(c.limits(|| Some(1000 * MIB)).unwrap().soft, 400 * MIB);
    let e = c.limits(|| None).unwrap_err();
    assert!(e.to_string().contains("set `limit_mib` instead"), "{e}");
}

#[test]
fn parses_memory_files() {
    assert_eq!(parse_memory_max("max\n"), None);
    assert_eq!(parse_memory_max("536870912\n"), Some(512 * MIB));
    assert_eq!(
        parse_meminfo_total("MemTotal:       16318480 kB\nMemFree:  1 kB\n"),
        Some(16_318_480 * 1024)
    );
    assert_eq!(parse_meminfo_total("MemFree:  1 kB\n"), None);
    assert_eq!(
        own_cgroup("0::/system.slice/authwatch.service\n").as_deref(),
        Some("/system.slice/authwatch.service")
    );
    assert_eq!(own_cgroup("12:memory:/x\n"), None);
}

#[test]
fn reads_real_memory_on_linux() {
    if cfg!(target_os = "linux") {
        assert!(ProcessRss.used_bytes().is_some_and(|b| b > 0));
        assert!(total_memory_bytes().is_some_and(|b| b > 0));
    }
}

/// Memory readings set by the test.
#[derive(Default)]
struct FakeMemory(AtomicU64);

impl FakeMemory {
    fn set_mib(&self, mib: u64) {
        self.0.store(mib * MIB, Ordering::SeqCst);
    }
}

impl MemorySource for FakeMemory {
    fn used_bytes(&self) -> Option<u64> {
        Some(self.0.load(Ordering::SeqCst))
    }
}

struct Unreadable;

impl MemorySource for Unreadable {
    fn used_bytes(&self) -> Option<u64> {
        None
    }
}

struct Harness {
    consumer: SharedConsumer,
    settings: Settings,
    task: JoinHandle<Result<(), RunError>>,
}

fn start(config: &Config, source: Arc<dyn MemorySource>, sink: &Sink) -> Harness {
    let settings = Settings::new("memory_limiter".parse().unwrap());
    let built = config
        .build_with(
            ProcessorContext {
                settings: settings.clone(),
                pipeline: "traces".parse::<PipelineId>().unwrap(),
                next: sink.shared(),
            },
            source,
            || None,
        )
        .unwrap();
    Harness {
        consumer: built.consumer,
        settings,
        task: tokio::spawn(built.task.expect("memory_limiter has a task")),
    }
}

impl Harness {
    fn metric(&self, line: &str) -> bool {
        self.settings.telemetry.encode().lines().any(|l| l == line)
    }

    async fn stop(self) {
        self.settings.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(30), self.task)
            .await
            .expect("task ends after shutdown")
            .expect("task does not panic")
            .expect("task ends cleanly");
    }
}

#[tokio::test(start_paused = true)]
async fn passes_below_refuses_above_and_recovers() {
    let memory = Arc::new(FakeMemory::default());
    memory.set_mib(50);
    let sink = Sink::new();
    // Soft limit: 100 - 20 = 80 MiB; the backstop refuses from 90 MiB.
    let h = start(&mib(100, 0), memory.clone(), &sink);

    h.consumer.consume(trace_signal(0, 3)).await.unwrap();
    assert_eq!(sink.item_count(SignalKind::Traces), 3);

    // Above the backstop limit: refused from the next check on, by the limiter and by the
    // budget that receivers ask before reading.
    memory.set_mib(95);
    h.consumer.consume(trace_signal(3, 1)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    for data in [trace_signal(4, 2), metric_signal(0, 4), log_signal(0, 5)] {
        assert_eq!(
            h.consumer.consume(data).await,
            Err(ConsumeError::Throttled(Duration::from_secs(1)))
        );
    }
    assert_eq!(sink.item_count(SignalKind::Traces), 4);
    assert!(h.settings.budget.admit(0).is_err());
    assert!(h.metric(
        r#"authwatch_processor_refused_spans_total{processor="memory_limiter",pipeline="traces"} 2"#
    ));
    assert!(h.metric(
        r#"authwatch_processor_refused_metric_points_total{processor="memory_limiter",pipeline="traces"} 4"#
    ));

    // Back below: accepted again after the next check.
    memory.set_mib(89);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(h.settings.budget.admit(0), Ok(()));
    h.consumer.consume(trace_signal(6, 2)).await.unwrap();
    assert_eq!(sink.item_count(SignalKind::Traces), 6);
    assert!(h.metric(
        r#"authwatch_processor_accepted_spans_total{processor="memory_limiter",pipeline="traces"} 6"#
    ));
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn memory_that_stays_high_but_flat_does_not_refuse_for_ever() {
    // What glibc does after a burst: the data is gone, the RSS stays where the burst left it.
    let memory = Arc::new(FakeMemory::default());
    memory.set_mib(50);
    let sink = Sink::new();
    let h = start(&mib(100, 0), memory.clone(), &sink);
    memory.set_mib(95);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert!(h.consumer.consume(trace_signal(0, 1)).await.is_err());
    // Flat for the hold (5 checks): let in again, though still above the backstop (90 MiB).
    tokio::time::sleep(Duration::from_secs(u64::from(gate::INITIAL_HOLD))).await;
    h.consumer.consume(trace_signal(1, 1)).await.unwrap();
    // Memory grows again: refused from the next check on.
    memory.set_mib(97);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        h.consumer.consume(trace_signal(2, 1)).await,
        Err(ConsumeError::Throttled(Duration::from_secs(1)))
    );
    // At the hard limit it refuses however long memory stays flat.
    memory.set_mib(100);
    tokio::time::sleep(Duration::from_secs(200)).await;
    assert!(h.consumer.consume(trace_signal(3, 1)).await.is_err());
    assert_eq!(sink.item_count(SignalKind::Traces), 1);
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn refuses_from_the_start_when_already_above() {
    let memory = Arc::new(FakeMemory::default());
    memory.set_mib(90);
    let sink = Sink::new();
    let config = Config {
        check_interval: Duration::from_secs(5),
        ..mib(100, 0)
    };
    let h = start(&config, memory, &sink);
    assert_eq!(
        h.consumer.consume(log_signal(0, 1)).await,
        Err(ConsumeError::Throttled(Duration::from_secs(5))),
        "exactly at the backstop limit counts as above"
    );
    assert!(sink.received().is_empty());
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn unreadable_memory_lets_data_through() {
    let sink = Sink::new();
    let h = start(&mib(1, 0), Arc::new(Unreadable), &sink);
    tokio::time::sleep(Duration::from_secs(3)).await;
    h.consumer.consume(trace_signal(0, 1)).await.unwrap();
    assert_eq!(sink.item_count(SignalKind::Traces), 1);
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn downstream_errors_pass_through() {
    let memory = Arc::new(FakeMemory::default());
    let sink = Sink::new();
    sink.fail_with(Some(ConsumeError::Full));
    let h = start(&mib(100, 0), memory, &sink);
    assert_eq!(
        h.consumer.consume(trace_signal(0, 1)).await,
        Err(ConsumeError::Full)
    );
    h.stop().await;
}

#[tokio::test]
async fn build_fails_without_a_limit() {
    let sink = Sink::new();
    let r = Config::default()
        .build(ProcessorContext {
            settings: Settings::new("memory_limiter".parse().unwrap()),
            pipeline: "logs".parse::<PipelineId>().unwrap(),
            next: sink.shared(),
        })
        .await;
    let Err(BuildError::Component(e)) = r else {
        panic!("want the limiter's own error");
    };
    assert_eq!(e.downcast_ref::<LimitError>(), Some(&LimitError::NoLimit));
}

#[tokio::test]
async fn builds_with_real_memory() {
    let sink = Sink::new();
    let settings = Settings::new("memory_limiter".parse().unwrap());
    let built = mib(1 << 20, 0)
        .build(ProcessorContext {
            settings: settings.clone(),
            pipeline: "logs".parse::<PipelineId>().unwrap(),
            next: sink.shared(),
        })
        .await
        .unwrap();
    built.consumer.consume(log_signal(0, 2)).await.unwrap();
    assert_eq!(sink.item_count(SignalKind::Logs), 2);
    settings.shutdown.cancel();
    built.task.unwrap().await.unwrap();
}

#[test]
fn the_held_limit_leaves_room_for_what_the_process_needs() {
    let l = mib(100, 0).limits(|| None).unwrap();
    assert_eq!(held_limit(l, 30 * MIB), 50 * MIB);
    assert_eq!(held_limit(l, 0), 80 * MIB);
    // A process that already uses (nearly) the soft limit still takes a quarter of it.
    assert_eq!(held_limit(l, 79 * MIB), 20 * MIB);
    assert_eq!(l.backstop(), Limits { hard: 100 * MIB, soft: 90 * MIB });
}

#[tokio::test(start_paused = true)]
async fn refuses_while_data_held_passes_the_held_limit_whatever_the_rss() {
    let memory = Arc::new(FakeMemory::default());
    memory.set_mib(30);
    let sink = Sink::new();
    // Soft limit 80 MiB, 30 MiB used at start: data may hold 50 MiB.
    let h = start(&mib(100, 0), memory.clone(), &sink);
    let budget = h.settings.budget.clone();
    assert_eq!(budget.limit(), Some(50 * MIB));
    let queued = budget.charge(50 * MIB);
    h.consumer.consume(trace_signal(0, 1)).await.unwrap();
    let more = budget.charge(1);
    assert_eq!(
        h.consumer.consume(trace_signal(1, 1)).await,
        Err(ConsumeError::Throttled(Duration::from_secs(1)))
    );
    // Receivers refuse before reading: the budget says the same.
    assert!(matches!(
        budget.admit(100),
        Err(ConsumeError::Throttled(_))
    ));
    // The queue drains: accepted again at once, no check needed.
    drop((queued, more));
    h.consumer.consume(trace_signal(2, 1)).await.unwrap();
    assert_eq!(budget.admit(100), Ok(()));
    assert_eq!(sink.item_count(SignalKind::Traces), 2);
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_stopped_limiter_leaves_no_refusal_in_the_budget() {
    let memory = Arc::new(FakeMemory::default());
    memory.set_mib(99);
    let sink = Sink::new();
    let h = start(&mib(100, 0), memory, &sink);
    let budget = h.settings.budget.clone();
    assert!(budget.admit(0).is_err());
    h.stop().await;
    assert_eq!(budget.admit(0), Ok(()));
}

#[tokio::test(start_paused = true)]
async fn the_held_limit_follows_what_a_held_byte_costs_in_rss() {
    let memory = Arc::new(FakeMemory::default());
    memory.set_mib(20);
    let sink = Sink::new();
    // Soft limit 80 MiB, 20 MiB at start: room for 60 MiB if a held byte cost one byte.
    let h = start(&mib(100, 0), memory.clone(), &sink);
    let budget = h.settings.budget.clone();
    assert_eq!(budget.limit(), Some(60 * MIB));
    // 20 MiB held and the RSS 60 MiB above the start: 3 bytes each. 60 / 3 = 20 MiB.
    let held = budget.charge(20 * MIB);
    memory.set_mib(80);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(budget.limit(), Some(20 * MIB));
    assert!(h.consumer.consume(trace_signal(0, 1)).await.is_ok());
    let one_more = budget.charge(1);
    assert!(h.consumer.consume(trace_signal(1, 1)).await.is_err());
    // Drained, the allocator keeps the memory: nothing to learn from, the limit stays.
    drop((held, one_more));
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(budget.limit(), Some(20 * MIB));
    // 10 MiB held for 20 MiB of RSS: 2 bytes each; the cost falls by half the difference.
    let _held = budget.charge(10 * MIB);
    memory.set_mib(40);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(budget.limit(), Some(24 * MIB));
    h.stop().await;
}
