//! # `memory_limiter` processor
//!
//! Protects the process from running out of memory, like the OpenTelemetry Collector's
//! `memory_limiter` processor: while authwatch holds more data than its soft limit leaves room
//! for, data is refused with a retryable error, so that receivers push back on their clients (OTLP answers
//! RESOURCE_EXHAUSTED / 429 with a retry hint) instead of the process being killed. Put it
//! **first** in every pipeline's `processors` list.
//!
//! ```yaml
//! processors:
//!   memory_limiter:
//!     check_interval: 1s
//!     limit_mib: 512
//!     spike_limit_mib: 128
//! ```
//!
//! ## Options
//!
//! | option | default | meaning |
//! | --- | --- | --- |
//! | `check_interval` | `1s` | How often the process's memory use (resident set size, the backstop) is read; also the retry hint of refusals. |
//! | `limit_mib` | none | The hard limit, in MiB. |
//! | `spike_limit_mib` | 20% of `limit_mib` | Headroom above the soft limit (`limit_mib` minus this) for what the count of held bytes does not see (decoded data, buffers) and for the growth between two checks, in MiB; must be smaller than `limit_mib`. |
//! | `limit_percentage` | none | The hard limit as a percentage (1 to 100) of the total memory: the cgroup v2 `memory.max` when set, else `MemTotal` from `/proc/meminfo`. |
//! | `spike_limit_percentage` | 20% of the limit | The headroom as a percentage of the total memory; must be smaller than `limit_percentage`. |
//!
//! Exactly one of `limit_mib` and `limit_percentage` must be set: there is no default limit, so
//! `memory_limiter: {}` is refused. `spike_limit_mib` goes with `limit_mib`,
//! `spike_limit_percentage` with `limit_percentage`.
//!
//! ## Behaviour
//!
//! The limiter is driven by what authwatch **holds**, counted in bytes (the run's memory budget,
//! `authwatch_core::budget`): data in `batch` processors and in-memory sending queues, and the
//! request bodies receivers are reading, each as protobuf. The resident set size (RSS) is a
//! backstop.
//!
//! - The **soft limit** is the limit minus the spike limit. Memory (RSS) is read when the
//!   processor is built and then every `check_interval`.
//! - **Held limit**: the room between the RSS at start (what the process needs without data) and
//!   the soft limit (at least a quarter of the soft limit), divided by what a held byte costs in
//!   RSS. That cost (decoded data, buffer capacity, the allocator's own use; 1 to 8) is learnt at
//!   each check while at least a quarter of the held limit is held: it rises at once and falls by
//!   half the difference per check, so that refusing on the count keeps the RSS near the soft
//!   limit. While the bytes held pass the held limit, requests are refused
//!   with "refused to protect the process, retry after `check_interval`" (retryable) and counted as
//!   refused. The OTLP receiver asks the budget *before reading a body*, with the size the request
//!   declares (HTTP `Content-Length`; for gRPC what is held now): a request that would pass the held
//!   limit is answered `RESOURCE_EXHAUSTED` / 429 with `Retry-After` at once, so a refusal costs no
//!   body read and no decode. Data that was acknowledged is never dropped to make room.
//! - **RSS backstop**: the held bytes are protobuf sizes; decoded data, buffers and the
//!   allocator take more. When the RSS crosses the *backstop limit*, halfway between the soft and
//!   the hard limit, or grows while above it, every request is refused, by the limiter and by the
//!   receivers before reading. The allocator keeps most freed memory resident to reuse it, so
//!   after a burst the RSS can stay above that limit with no data left. Therefore, above it, once
//!   memory has not grown for 5 checks while refusing, data is let in again; if memory then grows,
//!   refusing resumes and the next try waits twice as long (up to 64 checks); if it does not, the
//!   allocator is reusing what it kept and data keeps flowing.
//! - At or above the hard limit every request is refused.
//! - Several `memory_limiter`s (one per pipeline) share the budget and its held limit (each
//!   learns the same cost from the same process).
//! - A warning is logged when the backstop starts refusing from below its limit, and once when
//!   data is let in again (below the limit, or because memory stopped growing); the tries in
//!   between are logged at debug.
//! - When memory cannot be read (not Linux), the held limit is the soft limit, the backstop never
//!   refuses, and a warning is logged once.
//! - Live data (a few series for the `alerts` connector, see `authwatch_core::consume`) always
//!   passes: it is small, bounded, and what tells you about the trouble.
//! - Rust has no garbage collector to force; glibc's `malloc_trim` would be the equivalent and is
//!   not called (it needs `unsafe`).
//!
//! ## Telemetry
//!
//! `authwatch_processor_{accepted,refused}_{spans,metric_points,log_records}_total`, labelled
//! `processor` and `pipeline`.

