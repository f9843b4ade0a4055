//! The PostgreSQL collector: connections and pool use, per-database statistics, locks,
//! replication, long-running queries, and slow statements from pg_stat_statements, under
//! postgres_exporter's names where it has the metric.
//!
//! Two round trips per collection on one persistent connection: a JSON snapshot of everything
//! (`snapshot.sql`) and the pg_stat_statements counters (without query texts; texts are fetched
//! once per new top statement). The monitoring role needs `pg_monitor` (see README).

mod cluster;
mod mask;
mod snapshot;
mod statements;
mod tables;

use std::collections::{BTreeSet, HashMap};
use std::str::FromStr;
use std::time::Duration;

use serde_json::json;
use sqlx::Connection;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions};
use tracing::{info, warn};

pub use statements::{
    StatementDelta, StatementKey, StatementTotals, StatementTracker, top_by_interval_time,
};

use super::wire_guard::{Limits, WireGuard};
use super::{CollectError, Collector, StatusBoard, TargetLabels};
use crate::config::PostgresTarget;
use crate::model::{Batch, MetricKind};

/// Query texts are cut to this many characters. pg_stat_statements has already replaced the
/// constants of planned statements with `$1`, `$2`, ...; utility statements' literals are masked
/// by [`mask::mask_literals`] before a text is kept.
const QUERY_TEXT_LIMIT: usize = 500;

/// How often database sizes are read (they change slowly and cost the most to read).
const SIZE_REFRESH: Duration = Duration::from_secs(300);

/// See the module documentation.
pub struct PostgresCollector {
    source: String,
    labels: TargetLabels,
    target: PostgresTarget,
    pool: PgPool,
    /// Every connection goes through the guard, which bounds what the server can make us read.
    guard: std::sync::Arc<WireGuard>,
    status: StatusBoard,
    /// `server_version_num` and the snapshot query for it, set once per connection generation.
    server_version: Option<(i64, std::sync::Arc<str>)>,
    statements: StatementTracker,
    texts: HashMap<i64, String>,
    slow: BTreeSet<i64>,
    previous_hits: HashMap<i64, (f64, f64)>,
    /// Database sizes and when they were read: pg_database_size() stats every file of every
    /// database, the most expensive query by far, so it runs every [`SIZE_REFRESH`] only.
    sizes: Vec<(String, f64)>,
    sizes_read_at: Option<tokio::time::Instant>,
    /// Role and database names by oid, for the statements exported.
    users: HashMap<i64, String>,
    databases: HashMap<i64, String>,
    warned_missing_extension: bool,
}

impl PostgresCollector {
    /// Builds the collector; it connects lazily, so a server that is down at start is reported
    /// with `pg_up 0` instead of stopping the daemon.
    pub fn new(
        target: PostgresTarget,
        status: StatusBoard,
    ) -> Result<PostgresCollector, CollectError> {
        let options = connect_options(target.dsn.expose(), target.common.schedule.timeout)?;
        let guard = WireGuard::new(
            options,
            target.dsn.expose(),
            Limits::collector(target.common.schedule.timeout),
        )
        .map_err(|error| {
            CollectError::Other(format!("PostgreSQL {}: {error}", target.common.server))
        })?;
        let pool = PgPoolOptions::new()
            // One connection serves every query in sequence; a second covers the one left
            // cleaning up after a timed-out query.
            .max_connections(2)
            .min_connections(0)
            .acquire_timeout(target.common.schedule.timeout)
            .idle_timeout(None)
            .test_before_acquire(false)
            // A slow acquire is the server being slow, which the collection's own timeout and
            // pg_up report; sqlx's warning for it is noise.
            .acquire_slow_level(log::LevelFilter::Off)
            .acquire_time_level(log::LevelFilter::Off)
            .connect_lazy_with(guard.options().clone());
        Ok(PostgresCollector {
            source: format!("postgres:{}", target.common.server),
            labels: TargetLabels::new(&target.common),
            target,
            pool,
            guard: std::sync::Arc::new(guard),
            status,
            server_version: None,
            statements: StatementTracker::default(),
            texts: HashMap::new(),
            slow: BTreeSet::new(),
            previous_hits: HashMap::new(),
            sizes: Vec::new(),
            sizes_read_at: None,
            users: HashMap::new(),
            databases: HashMap::new(),
            warned_missing_extension: false,
        })
    }

