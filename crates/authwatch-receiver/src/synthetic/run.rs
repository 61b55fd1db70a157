//! One run of one check: the requests, the classification into one [`Outcome`], token
//! validation, and everything the report, the spans and the metrics need.

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method};
use serde_json::Value;
use tokio::time::Instant;

use super::client::{Client, Endpoint, Exchange, PhaseName, TlsSetupError, TransportError};
use super::jwt::{self, KeyCache, TokenFailure};
use super::outcome::Outcome;
use super::{
    assert, Backoff, BodyFormat, Check, ClientAuth, HttpCheck, OAuthCheck, TokenValidation,
};

/// Auth0's password-realm grant type.
pub(crate) const PASSWORD_REALM_GRANT: &str = "http://auth0.com/oauth/grant-type/password-realm";

/// Shortest time between two JWKS fetches caused by an unknown `kid`.
const MIN_REFETCH: Duration = Duration::from_secs(30);

/// What an HTTP exchange of a run was for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Purpose {
    /// The check's own request (the token request, or the `http` check's request).
    Main,
    Discovery,
    Jwks,
}

#[derive(Debug)]
pub(crate) struct Step {
    pub purpose: Purpose,
    pub exchange: Exchange,
}

/// Rate-limit headroom from the `x-ratelimit-*` headers of the main response.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RateLimit {
    pub limit: Option<i64>,
    pub remaining: Option<i64>,
    /// Unix time (seconds) at which the window resets.
    pub reset: Option<i64>,
}

impl RateLimit {
    fn from_headers(h: &http::HeaderMap) -> RateLimit {
        let get = |name: &str| {
            h.get(name)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<i64>().ok())
        };
        RateLimit {
            limit: get("x-ratelimit-limit"),
            remaining: get("x-ratelimit-remaining"),
            reset: get("x-ratelimit-reset"),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.limit.is_none() && self.remaining.is_none() && self.reset.is_none()
    }
}

/// The result of one run of one check. Holds no secret: no token, no response body.
#[derive(Debug)]
pub struct RunResult {
    pub check: String,
    pub check_type: &'static str,
    /// Wall-clock start, for timestamps.
    pub started_at: SystemTime,
    pub(crate) start: Instant,
    pub(crate) end: Instant,
    pub outcome: Outcome,
    /// The provider's OAuth `error` code, when it sent one.
    pub oauth_error: Option<String>,
    /// Low-cardinality `error.type` (absent on success).
    pub error_type: Option<String>,
    /// What went wrong, for people (secrets removed).
    pub message: Option<String>,
    /// The main response's HTTP status.
    pub status: Option<u16>,
    pub(crate) steps: Vec<Step>,
    /// Discovery and JWKS fetching, when it happened this run.
    pub(crate) jwks: Option<(Instant, Instant)>,
    /// Token validation, when it happened.
    pub(crate) validation: Option<(Instant, Instant)>,
    pub ratelimit: RateLimit,
    /// The main server certificate's `notAfter`, Unix seconds.
    pub cert_not_after: Option<i64>,
    /// How long the provider asked to wait (429).
    pub retry_after: Option<Duration>,
    /// Required claims that were checked, with their values.
    pub claims: Vec<(String, String)>,
}

impl RunResult {
    pub fn duration(&self) -> Duration {
        self.end.saturating_duration_since(self.start)
    }

    /// The phases of the run: those of the main request, then `jwks` and `validate`.
    pub fn phases(&self) -> Vec<(&'static str, Duration)> {
        let mut out: Vec<(&'static str, Duration)> = self
            .steps
            .iter()
            .filter(|s| s.purpose == Purpose::Main)
            .flat_map(|s| s.exchange.phases.iter())
            .map(|t| (t.phase.as_str(), t.duration()))
            .collect();
        if let Some((a, b)) = self.jwks {
            out.push(("jwks", b.saturating_duration_since(a)));
        }
        if let Some((a, b)) = self.validation {
            out.push(("validate", b.saturating_duration_since(a)));
        }
        out
    }

    pub(crate) fn backoff(&self) -> Backoff {
        if self.oauth_error.as_deref() == Some("too_many_attempts") {
            Backoff::Blocked
        } else if let Some(d) = self.retry_after {
            Backoff::RetryAfter(d)
        } else {
            Backoff::None
        }
    }

    pub(crate) fn phase_names() -> [&'static str; 7] {
        [
            PhaseName::Dns.as_str(),
            PhaseName::Connect.as_str(),
            PhaseName::Tls.as_str(),
            PhaseName::Request.as_str(),
            PhaseName::Transfer.as_str(),
            "jwks",
            "validate",
        ]
    }
}

/// A failure while running: the outcome and its details.
struct Failure {
    outcome: Outcome,
    error_type: String,
    message: String,
}

impl Failure {
    fn new(outcome: Outcome, error_type: impl Into<String>, message: impl Into<String>) -> Self {
        Failure {
            outcome,
            error_type: error_type.into(),
            message: message.into(),
        }
    }

