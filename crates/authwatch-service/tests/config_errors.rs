//! Config and graph errors, table-driven, with exact messages and paths (stand-in components).

use authwatch_service::config::ConfigSource;
use authwatch_testkit::components::factories;

fn load(yaml: &str) -> Result<authwatch_service::Loaded, Vec<String>> {
    load_env(yaml, &|_| None)
}

fn load_env(
    yaml: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<authwatch_service::Loaded, Vec<String>> {
    let src = ConfigSource::Embedded {
        name: "test".into(),
        text: yaml.into(),
    };
    authwatch_service::load(&[src], &factories(), env)
        .map_err(|e| e.errors.iter().map(|e| e.to_string()).collect())
}

const GOOD: &str = "
receivers: {test_receiver: {}}
exporters: {test_exporter: {sink: good}}
service:
  pipelines:
    traces: {receivers: [test_receiver], exporters: [test_exporter]}
";

#[test]
fn good_config_loads_and_prints_defaults() {
    let l = load(GOOD).unwrap();
    let y = l.to_yaml();
    assert!(y.contains("shutdown_timeout: 30s"), "{y}");
    assert!(y.contains("address: 127.0.0.1:8888"), "{y}");
    assert!(y.contains("emit: 0"), "{y}");
}

#[test]
fn print_config_redacts_secrets() {
    let l = load_env(
        "
receivers: {test_receiver: {}}
exporters: {test_exporter: {sink: s, api_key: '${env:API_KEY}'}}
service: {pipelines: {traces: {receivers: [test_receiver], exporters: [test_exporter]}}}
",
        &|n| (n == "API_KEY").then(|| "sk-live-123456".to_string()),
    )
    .unwrap();
    let y = l.to_yaml();
    assert!(!y.contains("sk-live-123456"), "{y}");
    assert!(y.contains("api_key: '[REDACTED]'"), "{y}");
}

/// (name, config, every expected error line)
const CASES: &[(&str, &str, &[&str])] = &[
    (
        "unknown section",
        "recievers: {}\nservice: {pipelines: {}}",
        &["recievers: unknown section `recievers`, expected one of `receivers`, `processors`, `exporters`, `connectors`, `extensions`, `service`"],
    ),
    (
        "unknown component type",
        "receivers: {otlpp: {}}\nexporters: {test_exporter: {}}\nservice: {pipelines: {traces: {receivers: [otlpp], exporters: [test_exporter]}}}",
        &["receivers::otlpp: unknown receiver type `otlpp`; valid types: test_receiver"],
    ),
    (
        "unknown field in a component",
        "receivers: {test_receiver: {emitt: 1}}\nexporters: {test_exporter: {}}\nservice: {pipelines: {traces: {receivers: [test_receiver], exporters: [test_exporter]}}}",
        &["receivers::test_receiver::emitt: unknown field `emitt`, expected one of `signals`, `emit`, `endpoint`"],
    ),
    (
        "wrong value type",
        "receivers: {test_receiver: {emit: many}}\nexporters: {test_exporter: {}}\nservice: {pipelines: {traces: {receivers: [test_receiver], exporters: [test_exporter]}}}",
        &["receivers::test_receiver::emit: invalid type: string \"many\", expected u64"],
    ),
    (
        "component validate",
        "receivers: {test_receiver: {signals: []}}\nexporters: {test_exporter: {}}\nservice: {pipelines: {logs: {receivers: [test_receiver], exporters: [test_exporter]}}}",
        &[
            "receivers::test_receiver::signals: must not be empty",
            "service::pipelines::logs: receiver \"test_receiver\" does not support logs",
        ],
    ),
    (
        "invalid component id",
        "receivers: {'Test/x': {}}\nexporters: {test_exporter: {}}\nservice: {pipelines: {traces: {receivers: [test_receiver], exporters: [test_exporter]}}}",
        &[
            "receivers::Test/x: invalid id: type `Test` must start with a lowercase letter and contain only lowercase letters, digits and `_`",
            "service::pipelines::traces: references receiver \"test_receiver\" which is not configured",
        ],
    ),
    (
        "undefined references",
        "receivers: {test_receiver: {}}\nexporters: {test_exporter: {}}\nservice: {pipelines: {traces: {receivers: [test_receiver], processors: [batch/2], exporters: [test_exporter, otlp]}}}",
        &[
            "service::pipelines::traces: references exporter \"otlp\" which is not configured",
            "service::pipelines::traces: references processor \"batch/2\" which is not configured",
        ],
    ),
    (
        "empty pipeline",
        "receivers: {test_receiver: {}}\nexporters: {test_exporter: {}}\nservice: {pipelines: {traces: {}}}",
        &[
            "service::pipelines::traces: must have at least one exporter",
            "service::pipelines::traces: must have at least one receiver",
        ],
    ),
    (
        "no pipelines",
        "receivers: {test_receiver: {}}\nservice: {pipelines: {}}",
        &["service::pipelines: at least one pipeline must be configured"],
    ),
    (
        "missing service",
        "receivers: {test_receiver: {}}",
        &["service: missing: at least one pipeline must be configured under `service::pipelines`"],
    ),
    (
        "bad pipeline type",
        "receivers: {test_receiver: {}}\nexporters: {test_exporter: {}}\nservice: {pipelines: {spans: {receivers: [test_receiver], exporters: [test_exporter]}}}",
        &["service::pipelines::spans: pipeline type `spans` is not one of `traces`, `metrics`, `logs`"],
    ),
    (
        "unknown service field",
        "receivers: {test_receiver: {}}\nexporters: {test_exporter: {}}\nservice: {pipelnes: {}}",
        &["service::pipelnes: unknown field `pipelnes`, expected one of `extensions`, `pipelines`, `telemetry`, `shutdown_timeout`"],
    ),
    (
        "bad duration",
        "receivers: {test_receiver: {}}\nexporters: {test_exporter: {}}\nservice: {shutdown_timeout: soon, pipelines: {traces: {receivers: [test_receiver], exporters: [test_exporter]}}}",
        &["service::shutdown_timeout: invalid duration `soon` (expected number at 0); write it like `200ms`, `5s` or `1m30s`"],
    ),
    (
        "signal mismatch on exporter and processor",
        "receivers: {test_receiver: {}}\nprocessors: {test_processor: {signals: [traces]}}\nexporters: {test_exporter: {signals: [logs]}}\nservice: {pipelines: {metrics: {receivers: [test_receiver], processors: [test_processor], exporters: [test_exporter]}}}",
        &[
            "service::pipelines::metrics: exporter \"test_exporter\" does not support metrics",
            "service::pipelines::metrics: processor \"test_processor\" does not support metrics",
        ],
    ),
    (
        "processor listed twice",
        "receivers: {test_receiver: {}}\nprocessors: {test_processor: {}}\nexporters: {test_exporter: {}}\nservice: {pipelines: {traces: {receivers: [test_receiver], processors: [test_processor, test_processor], exporters: [test_exporter]}}}",
        &["service::pipelines::traces: lists processor \"test_processor\" twice"],
    ),
    (
        "connector used only as exporter",
        "receivers: {test_receiver: {}}\nconnectors: {test_connector: {}}\nservice: {pipelines: {traces: {receivers: [test_receiver], exporters: [test_connector]}}}",
        &["service::pipelines::traces: connector \"test_connector\" is used as an exporter but no traces pipeline uses it as a receiver"],
    ),
    (
        "connector used only as receiver",
        "connectors: {test_connector: {}}\nexporters: {test_exporter: {}}\nservice: {pipelines: {metrics/derived: {receivers: [test_connector], exporters: [test_exporter]}}}",
        &["service::pipelines::metrics/derived: connector \"test_connector\" is used as a receiver but no metrics pipeline exports to it"],
    ),
    (
        "connector cycle",
        "receivers: {test_receiver: {}}\nconnectors: {test_connector: {}, test_connector/b: {}}\nexporters: {test_exporter: {}}\nservice: {pipelines: {traces/a: {receivers: [test_receiver, test_connector/b], exporters: [test_connector]}, traces/b: {receivers: [test_connector], exporters: [test_connector/b, test_exporter]}}}",
        &["service::pipelines: pipelines form a cycle through connectors: traces/a -> connector test_connector -> traces/b -> connector test_connector/b -> traces/a"],
    ),
    (
        "two components on one port",
        "receivers: {test_receiver: {endpoint: '127.0.0.1:4317'}, test_receiver/2: {endpoint: '0.0.0.0:4317'}}\nexporters: {test_exporter: {}}\nservice: {pipelines: {traces: {receivers: [test_receiver, test_receiver/2], exporters: [test_exporter]}}}",
        &["receivers::test_receiver/2: listen address 0.0.0.0:4317 is also claimed by receivers::test_receiver"],
    ),
    (
        "component on the telemetry port",
        "receivers: {test_receiver: {endpoint: 'localhost:8888'}}\nexporters: {test_exporter: {}}\nservice: {pipelines: {traces: {receivers: [test_receiver], exporters: [test_exporter]}}}",
        &["receivers::test_receiver: listen address 127.0.0.1:8888 is also claimed by service::telemetry::metrics::address"],
    ),
    (
        "extension not configured",
        "receivers: {test_receiver: {}}\nexporters: {test_exporter: {}}\nservice: {extensions: [health_check], pipelines: {traces: {receivers: [test_receiver], exporters: [test_exporter]}}}",
        &["service::extensions::0: references extension \"health_check\" which is not configured"],
    ),
    (
        "bad env reference",
        "receivers: {test_receiver: {}}\nexporters: {test_exporter: {sink: '${vault:secret}'}}\nservice: {pipelines: {traces: {receivers: [test_receiver], exporters: [test_exporter]}}}",
        &["exporters::test_exporter::sink: unsupported config provider `vault` in `${vault:secret}`; only `${env:NAME}` is supported"],
    ),
    (
        "bad endpoint",
        "receivers: {test_receiver: {endpoint: 'example.com:80'}}\nexporters: {test_exporter: {}}\nservice: {pipelines: {traces: {receivers: [test_receiver], exporters: [test_exporter]}}}",
        &["receivers::test_receiver::endpoint: invalid endpoint `example.com:80`: host must be an IP address or `localhost`"],
    ),
    (
        "yaml syntax",
        "receivers: [unclosed",
        &["test: invalid YAML: did not find expected ',' or ']' at line 2 column 1, while parsing a flow sequence at line 1 column 12"],
    ),
];

#[test]
fn invalid_configs_report_every_error_with_its_path() {
    assert!(CASES.len() >= 20);
    let mut failures = Vec::new();
    for (name, yaml, want) in CASES {
        match load(yaml) {
            Ok(_) => failures.push(format!("{name}: loaded, expected errors {want:?}")),
            Err(got) => {
                let want: Vec<String> = want.iter().map(|s| s.to_string()).collect();
                if got != want {
                    failures.push(format!("{name}:\n  got:  {got:?}\n  want: {want:?}"));
                }
            }
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn several_mistakes_are_all_reported_sorted() {
    let errs = load(
        "
receivers: {test_receiver: {emitt: 1}, nope: {}}
exporters: {test_exporter: {}}
service:
  shutdown_timeout: never
  pipelines: {traces: {receivers: [test_receiver], exporters: [test_exporter]}}
",
    )
    .unwrap_err();
    assert_eq!(errs.len(), 3, "{errs:?}");
    let mut sorted = errs.clone();
    sorted.sort();
    assert_eq!(errs, sorted);
    assert!(errs[0].starts_with("receivers::nope: unknown receiver type `nope`"));
    assert!(errs[1].starts_with("receivers::test_receiver::emitt: unknown field"));
    assert!(errs[2].starts_with("service::shutdown_timeout: invalid duration `never`"));
}

#[test]
fn unused_components_warn() {
    let l = load(
        "
receivers: {test_receiver: {}, test_receiver/spare: {}}
exporters: {test_exporter: {}}
service: {pipelines: {traces: {receivers: [test_receiver], exporters: [test_exporter]}}}
",
    )
    .unwrap();
    let w: Vec<String> = l.warnings.iter().map(|w| w.to_string()).collect();
    assert_eq!(
        w,
        vec!["receivers::test_receiver/spare: configured but not used in any pipeline; it will not run"]
    );
}

#[test]
fn later_files_override_earlier_ones() {
    let scratch = authwatch_testkit::Scratch::new("merge");
    let dir = scratch.0.clone();
    let a = dir.join("a.yaml");
    let b = dir.join("b.yaml");
    std::fs::write(&a, GOOD).unwrap();
    std::fs::write(
        &b,
        "service: {shutdown_timeout: 3s}\nexporters: {test_exporter: {sink: other}}",
    )
    .unwrap();
    let l = authwatch_service::load(
        &[ConfigSource::File(a), ConfigSource::File(b)],
        &factories(),
        &|_| None,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        l.service.shutdown_timeout,
        std::time::Duration::from_secs(3)
    );
    assert!(l.to_yaml().contains("sink: other"));
    assert_eq!(l.service.pipelines.len(), 1);
    let missing = authwatch_service::load(
        &[ConfigSource::File(dir.join("nope.yaml"))],
        &factories(),
        &|_| None,
    )
    .err()
    .unwrap();
    assert!(
        missing.errors[0]
            .to_string()
            .starts_with("cannot read config file"),
        "{missing}"
    );
}
