//! Per-span logic: classification, endpoint templates and dependency matching, with the
//! byte-search helpers checked against their straightforward references.

use authwatch_core::otlp::trace::v1::{span::Event, Span};

use super::classify::{classify, endpoint_template, glob_match, is_id, split_url, SpanView};
use super::tests::{cfg, class_of, failed, http, with, AUTH0};
use super::*;
use authwatch_testkit::{kv, kv_int};

// --- per-span logic ---

#[test]
fn classification_follows_http_semconv() {
    let oauth = |code: i64, e: &str| with(http(AUTH0, "/oauth/token", Some(code)), vec![kv("oauth.error", e)]);
    let cases: Vec<(Span, ErrorClass)> = vec![
        (http(AUTH0, "/oauth/token", Some(200)), ErrorClass::Ok),
        (http(AUTH0, "/authorize", Some(302)), ErrorClass::Ok),
        (http(AUTH0, "/oauth/token", Some(500)), ErrorClass::ServerError),
        (http(AUTH0, "/oauth/token", Some(503)), ErrorClass::ServerError),
        (http(AUTH0, "/oauth/token", Some(429)), ErrorClass::RateLimited),
        (oauth(429, "too_many_requests"), ErrorClass::RateLimited),
        (oauth(429, "too_many_attempts"), ErrorClass::AuthRejected),
        (oauth(403, "invalid_grant"), ErrorClass::AuthRejected),
        (oauth(401, "invalid_client"), ErrorClass::ClientError),
        (oauth(400, "invalid_request"), ErrorClass::ClientError),
        (http(AUTH0, "/oauth/token", Some(404)), ErrorClass::ClientError),
        (http(AUTH0, "/oauth/token", Some(408)), ErrorClass::Timeout),
        (failed(AUTH0, "timeout"), ErrorClass::Timeout),
        (failed(AUTH0, "java.net.SocketTimeoutException"), ErrorClass::Timeout),
        (failed(AUTH0, "connection_refused"), ErrorClass::Network),
        (failed(AUTH0, "java.net.UnknownHostException"), ErrorClass::Network),
        (http(AUTH0, "/oauth/token", None), ErrorClass::Ok),
        (with(http(AUTH0, "/x", None), vec![kv_int("rpc.grpc.status_code", 14)]), ErrorClass::ServerError),
        (with(http(AUTH0, "/x", None), vec![kv_int("rpc.grpc.status_code", 4)]), ErrorClass::Timeout),
        (with(http(AUTH0, "/x", None), vec![kv_int("rpc.grpc.status_code", 8)]), ErrorClass::RateLimited),
        (with(http(AUTH0, "/x", None), vec![kv_int("rpc.grpc.status_code", 0)]), ErrorClass::Ok),
        (with(http(AUTH0, "/x", None), vec![kv("synthetic.check", "login"), kv("synthetic.outcome", "timeout")]), ErrorClass::Timeout),
        (with(http(AUTH0, "/x", None), vec![kv("synthetic.check", "login"), kv("synthetic.outcome", "dns")]), ErrorClass::Network),
    ];
    for (i, (s, want)) in cases.iter().enumerate() {
        assert_eq!(class_of(s), *want, "case {i}: {:?}", s.attributes);
    }
    // The OAuth error may come from an exception event, and `auth0.error` is read too.
    let mut ev = http(AUTH0, "/oauth/token", Some(403));
    ev.events.push(Event {
        name: "exception".into(),
        attributes: vec![kv("exception.type", "Auth0Error"), kv("oauth.error", "invalid_grant")],
        ..Default::default()
    });
    assert_eq!(class_of(&ev), ErrorClass::AuthRejected);
    assert_eq!(SpanView::of(&ev).error_key(), Some("invalid_grant"));
    let a0 = with(http(AUTH0, "/oauth/token", Some(403)), vec![kv("auth0.error", "mfa_required")]);
    assert_eq!(class_of(&a0), ErrorClass::AuthRejected);
    // auth_rejected is configurable: with an empty list a wrong password is a client error.
    assert_eq!(
        classify(&SpanView::of(&oauth(403, "invalid_grant")), &[]),
        ErrorClass::ClientError
    );
}

