//! One round trip for everything but pg_stat_statements: the server's settings, activity,
//! per-database statistics, locks and replication, assembled by PostgreSQL into one JSON
//! document and mapped here onto postgres_exporter's metric names.

use std::collections::HashMap;

use serde::Deserialize;

use super::cluster::{self, Bgwriter, ConflictRow, SettingRow, SlotRow};
use super::tables::{self, TableRow};
use crate::collector::TargetLabels;
use crate::model::{Batch, MetricKind};

/// The snapshot query for PostgreSQL 14 and newer (`pg_stat_activity.query_id` exists).
pub const SNAPSHOT_SQL: &str = include_str!("snapshot.sql");

/// The background writer's line of [`SNAPSHOT_SQL`], for PostgreSQL 16 and older.
const BGWRITER_UP_TO_16: &str = "      SELECT checkpoints_timed, checkpoints_req, checkpoint_write_time, checkpoint_sync_time, buffers_checkpoint, buffers_clean, maxwritten_clean, buffers_backend, buffers_backend_fsync, buffers_alloc, floor(extract(epoch FROM stats_reset))::float8 AS stats_reset FROM pg_stat_bgwriter\n";

/// The same columns from PostgreSQL 17, where checkpoints are in pg_stat_checkpointer and
/// backend writes only in pg_stat_io (NULL here, so those two series are left out).
const BGWRITER_FROM_17: &str = "      SELECT c.num_timed AS checkpoints_timed, c.num_requested AS checkpoints_req, c.write_time AS checkpoint_write_time, c.sync_time AS checkpoint_sync_time, c.buffers_written AS buffers_checkpoint, b.buffers_clean, b.maxwritten_clean, NULL AS buffers_backend, NULL AS buffers_backend_fsync, b.buffers_alloc, floor(extract(epoch FROM b.stats_reset))::float8 AS stats_reset FROM pg_stat_bgwriter b, pg_stat_checkpointer c\n";

/// The snapshot query for a server version: before 14 `query_id` does not exist and is NULL;
/// from 17 the checkpoint counters come from pg_stat_checkpointer.
pub fn snapshot_sql(version_num: i64) -> String {
    let sql = if version_num >= 140_000 {
        SNAPSHOT_SQL.to_string()
    } else {
        SNAPSHOT_SQL.replacen(
            "         query_id\n",
            "         NULL::bigint AS query_id\n",
            1,
        )
    };
    if version_num >= 170_000 {
        sql.replacen(BGWRITER_UP_TO_16, BGWRITER_FROM_17, 1)
    } else {
        sql
    }
}

/// The decoded snapshot.
#[derive(Debug, Deserialize)]
pub struct Snapshot {
    pub version_num: i64,
    pub version: String,
    pub start_time: f64,
    pub max_connections: f64,
    pub superuser_reserved: f64,
    pub reserved: f64,
    pub in_recovery: bool,
    pub replication_lag: f64,
    pub txid_current: f64,
    /// The DSN's database, the only one whose tables are read (as postgres_exporter does).
    pub current_database: String,
    pub has_statements: bool,
    pub activity: Vec<ActivityRow>,
    pub sessions: Sessions,
    pub waiting_by_type: Vec<WaitRow>,
    pub databases: Vec<DatabaseRow>,
    pub conflicts: Vec<ConflictRow>,
    pub bgwriter: Bgwriter,
    pub settings: Vec<SettingRow>,
    pub table_count: f64,
    pub tables: Vec<TableRow>,
    pub locks: Vec<LockRow>,
    pub waiting_locks: Vec<WaitingLockRow>,
    pub replicas: Vec<ReplicaRow>,
    pub slots: Vec<SlotRow>,
}

#[derive(Debug, Deserialize)]
pub struct ActivityRow {
    pub datname: String,
    pub state: String,
    pub count: f64,
    pub max_tx: f64,
}

#[derive(Debug, Deserialize)]
pub struct Sessions {
    pub client: f64,
    pub oldest_query: f64,
    pub idle_in_tx: f64,
    pub idle_in_tx_max: f64,
    pub blocked: f64,
    pub long_running: Vec<LongRunning>,
}

#[derive(Debug, Deserialize)]
pub struct WaitRow {
    pub datname: String,
    pub wait_event_type: String,
    pub count: f64,
}

