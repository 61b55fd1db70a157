//! Names that cross component crates (metric names, attribute keys, event names) and the values
//! of the attributes that several components read ([`ErrorClass`], [`Source`]), in one place, as
//! the OpenTelemetry semantic-convention crates do. Later components add theirs here.

/// `service.name` resource attribute.
pub const SERVICE_NAME: &str = "service.name";
/// `server.address` span attribute (HTTP client conventions).
pub const SERVER_ADDRESS: &str = "server.address";
/// `url.full` span attribute.
pub const URL_FULL: &str = "url.full";
/// `http.request.method` span attribute.
pub const HTTP_REQUEST_METHOD: &str = "http.request.method";
/// `http.response.status_code` span attribute.
pub const HTTP_RESPONSE_STATUS_CODE: &str = "http.response.status_code";
/// `error.type` span attribute.
pub const ERROR_TYPE: &str = "error.type";

// --- provider signals ---
// The `statuspage` and `auth0_logs` receivers: the provider's own view of its health.

/// Gauge, per page: rolled-up status indicator, 0 none, 1 minor, 2 major, 3 critical.
pub const STATUS_INDICATOR: &str = "authwatch.status.indicator";
/// Gauge, per component: 0 operational, 1 degraded performance, 2 partial outage, 3 major outage,
/// 4 under maintenance.
pub const STATUS_COMPONENT: &str = "authwatch.status.component";
/// Gauge, per page: 1 when the last poll fetched and understood the page, 0 when it was
/// unreachable or malformed (then no indicator or component points are sent).
pub const STATUS_UP: &str = "authwatch.status.up";
/// Gauge, per page: incidents the page reports as not resolved.
pub const STATUS_INCIDENTS_ACTIVE: &str = "authwatch.status.incidents.active";
/// Attribute: the configured page `name`.
pub const STATUS_PAGE: &str = "status.page";
/// Attribute: the polled page URL.
pub const STATUS_PAGE_URL: &str = "status.page.url";
/// Attribute: component name (as the page spells it).
pub const STATUS_COMPONENT_NAME: &str = "status.component.name";
/// Attribute: component id (Statuspage's id).
pub const STATUS_COMPONENT_ID: &str = "status.component.id";
/// Log event name: an incident appeared.
pub const STATUS_INCIDENT_OPENED: &str = "authwatch.status.incident.opened";
/// Log event name: an incident's status, impact or updates changed.
pub const STATUS_INCIDENT_UPDATED: &str = "authwatch.status.incident.updated";
/// Log event name: an incident was resolved.
pub const STATUS_INCIDENT_RESOLVED: &str = "authwatch.status.incident.resolved";
/// Log event name: a status page could not be fetched or understood.
pub const STATUS_PAGE_DOWN: &str = "authwatch.status.page.down";
/// Log event name: a status page that was down answers again.
pub const STATUS_PAGE_RECOVERED: &str = "authwatch.status.page.recovered";
/// Attribute: incident id.
pub const STATUS_INCIDENT_ID: &str = "status.incident.id";
/// Attribute: incident name (title).
pub const STATUS_INCIDENT_NAME: &str = "status.incident.name";
/// Attribute: incident impact: none, minor, major, critical, maintenance or unknown.
pub const STATUS_INCIDENT_IMPACT: &str = "status.incident.impact";
/// Attribute: incident status: investigating, identified, monitoring, resolved, postmortem, ...
pub const STATUS_INCIDENT_STATUS: &str = "status.incident.status";
/// Attribute: the status before an update.
pub const STATUS_INCIDENT_PREVIOUS_STATUS: &str = "status.incident.previous_status";
/// Attribute: link to the incident page.
pub const STATUS_INCIDENT_URL: &str = "status.incident.url";

/// Counter (cumulative sum), per Auth0 log type code and category.
pub const AUTH0_EVENTS: &str = "authwatch.auth0.events";
/// Counter (cumulative sum): Auth0 log events dropped as duplicates of a `log_id` already seen.
pub const AUTH0_EVENTS_DUPLICATES: &str = "authwatch.auth0.events.duplicates";
/// Attribute: Auth0 log event type code (`s`, `fp`, `sepft`, `api_limit`, ...).
pub const AUTH0_LOG_TYPE: &str = "auth0.log.type";
/// Attribute: category of the type code: success, failure, rate_limit, anomaly or other.
pub const AUTH0_LOG_CATEGORY: &str = "auth0.log.category";
/// Attribute: the streamed record's `log_id`.
pub const AUTH0_LOG_ID: &str = "auth0.log_id";
/// Prefix of the flattened Auth0 event fields (`auth0.client_id`, `auth0.details.error.message`).
pub const AUTH0_PREFIX: &str = "auth0.";

