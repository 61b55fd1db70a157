//! Detection latency: how long from the moment client spans showing a failing identity provider
//! are sent until authwatch (its embedded default config, `configs/default.yaml`) prints the
//! alert event, until a real Prometheus Alertmanager has the alert, and until the status page
//! shows the calls.
//!
//! Each run starts a fresh Alertmanager and a fresh authwatch (the default config, plus an
//! overlay that moves its ports to free loopback ones and adds the `alertmanager` exporter to the
//! `logs/alerts` pipeline), waits a random phase in `[0, --phase)` (so that the result does not
//! depend on where authwatch's `metrics_flush_interval` happens to be), then sends ONE OTLP/gRPC
//! request of `--spans` client spans to `tenant.us.auth0.com/oauth/token`, `--error-percent` of
//! them answered 503, and records from just before the send:
//!
//! - `event`: the `ALERT firing idp_slo` line on authwatch's stdout (the console exporter; the
//!   default config's burn-rate rule pages at once at 30% errors), and `first`: the first
//!   `ALERT` line of any state (the `idp_error_ratio` rule goes `pending`: it has `for: 30s`);
//! - `alertmanager`: `GET /api/v2/alerts` (polled every 10 ms) lists `alertname=idp_slo`;
//! - `status_page`: `GET /api/v1/status` (polled every 10 ms) shows every span in auth0's calls.
//!
//! Reports every run and p50/p99 (nearest rank) per measure; `--json` prints the summary as one
//! JSON object. A measurement, never a test: nothing here passes or fails on time.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use bytes::Bytes;
use http::uri::PathAndQuery;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
use prost::Message;
use tonic::transport::Endpoint;

use crate::codec::{RawCodec, TRACES_EXPORT};
use crate::{ms, parse_duration, quantile};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The authwatch binary.
    #[arg(long)]
    authwatch: PathBuf,
    /// The config authwatch runs with (the overlay is merged on top).
    #[arg(long, default_value = "configs/default.yaml")]
    config: PathBuf,
    /// The Alertmanager binary; default: `prometheus-alertmanager` or `alertmanager` on PATH.
    #[arg(long)]
    alertmanager: Option<PathBuf>,
    /// Runs (each with a fresh authwatch and Alertmanager).
    #[arg(long, default_value_t = 20)]
    runs: usize,
    /// The spans are sent at a random time in `[0, phase)` after authwatch is ready.
    #[arg(long, value_parser = parse_duration, default_value = "15s")]
    phase: Duration,
    /// Client spans in the request.
    #[arg(long, default_value_t = 100)]
    spans: usize,
    /// Share of them that fail (503), in percent.
    #[arg(long, default_value_t = 30)]
    error_percent: usize,
    /// Give up on one run after this long.
    #[arg(long, value_parser = parse_duration, default_value = "60s")]
    timeout: Duration,
    /// Where configs and logs go.
    #[arg(long, default_value = "target/bench/detect")]
    out: PathBuf,
    /// Print the summary as one JSON object.
    #[arg(long)]
    json: bool,
}

/// One run's times from just before the send.
#[derive(Debug, Default, Clone, Copy)]
struct Run {
    first: Option<Duration>,
    event: Option<Duration>,
    alertmanager: Option<Duration>,
    status_page: Option<Duration>,
}

const MEASURES: [&str; 4] = ["first", "event", "alertmanager", "status_page"];

impl Run {
    fn get(&self, measure: &str) -> Option<Duration> {
        match measure {
            "first" => self.first,
            "event" => self.event,
            "alertmanager" => self.alertmanager,
            _ => self.status_page,
        }
    }
}

pub fn main(args: Args) -> anyhow::Result<()> {
    anyhow::ensure!((1..=1000).contains(&args.runs), "--runs must be 1..=1000");
    anyhow::ensure!(args.error_percent <= 100, "--error-percent must be 0..=100");
    let am_bin = match &args.alertmanager {
        Some(p) => p.clone(),
        None => find_alertmanager()?,
    };
    std::fs::create_dir_all(&args.out).context("create --out")?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let mut seed = SystemTime::now().duration_since(UNIX_EPOCH)?.as_nanos() as u64 | 1;
    let mut runs = Vec::new();
    for i in 0..args.runs {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let phase = args.phase.mul_f64((seed % 1_000_000) as f64 / 1e6);
        let run = rt.block_on(one_run(&args, &am_bin, i, phase))?;
        let show =
            |d: Option<Duration>| d.map_or("-".to_string(), |d| format!("{:.3}", ms(d) / 1e3));
        eprintln!(
            "run {i:>2}: phase {:>6.3}s  first {:>6}s  event {:>6}s  alertmanager {:>6}s  status page {:>6}s",
            phase.as_secs_f64(),
            show(run.first),
            show(run.event),
            show(run.alertmanager),
            show(run.status_page)
        );
        runs.push(run);
    }
    report(&args, &runs);
    Ok(())
}

