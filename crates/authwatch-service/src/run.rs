//! Start, run and drain. Start order: self-telemetry and extensions, exporters, then pipelines
//! and connectors downstream-first, receivers last (sockets bound last). Shutdown goes in data
//! order, each stage with its own token: receivers stop accepting, pipelines flush as their
//! inputs close (upstream first), exporters drain their queues until `service.shutdown_timeout`,
//! and whatever is left is cancelled.

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::time::Duration;

use futures::FutureExt;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, info_span, warn, Instrument};

use authwatch_core::board::StatusBoard;
use authwatch_core::health::{Health, Phase};
use authwatch_core::telemetry::Telemetry;
use authwatch_core::MemoryBudget;
use authwatch_core::{
    AnyConfig, ComponentId, ConnectorContext, Fanout, Kind, PipelineId, ProcessorContext,
    ReceiverContext, Router, Running, Settings, SharedConsumer, SignalKind,
};

use crate::config::Loaded;
use crate::graph::{build_order, Node};

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunOutcome {
    /// Everything drained within `service.shutdown_timeout`.
    pub drained: bool,
    /// A component failed or panicked while running.
    pub component_failed: bool,
}

impl RunOutcome {
    /// 0 if everything drained and nothing failed, 1 otherwise.
    pub fn exit_code(&self) -> i32 {
        if self.drained && !self.component_failed {
            0
        } else {
            1
        }
    }
}

/// A component could not be started (a port in use, a bad certificate file, ...).
#[derive(Debug, thiserror::Error)]
#[error(
    "cannot start {kind} \"{id}\": {}{source}",
    .pipeline.as_ref().map(|p| format!("in pipeline {p}: ")).unwrap_or_default()
)]
pub struct StartError {
    /// `receiver`, `processor`, ..., or `telemetry`.
    pub kind: String,
    pub id: String,
    /// The pipeline of a processor (each pipeline builds its own).
    pub pipeline: Option<PipelineId>,
    #[source]
    pub source: StartCause,
}