    async fn collect_batch(&mut self) -> Result<Batch, CollectError> {
        let server = self.labels.server().to_string();
        self.guard.serve();
        let guard = std::sync::Arc::clone(&self.guard);
        let context = format!("PostgreSQL {server}");
        let fail = |error: sqlx::Error| guard.collect_error(&context, error);
        if self.pool.size() == 0 {
            // The pool retries a failed connect until its timeout and then says only "pool
            // timed out": one direct attempt first gives the root cause at once.
            let probe = PgConnection::connect_with(self.guard.options())
                .await
                .map_err(&fail)?;
            let _ = probe.close().await;
        }
        let mut connection = self.pool.acquire().await.map_err(&fail)?;
        let (version, sql) = match &self.server_version {
            Some((version, sql)) => (*version, std::sync::Arc::clone(sql)),
            None => {
                let version: i32 =
                    sqlx::query_scalar("SELECT current_setting('server_version_num')::int")
                        .fetch_one(&mut *connection)
                        .await
                        .map_err(&fail)?;
                let version = i64::from(version);
                if version < 100_000 {
                    return Err(CollectError::Other(format!(
                        "PostgreSQL {server}: version {version} is not supported; prismwatch needs PostgreSQL 10 or newer"
                    )));
                }
                // The text only depends on the version: built once, prepared once by sqlx.
                let sql: std::sync::Arc<str> = snapshot::snapshot_sql(version).into();
                self.server_version = Some((version, std::sync::Arc::clone(&sql)));
                (version, sql)
            }
        };
        let text: String = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .bind(self.target.long_running_threshold.as_secs_f64())
            .bind(self.target.max_tables as i64)
            .fetch_one(&mut *connection)
            .await
            .map_err(&fail)?;
        let mut snapshot: snapshot::Snapshot = serde_json::from_str(&text).map_err(|error| {
            CollectError::Other(format!(
                "PostgreSQL {server}: unexpected snapshot ({error})"
            ))
        })?;
        snapshot.tables =
            tables::busiest(std::mem::take(&mut snapshot.tables), self.target.max_tables);

        let mut batch = Batch::new();
        batch.single_labelled("pg_up", MetricKind::Gauge, "Whether the last scrape of metrics from PostgreSQL was able to connect to the server (1 for yes, 0 for no).", &self.labels.with(&[]), 1.0);
        let sizes_due = self
            .sizes_read_at
            .is_none_or(|at| at.elapsed() >= SIZE_REFRESH);
        if sizes_due {
            self.sizes = sqlx::query_as(
                "SELECT datname::text, pg_database_size(oid)::float8 FROM pg_database ORDER BY oid LIMIT 10000",
            )
            .fetch_all(&mut *connection)
            .await
            .map_err(&fail)?;
            self.sizes_read_at = Some(tokio::time::Instant::now());
        }
        snapshot::emit(
            &snapshot,
            &self.labels,
            &mut self.previous_hits,
            &self.sizes,
            &mut batch,
        );
        self.emit_pool(&mut batch);

        let mut status = json!({
            "server_version": snapshot::short_version(snapshot.version_num),
            "pg_stat_statements": snapshot.has_statements,
            "long_running": snapshot.sessions.long_running,
        });
        batch.single_labelled(
            "prismwatch_postgres_stat_statements_available",
            MetricKind::Gauge,
            "Whether pg_stat_statements is installed in the monitored database (slow-query metrics need it).",
            &self.labels.with(&[]),
            f64::from(u8::from(snapshot.has_statements)),
        );
        if snapshot.has_statements {
            let top = self
                .collect_statements(&mut connection, version, &mut batch)
                .await
                .map_err(&fail)?;
            status["statements"] = top;
        } else if !self.warned_missing_extension {
            warn!(server = %server, "pg_stat_statements is not installed in the monitored database; slow-query metrics are off. Add it to shared_preload_libraries and run CREATE EXTENSION pg_stat_statements.");
            self.warned_missing_extension = true;
        }
        self.status.publish(&self.source, status);
        Ok(batch)
    }

