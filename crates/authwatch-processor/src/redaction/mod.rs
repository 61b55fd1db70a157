//! # `redaction` processor
//!
//! Removes credentials from traces, metrics and logs before they leave the process: the values
//! of credential attributes (`Authorization` and `Cookie` headers, passwords, client secrets,
//! tokens), token query parameters in URLs, JSON Web Tokens and `Bearer` / `Basic` credentials
//! anywhere in a string. Put it first in every pipeline that carries data from services you do
//! not control; every shipped config does.
//!
//! ```yaml
//! processors:
//!   redaction:
//!     action: mask                  # or `hash`
//!     blocked_keys: [authorization, cookie, set-cookie, password, ...]   # the defaults below
//!     allowed_keys: []
//!     blocked_query_params: [access_token, id_token, refresh_token, client_secret, password, code, token, ...]
//!     blocked_values: ['\b4[0-9]{12}(?:[0-9]{3})?\b']   # extra regexes, matched anywhere
//! ```
//!
//! ## Options
//!
//! | option | default | meaning |
//! | --- | --- | --- |
//! | `action` | `mask` | `mask` replaces a secret with `[REDACTED]`; `hash` with `sha256:` and the first 16 hex digits of its SHA-256, so equal values can still be correlated |
//! | `blocked_keys` | see below | attribute keys whose value is redacted whole |
//! | `allowed_keys` | `[]` | attribute keys left exactly as they are (no rule applies to them) |
//! | `blocked_query_params` | see below | query / form / fragment parameters whose value is redacted in any string |
//! | `blocked_values` | `[]` | regular expressions (Rust `regex` syntax); every match in any string value is redacted |
//!
//! Setting `blocked_keys` or `blocked_query_params` replaces the defaults; copy them and add.
//!
//! Default `blocked_keys`: `authorization`, `proxy-authorization`, `cookie`, `set-cookie`,
//! `password`, `passwd`, `client_secret`, `client_assertion`, `access_token`, `id_token`,
//! `refresh_token`, `api_key`, `apikey`, `private_key`, `session_token`.
//!
//! Default `blocked_query_params`: `access_token`, `id_token`, `refresh_token`,
//! `client_secret`, `client_assertion`, `password`, `code`, `code_verifier`, `token`, `api_key`.
//!
//! ## Rules
//!
//! Applied to resource, scope, span, span event, span link, log record, metric data point and
//! exemplar attributes (nested arrays and maps included), log bodies, span names, span event
//! names and span status messages:
//!
//! 1. **Keys.** An attribute whose key equals a blocked key or ends with one after `.`, `_` or
//!    `-` has its whole value replaced (case-insensitive, `-` and `_` alike): `authorization`
//!    covers `http.request.header.authorization` and `proxy_authorization`, `cookie` covers
//!    `http.response.header.set-cookie`, `api_key` covers `x-api-key`. Boolean values are kept
//!    (`user.has_password: true` is no secret).
//! 2. **Query parameters.** In any string, `name=value` of a blocked parameter at the start or
//!    after `?`, `&`, `#` or `;` has its value replaced: `url.full`, `http.url`, `url.query`,
//!    form bodies, implicit-flow fragments. The host, path and other parameters stay.
//! 3. **JSON fields.** In a string holding JSON, `"<blocked key>": "value"` has its value
//!    replaced (a log body such as `{"client_secret":"..."}`).
//! 4. **JWTs.** Three base64url segments whose header starts `eyJ`, anywhere in a string.
//! 5. **Credentials.** `Bearer <token>` and `Basic <credentials>` in a string keep the scheme and
//!    lose the credential (a plain word, as in "Basic authentication failed", is left alone).
//! 6. **`blocked_values`.** Every match of a configured pattern.
//!
//! Allowed keys are checked first and skip every rule. Values are scanned only when a cheap
//! byte test says a rule could match, so ordinary spans cost one pass over their keys.
//!
//! Where the next component takes protobuf bytes (the OTLP exporters, `batch` in front of them,
//! the `error_rate` connector), traces and logs are redacted in their bytes: the same rules walk
//! the encoded strings, a request with nothing to redact is passed on as it came, and only the
//! messages around a redacted value are rewritten. A blocked key whose value is not a plain
//! string, bytes or boolean makes the processor decode that request and redact it the owned way.
//! Metrics are always decoded.
//!
//! ## Self-telemetry
//!
//! `authwatch_processor_redactions_total{processor,pipeline,rule}` counts redacted values by
//! rule (`key`, `query`, `json`, `jwt`, `credential`, `value`), plus the usual
//! `authwatch_processor_accepted_*` counters.
//!
//! ## Not covered
//!
//! Secrets in bytes values, in attribute keys themselves, in metric names, URL-encoded
//! parameter names, and free-text forms such as `password: hunter2` (add a `blocked_values`
//! pattern). `hash` uses an unkeyed SHA-256: a guessable secret (a short password) can be
//! recovered from its hash by trying candidates, so prefer `mask` where correlation is not needed.

