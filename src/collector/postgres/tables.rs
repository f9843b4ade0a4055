//! pg_stat_user_tables of the DSN's database as postgres_exporter's `pg_stat_user_tables_*`
//! (the query of its example `queries.yaml`, which community rules and dashboards assume),
//! capped at `max_tables` tables: one series per table and column would otherwise grow with
//! the schema, without bound.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::collector::TargetLabels;
use crate::model::{Batch, MetricKind};

/// One row of pg_stat_user_tables. The statistics are kept by column name, so the list of
/// exported columns ([`TABLE_COLUMNS`]) is the one place that names them.
#[derive(Debug, Deserialize)]
pub struct TableRow {
    pub schemaname: String,
    pub relname: String,
    /// Rows read and written, the order in which tables are kept under the cap.
    pub activity: f64,
    /// Every other column; NULL (an index column of a table without index) is `None`.
    #[serde(flatten)]
    pub columns: BTreeMap<String, Option<f64>>,
}

/// The exported columns: column, type and postgres_exporter's HELP text. The metric name is
/// `pg_stat_user_tables_<column>`, without `_total`, as postgres_exporter names them.
const TABLE_COLUMNS: [(&str, MetricKind, &str); 19] = [
    (
        "seq_scan",
        MetricKind::Counter,
        "Number of sequential scans initiated on this table",
    ),
    (
        "seq_tup_read",
        MetricKind::Counter,
        "Number of live rows fetched by sequential scans",
    ),
    (
        "idx_scan",
        MetricKind::Counter,
        "Number of index scans initiated on this table",
    ),
    (
        "idx_tup_fetch",
        MetricKind::Counter,
        "Number of live rows fetched by index scans",
    ),
    ("n_tup_ins", MetricKind::Counter, "Number of rows inserted"),
    ("n_tup_upd", MetricKind::Counter, "Number of rows updated"),
    ("n_tup_del", MetricKind::Counter, "Number of rows deleted"),
    (
        "n_tup_hot_upd",
        MetricKind::Counter,
        "Number of rows HOT updated (i.e., with no separate index update required)",
    ),
    (
        "n_live_tup",
        MetricKind::Gauge,
        "Estimated number of live rows",
    ),
    (
        "n_dead_tup",
        MetricKind::Gauge,
        "Estimated number of dead rows",
    ),
    (
        "n_mod_since_analyze",
        MetricKind::Gauge,
        "Estimated number of rows changed since last analyze",
    ),
    (
        "last_vacuum",
        MetricKind::Gauge,
        "Last time at which this table was manually vacuumed (not counting VACUUM FULL)",
    ),
    (
        "last_autovacuum",
        MetricKind::Gauge,
        "Last time at which this table was vacuumed by the autovacuum daemon",
    ),
    (
        "last_analyze",
        MetricKind::Gauge,
        "Last time at which this table was manually analyzed",
    ),
    (
        "last_autoanalyze",
        MetricKind::Gauge,
        "Last time at which this table was analyzed by the autovacuum daemon",
    ),
    (
        "vacuum_count",
        MetricKind::Counter,
        "Number of times this table has been manually vacuumed (not counting VACUUM FULL)",
    ),
    (
        "autovacuum_count",
        MetricKind::Counter,
        "Number of times this table has been vacuumed by the autovacuum daemon",
    ),
    (
        "analyze_count",
        MetricKind::Counter,
        "Number of times this table has been manually analyzed",
    ),
    (
        "autoanalyze_count",
        MetricKind::Counter,
        "Number of times this table has been analyzed by the autovacuum daemon",
    ),
];

/// The `max` busiest tables, busiest first. The snapshot query applies the same order and
/// limit, so this only restates the contract the series rely on: ties keep the query's order.
pub fn busiest(mut rows: Vec<TableRow>, max: usize) -> Vec<TableRow> {
    rows.sort_by(|a, b| b.activity.total_cmp(&a.activity));
    rows.truncate(max);
    rows
}

