//! Helpers for the notification tests: rule files that fire in a time window, an Alertmanager
//! file for one e-mail receiver, the daemon's TOML, and reading the outbox.

use std::path::Path;
use std::time::Duration;

use super::Daemon;

/// A rule that fires from `from` until `until` (epoch seconds), evaluated every second.
pub fn window_rule(dir: &Path, name: &str, from: u64, until: u64) -> String {
    let path = dir.join(format!("{name}.rules.yml"));
    std::fs::write(
        &path,
        format!(
            r#"groups:
  - name: {name}
    interval: 1s
    rules:
      - alert: {name}
        expr: vector(time()) > {from} < {until}
        labels:
          severity: page
        annotations:
          summary: "{name} on {{{{ $externalLabels.instance }}}}"
          description: "The test window of {name} is open."
          runbook_url: "https://runbooks.example/{name}"
"#
        ),
    )
    .expect("write rules");
    path.display().to_string()
}

/// The Alertmanager file: one e-mail receiver to `to` on `port`, short timers.
pub fn alerting_file(dir: &Path, port: u16, to: &[&str], extra_route: &str) -> String {
    let path = dir.join("alertmanager.yml");
    let to = to.join(", ");
    std::fs::write(
        &path,
        format!(
            r#"global:
  smtp_smarthost: 127.0.0.1:{port}
  smtp_from: "prismwatch <alerts@example.com>"
  smtp_require_tls: false
route:
  receiver: oncall
  group_by: [alertname]
  group_wait: 0s
  group_interval: 1s
  repeat_interval: 1h
{extra_route}
receivers:
  - name: oncall
    email_configs:
      - to: "{to}"
        send_resolved: true
        headers:
          X-Team: db
"#
        ),
    )
    .expect("write alerting file");
    path.display().to_string()
}

pub fn config(rules: &[String], alerting: &str) -> String {
    let rules: Vec<String> = rules.iter().map(|r| format!("{r:?}")).collect();
    format!(
        "rules = [{}]\nexternal_labels = {{ instance = \"web-1\" }}\n[host]\nenabled = false\n[alerting]\nconfig_file = {alerting:?}\n",
        rules.join(", ")
    )
}

/// Waits until the daemon's log contains `needle`; returns the log.
pub fn wait_log(daemon: &Daemon, needle: &str, seconds: u64) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(seconds);
    loop {
        let logs = daemon.logs();
        if logs.contains(needle) {
            return logs;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no `{needle}` in the log within {seconds} s:\n{logs}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// (target, state, last_error) of every outbox row, read through a second connection (WAL
/// lets a reader in while the daemon writes); empty until the daemon has created the store.
pub fn outbox_rows(daemon: &Daemon) -> Vec<(String, String, String)> {
    let path = daemon.state_dir().join("prismwatch.db");
    if !path.exists() {
        return Vec::new();
    }
    let read = || -> rusqlite::Result<Vec<(String, String, String)>> {
        let connection = rusqlite::Connection::open_with_flags(
            &path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )?;
        let mut statement = connection.prepare(
            "SELECT target, state, coalesce(last_error, '') FROM notify_outbox ORDER BY id",
        )?;
        statement
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect()
    };
    read().unwrap_or_default()
}

/// Seconds since the epoch.
pub fn now_s() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

/// A pseudo-random number below `bound` (tests pick kill points with it; the value is printed so
/// a failure can be replayed).
pub fn random_below(bound: u64) -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .subsec_nanos() as u64;
    (nanos ^ (nanos >> 7)).wrapping_mul(0x9E37_79B9_7F4A_7C15) % bound.max(1)
}
