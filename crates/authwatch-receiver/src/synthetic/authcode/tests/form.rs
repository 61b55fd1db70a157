//! Form detection on page fixtures modelled on the hosted login pages the check meets.

use super::*;

fn fields(page: &Page, fill: &Fill<'_>) -> Vec<(String, String)> {
    page.fill(fill)
}

fn pair(k: &str, v: &str) -> (String, String) {
    (k.to_owned(), v.to_owned())
}

const USER: Fill<'static> = Fill {
    username: Some("probe@example.test"),
    password: Some("pw"),
    code: Some("123456"),
};

/// Auth0 Universal Login, identifier step (`/u/login/identifier`).
const AUTH0_IDENTIFIER: &str = r#"<!DOCTYPE html><html><head><title>Log in | My App</title></head>
<body><main class="_widget login-id"><section>
<div class="ulp-alternate-action"><a href="/u/signup?state=hKFo">Sign up</a></div>
<form method="POST" class="c8a5b0b9d _form-login-id" data-form-primary="true">
  <input type="hidden" name="state" value="hKFo2SBVbmlx">
  <div class="input-wrapper"><label for="username">Email address*</label>
  <input class="input c7b8e2f9" inputmode="email" name="username" id="username" type="text"
         value="" required autocomplete="email" autocapitalize="none" spellcheck="false" autofocus></div>
  <input class="hide" type="password" autocomplete="off" tabindex="-1" aria-hidden="true" name="">
  <input type="hidden" name="js-available" value="false"/>
  <input type="hidden" name="webauthn-available" value="false"/>
  <button type="submit" name="action" value="default" class="c3a1d7f2 _button-login-id">Continue</button>
</form>
<form method="post" data-provider="google" class="social" data-form-secondary="true">
  <input type="hidden" name="state" value="hKFo2SBVbmlx"><input type="hidden" name="connection" value="google-oauth2">
  <button type="submit">Continue with Google</button>
</form></section></main></body></html>"#;

/// Auth0 Universal Login, password step after a wrong password.
const AUTH0_PASSWORD_ERROR: &str = r#"<html><body>
<form method="POST" class="_form-login-password" data-form-primary="true">
  <input type="hidden" name="state" value="hKFo2SBVbmlx">
  <input type="hidden" name="username" value="probe@example.test">
  <span class="ulp-authenticator-selector-text">probe@example.test</span>
  <input class="input" name="password" id="password" type="password" required autocomplete="current-password">
  <div class="ulp-error-info" data-ulp-validation-function="requiredFunction">
    <span id="error-element-password" class="ulp-input-error-message">Wrong email or password</span></div>
  <button type="submit" name="action" value="default">Continue</button>
</form><a href="/u/reset-password/request/Username-Password-Authentication?state=hKFo">Forgot password?</a>
</body></html>"#;

/// Auth0 Universal Login, OTP challenge (`/u/mfa-otp-challenge`).
const AUTH0_OTP: &str = r#"<html><body><form method="POST" action="/u/mfa-otp-challenge?state=hKFo">
  <input type="hidden" name="state" value="hKFo2SBVbmlx">
  <input class="input" name="code" id="code" type="text" inputmode="numeric" pattern="[0-9]*"
         autocomplete="one-time-code" autofocus required>
  <input type="checkbox" name="rememberBrowser" value="true">
  <button type="submit" name="action" value="default">Continue</button>
</form></body></html>"#;

/// Auth0 Universal Login, consent (`/u/consent`).
const AUTH0_CONSENT: &str = r#"<html><body><h1>Authorize My App</h1>
<form method="POST"><input type="hidden" name="state" value="hKFo2SBVbmlx">
  <button type="submit" name="action" value="deny">Decline</button>
  <button type="submit" name="action" value="accept">Accept</button>
</form></body></html>"#;

/// A login form carrying Auth0 bot detection (reCAPTCHA).
const AUTH0_CAPTCHA: &str = r#"<html><head><script src="https://www.recaptcha.net/recaptcha/api.js"></script></head>
<body><form method="POST"><input type="hidden" name="state" value="x">
<input name="username" type="text"><div class="ulp-captcha-container"><div class="g-recaptcha" data-sitekey="6Lc"></div></div>
<input type="hidden" name="captcha"><button type="submit" name="action" value="default">Continue</button></form></body></html>"#;

/// Keycloak's login theme: one page, CSRF-like hidden field, action with session codes.
const KEYCLOAK: &str = r#"<html><body><div id="kc-form"><form id="kc-form-login" onsubmit="login.disabled = true; return true;"
 action="https://sso.example.com/realms/demo/login-actions/authenticate?session_code=abc&amp;execution=e1&amp;client_id=app&amp;tab_id=t1" method="post">
 <input tabindex="1" id="username" class="pf-c-form-control" name="username" value="" type="text" autofocus autocomplete="off">
 <input tabindex="2" id="password" class="pf-c-form-control" name="password" type="password" autocomplete="off">
 <input tabindex="3" id="rememberMe" name="rememberMe" type="checkbox">
 <input type="hidden" id="id-hidden-input" name="credentialId"/>
 <input tabindex="4" class="pf-c-button" name="login" id="kc-login" type="submit" value="Sign In"/>
</form></div></body></html>"#;

/// oidc-provider's development login page.
const OIDC_PROVIDER_LOGIN: &str = r#"<div class="login-card"><h1>Sign-in</h1>
<form autocomplete="off" action="/interaction/Xy7" method="post">
  <input type="hidden" name="prompt" value="login"/>
  <input required type="text" name="login" placeholder="Enter any login" autofocus="on">
  <input required type="password" name="password" placeholder="and password" >
  <button type="submit" class="login login-submit">Sign-in</button>
