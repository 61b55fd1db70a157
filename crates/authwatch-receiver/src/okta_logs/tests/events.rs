use super::*;
use authwatch_tenant_logs::logins::{FailureCategory, Outcome};

fn ev(json: &str) -> Event {
    decode_page(format!("[{json}]").as_bytes()).unwrap().remove(0)
}

#[test]
fn pages_must_be_arrays_of_objects() {
    assert!(decode_page(b"[]").unwrap().is_empty());
    assert!(matches!(decode_page(b"{}"), Err(PageError::NotAnArray)));
    assert!(matches!(decode_page(b"[1]"), Err(PageError::NotAnObject(0))));
    assert!(matches!(decode_page(b"[{\"uuid\":"), Err(PageError::Json(_))));
}

#[test]
fn logins_and_their_categories() {
    let o = |t: &str, r: &str, reason: &str| {
        let e = ev(&format!(r#"{{"eventType":"{t}","outcome":{{"result":"{r}","reason":"{reason}"}},"actor":{{"id":"00u1","type":"User"}}}}"#));
        login(&e).map(|l| l.outcome)
    };
    use FailureCategory::*;
    assert_eq!(o("user.session.start", "SUCCESS", ""), Some(Outcome::Success));
    assert_eq!(o("user.session.start", "FAILURE", "INVALID_CREDENTIALS"), Some(Outcome::Failure(WrongCredentials)));
    assert_eq!(o("user.session.start", "FAILURE", "LOCKED_OUT"), Some(Outcome::Failure(Blocked)));
    assert_eq!(o("user.authentication.auth_via_mfa", "FAILURE", "INVALID_CREDENTIALS"), Some(Outcome::Failure(WrongCredentials)));
    assert_eq!(o("user.authentication.auth_via_mfa", "FAILURE", ""), Some(Outcome::Failure(Mfa)));
    assert_eq!(o("user.session.start", "DENY", "Inline hook error"), Some(Outcome::Failure(TenantError)));
    assert_eq!(o("user.session.start", "FAILURE", "INTERNAL_ERROR"), Some(Outcome::Failure(ProviderError)));
    assert_eq!(o("user.session.start", "FAILURE", "RATE_LIMIT"), Some(Outcome::Failure(RateLimit)));
    // A successful later step is not a second login; challenges and other events are none.
    assert_eq!(o("user.authentication.sso", "SUCCESS", ""), None);
    assert_eq!(o("user.session.start", "CHALLENGE", ""), None);
    assert_eq!(o("system.org.rate_limit.violation", "SUCCESS", ""), None);
}

#[test]
fn records_drop_personal_fields_unless_asked() {
    let e = ev(r#"{"uuid":"u1","eventType":"user.session.start","displayMessage":"User login to Okta","severity":"WARN","published":"2024-05-01T12:00:00.250Z","actor":{"id":"00u1","alternateId":"neo@example.com","displayName":"Neo"},"client":{"ipAddress":"10.1.2.3"},"outcome":{"result":"FAILURE","reason":"INVALID_CREDENTIALS"}}"#);
    let r = record(&e, false, 1);
    let text = format!("{r:?}");
    assert!(!text.contains("neo@example.com") && !text.contains("10.1.2.3") && !text.contains("Neo"), "{text}");
    assert!(text.contains("okta.uuid") && text.contains("okta.outcome.reason"));
    assert_eq!(r.severity_text, "WARN");
    assert!(r.time_unix_nano > 0);
    let kept = format!("{:?}", record(&e, true, 1));
    assert!(kept.contains("neo@example.com"));
}
