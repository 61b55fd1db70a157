//! Issue 17: the generated fleet rules count a new error series' first burst when the series
//! starts at 0 (as the `error_rate` connector now exports it), and count nothing when the series
//! is born with its value (what Prometheus' `increase()` does with a series' first sample).
//! Checked by `promtool test rules` on the rules `authwatch rules` writes.

use authwatch_core::registry::decode_config;
use authwatch_core::time::Window;

use super::test_data::promtool;
use super::{prometheus_rules, Config};


/// Two sidecars, 20 good calls a minute from minute 0; a single burst of 40 server errors at
/// minute 10 and none after. `errors_before` is how the error series look before the burst.
fn input(errors_before: &str) -> String {
    let mut s = String::new();
    for inst in ["a:1", "b:1"] {
        let labels = |kind: &str, class: &str| {
            format!("authwatch_dependency_{kind}_total{{instance=\"{inst}\", job=\"authwatch\", dependency=\"auth0\", endpoint=\"/oauth/token\", error_class=\"{class}\", service_name=\"web\", source=\"traffic\"}}")
        };
        s += &format!("      - series: '{}'\n        values: '0+20x20'\n", labels("requests", "ok"));
        for kind in ["requests", "errors"] {
            s += &format!(
                "      - series: '{}'\n        values: '{errors_before} 40x10'\n",
                labels(kind, "server_error")
            );
        }
    }
    s
}

#[test]
fn fleet_rules_count_the_first_burst_of_a_series_that_starts_at_zero() {
    let al: Config = decode_config(serde_json::json!({
        "rules": [{"name": "auth0_any", "threshold": {"error_ratio": 0.5, "window": "1m"}}]
    }))
    .unwrap();
    let scratch = authwatch_testkit::Scratch::new("first-burst");
    let dir = scratch.0.clone();
    std::fs::write(
        dir.join("rules.yml"),
        prometheus_rules(&[Window::secs(300)], &al),
    )
    .unwrap();
    let fleet = |values_before: &str, fires: bool| {
        let mut t = format!(
            "  - interval: 1m\n    input_series:\n{}    alert_rule_test:\n      - eval_time: 12m\n        alertname: authwatch_fleet_provider_failing\n",
            input(values_before)
        );
        if fires {
            t += "        exp_alerts:\n          - exp_labels: {severity: page, job: authwatch, dependency: auth0}\n";
            t += "            exp_annotations: {summary: '2 sidecars see auth0 fail (error ratio above 0.1 over 5m)', verdict: provider_outage, status_page: 'https://status.auth0.com'}\n";
        } else {
            t += "        exp_alerts: []\n";
        }
        // What the recording rule reads: the whole burst, or nothing.
        t += &format!(
            "    promql_expr_test:\n      - expr: sum without (instance) (authwatch:dependency_errors:increase5m)\n        eval_time: 12m\n        exp_samples:\n          - labels: '{{job=\"authwatch\", dependency=\"auth0\", source=\"traffic\"}}'\n            value: {}\n",
            if fires { 80 } else { 0 }
        );
        t
    };
    let mut test = String::from("rule_files:\n  - rules.yml\nevaluation_interval: 1m\ntests:\n");
    // Seeded at 0 when the endpoint was first seen (minute 3), then the burst at minute 10.
    test += &fleet("_x3 0x6", true);
    // Born with the burst: increase() has nothing to compare the first sample with.
    test += &fleet("_x10", false);
    std::fs::write(dir.join("test.yml"), &test).unwrap();
    let out = std::process::Command::new(promtool())
        .current_dir(&dir)
        .args(["test", "rules", "test.yml"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "promtool test rules failed:\n{}\n{}\n--- test.yml ---\n{test}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