    fn emit_pool(&self, batch: &mut Batch) {
        let size = self.pool.size() as f64;
        let idle = self.pool.num_idle() as f64;
        batch.family(
            "prismwatch_postgres_pool_connections",
            MetricKind::Gauge,
            "Connections of prismwatch's own pool to this server, by state.",
        );
        batch.push(
            "prismwatch_postgres_pool_connections",
            &self.labels.with(&[("state", "idle")]),
            idle,
        );
        batch.push(
            "prismwatch_postgres_pool_connections",
            &self.labels.with(&[("state", "in_use")]),
            (size - idle).max(0.0),
        );
        batch.single_labelled(
            "prismwatch_postgres_pool_max_connections",
            MetricKind::Gauge,
            "Size limit of prismwatch's own pool to this server.",
            &self.labels.with(&[]),
            2.0,
        );
    }

    /// Reads pg_stat_statements, exports the top N of the interval and the slow count, and
    /// returns the top N with their texts for the status API.
    async fn collect_statements(
        &mut self,
        connection: &mut sqlx::PgConnection,
        version: i64,
        batch: &mut Batch,
    ) -> Result<serde_json::Value, sqlx::Error> {
        // Column names changed in 13 (total_exec_time) and 17 (shared_blk_*_time).
        let sql = if version >= 170_000 {
            "SELECT queryid, userid::int8, dbid::int8, calls, total_exec_time, rows, shared_blks_hit, shared_blks_read, shared_blk_read_time, shared_blk_write_time FROM pg_stat_statements(false) WHERE queryid IS NOT NULL LIMIT 50000"
        } else if version >= 130_000 {
            "SELECT queryid, userid::int8, dbid::int8, calls, total_exec_time, rows, shared_blks_hit, shared_blks_read, blk_read_time, blk_write_time FROM pg_stat_statements(false) WHERE queryid IS NOT NULL LIMIT 50000"
        } else {
            "SELECT queryid, userid::int8, dbid::int8, calls, total_time, rows, shared_blks_hit, shared_blks_read, blk_read_time, blk_write_time FROM pg_stat_statements(false) WHERE queryid IS NOT NULL LIMIT 50000"
        };
        type Row = (i64, i64, i64, i64, f64, i64, i64, i64, f64, f64);
        let rows: Vec<Row> = sqlx::query_as(sql).fetch_all(&mut *connection).await?;
        let tracked = rows.len();
        let current: Vec<(StatementKey, StatementTotals)> = rows
            .into_iter()
            .map(
                |(queryid, userid, dbid, calls, exec_ms, rows, hit, read, read_ms, write_ms)| {
                    (
                        StatementKey {
                            queryid,
                            userid,
                            dbid,
                        },
                        StatementTotals {
                            calls: calls as f64,
                            exec_ms,
                            rows: rows as f64,
                            shared_blks_hit: hit as f64,
                            shared_blks_read: read as f64,
                            blk_read_ms: read_ms,
                            blk_write_ms: write_ms,
                        },
                    )
                },
            )
            .collect();
        batch.single_labelled(
            "prismwatch_postgres_statements_tracked",
            MetricKind::Gauge,
            "Entries in pg_stat_statements.",
            &self.labels.with(&[]),
            tracked as f64,
        );
        let Some(deltas) = self.statements.update(current) else {
            return Ok(json!([]));
        };
        let threshold = self.target.slow_statement_threshold.as_secs_f64();
        let slow: BTreeSet<i64> = deltas
            .iter()
            .filter(|d| d.delta.calls > 0.0 && d.delta.mean_seconds() > threshold)
            .map(|d| d.key.queryid)
            .collect();
        batch.single_labelled(
            "prismwatch_postgres_slow_statements",
            MetricKind::Gauge,
            "Statements whose mean execution time in the last interval exceeded the slow-statement threshold.",
            &self.labels.with(&[]),
            slow.len() as f64,
        );
        let top = top_by_interval_time(&deltas, self.target.top_statements);
        // Role and database names for the entries shown; read again only when one is unknown.
        let shown_keys = top.iter().map(|d| d.key).chain(
            deltas
                .iter()
                .filter(|d| slow.contains(&d.key.queryid))
                .map(|d| d.key),
        );
        if shown_keys
            .clone()
            .any(|k| !self.users.contains_key(&k.userid) || !self.databases.contains_key(&k.dbid))
        {
            // Only the oids shown, so the answer is bounded by the top N, not by the roles and
            // databases the server has.
            let (user_ids, database_ids): (Vec<i64>, Vec<i64>) =
                shown_keys.map(|k| (k.userid, k.dbid)).unzip();
            let users: Vec<(i64, String)> = sqlx::query_as(
                "SELECT oid::int8, rolname::text FROM pg_roles WHERE oid::int8 = ANY($1)",
            )
            .bind(&user_ids)
            .fetch_all(&mut *connection)
            .await?;
            let databases: Vec<(i64, String)> = sqlx::query_as(
                "SELECT oid::int8, datname::text FROM pg_database WHERE oid::int8 = ANY($1)",
            )
            .bind(&database_ids)
            .fetch_all(&mut *connection)
            .await?;
            // Names of entries no longer shown are dropped, so the maps stay bounded too.
            self.users = users.into_iter().collect();
            self.databases = databases.into_iter().collect();
        }
        let name = |map: &HashMap<i64, String>, id: i64| {
            map.get(&id).cloned().unwrap_or_else(|| id.to_string())
        };
        let missing: Vec<i64> = top
            .iter()
            .map(|d| d.key.queryid)
            .chain(slow.iter().copied())
            .filter(|id| !self.texts.contains_key(id))
            .collect();
        if !missing.is_empty() {
            let texts: Vec<(i64, String)> = sqlx::query_as(
                "SELECT queryid, left(query, $2) FROM pg_stat_statements WHERE queryid = ANY($1)",
            )
            .bind(&missing)
            .bind(QUERY_TEXT_LIMIT as i32)
            .fetch_all(&mut *connection)
            .await?;
            // Utility statements (ALTER ROLE ... PASSWORD, SET) keep their literals in
            // pg_stat_statements: mask them before the text goes anywhere.
            self.texts.extend(
                texts
                    .into_iter()
                    .map(|(id, text)| (id, mask::mask_literals(&text))),
            );
        }
        // Keep texts only for what is shown, so the cache stays bounded.
        let shown: BTreeSet<i64> = top
            .iter()
            .map(|d| d.key.queryid)
            .chain(slow.iter().copied())
            .collect();
        self.texts.retain(|id, _| shown.contains(id));
        for id in slow.difference(&self.slow) {
            if let Some(delta) = deltas.iter().find(|d| d.key.queryid == *id) {
                info!(
                    server = %self.labels.server(),
                    queryid = id,
                    datname = %name(&self.databases, delta.key.dbid),
                    user = %name(&self.users, delta.key.userid),
                    mean_seconds = delta.delta.mean_seconds(),
                    calls = delta.delta.calls,
                    query = %self.texts.get(id).map(String::as_str).unwrap_or(""),
                    "Statement became slow."
                );
            }
        }
        self.slow = slow;
        let named: Vec<(&StatementDelta, String, String)> = top
            .iter()
            .map(|d| {
                (
                    *d,
                    name(&self.users, d.key.userid),
                    name(&self.databases, d.key.dbid),
                )
            })
            .collect();
        emit_top(&named, &self.labels, batch);
        Ok(top
            .iter()
            .map(|d| {
                json!({
                    "queryid": d.key.queryid.to_string(),
                    "user": name(&self.users, d.key.userid),
                    "datname": name(&self.databases, d.key.dbid),
                    "calls": d.delta.calls,
                    "seconds": d.delta.exec_ms / 1000.0,
                    "mean_seconds": d.delta.mean_seconds(),
                    "rows": d.delta.rows,
                    "query": self.texts.get(&d.key.queryid),
                })
            })
            .collect())
    }
}

