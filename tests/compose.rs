//! The docker-compose stack, checked without a Docker engine: the compose file with Debian's
//! `docker-compose config`, every authwatch config it mounts with `authwatch validate`, the
//! Prometheus config and rules with `promtool`, the Alertmanager config with `amtool`, the
//! committed rules against `authwatch rules`, and the Grafana dashboard's queries against the
//! metric names a real authwatch run exposes through the `prometheus` exporter.
//!
//! The tools are required: a missing one fails the test with what to install (scripts/test.sh
//! installs them all).

mod common;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::{Command, Output};
use std::time::Duration;

use authwatch_core::otlp::collector::trace::v1::ExportTraceServiceRequest;
use common::*;
use prost::Message;
use serde_yaml::Value;

/// Runs a required tool; a missing tool fails with the package to install.
fn tool(name: &str, package: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(name);
    cmd.args(args).current_dir(repo());
    for (k, v) in env {
        cmd.env(k, v);
    }
    match cmd.output() {
        Ok(o) => o,
        Err(e) => panic!(
            "`{name}` is required by this test and could not be run ({e}): install the Debian package `{package}` (scripts/test.sh does)"
        ),
    }
}

fn assert_ok(what: &str, out: &Output) {
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

const HONEYCOMB_ENV: [(&str, &str); 2] = [
    ("HONEYCOMB_API_KEY", "dummy-key"),
    ("HONEYCOMB_DATASET", "dummy-dataset"),
];

fn compose_file() -> Value {
    let text = std::fs::read_to_string(repo().join("docker-compose.yml")).unwrap();
    serde_yaml::from_str(&text).expect("docker-compose.yml parses as YAML")
}

#[test]
fn docker_compose_config_accepts_the_stack() {
    for args in [
        &["-f", "docker-compose.yml", "config", "-q"][..],
        &[
            "-f",
            "docker-compose.yml",
            "--profile",
            "honeycomb",
            "config",
            "-q",
        ][..],
    ] {
        let out = tool("docker-compose", "docker-compose", args, &HONEYCOMB_ENV);
        assert_ok(&format!("docker-compose {}", args.join(" ")), &out);
    }
    // The services the stack promises.
    let compose = compose_file();
    let services = compose["services"].as_mapping().expect("services");
    for name in [
        "authwatch",
        "jaeger",
        "tempo",
        "grafana",
        "prometheus",
        "alertmanager",
        "idp",
        "demo",
        "authwatch-honeycomb",
    ] {
        assert!(
            services.contains_key(name),
            "docker-compose.yml lacks service {name}"
        );
    }
    assert_eq!(
        compose["services"]["authwatch-honeycomb"]["profiles"][0].as_str(),
        Some("honeycomb")
    );
    assert!(
        compose["services"]["authwatch"]["healthcheck"]["test"].is_sequence(),
        "authwatch needs a healthcheck"
    );
}

/// Every host path the stack mounts is under configs/ and exists.
#[test]
fn every_mounted_file_lives_under_configs() {
    let compose = compose_file();
    let mut mounts = 0;
    for (name, svc) in compose["services"].as_mapping().unwrap() {
        for v in svc["volumes"].as_sequence().into_iter().flatten() {
            let spec = v.as_str().expect("short volume syntax");
            let host = spec.split(':').next().unwrap();
            assert!(
                host.starts_with("./configs"),
                "service {name:?} mounts {host}, which is not under configs/"
            );
            assert!(
                repo().join(host).exists(),
                "service {name:?} mounts {host}, which does not exist"
            );
            mounts += 1;
        }
    }
    assert!(
        mounts >= 7,
        "expected the stack's config mounts, found {mounts}"
    );
}

/// The authwatch configs the services run (`--config /etc/authwatch/<file>`), each validated.
#[test]
fn every_authwatch_config_in_the_stack_validates() {
    let compose = compose_file();
    let mut configs = BTreeSet::new();
    for (_, svc) in compose["services"].as_mapping().unwrap() {
        let cmd: Vec<&str> = svc["command"]
            .as_sequence()
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str())
            .collect();
        if let Some(i) = cmd.iter().position(|a| *a == "--config") {
            let path = cmd[i + 1]
                .strip_prefix("/etc/authwatch/")
                .expect("authwatch configs are mounted at /etc/authwatch");
            configs.insert(path.to_owned());
        }
    }
    // The image's default command runs jaeger.yaml.
    configs.insert("jaeger.yaml".into());
    assert!(configs.contains("compose.yaml") && configs.contains("honeycomb.yaml"));
    // Authwatch configs live at the top of configs/ (subfolders hold the other tools' files),
    // so tests/cli.rs' `every_shipped_config_validates` sees them too.
    for c in &configs {
        assert!(
            !c.contains('/'),
            "{c}: keep authwatch configs directly in configs/"
        );
        let path = repo().join("configs").join(c);
        let (code, out, err) = run_cli(&["validate", "--config", path.to_str().unwrap()], &[]);
        assert_eq!(code, 0, "configs/{c} is invalid:\n{out}{err}");
    }
}

