//! The outbox: every notification is committed to the store (together with the notification
//! log entry that decided it) before any attempt, then delivered at least once.
//!
//! One row per recipient (e-mail) or per webhook, so a 550 for one address fails that row
//! only. A row is marked delivered right after the server accepted it; the only duplicate is a
//! crash between that acceptance and the commit, and it carries the same Message-ID. 4xx,
//! network errors and timeouts are retried with exponential backoff; a permanent refusal is
//! recorded with the server's answer and not retried.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::email::{EmailError, Mailer};
use super::webhook::{self, HttpError, WebhookSettings};
use crate::store::{Store, StoreError};

/// First retry after this, doubling up to [`RETRY_MAX`].
pub const RETRY_FIRST: Duration = Duration::from_secs(1);
pub const RETRY_MAX: Duration = Duration::from_secs(30);
/// Delivered and failed rows are kept this long (for `prismwatch alerts` and inspection).
pub const KEEP_FINISHED: Duration = Duration::from_secs(24 * 3600);
/// Deliveries in flight at once.
const CONCURRENCY: usize = 8;
/// Rows read per look at the table.
const BATCH: usize = 64;

/// Which transport a row goes through; also the `integration` label of the self-metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Integration {
    Email,
    Webhook,
}

impl Integration {
    pub fn as_str(self) -> &'static str {
        match self {
            Integration::Email => "email",
            Integration::Webhook => "webhook",
        }
    }

    fn parse(text: &str) -> Integration {
        if text == "webhook" {
            Integration::Webhook
        } else {
            Integration::Email
        }
    }
}

/// What a row sends: the exact bytes, rendered once when the notification was decided.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Payload {
    Email { from: String, raw: String },
    Webhook { body: String },
}

/// A row to insert.
#[derive(Clone, Debug, PartialEq)]
pub struct NewEntry {
    pub integration: Integration,
    pub receiver: String,
    pub config_index: usize,
    pub target: String,
    pub group_key: String,
    pub message_id: String,
    pub payload: Payload,
}

/// A row to deliver.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    pub id: i64,
    pub new: NewEntry,
    pub created_at_ms: i64,
    pub attempts: u32,
}

/// The queue as the self-metrics and `prismwatch alerts` show it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QueueStats {
    pub pending: u64,
    pub oldest_created_at_ms: Option<i64>,
    pub failed: u64,
}

/// Inserts rows (inside the caller's transaction, so the log entry and the rows commit
/// together).
pub fn insert(connection: &Connection, entries: &[NewEntry], now_ms: i64) -> rusqlite::Result<()> {
    let mut statement = connection.prepare_cached(
        "INSERT INTO notify_outbox (integration, receiver, config_index, target, group_key, message_id, payload, created_at_ms, next_attempt_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8)",
    )?;
    for entry in entries {
        let payload = serde_json::to_string(&entry.payload)
            .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
        statement.execute(params![
            entry.integration.as_str(),
            entry.receiver,
            entry.config_index as i64,
            entry.target,
            entry.group_key,
            entry.message_id,
            payload,
            now_ms,
        ])?;
    }
    Ok(())
}

/// The ids of a group's rows, in order.
pub fn ids_of_group(connection: &Connection, group_key: &str) -> rusqlite::Result<Vec<i64>> {
    let mut statement = connection
        .prepare_cached("SELECT id FROM notify_outbox WHERE group_key = ?1 ORDER BY id")?;
    statement.query_map([group_key], |r| r.get(0))?.collect()
}

/// Where these rows stand: integration, target, state and the answer or last error.
pub fn outcomes(
    connection: &Connection,
    ids: &[i64],
) -> rusqlite::Result<Vec<super::actor::RowOutcome>> {
    let mut statement = connection.prepare_cached(
        "SELECT integration, target, state, coalesce(last_error, '') FROM notify_outbox WHERE id = ?1",
    )?;
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        out.push(statement.query_row([id], |r| {
            Ok(super::actor::RowOutcome {
                integration: r.get(0)?,
                target: r.get(1)?,
                state: r.get(2)?,
                answer: r.get(3)?,
            })
        })?);
    }
    Ok(out)
}

