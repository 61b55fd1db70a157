use authwatch_core::{ConnectorConfig, ConnectorContext, ConsumeError, Router, Settings, SignalKind};
use authwatch_testkit::{log_signal, metric_signal, trace_signal, Sink};

use super::*;

#[test]
fn config_contract() {
    authwatch_testkit::assert_config_contract::<Config>("forward");
}

#[test]
fn routes_each_signal_to_itself() {
    let routes = Config::default().routes();
    assert_eq!(routes.len(), 3);
    for (from, to) in routes {
        assert_eq!(from, to);
    }
}

async fn build(next: Router) -> authwatch_core::SharedConsumer {
    let built = Config::default()
        .build(ConnectorContext {
            settings: Settings::new("forward".parse().unwrap()),
            next,
        })
        .await
        .unwrap();
    assert!(built.task.is_none());
    built.consumer
}

#[tokio::test]
async fn forwards_every_signal_to_its_pipeline() {
    let (traces, metrics, logs) = (Sink::new(), Sink::new(), Sink::new());
    let mut next = Router::new();
    next.set(SignalKind::Traces, traces.shared());
    next.set(SignalKind::Metrics, metrics.shared());
    next.set(SignalKind::Logs, logs.shared());
    let forward = build(next).await;

    forward.consume(trace_signal(0, 3)).await.unwrap();
    forward.consume(metric_signal(0, 4)).await.unwrap();
    forward.consume(log_signal(0, 5)).await.unwrap();

    assert_eq!(traces.received(), [trace_signal(0, 3)]);
    assert_eq!(metrics.received(), [metric_signal(0, 4)]);
    assert_eq!(logs.received(), [log_signal(0, 5)]);
}

#[tokio::test]
async fn signal_without_pipeline_is_refused() {
    let logs = Sink::new();
    let mut next = Router::new();
    next.set(SignalKind::Logs, logs.shared());
    let forward = build(next).await;
    assert_eq!(
        forward.consume(trace_signal(0, 1)).await,
        Err(ConsumeError::NoPipeline(SignalKind::Traces))
    );
    assert_eq!(
        forward.consume(metric_signal(0, 1)).await,
        Err(ConsumeError::NoPipeline(SignalKind::Metrics))
    );
    assert!(logs.received().is_empty());
}

#[tokio::test]
async fn downstream_refusals_reach_the_sender() {
    let traces = Sink::new();
    traces.fail_with(Some(ConsumeError::Full));
    let mut next = Router::new();
    next.set(SignalKind::Traces, traces.shared());
    let forward = build(next).await;
    assert_eq!(
        forward.consume(trace_signal(0, 1)).await,
        Err(ConsumeError::Full)
    );
}
