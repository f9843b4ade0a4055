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
    let labels = r#"feature="chat",model="gemini-2.5-flash",provider="gcp.gemini""#;
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
        Some(800_000.0)
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
    assert_eq!(e.value(r#"prismwatch_ai_request_duration_seconds_bucket{le="1",model="gemini-2.5-flash",provider="gcp.gemini"}"#), Some(1.0));
    assert_eq!(e.value(r#"prismwatch_ai_request_duration_seconds_bucket{le="0.5",model="gemini-2.5-flash",provider="gcp.gemini"}"#), Some(0.0));
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
    assert_eq!(e.value(r#"prismwatch_ai_requests_total{feature="other",model="gemini-2.5-flash",provider="gcp.gemini"}"#), Some(7.0));
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
    let labels = r#"feature="chat",model="gemini-2.5-flash",provider="gcp.gemini""#;
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

fn post_otlp(daemon: &Daemon, content_type: &str, body: &[u8]) -> common::Response {
    daemon.post(
        "/v1/metrics",
        &[("Authorization", &bearer()), ("Content-Type", content_type)],
        body,
    )
}

/// An OTLP/JSON request of GenAI points: `(metric, temporality, points)`, each point
/// `(attributes, sum, count, start)`.
fn otlp_json(metric: &str, temporality: u8, points: &[(&str, f64, u64, u64)]) -> String {
    let points: Vec<String> = points
        .iter()
        .map(|(attributes, sum, count, start)| {
            format!(
                r#"{{"startTimeUnixNano":"{start}","timeUnixNano":"2","count":"{count}","sum":{sum},"attributes":[{attributes}]}}"#
            )
        })
        .collect();
    format!(
        r#"{{"resourceMetrics":[{{"scopeMetrics":[{{"metrics":[{{"name":"{metric}","histogram":{{"aggregationTemporality":{temporality},"dataPoints":[{}]}}}}]}}]}}]}}"#,
        points.join(",")
    )
}

fn attribute(key: &str, value: &str) -> String {
    format!(r#"{{"key":"{key}","value":{{"stringValue":"{value}"}}}}"#)
}

fn input_attributes(model: &str) -> String {
    [
        attribute("gen_ai.token.type", "input"),
        attribute("gen_ai.provider.name", "openai"),
        attribute("gen_ai.request.model", model),
    ]
    .join(",")
}

fn month_tokens(daemon: &Daemon) -> f64 {
    daemon
        .scrape()
        .value("prismwatch_ai_month_to_date_tokens")
        .unwrap_or(f64::NAN)
}

#[test]
fn otlp_duration_points_cost_the_same_whatever_their_counts() {
    let daemon = Daemon::start_ready(Some(&config("")), &[]);
    let before = common::rss_bytes(daemon.pid()) as f64;
    let attributes = [
        attribute("gen_ai.provider.name", "openai"),
        attribute("gen_ai.request.model", "gpt-4o"),
    ]
    .join(",");
    // 100 points of 10,000 requests each, repeated: 10 M requests in about 100 KB.
    let points: Vec<(&str, f64, u64, u64)> = (0..100)
        .map(|_| (attributes.as_str(), 7_000.0, 10_000, 1))
        .collect();
    let body = otlp_json("gen_ai.client.operation.duration", 1, &points);
    for _ in 0..10 {
        let response = post_otlp(&daemon, "application/json", body.as_bytes());
        assert_eq!(response.status, 200, "{}", response.body);
    }
    let e = wait_for(&daemon, "10 M requests", 10, |e| {
        e.value(r#"prismwatch_ai_requests_total{model="gpt-4o",provider="openai"}"#) == Some(1e7)
    });
    assert_eq!(
        e.value(
            r#"prismwatch_ai_request_duration_seconds_count{model="gpt-4o",provider="openai"}"#
        ),
        Some(1e7)
    );
    let grown = common::rss_bytes(daemon.pid()) as f64 - before;
    assert!(grown < 50e6, "RSS grew by {grown} bytes");
}

#[test]
fn otlp_refuses_negative_and_non_finite_values_and_a_decreasing_cumulative_is_a_reset() {
    use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
    use prost::Message;

    let mut daemon = Daemon::start_ready(Some(&config("")), &[]);
    let model = input_attributes("gpt-4o");
    let good = otlp_json(
        "gen_ai.client.token.usage",
        1,
        &[(model.as_str(), 3_024.0, 1, 1)],
    );
    assert_eq!(
        post_otlp(&daemon, "application/json", good.as_bytes()).status,
        200
    );
    let negative = otlp_json(
        "gen_ai.client.token.usage",
        1,
        &[(model.as_str(), -5_000.0, 1, 1)],
    );
    let refused = post_otlp(&daemon, "application/json", negative.as_bytes());
    assert_eq!(refused.status, 400);
    assert!(
        refused
            .body
            .contains("dataPoints[0].sum: -5000 is negative"),
        "{}",
        refused.body
    );
    // +Inf in protobuf (JSON cannot carry it): refused, and nothing reaches the state.
    let mut request: ExportMetricsServiceRequest = serde_json::from_str(&good).expect("OTLP JSON");
    if let Some(opentelemetry_proto::tonic::metrics::v1::metric::Data::Histogram(histogram)) =
        &mut request.resource_metrics[0].scope_metrics[0].metrics[0].data
    {
        histogram.data_points[0].sum = Some(f64::INFINITY);
    }
    let infinite = post_otlp(&daemon, "application/x-protobuf", &request.encode_to_vec());
    assert_eq!(infinite.status, 400);
    assert!(
        infinite.body.contains("is not a finite number"),
        "{}",
        infinite.body
    );
    wait_for(&daemon, "the tokens", 10, |e| {
        e.value("prismwatch_ai_month_to_date_tokens") == Some(3_024.0)
    });
    // A cumulative stream that goes down restarted: its whole value counts.
    let cumulative = |sum: f64| {
        otlp_json(
            "gen_ai.client.token.usage",
            2,
            &[(input_attributes("gpt-4o-mini").as_str(), sum, 1, 7)],
        )
    };
    for sum in [1_000.0, 1_500.0, 200.0] {
        assert_eq!(
            post_otlp(&daemon, "application/json", cumulative(sum).as_bytes()).status,
            200
        );
    }
    // And its state survives a restart: 1,600 after 200 adds 1,400, not 1,600.
    daemon.restart();
    assert_eq!(
        post_otlp(&daemon, "application/json", cumulative(1_600.0).as_bytes()).status,
        200
    );
    let key = r#"prismwatch_ai_tokens_total{model="gpt-4o-mini",provider="openai",type="input"}"#;
    wait_for(&daemon, "the cumulative stream's total", 10, |e| {
        e.value(key) == Some(1_500.0 + 200.0 + 1_400.0)
    });
    assert_eq!(month_tokens(&daemon), 3_024.0 + 3_100.0);
    assert!(!daemon.logs().contains("unreadable"), "{}", daemon.logs());
}

#[test]
fn a_2xx_means_durable_and_an_unwritable_state_directory_gets_503_and_not_ready() {
    let mut daemon = Daemon::start_ready(Some(&config("")), &[]);
    let one = |input: u64| {
        format!(
            r#"{{"events":[{{"provider":"openai","model":"gpt-4o","input_tokens":{input},"output_tokens":0}}]}}"#
        )
    };
    assert_eq!(post_usage(&daemon, &one(100)).status, 200);
    // The state directory becomes unwritable: a file where the directory was (works as root
    // too, where permissions do not stop writes).
    let state = daemon.state_dir();
    let moved = state.with_extension("moved");
    std::fs::rename(&state, &moved).expect("move the state directory");
    std::fs::write(&state, b"not a directory").expect("put a file in its place");
    let refused = post_usage(&daemon, &one(1_000));
    assert_eq!(refused.status, 503, "{}", refused.body);
    assert_eq!(refused.header("retry-after"), Some("10"));
    let ready = daemon.get("/readyz", &[]);
    assert_eq!(ready.status, 503);
    assert!(
        ready.body.contains("AI spend state cannot be saved"),
        "{}",
        ready.body
    );
    let e = daemon.scrape();
    assert!(
        e.value("prismwatch_ai_state_save_failures_total")
            .is_some_and(|v| v >= 1.0)
    );
    assert_eq!(
        e.value(r#"prismwatch_ai_ingest_rejected_total{reason="not_durable"}"#),
        Some(1.0)
    );
    // The refused event was not kept in memory either.
    wait_for(&daemon, "the first event", 10, |e| {
        e.value("prismwatch_ai_month_to_date_tokens") == Some(100.0)
    });
    // Writable again: ready once a save succeeds, and ingest works.
    std::fs::remove_file(&state).expect("remove the file");
    std::fs::rename(&moved, &state).expect("restore the state directory");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while daemon.get("/readyz", &[]).status != 200 {
        assert!(std::time::Instant::now() < deadline, "not ready again");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    // Every acknowledged event survives kill -9.
    let mut acknowledged = 100.0;
    for n in 0..50 {
        if post_usage(&daemon, &one(n)).status == 200 {
            acknowledged += n as f64;
        }
    }
    daemon.signal(rustix::process::Signal::KILL);
    assert!(
        daemon
            .wait_exit(std::time::Duration::from_secs(5))
            .is_some()
    );
    daemon.restart();
    wait_for(&daemon, "every acknowledged event", 10, |e| {
        e.value("prismwatch_ai_month_to_date_tokens") == Some(acknowledged)
    });
}

#[test]
fn an_unreadable_spend_state_is_set_aside_and_never_over_an_earlier_one() {
    let mut daemon = Daemon::start_ready(Some(&config("")), &[]);
    let path = daemon.state_dir().join("spend.json");
    for (n, text) in ["{ first broken ledger", "{ second broken ledger"]
        .iter()
        .enumerate()
    {
        daemon.signal(rustix::process::Signal::TERM);
        assert!(
            daemon
                .wait_exit(std::time::Duration::from_secs(5))
                .is_some()
        );
        std::fs::write(&path, text).expect("spoil the ledger");
        daemon.restart();
        let kept = daemon
            .state_dir()
            .join(format!("spend.json.unreadable-{}", n + 1));
        assert_eq!(std::fs::read_to_string(&kept).ok().as_deref(), Some(*text));
        assert!(
            daemon.logs().contains(&kept.display().to_string()),
            "{}",
            daemon.logs()
        );
    }
    assert_eq!(
        std::fs::read_to_string(daemon.state_dir().join("spend.json.unreadable-1"))
            .ok()
            .as_deref(),
        Some("{ first broken ledger")
    );
}

#[test]
fn providers_fold_and_names_unseen_for_a_while_age_out() {
    let daemon = Daemon::start_ready(
        Some(&config(
            "max_providers = 3\nmax_models = 4\nforget_unseen_after = \"2s\"\n",
        )),
        &[],
    );
    let event = |provider: &str, model: &str| {
        format!(
            r#"{{"provider":"{provider}","model":"{model}","input_tokens":10,"output_tokens":0}}"#
        )
    };
    // 1,000 distinct providers in one request: three kept, the rest folded into one series.
    let flood: Vec<String> = (0..1_000)
        .map(|n| event(&format!("junk{n}"), "m"))
        .collect();
    assert_eq!(
        post_usage(&daemon, &format!(r#"{{"events":[{}]}}"#, flood.join(","))).status,
        200
    );
    let e = wait_for(&daemon, "folded providers", 10, |e| {
        e.value(r#"prismwatch_ai_label_values_folded_total{label="provider"}"#) == Some(997.0)
    });
    assert_eq!(e.keys_of("prismwatch_ai_requests_total").len(), 4);
    assert_eq!(
        e.value(r#"prismwatch_ai_requests_total{model="other",provider="other"}"#),
        Some(997.0)
    );
    let size = std::fs::metadata(daemon.state_dir().join("spend.json"))
        .map(|m| m.len())
        .unwrap_or(u64::MAX);
    assert!(size < 20_000, "spend.json is {size} bytes");
    // Once the junk is unseen for a while, a real provider gets its own series.
    std::thread::sleep(std::time::Duration::from_millis(2_500));
    assert_eq!(
        post_usage(
            &daemon,
            &format!(
                r#"{{"events":[{}]}}"#,
                event("anthropic", "claude-sonnet-4")
            )
        )
        .status,
        200
    );
    let e = wait_for(&daemon, "the real provider", 10, |e| {
        e.value(r#"prismwatch_ai_requests_total{model="claude-sonnet-4",provider="anthropic"}"#)
            == Some(1.0)
    });
    // The month's figures are whole.
    assert_eq!(
        e.value("prismwatch_ai_month_to_date_tokens"),
        Some(10_010.0)
    );
}

/// The request body of the README's JSON usage example (the `-d '...'` after its marker).
fn readme_usage_example() -> String {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("read README.md");
    let after = readme
        .split_once("<!-- usage-event-example -->")
        .expect("README marks the usage example")
        .1;
    let body = after
        .split_once("-d '")
        .expect("the example posts a body with -d")
        .1;
    body.split_once('\'')
        .expect("the body ends with a quote")
        .0
        .to_string()
}

#[test]
fn the_readme_usage_example_is_accepted_and_token_types_sum_to_the_spend_total() {
    let daemon = Daemon::start_ready(Some(&config("")), &[]);
    let body = readme_usage_example();
    let response = post_usage(&daemon, &body);
    assert_eq!(
        (response.status, response.body.as_str()),
        (200, r#"{"accepted":1,"unpriced":0}"#),
        "{body}"
    );
    let e = wait_for(&daemon, "the token series", 10, |e| {
        !e.keys_of("prismwatch_ai_tokens_total").is_empty()
    });
    let keys = e.keys_of("prismwatch_ai_tokens_total");
    let sum: f64 = keys.iter().filter_map(|k| e.value(k)).sum();
    let output = Command::new(env!("CARGO_BIN_EXE_prismwatch"))
        .args(["spend", "--json", "--config"])
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
    // 1M input (0.2M of it cached) and 0.1M output.
    assert_eq!(report["tokens"].as_f64(), Some(1_100_000.0), "{report}");
    assert_eq!(sum, 1_100_000.0, "{keys:?}");
    assert!(
        e.help
            .get("prismwatch_ai_tokens_total")
            .is_some_and(|h| h.contains("sum")),
        "{:?}",
        e.help.get("prismwatch_ai_tokens_total")
    );
}

/// `prismwatch spend --state-dir DIR`, the README's own example, without the daemon's
/// configuration: the budgets the daemon enforced (total and per label) are recorded in the
/// state and printed.
#[test]
fn spend_without_a_config_shows_the_budgets_the_daemon_enforces() {
    let budgets = "budgets = [{ label = \"feature\", value = \"chat\", dollars = 5.0 }]\n";
    let mut daemon = Daemon::start_ready(Some(&config(budgets)), &[]);
    let response = post_usage(&daemon, &format!(r#"{{"events":[{FLASH}]}}"#));
    assert_eq!(response.status, 200, "{}", response.body);
    wait_for(&daemon, "the label budget", 10, |e| {
        e.value(r#"prismwatch_ai_budget_used_ratio{budget="feature=chat"}"#)
            .is_some()
    });
    daemon.signal(rustix::process::Signal::TERM);
    assert!(
        daemon
            .wait_exit(std::time::Duration::from_secs(10))
            .is_some(),
        "the daemon did not stop"
    );
    let output = Command::new(env!("CARGO_BIN_EXE_prismwatch"))
        .arg("spend")
        .arg("--state-dir")
        .arg(daemon.state_dir())
        .env_remove("PRISMWATCH_CONFIG")
        .output()
        .expect("run prismwatch spend");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        text.contains(&format!(
            "budget: $10.00 ({:.1}% used)",
            FLASH_COST / 10.0 * 100.0
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "budget feature=chat: ${FLASH_COST:.2} of $5.00 ({:.1}% used)",
            FLASH_COST / 5.0 * 100.0
        )),
        "{text}"
    );
}
