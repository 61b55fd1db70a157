//! Logins from tenant logs: the login error-ratio rule (`threshold.logins`), its verdict and
//! the users affected in its payload, and the wrong-password storm that is nobody's outage.

use std::collections::BTreeMap;
use std::time::Duration;

use authwatch_core::otlp::common::v1::{any_value, KeyValue};
use authwatch_core::otlp::metrics::v1::NumberDataPoint;
use authwatch_core::registry::decode_config;
use authwatch_core::semconv;
use authwatch_core::time::{Clock, Window};
use authwatch_testkit::kv;

use super::engine::Engine;
use super::store::Store;
use super::test_data::{gauge, point_from, request, sum};
use super::Config;

/// Login series start at 1 ns (as the receivers export them).
fn point(attrs: Vec<KeyValue>, v: f64, t: u64) -> NumberDataPoint {
    point_from(attrs, v, 1, t)
}



struct World {
    store: Store,
    engine: Engine,
    /// (outcome, category) -> cumulative logins.
    logins: BTreeMap<(&'static str, &'static str), f64>,
    /// (class) -> cumulative traffic calls.
    calls: BTreeMap<&'static str, f64>,
    users: (f64, f64),
    t: u64,
    now: Duration,
    /// Firing events: attributes as strings and numbers.
    fired: Vec<BTreeMap<String, String>>,
}

impl World {
    fn new() -> World {
        let cfg: Config = decode_config(serde_json::json!({
            "rules": [
                {"name": "login_failures", "threshold": {"dependency": "auth0", "logins": true, "error_ratio": 0.02, "window": "5m", "min_requests": 50}},
                {"name": "traffic_errors", "threshold": {"dependency": "auth0", "source": "traffic", "error_ratio": 0.05, "window": "1m", "min_requests": 10}}
            ]
        }))
        .unwrap();
        World {
            store: cfg.store(),
            engine: Engine::new(&cfg, Clock::new()),
            logins: BTreeMap::new(),
            calls: BTreeMap::new(),
            users: (0.0, 0.0),
            t: 0,
            now: Duration::ZERO,
            fired: Vec::new(),
        }
    }

    fn send(&mut self) {
        self.t += 1;
        let t = self.t;
        let logins = self
            .logins
            .iter()
            .map(|((o, c), n)| {
                let mut a = vec![kv(semconv::DEPENDENCY, "auth0"), kv(semconv::LOGIN_OUTCOME, o)];
                if !c.is_empty() {
                    a.push(kv(semconv::LOGIN_FAILURE_CATEGORY, c));
                }
                a.push(kv(semconv::LOGIN_CLIENT, "Shop"));
                a.push(kv(semconv::LOGIN_CONNECTION, "db"));
                point(a, *n, t)
            })
            .collect();
        let users = vec![
            point(vec![kv(semconv::DEPENDENCY, "auth0"), kv(semconv::LOGIN_FAILURE_SCOPE, "provider_side")], self.users.0, t),
            point(vec![kv(semconv::DEPENDENCY, "auth0"), kv(semconv::LOGIN_FAILURE_SCOPE, "all")], self.users.1, t),
        ];
        let attrs = |class: &str| {
            vec![
                kv("dependency", "auth0"),
                kv("endpoint", "/oauth/token"),
                kv("error.class", class),
                kv("source", "traffic"),
            ]
        };
        let requests = self.calls.iter().map(|(c, n)| point(attrs(c), *n, t)).collect();
        let errors = self.calls.iter().filter(|(c, _)| **c != "ok").map(|(c, n)| point(attrs(c), *n, t)).collect();
        let mut metrics = vec![
            sum(semconv::LOGINS, logins),
            gauge(semconv::LOGINS_USERS_AFFECTED, users),
        ];
        if !self.calls.is_empty() {
            metrics.push(sum(semconv::DEPENDENCY_REQUESTS, requests));
            metrics.push(sum(semconv::DEPENDENCY_ERRORS, errors));
        }
        let req = request(metrics);
        self.store.ingest(&req, self.now);
    }

    /// Runs `secs` seconds, `each` adding logins and calls every second.
    fn run(&mut self, secs: u64, mut each: impl FnMut(&mut World)) {
        for _ in 0..secs {
            self.now += Duration::from_secs(1);
            each(self);
            self.send();
            for e in self.engine.evaluate(&self.store, self.now) {
                let a: BTreeMap<String, String> = e
                    .record
                    .attributes
                    .iter()
                    .filter_map(|kv| {
                        let v = match kv.value.as_ref()?.value.as_ref()? {
                            any_value::Value::StringValue(s) => s.clone(),
                            any_value::Value::DoubleValue(d) => d.to_string(),
                            any_value::Value::IntValue(i) => i.to_string(),
                            _ => return None,
                        };
                        Some((kv.key.clone(), v))
                    })
                    .collect();
                if a[semconv::ALERT_STATE] == "firing" {
                    self.fired.push(a);
                }
            }
        }
    }

