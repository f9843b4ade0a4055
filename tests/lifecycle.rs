//! Signals and reloads: SIGHUP applies a good config and refuses a broken one while the old one
//! keeps running; SIGTERM stops the daemon cleanly within 5 s.

mod common;

use std::time::Duration;

use common::Daemon;
use rustix::process::Signal;

fn wait_for(daemon: &Daemon, what: &str, check: impl Fn(&common::Exposition) -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::time::Instant::now() < deadline {
        if check(&daemon.scrape()) {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("timed out waiting for {what}\nlogs:\n{}", daemon.logs());
}

#[test]
fn sighup_applies_a_valid_config_and_refuses_a_broken_one() {
    let daemon = Daemon::start_ready(Some("[host]\ninterval = \"2s\"\n"), &[]);
    let interval = |e: &common::Exposition| {
        e.value(r#"prismwatch_collector_interval_seconds{collector="host"}"#)
    };
    assert_eq!(interval(&daemon.scrape()), Some(2.0));
    assert_eq!(
        daemon
            .scrape()
            .value("prismwatch_config_last_reload_successful"),
        Some(1.0)
    );

    // A valid change is applied.
    std::fs::write(daemon.config_path(), "[host]\ninterval = \"3s\"\n").expect("write config");
    daemon.signal(Signal::HUP);
    wait_for(&daemon, "the new interval", |e| interval(e) == Some(3.0));

    // A broken file is refused with a clear line; the old config keeps running.
    std::fs::write(
        daemon.config_path(),
        "[host]\ninterval = \"3 fortnights\"\n",
    )
    .expect("write config");
    daemon.signal(Signal::HUP);
    wait_for(&daemon, "the failed reload", |e| {
        e.value("prismwatch_config_last_reload_successful") == Some(0.0)
    });
    let exposition = daemon.scrape();
    assert_eq!(interval(&exposition), Some(3.0));
    assert!(exposition.value("node_memory_MemTotal_bytes").is_some());
    let logs = daemon.logs();
    assert!(logs.contains("Configuration reload refused"), "{logs}");
    assert!(
        logs.contains("prismwatch.toml:2:12: key `host.interval`: invalid duration"),
        "{logs}"
    );

    // Fixing the file recovers, and the success timestamp moves.
    std::fs::write(daemon.config_path(), "[host]\ninterval = \"1s\"\n").expect("write config");
    daemon.signal(Signal::HUP);
    wait_for(&daemon, "the recovered reload", |e| {
        e.value("prismwatch_config_last_reload_successful") == Some(1.0) && interval(e) == Some(1.0)
    });
    assert!(
        daemon
            .scrape()
            .value("prismwatch_config_last_reload_success_timestamp_seconds")
            .is_some_and(|t| t > 1.7e9)
    );
}

#[test]
fn sighup_refuses_an_empty_file_and_names_removed_auth() {
    let protected = "[web]\nbearer_token = \"reload-token\"\n[ai]\ningest_token = \"ingest-token\"\n[host]\ninterval = \"1s\"\n";
    let daemon = Daemon::start_ready(Some(protected), &[]);
    let auth = [("Authorization", "Bearer reload-token")];
    let reload_ok = |daemon: &Daemon| {
        common::Exposition::parse(&daemon.get("/metrics", &auth).body)
            .value("prismwatch_config_last_reload_successful")
    };
    assert_eq!(reload_ok(&daemon), Some(1.0));

    // An empty file (a failed write) and a comment-only one are refused: auth stays on.
    for (attempt, empty) in ["", "# managed by config management\n"].iter().enumerate() {
        std::fs::write(daemon.config_path(), empty).expect("write config");
        daemon.signal(Signal::HUP);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while daemon.logs().matches("has no settings").count() <= attempt {
            assert!(std::time::Instant::now() < deadline, "{}", daemon.logs());
            std::thread::sleep(Duration::from_millis(50));
        }
        assert_eq!(reload_ok(&daemon), Some(0.0));
        assert_eq!(daemon.get("/metrics", &[]).status, 401);
        assert_eq!(daemon.get("/metrics", &auth).status, 200);
    }
    assert!(daemon.logs().contains("Configuration reload refused"));

    // A real file without the tokens is applied, with a warning naming what was removed.
    std::fs::write(daemon.config_path(), "[host]\ninterval = \"1s\"\n").expect("write config");
    daemon.signal(Signal::HUP);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while daemon.get("/metrics", &[]).status != 200 {
        assert!(std::time::Instant::now() < deadline, "{}", daemon.logs());
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(reload_ok(&daemon), Some(1.0));
    let logs = daemon.logs();
    let warning = logs
        .lines()
        .find(|line| line.contains("removes protection"))
        .unwrap_or_else(|| panic!("no warning: {logs}"));
    assert!(warning.contains("WARN"), "{warning}");
    assert!(
        warning.contains("web.bearer_token") && warning.contains("ai.ingest_token"),
        "{warning}"
    );
    assert!(!logs.contains("reload-token") && !logs.contains("ingest-token"));
}

#[test]
fn sighup_moves_the_listener_and_keeps_the_history() {
    let mut daemon = Daemon::start_listening_from_config(
        "[web]\nlisten = \"{listen}\"\n[host]\ninterval = \"1s\"\n",
        &[],
    );
    daemon.wait_ready();
    std::thread::sleep(Duration::from_millis(1_500));
    let samples_before = daemon
        .scrape()
        .value("prismwatch_history_samples")
        .unwrap_or(0.0);
    let old_address = daemon.address.clone();
    let new_address = format!("127.0.0.1:{}", common::free_port());
    std::fs::write(
        daemon.config_path(),
        format!("[web]\nlisten = \"{new_address}\"\n[host]\ninterval = \"1s\"\n"),
    )
    .expect("write config");
    daemon.signal(Signal::HUP);
    common::wait_http_ok(&new_address, "/metrics");
    daemon.address = new_address;
    // The old listener is closed once the reload finished.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while common::get(&old_address, "/healthz", &[]).is_ok() {
        assert!(
            std::time::Instant::now() < deadline,
            "old listener still open"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // The history carried over: the maintenance tick reports at least as many samples.
    std::thread::sleep(Duration::from_millis(5_500));
    let samples_after = daemon
        .scrape()
        .value("prismwatch_history_samples")
        .unwrap_or(0.0);
    assert!(
        samples_after >= samples_before,
        "{samples_after} < {samples_before}"
    );
    daemon.signal(Signal::TERM);
    assert!(daemon.wait_exit(Duration::from_secs(5)).is_some());
}

#[test]
fn sigterm_stops_cleanly_within_five_seconds() {
    let mut daemon = Daemon::start_ready(None, &["--host-interval", "1s"]);
    // Keep a connection busy to check it does not hold the shutdown up.
    let _idle = std::net::TcpStream::connect(&daemon.address).expect("connect");
    daemon.signal(Signal::TERM);
    let (code, took) = daemon
        .wait_exit(Duration::from_secs(5))
        .expect("exited within 5 s");
    assert_eq!(code, 0, "{}", daemon.logs());
    assert!(took < Duration::from_secs(5));
    assert!(
        daemon.logs().contains("Shutting down."),
        "{}",
        daemon.logs()
    );
}

#[test]
fn health_and_readiness_answer() {
    let daemon = Daemon::start_ready(None, &[]);
    assert_eq!(daemon.get("/healthz", &[]).status, 200);
    let ready = daemon.get("/readyz", &[]);
    assert_eq!((ready.status, ready.body.as_str()), (200, "ready\n"));
    assert_eq!(daemon.get("/nope", &[]).status, 404);
}
