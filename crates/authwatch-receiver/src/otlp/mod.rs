//! # `otlp` receiver
//!
//! Receives traces, metrics and logs over the OpenTelemetry Protocol, as the OpenTelemetry
//! Collector's `otlp` receiver does: OTLP/gRPC and OTLP/HTTP (binary protobuf and JSON), each on
//! its own port. It can feed `traces`, `metrics` and `logs` pipelines.
//!
//! ```yaml
//! receivers:
//!   otlp:                      # `{}` or nothing: both protocols on their default ports
//!     protocols:
//!       grpc:                  # present (even empty): gRPC on; absent: off
//!         endpoint: 127.0.0.1:4317
//!         max_recv_msg_size_mib: 4
//!         max_concurrent_streams: 100
//!         max_connections: 1024
//!         timeout: 30s         # longest call, reading the message included
//!         keepalive:
//!           server_parameters:
//!             time: 2h         # ping a silent client after this long
//!             timeout: 20s     # ... and drop it if the ping is not answered
//!             max_connection_age: 1h         # optional
//!             max_connection_age_grace: 30s  # optional
//!         tls:                 # optional: serve TLS
//!           cert_file: /etc/authwatch/server.crt
//!           key_file: /etc/authwatch/server.key
//!           client_ca_file: /etc/authwatch/clients-ca.crt   # optional: mutual TLS
//!         auth:                # optional: require `authorization: Bearer <token>`
//!           bearer_token: ${env:OTLP_BEARER_TOKEN}
//!       http:                  # present (even empty): HTTP on; absent: off
//!         endpoint: 127.0.0.1:4318
//!         traces_url_path: /v1/traces
//!         metrics_url_path: /v1/metrics
//!         logs_url_path: /v1/logs
//!         max_request_body_size: 20971520
//!         read_header_timeout: 10s
//!         read_timeout: 30s
//!         idle_timeout: 60s
//!         max_connections: 1024
//!         cors:                # optional: let browser apps send OTLP/HTTP (JSON or protobuf)
//!           allowed_origins: ["https://app.example.com", "https://*.example.com"]
//!           allowed_headers: ["x-tenant"]
//!           max_age: 7200
//! ```
//!
//! ## Options
//!
//! Without a `protocols` key (`otlp:` or `otlp: {}`) both protocols listen on their defaults.
//! When `protocols` is given, only the protocols listed in it are on; `grpc:` or `http:` with no
//! value turns that protocol on with its defaults. `protocols: {}` is a config error: at least
//! one of `grpc` or `http` must be set.
//!
//! | option | default | meaning |
//! | --- | --- | --- |
//! | `protocols.grpc.endpoint` | `127.0.0.1:4317` | `host:port` to listen on; host is an IP address or `localhost`, `0.0.0.0` for every interface |
//! | `protocols.grpc.max_recv_msg_size_mib` | `4` | largest request message in MiB, checked on the wire and again after decompression |
//! | `protocols.grpc.max_concurrent_streams` | unlimited | HTTP/2 streams (concurrent RPCs) per client connection |
//! | `protocols.grpc.max_connections` | `1024` | connections open at once; more wait until one closes |
//! | `protocols.grpc.max_requests_in_flight` | 4 per core (8 on 2 cores) | calls being read and handed on at once; more are refused with `UNAVAILABLE` before their message is read (see *Admission*); raise it for a gateway whose many senders send in bursts |
//! | `protocols.grpc.stream_window_kib` | `128` | the HTTP/2 flow-control window of each call, in KiB (at most 16384): what a client may send of a message before authwatch reads it. Small, a refused call costs little and overload stays fast; one call moves at most one window per round trip, so raise it (1024 to 4096) for senders a WAN away |
//! | `protocols.grpc.timeout` | `30s` | longest time one call may take, reading its message included (`CANCELLED` after it); a shorter client `grpc-timeout` wins; `0s`: no limit |
//! | `protocols.grpc.keepalive.server_parameters.time` | `2h` | ping a client after this long without activity; `0s`: never |
//! | `protocols.grpc.keepalive.server_parameters.timeout` | `20s` | close the connection when a ping is not answered within this long |
//! | `protocols.grpc.keepalive.server_parameters.max_connection_age` | (none) | send `GOAWAY` once a connection is this old (calls in flight finish; clients reconnect, which spreads them over replicas) |
//! | `protocols.grpc.keepalive.server_parameters.max_connection_age_grace` | (none) | after `max_connection_age`, close the connection even with calls in flight after this long; needs `max_connection_age` |
//! | `protocols.http.endpoint` | `127.0.0.1:4318` | `host:port` to listen on |
//! | `protocols.http.traces_url_path` | `/v1/traces` | path of trace exports (a missing leading `/` is added) |
//! | `protocols.http.metrics_url_path` | `/v1/metrics` | path of metric exports |
//! | `protocols.http.logs_url_path` | `/v1/logs` | path of log exports |
//! | `protocols.http.max_request_body_size` | `20971520` (20 MiB) | largest request body in bytes, checked on the wire and again after decompression |
//! | `protocols.http.read_header_timeout` | `10s` | time for a request head to arrive, from connecting (first request) or from its first byte (keep-alive); else the connection is closed; `0s`: no limit |
//! | `protocols.http.read_timeout` | `30s` | time for a request body to arrive after its head; else `408`; `0s`: no limit |
//! | `protocols.http.idle_timeout` | `60s` | time a keep-alive connection may wait for its next request; `0s`: no limit |
//! | `protocols.http.max_connections` | `1024` | connections open at once (TLS handshakes included); more wait until one closes |
//! | `protocols.http.max_requests_in_flight` | 4 per core (8 on 2 cores) | requests being read and handed on at once; more are refused with `503` before their body is read (see *Admission*) |
//! | `protocols.<grpc\|http>.tls.cert_file` | (plaintext) | PEM certificate chain to serve TLS 1.2/1.3 with (rustls, ring) |
//! | `protocols.<grpc\|http>.tls.key_file` | — | PEM private key of that certificate (PKCS#8, PKCS#1 or SEC1) |
//! | `protocols.<grpc\|http>.tls.client_ca_file` | (no client certificates) | PEM CA certificates: clients must present a certificate chaining to one (mutual TLS) |
//! | `protocols.<grpc\|http>.auth.bearer_token` | (no auth) | secret clients send as `Authorization: Bearer <token>`; write it as `${env:...}` |
//! | `protocols.http.cors.allowed_origins` | `[]` (CORS off) | origins browsers may send from, `scheme://host[:port]`; `*` matches any run of characters (`https://*.example.com`); a plain `*` is refused |
//! | `protocols.http.cors.allowed_headers` | `[]` | request headers allowed beyond the CORS-safelisted ones, `Content-Type` and `X-Requested-With` (e.g. `Authorization` with `auth`, `Content-Encoding` for gzip); `*` allows any |
//! | `protocols.http.cors.exposed_headers` | `[]` | response headers the page may read (`Access-Control-Expose-Headers`) |
//! | `protocols.http.cors.max_age` | `0` (no header) | `Access-Control-Max-Age` in seconds: how long browsers cache a preflight answer |
//!
//! The defaults listen on loopback only, as the Collector's do: set `0.0.0.0:4317` to accept
//! data from other hosts. The two endpoints and the three URL paths must differ.
//!
//! ## Security
//!
//! With `tls`, the certificate files are read and checked when the receiver is built (a missing
//! file, a file without a certificate or key, a key that does not belong to the certificate, an
//! unusable CA fail startup with an error naming the option and the file); `validate` checks
//! only that `cert_file` and `key_file` come together. Handshakes run off the accept loop, at most
//! 256 at once, each within 10 s. A plaintext client, or with `client_ca_file` a client without a
//! trusted certificate, fails the handshake and never reaches the OTLP services.
//!
//! With `auth.bearer_token`, a request without `Authorization: Bearer <token>` (gRPC metadata
//! `authorization`; the scheme is case-insensitive) is answered `UNAUTHENTICATED` / `401` with
//! `WWW-Authenticate: Bearer`, before its body is read: nothing enters the pipelines. The token
//! is compared in constant time, and refusals are counted in
//! `authwatch_receiver_unauthenticated_requests_total{receiver,transport}`. `validate` warns when
//! a token would cross a non-loopback network in plaintext (no `tls`).
//!
//! ## Slow, idle and too many clients
//!
//! Both servers bound what a client can hold, so that slow clients cannot hold the server:
//!
//! - **Connections**: at most `max_connections` open at once per protocol. At the cap, new
//!   connections are not refused: they wait in the kernel's listen backlog (their `connect`
//!   succeeds) and are served as soon as another connection closes. A warning is logged, at
//!   most once a minute, while HTTP is at the cap.
//! - **HTTP**: a client that sends its request head slowly (or nothing at all after
//!   connecting) is disconnected after `read_header_timeout`; a body not complete within
//!   `read_timeout` of its head is answered `408 Request Timeout` and the connection closed; a
//!   keep-alive connection without a request for `idle_timeout` is closed (`GOAWAY` on HTTP/2).
//!   Other clients are served meanwhile. When the server closes a connection whose request body
//!   it did not read to the end (`413`, `401`, `408`), it first reads and discards what the
//!   client still sends, for up to 5 s and 4 MiB, so that a client writing a large body still
//!   reads the answer instead of a connection reset.
//! - **gRPC**: a call longer than `timeout` (a slowly sent message included) ends with
//!   `CANCELLED`; a connection that sends nothing within 10 s of connecting (after the TLS
//!   handshake) is closed; `keepalive.server_parameters` pings idle clients and can retire old
//!   connections.
//!
//! The Collector's defaults differ (`read_header_timeout` 1m, `read_timeout` 0 = none); these
//! suit a sidecar.
//!
//! ## CORS (browser apps)
//!
//! With `cors.allowed_origins`, a web page instrumented with the OpenTelemetry JavaScript SDK
//! (`@opentelemetry/exporter-trace-otlp-http`) can export to the HTTP endpoint. As in the
//! Collector, responses allow credentials, which is why a plain `*` is refused at `validate`:
//!
//! - a preflight (`OPTIONS` with `Access-Control-Request-Method`, any path) is answered before
//!   authentication: `204` with `Access-Control-Allow-Origin: <origin>`,
//!   `Access-Control-Allow-Credentials: true`, `Access-Control-Allow-Methods: POST`,
//!   `Access-Control-Allow-Headers` (the requested ones) and `Access-Control-Max-Age` (with
//!   `max_age` > 0) when the origin, the method `POST` and every requested header are allowed;
//!   otherwise `403` without any of them, and the browser does not send the request (the
//!   Collector answers `204` without them: the browser blocks either way, `403` makes the
//!   refusal visible in the browser's network panel);
//! - every other response to a request from an allowed origin, errors included (`400`, `401`,
//!   `503`, ...), carries `Access-Control-Allow-Origin` and `Access-Control-Allow-Credentials`;
//! - a request from another origin is served like one without `Origin` (as the Collector does):
//!   no CORS headers, so a browser hides the response from the page;
//! - every response carries `Vary: Origin`.
//!
//! Without `cors`, `OPTIONS` is answered `405` like any other method but `POST`.
//!
//! ## gRPC
//!
//! The `opentelemetry.proto.collector.{trace,metrics,logs}.v1` `Export` services, over HTTP/2
//! (cleartext, or TLS with `tls`). Requests may be gzip-compressed (`grpc-encoding: gzip`). A
//! message larger than `max_recv_msg_size_mib`, on the wire or once inflated, is refused with
//! `RESOURCE_EXHAUSTED` without `RetryInfo` (as grpc-go; a compressed message is refused before
//! it is inflated any further).
//!
//! ## HTTP
//!
//! `POST` to the configured paths, with
//!
//! - `Content-Type: application/x-protobuf` (binary protobuf) or `application/json` (OTLP/JSON:
//!   lowerCamelCase keys, hex trace and span ids, enums as integers, 64-bit integers as strings or
//!   numbers, unknown fields ignored); parameters such as `; charset=utf-8` are fine. The response
//!   uses the request's encoding. In JSON, `"NaN"` and `"Infinity"` are not accepted as metric
//!   values, and a metric whose data cannot be decoded fails the request (`400`) rather than
//!   being dropped silently.
//! - `Content-Encoding: gzip` (or `x-gzip`), `identity`, or none.
//!
//! ## Responses
//!
//! A request whose data all reached the pipelines gets `OK` / `200` with an empty
//! `Export*ServiceResponse`. A request carrying items that are invalid per the OTLP spec is
//! *partially* accepted: spans whose `trace_id` is not 16 bytes, `span_id` not 8 bytes or
//! non-empty `parent_span_id` not 8 bytes, and log records with a non-empty `trace_id` not 16
//! bytes or non-empty `span_id` not 8 bytes are dropped, the rest is forwarded unchanged, and the
//! response carries `partial_success` with `rejected_spans` / `rejected_log_records` and an
//! `error_message` (clients must not retry it). Failures follow the OTLP spec:
//!
//! | what happened | gRPC status | HTTP status |
//! | --- | --- | --- |
//! | a pipeline queue is full, or the pipeline is shutting down | `UNAVAILABLE` + `RetryInfo` 1s | `503` + `Retry-After: 1` |
//! | a pipeline refused to protect the process (throttled) | `RESOURCE_EXHAUSTED` + `RetryInfo` | `429` + `Retry-After` (seconds) |
//! | no pipeline takes this signal from this receiver | `UNIMPLEMENTED` | `404` |
//! | the pipeline refused the data for good | `INVALID_ARGUMENT` | `400` |
//! | the body is not valid protobuf / JSON, or truncated | `INVALID_ARGUMENT` (grpc-go says `INTERNAL`) | `400` |
//! | bad or truncated gzip, a gRPC frame cut short | `INVALID_ARGUMENT` | `400` |
//! | unsupported `grpc-encoding` / `Content-Encoding` | `UNIMPLEMENTED` (the gRPC spec) | `400` |
//! | a compressed gRPC frame without `grpc-encoding` | `INTERNAL` (the gRPC spec) | — |
//! | message or body larger than the limit | `RESOURCE_EXHAUSTED`, no `RetryInfo` | `413` |
//! | `Content-Type` other than protobuf or JSON | — | `415` |
//! | unknown path / method other than `POST` | `UNIMPLEMENTED` | `404` / `405` |
//!
//! OTLP clients retry `UNAVAILABLE`, `RESOURCE_EXHAUSTED` with `RetryInfo`, `429` and `503`,
//! honouring the hint, and nothing else here: a request over the limit is not retried (tonic
//! says `OUT_OF_RANGE`, which OTLP clients would retry, so the receiver answers
//! `RESOURCE_EXHAUSTED` instead); lower the sender's batch size or raise the limit.
//! Every HTTP 4xx/5xx for an OTLP path carries a `google.rpc.Status` body, encoded like the
//! request (protobuf when the content type was not understood); `400` for bad data includes a
//! `google.rpc.BadRequest` detail.
//!
//! ## Self-telemetry
//!
//! Per transport (`transport="grpc"` / `"http"`): `authwatch_receiver_accepted_{spans,
//! metric_points,log_records}_total` counts items the pipelines accepted;
//! `authwatch_receiver_refused_*_total` counts items the pipelines refused plus invalid items
//! dropped from partially accepted requests (a body that cannot be decoded has no countable
//! items); `authwatch_receiver_refused_requests_total` counts requests refused before their body
//! was read (see *Admission*); the histogram `authwatch_receiver_request_duration_seconds` is
//! the time from admitting a request to its answer (the latency of accepted requests, measured
//! where authwatch answers).
//!
//! ## Admission: refusing before the body is read
//!
//! Under overload a refusal must cost less than an acceptance, or refusing eats the capacity it
//! protects. So before the body is read (HTTP: after the headers, with the `Content-Length`; gRPC:
//! before the message, and again with the length its frame header declares, at most one HTTP/2
//! flow-control window in: `stream_window_kib`, 128 KiB by default, so a refused call costs a
//! client at most that much sending and authwatch that much discarding), the receiver refuses
//! the request:
//!
//! - while `max_requests_in_flight` requests of its transport (default 4 per core the process
//!   may use, a cgroup CPU quota counted: 8 on 2 cores) are being read and handed on:
//!   `UNAVAILABLE` / `503`. Under overload this is what keeps the requests it admits
//!   answered about as fast as at capacity (each admitted request shares the core with fewer
//!   others) while the rest cost no read (docs/performance.md, the overload row). A sidecar's
//!   senders export one request at a time each; a gateway with many concurrent senders raises it;
//! - while the signal's pipeline is backed up (an exporter's sending queue at least half full by
//!   requests or by bytes, in memory or on disk, or a `batch` processor retrying a batch its
//!   exporter refused): `UNAVAILABLE` / `503`,
//!   instead of reading the request and letting it wait for room;
//! - while the bytes held in queues, batches and bodies being read would pass a
//!   `memory_limiter`'s held limit with this request, or its resident-set backstop refuses
//!   (the run's memory budget, `authwatch_core::budget`; without a `memory_limiter` this never
//!   refuses): `RESOURCE_EXHAUSTED` + `RetryInfo` / `429` + `Retry-After` (its `check_interval`).
//!
//! Each refusal is counted in `authwatch_receiver_refused_requests_total`.
//!
//! Nothing is read or decoded, and nothing acknowledged is dropped to make room: data is refused
//! before it is accepted, never after. A body being read counts as held until the pipelines have
//! it. A request declaring more than `max_request_body_size` gets `413` first.
//!
//! ## Not supported (yet)
//!
//! TLS certificate reloading, `min_version`, other authenticators (OIDC, mTLS identity mapping), `include_metadata`, compression other than gzip (zstd, snappy,
//! deflate, lz4), profiles, HTTP `write_timeout` and `keep_alives_enabled`, gRPC
//! `keepalive.server_parameters.max_connection_idle` and `keepalive.enforcement_policy`.
//!
//! ## Lifecycle
//!
//! Both ports are bound when the receiver is built, so a port in use fails startup. On shutdown
//! the receiver stops accepting connections, answers the requests in flight, and then ends.