// --- auth0_logs pull mode and log-stream health ---

/// Counter (cumulative sum): Management API requests of `auth0_logs` pull mode, by
/// [`AUTH0_PULL_API`] and [`AUTH0_PULL_OUTCOME`].
pub const AUTH0_PULL_REQUESTS: &str = "authwatch.auth0.pull.requests";
/// Counter (cumulative sum): corrupt pull checkpoints moved aside.
pub const AUTH0_PULL_CHECKPOINT_RESETS: &str = "authwatch.auth0.pull.checkpoint.resets";
/// Attribute: which API a pull request went to: `token`, `logs`, `log_streams`.
pub const AUTH0_PULL_API: &str = "auth0.pull.api";
/// Attribute: how a pull request ended: `ok`, `rate_limited`, `server_error`, `malformed`,
/// `link_refused`, `token_error`, `unauthorized`, `refused`, `transport_error`.
pub const AUTH0_PULL_OUTCOME: &str = "auth0.pull.outcome";
/// Attribute of the rate-limit gauges: which Auth0 API's budget (`management`).
pub const AUTH0_API: &str = "auth0.api";
/// Gauge: 1 for a log stream's current status, 0 for the other statuses, per
/// [`AUTH0_LOG_STREAM_STATUS_ATTR`].
pub const AUTH0_LOG_STREAM_STATUS: &str = "authwatch.auth0.log_stream.status";
/// Gauge: 1 while a log stream is active, 0 while it is paused or suspended (what alert rules
/// read).
pub const AUTH0_LOG_STREAM_ACTIVE: &str = "authwatch.auth0.log_stream.active";
/// Gauge (s): time since the log stream last pushed a record to `auth0_logs`.
pub const AUTH0_LOG_STREAM_SILENCE: &str = "authwatch.auth0.log_stream.silence";
/// Attribute: a log stream's status: `active`, `paused`, `suspended`.
pub const AUTH0_LOG_STREAM_STATUS_ATTR: &str = "auth0.log_stream.status";
/// Attribute: a log stream's id.
pub const AUTH0_LOG_STREAM_ID: &str = "auth0.log_stream.id";
/// Attribute: a log stream's name.
pub const AUTH0_LOG_STREAM_NAME: &str = "auth0.log_stream.name";

// --- logins from tenant logs ---
// The tenant-log receivers (`auth0_logs`, `okta_logs`) count logins; the `alerts` connector
// alerts on the provider-side share and puts the users affected in its verdicts.

/// Counter (cumulative sum), per `dependency`, `login.outcome`, `login.failure.category`,
/// `login.client` and `login.connection`: logins read from a tenant's log.
pub const LOGINS: &str = "authwatch.logins";
/// Gauge, per `dependency` and `login.failure.scope`: distinct users with a failed login over
/// the receiver's `users_window` (default the last 5 minutes; a HyperLogLog estimate).
pub const LOGINS_USERS_AFFECTED: &str = "authwatch.logins.users_affected";
/// Attribute: `success` or `failure`.
pub const LOGIN_OUTCOME: &str = "login.outcome";
/// Attribute: wrong_credentials, blocked, mfa, rate_limit, provider_error, tenant_error, other.
pub const LOGIN_FAILURE_CATEGORY: &str = "login.failure.category";
/// Attribute: the application a login was for.
pub const LOGIN_CLIENT: &str = "login.client";
/// Attribute: the connection (directory, identity provider) a login went through.
pub const LOGIN_CONNECTION: &str = "login.connection";
/// Attribute of the users gauge: `provider_side` (provider or tenant errors) or `all`.
pub const LOGIN_FAILURE_SCOPE: &str = "login.failure.scope";
/// Failure category: the provider failed.
pub const LOGIN_PROVIDER_ERROR: &str = "provider_error";
/// Failure category: the tenant's own setup (Actions, rules, custom database scripts) failed.
pub const LOGIN_TENANT_ERROR: &str = "tenant_error";