/// Exports the top statements, each with its role and database name.
fn emit_top(top: &[(&StatementDelta, String, String)], labels: &TargetLabels, batch: &mut Batch) {
    let families: [(&str, MetricKind, &str); 10] = [
        (
            "pg_stat_statements_calls_total",
            MetricKind::Counter,
            "Number of times executed",
        ),
        (
            "pg_stat_statements_seconds_total",
            MetricKind::Counter,
            "Total time spent in the statement, in seconds",
        ),
        (
            "pg_stat_statements_rows_total",
            MetricKind::Counter,
            "Total number of rows retrieved or affected by the statement",
        ),
        (
            "pg_stat_statements_block_read_seconds_total",
            MetricKind::Counter,
            "Total time the statement spent reading blocks, in seconds",
        ),
        (
            "pg_stat_statements_block_write_seconds_total",
            MetricKind::Counter,
            "Total time the statement spent writing blocks, in seconds",
        ),
        (
            "prismwatch_postgres_statement_calls",
            MetricKind::Gauge,
            "Calls of a top statement in the last interval.",
        ),
        (
            "prismwatch_postgres_statement_seconds",
            MetricKind::Gauge,
            "Execution time a top statement spent in the last interval.",
        ),
        (
            "prismwatch_postgres_statement_mean_seconds",
            MetricKind::Gauge,
            "Mean execution time of a top statement in the last interval.",
        ),
        (
            "prismwatch_postgres_statement_shared_blocks_hit",
            MetricKind::Gauge,
            "Shared buffer hits of a top statement in the last interval.",
        ),
        (
            "prismwatch_postgres_statement_shared_blocks_read",
            MetricKind::Gauge,
            "Shared blocks read by a top statement in the last interval.",
        ),
    ];
    for (name, kind, help) in families {
        batch.family(name, kind, help);
    }
    for (delta, user, datname) in top {
        let queryid = delta.key.queryid.to_string();
        let labels = labels.with(&[
            ("user", user.as_str()),
            ("datname", datname.as_str()),
            ("queryid", &queryid),
        ]);
        let (totals, interval) = (&delta.totals, &delta.delta);
        batch.push("pg_stat_statements_calls_total", &labels, totals.calls);
        batch.push(
            "pg_stat_statements_seconds_total",
            &labels,
            totals.exec_ms / 1000.0,
        );
        batch.push("pg_stat_statements_rows_total", &labels, totals.rows);
        batch.push(
            "pg_stat_statements_block_read_seconds_total",
            &labels,
            totals.blk_read_ms / 1000.0,
        );
        batch.push(
            "pg_stat_statements_block_write_seconds_total",
            &labels,
            totals.blk_write_ms / 1000.0,
        );
        batch.push(
            "prismwatch_postgres_statement_calls",
            &labels,
            interval.calls,
        );
        batch.push(
            "prismwatch_postgres_statement_seconds",
            &labels,
            interval.exec_ms / 1000.0,
        );
        batch.push(
            "prismwatch_postgres_statement_mean_seconds",
            &labels,
            interval.mean_seconds(),
        );
        batch.push(
            "prismwatch_postgres_statement_shared_blocks_hit",
            &labels,
            interval.shared_blks_hit,
        );
        batch.push(
            "prismwatch_postgres_statement_shared_blocks_read",
            &labels,
            interval.shared_blks_read,
        );
    }
}

