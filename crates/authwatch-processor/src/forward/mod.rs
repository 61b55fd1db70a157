//! # `forward` connector
//!
//! Joins pipelines of one signal, like the OpenTelemetry Collector's `forward` connector: it is
//! an exporter at the end of one pipeline and a receiver at the start of others, and hands every
//! request on unchanged. Use it to run shared processing once and fan out afterwards, or to merge
//! several pipelines into one.
//!
//! ```yaml
//! connectors:
//!   forward: {}
//! service:
//!   pipelines:
//!     traces/in:  { receivers: [otlp], processors: [memory_limiter], exporters: [forward] }
//!     traces/out: { receivers: [forward], processors: [batch], exporters: [otlp/upstream] }
//! ```
//!
//! ## Options
//!
//! None.
//!
//! ## Behaviour
//!
//! - Routes traces to traces, metrics to metrics and logs to logs; a signal never changes.
//! - The request goes to every pipeline that lists the connector as a receiver for that signal
//!   (several pipelines get a copy each). The answer of those pipelines is passed back, so
//!   backpressure and refusals reach the sender unchanged.
//! - A signal with no pipeline on the output side is refused with a permanent "no pipeline
//!   accepts ..." error (the service's graph checks normally rule that out).
//! - Live data (see `authwatch_core::consume`) takes the same routes.
//! - Keeps no state and runs no task: there is nothing to flush at shutdown.

use std::sync::Arc;

use authwatch_core::{
    BuildError, Built, ComponentConfig, ConnectorConfig, ConnectorContext, ConsumeError, Consumer,
    Router, Signal, SignalKind,
};
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};

/// The `forward` connector's configuration: it has no options.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {}

impl ComponentConfig for Config {
    const TYPE: &'static str = "forward";
}

const ROUTES: &[(SignalKind, SignalKind)] = &[
    (SignalKind::Traces, SignalKind::Traces),
    (SignalKind::Metrics, SignalKind::Metrics),
    (SignalKind::Logs, SignalKind::Logs),
];

impl ConnectorConfig for Config {
    fn routes(&self) -> &'static [(SignalKind, SignalKind)] {
        ROUTES
    }

    async fn build(&self, cx: ConnectorContext) -> Result<Built, BuildError> {
        Ok(Built {
            consumer: Arc::new(Forward { next: cx.next }),
            task: None,
        })
    }
}

// === impl Forward ===

/// Hands each request to the output pipelines of its signal.
struct Forward {
    next: Router,
}

impl Consumer for Forward {
    fn wants_encoded(&self) -> bool {
        SignalKind::ALL
            .into_iter()
            .all(|k| !self.next.accepts(k) || self.next.wants_encoded_for(k))
    }

    fn consume(&self, data: Signal) -> BoxFuture<'_, Result<(), ConsumeError>> {
        Box::pin(self.next.route(data))
    }

    fn backlog(&self) -> authwatch_core::Backlog {
        self.next.backlog()
    }

    fn takes_live(&self) -> bool {
        Consumer::takes_live(&self.next)
    }

    fn consume_live(&self, data: Signal) -> BoxFuture<'_, Result<(), ConsumeError>> {
        Box::pin(self.next.route_live(data))
    }
}

#[cfg(test)]
mod tests;
