//! Server-wide statistics of the snapshot: the background writer and checkpointer, recovery
//! conflicts per database, replication slots and the transaction ID counter, under
//! postgres_exporter's names, labels and HELP texts (0.11, the version Debian ships).

use serde::Deserialize;

use crate::collector::TargetLabels;
use crate::model::{Batch, MetricKind};

/// pg_stat_bgwriter. A column PostgreSQL no longer has (17 moved backend writes to pg_stat_io)
/// is `None` and its series is left out rather than reported as a made-up zero.
#[derive(Debug, Default, Deserialize)]
pub struct Bgwriter {
    pub checkpoints_timed: Option<f64>,
    pub checkpoints_req: Option<f64>,
    pub checkpoint_write_time: Option<f64>,
    pub checkpoint_sync_time: Option<f64>,
    pub buffers_checkpoint: Option<f64>,
    pub buffers_clean: Option<f64>,
    pub maxwritten_clean: Option<f64>,
    pub buffers_backend: Option<f64>,
    pub buffers_backend_fsync: Option<f64>,
    pub buffers_alloc: Option<f64>,
    /// Unix seconds, whole.
    pub stats_reset: Option<f64>,
}

/// One row of pg_stat_database_conflicts.
#[derive(Debug, Deserialize)]
pub struct ConflictRow {
    pub datid: i64,
    pub datname: String,
    pub confl_tablespace: f64,
    pub confl_lock: f64,
    pub confl_snapshot: f64,
    pub confl_bufferpin: f64,
    pub confl_deadlock: f64,
}

/// One of the settings the snapshot reads, its value a number (a boolean is 1 or 0).
#[derive(Debug, Deserialize)]
pub struct SettingRow {
    pub name: String,
    /// The server's description (pg_settings.short_desc), postgres_exporter's HELP text.
    pub help: String,
    pub value: f64,
}

/// One row of pg_replication_slots.
#[derive(Debug, Deserialize)]
pub struct SlotRow {
    pub slot_name: String,
    /// Empty for a physical slot, as postgres_exporter reports a NULL label.
    pub database: String,
    pub active: bool,
    /// WAL bytes the slot retains; `None` when it has not reserved WAL yet (no restart_lsn).
    pub wal_lsn_diff: Option<f64>,
}

/// Adds the background writer's counters. All are counters in postgres_exporter, even
/// `stats_reset_total`, a timestamp; the name and type are kept so its dashboards work.
pub fn emit_bgwriter(bgwriter: &Bgwriter, labels: &TargetLabels, batch: &mut Batch) {
    let counters = [
        (
            "pg_stat_bgwriter_checkpoints_timed_total",
            "Number of scheduled checkpoints that have been performed",
            bgwriter.checkpoints_timed,
        ),
        (
            "pg_stat_bgwriter_checkpoints_req_total",
            "Number of requested checkpoints that have been performed",
            bgwriter.checkpoints_req,
        ),
        (
            "pg_stat_bgwriter_checkpoint_write_time_total",
            "Total amount of time that has been spent in the portion of checkpoint processing where files are written to disk, in milliseconds",
            bgwriter.checkpoint_write_time,
        ),
        (
            "pg_stat_bgwriter_checkpoint_sync_time_total",
            "Total amount of time that has been spent in the portion of checkpoint processing where files are synchronized to disk, in milliseconds",
            bgwriter.checkpoint_sync_time,
        ),
        (
            "pg_stat_bgwriter_buffers_checkpoint_total",
            "Number of buffers written during checkpoints",
            bgwriter.buffers_checkpoint,
        ),
        (
            "pg_stat_bgwriter_buffers_clean_total",
            "Number of buffers written by the background writer",
            bgwriter.buffers_clean,
        ),
        (
            "pg_stat_bgwriter_maxwritten_clean_total",
            "Number of times the background writer stopped a cleaning scan because it had written too many buffers",
            bgwriter.maxwritten_clean,
        ),
        (
            "pg_stat_bgwriter_buffers_backend_total",
            "Number of buffers written directly by a backend",
            bgwriter.buffers_backend,
        ),
        (
            "pg_stat_bgwriter_buffers_backend_fsync_total",
            "Number of times a backend had to execute its own fsync call (normally the background writer handles those even when the backend does its own write)",
            bgwriter.buffers_backend_fsync,
        ),
        (
            "pg_stat_bgwriter_buffers_alloc_total",
            "Number of buffers allocated",
            bgwriter.buffers_alloc,
        ),
        (
            "pg_stat_bgwriter_stats_reset_total",
            "Time at which these statistics were last reset",
            bgwriter.stats_reset,
        ),
    ];
    for (name, help, value) in counters {
        if let Some(value) = value {
            batch.single_labelled(name, MetricKind::Counter, help, &labels.with(&[]), value);
        }
    }
}

