//! E-mail notifications end to end: the real daemon evaluates a rule, routes the alert through
//! an Alertmanager configuration and delivers it to a real SMTP server (aiosmtpd), including
//! the server's faults.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::notify::{alerting_file, config, outbox_rows, wait_log, window_rule};
use common::smtp::{SmtpSink, subjects};
use common::{Daemon, free_port};

fn now_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

#[test]
fn a_firing_and_resolved_alert_arrive_as_one_thread_with_both_bodies() {
    let work = tempfile::tempdir().expect("tempdir");
    let smtp = SmtpSink::start(work.path(), &[]);
    let start = now_s();
    let rules = window_rule(work.path(), "Window", start - 10, start + 4);
    let alerting = alerting_file(work.path(), smtp.port, &["a@example.com"], "");
    let daemon = Daemon::start(Some(&config(&[rules], &alerting)), &[]);
    let mails = smtp.wait_for("a firing and a resolved mail", 20, |m| m.len() >= 2);
    assert_eq!(
        subjects(&mails),
        vec![
            "[FIRING:1] Window (web-1 page)".to_string(),
            "[RESOLVED] Window (web-1 page)".to_string()
        ],
        "{}",
        daemon.logs()
    );
    let (firing, resolved) = (&mails[0], &mails[1]);
    assert_eq!(firing.from, "alerts@example.com");
    assert_eq!(firing.to, vec!["a@example.com"]);
    assert_eq!(firing.header("X-Team").as_deref(), Some("db"));
    assert!(
        firing
            .header("Content-Type")
            .is_some_and(|c| c.starts_with("multipart/alternative"))
    );
    // One thread: both refer to the group's thread id; each has its own stable Message-ID.
    let thread = firing.header("References").expect("References");
    assert_eq!(resolved.header("References"), Some(thread.clone()));
    assert_eq!(firing.header("In-Reply-To"), Some(thread));
    assert_ne!(firing.header("Message-ID"), resolved.header("Message-ID"));
    // Both bodies say what fired, where, since when, and link the runbook.
    let body = firing.data.replace("=\r\n", "");
    assert!(
        body.contains("text/plain") && body.contains("text/html"),
        "{body}"
    );
    assert!(body.contains("FIRING: Window on web-1 (page)"), "{body}");
    assert!(body.contains("Since: "), "{body}");
    assert!(body.contains("Summary: Window on web-1"), "{body}");
    assert!(body.contains("https://runbooks.example/Window"), "{body}");
    assert!(
        resolved.data.contains("RESOLVED: Window on web-1"),
        "{}",
        resolved.data
    );
    // Nothing more is sent: no duplicate of either.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(smtp.received().len(), 2);
    let metrics = daemon.scrape();
    assert_eq!(
        metrics.value("alertmanager_notifications_total{integration=\"email\"}"),
        Some(2.0)
    );
}

#[test]
fn a_451_is_retried_and_a_550_rejects_only_its_recipient() {
    let work = tempfile::tempdir().expect("tempdir");
    let smtp = SmtpSink::start(
        work.path(),
        &["--fail-data", "1", "--reject", "gone@example.com"],
    );
    let start = now_s();
    let rules = window_rule(work.path(), "Busy", start - 10, start + 3600);
    let alerting = alerting_file(
        work.path(),
        smtp.port,
        &["gone@example.com", "b@example.com"],
        "",
    );
    let daemon = Daemon::start(Some(&config(&[rules], &alerting)), &[]);
    let mails = smtp.wait_for("the mail for b after a 451", 20, |m| !m.is_empty());
    assert_eq!(mails.len(), 1);
    assert_eq!(mails[0].to, vec!["b@example.com"]);
    // Both recipients are in the To header of the one message.
    assert!(
        mails[0]
            .header("To")
            .is_some_and(|t| t.contains("gone@example.com"))
    );
    let logs = wait_log(&daemon, "No such user", 10);
    assert!(
        logs.contains("451"),
        "the 451 was logged as a retry: {logs}"
    );
    // The server's acceptance is committed a moment after the mail arrived.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut outbox = outbox_rows(&daemon);
    while !outbox
        .iter()
        .any(|(t, state, _)| t == "b@example.com" && state == "delivered")
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(50));
        outbox = outbox_rows(&daemon);
    }
    assert!(
        outbox
            .iter()
            .any(|(target, state, error)| target == "gone@example.com"
                && state == "failed"
                && error.contains("550")),
        "{outbox:?}"
    );
    assert!(
        outbox
            .iter()
            .any(|(target, state, _)| target == "b@example.com" && state == "delivered"),
        "{outbox:?}"
    );
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(smtp.received().len(), 1, "the 550 is not retried");
}

