//! Management API requests: the bearer token (one refresh on 401), the pacer, rate-limit
//! headers, `429` and `5xx`.

use std::time::Duration;

use bytes::Bytes;
use http::HeaderMap;
use tokio::time::Instant;
use url::Url;

use super::token::{transport, TokenCache, TokenError};
use authwatch_tenant_logs::link::{check_origin, LinkError};
use authwatch_tenant_logs::ratelimit::{unix_now, Pacer, RateLimit, MAX_RESET_WAIT};

/// Why a request brought no usable answer. Holds no token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    #[error("no Management API token: {0}")]
    Token(#[from] TokenError),
    #[error("the Management API request failed: {0}")]
    Transport(String),
    #[error("the Management API answered 429 (rate limit); waiting {}s", .0.as_secs())]
    RateLimited(Duration),
    #[error("the Management API answered {0}")]
    Server(u16),
    #[error("the Management API answered {status}{}", code.as_ref().map(|c| format!(" `{c}`")).unwrap_or_default())]
    Refused { status: u16, code: Option<String> },
    #[error("the Management API answered 401 again with a new token")]
    Unauthorized,
    #[error(transparent)]
    Link(#[from] LinkError),
    #[error("the Management API's answer is not the expected JSON: {0}")]
    Malformed(String),
}

impl ApiError {
    /// A low-cardinality label for `authwatch.auth0.pull.requests`.
    pub fn outcome(&self) -> &'static str {
        match self {
            ApiError::Token(_) => "token_error",
            ApiError::Transport(_) => "transport_error",
            ApiError::RateLimited(_) => "rate_limited",
            ApiError::Server(_) => "server_error",
            ApiError::Refused { .. } => "refused",
            ApiError::Unauthorized => "unauthorized",
            ApiError::Link(_) => "link_refused",
            ApiError::Malformed(_) => "malformed",
        }
    }
}

#[derive(serde::Deserialize)]
struct MgmtError {
    #[serde(rename = "errorCode")]
    error_code: Option<String>,
}

/// A 2xx answer.
pub(crate) struct Answer {
    pub headers: HeaderMap,
    pub body: Bytes,
}

pub(crate) struct Api {
    client: reqwest::Client,
    pub base: Url,
    token: TokenCache,
    pub pacer: Pacer,
    pub ratelimit: RateLimit,
}

impl Api {
    pub(crate) fn new(client: reqwest::Client, base: Url, token: TokenCache, pacer: Pacer) -> Self {
        Api {
            client,
            base,
            token,
            pacer,
            ratelimit: RateLimit::default(),
        }
    }

    /// `GET url` with the token; a 401 gets one new token and one more try.
    pub(crate) async fn get(&mut self, url: &Url) -> Result<Answer, ApiError> {
        // Every URL, built or followed, is checked: the token goes to the tenant only.
        check_origin(url, &self.base)?;
        let mut refreshed = false;
        loop {
            let token = self.token.get().await?;
            self.pacer.ready().await;
            let resp = self
                .client
                .get(url.clone())
                .bearer_auth(token.expose())
                .header(http::header::ACCEPT, "application/json")
                .send()
                .await
                .map_err(|e| ApiError::Transport(transport(&e)))?;
            let status = resp.status().as_u16();
            let headers = resp.headers().clone();
            let rl = RateLimit::from_headers(&headers);
            if !rl.is_empty() {
                self.ratelimit = rl;
                self.pacer.observe(&rl, Instant::now(), unix_now());
            }
            let body = resp
                .bytes()
                .await
                .map_err(|e| ApiError::Transport(transport(&e)))?;
            match status {
                200..=299 => return Ok(Answer { headers, body }),
                401 if !refreshed => {
                    self.token.invalidate();
                    refreshed = true;
                }
                401 => {
                    self.token.invalidate();
                    return Err(ApiError::Unauthorized);
                }
                429 => {
                    let wait = authwatch_net::retry_after(&headers)
                        .or_else(|| {
                            rl.reset
                                .map(|r| Duration::from_secs(r.saturating_sub(unix_now())))
                        })
                        .unwrap_or(Duration::from_secs(1))
                        .clamp(Duration::from_secs(1), MAX_RESET_WAIT * 5);
                    self.pacer.hold(Instant::now(), wait);
                    return Err(ApiError::RateLimited(wait));
                }
                500..=599 => return Err(ApiError::Server(status)),
                _ => {
                    let code = serde_json::from_slice::<MgmtError>(&body)
                        .ok()
                        .and_then(|e| e.error_code)
                        .filter(|c| c.len() <= 64 && c.bytes().all(|b| b.is_ascii_graphic()));
                    return Err(ApiError::Refused { status, code });
                }
            }
        }
    }
}