// --- error rates and alerts ---
// The `error_rate` connector (dependency error rates and error groups from client spans) and the
// `alerts` connector (alert events as log records, read by the `alertmanager` and `webhook`
// exporters).

/// Counter, per dependency, endpoint, `error.class`, `service.name` and `source`: matched calls.
pub const DEPENDENCY_REQUESTS: &str = "authwatch.dependency.requests";
/// Counter, same attributes: calls whose `error.class` is one of the configured error classes.
pub const DEPENDENCY_ERRORS: &str = "authwatch.dependency.errors";
/// Gauge, per dependency, `source` and `window`: errors / requests over a sliding window.
pub const DEPENDENCY_ERROR_RATIO: &str = "authwatch.dependency.error_ratio";
/// Gauge, same attributes as the ratio: matched calls in the window (the ratio's denominator).
pub const DEPENDENCY_WINDOW_REQUESTS: &str = "authwatch.dependency.window.requests";
/// Histogram (seconds): the HTTP client semantic-convention duration of matched calls.
pub const HTTP_CLIENT_REQUEST_DURATION: &str = "http.client.request.duration";
/// Counter, same attributes as requests: calls their source marked degraded (probe runs slower
/// than their check's `degraded_response_time`); series only once one was counted.
pub const DEPENDENCY_DEGRADED: &str = "authwatch.dependency.degraded";
/// Attribute: the configured dependency name (`auth0`).
pub const DEPENDENCY: &str = "dependency";
/// Attribute: the templated endpoint (`/api/v2/users/{id}`).
pub const ENDPOINT: &str = "endpoint";
/// Attribute: ok, server_error, rate_limited, timeout, network, auth_rejected or client_error.
pub const ERROR_CLASS: &str = "error.class";
/// Attribute: `traffic` (real calls) or `probe` (synthetic checks).
pub const SOURCE: &str = "source";
/// Attribute: the sliding window of a ratio (`5m`).
pub const WINDOW: &str = "window";
/// Attribute on the overflow series once the cardinality limit is reached (OTel metrics SDK).
pub const OTEL_METRIC_OVERFLOW: &str = "otel.metric.overflow";
/// Span attribute: the provider's OAuth `error` code (`invalid_grant`).
pub const OAUTH_ERROR: &str = "oauth.error";
/// `exception.type` (span event or attribute).
pub const EXCEPTION_TYPE: &str = "exception.type";
/// `peer.service` span attribute.
pub const PEER_SERVICE: &str = "peer.service";
/// `rpc.service` span attribute.
pub const RPC_SERVICE: &str = "rpc.service";
/// `url.template` span attribute.
pub const URL_TEMPLATE: &str = "url.template";

/// A value of [`ERROR_CLASS`]: what a matched call ended as, following the HTTP client semantic
/// conventions. Written by the `error_rate` connector, read by the `alerts` connector.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum ErrorClass {
    /// 1xx-3xx, or no error.
    Ok,
    /// 5xx (gRPC INTERNAL, UNAVAILABLE, UNKNOWN, DATA_LOSS).
    ServerError,
    /// 429 without a user-specific OAuth error (gRPC RESOURCE_EXHAUSTED).
    RateLimited,
    /// No response in time (`error.type` names a timeout; gRPC DEADLINE_EXCEEDED).
    Timeout,
    /// No response at all: DNS, connect, TLS, reset.
    Network,
    /// 4xx with an OAuth error code listed in `auth_rejected_errors` (a wrong password).
    AuthRejected,
    /// Any other 4xx.
    ClientError,
}

impl ErrorClass {
    pub const ALL: [ErrorClass; 7] = [
        ErrorClass::Ok,
        ErrorClass::ServerError,
        ErrorClass::RateLimited,
        ErrorClass::Timeout,
        ErrorClass::Network,
        ErrorClass::AuthRejected,
        ErrorClass::ClientError,
    ];

