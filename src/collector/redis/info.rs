//! `INFO ALL` parsed, and the table that turns its plain fields into series under
//! redis_exporter's names, types and units.
//!
//! The table copies redis_exporter's `metricMapGauges` and `metricMapCounters`: dashboards and
//! alert rules written for it select these exact names, so a field is exported under the
//! exporter's name even where that name breaks Prometheus conventions (`redis_defrag_hits` is a
//! gauge, `redis_total_error_replies` a counter without `_total` at the end).

use std::collections::BTreeMap;

use crate::model::MetricKind;

/// `INFO ALL`, split into plain fields, keyspace lines and command statistics.
#[derive(Debug, Default)]
pub(super) struct Info {
    pub(super) fields: BTreeMap<String, String>,
    /// db index -> (keys, expires)
    pub(super) keyspace: BTreeMap<u32, (f64, f64)>,
    /// db index -> the server's estimate of the mean TTL of its expiring keys, in milliseconds
    pub(super) avg_ttl_ms: BTreeMap<u32, f64>,
    /// error prefix (`ERR`, `WRONGTYPE`) -> replies with it, from `errorstat_` (Redis 6.2+)
    pub(super) errors: BTreeMap<String, f64>,
    /// command -> its `cmdstat_` line
    pub(super) commands: BTreeMap<String, CommandStats>,
}

/// One `cmdstat_<command>` line.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(super) struct CommandStats {
    pub(super) calls: f64,
    pub(super) usec: f64,
    /// Calls refused before they ran (unknown arguments, ACL, OOM); Redis 6.2 and later.
    pub(super) rejected_calls: Option<f64>,
    /// Calls that ran and answered an error; Redis 6.2 and later.
    pub(super) failed_calls: Option<f64>,
}

impl Info {
    /// A field as a number, with redis_exporter's reading of status words: `ok` and `true` are
    /// 1, `err`, `fail` and `false` are 0, so `rdb_last_bgsave_status:ok` becomes 1.
    pub(super) fn number(&self, key: &str) -> Option<f64> {
        match self.fields.get(key)?.as_str() {
            "ok" | "true" => Some(1.0),
            "err" | "fail" | "false" => Some(0.0),
            text => text.parse().ok(),
        }
    }
}

/// Splits `INFO ALL` into its parts; lines that fit none are ignored.
pub(super) fn parse_info(text: &str) -> Info {
    let mut info = Info::default();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let get = |name: &str| {
            value
                .split(',')
                .filter_map(|pair| pair.split_once('='))
                .find(|(k, _)| *k == name)
                .and_then(|(_, v)| v.parse().ok())
        };
        if let Some(db) = key.strip_prefix("db").and_then(|n| n.parse::<u32>().ok()) {
            let keys = get("keys").unwrap_or(0.0);
            info.keyspace
                .insert(db, (keys, get("expires").unwrap_or(0.0)));
            if let Some(avg_ttl) = get("avg_ttl") {
                info.avg_ttl_ms.insert(db, avg_ttl);
            }
        } else if let Some(error) = key.strip_prefix("errorstat_") {
            info.errors
                .insert(error.to_string(), get("count").unwrap_or(0.0));
        } else if let Some(command) = key.strip_prefix("cmdstat_") {
            let stats = CommandStats {
                calls: get("calls").unwrap_or(0.0),
                usec: get("usec").unwrap_or(0.0),
                rejected_calls: get("rejected_calls"),
                failed_calls: get("failed_calls"),
            };
            info.commands.insert(command.to_string(), stats);
        } else {
            info.fields.insert(key.to_string(), value.to_string());
        }
    }
    info
}

/// One row of [`INFO_SERIES`]: the field, the series it becomes, and the divisor that converts
/// its unit (1 for none, so the value stays bit-for-bit what the server sent).
#[derive(Debug)]
pub(super) struct InfoSeries {
    pub(super) field: &'static str,
    pub(super) name: &'static str,
    pub(super) kind: MetricKind,
    pub(super) divisor: f64,
}

