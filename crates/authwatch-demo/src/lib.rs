//! What `authwatch demo` runs besides authwatch itself: a stand-in OAuth2 identity provider on
//! loopback that goes through a scripted incident, client traffic against it that is reported
//! as real OTLP client spans, and the compact terminal lines read from the status page's JSON.
//!
//! It is its own crate so that the extension crate holds only extensions, and so that the
//! stand-in's HTTP server, JWT signing and gRPC client stay out of the components' dependencies.
//! It depends on `authwatch-core` alone (OTLP types, semantic conventions): the terminal reads
//! the status page's JSON over HTTP, as a browser does, so no component's types are needed. The
//! binary (`crates/authwatch/src/demo.rs`) only wires it up.
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
mod script;
mod traffic;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

pub use console::Console;
pub use provider::Provider;
pub use script::{Phase, Script};

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
    Key(#[source] base64::DecodeError),
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
            () = tokio::time::sleep_until(self.script.ends_at()) => self.stop.cancel(),
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
