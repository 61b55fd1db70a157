//! The one trait each kind of component implements, on its `Config` struct (Vector's model):
//! type name, validation, claimed resources and `build`.
//!
//! Rule for every component: *`build` binds and may fail; what it returns runs until its
//! `shutdown` token is cancelled, finishes in-flight work, and never panics.*

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;

use futures::future::BoxFuture;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::consume::{Router, SharedConsumer};
use crate::health::Health;
use crate::id::{ComponentId, PipelineId};
use crate::kind::{SignalKind, Signals};
use crate::telemetry::Telemetry;
use crate::validate::Validator;

/// A component's serving task. It ends when the component's shutdown token is cancelled and its
/// in-flight work is done.
pub type Running = BoxFuture<'static, Result<(), RunError>>;

/// A component's own typed error, boxed so that [`BuildError`] and [`RunError`] can carry any.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A running component failed for good.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// A server stopped serving.
    #[error("{server} failed: {source}")]
    Serve {
        server: &'static str,
        #[source]
        source: BoxError,
    },
    /// A task of the component panicked (the panic itself was logged where it happened).
    #[error("{task} panicked")]
    Panicked { task: String },
    /// The component's own typed error.
    #[error(transparent)]
    Component(BoxError),
}

/// Why a component could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("cannot listen on {addr}: {source}; is another process using the port?")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    /// An option cannot be used as written (a file that does not read, a URL or header value the
    /// client refuses): `at` is the option's path, as in config errors.
    #[error("{at}: {source}")]
    Option {
        at: String,
        #[source]
        source: BoxError,
    },
    /// The component's own typed error.
    #[error(transparent)]
    Component(BoxError),
}

impl BuildError {
    /// The component's own error.
    pub fn component(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        BuildError::Component(Box::new(error))
    }

    /// The option at `at` (a config path such as `protocols::grpc::tls`) cannot be used.
    pub fn option(
        at: impl Into<String>,
        error: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        BuildError::Option {
            at: at.into(),
            source: Box::new(error),
        }
    }
}

/// Something a component instance claims for itself; two claims of one resource are a config error.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Resource {
    /// A TCP listen address.
    Listen(SocketAddr),
    /// A file or directory the component writes.
    Path(PathBuf),
}

impl Resource {
    /// Whether two claims collide (same port, with one address unspecified or both equal).
    pub fn conflicts_with(&self, other: &Resource) -> bool {
        match (self, other) {
            (Resource::Listen(a), Resource::Listen(b)) => {
                a.port() != 0
                    && a.port() == b.port()
                    && (a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified())
            }
            (Resource::Path(a), Resource::Path(b)) => a == b,
            _ => false,
        }
    }
}

impl std::fmt::Display for Resource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Resource::Listen(a) => write!(f, "listen address {a}"),
            Resource::Path(p) => write!(f, "path {}", p.display()),
        }
    }
}

/// Where a component keeps data it has already acknowledged to whoever sent it, as far as a
/// crash is concerned. The service warns when a pipeline holds in memory what one of its
/// exporters would otherwise keep on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Holds {
    /// It passes data on before answering (or keeps nothing that matters after a crash).
    #[default]
    Nothing,
    /// In memory: a `kill -9` loses it (a `batch` processor, a memory sending queue).
    Memory,
    /// On disk: it survives a crash (a persistent sending queue).
    Disk,
}

/// What the service hands every component's `build`.
#[derive(Clone)]
pub struct Settings {
    pub id: ComponentId,
    /// Cancelled when this component's stage must stop.
    pub shutdown: CancellationToken,
    pub telemetry: Telemetry,
    pub health: Health,
    /// Where components publish what the status page shows.
    pub board: crate::board::StatusBoard,
    /// What the run holds in memory, and admission before a request body is read.
    pub budget: crate::budget::MemoryBudget,
}

impl Settings {
    /// Settings for tests and tools: fresh telemetry, health and token.
    pub fn new(id: ComponentId) -> Self {
        Settings {
            id,
            shutdown: CancellationToken::new(),
            telemetry: Telemetry::new(),
            health: Health::default(),
            board: Default::default(),
            budget: Default::default(),
        }
    }
}

/// What a receiver's `build` gets: where to send, per signal.
pub struct ReceiverContext {
    pub settings: Settings,
    pub next: Router,
}

/// What a processor's `build` gets: the pipeline it sits in and the next consumer.
pub struct ProcessorContext {
    pub settings: Settings,
    pub pipeline: PipelineId,
    pub next: SharedConsumer,
}

impl ProcessorContext {
    pub fn signal(&self) -> SignalKind {
        self.pipeline.signal()
    }
}

/// What a connector's `build` gets: the pipelines it feeds, per signal.
pub struct ConnectorContext {
    pub settings: Settings,
    pub next: Router,
}

/// A built processor, exporter or connector: the consumer to feed it, and its task if it has one.
pub struct Built {
    pub consumer: SharedConsumer,
    pub task: Option<Running>,
}

/// Shared by every kind: the YAML `type`, defaults, single-component validation and resources.
pub trait ComponentConfig: DeserializeOwned + Serialize + Default + Send + Sync + 'static {
    /// YAML `type`, lower_snake_case; equals the module name. The only place it is written.
    const TYPE: &'static str;
    /// Other names users may write for this type (kept for compatibility).
    const ALIASES: &'static [&'static str] = &[];
    /// Cross-field rules only; single-field rules live in newtypes. Pure: no I/O.
    fn validate(&self, _v: &mut Validator) {}
    /// Ports and files this instance claims.
    fn resources(&self) -> Vec<Resource> {
        Vec::new()
    }
    /// Where this instance keeps acknowledged data (see [`Holds`]).
    fn holds(&self) -> Holds {
        Holds::Nothing
    }
}

pub trait ReceiverConfig: ComponentConfig {
    /// Which pipeline signals may list this receiver.
    fn signals(&self) -> Signals;
    /// Bind now (fail fast) and return the serving task.
    fn build(
        &self,
        cx: ReceiverContext,
    ) -> impl Future<Output = Result<Running, BuildError>> + Send;
}

pub trait ProcessorConfig: ComponentConfig {
    fn signals(&self) -> Signals {
        Signals::ALL
    }
    fn build(&self, cx: ProcessorContext)
        -> impl Future<Output = Result<Built, BuildError>> + Send;
}

pub trait ExporterConfig: ComponentConfig {
    fn signals(&self) -> Signals;
    fn build(&self, settings: Settings) -> impl Future<Output = Result<Built, BuildError>> + Send;
}

pub trait ConnectorConfig: ComponentConfig {
    /// The (input, output) signal pairs this connector supports.
    fn routes(&self) -> &'static [(SignalKind, SignalKind)];
    fn build(&self, cx: ConnectorContext)
        -> impl Future<Output = Result<Built, BuildError>> + Send;
}

pub trait ExtensionConfig: ComponentConfig {
    fn build(&self, settings: Settings)
        -> impl Future<Output = Result<Running, BuildError>> + Send;
}
