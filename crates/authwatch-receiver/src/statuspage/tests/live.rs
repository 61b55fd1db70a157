//! Each poll's metrics also go on the live lane, so that the `alerts` connector sees a new
//! incident at once, whatever a `batch` in the metrics pipeline waits for.

use super::*;

#[tokio::test]
async fn a_poll_goes_live_to_evaluators_as_well() {
    let server = StatusServer::start().await;
    server.json("summary_incident.json", "\"a\"");
    let evaluator = Sink::taking_live();
    let mut p = poller(&server.url("/s"), Format::StatuspageV2, &[], &evaluator);
    assert_eq!(p.poll_once().await, Polled::Fresh);
    let live: Vec<Signal> = evaluator
        .live_received()
        .into_iter()
        .filter(|s| s.kind() == SignalKind::Metrics)
        .collect();
    let normal: Vec<Signal> = evaluator
        .received()
        .into_iter()
        .filter(|s| s.kind() == SignalKind::Metrics)
        .collect();
    assert_eq!(live.len(), 1);
    assert_eq!(live, normal, "the live copy is the same data, timestamps included");
    // A pipeline with no evaluator gets no live data at all.
    let exporter = Sink::new();
    let mut p = poller(&server.url("/s"), Format::StatuspageV2, &[], &exporter);
    assert_eq!(p.poll_once().await, Polled::Fresh);
    assert!(exporter.live_received().is_empty());
    assert!(exporter.item_count(SignalKind::Metrics) > 0);
}
