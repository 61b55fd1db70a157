//! The `authwatch` binary: CLI, logging, signals and exit codes. Wiring only: every component
//! comes from its crate's `factories()`, everything else from `authwatch-service`.
#![forbid(unsafe_code)]

mod demo;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use tracing::info;

use authwatch_core::{ConfigError, Factories, Kind};
use authwatch_service::config::{LogEncoding, LogsConfig};
use authwatch_service::telemetry::logs::{exported_target, LogExport};
use authwatch_service::{ConfigSource, Loaded};

/// The embedded default config (`configs/default.yaml`), used when no `--config` is given.
const DEFAULT_CONFIG: &str = include_str!("../../../configs/default.yaml");

/// Exit code for an invalid config (EX_USAGE).
const EXIT_INVALID_CONFIG: u8 = 64;

#[derive(Parser)]
#[command(
    name = "authwatch",
    version,
    about = "An OpenTelemetry sidecar that watches the identity provider your applications depend on.",
    long_about = "An OpenTelemetry sidecar that watches the identity provider your applications depend on.\n\nWith no command, runs with --config files (merged in order), or with the embedded default config."
)]
struct Cli {
    /// Config file; repeat to merge several in order (later ones override earlier ones).
    /// Without it, the embedded default config is used.
    #[arg(long, short = 'c', global = true, value_name = "FILE")]
    config: Vec<PathBuf>,

    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the pipelines (the default).
    Run,
    /// Check the config: print every problem with its path, exit 64 if any.
    Validate,
    /// Print the effective config, defaults filled in and secrets redacted.
    PrintConfig,
    /// List the available component types.
    Components,
    /// Write Prometheus recording and alerting rules equivalent to the config's `error_rate`
    /// windows and `alerts` rules, for evaluating a fleet of sidecars in Prometheus.
    Rules {
        /// Write the rules to this file instead of standard output.
        #[arg(long, short = 'o', value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Run the synthetic checks once and print a report; exit 0 only if all passed.
    Probe {
        /// Run only the check with this name.
        #[arg(long, value_name = "NAME")]
        check: Option<String>,
    },
    /// A one-minute demo with no tenant: authwatch watching a local stand-in identity provider
    /// through a scripted incident, with probes, error rates, alerts and the status page.
    Demo {
        /// How long the scripted incident lasts (at least 10s).
        #[arg(long, default_value = "60s", value_parser = authwatch_core::config::duration::parse)]
        duration: std::time::Duration,
        /// Where the status page listens.
        #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:13134")]
        status_page: std::net::SocketAddr,
    },
}

fn factories() -> Factories {
    authwatch_receiver::factories()
        .merge(authwatch_processor::factories())
        .merge(authwatch_exporter::factories())
        .merge(authwatch_extension::factories())
}

fn sources(cli: &Cli) -> Vec<ConfigSource> {
    if cli.config.is_empty() {
        vec![ConfigSource::Embedded {
            name: "embedded default config".into(),
            text: DEFAULT_CONFIG.into(),
        }]
    } else {
        cli.config.iter().cloned().map(ConfigSource::File).collect()
    }
}

fn print_problems(label: &str, problems: &[ConfigError]) {
    for p in problems {
        eprintln!("{label}: {p}");
    }
}

fn load(cli: &Cli, factories: &Factories) -> Result<Loaded, ExitCode> {
    let env = |name: &str| std::env::var(name).ok();
    match authwatch_service::load(&sources(cli), factories, &env) {
        Ok(loaded) => {
            print_problems("warning", &loaded.warnings);
            Ok(loaded)
        }
        Err(e) => {
            print_problems("error", &e.errors);
            print_problems("warning", &e.warnings);
            eprintln!(
                "authwatch: the config is invalid ({} error{}); nothing was started",
                e.errors.len(),
                if e.errors.len() == 1 { "" } else { "s" }
            );
            Err(ExitCode::from(EXIT_INVALID_CONFIG))
        }
    }
}

/// Logs to stderr (text or JSON) at `logs.level` (`RUST_LOG` overrides it) and, when
/// `logs.processors` are configured, as OTLP log records through `export`'s logger provider.
fn init_logs(cfg: &LogsConfig, export: Option<&LogExport>) {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::{filter, fmt, EnvFilter, Layer};
    let level = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&cfg.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let (console, json) = match cfg.encoding {
        LogEncoding::Console => (
            Some(
                fmt::layer()
                    .with_ansi(colored_stderr())
                    .with_writer(std::io::stderr),
            ),
            None,
        ),
        LogEncoding::Json => (None, Some(fmt::layer().json().with_writer(std::io::stderr))),
    };
    let otlp = export.map(|e| {
        opentelemetry_appender_tracing::layer::OpenTelemetryTracingBridge::new(e.provider())
            .with_filter(filter::filter_fn(|m| exported_target(m.target())))
    });
    tracing_subscriber::registry()
        .with(level)
        .with(console)
        .with(json)
        .with(otlp)
        .init();
}

/// Colours in console logs only for a person at a terminal: not when stderr goes to a file, a
/// pipe or journald (escape codes would litter the lines), nor under `NO_COLOR` (no-color.org).
fn colored_stderr() -> bool {
    use std::io::IsTerminal;
    std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()) && std::io::stderr().is_terminal()
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let factories = factories();
    match cli.command.as_ref().unwrap_or(&Command::Run) {
        Command::Components => {
            print_components(&factories);
            ExitCode::SUCCESS
        }
        Command::Validate => match load(&cli, &factories) {
            Ok(_) => {
                println!("The config is valid.");
                ExitCode::SUCCESS
            }
            Err(code) => code,
        },
        Command::PrintConfig => match load(&cli, &factories) {
            Ok(loaded) => {
                print!("{}", loaded.to_yaml());
                ExitCode::SUCCESS
            }
            Err(code) => code,
        },
        Command::Demo {
            duration,
            status_page,
        } => demo::run(*duration, *status_page, &factories),
        Command::Probe { check } => match load(&cli, &factories) {
            Ok(_) => probe(&cli, check.as_deref()),
            Err(code) => code,
        },
        Command::Rules { output } => match load(&cli, &factories) {
            Ok(loaded) => rules(&loaded, output.as_deref()),
            Err(code) => code,
        },
        Command::Run => {
            let loaded = match load(&cli, &factories) {
                Ok(l) => l,
                Err(code) => return code,
            };
            run(loaded)
        }
    }
}

