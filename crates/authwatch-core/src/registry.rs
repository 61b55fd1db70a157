//! Factories: how the service finds a component by its YAML `type`, decodes its config with exact
//! error paths, and builds it without naming it. Each component crate registers its components in
//! one line:
//!
//! ```ignore
//! authwatch_core::components!(Receiver: otlp, synthetic);
//! ```

use std::collections::BTreeMap;
use std::fmt;

use futures::future::BoxFuture;
use serde::Serialize;

use crate::component::*;
use crate::kind::{SignalKind, Signals};
use crate::validate::{ConfigError, Validator};

/// The kinds of component, as named in the config's top-level sections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Receiver,
    Processor,
    Exporter,
    Connector,
    Extension,
}

impl Kind {
    pub const ALL: [Kind; 5] = [
        Kind::Receiver,
        Kind::Processor,
        Kind::Exporter,
        Kind::Connector,
        Kind::Extension,
    ];

    /// The config section, e.g. `receivers`.
    pub fn section(self) -> &'static str {
        match self {
            Kind::Receiver => "receivers",
            Kind::Processor => "processors",
            Kind::Exporter => "exporters",
            Kind::Connector => "connectors",
            Kind::Extension => "extensions",
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Receiver => "receiver",
            Kind::Processor => "processor",
            Kind::Exporter => "exporter",
            Kind::Connector => "connector",
            Kind::Extension => "extension",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Object-safe view of any component config.
pub trait DynComponent: Send + Sync {
    fn validate_dyn(&self, v: &mut Validator);
    fn resources_dyn(&self) -> Vec<Resource>;
    fn holds_dyn(&self) -> Holds;
    /// The config with defaults filled in and secrets redacted (for `print-config`).
    fn to_value(&self) -> serde_json::Value;
    /// The concrete config, for tools that know its type (`authwatch rules`, `authwatch probe`).
    fn as_any(&self) -> &dyn std::any::Any;
}

impl<C: ComponentConfig> DynComponent for C {
    fn validate_dyn(&self, v: &mut Validator) {
        self.validate(v)
    }
    fn resources_dyn(&self) -> Vec<Resource> {
        self.resources()
    }
    fn holds_dyn(&self) -> Holds {
        self.holds()
    }
    fn to_value(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

pub trait DynReceiver: DynComponent {
    fn signals(&self) -> Signals;
    fn build(&self, cx: ReceiverContext) -> BoxFuture<'_, Result<Running, BuildError>>;
}

impl<C: ReceiverConfig> DynReceiver for C {
    fn signals(&self) -> Signals {
        ReceiverConfig::signals(self)
    }
    fn build(&self, cx: ReceiverContext) -> BoxFuture<'_, Result<Running, BuildError>> {
        Box::pin(ReceiverConfig::build(self, cx))
    }
}

pub trait DynProcessor: DynComponent {
    fn signals(&self) -> Signals;
    fn build(&self, cx: ProcessorContext) -> BoxFuture<'_, Result<Built, BuildError>>;
}

impl<C: ProcessorConfig> DynProcessor for C {
    fn signals(&self) -> Signals {
        ProcessorConfig::signals(self)
    }
    fn build(&self, cx: ProcessorContext) -> BoxFuture<'_, Result<Built, BuildError>> {
        Box::pin(ProcessorConfig::build(self, cx))
    }
}

pub trait DynExporter: DynComponent {
    fn signals(&self) -> Signals;
    fn build(&self, settings: Settings) -> BoxFuture<'_, Result<Built, BuildError>>;
}

impl<C: ExporterConfig> DynExporter for C {
    fn signals(&self) -> Signals {
        ExporterConfig::signals(self)
    }
    fn build(&self, settings: Settings) -> BoxFuture<'_, Result<Built, BuildError>> {
        Box::pin(ExporterConfig::build(self, settings))
    }
}

pub trait DynConnector: DynComponent {
    fn routes(&self) -> &'static [(SignalKind, SignalKind)];
    fn build(&self, cx: ConnectorContext) -> BoxFuture<'_, Result<Built, BuildError>>;
}

impl<C: ConnectorConfig> DynConnector for C {
    fn routes(&self) -> &'static [(SignalKind, SignalKind)] {
        ConnectorConfig::routes(self)
    }
    fn build(&self, cx: ConnectorContext) -> BoxFuture<'_, Result<Built, BuildError>> {
        Box::pin(ConnectorConfig::build(self, cx))
    }
}

