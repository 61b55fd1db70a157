//! `http` checks and their assertions.

use super::*;

// === http checks ===

#[tokio::test]
async fn http_check_assertions() {
    let s = OAuthServer::start(OAuthOptions::default()).await;
    let yaml = format!(
        r#"
name: login
url: {issuer}.well-known/openid-configuration
expect:
  status: [200]
  headers: [{{ name: content-type, regex: "^application/json" }}]
  body_regex: jwks_uri
  json:
    - {{ path: "$.issuer", equals: "{issuer}" }}
    - {{ path: "$.grant_types_supported[1]", equals: "{realm}" }}
    - {{ path: "$.nope", exists: false }}
  max_response_time: 5s
"#,
        issuer = s.issuer(),
        realm = PASSWORD_REALM_GRANT
    );
    let mut check: HttpCheck = serde_yaml::from_str(&yaml).unwrap();
    let e = run_oauth(Check::Http(check.clone()), T).await;
    assert_eq!(e.outcome(), "success", "{:?}", e.root().status);
    assert_eq!(
        e.tree(),
        lines(&[
            "synthetic login",
            "  GET",
            "    dns",
            "    connect",
            "    request",
            "    transfer"
        ])
    );
    e.assert_common_metrics("success");

    check.expect.json[0].equals = Some("https://wrong.example/".into());
    let e = run_oauth(Check::Http(check.clone()), T).await;
    assert_eq!(e.outcome(), "assertion");
    assert_eq!(
        str_attr(&e.root().attributes, sc::ERROR_TYPE).as_deref(),
        Some("assert_json")
    );
    assert!(!is_error(&e.span("GET")), "the request itself was fine");
    e.assert_common_metrics("assertion");

    check.expect.status = vec![StatusMatch::Class(4)];
    let e = run_oauth(Check::Http(check), T).await;
    assert_eq!(e.outcome(), "http_status");
}
