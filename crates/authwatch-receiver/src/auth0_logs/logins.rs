//! Which Auth0 log events are logins, and how each failed (see `tenant_logs::logins`).
//!
//! Successes: `s`, `ssa`, `scoa`, `sens`, `sepft`, `seotpft`, `seoobft`, `sercft`. Code
//! exchanges (`seacft`, `sertft`) follow a login already counted and client credentials
//! (`seccft`) are no user's login, so they are left out. Failures by code: `fp`, `fu` wrong
//! credentials; `limit_wc`, `limit_mu`, `limit_sul`, `pwd_leak` blocked; `mfar`,
//! `gd_auth_failed`, `feotpft`, `feoobft`, `fercft` MFA; `fc` (a connector) and `fco` (CORS)
//! the tenant's setup. The generic failures (`f`, `fepft`, `fcoa`, `fens`) carry no error
//! code, so their `details.error` and `description` are read: wrong password, blocked, MFA,
//! rate limit, the tenant's extensibility (a rule, Action, hook or custom database script,
//! `access_denied`, an application not allowed the grant) or the provider's own error
//! (internal error, timeout, unavailable); anything else is `other`.

use serde_json::Value;

use super::decode::Event;
use authwatch_tenant_logs::logins::{FailureCategory, Login, Outcome};

const SUCCESS: &[&str] = &["s", "ssa", "scoa", "sens", "sepft", "seotpft", "seoobft", "sercft"];
const GENERIC_FAILURE: &[&str] = &["f", "fepft", "fcoa", "fens"];

fn by_code(code: &str) -> Option<Option<FailureCategory>> {
    use FailureCategory::*;
    Some(Some(match code {
        "fp" | "fu" => WrongCredentials,
        "limit_wc" | "limit_mu" | "limit_sul" | "pwd_leak" => Blocked,
        "mfar" | "gd_auth_failed" | "feotpft" | "feoobft" | "fercft" => Mfa,
        "fc" | "fco" => TenantError,
        c if GENERIC_FAILURE.contains(&c) => return Some(None),
        _ => return None,
    }))
}

/// Words of an error message, lower case, and the category they point at (first match wins).
const WORDS: &[(&[&str], FailureCategory)] = &[
    (
        &["wrong email or password", "wrong username or password", "invalid_user_password", "invalid_grant", "user does not exist"],
        FailureCategory::WrongCredentials,
    ),
    (&["too_many_attempts", "blocked", "locked", "password_leaked"], FailureCategory::Blocked),
    (&["mfa", "multifactor", "multi-factor"], FailureCategory::Mfa),
    (&["too_many_requests", "too many requests", "rate limit"], FailureCategory::RateLimit),
    (
        &["script", "action", "rule", "hook", "access_denied", "unauthorized_client", "invalid_client", "grant type", "custom database", "extensibility"],
        FailureCategory::TenantError,
    ),
    (
        &["internal", "server error", "timeout", "timed out", "unavailable", "something went wrong", "unexpected error", "econn"],
        FailureCategory::ProviderError,
    ),
];

fn message(data: &serde_json::Map<String, Value>) -> String {
    let mut s = String::new();
    let details = data.get("details");
    for v in [
        details.and_then(|d| d.pointer("/error/message")),
        details.and_then(|d| d.pointer("/error/oauthError")),
        details.and_then(|d| d.pointer("/error/type")),
        details.and_then(|d| d.get("error")).filter(|e| e.is_string()),
        data.get("description"),
    ]
    .into_iter()
    .flatten()
    {
        if let Some(t) = v.as_str() {
            s.push_str(&t.to_ascii_lowercase());
            s.push(' ');
        }
    }
    s
}

fn by_message(data: &serde_json::Map<String, Value>) -> FailureCategory {
    let m = message(data);
    WORDS
        .iter()
        .find(|(words, _)| words.iter().any(|w| m.contains(w)))
        .map_or(FailureCategory::Other, |(_, c)| *c)
}

fn text<'a>(data: &'a serde_json::Map<String, Value>, key: &str) -> Option<&'a str> {
    data.get(key).and_then(Value::as_str).filter(|s| !s.is_empty())
}

/// The login an event records, if it is one.
pub(crate) fn login(e: &Event) -> Option<Login<'_>> {
    let code = e.type_code();
    let outcome = if SUCCESS.contains(&code) {
        Outcome::Success
    } else {
        Outcome::Failure(by_code(code)?.unwrap_or_else(|| by_message(&e.data)))
    };
    let d = &e.data;
    Some(Login {
        outcome,
        client: text(d, "client_name").or_else(|| text(d, "client_id")).unwrap_or(""),
        connection: text(d, "connection").unwrap_or(""),
        user: text(d, "user_id").or_else(|| text(d, "user_name")),
        at: text(d, "date").and_then(authwatch_core::time::parse_rfc3339),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth0_logs::decode::decode_body;

    fn outcome(json: &str) -> Option<Outcome> {
        let e = decode_body(json.as_bytes()).unwrap();
        login(&e[0]).map(|l| l.outcome)
    }

    #[test]
    fn codes_and_messages() {
        use FailureCategory::*;
        assert_eq!(outcome(r#"{"type":"s"}"#), Some(Outcome::Success));
        assert_eq!(outcome(r#"{"type":"seccft"}"#), None);
        assert_eq!(outcome(r#"{"type":"api_limit"}"#), None);
        assert_eq!(outcome(r#"{"type":"fp"}"#), Some(Outcome::Failure(WrongCredentials)));
        assert_eq!(outcome(r#"{"type":"limit_wc"}"#), Some(Outcome::Failure(Blocked)));
        assert_eq!(
            outcome(r#"{"type":"fepft","description":"Wrong email or password."}"#),
            Some(Outcome::Failure(WrongCredentials))
        );
        assert_eq!(
            outcome(r#"{"type":"f","details":{"error":{"message":"Error in the login script: connect ECONNREFUSED"}}}"#),
            Some(Outcome::Failure(TenantError))
        );
        assert_eq!(
            outcome(r#"{"type":"fepft","description":"Internal server error"}"#),
            Some(Outcome::Failure(ProviderError))
        );
        assert_eq!(
            outcome(r#"{"type":"f","description":"Multifactor authentication required"}"#),
            Some(Outcome::Failure(Mfa))
        );
        assert_eq!(outcome(r#"{"type":"f","description":"??"}"#), Some(Outcome::Failure(Other)));
    }

    #[test]
    fn client_connection_user_and_time() {
        let e = decode_body(
            br#"{"type":"fp","client_id":"c1","connection":"Username-Password-Authentication","user_name":"neo@example.com","date":"2021-11-03T03:07:24.384Z"}"#,
        )
        .unwrap();
        let l = login(&e[0]).unwrap();
        assert_eq!(l.client, "c1");
        assert_eq!(l.connection, "Username-Password-Authentication");
        assert_eq!(l.user, Some("neo@example.com"));
        assert!(l.at.is_some());
    }
}