mod gate;
mod memory;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use authwatch_core::config::duration;
use authwatch_core::telemetry::ProcessorTelemetry;
use authwatch_core::{
    BuildError, Built, ComponentConfig, ConsumeError, Consumer, ProcessorConfig, ProcessorContext,
    MemoryBudget, RunError, SharedConsumer, Signal, Validator,
};
use futures::future::BoxFuture;
use serde::{Deserialize, Deserializer, Serialize};
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use gate::{Gate, Transition};
pub use memory::{total_memory_bytes, MemorySource, ProcessRss};

/// The `memory_limiter` processor's configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// How often memory use is read.
    #[serde(with = "duration")]
    pub check_interval: Duration,
    /// Hard limit in MiB; `0` means unset.
    pub limit_mib: u64,
    /// Headroom in MiB; `0` means 20% of `limit_mib`.
    pub spike_limit_mib: u64,
    /// Hard limit in percent of total memory; `0` means unset.
    pub limit_percentage: Percent,
    /// Headroom in percent of total memory; `0` means 20% of the limit.
    pub spike_limit_percentage: Percent,
}

pub const DEFAULT_CHECK_INTERVAL: Duration = Duration::from_secs(1);

impl Default for Config {
    fn default() -> Self {
        Config {
            check_interval: DEFAULT_CHECK_INTERVAL,
            limit_mib: 0,
            spike_limit_mib: 0,
            limit_percentage: Percent(0),
            spike_limit_percentage: Percent(0),
        }
    }
}

// === newtypes ===

/// A whole percentage from 0 to 100.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct Percent(pub u8);

impl Percent {
    pub fn get(self) -> u8 {
        self.0
    }
}

impl<'de> Deserialize<'de> for Percent {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let n = u64::deserialize(d)?;
        match u8::try_from(n) {
            Ok(p) if p <= 100 => Ok(Percent(p)),
            _ => Err(serde::de::Error::custom(format!(
                "{n} is not a percentage: write a whole number from 0 to 100"
            ))),
        }
    }
}

const MIB: u64 = 1024 * 1024;

/// The limits in force, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limits {
    pub hard: u64,
    pub soft: u64,
}

/// Why the limits cannot be worked out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LimitError {
    #[error("cannot read the total memory (cgroup memory.max or /proc/meminfo) for `limit_percentage`; set `limit_mib` instead")]
    TotalMemoryUnknown,
    #[error("set one of `limit_mib` or `limit_percentage`")]
    NoLimit,
    #[error("the spike limit must be smaller than the limit")]
    SpikeNotBelowLimit,
}

impl Limits {
    /// The resident-set backstop's limits: refusing on growth starts halfway between the soft
    /// and the hard limit, so that memory the allocator keeps after a burst does not refuse data
    /// that the accounting lets in.
    pub(crate) fn backstop(self) -> Limits {
        Limits {
            hard: self.hard,
            soft: self.soft + (self.hard - self.soft) / 2,
        }
    }
}

/// The bytes data may hold (as counted in the memory budget): the soft limit less what the
/// process used when the limiter started, and at least a quarter of the soft limit.
/// The most RSS a held byte is taken to cost: the held limit is never below the room / this.
const MAX_OVERHEAD: f64 = 8.0;

pub(crate) fn held_limit(limits: Limits, baseline: u64) -> u64 {
    limits.soft.saturating_sub(baseline).max(limits.soft / 4)
}

impl Config {
    /// Works out the limits; `total` is asked for the total memory only for percentages.
    pub(crate) fn limits(&self, total: impl FnOnce() -> Option<u64>) -> Result<Limits, BuildError> {
        let (hard, spike) = if self.limit_mib > 0 {
            let hard = self.limit_mib.saturating_mul(MIB);
            (hard, self.spike_limit_mib.saturating_mul(MIB))
        } else if self.limit_percentage.0 > 0 {
            let total = total()
                .ok_or_else(|| BuildError::component(LimitError::TotalMemoryUnknown))?;
            let pct = |p: Percent| (u128::from(total) * u128::from(p.0) / 100) as u64;
            (pct(self.limit_percentage), pct(self.spike_limit_percentage))
        } else {
            return Err(BuildError::component(LimitError::NoLimit));
        };
        let spike = if spike == 0 { hard / 5 } else { spike };
        if spike >= hard {
            return Err(BuildError::component(LimitError::SpikeNotBelowLimit));
        }
        Ok(Limits {
            hard,
            soft: hard - spike,
        })
    }
}

impl ComponentConfig for Config {
    const TYPE: &'static str = "memory_limiter";