#[test]
fn a_server_that_never_greets_is_timed_out_and_retried() {
    let work = tempfile::tempdir().expect("tempdir");
    let silent = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = silent.local_addr().expect("addr").port();
    // Accept and hold every connection, never saying a word.
    let held = std::thread::spawn(move || {
        let mut sockets = Vec::new();
        for _ in 0..1 {
            if let Ok((socket, _)) = silent.accept() {
                sockets.push(socket);
            }
        }
        std::thread::sleep(Duration::from_secs(12));
        drop(sockets);
    });
    let start = now_s();
    let rules = window_rule(work.path(), "Hung", start - 10, start + 3600);
    let alerting = alerting_file(work.path(), port, &["a@example.com"], "");
    let daemon = Daemon::start(Some(&config(&[rules], &alerting)), &[]);
    let logs = wait_log(&daemon, "did not complete the delivery", 25);
    assert!(logs.contains("retrying"), "{logs}");
    let outbox = outbox_rows(&daemon);
    assert!(
        outbox.iter().all(|(_, state, _)| state == "pending"),
        "a timeout is retried, never given up: {outbox:?}"
    );
    let _ = held.join();
}

#[test]
fn a_connection_dropped_after_data_is_sent_again_with_the_same_message_id() {
    let work = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let listener = TcpListener::bind(("127.0.0.1", port)).expect("bind");
    // A server that takes the whole message, then drops the connection instead of answering.
    let dropper = std::thread::spawn(move || -> Option<String> {
        let (mut socket, _) = listener.accept().ok()?;
        let mut reader = BufReader::new(socket.try_clone().ok()?);
        socket.write_all(b"220 dropper ESMTP\r\n").ok()?;
        let mut data = String::new();
        let mut in_data = false;
        let mut line = String::new();
        loop {
            line.clear();
            if reader.read_line(&mut line).ok()? == 0 {
                return None;
            }
            if in_data {
                if line == ".\r\n" {
                    return Some(data); // drop without the final answer
                }
                data.push_str(&line);
                continue;
            }
            let verb = line.get(..4).unwrap_or("").to_ascii_uppercase();
            let answer: &[u8] = match verb.as_str() {
                "EHLO" | "HELO" => b"250 dropper\r\n",
                "DATA" => {
                    in_data = true;
                    b"354 go ahead\r\n"
                }
                _ => b"250 OK\r\n",
            };
            socket.write_all(answer).ok()?;
        }
    });
    let start = now_s();
    let rules = window_rule(work.path(), "Dropped", start - 10, start + 3600);
    let alerting = alerting_file(work.path(), port, &["a@example.com"], "");
    let daemon = Daemon::start(Some(&config(&[rules], &alerting)), &[]);
    let dropped = dropper
        .join()
        .expect("dropper")
        .expect("a message reached DATA");
    let first_id = dropped
        .lines()
        .find_map(|l| l.strip_prefix("Message-ID: "))
        .map(|s| s.trim().to_string())
        .expect("Message-ID");
    // The real server takes the port; the retry delivers the same message.
    let smtp = SmtpSink::start_on(port, work.path(), &[]);
    let mails = smtp.wait_for("the retried mail", 20, |m| !m.is_empty());
    assert_eq!(
        mails[0].header("Message-ID"),
        Some(first_id),
        "{}",
        daemon.logs()
    );
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(smtp.received().len(), 1);
}
