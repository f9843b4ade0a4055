//! Debian's postgres_exporter and redis_exporter on the same private servers as prismwatch: the
//! metrics both export agree.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::servers::{Postgres, Redis};
use common::{Daemon, Exposition, Peer, free_port, require_program, wait_for, wait_http_ok};

fn scrape(address: &str) -> Exposition {
    let response = common::get(address, "/metrics", &[]).expect("scrape exporter");
    assert_eq!(response.status, 200);
    Exposition::parse(&response.body)
}

/// Compares every series of `names` whose key contains `filter`: same series, equal values.
fn assert_same(ours: &Exposition, theirs: &Exposition, names: &[&str], filter: &str) -> usize {
    let mut compared = 0;
    let mut problems = Vec::new();
    for name in names {
        let our_keys: Vec<String> = ours
            .keys_of(name)
            .into_iter()
            .filter(|k| k.contains(filter))
            .collect();
        let their_keys: Vec<String> = theirs
            .keys_of(name)
            .into_iter()
            .filter(|k| k.contains(filter))
            .collect();
        if our_keys != their_keys || our_keys.is_empty() {
            problems.push(format!(
                "{name}: series differ\n  ours:   {our_keys:?}\n  theirs: {their_keys:?}"
            ));
            continue;
        }
        for key in our_keys {
            compared += 1;
            let (a, b) = (ours.value(&key), theirs.value(&key));
            let equal = match (a, b) {
                (Some(a), Some(b)) => a == b || (a.is_nan() && b.is_nan()),
                _ => false,
            };
            if !equal {
                problems.push(format!("{key}: prismwatch {a:?}, exporter {b:?}"));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    compared
}

/// Like [`assert_same`], for figures that move between the two readings: values may differ by
/// `tolerance`, absolute. Returns how many series were compared.
fn assert_close(
    ours: &Exposition,
    theirs: &Exposition,
    names: &[&str],
    filter: &str,
    tolerance: f64,
) -> usize {
    let mut compared = 0;
    let mut problems = Vec::new();
    for name in names {
        let keys = |e: &Exposition| -> Vec<String> {
            e.keys_of(name)
                .into_iter()
                .filter(|k| k.contains(filter))
                .collect()
        };
        let (our_keys, their_keys) = (keys(ours), keys(theirs));
        if our_keys != their_keys || our_keys.is_empty() {
            problems.push(format!(
                "{name}: series differ\n  ours:   {our_keys:?}\n  theirs: {their_keys:?}"
            ));
            continue;
        }
        for key in our_keys {
            compared += 1;
            let (a, b) = (ours.value(&key), theirs.value(&key));
            if !matches!((a, b), (Some(a), Some(b)) if (a - b).abs() <= tolerance) {
                problems.push(format!("{key}: prismwatch {a:?}, exporter {b:?}"));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    compared
}

/// Both give each of `names` the same TYPE and HELP, so what a dashboard shows is the same.
fn assert_same_types_and_help(ours: &Exposition, theirs: &Exposition, names: &[&str]) {
    let mut problems = Vec::new();
    for name in names {
        for (what, a, b) in [
            ("TYPE", ours.types.get(*name), theirs.types.get(*name)),
            ("HELP", ours.help.get(*name), theirs.help.get(*name)),
        ] {
            if a.is_none() || a != b {
                problems.push(format!(
                    "{what} of {name}: prismwatch {a:?}, exporter {b:?}"
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The two custom queries of postgres_exporter's example `queries.yaml` that community rules
/// and dashboards rely on (Debian's copy, unchanged): pg_postmaster and pg_stat_user_tables.
fn example_queries() -> String {
    let example = std::fs::read_to_string(
        "/usr/share/doc/prometheus-postgres-exporter/examples/queries.yaml",
    )
    .expect("Debian's example queries.yaml");
    // Top-level entries start at column 0; keep the two wanted ones.
    let mut kept = String::new();
    let mut keep = false;
    for line in example.lines() {
        if !line.starts_with(' ') && line.ends_with(':') {
            keep = line == "pg_postmaster:" || line == "pg_stat_user_tables:";
        }
        if keep {
            kept.push_str(line);
            kept.push('\n');
        }
    }
    assert!(kept.contains("n_dead_tup"), "{kept}");
    kept
}

/// pg_stat_user_tables columns compared on the quiet table.
const USER_TABLE_COLUMNS: [&str; 19] = [
    "pg_stat_user_tables_seq_scan",
    "pg_stat_user_tables_seq_tup_read",
    "pg_stat_user_tables_idx_scan",
    "pg_stat_user_tables_idx_tup_fetch",
    "pg_stat_user_tables_n_tup_ins",
    "pg_stat_user_tables_n_tup_upd",
    "pg_stat_user_tables_n_tup_del",
    "pg_stat_user_tables_n_tup_hot_upd",
    "pg_stat_user_tables_n_live_tup",
    "pg_stat_user_tables_n_dead_tup",
    "pg_stat_user_tables_n_mod_since_analyze",
    "pg_stat_user_tables_last_vacuum",
    "pg_stat_user_tables_last_autovacuum",
    "pg_stat_user_tables_last_analyze",
    "pg_stat_user_tables_last_autoanalyze",
    "pg_stat_user_tables_vacuum_count",
    "pg_stat_user_tables_autovacuum_count",
    "pg_stat_user_tables_analyze_count",
    "pg_stat_user_tables_autoanalyze_count",
];

/// The background writer's counters.
const BGWRITER_COUNTERS: [&str; 11] = [
    "pg_stat_bgwriter_checkpoints_timed_total",
    "pg_stat_bgwriter_checkpoints_req_total",
    "pg_stat_bgwriter_checkpoint_write_time_total",
    "pg_stat_bgwriter_checkpoint_sync_time_total",
    "pg_stat_bgwriter_buffers_checkpoint_total",
    "pg_stat_bgwriter_buffers_clean_total",
    "pg_stat_bgwriter_maxwritten_clean_total",
    "pg_stat_bgwriter_buffers_backend_total",
    "pg_stat_bgwriter_buffers_backend_fsync_total",
    "pg_stat_bgwriter_buffers_alloc_total",
    "pg_stat_bgwriter_stats_reset_total",
];

/// Recovery conflicts by cause.
const CONFLICT_COUNTERS: [&str; 5] = [
    "pg_stat_database_conflicts_confl_tablespace",
    "pg_stat_database_conflicts_confl_lock",
    "pg_stat_database_conflicts_confl_snapshot",
    "pg_stat_database_conflicts_confl_bufferpin",
    "pg_stat_database_conflicts_confl_deadlock",
];

#[test]
fn postgres_metrics_match_postgres_exporter() {
    let exporter = require_program(
        "prometheus-postgres-exporter",
        "prometheus-postgres-exporter",
    );
    let postgres = Postgres::start();
    postgres.psql("postgres", "CREATE DATABASE work");
    postgres.psql("work", "CREATE TABLE t (id int); INSERT INTO t SELECT generate_series(1, 500); UPDATE t SET id = id + 1 WHERE id < 100; DELETE FROM t WHERE id > 400");
    // A quiet table in the DSN's database, whose statistics do not move between the readings:
    // autovacuum is off for it, so its vacuum and analyze figures stay put.
    postgres.psql("postgres", "CREATE TABLE parity (id int PRIMARY KEY, v int) WITH (autovacuum_enabled = false); INSERT INTO parity SELECT g, g FROM generate_series(1, 300) g; UPDATE parity SET v = 0 WHERE id <= 50; DELETE FROM parity WHERE id > 250; SELECT count(*) FROM parity WHERE id = 7; ANALYZE parity");
    postgres.psql(
        "postgres",
        "CREATE TABLE parity_unindexed (v int) WITH (autovacuum_enabled = false); INSERT INTO parity_unindexed VALUES (1)",
    );
    postgres.psql("postgres", "VACUUM parity_unindexed");
    // A physical slot that reserves WAL at once, so its retained WAL is a number, not NaN.
    postgres.psql(
        "postgres",
        "SELECT pg_create_physical_replication_slot('prismwatch_test_slot', true)",
    );
    let _idle = postgres.idle_in_transaction("work");
    // Let the statistics of the finished sessions reach shared memory.
    std::thread::sleep(Duration::from_secs(2));

    let queries = tempfile::NamedTempFile::new().expect("queries file");
    std::fs::write(queries.path(), example_queries()).expect("write queries");
    let address = format!("127.0.0.1:{}", free_port());
    let _peer = Peer(
        Command::new(exporter)
            .arg(format!("--web.listen-address={address}"))
            .arg(format!("--extend.query-path={}", queries.path().display()))
            .env("DATA_SOURCE_NAME", postgres.dsn("postgres"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start postgres_exporter"),
    );
    let config = format!(
        "[host]\ninterval = \"5s\"\n\n[[postgres]]\ndsn = \"{}\"\ninterval = \"1s\"\n",
        postgres.dsn("postgres")
    );
    let daemon = Daemon::start_ready(Some(&config), &[]);
    wait_http_ok(&address, "/metrics");
    let ours = wait_for(&daemon, "pg_up 1", 10, |e| {
        e.keys_of("pg_up").len() == 1 && e.value(&e.keys_of("pg_up")[0]) == Some(1.0)
    });
    let theirs = scrape(&address);
    assert_eq!(
        theirs.value("pg_up"),
        Some(1.0),
        "postgres_exporter could not connect"
    );

    let mut compared = assert_same(
        &ours,
        &theirs,
        &[
            "pg_settings_max_connections",
            "pg_settings_superuser_reserved_connections",
            "pg_static",
            "pg_postmaster_start_time_seconds",
            "pg_replication_slots_active",
            "pg_settings_autovacuum_analyze_threshold",
            "pg_settings_autovacuum_vacuum_threshold",
            "pg_settings_max_locks_per_transaction",
            "pg_settings_transaction_read_only",
        ],
        "",
    );
    // The quiet database: its statistics do not move between the two readings.
    compared += assert_same(
        &ours,
        &theirs,
        &[
            "pg_stat_database_xact_commit",
            "pg_stat_database_xact_rollback",
            "pg_stat_database_tup_inserted",
            "pg_stat_database_tup_updated",
            "pg_stat_database_tup_deleted",
            "pg_stat_database_deadlocks",
            "pg_stat_database_temp_files",
            "pg_stat_database_conflicts",
            "pg_stat_database_numbackends",
            "pg_database_size_bytes",
            "pg_stat_activity_count",
            "pg_locks_count",
        ],
        "datname=\"work\"",
    );
    compared += assert_same(&ours, &theirs, &CONFLICT_COUNTERS, "datname=\"work\"");
    // The two tables of the DSN's database, one with an index and one without (NaN index
    // figures in both).
    compared += assert_same(&ours, &theirs, &USER_TABLE_COLUMNS, "relname=\"parity\"");
    compared += assert_same(
        &ours,
        &theirs,
        &USER_TABLE_COLUMNS,
        "relname=\"parity_unindexed\"",
    );
    // Buffers are allocated and checkpoint time accrues between the two readings.
    compared += assert_close(&ours, &theirs, &BGWRITER_COUNTERS, "", 1000.0);
    // The slot's retained WAL grows with whatever is written between the readings.
    compared += assert_close(
        &ours,
        &theirs,
        &["pg_replication_slots_pg_wal_lsn_diff"],
        "",
        1024.0 * 1024.0,
    );
    assert_same_types_and_help(
        &ours,
        &theirs,
        &[
            &BGWRITER_COUNTERS[..],
            &CONFLICT_COUNTERS[..],
            &USER_TABLE_COLUMNS[..],
            &[
                "pg_postmaster_start_time_seconds",
                "pg_replication_slots_active",
                "pg_replication_slots_pg_wal_lsn_diff",
                "pg_settings_autovacuum_analyze_threshold",
                "pg_settings_autovacuum_vacuum_threshold",
                "pg_settings_max_locks_per_transaction",
                "pg_settings_transaction_read_only",
            ],
        ]
        .concat(),
    );
    assert!(compared >= 80, "only {compared} series compared");
    // No postgres_exporter query gives pg_txid_current; a community rule expects it.
    let txid = ours.keys_of("pg_txid_current");
    assert!(
        txid.len() == 1 && ours.value(&txid[0]).is_some_and(|v| v > 1.0),
        "{txid:?}"
    );
    postgres.psql(
        "postgres",
        "SELECT pg_drop_replication_slot('prismwatch_test_slot')",
    );
}

#[test]
fn redis_metrics_match_redis_exporter() {
    let exporter = require_program("prometheus-redis-exporter", "prometheus-redis-exporter");
    let redis = Redis::start(&["--maxmemory", "64mb"]);
    for i in 0..20 {
        redis.cli(&["SET", &format!("k{i}"), "v"]);
    }
    redis.cli(&["EXPIRE", "k0", "3600"]);
    // One failed call: an error reply counted by type and by command.
    redis.cli(&["INCR", "k1"]);
    // A slowlog that is not empty, and that nothing adds to while both read it.
    redis.cli(&["CONFIG", "SET", "slowlog-log-slower-than", "0"]);
    redis.cli(&["SET", "slow", "v"]);
    redis.cli(&["CONFIG", "SET", "slowlog-log-slower-than", "1000000"]);
    for i in 0..30 {
        redis.cli(&["GET", &format!("k{i}")]);
    }
    let address = format!("127.0.0.1:{}", free_port());
    let _peer = Peer(
        Command::new(exporter)
            .args(["-web.listen-address", &address, "-redis.addr", &redis.url()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis_exporter"),
    );
    let config = format!(
        "[host]\ninterval = \"5s\"\n\n[[redis]]\nurl = \"{}\"\ninterval = \"1s\"\n",
        redis.url()
    );
    let daemon = Daemon::start_ready(Some(&config), &[]);
    wait_http_ok(&address, "/metrics");
    let ours = wait_for(&daemon, "redis_up 1", 10, |e| {
        e.keys_of("redis_up").len() == 1
    })
    .without_label("server");
    let theirs = scrape(&address);
    assert_eq!(
        theirs.value("redis_up"),
        Some(1.0),
        "redis_exporter could not connect"
    );
    let compared = assert_same(
        &ours,
        &theirs,
        &[
            "redis_up",
            "redis_keyspace_hits_total",
            "redis_keyspace_misses_total",
            "redis_db_keys",
            "redis_db_keys_expiring",
            "redis_evicted_keys_total",
            "redis_expired_keys_total",
            "redis_memory_max_bytes",
            "redis_rejected_connections_total",
            "redis_connected_slaves",
            "redis_blocked_clients",
            "redis_slowlog_length",
            "redis_slowlog_last_id",
            "redis_last_slow_execution_duration_seconds",
            "redis_config_io_threads",
            "redis_instance_info",
            "redis_errors_total",
        ],
        "",
    ) + assert_same(&ours, &theirs, STILL_INFO_FAMILIES, "");
    compared_commands(&ours, &theirs);
    assert!(compared >= 60, "only {compared} series compared");
    same_types(&ours, &theirs);
    assert!(
        ours.value("redis_slowlog_last_id")
            .is_some_and(|id| id > 0.0),
        "the slowlog entries made above are missing"
    );
    // Moving figures agree within their motion.
    let close = |name: &str, tolerance: f64| {
        let (a, b) = (
            ours.value(name).unwrap_or(f64::NAN),
            theirs.value(name).unwrap_or(f64::NAN),
        );
        assert!(
            (a - b).abs() <= tolerance,
            "{name}: prismwatch {a}, exporter {b}"
        );
    };
    close("redis_uptime_in_seconds", 2.0);
    close("redis_connected_clients", 2.0);
    // used_memory counts client buffers too, and each exporter reads it while its own INFO
    // reply (about 100 KiB for redis_exporter's INFO ALL) sits in one.
    close("redis_memory_used_bytes", 256.0 * 1024.0);
    close("redis_memory_used_dataset_bytes", 256.0 * 1024.0);
    close("redis_memory_used_overhead_bytes", 256.0 * 1024.0);
    close("redis_start_time_seconds", 2.0);
    // The server's sampled estimate for the one expiring key, which counts down.
    close("redis_db_avg_ttl_seconds{db=\"db0\"}", 10.0);
    // The server's own CPU in the second or so between the two readings.
    for name in [
        "redis_cpu_sys_seconds_total",
        "redis_cpu_user_seconds_total",
        "redis_cpu_sys_main_thread_seconds_total",
        "redis_cpu_user_main_thread_seconds_total",
    ] {
        close(name, 0.5);
    }
    // Each reading moves these: the INFO ALL request and its reply, plus our PING.
    close("redis_net_input_bytes_total", 16.0 * 1024.0);
    close("redis_net_output_bytes_total", 1024.0 * 1024.0);
    close("redis_total_reads_processed", 100.0);
    close("redis_total_writes_processed", 100.0);
}

/// INFO-derived families that do not move on an idle private server, so both readings agree
/// exactly.
const STILL_INFO_FAMILIES: &[&str] = &[
    "redis_process_id",
    "redis_config_maxmemory",
    "redis_config_maxclients",
    "redis_memory_used_startup_bytes",
    "redis_memory_used_lua_bytes",
    "redis_memory_used_scripts_bytes",
    "redis_number_of_cached_scripts",
    "redis_lazyfree_pending_objects",
    "redis_active_defrag_running",
    "redis_io_threads_active",
    "redis_tracking_clients",
    "redis_tracking_total_keys",
    "redis_tracking_total_items",
    "redis_tracking_total_prefixes",
    "redis_pubsub_channels",
    "redis_pubsub_patterns",
    "redis_loading_dump_file",
    "redis_rdb_changes_since_last_save",
    "redis_rdb_bgsave_in_progress",
    "redis_rdb_last_save_timestamp_seconds",
    "redis_rdb_last_bgsave_status",
    "redis_rdb_last_bgsave_duration_sec",
    "redis_rdb_current_bgsave_duration_sec",
    "redis_rdb_last_cow_size_bytes",
    "redis_aof_enabled",
    "redis_aof_rewrite_in_progress",
    "redis_aof_rewrite_scheduled",
    "redis_aof_last_rewrite_duration_sec",
    "redis_aof_current_rewrite_duration_sec",
    "redis_aof_last_bgrewrite_status",
    "redis_aof_last_write_status",
    "redis_aof_last_cow_size_bytes",
    "redis_module_fork_in_progress",
    "redis_latest_fork_seconds",
    "redis_master_repl_offset",
    "redis_second_repl_offset",
    "redis_repl_backlog_is_active",
    "redis_replication_backlog_bytes",
    "redis_repl_backlog_first_byte_offset",
    "redis_repl_backlog_history_bytes",
    "redis_replica_resyncs_full",
    "redis_replica_partial_resync_accepted",
    "redis_replica_partial_resync_denied",
    "redis_cpu_sys_children_seconds_total",
    "redis_cpu_user_children_seconds_total",
    "redis_total_error_replies",
    "redis_unexpected_error_replies",
    "redis_dump_payload_sanitizations",
    "redis_cluster_enabled",
];

/// Every redis_* family both export has the same TYPE, so `rate()` and friends behave alike.
fn same_types(ours: &Exposition, theirs: &Exposition) {
    let differing: Vec<String> = ours
        .types
        .iter()
        .filter(|(name, _)| name.starts_with("redis_"))
        .filter_map(|(name, kind)| {
            let their_kind = theirs.types.get(name)?;
            (their_kind != kind)
                .then(|| format!("{name}: prismwatch {kind}, exporter {their_kind}"))
        })
        .collect();
    assert!(differing.is_empty(), "{}", differing.join("\n"));
}

/// Commands the test itself sent are counted the same by both.
fn compared_commands(ours: &Exposition, theirs: &Exposition) {
    for cmd in ["set", "get", "expire", "incr"] {
        for family in [
            "redis_commands_total",
            "redis_commands_failed_calls_total",
            "redis_commands_rejected_calls_total",
        ] {
            let key = format!("{family}{{cmd=\"{cmd}\"}}");
            assert_eq!(ours.value(&key), theirs.value(&key), "{key}");
            assert!(ours.value(&key).is_some(), "{key} missing");
        }
    }
    assert_eq!(
        ours.value("redis_commands_failed_calls_total{cmd=\"incr\"}"),
        Some(1.0)
    );
}

#[test]
fn redis_replica_metrics_match_redis_exporter() {
    let exporter = require_program("prometheus-redis-exporter", "prometheus-redis-exporter");
    let primary = Redis::start(&[]);
    let port = primary.port.to_string();
    let replica = Redis::start(&["--replicaof", "127.0.0.1", &port]);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !replica
        .cli(&["INFO", "replication"])
        .contains("master_link_status:up")
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the replica did not connect"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let address = format!("127.0.0.1:{}", free_port());
    let _peer = Peer(
        Command::new(exporter)
            .args([
                "-web.listen-address",
                &address,
                "-redis.addr",
                &replica.url(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis_exporter"),
    );
    let config = format!(
        "[host]\ninterval = \"5s\"\n\n[[redis]]\nurl = \"{}\"\ninterval = \"1s\"\n",
        replica.url()
    );
    let daemon = Daemon::start_ready(Some(&config), &[]);
    wait_http_ok(&address, "/metrics");
    let ours = wait_for(&daemon, "redis_master_link_up", 10, |e| {
        e.keys_of("redis_master_link_up").len() == 1
    })
    .without_label("server");
    let theirs = scrape(&address);
    let compared = assert_same(
        &ours,
        &theirs,
        &[
            "redis_master_link_up",
            "redis_master_sync_in_progress",
            "redis_slave_info",
            "redis_connected_slaves",
        ],
        "",
    );
    assert_eq!(compared, 4);
    assert_eq!(
        ours.value(&format!(
            "redis_master_link_up{{master_host=\"127.0.0.1\",master_port=\"{port}\"}}"
        )),
        Some(1.0)
    );
    // Offsets move with the primary's pings, so only their series are compared.
    for name in [
        "redis_slave_repl_offset",
        "redis_master_last_io_seconds_ago",
    ] {
        assert_eq!(ours.keys_of(name), theirs.keys_of(name), "{name}");
        assert_eq!(ours.keys_of(name).len(), 1, "{name}");
    }
}
