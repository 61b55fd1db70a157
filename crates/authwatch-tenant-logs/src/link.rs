//! `Link` headers (RFC 8288): the `rel="next"` target, kept on the configured origin.
//!
//! Auth0's `GET /api/v2/logs` and Okta's `GET /api/v1/logs` page with `Link: <url>; rel="next"`.
//! The next request carries the API token, so a next URL whose scheme, host or port differs from
//! the configured base is refused ([`LinkError::OtherOrigin`]): a compromised or misconfigured
//! proxy cannot make authwatch send the token elsewhere.

use http::header::LINK;
use http::HeaderMap;
use url::Url;

/// Why a `Link: rel="next"` was not followed. Shows the origin only, never the query.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    #[error("the `Link` header's next URL is not a URL")]
    Malformed,
    #[error("refusing the `Link` header's next URL on {found}: it is not the configured {expected}, and the request would carry the API token")]
    OtherOrigin { found: String, expected: String },
    #[error("the response has more than one `rel=\"next\"` link")]
    Ambiguous,
}

/// One link-value: the target as written, and its `rel` relation types (lower case).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkValue {
    pub target: String,
    pub rels: Vec<String>,
}

/// Every link-value of every `Link` header in `headers`; values that do not parse are skipped.
pub fn parse_links(headers: &HeaderMap) -> Vec<LinkValue> {
    headers
        .get_all(LINK)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(parse_link_header)
        .collect()
}

/// The link-values of one `Link` header value (`<a>; rel="next", <b>; rel=prev`).
pub fn parse_link_header(value: &str) -> Vec<LinkValue> {
    let mut out = Vec::new();
    let mut rest = value;
    loop {
        rest = rest.trim_start_matches(|c: char| c == ',' || c.is_whitespace());
        let Some(after_lt) = rest.strip_prefix('<') else {
            break;
        };
        let Some(end) = after_lt.find('>') else {
            break;
        };
        let target = after_lt[..end].trim().to_owned();
        rest = &after_lt[end + 1..];
        let mut rels = Vec::new();
        // Parameters up to the next top-level comma (commas inside quotes do not count).
        loop {
            rest = rest.trim_start();
            let Some(p) = rest.strip_prefix(';') else {
                break;
            };
            rest = p.trim_start();
            let name_end = rest
                .find(|c: char| c == '=' || c == ';' || c == ',' || c.is_whitespace())
                .unwrap_or(rest.len());
            let name = rest[..name_end].to_ascii_lowercase();
            rest = rest[name_end..].trim_start();
            let mut val = String::new();
            if let Some(p) = rest.strip_prefix('=') {
                rest = p.trim_start();
                if let Some(q) = rest.strip_prefix('"') {
                    let mut chars = q.char_indices();
                    let mut consumed = q.len();
                    while let Some((i, c)) = chars.next() {
                        match c {
                            '\\' => {
                                if let Some((_, n)) = chars.next() {
                                    val.push(n);
                                }
                            }
                            '"' => {
                                consumed = i + 1;
                                break;
                            }
                            c => val.push(c),
                        }
                    }
                    rest = &q[consumed..];
                } else {
                    let end = rest.find([';', ',']).unwrap_or(rest.len());
                    val = rest[..end].trim().to_owned();
                    rest = &rest[end..];
                }
            }
            // RFC 8288 §3: only the first `rel` counts.
            if name == "rel" && rels.is_empty() {
                rels = val
                    .split_ascii_whitespace()
                    .map(str::to_ascii_lowercase)
                    .collect();
            }
        }
        out.push(LinkValue { target, rels });
        // Skip anything up to the next link-value.
        match rest.find(',') {
            Some(i) => rest = &rest[i..],
            None => break,
        }
    }
    out
}

/// The `rel="next"` URL of a response to a request for `request_url`, resolved against it, if
/// there is one; refused unless it is on `base`'s origin (scheme, host and port).
pub fn next_link(
    headers: &HeaderMap,
    request_url: &Url,
    base: &Url,
) -> Result<Option<Url>, LinkError> {
    let mut nexts = parse_links(headers)
        .into_iter()
        .filter(|l| l.rels.iter().any(|r| r == "next"));
    let Some(next) = nexts.next() else {
        return Ok(None);
    };
    if nexts.any(|other| other.target != next.target) {
        return Err(LinkError::Ambiguous);
    }
    let url = request_url
        .join(&next.target)
        .map_err(|_| LinkError::Malformed)?;
    check_origin(&url, base)?;
    Ok(Some(url))
}

/// `url` is on `base`'s origin: same scheme, host and (effective) port, no user info.
pub fn check_origin(url: &Url, base: &Url) -> Result<(), LinkError> {
    let same = url.scheme() == base.scheme()
        && url.host() == base.host()
        && url.port_or_known_default() == base.port_or_known_default()
        && url.username().is_empty()
        && url.password().is_none();
    if same {
        Ok(())
    } else {
        Err(LinkError::OtherOrigin {
            found: origin(url),
            expected: origin(base),
        })
    }
}

/// `scheme://host[:port]`, for messages.
fn origin(u: &Url) -> String {
    match (u.host_str(), u.port()) {
        (Some(h), Some(p)) => format!("{}://{h}:{p}", u.scheme()),
        (Some(h), None) => format!("{}://{h}", u.scheme()),
        _ => format!("{}:", u.scheme()),
    }
}

#[cfg(test)]
#[path = "tests/link.rs"]
mod tests;
