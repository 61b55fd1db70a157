//! Issue 17: a real Prometheus scraping authwatch's `prometheus` exporter counts the first burst
//! of errors of a dependency's endpoint. Before, `authwatch_dependency_errors_total` was born at
//! the first error with its full value, so `increase()` (and the fleet rules of
//! `authwatch rules`) counted that burst as 0. Now the error counters start at 0 when the
//! endpoint is first seen, and the OpenMetrics exposition carries `_created`.

mod common;

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use authwatch_core::otlp::collector::trace::v1::ExportTraceServiceRequest;
use authwatch_core::otlp::trace::v1::{status, ResourceSpans, ScopeSpans, Span, Status};
use authwatch_testkit::{client_span, kv, kv_int, raw_http, resource};
use common::*;
use prost::Message;
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(90);
const SERIES: &str = r#"authwatch_dependency_errors_total{error_class="server_error"}"#;

fn calls(first: u64, n: u64, code: i64) -> Vec<u8> {
    let spans: Vec<Span> = (first..first + n)
        .map(|i| {
            let mut s = client_span(i);
            s.attributes = vec![
                kv("http.request.method", "POST"),
                kv("server.address", "tenant.us.auth0.com"),
                kv("url.full", "https://tenant.us.auth0.com/oauth/token"),
                kv_int("http.response.status_code", code),
            ];
            if code >= 500 {
                s.status = Some(Status {
                    code: status::StatusCode::Error as i32,
                    message: String::new(),
                });
            }
            s
        })
        .collect();
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(resource("checkout")),
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
    .encode_to_vec()
}

async fn send(addr: SocketAddr, body: Vec<u8>) {
    let r = raw_http::post(
        addr,
        "/v1/traces",
        &[("content-type", "application/x-protobuf")],
        &body,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
}

/// A Prometheus server on loopback scraping `target` every second; killed on drop.
struct Prometheus {
    child: Child,
    addr: SocketAddr,
    _scratch: Scratch,
}

impl Prometheus {
    async fn start(target: SocketAddr) -> Prometheus {
        let scratch = Scratch::new("prometheus");
        let cfg = scratch.write(
            "prometheus.yml",
            format!(
                "global: {{scrape_interval: 1s, evaluation_interval: 1s}}\nscrape_configs:\n  - job_name: authwatch\n    honor_labels: true\n    static_configs: [{{targets: ['{target}']}}]\n"
            ),
        );
        let port = free_port();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", cfg.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                scratch.0.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect(
                "prometheus (Debian package `prometheus`) must be installed: run scripts/test.sh",
            );
        let p = Prometheus {
            child,
            addr: ([127, 0, 0, 1], port).into(),
            _scratch: scratch,
        };
        let ready = format!("http://{}/-/ready", p.addr);
        assert!(
            eventually(WAIT, async || {
                reqwest::get(&ready).await.is_ok_and(|r| r.status() == 200)
            })
            .await,
            "prometheus did not become ready"
        );
        p
    }

    /// The value of an instant query with one result, if it has one.
    async fn query(&self, q: &str) -> Option<f64> {
        let v: Value = reqwest::Client::new()
            .get(format!("http://{}/api/v1/query", self.addr))
            .query(&[("query", q)])
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        let result = v["data"]["result"].as_array()?;
        assert!(result.len() <= 1, "{q}: {v}");
        result.first()?["value"][1].as_str()?.parse().ok()
    }

    async fn wait_for(&self, q: &str, want: impl Fn(f64) -> bool) -> Option<f64> {
        let mut last = None;
        let ok = eventually(WAIT, async || {
            last = self.query(q).await;
            last.is_some_and(&want)
        })
        .await;
        assert!(ok, "{q}: last {last:?}");
        last
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_counts_the_first_burst_of_errors() {
    let (http, prom) = (free_port(), free_port());
    let _aw = Authwatch::start(&format!(
        "
receivers:
  otlp:
    protocols:
      http: {{endpoint: '127.0.0.1:{http}'}}
connectors:
  error_rate:
    dependencies: [{{name: auth0, server_address: ['*.auth0.com']}}]
    metrics_flush_interval: 500ms
exporters:
  prometheus:
    endpoint: '127.0.0.1:{prom}'
    enable_open_metrics: true
service:
  telemetry: {{metrics: {{level: none}}}}
  pipelines:
    traces: {{receivers: [otlp], exporters: [error_rate]}}
    metrics: {{receivers: [error_rate], exporters: [prometheus]}}
"
    ));
    let receiver: SocketAddr = ([127, 0, 0, 1], http).into();
    let exporter: SocketAddr = ([127, 0, 0, 1], prom).into();
    let prometheus = Prometheus::start(exporter).await;

    // The application calls Auth0 successfully: the endpoint is seen, its error counters are
    // exposed at 0 and scraped.
    send(receiver, calls(0, 20, 200)).await;
    prometheus.wait_for(SERIES, |v| v == 0.0).await;
    let open_metrics = reqwest::Client::new()
        .get(format!("http://{exporter}/metrics"))
        .header("accept", "application/openmetrics-text; version=1.0.0")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        open_metrics.contains("authwatch_dependency_errors_created{"),
        "{open_metrics}"
    );
    // Let Prometheus take a few samples at 0.
    let samples = format!("count_over_time({SERIES}[1m])");
    prometheus.wait_for(&samples, |n| n >= 3.0).await;

    // The first burst: 40 server errors.
    send(receiver, calls(100, 40, 503)).await;
    prometheus.wait_for(SERIES, |v| v == 40.0).await;
    let increase = prometheus
        .query(&format!("increase({SERIES}[1m])"))
        .await
        .unwrap();
    assert!(
        increase >= 40.0,
        "increase() must see the first burst, got {increase}"
    );
    // What the fleet's recording rules read (`authwatch rules`).
    let recorded = prometheus
        .query("sum without (endpoint, error_class, service_name, otel_metric_overflow) (increase(authwatch_dependency_errors_total[1m]))")
        .await
        .unwrap();
    assert!(
        recorded >= 40.0,
        "the recording rule must see the first burst, got {recorded}"
    );
    assert_eq!(
        prometheus.query(r#"up{job="authwatch"}"#).await,
        Some(1.0),
        "the OpenMetrics scrape with _created is healthy"
    );
}