/// Pending rows due at `now_ms`, oldest first, except those in `skip` (in flight).
pub fn due(
    connection: &Connection,
    now_ms: i64,
    skip: &BTreeSet<i64>,
    limit: usize,
) -> rusqlite::Result<Vec<Entry>> {
    let mut statement = connection.prepare_cached(
        "SELECT id, integration, receiver, config_index, target, group_key, message_id, payload, created_at_ms, attempts
         FROM notify_outbox WHERE state = 'pending' AND next_attempt_ms <= ?1 ORDER BY next_attempt_ms, id LIMIT ?2",
    )?;
    let rows = statement.query_map(params![now_ms, (limit + skip.len()) as i64], |row| {
        let payload: String = row.get(7)?;
        let payload = serde_json::from_str(&payload).map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(7, rusqlite::types::Type::Text, Box::new(e))
        })?;
        Ok(Entry {
            id: row.get(0)?,
            new: NewEntry {
                integration: Integration::parse(&row.get::<_, String>(1)?),
                receiver: row.get(2)?,
                config_index: row.get::<_, i64>(3)? as usize,
                target: row.get(4)?,
                group_key: row.get(5)?,
                message_id: row.get(6)?,
                payload,
            },
            created_at_ms: row.get(8)?,
            attempts: row.get(9)?,
        })
    })?;
    let mut entries = Vec::new();
    for row in rows {
        let entry = row?;
        if !skip.contains(&entry.id) {
            entries.push(entry);
        }
        if entries.len() >= limit {
            break;
        }
    }
    Ok(entries)
}

/// When the next pending row is due.
pub fn next_due(connection: &Connection) -> rusqlite::Result<Option<i64>> {
    connection
        .query_row(
            "SELECT min(next_attempt_ms) FROM notify_outbox WHERE state = 'pending'",
            [],
            |row| row.get(0),
        )
        .optional()
        .map(Option::flatten)
}

/// Records the outcome of one attempt.
pub fn finish(
    connection: &Connection,
    id: i64,
    outcome: &Outcome,
    now_ms: i64,
) -> rusqlite::Result<()> {
    match outcome {
        Outcome::Delivered(answer) => connection.execute(
            "UPDATE notify_outbox SET state = 'delivered', attempts = attempts + 1, last_error = ?2, finished_at_ms = ?3 WHERE id = ?1",
            params![id, answer, now_ms],
        ),
        Outcome::Failed(error) => connection.execute(
            "UPDATE notify_outbox SET state = 'failed', attempts = attempts + 1, last_error = ?2, finished_at_ms = ?3 WHERE id = ?1",
            params![id, error, now_ms],
        ),
        Outcome::Retry { error, at_ms } => connection.execute(
            "UPDATE notify_outbox SET attempts = attempts + 1, last_error = ?2, next_attempt_ms = ?3 WHERE id = ?1",
            params![id, error, at_ms],
        ),
    }
    .map(|_| ())
}

/// Pending and failed counts and the oldest pending row.
pub fn stats(connection: &Connection) -> rusqlite::Result<QueueStats> {
    connection.query_row(
        "SELECT
            (SELECT count(*) FROM notify_outbox WHERE state = 'pending'),
            (SELECT min(created_at_ms) FROM notify_outbox WHERE state = 'pending'),
            (SELECT count(*) FROM notify_outbox WHERE state = 'failed')",
        [],
        |row| {
            Ok(QueueStats {
                pending: row.get::<_, i64>(0)? as u64,
                oldest_created_at_ms: row.get(1)?,
                failed: row.get::<_, i64>(2)? as u64,
            })
        },
    )
}

/// Deletes finished rows older than `cutoff_ms`.
pub fn gc(connection: &Connection, cutoff_ms: i64) -> rusqlite::Result<usize> {
    connection.execute(
        "DELETE FROM notify_outbox WHERE state != 'pending' AND finished_at_ms < ?1",
        params![cutoff_ms],
    )
}

/// What happened to one attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Delivered(String),
    Failed(String),
    Retry { error: String, at_ms: i64 },
}

/// The wait before attempt `attempts + 1`.
pub fn backoff(attempts: u32) -> Duration {
    let factor = 1u32 << attempts.min(16);
    (RETRY_FIRST * factor).min(RETRY_MAX)
}

/// The transports of the current configuration, by receiver name and config index.
#[derive(Default)]
pub struct Transports {
    pub email: BTreeMap<(String, usize), Mailer>,
    pub webhook: BTreeMap<(String, usize), WebhookSettings>,
}

