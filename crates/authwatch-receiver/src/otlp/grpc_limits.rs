//! Limits of the OTLP/gRPC server: per-call `timeout`, HTTP/2 keepalive and connection age,
//! concurrent streams, and the connection cap (with [`authwatch_net::server::LimitedIncoming`]).
//!
//! Wiring (in `grpc.rs`):
//!
//! ```ignore
//! let router = grpc_limits::server_builder(&config).add_service(..);
//! let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
//! router.serve_with_incoming_shutdown(grpc_limits::limit(&config, incoming), shutdown).await
//! // TLS: grpc_limits::limit(&config, TlsIncoming::new(listener, tls, shutdown.clone()))
//! ```

use std::num::NonZeroU32;
use std::time::Duration;

use authwatch_core::Validator;
use tonic::transport::Server;

use super::config::MAX_STREAM_WINDOW_KIB;
use super::GrpcConfig;
use authwatch_net::server::LimitedIncoming;

/// The connection's HTTP/2 window (hyper's default).
const CONNECTION_WINDOW: u32 = 1024 * 1024;

/// The HTTP/2 flow-control window of each call (`stream_window_kib`, default 128 KiB): what a
/// client may send of a message before authwatch reads it (hyper's default is 1 MiB; gRPC-Go
/// starts at 64 KiB and grows it). A call refused at its headers (see *Admission*) then costs at
/// most this much reading and discarding, and clients are paced by what authwatch reads rather
/// than by what its buffers take: at 2× and 4× overload the p99 of accepted calls fell from 2.1×
/// and 2.3× of the capacity's to 1.5× and 1.8×, and the sending queue stays near empty at
/// capacity (docs/performance.md). The price is one window per round trip for one call: 128 KiB
/// over 50 ms is about 2.6 MB/s, which senders far away raise the option for. The connection's
/// window stays 1 MiB (or the stream window, if larger).
pub(crate) fn stream_window(config: &GrpcConfig) -> u32 {
    let kib = config.stream_window_kib.get().min(MAX_STREAM_WINDOW_KIB);
    u32::try_from(kib * 1024).unwrap_or(u32::MAX)
}

/// A tonic server builder with `config`'s limits: `max_concurrent_streams`, `timeout` (per
/// call; tonic answers `CANCELLED` "Timeout expired" when it passes, a shorter `grpc-timeout`
/// from the client wins), `keepalive.server_parameters` (`time`, `timeout`,
/// `max_connection_age`, `max_connection_age_grace`) and `TCP_NODELAY`. Add the services to it.
pub(crate) fn server_builder(config: &GrpcConfig) -> Server {
    let ka = &config.keepalive.server_parameters;
    let nonzero = |d: Duration| (!d.is_zero()).then_some(d);
    let mut server = Server::builder()
        .max_concurrent_streams(config.max_concurrent_streams.map(NonZeroU32::get))
        .http2_keepalive_interval(nonzero(ka.time))
        .http2_keepalive_timeout(nonzero(ka.timeout))
        .initial_stream_window_size(stream_window(config))
        .initial_connection_window_size(stream_window(config).max(CONNECTION_WINDOW))
        .tcp_nodelay(true);
    if let Some(timeout) = nonzero(config.timeout) {
        server = server.timeout(timeout);
    }
    if let Some(age) = ka.max_connection_age {
        server = server.max_connection_age(age);
    }
    if let Some(grace) = ka.max_connection_age_grace {
        server = server.max_connection_age_grace(grace);
    }
    server
}

/// `incoming` (tonic's `TcpIncoming` or [`authwatch_net::tls::TlsIncoming`]) with at most
/// `max_connections` connections open at once; further connections wait until one closes.
pub(crate) fn limit<I>(config: &GrpcConfig, incoming: I) -> LimitedIncoming<I> {
    LimitedIncoming::new(incoming, config.max_connections.get())
}

