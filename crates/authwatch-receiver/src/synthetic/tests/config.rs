//! Config: decoding every check type, errors with their paths, the rate-limit budget.

use super::*;

// === config ===

#[test]
fn config_contract() {
    // The default has no checks, which is deliberately invalid.
    authwatch_testkit::assert_config_decodes::<Config>("synthetic");
    let mut v = Validator::new("receivers::synthetic");
    Config::default().validate(&mut v);
    assert_eq!(
        v.errors()[0].to_string(),
        "receivers::synthetic::checks: at least one check must be configured"
    );
}

#[test]
fn config_decodes_every_check_type() {
    let yaml = r#"
interval: 30s
timeout: 5s
initial_delay: 0s
jitter: 2s
rate_limit_budget: { requests_per_minute: 300, max_share: 0.1 }
checks:
  - name: login
    type: password_grant
    token_url: https://tenant.example.com/oauth/token
    client_id: abc
    client_secret: shh
    client_auth: basic
    username: probe@example.com
    password: pw
    realm: Username-Password-Authentication
    audience: https://api.example.com
    scope: openid
    body_format: json
    validate_token:
      token: access_token
      issuer: https://tenant.example.com/
      audience: https://api.example.com
      algorithms: [RS256, ES256]
      leeway: 10s
      require_claims: { "https://probe.example.com/actions_ran": true, gty: ~ }
    tls: { insecure_skip_verify: false }
  - name: m2m
    type: client_credentials
    token_url: https://tenant.example.com/oauth/token
    client_id: m2m
    client_secret: shh2
    audience: https://tenant.example.com/api/v2/
    interval: 5m
  - name: discovery
    type: http
    url: https://tenant.example.com/.well-known/openid-configuration
    headers: { x-token: hdr-value }
    expect:
      status: [200, "3xx"]
      headers: [{ name: content-type, regex: json }]
      body_regex: issuer
      json: [{ path: "$.issuer", equals: "https://tenant.example.com/" }, { path: "$.jwks_uri" }]
      max_response_time: 2s
"#;
    let value: serde_json::Value = serde_yaml::from_str(yaml).unwrap();
    let cfg = decode(value).unwrap();
    assert_eq!(cfg.interval, Duration::from_secs(30));
    assert_eq!(cfg.checks.len(), 3);
    let Check::PasswordGrant(login) = &cfg.checks[0] else {
        panic!("not a password grant: {:?}", cfg.checks[0]);
    };
    assert_eq!(login.client_auth, ClientAuth::Basic);
    assert_eq!(login.body_format, BodyFormat::Json);
    assert_eq!(login.password.as_ref().unwrap().expose(), "pw");
    let t = login.validate_token.as_ref().unwrap();
    assert_eq!(t.algorithms, vec![Algorithm::RS256, Algorithm::ES256]);
    assert_eq!(t.require_claims["gty"], serde_json::Value::Null);
    let Check::Http(http) = &cfg.checks[2] else {
        panic!("not http")
    };
    assert_eq!(http.method, "GET");
    assert_eq!(
        http.expect.status,
        vec![StatusMatch::Code(200), StatusMatch::Class(3)]
    );
    assert_eq!(cfg.checks[1].interval(), Some(Duration::from_secs(300)));
    let (errors, warnings) = problems(&cfg);
    assert!(errors.is_empty(), "{errors:?}");
    assert!(warnings.is_empty(), "{warnings:?}");
    // Secrets never print.
    let shown = format!("{cfg:?} {}", serde_json::to_string(&cfg).unwrap());
    for secret in ["shh", "pw\"", "hdr-value"] {
        assert!(!shown.contains(secret), "{secret} in {shown}");
    }
}

#[test]
fn config_errors_have_paths() {
    let err = decode(serde_json::json!({"checks": [{"name": "x", "type": "nope"}]})).unwrap_err();
    assert!(err.to_string().contains("nope"), "{err}");
    let err = decode(serde_json::json!({"checks": [{"name": "x", "type": "http", "urll": "x"}]}))
        .unwrap_err();
    assert!(err.to_string().contains("urll"), "{err}");
    let err = decode(serde_json::json!({"checks": [{"name": "x", "type": "http",
        "expect": {"status": ["7xx"]}}]}))
    .unwrap_err();
    assert!(err.to_string().contains("invalid status `7xx`"), "{err}");
    let err = decode(serde_json::json!({"checks": [{"name": "x", "type": "http",
        "expect": {"body_regex": "("}}]}))
    .unwrap_err();
    assert!(
        err.to_string().contains("invalid regular expression"),
        "{err}"
    );

    let cfg = decode(serde_json::json!({
        "interval": "10s", "timeout": "20s",
        "checks": [
            {"name": "a", "type": "password_grant", "token_url": "ftp://x", "client_id": "c"},
            {"name": "a", "type": "client_credentials", "token_url": "https://x/oauth/token",
             "client_id": "c", "username": "u", "validate_token": {}},
            {"name": "b", "type": "http", "url": "https://x/", "timeout": "5s", "interval": "1m",
             "degraded_response_time": "5s"},
        ]
    }))
    .unwrap();
    let (errors, _) = problems(&cfg);
    let want = [
        "receivers::synthetic::checks::0::timeout: timeout 20s exceeds the interval 10s: runs of one check never overlap, so the timeout must not be longer than the interval",
        "receivers::synthetic::checks::0::token_url: invalid URL `ftp://x`: must start with https:// or http://",
        "receivers::synthetic::checks::0::username: is required for a password_grant check",
        "receivers::synthetic::checks::0::password: is required for a password_grant check",
        "receivers::synthetic::checks::1::name: check name `a` is used twice",
        "receivers::synthetic::checks::1::username: only a password_grant check takes it; remove it or change the type",
        "receivers::synthetic::checks::1::client_secret: is required for a client_credentials check",
        "receivers::synthetic::checks::1::validate_token: set `issuer` (keys are then found through discovery), `discovery_url` or `jwks_url`",
        "receivers::synthetic::checks::2::degraded_response_time: must be shorter than the timeout 5s: a run that long fails with `timeout`",
    ];
    for w in want {
        assert!(
            errors.iter().any(|e| e == w),
            "missing `{w}` in {errors:#?}"
        );
    }
}

#[test]
fn rate_limit_budget_warns() {
    let check = |name: &str| {
        Check::ClientCredentials(OAuthCheck {
            name: name.into(),
            token_url: "https://x/oauth/token".into(),
            client_id: "c".into(),
            client_secret: Some(Secret::new("s")),
            ..Default::default()
        })
    };
    let mut cfg = Config {
        interval: Duration::from_secs(10),
        timeout: Duration::from_secs(5),
        checks: vec![check("a"), check("b")],
        rate_limit_budget: Some(RateLimitBudget {
            requests_per_minute: 100.0,
            max_share: 0.1,
        }),
        ..Config::default()
    };
    assert_eq!(cfg.requests_per_minute(), 12.0);
    let (errors, warnings) = problems(&cfg);
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(
        warnings,
        vec!["receivers::synthetic::rate_limit_budget: the checks send 12.0 requests per minute, 12.0% of the stated budget of 100 per minute (more than the 10.0% allowed): lengthen `interval` or remove checks"]
    );
    cfg.interval = Duration::from_secs(60);
    assert!(problems(&cfg).1.is_empty());
}
