//! The command line: default config, validate, print-config, components, version, exit codes.

mod common;

use common::*;

#[test]
fn version_and_help() {
    let (code, out, _) = run_cli(&["--version"], &[]);
    assert_eq!(code, 0);
    assert_eq!(
        out.trim(),
        format!("authwatch {}", env!("CARGO_PKG_VERSION"))
    );
    let (code, out, _) = run_cli(&["--help"], &[]);
    assert_eq!(code, 0);
    for cmd in ["run", "validate", "print-config", "components"] {
        assert!(out.contains(cmd), "help lists {cmd}: {out}");
    }
}

#[test]
fn components_lists_every_type_and_alias() {
    let (code, out, _) = run_cli(&["components"], &[]);
    assert_eq!(code, 0);
    // section -> the types listed under it
    let mut sections: Vec<(String, Vec<String>)> = Vec::new();
    for line in out.lines() {
        match line.strip_prefix("  ") {
            Some(ty) => sections.last_mut().unwrap().1.push(ty.to_owned()),
            None => sections.push((line.trim_end_matches(':').to_owned(), Vec::new())),
        }
    }
    let listed = |section: &str, ty: &str| {
        sections
            .iter()
            .any(|(s, types)| s == section && types.iter().any(|t| t == ty))
    };
    for (section, ty) in [
        ("receivers", "otlp"),
        ("processors", "batch"),
        ("processors", "memory_limiter"),
        ("exporters", "otlp (alias: otlp_grpc)"),
        ("exporters", "otlphttp (alias: otlp_http)"),
        ("exporters", "debug"),
        ("connectors", "forward"),
        ("extensions", "health_check"),
    ] {
        assert!(listed(section, ty), "{section} should list {ty:?}:\n{out}");
    }
    let names: Vec<&str> = sections.iter().map(|(s, _)| s.as_str()).collect();
    assert_eq!(
        names,
        [
            "receivers",
            "processors",
            "exporters",
            "connectors",
            "extensions"
        ]
    );
}

/// Files in `configs/` meant to be given after `configs/default.yaml`.
const OVERLAYS: &[&str] = &["auth0.yaml"];

#[test]
fn every_shipped_config_validates() {
    let mut checked = 0;
    for entry in std::fs::read_dir(repo().join("configs")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
            continue;
        }
        let file = path.to_str().unwrap();
        // Overlays (`auth0.yaml`) are validated on top of the default, as docs/configuration.md runs them.
        let default = repo().join("configs/default.yaml");
        let args: Vec<&str> = if OVERLAYS.iter().any(|o| path.ends_with(o)) {
            vec![
                "validate",
                "--config",
                default.to_str().unwrap(),
                "--config",
                file,
            ]
        } else {
            vec!["validate", "--config", file]
        };
        let (code, out, err) = run_cli(&args, &[]);
        assert_eq!(code, 0, "{} is invalid:\n{out}{err}", path.display());
        assert!(out.contains("The config is valid."));
        checked += 1;
    }
    assert!(
        checked >= 3,
        "configs/ should hold the default and examples"
    );
}