/// One value taken from INFO, ready for a batch.
#[derive(Debug, PartialEq)]
pub(super) struct InfoSample {
    pub(super) name: &'static str,
    pub(super) kind: MetricKind,
    pub(super) value: f64,
}

impl InfoSample {
    /// redis_exporter's HELP for a generic INFO series: its name without `redis_`, then
    /// "metric".
    pub(super) fn help(&self) -> String {
        if self.name == START_TIME {
            return "Start time of the Redis instance since unix epoch in seconds.".to_string();
        }
        let short = self.name.strip_prefix("redis_").unwrap_or(self.name);
        format!("{short} metric")
    }
}

/// The one series redis_exporter derives rather than copies: now minus `uptime_in_seconds`.
const START_TIME: &str = "redis_start_time_seconds";

/// The series of every field of the table that `info` has, in table order, then
/// [`START_TIME`]. `now_unix_seconds` is whole seconds, as redis_exporter's `time.Now().Unix()`.
pub(super) fn info_series(info: &Info, now_unix_seconds: i64) -> Vec<InfoSample> {
    let mut samples: Vec<InfoSample> = INFO_SERIES
        .iter()
        .filter_map(|row| {
            info.number(row.field).map(|value| InfoSample {
                name: row.name,
                kind: row.kind,
                value: value / row.divisor,
            })
        })
        .collect();
    if let Some(uptime) = info.number("uptime_in_seconds") {
        samples.push(InfoSample {
            name: START_TIME,
            kind: MetricKind::Gauge,
            value: now_unix_seconds as f64 - uptime,
        });
    }
    samples
}

const fn gauge(field: &'static str, name: &'static str) -> InfoSeries {
    InfoSeries {
        field,
        name,
        kind: MetricKind::Gauge,
        divisor: 1.0,
    }
}

const fn counter(field: &'static str, name: &'static str) -> InfoSeries {
    InfoSeries {
        field,
        name,
        kind: MetricKind::Counter,
        divisor: 1.0,
    }
}

/// A gauge whose field is in microseconds and whose series is in seconds.
const fn gauge_micros_as_seconds(field: &'static str, name: &'static str) -> InfoSeries {
    InfoSeries {
        field,
        name,
        kind: MetricKind::Gauge,
        divisor: 1e6,
    }
}

