//! Config loading: YAML parse, `${env:...}` expansion, merge of two documents (the input split
//! at the first NUL byte), decoding and validation of every component with the binary's real
//! factories, and the pipeline graph checks.
//!
//! Invariant: a config that loads prints (`print-config`) as YAML that parses.
#![no_main]

use std::sync::LazyLock;

use authwatch_core::Factories;
use authwatch_service::ConfigSource;
use libfuzzer_sys::fuzz_target;

static FACTORIES: LazyLock<Factories> = LazyLock::new(|| {
    authwatch_receiver::factories()
        .merge(authwatch_processor::factories())
        .merge(authwatch_exporter::factories())
        .merge(authwatch_extension::factories())
});

/// A fixed environment: a few set variables of each YAML type, everything else unset.
fn env(name: &str) -> Option<String> {
    match name {
        "PORT" => Some("4317".into()),
        "HOST" => Some("127.0.0.1".into()),
        "ENABLED" => Some("true".into()),
        "TOKEN" => Some("s3cret".into()),
        "EMPTY" => Some(String::new()),
        "YAML" => Some("{a: [1, 2]}".into()),
        "DOLLAR" => Some("${env:PORT}".into()),
        _ => None,
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let sources: Vec<ConfigSource> = text
        .splitn(2, '\0')
        .enumerate()
        .map(|(i, t)| ConfigSource::Embedded {
            name: format!("fuzz{i}.yaml"),
            text: t.to_owned(),
        })
        .collect();
    if let Ok(loaded) = authwatch_service::load(&sources, &FACTORIES, &env) {
        let yaml = loaded.to_yaml();
        assert!(!yaml.is_empty(), "an effective config prints");
        serde_yaml::from_str::<serde_yaml::Value>(&yaml).expect("the printed config is YAML");
    }
});
