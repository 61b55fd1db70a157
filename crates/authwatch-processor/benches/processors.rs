//! Hot paths of the processors and connectors, on the load generator's spans (512-span requests
//! of identity-provider client calls, about 10% failing): the `batch` processor merging and
//! splitting, the `redaction` processor with its default rules, and the `error_rate` connector
//! classifying and aggregating. Run with `cargo bench -p authwatch-processor`; throughput is in
//! spans.
//!
//! Each component is driven through its public API (`build`, then its consumer), as the service
//! drives it. Not measured yet: `alerts` evaluation (it consumes `error_rate`'s metrics, not
//! spans).

use std::sync::Arc;
use std::time::Duration;

use authwatch_core::consume::FnConsumer;
use authwatch_core::otlp::collector::trace::v1::ExportTraceServiceRequest;
use authwatch_core::{
    ComponentId, ConnectorConfig, ConnectorContext, Encoded, ProcessorConfig, ProcessorContext,
    Router, Settings, SharedConsumer, Signal,
};
use authwatch_processor::{batch, error_rate, redaction};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use tokio::runtime::Runtime;
use tokio::sync::mpsc;

const SPANS: usize = 512;

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

fn requests(n: usize) -> Vec<ExportTraceServiceRequest> {
    authwatch_loadgen::spans::requests(n, SPANS)
}

/// A batch processor feeding a consumer that reports the items of every request it gets.
fn encoded(reqs: &[ExportTraceServiceRequest]) -> Vec<Encoded> {
    reqs.iter()
        .map(|r| Encoded::encode(&Signal::Traces(r.clone())))
        .collect()
}

fn batcher(
    rt: &Runtime,
    config: batch::Config,
) -> (SharedConsumer, mpsc::UnboundedReceiver<usize>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let next: SharedConsumer = Arc::new(FnConsumer(move |s: Signal| {
        let _ = tx.send(s.item_count());
        Ok(())
    }));
    let id: ComponentId = "batch".parse().expect("an id");
    let cx = ProcessorContext {
        settings: Settings::new(id),
        pipeline: "traces".parse().expect("a pipeline id"),
        next,
    };
    let built = rt.block_on(config.build(cx)).expect("batch builds");
    if let Some(task) = built.task {
        rt.spawn(task);
    }
    (built.consumer, rx)
}

/// Feeds the requests through the consumer and waits until all their spans came out.
fn feed(
    rt: &Runtime,
    consumer: &SharedConsumer,
    out: &mut mpsc::UnboundedReceiver<usize>,
    reqs: Vec<ExportTraceServiceRequest>,
) {
    let total = reqs.len() * SPANS;
    rt.block_on(async {
        for r in reqs {
            consumer
                .consume(Signal::Traces(r))
                .await
                .expect("batch accepts");
        }
        let mut seen = 0;
        while seen < total {
            seen += out.recv().await.expect("batch output");
        }
    });
}

fn bench_batch(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("batch");

    // 16 requests of 512 spans merged into one of 8192 (the default send_batch_size).
    let reqs = requests(16);
    group.throughput(Throughput::Elements((reqs.len() * SPANS) as u64));
    let (consumer, mut out) = batcher(
        &rt,
        batch::Config {
            send_batch_size: 8192,
            timeout: Duration::from_secs(10),
            send_batch_max_size: 0,
        },
    );
    group.bench_function("merge_16x512_to_8192", |b| {
        b.iter_batched(
            || reqs.clone(),
            |r| feed(&rt, &consumer, &mut out, r),
            BatchSize::LargeInput,
        )
    });

    // 15 requests of 512 spans cut into 10 of 768: every other request is split.
    let reqs = requests(15);
    group.throughput(Throughput::Elements((reqs.len() * SPANS) as u64));
    let (consumer, mut out) = batcher(
        &rt,
        batch::Config {
            send_batch_size: 768,
            timeout: Duration::from_secs(10),
            send_batch_max_size: 768,
        },
    );
    group.bench_function("merge_split_15x512_to_768", |b| {
        b.iter_batched(
            || reqs.clone(),
            |r| feed(&rt, &consumer, &mut out, r),
            BatchSize::LargeInput,
        )
    });

    // What the iter_batched set-up above costs per span, to subtract: a deep clone.
    let reqs = requests(16);
    group.throughput(Throughput::Elements((reqs.len() * SPANS) as u64));
    group.bench_function("clone_16x512_baseline", |b| {
        b.iter(|| std::hint::black_box(reqs.clone()))
    });
    group.finish();
}

