//! The Management API token: client credentials, cached until shortly before it expires.

use std::time::Duration;

use authwatch_core::config::Secret;
use serde::Deserialize;
use tokio::time::Instant;

/// Refresh this long before `expires_in` runs out (or a tenth of a short lifetime).
const REFRESH_MARGIN: Duration = Duration::from_secs(60);

/// Why no token was obtained. Never holds the secret or a token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("cannot reach the token endpoint: {0}")]
    Transport(String),
    #[error("the token endpoint answered {status}{}", code.as_ref().map(|c| format!(" `{c}`")).unwrap_or_default())]
    Refused { status: u16, code: Option<String> },
    #[error("the token endpoint's answer is not a token response")]
    Malformed,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
}

#[derive(Deserialize)]
struct OAuthError {
    error: Option<String>,
}

/// Fetches and caches the token.
pub(crate) struct TokenCache {
    client: reqwest::Client,
    token_url: String,
    client_id: String,
    client_secret: Secret,
    audience: String,
    current: Option<(Secret, Instant)>,
}

impl TokenCache {
    pub(crate) fn new(
        client: reqwest::Client,
        base: &str,
        client_id: String,
        client_secret: Secret,
        audience: String,
    ) -> Self {
        TokenCache {
            client,
            token_url: format!("{base}/oauth/token"),
            client_id,
            client_secret,
            audience,
            current: None,
        }
    }

    /// Forgets the token (after a 401), so the next [`TokenCache::get`] asks for a new one.
    pub(crate) fn invalidate(&mut self) {
        self.current = None;
    }

    /// A valid token, fetched when there is none or it expires within the margin.
    pub(crate) async fn get(&mut self) -> Result<Secret, TokenError> {
        if let Some((t, refresh_at)) = &self.current {
            if Instant::now() < *refresh_at {
                return Ok(t.clone());
            }
        }
        let body = serde_json::json!({
            "grant_type": "client_credentials",
            "client_id": self.client_id,
            "client_secret": self.client_secret.expose(),
            "audience": self.audience,
        });
        let resp = self
            .client
            .post(&self.token_url)
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(body.to_string())
            .send()
            .await
            .map_err(|e| TokenError::Transport(transport(&e)))?;
        let status = resp.status().as_u16();
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| TokenError::Transport(transport(&e)))?;
        if status != 200 {
            let code = serde_json::from_slice::<OAuthError>(&bytes)
                .ok()
                .and_then(|e| e.error)
                .filter(|c| c.len() <= 64 && c.bytes().all(|b| b.is_ascii_graphic()));
            return Err(TokenError::Refused { status, code });
        }
        let t: TokenResponse = serde_json::from_slice(&bytes).map_err(|_| TokenError::Malformed)?;
        if t.access_token.is_empty() {
            return Err(TokenError::Malformed);
        }
        let life = Duration::from_secs(t.expires_in.unwrap_or(3600).max(1));
        let margin = REFRESH_MARGIN.min(life / 10);
        let token = Secret::new(t.access_token);
        self.current = Some((token.clone(), Instant::now() + (life - margin)));
        Ok(token)
    }
}

/// A reqwest error without its URL (which holds no secret here, but keep messages short).
pub(crate) fn transport(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else if e.is_body() || e.is_decode() {
        "the body could not be read"
    } else {
        "request failed"
    };
    let mut msg = kind.to_owned();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        let t = s.to_string();
        if !msg.contains(&t) {
            msg.push_str(": ");
            msg.push_str(&t);
        }
        src = s.source();
    }
    msg
}
