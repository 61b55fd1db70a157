//! TLS, mutual TLS and bearer-token auth on both protocols, over real loopback sockets with
//! certificates generated here.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use authwatch_core::config::Secret;
use authwatch_core::otlp::collector::trace::v1::trace_service_client::TraceServiceClient;
use authwatch_core::registry::decode_config;
use authwatch_core::{ComponentConfig, ReceiverConfig, ReceiverContext, Router, Settings};
use authwatch_core::{SignalKind, Validator};
use authwatch_net::ListenAddr;
use authwatch_testkit::{traces, Sink};
use prost::Message;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};
use tonic::Code;

use super::*;

const TOKEN: &str = "0tlp-t0ken-for-tests";
const HANG_GUARD: Duration = Duration::from_secs(20);

/// A test CA, a server certificate for `localhost` / `127.0.0.1` and a client certificate,
/// written to a temporary directory removed on drop.
struct Pki {
    dir: PathBuf,
    ca: String,
    client_cert: String,
    client_key: String,
}

impl Pki {
    fn new(name: &str) -> Pki {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
        let dir =
            std::env::temp_dir().join(format!("authwatch-otlp-tls-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "authwatch test CA");
        let ca = ca_params.self_signed(&ca_key).unwrap().pem();
        let issuer = Issuer::from_params(&ca_params, &ca_key);
        let server_key = KeyPair::generate().unwrap();
        let server = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .unwrap()
            .signed_by(&server_key, &issuer)
            .unwrap();
        let client_key = KeyPair::generate().unwrap();
        let mut client_params = CertificateParams::new(vec!["client".to_owned()]).unwrap();
        client_params
            .distinguished_name
            .push(DnType::CommonName, "authwatch test client");
        let client = client_params.signed_by(&client_key, &issuer).unwrap();
        std::fs::write(dir.join("ca.pem"), &ca).unwrap();
        std::fs::write(dir.join("server.pem"), server.pem()).unwrap();
        std::fs::write(dir.join("server.key"), server_key.serialize_pem()).unwrap();
        Pki {
            dir,
            ca,
            client_cert: client.pem(),
            client_key: client_key.serialize_pem(),
        }
    }

    fn server_tls(&self, mutual: bool) -> TlsServerConfig {
        TlsServerConfig {
            cert_file: self.dir.join("server.pem"),
            key_file: self.dir.join("server.key"),
            client_ca_file: mutual.then(|| self.dir.join("ca.pem")),
        }
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

struct Running {
    sink: Sink,
    settings: Settings,
    telemetry: authwatch_core::telemetry::Telemetry,
    grpc: Option<SocketAddr>,
    http: Option<SocketAddr>,
    task: tokio::task::JoinHandle<Result<(), authwatch_core::RunError>>,
}

impl Running {
    async fn start(config: Config) -> Running {
        let sink = Sink::new();
        let mut next = Router::new();
        for k in SignalKind::ALL {
            next.set(k, sink.shared());
        }
        let settings = Settings::new("otlp".parse().unwrap());
        let receiver = Receiver::bind(
            &config,
            ReceiverContext {
                settings: settings.clone(),
                next,
            },
        )
        .await
        .unwrap();
        let (grpc, http) = (receiver.grpc_addr(), receiver.http_addr());
        let task = tokio::spawn(receiver.run());
        Running {
            sink,
            telemetry: settings.telemetry.clone(),
            settings,
            grpc,
            http,
            task,
        }
    }

    async fn stop(self) -> Sink {
        self.settings.shutdown.cancel();
        tokio::time::timeout(HANG_GUARD, self.task)
            .await
            .expect("receiver stops")
            .unwrap()
            .unwrap();
        self.sink
    }

    fn spans(&self) -> usize {
        self.sink.item_count(SignalKind::Traces)
    }
}

fn grpc_only(tls: Option<TlsServerConfig>, auth: Option<AuthConfig>) -> Config {
    Config {
        protocols: Protocols {
            grpc: Some(GrpcConfig {
                endpoint: ListenAddr::localhost(0),
                tls,
                auth,
                ..GrpcConfig::default()
            }),
            http: None,
        },
    }
}

fn http_only(tls: Option<TlsServerConfig>, auth: Option<AuthConfig>) -> Config {
    Config {
        protocols: Protocols {
            grpc: None,
            http: Some(HttpConfig {
                endpoint: ListenAddr::localhost(0),
                tls,
                auth,
                ..HttpConfig::default()
            }),
        },
    }
}

fn bearer() -> Option<AuthConfig> {
    Some(AuthConfig {
        bearer_token: Secret::new(TOKEN),
    })
}

/// A gRPC client over TLS trusting `pki`'s CA, with the client certificate when `identity`.
async fn tls_channel(
    addr: SocketAddr,
    pki: &Pki,
    identity: bool,
) -> Result<Channel, tonic::transport::Error> {
    let mut tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(&pki.ca))
        .domain_name("localhost");
    if identity {
        tls = tls.identity(Identity::from_pem(&pki.client_cert, &pki.client_key));
    }
    let endpoint = Channel::from_shared(format!("https://{addr}"))
        .unwrap()
        .tls_config(tls)?
        .timeout(HANG_GUARD);
    endpoint.connect().await
}

async fn export_over(channel: Channel) -> Result<(), tonic::Status> {
    TraceServiceClient::new(channel)
        .export(traces(0, 2))
        .await
        .map(|_| ())
}

fn https_client(pki: &Pki, identity: bool) -> reqwest::Client {
    let mut b = reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(pki.ca.as_bytes()).unwrap())
        .timeout(HANG_GUARD);
    if identity {
        let pem = format!("{}{}", pki.client_cert, pki.client_key);
        b = b.identity(reqwest::Identity::from_pem(pem.as_bytes()).unwrap());
    }
    b.build().unwrap()
}

async fn post_traces(
    client: &reqwest::Client,
    url: String,
    authorization: Option<&str>,
) -> Result<reqwest::Response, reqwest::Error> {
    let mut req = client
        .post(url)
        .header("content-type", "application/x-protobuf")
        .body(traces(0, 2).encode_to_vec());
    if let Some(a) = authorization {
        req = req.header("authorization", a);
    }
    req.send().await
}

fn unauthenticated_count(text: &str, transport: &str) -> Option<u64> {
    let prefix = format!(
        "authwatch_receiver_unauthenticated_requests_total{{receiver=\"otlp\",transport=\"{transport}\"}} "
    );
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|n| n.trim().parse().ok())
}

#[test]
fn tls_and_auth_decode_and_validate() {
    let c: Config = decode_config(serde_json::json!({
        "protocols": {
            "grpc": { "tls": { "cert_file": "/c.pem", "key_file": "/k.pem" }, "auth": { "bearer_token": "t" } },
            "http": { "endpoint": "0.0.0.0:4318", "auth": { "bearer_token": "t" } }
        }
    }))
    .unwrap();
    let g = c.protocols.grpc.as_ref().unwrap();
    assert_eq!(g.tls.as_ref().unwrap().cert_file, PathBuf::from("/c.pem"));
    assert!(!g.tls.as_ref().unwrap().is_mutual());
    assert_eq!(g.auth.as_ref().unwrap().bearer_token.expose(), "t");
    let mut v = Validator::new("receivers::otlp");
    c.validate(&mut v);
    let (errors, warnings) = v.into_parts();
    assert!(errors.is_empty(), "{errors:?}");
    // A token over plaintext to other hosts is allowed, with a warning.
    let warnings: Vec<String> = warnings.iter().map(|w| w.to_string()).collect();
    assert_eq!(
        warnings,
        ["receivers::otlp::protocols::http::auth: the bearer token crosses the network in plaintext on `0.0.0.0:4318`; set `tls` as well"]
    );
    // The token never prints.
    let shown = format!("{c:?} {}", serde_json::to_string(&c).unwrap());
    assert!(!shown.contains("\"t\""), "{shown}");
}

#[tokio::test]
async fn build_fails_with_the_file_at_fault() {
    let pki = Pki::new("build");
    let mut tls = pki.server_tls(false);
    tls.key_file = pki.dir.join("missing.key");
    let cx = ReceiverContext {
        settings: Settings::new("otlp".parse().unwrap()),
        next: Router::new(),
    };
    let e = match grpc_only(Some(tls), None).build(cx).await {
        Err(e) => e.to_string(),
        Ok(_) => panic!("a missing key file must fail the build"),
    };
    assert!(
        e.starts_with("protocols::grpc: tls::key_file: cannot read `") && e.contains("missing.key"),
        "{e}"
    );
}

#[tokio::test]
async fn grpc_over_tls_trusting_client_succeeds_plaintext_fails() {
    let pki = Pki::new("grpc-tls");
    let r = Running::start(grpc_only(Some(pki.server_tls(false)), None)).await;
    let addr = r.grpc.unwrap();

    let channel = tls_channel(addr, &pki, false).await.unwrap();
    export_over(channel).await.unwrap();
    assert_eq!(r.spans(), 2);

    // A plaintext (h2c) client cannot talk to the TLS port.
    let plain = async {
        let ch = Channel::from_shared(format!("http://{addr}"))
            .unwrap()
            .timeout(HANG_GUARD)
            .connect()
            .await
            .map_err(|e| e.to_string())?;
        export_over(ch).await.map_err(|e| e.to_string())
    };
    assert!(plain.await.is_err(), "plaintext must fail");
    // A client that does not trust the CA fails the handshake.
    let other = Pki::new("grpc-tls-other");
    let untrusted = tls_channel(addr, &other, false).await;
    let untrusted = match untrusted {
        Ok(ch) => export_over(ch).await.map_err(|e| e.to_string()),
        Err(e) => Err(format!("{e:?}")),
    };
    assert!(
        untrusted.is_err(),
        "an untrusted server certificate must fail"
    );
    assert_eq!(r.stop().await.item_count(SignalKind::Traces), 2);
}

#[tokio::test]
async fn grpc_mutual_tls_refuses_clients_without_a_certificate() {
    let pki = Pki::new("grpc-mtls");
    let r = Running::start(grpc_only(Some(pki.server_tls(true)), None)).await;
    let addr = r.grpc.unwrap();

    let without = match tls_channel(addr, &pki, false).await {
        Ok(ch) => export_over(ch).await.map_err(|e| e.to_string()),
        Err(e) => Err(format!("{e:?}")),
    };
    assert!(without.is_err(), "no client certificate must be refused");
    assert_eq!(r.spans(), 0);

    let with = tls_channel(addr, &pki, true).await.unwrap();
    export_over(with).await.unwrap();
    assert_eq!(r.stop().await.item_count(SignalKind::Traces), 2);
}

#[tokio::test]
async fn http_over_mutual_tls() {
    let pki = Pki::new("http-mtls");
    let r = Running::start(http_only(Some(pki.server_tls(true)), None)).await;
    let addr = r.http.unwrap();
    let url = format!("https://127.0.0.1:{}/v1/traces", addr.port());

    let ok = post_traces(&https_client(&pki, true), url.clone(), None)
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(r.spans(), 2);

    // Trusting the server but without a certificate: refused in the handshake.
    assert!(post_traces(&https_client(&pki, false), url, None)
        .await
        .is_err());
    // Plaintext HTTP to the TLS port: refused.
    let plain = reqwest::Client::new()
        .post(format!("http://{addr}/v1/traces"))
        .header("content-type", "application/x-protobuf")
        .body(traces(0, 2).encode_to_vec())
        .timeout(HANG_GUARD)
        .send()
        .await;
    assert!(!matches!(plain, Ok(r) if r.status().is_success()));
    assert_eq!(r.stop().await.item_count(SignalKind::Traces), 2);
}

#[tokio::test]
async fn a_silent_client_does_not_block_tls_handshakes() {
    let pki = Pki::new("silent");
    let r = Running::start(http_only(Some(pki.server_tls(false)), None)).await;
    let addr = r.http.unwrap();
    // Connects and never sends a ClientHello.
    let _silent = tokio::net::TcpStream::connect(addr).await.unwrap();
    let url = format!("https://localhost:{}/v1/traces", addr.port());
    let res = tokio::time::timeout(
        HANG_GUARD,
        post_traces(&https_client(&pki, false), url, None),
    )
    .await
    .expect("the handshake is not queued behind the silent client")
    .unwrap();
    assert_eq!(res.status(), 200);
    r.stop().await;
}

#[tokio::test]
async fn grpc_bearer_token_is_required() {
    let r = Running::start(grpc_only(None, bearer())).await;
    let url = format!("http://{}", r.grpc.unwrap());
    let mut client = TraceServiceClient::connect(url).await.unwrap();

    let e = client.export(traces(0, 1)).await.unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated, "{e:?}");