use std::net::SocketAddr;
use std::sync::Arc;

use authwatch_core::{BuildError, ReceiverConfig, ReceiverContext, Router, RunError, Running, Settings, Signals};
use authwatch_net::ListenAddr;
use tokio::net::TcpListener;
use tracing::{info, warn};

pub use self::auth::AuthConfig;
pub use authwatch_net::TlsServerConfig;

mod auth;
mod config;
mod cors;
mod grpc;
mod grpc_frame;
mod grpc_limits;
mod http;
pub(crate) use http::{gunzip_capped, InflateError};
pub(crate) mod ingest;
pub(crate) mod json;
mod status;

pub use self::config::*;

impl ReceiverConfig for Config {
    fn signals(&self) -> Signals {
        Signals::ALL
    }

    async fn build(&self, cx: ReceiverContext) -> Result<Running, BuildError> {
        Ok(Receiver::bind(self, cx).await?.run())
    }
}

// === impl Receiver ===

/// A bound, not yet serving, OTLP receiver.
pub(crate) struct Receiver {
    settings: Settings,
    next: Router,
    grpc: Option<Bound<GrpcConfig>>,
    http: Option<Bound<HttpConfig>>,
}

/// One protocol's config, its bound port and its loaded TLS config.
struct Bound<C> {
    config: C,
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
}

