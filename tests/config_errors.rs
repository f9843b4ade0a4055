//! `prismwatch check-config` and startup name the file, line and key of every problem, say how
//! to fix it, and exit non-zero; a good file passes.

mod common;

use std::path::Path;
use std::process::Command;

/// Runs `check-config` on `text` and returns (exit code, stdout + stderr).
fn check_config(text: &str) -> (i32, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, text).expect("write config");
    let output = Command::new(env!("CARGO_BIN_EXE_prismwatch"))
        .arg("check-config")
        .arg(&path)
        .output()
        .expect("run check-config");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
    .replace(&path.display().to_string(), "bad.toml");
    (output.status.code().unwrap_or(-1), report)
}

fn assert_error(text: &str, expected: &str) {
    let (code, report) = check_config(text);
    assert_ne!(code, 0, "{report}");
    assert!(
        report.contains(expected),
        "expected `{expected}` in:\n{report}"
    );
    assert!(report.contains("hint:"), "no hint in:\n{report}");
}

#[test]
fn unknown_keys_name_file_line_and_key() {
    assert_error(
        "[web]\nlisten = \"127.0.0.1:9\"\nlistn = 1\n",
        "bad.toml:3:1: key `web.listn`: unknown field `listn`",
    );
    assert_error(
        "[hots]\ninterval = \"1s\"\n",
        "bad.toml:1:2: key `hots`: unknown field `hots`",
    );
}

#[test]
fn wrong_types_name_file_line_and_key() {
    assert_error(
        "[history]\nmax_series = \"lots\"\n",
        "bad.toml:2:14: key `history.max_series`: invalid type: string \"lots\"",
    );
    assert_error(
        "[host]\nenabled = \"yes\"\n",
        "bad.toml:2:11: key `host.enabled`: invalid type",
    );
}

#[test]
fn bad_durations_and_impossible_values_are_refused() {
    assert_error(
        "[host]\ninterval = \"soon\"\n",
        "bad.toml:2:12: key `host.interval`: invalid duration `soon`",
    );
    assert_error(
        "[host]\ninterval = \"5s\"\ntimeout = \"6s\"\n",
        "bad.toml:3:11: key `host.timeout`: timeout 6s must be above zero and at most the interval",
    );
    assert_error(
        "[history]\nmax_series = 0\n",
        "bad.toml:2:14: key `history.max_series`: 0 is out of range",
    );
    assert_error(
        "[history]\nretention = \"1s\"\n",
        "bad.toml:2:13: key `history.retention`: 1s is out of range",
    );
    assert_error(
        "[web]\nlisten = \"nowhere\"\n",
        "bad.toml:2:10: key `web.listen`: invalid address `nowhere`",
    );
    assert_error(
        "[host]\nmount_points_exclude = \"(\"\n",
        "bad.toml:2:24: key `host.mount_points_exclude`: invalid regular expression",
    );
    assert_error(
        "[web.tls]\ncert_file = \"/nonexistent/cert.pem\"\nkey_file = \"/nonexistent/key.pem\"\n",
        "bad.toml:2:13: key `web.tls`: cannot read certificate file `/nonexistent/cert.pem`",
    );
}

#[test]
fn target_errors_name_the_table_and_never_echo_the_dsn() {
    assert_error(
        "[[postgres]]\ndsn = \"mysql://u:hunter2@h/db\"\n",
        "bad.toml:2:7: key `postgres[0].dsn`: invalid PostgreSQL connection string",
    );
    let (_, report) = check_config("[[postgres]]\ndsn = \"mysql://u:hunter2@h/db\"\n");
    assert!(!report.contains("hunter2"), "{report}");
    assert_error(
        "[[redis]]\nurl = \"http://x\"\n",
        "bad.toml:2:7: key `redis[0].url`: invalid Redis URL",
    );
    assert_error(
        "[[redis]]\nurl = \"redis://a:1\"\ninterval = \"1s\"\ntimeout = \"2s\"\n",
        "key `redis[0].timeout`: timeout 2s must be above zero and at most the interval",
    );
    assert_error(
        "[[postgres]]\ndsn = \"postgres://h/db\"\nlabels = { server = \"x\" }\n",
        "key `postgres[0].labels`: `server` cannot be used as a label name",
    );
    assert_error(
        "[[redis]]\nurl = \"redis://a:1\"\n[[redis]]\nurl = \"redis://a:1\"\n",
        "two redis targets have the server label `a:1`",
    );
    assert_error(
        "[[pgbouncer]]\ndsn = \"postgres://h/pgbouncer\"\nport = 6432\n",
        "bad.toml:3:1: key `pgbouncer.port`: unknown field `port`",
    );
}

#[test]
fn broken_rule_files_make_the_config_invalid() {
    let dir = tempfile::tempdir().expect("temp dir");
    let rule = dir.path().join("bad.yml");
    std::fs::write(
        &rule,
        "groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: up ==\n",
    )
    .expect("write");
    let (code, report) = check_config(&format!("rules = [\"{}\"]\n", rule.display()));
    assert_ne!(code, 0, "{report}");
    assert!(
        report.contains("group \"g\": rule \"A\": expr:"),
        "{report}"
    );
    let shipped = concat!(env!("CARGO_MANIFEST_DIR"), "/rules");
    let (code, report) = check_config(&format!("rules = [\"{shipped}\"]\n"));
    assert_eq!(code, 0, "{report}");
}

#[test]
fn every_error_is_reported_at_once() {
    let (code, report) =
        check_config("[host]\ninterval = \"5s\"\ntimeout = \"9s\"\n[history]\nmax_series = -1\n");
    assert_ne!(code, 0);
    assert!(report.contains("key `host.timeout`"), "{report}");
    assert!(report.contains("key `history.max_series`"), "{report}");
    assert!(report.contains("2 error(s) in bad.toml"), "{report}");
}