#[test]
fn embedded_default_is_configs_default_yaml_and_validates() {
    let (code, out, err) = run_cli(&["validate"], &[]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, printed, _) = run_cli(&["print-config"], &[]);
    assert_eq!(code, 0);
    let (_, from_file, _) = run_cli(
        &[
            "print-config",
            "--config",
            repo().join("configs/default.yaml").to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(printed, from_file);
    // Defaults are filled in, so a Collector user sees every setting.
    for needle in [
        "send_batch_size: 8192",
        "max_request_body_size:",
        "endpoint: 127.0.0.1:4317",
        "shutdown_timeout: 30s",
    ] {
        assert!(
            printed.contains(needle),
            "print-config lacks {needle:?}:\n{printed}"
        );
    }
}

#[test]
fn print_config_redacts_secrets() {
    let scratch = Scratch::new("redact");
    let cfg = scratch.write(
        "c.yaml",
        "
receivers: {otlp: {protocols: {grpc: {endpoint: '127.0.0.1:0'}}}}
exporters:
  otlphttp:
    endpoint: https://api.honeycomb.io
    headers: {x-honeycomb-team: '${env:HONEYCOMB_API_KEY}'}
service:
  telemetry: {metrics: {level: none}}
  pipelines: {traces: {receivers: [otlp], exporters: [otlphttp]}}
",
    );
    let secret = "hcaik_01hsecretsecretsecret";
    let (code, out, err) = run_cli(
        &["print-config", "--config", cfg.to_str().unwrap()],
        &[("HONEYCOMB_API_KEY", secret)],
    );
    assert_eq!(code, 0, "{err}");
    assert!(!out.contains(secret) && !err.contains(secret));
    assert!(out.contains("x-honeycomb-team: '[REDACTED]'"), "{out}");
}

#[test]
fn invalid_config_exits_64_with_every_error() {
    let scratch = Scratch::new("invalid");
    let cfg = scratch.write(
        "bad.yaml",
        "
receivers:
  otlp:
    protocols:
      grcp: {}
  otlp/2: {}
processors:
  batch: {send_batch_size: 100, send_batch_max_size: 10}
exporters:
  otlp: {}
  debug: {verbosity: loud}
service:
  pipelines:
    traces: {receivers: [otlp, zipkin], processors: [batch], exporters: [otlp]}
",
    );
    for cmd in ["validate", "run"] {
        let (code, out, err) = run_cli(&[cmd, "--config", cfg.to_str().unwrap()], &[]);
        assert_eq!(code, 64, "{cmd}: {out}{err}");
        let errors: Vec<&str> = err.lines().filter(|l| l.starts_with("error: ")).collect();
        assert!(
            errors.len() >= 5,
            "{cmd} should report every mistake:\n{err}"
        );
        for path in [
            "error: exporters::debug::verbosity:",
            "error: exporters::otlp::endpoint:",
            "error: processors::batch::send_batch_max_size:",
            "error: receivers::otlp::protocols::grcp: unknown field `grcp`",
            "error: service::pipelines::traces: references receiver \"zipkin\" which is not configured",
        ] {
            assert!(err.contains(path), "{cmd}: missing {path:?} in:\n{err}");
        }
        assert!(err.contains("the config is invalid"), "{err}");
    }
}

/// A `batch` processor in front of an exporter with a persistent queue loses what it holds on a
/// `kill -9`: `validate` warns and points to `sending_queue.batch`; the config stays valid.
#[test]
fn validate_warns_about_a_batch_processor_in_front_of_a_persistent_queue() {
    let scratch = Scratch::new("batch-warning");
    let config = |processors: &str, queue: &str| {
        format!(
            "
receivers: {{otlp: {{protocols: {{grpc: {{endpoint: '127.0.0.1:0'}}}}}}}}
processors: {{batch: {{}}}}
exporters:
  otlp: {{endpoint: 'http://127.0.0.1:4317', sending_queue: {queue}}}
  debug: {{}}
service:
  telemetry: {{metrics: {{level: none}}}}
  pipelines:
    traces: {{receivers: [otlp], processors: [{processors}], exporters: [debug, otlp]}}
"
        )
    };
    let storage = scratch.0.join("queue");
    let persistent = format!("{{storage: '{}'}}", storage.display());
    let batching = format!("{{storage: '{}', batch: {{}}}}", storage.display());
    let cases = [
        ("warned", config("batch", &persistent), true),
        ("memory queue", config("batch", "{}"), false),
        ("exporter batching", config("", &batching), false),
    ];
    for (name, yaml, warned) in cases {
        let cfg = scratch.write(&format!("{}.yaml", name.replace(' ', "-")), &yaml);
        let (code, out, err) = run_cli(&["validate", "--config", cfg.to_str().unwrap()], &[]);
        assert_eq!(code, 0, "{name}: {out}{err}");
        let line = "warning: service::pipelines::traces: processor \"batch\" acknowledges data while it \
                    holds it only in memory, so a kill -9 loses what it holds although exporter \"otlp\" \
                    keeps its sending queue on disk; remove \"batch\" from this pipeline and batch in the \
                    exporter with `sending_queue.batch` instead";
        assert_eq!(err.contains(line), warned, "{name}:\n{err}");
        if !warned {
            assert!(!err.contains("sending_queue.batch"), "{name}:\n{err}");
        }
    }
}

// `authwatch` with no arguments (the default ports) is tested in `first_run.rs`, serialized
// with the first-run test there.

/// `authwatch rules` writes Prometheus rules that promtool accepts.
#[test]
fn rules_command_writes_rules_promtool_accepts() {
    let scratch = Scratch::new("rules");
    let cfg = scratch.write(
        "alerts.yaml",
        "
receivers: {otlp: {}}
connectors:
  error_rate: {}
  alerts:
    rules:
      - name: idp_errors
        threshold: {error_ratio: 0.05, window: 5m, min_requests: 20}
      - name: idp_slo
        burn_rate: {objective: 99.9}
      - name: idp_p95
        latency: {quantile: p95, slower_than: 500ms, window: 5m, min_requests: 20}
      - name: idp_latency_slo
        burn_rate: {objective: 99, slower_than: 1s}
exporters: {debug: {}}
service:
  telemetry: {metrics: {level: none}}
  pipelines:
    traces: {receivers: [otlp], exporters: [error_rate]}
    metrics: {receivers: [error_rate], exporters: [alerts]}
    logs: {receivers: [alerts], exporters: [debug]}
",
    );
    let out = scratch.0.join("rules.yaml");
    let (code, _, err) = run_cli(
        &[
            "rules",
            "--config",
            cfg.to_str().unwrap(),
            "--output",
            out.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(text.contains("alert: idp_errors"), "{text}");
    assert!(text.contains("histogram_quantile(0.95"), "{text}");
    assert!(
        text.contains("http_client_request_duration_seconds_bucket"),
        "{text}"
    );
    let promtool = std::process::Command::new("promtool")
        .args(["check", "rules", out.to_str().unwrap()])
        .output()
        .expect("promtool (Debian package `prometheus`) must be installed: run scripts/test.sh");
    assert!(
        promtool.status.success(),
        "{}{}",
        String::from_utf8_lossy(&promtool.stdout),
        String::from_utf8_lossy(&promtool.stderr)
    );
    // The embedded default has rules (its `alerts` connector) ...
    let (code, text, err) = run_cli(
        &[
            "rules",
            "--config",
            repo().join("configs/default.yaml").to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    assert!(text.contains("alert: idp_error_ratio"), "{text}{err}");
    assert!(text.contains("alert: idp_latency"), "{text}{err}");
    // ... a config without an alerts connector has none to write.
    let plain = scratch.write(
        "plain.yaml",
        "
receivers: {otlp: {}}
exporters: {debug: {}}
service:
  telemetry: {metrics: {level: none}}
  pipelines: {traces: {receivers: [otlp], exporters: [debug]}}
",
    );
    let (code, _, err) = run_cli(&["rules", "--config", plain.to_str().unwrap()], &[]);
    assert_eq!(code, 64, "{err}");
    assert!(err.contains("no `alerts` connector"), "{err}");
}

/// Console logs written to a pipe (a file, journald, `docker logs`) carry no colour escape codes;
/// the level and fields read as plain text.
#[test]
fn logs_to_a_pipe_are_plain_text() {
    let (g, h) = (free_port(), free_port());
    let aw = Authwatch::start(&format!(
        "
receivers:
  otlp:
    protocols:
      grpc: {{endpoint: '127.0.0.1:{g}'}}
      http: {{endpoint: '127.0.0.1:{h}'}}
exporters:
  debug: {{}}
service:
  telemetry: {{metrics: {{level: none}}}}
  pipelines:
    traces: {{receivers: [otlp], exporters: [debug]}}
"
    ));
    let out = aw.output();
    assert!(
        out.contains(&format!(
            "OTLP gRPC receiver listening. endpoint=127.0.0.1:{g}"
        )),
        "{out}"
    );
    assert!(
        !out.contains('\u{1b}'),
        "escape codes in piped logs:\n{out}"
    );
}