    for wrong in [
        "Bearer nope",
        "Basic MHRscC10MGtlbi1mb3ItdGVzdHM=",
        TOKEN,
        &format!("Bearer {TOKEN}x"),
    ] {
        let mut req = tonic::Request::new(traces(0, 1));
        req.metadata_mut()
            .insert("authorization", wrong.parse().unwrap());
        let e = client.export(req).await.unwrap_err();
        assert_eq!(e.code(), Code::Unauthenticated, "{wrong}: {e:?}");
    }
    assert_eq!(r.spans(), 0, "nothing enters the pipeline");

    let mut req = tonic::Request::new(traces(0, 3));
    req.metadata_mut()
        .insert("authorization", format!("Bearer {TOKEN}").parse().unwrap());
    client.export(req).await.unwrap();
    assert_eq!(r.spans(), 3);
    assert_eq!(
        unauthenticated_count(&r.telemetry.encode(), "grpc"),
        Some(5)
    );
    r.stop().await;
}

#[tokio::test]
async fn http_bearer_token_is_required() {
    let r = Running::start(http_only(None, bearer())).await;
    let url = format!("http://{}/v1/traces", r.http.unwrap());
    let client = reqwest::Client::new();

    let res = post_traces(&client, url.clone(), None).await.unwrap();
    assert_eq!(res.status(), 401);
    assert_eq!(res.headers()["www-authenticate"], "Bearer");
    let res = post_traces(&client, url.clone(), Some("Bearer wrong"))
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    // Unknown paths are refused the same way: nothing is revealed before authentication.
    let res = client
        .get(format!("http://{}/", r.http.unwrap()))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    assert_eq!(r.spans(), 0);

    let res = post_traces(&client, url, Some(&format!("bearer {TOKEN}")))
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(r.spans(), 2);
    assert_eq!(
        unauthenticated_count(&r.telemetry.encode(), "http"),
        Some(3)
    );
    r.stop().await;
}

#[tokio::test]
async fn tls_and_bearer_together() {
    let pki = Pki::new("both");
    let r = Running::start(grpc_only(Some(pki.server_tls(false)), bearer())).await;
    let channel = tls_channel(r.grpc.unwrap(), &pki, false).await.unwrap();
    let mut client = TraceServiceClient::new(channel);
    assert_eq!(
        client.export(traces(0, 1)).await.unwrap_err().code(),
        Code::Unauthenticated
    );
    let mut req = tonic::Request::new(traces(0, 1));
    req.metadata_mut()
        .insert("authorization", format!("Bearer {TOKEN}").parse().unwrap());
    client.export(req).await.unwrap();
    assert_eq!(r.stop().await.item_count(SignalKind::Traces), 1);
}
