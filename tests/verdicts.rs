//! The verdict scorecard: a sequence of scripted incidents against the project's test identity
//! provider (`crates/authwatch-testkit/oauth/server.py`, switched by its knobs while it runs),
//! watched by the real authwatch binary: its `synthetic` receiver probes the provider every
//! second through a TCP proxy that can refuse connections, and an application (this test) logs
//! real users in through the same proxy, ten times a second, and sends a client span per call
//! over OTLP/gRPC. Every alert event reaches a real OTLP backend; each firing alert's verdict is
//! compared with the verdict a person would give. The scorecard is printed; it must be 100%.
//!
//! Incidents: provider 5xx, timeouts and refused connections; a missing claim, a wrong issuer,
//! `invalid_client`, `unauthorized_client`, an Action that denies logins, a locked probe user; the
//! application's own calls to a wrong port, 5xx on an endpoint the probes do not use, a
//! rate-limit storm from the application; one failed request; overlapping and back-to-back
//! incidents; and the example of issue 17 (the application's connection-refused calls stop, then
//! a missing claim: `tenant_issue`, not `provider_outage`), on the test's shorter time scale
//! (verdict window 1m, half-life 5s).

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use authwatch_core::otlp::collector::trace::v1::trace_service_client::TraceServiceClient;
use authwatch_core::otlp::collector::trace::v1::ExportTraceServiceRequest;
use authwatch_core::otlp::common::v1::any_value;
use authwatch_core::otlp::trace::v1::{span, status, ResourceSpans, ScopeSpans, Span, Status};
use authwatch_testkit::oauth_server::{self as srv, OAuthOptions, OAuthServer};
use authwatch_testkit::otlp_server::OtlpServer;
use authwatch_testkit::tcp_proxy::TcpProxy;
use authwatch_testkit::{kv, kv_int, resource};
use common::*;
use serde_json::json;

const WAIT: Duration = Duration::from_secs(45);

// === the application ===

/// What the application does besides its healthy logins.
#[derive(Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Extra {
    None = 0,
    /// Ten calls a second to a port where nothing listens (its own misconfiguration).
    WrongPort = 1,
    /// Ten calls a second to `/api/v2/users/{id}`, an endpoint the probes do not use.
    Api = 2,
    /// Fifty logins a second on top of the usual ten.
    Storm = 3,
}

struct App {
    spans: Arc<Mutex<Vec<Span>>>,
    http: reqwest::Client,
    token_url: String,
    api_url: String,
    wrong_url: String,
    extra: AtomicU8,
    next_id: AtomicU64,
}

fn unix_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

impl App {
    /// One call, recorded as an HTTP client span the way an instrumented client writes it.
    async fn call(self: Arc<Self>, url: String, login: bool) {
        let start = unix_nanos();
        let req = if login {
            self.http.post(&url).form(&[
                ("grant_type", "password"),
                ("client_id", srv::PUBLIC_CLIENT_ID),
                ("username", srv::APP_USERNAME),
                ("password", srv::APP_PASSWORD),
                ("audience", srv::AUDIENCE),
            ])
        } else {
            self.http.get(&url)
        };
        let (host, port) = url
            .trim_start_matches("http://")
            .split('/')
            .next()
            .and_then(|h| h.split_once(':'))
            .map(|(h, p)| (h.to_owned(), p.parse::<i64>().unwrap_or(0)))
            .unwrap_or_default();
        let mut attrs = vec![
            kv("http.request.method", if login { "POST" } else { "GET" }),
            kv("server.address", &host),
            kv_int("server.port", port),
            kv("url.full", &url),
        ];
        let failed = match req.send().await {
            Ok(resp) => {
                let code = resp.status().as_u16();
                attrs.push(kv_int("http.response.status_code", i64::from(code)));
                let body: serde_json::Value = resp.json().await.unwrap_or_default();
                if let Some(e) = body["error"].as_str() {
                    attrs.push(kv("oauth.error", e));
                }
                if code >= 400 {
                    attrs.push(kv("error.type", &code.to_string()));
                }
                code >= 400
            }
            Err(e) => {
                let t = if e.is_timeout() {
                    "timeout"
                } else {
                    "connection_refused"
                };
                attrs.push(kv("error.type", t));
                true
            }
        };
        let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        let mut trace_id = [7u8; 16];
        trace_id[..8].copy_from_slice(&id.to_be_bytes());
        self.spans.lock().unwrap().push(Span {
            trace_id: trace_id.to_vec(),
            span_id: id.to_be_bytes().to_vec(),
            name: if login { "POST" } else { "GET" }.into(),
            kind: span::SpanKind::Client as i32,
            start_time_unix_nano: start,
            end_time_unix_nano: unix_nanos(),
            attributes: attrs,
            status: Some(Status {
                code: if failed {
                    status::StatusCode::Error as i32
                } else {
                    status::StatusCode::Unset as i32
                },
                message: String::new(),
            }),
            ..Default::default()
        });
    }

