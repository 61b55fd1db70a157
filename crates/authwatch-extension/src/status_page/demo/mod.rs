//! What `authwatch demo` runs besides authwatch itself: a stand-in OAuth2 identity provider on
//! loopback that goes through a scripted incident, client traffic against it that is reported
//! as real OTLP client spans, and the compact terminal lines read from the status page's JSON.
//!
//! It lives here, next to the page it shows off, because the binary crate's manifest carries
//! no HTTP server, JWT or gRPC client dependencies; the binary only wires it up.
//!
//! The script, as shares of the demo's duration:
//!
//! | share | phase | the stand-in ... |
//! | --- | --- | --- |
//! | 0–15% | healthy | answers every login; the status page is green |
//! | 15–40% | server errors | answers 60% of logins and every probe login with 5xx; the status page shows a major incident |
//! | 40–52% | rate limited | answers half the logins and the probe with 429, `Retry-After` and `x-ratelimit-remaining: 0`; the incident is being monitored |
//! | 52–75% | probe user locked | blocks the probe user (`too_many_attempts`); real traffic is fine; the incident is resolved |
//! | 75–100% | recovered | answers everything again |

mod console;
mod key;
mod provider;
mod traffic;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

pub use console::Console;
pub use provider::Provider;

/// The dependency name the demo config gives the stand-in.
pub const DEPENDENCY: &str = "demo_idp";
/// The probe user the synthetic check logs in as.
pub const PROBE_USER: &str = "probe@demo.test";
/// The probe user's password (a demo value).
pub const PROBE_PASSWORD: &str = "demo-probe-password";
/// The demo's OAuth client.
pub const CLIENT_ID: &str = "demo-client";
pub const CLIENT_SECRET: &str = "demo-client-secret";
/// The API the tokens are for.
pub const AUDIENCE: &str = "https://api.demo.test";

/// Where the scripted incident is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Healthy,
    ServerErrors,
    RateLimited,
    ProbeUserLocked,
    Recovered,
}

impl Phase {
    pub const ALL: [Phase; 5] = [
        Phase::Healthy,
        Phase::ServerErrors,
        Phase::RateLimited,
        Phase::ProbeUserLocked,
        Phase::Recovered,
    ];

    /// When the phase starts, as a share of the demo's duration.
    fn starts_at(self) -> f64 {
        match self {
            Phase::Healthy => 0.0,
            Phase::ServerErrors => 0.15,
            Phase::RateLimited => 0.40,
            Phase::ProbeUserLocked => 0.52,
            Phase::Recovered => 0.75,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Healthy => "healthy",
            Phase::ServerErrors => "server_errors",
            Phase::RateLimited => "rate_limited",
            Phase::ProbeUserLocked => "probe_user_locked",
            Phase::Recovered => "recovered",
        }
    }

    /// What the stand-in does from now on, for the terminal.
    pub fn describe(self) -> &'static str {
        match self {
            Phase::Healthy => "The provider is healthy: logins succeed, the status page is green.",
            Phase::ServerErrors => "A burst of 5xx: 60% of logins and every probe login fail; the provider's status page opens a major incident.",
            Phase::RateLimited => "Rate limiting: half the logins and the probe get 429 with Retry-After; the incident is being monitored.",
            Phase::ProbeUserLocked => "The probe user is locked (too_many_attempts): real traffic is fine, only the probe fails; the incident is resolved.",
            Phase::Recovered => "Recovery: everything succeeds again; alerts resolve.",
        }
    }
}

/// The scripted incident's clock.
#[derive(Debug, Clone, Copy)]
pub struct Script {
    start: Instant,
    duration: Duration,
}

impl Script {
    /// A script that starts now and lasts `duration`.
    pub fn new(duration: Duration) -> Self {
        Script {
            start: Instant::now(),
            duration,
        }
    }

    pub fn duration(&self) -> Duration {
        self.duration
    }

