//! The demo's terminal: compact lines for the script's phases, probe runs, error rates, alerts
//! firing and resolving (with verdicts) and the provider's status, read from the status page's
//! JSON once a second (what a person on call would see on the page, as it happens).

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::Duration;

use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::{Phase, Script};

/// How often the error rates are summarised.
const RATES_EVERY: Duration = Duration::from_secs(5);

/// What has been printed already, so that only changes are.
pub struct Console {
    script: Script,
    url: String,
    phase: Option<Phase>,
    probe_seen: BTreeMap<String, f64>,
    firing: BTreeMap<String, Value>,
    provider: BTreeMap<String, String>,
    last_rates: Option<Duration>,
}

fn f(v: &Value, k: &str) -> Option<f64> {
    v.get(k).and_then(Value::as_f64)
}

fn st<'a>(v: &'a Value, k: &str) -> &'a str {
    v.get(k).and_then(Value::as_str).unwrap_or("")
}

fn pct(v: Option<f64>) -> String {
    v.map_or_else(|| "-".into(), |r| format!("{:.1}%", r * 100.0))
}

impl Console {
    pub fn new(script: Script, status_page: SocketAddr) -> Self {
        Console {
            script,
            url: format!("http://{status_page}/api/v1/status"),
            phase: None,
            probe_seen: BTreeMap::new(),
            firing: BTreeMap::new(),
            provider: BTreeMap::new(),
            last_rates: None,
        }
    }

    fn stamp(&self) -> String {
        format!("{:>4}s", self.script.elapsed().as_secs())
    }

    /// Polls the JSON once a second until `stop`, printing what changed.
    pub async fn run(mut self, stop: CancellationToken, print: impl Fn(String)) {
        let http = match reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
        {
            Ok(c) => c,
            Err(e) => {
                print(format!("[demo] cannot create an HTTP client: {e}"));
                return;
            }
        };
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        let mut up = false;
        loop {
            tokio::select! {
                biased;
                () = stop.cancelled() => break,
                _ = tick.tick() => {}
            }
            let phase = self.script.phase();
            if self.phase != Some(phase) {
                self.phase = Some(phase);
                print(format!("{} [script] {}", self.stamp(), phase.describe()));
            }
            let status = match http.get(&self.url).send().await {
                Ok(r) if r.status().is_success() => r
                    .bytes()
                    .await
                    .ok()
                    .and_then(|b| serde_json::from_slice::<Value>(&b).ok()),
                _ => None,
            };
            let Some(status) = status else { continue };
            if !up {
                up = true;
                print(format!(
                    "{} [demo] authwatch is running; open the status page: {}",
                    self.stamp(),
                    self.url.trim_end_matches("api/v1/status")
                ));
            }
            for line in self.update(&status) {
                print(line);
            }
        }
    }

