//! Browser apps: the OTLP/HTTP receiver's `cors`. First raw requests with an `Origin` header
//! (the preflight and the POST, from an allowed and from a refused origin) and their CORS
//! headers and status codes; then a page served on loopback and loaded in headless Chromium,
//! instrumented with the OpenTelemetry JavaScript SDK from npm (`tests/browser/`, bundled with
//! esbuild), exports client spans cross-origin to authwatch, which forwards them to a real OTLP
//! server. The same page loaded from an origin that is not allowed cannot export.
//!
//! Needs Chromium (`AUTHWATCH_TEST_CHROMIUM`, else `/usr/bin/chromium`) and, unless
//! `tests/browser/dist/app.js` is already built, Node.js with npm: `scripts/test.sh` installs
//! both (Debian `chromium`, `nodejs`, `npm`) and builds the bundle.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use authwatch_core::otlp::common::v1::any_value::Value as AnyValue;
use authwatch_core::otlp::trace::v1::span::SpanKind;
use authwatch_testkit::otlp_server::OtlpServer;

use common::*;

const HANG_GUARD: Duration = Duration::from_secs(60);

fn chromium() -> PathBuf {
    let p = std::env::var_os("AUTHWATCH_TEST_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    assert!(
        p.exists(),
        "headless Chromium is needed at {} for the browser test: run `apt-get install -y chromium` \
         (scripts/test.sh does) or set AUTHWATCH_TEST_CHROMIUM to a Chromium binary",
        p.display()
    );
    p
}

/// `tests/browser/dist/app.js`, built with `npm ci && npm run build` when missing.
fn bundle() -> PathBuf {
    let dir = repo().join("tests/browser");
    let built = dir.join("dist/app.js");
    if !built.exists() {
        for args in [&["ci", "--no-audit", "--no-fund"][..], &["run", "build"]] {
            let status = Command::new("npm")
                .args(args)
                .current_dir(&dir)
                .status()
                .unwrap_or_else(|e| {
                    panic!(
                        "npm is needed to build the browser fixture ({e}): run `apt-get install -y nodejs npm` \
                         (scripts/test.sh does), then `cd tests/browser && npm ci && npm run build`"
                    )
                });
            assert!(
                status.success(),
                "`npm {}` failed in {}",
                args.join(" "),
                dir.display()
            );
        }
    }
    assert!(built.exists(), "{} was not built", built.display());
    built
}

/// A tiny static server for the page and its bundle, on loopback, on its own thread.
fn serve_page(listener: TcpListener, bundle: PathBuf) {
    let html = std::fs::read(repo().join("tests/browser/index.html")).expect("index.html");
    let js = std::fs::read(bundle).expect("the bundle");
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().expect("clone the stream"));
            let mut request_line = String::new();
            if reader.read_line(&mut request_line).is_err() {
                continue;
            }
            // Skip the headers.
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                line.clear();
            }
            let path = request_line.split(' ').nth(1).unwrap_or("/");
            let path = path.split('?').next().unwrap_or("/");
            let (status, ctype, body): (&str, &str, &[u8]) = match path {
                "/" | "/index.html" => ("200 OK", "text/html; charset=utf-8", &html),
                "/app.js" => ("200 OK", "text/javascript; charset=utf-8", &js),
                _ => ("404 Not Found", "text/plain", b"not found"),
            };
            let head = format!(
                "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(body);
        }
    });
}