use std::sync::Arc;

use authwatch_core::telemetry::ProcessorTelemetry;
use authwatch_core::wire::Encoded;
use authwatch_core::{
    BuildError, Built, ComponentConfig, ConsumeError, Consumer, ProcessorConfig, ProcessorContext,
    SharedConsumer, Signal, SignalKind, Validator,
};
use futures::future::BoxFuture;
use authwatch_core::telemetry::{Counter, Family};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use tracing::info;

mod encoded;
mod rules;

use encoded::NeedsDecode;
use rules::{Counts, Redactor};

/// Default `blocked_keys`.
pub const DEFAULT_BLOCKED_KEYS: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
    "password",
    "passwd",
    "client_secret",
    "client_assertion",
    "access_token",
    "id_token",
    "refresh_token",
    "api_key",
    "apikey",
    "private_key",
    "session_token",
];

/// Default `blocked_query_params`.
pub const DEFAULT_BLOCKED_QUERY_PARAMS: &[&str] = &[
    "access_token",
    "id_token",
    "refresh_token",
    "client_secret",
    "client_assertion",
    "password",
    "code",
    "code_verifier",
    "token",
    "api_key",
];

/// The `redaction` processor's config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub action: Action,
    pub blocked_keys: Vec<String>,
    pub allowed_keys: Vec<String>,
    pub blocked_query_params: Vec<String>,
    pub blocked_values: Vec<Pattern>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            action: Action::Mask,
            blocked_keys: DEFAULT_BLOCKED_KEYS.iter().map(|s| s.to_string()).collect(),
            allowed_keys: Vec::new(),
            blocked_query_params: DEFAULT_BLOCKED_QUERY_PARAMS
                .iter()
                .map(|s| s.to_string())
                .collect(),
            blocked_values: Vec::new(),
        }
    }
}

/// What a secret becomes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// `[REDACTED]`.
    #[default]
    Mask,
    /// `sha256:` and 16 hex digits of the secret's SHA-256.
    Hash,
}

// === newtypes ===

/// A `blocked_values` regular expression, compiled when the config is decoded so that a bad
/// pattern is reported at its path.
#[derive(Debug, Clone)]
pub struct Pattern {
    regex: regex::Regex,
}

impl Pattern {
    pub fn as_str(&self) -> &str {
        self.regex.as_str()
    }
}

impl PartialEq for Pattern {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

/// Why a `blocked_values` pattern was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PatternError {
    #[error("pattern must not be empty: it would match everywhere")]
    Empty,
    #[error("invalid regular expression: {0}")]
    Regex(#[from] regex::Error),
    #[error(
        "pattern `{0}` matches the empty string, so it would redact between every character"
    )]
    MatchesEmpty(String),
}

impl std::str::FromStr for Pattern {
    type Err = PatternError;
    fn from_str(s: &str) -> Result<Self, PatternError> {
        if s.is_empty() {
            return Err(PatternError::Empty);
        }
        let regex = regex::Regex::new(s)?;
        if regex.is_match("") {
            return Err(PatternError::MatchesEmpty(s.to_owned()));
        }
        Ok(Pattern { regex })
    }
}

impl Serialize for Pattern {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Pattern {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

// === impl Config ===

impl ComponentConfig for Config {
    const TYPE: &'static str = "redaction";

    fn validate(&self, v: &mut Validator) {
        for key in &self.allowed_keys {
            let k = key.trim().to_ascii_lowercase().replace('-', "_");
            if self
                .blocked_keys
                .iter()
                .any(|b| b.trim().to_ascii_lowercase().replace('-', "_") == k)
            {
                v.warn(
                    "allowed_keys",
                    format!("`{key}` is also in `blocked_keys`; it is kept unredacted"),
                );
            }
        }
        if self.blocked_keys.iter().any(|k| k.trim().is_empty()) {
            v.error("blocked_keys", "must not contain an empty key");
        }
        if self
            .blocked_query_params
            .iter()
            .any(|k| k.trim().is_empty())
        {
            v.error("blocked_query_params", "must not contain an empty name");
        }
    }
}

impl ProcessorConfig for Config {
    async fn build(&self, cx: ProcessorContext) -> Result<Built, BuildError> {
        let redactor = Redactor::new(self)
            .map_err(BuildError::component)?;
        let pipeline = cx.pipeline.to_string();
        let family: Redactions = cx.settings.telemetry.metric(
            "processor_redactions",
            "Values a redaction processor redacted, by rule",
            Redactions::default,
        );
        let id = cx.settings.id.to_string();
        let counters = Counts::default().by_rule().map(|(rule, _)| {
            family
                .get_or_create(&vec![
                    ("processor".to_owned(), id.clone()),
                    ("pipeline".to_owned(), pipeline.clone()),
                    ("rule".to_owned(), rule.to_owned()),
                ])
                .clone()
        });
        info!(pipeline = %pipeline, action = ?self.action, "Redaction processor started.");
        Ok(Built {
            consumer: Arc::new(Redaction {
                redactor,
                counters,
                telemetry: cx.settings.telemetry.processor(&cx.settings.id, &pipeline),
                next: cx.next,
            }),
            task: None,
        })
    }
}

type Redactions = Family<Vec<(String, String)>, Counter>;

// === impl Redaction ===

/// The consumer: redacts in place, counts, hands on.
struct Redaction {
    redactor: Redactor,
    counters: [Counter; 6],
    telemetry: ProcessorTelemetry,
    next: SharedConsumer,
}

impl Redaction {
    fn redact(&self, data: &mut Signal, c: &mut Counts) {
        match data {
            Signal::Traces(r) => self.redactor.traces(r, c),
            Signal::Metrics(r) => self.redactor.metrics(r, c),
            Signal::Logs(r) => self.redactor.logs(r, c),
            Signal::Encoded(_) => unreachable!("decoded first"),
        }
    }

