//! Helpers for the end-to-end tests: run the real `authwatch` binary with a config, read what it
//! prints, scrape its self-telemetry, stop it with a signal.
#![allow(dead_code)]

pub mod load;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub use authwatch_testkit::Scratch;

/// A free loopback port for authwatch to listen on. Ports are taken from 20000-32767, below
/// Linux's ephemeral range (32768-60999), so that they never collide with the ports that test
/// servers and outgoing connections get from the kernel (port 0) while tests run in parallel;
/// a per-process counter keeps parallel tests of one binary apart.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let base = 20_000 + (std::process::id() * 211) % 12_000;
    for _ in 0..12_767 {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = (20_000 + (base - 20_000 + n * 7) % 12_767) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port in 20000-32767");
}

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_authwatch")
}

/// A running authwatch process; killed on drop if still running.
pub struct Authwatch {
    child: Child,
    output: Arc<Mutex<String>>,
    _scratch: Option<Scratch>,
}

impl Authwatch {
    /// Starts `authwatch run --config <yaml>` and waits until it logs that it is ready.
    pub fn start(yaml: &str) -> Self {
        Self::start_with_env(yaml, &[])
    }

    pub fn start_with_env(yaml: &str, env: &[(&str, &str)]) -> Self {
        let scratch = Scratch::new("run");
        let cfg = scratch.write("config.yaml", yaml);
        let mut aw = Self::spawn(&["run", "--config", cfg.to_str().unwrap()], env);
        aw._scratch = Some(scratch);
        aw.wait_for_output("Everything is ready", Duration::from_secs(30));
        aw
    }

    /// Spawns the binary with arguments; stdout and stderr are collected together.
    pub fn spawn(args: &[&str], env: &[(&str, &str)]) -> Self {
        let mut cmd = Command::new(bin());
        cmd.args(args)
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn authwatch");
        let output = Arc::new(Mutex::new(String::new()));
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let out = output.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    let mut o = out.lock().unwrap();
                    o.push_str(&line);
                    o.push('\n');
                }
            });
        }
        Authwatch {
            child,
            output,
            _scratch: None,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything printed so far.
    pub fn output(&self) -> String {
        self.output.lock().unwrap().clone()
    }

    pub fn wait_for_output(&mut self, needle: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            if self.output().contains(needle) {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "authwatch exited with {status} before printing {needle:?}:\n{}",
                    self.output()
                );
            }
            if Instant::now() > deadline {
                panic!(
                    "authwatch did not print {needle:?} in time:\n{}",
                    self.output()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends a signal (`TERM`, `INT`, `KILL`) with the `kill` command.
    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([&format!("-{sig}"), &self.pid().to_string()])
            .status()
            .expect("run kill")
            .success();
        assert!(ok, "kill -{sig} failed");
    }

    /// Waits for the process to exit (panics after `timeout`).
    pub fn wait(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                // Let the reader threads drain the pipes.
                std::thread::sleep(Duration::from_millis(100));
                return s;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("authwatch did not exit in time:\n{}", self.output());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Authwatch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the binary to completion: (exit code, stdout, stderr).
pub fn run_cli(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut cmd = Command::new(bin());
    cmd.args(args).env("NO_COLOR", "1");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run authwatch");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// GETs the Prometheus text from the self-telemetry endpoint.
pub async fn scrape(addr: SocketAddr) -> String {
    reqwest::get(format!("http://{addr}/metrics"))
        .await
        .expect("scrape")
        .text()
        .await
        .unwrap()
}

/// The value of one sample line (`name{labels}`) in Prometheus text; 0 if absent.
pub fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| {
            l.strip_prefix(series)
                .and_then(|rest| rest.trim().parse().ok())
        })
        .unwrap_or(0.0)
}

/// Polls `f` until it returns true or `timeout` passes.
pub async fn eventually(timeout: Duration, mut f: impl AsyncFnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if f().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A process's resident set size in KiB (`VmRSS` in `/proc/PID/status`); `None` once it is gone.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

/// Samples a process's RSS every `every` on a thread until [`RssSampler::finish`].
pub struct RssSampler {
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<Vec<(Duration, u64)>>,
}

impl RssSampler {
    pub fn start(pid: u32, every: Duration) -> Self {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let s = stop.clone();
        let thread = std::thread::spawn(move || {
            let t0 = Instant::now();
            let mut samples = Vec::new();
            while !s.load(std::sync::atomic::Ordering::Relaxed) {
                if let Some(kib) = rss_kib(pid) {
                    samples.push((t0.elapsed(), kib));
                }
                std::thread::sleep(every);
            }
            samples
        });
        RssSampler { stop, thread }
    }

    /// Stops sampling; returns (time since start, RSS KiB) pairs.
    pub fn finish(self) -> Vec<(Duration, u64)> {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.thread.join().expect("RSS sampler thread")
    }
}

impl Authwatch {
    /// Whether the process is still running (it has not exited or been killed).
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}
