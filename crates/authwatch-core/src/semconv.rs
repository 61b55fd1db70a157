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
