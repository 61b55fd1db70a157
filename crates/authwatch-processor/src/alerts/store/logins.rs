//! Logins from tenant logs (`authwatch.logins`, `authwatch.logins.users_affected`): running
//! totals per dependency with the same bounded history as the call counters, read once by
//! their timestamps like every cumulative series.

use std::collections::BTreeMap;
use std::time::Duration;

use authwatch_core::data::find_str;
use authwatch_core::otlp::metrics::v1::{AggregationTemporality, NumberDataPoint, Sum};
use authwatch_core::semconv;

use super::{num, Counters, Store};

/// Login totals of one dependency.
#[derive(Debug, Default)]
pub struct LoginCounters {
    /// `requests`: logins; `errors`: provider-side failures (provider or tenant errors);
    /// `provider_errors`: the provider's own errors.
    pub provider: Counters,
    /// `errors`: failures of the users' own doing (wrong credentials, blocked, MFA, rate
    /// limit) and failures the log does not explain.
    pub user: Counters,
    /// The last users gauge: `(provider_side, all, time of the point)`.
    pub users_affected: Option<(f64, f64, u64)>,
}

/// Logins and their failures over a window.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LoginIncrease {
    pub logins: f64,
    /// Provider-side failures: `provider + tenant`.
    pub provider_side: f64,
    pub provider: f64,
    pub tenant: f64,
    /// Failures of the users' own doing.
    pub user: f64,
}

impl LoginIncrease {
    /// Provider-side failures / logins.
    pub fn ratio(&self) -> Option<f64> {
        (self.logins > 0.0).then(|| self.provider_side / self.logins)
    }
    pub fn failures(&self) -> f64 {
        self.provider_side + self.user
    }
}

impl Store {
    pub(super) fn logins_sum(&mut self, s: &Sum) -> bool {
        let delta = s.aggregation_temporality == AggregationTemporality::Delta as i32;
        let mut touched = false;
        for p in &s.data_points {
            let Some(dep) = find_str(&p.attributes, semconv::DEPENDENCY) else { continue };
            let dep = dep.to_owned();
            let Some(inc) = self.increment(semconv::LOGINS, p, delta) else { continue };
            let failed = find_str(&p.attributes, semconv::LOGIN_OUTCOME) == Some("failure");
            let cat = find_str(&p.attributes, semconv::LOGIN_FAILURE_CATEGORY).unwrap_or("");
            let c = self.logins.entry(dep).or_default();
            c.provider.requests += inc;
            c.user.requests += inc;
            if failed {
                match cat {
                    semconv::LOGIN_PROVIDER_ERROR => {
                        c.provider.errors += inc;
                        c.provider.provider_errors += inc;
                    }
                    semconv::LOGIN_TENANT_ERROR => c.provider.errors += inc,
                    _ => c.user.errors += inc,
                }
            }
            touched = true;
        }
        touched
    }

    pub(super) fn users_point(&mut self, p: &NumberDataPoint) {
        let (Some(dep), Some(v)) = (find_str(&p.attributes, semconv::DEPENDENCY), num(p)) else {
            return;
        };
        let provider_side = find_str(&p.attributes, semconv::LOGIN_FAILURE_SCOPE) == Some("provider_side");
        let c = self.logins.entry(dep.to_owned()).or_default();
        let (mut ps, mut all, t) = c.users_affected.unwrap_or((0.0, 0.0, 0));
        // A copy of an older point (the other lane) does not undo a newer one.
        if p.time_unix_nano != 0 && p.time_unix_nano < t {
            return;
        }
        if provider_side {
            ps = v;
        } else {
            all = v;
        }
        c.users_affected = Some((ps, all, p.time_unix_nano));
    }

    pub(super) fn sample_logins(&mut self, now: Duration) {
        for c in self.logins.values_mut() {
            c.provider.sample(now, self.keep);
            c.user.sample(now, self.keep);
        }
    }

    /// Logins of one dependency (or all) over a window.
    pub fn login_increase(&self, dep: Option<&str>, now: Duration, window: Duration) -> LoginIncrease {
        let mut t = LoginIncrease::default();
        for (_, c) in self.logins.iter().filter(|(d, _)| dep.is_none_or(|x| x == *d)) {
            let p = c.provider.increase(now, window);
            let u = c.user.increase(now, window);
            t.logins += p.requests;
            t.provider_side += p.errors;
            t.provider += p.provider_errors;
            t.tenant += p.errors - p.provider_errors;
            t.user += u.errors;
        }
        t
    }

    /// The last users-affected estimate: `(provider_side, all)`, summed over dependencies.
    pub fn users_affected(&self, dep: Option<&str>) -> Option<(f64, f64)> {
        self.logins
            .iter()
            .filter(|(d, _)| dep.is_none_or(|x| x == *d))
            .filter_map(|(_, c)| c.users_affected)
            .map(|(p, a, _)| (p, a))
            .reduce(|x, y| (x.0 + y.0, x.1 + y.1))
    }

    /// Dependencies with logins.
    pub fn login_dependencies(&self) -> Vec<String> {
        self.logins.keys().cloned().collect()
    }
}

/// Login totals per dependency.
pub type Logins = BTreeMap<String, LoginCounters>;
