//! Log-stream health: `GET /api/v2/log-streams[/{id}]`, and the push stream's silence.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use authwatch_core::{Router, Signal, SignalKind};
use serde::Deserialize;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::api::{Api, ApiError};
use super::stats::{Stats, StreamSeen, STREAM_STATUSES};
use super::super::ingest::Ingest;

/// One log stream as the API describes it; only what is needed is read (the sink, with its
/// secrets, is never read).
#[derive(Deserialize)]
struct Stream {
    id: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    status: String,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Streams {
    Many(Vec<Stream>),
    One(Stream),
}

pub(crate) struct StreamsPoller {
    pub api: Api,
    pub id: String,
    pub interval: Duration,
    pub stats: Arc<Stats>,
    pub ingest: Arc<Ingest>,
    pub push_on: bool,
    pub next: Router,
    pub shutdown: CancellationToken,
}

/// A status as a bounded label.
fn status_label(s: &str) -> String {
    if STREAM_STATUSES.contains(&s) {
        s.to_owned()
    } else {
        "other".to_owned()
    }
}

fn short(s: &str) -> String {
    s.chars().take(128).collect()
}

impl StreamsPoller {
    async fn poll(&mut self) -> Result<Vec<StreamSeen>, ApiError> {
        let path = if self.id.is_empty() {
            "/api/v2/log-streams".to_owned()
        } else {
            format!("/api/v2/log-streams/{}", self.id)
        };
        let url = self
            .api
            .base
            .join(&path)
            .map_err(|_| ApiError::Malformed("log stream URL".into()))?;
        let answer = self.api.get(&url).await?;
        let streams: Streams = serde_json::from_slice(&answer.body)
            .map_err(|e| ApiError::Malformed(format!("log streams: {e}")))?;
        let list = match streams {
            Streams::Many(v) => v,
            Streams::One(s) => vec![s],
        };
        Ok(list
            .into_iter()
            .map(|s| StreamSeen {
                id: short(&s.id),
                name: short(&s.name),
                status: status_label(&s.status),
            })
            .collect())
    }

    pub(crate) async fn run(mut self) {
        let mut last: Vec<StreamSeen> = Vec::new();
        loop {
            match self.poll().await {
                Ok(seen) => {
                    self.stats.request("log_streams", "ok");
                    for s in &seen {
                        let before = last.iter().find(|l| l.id == s.id).map(|l| l.status.as_str());
                        if before != Some(s.status.as_str()) {
                            if s.status == "active" {
                                info!(stream = %s.id, name = %s.name, status = %s.status, "Auth0 log stream status.");
                            } else {
                                warn!(stream = %s.id, name = %s.name, status = %s.status, "Auth0 log stream is not active: its events are not pushed.");
                            }
                        }
                    }
                    last = seen.clone();
                    self.stats.streams(seen);
                }
                Err(e) => {
                    self.stats.request(
                        if matches!(e, ApiError::Token(_)) { "token" } else { "log_streams" },
                        e.outcome(),
                    );
                    warn!(error = %e, "Cannot read the Auth0 log streams.");
                }
            }
            self.stats.ratelimit(self.api.ratelimit);
            if self.push_on {
                let since = self.ingest.last_push().unwrap_or(self.ingest.started());
                let secs = SystemTime::now()
                    .duration_since(since)
                    .unwrap_or(Duration::ZERO)
                    .as_secs_f64();
                self.stats.silence(secs);
            }
            if self.next.accepts(SignalKind::Metrics) {
                let _ = self.next.route(Signal::Metrics(self.stats.export())).await;
            }
            tokio::select! {
                _ = self.shutdown.cancelled() => break,
                _ = tokio::time::sleep(self.interval) => {}
            }
        }
    }
}
