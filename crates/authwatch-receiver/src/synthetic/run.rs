//! One run of one check: the requests, the classification into one [`Outcome`], and the
//! `http` check. The OAuth checks and token validation are in `oauth.rs`; what a run found is a
//! [`RunResult`] (`result.rs`).

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method};
use tokio::time::Instant;

use super::client::{Client, Endpoint, Exchange, TransportError};
use super::jwt::{KeyCache, TokenFailure};
use super::outcome::Outcome;
use super::result::{Purpose, RateLimit, RunResult, Step};
use super::{assert, Check, HttpCheck};

/// A failure while running: the outcome and its details.
pub(super) struct Failure {
    outcome: Outcome,
    error_type: String,
    message: String,
}

impl Failure {
    pub(super) fn new(
        outcome: Outcome,
        error_type: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Failure {
            outcome,
            error_type: error_type.into(),
            message: message.into(),
        }
    }

    #[cfg(test)]
    pub(super) fn outcome(&self) -> Outcome {
        self.outcome
    }

    #[cfg(test)]
    pub(super) fn message(&self) -> &str {
        &self.message
    }

    /// The same failure with `to` as its outcome when it had `from`.
    pub(super) fn with_outcome_if(mut self, from: Outcome, to: Outcome) -> Self {
        if self.outcome == from {
            self.outcome = to;
        }
        self
    }

    pub(super) fn transport(e: &TransportError, what: &str) -> Failure {
        let outcome = match e {
            TransportError::Dns { .. } => Outcome::Dns,
            TransportError::Connect { .. } | TransportError::Http { .. } => Outcome::Connect,
            TransportError::Tls { .. } => Outcome::Tls,
            TransportError::Timeout => Outcome::Timeout,
            TransportError::TooLarge { .. } => Outcome::HttpStatus,
        };
        Failure::new(outcome, e.error_type(), format!("{what}: {e}"))
    }
}

impl From<TokenFailure> for Failure {
    fn from(t: TokenFailure) -> Self {
        Failure::new(t.outcome, t.error_type, t.message)
    }
}

// === impl CheckRunner ===

/// Runs one check, keeping what lasts between runs (TLS settings, cached keys).
pub(crate) struct CheckRunner {
    pub(super) check: Check,
    timeout: Duration,
    pub(super) client: Client,
    pub(super) endpoint: Endpoint,
    /// The provider's keys, once fetched (`oauth.rs`).
    pub(super) keys: Option<KeyCache>,
    /// `jwks_url`, or the `jwks_uri` discovery found.
    pub(super) jwks_url: Option<String>,
    /// An `authorization_code` check's endpoints, once known (`authcode/mod.rs`).
    pub(super) endpoints: Option<super::authcode::Endpoints>,
    secrets: Vec<String>,
    /// The last run's own secrets (tokens, code, verifier, cookies), for the secrets tests.
    #[cfg(test)]
    pub(super) last_run_secrets: Vec<String>,
}

impl CheckRunner {
    pub fn new(check: Check, timeout: Duration) -> Result<CheckRunner, authwatch_net::TlsError> {
        let client = Client::new(check.tls())?;
        let url = match &check {
            Check::PasswordGrant(c) | Check::ClientCredentials(c) => &c.token_url,
            Check::Http(c) => &c.url,
            Check::AuthorizationCode(c) => c.token_url.as_ref().unwrap_or(&c.issuer),
        };
        // validate() checked the URL; a bad one here still fails every run cleanly.
        let endpoint = Endpoint::parse(url).unwrap_or(Endpoint {
            https: false,
            host: String::new(),
            port: 0,
            path_and_query: "/".into(),
            url_full: String::new(),
        });
        let mut secrets = Vec::new();
        match &check {
            Check::PasswordGrant(c) | Check::ClientCredentials(c) => {
                secrets.extend(c.client_secret.iter().map(|s| s.expose().to_owned()));
                secrets.extend(c.password.iter().map(|s| s.expose().to_owned()));
            }
            Check::Http(c) => {
                secrets.extend(c.headers.values().map(|s| s.expose().to_owned()));
                secrets.extend(c.body.iter().map(|s| s.expose().to_owned()));
            }
            Check::AuthorizationCode(c) => {
                secrets.extend(
                    [&c.client_secret, &c.password, &c.totp_secret]
                        .into_iter()
                        .flatten()
                        .map(|s| s.expose().to_owned()),
                );
            }
        }
        secrets.retain(|s| !s.is_empty());
        let jwks_url = match &check {
            Check::PasswordGrant(c) | Check::ClientCredentials(c) => {
                c.validate_token.as_ref().and_then(|t| t.jwks_url.clone())
            }
            Check::Http(_) => None,
            Check::AuthorizationCode(c) => {
                c.validate_token.as_ref().and_then(|t| t.jwks_url.clone())
            }
        };
        Ok(CheckRunner {
            check,
            timeout,
            client,
            endpoint,
            keys: None,
            jwks_url,
            endpoints: None,
            secrets,
            #[cfg(test)]
            last_run_secrets: Vec::new(),
        })
    }

