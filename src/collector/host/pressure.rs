//! Pressure stall information (PSI) from `/proc/pressure`, where the kernel has it.

use std::path::Path;

use crate::model::{Batch, MetricKind};

pub fn collect(proc_root: &Path, batch: &mut Batch) {
    // (resource, line kind, metric, help): node_exporter's names and meanings.
    let wanted: [(&str, &str, &str, &str); 5] = [
        (
            "cpu",
            "some",
            "node_pressure_cpu_waiting_seconds_total",
            "Total time in seconds that processes have waited for CPU time.",
        ),
        (
            "io",
            "some",
            "node_pressure_io_waiting_seconds_total",
            "Total time in seconds that processes have waited due to IO congestion.",
        ),
        (
            "io",
            "full",
            "node_pressure_io_stalled_seconds_total",
            "Total time in seconds no process could make progress due to IO congestion.",
        ),
        (
            "memory",
            "some",
            "node_pressure_memory_waiting_seconds_total",
            "Total time in seconds that processes have waited for memory.",
        ),
        (
            "memory",
            "full",
            "node_pressure_memory_stalled_seconds_total",
            "Total time in seconds no process could make progress due to memory congestion.",
        ),
    ];
    for (resource, kind, name, help) in wanted {
        let Ok(text) = std::fs::read_to_string(proc_root.join("pressure").join(resource)) else {
            continue;
        };
        if let Some(total_us) = parse_total(&text, kind) {
            batch.single(name, MetricKind::Counter, help, total_us / 1e6);
        }
    }
}

/// The `total=` microseconds of the `some` or `full` line.
fn parse_total(text: &str, kind: &str) -> Option<f64> {
    let line = text.lines().find(|line| line.starts_with(kind))?;
    let total = line
        .split_ascii_whitespace()
        .find_map(|f| f.strip_prefix("total="))?;
    total.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_are_microseconds() {
        let text = "some avg10=0.00 avg60=0.00 avg300=0.00 total=2500000\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=7\n";
        assert_eq!(parse_total(text, "some"), Some(2_500_000.0));
        assert_eq!(parse_total(text, "full"), Some(7.0));
    }
}
