//! Config errors with exact paths (`receivers::otlp::protocols: ...`), collected, never thrown.

use std::fmt;

/// One config problem, with the `::`-separated path of the value at fault.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ConfigError {
    pub path: String,
    pub message: String,
}

impl ConfigError {
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

impl std::error::Error for ConfigError {}

/// Collects errors and warnings for one component, rooted at its path (`receivers::otlp`).
/// `validate` implementations are pure: no sockets, files or DNS.
#[derive(Debug, Default)]
pub struct Validator {
    root: String,
    errors: Vec<ConfigError>,
    warnings: Vec<ConfigError>,
}

impl Validator {
    pub fn new(root: impl Into<String>) -> Self {
        Self {
            root: root.into(),
            ..Default::default()
        }
    }

    fn join(&self, sub: &str) -> String {
        match (self.root.is_empty(), sub.is_empty()) {
            (_, true) => self.root.clone(),
            (true, false) => sub.to_owned(),
            (false, false) => format!("{}::{}", self.root, sub),
        }
    }

    /// An error at `sub` below the root (`""` for the root itself; `a::b` for nested fields).
    pub fn error(&mut self, sub: &str, message: impl Into<String>) {
        let path = self.join(sub);
        self.errors.push(ConfigError::new(path, message));
    }

    /// A warning: printed, but the config is still valid.
    pub fn warn(&mut self, sub: &str, message: impl Into<String>) {
        let path = self.join(sub);
        self.warnings.push(ConfigError::new(path, message));
    }

    pub fn has_errors(&self) -> bool {
        !self.errors.is_empty()
    }

    pub fn errors(&self) -> &[ConfigError] {
        &self.errors
    }

    pub fn into_parts(self) -> (Vec<ConfigError>, Vec<ConfigError>) {
        (self.errors, self.warnings)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_join_with_double_colon() {
        let mut v = Validator::new("receivers::otlp");
        v.error("protocols", "at least one of `grpc` or `http` must be set");
        v.error("", "broken");
        v.warn("x::y", "careful");
        let (e, w) = v.into_parts();
        assert_eq!(
            e[0].to_string(),
            "receivers::otlp::protocols: at least one of `grpc` or `http` must be set"
        );
        assert_eq!(e[1].to_string(), "receivers::otlp: broken");
        assert_eq!(w[0].to_string(), "receivers::otlp::x::y: careful");
    }
}
