//! Config decoding, in the Collector's two phases: the top level is decoded into raw sections,
//! then each component's value is decoded as its own concrete `Config` (so unknown fields are
//! caught with exact paths) and validated. [`crate::load`] then checks the pipeline graph;
//! every problem is collected, sorted by path and reported at once.

mod source;
mod telemetry;

use std::time::Duration;

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

use authwatch_core::config::duration;
use authwatch_core::{
    AnyConfig, ComponentId, ConfigError, Factories, Factory, Kind, PipelineId, Validator,
};

pub use source::{expand_env, merge, ConfigSource};
pub use telemetry::*;

/// The `service` section.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ServiceConfig {
    /// Extensions to start, by id.
    pub extensions: Vec<ComponentId>,
    pub pipelines: IndexMap<PipelineId, PipelineConfig>,
    pub telemetry: TelemetryConfig,
    /// How long shutdown may take to drain pipelines and flush exporters before it gives up.
    #[serde(with = "duration")]
    pub shutdown_timeout: Duration,
}

impl Default for ServiceConfig {
    fn default() -> Self {
        ServiceConfig {
            extensions: Vec::new(),
            pipelines: IndexMap::new(),
            telemetry: TelemetryConfig::default(),
            shutdown_timeout: Duration::from_secs(30),
        }
    }
}

/// One pipeline: receivers → processors (in order) → exporters.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct PipelineConfig {
    pub receivers: Vec<ComponentId>,
    pub processors: Vec<ComponentId>,
    pub exporters: Vec<ComponentId>,
}

/// One configured component: its id as written, its factory and its decoded config.
pub struct Component {
    pub id: ComponentId,
    pub factory: Factory,
    pub config: AnyConfig,
}

/// A loaded, validated config.
pub struct Loaded {
    pub receivers: IndexMap<ComponentId, Component>,
    pub processors: IndexMap<ComponentId, Component>,
    pub exporters: IndexMap<ComponentId, Component>,
    pub connectors: IndexMap<ComponentId, Component>,
    pub extensions: IndexMap<ComponentId, Component>,
    pub service: ServiceConfig,
    /// Problems that do not stop authwatch (unset env vars, unused components, ...).
    pub warnings: Vec<ConfigError>,
    /// Components whose config failed to decode: graph checks do not report them again.
    pub(crate) invalid: std::collections::HashSet<(Kind, ComponentId)>,
    /// The service section failed to decode: graph checks are skipped.
    pub(crate) service_invalid: bool,
}

impl std::fmt::Debug for Loaded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Loaded")
            .field("receivers", &self.receivers.keys().collect::<Vec<_>>())
            .field("processors", &self.processors.keys().collect::<Vec<_>>())
            .field("exporters", &self.exporters.keys().collect::<Vec<_>>())
            .field("connectors", &self.connectors.keys().collect::<Vec<_>>())
            .field("extensions", &self.extensions.keys().collect::<Vec<_>>())
            .field("service", &self.service)
            .finish()
    }
}

impl Loaded {
    pub fn section(&self, kind: Kind) -> &IndexMap<ComponentId, Component> {
        match kind {
            Kind::Receiver => &self.receivers,
            Kind::Processor => &self.processors,
            Kind::Exporter => &self.exporters,
            Kind::Connector => &self.connectors,
            Kind::Extension => &self.extensions,
        }
    }

    /// The effective config as YAML: every component with its defaults filled in, secrets
    /// redacted (what `authwatch print-config` prints).
    pub fn to_yaml(&self) -> String {
        let mut top = serde_json::Map::new();
        for kind in [
            Kind::Receiver,
            Kind::Processor,
            Kind::Connector,
            Kind::Exporter,
            Kind::Extension,
        ] {
            let section = self.section(kind);
            if section.is_empty() {
                continue;
            }
            let mut m = serde_json::Map::new();
            for (id, c) in section {
                m.insert(id.to_string(), c.config.as_component().to_value());
            }
            top.insert(kind.section().to_owned(), serde_json::Value::Object(m));
        }
        top.insert(
            "service".into(),
            serde_json::to_value(&self.service).unwrap_or_default(),
        );
        serde_yaml::to_string(&serde_json::Value::Object(top)).unwrap_or_default()
    }
}

/// Why a config could not be loaded: every problem, sorted by path.
#[derive(Debug, thiserror::Error)]
#[error("{}", .errors.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n"))]
pub struct LoadError {
    pub errors: Vec<ConfigError>,
    pub warnings: Vec<ConfigError>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    receivers: Option<IndexMap<String, serde_json::Value>>,
    #[serde(default)]
    processors: Option<IndexMap<String, serde_json::Value>>,
    #[serde(default)]
    exporters: Option<IndexMap<String, serde_json::Value>>,
    #[serde(default)]
    connectors: Option<IndexMap<String, serde_json::Value>>,
    #[serde(default)]
    extensions: Option<IndexMap<String, serde_json::Value>>,
    #[serde(default)]
    service: Option<serde_json::Value>,
}

/// A config decoded and each component validated, with the problems found so far; the pipeline
/// graph is not checked yet (that is [`crate::load`]'s next step).
pub struct Decoded {
    pub loaded: Loaded,
    pub errors: Vec<ConfigError>,
    pub warnings: Vec<ConfigError>,
}

