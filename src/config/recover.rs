//! Deserialisation that reports every error of a file, not only the first.
//!
//! Serde stops at the first problem. So the file is parsed once into toml's spanned document,
//! and deserialised from it repeatedly: after each error the key that holds it is taken out of
//! the document (its span still points into the original text, so later errors keep their line
//! and column) and deserialisation runs again, until it succeeds. Validation of the values then
//! runs on what is left, which collects its own errors.

use std::ops::Range;

use serde::de::DeserializeOwned;
use toml::Spanned;
use toml::de::{DeArray, DeTable, DeValue};

use super::error::{ConfigError, Source};

/// More errors than this in one file stop the search; the rest is noise by then.
const MAX_ERRORS: usize = 100;

/// Deserialises `source` into `T`, collecting every syntax, unknown-key and type error. Returns
/// the value built from the keys without errors (when one could be built) and the errors.
pub fn deserialize_all<T: DeserializeOwned>(source: &Source<'_>) -> (Option<T>, Vec<ConfigError>) {
    let (value, mut errors) = deserialize_unordered(source);
    errors.sort_by_key(|e| e.position);
    (value, errors)
}

fn deserialize_unordered<T: DeserializeOwned>(
    source: &Source<'_>,
) -> (Option<T>, Vec<ConfigError>) {
    let (document, syntax) = DeTable::parse_recoverable(source.text);
    if !syntax.is_empty() {
        return (None, syntax.iter().map(|e| source.from_toml(e)).collect());
    }
    let span = document.span();
    let mut root = document.into_inner();
    let mut errors = Vec::new();
    // Keys taken out, as (span of the table they were in, key), so the "missing field" that a
    // required key's removal causes is not reported a second time.
    let mut removed: Vec<(Range<usize>, String)> = Vec::new();
    loop {
        let attempt = Spanned::new(span.clone(), root.clone());
        let error = match T::deserialize(toml::de::Deserializer::from(attempt)) {
            Ok(value) => return (Some(value), errors),
            Err(error) => error,
        };
        let Some(at) = error.span() else {
            errors.push(source.from_toml(&error));
            return (None, errors);
        };
        let missing = error
            .message()
            .strip_prefix("missing field `")
            .and_then(|rest| rest.split('`').next())
            .map(str::to_string);
        let consequence = missing.as_ref().is_some_and(|field| {
            removed
                .iter()
                .any(|(table, key)| key == field && table.start <= at.start && at.end <= table.end)
        });
        if !consequence {
            errors.push(source.from_toml(&error));
        }
        if errors.len() >= MAX_ERRORS {
            return (None, errors);
        }
        let whole = Range {
            start: span.start,
            end: span.end.max(source.text.len()),
        };
        match remove_at(&mut root, whole, &at) {
            Some(taken) => removed.push(taken),
            // The error is on the document itself: nothing left to take out.
            None => return (None, errors),
        }
    }
}

/// Takes out of `table` (whose own span is `table_span`, its header) the innermost entry that
/// holds `at`; returns the span of the table it was in and its key. A table's span is only its
/// header, so nested tables are searched first, whatever their span.
fn remove_at(
    table: &mut DeTable<'_>,
    table_span: Range<usize>,
    at: &Range<usize>,
) -> Option<(Range<usize>, String)> {
    for (_, value) in table.iter_mut() {
        if let Some(found) = remove_inside(value, at) {
            return Some(found);
        }
    }
    let name = table
        .iter()
        .find(|(key, value)| contains(&key.span(), at) || contains(&value.span(), at))
        .map(|(key, _)| key.get_ref().to_string())?;
    table.remove(name.as_str());
    Some((table_span, name))
}

/// Looks for `at` inside a table or an array; `None` when it is not inside.
fn remove_inside(
    value: &mut Spanned<DeValue<'_>>,
    at: &Range<usize>,
) -> Option<(Range<usize>, String)> {
    let span = value.span();
    match value.get_mut() {
        DeValue::Table(inner) => remove_at(inner, span, at),
        DeValue::Array(items) => {
            for item in items.as_mut() {
                let item_span = item.span();
                if let DeValue::Table(inner) = item.get_mut()
                    && let Some(found) = remove_at(inner, item_span, at)
                {
                    return Some(found);
                }
            }
            // An error on an element itself (a wrong type, a table missing a field): it goes.
            let index = items.iter().position(|item| contains(&item.span(), at))?;
            let item_span = items[index].span();
            let kept: DeArray<'_> = std::mem::replace(items, DeArray::new())
                .into_iter()
                .enumerate()
                .filter(|(i, _)| *i != index)
                .map(|(_, item)| item)
                .collect();
            *items = kept;
            Some((item_span, String::new()))
        }
        _ => None,
    }
}

fn contains(outer: &Range<usize>, inner: &Range<usize>) -> bool {
    outer.start <= inner.start && inner.end <= outer.end.max(outer.start + 1)
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Doc {
        #[serde(default)]
        a: Option<u32>,
        #[serde(default)]
        t: Option<Inner>,
        #[serde(default)]
        list: Vec<Inner>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        need: u32,
        #[serde(default)]
        x: Option<u32>,
    }

    fn errors(text: &str) -> Vec<String> {
        let source = Source {
            origin: "t.toml",
            text,
        };
        deserialize_all::<Doc>(&source)
            .1
            .iter()
            .map(|e| {
                let (line, column) = e.position.unwrap_or((0, 0));
                format!("{line}:{column} {}", e.key.clone().unwrap_or_default())
            })
            .collect()
    }

    #[test]
    fn every_error_of_a_file_is_found_with_its_place() {
        let text = "a = \"x\"\nb = 1\n[t]\nneed = 1\nx = \"y\"\nz = 2\n[[list]]\nneed = \"n\"\n[[list]]\nneed = 2\nx = -1\n";
        assert_eq!(
            errors(text),
            [
                "1:5 a",
                "2:1 b",
                "5:5 t.x",
                "6:1 t.z",
                "8:8 list.need",
                "11:5 list.x"
            ]
        );
    }

    #[test]
    fn a_removed_required_key_is_not_reported_again_as_missing() {
        assert_eq!(errors("[t]\nneed = \"n\"\n"), ["2:8 t.need"]);
        assert_eq!(errors("[[list]]\nneed = -3\n"), ["2:8 list.need"]);
    }

    #[test]
    fn syntax_errors_are_reported() {
        assert_eq!(errors("a = \n").len(), 1);
    }
}
