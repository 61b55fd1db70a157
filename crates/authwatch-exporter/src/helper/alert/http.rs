//! The HTTP side of sending alerts: the client, request headers with the credentials, and one
//! JSON POST with its error classified for retries.

use std::collections::BTreeMap;
use std::time::Duration;

use authwatch_core::config::Secret;
use authwatch_core::BuildError;
use http::{header, HeaderMap, HeaderValue, StatusCode};

use crate::helper::config::{error_chain, header_map, HeaderError};
use crate::helper::{ExportError, Retry};

/// At most this much of an error body goes into an error message.
const MAX_ERROR_BODY: usize = 512;

/// The shared HTTP client (the web roots, authwatch's `User-Agent`) with the per-attempt timeout.
pub(crate) fn client(timeout: Duration) -> Result<reqwest::Client, BuildError> {
    Ok(authwatch_net::http_client(
        timeout,
        &authwatch_net::TlsClientConfig::default(),
    )?)
}

/// How requests authenticate.
#[derive(Clone, Default)]
pub(crate) enum Auth {
    #[default]
    None,
    Bearer(Secret),
    Basic(String, Secret),
}

/// `headers` plus `Content-Type: application/json` plus a bearer token, values sensitive.
pub(crate) fn request_headers(
    headers: &BTreeMap<String, Secret>,
    auth: &Auth,
) -> Result<HeaderMap, BuildError> {
    let mut map = header_map(headers)?;
    map.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Auth::Bearer(token) = auth {
        let mut v = HeaderValue::from_str(&format!("Bearer {}", token.expose()))
            .map_err(|_| BuildError::option("bearer_token", HeaderError::InvalidValue))?;
        v.set_sensitive(true);
        map.insert(header::AUTHORIZATION, v);
    }
    Ok(map)
}

/// POSTs a JSON body once.
pub(crate) async fn post(
    client: &reqwest::Client,
    url: &str,
    headers: &HeaderMap,
    auth: &Auth,
    body: Vec<u8>,
) -> Result<(), SendError> {
    let mut req = client.post(url).headers(headers.clone()).body(body);
    if let Auth::Basic(user, pass) = auth {
        req = req.basic_auth(user, Some(pass.expose()));
    }
    let resp = req.send().await.map_err(|e| SendError::Transport {
        url: url.to_owned(),
        source: e.without_url(),
    })?;
    let status = resp.status();
    if status.is_success() {
        return Ok(());
    }
    let retry_after = authwatch_net::retry_after(resp.headers());
    let body = resp.bytes().await.unwrap_or_default();
    let text = String::from_utf8_lossy(&body[..body.len().min(MAX_ERROR_BODY)]);
    Err(SendError::Status {
        url: url.to_owned(),
        status,
        retry_after,
        message: text.trim().to_owned(),
    })
}

// === impl SendError ===

/// One failed POST. Never holds request headers or tokens.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// No response: connection refused or reset, timeout, TLS failure.
    #[error("POST {url} failed: {}", error_chain(.source))]
    Transport {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    /// The destination answered with an error status.
    #[error("POST {url} failed with HTTP {status}: {message}")]
    Status {
        url: String,
        status: StatusCode,
        retry_after: Option<Duration>,
        message: String,
    },
    #[error("cannot encode the request body: {0}")]
    Encode(#[from] serde_json::Error),
}

impl SendError {
    pub fn url(&self) -> &str {
        match self {
            SendError::Transport { url, .. } | SendError::Status { url, .. } => url,
            SendError::Encode(_) => "",
        }
    }
}

impl ExportError for SendError {
    /// 5xx, 408, 429 and no response are retried (429 and 503 honour `Retry-After`); every
    /// other status is permanent: the same alerts would be refused again.
    fn retry(&self) -> Retry {
        match self {
            SendError::Transport { .. } => Retry::Yes,
            SendError::Status {
                status,
                retry_after,
                ..
            } => match status.as_u16() {
                408 | 429 | 500..=599 => retry_after.map_or(Retry::Yes, Retry::After),
                _ => Retry::No,
            },
            SendError::Encode(_) => Retry::No,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(code: u16) -> SendError {
        SendError::Status {
            url: "u".into(),
            status: StatusCode::from_u16(code).unwrap(),
            retry_after: None,
            message: String::new(),
        }
    }

    #[test]
    fn statuses_are_classified() {
        for code in [408, 429, 500, 502, 503, 504] {
            assert_eq!(status(code).retry(), Retry::Yes, "{code}");
        }
        for code in [400, 401, 403, 404, 413, 422] {
            assert_eq!(status(code).retry(), Retry::No, "{code}");
        }
        let t = SendError::Transport {
            url: "u".into(),
            source: reqwest::Client::new().get("no url").build().unwrap_err(),
        };
        assert_eq!(t.retry(), Retry::Yes);
    }
}
