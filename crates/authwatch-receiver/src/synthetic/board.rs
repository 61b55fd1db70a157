//! What the synthetic receiver publishes on the status board after every run (section
//! `probes`, shape in `authwatch_core::board`): the last runs of each check.

use std::collections::VecDeque;
use std::time::{Duration, SystemTime};

use authwatch_core::board::{self, StatusBoard};
use serde_json::{json, Map, Value};

use super::{Check, RunResult};

/// Runs kept per check.
pub(crate) const RUNS_KEPT: usize = 10;

/// One check's entry on the board.
pub(crate) struct ProbeBoard {
    board: StatusBoard,
    key: String,
    head: Value,
    runs: VecDeque<Value>,
}

fn unix(t: SystemTime) -> f64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_millis() as f64 / 1000.0)
}

fn ms(d: Duration) -> f64 {
    (d.as_micros() as f64 / 1000.0 * 10.0).round() / 10.0
}

/// The host of a URL (`https://user@host:443/x` → `host`); empty when there is none.
fn host_of(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let hostport = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if let Some(v6) = hostport.strip_prefix('[') {
        return v6.split(']').next().unwrap_or("").to_owned();
    }
    hostport.split(':').next().unwrap_or("").to_owned()
}

impl ProbeBoard {
    pub(crate) fn new(board: StatusBoard, receiver: &str, check: &Check) -> Self {
        let url = match check {
            Check::PasswordGrant(c) | Check::ClientCredentials(c) => c.token_url.as_str(),
            Check::Http(c) => c.url.as_str(),
            Check::AuthorizationCode(c) => c.authorize_url.as_deref().unwrap_or(&c.issuer),
        };
        ProbeBoard {
            board,
            key: format!("{receiver}/{}", check.name()),
            head: json!({
                "receiver": receiver,
                "check": check.name(),
                "type": check.type_name(),
                "server_address": host_of(url),
            }),
            runs: VecDeque::with_capacity(RUNS_KEPT),
        }
    }

    /// Adds a run (newest first) and publishes the check's entry.
    pub(crate) fn publish(&mut self, r: &RunResult) {
        self.runs.push_front(run_json(r));
        self.runs.truncate(RUNS_KEPT);
        let mut v = self.head.clone();
        v["runs"] = Value::Array(self.runs.iter().cloned().collect());
        self.board.publish(board::PROBES, &self.key, v);
    }
}

/// One run as the board shows it; holds no secret (the run result holds none).
pub(crate) fn run_json(r: &RunResult) -> Value {
    let phases: Map<String, Value> = r
        .phases()
        .into_iter()
        .map(|(k, d)| (k.to_owned(), json!(ms(d))))
        .collect();
    let ratelimit = if r.ratelimit.is_empty() {
        Value::Null
    } else {
        json!({"limit": r.ratelimit.limit, "remaining": r.ratelimit.remaining, "reset": r.ratelimit.reset})
    };
    json!({
        "started_at": unix(r.started_at),
        "outcome": r.outcome.as_str(),
        "success": r.outcome.is_success(),
        "degraded": r.degraded,
        "duration_ms": ms(r.duration()),
        "phases": phases,
        "status": r.status,
        "oauth_error": r.oauth_error,
        "error_type": r.error_type,
        "message": r.message,
        "ratelimit": ratelimit,
        "retry_after_s": r.retry_after.map(|d| d.as_secs_f64()),
        "cert_not_after": r.cert_not_after,
    })
}

#[cfg(test)]
mod tests {
    use super::host_of;

    #[test]
    fn hosts_of_urls() {
        assert_eq!(host_of("https://tenant.auth0.com/oauth/token"), "tenant.auth0.com");
        assert_eq!(host_of("http://127.0.0.1:8080/x"), "127.0.0.1");
        assert_eq!(host_of("https://u:p@h.example:443?q"), "h.example");
        assert_eq!(host_of("http://[::1]:80/"), "::1");
    }
}

#[cfg(test)]
mod publish_tests {
    use std::time::{Duration, SystemTime};

    use authwatch_core::board::{StatusBoard, PROBES};
    use tokio::time::Instant;

    use super::super::result::RateLimit;
    use super::super::{Check, OAuthCheck, Outcome, RunResult};
    use super::{ProbeBoard, RUNS_KEPT};

    fn result(outcome: Outcome, status: u16) -> RunResult {
        let start = Instant::now();
        RunResult {
            check: "login".into(),
            check_type: "password_grant",
            started_at: SystemTime::now(),
            start,
            end: start + Duration::from_millis(42),
            outcome,
            degraded_after: None,
            degraded: false,
            oauth_error: (status == 429).then(|| "too_many_requests".into()),
            error_type: None,
            message: None,
            status: Some(status),
            steps: vec![],
            jwks: None,
            validation: Some((start, start + Duration::from_millis(2))),
            ratelimit: RateLimit { limit: Some(100), remaining: Some(7), reset: Some(1_700_000_000) },
            cert_not_after: Some(1_800_000_000),
            retry_after: (status == 429).then(|| Duration::from_secs(2)),
            claims: vec![],
        }
    }

    #[tokio::test(start_paused = true)]
    async fn runs_are_published_newest_first_and_bounded() {
        let board = StatusBoard::default();
        let check = Check::PasswordGrant(OAuthCheck {
            name: "login".into(),
            token_url: "https://tenant.auth0.com/oauth/token".into(),
            ..OAuthCheck::default()
        });
        let mut pb = ProbeBoard::new(board.clone(), "synthetic/auth0", &check);
        pb.publish(&result(Outcome::Success, 200));
        pb.publish(&result(Outcome::RateLimited, 429));
        let e = board.section(PROBES)["synthetic/auth0/login"].clone();
        assert_eq!(e["check"], "login");
        assert_eq!(e["type"], "password_grant");
        assert_eq!(e["server_address"], "tenant.auth0.com");
        let runs = e["runs"].as_array().unwrap();
        assert_eq!(runs[0]["outcome"], "rate_limited");
        assert_eq!(runs[0]["success"], false);
        assert_eq!(runs[0]["retry_after_s"], 2.0);
        assert_eq!(runs[0]["ratelimit"]["remaining"], 7);
        assert_eq!(runs[1]["outcome"], "success");
        assert_eq!(runs[1]["duration_ms"], 42.0);
        assert_eq!(runs[1]["phases"]["validate"], 2.0);
        assert_eq!(runs[1]["cert_not_after"], 1_800_000_000);
        for _ in 0..20 {
            pb.publish(&result(Outcome::Success, 200));
        }
        let e = board.section(PROBES)["synthetic/auth0/login"].clone();
        assert_eq!(e["runs"].as_array().unwrap().len(), RUNS_KEPT);
    }
}
