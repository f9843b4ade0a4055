//! Usage rows from the application's own PostgreSQL table: a configured query run on an
//! interval, from a watermark kept in the spend state so each row counts once.
//!
//! The query gets `$1`, the watermark in seconds since the epoch (float8), and returns the
//! columns `provider`, `model`, `input_tokens`, `output_tokens`, `cached_tokens` (int8) and `at`
//! (float8 seconds since the epoch), plus any allowed label as a text column, e.g.
//! `SELECT provider, model, input_tokens, output_tokens, cached_tokens, feature,
//!  extract(epoch FROM created_at)::float8 AS at FROM llm_usage
//!  WHERE created_at > to_timestamp($1) ORDER BY created_at LIMIT 10000`.

use std::str::FromStr;

use sqlx::Row;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

use super::SpendTracker;
use super::ledger::UsageEvent;
use super::pricing::Tokens;
use crate::collector::{CollectError, Collector};
use crate::config::AiSqlSource;
use crate::model::{Batch, MetricKind};

/// See the module documentation.
pub struct SqlUsageCollector {
    /// The history source, `ai-sql:<name>`.
    history_source: String,
    /// The configured name, used in labels and the watermark.
    query_name: String,
    query: String,
    pool: PgPool,
    tracker: SpendTracker,
    rows_total: f64,
}

impl SqlUsageCollector {
    pub fn new(
        config: &AiSqlSource,
        tracker: SpendTracker,
    ) -> Result<SqlUsageCollector, CollectError> {
        let options = PgConnectOptions::from_str(config.dsn.expose())
            .map_err(|error| {
                CollectError::Other(format!("invalid PostgreSQL connection string: {error}"))
            })?
            .application_name("prismwatch");
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(config.schedule.timeout)
            .connect_lazy_with(options);
        Ok(SqlUsageCollector {
            history_source: format!("ai-sql:{}", config.name),
            query_name: config.name.clone(),
            query: config.query.clone(),
            pool,
            tracker,
            rows_total: 0.0,
        })
    }

    async fn poll(&mut self) -> Result<usize, CollectError> {
        let name = self.query_name.clone();
        let fail =
            |error: sqlx::Error| CollectError::Other(format!("AI usage query `{name}`: {error}"));
        let watermark = self.tracker.watermark(&self.query_name);
        let rows = sqlx::query(sqlx::AssertSqlSafe(self.query.clone()))
            .bind(watermark)
            .fetch_all(&self.pool)
            .await
            .map_err(fail)?;
        let allowed = self
            .tracker
            .with_config(|c| c.allowed_labels.clone())
            .unwrap_or_default();
        let mut events = Vec::with_capacity(rows.len());
        let mut newest = watermark;
        for (index, row) in rows.iter().enumerate() {
            let column = |name: &str| -> Result<i64, CollectError> {
                row.try_get::<i64, _>(name).map_err(|e| {
                    CollectError::Other(format!(
                        "AI usage query `{}`: row {index}: column `{name}`: {e}",
                        self.query_name
                    ))
                })
            };
            let at: f64 = row.try_get("at").map_err(|e| {
                CollectError::Other(format!(
                    "AI usage query `{}`: row {index}: column `at`: {e}",
                    self.query_name
                ))
            })?;
            let mut event = UsageEvent {
                provider: row.try_get("provider").unwrap_or_else(|_| "unknown".into()),
                model: row.try_get("model").unwrap_or_else(|_| "unknown".into()),
                tokens: Tokens {
                    input: column("input_tokens")? as f64,
                    output: column("output_tokens")? as f64,
                    cached: row.try_get::<i64, _>("cached_tokens").unwrap_or(0) as f64,
                },
                requests: 1.0,
                ..UsageEvent::default()
            };
            for label in &allowed {
                if let Ok(value) = row.try_get::<String, _>(label.as_str()) {
                    event.labels.insert(label.clone(), value);
                }
            }
            newest = newest.max(at);
            events.push((event, (at * 1000.0) as i64));
        }
        let count = events.len();
        self.tracker
            .ingest_with_watermark(events, &self.query_name, newest, crate::collector::now_ms())
            .map_err(|error| {
                CollectError::Other(format!("AI usage query `{}`: {error}", self.query_name))
            })?;
        Ok(count)
    }
}

impl Collector for SqlUsageCollector {
    fn name(&self) -> &str {
        &self.history_source
    }

    async fn collect(&mut self) -> Result<Batch, CollectError> {
        let rows = self.poll().await?;
        self.rows_total += rows as f64;
        let mut batch = Batch::new();
        let labels = [("source", self.query_name.as_str())];
        batch.single_labelled(
            "prismwatch_ai_sql_source_up",
            MetricKind::Gauge,
            "Whether the last run of an AI usage query succeeded.",
            &labels,
            1.0,
        );
        batch.single_labelled(
            "prismwatch_ai_sql_source_rows_total",
            MetricKind::Counter,
            "Usage rows read by an AI usage query since the daemon started.",
            &labels,
            self.rows_total,
        );
        Ok(batch)
    }

    fn failure_batch(&self) -> Batch {
        let mut batch = Batch::new();
        batch.single_labelled(
            "prismwatch_ai_sql_source_up",
            MetricKind::Gauge,
            "Whether the last run of an AI usage query succeeded.",
            &[("source", self.query_name.as_str())],
            0.0,
        );
        batch
    }
}
