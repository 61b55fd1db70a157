//! Stand-in components for service tests (the Collector's `testcomponents`): a receiver that
//! emits a few spans, a pass-through processor, an exporter that records into a named [`Sink`],
//! and a same-signal connector. Each logs its lifecycle into [`events`] so tests can assert
//! start and stop order.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};

use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};

use authwatch_core::{
    BuildError, Built, ComponentConfig, ConnectorConfig, ConnectorContext, ConsumeError, Consumer,
    ExporterConfig, Factories, ProcessorConfig, ProcessorContext, ReceiverConfig, ReceiverContext,
    Resource, Running, Settings, Signal, SignalKind, Signals, Validator,
};
use authwatch_net::ListenAddr;

use crate::sink::Sink;

static SINKS: LazyLock<Mutex<HashMap<String, Sink>>> = LazyLock::new(Default::default);
static EVENTS: LazyLock<Mutex<Vec<String>>> = LazyLock::new(Default::default);

/// The sink a `test_exporter` with `sink: name` records into.
pub fn sink(name: &str) -> Sink {
    SINKS
        .lock()
        .unwrap()
        .entry(name.to_owned())
        .or_default()
        .clone()
}

/// Lifecycle events (`start receiver test_receiver/a`, `stop exporter ...`) with `tag` in the id.
pub fn events(tag: &str) -> Vec<String> {
    EVENTS
        .lock()
        .unwrap()
        .iter()
        .filter(|e| e.contains(tag))
        .cloned()
        .collect()
}

fn event(s: String) {
    EVENTS.lock().unwrap().push(s);
}

/// The stand-in factories.
pub fn factories() -> Factories {
    use authwatch_core::registry::kinds;
    let mut f = Factories::default();
    f.add(kinds::Receiver::factory::<TestReceiver>());
    f.add(kinds::Processor::factory::<TestProcessor>());
    f.add(kinds::Exporter::factory::<TestExporter>());
    f.add(kinds::Connector::factory::<TestConnector>());
    f
}

fn signals_from(list: &[SignalKind]) -> Signals {
    list.iter().fold(Signals::NONE, |s, k| s.with(*k))
}

fn all_kinds() -> Vec<SignalKind> {
    SignalKind::ALL.to_vec()
}

/// `test_receiver`: on start, sends `emit` spans (and `emit` log records if it has logs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TestReceiver {
    pub signals: Vec<SignalKind>,
    pub emit: u64,
    pub endpoint: Option<ListenAddr>,
}

impl Default for TestReceiver {
    fn default() -> Self {
        TestReceiver {
            signals: all_kinds(),
            emit: 0,
            endpoint: None,
        }
    }
}

impl ComponentConfig for TestReceiver {
    const TYPE: &'static str = "test_receiver";
    fn validate(&self, v: &mut Validator) {
        if self.signals.is_empty() {
            v.error("signals", "must not be empty");
        }
    }
    fn resources(&self) -> Vec<Resource> {
        self.endpoint
            .iter()
            .map(|e| Resource::Listen(e.addr()))
            .collect()
    }
}

impl ReceiverConfig for TestReceiver {
    fn signals(&self) -> Signals {
        signals_from(&self.signals)
    }
    async fn build(&self, cx: ReceiverContext) -> Result<Running, BuildError> {
        let id = cx.settings.id.to_string();
        event(format!("start receiver {id}"));
        let emit = self.emit;
        let signals = self.signals.clone();
        Ok(Box::pin(async move {
            if emit > 0 {
                for k in signals {
                    let data = match k {
                        SignalKind::Traces => crate::trace_signal(0, emit),
                        SignalKind::Metrics => crate::metric_signal(0, emit),
                        SignalKind::Logs => crate::log_signal(0, emit),
                    };
                    if cx.next.accepts(k) {
                        let _ = cx.next.route(data).await;
                    }
                }
            }
            cx.settings.shutdown.cancelled().await;
            event(format!("stop receiver {id}"));
            Ok(())
        }))
    }
}

/// `test_processor`: passes data on.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TestProcessor {
    pub signals: Option<Vec<SignalKind>>,
}

impl ComponentConfig for TestProcessor {
    const TYPE: &'static str = "test_processor";
}

struct PassThrough(authwatch_core::SharedConsumer);

impl Consumer for PassThrough {
    fn consume(&self, data: Signal) -> BoxFuture<'_, Result<(), ConsumeError>> {
        self.0.consume(data)
    }
    fn takes_live(&self) -> bool {
        self.0.takes_live()
    }
    fn consume_live(&self, data: Signal) -> BoxFuture<'_, Result<(), ConsumeError>> {
        self.0.consume_live(data)
    }
}

impl ProcessorConfig for TestProcessor {
    fn signals(&self) -> Signals {
        self.signals
            .as_deref()
            .map(signals_from)
            .unwrap_or(Signals::ALL)
    }
    async fn build(&self, cx: ProcessorContext) -> Result<Built, BuildError> {
        let id = format!("{} in {}", cx.settings.id, cx.pipeline);
        event(format!("start processor {id}"));
        let token = cx.settings.shutdown.clone();
        Ok(Built {
            consumer: std::sync::Arc::new(PassThrough(cx.next)),
            task: Some(Box::pin(async move {
                token.cancelled().await;
                event(format!("stop processor {id}"));
                Ok(())
            })),
        })
    }
}

/// `test_exporter`: records into the named sink.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TestExporter {
    pub sink: String,
    pub signals: Option<Vec<SignalKind>>,
    pub api_key: authwatch_core::config::Secret,
}

impl ComponentConfig for TestExporter {
    const TYPE: &'static str = "test_exporter";
}

impl ExporterConfig for TestExporter {
    fn signals(&self) -> Signals {
        self.signals
            .as_deref()
            .map(signals_from)
            .unwrap_or(Signals::ALL)
    }
    async fn build(&self, settings: Settings) -> Result<Built, BuildError> {
        let id = settings.id.to_string();
        event(format!("start exporter {id}"));
        let s = sink(&self.sink);
        Ok(Built {
            consumer: s.shared(),
            task: Some(Box::pin(async move {
                settings.shutdown.cancelled().await;
                event(format!("stop exporter {id}"));
                Ok(())
            })),
        })
    }
}

/// `test_connector`: forwards each signal to the pipelines of the same signal it feeds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TestConnector {}

impl ComponentConfig for TestConnector {
    const TYPE: &'static str = "test_connector";
}

impl ConnectorConfig for TestConnector {
    fn routes(&self) -> &'static [(SignalKind, SignalKind)] {
        &[
            (SignalKind::Traces, SignalKind::Traces),
            (SignalKind::Metrics, SignalKind::Metrics),
            (SignalKind::Logs, SignalKind::Logs),
        ]
    }
    async fn build(&self, cx: ConnectorContext) -> Result<Built, BuildError> {
        let id = cx.settings.id.to_string();
        event(format!("start connector {id}"));
        let token = cx.settings.shutdown.clone();
        Ok(Built {
            consumer: std::sync::Arc::new(cx.next),
            task: Some(Box::pin(async move {
                token.cancelled().await;
                event(format!("stop connector {id}"));
                Ok(())
            })),
        })
    }
}
