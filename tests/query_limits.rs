//! The query API's limits against hostile or careless clients: times outside Prometheus' range
//! refused (and such `@` times refused when rules load), the operator bound counted in any case,
//! and a timeout, a concurrency limit and cancellation that stop the evaluation itself, with
//! the error types Prometheus answers. Health probes keep answering meanwhile.

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

use common::{Daemon, wait_for};

/// A range query that evaluates `vector(1)` 118 million times (11,001 steps of a subquery of
/// 10,800 steps): minutes of work that loads no samples, so only a timeout or a cancellation
/// can stop it.
const HEAVY_RANGE: &str = "query=max_over_time(vector(1)[30h:10s])&start=0&end=11000&step=1";

fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'=' | b'&' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn post_form(daemon: &Daemon, path: &str, form: &str) -> common::Response {
    daemon.post(
        path,
        &[("Content-Type", "application/x-www-form-urlencoded")],
        encode(form).as_bytes(),
    )
}

fn json(response: &common::Response) -> serde_json::Value {
    serde_json::from_str(&response.body)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", response.body))
}

fn limited_daemon(timeout: &str, max_concurrency: u32) -> Daemon {
    let config = format!("[query]\ntimeout = \"{timeout}\"\nmax_concurrency = {max_concurrency}\n");
    Daemon::start_ready(Some(&config), &[])
}

#[test]
fn times_outside_prometheus_range_are_refused() {
    let daemon = Daemon::start_ready(None, &[]);
    for (path, form, parameter) in [
        (
            "/api/v1/query_range",
            "query=vector(1)&start=1e300&end=1e300&step=1",
            "start",
        ),
        (
            "/api/v1/query",
            "query=max_over_time(vector(1)[5m:1m])&time=1e300",
            "time",
        ),
        ("/api/v1/query", "query=vector(1)&time=-1e300", "time"),
        ("/api/v1/series", "match[]=up&end=1e300", "end"),
    ] {
        let refused = post_form(&daemon, path, form);
        assert_eq!(refused.status, 400, "{form}: {}", refused.body);
        let body = json(&refused);
        assert_eq!(body["errorType"], "bad_data", "{body}");
        let message = body["error"].as_str().unwrap_or_default();
        assert!(
            message.starts_with(&format!("invalid parameter \"{parameter}\": cannot parse")),
            "{message}"
        );
    }
    // The edge of the range itself is a valid time, and the evaluation there ends.
    let edge = post_form(
        &daemon,
        "/api/v1/query",
        "query=max_over_time(vector(1)[5m:1m])&time=9223309901257974",
    );
    assert_eq!(edge.status, 200, "{}", edge.body);
    assert_eq!(json(&edge)["data"]["result"][0]["value"][1], "1");
    assert_eq!(daemon.get("/healthz", &[]).status, 200);
}

#[test]
fn rules_with_an_at_outside_the_range_are_refused_at_load() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("far.yml");
    std::fs::write(
        &path,
        "groups:\n  - name: far\n    rules:\n      - record: far\n        expr: vector(1) + up @ 9223372036854775\n",
    )
    .expect("write rules");
    let output = Command::new(env!("CARGO_BIN_EXE_prismwatch"))
        .args(["rules", "check"])
        .arg(&path)
        .output()
        .expect("run rules check");
    let text = String::from_utf8_lossy(&output.stderr).to_string()
        + &String::from_utf8_lossy(&output.stdout);
    assert_ne!(output.status.code(), Some(0), "{text}");
    assert!(
        text.contains("rule \"far\": expr: 1:16: timestamp out of bounds for @ modifier"),
        "{text}"
    );

    // The daemon refuses the file as a configuration error (78, EX_CONFIG) instead of
    // evaluating it.
    let mut daemon = Daemon::start(None, &["--rules", &path.display().to_string()]);
    let exit = daemon.wait_exit(Duration::from_secs(10));
    assert_eq!(exit.map(|(code, _)| code), Some(78), "{}", daemon.logs());
    assert!(
        daemon
            .logs()
            .contains("timestamp out of bounds for @ modifier"),
        "{}",
        daemon.logs()
    );
}

#[test]
fn the_operator_bound_counts_upper_case_keywords_and_atan2() {
    let daemon = Daemon::start_ready(None, &[]);
    for op in ["AND", "Or", "UNLESS", "atan2"] {
        let query = vec!["vector(1)"; 10_000].join(&format!(" {op} "));
        let refused = post_form(&daemon, "/api/v1/query", &format!("query={query}"));
        assert_eq!(refused.status, 400, "{op}: {}", refused.body);
        let body = json(&refused);
        assert_eq!(body["errorType"], "bad_data", "{body}");
        assert!(
            body["error"]
                .as_str()
                .is_some_and(|e| e.contains("operators; at most 500")),
            "{body}"
        );
    }
    // Within the bound an upper-case keyword is an operator like any other.
    let query = vec!["vector(1)"; 400].join(" AND ");
    let answered = post_form(&daemon, "/api/v1/query", &format!("query={query}"));
    assert_eq!(answered.status, 200, "{}", answered.body);
    assert_eq!(json(&answered)["data"]["result"][0]["value"][1], "1");
}

#[test]
fn a_query_past_its_timeout_is_stopped_with_prometheus_timeout_error() {
    let daemon = limited_daemon("1s", 1);
    let address = daemon.address.clone();
    let heavy = std::thread::spawn(move || {
        common::request(
            &address,
            "POST",
            "/api/v1/query_range",
            &[("Content-Type", "application/x-www-form-urlencoded")],
            encode(HEAVY_RANGE).as_bytes(),
        )
        .expect("heavy query answered")
    });
    // The evaluation runs on the blocking pool: probes and scrapes are served meanwhile.
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(daemon.get("/healthz", &[]).status, 200);
    assert_eq!(daemon.get("/metrics", &[]).status, 200);
    let answer = heavy.join().expect("heavy query thread");
    assert_eq!(answer.status, 503, "{}", answer.body);
    let body = json(&answer);
    assert_eq!(body["errorType"], "timeout", "{body}");
    assert_eq!(body["error"], "query timed out in expression evaluation");

    // The evaluation itself stopped: it gave its only slot back, so the next query runs.
    wait_for(&daemon, "the timed-out query to stop", 10, |e| {
        e.value(r#"prismwatch_queries_interrupted_total{reason="timeout",stage="evaluation"}"#)
            == Some(1.0)
    });
    let next = post_form(&daemon, "/api/v1/query", "query=vector(7)");
    assert_eq!(next.status, 200, "{}", next.body);
    assert_eq!(json(&next)["data"]["result"][0]["value"][1], "7");
}

#[test]
fn a_query_whose_client_disconnects_is_canceled() {
    // A long timeout, so only the cancellation can stop the query within the test.
    let daemon = limited_daemon("5m", 1);
    let mut client = TcpStream::connect(&daemon.address).expect("connect");
    let body = encode(HEAVY_RANGE);
    write!(
        client,
        "POST /api/v1/query_range HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .expect("send the query");
    std::thread::sleep(Duration::from_millis(500));
    drop(client);
    wait_for(&daemon, "the abandoned query to be canceled", 10, |e| {
        e.value(r#"prismwatch_queries_interrupted_total{reason="canceled",stage="evaluation"}"#)
            == Some(1.0)
    });
    assert_eq!(daemon.get("/healthz", &[]).status, 200);
    // Its slot is free again.
    let next = post_form(&daemon, "/api/v1/query", "query=vector(7)");
    assert_eq!(next.status, 200, "{}", next.body);
}