/// Delivers one row. Never panics on input: every failure is an [`Outcome`].
pub async fn deliver(transports: &Transports, entry: &Entry, now_ms: i64) -> Outcome {
    let key = (entry.new.receiver.clone(), entry.new.config_index);
    let retry = |error: String| Outcome::Retry {
        error,
        at_ms: now_ms + backoff(entry.attempts).as_millis() as i64,
    };
    match &entry.new.payload {
        Payload::Email { from, raw } => {
            let Some(mailer) = transports.email.get(&key) else {
                return Outcome::Failed(format!(
                    "receiver {:?} has no email_configs entry {} any more (configuration reloaded)",
                    entry.new.receiver, entry.new.config_index
                ));
            };
            match mailer.send(from, &entry.new.target, raw.as_bytes()).await {
                Ok(answer) => Outcome::Delivered(answer),
                Err(error @ (EmailError::Permanent(_) | EmailError::Invalid(_))) => {
                    Outcome::Failed(error.to_string())
                }
                Err(EmailError::Transient(error)) => retry(error),
            }
        }
        Payload::Webhook { body } => {
            let Some(settings) = transports.webhook.get(&key) else {
                return Outcome::Failed(format!(
                    "receiver {:?} has no webhook_configs entry {} any more (configuration reloaded)",
                    entry.new.receiver, entry.new.config_index
                ));
            };
            match webhook::post_json(
                &settings.url,
                &settings.auth,
                body.clone().into_bytes(),
                settings.timeout,
            )
            .await
            {
                Ok(answer) => Outcome::Delivered(answer),
                Err(error @ (HttpError::Permanent(_) | HttpError::Invalid(_))) => {
                    Outcome::Failed(error.to_string())
                }
                Err(HttpError::Transient(error)) => retry(error),
            }
        }
    }
}

/// Runs the delivery loop until `cancel`: wakes on `wake` (a new row), on the next due time,
/// and when a delivery finishes.
pub async fn run(
    store: Store,
    transports: watch::Receiver<Arc<Transports>>,
    wake: Arc<Notify>,
    cancel: CancellationToken,
    now_ms: fn() -> i64,
) {
    let mut in_flight: BTreeSet<i64> = BTreeSet::new();
    let mut tasks: JoinSet<(i64, Integration, Outcome, f64)> = JoinSet::new();
    let mut gc_at = 0;
    // A start is a good moment to try again: what waited for a backoff is due now.
    let started = now_ms();
    if let Err(error) = store
        .call(move |c| {
            c.execute(
                "UPDATE notify_outbox SET next_attempt_ms = ?1 WHERE state = 'pending' AND next_attempt_ms > ?1",
                [started],
            )
        })
        .await
    {
        warn!(%error, "Cannot read the outbox at start; retrying in its loop.");
    }
    loop {
        let now = now_ms();
        if now >= gc_at {
            gc_at = now + 600_000;
            let cutoff = now - KEEP_FINISHED.as_millis() as i64;
            if let Ok(removed) = store.call(move |c| gc(c, cutoff)).await
                && removed > 0
            {
                debug!(removed, "Removed finished notifications from the outbox.");
            }
        }
        publish_stats(&store, now).await;
        let room = CONCURRENCY.saturating_sub(in_flight.len());
        let mut wait_ms = 5_000;
        if room > 0 {
            let skip = in_flight.clone();
            match store
                .call(move |c| Ok((due(c, now, &skip, room.min(BATCH))?, next_due(c)?)))
                .await
            {
                Ok((entries, next)) => {
                    for entry in entries {
                        in_flight.insert(entry.id);
                        let current = Arc::clone(&transports.borrow());
                        tasks.spawn(async move {
                            let started = tokio::time::Instant::now();
                            let outcome = deliver(&current, &entry, now_ms()).await;
                            (
                                entry.id,
                                entry.new.integration,
                                outcome,
                                started.elapsed().as_secs_f64(),
                            )
                        });
                    }
                    if let Some(next) = next {
                        wait_ms = (next - now).clamp(0, 5_000);
                    }
                }
                Err(error) => {
                    warn!(%error, "Cannot read the outbox; retrying in 5 s.");
                }
            }
        }
        let sleep = tokio::time::sleep(Duration::from_millis(wait_ms.max(10) as u64));
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = wake.notified() => {}
            _ = sleep, if in_flight.len() < CONCURRENCY => {}
            Some(joined) = tasks.join_next(), if !tasks.is_empty() => {
                if let Ok((id, integration, outcome, seconds)) = joined {
                    record(&store, id, integration, &outcome, seconds, now_ms()).await;
                    in_flight.remove(&id);
                }
            }
        }
        // Collect any other finished deliveries without waiting.
        while let Some(Ok((id, integration, outcome, seconds))) = tasks.try_join_next() {
            record(&store, id, integration, &outcome, seconds, now_ms()).await;
            in_flight.remove(&id);
        }
    }
    // Deliveries still in flight are abandoned; their rows stay pending and are sent again.
    tasks.abort_all();
}

