//! `sending_queue.batch` config, merging and the batcher's bookkeeping. The batcher driven
//! through the helper (sends, retries, deletes) is tested in `helper/tests.rs`.

use authwatch_testkit::{log_signal, metric_signal, trace_signal};

use super::*;
use crate::helper::QueueConfig;

fn cfg(min_size: usize, max_size: usize) -> BatchConfig {
    BatchConfig {
        min_size,
        max_size,
        ..BatchConfig::default()
    }
}

fn errors(c: &BatchConfig) -> Vec<String> {
    let mut v = Validator::new("exporters::otlp");
    c.validate(&mut v, "sending_queue::batch");
    v.errors().iter().map(|e| e.to_string()).collect()
}

#[test]
fn defaults_are_the_collectors() {
    let d = BatchConfig::default();
    assert_eq!(d.flush_timeout, Duration::from_millis(200));
    assert_eq!(d.min_size, 8192);
    assert_eq!(d.max_size, 0);
    assert_eq!(d.sizer, Sizer::Items);
    // `batch: {}` turns batching on with the defaults; no `batch` leaves it off.
    let q: QueueConfig = serde_json::from_value(serde_json::json!({"batch": {}})).unwrap();
    assert_eq!(q.batch, Some(d));
    assert_eq!(QueueConfig::default().batch, None);
    let q: QueueConfig = serde_json::from_value(serde_json::json!({
        "batch": {"flush_timeout": "1s", "min_size": 100, "max_size": 1000, "sizer": "bytes"}
    }))
    .unwrap();
    assert_eq!(
        q.batch,
        Some(BatchConfig {
            flush_timeout: Duration::from_secs(1),
            min_size: 100,
            max_size: 1000,
            sizer: Sizer::Bytes,
        })
    );
    assert!(errors(&BatchConfig::default()).is_empty());
}

#[test]
fn bad_settings_are_named() {
    let bad = BatchConfig {
        flush_timeout: Duration::ZERO,
        min_size: 100,
        max_size: 10,
        sizer: Sizer::Items,
    };
    assert_eq!(
        errors(&bad),
        vec![
            "exporters::otlp::sending_queue::batch::flush_timeout: must be greater than 0, e.g. `200ms`",
            "exporters::otlp::sending_queue::batch::max_size: must be greater than or equal to `min_size` (100), or 0 for no maximum",
        ]
    );
    let err = serde_json::from_value::<BatchConfig>(serde_json::json!({"sizer": "spans"}))
        .unwrap_err()
        .to_string();
    assert!(err.contains("unknown variant `spans`"), "{err}");
    let err = serde_json::from_value::<BatchConfig>(serde_json::json!({"min_sise": 1}))
        .unwrap_err()
        .to_string();
    assert!(err.contains("unknown field `min_sise`"), "{err}");
    // A batch on a disabled queue is ignored, with a warning.
    let off = QueueConfig {
        enabled: false,
        batch: Some(BatchConfig::default()),
        ..QueueConfig::default()
    };
    let mut v = Validator::new("exporters::otlp");
    off.validate(&mut v, "sending_queue");
    let (errors, warnings) = v.into_parts();
    assert!(errors.is_empty());
    assert_eq!(
        warnings[0].to_string(),
        "exporters::otlp::sending_queue::batch: is ignored while the queue is disabled (`enabled: false`)"
    );
}

#[test]
fn sizers_count_items_bytes_or_requests() {
    let s = trace_signal(0, 5);
    assert_eq!(Sizer::Items.size(&s), 5);
    assert_eq!(Sizer::Bytes.size(&s), s.encoded_size());
    assert_eq!(Sizer::Requests.size(&s), 1);
}

#[test]
fn encoded_requests_merge_by_concatenation() {
    let parts: Vec<Signal> = (0..3).map(|i| trace_signal(i * 10, 2 + i)).collect();
    let merged = merge(parts.iter().cloned().map(Signal::into_encoded).collect());
    let Signal::Encoded(e) = &merged else {
        panic!("stays encoded: {merged:?}")
    };
    assert_eq!(e.kind(), SignalKind::Traces);
    assert_eq!(e.items(), 2 + 3 + 4);
    // The bytes decode to every part's resources, in order.
    let mut want = authwatch_testkit::traces(0, 2);
    want.resource_spans
        .extend(authwatch_testkit::traces(10, 3).resource_spans);
    want.resource_spans
        .extend(authwatch_testkit::traces(20, 4).resource_spans);
    assert_eq!(e.decode().unwrap(), Signal::Traces(want));
}

