//! Grouping, repeat, inhibition and time intervals through the real daemon and a real SMTP
//! server, with short durations set in the Alertmanager file (no clock is mocked).

mod common;

use std::path::Path;
use std::time::Duration;

use common::Daemon;
use common::notify::config;
use common::smtp::{Received, SmtpSink, subjects};

/// A rule file of always-firing alerts: (name, labels as `k: v` lines).
fn rules(dir: &Path, alerts: &[(&str, &[(&str, &str)])]) -> String {
    let mut text = String::from("groups:\n  - name: routing\n    interval: 1s\n    rules:\n");
    for (name, labels) in alerts {
        text.push_str(&format!(
            "      - alert: {name}\n        expr: vector(1)\n        labels:\n"
        ));
        for (k, v) in *labels {
            text.push_str(&format!("          {k}: {v}\n"));
        }
    }
    let path = dir.join("routing.rules.yml");
    std::fs::write(&path, text).expect("write rules");
    path.display().to_string()
}

fn alerting(dir: &Path, port: u16, body: &str) -> String {
    let path = dir.join("alertmanager.yml");
    std::fs::write(
        &path,
        format!(
            "global:\n  smtp_smarthost: 127.0.0.1:{port}\n  smtp_from: a@example.com\n  smtp_require_tls: false\n{body}receivers:\n  - name: mail\n    email_configs:\n      - to: oncall@example.com\n"
        ),
    )
    .expect("write alerting file");
    path.display().to_string()
}

#[test]
fn alerts_of_a_group_share_one_mail_and_repeat_on_the_repeat_interval() {
    let work = tempfile::tempdir().expect("tempdir");
    let smtp = SmtpSink::start(work.path(), &[]);
    let rules = rules(
        work.path(),
        &[("DiskA", &[("team", "db")]), ("DiskB", &[("team", "db")])],
    );
    let alerting = alerting(
        work.path(),
        smtp.port,
        "route:\n  receiver: mail\n  group_by: [team]\n  group_wait: 2s\n  group_interval: 1s\n  repeat_interval: 3s\n",
    );
    let _daemon = Daemon::start_ready(Some(&config(&[rules], &alerting)), &[]);
    let mails = smtp.wait_for("a first mail and a repeat", 20, |m| m.len() >= 2);
    let subjects = subjects(&mails);
    // group_wait collects both alerts: no mail with only one of them.
    assert!(
        subjects.iter().all(|s| s.starts_with("[FIRING:2] db")),
        "{subjects:?}"
    );
    let body = mails[0].data.replace("=\r\n", "");
    assert!(body.contains("DiskA") && body.contains("DiskB"), "{body}");
    // The repeat is in the first mail's thread: both refer to the group's thread root.
    let thread = |m: &Received| m.header("References").unwrap_or_default();
    assert!(!thread(&mails[0]).is_empty());
    assert_eq!(thread(&mails[0]), thread(&mails[1]));
    assert_ne!(mails[0].header("Message-ID"), mails[1].header("Message-ID"));
}

#[test]
fn an_inhibited_alert_is_not_mailed_while_its_source_fires() {
    let work = tempfile::tempdir().expect("tempdir");
    let smtp = SmtpSink::start(work.path(), &[]);
    let rules = rules(
        work.path(),
        &[
            ("HostDown", &[("severity", "critical")]),
            ("DiskSlow", &[("severity", "warning")]),
        ],
    );
    let alerting = alerting(
        work.path(),
        smtp.port,
        "route:\n  receiver: mail\n  group_by: [alertname]\n  group_wait: 0s\n  group_interval: 1s\ninhibit_rules:\n  - source_matchers: [severity=\"critical\"]\n    target_matchers: [severity=\"warning\"]\n    equal: [instance]\n",
    );
    let daemon = Daemon::start_ready(Some(&config(&[rules], &alerting)), &[]);
    smtp.wait_for("HostDown's mail", 20, |m| {
        subjects(m).iter().any(|s| s.contains("HostDown"))
    });
    std::thread::sleep(Duration::from_secs(4));
    let subjects = subjects(&smtp.received());
    assert!(
        subjects.iter().all(|s| !s.contains("DiskSlow")),
        "an inhibited alert was mailed: {subjects:?}"
    );
    let alerts: serde_json::Value =
        serde_json::from_str(&daemon.get("/api/v2/alerts", &[]).body).expect("JSON");
    let disk = alerts
        .as_array()
        .into_iter()
        .flatten()
        .find(|a| a["labels"]["alertname"] == "DiskSlow")
        .cloned()
        .expect("DiskSlow listed");
    assert_eq!(disk["status"]["state"], "suppressed", "{disk}");
}

#[test]
fn mute_and_active_time_intervals_hold_mail_back() {
    let work = tempfile::tempdir().expect("tempdir");
    let smtp = SmtpSink::start(work.path(), &[]);
    let rules = rules(
        work.path(),
        &[
            ("Loud", &[("kind", "loud")]),
            ("Muted", &[("kind", "muted")]),
            ("OffHours", &[("kind", "off")]),
        ],
    );
    // `always` covers every minute; `never` only a day of the month that does not exist.
    let alerting = alerting(
        work.path(),
        smtp.port,
        "route:\n  receiver: mail\n  group_by: [alertname]\n  group_wait: 0s\n  group_interval: 1s\n  routes:\n    - matchers: [kind=\"muted\"]\n      mute_time_intervals: [always]\n    - matchers: [kind=\"off\"]\n      active_time_intervals: [never]\ntime_intervals:\n  - name: always\n    time_intervals:\n      - times:\n          - start_time: \"00:00\"\n            end_time: \"24:00\"\n  - name: never\n    time_intervals:\n      - months: [\"february\"]\n        days_of_month: [\"30\"]\n",
    );
    let _daemon = Daemon::start_ready(Some(&config(&[rules], &alerting)), &[]);
    smtp.wait_for("Loud's mail", 20, |m| {
        subjects(m).iter().any(|s| s.contains("Loud"))
    });
    std::thread::sleep(Duration::from_secs(4));
    let subjects = subjects(&smtp.received());
    assert!(
        subjects
            .iter()
            .all(|s| !s.contains("Muted") && !s.contains("OffHours")),
        "mail outside its time intervals: {subjects:?}"
    );
}