/// Reads and checks a protocol's TLS files (build time, before any port is bound).
fn load_tls(
    protocol: &str,
    tls: Option<&TlsServerConfig>,
    alpn: &[&[u8]],
) -> Result<Option<Arc<rustls::ServerConfig>>, BuildError> {
    tls.map(|t| t.load(alpn))
        .transpose()
        .map_err(|e| BuildError::option(format!("protocols::{protocol}"), e))
}

/// A transport's in-flight limit: its `max_requests_in_flight`, or the default for the cores.
fn in_flight_limit(configured: Option<authwatch_core::config::Positive>) -> usize {
    configured.map_or_else(default_max_requests_in_flight, |n| n.get())
}

fn local_addr(l: &TcpListener, configured: SocketAddr) -> SocketAddr {
    l.local_addr().unwrap_or(configured)
}

fn log_listening(
    protocol: &str,
    listener: &TcpListener,
    endpoint: ListenAddr,
    tls: Option<&TlsServerConfig>,
    auth: bool,
) {
    let endpoint = local_addr(listener, endpoint.addr());
    let tls = match tls {
        None => "off",
        Some(t) if t.is_mutual() => "mutual",
        Some(_) => "on",
    };
    if tls == "off" && !auth && !endpoint.ip().is_loopback() {
        warn!(
            endpoint = %endpoint,
            protocol,
            "OTLP receiver accepts plaintext data from any host without authentication; set `tls` and `auth`."
        );
    }
    if protocol == "grpc" {
        info!(endpoint = %endpoint, tls, bearer_auth = auth, "OTLP gRPC receiver listening.");
    } else {
        info!(endpoint = %endpoint, tls, bearer_auth = auth, "OTLP HTTP receiver listening.");
    }
}