#[test]
fn decoded_requests_merge_for_every_signal() {
    for (a, b) in [
        (trace_signal(0, 2), trace_signal(5, 3)),
        (metric_signal(0, 2), metric_signal(5, 3)),
        (log_signal(0, 2), log_signal(5, 3)),
    ] {
        let merged = merge(vec![a.clone(), b.clone()]);
        assert_eq!(merged.kind(), a.kind());
        assert_eq!(merged.item_count(), a.item_count() + b.item_count());
        // The same request as the concatenation of the two encodings.
        let mut bytes = a.to_encoded().bytes().to_vec();
        bytes.extend_from_slice(b.to_encoded().bytes());
        let concatenated = Encoded::new(a.kind(), bytes.into(), 0).decode().unwrap();
        assert_eq!(merged, concatenated);
    }
    // One part is returned as it is.
    let one = trace_signal(0, 4);
    assert_eq!(merge(vec![one.clone()]), one);
}

#[test]
fn a_batch_is_ready_at_min_size() {
    let t0 = Instant::now();
    let mut b = Batcher::new(cfg(6, 0));
    assert!(b.add(1, trace_signal(0, 2), t0).is_empty());
    assert!(b.add(2, trace_signal(2, 2), t0).is_empty());
    assert_eq!(b.next_deadline(), Some(t0 + Duration::from_millis(200)));
    let ready = b.add(3, trace_signal(4, 3), t0);
    assert_eq!(ready.len(), 1);
    let (p, trigger) = &ready[0];
    assert_eq!(*trigger, Trigger::Size);
    assert_eq!(p.ids, vec![1, 2, 3]);
    assert_eq!(p.size, 7, "min_size is a trigger, not a limit");
    assert_eq!(b.next_deadline(), None);
}

#[test]
fn max_size_closes_a_batch_before_it_would_overflow() {
    let t0 = Instant::now();
    let mut b = Batcher::new(cfg(5, 5));
    assert!(b.add(1, trace_signal(0, 2), t0).is_empty());
    assert!(b.add(2, trace_signal(0, 2), t0).is_empty());
    // 4 + 2 > 5: the batch of 4 goes, the new request starts the next one.
    let ready = b.add(3, trace_signal(0, 2), t0);
    assert_eq!(ready.len(), 1);
    assert_eq!(ready[0].0.ids, vec![1, 2]);
    assert_eq!(ready[0].1, Trigger::Size);
    // A request larger than max_size closes the pending batch and goes alone, unsplit.
    let ready = b.add(4, trace_signal(0, 9), t0);
    let sent: Vec<(Vec<u64>, usize)> = ready.iter().map(|(p, _)| (p.ids.clone(), p.size)).collect();
    assert_eq!(sent, vec![(vec![3], 2), (vec![4], 9)]);
    assert_eq!(b.next_deadline(), None);
}

#[test]
fn signals_are_batched_apart_and_fall_due_on_their_own_deadlines() {
    let t0 = Instant::now();
    let later = t0 + Duration::from_millis(50);
    let mut b = Batcher::new(cfg(100, 0));
    b.add(1, trace_signal(0, 1), t0);
    b.add(2, log_signal(0, 1), later);
    b.add(3, trace_signal(1, 1), later);
    assert!(b.due(t0 + Duration::from_millis(199)).is_empty());
    let due = b.due(t0 + Duration::from_millis(200));
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].ids, vec![1, 3]);
    assert_eq!(b.next_deadline(), Some(later + Duration::from_millis(200)));
    let rest = b.drain();
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0].ids, vec![2]);
    assert_eq!(rest[0].parts[0].kind(), SignalKind::Logs);
    assert_eq!(b.next_deadline(), None);
}

#[test]
fn bytes_sizer_counts_protobuf_bytes() {
    let t0 = Instant::now();
    let one = trace_signal(0, 1).into_encoded();
    let size = one.encoded_size();
    let mut b = Batcher::new(BatchConfig {
        sizer: Sizer::Bytes,
        ..cfg(size * 3, 0)
    });
    assert!(b.add(1, one.clone(), t0).is_empty());
    assert!(b.add(2, one.clone(), t0).is_empty());
    let ready = b.add(3, one, t0);
    assert_eq!(ready[0].0.size, size * 3);
}
