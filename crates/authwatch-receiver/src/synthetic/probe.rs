//! `authwatch probe`: run the configured checks once and print a readable report.

use std::fmt::{self, Write as _};
use std::time::SystemTime;

use serde::Serialize;

use authwatch_core::registry::decode_config;
use authwatch_core::{ComponentConfig, ConfigError, Validator};

use super::result::RunResult;
use super::run::CheckRunner;
use super::Config;

/// Why `probe` could not run.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("the config has no `synthetic` receiver; add one under `receivers:` to probe")]
    NoSyntheticReceiver,
    #[error("no check named `{0}`; configured checks: {1}")]
    UnknownCheck(String, String),
    #[error("{0}")]
    Config(ConfigError),
    #[error("check `{check}`: {source}")]
    Setup {
        check: String,
        #[source]
        source: Box<authwatch_net::TlsError>,
    },
}

/// The results of one probe run.
#[derive(Debug)]
pub struct ProbeReport {
    /// Per receiver id, its checks' results.
    pub results: Vec<(String, RunResult)>,
}

impl ProbeReport {
    /// True when every check succeeded.
    pub fn passed(&self) -> bool {
        !self.results.is_empty() && self.results.iter().all(|(_, r)| r.outcome.is_success())
    }
}

/// Finds the `synthetic` receivers of a whole config document (after `${env:...}` expansion)
/// and decodes and validates each.
pub fn configs_in_document<T: Serialize>(doc: &T) -> Result<Vec<(String, Config)>, ProbeError> {
    let doc = serde_json::to_value(doc).map_err(|e| {
        ProbeError::Config(ConfigError::new("", format!("config cannot be read: {e}")))
    })?;
    let mut out = Vec::new();
    let Some(receivers) = doc.get("receivers").and_then(|r| r.as_object()) else {
        return Ok(out);
    };
    for (id, value) in receivers {
        let ty = id.split('/').next().unwrap_or("");
        if ty != Config::TYPE {
            continue;
        }
        let root = format!("receivers::{id}");
        let cfg: Config = decode_config(value.clone()).map_err(|e| {
            let path = if e.path.is_empty() {
                root.clone()
            } else {
                format!("{root}::{}", e.path)
            };
            ProbeError::Config(ConfigError::new(path, e.message))
        })?;
        let mut v = Validator::new(root);
        cfg.validate(&mut v);
        if let Some(e) = v.errors().first() {
            return Err(ProbeError::Config(e.clone()));
        }
        out.push((id.clone(), cfg));
    }
    Ok(out)
}

/// Runs every check of `config` (or only `only`) once, one after the other.
pub async fn probe_once(config: &Config, only: Option<&str>) -> Result<Vec<RunResult>, ProbeError> {
    let mut out = Vec::new();
    for check in &config.checks {
        if only.is_some_and(|n| n != check.name()) {
            continue;
        }
        let (_, timeout) = config.schedule_of(check);
        let mut runner =
            CheckRunner::new(check.clone(), timeout).map_err(|source| ProbeError::Setup {
                check: check.name().to_owned(),
                source: Box::new(source),
            })?;
        out.push(runner.run().await);
    }
    Ok(out)
}

/// `authwatch probe`: the synthetic receivers of a config document, run once.
pub async fn probe_document<T: Serialize>(
    doc: &T,
    only: Option<&str>,
) -> Result<ProbeReport, ProbeError> {
    let configs = configs_in_document(doc)?;
    if configs.is_empty() {
        return Err(ProbeError::NoSyntheticReceiver);
    }
    if let Some(name) = only {
        let all: Vec<&str> = configs
            .iter()
            .flat_map(|(_, c)| c.checks.iter().map(|k| k.name()))
            .collect();
        if !all.contains(&name) {
            return Err(ProbeError::UnknownCheck(name.to_owned(), all.join(", ")));
        }
    }
    let mut results = Vec::new();
    for (id, cfg) in &configs {
        for r in probe_once(cfg, only).await? {
            results.push((id.clone(), r));
        }
    }
    Ok(ProbeReport { results })
}

fn ms(d: std::time::Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

impl fmt::Display for ProbeReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        for (id, r) in &self.results {
            let mark = if r.outcome.is_success() {
                "PASS"
            } else {
                "FAIL"
            };
            writeln!(
                f,
                "{mark}  {id} / {} ({})  outcome={}  {}",
                r.check,
                r.check_type,
                r.outcome,
                ms(r.duration())
            )?;
            if let Some(status) = r.status {
                write!(f, "      status: {status}")?;
                if let Some(e) = &r.oauth_error {
                    write!(f, "  oauth.error: {e}")?;
                }
                writeln!(f)?;
            }
            if let Some(m) = &r.message {
                writeln!(f, "      error: {m}")?;
            }
            let phases = r.phases();
            if !phases.is_empty() {
                let mut line = String::new();
                for (i, (p, d)) in phases.iter().enumerate() {
                    if i > 0 {
                        line.push_str(", ");
                    }
                    let _ = write!(line, "{p} {}", ms(*d));
                }
                writeln!(f, "      phases: {line}")?;
            }
            // The walk of an `authorization_code` check, hop by hop, as `curl -v` would show
            // it: URLs with their query values redacted, no header, cookie or body.
            for (n, (hop, ex)) in r.hops().enumerate() {
                let outcome = match &ex.result {
                    Ok(resp) => resp.status.to_string(),
                    Err(e) => e.error_type().to_owned(),
                };
                let page = hop.page.map(|p| format!("  page={p}")).unwrap_or_default();
                writeln!(
                    f,
                    "      hop {:>2}: {:<9} {} {} -> {outcome}{page}  {}",
                    n + 1,
                    hop.kind.as_str(),
                    ex.method,
                    ex.endpoint.url_full,
                    ms(ex.end.saturating_duration_since(ex.start))
                )?;
            }
            for (name, value) in &r.claims {
                writeln!(f, "      claim ok: {name} = {value}")?;
            }
            let rl = &r.ratelimit;
            if !rl.is_empty() {
                let show = |v: Option<i64>| v.map(|v| v.to_string()).unwrap_or_else(|| "?".into());
                write!(
                    f,
                    "      rate limit: {} of {} left",
                    show(rl.remaining),
                    show(rl.limit)
                )?;
                if let Some(reset) = rl.reset {
                    write!(f, ", resets in {} s", (reset - now).max(0))?;
                }
                writeln!(f)?;
            }
            if let Some(not_after) = r.cert_not_after {
                let days = (not_after - now) as f64 / 86_400.0;
                writeln!(f, "      certificate expires in {days:.1} days")?;
            }
            if let Some(d) = r.retry_after {
                writeln!(f, "      retry after: {} s", d.as_secs())?;
            }
        }
        let failed = self
            .results
            .iter()
            .filter(|(_, r)| !r.outcome.is_success())
            .count();
        if failed == 0 {
            write!(f, "All {} checks passed.", self.results.len())
        } else {
            write!(f, "{failed} of {} checks failed.", self.results.len())
        }
    }
}