    fn validate(&self, v: &mut Validator) {
        if self.check_interval.is_zero() {
            v.error("check_interval", "must be greater than zero, e.g. `1s`");
        }
        let by_mib = self.limit_mib > 0;
        let by_pct = self.limit_percentage.0 > 0;
        match (by_mib, by_pct) {
            (false, false) => v.error(
                "",
                "set one of `limit_mib` or `limit_percentage`; there is no default memory limit",
            ),
            (true, true) => v.error(
                "",
                "set only one of `limit_mib` or `limit_percentage`, not both",
            ),
            _ => {}
        }
        if by_mib && self.spike_limit_mib >= self.limit_mib {
            v.error(
                "spike_limit_mib",
                format!("must be smaller than `limit_mib` ({})", self.limit_mib),
            );
        }
        if by_pct && self.spike_limit_percentage >= self.limit_percentage {
            v.error(
                "spike_limit_percentage",
                format!(
                    "must be smaller than `limit_percentage` ({})",
                    self.limit_percentage.0
                ),
            );
        }
        if !by_mib && self.spike_limit_mib > 0 {
            v.error(
                "spike_limit_mib",
                "applies only with `limit_mib`; use `spike_limit_percentage` with `limit_percentage`",
            );
        }
        if !by_pct && self.spike_limit_percentage.0 > 0 {
            v.error(
                "spike_limit_percentage",
                "applies only with `limit_percentage`; use `spike_limit_mib` with `limit_mib`",
            );
        }
    }
}

impl ProcessorConfig for Config {
    async fn build(&self, cx: ProcessorContext) -> Result<Built, BuildError> {
        self.build_with(cx, Arc::new(ProcessRss), total_memory_bytes)
    }
}

impl Config {
    /// `build` with the memory readings and the total memory taken from elsewhere (tests).
    pub(crate) fn build_with(
        &self,
        cx: ProcessorContext,
        source: Arc<dyn MemorySource>,
        total: impl FnOnce() -> Option<u64>,
    ) -> Result<Built, BuildError> {
        let limits = self.limits(total)?;
        let pipeline = cx.pipeline.to_string();
        // What the process uses before it holds any data is not for data.
        let baseline = source.used_bytes().unwrap_or(0);
        let held_limit = held_limit(limits, baseline);
        let budget = cx.settings.budget.clone();
        budget.limit_to(held_limit, self.check_interval);
        let backstop = limits.backstop();
        let mut checker = Checker {
            source,
            baseline,
            room: held_limit,
            overhead: 1.0,
            limits: backstop,
            gate: Gate::new(backstop),
            refusing: Arc::new(AtomicBool::new(false)),
            budget: budget.clone(),
            backstop_on: false,
            pipeline: pipeline.clone(),
            unreadable_warned: false,
            episode: false,
        };
        checker.check();
        info!(
            pipeline = %pipeline,
            limit_mib = limits.hard / MIB,
            soft_limit_mib = limits.soft / MIB,
            held_limit_mib = held_limit / MIB,
            backstop_mib = backstop.soft / MIB,
            "Memory limiter started."
        );
        let consumer = Arc::new(Limiter {
            refusing: checker.refusing.clone(),
            budget,
            next: cx.next,
            retry_after: self.check_interval,
            telemetry: cx.settings.telemetry.processor(&cx.settings.id, &pipeline),
        });
        let task = checker.run(self.check_interval, cx.settings.shutdown);
        Ok(Built {
            consumer,
            task: Some(Box::pin(task)),
        })
    }
}

// === impl Checker ===

/// The background task: reads memory every `check_interval` and sets the refusing flag.
struct Checker {
    source: Arc<dyn MemorySource>,
    /// The RSS when the limiter started.
    baseline: u64,
    /// The held limit when a held byte costs one byte of RSS.
    room: u64,
    /// RSS per held byte, learnt from the readings (1 to [`MAX_OVERHEAD`]).
    overhead: f64,
    limits: Limits,
    gate: Gate,
    refusing: Arc<AtomicBool>,
    /// Where the backstop's refusals are published, for receivers to refuse before reading.
    budget: MemoryBudget,
    /// The backstop is counted as refusing in `budget`.
    backstop_on: bool,
    pipeline: String,
    unreadable_warned: bool,
    /// Refusing started from below the soft limit and has not been followed by data let in
    /// for good yet: the start and the end of an episode are logged at warn, tries in between
    /// at debug.
    episode: bool,
}

