//! Never lost, never twice: alerts fire and resolve while the mail server is down, the daemon
//! is killed with SIGKILL at a random moment, the mail server comes back, the daemon comes
//! back, and every notification arrives exactly once.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::notify::{alerting_file, config, now_s, outbox_rows, random_below, window_rule};
use common::smtp::SmtpSink;
use common::{Daemon, free_port};

/// One run of the scenario with the kill `extra_ms` after all three notifications were queued.
fn fire_resolve_kill_recover(extra_ms: u64) {
    let work = tempfile::tempdir().expect("tempdir");
    let port = free_port(); // nothing listens: the mail server is down
    let start = now_s();
    let short = window_rule(work.path(), "Short", start - 10, start + 2);
    let long = window_rule(work.path(), "Long", start - 10, start + 3600);
    let alerting = alerting_file(work.path(), port, &["a@example.com"], "");
    let mut daemon = Daemon::start(Some(&config(&[short, long], &alerting)), &[]);
    // Short fires and resolves, Long fires: three notifications queued, none delivered.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while outbox_rows(&daemon).len() < 3 {
        assert!(
            std::time::Instant::now() < deadline,
            "three notifications not queued within 20 s: {:?}\n{}",
            outbox_rows(&daemon),
            daemon.logs()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(extra_ms));
    daemon.signal(rustix::process::Signal::KILL);
    assert!(daemon.wait_exit(Duration::from_secs(5)).is_some());
    let smtp = SmtpSink::start_on(port, work.path(), &[]);
    daemon.restart();
    smtp.wait_for("Short firing and resolved, Long firing", 20, |m| {
        m.len() >= 3
    });
    std::thread::sleep(Duration::from_secs(3));
    let mails = smtp.received();
    let mut subjects: Vec<String> = mails
        .iter()
        .map(|m| m.header("Subject").unwrap_or_default())
        .collect();
    subjects.sort();
    assert_eq!(
        subjects,
        vec![
            "[FIRING:1] Long (web-1 page)",
            "[FIRING:1] Short (web-1 page)",
            "[RESOLVED] Short (web-1 page)",
        ],
        "kill {extra_ms} ms after queueing\n{}",
        daemon.logs()
    );
    let mut ids: BTreeMap<String, usize> = BTreeMap::new();
    for mail in &mails {
        *ids.entry(mail.header("Message-ID").unwrap_or_default())
            .or_default() += 1;
    }
    assert!(ids.values().all(|n| *n == 1), "a Message-ID twice: {ids:?}");
    assert!(
        outbox_rows(&daemon)
            .iter()
            .all(|(_, state, _)| state == "delivered"),
        "{:?}",
        outbox_rows(&daemon)
    );
}

#[test]
fn notifications_queued_while_the_mail_server_is_down_survive_a_kill_at_random_moments() {
    for _ in 0..3 {
        let extra_ms = random_below(2_500);
        eprintln!("kill point: {extra_ms} ms after the three notifications were queued");
        fire_resolve_kill_recover(extra_ms);
    }
}