    /// Runs the check once. Never fails: every problem is an outcome.
    pub async fn run(&mut self) -> RunResult {
        let started_at = SystemTime::now();
        let start = Instant::now();
        let deadline = start + self.timeout;
        let mut r = RunResult {
            check: self.check.name().to_owned(),
            check_type: self.check.type_name(),
            started_at,
            start,
            end: start,
            outcome: Outcome::Success,
            degraded_after: self.check.degraded_response_time(),
            degraded: false,
            oauth_error: None,
            error_type: None,
            message: None,
            status: None,
            steps: Vec::new(),
            jwks: None,
            validation: None,
            ratelimit: RateLimit::default(),
            cert_not_after: None,
            retry_after: None,
            claims: Vec::new(),
        };
        let mut tokens = Vec::new();
        let check = self.check.clone();
        let result = match &check {
            Check::PasswordGrant(c) | Check::ClientCredentials(c) => {
                self.run_oauth(c, deadline, &mut r, &mut tokens).await
            }
            Check::Http(c) => self.run_http(c, deadline, &mut r).await,
            Check::AuthorizationCode(c) => {
                self.run_authcode(c, deadline, &mut r, &mut tokens).await
            }
        };
        if let Err(f) = result {
            r.outcome = f.outcome;
            r.error_type = Some(f.error_type);
            r.message = Some(self.scrub(&f.message, &tokens));
        }
        #[cfg(test)]
        {
            self.last_run_secrets = tokens.clone();
        }
        r.end = Instant::now();
        r.degraded = r.outcome.is_success() && r.degraded_after.is_some_and(|b| r.duration() > b);
        r
    }

    /// Removes every configured secret and every token of this run from `s`.
    fn scrub(&self, s: &str, tokens: &[String]) -> String {
        let mut out = s.to_owned();
        for secret in self.secrets.iter().chain(tokens) {
            if !secret.is_empty() && out.contains(secret.as_str()) {
                out = out.replace(secret.as_str(), authwatch_core::config::REDACTED);
            }
        }
        out
    }

    async fn run_http(
        &mut self,
        c: &HttpCheck,
        deadline: Instant,
        r: &mut RunResult,
    ) -> Result<(), Failure> {
        let method = Method::from_bytes(c.method.as_bytes()).unwrap_or(Method::GET);
        let mut headers = Vec::new();
        for (k, v) in &c.headers {
            if let (Ok(k), Ok(mut v)) = (
                HeaderName::from_bytes(k.as_bytes()),
                HeaderValue::from_str(v.expose()),
            ) {
                v.set_sensitive(true);
                headers.push((k, v));
            }
        }
        let body = c
            .body
            .as_ref()
            .map(|b| Bytes::from(b.expose().to_owned()))
            .unwrap_or_default();
        let ex = self
            .client
            .exchange(&method, &self.endpoint, &headers, body, deadline)
            .await;
        r.cert_not_after = ex.cert_not_after;
        let elapsed = ex.end.saturating_duration_since(ex.start);
        let res = match &ex.result {
            Err(e) => Err(Failure::transport(e, "request")),
            Ok(resp) => {
                r.ratelimit = RateLimit::from_headers(&resp.headers);
                r.status = Some(resp.status);
                if resp.status == 429 {
                    r.retry_after = retry_after(&resp.headers);
                    Err(Failure::new(
                        Outcome::RateLimited,
                        "429",
                        "the server answered 429 (rate limited)",
                    ))
                } else if !assert::status_ok(&c.expect, resp.status) {
                    Err(Failure::new(
                        Outcome::HttpStatus,
                        resp.status.to_string(),
                        format!("unexpected status {}", resp.status),
                    ))
                } else {
                    assert::check(&c.expect, resp, elapsed)
                        .map_err(|f| Failure::new(Outcome::Assertion, f.kind, f.message))
                }
            }
        };
        r.steps.push(Step {
            purpose: Purpose::Main,
            exchange: strip_body(ex),
            hop: None,
        });
        res
    }
}

/// Drops the response body (it may hold tokens) once it has been read.
pub(super) fn strip_body(mut ex: Exchange) -> Exchange {
    if let Ok(resp) = &mut ex.result {
        resp.body = Bytes::new();
    }
    ex
}

/// How long a 429 asks to wait: `Retry-After` (seconds or HTTP date), else `x-ratelimit-reset`.
pub(crate) fn retry_after(h: &http::HeaderMap) -> Option<Duration> {
    if let Some(d) = authwatch_net::retry_after(h) {
        return Some(d);
    }
    let now = SystemTime::now();
    let reset = h
        .get("x-ratelimit-reset")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())?;
    let reset = SystemTime::UNIX_EPOCH + Duration::from_secs(reset);
    Some(reset.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_reads_seconds_dates_and_reset() {
        let mut h = http::HeaderMap::new();
        h.insert("retry-after", "7".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
        let mut h = http::HeaderMap::new();
        let later = SystemTime::now() + Duration::from_secs(120);
        h.insert(
            "retry-after",
            httpdate::fmt_http_date(later).parse().unwrap(),
        );
        let d = retry_after(&h).unwrap();
        assert!(
            d > Duration::from_secs(100) && d <= Duration::from_secs(120),
            "{d:?}"
        );
        let mut h = http::HeaderMap::new();
        let reset = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_secs()
            + 60;
        h.insert("x-ratelimit-reset", reset.to_string().parse().unwrap());
        let d = retry_after(&h).unwrap();
        assert!(d > Duration::from_secs(50), "{d:?}");
        assert_eq!(retry_after(&http::HeaderMap::new()), None);
    }
}
