//! Single-field rules of the checks' config, parsed when the config is read: accepted statuses,
//! regular expressions, JSON paths.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An accepted status: one code (`200`) or a class (`2xx`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusMatch {
    Code(u16),
    Class(u8),
}

impl StatusMatch {
    pub fn matches(self, status: u16) -> bool {
        match self {
            StatusMatch::Code(c) => c == status,
            StatusMatch::Class(c) => status / 100 == u16::from(c),
        }
    }
}

impl std::fmt::Display for StatusMatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StatusMatch::Code(c) => write!(f, "{c}"),
            StatusMatch::Class(c) => write!(f, "{c}xx"),
        }
    }
}

impl Serialize for StatusMatch {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            StatusMatch::Code(c) => s.serialize_u16(*c),
            StatusMatch::Class(_) => s.collect_str(self),
        }
    }
}

impl<'de> Deserialize<'de> for StatusMatch {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            N(u64),
            S(String),
        }
        let bad = |what: &str| {
            serde::de::Error::custom(format!(
                "invalid status `{what}`: write a code from 100 to 599 or a class like `2xx`"
            ))
        };
        let text = match Raw::deserialize(d)? {
            Raw::N(n) => n.to_string(),
            Raw::S(s) => s,
        };
        let t = text.trim().to_ascii_lowercase();
        if let Some(class) = t.strip_suffix("xx") {
            return match class.parse::<u8>() {
                Ok(c @ 1..=5) => Ok(StatusMatch::Class(c)),
                _ => Err(bad(&text)),
            };
        }
        match t.parse::<u16>() {
            Ok(c @ 100..=599) => Ok(StatusMatch::Code(c)),
            _ => Err(bad(&text)),
        }
    }
}

/// A regular expression, checked when the config is read.
#[derive(Debug, Clone)]
pub struct Pattern(pub regex::Regex);

impl PartialEq for Pattern {
    fn eq(&self, other: &Self) -> bool {
        self.0.as_str() == other.0.as_str()
    }
}

impl Serialize for Pattern {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.0.as_str())
    }
}

impl<'de> Deserialize<'de> for Pattern {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        regex::Regex::new(&s)
            .map(Pattern)
            .map_err(|e| serde::de::Error::custom(format!("invalid regular expression: {e}")))
    }
}

/// A JSON path in the common dotted form: `$.issuer`, `$.keys[0].kid`, `data.items[2]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JsonPath {
    text: String,
    steps: Vec<JsonStep>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum JsonStep {
    Key(String),
    Index(usize),
}

/// Why a JSON path was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid JSON path `{text}`: {problem}; write it like `$.keys[0].kid` or `$[\"a.b\"]`")]
pub struct JsonPathError {
    text: String,
    problem: JsonPathProblem,
}

/// What is wrong with a JSON path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
enum JsonPathProblem {
    #[error("unclosed `[`")]
    Unclosed,
    #[error("index must be a number")]
    Index,
    #[error("expected `.` or `[`")]
    Separator,
    #[error("empty key")]
    EmptyKey,
}

impl JsonPath {
    pub fn parse(text: &str) -> Result<JsonPath, JsonPathError> {
        let bad = |problem| JsonPathError {
            text: text.to_owned(),
            problem,
        };
        let mut rest = text.trim();
        rest = rest.strip_prefix('$').unwrap_or(rest);
        let mut steps = Vec::new();
        let mut first = true;
        while !rest.is_empty() {
            if let Some(r) = rest.strip_prefix('[') {
                let end = r.find(']').ok_or_else(|| bad(JsonPathProblem::Unclosed))?;
                let inner = r[..end].trim();
                if let Some(q) = inner
                    .strip_prefix('"')
                    .and_then(|x| x.strip_suffix('"'))
                    .or_else(|| inner.strip_prefix('\'').and_then(|x| x.strip_suffix('\'')))
                {
                    steps.push(JsonStep::Key(q.to_owned()));
                } else {
                    let i = inner.parse().map_err(|_| bad(JsonPathProblem::Index))?;
                    steps.push(JsonStep::Index(i));
                }
                rest = &r[end + 1..];
            } else {
                let r = match rest.strip_prefix('.') {
                    Some(r) => r,
                    None if first => rest,
                    None => return Err(bad(JsonPathProblem::Separator)),
                };
                let end = r.find(['.', '[']).unwrap_or(r.len());
                if end == 0 {
                    return Err(bad(JsonPathProblem::EmptyKey));
                }
                steps.push(JsonStep::Key(r[..end].to_owned()));
                rest = &r[end..];
            }
            first = false;
        }
        Ok(JsonPath {
            text: text.to_owned(),
            steps,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The value at this path, if there is one.
    pub fn get<'a>(&self, mut v: &'a serde_json::Value) -> Option<&'a serde_json::Value> {
        for s in &self.steps {
            v = match s {
                JsonStep::Key(k) => v.get(k.as_str())?,
                JsonStep::Index(i) => v.get(*i)?,
            };
        }
        Some(v)
    }
}

impl Serialize for JsonPath {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for JsonPath {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        JsonPath::parse(&s).map_err(serde::de::Error::custom)
    }
}