pub trait DynExtension: DynComponent {
    fn build(&self, settings: Settings) -> BoxFuture<'_, Result<Running, BuildError>>;
}

impl<C: ExtensionConfig> DynExtension for C {
    fn build(&self, settings: Settings) -> BoxFuture<'_, Result<Running, BuildError>> {
        Box::pin(ExtensionConfig::build(self, settings))
    }
}

/// A decoded component config of any kind.
pub enum AnyConfig {
    Receiver(Box<dyn DynReceiver>),
    Processor(Box<dyn DynProcessor>),
    Exporter(Box<dyn DynExporter>),
    Connector(Box<dyn DynConnector>),
    Extension(Box<dyn DynExtension>),
}

impl AnyConfig {
    /// The concrete config if it is a `C`.
    pub fn downcast<C: 'static>(&self) -> Option<&C> {
        self.as_component().as_any().downcast_ref::<C>()
    }

    pub fn as_component(&self) -> &dyn DynComponent {
        match self {
            AnyConfig::Receiver(c) => c.as_ref(),
            AnyConfig::Processor(c) => c.as_ref(),
            AnyConfig::Exporter(c) => c.as_ref(),
            AnyConfig::Connector(c) => c.as_ref(),
            AnyConfig::Extension(c) => c.as_ref(),
        }
    }
}

type DecodeFn = fn(serde_json::Value) -> Result<AnyConfig, ConfigError>;

/// How to find, decode and build one component type.
#[derive(Clone, Copy)]
pub struct Factory {
    pub kind: Kind,
    pub type_name: &'static str,
    pub aliases: &'static [&'static str],
    decode: DecodeFn,
}

impl fmt::Debug for Factory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.kind, self.type_name)
    }
}

impl Factory {
    /// Decodes the component's YAML value (`null` meaning `{}`). On error the [`ConfigError`]'s
    /// path is relative to the component (e.g. `protocols::grcp`).
    pub fn decode(&self, value: serde_json::Value) -> Result<AnyConfig, ConfigError> {
        (self.decode)(value)
    }
}

/// Decodes `value` into `C`, reporting the exact path of the first bad field.
pub fn decode_config<C: ComponentConfig>(value: serde_json::Value) -> Result<C, ConfigError> {
    let value = match value {
        serde_json::Value::Null => serde_json::Value::Object(Default::default()),
        v => v,
    };
    serde_path_to_error_like::deserialize(value)
}

mod serde_path_to_error_like {
    //! serde_path_to_error, with paths in the Collector's `a::b::0` form.
    use super::ConfigError;
    use serde::de::DeserializeOwned;

    pub fn deserialize<C: DeserializeOwned>(value: serde_json::Value) -> Result<C, ConfigError> {
        serde_path_to_error::deserialize(value).map_err(|e| {
            let path = e
                .path()
                .iter()
                .filter_map(|seg| match seg {
                    serde_path_to_error::Segment::Seq { index } => Some(index.to_string()),
                    serde_path_to_error::Segment::Map { key } => Some(key.clone()),
                    serde_path_to_error::Segment::Enum { variant } => Some(variant.clone()),
                    serde_path_to_error::Segment::Unknown => None,
                })
                .collect::<Vec<_>>()
                .join("::");
            ConfigError::new(path, e.into_inner().to_string())
        })
    }
}

/// Constructors the [`components!`](crate::components) macro calls, one per kind.
pub mod kinds {
    use super::*;

    pub struct Receiver;
    impl Receiver {
        pub fn factory<C: ReceiverConfig>() -> Factory {
            Factory {
                kind: Kind::Receiver,
                type_name: C::TYPE,
                aliases: C::ALIASES,
                decode: |v| Ok(AnyConfig::Receiver(Box::new(decode_config::<C>(v)?))),
            }
        }
    }

    pub struct Processor;
    impl Processor {
        pub fn factory<C: ProcessorConfig>() -> Factory {
            Factory {
                kind: Kind::Processor,
                type_name: C::TYPE,
                aliases: C::ALIASES,
                decode: |v| Ok(AnyConfig::Processor(Box::new(decode_config::<C>(v)?))),
            }
        }
    }