/// Serde stops at the first error; the file is still checked to its end.
#[test]
fn every_bad_value_and_unknown_key_of_a_file_is_reported_in_one_run() {
    let (code, report) = check_config(concat!(
        "[host]\n",
        "interval = \"soon\"\n",
        "timeout = \"later\"\n",
        "colour = \"blue\"\n",
        "[history]\n",
        "retention = \"a while\"\n",
        "max_series = 0\n",
        "[[redis]]\n",
        "url = \"redis://127.0.0.1:6379\"\n",
        "interval = \"often\"\n",
        "timeout = \"never\"\n",
    ));
    assert_ne!(code, 0, "{report}");
    for expected in [
        "bad.toml:2:12: key `host.interval`: invalid duration `soon`",
        "bad.toml:3:11: key `host.timeout`: invalid duration `later`",
        "bad.toml:4:1: key `host.colour`: unknown field `colour`",
        "bad.toml:6:13: key `history.retention`: invalid duration `a while`",
        "bad.toml:7:14: key `history.max_series`: 0 is out of range",
        "bad.toml:10:12: key `redis.interval`: invalid duration `often`",
        "bad.toml:11:11: key `redis.timeout`: invalid duration `never`",
    ] {
        assert!(
            report.contains(expected),
            "expected `{expected}` in:\n{report}"
        );
    }
    assert!(report.contains("7 error(s) in bad.toml"), "{report}");
}

/// `prismwatch check-config` on one example: a `.toml` as the configuration, a `.yml` as the
/// Alertmanager file beside an empty configuration. Returns (success, stdout, stderr).
fn check_example(path: &Path, env: &[(&str, &str)]) -> (bool, String, String) {
    let empty = tempfile::NamedTempFile::new().expect("temp file");
    let mut command = Command::new(env!("CARGO_BIN_EXE_prismwatch"));
    command.arg("check-config").env_clear();
    match path.extension().and_then(|e| e.to_str()) {
        Some("toml") => command.arg(path),
        _ => command.arg(empty.path()).arg("--alerting-config").arg(path),
    };
    command.envs(env.iter().copied());
    let output = command.output().expect("run check-config");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn every_example_passes_check_config_as_shipped() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut checked = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("examples/") {
        let path = entry.expect("entry").path();
        match path.extension().and_then(|e| e.to_str()) {
            Some("toml" | "yml" | "yaml") => {}
            // Template directories are read through the Alertmanager example.
            _ if path.is_dir() => continue,
            _ => panic!(
                "{} is an example check-config does not cover",
                path.display()
            ),
        }
        // No environment: secrets written as `env:` are not set, as in a shell on the host.
        let (ok, stdout, stderr) = check_example(&path, &[]);
        assert!(ok, "{}:\n{stdout}{stderr}", path.display());
        assert!(stdout.contains("valid"), "{stdout}");
        checked.push(path);
    }
    assert!(checked.len() >= 2, "{checked:?}");
}

#[test]
fn unreadable_secrets_are_warnings_for_check_config_and_errors_for_the_daemon() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/prismwatch.toml");
    let (ok, stdout, stderr) = check_example(&example, &[]);
    assert!(ok, "{stderr}");
    assert!(
        stderr.contains("warning: ") && stderr.contains("`PRISMWATCH_WEB_TOKEN` is not set"),
        "{stderr}"
    );
    assert!(
        stdout.contains("4 secret(s) cannot be read here"),
        "{stdout}"
    );
    // A real error beside a missing secret still fails.
    let dir = tempfile::tempdir().expect("temp dir");
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[web]\nbearer_token = \"env:PRISMWATCH_TEST_UNSET\"\n[history]\nretention = \"soon\"\n",
    )
    .expect("write");
    let (ok, _, stderr) = check_example(&bad, &[]);
    assert!(!ok && stderr.contains("2 error(s)"), "{stderr}");
    // The daemon does not start without its secrets.
    let output = Command::new(env!("CARGO_BIN_EXE_prismwatch"))
        .arg("--config")
        .arg(&example)
        .env_clear()
        .output()
        .expect("run prismwatch");
    assert_eq!(output.status.code(), Some(78));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("`PRISMWATCH_WEB_TOKEN` is not set"),
        "{stderr}"
    );
}

#[test]
fn the_example_config_is_valid() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/prismwatch.toml");
    let output = Command::new(env!("CARGO_BIN_EXE_prismwatch"))
        .args(["check-config", example])
        .env("PRISMWATCH_WEB_TOKEN", "example-token")
        .env(
            "PRISMWATCH_POSTGRES_DSN",
            "postgres://prismwatch:secret@db.internal:5432/app",
        )
        .output()
        .expect("run check-config");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(String::from_utf8_lossy(&output.stdout).contains("valid"));
}

#[test]
fn the_daemon_refuses_to_start_on_a_bad_config_with_exit_78() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, "[history]\nretention = 5\n").expect("write config");
    let output = Command::new(env!("CARGO_BIN_EXE_prismwatch"))
        .arg("--config")
        .arg(&path)
        .output()
        .expect("run prismwatch");
    assert_eq!(output.status.code(), Some(78));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("key `history.retention`: invalid type"),
        "{stderr}"
    );
}

#[test]
fn usage_errors_exit_64() {
    let output = Command::new(env!("CARGO_BIN_EXE_prismwatch"))
        .arg("--no-such-flag")
        .output()
        .expect("run prismwatch");
    assert_eq!(output.status.code(), Some(64));
}
