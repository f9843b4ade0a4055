//! Prometheus rule files: loading and validation. Every rule's expression is parsed with
//! promql-parser and checked against what the evaluator supports, and every template checked,
//! when the file loads; errors name the file, the group, the rule and the position in the
//! expression. `engine` evaluates a group, `manager` runs groups in the daemon, `unit_test`
//! runs promtool-format tests.

pub mod alert;
pub mod duration;
pub mod engine;
pub mod eval;
pub mod manager;
pub mod position;
pub mod saved;
pub mod template;
pub mod unit_test;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// One problem in a rule file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleError {
    pub file: PathBuf,
    pub group: Option<String>,
    pub rule: Option<String>,
    pub message: String,
}

impl fmt::Display for RuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(group) = &self.group {
            write!(f, ": group {group:?}")?;
        }
        if let Some(rule) = &self.rule {
            write!(f, ": rule {rule:?}")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// The most brackets an expression may nest, and the most operators it may hold. The parser
/// and the evaluator recurse, so a deeper expression (a hostile query, a generated rule gone
/// wrong) could exhaust a thread's stack and take the daemon down; real rules stay far below.
/// promql-parser's time grows with the square of the operators (1,000 `and`s take 40 ms in a
/// release build, 10,000 take 4.7 s), so the bound also keeps every parse short.
pub const MAX_NESTING: usize = 64;
pub const MAX_OPERATORS: usize = 500;

/// Parses a PromQL expression, after refusing one nested deeper than [`MAX_NESTING`] or with
/// more than [`MAX_OPERATORS`] operators (symbols counted outside string literals, and the
/// keywords `and`, `or`, `unless` and `atan2` in any case).
pub fn parse_expr(text: &str) -> Result<promql_parser::parser::Expr, String> {
    let (mut depth, mut deepest, mut operators) = (0usize, 0usize, 0usize);
    let mut previous = ' ';
    for (_, c) in position::code_chars(text) {
        match c {
            '(' | '[' | '{' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            ')' | ']' | '}' => depth = depth.saturating_sub(1),
            // Two-character operators (`==`, `<=`, `!=`, `=~`) count once.
            '+' | '-' | '*' | '/' | '%' | '^' | '<' | '>' | '=' | '!'
                if !"<>=!".contains(previous) || !"=~".contains(c) =>
            {
                operators += 1;
            }
            _ => {}
        }
        previous = c;
    }
    let words = text
        .split(|c: char| !c.is_ascii_alphanumeric() && c != '_')
        .filter(|w| {
            // PromQL keywords are case-insensitive: `AND` is `and`.
            ["and", "or", "unless", "atan2"]
                .iter()
                .any(|op| w.eq_ignore_ascii_case(op))
        })
        .count();
    if deepest > MAX_NESTING {
        return Err(format!(
            "the expression nests {deepest} levels of brackets; at most {MAX_NESTING} are allowed"
        ));
    }
    if operators + words > MAX_OPERATORS {
        return Err(format!(
            "the expression has {} operators; at most {MAX_OPERATORS} are allowed",
            operators + words
        ));
    }
    promql_parser::parser::parse(text)
}

/// A loaded, validated group.
#[derive(Clone, Debug)]
pub struct Group {
    pub file: PathBuf,
    pub name: String,
    pub interval: Option<Duration>,
    pub limit: u64,
    pub rules: Vec<Rule>,
}

/// A loaded, validated rule.
#[derive(Clone, Debug)]
pub struct Rule {
    pub kind: RuleKind,
    /// The expression as written.
    pub expr: String,
    pub parsed: promql_parser::parser::Expr,
    pub labels: BTreeMap<String, String>,
    /// The rule's identity across reloads and restarts: its name, expression and labels. An
    /// alert keeps its state while these are unchanged (a changed `for` or annotation keeps it
    /// too); alert state is keyed by it.
    pub key: String,
    /// The history source the rule writes under (`rules:<file>:<group>:<key>`), so its series
    /// go stale when it stops producing them.
    pub source: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RuleKind {
    Alert {
        name: String,
        hold: Duration,
        keep_firing_for: Duration,
        annotations: BTreeMap<String, String>,
    },
    Record {
        name: String,
    },
}

impl Rule {
    pub fn name(&self) -> &str {
        match &self.kind {
            RuleKind::Alert { name, .. } | RuleKind::Record { name } => name,
        }
    }
}

/// The file format (Prometheus' `groups:`).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleFile {
    groups: Vec<GroupSection>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GroupSection {
    name: String,
    interval: Option<String>,
    #[serde(default)]
    limit: u64,
    #[serde(default)]
    rules: Vec<RuleSection>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleSection {
    alert: Option<String>,
    record: Option<String>,
    expr: String,
    #[serde(rename = "for")]
    hold: Option<String>,
    keep_firing_for: Option<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
}

/// Rule files named by `paths`: files as given, directories by their `*.yml` and `*.yaml` that
/// are rule files (rule unit test files kept beside them are left out, see [`find_rule_files`]).
pub fn rule_files(paths: &[PathBuf]) -> Vec<PathBuf> {
    find_rule_files(paths).rules
}

/// What a list of rule paths holds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RuleFiles {
    /// Files to load as rules.
    pub rules: Vec<PathBuf>,
    /// Rule unit test files (promtool's format) found in the directories: skipped, as
    /// `promtool check rules` would refuse them and teams keep tests next to their rules.
    pub tests: Vec<PathBuf>,
}

/// Sorts the files of `paths` into rule files and rule unit test files. A file named on its own
/// is always a rule file (loading it says so if it is a test file).
pub fn find_rule_files(paths: &[PathBuf]) -> RuleFiles {
    let mut files = RuleFiles::default();
    for path in paths {
        if path.is_dir() {
            for file in yaml_files(path) {
                if is_unit_test_file(&file) {
                    files.tests.push(file);
                } else {
                    files.rules.push(file);
                }
            }
        } else {
            files.rules.push(path.clone());
        }
    }
    files
}

/// Every file of `paths` that a change of the rules could touch, without reading any: the files
/// as given and the `*.yml`/`*.yaml` of directories.
pub fn watched_files(paths: &[PathBuf]) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            files.extend(yaml_files(path));
        } else {
            files.push(path.clone());
        }
    }
    files
}

fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "yml" || x == "yaml"))
                .collect()
        })
        .unwrap_or_default();
    found.sort();
    found
}

/// The top-level keys that tell a rule file from a rule unit test file.
#[derive(Deserialize)]
struct FileKind {
    groups: Option<serde::de::IgnoredAny>,
    rule_files: Option<serde::de::IgnoredAny>,
    tests: Option<serde::de::IgnoredAny>,
}

/// Whether `text` is a rule unit test file: `rule_files` or `tests` at the top, no `groups`.
fn is_unit_test_text(text: &str) -> bool {
    serde_saphyr::from_str::<FileKind>(text).is_ok_and(|kind| {
        kind.groups.is_none() && (kind.rule_files.is_some() || kind.tests.is_some())
    })
}

fn is_unit_test_file(file: &Path) -> bool {
    std::fs::read_to_string(file).is_ok_and(|text| is_unit_test_text(&text))
}

/// Loads every file, returning the valid groups and every error found (not just the first).
pub fn load(paths: &[PathBuf]) -> (Vec<Group>, Vec<RuleError>) {
    let mut groups = Vec::new();
    let mut errors = Vec::new();
    for file in rule_files(paths) {
        match load_file(&file) {
            Ok(loaded) => groups.extend(loaded),
            Err(mut problems) => errors.append(&mut problems),
        }
    }
    (groups, errors)
}

/// Loads one file; all of its problems are reported together.
pub fn load_file(file: &Path) -> Result<Vec<Group>, Vec<RuleError>> {
    let text = std::fs::read_to_string(file).map_err(|e| {
        vec![RuleError {
            file: file.to_path_buf(),
            group: None,
            rule: None,
            message: format!("cannot read the file: {e}"),
        }]
    })?;
    load_text(file, &text)
}

/// The default rules shipped in `rules/`, built into the binary so the daemon alerts with no
/// configuration and no files installed.
pub const BUILTIN: [(&str, &str); 4] = [
    (
        "builtin:rules/host.yml",
        include_str!("../../rules/host.yml"),
    ),
    (
        "builtin:rules/postgres.yml",
        include_str!("../../rules/postgres.yml"),
    ),
    (
        "builtin:rules/redis.yml",
        include_str!("../../rules/redis.yml"),
    ),
    (
        "builtin:rules/ai-spend.yml",
        include_str!("../../rules/ai-spend.yml"),
    ),
];

/// Loads the built-in default rules.
pub fn load_builtin() -> (Vec<Group>, Vec<RuleError>) {
    let mut groups = Vec::new();
    let mut errors = Vec::new();
    for (name, text) in BUILTIN {
        match load_text(Path::new(name), text) {
            Ok(loaded) => groups.extend(loaded),
            Err(mut problems) => errors.append(&mut problems),
        }
    }
    (groups, errors)
}