    /// The lines for one status document.
    pub fn update(&mut self, s: &Value) -> Vec<String> {
        let mut out = Vec::new();
        let t = self.stamp();
        // Probe runs, oldest new one first.
        for p in s
            .get("probes")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let check = st(p, "check").to_owned();
            let seen = self.probe_seen.get(&check).copied().unwrap_or(0.0);
            let mut runs: Vec<&Value> = p
                .get("runs")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter(|r| f(r, "started_at").unwrap_or(0.0) > seen)
                .collect();
            runs.reverse();
            for r in runs {
                self.probe_seen
                    .insert(check.clone(), f(r, "started_at").unwrap_or(0.0));
                out.push(format!("{t} [probe] {}", probe_line(&check, r)));
            }
        }
        // Alerts firing and resolving.
        let firing: BTreeMap<String, Value> = s
            .pointer("/alerts/firing")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|a| (st(a, "fingerprint").to_owned(), a.clone()))
            .collect();
        for (fp, a) in &firing {
            if !self.firing.contains_key(fp) {
                out.push(format!(
                    "{t} [ALERT FIRING] {} verdict={} : {}",
                    st(a, "name"),
                    st(a, "verdict"),
                    st(a, "summary")
                ));
                out.push(format!("{t}                {}", st(a, "verdict_reason")));
            }
        }
        let resolved = s.pointer("/alerts/resolved").and_then(Value::as_array);
        for (fp, a) in &self.firing {
            if !firing.contains_key(fp) {
                let r = resolved
                    .into_iter()
                    .flatten()
                    .find(|r| st(r, "fingerprint") == fp)
                    .unwrap_or(a);
                out.push(format!(
                    "{t} [ALERT RESOLVED] {} (was verdict={})",
                    st(r, "name"),
                    st(r, "verdict")
                ));
            }
        }
        self.firing = firing;
        // The provider's status page, when it changes.
        for p in s
            .get("provider_status")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let page = st(p, "page").to_owned();
            let line = provider_line(p);
            if self.provider.get(&page) != Some(&line) {
                out.push(format!("{t} [provider status] {page}: {line}"));
                self.provider.insert(page, line);
            }
        }
        // Error rates every few seconds.
        let now = self.script.elapsed();
        if self
            .last_rates
            .is_none_or(|l| now.saturating_sub(l) >= RATES_EVERY)
        {
            self.last_rates = Some(now);
            for d in s
                .get("dependencies")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let windows: Vec<String> = d
                    .get("windows")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .map(|w| {
                        format!(
                            "{} {} ({}/{})",
                            st(w, "window"),
                            pct(f(w, "error_ratio")),
                            f(w, "errors").unwrap_or(0.0),
                            f(w, "requests").unwrap_or(0.0)
                        )
                    })
                    .collect();
                out.push(format!(
                    "{t} [error rate] {}: {} | verdict={}",
                    st(d, "name"),
                    windows.join(", "),
                    st(d, "verdict")
                ));
            }
        }
        out
    }

    /// Names of the alerts printed as firing (for tests).
    pub fn firing(&self) -> BTreeSet<String> {
        self.firing
            .values()
            .map(|a| st(a, "name").to_owned())
            .collect()
    }
}

fn probe_line(check: &str, r: &Value) -> String {
    let outcome = st(r, "outcome");
    let mut line = format!(
        "{check}: {outcome} in {:.0} ms",
        f(r, "duration_ms").unwrap_or(0.0)
    );
    if let Some(code) = r.get("status").and_then(Value::as_u64) {
        line.push_str(&format!(", HTTP {code}"));
    }
    if let Some(e) = r.get("oauth_error").and_then(Value::as_str) {
        line.push_str(&format!(" {e}"));
    }
    if let Some(Value::Object(ph)) = r.get("phases") {
        let parts: Vec<String> = ph
            .iter()
            .filter_map(|(k, v)| v.as_f64().map(|ms| format!("{k} {ms:.1}")))
            .collect();
        if !parts.is_empty() {
            line.push_str(&format!(" [{} ms]", parts.join(" ")));
        }
    }
    if let Some(rl) = r.get("ratelimit").filter(|v| v.is_object()) {
        if let (Some(rem), Some(lim)) = (f(rl, "remaining"), f(rl, "limit")) {
            line.push_str(&format!(", rate limit {rem}/{lim} left"));
        }
    }
    if let Some(ra) = f(r, "retry_after_s") {
        line.push_str(&format!(", retry after {ra:.1}s"));
    }
    line
}

fn provider_line(p: &Value) -> String {
    if p.get("up").and_then(Value::as_bool) != Some(true) {
        return format!("cannot be read ({})", st(p, "error"));
    }
    let names = ["none", "minor", "major", "critical"];
    let ind = p
        .get("indicator")
        .and_then(Value::as_u64)
        .and_then(|i| names.get(i as usize).copied())
        .unwrap_or("unknown");
    let incidents: Vec<String> = p
        .get("incidents")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|i| format!("{} ({})", st(i, "name"), st(i, "status")))
        .collect();
    if incidents.is_empty() {
        format!("indicator {ind}, no open incident")
    } else {
        format!("indicator {ind}, open: {}", incidents.join("; "))
    }
}
