//! The sender: `--concurrency` workers share `--connections` connections and each sends one
//! request at a time (closed loop), or paces itself when `--rate` is given. Requests are encoded
//! (and, for HTTP with `--gzip`, compressed) once at start and cycled through, so the sender's own
//! cost stays small. Each send gets fresh span ids (the request's sequence number XORed into
//! every `span_id`, a copy of the body and 512 eight-byte writes): a receiver that remembers
//! recently counted spans, as `error_rate` does, sees new spans as real traffic would bring
//! them. HTTP with `--gzip` sends the compressed bodies as they are (their span ids repeat every
//! `--distinct` requests). A refused request is counted by its status and the worker pauses 10 ms.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use bytes::{Bytes, BytesMut};
use http::uri::PathAndQuery;
use prost::Message;
use tokio::time::Instant;
use tonic::codec::CompressionEncoding;
use tonic::transport::{Channel, Endpoint};

use crate::codec::{RawCodec, TRACES_EXPORT};
use crate::{loopback, ms, parse_duration, quantile, Protocol};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// OTLP protocol.
    #[arg(long, value_enum, default_value = "grpc")]
    protocol: Protocol,
    /// Loopback host:port; defaults to 127.0.0.1:4317 (gRPC) or 127.0.0.1:4318 (HTTP).
    #[arg(long)]
    endpoint: Option<String>,
    /// Spans per request.
    #[arg(long, default_value_t = 512)]
    spans_per_request: usize,
    /// gRPC: HTTP/2 connections shared by the workers. HTTP: ignored (each in-flight request
    /// uses its own HTTP/1.1 connection).
    #[arg(long, default_value_t = 1)]
    connections: usize,
    /// Requests in flight at once (workers).
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    /// How long to send.
    #[arg(long, value_parser = parse_duration, default_value = "20s")]
    duration: Duration,
    /// Stop after this many requests (whichever of `--duration` and this comes first).
    #[arg(long)]
    requests: Option<u64>,
    /// Offered load in spans per second across all workers; without it, as fast as answered.
    #[arg(long)]
    rate: Option<f64>,
    /// Compress requests with gzip.
    #[arg(long)]
    gzip: bool,
    /// Distinct requests generated at start and cycled through (raised, when `--hosts` or
    /// `--routes` ask for more values than they hold, until every value appears).
    #[arg(long, default_value_t = 16)]
    distinct: usize,
    /// Distinct `server.address` values (`t<i>.us.auth0.com`); 0: the default mix of 4 Auth0
    /// tenants and Entra ID.
    #[arg(long, default_value_t = 0)]
    hosts: usize,
    /// Distinct endpoints (`/api/v2/route<j>`, kept as they are by `error_rate`'s templating);
    /// 0: the default mix of 6 Auth0 endpoints.
    #[arg(long, default_value_t = 0)]
    routes: usize,
    /// Per-request timeout.
    #[arg(long, value_parser = parse_duration, default_value = "10s")]
    timeout: Duration,
    /// Runtime worker threads.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Print the summary as one JSON object.
    #[arg(long)]
    json: bool,
}

pub fn main(args: Args) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.spans_per_request > 0,
        "--spans-per-request must be at least 1"
    );
    anyhow::ensure!(args.concurrency > 0, "--concurrency must be at least 1");
    anyhow::ensure!(args.connections > 0, "--connections must be at least 1");
    anyhow::ensure!(
        args.duration <= Duration::from_secs(3600),
        "--duration must be at most 1h"
    );
    if let Some(rate) = args.rate {
        anyhow::ensure!(rate > 0.0, "--rate must be positive");
    }
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads.max(1))
        .enable_all()
        .build()
        .context("cannot start the runtime")?
        .block_on(run(args))
}

#[derive(Clone)]
enum Client {
    Grpc {
        grpc: tonic::client::Grpc<Channel>,
    },
    Http {
        client: reqwest::Client,
        url: String,
        gzip: bool,
    },
}

