//! Entry points for the cargo-fuzz targets in `fuzz/`: thin `pub` wrappers over the
//! crate-private decoders, so the fuzzers run exactly the code the receivers run. Not an API:
//! hidden from the docs and free to change with the code it wraps.

use authwatch_core::otlp::collector::logs::v1::ExportLogsServiceRequest;
use authwatch_core::otlp::collector::metrics::v1::ExportMetricsServiceRequest;
use authwatch_core::otlp::collector::trace::v1::ExportTraceServiceRequest;
use authwatch_core::otlp::logs::v1::LogRecord;
use authwatch_core::SignalKind;

pub use crate::auth0_logs::decode::DecodeError as Auth0DecodeError;
pub use crate::otlp::json::JsonError as OtlpJsonError;
pub use crate::statuspage::parse::ParseError as StatusParseError;

use crate::otlp::ingest::Export;
use crate::statuspage::Format;
use crate::synthetic::TokenValidation;

/// What the OTLP receiver dropped from a request as invalid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    pub count: usize,
    pub message: String,
}

fn drop_one<R: Export>(req: &mut R) -> Option<Rejected> {
    let rejected = req.drop_invalid();
    // Both response encodings, as the transports build them.
    let _ = R::response(rejected.clone());
    let _ = R::response_json(rejected.as_ref());
    rejected.map(|r| Rejected {
        count: r.count,
        message: r.message,
    })
}

/// One decoded OTLP export request.
#[derive(Debug, Clone, PartialEq)]
pub enum OtlpRequest {
    Traces(ExportTraceServiceRequest),
    Metrics(ExportMetricsServiceRequest),
    Logs(ExportLogsServiceRequest),
}

/// The OTLP receiver's invalid-item dropping (`Export::drop_invalid`), in place, plus building
/// the partial-success responses.
pub fn otlp_drop_invalid(req: &mut OtlpRequest) -> Option<Rejected> {
    match req {
        OtlpRequest::Traces(r) => drop_one(r),
        OtlpRequest::Metrics(r) => drop_one(r),
        OtlpRequest::Logs(r) => drop_one(r),
    }
}

/// The OTLP receiver's JSON decoding of one request (`Export::from_json`: serde, plus the
/// metrics check in `otlp/json.rs`).
pub fn otlp_from_json(kind: SignalKind, body: &[u8]) -> Result<OtlpRequest, OtlpJsonError> {
    Ok(match kind {
        SignalKind::Traces => OtlpRequest::Traces(ExportTraceServiceRequest::from_json(body)?),
        SignalKind::Metrics => OtlpRequest::Metrics(ExportMetricsServiceRequest::from_json(body)?),
        SignalKind::Logs => OtlpRequest::Logs(ExportLogsServiceRequest::from_json(body)?),
    })
}

/// The `auth0_logs` receiver's body decoding, then each event as a log record (with and
/// without `include_user_ids`). Returns the records without user ids.
pub fn auth0_decode(body: &[u8]) -> Result<Vec<LogRecord>, Auth0DecodeError> {
    use crate::auth0_logs::decode::{decode_body, record};
    let events = decode_body(body)?;
    Ok(events
        .iter()
        .map(|e| {
            let _ = record(e, true, 0);
            record(e, false, 0)
        })
        .collect())
}

/// Keys the `auth0_logs` receiver drops at any depth unless `include_user_ids` is on.
pub use crate::auth0_logs::decode::PERSONAL_FIELDS as AUTH0_PERSONAL_FIELDS;

/// The attribute limit of one Auth0 record: the flattened fields plus type, category and id.
pub const AUTH0_MAX_ATTRIBUTES: usize = 129;

/// The first attribute named after one of `fields` below its first segment (`auth0.user_name`,
/// `okta.actor.alternateId`), if any: what the tenant-log targets check was scrubbed.
pub fn personal_key<'a>(
    attributes: &'a [authwatch_core::otlp::common::v1::KeyValue],
    fields: &[&str],
) -> Option<&'a str> {
    attributes
        .iter()
        .find(|a| a.key.split('.').skip(1).any(|seg| fields.contains(&seg)))
        .map(|a| a.key.as_str())
}

/// An Okta System Log page as the `okta_logs` receiver reads it: each event as a log record
/// without and with `include_user_ids` (the first of each pair is the scrubbed one), and whether
/// it records a login.
pub fn okta_decode(body: &[u8]) -> Result<Vec<(LogRecord, bool)>, OktaPageError> {
    use crate::okta_logs::events::{decode_page, login, record};
    let events = decode_page(body)?;
    Ok(events
        .iter()
        .map(|e| {
            let _ = record(e, true, 0);
            (record(e, false, 0), login(e).is_some())
        })
        .collect())
}

pub use crate::okta_logs::events::PageError as OktaPageError;
/// Keys the `okta_logs` receiver drops at any depth unless `include_user_ids` is on.
pub use crate::okta_logs::events::PERSONAL_FIELDS as OKTA_PERSONAL_FIELDS;
/// The attribute limit of one record (shared by the tenant-log receivers).
pub use authwatch_tenant_logs::attributes::MAX_ATTRIBUTES as OKTA_MAX_ATTRIBUTES;

/// Why a `Link` header's next URL is not followed.
pub use authwatch_tenant_logs::link::LinkError;