/// INFO field -> series, by INFO section. A field the server does not report (an older
/// version, AOF off, not a replica) gives no series, as with redis_exporter.
pub(super) const INFO_SERIES: &[InfoSeries] = &[
    // Server
    gauge("uptime_in_seconds", "redis_uptime_in_seconds"),
    gauge("process_id", "redis_process_id"),
    gauge("io_threads_active", "redis_io_threads_active"),
    // Clients
    gauge("connected_clients", "redis_connected_clients"),
    gauge("blocked_clients", "redis_blocked_clients"),
    gauge("tracking_clients", "redis_tracking_clients"),
    gauge("clients_in_timeout_table", "redis_clients_in_timeout_table"),
    gauge("cluster_connections", "redis_cluster_connections"),
    gauge(
        "client_recent_max_input_buffer",
        "redis_client_recent_max_input_buffer_bytes",
    ),
    gauge(
        "client_recent_max_output_buffer",
        "redis_client_recent_max_output_buffer_bytes",
    ),
    // redis_exporter reads these two with CONFIG GET; INFO has the same, current values.
    gauge("maxclients", "redis_config_maxclients"),
    gauge("maxmemory", "redis_config_maxmemory"),
    // Memory
    gauge("used_memory", "redis_memory_used_bytes"),
    gauge("used_memory_rss", "redis_memory_used_rss_bytes"),
    gauge("used_memory_peak", "redis_memory_used_peak_bytes"),
    gauge("used_memory_overhead", "redis_memory_used_overhead_bytes"),
    gauge("used_memory_startup", "redis_memory_used_startup_bytes"),
    gauge("used_memory_dataset", "redis_memory_used_dataset_bytes"),
    gauge("used_memory_lua", "redis_memory_used_lua_bytes"),
    gauge("used_memory_scripts", "redis_memory_used_scripts_bytes"),
    gauge("maxmemory", "redis_memory_max_bytes"),
    gauge("total_system_memory", "redis_total_system_memory_bytes"),
    gauge("allocator_allocated", "redis_allocator_allocated_bytes"),
    gauge("allocator_active", "redis_allocator_active_bytes"),
    gauge("allocator_resident", "redis_allocator_resident_bytes"),
    gauge("allocator_frag_ratio", "redis_allocator_frag_ratio"),
    gauge("allocator_frag_bytes", "redis_allocator_frag_bytes"),
    gauge("allocator_rss_ratio", "redis_allocator_rss_ratio"),
    gauge("allocator_rss_bytes", "redis_allocator_rss_bytes"),
    gauge("mem_fragmentation_ratio", "redis_mem_fragmentation_ratio"),
    gauge("mem_fragmentation_bytes", "redis_mem_fragmentation_bytes"),
    gauge(
        "mem_not_counted_for_evict",
        "redis_mem_not_counted_for_eviction_bytes",
    ),
    gauge("mem_clients_slaves", "redis_mem_clients_slaves"),
    gauge("mem_clients_normal", "redis_mem_clients_normal"),
    gauge("number_of_cached_scripts", "redis_number_of_cached_scripts"),
    gauge("active_defrag_running", "redis_active_defrag_running"),
    gauge("lazyfree_pending_objects", "redis_lazyfree_pending_objects"),
    // Persistence
    gauge("loading", "redis_loading_dump_file"),
    gauge(
        "rdb_changes_since_last_save",
        "redis_rdb_changes_since_last_save",
    ),
    gauge("rdb_bgsave_in_progress", "redis_rdb_bgsave_in_progress"),
    gauge(
        "rdb_last_save_time",
        "redis_rdb_last_save_timestamp_seconds",
    ),
    gauge("rdb_last_bgsave_status", "redis_rdb_last_bgsave_status"),
    gauge(
        "rdb_last_bgsave_time_sec",
        "redis_rdb_last_bgsave_duration_sec",
    ),
    gauge(
        "rdb_current_bgsave_time_sec",
        "redis_rdb_current_bgsave_duration_sec",
    ),
    gauge("rdb_last_cow_size", "redis_rdb_last_cow_size_bytes"),
    gauge("aof_enabled", "redis_aof_enabled"),
    gauge("aof_rewrite_in_progress", "redis_aof_rewrite_in_progress"),
    gauge("aof_rewrite_scheduled", "redis_aof_rewrite_scheduled"),
    gauge(
        "aof_last_rewrite_time_sec",
        "redis_aof_last_rewrite_duration_sec",
    ),
    gauge(
        "aof_current_rewrite_time_sec",
        "redis_aof_current_rewrite_duration_sec",
    ),
    gauge(
        "aof_last_bgrewrite_status",
        "redis_aof_last_bgrewrite_status",
    ),
    gauge("aof_last_write_status", "redis_aof_last_write_status"),
    gauge("aof_last_cow_size", "redis_aof_last_cow_size_bytes"),
    gauge("aof_current_size", "redis_aof_current_size_bytes"),
    gauge("aof_base_size", "redis_aof_base_size_bytes"),
    gauge("aof_pending_rewrite", "redis_aof_pending_rewrite"),
    gauge("aof_buffer_length", "redis_aof_buffer_length"),
    gauge(
        "aof_rewrite_buffer_length",
        "redis_aof_rewrite_buffer_length",
    ),
    gauge("aof_pending_bio_fsync", "redis_aof_pending_bio_fsync"),
    gauge("aof_delayed_fsync", "redis_aof_delayed_fsync"),
    gauge("module_fork_in_progress", "redis_module_fork_in_progress"),
    gauge(
        "module_fork_last_cow_size",
        "redis_module_fork_last_cow_size",
    ),
    // Stats
    counter(
        "total_connections_received",
        "redis_connections_received_total",
    ),
    counter("total_commands_processed", "redis_commands_processed_total"),
    gauge(
        "instantaneous_ops_per_sec",
        "redis_instantaneous_ops_per_sec",
    ),
    counter("total_net_input_bytes", "redis_net_input_bytes_total"),
    counter("total_net_output_bytes", "redis_net_output_bytes_total"),
    counter("rejected_connections", "redis_rejected_connections_total"),
    gauge("sync_full", "redis_replica_resyncs_full"),
    gauge("sync_partial_ok", "redis_replica_partial_resync_accepted"),
    gauge("sync_partial_err", "redis_replica_partial_resync_denied"),
    counter("expired_keys", "redis_expired_keys_total"),
    gauge("expired_stale_perc", "redis_expired_stale_percentage"),
    gauge(
        "expired_time_cap_reached_count",
        "redis_expired_time_cap_reached_total",
    ),
    counter("evicted_keys", "redis_evicted_keys_total"),
    counter("keyspace_hits", "redis_keyspace_hits_total"),
    counter("keyspace_misses", "redis_keyspace_misses_total"),
    gauge("pubsub_channels", "redis_pubsub_channels"),
    gauge("pubsub_patterns", "redis_pubsub_patterns"),
    gauge_micros_as_seconds("latest_fork_usec", "redis_latest_fork_seconds"),
    gauge(
        "migrate_cached_sockets",
        "redis_migrate_cached_sockets_total",
    ),
    gauge(
        "slave_expires_tracked_keys",
        "redis_slave_expires_tracked_keys",
    ),
    gauge("active_defrag_hits", "redis_defrag_hits"),
    gauge("active_defrag_misses", "redis_defrag_misses"),
    gauge("active_defrag_key_hits", "redis_defrag_key_hits"),
    gauge("active_defrag_key_misses", "redis_defrag_key_misses"),
    gauge("tracking_total_keys", "redis_tracking_total_keys"),
    gauge("tracking_total_items", "redis_tracking_total_items"),
    gauge("tracking_total_prefixes", "redis_tracking_total_prefixes"),
    counter("unexpected_error_replies", "redis_unexpected_error_replies"),
    counter("total_error_replies", "redis_total_error_replies"),
    counter(
        "dump_payload_sanitizations",
        "redis_dump_payload_sanitizations",
    ),
    counter("total_reads_processed", "redis_total_reads_processed"),
    counter("total_writes_processed", "redis_total_writes_processed"),
    counter(
        "io_threaded_reads_processed",
        "redis_io_threaded_reads_processed",
    ),
    counter(
        "io_threaded_writes_processed",
        "redis_io_threaded_writes_processed",
    ),
    // Replication
    gauge("connected_slaves", "redis_connected_slaves"),
    gauge("master_repl_offset", "redis_master_repl_offset"),
    gauge("second_repl_offset", "redis_second_repl_offset"),
    gauge("repl_backlog_active", "redis_repl_backlog_is_active"),
    gauge("repl_backlog_size", "redis_replication_backlog_bytes"),
    gauge(
        "repl_backlog_first_byte_offset",
        "redis_repl_backlog_first_byte_offset",
    ),
    gauge("repl_backlog_histlen", "redis_repl_backlog_history_bytes"),
    gauge("slave_priority", "redis_slave_priority"),
    // CPU
    counter("used_cpu_sys", "redis_cpu_sys_seconds_total"),
    counter("used_cpu_user", "redis_cpu_user_seconds_total"),
    counter(
        "used_cpu_sys_children",
        "redis_cpu_sys_children_seconds_total",
    ),
    counter(
        "used_cpu_user_children",
        "redis_cpu_user_children_seconds_total",
    ),
    counter(
        "used_cpu_sys_main_thread",
        "redis_cpu_sys_main_thread_seconds_total",
    ),
    counter(
        "used_cpu_user_main_thread",
        "redis_cpu_user_main_thread_seconds_total",
    ),
    // Cluster
    gauge("cluster_enabled", "redis_cluster_enabled"),
];

