//! The daemon's own `process_*` metrics, as every Prometheus client library exports them.
//!
//! Read from `/proc/self` directly: it is one file for almost all figures, and sysinfo would
//! refresh far more than we need.

use std::path::PathBuf;

use super::{CollectError, Collector};
use crate::model::{Batch, MetricKind};

/// See the module documentation.
pub struct ProcessCollector {
    proc_self: PathBuf,
    boot_time: f64,
    page_size: f64,
}

impl ProcessCollector {
    pub fn new() -> ProcessCollector {
        ProcessCollector {
            proc_self: PathBuf::from("/proc/self"),
            boot_time: sysinfo::System::boot_time().unwrap_or(0) as f64,
            page_size: rustix::param::page_size() as f64,
        }
    }
}

impl Default for ProcessCollector {
    fn default() -> ProcessCollector {
        ProcessCollector::new()
    }
}

/// Clock ticks per second of `/proc/<pid>/stat`.
const USER_HZ: f64 = 100.0;

impl Collector for ProcessCollector {
    fn name(&self) -> &str {
        "process"
    }

    async fn collect(&mut self) -> Result<Batch, CollectError> {
        let stat_path = self.proc_self.join("stat");
        let stat = std::fs::read_to_string(&stat_path).map_err(|source| CollectError::Read {
            what: stat_path.display().to_string(),
            source,
        })?;
        let fields = parse_stat(&stat).ok_or_else(|| {
            CollectError::Other(format!("unexpected format of {}", stat_path.display()))
        })?;
        let mut batch = Batch::new();
        batch.single(
            "process_cpu_seconds_total",
            MetricKind::Counter,
            "Total user and system CPU time spent in seconds.",
            (fields.utime + fields.stime) / USER_HZ,
        );
        batch.single(
            "process_resident_memory_bytes",
            MetricKind::Gauge,
            "Resident memory size in bytes.",
            fields.rss_pages * self.page_size,
        );
        batch.single(
            "process_virtual_memory_bytes",
            MetricKind::Gauge,
            "Virtual memory size in bytes.",
            fields.vsize,
        );
        batch.single(
            "process_start_time_seconds",
            MetricKind::Gauge,
            "Start time of the process since unix epoch in seconds.",
            self.boot_time + fields.start_ticks / USER_HZ,
        );
        batch.single(
            "process_threads",
            MetricKind::Gauge,
            "Number of OS threads in the process.",
            fields.threads,
        );
        if let Ok(entries) = std::fs::read_dir(self.proc_self.join("fd")) {
            batch.single(
                "process_open_fds",
                MetricKind::Gauge,
                "Number of open file descriptors.",
                entries.count() as f64,
            );
        }
        if let Ok(limits) = std::fs::read_to_string(self.proc_self.join("limits"))
            && let Some(max) = parse_max_open_files(&limits)
        {
            batch.single(
                "process_max_fds",
                MetricKind::Gauge,
                "Maximum number of open file descriptors.",
                max,
            );
        }
        Ok(batch)
    }
}

struct StatFields {
    utime: f64,
    stime: f64,
    threads: f64,
    start_ticks: f64,
    vsize: f64,
    rss_pages: f64,
}

/// Parses `/proc/self/stat`; the command name may hold spaces, so fields count from its `)`.
fn parse_stat(text: &str) -> Option<StatFields> {
    let after_name = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = after_name.split_ascii_whitespace().collect();
    // After the name, field 0 is the state (field 3 of proc(5)); so field N of proc(5) is N - 3.
    let number = |n: usize| fields.get(n - 3).and_then(|f| f.parse::<f64>().ok());
    Some(StatFields {
        utime: number(14)?,
        stime: number(15)?,
        threads: number(20)?,
        start_ticks: number(22)?,
        vsize: number(23)?,
        rss_pages: number(24)?,
    })
}

fn parse_max_open_files(limits: &str) -> Option<f64> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_ascii_whitespace().nth(3)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_count_from_the_end_of_the_command_name() {
        let stat = "42 (a b) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 7 0 1000 4096000 300 18446744073709551615";
        let fields = parse_stat(stat);
        let fields = fields.as_ref();
        assert_eq!(
            fields.map(|f| (f.utime, f.stime, f.threads)),
            Some((250.0, 50.0, 7.0))
        );
        assert_eq!(
            fields.map(|f| (f.start_ticks, f.vsize, f.rss_pages)),
            Some((1000.0, 4096000.0, 300.0))
        );
    }

    #[test]
    fn max_open_files_is_the_soft_limit() {
        let limits = "Limit                     Soft Limit           Hard Limit           Units\nMax open files            1024                 524288               files\n";
        assert_eq!(parse_max_open_files(limits), Some(1024.0));
    }
}
