//! Token validation: JWKS parsing and key selection, signature and registered claims through
//! `jsonwebtoken` (ring), and the configured `require_claims`.

use std::time::Duration;

use jsonwebtoken::jwk::Jwk;
use serde_json::{Map, Value};

use super::outcome::Outcome;
use super::{Algorithm, TokenValidation};

/// Why a token did not pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TokenFailure {
    pub outcome: Outcome,
    /// Low-cardinality `error.type`.
    pub error_type: &'static str,
    pub message: String,
}

fn invalid(error_type: &'static str, message: impl Into<String>) -> TokenFailure {
    TokenFailure {
        outcome: Outcome::InvalidToken,
        error_type,
        message: message.into(),
    }
}

impl Algorithm {
    fn to_jwt(self) -> jsonwebtoken::Algorithm {
        use jsonwebtoken::Algorithm as A;
        match self {
            Algorithm::RS256 => A::RS256,
            Algorithm::RS384 => A::RS384,
            Algorithm::RS512 => A::RS512,
            Algorithm::PS256 => A::PS256,
            Algorithm::PS384 => A::PS384,
            Algorithm::PS512 => A::PS512,
            Algorithm::ES256 => A::ES256,
            Algorithm::ES384 => A::ES384,
        }
    }
}

/// The parts of a JWT header the probe uses.
#[derive(Debug, Clone)]
pub(crate) struct TokenHeader {
    pub alg: jsonwebtoken::Algorithm,
    pub kid: Option<String>,
}

/// Reads the header and checks the algorithm is allowed.
pub(crate) fn header(token: &str, cfg: &TokenValidation) -> Result<TokenHeader, TokenFailure> {
    if token.split('.').count() != 3 {
        return Err(invalid(
            "token_not_jwt",
            "the token is not a signed JWT (with Auth0, an access token is a JWT only when `audience` names an API; otherwise validate the id_token)",
        ));
    }
    let h = jsonwebtoken::decode_header(token).map_err(|e| {
        invalid(
            "token_not_jwt",
            format!("the token header cannot be read: {e}"),
        )
    })?;
    if !cfg.algorithms.iter().any(|a| a.to_jwt() == h.alg) {
        return Err(invalid(
            "token_algorithm",
            format!(
                "the token is signed with {:?}, which is not in `algorithms`",
                h.alg
            ),
        ));
    }
    Ok(TokenHeader {
        alg: h.alg,
        kid: h.kid,
    })
}

/// Why a JWKS document was refused.
#[derive(Debug, thiserror::Error)]
pub(crate) enum JwksError {
    #[error("the JWKS is not JSON: {0}")]
    NotJson(#[from] serde_json::Error),
    #[error("the JWKS has no `keys` list")]
    NoKeys,
}

/// Parses a JWKS document, keeping the keys this crate understands.
pub(crate) fn parse_jwks(body: &[u8]) -> Result<Vec<Jwk>, JwksError> {
    let v: Value = serde_json::from_slice(body)?;
    let keys = v
        .get("keys")
        .and_then(Value::as_array)
        .ok_or(JwksError::NoKeys)?;
    Ok(keys
        .iter()
        .filter_map(|k| serde_json::from_value::<Jwk>(k.clone()).ok())
        .collect())
}

/// The key for a token: by `kid`, or the only key when the token has no `kid`.
pub(crate) fn find_key<'a>(keys: &'a [Jwk], kid: Option<&str>) -> Option<&'a Jwk> {
    match kid {
        Some(kid) => keys
            .iter()
            .find(|k| k.common.key_id.as_deref() == Some(kid)),
        None if keys.len() == 1 => keys.first(),
        None => None,
    }
}

