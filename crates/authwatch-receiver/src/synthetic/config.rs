//! The checks' config types: what each check type takes, as written in YAML.

use std::time::Duration;

use authwatch_core::config::{duration, opt_duration, Secret};
use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

pub use super::authcode::config::{AuthCodeCheck, ConsentAction, FormFields};
use super::newtypes::{JsonPath, Pattern, StatusMatch};

/// A rate-limit budget the probes share with real traffic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimitBudget {
    /// Requests per minute the tenant allows (for example the Authentication API limit).
    pub requests_per_minute: f64,
    /// Largest share of it the probes may use, from 0 to 1.
    pub max_share: f64,
}

impl Default for RateLimitBudget {
    fn default() -> Self {
        RateLimitBudget {
            requests_per_minute: 0.0,
            max_share: 0.05,
        }
    }
}

/// One check, tagged by its `type`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Check {
    /// OAuth2 Resource Owner Password Grant (Auth0's password-realm grant when `realm` is set).
    PasswordGrant(OAuthCheck),
    /// OAuth2 client credentials grant.
    ClientCredentials(OAuthCheck),
    /// A plain HTTP request with assertions.
    Http(HttpCheck),
    /// The authorization code flow with PKCE through the hosted login page, without a browser.
    AuthorizationCode(Box<AuthCodeCheck>),
}

impl Check {
    pub fn name(&self) -> &str {
        match self {
            Check::PasswordGrant(c) | Check::ClientCredentials(c) => &c.name,
            Check::Http(c) => &c.name,
            Check::AuthorizationCode(c) => &c.name,
        }
    }

    /// The YAML `type`.
    pub fn type_name(&self) -> &'static str {
        match self {
            Check::PasswordGrant(_) => "password_grant",
            Check::ClientCredentials(_) => "client_credentials",
            Check::Http(_) => "http",
            Check::AuthorizationCode(_) => "authorization_code",
        }
    }

    /// Requests one run sends in steady state. An `authorization_code` walk: the authorize
    /// request, the redirect to the login page, identifier and password submits, the redirect
    /// back and the token request (more with MFA or consent pages).
    pub fn requests_per_run(&self) -> f64 {
        match self {
            Check::AuthorizationCode(_) => 6.0,
            _ => 1.0,
        }
    }

    pub(crate) fn interval(&self) -> Option<Duration> {
        match self {
            Check::PasswordGrant(c) | Check::ClientCredentials(c) => c.interval,
            Check::Http(c) => c.interval,
            Check::AuthorizationCode(c) => c.interval,
        }
    }

    pub(crate) fn timeout(&self) -> Option<Duration> {
        match self {
            Check::PasswordGrant(c) | Check::ClientCredentials(c) => c.timeout,
            Check::Http(c) => c.timeout,
            Check::AuthorizationCode(c) => c.timeout,
        }
    }

    /// Runs slower than this succeed but are marked degraded.
    pub fn degraded_response_time(&self) -> Option<Duration> {
        match self {
            Check::PasswordGrant(c) | Check::ClientCredentials(c) => c.degraded_response_time,
            Check::Http(c) => c.degraded_response_time,
            Check::AuthorizationCode(c) => c.degraded_response_time,
        }
    }

    pub(crate) fn tls(&self) -> &TlsConfig {
        match self {
            Check::PasswordGrant(c) | Check::ClientCredentials(c) => &c.tls,
            Check::Http(c) => &c.tls,
            Check::AuthorizationCode(c) => &c.tls,
        }
    }
}

/// How the client authenticates at the token endpoint.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientAuth {
    /// `client_id` and `client_secret` in the request body (`client_secret_post`).
    #[default]
    Post,
    /// HTTP Basic `Authorization` header (`client_secret_basic`).
    Basic,
}

/// The token request's body encoding.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BodyFormat {
    /// `application/x-www-form-urlencoded`.
    #[default]
    Form,
    /// `application/json` (Auth0 accepts both).
    Json,
}

/// A `password_grant` or `client_credentials` check.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OAuthCheck {
    pub name: String,
    /// The token endpoint, e.g. `https://tenant.us.auth0.com/oauth/token`.
    pub token_url: String,
    pub client_id: String,
    /// Optional for public clients on the password grant; required for client credentials.
    pub client_secret: Option<Secret>,
    pub client_auth: ClientAuth,
    /// The probe user (password grant only).
    pub username: Option<String>,
    /// The probe user's password (password grant only).
    pub password: Option<Secret>,
    /// Auth0 connection name; switches to the `password-realm` grant (password grant only).
    pub realm: Option<String>,
    pub audience: Option<String>,
    pub scope: Option<String>,
    pub body_format: BodyFormat,
    pub validate_token: Option<TokenValidation>,
    pub tls: TlsConfig,
    /// Overrides the receiver's `interval` for this check.
    #[serde(with = "opt_duration", skip_serializing_if = "Option::is_none")]
    pub interval: Option<Duration>,
    /// Overrides the receiver's `timeout` for this check.
    #[serde(with = "opt_duration", skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
    /// A run that succeeds but takes longer than this (every request included) is degraded:
    /// a slow run, not a failure (Checkly's `degradedResponseTime`).
    #[serde(with = "opt_duration", skip_serializing_if = "Option::is_none")]
    pub degraded_response_time: Option<Duration>,
}