/// Adds `pg_settings_<name>` for each setting read. The names come from a fixed list in the
/// query, so the families are bounded.
pub fn emit_settings(rows: &[SettingRow], labels: &TargetLabels, batch: &mut Batch) {
    for setting in rows {
        let name = format!("pg_settings_{}", setting.name);
        batch.single_labelled(
            &name,
            MetricKind::Gauge,
            &setting.help,
            &labels.with(&[]),
            setting.value,
        );
    }
}

/// The columns of pg_stat_database_conflicts: metric name and HELP text.
const CONFLICT_COUNTERS: [(&str, &str); 5] = [
    (
        "pg_stat_database_conflicts_confl_tablespace",
        "Number of queries in this database that have been canceled due to dropped tablespaces",
    ),
    (
        "pg_stat_database_conflicts_confl_lock",
        "Number of queries in this database that have been canceled due to lock timeouts",
    ),
    (
        "pg_stat_database_conflicts_confl_snapshot",
        "Number of queries in this database that have been canceled due to old snapshots",
    ),
    (
        "pg_stat_database_conflicts_confl_bufferpin",
        "Number of queries in this database that have been canceled due to pinned buffers",
    ),
    (
        "pg_stat_database_conflicts_confl_deadlock",
        "Number of queries in this database that have been canceled due to deadlocks",
    ),
];

impl ConflictRow {
    /// The value of a [`CONFLICT_COUNTERS`] metric.
    fn counter(&self, metric: &str) -> f64 {
        match metric.strip_prefix("pg_stat_database_conflicts_") {
            Some("confl_tablespace") => self.confl_tablespace,
            Some("confl_lock") => self.confl_lock,
            Some("confl_snapshot") => self.confl_snapshot,
            Some("confl_bufferpin") => self.confl_bufferpin,
            Some("confl_deadlock") => self.confl_deadlock,
            _ => f64::NAN,
        }
    }
}

/// Adds the recovery conflicts by cause, per database (`datid`, `datname`).
pub fn emit_conflicts(rows: &[ConflictRow], labels: &TargetLabels, batch: &mut Batch) {
    for (name, help) in CONFLICT_COUNTERS {
        batch.family(name, MetricKind::Counter, help);
    }
    for row in rows {
        let datid = row.datid.to_string();
        let extra = [("datid", datid.as_str()), ("datname", row.datname.as_str())];
        for (name, _) in CONFLICT_COUNTERS {
            batch.push(name, &labels.with(&extra), row.counter(name));
        }
    }
}

/// Adds one `active` and one retained-WAL series per replication slot. A slot without
/// reserved WAL reports NaN, as postgres_exporter does for the NULL difference.
pub fn emit_slots(rows: &[SlotRow], labels: &TargetLabels, batch: &mut Batch) {
    batch.family(
        "pg_replication_slots_active",
        MetricKind::Gauge,
        "Flag indicating if the slot is active",
    );
    batch.family(
        "pg_replication_slots_pg_wal_lsn_diff",
        MetricKind::Gauge,
        "Replication lag in bytes",
    );
    for slot in rows {
        let extra = [
            ("slot_name", slot.slot_name.as_str()),
            ("database", slot.database.as_str()),
        ];
        batch.push(
            "pg_replication_slots_active",
            &labels.with(&extra),
            f64::from(u8::from(slot.active)),
        );
        batch.push(
            "pg_replication_slots_pg_wal_lsn_diff",
            &labels.with(&extra),
            slot.wal_lsn_diff.unwrap_or(f64::NAN),
        );
    }
}

