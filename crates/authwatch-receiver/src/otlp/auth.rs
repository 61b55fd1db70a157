//! `auth.bearer_token`: every request must carry `Authorization: Bearer <token>` (gRPC metadata
//! `authorization`). The token is compared in constant time; a request without it is answered
//! `UNAUTHENTICATED` / `401` before its body is read, so nothing enters the pipelines, and is
//! counted in `authwatch_receiver_unauthenticated_requests_total`.

use authwatch_core::config::Secret;
use authwatch_core::{ComponentId, Validator};
use authwatch_core::telemetry::{Counter, Family};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

/// `protocols.<grpc|http>.auth`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// The token clients send as `Authorization: Bearer <token>`. Write it as
    /// `${env:OTLP_BEARER_TOKEN}` rather than in the file.
    pub bearer_token: Secret,
}

impl AuthConfig {
    /// Cross-field rules at `at` (e.g. `protocols::http::auth`).
    pub fn validate(&self, v: &mut Validator, at: &str) {
        let token = self.bearer_token.expose();
        if token.is_empty() {
            v.error(
                &format!("{at}::bearer_token"),
                "must be set, e.g. `${env:OTLP_BEARER_TOKEN}`; remove `auth` to accept every client",
            );
        } else if token.bytes().any(|b| !b.is_ascii_graphic()) {
            v.error(
                &format!("{at}::bearer_token"),
                "must be printable ASCII without spaces; a client could never send it in a header",
            );
        }
    }
}

/// Requests refused for a missing or wrong token, by receiver and transport.
type Refusals = Family<Vec<(String, String)>, Counter>;

/// The runtime check, one per protocol.
#[derive(Debug, Clone)]
pub(crate) struct BearerAuth {
    token: Secret,
    refused: Counter,
}

impl BearerAuth {
    pub(crate) fn new(
        config: &AuthConfig,
        telemetry: &authwatch_core::telemetry::Telemetry,
        id: &ComponentId,
        transport: &str,
    ) -> Self {
        let family: Refusals = telemetry.metric(
            "receiver_unauthenticated_requests",
            "Requests a receiver refused for a missing or wrong credential",
            Refusals::default,
        );
        let refused = family
            .get_or_create(&vec![
                ("receiver".to_owned(), id.to_string()),
                ("transport".to_owned(), transport.to_owned()),
            ])
            .clone();
        BearerAuth {
            token: config.bearer_token.clone(),
            refused,
        }
    }

    /// Whether an `Authorization` value carries the configured token; counts a refusal if not.
    pub(crate) fn check(&self, authorization: Option<&[u8]>) -> bool {
        let ok = authorization.is_some_and(|v| bearer_matches(v, self.token.expose().as_bytes()));
        if !ok {
            self.refused.inc();
        }
        ok
    }
}

/// `Bearer <token>` (scheme case-insensitive, as RFC 7235 says) against `want`, in constant time
/// over the token's bytes. Only the length of the token can be learnt from timing.
fn bearer_matches(value: &[u8], want: &[u8]) -> bool {
    const SCHEME: &[u8] = b"bearer";
    if want.is_empty() || value.len() <= SCHEME.len() {
        return false;
    }
    let (scheme, rest) = value.split_at(SCHEME.len());
    if !scheme.eq_ignore_ascii_case(SCHEME) || rest.first() != Some(&b' ') {
        return false;
    }
    let got = rest.trim_ascii();
    bool::from(got.ct_eq(want))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_values() {
        let want = b"s3cr3t-t0ken";
        assert!(bearer_matches(b"Bearer s3cr3t-t0ken", want));
        assert!(bearer_matches(b"bearer  s3cr3t-t0ken ", want));
        assert!(bearer_matches(b"BEARER s3cr3t-t0ken", want));
        assert!(!bearer_matches(b"Bearer s3cr3t-t0keN", want));
        assert!(!bearer_matches(b"Bearer s3cr3t-t0ken2", want));
        assert!(!bearer_matches(b"Bearer s3cr3t", want));
        assert!(!bearer_matches(b"Basic s3cr3t-t0ken", want));
        assert!(!bearer_matches(b"Bearers3cr3t-t0ken", want));
        assert!(!bearer_matches(b"s3cr3t-t0ken", want));
        assert!(!bearer_matches(b"Bearer ", want));
        assert!(!bearer_matches(b"", want));
        assert!(!bearer_matches(b"Bearer ", b""));
    }

    #[test]
    fn refusals_are_counted() {
        let t = authwatch_core::telemetry::Telemetry::new();
        let id: ComponentId = "otlp".parse().unwrap();
        let a = BearerAuth::new(
            &AuthConfig {
                bearer_token: Secret::new("tok"),
            },
            &t,
            &id,
            "grpc",
        );
        assert!(a.check(Some(b"Bearer tok")));
        assert!(!a.check(None));
        assert!(!a.check(Some(b"Bearer nope")));
        let text = t.encode();
        assert!(
            text.contains(
                r#"authwatch_receiver_unauthenticated_requests_total{receiver="otlp",transport="grpc"} 2"#
            ),
            "{text}"
        );
    }

    #[test]
    fn validation() {
        let errors = |token: &str| {
            let mut v = Validator::new("receivers::otlp");
            AuthConfig {
                bearer_token: Secret::new(token),
            }
            .validate(&mut v, "protocols::http::auth");
            v.errors().iter().map(|e| e.to_string()).collect::<Vec<_>>()
        };
        assert!(errors("abc").is_empty());
        assert_eq!(errors(""), ["receivers::otlp::protocols::http::auth::bearer_token: must be set, e.g. `${env:OTLP_BEARER_TOKEN}`; remove `auth` to accept every client"]);
        assert_eq!(errors("a b").len(), 1);
    }
}