/// Which token of the response to validate.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenKind {
    #[default]
    AccessToken,
    IdToken,
}

impl TokenKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenKind::AccessToken => "access_token",
            TokenKind::IdToken => "id_token",
        }
    }
}

/// Signature algorithms a token may use (never `none`, never HMAC: the probe has no shared key).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Algorithm {
    RS256,
    RS384,
    RS512,
    PS256,
    PS384,
    PS512,
    ES256,
    ES384,
}

/// How to validate the token of an OAuth check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TokenValidation {
    pub token: TokenKind,
    /// Expected `iss`, exactly (Auth0's has a trailing slash). Also locates the discovery document.
    pub issuer: Option<String>,
    /// Expected `aud` (one of the values when `aud` is a list).
    pub audience: Option<String>,
    /// The OIDC discovery document; default `{issuer}.well-known/openid-configuration`.
    pub discovery_url: Option<String>,
    /// The JWKS; when set, discovery is skipped.
    pub jwks_url: Option<String>,
    pub algorithms: Vec<Algorithm>,
    /// Clock skew allowed on `exp` and `nbf`.
    #[serde(with = "duration")]
    pub leeway: Duration,
    /// How long fetched keys are reused; an unknown `kid` refetches once earlier.
    #[serde(with = "duration")]
    pub jwks_cache_ttl: Duration,
    /// Claims that must be present with these values (`~` / null: present with any value). A
    /// list claim passes when it contains the expected scalar.
    pub require_claims: IndexMap<String, serde_json::Value>,
}

impl Default for TokenValidation {
    fn default() -> Self {
        TokenValidation {
            token: TokenKind::AccessToken,
            issuer: None,
            audience: None,
            discovery_url: None,
            jwks_url: None,
            algorithms: vec![Algorithm::RS256, Algorithm::PS256, Algorithm::ES256],
            leeway: Duration::from_secs(30),
            jwks_cache_ttl: Duration::from_secs(600),
            require_claims: IndexMap::new(),
        }
    }
}

/// TLS client settings: authwatch's one client `tls` block (`ca_file`, `cert_file` and
/// `key_file` for mutual TLS, `insecure_skip_verify`, `server_name_override`). With
/// `insecure_skip_verify` the certificate's expiry is still reported.
pub use authwatch_net::TlsClientConfig as TlsConfig;

/// An `http` check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpCheck {
    pub name: String,
    pub url: String,
    pub method: String,
    /// Request headers; values are secrets (they often carry credentials).
    pub headers: IndexMap<String, Secret>,
    /// Request body (a secret: it may carry credentials).
    pub body: Option<Secret>,
    pub expect: Expect,
    pub tls: TlsConfig,
    #[serde(with = "opt_duration", skip_serializing_if = "Option::is_none")]
    pub interval: Option<Duration>,
    #[serde(with = "opt_duration", skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
    /// A run that passes but takes longer than this is degraded: a slow run, not a failure
    /// (`expect.max_response_time` makes it a failure).
    #[serde(with = "opt_duration", skip_serializing_if = "Option::is_none")]
    pub degraded_response_time: Option<Duration>,
}

impl Default for HttpCheck {
    fn default() -> Self {
        HttpCheck {
            name: String::new(),
            url: String::new(),
            method: "GET".into(),
            headers: IndexMap::new(),
            body: None,
            expect: Expect::default(),
            tls: TlsConfig::default(),
            interval: None,
            timeout: None,
            degraded_response_time: None,
        }
    }
}

/// Assertions of an `http` check; all must hold.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Expect {
    /// Accepted status codes: numbers or classes such as `2xx`. Empty: any 2xx.
    pub status: Vec<StatusMatch>,
    pub headers: Vec<HeaderAssertion>,
    /// The body must match this regular expression.
    pub body_regex: Option<Pattern>,
    pub json: Vec<JsonAssertion>,
    /// The whole request must take no longer than this.
    #[serde(with = "opt_duration", skip_serializing_if = "Option::is_none")]
    pub max_response_time: Option<Duration>,
}

/// A response header that must be present (and match `regex` when given).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HeaderAssertion {
    pub name: String,
    pub regex: Option<Pattern>,
}

/// A JSON body assertion: the value at `path` (`$.a.b[0]`) exists, or equals `equals`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JsonAssertion {
    pub path: JsonPath,
    pub equals: Option<serde_json::Value>,
    /// `true` (the default when `equals` is absent): the path must exist; `false`: must not.
    pub exists: Option<bool>,
}