async fn record(
    store: &Store,
    id: i64,
    integration: Integration,
    outcome: &Outcome,
    seconds: f64,
    now: i64,
) {
    let label = integration.as_str();
    metrics::counter!("alertmanager_notifications_total", "integration" => label).increment(1);
    metrics::histogram!("alertmanager_notification_latency_seconds", "integration" => label)
        .record(seconds);
    match outcome {
        Outcome::Delivered(answer) => {
            info!(id, integration = label, answer = %answer, "Notification delivered.")
        }
        Outcome::Failed(error) => {
            metrics::counter!("alertmanager_notifications_failed_total", "integration" => label)
                .increment(1);
            warn!(id, integration = label, %error, "Notification refused for good; not retried.");
        }
        Outcome::Retry { error, at_ms } => {
            metrics::counter!("alertmanager_notifications_failed_total", "integration" => label)
                .increment(1);
            warn!(id, integration = label, %error, retry_in_ms = at_ms - now, "Notification failed; retrying.");
        }
    }
    let outcome = outcome.clone();
    // A failed commit leaves the row pending: it is sent again (same Message-ID), never lost.
    let result: Result<(), StoreError> = store.call(move |c| finish(c, id, &outcome, now)).await;
    if let Err(error) = result {
        warn!(id, %error, "Cannot record a delivery; the notification will be sent again.");
    }
}

async fn publish_stats(store: &Store, now: i64) {
    if let Ok(stats) = store.call(|c| stats(c)).await {
        metrics::gauge!("prismwatch_notify_outbox_pending").set(stats.pending as f64);
        metrics::gauge!("prismwatch_notify_outbox_failed").set(stats.failed as f64);
        metrics::gauge!("prismwatch_notify_outbox_oldest_age_seconds").set(
            stats
                .oldest_created_at_ms
                .map_or(0.0, |t| (now - t).max(0) as f64 / 1000.0),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(target: &str) -> NewEntry {
        NewEntry {
            integration: Integration::Email,
            receiver: "oncall".into(),
            config_index: 0,
            target: target.into(),
            group_key: "{}:{}".into(),
            message_id: "1.0@host".into(),
            payload: Payload::Email {
                from: "a@example.com".into(),
                raw: "Subject: x\r\n\r\nbody".into(),
            },
        }
    }

    #[test]
    fn rows_survive_a_crash_and_finish_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("open");
        store
            .call_blocking(|c| insert(c, &[entry("a@x"), entry("b@x")], 1_000))
            .expect("insert");
        std::mem::forget(store);
        let store = Store::open(dir.path()).expect("reopen");
        let rows = store
            .call_blocking(|c| due(c, 1_000, &BTreeSet::new(), 10))
            .expect("due");
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].new, entry("a@x"));
        let (first, second) = (rows[0].id, rows[1].id);
        store
            .call_blocking(move |c| {
                finish(c, first, &Outcome::Delivered("250 OK".into()), 2_000)?;
                finish(
                    c,
                    second,
                    &Outcome::Retry {
                        error: "451".into(),
                        at_ms: 3_000,
                    },
                    2_000,
                )
            })
            .expect("finish");
        let now = store
            .call_blocking(|c| due(c, 2_500, &BTreeSet::new(), 10))
            .expect("due");
        assert!(
            now.is_empty(),
            "delivered is done, the retry is not due yet"
        );
        let later = store
            .call_blocking(|c| due(c, 3_000, &BTreeSet::new(), 10))
            .expect("due");
        assert_eq!(later.len(), 1);
        assert_eq!(later[0].attempts, 1);
        let stats = store.call_blocking(|c| stats(c)).expect("stats");
        assert_eq!(stats.pending, 1);
        assert_eq!(stats.oldest_created_at_ms, Some(1_000));
        assert_eq!(
            store.call_blocking(|c| next_due(c)).expect("next"),
            Some(3_000)
        );
    }

    #[test]
    fn in_flight_rows_are_skipped() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("open");
        store
            .call_blocking(|c| insert(c, &[entry("a@x"), entry("b@x")], 1_000))
            .expect("insert");
        let first = store
            .call_blocking(|c| due(c, 1_000, &BTreeSet::new(), 1))
            .expect("due");
        let skip: BTreeSet<i64> = first.iter().map(|e| e.id).collect();
        let rest = store
            .call_blocking(move |c| due(c, 1_000, &skip, 10))
            .expect("due");
        assert_eq!(rest.len(), 1);
        assert_eq!(rest[0].new.target, "b@x");
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        assert_eq!(backoff(0), Duration::from_secs(1));
        assert_eq!(backoff(3), Duration::from_secs(8));
        assert_eq!(backoff(40), RETRY_MAX);
    }

    #[tokio::test]
    async fn a_receiver_removed_by_a_reload_fails_the_row_with_a_reason() {
        let entry = Entry {
            id: 1,
            new: entry("a@x"),
            created_at_ms: 0,
            attempts: 0,
        };
        match deliver(&Transports::default(), &entry, 0).await {
            Outcome::Failed(reason) => assert!(reason.contains("oncall"), "{reason}"),
            other => panic!("expected a failure, got {other:?}"),
        }
    }
}
