//! AI token spend end to end: the JSON endpoint and a real OpenTelemetry SDK client feed the same
//! counters; prices, budgets, the forecast (checked against SciPy), durability across restarts,
//! the month boundary, and hostile input.

mod common;

use std::process::Command;

use common::{Daemon, wait_for};

const TOKEN: &str = "ingest-t0ken";

fn config(extra: &str) -> String {
    format!(
        "[host]\ninterval = \"5s\"\n\n[ai]\ningest_token = \"{TOKEN}\"\nmonthly_budget_dollars = 10.0\nallowed_labels = [\"feature\"]\ninterval = \"200ms\"\n{extra}"
    )
}

fn bearer() -> String {
    format!("Bearer {TOKEN}")
}

fn post_usage(daemon: &Daemon, body: &str) -> common::Response {
    daemon.post(
        "/api/v1/ai/usage",
        &[
            ("Authorization", &bearer()),
            ("Content-Type", "application/json"),
        ],
        body.as_bytes(),
    )
}

const FLASH: &str = r#"{"provider":"google","model":"gemini-2.5-flash","input_tokens":1000000,"output_tokens":100000,"cached_tokens":200000,"latency_ms":800,"cache_hit":true,"feature":"chat"}"#;

/// gemini-2.5-flash at the shipped snapshot: 0.8M fresh input at $0.30, 0.2M cached at $0.075,
/// 0.1M output at $2.50 per million.
const FLASH_COST: f64 = 0.8 * 0.30 + 0.2 * 0.075 + 0.1 * 2.50;

fn close(a: Option<f64>, b: f64) -> bool {
    a.is_some_and(|a| (a - b).abs() <= 1e-9 * b.abs().max(1.0))
}

