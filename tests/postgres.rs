//! The PostgreSQL collector against a private, real PostgreSQL 15 with pg_stat_statements: real
//! slow statements, long-running queries, idle-in-transaction sessions and connection use.

mod common;

use common::servers::Postgres;
use common::{Daemon, wait_for};

fn config(postgres: &Postgres, extra: &str) -> String {
    format!(
        "[host]\ninterval = \"5s\"\n\n[[postgres]]\ndsn = \"{}\"\ninterval = \"1s\"\nlong_running_threshold = \"2s\"\nslow_statement_threshold = \"500ms\"\nlabels = {{ role = \"primary\" }}\n{extra}",
        postgres.dsn("postgres")
    )
}

#[test]
fn slow_statements_long_queries_and_idle_transactions_are_reported() {
    let postgres = Postgres::start();
    postgres.psql("postgres", "CREATE DATABASE app");
    postgres.psql("app", "CREATE TABLE items (id int PRIMARY KEY, name text)");
    let daemon = Daemon::start_ready(Some(&config(&postgres, "")), &[]);
    let server = postgres.address();
    let key =
        |name: &str, extra: &str| format!("{name}{{{extra}role=\"primary\",server=\"{server}\"}}");
    wait_for(&daemon, "pg_up 1", 10, |e| {
        e.value(&key("pg_up", "")) == Some(1.0)
    });

    // Slow statements (mean 0.7 s > 0.5 s) for about seven seconds, a long-running one, an
    // idle transaction.
    postgres.psql(
        "app",
        "INSERT INTO items SELECT g, 'x' FROM generate_series(1, 100) g",
    );
    let _slow = postgres.spawn_sql("app", &"SELECT pg_sleep(0.7);".repeat(10));
    let exposition = wait_for(&daemon, "a slow statement", 15, |e| {
        e.value(&key("prismwatch_postgres_slow_statements", ""))
            .is_some_and(|v| v >= 1.0)
    });
    // The statement's text is available, normalised, in the status API, not in labels.
    let status = daemon.get("/api/v1/status", &[]).body;
    assert!(status.contains("pg_sleep($1)"), "{status}");
    assert!(
        !status.contains("pg_sleep(0.7)"),
        "literal values must not appear: {status}"
    );
    let statements = exposition.keys_of("pg_stat_statements_seconds_total");
    assert!(
        statements.iter().any(|k| k.contains("datname=\"app\"")
            && k.contains("queryid=")
            && k.contains("user=\"postgres\"")),
        "{statements:?}"
    );
    assert!(
        exposition
            .keys_of("prismwatch_postgres_statement_mean_seconds")
            .iter()
            .any(|k| exposition.value(k).is_some_and(|v| v > 0.5))
    );

    let _long = postgres.spawn_sql("app", "SELECT pg_sleep(8)");
    let _idle = postgres.idle_in_transaction("app");
    let exposition = wait_for(
        &daemon,
        "long-running and idle-in-transaction figures",
        15,
        |e| {
            e.value(&key("prismwatch_postgres_long_running_queries", ""))
                .is_some_and(|v| v >= 1.0)
                && e.value(&key("prismwatch_postgres_idle_in_transaction_sessions", ""))
                    .is_some_and(|v| v >= 1.0)
        },
    );
    assert!(
        exposition
            .value(&key("prismwatch_postgres_longest_query_seconds", ""))
            .is_some_and(|v| v > 2.0)
    );
    assert!(
        exposition
            .value(&key(
                "prismwatch_postgres_idle_in_transaction_max_seconds",
                ""
            ))
            .is_some_and(|v| v > 0.0)
    );
    assert_eq!(
        exposition.value(&key(
            "pg_stat_activity_count",
            "datname=\"app\",state=\"idle in transaction\","
        )),
        Some(1.0)
    );
    assert!(
        exposition
            .value(&key(
                "pg_stat_activity_count",
                "datname=\"app\",state=\"active\","
            ))
            .is_some_and(|v| v >= 1.0)
    );
    assert_eq!(
        exposition.value(&key("pg_settings_max_connections", "")),
        Some(30.0)
    );
    // 30 slots minus 3 reserved for superusers.
    assert_eq!(
        exposition.value(&key("prismwatch_postgres_connection_slots", "")),
        Some(27.0)
    );
    let clients = exposition
        .value(&key("prismwatch_postgres_client_connections", ""))
        .unwrap_or(0.0);
    let ratio = exposition
        .value(&key("prismwatch_postgres_connection_saturation_ratio", ""))
        .unwrap_or(0.0);
    assert!(
        clients >= 3.0 && (ratio - clients / 27.0).abs() < 1e-9,
        "{clients} {ratio}"
    );
    assert!(
        exposition
            .keys_of("pg_stat_database_tup_inserted")
            .iter()
            .any(|k| k.contains("datname=\"app\"")
                && exposition.value(k).is_some_and(|v| v >= 100.0))
    );
    let long_running = daemon.get("/api/v1/status", &[]).body;
    assert!(
        long_running.contains("\"long_running\":[{"),
        "{long_running}"
    );
    assert!(
        daemon.logs().contains("Statement became slow."),
        "{}",
        daemon.logs()
    );
}

