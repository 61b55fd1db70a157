//! # `synthetic` receiver
//!
//! Runs synthetic transactions against the identity provider on a schedule, as Auth0's "Monitor
//! Applications" guide recommends: by default once a minute, an authentication through the
//! Resource Owner Password Grant (so that rules, Actions and custom database scripts run too),
//! with the returned token validated. Every run yields one trace (a root span per check, a
//! CLIENT span per HTTP request, child spans per phase) and a set of metrics, built as OTLP
//! data and sent into the pipelines that list this receiver (`traces` and/or `metrics`).
//!
//! ```yaml
//! receivers:
//!   synthetic/auth0:
//!     interval: 60s
//!     timeout: 10s
//!     checks:
//!       - name: login
//!         type: password_grant
//!         token_url: https://${env:AUTH0_DOMAIN}/oauth/token
//!         client_id: ${env:AUTH0_CLIENT_ID}
//!         client_secret: ${env:AUTH0_CLIENT_SECRET}
//!         username: probe@example.com
//!         password: ${env:AUTH0_PROBE_PASSWORD}
//!         realm: Username-Password-Authentication
//!         audience: https://api.example.com
//!         scope: openid
//!         validate_token:
//!           issuer: https://${env:AUTH0_DOMAIN}/
//!           audience: https://api.example.com
//!           require_claims:
//!             https://probe.example.com/actions_ran: true
//! ```
//!
//! The full reference (every option and default, the check types, the outcome taxonomy, every
//! metric and span attribute) is in the README's "Synthetic transactions" section.
//!
//! Care for the tenant: runs of one check never overlap (the timeout must not exceed the
//! interval); a `429` with `Retry-After` (or `x-ratelimit-reset`) delays the next run until then;
//! `too_many_attempts` (brute-force protection blocking the probe user) pauses the check for
//! `blocked_backoff` and says so in a warning, rather than keep the account locked. `validate`
//! warns when the checks would use more than `rate_limit_budget.max_share` of a stated budget.
//!
//! Secrets (`client_secret`, `password`, header values, request bodies, and the tokens
//! obtained) never appear in spans, metrics, logs, error messages or `print-config` output.

mod assert;
mod board;
mod client;
mod emit;
pub(crate) mod jwt;
mod outcome;
mod probe;
mod run;

use std::path::PathBuf;
use std::time::Duration;

use indexmap::IndexMap;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use tokio::time::Instant;
use tracing::{info, warn};

use authwatch_core::config::{duration, opt_duration, Secret};
use authwatch_core::{
    BuildError, ComponentConfig, ReceiverConfig, ReceiverContext, Running, Signals, Validator,
};

pub use outcome::Outcome;
pub use probe::{configs_in_document, probe_document, probe_once, ProbeError, ProbeReport};
pub use run::RunResult;

// === Config ===

/// The `synthetic` receiver's config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Time between the starts of two runs of a check.
    #[serde(with = "duration")]
    pub interval: Duration,
    /// Longest a run may take, every request included; must not exceed the interval.
    #[serde(with = "duration")]
    pub timeout: Duration,
    /// Wait before the first run.
    #[serde(with = "duration")]
    pub initial_delay: Duration,
    /// A random extra delay, up to this, before each check's first run (spreads checks out).
    #[serde(with = "duration")]
    pub jitter: Duration,
    /// How long a check pauses after `too_many_attempts` (the probe user is blocked).
    #[serde(with = "duration")]
    pub blocked_backoff: Duration,
    /// A stated rate-limit budget; `validate` warns when the checks would use too much of it.
    pub rate_limit_budget: Option<RateLimitBudget>,
    pub checks: Vec<Check>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            interval: Duration::from_secs(60),
            timeout: Duration::from_secs(10),
            initial_delay: Duration::from_secs(1),
            jitter: Duration::ZERO,
            blocked_backoff: Duration::from_secs(15 * 60),
            rate_limit_budget: None,
            checks: Vec::new(),
        }
    }
}

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
}

