//! Figures about the process itself, for `authwatch_process_*` and the memory limiter.

/// Process figures from `/proc/self` (Linux); `None` elsewhere.
#[derive(Debug, Clone, Copy)]
pub struct ProcessStats {
    pub rss_bytes: u64,
    pub cpu_seconds: f64,
}

impl ProcessStats {
    pub fn read() -> Option<Self> {
        let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
        let rss_pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        // Fields after the command name, which is in parentheses and may contain spaces.
        let rest = &stat[stat.rfind(')')? + 2..];
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let utime: u64 = fields.get(11)?.parse().ok()?;
        let stime: u64 = fields.get(12)?.parse().ok()?;
        // Linux reports both in clock ticks of 1/100 s on every platform Rust targets here.
        Some(ProcessStats {
            rss_bytes: rss_pages * 4096,
            cpu_seconds: (utime + stime) as f64 / 100.0,
        })
    }
}
