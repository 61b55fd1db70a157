//! The `authorization_code` check's config, as written in YAML.

use std::time::Duration;

use authwatch_core::config::{opt_duration, Secret};
use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

use super::super::config::{ClientAuth, TlsConfig, TokenValidation};

/// Default `max_redirects`.
pub(crate) const MAX_REDIRECTS: u32 = 20;

/// What to do on a consent page.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConsentAction {
    /// Stop and report `consent_required` (the probe application should not need consent).
    #[default]
    Report,
    /// Submit the allowing form.
    Accept,
}

/// Overrides of the login form's detection.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FormFields {
    /// A CSS selector for the login form(s); only forms matching it are considered.
    pub selector: Option<String>,
    /// The `name` of the username input (default: detected from input types and common names).
    pub username_field: Option<String>,
    /// The `name` of the password input (default: the form's `type=password` input).
    pub password_field: Option<String>,
    /// The `name` of the one-time-code input of the MFA page (default: detected).
    pub code_field: Option<String>,
}

/// An `authorization_code` check: the hosted login page, walked in plain HTTP.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthCodeCheck {
    pub name: String,
    /// The provider's issuer, exactly as the id_token's `iss` (Auth0's has a trailing slash).
    /// Discovery (`{issuer}/.well-known/openid-configuration`) finds the authorize, token and
    /// JWKS endpoints.
    pub issuer: String,
    /// The authorize endpoint; default from discovery.
    pub authorize_url: Option<String>,
    /// The token endpoint; default from discovery.
    pub token_url: Option<String>,
    pub client_id: String,
    /// Optional: public clients (PKCE only) need none.
    pub client_secret: Option<Secret>,
    pub client_auth: ClientAuth,
    /// The callback registered on the application. It is never called: the walk stops at the
    /// redirect to it (`https://authwatch.invalid/callback` is a good choice).
    pub redirect_uri: String,
    /// Default `openid`.
    pub scope: Option<String>,
    pub audience: Option<String>,
    /// Extra authorize parameters (`connection`, `organization`, `prompt`, ...).
    pub params: IndexMap<String, String>,
    /// The probe user.
    pub username: String,
    pub password: Option<Secret>,
    /// The probe user's TOTP secret (base32, as shown at enrollment): answers an MFA page.
    pub totp_secret: Option<Secret>,
    /// `report` (default): a consent page is the outcome `consent_required`; `accept`: allow.
    pub consent: ConsentAction,
    pub form: FormFields,
    /// Hosts (`host` or `host:port`) besides the authorize URL's that may receive the
    /// credentials (a login page on a custom domain, a federated provider).
    pub allowed_hosts: Vec<String>,
    /// Redirects followed in one run before the outcome `redirect_loop`.
    pub max_redirects: u32,
    /// Validates the access token too (the id_token is always validated: signature, `iss`,
    /// `aud` = `client_id`, `nonce`, `exp`); with `token: id_token`, its `require_claims`
    /// apply to the id_token.
    pub validate_token: Option<TokenValidation>,
    pub tls: TlsConfig,
    #[serde(with = "opt_duration", skip_serializing_if = "Option::is_none")]
    pub interval: Option<Duration>,
    #[serde(with = "opt_duration", skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
    #[serde(with = "opt_duration", skip_serializing_if = "Option::is_none")]
    pub degraded_response_time: Option<Duration>,
}

impl Default for AuthCodeCheck {
    fn default() -> Self {
        AuthCodeCheck {
            name: String::new(),
            issuer: String::new(),
            authorize_url: None,
            token_url: None,
            client_id: String::new(),
            client_secret: None,
            client_auth: ClientAuth::Post,
            redirect_uri: String::new(),
            scope: None,
            audience: None,
            params: IndexMap::new(),
            username: String::new(),
            password: None,
            totp_secret: None,
            consent: ConsentAction::Report,
            form: FormFields::default(),
            allowed_hosts: Vec::new(),
            max_redirects: MAX_REDIRECTS,
            validate_token: None,
            tls: TlsConfig::default(),
            interval: None,
            timeout: None,
            degraded_response_time: None,
        }
    }
}

impl AuthCodeCheck {
    /// The scope asked for.
    pub(crate) fn scope(&self) -> &str {
        self.scope.as_deref().unwrap_or("openid")
    }
}