impl Check {
    pub fn name(&self) -> &str {
        match self {
            Check::PasswordGrant(c) | Check::ClientCredentials(c) => &c.name,
            Check::Http(c) => &c.name,
        }
    }

    /// The YAML `type`.
    pub fn type_name(&self) -> &'static str {
        match self {
            Check::PasswordGrant(_) => "password_grant",
            Check::ClientCredentials(_) => "client_credentials",
            Check::Http(_) => "http",
        }
    }

    fn interval(&self) -> Option<Duration> {
        match self {
            Check::PasswordGrant(c) | Check::ClientCredentials(c) => c.interval,
            Check::Http(c) => c.interval,
        }
    }

    fn timeout(&self) -> Option<Duration> {
        match self {
            Check::PasswordGrant(c) | Check::ClientCredentials(c) => c.timeout,
            Check::Http(c) => c.timeout,
        }
    }

    fn tls(&self) -> &TlsConfig {
        match self {
            Check::PasswordGrant(c) | Check::ClientCredentials(c) => &c.tls,
            Check::Http(c) => &c.tls,
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

/// TLS client settings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM file of CA certificates to trust instead of the built-in web roots.
    pub ca_file: Option<PathBuf>,
    /// Accept any server certificate (its expiry is still reported). For tests only.
    pub insecure_skip_verify: bool,
}

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

// === newtypes ===

/// An accepted status: one code (`200`) or a class (`2xx`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusMatch {
    Code(u16),
    Class(u8),
}

impl StatusMatch {
    pub fn matches(self, status: u16) -> bool {
        match self {
            StatusMatch::Code(c) => c == status,
            StatusMatch::Class(c) => status / 100 == u16::from(c),
        }
    }
}

impl std::fmt::Display for StatusMatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StatusMatch::Code(c) => write!(f, "{c}"),
            StatusMatch::Class(c) => write!(f, "{c}xx"),
        }
    }
}

impl Serialize for StatusMatch {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            StatusMatch::Code(c) => s.serialize_u16(*c),
            StatusMatch::Class(_) => s.collect_str(self),
        }
    }
}

impl<'de> Deserialize<'de> for StatusMatch {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            N(u64),
            S(String),
        }
        let bad = |what: &str| {
            serde::de::Error::custom(format!(
                "invalid status `{what}`: write a code from 100 to 599 or a class like `2xx`"
            ))
        };
        let text = match Raw::deserialize(d)? {
            Raw::N(n) => n.to_string(),
            Raw::S(s) => s,
        };
        let t = text.trim().to_ascii_lowercase();
        if let Some(class) = t.strip_suffix("xx") {
            return match class.parse::<u8>() {
                Ok(c @ 1..=5) => Ok(StatusMatch::Class(c)),
                _ => Err(bad(&text)),
            };
        }
        match t.parse::<u16>() {
            Ok(c @ 100..=599) => Ok(StatusMatch::Code(c)),
            _ => Err(bad(&text)),
        }
    }
}

/// A regular expression, checked when the config is read.
#[derive(Debug, Clone)]
pub struct Pattern(pub regex::Regex);

impl PartialEq for Pattern {
    fn eq(&self, other: &Self) -> bool {
        self.0.as_str() == other.0.as_str()
    }
}

impl Serialize for Pattern {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.0.as_str())
    }
}

impl<'de> Deserialize<'de> for Pattern {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        regex::Regex::new(&s)
            .map(Pattern)
            .map_err(|e| serde::de::Error::custom(format!("invalid regular expression: {e}")))
    }
}

/// A JSON path in the common dotted form: `$.issuer`, `$.keys[0].kid`, `data.items[2]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JsonPath {
    text: String,
    steps: Vec<JsonStep>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum JsonStep {
    Key(String),
    Index(usize),
}

