//! `prismwatch rules check`: the shipped rules and the community rule files load unchanged;
//! broken files get every error, named by file, group and rule, and a non-zero exit.

use std::process::Command;

fn rules_check(paths: &[&str]) -> (i32, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_prismwatch"))
        .args(["rules", "check"])
        .args(paths)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run rules check");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.code().unwrap_or(-1), text)
}

#[test]
fn shipped_and_community_rules_load_unchanged() {
    let (code, text) = rules_check(&["rules", "tests/compat"]);
    assert_eq!(code, 0, "{text}");
    for file in [
        "rules/host.yml",
        "rules/postgres.yml",
        "rules/redis.yml",
        "rules/ai-spend.yml",
        "tests/compat/node-exporter.yml",
        "tests/compat/postgres-exporter.yml",
        "tests/compat/oliver006-redis-exporter.yml",
        "tests/compat/spreaker-pgbouncer-exporter.yml",
    ] {
        assert!(
            text.contains(&format!("{file}: ")),
            "{file} not reported:\n{text}"
        );
    }
    assert!(!text.contains(": 0 rules"), "{text}");
}

#[test]
fn every_error_is_named_by_file_group_and_rule() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("broken.yml");
    std::fs::write(
        &path,
        r#"groups:
  - name: broken
    rules:
      - alert: BadExpr
        expr: rate(node_cpu_seconds_total[5m]
      - alert: BadFor
        expr: up == 0
        for: 5 minutes
      - alert: BadTemplate
        expr: up == 0
        annotations:
          summary: "{{ $value | nosuchfunc }}"
      - record: job:up:sum
        expr: sum(up)
        for: 1m
      - alert: Unsupported
        expr: sum(up) > 1 and limitk(2, up)
"#,
    )
    .expect("write");
    let file = path.display().to_string();
    let (code, text) = rules_check(&[&file]);
    assert_ne!(code, 0);
    for expected in [
        // Errors point into the expression: line:column and a caret.
        format!(
            "{file}: group \"broken\": rule \"BadExpr\": expr: 1:5: unclosed left parenthesis\n      rate(node_cpu_seconds_total[5m]\n          ^"
        ),
        // What the evaluator cannot do is refused at load, by name, never mis-evaluated.
        format!(
            "{file}: group \"broken\": rule \"Unsupported\": expr: 1:17: aggregation `limitk` is not supported"
        ),
        format!("{file}: group \"broken\": rule \"BadFor\": for: invalid duration `5 minutes`"),
        format!(
            "{file}: group \"broken\": rule \"BadTemplate\": summary: 1: function \"nosuchfunc\" not defined"
        ),
        format!("{file}: group \"broken\": rule \"job:up:sum\": a recording rule takes no for"),
    ] {
        assert!(text.contains(&expected), "missing `{expected}` in:\n{text}");
    }
    let (code, text) = rules_check(&["/nonexistent/rules.yml"]);
    assert_ne!(code, 0);
    assert!(text.contains("cannot read the file"), "{text}");
}

#[test]
fn every_shipped_and_community_expression_evaluates() {
    use prismwatch::history::{History, HistoryLimits};
    use prismwatch::model::{Batch, MetricKind};
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let (groups, errors) =
        prismwatch::rules::load(&[root.join("rules"), root.join("tests/compat")]);
    assert!(errors.is_empty(), "{errors:?}");
    // A little data so selectors find series; the point is that nothing is refused.
    let mut history = History::new(HistoryLimits::default());
    for step in 0..40 {
        let mut batch = Batch::new();
        batch.family("node_cpu_seconds_total", MetricKind::Counter, "cpu");
        batch.push(
            "node_cpu_seconds_total",
            &[("cpu", "0"), ("mode", "idle"), ("instance", "a")],
            step as f64 * 10.0,
        );
        batch.family("pg_up", MetricKind::Gauge, "up");
        batch.push("pg_up", &[("instance", "a")], 1.0);
        history.ingest("t", step * 15_000, batch);
    }
    let mut failures = Vec::new();
    let mut evaluated = 0;
    for group in &groups {
        for rule in &group.rules {
            evaluated += 1;
            if let Err(error) =
                prismwatch::rules::eval::eval(&history, &rule.parsed, 10 * 60_000 + 7_500)
            {
                failures.push(format!(
                    "{}: {}: {error}",
                    group.file.display(),
                    rule.name()
                ));
            }
        }
    }
    assert!(evaluated > 80, "{evaluated}");
    assert!(
        failures.is_empty(),
        "{} of {evaluated} rules do not evaluate:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Teams keep promtool test files next to their rules: a rules directory with one is still a
/// valid rules directory, and the test file is named as skipped.
#[test]
fn unit_test_files_in_a_rules_directory_are_skipped_with_a_line_that_says_so() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(
        dir.path().join("app.yml"),
        "groups:\n  - name: app\n    rules:\n      - alert: AppDown\n        expr: up == 0\n",
    )
    .expect("write rules");
    let test_file = dir.path().join("app_test.yml");
    std::fs::write(
        &test_file,
        "rule_files: [app.yml]\nevaluation_interval: 1m\ntests:\n  - interval: 1m\n    input_series: []\n",
    )
    .expect("write test");
    let rules_dir = dir.path().display().to_string();
    let (code, text) = rules_check(&[&rules_dir]);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("app.yml: 1 rule in 1 group"), "{text}");
    assert!(
        text.contains(&format!(
            "{}: a rule unit test file, skipped",
            test_file.display()
        )),
        "{text}"
    );

    // The configuration that names the directory is valid and says what is in force: the
    // built-in rules, the file, and the skipped test file.
    let config = dir.path().join("prismwatch.toml");
    std::fs::write(&config, format!("rules = [{rules_dir:?}]\n")).expect("write config");
    let output = Command::new(env!("CARGO_BIN_EXE_prismwatch"))
        .arg("check-config")
        .arg(&config)
        .output()
        .expect("run check-config");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "{text}");
    for line in [
        "rules in force:".to_string(),
        "  builtin:rules/host.yml: ".to_string(),
        "  builtin:rules/ai-spend.yml: ".to_string(),
        format!(
            "  {}: 1 rule in 1 group",
            dir.path().join("app.yml").display()
        ),
        format!("  {}: a rule unit test file, skipped", test_file.display()),
    ] {
        assert!(text.contains(&line), "`{line}` missing in:\n{text}");
    }

    // Named on its own, a test file is an error that says what it is.
    let (code, text) = rules_check(&[&test_file.display().to_string()]);
    assert_ne!(code, 0, "{text}");
    assert!(text.contains("this is a rule unit test file"), "{text}");
}

#[test]
fn check_config_says_when_the_builtin_rules_are_off() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("prismwatch.toml");
    std::fs::write(&config, "builtin_rules = false\n").expect("write config");
    let output = Command::new(env!("CARGO_BIN_EXE_prismwatch"))
        .arg("check-config")
        .arg(&config)
        .output()
        .expect("run check-config");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{text}");
    assert!(
        text.contains("built-in rules: off (builtin_rules = false)"),
        "{text}"
    );
    assert!(!text.contains("builtin:rules/"), "{text}");
}
