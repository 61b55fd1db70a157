//! A small HTTP/1.1 client that times each phase, as blackbox_exporter does: DNS (tokio
//! `lookup_host`), TCP connect, TLS handshake (rustls with ring), request up to the first
//! response byte, and body transfer. It also keeps the server certificate's expiry, even when
//! the handshake fails because of it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use authwatch_net::tls::{ServerVerifier, TlsError};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use rustls::CertificateError;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::TlsConfig;

/// Largest response body read (token responses and JWKS are a few KiB, login pages tens of
/// KiB); a larger body is not buffered: the exchange ends with [`TransportError::TooLarge`].
pub(crate) const MAX_BODY: usize = 1024 * 1024;

const USER_AGENT: &str = concat!("authwatch-synthetic/", env!("CARGO_PKG_VERSION"));

// === Endpoint ===

/// A parsed `http(s)://host[:port]/path?query` URL. Its `Debug` shows only the redacted URL.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Endpoint {
    pub https: bool,
    pub host: String,
    pub port: u16,
    pub path_and_query: String,
    /// The URL for `url.full`: no user info, query values replaced by `REDACTED`.
    pub url_full: String,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Endpoint").field(&self.url_full).finish()
    }
}

/// Why a probe URL was refused.
#[derive(Debug, thiserror::Error)]
pub(crate) enum UrlError {
    #[error("invalid URL `{url}`: {source}")]
    Invalid {
        url: String,
        #[source]
        source: http::uri::InvalidUri,
    },
    #[error("invalid URL `{0}`: must start with https:// or http://")]
    Scheme(String),
    #[error("invalid URL `{0}`: no host")]
    NoHost(String),
    /// The URL is not repeated: its user info may be a secret.
    #[error("credentials in the URL are not supported: use `client_secret` or `headers`")]
    Credentials,
}

impl Endpoint {
    pub fn parse(url: &str) -> Result<Endpoint, UrlError> {
        let uri: http::Uri = url.parse().map_err(|source| UrlError::Invalid {
            url: url.to_owned(),
            source,
        })?;
        let https = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => return Err(UrlError::Scheme(url.to_owned())),
        };
        let authority = uri
            .authority()
            .ok_or_else(|| UrlError::NoHost(url.to_owned()))?;
        if authority.as_str().contains('@') {
            return Err(UrlError::Credentials);
        }
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']');
        if host.is_empty() {
            return Err(UrlError::NoHost(url.to_owned()));
        }
        let port = authority.port_u16().unwrap_or(if https { 443 } else { 80 });
        let path_and_query = uri
            .path_and_query()
            .map(|p| p.as_str().to_owned())
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| "/".into());
        let mut url_full = format!(
            "{}://{}{}",
            if https { "https" } else { "http" },
            authority.as_str(),
            uri.path()
        );
        if let Some(q) = uri.query() {
            let redacted: Vec<String> = q
                .split('&')
                .map(|kv| match kv.split_once('=') {
                    Some((k, _)) => format!("{k}=REDACTED"),
                    None => kv.to_owned(),
                })
                .collect();
            url_full.push('?');
            url_full.push_str(&redacted.join("&"));
        }
        Ok(Endpoint {
            https,
            host: host.to_owned(),
            port,
            path_and_query,
            url_full,
        })
    }

    /// The `Host` header value.
    fn host_header(&self) -> String {
        let default = if self.https { 443 } else { 80 };
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        if self.port == default {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }
}

// === Phases ===

/// A timed phase of one HTTP exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PhaseName {
    Dns,
    Connect,
    Tls,
    /// From sending the request to the first byte of the response (the status line).
    Request,
    /// Reading the response body.
    Transfer,
}

