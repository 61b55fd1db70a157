//! `authwatch probe`: one run of every check of a document, reported and filtered.

use super::*;

// === probe ===

#[tokio::test]
async fn probe_document_reports_and_filters() {
    let s = OAuthServer::start(OAuthOptions::default()).await;
    let good = serde_json::to_value(Check::PasswordGrant(oauth_check(&s))).unwrap();
    // Serialized secrets are redacted; put the real ones back as a config file would have them.
    let mut good = good;
    good["client_secret"] = srv::CLIENT_SECRET.into();
    good["password"] = srv::PASSWORD.into();
    let mut bad = good.clone();
    bad["name"] = "bad".into();
    bad["password"] = "nope-nope".into();
    let doc = serde_json::json!({
        "receivers": {
            "otlp": {},
            "synthetic/auth0": { "checks": [good, bad] }
        }
    });
    let report = probe_document(&doc, Some("login")).await.unwrap();
    assert!(report.passed(), "{report}");
    let text = report.to_string();
    assert!(
        text.starts_with("PASS  synthetic/auth0 / login (password_grant)  outcome=success"),
        "{text}"
    );
    assert!(text.contains("phases: dns "), "{text}");
    assert!(
        text.contains(&format!("claim ok: {} = true", srv::CLAIM)),
        "{text}"
    );
    assert!(text.contains("rate limit: 29 of 30 left"), "{text}");
    assert!(text.ends_with("All 1 checks passed."), "{text}");

    let report = probe_document(&doc, None).await.unwrap();
    assert!(!report.passed());
    let text = report.to_string();
    assert!(
        text.contains("FAIL  synthetic/auth0 / bad (password_grant)  outcome=oauth_error"),
        "{text}"
    );
    assert!(text.contains("oauth.error: invalid_grant"), "{text}");
    assert!(text.ends_with("1 of 2 checks failed."), "{text}");

    let err = probe_document(&doc, Some("nope")).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "no check named `nope`; configured checks: login, bad"
    );
    let err = probe_document(&serde_json::json!({"receivers": {}}), None)
        .await
        .unwrap_err();
    assert!(matches!(err, ProbeError::NoSyntheticReceiver));
}