fn print_components(f: &Factories) {
    for kind in Kind::ALL {
        println!("{}:", kind.section());
        for factory in f.all().into_iter().filter(|x| x.kind == kind) {
            if factory.aliases.is_empty() {
                println!("  {}", factory.type_name);
            } else {
                println!(
                    "  {} (alias: {})",
                    factory.type_name,
                    factory.aliases.join(", ")
                );
            }
        }
    }
}

/// `authwatch rules`: Prometheus rules for every `alerts` connector, with the `error_rate`
/// connector's windows (the first one configured, or its defaults).
fn rules(loaded: &Loaded, output: Option<&std::path::Path>) -> ExitCode {
    use authwatch_processor::{alerts, error_rate};
    let windows = loaded
        .connectors
        .values()
        .find_map(|c| c.config.downcast::<error_rate::Config>())
        .cloned()
        .unwrap_or_default()
        .windows;
    let alerts: Vec<&alerts::Config> = loaded
        .connectors
        .values()
        .filter_map(|c| c.config.downcast::<alerts::Config>())
        .collect();
    if alerts.is_empty() {
        eprintln!(
            "authwatch: the config has no `alerts` connector, so there are no rules to write"
        );
        return ExitCode::from(EXIT_INVALID_CONFIG);
    }
    // One rule file: the groups of every alerts connector together.
    let mut text = alerts::prometheus_rules(&windows, alerts[0]);
    if alerts.len() > 1 {
        let mut groups = Vec::new();
        for a in &alerts {
            let doc: serde_yaml::Value =
                match serde_yaml::from_str(&alerts::prometheus_rules(&windows, a)) {
                    Ok(d) => d,
                    Err(e) => {
                        eprintln!("authwatch: generated rules are not valid YAML (a bug): {e}");
                        return ExitCode::FAILURE;
                    }
                };
            if let Some(serde_yaml::Value::Sequence(g)) = doc.get("groups") {
                groups.extend(g.iter().cloned());
            }
        }
        let mut top = serde_yaml::Mapping::new();
        top.insert("groups".into(), serde_yaml::Value::Sequence(groups));
        text = serde_yaml::to_string(&top).unwrap_or_default();
    }
    match output {
        None => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Some(path) => match std::fs::write(path, text) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("authwatch: cannot write {}: {e}", path.display());
                ExitCode::FAILURE
            }
        },
    }
}

