//! Load averages, boot time, wall-clock time and the kernel's identity.

use std::time::{SystemTime, UNIX_EPOCH};

use sysinfo::System;

use crate::model::{Batch, MetricKind};

pub fn collect(batch: &mut Batch) {
    if let Ok(load) = System::load_average() {
        batch.single(
            "node_load1",
            MetricKind::Gauge,
            "1m load average.",
            load.one,
        );
        batch.single(
            "node_load5",
            MetricKind::Gauge,
            "5m load average.",
            load.five,
        );
        batch.single(
            "node_load15",
            MetricKind::Gauge,
            "15m load average.",
            load.fifteen,
        );
    }
    if let Ok(boot_time) = System::boot_time() {
        batch.single(
            "node_boot_time_seconds",
            MetricKind::Gauge,
            "Node boot time, in unixtime.",
            boot_time as f64,
        );
    }
    if let Ok(now) = SystemTime::now().duration_since(UNIX_EPOCH) {
        batch.single(
            "node_time_seconds",
            MetricKind::Gauge,
            "System time in seconds since epoch (1970).",
            now.as_secs_f64(),
        );
    }
    // sysinfo has no domain name or kernel build string, so the identity comes from uname(2).
    let uname = rustix::system::uname();
    let text = |s: &std::ffi::CStr| s.to_string_lossy().into_owned();
    let (sysname, release, version, machine, nodename, domainname) = (
        text(uname.sysname()),
        text(uname.release()),
        text(uname.version()),
        text(uname.machine()),
        text(uname.nodename()),
        text(uname.domainname()),
    );
    batch.family(
        "node_uname_info",
        MetricKind::Gauge,
        "Labeled system information as provided by the uname system call.",
    );
    batch.push(
        "node_uname_info",
        &[
            ("sysname", &sysname),
            ("release", &release),
            ("version", &version),
            ("machine", &machine),
            ("nodename", &nodename),
            ("domainname", &domainname),
        ],
        1.0,
    );
}