    fn transport(e: &TransportError, what: &str) -> Failure {
        let outcome = match e {
            TransportError::Dns { .. } => Outcome::Dns,
            TransportError::Connect { .. } | TransportError::Http { .. } => Outcome::Connect,
            TransportError::Tls { .. } => Outcome::Tls,
            TransportError::Timeout => Outcome::Timeout,
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
    check: Check,
    timeout: Duration,
    client: Client,
    endpoint: Endpoint,
    keys: Option<KeyCache>,
    jwks_url: Option<String>,
    secrets: Vec<String>,
}

impl CheckRunner {
    pub fn new(check: Check, timeout: Duration) -> Result<CheckRunner, TlsSetupError> {
        let client = Client::new(check.tls())?;
        let url = match &check {
            Check::PasswordGrant(c) | Check::ClientCredentials(c) => &c.token_url,
            Check::Http(c) => &c.url,
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
        }
        secrets.retain(|s| !s.is_empty());
        let jwks_url = match &check {
            Check::PasswordGrant(c) | Check::ClientCredentials(c) => {
                c.validate_token.as_ref().and_then(|t| t.jwks_url.clone())
            }
            Check::Http(_) => None,
        };
        Ok(CheckRunner {
            check,
            timeout,
            client,
            endpoint,
            keys: None,
            jwks_url,
            secrets,
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
        };
        if let Err(f) = result {
            r.outcome = f.outcome;
            r.error_type = Some(f.error_type);
            r.message = Some(self.scrub(&f.message, &tokens));
        }
        r.end = Instant::now();
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

    fn token_request(&self, c: &OAuthCheck) -> (Vec<(HeaderName, HeaderValue)>, Bytes) {
        let grant = match (&self.check, &c.realm) {
            (Check::PasswordGrant(_), Some(_)) => PASSWORD_REALM_GRANT,
            (Check::PasswordGrant(_), None) => "password",
            _ => "client_credentials",
        };
        let secret = c.client_secret.as_ref().filter(|s| !s.is_empty());
        let mut params: Vec<(&str, &str)> = vec![("grant_type", grant)];
        let mut headers = vec![(
            http::header::ACCEPT,
            HeaderValue::from_static("application/json"),
        )];
        match (c.client_auth, secret) {
            (ClientAuth::Basic, Some(s)) => {
                use base64::Engine;
                let enc =
                    |x: &str| form_urlencoded::byte_serialize(x.as_bytes()).collect::<String>();
                let raw = format!("{}:{}", enc(&c.client_id), enc(s.expose()));
                let b64 = base64::engine::general_purpose::STANDARD.encode(raw);
                if let Ok(mut v) = HeaderValue::from_str(&format!("Basic {b64}")) {
                    v.set_sensitive(true);
                    headers.push((http::header::AUTHORIZATION, v));
                }
            }
            (_, secret) => {
                params.push(("client_id", &c.client_id));
                if let Some(s) = secret {
                    params.push(("client_secret", s.expose()));
                }
            }
        }
        if let Some(u) = &c.username {
            params.push(("username", u));
        }
        if let Some(p) = &c.password {
            params.push(("password", p.expose()));
        }
        for (k, v) in [
            ("realm", &c.realm),
            ("audience", &c.audience),
            ("scope", &c.scope),
        ] {
            if let Some(v) = v {
                params.push((k, v));
            }
        }
        let body = match c.body_format {
            BodyFormat::Form => {
                headers.push((
                    http::header::CONTENT_TYPE,
                    HeaderValue::from_static("application/x-www-form-urlencoded"),
                ));
                form_urlencoded::Serializer::new(String::new())
                    .extend_pairs(params)
                    .finish()
                    .into_bytes()
            }
            BodyFormat::Json => {
                headers.push((
                    http::header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                ));
                let map: serde_json::Map<String, Value> = params
                    .into_iter()
                    .map(|(k, v)| (k.to_owned(), Value::from(v)))
                    .collect();
                serde_json::to_vec(&map).unwrap_or_default()
            }
        };
        (headers, Bytes::from(body))
    }

    async fn run_oauth(
        &mut self,
        c: &OAuthCheck,
        deadline: Instant,
        r: &mut RunResult,
        tokens: &mut Vec<String>,
    ) -> Result<(), Failure> {
        let (headers, body) = self.token_request(c);
        let ex = self
            .client
            .exchange(&Method::POST, &self.endpoint, &headers, body, deadline)
            .await;
        r.cert_not_after = ex.cert_not_after;
        let (status, json) = match &ex.result {
            Err(e) => {
                let f = Failure::transport(e, "token request");
                r.steps.push(Step {
                    purpose: Purpose::Main,
                    exchange: ex,
                });
                return Err(f);
            }
            Ok(resp) => {
                r.ratelimit = RateLimit::from_headers(&resp.headers);
                r.status = Some(resp.status);
                let json: Option<serde_json::Map<String, Value>> =
                    serde_json::from_slice(&resp.body).ok();
                if resp.status == 429 {
                    r.retry_after = retry_after(&resp.headers);
                }
                (resp.status, json)
            }
        };
        r.steps.push(Step {
            purpose: Purpose::Main,
            exchange: strip_body(ex),
        });
        let field = |k: &str| json.as_ref().and_then(|j| j.get(k)).and_then(Value::as_str);
        for k in ["access_token", "id_token", "refresh_token"] {
            if let Some(t) = field(k) {
                tokens.push(t.to_owned());
            }
        }
        let error = field("error").map(sanitize_code);
        let description = field("error_description").map(|d| truncate(d, 200));
        r.oauth_error = error.clone();
        let detail = || match (&error, &description) {
            (Some(e), Some(d)) => format!("{e}: {d}"),
            (Some(e), None) => e.clone(),
            (None, _) => "no OAuth error code in the body".into(),
        };
        if !(200..300).contains(&status) {
            let outcome = if error.as_deref() == Some("too_many_attempts") {
                Outcome::OauthError
            } else if status == 429 {
                Outcome::RateLimited
            } else if status >= 500 || error.is_none() {
                Outcome::HttpStatus
            } else {
                Outcome::OauthError
            };
            let hint = match error.as_deref() {
                Some("too_many_attempts") => {
                    "; the probe user is blocked by brute-force protection, the check pauses"
                }
                Some("mfa_required") => "; the probe user must not be enrolled in MFA",
                Some("unauthorized_client") => "; enable the grant type for the application",
                _ => "",
            };
            return Err(Failure::new(
                outcome,
                status.to_string(),
                format!("the token endpoint answered {status} ({}){hint}", detail()),
            ));
        }
        if field("access_token").is_none() {
            return Err(Failure::new(
                Outcome::OauthError,
                "invalid_response",
                format!(
                    "the token endpoint answered {status} without an `access_token` (a JSON object was {})",
                    if json.is_some() { "received" } else { "expected" }
                ),
            ));
        }
        let Some(cfg) = c.validate_token.clone() else {
            return Ok(());
        };
        let Some(token) = field(cfg.token.as_str()).map(str::to_owned) else {
            return Err(Failure::new(
                Outcome::InvalidToken,
                "token_missing",
                format!(
                    "the response has no `{}` to validate{}",
                    cfg.token.as_str(),
                    if cfg.token == super::TokenKind::IdToken {
                        " (request the `openid` scope)"
                    } else {
                        ""
                    }
                ),
            ));
        };
        self.validate(&token, &cfg, deadline, r).await
    }

    async fn validate(
        &mut self,
        token: &str,
        cfg: &TokenValidation,
        deadline: Instant,
        r: &mut RunResult,
    ) -> Result<(), Failure> {
        let header = jwt::header(token, cfg)?;
        let jwks_start = Instant::now();
        let mut fetched = false;
        let stale = self
            .keys
            .as_ref()
            .is_none_or(|k| !k.is_fresh(cfg.jwks_cache_ttl));
        if stale {
            let res = self.fetch_keys(cfg, deadline, r).await;
            r.jwks = Some((jwks_start, Instant::now()));
            res?;
            fetched = true;
        }
        let kid = header.kid.as_deref();
        let mut key = self
            .keys
            .as_ref()
            .and_then(|k| jwt::find_key(&k.keys, kid).cloned());
        let may_refetch = !fetched
            && self
                .keys
                .as_ref()
                .is_none_or(|k| k.fetched.elapsed() >= MIN_REFETCH);
        if key.is_none() && may_refetch {
            // An unknown kid: the keys may have rotated. Refetch once.
            let res = self.fetch_keys(cfg, deadline, r).await;
            r.jwks = Some((jwks_start, Instant::now()));
            res?;
            key = self
                .keys
                .as_ref()
                .and_then(|k| jwt::find_key(&k.keys, kid).cloned());
        }
        let Some(key) = key else {
            return Err(Failure::new(
                Outcome::InvalidToken,
                "jwks_unknown_kid",
                format!(
                    "no key in the JWKS matches the token's kid {}",
                    kid.map(|k| format!("`{k}`"))
                        .unwrap_or_else(|| "(none)".into())
                ),
            ));
        };
        let v_start = Instant::now();
        let res = jwt::verify(token, &header, &key, cfg)
            .and_then(|claims| jwt::check_claims(&claims, cfg));
        r.validation = Some((v_start, Instant::now()));
        r.claims = res?;
        Ok(())
    }

    /// Fetches the JWKS (through discovery when no `jwks_url` is known) into the cache.
    async fn fetch_keys(
        &mut self,
        cfg: &TokenValidation,
        deadline: Instant,
        r: &mut RunResult,
    ) -> Result<(), Failure> {
        let jwks_url = match &self.jwks_url {
            Some(u) => u.clone(),
            None => {
                let url = cfg.discovery_url.clone().unwrap_or_else(|| {
                    format!(
                        "{}/.well-known/openid-configuration",
                        cfg.issuer.as_deref().unwrap_or("").trim_end_matches('/')
                    )
                });
                let doc = self.get_json(&url, Purpose::Discovery, deadline, r).await?;
                let uri = doc
                    .get("jwks_uri")
                    .and_then(Value::as_str)
                    .ok_or_else(|| {
                        Failure::new(
                            Outcome::InvalidToken,
                            "discovery_invalid",
                            format!("the discovery document {url} has no `jwks_uri`"),
                        )
                    })?
                    .to_owned();
                self.jwks_url = Some(uri.clone());
                uri
            }
        };
        let ep = Endpoint::parse(&jwks_url).map_err(|e| {
            Failure::new(
                Outcome::InvalidToken,
                "jwks_invalid",
                format!("jwks_uri: {e}"),
            )
        })?;
        let ex = self
            .client
            .exchange(&Method::GET, &ep, &[], Bytes::new(), deadline)
            .await;
        let parsed = match &ex.result {
            Err(e) => Err(Failure::transport(e, "JWKS request")),
            Ok(resp) if !(200..300).contains(&resp.status) => Err(Failure::new(
                Outcome::HttpStatus,
                resp.status.to_string(),
                format!("the JWKS {} answered {}", ep.url_full, resp.status),
            )),
            Ok(resp) => jwt::parse_jwks(&resp.body)
                .map_err(|e| Failure::new(Outcome::InvalidToken, "jwks_invalid", e)),
        };
        r.steps.push(Step {
            purpose: Purpose::Jwks,
            exchange: strip_body(ex),
        });
        let keys = parsed?;
        self.keys = Some(KeyCache {
            keys,
            fetched: Instant::now(),
        });
        Ok(())
    }

    async fn get_json(
        &self,
        url: &str,
        purpose: Purpose,
        deadline: Instant,
        r: &mut RunResult,
    ) -> Result<Value, Failure> {
        let ep = Endpoint::parse(url)
            .map_err(|e| Failure::new(Outcome::InvalidToken, "discovery_invalid", e))?;
        let ex = self
            .client
            .exchange(&Method::GET, &ep, &[], Bytes::new(), deadline)
            .await;
        let out = match &ex.result {
            Err(e) => Err(Failure::transport(e, "discovery request")),
            Ok(resp) if !(200..300).contains(&resp.status) => Err(Failure::new(
                Outcome::HttpStatus,
                resp.status.to_string(),
                format!(
                    "the discovery document {} answered {}",
                    ep.url_full, resp.status
                ),
            )),
            Ok(resp) => serde_json::from_slice(&resp.body).map_err(|e| {
                Failure::new(
                    Outcome::InvalidToken,
                    "discovery_invalid",
                    format!("the discovery document is not JSON: {e}"),
                )
            }),
        };
        r.steps.push(Step {
            purpose,
            exchange: strip_body(ex),
        });
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
        });
        res
    }
}

/// Drops the response body (it may hold tokens) once it has been read.
fn strip_body(mut ex: Exchange) -> Exchange {
    if let Ok(resp) = &mut ex.result {
        resp.body = Bytes::new();
    }
    ex
}

/// An OAuth `error` code as an attribute value: bounded charset and length, else `_OTHER`.
fn sanitize_code(code: &str) -> String {
    let ok = !code.is_empty()
        && code.len() <= 64
        && code
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':'));
    if ok {
        code.to_owned()
    } else {
        "_OTHER".to_owned()
    }
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &s[..end])
}

/// How long a 429 asks to wait: `Retry-After` (seconds or HTTP date), else `x-ratelimit-reset`.
pub(crate) fn retry_after(h: &http::HeaderMap) -> Option<Duration> {
    let now = SystemTime::now();
    if let Some(v) = h
        .get(http::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
    {
        let v = v.trim();
        if let Ok(secs) = v.parse::<u64>() {
            return Some(Duration::from_secs(secs));
        }
        if let Ok(t) = httpdate::parse_http_date(v) {
            return Some(t.duration_since(now).unwrap_or(Duration::ZERO));
        }
    }
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

    #[test]
    fn oauth_codes_are_bounded() {
        assert_eq!(sanitize_code("invalid_grant"), "invalid_grant");
        assert_eq!(sanitize_code("<script>"), "_OTHER");
        assert_eq!(sanitize_code(&"a".repeat(65)), "_OTHER");
    }
}
