//! Where memory figures come from: the process's resident set size, and the total memory the
//! process may use (cgroup v2 `memory.max`, else `/proc/meminfo`).

use std::fs;
use std::path::{Path, PathBuf};

use authwatch_core::telemetry::ProcessStats;

/// Reads the memory the process uses now. Injectable so tests can drive the limiter.
pub trait MemorySource: Send + Sync + 'static {
    /// Bytes in use, or `None` when they cannot be read.
    fn used_bytes(&self) -> Option<u64>;
}

/// The process's resident set size, from `/proc/self/statm`.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessRss;

impl MemorySource for ProcessRss {
    fn used_bytes(&self) -> Option<u64> {
        ProcessStats::read().map(|s| s.rss_bytes)
    }
}

/// The memory this process may use: the smallest cgroup v2 `memory.max` on the way from its own
/// cgroup to the root, or `MemTotal` when that is smaller or no limit is set.
pub fn total_memory_bytes() -> Option<u64> {
    let meminfo = fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| parse_meminfo_total(&s));
    let cgroup = cgroup_memory_max();
    match (cgroup, meminfo) {
        (Some(c), Some(m)) => Some(c.min(m)),
        (c, m) => c.or(m),
    }
}

const CGROUP_ROOT: &str = "/sys/fs/cgroup";

fn cgroup_memory_max() -> Option<u64> {
    let own = fs::read_to_string("/proc/self/cgroup")
        .ok()
        .and_then(|s| own_cgroup(&s));
    let root = Path::new(CGROUP_ROOT);
    let mut dir: PathBuf = match own {
        // A path leading out of the cgroup namespace cannot be followed; the root still counts.
        Some(p) if !p.split('/').any(|c| c == "..") => root.join(p.trim_start_matches('/')),
        _ => root.to_path_buf(),
    };
    let mut limit: Option<u64> = None;
    loop {
        if let Some(v) = fs::read_to_string(dir.join("memory.max"))
            .ok()
            .and_then(|s| parse_memory_max(&s))
        {
            limit = Some(limit.map_or(v, |l| l.min(v)));
        }
        if dir == root || !dir.pop() || !dir.starts_with(root) {
            break;
        }
    }
    limit
}

/// The cgroup v2 path of this process (`0::/path` in `/proc/self/cgroup`).
pub(crate) fn own_cgroup(proc_self_cgroup: &str) -> Option<String> {
    proc_self_cgroup
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .map(|p| p.trim().to_owned())
}

/// `memory.max` holds a byte count, or `max` for no limit.
pub(crate) fn parse_memory_max(s: &str) -> Option<u64> {
    s.trim().parse().ok()
}

/// `MemTotal:  16318480 kB` in bytes.
pub(crate) fn parse_meminfo_total(s: &str) -> Option<u64> {
    let line = s.lines().find(|l| l.starts_with("MemTotal:"))?;
    let mut parts = line["MemTotal:".len()..].split_whitespace();
    let n: u64 = parts.next()?.parse().ok()?;
    match parts.next() {
        Some("kB") | None => n.checked_mul(1024),
        Some(_) => None,
    }
}
