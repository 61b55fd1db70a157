//! HTTP pieces shared by the `alertmanager` and `webhook` exporters: the client, one POST with
//! its error classified for retries, and the multi-endpoint (HA) error.

use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, SystemTime};

use authwatch_core::config::Secret;
use authwatch_core::BuildError;
use http::{header, HeaderMap, HeaderValue, StatusCode};

use crate::helper::config::{error_chain, header_map};
use crate::helper::{ExportError, Retry};

/// At most this much of an error body goes into an error message.
const MAX_ERROR_BODY: usize = 512;

/// A reqwest client with the per-attempt timeout.
pub(crate) fn client(timeout: Duration) -> Result<reqwest::Client, BuildError> {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        .user_agent(concat!("authwatch/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| {
            BuildError::Other(format!(
                "cannot build the HTTP client: {}",
                error_chain(&e)
            ))
        })
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
        let mut v = HeaderValue::from_str(&format!("Bearer {}", token.expose())).map_err(|_| {
            BuildError::Other(
                "the bearer token is not a valid header value: use visible ASCII characters only"
                    .into(),
            )
        })?;
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
        reason: error_chain(&e.without_url()),
    })?;
    let status = resp.status();
    if status.is_success() {
        return Ok(());
    }
    let retry_after = retry_after(resp.headers());
    let body = resp.bytes().await.unwrap_or_default();
    let text = String::from_utf8_lossy(&body[..body.len().min(MAX_ERROR_BODY)]);
    Err(SendError::Status {
        url: url.to_owned(),
        status,
        retry_after,
        message: text.trim().to_owned(),
    })
}

/// `Retry-After`: delay-seconds or an HTTP date.
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let v = headers.get(header::RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(v).ok()?;
    Some(at.duration_since(SystemTime::now()).unwrap_or(Duration::ZERO))
}

// === impl SendError ===

/// One failed POST. Never holds request headers or tokens.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// No response: connection refused or reset, timeout, TLS failure.
    #[error("POST {url} failed: {reason}")]
    Transport { url: String, reason: String },
    /// The destination answered with an error status.
    #[error("POST {url} failed with HTTP {status}: {message}")]
    Status {
        url: String,
        status: StatusCode,
        retry_after: Option<Duration>,
        message: String,
    },
    #[error("cannot encode the request body: {0}")]
    Encode(String),
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

// === impl Failures ===

/// Every endpoint of an HA set failed: one error per endpoint.
#[derive(Debug)]
pub struct Failures(pub Vec<SendError>);

impl fmt::Display for Failures {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.len() > 1 {
            write!(f, "all {} endpoints failed: ", self.0.len())?;
        }
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Failures {}

impl ExportError for Failures {
    /// Retry when any endpoint may accept a retry, waiting for the longest server hint.
    fn retry(&self) -> Retry {
        let mut out = Retry::No;
        for e in &self.0 {
            out = match (out, e.retry()) {
                (Retry::After(a), Retry::After(b)) => Retry::After(a.max(b)),
                (Retry::After(a), _) | (_, Retry::After(a)) => Retry::After(a),
                (Retry::Yes, _) | (_, Retry::Yes) => Retry::Yes,
                _ => Retry::No,
            };
        }
        out
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
            reason: "refused".into(),
        };
        assert_eq!(t.retry(), Retry::Yes);
    }

    #[test]
    fn failures_retry_if_any_endpoint_may_accept() {
        let after = SendError::Status {
            url: "b".into(),
            status: StatusCode::TOO_MANY_REQUESTS,
            retry_after: Some(Duration::from_secs(7)),
            message: String::new(),
        };
        assert_eq!(Failures(vec![status(400), status(400)]).retry(), Retry::No);
        assert_eq!(Failures(vec![status(400), status(503)]).retry(), Retry::Yes);
        assert_eq!(
            Failures(vec![status(503), after]).retry(),
            Retry::After(Duration::from_secs(7))
        );
        assert_eq!(
            Failures(vec![status(400), status(503)]).to_string(),
            "all 2 endpoints failed: POST u failed with HTTP 400 Bad Request: ; POST u failed with HTTP 503 Service Unavailable: "
        );
    }
}