impl JsonPath {
    pub fn parse(text: &str) -> Result<JsonPath, String> {
        let bad = |why: &str| {
            format!(
                "invalid JSON path `{text}`: {why}; write it like `$.keys[0].kid` or `$[\"a.b\"]`"
            )
        };
        let mut rest = text.trim();
        rest = rest.strip_prefix('$').unwrap_or(rest);
        let mut steps = Vec::new();
        let mut first = true;
        while !rest.is_empty() {
            if let Some(r) = rest.strip_prefix('[') {
                let end = r.find(']').ok_or_else(|| bad("unclosed `[`"))?;
                let inner = r[..end].trim();
                if let Some(q) = inner
                    .strip_prefix('"')
                    .and_then(|x| x.strip_suffix('"'))
                    .or_else(|| inner.strip_prefix('\'').and_then(|x| x.strip_suffix('\'')))
                {
                    steps.push(JsonStep::Key(q.to_owned()));
                } else {
                    let i = inner.parse().map_err(|_| bad("index must be a number"))?;
                    steps.push(JsonStep::Index(i));
                }
                rest = &r[end + 1..];
            } else {
                let r = match rest.strip_prefix('.') {
                    Some(r) => r,
                    None if first => rest,
                    None => return Err(bad("expected `.` or `[`")),
                };
                let end = r.find(['.', '[']).unwrap_or(r.len());
                if end == 0 {
                    return Err(bad("empty key"));
                }
                steps.push(JsonStep::Key(r[..end].to_owned()));
                rest = &r[end..];
            }
            first = false;
        }
        Ok(JsonPath {
            text: text.to_owned(),
            steps,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The value at this path, if there is one.
    pub fn get<'a>(&self, mut v: &'a serde_json::Value) -> Option<&'a serde_json::Value> {
        for s in &self.steps {
            v = match s {
                JsonStep::Key(k) => v.get(k.as_str())?,
                JsonStep::Index(i) => v.get(*i)?,
            };
        }
        Some(v)
    }
}

impl Serialize for JsonPath {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for JsonPath {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        JsonPath::parse(&s).map_err(serde::de::Error::custom)
    }
}

// === impl ReceiverConfig ===

impl Config {
    /// The interval and timeout a check runs with (its overrides, else the receiver's).
    fn schedule_of(&self, c: &Check) -> (Duration, Duration) {
        (
            c.interval().unwrap_or(self.interval),
            c.timeout().unwrap_or(self.timeout),
        )
    }
}

fn validate_url(v: &mut Validator, path: &str, url: &str) {
    if url.is_empty() {
        v.error(path, "is required");
    } else if let Err(e) = client::Endpoint::parse(url) {
        v.error(path, e);
    }
}

impl ComponentConfig for Config {
    const TYPE: &'static str = "synthetic";

