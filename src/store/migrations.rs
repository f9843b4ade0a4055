//! Versioned schema changes, applied in order at open. The version lives in SQLite's
//! `PRAGMA user_version`, so the `sqlite3` CLI shows it too. A migration is never edited once
//! released: a change is a new entry at the end. Each component namespaces its tables
//! (`notify_*`, `rules_*`, later `remediate_*`, `history_*`).

use rusqlite::Connection;

/// One step of the schema.
pub struct Migration {
    /// `user_version` after this step; the list is in increasing order from 1.
    pub version: u32,
    /// What the step is for, in error messages.
    pub name: &'static str,
    pub sql: &'static str,
}

/// Every migration, oldest first.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "notifications: outbox, notification log, silences, alerts",
        sql: r#"
        -- Every notification to one recipient (or webhook), written before any attempt.
        CREATE TABLE notify_outbox (
            id              INTEGER PRIMARY KEY AUTOINCREMENT,
            integration     TEXT NOT NULL,            -- email | webhook
            receiver        TEXT NOT NULL,
            config_index    INTEGER NOT NULL,         -- which email_configs / webhook_configs entry
            target          TEXT NOT NULL,            -- the recipient address or the URL
            group_key       TEXT NOT NULL,
            message_id      TEXT NOT NULL,            -- stable across retries and restarts
            payload         TEXT NOT NULL,            -- the rendered message (JSON)
            created_at_ms   INTEGER NOT NULL,
            next_attempt_ms INTEGER NOT NULL,
            attempts        INTEGER NOT NULL DEFAULT 0,
            state           TEXT NOT NULL DEFAULT 'pending'
                            CHECK (state IN ('pending', 'delivered', 'failed')),
            last_error      TEXT,
            finished_at_ms  INTEGER
        );
        CREATE INDEX notify_outbox_due ON notify_outbox (state, next_attempt_ms);

        -- What was last notified per group and receiver (Alertmanager's nflog), for dedup.
        CREATE TABLE notify_log (
            group_key       TEXT NOT NULL,
            receiver        TEXT NOT NULL,
            firing          TEXT NOT NULL,            -- JSON array of fingerprints
            resolved        TEXT NOT NULL,            -- JSON array of fingerprints
            sent_at_ms      INTEGER NOT NULL,
            PRIMARY KEY (group_key, receiver)
        );

        CREATE TABLE notify_silences (
            id              TEXT PRIMARY KEY,
            body            TEXT NOT NULL,            -- JSON: matchers, times, author, comment
            ends_at_ms      INTEGER NOT NULL,
            updated_at_ms   INTEGER NOT NULL
        );

        -- Alerts received from the rules, with their timers.
        CREATE TABLE notify_alerts (
            fingerprint     TEXT PRIMARY KEY,         -- 16 hex digits
            body            TEXT NOT NULL,            -- JSON: labels, annotations, times
            ends_at_ms      INTEGER NOT NULL,
            updated_at_ms   INTEGER NOT NULL
        );
    "#,
    },
    Migration {
        version: 2,
        name: "rules: alert state of each rule group",
        sql: r#"
        -- One row per rule group (`file;name`), written at each alert transition, so a restart
        -- never brings back an alert that had resolved (or forgets one that fired).
        CREATE TABLE rules_state (
            group_key       TEXT PRIMARY KEY,
            body            TEXT NOT NULL,            -- JSON: the group's alerts by rule
            updated_at_ms   INTEGER NOT NULL
        );
    "#,
    },
];

/// Applies the migrations newer than the file's `user_version`, each in its own transaction.
/// Returns how many were applied. A file newer than this build is refused rather than guessed.
pub fn apply(connection: &mut Connection, migrations: &[Migration]) -> Result<usize, String> {
    let current: u32 = connection
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .map_err(|e| format!("cannot read the schema version: {e}"))?;
    let latest = migrations.last().map_or(0, |m| m.version);
    if current > latest {
        return Err(format!(
            "the file has schema version {current}, newer than this build knows ({latest}); run the newer prismwatch or move the file away"
        ));
    }
    let mut applied = 0;
    for migration in migrations.iter().filter(|m| m.version > current) {
        let failed = |e: rusqlite::Error| {
            format!(
                "schema migration {} ({}) failed: {e}",
                migration.version, migration.name
            )
        };
        let transaction = connection.transaction().map_err(failed)?;
        transaction.execute_batch(migration.sql).map_err(failed)?;
        transaction
            .pragma_update(None, "user_version", migration.version)
            .map_err(failed)?;
        transaction.commit().map_err(failed)?;
        applied += 1;
    }
    Ok(applied)
}
