//! The persistent queue against real files: reopen, limits, corruption, concurrency.

use std::sync::Arc;
use std::time::Duration;

use authwatch_core::telemetry::Telemetry;
use authwatch_testkit::{trace_signal, Scratch};

use redb::Database;

use super::record::{check_record, checksum, FORMAT};
use super::*;

fn open_with(
    dir: &Scratch,
    capacity: usize,
    max_bytes: u64,
    t: &Telemetry,
) -> (PersistentQueue, Recovered) {
    let id = "otlp/test".parse().unwrap();
    PersistentQueue::open(&dir.0, "otlp/test", capacity, max_bytes, t.exporter(&id)).unwrap()
}

fn open(dir: &Scratch) -> (PersistentQueue, Recovered) {
    open_with(dir, 1000, 1 << 30, &Telemetry::new())
}

/// A one-span trace request whose span name is a marker findable in the file.
fn marked(i: u64) -> Signal {
    let mut s = trace_signal(i, 1);
    if let Signal::Traces(r) = &mut s {
        r.resource_spans[0].scope_spans[0].spans[0].name = format!("MARKER-{i:04}");
    }
    s
}

async fn take(q: &PersistentQueue) -> Queued {
    tokio::time::timeout(Duration::from_secs(10), q.pop())
        .await
        .expect("hang guard")
        .expect("an item")
}

fn corrupt_count(t: &Telemetry) -> u64 {
    crate::helper::tests::metric(t, "exporter_queue_corrupt_records_total", "otlp/test")
}

#[test]
fn records_round_trip_and_detect_damage() {
    let data = marked(3);
    let rec = encode_record(&data, 42);
    assert_eq!(check_record(&rec).unwrap(), 42);
    assert_eq!(decode_record(&rec).unwrap(), data);
    let mut flipped = rec.clone();
    let last = flipped.len() - 1;
    flipped[last] ^= 0x40;
    assert!(matches!(decode_record(&flipped), Err(Corrupt::Checksum)));
    assert!(matches!(
        decode_record(&rec[..9]),
        Err(Corrupt::Truncated(9))
    ));
    let mut tag = rec.clone();
    tag[1] = 7;
    assert!(matches!(decode_record(&tag), Err(Corrupt::Tag(7))));
}

#[tokio::test]
async fn push_pop_done_and_reopen() {
    let dir = Scratch::new("pq-reopen");
    {
        let (q, rec) = open(&dir);
        assert_eq!(rec, Recovered::default());
        for i in 0..3 {
            q.push(marked(i), false).await.unwrap();
        }
        assert_eq!(q.len(), 3);
        assert!(q.bytes() > 0);
        let first = take(&q).await;
        assert_eq!(first.data, marked(0));
        q.done(first.id);
        // Taken but not done: still on disk.
        let second = take(&q).await;
        assert_eq!(second.data, marked(1));
        assert!(q.oldest_age().is_some());
    }
    let (q, rec) = open(&dir);
    assert_eq!(rec.records, 2, "{rec:?}");
    assert_eq!(rec.corrupt, 0);
    assert_eq!(q.len(), 2);
    let a = take(&q).await;
    let b = take(&q).await;
    assert_eq!((a.data, b.data), (marked(1), marked(2)));
    q.done(a.id);
    q.done(b.id);
    // New ids never reuse old ones.
    q.push(marked(9), false).await.unwrap();
    let c = take(&q).await;
    assert!(c.id > b.id);
    q.done(c.id);
    drop(q);
    let (q, rec) = open(&dir);
    assert_eq!(rec.records, 0);
    assert!(q.is_empty());
    assert_eq!(q.bytes(), 0);
    assert_eq!(q.oldest_age(), None);
}

