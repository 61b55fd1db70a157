//! Component and pipeline ids: `type[/name]`, as in the OpenTelemetry Collector.

use std::fmt;
use std::str::FromStr;

use crate::kind::SignalKind;

/// Why a `type[/name]` id was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("id must not be empty")]
    Empty,
    #[error("type `{0}` must start with a lowercase letter and contain only lowercase letters, digits and `_`")]
    BadType(String),
    #[error("name after `/` must not be empty")]
    EmptyName,
    #[error("name `{0}` must not contain whitespace or `/`")]
    BadName(String),
    #[error("pipeline type `{0}` is not one of `traces`, `metrics`, `logs`")]
    BadSignal(String),
}

/// A component id: `type` or `type/name`. The type is lower_snake_case.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ComponentId {
    ty: String,
    name: Option<String>,
}

impl ComponentId {
    pub fn new(ty: &str, name: Option<&str>) -> Result<Self, IdError> {
        validate_type(ty)?;
        if let Some(n) = name {
            validate_name(n)?;
        }
        Ok(Self {
            ty: ty.to_owned(),
            name: name.map(str::to_owned),
        })
    }

    /// The component type, e.g. `otlp` for `otlp/upstream`.
    pub fn ty(&self) -> &str {
        &self.ty
    }

    /// The part after `/`, if any.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// The same id with another type (used to resolve type aliases).
    pub fn with_type(&self, ty: &str) -> Self {
        Self {
            ty: ty.to_owned(),
            name: self.name.clone(),
        }
    }
}

fn validate_type(ty: &str) -> Result<(), IdError> {
    if ty.is_empty() {
        return Err(IdError::Empty);
    }
    let mut chars = ty.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_lowercase());
    if !first_ok
        || !ty
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    {
        return Err(IdError::BadType(ty.to_owned()));
    }
    Ok(())
}

fn validate_name(name: &str) -> Result<(), IdError> {
    if name.is_empty() {
        return Err(IdError::EmptyName);
    }
    if name.chars().any(|c| c.is_whitespace() || c == '/') {
        return Err(IdError::BadName(name.to_owned()));
    }
    Ok(())
}

impl FromStr for ComponentId {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, IdError> {
        let s = s.trim();
        if s.is_empty() {
            return Err(IdError::Empty);
        }
        match s.split_once('/') {
            Some((ty, name)) => Self::new(ty, Some(name)),
            None => Self::new(s, None),
        }
    }
}

impl fmt::Display for ComponentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.name {
            Some(n) => write!(f, "{}/{}", self.ty, n),
            None => f.write_str(&self.ty),
        }
    }
}

impl serde::Serialize for ComponentId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for ComponentId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A pipeline id: `traces`, `metrics` or `logs`, optionally `/name`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PipelineId {
    signal: SignalKind,
    name: Option<String>,
}

impl PipelineId {
    pub fn signal(&self) -> SignalKind {
        self.signal
    }
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }
}

impl FromStr for PipelineId {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, IdError> {
        let (ty, name) = match s.split_once('/') {
            Some((ty, name)) => (ty, Some(name)),
            None => (s, None),
        };
        let signal = match ty {
            "traces" => SignalKind::Traces,
            "metrics" => SignalKind::Metrics,
            "logs" => SignalKind::Logs,
            "" => return Err(IdError::Empty),
            other => return Err(IdError::BadSignal(other.to_owned())),
        };
        if let Some(n) = name {
            validate_name(n)?;
        }
        Ok(Self {
            signal,
            name: name.map(str::to_owned),
        })
    }
}

impl fmt::Display for PipelineId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.name {
            Some(n) => write!(f, "{}/{}", self.signal, n),
            None => write!(f, "{}", self.signal),
        }
    }
}

impl serde::Serialize for PipelineId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for PipelineId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_type_and_name() {
        let id: ComponentId = "otlp/upstream".parse().unwrap();
        assert_eq!(id.ty(), "otlp");
        assert_eq!(id.name(), Some("upstream"));
        assert_eq!(id.to_string(), "otlp/upstream");
        let id: ComponentId = "batch".parse().unwrap();
        assert_eq!(id.name(), None);
    }

    #[test]
    fn rejects_bad_ids() {
        assert_eq!("".parse::<ComponentId>(), Err(IdError::Empty));
        assert_eq!(
            "OTLP".parse::<ComponentId>(),
            Err(IdError::BadType("OTLP".into()))
        );
        assert_eq!("otlp/".parse::<ComponentId>(), Err(IdError::EmptyName));
        assert_eq!(
            "otlp/a b".parse::<ComponentId>(),
            Err(IdError::BadName("a b".into()))
        );
        assert_eq!(
            "9otlp".parse::<ComponentId>(),
            Err(IdError::BadType("9otlp".into()))
        );
    }

    #[test]
    fn pipeline_ids() {
        let p: PipelineId = "metrics/derived".parse().unwrap();
        assert_eq!(p.signal(), SignalKind::Metrics);
        assert_eq!(p.to_string(), "metrics/derived");
        assert_eq!(
            "spans".parse::<PipelineId>(),
            Err(IdError::BadSignal("spans".into()))
        );
    }
}
