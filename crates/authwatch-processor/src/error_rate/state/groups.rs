//! Error groups, Sentry-style: one per dependency, endpoint, error class and error key, with
//! the records that announce a new group or a regression and the group fingerprint.

use std::collections::BTreeSet;
use std::time::Duration;

use authwatch_core::data::{kv_f64, kv_i64, kv_str, kv_str_array};
use authwatch_core::otlp::common::v1::{any_value, AnyValue, KeyValue};
use authwatch_core::otlp::logs::v1::{LogRecord, SeverityNumber};
use authwatch_core::semconv;
use authwatch_core::time::Clock;

use super::super::classify::{ErrorClass, SpanView};
use super::State;

/// Most services remembered per error group.
const MAX_GROUP_SERVICES: usize = 32;
/// Error keys remembered per error group allowed (`error_groups.max_groups`): groups are
/// forgotten and new ones made, so the keys they name may outnumber them.
pub(super) const ERROR_KEYS_PER_GROUP: usize = 4;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) struct GroupKey {
    pub(super) dep: u16,
    pub(super) endpoint: u32,
    pub(super) class: u8,
    pub(super) key: u32,
}

/// An error group: one kind of dependency failure, Sentry-style.
#[derive(Debug, Clone)]
pub struct Group {
    pub first_seen: Duration,
    pub last_seen: Duration,
    pub count: u64,
    pub services: BTreeSet<u32>,
    /// Requests to the group's endpoint before the group was first seen.
    pub(super) endpoint_requests_before: u64,
}

/// Whether an error-group record announces a new group or a regression.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupEvent {
    New,
    Regressed,
}

/// One error-group record to emit.
#[derive(Debug, PartialEq)]
pub struct GroupRecord {
    pub event: GroupEvent,
    pub at: Duration,
    pub attributes: Vec<KeyValue>,
    pub body: String,
}

impl State {
    /// The error group of a dependency, endpoint and key, if any (for tests and tools).
    #[cfg(test)]
    pub fn group(&self, dep: &str, endpoint: &str, key: &str) -> Option<&Group> {
        let d = self.dependencies.iter().position(|x| x.name == dep)? as u16;
        let e = self.endpoints.get(endpoint)?;
        let k = self.error_keys.get(key)?;
        self.groups
            .iter()
            .find(|(gk, _)| gk.dep == d && gk.endpoint == e && gk.key == k)
            .map(|(_, g)| g)
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn record_group(
        &mut self,
        dep: u16,
        endpoint: u32,
        class: ErrorClass,
        view: &SpanView<'_>,
        service: u32,
        before: u64,
        now: Duration,
    ) -> Option<GroupRecord> {
        let key_str = match view.error_key() {
            Some(k) => k,
            None => match view.status_code {
                Some(code) => {
                    self.scratch.clear();
                    use std::fmt::Write;
                    let _ = write!(self.scratch, "{code}");
                    self.scratch.as_str()
                }
                None => class.as_str(),
            },
        };
        let key_id = self.error_keys.get_or_insert(key_str);
        let gk = GroupKey {
            dep,
            endpoint,
            class: class as u8,
            key: key_id,
        };
        let event = match self.groups.get_mut(&gk) {
            Some(g) => {
                let regressed = now.saturating_sub(g.last_seen) >= self.resolve_after;
                g.last_seen = now;
                g.count += 1;
                if g.services.len() < MAX_GROUP_SERVICES {
                    g.services.insert(service);
                }
                regressed.then_some(GroupEvent::Regressed)
            }
            None => {
                if self.groups.len() >= self.max_groups {
                    // Forget the group seen least recently.
                    if let Some(oldest) = self
                        .groups
                        .iter()
                        .min_by_key(|(_, g)| g.last_seen)
                        .map(|(k, _)| *k)
                    {
                        self.groups.remove(&oldest);
                    }
                }
                self.groups.insert(
                    gk,
                    Group {
                        first_seen: now,
                        last_seen: now,
                        count: 1,
                        services: BTreeSet::from([service]),
                        endpoint_requests_before: before,
                    },
                );
                Some(GroupEvent::New)
            }
        }?;
        Some(self.group_record(gk, event, now))
    }

    fn group_record(&self, gk: GroupKey, event: GroupEvent, now: Duration) -> GroupRecord {
        let g = &self.groups[&gk];
        let dep = &self.dependencies[gk.dep as usize].name;
        let endpoint = self.endpoints.name(gk.endpoint);
        let key = self.error_keys.name(gk.key);
        let class = ErrorClass::ALL[gk.class as usize];
        let total = self
            .endpoint_requests
            .get(&(gk.dep, gk.endpoint))
            .copied()
            .unwrap_or(0)
            .saturating_sub(g.endpoint_requests_before);
        let share = if total == 0 {
            0.0
        } else {
            g.count as f64 / total as f64
        };
        let fp = fingerprint(dep, endpoint, class.as_str(), key);
        let p = semconv::ERROR_GROUP_PREFIX;
        let attributes = vec![
            kv_str(format!("{p}fingerprint"), fp),
            kv_str(
                format!("{p}state"),
                match event {
                    GroupEvent::New => "new",
                    GroupEvent::Regressed => "regressed",
                },
            ),
            kv_str(semconv::DEPENDENCY, dep.clone()),
            kv_str(semconv::ENDPOINT, endpoint),
            kv_str(semconv::ERROR_CLASS, class.as_str()),
            kv_str(format!("{p}key"), key),
            kv_str(format!("{p}first_seen"), self.clock.rfc3339(g.first_seen)),
            kv_str(format!("{p}last_seen"), self.clock.rfc3339(g.last_seen)),
            kv_i64(format!("{p}count"), g.count as i64),
            kv_str_array(
                format!("{p}services"),
                g.services
                    .iter()
                    .map(|s| self.services.name(*s).to_owned()),
            ),
            kv_f64(format!("{p}share"), share),
        ];
        let what = match event {
            GroupEvent::New => "New",
            GroupEvent::Regressed => "Regressed",
        };
        GroupRecord {
            event,
            at: now,
            attributes,
            body: format!("{what} error group: {dep} {endpoint} {key} ({}).", class.as_str()),
        }
    }
}

/// The group fingerprint: 16 hex digits of FNV-1a over dependency, endpoint, class and key
/// (stable across restarts and hosts, unlike `std`'s hasher).
pub fn fingerprint(dep: &str, endpoint: &str, class: &str, key: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in [dep, endpoint, class, key] {
        for b in part.bytes().chain(std::iter::once(0xff)) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    format!("{h:016x}")
}

impl GroupRecord {
    pub fn into_log_record(self, clock: &Clock) -> LogRecord {
        let t = clock.unix_nanos(self.at);
        LogRecord {
            time_unix_nano: t,
            observed_time_unix_nano: t,
            severity_number: SeverityNumber::Warn as i32,
            severity_text: "WARN".into(),
            event_name: match self.event {
                GroupEvent::New => semconv::ERROR_GROUP_NEW,
                GroupEvent::Regressed => semconv::ERROR_GROUP_REGRESSED,
            }
            .into(),
            body: Some(AnyValue {
                value: Some(any_value::Value::StringValue(self.body)),
            }),
            attributes: self.attributes,
            ..Default::default()
        }
    }
}
