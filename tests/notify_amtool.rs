//! prismwatch reads Alertmanager files as Alertmanager does: for every file of the corpus in
//! tests/notify/ (and examples/alertmanager.yml), `prismwatch notify check` and
//! `amtool check-config` (Debian's prometheus-alertmanager) give the same verdict, and for every
//! label set of tests/notify/labels.txt `prismwatch notify routes` prints the receivers
//! `amtool config routes test` prints. Files with receivers prismwatch does not deliver are
//! valid for amtool and refused by prismwatch with the line, the receiver and what to use.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn files_in(dir: &str) -> Vec<PathBuf> {
    let dir = root().join(dir);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "yml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no files in {}", dir.display());
    files
}

fn prismwatch(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_prismwatch"))
        .args(args)
        .output()
        .expect("run prismwatch")
}

fn amtool(args: &[&str]) -> Output {
    let program = common::require_program("amtool", "prometheus-alertmanager");
    Command::new(program)
        .args(args)
        .output()
        .expect("run amtool")
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn valid_files() -> Vec<PathBuf> {
    let mut files = files_in("tests/notify/valid");
    files.push(root().join("examples/alertmanager.yml"));
    files
}

/// Label sets, one a line: words split on spaces outside double quotes.
fn label_sets() -> Vec<Vec<String>> {
    let text = std::fs::read_to_string(root().join("tests/notify/labels.txt")).expect("labels");
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|line| {
            let mut words = Vec::new();
            let mut word = String::new();
            let (mut quoted, mut escaped) = (false, false);
            for c in line.chars() {
                if c == ' ' && !quoted {
                    if !word.is_empty() {
                        words.push(std::mem::take(&mut word));
                    }
                    continue;
                }
                if c == '"' && !escaped {
                    quoted = !quoted;
                }
                escaped = c == '\\' && !escaped;
                word.push(c);
            }
            if !word.is_empty() {
                words.push(word);
            }
            words
        })
        .collect()
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

#[test]
fn valid_files_are_accepted_by_both() {
    for file in valid_files() {
        let file = path_str(&file);
        let ours = prismwatch(&["notify", "check", file]);
        let theirs = amtool(&["check-config", file]);
        assert!(
            theirs.status.success(),
            "amtool refuses {file}: {}",
            text(&theirs)
        );
        assert!(
            ours.status.success(),
            "prismwatch refuses {file}: {}",
            text(&ours)
        );
    }
}

#[test]
fn broken_files_are_refused_by_both_with_a_line() {
    for file in files_in("tests/notify/invalid") {
        let file = path_str(&file);
        let ours = prismwatch(&["notify", "check", file]);
        let theirs = amtool(&["check-config", file]);
        assert!(!theirs.status.success(), "amtool accepts {file}");
        assert!(
            !ours.status.success(),
            "prismwatch accepts {file}: {}",
            text(&ours)
        );
        let report = text(&ours);
        let located = format!("{file}:");
        assert!(
            report.contains(&located),
            "{file}: no file:line in {report}"
        );
    }
}

#[test]
fn every_error_of_a_file_is_reported_in_one_run() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("alertmanager.yml");
    std::fs::write(
        &file,
        "route:\n  group_wait: soon\n  routes:\n    - receiver: nobody\nreceivers:\n  - name: a\n    email_configs:\n      - to: x@example.com\n  - name: a\n    slack_configs: [{channel: x}]\n",
    )
    .expect("write");
    let output = prismwatch(&["notify", "check", path_str(&file)]);
    assert!(!output.status.success());
    let report = text(&output);
    for expected in [
        ":2:1: key `route.group_wait`: invalid duration `soon`",
        "root route must specify a default receiver",
        ":4:1: key `route`: undefined receiver \"nobody\"",
        ":8:1: key `receivers[0] (\"a\").email_configs[0]`: no global SMTP smarthost set",
        "no global SMTP from set",
        ":9:1: key `receivers[1]`: notification config name \"a\" is not unique",
        ":10:1: key `receivers[1] (\"a\").slack_configs`: receiver \"a\" uses slack_configs",
        "7 error(s)",
    ] {
        assert!(
            report.contains(expected),
            "missing `{expected}` in:\n{report}"
        );
    }
}