</form></div>"#;

/// oidc-provider's development consent page.
const OIDC_PROVIDER_CONSENT: &str = r#"<div class="login-card"><h1>Authorize</h1><ul><li>scopes:</li></ul>
<form autocomplete="off" action="/interaction/Xy7" method="post">
  <input type="hidden" name="prompt" value="consent"/>
  <button autofocus type="submit" class="login login-submit">Continue</button>
</form></div>"#;

#[test]
fn auth0_identifier_first() {
    let cfg = FormFields::default();
    let p = read(AUTH0_IDENTIFIER, &cfg);
    assert_eq!(p.kind, PageKind::Identifier);
    let f = p.form.as_ref().unwrap();
    assert!(f.post);
    assert_eq!(f.action, None);
    assert_eq!(
        fields(&p, &USER),
        vec![
            pair("state", "hKFo2SBVbmlx"),
            pair("username", "probe@example.test"),
            pair("js-available", "false"),
            pair("webauthn-available", "false"),
            pair("action", "default"),
        ]
    );
    let p = read(AUTH0_PASSWORD_ERROR, &cfg);
    assert_eq!(p.kind, PageKind::Password);
    assert_eq!(p.error.as_deref(), Some("Wrong email or password"));
    let filled = fields(&p, &USER);
    assert!(filled.contains(&pair("password", "pw")), "{filled:?}");
    assert!(filled.contains(&pair("username", "probe@example.test")));
    assert!(filled.contains(&pair("state", "hKFo2SBVbmlx")));
}

#[test]
fn mfa_consent_and_captcha() {
    let cfg = FormFields::default();
    let p = read(AUTH0_OTP, &cfg);
    assert_eq!(p.kind, PageKind::Otp);
    assert_eq!(
        p.form.as_ref().unwrap().action.as_deref(),
        Some("/u/mfa-otp-challenge?state=hKFo")
    );
    // An unchecked checkbox is not sent.
    assert_eq!(
        fields(&p, &USER),
        vec![pair("state", "hKFo2SBVbmlx"), pair("code", "123456"), pair("action", "default")]
    );
    let p = read(AUTH0_CONSENT, &cfg);
    assert_eq!(p.kind, PageKind::Consent);
    assert_eq!(
        fields(&p, &Fill::default()),
        vec![pair("state", "hKFo2SBVbmlx"), pair("action", "accept")]
    );
    assert_eq!(read(AUTH0_CAPTCHA, &cfg).kind, PageKind::Captcha);
    let p = read(OIDC_PROVIDER_CONSENT, &cfg);
    assert_eq!(p.kind, PageKind::Consent);
    assert_eq!(fields(&p, &Fill::default()), vec![pair("prompt", "consent")]);
}

#[test]
fn one_page_logins() {
    let cfg = FormFields::default();
    let p = read(KEYCLOAK, &cfg);
    assert_eq!(p.kind, PageKind::Login);
    let f = p.form.as_ref().unwrap();
    assert!(f.action.as_deref().unwrap().contains("session_code=abc&execution=e1"));
    assert_eq!(
        fields(&p, &USER),
        vec![
            pair("username", "probe@example.test"),
            pair("password", "pw"),
            pair("credentialId", ""),
            pair("login", "Sign In"),
        ]
    );
    let p = read(OIDC_PROVIDER_LOGIN, &cfg);
    assert_eq!(p.kind, PageKind::Login);
    assert_eq!(
        fields(&p, &USER),
        vec![
            pair("prompt", "login"),
            pair("login", "probe@example.test"),
            pair("password", "pw"),
        ]
    );
}

#[test]
fn overrides_select_the_form_and_fields() {
    let html = r#"<form id="search"><input name="q" type="text"></form>
    <form id="signin" method="post" action="/session"><input name="acct" type="text">
    <input name="secret" type="password"><input name="pin" type="text"></form>"#;
    // Without overrides `acct` is not a known username name: a password-only form.
    assert_eq!(read(html, &FormFields::default()).kind, PageKind::Password);
    let cfg = FormFields {
        selector: Some("form#signin".into()),
        username_field: Some("acct".into()),
        password_field: Some("secret".into()),
        code_field: None,
    };
    check_selector("form#signin").unwrap();
    assert!(check_selector("form[").is_err());
    let p = read(html, &cfg);
    assert_eq!(p.kind, PageKind::Login);
    assert_eq!(
        fields(&p, &USER),
        vec![pair("acct", "probe@example.test"), pair("secret", "pw"), pair("pin", "")]
    );
    // A selector that matches nothing: no form.
    let cfg = FormFields {
        selector: Some("form#gone".into()),
        ..FormFields::default()
    };
    assert_eq!(read(html, &cfg).kind, PageKind::Unknown);
}

#[test]
fn anything_else_is_unknown_and_never_panics() {
    let cfg = FormFields::default();
    for junk in [
        "",
        "{\"error\":\"server_error\"}",
        "<html><body><h1>Maintenance</h1><p class=\"error\">Back soon</p></body></html>",
        "\u{0}\u{1}\u{fffd}<form<<input type=password",
        "<form><input type=password name=p></form></form></form><<<>>>",
    ] {
        let p = read(junk, &cfg);
        assert!(matches!(p.kind, PageKind::Unknown | PageKind::Password), "{junk}");
    }
    let p = read("<p class=\"error\">Back   soon</p>", &cfg);
    assert_eq!(p.error.as_deref(), Some("Back soon"));
    let deep = "<div>".repeat(2_000);
    assert_eq!(read(&deep, &cfg).kind, PageKind::Unknown);
}