/// Merges (in order), expands and decodes config documents, validating each component. Fails
/// early only when the documents cannot be read as a config at all.
pub fn decode(
    sources: &[ConfigSource],
    factories: &Factories,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Decoded, LoadError> {
    let fail =
        |errors: Vec<ConfigError>, warnings: Vec<ConfigError>| LoadError { errors, warnings };
    let mut errors: Vec<ConfigError> = factories
        .duplicates()
        .iter()
        .map(|d| ConfigError::new("", d.clone()))
        .collect();

    let mut merged = serde_yaml::Value::Mapping(Default::default());
    for s in sources {
        match s.read() {
            Ok(v) => merge(&mut merged, v),
            Err(e) => errors.push(e),
        }
    }
    if !errors.is_empty() {
        return Err(fail(errors, Vec::new()));
    }
    let plaintext = source::plaintext_secrets(&merged);
    let expansion = expand_env(&mut merged, env);
    errors.extend(expansion.errors);
    let mut warnings = expansion.warnings;
    warnings.extend(plaintext);

    let json = match serde_json::to_value(&merged) {
        Ok(j) => j,
        Err(e) => {
            errors.push(ConfigError::new(
                "",
                format!("config cannot be read as data: {e}"),
            ));
            return Err(fail(errors, warnings));
        }
    };
    let raw: RawConfig = match serde_path_to_error::deserialize(json) {
        Ok(r) => r,
        Err(e) => {
            let path = e.path().to_string().replace('.', "::");
            let msg = e
                .into_inner()
                .to_string()
                .replace("unknown field", "unknown section");
            errors.push(ConfigError::new(
                if path == "?" { String::new() } else { path },
                msg,
            ));
            return Err(fail(errors, warnings));
        }
    };

    let mut invalid = std::collections::HashSet::new();
    let mut decode_section = |kind: Kind, raw: Option<IndexMap<String, serde_json::Value>>| {
        let mut out = IndexMap::new();
        for (key, value) in raw.unwrap_or_default() {
            let section = kind.section();
            let id: ComponentId = match key.parse() {
                Ok(id) => id,
                Err(e) => {
                    errors.push(ConfigError::new(
                        format!("{section}::{key}"),
                        format!("invalid id: {e}"),
                    ));
                    continue;
                }
            };
            let root = format!("{section}::{id}");
            if out.contains_key(&id) {
                errors.push(ConfigError::new(root, "configured twice"));
                continue;
            }
            let Some(factory) = factories.get(kind, id.ty()) else {
                invalid.insert((kind, id.clone()));
                let valid = factories.type_names(kind);
                errors.push(ConfigError::new(
                    root,
                    format!(
                        "unknown {kind} type `{}`; valid types: {}",
                        id.ty(),
                        if valid.is_empty() {
                            "(none)".to_owned()
                        } else {
                            valid.join(", ")
                        }
                    ),
                ));
                continue;
            };
            let config = match factory.decode(value) {
                Ok(c) => c,
                Err(e) => {
                    invalid.insert((kind, id.clone()));
                    let path = if e.path.is_empty() {
                        root
                    } else {
                        format!("{root}::{}", e.path)
                    };
                    errors.push(ConfigError::new(path, e.message));
                    continue;
                }
            };
            let mut v = Validator::new(root);
            config.as_component().validate_dyn(&mut v);
            let (e, w) = v.into_parts();
            errors.extend(e);
            warnings.extend(w);
            out.insert(
                id.clone(),
                Component {
                    id,
                    factory: *factory,
                    config,
                },
            );
        }
        out
    };
    let receivers = decode_section(Kind::Receiver, raw.receivers);
    let processors = decode_section(Kind::Processor, raw.processors);
    let exporters = decode_section(Kind::Exporter, raw.exporters);
    let connectors = decode_section(Kind::Connector, raw.connectors);
    let extensions = decode_section(Kind::Extension, raw.extensions);

    let mut service_invalid = false;
    let service = match raw.service {
        None | Some(serde_json::Value::Null) => {
            errors.push(ConfigError::new(
                "service",
                "missing: at least one pipeline must be configured under `service::pipelines`",
            ));
            service_invalid = true;
            ServiceConfig::default()
        }
        Some(v) => match serde_path_to_error::deserialize::<_, ServiceConfig>(v) {
            Ok(s) => s,
            Err(e) => {
                let mut path = vec!["service".to_owned()];
                path.extend(e.path().iter().filter_map(|seg| match seg {
                    serde_path_to_error::Segment::Seq { index } => Some(index.to_string()),
                    serde_path_to_error::Segment::Map { key } => Some(key.clone()),
                    serde_path_to_error::Segment::Enum { variant } => Some(variant.clone()),
                    serde_path_to_error::Segment::Unknown => None,
                }));
                errors.push(ConfigError::new(
                    path.join("::"),
                    e.into_inner().to_string(),
                ));
                service_invalid = true;
                ServiceConfig::default()
            }
        },
    };

    let loaded = Loaded {
        receivers,
        processors,
        exporters,
        connectors,
        extensions,
        service,
        warnings: Vec::new(),
        invalid,
        service_invalid,
    };
    Ok(Decoded {
        loaded,
        errors,
        warnings,
    })
}
