//! Startup to listening: starts the command, polls every `--addr` (loopback) every half
//! millisecond until each accepts a TCP connection, records the time, kills the command, and
//! repeats. Reports min, median, p90 and max.

use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use crate::{loopback, ms, parse_duration, quantile};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Loopback address that must accept connections; repeat for several.
    #[arg(long = "addr", required = true)]
    addrs: Vec<String>,
    /// How many starts to time.
    #[arg(long, default_value_t = 20)]
    runs: usize,
    /// Give up on one start after this long.
    #[arg(long, value_parser = parse_duration, default_value = "10s")]
    timeout: Duration,
    /// Print the summary as one JSON object.
    #[arg(long)]
    json: bool,
    /// The command to start, after `--`.
    #[arg(last = true, required = true)]
    command: Vec<String>,
}

pub fn main(args: Args) -> anyhow::Result<()> {
    anyhow::ensure!((1..=1000).contains(&args.runs), "--runs must be 1..=1000");
    let addrs: Vec<SocketAddr> = args
        .addrs
        .iter()
        .map(|a| loopback(a))
        .collect::<anyhow::Result<_>>()?;
    let (program, rest) = args
        .command
        .split_first()
        .context("give the command to start after `--`")?;
    let mut times = Vec::with_capacity(args.runs);
    for run in 0..args.runs {
        // The previous instance must be gone: its ports free.
        for a in &addrs {
            let t = Instant::now();
            while TcpStream::connect_timeout(a, Duration::from_millis(50)).is_ok() {
                if t.elapsed() > args.timeout {
                    bail!("{a} is still accepting before run {run}; is something else listening?");
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        let start = Instant::now();
        let mut child = Command::new(program)
            .args(rest)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("cannot start {program}"))?;
        let mut pending = addrs.clone();
        let outcome = loop {
            pending.retain(|a| TcpStream::connect_timeout(a, Duration::from_millis(50)).is_err());
            if pending.is_empty() {
                break Ok(start.elapsed());
            }
            if let Ok(Some(status)) = child.try_wait() {
                break Err(anyhow::anyhow!(
                    "{program} exited with {status} before listening"
                ));
            }
            if start.elapsed() > args.timeout {
                break Err(anyhow::anyhow!(
                    "{program} did not listen within {:?}",
                    args.timeout
                ));
            }
            std::thread::sleep(Duration::from_micros(500));
        };
        let _ = child.kill();
        let _ = child.wait();
        times.push(outcome?);
    }
    times.sort_unstable();
    if args.json {
        let summary = serde_json::json!({
            "runs": times.len(),
            "ms": {
                "min": ms(quantile(&times, 0.0)),
                "p50": ms(quantile(&times, 0.5)),
                "p90": ms(quantile(&times, 0.9)),
                "max": ms(quantile(&times, 1.0)),
            },
        });
        println!("{summary}");
    } else {
        println!(
            "startup to listening over {} runs, ms: min {} p50 {} p90 {} max {}",
            times.len(),
            ms(quantile(&times, 0.0)),
            ms(quantile(&times, 0.5)),
            ms(quantile(&times, 0.9)),
            ms(quantile(&times, 1.0))
        );
    }
    Ok(())
}
