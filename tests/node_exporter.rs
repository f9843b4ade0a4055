//! The host collector agrees with Debian's node_exporter on the same host: the same series for
//! the shared metrics, sizes exactly, and counters and gauges within 2% when read at the same
//! moment.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::{Daemon, Exposition, Peer, free_port, require_program, wait_http_ok};

/// Shared metrics whose values must be equal: sizes, identities, boot time.
const EXACT: &[&str] = &[
    "node_memory_MemTotal_bytes",
    "node_memory_SwapTotal_bytes",
    "node_filesystem_size_bytes",
    "node_filesystem_files",
    "node_filesystem_readonly",
    "node_filesystem_device_error",
    "node_boot_time_seconds",
    "node_uname_info",
];

/// Shared metrics that move: checked within 2% of the bracketing prismwatch values.
const MOVING: &[&str] = &[
    "node_cpu_seconds_total",
    "node_load1",
    "node_load5",
    "node_load15",
    "node_memory_MemAvailable_bytes",
    "node_memory_MemFree_bytes",
    "node_memory_Buffers_bytes",
    "node_memory_Cached_bytes",
    "node_memory_SwapFree_bytes",
    "node_filesystem_avail_bytes",
    "node_filesystem_free_bytes",
    "node_filesystem_files_free",
    "node_network_receive_bytes_total",
    "node_network_transmit_bytes_total",
    "node_network_receive_packets_total",
    "node_network_transmit_packets_total",
    "node_network_receive_errs_total",
    "node_network_transmit_errs_total",
    "node_network_receive_drop_total",
    "node_network_transmit_drop_total",
    "node_disk_read_bytes_total",
    "node_disk_written_bytes_total",
    "node_disk_io_time_seconds_total",
    "node_time_seconds",
    "node_context_switches_total",
    "node_forks_total",
    "node_pressure_cpu_waiting_seconds_total",
    "node_pressure_io_waiting_seconds_total",
    "node_pressure_memory_waiting_seconds_total",
];

/// Shared metrics that are small integers changing every instant: same series, no value check.
const PRESENT_ONLY: &[&str] = &["node_procs_running", "node_procs_blocked"];

#[test]
fn host_metrics_match_node_exporter() {
    let node_exporter = require_program("prometheus-node-exporter", "prometheus-node-exporter");
    let ne_address = format!("127.0.0.1:{}", free_port());
    // Upstream node_exporter defaults (Debian's package narrows them), which are also ours.
    let _peer = Peer(
        Command::new(node_exporter)
            .arg(format!("--web.listen-address={ne_address}"))
            .arg("--collector.filesystem.mount-points-exclude=^/(dev|proc|run/credentials/.+|sys|var/lib/docker/.+|var/lib/containers/storage/.+)($|/)")
            .arg("--collector.netdev.device-exclude=")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start node_exporter"),
    );
    let interval = Duration::from_millis(500);
    let daemon = Daemon::start_ready(None, &["--host-interval", "500ms"]);
    wait_http_ok(&ne_address, "/metrics");

    // Bracket node_exporter's reading between two of ours: `before` was collected before it,
    // `after` (one interval later) after it, so a value read at node_exporter's moment lies
    // between them.
    let before = daemon.scrape();
    let response = common::get(&ne_address, "/metrics", &[]).expect("scrape node_exporter");
    let theirs = Exposition::parse(&response.body);
    std::thread::sleep(interval + Duration::from_millis(400));
    let after = daemon.scrape();

    let mut compared = 0;
    let mut failures = Vec::new();
    for name in EXACT.iter().chain(MOVING).chain(PRESENT_ONLY) {
        let their_keys = theirs.keys_of(name);
        let our_keys = before.keys_of(name);
        if their_keys != our_keys {
            failures.push(format!(
                "{name}: series differ\n  ours:   {our_keys:?}\n  theirs: {their_keys:?}"
            ));
            continue;
        }
        for key in their_keys {
            let theirs_value = theirs.value(&key).unwrap_or(f64::NAN);
            let (a, b) = (
                before.value(&key).unwrap_or(f64::NAN),
                after.value(&key).unwrap_or(f64::NAN),
            );
            compared += 1;
            let ok = if EXACT.contains(name) {
                theirs_value == a && a == b
            } else if MOVING.contains(name) {
                let (low, high) = (a.min(b), a.max(b));
                // 2% of the value, and one unit of the value's own resolution for values near 0.
                let slack = 0.02 * theirs_value.abs() + 0.01;
                theirs_value >= low - slack && theirs_value <= high + slack
            } else {
                true
            };
            if !ok {
                failures.push(format!(
                    "{key}: node_exporter {theirs_value}, prismwatch {a} .. {b}"
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
    // A machine always has CPUs, memory, a root filesystem and a network device.
    assert!(compared > 40, "only {compared} series compared");
    assert!(
        before
            .value("node_memory_MemTotal_bytes")
            .is_some_and(|v| v > 0.0)
    );
}