    #[inline]
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorClass::Ok => "ok",
            ErrorClass::ServerError => "server_error",
            ErrorClass::RateLimited => "rate_limited",
            ErrorClass::Timeout => "timeout",
            ErrorClass::Network => "network",
            ErrorClass::AuthRejected => "auth_rejected",
            ErrorClass::ClientError => "client_error",
        }
    }

    /// Whether this class points at the provider rather than at the caller.
    #[inline]
    pub const fn is_provider_side(self) -> bool {
        matches!(
            self,
            ErrorClass::ServerError | ErrorClass::Timeout | ErrorClass::Network
        )
    }

    /// The position in [`ErrorClass::ALL`].
    #[inline]
    pub const fn index(self) -> usize {
        self as usize
    }
}

/// A value of [`SOURCE`]: where a call came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Source {
    /// A real call made by an application.
    Traffic,
    /// A synthetic probe run (span carrying [`SYNTHETIC_CHECK`]).
    Probe,
}

impl Source {
    pub const ALL: [Source; 2] = [Source::Traffic, Source::Probe];

    #[inline]
    pub const fn as_str(self) -> &'static str {
        match self {
            Source::Traffic => "traffic",
            Source::Probe => "probe",
        }
    }

    /// The position in [`Source::ALL`].
    #[inline]
    pub const fn index(self) -> usize {
        self as usize
    }
}

/// Log event name: an error group seen for the first time.
pub const ERROR_GROUP_NEW: &str = "authwatch.error_group.new";
/// Log event name: an error group seen again after `resolve_after` of quiet.
pub const ERROR_GROUP_REGRESSED: &str = "authwatch.error_group.regressed";
/// Attribute prefix of error-group records: `error_group.fingerprint`, `.key`, `.first_seen`,
/// `.last_seen`, `.count`, `.services`, `.share`.
pub const ERROR_GROUP_PREFIX: &str = "error_group.";

/// Log event name of alert events (one per transition, re-sent while firing).
pub const ALERT_EVENT: &str = "authwatch.alert";
/// Attribute: the rule name (also sent as label `alertname`).
pub const ALERT_NAME: &str = "alert.name";
/// Attribute: pending, firing or resolved.
pub const ALERT_STATE: &str = "alert.state";
/// Attribute: the alert's severity (`page`, `ticket`, `warning`, ...).
pub const ALERT_SEVERITY: &str = "alert.severity";
/// Attribute: the rule kind: threshold, burn_rate, consecutive or status.
pub const ALERT_RULE_KIND: &str = "alert.rule.kind";
/// Attribute: stable id of the alert instance (hex of rule name and labels).
pub const ALERT_FINGERPRINT: &str = "alert.fingerprint";
/// Attribute: provider_outage, tenant_issue, application_issue, transient, degraded or no_outage.
pub const ALERT_VERDICT: &str = "alert.verdict";
/// Attribute: one sentence saying why the verdict was reached.
pub const ALERT_VERDICT_REASON: &str = "alert.verdict.reason";
/// Attribute: RFC 3339 time the alert started firing (pending events: started pending).
pub const ALERT_STARTS_AT: &str = "alert.starts_at";
/// Attribute: RFC 3339 time the alert ends: resolution time, or while firing the time after
/// which a receiver may consider it resolved if no re-send arrives.
pub const ALERT_ENDS_AT: &str = "alert.ends_at";
/// Attribute: link back to the source of the alert (Alertmanager `generatorURL`).
pub const ALERT_GENERATOR_URL: &str = "alert.generator_url";
/// Attribute: the rule's `runbook_url`.
pub const ALERT_RUNBOOK_URL: &str = "alert.runbook_url";
/// Attribute: the provider's status page (`https://status.auth0.com`).
pub const ALERT_STATUS_PAGE_URL: &str = "alert.status_page_url";
/// Attribute (bool): this event re-sends a firing alert whose state did not change.
pub const ALERT_RESEND: &str = "alert.resend";
/// Attribute prefix: `alert.label.<k>` (Alertmanager labels, `alertname` included).
pub const ALERT_LABEL_PREFIX: &str = "alert.label.";
/// Attribute prefix: `alert.annotation.<k>` (Alertmanager annotations).
pub const ALERT_ANNOTATION_PREFIX: &str = "alert.annotation.";
/// Attribute (double): the value the rule compared (ratio, burn rate, failures, indicator).
pub const ALERT_VALUE: &str = "alert.value";
/// Attribute (double): the threshold it was compared with.
pub const ALERT_THRESHOLD: &str = "alert.threshold";
/// Attribute prefix of the numbers behind the verdict: `alert.signal.probe.runs`,
/// `.probe.failures`, `.probe.consecutive_failures`, `.traffic.requests`, `.traffic.errors`,
/// `.traffic.error_ratio`, `.status.indicator`.
pub const ALERT_SIGNAL_PREFIX: &str = "alert.signal.";
/// Attribute (string) of latency alerts: the quantile compared (`p95`), or `share` for the
/// share of calls slower than the bound.
pub const ALERT_LATENCY_QUANTILE: &str = "alert.latency.quantile";
/// Attribute (double) of latency alerts: the bound, in seconds.
pub const ALERT_LATENCY_BOUND: &str = "alert.latency.bound";
/// The verdict of an alert about calls that are slow but do not fail.
pub const VERDICT_DEGRADED: &str = "degraded";