impl PhaseName {
    pub const fn as_str(self) -> &'static str {
        match self {
            PhaseName::Dns => "dns",
            PhaseName::Connect => "connect",
            PhaseName::Tls => "tls",
            PhaseName::Request => "request",
            PhaseName::Transfer => "transfer",
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Timing {
    pub phase: PhaseName,
    pub start: Instant,
    pub end: Instant,
}

impl Timing {
    pub fn duration(&self) -> Duration {
        self.end.saturating_duration_since(self.start)
    }
}

/// What one HTTP exchange did, whatever its result.
#[derive(Debug)]
pub(crate) struct Exchange {
    pub method: String,
    pub endpoint: Endpoint,
    pub start: Instant,
    pub end: Instant,
    pub phases: Vec<Timing>,
    pub peer: Option<SocketAddr>,
    /// The server certificate's `notAfter`, Unix seconds.
    pub cert_not_after: Option<i64>,
    pub result: Result<Response, TransportError>,
}

#[derive(Debug)]
pub(crate) struct Response {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

/// Why an exchange got no (complete) response.
#[derive(Debug, Clone, thiserror::Error)]
pub(crate) enum TransportError {
    #[error("cannot resolve `{host}`: {message}")]
    Dns { host: String, message: String },
    #[error("cannot connect to {target}: {message}")]
    Connect { target: String, message: String },
    #[error("TLS handshake with `{host}` failed: {message}")]
    Tls {
        host: String,
        message: String,
        /// Low-cardinality `error.type`.
        kind: &'static str,
    },
    #[error("no complete answer within the timeout")]
    Timeout,
    #[error("HTTP exchange with `{host}` failed: {message}")]
    Http { host: String, message: String },
    #[error("the response of `{host}` is larger than {limit} bytes; it was not read")]
    TooLarge { host: String, limit: usize },
}

impl TransportError {
    /// The `error.type` value.
    pub fn error_type(&self) -> &'static str {
        match self {
            TransportError::Dns { .. } => "dns",
            TransportError::Connect { .. } => "connect",
            TransportError::Tls { kind, .. } => kind,
            TransportError::Timeout => "timeout",
            TransportError::Http { .. } => "http",
            TransportError::TooLarge { .. } => "response_too_large",
        }
    }
}

/// Records phases as they start and end, so that a timeout keeps what was done.
#[derive(Default)]
struct Recorder {
    phases: Vec<Timing>,
    current: Option<(PhaseName, Instant)>,
    peer: Option<SocketAddr>,
}

impl Recorder {
    fn begin(&mut self, phase: PhaseName) {
        self.end();
        self.current = Some((phase, Instant::now()));
    }

    fn end(&mut self) {
        if let Some((phase, start)) = self.current.take() {
            self.phases.push(Timing {
                phase,
                start,
                end: Instant::now(),
            });
        }
    }
}

// === Client ===

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// One check's HTTP client: its TLS settings, used for one exchange at a time.
pub(crate) struct Client {
    tls: Arc<rustls::ClientConfig>,
    /// Keeps the server certificate of the last handshake, for its expiry.
    verifier: Arc<ServerVerifier>,
    /// `tls.server_name_override`: sent as SNI instead of the URL's host.
    server_name: Option<ServerName<'static>>,
}

impl Client {
    /// Reads the TLS files of `cfg` (when the receiver is built).
    pub fn new(cfg: &TlsConfig) -> Result<Client, TlsError> {
        let verifier = Arc::new(cfg.verifier()?.capturing());
        let tls = cfg.rustls_config(verifier.clone(), &[b"http/1.1"])?;
        Ok(Client {
            tls: Arc::new(tls),
            verifier,
            server_name: cfg.server_name()?,
        })
    }

    /// Sends one request and reads the whole response, by `deadline`.
    pub async fn exchange(
        &self,
        method: &http::Method,
        endpoint: &Endpoint,
        headers: &[(http::HeaderName, http::HeaderValue)],
        body: Bytes,
        deadline: Instant,
    ) -> Exchange {
        let start = Instant::now();
        let mut rec = Recorder::default();
        self.verifier.take_seen();
        let result = match tokio::time::timeout_at(
            deadline,
            self.send(&mut rec, method, endpoint, headers, body),
        )
        .await
        {
            Ok(r) => r,
            Err(_) => Err(TransportError::Timeout),
        };
        rec.end();
        Exchange {
            method: method.as_str().to_owned(),
            endpoint: endpoint.clone(),
            start,
            end: Instant::now(),
            phases: rec.phases,
            peer: rec.peer,
            cert_not_after: self.verifier.take_seen().and_then(|der| not_after(&der)),
            result,
        }
    }

    async fn send(
        &self,
        rec: &mut Recorder,
        method: &http::Method,
        ep: &Endpoint,
        headers: &[(http::HeaderName, http::HeaderValue)],
        body: Bytes,
    ) -> Result<Response, TransportError> {
        rec.begin(PhaseName::Dns);
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((ep.host.as_str(), ep.port))
            .await
            .map_err(|e| TransportError::Dns {
                host: ep.host.clone(),
                message: e.to_string(),
            })?
            .collect();
        if addrs.is_empty() {
            return Err(TransportError::Dns {
                host: ep.host.clone(),
                message: "no addresses".into(),
            });
        }
        rec.begin(PhaseName::Connect);
        let mut last = None;
        let mut tcp = None;
        for addr in &addrs {
            match TcpStream::connect(addr).await {
                Ok(s) => {
                    rec.peer = Some(*addr);
                    tcp = Some(s);
                    break;
                }
                Err(e) => last = Some(format!("{addr}: {e}")),
            }
        }
        let tcp = tcp.ok_or_else(|| TransportError::Connect {
            target: format!("{}:{}", ep.host, ep.port),
            message: last.unwrap_or_default(),
        })?;
        let _ = tcp.set_nodelay(true);
        let io: Box<dyn Io> = if ep.https {
            rec.begin(PhaseName::Tls);
            let name = match &self.server_name {
                Some(name) => name.clone(),
                None => ServerName::try_from(ep.host.clone()).map_err(|e| TransportError::Tls {
                    host: ep.host.clone(),
                    message: e.to_string(),
                    kind: "tls_server_name",
                })?,
            };
            let stream = tokio_rustls::TlsConnector::from(self.tls.clone())
                .connect(name, tcp)
                .await
                .map_err(|e| tls_error(&ep.host, e))?;
            Box::new(stream)
        } else {
            Box::new(tcp)
        };
        rec.begin(PhaseName::Request);
        let http_err = |e: &dyn std::fmt::Display| TransportError::Http {
            host: ep.host.clone(),
            message: e.to_string(),
        };
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
            .await
            .map_err(|e| http_err(&e))?;
        let conn = AbortOnDrop(tokio::spawn(async move {
            let _ = conn.await;
        }));
        let mut req = http::Request::builder()
            .method(method.clone())
            .uri(ep.path_and_query.as_str())
            .header(http::header::HOST, ep.host_header())
            .header(http::header::USER_AGENT, USER_AGENT)
            .header(http::header::CONNECTION, "close");
        for (k, v) in headers {
            req = req.header(k, v);
        }
        let req = req.body(Full::new(body)).map_err(|e| http_err(&e))?;
        let resp = sender.send_request(req).await.map_err(|e| http_err(&e))?;
        rec.begin(PhaseName::Transfer);
        let (parts, body) = resp.into_parts();
        let body = Limited::new(body, MAX_BODY)
            .collect()
            .await
            .map_err(|e| {
                if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() {
                    TransportError::TooLarge {
                        host: ep.host.clone(),
                        limit: MAX_BODY,
                    }
                } else {
                    http_err(&e)
                }
            })?
            .to_bytes();
        rec.end();
        drop(conn);
        Ok(Response {
            status: parts.status.as_u16(),
            headers: parts.headers,
            body,
        })
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn tls_error(host: &str, e: std::io::Error) -> TransportError {
    // tokio-rustls reports rustls errors inside io::Error; this is the only way to classify them.
    let kind = match e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
        Some(rustls::Error::InvalidCertificate(c)) => match c {
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                "certificate_expired"
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                "certificate_not_yet_valid"
            }
            CertificateError::UnknownIssuer => "certificate_unknown_issuer",
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                "certificate_name_mismatch"
            }
            _ => "certificate_invalid",
        },
        Some(_) => "tls_handshake",
        None => "tls_handshake",
    };
    TransportError::Tls {
        host: host.to_owned(),
        message: e.to_string(),
        kind,
    }
}

/// The `notAfter` of a DER certificate, in Unix seconds.
pub(crate) fn not_after(der: &[u8]) -> Option<i64> {
    use x509_cert::der::Decode;
    let cert = x509_cert::Certificate::from_der(der).ok()?;
    let t = cert.tbs_certificate.validity.not_after.to_unix_duration();
    i64::try_from(t.as_secs()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_parse_and_redact() {
        let e = Endpoint::parse("https://tenant.us.auth0.com/oauth/token").unwrap();
        assert!(e.https);
        assert_eq!((e.host.as_str(), e.port), ("tenant.us.auth0.com", 443));
        assert_eq!(e.path_and_query, "/oauth/token");
        assert_eq!(e.host_header(), "tenant.us.auth0.com");
        let e = Endpoint::parse("http://127.0.0.1:8080/x?token=abc&flag").unwrap();
        assert_eq!(e.url_full, "http://127.0.0.1:8080/x?token=REDACTED&flag");
        assert_eq!(e.path_and_query, "/x?token=abc&flag");
        assert_eq!(e.host_header(), "127.0.0.1:8080");
        assert!(Endpoint::parse("ftp://x/").is_err());
        assert!(Endpoint::parse("https://user:pw@x/").is_err());
        assert!(Endpoint::parse("not a url").is_err());
    }
}
