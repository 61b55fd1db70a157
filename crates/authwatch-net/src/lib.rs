//! What every authwatch socket needs, in one place, as the OpenTelemetry Collector's
//! `confighttp`, `configgrpc` and `configtls` packages:
//!
//! - [`addr`]: the listen-address and URL config newtypes ([`ListenAddr`], [`UrlPath`],
//!   [`HttpUrl`], [`GrpcEndpoint`]), each its parse rule plus one [`string_newtype!`] line;
//! - [`server`]: serving HTTP within limits ([`serve_http`]: connection cap, header, body and idle
//!   timeouts, graceful shutdown, lingering close) for **every** server authwatch opens
//!   (receivers, telemetry, health check, status page, prometheus), and the connection cap of
//!   tonic's gRPC servers ([`server::LimitedIncoming`]);
//! - [`tls`]: the server TLS config and accept loop ([`TlsServerConfig`]), the client TLS config
//!   ([`TlsClientConfig`]) and the one server-certificate verifier every client uses;
//! - [`retry_after`]: `Retry-After` (delay-seconds or an HTTP date);
//! - [`client`]: the shared reqwest client (rustls, timeouts, user agent, TLS);
//! - [`otlp`]: the OTLP/gRPC method paths.
//!
//! Component crates depend on this crate and on `authwatch-core`, never on each other; this
//! crate depends on `authwatch-core` only.

pub mod addr;
pub mod client;
mod newtype;
pub mod otlp;
pub mod retry_after;
pub mod server;
pub mod tls;

pub use addr::{GrpcEndpoint, HttpUrl, ListenAddr, UrlPath};
pub use client::{http_client, ClientError, USER_AGENT};
pub use retry_after::retry_after;
pub use server::{serve_http, Limits};
pub use tls::{TlsClientConfig, TlsError, TlsServerConfig};

/// What [`string_newtype!`] expands to refers to; not part of the API.
#[doc(hidden)]
pub mod __private {
    pub use serde;
}
