//! `http` check assertions: status, headers, body regex, JSON paths, response time.

use std::time::Duration;

use super::client::Response;
use super::Expect;

/// A failed assertion: which kind (`error.type`) and a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Failed {
    pub kind: &'static str,
    pub message: String,
}

fn failed(kind: &'static str, message: String) -> Failed {
    Failed { kind, message }
}

/// Whether `status` is accepted (any 2xx when none are configured).
pub(crate) fn status_ok(expect: &Expect, status: u16) -> bool {
    if expect.status.is_empty() {
        (200..300).contains(&status)
    } else {
        expect.status.iter().any(|m| m.matches(status))
    }
}

/// Checks everything but the status; the first failure wins.
pub(crate) fn check(expect: &Expect, resp: &Response, elapsed: Duration) -> Result<(), Failed> {
    for h in &expect.headers {
        let Some(value) = resp.headers.get(h.name.as_str()) else {
            return Err(failed(
                "assert_header",
                format!("response header `{}` is missing", h.name),
            ));
        };
        if let Some(re) = &h.regex {
            let text = value.to_str().unwrap_or("");
            if !re.0.is_match(text) {
                return Err(failed(
                    "assert_header",
                    format!(
                        "response header `{}` does not match /{}/",
                        h.name,
                        re.0.as_str()
                    ),
                ));
            }
        }
    }
    if let Some(re) = &expect.body_regex {
        let body = String::from_utf8_lossy(&resp.body);
        if !re.0.is_match(&body) {
            return Err(failed(
                "assert_body",
                format!("the body does not match /{}/", re.0.as_str()),
            ));
        }
    }
    if !expect.json.is_empty() {
        let doc: serde_json::Value = serde_json::from_slice(&resp.body)
            .map_err(|e| failed("assert_json", format!("the body is not JSON: {e}")))?;
        for a in &expect.json {
            let found = a.path.get(&doc);
            match (&a.equals, a.exists, found) {
                (Some(want), _, Some(got)) if want == got => {}
                (Some(want), _, Some(got)) => {
                    return Err(failed(
                        "assert_json",
                        format!("`{}` is {got}, expected {want}", a.path.as_str()),
                    ))
                }
                (Some(_), _, None) | (None, Some(true) | None, None) => {
                    return Err(failed(
                        "assert_json",
                        format!("`{}` is missing", a.path.as_str()),
                    ))
                }
                (None, Some(false), Some(_)) => {
                    return Err(failed(
                        "assert_json",
                        format!("`{}` is present but must not be", a.path.as_str()),
                    ))
                }
                (None, _, _) => {}
            }
        }
    }
    if let Some(max) = expect.max_response_time {
        if elapsed > max {
            return Err(failed(
                "assert_response_time",
                format!(
                    "the request took {} ms, more than the allowed {} ms",
                    elapsed.as_millis(),
                    max.as_millis()
                ),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::{JsonAssertion, JsonPath, StatusMatch};
    use super::*;

    fn resp(body: &str) -> Response {
        let mut headers = http::HeaderMap::new();
        headers.insert("content-type", "application/json".parse().unwrap());
        Response {
            status: 200,
            headers,
            body: bytes::Bytes::from(body.to_owned()),
        }
    }

    #[test]
    fn json_paths_and_status_classes() {
        let mut e = Expect::default();
        assert!(status_ok(&e, 204));
        assert!(!status_ok(&e, 301));
        e.status = vec![StatusMatch::Code(301), StatusMatch::Class(4)];
        assert!(status_ok(&e, 301) && status_ok(&e, 404) && !status_ok(&e, 200));

        let r = resp(r#"{"keys":[{"kid":"k1"}],"issuer":"https://x/"}"#);
        e.json = vec![
            JsonAssertion {
                path: JsonPath::parse("$.keys[0].kid").unwrap(),
                equals: Some("k1".into()),
                exists: None,
            },
            JsonAssertion {
                path: JsonPath::parse("issuer").unwrap(),
                equals: None,
                exists: None,
            },
        ];
        assert_eq!(check(&e, &r, Duration::ZERO), Ok(()));
        e.json.push(JsonAssertion {
            path: JsonPath::parse("$[\"a.b\"]").unwrap(),
            equals: None,
            exists: Some(true),
        });
        let f = check(&e, &r, Duration::ZERO).unwrap_err();
        assert_eq!(f.kind, "assert_json");
        assert!(f.message.contains("a.b"), "{}", f.message);
        assert!(JsonPath::parse("$.a[x]").is_err());
        assert!(JsonPath::parse("$.a..b").is_err());
    }
}
