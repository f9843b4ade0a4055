//! Secrets (passwords, tokens, DSNs) that come from the config, the environment or a file, and
//! never show up in logs or status output.

use std::fmt;

use serde::Deserialize;

/// How a secret is written in the config: `env:NAME`, `file:/path` (systemd credentials live in
/// `/run/credentials/<unit>/`), or the literal value.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct SecretRef(String);

impl SecretRef {
    /// A secret given on the command line (same `env:`/`file:` forms as the file).
    pub fn from_flag(value: &str) -> SecretRef {
        SecretRef(value.to_string())
    }

    /// Reads the secret's value. The error says where the value was looked for, never the value.
    pub fn resolve(&self) -> Result<Secret, String> {
        if let Some(name) = self.0.strip_prefix("env:") {
            return std::env::var(name)
                .map(Secret)
                .map_err(|_| format!("environment variable `{name}` is not set"));
        }
        if let Some(path) = self.0.strip_prefix("file:") {
            return std::fs::read_to_string(path)
                .map(|text| Secret(text.trim_end_matches(['\n', '\r']).to_string()))
                .map_err(|error| format!("cannot read secret file `{path}`: {error}"));
        }
        Ok(Secret(self.0.clone()))
    }
}

impl fmt::Debug for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Only the indirection is shown; a literal value is not.
        match self.0.split_once(':') {
            Some((kind @ ("env" | "file"), place)) => write!(f, "{kind}:{place}"),
            _ => f.write_str("<redacted>"),
        }
    }
}

/// A resolved secret value. `Debug` and `Display` print `<redacted>`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The value itself, for the one place that needs it (a comparison, a connection).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print_their_value() {
        let secret = SecretRef("hunter2".into())
            .resolve()
            .unwrap_or(Secret::new(""));
        assert_eq!(secret.expose(), "hunter2");
        assert_eq!(format!("{secret:?} {secret}"), "<redacted> <redacted>");
        assert_eq!(format!("{:?}", SecretRef("hunter2".into())), "<redacted>");
    }

    #[test]
    fn file_secrets_drop_the_trailing_newline() -> Result<(), String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let path = dir.path().join("token");
        std::fs::write(&path, "s3cret\n").map_err(|e| e.to_string())?;
        let secret = SecretRef(format!("file:{}", path.display())).resolve()?;
        assert_eq!(secret.expose(), "s3cret");
        let missing = SecretRef("env:PRISMWATCH_TEST_UNSET_VARIABLE".into()).resolve();
        assert_eq!(
            missing.err().as_deref(),
            Some("environment variable `PRISMWATCH_TEST_UNSET_VARIABLE` is not set")
        );
        Ok(())
    }
}
