//! What the `otlp` receiver pays per request before the pipeline sees it: decoding a 512-span
//! `ExportTraceServiceRequest` into prost structures (what tonic-prost and the HTTP handler do),
//! plus gunzip when the sender compresses. The wire walk that only counts spans is the floor: it
//! reads every byte once and allocates nothing. Run with `cargo bench -p authwatch-receiver`;
//! throughput is in spans.

use std::io::{Read, Write};
use std::time::Duration;

use authwatch_core::otlp::collector::trace::v1::ExportTraceServiceRequest;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use prost::Message;

const SPANS: usize = 512;

fn bench_decode(c: &mut Criterion) {
    let req = authwatch_loadgen::spans::Generator::new(1).request(SPANS);
    let bytes = req.encode_to_vec();
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(&bytes).expect("gzip in memory");
    let gz = enc.finish().expect("gzip in memory");

    let mut group = c.benchmark_group("otlp_decode");
    group.throughput(Throughput::Elements(SPANS as u64));
    group.bench_function("prost_decode_512", |b| {
        b.iter(|| {
            ExportTraceServiceRequest::decode(std::hint::black_box(&bytes[..]))
                .expect("well-formed")
        })
    });
    group.bench_function("gunzip_then_decode_512", |b| {
        b.iter(|| {
            let mut raw = Vec::with_capacity(bytes.len());
            flate2::read::GzDecoder::new(std::hint::black_box(&gz[..]))
                .read_to_end(&mut raw)
                .expect("gzip in memory");
            ExportTraceServiceRequest::decode(&raw[..]).expect("well-formed")
        })
    });
    group.bench_function("drop_decoded_512", |b| {
        b.iter_batched(|| req.clone(), drop, criterion::BatchSize::LargeInput)
    });
    group.bench_function("wire_count_floor_512", |b| {
        b.iter(|| {
            authwatch_loadgen::wire::count_spans(std::hint::black_box(&bytes)).expect("well-formed")
        })
    });
    group.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(30)
}

criterion_group! {
    name = benches;
    config = config();
    targets = bench_decode
}
criterion_main!(benches);