impl Client {
    /// Sends one request; the error is a short label to count by.
    async fn send(&mut self, body: Bytes) -> Result<(), String> {
        match self {
            Client::Grpc { grpc } => {
                grpc.ready().await.map_err(|_| "transport".to_string())?;
                let path = PathAndQuery::from_static(TRACES_EXPORT);
                grpc.unary(tonic::Request::new(body), path, RawCodec)
                    .await
                    .map(|_| ())
                    .map_err(|s| format!("grpc {:?}", s.code()))
            }
            Client::Http { client, url, gzip } => {
                let mut req = client
                    .post(url.as_str())
                    .header("content-type", "application/x-protobuf")
                    .body(body);
                if *gzip {
                    req = req.header("content-encoding", "gzip");
                }
                let resp = req.send().await.map_err(|e| {
                    if e.is_timeout() {
                        "timeout".to_string()
                    } else {
                        "transport".to_string()
                    }
                })?;
                let status = resp.status();
                // Read the body so the connection is reused.
                let _ = resp.bytes().await;
                if status.is_success() {
                    Ok(())
                } else {
                    Err(format!("http {}", status.as_u16()))
                }
            }
        }
    }
}

#[derive(Default)]
struct Tally {
    ok: u64,
    latencies: Vec<Duration>,
    errors: BTreeMap<String, u64>,
}

