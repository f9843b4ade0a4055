//! Disk I/O from `/proc/diskstats`, for whole devices (partitions excluded as node_exporter does).

use std::path::Path;

use crate::model::{Batch, MetricKind};

/// `/proc/diskstats` counts in 512-byte sectors whatever the device's block size.
const SECTOR_BYTES: f64 = 512.0;

pub fn collect(proc_root: &Path, exclude: &regex::Regex, batch: &mut Batch) {
    let Ok(text) = std::fs::read_to_string(proc_root.join("diskstats")) else {
        return;
    };
    parse(&text, exclude, batch);
}

fn parse(text: &str, exclude: &regex::Regex, batch: &mut Batch) {
    let families: [(&str, &str); 6] = [
        (
            "node_disk_io_time_weighted_seconds_total",
            "The weighted # of seconds spent doing I/Os.",
        ),
        (
            "node_disk_reads_completed_total",
            "The total number of reads completed successfully.",
        ),
        (
            "node_disk_writes_completed_total",
            "The total number of writes completed successfully.",
        ),
        (
            "node_disk_read_bytes_total",
            "The total number of bytes read successfully.",
        ),
        (
            "node_disk_written_bytes_total",
            "The total number of bytes written successfully.",
        ),
        (
            "node_disk_io_time_seconds_total",
            "Total seconds spent doing I/Os.",
        ),
    ];
    for (name, help) in families {
        batch.family(name, MetricKind::Counter, help);
    }
    for line in text.lines() {
        let fields: Vec<&str> = line.split_ascii_whitespace().collect();
        if fields.len() < 14 || exclude.is_match(fields[2]) {
            continue;
        }
        let number = |index: usize| fields[index].parse::<f64>().unwrap_or(0.0);
        let labels = [("device", fields[2])];
        batch.push("node_disk_reads_completed_total", &labels, number(3));
        batch.push(
            "node_disk_read_bytes_total",
            &labels,
            number(5) * SECTOR_BYTES,
        );
        batch.push("node_disk_writes_completed_total", &labels, number(7));
        batch.push(
            "node_disk_written_bytes_total",
            &labels,
            number(9) * SECTOR_BYTES,
        );
        batch.push(
            "node_disk_io_time_seconds_total",
            &labels,
            number(12) / 1000.0,
        );
        batch.push(
            "node_disk_io_time_weighted_seconds_total",
            &labels,
            number(13) / 1000.0,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn default_exclude() -> regex::Regex {
        regex::Regex::new(crate::config::DEFAULT_DISK_DEVICES_EXCLUDE)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn partitions_and_virtual_devices_are_ignored() {
        let exclude = default_exclude();
        for device in [
            "loop0",
            "ram12",
            "sda1",
            "vda2",
            "xvdb3",
            "nvme0n1p2",
            "fd0",
        ] {
            assert!(exclude.is_match(device), "{device}");
        }
        for device in ["sda", "vda", "nvme0n1", "dm-0", "md0"] {
            assert!(!exclude.is_match(device), "{device}");
        }
    }

    #[test]
    fn bytes_are_sectors_times_512() {
        let mut batch = Batch::new();
        parse(
            " 254 0 vda 10 0 4 20 30 0 8 40 0 50 60 0 0 0 0\n",
            &default_exclude(),
            &mut batch,
        );
        let value = |name: &str| {
            batch
                .samples
                .iter()
                .find(|(l, _)| l.metric_name() == name)
                .map(|(_, v)| *v)
        };
        assert_eq!(value("node_disk_read_bytes_total"), Some(2048.0));
        assert_eq!(value("node_disk_written_bytes_total"), Some(4096.0));
        assert_eq!(value("node_disk_io_time_seconds_total"), Some(0.05));
    }
}