#[test]
fn promtool_accepts_the_prometheus_config_and_rules() {
    let out = tool(
        "promtool",
        "prometheus",
        &["check", "config", "configs/prometheus/prometheus.yml"],
        &[],
    );
    assert_ok("promtool check config", &out);
    let out = tool(
        "promtool",
        "prometheus",
        &["check", "rules", "configs/prometheus/rules.yml"],
        &[],
    );
    assert_ok("promtool check rules", &out);
}

#[test]
fn amtool_accepts_the_alertmanager_config() {
    let out = tool(
        "amtool",
        "prometheus-alertmanager",
        &["check-config", "configs/alertmanager/alertmanager.yml"],
        &[],
    );
    assert_ok("amtool check-config", &out);
}

/// configs/prometheus/rules.yml is exactly what `authwatch rules` writes for configs/compose.yaml.
#[test]
fn committed_rules_are_generated_from_the_compose_config() {
    let cfg = repo().join("configs/compose.yaml");
    let (code, generated, err) = run_cli(&["rules", "--config", cfg.to_str().unwrap()], &[]);
    assert_eq!(code, 0, "{err}");
    let committed = std::fs::read_to_string(repo().join("configs/prometheus/rules.yml")).unwrap();
    assert!(
        generated == committed,
        "configs/prometheus/rules.yml is stale; regenerate it:\n  authwatch rules --config configs/compose.yaml --output configs/prometheus/rules.yml"
    );
}

/// docs/operations.md ("The image") shows the build the Dockerfile runs, in both its layers.
#[test]
fn docs_show_the_dockerfile_build_command() {
    let dockerfile = std::fs::read_to_string(repo().join("Dockerfile")).unwrap();
    let builds: Vec<String> = dockerfile
        .lines()
        .filter_map(|l| l.split_once("cargo build").map(|(_, rest)| rest.trim()))
        .map(|rest| format!("cargo build {rest}"))
        .collect();
    assert_eq!(
        builds, ["cargo build --release --locked --bin authwatch"; 2],
        "the Dockerfile builds twice (dependencies, then the sources) with one command"
    );
    let build = &builds[0];
    let docs = std::fs::read_to_string(repo().join("docs/operations.md")).unwrap();
    assert!(
        docs.contains(build.as_str()),
        "docs/operations.md should show the Dockerfile's build command `{build}`"
    );
    assert!(
        dockerfile.contains("USER 10001"),
        "the runtime image runs as non-root"
    );
    assert!(
        dockerfile.contains("HEALTHCHECK"),
        "the image has a healthcheck"
    );
}

// === the image: what the docs promise (tests/compose/image.rs) ===

#[path = "compose/image.rs"]
mod image;

// === the dashboard against a real run ===

/// A tiny identity provider for the run: token endpoint with rate-limit headers, and a
/// Statuspage summary.json reporting a minor incident.
fn start_provider() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut first = String::new();
                if reader.read_line(&mut first).is_err() {
                    return;
                }
                let mut length = 0usize;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        length = v.trim().parse().unwrap_or(0);
                    }
                }
                let mut body = vec![0; length];
                let _ = reader.read_exact(&mut body);
                let path = first.split_whitespace().nth(1).unwrap_or("/");
                let (extra, json) = if path.starts_with("/oauth/token") {
                    (
                        "x-ratelimit-limit: 100\r\nx-ratelimit-remaining: 97\r\nx-ratelimit-reset: 4102444800\r\n",
                        r#"{"access_token":"t","token_type":"Bearer","expires_in":86400}"#,
                    )
                } else {
                    (
                        "",
                        r#"{"page":{"url":"http://idp"},"status":{"indicator":"minor"},"components":[{"id":"a","name":"Authentication","status":"degraded_performance"}],"incidents":[]}"#,
                    )
                };
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n{extra}\r\n{json}",
                    json.len()
                );
            });
        }
    });
    port
}

