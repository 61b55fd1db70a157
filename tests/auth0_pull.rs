//! `auth0_logs` pull mode against the Auth0 Management API stand-in
//! (`crates/authwatch-testkit/auth0/mgmt_server.py`), through the real binary to a real OTLP
//! server: 10,000 events read completely, in order and once across a `kill -9` and a restart;
//! push and pull on together, also across a `kill -9` (the dedupe kept on disk); and the faults (a malformed page, a `Link` to another host, 429s,
//! 500s, the token endpoint down, a corrupt checkpoint). No secret reaches the output.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use authwatch_core::otlp::common::v1::any_value;
use authwatch_testkit::auth0_server::{self, Auth0Server};
use authwatch_testkit::otlp_server::OtlpServer;
use common::*;

const WAIT: Duration = Duration::from_secs(180);

/// The `auth0.log_id` of every log record the backend received, in arrival order.
fn received_ids(backend: &OtlpServer) -> Vec<String> {
    backend
        .logs()
        .iter()
        .flat_map(|r| &r.resource_logs)
        .flat_map(|r| &r.scope_logs)
        .flat_map(|s| &s.log_records)
        .filter_map(|l| {
            l.attributes
                .iter()
                .find(|a| a.key == "auth0.log_id")
                .and_then(|a| match a.value.as_ref()?.value.as_ref()? {
                    any_value::Value::StringValue(s) => Some(s.clone()),
                    _ => None,
                })
        })
        .collect()
}

struct Setup<'a> {
    tenant: &'a Auth0Server,
    backend: &'a OtlpServer,
    storage: &'a std::path::Path,
    /// `endpoint` and `authorization` of the webhook, when push is on too.
    push: Option<u16>,
    extra: &'a str,
}

fn config(s: &Setup) -> String {
    let push = match s.push {
        Some(port) => format!(
            "    endpoint: 127.0.0.1:{port}\n    authorization: \"Bearer ${{env:STREAM_TOKEN}}\"\n"
        ),
        None => String::new(),
    };
    format!(
        "
receivers:
  auth0_logs:
{push}    pull:
      domain: {domain}
      endpoint: {url}
      client_id: {client_id}
      client_secret: ${{env:AUTH0_LOGS_CLIENT_SECRET}}
      start_at: 1h
      interval: 1s
      requests_per_second: 50
      max_share: 1
      storage: '{st}'
{extra}
exporters:
  otlp:
    endpoint: 'http://{bg}'
    tls: {{insecure: true}}
    timeout: 5s
    sending_queue: {{num_consumers: 1, queue_size: 5000, storage: '{st}'}}
    retry_on_failure: {{initial_interval: 100ms, max_interval: 1s, max_elapsed_time: 0s}}
service:
  shutdown_timeout: 5s
  telemetry: {{metrics: {{level: none}}}}
  pipelines:
    logs: {{receivers: [auth0_logs], exporters: [otlp]}}
",
        domain = auth0_server::DOMAIN,
        url = s.tenant.url(),
        client_id = auth0_server::CLIENT_ID,
        st = s.storage.display(),
        bg = s.backend.grpc_addr(),
        extra = s.extra,
    )
}

const ENV: &[(&str, &str)] = &[
    ("AUTH0_LOGS_CLIENT_SECRET", auth0_server::CLIENT_SECRET),
    ("STREAM_TOKEN", "stream-t0ken-Hq2"),
];

fn start(yaml: &str) -> Authwatch {
    Authwatch::start_with_env(yaml, ENV)
}

fn kill9(mut aw: Authwatch) -> String {
    aw.signal("KILL");
    let status = aw.wait(Duration::from_secs(10));
    assert_eq!(status.code(), None, "killed by a signal");
    aw.output()
}

/// A tenant with generated events, a backend, scratch storage and authwatch's config for them.
struct Run {
    tenant: Auth0Server,
    backend: OtlpServer,
    storage: Scratch,
    /// The webhook's port, when push is on too.
    push_port: Option<u16>,
    yaml: String,
}

