//! One conditional `GET` of a status document, with a cap on its size.

use reqwest::header::{HeaderMap, ETAG, IF_MODIFIED_SINCE, IF_NONE_MATCH, LAST_MODIFIED};
use reqwest::StatusCode;

use super::parse::ParseError;
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

/// Why a page could not be fetched or read. `kind()` is the `error.type` attribute.
#[derive(Debug, thiserror::Error)]
pub(crate) enum FetchError {
    #[error("request timed out")]
    Timeout,
    #[error("cannot reach the page: {}", Chain(.0))]
    Unreachable(#[source] reqwest::Error),
    #[error("the page answered HTTP {0}")]
    Status(u16),
    #[error("the document is larger than {MAX_DOCUMENT_SIZE} bytes")]
    TooLarge,
    #[error(transparent)]
    Malformed(#[from] ParseError),
    #[error("304 Not Modified without an earlier document")]
    NotModifiedFirst,
}

impl FetchError {
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            FetchError::Timeout => "timeout",
            FetchError::Unreachable(_) => "unreachable",
            FetchError::Status(_) => "http_status",
            FetchError::TooLarge | FetchError::Malformed(_) | FetchError::NotModifiedFirst => {
                "malformed"
            }
        }
    }
}

/// An error with its sources, `: `-separated: a reqwest error's useful part ("connection
/// refused", "dns error") is in its sources.
struct Chain<'a>(&'a reqwest::Error);

impl std::fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = std::error::Error::source(self.0);
        while let Some(s) = source {
            write!(f, ": {s}")?;
            source = s.source();
        }
        Ok(())
    }
}

fn classify(e: reqwest::Error) -> FetchError {
    if e.is_timeout() {
        FetchError::Timeout
    } else {
        FetchError::Unreachable(e)
    }
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
