//! The end of the walk: the redirect to the redirect URI, recognised and read (the code with
//! its `state` checked, the RFC 9207 `iss` when sent, or the OAuth error).

use url::Url;

use super::super::oauth::{sanitize_code, truncate};
use super::super::outcome::Outcome;
use super::super::run::Failure;
use super::config::AuthCodeCheck;

/// Whether `url` is the redirect URI (the same URL, with a query or fragment at most).
pub(super) fn is_callback(url: &Url, redirect_uri: &str) -> bool {
    let u = url.as_str();
    u.strip_prefix(redirect_uri)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('?') || rest.starts_with('#'))
        || Url::parse(redirect_uri).is_ok_and(|r| {
            let mut a = url.clone();
            a.set_query(None);
            a.set_fragment(None);
            a == r
        })
}

/// Reads the redirect to the redirect URI: the code (state checked), or the OAuth error.
pub(super) fn callback(c: &AuthCodeCheck, target: &Url, state: &str) -> Result<String, Failure> {
    let mut pairs: Vec<(String, String)> = target.query_pairs().into_owned().collect();
    if pairs.is_empty() {
        if let Some(f) = target.fragment() {
            pairs = form_urlencoded::parse(f.as_bytes()).into_owned().collect();
        }
    }
    let get = |k: &str| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    if let Some(error) = get("error") {
        let code = sanitize_code(error);
        let description = get("error_description")
            .map(|d| format!(": {}", truncate(d, 200)))
            .unwrap_or_default();
        let hint = match code.as_str() {
            "access_denied" => " (a rule or Action denied the login, or the user declined)",
            "login_required" | "interaction_required" => " (drop `prompt=none`)",
            "unauthorized_client" => " (enable the Authorization Code grant on the application)",
            _ => "",
        };
        return Err(Failure::new(
            Outcome::OauthError,
            code.clone(),
            format!("the provider redirected back with {code}{description}{hint}"),
        ));
    }
    if get("state") != Some(state) {
        return Err(Failure::new(
            Outcome::OauthError,
            "state_mismatch",
            "the redirect back carries another `state` than the run sent",
        ));
    }
    if let Some(iss) = get("iss") {
        if iss != c.issuer {
            return Err(Failure::new(
                Outcome::OauthError,
                "issuer_mismatch",
                format!(
                    "the redirect back names the issuer `{}`, not `{}` (RFC 9207)",
                    truncate(iss, 200),
                    c.issuer
                ),
            ));
        }
    }
    get("code")
        .filter(|c| !c.is_empty())
        .map(str::to_owned)
        .ok_or_else(|| {
            Failure::new(
                Outcome::OauthError,
                "no_code",
                "the redirect back has neither `code` nor `error`",
            )
        })
}

