//! The `otlp` receiver's configuration: the YAML's types, their defaults and their validation
//! (the options table is the module doc of `otlp`).

use std::num::NonZeroU32;
use std::time::Duration;

use authwatch_core::config::Positive;
use authwatch_core::{ComponentConfig, Resource, Validator};
use authwatch_net::server::{
    validate_http_limits, Limits, DEFAULT_IDLE_TIMEOUT, DEFAULT_MAX_CONNECTIONS,
    DEFAULT_READ_HEADER_TIMEOUT, DEFAULT_READ_TIMEOUT,
};
use authwatch_net::{ListenAddr, UrlPath};
use serde::{Deserialize, Deserializer, Serialize};

use super::{cors, grpc_limits, AuthConfig, TlsServerConfig};

/// Default gRPC listen port (OTLP/gRPC).
pub const DEFAULT_GRPC_PORT: u16 = 4317;
/// Default HTTP listen port (OTLP/HTTP).
pub const DEFAULT_HTTP_PORT: u16 = 4318;
/// Default `max_recv_msg_size_mib`.
pub const DEFAULT_MAX_RECV_MSG_SIZE_MIB: usize = 4;
/// Default `max_request_body_size`: 20 MiB.
pub const DEFAULT_MAX_REQUEST_BODY_SIZE: usize = 20 * 1024 * 1024;
/// Default `protocols.grpc.timeout`: longest time one call may take.
pub const DEFAULT_GRPC_TIMEOUT: Duration = Duration::from_secs(30);
/// Requests a transport reads and hands on at once, per core the process may use. On 2 cores
/// the pass-through is kept busy by 8 requests of 512 spans in flight; admitting no more keeps
/// the latency of accepted requests under overload near its value at capacity
/// (docs/performance.md: 10, 12 and 16 let it grow), and the rest are refused before their body
/// is read. The work scales with the cores, so the limit does too.
pub const DEFAULT_MAX_REQUESTS_IN_FLIGHT_PER_CORE: usize = 4;

/// The default `max_requests_in_flight`: [`DEFAULT_MAX_REQUESTS_IN_FLIGHT_PER_CORE`] times the
/// cores the process may use (`std::thread::available_parallelism`, which reads the cgroup CPU
/// quota): 8 on 2 cores, 64 on 16.
pub fn default_max_requests_in_flight() -> usize {
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    DEFAULT_MAX_REQUESTS_IN_FLIGHT_PER_CORE * cores
}

/// Default `protocols.grpc.stream_window_kib`: the HTTP/2 flow-control window of each call
/// (see `grpc_limits`).
pub const DEFAULT_STREAM_WINDOW_KIB: usize = 128;
/// Largest `protocols.grpc.stream_window_kib`: 16 MiB.
pub const MAX_STREAM_WINDOW_KIB: usize = 16 * 1024;
/// Default `protocols.grpc.keepalive.server_parameters.time` (gRPC's).
pub const DEFAULT_KEEPALIVE_TIME: Duration = Duration::from_secs(2 * 60 * 60);
/// Default `protocols.grpc.keepalive.server_parameters.timeout` (gRPC's).
pub const DEFAULT_KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(20);

/// The `otlp` receiver's config.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Which protocols to serve. Absent: both, with defaults.
    #[serde(deserialize_with = "protocols_or_none")]
    pub protocols: Protocols,
}

/// `protocols`: a protocol is on when its key is present.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Protocols {
    #[serde(
        default,
        deserialize_with = "present_means_on",
        skip_serializing_if = "Option::is_none"
    )]
    pub grpc: Option<GrpcConfig>,
    #[serde(
        default,
        deserialize_with = "present_means_on",
        skip_serializing_if = "Option::is_none"
    )]
    pub http: Option<HttpConfig>,
}

/// `protocols.grpc`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GrpcConfig {
    pub endpoint: ListenAddr,
    /// Largest request message, in MiB, compressed or not.
    pub max_recv_msg_size_mib: Positive,
    /// HTTP/2 concurrent streams per connection; unlimited when unset.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_concurrent_streams: Option<NonZeroU32>,
    /// Most connections open at once; more wait until one closes.
    pub max_connections: Positive,
    /// Most calls being read and handed on at once; more are refused before their message is
    /// read (`UNAVAILABLE`). See *Admission*. Unset: [`default_max_requests_in_flight`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_requests_in_flight: Option<Positive>,
    /// The HTTP/2 flow-control window of each call, in KiB: how much of a message a client may
    /// send before authwatch reads it. Raise it for senders far away (a window per round trip
    /// bounds one call's throughput).
    pub stream_window_kib: Positive,
    /// Longest time one call may take, reading its message included (`DEADLINE`-like); `0s`: no
    /// limit. A shorter `grpc-timeout` from the client wins.
    #[serde(with = "authwatch_core::config::duration")]
    pub timeout: Duration,
    /// HTTP/2 keepalive, as the Collector's `configgrpc` `keepalive`.
    pub keepalive: KeepaliveConfig,
    /// Serve over TLS (and require client certificates with `client_ca_file`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsServerConfig>,
    /// Require a bearer token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth: Option<AuthConfig>,
}

