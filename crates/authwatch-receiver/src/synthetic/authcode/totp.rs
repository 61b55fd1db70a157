//! The one-time code of an MFA page: RFC 6238 TOTP (HMAC-SHA1, 6 digits, 30 s steps, as
//! authenticator apps and Auth0's OTP factor use) through the `totp-rs` crate.

use totp_rs::{Algorithm, Secret, TOTP};

/// Why a `totp_secret` cannot be used. Never holds the secret.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum TotpError {
    #[error("`totp_secret` is not base32 (the letters A-Z and digits 2-7 shown at enrollment)")]
    NotBase32,
    #[error("`totp_secret` is empty")]
    Empty,
}

/// The key bytes of a base32 secret (spaces, dashes and lowercase accepted, padding optional).
pub(crate) fn key(secret: &str) -> Result<Vec<u8>, TotpError> {
    let cleaned: String = secret
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-' && *c != '=')
        .map(|c| c.to_ascii_uppercase())
        .collect();
    if cleaned.is_empty() {
        return Err(TotpError::Empty);
    }
    Secret::Encoded(cleaned)
        .to_bytes()
        .map_err(|_| TotpError::NotBase32)
}

/// The code for Unix time `unix_secs` with `digits` digits and SHA-1.
pub(crate) fn code_at(key: &[u8], unix_secs: u64, digits: usize) -> String {
    TOTP::new_unchecked(Algorithm::SHA1, digits, 1, 30, key.to_vec()).generate(unix_secs)
}

/// The current 6-digit code.
pub(crate) fn code_now(key: &[u8]) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    code_at(key, now, 6)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 appendix B, SHA-1 rows: the key is the ASCII of "12345678901234567890".
    #[test]
    fn rfc_6238_vectors() {
        let key = b"12345678901234567890";
        for (t, want) in [
            (59, "94287082"),
            (1_111_111_109, "07081804"),
            (1_111_111_111, "14050471"),
            (1_234_567_890, "89005924"),
            (2_000_000_000, "69279037"),
            (20_000_000_000, "65353130"),
        ] {
            assert_eq!(code_at(key, t, 8), want, "T = {t}");
        }
    }

    #[test]
    fn base32_secrets_as_shown_at_enrollment() {
        // "12345678901234567890" in base32.
        let k = key("GEZD GNBV GY3T QOJQ gezd gnbv gy3t qojq").unwrap();
        assert_eq!(k, b"12345678901234567890");
        assert_eq!(code_at(&k, 59, 6), "287082");
        assert_eq!(key("not base32 !"), Err(TotpError::NotBase32));
        assert_eq!(key("  "), Err(TotpError::Empty));
        assert_eq!(code_now(&k).len(), 6);
    }
}
