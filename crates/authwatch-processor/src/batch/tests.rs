use std::time::Duration;

use authwatch_core::otlp::common::v1::{any_value, KeyValue};
use authwatch_core::otlp::metrics::v1::metric::Data;
use std::sync::atomic::Ordering;

use authwatch_core::{
    Backlog, ComponentConfig, Consumer, ConsumeError, Fanout, PipelineId, ProcessorConfig, ProcessorContext, Settings,
    SharedConsumer, Signal, SignalKind, Validator,
};
use authwatch_testkit::{log_signal, metric_signal, resource, trace_signal, Sink};
use tokio::task::JoinHandle;

use super::*;

#[test]
fn config_contract() {
    authwatch_testkit::assert_config_contract::<Config>("batch");
}

#[test]
fn defaults_match_the_collector() {
    let c = Config::default();
    assert_eq!(c.send_batch_size, 8192);
    assert_eq!(c.timeout, Duration::from_millis(200));
    assert_eq!(c.send_batch_max_size, 0);
}

#[test]
fn decodes_every_option() {
    let c: Config = authwatch_core::registry::decode_config(serde_json::json!({
        "send_batch_size": 100, "timeout": "1s", "send_batch_max_size": 200
    }))
    .unwrap();
    assert_eq!(
        c,
        Config {
            send_batch_size: 100,
            timeout: Duration::from_secs(1),
            send_batch_max_size: 200
        }
    );
}

fn errors(c: &Config) -> Vec<String> {
    let mut v = Validator::new("processors::batch");
    c.validate(&mut v);
    v.errors().iter().map(ToString::to_string).collect()
}

#[test]
fn max_size_below_size_is_refused() {
    let c = Config {
        send_batch_max_size: 100,
        ..Config::default()
    };
    assert_eq!(
        errors(&c),
        ["processors::batch::send_batch_max_size: must be greater than or equal to `send_batch_size` (8192), or 0 for no maximum"]
    );
    let ok = Config {
        send_batch_size: 100,
        send_batch_max_size: 100,
        ..Config::default()
    };
    assert!(errors(&ok).is_empty());
}

/// A batch processor in a pipeline of `kind`, its task running, feeding `sink`.
struct Harness {
    consumer: SharedConsumer,
    settings: Settings,
    kind: SignalKind,
    task: JoinHandle<Result<(), RunError>>,
}

/// Batch metric families are process-wide, so each test uses its own processor id.
async fn start(name: &str, config: Config, kind: SignalKind, sink: &Sink) -> Harness {
    let id = format!("batch/{name}").parse().unwrap();
    start_with(config, kind, sink, Settings::new(id)).await
}

async fn start_with(config: Config, kind: SignalKind, sink: &Sink, settings: Settings) -> Harness {
    let built = config
        .build(ProcessorContext {
            settings: settings.clone(),
            pipeline: kind.as_str().parse::<PipelineId>().unwrap(),
            next: sink.shared(),
        })
        .await
        .unwrap();
    let task = tokio::spawn(built.task.expect("batch has a task"));
    Harness {
        consumer: built.consumer,
        settings,
        kind,
        task,
    }
}

impl Harness {
    async fn stop(self) {
        self.settings.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(30), self.task)
            .await
            .expect("task ends after shutdown")
            .expect("task does not panic")
            .expect("task ends cleanly");
    }

    /// Whether `name{processor=..,pipeline=..}` has `value` for this instance.
    fn has(&self, name: &str, value: u64) -> bool {
        let line = format!(
            r#"{name}{{processor="{}",pipeline="{}"}} {value}"#,
            self.settings.id, self.kind
        );
        self.settings.telemetry.encode().lines().any(|l| l == line)
    }
}

fn index_of(attrs: &[KeyValue]) -> i64 {
    attrs
        .iter()
        .find(|kv| kv.key == "test.index")
        .and_then(|kv| kv.value.as_ref()?.value.as_ref())
        .map(|v| match v {
            any_value::Value::IntValue(i) => *i,
            other => panic!("unexpected test.index {other:?}"),
        })
        .expect("item has test.index")
}

