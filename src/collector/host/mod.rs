//! The host collector: CPU, memory, load, filesystems, network, disks, pressure and identity,
//! under node_exporter's names, labels and units so its dashboards and alert rules work as is.
//!
//! sysinfo supplies memory, swap, load and boot time; the figures it lacks (per-mode CPU time,
//! buffers and cache, free blocks and inodes, network drops, disk I/O, pressure, running and
//! blocked processes) come from `/proc` in one small parser per file. Network counters come from
//! `/proc/net/dev` as a whole (see `network.rs` for why).

mod cpu;
mod disk;
mod filesystem;
mod memory;
mod network;
mod pressure;
mod system;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use super::{CollectError, Collector};
use crate::config::HostFilters;
use crate::model::Batch;

/// See the module documentation.
pub struct HostCollector {
    state: Arc<Mutex<HostState>>,
}

/// What persists between collections: sysinfo's handles and the filesystem prober.
struct HostState {
    proc_root: PathBuf,
    system: sysinfo::System,
    filesystems: filesystem::Prober,
    filters: HostFilters,
}

impl HostCollector {
    pub fn new(filters: HostFilters) -> Result<HostCollector, CollectError> {
        let sysinfo_error =
            |error: sysinfo::Error| CollectError::Other(format!("sysinfo: {error:?}"));
        Ok(HostCollector {
            state: Arc::new(Mutex::new(HostState {
                proc_root: PathBuf::from("/proc"),
                system: sysinfo::System::new().map_err(sysinfo_error)?,
                filesystems: filesystem::Prober::default(),
                filters,
            })),
        })
    }
}

impl Collector for HostCollector {
    fn name(&self) -> &str {
        "host"
    }

    async fn collect(&mut self) -> Result<Batch, CollectError> {
        let state = Arc::clone(&self.state);
        // /proc reads and statfs are blocking; a timed-out run keeps its lock, so the next tick
        // reports Busy instead of piling threads up behind it.
        tokio::task::spawn_blocking(move || {
            let mut state = state.try_lock().map_err(|_| CollectError::Busy)?;
            state.collect()
        })
        .await
        .map_err(|error| CollectError::Other(format!("host collection panicked: {error}")))?
    }
}

impl HostState {
    fn collect(&mut self) -> Result<Batch, CollectError> {
        let mut batch = Batch::new();
        let proc_root = self.proc_root.clone();
        cpu::collect(&proc_root, &mut batch)?;
        memory::collect(&proc_root, &mut self.system, &mut batch)?;
        system::collect(&mut batch);
        self.filesystems
            .collect(&proc_root, &self.filters, &mut batch);
        network::collect(&proc_root, &self.filters, &mut batch)?;
        disk::collect(&proc_root, &self.filters.disk_devices_exclude, &mut batch);
        pressure::collect(&proc_root, &mut batch);
        Ok(batch)
    }
}

/// Reads a `/proc` file into a string with an error that names it.
fn read_proc(path: &std::path::Path) -> Result<String, CollectError> {
    std::fs::read_to_string(path).map_err(|source| CollectError::Read {
        what: path.display().to_string(),
        source,
    })
}