/// Loads the rules of one file's text; `file` names it in errors.
pub fn load_text(file: &Path, text: &str) -> Result<Vec<Group>, Vec<RuleError>> {
    let error = |group: Option<&str>, rule: Option<&str>, message: String| RuleError {
        file: file.to_path_buf(),
        group: group.map(str::to_string),
        rule: rule.map(str::to_string),
        message,
    };
    let parsed: RuleFile = serde_saphyr::from_str(text).map_err(|e| {
        let message = if is_unit_test_text(text) {
            "this is a rule unit test file (`rule_files` and `tests`), not a rule file: run it with `prismwatch rules test FILE`".to_string()
        } else {
            e.to_string()
        };
        vec![error(None, None, message)]
    })?;
    let mut errors = Vec::new();
    let mut groups = Vec::new();
    let mut names = std::collections::BTreeSet::new();
    for section in parsed.groups {
        let group_name = section.name.clone();
        if !names.insert(group_name.clone()) {
            errors.push(error(
                Some(&group_name),
                None,
                "the group name is used twice in this file".into(),
            ));
        }
        let interval = match section.interval.as_deref().map(duration::parse) {
            None => None,
            Some(Ok(d)) => Some(d),
            Some(Err(message)) => {
                errors.push(error(
                    Some(&group_name),
                    None,
                    format!("interval: {message}"),
                ));
                None
            }
        };
        let mut rules = Vec::new();
        for (index, rule) in section.rules.into_iter().enumerate() {
            let label = rule
                .alert
                .clone()
                .or(rule.record.clone())
                .unwrap_or_else(|| format!("#{}", index + 1));
            match check_rule(rule) {
                Ok(rule) => rules.push(rule),
                Err(problems) => errors.extend(
                    problems
                        .into_iter()
                        .map(|m| error(Some(&group_name), Some(&label), m)),
                ),
            }
        }
        for rule in &mut rules {
            rule.source = format!("rules:{}:{group_name}:{}", file.display(), rule.key);
        }
        groups.push(Group {
            file: file.to_path_buf(),
            name: group_name,
            interval,
            limit: section.limit,
            rules,
        });
    }
    if errors.is_empty() {
        Ok(groups)
    } else {
        Err(errors)
    }
}

fn check_rule(rule: RuleSection) -> Result<Rule, Vec<String>> {
    let mut problems = Vec::new();
    let parsed = match parse_expr(&rule.expr) {
        Ok(expr) => match eval::check_supported(&expr) {
            Ok(()) => Some(expr),
            Err(message) => {
                problems.push(format!(
                    "expr: {}",
                    position::annotate(&rule.expr, &message)
                ));
                None
            }
        },
        Err(message) => {
            problems.push(format!(
                "expr: {}",
                position::annotate(&rule.expr, &message)
            ));
            None
        }
    };
    let mut duration_of =
        |field: &str, value: &Option<String>| match value.as_deref().map(duration::parse) {
            None => Duration::ZERO,
            Some(Ok(d)) => d,
            Some(Err(message)) => {
                problems.push(format!("{field}: {message}"));
                Duration::ZERO
            }
        };
    let hold = duration_of("for", &rule.hold);
    let keep_firing_for = duration_of("keep_firing_for", &rule.keep_firing_for);
    for (key, value) in rule.labels.iter().chain(rule.annotations.iter()) {
        if let Err(message) = template::check(value) {
            problems.push(format!("{key}: {message}"));
        }
    }
    let kind = match (rule.alert, rule.record) {
        (Some(name), None) => Some(RuleKind::Alert {
            name,
            hold,
            keep_firing_for,
            annotations: rule.annotations,
        }),
        (None, Some(name)) => {
            if rule.hold.is_some() || rule.keep_firing_for.is_some() || !rule.annotations.is_empty()
            {
                problems
                    .push("a recording rule takes no for, keep_firing_for or annotations".into());
            }
            Some(RuleKind::Record { name })
        }
        _ => {
            problems.push("a rule needs exactly one of `alert` or `record`".into());
            None
        }
    };
    match (kind, parsed) {
        (Some(kind), Some(parsed)) if problems.is_empty() => {
            let mut loaded = Rule {
                kind,
                expr: rule.expr,
                parsed,
                labels: rule.labels,
                key: String::new(),
                // Set with the group (`load_text`), which knows the file and group name.
                source: String::new(),
            };
            let labels: Vec<String> = loaded
                .labels
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            loaded.key = format!(
                "{}|{}|{}",
                loaded.name(),
                loaded.expr.trim(),
                labels.join(",")
            );
            Ok(loaded)
        }
        _ => Err(problems),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_operator_bound_counts_keywords_in_any_case() {
        let refused = |text: &str| parse_expr(text).err().unwrap_or_default();
        for op in ["and", "AND", "Or", "UNLESS", "atan2", "ATAN2"] {
            let text = vec!["up"; MAX_OPERATORS + 2].join(&format!(" {op} "));
            assert!(refused(&text).contains("operators; at most 500"), "{op}");
        }
        let text = vec!["up"; MAX_OPERATORS].join(" AND ");
        assert!(parse_expr(&text).is_ok());
        // Words inside label values or names are not operators of their own, but counting
        // them errs on the side of the bound.
        assert!(parse_expr(r#"up{job="and or unless"}"#).is_ok());
    }
}
