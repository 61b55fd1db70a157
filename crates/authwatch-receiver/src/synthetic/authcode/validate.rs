//! The config rules of an `authorization_code` check (called from `synthetic/validate.rs`).

use authwatch_core::Validator;

use super::super::client::Endpoint;
use super::super::config::{ClientAuth, TokenKind};
use super::config::AuthCodeCheck;
use super::{form, totp};

fn url(v: &mut Validator, path: &str, url: &str) {
    if url.is_empty() {
        v.error(path, "is required");
    } else if let Err(e) = Endpoint::parse(url) {
        v.error(path, e.to_string());
    }
}

/// The rules of the `i`th check, `c`.
pub(in super::super) fn check(v: &mut Validator, i: usize, c: &AuthCodeCheck) {
    let at = |field: &str| format!("checks::{i}::{field}");
    url(v, &at("issuer"), &c.issuer);
    for (f, u) in [("authorize_url", &c.authorize_url), ("token_url", &c.token_url)] {
        if let Some(u) = u {
            url(v, &at(f), u);
        }
    }
    if c.client_id.is_empty() {
        v.error(&at("client_id"), "is required");
    }
    if c.client_auth == ClientAuth::Basic && c.client_secret.is_none() {
        v.error(&at("client_auth"), "`basic` needs a `client_secret`");
    }
    match url::Url::parse(&c.redirect_uri) {
        _ if c.redirect_uri.is_empty() => v.error(
            &at("redirect_uri"),
            "is required: the callback registered on the application, e.g. https://authwatch.invalid/callback (it is never called)",
        ),
        Ok(u) if u.fragment().is_none() && u.has_host() => {}
        _ => v.error(
            &at("redirect_uri"),
            format!("`{}` is not an absolute URL without a fragment", c.redirect_uri),
        ),
    }
    if c.username.is_empty() {
        v.error(&at("username"), "is required: the probe user");
    }
    if c.password.is_none() {
        v.error(&at("password"), "is required: the probe user's password");
    }
    if let Some(s) = &c.totp_secret {
        // An unset `${env:...}` is empty: the loader warns about it already.
        if !s.is_empty() {
            if let Err(e) = totp::key(s.expose()) {
                v.error(&at("totp_secret"), e.to_string());
            }
        }
    }
    if let Some(s) = &c.form.selector {
        if let Err(e) = form::check_selector(s) {
            v.error(&at("form::selector"), e.to_string());
        }
    }
    for (j, h) in c.allowed_hosts.iter().enumerate() {
        if h.trim().is_empty() || h.contains('/') || h.contains('@') {
            v.error(
                &at(&format!("allowed_hosts::{j}")),
                format!("`{h}` is not a host or host:port"),
            );
        }
    }
    if c.max_redirects == 0 {
        v.error(&at("max_redirects"), "must be at least 1 (the flow redirects)");
    }
    for k in c.params.keys() {
        if matches!(
            k.as_str(),
            "response_type" | "client_id" | "redirect_uri" | "scope" | "state" | "nonce"
                | "code_challenge" | "code_challenge_method" | "audience"
        ) {
            v.error(
                &at(&format!("params::{k}")),
                "is set by the check (use the check's own option where there is one)",
            );
        }
    }
    if let Some(t) = &c.validate_token {
        if t.algorithms.is_empty() {
            v.error(
                &at("validate_token::algorithms"),
                "must list at least one algorithm",
            );
        }
        if t.token == TokenKind::IdToken && !c.scope().split_whitespace().any(|s| s == "openid") {
            v.error(
                &at("validate_token::token"),
                "an id_token is only issued when `scope` contains `openid`",
            );
        }
        if let Some(u) = &t.jwks_url {
            url(v, &at("validate_token::jwks_url"), u);
        }
    }
}