/// `protocols.grpc.keepalive`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KeepaliveConfig {
    pub server_parameters: KeepaliveServerParameters,
}

/// `protocols.grpc.keepalive.server_parameters`, as gRPC's `keepalive.ServerParameters`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KeepaliveServerParameters {
    /// Ping a client after this long without activity; `0s`: never.
    #[serde(with = "authwatch_core::config::duration")]
    pub time: Duration,
    /// Close the connection when a ping is not answered within this long.
    #[serde(with = "authwatch_core::config::duration")]
    pub timeout: Duration,
    /// Close a connection (`GOAWAY`, calls in flight finish) once it is this old; unset: never.
    #[serde(
        with = "authwatch_core::config::opt_duration",
        skip_serializing_if = "Option::is_none"
    )]
    pub max_connection_age: Option<Duration>,
    /// After `max_connection_age`, how long calls in flight may still take before the connection
    /// is closed; unset: as long as they need.
    #[serde(
        with = "authwatch_core::config::opt_duration",
        skip_serializing_if = "Option::is_none"
    )]
    pub max_connection_age_grace: Option<Duration>,
}

/// `protocols.http`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    pub endpoint: ListenAddr,
    pub traces_url_path: UrlPath,
    pub metrics_url_path: UrlPath,
    pub logs_url_path: UrlPath,
    /// Largest request body in bytes, on the wire and after decompression.
    pub max_request_body_size: Positive,
    /// Time for a request head to arrive (from its first byte, or from connecting); `0s`: no limit.
    #[serde(with = "authwatch_core::config::duration")]
    pub read_header_timeout: Duration,
    /// Time for a request body to arrive after its head (else `408`); `0s`: no limit.
    #[serde(with = "authwatch_core::config::duration")]
    pub read_timeout: Duration,
    /// Time a keep-alive connection may wait for its next request; `0s`: no limit.
    #[serde(with = "authwatch_core::config::duration")]
    pub idle_timeout: Duration,
    /// Most connections open at once; more wait until one closes.
    pub max_connections: Positive,
    /// Most requests being read and handed on at once; more are refused before their body is
    /// read (`503`). See *Admission*. Unset: [`default_max_requests_in_flight`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_requests_in_flight: Option<Positive>,
    /// Serve over TLS (and require client certificates with `client_ca_file`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsServerConfig>,
    /// Require a bearer token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth: Option<AuthConfig>,
    /// Answer browsers' CORS preflights and add CORS headers (off unless `allowed_origins` is set).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cors: Option<CorsConfig>,
}

/// `protocols.http.cors`, as the Collector's `confighttp` `cors`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CorsConfig {
    /// Origins allowed to send data, e.g. `https://app.example.com` or `https://*.example.com`.
    /// A plain `*` is refused (responses allow credentials). Empty: CORS off.
    pub allowed_origins: Vec<String>,
    /// Request headers allowed beyond the CORS-safelisted ones, `Content-Type` and
    /// `X-Requested-With`; `*` allows any.
    pub allowed_headers: Vec<String>,
    /// Response headers a browser app may read (`Access-Control-Expose-Headers`).
    pub exposed_headers: Vec<String>,
    /// `Access-Control-Max-Age` in seconds: how long a browser may cache a preflight answer.
    /// `0`: no header (browsers then cache for 5 s), as in the Collector.
    pub max_age: u32,
}

impl Default for Protocols {
    /// Both protocols on, with defaults (what an absent `protocols` key means).
    fn default() -> Self {
        Protocols {
            grpc: Some(GrpcConfig::default()),
            http: Some(HttpConfig::default()),
        }
    }
}

impl Protocols {
    /// No protocol on (`protocols: {}`), which does not validate.
    pub fn none() -> Self {
        Protocols {
            grpc: None,
            http: None,
        }
    }
}

impl Default for GrpcConfig {
    fn default() -> Self {
        GrpcConfig {
            endpoint: ListenAddr::localhost(DEFAULT_GRPC_PORT),
            max_recv_msg_size_mib: Positive(DEFAULT_MAX_RECV_MSG_SIZE_MIB),
            max_concurrent_streams: None,
            max_connections: Positive(DEFAULT_MAX_CONNECTIONS),
            max_requests_in_flight: None,
            stream_window_kib: Positive(DEFAULT_STREAM_WINDOW_KIB),
            timeout: DEFAULT_GRPC_TIMEOUT,
            keepalive: KeepaliveConfig::default(),
            tls: None,
            auth: None,
        }
    }
}

impl Default for KeepaliveServerParameters {
    /// gRPC's defaults: ping after 2 h idle, wait 20 s for the answer, no age limit.
    fn default() -> Self {
        KeepaliveServerParameters {
            time: DEFAULT_KEEPALIVE_TIME,
            timeout: DEFAULT_KEEPALIVE_TIMEOUT,
            max_connection_age: None,
            max_connection_age_grace: None,
        }
    }
}