#[cfg(test)]
mod tests {
    use super::*;

    /// Renders the table's output for `input` as `name kind value` lines and compares them.
    fn check(input: &str, now_unix_seconds: i64, expected: &str) {
        let info = parse_info(input);
        let rendered: Vec<String> = info_series(&info, now_unix_seconds)
            .iter()
            .map(|s| format!("{} {} {}", s.name, s.kind.as_str(), s.value))
            .collect();
        let expected: Vec<&str> = expected
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        assert_eq!(rendered, expected);
    }

    #[test]
    fn captured_info_becomes_redis_exporter_series() {
        // Cut from a Redis 7.0 `INFO ALL`, one field or two per section.
        let input = "# Server\r\nredis_version:7.0.15\r\nprocess_id:2243\r\nuptime_in_seconds:5686\r\n\
            # Memory\r\nused_memory_dataset:212832\r\nmaxmemory:0\r\nmaxmemory_policy:noeviction\r\n\
            # Persistence\r\nrdb_last_bgsave_status:ok\r\naof_last_write_status:err\r\n\
            # Stats\r\ntotal_net_input_bytes:437\r\nlatest_fork_usec:1500\r\n\
            # Replication\r\nsecond_repl_offset:-1\r\n\
            # CPU\r\nused_cpu_sys:6.611233\r\n";
        check(
            input,
            1_796_228_943,
            "redis_uptime_in_seconds gauge 5686
            redis_process_id gauge 2243
            redis_config_maxmemory gauge 0
            redis_memory_used_dataset_bytes gauge 212832
            redis_memory_max_bytes gauge 0
            redis_rdb_last_bgsave_status gauge 1
            redis_aof_last_write_status gauge 0
            redis_net_input_bytes_total counter 437
            redis_latest_fork_seconds gauge 0.0015
            redis_second_repl_offset gauge -1
            redis_cpu_sys_seconds_total counter 6.611233
            redis_start_time_seconds gauge 1796223257",
        );
    }

