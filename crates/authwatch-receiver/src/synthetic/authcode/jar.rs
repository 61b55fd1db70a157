//! A per-run cookie jar: what a browser keeps between the login pages (session, transaction
//! and CSRF cookies). Made new for every run and dropped with it, never shared. It follows
//! RFC 6265 where a login flow needs it: host-only and `Domain` cookies, `Path`, `Secure`,
//! and `Max-Age` deletion; bounded in count and size.

use http::{HeaderMap, HeaderValue};
use url::Url;

const MAX_COOKIES: usize = 64;
const MAX_COOKIE_LEN: usize = 8192;

struct Cookie {
    name: String,
    value: String,
    /// The host it was set by, or the `Domain` attribute (then subdomains match too).
    domain: String,
    host_only: bool,
    path: String,
    secure: bool,
}

/// The cookies of one run.
#[derive(Default)]
pub(crate) struct Jar {
    cookies: Vec<Cookie>,
}

fn domain_matches(host: &str, domain: &str) -> bool {
    host == domain
        || (host.len() > domain.len()
            && host.ends_with(domain)
            && host.as_bytes()[host.len() - domain.len() - 1] == b'.'
            && host.parse::<std::net::IpAddr>().is_err())
}

fn path_matches(request: &str, cookie: &str) -> bool {
    request == cookie
        || (request.starts_with(cookie)
            && (cookie.ends_with('/') || request.as_bytes().get(cookie.len()) == Some(&b'/')))
}

fn default_path(url: &Url) -> String {
    let p = url.path();
    match p.rfind('/') {
        Some(0) | None => "/".into(),
        Some(i) => p[..i].to_owned(),
    }
}

impl Jar {
    /// Keeps the `Set-Cookie` headers of a response from `url`.
    pub fn store(&mut self, url: &Url, headers: &HeaderMap) {
        let Some(host) = url.host_str().map(str::to_ascii_lowercase) else {
            return;
        };
        for v in headers.get_all(http::header::SET_COOKIE) {
            let Ok(v) = v.to_str() else { continue };
            if v.len() > MAX_COOKIE_LEN {
                continue;
            }
            let mut parts = v.split(';');
            let Some((name, value)) = parts.next().and_then(|nv| nv.split_once('=')) else {
                continue;
            };
            let (name, value) = (name.trim(), value.trim());
            if name.is_empty() {
                continue;
            }
            let mut c = Cookie {
                name: name.to_owned(),
                value: value.to_owned(),
                domain: host.clone(),
                host_only: true,
                path: default_path(url),
                secure: false,
            };
            let mut delete = false;
            for attr in parts {
                let (k, v) = attr.split_once('=').unwrap_or((attr, ""));
                let (k, v) = (k.trim().to_ascii_lowercase(), v.trim());
                match k.as_str() {
                    "domain" => {
                        let d = v.trim_start_matches('.').to_ascii_lowercase();
                        if d.is_empty() {
                            continue;
                        }
                        if !domain_matches(&host, &d) {
                            delete = true; // a cookie for another domain: ignored
                            c.name.clear();
                        }
                        c.domain = d;
                        c.host_only = false;
                    }
                    "path" if v.starts_with('/') => c.path = v.to_owned(),
                    "secure" => c.secure = true,
                    "max-age" => delete |= v.parse::<i64>().is_ok_and(|n| n <= 0),
                    "expires" => delete |= v.contains("1970"),
                    _ => {}
                }
            }
            if c.name.is_empty() {
                continue;
            }
            self.cookies.retain(|o| {
                !(o.name == c.name && o.domain == c.domain && o.path == c.path)
            });
            if !delete && self.cookies.len() < MAX_COOKIES {
                self.cookies.push(c);
            }
        }
    }

    /// The `Cookie` header for a request to `url` (marked sensitive), if any cookie matches.
    pub fn header(&self, url: &Url) -> Option<HeaderValue> {
        let host = url.host_str()?.to_ascii_lowercase();
        let https = url.scheme() == "https";
        let pairs: Vec<String> = self
            .cookies
            .iter()
            .filter(|c| {
                (if c.host_only {
                    host == c.domain
                } else {
                    domain_matches(&host, &c.domain)
                }) && path_matches(url.path(), &c.path)
                    && (https || !c.secure)
            })
            .map(|c| format!("{}={}", c.name, c.value))
            .collect();
        if pairs.is_empty() {
            return None;
        }
        let mut v = HeaderValue::from_str(&pairs.join("; ")).ok()?;
        v.set_sensitive(true);
        Some(v)
    }

    /// Every cookie value, to scrub them from messages.
    pub fn values(&self) -> impl Iterator<Item = &str> {
        self.cookies.iter().map(|c| c.value.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(jar: &mut Jar, url: &str, cookies: &[&str]) {
        let mut h = HeaderMap::new();
        for c in cookies {
            h.append(http::header::SET_COOKIE, c.parse().unwrap());
        }
        jar.store(&Url::parse(url).unwrap(), &h);
    }

    fn get(jar: &Jar, url: &str) -> Option<String> {
        jar.header(&Url::parse(url).unwrap())
            .map(|v| v.to_str().unwrap().to_owned())
    }

    #[test]
    fn host_domain_path_secure_and_deletion() {
        let mut jar = Jar::default();
        set(
            &mut jar,
            "https://login.example.com/u/login?state=x",
            &[
                "did=abc; Path=/; Secure; HttpOnly; SameSite=None",
                "auth0=s1; Path=/u",
                "wide=w; Domain=.example.com; Path=/",
                "evil=e; Domain=other.com",
            ],
        );
        assert_eq!(
            get(&jar, "https://login.example.com/u/login/password").as_deref(),
            Some("did=abc; auth0=s1; wide=w")
        );
        // Host-only cookies stay with their host; Domain cookies reach subdomains.
        assert_eq!(get(&jar, "https://api.example.com/").as_deref(), Some("wide=w"));
        assert_eq!(get(&jar, "https://other.com/"), None);
        // Path: /u does not match /user; Secure is not sent over http.
        assert_eq!(
            get(&jar, "http://login.example.com/user").as_deref(),
            Some("wide=w")
        );
        set(&mut jar, "https://login.example.com/", &["did=; Path=/; Max-Age=0"]);
        assert_eq!(
            get(&jar, "https://login.example.com/").as_deref(),
            Some("wide=w")
        );
        assert!(jar.header(&Url::parse("https://example.org/").unwrap()).is_none());
        assert!(jar.values().any(|v| v == "s1"));
        assert!(jar
            .header(&Url::parse("https://login.example.com/u").unwrap())
            .unwrap()
            .is_sensitive());
    }

    #[test]
    fn bounded() {
        let mut jar = Jar::default();
        let many: Vec<String> = (0..200).map(|i| format!("c{i}=v")).collect();
        let refs: Vec<&str> = many.iter().map(String::as_str).collect();
        set(&mut jar, "https://a.example/", &refs);
        assert_eq!(jar.values().count(), MAX_COOKIES);
        let big = format!("big={}", "x".repeat(MAX_COOKIE_LEN));
        set(&mut jar, "https://b.example/", &[&big]);
        assert_eq!(get(&jar, "https://b.example/"), None);
    }
}
