//! A stand-in for an Okta org's System Log and primary authentication, a real HTTP server on
//! loopback, following Okta's documentation:
//!
//! - System Log API, `GET /api/v1/logs`
//!   (<https://developer.okta.com/docs/api/openapi/okta-management/management/tag/SystemLog/>,
//!   <https://developer.okta.com/docs/reference/system-log-query/>, the older
//!   <https://developer.okta.com/docs/api/resources/system_log>): `Authorization: SSWS <token>`
//!   (else `401` with `E0000011` "Invalid token provided"); `since`, `until`, `after`, `limit`
//!   (default 100, at most 1000), `sortOrder` (`ASCENDING` default); a JSON array of LogEvent
//!   objects (`uuid`, `published`, `eventType`, `version`, `severity`, `displayMessage`,
//!   `actor`, `client`, `outcome {result, reason}`, `target[]`, `authenticationContext`,
//!   `transaction`, `debugContext`); `Link: <...>; rel="self"` and, for a polling request (no
//!   `until`), always `Link: <...>; rel="next"` with an opaque `after` cursor, also when the
//!   page is empty; `X-Rate-Limit-Limit`, `-Remaining` and `-Reset` (Unix seconds of the end
//!   of the current minute) on every answer, and `429` with `E0000047` when the minute's budget
//!   is spent (<https://developer.okta.com/docs/reference/rl-best-practices/>).
//! - Primary authentication, `POST /api/v1/authn` `{"username","password"}`
//!   (<https://developer.okta.com/docs/reference/api/authn/>): `200` `{"status":"SUCCESS",
//!   "sessionToken":...}` or `401` `E0000004` "Authentication failed"; each request writes a
//!   `user.session.start` event: `SUCCESS`, or `FAILURE` with `INVALID_CREDENTIALS`,
//!   `LOCKED_OUT` (a locked user) or, when the org is told to fail, `INTERNAL_ERROR` with a
//!   `500` `E0000009` answer; `"app"` in the body names the `AppInstance` target.
//!
//! Test knobs (`POST /_control`, JSON, not part of Okta): `fail_next` (answer `500` to the next
//! N log requests), `malformed_next` (N pages that are not JSON), `foreign_next` (a `next` link
//! on this origin → on that URL's origin instead), `rate_limit` (requests per minute),
//! `internal_errors` (authn answers 500 and logs provider errors), `locked` (users),
//! `bulk` (N synthetic `user.session.start` events). `GET /_control` returns the counters.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use tokio::net::TcpListener;

/// Okta's page size default and maximum.
const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: usize = 1000;

#[derive(Debug, Default)]
struct Org {
    token: String,
    users: BTreeMap<String, String>,
    locked: BTreeSet<String>,
    /// Events in persistence order.
    events: Vec<Value>,
    fail_next: u64,
    malformed_next: u64,
    foreign_next: Option<String>,
    internal_errors: bool,
    rate_limit: u64,
    window: u64,
    used: u64,
    /// Log requests answered, and `Authorization` values seen that were wrong.
    log_requests: u64,
    bad_tokens: u64,
}

/// A running stand-in.
pub struct OktaServer {
    pub addr: SocketAddr,
    org: Arc<Mutex<Org>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for OktaServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn rfc3339_now() -> String {
    authwatch_core::time::format_rfc3339(SystemTime::now(), authwatch_core::time::Precision::Millis)
}

fn error(status: StatusCode, code: &str, summary: &str) -> Response {
    let id = format!("oae{}", now_secs());
    (
        status,
        Json(json!({"errorCode": code, "errorSummary": summary, "errorLink": code, "errorId": id, "errorCauses": []})),
    )
        .into_response()
}

impl OktaServer {
    /// Starts an org on `127.0.0.1:0` with this API token and users (`username`, `password`).
    pub async fn start(token: &str, users: &[(&str, &str)]) -> OktaServer {
        let org = Arc::new(Mutex::new(Org {
            token: token.to_owned(),
            users: users
                .iter()
                .map(|(u, p)| ((*u).to_owned(), (*p).to_owned()))
                .collect(),
            rate_limit: 600,
            ..Default::default()
        }));
        let app = Router::new()
            .route("/api/v1/logs", get(logs))
            .route("/api/v1/authn", post(authn))
            .route("/_control", post(control).get(counters))
            .with_state(org.clone());
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the Okta stand-in");
        let addr = listener.local_addr().expect("local address");
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        OktaServer { addr, org, task }
    }

