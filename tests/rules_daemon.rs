//! Rules inside the running daemon: groups evaluated on their interval, recording rules written
//! into the history and the exposition, ALERTS and ALERTS_FOR_STATE as Prometheus writes them,
//! alert state kept across a restart, reloads on file change and SIGHUP that refuse a broken
//! file while the old rules keep running, the Prometheus-compatible query API and `prismwatch
//! query`, and the built-in default rules when nothing is configured.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{Daemon, Exposition, wait_for};

const RULES: &str = r#"
groups:
  - name: local
    interval: 1s
    rules:
      - record: instance:load1:doubled
        expr: node_load1 * 2
        labels:
          source: rule
      - alert: AlwaysOn
        expr: node_load1 >= 0
        for: 3s
        labels:
          severity: page
        annotations:
          summary: "load is {{ $value }} ({{ $labels.source }})"
      - alert: LongPending
        expr: vector(1)
        for: 9m
"#;

fn write_rules(dir: &Path, text: &str) -> String {
    let path = dir.join("local.yml");
    std::fs::write(&path, text).expect("write rules");
    path.display().to_string()
}

fn alert_key(name: &str, state: &str, extra: &str) -> String {
    format!("ALERTS{{alertname=\"{name}\",alertstate=\"{state}\"{extra}}}")
}

/// A daemon evaluating `rules` from a file in its own directory (returned, kept alive).
fn start(rules: &str) -> (Daemon, tempfile::TempDir, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = write_rules(dir.path(), rules);
    let daemon = Daemon::start_ready(None, &["--rules", &path, "--host-interval", "1s"]);
    (daemon, dir, path)
}

#[test]
fn alerts_fire_recordings_land_and_state_survives_a_restart() {
    let (mut daemon, _dir, path) = start(RULES);

    let pending = alert_key("AlwaysOn", "pending", ",severity=\"page\"");
    let firing = alert_key("AlwaysOn", "firing", ",severity=\"page\"");
    wait_for(&daemon, "AlwaysOn pending", 20, |e| {
        e.value(&pending) == Some(1.0)
    });
    let scrape = wait_for(&daemon, "AlwaysOn firing after for: 3s", 20, |e| {
        e.value(&firing) == Some(1.0)
    });
    assert_eq!(scrape.value(&pending), None, "one state at a time");

    // The recording rule: node_load1 * 2 with the rule's label, name replaced.
    let scrape = wait_for(&daemon, "the recorded series", 10, |e| {
        e.value("instance:load1:doubled{source=\"rule\"}").is_some()
    });
    let load = scrape.value("node_load1").expect("node_load1");
    let doubled = scrape
        .value("instance:load1:doubled{source=\"rule\"}")
        .expect("recorded");
    assert!(
        (doubled - 2.0 * load).abs() <= 2.0 * load.max(0.01) + 1.0,
        "{doubled} vs 2 x {load} (one collection apart at most)"
    );

    // ALERTS_FOR_STATE holds when the alert became active.
    let long_for_state = "ALERTS_FOR_STATE{alertname=\"LongPending\"}";
    let active_at = scrape.value(long_for_state).expect("ALERTS_FOR_STATE");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64();
    assert!(
        (now - active_at) < 60.0 && active_at <= now,
        "{active_at} vs {now}"
    );
    assert_eq!(
        scrape.value(&alert_key("LongPending", "pending", "")),
        Some(1.0)
    );

    // The alerts API renders annotations with the series' own labels and value.
    let alerts = daemon.get("/api/v1/alerts", &[]);
    assert_eq!(alerts.status, 200);
    let json: serde_json::Value = serde_json::from_str(&alerts.body).expect("JSON");
    let always = json["data"]["alerts"]
        .as_array()
        .expect("alerts")
        .iter()
        .find(|a| a["labels"]["alertname"] == "AlwaysOn")
        .expect("AlwaysOn listed")
        .clone();
    assert_eq!(always["state"], "firing");
    let summary = always["annotations"]["summary"].as_str().expect("summary");
    assert!(summary.starts_with("load is "), "{summary}");
    assert!(
        summary.ends_with(" ()"),
        "rule labels are not template labels: {summary}"
    );

    // Killed and restarted: the state written at each transition comes back. AlwaysOn is
    // firing at the first evaluation (not pending for another 3 s) and LongPending keeps its
    // active time (its `for` is within the 10-minute grace period, so Prometheus' restore
    // rule leaves it as it was).
    daemon.signal(rustix::process::Signal::KILL);
    assert!(daemon.wait_exit(Duration::from_secs(5)).is_some());
    daemon.restart();
    let scrape = wait_for(&daemon, "alerts after the restart", 20, |e| {
        e.value(&firing).is_some() || e.value(&pending).is_some()
    });
    assert_eq!(
        scrape.value(&pending),
        None,
        "the alert went back to pending after a restart"
    );
    assert_eq!(scrape.value(&firing), Some(1.0));
    let scrape = wait_for(&daemon, "LongPending after the restart", 20, |e| {
        e.value(long_for_state).is_some()
    });
    assert_eq!(scrape.value(long_for_state), Some(active_at));
    assert!(
        stored_groups(&daemon).contains_key(&format!("{path};local")),
        "the group's state is in the store"
    );

    // Group telemetry.
    let group = format!("{path};local");
    let scrape = daemon.scrape();
    let iterations = scrape
        .value(&format!(
            "prismwatch_rule_group_iterations_total{{rule_group=\"{group}\"}}"
        ))
        .expect("iterations");
    assert!(iterations >= 1.0);
    assert!(
        scrape
            .value(&format!(
                "prismwatch_rule_group_last_duration_seconds{{rule_group=\"{group}\"}}"
            ))
            .is_some()
    );
    assert_eq!(
        scrape.value(&format!(
            "prismwatch_rule_group_rules{{rule_group=\"{group}\"}}"
        )),
        Some(3.0)
    );
}