/// The `rel="next"` URL of a page with this `Link` header, as the tenant-log pollers follow it:
/// fetched from `request_url`, allowed only on `base`'s origin. `None` when either URL (or the
/// header value) does not parse; else the next URL, if any, or why it is refused.
pub fn next_link(
    link: &str,
    request_url: &str,
    base: &str,
) -> Option<Result<Option<String>, LinkError>> {
    let (request_url, base) = (
        url::Url::parse(request_url).ok()?,
        url::Url::parse(base).ok()?,
    );
    let mut headers = http::HeaderMap::new();
    headers.insert(http::header::LINK, http::HeaderValue::from_str(link).ok()?);
    Some(
        authwatch_tenant_logs::link::next_link(&headers, &request_url, &base)
            .map(|u| u.map(String::from)),
    )
}

/// One incident of a parsed status document.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusIncident {
    pub active: bool,
    pub impact: String,
    pub status: String,
    pub updated_at: String,
    /// `updated_at` as Unix nanoseconds, when it is RFC 3339 or RFC 2822.
    pub updated_unix_nano: Option<u64>,
}

/// A parsed status document.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusSnapshot {
    pub indicator: i64,
    /// (id, name, level) of each kept component.
    pub components: Vec<(String, String, i64)>,
    pub incidents: Vec<StatusIncident>,
}

/// The `statuspage` receiver's document parsing (`summary.json`, Atom, RSS), keeping only
/// `components` when not empty, and the time parsing applied to each incident.
pub fn statuspage_parse(
    format: Format,
    body: &[u8],
    components: &[String],
) -> Result<StatusSnapshot, StatusParseError> {
    let s = crate::statuspage::parse::parse(format, body, components)?;
    Ok(StatusSnapshot {
        indicator: s.indicator,
        components: s
            .components
            .into_iter()
            .map(|c| (c.id, c.name, c.level))
            .collect(),
        incidents: s
            .incidents
            .into_iter()
            .map(|i| StatusIncident {
                active: i.is_active(),
                updated_unix_nano: crate::statuspage::emit::parse_time(&i.updated_at),
                impact: i.impact,
                status: i.status,
                updated_at: i.updated_at,
            })
            .collect(),
    })
}

/// Why the synthetic receiver refused a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRefused {
    /// The low-cardinality `error.type`.
    pub error_type: &'static str,
    pub message: String,
}

/// The synthetic receiver's token validation as `validate` runs it: header and algorithm,
/// key by `kid` from the JWKS document `jwks`, signature and registered claims, then
/// `require_claims`. Returns the checked claims.
pub fn jwt_validate(
    token: &str,
    jwks: &[u8],
    cfg: &TokenValidation,
) -> Result<Vec<(String, String)>, TokenRefused> {
    use crate::synthetic::jwt;
    let refused = |f: jwt::TokenFailure| TokenRefused {
        error_type: f.error_type,
        message: f.message,
    };
    let header = jwt::header(token, cfg).map_err(refused)?;
    let keys = jwt::parse_jwks(jwks).map_err(|e| TokenRefused {
        error_type: "jwks_invalid",
        message: e.to_string(),
    })?;
    let Some(key) = jwt::find_key(&keys, header.kid.as_deref()) else {
        return Err(TokenRefused {
            error_type: "jwks_unknown_kid",
            message: "no key in the JWKS matches the token's kid".into(),
        });
    };
    jwt::verify(token, &header, key, cfg)
        .and_then(|claims| jwt::check_claims(&claims, cfg))
        .map_err(refused)
}

/// Why [`gunzip_capped`] refused a body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Gunzip {
    /// It inflates to more than the limit (what the receiver answers with `413`).
    TooLarge,
    /// It is not gzip, or is cut short (`400`), with the reason.
    Invalid(String),
}

/// The OTLP/HTTP receiver's inflating of a `Content-Encoding: gzip` body: every member, into
/// memory, stopping as soon as the output passes `limit` bytes.
pub fn gunzip_capped(body: &[u8], limit: usize) -> Result<Vec<u8>, Gunzip> {
    crate::otlp::gunzip_capped(body, limit).map_err(|e| match e {
        crate::otlp::InflateError::TooLarge => Gunzip::TooLarge,
        crate::otlp::InflateError::Invalid(e) => Gunzip::Invalid(e.to_string()),
    })
}

/// What the `authorization_code` check read on a login page ([`login_page`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginPage {
    /// `login`, `identifier`, `password`, `mfa_otp`, `consent`, `captcha` or `unknown`.
    pub kind: &'static str,
    /// The error the page displays, shortened.
    pub error: Option<String>,
    /// Whether a form was picked.
    pub has_form: bool,
    /// The names of the username, password and one-time-code inputs, in that order.
    pub fields: [Option<String>; 3],
    /// The picked form's fields as the check would submit them, filled with the given username,
    /// password and code.
    pub submitted: Vec<(String, String)>,
}

/// The login-page reading of the `authorization_code` check (`synthetic/authcode/form.rs`):
/// the page's kind, error and fields, and the form filled with `values` (username, password,
/// code). `fields` are the configured `form` options: `selector`, `username_field`,
/// `password_field`, `code_field`.
pub fn login_page(html: &str, fields: [Option<&str>; 4], values: [&str; 3]) -> LoginPage {
    use crate::synthetic::authcode::config::FormFields;
    use crate::synthetic::authcode::form::{read, Fill};
    let [selector, username_field, password_field, code_field] =
        fields.map(|f| f.map(str::to_owned));
    let cfg = FormFields {
        selector,
        username_field,
        password_field,
        code_field,
    };
    let page = read(html, &cfg);
    let [username, password, code] = values;
    LoginPage {
        kind: page.kind.as_str(),
        error: page.error.clone(),
        has_form: page.form.is_some(),
        fields: page.fields().map(|f| f.map(str::to_owned)),
        submitted: page.fill(&Fill {
            username: Some(username),
            password: Some(password),
            code: Some(code),
        }),
    }
}
