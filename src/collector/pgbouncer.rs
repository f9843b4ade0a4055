//! The PgBouncer collector: pools, stats, lists, databases and limits from the admin console,
//! under pgbouncer_exporter's names, plus saturation ratios.
//!
//! The admin console speaks only the simple query protocol, so every command goes through
//! `raw_sql` and values are read as text.

use std::collections::HashMap;
use std::str::FromStr;

use futures_util::TryStreamExt;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgRow};
use sqlx::{Column, Connection, Row, ValueRef};

use super::wire_guard::{Limits, WireGuard};
use super::{CollectError, Collector, TargetLabels};
use crate::config::PgbouncerTarget;
use crate::model::{Batch, MetricKind};

/// See the module documentation.
pub struct PgbouncerCollector {
    source: String,
    labels: TargetLabels,
    /// Every connection goes through the guard, which bounds what the console can make us read.
    guard: WireGuard,
    connection: Option<PgConnection>,
}

/// A result row as column name to text.
type TextRow = HashMap<String, String>;

/// The most rows one SHOW command may answer: each pool, database or client is one row, and
/// PgBouncer's own `max_client_conn` defaults to 100.
const MAX_ROWS: usize = 20_000;

/// The most text one SHOW command may answer, all values together.
const MAX_TEXT_BYTES: usize = 8 << 20;

/// Why a SHOW answer was refused.
#[derive(Debug, thiserror::Error)]
enum BoundError {
    #[error("more than {MAX_ROWS} rows; the connection was dropped")]
    TooManyRows,
    #[error("more than {MAX_TEXT_BYTES} bytes of text; the connection was dropped")]
    TooMuchText,
}

/// Rows of one answer, counted by number and size as they arrive.
#[derive(Default)]
struct BoundedRows {
    rows: Vec<TextRow>,
    bytes: usize,
}

impl BoundedRows {
    fn push(&mut self, row: TextRow) -> Result<(), BoundError> {
        if self.rows.len() >= MAX_ROWS {
            return Err(BoundError::TooManyRows);
        }
        self.bytes += row.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>();
        if self.bytes > MAX_TEXT_BYTES {
            return Err(BoundError::TooMuchText);
        }
        self.rows.push(row);
        Ok(())
    }
}

impl PgbouncerCollector {
    pub fn new(target: PgbouncerTarget) -> Result<PgbouncerCollector, CollectError> {
        let options = PgConnectOptions::from_str(target.dsn.expose())
            .map_err(|error| {
                CollectError::Other(format!("invalid PgBouncer connection string: {error}"))
            })?
            // The admin console refuses startup parameters it does not know.
            .extra_float_digits(None)
            .application_name("prismwatch");
        let guard = WireGuard::new(
            options,
            target.dsn.expose(),
            Limits::collector(target.common.schedule.timeout),
        )
        .map_err(|error| {
            CollectError::Other(format!("PgBouncer {}: {error}", target.common.server))
        })?;
        Ok(PgbouncerCollector {
            source: format!("pgbouncer:{}", target.common.server),
            labels: TargetLabels::new(&target.common),
            guard,
            connection: None,
        })
    }

    async fn show(&mut self, what: &'static str) -> Result<Vec<TextRow>, CollectError> {
        let server = self.labels.server().to_string();
        self.guard.serve();
        let guard = &self.guard;
        let context = format!("PgBouncer {server}: {what}");
        let fail = |error: sqlx::Error| guard.collect_error(&context, error);
        // Taken out while in use: if the scheduler drops this future at its timeout, the
        // half-read connection is dropped with it instead of being reused.
        let mut connection = match self.connection.take() {
            Some(connection) => connection,
            None => PgConnection::connect_with(guard.options())
                .await
                .map_err(&fail)?,
        };
        // Read row by row within a bound, so a console with a huge answer cannot grow memory.
        let mut rows = BoundedRows::default();
        {
            let mut stream = sqlx::raw_sql(what).fetch(&mut connection);
            while let Some(row) = stream.try_next().await.map_err(&fail)? {
                rows.push(text_row(&row)).map_err(|error| {
                    CollectError::Other(format!("PgBouncer {server}: {what}: {error}"))
                })?;
            }
        }
        self.connection = Some(connection);
        Ok(rows.rows)
    }