// --- synthetic probes ---

/// Gauge: 1 if the last run of a check succeeded, 0 if not.
pub const PROBE_SUCCESS: &str = "authwatch.probe.success";
/// Histogram (s): duration of a check's runs.
pub const PROBE_DURATION: &str = "authwatch.probe.duration";
/// Histogram (s): duration of each phase of a run, by [`SYNTHETIC_PHASE`].
pub const PROBE_PHASE_DURATION: &str = "authwatch.probe.phase.duration";
/// Counter: runs of a check, by [`SYNTHETIC_OUTCOME`].
pub const PROBE_RUNS: &str = "authwatch.probe.runs";
/// Gauge: 1 if the last run of a check succeeded but took longer than the check's
/// `degraded_response_time`, 0 if not (only for checks with that option).
pub const PROBE_DEGRADED: &str = "authwatch.probe.degraded";
/// Gauge: `x-ratelimit-limit` of the last response.
pub const RATELIMIT_LIMIT: &str = "authwatch.ratelimit.limit";
/// Gauge: `x-ratelimit-remaining` of the last response.
pub const RATELIMIT_REMAINING: &str = "authwatch.ratelimit.remaining";
/// Gauge (Unix seconds): `x-ratelimit-reset` of the last response.
pub const RATELIMIT_RESET: &str = "authwatch.ratelimit.reset";
/// Gauge (s): time until the server certificate expires.
pub const TLS_CERTIFICATE_REMAINING: &str = "authwatch.tls.certificate.remaining";
/// Attribute: the check's configured name (also a resource attribute of probe data).
pub const SYNTHETIC_CHECK: &str = "synthetic.check";
/// Attribute: the check's type (`password_grant`, `client_credentials`, `http`,
/// `authorization_code`).
pub const SYNTHETIC_TYPE: &str = "synthetic.type";
/// Attribute: the run's outcome, one of [`SYNTHETIC_OUTCOMES`].
pub const SYNTHETIC_OUTCOME: &str = "synthetic.outcome";
/// Attribute (bool) of a probe run's root span: the run succeeded but took longer than the
/// check's `degraded_response_time` (Checkly's "degraded").
pub const SYNTHETIC_DEGRADED: &str = "synthetic.degraded";
/// Attribute: the phase of a run (`dns`, `connect`, `tls`, `request`, `transfer`, `jwks`, `validate`).
pub const SYNTHETIC_PHASE: &str = "phase";
/// Attribute of an `authorization_code` run's HTTP spans: what the request was (`authorize`,
/// `redirect`, `submit`, `token`).
pub const SYNTHETIC_HOP: &str = "synthetic.hop";
/// Attribute of an `authorization_code` run's HTTP spans: the page the response showed
/// (`login`, `identifier`, `password`, `mfa_otp`, `consent`, `captcha`, `unknown`); absent on
/// redirects.
pub const SYNTHETIC_PAGE: &str = "synthetic.page";
/// The outcome of a passing run.
pub const SYNTHETIC_OUTCOME_SUCCESS: &str = "success";
/// Every value of [`SYNTHETIC_OUTCOME`].
pub const SYNTHETIC_OUTCOMES: [&str; 17] = [
    "success",
    "dns",
    "connect",
    "tls",
    "timeout",
    "http_status",
    "rate_limited",
    "oauth_error",
    "invalid_token",
    "missing_claim",
    "assertion",
    "login_page_changed",
    "login_rejected",
    "mfa_required",
    "consent_required",
    "bot_challenge",
    "redirect_loop",
];