    /// `http://127.0.0.1:<port>`: the `org_url`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Events in the log so far.
    pub fn events(&self) -> Vec<Value> {
        self.org
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .events
            .clone()
    }
}

fn event(
    org: &Org,
    event_type: &str,
    result: &str,
    reason: Option<&str>,
    user: &str,
    app: &str,
    message: &str,
) -> Value {
    let n = org.events.len() + 1;
    let actor_id = format!("00u{:017x}", fnv(user));
    json!({
        "uuid": format!("{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}", fnv(&format!("{n}{user}")) as u32, n & 0xffff, n & 0xfff, (n >> 12) & 0xfff, n),
        "published": rfc3339_now(),
        "eventType": event_type,
        "version": "0",
        "severity": if result == "SUCCESS" { "INFO" } else { "WARN" },
        "legacyEventType": if result == "SUCCESS" { "core.user_auth.login_success" } else { "core.user_auth.login_failed" },
        "displayMessage": message,
        "actor": {"id": actor_id, "type": "User", "alternateId": user, "displayName": user},
        "client": {"userAgent": {"rawUserAgent": "authwatch-test", "os": "Unknown", "browser": "UNKNOWN"}, "zone": "null", "device": "Unknown", "id": null, "ipAddress": "127.0.0.1", "geographicalContext": null},
        "outcome": {"result": result, "reason": reason},
        "target": [{"id": "0oa1stand1n", "type": "AppInstance", "alternateId": app, "displayName": app}],
        "authenticationContext": {"authenticationProvider": "OKTA_AUTHENTICATION_PROVIDER", "credentialProvider": "OKTA_CREDENTIAL_PROVIDER", "credentialType": "PASSWORD", "authenticationStep": 0, "externalSessionId": format!("trs{n}")},
        "transaction": {"type": "WEB", "id": format!("W{n}"), "detail": {}},
        "debugContext": {"debugData": {"requestUri": "/api/v1/authn"}},
        "securityContext": {}
    })
}

fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

async fn authn(State(org): State<Arc<Mutex<Org>>>, Json(body): Json<Value>) -> Response {
    let user = body
        .get("username")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    let password = body.get("password").and_then(Value::as_str).unwrap_or("");
    let app = body
        .get("app")
        .and_then(Value::as_str)
        .unwrap_or("Stand-in App")
        .to_owned();
    let mut o = org.lock().unwrap_or_else(|e| e.into_inner());
    let (status, ev) = if o.internal_errors {
        (
            500,
            event(
                &o,
                "user.session.start",
                "FAILURE",
                Some("INTERNAL_ERROR"),
                &user,
                &app,
                "User login to Okta",
            ),
        )
    } else if o.locked.contains(&user) {
        (
            401,
            event(
                &o,
                "user.session.start",
                "FAILURE",
                Some("LOCKED_OUT"),
                &user,
                &app,
                "User login to Okta",
            ),
        )
    } else if o.users.get(&user).is_some_and(|p| p == password) {
        (
            200,
            event(
                &o,
                "user.session.start",
                "SUCCESS",
                None,
                &user,
                &app,
                "User login to Okta",
            ),
        )
    } else {
        (
            401,
            event(
                &o,
                "user.session.start",
                "FAILURE",
                Some("INVALID_CREDENTIALS"),
                &user,
                &app,
                "User login to Okta",
            ),
        )
    };
    o.events.push(ev);
    match status {
        200 => Json(json!({
            "expiresAt": rfc3339_now(),
            "status": "SUCCESS",
            "sessionToken": format!("20111{:x}", fnv(&format!("{user}{}", o.events.len()))),
            "_embedded": {"user": {"id": format!("00u{:017x}", fnv(&user)), "profile": {"login": user}}}
        }))
        .into_response(),
        500 => error(StatusCode::INTERNAL_SERVER_ERROR, "E0000009", "Internal Server Error"),
        _ => error(StatusCode::UNAUTHORIZED, "E0000004", "Authentication failed"),
    }
}

/// The cursor: opaque to clients, `<millis>_<index of the next event>` here.
fn cursor(index: usize) -> String {
    format!(
        "{}_{}",
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis()),
        index
    )
}

fn index_of(after: &str) -> Option<usize> {
    after.rsplit_once('_').and_then(|(_, i)| i.parse().ok())
}

