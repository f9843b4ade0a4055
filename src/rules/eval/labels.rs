//! `label_replace` and `label_join`: label rewriting, with their fixed arguments checked at
//! load time.

use promql_parser::parser::{Call, Expr};
use regex::Regex;

use super::{LabelSet, unwrap_parens};

pub(super) fn string_arg<'e>(arg: Option<&'e Expr>, function: &str) -> Result<&'e str, String> {
    match arg.map(unwrap_parens) {
        Some(Expr::StringLiteral(s)) => Ok(&s.val),
        _ => Err(format!("{function}(): expected a string argument")),
    }
}

/// `label_replace` and `label_join` arguments that are fixed in the text, checked at load time.
pub(super) fn check_label_arguments(call: &Call) -> Result<(), String> {
    let name = call.func.name;
    let args: Vec<&Expr> = call.args.args.iter().map(|a| unwrap_parens(a)).collect();
    let destination = string_arg(args.get(1).copied(), name)?;
    if destination.is_empty() {
        return Err(format!("{name}(): the destination label name is empty"));
    }
    if name == "label_replace" {
        label_replace_regex(string_arg(args.get(4).copied(), name)?)?;
    }
    Ok(())
}

/// Prometheus anchors the regex and lets `.` match newlines.
pub(super) fn label_replace_regex(pattern: &str) -> Result<Regex, String> {
    Regex::new(&format!("^(?s:{pattern})$"))
        .map_err(|e| format!("label_replace(): invalid regex `{pattern}`: {e}"))
}

/// Sets `destination` to `replacement` (with `$1`, `${name}` expanded) on each series whose
/// `source` value matches, removing it when the result is empty; other series pass unchanged.
pub(super) fn label_replace(
    input: Vec<(LabelSet, f64)>,
    destination: &str,
    replacement: &str,
    source: &str,
    pattern: &Regex,
) -> Vec<(LabelSet, f64)> {
    input
        .into_iter()
        .map(|(labels, value)| {
            let source_value = label_value(&labels, source);
            let Some(captures) = pattern.captures(source_value) else {
                return (labels, value);
            };
            let mut result = String::new();
            captures.expand(replacement, &mut result);
            (set_label(labels, destination, result), value)
        })
        .collect()
}

/// Sets `destination` to the `sources` values joined by `separator` (missing ones empty).
pub(super) fn label_join(
    input: Vec<(LabelSet, f64)>,
    destination: &str,
    separator: &str,
    sources: &[&str],
) -> Vec<(LabelSet, f64)> {
    input
        .into_iter()
        .map(|(labels, value)| {
            let joined = sources
                .iter()
                .map(|source| label_value(&labels, source))
                .collect::<Vec<_>>()
                .join(separator);
            (set_label(labels, destination, joined), value)
        })
        .collect()
}

fn label_value<'l>(labels: &'l LabelSet, name: &str) -> &'l str {
    labels
        .iter()
        .find(|(k, _)| k == name)
        .map_or("", |(_, v)| v.as_str())
}

/// Sets a label, keeping the set sorted; an empty value removes it, as in Prometheus.
fn set_label(mut labels: LabelSet, name: &str, value: String) -> LabelSet {
    labels.retain(|(k, _)| k != name);
    if !value.is_empty() {
        labels.push((name.to_string(), value));
        labels.sort();
    }
    labels
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;

    #[test]
    fn label_replace_and_label_join_rewrite_labels() {
        assert_eq!(
            check(
                r#"label_replace(up{instance="a"}, "host", "$1-x", "instance", "(.*)")"#,
                AT
            ),
            vec![(
                r#"[("__name__", "up"), ("host", "a-x"), ("instance", "a"), ("job", "api")]"#
                    .to_string(),
                1.0
            )]
        );
        // No match: unchanged. An empty result removes the label. Named groups expand.
        assert_eq!(
            check(
                r#"label_replace(up{instance="a"}, "host", "$1", "instance", "z(.*)")"#,
                AT
            )[0]
            .0,
            r#"[("__name__", "up"), ("instance", "a"), ("job", "api")]"#
        );
        assert_eq!(
            check(
                r#"label_replace(up{instance="a"}, "job", "", "instance", ".*")"#,
                AT
            )[0]
            .0,
            r#"[("__name__", "up"), ("instance", "a")]"#
        );
        assert_eq!(
            check(
                r#"label_replace(up{instance="a"}, "x", "${g}!", "job", "(?P<g>a)pi")"#,
                AT
            )[0]
            .0,
            r#"[("__name__", "up"), ("instance", "a"), ("job", "api"), ("x", "a!")]"#
        );
        assert_eq!(
            check(
                r#"label_join(up{instance="a"}, "id", "/", "job", "instance", "missing")"#,
                AT
            )[0]
            .0,
            r#"[("__name__", "up"), ("id", "api/a/"), ("instance", "a"), ("job", "api")]"#
        );
        assert!(
            eval_error(r#"label_replace(up, "instance", "x", "job", ".*")"#)
                .contains("same labelset")
        );
        assert!(refusal(r#"label_replace(up, "a", "$1", "job", "(")"#).contains("invalid regex"));
    }
}
