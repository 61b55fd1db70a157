//! The outcome taxonomy: one outcome per run, documented in docs/synthetic.md.

use serde::Serialize;

/// How a run ended. Exactly one per run; `success` is the only passing one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Every request answered as expected and every assertion held.
    Success,
    /// The host name did not resolve.
    Dns,
    /// No TCP connection (refused, unreachable).
    Connect,
    /// The TLS handshake failed (untrusted, expired or mismatched certificate, ...).
    Tls,
    /// The run did not finish within its timeout.
    Timeout,
    /// An unexpected HTTP status without an OAuth error code (5xx, or 4xx without `error`).
    HttpStatus,
    /// HTTP 429 other than `too_many_attempts`: the tenant's rate limit.
    RateLimited,
    /// The token endpoint answered an OAuth error (`oauth.error` holds the provider's code).
    OauthError,
    /// The token failed validation (not a JWT, unknown key, bad signature, expired, wrong
    /// issuer or audience).
    InvalidToken,
    /// A required claim is missing or has another value: the rules/Actions did not run.
    MissingClaim,
    /// An `http` check assertion failed (status, header, body, JSON, response time).
    Assertion,
    /// `authorization_code`: no login form where one was expected (the page's markup
    /// changed), or a form that would send the credentials to a host not allowed.
    LoginPageChanged,
    /// `authorization_code`: the page came back with its form and an error (wrong
    /// credentials, a blocked user, a refused one-time code).
    LoginRejected,
    /// `authorization_code`: an MFA page, and no `totp_secret` to answer it.
    MfaRequired,
    /// `authorization_code`: a consent page, and `consent` is not `accept`.
    ConsentRequired,
    /// `authorization_code`: a CAPTCHA or bot-detection challenge.
    BotChallenge,
    /// `authorization_code`: more redirects than `max_redirects`.
    RedirectLoop,
}

impl Outcome {
    pub const ALL: [Outcome; 17] = [
        Outcome::Success,
        Outcome::Dns,
        Outcome::Connect,
        Outcome::Tls,
        Outcome::Timeout,
        Outcome::HttpStatus,
        Outcome::RateLimited,
        Outcome::OauthError,
        Outcome::InvalidToken,
        Outcome::MissingClaim,
        Outcome::Assertion,
        Outcome::LoginPageChanged,
        Outcome::LoginRejected,
        Outcome::MfaRequired,
        Outcome::ConsentRequired,
        Outcome::BotChallenge,
        Outcome::RedirectLoop,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Dns => "dns",
            Outcome::Connect => "connect",
            Outcome::Tls => "tls",
            Outcome::Timeout => "timeout",
            Outcome::HttpStatus => "http_status",
            Outcome::RateLimited => "rate_limited",
            Outcome::OauthError => "oauth_error",
            Outcome::InvalidToken => "invalid_token",
            Outcome::MissingClaim => "missing_claim",
            Outcome::Assertion => "assertion",
            Outcome::LoginPageChanged => "login_page_changed",
            Outcome::LoginRejected => "login_rejected",
            Outcome::MfaRequired => "mfa_required",
            Outcome::ConsentRequired => "consent_required",
            Outcome::BotChallenge => "bot_challenge",
            Outcome::RedirectLoop => "redirect_loop",
        }
    }

    pub fn is_success(self) -> bool {
        self == Outcome::Success
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