    async fn collect_batch(&mut self) -> Result<Batch, CollectError> {
        let version = self.show("SHOW VERSION").await?;
        let pools = self.show("SHOW POOLS").await?;
        let stats = self.show("SHOW STATS").await?;
        let lists = self.show("SHOW LISTS").await?;
        let databases = self.show("SHOW DATABASES").await?;
        let config = self.show("SHOW CONFIG").await?;
        let mut batch = Batch::new();
        let labels = &self.labels;
        batch.single_labelled(
            "pgbouncer_up",
            MetricKind::Gauge,
            "The pgbouncer scrape succeeded",
            &labels.with(&[]),
            1.0,
        );
        if let Some(version) = version.first().and_then(|row| row.get("version")) {
            let number = version.trim_start_matches("PgBouncer ").to_string();
            batch.single_labelled(
                "pgbouncer_version_info",
                MetricKind::Gauge,
                "The pgbouncer version info",
                &labels.with(&[("version", &number)]),
                1.0,
            );
        }
        let settings: HashMap<&str, f64> = config
            .iter()
            .filter_map(|row| {
                Some((
                    row.get("key")?.as_str(),
                    row.get("value")?.parse::<f64>().ok()?,
                ))
            })
            .collect();
        for (key, name, help) in [
            (
                "max_client_conn",
                "pgbouncer_config_max_client_connections",
                "Config maximum number of client connections",
            ),
            (
                "max_user_connections",
                "pgbouncer_config_max_user_connections",
                "Config maximum number of server connections per user",
            ),
            (
                "default_pool_size",
                "prismwatch_pgbouncer_default_pool_size",
                "Config default_pool_size: server connections per user and database pair.",
            ),
        ] {
            if let Some(value) = settings.get(key) {
                batch.single_labelled(name, MetricKind::Gauge, help, &labels.with(&[]), *value);
            }
        }
        emit_pools(
            &pools,
            &databases,
            settings.get("default_pool_size").copied(),
            labels,
            &mut batch,
        );
        emit_stats(&stats, labels, &mut batch);
        for row in &lists {
            if let (Some(list), Some(items)) = (
                row.get("list"),
                row.get("items").and_then(|v| v.parse::<f64>().ok()),
            ) {
                let name = format!("pgbouncer_lists_{list}");
                batch.single_labelled(
                    &name,
                    MetricKind::Gauge,
                    &format!("Count of {}", list.replace('_', " ")),
                    &labels.with(&[]),
                    items,
                );
            }
        }
        emit_databases(&databases, labels, &mut batch);
        // used_clients includes our own admin connection.
        let client_total = lists
            .iter()
            .find(|row| row.get("list").map(String::as_str) == Some("used_clients"))
            .and_then(|row| row.get("items")?.parse::<f64>().ok());
        if let (Some(used), Some(max)) = (client_total, settings.get("max_client_conn")) {
            batch.single_labelled(
                "prismwatch_pgbouncer_client_saturation_ratio",
                MetricKind::Gauge,
                "Client connections over max_client_conn (1 = new clients are refused).",
                &labels.with(&[]),
                used / max.max(1.0),
            );
        }
        Ok(batch)
    }
}

impl Collector for PgbouncerCollector {
    fn name(&self) -> &str {
        &self.source
    }

    async fn collect(&mut self) -> Result<Batch, CollectError> {
        let result = self.collect_batch().await;
        if result.is_err() {
            // Reconnect next time; the connection may be half-read or dead.
            self.connection = None;
        }
        result
    }

    fn failure_batch(&self) -> Batch {
        let mut batch = Batch::new();
        batch.single_labelled(
            "pgbouncer_up",
            MetricKind::Gauge,
            "The pgbouncer scrape succeeded",
            &self.labels.with(&[]),
            0.0,
        );
        batch
    }
}

fn text_row(row: &PgRow) -> TextRow {
    row.columns()
        .iter()
        .filter_map(|column| {
            let value = row.try_get_raw(column.ordinal()).ok()?;
            if value.is_null() {
                return Some((column.name().to_string(), String::new()));
            }
            let text = value.as_str().ok()?.to_string();
            Some((column.name().to_string(), text))
        })
        .collect()
}

fn number(row: &TextRow, column: &str) -> Option<f64> {
    row.get(column)?.parse().ok()
}