#[tokio::test]
async fn refuses_by_count_and_by_bytes() {
    let dir = Scratch::new("pq-limits");
    let (q, _) = open_with(&dir, 2, 1 << 30, &Telemetry::new());
    q.push(marked(0), false).await.unwrap();
    q.push(marked(1), false).await.unwrap();
    assert!(matches!(
        q.push(marked(2), false).await,
        Err(PushError::Full)
    ));
    // Taking one makes room by count.
    let a = take(&q).await;
    q.push(marked(2), false).await.unwrap();
    q.done(a.id);
    drop(q);

    let dir = Scratch::new("pq-bytes");
    let one = encode_record(&marked(0), 0).len() as u64;
    let (q, _) = open_with(&dir, 1000, one * 2 + one / 2, &Telemetry::new());
    q.push(marked(0), false).await.unwrap();
    q.push(marked(1), false).await.unwrap();
    assert!(matches!(
        q.push(marked(2), false).await,
        Err(PushError::Full)
    ));
    // In flight still counts as stored; done frees the bytes.
    let a = take(&q).await;
    assert!(matches!(
        q.push(marked(2), false).await,
        Err(PushError::Full)
    ));
    q.done(a.id);
    q.push(marked(2), false).await.unwrap();
    let too_large = encode_record(&trace_signal(0, 500), 0).len() as u64;
    assert!(matches!(
        q.push(trace_signal(0, 500), false).await,
        Err(PushError::TooLarge(n)) if n == too_large
    ));
}

#[tokio::test]
async fn blocking_push_waits_for_done() {
    let dir = Scratch::new("pq-block");
    let one = encode_record(&marked(0), 0).len() as u64;
    let (q, _) = open_with(&dir, 1000, one + one / 2, &Telemetry::new());
    let q = Arc::new(q);
    q.push(marked(0), true).await.unwrap();
    let q2 = q.clone();
    let pusher = tokio::spawn(async move { q2.push(marked(1), true).await });
    let a = take(&q).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!pusher.is_finished(), "the first record is still stored");
    q.done(a.id);
    let r = tokio::time::timeout(Duration::from_secs(10), pusher).await;
    r.unwrap().unwrap().unwrap();
    q.close();
    assert!(matches!(
        q.push(marked(2), true).await,
        Err(PushError::Closed)
    ));
    assert_eq!(take(&q).await.data, marked(1));
    assert!(q.pop().await.is_none());
}

#[tokio::test]
async fn backlog_and_room_follow_count_and_bytes() {
    use futures::FutureExt;
    let dir = Scratch::new("pq-backlog");
    let (q, _) = open_with(&dir, 4, 1 << 30, &Telemetry::new());
    assert_eq!(q.backlog(), Backlog::Clear);
    q.push(marked(0), false).await.unwrap();
    assert_eq!(q.backlog(), Backlog::Clear);
    q.push(marked(1), false).await.unwrap();
    assert_eq!(q.backlog(), Backlog::Full, "2 of 4 requests");
    let a = take(&q).await;
    assert_eq!(
        q.backlog(),
        Backlog::Clear,
        "a request being sent frees its count"
    );
    q.done(a.id);
    drop(q);

    // By bytes, a request being sent still holds its room in the file until done.
    let dir = Scratch::new("pq-room");
    let one = encode_record(&marked(0), 0).len() as u64;
    let (q, _) = open_with(&dir, 1000, one * 2 + one / 2, &Telemetry::new());
    q.push(marked(0), false).await.unwrap();
    assert_eq!(q.backlog(), Backlog::Clear, "two fifths of the bytes");
    q.push(marked(1), false).await.unwrap();
    assert_eq!(q.backlog(), Backlog::Full, "four fifths of the bytes");
    assert!(matches!(
        q.push(marked(2), false).await,
        Err(PushError::Full)
    ));
    let a = take(&q).await;
    assert!(
        q.room().now_or_never().is_some(),
        "taking a request may have made room (it has, by count)"
    );
    assert!(matches!(
        q.push(marked(2), false).await,
        Err(PushError::Full)
    ));
    let mut room = q.room();
    assert!(
        (&mut room).now_or_never().is_none(),
        "nothing taken or done since the last refusal"
    );
    // Done before the waiter polls again: the wake-up is kept, not lost.
    q.done(a.id);
    assert!(room.now_or_never().is_some(), "done freed bytes");
    q.push(marked(2), false).await.unwrap();

    q.close();
    assert!(
        q.room().now_or_never().is_some(),
        "a closed queue never has to be waited for"
    );
}