impl Checker {
    fn check(&mut self) {
        let Some(used) = self.source.used_bytes() else {
            if !self.unreadable_warned {
                self.unreadable_warned = true;
                warn!(pipeline = %self.pipeline, "Memory limiter cannot read the process's memory use; letting all data through.");
            }
            self.publish(false);
            return;
        };
        self.learn(used);
        let change = self.gate.observe(used);
        self.publish(self.gate.refusing());
        let (used_mib, backstop_mib, limit_mib) =
            (used / MIB, self.limits.soft / MIB, self.limits.hard / MIB);
        let pipeline = &self.pipeline;
        match change {
            Transition::Unchanged => {}
            Transition::Refusing | Transition::HardLimit if !self.episode => {
                self.episode = true;
                warn!(%pipeline, used_mib, backstop_mib, limit_mib, "Memory use is above the backstop limit; refusing data.");
            }
            Transition::Refusing | Transition::HardLimit => {
                debug!(%pipeline, used_mib, backstop_mib, limit_mib, "Memory use grew above the backstop limit; refusing data.");
            }
            Transition::Trying => {
                debug!(%pipeline, used_mib, backstop_mib, "Memory use stopped growing while data was refused; letting data in again.");
            }
            Transition::Reusing if self.episode => {
                self.episode = false;
                warn!(%pipeline, used_mib, backstop_mib, "Memory use stays above the backstop limit but no longer grows (the allocator keeps freed memory for reuse); accepting data.");
            }
            Transition::Reusing => {}
            Transition::BelowSoft => {
                self.episode = false;
                warn!(%pipeline, used_mib, backstop_mib, "Memory use is below the backstop limit again; accepting data.");
            }
        }
    }

    /// Learns what a held byte costs in RSS (decoded data, buffer capacity, the allocator's own
    /// use) and sets the held limit to the room divided by it, so that the cheap refusals keep
    /// the RSS near the soft limit and the backstop seldom has to act. Learnt only while enough
    /// is held for the ratio to mean something (not from memory the allocator kept after a
    /// burst); it rises at once and falls by half the difference per check.
    fn learn(&mut self, used: u64) {
        let held = self.budget.held();
        let limit = self.budget.limit().unwrap_or(self.room);
        if held < MIB || held < limit / 4 {
            return;
        }
        let measured = (used.saturating_sub(self.baseline) as f64 / held as f64).clamp(1.0, MAX_OVERHEAD);
        let before = self.overhead;
        self.overhead = if measured > before {
            measured
        } else {
            (before + measured) / 2.0
        };
        self.budget.set_limit((self.room as f64 / self.overhead) as u64);
        if (self.overhead - before).abs() >= 0.25 {
            debug!(pipeline = %self.pipeline, overhead = self.overhead, held_limit_mib = self.room as f64 / self.overhead / MIB as f64, "Memory limiter learnt what held data costs.");
        }
    }

    fn publish(&mut self, refusing: bool) {
        self.refusing.store(refusing, Ordering::Relaxed);
        if refusing != self.backstop_on {
            self.backstop_on = refusing;
            self.budget.set_backstop(refusing);
        }
    }

    async fn run(mut self, every: Duration, shutdown: CancellationToken) -> Result<(), RunError> {
        // A zero interval is refused by `validate`; never let it spin or panic here.
        let mut ticks = tokio::time::interval(every.max(Duration::from_millis(1)));
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        // The first tick is immediate, and `build` has just checked.
        ticks.tick().await;
        loop {
            tokio::select! {
                biased;
                () = shutdown.cancelled() => break,
                _ = ticks.tick() => self.check(),
            }
        }
        self.publish(false);
        Ok(())
    }
}

// === impl Limiter ===

/// The consumer: refuses while the flag is set, else passes data on.
struct Limiter {
    refusing: Arc<AtomicBool>,
    budget: MemoryBudget,
    next: SharedConsumer,
    retry_after: Duration,
    telemetry: ProcessorTelemetry,
}

impl Consumer for Limiter {
    fn wants_encoded(&self) -> bool {
        self.next.wants_encoded()
    }

    fn consume(&self, data: Signal) -> BoxFuture<'_, Result<(), ConsumeError>> {
        let kind = data.kind();
        let over = self.budget.held() > self.budget.limit().unwrap_or(u64::MAX);
        if over || self.refusing.load(Ordering::Relaxed) {
            self.telemetry.refused(kind, data.item_count());
            let err = ConsumeError::Throttled(self.retry_after);
            return Box::pin(async move { Err(err) });
        }
        self.telemetry.accepted(kind, data.item_count());
        self.next.consume(data)
    }

    fn backlog(&self) -> authwatch_core::Backlog {
        self.next.backlog()
    }

    fn takes_live(&self) -> bool {
        self.next.takes_live()
    }

    /// Live data is small, bounded and evaluated in place: it passes even while refusing.
    fn consume_live(&self, data: Signal) -> BoxFuture<'_, Result<(), ConsumeError>> {
        self.next.consume_live(data)
    }
}

#[cfg(test)]
mod tests;