/// Verifies the signature and the registered claims; returns the claims.
pub(crate) fn verify(
    token: &str,
    header: &TokenHeader,
    key: &Jwk,
    cfg: &TokenValidation,
) -> Result<Map<String, Value>, TokenFailure> {
    let decoding = jsonwebtoken::DecodingKey::from_jwk(key)
        .map_err(|e| invalid("jwks_key", format!("the signing key cannot be used: {e}")))?;
    let mut v = jsonwebtoken::Validation::new(header.alg);
    v.leeway = cfg.leeway.as_secs();
    v.validate_exp = true;
    v.validate_nbf = true;
    let mut required = vec!["exp"];
    match &cfg.issuer {
        Some(iss) => {
            v.set_issuer(&[iss]);
            required.push("iss");
        }
        None => v.iss = None,
    }
    match &cfg.audience {
        Some(aud) => {
            v.set_audience(&[aud]);
            required.push("aud");
        }
        None => v.validate_aud = false,
    }
    v.set_required_spec_claims(&required);
    let data = jsonwebtoken::decode::<Map<String, Value>>(token, &decoding, &v).map_err(|e| {
        use jsonwebtoken::errors::ErrorKind as K;
        let (kind, what) = match e.kind() {
            K::InvalidSignature => ("invalid_signature", "the signature does not verify"),
            K::ExpiredSignature => ("token_expired", "the token has expired (`exp`)"),
            K::ImmatureSignature => ("token_not_yet_valid", "the token is not valid yet (`nbf`)"),
            K::InvalidIssuer => ("invalid_issuer", "`iss` is not the configured issuer"),
            K::InvalidAudience => (
                "invalid_audience",
                "`aud` does not contain the configured audience",
            ),
            K::MissingRequiredClaim(_) => {
                ("missing_registered_claim", "a registered claim is missing")
            }
            K::InvalidAlgorithm => (
                "token_algorithm",
                "the key does not match the token's algorithm",
            ),
            _ => ("invalid_token", "the token is malformed"),
        };
        invalid(kind, format!("{what}: {e}"))
    })?;
    Ok(data.claims)
}

/// Checks `require_claims`; returns the checked claims with their values, for reports.
pub(crate) fn check_claims(
    claims: &Map<String, Value>,
    cfg: &TokenValidation,
) -> Result<Vec<(String, String)>, TokenFailure> {
    let mut seen = Vec::new();
    for (name, expected) in &cfg.require_claims {
        let Some(actual) = claims.get(name) else {
            return Err(TokenFailure {
                outcome: Outcome::MissingClaim,
                error_type: "missing_claim",
                message: format!(
                    "claim `{name}` is missing from the token: the rule or Action that sets it did not run, or the claim collided"
                ),
            });
        };
        let ok = match (expected, actual) {
            (Value::Null, _) => true,
            (e, Value::Array(items)) if !e.is_array() => items.contains(e),
            (e, a) => e == a,
        };
        if !ok {
            return Err(TokenFailure {
                outcome: Outcome::MissingClaim,
                error_type: "claim_mismatch",
                message: format!("claim `{name}` is {actual}, expected {expected}"),
            });
        }
        seen.push((name.clone(), short(actual)));
    }
    Ok(seen)
}

fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.len() > 80 {
        let mut end = 77;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}...", &s[..end])
    } else {
        s
    }
}

/// Cached signing keys.
pub(crate) struct KeyCache {
    pub keys: Vec<Jwk>,
    pub fetched: tokio::time::Instant,
}

impl KeyCache {
    pub fn is_fresh(&self, ttl: Duration) -> bool {
        self.fetched.elapsed() < ttl
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_compare_values_lists_and_presence() {
        let claims: Map<String, Value> = serde_json::from_value(serde_json::json!({
            "https://x/ran": true, "gty": "password", "aud": ["a", "b"]
        }))
        .unwrap();
        let mut cfg = TokenValidation::default();
        cfg.require_claims
            .insert("https://x/ran".into(), Value::Bool(true));
        cfg.require_claims.insert("aud".into(), Value::from("b"));
        cfg.require_claims.insert("gty".into(), Value::Null);
        let seen = check_claims(&claims, &cfg).unwrap();
        assert_eq!(seen.len(), 3);
        cfg.require_claims
            .insert("gty".into(), Value::from("client-credentials"));
        let e = check_claims(&claims, &cfg).unwrap_err();
        assert_eq!(
            (e.outcome, e.error_type),
            (Outcome::MissingClaim, "claim_mismatch")
        );
        cfg.require_claims.clear();
        cfg.require_claims.insert("nope".into(), Value::Null);
        let e = check_claims(&claims, &cfg).unwrap_err();
        assert_eq!(e.error_type, "missing_claim");
    }

    #[test]
    fn opaque_tokens_are_not_jwts() {
        let e = header("abc.def", &TokenValidation::default()).unwrap_err();
        assert_eq!(e.error_type, "token_not_jwt");
        // alg "none" is refused before any key is looked at.
        let e = header(
            "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.",
            &TokenValidation::default(),
        )
        .unwrap_err();
        assert_eq!(e.outcome, Outcome::InvalidToken);
    }
}