/// Adds one series per table and column, labelled `datname` (the DSN's database),
/// `schemaname` and `relname`, and the number of tables before the cap. A NULL column gives
/// NaN, as postgres_exporter reports it.
pub fn emit_tables(
    datname: &str,
    rows: &[TableRow],
    total: f64,
    labels: &TargetLabels,
    batch: &mut Batch,
) {
    let names: Vec<String> = TABLE_COLUMNS
        .iter()
        .map(|(column, _, _)| format!("pg_stat_user_tables_{column}"))
        .collect();
    for (name, (_, kind, help)) in names.iter().zip(TABLE_COLUMNS) {
        batch.family(name, kind, help);
    }
    for row in rows {
        let extra = [
            ("datname", datname),
            ("schemaname", row.schemaname.as_str()),
            ("relname", row.relname.as_str()),
        ];
        for (name, (column, _, _)) in names.iter().zip(TABLE_COLUMNS) {
            let value = row.columns.get(column).copied().flatten();
            batch.push(name, &labels.with(&extra), value.unwrap_or(f64::NAN));
        }
    }
    batch.single_labelled(
        "prismwatch_postgres_user_tables",
        MetricKind::Gauge,
        "Tables in pg_stat_user_tables of the DSN's database; pg_stat_user_tables_* covers the max_tables busiest of them.",
        &labels.with(&[("datname", datname)]),
        total,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels() -> TargetLabels {
        TargetLabels::of_server("db:5432")
    }

    fn row(json: &str) -> TableRow {
        serde_json::from_str(json).expect("table row")
    }

    fn value(batch: &Batch, name: &str, relname: &str) -> Option<f64> {
        batch
            .samples
            .iter()
            .find(|(l, _)| l.metric_name() == name && l.get("relname") == Some(relname))
            .map(|(_, v)| *v)
    }

    #[test]
    fn a_row_gives_one_series_per_column_and_null_gives_nan() {
        let rows = [row(
            r#"{"schemaname": "public", "relname": "t", "activity": 900, "seq_scan": 3,
                "idx_scan": null, "n_dead_tup": 99, "last_autovacuum": 1796223253}"#,
        )];
        let mut batch = Batch::new();
        emit_tables("app", &rows, 7.0, &labels(), &mut batch);
        assert_eq!(
            value(&batch, "pg_stat_user_tables_seq_scan", "t"),
            Some(3.0)
        );
        assert_eq!(
            value(&batch, "pg_stat_user_tables_n_dead_tup", "t"),
            Some(99.0)
        );
        assert_eq!(
            value(&batch, "pg_stat_user_tables_last_autovacuum", "t"),
            Some(1_796_223_253.0)
        );
        assert!(value(&batch, "pg_stat_user_tables_idx_scan", "t").is_some_and(f64::is_nan));
        // A column the server did not send is NaN too, never a made-up zero.
        assert!(value(&batch, "pg_stat_user_tables_vacuum_count", "t").is_some_and(f64::is_nan));
        let (labels, _) = &batch.samples[0];
        let pairs: Vec<(&str, &str)> = labels.iter().collect();
        assert_eq!(
            pairs,
            [
                ("__name__", "pg_stat_user_tables_seq_scan"),
                ("datname", "app"),
                ("relname", "t"),
                ("schemaname", "public"),
                ("server", "db:5432"),
            ]
        );
        assert_eq!(batch.len(), TABLE_COLUMNS.len() + 1);
        let total = batch
            .samples
            .iter()
            .find(|(l, _)| l.metric_name() == "prismwatch_postgres_user_tables");
        assert_eq!(total.map(|(_, v)| *v), Some(7.0));
    }

    #[test]
    fn the_cap_keeps_the_busiest_tables() {
        let rows = ["quiet:1", "busy:500", "medium:40", "idle:0"]
            .iter()
            .map(|spec| {
                let (name, activity) = spec.split_once(':').expect("spec");
                row(&format!(
                    r#"{{"schemaname": "public", "relname": "{name}", "activity": {activity}}}"#
                ))
            })
            .collect();
        let kept: Vec<String> = busiest(rows, 2).into_iter().map(|r| r.relname).collect();
        assert_eq!(kept, ["busy", "medium"]);
        assert!(busiest(Vec::new(), 2).is_empty());
    }

    #[test]
    fn types_follow_postgres_exporter() {
        let kind = |column: &str| {
            TABLE_COLUMNS
                .iter()
                .find(|(c, _, _)| *c == column)
                .map(|(_, k, _)| *k)
        };
        assert_eq!(kind("n_tup_upd"), Some(MetricKind::Counter));
        assert_eq!(kind("n_live_tup"), Some(MetricKind::Gauge));
        assert_eq!(kind("last_vacuum"), Some(MetricKind::Gauge));
    }
}
