//! # `debug` exporter
//!
//! `debug` exporter: writes what it receives to the log (through `tracing`, at info), to see
//! what a pipeline produces.
//!
//! ```yaml
//! exporters:
//!   debug:
//!     verbosity: basic          # basic: one line per request with counts
//!                               # normal: one line per span / data point / log record
//!                               # detailed: every field, resource and scope included
//!     sampling_initial: 2       # per second, the first N requests are written ...
//!     sampling_thereafter: 1    # ... then every Mth (1: all of them; 0: none)
//! ```
//!
//! Synchronous: there is no queue, and it never refuses data (except after shutdown).

mod format;

use std::sync::Mutex;
use std::time::Duration;

use authwatch_core::{
    BuildError, Built, ComponentConfig, ComponentId, ConsumeError, Consumer, ExporterConfig,
    Settings, Signal, Signals,
};
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// `debug` exporter config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub verbosity: Verbosity,
    /// Requests written per second before sampling starts.
    pub sampling_initial: u32,
    /// After that, every this-many-th request is written (0: none).
    pub sampling_thereafter: u32,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            verbosity: Verbosity::Basic,
            sampling_initial: 2,
            sampling_thereafter: 1,
        }
    }
}

/// How much of each request is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verbosity {
    #[default]
    Basic,
    Normal,
    Detailed,
}

impl ComponentConfig for Config {
    const TYPE: &'static str = "debug";
}

impl ExporterConfig for Config {
    fn signals(&self) -> Signals {
        Signals::ALL
    }

    async fn build(&self, settings: Settings) -> Result<Built, BuildError> {
        let exporter = DebugExporter {
            id: settings.id.clone(),
            verbosity: self.verbosity,
            sampler: Sampler::new(self.sampling_initial, self.sampling_thereafter),
            telemetry: settings.telemetry.exporter(&settings.id),
            shutdown: settings.shutdown.clone(),
        };
        Ok(Built {
            consumer: std::sync::Arc::new(exporter),
            task: None,
        })
    }
}

// === impl DebugExporter ===

struct DebugExporter {
    id: ComponentId,
    verbosity: Verbosity,
    sampler: Sampler,
    telemetry: authwatch_core::telemetry::ExporterTelemetry,
    shutdown: CancellationToken,
}

impl DebugExporter {
    fn write(&self, data: &Signal) {
        let kind = data.kind();
        let (resources, items) = format::counts(data);
        match self.verbosity {
            Verbosity::Basic => {
                info!(exporter = %self.id, signal = %kind, resources, items, "Debug exporter received data.");
            }
            Verbosity::Normal => {
                info!(exporter = %self.id, signal = %kind, resources, items, "Debug exporter received data.");
                for line in format::normal(data) {
                    info!(exporter = %self.id, signal = %kind, "{line}");
                }
            }
            Verbosity::Detailed => {
                let text = format::detailed(data);
                info!(exporter = %self.id, signal = %kind, resources, items, "Debug exporter received data:\n{text}");
            }
        }
    }
}

impl Consumer for DebugExporter {
    fn consume(&self, data: Signal) -> BoxFuture<'_, Result<(), ConsumeError>> {
        let result = if self.shutdown.is_cancelled() {
            Err(ConsumeError::Closed)
        } else {
            if self.sampler.sample() {
                match data.decoded_ref() {
                    Ok(d) => self.write(&d),
                    Err(e) => warn!(exporter = %self.id, error = %e, "Debug exporter cannot read a request."),
                }
            }
            self.telemetry.sent(data.kind(), data.item_count());
            Ok(())
        };
        Box::pin(async move { result })
    }
}

// === impl Sampler ===

/// The Collector's (zap's) log sampling: per one-second tick, the first `initial` pass, then
/// every `thereafter`-th.
struct Sampler {
    initial: u32,
    thereafter: u32,
    state: Mutex<(Option<Instant>, u64)>,
}

impl Sampler {
    const TICK: Duration = Duration::from_secs(1);

    fn new(initial: u32, thereafter: u32) -> Self {
        Sampler {
            initial,
            thereafter,
            state: Mutex::new((None, 0)),
        }
    }

    fn sample(&self) -> bool {
        let now = Instant::now();
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if s.0.is_none_or(|t| now.duration_since(t) >= Self::TICK) {
            *s = (Some(now), 0);
        }
        s.1 += 1;
        let n = s.1;
        if n <= u64::from(self.initial) {
            return true;
        }
        (n - u64::from(self.initial)).checked_rem(u64::from(self.thereafter)) == Some(0)
    }
}

#[cfg(test)]
mod tests;
