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
fn max_tables_keeps_the_busiest_tables_of_the_dsn_database() {
    let postgres = Postgres::start();
    postgres.psql(
        "postgres",
        "CREATE TABLE busy (id int); INSERT INTO busy SELECT generate_series(1, 1000); CREATE TABLE medium (id int); INSERT INTO medium SELECT generate_series(1, 100); CREATE TABLE quiet (id int); INSERT INTO quiet VALUES (1)",
    );
    // Tables of another database are not read: postgres_exporter reads the DSN's only.
    postgres.psql("postgres", "CREATE DATABASE other");
    postgres.psql(
        "other",
        "CREATE TABLE elsewhere (id int); INSERT INTO elsewhere SELECT generate_series(1, 5000)",
    );
    let daemon = Daemon::start_ready(Some(&config(&postgres, "max_tables = 2\n")), &[]);
    let server = postgres.address();
    let count = format!(
        "prismwatch_postgres_user_tables{{datname=\"postgres\",role=\"primary\",server=\"{server}\"}}"
    );
    let exposition = wait_for(&daemon, "the three tables counted", 15, |e| {
        e.value(&count) == Some(3.0)
    });
    let mut kept: Vec<String> = exposition
        .keys_of("pg_stat_user_tables_n_tup_ins")
        .iter()
        .map(|k| {
            assert!(
                k.contains("datname=\"postgres\",") && k.contains("schemaname=\"public\""),
                "{k}"
            );
            k.split("relname=\"")
                .nth(1)
                .unwrap_or("")
                .split('"')
                .next()
                .unwrap_or("")
                .to_string()
        })
        .collect();
    kept.sort();
    assert_eq!(kept, ["busy", "medium"]);
    let key = format!(
        "pg_stat_user_tables_n_tup_ins{{datname=\"postgres\",relname=\"busy\",role=\"primary\",schemaname=\"public\",server=\"{server}\"}}"
    );
    assert_eq!(exposition.value(&key), Some(1000.0));
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
    // The background writer and the transaction counter need nothing beyond pg_monitor.
    for name in ["pg_stat_bgwriter_buffers_alloc_total", "pg_txid_current"] {
        assert_eq!(exposition.keys_of(name).len(), 1, "{name}");
    }
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

/// A fake PostgreSQL server that declines TLS, reads the startup message and answers it with a
/// message announced as 1,000,000,000 bytes, then streams bytes (at most `limit` per
/// connection), as a hostile or broken server would. Returns its port and the connections served.
fn start_message_flood(limit: usize) -> (u16, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("address").port();
    let served = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = std::sync::Arc::clone(&served);
    std::thread::spawn(move || {
        for stream in listener.incoming().take(50) {
            let Ok(mut stream) = stream else { continue };
            counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            std::thread::spawn(move || {
                let mut request = [0u8; 1024];
                let Ok(read) = stream.read(&mut request) else {
                    return;
                };
                // SSLRequest (length 8, code 80877103): decline, then read the startup.
                if read == 8
                    && request[4..8] == [0x04, 0xd2, 0x16, 0x2f]
                    && (stream.write_all(b"N").is_err() || stream.read(&mut request).is_err())
                {
                    return;
                }
                let mut header = vec![b'R'];
                header.extend_from_slice(&1_000_000_000u32.to_be_bytes());
                let _ = stream.write_all(&header);
                let chunk = vec![b'x'; 64 << 10];
                let mut sent = 0;
                while sent < limit && stream.write_all(&chunk).is_ok() {
                    sent += chunk.len();
                }
            });
        }
    });
    (port, served)
}

#[test]
fn a_gigantic_message_from_a_hostile_server_is_refused_without_growing_memory() {
    let (port, served) = start_message_flood(1 << 30);
    let config = format!(
        "[host]\ninterval = \"5s\"\n\n[[postgres]]\ndsn = \"postgres://watcher@127.0.0.1:{port}/postgres\"\ninterval = \"500ms\"\ntimeout = \"400ms\"\n\n[[pgbouncer]]\ndsn = \"postgres://pgbouncer@127.0.0.1:{port}/pgbouncer?sslmode=disable\"\ninterval = \"500ms\"\ntimeout = \"400ms\"\n"
    );
    let daemon = Daemon::start_ready(Some(&config), &[]);
    let baseline = common::rss_bytes(daemon.pid());
    let server = format!("127.0.0.1:{port}");
    wait_for(
        &daemon,
        "pg_up 0 and pgbouncer_up 0 after refused messages",
        15,
        |e| {
            e.value(&format!("pg_up{{server=\"{server}\"}}")) == Some(0.0)
                && e.value(&format!("pgbouncer_up{{server=\"{server}\"}}")) == Some(0.0)
                && served.load(std::sync::atomic::Ordering::Relaxed) >= 6
        },
    );
    let after = common::rss_bytes(daemon.pid());
    assert!(
        after < baseline + (64 << 20),
        "RSS grew from {baseline} to {after} bytes"
    );
    let logs = daemon.logs();
    let refusal = "the server announced a message of 999999996 bytes (type 'R'), over the limit of 16777216 bytes";
    assert!(
        logs.contains(&format!("PostgreSQL {server}: {refusal}")),
        "{logs}"
    );
    assert!(
        logs.contains(&format!("PgBouncer {server}: SHOW VERSION: {refusal}")),
        "{logs}"
    );
    eprintln!("RSS before {baseline} bytes, after {after} bytes");
}

/// A CA and a server certificate it signed, for `localhost` and 127.0.0.1, readable by the
/// server's user. Returns the CA's certificate, the server's certificate and its key.
fn server_certificate(
    dir: &std::path::Path,
) -> (std::path::PathBuf, std::path::PathBuf, std::path::PathBuf) {
    let file = |name: &str| dir.join(name);
    let openssl = |args: &[&str]| {
        let status = std::process::Command::new("openssl")
            .current_dir(dir)
            .args(args)
            .stderr(std::process::Stdio::null())
            .status()
            .expect("openssl");
        assert!(status.success(), "openssl {args:?} failed");
    };
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=test CA",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
    ]);
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=localhost",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
    ]);
    std::fs::write(
        file("server.ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
    )
    .expect("write extensions");
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "server.ext",
        "-out",
        "server.crt",
    ]);
    let (cert, key) = (file("server.crt"), file("server.key"));
    for file in [&cert, &key] {
        let status = std::process::Command::new("chown")
            .arg("postgres:postgres")
            .arg(file)
            .status()
            .expect("chown");
        assert!(status.success());
    }
    std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .expect("chmod");
    (file("ca.crt"), cert, key)
}