impl Collector for PostgresCollector {
    fn name(&self) -> &str {
        &self.source
    }

    async fn collect(&mut self) -> Result<Batch, CollectError> {
        let result = self.collect_batch().await;
        if result.is_err() {
            self.status.mark_down(&self.source);
            // The server may have restarted or been replaced: re-read its version and restart
            // statement deltas from a fresh baseline.
            self.server_version = None;
            self.statements.reset();
        }
        result
    }

    fn failure_batch(&self) -> Batch {
        let mut batch = Batch::new();
        batch.single_labelled("pg_up", MetricKind::Gauge, "Whether the last scrape of metrics from PostgreSQL was able to connect to the server (1 for yes, 0 for no).", &self.labels.with(&[]), 0.0);
        batch
    }
}

/// Connection options: the DSN plus an application name and server-side time limits, so a
/// query the scheduler gave up on does not keep running on the server.
fn connect_options(dsn: &str, timeout: Duration) -> Result<PgConnectOptions, CollectError> {
    let options = PgConnectOptions::from_str(dsn).map_err(|error| {
        CollectError::Other(format!("invalid PostgreSQL connection string: {error}"))
    })?;
    let milliseconds = timeout.as_millis().max(1);
    Ok(options.application_name("prismwatch").options([
        ("statement_timeout", format!("{milliseconds}")),
        ("lock_timeout", format!("{milliseconds}")),
    ]))
}
