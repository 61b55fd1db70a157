//! The `authorization_code` check: the login users do, through the hosted login page, in plain
//! HTTP. A run builds the authorize request (PKCE `S256`, fresh `state` and `nonce`), follows
//! the redirects by hand with a cookie jar of its own, reads each page (`form.rs`), fills and
//! submits the login form (one page, or identifier then password), answers an MFA page with a
//! TOTP code when it has the secret, accepts consent when told to, and stops at the redirect to
//! `redirect_uri` without calling it. It then exchanges the code (`token.rs`) and validates the
//! id_token and, when configured, the access token.
//!
//! Credentials only go to the authorize URL's origin or an `allowed_hosts` entry; a form that
//! posts them elsewhere ends the run with `login_page_changed`, nothing sent.

pub(crate) mod config;
pub(crate) mod form;
mod callback;
mod jar;
mod pkce;
mod token;
mod totp;
pub(super) mod validate;

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method};
use tokio::time::Instant;
use url::Url;

use super::client::{Endpoint, Response, TransportError};
use super::outcome::Outcome;
use super::result::{Hop, HopKind, Purpose, RateLimit, RunResult, Step};
use super::run::{retry_after, strip_body, CheckRunner, Failure};
use callback::{callback, is_callback};
use config::{AuthCodeCheck, ConsentAction};
use form::{Fill, PageKind};
use jar::Jar;
use pkce::{random_token, Pkce};

/// Requests one run may send besides its redirects (pages, submits, token, keys).
const MAX_PAGES: u32 = 12;

/// The authorize and token endpoints of a check (configured, or from discovery).
#[derive(Debug, Clone)]
pub(crate) struct Endpoints {
    pub authorize: String,
    pub token: String,
}

/// What one walk has done so far.
#[derive(Default)]
struct Walk {
    jar: Jar,
    redirects: u32,
    pages: u32,
    identifier_sent: bool,
    password_sent: bool,
    code_sent: bool,
    consent_sent: bool,
}

/// A request to send.
struct Next {
    method: Method,
    url: Url,
    body: Option<Bytes>,
    kind: HopKind,
    /// The body holds credentials (username, password or code).
    credentials: bool,
}

fn page_changed(error_type: &str, message: impl Into<String>) -> Failure {
    Failure::new(Outcome::LoginPageChanged, error_type, message)
}

/// The redacted form of a URL, for messages.
fn shown(url: &Url) -> String {
    Endpoint::parse(url.as_str())
        .map(|e| e.url_full)
        .unwrap_or_else(|_| "(invalid URL)".into())
}

fn origin_of(url: &Url) -> (String, String, Option<u16>) {
    (
        url.scheme().to_owned(),
        url.host_str().unwrap_or("").to_ascii_lowercase(),
        url.port_or_known_default(),
    )
}

/// Whether `target` may receive the credentials: the authorize URL's origin, or a host in
/// `allowed_hosts` (`host`, or `host:port`) over https (or over http when the authorize URL
/// is http too).
fn may_receive_credentials(c: &AuthCodeCheck, authorize: &Url, target: &Url) -> bool {
    if origin_of(target) == origin_of(authorize) {
        return true;
    }
    if target.scheme() != "https" && authorize.scheme() == "https" {
        return false;
    }
    let host = target.host_str().unwrap_or("").to_ascii_lowercase();
    let with_port = format!("{host}:{}", target.port_or_known_default().unwrap_or(0));
    c.allowed_hosts
        .iter()
        .map(|h| h.trim().to_ascii_lowercase())
        .any(|h| h == host || h == with_port)
}

// === impl CheckRunner ===

impl CheckRunner {
    /// The authorize and token endpoints: configured, else from discovery (once per check).
    async fn authcode_endpoints(
        &mut self,
        c: &AuthCodeCheck,
        deadline: Instant,
        r: &mut RunResult,
    ) -> Result<Endpoints, Failure> {
        if let (Some(a), Some(t)) = (&c.authorize_url, &c.token_url) {
            return Ok(Endpoints {
                authorize: a.clone(),
                token: t.clone(),
            });
        }
        if let Some(e) = &self.endpoints {
            return Ok(e.clone());
        }
        let url = format!(
            "{}/.well-known/openid-configuration",
            c.issuer.trim_end_matches('/')
        );
        let doc = self
            .get_json(&url, Purpose::Discovery, deadline, r)
            .await
            .map_err(|f| f.with_outcome_if(Outcome::InvalidToken, Outcome::HttpStatus))?;
        let field = |k: &str| doc.get(k).and_then(serde_json::Value::as_str);
        let found = |k: &str, configured: &Option<String>| {
            configured
                .clone()
                .or_else(|| field(k).map(str::to_owned))
                .ok_or_else(|| {
                    Failure::new(
                        Outcome::HttpStatus,
                        "discovery_invalid",
                        format!("the discovery document {url} has no `{k}`"),
                    )
                })
        };
        let e = Endpoints {
            authorize: found("authorization_endpoint", &c.authorize_url)?,
            token: found("token_endpoint", &c.token_url)?,
        };
        if self.jwks_url.is_none() {
            self.jwks_url = field("jwks_uri").map(str::to_owned);
        }
        self.endpoints = Some(e.clone());
        Ok(e)
    }

