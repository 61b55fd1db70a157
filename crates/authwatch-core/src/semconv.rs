//! Names that cross component crates (metric names, attribute keys, event names), in one place,
//! as the OpenTelemetry semantic-convention crates do. Later components add theirs here.

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