/// `authwatch probe`: the synthetic checks of the (already validated) config, run once.
fn probe(cli: &Cli, check: Option<&str>) -> ExitCode {
    let mut merged = None;
    for source in sources(cli) {
        match source.read() {
            Ok(v) => match merged.as_mut() {
                None => merged = Some(v),
                Some(m) => authwatch_service::config::merge(m, v),
            },
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(EXIT_INVALID_CONFIG);
            }
        }
    }
    let Some(mut doc) = merged else {
        return ExitCode::from(EXIT_INVALID_CONFIG);
    };
    authwatch_service::config::expand_env(&mut doc, &|name: &str| std::env::var(name).ok());
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("authwatch: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(authwatch_receiver::synthetic::probe_document(&doc, check)) {
        Ok(report) => {
            println!("{report}");
            if report.passed() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("authwatch: {e}");
            ExitCode::from(EXIT_INVALID_CONFIG)
        }
    }
}

fn run(loaded: Loaded) -> ExitCode {
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
    // The log export's batch processor runs on the runtime: build it inside.
    let log_export = {
        let _entered = rt.enter();
        LogExport::build(&loaded.service.telemetry)
    };
    let log_export = match log_export {
        Ok(l) => l,
        Err(e) => {
            eprintln!("authwatch: cannot start log export: {e}");
            return ExitCode::FAILURE;
        }
    };
    init_logs(&loaded.service.telemetry.logs, log_export.as_ref());
    let flush = loaded.service.shutdown_timeout.min(Duration::from_secs(10));
    let code = rt.block_on(async move {
        info!(version = env!("CARGO_PKG_VERSION"), "Starting authwatch.");
        let outcome = authwatch_service::run(loaded, shutdown_signal(), |started| {
            if let Some(a) = started.metrics_address {
                info!(metrics = %format!("http://{a}/metrics"), "authwatch is running.");
            }
        })
        .await;
        match outcome {
            Ok(o) => ExitCode::from(o.exit_code() as u8),
            Err(e) => {
                tracing::error!(error = %e, "Startup failed.");
                eprintln!("authwatch: {e}");
                ExitCode::FAILURE
            }
        }
    });
    if let Some(l) = log_export {
        rt.block_on(l.shutdown(flush));
    }
    // Tasks still running (a stuck export) do not hold the exit up.
    rt.shutdown_timeout(Duration::from_secs(1));
    code
}

/// Resolves on SIGTERM or SIGINT, logging which one arrived.
async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let (mut term, mut int) = match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(t), Ok(i)) => (t, i),
        _ => {
            // Without signal handlers, fall back to Ctrl-C only.
            let _ = tokio::signal::ctrl_c().await;
            info!(signal = "SIGINT", "Received signal; shutting down.");
            return;
        }
    };
    let name = tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    };
    info!(signal = name, "Received signal; shutting down.");
}
