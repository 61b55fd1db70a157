//! Config: the YAML, invalid configs, the backoff.

use super::*;

#[test]
fn config_contract() {
    // The default has no pages, which does not validate: `pages` is required.
    authwatch_testkit::assert_config_decodes::<Config>("statuspage");
}

#[test]
fn config_yaml_decodes_to_struct() {
    let v: serde_json::Value = serde_yaml::from_str(&data("config.yaml")).unwrap();
    let c: Config = decode_config(v).unwrap();
    let want = Config {
        interval: Duration::from_secs(30),
        timeout: Duration::from_secs(5),
        max_backoff: Duration::from_secs(600),
        pages: vec![
            PageConfig {
                name: "auth0".into(),
                url: "https://status.auth0.com/feed?domain=example.us.auth0.com"
                    .parse()
                    .unwrap(),
                format: Format::Atom,
                components: vec![],
            },
            PageConfig {
                name: "github".into(),
                url: "https://www.githubstatus.com/api/v2/summary.json"
                    .parse()
                    .unwrap(),
                format: Format::StatuspageV2,
                components: vec!["Git Operations".into(), "brv1bkgrwx7q".into()],
            },
            PageConfig {
                name: "example".into(),
                url: "https://status.example.com/history.rss".parse().unwrap(),
                format: Format::Rss,
                components: vec![],
            },
        ],
    };
    assert_eq!(c, want);
    let mut v = Validator::new("receivers::statuspage");
    c.validate(&mut v);
    assert!(!v.has_errors(), "{:?}", v.errors());
    assert_eq!(c.signals(), Signals::METRICS | Signals::LOGS);
}

/// Decode and validate errors of one config, as printed.
fn config_errors(v: serde_json::Value) -> Vec<String> {
    match decode_config::<Config>(v) {
        Err(e) => vec![e.to_string()],
        Ok(c) => {
            let mut v = Validator::new("");
            c.validate(&mut v);
            v.errors().iter().map(ToString::to_string).collect()
        }
    }
}

#[test]
fn invalid_configs() {
    let cases: serde_json::Map<String, serde_json::Value> =
        serde_yaml::from_str(&data("invalid.yaml")).unwrap();
    assert!(cases.len() >= 10);
    for (name, case) in cases {
        let got = config_errors(case["config"].clone());
        let want = case["error"].as_str().unwrap();
        assert_eq!(got, vec![want.to_owned()], "case {name}");
    }
}

#[test]
fn backoff_doubles_up_to_max() {
    let s = Schedule {
        interval: Duration::from_secs(60),
        max_backoff: Duration::from_secs(300),
    };
    let got: Vec<u64> = (0..6).map(|f| s.next_delay(f).as_secs()).collect();
    assert_eq!(got, [60, 60, 120, 240, 300, 300]);
    assert_eq!(s.next_delay(u32::MAX), Duration::from_secs(300));
}