/// Writes raw values into the queue file, as a damaged previous run could have left them.
fn write_raw(dir: &Scratch, values: &[(u64, Vec<u8>)]) {
    let db = Database::create(dir.join(FILE_NAME)).unwrap();
    let txn = db.begin_write().unwrap();
    {
        let mut t = txn.open_table(RECORDS).unwrap();
        for (k, v) in values {
            t.insert(*k, v.as_slice()).unwrap();
        }
    }
    txn.commit().unwrap();
}

#[tokio::test]
async fn corrupt_records_are_counted_skipped_and_deleted() {
    let dir = Scratch::new("pq-corrupt");
    let mut bad_crc = encode_record(&marked(1), 0);
    let n = bad_crc.len();
    bad_crc[n - 3] ^= 0xff;
    // A valid checksum over a payload that is not protobuf.
    let mut undecodable = vec![FORMAT, 0];
    undecodable.extend_from_slice(&0u64.to_le_bytes());
    let junk = [0xffu8; 7];
    undecodable.extend_from_slice(&checksum(&undecodable, &junk).to_le_bytes());
    undecodable.extend_from_slice(&junk);
    write_raw(
        &dir,
        &[
            (1, encode_record(&marked(0), 0)),
            (2, bad_crc),
            (3, vec![1, 2, 3]),
            (4, undecodable),
            (5, encode_record(&marked(4), 0)),
        ],
    );
    let t = Telemetry::new();
    let (q, rec) = open_with(&dir, 1000, 1 << 30, &t);
    assert_eq!((rec.records, rec.corrupt), (3, 2), "{rec:?}");
    assert_eq!(corrupt_count(&t), 2);
    let a = take(&q).await;
    assert_eq!(a.data, marked(0));
    // Record 4 passes the checksum but does not decode: skipped when taken.
    let b = take(&q).await;
    assert_eq!(b.data, marked(4));
    assert_eq!(corrupt_count(&t), 3);
    q.done(a.id);
    q.done(b.id);
    drop(q);
    let (q, rec) = open(&dir);
    assert_eq!(rec, Recovered::default(), "corrupt records were deleted");
    assert!(q.is_empty());
}

#[tokio::test]
async fn flipped_bytes_in_the_file_lose_only_that_record() {
    let dir = Scratch::new("pq-flip");
    {
        let (q, _) = open(&dir);
        for i in 0..20 {
            q.push(marked(i), false).await.unwrap();
        }
    }
    let mut bytes = std::fs::read(dir.join(FILE_NAME)).unwrap();
    let needle = b"MARKER-0007";
    let at = bytes
        .windows(needle.len())
        .position(|w| w == needle)
        .expect("the payload is stored uncompressed");
    bytes[at + 3] ^= 0x20;
    std::fs::write(dir.join(FILE_NAME), &bytes).unwrap();

    let t = Telemetry::new();
    let (q, rec) = open_with(&dir, 1000, 1 << 30, &t);
    q.close();
    let mut got = Vec::new();
    while let Some(item) = tokio::time::timeout(Duration::from_secs(10), q.pop())
        .await
        .unwrap()
    {
        got.push(item.data);
        q.done(item.id);
    }
    let want: Vec<Signal> = (0..20).filter(|i| *i != 7).map(marked).collect();
    if rec.moved_aside.is_none() {
        // redb read the damaged page: the record's own checksum caught it.
        assert_eq!(got, want, "{rec:?}");
        assert_eq!(corrupt_count(&t), 1);
    } else {
        // redb refused the page: what it could read was kept.
        assert!(got.iter().all(|s| want.contains(s)), "{rec:?}");
    }
}

