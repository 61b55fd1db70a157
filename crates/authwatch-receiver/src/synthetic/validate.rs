//! The cross-field rules of the `synthetic` config (`ComponentConfig::validate`): unique check
//! names, a timeout within the interval, what each check type requires, URLs, and the stated
//! rate-limit budget. Single-field rules live in the newtypes (`newtypes.rs`).

use std::collections::HashSet;

use authwatch_core::Validator;

use super::client::Endpoint;
use super::config::{
    Check, ClientAuth, HttpCheck, OAuthCheck, RateLimitBudget, TokenKind, TokenValidation,
};
use super::schedule::humantime;
use super::Config;

/// Every rule, for `Config::validate`.
pub(super) fn config(config: &Config, v: &mut Validator) {
    if config.checks.is_empty() {
        v.error("checks", "at least one check must be configured");
    }
    let mut names = HashSet::new();
    for (i, check) in config.checks.iter().enumerate() {
        let at = |field: &str| format!("checks::{i}::{field}");
        let name = check.name();
        if name.trim().is_empty() {
            v.error(&at("name"), "is required: every check needs a unique name");
        } else if !names.insert(name) {
            v.error(&at("name"), format!("check name `{name}` is used twice"));
        }
        let (interval, timeout) = config.schedule_of(check);
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
                    humantime(timeout),
                    humantime(interval)
                ),
            );
        }
        if let Some(d) = check.degraded_response_time() {
            if d.is_zero() {
                v.error(&at("degraded_response_time"), "must be positive, e.g. `2s`");
            } else if d >= timeout && !timeout.is_zero() {
                v.error(
                    &at("degraded_response_time"),
                    format!(
                        "must be shorter than the timeout {}: a run that long fails with `timeout`",
                        humantime(timeout)
                    ),
                );
            }
        }
        check.tls().validate_for_urls(v, &at("tls"));
        match check {
            Check::PasswordGrant(c) => oauth_check(v, i, c, true),
            Check::ClientCredentials(c) => oauth_check(v, i, c, false),
            Check::Http(c) => http_check(v, i, c),
            Check::AuthorizationCode(c) => super::authcode::validate::check(v, i, c),
        }
    }
    if let Some(b) = &config.rate_limit_budget {
        budget(config, b, v);
    }
}

fn url(v: &mut Validator, path: &str, url: &str) {
    if url.is_empty() {
        v.error(path, "is required");
    } else if let Err(e) = Endpoint::parse(url) {
        v.error(path, e.to_string());
    }
}

/// A `password_grant` (`password_grant: true`) or `client_credentials` check, the `i`th.
fn oauth_check(v: &mut Validator, i: usize, c: &OAuthCheck, password_grant: bool) {
    let at = |field: &str| format!("checks::{i}::{field}");
    url(v, &at("token_url"), &c.token_url);
    if c.client_id.is_empty() {
        v.error(&at("client_id"), "is required");
    }
    // Presence, not content: `${env:X}` of an unset variable is empty, and the loader
    // already warns about that.
    let has_secret = c.client_secret.is_some();
    if c.client_auth == ClientAuth::Basic && !has_secret {
        v.error(&at("client_auth"), "`basic` needs a `client_secret`");
    }
    if password_grant {
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
        token_validation(v, i, c, t);
    }
}

/// `validate_token` of the `i`th check, `c`.
fn token_validation(v: &mut Validator, i: usize, c: &OAuthCheck, t: &TokenValidation) {
    let at = |field: &str| format!("checks::{i}::validate_token::{field}");
    if t.issuer.is_none() && t.jwks_url.is_none() && t.discovery_url.is_none() {
        v.error(
            &format!("checks::{i}::validate_token"),
            "set `issuer` (keys are then found through discovery), `discovery_url` or `jwks_url`",
        );
    }
    for (f, u) in [
        ("jwks_url", &t.jwks_url),
        ("discovery_url", &t.discovery_url),
    ] {
        if let Some(u) = u {
            url(v, &at(f), u);
        }
    }
    if t.algorithms.is_empty() {
        v.error(&at("algorithms"), "must list at least one algorithm");
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
            &at("token"),
            "an id_token is only issued when `scope` contains `openid`",
        );
    }
}

/// An `http` check, the `i`th.
fn http_check(v: &mut Validator, i: usize, c: &HttpCheck) {
    let at = |field: &str| format!("checks::{i}::{field}");
    url(v, &at("url"), &c.url);
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

/// `rate_limit_budget`: a sane budget, and a warning when the checks use too much of it.
fn budget(config: &Config, b: &RateLimitBudget, v: &mut Validator) {
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
    let used = config.requests_per_minute();
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