/// Adds `pg_txid_current`. postgres_exporter has no such metric: the community rule
/// PostgresqlLowXidConsumption (`rate(pg_txid_current[1m]) < 5`, in awesome-prometheus-alerts)
/// expects it from a custom query, so it is exported for that rule. The value is the next ID
/// to be assigned, read from a snapshot so that collecting it consumes no ID.
pub fn emit_txid(txid: f64, labels: &TargetLabels, batch: &mut Batch) {
    batch.single_labelled(
        "pg_txid_current",
        // A gauge by type, as the custom query the rule's authors suggest exports it (a
        // counter without `_total` fails promtool's lint); `rate()` works on it all the same.
        MetricKind::Gauge,
        "Next transaction ID to be assigned (txid_snapshot_xmax of the current snapshot); its rate is the XID consumption rate",
        &labels.with(&[]),
        txid,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels() -> TargetLabels {
        TargetLabels::of_server("db:5432")
    }

    /// The batch as sorted `name{labels} value` lines.
    fn lines(batch: &Batch) -> Vec<String> {
        let mut lines: Vec<String> = batch
            .samples
            .iter()
            .map(|(labels, value)| {
                let pairs: Vec<String> = labels
                    .iter()
                    .filter(|(k, _)| *k != "__name__")
                    .map(|(k, v)| format!("{k}=\"{v}\""))
                    .collect();
                format!("{}{{{}}} {value}", labels.metric_name(), pairs.join(","))
            })
            .collect();
        lines.sort();
        lines
    }

    #[test]
    fn bgwriter_columns_missing_from_the_server_are_left_out() {
        let bgwriter = Bgwriter {
            checkpoints_timed: Some(14.0),
            buffers_alloc: Some(2825.0),
            stats_reset: Some(1_796_223_253.0),
            ..Bgwriter::default()
        };
        let mut batch = Batch::new();
        emit_bgwriter(&bgwriter, &labels(), &mut batch);
        assert_eq!(
            lines(&batch),
            [
                "pg_stat_bgwriter_buffers_alloc_total{server=\"db:5432\"} 2825",
                "pg_stat_bgwriter_checkpoints_timed_total{server=\"db:5432\"} 14",
                "pg_stat_bgwriter_stats_reset_total{server=\"db:5432\"} 1796223253",
            ]
        );
        assert!(batch.families.iter().all(|f| f.kind == MetricKind::Counter));
    }

    #[test]
    fn conflicts_give_one_series_per_cause_and_database() {
        let row = ConflictRow {
            datid: 5,
            datname: "postgres".to_string(),
            confl_tablespace: 1.0,
            confl_lock: 2.0,
            confl_snapshot: 3.0,
            confl_bufferpin: 4.0,
            confl_deadlock: 5.0,
        };
        let mut batch = Batch::new();
        emit_conflicts(&[row], &labels(), &mut batch);
        let l = "{datid=\"5\",datname=\"postgres\",server=\"db:5432\"}";
        assert_eq!(
            lines(&batch),
            [
                format!("pg_stat_database_conflicts_confl_bufferpin{l} 4"),
                format!("pg_stat_database_conflicts_confl_deadlock{l} 5"),
                format!("pg_stat_database_conflicts_confl_lock{l} 2"),
                format!("pg_stat_database_conflicts_confl_snapshot{l} 3"),
                format!("pg_stat_database_conflicts_confl_tablespace{l} 1"),
            ]
        );
    }

    #[test]
    fn settings_are_gauges_with_the_servers_description() {
        let rows = [SettingRow {
            name: "transaction_read_only".to_string(),
            help: "Sets the current transaction's read-only status.".to_string(),
            value: 0.0,
        }];
        let mut batch = Batch::new();
        emit_settings(&rows, &labels(), &mut batch);
        assert_eq!(
            lines(&batch),
            ["pg_settings_transaction_read_only{server=\"db:5432\"} 0"]
        );
        assert_eq!(
            batch.families[0].help,
            "Sets the current transaction's read-only status."
        );
        assert_eq!(batch.families[0].kind, MetricKind::Gauge);
    }

    /// A physical slot's empty `database` is no label at all, which PromQL treats the same as
    /// postgres_exporter's `database=""`.
    #[test]
    fn a_slot_without_reserved_wal_reports_nan() {
        let slots = [
            SlotRow {
                slot_name: "standby".to_string(),
                database: String::new(),
                active: true,
                wal_lsn_diff: Some(1024.0),
            },
            SlotRow {
                slot_name: "unused".to_string(),
                database: "app".to_string(),
                active: false,
                wal_lsn_diff: None,
            },
        ];
        let mut batch = Batch::new();
        emit_slots(&slots, &labels(), &mut batch);
        assert_eq!(
            lines(&batch),
            [
                "pg_replication_slots_active{database=\"app\",server=\"db:5432\",slot_name=\"unused\"} 0",
                "pg_replication_slots_active{server=\"db:5432\",slot_name=\"standby\"} 1",
                "pg_replication_slots_pg_wal_lsn_diff{database=\"app\",server=\"db:5432\",slot_name=\"unused\"} NaN",
                "pg_replication_slots_pg_wal_lsn_diff{server=\"db:5432\",slot_name=\"standby\"} 1024",
            ]
        );
    }
}