fn bench_error_rate(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("error_rate");
    group.throughput(Throughput::Elements(SPANS as u64));
    // Default config: one dependency `auth0` matching `*.auth0.com`; nothing downstream, so
    // this is classification, endpoint templating, aggregation and error grouping only.
    let build = |dedupe_spans: usize| {
        let id: ComponentId = "error_rate".parse().expect("an id");
        let cx = ConnectorContext {
            settings: Settings::new(id),
            next: Router::new(),
        };
        let config = error_rate::Config {
            dedupe_spans,
            ..error_rate::Config::default()
        };
        rt.block_on(config.build(cx))
            .expect("error_rate builds")
            .consumer
    };
    // The same 16 requests over and over: with `dedupe_spans` on, every span after the first
    // round would be skipped as re-sent, so these two count with it off (as before it existed).
    let consumer = build(0);
    let reqs = requests(16);
    let mut i = 0;
    group.bench_function("consume_512", |b| {
        b.iter_batched(
            || {
                i += 1;
                reqs[i % reqs.len()].clone()
            },
            |r| {
                rt.block_on(consumer.consume(Signal::Traces(r)))
                    .expect("error_rate accepts")
            },
            BatchSize::LargeInput,
        )
    });
    // The same spans as bytes: what a pipeline that also forwards them hands the connector.
    let encoded = encoded(&reqs);
    group.bench_function("consume_encoded_512", |b| {
        b.iter(|| {
            i += 1;
            let e = encoded[i % encoded.len()].clone();
            rt.block_on(consumer.consume(Signal::Encoded(e)))
                .expect("error_rate accepts")
        })
    });
    // 256 distinct requests (131,072 spans, twice the default `dedupe_spans`): every span is new
    // again when it comes round, the dedupe's worst case (an insert and an eviction per counted
    // span); against the same spans with the dedupe off.
    let fresh = crate::encoded(&requests(256));
    for (name, dedupe_spans) in [
        ("fresh_encoded_512_no_dedupe", 0),
        ("fresh_encoded_512", error_rate::DEFAULT_DEDUPE_SPANS),
    ] {
        let consumer = build(dedupe_spans);
        let mut i = 0;
        group.bench_function(name, |b| {
            b.iter(|| {
                i += 1;
                let e = fresh[i % fresh.len()].clone();
                rt.block_on(consumer.consume(Signal::Encoded(e)))
                    .expect("error_rate accepts")
            })
        });
    }
    group.finish();
}

fn bench_redaction(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("redaction");
    group.throughput(Throughput::Elements(SPANS as u64));
    let next: SharedConsumer = Arc::new(FnConsumer(|s: Signal| {
        drop(std::hint::black_box(s));
        Ok(())
    }));
    let id: ComponentId = "redaction".parse().expect("an id");
    let cx = ProcessorContext {
        settings: Settings::new(id),
        pipeline: "traces".parse().expect("a pipeline id"),
        next,
    };
    let built = rt
        .block_on(redaction::Config::default().build(cx))
        .expect("redaction builds");
    if let Some(task) = built.task {
        rt.spawn(task);
    }
    let consumer = built.consumer;
    let reqs = requests(16);
    let mut i = 0;
    // Includes dropping the request downstream, as an exporter would after encoding it.
    group.bench_function("default_rules_512", |b| {
        b.iter_batched(
            || {
                i += 1;
                reqs[i % reqs.len()].clone()
            },
            |r| {
                rt.block_on(consumer.consume(Signal::Traces(r)))
                    .expect("redaction accepts")
            },
            BatchSize::LargeInput,
        )
    });
    // The same spans as bytes (the downstream sink takes either form).
    let encoded = encoded(&reqs);
    group.bench_function("default_rules_encoded_512", |b| {
        b.iter(|| {
            i += 1;
            let e = encoded[i % encoded.len()].clone();
            rt.block_on(consumer.consume(Signal::Encoded(e)))
                .expect("redaction accepts")
        })
    });
    group.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .sample_size(20)
}

criterion_group! {
    name = benches;
    config = config();
    targets = bench_batch, bench_redaction, bench_error_rate
}
criterion_main!(benches);
