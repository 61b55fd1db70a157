//! Pipeline graph checks and ordering: every reference configured, signals supported,
//! connectors used on both sides, no cycles, no port claimed twice.

use std::collections::{BTreeSet, HashMap, HashSet};

use authwatch_core::{
    AnyConfig, ComponentId, ConfigError, Holds, Kind, PipelineId, Resource, SignalKind, Signals,
};

use crate::config::Loaded;

/// What the graph checks found.
#[derive(Debug, Default)]
pub struct Checks {
    pub errors: Vec<ConfigError>,
    pub warnings: Vec<ConfigError>,
}

fn signals_of(c: &AnyConfig) -> Signals {
    match c {
        AnyConfig::Receiver(r) => r.signals(),
        AnyConfig::Processor(p) => p.signals(),
        AnyConfig::Exporter(e) => e.signals(),
        AnyConfig::Connector(_) | AnyConfig::Extension(_) => Signals::ALL,
    }
}

fn routes_of(l: &Loaded, id: &ComponentId) -> &'static [(SignalKind, SignalKind)] {
    match l.connectors.get(id).map(|c| &c.config) {
        Some(AnyConfig::Connector(c)) => c.routes(),
        _ => &[],
    }
}

fn list(kinds: &BTreeSet<SignalKind>) -> String {
    kinds
        .iter()
        .map(|k| k.as_str())
        .collect::<Vec<_>>()
        .join(" or ")
}

