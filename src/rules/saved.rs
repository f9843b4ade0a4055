//! The rules' alert state in the state store (`rules_state`, one JSON row per group). A group's
//! row is written when one of its alerts changes state, before the change goes to the
//! notifier, so a `kill -9` can neither bring back an alert that had resolved nor forget one
//! that fired; values and last-seen times are written every few seconds with everything else.
//!
//! Earlier versions kept the state in `rules-state.json`, saved on a timer. That file is read
//! once, into an empty table, and renamed to `rules-state.json.migrated`.

use std::collections::BTreeMap;
use std::path::Path;

use rusqlite::{Connection, params};
use tracing::{error, info, warn};

use super::engine::GroupState;
use crate::store::Store;

/// The alert-state file of earlier versions, in the state directory.
pub const LEGACY_FILE: &str = "rules-state.json";

/// Alert state by group key (`file;name`).
pub type States = BTreeMap<String, GroupState>;

/// A group's state as stored: its key and JSON body.
pub type Row = (String, String);

/// Serialises a group's state for [`write`].
pub fn row(key: &str, state: &GroupState) -> Result<Row, serde_json::Error> {
    Ok((key.to_string(), serde_json::to_string(state)?))
}

/// Writes (or replaces) the rows of these groups, in one transaction.
pub fn write(connection: &mut Connection, rows: &[Row], now_ms: i64) -> rusqlite::Result<()> {
    let transaction = connection.transaction()?;
    upsert(&transaction, rows, now_ms)?;
    transaction.commit()
}

/// Writes `rows` and drops the groups that are not in `live` (no longer loaded), in one
/// transaction.
pub fn write_live(
    connection: &mut Connection,
    rows: &[Row],
    live: &[String],
    now_ms: i64,
) -> rusqlite::Result<()> {
    let transaction = connection.transaction()?;
    let stored: Vec<String> = transaction
        .prepare("SELECT group_key FROM rules_state")?
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    for key in stored.iter().filter(|k| !live.contains(k)) {
        transaction.execute("DELETE FROM rules_state WHERE group_key = ?1", [key])?;
    }
    upsert(&transaction, rows, now_ms)?;
    transaction.commit()
}

fn upsert(
    transaction: &rusqlite::Transaction<'_>,
    rows: &[Row],
    now_ms: i64,
) -> rusqlite::Result<()> {
    let mut statement = transaction.prepare_cached(
        "INSERT INTO rules_state (group_key, body, updated_at_ms) VALUES (?1, ?2, ?3)
         ON CONFLICT (group_key) DO UPDATE SET body = excluded.body, updated_at_ms = excluded.updated_at_ms",
    )?;
    for (key, body) in rows {
        statement.execute(params![key, body, now_ms])?;
    }
    Ok(())
}

/// Every stored group, and the keys of rows that could not be parsed (those groups start with
/// no state; their row is written over at the next change).
pub fn read(connection: &Connection) -> rusqlite::Result<(States, Vec<String>)> {
    let mut statement = connection.prepare("SELECT group_key, body FROM rules_state")?;
    let rows = statement.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
    let (mut states, mut unreadable) = (States::new(), Vec::new());
    for row in rows {
        let (key, body) = row?;
        match serde_json::from_str(&body) {
            Ok(state) => {
                states.insert(key, state);
            }
            Err(_) => unreadable.push(key),
        }
    }
    Ok((states, unreadable))
}