    #[test]
    fn unreadable_fields_give_no_series() {
        check("used_memory:lots\r\nmaxmemory_policy:noeviction\r\n", 0, "");
    }

    #[test]
    fn info_sections_are_split() {
        let text = "# Server\r\nredis_version:7.0.15\r\n\r\n# Stats\r\nkeyspace_hits:10\r\n# Commandstats\r\ncmdstat_config|get:calls=2,usec=1213,usec_per_call=606.50,rejected_calls=0,failed_calls=1\r\n# Errorstats\r\nerrorstat_WRONGTYPE:count=4\r\n# Keyspace\r\ndb0:keys=3,expires=1,avg_ttl=3599132\r\n";
        let info = parse_info(text);
        assert_eq!(info.number("keyspace_hits"), Some(10.0));
        assert_eq!(
            info.fields.get("redis_version").map(String::as_str),
            Some("7.0.15")
        );
        assert_eq!(info.keyspace.get(&0), Some(&(3.0, 1.0)));
        assert_eq!(info.avg_ttl_ms.get(&0), Some(&3_599_132.0));
        assert_eq!(info.errors.get("WRONGTYPE"), Some(&4.0));
        assert_eq!(
            info.commands.get("config|get"),
            Some(&CommandStats {
                calls: 2.0,
                usec: 1213.0,
                rejected_calls: Some(0.0),
                failed_calls: Some(1.0),
            })
        );
    }

    #[test]
    fn every_series_name_is_unique() {
        let mut names: Vec<&str> = INFO_SERIES.iter().map(|row| row.name).collect();
        names.sort_unstable();
        let count = names.len();
        names.dedup();
        assert_eq!(names.len(), count);
    }
}
