//! Alertmanager's API v2 on the agent, driven by the real `amtool` (Debian's
//! prometheus-alertmanager): alerts are listed, a silence added with amtool keeps its alert's
//! e-mail from being sent while another alert's goes out, silences survive a `kill -9` and
//! expire, and `config show` prints the file with its secrets masked.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::notify::{alerting_file, config, now_s, window_rule};
use common::smtp::SmtpSink;
use common::{Daemon, require_program};

/// Runs amtool against the daemon and returns its stdout; panics with stderr on failure.
fn amtool(daemon: &Daemon, args: &[&str]) -> String {
    let program = require_program("amtool", "prometheus-alertmanager");
    let output = Command::new(program)
        .arg(format!("--alertmanager.url=http://{}", daemon.address))
        .args(args)
        .output()
        .expect("run amtool");
    assert!(
        output.status.success(),
        "amtool {args:?} failed: {}{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
        daemon.logs()
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn prismwatch(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_prismwatch"))
        .args(args)
        .output()
        .expect("run prismwatch")
}

fn json(daemon: &Daemon, path: &str) -> serde_json::Value {
    let response = daemon.get(path, &[]);
    assert_eq!(response.status, 200, "{path}: {}", response.body);
    serde_json::from_str(&response.body).expect("JSON")
}

fn wait_until(what: &str, seconds: u64, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    while !check() {
        assert!(Instant::now() < deadline, "{what} within {seconds} s");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn amtool_lists_alerts_and_its_silences_mute_mail_survive_a_kill_and_expire() {
    let work = tempfile::tempdir().expect("tempdir");
    let smtp = SmtpSink::start(work.path(), &[]);
    let start = now_s();
    // Loud fires at once; Quiet opens 6 s later, after the silence is in place.
    let loud = window_rule(work.path(), "Loud", start - 10, start + 3600);
    let quiet = window_rule(work.path(), "Quiet", start + 6, start + 3600);
    let alerting = alerting_file(work.path(), smtp.port, &["a@example.com"], "");
    let mut daemon = Daemon::start_ready(Some(&config(&[loud, quiet], &alerting)), &[]);

    let id = amtool(
        &daemon,
        &[
            "silence",
            "add",
            "alertname=Quiet",
            "--author=oncall",
            "--comment=maintenance",
            "--duration=1h",
        ],
    )
    .trim()
    .to_string();
    assert_eq!(id.len(), 36, "amtool printed the silence ID: {id}");

    // Loud is mailed; Quiet fires, is listed as suppressed by the silence, and is not mailed.
    smtp.wait_for("Loud's mail", 20, |mails| {
        mails
            .iter()
            .any(|m| m.header("Subject").unwrap_or_default().contains("Loud"))
    });
    wait_until("Quiet firing and suppressed", 20, || {
        json(&daemon, "/api/v2/alerts")
            .as_array()
            .expect("alerts")
            .iter()
            .any(|a| {
                a["labels"]["alertname"] == "Quiet"
                    && a["status"]["state"] == "suppressed"
                    && a["status"]["silencedBy"][0] == id.as_str()
            })
    });
    std::thread::sleep(Duration::from_secs(3));
    let subjects = common::smtp::subjects(&smtp.received());
    assert!(
        subjects.iter().all(|s| !s.contains("Quiet")),
        "a silenced alert was mailed: {subjects:?}"
    );

    // amtool reads the same: alerts by filter, silences, receivers in the shown config.
    let listed = amtool(&daemon, &["alert", "query", "-o", "json", "alertname=Loud"]);
    let listed: serde_json::Value = serde_json::from_str(&listed).expect("amtool JSON");
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed}");
    assert_eq!(listed[0]["labels"]["instance"], "web-1");
    let silenced = amtool(&daemon, &["alert", "query", "--silenced", "-o", "json"]);
    assert!(silenced.contains("Quiet"), "{silenced}");
    let queried = amtool(&daemon, &["silence", "query", "-q"]);
    assert_eq!(queried.trim(), id);
    let shown = amtool(&daemon, &["config", "show"]);
    assert!(shown.contains("receiver: oncall"), "{shown}");
    // prismwatch's own listing says the same.
    let table = prismwatch(&["alerts", "--url", &format!("http://{}", daemon.address)]);
    assert!(
        table.status.success(),
        "{}",
        String::from_utf8_lossy(&table.stderr)
    );
    let table = String::from_utf8_lossy(&table.stdout).into_owned();
    let loud_line = table
        .lines()
        .find(|l| l.starts_with("Loud "))
        .unwrap_or_default();
    assert!(
        loud_line.contains("active") && loud_line.contains("instance=web-1"),
        "{table}"
    );
    let quiet_line = table
        .lines()
        .find(|l| l.starts_with("Quiet "))
        .unwrap_or_default();
    assert!(quiet_line.contains(&format!("silenced ({id})")), "{table}");

    // The silence survives a kill -9, then amtool expires it and Quiet is mailed.
    daemon.signal(rustix::process::Signal::KILL);
    assert!(daemon.wait_exit(Duration::from_secs(5)).is_some());
    daemon.restart();
    daemon.wait_ready();
    let queried = amtool(&daemon, &["silence", "query", "-q"]);
    assert_eq!(queried.trim(), id, "the silence was lost in a restart");
    amtool(&daemon, &["silence", "expire", &id]);
    assert_eq!(amtool(&daemon, &["silence", "query", "-q"]).trim(), "");
    let expired = amtool(&daemon, &["silence", "query", "--expired", "-q"]);
    assert_eq!(expired.trim(), id);
    smtp.wait_for("Quiet's mail once the silence expired", 20, |mails| {
        mails
            .iter()
            .any(|m| m.header("Subject").unwrap_or_default().contains("Quiet"))
    });
}

#[test]
fn bad_silences_are_refused_and_secrets_are_masked_in_the_status() {
    let work = tempfile::tempdir().expect("tempdir");
    let alerting = work.path().join("alertmanager.yml");
    std::fs::write(
        &alerting,
        "global:\n  smtp_smarthost: 127.0.0.1:25\n  smtp_from: a@example.com\n  smtp_auth_username: u\n  smtp_auth_password: hunter2\nroute:\n  receiver: mail\nreceivers:\n  - name: mail\n    email_configs:\n      - to: b@example.com\n",
    )
    .expect("write");
    let daemon = Daemon::start_ready(Some(&config(&[], &alerting.display().to_string())), &[]);
    wait_until("the configuration in force", 10, || {
        json(&daemon, "/api/v2/receivers") != serde_json::json!([])
    });
    let status = json(&daemon, "/api/v2/status");
    let original = status["config"]["original"].as_str().expect("original");
    assert!(!original.contains("hunter2"), "{original}");
    assert!(
        original.contains("smtp_auth_password: <secret>"),
        "{original}"
    );
    assert_eq!(status["cluster"]["status"], "disabled");
    let receivers = json(&daemon, "/api/v2/receivers");
    assert_eq!(receivers, serde_json::json!([{"name": "mail"}]));
    for body in [
        "{ not json",
        r#"{"matchers":[],"startsAt":"2020-01-01T00:00:00Z","endsAt":"2099-01-01T00:00:00Z","createdBy":"a","comment":"c"}"#,
        r#"{"matchers":[{"name":"a","value":"b","isRegex":false}],"startsAt":"2020-01-01T00:00:00Z","endsAt":"2020-01-02T00:00:00Z","createdBy":"a","comment":"c"}"#,
    ] {
        let response = daemon.post("/api/v2/silences", &[], body.as_bytes());
        assert_eq!(response.status, 400, "{body}: {}", response.body);
    }
    let unknown = daemon.post(
        "/api/v2/silences",
        &[],
        br#"{"id":"nope","matchers":[{"name":"a","value":"b","isRegex":false}],"startsAt":"2020-01-01T00:00:00Z","endsAt":"2099-01-01T00:00:00Z","createdBy":"a","comment":"c"}"#,
    );
    assert_eq!(unknown.status, 404, "{}", unknown.body);
    assert_eq!(json(&daemon, "/api/v2/silences"), serde_json::json!([]));
}

#[test]
fn notify_test_sends_through_the_real_path_and_prints_each_server_answer() {
    let work = tempfile::tempdir().expect("tempdir");
    let smtp = SmtpSink::start(work.path(), &["--reject", "b@example.com"]);
    let alerting = alerting_file(
        work.path(),
        smtp.port,
        &["a@example.com", "b@example.com"],
        "",
    );
    let daemon = Daemon::start_ready(Some(&config(&[], &alerting)), &[]);
    let url = format!("http://{}", daemon.address);
    let output = prismwatch(&["notify", "test", "--url", &url]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    // One recipient refused: the command fails and says which and what the server said.
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("receiver oncall"), "{stdout}");
    let line = |who: &str| {
        stdout
            .lines()
            .find(|l| l.contains(who))
            .unwrap_or_default()
            .to_string()
    };
    assert!(line("a@example.com").contains("delivered: 250"), "{stdout}");
    assert!(
        line("b@example.com").contains("failed: ") && line("b@example.com").contains("550"),
        "{stdout}"
    );
    let mails = smtp.wait_for("the test mail", 10, |m| !m.is_empty());
    let subject = mails[0].header("Subject").unwrap_or_default();
    assert!(subject.contains("PrismwatchTestNotification"), "{subject}");
    // An unknown receiver is refused with the names there are.
    let output = prismwatch(&["notify", "test", "--url", &url, "--receiver", "nope"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr.contains("no receiver `nope`") && stderr.contains("oncall"),
        "{stderr}"
    );
}

#[test]
fn a_changed_alerting_file_is_reloaded_and_a_broken_one_refused() {
    let work = tempfile::tempdir().expect("tempdir");
    let alerting = alerting_file(work.path(), 25, &["a@example.com"], "");
    let daemon = Daemon::start_ready(Some(&config(&[], &alerting)), &[]);
    let receivers = || json(&daemon, "/api/v2/receivers");
    wait_until("the receivers", 10, || {
        receivers() == serde_json::json!([{"name": "oncall"}])
    });
    let text = std::fs::read_to_string(&alerting).expect("read");
    std::fs::write(&alerting, text.replace("oncall", "pager")).expect("rewrite");
    wait_until("the renamed receiver", 15, || {
        receivers() == serde_json::json!([{"name": "pager"}])
    });
    std::fs::write(&alerting, "route: [not a route\n").expect("break");
    common::notify::wait_log(&daemon, "Configuration reload refused", 15);
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(receivers(), serde_json::json!([{"name": "pager"}]));
    assert_eq!(
        daemon
            .logs()
            .matches("Configuration reload refused")
            .count(),
        1,
        "a refused file is tried once per change"
    );
}