/// Runs every graph check on a decoded config.
pub fn check(l: &Loaded) -> Checks {
    let mut c = Checks::default();
    let err =
        |c: &mut Checks, path: String, msg: String| c.errors.push(ConfigError::new(path, msg));

    if l.service.pipelines.is_empty() && !l.service_invalid {
        err(
            &mut c,
            "service::pipelines".into(),
            "at least one pipeline must be configured".into(),
        );
    }

    let mut used: HashSet<(Kind, ComponentId)> = HashSet::new();
    // connector id -> (signals it is exported to from, signals it receives into)
    let mut conn_in: HashMap<ComponentId, Vec<(PipelineId, SignalKind)>> = HashMap::new();
    let mut conn_out: HashMap<ComponentId, Vec<(PipelineId, SignalKind)>> = HashMap::new();

    for (pid, p) in &l.service.pipelines {
        let path = format!("service::pipelines::{pid}");
        let sig = pid.signal();
        if p.receivers.is_empty() {
            err(
                &mut c,
                path.clone(),
                "must have at least one receiver".into(),
            );
        }
        if p.exporters.is_empty() {
            err(
                &mut c,
                path.clone(),
                "must have at least one exporter".into(),
            );
        }
        let mut seen = HashSet::new();
        for r in &p.receivers {
            if !seen.insert(r) {
                err(
                    &mut c,
                    path.clone(),
                    format!("lists receiver \"{r}\" twice"),
                );
                continue;
            }
            if let Some(comp) = l.receivers.get(r) {
                used.insert((Kind::Receiver, r.clone()));
                if !signals_of(&comp.config).contains(sig) {
                    err(
                        &mut c,
                        path.clone(),
                        format!("receiver \"{r}\" does not support {sig}"),
                    );
                }
            } else if l.connectors.contains_key(r) {
                used.insert((Kind::Connector, r.clone()));
                conn_out
                    .entry(r.clone())
                    .or_default()
                    .push((pid.clone(), sig));
            } else if !l.invalid.contains(&(Kind::Receiver, r.clone()))
                && !l.invalid.contains(&(Kind::Connector, r.clone()))
            {
                err(
                    &mut c,
                    path.clone(),
                    format!("references receiver \"{r}\" which is not configured"),
                );
            }
        }
        let mut seen = HashSet::new();
        for p_id in &p.processors {
            if !seen.insert(p_id) {
                err(
                    &mut c,
                    path.clone(),
                    format!("lists processor \"{p_id}\" twice"),
                );
                continue;
            }
            if let Some(comp) = l.processors.get(p_id) {
                used.insert((Kind::Processor, p_id.clone()));
                if !signals_of(&comp.config).contains(sig) {
                    err(
                        &mut c,
                        path.clone(),
                        format!("processor \"{p_id}\" does not support {sig}"),
                    );
                }
            } else if !l.invalid.contains(&(Kind::Processor, p_id.clone())) {
                err(
                    &mut c,
                    path.clone(),
                    format!("references processor \"{p_id}\" which is not configured"),
                );
            }
        }
        let mut seen = HashSet::new();
        for e in &p.exporters {
            if !seen.insert(e) {
                err(
                    &mut c,
                    path.clone(),
                    format!("lists exporter \"{e}\" twice"),
                );
                continue;
            }
            if let Some(comp) = l.exporters.get(e) {
                used.insert((Kind::Exporter, e.clone()));
                if !signals_of(&comp.config).contains(sig) {
                    err(
                        &mut c,
                        path.clone(),
                        format!("exporter \"{e}\" does not support {sig}"),
                    );
                }
            } else if l.connectors.contains_key(e) {
                used.insert((Kind::Connector, e.clone()));
                conn_in
                    .entry(e.clone())
                    .or_default()
                    .push((pid.clone(), sig));
            } else if !l.invalid.contains(&(Kind::Exporter, e.clone()))
                && !l.invalid.contains(&(Kind::Connector, e.clone()))
            {
                err(
                    &mut c,
                    path.clone(),
                    format!("references exporter \"{e}\" which is not configured"),
                );
            }
        }
    }

    // A processor that acknowledges what it holds in memory in front of an exporter that keeps
    // its queue on disk: a kill -9 loses what the processor holds.
    for (pid, p) in &l.service.pipelines {
        let holds = |comp: Option<&crate::config::Component>, h: Holds| {
            comp.is_some_and(|c| c.config.as_component().holds_dyn() == h)
        };
        let in_memory: Vec<&ComponentId> = p
            .processors
            .iter()
            .filter(|id| holds(l.processors.get(*id), Holds::Memory))
            .collect();
        let on_disk: Vec<&ComponentId> = p
            .exporters
            .iter()
            .filter(|id| holds(l.exporters.get(*id), Holds::Disk))
            .collect();
        if let (Some(proc_), Some(exp)) = (in_memory.first(), on_disk.first()) {
            c.warnings.push(ConfigError::new(
                format!("service::pipelines::{pid}"),
                format!(
                    "processor \"{proc_}\" acknowledges data while it holds it only in memory, so a kill -9 \
                     loses what it holds although exporter \"{exp}\" keeps its sending queue on disk; \
                     remove \"{proc_}\" from this pipeline and batch in the exporter with \
                     `sending_queue.batch` instead"
                ),
            ));
        }
    }

    // Connectors: each use must be matched by a use on the other side with a supported route.
    for id in l.connectors.keys() {
        let routes = routes_of(l, id);
        let ins = conn_in.get(id).cloned().unwrap_or_default();
        let outs = conn_out.get(id).cloned().unwrap_or_default();
        for (pid, a) in &ins {
            let wanted: BTreeSet<SignalKind> = routes
                .iter()
                .filter(|(x, _)| x == a)
                .map(|(_, y)| *y)
                .collect();
            if wanted.is_empty() {
                err(
                    &mut c,
                    format!("service::pipelines::{pid}"),
                    format!("connector \"{id}\" does not accept {a}"),
                );
            } else if !outs.iter().any(|(_, b)| wanted.contains(b)) {
                err(
                    &mut c,
                    format!("service::pipelines::{pid}"),
                    format!("connector \"{id}\" is used as an exporter but no {} pipeline uses it as a receiver", list(&wanted)),
                );
            }
        }
        for (pid, b) in &outs {
            let wanted: BTreeSet<SignalKind> = routes
                .iter()
                .filter(|(_, y)| y == b)
                .map(|(x, _)| *x)
                .collect();
            if wanted.is_empty() {
                err(
                    &mut c,
                    format!("service::pipelines::{pid}"),
                    format!("connector \"{id}\" does not emit {b}"),
                );
            } else if !ins.iter().any(|(_, a)| wanted.contains(a)) {
                err(
                    &mut c,
                    format!("service::pipelines::{pid}"),
                    format!(
                        "connector \"{id}\" is used as a receiver but no {} pipeline exports to it",
                        list(&wanted)
                    ),
                );
            }
        }
    }

    // Extensions.
    let mut listed = HashSet::new();
    for (i, e) in l.service.extensions.iter().enumerate() {
        if !listed.insert(e) {
            err(
                &mut c,
                format!("service::extensions::{i}"),
                format!("lists extension \"{e}\" twice"),
            );
        } else if l.extensions.contains_key(e) {
            used.insert((Kind::Extension, e.clone()));
        } else if !l.invalid.contains(&(Kind::Extension, e.clone())) {
            err(
                &mut c,
                format!("service::extensions::{i}"),
                format!("references extension \"{e}\" which is not configured"),
            );
        }
    }

    // Unused components run nowhere: say so.
    for kind in Kind::ALL {
        for id in l.section(kind).keys() {
            if !used.contains(&(kind, id.clone())) {
                let where_ = if kind == Kind::Extension {
                    "service::extensions"
                } else {
                    "any pipeline"
                };
                c.warnings.push(ConfigError::new(
                    format!("{}::{id}", kind.section()),
                    format!("configured but not used in {where_}; it will not run"),
                ));
            }
        }
    }

    if let Some(cycle) = find_cycle(l) {
        err(
            &mut c,
            "service::pipelines".into(),
            format!("pipelines form a cycle through connectors: {cycle}"),
        );
    }

    // Resources: no two components (or the telemetry endpoint) on one port or file.
    let mut claims: Vec<(String, Resource)> = Vec::new();
    for (path, addr) in l.service.telemetry.metrics.pull_readers() {
        claims.push((path, Resource::Listen(addr)));
    }
    for kind in Kind::ALL {
        for (id, comp) in l.section(kind) {
            if !used.contains(&(kind, id.clone())) {
                continue;
            }
            for r in comp.config.as_component().resources_dyn() {
                claims.push((format!("{}::{id}", kind.section()), r));
            }
        }
    }
    for i in 0..claims.len() {
        for j in 0..i {
            if claims[i].1.conflicts_with(&claims[j].1) {
                err(
                    &mut c,
                    claims[i].0.clone(),
                    format!("{} is also claimed by {}", claims[i].1, claims[j].0),
                );
            }
        }
    }
    c
}