    /// Ten healthy logins a second plus the extra traffic; the spans go out every 200ms.
    fn run(self: Arc<Self>, grpc: u16) {
        let app = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(100));
            loop {
                tick.tick().await;
                tokio::spawn(app.clone().call(app.token_url.clone(), true));
                let extra = app.extra.load(Ordering::Relaxed);
                let (url, n, login) = match extra {
                    x if x == Extra::WrongPort as u8 => (app.wrong_url.clone(), 1, true),
                    x if x == Extra::Api as u8 => (app.api_url.clone(), 1, false),
                    x if x == Extra::Storm as u8 => (app.token_url.clone(), 5, true),
                    _ => continue,
                };
                for _ in 0..n {
                    tokio::spawn(app.clone().call(url.clone(), login));
                }
            }
        });
        tokio::spawn(async move {
            let mut client = TraceServiceClient::connect(format!("http://127.0.0.1:{grpc}"))
                .await
                .expect("connect to authwatch's OTLP receiver");
            let mut tick = tokio::time::interval(Duration::from_millis(200));
            loop {
                tick.tick().await;
                let spans = std::mem::take(&mut *self.spans.lock().unwrap());
                if spans.is_empty() {
                    continue;
                }
                let req = ExportTraceServiceRequest {
                    resource_spans: vec![ResourceSpans {
                        resource: Some(resource("web")),
                        scope_spans: vec![ScopeSpans {
                            spans,
                            ..Default::default()
                        }],
                        ..Default::default()
                    }],
                };
                client
                    .export(req)
                    .await
                    .expect("authwatch accepts the spans");
            }
        });
    }

    fn set(&self, extra: Extra) {
        self.extra.store(extra as u8, Ordering::Relaxed);
    }
}

// === alert events ===

#[derive(Debug, Clone)]
struct AlertEvent {
    name: String,
    state: String,
    verdict: String,
    reason: String,
    resend: bool,
}

fn events(backend: &OtlpServer) -> Vec<AlertEvent> {
    let text = |attrs: &[authwatch_core::otlp::common::v1::KeyValue], k: &str| {
        attrs
            .iter()
            .find(|kv| kv.key == k)
            .and_then(|kv| kv.value.as_ref()?.value.as_ref())
            .map(|v| match v {
                any_value::Value::StringValue(s) => s.clone(),
                any_value::Value::BoolValue(b) => b.to_string(),
                other => format!("{other:?}"),
            })
            .unwrap_or_default()
    };
    backend
        .logs()
        .iter()
        .flat_map(|r| &r.resource_logs)
        .flat_map(|r| &r.scope_logs)
        .flat_map(|s| &s.log_records)
        .map(|r| AlertEvent {
            name: text(&r.attributes, "alert.name"),
            state: text(&r.attributes, "alert.state"),
            verdict: text(&r.attributes, "alert.verdict"),
            reason: text(&r.attributes, "alert.verdict.reason"),
            resend: text(&r.attributes, "alert.resend") == "true",
        })
        .collect()
}

// === the scorecard ===

struct World {
    idp: OAuthServer,
    proxy: TcpProxy,
    app: Arc<App>,
    backend: OtlpServer,
    aw: Authwatch,
    status_url: String,
    /// `(incident, alert, expected, got, right)`.
    card: Vec<(String, String, String, String, bool)>,
    seen: usize,
    /// The incident being scored and its expected verdicts.
    last: (String, Vec<(String, String)>),
}

impl World {
    fn firing_now(&self) -> Vec<String> {
        let mut last: BTreeMap<String, String> = BTreeMap::new();
        for e in events(&self.backend) {
            last.insert(e.name, e.state);
        }
        last.into_iter()
            .filter(|(_, s)| s == "firing")
            .map(|(n, _)| n)
            .collect()
    }

