//! The OAuth checks (`password_grant`, `client_credentials`): the token request, what the
//! token endpoint's answer means, and the token's validation against the provider's keys
//! (discovery, JWKS with its cache, signature and claims through `jwt.rs`).

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method};
use serde_json::Value;
use tokio::time::Instant;

use super::client::Endpoint;
use super::jwt::{self, KeyCache};
use super::outcome::Outcome;
use super::result::{Purpose, RateLimit, RunResult, Step};
use super::run::{retry_after, strip_body, CheckRunner, Failure};
use super::{BodyFormat, Check, ClientAuth, OAuthCheck, TokenKind, TokenValidation};

/// Auth0's password-realm grant type.
pub(crate) const PASSWORD_REALM_GRANT: &str = "http://auth0.com/oauth/grant-type/password-realm";

/// Shortest time between two JWKS fetches caused by an unknown `kid`.
const MIN_REFETCH: Duration = Duration::from_secs(30);

// === impl CheckRunner ===

impl CheckRunner {
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

    pub(super) async fn run_oauth(
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
                    hop: None,
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
            hop: None,
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
                    if cfg.token == TokenKind::IdToken {
                        " (request the `openid` scope)"
                    } else {
                        ""
                    }
                ),
            ));
        };
        self.validate(&token, &cfg, deadline, r).await.map(drop)
    }

    /// Validates `token` (keys fetched or refetched as needed); returns its claims and puts
    /// the checked `require_claims` into `r.claims`.
    pub(super) async fn validate(
        &mut self,
        token: &str,
        cfg: &TokenValidation,
        deadline: Instant,
        r: &mut RunResult,
    ) -> Result<serde_json::Map<String, Value>, Failure> {
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
            .and_then(|claims| jwt::check_claims(&claims, cfg).map(|seen| (claims, seen)));
        r.validation = Some((v_start, Instant::now()));
        let (claims, seen) = res?;
        r.claims.extend(seen);
        Ok(claims)
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
            Ok(resp) => jwt::parse_jwks(&resp.body).map_err(|e| {
                Failure::new(Outcome::InvalidToken, "jwks_invalid", e.to_string())
            }),
        };
        r.steps.push(Step {
            purpose: Purpose::Jwks,
            exchange: strip_body(ex),
            hop: None,
        });
        let keys = parsed?;
        self.keys = Some(KeyCache {
            keys,
            fetched: Instant::now(),
        });
        Ok(())
    }

    pub(super) async fn get_json(
        &self,
        url: &str,
        purpose: Purpose,
        deadline: Instant,
        r: &mut RunResult,
    ) -> Result<Value, Failure> {
        let ep = Endpoint::parse(url).map_err(|e| {
            Failure::new(Outcome::InvalidToken, "discovery_invalid", e.to_string())
        })?;
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
            hop: None,
        });
        out
    }
}

/// An OAuth `error` code as an attribute value: bounded charset and length, else `_OTHER`.
pub(super) fn sanitize_code(code: &str) -> String {
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

pub(super) fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &s[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oauth_codes_are_bounded() {
        assert_eq!(sanitize_code("invalid_grant"), "invalid_grant");
        assert_eq!(sanitize_code("<script>"), "_OTHER");
        assert_eq!(sanitize_code(&"a".repeat(65)), "_OTHER");
    }
}