#[tokio::test]
async fn truncated_or_garbage_files_are_moved_aside() {
    for (name, damage) in [("truncated", 0usize), ("garbage", 1), ("header", 2)] {
        let dir = Scratch::new(&format!("pq-{name}"));
        {
            let (q, _) = open(&dir);
            for i in 0..50 {
                q.push(marked(i), false).await.unwrap();
            }
        }
        let mut bytes = std::fs::read(dir.join(FILE_NAME)).unwrap();
        match damage {
            0 => bytes.truncate(bytes.len() / 3),
            1 => bytes
                .iter_mut()
                .for_each(|b| *b = b.wrapping_mul(31).wrapping_add(7)),
            _ => bytes[..64].iter_mut().for_each(|b| *b ^= 0x5a),
        }
        std::fs::write(dir.join(FILE_NAME), &bytes).unwrap();
        let t = Telemetry::new();
        let (q, rec) = open_with(&dir, 1000, 1 << 30, &t);
        // Whatever survived is readable; the queue works.
        q.close();
        while let Some(item) = q.pop().await {
            assert!(matches!(item.data, Signal::Traces(_)));
            q.done(item.id);
        }
        drop(q);
        let aside = rec.moved_aside.clone().unwrap_or_default();
        assert!(
            rec.moved_aside.is_none() || aside.exists(),
            "{name}: {rec:?}"
        );
        if damage > 0 {
            assert!(rec.moved_aside.is_some(), "{name}: {rec:?}");
            assert!(aside
                .file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("queue.redb.corrupt-"));
        }
        let (q, _) = open(&dir);
        q.push(marked(0), false).await.unwrap();
        assert_eq!(take(&q).await.data, marked(0));
    }
}

#[tokio::test]
async fn a_directory_in_use_is_refused() {
    let dir = Scratch::new("pq-inuse");
    let (_q, _) = open(&dir);
    let id = "otlp/test".parse().unwrap();
    let err = PersistentQueue::open(
        &dir.0,
        "otlp/test",
        10,
        1 << 20,
        Telemetry::new().exporter(&id),
    )
    .err()
    .expect("refused");
    assert!(matches!(err, StorageError::InUse(_)), "{err}");
    assert!(err.to_string().contains("own `storage` directory"));
    let file = dir.0.join("a-file");
    std::fs::write(&file, "x").unwrap();
    let err = PersistentQueue::open(
        &file,
        "otlp/test",
        10,
        1 << 20,
        Telemetry::new().exporter(&id),
    )
    .err()
    .expect("refused");
    assert!(
        err.to_string()
            .starts_with("cannot create the queue directory"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn several_consumers_take_each_record_once() {
    let dir = Scratch::new("pq-many");
    let (q, _) = open(&dir);
    let q = Arc::new(q);
    let consumers: Vec<_> = (0..4)
        .map(|_| {
            let q = q.clone();
            tokio::spawn(async move {
                let mut got = Vec::new();
                while let Some(item) = q.pop().await {
                    got.push(item.data);
                    q.done(item.id);
                }
                got
            })
        })
        .collect();
    let producers: Vec<_> = (0..4u64)
        .map(|p| {
            let q = q.clone();
            tokio::spawn(async move {
                for i in 0..50 {
                    q.push(marked(p * 100 + i), true).await.unwrap();
                }
            })
        })
        .collect();
    for p in producers {
        p.await.unwrap();
    }
    q.close();
    let mut all = Vec::new();
    for c in consumers {
        all.extend(
            tokio::time::timeout(Duration::from_secs(30), c)
                .await
                .unwrap()
                .unwrap(),
        );
    }
    let mut names: Vec<String> = all.iter().map(|s| format!("{s:?}")).collect();
    names.sort();
    names.dedup();
    assert_eq!(all.len(), 200);
    assert_eq!(names.len(), 200, "each record exactly once");
    assert_eq!(q.bytes(), 0);
}

#[test]
fn dir_names_are_safe() {
    assert_eq!(dir_name("otlp/upstream"), "otlp_upstream");
    assert_eq!(dir_name("otlphttp"), "otlphttp");
    assert_eq!(dir_name("a/../b"), "a_.._b");
}
