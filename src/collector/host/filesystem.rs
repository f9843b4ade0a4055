//! Filesystem sizes and inodes per mount, excluding the pseudo filesystems node_exporter excludes.
//!
//! statfs(2) on a hung network mount blocks forever, so each call runs on its own thread with a
//! deadline; a mount that misses it is reported with `node_filesystem_device_error 1` and skipped
//! until its stuck call returns, as node_exporter does with its stuck-mount list.

use std::collections::HashSet;
use std::path::Path;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::config::HostFilters;
use crate::model::{Batch, MetricKind};

/// How long one statfs may take before its mount counts as stuck.
const STATFS_DEADLINE: Duration = Duration::from_secs(2);

/// One line of `/proc/mounts`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Mount {
    device: String,
    mount_point: String,
    fs_type: String,
    read_only: bool,
}

/// Remembers mounts whose statfs is stuck.
#[derive(Default)]
pub struct Prober {
    stuck: Arc<Mutex<HashSet<String>>>,
}

impl Prober {
    pub fn collect(&mut self, proc_root: &Path, filters: &HostFilters, batch: &mut Batch) {
        // node_exporter reads PID 1's view of the mounts, falling back to its own.
        let text = std::fs::read_to_string(proc_root.join("1/mounts"))
            .or_else(|_| std::fs::read_to_string(proc_root.join("self/mounts")));
        let Ok(text) = text else { return };
        let families: [(&str, &str); 7] = [
            ("node_filesystem_size_bytes", "Filesystem size in bytes."),
            (
                "node_filesystem_free_bytes",
                "Filesystem free space in bytes.",
            ),
            (
                "node_filesystem_avail_bytes",
                "Filesystem space available to non-root users in bytes.",
            ),
            ("node_filesystem_files", "Filesystem total file nodes."),
            (
                "node_filesystem_files_free",
                "Filesystem total free file nodes.",
            ),
            ("node_filesystem_readonly", "Filesystem read-only status."),
            (
                "node_filesystem_device_error",
                "Whether an error occurred while getting statistics for the given device.",
            ),
        ];
        for (name, help) in families {
            batch.family(name, MetricKind::Gauge, help);
        }
        let mut seen = HashSet::new();
        for mount in parse_mounts(&text).filter(|m| is_included(m, filters)) {
            if !seen.insert(mount.clone()) {
                continue;
            }
            let labels = [
                ("device", mount.device.as_str()),
                ("fstype", mount.fs_type.as_str()),
                ("mountpoint", mount.mount_point.as_str()),
            ];
            match self.statfs(&mount.mount_point) {
                Some(stats) => {
                    batch.push("node_filesystem_device_error", &labels, 0.0);
                    batch.push(
                        "node_filesystem_readonly",
                        &labels,
                        f64::from(u8::from(mount.read_only)),
                    );
                    batch.push("node_filesystem_size_bytes", &labels, stats.size as f64);
                    batch.push("node_filesystem_free_bytes", &labels, stats.free as f64);
                    batch.push("node_filesystem_avail_bytes", &labels, stats.avail as f64);
                    batch.push("node_filesystem_files", &labels, stats.files as f64);
                    batch.push(
                        "node_filesystem_files_free",
                        &labels,
                        stats.files_free as f64,
                    );
                }
                None => batch.push("node_filesystem_device_error", &labels, 1.0),
            }
        }
    }

    /// statfs with a deadline; `None` on error or when the mount is (still) stuck.
    fn statfs(&self, mount_point: &str) -> Option<FsStats> {
        if self.stuck.lock().ok()?.contains(mount_point) {
            return None;
        }
        let (sender, receiver) = mpsc::channel();
        let path = mount_point.to_string();
        let stuck = Arc::clone(&self.stuck);
        let spawned = std::thread::Builder::new()
            .name("statfs".into())
            .spawn(move || {
                // statfs field types differ between targets (u32 on some 32-bit ones).
                #[allow(clippy::unnecessary_cast)]
                let result = rustix::fs::statfs(path.as_str()).ok().map(|s| FsStats {
                    size: (s.f_blocks as u64).saturating_mul(s.f_bsize as u64),
                    free: (s.f_bfree as u64).saturating_mul(s.f_bsize as u64),
                    avail: (s.f_bavail as u64).saturating_mul(s.f_bsize as u64),
                    files: s.f_files as u64,
                    files_free: s.f_ffree as u64,
                });
                if sender.send(result).is_err() {
                    // The collector gave up on us: the mount was stuck and now answered.
                    if let Ok(mut stuck) = stuck.lock() {
                        stuck.remove(&path);
                    }
                }
            });
        if spawned.is_err() {
            return None;
        }
        match receiver.recv_timeout(STATFS_DEADLINE) {
            Ok(result) => result,
            Err(_) => {
                tracing::warn!(mountpoint = %mount_point, "statfs did not answer in time; the mount is skipped until it does.");
                if let Ok(mut stuck) = self.stuck.lock() {
                    stuck.insert(mount_point.to_string());
                }
                None
            }
        }
    }
}

struct FsStats {
    size: u64,
    free: u64,
    avail: u64,
    files: u64,
    files_free: u64,
}

fn parse_mounts(text: &str) -> impl Iterator<Item = Mount> + '_ {
    text.lines().filter_map(|line| {
        let mut fields = line.split_ascii_whitespace();
        let device = unescape(fields.next()?);
        let mount_point = unescape(fields.next()?);
        let fs_type = fields.next()?.to_string();
        let read_only = fields.next()?.split(',').any(|option| option == "ro");
        Some(Mount {
            device,
            mount_point,
            fs_type,
            read_only,
        })
    })
}

fn is_included(mount: &Mount, filters: &HostFilters) -> bool {
    !filters.fs_types_exclude.is_match(&mount.fs_type)
        && !filters.mount_points_exclude.is_match(&mount.mount_point)
}

/// `/proc/mounts` writes space, tab, newline and backslash as octal escapes.
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'\\' && index + 4 <= bytes.len() {
            let digits = std::str::from_utf8(&bytes[index + 1..index + 4]).unwrap_or("");
            if let Ok(value) = u8::from_str_radix(digits, 8) {
                out.push(value);
                index += 4;
                continue;
            }
        }
        out.push(bytes[index]);
        index += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pseudo_filesystems_and_system_mount_points_are_excluded() {
        let text = "proc /proc proc rw 0 0\n/dev/vda / ext4 rw,relatime 0 0\ntmpfs /dev/shm tmpfs rw 0 0\n\
                    tmpfs /run tmpfs rw 0 0\ntmpfs /run/credentials/x.service tmpfs ro 0 0\n\
                    /dev/vdb /mnt/my\\040disk xfs ro 0 0\ncgroup2 /sys/fs/cgroup cgroup2 rw 0 0\n";
        let filters = crate::config::parse("t", "", &crate::config::Overrides::default())
            .map(|c| c.host_filters);
        let Ok(filters) = filters else {
            panic!("the empty config is valid")
        };
        let included: Vec<String> = parse_mounts(text)
            .filter(|m| is_included(m, &filters))
            .map(|m| format!("{} {} {}", m.mount_point, m.fs_type, m.read_only))
            .collect();
        assert_eq!(
            included,
            vec!["/ ext4 false", "/run tmpfs false", "/mnt/my disk xfs true"]
        );
    }
}
