//! The stand-in OAuth2/OIDC provider: `/oauth/token` (password and client_credentials grants,
//! RS256 JWTs), `/.well-known/openid-configuration`, `/.well-known/jwks.json` and a Statuspage
//! `/api/v2/summary.json`, all following the scripted incident.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use base64::Engine;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::key::{DEMO_KID, DEMO_RSA_E, DEMO_RSA_N, DEMO_RSA_PKCS1_DER_B64};
use super::{
    DemoError, Phase, Script, AUDIENCE, CLIENT_ID, CLIENT_SECRET, PROBE_PASSWORD, PROBE_USER,
};

/// Requests per rate-limit window the stand-in allows (it only reports it in headers).
const RATE_LIMIT: u64 = 300;
const RATE_WINDOW_SECS: u64 = 10;

/// Why the stand-in could not issue a token (answered as a 500 `server_error`; a bug, as the
/// key is fixed).
#[derive(Debug, thiserror::Error)]
pub(super) enum TokenError {
    #[error("cannot sign the access token: {0}")]
    Access(#[source] jsonwebtoken::errors::Error),
    #[error("cannot sign the ID token: {0}")]
    Id(#[source] jsonwebtoken::errors::Error),
}

/// The bound stand-in; [`Provider::serve`] answers until cancelled.
pub struct Provider {
    addr: SocketAddr,
    listener: std::sync::Mutex<Option<TcpListener>>,
    state: Arc<StandIn>,
}

pub(super) struct StandIn {
    script: Script,
    issuer: String,
    key: jsonwebtoken::EncodingKey,
    /// Token requests so far (drives which ones fail, deterministically).
    requests: AtomicU64,
    /// (window index, requests in it) packed for the rate-limit headers.
    window: std::sync::Mutex<(u64, u64)>,
}

impl Provider {
    /// Binds `127.0.0.1:0`.
    pub async fn bind(script: Script) -> Result<Provider, DemoError> {
        let listener =
            TcpListener::bind("127.0.0.1:0")
                .await
                .map_err(|source| DemoError::Bind {
                    what: "stand-in identity provider",
                    source,
                })?;
        let addr = listener.local_addr().map_err(|source| DemoError::Bind {
            what: "stand-in identity provider",
            source,
        })?;
        let state = Arc::new(StandIn::new(script, format!("http://{addr}/"))?);
        Ok(Provider {
            addr,
            listener: std::sync::Mutex::new(Some(listener)),
            state,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves until `stop` is cancelled (once; later calls return at once).
    pub async fn serve(&self, stop: CancellationToken) {
        let listener = self
            .listener
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        let Some(listener) = listener else { return };
        let app = router(self.state.clone());
        // The same accept loop, limits and timeouts as every server authwatch opens.
        authwatch_net::serve_http(listener, None, app, authwatch_net::Limits::default(), stop)
            .await;
    }
}

pub(super) fn router(state: Arc<StandIn>) -> Router {
    Router::new()
        .route("/oauth/token", post(token))
        .route("/.well-known/openid-configuration", get(discovery))
        .route("/.well-known/jwks.json", get(jwks))
        .route("/api/v2/summary.json", get(summary))
        .with_state(state)
}

impl StandIn {
    pub(super) fn new(script: Script, issuer: String) -> Result<StandIn, DemoError> {
        Ok(StandIn {
            script,
            issuer,
            key: signing_key(&DEMO_RSA_PKCS1_DER_B64.concat())?,
            requests: AtomicU64::new(0),
            window: std::sync::Mutex::new((0, 0)),
        })
    }

    fn phase(&self) -> Phase {
        self.script.phase()
    }

    /// `x-ratelimit-*` headers: the stand-in's budget per 10 s window, exhausted while rate
    /// limiting.
    fn ratelimit_headers(&self, h: &mut HeaderMap, exhausted: bool) {
        let now = unix();
        let idx = now / RATE_WINDOW_SECS;
        let used = {
            let mut w = self.window.lock().unwrap_or_else(|e| e.into_inner());
            if w.0 != idx {
                *w = (idx, 0);
            }
            w.1 += 1;
            w.1
        };
        let remaining = if exhausted {
            0
        } else {
            RATE_LIMIT.saturating_sub(used)
        };
        let reset = (idx + 1) * RATE_WINDOW_SECS;
        for (k, v) in [
            ("x-ratelimit-limit", RATE_LIMIT),
            ("x-ratelimit-remaining", remaining),
            ("x-ratelimit-reset", reset),
        ] {
            h.insert(k, HeaderValue::from(v));
        }
    }

    fn token(&self, sub: &str, scope: Option<&str>) -> Result<Value, TokenError> {
        let now = unix();
        let claims = json!({
            "iss": self.issuer,
            "sub": sub,
            "aud": [AUDIENCE, format!("{}userinfo", self.issuer)],
            "iat": now,
            "exp": now + 3600,
            "azp": CLIENT_ID,
            "scope": scope.unwrap_or(""),
            "https://demo.test/actions_ran": true,
        });
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
        header.kid = Some(DEMO_KID.into());
        let access =
            jsonwebtoken::encode(&header, &claims, &self.key).map_err(TokenError::Access)?;
        let mut body = json!({
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": 3600,
        });
        if scope.is_some_and(|s| s.split_whitespace().any(|x| x == "openid")) {
            let id_claims = json!({
                "iss": self.issuer, "sub": sub, "aud": CLIENT_ID, "iat": now, "exp": now + 3600,
            });
            let id =
                jsonwebtoken::encode(&header, &id_claims, &self.key).map_err(TokenError::Id)?;
            body["id_token"] = Value::String(id);
        }
        Ok(body)
    }
}

/// The RS256 signing key from its base64 PKCS#1 DER.
pub(super) fn signing_key(der_b64: &str) -> Result<jsonwebtoken::EncodingKey, DemoError> {
    let der = base64::engine::general_purpose::STANDARD
        .decode(der_b64)
        .map_err(DemoError::Key)?;
    Ok(jsonwebtoken::EncodingKey::from_rsa_der(&der))
}

fn unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[derive(Debug, Deserialize)]
pub(super) struct TokenRequest {
    grant_type: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
    username: Option<String>,
    password: Option<String>,
    scope: Option<String>,
}

fn oauth_error(status: StatusCode, code: &str, description: &str) -> Response {
    (
        status,
        [(header::CACHE_CONTROL, "no-store")],
        axum::Json(json!({"error": code, "error_description": description})),
    )
        .into_response()
}

async fn token(State(s): State<Arc<StandIn>>, Form(req): Form<TokenRequest>) -> Response {
    let n = s.requests.fetch_add(1, Ordering::Relaxed);
    let phase = s.phase();
    let probe = req.username.as_deref() == Some(PROBE_USER);
    let mut resp = token_response(&s, &req, phase, probe, n);
    let exhausted = phase == Phase::RateLimited;
    s.ratelimit_headers(resp.headers_mut(), exhausted);
    resp
}

fn token_response(s: &StandIn, req: &TokenRequest, phase: Phase, probe: bool, n: u64) -> Response {
    match phase {
        // 60% of logins fail (3 of every 5), the probe's always.
        Phase::ServerErrors if probe || n % 5 < 3 => {
            let status = if n.is_multiple_of(2) {
                StatusCode::INTERNAL_SERVER_ERROR
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            return oauth_error(
                status,
                "server_error",
                "The authentication service is unavailable (demo incident).",
            );
        }
        Phase::RateLimited if probe || n.is_multiple_of(2) => {
            let mut r = oauth_error(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_requests",
                "Global limit has been reached (demo incident).",
            );
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("2"));
            return r;
        }
        Phase::ProbeUserLocked if probe => {
            return oauth_error(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_attempts",
                "Your account has been blocked after multiple consecutive login attempts.",
            );
        }
        _ => {}
    }
    if req.client_id.as_deref() != Some(CLIENT_ID)
        || req.client_secret.as_deref() != Some(CLIENT_SECRET)
    {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "Unknown client or wrong secret.",
        );
    }
    let sub = match req.grant_type.as_deref() {
        Some("password") | Some("http://auth0.com/oauth/grant-type/password-realm") => {
            let user = req.username.as_deref().unwrap_or("");
            let ok = if user == PROBE_USER {
                req.password.as_deref() == Some(PROBE_PASSWORD)
            } else {
                // Demo users: any password but "wrong".
                !user.is_empty() && req.password.as_deref().is_some_and(|p| p != "wrong")
            };
            if !ok {
                return oauth_error(
                    StatusCode::FORBIDDEN,
                    "invalid_grant",
                    "Wrong email or password.",
                );
            }
            format!(
                "auth0|{}",
                user.replace(|c: char| !c.is_ascii_alphanumeric(), "")
            )
        }
        Some("client_credentials") => format!("{CLIENT_ID}@clients"),
        _ => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                "Use the password or client_credentials grant.",
            )
        }
    };
    match s.token(&sub, req.scope.as_deref()) {
        Ok(body) => (
            StatusCode::OK,
            [(header::CACHE_CONTROL, "no-store")],
            axum::Json(body),
        )
            .into_response(),
        Err(e) => oauth_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            &e.to_string(),
        ),
    }
}

async fn discovery(State(s): State<Arc<StandIn>>) -> Response {
    let i = &s.issuer;
    axum::Json(json!({
        "issuer": i,
        "token_endpoint": format!("{i}oauth/token"),
        "jwks_uri": format!("{i}.well-known/jwks.json"),
        "grant_types_supported": ["password", "client_credentials"],
        "id_token_signing_alg_values_supported": ["RS256"],
    }))
    .into_response()
}

async fn jwks() -> Response {
    axum::Json(json!({"keys": [{
        "kty": "RSA", "use": "sig", "alg": "RS256", "kid": DEMO_KID, "n": DEMO_RSA_N, "e": DEMO_RSA_E,
    }]}))
    .into_response()
}

/// The provider's status page as an Atlassian Statuspage `summary.json`.
pub(super) fn summary_for(phase: Phase, issuer: &str) -> Value {
    let (indicator, description, auth_status, incident) = match phase {
        Phase::ServerErrors => (
            "major",
            "Partial System Outage",
            "major_outage",
            Some((
                "investigating",
                "major",
                "We are investigating elevated error rates on logins.",
            )),
        ),
        Phase::RateLimited => (
            "minor",
            "Minor Service Outage",
            "degraded_performance",
            Some((
                "monitoring",
                "major",
                "A fix has been applied; we are monitoring the results.",
            )),
        ),
        _ => ("none", "All Systems Operational", "operational", None),
    };
    let incidents: Vec<Value> = incident
        .map(|(status, impact, body)| {
            json!({
                "id": "demo-incident-1",
                "name": "Elevated authentication errors (demo)",
                "status": status,
                "impact": impact,
                "shortlink": format!("{issuer}incidents/demo-incident-1"),
                "incident_updates": [{"id": format!("demo-update-{status}"), "body": body}],
            })
        })
        .into_iter()
        .collect();
    json!({
        "page": {"id": "demo", "name": "Demo identity provider", "url": issuer},
        "status": {"indicator": indicator, "description": description},
        "components": [
            {"id": "auth-api", "name": "Authentication API", "status": auth_status},
            {"id": "mgmt-api", "name": "Management API", "status": "operational"},
        ],
        "incidents": incidents,
    })
}

async fn summary(State(s): State<Arc<StandIn>>) -> Response {
    axum::Json(summary_for(s.phase(), &s.issuer)).into_response()
}
