//! systemd integration: the unit's hardening score, and the notify protocol (READY, STATUS,
//! WATCHDOG, STOPPING) spoken over a real `NOTIFY_SOCKET`.

mod common;

use std::os::unix::net::UnixDatagram;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{Daemon, require_program};

#[test]
fn the_unit_is_hardened_to_an_exposure_of_at_most_1_5() {
    let analyze = require_program("systemd-analyze", "systemd");
    let unit = concat!(env!("CARGO_MANIFEST_DIR"), "/systemd/prismwatch.service");
    let output = Command::new(analyze)
        .args(["security", "--offline=yes", unit])
        .output()
        .expect("run systemd-analyze");
    let text = String::from_utf8_lossy(&output.stdout).to_string()
        + &String::from_utf8_lossy(&output.stderr);
    let score: f64 = text
        .lines()
        .find_map(|l| {
            l.split("Overall exposure level for prismwatch.service:")
                .nth(1)
        })
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no score in:\n{text}"));
    assert!(score <= 1.5, "exposure {score} > 1.5:\n{text}");
}

#[test]
fn notify_protocol_reports_ready_status_watchdog_and_stopping() {
    let dir = tempfile::tempdir().expect("temp dir");
    let socket_path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).expect("bind notify socket");
    socket
        .set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    let socket_env = socket_path.display().to_string();
    let mut daemon = Daemon::start_with_env(
        None,
        &["--host-interval", "1s"],
        &[("NOTIFY_SOCKET", &socket_env), ("WATCHDOG_USEC", "400000")],
    );
    let mut messages = Vec::new();
    let receive_until = |messages: &mut Vec<String>, wanted: &str| {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut buffer = [0u8; 4096];
        while Instant::now() < deadline {
            if messages.iter().any(|m| m.contains(wanted)) {
                return;
            }
            if let Ok(n) = socket.recv(&mut buffer) {
                messages.push(String::from_utf8_lossy(&buffer[..n]).to_string());
            }
        }
        panic!("no `{wanted}` from the daemon; got {messages:?}");
    };
    receive_until(&mut messages, "READY=1");
    receive_until(&mut messages, "STATUS=Serving on");
    // Watchdog pings come every half period (200 ms): about five in a second.
    let deadline = Instant::now() + Duration::from_secs(1);
    let mut buffer = [0u8; 4096];
    while Instant::now() < deadline {
        if let Ok(n) = socket.recv(&mut buffer) {
            messages.push(String::from_utf8_lossy(&buffer[..n]).to_string());
        }
    }
    let pings = messages.iter().filter(|m| m.contains("WATCHDOG=1")).count();
    assert!(
        pings >= 3,
        "{pings} watchdog pings in a second: {messages:?}"
    );
    daemon.signal(rustix::process::Signal::TERM);
    receive_until(&mut messages, "STOPPING=1");
    assert!(daemon.wait_exit(Duration::from_secs(5)).is_some());
}

#[test]
fn json_logs_are_one_object_per_line() {
    let mut daemon = Daemon::start_ready(None, &["--log-format", "json"]);
    daemon.signal(rustix::process::Signal::TERM);
    assert!(daemon.wait_exit(Duration::from_secs(5)).is_some());
    let logs = daemon.logs();
    let lines: Vec<&str> = logs.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(lines.len() >= 2, "{logs}");
    for line in lines {
        assert!(
            line.starts_with('{') && line.ends_with('}'),
            "not JSON: {line}"
        );
        assert!(line.contains("\"level\":"), "{line}");
    }
    assert!(logs.contains("Serving metrics on http://"), "{logs}");
}