    /// One run of an `authorization_code` check. `secrets` receives this run's secrets (the
    /// verifier, the code, cookies, tokens) so that messages can be scrubbed of them.
    pub(super) async fn run_authcode(
        &mut self,
        c: &AuthCodeCheck,
        deadline: Instant,
        r: &mut RunResult,
        secrets: &mut Vec<String>,
    ) -> Result<(), Failure> {
        let endpoints = self.authcode_endpoints(c, deadline, r).await?;
        let pkce = Pkce::new();
        let state = random_token();
        let nonce = random_token();
        secrets.push(pkce.verifier.clone());
        let mut authorize = Url::parse(&endpoints.authorize)
            .map_err(|e| page_changed("authorize_url_invalid", format!("authorize URL: {e}")))?;
        {
            let mut q = authorize.query_pairs_mut();
            q.append_pair("response_type", "code")
                .append_pair("client_id", &c.client_id)
                .append_pair("redirect_uri", &c.redirect_uri)
                .append_pair("scope", c.scope())
                .append_pair("state", &state)
                .append_pair("nonce", &nonce)
                .append_pair("code_challenge", &pkce.challenge)
                .append_pair("code_challenge_method", "S256");
            if let Some(a) = &c.audience {
                q.append_pair("audience", a);
            }
            for (k, v) in &c.params {
                q.append_pair(k, v);
            }
        }
        let mut walk = Walk::default();
        let result = self
            .walk(c, &authorize, &state, &mut walk, deadline, r)
            .await;
        secrets.extend(walk.jar.values().map(str::to_owned));
        let code = result?;
        secrets.push(code.clone());
        self.exchange_code(c, &endpoints.token, &code, &pkce, &nonce, deadline, r, secrets)
            .await
    }

    /// Sends one hop: cookies from the jar, the response's cookies into it, the step recorded.
    /// Returns the response (with its body) or the transport failure.
    async fn hop(
        &mut self,
        next: &Next,
        walk: &mut Walk,
        deadline: Instant,
        r: &mut RunResult,
    ) -> Result<Response, Failure> {
        let ep = Endpoint::parse(next.url.as_str())
            .map_err(|e| page_changed("url_invalid", format!("{e}")))?;
        let mut headers: Vec<(HeaderName, HeaderValue)> = vec![(
            http::header::ACCEPT,
            HeaderValue::from_static("text/html,application/xhtml+xml;q=0.9,*/*;q=0.8"),
        )];
        if let Some(cookie) = walk.jar.header(&next.url) {
            headers.push((http::header::COOKIE, cookie));
        }
        if next.body.is_some() {
            headers.push((
                http::header::CONTENT_TYPE,
                HeaderValue::from_static("application/x-www-form-urlencoded"),
            ));
        }
        let mut ex = self
            .client
            .exchange(
                &next.method,
                &ep,
                &headers,
                next.body.clone().unwrap_or_default(),
                deadline,
            )
            .await;
        if r.cert_not_after.is_none() {
            r.cert_not_after = ex.cert_not_after;
        }
        let out = match &mut ex.result {
            Err(e @ TransportError::TooLarge { .. }) => Err(page_changed(
                "page_too_large",
                format!("{}: {e}", shown(&next.url)),
            )),
            Err(e) => Err(Failure::transport(e, next.kind.as_str())),
            Ok(resp) => {
                walk.jar.store(&next.url, &resp.headers);
                r.status = Some(resp.status);
                // The step keeps neither headers (cookies, Location with codes) nor body.
                Ok(Response {
                    status: resp.status,
                    headers: std::mem::take(&mut resp.headers),
                    body: std::mem::take(&mut resp.body),
                })
            }
        };
        r.steps.push(Step {
            purpose: Purpose::Main,
            exchange: strip_body(ex),
            hop: Some(Hop {
                kind: next.kind,
                page: None,
            }),
        });
        out
    }