#[test]
fn missing_pg_stat_statements_is_reported_once_and_the_rest_collected() {
    let postgres = Postgres::start();
    postgres.psql("postgres", "DROP EXTENSION pg_stat_statements");
    let daemon = Daemon::start_ready(Some(&config(&postgres, "")), &[]);
    let server = postgres.address();
    let exposition = wait_for(&daemon, "a few collections", 10, |e| {
        e.value(&format!(
            "prismwatch_collector_runs_total{{collector=\"postgres:{server}\",result=\"success\"}}"
        ))
        .is_some_and(|v| v >= 3.0)
    });
    assert_eq!(
        exposition.value(&format!("pg_up{{role=\"primary\",server=\"{server}\"}}")),
        Some(1.0)
    );
    assert_eq!(
        exposition.value(&format!(
            "prismwatch_postgres_stat_statements_available{{role=\"primary\",server=\"{server}\"}}"
        )),
        Some(0.0)
    );
    let logs = daemon.logs();
    assert_eq!(
        logs.matches("pg_stat_statements is not installed").count(),
        1,
        "{logs}"
    );
}

#[test]
fn replication_lag_is_reported_on_the_primary_and_the_replica() {
    let primary = Postgres::start();
    let replica = Postgres::start_replica_of(&primary, "standby1");
    let config = format!(
        "[host]\ninterval = \"5s\"\n\n[[postgres]]\nname = \"primary\"\ndsn = \"{}\"\ninterval = \"500ms\"\n\n[[postgres]]\nname = \"replica\"\ndsn = \"{}\"\ninterval = \"500ms\"\n",
        primary.dsn("postgres"),
        replica.dsn("postgres")
    );
    let daemon = Daemon::start_ready(Some(&config), &[]);
    primary.psql(
        "postgres",
        "CREATE TABLE filler AS SELECT g FROM generate_series(1, 10000) g",
    );
    let exposition = wait_for(&daemon, "the replica seen from both sides", 20, |e| {
        e.value("pg_replication_is_replica{server=\"replica\"}") == Some(1.0)
            && e.value("pg_replication_is_replica{server=\"primary\"}") == Some(0.0)
            && e.keys_of("prismwatch_postgres_replica_lag_bytes")
                .iter()
                .any(|k| {
                    k.contains("application_name=\"standby1\"") && k.contains("server=\"primary\"")
                })
    });
    let lag = exposition
        .keys_of("prismwatch_postgres_replica_lag_bytes")
        .into_iter()
        .find(|k| k.contains("standby1"))
        .and_then(|k| exposition.value(&k));
    assert!(lag.is_some_and(|bytes| bytes >= 0.0), "{lag:?}");
    assert!(
        exposition
            .value("pg_replication_lag_seconds{server=\"replica\"}")
            .is_some_and(|s| s >= 0.0)
    );
    assert_eq!(
        exposition.value("pg_replication_lag_seconds{server=\"primary\"}"),
        Some(0.0)
    );
}

#[test]
fn a_pg_monitor_role_is_enough() {
    let postgres = Postgres::start();
    postgres.psql(
        "postgres",
        "CREATE ROLE watcher LOGIN; GRANT pg_monitor TO watcher",
    );
    postgres.psql("postgres", "CREATE DATABASE app");
    let dsn = format!(
        "postgres://watcher@127.0.0.1:{}/postgres?sslmode=disable",
        postgres.port
    );
    let config = format!(
        "[host]\ninterval = \"5s\"\n\n[[postgres]]\ndsn = \"{dsn}\"\ninterval = \"500ms\"\nslow_statement_threshold = \"100ms\"\n"
    );
    let daemon = Daemon::start_ready(Some(&config), &[]);
    let server = postgres.address();
    wait_for(&daemon, "pg_up 1 as pg_monitor", 10, |e| {
        e.value(&format!("pg_up{{server=\"{server}\"}}")) == Some(1.0)
    });
    // Another user's statement is visible to pg_monitor, text included.
    let _slow = postgres.spawn_sql("app", &"SELECT pg_sleep(0.3);".repeat(10));
    let exposition = wait_for(&daemon, "another user's slow statement", 15, |e| {
        e.value(&format!(
            "prismwatch_postgres_slow_statements{{server=\"{server}\"}}"
        ))
        .is_some_and(|v| v >= 1.0)
    });
    assert!(
        exposition
            .keys_of("pg_database_size_bytes")
            .iter()
            .any(|k| k.contains("datname=\"app\""))
    );
    // The HELP text says how fresh the value is.
    let help = exposition.help.get("pg_database_size_bytes");
    assert!(
        help.is_some_and(|h| h.contains("refreshed every 5 minutes")),
        "{help:?}"
    );
    assert!(
        daemon
            .get("/api/v1/status", &[])
            .body
            .contains("pg_sleep($1)")
    );
    assert!(!daemon.logs().contains("ERROR"), "{}", daemon.logs());
}

