//! The walk's pure parts: which hosts may receive credentials, the redirect URI, the callback.

use super::*;

fn check() -> AuthCodeCheck {
    AuthCodeCheck {
        issuer: "https://tenant.example.com/".into(),
        redirect_uri: "https://authwatch.invalid/callback".into(),
        allowed_hosts: vec!["login.example.com".into(), "idp.example.net:8443".into()],
        ..AuthCodeCheck::default()
    }
}

fn u(s: &str) -> Url {
    Url::parse(s).unwrap()
}

#[test]
fn credentials_go_to_the_authorize_origin_or_the_allow_list() {
    let c = check();
    let a = u("https://tenant.example.com/authorize?x=1");
    assert!(may_receive_credentials(&c, &a, &u("https://tenant.example.com/u/login")));
    assert!(may_receive_credentials(&c, &a, &u("https://LOGIN.example.com/u/login")));
    assert!(may_receive_credentials(&c, &a, &u("https://idp.example.net:8443/x")));
    // Same host, other port or scheme: another origin.
    assert!(!may_receive_credentials(&c, &a, &u("https://tenant.example.com:8443/u")));
    assert!(!may_receive_credentials(&c, &a, &u("http://tenant.example.com/u")));
    assert!(!may_receive_credentials(&c, &a, &u("https://idp.example.net/x")));
    assert!(!may_receive_credentials(&c, &a, &u("https://evil.example.org/collect")));
    // An allowed host over http when the authorize URL is https: refused.
    assert!(!may_receive_credentials(&c, &a, &u("http://login.example.com/u")));
}

#[test]
fn the_redirect_uri_is_recognised_and_read() {
    let c = check();
    assert!(is_callback(&u("https://authwatch.invalid/callback?code=x&state=s"), &c.redirect_uri));
    assert!(is_callback(&u("https://authwatch.invalid/callback"), &c.redirect_uri));
    assert!(!is_callback(&u("https://authwatch.invalid/callbackx?code=x"), &c.redirect_uri));
    assert!(!is_callback(&u("https://authwatch.invalid.evil/callback"), &c.redirect_uri));

    let ok = callback(&c, &u("https://authwatch.invalid/callback?code=abc&state=s1"), "s1");
    assert_eq!(ok.ok().as_deref(), Some("abc"));
    let wrong_state = callback(&c, &u("https://authwatch.invalid/callback?code=abc&state=s2"), "s1");
    assert_eq!(wrong_state.err().unwrap().outcome(), Outcome::OauthError);
    let denied = callback(
        &c,
        &u("https://authwatch.invalid/callback?error=access_denied&error_description=Blocked%20by%20Action&state=s1"),
        "s1",
    )
    .err()
    .unwrap();
    assert_eq!(denied.outcome(), Outcome::OauthError);
    assert!(denied.message().contains("access_denied: Blocked by Action"), "{}", denied.message());
    let mixup = callback(
        &c,
        &u("https://authwatch.invalid/callback?code=a&state=s1&iss=https%3A%2F%2Fother%2F"),
        "s1",
    );
    assert!(mixup.err().unwrap().message().contains("RFC 9207"));
    let iss_ok = callback(
        &c,
        &u("https://authwatch.invalid/callback?code=a&state=s1&iss=https%3A%2F%2Ftenant.example.com%2F"),
        "s1",
    );
    assert!(iss_ok.is_ok());
    assert!(callback(&c, &u("https://authwatch.invalid/callback?state=s1"), "s1").is_err());
}