async fn logs(
    State(org): State<Arc<Mutex<Org>>>,
    headers: HeaderMap,
    Query(q): Query<BTreeMap<String, String>>,
) -> Response {
    let mut o = org.lock().unwrap_or_else(|e| e.into_inner());
    o.log_requests += 1;
    let window = now_secs() / 60;
    if o.window != window {
        o.window = window;
        o.used = 0;
    }
    o.used += 1;
    let reset = (window + 1) * 60;
    let remaining = o.rate_limit.saturating_sub(o.used);
    let mut rl = HeaderMap::new();
    rl.insert("x-rate-limit-limit", HeaderValue::from(o.rate_limit));
    rl.insert("x-rate-limit-remaining", HeaderValue::from(remaining));
    rl.insert("x-rate-limit-reset", HeaderValue::from(reset));
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if auth != format!("SSWS {}", o.token) {
        o.bad_tokens += 1;
        return (
            rl,
            error(
                StatusCode::UNAUTHORIZED,
                "E0000011",
                "Invalid token provided",
            ),
        )
            .into_response();
    }
    if o.used > o.rate_limit {
        return (
            rl,
            error(
                StatusCode::TOO_MANY_REQUESTS,
                "E0000047",
                "API call exceeded rate limit due to too many requests.",
            ),
        )
            .into_response();
    }
    if o.fail_next > 0 {
        o.fail_next -= 1;
        return (
            rl,
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "E0000009",
                "Internal Server Error",
            ),
        )
            .into_response();
    }
    let limit = match q.get("limit").map(|l| l.parse::<usize>()) {
        None => DEFAULT_LIMIT,
        Some(Ok(l)) if (1..=MAX_LIMIT).contains(&l) => l,
        Some(_) => {
            return error(
                StatusCode::BAD_REQUEST,
                "E0000001",
                "Api validation failed: limit",
            )
        }
    };
    let ascending = q.get("sortOrder").is_none_or(|s| s == "ASCENDING");
    let start = match (q.get("after"), q.get("since")) {
        (Some(a), _) => match index_of(a) {
            Some(i) => i.min(o.events.len()),
            None => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "E0000001",
                    "Api validation failed: after",
                )
            }
        },
        (None, Some(since)) => {
            let Some(t) = authwatch_core::time::parse_rfc3339(since) else {
                return error(
                    StatusCode::BAD_REQUEST,
                    "E0000001",
                    "Api validation failed: since",
                );
            };
            o.events
                .iter()
                .position(|e| {
                    e["published"]
                        .as_str()
                        .and_then(authwatch_core::time::parse_rfc3339)
                        .is_some_and(|p| p >= t)
                })
                .unwrap_or(o.events.len())
        }
        (None, None) => o.events.len().saturating_sub(limit),
    };
    let polling = !q.contains_key("until") && ascending;
    let page: Vec<Value> = o.events.iter().skip(start).take(limit).cloned().collect();
    let next_index = start + page.len();
    let base = format!(
        "http://{}",
        headers
            .get("host")
            .and_then(|h| h.to_str().ok())
            .unwrap_or("127.0.0.1")
    );
    let self_query: Vec<String> = q.iter().map(|(k, v)| format!("{k}={}", enc(v))).collect();
    let mut links = vec![format!(
        "<{base}/api/v1/logs?{}>; rel=\"self\"",
        self_query.join("&")
    )];
    if polling {
        let origin = o.foreign_next.take().unwrap_or(base);
        links.push(format!(
            "<{origin}/api/v1/logs?limit={limit}&sortOrder=ASCENDING&after={}>; rel=\"next\"",
            cursor(next_index)
        ));
    }
    let mut h = rl;
    for l in links {
        if let Ok(v) = HeaderValue::from_str(&l) {
            h.append("link", v);
        }
    }
    if o.malformed_next > 0 {
        o.malformed_next -= 1;
        h.insert("content-type", HeaderValue::from_static("application/json"));
        return (h, "[{\"uuid\": \"half").into_response();
    }
    (h, Json(Value::Array(page))).into_response()
}

fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

async fn control(State(org): State<Arc<Mutex<Org>>>, Json(b): Json<Value>) -> Response {
    let mut o = org.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(n) = b.get("fail_next").and_then(Value::as_u64) {
        o.fail_next = n;
    }
    if let Some(n) = b.get("malformed_next").and_then(Value::as_u64) {
        o.malformed_next = n;
    }
    if let Some(u) = b.get("foreign_next").and_then(Value::as_str) {
        o.foreign_next = Some(u.trim_end_matches('/').to_owned());
    }
    if let Some(n) = b.get("rate_limit").and_then(Value::as_u64) {
        o.rate_limit = n;
    }
    if let Some(x) = b.get("internal_errors").and_then(Value::as_bool) {
        o.internal_errors = x;
    }
    if let Some(users) = b.get("locked").and_then(Value::as_array) {
        o.locked = users
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect();
    }
    if let Some(n) = b.get("bulk").and_then(Value::as_u64) {
        for i in 0..n {
            let ev = event(
                &o,
                "user.session.start",
                "SUCCESS",
                None,
                &format!("bulk{i}"),
                "Bulk",
                "User login to Okta",
            );
            o.events.push(ev);
        }
    }
    StatusCode::NO_CONTENT.into_response()
}

async fn counters(State(org): State<Arc<Mutex<Org>>>) -> Json<Value> {
    let o = org.lock().unwrap_or_else(|e| e.into_inner());
    Json(
        json!({"log_requests": o.log_requests, "bad_tokens": o.bad_tokens, "events": o.events.len()}),
    )
}