impl HttpConfig {
    /// The server limits of [`authwatch_net::serve_http`].
    pub(crate) fn limits(&self) -> Limits {
        Limits::new(
            self.read_header_timeout,
            self.read_timeout,
            self.idle_timeout,
            self.max_connections.get(),
        )
    }
}

impl GrpcConfig {
    /// The message size limit in bytes.
    pub fn max_recv_msg_size(&self) -> usize {
        self.max_recv_msg_size_mib.get().saturating_mul(1024 * 1024)
    }
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            endpoint: ListenAddr::localhost(DEFAULT_HTTP_PORT),
            traces_url_path: UrlPath::from_static("/v1/traces"),
            metrics_url_path: UrlPath::from_static("/v1/metrics"),
            logs_url_path: UrlPath::from_static("/v1/logs"),
            max_request_body_size: Positive(DEFAULT_MAX_REQUEST_BODY_SIZE),
            read_header_timeout: DEFAULT_READ_HEADER_TIMEOUT,
            read_timeout: DEFAULT_READ_TIMEOUT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            max_connections: Positive(DEFAULT_MAX_CONNECTIONS),
            max_requests_in_flight: None,
            tls: None,
            auth: None,
            cors: None,
        }
    }
}

/// `protocols: null` means the same as `protocols: {}`.
fn protocols_or_none<'de, D: Deserializer<'de>>(d: D) -> Result<Protocols, D::Error> {
    Ok(Option::<Protocols>::deserialize(d)?.unwrap_or_else(Protocols::none))
}

/// `grpc:` with no value turns the protocol on with its defaults.
fn present_means_on<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Some(Option::<T>::deserialize(d)?.unwrap_or_default()))
}

// === newtypes ===


// === impl Config ===

impl ComponentConfig for Config {
    const TYPE: &'static str = "otlp";

    fn validate(&self, v: &mut Validator) {
        let p = &self.protocols;
        if p.grpc.is_none() && p.http.is_none() {
            v.error("protocols", "at least one of `grpc` or `http` must be set");
        }
        let security = [
            p.grpc
                .as_ref()
                .map(|g| ("grpc", &g.endpoint, &g.tls, &g.auth)),
            p.http
                .as_ref()
                .map(|h| ("http", &h.endpoint, &h.tls, &h.auth)),
        ];
        for (name, endpoint, tls, auth) in security.into_iter().flatten() {
            if let Some(tls) = tls {
                tls.validate(v, &format!("protocols::{name}::tls"));
            }
            if let Some(auth) = auth {
                auth.validate(v, &format!("protocols::{name}::auth"));
                if tls.is_none() && !endpoint.addr().ip().is_loopback() {
                    v.warn(
                        &format!("protocols::{name}::auth"),
                        format!(
                            "the bearer token crosses the network in plaintext on `{endpoint}`; set `tls` as well"
                        ),
                    );
                }
            }
        }
        if let Some(http) = &p.http {
            validate_http_limits(
                v,
                "protocols::http",
                http.read_header_timeout,
                http.read_timeout,
                http.idle_timeout,
            );
        }
        if let Some(grpc) = &p.grpc {
            grpc_limits::validate(grpc, v, "protocols::grpc");
        }
        if let Some(cors) = p.http.as_ref().and_then(|h| h.cors.as_ref()) {
            for (i, origin) in cors.allowed_origins.iter().enumerate() {
                if let Some(problem) = cors::origin_problem(origin) {
                    v.error(
                        &format!("protocols::http::cors::allowed_origins::{i}"),
                        problem,
                    );
                }
            }
            if cors.allowed_origins.is_empty() && !cors.allowed_headers.is_empty() {
                v.warn(
                    "protocols::http::cors",
                    "`allowed_headers` is set but `allowed_origins` is empty, so CORS is off; list the origins",
                );
            }
        }
        if let Some(http) = &p.http {
            let paths = [
                ("traces_url_path", &http.traces_url_path),
                ("metrics_url_path", &http.metrics_url_path),
                ("logs_url_path", &http.logs_url_path),
            ];
            for (i, (name, path)) in paths.iter().enumerate() {
                if let Some((first, _)) = paths[..i].iter().find(|(_, other)| other == path) {
                    v.error(
                        &format!("protocols::http::{name}"),
                        format!("`{path}` is also `{first}`; give each signal its own path"),
                    );
                }
            }
            if let Some(grpc) = &p.grpc {
                if Resource::Listen(grpc.endpoint.addr())
                    .conflicts_with(&Resource::Listen(http.endpoint.addr()))
                {
                    v.error(
                        "protocols::http::endpoint",
                        format!(
                            "`{}` uses the same port as the gRPC endpoint `{}`; give HTTP its own port",
                            http.endpoint, grpc.endpoint
                        ),
                    );
                }
            }
        }
    }

    fn resources(&self) -> Vec<Resource> {
        let p = &self.protocols;
        p.grpc
            .iter()
            .map(|g| Resource::Listen(g.endpoint.addr()))
            .chain(p.http.iter().map(|h| Resource::Listen(h.endpoint.addr())))
            .collect()
    }
}
