//! `/proc/stat`: per-CPU time by mode, context switches, forks, running and blocked processes.

use std::path::Path;

use super::read_proc;
use crate::collector::CollectError;
use crate::model::{Batch, MetricKind};

/// Clock ticks per second of `/proc/stat`; fixed at 100 on Linux, as node_exporter assumes.
const USER_HZ: f64 = 100.0;

/// The modes node_exporter exports, in `/proc/stat` column order (guest time is already counted
/// in user and nice, so it is not a mode of its own).
const MODES: [&str; 8] = [
    "user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal",
];

pub fn collect(proc_root: &Path, batch: &mut Batch) -> Result<(), CollectError> {
    let text = read_proc(&proc_root.join("stat"))?;
    parse(&text, batch);
    Ok(())
}

fn parse(text: &str, batch: &mut Batch) {
    batch.family(
        "node_cpu_seconds_total",
        MetricKind::Counter,
        "Seconds the CPUs spent in each mode.",
    );
    for line in text.lines() {
        let mut fields = line.split_ascii_whitespace();
        let Some(key) = fields.next() else { continue };
        if let Some(cpu) = key.strip_prefix("cpu").filter(|n| !n.is_empty()) {
            for (mode, ticks) in MODES.iter().zip(fields) {
                if let Ok(ticks) = ticks.parse::<u64>() {
                    batch.push(
                        "node_cpu_seconds_total",
                        &[("cpu", cpu), ("mode", mode)],
                        ticks as f64 / USER_HZ,
                    );
                }
            }
            continue;
        }
        let value = fields.next().and_then(|v| v.parse::<f64>().ok());
        let Some(value) = value else { continue };
        match key {
            "ctxt" => batch.single(
                "node_context_switches_total",
                MetricKind::Counter,
                "Total number of context switches.",
                value,
            ),
            "processes" => batch.single(
                "node_forks_total",
                MetricKind::Counter,
                "Total number of forks.",
                value,
            ),
            "procs_running" => batch.single(
                "node_procs_running",
                MetricKind::Gauge,
                "Number of processes in runnable state.",
                value,
            ),
            "procs_blocked" => batch.single(
                "node_procs_blocked",
                MetricKind::Gauge,
                "Number of processes blocked waiting for I/O to complete.",
                value,
            ),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_modes_per_cpu_and_process_counts() {
        let text = "cpu  10 0 5 100 1 0 0 0 0 0\ncpu0 250 1 50 1000 2 3 4 5 6 7\nctxt 99\nbtime 1700000000\nprocesses 42\nprocs_running 3\nprocs_blocked 1\n";
        let mut batch = Batch::new();
        parse(text, &mut batch);
        let find = |name: &str, mode: Option<&str>| {
            batch
                .samples
                .iter()
                .find(|(l, _)| l.metric_name() == name && l.get("mode") == mode)
                .map(|(_, v)| *v)
        };
        assert_eq!(find("node_cpu_seconds_total", Some("user")), Some(2.5));
        assert_eq!(find("node_cpu_seconds_total", Some("steal")), Some(0.05));
        assert_eq!(
            batch
                .samples
                .iter()
                .filter(|(l, _)| l.get("cpu") == Some("0"))
                .count(),
            8
        );
        assert_eq!(find("node_procs_running", None), Some(3.0));
        assert_eq!(find("node_forks_total", None), Some(42.0));
    }
}