#[test]
fn endpoints_are_templated() {
    let t = |path: &str| {
        let s = http(AUTH0, path, Some(200));
        let mut out = String::new();
        endpoint_template(&SpanView::of(&s), &mut out);
        out
    };
    assert_eq!(t("/oauth/token"), "/oauth/token");
    assert_eq!(t("/api/v2/users/auth0|5f7c8ec7c33c6c004bbafe82"), "/api/v2/users/{id}");
    assert_eq!(t("/api/v2/users/google-oauth2%7C1234/roles"), "/api/v2/users/{id}/roles");
    assert_eq!(t("/api/v2/orders/12345"), "/api/v2/orders/{id}");
    assert_eq!(t("/api/v2/x/123e4567-e89b-12d3-a456-426614174000"), "/api/v2/x/{id}");
    assert_eq!(t("/api/v2/clients/aBcDeF1234567890xyZ"), "/api/v2/clients/{id}");
    assert_eq!(t("/a/b/c/d/e/f/g/h/i/j"), "/a/b/c/d/e/f/g/h/{...}");
    assert_eq!(t(""), "/");
    // url.template wins.
    let s = with(http(AUTH0, "/api/v2/users/7", Some(200)), vec![kv("url.template", "/api/v2/users/{user}")]);
    let mut out = String::new();
    endpoint_template(&SpanView::of(&s), &mut out);
    assert_eq!(out, "/api/v2/users/{user}");
    assert!(!is_id("userinfo") && !is_id("authorize") && !is_id("v2"));
    assert_eq!(split_url("https://u:p@h.example.com:8443/a/b?c#d"), (Some("h.example.com"), "/a/b"));
    assert_eq!(split_url("http://[::1]:80"), (Some("::1"), "/"));
}

#[test]
fn dependencies_match_by_glob_prefix_peer_and_rpc() {
    assert!(glob_match("*.auth0.com", "tenant.us.AUTH0.com"));
    assert!(!glob_match("*.auth0.com", "auth0.com.evil.io"));
    assert!(glob_match("login.*.example.com", "login.eu.example.com"));
    assert!(glob_match("*", "anything"));
    assert!(glob_match("*.auth0.com", ".auth0.com") && !glob_match("*.auth0.com", "auth0.com"));
    assert!(glob_match("*a*b", "xxaYYb") && !glob_match("*a*b", "xxbYYa"));
    let d = Dependency {
        name: "idp".into(),
        server_address: vec!["*.auth0.com".into()],
        url_prefix: vec!["https://login.example.com/".into()],
        peer_service: vec!["idp".into()],
        rpc_service: vec!["idp.Tokens".into()],
        url_path: vec![],
    };
    let m = |s: Span| d.matches(&SpanView::of(&s));
    assert!(m(http(AUTH0, "/", Some(200))));
    assert!(m(http("login.example.com", "/oauth/token", Some(200))));
    assert!(!m(http("api.example.com", "/", Some(200))));
    assert!(m(with(http("10.0.0.1", "/", Some(200)), vec![kv("peer.service", "idp")])));
    assert!(m(with(http("10.0.0.1", "/", Some(200)), vec![kv("rpc.service", "idp.Tokens")])));
    // Host from url.full when server.address is missing.
    let mut s = http(AUTH0, "/", Some(200));
    s.attributes.retain(|kv| kv.key != "server.address");
    assert!(m(s));
}

#[test]
fn dependencies_match_by_url_path_glob() {
    let d = Dependency {
        name: "keycloak".into(),
        server_address: vec![],
        url_prefix: vec![],
        peer_service: vec![],
        rpc_service: vec![],
        url_path: vec!["/realms/*/protocol/openid-connect/*".into()],
    };
    let m = |s: Span| d.matches(&SpanView::of(&s));
    // From the path of url.full, the query string left out.
    assert!(m(http("sso.example.com", "/realms/acme/protocol/openid-connect/token", Some(200))));
    assert!(!m(http("sso.example.com", "/realms/acme/account", Some(200))));
    assert!(!m(http("sso.example.com", "/api/realms/acme/protocol/openid-connect/token", Some(200))));
    // `url.path` wins over url.full.
    let s = with(
        http("sso.example.com", "/other", Some(200)),
        vec![kv("url.path", "/realms/x/protocol/openid-connect/certs")],
    );
    assert!(m(s));
    // Without a path attribute, nothing to match.
    let mut s = http("sso.example.com", "/realms/a/protocol/openid-connect/token", Some(200));
    s.attributes.retain(|kv| kv.key != "url.full");
    assert!(!m(s));
    // A dependency with only `url_path` validates.
    let mut c = cfg();
    c.dependencies = vec![d.clone()];
    let mut v = Validator::new("connectors::error_rate");
    c.validate(&mut v);
    assert!(!v.has_errors(), "{:?}", v.errors());
}

