//! What a reload checks beyond validation: an empty file is what a failed write or a
//! configuration-management glitch leaves behind, so it is refused instead of silently meaning
//! "all defaults" (no auth, the default port, the built-in rules); and a reload that drops a
//! protection is named in a warning.

use std::path::Path;

use super::{Config, ConfigError, ConfigErrors, Overrides};

/// Reads the configuration for a reload: as [`super::load`], but a file with no settings at all
/// (empty, or only whitespace and comments) is refused.
pub fn load_for_reload(path: Option<&Path>, overrides: &Overrides) -> Result<Config, ConfigErrors> {
    if let Some(path) = path {
        let (origin, text) = super::read_file(path, "check that the file is readable")?;
        if is_empty(&text) {
            return Err(ConfigError {
 secret_unavailable: false,
                origin,
                position: None,
                key: None,
                message: format!(
                    "the configuration file has no settings ({} bytes); an empty file is usually a failed or unfinished write",
                    text.len()
                ),
                hint: Some(
                    "restore the file; to run on the defaults on purpose, give at least one setting, e.g. [web] listen = \"127.0.0.1:9777\"".into(),
                ),
            }
            .into());
        }
        return super::parse(&origin, &text, overrides);
    }
    super::load(None, overrides)
}

/// Whether the text holds no key at all (only whitespace and comments). Text that does not parse
/// is not "empty": its parse error says more.
fn is_empty(text: &str) -> bool {
    text.trim().is_empty()
        || text
            .parse::<toml::Table>()
            .is_ok_and(|table| table.is_empty())
}

/// The protections `current` has and `next` drops, by configuration key, so a reload that
/// opens the endpoints says so.
pub fn removed_protections(current: &Config, next: &Config) -> Vec<&'static str> {
    let mut removed = Vec::new();
    if current.web.auth.bearer_token.is_some() && next.web.auth.bearer_token.is_none() {
        removed.push("web.bearer_token");
    }
    if current.web.auth.basic_auth.is_some() && next.web.auth.basic_auth.is_none() {
        removed.push("web.basic_auth");
    }
    if current.ai.ingest_token.is_some() && next.ai.ingest_token.is_none() {
        removed.push("ai.ingest_token");
    }
    if current.web.tls.is_some() && next.web.tls.is_none() {
        removed.push("web.tls");
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, text: &str) -> std::path::PathBuf {
        let path = dir.join("prismwatch.toml");
        std::fs::write(&path, text).expect("write");
        path
    }

    #[test]
    fn an_empty_or_comment_only_file_is_refused_on_reload() {
        let dir = tempfile::tempdir().expect("temp dir");
        for text in ["", "\n\n  \n", "# prismwatch\n# nothing else\n"] {
            let path = write(dir.path(), text);
            let error = load_for_reload(Some(&path), &Overrides::default())
                .expect_err("an empty file must be refused")
                .to_string();
            assert!(error.contains("has no settings"), "{text:?}: {error}");
        }
        let path = write(dir.path(), "[host]\ninterval = \"2s\"\n");
        assert!(load_for_reload(Some(&path), &Overrides::default()).is_ok());
        // A truncated file that no longer parses is refused with its parse error.
        let path = write(dir.path(), "[web]\nbearer_token = \"abc");
        let error = load_for_reload(Some(&path), &Overrides::default())
            .expect_err("a truncated file must be refused")
            .to_string();
        assert!(!error.contains("has no settings"), "{error}");
    }

    #[test]
    fn removed_protections_are_named() {
        let parse = |text: &str| {
            super::super::parse("test.toml", text, &Overrides::default()).expect("valid")
        };
        let protected = parse(
            "[web]\nbearer_token = \"t\"\n[web.basic_auth]\nusername = \"u\"\npassword = \"p\"\n[ai]\ningest_token = \"i\"\n",
        );
        let open = parse("[host]\ninterval = \"2s\"\n");
        assert_eq!(
            removed_protections(&protected, &open),
            ["web.bearer_token", "web.basic_auth", "ai.ingest_token"]
        );
        assert!(removed_protections(&open, &protected).is_empty());
        assert!(removed_protections(&protected, &protected).is_empty());
    }
}