#[test]
fn tls_to_the_server_follows_sslmode() {
    let certs = tempfile::tempdir().expect("temp dir");
    std::fs::set_permissions(
        certs.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .expect("chmod");
    let (ca, cert, key) = server_certificate(certs.path());
    let postgres = Postgres::start_with(
        None,
        &[
            "ssl = on",
            &format!("ssl_cert_file = '{}'", cert.display()),
            &format!("ssl_key_file = '{}'", key.display()),
        ],
    );
    let port = postgres.port;
    let base = format!("postgres://postgres@127.0.0.1:{port}/postgres");
    let targets = [
        ("required", format!("{base}?sslmode=require")),
        (
            "verified",
            format!("{base}?sslmode=verify-full&sslrootcert={}", ca.display()),
        ),
        // Not signed by any public root: refused as a TLS failure.
        ("unverifiable", format!("{base}?sslmode=verify-full")),
        // A root certificate that cannot be read: down, with the file named.
        (
            "unreadable-root",
            format!("{base}?sslmode=verify-ca&sslrootcert=/nonexistent/root.crt"),
        ),
    ];
    let mut config = String::from("[host]\ninterval = \"5s\"\n");
    for (name, dsn) in &targets {
        config.push_str(&format!(
            "\n[[postgres]]\nname = \"{name}\"\ndsn = \"{dsn}\"\ninterval = \"500ms\"\n"
        ));
    }
    let daemon = Daemon::start_ready(Some(&config), &[]);
    wait_for(
        &daemon,
        "TLS targets up, the unverifiable one down",
        15,
        |e| {
            e.value("pg_up{server=\"required\"}") == Some(1.0)
                && e.value("pg_up{server=\"verified\"}") == Some(1.0)
                && e.value("pg_up{server=\"unverifiable\"}") == Some(0.0)
                && e.value("pg_up{server=\"unreadable-root\"}") == Some(0.0)
        },
    );
    let encrypted = postgres.psql(
        "postgres",
        "SELECT count(*) FROM pg_stat_ssl JOIN pg_stat_activity USING (pid) \
         WHERE application_name = 'prismwatch' AND ssl",
    );
    assert!(
        encrypted.parse::<u32>().expect("count") >= 2,
        "the guarded connections are encrypted: {encrypted}"
    );
    let logs = daemon.logs();
    assert!(
        logs.contains("PostgreSQL unverifiable: TLS with 127.0.0.1:"),
        "{logs}"
    );
    assert!(logs.contains("TLS failed"), "{logs}");
    assert!(logs.contains("sslrootcert /nonexistent/root.crt"), "{logs}");
}
