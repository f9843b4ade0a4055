//! The shipped rule files pass `promtool check rules`; their unit tests in tests/rules/ and the
//! PromQL corpus in tests/rules/corpus/ get the same verdict from `promtool test rules`
//! (Debian's Prometheus) and `prismwatch rules test`: every file passes under both, and every
//! file in corpus/failing/ fails under both. The corpus covers every construct issue 5 lists.

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

fn test_files(dir: &str) -> Vec<String> {
    files_in(dir)
        .into_iter()
        .filter(|f| f.ends_with(".test.yml"))
        .collect()
}

/// Runs a tool on files: (passed, output).
fn verdict(program: &Path, args: &[&str], files: &[&str]) -> (bool, String) {
    let output = Command::new(program)
        .args(args)
        .args(files)
        .output()
        .expect("run the test tool");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), report)
}

fn both_tools(files: &[String], expect_pass: bool) {
    let promtool = common::require_program("promtool", "prometheus");
    let ours = Path::new(env!("CARGO_BIN_EXE_prismwatch"));
    for file in files {
        let (theirs, their_report) = verdict(&promtool, &["test", "rules"], &[file]);
        let (mine, my_report) = verdict(ours, &["rules", "test"], &[file]);
        assert_eq!(theirs, expect_pass, "promtool on {file}:\n{their_report}");
        assert_eq!(
            mine, expect_pass,
            "prismwatch rules test on {file}:\n{my_report}\n(promtool said:\n{their_report})"
        );
        if !expect_pass {
            // Failing for the intended reason: a wrong expectation, not a file that won't load.
            for report in [&their_report, &my_report] {
                assert!(
                    report.contains("exp:") && report.contains("got:"),
                    "{file} did not fail on an expectation:\n{report}"
                );
            }
        }
    }
}

#[test]
fn rule_tests_and_corpus_pass_under_both_tools() {
    let mut files = test_files("tests/rules");
    files.extend(test_files("tests/rules/corpus"));
    assert!(files.len() >= 10, "{files:?}");
    both_tools(&files, true);
}

#[test]
fn failing_corpus_fails_under_both_tools() {
    let files = test_files("tests/rules/corpus/failing");
    assert!(files.len() >= 2, "{files:?}");
    both_tools(&files, false);
}

/// Every construct the issue lists appears in a corpus expression (a text search over the
/// corpus's test and rule files, so adding a construct to the list needs a test for it).
#[test]
fn corpus_covers_every_listed_construct() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/rules/corpus");
    let text: String = files_in("tests/rules/corpus")
        .iter()
        .map(|f| std::fs::read_to_string(f).expect("read corpus file"))
        .collect();
    assert!(root.join("README.md").exists());
    let functions = [
        "rate",
        "irate",
        "increase",
        "delta",
        "idelta",
        "deriv",
        "predict_linear",
        "avg_over_time",
        "min_over_time",
        "max_over_time",
        "sum_over_time",
        "count_over_time",
        "quantile_over_time",
        "stddev_over_time",
        "last_over_time",
        "changes",
        "resets",
        "absent",
        "absent_over_time",
        "abs",
        "ceil",
        "floor",
        "round",
        "clamp",
        "clamp_min",
        "clamp_max",
        "time",
        "timestamp",
        "vector",
        "scalar",
        "sort",
        "label_replace",
        "label_join",
        "histogram_quantile",
        "sum",
        "avg",
        "min",
        "max",
        "count",
        "stddev",
        "stdvar",
        "topk",
        "bottomk",
        "quantile",
        "count_values",
    ];
    let mut missing: Vec<String> = functions
        .iter()
        .filter(|f| {
            !text.contains(&format!("{f}("))
                && !text.contains(&format!("{f} by"))
                && !text.contains(&format!("{f} without"))
        })
        .map(|f| f.to_string())
        .collect();
    for token in [
        "=~",
        "!~",
        "!=",
        " offset ",
        " bool ",
        " and ",
        " or ",
        " unless ",
        "on(",
        "ignoring(",
        "group_left",
        "group_right",
        " by (",
        " without (",
        ":1m]",
        " % ",
        " ^ ",
        " stale",
        "_x",
        "keep_firing_for",
        "$externalLabels",
        "humanizePercentage",
        "humanizeDuration",
        "printf",
        "| humanize",
    ] {
        if !text.contains(token) {
            missing.push(token.to_string());
        }
    }
    assert!(missing.is_empty(), "the corpus lacks {missing:?}");
}

fn promtool(args: &[&str], files: &[String]) {
    let promtool = common::require_program("promtool", "prometheus");
    let files: Vec<&str> = files.iter().map(String::as_str).collect();
    let (passed, report) = verdict(&promtool, args, &files);
    assert!(passed, "promtool {args:?} failed:\n{report}");
    assert!(report.contains("SUCCESS"), "{report}");
}

#[test]
fn shipped_rules_pass_promtool_check() {
    let files = files_in("rules");
    assert!(!files.is_empty());
    promtool(&["check", "rules"], &files);
}
