//! What the alert exporters (`alertmanager`, `webhook`) share: reading alert events from log
//! records ([`event`]), sending them over HTTP ([`http`]) and counting the records they do not
//! send (`authwatch_exporter_ignored_log_records_total`). Not a component: a shared module, as
//! the rest of [`crate::helper`].

pub mod event;
pub mod http;
#[cfg(test)]
pub(crate) mod test_support;

use authwatch_core::otlp::logs::v1::LogRecord;
use authwatch_core::telemetry::{Counter, Family};
use authwatch_core::{Settings, Signal};

/// An alert exporter built with nowhere to send (validation refuses this config; kept for a
/// config built in code).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("no {what} endpoint: set {keys}")]
pub struct MissingEndpoint {
    pub what: &'static str,
    pub keys: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq)]
struct ExporterLabels {
    exporter: String,
}
authwatch_core::label_set!(ExporterLabels { exporter });

/// `authwatch_exporter_ignored_log_records_total{exporter}`: records an alert exporter does not
/// send (not alert events, or not in a state it sends).
pub(crate) fn ignored_counter(settings: &Settings) -> Counter {
    let family: Family<ExporterLabels, Counter> = settings.telemetry.metric(
        "exporter_ignored_log_records",
        "Log records an alert exporter did not send because they are not alert events it sends",
        Family::default,
    );
    family.get_or_create(&ExporterLabels {
        exporter: settings.id.to_string(),
    })
}

/// The log records of a logs signal (none for other signals).
pub(crate) fn records(data: &Signal) -> impl Iterator<Item = &LogRecord> {
    let req = match data {
        Signal::Logs(r) => Some(r),
        _ => None,
    };
    req.into_iter()
        .flat_map(|r| &r.resource_logs)
        .flat_map(|r| &r.scope_logs)
        .flat_map(|s| &s.log_records)
}
