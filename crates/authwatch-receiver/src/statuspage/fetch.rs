//! One conditional `GET` of a status document, with a cap on its size.

use reqwest::header::{HeaderMap, ETAG, IF_MODIFIED_SINCE, IF_NONE_MATCH, LAST_MODIFIED};
use reqwest::StatusCode;

use super::MAX_DOCUMENT_SIZE;

/// Validators from the last good answer, sent back as `If-None-Match` / `If-Modified-Since`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Validators {
    pub etag: Option<String>,
    pub last_modified: Option<String>,
}

impl Validators {
    fn from_headers(h: &HeaderMap) -> Self {
        let get = |name| {
            h.get(name)
                .and_then(|v: &reqwest::header::HeaderValue| v.to_str().ok())
                .map(str::to_owned)
        };
        Validators {
            etag: get(ETAG),
            last_modified: get(LAST_MODIFIED),
        }
    }
}

/// What a fetch gave.
#[derive(Debug)]
pub(crate) enum Fetched {
    /// `200` with the document and the validators to send next time.
    Document(Vec<u8>, Validators),
    /// `304 Not Modified`.
    NotModified,
}

/// Why a page could not be fetched. `kind()` is the `error.type` attribute.
#[derive(Debug, thiserror::Error)]
pub(crate) enum FetchError {
    #[error("request timed out")]
    Timeout,
    #[error("cannot reach the page: {0}")]
    Unreachable(String),
    #[error("the page answered HTTP {0}")]
    Status(u16),
    #[error("the document is larger than {MAX_DOCUMENT_SIZE} bytes")]
    TooLarge,
    #[error("{0}")]
    Malformed(String),
}

impl FetchError {
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            FetchError::Timeout => "timeout",
            FetchError::Unreachable(_) => "unreachable",
            FetchError::Status(_) => "http_status",
            FetchError::TooLarge | FetchError::Malformed(_) => "malformed",
        }
    }
}

fn classify(e: reqwest::Error) -> FetchError {
    if e.is_timeout() {
        return FetchError::Timeout;
    }
    // The chain carries the useful part ("connection refused", "dns error").
    let mut msg = e.to_string();
    let mut src = std::error::Error::source(&e);
    while let Some(s) = src {
        msg = format!("{msg}: {s}");
        src = s.source();
    }
    FetchError::Unreachable(msg)
}

/// `GET url`, conditional on `validators`.
pub(crate) async fn fetch(
    client: &reqwest::Client,
    url: &reqwest::Url,
    validators: &Validators,
) -> Result<Fetched, FetchError> {
    let mut req = client.get(url.clone());
    if let Some(etag) = &validators.etag {
        req = req.header(IF_NONE_MATCH, etag);
    }
    if let Some(lm) = &validators.last_modified {
        req = req.header(IF_MODIFIED_SINCE, lm);
    }
    let mut resp = req.send().await.map_err(classify)?;
    let status = resp.status();
    if status == StatusCode::NOT_MODIFIED {
        return Ok(Fetched::NotModified);
    }
    if !status.is_success() {
        return Err(FetchError::Status(status.as_u16()));
    }
    if resp
        .content_length()
        .is_some_and(|n| n > MAX_DOCUMENT_SIZE as u64)
    {
        return Err(FetchError::TooLarge);
    }
    let validators = Validators::from_headers(resp.headers());
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(classify)? {
        if body.len() + chunk.len() > MAX_DOCUMENT_SIZE {
            return Err(FetchError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Fetched::Document(body, validators))
}
