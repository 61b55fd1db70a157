//! The first run: `authwatch` with no arguments runs the embedded default (`configs/default.yaml`)
//! on the default ports (4317, 4318, 8888, 13133 and the status page's 13134). A service's real
//! client spans (the opentelemetry-otlp crate) for calls to `tenant.us.auth0.com`, 30% of them
//! 5xx, become an error ratio and a firing alert, both on the terminal (the `console` exporter's
//! lines on stdout) and in the status page's `/api/v1/status` JSON.
//!
//! Both tests use the default ports, so they run one after the other behind [`DEFAULT_PORTS`];
//! no other test binary uses those ports.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry::trace::{SpanKind, Tracer as _, TracerProvider as _};
use opentelemetry::KeyValue;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::runtime::Tokio;
use serde_json::Value;

use common::*;

/// Held by every test that runs the binary on the default ports.
static DEFAULT_PORTS: Mutex<()> = Mutex::new(());

fn default_ports() -> std::sync::MutexGuard<'static, ()> {
    DEFAULT_PORTS.lock().unwrap_or_else(|e| e.into_inner())
}

/// `authwatch` with no arguments runs the embedded default and says where it listens.
#[test]
fn no_arguments_runs_the_embedded_default() {
    let _ports = default_ports();
    let mut aw = Authwatch::spawn(&[], &[]);
    aw.wait_for_output("Everything is ready", Duration::from_secs(30));
    let out = aw.output();
    for needle in [
        "127.0.0.1:4317",
        "127.0.0.1:4318",
        "127.0.0.1:8888",
        "127.0.0.1:13133",
        "127.0.0.1:13134",
    ] {
        assert!(
            out.contains(needle),
            "startup output should mention {needle}:\n{out}"
        );
    }
    aw.signal("INT");
    let status = aw.wait(Duration::from_secs(30));
    assert_eq!(status.code(), Some(0), "{}", aw.output());
    assert!(aw.output().contains("signal=\"SIGINT\""), "{}", aw.output());
}

/// The lines of `output` that contain every one of `needles`.
fn lines_with<'a>(output: &'a str, needles: &[&str]) -> Vec<&'a str> {
    output
        .lines()
        .filter(|l| needles.iter().all(|n| l.contains(n)))
        .collect()
}