    fn validate(&self, v: &mut Validator) {
        if self.checks.is_empty() {
            v.error("checks", "at least one check must be configured");
        }
        let mut names = std::collections::HashSet::new();
        for (i, check) in self.checks.iter().enumerate() {
            let at = |field: &str| format!("checks::{i}::{field}");
            let name = check.name();
            if name.trim().is_empty() {
                v.error(&at("name"), "is required: every check needs a unique name");
            } else if !names.insert(name) {
                v.error(&at("name"), format!("check name `{name}` is used twice"));
            }
            let (interval, timeout) = self.schedule_of(check);
            if interval.is_zero() {
                v.error(&at("interval"), "must be positive");
            }
            if timeout.is_zero() {
                v.error(&at("timeout"), "must be positive");
            } else if timeout > interval {
                v.error(
                    &at("timeout"),
                    format!(
                        "timeout {} exceeds the interval {}: runs of one check never overlap, so the timeout must not be longer than the interval",
                        humantime_str(timeout),
                        humantime_str(interval)
                    ),
                );
            }
            if check.tls().insecure_skip_verify && check.tls().ca_file.is_some() {
                v.warn(
                    &at("tls"),
                    "`ca_file` has no effect with `insecure_skip_verify: true`",
                );
            }
            match check {
                Check::PasswordGrant(c) | Check::ClientCredentials(c) => {
                    validate_url(v, &at("token_url"), &c.token_url);
                    if c.client_id.is_empty() {
                        v.error(&at("client_id"), "is required");
                    }
                    // Presence, not content: `${env:X}` of an unset variable is empty, and the loader
                    // already warns about that.
                    let has_secret = c.client_secret.is_some();
                    if c.client_auth == ClientAuth::Basic && !has_secret {
                        v.error(&at("client_auth"), "`basic` needs a `client_secret`");
                    }
                    if matches!(check, Check::PasswordGrant(_)) {
                        if c.username.as_deref().unwrap_or("").is_empty() {
                            v.error(&at("username"), "is required for a password_grant check");
                        }
                        if c.password.is_none() {
                            v.error(&at("password"), "is required for a password_grant check");
                        }
                    } else {
                        for (field, set) in [
                            ("username", c.username.is_some()),
                            ("password", c.password.is_some()),
                            ("realm", c.realm.is_some()),
                        ] {
                            if set {
                                v.error(
                                    &at(field),
                                    "only a password_grant check takes it; remove it or change the type",
                                );
                            }
                        }
                        if !has_secret {
                            v.error(
                                &at("client_secret"),
                                "is required for a client_credentials check",
                            );
                        }
                    }
                    if let Some(t) = &c.validate_token {
                        let at_t = |f: &str| at(&format!("validate_token::{f}"));
                        if t.issuer.is_none() && t.jwks_url.is_none() && t.discovery_url.is_none() {
                            v.error(
                                &at("validate_token"),
                                "set `issuer` (keys are then found through discovery), `discovery_url` or `jwks_url`",
                            );
                        }
                        for (f, u) in [
                            ("jwks_url", &t.jwks_url),
                            ("discovery_url", &t.discovery_url),
                        ] {
                            if let Some(u) = u {
                                validate_url(v, &at_t(f), u);
                            }
                        }
                        if t.algorithms.is_empty() {
                            v.error(&at_t("algorithms"), "must list at least one algorithm");
                        }
                        if t.token == TokenKind::IdToken
                            && !c
                                .scope
                                .as_deref()
                                .unwrap_or("")
                                .split_whitespace()
                                .any(|s| s == "openid")
                        {
                            v.warn(
                                &at_t("token"),
                                "an id_token is only issued when `scope` contains `openid`",
                            );
                        }
                    }
                }
                Check::Http(c) => {
                    validate_url(v, &at("url"), &c.url);
                    if http::Method::from_bytes(c.method.as_bytes()).is_err() {
                        v.error(&at("method"), format!("invalid HTTP method `{}`", c.method));
                    }
                    for (h, _) in &c.headers {
                        if http::HeaderName::from_bytes(h.as_bytes()).is_err() {
                            v.error(&at("headers"), format!("invalid header name `{h}`"));
                        }
                    }
                    for (j, a) in c.expect.headers.iter().enumerate() {
                        if http::HeaderName::from_bytes(a.name.as_bytes()).is_err() {
                            v.error(
                                &at(&format!("expect::headers::{j}::name")),
                                format!("invalid header name `{}`", a.name),
                            );
                        }
                    }
                    for (j, a) in c.expect.json.iter().enumerate() {
                        if a.equals.is_some() && a.exists == Some(false) {
                            v.error(
                                &at(&format!("expect::json::{j}")),
                                "`equals` and `exists: false` contradict each other",
                            );
                        }
                    }
                }
            }
        }
        if let Some(b) = &self.rate_limit_budget {
            self.validate_budget(b, v);
        }
    }
}

fn humantime_str(d: Duration) -> String {
    format!("{}", humantime_fmt(d))
}

fn humantime_fmt(d: Duration) -> impl std::fmt::Display {
    struct H(Duration);
    impl std::fmt::Display for H {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            if self.0.subsec_millis() == 0 {
                write!(f, "{}s", self.0.as_secs())
            } else {
                write!(f, "{}ms", self.0.as_millis())
            }
        }
    }
    H(d)
}