fn wait_log(daemon: &Daemon, needle: &str, seconds: u64) {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    while Instant::now() < deadline {
        if daemon.logs().contains(needle) {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("no {needle:?} in the logs:\n{}", daemon.logs());
}

fn count_in_logs(daemon: &Daemon, needle: &str) -> usize {
    daemon.logs().matches(needle).count()
}

#[test]
fn reloads_refuse_broken_files_and_keep_unchanged_alerts() {
    let (daemon, dir, path) = start(RULES);
    let long_for_state = "ALERTS_FOR_STATE{alertname=\"LongPending\"}";
    let scrape = wait_for(&daemon, "LongPending", 20, |e| {
        e.value(long_for_state).is_some()
    });
    let active_at = scrape.value(long_for_state).expect("active time");

    // A broken file (unknown function) on disk: refused with a message naming file, group and
    // rule; the old rules keep running.
    let broken = RULES.replace("vector(1)", "vectr(1)");
    write_rules(dir.path(), &broken);
    wait_log(&daemon, "Rule reload refused", 15);
    let logs = daemon.logs();
    assert!(logs.contains("local.yml"), "{logs}");
    assert!(logs.contains("LongPending"), "{logs}");
    let before = daemon
        .scrape()
        .samples
        .iter()
        .filter(|(k, _)| k.starts_with("prismwatch_rule_group_iterations_total"))
        .map(|(_, v)| *v)
        .sum::<f64>();
    let scrape = wait_for(&daemon, "evaluation to go on", 10, |e| {
        e.samples
            .iter()
            .filter(|(k, _)| k.starts_with("prismwatch_rule_group_iterations_total"))
            .map(|(_, v)| *v)
            .sum::<f64>()
            >= before + 2.0
    });
    assert_eq!(
        scrape.value("prismwatch_rules_last_reload_successful"),
        Some(0.0)
    );
    assert_eq!(scrape.value(long_for_state), Some(active_at));

    // A valid change: a new alert joins; the unchanged LongPending keeps its state.
    let changed = format!("{RULES}      - alert: Added\n        expr: vector(2)\n");
    write_rules(dir.path(), &changed);
    let scrape = wait_for(&daemon, "the added alert", 20, |e| {
        e.value(&alert_key("Added", "firing", "")).is_some()
    });
    assert_eq!(scrape.value(long_for_state), Some(active_at));
    assert_eq!(
        scrape.value("prismwatch_rules_last_reload_successful"),
        Some(1.0)
    );

    // Removing a rule ends its ALERTS series at once (stale), not after the lookback.
    write_rules(dir.path(), RULES);
    wait_for(&daemon, "the removed alert to go", 20, |e| {
        e.value(&alert_key("Added", "firing", "")).is_none()
    });

    // SIGHUP reloads too (the rule files come with the configuration).
    let reloads = count_in_logs(&daemon, "Rules reloaded.");
    daemon.signal(rustix::process::Signal::HUP);
    let deadline = Instant::now() + Duration::from_secs(10);
    while count_in_logs(&daemon, "Rules reloaded.") == reloads && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        count_in_logs(&daemon, "Rules reloaded.") > reloads,
        "{}",
        daemon.logs()
    );
    assert!(std::path::Path::new(&path).exists());
}

#[test]
fn query_api_answers_as_prometheus_and_the_cli_prints_it() {
    let (daemon, _dir, _) = start(RULES);
    wait_for(&daemon, "node_load1", 20, |e| {
        e.value("node_load1").is_some()
    });

    let instant = daemon.get("/api/v1/query?query=node_load1%20%3E%3D%200", &[]);
    assert_eq!(instant.status, 200, "{}", instant.body);
    let json: serde_json::Value = serde_json::from_str(&instant.body).expect("JSON");
    assert_eq!(json["status"], "success");
    assert_eq!(json["data"]["resultType"], "vector");
    let result = json["data"]["result"].as_array().expect("result");
    assert_eq!(result.len(), 1, "{json}");
    assert_eq!(result[0]["metric"]["__name__"], "node_load1");
    assert!(
        result[0]["value"][1].as_str().is_some(),
        "value as a string"
    );

    // POST with a form body, as Grafana sends it; a range query gives a matrix. Five seconds
    // of history first, so every step of the range has data.
    std::thread::sleep(Duration::from_secs(5));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let body = format!(
        "query=count(node_cpu_seconds_total)&start={}&end={now}&step=1",
        now - 5
    );
    let range = common::request(
        &daemon.address,
        "POST",
        "/api/v1/query_range",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        body.as_bytes(),
    )
    .expect("range query");
    assert_eq!(range.status, 200, "{}", range.body);
    let json: serde_json::Value = serde_json::from_str(&range.body).expect("JSON");
    assert_eq!(json["data"]["resultType"], "matrix");
    let values = json["data"]["result"][0]["values"]
        .as_array()
        .unwrap_or_else(|| panic!("no values in {json}"));
    assert!(values.len() >= 3, "{json}");

    // Errors: bad syntax and an unsupported function are 400 bad_data, naming the problem.
    let bad = daemon.get("/api/v1/query?query=rate(", &[]);
    assert_eq!(bad.status, 400, "{}", bad.body);
    assert!(bad.body.contains("bad_data"), "{}", bad.body);
    let unsupported = daemon.get(
        "/api/v1/query?query=holt_winters(node_load1%5B5m%5D%2C0.5%2C0.5)",
        &[],
    );
    assert_eq!(unsupported.status, 400, "{}", unsupported.body);
    assert!(
        unsupported.body.contains("holt_winters"),
        "{}",
        unsupported.body
    );

    // Hostile input: nesting that would exhaust the stack, and nested subqueries that would
    // run for ever, are refused up front; the daemon stays up.
    for (query, expected) in [
        (
            format!("{}1{}", "(".repeat(100_000), ")".repeat(100_000)),
            "levels of brackets",
        ),
        (format!("1{}", "+1".repeat(5_000)), "operators"),
        (
            format!(
                "{}vector(1){}",
                "max_over_time(".repeat(8),
                "[1h:1m])".repeat(8)
            ),
            "nested subqueries",
        ),
    ] {
        let body = format!("query={}", query.replace('+', "%2B"));
        let refused = common::request(
            &daemon.address,
            "POST",
            "/api/v1/query",
            &[("Content-Type", "application/x-www-form-urlencoded")],
            body.as_bytes(),
        )
        .expect("hostile query");
        assert_eq!(refused.status, 400, "{}", refused.body);
        assert!(refused.body.contains(expected), "{}", refused.body);
    }
    assert_eq!(daemon.get("/healthz", &[]).status, 200);

    // Label values, series and metadata for Grafana's metric browser.
    let names = daemon.get("/api/v1/label/__name__/values", &[]);
    assert!(names.body.contains("\"node_load1\""), "{}", names.body);
    let series = daemon.get("/api/v1/series?match[]=node_load1&match[]=node_load5", &[]);
    let json: serde_json::Value = serde_json::from_str(&series.body).expect("JSON");
    assert_eq!(
        json["data"],
        serde_json::json!([{"__name__": "node_load1"}, {"__name__": "node_load5"}]),
        "{}",
        series.body
    );
    let metadata = daemon.get("/api/v1/metadata?metric=node_load1", &[]);
    let json: serde_json::Value = serde_json::from_str(&metadata.body).expect("JSON");
    assert_eq!(
        json["data"]["node_load1"][0]["type"], "gauge",
        "{}",
        metadata.body
    );

    // The CLI.
    let output = Command::new(env!("CARGO_BIN_EXE_prismwatch"))
        .args([
            "query",
            "--url",
            &format!("http://{}", daemon.address),
            "count(node_load1) * 0 + 7",
        ])
        .output()
        .expect("run prismwatch query");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(text.contains("{} => 7 @"), "{text}");
    let output = Command::new(env!("CARGO_BIN_EXE_prismwatch"))
        .args(["query", "--url", "http://127.0.0.1:1", "up"])
        .output()
        .expect("run prismwatch query");
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("cannot connect"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn default_rules_run_with_no_configuration() {
    let daemon = Daemon::start_ready(None, &["--host-interval", "1s"]);
    let rules = daemon.get("/api/v1/rules", &[]);
    assert_eq!(rules.status, 200);
    let json: serde_json::Value = serde_json::from_str(&rules.body).expect("JSON");
    let groups = json["data"]["groups"].as_array().expect("groups");
    let files: Vec<&str> = groups.iter().filter_map(|g| g["file"].as_str()).collect();
    for file in [
        "builtin:rules/host.yml",
        "builtin:rules/postgres.yml",
        "builtin:rules/redis.yml",
        "builtin:rules/ai-spend.yml",
    ] {
        assert!(files.contains(&file), "{file} missing from {files:?}");
    }
    let names: Vec<&str> = groups
        .iter()
        .flat_map(|g| g["rules"].as_array().into_iter().flatten())
        .filter_map(|r| r["name"].as_str())
        .collect();
    assert!(names.contains(&"HostCpuBusy"), "{names:?}");
    // They are evaluated: every group has run at least once within its interval.
    let scrape: Exposition = wait_for(&daemon, "default groups evaluated", 40, |e| {
        let runs: Vec<f64> = e
            .samples
            .iter()
            .filter(|(k, _)| k.starts_with("prismwatch_rule_group_iterations_total"))
            .map(|(_, v)| *v)
            .collect();
        runs.len() == groups.len() && runs.iter().all(|v| *v >= 1.0)
    });
    assert!(
        scrape
            .samples
            .keys()
            .all(|k| !k.starts_with("prismwatch_rule_evaluation_failures_total")),
        "no default rule fails to evaluate"
    );
}

fn group_files(daemon: &Daemon) -> Vec<String> {
    let rules = daemon.get("/api/v1/rules", &[]);
    assert_eq!(rules.status, 200, "{}", rules.body);
    let json: serde_json::Value = serde_json::from_str(&rules.body).expect("JSON");
    json["data"]["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .filter_map(|g| g["file"].as_str().map(str::to_string))
        .collect()
}

/// A rule file of one's own adds to the built-in rules; only `builtin_rules = false` drops them.
#[test]
fn own_rule_files_run_beside_the_builtin_rules() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = write_rules(dir.path(), RULES);
    let builtin = [
        "builtin:rules/host.yml",
        "builtin:rules/postgres.yml",
        "builtin:rules/redis.yml",
        "builtin:rules/ai-spend.yml",
    ];

    let daemon = Daemon::start_ready(Some(&format!("rules = [{path:?}]\n")), &[]);
    let files = group_files(&daemon);
    for file in builtin.iter().copied().chain([path.as_str()]) {
        assert!(
            files.iter().any(|f| f == file),
            "{file} missing from {files:?}"
        );
    }
    assert_eq!(files.len(), 6, "5 built-in groups and ours: {files:?}");
    drop(daemon);

    let daemon = Daemon::start_ready(None, &["--rules", &path]);
    assert_eq!(group_files(&daemon).len(), 6, "--rules adds too");
    drop(daemon);

    let daemon = Daemon::start_ready(
        Some(&format!("rules = [{path:?}]\nbuiltin_rules = false\n")),
        &[],
    );
    assert_eq!(group_files(&daemon), vec![path.clone()]);
}

/// `prismwatch query --config FILE` asks the daemon where that file makes it listen, with the
/// file's bearer token; it takes no daemon option.
#[test]
fn query_finds_the_daemon_and_its_token_in_the_config() {
    let daemon = Daemon::start_listening_from_config(
        "builtin_rules = false\n[web]\nlisten = \"{listen}\"\nbearer_token = \"query-test-token\"\n",
        &[],
    );
    common::wait_http_ok(&daemon.address, "/healthz");
    let output = Command::new(env!("CARGO_BIN_EXE_prismwatch"))
        .args(["query", "vector(7)", "--config"])
        .arg(daemon.config_path())
        .env_remove("PRISMWATCH_TOKEN")
        .output()
        .expect("run prismwatch query");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(text.contains("{} => 7 @ 20"), "an RFC 3339 time: {text}");

    // A range query prints times a person reads, not unix seconds.
    let output = Command::new(env!("CARGO_BIN_EXE_prismwatch"))
        .args([
            "query",
            "--range",
            "30s",
            "--step",
            "10s",
            "vector(1)",
            "--config",
        ])
        .arg(daemon.config_path())
        .env_remove("PRISMWATCH_TOKEN")
        .output()
        .expect("run prismwatch query --range");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{text}");
    let times: Vec<&str> = text.lines().filter(|l| l.starts_with("  1 @ ")).collect();
    assert!(times.len() >= 3, "{text}");
    assert!(
        times.iter().all(|l| l.ends_with('Z') && l.contains('T')),
        "{text}"
    );

    // Options of the daemon are not options of query.
    let help = Command::new(env!("CARGO_BIN_EXE_prismwatch"))
        .args(["query", "--help"])
        .output()
        .expect("run prismwatch query --help");
    let help = String::from_utf8_lossy(&help.stdout);
    for absent in ["--state-dir", "--rules", "--listen"] {
        assert!(!help.contains(absent), "{absent} offered by query:\n{help}");
    }
    let refused = Command::new(env!("CARGO_BIN_EXE_prismwatch"))
        .args(["query", "--state-dir", "/tmp", "up"])
        .output()
        .expect("run prismwatch query --state-dir");
    assert_eq!(refused.status.code(), Some(64));
}

#[test]
fn a_slow_group_delays_no_other_group_and_counts_its_missed_iterations() {
    // The slow group's rules each evaluate every series ten thousand times (a 10 s subquery
    // at 1 ms steps); the quick group beside it must keep its one-second rhythm meanwhile,
    // and so must collection and scrapes.
    let slow_rule = |n: usize| {
        format!(
            "      - record: slow:series:{n}\n        expr: max_over_time(count({{__name__=~\".+\"}})[10s:1ms])\n"
        )
    };
    let rules = format!(
        "groups:\n  - name: quick\n    interval: 1s\n    rules:\n      - record: quick:one\n        expr: vector(1)\n  - name: slow\n    interval: 1s\n    rules:\n{}",
        (0..2).map(slow_rule).collect::<String>()
    );
    let (daemon, _dir, path) = start(&rules);
    let quick = format!("prismwatch_rule_group_iterations_total{{rule_group=\"{path};quick\"}}");
    let missed =
        format!("prismwatch_rule_group_iterations_missed_total{{rule_group=\"{path};slow\"}}");
    let first = wait_for(&daemon, "the quick group", 20, |e| {
        e.value(&quick).is_some()
    });
    let started = first.value(&quick).unwrap_or(0.0);
    let begun = Instant::now();
    let scrape = wait_for(&daemon, "the slow group to miss an iteration", 60, |e| {
        e.value(&missed).is_some_and(|v| v >= 1.0)
    });
    let elapsed = begun.elapsed().as_secs_f64();
    let quick_runs = scrape.value(&quick).unwrap_or(0.0) - started;
    assert!(
        quick_runs >= (elapsed - 2.0).floor().max(1.0),
        "the quick group ran {quick_runs} times in {elapsed:.1} s beside the slow one"
    );
}

#[test]
fn external_labels_from_the_configuration_reach_templates() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = write_rules(
        dir.path(),
        "groups:\n  - name: g\n    interval: 1s\n    rules:\n      - alert: Hello\n        expr: vector(1)\n        annotations:\n          summary: 'from {{ $externalLabels.host }} ({{ $externalLabels.env }})'\n",
    );
    let config =
        format!("rules = [{path:?}]\nexternal_labels = {{ host = \"app1\", env = \"prod\" }}\n");
    let daemon = Daemon::start_ready(Some(&config), &[]);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let body = daemon.get("/api/v1/alerts", &[]).body;
        if body.contains("from app1 (prod)") {
            break;
        }
        assert!(Instant::now() < deadline, "no rendered alert in {body}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn an_alert_that_resolved_just_before_a_kill_stays_resolved() {
    // Fires for 12 s, past the 10 s at which state is also saved in bulk, then resolves.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let rules = format!(
        "groups:\n  - name: window\n    interval: 1s\n    rules:\n      - alert: Window\n        expr: vector(time()) < {}\n",
        now + 12
    );
    let (mut daemon, _dir, _) = start(&rules);
    let firing = alert_key("Window", "firing", "");
    wait_for(&daemon, "Window firing", 20, |e| e.value(&firing).is_some());
    wait_for(&daemon, "Window resolved", 30, |e| {
        e.value(&firing).is_none()
    });
    daemon.signal(rustix::process::Signal::KILL);
    assert!(daemon.wait_exit(Duration::from_secs(5)).is_some());
    daemon.restart();
    // Long enough for several evaluations; a restored firing state would show at the first.
    let until = Instant::now() + Duration::from_secs(4);
    while Instant::now() < until {
        let scrape = daemon.scrape();
        assert_eq!(
            scrape.value(&firing),
            None,
            "a resolved alert came back after a restart\n{}",
            daemon.logs()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    let resolved = stored_groups(&daemon)
        .values()
        .flat_map(|group| group["rules"].as_object().cloned().unwrap_or_default())
        .flat_map(|(_, alerts)| alerts.as_array().cloned().unwrap_or_default())
        .filter(|alert| alert["state"] == "Resolved")
        .count();
    assert_eq!(resolved, 1, "{:?}", stored_groups(&daemon));
}

/// The `rules_state` rows of the daemon's store: group key to JSON body.
fn stored_groups(daemon: &Daemon) -> std::collections::BTreeMap<String, serde_json::Value> {
    let path = daemon.state_dir().join("prismwatch.db");
    let connection =
        rusqlite::Connection::open_with_flags(&path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .expect("open the store");
    let mut statement = connection
        .prepare("SELECT group_key, body FROM rules_state")
        .expect("rules_state");
    statement
        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
        .expect("query")
        .map(|row| {
            let (key, body) = row.expect("row");
            (key, serde_json::from_str(&body).expect("JSON body"))
        })
        .collect()
}

/// Waits until AlwaysOn fires, then stops the daemon; returns AlwaysOn's firing and pending
/// `ALERTS` keys.
fn stop_with_always_on_firing(daemon: &mut Daemon) -> (String, String) {
    let firing = alert_key("AlwaysOn", "firing", ",severity=\"page\"");
    let pending = alert_key("AlwaysOn", "pending", ",severity=\"page\"");
    wait_for(daemon, "AlwaysOn firing", 20, |e| {
        e.value(&firing).is_some()
    });
    daemon.signal(rustix::process::Signal::TERM);
    assert!(daemon.wait_exit(Duration::from_secs(5)).is_some());
    (firing, pending)
}

/// Removes the store, as on a host that ran a version without one.
fn remove_store(daemon: &Daemon) {
    for name in ["prismwatch.db", "prismwatch.db-wal", "prismwatch.db-shm"] {
        let _ = std::fs::remove_file(daemon.state_dir().join(name));
    }
}

#[test]
fn the_alert_state_file_of_an_older_version_moves_into_the_store() {
    let (mut daemon, _dir, path) = start(RULES);
    let (firing, pending) = stop_with_always_on_firing(&mut daemon);
    // What an older version left: the state as a JSON file, no store.
    let groups = stored_groups(&daemon);
    remove_store(&daemon);
    let legacy = daemon.state_dir().join("rules-state.json");
    std::fs::write(&legacy, serde_json::to_vec(&groups).expect("JSON")).expect("legacy file");
    daemon.restart();
    let scrape = wait_for(&daemon, "AlwaysOn after the upgrade", 20, |e| {
        e.value(&firing).is_some() || e.value(&pending).is_some()
    });
    assert_eq!(
        scrape.value(&pending),
        None,
        "the migrated state was not used: AlwaysOn went back to pending\n{}",
        daemon.logs()
    );
    wait_log(
        &daemon,
        "Moved the saved alert state into the state store",
        10,
    );
    assert!(!legacy.exists(), "the legacy file is read once");
    assert!(
        daemon
            .state_dir()
            .join("rules-state.json.migrated")
            .exists()
    );
    assert!(stored_groups(&daemon).contains_key(&format!("{path};local")));
}

#[test]
fn an_unreadable_alert_state_file_is_set_aside_and_the_store_is_used() {
    let (mut daemon, _dir, _) = start(RULES);
    let (firing, pending) = stop_with_always_on_firing(&mut daemon);
    let state = daemon.state_dir().join("rules-state.json");
    std::fs::write(&state, b"{ not json").expect("spoil the state");
    daemon.restart();
    wait_log(&daemon, "The saved alert state is unreadable", 10);
    // The unreadable file is kept under a name of its own, said in the log.
    let kept = daemon.state_dir().join("rules-state.json.unreadable-1");
    assert_eq!(
        std::fs::read(&kept).ok().as_deref(),
        Some(&b"{ not json"[..])
    );
    assert!(daemon.logs().contains(&kept.display().to_string()));
    // The store's state holds: AlwaysOn is firing at once, not pending again.
    let scrape = wait_for(&daemon, "AlwaysOn after the restart", 20, |e| {
        e.value(&firing).is_some() || e.value(&pending).is_some()
    });
    assert_eq!(scrape.value(&pending), None, "{}", daemon.logs());
}

/// A real Prometheus, with no targets, for comparing API answers that need no data.
struct Prometheus {
    child: std::process::Child,
    address: String,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    fn start() -> Prometheus {
        let program = common::require_program("prometheus", "prometheus");
        let dir = tempfile::tempdir().expect("temp dir");
        let config = dir.path().join("prometheus.yml");
        std::fs::write(&config, "global:\n  scrape_interval: 1m\n").expect("config");
        let address = format!("127.0.0.1:{}", common::free_port());
        let child = Command::new(program)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={address}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start prometheus");
        let prometheus = Prometheus {
            child,
            address,
            _dir: dir,
        };
        common::wait_http_ok(&prometheus.address, "/-/ready");
        prometheus
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn query_api_answers_match_prometheus_itself() {
    // Expressions that need no data, so both servers must answer the same JSON exactly.
    let prometheus = Prometheus::start();
    let (daemon, _dir, _) = start(RULES);
    for path in [
        "/api/v1/query?query=vector(1)&time=1700000000",
        "/api/v1/query?query=1%2B1&time=1700000000.5",
        "/api/v1/query?query=label_replace(vector(2)%2C%22a%22%2C%22x%22%2C%22%22%2C%22%22)&time=1700000000",
        "/api/v1/query?query=time()&time=2023-11-14T22:13:20Z",
        "/api/v1/query?query=absent(nonexistent_metric%7Bjob%3D%22x%22%7D)&time=1700000000",
        "/api/v1/query_range?query=vector(3)&start=1700000000&end=1700000060&step=15",
        "/api/v1/query_range?query=time()%20*%202&start=1700000000&end=1700000030&step=10s",
    ] {
        let theirs = common::get(&prometheus.address, path, &[]).expect("ask prometheus");
        let ours = daemon.get(path, &[]);
        assert_eq!(ours.status, theirs.status, "{path}: {}", ours.body);
        let theirs: serde_json::Value = serde_json::from_str(&theirs.body).expect("JSON");
        let ours: serde_json::Value = serde_json::from_str(&ours.body).expect("JSON");
        assert_eq!(ours, theirs, "{path}");
    }
    // Errors: the same status and errorType (the wording is each parser's own).
    for path in [
        "/api/v1/query?query=rate(",
        "/api/v1/query?query=up&time=yesterday",
        "/api/v1/query_range?query=up&start=10&end=5&step=1",
        "/api/v1/query_range?query=up&start=0&end=100000&step=1",
        "/api/v1/series",
        "/api/v1/series?match[]=rate(up%5B5m%5D)",
    ] {
        let theirs = common::get(&prometheus.address, path, &[]).expect("ask prometheus");
        let ours = daemon.get(path, &[]);
        assert_eq!(
            ours.status, theirs.status,
            "{path}: {} vs {}",
            ours.body, theirs.body
        );
        let theirs: serde_json::Value = serde_json::from_str(&theirs.body).expect("JSON");
        let ours: serde_json::Value = serde_json::from_str(&ours.body).expect("JSON");
        assert_eq!(ours["status"], "error");
        assert_eq!(ours["errorType"], theirs["errorType"], "{path}");
    }
}
