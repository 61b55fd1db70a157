use http::HeaderValue;

use super::*;

fn headers(values: &[&str]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for v in values {
        h.append(LINK, HeaderValue::from_str(v).unwrap());
    }
    h
}

fn url(s: &str) -> Url {
    Url::parse(s).unwrap()
}

#[test]
fn parses_auth0_and_okta_shapes() {
    // Auth0 (one header, comma separated) and Okta (one header per link).
    let v = parse_link_header(
        r#"<https://t.auth0.com/api/v2/logs?from=900&take=100>; rel="next", <https://t.auth0.com/api/v2/logs?take=100>; rel=self"#,
    );
    assert_eq!(
        v,
        vec![
            LinkValue {
                target: "https://t.auth0.com/api/v2/logs?from=900&take=100".into(),
                rels: vec!["next".into()]
            },
            LinkValue {
                target: "https://t.auth0.com/api/v2/logs?take=100".into(),
                rels: vec!["self".into()]
            },
        ]
    );
    let h = headers(&[
        r#"<https://o.okta.com/api/v1/logs?since=x>; rel="self""#,
        r#"<https://o.okta.com/api/v1/logs?after=1,2>; rel="next""#,
    ]);
    assert_eq!(
        next_link(
            &h,
            &url("https://o.okta.com/api/v1/logs"),
            &url("https://o.okta.com")
        )
        .unwrap(),
        Some(url("https://o.okta.com/api/v1/logs?after=1,2"))
    );
}

#[test]
fn relation_lists_quotes_and_extra_params() {
    let v = parse_link_header(
        r##"<a>; title="x, y; z"; rel="prev NEXT", <b>; rel=next; rel=self, <c>; anchor="#a""##,
    );
    assert_eq!(v.len(), 3, "{v:?}");
    assert_eq!(v[0].rels, vec!["prev", "next"]);
    assert_eq!(v[1].rels, vec!["next"], "only the first rel counts");
    assert!(v[2].rels.is_empty());
}

#[test]
fn no_next_and_garbage() {
    let base = url("https://t.auth0.com/");
    let req = url("https://t.auth0.com/api/v2/logs");
    assert_eq!(next_link(&HeaderMap::new(), &req, &base), Ok(None));
    for bad in ["", "garbage", "<unterminated", ";;;", "<>", r#"<x>; rel="#] {
        // Never panics; whatever comes out is resolved against the request.
        let _ = next_link(&headers(&[bad]), &req, &base);
    }
    assert_eq!(
        next_link(&headers(&[r#"<x>; rel="self""#]), &req, &base),
        Ok(None)
    );
}

#[test]
fn relative_targets_resolve_against_the_request() {
    let base = url("https://t.auth0.com/");
    let req = url("https://t.auth0.com/api/v2/logs?from=1&take=100");
    assert_eq!(
        next_link(
            &headers(&[r#"</api/v2/logs?from=2&take=100>; rel="next""#]),
            &req,
            &base
        ),
        Ok(Some(url("https://t.auth0.com/api/v2/logs?from=2&take=100")))
    );
}

#[test]
fn another_origin_is_refused() {
    let base = url("https://t.auth0.com/api/v2/");
    let req = url("https://t.auth0.com/api/v2/logs");
    for (target, found) in [
        (
            "https://evil.example/api/v2/logs?from=2",
            "https://evil.example",
        ),
        (
            "http://t.auth0.com/api/v2/logs?from=2",
            "http://t.auth0.com",
        ),
        (
            "https://t.auth0.com:8443/api/v2/logs",
            "https://t.auth0.com:8443",
        ),
        (
            "https://t.auth0.com.evil.example/x",
            "https://t.auth0.com.evil.example",
        ),
        ("//evil.example/x", "https://evil.example"),
    ] {
        let err = next_link(
            &headers(&[&format!("<{target}>; rel=\"next\"")]),
            &req,
            &base,
        )
        .unwrap_err();
        assert_eq!(
            err,
            LinkError::OtherOrigin {
                found: found.into(),
                expected: "https://t.auth0.com".into()
            },
            "{target}"
        );
        assert!(!err.to_string().contains("from=2"), "{err}");
    }
    // User info would change who the request authenticates as.
    assert!(next_link(
        &headers(&["<https://u:p@t.auth0.com/x>; rel=next"]),
        &req,
        &base
    )
    .is_err());
    // The default port written out is the same origin.
    assert!(next_link(
        &headers(&["<https://t.auth0.com:443/x>; rel=next"]),
        &req,
        &base
    )
    .unwrap()
    .is_some());
    // Loopback with a port, as in the tests.
    let base = url("http://127.0.0.1:4000");
    assert!(check_origin(&url("http://127.0.0.1:4000/a"), &base).is_ok());
    assert!(check_origin(&url("http://127.0.0.1:4001/a"), &base).is_err());
    assert!(check_origin(&url("http://localhost:4000/a"), &base).is_err());
}

#[test]
fn two_different_next_links_are_ambiguous() {
    let req = url("https://t.auth0.com/x");
    let h = headers(&[
        "<https://t.auth0.com/a>; rel=next",
        "<https://t.auth0.com/b>; rel=next",
    ]);
    assert_eq!(next_link(&h, &req, &req), Err(LinkError::Ambiguous));
    let h = headers(&[
        "<https://t.auth0.com/a>; rel=next",
        "<https://t.auth0.com/a>; rel=next",
    ]);
    assert!(next_link(&h, &req, &req).unwrap().is_some());
}