fn emit_pools(
    pools: &[TextRow],
    databases: &[TextRow],
    default_pool_size: Option<f64>,
    labels: &TargetLabels,
    batch: &mut Batch,
) {
    let columns: [(&str, &str, &str); 7] = [
        (
            "cl_active",
            "pgbouncer_pools_client_active_connections",
            "Client connections linked to server connection and able to process queries, shown as connection",
        ),
        (
            "cl_waiting",
            "pgbouncer_pools_client_waiting_connections",
            "Client connections waiting on a server connection, shown as connection",
        ),
        (
            "sv_active",
            "pgbouncer_pools_server_active_connections",
            "Server connections linked to a client connection, shown as connection",
        ),
        (
            "sv_idle",
            "pgbouncer_pools_server_idle_connections",
            "Server connections idle and ready for a client query, shown as connection",
        ),
        (
            "sv_used",
            "pgbouncer_pools_server_used_connections",
            "Server connections idle more than server_check_delay, needing server_check_query, shown as connection",
        ),
        (
            "sv_tested",
            "pgbouncer_pools_server_testing_connections",
            "Server connections currently running either server_reset_query or server_check_query, shown as connection",
        ),
        (
            "sv_login",
            "pgbouncer_pools_server_login_connections",
            "Server connections currently in the process of logging in, shown as connection",
        ),
    ];
    for (_, name, help) in columns {
        batch.family(name, MetricKind::Gauge, help);
    }
    batch.family(
        "pgbouncer_pools_client_maxwait_seconds",
        MetricKind::Gauge,
        "Age of oldest unserved client connection, shown as second",
    );
    batch.family(
        "prismwatch_pgbouncer_pool_saturation_ratio",
        MetricKind::Gauge,
        "Server connections in use (active + being tested or logging in) over the pool size.",
    );
    batch.family(
        "prismwatch_pgbouncer_waiting_ratio",
        MetricKind::Gauge,
        "Clients waiting over clients active plus waiting (0 = nobody waits).",
    );
    let pool_sizes: HashMap<&str, f64> = databases
        .iter()
        .filter_map(|row| Some((row.get("name")?.as_str(), number(row, "pool_size")?)))
        .collect();
    for pool in pools {
        let (Some(database), Some(user)) = (pool.get("database"), pool.get("user")) else {
            continue;
        };
        let extra = [("database", database.as_str()), ("user", user.as_str())];
        for (column, name, _) in columns {
            if let Some(value) = number(pool, column) {
                batch.push(name, &labels.with(&extra), value);
            }
        }
        let maxwait = number(pool, "maxwait").unwrap_or(0.0)
            + number(pool, "maxwait_us").unwrap_or(0.0) / 1e6;
        batch.push(
            "pgbouncer_pools_client_maxwait_seconds",
            &labels.with(&extra),
            maxwait,
        );
        let busy = ["sv_active", "sv_tested", "sv_login"]
            .iter()
            .filter_map(|c| number(pool, c))
            .sum::<f64>();
        let size = pool_sizes
            .get(database.as_str())
            .copied()
            .filter(|s| *s > 0.0)
            .or(default_pool_size);
        if let Some(size) = size.filter(|s| *s > 0.0) {
            batch.push(
                "prismwatch_pgbouncer_pool_saturation_ratio",
                &labels.with(&extra),
                busy / size,
            );
        }
        let (active, waiting) = (
            number(pool, "cl_active").unwrap_or(0.0),
            number(pool, "cl_waiting").unwrap_or(0.0),
        );
        let ratio = if active + waiting > 0.0 {
            waiting / (active + waiting)
        } else {
            0.0
        };
        batch.push(
            "prismwatch_pgbouncer_waiting_ratio",
            &labels.with(&extra),
            ratio,
        );
    }
}