impl Receiver {
    /// Binds every enabled protocol's port.
    pub(crate) async fn bind(config: &Config, cx: ReceiverContext) -> Result<Self, BuildError> {
        let p = &config.protocols;
        let grpc_tls = match &p.grpc {
            Some(g) => load_tls("grpc", g.tls.as_ref(), &[b"h2"])?,
            None => None,
        };
        let http_tls = match &p.http {
            Some(h) => load_tls("http", h.tls.as_ref(), &[b"h2", b"http/1.1"])?,
            None => None,
        };
        let grpc = match &p.grpc {
            Some(g) => Some(Bound {
                config: g.clone(),
                listener: authwatch_net::server::bind(g.endpoint.addr()).await?,
                tls: grpc_tls,
            }),
            None => None,
        };
        let http = match &p.http {
            Some(h) => Some(Bound {
                config: h.clone(),
                listener: authwatch_net::server::bind(h.endpoint.addr()).await?,
                tls: http_tls,
            }),
            None => None,
        };
        if let Some(b) = &grpc {
            let c = &b.config;
            log_listening(
                "grpc",
                &b.listener,
                c.endpoint,
                c.tls.as_ref(),
                c.auth.is_some(),
            );
        }
        if let Some(b) = &http {
            let c = &b.config;
            log_listening(
                "http",
                &b.listener,
                c.endpoint,
                c.tls.as_ref(),
                c.auth.is_some(),
            );
        }
        Ok(Receiver {
            settings: cx.settings,
            next: cx.next,
            grpc,
            http,
        })
    }

