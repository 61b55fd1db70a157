use std::net::SocketAddr;
use std::time::Duration;

use authwatch_core::registry::decode_config;
use authwatch_core::{ComponentId, Settings};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

use super::*;

#[test]
fn config_contract() {
    authwatch_testkit::assert_config_contract::<Config>("health_check");
}

#[test]
fn defaults_match_the_collector() {
    let c = Config::default();
    assert_eq!(c.endpoint.to_string(), "127.0.0.1:13133");
    assert_eq!(c.path.as_str(), "/");
    assert_eq!(
        c.resources(),
        [Resource::Listen("127.0.0.1:13133".parse().unwrap())]
    );
}

#[test]
fn decodes_every_option() {
    let c: Config = decode_config(json!({
        "endpoint": "0.0.0.0:8080", "path": "/health/status", "read_header_timeout": "2s",
        "read_timeout": "3s", "idle_timeout": "4s", "max_connections": 8,
        "tls": {"cert_file": "/c.pem", "key_file": "/k.pem"}
    }))
    .unwrap();
    assert_eq!(c.endpoint.to_string(), "0.0.0.0:8080");
    assert_eq!(c.path, "/health/status".parse().unwrap());
    assert_eq!(
        (
            c.read_header_timeout,
            c.read_timeout,
            c.idle_timeout,
            c.max_connections.get()
        ),
        (
            Duration::from_secs(2),
            Duration::from_secs(3),
            Duration::from_secs(4),
            8
        )
    );
    assert_eq!(
        serde_json::to_value(&c).unwrap(),
        json!({
            "endpoint": "0.0.0.0:8080", "path": "/health/status", "read_header_timeout": "2s",
            "read_timeout": "3s", "idle_timeout": "4s", "max_connections": 8,
            "tls": {"cert_file": "/c.pem", "key_file": "/k.pem"}
        })
    );
    let mut v = authwatch_core::Validator::new("");
    c.validate(&mut v);
    assert!(!v.has_errors(), "{:?}", v.errors());
}

#[test]
fn bad_paths_are_refused_at_their_path() {
    let cases = [
        (
            "/{id}",
            "path: invalid URL path `/{id}`: `{` is not allowed; write a plain path like `/v1/traces`",
        ),
        (
            "/a b",
            "path: invalid URL path `/a b`: a space is not allowed; write a plain path like `/v1/traces`",
        ),
    ];
    for (path, want) in cases {
        let e = decode_config::<Config>(json!({ "path": path })).unwrap_err();
        assert_eq!(e.to_string(), want, "path {path}");
    }
    let e = decode_config::<Config>(json!({"endpoint": "example.com:13133"})).unwrap_err();
    assert_eq!(e.path, "endpoint");
    // The liveness path decodes (it is a path) but does not validate.
    let livez: Config = decode_config(json!({ "path": "/livez" })).unwrap();
    let mut v = authwatch_core::Validator::new("");
    livez.validate(&mut v);
    let errors: Vec<String> = v.errors().iter().map(ToString::to_string).collect();
    assert_eq!(
        errors,
        ["path: `/livez` is the liveness endpoint; choose another readiness path"]
    );
    // A missing leading `/` is added, as for every authwatch URL path.
    let c: Config = decode_config(json!({ "path": "health" })).unwrap();
    assert_eq!(c.path.as_str(), "/health");
}

struct Server {
    addr: SocketAddr,
    settings: Settings,
    task: JoinHandle<Result<(), RunError>>,
}

async fn serve(path: &str) -> Server {
    let config = Config {
        endpoint: "127.0.0.1:0".parse().unwrap(),
        path: path.parse().unwrap(),
        ..Config::default()
    };
    let settings = Settings::new(ComponentId::new("health_check", None).unwrap());
    let (addr, running) = config.bind(settings.clone()).await.unwrap();
    Server {
        addr,
        settings,
        task: tokio::spawn(running),
    }
}

impl Server {
    async fn stop(self) {
        self.settings.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("server stops after shutdown")
            .expect("server does not panic")
            .expect("server ends cleanly");
    }
}

/// `GET path` over a real socket: status code and body.
async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let r = authwatch_testkit::raw_http::get(addr, path).await;
    if !r.body.is_empty() {
        assert!(
            r.header("content-type")
                .is_some_and(|v| v.starts_with("application/json")),
            "{r:?}"
        );
    }
    (r.status, r.text())
}

async fn get_json(addr: SocketAddr, path: &str) -> (u16, Value) {
    let (status, body) = get(addr, path).await;
    (status, serde_json::from_str(&body).unwrap())
}

#[tokio::test]
async fn readiness_follows_the_phase() {
    let s = serve("/").await;
    let health = s.settings.health.clone();

    for path in ["/", "/readyz"] {
        assert_eq!(
            get_json(s.addr, path).await,
            (
                503,
                json!({"status": "Server not available", "phase": "starting", "components": {}})
            ),
            "{path}"
        );
    }

    health.set_phase(Phase::Ready);
    for path in ["/", "/readyz"] {
        assert_eq!(
            get_json(s.addr, path).await,
            (
                200,
                json!({"status": "Server available", "phase": "ready", "components": {}})
            ),
            "{path}"
        );
    }

    health.set_phase(Phase::Stopping);
    let (status, body) = get_json(s.addr, "/").await;
    assert_eq!(status, 503);
    assert_eq!(body["status"], "Server not available");
    assert_eq!(body["phase"], "stopping");
    s.stop().await;
}