    /// Redacts encoded traces and logs as bytes; metrics, and bytes the walk cannot keep to
    /// the owned rules for, are decoded first.
    fn redact_any(&self, data: Signal, c: &mut Counts) -> Result<Signal, ConsumeError> {
        if let Signal::Encoded(e) = &data {
            let walked = match e.kind() {
                SignalKind::Traces => self.redactor.encoded_traces(e.bytes(), c),
                SignalKind::Logs => self.redactor.encoded_logs(e.bytes(), c),
                SignalKind::Metrics => Err(NeedsDecode),
            };
            match walked {
                Ok(None) => return Ok(data),
                Ok(Some(bytes)) => {
                    return Ok(Signal::Encoded(Encoded::new(
                        e.kind(),
                        bytes.into(),
                        e.items(),
                    )))
                }
                Err(NeedsDecode) => *c = Counts::default(),
            }
        }
        let mut data = data.into_decoded()?;
        self.redact(&mut data, c);
        Ok(data)
    }
}

impl Consumer for Redaction {
    /// Traces and logs are redacted as bytes, so the form the next component wants is kept.
    fn wants_encoded(&self) -> bool {
        self.next.wants_encoded()
    }

    fn consume(&self, data: Signal) -> BoxFuture<'_, Result<(), ConsumeError>> {
        let mut counts = Counts::default();
        let data = match self.redact_any(data, &mut counts) {
            Ok(d) => d,
            Err(e) => return Box::pin(async move { Err(e) }),
        };
        if counts.total() > 0 {
            for (counter, (_, n)) in self.counters.iter().zip(counts.by_rule()) {
                if n > 0 {
                    counter.inc_by(n);
                }
            }
        }
        self.telemetry.accepted(data.kind(), data.item_count());
        self.next.consume(data)
    }

    fn backlog(&self) -> authwatch_core::Backlog {
        self.next.backlog()
    }

    fn takes_live(&self) -> bool {
        self.next.takes_live()
    }

    /// Live data is redacted like any other before it goes on (it is not counted again: the
    /// normal lane carries the same data).
    fn consume_live(&self, data: Signal) -> BoxFuture<'_, Result<(), ConsumeError>> {
        match self.redact_any(data, &mut Counts::default()) {
            Ok(d) => self.next.consume_live(d),
            Err(e) => Box::pin(async move { Err(e) }),
        }
    }
}

/// What `crate::fuzzing` needs of the crate-private rules.
pub(crate) mod fuzzing {
    use super::encoded::NeedsDecode;
    pub(crate) use super::rules::{Counts, Redactor};
    use super::Config;
    use authwatch_core::SignalKind;

    pub(crate) enum Walked {
        Same,
        Changed(Vec<u8>),
        Decode,
    }

    /// The default rules, and `hash` with an allowed key and a `blocked_values` pattern.
    pub(crate) fn redactors() -> [(&'static str, Redactor); 2] {
        let hash: Config = serde_json::from_value(serde_json::json!({
            "action": "hash",
            "allowed_keys": ["allowed.password"],
            "blocked_values": ["4[0-9]{15}"],
        }))
        .expect("a valid config");
        [
            ("default", Redactor::new(&Config::default()).expect("default rules")),
            ("hash", Redactor::new(&hash).expect("hash rules")),
        ]
    }

    pub(crate) fn walk(r: &Redactor, kind: SignalKind, body: &[u8]) -> Walked {
        let mut c = Default::default();
        let walked = match kind {
            SignalKind::Traces => r.encoded_traces(body, &mut c),
            _ => r.encoded_logs(body, &mut c),
        };
        match walked {
            Ok(None) => Walked::Same,
            Ok(Some(b)) => Walked::Changed(b),
            Err(NeedsDecode) => Walked::Decode,
        }
    }
}

#[cfg(test)]
mod encoded_tests;
#[cfg(test)]
mod tests;
