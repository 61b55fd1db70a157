//! Config sources: files (or embedded text), `${env:VAR}` expansion and merging, as the
//! Collector's confmap does.

use serde_yaml::Value;

use authwatch_core::ConfigError;

/// Where one config document comes from.
#[derive(Debug, Clone)]
pub enum ConfigSource {
    /// A file path given with `--config`.
    File(std::path::PathBuf),
    /// Text compiled into the binary (the embedded default), with a name for messages.
    Embedded { name: String, text: String },
}

impl ConfigSource {
    pub fn name(&self) -> String {
        match self {
            ConfigSource::File(p) => p.display().to_string(),
            ConfigSource::Embedded { name, .. } => name.clone(),
        }
    }

    /// Reads and parses the document. An empty document is an empty mapping.
    pub fn read(&self) -> Result<Value, ConfigError> {
        let text = match self {
            ConfigSource::File(p) => std::fs::read_to_string(p).map_err(|e| {
                ConfigError::new("", format!("cannot read config file {}: {e}", p.display()))
            })?,
            ConfigSource::Embedded { text, .. } => text.clone(),
        };
        parse_yaml(&text).map_err(|e| ConfigError::new("", format!("{}: {e}", self.name())))
    }
}

/// Why a config document is not a config.
#[derive(Debug, thiserror::Error)]
enum DocumentError {
    #[error("invalid YAML: {0}")]
    Yaml(#[from] serde_yaml::Error),
    #[error("the config must be a YAML mapping with `receivers`, `exporters`, `service`, ...")]
    NotMapping,
}

fn parse_yaml(text: &str) -> Result<Value, DocumentError> {
    if text.trim().is_empty() {
        return Ok(Value::Mapping(Default::default()));
    }
    let v: Value = serde_yaml::from_str(text)?;
    match v {
        Value::Mapping(_) => Ok(v),
        Value::Null => Ok(Value::Mapping(Default::default())),
        _ => Err(DocumentError::NotMapping),
    }
}

/// Merges `over` into `base`: mappings merge key by key, anything else is replaced
/// (lists included), so later `--config` files override earlier ones.
pub fn merge(base: &mut Value, over: Value) {
    match (base, over) {
        (Value::Mapping(b), Value::Mapping(o)) => {
            for (k, v) in o {
                match b.get_mut(&k) {
                    Some(slot) => merge(slot, v),
                    None => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (slot, v) => *slot = v,
    }
}

/// Config keys whose values are credentials.
const SECRET_KEYS: &[&str] = &[
    "password",
    "client_secret",
    "secret",
    "bearer_token",
    "api_key",
    "apikey",
    "authorization",
];

/// Warnings for credentials written in the config in plain text rather than as `${env:NAME}`
/// references (keys such as `password`, `client_secret`, `token`, and every value under
/// `headers`). Run before expansion; the values themselves are never printed.
pub fn plaintext_secrets(v: &Value) -> Vec<ConfigError> {
    fn walk(v: &Value, path: &mut Vec<String>, under_headers: bool, out: &mut Vec<ConfigError>) {
        match v {
            Value::Mapping(m) => {
                for (k, val) in m {
                    let key = key_to_string(k);
                    let lower = key.to_ascii_lowercase();
                    path.push(key);
                    let secret_key = under_headers
                        || SECRET_KEYS
                            .iter()
                            .any(|s| lower == *s || lower.ends_with(&format!("_{s}")))
                        || lower.ends_with("_token");
                    match val {
                        Value::String(text) if secret_key => {
                            if !text.is_empty() && !text.contains("${") {
                                out.push(ConfigError::new(
                                    path.join("::"),
                                    "looks like a credential written in plain text; use an environment variable reference such as `${env:NAME}`",
                                ));
                            }
                        }
                        _ => walk(val, path, lower == "headers", out),
                    }
                    path.pop();
                }
            }
            Value::Sequence(seq) => {
                for (i, val) in seq.iter().enumerate() {
                    path.push(i.to_string());
                    walk(val, path, false, out);
                    path.pop();
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(v, &mut Vec::new(), false, &mut out);
    out
}

/// Something `${...}` expansion noticed but did not refuse.
#[derive(Debug, Default)]
pub struct Expansion {
    pub errors: Vec<ConfigError>,
    pub warnings: Vec<ConfigError>,
}

/// Expands `${env:VAR}`, `${env:VAR:-default}` and the `$$` escape in every string scalar.
/// A string that is exactly one reference takes the YAML type of the variable's value
/// (`${env:PORT}` with PORT=4317 is a number), as in the Collector.
pub fn expand_env(v: &mut Value, lookup: &dyn Fn(&str) -> Option<String>) -> Expansion {
    let mut out = Expansion::default();
    expand_at(v, &mut Vec::new(), lookup, &mut out);
    out
}

fn key_to_string(k: &Value) -> String {
    match k {
        Value::String(s) => s.clone(),
        other => serde_yaml::to_string(other)
            .map(|s| s.trim().to_owned())
            .unwrap_or_default(),
    }
}

fn expand_at(
    v: &mut Value,
    path: &mut Vec<String>,
    lookup: &dyn Fn(&str) -> Option<String>,
    out: &mut Expansion,
) {
    match v {
        Value::String(s) => {
            if !s.contains('$') {
                return;
            }
            match expand_str(s, lookup) {
                Ok((text, whole, missing)) => {
                    for name in missing {
                        out.warnings.push(ConfigError::new(
                            path.join("::"),
                            format!("environment variable {name} is not set; using an empty value"),
                        ));
                    }
                    *v = if whole {
                        typed_scalar(text)
                    } else {
                        Value::String(text)
                    };
                }
                Err(e) => out
                    .errors
                    .push(ConfigError::new(path.join("::"), e.to_string())),
            }
        }
        Value::Mapping(m) => {
            for (k, val) in m.iter_mut() {
                path.push(key_to_string(k));
                expand_at(val, path, lookup, out);
                path.pop();
            }
        }
        Value::Sequence(seq) => {
            for (i, val) in seq.iter_mut().enumerate() {
                path.push(i.to_string());
                expand_at(val, path, lookup, out);
                path.pop();
            }
        }
        Value::Tagged(t) => expand_at(&mut t.value, path, lookup, out),
        _ => {}
    }
}

/// A whole-string reference takes the YAML scalar type of its value; structures stay strings.
fn typed_scalar(text: String) -> Value {
    match serde_yaml::from_str::<Value>(&text) {
        Ok(v @ (Value::Bool(_) | Value::Number(_))) => v,
        _ => Value::String(text),
    }
}

/// A `${...}` reference that cannot be expanded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
enum ExpandError {
    #[error("unterminated `${{` in `{0}`; write `$$` for a literal `$`")]
    Unterminated(String),
    #[error("unsupported config provider `{provider}` in `${{{body}}}`; only `${{env:NAME}}` is supported")]
    Provider { provider: String, body: String },
    #[error("invalid environment variable name `{name}` in `${{{body}}}`")]
    VariableName { name: String, body: String },
}

/// Returns (expanded text, whether the input was exactly one reference, unset variables).
fn expand_str(
    s: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<(String, bool, Vec<String>), ExpandError> {
    let mut out = String::with_capacity(s.len());
    let mut missing = Vec::new();
    let mut refs = 0;
    let mut rest = s;
    let mut only_ref = true;
    while let Some(i) = rest.find('$') {
        if i > 0 {
            only_ref = false;
        }
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(stripped) = after.strip_prefix('$') {
            out.push('$');
            only_ref = false;
            rest = stripped;
            continue;
        }
        if let Some(body_start) = after.strip_prefix('{') {
            let end = body_start
                .find('}')
                .ok_or_else(|| ExpandError::Unterminated(s.to_owned()))?;
            let body = &body_start[..end];
            let (provider, reference) = match body.split_once(':') {
                Some((p, r)) => (p, r),
                None => ("env", body),
            };
            if provider != "env" {
                return Err(ExpandError::Provider {
                    provider: provider.to_owned(),
                    body: body.to_owned(),
                });
            }
            let (name, default) = match reference.split_once(":-") {
                Some((n, d)) => (n, Some(d)),
                None => (reference, None),
            };
            if name.is_empty()
                || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                || name.starts_with(|c: char| c.is_ascii_digit())
            {
                return Err(ExpandError::VariableName {
                    name: name.to_owned(),
                    body: body.to_owned(),
                });
            }
            match lookup(name) {
                Some(val) => out.push_str(&val),
                None => match default {
                    Some(d) => out.push_str(d),
                    None => missing.push(name.to_owned()),
                },
            }
            refs += 1;
            rest = &body_start[end + 1..];
            continue;
        }
        // A lone `$` not followed by `{` or `$` is kept as is.
        out.push('$');
        only_ref = false;
        rest = after;
    }
    if !rest.is_empty() {
        only_ref = false;
        out.push_str(rest);
    }
    Ok((out, only_ref && refs == 1, missing))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "DOMAIN" => Some("tenant.auth0.com".into()),
            "PORT" => Some("4317".into()),
            "FLAG" => Some("true".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    fn expand(yaml: &str) -> (Value, Expansion) {
        let mut v: Value = serde_yaml::from_str(yaml).unwrap();
        let e = expand_env(&mut v, &env);
        (v, e)
    }

    #[test]
    fn expands_env_references() {
        let (v, e) = expand("a: https://${env:DOMAIN}/oauth/token\nb: ${env:PORT}\nc: ${env:FLAG}\nd: ${env:NOPE:-fallback}\ne: cost $$5\nf: ${DOMAIN}\ng: x${env:PORT}");
        assert!(e.errors.is_empty() && e.warnings.is_empty());
        assert_eq!(
            v["a"],
            Value::String("https://tenant.auth0.com/oauth/token".into())
        );
        assert_eq!(v["b"], Value::Number(4317.into()));
        assert_eq!(v["c"], Value::Bool(true));
        assert_eq!(v["d"], Value::String("fallback".into()));
        assert_eq!(v["e"], Value::String("cost $5".into()));
        assert_eq!(v["f"], Value::String("tenant.auth0.com".into()));
        assert_eq!(v["g"], Value::String("x4317".into()));
    }

    #[test]
    fn missing_env_warns_with_path() {
        let (v, e) = expand("receivers:\n  x:\n    token: ${env:NOPE}\n");
        assert_eq!(v["receivers"]["x"]["token"], Value::String(String::new()));
        assert_eq!(
            e.warnings[0].to_string(),
            "receivers::x::token: environment variable NOPE is not set; using an empty value"
        );
    }

    #[test]
    fn bad_references_are_errors() {
        let (_, e) = expand("a: ${file:/etc/passwd}\nb: ${env:NOPE\nc: ${env:9X}");
        let msgs: Vec<String> = e.errors.iter().map(|e| e.to_string()).collect();
        assert_eq!(msgs.len(), 3, "{msgs:?}");
        assert!(msgs[0].starts_with("a: unsupported config provider `file`"));
        assert!(msgs[1].starts_with("b: unterminated"));
        assert!(msgs[2].starts_with("c: invalid environment variable name `9X`"));
    }

    #[test]
    fn plaintext_credentials_warn_without_showing_the_value() {
        let v: Value = serde_yaml::from_str(
            "receivers:\n  synthetic:\n    checks:\n      - password: hunter2\n        client_secret: ${env:S}\n        username: probe\nexporters:\n  otlphttp:\n    headers: {x-honeycomb-team: abc123, x-env: '${env:K}'}\n    auth: {bearer_token: ''}\n",
        )
        .unwrap();
        let w: Vec<String> = plaintext_secrets(&v)
            .iter()
            .map(|e| e.to_string())
            .collect();
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(
            w[0].starts_with("receivers::synthetic::checks::0::password: looks like a credential")
        );
        assert!(w[1].starts_with("exporters::otlphttp::headers::x-honeycomb-team: looks like"));
        assert!(w
            .iter()
            .all(|x| !x.contains("hunter2") && !x.contains("abc123")));
    }

    #[test]
    fn merge_overrides_and_keeps() {
        let mut a: Value = serde_yaml::from_str("x: {a: 1, b: [1, 2]}\ny: 1").unwrap();
        let b: Value = serde_yaml::from_str("x: {b: [3], c: 4}").unwrap();
        merge(&mut a, b);
        let want: Value = serde_yaml::from_str("x: {a: 1, b: [3], c: 4}\ny: 1").unwrap();
        assert_eq!(a, want);
    }
}