/// The `test.index` of every item, in order.
fn indices(s: &Signal) -> Vec<i64> {
    let decoded = s.decoded_ref().expect("batches decode");
    match decoded.as_ref() {
        Signal::Encoded(_) => unreachable!("decoded"),
        Signal::Traces(r) => r
            .resource_spans
            .iter()
            .flat_map(|rs| &rs.scope_spans)
            .flat_map(|ss| &ss.spans)
            .map(|s| index_of(&s.attributes))
            .collect(),
        Signal::Logs(r) => r
            .resource_logs
            .iter()
            .flat_map(|rl| &rl.scope_logs)
            .flat_map(|sl| &sl.log_records)
            .map(|l| index_of(&l.attributes))
            .collect(),
        Signal::Metrics(r) => r
            .resource_metrics
            .iter()
            .flat_map(|rm| &rm.scope_metrics)
            .flat_map(|sm| &sm.metrics)
            .flat_map(|m| match &m.data {
                Some(Data::Gauge(g)) => g.data_points.iter().map(|p| index_of(&p.attributes)),
                other => panic!("unexpected metric data {other:?}"),
            })
            .collect(),
    }
}

fn all_indices(sink: &Sink) -> Vec<i64> {
    sink.received().iter().flat_map(indices).collect()
}

fn signal(kind: SignalKind, first: u64, n: u64) -> Signal {
    match kind {
        SignalKind::Traces => trace_signal(first, n),
        SignalKind::Metrics => metric_signal(first, n),
        SignalKind::Logs => log_signal(first, n),
    }
}

/// Every resource and scope entry of a request carries its header.
fn assert_headers_kept(s: &Signal) {
    let decoded = s.decoded_ref().expect("batches decode");
    match decoded.as_ref() {
        Signal::Encoded(_) => unreachable!("decoded"),
        Signal::Traces(r) => {
            for rs in &r.resource_spans {
                assert!(rs.resource.is_some());
                assert!(rs.scope_spans.iter().all(|ss| ss.scope.is_some()));
            }
        }
        Signal::Logs(r) => {
            for rl in &r.resource_logs {
                assert!(rl.resource.is_some());
                assert!(rl.scope_logs.iter().all(|sl| sl.scope.is_some()));
            }
        }
        Signal::Metrics(r) => {
            for rm in &r.resource_metrics {
                assert!(rm.resource.is_some());
                for sm in &rm.scope_metrics {
                    assert!(sm.scope.is_some());
                    assert!(sm.metrics.iter().all(|m| m.name == "test.gauge"));
                }
            }
        }
    }
}

#[tokio::test(start_paused = true)]
async fn sends_when_size_is_reached() {
    let sink = Sink::new();
    let config = Config {
        send_batch_size: 10,
        timeout: Duration::from_secs(3600),
        send_batch_max_size: 0,
    };
    let h = start("sends_when_size_is_reached", config, SignalKind::Traces, &sink).await;
    for i in 0..4 {
        h.consumer.consume(trace_signal(i * 3, 3)).await.unwrap();
    }
    sink.wait_for_items(SignalKind::Traces, 12, Duration::from_secs(10))
        .await;
    let got = sink.received();
    assert_eq!(got.len(), 1, "one merged request");
    assert_eq!(indices(&got[0]), (0..12).collect::<Vec<_>>());
    // Identical resources and scopes were joined, not repeated.
    let Signal::Traces(r) = &got[0] else {
        panic!("traces expected")
    };
    assert_eq!(r.resource_spans.len(), 1);
    assert_eq!(r.resource_spans[0].scope_spans.len(), 1);
    assert!(h.has("authwatch_processor_batch_size_trigger_send_total", 1));
    assert!(h.has("authwatch_processor_accepted_spans_total", 12));
    assert!(h.has("authwatch_processor_batch_send_size_count", 1));
    h.stop().await;
    assert_eq!(sink.received().len(), 1, "nothing left to flush");
}

