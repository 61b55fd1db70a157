//! End to end: logins made against the Okta stand-in (`authwatch_testkit::okta_server`, a real
//! HTTP server on loopback following Okta's System Log and authn documentation) become System
//! Log events; the binary's `okta_logs` receiver polls them, the login counters reach the
//! `alerts` connector, and the login-failure rule fires to a real webhook listener with the
//! verdict and the number of users affected in its payload. The API token never shows in the
//! binary's output nor in what it posts.

mod common;

use std::time::Duration;

use authwatch_testkit::okta_server::OktaServer;
use common::*;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

const TOKEN: &str = "00e2eOktaT0kenZyXw";
const WAIT: Duration = Duration::from_secs(60);

/// A webhook receiver: every JSON body POSTed to it, answered `200`.
async fn webhook() -> (String, mpsc::UnboundedReceiver<Value>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 8192];
                loop {
                    let Some(head_end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                        match s.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                        continue;
                    };
                    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
                    let len: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .and_then(|v| v.trim().parse().ok())
                        .unwrap_or(0);
                    while buf.len() < head_end + 4 + len {
                        match s.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let body: Vec<u8> =
                        buf.drain(..head_end + 4 + len).skip(head_end + 4).collect();
                    if let Ok(v) = serde_json::from_slice::<Value>(&body) {
                        let _ = tx.send(v);
                    }
                    if s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
    (url, rx)
}

async fn authn(client: &reqwest::Client, okta: &OktaServer, user: &str, password: &str) -> u16 {
    client
        .post(format!("{}/api/v1/authn", okta.url()))
        .header("content-type", "application/json")
        .body(
            serde_json::json!({"username": user, "password": password, "app": "Shop"}).to_string(),
        )
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn control(okta: &OktaServer, body: Value) {
    let r = reqwest::Client::new()
        .post(format!("{}/_control", okta.url()))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_side_login_failures_fire_with_verdict_and_users_affected() {
    let users: Vec<(String, String)> = (0..40)
        .map(|i| (format!("user{i}@example.com"), format!("pw{i}")))
        .collect();
    let refs: Vec<(&str, &str)> = users
        .iter()
        .map(|(u, p)| (u.as_str(), p.as_str()))
        .collect();
    let okta = OktaServer::start(TOKEN, &refs).await;
    let (hook, mut posts) = webhook().await;
    let yaml = format!(
        r#"
receivers:
  okta_logs:
    org_url: {org}
    api_token: ${{env:OKTA_API_TOKEN}}
    start_at: 1h
    interval: 200ms
    limit: 50
connectors:
  alerts:
    evaluation_interval: 1s
    rules:
      - name: okta_login_failures
        threshold: {{ dependency: okta, logins: true, error_ratio: 0.02, window: 5m, min_requests: 50 }}
exporters:
  webhook:
    endpoint: {hook}
    retry_on_failure: {{ enabled: false }}
service:
  pipelines:
    metrics:
      receivers: [okta_logs]
      exporters: [alerts]
    logs/alerts:
      receivers: [alerts]
      exporters: [webhook]
"#,
        org = okta.url()
    );
    let mut aw = Authwatch::start_with_env(&yaml, &[("OKTA_API_TOKEN", TOKEN)]);

    // 80 good logins and a few wrong passwords: no alert (wrong passwords are the users' own).
    let client = reqwest::Client::new();
    for (i, (u, p)) in users.iter().enumerate().cycle().take(80) {
        assert_eq!(authn(&client, &okta, u, p).await, 200, "login {i}");
    }
    for (u, _) in users.iter().take(5) {
        assert_eq!(authn(&client, &okta, u, "wrong").await, 401);
    }
    // Then the org fails: 12 distinct users get a 500, and the log says INTERNAL_ERROR.
    control(&okta, serde_json::json!({"internal_errors": true})).await;
    for (u, p) in users.iter().skip(10).take(12) {
        assert_eq!(authn(&client, &okta, u, p).await, 500);
    }

    let fired = tokio::time::timeout(WAIT, async {
        loop {
            let v = posts.recv().await.expect("the webhook listener is running");
            if v["name"] == "okta_login_failures" && v["state"] == "firing" {
                return v;
            }
        }
    })
    .await
    .unwrap_or_else(|_| {
        panic!(
            "no firing alert within {WAIT:?}; authwatch said:\n{}",
            aw.output()
        )
    });

    assert_eq!(fired["verdict"], "provider_outage", "{fired:#}");
    let reason = fired["verdict_reason"].as_str().unwrap();
    // A HyperLogLog estimate: 12 distinct users, within one.
    assert!(
        reason.contains("provider's own errors for about 1"),
        "{reason}"
    );
    let users: f64 = fired["annotations"]["users_affected"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((11.0..=13.0).contains(&users), "{fired:#}");
    assert_eq!(fired["labels"]["dependency"], "okta");
    assert_eq!(
        fired["signals"]["logins.provider_errors"], 12.0,
        "{fired:#}"
    );
    assert_eq!(fired["signals"]["logins.user_failures"], 5.0, "{fired:#}");
    assert_eq!(fired["signals"]["logins"], 97.0, "{fired:#}");
    let ratio = fired["value"].as_f64().unwrap();
    assert!((ratio - 12.0 / 97.0).abs() < 1e-9, "{ratio}");

    // The token is in neither the output nor the payload; every log request carried it right.
    let out = aw.output();
    assert!(!out.contains(TOKEN), "the token leaked into the output");
    assert!(!fired.to_string().contains(TOKEN));
    let c: Value = serde_json::from_str(
        &reqwest::get(format!("{}/_control", okta.url()))
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(c["bad_tokens"], 0);
    aw.signal("TERM");
    aw.wait(Duration::from_secs(30));
}