/// `events` events over the last `span`; the `hold_at`th page request is held when set.
async fn prepare(
    name: &str,
    events: usize,
    span: Duration,
    hold_at: Option<u32>,
    push: bool,
    extra: &str,
) -> Run {
    let tenant = Auth0Server::start().await;
    tenant.generate(events, span).await;
    if let Some(n) = hold_at {
        tenant.control(serde_json::json!({ "hold_at": n })).await;
    }
    let backend = OtlpServer::start().await;
    let storage = Scratch::new(name);
    let push_port = push.then(free_port);
    let yaml = config(&Setup {
        tenant: &tenant,
        backend: &backend,
        storage: &storage.0,
        push: push_port,
        extra,
    });
    Run {
        tenant,
        backend,
        storage,
        push_port,
        yaml,
    }
}

/// Starts authwatch on `yaml` (off the async workers: it waits for the ports).
async fn launch(yaml: &str) -> Authwatch {
    let yaml = yaml.to_owned();
    tokio::task::spawn_blocking(move || start(&yaml))
        .await
        .unwrap()
}

/// The `from` cursor of the held page request.
async fn held_from(tenant: &Auth0Server) -> String {
    tenant
        .requests()
        .await
        .into_iter()
        .find(|r| r["held"] == true)
        .and_then(|r| r["query"].as_str().map(str::to_owned))
        .and_then(|q| {
            q.split('&')
                .find_map(|kv| kv.strip_prefix("from="))
                .map(str::to_owned)
        })
        .expect("the held request's from")
}

/// Waits until the backend has every event of the tenant, then until the puller has polled
/// twice more (so a duplicate would have had its chance), and returns what arrived.
async fn wait_complete(tenant: &Auth0Server, backend: &OtlpServer) -> (Vec<String>, Vec<String>) {
    let done = eventually(WAIT, async || {
        let want = tenant.log_ids().await;
        let got = received_ids(backend);
        let have: std::collections::HashSet<_> = got.iter().collect();
        want.iter().all(|id| have.contains(id))
    })
    .await;
    let want = tenant.log_ids().await;
    let got = received_ids(backend);
    assert!(
        done,
        "not every event arrived: {} of {} (e.g. missing {:?})",
        got.len(),
        want.len(),
        want.iter().find(|id| !got.contains(id))
    );
    let polls = tenant.requests().await.len();
    assert!(
        eventually(WAIT, async || tenant.requests().await.len() >= polls + 2).await,
        "the puller goes on polling"
    );
    // Whatever the last polls brought has been exported.
    tokio::time::sleep(Duration::from_millis(500)).await;
    (tenant.log_ids().await, received_ids(backend))
}

fn assert_once(want: &[String], got: &[String]) {
    let mut counts: HashMap<&String, usize> = HashMap::new();
    for id in got {
        *counts.entry(id).or_default() += 1;
    }
    let dups: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        dups.is_empty(),
        "{} log_ids arrived more than once, e.g. {:?}",
        dups.len(),
        &dups[..dups.len().min(3)]
    );
    let extra: Vec<_> = got.iter().filter(|id| !want.contains(id)).collect();
    assert!(
        extra.is_empty(),
        "unknown log_ids arrived: {:?}",
        &extra[..extra.len().min(3)]
    );
    assert_eq!(got.len(), want.len());
}

