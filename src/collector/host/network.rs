//! Network interface counters from `/proc/net/dev`, as node_exporter reads them.
//!
//! sysinfo has most of these figures but not drops, and it reads six files under
//! `/sys/class/net/<device>/statistics/` per device plus a netlink dump; `/proc/net/dev` holds
//! every counter of every device in one read, so it is both complete and cheaper.

use std::path::Path;

use super::read_proc;
use crate::collector::CollectError;
use crate::config::HostFilters;
use crate::model::{Batch, MetricKind};

/// `/proc/net/dev` columns (receive 0-7, transmit 8-15) exported, with node_exporter's names.
const COUNTERS: [(usize, &str, &str); 10] = [
    (
        0,
        "node_network_receive_bytes_total",
        "Network device statistic receive_bytes.",
    ),
    (
        1,
        "node_network_receive_packets_total",
        "Network device statistic receive_packets.",
    ),
    (
        2,
        "node_network_receive_errs_total",
        "Network device statistic receive_errs.",
    ),
    (
        3,
        "node_network_receive_drop_total",
        "Network device statistic receive_drop.",
    ),
    (
        8,
        "node_network_transmit_bytes_total",
        "Network device statistic transmit_bytes.",
    ),
    (
        9,
        "node_network_transmit_packets_total",
        "Network device statistic transmit_packets.",
    ),
    (
        10,
        "node_network_transmit_errs_total",
        "Network device statistic transmit_errs.",
    ),
    (
        11,
        "node_network_transmit_drop_total",
        "Network device statistic transmit_drop.",
    ),
    (
        7,
        "node_network_receive_multicast_total",
        "Network device statistic receive_multicast.",
    ),
    (
        13,
        "node_network_transmit_colls_total",
        "Network device statistic transmit_colls.",
    ),
];

pub fn collect(
    proc_root: &Path,
    filters: &HostFilters,
    batch: &mut Batch,
) -> Result<(), CollectError> {
    let text = read_proc(&proc_root.join("net/dev"))?;
    parse(&text, filters.network_devices_exclude.as_ref(), batch);
    Ok(())
}

fn parse(text: &str, exclude: Option<&regex::Regex>, batch: &mut Batch) {
    for (_, name, help) in COUNTERS {
        batch.family(name, MetricKind::Counter, help);
    }
    // Two header lines, then `device: sixteen numbers`.
    for line in text.lines().skip(2) {
        let Some((device, rest)) = line.split_once(':') else {
            continue;
        };
        let device = device.trim();
        if exclude.is_some_and(|r| r.is_match(device)) {
            continue;
        }
        let fields: Vec<f64> = rest
            .split_ascii_whitespace()
            .filter_map(|f| f.parse().ok())
            .collect();
        if fields.len() < 16 {
            continue;
        }
        for (column, name, _) in COUNTERS {
            batch.push(name, &[("device", device)], fields[column]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_map_to_node_exporter_names() {
        let text = "Inter-|   Receive\n face |bytes\n  eth0: 100 2 1 7 0 0 0 5 200 3 4 9 0 6 0 0\n    lo: 1 1 0 0 0 0 0 0 1 1 0 0 0 0 0 0\n";
        let mut batch = Batch::new();
        let exclude = regex::Regex::new("^lo$").ok();
        parse(text, exclude.as_ref(), &mut batch);
        let value = |name: &str| {
            batch
                .samples
                .iter()
                .find(|(l, _)| l.metric_name() == name)
                .map(|(l, v)| (l.get("device").unwrap_or("").to_string(), *v))
        };
        assert_eq!(
            value("node_network_receive_bytes_total"),
            Some(("eth0".into(), 100.0))
        );
        assert_eq!(
            value("node_network_receive_drop_total"),
            Some(("eth0".into(), 7.0))
        );
        assert_eq!(
            value("node_network_transmit_drop_total"),
            Some(("eth0".into(), 9.0))
        );
        assert_eq!(
            value("node_network_transmit_colls_total"),
            Some(("eth0".into(), 6.0))
        );
        assert_eq!(batch.len(), 10, "lo is excluded");
    }
}