/// The metric names of a Prometheus text exposition (sample names, not families).
fn exposed_names(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| l.split(['{', ' ']).next())
        .map(str::to_owned)
        .collect()
}

/// The metric names a PromQL expression selects: identifiers outside strings, label matchers,
/// ranges and grouping clauses, that are not functions, keywords or numbers.
fn promql_metric_names(expr: &str) -> BTreeSet<String> {
    // Blank out strings, {...}, [...] and the label lists of by/without/on/ignoring/group_*.
    let mut clean = String::new();
    let mut chars = expr.chars().peekable();
    let mut depth_brace = 0;
    let mut depth_bracket = 0;
    let mut in_string: Option<char> = None;
    while let Some(c) = chars.next() {
        if let Some(q) = in_string {
            if c == '\\' {
                chars.next();
            } else if c == q {
                in_string = None;
            }
            clean.push(' ');
            continue;
        }
        match c {
            '"' | '\'' | '`' => {
                in_string = Some(c);
                clean.push(' ');
            }
            '{' => {
                depth_brace += 1;
                clean.push(' ');
            }
            '}' => {
                depth_brace -= 1;
                clean.push(' ');
            }
            '[' => {
                depth_bracket += 1;
                clean.push(' ');
            }
            ']' => {
                depth_bracket -= 1;
                clean.push(' ');
            }
            _ if depth_brace > 0 || depth_bracket > 0 => clean.push(' '),
            _ => clean.push(c),
        }
    }
    let is_ident = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    let mut tokens: Vec<(String, usize)> = Vec::new();
    let bytes: Vec<char> = clean.chars().collect();
    let mut i = 0;
    while i < bytes.len() {
        if is_ident(bytes[i]) {
            let start = i;
            while i < bytes.len() && is_ident(bytes[i]) {
                i += 1;
            }
            tokens.push((bytes[start..i].iter().collect(), i));
        } else {
            i += 1;
        }
    }
    let next_char = |end: usize| bytes[end..].iter().find(|c| !c.is_whitespace()).copied();
    // Aggregation operators may put their grouping clause before the parenthesis.
    const KEYWORDS: &[&str] = &[
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
        "and",
        "or",
        "unless",
        "bool",
        "offset",
        "inf",
        "nan",
        "sum",
        "min",
        "max",
        "avg",
        "count",
        "stddev",
        "stdvar",
        "topk",
        "bottomk",
        "quantile",
        "count_values",
        "group",
    ];
    const GROUPING: [&str; 6] = [
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
    ];
    let mut names = BTreeSet::new();
    let mut skip_group = false;
    for (tok, end) in &tokens {
        if skip_group {
            // Inside a grouping label list: skip until its closing parenthesis.
            let rest: String = bytes[*end..].iter().collect();
            let closes = rest.trim_start().starts_with(')');
            if closes {
                skip_group = false;
            }
            continue;
        }
        let lower = tok.to_ascii_lowercase();
        if GROUPING.contains(&lower.as_str()) {
            skip_group = next_char(*end) == Some('(');
            let rest: String = bytes[*end..].iter().collect();
            if rest.trim_start().starts_with("()") {
                skip_group = false;
            }
            continue;
        }
        if KEYWORDS.contains(&lower.as_str())
            || tok.starts_with(|c: char| c.is_ascii_digit())
            || next_char(*end) == Some('(')
        {
            continue;
        }
        names.insert(tok.clone());
    }
    names
}