async fn run(args: Args) -> anyhow::Result<()> {
    let default_port = match args.protocol {
        Protocol::Grpc => "127.0.0.1:4317",
        Protocol::Http => "127.0.0.1:4318",
    };
    let addr = loopback(args.endpoint.as_deref().unwrap_or(default_port))?;

    let cardinality = authwatch_loadgen::spans::Cardinality {
        hosts: args.hosts,
        routes: args.routes,
    };
    let distinct = distinct_requests(
        args.distinct,
        args.spans_per_request,
        args.hosts.max(args.routes),
    );
    let precompressed = args.gzip && args.protocol == Protocol::Http;
    let bodies: Vec<Body> =
        authwatch_loadgen::spans::requests_with(distinct, args.spans_per_request, cardinality)
            .into_iter()
            .map(|r| {
                let raw = r.encode_to_vec();
                if precompressed {
                    gzip(&raw).map(|z| Body {
                        bytes: Bytes::from(z),
                        span_ids: Vec::new(),
                    })
                } else {
                    Ok(Body {
                        span_ids: span_id_offsets(&r, &raw),
                        bytes: Bytes::from(raw),
                    })
                }
            })
            .collect::<std::io::Result<_>>()
            .context("cannot compress the requests")?;
    let bytes_per_request = bodies.iter().map(|b| b.bytes.len()).sum::<usize>() / bodies.len();

    let mut clients = Vec::new();
    match args.protocol {
        Protocol::Grpc => {
            for _ in 0..args.connections {
                let channel = Endpoint::from_shared(format!("http://{addr}"))
                    .context("bad endpoint")?
                    .timeout(args.timeout)
                    .connect()
                    .await
                    .with_context(|| {
                        format!("cannot connect to {addr}; is authwatch (or the sink) listening?")
                    })?;
                let mut grpc = tonic::client::Grpc::new(channel)
                    .max_decoding_message_size(64 << 20)
                    .max_encoding_message_size(64 << 20);
                if args.gzip {
                    grpc = grpc.send_compressed(CompressionEncoding::Gzip);
                }
                clients.push(Client::Grpc { grpc });
            }
        }
        Protocol::Http => {
            let client = reqwest::Client::builder()
                .timeout(args.timeout)
                .pool_max_idle_per_host(args.concurrency)
                .build()
                .context("cannot build the HTTP client")?;
            clients.push(Client::Http {
                client,
                url: format!("http://{addr}/v1/traces"),
                gzip: args.gzip,
            });
        }
    }

    let bodies = Arc::new(bodies);
    let issued = Arc::new(AtomicU64::new(0));
    let sequence = Arc::new(AtomicU64::new(1));
    let start = Instant::now();
    let deadline = start + args.duration;
    // Each worker paces itself to its share of the rate.
    let period = args.rate.map(|rate| {
        Duration::from_secs_f64(args.concurrency as f64 * args.spans_per_request as f64 / rate)
    });
    let mut workers = Vec::new();
    for w in 0..args.concurrency {
        let mut client = clients[w % clients.len()].clone();
        let bodies = bodies.clone();
        let issued = issued.clone();
        let sequence = sequence.clone();
        let max = args.requests;
        workers.push(tokio::spawn(async move {
            let mut tally = Tally::default();
            let mut next = w;
            let mut ticker = period.map(|p| {
                // Spread the workers' first sends over one period.
                let offset = p.mul_f64(w as f64 / args.concurrency as f64);
                let mut t = tokio::time::interval_at(start + offset, p);
                t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                t
            });
            loop {
                if let Some(t) = ticker.as_mut() {
                    t.tick().await;
                }
                if Instant::now() >= deadline {
                    break;
                }
                if max.is_some_and(|m| issued.fetch_add(1, Ordering::Relaxed) >= m) {
                    break;
                }
                let body =
                    bodies[next % bodies.len()].fresh(sequence.fetch_add(1, Ordering::Relaxed));
                next += 1;
                let t0 = Instant::now();
                match client.send(body).await {
                    Ok(()) => {
                        tally.ok += 1;
                        tally.latencies.push(t0.elapsed());
                    }
                    Err(label) => {
                        *tally.errors.entry(label).or_default() += 1;
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
            }
            tally
        }));
    }
    let mut total = Tally::default();
    for w in workers {
        let t = w.await.context("a worker panicked")?;
        total.ok += t.ok;
        total.latencies.extend(t.latencies);
        for (k, v) in t.errors {
            *total.errors.entry(k).or_default() += v;
        }
    }
    let elapsed = start.elapsed();
    total.latencies.sort_unstable();

    let spans = total.ok * args.spans_per_request as u64;
    let errors: u64 = total.errors.values().sum();
    let rate = spans as f64 / elapsed.as_secs_f64();
    let lat = &total.latencies;
    if args.json {
        let summary = serde_json::json!({
            "protocol": format!("{:?}", args.protocol).to_lowercase(),
            "gzip": args.gzip,
            "spans_per_request": args.spans_per_request,
            "bytes_per_request": bytes_per_request,
            "concurrency": args.concurrency,
            "connections": args.connections,
            "offered_rate": args.rate,
            "hosts": args.hosts,
            "routes": args.routes,
            "distinct_requests": distinct,
            "elapsed_s": elapsed.as_secs_f64(),
            "requests_ok": total.ok,
            "spans_ok": spans,
            "spans_per_s": rate,
            "errors": errors,
            "error_kinds": total.errors,
            "latency_ms": {
                "p50": ms(quantile(lat, 0.5)),
                "p90": ms(quantile(lat, 0.9)),
                "p99": ms(quantile(lat, 0.99)),
                "max": ms(quantile(lat, 1.0)),
            },
        });
        println!("{summary}");
    } else {
        println!(
            "sent {} requests ({} spans, {} bytes each) in {:.2} s: {:.0} spans/s accepted",
            total.ok,
            spans,
            bytes_per_request,
            elapsed.as_secs_f64(),
            rate
        );
        println!(
            "latency ms: p50 {} p90 {} p99 {} max {}",
            ms(quantile(lat, 0.5)),
            ms(quantile(lat, 0.9)),
            ms(quantile(lat, 0.99)),
            ms(quantile(lat, 1.0))
        );
        println!("errors: {errors} {:?}", total.errors);
    }
    Ok(())
}

/// One encoded request and where its spans' `span_id` bytes are.
struct Body {
    bytes: Bytes,
    span_ids: Vec<usize>,
}

impl Body {
    /// The request with `sequence` XORed into every span id (the body itself when it has no
    /// known span ids: a precompressed one).
    fn fresh(&self, sequence: u64) -> Bytes {
        if self.span_ids.is_empty() {
            return self.bytes.clone();
        }
        let mut out = BytesMut::from(&self.bytes[..]);
        let mask = sequence.to_be_bytes();
        for &at in &self.span_ids {
            for (b, m) in out[at..at + 8].iter_mut().zip(mask) {
                *b ^= m;
            }
        }
        out.freeze()
    }
}

/// Offsets of every span's 8-byte `span_id` in `raw`, the encoding of `request`: the bytes
/// after each `0x12 0x08` (field 2, length 8) that are one of the request's span ids.
fn span_id_offsets(
    request: &opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest,
    raw: &[u8],
) -> Vec<usize> {
    let ids: std::collections::HashSet<&[u8]> = request
        .resource_spans
        .iter()
        .flat_map(|r| &r.scope_spans)
        .flat_map(|s| &s.spans)
        .map(|s| s.span_id.as_slice())
        .filter(|id| id.len() == 8)
        .collect();
    let mut offsets = Vec::with_capacity(ids.len());
    let mut i = 0;
    while i + 10 <= raw.len() {
        if raw[i] == 0x12 && raw[i + 1] == 0x08 && ids.contains(&raw[i + 2..i + 10]) {
            offsets.push(i + 2);
            i += 10;
        } else {
            i += 1;
        }
    }
    offsets
}

/// Requests to generate: `asked`, or enough for `values` distinct values to all appear, at most
/// 4096 (2M spans of 512).
fn distinct_requests(asked: usize, spans_per_request: usize, values: usize) -> usize {
    let needed = values.div_ceil(spans_per_request.max(1));
    asked.max(needed).clamp(1, 4096)
}

fn gzip(raw: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(raw)?;
    enc.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enough_requests_for_every_value() {
        assert_eq!(distinct_requests(16, 512, 0), 16);
    }

    #[test]
    fn every_send_carries_fresh_span_ids_and_nothing_else_changes() {
        use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
        let request = authwatch_loadgen::spans::requests(1, 64).remove(0);
        let raw = request.encode_to_vec();
        let body = Body {
            span_ids: span_id_offsets(&request, &raw),
            bytes: Bytes::from(raw),
        };
        assert_eq!(body.span_ids.len(), 64);
        let ids = |b: &Bytes| -> Vec<Vec<u8>> {
            let r = ExportTraceServiceRequest::decode(b.clone()).unwrap();
            r.resource_spans
                .iter()
                .flat_map(|r| &r.scope_spans)
                .flat_map(|s| &s.spans)
                .map(|s| s.span_id.clone())
                .collect()
        };
        let (one, two) = (body.fresh(1), body.fresh(2));
        let (a, b) = (ids(&one), ids(&two));
        assert!(a.iter().zip(&b).all(|(x, y)| x != y));
        assert!(a.iter().zip(ids(&body.bytes)).all(|(x, y)| *x != y));
        // Only the span ids differ.
        let mut back = ExportTraceServiceRequest::decode(one).unwrap();
        for s in back
            .resource_spans
            .iter_mut()
            .flat_map(|r| &mut r.scope_spans)
            .flat_map(|s| &mut s.spans)
        {
            for (b, m) in s.span_id.iter_mut().zip(1u64.to_be_bytes()) {
                *b ^= m;
            }
        }
        assert_eq!(back, request);
        assert_eq!(distinct_requests(16, 512, 1000), 16);
        assert_eq!(distinct_requests(16, 512, 100_000), 196);
        assert_eq!(distinct_requests(0, 512, 0), 1);
        assert_eq!(distinct_requests(16, 1, 10_000_000), 4096);
    }
}