/// Rules for the gRPC limits, at `at` (e.g. `protocols::grpc`).
pub(crate) fn validate(config: &GrpcConfig, v: &mut Validator, at: &str) {
    let ka = &config.keepalive.server_parameters;
    let ka_at = format!("{at}::keepalive::server_parameters");
    if !ka.time.is_zero() && ka.timeout.is_zero() {
        v.error(
            &format!("{ka_at}::timeout"),
            "must be positive: how long to wait for a ping's answer, e.g. `20s`",
        );
    }
    if ka.max_connection_age == Some(Duration::ZERO) {
        v.error(
            &format!("{ka_at}::max_connection_age"),
            "must be positive; remove it to let connections live for ever",
        );
    }
    if ka.max_connection_age_grace.is_some() && ka.max_connection_age.is_none() {
        v.error(
            &format!("{ka_at}::max_connection_age_grace"),
            "has no effect without `max_connection_age`; set that as well, or remove this",
        );
    }
    if config.stream_window_kib.get() > MAX_STREAM_WINDOW_KIB {
        v.error(
            &format!("{at}::stream_window_kib"),
            format!(
                "is at most {MAX_STREAM_WINDOW_KIB} (16 MiB); the default 128 suits loopback and a \
                 LAN, 1024 to 4096 a sender a WAN away"
            ),
        );
    }
    if config.timeout.is_zero() {
        v.warn(
            &format!("{at}::timeout"),
            "is 0, so a client that sends its message slowly holds a call for ever; set e.g. `30s`",
        );
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::future::Future;
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};
    use tokio_util::sync::CancellationToken;
    use tonic::transport::server::TcpIncoming;

    use authwatch_core::config::Positive;

    use super::super::KeepaliveServerParameters;
    use super::*;

    const HANG_GUARD: Duration = Duration::from_secs(60);

    fn errors(c: &GrpcConfig) -> (Vec<String>, Vec<String>) {
        let mut v = Validator::new("");
        validate(c, &mut v, "protocols::grpc");
        let (errors, warnings) = v.into_parts();
        (
            errors.iter().map(ToString::to_string).collect(),
            warnings.iter().map(ToString::to_string).collect(),
        )
    }

    #[test]
    fn validate_stream_window() {
        let most = GrpcConfig {
            stream_window_kib: Positive(MAX_STREAM_WINDOW_KIB),
            ..GrpcConfig::default()
        };
        assert_eq!(errors(&most), (vec![], vec![]));
        let too_big = GrpcConfig {
            stream_window_kib: Positive(MAX_STREAM_WINDOW_KIB + 1),
            ..GrpcConfig::default()
        };
        assert_eq!(
            errors(&too_big).0,
            ["protocols::grpc::stream_window_kib: is at most 16384 (16 MiB); the default 128 suits loopback and a LAN, 1024 to 4096 a sender a WAN away"]
        );
        assert_eq!(stream_window(&too_big), 16 * 1024 * 1024, "never past the limit");
    }

    #[test]
    fn validate_keepalive_and_timeout() {
        assert_eq!(errors(&GrpcConfig::default()), (vec![], vec![]));
        let bad = GrpcConfig {
            timeout: Duration::ZERO,
            keepalive: super::super::KeepaliveConfig {
                server_parameters: KeepaliveServerParameters {
                    timeout: Duration::ZERO,
                    max_connection_age_grace: Some(Duration::from_secs(5)),
                    ..Default::default()
                },
            },
            ..GrpcConfig::default()
        };
        let (errs, warns) = errors(&bad);
        assert_eq!(
            errs,
            [
                "protocols::grpc::keepalive::server_parameters::timeout: must be positive: how long to wait for a ping's answer, e.g. `20s`",
                "protocols::grpc::keepalive::server_parameters::max_connection_age_grace: has no effect without `max_connection_age`; set that as well, or remove this",
            ]
        );
        assert_eq!(warns.len(), 1, "{warns:?}");
        assert!(
            warns[0].starts_with("protocols::grpc::timeout: is 0"),
            "{warns:?}"
        );
        let zero_age = GrpcConfig {
            keepalive: super::super::KeepaliveConfig {
                server_parameters: KeepaliveServerParameters {
                    max_connection_age: Some(Duration::ZERO),
                    ..Default::default()
                },
            },
            ..GrpcConfig::default()
        };
        assert_eq!(
            errors(&zero_age).0,
            ["protocols::grpc::keepalive::server_parameters::max_connection_age: must be positive; remove it to let connections live for ever"]
        );
    }

    /// A gRPC service that never answers `/hang.Hang/Call` and answers anything else at once.
    #[derive(Clone)]
    struct Stub;

    impl tonic::server::NamedService for Stub {
        const NAME: &'static str = "hang.Hang";
    }

    impl tower::Service<http::Request<tonic::body::Body>> for Stub {
        type Response = http::Response<tonic::body::Body>;
        type Error = Infallible;
        type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, req: http::Request<tonic::body::Body>) -> Self::Future {
            let hang = req.uri().path() == "/hang.Hang/Call";
            Box::pin(async move {
                if hang {
                    std::future::pending::<()>().await;
                }
                Ok(tonic::Status::ok("").into_http())
            })
        }
    }

    async fn start(
        config: GrpcConfig,
    ) -> (
        std::net::SocketAddr,
        CancellationToken,
        tokio::task::JoinHandle<()>,
    ) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        let router = server_builder(&config).add_service(Stub);
        let incoming = limit(&config, TcpIncoming::from(listener));
        let token = shutdown.clone();
        let task = tokio::spawn(async move {
            router
                .serve_with_incoming_shutdown(incoming, token.cancelled_owned())
                .await
                .unwrap();
        });
        (addr, shutdown, task)
    }

    async fn call(
        channel: &mut tonic::transport::Channel,
        path: &'static str,
    ) -> http::Response<tonic::body::Body> {
        use tower::{Service, ServiceExt};
        let req = http::Request::builder()
            .method("POST")
            .uri(format!("http://localhost{path}"))
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .body(tonic::body::Body::empty())
            .unwrap();
        channel.ready().await.unwrap().call(req).await.unwrap()
    }

    fn grpc_status(res: &http::Response<tonic::body::Body>) -> Option<String> {
        res.headers()
            .get("grpc-status")
            .map(|v| v.to_str().unwrap().to_owned())
    }

    #[tokio::test(start_paused = true)]
    async fn timeout_ends_a_call_that_takes_too_long() {
        let config = GrpcConfig {
            timeout: Duration::from_secs(5),
            ..GrpcConfig::default()
        };
        let (addr, shutdown, task) = start(config).await;
        let mut channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect()
            .await
            .unwrap();
        let res = tokio::time::timeout(HANG_GUARD, call(&mut channel, "/hang.Hang/Call"))
            .await
            .expect("the call must end at `timeout`");
        // tonic answers a timed-out call with CANCELLED (1).
        assert_eq!(grpc_status(&res).as_deref(), Some("1"), "{res:?}");
        // Other calls on the same connection are served.
        let ok = call(&mut channel, "/hang.Hang/Other").await;
        assert_eq!(grpc_status(&ok).as_deref(), Some("0"), "{ok:?}");
        drop(channel);
        shutdown.cancel();
        tokio::time::timeout(HANG_GUARD, task)
            .await
            .unwrap()
            .unwrap();
    }

    /// A client may send at most [`stream_window`] of a call before authwatch reads it: the
    /// server's first SETTINGS frame announces it (`SETTINGS_INITIAL_WINDOW_SIZE`, RFC 9113 §6.5.2).
    #[tokio::test]
    async fn the_server_announces_the_stream_window() {
        assert_eq!(the_announced_window(GrpcConfig::default()).await, 128 * 1024);
        let far = GrpcConfig {
            stream_window_kib: Positive(2048),
            ..GrpcConfig::default()
        };
        assert_eq!(the_announced_window(far).await, 2048 * 1024);
    }

    async fn the_announced_window(config: GrpcConfig) -> u32 {
        let (addr, shutdown, task) = start(config).await;
        let mut tcp = TcpStream::connect(addr).await.unwrap();
        // The client preface and an empty SETTINGS frame.
        tcp.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0")
            .await
            .unwrap();
        let mut head = [0u8; 9];
        tokio::time::timeout(HANG_GUARD, tcp.read_exact(&mut head))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(head[3], 0x4, "the server's first frame is SETTINGS");
        let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
        let mut payload = vec![0u8; len];
        tcp.read_exact(&mut payload).await.unwrap();
        let window = payload
            .chunks_exact(6)
            .find(|p| u16::from_be_bytes([p[0], p[1]]) == 0x4)
            .map(|p| u32::from_be_bytes([p[2], p[3], p[4], p[5]]));
        drop(tcp);
        shutdown.cancel();
        tokio::time::timeout(HANG_GUARD, task)
            .await
            .unwrap()
            .unwrap();
        window.expect("SETTINGS_INITIAL_WINDOW_SIZE in the server's SETTINGS")
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_connection_is_closed_after_the_preface_timeout() {
        let (addr, shutdown, task) = start(GrpcConfig::default()).await;
        let mut silent = TcpStream::connect(addr).await.unwrap();
        let mut buf = [0u8; 64];
        // The server writes its SETTINGS, then closes the connection that never sent a preface.
        let closed = tokio::time::timeout(HANG_GUARD, async {
            loop {
                match silent.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => continue,
                }
            }
        })
        .await;
        assert!(closed.is_ok(), "a silent connection must be closed");
        let _ = silent.shutdown().await;
        shutdown.cancel();
        tokio::time::timeout(HANG_GUARD, task)
            .await
            .unwrap()
            .unwrap();
    }
}