#[test]
fn promql_names_are_extracted() {
    let got = promql_metric_names(
        r#"histogram_quantile(0.95, sum by (le, phase) (rate(a_bucket{x="y{z}"}[5m]))) / on() b:rec:rate5m offset 1m > bool 0.5 and sum without (source) (c_total)"#,
    );
    let want: BTreeSet<String> = ["a_bucket", "b:rec:rate5m", "c_total"]
        .into_iter()
        .map(String::from)
        .collect();
    assert_eq!(got, want);
}

fn dashboard() -> serde_json::Value {
    let text =
        std::fs::read_to_string(repo().join("configs/grafana/dashboards/idp-health.json")).unwrap();
    serde_json::from_str(&text).expect("the dashboard is valid JSON")
}

/// Every Prometheus query of the dashboard, with its panel title.
fn dashboard_queries() -> Vec<(String, String)> {
    let d = dashboard();
    assert_eq!(d["title"], "Identity provider health");
    let mut out = Vec::new();
    let mut uids = BTreeSet::new();
    for p in d["panels"].as_array().expect("panels") {
        assert!(
            p["gridPos"].is_object(),
            "panel {} has no gridPos",
            p["title"]
        );
        for t in p["targets"].as_array().into_iter().flatten() {
            let ds = t["datasource"]["uid"]
                .as_str()
                .or(p["datasource"]["uid"].as_str())
                .unwrap_or_default()
                .to_owned();
            uids.insert(ds.clone());
            if ds == "prometheus" {
                let expr = t["expr"].as_str().expect("prometheus targets have an expr");
                out.push((
                    p["title"].as_str().unwrap_or_default().to_owned(),
                    expr.to_owned(),
                ));
            }
        }
    }
    // Every datasource the panels use is provisioned.
    let provisioned = std::fs::read_to_string(
        repo().join("configs/grafana/provisioning/datasources/datasources.yaml"),
    )
    .unwrap();
    let provisioned: Value = serde_yaml::from_str(&provisioned).unwrap();
    let known: BTreeSet<String> = provisioned["datasources"]
        .as_sequence()
        .unwrap()
        .iter()
        .filter_map(|d| d["uid"].as_str().map(String::from))
        .collect();
    for u in &uids {
        assert!(known.contains(u), "datasource uid {u:?} is not provisioned");
    }
    for ty in ["prometheus", "tempo"] {
        assert!(known.contains(ty), "Grafana needs the {ty} datasource");
    }
    out
}

/// Metric names the committed rules file records, and whether it has alerting rules.
fn rules() -> (BTreeSet<String>, Vec<String>) {
    let text = std::fs::read_to_string(repo().join("configs/prometheus/rules.yml")).unwrap();
    let y: Value = serde_yaml::from_str(&text).unwrap();
    let mut recorded = BTreeSet::new();
    let mut exprs = Vec::new();
    for g in y["groups"].as_sequence().unwrap() {
        for r in g["rules"].as_sequence().unwrap() {
            if let Some(name) = r["record"].as_str() {
                recorded.insert(name.to_owned());
            }
            if r["alert"].is_string() {
                recorded.insert("ALERTS".to_owned());
                recorded.insert("ALERTS_FOR_STATE".to_owned());
            }
            exprs.push(r["expr"].as_str().unwrap().to_owned());
        }
    }
    (recorded, exprs)
}

