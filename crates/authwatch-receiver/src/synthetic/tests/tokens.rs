//! Token validation: claims, issuer, audience, expiry, signature, algorithms.

use super::*;

// === token validation ===

async fn token_failure(mode: Mode, edit: impl FnOnce(&mut TokenValidation)) -> Exported {
    let s = OAuthServer::start(OAuthOptions {
        mode,
        ..Default::default()
    })
    .await;
    let mut c = oauth_check(&s);
    edit(c.validate_token.as_mut().unwrap());
    run_oauth(Check::PasswordGrant(c), T).await
}

fn assert_token_failure(e: &Exported, outcome: &str, error_type: &str) {
    assert_eq!(e.outcome(), outcome);
    assert_eq!(
        str_attr(&e.root().attributes, sc::ERROR_TYPE).as_deref(),
        Some(error_type)
    );
    let v = e.span("validate");
    assert!(is_error(&v), "{v:?}");
    assert_eq!(
        str_attr(&v.attributes, sc::ERROR_TYPE).as_deref(),
        Some(error_type)
    );
    assert!(
        !is_error(&e.span("POST")),
        "the token request itself succeeded"
    );
    assert!(!is_error(&e.span("jwks")));
    e.assert_common_metrics(outcome);
}

#[tokio::test]
async fn missing_claim() {
    let e = token_failure(Mode::NoClaim, |_| {}).await;
    assert_token_failure(&e, "missing_claim", "missing_claim");
    assert!(e.root().status.unwrap().message.contains(srv::CLAIM));
}

#[tokio::test]
async fn wrong_issuer() {
    let e = token_failure(Mode::Ok, |t| {
        t.jwks_url = t
            .issuer
            .as_ref()
            .map(|i| format!("{i}.well-known/jwks.json"));
        t.issuer = Some("https://someone-else.example.com/".into());
    })
    .await;
    assert_token_failure(&e, "invalid_token", "invalid_issuer");
}

#[tokio::test]
async fn wrong_audience() {
    let e = token_failure(Mode::Ok, |t| {
        t.audience = Some("https://other-api.example".into())
    })
    .await;
    assert_token_failure(&e, "invalid_token", "invalid_audience");
}

#[tokio::test]
async fn expired_token() {
    let e = token_failure(Mode::Expired, |_| {}).await;
    assert_token_failure(&e, "invalid_token", "token_expired");
}

#[tokio::test]
async fn bad_signature() {
    let e = token_failure(Mode::BadSignature, |_| {}).await;
    assert_token_failure(&e, "invalid_token", "invalid_signature");
}

#[tokio::test]
async fn es256_tokens_validate() {
    let e = token_failure(Mode::Es256, |_| {}).await;
    assert_eq!(e.outcome(), "success", "{:?}", e.root().status);
}
