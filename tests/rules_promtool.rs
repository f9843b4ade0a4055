//! The shipped rule files pass `promtool check rules`, and their unit tests in tests/rules/ pass
//! `promtool test rules` (Debian's Prometheus). prismwatch's own evaluator will run the same
//! test files once it exists.

mod common;

use std::path::Path;
use std::process::Command;

fn files_in(dir: &str) -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    let mut files: Vec<String> = std::fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", root.display()))
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "yml"))
        .map(|p| p.display().to_string())
        .collect();
    files.sort();
    files
}

fn promtool(args: &[&str], files: &[String]) {
    let promtool = common::require_program("promtool", "prometheus");
    let output = Command::new(promtool)
        .args(args)
        .args(files)
        .output()
        .expect("run promtool");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success(),
        "promtool {args:?} failed:\n{report}"
    );
    assert!(report.contains("SUCCESS"), "{report}");
}

#[test]
fn shipped_rules_pass_promtool_check() {
    let files = files_in("rules");
    assert!(!files.is_empty());
    promtool(&["check", "rules"], &files);
}

#[test]
fn rule_unit_tests_pass_promtool_test() {
    let files = files_in("tests/rules");
    assert!(!files.is_empty());
    promtool(&["test", "rules"], &files);
}
