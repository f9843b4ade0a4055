//! The docs say what the build does: a feature that is not built is named only where the docs
//! say it is not built, and a built one is never called unbuilt.

use std::path::{Path, PathBuf};

/// Every text a user reads: the READMEs, the architecture notes, the unit, the shipped rules
/// (their runbooks) and the examples.
fn documents() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = vec![root.join("README.md"), root.join("ARCHITECTURE.md")];
    for dir in ["systemd", "rules", "examples"] {
        for entry in std::fs::read_dir(root.join(dir)).expect("docs directory") {
            let path = entry.expect("entry").path();
            if path.is_file() {
                files.push(path);
            }
        }
    }
    files
}

#[test]
fn remediation_is_named_only_as_not_built() {
    let mut claims = Vec::new();
    for file in documents() {
        let text = std::fs::read_to_string(&file).expect("read doc");
        for (number, line) in text.lines().enumerate() {
            if line.to_lowercase().contains("remediat") && !line.contains("not built") {
                claims.push(format!("{}:{}: {line}", file.display(), number + 1));
            }
        }
    }
    assert!(
        claims.is_empty(),
        "docs describe remediation, which is not built:\n{}",
        claims.join("\n")
    );
}

#[test]
fn delivery_is_not_called_unbuilt() {
    for file in documents() {
        let text = std::fs::read_to_string(&file).expect("read doc");
        for (number, line) in text.lines().enumerate() {
            let lower = line.to_lowercase();
            let names_delivery = ["e-mail", "email", "smtp", "forwarding", "webhook"]
                .iter()
                .any(|word| lower.contains(word));
            assert!(
                !(names_delivery && lower.contains("not built")),
                "{}:{}: calls a built feature unbuilt: {line}",
                file.display(),
                number + 1
            );
        }
    }
}