fn report(args: &Args, runs: &[Run]) {
    let mut summary = serde_json::Map::new();
    summary.insert("runs".into(), runs.len().into());
    for m in MEASURES {
        let mut v: Vec<Duration> = runs.iter().filter_map(|r| r.get(m)).collect();
        v.sort();
        let missed = runs.len() - v.len();
        let (p50, p99) = (quantile(&v, 0.5), quantile(&v, 0.99));
        let (min, max) = (
            v.first().copied().unwrap_or_default(),
            v.last().copied().unwrap_or_default(),
        );
        summary.insert(
            m.into(),
            serde_json::json!({"p50_s": ms(p50) / 1e3, "p99_s": ms(p99) / 1e3, "min_s": ms(min) / 1e3, "max_s": ms(max) / 1e3, "missed": missed}),
        );
        if !args.json {
            println!(
                "{m:<13} p50 {:.3}s  p99 {:.3}s  min {:.3}s  max {:.3}s  missed {missed} of {}",
                ms(p50) / 1e3,
                ms(p99) / 1e3,
                ms(min) / 1e3,
                ms(max) / 1e3,
                runs.len()
            );
        }
    }
    if args.json {
        println!("{}", serde_json::Value::Object(summary));
    }
}

fn find_alertmanager() -> anyhow::Result<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for name in ["prometheus-alertmanager", "alertmanager"] {
        for dir in std::env::split_paths(&path).chain([PathBuf::from("/usr/bin")]) {
            let p = dir.join(name);
            if p.is_file() {
                return Ok(p);
            }
        }
    }
    bail!("no Alertmanager binary on PATH: apt-get install prometheus-alertmanager, or pass --alertmanager")
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// A child process killed (and reaped) on drop.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn wait_ok(client: &reqwest::Client, url: &str, timeout: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(r) = client.get(url).send().await {
            if r.status().is_success() {
                return Ok(());
            }
        }
        if Instant::now() > deadline {
            bail!("{url} did not answer 200 within {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn one_run(args: &Args, am_bin: &Path, i: usize, phase: Duration) -> anyhow::Result<Run> {
    let dir = args.out.join(format!("run{i}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("am"))?;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()?;

    // Alertmanager.
    let am_port = free_port()?;
    std::fs::write(
        dir.join("alertmanager.yml"),
        "route:\n  receiver: blackhole\n  group_wait: 1s\nreceivers:\n  - name: blackhole\n",
    )?;
    let am_log = std::fs::File::create(dir.join("alertmanager.log"))?;
    let _am = Proc(
        Command::new(am_bin)
            .arg(format!(
                "--config.file={}",
                dir.join("alertmanager.yml").display()
            ))
            .arg(format!("--storage.path={}", dir.join("am").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{am_port}"))
            .arg("--cluster.listen-address=")
            .stdin(Stdio::null())
            .stdout(am_log.try_clone()?)
            .stderr(am_log)
            .spawn()
            .with_context(|| format!("start {}", am_bin.display()))?,
    );
    let am = format!("http://127.0.0.1:{am_port}");
    wait_ok(&http, &format!("{am}/-/ready"), Duration::from_secs(30)).await?;

    // authwatch: the default config with free ports and the alertmanager exporter.
    let [grpc, otlp_http, health, status, telemetry] = [
        free_port()?,
        free_port()?,
        free_port()?,
        free_port()?,
        free_port()?,
    ];
    let overlay = format!(
        "receivers:
  otlp:
    protocols:
      grpc: {{ endpoint: 127.0.0.1:{grpc} }}
      http: {{ endpoint: 127.0.0.1:{otlp_http} }}
exporters:
  alertmanager:
    endpoint: {am}
extensions:
  health_check: {{ endpoint: 127.0.0.1:{health} }}
  status_page: {{ endpoint: 127.0.0.1:{status} }}
service:
  telemetry:
    metrics: {{ address: 127.0.0.1:{telemetry} }}
  pipelines:
    logs/alerts:
      receivers: [alerts]
      exporters: [console, alertmanager]
"
    );
    let overlay_path = dir.join("overlay.yaml");
    std::fs::write(&overlay_path, overlay)?;
    let log = std::fs::File::create(dir.join("authwatch.log"))?;
    let mut child = Command::new(&args.authwatch)
        .arg("--config")
        .arg(&args.config)
        .arg("--config")
        .arg(&overlay_path)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .with_context(|| format!("start {}", args.authwatch.display()))?;
    // stdout lines with the time they were read.
    let (tx, rx) = mpsc::channel::<(Instant, String)>();
    let stdout = child.stdout.take().context("authwatch stdout")?;
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send((Instant::now(), line)).is_err() {
                break;
            }
        }
    });
    let _aw = Proc(child);
    wait_ok(
        &http,
        &format!("http://127.0.0.1:{health}/"),
        Duration::from_secs(30),
    )
    .await?;
    let channel = Endpoint::from_shared(format!("http://127.0.0.1:{grpc}"))?
        .connect()
        .await
        .context("connect to authwatch's OTLP/gRPC receiver")?;
    let mut client = tonic::client::Grpc::new(channel);
    let body = Bytes::from(burst(args.spans, args.error_percent).encode_to_vec());
    tokio::time::sleep(phase).await;

    client.ready().await.context("OTLP/gRPC channel")?;
    let t0 = Instant::now();
    client
        .unary(
            tonic::Request::new(body),
            PathAndQuery::from_static(TRACES_EXPORT),
            RawCodec,
        )
        .await
        .context("export the spans")?;

    let deadline = t0 + args.timeout;
    let mut run = Run::default();
    let (am_url, status_url) = (
        format!("{am}/api/v2/alerts"),
        format!("http://127.0.0.1:{status}/api/v1/status"),
    );
    let spans = args.spans as u64;
    while Instant::now() < deadline
        && (run.event.is_none() || run.alertmanager.is_none() || run.status_page.is_none())
    {
        while let Ok((at, line)) = rx.try_recv() {
            if line.contains(" ALERT ") {
                run.first.get_or_insert(at - t0);
                if line.contains(" ALERT firing idp_slo") {
                    run.event.get_or_insert(at - t0);
                }
            }
        }
        if run.alertmanager.is_none() && has_alert(&http, &am_url, "idp_slo").await {
            run.alertmanager = Some(t0.elapsed());
        }
        if run.status_page.is_none() && shows_calls(&http, &status_url, "auth0", spans).await {
            run.status_page = Some(t0.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(run)
}

async fn get_json(http: &reqwest::Client, url: &str) -> Option<serde_json::Value> {
    let r = http.get(url).send().await.ok()?;
    serde_json::from_slice(&r.bytes().await.ok()?).ok()
}

async fn has_alert(http: &reqwest::Client, url: &str, name: &str) -> bool {
    get_json(http, url).await.is_some_and(|v| {
        v.as_array()
            .is_some_and(|a| a.iter().any(|x| x["labels"]["alertname"] == name))
    })
}

async fn shows_calls(http: &reqwest::Client, url: &str, dep: &str, n: u64) -> bool {
    get_json(http, url).await.is_some_and(|v| {
        v["dependencies"].as_array().is_some_and(|d| {
            d.iter()
                .any(|x| x["name"] == dep && x["requests"].as_u64().is_some_and(|r| r >= n))
        })
    })
}

fn kv(key: &str, value: Value) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

/// `n` client calls to Auth0's token endpoint ending now, `error_percent` of them 503s.
fn burst(n: usize, error_percent: usize) -> ExportTraceServiceRequest {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let spans = (0..n)
        .map(|i| {
            let failed = i % 100 < error_percent;
            let code = if failed { 503 } else { 200 };
            Span {
                trace_id: (i as u128 + 1).to_be_bytes().to_vec(),
                span_id: (i as u64 + 1).to_be_bytes().to_vec(),
                name: "POST".into(),
                kind: SpanKind::Client as i32,
                start_time_unix_nano: now.saturating_sub(40_000_000),
                end_time_unix_nano: now,
                attributes: vec![
                    kv("http.request.method", Value::StringValue("POST".into())),
                    kv(
                        "server.address",
                        Value::StringValue("tenant.us.auth0.com".into()),
                    ),
                    kv(
                        "url.full",
                        Value::StringValue("https://tenant.us.auth0.com/oauth/token".into()),
                    ),
                    kv("http.response.status_code", Value::IntValue(code)),
                ],
                status: Some(Status {
                    code: if failed {
                        StatusCode::Error
                    } else {
                        StatusCode::Unset
                    } as i32,
                    message: String::new(),
                }),
                ..Default::default()
            }
        })
        .collect();
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![kv("service.name", Value::StringValue("checkout".into()))],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_burst_has_the_asked_error_share() {
        let r = burst(100, 30);
        let spans = &r.resource_spans[0].scope_spans[0].spans;
        assert_eq!(spans.len(), 100);
        let failed = spans
            .iter()
            .filter(|s| {
                s.status
                    .as_ref()
                    .is_some_and(|st| st.code == StatusCode::Error as i32)
            })
            .count();
        assert_eq!(failed, 30);
    }
}
