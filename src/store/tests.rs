use super::*;

fn count(store: &Store) -> i64 {
    store
        .call_blocking(|c| c.query_row("SELECT count(*) FROM notify_silences", [], |r| r.get(0)))
        .expect("count")
}

fn insert(store: &Store, id: &str) {
    let id = id.to_string();
    store
        .call_blocking(move |c| {
            c.execute(
                "INSERT INTO notify_silences (id, body, ends_at_ms, updated_at_ms) VALUES (?1, '{}', 0, 0)",
                [id],
            )
        })
        .expect("insert");
}

#[test]
fn open_creates_the_schema_with_durable_settings() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("open");
    let (mode, sync, fk, version): (String, i64, i64, u32) = store
        .call_blocking(|c| {
            Ok((
                c.query_row("PRAGMA journal_mode", [], |r| r.get(0))?,
                c.query_row("PRAGMA synchronous", [], |r| r.get(0))?,
                c.query_row("PRAGMA foreign_keys", [], |r| r.get(0))?,
                c.query_row("PRAGMA user_version", [], |r| r.get(0))?,
            ))
        })
        .expect("pragmas");
    assert_eq!(mode, "wal");
    assert_eq!(sync, 2, "synchronous=FULL");
    assert_eq!(fk, 1);
    assert_eq!(version, MIGRATIONS.last().expect("a migration").version);
}

#[test]
fn a_committed_change_survives_a_crash() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("open");
    insert(&store, "a");
    insert(&store, "b");
    // A crash: the handle goes away without any orderly close, the WAL is not checkpointed.
    std::mem::forget(store);
    let reopened = Store::open(dir.path()).expect("reopen");
    assert_eq!(count(&reopened), 2);
    // Migrations are not applied twice.
    insert(&reopened, "c");
    drop(reopened);
    assert_eq!(count(&Store::open(dir.path()).expect("reopen again")), 3);
}

#[test]
fn migrations_apply_only_what_is_new() {
    const FIRST: &[Migration] = &[Migration {
        version: 1,
        name: "one",
        sql: "CREATE TABLE one (x INTEGER);",
    }];
    const BOTH: &[Migration] = &[
        Migration {
            version: 1,
            name: "one",
            sql: "CREATE TABLE one (x INTEGER);",
        },
        Migration {
            version: 2,
            name: "two",
            sql: "CREATE TABLE two (y INTEGER);",
        },
    ];
    let dir = tempfile::tempdir().expect("tempdir");
    let mut connection = Connection::open(dir.path().join("m.db")).expect("open");
    assert_eq!(migrations::apply(&mut connection, FIRST), Ok(1));
    assert_eq!(migrations::apply(&mut connection, FIRST), Ok(0));
    assert_eq!(migrations::apply(&mut connection, BOTH), Ok(1));
    let error = migrations::apply(&mut connection, FIRST).expect_err("newer file refused");
    assert!(error.contains("schema version 2"), "{error}");
}

#[test]
fn a_failed_migration_leaves_the_file_at_the_previous_version() {
    const BROKEN: &[Migration] = &[
        Migration {
            version: 1,
            name: "one",
            sql: "CREATE TABLE one (x INTEGER);",
        },
        Migration {
            version: 2,
            name: "broken",
            sql: "CREATE TABLE two (y INTEGER); CREATE TABLE one (x INTEGER);",
        },
    ];
    let dir = tempfile::tempdir().expect("tempdir");
    let mut connection = Connection::open(dir.path().join("m.db")).expect("open");
    let error = migrations::apply(&mut connection, BROKEN).expect_err("broken");
    assert!(error.contains("migration 2 (broken)"), "{error}");
    let version: u32 = connection
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .expect("version");
    assert_eq!(version, 1);
    let two: i64 = connection
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE name = 'two'",
            [],
            |r| r.get(0),
        )
        .expect("count");
    assert_eq!(two, 0, "the failed step was rolled back");
}

#[test]
fn an_unopenable_path_is_a_clear_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("no/such/dir");
    let error = Store::open(&missing).err().expect("refused").to_string();
    assert!(error.contains("no/such/dir"), "{error}");
    assert!(error.contains("--state-dir"), "{error}");
}

#[test]
fn a_failed_write_marks_the_store_unhealthy_until_one_succeeds() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("open");
    let changes = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = Arc::clone(&changes);
    store.on_health_change(move |ok| seen.lock().expect("lock").push(ok));
    let error = store
        .call_blocking(|c| c.execute("INSERT INTO no_such_table VALUES (1)", []))
        .expect_err("fails");
    assert!(error.to_string().contains("prismwatch.db"), "{error}");
    assert!(!store.is_healthy());
    insert(&store, "a");
    assert!(store.is_healthy());
    assert_eq!(*changes.lock().expect("lock"), vec![false, true]);
}

#[tokio::test]
async fn async_callers_await_the_writer() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("open");
    let mut tasks = Vec::new();
    for i in 0..20 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store
                .call(move |c| {
                    c.execute(
                        "INSERT INTO notify_silences (id, body, ends_at_ms, updated_at_ms) VALUES (?1, '{}', 0, 0)",
                        [format!("s{i}")],
                    )
                })
                .await
        }));
    }
    for task in tasks {
        assert_eq!(task.await.expect("join").expect("insert"), 1);
    }
    let total: i64 = store
        .call(|c| c.query_row("SELECT count(*) FROM notify_silences", [], |r| r.get(0)))
        .await
        .expect("count");
    assert_eq!(total, 20);
}
