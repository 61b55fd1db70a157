//! authwatch's service: turns YAML files into a validated pipeline graph, builds it from the
//! component factories it is handed (it never names a concrete component), runs it, and drains
//! it in data order on shutdown.
#![forbid(unsafe_code)]

pub mod config;
pub mod graph;
mod load;
pub mod run;
pub mod telemetry;

pub use config::{ConfigSource, LoadError, Loaded};
pub use load::load;
pub use run::{run, RunOutcome};