fn assert_no_secret(output: &str) {
    for secret in [
        auth0_server::CLIENT_SECRET,
        auth0_server::STREAM_AUTHORIZATION,
        "stream-t0ken-Hq2",
    ] {
        assert!(
            !output.contains(secret),
            "a secret is in the output:\n{output}"
        );
    }
    for line in output.lines() {
        assert!(
            !line.contains("Bearer "),
            "a bearer token is in the output: {line}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_events_in_order_exactly_once_across_kill_9() {
    // The 40th page request is held: authwatch is killed while it waits for it.
    let run = prepare(
        "auth0-pull-crash",
        10_000,
        Duration::from_secs(600),
        Some(40),
        false,
        "",
    )
    .await;
    let (tenant, backend) = (&run.tenant, &run.backend);
    let aw = launch(&run.yaml).await;
    assert!(
        eventually(WAIT, async || tenant.held().await).await,
        "the 40th page was asked for"
    );
    // What was read before the held request has been exported; then kill -9.
    let from = held_from(tenant).await;
    let before: Vec<String> = tenant
        .log_ids()
        .await
        .into_iter()
        .filter(|id| *id <= from)
        .collect();
    assert!(before.len() > 3000, "{} read before the kill", before.len());
    assert!(
        eventually(WAIT, async || received_ids(backend).len() >= before.len()).await,
        "the first run's events were exported"
    );
    let first = tokio::task::spawn_blocking(move || kill9(aw))
        .await
        .unwrap();
    assert_eq!(
        received_ids(backend),
        before,
        "the first run: in order, once"
    );
    tenant.release().await;

    let aw = launch(&run.yaml).await;
    let (want, got) = wait_complete(tenant, backend).await;
    assert!(want.len() > 10_000);
    assert_once(&want, &got);
    assert_eq!(got, want, "in log_id order");
    let second = aw.output();
    assert!(second.contains("resuming from the checkpoint"), "{second}");
    assert!(!first.contains("panicked") && !second.contains("panicked"));
    assert_no_secret(&first);
    assert_no_secret(&second);
    // Every request carried a valid token, and none went anywhere but the tenant.
    let requests = tenant.requests().await;
    assert!(requests
        .iter()
        .filter(|r| r["held"].is_null())
        .all(|r| r["token_ok"] == true));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_and_pull_together_deliver_each_event_once() {
    let run = prepare(
        "auth0-push-pull",
        10_000,
        Duration::from_secs(600),
        None,
        true,
        "",
    )
    .await;
    let (tenant, backend) = (&run.tenant, &run.backend);
    let push_port = run.push_port.expect("push is on");
    // The stream pushes the backlog while the puller reads it too.
    tenant
        .push_to(
            &format!("http://127.0.0.1:{push_port}/auth0/logs"),
            "Bearer stream-t0ken-Hq2",
            true,
        )
        .await;
    let aw = launch(&run.yaml).await;
    let (want, got) = wait_complete(tenant, backend).await;
    assert!(
        eventually(WAIT, async || tenant.push_state().await["queued"] == 0).await,
        "the stream pushed everything"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let got_after = received_ids(backend);
    let state = tenant.push_state().await;
    assert!(
        state["delivered"].as_u64().unwrap() > 1000,
        "push delivered: {state}"
    );
    assert!(got.len() <= got_after.len());
    assert_once(&tenant.log_ids().await, &got_after);
    assert!(want.len() > 10_000);
    assert_no_secret(&aw.output());
}

/// Push and pull on, with the dedupe kept in `storage`: the puller is held mid-way (page 40)
/// while the stream pushes the whole backlog, so push delivers ~6,000 records pull has not
/// read; then `kill -9` and a restart. Pull resumes from its checkpoint and reads those
/// records again: the ids loaded from the seen-ids file drop every one of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_and_pull_together_exactly_once_across_kill_9() {
    let run = prepare(
        "auth0-push-pull-crash",
        10_000,
        Duration::from_secs(600),
        Some(40),
        true,
        "",
    )
    .await;
    let (tenant, backend) = (&run.tenant, &run.backend);
    let push_port = run.push_port.expect("push is on");
    let aw = launch(&run.yaml).await;
    assert!(
        eventually(WAIT, async || tenant.held().await).await,
        "the 40th page was asked for"
    );
    let from = held_from(tenant).await;
    let pulled: Vec<String> = tenant
        .log_ids()
        .await
        .into_iter()
        .filter(|id| *id <= from)
        .collect();
    assert!(
        pulled.len() > 3000,
        "{} pulled before the push",
        pulled.len()
    );
    assert!(
        eventually(WAIT, async || received_ids(backend).len() >= pulled.len()).await,
        "the pulled events were exported"
    );
    assert_eq!(received_ids(backend), pulled, "pull: in order, once");

    // While the puller waits for page 40, the stream pushes everything.
    tenant
        .push_to(
            &format!("http://127.0.0.1:{push_port}/auth0/logs"),
            "Bearer stream-t0ken-Hq2",
            true,
        )
        .await;
    assert!(
        eventually(WAIT, async || tenant.push_state().await["queued"] == 0).await,
        "the stream pushed the backlog"
    );
    assert!(
        eventually(WAIT, async || {
            let want = tenant.log_ids().await;
            let got: std::collections::HashSet<_> = received_ids(backend).into_iter().collect();
            want.iter().all(|id| got.contains(id))
        })
        .await,
        "push delivered what pull had not read"
    );
    let state = tenant.push_state().await;
    assert_eq!(state["failed"], 0, "{state}");
    let before = received_ids(backend);
    assert!(
        before.len() >= pulled.len() + 5000,
        "push delivered {} records pull has not read",
        before.len() - pulled.len()
    );
    assert_eq!(&before[..pulled.len()], &pulled[..]);
    assert_once(&tenant.log_ids().await, &before);
    // Pull up to page 40, then push from there on: every event so far, in log_id order.
    assert_eq!(before, tenant.log_ids().await, "in log_id order");
    assert!(tenant.held().await, "pull is still held mid-way");
    // The exporter's queue has settled (nothing in flight to send again), then kill -9.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let first = tokio::task::spawn_blocking(move || kill9(aw))
        .await
        .unwrap();
    assert!(
        std::fs::read_dir(&run.storage.0).unwrap().any(|e| e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .ends_with(".seen")),
        "the seen-ids file is in storage"
    );
    tenant.release().await;

    let polls = tenant.requests().await.len();
    let aw = launch(&run.yaml).await;
    // Pull reads the pushed records again, from its checkpoint, in pages of 100 ...
    let pages = (before.len() - pulled.len()) / 100;
    let pages_after = async || {
        tenant.requests().await[polls..]
            .iter()
            .filter(|r| r["query"].as_str().is_some_and(|q| q.contains("from=")))
            .count()
    };
    assert!(
        eventually(WAIT, async || pages_after().await > pages).await,
        "pull read {} pages after the restart, not {pages}",
        pages_after().await
    );
    let (want, got) = wait_complete(tenant, backend).await;
    assert!(want.len() > 10_000);
    // ... and none of them went downstream twice.
    assert_once(&want, &got);
    assert_eq!(&got[..before.len()], &before[..]);
    let second = aw.output();
    assert!(second.contains("resuming from the checkpoint"), "{second}");
    assert!(
        second.contains("loaded the log_ids accepted before the restart"),
        "{second}"
    );
    assert!(!first.contains("panicked") && !second.contains("panicked"));
    assert_no_secret(&first);
    assert_no_secret(&second);
}

/// Every value of `authwatch.auth0.pull.requests`' `auth0.pull.outcome` the backend saw, and
/// the `authwatch.auth0.log_stream.status` points (status, value) of the last export.
fn pull_metrics(backend: &OtlpServer) -> (Vec<String>, Vec<(String, i64)>) {
    use authwatch_core::otlp::metrics::v1::{metric, number_data_point};
    let str_attr = |attrs: &[authwatch_core::otlp::common::v1::KeyValue], key: &str| {
        attrs.iter().find(|a| a.key == key).and_then(|a| {
            match a.value.as_ref()?.value.as_ref()? {
                any_value::Value::StringValue(s) => Some(s.clone()),
                _ => None,
            }
        })
    };
    let mut outcomes = Vec::new();
    let mut streams = Vec::new();
    for m in backend
        .metrics()
        .iter()
        .flat_map(|r| &r.resource_metrics)
        .flat_map(|r| &r.scope_metrics)
        .flat_map(|s| &s.metrics)
    {
        match (&m.name[..], &m.data) {
            ("authwatch.auth0.pull.requests", Some(metric::Data::Sum(s))) => {
                for p in &s.data_points {
                    if let Some(o) = str_attr(&p.attributes, "auth0.pull.outcome") {
                        if !outcomes.contains(&o) {
                            outcomes.push(o);
                        }
                    }
                }
            }
            ("authwatch.auth0.log_stream.status", Some(metric::Data::Gauge(g))) => {
                streams = g
                    .data_points
                    .iter()
                    .filter_map(|p| {
                        let st = str_attr(&p.attributes, "auth0.log_stream.status")?;
                        match p.value {
                            Some(number_data_point::Value::AsInt(v)) => Some((st, v)),
                            _ => None,
                        }
                    })
                    .collect();
            }
            _ => {}
        }
    }
    (outcomes, streams)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_are_logged_counted_and_leave_no_gap_or_duplicate() {
    let run = prepare(
        "auth0-pull-faults",
        500,
        Duration::from_secs(60),
        None,
        false,
        "      log_streams: {interval: 1s}",
    )
    .await;
    let (tenant, backend, storage) = (&run.tenant, &run.backend, &run.storage);
    // A corrupt checkpoint from an earlier run: moved aside, reading starts from start_at.
    let checkpoint = storage
        .0
        .join(format!("auth0_logs-{}.checkpoint", auth0_server::DOMAIN));
    std::fs::create_dir_all(&storage.0).unwrap();
    std::fs::write(&checkpoint, b"{\"version\":1,\"cursor\":\"9002").unwrap();
    // A listener standing for another host: the token must never reach it.
    let elsewhere = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    elsewhere.set_nonblocking(true).unwrap();
    let elsewhere_url = format!("http://{}", elsewhere.local_addr().unwrap());
    let yaml = run
        .yaml
    .replace(
        "    logs: {receivers: [auth0_logs], exporters: [otlp]}",
        "    logs: {receivers: [auth0_logs], exporters: [otlp]}\n    metrics: {receivers: [auth0_logs], exporters: [otlp]}",
    );
    let aw = launch(&yaml).await;
    wait_complete(tenant, backend).await;
    let out = aw.output();
    assert!(out.contains("The checkpoint file is corrupt"), "{out}");
    let aside = std::fs::read_dir(&storage.0)
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .contains(".checkpoint.corrupt-")
        })
        .count();
    assert_eq!(aside, 1, "the corrupt checkpoint was moved aside");

    for (knobs, line) in [
        (serde_json::json!({"malformed": 1}), "not the expected JSON"),
        (
            serde_json::json!({"fail_500": 3}),
            "the Management API answered 500",
        ),
        (
            serde_json::json!({"throttle_for": 3, "retry_after": true}),
            "answered 429",
        ),
        (
            serde_json::json!({"foreign_link": elsewhere_url}),
            "refusing the `Link` header's next URL",
        ),
        (
            serde_json::json!({"token_down": true}),
            "the token endpoint answered 503",
        ),
    ] {
        let token_down = knobs.get("token_down").is_some();
        let mut knobs = knobs;
        if let Some(secs) = knobs.as_object_mut().unwrap().remove("throttle_for") {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs();
            knobs["throttle_until"] = (now + secs.as_u64().unwrap()).into();
        }
        tenant.control(knobs.clone()).await;
        if token_down {
            tenant.expire_tokens().await;
        }
        tenant.generate(150, Duration::ZERO).await;
        assert!(
            eventually(WAIT, async || aw.output().contains(line)).await,
            "{knobs}: no log line `{line}`"
        );
        if token_down {
            tenant
                .control(serde_json::json!({"token_down": false}))
                .await;
        }
        let (want, got) = wait_complete(tenant, backend).await;
        assert_once(&want, &got);
        assert_eq!(got, want, "{knobs}: in order");
    }
    assert!(
        elsewhere.accept().is_err(),
        "nothing connected to the other host"
    );

    tenant
        .control(serde_json::json!({"stream_status": "paused"}))
        .await;
    assert!(
        eventually(WAIT, async || {
            pull_metrics(backend).1.contains(&("paused".to_owned(), 1))
        })
        .await,
        "the paused stream is reported"
    );
    let (outcomes, streams) = pull_metrics(backend);
    for o in [
        "ok",
        "malformed",
        "server_error",
        "rate_limited",
        "link_refused",
        "token_error",
    ] {
        assert!(outcomes.contains(&o.to_owned()), "no `{o}` in {outcomes:?}");
    }
    assert!(streams.contains(&("active".to_owned(), 0)), "{streams:?}");
    assert_no_secret(&aw.output());
}