    async fn wait(&self, what: &str, mut f: impl FnMut(&World) -> bool) {
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline {
            if f(self) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "timed out waiting for {what}; events: {:#?}\nauthwatch output:\n{}",
            events(&self.backend),
            self.aw.output()
        );
    }

    /// Waits until every alert resolved; an alert that fired again meanwhile (flapping while
    /// the incident ends) is scored with the incident.
    async fn calm(&mut self) {
        self.wait("every alert to resolve", |w| w.firing_now().is_empty())
            .await;
        let all = events(&self.backend);
        let (incident, expected) = self.last.clone();
        for e in all[self.seen..]
            .iter()
            .filter(|e| e.state == "firing" && !e.resend)
        {
            let want = expected
                .iter()
                .find(|(a, _)| *a == e.name)
                .map_or("(no alert)", |x| x.1.as_str());
            self.score(&incident, &e.name, want, &e.verdict, &e.reason);
        }
        self.seen = all.len();
    }

    /// Waits until every expected alert fired, then scores every new firing event.
    async fn expect(&mut self, incident: &str, expected: &[(&str, &str)]) {
        let from = self.seen;
        self.last = (
            incident.to_owned(),
            expected
                .iter()
                .map(|(a, v)| (a.to_string(), v.to_string()))
                .collect(),
        );
        self.wait(&format!("{incident}: {expected:?} to fire"), |w| {
            let new = &events(&w.backend)[from..];
            expected
                .iter()
                .all(|(a, _)| new.iter().any(|e| e.name == *a && e.state == "firing"))
        })
        .await;
        let all = events(&self.backend);
        for e in all[from..]
            .iter()
            .filter(|e| e.state == "firing" && !e.resend)
        {
            let want = expected
                .iter()
                .find(|(a, _)| *a == e.name)
                .map_or("(no alert)", |x| x.1);
            self.score(incident, &e.name, want, &e.verdict, &e.reason);
        }
        self.seen = all.len();
    }

    /// For an alert that keeps firing from one incident into the next: its re-sends must come to
    /// say the new verdict (recency at work); scored once.
    async fn expect_resend(&mut self, incident: &str, alert: &str, want: &str) {
        let from = self.seen;
        self.last = (
            incident.to_owned(),
            vec![(alert.to_owned(), want.to_owned())],
        );
        self.wait(&format!("{incident}: {alert} to say {want}"), |w| {
            events(&w.backend)[from..]
                .iter()
                .any(|e| e.name == alert && e.state == "firing" && e.verdict == want)
        })
        .await;
        let all = events(&self.backend);
        let e = all[from..]
            .iter()
            .find(|e| e.name == alert && e.verdict == want)
            .unwrap();
        self.score(incident, alert, want, &e.verdict, &e.reason);
        for e in all[from..]
            .iter()
            .filter(|e| e.state == "firing" && !e.resend && e.name != alert)
        {
            self.score(incident, &e.name, "(no alert)", &e.verdict, &e.reason);
        }
        self.seen = all.len();
    }

    /// No alert fires for a while, and the status page's verdict is not an outage.
    async fn expect_quiet(&mut self, incident: &str, quiet: Duration) {
        let from = self.seen;
        tokio::time::sleep(quiet).await;
        let all = events(&self.backend);
        for e in all[from..]
            .iter()
            .filter(|e| e.state == "firing" && !e.resend)
        {
            self.score(incident, &e.name, "(no alert)", &e.verdict, &e.reason);
        }
        self.seen = all.len();
        let page: serde_json::Value = reqwest::get(&self.status_url)
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let dep = page["dependencies"]
            .as_array()
            .and_then(|d| d.iter().find(|d| d["name"] == "auth0"))
            .cloned()
            .unwrap_or_default();
        let got = dep["verdict"].as_str().unwrap_or("unknown").to_owned();
        let ok = got == "healthy" || got == "transient";
        let reason = dep["verdict_reason"].as_str().unwrap_or("").to_owned();
        println!(
            "  {incident:<28} {:<16} {got:<18} {}  {reason}",
            "status page",
            if ok { "ok" } else { "WRONG" }
        );
        self.card.push((
            incident.into(),
            "status page".into(),
            "healthy or transient".into(),
            got,
            ok,
        ));
    }

    fn score(&mut self, incident: &str, alert: &str, want: &str, got: &str, reason: &str) {
        let ok = want == got;
        println!(
            "  {incident:<28} {alert:<16} {got:<18} {}  {reason}",
            if ok { "ok" } else { "WRONG" }
        );
        self.card
            .push((incident.into(), alert.into(), want.into(), got.into(), ok));
    }