fn emit_stats(stats: &[TextRow], labels: &TargetLabels, batch: &mut Batch) {
    // (column, metric, help, divisor): PgBouncer reports times in microseconds.
    let columns: [(&str, &str, &str, f64); 7] = [
        (
            "total_query_count",
            "pgbouncer_stats_queries_pooled_total",
            "Total number of SQL queries pooled",
            1.0,
        ),
        (
            "total_xact_count",
            "pgbouncer_stats_sql_transactions_pooled_total",
            "Total number of SQL transactions pooled",
            1.0,
        ),
        (
            "total_received",
            "pgbouncer_stats_received_bytes_total",
            "Total volume in bytes of network traffic received by pgbouncer, shown as bytes",
            1.0,
        ),
        (
            "total_sent",
            "pgbouncer_stats_sent_bytes_total",
            "Total volume in bytes of network traffic sent by pgbouncer, shown as bytes",
            1.0,
        ),
        (
            "total_query_time",
            "pgbouncer_stats_queries_duration_seconds_total",
            "Total number of seconds spent by pgbouncer when actively connected to PostgreSQL, executing queries",
            1e6,
        ),
        (
            "total_xact_time",
            "pgbouncer_stats_server_in_transaction_seconds_total",
            "Total number of seconds spent by pgbouncer when connected to PostgreSQL in a transaction, either idle in transaction or executing queries",
            1e6,
        ),
        (
            "total_wait_time",
            "pgbouncer_stats_client_wait_seconds_total",
            "Time spent by clients waiting for a server in seconds",
            1e6,
        ),
    ];
    for (_, name, help, _) in columns {
        batch.family(name, MetricKind::Counter, help);
    }
    batch.family(
        "prismwatch_pgbouncer_avg_query_seconds",
        MetricKind::Gauge,
        "Average query duration over PgBouncer's last stats period.",
    );
    batch.family(
        "prismwatch_pgbouncer_avg_transaction_seconds",
        MetricKind::Gauge,
        "Average transaction duration over PgBouncer's last stats period.",
    );
    for row in stats {
        let Some(database) = row.get("database") else {
            continue;
        };
        let extra = [("database", database.as_str())];
        for (column, name, _, divisor) in columns {
            if let Some(value) = number(row, column) {
                batch.push(name, &labels.with(&extra), value / divisor);
            }
        }
        if let Some(value) = number(row, "avg_query_time") {
            batch.push(
                "prismwatch_pgbouncer_avg_query_seconds",
                &labels.with(&extra),
                value / 1e6,
            );
        }
        if let Some(value) = number(row, "avg_xact_time") {
            batch.push(
                "prismwatch_pgbouncer_avg_transaction_seconds",
                &labels.with(&extra),
                value / 1e6,
            );
        }
    }
}

fn emit_databases(databases: &[TextRow], labels: &TargetLabels, batch: &mut Batch) {
    let columns: [(&str, &str, &str); 4] = [
        (
            "pool_size",
            "pgbouncer_databases_pool_size",
            "Maximum number of server connections",
        ),
        (
            "reserve_pool",
            "pgbouncer_databases_reserve_pool_size",
            "Maximum number of additional connections for this database",
        ),
        (
            "max_connections",
            "pgbouncer_databases_max_connections",
            "Maximum number of allowed connections for this database",
        ),
        (
            "current_connections",
            "pgbouncer_databases_current_connections",
            "Current number of connections for this database",
        ),
    ];
    for (_, name, help) in columns {
        batch.family(name, MetricKind::Gauge, help);
    }
    for row in databases {
        let get = |column: &str| row.get(column).map(String::as_str).unwrap_or("");
        let extra = [
            ("name", get("name")),
            ("host", get("host")),
            ("port", get("port")),
            ("database", get("database")),
            ("force_user", get("force_user")),
            ("pool_mode", get("pool_mode")),
        ];
        for (column, name, _) in columns {
            if let Some(value) = number(row, column) {
                batch.push(name, &labels.with(&extra), value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(value: &str) -> TextRow {
        HashMap::from([("name".to_string(), value.to_string())])
    }

    #[test]
    fn an_answer_is_refused_past_its_row_or_byte_bound() {
        let mut rows = BoundedRows::default();
        for _ in 0..MAX_ROWS {
            rows.push(row("p")).expect("within the bound");
        }
        assert!(matches!(rows.push(row("p")), Err(BoundError::TooManyRows)));

        let mut rows = BoundedRows::default();
        let big = "x".repeat(1 << 20);
        for _ in 0..7 {
            rows.push(row(&big)).expect("within the bound");
        }
        assert!(matches!(rows.push(row(&big)), Err(BoundError::TooMuchText)));
        assert_eq!(rows.rows.len(), 7);
    }
}