/// Why a component or the self-telemetry could not be started.
#[derive(Debug, thiserror::Error)]
pub enum StartCause {
    #[error(transparent)]
    Telemetry(#[from] crate::telemetry::TelemetryError),
    #[error(transparent)]
    Build(#[from] authwatch_core::BuildError),
}

/// What the caller may want to know once everything is started.
#[derive(Debug, Clone)]
pub struct Started {
    /// Where the (first) pull reader serves `/metrics`.
    pub metrics_address: Option<SocketAddr>,
}

/// What every component of one run shares.
struct Shared {
    telemetry: Telemetry,
    health: Health,
    board: StatusBoard,
    budget: MemoryBudget,
}

struct Stage {
    name: String,
    token: CancellationToken,
    tasks: JoinSet<(String, bool)>,
    running: BTreeSet<String>,
}

impl Stage {
    fn new(name: impl Into<String>) -> Self {
        Stage {
            name: name.into(),
            token: CancellationToken::new(),
            tasks: JoinSet::new(),
            running: BTreeSet::new(),
        }
    }

    fn settings(&self, id: &ComponentId, shared: &Shared) -> Settings {
        Settings {
            id: id.clone(),
            shutdown: self.token.clone(),
            telemetry: shared.telemetry.clone(),
            health: shared.health.clone(),
            board: shared.board.clone(),
            budget: shared.budget.clone(),
        }
    }

    /// Spawns a component task in its tracing span; panics are caught and reported with the id.
    fn spawn(
        &mut self,
        kind: &'static str,
        id: String,
        task: Running,
        early: mpsc::UnboundedSender<String>,
    ) {
        let token = self.token.clone();
        let span = info_span!("component", kind, id = %id);
        self.running.insert(id.clone());
        self.tasks.spawn(
            async move {
                let result = AssertUnwindSafe(task).catch_unwind().await;
                let ok = match result {
                    Ok(Ok(())) => {
                        info!("Component stopped.");
                        true
                    }
                    Ok(Err(e)) => {
                        error!(error = %e, "Component failed.");
                        false
                    }
                    Err(panic) => {
                        let msg = panic
                            .downcast_ref::<&str>()
                            .map(|s| s.to_string())
                            .or_else(|| panic.downcast_ref::<String>().cloned())
                            .unwrap_or_else(|| "unknown panic".into());
                        error!(panic = %msg, "Component panicked; this is a bug.");
                        false
                    }
                };
                if !token.is_cancelled() {
                    let _ = early.send(id.clone());
                }
                (id, ok)
            }
            .instrument(span),
        );
    }

    /// Cancels the stage and waits for its tasks until `deadline`, logging every 5 s which are
    /// still running. Returns (all finished in time, none failed).
    async fn drain(&mut self, deadline: Instant) -> (bool, bool) {
        self.token.cancel();
        let mut ok = true;
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        tick.tick().await;
        loop {
            tokio::select! {
                next = self.tasks.join_next() => match next {
                    None => return (true, ok),
                    Some(Ok((id, good))) => {
                        self.running.remove(&id);
                        ok &= good;
                    }
                    Some(Err(_)) => ok = false,
                },
                _ = tick.tick() => {
                    info!(stage = %self.name, components = ?self.running, "Waiting for components to stop.");
                }
                _ = tokio::time::sleep_until(deadline) => {
                    warn!(stage = %self.name, components = ?self.running, "Shutdown timeout reached; cancelling components.");
                    self.tasks.abort_all();
                    while self.tasks.join_next().await.is_some() {}
                    return (false, ok);
                }
            }
        }
    }
}

/// Builds everything, runs until `shutdown` resolves (or a component fails), then drains.
/// `on_started` is called once everything is listening.
pub async fn run(
    loaded: Loaded,
    shutdown: impl Future<Output = ()> + Send,
    on_started: impl FnOnce(Started) + Send,
) -> Result<RunOutcome, StartError> {
    let telemetry = crate::telemetry::build(&loaded.service.telemetry).map_err(|e| StartError {
        kind: "telemetry".into(),
        id: "metrics".into(),
        pipeline: None,
        source: e.into(),
    })?;
    let shared = Shared {
        telemetry,
        health: Health::default(),
        board: StatusBoard::default(),
        budget: MemoryBudget::default(),
    };
    let health = shared.health.clone();
    let (early_tx, mut early_rx) = mpsc::unbounded_channel::<String>();

    let mut support = Stage::new("extensions");
    let mut exporters_stage = Stage::new("exporters");
    let mut receivers_stage = Stage::new("receivers");
    let mut nodes: Vec<(Node, Stage)> = Vec::new();

    let result = start(
        &loaded,
        &shared,
        &early_tx,
        &mut support,
        &mut exporters_stage,
        &mut nodes,
        &mut receivers_stage,
    )
    .await;
    let started = match result {
        Ok(s) => s,
        Err(e) => {
            // Stop whatever did start, quickly.
            let deadline = Instant::now() + Duration::from_secs(5);
            receivers_stage.drain(deadline).await;
            for (_, s) in nodes.iter_mut().rev() {
                s.drain(deadline).await;
            }
            exporters_stage.drain(deadline).await;
            support.drain(deadline).await;
            // Off the runtime's threads: dropping the provider would shut it down in place.
            crate::telemetry::shutdown(shared.telemetry.clone(), Duration::from_secs(1)).await;
            return Err(e);
        }
    };
    health.set_phase(Phase::Ready);
    info!("Everything is ready. Begin running and processing data.");
    on_started(started);

    let mut component_failed = false;
    tokio::select! {
        _ = shutdown => {}
        Some(id) = early_rx.recv() => {
            error!(component = %id, "A component stopped unexpectedly; shutting down.");
            component_failed = true;
        }
    }

    health.set_phase(Phase::Stopping);
    info!(timeout = ?loaded.service.shutdown_timeout, "Shutting down: receivers stop, pipelines drain, exporters flush.");
    let deadline = Instant::now() + loaded.service.shutdown_timeout;
    let mut drained = true;
    let mut all_ok = true;
    let (d, ok) = receivers_stage.drain(deadline).await;
    drained &= d;
    all_ok &= ok;
    // Upstream first: the reverse of build order.
    for (_, stage) in nodes.iter_mut().rev() {
        let (d, ok) = stage.drain(deadline).await;
        drained &= d;
        all_ok &= ok;
    }
    let (d, ok) = exporters_stage.drain(deadline).await;
    drained &= d;
    all_ok &= ok;
    let (_, ok) = support.drain(Instant::now() + Duration::from_secs(2)).await;
    all_ok &= ok;
    // The periodic readers export one last time, within what is left of the drain's time.
    let left = deadline.saturating_duration_since(Instant::now());
    crate::telemetry::shutdown(shared.telemetry.clone(), left.max(Duration::from_secs(1))).await;
    component_failed |= !all_ok;
    if drained {
        info!("Shutdown complete.");
    } else {
        warn!("Shutdown timed out; data still queued was dropped.");
    }
    Ok(RunOutcome {
        drained,
        component_failed,
    })
}

fn start_err(kind: Kind, id: &ComponentId, e: impl Into<StartCause>) -> StartError {
    StartError {
        kind: kind.to_string(),
        id: id.to_string(),
        pipeline: None,
        source: e.into(),
    }
}

#[allow(clippy::too_many_arguments)]
async fn start(
    l: &Loaded,
    shared: &Shared,
    early: &mpsc::UnboundedSender<String>,
    support: &mut Stage,
    exporters_stage: &mut Stage,
    nodes: &mut Vec<(Node, Stage)>,
    receivers_stage: &mut Stage,
) -> Result<Started, StartError> {
    // Self-telemetry endpoint and extensions first, so health is visible while starting.
    let mut metrics_address = None;
    for (i, (_, addr)) in l
        .service
        .telemetry
        .metrics
        .pull_readers()
        .into_iter()
        .enumerate()
    {
        let (local, task) =
            crate::telemetry::serve_metrics(addr, shared.telemetry.clone(), support.token.clone())
                .await
                .map_err(|e| StartError {
                    kind: "telemetry".into(),
                    id: "metrics".into(),
                    pipeline: None,
                    source: e.into(),
                })?;
        info!(address = %local, "Self-telemetry metrics listening on /metrics.");
        metrics_address.get_or_insert(local);
        let id = if i == 0 {
            "metrics".to_owned()
        } else {
            format!("metrics/{i}")
        };
        support.spawn("telemetry", id, task, early.clone());
    }
    for p in l.service.telemetry.metrics.periodic_readers() {
        let crate::config::PushExporterConfig::Otlp(o) = &p.exporter;
        info!(endpoint = %o.endpoint, interval = ?p.interval, "Self-telemetry metrics exported over OTLP.");
    }
    for id in &l.service.extensions {
        let Some(c) = l.extensions.get(id) else {
            continue;
        };
        let AnyConfig::Extension(cfg) = &c.config else {
            continue;
        };
        let task = cfg
            .build(support.settings(id, shared))
            .await
            .map_err(|e| start_err(Kind::Extension, id, e))?;
        support.spawn("extension", id.to_string(), task, early.clone());
    }

    // Exporters used by some pipeline.
    let mut exporters: HashMap<ComponentId, SharedConsumer> = HashMap::new();
    for (id, c) in &l.exporters {
        let used = l
            .service
            .pipelines
            .values()
            .any(|p| p.exporters.contains(id));
        let AnyConfig::Exporter(cfg) = &c.config else {
            continue;
        };
        if !used {
            continue;
        }
        let built = cfg
            .build(exporters_stage.settings(id, shared))
            .await
            .map_err(|e| start_err(Kind::Exporter, id, e))?;
        if let Some(task) = built.task {
            exporters_stage.spawn("exporter", id.to_string(), task, early.clone());
        }
        // Exporters report their own failures and recoveries under their id.
        shared
            .health
            .report(&id.to_string(), authwatch_core::health::ComponentStatus::Ok);
        exporters.insert(id.clone(), built.consumer);
    }

    // Pipelines and connectors, downstream first.
    let mut entries: HashMap<PipelineId, SharedConsumer> = HashMap::new();
    let mut connectors: HashMap<ComponentId, SharedConsumer> = HashMap::new();
    for node in build_order(l) {
        let mut stage = Stage::new(node.to_string());
        match &node {
            Node::Connector(id) => {
                let Some(AnyConfig::Connector(cfg)) = l.connectors.get(id).map(|c| &c.config)
                else {
                    continue;
                };
                let next = router_for(l, id, &entries, |p| p.receivers.contains(id));
                let built = cfg
                    .build(ConnectorContext {
                        settings: stage.settings(id, shared),
                        next,
                    })
                    .await
                    .map_err(|e| start_err(Kind::Connector, id, e))?;
                if let Some(task) = built.task {
                    stage.spawn("connector", id.to_string(), task, early.clone());
                }
                connectors.insert(id.clone(), built.consumer);
            }
            Node::Pipeline(pid) => {
                let Some(p) = l.service.pipelines.get(pid) else {
                    continue;
                };
                let outs: Vec<SharedConsumer> = p
                    .exporters
                    .iter()
                    .filter_map(|e| exporters.get(e).or_else(|| connectors.get(e)).cloned())
                    .collect();
                let mut next = Fanout::of(outs);
                for pr in p.processors.iter().rev() {
                    let Some(AnyConfig::Processor(cfg)) = l.processors.get(pr).map(|c| &c.config)
                    else {
                        continue;
                    };
                    let built = cfg
                        .build(ProcessorContext {
                            settings: stage.settings(pr, shared),
                            pipeline: pid.clone(),
                            next,
                        })
                        .await
                        .map_err(|e| StartError {
                            pipeline: Some(pid.clone()),
                            ..start_err(Kind::Processor, pr, e)
                        })?;
                    if let Some(task) = built.task {
                        stage.spawn("processor", format!("{pr} in {pid}"), task, early.clone());
                    }
                    next = built.consumer;
                }
                entries.insert(pid.clone(), next);
            }
        }
        nodes.push((node, stage));
    }

    // Receivers last: binding their sockets opens the door.
    for (id, c) in &l.receivers {
        let AnyConfig::Receiver(cfg) = &c.config else {
            continue;
        };
        if !l
            .service
            .pipelines
            .values()
            .any(|p| p.receivers.contains(id))
        {
            continue;
        }
        let next = router_for(l, id, &entries, |p| p.receivers.contains(id));
        let task = cfg
            .build(ReceiverContext {
                settings: receivers_stage.settings(id, shared),
                next,
            })
            .await
            .map_err(|e| start_err(Kind::Receiver, id, e))?;
        receivers_stage.spawn("receiver", id.to_string(), task, early.clone());
    }
    Ok(Started { metrics_address })
}

/// For a receiver or connector: per signal, a fanout over the entries of the pipelines that list it.
fn router_for(
    l: &Loaded,
    _id: &ComponentId,
    entries: &HashMap<PipelineId, SharedConsumer>,
    lists: impl Fn(&crate::config::PipelineConfig) -> bool,
) -> Router {
    let mut router = Router::new();
    for kind in SignalKind::ALL {
        let consumers: Vec<SharedConsumer> = l
            .service
            .pipelines
            .iter()
            .filter(|(pid, p)| pid.signal() == kind && lists(p))
            .filter_map(|(pid, _)| entries.get(pid).cloned())
            .collect();
        if !consumers.is_empty() {
            router.set(kind, Fanout::of(consumers));
        }
    }
    router
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_errors_name_the_component_and_keep_their_cause() {
        let bind = || authwatch_core::BuildError::Bind {
            addr: ([127, 0, 0, 1], 4317).into(),
            source: std::io::ErrorKind::AddrInUse.into(),
        };
        let id: ComponentId = "batch".parse().unwrap();
        let e = StartError {
            pipeline: Some("traces".parse().unwrap()),
            ..start_err(Kind::Processor, &id, bind())
        };
        assert_eq!(
            e.to_string(),
            "cannot start processor \"batch\": in pipeline traces: cannot listen on 127.0.0.1:4317: address in use; is another process using the port?"
        );
        assert!(matches!(e.source, StartCause::Build(_)));
        let id: ComponentId = "otlp".parse().unwrap();
        let e = start_err(Kind::Receiver, &id, bind());
        assert!(e
            .to_string()
            .starts_with("cannot start receiver \"otlp\": cannot listen on"));
        assert!(std::error::Error::source(&e).is_some());
    }
}