#[test]
fn json_usage_is_priced_counted_and_held_against_the_budget() {
    let daemon = Daemon::start_ready(Some(&config("")), &[]);
    let response = post_usage(
        &daemon,
        &format!(
            r#"{{"events":[{FLASH},{{"provider":"acme","model":"x1","input_tokens":5,"output_tokens":5}}]}}"#
        ),
    );
    assert_eq!(
        (response.status, response.body.as_str()),
        (200, r#"{"accepted":2,"unpriced":1}"#)
    );
    let labels = r#"feature="chat",model="gemini-2.5-flash",provider="google""#;
    let e = wait_for(&daemon, "the spend series", 10, |e| {
        e.value(&format!("prismwatch_ai_cost_dollars_total{{{labels}}}"))
            .is_some()
    });
    assert!(close(
        e.value(&format!("prismwatch_ai_cost_dollars_total{{{labels}}}")),
        FLASH_COST
    ));
    assert_eq!(
        e.value(&format!(
            "prismwatch_ai_tokens_total{{{labels},type=\"input\"}}"
        )),
        Some(1_000_000.0)
    );
    assert_eq!(
        e.value(&format!(
            "prismwatch_ai_tokens_total{{{labels},type=\"cached\"}}"
        )),
        Some(200_000.0)
    );
    assert_eq!(
        e.value(&format!(
            "prismwatch_ai_tokens_total{{{labels},type=\"output\"}}"
        )),
        Some(100_000.0)
    );
    assert_eq!(
        e.value(&format!("prismwatch_ai_requests_total{{{labels}}}")),
        Some(1.0)
    );
    // Unknown models are counted and flagged, not priced at zero silently.
    assert_eq!(
        e.value(r#"prismwatch_ai_unpriced_tokens_total{model="x1",provider="acme"}"#),
        Some(10.0)
    );
    assert!(
        daemon.logs().contains("No price for this model"),
        "{}",
        daemon.logs()
    );
    assert!(close(
        e.value(r#"prismwatch_ai_budget_used_ratio{budget="total"}"#),
        FLASH_COST / 10.0
    ));
    assert!(close(
        e.value("prismwatch_ai_month_to_date_dollars"),
        FLASH_COST
    ));
    assert_eq!(e.value("prismwatch_ai_response_cache_hit_ratio"), Some(1.0));
    assert_eq!(e.value(r#"prismwatch_ai_request_duration_seconds_bucket{le="1",model="gemini-2.5-flash",provider="google"}"#), Some(1.0));
    assert_eq!(e.value(r#"prismwatch_ai_request_duration_seconds_bucket{le="0.5",model="gemini-2.5-flash",provider="google"}"#), Some(0.0));
    assert!(
        e.value(r#"prismwatch_ai_forecast_month_end_dollars{bound="estimate"}"#)
            .is_some_and(|v| v >= FLASH_COST)
    );
    assert_eq!(
        e.types
            .get("prismwatch_ai_request_duration_seconds")
            .map(String::as_str),
        Some("histogram")
    );

    // The spend command reads the same state.
    let output = Command::new(env!("CARGO_BIN_EXE_prismwatch"))
        .arg("spend")
        .arg("--config")
        .arg(daemon.config_path())
        .arg("--state-dir")
        .arg(daemon.state_dir())
        .output()
        .expect("run prismwatch spend");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        text.contains("gemini-2.5-flash")
            && text.contains("feature=chat")
            && text.contains("unpriced"),
        "{text}"
    );
    assert!(
        text.contains(&format!("month to date: ${FLASH_COST:.2}")),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "budget: $10.00 ({:.1}% used)",
            FLASH_COST / 10.0 * 100.0
        )),
        "{text}"
    );
}

#[test]
fn hostile_input_is_refused_or_folded_and_nothing_else_is_lost() {
    let daemon = Daemon::start_ready(
        Some(&config("max_body_bytes = 4096\nmax_label_values = 3\n")),
        &[],
    );
    let event = |feature: &str| {
        format!(
            r#"{{"provider":"google","model":"gemini-2.5-flash","input_tokens":100,"output_tokens":10,"feature":"{feature}"}}"#
        )
    };
    // Unauthenticated and wrongly authenticated.
    assert_eq!(
        daemon
            .post("/api/v1/ai/usage", &[], event("a").as_bytes())
            .status,
        401
    );
    assert_eq!(
        daemon
            .post(
                "/api/v1/ai/usage",
                &[("Authorization", "Bearer nope")],
                event("a").as_bytes()
            )
            .status,
        401
    );
    assert_eq!(
        daemon
            .post(
                "/v1/metrics",
                &[("Content-Type", "application/x-protobuf")],
                b""
            )
            .status,
        401
    );
    // Malformed: 400 naming the field, and the whole request is refused.
    let bad = post_usage(
        &daemon,
        &format!(
            r#"{{"events":[{},{{"provider":"google","model":"m","output_tokens":"many"}}]}}"#,
            event("a")
        ),
    );
    assert_eq!(bad.status, 400);
    assert!(
        bad.body
            .contains("events[1].output_tokens: expected a non-negative integer"),
        "{}",
        bad.body
    );
    assert_eq!(post_usage(&daemon, "{not json").status, 400);
    let otlp = daemon.post(
        "/v1/metrics",
        &[
            ("Authorization", &bearer()),
            ("Content-Type", "application/x-protobuf"),
        ],
        b"\xff\xff\xff\xff",
    );
    assert_eq!(otlp.status, 400, "{}", otlp.body);
    // Oversized: 413, declared or not.
    let big = format!(r#"{{"events":[{}]}}"#, vec![event("a"); 60].join(","));
    assert!(big.len() > 4096);
    assert_eq!(post_usage(&daemon, &big).status, 413);
    // A gzip bomb: about 1 KiB on the wire, 1 MiB inflated, refused without inflating it all.
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    std::io::Write::write_all(&mut encoder, &vec![b' '; 1 << 20]).expect("gzip");
    let bomb = encoder.finish().expect("gzip");
    assert!(bomb.len() < 4096);
    let response = daemon.post(
        "/api/v1/ai/usage",
        &[("Authorization", &bearer()), ("Content-Encoding", "gzip")],
        &bomb,
    );
    assert_eq!(response.status, 413);
    // High cardinality: ten features, three kept, the rest folded into "other" and counted.
    let many: Vec<String> = (0..10).map(|i| event(&format!("f{i}"))).collect();
    assert_eq!(
        post_usage(&daemon, &format!(r#"{{"events":[{}]}}"#, many.join(","))).status,
        200
    );
    let e = wait_for(&daemon, "folded labels", 10, |e| {
        e.value(r#"prismwatch_ai_label_values_folded_total{label="feature"}"#) == Some(7.0)
    });
    let features: Vec<String> = e.keys_of("prismwatch_ai_requests_total");
    assert_eq!(features.len(), 4, "{features:?}");
    assert_eq!(e.value(r#"prismwatch_ai_requests_total{feature="other",model="gemini-2.5-flash",provider="google"}"#), Some(7.0));
    // Every accepted token is still there.
    let input: f64 = e
        .keys_of("prismwatch_ai_tokens_total")
        .iter()
        .filter(|k| k.contains("type=\"input\""))
        .filter_map(|k| e.value(k))
        .sum();
    assert_eq!(input, 1_000.0);
    assert_eq!(daemon.get("/healthz", &[]).status, 200);
    assert!(
        e.value(r#"prismwatch_ai_ingest_rejected_total{reason="too_large"}"#)
            .is_some_and(|v| v >= 1.0)
    );
}

#[test]
fn a_restart_keeps_the_month_and_a_new_month_starts_from_zero() {
    let mut daemon = Daemon::start_ready(Some(&config("")), &[]);
    assert_eq!(
        post_usage(&daemon, &format!(r#"{{"events":[{FLASH}]}}"#)).status,
        200
    );
    daemon.restart();
    let e = wait_for(&daemon, "the saved month", 10, |e| {
        e.value("prismwatch_ai_month_to_date_dollars").is_some()
    });
    assert!(
        close(e.value("prismwatch_ai_month_to_date_dollars"), FLASH_COST),
        "{:?}",
        e.value("prismwatch_ai_month_to_date_dollars")
    );

    // Pretend the saved month is an old one: at start the month-to-date figures reset, the
    // lifetime counters stay.
    daemon.signal(rustix::process::Signal::TERM);
    assert!(
        daemon
            .wait_exit(std::time::Duration::from_secs(5))
            .is_some()
    );
    let path = daemon.state_dir().join("spend.json");
    let saved = std::fs::read_to_string(&path).expect("saved spend state");
    let this_month = format!(
        "\"month\":\"{}\"",
        jiff::Zoned::now()
            .with_time_zone(jiff::tz::TimeZone::UTC)
            .strftime("%Y-%m")
    );
    assert!(saved.contains(&this_month), "{saved}");
    std::fs::write(&path, saved.replace(&this_month, "\"month\":\"2000-01\""))
        .expect("rewrite state");
    daemon.restart();
    let e = wait_for(&daemon, "the new month", 10, |e| {
        e.value("prismwatch_ai_month_to_date_dollars") == Some(0.0)
    });
    let labels = r#"feature="chat",model="gemini-2.5-flash",provider="google""#;
    assert!(close(
        e.value(&format!("prismwatch_ai_cost_dollars_total{{{labels}}}")),
        FLASH_COST
    ));
    assert_eq!(
        e.value(r#"prismwatch_ai_budget_used_ratio{budget="total"}"#),
        Some(0.0)
    );
}

#[test]
fn an_opentelemetry_sdk_client_is_counted_exactly() {
    let python = common::python();
    let daemon = Daemon::start_ready(Some(&config("")), &[]);
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/python/otel_genai_client.py"
    );
    let output = Command::new(python)
        .arg(script)
        .arg(format!("http://{}/v1/metrics", daemon.address))
        .arg(TOKEN)
        .output()
        .expect("run the OpenTelemetry client");
    assert!(
        output.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&output.stderr),
        daemon.logs()
    );
    let flash = r#"feature="chat",model="gemini-2.5-flash",provider="gcp.gemini""#;
    let pro = r#"feature="search",model="gemini-2.5-pro",provider="gcp.gemini""#;
    let e = wait_for(&daemon, "the SDK's totals", 10, |e| {
        e.value(&format!(
            "prismwatch_ai_tokens_total{{{flash},type=\"input\"}}"
        )) == Some(3_000.0)
    });
    assert_eq!(
        e.value(&format!(
            "prismwatch_ai_tokens_total{{{flash},type=\"output\"}}"
        )),
        Some(1_000.0)
    );
    assert_eq!(
        e.value(&format!(
            "prismwatch_ai_tokens_total{{{pro},type=\"input\"}}"
        )),
        Some(5_000.0)
    );
    assert_eq!(
        e.value(&format!(
            "prismwatch_ai_tokens_total{{{pro},type=\"output\"}}"
        )),
        Some(1_000.0)
    );
    assert_eq!(
        e.value(&format!("prismwatch_ai_requests_total{{{flash}}}")),
        Some(3.0)
    );
    assert_eq!(
        e.value(&format!("prismwatch_ai_requests_total{{{pro}}}")),
        Some(1.0)
    );
    // gcp.gemini (OpenTelemetry's provider name) is priced as Google's list prices.
    assert!(close(
        e.value(&format!("prismwatch_ai_cost_dollars_total{{{flash}}}")),
        (3_000.0 * 0.30 + 1_000.0 * 2.50) / 1e6
    ));
    assert!(close(
        e.value(&format!("prismwatch_ai_cost_dollars_total{{{pro}}}")),
        (5_000.0 * 1.25 + 1_000.0 * 10.0) / 1e6
    ));
    assert_eq!(
        e.value(&format!("prismwatch_ai_unpriced_tokens_total{{{flash}}}")),
        Some(0.0)
    );
    // The same counters as the JSON path: one ingest, one set of series.
    assert!(
        e.value(r#"prismwatch_ai_ingest_events_total{path="otlp"}"#)
            .is_some_and(|v| v >= 4.0)
    );
}

/// The forecast as of a given moment, recomputed by SciPy from the inputs it reports. The moment
/// is passed in (`spend --at`), so the test means the same on every day of the calendar: the
/// 20th has 19 completed days, the 2nd has one (an estimate without an interval).
#[test]
fn the_forecast_matches_scipy() {
    for at in ["2026-11-20T12:00:00Z", "2026-12-02T06:00:00Z"] {
        forecast_matches_scipy_at(at);
    }
}

fn forecast_matches_scipy_at(at: &str) {
    let python = common::python();
    let mut daemon = Daemon::start_ready(Some(&config("")), &[]);
    daemon.signal(rustix::process::Signal::TERM);
    assert!(
        daemon
            .wait_exit(std::time::Duration::from_secs(5))
            .is_some()
    );
    let today = at
        .parse::<jiff::Timestamp>()
        .expect("a valid test time")
        .to_zoned(jiff::tz::TimeZone::UTC);
    let days: Vec<(i8, f64)> = (1..today.day())
        .map(|d| (d, 3.0 + f64::from(d % 5) * 1.7))
        .collect();
    let spent: f64 = days.iter().map(|(_, c)| c).sum::<f64>() + 2.0;
    let mut day_entries: Vec<String> = days
        .iter()
        .map(|(d, c)| format!("\"{d}\":{{\"cost_dollars\":{c},\"tokens\":0.0}}"))
        .collect();
    day_entries.push(format!(
        "\"{}\":{{\"cost_dollars\":2.0,\"tokens\":0.0}}",
        today.day()
    ));
    let ledger = format!(
        r#"{{"month":"{}","month_to_date":[[{{"provider":"google","model":"gemini-2.5-flash","labels":[]}},{{"input_tokens":0.0,"output_tokens":0.0,"cached_tokens":0.0,"cost_dollars":{spent},"requests":1.0,"unpriced_tokens":0.0}}]],"days":{{{}}},"lifetime":[],"latency":[],"cache_lookups":0.0,"cache_hits":0.0,"label_values":{{}},"models":[],"folded":{{}}}}"#,
        today.strftime("%Y-%m"),
        day_entries.join(",")
    );
    std::fs::write(daemon.state_dir().join("spend.json"), ledger).expect("write ledger");
    let output = Command::new(env!("CARGO_BIN_EXE_prismwatch"))
        .args(["spend", "--json", "--at", at, "--config"])
        .arg(daemon.config_path())
        .arg("--state-dir")
        .arg(daemon.state_dir())
        .output()
        .expect("run prismwatch spend");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).expect("spend JSON");
    assert_eq!(
        report["month"],
        today.strftime("%Y-%m").to_string(),
        "{report}"
    );
    assert_eq!(
        report["inputs"]["completed_days"].as_array().map(Vec::len),
        Some(days.len()),
        "{report}"
    );
    assert!((report["cost_dollars"].as_f64().unwrap_or(0.0) - spent).abs() < 1e-9);
    let mut reference = Command::new(python)
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/python/forecast_reference.py"
        ))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("run the SciPy reference");
    std::io::Write::write_all(reference.stdin.as_mut().expect("stdin"), &output.stdout)
        .expect("write report");
    let reference = reference.wait_with_output().expect("reference output");
    let expected: serde_json::Value =
        serde_json::from_slice(&reference.stdout).unwrap_or_else(|_| {
            panic!(
                "reference failed at {at}: {}",
                String::from_utf8_lossy(&reference.stdout)
            )
        });
    let near = |a: &serde_json::Value, b: &serde_json::Value| {
        (a.as_f64().unwrap_or(f64::NAN) - b.as_f64().unwrap_or(f64::NAN)).abs() < 1e-6
    };
    assert!(
        near(&report["daily_rate_dollars"], &expected["daily_rate"]),
        "{report} vs {expected}"
    );
    assert!(
        near(&report["forecast_dollars"], &expected["estimate"]),
        "{report} vs {expected}"
    );
    let interval = &report["forecast_interval"];
    if expected["lower"].is_null() {
        // One completed day has no spread to estimate: no interval, on both sides.
        assert!(interval.is_null(), "{report} vs {expected}");
    } else {
        assert!(
            near(&interval[0], &expected["lower"]) && near(&interval[1], &expected["upper"]),
            "{report} vs {expected}"
        );
    }
}

#[test]
fn a_sql_source_counts_each_usage_row_once() {
    let postgres = common::servers::Postgres::start();
    postgres.psql("postgres", "CREATE DATABASE app");
    postgres.psql(
        "app",
        "CREATE TABLE llm_usage (provider text, model text, input_tokens int8, output_tokens int8, cached_tokens int8, feature text, created_at timestamptz DEFAULT now());
         INSERT INTO llm_usage (provider, model, input_tokens, output_tokens, cached_tokens, feature) VALUES ('openai', 'gpt-4o', 1000, 100, 0, 'chat'), ('openai', 'gpt-4o', 2000, 200, 0, 'chat')",
    );
    let query = "SELECT provider, model, input_tokens, output_tokens, cached_tokens, feature, extract(epoch FROM created_at)::float8 AS at FROM llm_usage WHERE created_at > to_timestamp($1) ORDER BY created_at";
    let extra = format!(
        "\n[[ai.sql_sources]]\nname = \"usage-log\"\ndsn = \"{}\"\nquery = \"{query}\"\ninterval = \"1s\"\n",
        postgres.dsn("app")
    );
    let mut daemon = Daemon::start_ready(Some(&config(&extra)), &[]);
    let key = r#"prismwatch_ai_tokens_total{feature="chat",model="gpt-4o",provider="openai",type="input"}"#;
    wait_for(&daemon, "the first rows", 10, |e| {
        e.value(key) == Some(3_000.0)
    });
    postgres.psql("app", "INSERT INTO llm_usage (provider, model, input_tokens, output_tokens, cached_tokens, feature) VALUES ('openai', 'gpt-4o', 500, 50, 0, 'chat')");
    wait_for(&daemon, "the new row, once", 10, |e| {
        e.value(key) == Some(3_500.0)
    });
    // A restart resumes from the saved watermark: nothing is counted twice.
    daemon.restart();
    std::thread::sleep(std::time::Duration::from_millis(2_500));
    let e = wait_for(&daemon, "the source up after the restart", 10, |e| {
        e.value(r#"prismwatch_ai_sql_source_up{source="usage-log"}"#) == Some(1.0)
    });
    assert_eq!(e.value(key), Some(3_500.0));
    assert!(close(
        e.value(
            r#"prismwatch_ai_cost_dollars_total{feature="chat",model="gpt-4o",provider="openai"}"#
        ),
        (3_500.0 * 2.50 + 350.0 * 10.0) / 1e6
    ));
}

#[test]
fn otlp_json_feeds_the_same_counters() {
    let daemon = Daemon::start_ready(Some(&config("")), &[]);
    let body = r#"{"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"name":"gen_ai.client.token.usage","histogram":{"aggregationTemporality":1,
        "dataPoints":[{"startTimeUnixNano":"1","timeUnixNano":"2","count":"1","sum":700,"attributes":[
        {"key":"gen_ai.token.type","value":{"stringValue":"input"}},{"key":"gen_ai.system","value":{"stringValue":"openai"}},
        {"key":"gen_ai.request.model","value":{"stringValue":"gpt-4o-mini"}}]}]}}]}]}]}"#;
    let response = daemon.post(
        "/v1/metrics",
        &[
            ("Authorization", &bearer()),
            ("Content-Type", "application/json"),
        ],
        body.as_bytes(),
    );
    assert_eq!((response.status, response.body.as_str()), (200, "{}"));
    let key = r#"prismwatch_ai_tokens_total{model="gpt-4o-mini",provider="openai",type="input"}"#;
    let e = wait_for(&daemon, "the OTLP/JSON tokens", 10, |e| {
        e.value(key) == Some(700.0)
    });
    assert!(close(
        e.value(r#"prismwatch_ai_cost_dollars_total{model="gpt-4o-mini",provider="openai"}"#),
        700.0 * 0.15 / 1e6
    ));
    let bad = daemon.post(
        "/v1/metrics",
        &[
            ("Authorization", &bearer()),
            ("Content-Type", "application/json"),
        ],
        b"{\"resourceMetrics\": 5}",
    );
    assert_eq!(bad.status, 400);
    assert!(bad.body.contains("invalid OTLP JSON"), "{}", bad.body);
}
