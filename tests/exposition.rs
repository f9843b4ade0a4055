//! The exposition passes `promtool check metrics` except for the naming lints inherited from the
//! exporters whose names we keep, and every family has HELP and TYPE.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use common::{Daemon, require_program};

/// Lints promtool reports on names we keep for compatibility: node_exporter's camelCase memory
/// fields, postgres_exporter's `_count` gauges and its pg_stat_database counters without
/// `_total`, and redis_exporter's names and types for INFO fields (`*_sec`, counters without
/// `_total`, a gauge with it; `redis_metrics_match_redis_exporter` checks each family has the
/// exporter's type). Our own `prismwatch_*` metrics must have none.
fn is_inherited_lint(line: &str) -> bool {
    let name = line.split_whitespace().next().unwrap_or("");
    (name.starts_with("node_memory_") && line.contains("camelCase"))
        || (matches!(name, "pg_stat_activity_count" | "pg_locks_count")
            && line.contains("\"_count\" suffix"))
        || (name.starts_with("pg_stat_database_") && line.contains("\"_total\" suffix"))
        || (name.starts_with("redis_")
            && (line.contains("abbreviated units") || line.contains("\"_total\" suffix")))
}

#[test]
fn promtool_finds_only_inherited_naming_lints() {
    let promtool = require_program("promtool", "prometheus");
    // Every collector on: host, PostgreSQL (with top statements), PgBouncer and Redis.
    let postgres = common::servers::Postgres::start();
    let bouncer = common::servers::Pgbouncer::start(&postgres, 2);
    let redis = common::servers::Redis::start(&["--maxmemory", "64mb"]);
    // PostgreSQL and Redis every second, so their per-interval figures exist after two
    // collections; a budget, so the budget families exist.
    let config = format!(
        "[ai]\nmonthly_budget_dollars = 100.0\ninterval = \"500ms\"\n[[postgres]]\ndsn = \"{}\"\ninterval = \"1s\"\n[[redis]]\nurl = \"{}\"\ninterval = \"1s\"\n",
        postgres.dsn("postgres"),
        redis.url()
    );
    let daemon = Daemon::start_ready(
        Some(&config),
        &["--host-interval", "1s", "--pgbouncer", &bouncer.admin_dsn()],
    );
    postgres.psql("postgres", "SELECT pg_sleep(0.1)");
    // AI usage too, so the spend families exist.
    let usage = r#"{"events":[{"provider":"google","model":"gemini-2.5-flash","input_tokens":10,"output_tokens":5,"latency_ms":300,"cache_hit":false}]}"#;
    assert_eq!(
        daemon
            .post("/api/v1/ai/usage", &[], usage.as_bytes())
            .status,
        200
    );
    common::wait_for(&daemon, "second collections", 15, |e| {
        !e.keys_of("pg_stat_statements_calls_total").is_empty()
            && !e.keys_of("prismwatch_redis_keyspace_hit_ratio").is_empty()
            && !e.keys_of("prismwatch_postgres_cache_hit_ratio").is_empty()
    });
    // Scrape twice so the scrape-duration histogram has been observed.
    let _ = daemon.get("/metrics", &[]);
    let body = daemon.get("/metrics", &[]).body;
    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run promtool");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(body.as_bytes())
        .expect("write exposition");
    let output = child.wait_with_output().expect("promtool output");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let problems: Vec<&str> = report
        .lines()
        .filter(|l| !l.trim().is_empty() && !is_inherited_lint(l))
        .collect();
    assert!(
        problems.is_empty(),
        "promtool problems:\n{}",
        problems.join("\n")
    );
    // It did read the exposition: the camelCase lints are there, and every collector's metrics.
    assert!(report.contains("node_memory_MemTotal_bytes"), "{report}");
    for family in [
        "pg_stat_database_xact_commit",
        "pg_stat_statements_calls_total",
        "pgbouncer_pools_client_active_connections",
        "redis_keyspace_hits_total",
        "prismwatch_ai_tokens_total",
        "prismwatch_ai_request_duration_seconds",
    ] {
        assert!(
            body.contains(&format!("# TYPE {family} ")),
            "{family} missing from the exposition"
        );
    }

    // Every metric the shipped dashboard queries is exported.
    let dashboard = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/dashboards/prismwatch-overview.json"
    ))
    .expect("dashboard");
    let json: serde_json::Value = serde_json::from_str(&dashboard).expect("dashboard JSON");
    let mut names = std::collections::BTreeSet::new();
    for panel in json["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().expect("targets") {
            let expr = target["expr"].as_str().unwrap_or("");
            for word in expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':')) {
                if ["prismwatch_", "pg_", "pgbouncer_", "redis_", "node_"]
                    .iter()
                    .any(|p| word.starts_with(p))
                {
                    names.insert(word.to_string());
                }
            }
        }
    }
    assert!(names.len() >= 15, "{names:?}");
    for name in names {
        assert!(
            body.lines()
                .any(|l| l.starts_with(&name) && l[name.len()..].starts_with(['{', ' '])),
            "the dashboard queries {name}, which is not exported"
        );
    }
}

