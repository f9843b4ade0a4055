//! Architecture invariants from ARCHITECTURE.md, checked in code so they cannot rot.

use std::path::Path;

fn source(relative: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("src")
        .join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// Source files of a module: a file or every `.rs` file of a folder.
fn module_sources(relative: &str) -> Vec<(String, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let folder = root.join(relative);
    if folder.is_dir() {
        let mut files: Vec<(String, String)> = std::fs::read_dir(&folder)
            .expect("read module folder")
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "rs"))
            .map(|p| {
                (
                    p.display().to_string(),
                    std::fs::read_to_string(&p).expect("read"),
                )
            })
            .collect();
        files.sort();
        files
    } else {
        vec![(format!("{relative}.rs"), source(&format!("{relative}.rs")))]
    }
}

/// The code part of a file, without `//` comments, so documentation may name what code may not.
fn code_only(text: &str) -> String {
    text.lines()
        .map(|line| line.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn history_and_model_do_no_io_and_never_read_the_clock() {
    for module in ["history", "model"] {
        for (file, text) in module_sources(module) {
            let code = code_only(&text);
            for forbidden in [
                "SystemTime",
                "Instant",
                "std::fs",
                "tokio",
                "std::net",
                "std::env",
                "std::io",
            ] {
                assert!(
                    !code.contains(forbidden),
                    "{file} uses `{forbidden}`: the history and model stay pure"
                );
            }
        }
    }
}

#[test]
fn rule_evaluation_is_pure() {
    // The evaluator, the alert life cycle, templates and group evaluation take time as a
    // parameter and touch nothing but the history they are handed; the IO lives in
    // rules::manager (the daemon's actor) and rules::unit_test (test files).
    for module in [
        "rules/eval",
        "rules/alert",
        "rules/engine",
        "rules/template",
        "rules/position",
    ] {
        for (file, text) in module_sources(module) {
            let code = code_only(&text);
            // (promql-parser gives `@` times as SystemTime; converting one is not reading
            // the clock.)
            for forbidden in [
                "SystemTime::now",
                "Instant::now",
                "now_ms",
                "std::fs",
                "tokio",
                "std::net",
                "std::env",
            ] {
                assert!(
                    !code.contains(forbidden),
                    "{file} uses `{forbidden}`: rule evaluation stays pure"
                );
            }
        }
    }
}

#[test]
fn a_scrape_never_triggers_a_collection() {
    let mut files = module_sources("http");
    files.extend(module_sources("exposition"));
    for (file, text) in files {
        let code = code_only(&text);
        for forbidden in [
            // A collection is `collector.collect().await`; an iterator's collect() is fine.
            "collect().await",
            "HostCollector",
            "ProcessCollector",
            "run_collector",
        ] {
            assert!(
                !code.contains(forbidden),
                "{file} names `{forbidden}`: scrapes only read the history"
            );
        }
    }
}

#[test]
fn no_std_instant_outside_tests() {
    // tokio's Instant works with paused time in tests; std's does not.
    for module in ["collector", "http", "daemon", "cli"] {
        for (file, text) in module_sources(module) {
            assert!(
                !code_only(&text).contains("std::time::Instant"),
                "{file} uses std::time::Instant"
            );
        }
    }
}