impl Config {
    /// Requests per minute the checks send in steady state (one token or HTTP request per run;
    /// JWKS fetches are cached and not counted).
    pub fn requests_per_minute(&self) -> f64 {
        self.checks
            .iter()
            .map(|c| {
                let (interval, _) = self.schedule_of(c);
                if interval.is_zero() {
                    0.0
                } else {
                    60.0 / interval.as_secs_f64()
                }
            })
            .sum()
    }

    fn validate_budget(&self, b: &RateLimitBudget, v: &mut Validator) {
        if !(b.requests_per_minute.is_finite() && b.requests_per_minute > 0.0) {
            v.error(
                "rate_limit_budget::requests_per_minute",
                "must be a positive number (the requests per minute the tenant allows)",
            );
            return;
        }
        if !(b.max_share.is_finite() && b.max_share > 0.0 && b.max_share <= 1.0) {
            v.error(
                "rate_limit_budget::max_share",
                "must be a share from 0 (exclusive) to 1",
            );
            return;
        }
        let used = self.requests_per_minute();
        let share = used / b.requests_per_minute;
        if share > b.max_share {
            v.warn(
                "rate_limit_budget",
                format!(
                    "the checks send {used:.1} requests per minute, {:.1}% of the stated budget of {} per minute (more than the {:.1}% allowed): lengthen `interval` or remove checks",
                    share * 100.0,
                    b.requests_per_minute,
                    b.max_share * 100.0
                ),
            );
        }
    }
}

impl ReceiverConfig for Config {
    fn signals(&self) -> Signals {
        Signals::TRACES | Signals::METRICS
    }

    async fn build(&self, cx: ReceiverContext) -> Result<Running, BuildError> {
        let telemetry = cx.settings.telemetry.receiver(&cx.settings.id, "synthetic");
        let lag = schedule_lag(&cx.settings.telemetry, &cx.settings.id.to_string());
        let mut runners = Vec::new();
        for check in &self.checks {
            let (interval, timeout) = self.schedule_of(check);
            let runner = run::CheckRunner::new(check.clone(), timeout)
                .map_err(|e| BuildError::Other(format!("check `{}`: {e}", check.name())))?;
            let board = board::ProbeBoard::new(
                cx.settings.board.clone(),
                &cx.settings.id.to_string(),
                check,
            );
            runners.push((runner, interval, board));
        }
        let settings = cx.settings;
        let next = cx.next;
        let schedule = Schedule {
            initial_delay: self.initial_delay,
            jitter: self.jitter,
            blocked_backoff: self.blocked_backoff,
            interval: Duration::ZERO,
            lag: Some(lag),
        };
        let id = settings.id.to_string();
        Ok(Box::pin(async move {
            info!(receiver = %id, checks = runners.len(), "Synthetic receiver started.");
            let mut tasks = tokio::task::JoinSet::new();
            for (runner, interval, board) in runners {
                let emitter = emit::Emitter::new(next.clone(), telemetry.clone());
                let shutdown = settings.shutdown.clone();
                let schedule = Schedule {
                    interval,
                    ..schedule.clone()
                };
                let mut task = CheckTask {
                    runner,
                    emitter,
                    board,
                };
                tasks.spawn(async move {
                    run_schedule(&schedule, &shutdown, &mut task).await;
                });
            }
            while tasks.join_next().await.is_some() {}
            info!(receiver = %id, "Synthetic receiver stopped.");
            Ok(())
        }))
    }
}

// === impl Schedule ===

/// When a check runs.
#[derive(Debug, Clone)]
struct Schedule {
    interval: Duration,
    initial_delay: Duration,
    jitter: Duration,
    blocked_backoff: Duration,
    /// Where to record how late each run starts (`authwatch_synthetic_schedule_lag_seconds`).
    lag: Option<Histogram>,
}