    pub struct Exporter;
    impl Exporter {
        pub fn factory<C: ExporterConfig>() -> Factory {
            Factory {
                kind: Kind::Exporter,
                type_name: C::TYPE,
                aliases: C::ALIASES,
                decode: |v| Ok(AnyConfig::Exporter(Box::new(decode_config::<C>(v)?))),
            }
        }
    }

    pub struct Connector;
    impl Connector {
        pub fn factory<C: ConnectorConfig>() -> Factory {
            Factory {
                kind: Kind::Connector,
                type_name: C::TYPE,
                aliases: C::ALIASES,
                decode: |v| Ok(AnyConfig::Connector(Box::new(decode_config::<C>(v)?))),
            }
        }
    }

    pub struct Extension;
    impl Extension {
        pub fn factory<C: ExtensionConfig>() -> Factory {
            Factory {
                kind: Kind::Extension,
                type_name: C::TYPE,
                aliases: C::ALIASES,
                decode: |v| Ok(AnyConfig::Extension(Box::new(decode_config::<C>(v)?))),
            }
        }
    }
}

/// All known component types, by kind and name (aliases included).
#[derive(Debug, Default, Clone)]
pub struct Factories {
    by_kind: BTreeMap<Kind, BTreeMap<&'static str, Factory>>,
    /// Duplicate registrations, reported by the service at startup.
    duplicates: Vec<String>,
}

impl Factories {
    pub fn add(&mut self, f: Factory) {
        let map = self.by_kind.entry(f.kind).or_default();
        for name in std::iter::once(f.type_name).chain(f.aliases.iter().copied()) {
            if map.insert(name, f).is_some() {
                self.duplicates
                    .push(format!("duplicate {} factory for type `{name}`", f.kind));
            }
        }
    }

    /// Adds every factory of `other`.
    pub fn merge(mut self, other: Factories) -> Factories {
        for f in other.all() {
            self.add(f);
        }
        self.duplicates.extend(other.duplicates);
        self
    }

    /// Finds a factory by type name or alias.
    pub fn get(&self, kind: Kind, ty: &str) -> Option<&Factory> {
        self.by_kind.get(&kind)?.get(ty)
    }

    /// Canonical type names of one kind (aliases left out), sorted.
    pub fn type_names(&self, kind: Kind) -> Vec<&'static str> {
        let mut v: Vec<_> = self
            .by_kind
            .get(&kind)
            .into_iter()
            .flat_map(|m| m.iter())
            .filter(|(name, f)| **name == f.type_name)
            .map(|(name, _)| *name)
            .collect();
        v.sort_unstable();
        v
    }

    /// Every factory once (aliases folded), by kind then name.
    pub fn all(&self) -> Vec<Factory> {
        self.by_kind
            .values()
            .flat_map(|m| m.iter())
            .filter(|(name, f)| **name == f.type_name)
            .map(|(_, f)| *f)
            .collect()
    }

    pub fn duplicates(&self) -> &[String] {
        &self.duplicates
    }
}

/// Declares a component crate's modules and its `factories()` function in one line per kind:
///
/// ```ignore
/// authwatch_core::components!(Processor: batch, memory_limiter; Connector: forward);
/// ```
///
/// Each module must define `pub struct Config` implementing the kind's trait, whose `TYPE` equals
/// the module name (a generated test checks it).
#[macro_export]
macro_rules! components {
    ($($kind:ident: $($module:ident),+ $(,)?);+ $(;)?) => {
        $($(pub mod $module;)+)+

        /// Every component this crate provides.
        pub fn factories() -> $crate::Factories {
            let mut f = $crate::Factories::default();
            $($(f.add($crate::registry::kinds::$kind::factory::<$module::Config>());)+)+
            f
        }

        #[cfg(test)]
        #[test]
        fn component_types_equal_module_names() {
            $($(
                let ty = <$module::Config as $crate::ComponentConfig>::TYPE;
                assert_eq!(ty, stringify!($module), "TYPE must equal the module name");
                assert!(
                    ty.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
                    "TYPE `{}` must be lower_snake_case", ty
                );
            )+)+
            assert!(factories().duplicates().is_empty(), "{:?}", factories().duplicates());
        }
    };
}
