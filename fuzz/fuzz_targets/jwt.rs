//! ID / access token validation: the `synthetic` receiver's header, JWKS, key, signature,
//! registered-claim and `require_claims` checks, against a fixed ES256 key.
//!
//! The first byte picks what the rest is:
//! - 0: a whole token string, validated against the fixed JWKS;
//! - 1: a claims payload (any bytes), signed with the fixed key, so the fuzzer reaches the
//!   claim checks; the signature must then always verify;
//! - 2: a JWKS document, against a fixed well-signed token.
#![no_main]

use std::sync::LazyLock;
use std::time::Duration;

use authwatch_receiver::fuzzing::jwt_validate;
use authwatch_receiver::synthetic::{Algorithm, TokenValidation};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::EncodingKey;
use libfuzzer_sys::fuzz_target;

/// A P-256 key made for this fuzzer only (PKCS#8), and its public half as a JWKS.
const KEY_PKCS8: &[u8] = include_bytes!("../keys/es256.pk8.der");
const JWKS: &[u8] = include_bytes!("../keys/jwks.json");
const KID: &str = "fuzz-es256";

static KEY: LazyLock<EncodingKey> = LazyLock::new(|| EncodingKey::from_ec_der(KEY_PKCS8));

static CFG: LazyLock<TokenValidation> = LazyLock::new(|| {
    let mut cfg = TokenValidation {
        issuer: Some("https://fuzz.example/".into()),
        audience: Some("https://api.fuzz.example".into()),
        algorithms: vec![Algorithm::RS256, Algorithm::PS256, Algorithm::ES256],
        leeway: Duration::from_secs(30),
        ..TokenValidation::default()
    };
    cfg.require_claims.insert(
        "https://fuzz.example/ran".into(),
        serde_json::Value::Bool(true),
    );
    cfg.require_claims
        .insert("gty".into(), serde_json::Value::Null);
    cfg.require_claims
        .insert("scope".into(), serde_json::Value::from("read"));
    cfg
});

/// `header.payload.signature` with the fixed key.
fn sign(header: &str, payload: &[u8]) -> String {
    let message = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(payload)
    );
    let sig = jsonwebtoken::crypto::sign(message.as_bytes(), &KEY, jsonwebtoken::Algorithm::ES256)
        .expect("the fixed key signs");
    format!("{message}.{sig}")
}

fn header() -> String {
    format!(r#"{{"alg":"ES256","typ":"JWT","kid":"{KID}"}}"#)
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    match which % 3 {
        0 => {
            if let Ok(token) = std::str::from_utf8(rest) {
                let _ = jwt_validate(token, JWKS, &CFG);
            }
        }
        1 => {
            let token = sign(&header(), rest);
            if let Err(e) = jwt_validate(&token, JWKS, &CFG) {
                assert!(
                    !matches!(
                        e.error_type,
                        "token_not_jwt"
                            | "token_algorithm"
                            | "jwks_invalid"
                            | "jwks_unknown_kid"
                            | "jwks_key"
                            | "invalid_signature"
                    ),
                    "a token signed with the JWKS key was refused: {e:?}"
                );
            }
        }
        _ => {
            let claims = br#"{"iss":"https://fuzz.example/","aud":"https://api.fuzz.example","exp":4102444800,"https://fuzz.example/ran":true,"gty":"password","scope":["read"]}"#;
            let token = sign(&header(), claims);
            let _ = jwt_validate(&token, rest, &CFG);
        }
    }
});