/// An active statement past the long-running threshold. Its text is not fetched: pg_stat_activity
/// shows literal values, which may be personal data; `query_id` links it to pg_stat_statements.
#[derive(Debug, Deserialize, serde::Serialize)]
pub struct LongRunning {
    pub pid: i64,
    pub datname: Option<String>,
    pub user: Option<String>,
    pub seconds: f64,
    pub query_id: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct DatabaseRow {
    pub datid: i64,
    pub datname: String,
    pub numbackends: f64,
    pub xact_commit: f64,
    pub xact_rollback: f64,
    pub blks_read: f64,
    pub blks_hit: f64,
    pub tup_returned: f64,
    pub tup_fetched: f64,
    pub tup_inserted: f64,
    pub tup_updated: f64,
    pub tup_deleted: f64,
    pub conflicts: f64,
    pub temp_files: f64,
    pub temp_bytes: f64,
    pub deadlocks: f64,
    pub blk_read_time: f64,
    pub blk_write_time: f64,
    pub stats_reset: Option<f64>,
}

#[derive(Debug, Deserialize)]
pub struct LockRow {
    pub datname: String,
    pub mode: String,
    pub count: f64,
}

#[derive(Debug, Deserialize)]
pub struct WaitingLockRow {
    pub mode: String,
    pub count: f64,
}

#[derive(Debug, Deserialize)]
pub struct ReplicaRow {
    pub application_name: String,
    pub client_addr: String,
    pub state: String,
    pub lag_bytes: Option<f64>,
    pub replay_lag: f64,
}

/// `15.20.0` from `150020`, as postgres_exporter's `short_version` label.
pub fn short_version(version_num: i64) -> String {
    if version_num >= 100_000 {
        format!("{}.{}.0", version_num / 10_000, version_num % 10_000)
    } else {
        format!(
            "{}.{}.{}",
            version_num / 10_000,
            (version_num / 100) % 100,
            version_num % 100
        )
    }
}

/// The counters of pg_stat_database as postgres_exporter's metric names and HELP texts; the
/// column is the name after `pg_stat_database_`.
const DATABASE_COUNTERS: [(&str, &str); 16] = [
    (
        "pg_stat_database_xact_commit",
        "Number of transactions in this database that have been committed",
    ),
    (
        "pg_stat_database_xact_rollback",
        "Number of transactions in this database that have been rolled back",
    ),
    (
        "pg_stat_database_blks_read",
        "Number of disk blocks read in this database",
    ),
    (
        "pg_stat_database_blks_hit",
        "Number of times disk blocks were found already in the buffer cache, so that a read was not necessary",
    ),
    (
        "pg_stat_database_tup_returned",
        "Number of rows returned by queries in this database",
    ),
    (
        "pg_stat_database_tup_fetched",
        "Number of rows fetched by queries in this database",
    ),
    (
        "pg_stat_database_tup_inserted",
        "Number of rows inserted by queries in this database",
    ),
    (
        "pg_stat_database_tup_updated",
        "Number of rows updated by queries in this database",
    ),
    (
        "pg_stat_database_tup_deleted",
        "Number of rows deleted by queries in this database",
    ),
    (
        "pg_stat_database_conflicts",
        "Number of queries canceled due to conflicts with recovery in this database",
    ),
    (
        "pg_stat_database_temp_files",
        "Number of temporary files created by queries in this database",
    ),
    (
        "pg_stat_database_temp_bytes",
        "Total amount of data written to temporary files by queries in this database",
    ),
    (
        "pg_stat_database_deadlocks",
        "Number of deadlocks detected in this database",
    ),
    (
        "pg_stat_database_blk_read_time",
        "Time spent reading data file blocks by backends in this database, in milliseconds",
    ),
    (
        "pg_stat_database_blk_write_time",
        "Time spent writing data file blocks by backends in this database, in milliseconds",
    ),
    (
        "pg_stat_database_stats_reset",
        "Time at which these statistics were last reset",
    ),
];

impl DatabaseRow {
    /// The value of a `DATABASE_COUNTERS` metric.
    fn counter(&self, metric: &str) -> f64 {
        match metric.strip_prefix("pg_stat_database_").unwrap_or(metric) {
            "xact_commit" => self.xact_commit,
            "xact_rollback" => self.xact_rollback,
            "blks_read" => self.blks_read,
            "blks_hit" => self.blks_hit,
            "tup_returned" => self.tup_returned,
            "tup_fetched" => self.tup_fetched,
            "tup_inserted" => self.tup_inserted,
            "tup_updated" => self.tup_updated,
            "tup_deleted" => self.tup_deleted,
            "conflicts" => self.conflicts,
            "temp_files" => self.temp_files,
            "temp_bytes" => self.temp_bytes,
            "deadlocks" => self.deadlocks,
            "blk_read_time" => self.blk_read_time,
            "blk_write_time" => self.blk_write_time,
            // postgres_exporter reports NaN when the statistics were never reset.
            "stats_reset" => self.stats_reset.unwrap_or(f64::NAN),
            _ => f64::NAN,
        }
    }
}

/// The states postgres_exporter reports for every database, zeros included.
const ACTIVITY_STATES: [&str; 6] = [
    "active",
    "idle",
    "idle in transaction",
    "idle in transaction (aborted)",
    "fastpath function call",
    "disabled",
];

/// The lock modes postgres_exporter reports for every database, zeros included.
const LOCK_MODES: [&str; 9] = [
    "accesssharelock",
    "rowsharelock",
    "rowexclusivelock",
    "shareupdateexclusivelock",
    "sharelock",
    "sharerowexclusivelock",
    "exclusivelock",
    "accessexclusivelock",
    "sireadlock",
];

/// Adds the snapshot's series to `batch`. `previous` holds the last hit/read totals per
/// database, for the cache hit ratio over the interval; `sizes` the last database sizes read.
pub fn emit(
    snapshot: &Snapshot,
    labels: &TargetLabels,
    previous: &mut HashMap<i64, (f64, f64)>,
    sizes: &[(String, f64)],
    batch: &mut Batch,
) {
    let short = short_version(snapshot.version_num);
    batch.family(
        "pg_static",
        MetricKind::Untyped,
        "Version string as reported by postgres",
    );
    batch.push(
        "pg_static",
        &labels.with(&[("short_version", &short), ("version", &snapshot.version)]),
        1.0,
    );
    let gauges = [
        (
            "pg_postmaster_start_time_seconds",
            "Time at which postmaster started",
            snapshot.start_time,
        ),
        (
            "pg_settings_max_connections",
            "Sets the maximum number of concurrent connections.",
            snapshot.max_connections,
        ),
        (
            "pg_settings_superuser_reserved_connections",
            "Sets the number of connection slots reserved for superusers.",
            snapshot.superuser_reserved,
        ),
        (
            "pg_replication_is_replica",
            "Indicates if the server is a replica",
            f64::from(u8::from(snapshot.in_recovery)),
        ),
        (
            "pg_replication_lag_seconds",
            "Replication lag behind master in seconds",
            snapshot.replication_lag,
        ),
    ];
    for (name, help, value) in gauges {
        batch.single_labelled(name, MetricKind::Gauge, help, &labels.with(&[]), value);
    }

    emit_activity(snapshot, labels, batch);
    emit_databases(snapshot, labels, previous, batch);
    cluster::emit_conflicts(&snapshot.conflicts, labels, batch);
    cluster::emit_bgwriter(&snapshot.bgwriter, labels, batch);
    cluster::emit_settings(&snapshot.settings, labels, batch);
    cluster::emit_slots(&snapshot.slots, labels, batch);
    cluster::emit_txid(snapshot.txid_current, labels, batch);
    tables::emit_tables(
        &snapshot.current_database,
        &snapshot.tables,
        snapshot.table_count,
        labels,
        batch,
    );

    batch.family("pg_locks_count", MetricKind::Gauge, "Number of locks");
    for datname in database_names(snapshot) {
        for mode in LOCK_MODES {
            let count: f64 = snapshot
                .locks
                .iter()
                .filter(|l| l.datname == datname && l.mode == mode)
                .map(|l| l.count)
                .sum();
            batch.push(
                "pg_locks_count",
                &labels.with(&[("datname", datname), ("mode", mode)]),
                count,
            );
        }
    }
    batch.family(
        "pg_database_size_bytes",
        MetricKind::Gauge,
        "Disk space used by the database, refreshed every 5 minutes (the size query reads every file of every database; between refreshes the last value is repeated)",
    );
    for (datname, size) in sizes {
        batch.push(
            "pg_database_size_bytes",
            &labels.with(&[("datname", datname)]),
            *size,
        );
    }
    batch.family(
        "prismwatch_postgres_locks_waiting",
        MetricKind::Gauge,
        "Lock requests not granted yet, by lock mode.",
    );
    for lock in &snapshot.waiting_locks {
        batch.push(
            "prismwatch_postgres_locks_waiting",
            &labels.with(&[("mode", &lock.mode)]),
            lock.count,
        );
    }
    batch.family(
        "prismwatch_postgres_replica_lag_bytes",
        MetricKind::Gauge,
        "WAL bytes a replica has not replayed yet, seen from its upstream.",
    );
    batch.family(
        "prismwatch_postgres_replica_replay_lag_seconds",
        MetricKind::Gauge,
        "Replay lag of a replica reported by its upstream.",
    );
    for replica in &snapshot.replicas {
        let extra = [
            ("application_name", replica.application_name.as_str()),
            ("client_addr", replica.client_addr.as_str()),
            ("state", replica.state.as_str()),
        ];
        if let Some(lag) = replica.lag_bytes {
            batch.push(
                "prismwatch_postgres_replica_lag_bytes",
                &labels.with(&extra),
                lag,
            );
        }
        batch.push(
            "prismwatch_postgres_replica_replay_lag_seconds",
            &labels.with(&extra),
            replica.replay_lag,
        );
    }
}

/// Names of the databases (pg_stat_database without the shared row), for zero-filled series.
fn database_names(snapshot: &Snapshot) -> impl Iterator<Item = &str> {
    snapshot
        .databases
        .iter()
        .filter(|d| d.datid != 0)
        .map(|d| d.datname.as_str())
}

fn emit_activity(snapshot: &Snapshot, labels: &TargetLabels, batch: &mut Batch) {
    batch.family(
        "pg_stat_activity_count",
        MetricKind::Gauge,
        "number of connections in this state",
    );
    batch.family(
        "pg_stat_activity_max_tx_duration",
        MetricKind::Gauge,
        "max duration in seconds any active transaction has been running",
    );
    for datname in database_names(snapshot) {
        for state in ACTIVITY_STATES {
            let row = snapshot
                .activity
                .iter()
                .find(|r| r.datname == datname && r.state == state);
            let extra = [("datname", datname), ("state", state)];
            batch.push(
                "pg_stat_activity_count",
                &labels.with(&extra),
                row.map_or(0.0, |r| r.count),
            );
            batch.push(
                "pg_stat_activity_max_tx_duration",
                &labels.with(&extra),
                row.map_or(0.0, |r| r.max_tx),
            );
        }
    }
    let sessions = &snapshot.sessions;
    // Slots a client can take: superuser and (PostgreSQL 16+) reserved slots are not for clients.
    let usable =
        (snapshot.max_connections - snapshot.superuser_reserved - snapshot.reserved).max(1.0);
    let longest = sessions
        .long_running
        .iter()
        .map(|l| l.seconds)
        .fold(0.0, f64::max);
    let gauges = [
        (
            "prismwatch_postgres_client_connections",
            "Client backends connected.",
            sessions.client,
        ),
        (
            "prismwatch_postgres_connection_slots",
            "Connection slots available to clients: max_connections minus reserved slots.",
            usable,
        ),
        (
            "prismwatch_postgres_connection_saturation_ratio",
            "Client backends over the connection slots available to them (1 = full).",
            sessions.client / usable,
        ),
        (
            "prismwatch_postgres_oldest_query_seconds",
            "Age of the oldest statement running now (0 when none).",
            sessions.oldest_query,
        ),
        (
            "prismwatch_postgres_idle_in_transaction_sessions",
            "Sessions idle inside an open transaction.",
            sessions.idle_in_tx,
        ),
        (
            "prismwatch_postgres_idle_in_transaction_max_seconds",
            "Longest time a session has been idle inside an open transaction.",
            sessions.idle_in_tx_max,
        ),
        (
            "prismwatch_postgres_blocked_sessions",
            "Sessions waiting for a lock.",
            sessions.blocked,
        ),
        (
            "prismwatch_postgres_long_running_queries",
            "Active statements running longer than the long-running threshold.",
            sessions.long_running.len() as f64,
        ),
        (
            "prismwatch_postgres_longest_query_seconds",
            "Run time of the longest statement past the long-running threshold (0 when none).",
            longest,
        ),
    ];
    for (name, help, value) in gauges {
        batch.single_labelled(name, MetricKind::Gauge, help, &labels.with(&[]), value);
    }
    batch.family(
        "prismwatch_postgres_waiting_sessions",
        MetricKind::Gauge,
        "Sessions waiting, by database and wait event type.",
    );
    for row in &snapshot.waiting_by_type {
        let extra = [
            ("datname", row.datname.as_str()),
            ("wait_event_type", row.wait_event_type.as_str()),
        ];
        batch.push(
            "prismwatch_postgres_waiting_sessions",
            &labels.with(&extra),
            row.count,
        );
    }
}

fn emit_databases(
    snapshot: &Snapshot,
    labels: &TargetLabels,
    previous: &mut HashMap<i64, (f64, f64)>,
    batch: &mut Batch,
) {
    batch.family(
        "pg_stat_database_numbackends",
        MetricKind::Gauge,
        "Number of backends currently connected to this database",
    );
    for (name, help) in DATABASE_COUNTERS {
        batch.family(name, MetricKind::Counter, help);
    }
    batch.family(
        "prismwatch_postgres_cache_hit_ratio",
        MetricKind::Gauge,
        "Buffer cache hits over hits plus reads in the last interval (1 when idle).",
    );
    batch.family(
        "prismwatch_postgres_cache_hit_ratio_since_reset",
        MetricKind::Gauge,
        "Buffer cache hits over hits plus reads since the statistics were reset.",
    );
    let ratio = |hit: f64, read: f64| {
        if hit + read > 0.0 {
            hit / (hit + read)
        } else {
            1.0
        }
    };
    let mut seen = HashMap::new();
    for db in &snapshot.databases {
        let datid = db.datid.to_string();
        let extra = [("datid", datid.as_str()), ("datname", db.datname.as_str())];
        batch.push(
            "pg_stat_database_numbackends",
            &labels.with(&extra),
            db.numbackends,
        );
        for (name, _) in DATABASE_COUNTERS {
            batch.push(name, &labels.with(&extra), db.counter(name));
        }
        if db.datid == 0 {
            continue;
        }
        let name = [("datname", db.datname.as_str())];
        batch.push(
            "prismwatch_postgres_cache_hit_ratio_since_reset",
            &labels.with(&name),
            ratio(db.blks_hit, db.blks_read),
        );
        if let Some(&(hit, read)) = previous.get(&db.datid)
            && db.blks_hit >= hit
            && db.blks_read >= read
        {
            batch.push(
                "prismwatch_postgres_cache_hit_ratio",
                &labels.with(&name),
                ratio(db.blks_hit - hit, db.blks_read - read),
            );
        }
        seen.insert(db.datid, (db.blks_hit, db.blks_read));
    }
    *previous = seen;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_list_in_the_snapshot_is_bounded() {
        // Each json_agg builds one list of the document; each reads from a LIMITed row set, so
        // the document's size is bounded whatever the server holds.
        let code: String = SNAPSHOT_SQL
            .lines()
            .filter(|line| !line.trim_start().starts_with("--"))
            .collect::<Vec<_>>()
            .join("\n");
        let lists = code.matches("json_agg(").count();
        assert_eq!(lists, 11);
        assert_eq!(code.matches(" LIMIT ").count(), lists, "{code}");
    }

    #[test]
    fn the_pre_14_query_has_no_query_id_column() {
        let old = snapshot_sql(130_000);
        assert!(old.contains("NULL::bigint AS query_id"));
        assert!(!old.contains("         query_id\n"));
        assert_eq!(snapshot_sql(150_000), SNAPSHOT_SQL);
    }

    #[test]
    fn from_17_checkpoints_are_read_from_pg_stat_checkpointer() {
        assert!(SNAPSHOT_SQL.contains(BGWRITER_UP_TO_16));
        let new = snapshot_sql(170_000);
        assert!(new.contains(BGWRITER_FROM_17));
        assert!(!new.contains(BGWRITER_UP_TO_16));
        assert!(!snapshot_sql(160_000).contains(BGWRITER_FROM_17));
    }

    #[test]
    fn short_version_follows_postgres_exporter() {
        assert_eq!(short_version(150_020), "15.20.0");
        assert_eq!(short_version(90_624), "9.6.24");
    }
}
