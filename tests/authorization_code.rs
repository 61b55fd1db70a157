//! `authwatch probe` with an `authorization_code` check, end to end through the real binary:
//! against a certified OpenID provider (`oidc-provider` from npm, its own login and consent
//! pages) and against the project's test identity provider with Universal-Login-like pages
//! (identifier first, CSRF fields, MFA, consent, CAPTCHA), switched by its `/_control` knobs so
//! that every outcome comes from a real HTTP exchange; then hostile pages (50 MiB, a redirect
//! loop, bytes that are not HTML, a form posting to another host, watched by a listener that
//! records every connection), and no secret in the report.

mod common;

use std::io::Read;
use std::net::TcpListener;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use authwatch_testkit::oauth_server::{self as srv, OAuthOptions, OAuthServer};
use authwatch_testkit::oidc_provider::{self as oidc, OidcProvider};
use common::{bin, Scratch};

/// Runs `authwatch probe` on a config; returns (exit code, stdout, stderr).
fn probe(yaml: &str, env: &[(&str, &str)]) -> (i32, String, String) {
    let scratch = Scratch::new("authcode");
    let path = scratch.write("config.yaml", yaml);
    let out = Command::new(bin())
        .arg("probe")
        .arg("--config")
        .arg(&path)
        .envs(env.iter().copied())
        .output()
        .expect("run authwatch probe");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A config with one `authorization_code` check against the test IdP; `extra` is more YAML
/// for the check (indented by 8 spaces).
fn idp_config(s: &OAuthServer, client: &str, extra: &str) -> String {
    let issuer = s.issuer();
    format!(
        r#"receivers:
  synthetic:
    timeout: 20s
    checks:
      - name: ulp
        type: authorization_code
        issuer: {issuer}
        authorize_url: {issuer}authorize
        client_id: {client}
        redirect_uri: {redirect}
        username: {user}
        password: ${{env:PROBE_PASSWORD}}
{extra}
exporters:
  debug: {{}}
service:
  pipelines:
    traces:
      receivers: [synthetic]
      exporters: [debug]
"#,
        redirect = srv::REDIRECT_URI,
        user = srv::USERNAME,
    )
}

const ENV: [(&str, &str); 2] = [
    ("PROBE_PASSWORD", srv::PASSWORD),
    ("PROBE_TOTP", srv::TOTP_SECRET),
];

fn outcome(stdout: &str) -> &str {
    stdout
        .split("outcome=")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .unwrap_or("(none)")
}

/// No secret of the probe config in anything the probe printed.
fn assert_no_secrets(text: &str) {
    for secret in [srv::PASSWORD, srv::TOTP_SECRET, srv::CLIENT_SECRET] {
        assert!(!text.contains(secret), "a secret leaked:\n{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_test_idp_universal_login_and_every_outcome() {
    let s = OAuthServer::start(OAuthOptions::default()).await;
    let totp = "        totp_secret: ${env:PROBE_TOTP}\n        consent: accept";
    let run = |extra: &str| probe(&idp_config(&s, srv::PUBLIC_CLIENT_ID, extra), &ENV);

    // Identifier first, then password: success, the hop list shows the walk.
    let (code, out, err) = run("        scope: openid profile");
    assert_eq!((code, outcome(&out)), (0, "success"), "{out}{err}");
    for hop in [
        "authorize GET",
        "page=identifier",
        "submit    POST",
        "page=password",
        "token     POST",
    ] {
        assert!(out.contains(hop), "{hop} missing:\n{out}");
    }
    assert!(out.contains("state=REDACTED"), "{out}");
    assert_no_secrets(&format!("{out}{err}"));
    // The forms got the hidden fields (state, CSRF) and the right password.
    let logins = s.logins().await;
    assert_eq!(logins.len(), 1, "{logins:?}");
    assert_eq!(logins[0]["password_ok"], true);
    let fields: Vec<&str> = logins[0]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    for f in ["_csrf", "state", "password", "username", "action"] {
        assert!(fields.contains(&f), "{f} not submitted: {fields:?}");
    }

    // One-page login with the confidential client (client_secret_basic).
    s.control(serde_json::json!({"login": "one_page"})).await;
    let extra = format!(
        "        client_secret: ${{env:PROBE_CLIENT_SECRET}}\n        client_auth: basic\n        validate_token:\n          audience: {}\n          require_claims:\n            {}: true\n        audience: {}",
        srv::AUDIENCE,
        srv::CLAIM,
        srv::AUDIENCE
    );
    let (code, out, err) = probe(
        &idp_config(&s, srv::CLIENT_ID, &extra),
        &[
            ("PROBE_PASSWORD", srv::PASSWORD),
            ("PROBE_CLIENT_SECRET", srv::CLIENT_SECRET),
        ],
    );
    assert_eq!((code, outcome(&out)), (0, "success"), "{out}{err}");
    assert!(out.contains("page=login"), "{out}");
    assert!(
        out.contains(&format!("claim ok: {} = true", srv::CLAIM)),
        "{out}"
    );
    assert_no_secrets(&format!("{out}{err}"));
    s.control(serde_json::json!({"login": "identifier_first"}))
        .await;

    // MFA: without the secret `mfa_required`; with it, the TOTP code passes; consent is
    // reported unless `consent: accept`.
    s.control(serde_json::json!({"mfa": true, "consent": true}))
        .await;
    let (_, out, _) = run("");
    assert_eq!(outcome(&out), "mfa_required", "{out}");
    let (_, out, _) = run("        totp_secret: ${env:PROBE_TOTP}");
    assert_eq!(outcome(&out), "consent_required", "{out}");
    assert!(out.contains("page=mfa_otp"), "{out}");
    let (code, out, err) = run(totp);
    assert_eq!((code, outcome(&out)), (0, "success"), "{out}{err}");
    assert!(out.contains("page=consent"), "{out}");
    assert_no_secrets(&format!("{out}{err}"));
    // A wrong TOTP secret: the code is refused, the page comes back.
    let (_, out, _) = probe(
        &idp_config(&s, srv::PUBLIC_CLIENT_ID, totp),
        &[
            ("PROBE_PASSWORD", srv::PASSWORD),
            ("PROBE_TOTP", "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"),
        ],
    );
    assert_eq!(outcome(&out), "login_rejected", "{out}");
    assert!(out.contains("The code you entered is invalid"), "{out}");
    s.control(serde_json::json!({"mfa": false, "consent": false}))
        .await;

    // A wrong password: the page re-renders with its error.
    let (code, out, err) = probe(
        &idp_config(&s, srv::PUBLIC_CLIENT_ID, ""),
        &[("PROBE_PASSWORD", "Wr0ng-Passw0rd-Q")],
    );
    assert_eq!((code, outcome(&out)), (1, "login_rejected"), "{out}{err}");
    assert!(out.contains("Wrong email or password"), "{out}");
    assert!(!out.contains("Wr0ng-Passw0rd-Q") && !err.contains("Wr0ng-Passw0rd-Q"));
    // A blocked user: Auth0's message, named as such.
    s.control(serde_json::json!({"locked": [srv::USERNAME]}))
        .await;
    let (_, out, _) = run("");
    assert_eq!(outcome(&out), "login_rejected", "{out}");
    assert!(out.contains("blocked"), "{out}");
    s.control(serde_json::json!({"locked": []})).await;

    // A CAPTCHA, a redesigned page, an Action denying the login, a 500 at the token endpoint.
    s.control(serde_json::json!({"page": "captcha"})).await;
    assert_eq!(outcome(&run("").1), "bot_challenge");
    s.control(serde_json::json!({"page": "changed"})).await;
    let (_, out, _) = run("");
    assert_eq!(outcome(&out), "login_page_changed", "{out}");
    s.control(serde_json::json!({"page": null, "mode": "action_error"}))
        .await;
    let (_, out, _) = run("");
    assert_eq!(outcome(&out), "oauth_error", "{out}");
    assert!(out.contains("access_denied"), "{out}");
    s.control(serde_json::json!({"mode": "error500"})).await;
    let (_, out, _) = run("");
    assert_eq!(outcome(&out), "http_status", "{out}");
    s.control(serde_json::json!({"mode": "bad_signature"}))
        .await;
    assert_eq!(outcome(&run("").1), "invalid_token");
    s.control(serde_json::json!({"mode": "no_claim"})).await;
    let extra = format!(
        "        validate_token:\n          token: id_token\n          require_claims:\n            {}: true",
        srv::CLAIM
    );
    assert_eq!(outcome(&run(&extra).1), "missing_claim");
    s.control(serde_json::json!({"mode": "rate_limited"})).await;
    assert_eq!(outcome(&run("").1), "rate_limited");
    s.control(serde_json::json!({"mode": null})).await;
    // An unregistered redirect URI: the provider's error page, not a login form.
    let yaml = idp_config(&s, srv::PUBLIC_CLIENT_ID, "")
        .replace(srv::REDIRECT_URI, "https://authwatch.invalid/other");
    let (_, out, _) = probe(&yaml, &ENV);
    assert_eq!(outcome(&out), "http_status", "{out}");
    // Nothing listens: connect.
    let dead = idp_config(&s, srv::PUBLIC_CLIENT_ID, "")
        .replace(&format!("127.0.0.1:{}", s.port()), "127.0.0.1:1");
    assert_eq!(outcome(&probe(&dead, &ENV).1), "connect");
}

/// A listener that counts every connection made to it (the host a hostile form posts to).
fn recording_listener() -> (u16, Arc<AtomicUsize>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let seen = Arc::new(AtomicUsize::new(0));
    let counter = seen.clone();
    std::thread::spawn(move || {
        for stream in l.incoming() {
            counter.fetch_add(1, Ordering::SeqCst);
            if let Ok(mut s) = stream {
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf);
            }
        }
    });
    (port, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_pages_end_cleanly() {
    let s = OAuthServer::start(OAuthOptions::default()).await;
    let run = || probe(&idp_config(&s, srv::PUBLIC_CLIENT_ID, ""), &ENV);

    // 50 MiB of HTML: not buffered (1 MiB cap), a clear outcome.
    s.control(serde_json::json!({"page": "huge"})).await;
    let (code, out, err) = run();
    assert_eq!(
        (code, outcome(&out)),
        (1, "login_page_changed"),
        "{out}{err}"
    );
    assert!(out.contains("larger than 1048576 bytes"), "{out}");

    // Redirects forever: stopped at max_redirects.
    s.control(serde_json::json!({"page": "loop"})).await;
    let (_, out, _) = run();
    assert_eq!(outcome(&out), "redirect_loop", "{out}");
    assert!(out.contains("more than 20 redirects"), "{out}");
    let (_, out, _) = probe(
        &idp_config(&s, srv::PUBLIC_CLIENT_ID, "        max_redirects: 3"),
        &ENV,
    );
    assert!(out.contains("more than 3 redirects"), "{out}");

    // Bytes that are not HTML.
    s.control(serde_json::json!({"page": "garbage"})).await;
    assert_eq!(outcome(&run().1), "login_page_changed");

    // A form posting the credentials to another host (here another port of loopback, and
    // `localhost`): refused, nothing reaches it.
    let (port, seen) = recording_listener();
    for action in [
        format!("http://localhost:{port}/collect"),
        format!("http://127.0.0.1:{port}/collect"),
    ] {
        s.control(serde_json::json!({"page": "offsite", "offsite_action": action}))
            .await;
        let (_, out, err) = run();
        assert_eq!(outcome(&out), "login_page_changed", "{out}{err}");
        assert!(out.contains("nothing was sent"), "{out}");
    }
    assert_eq!(
        seen.load(Ordering::SeqCst),
        0,
        "the other host got a connection"
    );
    // Listed in `allowed_hosts`, the same form is submitted there (and the listener sees it).
    let (_, out, _) = probe(
        &idp_config(
            &s,
            srv::PUBLIC_CLIENT_ID,
            &format!("        allowed_hosts: [\"127.0.0.1:{port}\"]\n        timeout: 2s"),
        ),
        &ENV,
    );
    assert_ne!(outcome(&out), "success", "{out}");
    assert_eq!(seen.load(Ordering::SeqCst), 1, "{out}");
}

fn oidc_config(p: &OidcProvider, password_env: &str, extra: &str) -> String {
    format!(
        r#"receivers:
  synthetic:
    timeout: 20s
    checks:
      - name: certified
        type: authorization_code
        issuer: {issuer}
        client_id: {client}
        redirect_uri: {redirect}
        scope: openid email
        username: {user}
        password: ${{env:{password_env}}}
{extra}
exporters:
  debug: {{}}
service:
  pipelines:
    traces:
      receivers: [synthetic]
      exporters: [debug]
"#,
        issuer = p.issuer(),
        client = oidc::CLIENT_ID,
        redirect = oidc::REDIRECT_URI,
        user = oidc::USERNAME,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certified_provider_with_its_own_login_and_consent_pages() {
    let p = OidcProvider::start(true).await;
    let env = [
        ("PROBE_PASSWORD", oidc::PASSWORD),
        ("WRONG", "Wr0ng-Passw0rd-Q"),
    ];
    // Discovery finds the endpoints; the consent page is reported unless accepted.
    let (_, out, err) = probe(&oidc_config(&p, "PROBE_PASSWORD", ""), &env);
    assert_eq!(outcome(&out), "consent_required", "{out}{err}");
    assert!(out.contains("page=login"), "{out}");
    let (code, out, err) = probe(
        &oidc_config(&p, "PROBE_PASSWORD", "        consent: accept"),
        &env,
    );
    assert_eq!((code, outcome(&out)), (0, "success"), "{out}{err}");
    assert!(
        out.contains("page=consent") && out.contains("token     POST"),
        "{out}"
    );
    assert_no_secrets(&format!("{out}{err}"));
    assert!(!out.contains(oidc::PASSWORD));
    // A wrong password: the login page comes back.
    let (_, out, _) = probe(&oidc_config(&p, "WRONG", "        consent: accept"), &env);
    assert_eq!(outcome(&out), "login_rejected", "{out}");
    // A client the provider does not know: its error page.
    let yaml = oidc_config(&p, "PROBE_PASSWORD", "").replace(oidc::CLIENT_ID, "nobody");
    let (_, out, _) = probe(&yaml, &env);
    assert_eq!(outcome(&out), "http_status", "{out}");

    // A first-party application (no consent page): straight through.
    let p = OidcProvider::start(false).await;
    let (code, out, err) = probe(&oidc_config(&p, "PROBE_PASSWORD", ""), &env);
    assert_eq!((code, outcome(&out)), (0, "success"), "{out}{err}");
    assert!(!out.contains("page=consent"), "{out}");
}
