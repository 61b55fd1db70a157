use std::net::SocketAddr;
use std::time::Duration;

use authwatch_core::registry::decode_config;
use authwatch_core::{ComponentId, Settings};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
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
    let c: Config = decode_config(json!({"endpoint": "0.0.0.0:8080", "path": "/health/status"}))
        .unwrap();
    assert_eq!(c.endpoint.to_string(), "0.0.0.0:8080");
    assert_eq!(c.path, UrlPath::new("/health/status").unwrap());
    assert_eq!(
        serde_json::to_value(&c).unwrap(),
        json!({"endpoint": "0.0.0.0:8080", "path": "/health/status"})
    );
}

#[test]
fn bad_paths_are_refused_at_their_path() {
    let cases = [
        (
            "health",
            "path: invalid path `health`: start it with `/` and use only letters, digits, `-`, `.`, `_`, `~` and `/`, e.g. `/health/status`",
        ),
        (
            "/{id}",
            "path: invalid path `/{id}`: start it with `/` and use only letters, digits, `-`, `.`, `_`, `~` and `/`, e.g. `/health/status`",
        ),
        (
            "/a b",
            "path: invalid path `/a b`: start it with `/` and use only letters, digits, `-`, `.`, `_`, `~` and `/`, e.g. `/health/status`",
        ),
        (
            "/livez",
            "path: `/livez` is the liveness endpoint; choose another readiness path",
        ),
    ];
    for (path, want) in cases {
        let e = decode_config::<Config>(json!({ "path": path })).unwrap_err();
        assert_eq!(e.to_string(), want, "path {path}");
    }
    let e = decode_config::<Config>(json!({"endpoint": "example.com:13133"})).unwrap_err();
    assert_eq!(e.path, "endpoint");
}

struct Server {
    addr: SocketAddr,
    settings: Settings,
    task: JoinHandle<Result<(), RunError>>,
}

async fn serve(path: &str) -> Server {
    let config = Config {
        endpoint: "127.0.0.1:0".parse().unwrap(),
        path: UrlPath::new(path).unwrap(),
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

/// A minimal HTTP/1.1 GET over a real socket: status code and body.
async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    tokio::time::timeout(Duration::from_secs(10), async {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await.unwrap();
        let text = String::from_utf8(raw).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").expect("a full response");
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .expect("a status code");
        if !body.is_empty() {
            assert!(
                head.to_ascii_lowercase()
                    .contains("content-type: application/json"),
                "{head}"
            );
        }
        (status, body.to_owned())
    })
    .await
    .expect("answer within the hang guard")
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