#[tokio::test]
async fn liveness_is_always_ok() {
    let s = serve("/").await;
    for phase in [Phase::Starting, Phase::Ready, Phase::Stopping] {
        s.settings.health.set_phase(phase);
        assert_eq!(
            get_json(s.addr, "/livez").await,
            (200, json!({"status": "Server alive"}))
        );
    }
    s.stop().await;
}

#[tokio::test]
async fn component_errors_appear_in_the_body() {
    let s = serve("/").await;
    let health = s.settings.health.clone();
    health.set_phase(Phase::Ready);
    health.report("receiver/otlp", ComponentStatus::Ok);
    health.report(
        "exporter/otlp/upstream",
        ComponentStatus::RecoverableError("connection refused".into()),
    );
    let (status, body) = get_json(s.addr, "/").await;
    assert_eq!(status, 200, "recoverable errors do not make the process unready");
    assert_eq!(
        body["components"],
        json!({
            "exporter/otlp/upstream": {"status": "recoverable_error", "error": "connection refused"},
            "receiver/otlp": {"status": "ok"}
        })
    );
    s.stop().await;
}

#[tokio::test]
async fn custom_path_replaces_the_root() {
    let s = serve("/health/status").await;
    s.settings.health.set_phase(Phase::Ready);
    assert_eq!(get(s.addr, "/health/status").await.0, 200);
    assert_eq!(get(s.addr, "/readyz").await.0, 200);
    assert_eq!(get(s.addr, "/").await.0, 404);
    s.stop().await;
}

#[tokio::test]
async fn any_url_path_is_routed_without_a_panic() {
    // `:x` was axum 0.7's capture syntax: a plain segment here.
    let s = serve("/:x/health").await;
    s.settings.health.set_phase(Phase::Ready);
    assert_eq!(get(s.addr, "/:x/health").await.0, 200);
    assert_eq!(get(s.addr, "/y/health").await.0, 404);
    s.stop().await;
}

#[tokio::test]
async fn slow_and_idle_clients_are_cut_off() {
    let config = Config {
        endpoint: "127.0.0.1:0".parse().unwrap(),
        read_header_timeout: Duration::from_millis(300),
        idle_timeout: Duration::from_millis(300),
        ..Config::default()
    };
    let settings = Settings::new(ComponentId::new("health_check", None).unwrap());
    let (addr, running) = config.bind(settings.clone()).await.unwrap();
    let s = Server {
        addr,
        settings,
        task: tokio::spawn(running),
    };
    let wait = Duration::from_secs(10);
    authwatch_testkit::slow_client::assert_slow_head_is_cut_off(s.addr, wait).await;
    let status =
        authwatch_testkit::slow_client::assert_idle_connection_is_closed(s.addr, "/livez", wait)
            .await;
    assert_eq!(status, 200);
    s.stop().await;
}

#[tokio::test]
async fn serves_https_with_tls() {
    let pki = authwatch_testkit::tls::TestPki::new("health_check");
    let config = Config {
        endpoint: "127.0.0.1:0".parse().unwrap(),
        tls: Some(pki.server_config(false)),
        ..Config::default()
    };
    let settings = Settings::new(ComponentId::new("health_check", None).unwrap());
    let (addr, running) = config.bind(settings.clone()).await.unwrap();
    let s = Server {
        addr,
        settings,
        task: tokio::spawn(running),
    };
    let client = authwatch_net::http_client(
        Duration::from_secs(10),
        &authwatch_net::TlsClientConfig {
            ca_file: Some(pki.ca_file.clone()),
            ..Default::default()
        },
    )
    .unwrap();
    let res = client
        .get(format!("https://localhost:{}/livez", addr.port()))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    s.stop().await;
}

#[tokio::test]
async fn readyz_as_path_is_served_once() {
    let s = serve("/readyz").await;
    assert_eq!(get(s.addr, "/readyz").await.0, 503);
    assert_eq!(get(s.addr, "/").await.0, 404);
    s.stop().await;
}

#[tokio::test]
async fn port_in_use_fails_build_with_bind() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let config = Config {
        endpoint: ListenAddr(addr),
        ..Config::default()
    };
    let settings = Settings::new(ComponentId::new("health_check", None).unwrap());
    match config.build(settings).await {
        Err(BuildError::Bind { addr: a, .. }) => assert_eq!(a, addr),
        Err(e) => panic!("expected a bind error, got {e}"),
        Ok(_) => panic!("expected a bind error, got a server"),
    }
}

#[tokio::test]
async fn stops_on_shutdown() {
    let s = serve("/").await;
    let addr = s.addr;
    assert_eq!(get(addr, "/livez").await.0, 200);
    s.stop().await;
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "the port is released after shutdown"
    );
}
