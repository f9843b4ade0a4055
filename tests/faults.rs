//! Faults: a database stopped, hung (SIGSTOP) or refusing our password. The daemon keeps serving
//! every other metric, reports the target down, and recovers on its own.

mod common;

use std::time::{Duration, Instant};

use common::servers::{Postgres, Redis};
use common::{Daemon, wait_for};

fn config(postgres_dsn: &str, redis_url: &str) -> String {
    format!(
        "[host]\ninterval = \"1s\"\n\n[[postgres]]\ndsn = \"{postgres_dsn}\"\ninterval = \"500ms\"\ntimeout = \"400ms\"\n\n[[redis]]\nurl = \"{redis_url}\"\ninterval = \"500ms\"\ntimeout = \"400ms\"\n"
    )
}

fn runs(e: &common::Exposition, collector: &str, result: &str) -> f64 {
    e.value(&format!(
        "prismwatch_collector_runs_total{{collector=\"{collector}\",result=\"{result}\"}}"
    ))
    .unwrap_or(0.0)
}

#[test]
fn stopped_servers_are_reported_down_and_recover_on_their_own() {
    let mut postgres = Postgres::start();
    let mut redis = Redis::start(&[]);
    let daemon = Daemon::start_ready(Some(&config(&postgres.dsn("postgres"), &redis.url())), &[]);
    let pg_up = format!("pg_up{{server=\"{}\"}}", postgres.address());
    let redis_up = format!("redis_up{{server=\"{}\"}}", redis.address());
    wait_for(&daemon, "both up", 10, |e| {
        e.value(&pg_up) == Some(1.0) && e.value(&redis_up) == Some(1.0)
    });

    postgres.stop();
    let down = wait_for(&daemon, "pg_up 0", 10, |e| e.value(&pg_up) == Some(0.0));
    assert_eq!(down.value(&redis_up), Some(1.0), "Redis is unaffected");
    assert!(
        down.value("node_memory_MemTotal_bytes").is_some(),
        "host metrics still served"
    );
    // The stopped server's other series are stale, not frozen at their last value.
    assert!(down.keys_of("pg_stat_database_xact_commit").is_empty());

    postgres.restart();
    wait_for(&daemon, "pg_up 1 after the restart", 10, |e| {
        e.value(&pg_up) == Some(1.0) && !e.keys_of("pg_stat_database_xact_commit").is_empty()
    });

    redis.stop();
    let down = wait_for(&daemon, "redis_up 0", 10, |e| {
        e.value(&redis_up) == Some(0.0)
    });
    assert_eq!(down.value(&pg_up), Some(1.0));
    redis.restart();
    wait_for(&daemon, "redis_up 1 after the restart", 10, |e| {
        e.value(&redis_up) == Some(1.0)
    });
    let logs = daemon.logs();
    assert!(logs.contains("Collector recovered."), "{logs}");
}

#[test]
fn a_hung_server_times_out_without_stalling_the_others() {
    let postgres = Postgres::start();
    let redis = Redis::start(&[]);
    let daemon = Daemon::start_ready(Some(&config(&postgres.dsn("postgres"), &redis.url())), &[]);
    let pg = format!("postgres:{}", postgres.address());
    let rd = format!("redis:{}", redis.address());
    let pg_up = format!("pg_up{{server=\"{}\"}}", postgres.address());
    wait_for(&daemon, "pg_up 1", 10, |e| e.value(&pg_up) == Some(1.0));

    postgres.freeze();
    let before = daemon.scrape();
    // The first collection hits the timeout; later ones find the pool's connections stuck and
    // fail at the same deadline waiting for one.
    let hung = wait_for(&daemon, "PostgreSQL timeouts", 10, |e| {
        runs(e, &pg, "timeout") >= 1.0 && runs(e, &pg, "timeout") + runs(e, &pg, "error") >= 3.0
    });
    assert_eq!(hung.value(&pg_up), Some(0.0));
    // Redis kept its pace: about two collections a second while PostgreSQL hung.
    let redis_runs = runs(&hung, &rd, "success") - runs(&before, &rd, "success");
    assert!(
        redis_runs >= 2.0,
        "{redis_runs} Redis collections while PostgreSQL hung"
    );
    // Scrapes answer at once.
    let started = Instant::now();
    let _ = daemon.scrape();
    assert!(started.elapsed() < Duration::from_secs(1));

    postgres.thaw();
    wait_for(&daemon, "pg_up 1 after the thaw", 20, |e| {
        e.value(&pg_up) == Some(1.0)
    });
}

#[test]
fn a_hung_redis_times_out_and_recovers() {
    let postgres = Postgres::start();
    let redis = Redis::start(&[]);
    let daemon = Daemon::start_ready(Some(&config(&postgres.dsn("postgres"), &redis.url())), &[]);
    let redis_up = format!("redis_up{{server=\"{}\"}}", redis.address());
    let pg = format!("postgres:{}", postgres.address());
    wait_for(&daemon, "redis_up 1", 10, |e| {
        e.value(&redis_up) == Some(1.0)
    });
    let pid = rustix::process::Pid::from_raw(redis.pid()).expect("pid");
    rustix::process::kill_process(pid, rustix::process::Signal::STOP).expect("SIGSTOP");
    let before = daemon.scrape();
    let hung = wait_for(&daemon, "redis_up 0", 10, |e| {
        e.value(&redis_up) == Some(0.0)
    });
    assert!(
        runs(&hung, &pg, "success") > runs(&before, &pg, "success"),
        "PostgreSQL kept collecting"
    );
    rustix::process::kill_process(pid, rustix::process::Signal::CONT).expect("SIGCONT");
    wait_for(&daemon, "redis_up 1 after SIGCONT", 10, |e| {
        e.value(&redis_up) == Some(1.0)
    });
}

#[test]
fn a_wrong_password_gives_one_clear_error_not_a_flood() {
    let postgres = Postgres::start_with(Some("right-password"), &[]);
    let dsn = format!(
        "postgres://postgres:wrong-password@127.0.0.1:{}/postgres?sslmode=disable",
        postgres.port
    );
    let config = format!(
        "[host]\ninterval = \"1s\"\n\n[[postgres]]\ndsn = \"{dsn}\"\ninterval = \"300ms\"\ntimeout = \"300ms\"\n"
    );
    let daemon = Daemon::start_ready(Some(&config), &[]);
    let collector = format!("postgres:{}", postgres.address());
    let exposition = wait_for(&daemon, "several failed collections", 10, |e| {
        runs(e, &collector, "error") >= 5.0
    });
    assert_eq!(
        exposition.value(&format!("pg_up{{server=\"{}\"}}", postgres.address())),
        Some(0.0)
    );
    let logs = daemon.logs();
    assert_eq!(
        logs.matches("password authentication failed").count(),
        1,
        "{logs}"
    );
    assert!(
        !logs.contains("wrong-password"),
        "the password leaked into the logs: {logs}"
    );
}