/// The straightforward `split_url`, `is_id` and path templating the byte-search versions
/// replaced, as the reference for the property test below.
mod reference {
    pub fn split_url(url: &str) -> (Option<&str>, &str) {
        let scheme_end = url.find("://");
        let rest = match scheme_end {
            Some(i) => &url[i + 3..],
            None => return (None, strip_query(url)),
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest.split(['?', '#']).next().unwrap_or(rest), "/"),
        };
        let host = authority.rsplit('@').next().unwrap_or(authority);
        let host = if host.starts_with('[') {
            host.split(']').next().map(|h| h.trim_start_matches('['))
        } else {
            host.split(':').next()
        };
        (host.filter(|h| !h.is_empty()), strip_query(path))
    }

    fn strip_query(p: &str) -> &str {
        p.split(['?', '#']).next().unwrap_or(p)
    }

    /// `endpoint_template` of a span with only `url.path`.
    pub fn path_template(path: &str) -> String {
        let mut out = String::new();
        for (n, seg) in strip_query(path).split('/').filter(|s| !s.is_empty()).enumerate() {
            out.push('/');
            if n == 8 {
                out.push_str("{...}");
                return out;
            }
            out.push_str(if is_id(seg) { "{id}" } else { seg });
        }
        if out.is_empty() {
            out.push('/');
        }
        out
    }

    pub fn is_id(seg: &str) -> bool {
        let b = seg.as_bytes();
        if b.iter().all(u8::is_ascii_digit) {
            return true;
        }
        let escaped_pipe =
            (0..b.len()).any(|i| b[i] == b'%' && (b[i + 1..].starts_with(b"7C") || b[i + 1..].starts_with(b"7c")));
        if b.contains(&b'|') || escaped_pipe {
            return true;
        }
        let hexish = b.iter().all(|c| c.is_ascii_hexdigit() || *c == b'-');
        if hexish && b.iter().filter(|c| c.is_ascii_hexdigit()).count() >= 16 {
            return true;
        }
        let digits = b.iter().filter(|c| c.is_ascii_digit()).count();
        b.len() >= 16 && digits >= 2 && b.iter().all(|c| c.is_ascii_alphanumeric() || b"-_.".contains(c))
    }
}

#[test]
fn split_url_is_id_and_templates_agree_with_their_references() {
    // Strings built from the bytes these functions look at, plus letters, digits and non-ASCII.
    const PIECES: [&str; 24] = [
        "/", "?", "#", ":", "@", "[", "]", "%", "7C", "7c", "://", "|", "-", "_", ".", "a", "F", "g",
        "Z", "0", "9", "é", "http", "x1y2z3w4v5u6t7s8",
    ];
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut checked = 0;
    for _ in 0..200_000 {
        let len = (next() % 24) as usize;
        let s: String = (0..len).map(|_| PIECES[(next() % PIECES.len() as u64) as usize]).collect();
        assert_eq!(split_url(&s), reference::split_url(&s), "split_url({s:?})");
        assert_eq!(is_id(&s), reference::is_id(&s), "is_id({s:?})");
        let view = SpanView {
            url_path: Some(&s),
            ..SpanView::default()
        };
        let mut template = String::new();
        endpoint_template(&view, &mut template);
        assert_eq!(template, reference::path_template(&s), "template of {s:?}");
        checked += 1;
    }
    for s in ["", "https://", "https://@", "http://[::1", "a://b/c?d#e", "%7", "%7C", "1%7c"] {
        assert_eq!(split_url(s), reference::split_url(s), "split_url({s:?})");
        assert_eq!(is_id(s), reference::is_id(s), "is_id({s:?})");
    }
    assert_eq!(checked, 200_000);
}
