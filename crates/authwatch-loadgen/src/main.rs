//! `authwatch-loadgen`: drives authwatch for the end-to-end benchmark (`scripts/bench.sh`).
//!
//! - `send`: OTLP/gRPC or OTLP/HTTP traces sender (realistic identity-provider client spans),
//!   for a fixed duration or request count, optionally at a fixed rate; reports spans/s, request
//!   latency and errors.
//! - `sink`: an OTLP/gRPC and OTLP/HTTP server that counts the spans arriving (on the wire, no
//!   decoding) and reports spans/s; stops after `--duration` or on SIGINT/SIGTERM.
//! - `startup`: starts a command repeatedly and times how long until its ports accept.
//! - `detect`: detection latency, from client spans showing a failing provider to the alert
//!   event, to a real Alertmanager and to the status page (authwatch's default config).
//!
//! Every address must be a loopback address, and every mode stops by itself.
#![forbid(unsafe_code)]

mod codec;
mod detect;
mod send;
mod sink;
mod startup;

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand, ValueEnum};

#[derive(Parser)]
#[command(
    name = "authwatch-loadgen",
    about = "Load generator, counting sink and startup timer for authwatch's benchmark (loopback only)."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Send traces to an OTLP endpoint and report spans/s, latency and errors.
    Send(send::Args),
    /// Count the spans that arrive over OTLP/gRPC and OTLP/HTTP.
    Sink(sink::Args),
    /// Time a command from start until all `--addr` ports accept connections.
    Startup(startup::Args),
    /// Time client spans of a failing provider to the alert event, Alertmanager and status page.
    Detect(detect::Args),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Protocol {
    Grpc,
    Http,
}

/// Parses `host:port` (or `http://host:port`) and refuses anything but a loopback address:
/// this tool must never load a machine it was not meant for.
pub fn loopback(s: &str) -> anyhow::Result<SocketAddr> {
    let bare = s.strip_prefix("http://").unwrap_or(s).trim_end_matches('/');
    let bare = match bare.strip_prefix("localhost:") {
        Some(port) => format!("127.0.0.1:{port}"),
        None => bare.to_string(),
    };
    let addr: SocketAddr = bare.parse().with_context(|| {
        format!("`{s}` is not host:port with an IP address; use 127.0.0.1:PORT")
    })?;
    if !addr.ip().is_loopback() {
        bail!("`{s}` is not a loopback address; authwatch-loadgen only targets 127.0.0.0/8 or ::1");
    }
    Ok(addr)
}

pub fn parse_duration(s: &str) -> Result<Duration, humantime::DurationError> {
    humantime::parse_duration(s)
}

/// Milliseconds with three decimals, for reports.
pub fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

/// The `q` quantile (0..=1) of sorted values, nearest rank.
pub fn quantile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Send(args) => send::main(args),
        Command::Sink(args) => sink::main(args),
        Command::Startup(args) => startup::main(args),
        Command::Detect(args) => detect::main(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("authwatch-loadgen: {e:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_targets() {
        assert!(loopback("127.0.0.1:4317").is_ok());
        assert!(loopback("http://localhost:4318/").is_ok());
        assert!(loopback("[::1]:4317").is_ok());
        assert!(loopback("10.0.0.1:4317").is_err());
        assert!(loopback("collector:4317").is_err());
    }

    #[test]
    fn nearest_rank_quantiles() {
        let v: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(quantile(&v, 0.5), Duration::from_millis(50));
        assert_eq!(quantile(&v, 0.99), Duration::from_millis(99));
        assert_eq!(quantile(&v, 1.0), Duration::from_millis(100));
        assert_eq!(quantile(&[], 0.5), Duration::ZERO);
    }
}