    async fn knobs(&self, k: serde_json::Value) {
        self.idp.control(k).await;
    }

    async fn healthy(&self) {
        self.knobs(json!({"mode": null, "locked": [], "rate_limit": 0, "api_status": 200}))
            .await;
        self.app.set(Extra::None);
    }
}

async fn start() -> World {
    let idp = OAuthServer::start(OAuthOptions::default()).await;
    let proxy = TcpProxy::start(format!("127.0.0.1:{}", idp.port()).parse().unwrap()).await;
    let backend = OtlpServer::start().await;
    let (grpc, page, wrong, telemetry) = (free_port(), free_port(), free_port(), free_port());
    let token_url = format!("http://127.0.0.1:{}/oauth/token", proxy.port());
    let yaml = format!(
        "
receivers:
  otlp:
    protocols:
      grpc: {{endpoint: '127.0.0.1:{grpc}'}}
  synthetic:
    interval: 1s
    timeout: 1s
    initial_delay: 100ms
    blocked_backoff: 1s
    checks:
      - name: login
        type: password_grant
        token_url: '{token_url}'
        client_id: {client}
        client_secret: {secret}
        username: {user}
        password: {password}
        audience: {audience}
        scope: openid
        validate_token:
          issuer: '{issuer}'
          audience: {audience}
          require_claims: {{'{claim}': true}}
connectors:
  error_rate:
    dependencies:
      - {{name: auth0, server_address: ['127.0.0.1']}}
    metrics_flush_interval: 200ms
  alerts:
    resend_interval: 1s
    verdict: {{window: 1m, half_life: 5s, min_requests: 10}}
    rules:
      - name: traffic_errors
        threshold: {{dependency: auth0, source: traffic, error_ratio: 0.2, resolve_error_ratio: 0.05, window: 5s, min_requests: 10}}
      - name: probe_failing
        consecutive: {{failures: 2, successes: 1}}
exporters:
  otlp/alerts:
    endpoint: 'http://{backend}'
    tls: {{insecure: true}}
    retry_on_failure: {{initial_interval: 100ms, max_interval: 1s}}
extensions:
  status_page: {{endpoint: '127.0.0.1:{page}'}}
service:
  extensions: [status_page]
  telemetry: {{metrics: {{address: '127.0.0.1:{telemetry}'}}}}
  pipelines:
    traces: {{receivers: [otlp, synthetic], exporters: [error_rate]}}
    metrics: {{receivers: [error_rate, synthetic], exporters: [alerts]}}
    logs: {{receivers: [alerts], exporters: [otlp/alerts]}}
",
        client = srv::CLIENT_ID,
        secret = srv::CLIENT_SECRET,
        user = srv::USERNAME,
        password = srv::PASSWORD,
        audience = srv::AUDIENCE,
        issuer = idp.issuer(),
        claim = srv::CLAIM,
        backend = backend.grpc_addr(),
    );
    let aw = Authwatch::start(&yaml);
    let app = Arc::new(App {
        spans: Arc::default(),
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(1))
            .build()
            .unwrap(),
        token_url,
        api_url: format!("http://127.0.0.1:{}/api/v2/users/42", proxy.port()),
        wrong_url: format!("http://127.0.0.1:{wrong}/oauth/token"),
        extra: AtomicU8::new(Extra::None as u8),
        next_id: AtomicU64::new(0),
    });
    app.clone().run(grpc);
    World {
        idp,
        proxy,
        app,
        backend,
        aw,
        status_url: format!("http://127.0.0.1:{page}/api/v1/status"),
        card: Vec::new(),
        seen: 0,
        last: Default::default(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verdict_scorecard_is_100_percent_on_the_scripted_incidents() {
    let t0 = Instant::now();
    let mut w = start().await;
    // Warm up: probes pass and traffic flows, with no alert.
    w.wait("the status page to show auth0", |_| true).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    w.seen = events(&w.backend).len();
    println!("verdict scorecard: incident, alert, verdict, result, reason");

    // The provider answers 5xx to everyone.
    w.knobs(json!({"mode": "error500"})).await;
    w.expect(
        "provider 5xx",
        &[
            ("probe_failing", "provider_outage"),
            ("traffic_errors", "provider_outage"),
        ],
    )
    .await;
    w.healthy().await;
    w.calm().await;

    // The tenant's Action stops adding the claim: logins work, the probe's token lacks it.
    w.knobs(json!({"mode": "no_claim"})).await;
    w.expect("missing claim", &[("probe_failing", "tenant_issue")])
        .await;
    w.healthy().await;
    w.calm().await;

    // Back to back: the provider stops answering in time, then recovers into a tenant
    // misconfiguration (tokens with another issuer) with no healthy run between.
    w.knobs(json!({"mode": "slow", "delay": 2.5})).await;
    w.expect(
        "provider timeouts",
        &[
            ("probe_failing", "provider_outage"),
            ("traffic_errors", "provider_outage"),
        ],
    )
    .await;
    w.knobs(json!({"mode": "wrong_issuer"})).await;
    w.expect_resend("then a wrong issuer", "probe_failing", "tenant_issue")
        .await;
    w.healthy().await;
    w.calm().await;

    // The provider's endpoint refuses connections.
    w.proxy.down().await;
    w.expect(
        "connection refused",
        &[
            ("probe_failing", "provider_outage"),
            ("traffic_errors", "provider_outage"),
        ],
    )
    .await;
    w.proxy.up().await;
    w.calm().await;

    // Issue 17's example: the application's own calls to a wrong port fail and stop; a while
    // later the claim goes missing.
    w.app.set(Extra::WrongPort);
    w.expect(
        "app's wrong port",
        &[("traffic_errors", "application_issue")],
    )
    .await;
    w.app.set(Extra::None);
    w.calm().await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    w.knobs(json!({"mode": "no_claim"})).await;
    w.expect("then a missing claim", &[("probe_failing", "tenant_issue")])
        .await;
    w.healthy().await;
    w.calm().await;

    for (incident, knobs) in [
        ("invalid_client", json!({"mode": "invalid_client"})),
        (
            "unauthorized_client",
            json!({"mode": "unauthorized_client"}),
        ),
        ("action denies logins", json!({"mode": "action_error"})),
        ("locked probe user", json!({"locked": [srv::USERNAME]})),
        ("wrong audience", json!({"mode": "wrong_audience"})),
    ] {
        w.knobs(knobs).await;
        w.expect(incident, &[("probe_failing", "tenant_issue")])
            .await;
        w.healthy().await;
        w.calm().await;
    }

    // 5xx only on an endpoint the probes do not use.
    w.knobs(json!({"api_status": 503})).await;
    w.app.set(Extra::Api);
    w.expect(
        "5xx off the probes' path",
        &[("traffic_errors", "application_issue")],
    )
    .await;
    w.healthy().await;
    w.calm().await;

    // A rate-limit storm from the application itself: the tenant allows 15 logins a second.
    w.knobs(json!({"rate_limit": 15})).await;
    w.app.set(Extra::Storm);
    w.expect(
        "app's rate-limit storm",
        &[("traffic_errors", "application_issue")],
    )
    .await;
    w.healthy().await;
    w.calm().await;

    // Overlapping: the application's wrong port and a missing claim at once.
    w.app.set(Extra::WrongPort);
    w.knobs(json!({"mode": "no_claim"})).await;
    w.expect(
        "overlap: wrong port + claim",
        &[
            ("traffic_errors", "application_issue"),
            ("probe_failing", "tenant_issue"),
        ],
    )
    .await;
    w.healthy().await;
    w.calm().await;

    // A single failed request, once the last incident's errors are over (a clean run of calls).
    tokio::time::sleep(Duration::from_secs(8)).await;
    w.calm().await;
    w.app.clone().call(w.app.wrong_url.clone(), true).await;
    w.expect_quiet("a single failed request", Duration::from_secs(3))
        .await;

    let right = w.card.iter().filter(|c| c.4).count();
    let total = w.card.len();
    println!(
        "verdict accuracy: {right}/{total} ({:.0}%) over {} scripted incidents in {:.0?}",
        100.0 * right as f64 / total.max(1) as f64,
        w.card
            .iter()
            .map(|c| &c.0)
            .collect::<std::collections::BTreeSet<_>>()
            .len(),
        t0.elapsed()
    );
    let wrong: Vec<_> = w.card.iter().filter(|c| !c.4).collect();
    assert!(
        wrong.is_empty(),
        "wrong verdicts: {wrong:#?}\nauthwatch output:\n{}",
        w.aw.output()
    );
}
