//! The end of a walk: the code exchanged at the token endpoint with the PKCE verifier, then
//! the id_token (signature, `iss`, `aud` = client id, `nonce`, `exp`) and, when configured, the
//! access token validated through `oauth.rs` as the other OAuth checks do.

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method};
use serde_json::Value;
use tokio::time::Instant;

use super::super::client::Endpoint;
use super::super::config::{ClientAuth, TokenKind, TokenValidation};
use super::super::oauth::{sanitize_code, truncate};
use super::super::outcome::Outcome;
use super::super::result::{Hop, HopKind, Purpose, RateLimit, RunResult, Step};
use super::super::run::{retry_after, strip_body, CheckRunner, Failure};
use super::config::AuthCodeCheck;
use super::pkce::Pkce;

fn token_request(
    c: &AuthCodeCheck,
    code: &str,
    pkce: &Pkce,
) -> (Vec<(HeaderName, HeaderValue)>, Bytes) {
    let mut headers = vec![
        (
            http::header::ACCEPT,
            HeaderValue::from_static("application/json"),
        ),
        (
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-www-form-urlencoded"),
        ),
    ];
    let mut body = form_urlencoded::Serializer::new(String::new());
    body.append_pair("grant_type", "authorization_code")
        .append_pair("code", code)
        .append_pair("redirect_uri", &c.redirect_uri)
        .append_pair("code_verifier", &pkce.verifier);
    let secret = c.client_secret.as_ref().filter(|s| !s.is_empty());
    match (c.client_auth, secret) {
        (ClientAuth::Basic, Some(s)) => {
            use base64::Engine;
            let enc = |x: &str| form_urlencoded::byte_serialize(x.as_bytes()).collect::<String>();
            let raw = format!("{}:{}", enc(&c.client_id), enc(s.expose()));
            let b64 = base64::engine::general_purpose::STANDARD.encode(raw);
            if let Ok(mut v) = HeaderValue::from_str(&format!("Basic {b64}")) {
                v.set_sensitive(true);
                headers.push((http::header::AUTHORIZATION, v));
            }
        }
        (_, secret) => {
            body.append_pair("client_id", &c.client_id);
            if let Some(s) = secret {
                body.append_pair("client_secret", s.expose());
            }
        }
    }
    (headers, Bytes::from(body.finish()))
}

impl CheckRunner {
    /// Exchanges the code and validates the tokens.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn exchange_code(
        &mut self,
        c: &AuthCodeCheck,
        token_url: &str,
        code: &str,
        pkce: &Pkce,
        nonce: &str,
        deadline: Instant,
        r: &mut RunResult,
        secrets: &mut Vec<String>,
    ) -> Result<(), Failure> {
        let ep = Endpoint::parse(token_url).map_err(|e| {
            Failure::new(Outcome::OauthError, "token_url_invalid", format!("token URL: {e}"))
        })?;
        let (headers, body) = token_request(c, code, pkce);
        let ex = self
            .client
            .exchange(&Method::POST, &ep, &headers, body, deadline)
            .await;
        let parsed = match &ex.result {
            Err(e) => Err(Failure::transport(e, "token request")),
            Ok(resp) => {
                r.ratelimit = RateLimit::from_headers(&resp.headers);
                r.status = Some(resp.status);
                if resp.status == 429 {
                    r.retry_after = retry_after(&resp.headers);
                }
                Ok((
                    resp.status,
                    serde_json::from_slice::<serde_json::Map<String, Value>>(&resp.body).ok(),
                ))
            }
        };
        r.steps.push(Step {
            purpose: Purpose::Main,
            exchange: strip_body(ex),
            hop: Some(Hop {
                kind: HopKind::Token,
                page: None,
            }),
        });
        let (status, json) = parsed?;
        let field = |k: &str| json.as_ref().and_then(|j| j.get(k)).and_then(Value::as_str);
        for k in ["access_token", "id_token", "refresh_token"] {
            if let Some(t) = field(k) {
                secrets.push(t.to_owned());
            }
        }
        if !(200..300).contains(&status) {
            let error = field("error").map(sanitize_code);
            r.oauth_error = error.clone();
            let detail = match (&error, field("error_description")) {
                (Some(e), Some(d)) => format!("{e}: {}", truncate(d, 200)),
                (Some(e), None) => e.clone(),
                (None, _) => "no OAuth error code in the body".into(),
            };
            let outcome = match (&error, status) {
                (_, 429) if error.as_deref() != Some("too_many_attempts") => Outcome::RateLimited,
                (None, _) => Outcome::HttpStatus,
                (Some(_), s) if s >= 500 => Outcome::HttpStatus,
                _ => Outcome::OauthError,
            };
            let hint = match error.as_deref() {
                Some("invalid_grant") => "; the code or the PKCE verifier was refused",
                Some("invalid_client") => "; check `client_id`, `client_secret` and `client_auth`",
                Some("unauthorized_client") => "; enable the Authorization Code grant",
                _ => "",
            };
            return Err(Failure::new(
                outcome,
                status.to_string(),
                format!("the token endpoint answered {status} ({detail}){hint}"),
            ));
        }
        let wants_id = c.scope().split_whitespace().any(|s| s == "openid");
        let configured = c.validate_token.clone();
        if wants_id {
            let Some(id_token) = field("id_token").map(str::to_owned) else {
                return Err(Failure::new(
                    Outcome::InvalidToken,
                    "token_missing",
                    "the token response has no `id_token` although `openid` was asked for",
                ));
            };
            let base = configured.clone().unwrap_or_default();
            let cfg = TokenValidation {
                token: TokenKind::IdToken,
                issuer: Some(c.issuer.clone()),
                audience: Some(c.client_id.clone()),
                require_claims: if base.token == TokenKind::IdToken {
                    base.require_claims.clone()
                } else {
                    Default::default()
                },
                ..base
            };
            let claims = self.validate(&id_token, &cfg, deadline, r).await?;
            if claims.get("nonce").and_then(Value::as_str) != Some(nonce) {
                return Err(Failure::new(
                    Outcome::InvalidToken,
                    "nonce_mismatch",
                    "the id_token's `nonce` is not the one the run sent",
                ));
            }
        }
        if let Some(cfg) = configured.filter(|v| v.token == TokenKind::AccessToken) {
            let Some(access) = field("access_token").map(str::to_owned) else {
                return Err(Failure::new(
                    Outcome::InvalidToken,
                    "token_missing",
                    "the token response has no `access_token` to validate",
                ));
            };
            let cfg = TokenValidation {
                issuer: cfg.issuer.clone().or_else(|| Some(c.issuer.clone())),
                ..cfg
            };
            self.validate(&access, &cfg, deadline, r).await?;
        } else if !wants_id && field("access_token").is_none() {
            return Err(Failure::new(
                Outcome::OauthError,
                "invalid_response",
                format!("the token endpoint answered {status} without an `access_token`"),
            ));
        }
        Ok(())
    }
}