/// Runs authwatch with the probes, status page, error_rate, alerts and the `prometheus`
/// exporter, feeds it client spans, and returns the metric names its scrape endpoint exposes.
fn emitted_names() -> BTreeSet<String> {
    let provider = start_provider();
    let (grpc, http, prom, tel) = (free_port(), free_port(), free_port(), free_port());
    let yaml = format!(
        r#"
receivers:
  otlp:
    protocols:
      grpc: {{endpoint: "127.0.0.1:{grpc}"}}
      http: {{endpoint: "127.0.0.1:{http}"}}
  synthetic/idp:
    interval: 1s
    timeout: 1s
    initial_delay: 0s
    checks:
      - name: token
        type: client_credentials
        token_url: http://127.0.0.1:{provider}/oauth/token
        client_id: probe
        client_secret: s
  statuspage:
    interval: 1s
    pages:
      - name: idp
        url: http://127.0.0.1:{provider}/api/v2/summary.json
connectors:
  error_rate:
    metrics_flush_interval: 1s
    dependencies:
      - name: idp
        server_address: ["*.auth0.com", "127.0.0.1"]
  alerts:
    rules:
      - name: idp_errors
        threshold: {{error_ratio: 0.05, window: 5m, min_requests: 1}}
exporters:
  prometheus: {{endpoint: "127.0.0.1:{prom}"}}
  debug: {{}}
service:
  telemetry: {{metrics: {{address: "127.0.0.1:{tel}"}}}}
  pipelines:
    traces: {{receivers: [otlp, synthetic/idp], exporters: [error_rate]}}
    metrics: {{receivers: [otlp, synthetic/idp, statuspage, error_rate], exporters: [prometheus, alerts]}}
    logs: {{receivers: [alerts], exporters: [debug]}}
"#
    );
    let aw = Authwatch::start(&yaml);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let spans: ExportTraceServiceRequest = authwatch_testkit::traces(0, 40);
        let resp = reqwest::Client::new()
            .post(format!("http://127.0.0.1:{http}/v1/traces"))
            .header("content-type", "application/x-protobuf")
            .body(spans.encode_to_vec())
            .send()
            .await
            .expect("send spans");
        assert!(resp.status().is_success(), "OTLP/HTTP answered {}", resp.status());
        // Hang guard only: wait until every producer has shown up once.
        let needed = [
            "authwatch_probe_success_ratio",
            "authwatch_probe_phase_duration_seconds_bucket",
            "authwatch_ratelimit_remaining",
            "authwatch_status_indicator_ratio",
            "authwatch_dependency_requests_total",
            "authwatch_dependency_error_ratio",
        ];
        let mut last = String::new();
        let ok = eventually(Duration::from_secs(60), async || {
            last = reqwest::get(format!("http://127.0.0.1:{prom}/metrics"))
                .await
                .expect("scrape")
                .text()
                .await
                .unwrap();
            let names = exposed_names(&last);
            needed.iter().all(|n| names.contains(*n))
        })
        .await;
        assert!(
            ok,
            "the prometheus exporter never exposed all of {needed:?}:\n{last}\n--- authwatch output ---\n{}",
            aw.output()
        );
        // promtool lints the real exposition too.
        let mut child = Command::new("promtool")
            .args(["check", "metrics"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("`promtool` is required ({e}): install the Debian package `prometheus`")
            });
        child.stdin.take().unwrap().write_all(last.as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        assert_ok("promtool check metrics on the prometheus exporter's output", &out);
        exposed_names(&last)
    })
}

#[test]
fn dashboard_queries_name_metrics_authwatch_emits() {
    let queries = dashboard_queries();
    assert!(
        queries.len() >= 10,
        "the dashboard has its Prometheus panels"
    );
    let emitted = emitted_names();
    let (recorded, _) = rules();
    let mut unknown = Vec::new();
    for (panel, expr) in &queries {
        let names = promql_metric_names(expr);
        assert!(!names.is_empty(), "panel {panel:?}: no metric in {expr}");
        for n in names {
            if !emitted.contains(&n) && !recorded.contains(&n) {
                unknown.push(format!("panel {panel:?}: {n} (in `{expr}`)"));
            }
        }
    }
    assert!(
        unknown.is_empty(),
        "dashboard queries name metrics authwatch does not emit:\n  {}\nemitted: {emitted:?}\nrecorded: {recorded:?}",
        unknown.join("\n  ")
    );
}

/// The generated rules select metrics by the names the `prometheus` exporter gives them.
/// (The alerts connector's rule generator must apply the same OTel-to-Prometheus naming:
/// unit suffixes and `_ratio` for gauges with unit `1`.)
#[test]
fn generated_rules_name_metrics_authwatch_emits() {
    let emitted = emitted_names();
    let (recorded, exprs) = rules();
    let mut unknown = BTreeSet::new();
    for e in &exprs {
        for n in promql_metric_names(e) {
            if !emitted.contains(&n) && !recorded.contains(&n) {
                unknown.insert(n);
            }
        }
    }
    assert!(
        unknown.is_empty(),
        "configs/prometheus/rules.yml (from `authwatch rules`) selects metrics the prometheus exporter never exposes: {unknown:?}; fix the names in crates/authwatch-processor/src/alerts/prometheus.rs (prom_name) and regenerate the file"
    );
}