/// The saved state: the store's rows, or on first start after an upgrade the legacy file's,
/// copied into the store. Problems are logged; the rules then start with what could be read.
/// Blocking (the store's thread does the work): called once, at start, before any rule runs.
pub fn restore(store: &Store, state_dir: &Path, now_ms: i64) -> States {
    let (mut states, unreadable) = match store.call_blocking(|c| read(c)) {
        Ok(found) => found,
        Err(problem) => {
            error!(error = %problem, "Cannot read the saved alert state; alerts start with no state.");
            (States::new(), Vec::new())
        }
    };
    for key in &unreadable {
        error!(group = %key, store = %store.path().display(), "The saved alert state of a rule group is unreadable; its alerts start with no state.");
    }
    let legacy = state_dir.join(LEGACY_FILE);
    use crate::state_file::Loaded;
    match crate::state_file::load_json::<States>(&legacy) {
        Loaded::Missing => {}
        Loaded::Read(old) if states.is_empty() && unreadable.is_empty() => {
            let rows: Result<Vec<Row>, _> = old.iter().map(|(k, s)| row(k, s)).collect();
            let copied = match rows {
                Ok(rows) => store
                    .call_blocking(move |c| write(c, &rows, now_ms))
                    .map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            match copied {
                Ok(()) => {
                    info!(from = %legacy.display(), groups = old.len(), "Moved the saved alert state into the state store.");
                    retire(&legacy);
                }
                Err(problem) => {
                    warn!(from = %legacy.display(), error = %problem, "Cannot copy the saved alert state into the state store; using it from the file this time and trying again at the next start.");
                }
            }
            states = old;
        }
        Loaded::Read(_) => {
            info!(file = %legacy.display(), "The state store already holds the alert state; the older state file is not used.");
            retire(&legacy);
        }
        Loaded::SetAside { error, kept_as } => {
            error!(path = %legacy.display(), kept_as = %kept_as.display(), %error, "The saved alert state is unreadable; it was moved aside and alerts start with no state.");
        }
        Loaded::Stuck { error } => {
            error!(path = %legacy.display(), %error, "The saved alert state is unreadable and cannot be moved aside; it is left as it is and ignored (the state store holds the alert state now).");
        }
    }
    states
}

/// Renames the legacy file to `<name>.migrated`, so it is read once.
fn retire(legacy: &Path) {
    let mut name = legacy.as_os_str().to_owned();
    name.push(".migrated");
    if let Err(problem) = std::fs::rename(legacy, &name) {
        warn!(path = %legacy.display(), error = %problem, "Cannot rename the older alert state file; it is read again at the next start.");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::alert::{Alert, AlertState, RuleAlerts};

    fn state_with_value(value: f64, state: AlertState) -> GroupState {
        let alert = Alert {
            labels: vec![("alertname".into(), "X".into())],
            state,
            value,
            active_at: 1_000,
            fired_at: Some(2_000),
            resolved_at: (state == AlertState::Resolved).then_some(4_000),
            keep_firing_since: None,
            last_seen: 3_000,
            hold_from: None,
            annotations: Vec::new(),
        };
        GroupState {
            rules: [("r".to_string(), RuleAlerts::from(vec![alert]))].into(),
        }
    }

    #[test]
    fn a_group_state_survives_the_store_with_infinite_values()
    -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let store = Store::open(dir.path())?;
        for value in [f64::INFINITY, f64::NEG_INFINITY, 2.5] {
            let saved = state_with_value(value, AlertState::Firing);
            let rows = vec![row("file;group", &saved)?];
            store.call_blocking(move |c| write(c, &rows, 1))?;
            let (states, unreadable) = store.call_blocking(|c| read(c))?;
            assert!(unreadable.is_empty());
            assert_eq!(states.get("file;group"), Some(&saved));
        }
        // A full save drops groups that are gone, and keeps those it did not write.
        let rows = vec![row("file;other", &GroupState::default())?];
        let live = vec!["file;group".to_string(), "file;other".to_string()];
        store.call_blocking(move |c| write_live(c, &rows, &live, 2))?;
        let (states, _) = store.call_blocking(|c| read(c))?;
        assert_eq!(
            states.keys().collect::<Vec<_>>(),
            ["file;group", "file;other"]
        );
        let live = vec!["file;other".to_string()];
        store.call_blocking(move |c| write_live(c, &[], &live, 3))?;
        let (states, _) = store.call_blocking(|c| read(c))?;
        assert_eq!(states.keys().collect::<Vec<_>>(), ["file;other"]);
        Ok(())
    }

    #[test]
    fn the_legacy_file_moves_into_an_empty_store_once() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let store = Store::open(dir.path())?;
        let legacy = dir.path().join(LEGACY_FILE);
        let old: States = [(
            "f;g".to_string(),
            state_with_value(1.0, AlertState::Resolved),
        )]
        .into();
        std::fs::write(&legacy, serde_json::to_vec(&old)?)?;
        let restored = restore(&store, dir.path(), 5);
        assert_eq!(restored, old);
        assert!(!legacy.exists());
        assert!(dir.path().join("rules-state.json.migrated").exists());
        let (stored, _) = store.call_blocking(|c| read(c))?;
        assert_eq!(stored, old);
        // A leftover file never overrides what the store holds.
        let stale: States = [("f;g".to_string(), state_with_value(1.0, AlertState::Firing))].into();
        std::fs::write(&legacy, serde_json::to_vec(&stale)?)?;
        let restored = restore(&store, dir.path(), 6);
        assert_eq!(restored, old);
        assert!(!legacy.exists());
        Ok(())
    }

    #[test]
    fn an_unreadable_legacy_file_is_set_aside_each_time_under_its_own_name()
    -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let store = Store::open(dir.path())?;
        let legacy = dir.path().join(LEGACY_FILE);
        for (n, text) in ["{ first", "{ second"].iter().enumerate() {
            std::fs::write(&legacy, text)?;
            let restored = restore(&store, dir.path(), 1);
            assert!(restored.is_empty());
            let kept = dir
                .path()
                .join(format!("{LEGACY_FILE}.unreadable-{}", n + 1));
            assert_eq!(std::fs::read_to_string(kept)?, *text);
        }
        assert!(!legacy.exists());
        Ok(())
    }

    #[test]
    fn a_transition_is_a_change_of_state_not_of_value() {
        let firing = state_with_value(1.0, AlertState::Firing);
        let mut moved = firing.clone();
        for alerts in moved.rules.values_mut() {
            alerts.evaluate(
                3_500,
                vec![(vec![("alertname".into(), "X".into())], 7.0)],
                0,
                0,
            );
        }
        assert!(
            !moved.transitioned_from(&firing),
            "a new value is no transition"
        );
        assert!(state_with_value(1.0, AlertState::Resolved).transitioned_from(&firing));
        assert!(GroupState::default().transitioned_from(&firing));
    }
}
