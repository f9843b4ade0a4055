//! Memory and swap: sysinfo for the totals, `/proc/meminfo` for buffers and page cache.

use std::path::Path;

use sysinfo::{MemoryRefreshKind, System};

use super::read_proc;
use crate::collector::CollectError;
use crate::model::{Batch, MetricKind};

pub fn collect(
    proc_root: &Path,
    system: &mut System,
    batch: &mut Batch,
) -> Result<(), CollectError> {
    system.refresh_memory_specifics(MemoryRefreshKind::everything());
    let gauge = |batch: &mut Batch, field: &str, value: u64| {
        let name = format!("node_memory_{field}_bytes");
        batch.single(
            &name,
            MetricKind::Gauge,
            &format!("Memory information field {field}_bytes."),
            value as f64,
        );
    };
    gauge(batch, "MemTotal", system.total_memory());
    gauge(batch, "MemAvailable", system.available_memory());
    gauge(batch, "MemFree", system.free_memory());
    gauge(batch, "SwapTotal", system.total_swap());
    gauge(batch, "SwapFree", system.free_swap());
    let meminfo = read_proc(&proc_root.join("meminfo"))?;
    for (field, kib) in parse_meminfo(&meminfo) {
        if matches!(
            field,
            "Buffers" | "Cached" | "Dirty" | "Shmem" | "SReclaimable"
        ) {
            gauge(batch, field, kib * 1024);
        }
    }
    Ok(())
}

/// `(field, kibibytes)` pairs of `/proc/meminfo`.
fn parse_meminfo(text: &str) -> impl Iterator<Item = (&str, u64)> {
    text.lines().filter_map(|line| {
        let (field, rest) = line.split_once(':')?;
        let kib = rest.split_ascii_whitespace().next()?.parse().ok()?;
        Some((field.trim(), kib))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meminfo_fields_are_kibibytes() {
        let fields: Vec<(&str, u64)> =
            parse_meminfo("MemTotal:       16 kB\nBuffers:  2 kB\nHugePages_Total: 0\n").collect();
        assert_eq!(
            fields,
            vec![("MemTotal", 16), ("Buffers", 2), ("HugePages_Total", 0)]
        );
    }
}