#[test]
fn literals_of_utility_statements_are_masked_everywhere() {
    let postgres = Postgres::start();
    postgres.psql("postgres", "CREATE ROLE appuser LOGIN");
    let daemon = Daemon::start_ready(Some(&config(&postgres, "top_statements = 100\n")), &[]);
    let server = postgres.address();
    wait_for(&daemon, "pg_up 1", 10, |e| {
        e.value(&format!("pg_up{{role=\"primary\",server=\"{server}\"}}")) == Some(1.0)
    });
    // pg_stat_statements keeps utility statements as written, secrets included. The DO block
    // is slow (0.6 s > 0.5 s), so its text is also logged.
    let round = "ALTER ROLE appuser PASSWORD 'apppass'; SET myapp.tenant='tenant-secret-42'; DO $$BEGIN PERFORM pg_sleep(0.6); RAISE NOTICE 'do-secret-7'; END$$; SELECT E'escaped\\'secret-9', 4242424242;";
    let _load = postgres.spawn_sql("postgres", &round.repeat(10));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let status = loop {
        let status = daemon.get("/api/v1/status", &[]).body;
        if status.contains("ALTER ROLE appuser PASSWORD")
            && status.contains("SET myapp.tenant")
            && daemon.logs().contains("Statement became slow.")
        {
            break status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "statements not shown: {status}\n{}",
            daemon.logs()
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    assert!(
        status.contains("ALTER ROLE appuser PASSWORD '?'"),
        "{status}"
    );
    assert!(status.contains("SET myapp.tenant='?'"), "{status}");
    let logs = daemon.logs();
    assert!(
        logs.lines()
            .any(|l| l.contains("Statement became slow.") && l.contains("DO '?'")),
        "{logs}"
    );
    let metrics = daemon.get("/metrics", &[]).body;
    let shown = [status.as_str(), logs.as_str(), metrics.as_str()].concat();
    for secret in [
        "apppass",
        "tenant-secret-42",
        "do-secret-7",
        "secret-9",
        "4242424242",
    ] {
        assert!(!shown.contains(secret), "{secret} is shown: {shown}");
    }
}

#[test]
fn a_stopped_server_is_logged_by_root_cause_and_marked_down_in_the_status() {
    let mut postgres = Postgres::start();
    let daemon = Daemon::start_ready(Some(&config(&postgres, "")), &[]);
    let server = postgres.address();
    let up = format!("pg_up{{role=\"primary\",server=\"{server}\"}}");
    let source = format!("postgres:{server}");
    wait_for(&daemon, "pg_up 1", 10, |e| e.value(&up) == Some(1.0));
    let status: serde_json::Value =
        serde_json::from_str(&daemon.get("/api/v1/status", &[]).body).expect("status JSON");
    assert_eq!(status["collectors"][&source]["up"], true, "{status}");
    let collected_at = status["collectors"][&source]["collected_at"].clone();
    assert!(collected_at.is_string(), "{status}");

    postgres.stop();
    wait_for(&daemon, "pg_up 0", 10, |e| e.value(&up) == Some(0.0));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !daemon.logs().contains("connection refused") {
        assert!(
            std::time::Instant::now() < deadline,
            "the refusal is never logged: {}",
            daemon.logs()
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let logs = daemon.logs();
    assert!(!logs.contains("pool timed out"), "{logs}");
    assert!(!logs.contains("slow acquire"), "{logs}");
    let status: serde_json::Value =
        serde_json::from_str(&daemon.get("/api/v1/status", &[]).body).expect("status JSON");
    let entry = &status["collectors"][&source];
    assert_eq!(entry["up"], false, "{status}");
    assert!(entry["failed_at"].is_string(), "{status}");
}