/// Bucket bounds of the schedule lag, in seconds: fine around the 50 ms drift target.
const LAG_BUCKETS: [f64; 17] = [
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.03, 0.04, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

type LagFamily = Family<Vec<(String, String)>, Histogram, fn() -> Histogram>;

fn lag_histogram() -> Histogram {
    Histogram::new(LAG_BUCKETS)
}

/// This receiver's series of `authwatch_synthetic_schedule_lag_seconds`: how long after its
/// planned time each run of a check started (timer and scheduling delay; the planned time
/// already includes jitter, `Retry-After` and `blocked_backoff`).
fn schedule_lag(telemetry: &authwatch_core::telemetry::Telemetry, receiver: &str) -> Histogram {
    let family: LagFamily = telemetry.metric(
        "synthetic_schedule_lag_seconds",
        "How late synthetic check runs started compared with their schedule",
        || LagFamily::new_with_constructor(lag_histogram),
    );
    let series = family
        .get_or_create(&vec![("receiver".to_owned(), receiver.to_owned())])
        .clone();
    series
}

/// What a run asks of the scheduler.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Backoff {
    /// Next run at the next interval.
    #[default]
    None,
    /// The provider asked to wait this long (429 `Retry-After` / `x-ratelimit-reset`).
    RetryAfter(Duration),
    /// The probe user is blocked (`too_many_attempts`): pause for `blocked_backoff`.
    Blocked,
}

/// Longest wait a `Retry-After` may impose (a broken header must not stop probing for days).
const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

impl Schedule {
    /// The next planned run after one planned at `planned` finished at `now`.
    fn next(&self, planned: Instant, now: Instant, backoff: Backoff) -> Instant {
        let mut next = planned + self.interval;
        // A run that overran (it cannot, timeout <= interval, but be safe): skip missed ticks.
        while next <= now {
            next += self.interval.max(Duration::from_millis(1));
        }
        let not_before = match backoff {
            Backoff::None => now,
            Backoff::RetryAfter(d) => now + d.min(MAX_RETRY_AFTER),
            Backoff::Blocked => now + self.blocked_backoff,
        };
        // Stay on the interval grid.
        while next < not_before {
            next += self.interval.max(Duration::from_millis(1));
        }
        next
    }
}

/// One run of something on a schedule (a check; a stand-in in tests).
pub(crate) trait Probe: Send {
    fn run_once(&mut self) -> impl std::future::Future<Output = Backoff> + Send;
}

/// A check and where its results go.
struct CheckTask {
    runner: run::CheckRunner,
    emitter: emit::Emitter,
    board: board::ProbeBoard,
}

impl Probe for CheckTask {
    async fn run_once(&mut self) -> Backoff {
        let result = self.runner.run().await;
        self.emitter.emit(&result).await;
        self.board.publish(&result);
        result.backoff()
    }
}

/// Runs `probe` on `schedule` until `shutdown` is cancelled. A run in flight is finished first.
async fn run_schedule<P: Probe>(
    schedule: &Schedule,
    shutdown: &tokio_util::sync::CancellationToken,
    probe: &mut P,
) {
    let jitter = if schedule.jitter.is_zero() {
        Duration::ZERO
    } else {
        schedule.jitter.mul_f64(rand::random::<f64>())
    };
    let mut planned = Instant::now() + schedule.initial_delay + jitter;
    loop {
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep_until(planned) => {}
        }
        if let Some(lag) = &schedule.lag {
            lag.observe(
                Instant::now()
                    .saturating_duration_since(planned)
                    .as_secs_f64(),
            );
        }
        let backoff = probe.run_once().await;
        let now = Instant::now();
        match backoff {
            Backoff::Blocked => warn!(
                pause = %humantime_fmt(schedule.blocked_backoff),
                "The provider blocked the probe user (too_many_attempts); pausing the check. Unblock the user or allow-list the probe's IP in Attack Protection."
            ),
            Backoff::RetryAfter(d) => warn!(
                retry_after = %humantime_fmt(d.min(MAX_RETRY_AFTER)),
                "The provider rate-limited the probe; delaying the next run."
            ),
            Backoff::None => {}
        }
        planned = schedule.next(planned, now, backoff);
        if shutdown.is_cancelled() {
            return;
        }
    }
}

#[cfg(test)]
mod tests;