    /// Walks from the authorize URL to the redirect URI; returns the code.
    async fn walk(
        &mut self,
        c: &AuthCodeCheck,
        authorize: &Url,
        state: &str,
        walk: &mut Walk,
        deadline: Instant,
        r: &mut RunResult,
    ) -> Result<String, Failure> {
        let password = c.password.as_ref().map(|p| p.expose()).unwrap_or("");
        let totp_key = c
            .totp_secret
            .as_ref()
            .map(|s| totp::key(s.expose()))
            .transpose()
            .map_err(|e| Failure::new(Outcome::MfaRequired, "totp_secret_invalid", e.to_string()))?;
        let mut next = Next {
            method: Method::GET,
            url: authorize.clone(),
            body: None,
            kind: HopKind::Authorize,
            credentials: false,
        };
        loop {
            let resp = self.hop(&next, walk, deadline, r).await?;
            if (300..400).contains(&resp.status) {
                if let Some(loc) = resp.headers.get(http::header::LOCATION) {
                    walk.redirects += 1;
                    if walk.redirects > c.max_redirects {
                        return Err(Failure::new(
                            Outcome::RedirectLoop,
                            "redirect_loop",
                            format!(
                                "more than {} redirects (the last to {})",
                                c.max_redirects,
                                shown(&next.url)
                            ),
                        ));
                    }
                    let target = loc
                        .to_str()
                        .ok()
                        .and_then(|l| next.url.join(l).ok())
                        .ok_or_else(|| {
                            page_changed(
                                "location_invalid",
                                format!("{} redirected to an invalid Location", shown(&next.url)),
                            )
                        })?;
                    if is_callback(&target, &c.redirect_uri) {
                        return callback(c, &target, state);
                    }
                    let keep = matches!(resp.status, 307 | 308);
                    if keep && next.credentials && !may_receive_credentials(c, authorize, &target) {
                        return Err(refused(&target));
                    }
                    next = Next {
                        method: if keep { next.method } else { Method::GET },
                        url: target,
                        body: if keep { next.body } else { None },
                        kind: HopKind::Redirect,
                        credentials: keep && next.credentials,
                    };
                    continue;
                }
            }
            if resp.status == 429 {
                r.retry_after = retry_after(&resp.headers);
                r.ratelimit = RateLimit::from_headers(&resp.headers);
                return Err(Failure::new(
                    Outcome::RateLimited,
                    "429",
                    format!("{} answered 429 (rate limited)", shown(&next.url)),
                ));
            }
            walk.pages += 1;
            if walk.pages > MAX_PAGES {
                return Err(page_changed(
                    "too_many_pages",
                    format!("more than {MAX_PAGES} pages without reaching the redirect URI"),
                ));
            }
            let html = String::from_utf8_lossy(&resp.body);
            let page = form::read(&html, &c.form);
            if let Some(Step { hop: Some(h), .. }) = r.steps.last_mut() {
                h.page = Some(page.kind.as_str());
            }
            let at = shown(&next.url);
            let says = page
                .error
                .as_deref()
                .map(|e| format!(": the page says \"{e}\""))
                .unwrap_or_default();
            let rejected = |what: &str| {
                let blocked = page
                    .error
                    .as_deref()
                    .is_some_and(|e| e.to_ascii_lowercase().contains("block"));
                let f = Failure::new(
                    Outcome::LoginRejected,
                    if blocked { "user_blocked" } else { what },
                    format!("{at} came back with its form after the {what}{says}"),
                );
                (f, blocked)
            };
            let fill = match page.kind {
                PageKind::Captcha => {
                    return Err(Failure::new(
                        Outcome::BotChallenge,
                        "bot_challenge",
                        format!("{at} shows a CAPTCHA or bot-detection challenge: exempt the probe (Auth0: Bot Detection settings, an allow-listed IP) or turn it off for its connection"),
                    ));
                }
                PageKind::Login | PageKind::Password | PageKind::Identifier
                    if walk.password_sent || (walk.identifier_sent && page.kind == PageKind::Identifier) =>
                {
                    let (f, blocked) =
                        rejected(if walk.password_sent { "password" } else { "username" });
                    if blocked {
                        // Brute-force protection: the check pauses as on `too_many_attempts`.
                        r.oauth_error = Some("too_many_attempts".into());
                    }
                    return Err(f);
                }
                PageKind::Login | PageKind::Password => {
                    walk.password_sent = true;
                    walk.identifier_sent = true;
                    Fill {
                        username: Some(&c.username),
                        password: Some(password),
                        code: None,
                    }
                }
                PageKind::Identifier => {
                    walk.identifier_sent = true;
                    Fill {
                        username: Some(&c.username),
                        ..Fill::default()
                    }
                }
                PageKind::Otp => match (&totp_key, walk.code_sent) {
                    (None, _) => {
                        return Err(Failure::new(
                            Outcome::MfaRequired,
                            "mfa_required",
                            format!("{at} asks for a one-time code and the check has no `totp_secret`"),
                        ));
                    }
                    (Some(_), true) => return Err(rejected("one-time code").0),
                    (Some(_), false) => {
                        walk.code_sent = true;
                        Fill::default()
                    }
                },
                PageKind::Consent => match (c.consent, walk.consent_sent) {
                    (ConsentAction::Report, _) => {
                        return Err(Failure::new(
                            Outcome::ConsentRequired,
                            "consent_required",
                            format!("{at} asks the user to consent: grant it once for the probe user, make the application first-party (Auth0: skip consent), or set `consent: accept`"),
                        ));
                    }
                    (ConsentAction::Accept, true) => {
                        return Err(page_changed(
                            "consent_repeated",
                            format!("{at} asks for consent again after it was accepted"),
                        ));
                    }
                    (ConsentAction::Accept, false) => {
                        walk.consent_sent = true;
                        Fill::default()
                    }
                },
                PageKind::Unknown if resp.status >= 400 => {
                    return Err(Failure::new(
                        Outcome::HttpStatus,
                        resp.status.to_string(),
                        format!("{at} answered {}{says}", resp.status),
                    ));
                }
                PageKind::Unknown => {
                    return Err(page_changed(
                        "no_login_form",
                        format!(
                            "{at} ({}) shows no login form the check knows{says}; set `form.selector` or the field names if the page changed on purpose",
                            resp.status
                        ),
                    ));
                }
            };
            let code;
            let fill = if page.kind == PageKind::Otp {
                code = totp::code_now(totp_key.as_deref().unwrap_or_default());
                Fill {
                    code: Some(&code),
                    ..fill
                }
            } else {
                fill
            };
            next = submit(c, authorize, &next.url, &page, &fill)?;
        }
    }
}

