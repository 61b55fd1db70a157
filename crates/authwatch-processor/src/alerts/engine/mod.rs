//! Rule evaluation, the alert lifecycle (inactive, pending, firing, resolved), verdicts and
//! alert events. Pure state driven with explicit times; the connector calls it on every metrics
//! request and on every tick.
//!
//! The lifecycle is here; [`eval`] evaluates the rules, [`event`] writes the alert events and
//! `super::verdict` says whose fault an alert is.

mod eval;
mod event;

use std::collections::HashMap;
use std::time::Duration;

use super::rules::Rule;
use super::store::{LabelSet, Store};
use super::verdict::Signals;
use super::Config;
use authwatch_core::time::Clock;
use eval::Eval;
pub use event::Event;
pub(crate) use eval::secs;

/// Where an alert is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Inactive,
    Pending,
    Firing,
    Resolved,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Inactive => "inactive",
            State::Pending => "pending",
            State::Firing => "firing",
            State::Resolved => "resolved",
        }
    }
}

#[derive(Debug)]
struct Instance {
    state: State,
    pending_since: Duration,
    firing_since: Duration,
    last_active: Duration,
    last_sent: Duration,
}

/// The alert engine: rules, instances, and their lifecycle.
pub struct Engine {
    rules: Vec<Rule>,
    cfg: Config,
    instances: HashMap<(usize, LabelSet), Instance>,
    clock: Clock,
}

impl Engine {
    pub fn new(cfg: &Config, clock: Clock) -> Self {
        Engine {
            rules: cfg.rules.clone(),
            cfg: cfg.clone(),
            instances: HashMap::new(),
            clock,
        }
    }

    /// The state of an alert instance (for tests and tools).
    #[cfg(test)]
    pub fn state(&self, rule: &str, labels: &[(&str, &str)]) -> State {
        let Some(i) = self.rules.iter().position(|r| r.name == rule) else {
            return State::Inactive;
        };
        let l: LabelSet = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.instances
            .get(&(i, l))
            .map_or(State::Inactive, |x| x.state)
    }

    /// Evaluates every rule at `now`; returns the events of the transitions and re-sends.
    pub fn evaluate(&mut self, store: &Store, now: Duration) -> Vec<Event> {
        let mut events = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for ri in 0..self.rules.len() {
            let evals = self.eval_rule(ri, store, now);
            for e in evals {
                seen.insert((ri, e.labels.clone()));
                self.step(ri, e, store, now, &mut events);
            }
        }
        // Instances whose series disappeared: their condition no longer holds.
        let gone: Vec<(usize, LabelSet)> = self
            .instances
            .keys()
            .filter(|k| !seen.contains(*k))
            .cloned()
            .collect();
        for (ri, labels) in gone {
            let e = Eval {
                labels,
                active: false,
                cleared: true,
                value: 0.0,
                threshold: 0.0,
                numbers: vec![],
                dependency: None,
                probe_alert: false,
                traffic_alert: false,
                summary: "no data".into(),
                slow: None,
            };
            self.step(ri, e, store, now, &mut events);
        }
        events
    }

    fn step(&mut self, ri: usize, e: Eval, store: &Store, now: Duration, out: &mut Vec<Event>) {
        let rule = &self.rules[ri];
        let key = (ri, e.labels.clone());
        let inst = self.instances.entry(key.clone()).or_insert(Instance {
            state: State::Inactive,
            pending_since: now,
            firing_since: now,
            last_active: now,
            last_sent: now,
        });
        if e.active {
            inst.last_active = now;
        }
        let mut emit: Option<(State, bool)> = None;
        match inst.state {
            State::Inactive | State::Resolved => {
                if e.active {
                    inst.pending_since = now;
                    if rule.for_.is_zero() {
                        inst.state = State::Firing;
                        inst.firing_since = now;
                        inst.last_sent = now;
                        emit = Some((State::Firing, false));
                    } else {
                        inst.state = State::Pending;
                        emit = Some((State::Pending, false));
                    }
                }
            }
            State::Pending => {
                if !e.active {
                    inst.state = State::Inactive;
                    emit = Some((State::Inactive, false));
                } else if now.saturating_sub(inst.pending_since) >= rule.for_ {
                    inst.state = State::Firing;
                    inst.firing_since = now;
                    inst.last_sent = now;
                    emit = Some((State::Firing, false));
                }
            }
            State::Firing => {
                let kept = now.saturating_sub(inst.last_active) < rule.keep_firing_for;
                if e.cleared && !e.active && !kept {
                    inst.state = State::Resolved;
                    emit = Some((State::Resolved, false));
                } else if now.saturating_sub(inst.last_sent) >= self.cfg.resend_interval {
                    inst.last_sent = now;
                    emit = Some((State::Firing, true));
                }
            }
        }
        let (pending_since, firing_since) = (inst.pending_since, inst.firing_since);
        if matches!(inst.state, State::Inactive | State::Resolved) {
            self.instances.remove(&key);
        }
        if let Some((state, resend)) = emit {
            let starts = if state == State::Pending || state == State::Inactive {
                pending_since
            } else {
                firing_since
            };
            out.push(self.event(ri, &e, state, resend, starts, store, now));
        }
    }

    /// The signals behind verdicts, over the verdict window.
    pub fn signals(&self, store: &Store, dep: Option<&str>, now: Duration) -> Signals {
        Signals::gather(store, &self.cfg.verdict, dep, now)
    }
}