#[tokio::test(start_paused = true)]
async fn sends_when_timeout_elapses() {
    let sink = Sink::new();
    let config = Config {
        send_batch_size: 100,
        timeout: Duration::from_millis(200),
        send_batch_max_size: 0,
    };
    let h = start("sends_when_timeout_elapses", config, SignalKind::Logs, &sink).await;
    let t0 = Instant::now();
    h.consumer.consume(log_signal(0, 5)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(sink.item_count(SignalKind::Logs), 0, "not sent before the timeout");
    sink.wait_for_items(SignalKind::Logs, 5, Duration::from_secs(10))
        .await;
    assert!(t0.elapsed() >= Duration::from_millis(200));
    assert_eq!(all_indices(&sink), (0..5).collect::<Vec<_>>());
    assert!(h.has("authwatch_processor_batch_timeout_trigger_send_total", 1));
    assert!(h.has("authwatch_processor_batch_size_trigger_send_total", 0));
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn zero_timeout_sends_every_request_at_once() {
    let sink = Sink::new();
    let config = Config {
        timeout: Duration::ZERO,
        ..Config::default()
    };
    let h = start("zero_timeout_sends_every_request_at_once", config, SignalKind::Traces, &sink).await;
    h.consumer.consume(trace_signal(0, 2)).await.unwrap();
    sink.wait_for_items(SignalKind::Traces, 2, Duration::from_secs(10))
        .await;
    h.consumer.consume(trace_signal(2, 3)).await.unwrap();
    sink.wait_for_items(SignalKind::Traces, 5, Duration::from_secs(10))
        .await;
    assert_eq!(sink.received().len(), 2);
    h.stop().await;
}

async fn check_split(kind: SignalKind) {
    let sink = Sink::new();
    let config = Config {
        send_batch_size: 4,
        timeout: Duration::from_secs(1),
        send_batch_max_size: 4,
    };
    let h = start(&format!("split_{kind}"), config, kind, &sink).await;
    h.consumer.consume(signal(kind, 0, 10)).await.unwrap();
    sink.wait_for_items(kind, 8, Duration::from_secs(10)).await;
    // Two full requests went out at once; the last 2 items wait for the timeout.
    assert_eq!(sink.received().len(), 2, "{kind}");
    sink.wait_for_items(kind, 10, Duration::from_secs(10)).await;
    let got = sink.received();
    let sizes: Vec<usize> = got.iter().map(Signal::item_count).collect();
    assert_eq!(sizes, [4, 4, 2], "{kind}");
    assert_eq!(all_indices(&sink), (0..10).collect::<Vec<_>>(), "{kind}");
    for s in &got {
        assert_eq!(s.kind(), kind);
        assert_headers_kept(s);
    }
    assert!(h.has("authwatch_processor_batch_size_trigger_send_total", 2));
    assert!(h.has("authwatch_processor_batch_timeout_trigger_send_total", 1));
    h.stop().await;
    assert_eq!(sink.received().len(), 3);
}

#[tokio::test(start_paused = true)]
async fn splits_traces_above_max_size() {
    check_split(SignalKind::Traces).await;
}

#[tokio::test(start_paused = true)]
async fn splits_metrics_at_data_point_level() {
    check_split(SignalKind::Metrics).await;
}

#[tokio::test(start_paused = true)]
async fn splits_logs_above_max_size() {
    check_split(SignalKind::Logs).await;
}

#[tokio::test(start_paused = true)]
async fn split_across_resources_keeps_each_resource() {
    let sink = Sink::new();
    let config = Config {
        send_batch_size: 4,
        timeout: Duration::from_secs(1),
        send_batch_max_size: 4,
    };
    let h = start("split_across_resources_keeps_each_resource", config, SignalKind::Traces, &sink).await;
    let a = trace_signal(0, 3);
    let Signal::Traces(mut b) = trace_signal(3, 3) else {
        unreachable!()
    };
    b.resource_spans[0].resource = Some(resource("billing"));
    h.consumer.consume(a).await.unwrap();
    h.consumer.consume(Signal::Traces(b)).await.unwrap();
    sink.wait_for_items(SignalKind::Traces, 6, Duration::from_secs(10))
        .await;
    let got = sink.received();
    assert_eq!(got.len(), 2);
    let services = |s: &Signal| -> Vec<(String, usize)> {
        let Signal::Traces(r) = s else { unreachable!() };
        r.resource_spans
            .iter()
            .map(|rs| {
                let name = rs.resource.as_ref().unwrap().attributes[0]
                    .value
                    .as_ref()
                    .and_then(|v| match &v.value {
                        Some(any_value::Value::StringValue(s)) => Some(s.clone()),
                        _ => None,
                    })
                    .unwrap();
                (name, rs.scope_spans.iter().map(|s| s.spans.len()).sum())
            })
            .collect()
    };
    assert_eq!(
        services(&got[0]),
        [("checkout".to_string(), 3), ("billing".to_string(), 1)]
    );
    assert_eq!(services(&got[1]), [("billing".to_string(), 2)]);
    assert_eq!(all_indices(&sink), (0..6).collect::<Vec<_>>());
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn shutdown_flushes_pending_items() {
    let sink = Sink::new();
    let config = Config {
        send_batch_size: 100,
        timeout: Duration::from_secs(3600),
        send_batch_max_size: 0,
    };
    let h = start("shutdown_flushes_pending_items", config, SignalKind::Metrics, &sink).await;
    h.consumer.consume(metric_signal(0, 4)).await.unwrap();
    h.consumer.consume(metric_signal(4, 3)).await.unwrap();
    let consumer = h.consumer.clone();
    h.stop().await;
    assert_eq!(all_indices(&sink), (0..7).collect::<Vec<_>>());
    assert_eq!(sink.received().len(), 1);
    assert_eq!(
        consumer.consume(metric_signal(7, 1)).await,
        Err(ConsumeError::Closed),
        "input is closed after shutdown"
    );
}

#[tokio::test(start_paused = true)]
async fn backpressure_loses_nothing() {
    let sink = Sink::new();
    sink.fail_with(Some(ConsumeError::Full));
    let config = Config {
        send_batch_size: 1,
        timeout: Duration::from_secs(1),
        send_batch_max_size: 0,
    };
    let h = start("backpressure_loses_nothing", config, SignalKind::Traces, &sink).await;
    let mut accepted = Vec::new();
    let mut refused = 0;
    for i in 0..50 {
        match h.consumer.consume(trace_signal(i * 2, 2)).await {
            Ok(()) => accepted.extend([i as i64 * 2, i as i64 * 2 + 1]),
            Err(e) => {
                assert_eq!(e, ConsumeError::Full);
                refused += 1;
                break;
            }
        }
    }
    assert_eq!(refused, 1, "a stuck downstream must push back");
    assert!(accepted.len() >= 2 * INPUT_CAPACITY, "{accepted:?}");
    assert!(sink.received().is_empty());
    assert!(h.has("authwatch_processor_refused_spans_total", 2));

    sink.fail_with(None);
    sink.wait_for_items(SignalKind::Traces, accepted.len(), Duration::from_secs(30))
        .await;
    h.stop().await;
    assert_eq!(all_indices(&sink), accepted, "every accepted item, once, in order");
}

/// Issue 17: an exporter that refuses must not make the batch reach the consumers that took it
/// again (an `error_rate` connector would count it twice).
#[tokio::test(start_paused = true)]
async fn retries_go_only_to_the_consumers_that_refused() {
    let (refusing, taking) = (Sink::new(), Sink::new());
    refusing.fail_with(Some(ConsumeError::Full));
    let config = Config {
        send_batch_size: 4,
        timeout: Duration::from_millis(50),
        send_batch_max_size: 0,
    };
    let settings = Settings::new("batch/retries_go_only_to_refusers".parse().unwrap());
    let built = config
        .build(ProcessorContext {
            settings: settings.clone(),
            pipeline: "traces".parse::<PipelineId>().unwrap(),
            next: Fanout::of(vec![refusing.shared(), taking.shared()]),
        })
        .await
        .unwrap();
    let task = tokio::spawn(built.task.expect("batch has a task"));
    for i in 0..3 {
        built.consumer.consume(trace_signal(i * 4, 4)).await.unwrap();
    }
    taking
        .wait_for_items(SignalKind::Traces, 4, Duration::from_secs(10))
        .await;
    // The refusing consumer is retried for a while; the other one has the first batch once.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(all_indices(&taking), [0, 1, 2, 3]);
    assert!(refusing.received().is_empty());
    refusing.fail_with(None);
    refusing
        .wait_for_items(SignalKind::Traces, 12, Duration::from_secs(30))
        .await;
    taking
        .wait_for_items(SignalKind::Traces, 12, Duration::from_secs(30))
        .await;
    settings.shutdown.cancel();
    task.await.unwrap().unwrap();
    let want: Vec<i64> = (0..12).collect();
    assert_eq!(all_indices(&taking), want, "each item once to the consumer that took it");
    assert_eq!(all_indices(&refusing), want, "and once to the one that refused it first");
}

/// A next component that refuses with `Full` until opened, and says when it has room (as an
/// exporter's sending queue does when a sender takes a request from it).
struct FullQueue {
    open: std::sync::atomic::AtomicBool,
    room: tokio::sync::Notify,
    sink: Sink,
}

impl Consumer for FullQueue {
    fn consume(&self, data: Signal) -> BoxFuture<'_, Result<(), ConsumeError>> {
        if !self.open.load(Ordering::SeqCst) {
            return Box::pin(async { Err(ConsumeError::Full) });
        }
        self.sink.consume(data)
    }

    fn room(&self) -> BoxFuture<'_, ()> {
        Box::pin(self.room.notified())
    }
}

/// Issue 17: a full sending queue is refilled as soon as it has room, not after a backoff that
/// has grown while the exporter drained it; and while the batch waits, the pipeline reports
/// itself backed up so that receivers refuse before reading.
#[tokio::test(start_paused = true)]
async fn a_full_queue_is_retried_when_it_has_room_not_after_the_backoff() {
    let next = Arc::new(FullQueue {
        open: false.into(),
        room: tokio::sync::Notify::new(),
        sink: Sink::new(),
    });
    let config = Config {
        send_batch_size: 2,
        timeout: Duration::from_secs(1),
        send_batch_max_size: 0,
    };
    let settings = Settings::new("batch/full_queue_room".parse().unwrap());
    let built = config
        .build(ProcessorContext {
            settings: settings.clone(),
            pipeline: "traces".parse::<PipelineId>().unwrap(),
            next: next.clone(),
        })
        .await
        .unwrap();
    let task = tokio::spawn(built.task.expect("batch has a task"));
    assert_eq!(built.consumer.backlog(), Backlog::Clear);
    built.consumer.consume(trace_signal(0, 2)).await.unwrap();
    // Refused for 2.5 s (virtual): tries at 10, 30, 70, ... 1270, 2270 ms; the next is 1 s later.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(built.consumer.backlog(), Backlog::Full, "retrying a refused batch");
    assert!(next.sink.received().is_empty());

    next.open.store(true, Ordering::SeqCst);
    next.room.notify_one();
    let opened = Instant::now();
    next.sink
        .wait_for_items(SignalKind::Traces, 2, Duration::from_secs(10))
        .await;
    assert!(
        opened.elapsed() < Duration::from_millis(500),
        "taken {:?} after the room, the backoff would have waited 770 ms",
        opened.elapsed()
    );
    assert_eq!(built.consumer.backlog(), Backlog::Clear);
    settings.shutdown.cancel();
    task.await.unwrap().unwrap();
}

#[tokio::test(start_paused = true)]
async fn throttled_downstream_is_retried() {
    let sink = Sink::new();
    sink.fail_with(Some(ConsumeError::Throttled(Duration::from_millis(500))));
    let config = Config {
        send_batch_size: 2,
        timeout: Duration::from_secs(1),
        send_batch_max_size: 0,
    };
    let h = start("throttled_downstream_is_retried", config, SignalKind::Logs, &sink).await;
    h.consumer.consume(log_signal(0, 2)).await.unwrap();
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(sink.received().is_empty());
    sink.fail_with(None);
    sink.wait_for_items(SignalKind::Logs, 2, Duration::from_secs(10))
        .await;
    h.stop().await;
    assert_eq!(all_indices(&sink), [0, 1]);
}

async fn wait_for_metric(h: &Harness, name: &str, value: u64) {
    tokio::time::timeout(Duration::from_secs(30), async {
        while !h.has(name, value) {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{name} never reached {value}"));
}

#[tokio::test(start_paused = true)]
async fn permanent_error_drops_and_counts() {
    let sink = Sink::new();
    sink.fail_with(Some(authwatch_testkit::permanent("bad data")));
    let config = Config {
        send_batch_size: 5,
        timeout: Duration::from_secs(1),
        send_batch_max_size: 0,
    };
    let h = start("permanent_error_drops_and_counts", config, SignalKind::Traces, &sink).await;
    h.consumer.consume(trace_signal(0, 5)).await.unwrap();
    wait_for_metric(&h, "authwatch_processor_dropped_spans_total", 5).await;
    sink.fail_with(None);
    h.consumer.consume(trace_signal(5, 5)).await.unwrap();
    sink.wait_for_items(SignalKind::Traces, 5, Duration::from_secs(10))
        .await;
    h.stop().await;
    assert_eq!(all_indices(&sink), (5..10).collect::<Vec<_>>());
}

#[tokio::test(start_paused = true)]
async fn shutdown_gives_up_on_a_refusing_downstream() {
    let sink = Sink::new();
    sink.fail_with(Some(ConsumeError::Full));
    let config = Config {
        send_batch_size: 100,
        timeout: Duration::from_secs(3600),
        send_batch_max_size: 0,
    };
    let h = start("shutdown_gives_up_on_a_refusing_downstream", config, SignalKind::Logs, &sink).await;
    h.consumer.consume(log_signal(0, 3)).await.unwrap();
    h.settings.shutdown.cancel();
    wait_for_metric(&h, "authwatch_processor_dropped_log_records_total", 3).await;
    h.stop().await;
    assert!(sink.received().is_empty());
}

#[tokio::test(start_paused = true)]
async fn other_signals_are_refused() {
    let sink = Sink::new();
    let h = start("other_signals_are_refused", Config::default(), SignalKind::Traces, &sink).await;
    let err = h.consumer.consume(log_signal(0, 1)).await.unwrap_err();
    assert!(matches!(err, ConsumeError::Permanent(_)), "{err:?}");
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn batch_metrics_are_registered_once() {
    let sink = Sink::new();
    let settings = Settings::new("batch".parse().unwrap());
    let a = start_with(Config::default(), SignalKind::Traces, &sink, settings.clone()).await;
    let mut other = settings.clone();
    other.id = "batch/2".parse().unwrap();
    let b = start_with(Config::default(), SignalKind::Logs, &sink, other).await;
    let text = settings.telemetry.encode();
    for name in [
        "authwatch_processor_batch_send_size histogram",
        "authwatch_processor_batch_size_trigger_send counter",
        "authwatch_processor_batch_timeout_trigger_send counter",
    ] {
        assert_eq!(
            text.matches(&format!("# TYPE {name}")).count(),
            1,
            "{name}\n{text}"
        );
    }
    a.stop().await;
    b.stop().await;
}

// === encoded requests ===

#[tokio::test(start_paused = true)]
async fn encoded_requests_are_concatenated_for_a_next_that_wants_bytes() {
    let sink = Sink::wanting_encoded();
    let config = Config {
        send_batch_size: 10,
        timeout: Duration::from_secs(3600),
        send_batch_max_size: 0,
    };
    let h = start("encoded_concat", config, SignalKind::Traces, &sink).await;
    assert!(h.consumer.wants_encoded(), "batch asks for what its next component wants");
    // Encoded and decoded requests mixed: order is kept either way.
    h.consumer.consume(trace_signal(0, 3).into_encoded()).await.unwrap();
    h.consumer.consume(trace_signal(3, 3)).await.unwrap();
    h.consumer.consume(trace_signal(6, 4).into_encoded()).await.unwrap();
    sink.wait_for_items(SignalKind::Traces, 10, Duration::from_secs(10))
        .await;
    let got = sink.received();
    assert_eq!(got.len(), 1);
    assert!(matches!(got[0], Signal::Encoded(_)), "sent as bytes: {:?}", got[0].kind());
    assert_eq!(got[0].item_count(), 10);
    assert_eq!(indices(&got[0]), (0..10).collect::<Vec<_>>());
    assert!(h.has("authwatch_processor_batch_send_size_count", 1));
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_decoded_pending_batch_goes_first_when_bytes_arrive() {
    let sink = Sink::wanting_encoded();
    let config = Config {
        send_batch_size: 6,
        timeout: Duration::from_secs(3600),
        send_batch_max_size: 0,
    };
    let h = start("decoded_then_encoded", config, SignalKind::Logs, &sink).await;
    h.consumer.consume(log_signal(0, 2)).await.unwrap();
    h.consumer.consume(log_signal(2, 4).into_encoded()).await.unwrap();
    sink.wait_for_items(SignalKind::Logs, 6, Duration::from_secs(10))
        .await;
    assert_eq!(all_indices(&sink), (0..6).collect::<Vec<_>>());
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn encoded_batches_are_decoded_for_a_next_that_reads_them() {
    let sink = Sink::new();
    let config = Config {
        send_batch_size: 5,
        timeout: Duration::from_secs(3600),
        send_batch_max_size: 0,
    };
    let h = start("encoded_for_reader", config, SignalKind::Traces, &sink).await;
    assert!(!h.consumer.wants_encoded());
    h.consumer.consume(trace_signal(0, 5).into_encoded()).await.unwrap();
    sink.wait_for_items(SignalKind::Traces, 5, Duration::from_secs(10))
        .await;
    let got = sink.received();
    assert!(matches!(got[0], Signal::Traces(_)), "decoded for a reader");
    assert_eq!(indices(&got[0]), (0..5).collect::<Vec<_>>());
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn encoded_batches_over_the_maximum_are_split() {
    let sink = Sink::wanting_encoded();
    let config = Config {
        send_batch_size: 4,
        timeout: Duration::from_secs(3600),
        send_batch_max_size: 4,
    };
    let h = start("encoded_split", config, SignalKind::Traces, &sink).await;
    h.consumer.consume(trace_signal(0, 10).into_encoded()).await.unwrap();
    sink.wait_for_items(SignalKind::Traces, 8, Duration::from_secs(10))
        .await;
    let got = sink.received();
    assert_eq!(got.len(), 2, "two full requests; the rest waits");
    assert!(got.iter().all(|s| s.item_count() == 4 && matches!(s, Signal::Encoded(_))));
    assert_eq!(all_indices(&sink), (0..8).collect::<Vec<_>>());
    h.stop().await;
    assert_eq!(all_indices(&sink), (0..10).collect::<Vec<_>>(), "the rest is flushed on stop");
}

#[tokio::test(start_paused = true)]
async fn encoded_batches_are_retried_until_accepted() {
    let sink = Sink::wanting_encoded();
    sink.fail_with(Some(ConsumeError::Full));
    let config = Config {
        send_batch_size: 3,
        timeout: Duration::from_secs(3600),
        send_batch_max_size: 0,
    };
    let h = start("encoded_retry", config, SignalKind::Traces, &sink).await;
    h.consumer.consume(trace_signal(0, 3).into_encoded()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(sink.item_count(SignalKind::Traces), 0);
    sink.fail_with(None);
    sink.wait_for_items(SignalKind::Traces, 3, Duration::from_secs(10))
        .await;
    assert_eq!(all_indices(&sink), vec![0, 1, 2]);
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn live_data_passes_at_once_unbatched() {
    let sink = Sink::taking_live();
    let h = start("live", Config::default(), SignalKind::Metrics, &sink).await;
    assert!(h.consumer.takes_live());
    h.consumer.consume(metric_signal(0, 3)).await.unwrap();
    h.consumer.consume_live(metric_signal(3, 2)).await.unwrap();
    // The live request is there before the batch timeout; the batched one is not.
    assert_eq!(sink.live_received().len(), 1);
    assert!(sink.received().is_empty());
    h.stop().await;
    assert_eq!(sink.item_count(SignalKind::Metrics), 3);
    // Behind a consumer that does not take live data, the processor does not either.
    let plain = Sink::new();
    let h = start("live_plain", Config::default(), SignalKind::Metrics, &plain).await;
    assert!(!h.consumer.takes_live());
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn what_waits_in_the_batch_is_held_in_the_budget_until_handed_on() {
    let sink = Sink::new();
    // The next component refuses (a full queue): the batch keeps what it acknowledged.
    sink.fail_with(Some(ConsumeError::Full));
    let config = Config {
        send_batch_size: 1000,
        timeout: Duration::from_millis(200),
        send_batch_max_size: 0,
    };
    let h = start("budget", config, SignalKind::Traces, &sink).await;
    let budget = h.settings.budget.clone();
    let (a, b) = (trace_signal(0, 3), trace_signal(3, 4));
    let size = (a.encoded_size() + b.encoded_size()) as u64;
    h.consumer.consume(a).await.unwrap();
    h.consumer.consume(b).await.unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(budget.held(), size, "held while the next component refuses");
    sink.fail_with(None);
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(sink.item_count(SignalKind::Traces), 7);
    assert_eq!(budget.held(), 0, "released once handed on");
    h.stop().await;
}
