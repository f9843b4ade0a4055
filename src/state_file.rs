//! State files in the state directory (`spend.json`; an older version's `rules-state.json`,
//! read once): written durably, read without ever losing what cannot be read.
//!
//! A write is durable when it returns: the bytes go to a temporary file that is synced, renamed
//! over the old file, and the directory is synced, so a crash or `kill -9` leaves either the old
//! or the new file whole. A file that cannot be parsed is set aside under a name no earlier
//! set-aside file has (never overwritten), and when it cannot be set aside the caller must not
//! write over it.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

/// What reading a state file found.
#[derive(Debug)]
pub enum Loaded<T> {
    /// No file yet.
    Missing,
    Read(T),
    /// The file could not be parsed; it was renamed to `kept_as`.
    SetAside {
        error: String,
        kept_as: PathBuf,
    },
    /// The file could not be parsed (or read) and could not be moved aside: it is still at its
    /// path, and must not be written over.
    Stuck {
        error: String,
    },
}

/// Reads `path` as JSON; see [`Loaded`].
pub fn load_json<T: DeserializeOwned>(path: &Path) -> Loaded<T> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Loaded::Missing,
        Err(error) => {
            return Loaded::Stuck {
                error: error.to_string(),
            };
        }
    };
    match serde_json::from_slice::<T>(&bytes) {
        Ok(value) => Loaded::Read(value),
        Err(error) => match set_aside(path) {
            Ok(kept_as) => Loaded::SetAside {
                error: error.to_string(),
                kept_as,
            },
            Err(move_error) => Loaded::Stuck {
                error: format!("{error}; and it cannot be moved aside: {move_error}"),
            },
        },
    }
}

/// Renames `path` to `<path>.unreadable-<n>` with the first `n` not taken, without replacing any
/// existing file (a hard link fails when the name exists; only then is the original removed).
pub fn set_aside(path: &Path) -> std::io::Result<PathBuf> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    for n in 1..10_000u32 {
        let aside = path.with_file_name(format!("{name}.unreadable-{n}"));
        match std::fs::hard_link(path, &aside) {
            Ok(()) => {
                std::fs::remove_file(path)?;
                sync_dir(path)?;
                return Ok(aside);
            }
            Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(error) => return Err(error),
        }
    }
    Err(std::io::Error::other(
        "10,000 set-aside files already exist; remove old ones",
    ))
}

/// Writes `bytes` to `path` durably (temporary file, fsync, rename, fsync of the directory).
pub fn write_durable(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(".tmp");
    let temporary = PathBuf::from(temporary);
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&temporary)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&temporary, path)?;
    sync_dir(path)
}

fn sync_dir(path: &Path) -> std::io::Result<()> {
    let directory = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    File::open(directory)?.sync_all()
}

/// Serde for an `f64` that may be infinite or NaN: finite values are JSON numbers, the others
/// the strings Prometheus uses (`"+Inf"`, `"-Inf"`, `"NaN"`), since JSON has no such numbers
/// and serde_json would write `null`.
pub mod float {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &f64, serializer: S) -> Result<S::Ok, S::Error> {
        if value.is_finite() {
            serializer.serialize_f64(*value)
        } else if value.is_nan() {
            serializer.serialize_str("NaN")
        } else if *value > 0.0 {
            serializer.serialize_str("+Inf")
        } else {
            serializer.serialize_str("-Inf")
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<f64, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Either {
            Number(f64),
            Text(String),
        }
        match Either::deserialize(deserializer)? {
            Either::Number(value) => Ok(value),
            Either::Text(text) => match text.as_str() {
                "NaN" => Ok(f64::NAN),
                "+Inf" | "Inf" => Ok(f64::INFINITY),
                "-Inf" => Ok(f64::NEG_INFINITY),
                other => Err(serde::de::Error::custom(format!(
                    "expected a number, \"+Inf\", \"-Inf\" or \"NaN\", not {other:?}"
                ))),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Serialize, serde::Deserialize)]
    struct Value {
        #[serde(with = "float")]
        x: f64,
    }

    #[test]
    fn non_finite_values_round_trip() -> Result<(), serde_json::Error> {
        for x in [1.5, f64::INFINITY, f64::NEG_INFINITY] {
            let text = serde_json::to_string(&Value { x })?;
            assert_eq!(serde_json::from_str::<Value>(&text)?.x, x, "{text}");
        }
        let nan = serde_json::to_string(&Value { x: f64::NAN })?;
        assert_eq!(nan, r#"{"x":"NaN"}"#);
        assert!(serde_json::from_str::<Value>(&nan)?.x.is_nan());
        Ok(())
    }

    #[test]
    fn unreadable_files_are_set_aside_and_never_over_an_earlier_one() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("state.json");
        std::fs::write(&path, "first {")?;
        let Loaded::<Value>::SetAside { kept_as: first, .. } = load_json(&path) else {
            panic!("the first bad file was not set aside");
        };
        std::fs::write(&path, "second {")?;
        let Loaded::<Value>::SetAside {
            kept_as: second, ..
        } = load_json(&path)
        else {
            panic!("the second bad file was not set aside");
        };
        assert_ne!(first, second);
        assert_eq!(std::fs::read_to_string(&first)?, "first {");
        assert_eq!(std::fs::read_to_string(&second)?, "second {");
        assert!(matches!(load_json::<Value>(&path), Loaded::Missing));
        write_durable(&path, br#"{"x":"+Inf"}"#)?;
        assert!(
            matches!(load_json::<Value>(&path), Loaded::Read(Value { x }) if x == f64::INFINITY)
        );
        Ok(())
    }
}