    fn login(&mut self, outcome: &'static str, category: &'static str, n: f64) {
        *self.logins.entry((outcome, category)).or_default() += n;
    }

    fn fired(&self, name: &str) -> Option<&BTreeMap<String, String>> {
        self.fired.iter().find(|a| a[semconv::ALERT_NAME] == name)
    }
}

#[test]
fn provider_errors_in_the_tenant_log_fire_with_the_verdict_and_users_affected() {
    let mut w = World::new();
    w.run(60, |w| w.login("success", "", 10.0));
    assert!(w.fired.is_empty());
    // 5% of logins fail with the provider's own errors, for 37 distinct users.
    w.users = (37.0, 40.0);
    w.run(30, |w| {
        w.login("success", "", 19.0);
        w.login("failure", "provider_error", 1.0);
    });
    let a = w.fired("login_failures").expect("the login alert fires").clone();
    assert_eq!(a[semconv::ALERT_VERDICT], "provider_outage", "{}", a[semconv::ALERT_VERDICT_REASON]);
    assert!(a[semconv::ALERT_VERDICT_REASON].contains("provider's own errors for about 37 users"), "{a:?}");
    assert_eq!(a["alert.annotation.users_affected"], "37");
    assert_eq!(a["alert.logins.users_affected"], "37");
    assert_eq!(a["alert.signal.logins.users_affected"], "40");
    assert_eq!(a["alert.label.dependency"], "auth0");
    assert!(a["alert.annotation.summary"].contains("provider-side login failures"), "{a:?}");
    assert!(w.fired("traffic_errors").is_none());
}

#[test]
fn the_tenants_own_errors_are_a_tenant_issue() {
    let mut w = World::new();
    w.users = (12.0, 15.0);
    w.run(60, |w| {
        w.login("success", "", 9.0);
        w.login("failure", "tenant_error", 1.0);
        w.login("failure", "wrong_credentials", 1.0);
    });
    let a = w.fired("login_failures").expect("fires");
    assert_eq!(a[semconv::ALERT_VERDICT], "tenant_issue", "{}", a[semconv::ALERT_VERDICT_REASON]);
    assert!(a[semconv::ALERT_VERDICT_REASON].contains("tenant's own setup"), "{a:?}");
    assert_eq!(a["alert.annotation.users_affected"], "12");
}

#[test]
fn a_wrong_password_storm_is_nobodys_outage() {
    let mut w = World::new();
    w.users = (0.0, 300.0);
    // Half of all logins fail with wrong passwords; the application's own calls get 4xx.
    w.run(60, |w| {
        w.login("success", "", 10.0);
        w.login("failure", "wrong_credentials", 10.0);
        *w.calls.entry("ok").or_default() += 10.0;
        *w.calls.entry("client_error").or_default() += 10.0;
    });
    assert!(w.fired("login_failures").is_none(), "wrong passwords are not provider-side");
    let a = w.fired("traffic_errors").expect("the traffic rule fires on the 4xx");
    assert_eq!(a[semconv::ALERT_VERDICT], "no_outage", "{}", a[semconv::ALERT_VERDICT_REASON]);
    assert!(a[semconv::ALERT_VERDICT_REASON].contains("about 300 users"), "{a:?}");
    assert_eq!(a["alert.annotation.users_affected"], "300");
}

#[test]
fn too_few_logins_do_not_fire() {
    let mut w = World::new();
    w.run(20, |w| w.login("failure", "provider_error", 1.0));
    assert!(w.fired("login_failures").is_none(), "20 logins < min_requests 50");
}

#[test]
fn logins_rules_validate_and_write_prometheus_rules() {
    let bad: Result<Config, _> = decode_config(serde_json::json!({
        "rules": [{"name": "x", "threshold": {"logins": true, "source": "probe", "error_ratio": 0.02}}]
    }));
    let mut v = authwatch_core::Validator::new("");
    authwatch_core::ComponentConfig::validate(&bad.unwrap(), &mut v);
    assert_eq!(v.errors().len(), 1, "{:?}", v.errors());
    let cfg: Config = decode_config(serde_json::json!({
        "rules": [{"name": "login_failures", "threshold": {"dependency": "auth0", "logins": true, "error_ratio": 0.02, "window": "5m", "min_requests": 50}}]
    }))
    .unwrap();
    let text = super::prometheus_rules(&[Window::secs(300)], &cfg);
    assert!(
        text.contains(r#"sum by (dependency) (increase(authwatch_logins_total{dependency="auth0", login_failure_category=~"provider_error|tenant_error"}[5m]))"#),
        "{text}"
    );
}