#[test]
fn unsupported_receivers_are_refused_with_what_to_use_instead() {
    for file in files_in("tests/notify/unsupported") {
        let path = path_str(&file);
        let theirs = amtool(&["check-config", path]);
        assert!(
            theirs.status.success(),
            "amtool refuses {path}: {}",
            text(&theirs)
        );
        let ours = prismwatch(&["notify", "check", path]);
        assert!(!ours.status.success(), "prismwatch accepts {path}");
        let report = text(&ours);
        let stem = file.file_stem().and_then(|s| s.to_str()).expect("stem");
        let line = std::fs::read_to_string(&file)
            .expect("read")
            .lines()
            .position(|l| l.trim_start().starts_with(&format!("{stem}_configs:")))
            .map(|i| i + 1)
            .expect("integration line");
        for expected in [
            format!("{path}:{line}:1:"),
            format!("receiver \"team-{stem}\" uses {stem}_configs"),
            "webhook_configs".to_string(),
            "[alerting] alertmanagers".to_string(),
        ] {
            assert!(
                report.contains(&expected),
                "missing `{expected}` in:\n{report}"
            );
        }
    }
}

#[test]
fn label_sets_reach_the_receivers_amtool_prints() {
    let sets = label_sets();
    assert!(sets.len() >= 20, "the corpus has {} label sets", sets.len());
    let mut compared = 0;
    for file in valid_files() {
        let file = path_str(&file);
        let config_flag = format!("--config.file={file}");
        for labels in &sets {
            let labels: Vec<&str> = labels.iter().map(String::as_str).collect();
            let mut ours_args = vec!["notify", "routes", file];
            ours_args.extend(&labels);
            let mut theirs_args = vec!["config", "routes", "test", config_flag.as_str()];
            theirs_args.extend(&labels);
            let ours = prismwatch(&ours_args);
            let theirs = amtool(&theirs_args);
            assert!(
                theirs.status.success(),
                "amtool {labels:?} on {file}: {}",
                text(&theirs)
            );
            assert!(
                ours.status.success(),
                "prismwatch {labels:?} on {file}: {}",
                text(&ours)
            );
            assert_eq!(
                String::from_utf8_lossy(&ours.stdout).trim(),
                String::from_utf8_lossy(&theirs.stdout).trim(),
                "{labels:?} on {file}"
            );
            compared += 1;
        }
    }
    assert!(compared >= 100, "{compared} comparisons");
}

#[test]
fn verify_receivers_fails_on_a_different_answer() {
    let file = root().join("tests/notify/valid/basic.yml");
    let file = path_str(&file);
    let good = prismwatch(&[
        "notify",
        "routes",
        file,
        "--verify-receivers",
        "pager-hook",
        "severity=critical",
    ]);
    assert!(good.status.success(), "{}", text(&good));
    let bad = prismwatch(&[
        "notify",
        "routes",
        file,
        "--verify-receivers",
        "team-mail",
        "severity=critical",
    ]);
    assert!(!bad.status.success());
}

#[test]
fn check_config_validates_the_alerting_file_the_toml_names() {
    let dir = tempfile::tempdir().expect("tempdir");
    let toml = dir.path().join("prismwatch.toml");
    std::fs::write(&toml, "[alerting]\nconfig_file = \"alertmanager.yml\"\n").expect("write");
    let broken = root().join("tests/notify/invalid/undefined_receiver.yml");
    std::fs::copy(&broken, dir.path().join("alertmanager.yml")).expect("copy");
    let output = prismwatch(&["check-config", path_str(&toml)]);
    assert!(!output.status.success(), "{}", text(&output));
    let report = text(&output);
    assert!(
        report.contains("alertmanager.yml:4:1: key `route`: undefined receiver \"dba\""),
        "{report}"
    );
    // The flag wins over the file's setting.
    let example = root().join("examples/alertmanager.yml");
    let output = prismwatch(&[
        "check-config",
        path_str(&toml),
        "--alerting-config",
        path_str(&example),
    ]);
    assert!(output.status.success(), "{}", text(&output));
    assert!(text(&output).contains("4 receivers (2 email, 2 webhook)"));
}