#[test]
fn every_family_has_help_and_type_and_self_metrics_are_present() {
    let daemon = Daemon::start_ready(None, &["--host-interval", "1s"]);
    let _ = daemon.get("/metrics", &[]);
    let exposition = daemon.scrape();
    for key in exposition.samples.keys() {
        let name = key.split('{').next().unwrap_or("");
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suffix| {
                name.strip_suffix(suffix).filter(|base| {
                    exposition
                        .types
                        .get(*base)
                        .is_some_and(|t| t == "histogram" || t == "summary")
                })
            })
            .unwrap_or(name);
        assert!(exposition.help.contains_key(family), "no HELP for {family}");
        assert!(
            exposition.types.contains_key(family),
            "no TYPE for {family}"
        );
    }
    for required in [
        "prismwatch_build_info",
        "prismwatch_collector_duration_seconds",
        "prismwatch_collector_success",
        "prismwatch_collector_last_success_timestamp_seconds",
        "prismwatch_scrapes_total",
        "prismwatch_scrape_duration_seconds_count",
        "prismwatch_history_memory_bytes",
        "prismwatch_history_series",
        "prismwatch_config_last_reload_successful",
        "process_resident_memory_bytes",
        "process_cpu_seconds_total",
        "process_open_fds",
    ] {
        assert!(
            exposition
                .samples
                .keys()
                .any(|k| k.split('{').next() == Some(required)),
            "{required} missing"
        );
    }
    assert_eq!(
        exposition.value(r#"prismwatch_collector_success{collector="host"}"#),
        Some(1.0)
    );
}

#[test]
fn gzip_is_served_when_asked() {
    let daemon = Daemon::start_ready(None, &[]);
    let response = daemon.get("/metrics", &[("Accept-Encoding", "gzip")]);
    assert_eq!(response.header("content-encoding"), Some("gzip"));
    let mut decoder = flate2::read::GzDecoder::new(response.raw_body.as_slice());
    let mut text = String::new();
    std::io::Read::read_to_string(&mut decoder, &mut text).expect("valid gzip");
    assert!(
        text.contains("# TYPE node_cpu_seconds_total counter"),
        "{text}"
    );
}

/// `prismwatch_build_info` and `/api/v1/status/buildinfo` name the commit the binary was built
/// from (build.rs asks git; without git it is `unknown`), not a placeholder.
#[test]
fn build_info_names_the_commit() {
    let expected = std::process::Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".to_string());
    let expected = std::env::var("PRISMWATCH_REVISION")
        .ok()
        .filter(|r| !r.trim().is_empty())
        .unwrap_or(expected);
    let daemon = Daemon::start_ready(None, &[]);
    let keys = daemon.scrape().keys_of("prismwatch_build_info");
    assert!(
        keys.iter()
            .any(|k| k.contains(&format!("revision=\"{expected}\""))),
        "{keys:?}"
    );
    let body = daemon.get("/api/v1/status/buildinfo", &[]).body;
    assert!(
        body.contains(&format!("\"revision\":\"{expected}\"")),
        "{body}"
    );
}

/// `/api/v1/targets` lists every collector as Prometheus lists its targets: the host up, a
/// Redis that refuses connections down with its error.
#[test]
fn targets_list_each_collector_with_its_health_and_last_error() {
    let closed = format!("127.0.0.1:{}", common::free_port());
    let redis = format!("redis://{closed}");
    let daemon = Daemon::start_ready(None, &["--redis", &redis, "--host-interval", "1s"]);
    let response = daemon.get("/api/v1/targets", &[]);
    assert_eq!(response.status, 200, "{}", response.body);
    let json: serde_json::Value = serde_json::from_str(&response.body).expect("JSON");
    let targets = json["data"]["activeTargets"].as_array().expect("targets");
    let find = |job: &str| {
        targets
            .iter()
            .find(|t| t["labels"]["job"] == job)
            .unwrap_or_else(|| panic!("no {job} target in {}", response.body))
    };
    let host = find("host");
    assert_eq!(host["health"], "up", "{host}");
    assert_eq!(host["lastError"], "");
    assert_eq!(host["scrapeInterval"], "1s");
    assert!(
        host["lastScrape"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z')),
        "{host}"
    );
    let redis = find("redis");
    assert_eq!(redis["health"], "down", "{redis}");
    assert_eq!(redis["labels"]["instance"], closed.as_str());
    assert!(
        redis["lastError"].as_str().is_some_and(|e| !e.is_empty()),
        "{redis}"
    );
}

#[test]
fn self_metrics_are_in_the_history_for_rules_and_queries_and_on_metrics_once() {
    let dir = tempfile::tempdir().expect("temp dir");
    let rules = dir.path().join("self.yml");
    std::fs::write(
        &rules,
        "groups:\n  - name: self\n    interval: 1s\n    rules:\n      - alert: AgentScraped\n        expr: prismwatch_scrapes_total >= 1\n",
    )
    .expect("rules");
    let daemon = Daemon::start_ready(
        None,
        &[
            "--host-interval",
            "1s",
            "--rules",
            &rules.display().to_string(),
        ],
    );
    let _ = daemon.get("/metrics", &[]);
    // The query API answers for the agent's own families.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let body = daemon
            .get("/api/v1/query?query=prismwatch_build_info", &[])
            .body;
        let json: serde_json::Value = serde_json::from_str(&body).expect("JSON");
        if json["data"]["result"]
            .as_array()
            .is_some_and(|r| r.len() == 1)
        {
            assert!(body.contains("\"revision\""), "{body}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no build info: {body}"
        );
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
    // A local rule fires on a self-metric.
    common::wait_for(&daemon, "the rule on a self-metric", 20, |e| {
        e.value(r#"ALERTS{alertname="AgentScraped",alertstate="firing"}"#) == Some(1.0)
    });
    // Each family is declared once on /metrics (the history's copy is left out there).
    let body = daemon.get("/metrics", &[]).body;
    for family in ["prismwatch_build_info", "prismwatch_scrapes_total"] {
        assert_eq!(
            body.matches(&format!("# TYPE {family} ")).count(),
            1,
            "{family} declared more than once"
        );
    }
}