/// Sends batches of 10 client spans to the provider, 3 of them `503`, until `stop`: one export
/// request per batch, so every sliding window holds whole batches and the ratio is exactly 0.3.
async fn send_auth0_traffic(stop: Arc<AtomicBool>) -> u64 {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint("http://127.0.0.1:4317")
        .build()
        .expect("OTLP gRPC span exporter");
    let bsp =
        opentelemetry_sdk::trace::span_processor_with_async_runtime::BatchSpanProcessor::builder(
            exporter, Tokio,
        )
        .build();
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
        .with_span_processor(bsp)
        .with_resource(
            opentelemetry_sdk::Resource::builder_empty()
                .with_service_name("checkout")
                .build(),
        )
        .build();
    let tracer = provider.tracer("first-run-test");
    let mut sent = 0;
    while !stop.load(Ordering::Relaxed) {
        for i in 0..10 {
            let status = if i < 3 { 503 } else { 200 };
            tracer
                .span_builder("POST")
                .with_kind(SpanKind::Client)
                .with_attributes([
                    KeyValue::new("http.request.method", "POST"),
                    KeyValue::new("server.address", "tenant.us.auth0.com"),
                    KeyValue::new("url.full", "https://tenant.us.auth0.com/oauth/token"),
                    KeyValue::new("http.response.status_code", status),
                ])
                .start(&tracer);
            sent += 1;
        }
        let p = provider.clone();
        tokio::task::spawn_blocking(move || p.force_flush())
            .await
            .expect("flush task")
            .expect("the spans are exported to authwatch");
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    tokio::task::spawn_blocking(move || provider.shutdown())
        .await
        .expect("shutdown task")
        .expect("the SDK shuts down");
    sent
}

async fn status() -> Value {
    reqwest::get("http://127.0.0.1:13134/api/v1/status")
        .await
        .expect("GET the status page's /api/v1/status")
        .json()
        .await
        .expect("status JSON")
}

#[test]
fn first_run_shows_provider_error_ratio_and_firing_alert() {
    let _ports = default_ports();
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime")
        .block_on(first_run());
}

async fn first_run() {
    let mut aw = Authwatch::spawn(&[], &[]);
    aw.wait_for_output("Everything is ready", Duration::from_secs(30));

    let stop = Arc::new(AtomicBool::new(false));
    let traffic = tokio::spawn(send_auth0_traffic(stop.clone()));

    // --- the terminal: alert transitions as they happen, then the minute's summary ---
    // The burn-rate rule pages at the first evaluation (30% errors burn a 99.9% budget 300x).
    let wait = |aw: &mut Authwatch, needle: &str, secs| {
        aw.wait_for_output(needle, Duration::from_secs(secs));
    };
    wait(&mut aw, "ALERT firing idp_slo dependency=auth0", 60);
    // The threshold rule: pending as soon as 20 calls are seen, firing 30s (`for`) later.
    wait(
        &mut aw,
        "ALERT pending idp_error_ratio dependency=auth0",
        60,
    );
    wait(&mut aw, "ALERT firing idp_error_ratio dependency=auth0", 90);
    // Summaries come every minute from the start.
    wait(&mut aw, "SUMMARY dependency=auth0", 120);
    let out = aw.output();

    let firing = lines_with(&out, &["ALERT firing idp_error_ratio dependency=auth0"]);
    assert_eq!(firing.len(), 1, "one line per transition:\n{out}");
    assert!(
        firing[0].contains(" value=0.3 ") && firing[0].contains(" threshold=0.05 "),
        "the alert line shows the error ratio and the threshold: {}",
        firing[0]
    );
    assert!(
        firing[0].contains("verdict=provider_outage"),
        "5xx from real traffic without probes is the provider's fault: {}",
        firing[0]
    );
    let summary = lines_with(&out, &["SUMMARY dependency=auth0"]);
    assert!(
        summary[0].contains(" window=1m ")
            && summary[0].contains(" error_ratio=0.300 ")
            && summary[0].contains(" verdict=provider_outage "),
        "the summary shows the 1m error ratio and the verdict: {}",
        summary[0]
    );
    let requests: u64 = summary[0]
        .split(' ')
        .find_map(|kv| kv.strip_prefix("requests="))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("requests=N in {}", summary[0]));
    assert!(requests >= 20 && requests % 10 == 0, "{}", summary[0]);
    // No per-span dump any more, and only providers with traffic are summarised.
    assert!(!out.contains("Debug exporter received data"), "{out}");
    assert!(
        lines_with(&out, &["SUMMARY dependency=okta"]).is_empty(),
        "{out}"
    );

    // --- the status page's JSON ---
    let s = status().await;
    let auth0 = s["dependencies"]
        .as_array()
        .and_then(|deps| deps.iter().find(|d| d["name"] == "auth0"))
        .unwrap_or_else(|| panic!("auth0 on the status page: {s:#}"));
    assert_eq!(auth0["verdict"], "provider_outage", "{auth0:#}");
    let one_minute = auth0["windows"]
        .as_array()
        .and_then(|ws| ws.iter().find(|w| w["window"] == "1m"))
        .unwrap_or_else(|| panic!("the 1m window: {auth0:#}"));
    let ratio = one_minute["error_ratio"].as_f64().unwrap_or(-1.0);
    assert!((ratio - 0.3).abs() < 1e-9, "{one_minute:#}");
    let firing: Vec<&Value> = s["alerts"]["firing"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|a| a["dependency"] == "auth0")
        .collect();
    let names: Vec<&str> = firing.iter().filter_map(|a| a["name"].as_str()).collect();
    assert!(
        names.contains(&"idp_error_ratio") && names.contains(&"idp_slo"),
        "both rules fire for auth0 on the status page: {s:#}"
    );

    stop.store(true, Ordering::Relaxed);
    let sent = tokio::time::timeout(Duration::from_secs(30), traffic)
        .await
        .expect("the client stops")
        .expect("the client task does not panic");
    assert!(sent >= 20);
    aw.signal("TERM");
    let code = aw.wait(Duration::from_secs(30));
    assert_eq!(code.code(), Some(0), "{}", aw.output());
}