/// A node of the data-flow graph: pipelines feed connectors, connectors feed pipelines.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Node {
    Pipeline(PipelineId),
    Connector(ComponentId),
}

impl std::fmt::Display for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Node::Pipeline(p) => write!(f, "{p}"),
            Node::Connector(c) => write!(f, "connector {c}"),
        }
    }
}

fn next_nodes(l: &Loaded, n: &Node) -> Vec<Node> {
    match n {
        Node::Pipeline(pid) => l
            .service
            .pipelines
            .get(pid)
            .map(|p| {
                p.exporters
                    .iter()
                    .filter(|e| l.connectors.contains_key(*e))
                    .map(|e| Node::Connector(e.clone()))
                    .collect()
            })
            .unwrap_or_default(),
        Node::Connector(c) => l
            .service
            .pipelines
            .iter()
            .filter(|(_, q)| q.receivers.contains(c))
            .map(|(qid, _)| Node::Pipeline(qid.clone()))
            .collect(),
    }
}

/// A cycle in the data-flow graph: the nodes along it, the first one again at the end.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", .0.iter().map(Node::to_string).collect::<Vec<_>>().join(" -> "))]
struct Cycle(Vec<Node>);

/// Depth-first over the data-flow graph; post-order gives downstream-first build order.
fn walk(l: &Loaded) -> Result<Vec<Node>, Cycle> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Open,
        Done,
    }
    fn visit(
        l: &Loaded,
        n: &Node,
        marks: &mut HashMap<Node, Mark>,
        stack: &mut Vec<Node>,
        out: &mut Vec<Node>,
    ) -> Result<(), Cycle> {
        match marks.get(n) {
            Some(Mark::Done) => return Ok(()),
            Some(Mark::Open) => {
                let start = stack.iter().position(|s| s == n).unwrap_or(0);
                let mut path = stack[start..].to_vec();
                path.push(n.clone());
                return Err(Cycle(path));
            }
            None => {}
        }
        marks.insert(n.clone(), Mark::Open);
        stack.push(n.clone());
        for m in next_nodes(l, n) {
            visit(l, &m, marks, stack, out)?;
        }
        stack.pop();
        marks.insert(n.clone(), Mark::Done);
        out.push(n.clone());
        Ok(())
    }
    let mut marks = HashMap::new();
    let mut out = Vec::new();
    for pid in l.service.pipelines.keys() {
        visit(
            l,
            &Node::Pipeline(pid.clone()),
            &mut marks,
            &mut Vec::new(),
            &mut out,
        )?;
    }
    Ok(out)
}

fn find_cycle(l: &Loaded) -> Option<Cycle> {
    walk(l).err()
}

/// Pipelines and connectors ordered so that each comes after everything it feeds (build
/// order); reversed, it is the order in which to drain them. The graph has been checked for
/// cycles by [`check`].
pub fn build_order(l: &Loaded) -> Vec<Node> {
    walk(l).unwrap_or_default()
}
