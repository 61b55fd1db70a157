//! authwatch's core: component ids, the signal data model (OTLP protobuf types), the consumer
//! chain, component traits, config newtypes, validation, self-telemetry handles and the component
//! registry. No sockets and no YAML: everything that talks to the world lives in the component
//! crates, everything that reads files lives in `authwatch-service`.
#![forbid(unsafe_code)]

pub mod board;
pub mod budget;
pub mod component;
pub mod config;
pub mod consume;
pub mod data;
pub mod health;
pub mod id;
pub mod kind;
pub mod registry;
pub mod semconv;
pub mod signal;
pub mod telemetry;
pub mod time;
pub mod validate;
pub mod wire;

pub use budget::MemoryBudget;
pub use component::*;
pub use consume::{
    Backlog, ConsumeError, Consumer, Fanout, PartialRefusal, PermanentError, Router,
    SharedConsumer, SharedError,
};
pub use id::{ComponentId, IdError, PipelineId};
pub use registry::{AnyConfig, Factories, Factory, Kind};
pub use signal::{DecodeError, Signal, SignalKind, Signals};
pub use validate::{ConfigError, Validator};
pub use wire::Encoded;

/// The OTLP protobuf types, re-exported so that every crate uses one version.
pub use opentelemetry_proto::tonic as otlp;
