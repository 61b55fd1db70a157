//! What the `otlp` and `otlphttp` exporters pay per batch: encoding an 8192-span
//! `ExportTraceServiceRequest` (16 requests of 512 spans merged, as the `batch` processor sends
//! it) and compressing it with gzip, at the default level 6 (what tonic and flate2 use unless
//! told) and at level 1 (fast). Run with `cargo bench -p authwatch-exporter`; throughput is in
//! spans.

use std::io::Write;
use std::time::Duration;

use authwatch_core::otlp::collector::trace::v1::ExportTraceServiceRequest;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use prost::Message;

fn batch() -> ExportTraceServiceRequest {
    let mut merged = ExportTraceServiceRequest::default();
    for r in authwatch_loadgen::spans::requests(16, 512) {
        merged.resource_spans.extend(r.resource_spans);
    }
    merged
}

fn gzip(raw: &[u8], level: u32) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(
        Vec::with_capacity(raw.len() / 4),
        flate2::Compression::new(level),
    );
    enc.write_all(raw).expect("gzip in memory");
    enc.finish().expect("gzip in memory")
}

fn bench_encode(c: &mut Criterion) {
    let req = batch();
    let spans = 16 * 512;
    let raw = req.encode_to_vec();

    let mut group = c.benchmark_group("otlp_encode");
    group.throughput(Throughput::Elements(spans));
    group.bench_function("prost_encode_8192", |b| {
        b.iter(|| std::hint::black_box(&req).encode_to_vec())
    });
    for level in [1, 6] {
        group.bench_function(format!("gzip_level{level}_8192"), |b| {
            b.iter(|| gzip(std::hint::black_box(&raw), level))
        });
    }
    group.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .sample_size(10)
}

criterion_group! {
    name = benches;
    config = config();
    targets = bench_encode
}
criterion_main!(benches);
