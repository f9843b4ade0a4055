//! Configuration errors that say where (file, line, column, key), what, and how to fix it.

use std::fmt;
use std::ops::Range;

/// One problem in the configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// The file path, `<embedded default config>`, or a command-line flag such as `--listen`.
    pub origin: String,
    /// 1-based line and column, when the problem has a place in a file.
    pub position: Option<(usize, usize)>,
    /// Dotted key path such as `web.listen`, when known.
    pub key: Option<String>,
    pub message: String,
    /// What to change to fix it.
    pub hint: Option<String>,
    /// A secret (`env:` or `file:`) that cannot be read here. `check-config` reports it as a
    /// warning: a shell does not see the service's environment or systemd credentials, which
    /// the daemon reads at start.
    pub secret_unavailable: bool,
}

impl ConfigError {
    /// Marks the error as a secret that cannot be read here (see `secret_unavailable`).
    pub fn secret(mut self) -> ConfigError {
        self.secret_unavailable = true;
        self
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.origin)?;
        if let Some((line, column)) = self.position {
            write!(f, ":{line}:{column}")?;
        }
        write!(f, ": ")?;
        if let Some(key) = &self.key {
            write!(f, "key `{key}`: ")?;
        }
        write!(f, "{}", self.message)?;
        if let Some(hint) = &self.hint {
            write!(f, "\n  hint: {hint}")?;
        }
        Ok(())
    }
}

/// Every problem found in one configuration; validation reports them all at once.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, error) in self.0.iter().enumerate() {
            if index > 0 {
                writeln!(f)?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

impl From<ConfigError> for ConfigErrors {
    fn from(error: ConfigError) -> ConfigErrors {
        ConfigErrors(vec![error])
    }
}

/// A configuration source: its name and text, used to turn byte spans into positions and keys.
pub struct Source<'a> {
    pub origin: &'a str,
    pub text: &'a str,
}

impl Source<'_> {
    /// An error at a byte span of this source, for a known key.
    pub fn error_at(
        &self,
        span: Range<usize>,
        key: &str,
        message: impl Into<String>,
        hint: impl Into<String>,
    ) -> ConfigError {
        ConfigError {
            secret_unavailable: false,
            origin: self.origin.to_string(),
            position: Some(self.position(span.start)),
            key: Some(key.to_string()),
            message: message.into(),
            hint: Some(hint.into()).filter(|h: &String| !h.is_empty()),
        }
    }

    /// Turns a TOML deserialisation error into a located error, recovering the key from the text.
    pub fn from_toml(&self, error: &toml::de::Error) -> ConfigError {
        let message = error.message().trim().to_string();
        let (position, key) = match error.span() {
            Some(span) => (
                Some(self.position(span.start)),
                self.key_at(span.start, &message),
            ),
            None => (None, None),
        };
        ConfigError {
            secret_unavailable: false,
            origin: self.origin.to_string(),
            position,
            key,
            hint: Some(hint_for(&message)),
            message,
        }
    }

    /// 1-based line and column of a byte offset.
    pub fn position(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let before = &self.text[..offset];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = before[line_start..].chars().count() + 1;
        (line, column)
    }

    /// The dotted key whose line holds `offset`: the enclosing `[table]` header plus the key
    /// before `=`. For "unknown field" errors the field name in the message is used.
    fn key_at(&self, offset: usize, message: &str) -> Option<String> {
        let offset = offset.min(self.text.len());
        let line_start = self.text[..offset].rfind('\n').map_or(0, |i| i + 1);
        let line_end = self.text[offset..]
            .find('\n')
            .map_or(self.text.len(), |i| offset + i);
        let line = self.text[line_start..line_end].trim();
        let table = self.text[..line_start]
            .lines()
            .rev()
            .map(str::trim)
            .find(|l| l.starts_with('['))
            .map(|header| {
                header
                    .trim_matches(|c| c == '[' || c == ']')
                    .trim()
                    .to_string()
            });
        let unknown = message
            .strip_prefix("unknown field `")
            .and_then(|rest| rest.split('`').next())
            .map(str::to_string);
        if line.starts_with('[') {
            let header = line
                .trim_matches(|c| c == '[' || c == ']')
                .trim()
                .to_string();
            return Some(match unknown {
                Some(field) if !header.ends_with(&field) => format!("{header}.{field}"),
                _ => header,
            });
        }
        let key = match unknown {
            Some(field) => field,
            None => line.split('=').next()?.trim().trim_matches('"').to_string(),
        };
        Some(match table {
            Some(table) => format!("{table}.{key}"),
            None => key,
        })
    }
}

fn hint_for(message: &str) -> String {
    if message.starts_with("unknown field") {
        "remove the key or fix its spelling; examples/prismwatch.toml lists every key".to_string()
    } else if message.starts_with("invalid type") {
        "give the value the type the message expects (strings in quotes, numbers bare)".to_string()
    } else if message.contains("duration") {
        "write durations as a number and a unit: 500ms, 15s, 5m, 1h".to_string()
    } else {
        "see examples/prismwatch.toml for the expected form".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_is_recovered_from_table_header_and_line() {
        let text = "[web]\nlisten = 5\n";
        let source = Source {
            origin: "a.toml",
            text,
        };
        let offset = text.find('5').unwrap_or(0);
        assert_eq!(source.position(offset), (2, 10));
        assert_eq!(
            source.key_at(offset, "invalid type"),
            Some("web.listen".into())
        );
    }
}