/// Loads `url` in headless Chromium and returns the DOM once the page has settled.
fn browse(profile: &Path, url: &str) -> String {
    let out = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--virtual-time-budget=15000",
            "--dump-dom",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(url)
        .output()
        .expect("run chromium");
    assert!(
        out.status.success(),
        "chromium failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn header<'a>(r: &'a reqwest::Response, name: &str) -> Option<&'a str> {
    r.headers().get(name).and_then(|v| v.to_str().ok())
}

/// The spans the backend received from `service`.
fn spans_of(backend: &OtlpServer, service: &str) -> Vec<authwatch_core::otlp::trace::v1::Span> {
    backend
        .traces()
        .into_iter()
        .flat_map(|t| t.resource_spans)
        .filter(|rs| {
            rs.resource.as_ref().is_some_and(|r| {
                r.attributes.iter().any(|kv| {
                    kv.key == "service.name"
                        && kv.value.as_ref().and_then(|v| v.value.as_ref())
                            == Some(&AnyValue::StringValue(service.to_owned()))
                })
            })
        })
        .flat_map(|rs| rs.scope_spans)
        .flat_map(|ss| ss.spans)
        .collect()
}

const JSON_SPAN: &str = r#"{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"SERVICE"}}]},"scopeSpans":[{"spans":[{"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174","name":"POST","kind":3,"attributes":[{"key":"server.address","value":{"stringValue":"tenant.us.auth0.com"}}]}]}]}]}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browsers_send_spans_through_cors() {
    let bundle = bundle();
    let backend = OtlpServer::start().await;
    let page_listener = TcpListener::bind("127.0.0.1:0").expect("bind the page server");
    let page_port = page_listener.local_addr().unwrap().port();
    serve_page(page_listener, bundle);
    let (h, m) = (free_port(), free_port());
    let page_origin = format!("http://127.0.0.1:{page_port}");
    let yaml = format!(
        "
receivers:
  otlp:
    protocols:
      http:
        endpoint: '127.0.0.1:{h}'
        cors:
          allowed_origins: ['http://127.0.0.1:*']
          allowed_headers: [x-tenant]
          max_age: 600
exporters:
  otlp:
    endpoint: 'http://{bg}'
    tls: {{insecure: true}}
    retry_on_failure: {{initial_interval: 100ms, max_interval: 1s}}
service:
  telemetry: {{metrics: {{address: '127.0.0.1:{m}'}}}}
  pipelines:
    traces: {{receivers: [otlp], exporters: [otlp]}}
",
        bg = backend.grpc_addr(),
    );
    let aw = Authwatch::start(&yaml);
    let traces_url = format!("http://127.0.0.1:{h}/v1/traces");
    let http = reqwest::Client::new();

    // --- raw requests: an allowed origin, preflight included ---
    let preflight = |origin: &str, headers: &str| {
        http.request(reqwest::Method::OPTIONS, &traces_url)
            .header("Origin", origin)
            .header("Access-Control-Request-Method", "POST")
            .header("Access-Control-Request-Headers", headers)
            .send()
    };
    let r = preflight(&page_origin, "content-type,x-tenant")
        .await
        .unwrap();
    assert_eq!(r.status(), 204, "{r:?}");
    assert_eq!(
        header(&r, "access-control-allow-origin"),
        Some(page_origin.as_str())
    );
    assert_eq!(header(&r, "access-control-allow-credentials"), Some("true"));
    assert_eq!(header(&r, "access-control-allow-methods"), Some("POST"));
    assert_eq!(
        header(&r, "access-control-allow-headers"),
        Some("content-type,x-tenant")
    );
    assert_eq!(header(&r, "access-control-max-age"), Some("600"));
    let post = |origin: &str, service: &str| {
        http.post(&traces_url)
            .header("Origin", origin)
            .header("Content-Type", "application/json")
            .header("x-tenant", "raw")
            .body(JSON_SPAN.replace("SERVICE", service))
            .send()
    };
    let r = post(&page_origin, "raw-allowed").await.unwrap();
    assert_eq!(r.status(), 200, "{r:?}");
    assert_eq!(
        header(&r, "access-control-allow-origin"),
        Some(page_origin.as_str())
    );
    assert_eq!(header(&r, "access-control-allow-credentials"), Some("true"));
    // Errors carry the CORS headers too, so the page can read them.
    let r = http
        .post(&traces_url)
        .header("Origin", &page_origin)
        .header("Content-Type", "application/json")
        .body("{")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400, "{r:?}");
    assert_eq!(
        header(&r, "access-control-allow-origin"),
        Some(page_origin.as_str())
    );

    // --- a refused origin, and a header that is not allowed ---
    let evil = "https://evil.example.net";
    let r = preflight(evil, "content-type").await.unwrap();
    assert_eq!(r.status(), 403, "{r:?}");
    assert_eq!(header(&r, "access-control-allow-origin"), None);
    assert_eq!(header(&r, "access-control-allow-credentials"), None);
    let r = preflight(&page_origin, "content-type,x-secret")
        .await
        .unwrap();
    assert_eq!(r.status(), 403, "{r:?}");
    assert_eq!(header(&r, "access-control-allow-origin"), None);
    // A POST from it is served as one without `Origin` (as the Collector does): no CORS headers,
    // so a browser would hide the answer; a browser never sends it, the preflight failed.
    let r = post(evil, "raw-refused").await.unwrap();
    assert_eq!(r.status(), 200, "{r:?}");
    assert_eq!(header(&r, "access-control-allow-origin"), None);
    assert_eq!(header(&r, "vary"), Some("Origin"));
    assert!(
        eventually(HANG_GUARD, async || spans_of(&backend, "raw-allowed").len()
            == 1)
        .await,
        "the allowed origin's span arrives"
    );

    // --- a real browser: the OpenTelemetry JavaScript SDK exports cross-origin ---
    let scratch = Scratch::new("browser");
    let page = format!("{page_origin}/index.html?otlp={traces_url}&service=browser-app&spans=10");
    let dom = tokio::task::spawn_blocking({
        let profile = scratch.0.join("profile-allowed");
        move || browse(&profile, &page)
    })
    .await
    .unwrap();
    assert!(
        dom.contains("exported 10 spans: SUCCESS"),
        "the page should report a successful export:\n{dom}\nauthwatch:\n{}",
        aw.output()
    );
    assert!(
        eventually(HANG_GUARD, async || spans_of(&backend, "browser-app").len()
            == 10)
        .await,
        "the browser's 10 spans arrive at the backend; got {}",
        spans_of(&backend, "browser-app").len()
    );
    let spans = spans_of(&backend, "browser-app");
    assert!(spans.iter().all(|s| s.kind == SpanKind::Client as i32));
    let errors = spans
        .iter()
        .filter(|s| {
            s.attributes.iter().any(|kv| {
                kv.key == "http.response.status_code"
                    && kv.value.as_ref().and_then(|v| v.value.as_ref())
                        == Some(&AnyValue::IntValue(503))
            })
        })
        .count();
    assert_eq!(errors, 4, "every third span of 10 is a 503");

    // The same page from an origin that is not allowed (`localhost` is not `127.0.0.1`): the
    // preflight is refused, the browser does not send, the page reports the failure.
    let refused_page = format!(
        "http://localhost:{page_port}/index.html?otlp={traces_url}&service=browser-refused&spans=3"
    );
    let dom = tokio::task::spawn_blocking({
        let profile = scratch.0.join("profile-refused");
        move || browse(&profile, &refused_page)
    })
    .await
    .unwrap();
    assert!(dom.contains("export failed"), "{dom}");
    assert!(spans_of(&backend, "browser-refused").is_empty());
    assert!(aw.output().contains("OTLP HTTP receiver listening"));
}