    /// The bound gRPC address (the real port when configured with port 0).
    #[cfg(test)]
    pub(crate) fn grpc_addr(&self) -> Option<SocketAddr> {
        self.grpc
            .as_ref()
            .and_then(|b| b.listener.local_addr().ok())
    }

    /// The bound HTTP address.
    #[cfg(test)]
    pub(crate) fn http_addr(&self) -> Option<SocketAddr> {
        self.http
            .as_ref()
            .and_then(|b| b.listener.local_addr().ok())
    }

    /// Serves until `settings.shutdown` is cancelled and in-flight requests are answered.
    pub(crate) fn run(self) -> Running {
        let Receiver {
            settings,
            next,
            grpc,
            http,
        } = self;
        let bearer = |auth: &Option<AuthConfig>, transport: &str| {
            auth.as_ref()
                .map(|a| auth::BearerAuth::new(a, &settings.telemetry, &settings.id, transport))
        };
        let grpc = grpc.map(|b| {
            let ingest = ingest::Ingest::new(
                next.clone(),
                settings.telemetry.receiver(&settings.id, "grpc"),
            )
            .with_budget(settings.budget.clone())
            .with_in_flight_limit(in_flight_limit(b.config.max_requests_in_flight));
            let auth = bearer(&b.config.auth, "grpc");
            grpc::serve(
                b.config,
                b.listener,
                b.tls,
                auth,
                ingest,
                settings.shutdown.clone(),
            )
        });
        let http = http.map(|b| {
            let ingest = ingest::Ingest::new(
                next.clone(),
                settings.telemetry.receiver(&settings.id, "http"),
            )
            .with_budget(settings.budget.clone())
            .with_in_flight_limit(in_flight_limit(b.config.max_requests_in_flight));
            let auth = bearer(&b.config.auth, "http");
            http::serve(
                &b.config,
                b.listener,
                b.tls,
                auth,
                ingest,
                settings.shutdown.clone(),
            )
        });
        Box::pin(async move {
            let grpc = async {
                match grpc {
                    Some(f) => f.await,
                    None => Ok(()),
                }
            };
            let http = async {
                match http {
                    Some(f) => f.await,
                    None => Ok(()),
                }
            };
            let result: Result<((), ()), RunError> = tokio::try_join!(grpc, http);
            info!("OTLP receiver stopped.");
            result.map(|_| ())
        })
    }
}

#[cfg(test)]
mod tests;