/// The request that submits `page`'s form filled with `fill`.
fn submit(
    c: &AuthCodeCheck,
    authorize: &Url,
    page_url: &Url,
    page: &form::Page,
    fill: &Fill<'_>,
) -> Result<Next, Failure> {
    let Some(f) = &page.form else {
        return Err(page_changed("no_login_form", "the page has no form"));
    };
    let mut action = match &f.action {
        Some(a) => page_url.join(a).map_err(|_| {
            page_changed(
                "form_action_invalid",
                format!("the form on {} has an invalid action", shown(page_url)),
            )
        })?,
        None => page_url.clone(),
    };
    action.set_fragment(None);
    if !matches!(action.scheme(), "http" | "https") {
        return Err(page_changed(
            "form_action_invalid",
            format!("the form on {} posts to a non-HTTP URL", shown(page_url)),
        ));
    }
    let credentials = fill.username.is_some() || fill.password.is_some() || fill.code.is_some();
    if credentials && !may_receive_credentials(c, authorize, &action) {
        return Err(refused(&action));
    }
    let pairs = page.fill(fill);
    let encoded = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish();
    if f.post {
        Ok(Next {
            method: Method::POST,
            url: action,
            body: Some(Bytes::from(encoded)),
            kind: HopKind::Submit,
            credentials,
        })
    } else {
        if fill.password.is_some() || fill.code.is_some() {
            return Err(page_changed(
                "form_method_get",
                format!(
                    "the form on {} would put the password in the URL (method GET); not sent",
                    shown(page_url)
                ),
            ));
        }
        action.set_query(Some(&encoded));
        Ok(Next {
            method: Method::GET,
            url: action,
            body: None,
            kind: HopKind::Submit,
            credentials,
        })
    }
}

fn refused(target: &Url) -> Failure {
    page_changed(
        "credentials_host_refused",
        format!(
            "the login form sends the credentials to {}, neither the authorize URL's host nor in `allowed_hosts`: nothing was sent",
            target.host_str().unwrap_or("(no host)")
        ),
    )
}

#[cfg(test)]
#[path = "tests/walk.rs"]
mod tests;
