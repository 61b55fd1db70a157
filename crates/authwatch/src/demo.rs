//! `authwatch demo`: authwatch with the embedded `configs/demo.yaml`, in this process, watching a
//! stand-in identity provider on loopback that goes through a scripted incident (healthy, a
//! burst of 5xx, rate limiting, a locked probe user, recovery), with client traffic reported
//! as real OTLP spans. The terminal shows the script, probe runs, error rates, alerts with
//! their verdicts and the status page's URL. Wiring only: the stand-in, the traffic and the
//! terminal lines live in the `authwatch-demo` crate (`crates/authwatch-demo`).

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use authwatch_core::Factories;
use authwatch_demo::{Demo, Options};
use authwatch_service::ConfigSource;

/// The demo's config.
pub(crate) const DEMO_CONFIG: &str = include_str!("../../../configs/demo.yaml");

/// Shortest demo that still shows every phase.
const MIN_DURATION: Duration = Duration::from_secs(10);

pub(crate) fn run(duration: Duration, status_page: SocketAddr, factories: &Factories) -> ExitCode {
    if duration < MIN_DURATION {
        eprintln!("authwatch demo: --duration must be at least 10s so that every phase shows");
        return ExitCode::from(crate::EXIT_INVALID_CONFIG);
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("authwatch: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    rt.block_on(async move {
        let demo = match Demo::prepare(Options {
            duration,
            status_page,
        })
        .await
        {
            Ok(d) => d,
            Err(e) => {
                eprintln!("authwatch demo: {e}");
                return ExitCode::FAILURE;
            }
        };
        let vars = demo.env();
        let env = |name: &str| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.clone())
                .or_else(|| std::env::var(name).ok())
        };
        let source = ConfigSource::Embedded {
            name: "demo config".into(),
            text: DEMO_CONFIG.into(),
        };
        let loaded = match authwatch_service::load(&[source], factories, &env) {
            Ok(l) => l,
            Err(e) => {
                crate::print_problems("error", &e.errors);
                eprintln!("authwatch demo: the embedded demo config is invalid (a bug)");
                return ExitCode::from(crate::EXIT_INVALID_CONFIG);
            }
        };
        crate::init_logs(&loaded.service.telemetry.logs, None);
        println!("==================================================================");
        println!(" AUTHWATCH DEMO: a stand-in identity provider, not a real tenant");
        println!("==================================================================");
        println!(
            " The stand-in runs on http://{} and goes through a scripted incident",
            demo.provider_addr()
        );
        println!(
            " over {}s: healthy, a burst of 5xx, rate limiting, a locked probe user,",
            duration.as_secs()
        );
        println!(" recovery. authwatch probes it, reads its status page and receives the");
        println!(" OTLP client spans of the demo's traffic. Press Ctrl-C to stop early.");
        println!(" Status page: {}", demo.status_page_url());
        println!("==================================================================");
        let demo = &demo;
        let service = async move {
            let shutdown = async {
                tokio::select! {
                    () = demo.finished() => {}
                    () = crate::shutdown_signal() => {}
                }
            };
            let outcome = authwatch_service::run(loaded, shutdown, |_| {}).await;
            demo.stop();
            outcome
        };
        let (outcome, ()) = tokio::join!(service, demo.drive(|line| println!("{line}")));
        match outcome {
            Ok(o) => {
                println!("[demo] Done. Run `authwatch --config configs/default.yaml --config configs/auth0.yaml` to watch your own tenant.");
                ExitCode::from(o.exit_code() as u8)
            }
            Err(e) => {
                eprintln!("authwatch demo: {e}");
                ExitCode::FAILURE
            }
        }
    })
}