    pub fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }

    /// The phase at `elapsed` into the demo.
    pub fn phase_at(&self, elapsed: Duration) -> Phase {
        let share = elapsed.as_secs_f64() / self.duration.as_secs_f64().max(0.001);
        Phase::ALL
            .into_iter()
            .rev()
            .find(|p| share >= p.starts_at())
            .unwrap_or(Phase::Healthy)
    }

    pub fn phase(&self) -> Phase {
        self.phase_at(self.elapsed())
    }

    /// When `phase` starts, from the demo's start.
    pub fn start_of(&self, phase: Phase) -> Duration {
        self.duration.mul_f64(phase.starts_at())
    }
}

/// Options of `authwatch demo`.
#[derive(Debug, Clone)]
pub struct Options {
    /// How long the scripted incident lasts (the demo then stops).
    pub duration: Duration,
    /// Where the status page listens.
    pub status_page: SocketAddr,
}

/// A prepared demo: the stand-in is bound, the ports are chosen; nothing runs yet.
pub struct Demo {
    script: Script,
    provider: Provider,
    otlp: SocketAddr,
    status_page: SocketAddr,
    stop: CancellationToken,
}

/// The demo's variables for `configs/demo.yaml` (`${env:NAME:-default}`).
pub const ENV_PROVIDER: &str = "AUTHWATCH_DEMO_PROVIDER";
pub const ENV_OTLP: &str = "AUTHWATCH_DEMO_OTLP";
pub const ENV_STATUS_PAGE: &str = "AUTHWATCH_DEMO_STATUS_PAGE";

/// Why the demo could not start.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("cannot listen on loopback for the demo's {what}: {source}")]
    Bind {
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("the demo's signing key is unusable (a bug): {0}")]
    Key(String),
}

impl Demo {
    /// Binds the stand-in provider on a free loopback port and picks a free port for OTLP.
    pub async fn prepare(options: Options) -> Result<Demo, DemoError> {
        let script = Script::new(options.duration);
        let provider = Provider::bind(script).await?;
        let otlp = free_port().map_err(|source| DemoError::Bind {
            what: "OTLP receiver",
            source,
        })?;
        Ok(Demo {
            script,
            provider,
            otlp,
            status_page: options.status_page,
            stop: CancellationToken::new(),
        })
    }

    /// The variables `configs/demo.yaml` reads.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            (ENV_PROVIDER, self.provider.addr().to_string()),
            (ENV_OTLP, self.otlp.to_string()),
            (ENV_STATUS_PAGE, self.status_page.to_string()),
        ]
    }

    pub fn provider_addr(&self) -> SocketAddr {
        self.provider.addr()
    }

    pub fn status_page_url(&self) -> String {
        format!("http://{}/", self.status_page)
    }

    /// Resolves when the demo is over (its duration elapsed, or [`Demo::stop`]).
    pub async fn finished(&self) {
        tokio::select! {
            () = self.stop.cancelled() => {}
            () = tokio::time::sleep_until(self.script.start + self.script.duration) => self.stop.cancel(),
        }
    }

    /// Ends the demo early.
    pub fn stop(&self) {
        self.stop.cancel();
    }

    /// Serves the stand-in, sends the traffic and prints what happens (through `print`) until
    /// the demo is over.
    pub async fn drive(&self, print: impl Fn(String) + Send + Sync + 'static) {
        let print = Arc::new(print);
        let provider = self.provider.serve(self.stop.clone());
        let traffic = traffic::run(self.provider.addr(), self.otlp, self.stop.clone());
        let console = Console::new(self.script, self.status_page);
        let out = print.clone();
        let console = console.run(self.stop.clone(), move |l| out(l));
        tokio::join!(provider, traffic, console);
        print(format!(
            "[demo] The scripted incident is over after {}s; stopping authwatch.",
            self.script.elapsed().as_secs()
        ));
    }
}

/// A free loopback port (bound, then released for authwatch to bind).
fn free_port() -> std::io::Result<SocketAddr> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    l.local_addr()
}

#[cfg(test)]
mod tests;
