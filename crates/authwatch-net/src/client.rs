//! The HTTP client every component that sends over HTTP builds its reqwest client with.

use std::sync::Arc;
use std::time::Duration;

use crate::tls::{TlsClientConfig, TlsError};

/// `User-Agent` of authwatch's HTTP and gRPC clients.
pub const USER_AGENT: &str = concat!("authwatch/", env!("CARGO_PKG_VERSION"));

/// Why the HTTP client cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("cannot build the HTTP client: {}", chain(.0))]
    Build(#[source] reqwest::Error),
}

/// An error and its sources in one line (`a: b: c`), skipping a source its parent already says.
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cur = s.source();
    }
    out
}

impl From<ClientError> for authwatch_core::BuildError {
    fn from(e: ClientError) -> Self {
        authwatch_core::BuildError::component(e)
    }
}

/// A reqwest client: rustls with `tls`'s certificate verifier and client certificate (HTTP/2 or
/// HTTP/1.1 by ALPN), `timeout` for each request and for connecting, authwatch's `User-Agent`.
/// Reads the TLS files: call it when the component is built.
pub fn http_client(
    timeout: Duration,
    tls: &TlsClientConfig,
) -> Result<reqwest::Client, ClientError> {
    let verifier = Arc::new(tls.verifier()?);
    let rustls = tls.rustls_config(verifier, &[b"h2", b"http/1.1"])?;
    reqwest::Client::builder()
        .use_preconfigured_tls(rustls)
        .timeout(timeout)
        .connect_timeout(timeout)
        .user_agent(USER_AGENT)
        .build()
        .map_err(ClientError::Build)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn sends_the_user_agent_over_plain_http() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut head = Vec::new();
            let mut buf = [0u8; 1024];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = s.read(&mut buf).await.unwrap();
                assert!(n > 0, "the client closed before its request head ended");
                head.extend_from_slice(&buf[..n]);
            }
            s.write_all(b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n")
                .await
                .unwrap();
            String::from_utf8(head).unwrap().to_ascii_lowercase()
        });
        let client = http_client(Duration::from_secs(20), &TlsClientConfig::default()).unwrap();
        let res = client.get(format!("http://{addr}/x")).send().await.unwrap();
        assert_eq!(res.status(), 204);
        let head = server.await.unwrap();
        assert!(
            head.contains(&format!("user-agent: {}", USER_AGENT.to_ascii_lowercase())),
            "{head}"
        );
    }

    #[test]
    fn a_bad_tls_file_fails_the_build_naming_it() {
        let tls = TlsClientConfig {
            ca_file: Some("/nonexistent/authwatch-ca.pem".into()),
            ..Default::default()
        };
        let e = http_client(Duration::from_secs(1), &tls)
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("tls::ca_file: cannot read `/nonexistent/authwatch-ca.pem`"),
            "{e}"
        );
    }
}
